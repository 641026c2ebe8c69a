#!/usr/bin/env bash
# Installs the dependencies, builds, and runs the whole test suite with ctest.
# GPU tests (label gpu) skip themselves when no CUDA device is present.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh "$@"
ctest --test-dir build --output-on-failure -j"$(nproc)"

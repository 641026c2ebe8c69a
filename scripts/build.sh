#!/usr/bin/env bash
# Installs the dependencies (Debian/Ubuntu) and builds hspec into build/ (Release).
# Extra CMake options pass through, e.g. scripts/build.sh -DHSPEC_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build build -j"$(nproc)"

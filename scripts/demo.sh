#!/usr/bin/env bash
# Installs, builds, writes the small example (a trained 20-32-3 MLP and its data, made by
# hspec's own code) and analyzes it: top-5 and bottom-5 Hessian eigenvalues.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
mkdir -p build/example
./build/hspec_make_example build/example
./build/hspec analyze --model build/example/model.safetensors \
  --data build/example/data.safetensors --top 5 --bottom 5 --precision fp64 \
  --json build/example/report.json
echo "JSON report: build/example/report.json"

#!/usr/bin/env bash
# On a GPU machine: build with CUDA, run every test (GPU tests included), the GPU benchmark
# and whole analyze runs on the benchmark workloads. Everything it prints goes to
# ${OUT:-gpu-check-out}/ as well. Usage: scripts/gpu-check.sh [ARCH, default 90]
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
mkdir -p "$out"
arch=${1:-90}
nvidia-smi 2>&1 | tee "$out/nvidia-smi.txt" | head -15
cmake -S . -B build-gpu -DCMAKE_BUILD_TYPE=Release -DHSPEC_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$out/cmake.txt" 2>&1 || { tail -30 "$out/cmake.txt"; exit 1; }
cmake --build build-gpu -j"$(nproc)" >"$out/build.txt" 2>&1 || { grep -m20 -E "error" "$out/build.txt"; exit 1; }
ctest --test-dir build-gpu --output-on-failure -j4 2>&1 | tee "$out/ctest.txt" | tail -25
./build-gpu/bench/hspec_bench_gpu 2>&1 | tee "$out/bench_gpu.jsonl"
# Whole runs: write each workload's files once, then time analyze end to end.
./build-gpu/hspec_make_example "$out" >/dev/null
for prec in fp32 tf32; do
  /usr/bin/time -f "analyze example $prec: %e s" ./build-gpu/hspec analyze \
    --model "$out/model.safetensors" --data "$out/data.safetensors" --device cuda \
    --precision "$prec" --top 5 --bottom 1 --tol 1e-4 --json "$out/analyze_example_$prec.json" \
    2>&1 | tail -3
done
for w in mlp_small mlp_wide; do
  ./build-gpu/hspec_make_example "$out" "$w" >/dev/null
  for prec in fp32 tf32; do
    /usr/bin/time -f "analyze $w $prec: %e s" ./build-gpu/hspec analyze \
      --model "$out/${w}_model.safetensors" --data "$out/${w}_data.safetensors" --device cuda \
      --precision "$prec" --top 5 --bottom 1 --tol 1e-4 --json "$out/analyze_${w}_$prec.json" \
      2>&1 | tail -4
  done
  rm -f "$out/${w}_model.safetensors" "$out/${w}_data.safetensors"
done

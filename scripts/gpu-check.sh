#!/usr/bin/env bash
# On a GPU machine, in one call: build with CUDA, then the GPU tests (failing, not skipping,
# without a device), cuda vs cpu end to end in fp64 (an MLP and a ResNet graph), the GPU
# benchmarks (with the cuBLAS GEMM rates of the same run; the graph engine's product), whole
# `analyze` runs on the benchmark workloads with their wall times, compute-sanitizer
# (memcheck, racecheck, initcheck) on the GPU tests, and the whole ctest suite. Each step
# runs under `timeout`, and no step starts once the time budget is spent, so one hang cannot
# eat the device time; a summary with every figure ends the output.
# Everything goes to ${OUT:-gpu-check-out}/ as well: gpu-check.txt (what it printed),
# summary.txt, one log per step, bench_gpu.jsonl and the JSON reports.
#
# Usage: scripts/gpu-check.sh [STEP...]   (default: all, in this order)
#   steps: build gpu-tests e2e bench analyze sanitize ctest (build includes the device probe;
#   without a usable device the script stops there and fails)
# Environment: CUDA_ARCH (90), GPU_CHECK_BUDGET_S (seconds before no step starts; 540),
#   BUILD_DIR (build-gpu; kept between calls, so a rerun only rebuilds what changed).
# Exit status: 0 when every step that ran passed and none was left out by the budget.
# Needs only what the GPU machine has: CMake, nvcc, g++, GoogleTest, CLI11, nlohmann-json,
# zlib, LAPACKE + BLAS; no package manager, no network, no python.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
export B=${BUILD_DIR:-build-gpu}
arch=${CUDA_ARCH:-90}
budget=${GPU_CHECK_BUDGET_S:-540}
steps=("$@")
[ ${#steps[@]} -eq 0 ] && steps=(build gpu-tests e2e bench analyze sanitize ctest)
export HSPEC_REQUIRE_GPU=1  # GPU tests fail instead of skipping when no device is usable
: >"$OUT/summary.txt"
exec > >(tee "$OUT/gpu-check.txt") 2>&1  # all of this script's output, as printed
status=0

note() { echo "$*" | tee -a "$OUT/summary.txt"; }

# run_step NAME LIMIT_S COMMAND...: COMMAND's output to $OUT/NAME.log and its tail here;
# PASS / FAIL (exit code) / TIMEOUT / NOT RUN goes to the summary.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((budget - SECONDS))
  if ((left < 15)); then
    note "[NOT RUN] $name: the ${budget} s budget is spent"
    status=1
    return 1
  fi
  ((limit > left)) && limit=$left
  echo "=== $name (at most ${limit} s)"
  local t0=$SECONDS rc
  timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  tail -n 25 "$OUT/$name.log"
  if ((rc == 0)); then
    note "[PASS] $name ($((SECONDS - t0)) s)"
  elif ((rc == 124 || rc == 137)); then
    note "[TIMEOUT] $name after $((SECONDS - t0)) s (limit ${limit} s)"
    status=1
  else
    note "[FAIL] $name: exit $rc ($((SECONDS - t0)) s; log: $OUT/$name.log)"
    status=1
  fi
  return $rc
}

# --- no device, no run: nvidia-smi must list one --------------------------------------------
if ! nvidia-smi -L >"$OUT/nvidia-smi.txt" 2>&1 || ! grep -q '^GPU ' "$OUT/nvidia-smi.txt"; then
  cat "$OUT/nvidia-smi.txt"
  note "[FAIL] device: nvidia-smi finds no GPU"
  exit 1
fi
nvidia-smi >>"$OUT/nvidia-smi.txt" 2>&1
note "device: $(head -1 "$OUT/nvidia-smi.txt")"
note "nvcc: $(nvcc --version 2>/dev/null | tail -1); cmake: $(cmake --version | head -1)"

do_build() {
  cmake -S . -B "$B" -DCMAKE_BUILD_TYPE=Release -DHSPEC_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCH" &&
    cmake --build "$B" -j"$(nproc)" --target hspec hspec_tests hspec_gpu_tests hspec_bench_gpu \
      hspec_bench_graph hspec_make_example hspec_report_diff
}

# The runtime's probe (with its reason when it finds nothing): without a device nothing
# after it can mean anything, so the script stops there.
do_probe() {
  "$B/tests/gpu/hspec_gpu_tests" --gtest_filter='DeviceProbe.*' || {
    echo "the CUDA runtime finds no usable device (see the reason above)"
    return 1
  }
}

do_gpu_tests() {
  "$B/tests/gpu/hspec_gpu_tests" --gtest_brief=1
}

# cuda vs cpu, fp64, same checkpoint: the eigenvalues must agree to 1e-10 of lambda_max.
do_e2e() {
  local d="$OUT/e2e" rc=0
  mkdir -p "$d"
  "$B/hspec_make_example" "$d" || return 1
  # Block 1 and block 4 (the batched products), fp64 to 1e-12: both backends converge far
  # below the 1e-10 asked of their agreement.
  for block in 1 4; do
    for dev in cpu cuda; do
      "$B/hspec" analyze --model "$d/model.safetensors" --data "$d/data.safetensors" \
        --precision fp64 --block "$block" --top 5 --bottom 1 --tol 1e-12 --device "$dev" \
        --json "$d/block$block-$dev.json" || rc=1
    done
    echo "fp64 block $block, cpu vs cuda:"
    "$B/bench/hspec_report_diff" "$d/block$block-cpu.json" "$d/block$block-cuda.json" 1e-10 ||
      rc=1
  done
  # A graph model through the graph engine on both backends: the ResNet fixture (conv, batch
  # norm, projection shortcut, pooling), fp64, batched products. Reading ONNX needs
  # libonnx-dev at build time, which the GPU machine may lack: a build without it says so
  # here and in the summary (the GPU tests still run graphs built in code on the card).
  local fx=tests/fixtures/onnx
  for dev in cpu cuda; do
    "$B/hspec" analyze --model "$fx/resnet_dynamo.onnx" --data "$fx/resnet_data.safetensors" \
      --precision fp64 --block 4 --top 3 --bottom 1 --tol 1e-12 --device "$dev" \
      --json "$d/resnet-$dev.json" 2>"$d/resnet-$dev.err"
    local r=$?
    cat "$d/resnet-$dev.err"
    if grep -q "without ONNX support" "$d/resnet-$dev.err"; then
      echo "graph e2e: NOT RUN (this hspec was built without ONNX support)"
      return $rc
    fi
    ((r == 0)) || rc=1
  done
  echo "graph (resnet fixture) fp64 block 4, cpu vs cuda:"
  "$B/bench/hspec_report_diff" "$d/resnet-cpu.json" "$d/resnet-cuda.json" 1e-10 || rc=1
  return $rc
}

do_bench() {
  "$B/bench/hspec_bench_gpu" >"$OUT/bench_gpu.jsonl" || return 1
  # The graph engine's product on the card: the small ResNet-style net of bench/bench_graph.cpp
  # (1,024 28x28 inputs, blocks of 1 and 8 directions), fp32 and fp64.
  local prec
  for prec in fp32 fp64; do
    "$B/bench/hspec_bench_graph" --device cuda --precision "$prec" --budget-mib 4096 --reps 9 ||
      return 1
  done >"$OUT/bench_graph_gpu.jsonl"
  cat "$OUT/bench_graph_gpu.jsonl"
}

# Whole runs, wall time from the shell, files written once per workload.
do_analyze() {
  local d="$OUT/analyze" rc=0 w prec t0 t1
  mkdir -p "$d"
  for w in mlp_small mlp_wide; do
    "$B/hspec_make_example" "$d" "$w" || return 1
    for prec in fp32 tf32; do
      t0=$(date +%s.%N)
      "$B/hspec" analyze --model "$d/${w}_model.safetensors" --data "$d/${w}_data.safetensors" \
        --device cuda --precision "$prec" --top 5 --bottom 1 --tol 1e-4 \
        --json "$d/$w-$prec.json" || rc=1
      t1=$(date +%s.%N)
      echo "WALL $w $prec $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
    done
    echo "$w tf32 vs fp32 (within 1e-3 of lambda_max):"
    "$B/bench/hspec_report_diff" "$d/$w-fp32.json" "$d/$w-tf32.json" 1e-3 || rc=1
    rm -f "$d/${w}_model.safetensors" "$d/${w}_data.safetensors"
  done
  return $rc
}

# compute-sanitizer on a short filter of GPU tests (every kernel of ours, both precisions,
# 100 s per tool at most); the tests that start the hspec binary are left out (the child
# would run unsanitized anyway), and so are the solver tests (many launches, no new kernel).
do_sanitize() {
  local cs rc=0 tool filter
  cs=$(command -v compute-sanitizer ||
    ls "$(dirname "$(command -v nvcc)")/compute-sanitizer" /usr/local/cuda*/bin/compute-sanitizer \
      /usr/local/cuda*/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
  [ -n "$cs" ] || {
    echo "compute-sanitizer not found"
    return 1
  }
  local full='AllModels/CudaVsCpu.*/ce_tanh_hessian:AllModels/CudaVsCpu.*/bce_gelu_ggn'
  full="$full:AllModels/CudaVsCpu.*/mse_relu_hessian:CudaHvp.*:CudaSpaceTest/*.*"
  full="$full:CudaDeviceGuard.*:CudaGraphCompute/*.*"
  full="$full:CudaGraphOperator.BuiltGraphsMatchTheCpuBackend"
  # racecheck looks at shared memory, where only the graph reductions (and cuBLAS) work; it
  # is the slowest tool, so it gets those and one product test.
  local short='AllModels/CudaVsCpu.Float32/ce_tanh_hessian:CudaGraphCompute/1.*'
  for tool in memcheck racecheck initcheck; do
    echo "--- $tool"
    filter=$full
    [ "$tool" = racecheck ] && filter=$short
    timeout -k 5 100 "$cs" --tool "$tool" --error-exitcode 99 "$B/tests/gpu/hspec_gpu_tests" \
      --gtest_filter="$filter" --gtest_brief=1 >"$OUT/sanitize-$tool.log" 2>&1
    local r=$?
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|PASSED|FAILED" "$OUT/sanitize-$tool.log" | tail -4
    ((r == 0)) || {
      echo "$tool: exit $r"
      rc=1
    }
  done
  return $rc
}

do_ctest() {
  ctest --test-dir "$B" --output-on-failure -j"$(nproc)" --timeout 150
}

export -f do_build do_probe do_gpu_tests do_e2e do_bench do_analyze do_sanitize do_ctest
export CUDA_ARCH=$arch

built=1
for s in "${steps[@]}"; do
  case $s in
    build)
      run_step build 330 bash -c do_build || built=0
      if ((built)) && ! run_step probe 30 bash -c do_probe; then
        note "[FAIL] no usable CUDA device: nothing else runs"
        built=0
      fi
      ;;
    gpu-tests) ((built)) && run_step gpu-tests 120 bash -c do_gpu_tests ;;
    e2e) ((built)) && run_step e2e 60 bash -c do_e2e ;;
    bench) ((built)) && run_step bench 200 bash -c do_bench ;;
    analyze) ((built)) && run_step analyze 120 bash -c do_analyze ;;
    sanitize) ((built)) && run_step sanitize 240 bash -c do_sanitize ;;
    ctest) ((built)) && run_step ctest 240 bash -c do_ctest ;;
    *) note "[FAIL] unknown step '$s'"; status=1 ;;
  esac
done
((built)) || note "[NOT RUN] every step after the failed build or probe"

# --- summary: every figure, and the targets ------------------------------------------------
{
  echo "=== summary ($SECONDS s in all)"
  [ -f "$OUT/gpu-tests.log" ] && grep -E "^\[  (PASSED|FAILED|SKIPPED) " "$OUT/gpu-tests.log" | sed 's/^/gpu tests: /'
  [ -f "$OUT/ctest.log" ] && grep -E "tests passed|tests failed|Total Test time" "$OUT/ctest.log" | sed 's/^/ctest: /'
  [ -f "$OUT/e2e.log" ] && grep -E "^max |^graph " "$OUT/e2e.log" | sed 's/^/cuda vs cpu fp64: /'
  [ -f "$OUT/analyze.log" ] && grep -E "^WALL |^max " "$OUT/analyze.log" | sed 's/^/analyze: /'
  if [ -s "$OUT/bench_gpu.jsonl" ]; then
    # One line per product timing, then the targets (awk: no jq or python there).
    awk -F'[:,{}"]+' '
      function val(key,   i) { for (i = 1; i < NF; ++i) if ($i == key) return $(i + 1); return "" }
      function verdict(ok) { return ok ? "MET" : "MISSED" }
      val("gemm") == "true" {
        printf "gemm (cuBLAS, n 8192): fp32 %s, tf32 %s, fp64 %s TFLOP/s\n", val("fp32_tflops"), val("tf32_tflops"), val("fp64_tflops")
        next
      }
      val("workload") != "" {
        w = val("workload"); p = val("precision"); b = val("block"); ms = val("ms_per_hvp") + 0
        printf "bench %-9s %-4s block %2s: %9.4f ms/HVP, %6s TFLOP/s nominal, %5.1f%% of %s GEMM\n", w, p, b, ms, val("tflops_nominal"), 100 * val("fraction_of_gemm"), p
        key = w "/" p
        if (!(key in best) || ms < best[key]) { best[key] = ms; frac[key] = val("fraction_of_gemm") + 0 }
      }
      END {
        if ("mlp_wide/fp32" in best)
          printf "target fp32 mlp_wide >= 85%% of fp32 GEMM: best %.1f%% %s\n", 100 * frac["mlp_wide/fp32"], verdict(frac["mlp_wide/fp32"] >= 0.85)
        if ("mlp_small/fp32" in best)
          printf "target mlp_small <= 1.0 ms/HVP (fp32): best %.4f ms %s\n", best["mlp_small/fp32"], verdict(best["mlp_small/fp32"] <= 1.0)
        split("mlp_small mlp_wide", names, " ")
        for (i = 1; i <= 2; ++i) {
          f = names[i] "/fp32"; t = names[i] "/tf32"
          if ((f in best) && (t in best))
            printf "target tf32 >= 4x fp32 product rate on %s: %.2fx %s\n", names[i], best[f] / best[t], verdict(best[f] / best[t] >= 4)
        }
      }' "$OUT/bench_gpu.jsonl"
  fi
  if [ -s "$OUT/bench_graph_gpu.jsonl" ]; then
    awk -F'[:,{}"]+' '
      function val(key,   i) { for (i = 1; i < NF; ++i) if ($i == key) return $(i + 1); return "" }
      val("device") != "" {
        printf "bench graph (resnet, %s samples) %s %s block %s: %s ms/product wall\n", val("samples"), val("device"), val("precision"), val("block"), val("wall_ms_per_product")
      }' "$OUT/bench_graph_gpu.jsonl"
  fi
  if [ -f "$OUT/analyze.log" ]; then
    awk '$1 == "WALL" && $2 == "mlp_wide" && $3 == "fp32" {
      printf "target analyze mlp_wide fp32 <= 2.2 s wall: %s s %s\n", $4, (($4 + 0 <= 2.2) ? "MET" : "MISSED")
    }' "$OUT/analyze.log"
  fi
  for t in memcheck racecheck initcheck; do
    [ -f "$OUT/sanitize-$t.log" ] && echo "compute-sanitizer $t: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitize-$t.log" | tail -1)"
  done
  true
} | tee -a "$OUT/summary.txt"
note "gpu-check: $( ((status == 0)) && echo PASS || echo FAIL)"
exit $status

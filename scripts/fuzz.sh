#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, -DHSPEC_FUZZ=ON, ASan+UBSan) into build-fuzz/ and runs
# each for a bounded time: scripts/fuzz.sh [seconds per target, default 60] [target ...].
# Seeds come from fuzz/corpus/<target>/ (read only); what the fuzzer learns goes to
# build-fuzz/corpus/<target>/ and crash reproducers to build-fuzz/artifacts/. Exits non-zero
# when a target finds anything. Longer runs: e.g. scripts/fuzz.sh 3600 fuzz_idx.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"
shift || true
targets="${*:-fuzz_safetensors fuzz_idx fuzz_cli fuzz_onnx}"
bash scripts/install-deps.sh
bash scripts/install-fuzz-deps.sh
CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DHSPEC_FUZZ=ON -DHSPEC_CUDA=OFF -DHSPEC_MPI=OFF -DHSPEC_BUILD_TESTS=OFF >build-fuzz.configure.log
# fuzz_onnx exists only when the build found libonnx-dev and libprotobuf-dev.
if ! grep -q "ONNX import ON" build-fuzz.configure.log; then
  echo "fuzz.sh: no ONNX support in this build; skipping fuzz_onnx" >&2
  targets="$(echo " $targets " | sed 's/ fuzz_onnx / /g')"
fi
rm -f build-fuzz.configure.log
# shellcheck disable=SC2086
cmake --build build-fuzz -j"$(nproc)" --target $targets
mkdir -p build-fuzz/artifacts
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
for t in $targets; do
  mkdir -p "build-fuzz/corpus/$t"
  dict=()
  maxlen=4096
  case "$t" in
    fuzz_safetensors) dict=(-dict=fuzz/safetensors.dict) ;;
    fuzz_cli) dict=(-dict=fuzz/cli.dict) ;;
    fuzz_onnx) dict=(-dict=fuzz/onnx.dict) maxlen=8192 ;;
  esac
  echo "== $t: ${secs} s"
  # -rss_limit_mb and -malloc_limit_mb turn a reader allocating what a header claims into a
  # finding; -timeout turns a hang into one.
  if ! "build-fuzz/fuzz/$t" "build-fuzz/corpus/$t" "fuzz/corpus/$t" "${dict[@]}" \
    -max_total_time="$secs" -max_len="$maxlen" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
    -timeout=10 -print_final_stats=1 -artifact_prefix="build-fuzz/artifacts/$t-" \
    >"build-fuzz/$t.log" 2>&1; then
    echo "!! $t found a problem; log: build-fuzz/$t.log, reproducers: build-fuzz/artifacts/"
    tail -40 "build-fuzz/$t.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|cov:" "build-fuzz/$t.log" | tail -2 || true
  fi
done
exit $status

#!/usr/bin/env bash
# Builds hspec with AddressSanitizer + UndefinedBehaviorSanitizer (-DHSPEC_SANITIZE=ON,
# RelWithDebInfo, CPU only) into build-asan/ and runs the whole test suite with
# LeakSanitizer on; any report fails the run. MPI is off here: Open MPI's own start-up
# allocations read as leaks to LeakSanitizer (the distributed tests run in the main build). CI runs this after scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHSPEC_SANITIZE=ON \
  -DHSPEC_CUDA=OFF -DHSPEC_MPI=OFF "$@" >/dev/null
cmake --build build-asan -j"$(nproc)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1:detect_stack_use_after_return=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
ctest --test-dir build-asan --output-on-failure -j"$(nproc)"

#!/usr/bin/env bash
# Builds relay and runs every test: unit, integration (real relayd, real subscribers, kill -9),
# fuzz corpus replay, alert-rule tests and the Prometheus check of the dashboard.
#   tests/run.sh             RelWithDebInfo build in build/
#   tests/run.sh --sanitize  AddressSanitizer + UndefinedBehaviorSanitizer build in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."
RELAY_OPENAPI_DEPS=1 deploy/install-deps.sh

build_dir=build
# -g1 (line tables): stack traces and gdb backtraces keep file:line, and the code is the same as
# with -g (debug info never changes GCC's output), but the test files compile about a quarter
# faster without full variable and type information. A build to debug in: see BUILD.md.
cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG")
if [ "${1:-}" = "--sanitize" ]; then
  build_dir=build-asan
  # -O1 -g1: what ASan recommends, and half the compile time of -O2 -g on Beast's headers
  # (measured on 2 cores: 8.6 min against 17); line tables are enough for its stack traces.
  cmake_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g1 -DNDEBUG"
              -DRELAY_SANITIZE=ON -DRELAY_BENCHMARKS=OFF)
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
  export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi
cmake -S . -B "$build_dir" -G Ninja "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir"
cd "$build_dir"
ctest --output-on-failure --timeout 600 -j "$(nproc)"

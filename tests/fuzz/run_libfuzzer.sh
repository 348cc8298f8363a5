#!/usr/bin/env bash
# Builds relay's fuzz targets with clang + libFuzzer (ASan, UBSan) and runs each one for a while.
#   tests/fuzz/run_libfuzzer.sh [SECONDS_PER_TARGET] [TARGET...]
# SECONDS_PER_TARGET defaults to 60; TARGET defaults to all of them. New inputs go to
# $BUILD/fuzz-work/TARGET/corpus (the committed corpus is only read); crashes to
# $BUILD/fuzz-work/TARGET/artifacts. Set RELAY_FUZZ_BUILD_DIR to choose $BUILD (default
# build-fuzz in the source tree) and FUZZ_ARGS to pass more libFuzzer flags.
set -euo pipefail

src="$(cd "$(dirname "$0")/../.." && pwd)"
build="${RELAY_FUZZ_BUILD_DIR:-$src/build-fuzz}"
seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  # Every target there is: each <target>_fuzz.cpp.
  for source in "$src"/tests/fuzz/*_fuzz.cpp; do
    name="$(basename "$source")"
    targets+=("${name%_fuzz.cpp}")
  done
fi

RELAY_FUZZ_DEPS=1 "$src/deploy/install-deps.sh"
cmake -S "$src" -B "$build" -DCMAKE_CXX_COMPILER=clang++ -DRELAY_LIBFUZZER=ON -DRELAY_BENCHMARKS=OFF \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j2 --target "${targets[@]/#/fuzz_}"

failed=()
for target in "${targets[@]}"; do
  work="$build/fuzz-work/$target"
  mkdir -p "$work/corpus" "$work/artifacts"
  echo "== fuzz_$target for ${seconds}s"
  # shellcheck disable=SC2086  # FUZZ_ARGS is a list of flags
  if ! "$build/tests/fuzz/fuzz_$target" -max_total_time="$seconds" -timeout=10 -max_len=65536 \
      -dict="$src/tests/fuzz/relay.dict" -artifact_prefix="$work/artifacts/" -print_final_stats=1 \
      ${FUZZ_ARGS:-} "$work/corpus" "$src/tests/fuzz/corpus/$target" 2>"$work/log"; then
    failed+=("$target")
    grep -E "ERROR|SUMMARY|violated|Test unit written" "$work/log" || tail -20 "$work/log"
  fi
  grep -E "stat::number_of_executed_units|stat::new_units_added" "$work/log" || true
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "findings in: ${failed[*]} (inputs in $build/fuzz-work/<target>/artifacts)"
  exit 1
fi
echo "no findings"

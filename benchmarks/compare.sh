#!/usr/bin/env bash
# Compares the work tree with an earlier commit on benchmark scenarios (1-3 by default), in one run on one
# machine, so that a refactor or a fix can show it did not make relay slower:
#   benchmarks/compare.sh [BASE_REV]      (default: HEAD~1)
# Builds a Release relayd of BASE_REV (in a temporary git worktree) and of the work tree, then
# runs the scenarios for each in turn, base first, ROUNDS times (BENCH_COMPARE_ROUNDS, default 1;
# alternating rounds spread the machine's drift over both), and writes
# benchmarks/COMPARE.md (override with BENCH_COMPARE_RESULTS). The scenario settings of
# benchmarks/README.md apply (BENCH_DURATION etc.); BENCH_SCENARIOS defaults to "1 2 3".
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
base_rev="$(git -C "$repo" rev-parse "${1:-HEAD~1}")"
rounds="${BENCH_COMPARE_ROUNDS:-1}"
out="${BENCH_COMPARE_RESULTS:-$here/COMPARE.md}"
work="${BENCH_COMPARE_DIR:-$repo/build-compare}"
export BENCH_SCENARIOS="${BENCH_SCENARIOS:-1 2 3}"

base_tree="$work/base-tree"
rm -rf "$base_tree" "$work/results"
git -C "$repo" worktree prune
git -C "$repo" worktree add --detach "$base_tree" "$base_rev" >/dev/null
trap 'git -C "$repo" worktree remove --force "$base_tree" >/dev/null 2>&1 || true' EXIT

build() {  # source dir, build dir
  cmake -S "$1" -B "$2" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O3 -DNDEBUG -g" \
    -DRELAY_BENCHMARKS=ON >/dev/null
  cmake --build "$2" --target relayd micro_benchmarks fill_store -j "${BENCH_BUILD_JOBS:-2}"
}
RELAY_BENCH_DEPS=1 "$repo/deploy/install-deps.sh" >/dev/null
build "$base_tree" "$work/base"
build "$repo" "$work/head"

export PATH="$PATH:/usr/sbin"

cd "$here"
for round in $(seq 1 "$rounds"); do
  for side in base head; do
    mkdir -p "$work/results/$side-$round"
    BENCH_WORK_DIR="$work/bench-work/$side-$round" \
      python3 -m harness.main "$work/$side" "$work/results/$side-$round/RESULTS.md"
  done
done
python3 -m harness.compare "$base_rev" "work tree at $(git -C "$repo" rev-parse HEAD)" "$work/results" "$out"
echo "wrote $out"

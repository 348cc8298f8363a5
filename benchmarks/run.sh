#!/usr/bin/env bash
# The benchmark suite of issue 5 in one command: builds a Release relayd (plus the
# micro-benchmarks and fill_store) in build-release/, starts nginx on loopback as the subscriber
# sink and as the baseline, drives relayd and nginx with wrk, and writes benchmarks/RESULTS.md.
#
# wrk and nginx come from Debian (`RELAY_BENCH_DEPS=1 deploy/install-deps.sh` installs them; so
# does this script, as root, when they are missing). Nothing else is installed; all state lives
# under $BENCH_WORK_DIR (default build-release/bench-work). Settings: see benchmarks/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
build="${BENCH_BUILD_DIR:-$repo/build-release}"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v etcd >/dev/null || need+=(etcd-server)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "run.sh: installing ${need[*]} from Debian" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need[@]}" >&2
  else
    echo "run.sh: missing ${need[*]}; install them with: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
fi
export PATH="$PATH:/usr/sbin"
command -v perf >/dev/null || echo "run.sh: perf not found (Debian: linux-perf); the profile step is skipped" >&2

# -g only adds symbols for perf; the code is the same as a plain Release build.
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_CXX_FLAGS_RELEASE=-O3 -DNDEBUG -g" \
  -DRELAY_BENCHMARKS=ON >/dev/null
cmake --build "$build" --target relayd micro_benchmarks fill_store -j "${BENCH_BUILD_JOBS:-2}"

cd "$here"
exec python3 -m harness.main "$build" "${BENCH_RESULTS:-$here/RESULTS.md}"

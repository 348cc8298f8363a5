#!/usr/bin/env bash
# Installs relay's build and test dependencies from Debian 12 packages, only those missing.
# Used by the README quick start, tests/run.sh and .ci/run. Needs root (or sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-url1.81-dev
  libcurl4-openssl-dev libssl-dev librocksdb-dev nlohmann-json3-dev prometheus-cpp-dev
  libjemalloc-dev libgtest-dev libgmock-dev libbenchmark-dev
  python3 curl ca-certificates
  prometheus  # promtool and a real Prometheus for the observability test
  nghttp2-server  # nghttpd: an HTTP/2 subscriber for the egress tests
  strace  # the fsync-before-acknowledge test watches relayd's system calls
  etcd-server  # cluster mode's coordinator (--cluster-etcd), and real etcd members for its tests
)
# The OpenAPI checks of the test suite (tests/run.sh sets RELAY_OPENAPI_DEPS=1; the quick start,
# which only runs relayd, does not need them): jsonschema and YAML for relayd's answers against
# docs/openapi.yaml, and Node.js with npm for the pinned Redocly CLI (below). A machine whose
# Node.js already brings npm keeps it (NodeSource's nodejs package does, and conflicts with
# Debian's npm).
openapi_deps="${RELAY_OPENAPI_DEPS:-0}"
if [ "$openapi_deps" = 1 ]; then
  packages+=(python3-jsonschema python3-yaml)
  command -v npm >/dev/null || packages+=(nodejs npm)
fi
[ "${RELAY_BENCH_DEPS:-0}" = 1 ] && packages+=(wrk nginx-light)
[ "${RELAY_FUZZ_DEPS:-0}" = 1 ] && packages+=(clang libclang-rt-14-dev)  # tests/fuzz/run_libfuzzer.sh

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  echo "installing: ${missing[*]}" >&2
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # The prometheus package would start its own service where systemd runs; policy-rc.d-free
  # containers simply skip that.
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Redocly CLI, exactly as pinned by tests/openapi/package-lock.json, into tests/openapi/node_modules
# (tests/openapi/lint.sh runs it), again only when that lock changed. No install scripts run.
lint_dir="$(cd "$(dirname "$0")/../tests/openapi" && pwd)"
if [ "$openapi_deps" = 1 ] && ! cmp -s "$lint_dir/package-lock.json" "$lint_dir/node_modules/.relay-installed-lock"; then
  echo "installing the pinned Redocly CLI into tests/openapi/node_modules" >&2
  (cd "$lint_dir" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$lint_dir/package-lock.json" "$lint_dir/node_modules/.relay-installed-lock"
fi

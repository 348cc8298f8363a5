#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: installs what is missing, builds relayd and starts
# it in development mode (data in ./data, a generated admin API key printed and kept in
# ./data/dev-api-key, listening on 127.0.0.1:8080). Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/install-deps.sh
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DRELAY_BENCHMARKS=OFF >/dev/null
cmake --build build --target relayd
exec build/relayd --dev --data-dir ./data "$@"

#!/usr/bin/env bash
# Lints docs/openapi.yaml with the Redocly CLI pinned in tests/openapi/package-lock.json, under
# the repository's redocly.yaml (recommended-strict: any finding fails). The CLI is installed
# into tests/openapi/node_modules by deploy/install-deps.sh.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
redocly="$here/node_modules/.bin/redocly"
if [ ! -x "$redocly" ] || ! cmp -s "$here/package-lock.json" "$here/node_modules/.relay-installed-lock"; then
  echo "the pinned Redocly CLI is not installed (or not the version of package-lock.json): run deploy/install-deps.sh" >&2
  exit 1
fi
# No usage report and no update check: the lint needs nothing but the files.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true
cd "$root"
exec "$redocly" lint --config redocly.yaml docs/openapi.yaml

#!/usr/bin/env python3
"""Fails when an include runs upward through relay's layers (docs/architecture.md, "Code map").

Each module may include only the modules listed for it (itself included); a module not listed
here fails until it is given a place. The layers, lowest first:

  relay/core                    clock, durations, times, results, logger, blocking-pool bridge
  relay/model                   the domain kernel; plain structs, no JSON library
  relay/config                  flags and environment; core only (the log level is the logger's)
  storage                       RocksDB, keys, records, commits; core and model only
  metrics                       Prometheus families; labels come from model (delivery states)
  relay/routing                 payload filters; core and model only
  relay/subscriptions           the in-memory registry of subscriptions, how changes are written
  relay/http                    the HTTP server; counts connections in metrics
  relay/delivery                scheduling, egress, retention; everything below it
  relay/cluster                 cluster mode: the etcd store (through delivery's egress client)
                                and the cluster logic above it; everything up to delivery
  relay/api                     the handlers; everything below them
  relay/app, relay/main.cpp     wiring; everything

Usage: check_includes.py SOURCE_DIR
"""

import pathlib
import re
import sys

CORE = "relay/core"
MODEL = "relay/model"
CONFIG = "relay/config"
STORAGE = "storage"
METRICS = "metrics"
ROUTING = "relay/routing"
SUBSCRIPTIONS = "relay/subscriptions"
HTTP = "relay/http"
DELIVERY = "relay/delivery"
CLUSTER = "relay/cluster"
API = "relay/api"
APP = "relay/app"

ALLOWED = {
    CORE: {CORE},
    MODEL: {CORE, MODEL},
    CONFIG: {CORE, CONFIG},
    STORAGE: {CORE, MODEL, STORAGE},
    METRICS: {CORE, MODEL, METRICS},
    ROUTING: {CORE, MODEL, ROUTING},
    SUBSCRIPTIONS: {CORE, MODEL, STORAGE, ROUTING, SUBSCRIPTIONS},
    HTTP: {CORE, METRICS, HTTP},
    DELIVERY: {CORE, MODEL, STORAGE, METRICS, ROUTING, SUBSCRIPTIONS, DELIVERY},
    CLUSTER: {CORE, MODEL, STORAGE, METRICS, ROUTING, SUBSCRIPTIONS, DELIVERY, CLUSTER},
    API: {CORE, MODEL, CONFIG, STORAGE, METRICS, ROUTING, SUBSCRIPTIONS, HTTP, DELIVERY, CLUSTER, API},
    APP: {CORE, MODEL, CONFIG, STORAGE, METRICS, ROUTING, SUBSCRIPTIONS, HTTP, DELIVERY, CLUSTER, API, APP},
    "relay/main.cpp": {CORE, CONFIG, APP},
}

# Third-party headers a module must not need: the domain kernel stays free of the JSON library
# (JSON forms live in storage/records and relay/api/api_json).
FORBIDDEN_SYSTEM = {
    MODEL: ("nlohmann/",),
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def module_of(path: str) -> str | None:
    """The module a repository path belongs to: the longest key of ALLOWED it lies under."""
    best = None
    for module in ALLOWED:
        if path == module or path.startswith(module + "/"):
            if best is None or len(module) > len(best):
                best = module
    return best


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".").resolve()
    problems = []
    for top in ("relay", "storage", "metrics"):
        for file in sorted((root / top).rglob("*")):
            if file.suffix not in (".h", ".cpp"):
                continue
            path = file.relative_to(root).as_posix()
            module = module_of(path)
            if module is None:
                problems.append(f"{path}: in no layer; give its module a place in {__file__}")
                continue
            for number, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
                match = INCLUDE.match(line)
                if not match:
                    continue
                kind, target = match.groups()
                if kind == "<":
                    for prefix in FORBIDDEN_SYSTEM.get(module, ()):
                        if target.startswith(prefix):
                            problems.append(f"{path}:{number}: {module} must not include <{target}>")
                    continue
                target_module = module_of(target)
                if target_module is None:
                    continue  # not one of relay's modules (tests/, benchmarks/ are never included)
                if target_module not in ALLOWED[module]:
                    problems.append(f"{path}:{number}: {module} must not include {target} ({target_module})")
    for problem in problems:
        print(problem)
    if problems:
        print(f"{len(problems)} include(s) run against the layers")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

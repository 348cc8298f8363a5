"""Renders benchmarks/compare.sh's results: the same scenario figures of two builds side by side.

    python3 -m harness.compare BASE_REV HEAD_REV RESULTS_DIR OUT.md

RESULTS_DIR holds one folder per run, `base-N` and `head-N`, each with the harness's
results.json. A figure is the mean over the rounds; the change is head against base.
"""

import json
import os
import statistics
import sys

# (label, scenario, path into its results, higher is better)
FIGURES = [
    ("S1 durable ingest, deliveries held (events/s)", "s1", ("held", "rps"), True),
    ("S1 durable ingest, subscription disabled (events/s)", "s1", ("disabled", "rps"), True),
    ("S1 relayd CPU per 1,000 events (ms)", "s1", ("held", "cpu_ms_per_1000"), False),
    ("S1 nginx baseline (requests/s)", "s1", ("nginx", "rps"), True),
    ("S2 sustained ingest + delivery, best flat rate (deliveries/s)", "s2", ("best", "deliveries_per_s"), True),
    ("S2 end-to-end p99 at that rate (ms)", "s2", ("best", "e2e_p99_ms"), False),
    ("S2 relayd CPU per 1,000 deliveries (ms)", "s2", ("best", "cpu_ms_per_1000_deliveries"), False),
    ("S3 fan-out drain to 10 subscribers (deliveries/s)", "s3", ("drain", "deliveries_per_s"), True),
    ("S3 fan-out with ingest (deliveries/s)", "s3", ("concurrent", "deliveries_per_s"), True),
    ("S3 relayd CPU per 1,000 deliveries, drain (ms)", "s3", ("drain", "cpu_ms_per_1000_deliveries"), False),
    ("S4 durable ingest over the backlog (events/s)", "s4", ("s1", "rps"), True),
    ("S4 sustained ingest + delivery over the backlog (deliveries/s)", "s4", ("s2_best", "deliveries_per_s"), True),
    ("S4 peak RSS (MiB)", "s4", ("peak_rss_mib",), False),
    ("S4 ready after restart (s)", "s4", ("restart_ready_s",), False),
]


def figure(results, scenario, path):
    value = results.get(scenario) or {}
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) else None


def main():
    base_rev, head_rev, results_dir, out = sys.argv[1:5]
    runs = {"base": [], "head": []}
    machine = None
    for name in sorted(os.listdir(results_dir)):
        side = name.split("-")[0]
        path = os.path.join(results_dir, name, "results.json")
        if side in runs and os.path.exists(path):
            with open(path) as f:
                runs[side].append(json.load(f))
            machine = machine or runs[side][-1].get("machine")
    scenarios = os.environ.get("BENCH_SCENARIOS", "1 2 3").replace(" ", ", ")
    lines = [
        "# Benchmark comparison",
        "",
        f"Base `{base_rev[:12]}` against head ({head_rev}), scenarios {scenarios} of benchmarks/README.md, "
        f"{len(runs['base'])} round(s) each, run one after the other on the same machine by "
        "`benchmarks/compare.sh`. Figures are means over the rounds; this machine's speed drifts by "
        "up to ~50% within minutes (FINDINGS.md), so read changes under about 10% as noise.",
        "",
        "| figure | base | head | change |",
        "|---|---|---|---|",
    ]
    for label, scenario, path, higher_better in FIGURES:
        values = {side: [v for v in (figure(r, scenario, path) for r in rs) if v is not None] for side, rs in runs.items()}
        if not values["base"] and not values["head"]:
            continue  # a scenario this comparison did not run
        if not values["base"] or not values["head"]:
            lines.append(f"| {label} | {values['base'] or 'n/a'} | {values['head'] or 'n/a'} | |")
            continue
        base, head = statistics.mean(values["base"]), statistics.mean(values["head"])
        change = (head - base) / base * 100 if base else 0.0
        better = (change >= 0) == higher_better
        lines.append(f"| {label} | {base:,.1f} | {head:,.1f} | {change:+.1f}%{'' if better or abs(change) < 0.05 else ' (worse)'} |")
    if machine:
        lines += ["", "Machine:", "", "```", json.dumps(machine, indent=1, default=str), "```"]
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()

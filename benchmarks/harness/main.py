"""Entry point of the benchmark suite (called by benchmarks/run.sh after the build).

Settings come from the environment (see benchmarks/README.md); results go to RESULTS.md and, in
full, to <work dir>/results.json.
"""

import datetime
import json
import os
import subprocess
import sys
import time
import traceback

from . import cluster, procstat, replay, report, routing, scenarios
from .nginx import Front, Sink

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)


def env_int(name, default):
    return int(os.environ.get(name, default))


def env_float(name, default):
    return float(os.environ.get(name, default))


def config():
    return {
        "duration": env_int("BENCH_DURATION", 15),
        "warmup": env_int("BENCH_WARMUP", 3),
        "connections": env_int("BENCH_CONNECTIONS", 64),
        "wrk_threads": env_int("BENCH_WRK_THREADS", 2),
        "search_steps": env_int("BENCH_SEARCH_STEPS", 4),
        "drain_max": env_int("BENCH_DRAIN_MAX", 90),
        "fanout_duration": env_int("BENCH_FANOUT_DURATION", 10),
        "fanout_connections": env_int("BENCH_FANOUT_CONNECTIONS", 16),
        "backlog_scheduled": env_int("BENCH_BACKLOG_SCHEDULED", 1_000_000),
        "backlog_dead": env_int("BENCH_BACKLOG_DEAD", 100_000),
        "profile_seconds": env_int("BENCH_PROFILE_SECONDS", 10),
        "micro_min_time": env_float("BENCH_MICRO_MIN_TIME", 0.3),
        "scenarios": os.environ.get("BENCH_SCENARIOS", "micro 1 2 3 4 ordered tenants filters cluster replay profile").split(),
        "keep_data": os.environ.get("BENCH_KEEP_DATA", "0") == "1",
        "nginx_workers": env_int("BENCH_NGINX_WORKERS", 2),
        "ordered_keys": env_int("BENCH_ORDERED_KEYS", 1000),
        "ordered_per_key": env_int("BENCH_ORDERED_PER_KEY", 100),
        "cluster_rounds": env_int("BENCH_CLUSTER_ROUNDS", 2),
        "replay_events": env_int("BENCH_REPLAY_EVENTS", 1_000_000),
        "replay_rate": env_int("BENCH_REPLAY_RATE", 0),
        "replay_target_rate": env_int("BENCH_REPLAY_TARGET_RATE", 1),
        "replay_job_max": env_int("BENCH_REPLAY_JOB_MAX", 900),
    }


def git(*args):
    try:
        return subprocess.run(["git", "-C", REPO_DIR] + list(args), capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def run_micro(build_dir, work_dir, min_time, log):
    binary = os.path.join(build_dir, "benchmarks", "micro_benchmarks")
    if not os.path.exists(binary):
        return {"error": f"{binary} not built"}
    out_file = os.path.join(work_dir, "micro.json")
    env = dict(os.environ, TMPDIR=work_dir)
    done = subprocess.run([binary, f"--benchmark_min_time={min_time}", "--benchmark_format=json",
                           f"--benchmark_out={out_file}", "--benchmark_out_format=json"],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    with open(out_file) as f:
        return json.load(f)


def render_only(results_json, results_path):
    """Rewrites RESULTS.md from a results.json, e.g. after FINDINGS.md was edited."""
    with open(results_json) as f:
        results = json.load(f)
    findings = os.path.join(BENCH_DIR, "FINDINGS.md")
    with open(results_path, "w") as f:
        f.write(report.render(results, findings if os.path.exists(findings) else None))


def main():
    if sys.argv[1] == "--render":
        render_only(sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else os.path.join(BENCH_DIR, "RESULTS.md"))
        return
    build_dir = sys.argv[1]
    results_path = sys.argv[2] if len(sys.argv) > 2 else os.path.join(BENCH_DIR, "RESULTS.md")
    cfg = config()
    work_dir = os.environ.get("BENCH_WORK_DIR", os.path.join(build_dir, "bench-work"))
    os.makedirs(work_dir, exist_ok=True)
    body_file = os.path.join(BENCH_DIR, "payloads", "event_1k.json")
    started = time.monotonic()

    def log(message):
        print(f"[{time.monotonic() - started:6.0f}s] {message}", flush=True)

    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "machine": procstat.machine(work_dir),
        "load_before": procstat.load_average(),
        "config": cfg,
        "build_dir": build_dir,
    }

    sink = Sink(os.path.join(work_dir, "nginx-sink"), workers=cfg["nginx_workers"])
    sink.start()
    front = Front(os.path.join(work_dir, "nginx-front"), sink.port, workers=cfg["nginx_workers"])
    front.start()
    ctx = scenarios.Context(cfg, os.path.join(build_dir, "relayd"), os.path.join(build_dir, "benchmarks", "fill_store"),
                            work_dir, body_file, sink, front, log)

    def step(name, fn):
        log(f"{name} ...")
        results.setdefault("fdatasync_before", {})[name] = procstat.fdatasync_probe(work_dir)
        t = time.monotonic()
        try:
            results[name] = fn()
        except Exception as e:  # one broken scenario must not lose the others' figures
            traceback.print_exc()
            results[name] = {"error": f"{type(e).__name__}: {e}"}
        results.setdefault("timings", {})[name] = time.monotonic() - t
        results.setdefault("fdatasync_after", {})[name] = procstat.fdatasync_probe(work_dir)
        results.setdefault("load_during", {})[name] = procstat.load_average()
        with open(os.path.join(work_dir, "results.json"), "w") as f:
            json.dump(results, f, indent=1, default=str)

    try:
        selected = cfg["scenarios"]
        if "micro" in selected:
            step("micro", lambda: run_micro(build_dir, work_dir, cfg["micro_min_time"], log))
        if "1" in selected:
            step("s1", lambda: scenarios.scenario1(ctx))
        if "2" in selected:
            step("s2", lambda: scenarios.scenario2(ctx))
        if "3" in selected:
            step("s3", lambda: scenarios.scenario3(ctx))
        if "4" in selected:
            best = (results.get("s2") or {}).get("best")
            if not best and os.environ.get("BENCH_BACKLOG_S2_RATE"):
                best = {"target_rate": env_int("BENCH_BACKLOG_S2_RATE", 0)}
            step("s4", lambda: scenarios.scenario4(ctx, best))
        if "ordered" in selected:
            step("ordered", lambda: scenarios.scenario_ordered(ctx))
        if "tenants" in selected:
            step("tenants", lambda: routing.scenario_tenants(ctx))
        if "filters" in selected:
            step("filters", lambda: routing.scenario_filters(ctx))
        if "cluster" in selected:
            step("cluster", lambda: cluster.scenario_cluster(ctx))
        if "replay" in selected:
            step("replay", lambda: replay.scenario_replay(ctx))
        if "profile" in selected:
            step("profile", lambda: scenarios.profile(ctx, cfg["profile_seconds"]))
    finally:
        front.stop()
        sink.stop()

    results["load_after"] = procstat.load_average()
    results["total_s"] = time.monotonic() - started
    with open(os.path.join(work_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    raw_copy = os.path.join(os.path.dirname(os.path.abspath(results_path)), "results.json")
    with open(raw_copy, "w") as f:
        json.dump(results, f, indent=1, default=str)
    render_only(raw_copy, results_path)
    log(f"wrote {results_path} and {raw_copy}")


if __name__ == "__main__":
    main()

"""Running wrk with benchmarks/wrk/post.lua and reading its summary line."""

import json
import os
import subprocess

LUA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "wrk", "post.lua")


def start(url, duration, connections, threads, body_file, auth="", rate=0, keyed=False):
    """Starts wrk; finish() waits for it and reads its summary."""
    threads = max(1, min(threads, connections))
    env = dict(os.environ, BENCH_BODY_FILE=body_file, BENCH_AUTH=auth, BENCH_RATE=str(rate),
               BENCH_THREADS=str(threads), BENCH_KEYED="1" if keyed else "0")
    cmd = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s",
           "-s", LUA, url]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return process, duration, connections, rate


def run(url, duration, connections, threads, body_file, auth="", rate=0, keyed=False):
    """Runs wrk and returns its summary: requests, rps, errors, latency percentiles (ms)."""
    return finish(start(url, duration, connections, threads, body_file, auth, rate, keyed))


def finish(started):
    process, duration, connections, rate = started
    stdout, stderr = process.communicate(timeout=duration + 60)
    out = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    line = next((l for l in out.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary: {out.stdout}\n{out.stderr}")
    s = json.loads(line[len("BENCH_JSON "):])
    seconds = s["duration_us"] / 1e6
    errors = s["errors_connect"] + s["errors_read"] + s["errors_write"] + s["errors_status"] + s["errors_timeout"]
    return {
        "requests": s["requests"],
        "seconds": seconds,
        "rps": s["requests"] / seconds if seconds > 0 else 0.0,
        "errors": errors,
        "non_2xx": s["errors_status"],
        "p50_ms": s["lat_p50_us"] / 1000.0,
        "p90_ms": s["lat_p90_us"] / 1000.0,
        "p99_ms": s["lat_p99_us"] / 1000.0,
        "max_ms": s["lat_max_us"] / 1000.0,
        "mean_ms": s["lat_mean_us"] / 1000.0,
        "connections": connections,
        "target_rate": rate,
    }

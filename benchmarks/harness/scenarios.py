"""The scenarios of issue 5. Each one runs relayd and its nginx baseline in the same invocation
and returns plain dicts that report.py turns into RESULTS.md.

Shared conventions:
  - relayd runs from a fresh data directory per scenario unless said otherwise;
  - "outstanding" deliveries are created - succeeded - dead, from relayd's counters;
  - every wrk figure is the achieved rate, never the requested one.
"""

import json
import os
import re
import shutil
import subprocess
import time

from . import prom, procstat, wrk
from .relayd import INGEST_KEY, Relayd
from .sampler import Sampler


class Context:
    def __init__(self, cfg, relayd_bin, fill_bin, work_dir, body_file, sink, front, log):
        self.cfg = cfg
        self.relayd_bin = relayd_bin
        self.fill_bin = fill_bin
        self.work_dir = work_dir
        self.body_file = body_file
        self.sink = sink
        self.front = front
        self.log = log

    def data_dir(self, name):
        path = os.path.join(self.work_dir, "data", name)
        shutil.rmtree(path, ignore_errors=True)
        return path

    def relayd(self, name, durability="fsync", data_dir=None):
        return Relayd(self.relayd_bin, data_dir or self.data_dir(name), os.path.join(self.work_dir, f"relayd-{name}.log"),
                      durability)

    def wrk(self, url, duration=None, connections=None, rate=0, auth=INGEST_KEY, body_file=None):
        return wrk.run(url, duration or self.cfg["duration"], connections or self.cfg["connections"],
                       self.cfg["wrk_threads"], body_file or self.body_file, auth=auth, rate=rate)


def percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))
    return values[k]


def wait_drained(relay, limit_s, target=0):
    """Waits until the backlog is down to `target`; returns (seconds waited, drained?)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        if relay.outstanding() <= target:
            return time.monotonic() - started, True
        time.sleep(0.1)
    return time.monotonic() - started, False


# ---------------------------------------------------------------- scenario 1: durable ingest

def measure_ingest(ctx, relay, warmup=True, body_file=None, scrape=True):
    """Unthrottled ingest of the 1 KiB event with 64 connections; relayd's CPU and, with
    `scrape`, its commits from /metrics."""
    if warmup and ctx.cfg["warmup"] > 0:
        ctx.wrk(relay.events_url, duration=ctx.cfg["warmup"], body_file=body_file)
    c0 = procstat.cpu_seconds(relay.pid)
    m0 = relay.metrics() if scrape else None
    r = ctx.wrk(relay.events_url, body_file=body_file)
    c1 = procstat.cpu_seconds(relay.pid)
    r["cpu_s"] = c1 - c0
    r["cpu_ms_per_1000"] = 1000 * 1000 * (c1 - c0) / r["requests"] if r["requests"] else None
    r["rss_mib"] = procstat.status_kib(relay.pid, "VmRSS") / 1024
    if not scrape:
        return r
    m1 = relay.metrics()
    r["commit_batch_mean"] = prom.histogram_mean(m0, m1, "relay_storage_commit_batch_size")
    r["commit_p50_ms"] = _ms(prom.histogram_quantile(m0, m1, "relay_storage_commit_duration_seconds", 0.5))
    r["commit_p99_ms"] = _ms(prom.histogram_quantile(m0, m1, "relay_storage_commit_duration_seconds", 0.99))
    r["deliveries_created"] = (prom.total(m1, "relay_deliveries_created_total")
                               - prom.total(m0, "relay_deliveries_created_total"))
    return r


def _ms(seconds):
    return None if seconds is None else seconds * 1000


def nginx_ingest_baseline(ctx):
    c0 = procstat.tree_cpu_seconds(ctx.front.pid)
    r = ctx.wrk(ctx.front.url(ctx.front.ingest_port), auth="")
    r["cpu_ms_per_1000"] = 1000 * 1000 * (procstat.tree_cpu_seconds(ctx.front.pid) - c0) / max(1, r["requests"])
    return r


def scenario1(ctx):
    """1a: deliveries written and held (subscription rate-limited to 1/s); 1b: the subscription
    disabled (the spec's disabled subscription matches nothing new: events only); then the held
    deliveries are released and their drain measures delivery-only CPU (scenario 5)."""
    out = {}
    out["nginx"] = nginx_ingest_baseline(ctx)
    relay = ctx.relayd("s1")
    out["ready_s"] = relay.start()
    try:
        sub = relay.subscribe(ctx.sink.url, rate_limit_per_second=1)
        out["held"] = measure_ingest(ctx, relay)
        held_deliveries = relay.outstanding()
        out["held_deliveries"] = held_deliveries
        out["disk_bytes"] = procstat.du_bytes(relay.data_dir)
        out["disk_bytes_per_held_delivery"] = out["disk_bytes"] / max(1, held_deliveries)

        relay.api("PATCH", f"/v1/subscriptions/{sub['id']}", {"enabled": False})
        out["disabled"] = measure_ingest(ctx, relay, warmup=False)

        # Release the held deliveries: delivery only, no ingest (scenario 5's CPU figure).
        m0, c0, t0 = relay.metrics(), procstat.cpu_seconds(relay.pid), time.monotonic()
        relay.api("PATCH", f"/v1/subscriptions/{sub['id']}", {"enabled": True, "rate_limit_per_second": 0})
        waited, drained = wait_drained(relay, ctx.cfg["drain_max"])
        m1, c1 = relay.metrics(), procstat.cpu_seconds(relay.pid)
        delivered = relay.succeeded(m1) - relay.succeeded(m0)
        out["drain"] = {
            "deliveries": delivered,
            "seconds": time.monotonic() - t0,
            "drained": drained,
            "rate": delivered / max(1e-9, time.monotonic() - t0),
            "cpu_ms_per_1000": 1000 * 1000 * (c1 - c0) / max(1, delivered),
        }
    finally:
        relay.stop()
    # The same load with --durability buffered: what ingest costs without waiting for the disk.
    relay = ctx.relayd("s1-buffered", durability="buffered")
    relay.start()
    try:
        relay.subscribe(ctx.sink.url, rate_limit_per_second=1)
        out["buffered"] = measure_ingest(ctx, relay)
    finally:
        relay.stop()
    out["nginx_after"] = nginx_ingest_baseline(ctx)
    return out


# ------------------------------------------------------ scenario 2: sustained ingest + delivery

def paced_run(ctx, relay, rate, duration=None):
    """Ingest at a fixed rate while one subscriber receives; is the backlog flat?"""
    offset = ctx.sink.log_offset()
    m0, c0 = relay.metrics(), procstat.cpu_seconds(relay.pid)
    with Sampler(relay) as sampler:
        r = ctx.wrk(relay.events_url, duration=duration, rate=rate)
    m1, c1 = relay.metrics(), procstat.cpu_seconds(relay.pid)
    delivered = relay.succeeded(m1) - relay.succeeded(m0)
    slope = sampler.backlog_slope()
    final = relay.outstanding(m1)
    r["deliveries_per_s"] = delivered / r["seconds"]
    r["backlog_slope_per_s"] = slope
    r["backlog_end"] = final
    # Flat: the backlog grows by less than 2% of the ingest rate per second and holds less than
    # one second of traffic at the end (what is in flight or just acknowledged).
    r["flat"] = r["errors"] == 0 and slope <= 0.02 * r["rps"] and final <= max(r["rps"], 1000)
    r["cpu_ms_per_1000_deliveries"] = 1000 * 1000 * (c1 - c0) / max(1, delivered)
    time.sleep(1.5)  # the sink flushes its log every second
    latencies = ctx.sink.delivery_latencies_ms(offset)
    r["e2e_samples"] = len(latencies)
    r["e2e_p50_ms"] = percentile(latencies, 0.50)
    r["e2e_p99_ms"] = percentile(latencies, 0.99)
    m2 = relay.metrics()
    r["hist_p50_ms"] = _ms(prom.histogram_quantile(m0, m2, "relay_delivery_latency_seconds", 0.5))
    r["hist_p99_ms"] = _ms(prom.histogram_quantile(m0, m2, "relay_delivery_latency_seconds", 0.99))
    r["max_rss_mib"] = sampler.max_rss_kib() / 1024
    return r


def sustained_search(ctx, relay, start_rate, max_rate, steps):
    """A few fixed-rate runs: up while flat, bisect once one is not. Returns (runs, best)."""
    runs, lo, hi = [], None, None
    rate = start_rate
    for _ in range(steps):
        r = paced_run(ctx, relay, int(rate))
        runs.append(r)
        ctx.log(f"    paced {int(rate)}/s -> ingest {r['rps']:.0f}/s, delivered {r['deliveries_per_s']:.0f}/s, "
                f"slope {r['backlog_slope_per_s']:.0f}/s, end backlog {r['backlog_end']:.0f}, flat={r['flat']}")
        wait_drained(relay, ctx.cfg["drain_max"])
        if r["flat"]:
            lo = rate
            if r["rps"] < 0.95 * rate:
                break  # the load generator could not reach the rate: nothing higher to try
            nxt = (rate + hi) / 2 if hi else rate * 1.15
            if not hi and nxt > max_rate * 1.05:
                break
        else:
            hi = rate
            nxt = (rate + lo) / 2 if lo else rate * 0.7
        if lo and hi and (hi - lo) / hi < 0.08:
            break
        rate = nxt
    flat = [r for r in runs if r["flat"]]
    best = max(flat, key=lambda r: r["rps"]) if flat else None
    return runs, best


def scenario2(ctx):
    out = {}
    relay = ctx.relayd("s2")
    out["ready_s"] = relay.start()
    try:
        relay.subscribe(ctx.sink.url)
        if ctx.cfg["warmup"] > 0:
            ctx.wrk(relay.events_url, duration=ctx.cfg["warmup"], rate=2000)
            wait_drained(relay, ctx.cfg["drain_max"])
        # Unthrottled: how fast ingest goes while delivering, and how fast delivery keeps up.
        free = paced_run(ctx, relay, 0)
        out["unthrottled"] = free
        ctx.log(f"    unthrottled: ingest {free['rps']:.0f}/s, delivered {free['deliveries_per_s']:.0f}/s, "
                f"end backlog {free['backlog_end']:.0f}")
        wait_drained(relay, ctx.cfg["drain_max"])
        cap = free["rps"] if free["flat"] else min(free["rps"], free["deliveries_per_s"])
        out["runs"], best = sustained_search(ctx, relay, 0.9 * cap, free["rps"], ctx.cfg["search_steps"])
        # Unthrottled and still flat: ingest, not delivery, is the limit, and that run counts.
        candidates = [r for r in [best, free if free["flat"] else None] if r]
        out["best"] = max(candidates, key=lambda r: r["rps"]) if candidates else None
    finally:
        relay.stop()
    # Baseline: nginx forwarding each POST to the sink (a relay without a disk).
    c0, s0 = procstat.tree_cpu_seconds(ctx.front.pid), procstat.tree_cpu_seconds(ctx.sink.pid)
    r = ctx.wrk(ctx.front.url(ctx.front.proxy_port), auth="")
    r["cpu_ms_per_1000"] = 1000 * 1000 * (procstat.tree_cpu_seconds(ctx.front.pid) - c0) / max(1, r["requests"])
    r["sink_cpu_ms_per_1000"] = 1000 * 1000 * (procstat.tree_cpu_seconds(ctx.sink.pid) - s0) / max(1, r["requests"])
    out["nginx_proxy"] = r
    return out


# ---------------------------------------------------------------- scenario 3: fan-out to 10

def scenario3(ctx):
    """Ten subscriptions to the sink. First their deliveries are held (rate limit 1/s) while
    events are ingested, then all ten are released at once: the drain is delivery capacity with
    ten subscribers and nothing else running. Then ingest and fan-out run together until empty."""
    out = {}
    relay = ctx.relayd("s3")
    out["ready_s"] = relay.start()
    try:
        subs = [relay.subscribe(f"{ctx.sink.url}?subscriber={i}", rate_limit_per_second=1) for i in range(10)]
        out["held_ingest"] = ctx.wrk(relay.events_url, duration=ctx.cfg["fanout_duration"])
        backlog = relay.outstanding()
        m0, c0, t0 = relay.metrics(), procstat.cpu_seconds(relay.pid), time.monotonic()
        with Sampler(relay) as sampler:
            for sub in subs:
                relay.api("PATCH", f"/v1/subscriptions/{sub['id']}", {"rate_limit_per_second": 0})
            waited, drained = wait_drained(relay, ctx.cfg["drain_max"])
        m1, c1, t1 = relay.metrics(), procstat.cpu_seconds(relay.pid), time.monotonic()
        delivered = relay.succeeded(m1) - relay.succeeded(m0)
        out["drain"] = {
            "backlog": backlog,
            "deliveries": delivered,
            "seconds": t1 - t0,
            "drained": drained,
            "deliveries_per_s": delivered / (t1 - t0),
            "cpu_ms_per_1000_deliveries": 1000 * 1000 * (c1 - c0) / max(1, delivered),
            "max_rss_mib": sampler.max_rss_kib() / 1024,
        }
        ctx.log(f"    drain of {backlog:.0f} held deliveries to 10 subscribers: {out['drain']['deliveries_per_s']:.0f}/s")

        m0, c0, t0 = relay.metrics(), procstat.cpu_seconds(relay.pid), time.monotonic()
        r = ctx.wrk(relay.events_url, duration=ctx.cfg["fanout_duration"], connections=ctx.cfg["fanout_connections"])
        m_mid, t_mid = relay.metrics(), time.monotonic()
        waited, drained = wait_drained(relay, ctx.cfg["drain_max"])
        m1, c1, t1 = relay.metrics(), procstat.cpu_seconds(relay.pid), time.monotonic()
        total = relay.succeeded(m1) - relay.succeeded(m0)
        out["concurrent"] = {
            "ingest": r,
            "deliveries": total,
            "drained": drained,
            "seconds": t1 - t0,
            "deliveries_per_s": total / (t1 - t0),
            "during_ingest_per_s": (relay.succeeded(m_mid) - relay.succeeded(m0)) / (t_mid - t0),
            "cpu_ms_per_1000_deliveries": 1000 * 1000 * (c1 - c0) / max(1, total),
            "latency_p50_ms": _ms(prom.histogram_quantile(m0, m1, "relay_delivery_latency_seconds", 0.5)),
            "latency_p99_ms": _ms(prom.histogram_quantile(m0, m1, "relay_delivery_latency_seconds", 0.99)),
        }
        ctx.log(f"    ingest {r['rps']:.0f} events/s with fan-out: {out['concurrent']['deliveries_per_s']:.0f} deliveries/s")
    finally:
        relay.stop()
    # Baseline: wrk POSTing the same body straight to the sink, the most deliveries per second
    # that any HTTP client on this machine gets accepted.
    s0 = procstat.tree_cpu_seconds(ctx.sink.pid)
    b = ctx.wrk(ctx.sink.url, auth="")
    b["sink_cpu_ms_per_1000"] = 1000 * 1000 * (procstat.tree_cpu_seconds(ctx.sink.pid) - s0) / max(1, b["requests"])
    out["nginx_direct"] = b
    return out


# ----------------------------------------------------------------- scenario 4: large backlog

def fill(ctx, data_dir, sink_url=None, scheduled=None, dead=None, stored=None):
    """fill_store: scenario 4's backlog by default (BENCH_BACKLOG_SCHEDULED / _DEAD), or the
    counts given; `stored`: events without deliveries too (the replay scenario's)."""
    scheduled = ctx.cfg["backlog_scheduled"] if scheduled is None else scheduled
    dead = ctx.cfg["backlog_dead"] if dead is None else dead
    cmd = [ctx.fill_bin, "--data-dir", data_dir, "--payload", ctx.body_file, "--sink-url", sink_url or ctx.sink.url,
           "--scheduled", str(scheduled), "--dead", str(dead)]
    if stored is not None:
        cmd += ["--stored", str(stored)]
    started = time.monotonic()
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"fill_store failed: {done.stderr}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    info["wall_s"] = time.monotonic() - started
    return info


def wait_counts(relay, expected, limit_s=60):
    """Seconds until relay_deliveries{state="scheduled"} shows the backlog (the scheduler has
    counted what is on disk)."""
    started = time.monotonic()
    while time.monotonic() - started < limit_s:
        m = relay.metrics()
        if prom.total(m, "relay_deliveries", state="scheduled") >= expected:
            return time.monotonic() - started
        time.sleep(0.05)
    return None


def scenario4(ctx, empty_s2_best):
    out = {}
    data_dir = ctx.data_dir("s4")
    ctx.log(f"    filling {ctx.cfg['backlog_scheduled']} scheduled + {ctx.cfg['backlog_dead']} dead deliveries")
    out["fill"] = fill(ctx, data_dir)
    backlog = ctx.cfg["backlog_scheduled"] + ctx.cfg["backlog_dead"]
    out["disk_bytes"] = procstat.du_bytes(data_dir)
    out["disk_bytes_per_delivery"] = out["disk_bytes"] / max(1, backlog)
    ctx.log(f"    filled in {out['fill']['wall_s']:.0f}s, {out['disk_bytes'] / 2**20:.0f} MiB on disk")

    relay = ctx.relayd("s4", data_dir=data_dir)
    try:
        out["first_ready_s"] = relay.start()
        out["first_counted_s"] = wait_counts(relay, ctx.cfg["backlog_scheduled"])
        out["rss_after_start_mib"] = procstat.status_kib(relay.pid, "VmRSS") / 1024

        # Scenario 2 again, the way its best run went on the empty store: unthrottled when that
        # was flat (ingest was the limit), else at the same fixed rate, then at 80% of it.
        sub = relay.subscribe(ctx.sink.url)
        runs = []
        target = (empty_s2_best or {}).get("target_rate")
        rates = [0] if target == 0 else [int(target), int(0.8 * target)] if target else []
        for rate in rates:
            r = paced_run(ctx, relay, rate)
            runs.append(r)
            ctx.log(f"    {'unthrottled' if rate == 0 else f'paced {rate}/s'} -> ingest {r['rps']:.0f}/s, "
                    f"delivered {r['deliveries_per_s']:.0f}/s, flat={r['flat']}")
            wait_drained(relay, ctx.cfg["drain_max"])
            if r["flat"]:
                break
        out["s2_runs"] = runs
        flat = [r for r in runs if r["flat"]]
        out["s2_best"] = max(flat, key=lambda r: r["rps"]) if flat else None

        # Scenario 1 again: the scenario 2 subscription stops matching, a held one takes over.
        relay.api("PATCH", f"/v1/subscriptions/{sub['id']}", {"enabled": False})
        relay.subscribe(ctx.sink.url, rate_limit_per_second=1)
        out["s1"] = measure_ingest(ctx, relay)
        out["peak_rss_mib"] = procstat.status_kib(relay.pid, "VmHWM") / 1024
    finally:
        relay.stop()

    # Restart on everything that is now on disk.
    relay = ctx.relayd("s4", data_dir=data_dir)
    try:
        out["restart_ready_s"] = relay.start()
        out["restart_counted_s"] = wait_counts(relay, ctx.cfg["backlog_scheduled"])
        time.sleep(2)
        out["rss_after_restart_mib"] = procstat.status_kib(relay.pid, "VmRSS") / 1024
        m = relay.metrics()
        out["restart_gauges"] = {s: prom.total(m, "relay_deliveries", state=s)
                                 for s in ("pending", "scheduled", "in_flight", "dead")}
    finally:
        relay.stop()
    out["disk_bytes_end"] = procstat.du_bytes(data_dir)
    if not ctx.cfg["keep_data"]:
        shutil.rmtree(data_dir, ignore_errors=True)
    return out


# ------------------------------------------------------------------------------ profiling

def _perf_record(pid, seconds, perf_data):
    # cpu-clock: this VM has no hardware counters. DWARF call graphs: the Release build keeps no
    # frame pointers, and inclusive (children) figures need the callers.
    return subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "499", "--call-graph", "dwarf,32768",
                             "-p", str(pid), "-o", perf_data, "--", "sleep", str(seconds)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _perf_tables(perf_data):
    def report(*args):
        cmd = ["perf", "report", "-i", perf_data, "--stdio", "-g", "none"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True).stdout

    def table(text, limit, keep=None):
        rows, seen = [], set()
        for line in text.splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            line = _short_symbol(re.sub(r"\s+-\s+-\s*$", "", line).rstrip())
            if keep and not re.search(keep, line):
                continue
            if line in seen:
                continue
            seen.add(line)
            rows.append(line[:160])
        return "\n".join(rows[:limit])

    return {
        "by_thread": table(report("--no-children", "--sort", "pid"), 8),
        "by_dso": table(report("--no-children", "--sort", "dso"), 10),
        "self": table(report("--no-children", "--sort", "symbol", "--percent-limit", "0.8"), 25),
        # Inclusive time of relay's own functions and the libraries' entry points: who pays.
        "inclusive": table(report("--children", "--sort", "symbol", "--percent-limit", "2"), 40,
                           keep=r"\] (relay::|nlohmann::basic_json<>::(parse|dump|~|json_value::destroy)|"
                                r"nlohmann::detail::(parser|serializer|binary_writer|binary_reader)<>::\w+$|"
                                r"rocksdb::DBImpl::Write$|curl_\w+$|__GI___libc_malloc|_int_malloc$|"
                                r"malloc_consolidate$|_int_free$|do_syscall_64$)"),
    }


def _short_symbol(line):
    """Drops template arguments and nlohmann's ABI namespace so that symbols fit on a line."""
    line = line.replace("nlohmann::json_abi_v3_11_2::", "nlohmann::").replace("[abi:cxx11]", "")
    out, depth = [], 0
    for i, ch in enumerate(line):
        if ch == "<" and not line.startswith("operator", max(0, i - 8)):
            if depth == 0:
                out.append("<")
            depth += 1
        elif ch == ">" and depth > 0:
            depth -= 1
            if depth == 0:
                out.append(">")
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def profile(ctx, seconds):
    """perf record of relayd on the two hot paths: unthrottled durable ingest with deliveries held
    (scenario 1's load), and delivery alone (the held deliveries released to the sink)."""
    if shutil.which("perf") is None:
        return {"error": "perf not installed (Debian package linux-perf)"}
    out = {"seconds": seconds}
    relay = ctx.relayd("profile")
    relay.start()
    try:
        sub = relay.subscribe(ctx.sink.url, rate_limit_per_second=1)
        ctx.wrk(relay.events_url, duration=2)
        data = os.path.join(ctx.work_dir, "perf-ingest.data")
        c0 = procstat.cpu_seconds(relay.pid)
        perf = _perf_record(relay.pid, seconds, data)
        r = ctx.wrk(relay.events_url, duration=seconds + 1)
        perf.wait()
        out["ingest"] = dict(_perf_tables(data), rps=r["rps"], data=data,
                             cpu_us_per_event=1e6 * (procstat.cpu_seconds(relay.pid) - c0) / max(1, r["requests"]))

        data = os.path.join(ctx.work_dir, "perf-delivery.data")
        m0, c0 = relay.metrics(), procstat.cpu_seconds(relay.pid)
        perf = _perf_record(relay.pid, seconds, data)
        relay.api("PATCH", f"/v1/subscriptions/{sub['id']}", {"rate_limit_per_second": 0})
        perf.wait()
        delivered = relay.succeeded() - relay.succeeded(m0)
        out["delivery"] = dict(_perf_tables(data), rate=delivered / seconds, data=data,
                               cpu_us_per_delivery=1e6 * (procstat.cpu_seconds(relay.pid) - c0) / max(1, delivered))
    finally:
        relay.stop()
    return out


# ------------------------------------------ ordered delivery: ordering keys (spec section 6)

def _publish_keyed(relay, keys, per_key):
    """Publishes `per_key` rounds of one event per key (batches of up to 1,000), so that each
    key's events are ingested in round order. Returns {event id: (key, round)}."""
    events = {}
    for n in range(per_key):
        for first in range(0, keys, 1000):
            batch = [{"type": "bench.ordered", "payload": {"k": f"key-{k}", "n": n}, "ordering_key": f"key-{k}"}
                     for k in range(first, min(keys, first + 1000))]
            answer = relay.api("POST", "/v1/events/batch", {"events": batch})
            for event, result in zip(batch, answer["results"]):
                if "id" not in result:
                    raise RuntimeError(f"batch ingest refused an event: {result}")
                events[result["id"]] = (event["ordering_key"], n)
    return events


def _order_check(ctx, offset, events):
    """From the sink's log: per key, is each event's first arrival no earlier than that of the
    key's previous event (event-id order)? The log has millisecond resolution, so two arrivals in
    the same millisecond count as in order."""
    first = {}
    with open(ctx.sink.log) as f:
        f.seek(offset)
        for line in f:
            parts = line.split()
            if len(parts) < 3 or parts[2] not in events:
                continue
            first[parts[2]] = min(first.get(parts[2], float("inf")), float(parts[0]))
    by_key = {}
    for event_id in sorted(events):  # ids sort in creation order
        by_key.setdefault(events[event_id][0], []).append(event_id)
    out_of_order = 0
    keys_out_of_order = 0
    for ids in by_key.values():
        bad = sum(1 for a, b in zip(ids, ids[1:]) if a in first and b in first and first[b] < first[a])
        out_of_order += bad
        keys_out_of_order += 1 if bad else 0
    return {"arrived": len(first), "missing": len(events) - len(first), "out_of_order_pairs": out_of_order,
            "keys_out_of_order": keys_out_of_order, "in_order": out_of_order == 0 and len(first) == len(events)}


def scenario_ordered(ctx):
    """1,000 keys x 100 events to one subscription, held (rate limit 1/s) while published, then
    released: deliveries/s of the drain and the in-order check at the sink, with `ordering: "key"`
    and, as the baseline, the same load to a subscription without ordering."""
    keys, per_key = ctx.cfg["ordered_keys"], ctx.cfg["ordered_per_key"]
    out = {"keys": keys, "per_key": per_key}
    for mode in ("unordered", "ordered"):
        relay = ctx.relayd(f"ordered-{mode}")
        relay.start()
        try:
            sub = relay.subscribe(ctx.sink.url, event_types=["bench.*"], rate_limit_per_second=1,
                                  ordering="key" if mode == "ordered" else "none")
            offset = ctx.sink.log_offset()  # a delivery a second goes out while publishing
            t = time.monotonic()
            events = _publish_keyed(relay, keys, per_key)
            publish_s = time.monotonic() - t
            m0, c0, t0 = relay.metrics(), procstat.cpu_seconds(relay.pid), time.monotonic()
            relay.api("PATCH", f"/v1/subscriptions/{sub['id']}", {"rate_limit_per_second": 0})
            waited, drained = wait_drained(relay, ctx.cfg["drain_max"] * 3)
            seconds = time.monotonic() - t0
            m1, c1 = relay.metrics(), procstat.cpu_seconds(relay.pid)
            delivered = relay.succeeded(m1) - relay.succeeded(m0)
            time.sleep(1.5)  # the sink flushes its log every second
            out[mode] = {
                "events": len(events),
                "publish_s": publish_s,
                "deliveries": delivered,
                "seconds": seconds,
                "drained": drained,
                "rate": delivered / max(1e-9, seconds),
                "cpu_ms_per_1000": 1000 * 1000 * (c1 - c0) / max(1, delivered),
                "order": _order_check(ctx, offset, events),
            }
            ctx.log(f"ordered delivery, {mode}: {out[mode]['rate']:.0f} deliveries/s, {out[mode]['order']}")
        finally:
            relay.stop()
    return out

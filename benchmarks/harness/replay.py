"""The replay scenario of issue 15 (spec section 6, "Replay and jobs"): "a job over a million
stored events keeps ingest within 80% of its idle figure and healthy deliveries flowing".

fill_store writes BENCH_REPLAY_EVENTS (1,000,000) events of type backlog.stored, delivered to
nobody, and its `backlog` subscription. relayd starts on that store; the `backlog` subscription is
limited to BENCH_REPLAY_TARGET_RATE deliveries/s (1: the replayed deliveries are written but held,
as scenario 1 holds its deliveries, so the job's cost is its scan and its writes, not a million
extra webhooks). A second subscription to the sink is scenario 2's healthy one. Then, in the same
invocation, scenario 2's load (wrk, 64 connections, unthrottled unless BENCH_REPLAY_RATE is set)
runs three times:

  1. idle: no job;
  2. with a replay job of the backlog subscription over exactly the stored events, started just
     before wrk;
  3. idle again, once the job has finished (drift of the shared machine; the store now also
     holds the million held deliveries the job created).

Reported: ingest events/s of each run and the job run's ratio to the idle runs (the mean of both
is the baseline, as for the routing scenarios; target >= 80%), deliveries/s of the healthy
subscription in each run, how far the job got during the measured run and how long it took in
all (its own created_at / finished_at).
"""

import datetime
import shutil
import statistics
import time

from . import procstat, prom, scenarios
from .sampler import Poller

BACKLOG_DESCRIPTION = "benchmark backlog (fill_store)"


def _rfc3339(ms):
    t = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def _parse_rfc3339(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class _Healthy:
    """Scenario 2's subscription: every event ingested through the API matches it (the backlog
    subscription takes backlog.* only), so its backlog is ingested - succeeded - dead."""

    def __init__(self, relay, sub_id):
        self.relay = relay
        self.sub_id = sub_id

    def succeeded(self, m):
        return prom.total(m, "relay_deliveries_succeeded_total", subscription=self.sub_id)

    def outstanding(self, m=None):
        m = m if m is not None else self.relay.metrics()
        return (prom.total(m, "relay_events_ingested_total") - self.succeeded(m)
                - prom.total(m, "relay_deliveries_dead_total", subscription=self.sub_id))

    def wait_drained(self, limit_s):
        started = time.monotonic()
        while time.monotonic() - started < limit_s:
            if self.outstanding() <= 0:
                return True
            time.sleep(0.1)
        return False


def _job_sample(relay, job_id):
    """The job's progress, polled every 0.5 s while it runs: (matched, created, state)."""
    j = relay.api("GET", f"/v1/jobs/{job_id}")
    return j["matched"], j["created"], j["state"]


def _measure(ctx, relay, healthy, rate):
    """Scenario 2's load once: ingest, the healthy subscription's deliveries, relayd's CPU."""
    offset = ctx.sink.log_offset()
    m0, c0 = relay.metrics(), procstat.cpu_seconds(relay.pid)
    t0 = time.monotonic()
    r = ctx.wrk(relay.events_url, rate=rate)
    t1 = time.monotonic()
    m1, c1 = relay.metrics(), procstat.cpu_seconds(relay.pid)
    delivered = healthy.succeeded(m1) - healthy.succeeded(m0)
    r["window"] = (t0, t1)
    r["deliveries_per_s"] = delivered / r["seconds"]
    r["healthy_backlog_end"] = healthy.outstanding(m1)
    r["cpu_ms_per_1000_events"] = 1000 * 1000 * (c1 - c0) / max(1, r["requests"])
    r["commit_batch_mean"] = prom.histogram_mean(m0, m1, "relay_storage_commit_batch_size")
    p99 = prom.histogram_quantile(m0, m1, "relay_storage_commit_duration_seconds", 0.99)
    r["commit_p99_ms"] = None if p99 is None else 1000 * p99
    r["rss_mib"] = procstat.status_kib(relay.pid, "VmRSS") / 1024
    time.sleep(1.5)  # the sink flushes its log every second
    latencies = ctx.sink.delivery_latencies_ms(offset)
    r["e2e_p50_ms"] = _percentile(latencies, 0.50)
    r["e2e_p99_ms"] = _percentile(latencies, 0.99)
    return r


def _percentile(values, q):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))]


def _progress(samples, since_s, until_s):
    """(matched at the first sample at or after since_s, at the last one at or before until_s)."""
    inside = [s for s in samples if since_s <= s[0] <= until_s]
    # A job that finished during the run: its rate up to the first sample that saw it finished.
    ended = next((i for i, s in enumerate(inside) if s[3] != "running"), None)
    if ended is not None:
        inside = inside[:ended + 1]
    if len(inside) < 2:
        return None
    first, last = inside[0], inside[-1]
    return {"from_matched": first[1], "to_matched": last[1], "seconds": last[0] - first[0],
            "events_per_s": (last[1] - first[1]) / max(1e-9, last[0] - first[0]),
            "state_at_end": last[3]}


def scenario_replay(ctx):
    cfg = ctx.cfg
    count = cfg["replay_events"]
    rate = cfg["replay_rate"]
    out = {"events": count, "rate": rate, "target_rate_limit": cfg["replay_target_rate"]}
    data_dir = ctx.data_dir("replay")
    ctx.log(f"    storing {count} events without deliveries")
    out["fill"] = scenarios.fill(ctx, data_dir, sink_url=f"{ctx.sink.url}?replay=1", scheduled=0, dead=0, stored=count)
    out["disk_bytes"] = procstat.du_bytes(data_dir)
    ctx.log(f"    stored in {out['fill']['wall_s']:.0f}s, {out['disk_bytes'] / 2**20:.0f} MiB on disk")

    relay = ctx.relayd("replay", data_dir=data_dir)
    try:
        out["ready_s"] = relay.start()
        backlog = next(s for s in relay.api("GET", "/v1/subscriptions?limit=10")["items"]
                       if s.get("description") == BACKLOG_DESCRIPTION)
        relay.api("PATCH", f"/v1/subscriptions/{backlog['id']}", {"rate_limit_per_second": cfg["replay_target_rate"]})
        healthy = _Healthy(relay, relay.subscribe(ctx.sink.url)["id"])
        if cfg["warmup"] > 0:
            ctx.wrk(relay.events_url, duration=cfg["warmup"], rate=2000)
        healthy.wait_drained(cfg["drain_max"])

        out["load_before_idle"] = procstat.load_average()
        out["idle"] = _measure(ctx, relay, healthy, rate)
        out["idle"].pop("window")
        ctx.log(f"    idle: ingest {out['idle']['rps']:.0f}/s, healthy deliveries {out['idle']['deliveries_per_s']:.0f}/s")
        healthy.wait_drained(cfg["drain_max"])

        out["load_before_job"] = procstat.load_average()
        body = {"since": _rfc3339(out["fill"]["stored_since"]), "until": _rfc3339(out["fill"]["stored_until"])}
        job = relay.api("POST", f"/v1/subscriptions/{backlog['id']}/replay", body)["job"]
        out["job_id"] = job["id"]
        with Poller(lambda: _job_sample(relay, job["id"])) as watch:
            r = _measure(ctx, relay, healthy, rate)
            t0, t1 = r.pop("window")
            r["job"] = _progress(watch.samples, t0 - watch.started, t1 - watch.started)
            out["with_job"] = r
            ctx.log(f"    with the job: ingest {r['rps']:.0f}/s, healthy deliveries {r['deliveries_per_s']:.0f}/s, "
                    f"job {r['job']}")
            healthy.wait_drained(cfg["drain_max"])
            finished = None
            deadline = time.monotonic() + cfg["replay_job_max"]
            while time.monotonic() < deadline:
                finished = relay.api("GET", f"/v1/jobs/{job['id']}")
                if finished["state"] != "running":
                    break
                time.sleep(0.5)
            out["job_samples"] = watch.samples[::10]  # one every 5 s: the progress, not every poll
        out["job"] = finished
        created, done_at = _parse_rfc3339(finished.get("created_at")), _parse_rfc3339(finished.get("finished_at"))
        out["job_seconds"] = None if done_at is None else done_at - created
        ctx.log(f"    job {finished['state']}: matched {finished['matched']}, created {finished['created']}, "
                f"{out['job_seconds']} s")

        out["load_before_idle_after"] = procstat.load_average()
        out["idle_after"] = _measure(ctx, relay, healthy, rate)
        out["idle_after"].pop("window")
        ctx.log(f"    idle again: ingest {out['idle_after']['rps']:.0f}/s, "
                f"healthy deliveries {out['idle_after']['deliveries_per_s']:.0f}/s")
        out["peak_rss_mib"] = procstat.status_kib(relay.pid, "VmHWM") / 1024
    finally:
        relay.stop()
    idle_rates = [x["rps"] for x in (out.get("idle"), out.get("idle_after")) if x]
    out["idle_mean_rps"] = statistics.mean(idle_rates) if idle_rates else None
    idle_deliveries = [x["deliveries_per_s"] for x in (out.get("idle"), out.get("idle_after")) if x]
    out["idle_mean_deliveries_per_s"] = statistics.mean(idle_deliveries) if idle_deliveries else None
    if out["idle_mean_rps"]:
        out["ratio"] = out["with_job"]["rps"] / out["idle_mean_rps"]
        out["ratio_first_idle"] = out["with_job"]["rps"] / out["idle"]["rps"]
    out["disk_bytes_end"] = procstat.du_bytes(data_dir)
    if not cfg["keep_data"]:
        shutil.rmtree(data_dir, ignore_errors=True)
    return out

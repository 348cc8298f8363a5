"""The cluster scenario of issue 14 (spec section 7). On one machine three shards cannot show
scale, so it measures what the mode costs:

  A. scenario 1's load (durable ingest, deliveries held by a 1/s rate limit) against a single
     node and against one cluster-mode shard (a one-member etcd next to it), alternating, in
     rounds: what etcd's registration, the mirror and the cluster layer of the router cost on
     the ingest path (target: >= 90%).
  B. three shards on this machine, the same load spread over them (one wrk per shard, a third
     of the connections each): events without a key (stored where they arrive) against events
     with a distinct ordering key each (stored on the key's owner: about 2/3 of them forwarded
     one hop). The ratio is the cost of forwarding; the CPU per 1,000 events of both runs is what
     docs/cluster.md's estimate for 10 machines starts from. A shard coalesces the events it
     forwards to one owner into batches while a forward is in flight
     (relay/cluster/forward_coalescer.h): "events per request" says how many shared one.

BENCH_CLUSTER_PARTS (default "A B") picks the parts, e.g. "B" to compare forwarding alone.
"""

import json
import os
import time
import uuid

from . import procstat, prom, wrk
from .etcd import Etcd
from .nginx import free_port
from .relayd import INGEST_KEY, Relayd
from .scenarios import measure_ingest

SHARDS = 3


def _keyed_body(ctx):
    with open(ctx.body_file) as f:
        event = json.load(f)
    event["ordering_key"] = "__KEY__"
    path = os.path.join(ctx.work_dir, "event_1k_keyed.json")
    with open(path, "w") as f:
        json.dump(event, f, separators=(",", ":"))
    return path


def _shard(ctx, etcd, name, prefix):
    port = free_port()
    args = ["--cluster-etcd", etcd.url, "--shard", name, "--advertise", f"http://127.0.0.1:{port}",
            "--cluster-prefix", prefix]
    return Relayd(ctx.relayd_bin, ctx.data_dir(name), os.path.join(ctx.work_dir, f"relayd-{name}.log"),
                  extra_args=args, port=port)


def _one_shard_against_single(ctx, etcd, rounds):
    out = {"single": [], "shard": []}
    for r in range(rounds):
        for mode in ("single", "shard"):
            relay = ctx.relayd(f"cluster-a-{mode}") if mode == "single" else \
                _shard(ctx, etcd, "bench-a", f"/bench-{uuid.uuid4().hex[:8]}/")
            relay.start()
            try:
                relay.subscribe(ctx.sink.url, rate_limit_per_second=1)
                result = measure_ingest(ctx, relay)
                out[mode].append(result)
                ctx.log(f"cluster A round {r + 1}, {mode}: {result['rps']:.0f} events/s")
            finally:
                relay.stop()
    return out


def _spread(ctx, shards, body_file, keyed):
    """One wrk per shard at the same time; the summed rate, the shards' CPU and forwarding."""
    per_shard = max(1, ctx.cfg["connections"] // len(shards))
    m0 = [s.metrics() for s in shards]
    c0 = sum(procstat.cpu_seconds(s.pid) for s in shards)
    started = [wrk.start(s.events_url, ctx.cfg["duration"], per_shard, 1, body_file, auth=INGEST_KEY, keyed=keyed)
               for s in shards]
    runs = [wrk.finish(w) for w in started]
    c1 = sum(procstat.cpu_seconds(s.pid) for s in shards)
    m1 = [s.metrics() for s in shards]
    requests = sum(r["requests"] for r in runs)
    seconds = max(r["seconds"] for r in runs)
    forward_requests = sum(prom.total(b, "relay_cluster_forwarded_requests_total", kind="ingest") -
                           prom.total(a, "relay_cluster_forwarded_requests_total", kind="ingest")
                           for a, b in zip(m0, m1))
    # Events, however many shared a request (a relayd without the counter: one request each).
    forwarded = sum(prom.total(b, "relay_cluster_forwarded_events_total") -
                    prom.total(a, "relay_cluster_forwarded_events_total")
                    for a, b in zip(m0, m1)) or forward_requests
    ingested = sum(prom.total(b, "relay_events_ingested_total") - prom.total(a, "relay_events_ingested_total")
                   for a, b in zip(m0, m1))
    return {
        "requests": requests,
        "rps": requests / seconds if seconds > 0 else 0.0,
        "errors": sum(r["errors"] for r in runs),
        "p50_ms": max(r["p50_ms"] for r in runs),
        "p99_ms": max(r["p99_ms"] for r in runs),
        "cpu_ms_per_1000": 1000 * 1000 * (c1 - c0) / max(1, requests),
        "forwarded": forwarded,
        "forwarded_share": forwarded / max(1, requests),
        "forward_requests": forward_requests,
        "events_per_forward": forwarded / forward_requests if forward_requests else None,
        "stored": ingested,
        "per_shard_rps": [r["rps"] for r in runs],
    }


def _three_shards(ctx, etcd, rounds):
    prefix = f"/bench-{uuid.uuid4().hex[:8]}/"
    shards = [_shard(ctx, etcd, f"bench-b{i}", prefix) for i in range(SHARDS)]
    out = {"shards": SHARDS, "unkeyed": [], "keyed": []}
    try:
        for s in shards:
            s.start()
        sub = shards[0].subscribe(ctx.sink.url, rate_limit_per_second=1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the other shards follow etcd's watch
            if all(s.request("GET", f"/v1/subscriptions/{sub['id']}")[0] == 200 for s in shards):
                break
            time.sleep(0.05)
        plain, keyed = ctx.body_file, _keyed_body(ctx)
        if ctx.cfg["warmup"] > 0:
            warm = [wrk.start(s.events_url, ctx.cfg["warmup"], 8, 1, keyed, auth=INGEST_KEY, keyed=True) for s in shards]
            for w in warm:
                wrk.finish(w)
        for r in range(rounds):
            for mode in ("unkeyed", "keyed"):
                result = _spread(ctx, shards, keyed if mode == "keyed" else plain, mode == "keyed")
                out[mode].append(result)
                per = result["events_per_forward"]
                ctx.log(f"cluster B round {r + 1}, {mode}: {result['rps']:.0f} events/s, "
                        f"{100 * result['forwarded_share']:.0f}% forwarded"
                        + (f", {per:.1f} events per request" if per else "")
                        + f", {result['cpu_ms_per_1000']:.0f} ms CPU per 1,000")
    finally:
        for s in shards:
            s.stop()
    return out


def scenario_cluster(ctx):
    rounds = ctx.cfg["cluster_rounds"]
    parts = os.environ.get("BENCH_CLUSTER_PARTS", "A B").split()
    etcd = Etcd(os.path.join(ctx.work_dir, "etcd"))
    etcd.start()
    try:
        out = {"rounds": rounds}
        if "A" in parts:
            out["one_shard"] = _one_shard_against_single(ctx, etcd, rounds)
        if "B" in parts:
            out["three_shards"] = _three_shards(ctx, etcd, rounds)
        return out
    finally:
        etcd.stop()

"""The routing scenarios of issue 13 (spec section 6): durable ingest with 100,000 subscriptions over
100,000 tenants, and with 100 filtered subscriptions, each against scenario 1's load with one
subscription measured in the same invocation (before and after, averaged).

In all of them every event matches exactly one subscription, rate-limited to 1 delivery/s as in
scenario 1: every event writes one held delivery, so the stores differ only in what matching has
to look through.
"""

import concurrent.futures
import http.client
import json
import os
import statistics
import threading
import time

from . import procstat
from .relayd import ADMIN_KEY
from .scenarios import measure_ingest

TENANT_COUNT = 100_000
# The tenant whose subscription every event of the tenant scenario matches.
HOT_TENANT = "tenant-050000"
TIMED_CREATES = 20  # creations timed one at a time at each end
FILTERED_SUBSCRIPTIONS = 100


def _body_with(ctx, name, **fields):
    """The 1 KiB event with extra top-level fields, written next to the other work files."""
    with open(ctx.body_file) as f:
        event = json.load(f)
    event.update(fields)
    path = os.path.join(ctx.work_dir, name)
    with open(path, "w") as f:
        json.dump(event, f, separators=(",", ":"))
    return path


def _ingest_on_one_subscription(ctx, name, body_file, **fields):
    relay = ctx.relayd(name)
    relay.start()
    try:
        relay.subscribe(ctx.sink.url, rate_limit_per_second=1, **fields)
        return measure_ingest(ctx, relay, body_file=body_file)
    finally:
        relay.stop()


class _Connections:
    """One keep-alive admin connection per thread."""

    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def post(self, path, body):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = json.dumps(body)
        conn.request("POST", path, body=data, headers={"Authorization": f"Bearer {ADMIN_KEY}",
                                                       "Content-Type": "application/json"})
        response = conn.getresponse()
        payload = response.read()
        if response.status != 201:
            raise RuntimeError(f"POST {path} answered {response.status}: {payload[:300]!r}")
        return json.loads(payload)


def _timed_creates(relay, bodies):
    """Creates one at a time; milliseconds of each request."""
    times = []
    for body in bodies:
        t = time.perf_counter()
        relay.api("POST", "/v1/subscriptions", body)
        times.append(1000 * (time.perf_counter() - t))
    return times


def _timed_patch(relay, sub_id, count=TIMED_CREATES):
    times = []
    for i in range(count):
        t = time.perf_counter()
        relay.api("PATCH", f"/v1/subscriptions/{sub_id}", {"description": f"patched {i}"})
        times.append(1000 * (time.perf_counter() - t))
    return times


def _times(values):
    return {"first": values[0], "median": statistics.median(values), "max": max(values)}


def scenario_tenants(ctx):
    """100,000 subscriptions, one per tenant (through the API), against one subscription."""
    out = {"subscriptions": TENANT_COUNT}
    body = _body_with(ctx, "event_1k_tenant.json", tenant=HOT_TENANT)

    def subscription(i):
        return {"url": ctx.sink.url, "event_types": ["meeting.*"], "tenant": f"tenant-{i:06d}",
                "rate_limit_per_second": 1}

    out["one_before"] = _ingest_on_one_subscription(ctx, "tenants-one", body, tenant=HOT_TENANT)
    relay = ctx.relayd("tenants")
    relay.start()
    try:
        first = _timed_creates(relay, [subscription(i) for i in range(TIMED_CREATES)])
        first_sub = relay.api("GET", "/v1/subscriptions?limit=1")["items"][0]["id"]
        out["create_first_ms"] = _times(first)
        out["patch_first_ms"] = _times(_timed_patch(relay, first_sub))

        # The bulk through the API, concurrently (group commit shares the fsyncs).
        connections = _Connections(relay.port)
        started = time.monotonic()
        bulk = range(TIMED_CREATES, TENANT_COUNT - TIMED_CREATES)
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
            for _ in pool.map(lambda i: connections.post("/v1/subscriptions", subscription(i)), bulk,
                              chunksize=64):
                pass
        out["bulk_created"] = len(bulk)
        out["bulk_seconds"] = time.monotonic() - started
        out["bulk_per_s"] = len(bulk) / out["bulk_seconds"]
        ctx.log(f"    created {len(bulk)} subscriptions in {out['bulk_seconds']:.0f}s ({out['bulk_per_s']:.0f}/s)")

        last = _timed_creates(relay, [subscription(i) for i in range(TENANT_COUNT - TIMED_CREATES, TENANT_COUNT)])
        out["create_last_ms"] = _times(list(reversed(last)))  # "first" is the 100,000th
        out["create_last_ms"]["last"] = last[-1]
        out["patch_last_ms"] = _times(_timed_patch(relay, first_sub))
        out["rss_mib"] = procstat.status_kib(relay.pid, "VmRSS") / 1024
        # /metrics holds tens of series per subscription (millions here): not scraped.
        out["many"] = measure_ingest(ctx, relay, body_file=body, scrape=False)
        out["rss_after_mib"] = procstat.status_kib(relay.pid, "VmRSS") / 1024
    finally:
        relay.stop()
    out["one_after"] = _ingest_on_one_subscription(ctx, "tenants-one", body, tenant=HOT_TENANT)
    return out


def scenario_filters(ctx):
    """100 subscriptions with a 3-condition filter each (per-bot filters, one of which holds for
    the event), against one subscription without a filter."""
    with open(ctx.body_file) as f:
        data = json.load(f)["payload"]["data"]
    out = {"subscriptions": FILTERED_SUBSCRIPTIONS}
    out["one_before"] = _ingest_on_one_subscription(ctx, "filters-one", ctx.body_file)
    relay = ctx.relayd("filters")
    relay.start()
    try:
        matching = FILTERED_SUBSCRIPTIONS // 2
        for i in range(FILTERED_SUBSCRIPTIONS):
            bot = data["bot_id"] if i == matching else f"bot-{i:04d}"
            relay.subscribe(ctx.sink.url, rate_limit_per_second=1,
                            filter={"payload.data.bot_id": bot, "payload.event": "complete",
                                    "payload.data.status": {"$in": ["completed", "failed"]}})
        out["many"] = measure_ingest(ctx, relay)
    finally:
        relay.stop()
    out["one_after"] = _ingest_on_one_subscription(ctx, "filters-one", ctx.body_file)
    return out

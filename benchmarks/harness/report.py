"""RESULTS.md from the figures of one run of the suite."""

import re

TARGETS = {
    "s1_rate": 40_000,
    "s1_ratio": 0.5,
    "s2_rate": 15_000,
    "s3_rate": 50_000,
    "s4_ratio": 0.8,
    "s4_rss_mib": 300,
    "s4_ready_s": 2.0,
    "routing_ratio": 0.8,  # issue 13: tenants and filters against one subscription
    "replay_ratio": 0.8,   # issue 15: ingest while a replay job runs, against no job
}


def n(x, digits=0):
    if x is None:
        return "n/a"
    return f"{x:,.{digits}f}"


def ms(x):
    if x is None:
        return "n/a"
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms" if x < 100 else f"{x:,.0f} ms"


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


def pct(r):
    return "n/a" if r is None else f"{100 * r:.0f}%"


def verdict(ok):
    return "n/a" if ok is None else ("**pass**" if ok else "**miss**")


def ok_or_none(value, predicate):
    return None if value is None else predicate(value)


def _get(d, *path):
    for p in path:
        if not isinstance(d, dict):
            return None
        d = d.get(p)
    return d


def summary(res):
    rows = []
    s1, s2, s3, s4 = (res.get(k) or {} for k in ("s1", "s2", "s3", "s4"))

    held = _get(s1, "held", "rps")
    nginx_rates = [x for x in (_get(s1, "nginx", "rps"), _get(s1, "nginx_after", "rps")) if x]
    nginx_ingest = sum(nginx_rates) / len(nginx_rates) if nginx_rates else None
    r1 = ratio(held, nginx_ingest)
    rows.append(("1", "durable ingest (fsync), 1 KiB, 64 conns, deliveries held: events/s", n(held),
                 f"nginx 202: {n(nginx_ingest)}", pct(r1), ">= 40,000/s and >= 50% of nginx",
                 verdict(None if held is None or r1 is None else held >= TARGETS["s1_rate"] and r1 >= TARGETS["s1_ratio"])))
    rows.append(("1", "  latency p50 / p99", f"{ms(_get(s1, 'held', 'p50_ms'))} / {ms(_get(s1, 'held', 'p99_ms'))}",
                 f"{ms(_get(s1, 'nginx', 'p50_ms'))} / {ms(_get(s1, 'nginx', 'p99_ms'))}", "", "", ""))
    disabled = _get(s1, "disabled", "rps")
    rows.append(("1b", "  same, subscription disabled (events only): events/s", n(disabled), n(nginx_ingest),
                 pct(ratio(disabled, nginx_ingest)), "", ""))
    buffered = _get(s1, "buffered", "rps")
    rows.append(("1c", "  same as 1, `--durability buffered` (no fsync wait): events/s", n(buffered), n(nginx_ingest),
                 pct(ratio(buffered, nginx_ingest)), "", ""))

    best = s2.get("best") or {}
    rate2 = best.get("rps")
    proxy = _get(s2, "nginx_proxy", "rps")
    rows.append(("2", "sustained ingest + delivery to 1 subscriber, backlog flat: events/s", n(rate2),
                 f"nginx proxy: {n(proxy)}", pct(ratio(rate2, proxy)), ">= 15,000/s",
                 verdict(ok_or_none(rate2, lambda v: v >= TARGETS["s2_rate"]))))
    rows.append(("2", "  deliveries/s at that rate", n(best.get("deliveries_per_s")), "", "", "", ""))
    rows.append(("2", "  ingest-to-delivery p50 / p99 (sink clock)",
                 f"{ms(best.get('e2e_p50_ms'))} / {ms(best.get('e2e_p99_ms'))}",
                 f"proxy req p50/p99: {ms(_get(s2, 'nginx_proxy', 'p50_ms'))} / {ms(_get(s2, 'nginx_proxy', 'p99_ms'))}",
                 "", "", ""))

    rate3 = _get(s3, "drain", "deliveries_per_s")
    direct = _get(s3, "nginx_direct", "rps")
    rows.append(("3", "fan-out to 10 subscribers: deliveries/s (held backlog released to all 10)", n(rate3),
                 f"wrk -> sink: {n(direct)}", pct(ratio(rate3, direct)), ">= 50,000/s",
                 verdict(ok_or_none(rate3, lambda v: v >= TARGETS["s3_rate"]))))
    conc = _get(s3, "concurrent", "deliveries_per_s")
    rows.append(("3", f"  with ingest running at the same time ({n(_get(s3, 'concurrent', 'ingest', 'rps'))} events/s)",
                 n(conc), f"wrk -> sink: {n(direct)}", pct(ratio(conc, direct)), "", ""))

    s4_s1 = _get(s4, "s1", "rps")
    r4a = ratio(s4_s1, held)
    rows.append(("4", "backlog 1M scheduled + 100k dead: scenario 1 events/s", n(s4_s1), f"empty store: {n(held)}",
                 pct(r4a), ">= 80% of empty", verdict(ok_or_none(r4a, lambda v: v >= TARGETS["s4_ratio"]))))
    s4_s2 = _get(s4, "s2_best", "rps")
    r4b = ratio(s4_s2, rate2)
    tried = ", ".join(f"{'unthrottled' if not r.get('target_rate') else n(r.get('target_rate')) + '/s'} "
                      f"{'flat' if r.get('flat') else 'growing'}" for r in (s4.get("s2_runs") or []))
    rows.append(("4", f"  scenario 2 sustained events/s (tried: {tried or 'n/a'})", n(s4_s2), f"empty store: {n(rate2)}",
                 pct(r4b), ">= 80% of empty", verdict(ok_or_none(r4b, lambda v: v >= TARGETS["s4_ratio"]))))
    peak = s4.get("peak_rss_mib")
    rows.append(("4", "  relayd resident memory, peak (VmHWM)", f"{n(peak)} MiB",
                 f"after restart: {n(s4.get('rss_after_restart_mib'))} MiB", "", "< 300 MiB",
                 verdict(ok_or_none(peak, lambda v: v < TARGETS["s4_rss_mib"]))))
    ready = s4.get("restart_ready_s")
    rows.append(("4", "  restart to /readyz 200", f"{n(ready, 3)} s",
                 f"empty store: {n(s1.get('ready_s'), 3)} s", "", "<= 2 s",
                 verdict(ok_or_none(ready, lambda v: v <= TARGETS["s4_ready_s"]))))

    cpu_mix = best.get("cpu_ms_per_1000_deliveries")
    proxy_cpu = _get(s2, "nginx_proxy", "cpu_ms_per_1000")
    rows.append(("5", "CPU per 1,000 deliveries, ingest + delivery (scenario 2 rate)", f"{n(cpu_mix, 0)} ms",
                 f"nginx proxy: {n(proxy_cpu, 0)} ms", f"{n(ratio(cpu_mix, proxy_cpu), 1)}x", "", ""))
    drain_cpu = _get(s1, "drain", "cpu_ms_per_1000")
    rows.append(("5", "  delivery only (held backlog released)", f"{n(drain_cpu, 0)} ms", "", "", "", ""))
    rows.append(("5", "  fan-out drain, per delivery (scenario 3)", f"{n(_get(s3, 'drain', 'cpu_ms_per_1000_deliveries'), 0)} ms",
                 f"sink per request: {n(_get(s3, 'nginx_direct', 'sink_cpu_ms_per_1000'), 0)} ms", "", "", ""))
    disk = s4.get("disk_bytes_per_delivery")
    rows.append(("5", "disk bytes per pending delivery (backlog store, 1 event each)", n(disk),
                 "payload: 1,024", f"{n(ratio(disk, 1024), 1)}x", "", ""))
    rows.append(("5", "  right after ingest (scenario 1, WAL included)", n(s1.get("disk_bytes_per_held_delivery")),
                 "payload: 1,024", f"{n(ratio(s1.get('disk_bytes_per_held_delivery'), 1024), 1)}x", "", ""))

    rows += routing_rows(res)
    rows += replay_rows(res)

    lines = ["| # | figure | relay | baseline | ratio | target | result |", "|---|---|---|---|---|---|---|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _one_subscription_rate(step):
    rates = [x for x in (_get(step, "one_before", "rps"), _get(step, "one_after", "rps")) if x]
    return sum(rates) / len(rates) if rates else None


def routing_rows(res):
    """Issue 13: ingest with many tenants' subscriptions and with filtered ones."""
    rows = []
    t = res.get("tenants") or {}
    if t:
        one = _one_subscription_rate(t)
        many = _get(t, "many", "rps")
        r = ratio(many, one)
        rows.append(("T", f"durable ingest, {n(t.get('subscriptions'))} subscriptions over as many tenants: events/s",
                     n(many), f"1 subscription: {n(one)}", pct(r), ">= 80%",
                     verdict(ok_or_none(r, lambda v: v >= TARGETS["routing_ratio"]))))
        first, last = _get(t, "create_first_ms", "first"), _get(t, "create_last_ms", "first")
        rows.append(("T", "  creating the 100,000th subscription (API, one request)", ms(last),
                     f"the first: {ms(first)}", f"{n(ratio(last, first), 1)}x", "as fast", ""))
        rows.append(("T", f"  median of {TIMED} creations at the end / at the start",
                     ms(_get(t, "create_last_ms", "median")), ms(_get(t, "create_first_ms", "median")),
                     f"{n(ratio(_get(t, 'create_last_ms', 'median'), _get(t, 'create_first_ms', 'median')), 1)}x", "", ""))
        rows.append(("T", f"  median PATCH with 100,000 / with {TIMED}", ms(_get(t, "patch_last_ms", "median")),
                     ms(_get(t, "patch_first_ms", "median")),
                     f"{n(ratio(_get(t, 'patch_last_ms', 'median'), _get(t, 'patch_first_ms', 'median')), 1)}x", "", ""))
    f = res.get("filters") or {}
    if f:
        one = _one_subscription_rate(f)
        many = _get(f, "many", "rps")
        r = ratio(many, one)
        rows.append(("F", f"durable ingest, {n(f.get('subscriptions'))} subscriptions with 3-condition filters "
                          "(one holds): events/s", n(many), f"1 subscription, no filter: {n(one)}", pct(r), ">= 80%",
                     verdict(ok_or_none(r, lambda v: v >= TARGETS["routing_ratio"]))))
    return rows


def replay_rows(res):
    """Issue 15: scenario 2's load while a replay job works through a million stored events."""
    p = res.get("replay") or {}
    if not p or "error" in p:
        return []
    job = _get(p, "with_job", "job") or {}
    r = p.get("ratio")
    rows = [("R", f"scenario 2's ingest while a replay job runs over {n(p.get('events'))} stored events: events/s",
             n(_get(p, "with_job", "rps")), f"no job: {n(p.get('idle_mean_rps'))}", pct(r), ">= 80% of no job",
             verdict(ok_or_none(r, lambda v: v >= TARGETS["replay_ratio"])))]
    rows.append(("R", "  healthy subscription's deliveries/s, with the job / without",
                 n(_get(p, "with_job", "deliveries_per_s")), f"no job: {n(p.get('idle_mean_deliveries_per_s'))}",
                 pct(ratio(_get(p, "with_job", "deliveries_per_s"), p.get("idle_mean_deliveries_per_s"))),
                 "flowing", ""))
    rows.append(("R", "  job: events/s while measured; whole job", f"{n(job.get('events_per_s'))}/s",
                 f"{n(_get(p, 'job', 'matched'))} in {n(p.get('job_seconds'), 1)} s", "", "", ""))
    return rows


def replay_details(res):
    p = res.get("replay") or {}
    if not p:
        return []
    out = ["", f"### Replay job over {n(p.get('events'))} stored events (issue 15)"]
    if "error" in p:
        out.append(f"Failed: `{p['error']}`")
        return out
    fill = p.get("fill") or {}
    out.append(f"`fill_store --stored` wrote {n(p.get('events'))} events of 1 KiB, delivered to nobody, in "
               f"{n(fill.get('wall_s'), 1)} s ({n((p.get('disk_bytes') or 0) / 2**20)} MiB on disk). The replay's "
               f"subscription is limited to {n(p.get('target_rate_limit'))} delivery/s, so the deliveries "
               "the job creates are written but held, as in scenario 1; scenario 2's subscription receives the "
               f"ingested events. Scenario 2's load ({'unthrottled' if not p.get('rate') else n(p.get('rate')) + '/s'}, "
               "64 connections) runs without a job, with the job started just before wrk, and without a job again "
               "once it has finished (the mean of the two is the baseline).")
    out += ["", "| run | ingest/s | p99 | healthy deliveries/s | healthy backlog at end | e2e p50 / p99 | "
                "relayd CPU ms / 1,000 events | commits per group | load before |",
            "|---|---|---|---|---|---|---|---|---|"]
    for key, label, load in (("idle", "no job", "load_before_idle"), ("with_job", "replay job running", "load_before_job"),
                             ("idle_after", "no job, after it", "load_before_idle_after")):
        r = p.get(key) or {}
        out.append(f"| {label} | {n(r.get('rps'))} | {ms(r.get('p99_ms'))} | {n(r.get('deliveries_per_s'))} | "
                   f"{n(r.get('healthy_backlog_end'))} | {ms(r.get('e2e_p50_ms'))} / {ms(r.get('e2e_p99_ms'))} | "
                   f"{n(r.get('cpu_ms_per_1000_events'))} | {n(r.get('commit_batch_mean'), 1)} | "
                   f"`{(p.get(load) or '').split('load average:')[-1].strip()}` |")
    job = _get(p, "with_job", "job") or {}
    final = p.get("job") or {}
    out.append("")
    out.append(f"During the measured run the job went from {n(job.get('from_matched'))} to {n(job.get('to_matched'))} "
               f"events ({n(job.get('events_per_s'))}/s; state at the end: {job.get('state_at_end')}). It ended "
               f"`{final.get('state')}` with {n(final.get('matched'))} matched and {n(final.get('created'))} "
               f"deliveries created, {n(p.get('job_seconds'), 1)} s after it was created. Ingest with the job: "
               f"{pct(p.get('ratio'))} of the mean without ({pct(p.get('ratio_first_idle'))} of the first run); "
               f"peak RSS {n(p.get('peak_rss_mib'))} MiB.")
    if p.get("note"):
        out.append(f"\n_{p['note']}._")
    return out


TIMED = 20  # routing.TIMED_CREATES


def routing_details(res):
    out = []
    t = res.get("tenants") or {}
    if t:
        out += ["", "### Tenants: 100,000 subscriptions over 100,000 tenants (issue 13)"]
        if "error" in t:
            out.append(f"Failed: `{t['error']}`")
        else:
            out.append("Every event carries the tenant of one of the subscriptions (limited to 1 delivery/s, so its "
                       "deliveries are held as in scenario 1); the other 99,999 belong to other tenants.")
            out.append(f"- one subscription, before: {wrk_line(t.get('one_before'))}")
            out.append(f"- {n(t.get('subscriptions'))} subscriptions: {wrk_line(t.get('many'))}; relayd CPU "
                       f"{n(_get(t, 'many', 'cpu_ms_per_1000'), 0)} ms per 1,000 events (one subscription: "
                       f"{n(_get(t, 'one_before', 'cpu_ms_per_1000'), 0)} ms); RSS {n(t.get('rss_mib'))} MiB")
            out.append(f"- one subscription, after: {wrk_line(t.get('one_after'))}")
            out.append(f"- {n(t.get('bulk_created'))} subscriptions created through the API with 32 concurrent "
                       f"clients in {n(t.get('bulk_seconds'), 1)} s ({n(t.get('bulk_per_s'))}/s)")
            for key, what in (("create_first_ms", "creations 1-20"), ("create_last_ms", "creations 99,981-100,000"),
                              ("patch_first_ms", "PATCHes with 20 subscriptions"),
                              ("patch_last_ms", "PATCHes with 100,000")):
                v = t.get(key) or {}
                out.append(f"- {what}, one at a time: first {ms(v.get('first'))}, median {ms(v.get('median'))}, "
                           f"max {ms(v.get('max'))}")
    f = res.get("filters") or {}
    if f:
        out += ["", "### Payload filters: 100 subscriptions with 3-condition filters (issue 13)"]
        if "error" in f:
            out.append(f"Failed: `{f['error']}`")
        else:
            out.append("Per-bot filters `{payload.data.bot_id, payload.event, payload.data.status $in}`; the event's "
                       "bot matches one of them, so every event writes one held delivery, as with one subscription.")
            out.append(f"- one subscription without filter, before: {wrk_line(f.get('one_before'))}")
            m = f.get("many") or {}
            out.append(f"- 100 filtered subscriptions: {wrk_line(m)}; {n(m.get('deliveries_created'))} deliveries "
                       f"for {n(m.get('requests'))} events; relayd CPU {n(m.get('cpu_ms_per_1000'), 0)} ms per 1,000 "
                       f"events (one subscription: {n(_get(f, 'one_before', 'cpu_ms_per_1000'), 0)} ms)")
            out.append(f"- one subscription without filter, after: {wrk_line(f.get('one_after'))}")
    return out


def wrk_line(r):
    if not r:
        return "n/a"
    return (f"{n(r.get('rps'))}/s over {n(r.get('seconds'), 1)} s, {r.get('connections')} conns, "
            f"p50 {ms(r.get('p50_ms'))}, p90 {ms(r.get('p90_ms'))}, p99 {ms(r.get('p99_ms'))}, "
            f"max {ms(r.get('max_ms'))}, errors {r.get('errors')}")


def details(res):
    out = []
    s1 = res.get("s1") or {}
    if s1:
        out.append("### Scenario 1: durable ingest")
        if "error" in s1:
            out.append(f"Failed: `{s1['error']}`")
        else:
            out.append(f"- relayd, deliveries held (subscription limited to 1 delivery/s): {wrk_line(s1.get('held'))}")
            h = s1.get("held") or {}
            out.append(f"  - group commit: {n(h.get('commit_batch_mean'), 1)} commands per fsync on average, commit "
                       f"p50 {ms(h.get('commit_p50_ms'))}, p99 {ms(h.get('commit_p99_ms'))}; relayd CPU "
                       f"{n(h.get('cpu_ms_per_1000'), 0)} ms per 1,000 events; RSS {n(h.get('rss_mib'))} MiB")
            out.append(f"- relayd, subscription disabled (events only): {wrk_line(s1.get('disabled'))}")
            b = s1.get("buffered") or {}
            out.append(f"- relayd `--durability buffered`, deliveries held: {wrk_line(b)}; "
                       f"{n(b.get('commit_batch_mean'), 1)} commands per write, relayd CPU "
                       f"{n(b.get('cpu_ms_per_1000'), 0)} ms per 1,000 events")
            out.append(f"- nginx `return 202` before: {wrk_line(s1.get('nginx'))}")
            out.append(f"- nginx `return 202` after: {wrk_line(s1.get('nginx_after'))}; nginx CPU "
                       f"{n(_get(s1, 'nginx', 'cpu_ms_per_1000'), 0)} ms per 1,000 requests")
            d = s1.get("drain") or {}
            out.append(f"- {n(s1.get('held_deliveries'))} held deliveries took {n(s1.get('disk_bytes', 0) / 2**20, 0)} MiB "
                       f"on disk; released, {n(d.get('deliveries'))} were delivered in {n(d.get('seconds'), 1)} s "
                       f"({n(d.get('rate'))}/s, drained: {d.get('drained')}), "
                       f"{n(d.get('cpu_ms_per_1000'), 0)} ms CPU per 1,000")
            out.append(f"- start to /readyz on an empty data directory: {n(s1.get('ready_s'), 3)} s")
    s2 = res.get("s2") or {}
    if s2:
        out.append("")
        out.append("### Scenario 2: sustained ingest and delivery, one subscriber")
        if "error" in s2:
            out.append(f"Failed: `{s2['error']}`")
        else:
            out.append("Fixed-rate runs (wrk paced by `post.lua`; flat = backlog slope <= 2% of the rate per second "
                       "and < 1 s of traffic outstanding at the end):")
            out.append("")
            out.append("| requested | ingest/s | deliveries/s | backlog slope/s | backlog at end | e2e p50 | e2e p99 | "
                       "histogram p50 / p99 | CPU ms/1k | flat |")
            out.append("|---|---|---|---|---|---|---|---|---|---|")
            for r in [s2.get("unthrottled")] + (s2.get("runs") or []):
                if not r:
                    continue
                req = "unthrottled" if not r.get("target_rate") else n(r["target_rate"])
                out.append(f"| {req} | {n(r.get('rps'))} | {n(r.get('deliveries_per_s'))} | "
                           f"{n(r.get('backlog_slope_per_s'))} | {n(r.get('backlog_end'))} | {ms(r.get('e2e_p50_ms'))} | "
                           f"{ms(r.get('e2e_p99_ms'))} | {ms(r.get('hist_p50_ms'))} / {ms(r.get('hist_p99_ms'))} | "
                           f"{n(r.get('cpu_ms_per_1000_deliveries'), 0)} | {r.get('flat')} |")
            out.append("")
            p = s2.get("nginx_proxy") or {}
            out.append(f"- nginx proxy to the sink: {wrk_line(p)}; front CPU {n(p.get('cpu_ms_per_1000'), 0)} ms and "
                       f"sink CPU {n(p.get('sink_cpu_ms_per_1000'), 0)} ms per 1,000 requests")
    s3 = res.get("s3") or {}
    if s3:
        out.append("")
        out.append("### Scenario 3: fan-out to 10 subscribers")
        if "error" in s3:
            out.append(f"Failed: `{s3['error']}`")
        else:
            d = s3.get("drain") or {}
            c = s3.get("concurrent") or {}
            out.append(f"- held: {wrk_line(s3.get('held_ingest'))} with all ten subscriptions limited to 1/s, "
                       f"leaving {n(d.get('backlog'))} deliveries")
            out.append(f"- released at once: {n(d.get('deliveries'))} delivered in {n(d.get('seconds'), 1)} s "
                       f"(drained: {d.get('drained')}): **{n(d.get('deliveries_per_s'))}/s**, relayd CPU "
                       f"{n(d.get('cpu_ms_per_1000_deliveries'), 0)} ms per 1,000, peak RSS {n(d.get('max_rss_mib'))} MiB")
            out.append(f"- then ingest and fan-out together: {wrk_line(c.get('ingest'))}; {n(c.get('deliveries'))} "
                       f"deliveries in {n(c.get('seconds'), 1)} s to an empty backlog (drained: {c.get('drained')}): "
                       f"{n(c.get('deliveries_per_s'))}/s ({n(c.get('during_ingest_per_s'))}/s while ingest ran), "
                       f"{n(c.get('cpu_ms_per_1000_deliveries'), 0)} ms CPU per 1,000; ingest-to-success (histogram) "
                       f"p50 {ms(c.get('latency_p50_ms'))}, p99 {ms(c.get('latency_p99_ms'))}")
            out.append(f"- baseline, wrk POSTing straight to the sink: {wrk_line(s3.get('nginx_direct'))}")
    s4 = res.get("s4") or {}
    if s4:
        out.append("")
        out.append("### Scenario 4: backlog on disk")
        if "error" in s4:
            out.append(f"Failed: `{s4['error']}`")
        else:
            f = s4.get("fill") or {}
            out.append(f"- `fill_store` wrote {n(f.get('scheduled'))} scheduled retries (one failed attempt each, due "
                       f"20-60 min later) and {n(f.get('dead'))} dead deliveries, each with its own 1 KiB event, in "
                       f"{n(f.get('wall_s'), 1)} s: {n(s4.get('disk_bytes', 0) / 2**20)} MiB on disk")
            out.append(f"- first start on it: /readyz after {n(s4.get('first_ready_s'), 3)} s, backlog counted in the "
                       f"gauges after {n(s4.get('first_counted_s'), 2)} s more; RSS {n(s4.get('rss_after_start_mib'))} MiB")
            for r in s4.get("s2_runs") or []:
                how = "unthrottled" if not r.get("target_rate") else f"at {n(r.get('target_rate'))}/s"
                out.append(f"- scenario 2 {how}: ingest {n(r.get('rps'))}/s, deliveries "
                           f"{n(r.get('deliveries_per_s'))}/s, slope {n(r.get('backlog_slope_per_s'))}/s, e2e p50 "
                           f"{ms(r.get('e2e_p50_ms'))} p99 {ms(r.get('e2e_p99_ms'))}, flat: {r.get('flat')}")
            out.append(f"- scenario 1: {wrk_line(s4.get('s1'))}")
            out.append(f"- peak RSS (VmHWM) {n(s4.get('peak_rss_mib'))} MiB; restart: /readyz after "
                       f"{n(s4.get('restart_ready_s'), 3)} s, counted after {n(s4.get('restart_counted_s'), 2)} s more, "
                       f"RSS {n(s4.get('rss_after_restart_mib'))} MiB, gauges {s4.get('restart_gauges')}; "
                       f"{n(s4.get('disk_bytes_end', 0) / 2**20)} MiB on disk at the end")
    out.append(ordered(res))
    out += routing_details(res)
    out.append(cluster(res))
    out += replay_details(res)
    return "\n".join(out)


def _mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else None


def cluster(res):
    """The cluster scenario (issue 14): a section of its own."""
    c = res.get("cluster") or {}
    if not c:
        return ""
    out = ["", "### Cluster mode: what the mode costs (issue 14)"]
    if "error" in c:
        out.append(f"Failed: `{c['error']}`")
        return "\n".join(out)
    a = c.get("one_shard") or {}
    out += ["", "A. Scenario 1's load (held deliveries) on a single node and on one cluster-mode shard with a "
                "one-member etcd on the same machine, alternating, "
                f"{n(c.get('rounds'))} rounds. Target: the shard >= 90% of the single node.", "",
            "| round | single node events/s | shard events/s | shard / single | single p99 ms | shard p99 ms |",
            "|---|---|---|---|---|---|"]
    for i, (s, k) in enumerate(zip(a.get("single") or [], a.get("shard") or [])):
        out.append(f"| {i + 1} | {n(s.get('rps'))} | {n(k.get('rps'))} | {pct(ratio(k.get('rps'), s.get('rps')))} | "
                   f"{ms(s.get('p99_ms'))} | {ms(k.get('p99_ms'))} |")
    single = _mean([r.get("rps") for r in a.get("single") or []])
    shard = _mean([r.get("rps") for r in a.get("shard") or []])
    if single and shard:
        out.append(f"\nMean over the rounds: the shard ingests at {pct(shard / single)} of the single node: "
                   f"{verdict(shard / single >= 0.9)}.")
    b = c.get("three_shards") or {}
    out += ["", f"B. {n(b.get('shards'))} shards on this machine, the load spread over them (one wrk per shard, a "
                "third of the connections each); events without a key against events with a distinct "
                "`ordering_key` each (stored on the key's owner shard, so about two thirds are forwarded one "
                "hop; a shard coalesces the events for one owner into a batch while a forward is in flight).",
            "",
            "| round | events | events/s | forwarded | events per forward request | p50 ms | p99 ms | "
            "CPU ms / 1,000 events (3 shards) |",
            "|---|---|---|---|---|---|---|---|"]
    for i, (u, k) in enumerate(zip(b.get("unkeyed") or [], b.get("keyed") or [])):
        for name, r in (("without keys", u), ("keyed", k)):
            per = r.get("events_per_forward")
            out.append(f"| {i + 1} | {name} | {n(r.get('rps'))} | {pct(r.get('forwarded_share'))} | "
                       f"{f'{per:.1f}' if per else '-'} | "
                       f"{ms(r.get('p50_ms'))} | {ms(r.get('p99_ms'))} | {n(r.get('cpu_ms_per_1000'))} |")
    unkeyed = _mean([r.get("rps") for r in b.get("unkeyed") or []])
    keyed = _mean([r.get("rps") for r in b.get("keyed") or []])
    if unkeyed and keyed:
        out.append(f"\nMean over the rounds: keyed ingest runs at {pct(keyed / unkeyed)} of unkeyed ingest on the "
                   "same three shards; on one machine both share its 2 cores and its disk, so this is the cost "
                   "of the extra hop, not a scaling figure (docs/cluster.md estimates 10 machines from it).")
    return "\n".join(out)


def ordered(res):
    """The ordered-delivery scenario (issue 13): a section of its own."""
    o = res.get("ordered") or {}
    if not o:
        return ""
    out = ["", "### Ordered delivery: ordering keys"]
    if "error" in o:
        out.append(f"Failed: `{o['error']}`")
        return "\n".join(out)
    out.append(f"{n(o.get('keys'))} keys x {n(o.get('per_key'))} events to one subscription, held while published, "
               "then released; the in-order check reads each key's first arrivals at the sink in event-id order "
               "(millisecond resolution).")
    out += ["", "| subscription | deliveries/s | drain s | relayd CPU ms / 1,000 | arrived | keys out of order | "
                "pairs out of order | in order |", "|---|---|---|---|---|---|---|---|"]
    for mode in ("ordered", "unordered"):
        r = o.get(mode) or {}
        c = r.get("order") or {}
        out.append(f"| {mode} | {n(r.get('rate'))} | {n(r.get('seconds'), 1)} | {n(r.get('cpu_ms_per_1000'))} | "
                   f"{n(c.get('arrived'))} of {n(r.get('events'))} | {n(c.get('keys_out_of_order'))} | "
                   f"{n(c.get('out_of_order_pairs'))} | {c.get('in_order')} |")
    rate_o, rate_u = _get(o, "ordered", "rate"), _get(o, "unordered", "rate")
    if rate_o and rate_u:
        out.append(f"\nOrdered delivers at {100 * rate_o / rate_u:.0f}% of the unordered rate: each key waits for "
                   "its previous delivery's record (a group commit) before the next is attempted.")
    if o.get("note"):
        out.append(f"\n_{o['note']}._")
    return "\n".join(out)


_BASELINES = [
    (r"^BM_(IdGenerator_Next|ParseId|DeliveryKey|ScheduleKey|EventDeliveryKey|DecodeScheduleKey|IdTime)$",
     lambda m: "BM_Baseline_CopyId"),
    (r"^BM_StandardSignature/(\d+)$", lambda m: f"BM_Baseline_HmacPrefetched/{m.group(1)}"),
    (r"^BM_SubscriptionSigner/rotating:(\d)$", lambda m: f"BM_AppendSignatureHeaders/rotating:{m.group(1)}"),
    (r"^BM_(JsonParse1K|ParseEventRequest)$", lambda m: "BM_Baseline_JsonAccept"),
    (r"^BM_CommitIngest/(.*)/real_time$", lambda m: f"BM_Baseline_RocksWrite/{m.group(1)}/real_time"),
    (r"^BM_WhatIf_BoostJsonEventRequest$", lambda m: "BM_ParseEventRequest"),
]


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} us"
    return f"{ns:.0f} ns"


def micro(res):
    m = res.get("micro")
    if not m:
        return ""
    if "error" in m:
        return f"Failed: `{m['error']}`"
    by_name = {}
    for b in m.get("benchmarks", []):
        scale = {"ns": 1, "us": 1e3, "ms": 1e6, "s": 1e9}[b.get("time_unit", "ns")]
        by_name[b["name"]] = dict(b, real_ns=b["real_time"] * scale, cpu_ns=b["cpu_time"] * scale)
    lines = ["| benchmark | time/op (wall) | CPU/op | items/s | baseline | x baseline (CPU; wall for real_time) |",
             "|---|---|---|---|---|---|"]
    for name, b in by_name.items():
        base = None
        for pattern, target in _BASELINES:
            mm = re.match(pattern, name)
            if mm:
                base = by_name.get(target(mm))
                break
        items = b.get("items_per_second")
        base_name, x = "", ""
        if base:
            # A benchmark and its baseline do the same number of items per iteration.
            # CPU time for single-threaded work; wall time where the work is on another thread
            # or waits for the disk (the commit benchmarks run with UseRealTime).
            key = "real_ns" if name.endswith("/real_time") else "cpu_ns"
            base_name, x = base["name"], f"{b[key] / base[key]:.2f}"
        lines.append(f"| {name} | {fmt_time(b['real_ns'])} | {fmt_time(b['cpu_ns'])} | "
                     f"{n(items) if items else ''} | {base_name} | {x} |")
    ctx = m.get("context", {})
    head = (f"Google Benchmark (Debian's libbenchmark, which reports itself as a {ctx.get('library_build_type')} "
            f"build; the timing loop is all it contributes), {ctx.get('num_cpus')} CPUs; relay built Release. "
            f"CPU/op is the steadier column on this shared machine. "
            f"Store commits on a temporary RocksDB in the suite's work directory (same disk as the scenarios). "
            f"For BM_CommitIngest and its baseline, one iteration commits `group` ingests; items/s counts ingests.")
    return head + "\n\n" + "\n".join(lines)


def profile(res):
    p = res.get("profile")
    if not p:
        return ""
    if "error" in p:
        return f"Not run: `{p['error']}`"
    parts = [f"`perf record -e cpu-clock -F 499 --call-graph dwarf` on relayd, {p.get('seconds')} s per path, "
             f"while the rest of the machine was as loaded as in the scenarios. Percentages are of relayd's samples "
             f"(all threads), listed busiest first. relayd's threads, in the order they start (thread ids grow in "
             f"that order): the event loop (HTTP, JSON, scheduler), RocksDB's `rocksdb:low` and `rocksdb:high`, "
             f"the commit pipeline's writer, the two threads of the blocking pool (scans, the scheduler's loader), "
             f"the egress thread (curl)."]
    for key, title, figure in (("ingest", "Ingest path (scenario 1's load: durable ingest, deliveries held)",
                                lambda d: f"{n(d.get('rps'))} events/s while recording, "
                                          f"{n(d.get('cpu_us_per_event'), 0)} us of relayd CPU per event"),
                               ("delivery", "Delivery path (held deliveries released to the sink, no ingest)",
                                lambda d: f"{n(d.get('rate'))} deliveries/s while recording, "
                                          f"{n(d.get('cpu_us_per_delivery'), 0)} us of relayd CPU per delivery")):
        d = p.get(key)
        if not d:
            continue
        parts += ["", f"### {title}", "", figure(d) + f"; data `{d.get('data')}`.", "",
                  "By thread:", "```", d.get("by_thread", ""), "```",
                  "By shared object:", "```", d.get("by_dso", ""), "```",
                  "Self time by symbol (>= 0.8%):", "```", d.get("self", ""), "```",
                  "Inclusive time (children) of relay's functions and the costly library entry points (>= 2%):",
                  "```", d.get("inclusive", ""), "```"]
    return "\n".join(parts)


def render(res, findings_path):
    m = res.get("machine", {})
    cfg = res.get("config", {})
    parts = [
        "# relay benchmark results",
        "",
        f"Written by `benchmarks/run.sh` on {res.get('date')}, commit `{res.get('commit')}`"
        f"{' (with uncommitted changes)' if res.get('dirty') else ''}, relayd built Release "
        f"(`{res.get('build_dir')}`). Suite time {n(res.get('total_s', 0) / 60, 1)} min. Raw figures: "
        f"`results.json` next to this file. How to read them: `benchmarks/README.md`; re-render this file "
        f"from them with `cd benchmarks && python3 -m harness.main --render results.json`.",
        "",
        "## Machine",
        "",
        f"- {m.get('nproc')} cores ({m.get('cpu_model')}), {m.get('mem_gib')} GiB memory, Linux {m.get('kernel')}",
        f"- disk: `{(m.get('df') or '').splitlines()[-1] if m.get('df') else 'n/a'}`; "
        f"mount `{m.get('mount')}`",
        "- block devices:",
        "```",
        m.get("lsblk", ""),
        "```",
        f"- load before: `{res.get('load_before')}`",
        f"- load after: `{res.get('load_after')}`",
        "- load after each step: " + "; ".join(f"{k}: `{v.split('load average:')[-1].strip()}`"
                                              for k, v in (res.get("load_during") or {}).items()),
        "",
        "- append + fdatasync of 1.4 KB on the data disk, p50 / p99 (200 writes, before and after each step): "
        + "; ".join(f"{k}: {ms(v.get('p50_ms'))} / {ms(v.get('p99_ms'))} then "
                    f"{ms(_get(res, 'fdatasync_after', k, 'p50_ms'))} / {ms(_get(res, 'fdatasync_after', k, 'p99_ms'))}"
                    for k, v in (res.get("fdatasync_before") or {}).items()),
        "",
        "The machine is shared: other engineers build on the same 2 cores while the suite runs, so absolute "
        "figures move from run to run; every scenario runs its baseline in the same invocation and the ratios are "
        "the steadier figures. wrk, nginx and relayd share the 2 cores too.",
        "",
        f"Settings: {cfg.get('duration')} s per measured run, {cfg.get('warmup')} s warm-up, "
        f"{cfg.get('connections')} connections, {cfg.get('wrk_threads')} wrk threads, nginx "
        f"{cfg.get('nginx_workers')} workers per instance, 1 KiB event body (`benchmarks/payloads/event_1k.json`).",
        "",
        "## Summary against the targets of issue 5",
        "",
        summary(res),
        "",
        "## Scenarios",
        "",
        details(res),
        "",
        "## Micro-benchmarks",
        "",
        micro(res),
        "",
        "## Profiles",
        "",
        profile(res),
        "",
    ]
    if findings_path:
        with open(findings_path) as f:
            parts += ["## Findings", "",
                      "_Written by hand from the profile and figures of the committed run (benchmarks/FINDINGS.md); "
                      "re-check them against the figures above after a new run._", "", f.read()]
    return "\n".join(parts)

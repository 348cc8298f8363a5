"""Reading relayd's /metrics: Prometheus text format into samples, sums and histogram quantiles."""

import math
import re

_LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels)): value} for every sample line."""
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _LINE.match(line)
        if not m:
            continue
        labels = frozenset(_LABEL.findall(m.group(3) or ""))
        try:
            samples[(m.group(1), labels)] = float(m.group(4))
        except ValueError:
            pass
    return samples


def total(samples, name, **labels):
    """Sum of every series of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def histogram_quantile(before, after, name, q, **labels):
    """Quantile q of observations made between two scrapes, interpolated inside the bucket as
    Prometheus' histogram_quantile() does. None when nothing was observed."""
    want = set(labels.items())
    buckets = {}
    for (n, ls), v in after.items():
        if n != name + "_bucket":
            continue
        ls_dict = dict(ls)
        le = ls_dict.pop("le")
        if not want <= set(ls_dict.items()):
            continue
        prev = before.get((n, ls), 0.0) if before else 0.0
        bound = math.inf if le == "+Inf" else float(le)
        buckets[bound] = buckets.get(bound, 0.0) + (v - prev)
    if not buckets:
        return None
    bounds = sorted(buckets)
    count = buckets[bounds[-1]]
    if count <= 0:
        return None
    rank = q * count
    lower, below = 0.0, 0.0
    for bound in bounds:
        cumulative = buckets[bound]
        if cumulative >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bucket: its upper bound is all we know
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside > 0 else 1.0)
        lower, below = bound, cumulative
    return lower


def histogram_mean(before, after, name, **labels):
    s = total(after, name + "_sum", **labels) - (total(before, name + "_sum", **labels) if before else 0)
    c = total(after, name + "_count", **labels) - (total(before, name + "_count", **labels) if before else 0)
    return s / c if c > 0 else None

"""Samples relayd while a load runs: backlog (from counters), succeeded deliveries, RSS."""

import threading
import time

from . import procstat


class Poller:
    """Calls `sample()` every `interval` seconds on a thread while in its `with` block and keeps
    (seconds since the block began, *what it answered); a sample that fails (relayd busy or
    gone) is skipped."""

    def __init__(self, sample, interval=0.5):
        self.sample = sample
        self.interval = interval
        self.samples = []
        self.started = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self):
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append((time.monotonic() - self.started,) + tuple(self.sample()))
            except (OSError, RuntimeError):
                pass
            self._stop.wait(self.interval)


class Sampler(Poller):
    """Samples (seconds since start, outstanding, succeeded, rss_kib)."""

    def __init__(self, relay, interval=0.5):
        super().__init__(self._sample, interval)
        self.relay = relay

    def _sample(self):
        m = self.relay.metrics()
        return self.relay.outstanding(m), self.relay.succeeded(m), procstat.status_kib(self.relay.pid, "VmRSS")

    def backlog_slope(self, skip_seconds=2.0):
        """Least-squares slope of the backlog (deliveries per second) after the first seconds."""
        points = [(t, b) for t, b, _, _ in self.samples if t >= skip_seconds]
        if len(points) < 3:
            return 0.0
        n = len(points)
        mean_t = sum(t for t, _ in points) / n
        mean_b = sum(b for _, b in points) / n
        var = sum((t - mean_t) ** 2 for t, _ in points)
        if var == 0:
            return 0.0
        return sum((t - mean_t) * (b - mean_b) for t, b in points) / var

    def max_rss_kib(self):
        return max((s[3] for s in self.samples), default=0)

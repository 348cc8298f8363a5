"""relayd under test: start, readiness, its API and metrics, stop."""

import http.client
import json
import os
import signal
import subprocess
import time

from . import prom
from .nginx import free_port

ADMIN_KEY = "bench-admin-key-0123456789"
INGEST_KEY = "bench-ingest-key-0123456789"


class Relayd:
    def __init__(self, binary, data_dir, log_path, durability="fsync", extra_args=(), port=None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.durability = durability
        self.extra_args = list(extra_args)  # cluster mode: --cluster-etcd, --shard, --advertise
        self.port = port or free_port()
        self.process = None

    def start(self, timeout=60.0):
        """Starts relayd and returns the seconds from exec to the first /readyz 200."""
        os.makedirs(self.data_dir, exist_ok=True)
        cmd = [self.binary, "--listen", f"127.0.0.1:{self.port}", "--data-dir", self.data_dir,
               "--api-key", f"admin:{ADMIN_KEY}", "--api-key", f"ingest:{INGEST_KEY}",
               "--durability", self.durability, "--allow-cidr", "127.0.0.0/8", "--log-level", "warn"] + self.extra_args
        started = time.monotonic()
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(self.log_path, "a"))
        deadline = started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"relayd exited with {self.process.returncode}; see {self.log_path}")
            try:
                status, _ = self.request("GET", "/readyz", timeout=0.5)
                if status == 200:
                    return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.005)
        raise RuntimeError(f"relayd not ready after {timeout}s; see {self.log_path}")

    def stop(self, timeout=30.0):
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    @property
    def pid(self):
        return self.process.pid

    @property
    def events_url(self):
        return f"http://127.0.0.1:{self.port}/v1/events"

    def request(self, method, path, body=None, timeout=10.0):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
            data = None
            if body is not None:
                data = json.dumps(body)
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def api(self, method, path, body=None):
        status, data = self.request(method, path, body)
        if status >= 300:
            raise RuntimeError(f"{method} {path} answered {status}: {data[:300]!r}")
        return json.loads(data) if data else None

    def subscribe(self, url, **fields):
        return self.api("POST", "/v1/subscriptions", dict({"url": url, "event_types": ["meeting.*"]}, **fields))

    def metrics(self):
        status, data = self.request("GET", "/metrics")
        if status != 200:
            raise RuntimeError(f"/metrics answered {status}")
        return prom.parse(data.decode())

    def outstanding(self, samples=None):
        """Deliveries created by this process and not finished (succeeded or dead) yet: the
        backlog, read from counters (exact) rather than from the gauges (refreshed every second)."""
        s = samples if samples is not None else self.metrics()
        return (prom.total(s, "relay_deliveries_created_total")
                - prom.total(s, "relay_deliveries_succeeded_total")
                - prom.total(s, "relay_deliveries_dead_total"))

    def succeeded(self, samples=None):
        s = samples if samples is not None else self.metrics()
        return prom.total(s, "relay_deliveries_succeeded_total")

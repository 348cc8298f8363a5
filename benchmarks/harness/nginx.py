"""nginx on loopback, started by the harness with a generated configuration.

Two instances, so that the CPU time of each role can be read apart:
  - sink: the subscriber of every relay scenario; answers 200 to any POST and logs
    "$msec $http_x_relay_delivery_id $http_webhook_id" so that ingest-to-delivery latency is
    measured on the receiving side (a delivery id starts with its creation time in milliseconds)
    and the ordered-delivery scenario can check each key's order by event id;
  - front: the baselines, on two ports: `ingest` answers POST /v1/events itself with a 202 and a
    body shaped like relay's (the loopback ceiling of scenario 1); `proxy` forwards each POST to
    the sink over keep-alive connections (a relay without durability: scenario 2's ceiling).
Scenario 3's ceiling is wrk POSTing straight to the sink: the most POSTs per second any client
on this machine gets delivered. (nginx's `mirror` module was tried as a ten-way forwarder and
dropped: its subrequests do not reuse upstream connections, so it measured TIME_WAIT churn.)
"""

import os
import socket
import subprocess
import time

from . import procstat

_COMMON = """
daemon off;
master_process on;
worker_processes {workers};
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 8192; multi_accept on; }}
http {{
  client_body_temp_path {prefix}/client_body;
  proxy_temp_path {prefix}/proxy;
  fastcgi_temp_path {prefix}/fastcgi;
  uwsgi_temp_path {prefix}/uwsgi;
  scgi_temp_path {prefix}/scgi;
  client_body_buffer_size 1m;
  client_max_body_size 2m;
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  access_log off;
  default_type application/json;
{servers}
}}
"""

_SINK = """
  log_format bench '$msec $http_x_relay_delivery_id $http_webhook_id';
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    access_log {prefix}/sink.log bench buffer=256k flush=1s;
    location / {{ return 200 '{{"ok":true}}'; }}
  }}
"""

_FRONT = """
  upstream sink {{ server 127.0.0.1:{sink_port}; keepalive 1024; keepalive_requests 100000000; }}
  server {{
    listen 127.0.0.1:{ingest_port} backlog=4096;
    location / {{ return 202 '{{"id":"evt_0195f3a2b4c10000abcd000000000001","deliveries":1}}'; }}
  }}
  server {{
    listen 127.0.0.1:{proxy_port} backlog=4096;
    location / {{
      proxy_pass http://sink;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Nginx:
    def __init__(self, prefix, servers, workers):
        self.prefix = prefix
        os.makedirs(prefix, exist_ok=True)
        self.conf = os.path.join(prefix, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(_COMMON.format(prefix=prefix, workers=workers, servers=servers))
        self.process = None

    def start(self, ports):
        self.process = subprocess.Popen(["nginx", "-p", self.prefix, "-c", self.conf],
                                        stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.prefix, "stderr.log"), "w"))
        for port in ports:
            wait_port(port)

    @property
    def pid(self):
        return self.process.pid

    def stop(self):
        procstat.terminate(self.process)


class Sink(Nginx):
    def __init__(self, prefix, workers=1):
        self.port = free_port()
        super().__init__(prefix, _SINK.format(port=self.port, prefix=prefix), workers)
        self.log = os.path.join(prefix, "sink.log")

    def start(self):
        super().start([self.port])

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def log_offset(self):
        try:
            return os.path.getsize(self.log)
        except OSError:
            return 0

    def delivery_latencies_ms(self, offset):
        """Ingest-to-delivery latency of every delivery logged after `offset`: arrival time at the
        sink minus the creation time encoded in the delivery id (first 6 bytes, Unix ms)."""
        latencies = []
        with open(self.log) as f:
            f.seek(offset)
            for line in f:
                parts = line.split()
                if len(parts) < 2 or not parts[1].startswith("dlv_"):
                    continue
                created_ms = int(parts[1][4:16], 16)
                latencies.append(float(parts[0]) * 1000.0 - created_ms)
        return latencies


class Front(Nginx):
    def __init__(self, prefix, sink_port, workers):
        self.ingest_port, self.proxy_port = free_port(), free_port()
        servers = _FRONT.format(sink_port=sink_port, ingest_port=self.ingest_port, proxy_port=self.proxy_port)
        super().__init__(prefix, servers, workers)

    def start(self):
        super().start([self.ingest_port, self.proxy_port])

    def url(self, port):
        return f"http://127.0.0.1:{port}/v1/events"

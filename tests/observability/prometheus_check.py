#!/usr/bin/env python3
"""End-to-end check of relay's observability artefacts against a real relayd and a real Prometheus.

    python3 tests/observability/prometheus_check.py --relayd build/relayd --source-dir .

Steps (each failure is listed at the end; exit status 1 if there is any):
  1. promtool: `check rules` on deploy/prometheus/alerts.yml, `test rules` on alerts_test.yml.
  2. A single-node relayd on a free loopback port with a fresh data dir, a local subscriber
     answering 200 on /ok and /shards, 500 on /fail and 410 on /gone, one subscription per path
     of the three first, events published through the API (single, batch, a duplicate, a few
     4xx) and a dead-letter redrive.
  3. A two-shard cluster (spec section 7): a single-member etcd on free loopback ports, shards
     obs-a and obs-b (--cluster-etcd, --shard, --advertise). A subscription to /shards written
     through obs-a (waited for on obs-b), unkeyed events through each shard, one client id
     through both (its owner stores it, the other forwards its copy), and through a known shard
     one forwarded read (obs-b reads an event of obs-a), list (obs-b lists deliveries) and bulk
     write (a DLQ retry through obs-a).
  4. The single node's /metrics: `promtool check metrics` passes, every metric of spec section 5
     is exposed, no relay_cluster_* family is, and the counters and gauges hold the values the
     run's actions imply (events ingested and deduplicated, deliveries created, succeeded and
     dead per subscription, redriven, and deliveries by state once everything has ended).
  5. Each shard's /metrics: `promtool check metrics`, every spec metric, and the cluster
     families with their types and series: relay_cluster_shards{state="live"|"down"},
     relay_cluster_etcd_up, relay_cluster_forwarded_requests_total{kind="ingest"|"read"|"write"|
     "list"}. Their values: 2 live and 0 down shards and etcd up on both shards, each forwarded
     kind counted on the shard that forwarded it (ingest exactly once over both), and the events
     ingested, deduplicated, delivered and succeeded on each shard (the unkeyed events it was
     sent, and the keyed one on the shard that did not forward it).
  6. A real Prometheus (scrape interval 1s) scrapes the three under job `relay` (one instance
     each) and loads alerts.yml. Through its HTTP API: both shards' cluster series are there;
     every alert rule loaded, parses as a query and evaluates without error; the cluster alerts'
     expressions without their final threshold find series and the alerts are inactive; every
     dashboard expression (template variables substituted) parses and returns data, every label
     its legend names is on its series, and the Cluster row's stats show 2 live shards, 0 down
     and etcd up; every dashboard variable query finds series.

Only the Python standard library is used; `promtool` and `prometheus` come from Debian's
`prometheus` package, `etcd` from `etcd-server` (or --promtool / --prometheus / --etcd). Every
started process and temporary directory is cleaned up on exit, also on Ctrl-C.
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADMIN_KEY = "obs-check-admin-7d41c9e2b05a"

# Spec section 5: every family relayd must expose once it has seen traffic.
SPEC_METRICS = {
    "relay_http_requests_total": "counter",
    "relay_events_ingested_total": "counter",
    "relay_events_deduplicated_total": "counter",
    "relay_deliveries_created_total": "counter",
    "relay_delivery_attempts_total": "counter",
    "relay_deliveries_succeeded_total": "counter",
    "relay_deliveries_dead_total": "counter",
    "relay_dlq_redriven_total": "counter",
    "relay_http_request_duration_seconds": "histogram",
    "relay_delivery_attempt_duration_seconds": "histogram",
    "relay_delivery_latency_seconds": "histogram",
    "relay_storage_commit_duration_seconds": "histogram",
    "relay_storage_commit_batch_size": "histogram",
    "relay_deliveries": "gauge",
    "relay_oldest_pending_age_seconds": "gauge",
    "relay_circuit_state": "gauge",
    "relay_subscriptions": "gauge",
    "relay_storage_bytes": "gauge",
    "relay_build_info": "gauge",
    # Not in section 5, but the alert RelayJobFailed depends on it (deploy/prometheus/alerts.yml).
    "relay_jobs_finished_total": "counter",
    "process_cpu_seconds_total": "counter",
    "process_resident_memory_bytes": "gauge",
    "process_open_fds": "gauge",
    "process_start_time_seconds": "gauge",
}

# Cluster mode only (spec section 7): family -> (type, label sets of its series).
CLUSTER_METRICS = {
    "relay_cluster_shards": ("gauge", [{"state": "live"}, {"state": "down"}]),
    "relay_cluster_etcd_up": ("gauge", [{}]),
    "relay_cluster_forwarded_requests_total": ("counter", [{"kind": kind} for kind in ("ingest", "read", "write", "list")]),
}
CLUSTER_SHARDS = ("obs-a", "obs-b")
# The dashboard's Cluster row stat panels and their value for the healthy two-shard cluster.
CLUSTER_STATS = {"Shards live": 2, "Shards down": 0, "etcd": 1}
CLUSTER_RULE_GROUP = "relay-cluster"  # in deploy/prometheus/alerts.yml
CLUSTER_EVENTS_PER_SHARD = 3

# Grafana's built-in interval variables, as they would be with a 1s scrape interval.
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__interval_ms": "60000",
    "__range": "5m",
    "__range_s": "300",
    "__range_ms": "300000",
}


def log(message):
    print(message, flush=True)


class Failures:
    def __init__(self):
        self.items = []

    def add(self, what, detail):
        self.items.append((what, detail))
        log(f"  FAIL {what}: {detail}")


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=10):
    """Returns (status, body text); never raises for HTTP error statuses."""
    data = None
    headers = dict(headers or {})
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("Content-Type", "application/json")
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


def wait_until(what, deadline, probe, interval=0.5):
    """Polls `probe` (an external process's state) until it returns a truthy value or the deadline."""
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- subscriber

class Subscriber:
    """A webhook receiver: 200 on /ok and /shards (the cluster's), 500 on /fail, 410 on /gone;
    counts requests per path."""

    STATUS = {"/ok": 200, "/fail": 500, "/gone": 410, "/shards": 200}

    def __init__(self):
        self.counts = {path: 0 for path in self.STATUS}
        self.changed = threading.Condition()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urllib.parse.urlsplit(self.path).path
                status = subscriber.STATUS.get(path, 404)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")
                with subscriber.changed:
                    if path in subscriber.counts:
                        subscriber.counts[path] += 1
                    subscriber.changed.notify_all()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                # relayd may drop a connection (attempt timeout, shutdown): not a failure here.
                if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    super().handle_error(request, client_address)

        self.server = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def wait_for(self, path, count, timeout):
        with self.changed:
            return self.changed.wait_for(lambda: self.counts[path] >= count, timeout)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- relayd

class Relayd:
    def __init__(self, binary, data_dir, extra_args, startup_timeout, listen="127.0.0.1:0"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        args = [binary, "--listen", listen, "--data-dir", data_dir,
                "--api-key", f"admin:{ADMIN_KEY}", "--allow-cidr", "127.0.0.0/8"] + extra_args
        self.lines = []
        self.port = None
        self.listening = threading.Event()
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env=env, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        if not self.listening.wait(startup_timeout) or self.port is None:
            code = self.stop()
            raise RuntimeError(f"relayd did not log \"listening\" (exit code {code}):\n" + self.log_tail())

    def _read(self):
        for line in self.process.stderr:
            self.lines.append(line.rstrip("\n"))
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("msg") == "listening" and isinstance(record.get("port"), int):
                self.port = record["port"]
                self.listening.set()
        self.listening.set()  # stderr closed: relayd exited

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, method, path, body=None, key=ADMIN_KEY, headers=None):
        headers = dict(headers or {})
        if key:
            headers["Authorization"] = f"Bearer {key}"
        status, text = http(method, self.url(path), body, headers)
        try:
            return status, json.loads(text) if text else None
        except ValueError:
            return status, text

    def log_tail(self, n=40):
        return "\n".join(self.lines[-n:])

    def stop(self):
        """SIGTERM, then SIGKILL after a grace period; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.reader.join(timeout=5)
        return self.process.returncode


def start_shard(binary, data_dir, name, etcd_url, startup_timeout, tries=5):
    """relayd as shard `name` of the cluster in etcd_url. --advertise needs the port before relayd
    binds it: a port free when chosen may be taken meanwhile, and relayd then exits; try another.
    A retry reuses the data directory and shard name, as a restarted shard does."""
    for attempt in range(1, tries + 1):
        port = free_port()
        try:
            shard = Relayd(binary, data_dir, ["--cluster-etcd", etcd_url, "--shard", name,
                                              "--advertise", f"http://127.0.0.1:{port}"],
                           startup_timeout, listen=f"127.0.0.1:{port}")
            shard.name = name
            return shard
        except RuntimeError as error:
            if attempt == tries or "already in use" not in str(error).lower():
                raise
            log(f"  shard {name}: port {port} was taken, trying another")


# ---------------------------------------------------------------- etcd and prometheus

class ServerProcess:
    """A server on free loopback ports, its output in a log file. It takes port numbers, not
    bound sockets: a port free when chosen may be taken by another process before the server
    binds it, and the server then exits at start; _start tries other ports."""

    START_TRIES = 5

    def _start(self, what, log_path, launch, ready, deadline, interval=0.5):
        """launch(log_file) picks ports, sets self.process and answers the ports (for the log);
        ready() answers whether the server serves (an OSError or ValueError counts as no)."""
        self.log_path = log_path
        for attempt in range(1, self.START_TRIES + 1):
            self.log_file = open(self.log_path, "w")
            ports = launch(self.log_file)
            try:
                wait_until(f"{what} to be ready", deadline, lambda: self._probe(what, ready), interval=interval)
                return
            except RuntimeError:
                tail = self.log_tail()
                self.stop()
                if attempt == self.START_TRIES or "address already in use" not in tail:
                    raise
                log(f"  {what}: port {ports} was taken, trying another")
            except TimeoutError:
                self.stop()
                raise

    def _probe(self, what, ready):
        if self.process.poll() is not None:
            raise RuntimeError(f"{what} exited with {self.process.returncode}:\n{self.log_tail()}")
        try:
            return ready()
        except (OSError, ValueError):
            return False

    def log_tail(self, n=30):
        self.log_file.flush()
        with open(self.log_path) as f:
            return "".join(f.readlines()[-n:])

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()


class Etcd(ServerProcess):
    """A single-member etcd v3 on free loopback ports with its data in work_dir."""

    def __init__(self, binary, work_dir, deadline):
        data_dir = os.path.join(work_dir, "etcd")

        def launch(log_file):
            shutil.rmtree(data_dir, ignore_errors=True)
            self.port, peer_port = free_port(), free_port()
            self.client_url = client = f"http://127.0.0.1:{self.port}"
            peer = f"http://127.0.0.1:{peer_port}"
            # Short heartbeats: a single member elects itself within about half a second.
            self.process = subprocess.Popen(
                [binary, "--name", "obs", "--data-dir", data_dir,
                 "--listen-client-urls", client, "--advertise-client-urls", client,
                 "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                 "--initial-cluster", f"obs={peer}", "--initial-cluster-state", "new",
                 "--heartbeat-interval", "50", "--election-timeout", "500", "--logger", "zap", "--log-level", "warn"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
            return f"{self.port} or {peer_port}"

        self._start("etcd", os.path.join(work_dir, "etcd.log"), launch, self._healthy, deadline, interval=0.1)

    def _healthy(self):
        status, text = http("GET", self.client_url + "/health", timeout=2)
        return status == 200 and json.loads(text).get("health") == "true"


class Prometheus(ServerProcess):
    def __init__(self, binary, work_dir, targets, rules_file, deadline):
        config = os.path.join(work_dir, "prometheus.yml")
        with open(config, "w") as f:
            f.write(
                "global:\n"
                "  scrape_interval: 1s\n"
                "  scrape_timeout: 1s\n"
                "  evaluation_interval: 1s\n"
                "rule_files:\n"
                f"  - {json.dumps(rules_file)}\n"
                "scrape_configs:\n"
                "  - job_name: relay\n"
                "    static_configs:\n"
                f"      - targets: {json.dumps(targets)}\n")

        def launch(log_file):
            self.port = free_port()
            self.process = subprocess.Popen(
                [binary, f"--config.file={config}", f"--storage.tsdb.path={os.path.join(work_dir, 'tsdb')}",
                 f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT)
            return self.port

        self._start("prometheus", os.path.join(work_dir, "prometheus.log"), launch,
                    lambda: http("GET", self.url("/-/ready"), timeout=2)[0] == 200, deadline)

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def api(self, path, **params):
        status, text = http("GET", self.url(path + "?" + urllib.parse.urlencode(params)))
        try:
            return json.loads(text)
        except ValueError:
            return {"status": "error", "error": f"HTTP {status}: {text[:200]}"}

    def query(self, expr):
        return self.api("/api/v1/query", query=expr)


# ---------------------------------------------------------------- dashboard

def dashboard_queries(dashboard):
    """(panel title, refId, expr, legendFormat) of every target of every panel, rows included."""
    out = []

    def walk(panels):
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    out.append((panel.get("title", "?"), target.get("refId", "?"), target["expr"],
                                target.get("legendFormat", "")))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    return out


def template_variables(dashboard):
    return [v for v in dashboard.get("templating", {}).get("list", [])]


def substitute(expr, variables):
    """Replaces $name, ${name} and ${name:format} of known variables; leaves the others, such as
    label_replace's ${1}, untouched."""
    def replace(match):
        return variables.get(match.group(1) or match.group(2), match.group(0))
    return re.sub(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)", replace, expr)


def has_data(response):
    if response.get("status") != "success":
        return False
    data = response.get("data", {})
    if data.get("resultType") == "scalar":
        return True
    return bool(data.get("result"))


# ---------------------------------------------------------------- steps

def run(cmd, **kwargs):
    return subprocess.run(cmd, capture_output=True, text=True, **kwargs)


def check_promtool_rules(promtool, prometheus_dir, failures):
    log("== promtool: alert rules")
    alerts = os.path.join(prometheus_dir, "alerts.yml")
    tests = os.path.join(prometheus_dir, "alerts_test.yml")
    checked = run([promtool, "check", "rules", alerts])
    if checked.returncode != 0:
        failures.add("promtool check rules", (checked.stdout + checked.stderr).strip())
    else:
        log("  ok   " + " ".join(checked.stdout.split()))
    tested = run([promtool, "test", "rules", tests])
    if tested.returncode != 0:
        failures.add("promtool test rules", (tested.stdout + tested.stderr).strip())
    else:
        log("  ok   promtool test rules alerts_test.yml")
    match = re.search(r"(\d+) rules found", checked.stdout)
    return int(match.group(1)) if match else None


def create_subscriptions(relayd, subscriber, failures):
    log("== relayd: subscriptions")
    fast_retry = {"initial": "200ms", "max_delay": "500ms", "window": "3s"}
    wanted = {
        "ok": {"url": subscriber.url("/ok"), "event_types": ["meeting.*"], "description": "obs check: 200"},
        "fail": {"url": subscriber.url("/fail"), "event_types": ["meeting.*"], "retry": fast_retry,
                 "description": "obs check: 500"},
        "gone": {"url": subscriber.url("/gone"), "event_types": ["meeting.*"], "description": "obs check: 410"},
    }
    ids = {}
    for name, body in wanted.items():
        status, answer = relayd.api("POST", "/v1/subscriptions", body)
        if status != 201 or not isinstance(answer, dict) or "id" not in answer:
            failures.add(f"POST /v1/subscriptions ({name})", f"status {status}: {answer}")
            continue
        ids[name] = answer["id"]
        log(f"  ok   {name}: {answer['id']} -> {body['url']}")
    return ids


def publish(relayd, failures, count):
    log("== relayd: events")
    for i in range(count):
        body = {"type": "meeting.completed",
                "payload": {"bot_id": f"bot-{i}", "event": "complete", "data": {"duration_s": 1800 + i,
                                                                               "speakers": ["Ada", "Grace"]}}}
        status, answer = relayd.api("POST", "/v1/events", body)
        if status != 202:
            failures.add("POST /v1/events", f"status {status}: {answer}")
            return
    batch = {"events": [{"type": "meeting.started", "payload": {"n": n}} for n in range(5)]}
    status, answer = relayd.api("POST", "/v1/events/batch", batch)
    if status != 200:
        failures.add("POST /v1/events/batch", f"status {status}: {answer}")
    # A client id sent twice: the second is deduplicated.
    for _ in range(2):
        relayd.api("POST", "/v1/events", {"type": "meeting.left", "payload": {}, "id": "obs-check-dedup-1"})
    # Some 4xx for the error panels.
    relayd.api("GET", "/v1/events/evt_does_not_exist")
    relayd.api("POST", "/v1/events", {"type": "meeting.completed", "payload": {}}, key=None)
    relayd.api("POST", "/v1/events", b"{not json", headers={"Content-Type": "application/json"})
    log(f"  ok   {count} single events, a batch of 5, a duplicate, three 4xx requests")


def redrive(relayd, gone_id, deadline, failures):
    log("== relayd: dead-letter queue")

    def dead_deliveries():
        status, answer = relayd.api("GET", f"/v1/dlq?subscription_id={gone_id}&limit=10")
        return status == 200 and isinstance(answer, dict) and answer.get("items")

    try:
        wait_until("dead deliveries in GET /v1/dlq", deadline, dead_deliveries)
    except TimeoutError as error:
        failures.add("dead-letter queue", str(error))
        return
    status, answer = relayd.api("POST", "/v1/dlq/retry", {"subscription_id": gone_id})
    if status != 200 or not isinstance(answer, dict) or not answer.get("retried"):
        failures.add("POST /v1/dlq/retry", f"status {status}: {answer}")
        return 0
    log(f"  ok   redrove {answer['retried']} dead deliveries")
    return answer["retried"]


def parse_samples(text):
    """{(name, frozenset of (label, value))): value} of a Prometheus text exposition."""
    samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)", line)
        if not match:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        samples[(match.group(1), labels)] = float(match.group(3))
    return samples


def metric_value(samples, name, labels):
    """The sum of the samples of `name` whose labels include `labels`; None if there is none."""
    matching = [v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= ls]
    return sum(matching) if matching else None


def scrape_samples(relayd):
    status, text = http("GET", relayd.url("/metrics"))
    return parse_samples(text) if status == 200 else {}


def expect_values(nodes, expected, what, deadline, failures):
    """Waits until every node's /metrics holds the expected values, or the deadline; then lists
    what differs. `expected(samples)` answers [(name, labels, {node name: value})] from the
    samples of every node (by name), so that what is expected may follow from what was scraped."""

    def mismatches():
        samples = {node.name: scrape_samples(node) for node in nodes}
        wrong = []
        for name, labels, wants in expected(samples):
            for node_name, want in wants.items():
                got = metric_value(samples[node_name], name, labels)
                if got != want:
                    wrong.append((f"{node_name}: {name}{labels}", got, want))
        return wrong

    wrong = mismatches()
    while wrong and time.monotonic() < deadline:
        time.sleep(0.5)
        wrong = mismatches()
    for where, got, want in wrong:
        failures.add(what, f"{where}: {got}, expected {want}")
    return not wrong


def check_values(relayd, ids, events, redriven, deadline, failures):
    """The counters and gauges tell what the run did: every number below follows from the
    actions of publish() and redrive() and from the three subscribers' answers."""
    log("== relayd /metrics: values after known actions")
    published = events + 5 + 1  # single events, the batch, the first of the duplicate pair
    expected = [
        ("relay_events_ingested_total", {}, published),
        ("relay_events_deduplicated_total", {}, 1),
        ("relay_deliveries_created_total", {}, 3 * published),
        ("relay_dlq_redriven_total", {}, redriven),
        # /gone answers 410: every delivery dies at once, and the redriven ones die again.
        ("relay_deliveries_dead_total", {"subscription": ids.get("gone", "")}, published + redriven),
        # /fail answers 500 until its 3s window closes.
        ("relay_deliveries_dead_total", {"subscription": ids.get("fail", "")}, published),
        ("relay_deliveries_succeeded_total", {"subscription": ids.get("ok", "")}, published),
        ("relay_deliveries_succeeded_total", {"subscription": ids.get("gone", "")}, 0),
        # Everything has ended: what is dead is on disk, nothing waits or runs.
        ("relay_deliveries", {"state": "dead"}, 2 * published),
        ("relay_deliveries", {"state": "pending"}, 0),
        ("relay_deliveries", {"state": "scheduled"}, 0),
        ("relay_deliveries", {"state": "in_flight"}, 0),
        # No job ran: every series of the job counter is there, at 0.
        ("relay_jobs_finished_total", {"kind": "replay", "state": "failed"}, 0),
        ("relay_jobs_finished_total", {"kind": "dlq_retry", "state": "failed"}, 0),
    ]
    if expect_values([relayd], lambda _: [(name, labels, {relayd.name: want}) for name, labels, want in expected],
                     "metric value", deadline, failures):
        log(f"  ok   {len(expected)} counters and gauges hold the expected values")


def check_exposition(relayd, what, cluster, promtool, deadline, failures):
    """`what`'s /metrics passes promtool, carries every spec metric, and carries the cluster
    families (with their types and label values) if and only if `cluster`."""
    log(f"== {what} /metrics")

    def scrape():
        status, text = http("GET", relayd.url("/metrics"))
        if status != 200:
            raise RuntimeError(f"GET {what} /metrics answered {status}")
        return text, dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))

    # Some gauges are set from periodic snapshots: wait for the first one to cover them all.
    text, types = scrape()
    while any(name not in types for name in SPEC_METRICS) and time.monotonic() < deadline:
        time.sleep(0.5)
        text, types = scrape()
    checked = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    findings = (checked.stdout + checked.stderr).strip()
    if checked.returncode != 0 or findings:
        failures.add(f"{what}: promtool check metrics", findings or f"exit {checked.returncode}")
    else:
        log("  ok   promtool check metrics")
    problems = 0
    for name, kind in SPEC_METRICS.items():
        if name not in types:
            failures.add(f"{what}: exposition", f"{name} missing")
            problems += 1
        elif types[name] != kind:
            failures.add(f"{what}: exposition", f"{name} is a {types[name]}, expected {kind}")
            problems += 1
    if not problems:
        log(f"  ok   every spec metric exposed ({len(types)} families)")

    cluster_families = sorted(name for name in types if name.startswith("relay_cluster_"))
    if not cluster:
        if cluster_families:
            failures.add(f"{what}: exposition", f"a single node exports {', '.join(cluster_families)}")
        else:
            log("  ok   no relay_cluster_* family (single node)")
        return
    samples = parse_samples(text)
    problems = 0
    for name, (kind, label_sets) in CLUSTER_METRICS.items():
        series = sorted(sorted(ls) for (n, ls) in samples if n == name)
        wanted = sorted(sorted(ls.items()) for ls in label_sets)
        if types.get(name) != kind:
            failures.add(f"{what}: exposition", f"{name} is a {types.get(name, 'missing family')}, expected {kind}")
            problems += 1
        elif series != wanted:
            failures.add(f"{what}: exposition", f"{name} has the series {series}, expected {wanted}")
            problems += 1
    if not problems:
        log(f"  ok   cluster families: {', '.join(CLUSTER_METRICS)}")


# ---------------------------------------------------------------- cluster

def cluster_traffic(shards, subscriber, deadline, failures):
    """Through a two-shard cluster: a subscription (written through etcd), unkeyed events
    through each shard (stored where they arrive), one client id through both shards (its owner
    stores it, the other forwards its copy), and one call of each other forwarded kind through
    a known shard. Returns what check_cluster_values expects, or None."""
    log("== cluster: subscription and traffic")
    a, b = shards
    before = len(failures.items)
    # Owners of keys and forwarding follow the live shards each shard sees (etcd's watch).
    try:
        wait_until("both shards to see 2 live shards", deadline, lambda: all(
            metric_value(scrape_samples(shard), "relay_cluster_shards", {"state": "live"}) == len(shards)
            for shard in shards), interval=0.1)
    except TimeoutError as error:
        failures.add("cluster membership", str(error))
        return None
    body = {"url": subscriber.url("/shards"), "event_types": ["meeting.*"], "description": "obs check: cluster"}
    status, answer = a.api("POST", "/v1/subscriptions", body)
    if status != 201 or not isinstance(answer, dict) or "id" not in answer:
        failures.add(f"{a.name}: POST /v1/subscriptions", f"status {status}: {answer}")
        return None
    sub_id = answer["id"]
    # b must use the subscription before it stores events for it (etcd's watch: within 1 s).
    try:
        wait_until(f"{b.name} to mirror {sub_id}", deadline,
                   lambda: b.api("GET", f"/v1/subscriptions/{sub_id}")[0] == 200, interval=0.1)
    except TimeoutError as error:
        failures.add("cluster subscription", str(error))
        return None

    stored = {}
    for shard in shards:
        for i in range(CLUSTER_EVENTS_PER_SHARD):
            status, answer = shard.api("POST", "/v1/events", {"type": "meeting.completed",
                                                              "payload": {"shard": shard.name, "n": i}})
            if status != 202 or not isinstance(answer, dict) or answer.get("deliveries") != 1:
                failures.add(f"{shard.name}: POST /v1/events", f"status {status}: {answer}")
                return None
            stored.setdefault(shard.name, answer["id"])
    # Whichever shard owns the key, exactly one of the two requests is forwarded.
    for shard, want in ((a, 202), (b, 200)):
        status, answer = shard.api("POST", "/v1/events", {"type": "meeting.left", "payload": {}},
                                   headers={"Idempotency-Key": "obs-check-cluster-1"})
        if status != want:
            failures.add(f"{shard.name}: POST /v1/events with a client id", f"status {status} (expected {want}): {answer}")
    events = 2 * CLUSTER_EVENTS_PER_SHARD + 1

    # read: b answers for a's event; list: b merges a's part; write: a runs b's part of a bulk call.
    status, answer = b.api("GET", f"/v1/events/{stored[a.name]}")
    if status != 200 or not isinstance(answer, dict) or answer.get("id") != stored[a.name]:
        failures.add(f"{b.name}: GET /v1/events/{{id of {a.name}}}", f"status {status}: {answer}")
    status, answer = b.api("GET", f"/v1/deliveries?subscription_id={sub_id}&limit=100")
    items = answer.get("items") if isinstance(answer, dict) else None
    if status != 200 or not isinstance(items, list) or len(items) != events or "incomplete" in answer:
        failures.add(f"{b.name}: GET /v1/deliveries", f"status {status}, expected {events} items: {answer}")
    status, answer = a.api("POST", "/v1/dlq/retry", {"subscription_id": sub_id})
    if status != 200 or not isinstance(answer, dict) or answer.get("retried") != 0:
        failures.add(f"{a.name}: POST /v1/dlq/retry", f"status {status}: {answer}")
    if len(failures.items) == before:
        log(f"  ok   {sub_id} written through {a.name}, {events} events, a read, a list and a bulk call")
    return {"subscription": sub_id, "events": events}


def check_cluster_values(shards, traffic, deadline, failures):
    """Each shard's cluster gauges and forwarded counters, and its event counters: the unkeyed
    events it was sent, and the keyed one if it owns the key (the shard that did not forward
    it), after cluster_traffic()."""
    log("== cluster /metrics: values after known actions")
    a, b = shards
    sub = traffic["subscription"]
    fixed = [
        ("relay_cluster_shards", {"state": "live"}, {a.name: 2, b.name: 2}),
        ("relay_cluster_shards", {"state": "down"}, {a.name: 0, b.name: 0}),
        ("relay_cluster_etcd_up", {}, {a.name: 1, b.name: 1}),
        ("relay_cluster_forwarded_requests_total", {"kind": "read"}, {a.name: 0, b.name: 1}),
        ("relay_cluster_forwarded_requests_total", {"kind": "list"}, {a.name: 0, b.name: 1}),
        ("relay_cluster_forwarded_requests_total", {"kind": "write"}, {a.name: 1, b.name: 0}),
    ]

    def expected(samples):
        forwarded = {shard.name: metric_value(samples[shard.name], "relay_cluster_forwarded_requests_total",
                                              {"kind": "ingest"}) for shard in shards}
        # Exactly one of the two shards forwarded the keyed event; the other owns its key.
        if sorted(forwarded.values()) != [0, 1]:
            return [("relay_cluster_forwarded_requests_total", {"kind": "ingest"}, {a.name: "0 or 1", b.name: "1 or 0"})]
        owner = a.name if forwarded[a.name] == 0 else b.name
        stored = {shard.name: CLUSTER_EVENTS_PER_SHARD + (shard.name == owner) for shard in shards}
        deduplicated = {shard.name: int(shard.name == owner) for shard in shards}
        return fixed + [
            ("relay_events_ingested_total", {}, stored),
            ("relay_events_deduplicated_total", {}, deduplicated),
            ("relay_deliveries_created_total", {}, stored),
            ("relay_deliveries_succeeded_total", {"subscription": sub}, stored),
        ]

    if expect_values(shards, expected, "cluster metric value", deadline, failures):
        log(f"  ok   {2 * (len(fixed) + 5)} values of the two shards as expected")


def check_cluster_series(prometheus, shards, deadline, failures):
    """Prometheus holds both shards' cluster series under job relay, one instance per shard."""
    log("== Prometheus: cluster series")
    instances = {f"127.0.0.1:{shard.port}" for shard in shards}
    expressions = [
        'relay_cluster_shards{job="relay", state="live"} == 2',
        'relay_cluster_shards{job="relay", state="down"} == 0',
        'relay_cluster_etcd_up{job="relay"} == 1',
        'count by (instance) (relay_cluster_forwarded_requests_total{job="relay"}) == 4',
    ]

    def found(expr):
        answer = prometheus.query(expr)
        return {r["metric"].get("instance") for r in answer.get("data", {}).get("result", [])
                if isinstance(r, dict)} if answer.get("status") == "success" else set()

    for expr in expressions:
        try:
            wait_until(expr, deadline, lambda: found(expr) == instances)
        except TimeoutError:
            failures.add("cluster series", f"{expr} holds for {sorted(found(expr))}, expected {sorted(instances)}")
            continue
        log(f"  ok   {expr}: {sorted(instances)}")


def check_rules(prometheus, expected_count, deadline, failures):
    log("== Prometheus: alert rules")

    def evaluated_rules():
        answer = prometheus.api("/api/v1/rules")
        rules = [dict(r, group=g.get("name")) for g in answer.get("data", {}).get("groups", [])
                 for r in g.get("rules", [])]
        # Every rule has been evaluated at least once (lastEvaluation is set).
        if rules and all(not r.get("lastEvaluation", "").startswith("0001") for r in rules):
            return rules
        return None

    try:
        rules = wait_until("alert rules to be evaluated", deadline, evaluated_rules)
    except TimeoutError as error:
        failures.add("rules", f"{error}; Prometheus log:\n{prometheus.log_tail()}")
        return
    if expected_count is not None and len(rules) != expected_count:
        failures.add("rules", f"Prometheus loaded {len(rules)} rules, promtool found {expected_count}")
    for rule in rules:
        name = rule.get("name")
        if rule.get("health") == "err":
            failures.add(f"rule {name}", f"evaluation error: {rule.get('lastError')}")
        answer = prometheus.query(rule["query"])
        if answer.get("status") != "success":
            failures.add(f"rule {name}", f"query failed: {answer.get('error')}")
    log(f"  ok   {len(rules)} rules loaded and evaluated" if rules else "  no rules")

    # The cluster alerts against the healthy two-shard cluster: their expressions without the
    # final threshold select the shards' real series, and the alerts stay inactive.
    cluster_rules = [r for r in rules if r.get("group") == CLUSTER_RULE_GROUP]
    if not cluster_rules:
        failures.add("rules", f"no rule in the group {CLUSTER_RULE_GROUP}")
    before = len(failures.items)
    states = {r.get("name"): r.get("state") for r in (evaluated_rules() or [])}
    for rule in cluster_rules:
        name = rule.get("name")
        operand = re.sub(r"\s*(==|!=|>=|<=|>|<)\s*[0-9.]+\s*$", "", rule["query"])
        if operand == rule["query"]:
            failures.add(f"rule {name}", "its expression does not end in a comparison with a number")
            continue
        if not has_data(prometheus.query(operand)):
            failures.add(f"rule {name}", f"without its threshold, its expression finds no series: {operand}")
        if states.get(name) != "inactive":
            failures.add(f"rule {name}", f"is {states.get(name)} on a healthy cluster")
    if cluster_rules and len(failures.items) == before:
        log(f"  ok   {len(cluster_rules)} cluster rules find the shards' series and are inactive")


def check_dashboard(prometheus, dashboard, deadline, failures):
    log("== Prometheus: dashboard expressions")
    variables = dict(BUILTIN_VARIABLES)
    for var in template_variables(dashboard):
        if var.get("type") in ("query", "custom", "textbox", "constant", "interval"):
            variables[var["name"]] = var.get("allValue") or ".*"
    targets = dashboard_queries(dashboard)
    queries = [(title, ref, expr, substitute(expr, variables)) for title, ref, expr, _ in targets]
    leftover = [(t, r, q) for t, r, _, q in queries if re.search(r"\$(?!\{\d)", q)]
    for title, ref, expr in leftover:
        failures.add(f"panel '{title}' {ref}", f"unsubstituted variable in {expr}")

    # Parse errors are final; empty results may fill as Prometheus scrapes more, so they are
    # re-queried until the deadline.
    pending = {}
    for index, (title, ref, _, expr) in enumerate(queries):
        answer = prometheus.query(expr)
        if answer.get("status") != "success":
            failures.add(f"panel '{title}' {ref}", f"does not parse: {answer.get('error')}\n      {expr}")
        else:
            pending[index] = expr
    while True:
        empty = [i for i, expr in pending.items() if not has_data(prometheus.query(expr))]
        if not empty or time.monotonic() >= deadline:
            break
        time.sleep(1)
    for index in empty:
        title, ref, _, expr = queries[index]
        failures.add(f"panel '{title}' {ref}", f"returns no data\n      {expr}")
    log(f"  ok   {len(pending) - len(empty)} of {len(queries)} expressions parse and return data")

    # A legend names labels ({{instance}}, ...) that every series of its expression must carry,
    # or Grafana shows a blank where the name should be.
    unlabelled = 0
    for index in set(pending) - set(empty):
        title, ref, _, expr = queries[index]
        wanted = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", targets[index][3]))
        result = prometheus.query(expr).get("data", {}).get("result", [])
        missing = sorted({label for series in result if isinstance(series, dict)
                          for label in wanted if label not in series.get("metric", {})})
        if missing:
            failures.add(f"panel '{title}' {ref}", f"legend {targets[index][3]!r} names {missing}, "
                                                   f"which some series lack\n      {expr}")
            unlabelled += 1
    if not unlabelled:
        log("  ok   every legend's labels are on its series")

    # The Cluster row's stats show the two-shard cluster as it is.
    stats = {title: expr for title, _, _, expr in queries if title in CLUSTER_STATS}
    for title, want in CLUSTER_STATS.items():
        answer = prometheus.query(stats.get(title, "absent_panel"))
        values = [float(r["value"][1]) for r in answer.get("data", {}).get("result", [])]
        if title not in stats or values != [want]:
            failures.add(f"panel '{title}'", f"shows {values}, expected [{want}]: {stats.get(title, 'no such panel')}")
        else:
            log(f"  ok   panel '{title}' shows {want}")

    log("== Prometheus: dashboard variables")
    for var in template_variables(dashboard):
        if var.get("type") != "query":
            continue
        definition = var.get("definition") or var.get("query", {}).get("query", "")
        match = re.fullmatch(r"\s*label_values\(\s*(.+?)\s*,\s*(\w+)\s*\)\s*", definition)
        if not match:
            failures.add(f"variable {var['name']}", f"unsupported query {definition!r}")
            continue
        selector, label = substitute(match.group(1), variables), match.group(2)
        answer = prometheus.api("/api/v1/series", **{"match[]": selector})
        values = {s.get(label) for s in answer.get("data", []) if s.get(label)} if answer.get("status") == "success" else set()
        if not values:
            failures.add(f"variable {var['name']}", f"no values of {label} in {selector}: {answer.get('error', '')}")
        else:
            log(f"  ok   ${var['name']}: {sorted(values)}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--relayd", required=True, help="path of the relayd binary")
    parser.add_argument("--source-dir", required=True, help="repository root (holds deploy/)")
    parser.add_argument("--promtool", default=shutil.which("promtool") or "promtool")
    parser.add_argument("--prometheus", default=shutil.which("prometheus") or "prometheus")
    parser.add_argument("--etcd", default=shutil.which("etcd") or "/usr/bin/etcd")
    parser.add_argument("--timeout", type=float, default=120, help="seconds for the whole run's waits")
    parser.add_argument("--events", type=int, default=30, help="single events to publish")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    deploy = os.path.join(os.path.abspath(args.source_dir), "deploy")
    prometheus_dir = os.path.join(deploy, "prometheus")
    for tool in (args.promtool, args.prometheus, args.etcd, args.relayd):
        if not (os.path.isfile(tool) and os.access(tool, os.X_OK)):
            log(f"error: {tool} is not an executable file")
            return 2
    with open(os.path.join(deploy, "grafana", "relay-dashboard.json")) as f:
        dashboard = json.load(f)

    # SIGTERM (e.g. from CTest's timeout) unwinds like Ctrl-C so that cleanup runs.
    def interrupted(*_):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, interrupted)

    failures = Failures()
    deadline = time.monotonic() + args.timeout
    rule_count = check_promtool_rules(args.promtool, prometheus_dir, failures)

    with contextlib.ExitStack() as cleanup:
        work_dir = tempfile.mkdtemp(prefix="relay-obs-check-")
        if args.keep:
            log(f"keeping {work_dir}")
        else:
            cleanup.callback(shutil.rmtree, work_dir, ignore_errors=True)

        subscriber = Subscriber()
        cleanup.callback(subscriber.close)
        exits = {}  # process name -> exit code on SIGTERM
        relayd, etcd, shards = None, None, []
        try:
            # Short global retry timings so that failing deliveries die within the run.
            relayd = Relayd(args.relayd, os.path.join(work_dir, "data"),
                            ["--retry-initial", "200ms", "--retry-max-delay", "500ms", "--retry-window", "3s"],
                            startup_timeout=max(1.0, deadline - time.monotonic()))
            relayd.name = "relayd"
            cleanup.callback(lambda: exits.setdefault("relayd (single node)", relayd.stop()))
            log(f"relayd (single node) listening on 127.0.0.1:{relayd.port}")

            # Stopped after the shards (ExitStack unwinds in reverse), so that they leave cleanly.
            etcd = Etcd(args.etcd, work_dir, deadline)
            cleanup.callback(etcd.stop)
            log(f"etcd serving on 127.0.0.1:{etcd.port}")
            for name in CLUSTER_SHARDS:
                shard = start_shard(args.relayd, os.path.join(work_dir, name), name, etcd.client_url,
                                    max(1.0, deadline - time.monotonic()))
                shards.append(shard)
                cleanup.callback(lambda shard=shard: exits.setdefault(f"shard {shard.name}", shard.stop()))
                log(f"relayd shard {name} listening on 127.0.0.1:{shard.port}")

            targets = [f"127.0.0.1:{r.port}" for r in [relayd] + shards]
            prometheus = Prometheus(args.prometheus, work_dir, targets,
                                    os.path.join(prometheus_dir, "alerts.yml"), deadline)
            cleanup.callback(prometheus.stop)
            log(f"prometheus listening on 127.0.0.1:{prometheus.port}, scraping {', '.join(targets)}")

            ids = create_subscriptions(relayd, subscriber, failures)
            publish(relayd, failures, args.events)
            traffic = cluster_traffic(shards, subscriber, deadline, failures)
            if not subscriber.wait_for("/ok", args.events, max(0.0, deadline - time.monotonic())):
                failures.add("deliveries", f"/ok received {subscriber.counts['/ok']} of {args.events}")
            redriven = redrive(relayd, ids["gone"], deadline, failures) if "gone" in ids else 0
            check_exposition(relayd, "relayd (single node)", False, args.promtool, deadline, failures)
            check_values(relayd, ids, args.events, redriven, deadline, failures)
            for shard in shards:
                check_exposition(shard, f"shard {shard.name}", True, args.promtool, deadline, failures)
            if traffic:
                check_cluster_values(shards, traffic, deadline, failures)
            check_cluster_series(prometheus, shards, deadline, failures)
            check_rules(prometheus, rule_count, deadline, failures)
            check_dashboard(prometheus, dashboard, deadline, failures)
        except (RuntimeError, TimeoutError, OSError) as error:
            failures.add("run", str(error))
        log(f"subscriber received {subscriber.counts}")
        if failures.items:
            for process in [relayd] + shards:
                if process is not None:
                    log(f"---- {process.name} log (last lines)\n" + process.log_tail())
            if etcd is not None:
                log("---- etcd log (last lines)\n" + etcd.log_tail())

    for what, code in exits.items():
        if code not in (0, None):
            log(f"note: {what} exited with {code} on SIGTERM (expected 0)")
    log("")
    if failures.items:
        log(f"FAILED: {len(failures.items)} problem(s)")
        for what, detail in failures.items:
            log(f"  - {what}: {detail}")
        return 1
    log("PASSED")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)

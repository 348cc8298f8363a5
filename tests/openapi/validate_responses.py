#!/usr/bin/python3
"""Checks relayd's real answers against docs/openapi.yaml.

    /usr/bin/python3 tests/openapi/validate_responses.py --relayd build/relayd --spec docs/openapi.yaml

Starts the real relayd (a free loopback port, a fresh data dir, an admin and an ingest key) and
a real subscriber (http.server in a thread: 200 on /ok, 410 on /gone, and /hold, which answers
only when the test lets it), then calls every operation of the document, with its successes and
the error statuses that can be reached (400, 401, 403, 404, 405, 409, 413, 415). Each answer's
body is validated against the schema of the operation's response for that status ($refs
resolved); an answer with a status the operation does not document is a failure. Request bodies
meant to be accepted must validate against the operation's request schema, and those meant to be
refused for their shape must not, so that the document is neither looser nor stricter than
relayd. At the end, every operation of the document must have been called. The document's own
examples are validated against their schemas first.

The jobs section makes 1,001 dead letters (a subscriber answering 410, whose circuit relayd opens
after 20 failures: `--circuit-probe-interval 1ms` lets the rest through as probes, and a 1 s retry
window ends those left waiting), so that POST /v1/dlq/retry answers 202 with a job, and runs
relayd with `--job-chunk 1` so that a job over them is still running when it is cancelled.

Needs Debian's python3-jsonschema (draft 2020-12) and python3-yaml (deploy/install-deps.sh).
Prints each failure as `METHOD PATH -> STATUS: problem` and exits 1 if there is any.
"""

import argparse
import datetime
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import yaml

ADMIN_KEY = "openapi-admin-3f9c1e7a5b"
INGEST_KEY = "openapi-ingest-8d2b6a4c0e"
MAX_BODY = 4096  # small, so that a 413 is cheap to provoke
# One event or dead letter per job chunk, with relayd's pause of 5 ms between chunks: a job over
# 1,000 of them runs for seconds at the very least, so that it is still running when the test
# cancels it right after starting it.
JOB_CHUNK = 1
INLINE_REDRIVE = 1000  # POST /v1/dlq/retry answers 202 {"job"} beyond this many matches
DEADLINE_S = 60.0


def log(message):
    print(message, flush=True)


# ---------------------------------------------------------------- the document

class Spec:
    """docs/openapi.yaml, with the schema of each operation's request and responses."""

    def __init__(self, path):
        with open(path, encoding="utf-8") as f:
            self.doc = yaml.safe_load(f)
        self.resolver = jsonschema.RefResolver(base_uri="", referrer=self.doc)
        self.operations = {(p, m.upper()) for p, item in self.doc["paths"].items()
                           for m in item if m in ("get", "post", "put", "patch", "delete")}

    def _deref(self, node):
        # Response and request-body objects may be OpenAPI $refs (not JSON Schema ones).
        while isinstance(node, dict) and "$ref" in node:
            target = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def operation(self, path, method):
        return self.doc["paths"][path][method.lower()]

    def errors(self, schema, instance):
        """The validation errors of `instance` against `schema` (a JSON Schema of the document)."""
        validator = jsonschema.Draft202012Validator(schema, resolver=self.resolver)
        return sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))

    def response(self, path, method, status):
        """(media type, schema) of a documented response; (None, None) for one without a body.
        Raises KeyError when the operation does not document the status."""
        responses = self.operation(path, method)["responses"]
        response = self._deref(responses[str(status)])
        content = response.get("content")
        if not content:
            return None, None
        media, body = next(iter(content.items()))
        return media, body.get("schema")

    def request_schema(self, path, method):
        body = self.operation(path, method).get("requestBody")
        if not body:
            return None
        return self._deref(body)["content"]["application/json"]["schema"]

    def error_schema(self):
        return {"$ref": "#/components/schemas/Error"}


def describe(error):
    where = "/".join(str(p) for p in error.absolute_path) or "(body)"
    return f"at {where}: {error.message}"


# ---------------------------------------------------------------- the subscriber

class Subscriber:
    """A real HTTP subscriber: /ok answers 200, /gone 410, /hold waits until released."""

    def __init__(self):
        self.release = threading.Event()
        self.held = threading.Event()
        subscriber = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path.startswith("/hold"):
                    subscriber.held.set()
                    subscriber.release.wait(DEADLINE_S)
                status = 410 if self.path.startswith("/gone") else 200
                body = b'{"status": "success"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # relayd may close once it has the status of an error answer

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            # relayd opens many connections at once (the jobs section sends a thousand events):
            # the default backlog of 5 would leave some to time out.
            request_queue_size = 256

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


# ---------------------------------------------------------------- relayd

class Relayd:
    def __init__(self, binary, data_dir):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
        args = [binary, "--listen", "127.0.0.1:0", "--data-dir", data_dir,
                "--api-key", f"admin:{ADMIN_KEY}", "--api-key", f"ingest:{INGEST_KEY}",
                "--allow-cidr", "127.0.0.0/8", "--max-body", str(MAX_BODY),
                "--job-chunk", str(JOB_CHUNK), "--circuit-probe-interval", "1ms"]
        self.lines = []
        self.port = None
        self.listening = threading.Event()
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, env=env, text=True)
        threading.Thread(target=self._read, daemon=True).start()
        if not self.listening.wait(DEADLINE_S) or self.port is None:
            self.stop()
            raise RuntimeError("relayd did not log \"listening\":\n" + "\n".join(self.lines[-50:]))

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
        self.listening.set()

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# ---------------------------------------------------------------- the checks

class Check:
    def __init__(self, spec, relayd):
        self.spec = spec
        self.relayd = relayd
        self.failures = []
        self.called = set()  # (path template, METHOD)
        self.seen = {}       # (path template, METHOD) -> set of statuses
        self.notes = []      # 1.1 members or behaviours this build did not show
        self.filled = set()  # 1.1 members seen with a value (see observe_1_1)

    def note(self, text):
        if text not in self.notes:
            self.notes.append(text)

    def fail(self, what, problem):
        self.failures.append(f"{what}: {problem}")
        log(f"  FAIL {what}: {problem}")

    def call(self, method, template, params=None, query="", body=None, raw=None, key=ADMIN_KEY,
             headers=None, expect=None, body_is_valid=None):
        """Calls relayd and validates the answer against the document. `template` is the
        document's path, `params` fills it in. `expect`: the status the scenario needs (a
        mismatch is a failure). `body_is_valid`: whether the document's request schema should
        accept `body` (checked when set). Returns (status, parsed body or text)."""
        path = template.format(**(params or {}))
        target = path + (f"?{query}" if query else "")
        what = f"{method} {target}"
        send_headers = dict(headers or {})
        if key is not None:
            send_headers.setdefault("Authorization", f"Bearer {key}")
        data = None
        if raw is not None:
            data = raw
        elif body is not None:
            data = json.dumps(body).encode()
            send_headers.setdefault("Content-Type", "application/json")
        connection = http.client.HTTPConnection("127.0.0.1", self.relayd.port, timeout=30)
        try:
            connection.request(method, target, body=data, headers=send_headers)
            response = connection.getresponse()
            status, text = response.status, response.read().decode("utf-8", "replace")
            content_type = response.getheader("Content-Type", "")
        finally:
            connection.close()

        if expect is not None and status != expect:
            self.fail(what, f"expected {expect}, got {status} {text[:300]}")
        documented = (template, method) in self.spec.operations
        if documented:
            self.called.add((template, method))
            self.seen.setdefault((template, method), set()).add(status)
        self._check_request(what, template, method, body, body_is_valid, documented)
        parsed = self._check_response(what, template, method, status, text, content_type, documented)
        return status, parsed

    def _check_request(self, what, template, method, body, body_is_valid, documented):
        if body_is_valid is None or not documented:
            return
        schema = self.spec.request_schema(template, method)
        if schema is None:
            self.fail(what, "the document describes no request body for this operation")
            return
        errors = self.spec.errors(schema, body)
        if body_is_valid and errors:
            self.fail(what, "relayd's example of a good body is refused by the request schema "
                      + describe(errors[0]))
        if not body_is_valid and not errors:
            self.fail(what, "the request schema accepts a body that relayd refuses")

    def _check_response(self, what, template, method, status, text, content_type, documented):
        if documented:
            try:
                media, schema = self.spec.response(template, method, status)
            except KeyError:
                self.fail(what, f"status {status} is not documented for this operation ({text[:200]})")
                return None
        else:
            # A path that is no route (404) or a method the path does not have (405): the error
            # object of the document.
            media, schema = "application/json", self.spec.error_schema()
        if media is None:
            if text:
                self.fail(what, f"{status} is documented without a body, got {text[:200]!r}")
            return None
        if not content_type.startswith(media):
            self.fail(what, f"Content-Type {content_type!r}, documented {media!r}")
        if media != "application/json":
            return text
        try:
            parsed = json.loads(text)
        except ValueError as error:
            self.fail(what, f"{status} answer is not JSON ({error}): {text[:200]}")
            return None
        for error in self.spec.errors(schema, parsed)[:3]:
            self.fail(f"{what} -> {status}", describe(error))
        observe_1_1(parsed, self.filled)
        return parsed

    def names_field(self, what, answer, field):
        """A 400 `invalid_field` answer must name the field at fault in its message."""
        message = ((answer or {}).get("error") or {}).get("message", "") if isinstance(answer, dict) else ""
        if f"'{field}'" not in message and field not in message.split():
            self.fail(what, f"the 400 answer does not name '{field}': {message!r}")

    def eventually(self, what, probe):
        """Polls `probe` (relayd's or the subscriber's state) until truthy or the deadline."""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            value = probe()
            if value:
                return value
            time.sleep(0.05)
        self.fail(what, f"not reached within {DEADLINE_S:.0f} s")
        return None


# The members added in contract 1.1, by the kind of object that carries them: the test reports
# those it never saw with a value, since a schema alone passes an always-null member.
MEMBERS_1_1 = {
    "event": ["tenant", "ordering_key"],
    "subscription": ["tenant", "filter", "ordering=key", "coalesce=true"],
    "delivery": ["tenant", "ordering_key", "blocked_by", "state=superseded"],
    "page": ["next_cursor"],
}


def observe_1_1(value, filled):
    """Records in `filled` which 1.1 members of MEMBERS_1_1 `value` (an answer) shows filled."""
    if isinstance(value, list):
        for item in value:
            observe_1_1(item, filled)
        return
    if not isinstance(value, dict):
        return
    ident = value.get("id") if isinstance(value.get("id"), str) else ""
    kind = ("event" if ident.startswith("evt_") and "payload" in value else
            "subscription" if ident.startswith("sub_") else
            "delivery" if ident.startswith("dlv_") else
            "page" if "items" in value else None)
    for member in MEMBERS_1_1.get(kind, []):
        name, _, wanted = member.partition("=")
        got = value.get(name)
        if (str(got).lower() == wanted) if wanted else got not in (None, "", {}, []):
            filled.add(f"{kind}.{member}")
    for child in value.values():
        observe_1_1(child, filled)


def check_examples(check):
    """The document's own examples (request bodies and responses) against their schemas."""
    spec = check.spec
    for template, method in sorted(spec.operations):
        operation = spec.operation(template, method)
        bodies = [("request", spec._deref(operation["requestBody"]))] if "requestBody" in operation else []
        bodies += [(status, spec._deref(r)) for status, r in operation["responses"].items()]
        for where, body in bodies:
            for media, content in body.get("content", {}).items():
                examples = [("example", content["example"])] if "example" in content else []
                examples += [(name, e["value"]) for name, e in content.get("examples", {}).items()]
                for name, value in examples:
                    if media != "application/json":
                        continue
                    for error in spec.errors(content["schema"], value)[:3]:
                        check.fail(f"{method} {template} {where} example {name}", describe(error))


def scopes_of(spec, template, method):
    """The key scopes an operation's security requirements name ([] when it needs no key)."""
    requirements = spec.operation(template, method).get("security", spec.doc.get("security", []))
    return sorted({scope for requirement in requirements for scopes in requirement.values() for scope in scopes})


def job_state(check, job_id):
    _, job = check.call("GET", "/v1/jobs/{id}", {"id": job_id}, expect=200)
    return (job or {}).get("state")


def dead_count(check, subscription_id):
    """The dead deliveries to a subscription, counted through GET /v1/dlq (every page validated)."""
    count, cursor = 0, None
    while True:
        query = f"subscription_id={subscription_id}&limit=1000" + (f"&cursor={cursor}" if cursor else "")
        _, page = check.call("GET", "/v1/dlq", query=query, expect=200)
        if not isinstance(page, dict):
            return count
        count += len(page.get("items", []))
        cursor = page.get("next_cursor")
        if not cursor:
            return count


def utc_millis(text):
    return round(datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp() * 1000)


def delivery_state(check, delivery_id):
    _, delivery = check.call("GET", "/v1/deliveries/{id}", {"id": delivery_id}, expect=200)
    return (delivery or {}).get("state")


def run(check, subscriber):
    call = check.call
    note = check.note

    log("== operations")
    call("GET", "/healthz", key=None, expect=200)
    call("GET", "/readyz", key=None, expect=200)
    call("GET", "/metrics", key=None, expect=200)

    log("== refusals before routing")
    call("GET", "/v1/subscriptions", key=None, expect=401)
    call("GET", "/v1/subscriptions", key="not-a-key", expect=401)
    call("GET", "/v1/subscriptions", key=None, headers={"X-Api-Key": ADMIN_KEY}, expect=200)
    call("GET", "/v1/subscriptions", key=INGEST_KEY, expect=403)
    # Every keyed operation: 401 without a key, 403 with an ingest key where admin is needed
    # (both are settled from the request's header, before the body and the id are looked at).
    for template, method in sorted(check.spec.operations):
        scopes = scopes_of(check.spec, template, method)
        if not scopes:
            continue
        params = {name: "x" for name in ("id", "delivery_id")}
        call(method, template, params, key=None, expect=401)
        if "ingest" not in scopes:
            call(method, template, params, key=INGEST_KEY, expect=403)
    call("GET", "/v1/no-such-route", expect=404)
    call("PUT", "/v1/events", body={}, expect=405)
    call("DELETE", "/healthz", key=None, expect=405)

    log("== subscriptions")
    meeting_sub = {
        "url": subscriber.url("/ok/webhooks/meetingbaas"), "tenant": "cust_acme",
        "event_types": ["meeting.*", "transcription.*"], "secret": "acme-webhook-secret-7f3k",
        "signature": {"scheme": "hmac-sha256-hex", "header": "X-MeetingBaas-Signature"},
        "headers": {"X-Customer": "acme"}, "description": "Acme: bot events",
        "retry": {"initial": "1s", "max_delay": None, "window": "2h"}, "timeout": "10s",
        "max_in_flight": 16, "rate_limit_per_second": 0,
    }
    _, acme = call("POST", "/v1/subscriptions", body=meeting_sub, expect=201, body_is_valid=True)
    audit_body = {"url": subscriber.url("/ok/audit"), "event_types": ["*"], "secret": None,
                  "description": "platform audit log, all tenants"}
    _, audit = call("POST", "/v1/subscriptions", body=audit_body, expect=201, body_is_valid=True)
    gone_body = {"url": subscriber.url("/gone/booking"), "tenant": "acct_64c8a1e2f0b3d4a5b6c7d8e9",
                 "event_types": ["booking.changed"],
                 "filter": {"payload.eventType": {"$in": ["BOOK", "RESCHEDULE", "CANCEL"]},
                            "payload.meetData.eventId": "6650a1f0c2d4e8a9b1c3d5e7"},
                 "ordering": "key", "secret": "bk_live_4f9a2c7e1d8b"}
    _, gone = call("POST", "/v1/subscriptions", body=gone_body, expect=201, body_is_valid=True)
    calendar_body = {"url": subscriber.url("/hold/webhook/recall/calendar?token=some-token-value"),
                     "tenant": "cust_myapp", "event_types": ["calendar.sync_events"],
                     "filter": {"payload.data.calendar_id": "123e4567-e89b-12d3-a456-426614174000"},
                     "ordering": "key", "coalesce": True, "enabled": True}
    _, calendar = call("POST", "/v1/subscriptions", body=calendar_body, expect=201, body_is_valid=True)
    if not all(isinstance(s, dict) and "id" in s for s in (acme, audit, gone, calendar)):
        raise RuntimeError("subscriptions could not be created; nothing else can be checked")

    call("POST", "/v1/subscriptions", body={"event_types": ["meeting.*"]}, expect=400, body_is_valid=False)
    call("POST", "/v1/subscriptions", body={"url": subscriber.url("/ok"), "evnt_types": ["*"]},
         expect=400, body_is_valid=False)
    call("POST", "/v1/subscriptions", body={"url": subscriber.url("/ok"), "coalesce": True}, expect=400)
    call("POST", "/v1/subscriptions",
         body={"url": subscriber.url("/ok"), "filter": {"$or": [{"type": "a"}, {"payload.n": {"$gt": [1]}}]}},
         expect=400)
    call("POST", "/v1/subscriptions", body={"url": subscriber.url("/ok"), "signature": {"scheme": "md5"}},
         expect=400, body_is_valid=False)
    call("POST", "/v1/subscriptions", raw=b'{"url": ', expect=400)
    call("POST", "/v1/subscriptions", raw=b'{"url": "http://x.example/"}',
         headers={"Content-Type": "text/plain"}, expect=415)
    call("POST", "/v1/subscriptions", raw=json.dumps({"url": "http://x.example/", "description": "x" * MAX_BODY}).encode(),
         headers={"Content-Type": "application/json"}, expect=413)

    _, page = call("GET", "/v1/subscriptions", query="limit=2", expect=200)
    if not (isinstance(page, dict) and page.get("next_cursor")):
        check.fail("GET /v1/subscriptions?limit=2", "no next_cursor although more subscriptions exist")
    else:
        call("GET", "/v1/subscriptions", query=f"limit=2&cursor={page['next_cursor']}", expect=200)
    call("GET", "/v1/subscriptions", query="tenant=cust_acme", expect=200)
    call("GET", "/v1/subscriptions/{id}", {"id": acme["id"]}, expect=200)
    call("GET", "/v1/subscriptions/{id}", {"id": "sub_00000000000000000000000000000000"}, expect=404)
    call("GET", "/v1/subscriptions/{id}", {"id": acme["id"]}, query="a=%zz", expect=400)

    patch = {"description": "Acme: bot and transcription events", "retry": {"window": None},
             "filter": {"payload.data.bot_id": {"$exists": True}}, "tenant": "cust_acme"}
    call("PATCH", "/v1/subscriptions/{id}", {"id": acme["id"]}, body=patch, expect=200, body_is_valid=True)
    call("PATCH", "/v1/subscriptions/{id}", {"id": acme["id"]}, body={"filter": None}, expect=200,
         body_is_valid=True)
    call("PATCH", "/v1/subscriptions/{id}", {"id": acme["id"]}, body={"secret": None}, expect=400,
         body_is_valid=False)
    call("PATCH", "/v1/subscriptions/{id}", {"id": acme["id"]}, body={"id": "sub_x"}, expect=400,
         body_is_valid=False)
    call("PATCH", "/v1/subscriptions/{id}", {"id": acme["id"]}, body={"max_in_flight": 0}, expect=400,
         body_is_valid=False)
    call("PATCH", "/v1/subscriptions/{id}", {"id": "sub_00000000000000000000000000000000"},
         body={"enabled": False}, expect=404, body_is_valid=True)

    call("POST", "/v1/subscriptions/{id}/rotate-secret", {"id": audit["id"]}, body={"grace_period": "24h"},
         expect=200, body_is_valid=True)
    call("POST", "/v1/subscriptions/{id}/rotate-secret", {"id": audit["id"]},
         body={"grace_period": "0s", "secret": "whsec_hJRfdktzX0IkbZYP3EAHjUsrhubfR4O2d/nbutygPLE="},
         expect=200, body_is_valid=True)
    call("POST", "/v1/subscriptions/{id}/rotate-secret", {"id": audit["id"]}, expect=200)
    call("POST", "/v1/subscriptions/{id}/rotate-secret", {"id": audit["id"]}, body={"grace_period": "a day"},
         expect=400, body_is_valid=False)
    call("POST", "/v1/subscriptions/{id}/rotate-secret", {"id": audit["id"]}, body={"grace": "1h"},
         expect=400, body_is_valid=False)
    call("POST", "/v1/subscriptions/{id}/rotate-secret", {"id": "sub_00000000000000000000000000000000"},
         expect=404)

    _, doomed = call("POST", "/v1/subscriptions", body={"url": subscriber.url("/ok/doomed"), "enabled": False},
                     expect=201, body_is_valid=True)
    if isinstance(doomed, dict):
        call("DELETE", "/v1/subscriptions/{id}", {"id": doomed["id"]}, expect=204)
        call("DELETE", "/v1/subscriptions/{id}", {"id": doomed["id"]}, expect=404)

    log("== events")
    meeting_event = {
        "type": "meeting.completed", "tenant": "cust_acme",
        "payload": {"event": "complete", "data": {
            "bot_id": "123e4567-e89b-12d3-a456-426614174000",
            "transcript": [{"speaker": "John Doe", "offset": 1.5,
                            "words": [{"start": 1.5, "end": 1.9, "word": "Hello"}]}],
            "speakers": ["Jane Smith", "John Doe"],
            "mp4": "https://storage.example.com/recordings/video123.mp4?token=abc"}},
    }
    idem = {"Idempotency-Key": "bot-123e4567-e89b-12d3-a456-426614174000:complete"}
    _, published = call("POST", "/v1/events", body=meeting_event, key=INGEST_KEY, headers=idem, expect=202,
                        body_is_valid=True)
    call("POST", "/v1/events", body=meeting_event, key=INGEST_KEY, headers=idem, expect=200, body_is_valid=True)
    call("POST", "/v1/events", body={"type": "bad type!", "payload": {}}, key=INGEST_KEY, expect=400,
         body_is_valid=False)
    call("POST", "/v1/events", body={"type": "meeting.failed", "payload": {}, "tenent": "x"}, key=INGEST_KEY,
         expect=400, body_is_valid=False)
    call("POST", "/v1/events", body={"type": "meeting.failed"}, key=INGEST_KEY, expect=400, body_is_valid=False)
    call("POST", "/v1/events", raw=b"[1, 2]", key=INGEST_KEY, headers={"Content-Type": "application/json"},
         expect=400)
    call("POST", "/v1/events", raw=b"type=meeting.failed", key=INGEST_KEY,
         headers={"Content-Type": "text/plain"}, expect=415)
    call("POST", "/v1/events", raw=json.dumps({"type": "a", "payload": "x" * MAX_BODY}).encode(), key=INGEST_KEY,
         headers={"Content-Type": "application/json"}, expect=413)
    call("POST", "/v1/events", body=meeting_event, key=None, expect=401)

    batch = {"events": [
        {"type": "meeting.failed", "tenant": "cust_globex", "id": "bot-9b2f41c0:failed",
         "payload": {"event": "failed", "data": {"bot_id": "9b2f41c0-5d7e-4a1b-8c3d-2e6f7a8b9c0d",
                                                 "error": "meeting_not_found"}}},
        {"type": "booking.changed", "tenant": "acct_64c8a1e2f0b3d4a5b6c7d8e9",
         "ordering_key": "66fb9e1ac2d4e8a9b1c3d5f1", "id": "66fb9e1ac2d4e8a9b1c3d5f1:BOOK",
         "payload": {"eventType": "BOOK", "meetData": {"_id": "66fb9e1ac2d4e8a9b1c3d5f1",
                                                       "eventId": "6650a1f0c2d4e8a9b1c3d5e7",
                                                       "time": "2024-10-08T15:00:00.000Z", "duration": 30}}},
    ]}
    _, batch_answer = call("POST", "/v1/events/batch", body=batch, key=INGEST_KEY, expect=200, body_is_valid=True)
    call("POST", "/v1/events/batch", body={"events": [{"type": "ok.type", "payload": 1}, {"type": "bad type!"}]},
         key=INGEST_KEY, expect=200)
    call("POST", "/v1/events/batch", body={"events": []}, key=INGEST_KEY, expect=400, body_is_valid=False)
    call("POST", "/v1/events/batch", body={"events": [], "extra": 1}, key=INGEST_KEY, expect=400,
         body_is_valid=False)
    call("POST", "/v1/events/batch", raw=b"{", key=INGEST_KEY, headers={"Content-Type": "application/json"},
         expect=400)
    call("POST", "/v1/events/batch", raw=b"{}", key=INGEST_KEY, headers={"Content-Type": "text/csv"}, expect=415)
    call("POST", "/v1/events/batch", raw=json.dumps({"events": [{"type": "a", "payload": "x" * MAX_BODY}]}).encode(),
         key=INGEST_KEY, headers={"Content-Type": "application/json"}, expect=413)
    call("POST", "/v1/events/batch", body=batch, key=None, expect=401)

    event_id = published["id"]
    _, event = call("GET", "/v1/events/{id}", {"id": event_id}, expect=200)
    call("GET", "/v1/events/{id}", {"id": "evt_00000000000000000000000000000000"}, expect=404)
    call("GET", "/v1/events/{id}", {"id": event_id}, key=INGEST_KEY, expect=403)
    call("GET", "/v1/event-types", expect=200)
    call("GET", "/v1/event-types", key=None, expect=401)

    call("POST", "/v1/events/{id}/redeliver", {"id": event_id}, expect=202)
    call("POST", "/v1/events/{id}/redeliver", {"id": event_id}, body={"subscription_id": audit["id"]},
         expect=202, body_is_valid=True)
    call("POST", "/v1/events/{id}/redeliver", {"id": event_id}, body={"subscription_id": None}, expect=202,
         body_is_valid=True)
    call("POST", "/v1/events/{id}/redeliver", {"id": event_id}, body={"subscription_id": gone["id"]},
         expect=409, body_is_valid=True)
    call("POST", "/v1/events/{id}/redeliver", {"id": event_id},
         body={"subscription_id": "sub_00000000000000000000000000000000"}, expect=404, body_is_valid=True)
    call("POST", "/v1/events/{id}/redeliver", {"id": event_id}, body={"subscription": audit["id"]},
         expect=400, body_is_valid=False)
    call("POST", "/v1/events/{id}/redeliver", {"id": "evt_00000000000000000000000000000000"}, expect=404)

    log("== deliveries")
    audit_delivery = next((d["id"] for d in (event or {}).get("deliveries", [])
                           if d.get("subscription_id") == audit["id"]), None)
    if audit_delivery is None:
        raise RuntimeError(f"the event has no delivery to the audit subscription: {event}")
    check.eventually(f"delivery {audit_delivery} succeeded",
                     lambda: delivery_state(check, audit_delivery) == "succeeded")
    _, detail = call("GET", "/v1/deliveries/{id}", {"id": audit_delivery}, expect=200)
    if isinstance(detail, dict) and not detail.get("attempts"):
        check.fail(f"GET /v1/deliveries/{audit_delivery}", "a succeeded delivery shows no attempt")
    call("GET", "/v1/deliveries/{id}", {"id": "dlv_00000000000000000000000000000000"}, expect=404)
    call("GET", "/v1/deliveries", query=f"subscription_id={audit['id']}&state=succeeded&limit=1", expect=200)
    _, page = call("GET", "/v1/deliveries", query="limit=1", expect=200)
    if isinstance(page, dict) and page.get("next_cursor"):
        call("GET", "/v1/deliveries", query=f"limit=1&cursor={page['next_cursor']}", expect=200)
    call("GET", "/v1/deliveries",
         query=f"event_id={event_id}&event_type=meeting.completed&since=2024-10-01T00:00:00Z&until=4102444800000",
         expect=200)
    status, _ = call("GET", "/v1/deliveries", query="tenant=cust_acme")
    if status != 200:
        note(f"GET /v1/deliveries?tenant= answers {status} on this build (the 1.1 filter is not there)")
    call("GET", "/v1/deliveries", query="sate=dead", expect=400)
    call("GET", "/v1/deliveries", query="limit=0", expect=400)
    call("GET", "/v1/deliveries", query="state=gone", expect=400)
    call("POST", "/v1/deliveries/{id}/retry", {"id": audit_delivery}, expect=409)
    call("POST", "/v1/deliveries/{id}/retry", {"id": "dlv_00000000000000000000000000000000"}, expect=404)

    log("== dead-letter queue")
    booking_event = (batch_answer or {}).get("results", [{}, {}])[1].get("id")
    _, booking = call("GET", "/v1/events/{id}", {"id": booking_event}, expect=200)
    dead = next((d["id"] for d in (booking or {}).get("deliveries", []) if d.get("subscription_id") == gone["id"]),
                None)
    if dead is None:
        raise RuntimeError(f"the booking event has no delivery to the 410 subscription: {booking}")
    check.eventually(f"delivery {dead} dead", lambda: delivery_state(check, dead) == "dead")
    call("GET", "/v1/dlq", expect=200)
    call("GET", "/v1/dlq", query=f"subscription_id={gone['id']}&event_type=booking.changed"
                                 "&since=1727740800000&until=2100-01-01T00:00:00.000Z&limit=10", expect=200)
    _, page = call("GET", "/v1/dlq", query="limit=1", expect=200)
    if isinstance(page, dict) and page.get("next_cursor"):
        call("GET", "/v1/dlq", query=f"limit=1&cursor={page['next_cursor']}", expect=200)
    status, _ = call("GET", "/v1/dlq", query="tenant=acct_64c8a1e2f0b3d4a5b6c7d8e9")
    if status != 200:
        note(f"GET /v1/dlq?tenant= answers {status} on this build (the 1.1 filter is not there)")
    call("GET", "/v1/dlq", query="state=dead", expect=400)
    call("GET", "/v1/dlq", query="until=yesterday", expect=400)
    call("DELETE", "/v1/dlq/{delivery_id}", {"delivery_id": audit_delivery}, expect=409)
    call("DELETE", "/v1/dlq/{delivery_id}", {"delivery_id": "dlv_00000000000000000000000000000000"}, expect=404)

    call("POST", "/v1/dlq/retry", body={"subscription_id": gone["id"], "event_type": "booking.changed",
                                        "since": "2024-10-01T00:00:00Z", "until": None, "limit": 10},
         expect=200, body_is_valid=True)
    check.eventually(f"delivery {dead} dead again", lambda: delivery_state(check, dead) == "dead")
    call("POST", "/v1/dlq/retry", body={"limit": "5"}, expect=200, body_is_valid=True)
    call("POST", "/v1/dlq/retry", expect=200)
    status, _ = call("POST", "/v1/dlq/retry", body={"tenant": "acct_64c8a1e2f0b3d4a5b6c7d8e9"})
    if status != 200:
        note(f"POST /v1/dlq/retry {{\"tenant\": ...}} answers {status} on this build "
                     "(the 1.1 filter is not there)")
    call("POST", "/v1/dlq/retry", body={"cursor": "x"}, expect=400, body_is_valid=False)
    call("POST", "/v1/dlq/retry", body={"limit": 0}, expect=400, body_is_valid=False)
    call("POST", "/v1/dlq/retry", raw=b"nope", headers={"Content-Type": "application/json"}, expect=400)
    check.eventually(f"delivery {dead} dead again", lambda: delivery_state(check, dead) == "dead")
    call("POST", "/v1/deliveries/{id}/retry", {"id": dead}, expect=200)
    check.eventually(f"delivery {dead} dead again", lambda: delivery_state(check, dead) == "dead")
    call("DELETE", "/v1/dlq/{delivery_id}", {"delivery_id": dead}, expect=204)
    call("DELETE", "/v1/dlq/{delivery_id}", {"delivery_id": dead}, expect=404)

    log("== ordering and coalescing (1.1)")
    key = "123e4567-e89b-12d3-a456-426614174000"
    syncs = {"events": [
        {"type": "calendar.sync_events", "tenant": "cust_myapp", "ordering_key": key,
         "payload": {"event": "calendar.sync_events",
                     "data": {"calendar_id": key, "last_updated_ts": f"2024-10-01T12:{m:02d}:00Z"}}}
        for m in (10, 20, 30)]}
    _, answer = call("POST", "/v1/events/batch", body=syncs, key=INGEST_KEY, expect=200, body_is_valid=True)
    event_ids = [r.get("id") for r in (answer or {}).get("results", [])]
    delivery_ids = []
    for eid in event_ids:
        _, ev = call("GET", "/v1/events/{id}", {"id": eid}, expect=200)
        delivery_ids += [d["id"] for d in (ev or {}).get("deliveries", []) if d["subscription_id"] == calendar["id"]]
    if len(delivery_ids) != 3:
        check.fail("calendar.sync_events", f"expected 3 deliveries to the calendar subscription, got {delivery_ids}")
    else:
        check.eventually("the first calendar delivery reached the subscriber", subscriber.held.is_set)
        blocked = []
        for did in delivery_ids[1:]:
            _, d = call("GET", "/v1/deliveries/{id}", {"id": did}, expect=200)
            if isinstance(d, dict) and d.get("blocked_by"):
                blocked.append(did)
        if not blocked:
            note("no delivery showed blocked_by while the head of its ordering key was held "
                         "(ordering is not implemented on this build)")
        call("GET", "/v1/deliveries", query=f"subscription_id={calendar['id']}", expect=200)
        subscriber.release.set()
        finals = {"succeeded", "superseded", "dead"}
        check.eventually("the calendar deliveries ended",
                         lambda: all(delivery_state(check, d) in finals for d in delivery_ids))
        states = [delivery_state(check, d) for d in delivery_ids]
        if "superseded" not in states:
            note(f"no delivery ended superseded under coalescing (states {states}; "
                         "coalescing is not implemented on this build)")
        call("GET", "/v1/deliveries", query="state=superseded", expect=200)
        for did, state in zip(delivery_ids, states):
            if state == "superseded":
                call("POST", "/v1/deliveries/{id}/retry", {"id": did}, expect=409)
                break
    subscriber.release.set()

    run_jobs(check, subscriber, acme, event)


def run_jobs(check, subscriber, acme, event):
    """Replay and jobs: a large DLQ redrive (202 {"job"}), replays, the job list, cancel."""
    call = check.call

    log("== jobs: a DLQ redrive of more than 1,000 dead letters")
    # A calendar API's endpoint for deleted calendar events is gone for good (410): each of its
    # deliveries is dead at its first attempt. The events are published in batches that fit
    # under --max-body.
    _, bulk = call("POST", "/v1/subscriptions",
                   body={"url": subscriber.url("/gone/calendar/deleted"), "event_types": ["calendar.event_deleted"],
                         "description": "calendar deletions, endpoint retired", "retry": {"window": "1s"}},
                   expect=201, body_is_valid=True)
    if not isinstance(bulk, dict) or "id" not in bulk:
        raise RuntimeError("the subscription for the bulk DLQ could not be created")
    total = INLINE_REDRIVE + 1
    events = [{"type": "calendar.event_deleted", "payload": {"n": n}} for n in range(total)]
    per_batch = (MAX_BODY - 64) // len(json.dumps(events[-1]) + ", ")
    began = time.monotonic()
    for start in range(0, total, per_batch):
        call("POST", "/v1/events/batch", body={"events": events[start:start + per_batch]}, key=INGEST_KEY,
             expect=200, body_is_valid=True)
    # After 20 failures the subscription's circuit opens; the deliveries left then wait, and go
    # dead when their one-second retry window ends.
    check.eventually(f"{total} dead deliveries to {bulk['id']}", lambda: dead_count(check, bulk["id"]) >= total)
    log(f"  {total} dead deliveries after {time.monotonic() - began:.1f} s")

    redrive = {"subscription_id": bulk["id"], "event_type": "calendar.event_deleted",
               "since": "2024-10-01T00:00:00Z"}
    _, answer = call("POST", "/v1/dlq/retry", body=redrive, expect=202, body_is_valid=True)
    dlq_job = (answer or {}).get("job") or {}
    want = {"kind": "dlq_retry", "state": "running"}
    if any(dlq_job.get(k) != v for k, v in want.items()) or (dlq_job.get("params") or {}).get("subscription_id") != bulk["id"]:
        check.fail("POST /v1/dlq/retry -> 202", f"expected a running dlq_retry job of {bulk['id']}, got {dlq_job}")
    if "id" not in dlq_job:
        raise RuntimeError(f"POST /v1/dlq/retry started no job: {answer}")
    # With "limit", the smaller of the limit and the matches decides: 1,000 is redriven inline.
    # (Left for after the job: the two would otherwise redrive the same dead letters.)
    call("GET", "/v1/jobs/{id}", {"id": dlq_job["id"]}, expect=200)
    _, cancelled = call("POST", "/v1/jobs/{id}/cancel", {"id": dlq_job["id"]}, expect=200)
    if ((cancelled or {}).get("job") or {}).get("state") != "cancelled":
        check.fail(f"POST /v1/jobs/{dlq_job['id']}/cancel", f"the job is not cancelled: {cancelled}")
    if job_state(check, dlq_job["id"]) != "cancelled":
        check.fail(f"GET /v1/jobs/{dlq_job['id']}", "the cancelled job does not read back cancelled")
    call("POST", "/v1/jobs/{id}/cancel", {"id": dlq_job["id"]}, expect=409)
    call("POST", "/v1/dlq/retry", body=dict(redrive, limit=INLINE_REDRIVE), expect=200, body_is_valid=True)

    log("== jobs: replay")
    # A replay of every stored event to the retired endpoint, cancelled while it runs.
    _, answer = call("POST", "/v1/subscriptions/{id}/replay", {"id": bulk["id"]},
                     body={"since": "2024-10-01T00:00:00Z", "until": None, "event_types": None,
                           "only_failed": True},
                     expect=202, body_is_valid=True)
    replay = (answer or {}).get("job") or {}
    params = replay.get("params") or {}
    if replay.get("kind") != "replay" or params.get("event_types") != bulk["event_types"] or not params.get("only_failed"):
        check.fail("POST /v1/subscriptions/{id}/replay -> 202",
                   f"expected a replay with the subscription's patterns and only_failed, got {replay}")
    if "id" in replay:
        call("POST", "/v1/jobs/{id}/cancel", {"id": replay["id"]}, expect=200)

    # A replay that runs to its end: the meeting of a bot, to the customer's subscription, in a
    # one-millisecond range around the event's creation.
    created = utc_millis(event["created_at"])
    body = {"since": event["created_at"], "until": str(created + 1), "event_types": ["meeting.*"]}
    _, answer = call("POST", "/v1/subscriptions/{id}/replay", {"id": acme["id"]}, body=body, expect=202,
                     body_is_valid=True)
    finished = ((answer or {}).get("job") or {}).get("id")
    if finished:
        check.eventually(f"job {finished} done", lambda: job_state(check, finished) == "done")
        _, job = call("GET", "/v1/jobs/{id}", {"id": finished}, expect=200)
        if (job or {}).get("matched") != 1 or job.get("created") != 1 or not job.get("finished_at"):
            check.fail(f"GET /v1/jobs/{finished}", f"expected 1 event matched and 1 delivery created, got {job}")
        call("POST", "/v1/jobs/{id}/cancel", {"id": finished}, expect=409)

    log("== jobs: refusals")
    target = {"id": acme["id"]}
    since = "2024-10-01T06:00:00Z"
    for bad, field, shape_invalid in [
            ({}, "since", True),
            ({"since": "this morning"}, "since", True),
            ({"since": since, "until": "2024-10-01T05:00:00Z"}, "until", None),  # the schema cannot compare
            ({"since": since, "event_types": ["bad type!"]}, "event_types", True),
            ({"since": since, "event_types": []}, "event_types", True),
            ({"since": since, "only_failed": "yes"}, "only_failed", True),
            ({"since": since, "only_failed": None}, "only_failed", True),
            ({"since": since, "tenant": "cust_acme"}, "tenant", True)]:
        _, refusal = call("POST", "/v1/subscriptions/{id}/replay", target, body=bad, expect=400,
                          body_is_valid=None if shape_invalid is None else False)
        check.names_field(f"POST /v1/subscriptions/{acme['id']}/replay {json.dumps(bad)}", refusal, field)
    call("POST", "/v1/subscriptions/{id}/replay", target, raw=b"since=yesterday",
         headers={"Content-Type": "application/json"}, expect=400)
    call("POST", "/v1/subscriptions/{id}/replay", target, raw=b'{"since": "2024-10-01T06:00:00Z"}',
         headers={"Content-Type": "text/plain"}, expect=415)
    call("POST", "/v1/subscriptions/{id}/replay", target,
         raw=json.dumps({"since": since, "event_types": ["x"] * MAX_BODY}).encode(),
         headers={"Content-Type": "application/json"}, expect=413)
    call("POST", "/v1/subscriptions/{id}/replay", {"id": "sub_00000000000000000000000000000000"},
         body={"since": since}, expect=404, body_is_valid=True)

    log("== jobs: list and read")
    _, page = call("GET", "/v1/jobs", expect=200)
    ids = [j.get("id") for j in (page or {}).get("items", [])]
    started = [dlq_job["id"], replay.get("id"), finished]
    if ids[:3] != started[::-1]:
        check.fail("GET /v1/jobs", f"expected the jobs newest first {started[::-1]}, got {ids}")
    _, page = call("GET", "/v1/jobs", query="limit=1", expect=200)
    if not (page or {}).get("next_cursor"):
        check.fail("GET /v1/jobs?limit=1", f"a page of 1 of 3 jobs has no next_cursor: {page}")
    else:
        call("GET", "/v1/jobs", query=f"limit=2&cursor={page['next_cursor']}", expect=200)
    for query, field in [("limit=0", "limit"), ("limit=1001", "limit"), ("state=running", "state")]:
        _, refusal = call("GET", "/v1/jobs", query=query, expect=400)
        check.names_field(f"GET /v1/jobs?{query}", refusal, field)
    call("GET", "/v1/jobs/{id}", {"id": "job_00000000000000000000000000000000"}, expect=404)
    call("GET", "/v1/jobs/{id}", {"id": "sub_00000000000000000000000000000000"}, expect=404)
    call("GET", "/v1/jobs/{id}", {"id": dlq_job["id"]}, query="a=%zz", expect=400)
    call("POST", "/v1/jobs/{id}/cancel", {"id": "job_00000000000000000000000000000000"}, expect=404)
    call("POST", "/v1/jobs/{id}/cancel", {"id": "nope"}, expect=404)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relayd", required=True)
    parser.add_argument("--spec", required=True)
    args = parser.parse_args()

    spec = Spec(args.spec)
    work = tempfile.mkdtemp(prefix="relay-openapi-")
    subscriber = Subscriber()
    relayd = None
    try:
        relayd = Relayd(args.relayd, os.path.join(work, "data"))
        check = Check(spec, relayd)
        log("== the document's examples")
        check_examples(check)
        try:
            run(check, subscriber)
        except (RuntimeError, OSError, http.client.HTTPException) as error:
            check.fail("scenario", f"{type(error).__name__}: {error}")
        missing = sorted(spec.operations - check.called)
        for template, method in missing:
            check.fail(f"{method} {template}", "documented but never called")
        log("== statuses seen per operation")
        for template, method in sorted(spec.operations):
            documented = {int(s) for s in spec.operation(template, method)["responses"]}
            seen = check.seen.get((template, method), set())
            log(f"  {method:6} {template:40} seen {sorted(seen)}; documented, not provoked: "
                f"{sorted(documented - seen)}")
        unseen = [f"{kind}.{m}" for kind, members in MEMBERS_1_1.items() for m in members
                  if f"{kind}.{m}" not in check.filled]
        if unseen:
            check.note("1.1 members never seen with a value on this build: " + ", ".join(unseen))
        for note in check.notes:
            log(f"  NOTE {note}")
        if check.failures:
            log(f"== {len(check.failures)} failure(s)")
            if relayd is not None:
                if relayd.process.poll() is not None:
                    log(f"---- relayd exited with {relayd.process.returncode} ----")
                log("---- relayd stderr (last 40 lines) ----\n" + "\n".join(relayd.lines[-40:]))
            return 1
        log("== every answer matches docs/openapi.yaml")
        return 0
    finally:
        subscriber.stop()
        if relayd is not None:
            relayd.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

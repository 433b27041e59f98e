#!/usr/bin/env python3
"""metaltest fault server: a small HTTP/1.1 file server that misbehaves on cue.

Serves the files under --root like a real server would (Content-Length, ETag,
Last-Modified, Accept-Ranges, single-range `Range` requests answered with 206,
`If-Range`, `If-None-Match`, HEAD), and injects faults so that metalroot's
fetch (resume, retry, checksum verification, timeouts) can be tested against
a peer that cuts, corrupts, stalls, throttles or fails.

Python 3 standard library only.

    faultserver.py --root DIR [--bind 127.0.0.1] [--port 8081] [--port-file F]

Control endpoints (JSON):

    POST /_control   add a fault rule; body is an object:
        path          URL path prefix the rule applies to (default "/": all)
        cut_at        close the connection after N body bytes of the response
        corrupt_at    flip (XOR 0xff) the body byte at *file offset* N ...
        corrupt_len   ... and the next corrupt_len - 1 bytes (default 1)
        stall_at      after N body bytes of the response, sleep stall_secs
        stall_secs    (default 30)
        status        answer with this HTTP status (e.g. 503) and no file
        retry_after   with status: send Retry-After: N
        throttle_bps  send the body at most this many bytes per second
        ignore_range  answer Range requests with the full 200 response
        fail_count    how many matching requests the rule applies to
                      (default 1; -1 = every request, forever)
      The longest matching prefix with requests left wins; answers the rule
      with its id. HEAD requests only take rules that have a status.
    POST /_reset     drop all rules and zero the statistics
    GET  /_stats     {"requests": N, "body_bytes": N, "paths": {path: {...}},
                      "log": [{"method", "path", "range", "if_range",
                               "status", "body_bytes", "faults"}, ...],
                      "rules": [...]}

The control endpoints are answered only for clients on 127.0.0.1 (the host;
QEMU's user network also appears as 127.0.0.1, which is fine for a test).
"""

import argparse
import email.utils
import http.server
import json
import os
import posixpath
import socket
import sys
import threading
import time
import urllib.parse

CHUNK = 64 * 1024


class State:
    """Fault rules and statistics, shared by all request threads."""

    def __init__(self):
        self.lock = threading.Lock()
        # Requests being served: /_stats waits for them, because a client
        # has the last body byte before the server thread records the
        # request (the self-test once read "1 request" after two).
        # A request counts in the period (between resets) it began in: one
        # still stalling or throttled from before a reset is not counted after.
        self.done = threading.Condition(self.lock)
        self.period = 0
        self.inflight = 0
        self.reset()

    def begin(self):
        with self.lock:
            self.inflight += 1
            return self.period

    def reset(self):
        with self.lock:
            self.period += 1
            self.inflight = 0
            self.rules = []
            self.next_id = 1
            self.requests = 0
            self.body_bytes = 0
            self.paths = {}
            self.log = []

    def add_rule(self, spec):
        allowed = {
            "path", "cut_at", "corrupt_at", "corrupt_len", "stall_at", "stall_secs",
            "status", "retry_after", "throttle_bps", "ignore_range", "fail_count",
        }
        unknown = set(spec) - allowed
        if unknown:
            raise ValueError("unknown fault keys: %s" % ", ".join(sorted(unknown)))
        rule = dict(spec)
        rule.setdefault("path", "/")
        rule.setdefault("fail_count", 1)
        rule.setdefault("corrupt_len", 1)
        rule.setdefault("stall_secs", 30)
        for key in ("cut_at", "corrupt_at", "corrupt_len", "stall_at", "status",
                    "retry_after", "throttle_bps", "fail_count"):
            if key in rule and not isinstance(rule[key], int):
                raise ValueError("%s must be an integer" % key)
        if not isinstance(rule["stall_secs"], (int, float)):
            raise ValueError("stall_secs must be a number")
        with self.lock:
            rule["id"] = self.next_id
            rule["applied"] = 0
            self.next_id += 1
            self.rules.append(rule)
        return rule

    def take_rule(self, path, method):
        """The rule for this request (consuming one of its uses), or None.
        HEAD requests only take status rules: a HEAD has no body to cut,
        corrupt, stall or throttle, and must not use up such a rule before
        the GET it is meant for."""
        with self.lock:
            best = None
            for rule in self.rules:
                if not path.startswith(rule["path"]):
                    continue
                if method == "HEAD" and "status" not in rule:
                    continue
                if rule["fail_count"] >= 0 and rule["applied"] >= rule["fail_count"]:
                    continue
                if best is None or len(rule["path"]) > len(best["path"]):
                    best = rule
            if best is not None:
                best["applied"] += 1
                return dict(best)
            return None

    def record(self, entry, period):
        with self.lock:
            if period != self.period:
                return
            self.inflight -= 1
            self.done.notify_all()
            self.requests += 1
            self.body_bytes += entry["body_bytes"]
            per = self.paths.setdefault(
                entry["path"], {"requests": 0, "body_bytes": 0, "statuses": []})
            per["requests"] += 1
            per["body_bytes"] += entry["body_bytes"]
            per["statuses"].append(entry["status"])
            self.log.append(entry)

    def snapshot(self):
        with self.lock:
            # A stalled request (stall_secs) may run long: wait at most 2 s.
            self.done.wait_for(lambda: self.inflight == 0, timeout=2)
            return {
                "requests": self.requests,
                "body_bytes": self.body_bytes,
                "paths": json.loads(json.dumps(self.paths)),
                "log": list(self.log),
                "rules": [dict(r) for r in self.rules],
            }


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


def parse_range(header, size):
    """(start, end) inclusive for a single `bytes=` range, None to ignore the
    header (absent, malformed, or several ranges: a 200 is allowed then), or
    "unsatisfiable"."""
    if not header or not header.startswith("bytes="):
        return None
    spec = header[len("bytes="):].strip()
    if "," in spec or "-" not in spec:
        return None
    first, last = spec.split("-", 1)
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                return "unsatisfiable"
            start, end = max(0, size - n), size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size or start < 0:
        return "unsatisfiable"
    if end < start:
        return None
    return start, min(end, size - 1)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "metaltest-faultserver/1"

    # -- plumbing ---------------------------------------------------------

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (self.address_string(), fmt % args))

    def send_json(self, code, obj):
        body = (json.dumps(obj, indent=1) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def is_local(self):
        return self.client_address[0] in ("127.0.0.1", "::1", "::ffff:127.0.0.1")

    # -- control ----------------------------------------------------------

    def do_POST(self):
        state = self.server.state
        path = urllib.parse.urlsplit(self.path).path
        body = self.read_body()
        if path not in ("/_control", "/_reset") or not self.is_local():
            self.send_json(404, {"error": "not found"})
            return
        if path == "/_reset":
            state.reset()
            self.send_json(200, {"ok": True})
            return
        try:
            spec = json.loads(body or b"{}")
            if not isinstance(spec, dict):
                raise ValueError("expected a JSON object")
            rule = state.add_rule(spec)
        except ValueError as err:
            self.send_json(400, {"error": str(err)})
            return
        self.send_json(200, rule)

    # -- files ------------------------------------------------------------

    def do_HEAD(self):
        self.serve(head=True)

    def do_GET(self):
        path = urllib.parse.urlsplit(self.path).path
        if path == "/_stats" and self.is_local():
            self.send_json(200, self.server.state.snapshot())
            return
        self.serve(head=False)

    def resolve(self, urlpath):
        """Map a URL path to a file under the root; None if outside/missing."""
        clean = posixpath.normpath(urllib.parse.unquote(urlpath))
        if clean.startswith("..") or "/../" in clean:
            return None
        full = os.path.join(self.server.root, clean.lstrip("/"))
        if os.path.isdir(full):
            full = os.path.join(full, "index.html")
        return full if os.path.isfile(full) else None

    def serve(self, head):
        state = self.server.state
        urlpath = urllib.parse.urlsplit(self.path).path
        entry = {
            "method": self.command,
            "path": urlpath,
            "range": self.headers.get("Range"),
            "if_range": self.headers.get("If-Range"),
            "status": 0,
            "body_bytes": 0,
            "faults": [],
        }
        period = state.begin()
        try:
            self._serve(head, urlpath, entry)
        finally:
            state.record(entry, period)

    def _simple(self, entry, code, text, extra=()):
        body = (text + "\n").encode()
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        entry["status"] = code

    def _serve(self, head, urlpath, entry):
        rule = self.server.state.take_rule(urlpath, self.command) or {}
        if rule:
            entry["faults"].append("rule %d" % rule["id"])

        if "status" in rule:
            extra = []
            if "retry_after" in rule:
                extra.append(("Retry-After", str(rule["retry_after"])))
            entry["faults"].append("status %d" % rule["status"])
            self._simple(entry, rule["status"], "injected status %d" % rule["status"], extra)
            return

        full = self.resolve(urlpath)
        if full is None:
            self._simple(entry, 404, "not found")
            return
        st = os.stat(full)
        size = st.st_size
        etag = '"%x-%x"' % (st.st_mtime_ns, size)
        last_modified = http_date(st.st_mtime)

        inm = self.headers.get("If-None-Match")
        if inm is not None and etag in [t.strip() for t in inm.split(",")]:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", last_modified)
            self.end_headers()
            entry["status"] = 304
            return

        rng = None if rule.get("ignore_range") else parse_range(self.headers.get("Range"), size)
        if_range = self.headers.get("If-Range")
        if rng is not None and if_range is not None and if_range not in (etag, last_modified):
            # The client's copy is stale: send the whole new representation.
            rng = None
            entry["faults"].append("if-range mismatch")
        if rng == "unsatisfiable":
            self._simple(entry, 416, "range not satisfiable",
                         [("Content-Range", "bytes */%d" % size), ("ETag", etag)])
            return

        if rng is None:
            start, end, code = 0, size - 1, 200
        else:
            start, end = rng
            code = 206
        length = end - start + 1 if size else 0

        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", etag)
        self.send_header("Last-Modified", last_modified)
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d" % (start, end, size))
        self.end_headers()
        entry["status"] = code
        if head or length == 0:
            return
        self.send_body(full, start, length, rule, entry)

    def send_body(self, full, start, length, rule, entry):
        cut_at = rule.get("cut_at")
        stall_at = rule.get("stall_at")
        stalled = False
        corrupt_at = rule.get("corrupt_at")
        corrupt_end = corrupt_at + rule["corrupt_len"] if corrupt_at is not None else None
        bps = rule.get("throttle_bps")
        sent = 0
        t0 = time.monotonic()
        with open(full, "rb") as f:
            f.seek(start)
            while sent < length:
                want = min(CHUNK, length - sent)
                if bps:
                    want = min(want, max(1, bps // 10))
                # Stop exactly at the cut or stall point.
                for point in (cut_at, None if stalled else stall_at):
                    if point is not None and sent < point:
                        want = min(want, point - sent)
                if cut_at is not None and sent >= cut_at:
                    entry["faults"].append("cut at %d" % sent)
                    self.cut()
                    return
                if stall_at is not None and not stalled and sent >= stall_at:
                    entry["faults"].append("stall %ss at %d" % (rule["stall_secs"], sent))
                    self.wfile.flush()
                    time.sleep(rule["stall_secs"])
                    stalled = True
                data = bytearray(f.read(want))
                if not data:
                    break
                if corrupt_at is not None:
                    off = start + sent  # file offset of data[0]
                    lo, hi = max(corrupt_at, off), min(corrupt_end, off + len(data))
                    for i in range(lo, hi):
                        data[i - off] ^= 0xFF
                    if lo < hi:
                        entry["faults"].append("corrupt %d-%d" % (lo, hi - 1))
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True
                    return
                sent += len(data)
                entry["body_bytes"] = sent
                if bps:
                    ahead = sent / bps - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
        if cut_at is not None and sent >= cut_at and sent < length:
            self.cut()

    def cut(self):
        """Drop the connection mid-body: the client sees fewer bytes than
        Content-Length promised."""
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", required=True, help="directory to serve")
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8081, help="0 = any free port")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    args = ap.parse_args()

    server = Server((args.bind, args.port), Handler)
    server.root = os.path.abspath(args.root)
    server.state = State()
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    sys.stderr.write("faultserver: serving %s on %s:%d\n" % (server.root, args.bind, port))
    sys.stderr.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

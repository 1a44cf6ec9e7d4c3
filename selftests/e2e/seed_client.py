#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The seed's request loop, `curl -H "host: example.com" GW/PATH`, N times.

    seed_client.py GW[:PORT] PATH N [-H "NAME: VALUE"]... [--keep-alive]
                   [--alternate] [--timeout S] [--max-time S]
                   [--duration S] [--interval S] [--ready-file PATH]
                   [--warmup S] [--events] [--parallel P]

Sends N HTTP/1.1 GET requests for PATH one after another, each on a NEW
connection as curl does (the request head is curl's: the -H headers replace
curl's own of the same name, so -H "host: example.com" is the Host header).
With --keep-alive all of them go over ONE connection (a new one only when
the gateway closes it); with --alternate only every other request (the 1st,
3rd, ...) carries the -H headers other than host, to check that routing is
decided per request. Prints one JSON object on stdout:

    {"cluster1": 97, "cluster2": 103, "errors": 0, "statuses": {"200": 200},
     "connections": 200, "error_kinds": {}, "bodies": {}}

cluster<N> counts the 200 answers of the seed's web-demo ("This is env
cluster1 ! Config file is"); errors counts every request without such an
answer (no HTTP response, another status, another body), error_kinds says
why; bodies holds the first body seen for each status other than 200.
With --events, "events" lists [T, WHAT, T_END] per request, in the order
they started: T its start and T_END its end (answer or error) in ms of
CLOCK_MONOTONIC (the caller's clock too), WHAT the cluster or "!" and the
status or error kind. With --duration S, requests go on for S seconds
(N is then only a cap, 0 for none); with --ready-file, PATH is created once
requests have been made for --warmup seconds (default 0.3). Once
--max-time seconds (default 30) have passed, the requests not yet made
count as errors of kind "not_run". --parallel P runs P such loops at once
(each still one request after another, each on its own connections), to
take a large sample quickly; the counts are the sum.
"""
import argparse
import json
import re
import socket
import sys
import threading
import time

ANSWER = re.compile(r"^This is env (\S+) ! Config file is\n?$")


class HttpError(Exception):
    pass


def read_response(sock, state, head_req):
    """Reads one response from sock (bytes left over in state["buf"]).
    Returns (status, headers dict (lower-case names), body bytes, close)."""
    buf = state["buf"]
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise HttpError("closed_before_response" if not buf else "truncated_head")
        buf += chunk
        if len(buf) > 65536:
            raise HttpError("head_too_large")
    head, buf = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise HttpError("bad_status_line")
    status = int(parts[1])
    version = parts[0]
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    conn = headers.get("connection", "").lower()
    close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)
    body = b""
    if head_req or status in (204, 304) or 100 <= status < 200:
        pass
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            while b"\r\n" not in buf:
                chunk = sock.recv(65536)
                if not chunk:
                    raise HttpError("truncated_chunk")
                buf += chunk
            size_line, buf = buf.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(buf) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    raise HttpError("truncated_chunk")
                buf += chunk
            body += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                # trailers: until an empty line (we sent none, expect none)
                break
    elif "content-length" in headers:
        n = int(headers["content-length"])
        while len(buf) < n:
            chunk = sock.recv(65536)
            if not chunk:
                raise HttpError("truncated_body")
            buf += chunk
        body, buf = buf[:n], buf[n:]
    else:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            buf += chunk
        body, buf = buf, b""
        close = True
    state["buf"] = buf
    return status, headers, body, close


def request_head(path, headers):
    # curl 7.88's head; a -H replaces curl's header of the same name.
    names = {h.split(":", 1)[0].strip().lower() for h in headers}
    lines = ["GET %s HTTP/1.1" % path]
    if "host" not in names:
        lines.append("Host: %s" % ARGS.gw)
    if "user-agent" not in names:
        lines.append("User-Agent: curl/7.88.1")
    if "accept" not in names:
        lines.append("Accept: */*")
    for h in headers:
        k, v = h.split(":", 1)
        lines.append("%s: %s" % (k.strip(), v.strip()))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def connect(addr, timeout):
    s = socket.create_connection(addr, timeout=timeout)
    s.settimeout(timeout)
    return s


ARGS = None


def main():
    global ARGS
    ap = argparse.ArgumentParser()
    ap.add_argument("gw")
    ap.add_argument("path")
    ap.add_argument("n", type=int)
    ap.add_argument("-H", "--header", action="append", default=[])
    ap.add_argument("--keep-alive", action="store_true")
    ap.add_argument("--alternate", action="store_true")
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--max-time", type=float, default=30.0)
    ap.add_argument("--duration", type=float, default=0.0)
    ap.add_argument("--interval", type=float, default=0.0)
    ap.add_argument("--ready-file")
    ap.add_argument("--warmup", type=float, default=0.3)
    ap.add_argument("--events", action="store_true")
    ap.add_argument("--parallel", type=int, default=1)
    ARGS = args = ap.parse_args()

    host, _, port = args.gw.partition(":")
    addr = (host, int(port or 80))
    with_hdr = request_head(args.path, args.header)
    plain = [h for h in args.header if h.split(":", 1)[0].strip().lower() == "host"]
    without_hdr = request_head(args.path, plain)

    out = {"cluster1": 0, "cluster2": 0, "errors": 0, "statuses": {},
           "connections": 0, "error_kinds": {}, "bodies": {}}
    events = []
    lock = threading.Lock()
    t_start = time.monotonic()
    deadline = t_start + args.max_time
    end = t_start + args.duration if args.duration > 0 else None
    shared = {"i": 0, "ready": not args.ready_file, "not_run": 0}

    def error(kind):
        out["errors"] += 1
        out["error_kinds"][kind] = out["error_kinds"].get(kind, 0) + 1

    def take():
        """The index of the next request, or None when done."""
        with lock:
            now = time.monotonic()
            i = shared["i"]
            if end is not None:
                if now >= end or (args.n and i >= args.n):
                    return None
            elif i >= args.n:
                return None
            if not shared["ready"] and now - t_start >= args.warmup:
                open(args.ready_file, "w").close()
                shared["ready"] = True
            if now >= deadline:
                if end is None and not shared["not_run"]:
                    shared["not_run"] = args.n - i
                    out["errors"] += args.n - i
                    out["error_kinds"]["not_run"] = args.n - i
                    shared["i"] = args.n
                return None
            shared["i"] = i + 1
            return i

    def worker():
        sock, state = None, {"buf": b""}
        while True:
            i = take()
            if i is None:
                break
            req = without_hdr if (args.alternate and i % 2) else with_hdr
            now = time.monotonic()
            t_ms = int(now * 1000)
            result = None  # (status, text) or error kind
            try:
                if sock is None:
                    sock = connect(addr, args.timeout)
                    state = {"buf": b""}
                    with lock:
                        out["connections"] += 1
                sock.sendall(req)
                status, headers, body, close = read_response(sock, state, False)
                result = (status, body.decode("utf-8", errors="replace"))
                if close or not args.keep_alive:
                    sock.close()
                    sock = None
            except (OSError, HttpError, ValueError) as e:
                result = str(e) if isinstance(e, HttpError) else type(e).__name__
                if sock is not None:
                    sock.close()
                    sock = None
            with lock:
                if isinstance(result, tuple):
                    status, text = result
                    key = str(status)
                    out["statuses"][key] = out["statuses"].get(key, 0) + 1
                    m = ANSWER.match(text) if status == 200 else None
                    if m:
                        what = m.group(1)
                        out[what] = out.get(what, 0) + 1
                    else:
                        error("status_%d" % status if status != 200 else "unexpected_body")
                        if key not in out["bodies"]:
                            out["bodies"][key] = text[:512]
                        what = "!%d" % status
                else:
                    error(result)
                    what = "!" + result
                if args.events:
                    events.append([t_ms, what, int(time.monotonic() * 1000), i])
            if args.interval > 0:
                time.sleep(args.interval)
        if sock is not None:
            sock.close()

    threads = [threading.Thread(target=worker) for _ in range(max(1, args.parallel))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ready_done = shared["ready"]
    i = shared["i"] - shared["not_run"]
    if args.ready_file and not ready_done:
        open(args.ready_file, "w").close()
    if args.events:
        events.sort(key=lambda ev: (ev[0], ev[3]))
        out["events"] = [ev[:3] for ev in events]
    out["requests"] = i
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The clients of the several-nodes end-to-end test (test_e2e_bgp.c).

Every connection binds to one of --src's addresses in turn (several
clients) and a port the kernel picks. Pods greet with "POD PEER" where PEER
is the gateway node that carried the connection (its address toward the
cluster), so each mode can say which node served what.

  spread VIP PORT N --src A,B --out FILE
      N new L4 connections (16 at a time), each reads the greeting and
      closes: {"total", "ok", "errors", "by_peer": {PEER: n}, "kinds": {}}

  probe VIP PORT --src ... --out FILE [--threads 8] [--timeout-ms 250]
      new connections without pause until SIGTERM (each: connect and read
      the greeting within --timeout-ms); then writes every attempt as
      [start_ms, end_ms, ok, peer] (CLOCK_MONOTONIC ms, the test's clock)

  flows VIP PORT N --src ... --status FILE
      N long-lived connections; every 100 ms a line on each, whose echo must
      come back within 1 s, else the flow is broken (never reopened).
      FILE is rewritten every 200 ms: {"flows": [{"peer", "pod", "ok",
      "error", "broken_at", "echoed"}], "t": ms}; exits on SIGTERM

  l7 VIP PORT --src ... --out FILE [--keepalive 6] [--new 3]
      HTTP load until SIGTERM: --keepalive connections sending GETs one
      after another, --new workers opening a connection per request
      (Connection: close). A GET that fails before any byte of its
      response came back (reset, closed, refused) is sent again once on a
      new connection: RFC 9112 section 9.3.1 lets any client retry an
      idempotent request then, as browsers, curl and Go's net/http do for
      kept-alive connections. It fails when the retry fails too, or when
      the failure came after response bytes, or on a status other than
      200. Writes {"total", "ok", "failed", "retried", "retry_kinds",
      "fail_kinds", "by_peer", "failures": [...]}.
"""
import argparse
import itertools
import json
import os
import select
import signal
import socket
import sys
import threading
import time


def now_ms():
    return int(time.monotonic() * 1000)


def write_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f)
    os.replace(tmp, path)


class Src:
    def __init__(self, spec):
        self.addrs = spec.split(",")
        self.it = itertools.cycle(self.addrs)
        self.lock = threading.Lock()

    def next(self):
        with self.lock:
            return next(self.it)


def connect(vip, port, src, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.bind((src, 0))
        s.connect((vip, port))
    except BaseException:
        s.close()
        raise
    return s


def read_line(s):
    buf = b""
    while b"\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed before the greeting")
        buf += chunk
    return buf.split(b"\n", 1)[0].decode(errors="replace")


def greet(vip, port, src, timeout):
    s = connect(vip, port, src, timeout)
    try:
        line = read_line(s)
    finally:
        s.close()
    parts = line.split()
    return parts[1] if len(parts) > 1 else "?"


def kind(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    return type(e).__name__


# ---------- spread ----------
def do_spread(a):
    src = Src(a.src)
    res = {"total": a.n, "ok": 0, "errors": 0, "by_peer": {}, "kinds": {}}
    lock = threading.Lock()
    todo = iter(range(a.n))

    def worker():
        while True:
            with lock:
                if next(todo, None) is None:
                    return
            try:
                peer = greet(a.vip, a.port, src.next(), 2.0)
                with lock:
                    res["ok"] += 1
                    res["by_peer"][peer] = res["by_peer"].get(peer, 0) + 1
            except Exception as e:  # noqa: BLE001
                with lock:
                    res["errors"] += 1
                    res["kinds"][kind(e)] = res["kinds"].get(kind(e), 0) + 1

    ts = [threading.Thread(target=worker) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    write_json(a.out, res)


# ---------- probe ----------
def do_probe(a):
    src = Src(a.src)
    stop = threading.Event()
    attempts = []
    lock = threading.Lock()
    signal.signal(signal.SIGTERM, lambda *x: stop.set())

    def worker():
        while not stop.is_set():
            t0 = now_ms()
            try:
                peer = greet(a.vip, a.port, src.next(), a.timeout_ms / 1000.0)
                ok = True
            except Exception as e:  # noqa: BLE001
                peer = kind(e)
                ok = False
            with lock:
                attempts.append([t0, now_ms(), ok, peer])
            time.sleep(0.002)

    ts = [threading.Thread(target=worker, daemon=True) for _ in range(a.threads)]
    for t in ts:
        t.start()
    while not stop.is_set():
        stop.wait(0.2)
    for t in ts:
        t.join(2)
    with lock:
        write_json(a.out, {"attempts": attempts})


# ---------- flows ----------
class Flow:
    def __init__(self, s, pod, peer):
        self.s, self.pod, self.peer = s, pod, peer
        self.ok, self.error, self.broken_at = True, "", 0
        self.buf, self.out, self.since, self.echoed, self.seq = b"", 0, None, 0, 0

    def broke(self, why):
        if self.ok:
            self.ok, self.error, self.broken_at = False, why, now_ms()
            try:
                self.s.close()
            except OSError:
                pass


def do_flows(a):
    src = Src(a.src)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *x: stop.set())
    flows = []
    for _ in range(a.n):
        s = connect(a.vip, a.port, src.next(), 2.0)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        line = read_line(s).split()
        s.setblocking(False)
        flows.append(Flow(s, line[0], line[1] if len(line) > 1 else "?"))

    def status():
        write_json(a.status, {"t": now_ms(), "flows": [
            {"peer": f.peer, "pod": f.pod, "ok": f.ok, "error": f.error,
             "broken_at": f.broken_at, "echoed": f.echoed} for f in flows]})

    next_send = next_status = 0
    while not stop.is_set():
        now = now_ms()
        if now >= next_send:
            for f in flows:
                if not f.ok:
                    continue
                f.seq += 1
                try:
                    f.s.send(b"seq %d\n" % f.seq)
                    if not f.out:
                        f.since = now
                    f.out += 1
                except OSError as e:
                    f.broke(kind(e))
            next_send = now + 100
        live = [f for f in flows if f.ok]
        try:
            r, _, _ = select.select([f.s for f in live], [], [], 0.02)
        except (OSError, ValueError):
            r = []
        for f in live:
            if f.s not in r:
                continue
            try:
                data = f.s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                f.broke(kind(e))
                continue
            if not data:
                f.broke("closed")
                continue
            f.buf += data
            while b"\n" in f.buf:
                _, f.buf = f.buf.split(b"\n", 1)
                f.echoed += 1
                f.out = max(0, f.out - 1)
                f.since = now_ms() if f.out else None
        now = now_ms()
        for f in flows:
            if f.ok and f.since is not None and now - f.since > 1000:
                f.broke("timeout")
        if now >= next_status:
            status()
            next_status = now + 200
    status()


# ---------- l7 ----------
class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.d = {"total": 0, "ok": 0, "failed": 0, "retried": 0, "retry_kinds": {},
                  "fail_kinds": {}, "by_peer": {}, "failures": []}

    def add(self, key, sub=None, n=1):
        with self.lock:
            if sub is None:
                self.d[key] += n
            else:
                self.d[key][sub] = self.d[key].get(sub, 0) + n


class Early(Exception):
    """Failed before any byte of the response."""


def http_get(s, close):
    req = "GET / HTTP/1.1\r\nHost: bgp.example\r\n%s\r\n" % ("Connection: close\r\n" if close else "")
    try:
        s.sendall(req.encode())
    except OSError as e:
        raise Early(kind(e))
    buf = b""
    while b"\r\n\r\n" not in buf:
        try:
            chunk = s.recv(4096)
        except OSError as e:
            if not buf:
                raise Early(kind(e))
            raise
        if not chunk:
            if not buf:
                raise Early("closed")
            raise ConnectionError("closed in the response head")
        buf += chunk
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode(errors="replace").split("\r\n")
    status = int(lines[0].split()[1])
    length, conn_close = 0, False
    for l in lines[1:]:
        k, _, v = l.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
        if k.strip().lower() == "connection" and v.strip().lower() == "close":
            conn_close = True
    while len(body) < length:
        chunk = s.recv(4096)
        if not chunk:
            raise ConnectionError("closed in the response body")
        body += chunk
    return status, body[:length].decode(errors="replace"), conn_close


def do_l7(a):
    src = Src(a.src)
    stop = threading.Event()
    st = Stats()
    signal.signal(signal.SIGTERM, lambda *x: stop.set())

    def one(conn, close):
        """One request; (conn to keep or None)."""
        for attempt in (0, 1):
            fresh = conn is None
            try:
                if conn is None:
                    try:
                        conn = connect(a.vip, a.port, src.next(), 2.0)
                    except OSError as e:
                        raise Early(kind(e))
                status, body, cclose = http_get(conn, close)
            except Early as e:
                if conn:
                    conn.close()
                conn = None
                if attempt == 0:
                    st.add("retried")
                    st.add("retry_kinds", ("new " if fresh else "kept ") + str(e))
                    continue
                st.add("failed")
                st.add("fail_kinds", "retry failed: " + str(e))
                with st.lock:
                    if len(st.d["failures"]) < 20:
                        st.d["failures"].append([now_ms(), "retry failed: " + str(e)])
                return None
            except Exception as e:  # noqa: BLE001
                if conn:
                    conn.close()
                st.add("failed")
                st.add("fail_kinds", kind(e))
                with st.lock:
                    if len(st.d["failures"]) < 20:
                        st.d["failures"].append([now_ms(), kind(e) + " " + str(e)])
                return None
            if status != 200:
                st.add("failed")
                st.add("fail_kinds", "status %d" % status)
            else:
                st.add("ok")
                parts = body.split()
                st.add("by_peer", parts[1] if len(parts) > 1 else "?")
            if close or cclose:
                conn.close()
                return None
            return conn
        return None

    def keepalive():
        conn = None
        while not stop.is_set():
            conn = one(conn, False)
            time.sleep(0.003)
        if conn:
            conn.close()

    def fresh():
        while not stop.is_set():
            one(None, True)
            time.sleep(0.003)

    ts = [threading.Thread(target=keepalive, daemon=True) for _ in range(a.keepalive)]
    ts += [threading.Thread(target=fresh, daemon=True) for _ in range(a.new)]
    for t in ts:
        t.start()
    while not stop.is_set():
        stop.wait(0.2)
    for t in ts:
        t.join(5)
    with st.lock:
        st.d["total"] = st.d["ok"] + st.d["failed"]
        write_json(a.out, st.d)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("spread")
    p.add_argument("vip")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p = sub.add_parser("probe")
    p.add_argument("vip")
    p.add_argument("port", type=int)
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--timeout-ms", type=int, default=250)
    p = sub.add_parser("flows")
    p.add_argument("vip")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--src", required=True)
    p.add_argument("--status", required=True)
    p = sub.add_parser("l7")
    p.add_argument("vip")
    p.add_argument("port", type=int)
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--keepalive", type=int, default=6)
    p.add_argument("--new", type=int, default=3)
    a = ap.parse_args()
    {"spread": do_spread, "probe": do_probe, "flows": do_flows, "l7": do_l7}[a.mode](a)


if __name__ == "__main__":
    main()

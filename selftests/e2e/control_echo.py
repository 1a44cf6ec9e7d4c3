#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A long-lived TCP flow for the end-to-end control-plane test.

    control_echo.py server NAME PORT ADDR [--ready-file PATH]
    control_echo.py client VIP PORT [--interval S] [--timeout S]
                                    [--status-file PATH]

server: listens on ADDR:PORT and, on every connection (each in its own
thread), first sends "NAME\\n", then echoes every line it reads until the
peer closes. With --ready-file, creates PATH once it listens. Exits on
SIGTERM.

client: opens ONE connection to VIP:PORT, reads the server's name, then
every --interval seconds (default 0.1) sends "seq N\\n" and reads the echo,
which must be the same line, within --timeout seconds (default 1). It never
reconnects: the first failure ends the exchange (the client keeps running,
so the test sees the failure in the status). After every exchange it
rewrites --status-file (atomically) with one JSON object:

    {"peer": "cluster1-echo", "echoed": 42, "errors": 0, "error": "",
     "max_gap_ms": 103, "last_ms": 123456789, "local": "10.1.0.2:41234"}

max_gap_ms is the longest time between two successful echoes (or between
the connect and the first one); last_ms the CLOCK_MONOTONIC time of the
last success. On SIGTERM it prints the same object on stdout and exits 0.
"""
import argparse
import json
import os
import signal
import socket
import sys
import threading
import time


def now_ms():
    return int(time.monotonic() * 1000)


# ---- server ----

def serve(conn, name):
    try:
        conn.sendall(("%s\n" % name).encode())
        f = conn.makefile("rb")
        for line in f:
            conn.sendall(line)
    except OSError:
        pass
    finally:
        conn.close()


def server(args):
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.addr, args.port))
    srv.listen(64)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%s %s:%d\n" % (args.name, args.addr, args.port))
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn, args.name), daemon=True).start()


# ---- client ----

class State:
    def __init__(self):
        self.peer = ""
        self.echoed = 0
        self.errors = 0
        self.error = ""
        self.max_gap_ms = 0
        self.last_ms = 0
        self.local = ""

    def doc(self):
        return {"peer": self.peer, "echoed": self.echoed, "errors": self.errors,
                "error": self.error, "max_gap_ms": self.max_gap_ms,
                "last_ms": self.last_ms, "local": self.local}


def write_status(path, st):
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(st.doc(), f)
        f.write("\n")
    os.rename(tmp, path)


def read_line(sock, buf):
    while b"\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by peer")
        buf += chunk
    line, _, rest = buf.partition(b"\n")
    return line, rest


def client(args):
    st = State()

    def finish(*_):
        sys.stdout.write(json.dumps(st.doc()) + "\n")
        sys.stdout.flush()
        os._exit(0)

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    buf = b""
    sock = None
    try:
        sock = socket.create_connection((args.vip, args.port), timeout=args.timeout)
        sock.settimeout(args.timeout)
        st.local = "%s:%d" % sock.getsockname()[:2]
        line, buf = read_line(sock, buf)
        st.peer = line.decode(errors="replace")
        st.last_ms = now_ms()
    except (OSError, ValueError) as e:
        st.errors += 1
        st.error = "connect: %s: %s" % (type(e).__name__, e)
        sock = None
    write_status(args.status_file, st)
    seq = 0
    while True:
        time.sleep(args.interval)
        if sock is None:
            continue
        seq += 1
        want = ("seq %d" % seq).encode()
        try:
            sock.sendall(want + b"\n")
            line, buf = read_line(sock, buf)
            if line != want:
                raise ValueError("echo %r for %r" % (line[:40], want))
            t = now_ms()
            st.max_gap_ms = max(st.max_gap_ms, t - st.last_ms)
            st.last_ms = t
            st.echoed += 1
        except (OSError, ValueError) as e:
            st.errors += 1
            st.error = "seq %d: %s: %s" % (seq, type(e).__name__, e)
            sock.close()
            sock = None
        write_status(args.status_file, st)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server")
    s.add_argument("name")
    s.add_argument("port", type=int)
    s.add_argument("addr")
    s.add_argument("--ready-file")
    c = sub.add_parser("client")
    c.add_argument("vip")
    c.add_argument("port", type=int)
    c.add_argument("--interval", type=float, default=0.1)
    c.add_argument("--timeout", type=float, default=1.0)
    c.add_argument("--status-file")
    args = ap.parse_args()
    if args.mode == "server":
        server(args)
    else:
        client(args)


if __name__ == "__main__":
    main()

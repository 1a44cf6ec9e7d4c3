#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Watches who answers a VIP over time, for failover timings.

    control_watch.py VIP PORT [--duration S] [--interval S] [--timeout S]
                              [--ready-file PATH] [--warmup S]

For --duration seconds (default 2.5) opens a new connection to VIP:PORT
every --interval seconds (default 0.01; one at a time), sends a line and
reads the answer of selftests/e2e/tcp_server.py ("This is env NAME ! ...").
Prints one JSON object on stdout:

    {"events": [[T, "cluster1-a"], [T, "!ConnectionRefusedError"], ...]}

T is the connection's start, in milliseconds of CLOCK_MONOTONIC (the
caller's clock too), the second item the server's name or "!" and the kind
of error (--timeout per connection, default 0.5 s). With --ready-file, PATH
is created once connections have been made for --warmup seconds (default
0.3), so the caller changes things only while the watch is running.
"""
import argparse
import json
import re
import socket
import sys
import time

ANSWER = re.compile(r"^This is env (\S+) ! Config file is$")


def one(vip, port, timeout):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((vip, port))
        s.sendall(b"hello\n")
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(4096)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    m = ANSWER.match(buf.decode(errors="replace").rstrip("\n"))
    if not m:
        raise ValueError("unexpected answer %r" % buf[:80])
    return m.group(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vip")
    ap.add_argument("port", type=int)
    ap.add_argument("--duration", type=float, default=2.5)
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--timeout", type=float, default=0.5)
    ap.add_argument("--ready-file")
    ap.add_argument("--warmup", type=float, default=0.3)
    args = ap.parse_args()

    events = []
    start = time.monotonic()
    end = start + args.duration
    ready = not args.ready_file
    while time.monotonic() < end:
        if not ready and time.monotonic() >= start + args.warmup:
            with open(args.ready_file, "w") as f:
                f.write("%d\n" % len(events))
            ready = True
        t = int(time.monotonic() * 1000)
        try:
            who = one(args.vip, args.port, args.timeout)
        except (OSError, ValueError) as e:
            who = "!" + type(e).__name__
        events.append([t, who])
        time.sleep(args.interval)
    json.dump({"events": events}, sys.stdout, separators=(",", ":"))
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

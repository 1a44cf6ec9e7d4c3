#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Opens many idle TCP connections and holds them (for the limits tests).

  hold_conns.py ADDR PORT N --src A[,B...] --status FILE [--hold SECONDS]

Opens N connections to ADDR:PORT, sending nothing, from the source
addresses given in turn. Then it sorts them: a connection the server
answered at once with a 503 (or closed) within 0.5 s was refused. It writes
{"opened": N, "refused": R, "held": H, "failed": F, "refusals": {...}} to
FILE (written whole, by rename) and holds the others open for SECONDS or
until SIGTERM, then exits 0.
"""
import argparse
import json
import os
import resource
import select
import signal
import socket
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("addr")
    ap.add_argument("port", type=int)
    ap.add_argument("n", type=int)
    ap.add_argument("--src", required=True)
    ap.add_argument("--status", required=True)
    ap.add_argument("--hold", type=float, default=60)
    args = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < args.n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.n + 64), hard))
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))

    srcs = args.src.split(",")
    socks, failed = [], 0
    for i in range(args.n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((srcs[i % len(srcs)], 0))
            s.settimeout(2)
            s.connect((args.addr, args.port))
            socks.append(s)
        except OSError:
            failed += 1
            s.close()

    # Refusals come at once: a 503 and a close.
    deadline = time.monotonic() + 0.5
    refused, refusals = 0, {}
    by_fd = {s.fileno(): s for s in socks}
    poller = select.poll()
    for fd in by_fd:
        poller.register(fd, select.POLLIN)
    while time.monotonic() < deadline and by_fd:
        ready = [by_fd[fd] for fd, _ in poller.poll(50) if fd in by_fd]
        for s in ready:
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            line = data.split(b"\r\n", 1)[0].decode("latin-1", "replace")
            body = data.split(b"\r\n\r\n", 1)[-1].decode("latin-1", "replace").strip()
            key = "%s: %s" % (line, body) if line else "closed"
            refusals[key] = refusals.get(key, 0) + 1
            refused += 1
            poller.unregister(s.fileno())
            del by_fd[s.fileno()]
            s.close()
    status = {"opened": len(socks), "refused": refused, "held": len(by_fd),
              "failed": failed, "refusals": refusals}
    tmp = args.status + ".tmp"
    with open(tmp, "w") as f:
        json.dump(status, f)
    os.rename(tmp, args.status)
    time.sleep(args.hold)
    return 0


if __name__ == "__main__":
    sys.exit(main())

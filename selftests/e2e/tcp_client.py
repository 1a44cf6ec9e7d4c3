#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""The client side of the end-to-end tests.

    tcp_client.py VIP PORT N [--timeout S] [--max-time S]

Opens N connections to VIP:PORT one after another (each from a new source
port), sends a line, reads the answer ("This is env NAME ! ..."), and prints
one JSON object on stdout:

    {"answers": {"cluster1": 97, "cluster2": 103}, "errors": 0,
     "error_kinds": {...}}

A connection that fails, times out (--timeout, per connection, default 2 s)
or gets an unexpected answer counts as an error (its kind in error_kinds).
Once --max-time seconds (default 20) have passed in all, the connections
not yet tried count as errors of kind "not_run", so a broken data path
cannot stall the caller for N timeouts.
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
    ap.add_argument("n", type=int)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--max-time", type=float, default=20.0)
    args = ap.parse_args()

    answers, kinds, errors = {}, {}, 0
    deadline = time.monotonic() + args.max_time
    for i in range(args.n):
        if time.monotonic() >= deadline:
            errors += args.n - i
            kinds["not_run"] = args.n - i
            break
        try:
            name = one(args.vip, args.port, args.timeout)
            answers[name] = answers.get(name, 0) + 1
        except (OSError, ValueError) as e:
            errors += 1
            kind = type(e).__name__
            kinds[kind] = kinds.get(kind, 0) + 1
    json.dump({"answers": answers, "errors": errors, "error_kinds": kinds},
              sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()

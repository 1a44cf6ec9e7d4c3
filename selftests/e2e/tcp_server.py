#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A stand-in for a cluster's service in the end-to-end tests.

    tcp_server.py NAME PORT [ADDR] [--ready-file PATH]

Listens on ADDR:PORT (default 0.0.0.0), and for every connection (each in
its own thread) reads one line and answers "This is env NAME ! Config file
is\\n", then closes. With --ready-file, creates PATH once it listens, so a
test can wait for it instead of sleeping. Exits on SIGTERM/SIGINT.
"""
import argparse
import signal
import socket
import sys
import threading


def serve(conn, answer):
    try:
        conn.settimeout(5)
        buf = b""
        while b"\n" not in buf:
            chunk = conn.recv(4096)
            if not chunk:
                break
            buf += chunk
        conn.sendall(answer)
    except OSError:
        pass
    finally:
        conn.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("port", type=int)
    ap.add_argument("addr", nargs="?", default="0.0.0.0")
    ap.add_argument("--ready-file")
    args = ap.parse_args()

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    answer = ("This is env %s ! Config file is\n" % args.name).encode()
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((args.addr, args.port))
    srv.listen(512)
    if args.ready_file:
        with open(args.ready_file, "w") as f:
            f.write("%s %s:%d\n" % (args.name, args.addr, args.port))
    try:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn, answer),
                             daemon=True).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

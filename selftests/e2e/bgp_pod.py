#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A pod for the several-nodes end-to-end test (selftests/test_e2e_bgp.c).

    bgp_pod.py NAME ADDR --tcp PORT --http PORT --ready FILE

TCP on ADDR:--tcp: on every connection first sends "NAME PEER\\n" (PEER is
the address the connection comes from: the gateway node's address on its
link to this cluster, so the client learns which node carried it), then
echoes every line until the peer closes.

HTTP/1.1 on ADDR:--http (keep-alive): every GET is answered 200 with the
body "NAME PEER\\n".

Creates FILE once both listen; exits on SIGTERM.
"""
import argparse
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def tcp_serve(name, sock):
    while True:
        try:
            c, peer = sock.accept()
        except OSError:
            return
        threading.Thread(target=tcp_conn, args=(name, c, peer[0]), daemon=True).start()


def tcp_conn(name, c, peer):
    try:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c.sendall(("%s %s\n" % (name, peer)).encode())
        buf = b""
        while True:
            data = c.recv(4096)
            if not data:
                break
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                c.sendall(line + b"\n")
    except OSError:
        pass
    finally:
        c.close()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        body = ("%s %s\n" % (self.server.pod_name, self.client_address[0])).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("addr")
    ap.add_argument("--tcp", type=int, required=True)
    ap.add_argument("--http", type=int, required=True)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))

    tsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tsock.bind((args.addr, args.tcp))
    tsock.listen(1024)
    threading.Thread(target=tcp_serve, args=(args.name, tsock), daemon=True).start()

    httpd = Server((args.addr, args.http), Handler)
    httpd.pod_name = args.name
    open(args.ready, "w").close()
    httpd.serve_forever()


if __name__ == "__main__":
    main()

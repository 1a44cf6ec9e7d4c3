#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A tiny HTTP/1.1 upstream for the proxy tests (keep-alive, like web-demo).

  proxy_upstream.py --addr 127.0.0.11[,127.0.0.12...] --port 0 --name cluster1
                    --ready FILE [--mode normal|close] [--read-timeout S]

Listens on every address given (the same port), writes the bound port into
FILE once listening, and prints "REQ ADDR METHOD PATH" for every request
head it reads (so a test can count which endpoint got what). Answers:
  /echo     the request line, its header fields and its body (decoded when
            chunked, then "trailer: NAME: VALUE" lines for its trailer
            fields) after the usual greeting
  /chunked  a chunked response: the greeting, then the request body in
            7-byte chunks
  /status/N a response with status N and the body "upstream status N"
  /silent   nothing (holds the connection for 30 s)
  /half     Content-Length: 1000 but 10 bytes, then closes
  anything  "This is env NAME ! Config file is"
--mode close reads each request and closes the connection unanswered.
--read-timeout S closes a connection that sends nothing for S seconds (a
request body that stalls included), like a server's body timeout.
"""
import argparse
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        pass

    def setup(self):
        if self.server.read_timeout:
            self.timeout = self.server.read_timeout
        super().setup()

    def read_body(self):
        self.trailers = []
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            body = b""
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            break
                        self.trailers.append(t.decode("latin-1").rstrip("\r\n"))
                    return body
                body += self.rfile.read(size)
                self.rfile.readline(3)
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def greeting(self):
        return ("This is env %s ! Config file is\n" % self.server.name).encode()

    def send_plain(self, body):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        print("REQ %s %s %s" % (self.server.server_address[0], self.command, self.path),
              flush=True)
        body = self.read_body()
        if self.server.mode == "close":
            self.close_connection = True
            return
        path = self.path.split("?")[0]
        if path == "/echo":
            out = self.greeting() + ("%s %s\n" % (self.command, self.path)).encode()
            for k, v in self.headers.items():
                out += ("%s: %s\n" % (k, v)).encode()
            out += b"\n" + body
            for t in self.trailers:
                out += ("\ntrailer: %s" % t).encode("latin-1")
            self.send_plain(out)
        elif path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            data = self.greeting() + body
            parts = [data[:len(self.greeting())]] + \
                [data[i:i + 7] for i in range(len(self.greeting()), len(data), 7)]
            for part in parts:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
                self.wfile.flush()
            self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
        elif path.startswith("/status/"):
            code = int(path[len("/status/"):])
            body = ("upstream status %d\n" % code).encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif path.startswith("/delay/"):
            time.sleep(int(path[len("/delay/"):]) / 1000.0)
            self.send_plain(self.greeting())
        elif path == "/silent":
            time.sleep(30)
            self.close_connection = True
        elif path == "/half":
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"0123456789")
            self.wfile.flush()
            self.close_connection = True
        else:
            self.send_plain(self.greeting())

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = do_OPTIONS = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # bursts of connects (the pool test)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="cluster1")
    ap.add_argument("--mode", default="normal", choices=["normal", "close"])
    ap.add_argument("--read-timeout", type=float, default=0)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--tls-cert", help="serve HTTPS with this PEM certificate")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    port = args.port
    servers = []
    for addr in args.addr.split(","):
        srv = Server((addr, port), Handler)
        srv.name = args.name
        srv.mode = args.mode
        srv.read_timeout = args.read_timeout
        if args.tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(args.tls_cert, args.tls_key)
            srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        port = srv.server_address[1]
        servers.append(srv)
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.rename(tmp, args.ready)
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

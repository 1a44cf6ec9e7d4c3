#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""A tiny HTTP/1.1 upstream for the proxy tests (keep-alive, like web-demo).

  proxy_upstream.py --addr 127.0.0.11 --port 0 --name cluster1 --ready FILE
                    [--mode normal|close]

Writes the bound port into FILE once listening. Answers:
  /echo     the request line, its header fields and its body (decoded when
            chunked) after the usual greeting
  /chunked  a chunked response: the greeting, then the request body in
            7-byte chunks
  /silent   nothing (holds the connection for 30 s)
  /half     Content-Length: 1000 but 10 bytes, then closes
  anything  "This is env NAME ! Config file is"
--mode close reads each request and closes the connection unanswered.
"""
import argparse
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):  # quiet
        pass

    def read_body(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            body = b""
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="cluster1")
    ap.add_argument("--mode", default="normal", choices=["normal", "close"])
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    srv = Server((args.addr, args.port), Handler)
    srv.name = args.name
    srv.mode = args.mode
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.rename(tmp, args.ready)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""An HTTP/1.1 upstream for the L7 splice tests (selftests/test_splice.c).

  splice_upstream.py --addr 127.0.0.1 --port 0 --ready FILE

Keep-alive. Bodies are the byte pattern pat(i) = (i * 131 + i // 65536) & 0xff,
so the client checks them without a copy. Answers:
  /big?n=N            Content-Length N, the pattern
  /chunked?n=N&c=C    the pattern in chunks of C bytes (chunked coding);
                      &pause=MS: each chunk-size line alone, then MS ms
  /upload             reads the request body (Content-Length or chunked)
                      and answers "LEN SHA256HEX"
  /cut?n=N            Content-Length N, N/2 bytes of the pattern, then closes
  /id?k=K             "id K" (keep-alive boundaries)
"""
import argparse
import hashlib
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

BLOCK = 1 << 20


_SEG = bytes((i * 131) & 0xff for i in range(65536))
_SHIFT = [bytes((x + k) & 0xff for x in range(256)) for k in range(256)]


def pat_bytes(off, n):
    """Pattern bytes [off, off + n): within an aligned 64 KiB segment,
    (i * 131) & 0xff repeats and i >> 16 is a constant shift."""
    out = []
    while n:
        seg, pos = off >> 16, off & 0xffff
        k = min(n, 65536 - pos)
        out.append(_SEG[pos:pos + k].translate(_SHIFT[seg & 0xff]))
        off += k
        n -= k
    return b"".join(out)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, fmt, *args):
        pass

    def body_hash(self):
        h = hashlib.sha256()
        n = 0
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                left = size
                while left:
                    d = self.rfile.read(min(left, BLOCK))
                    if not d:
                        raise ConnectionError("short body")
                    h.update(d)
                    left -= len(d)
                n += size
                self.rfile.readline(3)
        else:
            left = int(self.headers.get("Content-Length", "0") or 0)
            while left:
                d = self.rfile.read(min(left, BLOCK))
                if not d:
                    raise ConnectionError("short body")
                h.update(d)
                n += len(d)
                left -= len(d)
        return n, h.hexdigest()

    def send_pattern(self, n, stop=None):
        off = 0
        end = n if stop is None else stop
        while off < end:
            k = min(BLOCK, end - off)
            self.wfile.write(pat_bytes(off, k))
            off += k

    def handle_any(self):
        u = urlparse(self.path)
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        n, digest = self.body_hash()
        if u.path == "/big" or u.path == "/cut":
            size = int(q.get("n", "0"))
            self.send_response(200)
            self.send_header("Content-Length", str(size))
            self.end_headers()
            if u.path == "/cut":
                self.send_pattern(size, size // 2)
                self.wfile.flush()
                self.close_connection = True
                return
            self.send_pattern(size)
        elif u.path == "/chunked":
            size = int(q.get("n", "0"))
            c = int(q.get("c", "1000"))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pause = int(q.get("pause", "0")) / 1000.0
            off = 0
            while off < size:
                k = min(c, size - off)
                if pause:
                    # A slower upstream: the chunk-size line, a pause,
                    # then the data (the proxy can open a window in it).
                    self.wfile.write(b"%x\r\n" % k)
                    self.wfile.flush()
                    time.sleep(pause)
                    self.wfile.write(pat_bytes(off, k) + b"\r\n")
                else:
                    self.wfile.write(b"%x\r\n" % k + pat_bytes(off, k) + b"\r\n")
                off += k
            self.wfile.write(b"0\r\n\r\n")
        elif u.path == "/upload":
            body = ("%d %s\n" % (n, digest)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        else:
            body = ("id %s\n" % q.get("k", "")).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = handle_any


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--ready", required=True)
    args = ap.parse_args()
    srv = Server((args.addr, args.port), Handler)
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

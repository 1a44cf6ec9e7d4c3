#!/usr/bin/python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# A WebSocket server and client for the proxy's upgrade tests, on Debian's
# python3-websockets (a real RFC 6455 implementation, not ours).
#
#   ws_peer.py server --addr A --port P --name N --ready FILE
#       echoes every message prefixed with "N:" (text) or as is (binary);
#       "whoami" is answered with N; "close" makes the server close.
#       /reject answers 403 (no upgrade). Writes FILE when listening.
#   ws_peer.py client --url URL [--header K:V]... [--count N] [--size B]
#       [--expect NAME] [--ssl-noverify]
#       sends N text messages and N binary ones of B bytes, checks the
#       echoes, prints "ok NAME" (the server's name) or "FAIL why"; exit 0/1.
#   ws_peer.py hold --url URL: connects, then waits for the server side to
#       close; prints "closed CODE" and the seconds it took.
import argparse
import asyncio
import http
import os
import ssl
import sys
import time

import websockets


async def serve(args):
    async def handler(ws, path=None):
        async for msg in ws:
            if isinstance(msg, bytes):
                await ws.send(msg)
            elif msg == "whoami":
                await ws.send(args.name)
            elif msg == "close":
                await ws.close(code=4000, reason="asked")
                return
            else:
                await ws.send("%s:%s" % (args.name, msg))

    async def reject(path, headers):
        if path.startswith("/reject"):
            return (http.HTTPStatus.FORBIDDEN, {"Content-Type": "text/plain"},
                    b"no upgrade here\n")
        return None

    async with websockets.serve(handler, args.addr, args.port, process_request=reject,
                                max_size=None, ping_interval=None):
        with open(args.ready + ".tmp", "w") as f:
            f.write("ready\n")
        os.rename(args.ready + ".tmp", args.ready)
        await asyncio.Future()


def headers(args):
    out = []
    for h in args.header or []:
        k, _, v = h.partition(":")
        out.append((k.strip(), v.strip()))
    return out


def ssl_ctx(args):
    if not args.url.startswith("wss:"):
        return None
    ctx = ssl.create_default_context()
    if args.ssl_noverify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def client(args):
    kw = {"extra_headers": headers(args), "max_size": None, "ping_interval": None,
          "open_timeout": 10}
    if ssl_ctx(args):
        kw["ssl"] = ssl_ctx(args)
        if args.server_hostname:
            kw["server_hostname"] = args.server_hostname
    async with websockets.connect(args.url, **kw) as ws:
        await ws.send("whoami")
        name = await asyncio.wait_for(ws.recv(), 10)
        if args.expect and name != args.expect:
            print("FAIL served by %s, expected %s" % (name, args.expect))
            return 1
        for i in range(args.count):
            await ws.send("m%d" % i)
            got = await asyncio.wait_for(ws.recv(), 10)
            if got != "%s:m%d" % (name, i):
                print("FAIL text echo %d: %r" % (i, got[:80]))
                return 1
            data = os.urandom(args.size)
            await ws.send(data)
            got = await asyncio.wait_for(ws.recv(), 30)
            if got != data:
                print("FAIL binary echo %d: %d bytes back of %d" % (i, len(got), len(data)))
                return 1
        if args.server_close:
            await ws.send("close")
            try:
                await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as e:
                if e.rcvd is None or e.rcvd.code != 4000:
                    print("FAIL close code %r" % (e.rcvd,))
                    return 1
                print("ok %s closed-by-server" % name)
                return 0
            print("FAIL the server did not close")
            return 1
    print("ok %s" % name)
    return 0


async def hold(args):
    kw = {"extra_headers": headers(args), "ping_interval": None, "open_timeout": 10}
    start = time.monotonic()
    async with websockets.connect(args.url, **kw) as ws:
        try:
            await asyncio.wait_for(ws.recv(), args.wait)
        except websockets.ConnectionClosed as e:
            print("closed %s after %.1f s" % (e.rcvd.code if e.rcvd else "none",
                                              time.monotonic() - start))
            return 0
        except asyncio.TimeoutError:
            print("FAIL still open after %.1f s" % (time.monotonic() - start))
            return 1
    return 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "client", "hold"])
    ap.add_argument("--addr", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--name", default="ws")
    ap.add_argument("--ready")
    ap.add_argument("--url")
    ap.add_argument("--header", action="append")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--expect")
    ap.add_argument("--server-close", action="store_true")
    ap.add_argument("--ssl-noverify", action="store_true")
    ap.add_argument("--server-hostname")
    ap.add_argument("--wait", type=float, default=30)
    args = ap.parse_args()
    try:
        if args.mode == "server":
            asyncio.run(serve(args))
            return 0
        return asyncio.run(client(args) if args.mode == "client" else hold(args))
    except Exception as e:  # a failed handshake is a test result, printed
        print("FAIL %s: %s" % (type(e).__name__, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())

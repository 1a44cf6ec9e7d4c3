#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""
A small stand-in for kube-apiserver's list/watch endpoints, for
selftests/test_kube.c (python3 standard library only).

Serves, for one or more "clusters" (each with its own store and
resourceVersion counter):

  GET [/clusters/NAME]/api/v1/RESOURCE
  GET [/clusters/NAME]/apis/GROUP/VERSION/RESOURCE
      ?limit=N&continue=TOKEN             paginated LIST (items without
                                          kind/apiVersion, like the real one)
      ?watch=1&resourceVersion=RV&allowWatchBookmarks=true&timeoutSeconds=S
                                          WATCH: newline-delimited JSON events
                                          over chunked transfer encoding
      ?labelSelector=KEY or KEY=VALUE     (one term) filters both
  The cluster named "" (no /clusters/NAME prefix) is the default one.

resourceVersion semantics: one monotonic counter per cluster, bumped by every
write; events are retained since the last compaction. A watch from an RV
older than the compaction point gets an ERROR event with code 410 (or an
HTTP 410 answer, see /_test/config); a continue token from before the
compaction gets HTTP 410. A watch from an RV newer than the store's also
gets 410 (the real server would wait; this keeps restarts simple).
Bookmarks are sent every --bookmark-interval seconds when asked for.

Auth: with --token, a request needs "Authorization: Bearer TOKEN" unless it
presented a client certificate verified against --client-ca (TLS only);
otherwise 401 with a Status body.

Control endpoints (plain JSON, no auth, same port):
  POST /_test/apply?cluster=NAME      body: an object (apiVersion, kind,
                                      metadata.name[, namespace]); create or
                                      replace
  POST /_test/delete?cluster=NAME     body: {apiVersion, kind, metadata}
  POST /_test/disconnect              drop every open watch stream abruptly
  POST /_test/compact?cluster=NAME    body (optional): {"disconnect": bool,
                                      "apply": [objs], "delete": [objs]}: drop
                                      streams, apply, then forget history so
                                      every earlier RV is too old
  POST /_test/config                  {"watch410": "event"|"http",
                                      "bookmarkInterval": seconds,
                                      "notServed": [resource, ...] (404)}
  GET  /_test/log                     every API request so far: [{seq,
                                      cluster, resource, watch, rv,
                                      continue, limit, code}]
  GET  /_test/rv?cluster=NAME         {"rv": current resourceVersion}

--state FILE keeps the stores across restarts (rewritten on every change),
--port-file FILE receives the bound port (127.0.0.1, port --port or 0).
"""
import argparse
import base64
import json
import os
import socket
import ssl
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCES = {
    # kind: (resource, namespaced)
    "Service": "services",
    "Endpoints": "endpoints",
    "EndpointSlice": "endpointslices",
    "Pod": "pods",
    "Secret": "secrets",
    "Ingress": "ingresses",
    "MseIngressConfig": "mseingressconfigs",
    "ConfigMap": "configmaps",
}

LOCK = threading.Condition()
STORES = {}          # cluster -> Store
LOG = []
CONFIG = {"watch410": "event", "bookmarkInterval": 1.0}
GENERATION = [0]     # bumped by /_test/disconnect
ARGS = None


class Store:
    def __init__(self, name, state=None):
        self.name = name
        self.rv = 1
        self.compacted = 1
        self.objects = {}    # resource -> {"ns/name": obj}
        self.events = []     # (rv, resource, type, obj)
        self.snapshots = {}  # id -> (rv, resource, [items])
        self.next_snap = 1
        if state:
            self.rv = state["rv"]
            self.compacted = self.rv
            self.objects = state["objects"]

    def dump(self):
        return {"rv": self.rv, "objects": self.objects}


def store(name):
    s = STORES.get(name)
    if s is None:
        s = STORES[name] = Store(name)
    return s


def save_state():
    if not ARGS.state:
        return
    tmp = ARGS.state + ".tmp"
    with open(tmp, "w") as f:
        json.dump({n: s.dump() for n, s in STORES.items()}, f)
    os.replace(tmp, ARGS.state)


def key_of(obj):
    md = obj.get("metadata", {})
    return "%s/%s" % (md.get("namespace", ""), md["name"])


def resource_of(obj):
    return RESOURCES.get(obj["kind"], obj["kind"].lower() + "s")


def write(st, obj, deleting=False):
    """Applies one change under LOCK; returns the event type or None."""
    res = resource_of(obj)
    k = key_of(obj)
    objs = st.objects.setdefault(res, {})
    if deleting:
        old = objs.pop(k, None)
        if old is None:
            return None
        st.rv += 1
        old = json.loads(json.dumps(old))
        old["metadata"]["resourceVersion"] = str(st.rv)
        st.events.append((st.rv, res, "DELETED", old))
        return "DELETED"
    st.rv += 1
    obj = json.loads(json.dumps(obj))
    md = obj.setdefault("metadata", {})
    md["resourceVersion"] = str(st.rv)
    typ = "MODIFIED" if k in objs else "ADDED"
    if typ == "ADDED":
        md["uid"] = "uid-%s-%d" % (st.name or "default", st.rv)
    else:
        md["uid"] = objs[k]["metadata"].get("uid")
    md["managedFields"] = [{"manager": "apiserver.py", "operation": "Update"}]
    objs[k] = obj
    st.events.append((st.rv, res, typ, obj))
    return typ


def compact(st):
    st.rv += 1
    st.compacted = st.rv
    st.events = []
    st.snapshots = {}


def status_obj(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "metadata": {},
            "status": "Failure", "message": message, "reason": reason,
            "code": code}


def selector_matches(sel, obj):
    if not sel:
        return True
    labels = obj.get("metadata", {}).get("labels") or {}
    if "=" in sel:
        k, v = sel.split("=", 1)
        return labels.get(k.rstrip("=")) == v
    return sel in labels


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        if ARGS.verbose:
            sys.stderr.write("apiserver: " + (fmt % args) + "\n")

    def send_json(self, code, obj, reason=None):
        body = (json.dumps(obj) + "\n").encode()
        self.send_response(code, reason)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(n) if n else b""
        return json.loads(data) if data else {}

    def authenticated(self):
        try:
            if self.connection.getpeercert():
                return True
        except (AttributeError, ValueError):
            pass
        if not ARGS.token:
            return True
        return self.headers.get("Authorization") == "Bearer " + ARGS.token

    # ---- control ----
    def do_POST(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        cl = q.get("cluster", "")
        body = self.read_body()
        with LOCK:
            st = store(cl)
            if u.path == "/_test/apply":
                write(st, body)
            elif u.path == "/_test/delete":
                write(st, body, deleting=True)
            elif u.path == "/_test/disconnect":
                GENERATION[0] += 1
            elif u.path == "/_test/compact":
                if body.get("disconnect"):
                    GENERATION[0] += 1
                for o in body.get("apply", []):
                    write(st, o)
                for o in body.get("delete", []):
                    write(st, o, deleting=True)
                compact(st)
            elif u.path == "/_test/config":
                CONFIG.update(body)
            else:
                self.send_json(404, status_obj(404, "NotFound", "no such control"))
                return
            save_state()
            rv = st.rv
            LOCK.notify_all()
        self.send_json(200, {"ok": True, "rv": rv})

    def do_GET(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if u.path == "/_test/log":
            with LOCK:
                self.send_json(200, LOG)
            return
        if u.path == "/_test/rv":
            with LOCK:
                self.send_json(200, {"rv": store(q.get("cluster", "")).rv})
            return
        parts = [p for p in u.path.split("/") if p]
        cl = ""
        if len(parts) >= 2 and parts[0] == "clusters":
            cl = parts[1]
            parts = parts[2:]
        if len(parts) == 3 and parts[0] == "api":
            api, res = parts[1], parts[2]
        elif len(parts) == 4 and parts[0] == "apis":
            api, res = parts[1] + "/" + parts[2], parts[3]
        else:
            self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
            return
        watch = q.get("watch") in ("1", "true")
        entry = {"cluster": cl, "resource": res, "watch": watch,
                 "rv": q.get("resourceVersion"), "continue": q.get("continue"),
                 "limit": q.get("limit"), "selector": q.get("labelSelector"),
                 "bookmarks": q.get("allowWatchBookmarks"), "code": 200}
        with LOCK:
            entry["seq"] = len(LOG)
            LOG.append(entry)
        if res in CONFIG.get("notServed", []):
            entry["code"] = 404
            self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
            return
        if not self.authenticated():
            entry["code"] = 401
            self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
            return
        if watch:
            self.watch(cl, api, res, q, entry)
        else:
            self.list(cl, api, res, q, entry)

    def list(self, cl, api, res, q, entry):
        limit = int(q.get("limit") or 0)
        sel = q.get("labelSelector")
        with LOCK:
            st = store(cl)
            tok = q.get("continue")
            if tok:
                try:
                    sid, off = base64.b64decode(tok).decode().split(":")
                    sid, off = int(sid), int(off)
                    snap = st.snapshots[sid]
                except (ValueError, KeyError):
                    entry["code"] = 410
                    self.send_json(410, status_obj(410, "Expired", "The provided continue parameter is too old"))
                    return
            else:
                items = [o for o in st.objects.get(res, {}).values()
                         if selector_matches(sel, o)]
                items.sort(key=key_of)
                sid = st.next_snap
                st.next_snap += 1
                snap = (st.rv, items)
                st.snapshots[sid] = snap
                off = 0
            rv, items = snap
            end = off + limit if limit else len(items)
            page = []
            for o in items[off:end]:
                o = dict(o)
                o.pop("kind", None)
                o.pop("apiVersion", None)
                page.append(o)
            md = {"resourceVersion": str(rv)}
            if end < len(items):
                md["continue"] = base64.b64encode(("%d:%d" % (sid, end)).encode()).decode()
                md["remainingItemCount"] = len(items) - end
            else:
                st.snapshots.pop(sid, None)
        kind = "List"
        for k, r in RESOURCES.items():
            if r == res:
                kind = k + "List"
        self.send_json(200, {"kind": kind, "apiVersion": api, "metadata": md, "items": page})

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, cl, api, res, q, entry):
        sel = q.get("labelSelector")
        bookmarks = q.get("allowWatchBookmarks") in ("1", "true")
        timeout = float(q.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        try:
            since = int(q.get("resourceVersion") or 0)
        except ValueError:
            since = -1
        with LOCK:
            st = store(cl)
            too_old = since < st.compacted or since > st.rv
            http410 = CONFIG["watch410"] == "http"
            gen = GENERATION[0]
        if too_old and http410:
            entry["code"] = 410
            self.send_json(410, status_obj(410, "Expired", "too old resource version: %d (%d)" % (since, st.compacted)))
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if too_old:
            entry["code"] = "410-event"
            ev = {"type": "ERROR", "object": status_obj(410, "Expired", "too old resource version: %d (%d)" % (since, st.compacted))}
            self.chunk((json.dumps(ev) + "\n").encode())
            self.chunk(b"")
            return
        last_bookmark = time.monotonic()
        pos = since
        while True:
            out = []
            with LOCK:
                if GENERATION[0] != gen:
                    self.drop()
                    return
                for (rv, r, typ, obj) in st.events:
                    if rv > pos and r == res and selector_matches(sel, obj):
                        out.append({"type": typ, "object": obj})
                if st.events:
                    pos = max(pos, st.events[-1][0])
                now = time.monotonic()
                if not out and bookmarks and now - last_bookmark >= CONFIG["bookmarkInterval"]:
                    out.append({"type": "BOOKMARK", "object": {
                        "kind": "Bookmark", "apiVersion": api,
                        "metadata": {"resourceVersion": str(st.rv)}}})
                    pos = max(pos, st.rv)
                    last_bookmark = now
                if not out:
                    if now >= deadline:
                        break
                    LOCK.wait(min(0.1, deadline - now))
                    continue
            try:
                for ev in out:
                    self.chunk((json.dumps(ev) + "\n").encode())
            except OSError:
                return
        try:
            self.chunk(b"")
        except OSError:
            pass

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, handler, ctx):
        super().__init__(addr, handler)
        self.ctx = ctx

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ctx:
            sock.settimeout(5)
            try:
                sock = self.ctx.wrap_socket(sock, server_side=True)
            except (ssl.SSLError, OSError) as e:
                if ARGS.verbose:
                    sys.stderr.write("apiserver: TLS handshake: %s\n" % e)
                sock.close()
                raise
            sock.settimeout(None)
        return sock, addr

    def handle_error(self, request, client_address):
        if ARGS.verbose:
            super().handle_error(request, client_address)


def main():
    global ARGS
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--client-ca")
    p.add_argument("--token")
    p.add_argument("--state")
    p.add_argument("--bookmark-interval", type=float, default=1.0)
    p.add_argument("-v", "--verbose", action="store_true")
    ARGS = p.parse_args()
    CONFIG["bookmarkInterval"] = ARGS.bookmark_interval
    if ARGS.state and os.path.exists(ARGS.state):
        with open(ARGS.state) as f:
            for n, s in json.load(f).items():
                STORES[n] = Store(n, s)
    ctx = None
    if ARGS.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(ARGS.tls_cert, ARGS.tls_key)
        if ARGS.client_ca:
            ctx.load_verify_locations(ARGS.client_ca)
            ctx.verify_mode = ssl.CERT_OPTIONAL
    srv = Server(("127.0.0.1", ARGS.port), Handler, ctx)
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()

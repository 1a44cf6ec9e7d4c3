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
      ?fieldSelector=PATH=V[,PATH!=V]     (dotted paths, e.g. type=kubernetes.io/tls)
                                          filters both
  The cluster named "" (no /clusters/NAME prefix) is the default one.
  .../namespaces/NS/RESOURCE              the same, one namespace

Objects, as the real server does them (selftests/test_lease.c,
test_e2e_bgp.c; read back with kubectl):

  GET    .../[namespaces/NS/]RESOURCE/NAME[/status]   one object (404 Status)
  POST   .../[namespaces/NS/]RESOURCE                 create (201; 409
                                                      AlreadyExists)
  PUT    .../RESOURCE/NAME                            update all but status
  PUT    .../RESOURCE/NAME/status                     update the status only
                                                      (both: 409 Conflict when
                                                      metadata.resourceVersion
                                                      is not the stored one)
  PATCH  .../RESOURCE/NAME[/status]                   JSON merge patch
                                                      (application/merge-patch
                                                      +json; strategic merge
                                                      taken as merge), of the
                                                      status only on /status
  DELETE .../RESOURCE/NAME                            200, 404
  A write that changes nothing keeps the resourceVersion and sends no
  event. Cluster-scoped: mseingressconfigs. Lists and single objects come
  as a meta.k8s.io/v1 Table when the Accept header asks for one (kubectl
  get), with the real server's columns for Ingress (Name, Class, Hosts,
  Address, Ports, Age), Service and Lease; discovery (/version, /api,
  /api/v1, /apis, /apis/GROUP/VERSION) lists what is served.

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
                                      continue, limit, code, method, name,
                                      namespace, sub, agent (User-Agent)}]
  GET  /_test/rv?cluster=NAME         {"rv": current resourceVersion}

--state FILE keeps the stores across restarts (rewritten on every change),
--port-file FILE receives the bound port (--bind, default 127.0.0.1; port
--port or 0).
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
    "Lease": "leases",
}
CLUSTER_SCOPED = {"mseingressconfigs"}
# Discovery: group/version -> [(resource, kind, namespaced, shortNames)]
DISCOVERY = {
    "v1": [("services", "Service", True, ["svc"]), ("endpoints", "Endpoints", True, ["ep"]),
           ("pods", "Pod", True, ["po"]), ("secrets", "Secret", True, []),
           ("configmaps", "ConfigMap", True, ["cm"])],
    "networking.k8s.io/v1": [("ingresses", "Ingress", True, ["ing"])],
    "discovery.k8s.io/v1": [("endpointslices", "EndpointSlice", True, [])],
    "coordination.k8s.io/v1": [("leases", "Lease", True, [])],
    "mse.alibabacloud.com/v1alpha1": [("mseingressconfigs", "MseIngressConfig", False, [])],
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


def same_object(a, b):
    """Equal but for resourceVersion and managedFields."""
    def strip(o):
        o = json.loads(json.dumps(o))
        md = o.get("metadata", {})
        md.pop("resourceVersion", None)
        md.pop("managedFields", None)
        return o
    return strip(a) == strip(b)


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return json.loads(json.dumps(patch))
    if not isinstance(target, dict):
        target = {}
    target = dict(target)
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = merge_patch(target.get(k), v)
    return target


def kind_of(res):
    for k, r in RESOURCES.items():
        if r == res:
            return k
    return res[:-1].capitalize()


def human_age(secs):
    secs = max(0, int(secs))
    if secs < 120:
        return "%ds" % secs
    if secs < 600:
        return "%dm%ds" % (secs // 60, secs % 60) if secs % 60 else "%dm" % (secs // 60)
    if secs < 3 * 3600:
        return "%dm" % (secs // 60)
    if secs < 48 * 3600:
        return "%dh" % (secs // 3600)
    return "%dd" % (secs // 86400)


def created_age(obj):
    ts = obj.get("metadata", {}).get("creationTimestamp")
    if not ts:
        return "<unknown>"
    try:
        t = time.mktime(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone
    except ValueError:
        return "<unknown>"
    return human_age(time.time() - t)


def lb_addresses(obj):
    ing = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return ",".join(e.get("ip") or e.get("hostname") or "" for e in ing)


def table(res, api, items, rv):
    """A meta.k8s.io/v1 Table, with the columns the real server prints."""
    col = lambda n, t="string", f="": {"name": n, "type": t, "format": f,
                                       "description": n, "priority": 0}
    if res == "ingresses":
        cols = [col("Name", f="name"), col("Class"), col("Hosts"), col("Address"),
                col("Ports"), col("Age")]
    elif res == "services":
        cols = [col("Name", f="name"), col("Type"), col("Cluster-IP"), col("External-IP"),
                col("Port(s)"), col("Age")]
    elif res == "leases":
        cols = [col("Name", f="name"), col("Holder"), col("Age")]
    else:
        cols = [col("Name", f="name"), col("Age")]
    rows = []
    for o in items:
        md = o.get("metadata", {})
        spec = o.get("spec") or {}
        name = md.get("name", "")
        if res == "ingresses":
            hosts = ",".join(r.get("host", "") for r in spec.get("rules") or [] if r.get("host")) or "*"
            ports = "80, 443" if spec.get("tls") else "80"
            cells = [name, spec.get("ingressClassName") or "<none>", hosts,
                     lb_addresses(o), ports, created_age(o)]
        elif res == "services":
            ports = ",".join("%s/%s" % (p.get("port"), p.get("protocol", "TCP"))
                             for p in spec.get("ports") or [])
            cells = [name, spec.get("type", "ClusterIP"), spec.get("clusterIP", "<none>"),
                     lb_addresses(o) or "<none>", ports or "<none>", created_age(o)]
        elif res == "leases":
            cells = [name, spec.get("holderIdentity", ""), created_age(o)]
        else:
            cells = [name, created_age(o)]
        rows.append({"cells": cells, "object": {
            "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md}})
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1",
            "metadata": {"resourceVersion": str(rv)},
            "columnDefinitions": cols, "rows": rows}


def parse_path(parts):
    """[api|apis ...] -> (api, resource, namespace or None, name, sub), or
    None."""
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
        api, rest = "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        api, rest = parts[1] + "/" + parts[2], parts[3:]
    else:
        return None
    ns = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    return (api, rest[0], ns, rest[1] if len(rest) > 1 else None,
            rest[2] if len(rest) > 2 else None)


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


def fields_match(sel, obj):
    if not sel:
        return True
    for term in sel.split(","):
        neg = "!=" in term
        path, want = term.split("!=" if neg else "=", 1)
        v = obj
        for part in path.lstrip("=").split("."):
            v = v.get(part) if isinstance(v, dict) else None
        if (str(v) == want if v is not None else want == "") == neg:
            return False
    return True


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
        if not u.path.startswith("/_test/"):
            self.rest_write("POST")
            return
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
        cl, parts = self.cluster_parts(u.path)
        if self.discovery(parts):
            return
        parsed = parse_path(parts)
        if not parsed:
            self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
            return
        api, res, ns, name, sub = parsed
        watch = q.get("watch") in ("1", "true")
        entry = {"cluster": cl, "resource": res, "watch": watch,
                 "rv": q.get("resourceVersion"), "continue": q.get("continue"),
                 "limit": q.get("limit"), "selector": q.get("labelSelector"),
                 "fields": q.get("fieldSelector"),
                 "bookmarks": q.get("allowWatchBookmarks"), "code": 200,
                 "method": "GET", "name": name, "namespace": ns, "sub": sub,
                 "agent": self.headers.get("User-Agent", "")}
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
        if name:
            self.get_one(cl, api, res, ns, name, entry)
        elif watch:
            self.watch(cl, api, res, q, entry, ns)
        else:
            self.list(cl, api, res, q, entry, ns)

    def list(self, cl, api, res, q, entry, ns=None):
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
                         if selector_matches(sel, o) and
                         fields_match(q.get("fieldSelector"), o) and
                         (ns is None or key_of(o).startswith(ns + "/"))]
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
        if self.wants_table():
            self.send_json(200, table(res, api, items[off:end], rv))
            return
        self.send_json(200, {"kind": kind, "apiVersion": api, "metadata": md, "items": page})

    # ---- discovery, single objects, writes ----
    def cluster_parts(self, path):
        parts = [p for p in path.split("/") if p]
        if len(parts) >= 2 and parts[0] == "clusters":
            return parts[1], parts[2:]
        return "", parts

    def wants_table(self):
        return "as=Table" in (self.headers.get("Accept") or "")

    def discovery(self, parts):
        """Answers /version, /api, /api/v1, /apis, /apis/G/V; False for
        anything else."""
        host = "%s:%d" % self.server.server_address[:2]
        if parts == ["version"]:
            self.send_json(200, {"major": "1", "minor": "20", "gitVersion": "v1.20.2-apiserver.py",
                                 "platform": "linux/amd64"})
        elif parts == ["api"]:
            self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                 "serverAddressByClientCIDRs": [
                                     {"clientCIDR": "0.0.0.0/0", "serverAddress": host}]})
        elif parts == ["apis"]:
            groups = []
            for gv in DISCOVERY:
                if gv == "v1":
                    continue
                g, v = gv.split("/")
                ver = {"groupVersion": gv, "version": v}
                groups.append({"name": g, "versions": [ver], "preferredVersion": ver})
            self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
        elif (parts == ["api", "v1"] or
              (len(parts) == 3 and parts[0] == "apis" and "/".join(parts[1:]) in DISCOVERY)):
            gv = "v1" if parts[0] == "api" else "/".join(parts[1:])
            resources = []
            verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
            for res, kind, namespaced, short in DISCOVERY[gv]:
                r = {"name": res, "singularName": "", "namespaced": namespaced, "kind": kind,
                     "verbs": verbs}
                if short:
                    r["shortNames"] = short
                resources.append(r)
                resources.append({"name": res + "/status", "singularName": "",
                                  "namespaced": namespaced, "kind": kind,
                                  "verbs": ["get", "patch", "update"]})
            self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                 "groupVersion": gv, "resources": resources})
        else:
            return False
        return True

    def object_key(self, res, ns, name):
        return "%s/%s" % ("" if res in CLUSTER_SCOPED else (ns or "default"), name)

    def with_kind(self, api, res, obj):
        o = dict(obj)
        o.setdefault("kind", kind_of(res))
        o.setdefault("apiVersion", api)
        return o

    def not_found(self, res, api, name):
        group = api.split("/")[0] if "/" in api else ""
        what = res + ("." + group if group else "")
        return status_obj(404, "NotFound", '%s "%s" not found' % (what, name))

    def get_one(self, cl, api, res, ns, name, entry):
        with LOCK:
            st = store(cl)
            obj = st.objects.get(res, {}).get(self.object_key(res, ns, name))
            rv = st.rv
        if obj is None:
            entry["code"] = 404
            self.send_json(404, self.not_found(res, api, name))
        elif self.wants_table():
            self.send_json(200, table(res, api, [obj], rv))
        else:
            self.send_json(200, self.with_kind(api, res, obj))

    def rest_write(self, method):
        u = urllib.parse.urlsplit(self.path)
        cl, parts = self.cluster_parts(u.path)
        parsed = parse_path(parts)
        try:
            body = self.read_body()
        except ValueError:
            body = None
        if not parsed:
            self.send_json(404, status_obj(404, "NotFound", "the server could not find the requested resource"))
            return
        api, res, ns, name, sub = parsed
        entry = {"cluster": cl, "resource": res, "watch": False, "rv": None,
                 "continue": None, "limit": None, "selector": None, "bookmarks": None,
                 "method": method, "name": name, "namespace": ns, "sub": sub,
                 "agent": self.headers.get("User-Agent", ""), "code": 0}
        with LOCK:
            entry["seq"] = len(LOG)
            LOG.append(entry)
        if not self.authenticated():
            entry["code"] = 401
            self.send_json(401, status_obj(401, "Unauthorized", "Unauthorized"))
            return
        code, out = self.apply_write(method, cl, api, res, ns, name, sub, body)
        entry["code"] = code
        self.send_json(code, out)

    def apply_write(self, method, cl, api, res, ns, name, sub, body):
        group = api.split("/")[0] if "/" in api else ""
        what = res + ("." + group if group else "")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if method in ("POST", "PUT", "PATCH") and not isinstance(body, dict):
            return 400, status_obj(400, "BadRequest", "the body is not a JSON object")
        if method == "PATCH" and ctype not in ("application/merge-patch+json",
                                                "application/strategic-merge-patch+json"):
            return 415, status_obj(415, "UnsupportedMediaType",
                                   "the body of the request was in an unknown format: " + ctype)
        with LOCK:
            st = store(cl)
            objs = st.objects.setdefault(res, {})
            if method == "POST":
                if name or sub:
                    return 405, status_obj(405, "MethodNotAllowed", "POST to an object")
                md = body.setdefault("metadata", {})
                name = md.get("name")
                if not name:
                    return 422, status_obj(422, "Invalid", "metadata.name: Required value")
                if res not in CLUSTER_SCOPED:
                    md["namespace"] = ns or md.get("namespace") or "default"
                k = self.object_key(res, md.get("namespace"), name)
                if k in objs:
                    return 409, status_obj(409, "AlreadyExists", '%s "%s" already exists' % (what, name))
                md.pop("resourceVersion", None)
                md["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
                obj = self.with_kind(api, res, body)
                write(st, obj)
                out = objs[k]
                code = 201
            else:
                if not name:
                    return 405, status_obj(405, "MethodNotAllowed", method + " to a collection")
                k = self.object_key(res, ns, name)
                cur = objs.get(k)
                if cur is None:
                    return 404, self.not_found(res, api, name)
                if method == "DELETE":
                    write(st, cur, deleting=True)
                    out = status_obj(200, "", "")
                    out["status"] = "Success"
                    code = 200
                else:
                    want_rv = (body.get("metadata") or {}).get("resourceVersion")
                    if want_rv and want_rv != cur["metadata"]["resourceVersion"]:
                        return 409, status_obj(409, "Conflict", (
                            'Operation cannot be fulfilled on %s "%s": the object has been '
                            'modified; please apply your changes to the latest version and '
                            'try again') % (what, name))
                    if method == "PATCH":
                        merged = merge_patch(cur, body)
                    else:
                        merged = json.loads(json.dumps(body))
                    new = json.loads(json.dumps(cur))
                    if sub == "status":
                        if "status" in merged:
                            new["status"] = merged["status"]
                        else:
                            new.pop("status", None)
                    else:
                        keep = new.get("status")
                        keep_md = new["metadata"]
                        new = merged
                        new["metadata"] = dict(new.get("metadata") or {})
                        for f in ("name", "namespace", "uid", "creationTimestamp"):
                            if f in keep_md:
                                new["metadata"][f] = keep_md[f]
                            else:
                                new["metadata"].pop(f, None)
                        if keep is not None:
                            new["status"] = keep
                        else:
                            new.pop("status", None)
                    new = self.with_kind(api, res, new)
                    if not same_object(cur, new):
                        write(st, new)
                    out = objs[k]
                    code = 200
            save_state()
            LOCK.notify_all()
        return code, self.with_kind(api, res, out) if code in (200, 201) and "metadata" in out and out.get("kind") != "Status" else out

    def do_PUT(self):
        self.rest_write("PUT")

    def do_PATCH(self):
        self.rest_write("PATCH")

    def do_DELETE(self):
        self.rest_write("DELETE")

    def chunk(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, cl, api, res, q, entry, ns=None):
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
                    if rv > pos and r == res and selector_matches(sel, obj) and \
                            fields_match(q.get("fieldSelector"), obj) and \
                            (ns is None or key_of(obj).startswith(ns + "/")):
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
    p.add_argument("--bind", default="127.0.0.1")
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
    srv = Server((ARGS.bind, ARGS.port), Handler, ctx)
    if ARGS.port_file:
        tmp = ARGS.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % srv.server_address[1])
        os.replace(tmp, ARGS.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()

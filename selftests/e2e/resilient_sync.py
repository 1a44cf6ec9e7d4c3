#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
"""Resilient ECMP on a Linux router from the next hops BIRD learned.

    resilient_sync.py --prefix 10.1.9.1/32 --from-table 100 --to-table 200
                      --group-id 900 [--buckets 64] [--idle-timer 1]
                      --status FILE

BIRD 2 installs a multipath route (RTA_MULTIPATH) into --from-table; it
does not create nexthop objects. This keeps a resilient nexthop group
(`ip nexthop ... type resilient`, kernel 5.13+) with the same members and
points --prefix at it in --to-table:

    ip nexthop replace id N via GW dev DEV          (one per next hop)
    ip nexthop replace id G group N1/N2/N3 type resilient buckets B ...
    ip route replace PREFIX nhid G table TO

Replacing the group's members keeps every bucket of the members that
stay: removing a node moves only that node's flows; a node that comes
back gets buckets as they go idle (--idle-timer seconds without a
packet), so established flows on the others stay where they are.

It reacts to `ip monitor route` (and looks again every 200 ms), and
rewrites FILE after each change: {"members": ["GW", ...], "updates": N,
"at": ms}. Exits on SIGTERM, removing its route and nexthops.
"""
import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time


def ip(*args, check=True):
    r = subprocess.run(["ip"] + list(args), capture_output=True, text=True)
    if check and r.returncode:
        sys.stderr.write("resilient_sync: ip %s: %s" % (" ".join(args), r.stderr))
    return r


def learned(prefix, table):
    r = ip("-j", "route", "show", "table", str(table), "exact", prefix, check=False)
    try:
        routes = json.loads(r.stdout or "[]")
    except ValueError:
        return []
    hops = []
    for rt in routes:
        if "nexthops" in rt:
            hops += [(h["gateway"], h["dev"]) for h in rt["nexthops"] if "gateway" in h]
        elif "gateway" in rt:
            hops.append((rt["gateway"], rt["dev"]))
    return sorted(set(hops))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--from-table", type=int, required=True)
    ap.add_argument("--to-table", type=int, required=True)
    ap.add_argument("--group-id", type=int, required=True)
    ap.add_argument("--buckets", type=int, default=64)
    ap.add_argument("--idle-timer", type=int, default=1)
    ap.add_argument("--status", required=True)
    a = ap.parse_args()
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *x: stop.__setitem__(0, True))

    ids = {}          # gateway -> nexthop id
    members = None    # what the group holds now
    updates = 0
    mon = subprocess.Popen(["ip", "monitor", "route"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL)
    os.set_blocking(mon.stdout.fileno(), False)

    def status():
        tmp = a.status + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"members": [g for g, _ in members or []], "updates": updates,
                       "at": int(time.monotonic() * 1000)}, f)
        os.replace(tmp, a.status)

    status_written = False
    while not stop[0]:
        hops = learned(a.prefix, a.from_table)
        if hops != members:
            for gw, dev in hops:
                if gw not in ids:
                    ids[gw] = a.group_id + 1 + len(ids)
                ip("nexthop", "replace", "id", str(ids[gw]), "via", gw, "dev", dev)
            if hops:
                group = "/".join(str(ids[g]) for g, _ in hops)
                verb = "replace" if members else "add"
                ip("nexthop", verb, "id", str(a.group_id), "group", group, "type", "resilient",
                   "buckets", str(a.buckets), "idle_timer", str(a.idle_timer))
                if not members:
                    ip("route", "replace", a.prefix, "nhid", str(a.group_id), "table",
                       str(a.to_table))
            elif members:
                ip("route", "del", a.prefix, "table", str(a.to_table), check=False)
                ip("nexthop", "del", "id", str(a.group_id), check=False)
            members = hops
            updates += 1
            status()
            status_written = True
        elif not status_written:
            status()
            status_written = True
        r, _, _ = select.select([mon.stdout], [], [], 0.2)
        if r:
            try:
                mon.stdout.read()
            except (OSError, TypeError):
                pass
    mon.terminate()
    ip("route", "del", a.prefix, "table", str(a.to_table), check=False)
    ip("nexthop", "del", "id", str(a.group_id), check=False)
    for nid in ids.values():
        ip("nexthop", "del", "id", str(nid), check=False)


if __name__ == "__main__":
    main()

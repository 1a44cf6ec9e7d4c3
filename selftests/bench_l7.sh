#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# fleetgate L7 benchmark. Prints `bench: NAME VALUE UNIT` and
# `bench: NAME ratio X.XX vs PEER` lines; `info:` lines explain them.
#
# One run, one topology, three HTTP/1.1 gateways in turn on the same
# address (10.77.0.1:80), the same two-cluster routes for each: requests
# with the header "stage: gray" go to cluster 2, all others to cluster 1.
#
#   fleetgate  build/fleetgate-agent --config-dir (seed-style
#              MseIngressConfig, Ingress /svc1 pinned to cluster 1 by
#              subset-labels, canary Ingress by header stage: gray pinned
#              to cluster 2; clusters/<id>/ Service + EndpointSlice)
#   nginx      proxy_pass to a `map $http_stage` upstream, keep-alive pools
#   haproxy    acl on hdr(stage), use_backend, http-reuse, keep-alive
#
#       client 10.77.0.2 --- gc 10.77.0.1 [gw] g1 10.77.1.1 --- c1 10.77.1.2:8080
#         (wrk)                 (gateway)      g2 10.77.2.1 --- c2 10.77.2.2:8080
#
# The clusters' web servers are nginx instances (one per cluster namespace,
# own config and pid under a temp dir) serving static files:
# /svc1/small ("This is env clusterN ! Config file is"), /svc1/1m (1 MiB),
# /svc1/64m (64 MiB). wrk in the client alternates plain and "stage: gray"
# requests (selftests/bench/l7_wrk.lua), so each route carries half.
#
# Per gateway: requests/s, p50 and p99 on keep-alive connections and on
# new connections (Connection: close), throughput of 1 MiB and 64 MiB
# responses, gateway CPU seconds (utime+stime of every process in the
# gateway namespace) per 10k requests; then each figure of fleetgate and
# haproxy as a ratio to nginx.
#
# Everything it creates (namespaces `fgl<pid>*`, veths, pins under
# /sys/fs/bpf/fgl<pid>, processes, the temp dir) is removed on exit, Ctrl-C
# included; traffic never leaves its namespaces. Bounded by a watchdog
# (BENCH_TIMEOUT, 450 s).
#
# Every gateway is measured BENCH_ROUNDS times (2), interleaved (nginx,
# haproxy, fleetgate, nginx, ...); each case reports its best round.
#
# Knobs (environment): BENCH_SECS (seconds per measurement, 10),
# BENCH_ROUNDS (2), BENCH_THREADS (wrk threads, 2), BENCH_CONC (connections
# for small responses, 64), BENCH_CONC_1M (8), BENCH_CONC_64M (2),
# BENCH_PEERS (order, default "nginx haproxy fleetgate"), BENCH_UP_WORKERS
# (nginx workers per cluster web server, 1), BENCH_FG_OFFLOADS and
# BENCH_PEER_OFFLOADS (offloads of the client and cluster veth ends during
# fleetgate's run and during nginx's and haproxy's; "on", the default for
# both, is the kernel's default; "off" is what demo/run.sh and bench.sh set
# because fleetgate's L4 XDP_REDIRECT needs it, L7 does not),
# BENCH_NGINX_BUFFERING and BENCH_HAPROXY_SPLICE (their directives for large
# responses), BENCH_FG_ARGS (more fleetgate-agent options, e.g.
# "--xdp-mode generic"), BENCH_TIMEOUT, BENCH_KEEP_TMP=1 (keep the temp
# dir: configs, logs), BUILD (build).
#
# The whole script is one { } block: bash parses it before running it, so
# editing this file during a run cannot change the running one.
{
set -u

cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${BUILD:-build}
SECS=${BENCH_SECS:-10}
THREADS=${BENCH_THREADS:-2}
CONC=${BENCH_CONC:-64}
CONC_1M=${BENCH_CONC_1M:-8}
CONC_64M=${BENCH_CONC_64M:-2}
PEERS=${BENCH_PEERS:-nginx haproxy fleetgate}
UP_WORKERS=${BENCH_UP_WORKERS:-1}
FG_OFFLOADS=${BENCH_FG_OFFLOADS:-on}
PEER_OFFLOADS=${BENCH_PEER_OFFLOADS:-on}
FG_ARGS=${BENCH_FG_ARGS:-}
ROUNDS=${BENCH_ROUNDS:-2}
TIMEOUT=${BENCH_TIMEOUT:-450}
LUA=$ROOT/selftests/bench/l7_wrk.lua

P=fgl$$
P=${P:0:11}             # interface names below add <= 2 chars (<= 15)
NS_CL=${P}cl NS_GW=${P}gw NS_C1=${P}c1 NS_C2=${P}c2
IF_CE=${P}ce IF_GC=${P}gc IF_G1=${P}g1 IF_1E=${P}1e IF_G2=${P}g2 IF_2E=${P}2e
PIN=/sys/fs/bpf/$P
GW=10.77.0.1
CLUSTER1=c7fb82a1b2c3d4e5f60718293a4b5c6d7
CLUSTER2=c15d48ca9d1fd43f9bbb89c56a474843c
TMP=$(mktemp -d /tmp/fleetgate-bench-l7.XXXXXX)
chmod 755 "$TMP"          # nginx workers run as www-data
PIDS=()
GW_PID=
WATCHDOG=
HZ=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # for every gateway alike

log() { echo "info: $*"; }
die() { echo "bench: FAILED: $*" >&2; exit 1; }

cleanup() {
	local pid ns
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}"; do
		wait "$pid" 2>/dev/null
	done
	# Whatever still runs in our namespaces was started by us (nginx
	# workers whose master is gone, a wrk past its timeout).
	for ns in "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"; do
		[ -e "/run/netns/$ns" ] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
	done
	for ns in "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"; do
		[ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
	done
	[ -n "${BENCH_KEEP_TMP:-}" ] && echo "info: kept $TMP" >&2 || rm -rf "$TMP"
	rm -rf "$PIN" "/run/fleetgate/$P.sock"
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (namespaces, XDP)"
[ -x "$BUILD/fleetgate-agent" ] || die "$BUILD/fleetgate-agent missing: run make"
for t in nginx haproxy wrk curl ethtool nsenter; do
	command -v $t >/dev/null || die "$t missing (apt-get install nginx haproxy wrk curl ethtool util-linux)"
done
[ -r "$LUA" ] || die "$LUA missing"
# A private copy: a rebuild during the run must not change the binary.
cp "$BUILD/fleetgate-agent" "$TMP/fleetgate-agent" || die "cannot copy the agent"

# Its sleep does not hold our stdout: a pipe reading it ends with the run.
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$TIMEOUT" >/dev/null 2>&1 & s=$!
	wait $s && { echo "bench: watchdog: over ${TIMEOUT}s, stopping" >&2; kill -TERM $$; }
) &
WATCHDOG=$!

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0.00" }'; }

log "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start (other load skews every figure)"
log "versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v 2>/dev/null | head -1 | awk '{ print "haproxy " $3 }'), $(wrk -v 2>&1 | head -1 | awk '{ print "wrk " $2 }'), fleetgate $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"

# --- topology ---------------------------------------------------------------
ns_up() {
	local ns
	for ns in "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"; do
		ip netns add "$ns" || return 1
		in_ns "$ns" ip link set lo up || return 1
	done
	in_ns "$NS_GW" sh -e -c "
		sysctl -qw net.ipv4.ip_forward=1
		sysctl -qw net.core.somaxconn=4096
		sysctl -qw net.ipv4.tcp_max_syn_backlog=4096" || return 1
	in_ns "$NS_CL" sh -e -c "
		sysctl -qw net.ipv4.ip_local_port_range='1024 65535'
		sysctl -qw net.ipv4.tcp_tw_reuse=1" || return 1
	in_ns "$NS_C1" sysctl -qw net.core.somaxconn=4096 &&
	in_ns "$NS_C2" sysctl -qw net.core.somaxconn=4096
}

# links_up: the three veth pairs, new. Every gateway gets new ones: once
# XDP has been attached to a veth, its peer cannot get TSO back (ethtool:
# "Could not change any device features"), which would slow whichever
# gateway runs after fleetgate.
links_up() {
	in_ns "$NS_GW" ip link del "$IF_GC" 2>/dev/null
	in_ns "$NS_GW" ip link del "$IF_G1" 2>/dev/null
	in_ns "$NS_GW" ip link del "$IF_G2" 2>/dev/null
	ip link add "$IF_CE" netns "$NS_CL" type veth peer name "$IF_GC" netns "$NS_GW" &&
	ip link add "$IF_1E" netns "$NS_C1" type veth peer name "$IF_G1" netns "$NS_GW" &&
	ip link add "$IF_2E" netns "$NS_C2" type veth peer name "$IF_G2" netns "$NS_GW" || return 1
	in_ns "$NS_GW" sh -e -c "
		ip addr add 10.77.0.1/24 dev $IF_GC
		ip addr add 10.77.1.1/24 dev $IF_G1
		ip addr add 10.77.2.1/24 dev $IF_G2
		for i in $IF_GC $IF_G1 $IF_G2; do ip link set \$i up; done" || return 1
	in_ns "$NS_CL" sh -e -c "
		ip addr add 10.77.0.2/24 dev $IF_CE; ip link set $IF_CE up
		ip route add default via 10.77.0.1" || return 1
	in_ns "$NS_C1" sh -e -c "
		ip addr add 10.77.1.2/24 dev $IF_1E; ip link set $IF_1E up
		ip route add default via 10.77.1.1" || return 1
	in_ns "$NS_C2" sh -e -c "
		ip addr add 10.77.2.2/24 dev $IF_2E; ip link set $IF_2E up
		ip route add default via 10.77.2.1" || return 1
}
ns_up && links_up || die "cannot build the topology"

# offloads off|on: the client and cluster ends of the veths. "off" is what
# demo/run.sh and bench.sh set for fleetgate (XDP_REDIRECT into a veth needs
# GRO on the peer; redirected TCP needs checksum offload, TSO, GSO off);
# "on" is the kernel's default for a veth.
offloads() {
	local f
	if [ "$1" = off ]; then f="tx off tso off gso off gro on"; else f="tx on tso on gso on gro off"; fi
	# Feature by feature, end by end: one that cannot change must not keep
	# the others from changing; the info lines show what is in effect.
	set -- $f
	while [ $# -ge 2 ]; do
		in_ns "$NS_CL" ethtool -K "$IF_CE" "$1" "$2" >>"$TMP/ethtool.log" 2>&1
		in_ns "$NS_C1" ethtool -K "$IF_1E" "$1" "$2" >>"$TMP/ethtool.log" 2>&1
		in_ns "$NS_C2" ethtool -K "$IF_2E" "$1" "$2" >>"$TMP/ethtool.log" 2>&1
		shift 2
	done
	true
}

# veth_features NS IF: what is in effect (XDP on the peer turns GSO off).
veth_features() {
	in_ns "$1" ethtool -k "$2" 2>/dev/null | awk -F': ' '
		/^tx-checksumming:/ { o = o ", tx " $2 }
		/^tcp-segmentation-offload:/ { o = o ", tso " $2 }
		/^generic-segmentation-offload:/ { o = o ", gso " $2 }
		/^generic-receive-offload:/ { o = o ", gro " $2 }
		END { print substr(o, 3) }'
}

# --- the clusters' web servers --------------------------------------------------
# up_start N: nginx in cluster N's namespace on 10.77.N.2:8080.
up_start() {
	local n=$1 d=$TMP/c$1 ns
	[ "$n" = 1 ] && ns=$NS_C1 || ns=$NS_C2
	mkdir -p "$d/www/svc1" "$d/tmp" || return 1
	printf 'This is env cluster%s ! Config file is\n' "$n" >"$d/www/svc1/small"
	ln "$TMP/1m" "$d/www/svc1/1m" && ln "$TMP/64m" "$d/www/svc1/64m" || return 1
	cat >"$d/nginx.conf" <<EOF
worker_processes $UP_WORKERS;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
	access_log off;
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	default_type text/plain;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_requests 1000000;
	keepalive_timeout 120s;
	open_file_cache max=16 inactive=600s;
	open_file_cache_valid 600s;
	server {
		listen 8080 backlog=4096; # 10.77.$n.2, renewed with the links
		root $d/www;
		location = /status { stub_status; }
	}
}
EOF
	ip netns exec "$ns" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' &
	PIDS+=($!)
}

# up_requests: requests served so far by cluster 1 and cluster 2.
up_requests() {
	local n
	for n in 1 2; do
		in_ns "$NS_GW" curl -s -m 2 "http://10.77.$n.2:8080/status" |
			awk 'NR == 3 { printf "%s ", $3 }'
	done
}

head -c $((1024 * 1024)) /dev/zero | tr '\0' 'a' >"$TMP/1m" &&
head -c $((64 * 1024 * 1024)) /dev/zero | tr '\0' 'b' >"$TMP/64m" || die "cannot write the bodies"
up_start 1 && up_start 2 || die "cannot start the clusters' web servers"
for n in 1 2; do
	for _ in $(seq 50); do
		in_ns "$NS_GW" curl -s -m 1 "http://10.77.$n.2:8080/svc1/small" 2>/dev/null | grep -q "cluster$n " && break
		sleep 0.1
	done
	in_ns "$NS_GW" curl -s -m 1 "http://10.77.$n.2:8080/svc1/small" | grep -q "cluster$n " ||
		die "cluster $n's web server does not answer"
done
log "clusters: nginx ($UP_WORKERS worker(s) each) on 10.77.1.2:8080 and 10.77.2.2:8080, static /svc1/small ($(stat -c %s "$TMP/c1/www/svc1/small") bytes), /svc1/1m, /svc1/64m, sendfile"

# --- the gateways ---------------------------------------------------------------
# Each start_* starts one gateway on $GW:80 in the gateway namespace and sets
# GW_PID (the process to stop; nginx's master).

fg_config() {
	local d=$TMP/fg n id
	mkdir -p "$d/fleet" "$d/clusters/$CLUSTER1" "$d/clusters/$CLUSTER2" || return 1
	sed -e "s/^  name: ackone-gateway/  name: ackone-gateway\n  annotations:\n    mse.alibabacloud.com\/remote-clusters: $CLUSTER1,$CLUSTER2/" \
		"$ROOT/demo/manifests/mseingressconfig.yaml" >"$d/fleet/mseingressconfig.yaml" || return 1
	cat >"$d/fleet/ingress-l7.yaml" <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  annotations:
    mse.ingress.kubernetes.io/service-subset: cluster-demo-1
    mse.ingress.kubernetes.io/subset-labels: |
      topology.istio.io/cluster $CLUSTER1
  name: web-demo-l7
  namespace: web-demo
spec:
  ingressClassName: mse
  rules:
  - host: example.com
    http:
      paths:
      - path: /svc1
        pathType: Prefix
        backend:
          service:
            name: service1
            port:
              number: 80
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  annotations:
    mse.ingress.kubernetes.io/service-subset: cluster-demo-2
    mse.ingress.kubernetes.io/subset-labels: |
      topology.istio.io/cluster $CLUSTER2
    nginx.ingress.kubernetes.io/canary: "true"
    nginx.ingress.kubernetes.io/canary-by-header: "stage"
    nginx.ingress.kubernetes.io/canary-by-header-value: "gray"
  name: web-demo-l7-gray
  namespace: web-demo
spec:
  ingressClassName: mse
  rules:
  - host: example.com
    http:
      paths:
      - path: /svc1
        pathType: Prefix
        backend:
          service:
            name: service1
            port:
              number: 80
EOF
	for n in 1 2; do
		[ "$n" = 1 ] && id=$CLUSTER1 || id=$CLUSTER2
		cat >"$d/clusters/$id/service1.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: service1
  namespace: web-demo
spec:
  selector:
    app: web-demo
  ports:
  - name: http
    port: 80
    targetPort: 8080
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: service1-c$n
  namespace: web-demo
  labels:
    kubernetes.io/service-name: service1
addressType: IPv4
ports:
- name: http
  port: 8080
endpoints:
- addresses: ["10.77.$n.2"]
  conditions: {ready: true}
EOF
	done
}

start_fleetgate() {
	fg_config || return 1
	# nsenter, not ip netns exec: the agent must see /sys/fs/bpf.
	nsenter --net="/run/netns/$NS_GW" "$TMP/fleetgate-agent" --config-dir "$TMP/fg" \
		--listen $GW:80 -i "$IF_GC" -i "$IF_G1" -i "$IF_G2" -p "$PIN" $FG_ARGS \
		2>"$TMP/agent.log" &
	GW_PID=$!; PIDS+=($GW_PID)
}

start_nginx() {
	local d=$TMP/gw-nginx
	mkdir -p "$d/tmp" || return 1
	cat >"$d/nginx.conf" <<EOF
worker_processes auto;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path $d/tmp/body;
	proxy_temp_path $d/tmp/proxy;
	fastcgi_temp_path $d/tmp/fastcgi;
	uwsgi_temp_path $d/tmp/uwsgi;
	scgi_temp_path $d/tmp/scgi;
	tcp_nodelay on;
	keepalive_requests 1000000;
	keepalive_timeout 120s;
	upstream c1 {
		server 10.77.1.2:8080;
		keepalive 128;
		keepalive_requests 1000000;
		keepalive_timeout 120s;
	}
	upstream c2 {
		server 10.77.2.2:8080;
		keepalive 128;
		keepalive_requests 1000000;
		keepalive_timeout 120s;
	}
	map \$http_stage \$cluster {
		default c1;
		gray    c2;
	}
	server {
		listen $GW:80 backlog=4096;
		server_name example.com;
		location /svc1 {
			proxy_pass http://\$cluster;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
			$NGINX_BUFFERING
		}
	}
}
EOF
	ip netns exec "$NS_GW" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' &
	GW_PID=$!; PIDS+=($GW_PID)
}
# Large responses: buffered in memory (the default 8 small buffers, larger
# here), never spooled to a temp file on disk.
NGINX_BUFFERING=${BENCH_NGINX_BUFFERING:-proxy_buffers 16 64k; proxy_buffer_size 16k; proxy_busy_buffers_size 128k; proxy_max_temp_file_size 0;}

start_haproxy() {
	local d=$TMP/gw-haproxy
	mkdir -p "$d" || return 1
	cat >"$d/haproxy.cfg" <<EOF
global
	nbthread $(nproc)
	maxconn 4096
	pidfile $d/haproxy.pid
	tune.bufsize 65536
defaults
	mode http
	option http-keep-alive
	http-reuse always
	timeout connect 5s
	timeout client 60s
	timeout server 60s
	timeout http-keep-alive 60s
	$HAPROXY_SPLICE
frontend fe
	bind $GW:80 backlog 4096
	acl gray hdr(stage) -m str gray
	use_backend c2 if gray
	default_backend c1
backend c1
	server s1 10.77.1.2:8080
backend c2
	server s2 10.77.2.2:8080
EOF
	ip netns exec "$NS_GW" haproxy -db -f "$d/haproxy.cfg" >"$d/log" 2>&1 &
	GW_PID=$!; PIDS+=($GW_PID)
}
HAPROXY_SPLICE=${BENCH_HAPROXY_SPLICE:-option splice-auto}

# routes_ok: the gateway answers, plain requests from cluster 1 and gray
# ones from cluster 2.
routes_ok() {
	in_ns "$NS_CL" curl -s -m 1 -H 'Host: example.com' "http://$GW/svc1/small" 2>/dev/null |
		grep -q "env cluster1 " &&
	in_ns "$NS_CL" curl -s -m 1 -H 'Host: example.com' -H 'stage: gray' "http://$GW/svc1/small" 2>/dev/null |
		grep -q "env cluster2 "
}

stop_gateway() {
	local pid
	[ -n "$GW_PID" ] || return
	kill -TERM "$GW_PID" 2>/dev/null
	wait "$GW_PID" 2>/dev/null
	GW_PID=
	for _ in $(seq 30); do
		[ -z "$(ip netns pids "$NS_GW")" ] && break
		sleep 0.1
	done
	for pid in $(ip netns pids "$NS_GW"); do kill -KILL "$pid" 2>/dev/null; done
	# An agent that died leaves its XDP links pinned, so attached: removing
	# the pins releases them. Wait for that, so the next gateway runs on
	# bare veths with their offloads back.
	rm -rf "$PIN"
	for _ in $(seq 50); do
		in_ns "$NS_GW" ip -d link show 2>/dev/null | grep -q 'prog/xdp' || break
		sleep 0.1
	done
	if in_ns "$NS_GW" ip -d link show 2>/dev/null | grep -q 'prog/xdp'; then
		log "WARNING: XDP still attached in the gateway namespace after the agent stopped"
	fi
}

# gw_ticks: CPU clock ticks (utime + stime, all threads) of every process
# in the gateway namespace: the gateway's own processes only.
gw_ticks() {
	local pid t=0 s
	for pid in $(ip netns pids "$NS_GW"); do
		s=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
		t=$((t + $(echo "$s" | awk '{ print $12 + $13 }')))
	done
	echo $t
}

# --- measurements ---------------------------------------------------------------
declare -A R

# wrk_case PEER CASE PATH CONNS TIMEOUT [WRK ARGS]: one wrk run, figures
# into R[PEER,CASE,*].
wrk_case() {
	local peer=$1 cs=$2 path=$3 conns=$4 to=$5 out c0 c1 u0 u1 line
	shift 5
	u0=$(up_requests)
	c0=$(gw_ticks)
	out=$(timeout -k 3 $((SECS + 20)) ip netns exec "$NS_CL" wrk -t "$THREADS" -c "$conns" -d "${SECS}s" \
		--latency --timeout "$to" -H 'Host: example.com' "$@" -s "$LUA" "http://$GW:80" -- "$path" 2>&1)
	c1=$(gw_ticks)
	u1=$(up_requests)
	line=$(echo "$out" | grep '^l7: ')
	if [ -z "$line" ]; then
		log "$peer $cs: wrk failed: $(echo "$out" | tail -3 | tr '\n' ' ')"
		line="l7: requests 0 bytes 0 duration_us 1 p50_us 0 p99_us 0 errors 0 0 0 0 0"
	fi
	set -- $line
	local req=$3 bytes=$5 dur=$7 p50=$9 p99=${11}
	local econn=${13} eread=${14} ewrite=${15} estat=${16} eto=${17}
	local t=$((c1 - c0)) k
	[ $t -lt 0 ] && t=0 # the gateway died during the run: its ticks are gone
	local -A F
	F[rps]=$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
	F[mibs]=$(awk -v b="$bytes" -v d="$dur" 'BEGIN { printf "%.1f", b / 1048576 / (d / 1e6) }')
	F[p50]=$(awk -v v="$p50" 'BEGIN { printf "%.3f", v / 1000 }')
	F[p99]=$(awk -v v="$p99" 'BEGIN { printf "%.3f", v / 1000 }')
	F[cpu]=$(awk -v t=$t -v hz="$HZ" -v r="$req" \
		'BEGIN { if (r > 0) printf "%.3f", t / hz / r * 10000; else print "0" }')
	F[cores]=$(awk -v t=$t -v hz="$HZ" -v d="$dur" 'BEGIN { printf "%.2f", t / hz / (d / 1e6) }')
	# The figures of a case are those of its best round (most responses/s):
	# other load on the machine only ever slows a round down.
	if [ -z "${R[$peer,$cs,rps]:-}" ] || [ "${F[rps]}" -gt "${R[$peer,$cs,rps]}" ]; then
		for k in "${!F[@]}"; do R[$peer,$cs,$k]=${F[$k]}; done
		R[$peer,$cs,round]=$ROUND
	fi
	local a0 b0 a1 b1
	read -r a0 b0 <<<"$u0"; read -r a1 b1 <<<"$u1"
	log "$peer $cs (round $ROUND): $req responses in $(awk -v d="$dur" 'BEGIN { printf "%.2f", d / 1e6 }')s ($conns connections, $THREADS wrk threads), $bytes bytes; errors connect $econn read $eread write $ewrite status $estat timeout $eto; upstream requests cluster1 $((${a1:-0} - ${a0:-0})) cluster2 $((${b1:-0} - ${b0:-0})); gateway CPU $(awk -v t=$t -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')s = ${F[cores]} cores; ${F[rps]} req/s, p50 ${F[p50]} ms, p99 ${F[p99]} ms, ${F[mibs]} MiB/s"
	[ $((econn + eread + ewrite + estat + eto)) -gt 0 ] &&
		log "$peer $cs: WARNING: $((econn + eread + ewrite + estat + eto)) errors (status = non-2xx/3xx answers)"
}

# start_peer PEER: starts it and waits until it routes (up to 15 s).
START_WAIT=
start_peer() {
	local peer=$1 i
	links_up || die "cannot renew the links"
	case $peer in
	fleetgate)
		offloads "$FG_OFFLOADS" || die "ethtool"
		start_fleetgate || die "cannot start fleetgate" ;;
	nginx)
		offloads "$PEER_OFFLOADS" || die "ethtool"
		start_nginx || die "cannot start nginx" ;;
	haproxy)
		offloads "$PEER_OFFLOADS" || die "ethtool"
		start_haproxy || die "cannot start haproxy" ;;
	*) die "unknown peer $peer (BENCH_PEERS: nginx haproxy fleetgate)" ;;
	esac
	for i in $(seq 150); do
		routes_ok && break
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.1
	done
	START_WAIT=$((i / 10)).$((i % 10))
	if ! routes_ok; then
		[ "$peer" = fleetgate ] && tail -20 "$TMP/agent.log" >&2
		[ "$peer" = haproxy ] && tail -20 "$TMP/gw-haproxy/log" >&2
		[ "$peer" = nginx ] && tail -20 "$TMP/gw-nginx/error.log" >&2
		die "$peer does not route: plain -> cluster1, stage: gray -> cluster2"
	fi
}

# ensure_gateway PEER CASE: a gateway that died during the previous
# measurement is reported (exit status; 141 = SIGPIPE) and started again
# (unless CASE is "end"), so that the remaining figures are still taken.
ensure_gateway() {
	local rc
	kill -0 "$GW_PID" 2>/dev/null && return 0
	wait "$GW_PID" 2>/dev/null; rc=$?
	log "$1: WARNING: the gateway (pid $GW_PID) died after the measurement before \"$2\", exit status $rc$( [ $rc -gt 128 ] && echo " (signal $((rc - 128)): $(kill -l $((rc - 128)) 2>/dev/null))"); restarting it"
	[ "$1" = fleetgate ] && tail -5 "$TMP/agent.log" | sed 's/^/info: agent: /'
	DIED[$1]=$(( ${DIED[$1]:-0} + 1 ))
	GW_PID=
	stop_gateway
	[ "$2" = end ] || start_peer "$1"
}
declare -A DIED

run_peer() {
	local peer=$1 i
	start_peer "$peer"
	log "$peer: offloads in effect: client end $(veth_features "$NS_CL" "$IF_CE"); cluster 1 end $(veth_features "$NS_C1" "$IF_1E")"
	case $peer in
	fleetgate) log "fleetgate: fleetgate-agent --config-dir --listen $GW:80, XDP on the three gateway veths${FG_ARGS:+, $FG_ARGS}, client/cluster veth offloads $FG_OFFLOADS; routes ok after ${START_WAIT}s" ;;
	nginx) log "nginx: worker_processes auto ($(($(ip netns pids "$NS_GW" | wc -l) - 1)) workers), map \$http_stage, keepalive 128 per upstream, $NGINX_BUFFERING; veth offloads $PEER_OFFLOADS" ;;
	haproxy) log "haproxy: nbthread $(nproc), acl hdr(stage), http-reuse always, option http-keep-alive, tune.bufsize 65536, ${HAPROXY_SPLICE:-no splice}; veth offloads $PEER_OFFLOADS" ;;
	esac
	# warm-up: neighbours, upstream pools, caches
	timeout 10 ip netns exec "$NS_CL" wrk -t "$THREADS" -c "$CONC" -d 1s -H 'Host: example.com' \
		-s "$LUA" "http://$GW:80" -- /svc1/small >/dev/null 2>&1

	ensure_gateway "$peer" ka
	wrk_case "$peer" ka /svc1/small "$CONC" 2s
	ensure_gateway "$peer" close
	wrk_case "$peer" close /svc1/small "$CONC" 2s -H 'Connection: close'
	ensure_gateway "$peer" 1m
	wrk_case "$peer" 1m /svc1/1m "$CONC_1M" 10s
	ensure_gateway "$peer" 64m
	wrk_case "$peer" 64m /svc1/64m "$CONC_64M" 30s
	ensure_gateway "$peer" end
	if [ "$peer" = fleetgate ] && [ -n "$GW_PID" ] && [ -x "$BUILD/fleetgatectl" ]; then
		"$BUILD/fleetgatectl" -p "$PIN" get proxy 2>/dev/null | sed 's/^/info: fleetgate proxy: /'
	fi
	stop_gateway
	[ "$peer" = fleetgate ] && grep -iE "warn|error" "$TMP/agent.log" | head -5 | sed 's/^/info: agent: /'
}

log "wrk: -t $THREADS -d ${SECS}s --latency, half the requests with 'stage: gray'; small: $CONC connections, keep-alive and 'Connection: close'; 1 MiB: $CONC_1M; 64 MiB: $CONC_64M (keep-alive)"
for ROUND in $(seq "$ROUNDS"); do
	log "round $ROUND of $ROUNDS"
	for peer in $PEERS; do
		run_peer "$peer"
	done
done

log "figures: per gateway and case, the round with the most responses/s (of $ROUNDS)"
for peer in $PEERS; do
	log "$peer: rounds taken: keep-alive ${R[$peer,ka,round]}, new connections ${R[$peer,close,round]}, 1 MiB ${R[$peer,1m,round]}, 64 MiB ${R[$peer,64m,round]}"
	echo "bench: l7_rps_keepalive_$peer ${R[$peer,ka,rps]} req/s"
	echo "bench: l7_p50_keepalive_$peer ${R[$peer,ka,p50]} ms"
	echo "bench: l7_p99_keepalive_$peer ${R[$peer,ka,p99]} ms"
	echo "bench: l7_rps_newconn_$peer ${R[$peer,close,rps]} req/s"
	echo "bench: l7_p50_newconn_$peer ${R[$peer,close,p50]} ms"
	echo "bench: l7_p99_newconn_$peer ${R[$peer,close,p99]} ms"
	echo "bench: l7_tput_1m_$peer ${R[$peer,1m,mibs]} MiB/s"
	echo "bench: l7_tput_64m_$peer ${R[$peer,64m,mibs]} MiB/s"
	echo "bench: l7_cpu_per_10k_keepalive_$peer ${R[$peer,ka,cpu]} s"
	echo "bench: l7_cpu_per_10k_newconn_$peer ${R[$peer,close,cpu]} s"
	echo "bench: l7_gateway_deaths_$peer ${DIED[$peer]:-0} count"
done

# --- ratios vs nginx ------------------------------------------------------------
case " $PEERS " in *" nginx "*) ;; *) log "no nginx run: no ratios"; exit 0 ;; esac
log "ratios: PEER / nginx; requests/s, throughput: higher is better; p50, p99, CPU per 10k requests: lower is better"
for peer in $PEERS; do
	[ "$peer" = nginx ] && continue
	sfx=; [ "$peer" = fleetgate ] || sfx=_$peer
	echo "bench: l7_rps_keepalive$sfx ratio $(ratio "${R[$peer,ka,rps]}" "${R[nginx,ka,rps]}") vs nginx"
	echo "bench: l7_p50_keepalive$sfx ratio $(ratio "${R[$peer,ka,p50]}" "${R[nginx,ka,p50]}") vs nginx"
	echo "bench: l7_p99_keepalive$sfx ratio $(ratio "${R[$peer,ka,p99]}" "${R[nginx,ka,p99]}") vs nginx"
	echo "bench: l7_rps_newconn$sfx ratio $(ratio "${R[$peer,close,rps]}" "${R[nginx,close,rps]}") vs nginx"
	echo "bench: l7_p50_newconn$sfx ratio $(ratio "${R[$peer,close,p50]}" "${R[nginx,close,p50]}") vs nginx"
	echo "bench: l7_p99_newconn$sfx ratio $(ratio "${R[$peer,close,p99]}" "${R[nginx,close,p99]}") vs nginx"
	echo "bench: l7_tput_1m$sfx ratio $(ratio "${R[$peer,1m,mibs]}" "${R[nginx,1m,mibs]}") vs nginx"
	echo "bench: l7_tput_64m$sfx ratio $(ratio "${R[$peer,64m,mibs]}" "${R[nginx,64m,mibs]}") vs nginx"
	echo "bench: l7_cpu_per_10k_keepalive$sfx ratio $(ratio "${R[$peer,ka,cpu]}" "${R[nginx,ka,cpu]}") vs nginx"
	echo "bench: l7_cpu_per_10k_newconn$sfx ratio $(ratio "${R[$peer,close,cpu]}" "${R[nginx,close,cpu]}") vs nginx"
done
if [ -n "${R[fleetgate,ka,rps]:-}" ]; then
	t() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if (op == "ge" ? a >= b : a <= b) print "met"; else print "missed" }'; }
	log "target requests/s >= 1.2x nginx with p99 no worse: keep-alive $(ratio "${R[fleetgate,ka,rps]}" "${R[nginx,ka,rps]}")x, p99 $(ratio "${R[fleetgate,ka,p99]}" "${R[nginx,ka,p99]}")x: $(t "$(ratio "${R[fleetgate,ka,rps]}" "${R[nginx,ka,rps]}")" 1.2 ge)/$(t "$(ratio "${R[fleetgate,ka,p99]}" "${R[nginx,ka,p99]}")" 1.0 le); new connections $(ratio "${R[fleetgate,close,rps]}" "${R[nginx,close,rps]}")x, p99 $(ratio "${R[fleetgate,close,p99]}" "${R[nginx,close,p99]}")x: $(t "$(ratio "${R[fleetgate,close,rps]}" "${R[nginx,close,rps]}")" 1.2 ge)/$(t "$(ratio "${R[fleetgate,close,p99]}" "${R[nginx,close,p99]}")" 1.0 le)"
	log "target 64 MiB throughput >= 1.5x nginx: $(ratio "${R[fleetgate,64m,mibs]}" "${R[nginx,64m,mibs]}")x: $(t "$(ratio "${R[fleetgate,64m,mibs]}" "${R[nginx,64m,mibs]}")" 1.5 ge)"
fi
exit 0
}

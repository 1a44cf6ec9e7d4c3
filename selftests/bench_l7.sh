#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# fleetgate L7 benchmark. Prints `bench: NAME VALUE UNIT` and
# `bench: NAME ratio X.XX vs PEER` lines; `info:` lines explain them.
#
# Three HTTP/1.1 gateways in turn on the same address (10.77.0.1:80), the
# same two-cluster routes for each: requests with the header "stage: gray"
# go to cluster 2, all others to cluster 1.
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
# Fairness (issue 10):
#  - Every gateway's round runs in a fresh namespace set (client, gateway,
#    two clusters) with new veths, new cluster web servers: no TIME_WAIT
#    socket, conntrack state or offload change is carried from one peer to
#    the next (the TIME_WAIT counts before and after are logged).
#  - The same attachment for everyone. fleetgate runs as deployed:
#    --attach auto (BENCH_ATTACH), which on veths is TC (tcx), so every
#    veth keeps the kernel's default offloads. nginx and HAProxy get the
#    same program attached the same way on the same three gateway veths:
#    before they start, fleetgate-agent is started with the same options,
#    checked to route, then killed with SIGKILL; its links stay pinned, so
#    the program stays attached with the same maps (the :80 listener passes
#    to the stack) until the pins go with the namespace set. No separate
#    XDP variant runs by default; BENCH_ATTACH=xdp runs the whole bench
#    with native XDP for every peer alike (XDP on a veth turns TSO off on
#    its peer: the figures are then about that setup, not as deployed).
#  - The same worker count: fleetgate --workers, HAProxy nbthread =
#    BENCH_WORKERS (default the CPUs); nginx worker_processes auto (one per
#    CPU); the info lines show the counts in effect.
#  - BENCH_ROUNDS (3) rounds, interleaved (nginx, haproxy, fleetgate,
#    nginx, ...). Every figure is the median of its rounds; the worst round
#    is printed too (`..._worst`: lowest requests/s or MiB/s, highest
#    latency or CPU). Ratios are of medians.
#  - Failures are counted per peer and round: wrk's socket errors
#    (connect, read, write), timeouts and non-2xx/3xx answers; SYNs the
#    client had to send again (TcpExtTCPSynRetrans in the client); SYNs the
#    gateway or the clusters' web servers dropped (TcpExtListenDrops, of
#    which TcpExtListenOverflows: accept queue full).
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
# (BENCH_TIMEOUT, 720 s); about 6 minutes at the defaults.
#
# Knobs (environment): BENCH_SECS (seconds per measurement, 8),
# BENCH_ROUNDS (3), BENCH_THREADS (wrk threads, 2), BENCH_CONC (connections
# for small responses, 64), BENCH_CONC_1M (8), BENCH_CONC_64M (2),
# BENCH_PEERS (order, default "nginx haproxy fleetgate"), BENCH_WORKERS
# (the CPUs), BENCH_ATTACH (fleetgate-agent --attach for everyone: auto,
# tc or xdp; auto), BENCH_PEER_PROG (1: the program attached for nginx
# and HAProxy too; 0: for nobody but fleetgate, logged as unfair),
# BENCH_UP_WORKERS (nginx workers per cluster web server, 1),
# BENCH_OFFLOADS (client and cluster veth ends: "default", the kernel's,
# untouched; "off", checksum/TSO/GSO off as XDP_REDIRECT into a veth
# needs; "on"), BENCH_NGINX_BUFFERING and BENCH_HAPROXY_SPLICE (their
# directives for large responses), BENCH_FG_ARGS (more fleetgate-agent
# options), BENCH_PROFILE (cases, e.g. "close 64m", or 1 for those two:
# perf record -a during each such measurement, the machine's CPU by
# command and the top symbols printed; it perturbs the figures, for
# diagnosis only), BENCH_TIMEOUT, BENCH_KEEP_TMP=1 (keep the temp dir: configs,
# logs), BUILD (build).
#
# The whole script is one { } block: bash parses it before running it, so
# editing this file during a run cannot change the running one.
{
set -u

cd "$(dirname "$0")/.." || exit 1
ROOT=$(pwd)
# log, die, in_ns, ratio, the topology, the clusters' web servers,
# fg_config, the nginx gateway's config, wait_routes, stop_gateway,
# gw_ticks, exit_cleanup: shared with bench_tls.sh.
# shellcheck source=selftests/bench_lib.sh
. selftests/bench_lib.sh || { echo "bench: FAILED: selftests/bench_lib.sh missing" >&2; exit 1; }
BUILD=${BUILD:-build}
SECS=${BENCH_SECS:-8}
THREADS=${BENCH_THREADS:-2}
CONC=${BENCH_CONC:-64}
CONC_1M=${BENCH_CONC_1M:-8}
CONC_64M=${BENCH_CONC_64M:-2}
PEERS=${BENCH_PEERS:-nginx haproxy fleetgate}
WORKERS=${BENCH_WORKERS:-$(nproc)}
ATTACH=${BENCH_ATTACH:-auto}
PEER_PROG=${BENCH_PEER_PROG:-1}
UP_WORKERS=${BENCH_UP_WORKERS:-1}
OFFLOADS=${BENCH_OFFLOADS:-default}
FG_ARGS=${BENCH_FG_ARGS:-}
ROUNDS=${BENCH_ROUNDS:-3}
TIMEOUT=${BENCH_TIMEOUT:-720}
PROFILE=${BENCH_PROFILE:-}
[ "$PROFILE" = 1 ] && PROFILE="close 64m"
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
T_START=$(date +%s)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # for every gateway alike

cleanup() {
	trap - EXIT INT TERM
	exit_cleanup
	# Last: the watchdog holds none of our pipes, but it must not fire
	# after we are gone.
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (namespaces, XDP, TC)"
[ -x "$BUILD/fleetgate-agent" ] || die "$BUILD/fleetgate-agent missing: run make"
for t in nginx haproxy wrk curl ethtool nsenter ss; do
	command -v $t >/dev/null || die "$t missing (apt-get install nginx haproxy wrk curl ethtool util-linux iproute2)"
done
[ -r "$LUA" ] || die "$LUA missing"
[ -z "$PROFILE" ] || command -v perf >/dev/null || die "BENCH_PROFILE needs perf (apt-get install linux-perf)"
case $ATTACH in auto|tc|xdp) ;; *) die "BENCH_ATTACH: auto, tc or xdp" ;; esac
case $OFFLOADS in default|on|off) ;; *) die "BENCH_OFFLOADS: default, on or off" ;; esac
[ -x "$BUILD/fleetgatectl" ] || die "$BUILD/fleetgatectl missing: run make"
# Private copies: a rebuild during the run must not change the binaries.
cp "$BUILD/fleetgate-agent" "$BUILD/fleetgatectl" "$TMP/" || die "cannot copy the agent"
CTL=$TMP/fleetgatectl

# The watchdog bounds the run. Its sleep holds neither our stdout nor our
# stderr, and cleanup kills the subshell (which does), so
# `bench_l7.sh | tail` ends when the script does, not when the sleep would.
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$TIMEOUT" >/dev/null 2>&1 & s=$!
	wait $s && { echo "bench: watchdog: over ${TIMEOUT}s, stopping" >&2; kill -TERM $$; }
) &
WATCHDOG=$!

log "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start (the box is shared: other load skews every figure, which is why the median and the worst of several interleaved rounds are reported)"
log "versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(haproxy -v 2>/dev/null | head -1 | awk '{ print "haproxy " $3 }'), $(wrk -v 2>&1 | head -1 | awk '{ print "wrk " $2 }'), fleetgate $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"

# --- topology ---------------------------------------------------------------
# A fresh set per gateway and round: deleting a namespace deletes its
# sockets, TIME_WAIT included, its veths and whatever was attached to them,
# so each gateway starts from what the one before found.

# ns_up, links_up (bench_lib.sh): the namespaces, the three veth pairs.

# offloads default|off|on: the client and cluster ends of the veths.
# "default" leaves the kernel's (a new veth: checksum offload, TSO, GSO on,
# GRO off); "off" is what XDP_REDIRECT into a veth needs (demo/run.sh).
offloads() {
	local f
	case $1 in
	default) return 0 ;;
	off) f="tx off tso off gso off gro on" ;;
	*) f="tx on tso on gso on gro off" ;;
	esac
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

# veth_features NS IF: what is in effect (native XDP on the peer turns TSO
# off, which is why fleetgate attaches TC to veths).
veth_features() {
	in_ns "$1" ethtool -k "$2" 2>/dev/null | awk -F': ' '
		/^tx-checksumming:/ { o = o ", tx " $2 }
		/^tcp-segmentation-offload:/ { o = o ", tso " $2 }
		/^generic-segmentation-offload:/ { o = o ", gso " $2 }
		/^generic-receive-offload:/ { o = o ", gro " $2 }
		END { print substr(o, 3) }'
}

# attached: the program on the gateway's veths as the kernel reports it,
# through fleetgatectl status, which reads the pinned maps and links and so
# works as well after the attach-only agent is gone: "IFACE MODE STATE".
attached() {
	[ -d "$PIN" ] || { echo none; return; }
	"$CTL" -p "$PIN" status 2>/dev/null | awk -v p="$P" '
		/^  NAME / { t = 1; next }
		t && index($1, p) == 1 { o = o ", " $1 " " $3 " " $4; next }
		t && !/^  / { t = 0 }
		END { print (o == "" ? "none" : substr(o, 3)) }'
}

# verdicts: packets the program passed/sent/dropped so far ("pass N tx N
# drop N"): shows that each peer's traffic went through it.
verdicts() {
	[ -d "$PIN" ] || { echo "no program"; return; }
	"$CTL" -p "$PIN" status 2>/dev/null | awk '
		/^Verdicts:/ { v = 1; next }
		v && /^  [a-z]+ +[0-9]+ packets/ { o = o " " $1 " " $2; next }
		v && !/^  / { v = 0 }
		END { print substr(o, 2) }'
}

# tw_count NS: TIME_WAIT sockets in a namespace.
tw_count() { in_ns "$1" ss -Htan state time-wait 2>/dev/null | wc -l; }

# tw_all: TIME_WAIT in the client, gateway and cluster namespaces.
tw_all() {
	echo "client $(tw_count "$NS_CL"), gateway $(tw_count "$NS_GW"), clusters $(( $(tw_count "$NS_C1") + $(tw_count "$NS_C2") ))"
}

# --- the clusters' web servers --------------------------------------------------
# up_start, up_wait (bench_lib.sh): nginx on 10.77.N.2:8080.

# up_requests: requests served so far by cluster 1 and cluster 2.
up_requests() {
	local n
	for n in 1 2; do
		in_ns "$NS_GW" curl -s -m 2 "http://10.77.$n.2:8080/status" |
			awk 'NR == 3 { printf "%s ", $3 }'
	done
}

# topo_up: a fresh namespace set, links, offloads, both web servers up.
topo_up() {
	ns_up && links_up || return 1
	offloads "$OFFLOADS"
	up_start -q 1 1m 64m && up_start -q 2 1m 64m || return 1
	up_wait 1 && up_wait 2
}

# topo_down: every process in the set killed, the pins removed (which
# detaches a program whose agent is gone), the namespaces deleted.
topo_down() {
	# The web servers we started stop on TERM and are reaped here; only
	# what is left then is killed (so bash reports no "Killed" job).
	term_pids "${PIDS[@]}"
	kill_ns "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"
	rm -rf "$PIN" "/run/fleetgate/$P.sock"
	del_ns "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"
	PIDS=()
	true
}

head -c $((1024 * 1024)) /dev/zero | tr '\0' 'a' >"$TMP/1m" &&
head -c $((64 * 1024 * 1024)) /dev/zero | tr '\0' 'b' >"$TMP/64m" || die "cannot write the bodies"
log "clusters: nginx ($UP_WORKERS worker(s) each) on 10.77.1.2:8080 and 10.77.2.2:8080, static /svc1/small ($(printf 'This is env cluster1 ! Config file is\n' | wc -c) bytes), /svc1/1m, /svc1/64m, sendfile; restarted with every namespace set"

# --- the gateways ---------------------------------------------------------------
# Each start_* starts one gateway on $GW:80 in the gateway namespace and sets
# GW_PID (the process to stop; nginx's master).

# fg_config (bench_lib.sh): $TMP/fg, Ingresses web-demo-l7 and web-demo-l7-gray.

# fg_run: fleetgate-agent in the gateway namespace with the bench's options
# (nsenter, not ip netns exec: the agent must see /sys/fs/bpf).
fg_run() {
	nsenter --net="/run/netns/$NS_GW" "$TMP/fleetgate-agent" --config-dir "$TMP/fg" \
		--listen $GW:80 -i "$IF_GC" -i "$IF_G1" -i "$IF_G2" -p "$PIN" \
		--attach "$ATTACH" --workers "$WORKERS" $FG_ARGS \
		</dev/null >>"$TMP/agent.out" 2>>"$TMP/agent.log" &
	GW_PID=$!; PIDS+=("$GW_PID")
}

start_fleetgate() {
	[ -d "$TMP/fg" ] || fg_config l7 example.com || return 1
	fg_run
}

# attach_only: the peers' share of fleetgate's attachment. The agent is
# started as for fleetgate's own round and, once it routes, killed with
# SIGKILL: it cannot detach, its pinned links keep the program attached
# (with its maps: the :80 listener passes to the stack, as it does for
# fleetgate's proxy) until topo_down removes the pins. So nginx and HAProxy
# pay what the program costs per packet, and on veths whatever an XDP
# attachment costs the offloads, exactly as fleetgate does.
attach_only() {
	local pid
	[ -d "$TMP/fg" ] || fg_config l7 example.com || return 1
	fg_run
	wait_routes
	routes_ok || { tail -20 "$TMP/agent.log" >&2; return 1; }
	kill -KILL "$GW_PID"
	wait "$GW_PID" 2>/dev/null
	GW_PID=
	rm -f "/run/fleetgate/$P.sock"
	# Its listening sockets go with it; nothing else of it may stay.
	for pid in $(ip netns pids "$NS_GW"); do kill -KILL "$pid" 2>/dev/null; done
	true
}

start_nginx() {
	local d=$TMP/gw-nginx
	mkdir -p "$d/tmp" || return 1
	nginx_gw_conf "$d" "listen $GW:80 backlog=4096;
		server_name example.com;" >"$d/nginx.conf" || return 1
	ip netns exec "$NS_GW" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' </dev/null >/dev/null 2>&1 &
	GW_PID=$!; PIDS+=("$GW_PID")
}
# Large responses: buffered in memory (the default 8 small buffers, larger
# here), never spooled to a temp file on disk.
NGINX_BUFFERING=${BENCH_NGINX_BUFFERING:-proxy_buffers 16 64k; proxy_buffer_size 16k; proxy_busy_buffers_size 128k; proxy_max_temp_file_size 0;}

start_haproxy() {
	local d=$TMP/gw-haproxy
	mkdir -p "$d" || return 1
	cat >"$d/haproxy.cfg" <<EOF
global
	nbthread $WORKERS
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
	ip netns exec "$NS_GW" haproxy -db -f "$d/haproxy.cfg" </dev/null >>"$d/log" 2>&1 &
	GW_PID=$!; PIDS+=("$GW_PID")
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

# stop_gateway, gw_ticks (bench_lib.sh): the program stays attached
# (pinned) until topo_down; the peers' attach-only agent is gone before
# they start, so the gateway namespace's ticks are the gateway's.

# tcpext NS: "SynRetrans ListenDrops ListenOverflows" of a namespace, the
# counters nstat shows as TcpExtTCPSynRetrans etc. (read from the
# namespace's /proc/net/netstat, so no nstat history file is shared with
# anyone else's run).
tcpext() {
	in_ns "$1" awk '$1 == "TcpExt:" {
		if (!h) { for (i = 2; i <= NF; i++) n[i] = $i; h = 1; next }
		for (i = 2; i <= NF; i++) v[n[i]] = $i
	} END { printf "%d %d %d\n", v["TCPSynRetrans"], v["ListenDrops"], v["ListenOverflows"] }' /proc/net/netstat
}

# --- measurements ---------------------------------------------------------------
# V[PEER,CASE,FIGURE]: the figure's value in each round, space-separated.
# F_*[PEER]: failures summed over the rounds.
declare -A V F_ERR F_SYNRT F_GWDROP F_GWOVF F_UPDROP F_GWSYNRT

# wrk_case PEER CASE PATH CONNS TIMEOUT [WRK ARGS]: one wrk run, its
# figures appended to V[PEER,CASE,*], its failures to F_*[PEER].
wrk_case() {
	local peer=$1 cs=$2 path=$3 conns=$4 to=$5 out c0 c1 u0 u1 line k
	local cl0 cl1 gw0 gw1 a0 a1 b0 b1
	shift 5
	u0=$(up_requests)
	cl0=$(tcpext "$NS_CL"); gw0=$(tcpext "$NS_GW")
	a0=$(tcpext "$NS_C1"); b0=$(tcpext "$NS_C2")
	c0=$(gw_ticks)
	local perfpid=
	case " $PROFILE " in *" $cs "*)
		perf record -q -F 499 -a -o "$TMP/perf.$peer.$cs.$ROUND" -- sleep "$SECS" </dev/null >/dev/null 2>&1 &
		perfpid=$!
		# Whose process is whose, taken while wrk runs: the profile is of
		# the whole machine and other tenants run nginx and agents too.
		( sleep 1; roles ) >"$TMP/roles.$peer.$cs.$ROUND" 2>/dev/null & ;;
	esac
	out=$(timeout -k 3 $((SECS + 20)) ip netns exec "$NS_CL" wrk -t "$THREADS" -c "$conns" -d "${SECS}s" \
		--latency --timeout "$to" -H 'Host: example.com' "$@" -s "$LUA" "http://$GW:80" -- "$path" 2>&1)
	c1=$(gw_ticks)
	cl1=$(tcpext "$NS_CL"); gw1=$(tcpext "$NS_GW")
	a1=$(tcpext "$NS_C1"); b1=$(tcpext "$NS_C2")
	u1=$(up_requests)
	line=$(echo "$out" | grep '^l7: ')
	if [ -z "$line" ]; then
		log "$peer $cs: wrk failed: $(echo "$out" | tail -3 | tr '\n' ' ')"
		line="l7: requests 0 bytes 0 duration_us 1 p50_us 0 p99_us 0 errors 0 0 0 0 0"
	fi
	set -- $line
	local req=$3 bytes=$5 dur=$7 p50=$9 p99=${11}
	local econn=${13} eread=${14} ewrite=${15} estat=${16} eto=${17}
	local t=$((c1 - c0))
	[ $t -lt 0 ] && t=0 # the gateway died during the run: its ticks are gone
	local -A F
	F[rps]=$(awk -v r="$req" -v d="$dur" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
	F[mibs]=$(awk -v b="$bytes" -v d="$dur" 'BEGIN { printf "%.1f", b / 1048576 / (d / 1e6) }')
	F[p50]=$(awk -v v="$p50" 'BEGIN { printf "%.3f", v / 1000 }')
	F[p99]=$(awk -v v="$p99" 'BEGIN { printf "%.3f", v / 1000 }')
	F[cpu]=$(awk -v t=$t -v hz="$HZ" -v r="$req" \
		'BEGIN { if (r > 0) printf "%.3f", t / hz / r * 10000; else print "0" }')
	F[cores]=$(awk -v t=$t -v hz="$HZ" -v d="$dur" 'BEGIN { printf "%.2f", t / hz / (d / 1e6) }')
	for k in "${!F[@]}"; do V[$peer,$cs,$k]="${V[$peer,$cs,$k]:-}${F[$k]} "; done

	# Failures: wrk's, then the kernel's SYN counters of every namespace.
	local err=$((econn + eread + ewrite + estat + eto))
	local -a C0 C1 G0 G1 X0 X1 Y0 Y1
	read -r -a C0 <<<"$cl0"; read -r -a C1 <<<"$cl1"
	read -r -a G0 <<<"$gw0"; read -r -a G1 <<<"$gw1"
	read -r -a X0 <<<"$a0"; read -r -a X1 <<<"$a1"
	read -r -a Y0 <<<"$b0"; read -r -a Y1 <<<"$b1"
	local synrt=$((C1[0] - C0[0])) gwdrop=$((G1[1] - G0[1])) gwovf=$((G1[2] - G0[2]))
	local gwsynrt=$((G1[0] - G0[0])) updrop=$((X1[1] - X0[1] + Y1[1] - Y0[1]))
	F_ERR[$peer]=$(( ${F_ERR[$peer]:-0} + err ))
	F_SYNRT[$peer]=$(( ${F_SYNRT[$peer]:-0} + synrt ))
	F_GWDROP[$peer]=$(( ${F_GWDROP[$peer]:-0} + gwdrop ))
	F_GWOVF[$peer]=$(( ${F_GWOVF[$peer]:-0} + gwovf ))
	F_GWSYNRT[$peer]=$(( ${F_GWSYNRT[$peer]:-0} + gwsynrt ))
	F_UPDROP[$peer]=$(( ${F_UPDROP[$peer]:-0} + updrop ))

	local ra0 rb0 ra1 rb1
	read -r ra0 rb0 <<<"$u0"; read -r ra1 rb1 <<<"$u1"
	log "$peer $cs (round $ROUND): $req responses in $(awk -v d="$dur" 'BEGIN { printf "%.2f", d / 1e6 }')s ($conns connections, $THREADS wrk threads), $bytes bytes; upstream requests cluster1 $((${ra1:-0} - ${ra0:-0})) cluster2 $((${rb1:-0} - ${rb0:-0})); gateway CPU $(awk -v t=$t -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')s = ${F[cores]} cores; ${F[rps]} req/s, p50 ${F[p50]} ms, p99 ${F[p99]} ms, ${F[mibs]} MiB/s"
	log "$peer $cs (round $ROUND): failures: wrk connect $econn read $eread write $ewrite timeout $eto non-2xx/3xx $estat; client SYN retransmits $synrt; gateway SYNs dropped $gwdrop (accept queue full $gwovf), gateway SYN retransmits toward the clusters $gwsynrt; clusters' SYNs dropped $updrop"
	[ $err -gt 0 ] && log "$peer $cs: WARNING: $err failed requests"
	[ -n "$perfpid" ] && wait "$perfpid" && profile_report "$peer" "$cs"
	true
}

# roles: "PID ROLE" for every process in our namespaces.
roles() {
	local pid
	for pid in $(ip netns pids "$NS_GW"); do echo "$pid gateway"; done
	for pid in $(ip netns pids "$NS_CL"); do echo "$pid client(wrk)"; done
	for pid in $(ip netns pids "$NS_C1") $(ip netns pids "$NS_C2"); do echo "$pid web-servers"; done
}

# profile_report PEER CASE: where the whole machine's CPU went during the
# measurement (perf record -a at 499 Hz on every CPU): the share of the
# samples in the gateway's processes, wrk's, the web servers', other
# tenants' (the busiest of them by name) and idle; then the top symbols
# of the gateway's own processes (softirq work shows in whichever process
# the CPU was running).
profile_report() {
	local f=$TMP/perf.$1.$2.$ROUND r=$TMP/roles.$1.$2.$ROUND gw
	[ -s "$f" ] || { log "$1 $2: no profile"; return; }
	log "$1 $2 (round $ROUND) profile, all CPUs: $(perf script -i "$f" -F comm,pid 2>/dev/null | awk -v roles="$r" '
		BEGIN { while ((getline l < roles) > 0) { split(l, a, " "); role[a[1]] = a[2] } }
		{ pid = $NF; n++
		  k = pid == 0 ? "idle" : (pid in role) ? role[pid] : "other"
		  c[k]++; if (k == "other") { sub(/[ \t]+$/, ""); sub(/[ \t]+[0-9]+$/, ""); sub(/^ +/, ""); o[$0]++ } }
		END {
			if (!n) exit
			split("gateway client(wrk) web-servers other idle", ks, " ")
			for (i = 1; i <= 5; i++) printf "%s %.1f%%, ", ks[i], 100 * c[ks[i]] / n
			printf "samples %d; other tenants'"'"' busiest:", n
			for (m = 0; m < 4; m++) { b = ""; for (x in o) if (b == "" || o[x] > o[b]) b = x
				if (b == "") break; printf " %s %.1f%%", b, 100 * o[b] / n; delete o[b] }
		}')"
	gw=$(awk '$2 == "gateway" { printf "%s%s", s, $1; s = "," }' "$r")
	[ -n "$gw" ] || return
	perf report -i "$f" --stdio --no-children --pid="$gw" --percentage relative --sort sym \
		--percent-limit 2 2>/dev/null | awk '/^ +[0-9.]+%/ { print $1, $3 }' | head -10 |
		sed "s/^/info: $1 $2 profile, the gateway's top symbols: /"
}

# ensure_gateway PEER CASE: a gateway that died during the previous
# measurement is reported (exit status; 141 = SIGPIPE) and started again
# (unless CASE is "end"), so that the remaining figures are still taken.
# The attached program stays (pinned), so a peer restarts on it too.
ensure_gateway() {
	local rc
	kill -0 "$GW_PID" 2>/dev/null && return 0
	wait "$GW_PID" 2>/dev/null; rc=$?
	log "$1: WARNING: the gateway (pid $GW_PID) died after the measurement before \"$2\", exit status $rc$( [ $rc -gt 128 ] && echo " (signal $((rc - 128)): $(kill -l $((rc - 128)) 2>/dev/null))"); restarting it"
	[ "$1" = fleetgate ] && tail -5 "$TMP/agent.log" | sed 's/^/info: agent: /'
	DIED[$1]=$(( ${DIED[$1]:-0} + 1 ))
	GW_PID=
	stop_gateway
	[ "$2" = end ] || start_gateway "$1"
}
declare -A DIED

# start_gateway PEER: starts it and waits until it routes (up to 15 s).
START_WAIT=
start_gateway() {
	local peer=$1
	case $peer in
	fleetgate) start_fleetgate || die "cannot start fleetgate" ;;
	nginx) start_nginx || die "cannot start nginx" ;;
	haproxy) start_haproxy || die "cannot start haproxy" ;;
	*) die "unknown peer $peer (BENCH_PEERS: nginx haproxy fleetgate)" ;;
	esac
	wait_routes
	if ! routes_ok; then
		[ "$peer" = fleetgate ] && tail -20 "$TMP/agent.log" >&2
		[ "$peer" = haproxy ] && tail -20 "$TMP/gw-haproxy/log" >&2
		[ "$peer" = nginx ] && tail -20 "$TMP/gw-nginx/error.log" >&2
		die "$peer does not route: plain -> cluster1, stage: gray -> cluster2"
	fi
}

# run_peer PEER: one round of one gateway, in a namespace set of its own.
run_peer() {
	local peer=$1 n
	case $peer in fleetgate|nginx|haproxy) ;; *) die "unknown peer $peer (BENCH_PEERS: nginx haproxy fleetgate)" ;; esac
	topo_up || die "cannot build the topology (namespaces, veths, cluster web servers)"
	log "$peer (round $ROUND): fresh namespaces, veths and cluster web servers; TIME_WAIT sockets before it starts: $(tw_all) (any in the gateway are from this script's readiness checks of the web servers)"
	if [ "$peer" != fleetgate ] && [ "$PEER_PROG" = 1 ]; then
		attach_only || die "cannot attach fleetgate's program for $peer"
	fi
	start_gateway "$peer"
	log "$peer (round $ROUND): programs on the gateway veths: $(attached); offloads in effect: client end $(veth_features "$NS_CL" "$IF_CE"); cluster 1 end $(veth_features "$NS_C1" "$IF_1E")"
	case $peer in
	fleetgate) log "fleetgate: fleetgate-agent --config-dir --listen $GW:80 --attach $ATTACH --workers $WORKERS on the three gateway veths${FG_ARGS:+, $FG_ARGS}; $(ls -d /proc/"$GW_PID"/task/* 2>/dev/null | wc -l) threads; routes ok after ${START_WAIT}s" ;;
	nginx) log "nginx: worker_processes auto ($(($(ip netns pids "$NS_GW" | wc -l) - 1)) workers), map \$http_stage, keepalive 128 per upstream, $NGINX_BUFFERING" ;;
	haproxy) log "haproxy: nbthread $WORKERS, acl hdr(stage), http-reuse always, option http-keep-alive, tune.bufsize 65536, ${HAPROXY_SPLICE:-no splice}" ;;
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
	log "$peer (round $ROUND): the program's verdicts over the round: $(verdicts)"
	if [ "$peer" = fleetgate ] && [ -n "$GW_PID" ] && [ "$ROUND" = "$ROUNDS" ]; then
		"$CTL" -p "$PIN" get proxy 2>/dev/null | grep -iE "error|fail|drop|reject|timeout" |
			sed 's/^/info: fleetgate proxy: /'
	fi
	stop_gateway
	[ "$peer" = fleetgate ] && [ "$ROUND" = "$ROUNDS" ] &&
		grep -iE "warn|error" "$TMP/agent.log" | sort | uniq -c | sort -rn | head -5 | sed 's/^/info: agent log (all rounds): /'
	log "$peer (round $ROUND): TIME_WAIT left behind: $(tw_all); removed with the namespace set"
	topo_down
}

[ "$PEER_PROG" = 1 ] ||
	log "WARNING: BENCH_PEER_PROG=0: nginx and HAProxy run without fleetgate's program, fleetgate with it (--attach $ATTACH): not the same attachment"
log "attachment: fleetgate-agent --attach $ATTACH on the three gateway veths, for fleetgate and$([ "$PEER_PROG" = 1 ] || echo " NOT") for the peers; client and cluster veth offloads: $OFFLOADS"
log "workers: fleetgate --workers $WORKERS, nginx worker_processes auto (= $(nproc) CPUs), haproxy nbthread $WORKERS"
log "wrk: -t $THREADS -d ${SECS}s --latency, half the requests with 'stage: gray'; small: $CONC connections, keep-alive and 'Connection: close'; 1 MiB: $CONC_1M; 64 MiB: $CONC_64M (keep-alive)"
for ROUND in $(seq "$ROUNDS"); do
	log "round $ROUND of $ROUNDS (load average $(cut -d' ' -f1-3 /proc/loadavg))"
	for peer in $PEERS; do
		run_peer "$peer"
	done
done

# --- figures --------------------------------------------------------------------
# med PEER CASE FIG: the median of the rounds; worst PEER CASE FIG: the
# lowest for rates (rps, mibs), the highest for latency and CPU.
med() {
	echo "${V[$1,$2,$3]:-0}" | tr ' ' '\n' | grep . | sort -g |
		awk -v f="$3" '{ a[NR] = $1 } END {
			m = NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
			printf (f == "rps" ? "%.0f" : f == "mibs" ? "%.1f" : "%.3f"), m }'
}
worst() {
	echo "${V[$1,$2,$3]:-0}" | tr ' ' '\n' | grep . | sort -g |
		awk -v f="$3" '{ a[NR] = $1 } END {
			w = (f == "rps" || f == "mibs") ? a[1] : a[NR]
			printf (f == "rps" ? "%.0f" : f == "mibs" ? "%.1f" : "%.3f"), w }'
}

log "figures: per gateway and case the median of $ROUNDS rounds; NAME_worst: its worst round (lowest req/s or MiB/s, highest latency or CPU); p50/p99 from wrk's latency histogram; CPU per 10k: utime+stime of the gateway's processes over the run / requests x 10000"
# emit NAME CASE FIG UNIT PEER: the median line and the worst line.
emit() {
	echo "bench: $1_$5 $(med "$5" "$2" "$3") $4"
	echo "bench: $1_$5_worst $(worst "$5" "$2" "$3") $4"
}
for peer in $PEERS; do
	log "$peer: rounds: keep-alive req/s [${V[$peer,ka,rps]% }], new connections req/s [${V[$peer,close,rps]% }], 1 MiB MiB/s [${V[$peer,1m,mibs]% }], 64 MiB MiB/s [${V[$peer,64m,mibs]% }], keep-alive p99 ms [${V[$peer,ka,p99]% }]"
	emit l7_rps_keepalive ka rps req/s "$peer"
	emit l7_p50_keepalive ka p50 ms "$peer"
	emit l7_p99_keepalive ka p99 ms "$peer"
	emit l7_rps_newconn close rps req/s "$peer"
	emit l7_p50_newconn close p50 ms "$peer"
	emit l7_p99_newconn close p99 ms "$peer"
	emit l7_tput_1m 1m mibs MiB/s "$peer"
	emit l7_tput_64m 64m mibs MiB/s "$peer"
	emit l7_cpu_per_10k_keepalive ka cpu s "$peer"
	emit l7_cpu_per_10k_newconn close cpu s "$peer"
	echo "bench: l7_gateway_deaths_$peer ${DIED[$peer]:-0} count"
	log "$peer: failures over all $ROUNDS rounds and cases: failed requests (wrk socket errors, timeouts, non-2xx/3xx) ${F_ERR[$peer]:-0}; client SYN retransmits ${F_SYNRT[$peer]:-0}; SYNs dropped by the gateway ${F_GWDROP[$peer]:-0} (accept queue full ${F_GWOVF[$peer]:-0}) and by the clusters' web servers ${F_UPDROP[$peer]:-0}; the gateway's SYN retransmits toward the clusters ${F_GWSYNRT[$peer]:-0}"
	echo "bench: l7_failed_requests_$peer ${F_ERR[$peer]:-0} count"
	echo "bench: l7_syn_retrans_client_$peer ${F_SYNRT[$peer]:-0} count"
	echo "bench: l7_syn_drops_gateway_$peer ${F_GWDROP[$peer]:-0} count"
	echo "bench: l7_syn_drops_clusters_$peer ${F_UPDROP[$peer]:-0} count"
done

# --- ratios vs nginx ------------------------------------------------------------
case " $PEERS " in *" nginx "*) ;; *) log "no nginx run: no ratios"; exit 0 ;; esac
log "ratios: PEER / nginx of the medians; requests/s, throughput: higher is better; p50, p99, CPU per 10k requests: lower is better"
# rt PEER CASE FIG: the ratio of medians, PEER / nginx.
rt() { ratio "$(med "$1" "$2" "$3")" "$(med nginx "$2" "$3")"; }
for peer in $PEERS; do
	[ "$peer" = nginx ] && continue
	sfx=; [ "$peer" = fleetgate ] || sfx=_$peer
	echo "bench: l7_rps_keepalive$sfx ratio $(rt "$peer" ka rps) vs nginx"
	echo "bench: l7_p50_keepalive$sfx ratio $(rt "$peer" ka p50) vs nginx"
	echo "bench: l7_p99_keepalive$sfx ratio $(rt "$peer" ka p99) vs nginx"
	echo "bench: l7_rps_newconn$sfx ratio $(rt "$peer" close rps) vs nginx"
	echo "bench: l7_p50_newconn$sfx ratio $(rt "$peer" close p50) vs nginx"
	echo "bench: l7_p99_newconn$sfx ratio $(rt "$peer" close p99) vs nginx"
	echo "bench: l7_tput_1m$sfx ratio $(rt "$peer" 1m mibs) vs nginx"
	echo "bench: l7_tput_64m$sfx ratio $(rt "$peer" 64m mibs) vs nginx"
	echo "bench: l7_cpu_per_10k_keepalive$sfx ratio $(rt "$peer" ka cpu) vs nginx"
	echo "bench: l7_cpu_per_10k_newconn$sfx ratio $(rt "$peer" close cpu) vs nginx"
done
if [ -n "${V[fleetgate,ka,rps]:-}" ]; then
	# tgt RATIO LIMIT ge|le: met or MISSED.
	tgt() { awk -v a="$1" -v b="$2" -v op="$3" 'BEGIN { if (op == "ge" ? a >= b : a <= b) print "met"; else print "MISSED" }'; }
	r_ka=$(rt fleetgate ka rps) r_p99=$(rt fleetgate ka p99) r_nc=$(rt fleetgate close rps)
	r_64=$(rt fleetgate 64m mibs) r_cpu=$(rt fleetgate ka cpu)
	log "issue 10 targets (ratios of medians vs nginx): keep-alive req/s >= 1.2: ${r_ka} $(tgt "$r_ka" 1.2 ge); keep-alive p99 <= 1.0: ${r_p99} $(tgt "$r_p99" 1.0 le); new connections req/s >= 1.0: ${r_nc} $(tgt "$r_nc" 1.0 ge); 64 MiB >= 1.3: ${r_64} $(tgt "$r_64" 1.3 ge); CPU per request (keep-alive) <= 0.9: ${r_cpu} $(tgt "$r_cpu" 0.9 le)"
fi
log "total $(( $(date +%s) - T_START )) s, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit 0
}

#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# fleetgate benchmark (`make bench`). Prints `bench: NAME VALUE UNIT` and
# `bench: NAME ratio X.XX vs PEER` lines; `info:` lines explain them.
#
#  1. XDP program cost per packet through BPF_PROG_TEST_RUN
#     (build/bench/fg-bench-xdp, in its own private network namespace).
#  2. Packets/s and connections/s through a gateway namespace, fleetgate's
#     XDP data plane vs the kernel's own L4 balancer on the same topology:
#     IPVS (NAT mode, wrr 1:1) when the kernel has it, else nftables DNAT
#     (numgen round robin), which is what is left of kernel L4 balancing
#     without CONFIG_IP_VS.
#
#       client 10.77.0.2 --- gc 10.77.0.1 [gw] g1 10.77.1.1 --- c1 10.77.1.2
#                                              g2 10.77.2.1 --- c2 10.77.2.2
#       VIP 10.99.0.100: tcp/80 (connections), udp/9000 (packets)
#
# Everything it creates (namespaces, veths, pins, processes, IPVS/nft rules
# inside its own namespace) is removed on exit, Ctrl-C included; traffic
# never leaves its namespaces. Bounded by a watchdog (BENCH_TIMEOUT, 280 s).
#
# Knobs (environment): BENCH_PKTS (test runs per XDP case, 1000000),
# BENCH_SECS (seconds per throughput measurement, 5), BENCH_CONC
# (concurrent connections, 64), BENCH_PEER (ipvs|nft, default: ipvs if
# the kernel has it, else nft), BUILD (build).
set -u

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
B=$BUILD/bench
PKTS=${BENCH_PKTS:-1000000}
SECS=${BENCH_SECS:-5}
CONC=${BENCH_CONC:-64}
GEN_CPUS=${BENCH_GEN_CPUS:-$(nproc)}
TIMEOUT=${BENCH_TIMEOUT:-280}

P=fgb$$
P=${P:0:11}             # interface names below add <= 2 chars (<= 15)
NS_CL=${P}cl NS_GW=${P}gw NS_C1=${P}c1 NS_C2=${P}c2
IF_CE=${P}ce IF_GC=${P}gc IF_G1=${P}g1 IF_1E=${P}1e IF_G2=${P}g2 IF_2E=${P}2e
PIN=/sys/fs/bpf/$P
VIP=10.99.0.100
TMP=$(mktemp -d /tmp/fleetgate-bench.XXXXXX)
PIDS=()
WATCHDOG=

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
	for ns in "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"; do
		if [ -e "/run/netns/$ns" ]; then
			[ "$ns" = "$NS_GW" ] && ip netns exec "$ns" ipvsadm -C >/dev/null 2>&1
			ip netns del "$ns" 2>/dev/null
		fi
	done
	rm -rf "$PIN" "$TMP"
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (namespaces, XDP)"
for t in "$B/fg-bench-xdp" "$B/fg-bench-config" "$B/fg-bench-srv" "$B/fg-bench-conn" \
	 "$B/fg-bench-sink" "$BUILD/fleetgate-agent"; do
	[ -x "$t" ] || die "$t missing: run make"
done
command -v trafgen >/dev/null || die "trafgen missing (apt-get install netsniff-ng)"

# The watchdog: the whole run stays bounded even if something hangs.
( sleep "$TIMEOUT"; echo "bench: watchdog: over ${TIMEOUT}s, stopping" >&2; kill -TERM $$ ) &
WATCHDOG=$!

# Starts a background process in a namespace, remembering its PID.
bg_ns() { local ns=$1; shift; ip netns exec "$ns" "$@" & PIDS+=($!); }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
stat_of() { in_ns "$1" cat "/sys/class/net/$2/statistics/$3"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0.00" }'; }

log "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start (other load skews every figure)"

# --- 1. BPF_PROG_TEST_RUN ------------------------------------------------
log "xdp program cost: BPF_PROG_TEST_RUN, $PKTS packets per case"
if [ "${BENCH_SKIP_XDP:-0}" = 0 ]; then
	timeout 150 "$B/fg-bench-xdp" -n "$PKTS" || die "fg-bench-xdp failed"
fi

# --- 2. topology ------------------------------------------------------------
topo_up() {
	local ns
	for ns in "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"; do
		ip netns add "$ns" || return 1
		in_ns "$ns" ip link set lo up || return 1
	done
	ip link add "$IF_CE" netns "$NS_CL" type veth peer name "$IF_GC" netns "$NS_GW" &&
	ip link add "$IF_1E" netns "$NS_C1" type veth peer name "$IF_G1" netns "$NS_GW" &&
	ip link add "$IF_2E" netns "$NS_C2" type veth peer name "$IF_G2" netns "$NS_GW" || return 1

	in_ns "$NS_GW" sh -e -c "
		ip addr add 10.77.0.1/24 dev $IF_GC
		ip addr add 10.77.1.1/24 dev $IF_G1
		ip addr add 10.77.2.1/24 dev $IF_G2
		for i in $IF_GC $IF_G1 $IF_G2; do ip link set \$i up; done
		sysctl -qw net.ipv4.ip_forward=1" || return 1
	in_ns "$NS_CL" sh -e -c "
		ip addr add 10.77.0.2/24 dev $IF_CE; ip link set $IF_CE up
		ip route add default via 10.77.0.1
		sysctl -qw net.ipv4.ip_local_port_range='1024 65535'" || return 1
	in_ns "$NS_C1" sh -e -c "
		ip addr add 10.77.1.2/24 dev $IF_1E; ip link set $IF_1E up
		ip route add default via 10.77.1.1" || return 1
	in_ns "$NS_C2" sh -e -c "
		ip addr add 10.77.2.2/24 dev $IF_2E; ip link set $IF_2E up
		ip route add default via 10.77.2.1" || return 1
	# XDP_REDIRECT into a veth needs NAPI (XDP or GRO) on the peer;
	# redirected TCP needs checksum offload, TSO and GSO off.
	in_ns "$NS_CL" ethtool -K "$IF_CE" tx off tso off gso off gro on >/dev/null 2>&1 &&
	in_ns "$NS_C1" ethtool -K "$IF_1E" tx off tso off gso off gro on >/dev/null 2>&1 &&
	in_ns "$NS_C2" ethtool -K "$IF_2E" tx off tso off gso off gro on >/dev/null 2>&1 || return 1
}
topo_up || die "cannot build the topology"

bg_ns "$NS_C1" "$B/fg-bench-srv" 80
bg_ns "$NS_C2" "$B/fg-bench-srv" 80

GC_MAC=$(in_ns "$NS_GW" cat "/sys/class/net/$IF_GC/address")
CE_MAC=$(in_ns "$NS_CL" cat "/sys/class/net/$IF_CE/address")
# 256 UDP flows (source ports), so a balancer spreads them over both
# clusters and, after the first packets, forwards established flows.
cat >"$TMP/udp.trafgen" <<EOF
{
  eth(da=$GC_MAC, sa=$CE_MAC, type=0x0800),
  ipv4(saddr=10.77.0.2, daddr=$VIP, ttl=64),
  udp(sp=dinc(10000, 10255, 1), dp=9000, csum=0),
  fill(0x42, 18)
}
EOF

warmup() {
	in_ns "$NS_CL" ping -c 1 -W 1 10.77.0.1 >/dev/null 2>&1
	in_ns "$NS_GW" ping -c 1 -W 1 10.77.1.2 >/dev/null 2>&1
	in_ns "$NS_GW" ping -c 1 -W 1 10.77.2.2 >/dev/null 2>&1
	timeout 10 ip netns exec "$NS_CL" "$B/fg-bench-conn" -t 1 -c 8 $VIP 80 >/dev/null
}

# conn_test NAME: connections/s from the client to VIP:80.
CONN=
conn_test() {
	local out
	out=$(timeout $((SECS + 15)) ip netns exec "$NS_CL" "$B/fg-bench-conn" -t "$SECS" -c "$CONC" $VIP 80)
	log "$1 connections: $out (concurrency $CONC)"
	CONN=$(echo "$out" | awk '{ print $2 }')
	[ -n "$CONN" ] || CONN=0
	echo "bench: l4_conn_per_s_$1 $CONN conn/s"
}

# pps_test NAME: UDP packets/s from trafgen in the client to VIP:9000,
# counted by XDP_DROP sinks on the clusters' veths.
PPS=
pps_test() {
	local sink1 sink2 tg c0 c1 tx0 tx1 dr0 dr1 d off
	ip netns exec "$NS_C1" "$B/fg-bench-sink" "$IF_1E" >"$TMP/sink1" 2>&1 & sink1=$!; PIDS+=($sink1)
	ip netns exec "$NS_C2" "$B/fg-bench-sink" "$IF_2E" >"$TMP/sink2" 2>&1 & sink2=$!; PIDS+=($sink2)
	for _ in $(seq 50); do
		grep -q ready "$TMP/sink1" 2>/dev/null && grep -q ready "$TMP/sink2" 2>/dev/null && break
		sleep 0.1
	done
	grep -q ready "$TMP/sink1" && grep -q ready "$TMP/sink2" || { log "sinks failed"; PPS=0; return; }
	# timeout(1) runs trafgen in its own process group and signals the
	# whole group (trafgen forks one sender per CPU). TERM, not INT:
	# background jobs of a script start with SIGINT ignored.
	timeout -s TERM -k 3 $((SECS + 3)) ip netns exec "$NS_CL" trafgen --dev "$IF_CE" \
		--conf "$TMP/udp.trafgen" --cpus "$GEN_CPUS" >"$TMP/trafgen.$1" 2>&1 &
	tg=$!; PIDS+=($tg)
	sleep 1 # ramp up; flows set up
	sink_count() { kill -USR1 "$1"; sleep 0.1; awk '/^count/ { c = $2 } END { print c + 0 }' "$2"; }
	tx0=$(stat_of "$NS_CL" "$IF_CE" tx_packets); dr0=$(stat_of "$NS_CL" "$IF_CE" tx_dropped)
	c0=$(( $(sink_count $sink1 "$TMP/sink1") + $(sink_count $sink2 "$TMP/sink2") ))
	local t0=$(date +%s.%N)
	sleep "$SECS"
	tx1=$(stat_of "$NS_CL" "$IF_CE" tx_packets); dr1=$(stat_of "$NS_CL" "$IF_CE" tx_dropped)
	c1=$(( $(sink_count $sink1 "$TMP/sink1") + $(sink_count $sink2 "$TMP/sink2") ))
	local t1=$(date +%s.%N)
	wait $tg 2>/dev/null
	# No sender may outlive its measurement (it would load the next one):
	# whatever still runs in the client namespace was started by us.
	for p in $(ip netns pids "$NS_CL"); do kill -KILL "$p" 2>/dev/null; done
	kill -TERM $sink1 $sink2 2>/dev/null; wait $sink1 $sink2 2>/dev/null
	d=$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a - 0.2 }')
	off=$(awk -v a=$((tx1 - tx0 + dr1 - dr0)) -v d="$d" 'BEGIN { printf "%.0f", a / d }')
	PPS=$(awk -v a=$((c1 - c0)) -v d="$d" 'BEGIN { printf "%.0f", a / d }')
	echo "bench: l4_pps_$1 $PPS pkt/s"
	echo "bench: l4_pps_offered_$1 $off pkt/s"
	echo "bench: l4_pps_delivered_fraction_$1 $(ratio "$PPS" "$off") delivered/offered"
	log "$1 pps: generator trafgen ($GEN_CPUS CPUs) offered $off pkt/s ($((dr1 - dr0)) dropped at the client veth), $PPS pkt/s reached the cluster veths over ${d}s"
}

# --- 3. fleetgate -----------------------------------------------------------
log "fleetgate: agent on $IF_GC $IF_G1 $IF_G2, pins $PIN"
nsenter --net="/run/netns/$NS_GW" "$BUILD/fleetgate-agent" -i "$IF_GC" -i "$IF_G1" -i "$IF_G2" \
	-p "$PIN" 2>"$TMP/agent.log" &
AGENT=$!; PIDS+=($AGENT)
for _ in $(seq 150); do
	grep -q ready "$TMP/agent.log" && break
	kill -0 $AGENT 2>/dev/null || break
	sleep 0.1
done
grep -q ready "$TMP/agent.log" || { cat "$TMP/agent.log" >&2; die "agent did not get ready"; }
"$B/fg-bench-config" "$PIN" 1 $VIP 80 tcp 10.77.1.2:80 10.77.2.2:80 || die "config tcp"
"$B/fg-bench-config" "$PIN" 2 $VIP 9000 udp 10.77.1.2:9000 10.77.2.2:9000 || die "config udp"
warmup
verdicts() {
	[ -x "$BUILD/fleetgatectl" ] &&
		"$BUILD/fleetgatectl" -p "$PIN" counters 2>/dev/null | sed "s/^/info: $1: /"
}
conn_test fleetgate; FG_CONN=$CONN
verdicts "verdicts after the connection test"
pps_test fleetgate; FG_PPS=$PPS
verdicts "verdicts after the packet test (cumulative)"
kill -TERM $AGENT; wait $AGENT 2>/dev/null
grep -E "WARN|warn|error" "$TMP/agent.log" | head -5 | sed 's/^/info: agent: /'

# --- 4. the kernel's balancer --------------------------------------------------
PEER=${BENCH_PEER:-}
if [ -z "$PEER" ]; then
	if in_ns "$NS_GW" ipvsadm -Ln >/dev/null 2>&1; then PEER=ipvs; else PEER=nft; fi
fi
case $PEER in
ipvs)
	in_ns "$NS_GW" sh -e -c "
		ip addr add $VIP/32 dev lo
		ipvsadm -A -t $VIP:80 -s wrr
		ipvsadm -a -t $VIP:80 -r 10.77.1.2:80 -m -w 1
		ipvsadm -a -t $VIP:80 -r 10.77.2.2:80 -m -w 1
		ipvsadm -A -u $VIP:9000 -s wrr
		ipvsadm -a -u $VIP:9000 -r 10.77.1.2:9000 -m -w 1
		ipvsadm -a -u $VIP:9000 -r 10.77.2.2:9000 -m -w 1" || die "ipvsadm setup"
	PEER_NAME=ipvs
	log "peer: IPVS NAT (masquerade) mode, wrr, weights 1:1"
	;;
nft)
	log "ipvs unavailable: $(in_ns "$NS_GW" ipvsadm -Ln 2>&1 | head -1) (kernel without CONFIG_IP_VS); no 'vs ipvs' ratio can be measured here"
	command -v nft >/dev/null || die "nft missing (apt-get install nftables)"
	in_ns "$NS_GW" nft -f - <<EOF || die "nft setup"
table ip fgbench {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr $VIP tcp dport 80 dnat to numgen inc mod 2 map { 0 : 10.77.1.2, 1 : 10.77.2.2 }
		ip daddr $VIP udp dport 9000 dnat to numgen inc mod 2 map { 0 : 10.77.1.2, 1 : 10.77.2.2 }
	}
}
EOF
	PEER_NAME=nft_dnat
	log "peer: nftables DNAT (conntrack), round robin over the 2 backends (numgen inc mod 2), as IPVS NAT would: DNAT only, replies routed back through gw"
	;;
*) die "BENCH_PEER must be ipvs or nft" ;;
esac
warmup
conn_test $PEER_NAME; PEER_CONN=$CONN
pps_test $PEER_NAME; PEER_PPS=$PPS

echo "bench: l4_pps ratio $(ratio "$FG_PPS" "$PEER_PPS") vs $PEER_NAME"
echo "bench: l4_conn_per_s ratio $(ratio "$FG_CONN" "$PEER_CONN") vs $PEER_NAME"
exit 0

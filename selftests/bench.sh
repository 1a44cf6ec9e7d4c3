#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# fleetgate's L4 benchmark (`make bench`). Prints `bench: NAME VALUE UNIT`
# and `bench: NAME ratio X.XX vs PEER` lines; `info:` lines explain them.
#
#  1. The program's cost per packet through BPF_PROG_TEST_RUN, both entry
#     points (build/bench/fg-bench-xdp, and -t for TC), in a private netns.
#  2. Connections/s and packets/s through a gateway namespace, fleetgate vs
#     nftables DNAT+SNAT (the kernel's own full-NAT L4 balancing; this kernel
#     has no IPVS), with the gateway's CPU per connection and per packet:
#     system CPU (system + irq + softirq, all CPUs) of the same traffic at
#     a fixed rate (5000 connections/s, 200000 packets/s: below what every
#     peer sustains, so the CPUs are not saturated and every peer carries
#     the same load) through the gateway minus client -> server on a
#     direct veth, per connection or packet delivered.
#
#       client 10.77.0.2 --- gc 10.77.0.1 [gw] g1 10.77.1.1 (+17) --- c1 10.77.1.2
#              10.76.0.2 ----(direct)----------------------------- 10.76.0.1 c1
#                                              g2 10.77.2.1 (+17) --- c2 10.77.2.2
#       VIP 10.99.0.100: tcp/80 (connections), udp/9000 (packets)
#
#     Two sets, each on fresh veths so no earlier XDP leaves its mark on the
#     offloads: "tc" (fleetgate as deployed: --attach auto, TC on veths; every
#     veth with the kernel's default offloads, for everyone) and "xdp"
#     (fleetgate --attach xdp; the client and cluster ends' checksum offload,
#     TSO and GSO off for everyone, as XDP_REDIRECT into a veth needs). In
#     each set BENCH_ROUNDS interleaved rounds (direct, fleetgate, nft, ...);
#     a figure is the median of the rounds, and the worst round is printed
#     too. Every SYN the client had to send again is counted (TcpExtTCP-
#     SynRetrans in the client), as are the backends' PAWS-refused SYNs on
#     TIME_WAIT sockets, fleetgate's no_snat_port drops and ports reused
#     inside TIME_WAIT, and conntrack's drops for nft.
#
# Everything it creates (namespaces fgb<pid>*, veths, pins, processes, nft
# rules inside its own namespace) is removed on exit, Ctrl-C included;
# traffic never leaves its namespaces. Bounded by a watchdog (BENCH_TIMEOUT).
#
# Knobs (environment): BENCH_PKTS (test runs per program case, 1000000),
# BENCH_SECS (seconds per measurement, 5), BENCH_CONC (concurrent
# connections, 64), BENCH_ROUNDS (3), BENCH_SETS ("tc xdp"),
# BENCH_SNAT_ADDRS (fleetgate's SNAT addresses per cluster-facing
# interface, 10.77.{1,2}.101 and up, 16; nft's is .100, the gateway's
# own connections (the agent's health probes) leave from .1),
# BENCH_GW_LOCAL_RANGE (the gateway's ip_local_port_range, "61000 65535"),
# BENCH_CPU_CONN_RATE (connections/s of the CPU measurement, 5000),
# BENCH_CPU_PPS (packets/s of the CPU measurement, 200000),
# BENCH_SKIP_PROG=1 (skip part 1), BENCH_PROFILE=1 (after each set, one
# more packets/s pass per peer under perf record, its top symbols
# printed), BENCH_NFT_PROG=1 (nft's rounds run with fleetgate's program
# attached the same way as fleetgate's own, with no listener configured so
# it passes every packet: what the attachment itself costs the stack),
# BENCH_TIMEOUT (900), BUILD (build).
set -u

cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
B=$BUILD/bench
PKTS=${BENCH_PKTS:-1000000}
SECS=${BENCH_SECS:-5}
CONC=${BENCH_CONC:-64}
ROUNDS=${BENCH_ROUNDS:-3}
SETS=${BENCH_SETS:-tc xdp}
NFT_PROG=${BENCH_NFT_PROG:-0}
SNAT_ADDRS=${BENCH_SNAT_ADDRS:-16}
GW_LOCAL_RANGE=${BENCH_GW_LOCAL_RANGE:-61000 65535}
GEN_CPUS=${BENCH_GEN_CPUS:-$(nproc)}
CPU_CONN_RATE=${BENCH_CPU_CONN_RATE:-5000}
CPU_PPS=${BENCH_CPU_PPS:-200000}
TIMEOUT=${BENCH_TIMEOUT:-900}
HZ=$(getconf CLK_TCK)

P=fgb$$
P=${P:0:11}             # interface names below add <= 2 chars (<= 15)
NS_CL=${P}cl NS_GW=${P}gw NS_C1=${P}c1 NS_C2=${P}c2
IF_CE=${P}ce IF_GC=${P}gc IF_G1=${P}g1 IF_1E=${P}1e IF_G2=${P}g2 IF_2E=${P}2e
IF_CD=${P}cd IF_DC=${P}dc
PIN=/sys/fs/bpf/$P
VIP=10.99.0.100
TMP=$(mktemp -d /tmp/fleetgate-bench.XXXXXX)
PIDS=()
SRV=()
WATCHDOG=

log() { echo "info: $*"; }
die() { echo "bench: FAILED: $*" >&2; exit 1; }

topo_down() {
	local ns
	for ns in "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"; do
		[ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
	done
}

cleanup() {
	local pid
	trap - EXIT INT TERM
	for pid in "${PIDS[@]}" "${SRV[@]}"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "${PIDS[@]}" "${SRV[@]}"; do
		wait "$pid" 2>/dev/null
	done
	topo_down
	rm -rf "$PIN" "$PIN-nft" "$TMP"
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (namespaces, XDP, TC)"
for t in "$B/fg-bench-xdp" "$B/fg-bench-srv" "$B/fg-bench-conn" \
	 "$B/fg-bench-sink" "$BUILD/fleetgate-agent" "$BUILD/fleetgatectl"; do
	[ -x "$t" ] || die "$t missing: run make"
done
command -v trafgen >/dev/null || die "trafgen missing (apt-get install netsniff-ng)"
command -v nft >/dev/null || die "nft missing (apt-get install nftables)"
command -v nstat >/dev/null || die "nstat missing (apt-get install iproute2)"

# The watchdog: the whole run stays bounded even if something hangs. Its
# sleep holds no pipe of ours open once the watchdog is killed.
( sleep "$TIMEOUT" </dev/null >/dev/null 2>&1
  echo "bench: watchdog: over ${TIMEOUT}s, stopping" >&2; kill -TERM $$ ) &
WATCHDOG=$!

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
stat_of() { in_ns "$1" cat "/sys/class/net/$2/statistics/$3"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0.00" }'; }
# System CPU of the whole machine in ticks: system + irq + softirq.
sys_ticks() { awk '/^cpu / { print $4 + $7 + $8 }' /proc/stat; }
# An absolute TcpExt/Tcp counter inside a namespace.
nstat_of() { in_ns "$1" nstat -asz "$2" 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }' | head -1; }
num() { [ -n "$1" ] && echo "$1" || echo 0; }

log "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start (other load skews every figure)"

# --- 1. BPF_PROG_TEST_RUN ------------------------------------------------
if [ "${BENCH_SKIP_PROG:-${BENCH_SKIP_XDP:-0}}" = 0 ]; then
	log "program cost: BPF_PROG_TEST_RUN, $PKTS packets per case, XDP entry point then TC's"
	timeout 300 "$B/fg-bench-xdp" -n "$PKTS" || die "fg-bench-xdp failed"
	timeout 300 "$B/fg-bench-xdp" -n "$PKTS" -t || die "fg-bench-xdp -t failed"
fi

# --- 2. topology ----------------------------------------------------------
# topo_up SET: fresh namespaces and veths; for "xdp" the client and cluster
# ends get the offloads XDP_REDIRECT into a veth needs.
topo_up() {
	local set=$1 ns i extra1="" extra2=""
	for ns in "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"; do
		ip netns add "$ns" || return 1
		in_ns "$ns" ip link set lo up || return 1
	done
	ip link add "$IF_CE" netns "$NS_CL" type veth peer name "$IF_GC" netns "$NS_GW" &&
	ip link add "$IF_1E" netns "$NS_C1" type veth peer name "$IF_G1" netns "$NS_GW" &&
	ip link add "$IF_2E" netns "$NS_C2" type veth peer name "$IF_G2" netns "$NS_GW" &&
	ip link add "$IF_CD" netns "$NS_CL" type veth peer name "$IF_DC" netns "$NS_C1" || return 1
	for i in $(seq 100 $((100 + SNAT_ADDRS))); do
		extra1+="ip addr add 10.77.1.$i/24 dev $IF_G1; "
		extra2+="ip addr add 10.77.2.$i/24 dev $IF_G2; "
	done
	in_ns "$NS_GW" sh -e -c "
		ip addr add 10.77.0.1/24 dev $IF_GC
		ip addr add 10.77.1.1/24 dev $IF_G1
		ip addr add 10.77.2.1/24 dev $IF_G2
		$extra1 $extra2
		for i in $IF_GC $IF_G1 $IF_G2; do ip link set \$i up; done
		sysctl -qw net.ipv4.ip_forward=1
		sysctl -qw net.ipv4.ip_local_port_range='$GW_LOCAL_RANGE'" || return 1
	in_ns "$NS_CL" sh -e -c "
		ip addr add 10.77.0.2/24 dev $IF_CE; ip link set $IF_CE up
		ip addr add 10.76.0.2/24 dev $IF_CD; ip link set $IF_CD up
		ip route add default via 10.77.0.1
		sysctl -qw net.ipv4.ip_local_port_range='1024 65535'" || return 1
	in_ns "$NS_C1" sh -e -c "
		ip addr add 10.77.1.2/24 dev $IF_1E; ip link set $IF_1E up
		ip addr add 10.76.0.1/24 dev $IF_DC; ip link set $IF_DC up
		ip route add default via 10.77.1.1" || return 1
	in_ns "$NS_C2" sh -e -c "
		ip addr add 10.77.2.2/24 dev $IF_2E; ip link set $IF_2E up
		ip route add default via 10.77.2.1" || return 1
	if [ "$set" = xdp ]; then
		in_ns "$NS_CL" ethtool -K "$IF_CE" tx off tso off gso off gro on >/dev/null 2>&1 &&
		in_ns "$NS_CL" ethtool -K "$IF_CD" tx off tso off gso off gro on >/dev/null 2>&1 &&
		in_ns "$NS_C1" ethtool -K "$IF_1E" tx off tso off gso off gro on >/dev/null 2>&1 &&
		in_ns "$NS_C1" ethtool -K "$IF_DC" tx off tso off gso off gro on >/dev/null 2>&1 &&
		in_ns "$NS_C2" ethtool -K "$IF_2E" tx off tso off gso off gro on >/dev/null 2>&1 || return 1
	fi
	SRV=()
	ip netns exec "$NS_C1" "$B/fg-bench-srv" 80 & SRV+=($!)
	ip netns exec "$NS_C2" "$B/fg-bench-srv" 80 & SRV+=($!)
	local gc_mac ce_mac cd_mac dc_mac
	gc_mac=$(in_ns "$NS_GW" cat "/sys/class/net/$IF_GC/address")
	ce_mac=$(in_ns "$NS_CL" cat "/sys/class/net/$IF_CE/address")
	cd_mac=$(in_ns "$NS_CL" cat "/sys/class/net/$IF_CD/address")
	dc_mac=$(in_ns "$NS_C1" cat "/sys/class/net/$IF_DC/address")
	# 256 UDP flows (source ports): a balancer spreads them over both
	# clusters and, after the first packets, forwards established flows.
	cat >"$TMP/udp.gw" <<EOF
{
  eth(da=$gc_mac, sa=$ce_mac, type=0x0800),
  ipv4(saddr=10.77.0.2, daddr=$VIP, ttl=64),
  udp(sp=dinc(10000, 10255, 1), dp=9000, csum=0),
  fill(0x42, 18)
}
EOF
	cat >"$TMP/udp.direct" <<EOF
{
  eth(da=$dc_mac, sa=$cd_mac, type=0x0800),
  ipv4(saddr=10.76.0.2, daddr=10.76.0.1, ttl=64),
  udp(sp=dinc(10000, 10255, 1), dp=9000, csum=0),
  fill(0x42, 18)
}
EOF
}

topo_reset() {
	local pid
	for pid in "${SRV[@]}"; do kill -TERM "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; done
	SRV=()
	topo_down
}

warmup() {
	in_ns "$NS_CL" ping -c 1 -W 1 "$1" >/dev/null 2>&1
	timeout 10 ip netns exec "$NS_CL" "$B/fg-bench-conn" -t 1 -c 8 "$1" 80 >/dev/null
}

# counters NAME: the drop and retransmission counters a run is judged by.
counters() {
	local fg=0 reuse=0 ct=0
	if [ "$1" = fleetgate ]; then
		fg=$("$BUILD/fleetgatectl" -p "$PIN" counters 2>/dev/null | awk '$1 == "no_snat_port" { print $3 }')
		reuse=$("$BUILD/fleetgatectl" -p "$PIN" -o json status 2>/dev/null |
			python3 -c 'import json,sys; print(json.load(sys.stdin)["snat"]["allocations"]["reused_in_time_wait"])' 2>/dev/null)
	fi
	if [ "$1" = nft ]; then
		# conntrack's drop, early_drop and insert_failed, every CPU
		ct=$(in_ns "$NS_GW" python3 -c '
import sys
rows = [l.split() for l in open("/proc/net/stat/nf_conntrack")]
col = {k: i for i, k in enumerate(rows[0])}
print(sum(int(r[col[k]], 16) for r in rows[1:] for k in ("drop", "early_drop", "insert_failed")))
' 2>/dev/null)
	fi
	echo "$(num "$(nstat_of "$NS_CL" TcpExtTCPSynRetrans)") $(( $(num "$(nstat_of "$NS_C1" TcpExtPAWSTimewait)") + $(num "$(nstat_of "$NS_C2" TcpExtPAWSTimewait)") )) $(num "$fg") $(num "$reuse") $(num "$ct")"
}

# conn_run SET PEER DST: the system CPU of connections to DST:80 at a fixed
# rate (CPU_CONN_RATE/s, under what any peer sustains), then connections/s
# as fast as they go; one line into $TMP/res.
conn_run() {
	local set=$1 peer=$2 dst=$3 out rout c0 c1 t0 t1 ok failed cps rok
	c0=$(counters "$peer")
	t0=$(sys_ticks)
	rout=$(timeout $((SECS + 15)) ip netns exec "$NS_CL" "$B/fg-bench-conn" -t "$SECS" -c "$CONC" \
		-r "$CPU_CONN_RATE" "$dst" 80)
	t1=$(sys_ticks)
	out=$(timeout $((SECS + 15)) ip netns exec "$NS_CL" "$B/fg-bench-conn" -t "$SECS" -c "$CONC" "$dst" 80)
	c1=$(counters "$peer")
	cps=$(echo "$out" | awk '{ print $2 }')
	ok=$(echo "$out" | awk '{ print $4 }')
	failed=$(( $(num "$(echo "$out" | awk '{ print $6 }')") + $(num "$(echo "$rout" | awk '{ print $6 }')") ))
	rok=$(echo "$rout" | awk '{ print $4 }')
	read -r syn0 paws0 nsp0 reuse0 ct0 <<<"$c0"
	read -r syn1 paws1 nsp1 reuse1 ct1 <<<"$c1"
	echo "conn $set $peer $ROUND $(num "$cps") $(num "$ok") $failed $((t1 - t0)) $((syn1 - syn0)) $((paws1 - paws0)) $((nsp1 - nsp0)) $((reuse1 - reuse0)) $((ct1 - ct0)) $(num "$rok")" >>"$TMP/res"
	log "$set/$peer round $ROUND: $out; at $CPU_CONN_RATE/s: $rout, system CPU $(( (t1 - t0) * 1000 / HZ )) ms; both runs: SYN retransmissions $((syn1 - syn0)), backends' PAWS-refused SYNs $((paws1 - paws0)), no_snat_port $((nsp1 - nsp0)), SNAT ports reused inside TIME_WAIT $((reuse1 - reuse0)), conntrack drops $((ct1 - ct0))"
}

# trafgen_count PEER ARGS...: runs trafgen (ARGS: --cpus N, maybe a rate)
# for SECS after a 1 s ramp; prints "delivered offered ticks seconds",
# counted by XDP_DROP sinks on the receiving veths.
trafgen_count() {
	local peer=$1 conf sinks tg s0 s1 t0 t1 tx0 tx1 w0 w1 ifce ns
	shift
	if [ "$peer" = direct ]; then
		conf=$TMP/udp.direct; ifce=$IF_CD
		ip netns exec "$NS_C1" "$B/fg-bench-sink" "$IF_DC" >"$TMP/sink1" 2>&1 & sinks=($!)
	else
		conf=$TMP/udp.gw; ifce=$IF_CE
		ip netns exec "$NS_C1" "$B/fg-bench-sink" "$IF_1E" >"$TMP/sink1" 2>&1 & sinks=($!)
		ip netns exec "$NS_C2" "$B/fg-bench-sink" "$IF_2E" >"$TMP/sink2" 2>&1 & sinks+=($!)
	fi
	PIDS+=("${sinks[@]}")
	for _ in $(seq 50); do
		grep -q ready "$TMP/sink1" 2>/dev/null && { [ "$peer" = direct ] || grep -q ready "$TMP/sink2" 2>/dev/null; } && break
		sleep 0.1
	done
	sink_count() { kill -USR1 "$1"; sleep 0.1; awk '/^count/ { c = $2 } END { print c + 0 }' "$2"; }
	count_all() {
		local n=0 k=1 p
		for p in "${sinks[@]}"; do n=$((n + $(sink_count "$p" "$TMP/sink$k"))); k=$((k + 1)); done
		echo $n
	}
	# timeout(1) runs trafgen in its own process group and signals the
	# whole group (one sender per CPU). TERM: background jobs of a
	# script start with SIGINT ignored.
	timeout -s TERM -k 3 $((SECS + 3)) ip netns exec "$NS_CL" trafgen --dev "$ifce" \
		--conf "$conf" "$@" >"$TMP/trafgen" 2>&1 &
	tg=$!; PIDS+=($tg)
	sleep 1 # ramp up; flows set up
	tx0=$(stat_of "$NS_CL" "$ifce" tx_packets)
	s0=$(count_all); t0=$(sys_ticks); w0=$(date +%s.%N)
	sleep "$SECS"
	s1=$(count_all); t1=$(sys_ticks); w1=$(date +%s.%N)
	tx1=$(stat_of "$NS_CL" "$ifce" tx_packets)
	wait $tg 2>/dev/null
	for ns in $(ip netns pids "$NS_CL"); do kill -KILL "$ns" 2>/dev/null; done
	kill -TERM "${sinks[@]}" 2>/dev/null; wait "${sinks[@]}" 2>/dev/null
	echo "$((s1 - s0)) $((tx1 - tx0)) $((t1 - t0)) $(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')"
}

# pps_run SET PEER: the system CPU of UDP packets at a fixed rate (CPU_PPS/s,
# one trafgen sender), then packets/s from trafgen on every CPU.
pps_run() {
	local set=$1 peer=$2 n off ticks d pps rn roff rticks rd
	read -r rn roff rticks rd < <(trafgen_count "$peer" --cpus 1 -b "${CPU_PPS}pps")
	read -r n off ticks d < <(trafgen_count "$peer" --cpus "$GEN_CPUS")
	pps=$(awk -v a="$n" -v d="$d" 'BEGIN { printf "%.0f", a / d }')
	echo "pps $set $peer $ROUND $pps $n $off $ticks $rn $rticks" >>"$TMP/res"
	log "$set/$peer round $ROUND: $pps pkt/s delivered ($(awk -v a="$off" -v d="$d" 'BEGIN { printf "%.0f", a / d }') offered by trafgen on $GEN_CPUS CPUs); at ${CPU_PPS}/s: $rn delivered in ${rd}s, system CPU $((rticks * 1000 / HZ)) ms"
}

# The fleet as the agent reads it from its config directory: a
# LoadBalancer Service with tcp/80 and udp/9000 on the VIP, one endpoint
# (c1's, c2's server) per cluster.
C1=c7fb82a1b2c3d4e5f60718293a4b5c6d7
C2=c15d48ca9d1fd43f9bbb89c56a474843c
write_config() {
	local d=$TMP/config c addr
	mkdir -p "$d/fleet" "$d/clusters/$C1" "$d/clusters/$C2"
	cat >"$d/fleet/gateway.yaml" <<EOF
apiVersion: mse.alibabacloud.com/v1alpha1
kind: MseIngressConfig
metadata:
  name: bench-gateway
  annotations:
    mse.alibabacloud.com/remote-clusters: $C1,$C2
spec:
  ingress:
    local:
      ingressClass: mse
---
apiVersion: v1
kind: Service
metadata:
  name: bench
  namespace: bench
spec:
  type: LoadBalancer
  ports:
  - name: tcp
    protocol: TCP
    port: 80
  - name: udp
    protocol: UDP
    port: 9000
EOF
	for c in $C1 $C2; do
		[ $c = $C1 ] && addr=10.77.1.2 || addr=10.77.2.2
		cat >"$d/clusters/$c/bench.yaml" <<EOF
apiVersion: v1
kind: Service
metadata:
  name: bench
  namespace: bench
spec:
  ports:
  - name: tcp
    protocol: TCP
    port: 80
    targetPort: tcp
  - name: udp
    protocol: UDP
    port: 9000
    targetPort: udp
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: bench-1
  namespace: bench
  labels:
    kubernetes.io/service-name: bench
addressType: IPv4
ports:
- name: tcp
  protocol: TCP
  port: 80
- name: udp
  protocol: UDP
  port: 9000
endpoints:
- addresses:
  - $addr
  conditions:
    ready: true
EOF
	done
}

fleetgate_start() {
	local set=$1 args=() n l i
	[ "$set" = xdp ] && args=(--attach xdp)
	# Its own SNAT addresses: the backends' TIME_WAIT sockets of nft's
	# runs (masqueraded to .1) are not fleetgate's to meet, nor the
	# other way round.
	for i in $(seq 101 $((100 + SNAT_ADDRS))); do
		args+=(--snat-addr 10.77.1.$i --snat-addr 10.77.2.$i)
	done
	[ -d "$TMP/config" ] || write_config
	nsenter --net="/run/netns/$NS_GW" "$BUILD/fleetgate-agent" -i "$IF_GC" -i "$IF_G1" \
		-i "$IF_G2" -p "$PIN" -c "$TMP/config" -l "$VIP:8080" --metrics-listen off \
		--health-timeout 1000 --health-fall 3 \
		--admin-socket "$TMP/admin.sock" "${args[@]}" 2>"$TMP/agent.log" &
	AGENT=$!; PIDS+=($AGENT)
	for _ in $(seq 150); do
		grep -q ready "$TMP/agent.log" && break
		kill -0 $AGENT 2>/dev/null || break
		sleep 0.1
	done
	grep -q ready "$TMP/agent.log" || { cat "$TMP/agent.log" >&2; die "agent did not get ready"; }
	# Both L4 listeners programmed, and the backends up.
	for _ in $(seq 100); do
		l=$("$BUILD/fleetgatectl" -p "$PIN" listeners 2>/dev/null | grep -c -E "$VIP:(80|9000) ")
		n=$("$BUILD/fleetgatectl" -p "$PIN" backends 2>/dev/null | grep -c -i -w up)
		[ "${l:-0}" -ge 2 ] && [ "${n:-0}" -ge 2 ] && break
		sleep 0.1
	done
	if [ "$ROUND" = 1 ]; then
		log "$set: agent with --health-timeout 1000 --health-fall 3: the default 200 ms probe deadline is missed on 2 CPUs saturated by the packets/s test, and a backend marked down mid-test would move flows"
		grep -E "attached to|SNAT ports" "$TMP/agent.log" | sed "s/^/info: $set: agent: /"
		"$BUILD/fleetgatectl" -p "$PIN" listeners 2>&1 | sed "s/^/info: $set: /"
		"$BUILD/fleetgatectl" -p "$PIN" backends 2>&1 | sed "s/^/info: $set: /"
	fi
}

fleetgate_stop() {
	kill -TERM $AGENT; wait $AGENT 2>/dev/null
	grep -E "WARN|warn|error|is DOWN" "$TMP/agent.log" | head -3 | sed 's/^/info: agent: /'
}

# BENCH_NFT_PROG=1: the program attached as for fleetgate (its links
# pinned), by an agent with an empty configuration that is then killed:
# the program stays and passes everything to nft. Removed with its pins.
nft_prog_start() {
	local set=$1 args=() pid
	[ "$NFT_PROG" = 1 ] || return 0
	[ "$set" = xdp ] && args=(--attach xdp)
	mkdir -p "$TMP/empty/fleet"
	nsenter --net="/run/netns/$NS_GW" "$BUILD/fleetgate-agent" -i "$IF_GC" -i "$IF_G1" \
		-i "$IF_G2" -p "$PIN-nft" -c "$TMP/empty" --metrics-listen off \
		--admin-socket "$TMP/admin-nft.sock" "${args[@]}" 2>"$TMP/agent-nft.log" &
	pid=$!
	for _ in $(seq 150); do
		grep -q ready "$TMP/agent-nft.log" && break
		kill -0 $pid 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
	grep -q ready "$TMP/agent-nft.log" || die "the agent for nft's attachment did not get ready"
	[ "$ROUND" = 1 ] && grep -E "attached to" "$TMP/agent-nft.log" | sed "s/^/info: $set: nft's attachment: /"
	return 0
}

nft_prog_stop() {
	[ "$NFT_PROG" = 1 ] || return 0
	"$BUILD/fleetgatectl" -p "$PIN-nft" counters 2>/dev/null | grep -i pass | head -3 |
		sed "s/^/info: nft round $ROUND: the attached program: /"
	rm -rf "$PIN-nft"
}

nft_start() {
	in_ns "$NS_GW" nft -f - <<EOF || die "nft setup"
table ip fgbench {
	chain pre {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr $VIP tcp dport 80 dnat to numgen inc mod 2 map { 0 : 10.77.1.2, 1 : 10.77.2.2 }
		ip daddr $VIP udp dport 9000 dnat to numgen inc mod 2 map { 0 : 10.77.1.2, 1 : 10.77.2.2 }
	}
	chain post {
		type nat hook postrouting priority srcnat; policy accept;
		ct status dnat snat to ip daddr map { 10.77.1.2 : 10.77.1.100, 10.77.2.2 : 10.77.2.100 }
	}
}
EOF
}

nft_stop() {
	in_ns "$NS_GW" nft delete table ip fgbench
	in_ns "$NS_GW" sh -c 'command -v conntrack >/dev/null && conntrack -F' >/dev/null 2>&1
}

: >"$TMP/res"
log "part 2: connections/s ($CONC in flight, ${SECS}s, as fast as they go), packets/s (trafgen on every CPU, 64-byte UDP, 256 flows, ${SECS}s); then the system CPU of $CPU_CONN_RATE connections/s and of $CPU_PPS packets/s (one trafgen sender) for ${SECS}s each; $ROUNDS interleaved rounds per set; sets: $SETS"
log "peers: direct (client -> c1 on their own veth: the CPU baseline), fleetgate, nft = nftables DNAT (numgen round robin over the 2 backends) + SNAT (to .100 of the egress side; ports kept where free, as masquerade), with conntrack"
log "gateway: ip_local_port_range $GW_LOCAL_RANGE; each cluster-facing veth has its own address .1 (the agent's health probes leave from it), .100 (nft's SNAT source) and $SNAT_ADDRS more, .101 and up (fleetgate's, --snat-addr): no two of them share a backend-side tuple, so none meets another's TIME_WAIT sockets on the backends"
for SET in $SETS; do
	topo_up "$SET" || die "cannot build the topology"
	log "set $SET: $( [ "$SET" = xdp ] && echo "fleetgate --attach xdp; client and cluster ends: tx off tso off gso off gro on, for every peer" || echo "fleetgate --attach auto (TC on veths); every veth with the kernel's default offloads")"
	for ROUND in $(seq "$ROUNDS"); do
		warmup 10.76.0.1
		conn_run "$SET" direct 10.76.0.1
		pps_run "$SET" direct

		fleetgate_start "$SET"
		warmup $VIP
		conn_run "$SET" fleetgate $VIP
		pps_run "$SET" fleetgate
		fleetgate_stop

		nft_prog_start "$SET"
		nft_start
		warmup $VIP
		conn_run "$SET" nft $VIP
		pps_run "$SET" nft
		nft_stop
		nft_prog_stop
	done
	if [ "${BENCH_PROFILE:-0}" = 1 ]; then
		# An extra pass, not counted: where the CPU goes per packet.
		ROUND=profile
		for peer in direct fleetgate nft; do
			[ $peer = fleetgate ] && fleetgate_start "$SET"
			[ $peer = nft ] && nft_start
			[ $peer = direct ] || warmup $VIP
			perf record -q -a -g -e cpu-clock -F 997 -o "$TMP/perf.$peer" -- \
				sleep $((SECS + 1)) >/dev/null 2>&1 &
			pps_run "$SET" "$peer"
			wait $!
			log "profile $SET/$peer (perf record -a -e cpu-clock, $((SECS + 1)) s of packets/s; kernel symbols over 0.7% of all samples, other tenants' included):"
			perf report -i "$TMP/perf.$peer" --stdio --no-children --sort sym \
				--percent-limit 0.7 2>/dev/null | grep -E '^ +[0-9].*\[k\]' | head -30 |
				sed "s/^/info:   /"
			[ $peer = fleetgate ] && fleetgate_stop
			[ $peer = nft ] && nft_stop
		done
		sed -i '/ profile /d' "$TMP/res"
	fi
	topo_reset
done

# --- 3. figures -------------------------------------------------------------
# res lines:  conn SET PEER ROUND cps ok failed ticks synretx paws nsp reuse ctdrop rate_ok
#             pps  SET PEER ROUND pps delivered offered ticks rate_delivered rate_ticks
# (ticks of a conn line, and the CPU figures, are the fixed-rate run's)
summary() {
	awk -v hz="$HZ" -v set="$1" '
	function median(a, n,   i, j, t) {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	$2 != set { next }
	$1 == "conn" { r = $4; cps[$3, r] = $5; ok[$3, r] = $14; tk[$3, r] = $8
		syn[$3] += $9; paws[$3] += $10; nsp[$3] += $11; reuse[$3] += $12; ct[$3] += $13; fail[$3] += $7
		if (r > rounds) rounds = r }
	$1 == "pps" { r = $4; pps[$3, r] = $5; pk[$3, r] = $9; ptk[$3, r] = $10 }
	END {
		split("fleetgate nft", peers, " ")
		for (p = 1; p <= 2; p++) {
			n = peers[p]; m = 0; worst = 1e18; cw = 0; pw = 1e18; cg = 0
			for (r = 1; r <= rounds; r++) {
				m++
				c[m] = cps[n, r]; if (c[m] < worst) worst = c[m]
				# gateway CPU per connection and per packet, microseconds
				# / nanoseconds: this round minus the direct run of the round
				g = (ok[n, r] > 0 && ok["direct", r] > 0) ? (tk[n, r] / ok[n, r] - tk["direct", r] / ok["direct", r]) * 1e6 / hz : 0
				gc[m] = g; if (g > cw) cw = g
				q[m] = pps[n, r]; if (q[m] < pw) pw = q[m]
				h = (pk[n, r] > 0 && pk["direct", r] > 0) ? (ptk[n, r] / pk[n, r] - ptk["direct", r] / pk["direct", r]) * 1e9 / hz : 0
				hc[m] = h; if (h > cg) cg = h
				# the whole path (client, gateway, servers), not
				# minus direct: per connection / packet
				wc[m] = ok[n, r] > 0 ? tk[n, r] / ok[n, r] * 1e6 / hz : 0
				wp[m] = pk[n, r] > 0 ? ptk[n, r] / pk[n, r] * 1e9 / hz : 0
			}
			printf "%s %.0f %.0f %.2f %.2f %.0f %.0f %.1f %.1f %d %d %d %d %d %d %.2f %.1f\n", n,
				median(c, m), worst, median(gc, m), cw, median(q, m), pw, median(hc, m), cg,
				syn[n], paws[n], nsp[n], reuse[n], ct[n], fail[n], median(wc, m), median(wp, m)
		}
	}' "$TMP/res"
}

for SET in $SETS; do
	sfx=""; [ "$SET" = xdp ] && sfx="_xdp"
	summary "$SET" >"$TMP/sum.$SET"
	read -r _ fc fcw fg fgw fp fpw fh fhw fsyn fpaws fnsp freuse _ ffail fwc fwp < <(grep '^fleetgate ' "$TMP/sum.$SET")
	read -r _ nc ncw ng ngw np npw nh nhw nsyn npaws _ _ nct nfail nwc nwp < <(grep '^nft ' "$TMP/sum.$SET")
	log "set $SET: medians (worst) of $ROUNDS rounds; gateway CPU = system CPU per connection / packet at $CPU_CONN_RATE conn/s / $CPU_PPS pkt/s through the gateway minus the direct run of the same round"
	echo "bench: l4_conn_per_s_fleetgate$sfx $fc conn/s"
	echo "bench: l4_conn_per_s_fleetgate${sfx}_worst $fcw conn/s"
	echo "bench: l4_conn_per_s_nft$sfx $nc conn/s"
	echo "bench: l4_conn_per_s_nft${sfx}_worst $ncw conn/s"
	echo "bench: l4_gw_cpu_per_conn_fleetgate$sfx $fg us/conn"
	echo "bench: l4_gw_cpu_per_conn_nft$sfx $ng us/conn"
	echo "bench: l4_pps_fleetgate$sfx $fp pkt/s"
	echo "bench: l4_pps_nft$sfx $np pkt/s"
	echo "bench: l4_gw_cpu_per_pkt_fleetgate$sfx $fh ns/pkt"
	echo "bench: l4_gw_cpu_per_pkt_nft$sfx $nh ns/pkt"
	echo "bench: l4_syn_retrans_fleetgate$sfx $fsyn SYNs"
	echo "bench: l4_syn_retrans_nft$sfx $nsyn SYNs"
	echo "bench: l4_backend_paws_refused_fleetgate$sfx $fpaws SYNs"
	echo "bench: l4_backend_paws_refused_nft$sfx $npaws SYNs"
	echo "bench: l4_no_snat_port_fleetgate$sfx $fnsp SYNs"
	echo "bench: l4_snat_reused_in_time_wait_fleetgate$sfx $freuse ports"
	echo "bench: l4_conntrack_drops_nft$sfx $nct packets"
	log "set $SET: failed connections (not done in 2 s): fleetgate $ffail, nft $nfail; worst rounds: fleetgate CPU $fgw us/conn, $fhw ns/pkt, $fpw pkt/s; nft $ngw us/conn, $nhw ns/pkt, $npw pkt/s"
	echo "bench: l4_conn_per_s$sfx ratio $(ratio "$fc" "$nc") vs nft"
	echo "bench: l4_conn_per_s${sfx}_worst ratio $(ratio "$fcw" "$ncw") vs nft"
	echo "bench: l4_gw_cpu_per_conn$sfx ratio $(ratio "$fg" "$ng") vs nft"
	echo "bench: l4_gw_cpu_per_pkt$sfx ratio $(ratio "$fh" "$nh") vs nft"
	echo "bench: l4_pps$sfx ratio $(ratio "$fp" "$np") vs nft"
	# System CPU of the whole machine moves with other tenants; when the
	# direct run of a round cost more than the gateway's, "minus direct"
	# is no measurement: say so, and give the whole path's CPU too.
	echo "bench: l4_path_cpu_per_conn_fleetgate$sfx $fwc us/conn"
	echo "bench: l4_path_cpu_per_conn_nft$sfx $nwc us/conn"
	echo "bench: l4_path_cpu_per_pkt_fleetgate$sfx $fwp ns/pkt"
	echo "bench: l4_path_cpu_per_pkt_nft$sfx $nwp ns/pkt"
	echo "bench: l4_path_cpu_per_conn$sfx ratio $(ratio "$fwc" "$nwc") vs nft"
	echo "bench: l4_path_cpu_per_pkt$sfx ratio $(ratio "$fwp" "$nwp") vs nft"
	if awk -v a="$fg" -v b="$ng" -v c="$fh" -v d="$nh" 'BEGIN { exit !(a <= 0 || b <= 0 || c <= 0 || d <= 0) }'; then
		log "set $SET: WARNING: a gateway CPU figure (through the gateway minus direct) is not above 0: the direct run cost more system CPU than a run through a gateway, i.e. other load on the machine (or the generator's own spinning) moved more than the gateway costs; the l4_gw_cpu_* lines of this set are not a measurement, l4_path_cpu_* (the whole path, not minus direct) are the closest figures"
	fi
done
exit 0

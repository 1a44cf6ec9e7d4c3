#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# fleetgate control-plane benchmark (`make bench`, issue 9 "Fleet scale").
# Prints `bench: NAME VALUE UNIT` and `bench: NAME ratio X.XX vs PEER`
# lines; `info:` lines say how each figure was taken and which target it
# meets or misses. The agent is a black box: a config directory in, the
# pinned maps, the admin socket and HTTP through its proxy out.
#
#  1. Route computation in-process ($BUILD/bench/fg-bench-fleet compute):
#     fg_plan_compute and fg_applier_apply for N = 1k, 10k, 100k Ingresses
#     (C = 2, E = 10), and the growth from one N to the next.
#  2. Synthetic fleets (N Ingresses, every tenth with a weight canary pinned
#     to one cluster, C clusters, E endpoints per Service per cluster), one
#     agent each, in a gateway namespace:
#
#       client ns (wrk, HTTP probes) 10.78.0.2 --- 10.78.0.1 [gw ns: agent,
#         --listen 10.78.0.1:80, XDP on both veths] 10.79.0.1 --- 10.79.0.2
#         [endpoint ns: `ip route add local 10.64.0.0/10 dev lo`, one
#         listener on 0.0.0.0:8080 answers every endpoint address]
#
#     For each: start -> Listening, start -> every backend active in the
#     maps, agent RSS, BPF map memory, one-endpoint change -> in the
#     Maglev ring (p50, max of 10), canary weight edit -> HTTP requests
#     land on the new cluster (p50, max of 10).
#  3. On the target fleet and a small one (BENCH_CP_WRK_FLEETS): wrk through
#     the proxy, idle, then with 100 config changes per second: p99 ratio.
#
# Everything it creates (namespaces fgc<pid>*, pins /sys/fs/bpf/fgc<pid>*,
# processes, the temp dir with the config directories) is removed at exit,
# Ctrl-C included. Bounded by a watchdog (BENCH_CP_TIMEOUT, 900 s); every
# step has its own timeout and a step that times out prints what it could
# not reach and the run goes on.
#
# Knobs (environment):
#   BENCH_CP_FLEETS      fleets as N:C:E[:BIG] (BIG: one more Service with
#                        BIG endpoints in every cluster), default
#                        "100:2:10 800:2:10 1000:2:10 100:50:10 10000:2:10
#                        10000:10:10 1000:50:10:1000"
#   BENCH_CP_COMPUTE_N   Ingress counts for part 1 (default "1000 10000
#                        100000"; "" skips it)
#   BENCH_CP_WRK_FLEETS  the fleets of part 3 (default "1000:2:10 10000:10:10";
#                        "" skips it; each must be one of BENCH_CP_FLEETS)
#   BENCH_CP_START_TIMEOUT  seconds an agent gets to program its fleet (180)
#   BENCH_CP_CHANGE_TIMEOUT_MS  per endpoint change / weight edit (10000)
#   BENCH_CP_CHANGES     changes and edits measured per fleet (10)
#   BENCH_CP_RATE        config changes per second in part 3 (100)
#   BENCH_SECS           seconds per wrk run (10)
#   BENCH_CP_WRK_ROUNDS  rounds of (idle, changes) in part 3 (2)
#   BENCH_CP_AGENT_ARGS  more fleetgate-agent options
#   BENCH_KEEP_TMP=1     keep the temp dir (agent logs)
#   BUILD                the build directory (build)

# One { } block: bash parses it whole, so editing this file during a run
# cannot change the running one.
{
set -u

cd "$(dirname "$0")/.." || exit 1
# log, die, in_ns, ratio, term_pids, kill_ns, del_ns: shared with the other
# benchmarks.
# shellcheck source=selftests/bench_lib.sh
. selftests/bench_lib.sh || { echo "bench: FAILED: selftests/bench_lib.sh missing" >&2; exit 1; }
BUILD=${BUILD:-build}
FLEETS=${BENCH_CP_FLEETS-100:2:10 800:2:10 1000:2:10 100:50:10 10000:2:10 10000:10:10 1000:50:10:1000}
COMPUTE_N=${BENCH_CP_COMPUTE_N-1000 10000 100000}
WRK_FLEETS=${BENCH_CP_WRK_FLEETS-1000:2:10 10000:10:10}
START_TIMEOUT=${BENCH_CP_START_TIMEOUT:-180}
CHANGE_TIMEOUT_MS=${BENCH_CP_CHANGE_TIMEOUT_MS:-10000}
CHANGES=${BENCH_CP_CHANGES:-10}
RATE=${BENCH_CP_RATE:-100}
SECS=${BENCH_SECS:-10}
ROUNDS=${BENCH_CP_WRK_ROUNDS:-2}
AGENT_ARGS=${BENCH_CP_AGENT_ARGS:-}
TIMEOUT=${BENCH_CP_TIMEOUT:-900}
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

P=fgc$$
P=${P:0:11}             # interface names below add <= 2 chars (<= 15)
NS_CL=${P}cl NS_GW=${P}gw NS_EP=${P}ep
IF_CE=${P}ce IF_GC=${P}gc IF_GE=${P}ge IF_EG=${P}eg
GW=10.78.0.1
TMP=$(mktemp -d /tmp/fleetgate-bench-cp.XXXXXX)
PIDS=()
AGENT=
PIN=
WATCHDOG=

stop_agent() {
	[ -n "$AGENT" ] || return 0
	kill -TERM "$AGENT" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$AGENT" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$AGENT" 2>/dev/null
	wait "$AGENT" 2>/dev/null
	AGENT=
	[ -n "$PIN" ] && rm -rf "$PIN"
}

cleanup() {
	trap - EXIT INT TERM
	stop_agent
	term_pids "${PIDS[@]}"
	kill_ns "$NS_CL" "$NS_GW" "$NS_EP"
	del_ns "$NS_CL" "$NS_GW" "$NS_EP"
	rm -rf /sys/fs/bpf/"$P"* 2>/dev/null
	if [ -n "${BENCH_KEEP_TMP:-}" ]; then
		rm -rf "$TMP"/fleet-*
		echo "info: kept $TMP" >&2
	else
		rm -rf "$TMP"
	fi
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (namespaces, XDP)"
TOOL=$BUILD/bench/fg-bench-fleet
for t in "$TOOL" "$BUILD/fleetgate-agent" "$BUILD/fleetgatectl"; do
	[ -x "$t" ] || die "$t missing: run make BUILD=$BUILD"
done
for t in nsenter wrk; do
	command -v $t >/dev/null || die "$t missing (apt-get install util-linux wrk)"
done
# Private copies: a rebuild during the run must not change the binaries.
cp "$BUILD/fleetgate-agent" "$BUILD/fleetgatectl" "$TOOL" "$TMP/" || die "cannot copy the binaries"
AGENT_BIN=$TMP/fleetgate-agent
CTL=$TMP/fleetgatectl
TOOL=$TMP/fg-bench-fleet

# The watchdog; its sleep does not hold our stdout.
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$TIMEOUT" >/dev/null 2>&1 & s=$!
	wait $s && { echo "bench: watchdog: over ${TIMEOUT}s, stopping" >&2; kill -TERM $$; }
) &
WATCHDOG=$!

fmt() { awk -v v="$1" -v d="${2:-1}" 'BEGIN { printf "%.*f", d, v }'; }
# le A B: A <= B (floats)
le() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a <= b) }'; }
verdict() { if le "$1" "$2"; then echo met; else echo MISSED; fi; }

log "machine: $(nproc) CPUs, kernel $(uname -r), $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo), load average $(cut -d' ' -f1-3 /proc/loadavg) at start (other load skews every figure)"
T_START=$(date +%s)

# --- 1. route computation in-process --------------------------------------------
if [ -n "$COMPUTE_N" ]; then
	log "route computation in-process (fg-bench-fleet compute): C=2 E=10, every tenth Ingress with a weight canary; best of up to 3 plans (1 above 2 s); apply = fg_applier_apply on an empty loaded data plane (not attached); full_recompute_apply = one endpoint moved, the whole plan recomputed, then applied (only what differs is written)"
	# shellcheck disable=SC2086
	timeout -k 5 420 "$TOOL" compute 2 10 $COMPUTE_N 2>"$TMP/compute.err"
	rc=$?
	[ $rc = 124 ] && log "compute: stopped after 420 s (the larger N did not finish)"
	[ $rc != 0 ] && [ $rc != 124 ] && log "compute: exit status $rc: $(grep -v '^rings:' "$TMP/compute.err" | tail -3 | tr '\n' ' ')"
fi

# --- 2. topology ---------------------------------------------------------------
topo_up() {
	local ns
	for ns in "$NS_CL" "$NS_GW" "$NS_EP"; do
		ip netns add "$ns" || return 1
		in_ns "$ns" ip link set lo up || return 1
	done
	ip link add "$IF_CE" netns "$NS_CL" type veth peer name "$IF_GC" netns "$NS_GW" &&
	ip link add "$IF_GE" netns "$NS_GW" type veth peer name "$IF_EG" netns "$NS_EP" || return 1
	in_ns "$NS_CL" sh -e -c "
		ip addr add 10.78.0.2/24 dev $IF_CE; ip link set $IF_CE up
		ip route add default via $GW
		sysctl -qw net.ipv4.ip_local_port_range='1024 65535'" || return 1
	in_ns "$NS_GW" sh -e -c "
		ip addr add $GW/24 dev $IF_GC; ip link set $IF_GC up
		ip addr add 10.79.0.1/24 dev $IF_GE; ip link set $IF_GE up
		ip route add 10.64.0.0/10 via 10.79.0.2
		sysctl -qw net.ipv4.ip_forward=1" || return 1
	# Every address of 10.64.0.0/10 is local here ("AnyIP"): one
	# listener on 0.0.0.0:8080 answers each endpoint.
	in_ns "$NS_EP" sh -e -c "
		ip addr add 10.79.0.2/24 dev $IF_EG; ip link set $IF_EG up
		ip route add default via 10.79.0.1
		ip route add local 10.64.0.0/10 dev lo
		sysctl -qw net.ipv4.tcp_max_syn_backlog=65536
		sysctl -qw net.core.somaxconn=65535" || return 1
}
if [ -n "$FLEETS" ]; then
	topo_up || die "cannot build the topology"
	in_ns "$NS_EP" "$TOOL" serve 8080 >"$TMP/serve.log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 50); do grep -q ready "$TMP/serve.log" && break; sleep 0.1; done
	grep -q ready "$TMP/serve.log" || die "endpoint server did not start: $(cat "$TMP/serve.log")"
fi

cat >"$TMP/cp.lua" <<'EOF'
done = function(summary, latency, requests)
	local e = summary.errors
	io.write(string.format("cp: requests %d duration_us %d p50_us %d p99_us %d max_us %d errors %d\n",
		summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
		latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
EOF

# The agent's computation counters (admin "status"), when it has them.
comps() {
	timeout 15 "$TOOL" admin "$SOCK" status 2>/dev/null | grep -o '"computations": *{[^}]*}' |
		sed -e 's/"computations": *//' -e 's/[{}"]//g' -e 's/,/, /g'
}
agent_cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_mib() { awk -v k="$2" '$1 == k":" { printf "%.0f", $2 / 1024 }' "/proc/$1/status" 2>/dev/null; }
# BPF map memory the agent holds: memlock of every map fd, once per map id.
map_mem() {
	local f
	for f in /proc/"$1"/fd/*; do
		[ "$(readlink "$f" 2>/dev/null)" = "anon_inode:bpf-map" ] && echo "/proc/$1/fdinfo/${f##*/}"
	done | xargs -r awk '/^memlock:/ { m[FILENAME] = $2 } /^map_id:/ { id[FILENAME] = $2 }
		END { for (f in m) if (!(id[f] in s)) { s[id[f]] = 1; t += m[f]; n++; print id[f], m[f] > "/dev/stderr" }
		      printf "%.1f %d\n", t / 1048576, n }' 2>"$TMP/maps"
}
# The largest maps: NAME MiB, ...
top_maps() {
	local id mem name
	sort -k2 -n -r "$TMP/maps" | head -"${1:-5}" | while read -r id mem; do
		name=$(timeout 5 bpftool map show id "$id" 2>/dev/null | awk 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == "name") print $(i + 1) }')
		printf '%s %.1f MiB, ' "${name:-id$id}" "$(awk -v m="$mem" 'BEGIN { print m / 1048576 }')"
	done
}

# wrk_run NAME: wrk through the proxy to the probe route; sets P99 (ms).
P99=
wrk_run() { # NAME [SECONDS]
	local out line secs=${2:-$SECS}
	out=$(timeout -k 3 $((secs + 30)) ip netns exec "$NS_CL" wrk -t 2 -c 32 -d "${secs}s" \
		--timeout 10s -s "$TMP/cp.lua" -H 'Host: h0.bench.example' "http://$GW/" 2>&1)
	line=$(echo "$out" | grep '^cp: ' | tail -1)
	if [ -z "$line" ]; then
		log "wrk $1: failed: $(echo "$out" | tail -2 | tr '\n' ' ')"
		P99=
		return 1
	fi
	P99=$(echo "$line" | awk '{ printf "%.2f", $9 / 1000 }')
	log "wrk $1: $(echo "$line" | awk '{ printf "%d requests in %.1f s (32 connections, 2 threads), p50 %.2f ms, p99 %.2f ms, max %.1f ms, errors %d", $3, $5 / 1e6, $7 / 1000, $9 / 1000, $11 / 1000, $13 }')"
}

cpu_share() { awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.2f", (b - a) / hz / (t1 - t0) }'; }
minf() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || (b != "" && b + 0 < a + 0)) print b; else print a }'; }

# Interleaved rounds (idle, changes, idle, changes, ...): the best p99 of
# each kind, so a burst of other load on the machine weighs less.
wrk_part() { # tag dir N C E BIG
	local tag=$1 dir=$2 n=$3 c=$4 e=$5 big=$6 idle='' churn='' c0 c1 cp t0 t1 r conv='' out cs
	log "proxy under changes ($tag): wrk -t2 -c32 ${SECS}s keep-alive GETs to h0.bench.example (main Ingress pinned to cluster 0, ${e} endpoints); $ROUNDS rounds of idle, then $RATE endpoint moves/s (16 Services in turn, one endpoint each, moved and back); best p99 of each kind"
	wrk_run warmup-$tag 2 >/dev/null
	for r in $(seq "$ROUNDS"); do
		c0=$(agent_cpu "$AGENT"); t0=$(date +%s.%N)
		wrk_run idle$r-$tag && idle=$(minf "$idle" "$P99")
		c1=$(agent_cpu "$AGENT"); t1=$(date +%s.%N)
		log "agent CPU during idle$r: $(cpu_share "$c0" "$c1" "$t0" "$t1") cores"
		"$TOOL" churn "$dir" "$n" "$c" "$e" "$big" "$RATE" $((SECS + 1)) "$PIN" >"$TMP/churn.out" 2>&1 &
		cp=$!
		for _ in $(seq 600); do grep -q 'ready\|cannot' "$TMP/churn.out" && break; sleep 0.1; done
		c0=$(agent_cpu "$AGENT"); t0=$(date +%s.%N)
		wrk_run changes$r-$tag && churn=$(minf "$churn" "$P99")
		c1=$(agent_cpu "$AGENT"); t1=$(date +%s.%N)
		timeout 90 tail --pid=$cp -f /dev/null
		kill $cp 2>/dev/null; wait $cp 2>/dev/null
		grep -v ready "$TMP/churn.out" | sed 's/^/info: /'
		out=$(awk '/converged [0-9.]+ ms/ { print $3 }' "$TMP/churn.out")
		[ -n "$out" ] && conv=$(awk -v a="$conv" -v b="$out" 'BEGIN { if (a == "" || b + 0 > a + 0) print b; else print a }')
		log "agent CPU during changes$r: $(cpu_share "$c0" "$c1" "$t0" "$t1") cores"
	done
	cs=$(comps); [ -n "$cs" ] && log "agent computations after the changes under load: $cs"
	[ -n "$conv" ] && echo "bench: cp_changes_converged_$tag $conv ms" ||
		log "after $RATE changes/s: convergence not measured or not reached (see above)"
	[ -n "$churn" ] && [ -n "$idle" ] || return
	echo "bench: cp_proxy_p99_idle_$tag $idle ms"
	echo "bench: cp_proxy_p99_changes_$tag $churn ms"
	echo "bench: cp_proxy_p99_under_changes_$tag ratio $(ratio "$churn" "$idle") vs idle"
	log "target ($tag): p99 under $RATE changes/s within 1.5x of idle: $(verdict "$(ratio "$churn" "$idle")" 1.5)"
}

# --- 3. the fleets ------------------------------------------------------------------
FLEET_NO=0
SUMMARY=()
for spec in $FLEETS; do
	IFS=: read -r N C E BIG <<<"$spec"
	BIG=${BIG:-0}
	tag=n${N}_c${C}_e${E}
	[ "$BIG" -gt 0 ] && tag=${tag}_big$BIG
	EXPECT=$((N * C * E + C * BIG))
	FLEET_NO=$((FLEET_NO + 1))
	DIR=$TMP/fleet-$tag
	PIN=/sys/fs/bpf/${P}a$FLEET_NO
	SOCK=$TMP/agent$FLEET_NO.sock
	echo "info: --- fleet $tag: N=$N Ingresses (+$(( (N + 9) / 10 )) weight canaries), C=$C clusters, E=$E endpoints per Service per cluster${BIG:+$([ "$BIG" -gt 0 ] && echo ", one Service with $BIG endpoints in every cluster")}: $EXPECT endpoints"
	out=$(timeout 300 "$TOOL" gen "$DIR" "$N" "$C" "$E" "$BIG") || { log "gen $tag failed: $out"; continue; }
	log "$out"
	extra=
	[ "$EXPECT" -gt 900000 ] && extra="--max-backends $((EXPECT + 65536))"
	T0=$(date +%s.%N)
	# shellcheck disable=SC2086
	nsenter --net="/run/netns/$NS_GW" "$AGENT_BIN" --config-dir "$DIR" --listen "$GW:80" \
		-i "$IF_GC" -i "$IF_GE" -p "$PIN" --admin-socket "$SOCK" $extra $AGENT_ARGS \
		>"$TMP/agent-$tag.log" 2>&1 &
	AGENT=$!
	out=$(timeout -k 5 $((START_TIMEOUT + 30)) "$TOOL" wait "$SOCK" bench-gw "$PIN" "$T0" "$EXPECT" "$START_TIMEOUT" "$AGENT" 2>&1)
	echo "$out" | sed 's/^/info: /'
	LISTEN=$(echo "$out" | awk '/^wait: listening [0-9]/ { print $3 }')
	PROG=$(echo "$out" | awk '/^wait: programmed [0-9]/ { print $3 }')
	if ! kill -0 "$AGENT" 2>/dev/null; then
		log "the agent died: $(tail -5 "$TMP/agent-$tag.log" | tr '\n' ' ')"
		SUMMARY+=("$(printf '%-26s the agent died after %s' "$tag" "$(awk -v t="$T0" -v n="$(date +%s.%N)" 'BEGIN { printf "%.1f s", n - t }')")")
		AGENT=
		rm -rf "$DIR" "$PIN"
		continue
	fi
	[ -n "$LISTEN" ] && echo "bench: cp_listening_$tag $LISTEN s" ||
		log "cp_listening_$tag: not Listening within ${START_TIMEOUT} s"
	[ -n "$PROG" ] && echo "bench: cp_programmed_$tag $PROG s" ||
		log "cp_programmed_$tag: not every backend active within ${START_TIMEOUT} s"
	RSS=$(rss_mib "$AGENT" VmRSS)
	echo "bench: cp_agent_rss_$tag $RSS MiB"
	read -r MM NM <<<"$(map_mem "$AGENT")"
	echo "bench: cp_bpf_map_mem_$tag ${MM:-0} MiB"
	cc=$(comps); [ -n "$cc" ] && log "agent computations after start: $cc"
	log "BPF maps: $NM maps held by the agent (memlock from /proc/PID/fdinfo, each map once); largest: $(top_maps 5)$(timeout 20 "$CTL" -p "$PIN" status 2>/dev/null | grep -iE 'slab' | head -1 | tr -s ' ')"
	p50='' max='' wp50='' wmax=''
	if [ -n "$PROG" ]; then
		out=$(timeout -k 5 $((CHANGES * (CHANGE_TIMEOUT_MS / 1000 + 2) + 120)) "$TOOL" epchange "$DIR" "$PIN" "$N" "$C" "$E" "$BIG" "$CHANGES" "$CHANGE_TIMEOUT_MS" 2>&1)
		echo "$out" | grep -v '^epchange: n ' | sed 's/^/info: /'
		read -r _ _ _ _ p50 _ max _ _ _ to _ <<<"$(echo "$out" | grep '^epchange: n ')"
		if [ -n "${p50:-}" ]; then
			echo "bench: cp_endpoint_change_p50_$tag $p50 ms"
			echo "bench: cp_endpoint_change_max_$tag $max ms"
			[ "${to:-0}" != 0 ] && log "endpoint changes: $to of $CHANGES not seen within $CHANGE_TIMEOUT_MS ms"
		else
			log "endpoint changes: no result"
		fi
		if [ "$BIG" -gt 0 ]; then
			out=$(timeout -k 5 $((CHANGES * (CHANGE_TIMEOUT_MS / 1000 + 2) + 120)) "$TOOL" epchange "$DIR" "$PIN" "$N" "$C" "$E" "$BIG" "$CHANGES" "$CHANGE_TIMEOUT_MS" big 2>&1)
			echo "$out" | grep -v '^epchange: n ' | sed 's/^/info: big Service: /'
			read -r _ _ _ _ bp50 _ bmax _ _ _ _ _ <<<"$(echo "$out" | grep '^epchange: n ')"
			[ -n "${bp50:-}" ] && echo "bench: cp_endpoint_change_big${BIG}_p50_$tag $bp50 ms" &&
				echo "bench: cp_endpoint_change_big${BIG}_max_$tag $bmax ms"
		fi
		cc=$(comps); [ -n "$cc" ] && log "agent computations after the endpoint changes: $cc"
		out=$(timeout -k 5 $((CHANGES * (CHANGE_TIMEOUT_MS / 1000 + 2) + 60)) ip netns exec "$NS_CL" "$TOOL" weight "$DIR" "$N" "$C" "$E" "$BIG" "$GW:80" "$CHANGES" "$CHANGE_TIMEOUT_MS" 2>&1)
		echo "$out" | grep -v '^weight: n ' | sed 's/^/info: /'
		read -r _ _ _ _ wp50 _ wmax _ _ _ _ _ <<<"$(echo "$out" | grep '^weight: n ')"
		cc=$(comps); [ -n "$cc" ] && log "agent computations after the weight edits: $cc"
		if [ -n "${wp50:-}" ]; then
			echo "bench: cp_weight_edit_p50_$tag $wp50 ms"
			echo "bench: cp_weight_edit_max_$tag $wmax ms"
			log "weight edits by direction: $(echo "$out" | awk '/^weight: edit .*-> 100\): [0-9]/ { u[++nu] = $8 } /^weight: edit .*-> 0\): [0-9]/ { d[++nd] = $8 }
				function med(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }; return n ? a[int((n + 1) / 2)] " ms (max " a[n] " ms)" : "none" }
				END { printf "0 -> 100: p50 %s; 100 -> 0: p50 %s", med(u, nu), med(d, nd) }')"
		else
			wmax=
			log "weight edits: no result"
		fi
		if [ "$tag" = n10000_c10_e10 ]; then
			log "targets (N=10,000 C=10 E=10): Listening <= 10 s: $( [ -n "$LISTEN" ] && verdict "$LISTEN" 10 || echo MISSED); RSS <= 512 MiB: $(verdict "$(rss_mib "$AGENT" VmRSS)" 512); endpoint change max <= 50 ms: $( [ -n "${max:-}" ] && verdict "$max" 50 || echo MISSED); weight edit max <= 50 ms: $( [ -n "${wmax:-}" ] && verdict "$wmax" 50 || echo MISSED)"
		fi
		for w in $WRK_FLEETS; do
			[ "$spec" = "$w" ] && wrk_part "$tag" "$DIR" "$N" "$C" "$E" "$BIG"
		done
	else
		log "$tag: changes not measured (the fleet was not programmed)"
		[ "$tag" = n1000_c50_e10_big1000 ] && log "target (N=1,000 C=50 E=10 + one 1,000-endpoint Service per cluster) programmed: MISSED"
	fi
	[ "$tag" = n1000_c50_e10_big1000 ] && [ -n "$PROG" ] && log "target (N=1,000 C=50 E=10 + one 1,000-endpoint Service per cluster) programmed: met ($PROG s)"
	log "after the changes: $(timeout 30 "$TOOL" backends "$PIN" 2>/dev/null) (endpoints that answer probes stay up)"
	PEAK=$(rss_mib "$AGENT" VmHWM)
	echo "bench: cp_agent_rss_peak_$tag $PEAK MiB"
	# Once programmed is early: the proxy's first copy and the prober's
	# schedule come after it. What it holds after every change and edit:
	echo "bench: cp_agent_rss_end_$tag $(rss_mib "$AGENT" VmRSS) MiB"
	SUMMARY+=("$(printf '%-26s %9s %9s %6s %6s %6s %8s %8s %8s %8s' "$tag" "${LISTEN:--}" "${PROG:--}" \
		"${RSS:--}" "${PEAK:--}" "${MM:--}" "${p50:--}" "${max:--}" "${wp50:--}" "${wmax:--}")")
	nw=$(grep -ciE 'warn|error|cannot|rejected' "$TMP/agent-$tag.log")
	[ "$nw" -gt 0 ] && log "agent log: $nw warning lines; last: $(grep -iE 'warn|error|cannot|rejected' "$TMP/agent-$tag.log" | tail -1)"
	stop_agent
	rm -rf "$DIR" "$SOCK"
	log "fleet $tag done at $(( $(date +%s) - T_START )) s, load average $(cut -d' ' -f1-3 /proc/loadavg)"
done
if [ ${#SUMMARY[@]} -gt 0 ]; then
	log "summary: fleet, start -> Listening s, -> programmed s, RSS MiB, peak RSS MiB, BPF maps MiB, endpoint change p50 / max ms, weight edit p50 / max ms"
	for row in "${SUMMARY[@]}"; do log "  $row"; done
fi
log "total $(( $(date +%s) - T_START )) s, load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
exit 0
}

#!/bin/bash
# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#
# fleetgate TLS benchmark (issue 11). Prints `bench: NAME VALUE UNIT` and
# `bench: NAME ratio X.XX vs nginx` lines; `info:` lines explain them.
#
# Two TLS-terminating gateways in turn on the same address
# (10.77.0.1:443), one ECDSA P-256 certificate for example.com generated
# here with openssl and served by both, the same backends behind them:
#
#   fleetgate  build/fleetgate-agent --config-dir --listen 10.77.0.1:80
#              --listen-tls 10.77.0.1:443, its --workers default (the
#              CPUs); the certificate comes from an Ingress `tls:` item and
#              a Secret of type kubernetes.io/tls in the config directory
#              (and is the --default-cert too); Ingress /svc1 pinned to
#              cluster 1, a canary Ingress by header stage: gray to cluster 2
#   nginx      worker_processes auto, listen 443 ssl, ssl_protocols TLSv1.3,
#              ssl_session_cache off, ssl_session_tickets off, proxy_pass to
#              a `map $http_stage` upstream with keep-alive pools
#
#       client 10.77.0.2 --- gc 10.77.0.1 [gw] g1 10.77.1.1 --- c1 10.77.1.2:8080
#   (fg-bench-tls)              (gateway)      g2 10.77.2.1 --- c2 10.77.2.2:8080
#
# The clusters' web servers are nginx instances (plain HTTP, one per
# cluster namespace) serving /svc1/small and /svc1/64m (64 MiB). The client
# is build/bench/fg-bench-tls (OpenSSL 3, TLS 1.3 only, no session ever
# offered); requests carry no stage header, so they go to cluster 1.
#
# Figures, per gateway:
#   handshakes/s  fixed concurrency (BENCH_CONC, 64 connections); each
#                 connection: TCP connect, a full TLS 1.3 handshake (never a
#                 resumption: checked on each), one GET /svc1/small with
#                 Connection: close, read to the server's close, close
#   64 MiB        BENCH_CONC_64M (2) keep-alive TLS connections fetching
#                 /svc1/64m again and again; MiB/s of response body
#   CPU per 1k    utime+stime of every process in the gateway namespace
#   handshakes    during the handshake measurement, per 1,000 handshakes
#   CPU per GiB   the same during the 64 MiB measurement, per GiB of body
#   idle CPU      the same over 3 s with no traffic (fleetgate's health
#                 probes and control plane), included in the two above
# Each is measured BENCH_ROUNDS times (5), interleaved (nginx, fleetgate,
# nginx, ...; each gateway started anew per round); a figure is the median
# of the rounds, and the worst round is printed too. Failures (connect,
# handshake, HTTP, timeouts) are summed over the rounds. The client runs on
# the same CPUs as the gateway and costs more per handshake than the server
# (an ECDSA verify against a sign): handshakes/s is mostly the client's
# limit and moves with other load on the machine; the gateway's CPU per 1k
# handshakes is the steadier figure of what a handshake costs it.
#
# Kernel TLS: the agent probes it at start (docs/operations.md); where the
# kernel has no CONFIG_TLS the figures are without it, and the script says
# so. No kTLS figure is taken under vm-test's qemu (TCG: speeds there mean
# nothing).
#
# Everything it creates (namespaces `fgt<pid>*`, veths, pins under
# /sys/fs/bpf/fgt<pid>, processes, the temp dir) is removed on exit, Ctrl-C
# included; traffic never leaves its namespaces. Bounded by a watchdog
# (BENCH_TIMEOUT, 420 s) that does not hold stdout open.
#
# Knobs (environment): BENCH_SECS (seconds per measurement, 8),
# BENCH_ROUNDS (5), BENCH_THREADS (client threads, 2), BENCH_CONC (64),
# BENCH_CONC_64M (2), BENCH_PEERS (order, default "nginx fleetgate"),
# BENCH_UP_WORKERS (nginx workers per cluster web server, 1), BENCH_FG_ARGS
# (more fleetgate-agent options), BENCH_TIMEOUT, BENCH_KEEP_TMP=1 (keep the
# temp dir: configs, logs), BUILD (build).
#
# The whole script is one { } block: bash parses it before running it, so
# editing this file during a run cannot change the running one.
{
set -u

cd "$(dirname "$0")/.."
ROOT=$(pwd)
# log, die, in_ns, ratio, the topology, the clusters' web servers,
# fg_config, the nginx gateway's config, wait_routes, stop_gateway,
# gw_ticks, exit_cleanup: shared with bench_l7.sh.
# shellcheck source=selftests/bench_lib.sh
. selftests/bench_lib.sh || { echo "bench: FAILED: selftests/bench_lib.sh missing" >&2; exit 1; }
BUILD=${BUILD:-build}
SECS=${BENCH_SECS:-8}
THREADS=${BENCH_THREADS:-2}
CONC=${BENCH_CONC:-64}
CONC_64M=${BENCH_CONC_64M:-2}
PEERS=${BENCH_PEERS:-nginx fleetgate}
UP_WORKERS=${BENCH_UP_WORKERS:-1}
FG_ARGS=${BENCH_FG_ARGS:-}
ROUNDS=${BENCH_ROUNDS:-5}
TIMEOUT=${BENCH_TIMEOUT:-420}
IDLE_SECS=3

P=fgt$$
P=${P:0:11}             # interface names below add <= 2 chars (<= 15)
NS_CL=${P}cl NS_GW=${P}gw NS_C1=${P}c1 NS_C2=${P}c2
IF_CE=${P}ce IF_GC=${P}gc IF_G1=${P}g1 IF_1E=${P}1e IF_G2=${P}g2 IF_2E=${P}2e
PIN=/sys/fs/bpf/$P
GW=10.77.0.1
HOST=example.com
CLUSTER1=c7fb82a1b2c3d4e5f60718293a4b5c6d7
CLUSTER2=c15d48ca9d1fd43f9bbb89c56a474843c
TMP=$(mktemp -d /tmp/fleetgate-bench-tls.XXXXXX)
chmod 755 "$TMP"          # nginx workers run as www-data
PIDS=()
GW_PID=
CLIENT_PID=
WATCHDOG=
HZ=$(getconf CLK_TCK)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"  # for both gateways alike

cleanup() {
	trap - EXIT INT TERM
	[ -n "$CLIENT_PID" ] && kill -TERM "$CLIENT_PID" 2>/dev/null # timeout passes it on
	exit_cleanup
	[ -n "$WATCHDOG" ] && kill "$WATCHDOG" 2>/dev/null
}
trap cleanup EXIT
trap '[ -e "$TMP/watchdog" ] && echo "bench: watchdog: over ${TIMEOUT}s, stopping" >&2 || echo "bench: interrupted" >&2; exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (namespaces, BPF)"
[ -x "$BUILD/fleetgate-agent" ] || die "$BUILD/fleetgate-agent missing: run make"
[ -x "$BUILD/bench/fg-bench-tls" ] || die "$BUILD/bench/fg-bench-tls missing: run make"
for t in nginx openssl curl nsenter base64; do
	command -v $t >/dev/null || die "$t missing (apt-get install nginx openssl curl util-linux coreutils)"
done
# Private copies: a rebuild during the run must not change the binaries.
cp "$BUILD/fleetgate-agent" "$TMP/fleetgate-agent" &&
cp "$BUILD/bench/fg-bench-tls" "$TMP/fg-bench-tls" || die "cannot copy the binaries to $TMP"

# The watchdog holds neither stdout nor stderr (a pipe reading them ends
# with the run, even if the run is killed); our TERM trap says why.
(
	trap 'kill $s 2>/dev/null; exit 0' TERM
	sleep "$TIMEOUT" & s=$!
	wait $s && { : >"$TMP/watchdog"; kill -TERM $$; }
) >/dev/null 2>&1 </dev/null &
WATCHDOG=$!

log "machine: $(nproc) CPUs, kernel $(uname -r), load average $(cut -d' ' -f1-3 /proc/loadavg) at start; the machine is shared (other benchmarks and tests may run at the same time), so absolute figures are noisy: compare the two gateways of this run"
log "versions: $(nginx -v 2>&1 | sed 's/.*: //'), $(openssl version | awk '{ print $1, $2 }'), fleetgate $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo '?')"

# --- the certificate ---------------------------------------------------------------
# One ECDSA P-256 key and self-signed certificate for example.com, served by
# both gateways.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -sha256 \
	-keyout "$TMP/tls.key" -out "$TMP/tls.crt" -days 30 -subj "/CN=$HOST" \
	-addext "subjectAltName=DNS:$HOST" >"$TMP/openssl.log" 2>&1 ||
	die "openssl cannot make the certificate: $(tail -2 "$TMP/openssl.log")"
chmod 644 "$TMP/tls.key"   # nginx's master reads it as root; only our temp dir
CERT_FP=$(openssl x509 -in "$TMP/tls.crt" -noout -fingerprint -sha256 |
	sed 's/.*=//; s/://g' | tr 'A-F' 'a-f' | cut -c1-16)
log "certificate: ECDSA P-256, self-signed, CN=$HOST, SAN DNS:$HOST, SHA-256 $CERT_FP..., the same files for both gateways"

# --- topology ---------------------------------------------------------------
# ns_up, links_up (bench_lib.sh); the links are new for every gateway
# (start_peer: nothing one gateway left attached or learned carries over
# to the other).
ns_up && links_up || die "cannot build the topology"

# --- the clusters' web servers --------------------------------------------------
# up_start, up_wait (bench_lib.sh): nginx on 10.77.N.2:8080, plain HTTP.
head -c $((64 * 1024 * 1024)) /dev/zero | tr '\0' 'b' >"$TMP/64m" || die "cannot write the 64 MiB body"
up_start 1 64m && up_start 2 64m || die "cannot start the clusters' web servers"
for n in 1 2; do
	up_wait "$n" || die "cluster $n's web server does not answer"
done
log "clusters: nginx ($UP_WORKERS worker(s) each, plain HTTP) on 10.77.1.2:8080 and 10.77.2.2:8080, static /svc1/small ($(stat -c %s "$TMP/c1/www/svc1/small") bytes) and /svc1/64m, sendfile"

# --- the gateways ---------------------------------------------------------------
# Each start_* starts one gateway in the gateway namespace, TLS on $GW:443,
# and sets GW_PID (the process to stop; nginx's master).

start_fleetgate() {
	fg_config tls "$HOST" tls || return 1
	# nsenter, not ip netns exec: the agent must see /sys/fs/bpf.
	nsenter --net="/run/netns/$NS_GW" "$TMP/fleetgate-agent" --config-dir "$TMP/fg" \
		--listen $GW:80 --listen-tls $GW:443 \
		--default-cert "$TMP/tls.crt" --default-key "$TMP/tls.key" \
		-i "$IF_GC" -i "$IF_G1" -i "$IF_G2" -p "$PIN" $FG_ARGS \
		2>>"$TMP/agent.log" &
	GW_PID=$!; PIDS+=($GW_PID)
}

start_nginx() {
	local d=$TMP/gw-nginx
	mkdir -p "$d/tmp" || return 1
	nginx_gw_conf "$d" "listen $GW:443 ssl backlog=4096;
		server_name $HOST;
		ssl_certificate $TMP/tls.crt;
		ssl_certificate_key $TMP/tls.key;
		ssl_protocols TLSv1.3;
		ssl_session_cache off;
		ssl_session_tickets off;" "proxy_set_header X-Forwarded-Proto https;" >"$d/nginx.conf" || return 1
	ip netns exec "$NS_GW" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' &
	GW_PID=$!; PIDS+=($GW_PID)
}
# Large responses: buffered in memory, never spooled to a temp file on disk
# (as in bench_l7.sh).
NGINX_BUFFERING="proxy_buffers 16 64k; proxy_buffer_size 16k; proxy_busy_buffers_size 128k; proxy_max_temp_file_size 0;"

# routes_ok: the gateway answers over TLS, plain requests from cluster 1
# and gray ones from cluster 2.
routes_ok() {
	local c="curl -s -k -m 1 --tlsv1.3 --resolve $HOST:443:$GW"
	in_ns "$NS_CL" $c "https://$HOST/svc1/small" 2>/dev/null | grep -q "env cluster1 " &&
	in_ns "$NS_CL" $c -H 'stage: gray' "https://$HOST/svc1/small" 2>/dev/null | grep -q "env cluster2 "
}

# --- measurements ---------------------------------------------------------------
# V[PEER,FIGURE] = the values of the rounds, space-separated.
declare -A V FAIL RESUMED TICKETS DIED CIPHER

# client SECS MODE CONNS PATH: one fg-bench-tls run from the client
# namespace; its "tls:" line in LINE (a zeroed one when it failed). Run in
# the background and waited for: a wait returns at once on Ctrl-C, so the
# trap runs then, not when the client is done (timeout keeps the client
# in its own process group, out of the terminal's reach).
client() {
	timeout -k 3 $(($1 + 20)) ip netns exec "$NS_CL" "$TMP/fg-bench-tls" -m "$2" \
		-t "$1" -c "$3" -T "$THREADS" -s "$HOST" -p "$4" "$GW" 443 >"$TMP/client.out" 2>&1 &
	CLIENT_PID=$!
	wait $CLIENT_PID
	CLIENT_PID=
	LINE=$(grep -m1 '^tls: ' "$TMP/client.out")
	if [ -z "$LINE" ]; then
		log "fg-bench-tls -m $2 failed: $(tail -3 "$TMP/client.out" | tr '\n' ' ')"
		LINE="tls: mode $2 handshakes 0 resumed 0 tickets 0 responses 0 bytes 0 errors_connect 0 errors_handshake 0 errors_http 0 timeouts 0 duration_us 1 hs_p50_us 0 hs_p99_us 0 version - cipher - group - cert_key - cert_sha256 -"
	fi
}

# field LINE NAME: the value after NAME in a "tls:" line.
field() { echo "$1" | awk -v k="$2" '{ for (i = 2; i < NF; i++) if ($i == k) { print $(i + 1); exit } }'; }

# measure PEER: the handshake and the 64 MiB measurements, one round.
measure() {
	local peer=$1 line c0 c1 t hs dur fails rate cpu cores mibs
	c0=$(gw_ticks)
	client "$SECS" handshake "$CONC" /svc1/small
	line=$LINE
	c1=$(gw_ticks)
	t=$((c1 - c0)); [ $t -lt 0 ] && t=0 # the gateway died during the run
	hs=$(field "$line" handshakes)
	dur=$(field "$line" duration_us)
	fails=$(( $(field "$line" errors_connect) + $(field "$line" errors_handshake) + \
		$(field "$line" errors_http) + $(field "$line" timeouts) ))
	rate=$(awk -v n="$hs" -v d="$dur" 'BEGIN { printf "%.0f", n / (d / 1e6) }')
	cpu=$(awk -v t=$t -v hz="$HZ" -v n="$hs" 'BEGIN { if (n > 0) printf "%.3f", t / hz / n * 1000; else print "0" }')
	cores=$(awk -v t=$t -v hz="$HZ" -v d="$dur" 'BEGIN { printf "%.2f", t / hz / (d / 1e6) }')
	V[$peer,hs]+="$rate "
	V[$peer,cpu]+="$cpu "
	FAIL[$peer,hs]=$(( ${FAIL[$peer,hs]:-0} + fails ))
	RESUMED[$peer]=$(( ${RESUMED[$peer]:-0} + $(field "$line" resumed) ))
	TICKETS[$peer]=$(( ${TICKETS[$peer]:-0} + $(field "$line" tickets) ))
	HS_TOTAL[$peer]=$(( ${HS_TOTAL[$peer]:-0} + hs ))
	log "$peer handshakes (round $ROUND): $hs full TLS handshakes in $(awk -v d="$dur" 'BEGIN { printf "%.2f", d / 1e6 }')s = $rate/s ($CONC connections, $THREADS client threads), $(field "$line" responses) responses; handshake p50 $(field "$line" hs_p50_us) us, p99 $(field "$line" hs_p99_us) us (connect to handshake done); failures: connect $(field "$line" errors_connect), handshake $(field "$line" errors_handshake), http $(field "$line" errors_http), timeouts $(field "$line" timeouts); resumed $(field "$line" resumed); session tickets received $(field "$line" tickets); gateway CPU $(awk -v t=$t -v hz="$HZ" 'BEGIN { printf "%.2f", t / hz }')s = $cores cores, $cpu s per 1k handshakes; $(field "$line" version) $(field "$line" cipher) $(field "$line" group), certificate $(field "$line" cert_key) $(field "$line" cert_sha256)"
	[ "$(field "$line" cert_sha256)" = "$CERT_FP" ] ||
		log "$peer: WARNING: the certificate served ($(field "$line" cert_sha256)) is not the one generated ($CERT_FP)"
	[ "$(field "$line" version)" = TLSv1.3 ] ||
		log "$peer: WARNING: the handshakes were $(field "$line" version), not TLSv1.3"
	ensure_gateway "$peer" 64m

	c0=$(gw_ticks)
	client "$SECS" get "$CONC_64M" /svc1/64m
	line=$LINE
	c1=$(gw_ticks)
	t=$((c1 - c0)); [ $t -lt 0 ] && t=0
	dur=$(field "$line" duration_us)
	fails=$(( $(field "$line" errors_connect) + $(field "$line" errors_handshake) + \
		$(field "$line" errors_http) + $(field "$line" timeouts) ))
	mibs=$(awk -v b="$(field "$line" bytes)" -v d="$dur" 'BEGIN { printf "%.1f", b / 1048576 / (d / 1e6) }')
	cpu=$(awk -v t=$t -v hz="$HZ" -v b="$(field "$line" bytes)" \
		'BEGIN { if (b > 0) printf "%.3f", t / hz / (b / 1073741824); else print "0" }')
	V[$peer,64m]+="$mibs "
	V[$peer,cpugib]+="$cpu "
	CIPHER[$peer]="$(field "$line" version) $(field "$line" cipher)"
	FAIL[$peer,64m]=$(( ${FAIL[$peer,64m]:-0} + fails ))
	log "$peer 64 MiB (round $ROUND): $(field "$line" bytes) body bytes in $(awk -v d="$dur" 'BEGIN { printf "%.2f", d / 1e6 }')s = $mibs MiB/s ($CONC_64M keep-alive TLS connections), $(field "$line" responses) complete responses; failures: $fails; gateway CPU $(awk -v t=$t -v hz="$HZ" -v d="$dur" 'BEGIN { printf "%.2f", t / hz / (d / 1e6) }') cores, $cpu s per GiB; $(field "$line" version) $(field "$line" cipher)"
}
declare -A HS_TOTAL

# start_peer PEER: starts it and waits until it routes over TLS (up to 15 s).
START_WAIT=
start_peer() {
	local peer=$1
	links_down
	links_up || die "cannot renew the links"
	case $peer in
	fleetgate) start_fleetgate || die "cannot start fleetgate" ;;
	nginx) start_nginx || die "cannot start nginx" ;;
	*) die "unknown peer $peer (BENCH_PEERS: nginx fleetgate)" ;;
	esac
	wait_routes
	if ! routes_ok; then
		[ "$peer" = fleetgate ] && tail -20 "$TMP/agent.log" >&2
		[ "$peer" = nginx ] && tail -20 "$TMP/gw-nginx/error.log" >&2
		die "$peer does not route over TLS: plain -> cluster1, stage: gray -> cluster2"
	fi
}

# ensure_gateway PEER NEXT: a gateway that died during the previous
# measurement is reported and started again (unless NEXT is "end"), so the
# remaining figures are still taken.
ensure_gateway() {
	local rc
	kill -0 "$GW_PID" 2>/dev/null && return 0
	wait "$GW_PID" 2>/dev/null; rc=$?
	log "$1: WARNING: the gateway (pid $GW_PID) died before \"$2\", exit status $rc$( [ $rc -gt 128 ] && echo " (signal $((rc - 128)))"); restarting it"
	[ "$1" = fleetgate ] && tail -5 "$TMP/agent.log" | sed 's/^/info: agent: /'
	DIED[$1]=$(( ${DIED[$1]:-0} + 1 ))
	GW_PID=
	stop_gateway unpin # an agent that died leaves its links pinned, so attached
	[ "$2" = end ] || start_peer "$1"
}

KTLS_STATE=
run_peer() {
	local peer=$1
	start_peer "$peer"
	case $peer in
	fleetgate) log "fleetgate: fleetgate-agent --listen $GW:80 --listen-tls $GW:443, workers: default ($(nproc), the CPUs), certificate from Ingress tls: + Secret web-demo/example-tls${FG_ARGS:+, $FG_ARGS}; routes ok after ${START_WAIT}s" ;;
	nginx) log "nginx: worker_processes auto ($(($(ip netns pids "$NS_GW" | wc -l) - 1)) workers), listen 443 ssl, ssl_protocols TLSv1.3, ssl_session_cache off, ssl_session_tickets off, keepalive 128 per upstream; routes ok after ${START_WAIT}s" ;;
	esac
	# warm-up: neighbours, upstream pools, caches
	client 1 handshake "$CONC" /svc1/small
	# idle: what the gateway spends with no traffic (fleetgate: health
	# probes, the control plane), inside the CPU figures below
	local c0 c1
	c0=$(gw_ticks); sleep "$IDLE_SECS"; c1=$(gw_ticks)
	V[$peer,idle]+="$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v s="$IDLE_SECS" 'BEGIN { printf "%.3f", t / hz / s }') "
	ensure_gateway "$peer" handshakes
	measure "$peer"
	ensure_gateway "$peer" end
	if [ "$peer" = fleetgate ] && [ -n "$GW_PID" ] && [ -x "$BUILD/fleetgatectl" ]; then
		"$BUILD/fleetgatectl" -p "$PIN" get proxy 2>/dev/null | grep -E '^(TLS|Kernel TLS|Workers)' |
			sed 's/^/info: fleetgate proxy: /'
		[ -n "$KTLS_STATE" ] ||
			KTLS_STATE=$("$BUILD/fleetgatectl" -p "$PIN" get proxy 2>/dev/null | sed -n 's/^Kernel TLS: *//p')
	fi
	stop_gateway unpin # an agent that died leaves its links pinned, so attached
}

log "client: build/bench/fg-bench-tls, TLS 1.3 only, no session offered, no chain verification, ALPN http/1.1, suites offered AES-128-GCM, AES-256-GCM, ChaCha20 (a browser's order), key exchange X25519 (the client's first), $THREADS threads, ${SECS}s per measurement; handshakes: $CONC connections in flight, each a full handshake + GET /svc1/small (Connection: close) + close; 64 MiB: $CONC_64M keep-alive connections fetching /svc1/64m in a loop"
for ROUND in $(seq "$ROUNDS"); do
	log "round $ROUND of $ROUNDS"
	for peer in $PEERS; do
		run_peer "$peer"
	done
done

# --- figures ---------------------------------------------------------------------
# med VALUES / worst VALUES low|high: the median, the worst round.
med() { echo "$1" | tr ' ' '\n' | grep . | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
worst() { echo "$1" | tr ' ' '\n' | grep . | sort -g | { [ "$2" = low ] && head -1 || tail -1; }; }

log "figures: the median of $ROUNDS rounds, and the worst round (_worst); rates and throughput: higher is better; gateway CPU (utime+stime of the gateway namespace's processes) per 1k handshakes (each with its small request) and per GiB of 64 MiB responses: lower is better"
for peer in $PEERS; do
	log "$peer rounds: handshakes/s ${V[$peer,hs]}; 64 MiB MiB/s ${V[$peer,64m]}; CPU s per 1k handshakes ${V[$peer,cpu]}; CPU s per GiB ${V[$peer,cpugib]}; idle CPU (cores, ${IDLE_SECS}s with no traffic before the measurements) ${V[$peer,idle]}"
	echo "bench: tls_hs_per_s_$peer $(med "${V[$peer,hs]}") hs/s"
	echo "bench: tls_hs_per_s_${peer}_worst $(worst "${V[$peer,hs]}" low) hs/s"
	echo "bench: tls_hs_failures_$peer ${FAIL[$peer,hs]:-0} count"
	echo "bench: tls_tput_64m_$peer $(med "${V[$peer,64m]}") MiB/s"
	echo "bench: tls_tput_64m_${peer}_worst $(worst "${V[$peer,64m]}" low) MiB/s"
	echo "bench: tls_tput_64m_failures_$peer ${FAIL[$peer,64m]:-0} count"
	echo "bench: tls_cpu_per_1k_hs_$peer $(med "${V[$peer,cpu]}") s"
	echo "bench: tls_cpu_per_gib_64m_$peer $(med "${V[$peer,cpugib]}") s"
	echo "bench: tls_gateway_deaths_$peer ${DIED[$peer]:-0} count"
	[ "${RESUMED[$peer]:-0}" = 0 ] ||
		log "$peer: WARNING: ${RESUMED[$peer]} resumed handshakes (the client never offers a session)"
	log "$peer: ${HS_TOTAL[$peer]:-0} handshakes, ${RESUMED[$peer]:-0} resumed, $(ratio "${TICKETS[$peer]:-0}" "${HS_TOTAL[$peer]:-0}") session tickets sent per handshake (read and dropped by the client)"
done
if [ -n "$KTLS_STATE" ]; then
	case $KTLS_STATE in
	on*) log "kTLS: the agent put TLS records in the kernel ($KTLS_STATE): fleetgate's figures are with kTLS; nginx's are without (not configured)" ;;
	*) log "kTLS: not available on this kernel ($(uname -r)); the agent says \"$KTLS_STATE\": fleetgate's figures are with TLS records in OpenSSL, like nginx's. No kTLS figure is taken (vm-test's kernels run under qemu TCG, where speeds mean nothing)" ;;
	esac
else
	log "kTLS: the agent's state was not read (no fleetgate run or no fleetgatectl); this kernel: $( [ -d /sys/module/tls ] && echo 'tls module loaded' || echo 'no tls module loaded')"
fi

# --- ratios vs nginx ------------------------------------------------------------
case " $PEERS " in *" nginx "*) ;; *) log "no nginx run: no ratios"; exit 0 ;; esac
case " $PEERS " in *" fleetgate "*) ;; *) log "no fleetgate run: no ratios"; exit 0 ;; esac
hs_r=$(ratio "$(med "${V[fleetgate,hs]}")" "$(med "${V[nginx,hs]}")")
tp_r=$(ratio "$(med "${V[fleetgate,64m]}")" "$(med "${V[nginx,64m]}")")
echo "bench: tls_hs_per_s ratio $hs_r vs nginx"
echo "bench: tls_hs_per_s_worst ratio $(ratio "$(worst "${V[fleetgate,hs]}" low)" "$(worst "${V[nginx,hs]}" low)") vs nginx"
echo "bench: tls_tput_64m ratio $tp_r vs nginx"
echo "bench: tls_tput_64m_worst ratio $(ratio "$(worst "${V[fleetgate,64m]}" low)" "$(worst "${V[nginx,64m]}" low)") vs nginx"
# Paired: round by round (the two gateways of a round ran within half a
# minute of each other, under much the same other load), then the median.
pair_ratios() {
	local a=(${V[fleetgate,$1]}) b=(${V[nginx,$1]}) i
	for i in "${!a[@]}"; do
		[ -n "${b[$i]:-}" ] && printf '%s ' "$(ratio "${a[$i]}" "${b[$i]}")"
	done
}
r_hs=$(pair_ratios hs); r_tp=$(pair_ratios 64m)
echo "bench: tls_hs_per_s_paired ratio $(med "$r_hs" | awk '{ printf "%.2f", $1 }') vs nginx"
echo "bench: tls_tput_64m_paired ratio $(med "$r_tp" | awk '{ printf "%.2f", $1 }') vs nginx"
log "per-round ratios fleetgate / nginx (the _paired figures are their medians): handshakes/s ${r_hs}; 64 MiB ${r_tp}"
echo "bench: tls_cpu_per_1k_hs ratio $(ratio "$(med "${V[fleetgate,cpu]}")" "$(med "${V[nginx,cpu]}")") vs nginx"
echo "bench: tls_cpu_per_gib_64m ratio $(ratio "$(med "${V[fleetgate,cpugib]}")" "$(med "${V[nginx,cpugib]}")") vs nginx"
[ "${CIPHER[fleetgate]:-}" = "${CIPHER[nginx]:-}" ] &&
	log "both gateways negotiated ${CIPHER[nginx]:-?} for the 64 MiB responses" ||
	log "WARNING: the gateways negotiated different suites: fleetgate ${CIPHER[fleetgate]:-?}, nginx ${CIPHER[nginx]:-?}: the throughput ratio compares ciphers too"
# verdict MEDIANS_RATIO PAIRED_RATIO: met when both say >= 1.0, missed when
# both say less, else undecided (the rounds disagree: other load).
verdict() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a >= 1.0 && b >= 1.0) print "met"; else if (a < 1.0 && b < 1.0) print "missed"; else print "undecided (the two ratios disagree)" }'
}
p_hs=$(med "$r_hs" | awk '{ printf "%.2f", $1 }'); p_tp=$(med "$r_tp" | awk '{ printf "%.2f", $1 }')
log "targets (issue 11) >= 1.0x nginx: handshakes/s ${hs_r}x of the medians, ${p_hs}x paired: $(verdict "$hs_r" "$p_hs"); 64 MiB over TLS ${tp_r}x, ${p_tp}x paired: $(verdict "$tp_r" "$p_tp"). The client shares the CPUs with the gateway, so a gateway that costs less leaves the client more; the CPU ratios (fleetgate / nginx, lower is better) say what each handshake and each GiB cost the gateway"
exit 0
}

#!/bin/bash
# fleetgate's first run: the seed's five examples, live, on one machine.
#
# Creates network namespaces for a client, the gateway and two member
# clusters, starts the seed's web-demo pods in each cluster, writes the
# seed's YAML into a config directory, starts fleetgate-agent on it, and
# plays Examples 1 to 5 with the seed's request loops. Removes everything it
# made at the end (also on Ctrl-C), unless run with --keep.
#
#   demo/run.sh            play the examples, then clean up
#   demo/run.sh --keep     play them and leave everything running
#   demo/run.sh --teardown remove what a --keep run left
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
P=fgdemo
STATE=/run/fleetgate-demo
CONFIG=$STATE/config
PIN=/sys/fs/bpf/$P
CLUSTER1=c7fb82a1b2c3d4e5f60718293a4b5c6d7
CLUSTER2=c15d48ca9d1fd43f9bbb89c56a474843c
GW=10.222.0.1
REQUESTS=${REQUESTS:-50}
KEEP=0
# Debian's interpreter directly: a wrapper (pyenv's shim) would not be the
# process whose PID we keep.
PYTHON=${PYTHON:-$(command -v /usr/bin/python3 || command -v python3)}

bold() { printf '\033[1m%s\033[0m\n' "$*"; }
say() { printf '\n\033[1;34m== %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

teardown() {
	local pid
	if [ -f "$STATE/pids" ]; then
		while read -r pid; do
			kill -TERM "$pid" 2>/dev/null
		done < "$STATE/pids"
		sleep 0.5
		while read -r pid; do
			kill -KILL "$pid" 2>/dev/null
		done < "$STATE/pids"
	fi
	for ns in cli gw c1 c2; do
		ip netns del "$P-$ns" 2>/dev/null
	done
	rm -rf "$STATE" "$PIN" "/run/fleetgate/$P.sock"
}

on_exit() {
	local rc=$?
	if [ "$KEEP" = 1 ] && [ "$rc" = 0 ]; then
		return
	fi
	teardown
	[ "$rc" = 0 ] || echo "demo: stopped; everything it made was removed" >&2
}

case "${1:-}" in
--teardown) teardown; echo "demo: removed"; exit 0 ;;
--keep) KEEP=1 ;;
"") ;;
*) die "usage: $0 [--keep|--teardown]" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root (it creates network namespaces and loads XDP)"
for bin in "$BUILD/fleetgate-agent" "$BUILD/fleetgatectl"; do
	[ -x "$bin" ] || die "$bin is missing: run 'make' first"
done
for tool in ip curl python3 nsenter; do
	command -v $tool >/dev/null || die "$tool is missing: run 'make deps'"
done
if ip netns list | grep -q "^$P-"; then
	die "a demo is already set up; remove it with: $0 --teardown"
fi

trap on_exit EXIT
trap 'exit 130' INT TERM

ctl() { "$BUILD/fleetgatectl" -p "$PIN" "$@"; }
in_ns() { local ns=$1; shift; ip netns exec "$P-$ns" "$@"; }
remember() { echo "$1" >> "$STATE/pids"; }

topology() {
	local ns
	mkdir -p "$STATE" "$CONFIG/fleet" "$CONFIG/clusters/$CLUSTER1" "$CONFIG/clusters/$CLUSTER2"
	for ns in cli gw c1 c2; do
		ip netns add "$P-$ns" || return 1
		in_ns $ns ip link set lo up
	done
	# gateway <-> client, gateway <-> each cluster
	ip -n $P-gw link add fgdgc type veth peer name fgdcg netns $P-cli
	ip -n $P-gw link add fgdg1 type veth peer name fgd1g netns $P-c1
	ip -n $P-gw link add fgdg2 type veth peer name fgd2g netns $P-c2
	ip -n $P-gw addr add $GW/24 dev fgdgc
	ip -n $P-gw addr add 10.222.1.1/24 dev fgdg1
	ip -n $P-gw addr add 10.222.2.1/24 dev fgdg2
	ip -n $P-cli addr add 10.222.0.2/24 dev fgdcg
	ip -n $P-c1 addr add 10.222.1.11/24 dev fgd1g
	ip -n $P-c1 addr add 10.222.1.12/24 dev fgd1g
	ip -n $P-c2 addr add 10.222.2.11/24 dev fgd2g
	ip -n $P-c2 addr add 10.222.2.12/24 dev fgd2g
	for l in "gw fgdgc" "gw fgdg1" "gw fgdg2" "cli fgdcg" "c1 fgd1g" "c2 fgd2g"; do
		set -- $l
		ip -n $P-$1 link set "$2" up
	done
	ip -n $P-c1 route add default via 10.222.1.1
	ip -n $P-c2 route add default via 10.222.2.1
	# A frame redirected by XDP into a veth needs GRO (or XDP) on the peer.
	for l in "cli fgdcg" "c1 fgd1g" "c2 fgd2g"; do
		set -- $l
		in_ns $1 ethtool -K "$2" gro on tx off tso off gso off >/dev/null 2>&1
	done
}

# pod NAME CLUSTER-NS ADDR: the seed's web-demo pod (envName NAME)
start_pod() {
	# ip netns exec execs the command: $! is the pod's own PID.
	ip netns exec "$P-$2" "$PYTHON" "$ROOT/demo/web-demo.py" "$1" "$3" 8080 >/dev/null 2>&1 &
	remember $!
	echo $! > "$STATE/pod-$2-$3"
	wait_for "pod $1 at $3" in_ns "$2" curl -s -m 1 -o /dev/null "http://$3:8080/"
}

stop_pod() {
	local f="$STATE/pod-$1-$2"
	[ -f "$f" ] && kill -TERM "$(cat "$f")" 2>/dev/null
	rm -f "$f"
}

# The member cluster's view: Service service1 and an EndpointSlice of its
# ready pods, as the cluster's API would show them.
write_cluster() {
	local id=$1 ns=$2; shift 2
	local dir=$CONFIG/clusters/$id tmp
	tmp=$(mktemp "$dir/.tmp.XXXXXX")
	{
		cat <<YAML
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
  name: service1-$ns
  namespace: web-demo
  labels:
    kubernetes.io/service-name: service1
addressType: IPv4
ports:
- name: http
  port: 8080
endpoints:
YAML
		for addr in "$@"; do
			printf -- '- addresses: ["%s"]\n  conditions: {ready: true}\n' "$addr"
		done
	} > "$tmp"
	mv "$tmp" "$dir/service1.yaml"
}

wait_for() {
	local what=$1 i
	shift
	for i in $(seq 100); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	die "timed out waiting for $what"
}

gateway_listening() { ctl get mseingressconfig ackone-gateway | grep -q Listening; }
all_backends_up() { ctl backends | grep -q " up " && ! ctl backends | grep -q " down "; }

apply() {
	local file=$1
	say "kubectl apply -f $(basename "$file")"
	sed 's/^/    /' "$file"
	cp "$file" "$CONFIG/fleet/$(basename "$file")"
	sleep 0.3
}

# requests PATH [HEADER]: the seed's loop, without the sleep
requests() {
	local path=$1 header=${2:-} i out
	: > "$STATE/answers"
	for i in $(seq "$REQUESTS"); do
		if [ -n "$header" ]; then
			out=$(in_ns cli curl -s -m 2 -H "host: example.com" -H "$header" "http://$GW$path")
		else
			out=$(in_ns cli curl -s -m 2 -H "host: example.com" "http://$GW$path")
		fi
		echo "${out:-<no answer>}" >> "$STATE/answers"
	done
}

show() {
	local n1 n2 other
	head -6 "$STATE/answers" | sed 's/^/    /'
	echo "    ..."
	n1=$(grep -c "env cluster1 " "$STATE/answers")
	n2=$(grep -c "env cluster2 " "$STATE/answers")
	other=$(( REQUESTS - n1 - n2 ))
	printf '    cluster1 %s %d  cluster2 %s %d' "$(bar "$n1")" "$n1" "$(bar "$n2")" "$n2"
	[ "$other" -gt 0 ] && printf '  errors %d' "$other"
	echo
}

bar() { local n=$1 s=""; while [ "$n" -gt 0 ]; do s="$s#"; n=$((n - 5)); done; printf '%s' "$s"; }

example() { echo; bold "Example $1: $2"; }

main() {
	say "Setting up: a client, the gateway and two member clusters ($CLUSTER1, $CLUSTER2)"
	topology || die "cannot create the namespaces"
	: > "$STATE/pids"
	start_pod cluster1 c1 10.222.1.11
	start_pod cluster2 c2 10.222.2.11
	write_cluster $CLUSTER1 c1 10.222.1.11
	write_cluster $CLUSTER2 c2 10.222.2.11
	sed -e "s/^  name: ackone-gateway/  name: ackone-gateway\n  annotations:\n    mse.alibabacloud.com\/remote-clusters: $CLUSTER1,$CLUSTER2/" \
		"$ROOT/demo/manifests/mseingressconfig.yaml" > "$STATE/mseingressconfig.yaml"
	apply "$STATE/mseingressconfig.yaml"

	say "Starting fleetgate-agent"
	# nsenter, not ip netns exec: the agent must see /sys/fs/bpf.
	nsenter --net=/var/run/netns/$P-gw "$BUILD/fleetgate-agent" --config-dir "$CONFIG" \
		--listen $GW:80 --iface fgdgc --iface fgdg1 --iface fgdg2 --pin-path "$PIN" \
		2> "$STATE/agent.log" &
	remember $!
	wait_for "the gateway to listen" gateway_listening
	echo "    \$ fleetgatectl get mseingressconfig ackone-gateway"
	ctl get mseingressconfig ackone-gateway | sed 's/^/    /'
	echo "    \$ fleetgatectl get mseingressconfig ackone-gateway -o json | jq .status.remoteClusters"
	ctl get mseingressconfig ackone-gateway -o json | python3 -c \
		'import json,sys; print("    " + json.dumps(json.load(sys.stdin)["status"]["remoteClusters"]))'

	example 1 "traffic spread over both clusters by pod count"
	apply "$ROOT/demo/manifests/ingress-demo.yaml"
	wait_for "every pod to pass its health checks" all_backends_up
	requests /svc1
	show

	example 2 "all traffic to cluster 1"
	sed "s/\${cluster1-id}/$CLUSTER1/" "$ROOT/demo/manifests/ingress-demo-cluster-one.yaml" \
		> "$STATE/ingress-demo-cluster-one.yaml"
	apply "$STATE/ingress-demo-cluster-one.yaml"
	requests /service1
	show

	example 3 "canary by header: stage: gray goes to cluster 2"
	apply "$ROOT/demo/manifests/ingress-demo-header.yaml"
	requests /service1 "stage: gray"
	show

	example 4 "automatic failover: cluster 2's pods die while gray traffic flows"
	local i out from=""
	for i in $(seq "$REQUESTS"); do
		if [ "$i" = 16 ]; then
			stop_pod c2 10.222.2.11
			echo "    -- request 16: cluster 2's web-demo pod is killed --"
		fi
		out=$(in_ns cli curl -s -m 2 -H "host: example.com" -H "stage: gray" "http://$GW/service1")
		out=${out:-<no answer>}
		if [ "$i" -le 18 ] || [ "$i" -ge $((REQUESTS - 1)) ]; then
			printf '    %2d %s\n' "$i" "$out"
		elif [ "$i" = 19 ]; then
			echo "       ..."
		fi
		[ -z "$from" ] && [ "$i" -ge 16 ] && echo "$out" | grep -q cluster1 && from=$i
	done
	echo "    failover: from request ${from:-?} on, cluster 1 answers the gray traffic"
	ctl get routes | sed 's/^/    /'
	start_pod cluster2 c2 10.222.2.11
	wait_for "cluster 2 to recover" all_backends_up
	echo "    cluster 2's pod is back: gray traffic returns to it"

	example 5 "canary by weight: 10% to cluster 2"
	sed -e "s/\${cluster1-id}/$CLUSTER1/" -e "s/\${cluster2-id}/$CLUSTER2/" \
		"$ROOT/demo/manifests/ingress-weight.yaml" > "$STATE/ingress-weight.yaml"
	apply "$STATE/ingress-weight.yaml"
	requests /svc1-w
	show

	say "The gateway's view"
	echo "    \$ fleetgatectl get clusters"
	ctl get clusters | sed 's/^/    /'
	echo "    \$ fleetgatectl get routes"
	ctl get routes | sed 's/^/    /'
	echo
	echo "    Look at the maps yourself:"
	echo "    bpftool map dump pinned $PIN/backends"
	echo "    $BUILD/fleetgatectl -p $PIN counters"

	if [ "$KEEP" = 1 ]; then
		say "Left running (--keep)"
		echo "    curl from the client:  ip netns exec $P-cli curl -H 'host: example.com' http://$GW/svc1"
		echo "    inspect:               $BUILD/fleetgatectl -p $PIN get routes"
		echo "    agent log:             $STATE/agent.log"
		echo "    config (edit live):    $CONFIG"
		echo "    tear down:             make demo ARGS=--teardown"
	fi
}

main

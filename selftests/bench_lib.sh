# SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
# shellcheck shell=bash
#
# What the benchmarks share, sourced by them. All: the output helpers (log,
# die, ratio), in_ns and the cleanup pieces (term_pids, kill_ns, del_ns).
# The L7 and TLS benchmarks (bench_l7.sh, bench_tls.sh) also: the
# two-cluster topology (namespaces, veths, the clusters' nginx web
# servers), fleetgate's config directory, the nginx gateway's config and
# the gateway's life cycle. Only functions: sourcing it runs nothing.
#
# Those use the caller's variables: TMP, P, PIN, PIDS, GW_PID, START_WAIT,
# UP_WORKERS, NGINX_BUFFERING, CLUSTER1, CLUSTER2, ROOT, NS_CL NS_GW NS_C1
# NS_C2 (namespaces) and IF_CE IF_GC IF_G1 IF_1E IF_G2 IF_2E (veth ends);
# the caller defines routes_ok (its gateway routes, plain -> cluster 1,
# stage: gray -> cluster 2).
#
#       client 10.77.0.2 --- gc 10.77.0.1 [gw] g1 10.77.1.1 --- c1 10.77.1.2:8080
#                               (gateway)      g2 10.77.2.1 --- c2 10.77.2.2:8080

log() { echo "info: $*"; }
die() { echo "bench: FAILED: $*" >&2; exit 1; }
in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "0.00" }'; }

# term_pids PID...: TERM to each, then each reaped.
term_pids() {
	local pid
	for pid in "$@"; do
		kill -TERM "$pid" 2>/dev/null
	done
	for pid in "$@"; do
		wait "$pid" 2>/dev/null
	done
}

# kill_ns NS...: whatever still runs in our namespaces was started by us
# (nginx workers whose master is gone, a client past its timeout, an agent).
kill_ns() {
	local ns pid
	for ns in "$@"; do
		[ -e "/run/netns/$ns" ] || continue
		for pid in $(ip netns pids "$ns" 2>/dev/null); do
			kill -KILL "$pid" 2>/dev/null
		done
	done
}

# del_ns NS...: the namespaces that exist deleted.
del_ns() {
	local ns
	for ns in "$@"; do
		[ -e "/run/netns/$ns" ] && ip netns del "$ns" 2>/dev/null
	done
}

# rm_tmp: the temp dir removed, or kept (BENCH_KEEP_TMP) and said so.
rm_tmp() {
	# shellcheck disable=SC2015 # echo does not fail
	[ -n "${BENCH_KEEP_TMP:-}" ] && echo "info: kept $TMP" >&2 || rm -rf "$TMP"
}

# exit_cleanup: at exit, the processes started (PIDS), whatever is left in
# the four namespaces, the namespaces, the temp dir, the pins and the
# agent's admin socket.
exit_cleanup() {
	term_pids "${PIDS[@]}"
	kill_ns "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"
	del_ns "$NS_CL" "$NS_GW" "$NS_C1" "$NS_C2"
	rm_tmp
	rm -rf "$PIN" "/run/fleetgate/$P.sock"
	release_bpffs
}

# An agent that mounted the BPF file system unmounts it when it leaves
# last; one SIGKILLed (the peers' rounds keep its program attached that
# way) cannot. So, as the agent would: a bpffs marked as fleetgate's
# (fleetgate_mounted) holding nothing but the mark and the kernel's own
# iterator files is unmounted; anyone else's pin keeps it mounted.
release_bpffs() {
	local f
	[ -d /sys/fs/bpf/fleetgate_mounted ] || return 0
	for f in /sys/fs/bpf/* /sys/fs/bpf/.[!.]*; do
		[ -e "$f" ] || continue
		case ${f##*/} in fleetgate_mounted|maps.debug|progs.debug) ;; *) return 0 ;; esac
	done
	rmdir /sys/fs/bpf/fleetgate_mounted 2>/dev/null && umount /sys/fs/bpf 2>/dev/null
	return 0
}

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

# links_down: the three veth pairs deleted (from the gateway's end), if any.
links_down() {
	in_ns "$NS_GW" ip link del "$IF_GC" 2>/dev/null
	in_ns "$NS_GW" ip link del "$IF_G1" 2>/dev/null
	in_ns "$NS_GW" ip link del "$IF_G2" 2>/dev/null
}

# links_up: the three veth pairs, created in their namespaces.
links_up() {
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

# --- the clusters' web servers --------------------------------------------------
# nginx_head DIR WORKERS CONNECTIONS: the start of an nginx config (on
# stdout) whose pid, error log and temp files are under DIR, up to and
# into its http block (the caller writes the rest and closes it).
nginx_head() {
	cat <<EOF
worker_processes $2;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections $3; }
http {
	access_log off;
	client_body_temp_path $1/tmp/body;
	proxy_temp_path $1/tmp/proxy;
	fastcgi_temp_path $1/tmp/fastcgi;
	uwsgi_temp_path $1/tmp/uwsgi;
	scgi_temp_path $1/tmp/scgi;
EOF
}

# up_start [-q] N BODY...: nginx in cluster N's namespace on 10.77.N.2:8080,
# plain HTTP, serving /svc1/small ("This is env clusterN ! Config file is")
# and each BODY ($TMP/BODY, hard-linked as /svc1/BODY); its directory
# $TMP/cN is set up on first use. -q: nginx's stdin, stdout and stderr on
# /dev/null (else the script's).
up_start() {
	local quiet='' n d ns body
	[ "$1" = -q ] && { quiet=1; shift; }
	n=$1 d=$TMP/c$1; shift
	[ "$n" = 1 ] && ns=$NS_C1 || ns=$NS_C2
	if [ ! -e "$d/nginx.conf" ]; then
		mkdir -p "$d/www/svc1" "$d/tmp" || return 1
		printf 'This is env cluster%s ! Config file is\n' "$n" >"$d/www/svc1/small"
		for body in "$@"; do
			ln "$TMP/$body" "$d/www/svc1/$body" || return 1
		done
		{
			nginx_head "$d" "$UP_WORKERS" 4096
			cat <<EOF
	default_type text/plain;
	sendfile on;
	tcp_nopush on;
	tcp_nodelay on;
	keepalive_requests 1000000;
	keepalive_timeout 120s;
	open_file_cache max=16 inactive=600s;
	open_file_cache_valid 600s;
	server {
		listen 8080 backlog=4096; # 10.77.$n.2
		root $d/www;
		location = /status { stub_status; }
	}
}
EOF
		} >"$d/nginx.conf"
	fi
	if [ -n "$quiet" ]; then
		ip netns exec "$ns" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' </dev/null >/dev/null 2>&1 &
	else
		ip netns exec "$ns" nginx -p "$d" -c "$d/nginx.conf" -g 'daemon off;' &
	fi
	PIDS+=("$!")
}

# up_wait N: cluster N's web server answers from the gateway namespace
# (up to 5 s).
up_wait() {
	local n=$1
	for _ in $(seq 50); do
		in_ns "$NS_GW" curl -s -m 1 "http://10.77.$n.2:8080/svc1/small" 2>/dev/null | grep -q "cluster$n " && break
		sleep 0.1
	done
	in_ns "$NS_GW" curl -s -m 1 "http://10.77.$n.2:8080/svc1/small" | grep -q "cluster$n "
}

# --- fleetgate's config directory ---------------------------------------------------
# fg_config NAME HOST [tls]: $TMP/fg, seed-style: the MseIngressConfig of
# demo/manifests with both clusters, Ingress web-demo-NAME (HOST /svc1
# pinned to cluster 1 by subset-labels) and its canary web-demo-NAME-gray
# (header stage: gray, pinned to cluster 2) in fleet/ingress-NAME.yaml;
# clusters/<id>/ Service service1 + EndpointSlice (10.77.N.2:8080). tls:
# the Secret web-demo/example-tls (type kubernetes.io/tls) of
# $TMP/tls.crt and $TMP/tls.key, and a tls: item for HOST with it in the
# first Ingress.
fg_config() {
	local name=$1 host=$2 tls=${3:-} d=$TMP/fg n id
	mkdir -p "$d/fleet" "$d/clusters/$CLUSTER1" "$d/clusters/$CLUSTER2" || return 1
	sed -e "s/^  name: ackone-gateway/  name: ackone-gateway\n  annotations:\n    mse.alibabacloud.com\/remote-clusters: $CLUSTER1,$CLUSTER2/" \
		"$ROOT/demo/manifests/mseingressconfig.yaml" >"$d/fleet/mseingressconfig.yaml" || return 1
	if [ -n "$tls" ]; then
		cat >"$d/fleet/secret-example-tls.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: example-tls
  namespace: web-demo
type: kubernetes.io/tls
data:
  tls.crt: $(base64 -w0 "$TMP/tls.crt")
  tls.key: $(base64 -w0 "$TMP/tls.key")
EOF
	fi
	{
		cat <<EOF
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  annotations:
    mse.ingress.kubernetes.io/service-subset: cluster-demo-1
    mse.ingress.kubernetes.io/subset-labels: |
      topology.istio.io/cluster $CLUSTER1
  name: web-demo-$name
  namespace: web-demo
spec:
  ingressClassName: mse
EOF
		[ -z "$tls" ] || cat <<EOF
  tls:
  - hosts: ["$host"]
    secretName: example-tls
EOF
		cat <<EOF
  rules:
  - host: $host
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
  name: web-demo-$name-gray
  namespace: web-demo
spec:
  ingressClassName: mse
  rules:
  - host: $host
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
	} >"$d/fleet/ingress-$name.yaml"
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

# --- the gateway ------------------------------------------------------------------
# nginx_gw_conf DIR SERVER [LOCATION]: the gateway nginx's config (on
# stdout; pid, logs, temp files under DIR): worker_processes auto,
# keep-alive pools of 128 to the two clusters, `map $http_stage` (gray:
# cluster 2, else cluster 1) for /svc1 with $NGINX_BUFFERING (the
# caller's). SERVER: the server block's lines before `location /svc1`
# (listen, server_name, ...); LOCATION: one more line in that location.
nginx_gw_conf() {
	nginx_head "$1" auto 8192
	cat <<EOF
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
		$2
		location /svc1 {
			proxy_pass http://\$cluster;
			proxy_http_version 1.1;
			proxy_set_header Connection "";
			proxy_set_header Host \$host;
EOF
	[ -z "${3:-}" ] || printf '\t\t\t%s\n' "$3"
	cat <<EOF
			$NGINX_BUFFERING
		}
	}
}
EOF
}

# wait_routes: until routes_ok, or until the gateway (GW_PID) is gone, up
# to 15 s; START_WAIT: the seconds it took (d.d).
wait_routes() {
	local i
	for i in $(seq 150); do
		routes_ok && break
		kill -0 "$GW_PID" 2>/dev/null || break
		sleep 0.1
	done
	# shellcheck disable=SC2034 # the caller's
	START_WAIT=$((i / 10)).$((i % 10))
}

# stop_gateway [unpin]: the gateway's processes (GW_PID, then whatever is
# left in the gateway namespace), gently first; nothing when GW_PID is
# empty. unpin: then the pins removed too (which detaches what a dead agent
# left attached).
# shellcheck disable=SC2120 # the argument is optional
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
	[ "${1:-}" = unpin ] && rm -rf "$PIN"
	true
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

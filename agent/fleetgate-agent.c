// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fleetgate-agent: loads the XDP data plane, pins its maps, attaches it to
 * the gateway's interfaces, keeps the interface addresses and next-hop
 * cache true as the network changes (netlink), and health-checks backends,
 * failing over by rewriting the maps.
 */
#include <errno.h>
#include <sched.h>
#include <getopt.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>

#include "admin.h"
#include "control.h"
#include "dataplane.h"
#include "ha.h"
#include "health.h"
#include "log.h"
#include "accesslog.h"
#include "metrics.h"
#include "netlink.h"
#include "proxy.h"
#include "tls.h"
#include "resources.h"
#include "splice.h"

#define MAX_IFACES 16
#define MAX_SNAT_ADDRS (4 * FG_SNAT_ADDRS) /* --snat-addr, all interfaces together */
#define RESERVED_PORTS "/proc/sys/net/ipv4/ip_local_reserved_ports"

struct agent {
	struct fg_dp_opts dp_opts;
	const char *pin_path;
	const char *ifnames[MAX_IFACES];
	int ifindex[MAX_IFACES];
	int n_ifaces;
	enum fg_xdp_mode xdp_mode;
	struct fg_attach_opts attach;
	struct fg_addr snat_addrs[MAX_SNAT_ADDRS]; /* --snat-addr */
	int snat_families[MAX_SNAT_ADDRS];
	int n_snat_addrs;
	bool keep_pins;
	unsigned int health_interval_ms;
	struct fg_health_opts health_opts;
	const char *config_dir;
	const char *kubeconfig;
	const char *kube_context;
	const char *cluster_kubeconfigs[FG_MAX_CLUSTERS + 1];
	int n_cluster_kubeconfigs;
	bool cluster_secrets;
	const char *listen;
	enum fg_l7_mode l7_mode;
	bool l7_mode_set;
	unsigned max_conns;
	unsigned workers;           /* proxy event loops, 0: the CPUs */
	const char *listen_tls[FG_PROXY_MAX_LISTENERS - 1]; /* --listen-tls */
	unsigned n_listen_tls;
	const char *default_cert, *default_key;
	bool no_ktls;
	char ktls_why[FG_TLS_WHY_LEN + 32];
	unsigned upstream_keepalive;   /* idle per backend and worker, 0: auto */
	unsigned upstream_keepalive_ms;
	unsigned max_conns_per_client;
	unsigned client_body_timeout_ms;
	/* --proxy-{connect,read,send}-timeout (s, 0: the proxy's default)
	 * and --proxy-body-size: what an Ingress's annotations override */
	unsigned proxy_timeout_s[3];
	unsigned long long proxy_body_size;
	bool snat_ports_set;
	const char *admin_path;
	char admin_buf[108];
	char saved_reserved[4096];
	bool reserved_changed;
	/* metrics and access log (metrics.h, accesslog.h) */
	const char *metrics_listen;  /* NULL: the default; "off": none */
	const char *access_log;      /* NULL: none */
	enum fg_access_log_format access_log_format;
	struct fg_metrics *metrics;
	struct fg_metrics_server *msrv;
	struct fg_access_log *alog;
	/* several nodes: BGP, Leases, drain (ha.h) */
	const char *bgp_include;
	const char *bgp_socket;
	const char *bgp_device;
	const char *node_name;
	const char *lease_namespace;
	unsigned lease_duration_s;
	bool no_leases;
	unsigned drain_s;
	bool drain_set;
	char hostname[256];
	struct fg_ha *ha;

	struct fg_dataplane *dp;
	struct fg_nl_monitor *mon;
	struct fg_health *health;
	struct fg_control *control;
	struct fg_proxy *proxy;
	struct fg_admin *admin;
	int epfd, sigfd, timerfd;
};

static void usage(FILE *out)
{
	fprintf(out,
"Usage: fleetgate-agent --config-dir DIR --listen ADDR:PORT --iface IFNAME\n"
"                       [--iface IFNAME ...] [--pin-path PATH] [options]\n"
"\n"
"Loads fleetgate's XDP data plane, pins its maps, attaches it to the gateway\n"
"interfaces and keeps it running: the fleet's objects in the config\n"
"directory become routes in the maps (as they change, without a restart), interface\n"
"addresses and next hops follow netlink, backends are health-checked and\n"
"failed over. Runs in the foreground, logs to stderr, exits cleanly on\n"
"SIGTERM/SIGINT (programs detached, pins removed unless --keep-pins).\n"
"\n"
"Options:\n"
"  -c, --config-dir DIR       the fleet's objects: DIR/fleet/*.yaml|yml|json\n"
"                             (MseIngressConfig, Ingress, Service) and\n"
"                             DIR/clusters/<cluster-id>/*.yaml|yml|json\n"
"                             (Service, Endpoints, EndpointSlice, Pod)\n"
"      --kubeconfig PATH      read the fleet's objects from its Kubernetes API\n"
"                             (list + watch); PATH may be \"in-cluster\"\n"
"      --kube-context NAME    context of that kubeconfig (default: current)\n"
"      --cluster-kubeconfig ID=PATH[#CONTEXT]\n"
"                             read member cluster ID from its API (repeatable)\n"
"      --cluster-secrets      member clusters from fleet Secrets labelled\n"
"                             fleetgate.io/cluster-id (see docs/kubernetes.md)\n"
"  -l, --listen ADDR:PORT     the gateway's address ([ADDR6]:PORT for IPv6):\n"
"                             HTTP on PORT, LoadBalancer Services' ports on\n"
"                             ADDR balanced in XDP\n"
"  -i, --iface IFNAME         attach to this interface (repeatable, required);\n"
"                             both client-facing and cluster-facing ones\n"
"  -p, --pin-path PATH        where maps are pinned (default %s)\n"
"      --l7-mode MODE         how the HTTP proxy moves bodies: auto (default;\n"
"                             splice if its start-up probe passes, else copy),\n"
"                             splice, copy, or sockmap (response bodies\n"
"                             redirected in the kernel, kernel 6.3 or later;\n"
"                             falls back to splice where the probe fails)\n"
"      --admin-socket PATH    fleetgatectl's socket (default\n"
"                             /run/fleetgate/<last part of the pin path>.sock)\n"
"      --attach MODE          how the program is attached to each interface:\n"
"                             auto (default: native XDP on physical NICs, TC\n"
"                             ingress on veth, bridge, vxlan and other virtual\n"
"                             devices, where XDP would cost the stack's\n"
"                             traffic its offloads), xdp, or tc (a tcx link on\n"
"                             kernels >= 6.6, else a cls_bpf filter)\n"
"  -m, --xdp-mode MODE        with XDP: auto (native where the driver has it),\n"
"                             native or generic (default auto)\n"
"      --maglev-size N        slots of the largest backend ring, a prime;\n"
"                             a ring has 32 slots per backend below it\n"
"                             (default %u)\n"
"      --max-services N       route targets and L4 Services at most\n"
"                             (services map; default 65536, 392 bytes each)\n"
"      --max-backends N       endpoints at most (backends map and its\n"
"                             counters; default 1048576, 32 bytes + 16 per CPU)\n"
"      --max-rings N          rings at most (rings map; default 1048576)\n"
"      --ring-slots-max N     the ring slab grows up to N slots of 4 bytes\n"
"                             (default 1073741824)\n"
"      --snat-ports MIN-MAX   source ports used for SNAT toward backends; must\n"
"                             not overlap net.ipv4.ip_local_port_range\n"
"                             (default: every port outside it from 10000:\n"
"                             10000-32767 and 61000-65535 with Linux's\n"
"                             default range)\n"
"      --snat-addr ADDR       a SNAT source address toward the backends\n"
"                             (repeatable; an address of one of the --iface\n"
"                             interfaces). An interface uses those of its\n"
"                             addresses given here, or, when none is, every\n"
"                             address it has (up to %d per family). A closed\n"
"                             connection's port rests 60 s (the backend's\n"
"                             TIME_WAIT) before another client gets it: each\n"
"                             address adds a full port range per backend\n"
"      --max-conns N          HTTP client connections at most (default 10000)\n"
"      --listen-tls ADDR:PORT HTTPS on ADDR:PORT ([ADDR6]:PORT), the same\n"
"                             routes, certificates from the Ingresses' tls:\n"
"                             Secrets by SNI (repeatable, at most 8; needs\n"
"                             --listen)\n"
"      --default-cert FILE, --default-key FILE\n"
"                             PEM certificate (with its chain) and key for\n"
"                             names no Ingress has (default: a generated\n"
"                             self-signed one)\n"
"      --no-ktls              keep TLS records in OpenSSL even where the\n"
"                             kernel could encrypt them (kTLS)\n"
"      --workers N            HTTP proxy event loops, one thread each, one\n"
"                             listener each on the same port (default: the\n"
"                             CPUs, at most 64; sockmap mode runs one)\n"
"      --upstream-keepalive N|auto\n"
"                             idle upstream connections kept per backend and\n"
"                             worker (default auto: as many as were in use at\n"
"                             once in the last minute, at least 32)\n"
"      --upstream-keepalive-timeout MS\n"
"                             an idle upstream connection is closed after MS\n"
"                             (default 30000)\n"
"      --max-conns-per-client N\n"
"                             HTTP client connections from one address at\n"
"                             most (default 1000); more get a 503\n"
"      --client-body-timeout MS\n"
"                             a request body that stalls this long gets a 408\n"
"                             (default 60000)\n"
"      --proxy-connect-timeout S, --proxy-read-timeout S, --proxy-send-timeout S\n"
"                             upstream connect, response and request write\n"
"                             timeouts in seconds (default 2, 60, 60); an\n"
"                             Ingress's proxy-*-timeout annotations override\n"
"      --proxy-body-size SIZE request bodies above SIZE (bytes, or with k, m, g)\n"
"                             get a 413; 0: no limit (default); an Ingress's\n"
"                             proxy-body-size annotation overrides it\n"
"      --health-interval MS   time between backend probes (default 250)\n"
"      --health-timeout MS    a probe's deadline (default 200)\n"
"      --health-fall N        failed probes in a row to mark down (default 2)\n"
"      --health-rise N        passed probes in a row to mark up (default 2)\n"
"      --health-http-path PATH\n"
"                             probe the endpoints of HTTP routes with GET PATH\n"
"                             (2xx/3xx is healthy) instead of a TCP connect\n"
"      --keep-pins            leave the pinned maps (and so the conntrack\n"
"                             table) in place at exit, for a restart\n"
"      --bgp-include PATH     announce the --listen address over BGP through\n"
"                             BIRD 2: write its static routes to PATH (for\n"
"                             BIRD's config to include) and announce them only\n"
"                             while a gateway is Listening with a healthy\n"
"                             cluster (docs/operations.md)\n"
"      --bgp-socket PATH      BIRD's control socket (default /run/bird/bird.ctl)\n"
"      --bgp-device NAME      the device the routes go through, up while\n"
"                             announced (default fleetgate-vip)\n"
"      --drain-seconds N      with --bgp-include, SIGTERM withdraws the VIPs and\n"
"                             keeps serving for up to N s before exiting\n"
"                             (default 10; 0: exit at once)\n"
"      --node-name NAME       this node in Leases (default: the host name)\n"
"      --lease-namespace NS   with --kubeconfig, keep this node's heartbeat\n"
"                             Lease and elect the status writer in NS\n"
"                             (default fleetgate-system)\n"
"      --lease-duration S     Lease duration (default 15; renewed every S/3)\n"
"      --no-leases            with --kubeconfig, no Leases and no status writes\n"
"      --metrics-listen ADDR:PORT\n"
"                             serve Prometheus metrics at GET /metrics there\n"
"                             (default 127.0.0.1:10254; \"off\": none)\n"
"      --access-log PATH|-    one line per HTTP request, appended to PATH or\n"
"                             written to stdout (default: none)\n"
"      --access-log-format FORMAT\n"
"                             combined (nginx's, then upstream, cluster,\n"
"                             canary and times; the default) or json\n"
"  -v, --verbose              debug messages, including libbpf's\n"
"  -h, --help                 this text\n",
		FG_DEFAULT_PIN_PATH, FG_DEFAULT_MAGLEV_SIZE, FG_SNAT_ADDRS);
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_port_range(const char *s, __u16 *min, __u16 *max)
{
	unsigned long a, b;
	char buf[32], *dash;

	if (snprintf(buf, sizeof(buf), "%s", s) >= (int)sizeof(buf))
		return -EINVAL;
	dash = strchr(buf, '-');
	if (!dash)
		return -EINVAL;
	*dash = '\0';
	if (parse_uint(buf, 65535, &a) || parse_uint(dash + 1, 65535, &b) || !a || a > b)
		return -EINVAL;
	*min = a;
	*max = b;
	return 0;
}

enum {
	OPT_MAGLEV = 256,
	OPT_SNAT,
	OPT_H_INTERVAL,
	OPT_H_TIMEOUT,
	OPT_H_FALL,
	OPT_H_RISE,
	OPT_KEEP_PINS,
	OPT_ADMIN,
	OPT_KUBECONFIG,
	OPT_KUBE_CONTEXT,
	OPT_CLUSTER_KUBECONFIG,
	OPT_CLUSTER_SECRETS,
	OPT_H_HTTP_PATH,
	OPT_L7_MODE,
	OPT_MAX_CONNS,
	OPT_WORKERS,
	OPT_LISTEN_TLS,
	OPT_DEFAULT_CERT,
	OPT_DEFAULT_KEY,
	OPT_NO_KTLS,
	OPT_UPSTREAM_KEEPALIVE,
	OPT_UPSTREAM_KEEPALIVE_TIMEOUT,
	OPT_MAX_CONNS_PER_CLIENT,
	OPT_CLIENT_BODY_TIMEOUT,
	OPT_PROXY_CONNECT_TIMEOUT,
	OPT_PROXY_READ_TIMEOUT,
	OPT_PROXY_SEND_TIMEOUT,
	OPT_PROXY_BODY_SIZE,
	OPT_MAX_SERVICES,
	OPT_MAX_BACKENDS,
	OPT_MAX_RINGS,
	OPT_RING_SLOTS_MAX,
	OPT_METRICS_LISTEN,
	OPT_ACCESS_LOG,
	OPT_ACCESS_LOG_FORMAT,
	OPT_BGP_INCLUDE,
	OPT_BGP_SOCKET,
	OPT_BGP_DEVICE,
	OPT_DRAIN_SECONDS,
	OPT_NODE_NAME,
	OPT_LEASE_NAMESPACE,
	OPT_LEASE_DURATION,
	OPT_NO_LEASES,
	OPT_ATTACH,
	OPT_SNAT_ADDR,
};

static int parse_args(struct agent *a, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "iface", required_argument, NULL, 'i' },
		{ "pin-path", required_argument, NULL, 'p' },
		{ "xdp-mode", required_argument, NULL, 'm' },
		{ "attach", required_argument, NULL, OPT_ATTACH },
		{ "snat-addr", required_argument, NULL, OPT_SNAT_ADDR },
		{ "maglev-size", required_argument, NULL, OPT_MAGLEV },
		{ "max-services", required_argument, NULL, OPT_MAX_SERVICES },
		{ "max-backends", required_argument, NULL, OPT_MAX_BACKENDS },
		{ "max-rings", required_argument, NULL, OPT_MAX_RINGS },
		{ "ring-slots-max", required_argument, NULL, OPT_RING_SLOTS_MAX },
		{ "snat-ports", required_argument, NULL, OPT_SNAT },
		{ "health-interval", required_argument, NULL, OPT_H_INTERVAL },
		{ "health-timeout", required_argument, NULL, OPT_H_TIMEOUT },
		{ "health-fall", required_argument, NULL, OPT_H_FALL },
		{ "health-rise", required_argument, NULL, OPT_H_RISE },
		{ "health-http-path", required_argument, NULL, OPT_H_HTTP_PATH },
		{ "l7-mode", required_argument, NULL, OPT_L7_MODE },
		{ "max-conns", required_argument, NULL, OPT_MAX_CONNS },
		{ "workers", required_argument, NULL, OPT_WORKERS },
		{ "listen-tls", required_argument, NULL, OPT_LISTEN_TLS },
		{ "default-cert", required_argument, NULL, OPT_DEFAULT_CERT },
		{ "default-key", required_argument, NULL, OPT_DEFAULT_KEY },
		{ "no-ktls", no_argument, NULL, OPT_NO_KTLS },
		{ "upstream-keepalive", required_argument, NULL, OPT_UPSTREAM_KEEPALIVE },
		{ "upstream-keepalive-timeout", required_argument, NULL,
		  OPT_UPSTREAM_KEEPALIVE_TIMEOUT },
		{ "max-conns-per-client", required_argument, NULL, OPT_MAX_CONNS_PER_CLIENT },
		{ "client-body-timeout", required_argument, NULL, OPT_CLIENT_BODY_TIMEOUT },
		{ "proxy-connect-timeout", required_argument, NULL, OPT_PROXY_CONNECT_TIMEOUT },
		{ "proxy-read-timeout", required_argument, NULL, OPT_PROXY_READ_TIMEOUT },
		{ "proxy-send-timeout", required_argument, NULL, OPT_PROXY_SEND_TIMEOUT },
		{ "proxy-body-size", required_argument, NULL, OPT_PROXY_BODY_SIZE },
		{ "metrics-listen", required_argument, NULL, OPT_METRICS_LISTEN },
		{ "access-log", required_argument, NULL, OPT_ACCESS_LOG },
		{ "access-log-format", required_argument, NULL, OPT_ACCESS_LOG_FORMAT },
		{ "keep-pins", no_argument, NULL, OPT_KEEP_PINS },
		{ "config-dir", required_argument, NULL, 'c' },
		{ "listen", required_argument, NULL, 'l' },
		{ "admin-socket", required_argument, NULL, OPT_ADMIN },
		{ "kubeconfig", required_argument, NULL, OPT_KUBECONFIG },
		{ "kube-context", required_argument, NULL, OPT_KUBE_CONTEXT },
		{ "cluster-kubeconfig", required_argument, NULL, OPT_CLUSTER_KUBECONFIG },
		{ "cluster-secrets", no_argument, NULL, OPT_CLUSTER_SECRETS },
		{ "bgp-include", required_argument, NULL, OPT_BGP_INCLUDE },
		{ "bgp-socket", required_argument, NULL, OPT_BGP_SOCKET },
		{ "bgp-device", required_argument, NULL, OPT_BGP_DEVICE },
		{ "drain-seconds", required_argument, NULL, OPT_DRAIN_SECONDS },
		{ "node-name", required_argument, NULL, OPT_NODE_NAME },
		{ "lease-namespace", required_argument, NULL, OPT_LEASE_NAMESPACE },
		{ "lease-duration", required_argument, NULL, OPT_LEASE_DURATION },
		{ "no-leases", no_argument, NULL, OPT_NO_LEASES },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	unsigned long v;
	int c;

	while ((c = getopt_long(argc, argv, "i:p:m:c:l:vh", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			if (a->n_ifaces == MAX_IFACES) {
				pr_warn("at most %d --iface\n", MAX_IFACES);
				return -E2BIG;
			}
			a->ifnames[a->n_ifaces++] = optarg;
			break;
		case 'p':
			a->pin_path = optarg;
			break;
		case 'm':
			if (!strcmp(optarg, "auto"))
				a->xdp_mode = FG_XDP_AUTO;
			else if (!strcmp(optarg, "native"))
				a->xdp_mode = FG_XDP_NATIVE;
			else if (!strcmp(optarg, "generic"))
				a->xdp_mode = FG_XDP_GENERIC;
			else
				goto bad;
			break;
		case OPT_ATTACH:
			if (fg_attach_want_parse(optarg, &a->attach.want)) {
				pr_warn("invalid --attach '%s' (auto, xdp, tc)\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_SNAT_ADDR: {
			int family;

			if (a->n_snat_addrs == MAX_SNAT_ADDRS) {
				pr_warn("at most %d --snat-addr\n", MAX_SNAT_ADDRS);
				return -E2BIG;
			}
			if (fg_addr_parse(optarg, &a->snat_addrs[a->n_snat_addrs], &family)) {
				pr_warn("invalid --snat-addr '%s': an IPv4 or IPv6 address\n", optarg);
				return -EINVAL;
			}
			a->snat_families[a->n_snat_addrs++] = family;
			break;
		}
		case OPT_MAX_SERVICES:
			if (parse_uint(optarg, 1U << 24, &v) || v < 16)
				goto bad;
			a->dp_opts.max_services = v;
			break;
		case OPT_MAX_BACKENDS:
			if (parse_uint(optarg, 1U << 26, &v) || v < 16)
				goto bad;
			a->dp_opts.max_backends = v;
			break;
		case OPT_MAX_RINGS:
			if (parse_uint(optarg, 1U << 26, &v) || v < 16)
				goto bad;
			a->dp_opts.max_rings = v;
			break;
		case OPT_RING_SLOTS_MAX:
			if (parse_uint(optarg, FG_MAX_RING_SLOTS, &v) || v < FG_DEF_RING_SLOTS)
				goto bad;
			a->dp_opts.ring_slots_max = v;
			break;
		case OPT_MAGLEV:
			if (parse_uint(optarg, 1 << 24, &v))
				goto bad;
			a->dp_opts.maglev_size = v;
			break;
		case OPT_SNAT:
			if (parse_port_range(optarg, &a->dp_opts.snat_port_min,
					     &a->dp_opts.snat_port_max))
				goto bad;
			a->snat_ports_set = true;
			break;
		case OPT_MAX_CONNS:
			if (parse_uint(optarg, 10000000, &v) || !v)
				goto bad;
			a->max_conns = v;
			break;
		case OPT_LISTEN_TLS:
			if (a->n_listen_tls == FG_PROXY_MAX_LISTENERS - 1) {
				pr_warn("at most %d --listen-tls\n", FG_PROXY_MAX_LISTENERS - 1);
				return -EINVAL;
			}
			a->listen_tls[a->n_listen_tls++] = optarg;
			break;
		case OPT_DEFAULT_CERT:
			a->default_cert = optarg;
			break;
		case OPT_DEFAULT_KEY:
			a->default_key = optarg;
			break;
		case OPT_NO_KTLS:
			a->no_ktls = true;
			break;
		case OPT_WORKERS:
			if (parse_uint(optarg, FG_PROXY_MAX_WORKERS, &v) || !v)
				goto bad;
			a->workers = v;
			break;
		case OPT_UPSTREAM_KEEPALIVE:
			if (!strcmp(optarg, "auto"))
				v = 0;
			else if (parse_uint(optarg, 1000000, &v))
				goto bad;
			a->upstream_keepalive = v;
			break;
		case OPT_UPSTREAM_KEEPALIVE_TIMEOUT:
			if (parse_uint(optarg, 3600000, &v) || v < 100)
				goto bad;
			a->upstream_keepalive_ms = v;
			break;
		case OPT_MAX_CONNS_PER_CLIENT:
			if (parse_uint(optarg, 10000000, &v) || !v)
				goto bad;
			a->max_conns_per_client = v;
			break;
		case OPT_CLIENT_BODY_TIMEOUT:
			if (parse_uint(optarg, 3600000, &v) || v < 100)
				goto bad;
			a->client_body_timeout_ms = v;
			break;
		case OPT_PROXY_CONNECT_TIMEOUT:
		case OPT_PROXY_READ_TIMEOUT:
		case OPT_PROXY_SEND_TIMEOUT:
			if (parse_uint(optarg, UINT_MAX / 1000, &v) || !v)
				goto bad;
			a->proxy_timeout_s[c - OPT_PROXY_CONNECT_TIMEOUT] = v;
			break;
		case OPT_PROXY_BODY_SIZE:
			if (fg_size_parse(optarg, &a->proxy_body_size))
				goto bad;
			break;
		case OPT_METRICS_LISTEN:
			if (strcmp(optarg, "off") && fg_metrics_listen_check(optarg))
				goto bad;
			a->metrics_listen = optarg;
			break;
		case OPT_ACCESS_LOG:
			if (!optarg[0])
				goto bad;
			a->access_log = optarg;
			break;
		case OPT_ACCESS_LOG_FORMAT:
			if (fg_access_log_format_parse(optarg, &a->access_log_format)) {
				pr_warn("invalid --access-log-format '%s' (combined, json)\n", optarg);
				return -EINVAL;
			}
			break;
		case OPT_H_INTERVAL:
			if (parse_uint(optarg, 3600000, &v) || v < 10)
				goto bad;
			a->health_interval_ms = v;
			break;
		case OPT_H_TIMEOUT:
			if (parse_uint(optarg, 60000, &v) || !v)
				goto bad;
			a->health_opts.timeout_ms = v;
			break;
		case OPT_H_FALL:
			if (parse_uint(optarg, 1000, &v) || !v)
				goto bad;
			a->health_opts.fall = v;
			break;
		case OPT_L7_MODE:
			if (fg_l7_mode_parse(optarg, &a->l7_mode)) {
				pr_warn("invalid --l7-mode '%s' (auto, splice, copy, sockmap)\n", optarg);
				return -EINVAL;
			}
			a->l7_mode_set = true;
			break;
		case OPT_H_HTTP_PATH:
			if (optarg[0] != '/' || strpbrk(optarg, " \r\n")) {
				pr_warn("invalid value '%s' for --health-http-path: a path starting with '/'\n",
					optarg);
				return -EINVAL;
			}
			a->health_opts.http_path = optarg;
			break;
		case OPT_H_RISE:
			if (parse_uint(optarg, 1000, &v) || !v)
				goto bad;
			a->health_opts.rise = v;
			break;
		case OPT_KEEP_PINS:
			a->keep_pins = true;
			break;
		case 'c':
			a->config_dir = optarg;
			break;
		case 'l':
			a->listen = optarg;
			break;
		case OPT_ADMIN:
			a->admin_path = optarg;
			break;
		case OPT_KUBECONFIG:
			a->kubeconfig = optarg;
			break;
		case OPT_KUBE_CONTEXT:
			a->kube_context = optarg;
			break;
		case OPT_CLUSTER_KUBECONFIG:
			if (a->n_cluster_kubeconfigs == FG_MAX_CLUSTERS) {
				pr_warn("at most %d --cluster-kubeconfig\n", FG_MAX_CLUSTERS);
				return -E2BIG;
			}
			a->cluster_kubeconfigs[a->n_cluster_kubeconfigs++] = optarg;
			break;
		case OPT_CLUSTER_SECRETS:
			a->cluster_secrets = true;
			break;
		case OPT_BGP_INCLUDE:
			a->bgp_include = optarg;
			break;
		case OPT_BGP_SOCKET:
			a->bgp_socket = optarg;
			break;
		case OPT_BGP_DEVICE:
			a->bgp_device = optarg;
			break;
		case OPT_DRAIN_SECONDS:
			if (parse_uint(optarg, 3600, &v))
				goto bad;
			a->drain_s = v;
			a->drain_set = true;
			break;
		case OPT_NODE_NAME:
			a->node_name = optarg;
			break;
		case OPT_LEASE_NAMESPACE:
			a->lease_namespace = optarg;
			break;
		case OPT_LEASE_DURATION:
			if (parse_uint(optarg, 3600, &v) || v < 1)
				goto bad;
			a->lease_duration_s = v;
			break;
		case OPT_NO_LEASES:
			a->no_leases = true;
			break;
		case 'v':
			fg_log_set_level(FG_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		pr_warn("unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	if (!a->n_ifaces) {
		pr_warn("at least one --iface is required\n");
		usage(stderr);
		return -EINVAL;
	}
	if (a->bgp_include && !a->listen) {
		pr_warn("--bgp-include needs --listen: the address to announce\n");
		return -EINVAL;
	}
	return 0;
bad:
	for (v = 0; opts[v].name && opts[v].val != c; v++)
		;
	pr_warn("invalid value '%s' for --%s\n", optarg, opts[v].name ? opts[v].name : "?");
	return -EINVAL;
}

static int write_file(const char *path, const char *val)
{
	FILE *f = fopen(path, "w");
	int err = 0;

	if (!f)
		return -errno;
	if (fputs(val, f) < 0)
		err = -EIO;
	if (fclose(f) && !err)
		err = -errno;
	return err;
}

static int read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return 0;
}

/* A router: forwarding on, and accept_local so a packet NATed to the
 * gateway's own address can be forwarded by the stack while a neighbour is
 * being resolved (see FG_R_FIB_NO_NEIGH). */
static void iface_sysctls(const char *ifname)
{
	static const char *const knobs[] = {
		"/proc/sys/net/ipv4/conf/%s/forwarding",
		"/proc/sys/net/ipv4/conf/%s/accept_local",
		"/proc/sys/net/ipv6/conf/%s/forwarding",
	};
	char path[PATH_MAX];
	size_t i;
	int err;

	for (i = 0; i < sizeof(knobs) / sizeof(knobs[0]); i++) {
		snprintf(path, sizeof(path), knobs[i], ifname);
		err = write_file(path, "1");
		if (err)
			pr_warn("cannot set %s: %s\n", path, strerror(-err));
	}
}

/*
 * The SNAT ports must never be ports the gateway's own sockets (health
 * probes, the proxy's upstream connections, the Kubernetes client) take
 * from the local range: the XDP program would take their replies. Without
 * --snat-ports the agent takes every port outside ip_local_port_range from
 * FG_SNAT_LOWEST (two ranges); an overlapping --snat-ports is refused.
 */
static int choose_snat_ports(struct agent *a)
{
	__u16 lmin, lmax;
	int err;

	err = fg_local_port_range(&lmin, &lmax);
	if (err) {
		pr_warn("cannot read net.ipv4.ip_local_port_range: %s\n", strerror(-err));
		return err;
	}
	if (a->snat_ports_set) {
		if (a->dp_opts.snat_port_min <= lmax && lmin <= a->dp_opts.snat_port_max) {
			pr_warn("--snat-ports %u-%u overlaps the gateway's own local port range "
				"%u-%u (net.ipv4.ip_local_port_range): its health probes and "
				"upstream connections would run out of ports or lose replies to "
				"SNAT; choose ports outside %u-%u, or narrow the local range "
				"(sysctl -w net.ipv4.ip_local_port_range=\"LOW HIGH\")\n",
				a->dp_opts.snat_port_min, a->dp_opts.snat_port_max, lmin, lmax,
				lmin, lmax);
			return -EINVAL;
		}
		return 0;
	}
	err = fg_snat_default_ranges(lmin, lmax, &a->dp_opts.snat_port_min,
				     &a->dp_opts.snat_port_max, &a->dp_opts.snat_port2_min,
				     &a->dp_opts.snat_port2_max);
	if (err) {
		pr_warn("the local port range %u-%u (net.ipv4.ip_local_port_range) leaves fewer "
			"than %u ports from %u for SNAT: give --snat-ports outside it, or narrow it\n",
			lmin, lmax, FG_SNAT_MIN_PORTS, FG_SNAT_LOWEST);
		return err;
	}
	if (a->dp_opts.snat_port2_min)
		pr_info("SNAT ports %u-%u and %u-%u (outside the local port range %u-%u)\n",
			a->dp_opts.snat_port_min, a->dp_opts.snat_port_max,
			a->dp_opts.snat_port2_min, a->dp_opts.snat_port2_max, lmin, lmax);
	else
		pr_info("SNAT ports %u-%u (outside the local port range %u-%u)\n",
			a->dp_opts.snat_port_min, a->dp_opts.snat_port_max, lmin, lmax);
	return 0;
}

/* The SNAT range is outside the local range; reserving it as well keeps
 * it free of the stack's ephemeral ports should the local range be
 * widened while the agent runs. */
static void reserve_snat_ports(struct agent *a)
{
	__u16 min = a->dp_opts.snat_port_min, max = a->dp_opts.snat_port_max;
	char val[4200];
	int err;

	err = read_file(RESERVED_PORTS, a->saved_reserved, sizeof(a->saved_reserved));
	if (err) {
		pr_warn("cannot read %s: %s; SNAT ports are not reserved\n", RESERVED_PORTS,
			strerror(-err));
		return;
	}
	if (a->dp_opts.snat_port2_min)
		snprintf(val, sizeof(val), "%s%s%u-%u,%u-%u", a->saved_reserved,
			 a->saved_reserved[0] ? "," : "", min, max, a->dp_opts.snat_port2_min,
			 a->dp_opts.snat_port2_max);
	else
		snprintf(val, sizeof(val), "%s%s%u-%u", a->saved_reserved,
			 a->saved_reserved[0] ? "," : "", min, max);
	err = write_file(RESERVED_PORTS, val);
	if (err) {
		pr_warn("cannot reserve SNAT ports %u-%u in %s: %s\n", min, max,
			RESERVED_PORTS, strerror(-err));
		return;
	}
	a->reserved_changed = true;
}

/*
 * Started by hand, the agent has the shell's soft file limit (1024 on
 * Debian): far below what its connections need. The hard limit is the
 * ceiling an unprivileged raise may reach; what the settings need beyond
 * it is said once, with the fix.
 */
static void raise_file_limit(struct agent *a)
{
	unsigned conns = a->max_conns ? a->max_conns : 10000;
	__u64 soft = 0, hard = 0, need;
	int err;

	err = fg_raise_nofile(&soft, &hard);
	if (err)
		pr_warn("cannot raise the soft file limit to the hard limit %llu: %s\n",
			(unsigned long long)hard, strerror(-err));
	else
		pr_debug("file limit: %llu open files (the hard limit)\n", (unsigned long long)soft);
	/* Two per HTTP connection (client, upstream), the probes in flight,
	 * and room for maps, watches and the admin socket. */
	need = 2ULL * (a->listen ? conns : 0) + FG_HEALTH_DEF_MAX_INFLIGHT + 64 + 256;
	if (soft < need)
		pr_warn("the file limit is %llu open files (hard limit %llu) but --max-conns %u "
			"needs about %llu (2 per HTTP connection + %u health probes + 320 for the "
			"rest): the proxy will refuse clients beyond its share; raise it (ulimit -n "
			"%llu, LimitNOFILE=%llu in a systemd unit) or lower --max-conns\n",
			(unsigned long long)soft, (unsigned long long)hard, conns,
			(unsigned long long)need, FG_HEALTH_DEF_MAX_INFLIGHT,
			(unsigned long long)need, (unsigned long long)need);
}

static void restore_reserved_ports(struct agent *a)
{
	int err;

	if (!a->reserved_changed)
		return;
	err = write_file(RESERVED_PORTS, a->saved_reserved[0] ? a->saved_reserved : "\n");
	if (err)
		pr_warn("cannot restore %s: %s\n", RESERVED_PORTS, strerror(-err));
}

static int refresh_iface(struct agent *a, int i)
{
	struct fg_iface ifc = {};
	int err;

	/* --snat-addr: only those of its addresses, if it has any of them. */
	err = fg_nl_iface_addrs_pick(a->ifindex[i], &ifc, a->snat_addrs, a->snat_families,
				     a->n_snat_addrs);
	if (err)
		return err;
	snprintf(ifc.name, sizeof(ifc.name), "%s", a->ifnames[i]);
	err = fg_dp_set_iface(a->dp, a->ifindex[i], &ifc);
	if (err)
		pr_warn("cannot write addresses of %s to the ifaces map: %s\n", a->ifnames[i],
			strerror(-err));
	return err;
}

/* Every --snat-addr must be an address of one of the interfaces: the
 * backends' replies to it must reach the gateway. */
static int check_snat_addrs(struct agent *a)
{
	struct fg_iface ifc;
	char buf[INET6_ADDRSTRLEN];
	int i, k, j, n;

	for (k = 0; k < a->n_snat_addrs; k++) {
		bool found = false;

		for (i = 0; i < a->n_ifaces && !found; i++) {
			/* Only this one wanted: it is picked iff the interface has it. */
			if (fg_nl_iface_addrs_pick(a->ifindex[i], &ifc, &a->snat_addrs[k],
						   &a->snat_families[k], 1))
				continue;
			n = a->snat_families[k] == FG_AF_INET ? ifc.n_v4 : ifc.n_v6;
			for (j = 0; j < n && !found; j++)
				found = !memcmp(a->snat_families[k] == FG_AF_INET ? &ifc.v4[j]
										  : &ifc.v6[j],
						&a->snat_addrs[k], sizeof(struct fg_addr));
		}
		if (!found) {
			pr_warn("--snat-addr %s is not a usable address of any --iface (global "
				"scope, not tentative or deprecated): the backends' replies to it "
				"would not reach the gateway; add it first (ip addr add %s/PREFIX "
				"dev IFNAME)\n",
				fg_addr_str(&a->snat_addrs[k], a->snat_families[k], buf, sizeof(buf)),
				buf);
			return -EADDRNOTAVAIL;
		}
	}
	return 0;
}

/* The interfaces exist, and every --snat-addr is on one of them: checked
 * before anything is loaded or pinned. */
static int check_ifaces(struct agent *a)
{
	int i;

	for (i = 0; i < a->n_ifaces; i++) {
		a->ifindex[i] = fg_nl_ifindex(a->ifnames[i]);
		if (a->ifindex[i] < 0) {
			pr_warn("no interface %s: %s\n", a->ifnames[i], strerror(-a->ifindex[i]));
			return a->ifindex[i];
		}
	}
	return check_snat_addrs(a);
}

static int attach_ifaces(struct agent *a)
{
	struct fg_attach_info got;
	int i, err;

	a->attach.xdp_mode = a->xdp_mode;
	for (i = 0; i < a->n_ifaces; i++) {
		iface_sysctls(a->ifnames[i]);
		err = fg_dp_attach(a->dp, a->ifindex[i], &a->attach, &got);
		if (err)
			return err;
		pr_info("attached to %s (ifindex %d): %s (%s)%s\n", a->ifnames[i], a->ifindex[i],
			fg_attach_name(got.mode), got.why, got.adopted ? ", adopted" : "");
		/* After the attach: the ifaces entry records the mode. */
		err = refresh_iface(a, i);
		if (err)
			return err;
	}
	return 0;
}

static int iface_slot(const struct agent *a, int ifindex)
{
	int i;

	for (i = 0; i < a->n_ifaces; i++)
		if (a->ifindex[i] == ifindex)
			return i;
	return -1;
}

static int on_netlink(const struct fg_nl_event *ev, void *ctx)
{
	struct agent *a = ctx;
	int i;

	pr_debug("netlink: %s ifindex %d\n", fg_nl_event_name(ev->type), ev->ifindex);
	switch (ev->type) {
	case FG_NL_EV_ADDR_ADD:
	case FG_NL_EV_ADDR_DEL:
		i = iface_slot(a, ev->ifindex);
		if (i >= 0)
			refresh_iface(a, i);
		break;
	case FG_NL_EV_RESYNC:
		for (i = 0; i < a->n_ifaces; i++)
			refresh_iface(a, i);
		break;
	default:
		break;
	}
	/* Any link, address, neighbour change may move a next hop: cached
	 * ones are dropped, the next packet of each flow looks again. */
	fg_dp_bump_fib_gen(a->dp);
	return 0;
}

/* The admin socket: the HTTP proxy's state here, the rest from the
 * control plane. */
static json_t *admin_request(json_t *request, void *ctx)
{
	struct agent *a = ctx;
	const char *get = json_string_value(json_object_get(request, "get"));

	if (get && !strcmp(get, "proxy")) {
		if (!a->proxy)
			return json_pack("{s:b, s:s}", "ok", 0, "error",
					 "no HTTP listener (the agent runs without --listen)");
		json_t *st = fg_proxy_stats(a->proxy);

		/* The prober's local errors sit with the proxy's: both are the
		 * gateway's own, never a backend's. */
		if (st && a->health)
			json_object_set_new(st, "health", fg_health_stats(a->health));
		if (st && json_object_get(st, "tls"))
			json_object_set_new(json_object_get(st, "tls"), "kernel",
					    json_string(a->ktls_why));
		return json_pack("{s:b, s:o}", "ok", 1, "items", json_pack("[o]", st));
	}
	{
		json_t *ans = fg_control_admin(request, a->control);

		fg_ha_admin(a->ha, request, ans); /* REPLICAS, BGP and Lease state */
		return ans;
	}
}

/* Start-up's steps with -v: how long each took (wall and CPU) and the
 * memory held after it, so a slow or fat start says where. */
static void start_stage(const char *what)
{
	static struct timespec wall0, cpu0;
	struct timespec wall, cpu;
	long rss_pages = 0;
	FILE *f;

	if (fg_log_get_level() < FG_LOG_DEBUG)
		return;
	clock_gettime(CLOCK_MONOTONIC, &wall);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	f = fopen("/proc/self/statm", "r");
	if (f) {
		if (fscanf(f, "%*d %ld", &rss_pages) != 1)
			rss_pages = 0;
		fclose(f);
	}
	if (what) {
		/* In use vs. held by malloc: what a smaller structure would
		 * save, and what fragmentation costs. */
		struct mallinfo2 mi = mallinfo2();

		pr_debug("start: %s: %.1f ms (%.1f ms CPU), RSS %ld MiB (heap: %zu MiB in use, %zu MiB free, %zu MiB mapped)\n",
			 what,
			 (wall.tv_sec - wall0.tv_sec) * 1e3 + (wall.tv_nsec - wall0.tv_nsec) / 1e6,
			 (cpu.tv_sec - cpu0.tv_sec) * 1e3 + (cpu.tv_nsec - cpu0.tv_nsec) / 1e6,
			 rss_pages * sysconf(_SC_PAGESIZE) >> 20, mi.uordblks >> 20,
			 mi.fordblks >> 20, mi.hblkhd >> 20);
	}
	wall0 = wall;
	cpu0 = cpu;
}

static int start_control(struct agent *a)
{
	struct fg_control_opts copts = {
		.config_dir = a->config_dir,
		.listen = a->listen,
		.kubeconfig = a->kubeconfig,
		.kube_context = a->kube_context,
		.cluster_kubeconfigs = a->cluster_kubeconfigs,
		.cluster_secrets = a->cluster_secrets,
		.default_cert = a->default_cert,
		.default_key = a->default_key,
	};
	int err;

	err = fg_control_new(&a->control, a->dp, &copts);
	if (err)
		return err;
	start_stage("configuration read");
	fg_control_set_state(a->control, true, false);
	err = fg_control_recompute(a->control);
	if (err)
		pr_warn("initial routes not applied: %s\n", strerror(-err));
	start_stage("first plan computed and applied");
	if (!a->admin_path) {
		err = fg_admin_socket_path(a->pin_path, a->admin_buf, sizeof(a->admin_buf));
		if (err)
			return err;
		a->admin_path = a->admin_buf;
	}
	err = fg_admin_open(&a->admin, a->admin_path, admin_request, a);
	if (err)
		pr_warn("cannot open the admin socket %s: %s\n", a->admin_path, strerror(-err));
	return err;
}

/* Several nodes (ha.h): BGP announcements with --bgp-include, Leases with
 * --kubeconfig (unless --no-leases). Nothing to do for one node alone. */
static int start_ha(struct agent *a)
{
	struct fg_ha_opts o = {
		.bgp_include = a->bgp_include,
		.bgp_socket = a->bgp_socket,
		.bgp_device = a->bgp_device,
		.kubeconfig = a->kubeconfig && strcmp(a->kubeconfig, "in-cluster") ? a->kubeconfig
										    : NULL,
		.kube_context = a->kube_context,
		.lease_namespace = a->lease_namespace,
		.lease_duration_s = a->lease_duration_s,
		.listen = a->listen,
		.ifindex = a->ifindex,
		.ifnames = a->ifnames,
		.n_ifaces = a->n_ifaces,
		.hold_ms = a->health_interval_ms * ((a->health_opts.fall ? a->health_opts.fall : 2) + 1),
		.drain_s = a->drain_s,
	};
	bool leases = a->kubeconfig && !a->no_leases;

	if (leases && !a->listen) {
		pr_info("no --listen: no Leases (they report the VIP this node serves)\n");
		leases = false;
	}
	if (!a->bgp_include && !leases)
		return 0;
	if (leases) {
		if (!a->node_name) {
			if (gethostname(a->hostname, sizeof(a->hostname) - 1)) {
				pr_warn("cannot read the host name for --node-name: %s\n",
					strerror(errno));
				return -errno;
			}
			a->node_name = a->hostname;
		}
		o.node_name = a->node_name;
	}
	return fg_ha_new(&a->ha, &o, a->control, a->dp);
}

/* The proxy's open client connections, -1 when unknown. */
static int proxy_conns(struct agent *a)
{
	return a->proxy ? (int)fg_proxy_connections(a->proxy) : 0;
}

/* Metrics (--metrics-listen) and the access log (--access-log): both are
 * fed by the proxy's request records. The default address taken by
 * another process only costs the metrics (a warning); an address given
 * that cannot be used stops the agent. */
static int start_metrics(struct agent *a)
{
	const char *listen_on = a->metrics_listen ? a->metrics_listen : FG_METRICS_DEF_LISTEN;
	struct fg_access_log_opts lo = { .path = a->access_log, .fd = -1,
					 .format = a->access_log_format };
	bool serve = strcmp(listen_on, "off") != 0;
	int err;

	if (!serve && !a->access_log)
		return 0;
	err = fg_metrics_new(&a->metrics, a->dp, a->control, a->health);
	if (err)
		return err;
	/* The plan in force came from the first apply (start_control). */
	fg_metrics_config_apply(a->metrics, 0, fg_control_plan(a->control) != NULL);
	if (a->access_log) {
		err = fg_access_log_open(&a->alog, &lo);
		if (err)
			return err;
		fg_metrics_set_access_log(a->metrics, a->alog);
	}
	if (!serve)
		return 0;
	err = fg_metrics_server_open(&a->msrv, listen_on, fg_metrics_render_cb, a->metrics);
	if (err && !a->metrics_listen) {
		pr_warn("metrics: not served (--metrics-listen ADDR:PORT to choose another address, "
			"\"off\" for none)\n");
		return 0;
	}
	return err;
}

/* The control plane's events; a new plan in force, or a failure, is an
 * apply for the metrics. */
static void control_process(struct agent *a)
{
	const struct fg_plan *before = fg_control_plan(a->control);
	int err = fg_control_process(a->control);

	fg_proxy_sync_routes(a->proxy);
	fg_metrics_config_apply(a->metrics, err, fg_control_plan(a->control) != before);
}

/* The CPUs this process may run on (its affinity, a cpuset's share). */
static unsigned online_cpus(void)
{
	cpu_set_t set;
	long n;

	if (!sched_getaffinity(0, sizeof(set), &set) && CPU_COUNT(&set) > 0)
		n = CPU_COUNT(&set);
	else
		n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		n = 1;
	return n > FG_PROXY_MAX_WORKERS ? FG_PROXY_MAX_WORKERS : (unsigned)n;
}

/* The HTTP proxy on --listen, once the control plane has its routes; the
 * gateway shows Listening from then on. */
/* Kernel TLS for the TLS listeners' sessions where the kernel has it
 * (probed once with real handshakes on loopback). */
static void setup_ktls(struct agent *a)
{
	char why[FG_TLS_WHY_LEN];

	if (a->no_ktls) {
		snprintf(a->ktls_why, sizeof(a->ktls_why), "off (--no-ktls)");
		return;
	}
	if (fg_ktls_probe(why, sizeof(why)) == 1 && !fg_tls_set_ktls(true)) {
		snprintf(a->ktls_why, sizeof(a->ktls_why), "on: %s", why);
		pr_info("TLS: %s\n", a->ktls_why);
		return;
	}
	snprintf(a->ktls_why, sizeof(a->ktls_why), "off: %s", why);
	pr_info("TLS: kernel TLS %s; records stay in OpenSSL\n", a->ktls_why);
}

static int start_proxy(struct agent *a)
{
	struct fg_proxy_opts popts;
	unsigned i;
	int err;

	if (!a->listen)
		return 0;
	fg_proxy_opts_init(&popts);
	if (a->l7_mode_set)
		popts.l7_mode = a->l7_mode;
	if (a->max_conns)
		popts.max_conns = a->max_conns;
	popts.workers = a->workers ? a->workers : online_cpus();
	popts.pool_max_idle = a->upstream_keepalive;
	if (a->upstream_keepalive_ms)
		popts.pool_idle_timeout_ms = a->upstream_keepalive_ms;
	if (a->max_conns_per_client)
		popts.max_conns_per_client = a->max_conns_per_client;
	if (a->client_body_timeout_ms)
		popts.client_body_timeout_ms = a->client_body_timeout_ms;
	if (a->proxy_timeout_s[0])
		popts.upstream_connect_timeout_ms = a->proxy_timeout_s[0] * 1000;
	if (a->proxy_timeout_s[1])
		popts.upstream_timeout_ms = a->proxy_timeout_s[1] * 1000;
	popts.upstream_send_timeout_ms = a->proxy_timeout_s[2] * 1000;
	popts.max_body_size = a->proxy_body_size;
	popts.pin_path = a->pin_path;
	if (a->metrics) {
		popts.on_request = fg_metrics_on_request;
		popts.on_request_ctx = a->metrics;
		popts.record_details = a->alog != NULL;
	}
	err = fg_parse_listen(a->listen, &popts.addr, &popts.family, &popts.port);
	if (err) {
		pr_warn("invalid --listen '%s'\n", a->listen);
		return err;
	}
	for (i = 0; i < a->n_listen_tls; i++) {
		struct fg_proxy_listen *tl = &popts.tls_listen[popts.n_tls_listen++];

		err = fg_parse_listen(a->listen_tls[i], &tl->addr, &tl->family, &tl->port);
		if (err || !tl->port) {
			pr_warn("invalid --listen-tls '%s': ADDR:PORT or [ADDR6]:PORT\n",
				a->listen_tls[i]);
			return -EINVAL;
		}
	}
	if (a->n_listen_tls)
		setup_ktls(a);
	err = fg_proxy_open(&a->proxy, a->control, a->dp, &popts);
	if (err)
		return err;
	if (a->metrics) {
		err = fg_metrics_set_proxy(a->metrics, a->proxy);
		if (err)
			return err;
	}
	start_stage("proxy opened");
	/* Opening the listener changes the gateways' phase, nothing else:
	 * at 10,000 Ingresses a second computation cost 2-3 s of start-up. */
	err = fg_control_update_state(a->control, true, true);
	fg_metrics_config_apply(a->metrics, err, !err);
	start_stage("plan recomputed for Listening");
	if (err)
		pr_warn("routes not recomputed after the listener opened: %s\n", strerror(-err));
	/* The workers take their first routes as they start. */
	return fg_proxy_start(a->proxy);
}

static int setup_loop(struct agent *a)
{
	struct itimerspec its = {};
	struct epoll_event ev = { .events = EPOLLIN };
	sigset_t mask;

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL))
		return -errno;
	a->sigfd = signalfd(-1, &mask, SFD_CLOEXEC);
	a->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
	a->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (a->sigfd < 0 || a->timerfd < 0 || a->epfd < 0)
		return -errno;
	its.it_interval.tv_sec = a->health_interval_ms / 1000;
	its.it_interval.tv_nsec = (a->health_interval_ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(a->timerfd, 0, &its, NULL))
		return -errno;
	ev.data.fd = a->sigfd;
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->sigfd, &ev))
		return -errno;
	ev.data.fd = a->timerfd;
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, a->timerfd, &ev))
		return -errno;
	ev.data.fd = fg_nl_monitor_fd(a->mon);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
		return -errno;
	if (fg_control_fd(a->control) >= 0) {
		ev.data.fd = fg_control_fd(a->control);
		if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			return -errno;
	}
	ev.data.fd = fg_admin_fd(a->admin);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
		return -errno;
	ev.data.fd = fg_health_fd(a->health);
	if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
		return -errno;
	if (a->proxy) {
		ev.data.fd = fg_proxy_fd(a->proxy);
		if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			return -errno;
	}
	if (a->msrv) {
		ev.data.fd = fg_metrics_server_fd(a->msrv);
		if (epoll_ctl(a->epfd, EPOLL_CTL_ADD, ev.data.fd, &ev))
			return -errno;
	}
	return 0;
}

struct turn_clock {
	struct timespec wall, cpu;
};

static void turn_start(struct turn_clock *t)
{
	clock_gettime(CLOCK_MONOTONIC, &t->wall);
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t->cpu);
}

static double ms_since(const struct timespec *t0, clockid_t clk)
{
	struct timespec now;

	clock_gettime(clk, &now);
	return (now.tv_sec - t0->tv_sec) * 1e3 + (now.tv_nsec - t0->tv_nsec) / 1e6;
}

/* A turn of the control loop that holds everything else back (changes,
 * health, admin) for longer than a change may take is said, with -v, by
 * what ran in it: slow turns are what delays an edit. */
static void turn_end(const struct turn_clock *t, const char *what)
{
	double wall, cpu;

	if (fg_log_get_level() < FG_LOG_DEBUG)
		return;
	wall = ms_since(&t->wall, CLOCK_MONOTONIC);
	if (wall < 20.0)
		return;
	cpu = ms_since(&t->cpu, CLOCK_THREAD_CPUTIME_ID);
	pr_debug("loop: %s took %.1f ms (%.1f ms CPU)\n", what, wall, cpu);
}

static int run_loop(struct agent *a)
{
	struct epoll_event evs[8];
	struct turn_clock tc;
	const char *what;
	int n, i;

	for (;;) {
		n = epoll_wait(a->epfd, evs, 8, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			turn_start(&tc);
			what = "netlink";
			if (fd == a->sigfd) {
				struct signalfd_siginfo si;

				if (read(fd, &si, sizeof(si)) == sizeof(si)) {
					char why[48];

					/* With BGP: withdraw, drain, then exit (a
					 * second signal exits at once). */
					snprintf(why, sizeof(why), "received signal %u",
						 si.ssi_signo);
					if (!fg_ha_draining(a->ha) &&
					    fg_ha_drain_start(a->ha, why)) {
						if (a->proxy)
							fg_proxy_drain(a->proxy);
						continue;
					}
					pr_info("received signal %u, shutting down\n", si.ssi_signo);
					return 0;
				}
			} else if (fd == a->timerfd) {
				__u64 ticks;

				if (read(fd, &ticks, sizeof(ticks)) < 0)
					continue;
				fg_health_tick(a->health);
				turn_end(&tc, "health tick");
				turn_start(&tc);
				if (a->proxy)
					fg_proxy_tick(a->proxy);
				turn_end(&tc, "proxy tick");
				turn_start(&tc);
				fg_metrics_tick(a->metrics);
				fg_metrics_server_tick(a->msrv);
				turn_end(&tc, "metrics tick");
				turn_start(&tc);
				what = "HA";
				if (a->ha) {
					fg_ha_update(a->ha);
					if (fg_ha_draining(a->ha) &&
					    fg_ha_drain_done(a->ha, proxy_conns(a)))
						return 0;
				}
			} else if (a->proxy && fd == fg_proxy_fd(a->proxy)) {
				what = "proxy";
				fg_proxy_process(a->proxy);
			} else if (a->msrv && fd == fg_metrics_server_fd(a->msrv)) {
				what = "metrics server";
				fg_metrics_server_process(a->msrv);
			} else if (fd == fg_control_fd(a->control)) {
				what = "control";
				control_process(a);
				if (a->ha) {
					fg_ha_plan_changed(a->ha);
					fg_ha_update(a->ha);
				}
			} else if (fd == fg_admin_fd(a->admin)) {
				what = "admin";
				fg_admin_process(a->admin);
			} else if (fd == fg_health_fd(a->health)) {
				what = "health";
				fg_health_process(a->health);
			} else {
				fg_nl_monitor_process(a->mon, on_netlink, a);
			}
			turn_end(&tc, what);
		}
		/* Whatever changed the plan (sources, health, the admin
		 * socket): the workers get its routes. */
		turn_start(&tc);
		fg_proxy_sync_routes(a->proxy);
		turn_end(&tc, "route snapshot");
	}
}

int main(int argc, char **argv)
{
	struct agent a = {
		.pin_path = FG_DEFAULT_PIN_PATH,
		.health_interval_ms = 250,
		.epfd = -1,
		.sigfd = -1,
		.timerfd = -1,
	};
	int err;

	fg_log_setup_libbpf();
	/* A peer closing while the proxy writes or splices to it is an error
	 * to handle, not a reason to die: splice(2) has no MSG_NOSIGNAL. */
	signal(SIGPIPE, SIG_IGN);
	err = parse_args(&a, argc, argv);
	if (err)
		return 2;
	/* Before any thread starts (the Kubernetes client's, the Leases'):
	 * threads inherit the mask, so SIGTERM, SIGINT and SIGHUP only ever
	 * reach the event loop's signalfd, never a worker whose default
	 * action would kill the agent without withdrawing or cleaning up. */
	{
		sigset_t mask;

		sigemptyset(&mask);
		sigaddset(&mask, SIGTERM);
		sigaddset(&mask, SIGINT);
		sigaddset(&mask, SIGHUP);
		sigprocmask(SIG_BLOCK, &mask, NULL);
	}
	a.dp_opts.pin_path = a.pin_path;
	raise_file_limit(&a);
	if (choose_snat_ports(&a))
		return 2;
	if (check_ifaces(&a))
		return 2;

	start_stage(NULL);
	err = fg_dp_load(&a.dp, &a.dp_opts);
	if (err)
		return 1;
	err = fg_nl_monitor_open(&a.mon);
	if (err) {
		pr_warn("cannot open the netlink monitor: %s\n", strerror(-err));
		goto out;
	}
	err = attach_ifaces(&a);
	if (err)
		goto out;
	reserve_snat_ports(&a);
	a.health_opts.interval_ms = a.health_interval_ms;
	err = fg_health_new(&a.health, a.dp, &a.health_opts);
	if (err)
		goto out;
	start_stage("data plane loaded and attached, prober ready");
	err = start_control(&a);
	if (err)
		goto out;
	err = start_metrics(&a);
	if (err)
		goto out;
	err = start_proxy(&a);
	if (err)
		goto out;
	a.drain_s = a.drain_set ? a.drain_s : FG_HA_DEF_DRAIN_S;
	err = start_ha(&a);
	if (err)
		goto out;
	err = setup_loop(&a);
	if (err) {
		pr_warn("cannot set up the event loop: %s\n", strerror(-err));
		goto out;
	}
	pr_info("fleetgate-agent ready: %d interface(s), maps pinned under %s, admin socket %s\n",
		a.n_ifaces, a.pin_path, a.admin_path);
	err = run_loop(&a);
out:
	fg_ha_free(a.ha); /* withdraws before anything closes */
	fg_proxy_close(a.proxy);
	fg_metrics_server_close(a.msrv); /* after the proxy: its last records */
	fg_metrics_free(a.metrics);
	fg_access_log_close(a.alog);
	fg_admin_close(a.admin);
	fg_control_free(a.control);
	restore_reserved_ports(&a);
	fg_health_free(a.health);
	if (a.mon)
		fg_nl_monitor_close(a.mon);
	fg_dp_close(a.dp, !a.keep_pins);
	if (a.epfd >= 0)
		close(a.epfd);
	if (a.sigfd >= 0)
		close(a.sigfd);
	if (a.timerfd >= 0)
		close(a.timerfd);
	pr_info("fleetgate-agent stopped%s\n", a.keep_pins ? " (pins kept)" : "");
	return err ? 1 : 0;
}

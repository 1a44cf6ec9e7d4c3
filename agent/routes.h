/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The control plane's brain: from the fleet's objects (MseIngressConfig,
 * Ingress, Service of type LoadBalancer) and each member cluster's objects
 * (Service, Endpoints, EndpointSlice, Pod) it computes a plan: the
 * gateways' status, which Ingresses are accepted (or why not), the L7
 * routes with their canaries, the L4 listeners, and for every target the
 * clusters that serve it with their weights, failover tiers and endpoints.
 *
 * It is a pure function of its inputs (no I/O, no clock), so every example
 * of the seed and every invalid input is a table-driven unit test.
 */
#ifndef FG_ROUTES_H
#define FG_ROUTES_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <linux/types.h>

#include "fleetgate.h"
#include "fg_regex.h" /* struct fg_canary's pattern */

#define FG_ID_LEN 64     /* cluster ids, namespaces, names (DNS labels) */
#define FG_HOST_LEN 254
#define FG_PATH_LEN 1024
#define FG_REASON_LEN 256
#define FG_MAX_CANARIES 8

/* A member cluster's objects by key: "Kind\x1fns\x1fname" -> [object, ...]
 * (the first is in force), and its EndpointSlices by "ns\x1fservice" ->
 * [EndpointSlice, ...]. */
/* A cluster's objects by "Kind\x1fns\x1fname" (by_key) and its
 * EndpointSlices by "ns\x1fservice" (slices). A value is the object itself
 * or, when a key has several, an array of them, first added first: read
 * it with the fg_index_* helpers. */
struct fg_cindex {
	json_t *by_key;
	json_t *slices;
	size_t n;
};

static inline size_t fg_index_count(json_t *v)
{
	return json_is_array(v) ? json_array_size(v) : v ? 1 : 0;
}

static inline json_t *fg_index_at(json_t *v, size_t i)
{
	return json_is_array(v) ? json_array_get(v, i) : i ? NULL : v;
}

static inline json_t *fg_index_first(json_t *v)
{
	return fg_index_at(v, 0);
}

/* Inputs. */
struct fg_snapshot {
	json_t *fleet;          /* array of the fleet's objects */
	json_t *clusters;       /* object: cluster id -> array of its objects */
	json_t *cluster_errors; /* object: cluster id -> why it cannot be read (may be NULL) */
	/* Kept indexes of the clusters (objstore.h), or NULL: the
	 * computation indexes the arrays itself. */
	const struct fg_cindex *(*cluster_index)(void *ctx, const char *cluster);
	void *index_ctx;
};

struct fg_tls_cache;
struct fg_tls_plan;

struct fg_plan_opts {
	bool dataplane_ready; /* XDP loaded and attached */
	bool listening;       /* the HTTP listener is open */
	const char *address;  /* the gateway's address, as status.loadBalancer shows it */
	/* Sources whose first list has not come yet ("fleet, cluster X"), or
	 * NULL/"": the gateway is not Listening before they have. */
	const char *syncing;
	/* Objects the data plane has no room for (fg_applier_fit): Ingress
	 * "ns/name" or LoadBalancer Service "Service ns/name" -> reason. They
	 * are rejected with that reason. NULL: none. */
	json_t *no_room;
	/* Set when the data plane is not what the objects ask for (the last
	 * write failed): shown in the gateway's status. */
	const char *behind;
	/* TLS (tls_config.h): parsed certificates kept across computations
	 * (NULL: none kept), and the time their validity is checked against
	 * (seconds since the epoch; 0: now). */
	struct fg_tls_cache *tls_cache;
	long long now;
};

enum fg_path_type {
	FG_PATH_EXACT = 0,
	FG_PATH_PREFIX,
	FG_PATH_IMPL, /* ImplementationSpecific: matched as Prefix */
};

struct fg_endpoint {
	struct fg_addr addr;
	int family;   /* FG_AF_INET / FG_AF_INET6 */
	__u16 port;   /* host order */
	bool ready;
	__u32 pod_hash; /* fg_pod_hash() of the pod behind it, 0: none known */
};

/* A short identity of a pod name (what the plan keeps of it). */
__u32 fg_pod_hash(const char *pod);

/* One cluster serving a target. */
struct fg_target_cluster {
	char cluster[FG_ID_LEN];
	__u32 weight; /* share within its tier (ready endpoints) */
	__u8 tier;    /* 0 first choice, then failover tiers */
	__u32 ready;  /* ready endpoints */
	/* "failover: any cluster, N ready" at most: not FG_REASON_LEN, there
	 * is one per target and cluster (110,000 at N=10,000 C=10). */
	char why[48];
	struct fg_endpoint *eps; /* ready endpoints only */
	size_t n_eps;
};

/* Where a route (or canary, or L4 port) sends traffic. */
struct fg_target {
	/* Stable identity, to keep data plane ids across plans (owned; NULL
	 * in the proxy's copies). Allocated to its length: 1 KiB inline was
	 * 11 MiB of 11,000 targets, twice with the proxy's copy. */
	char *key;
	void *req;      /* what it was computed from (routes.c), to refresh it */
	int service_id; /* the data plane's id: set in the proxy's copies only */
	char ns[FG_ID_LEN];
	char service[FG_ID_LEN * 4];
	__u16 port;    /* the Service port, by number (0 when by name) */
	char port_name[FG_ID_LEN];
	char subset[FG_ID_LEN];
	struct fg_target_cluster *clusters;
	size_t n_clusters;
};

struct fg_canary {
	char ingress[FG_ID_LEN * 5 + 2]; /* namespace/name */
	char header[256];
	char header_value[256];
	char header_pattern[256];
	bool has_pattern;
	struct fg_regex *pattern; /* PCRE2 (regex.h), owned; set when has_pattern */
	char cookie[256];
	bool has_weight;
	__u32 weight;
	__u32 weight_total;
	struct fg_target *target;
};

/*
 * What the proxy does when an endpoint fails a request: ingress-nginx's
 * proxy-next-upstream and proxy-next-upstream-tries (docs/annotations.md).
 * A request whose bytes reached an endpoint is sent to another one only
 * when its method is idempotent (RFC 9110 §9.2.2) or FG_NU_NON_IDEMPOTENT
 * is set.
 */
enum fg_next_upstream {
	FG_NU_ERROR = 1u << 0,          /* connect error, error before the response head */
	FG_NU_TIMEOUT = 1u << 1,        /* connect or response head timeout */
	FG_NU_INVALID_HEADER = 1u << 2, /* an invalid response head */
	FG_NU_HTTP_500 = 1u << 3,
	FG_NU_HTTP_502 = 1u << 4,
	FG_NU_HTTP_503 = 1u << 5,
	FG_NU_HTTP_504 = 1u << 6,
	FG_NU_HTTP_403 = 1u << 7,
	FG_NU_HTTP_404 = 1u << 8,
	FG_NU_HTTP_429 = 1u << 9,
	FG_NU_NON_IDEMPOTENT = 1u << 10,
};
#define FG_NU_DEFAULT (FG_NU_ERROR | FG_NU_TIMEOUT)
#define FG_NU_DEFAULT_TRIES 2 /* the first try and one more */
#define FG_NU_MAX_TRIES 16

struct fg_route_policy {
	__u32 next_upstream;       /* FG_NU_*; 0: "off" */
	__u32 next_upstream_tries; /* tries in all, the first included (1..16) */
};

/* proxy-next-upstream "error timeout http_502 ..." into FG_NU_* bits, and
 * back; false (with *bad set to the offending word) on an unknown word. */
bool fg_next_upstream_parse(const char *s, __u32 *out, char *bad, size_t bad_len);
void fg_next_upstream_str(__u32 nu, char *buf, size_t len);

/* A source address range of a source-range annotation (route_opts.c). */
struct fg_cidr {
	struct fg_addr addr; /* network byte order, host bits cleared */
	__u8 family;         /* FG_AF_INET / FG_AF_INET6 */
	__u8 prefix;         /* 0..32, 0..128 */
};

/* One path of an Ingress, in the order of its spec (fg_route.path_idx). */
struct fg_route_path {
	char *path;          /* as written */
	/* Set when the path is matched as a regex, ingress-nginx's
	 * `location ~* "^PATH"`: PCRE2, caseless, anchored at the start. */
	struct fg_regex *re;
};

/*
 * The everyday annotations of an Ingress (docs/annotations.md), parsed once
 * by fg_route_opts_parse. One object per Ingress, shared by its routes in
 * the plan and in the proxy's snapshots, and by the requests under way:
 * immutable once the plan is computed, freed when the last reference goes
 * (the workers run on several threads, so the count is atomic).
 */
struct fg_route_opts {
	int refs;                   /* atomic */
	struct fg_cidr *allow;      /* allowlist/whitelist-source-range; NULL: any */
	size_t n_allow;
	struct fg_cidr *deny;       /* denylist-source-range */
	size_t n_deny;
	struct fg_route_path *paths;
	size_t n_paths;
	bool use_regex;             /* use-regex: "true" (session-cookie-path needed) */
	char *rewrite_target;       /* NULL: none; $1..$9 are capture groups */
	char *app_root;             /* NULL: none */
	char *redirect;             /* temporal- or permanent-redirect URL, NULL: none */
	int redirect_code;
	char *upstream_vhost;       /* NULL: the request's Host */
	__u32 connect_timeout_ms;   /* 0: the proxy's */
	__u32 read_timeout_ms;
	__u32 send_timeout_ms;
	bool body_limit_set;        /* proxy-body-size given */
	unsigned long long body_limit; /* bytes, 0: unlimited */
	/* affinity: cookie */
	bool affinity;
	bool aff_persistent;        /* affinity-mode: persistent */
	bool aff_change_on_failure; /* session-cookie-change-on-failure */
	bool cookie_secure;
	char *cookie_name;          /* INGRESSCOOKIE by default */
	char *cookie_path;          /* NULL: the route's path */
	char *cookie_samesite;      /* NULL: none */
	long long cookie_max_age;   /* -1: none */
	long long cookie_expires;   /* seconds from now, -1: none */
	/* TLS (docs/annotations.md "TLS"): a plain HTTP request for a host
	 * with a certificate is redirected to https (308) unless
	 * ssl-redirect is "false"; force-ssl-redirect redirects without one. */
	signed char ssl_redirect;   /* -1: not given (true for TLS hosts) */
	bool force_ssl_redirect;
	/* backend-protocol: HTTPS: TLS to the endpoints. */
	bool backend_https;
	bool proxy_ssl_verify;      /* proxy-ssl-verify: on */
	bool proxy_ssl_server_name; /* proxy-ssl-server-name: on (send SNI) */
	char *proxy_ssl_name;       /* the name to verify / send, NULL: the Host */
	char *proxy_ssl_secret;     /* "ns/name": ca.crt (and a client certificate) */
};

/*
 * Parses the Ingress's everyday annotations for its n_paths paths (the
 * order of ingress_paths). *out stays NULL when none is set. A bad value
 * is -EINVAL with reason (FG_REASON_LEN) saying which and why; -ENOMEM.
 */
int fg_route_opts_parse(json_t *ing, const char *const *paths, size_t n_paths,
			struct fg_route_opts **out, char *reason);
/* "10.0.0.0/8, 192.0.2.7, 2001:db8::/32" (an address alone is a /32 or
 * /128; host bits are cleared). -EINVAL with bad saying which element;
 * -ENOMEM. *out is malloc'ed. */
int fg_cidr_list_parse(const char *s, struct fg_cidr **out, size_t *n_out, char *bad,
		       size_t bad_len);
bool fg_cidr_match(const struct fg_cidr *v, size_t n, int family, const struct fg_addr *a);
/* nginx's size: bytes, or a number with k/K, m/M or g/G. 0 or -EINVAL. */
int fg_size_parse(const char *s, unsigned long long *out);

/*
 * What a redirect URL or rewrite target may refer to: capture groups
 * ($1..$9, $0 the whole match) of the path regex, and the nginx variables
 * $request_uri, $uri, $args (= $query_string), $is_args, $host,
 * $http_host, $scheme (also as ${name}).
 */
struct fg_expand_vars {
	const char *subject;       /* what the regex matched, NULL: no groups */
	const size_t *ovector;     /* fg_regex_match_groups' */
	int n_pairs;
	const char *request_uri, *uri, *args, *host, *http_host, *scheme;
	size_t request_uri_len, uri_len, args_len, host_len, http_host_len;
};
/* Writes tmpl with its references replaced into out (NUL-terminated);
 * returns the length, -ENOSPC, or -EINVAL (an unknown variable, a lone $).
 * v NULL: only checks the template. */
int fg_expand(const char *tmpl, const struct fg_expand_vars *v, char *out, size_t cap);

/* Takes / drops a reference (NULL is fine). */
struct fg_route_opts *fg_route_opts_get(struct fg_route_opts *o);
void fg_route_opts_put(struct fg_route_opts *o);

struct fg_route {
	struct fg_route_policy policy;
	/* The Ingress's annotations (a reference), NULL when it has none;
	 * path_idx is the route's path in it. */
	struct fg_route_opts *opts;
	__u8 path_idx;
	char host[FG_HOST_LEN]; /* "" matches any host */
	bool wildcard;          /* host is "*.suffix" */
	/* Owned, allocated to its length (FG_PATH_LEN at most): 1 KiB
	 * inline was 10 MiB of 10,000 routes, again in each proxy copy. */
	char *path;
	enum fg_path_type type;
	bool is_default;        /* from spec.defaultBackend */
	bool tls;               /* its host is served with a certificate (tls_config.h) */
	char ingress[FG_ID_LEN * 5 + 2];
	struct fg_target *target;
	/* FG_MAX_CANARIES at most; allocated with the first (most routes
	 * have none, and a canary is over a kilobyte). */
	struct fg_canary *canaries;
	size_t n_canaries;
};

struct fg_l4_port {
	char ns[FG_ID_LEN];
	char name[FG_ID_LEN * 4];
	__u8 proto; /* FG_PROTO_TCP / FG_PROTO_UDP */
	__u16 port;
	struct fg_target *target;
	/* spec.loadBalancerSourceRanges (or the annotation
	 * service.beta.kubernetes.io/load-balancer-source-ranges): the XDP
	 * allowlist of the listener; NULL: every source. Owned. */
	struct fg_cidr *allow;
	size_t n_allow;
};

struct fg_ingress_status {
	char ns[FG_ID_LEN];
	char name[FG_ID_LEN * 4];
	char ingress_class[FG_ID_LEN * 4];
	bool canary;
	bool accepted;
	char reason[FG_REASON_LEN];
};

struct fg_gateway_status {
	char name[FG_ID_LEN * 4];
	char ingress_class[FG_ID_LEN * 4];
	char phase[16]; /* Pending, Running, Listening, Failed */
	char message[FG_REASON_LEN];
	char created[64]; /* metadata.creationTimestamp, "" when absent */
	json_t *object;   /* the object with its computed status (owned) */
};

struct fg_plan {
	struct fg_gateway_status *gateways;
	size_t n_gateways;
	struct fg_ingress_status *ingresses;
	size_t n_ingresses;
	struct fg_route *routes; /* in match order */
	size_t n_routes;
	struct fg_l4_port *l4;
	size_t n_l4;
	/* LoadBalancer Services not programmed: "Service ns/name" -> why
	 * (a bad source range). */
	json_t *l4_rejected;
	struct fg_target **targets; /* every distinct target, owned here */
	size_t n_targets;
	char **clusters; /* attached cluster ids, in order */
	size_t n_clusters;
	struct fg_tls_plan *tls; /* Ingress spec.tls resolved (tls_config.h) */
};

int fg_plan_compute(const struct fg_snapshot *snap, const struct fg_plan_opts *opts,
		    struct fg_plan **out);
/*
 * Recomputes in place the targets whose Service endpoints changed
 * (services: "ns\x1fservice" -> anything) or, for subsets, whose
 * namespace's pods changed (pod_ns: namespace -> anything; may be NULL),
 * and the canary targets that fall back on them. Everything else in the
 * plan stays as it is. *out gets the targets refreshed (malloc'ed). Returns
 * -EAGAIN when the change needs a full computation instead (a target with
 * no cluster serving it any more), or -errno.
 */
int fg_plan_refresh(struct fg_plan *plan, const struct fg_snapshot *snap,
		    const struct fg_plan_opts *opts, json_t *services, json_t *pod_ns,
		    struct fg_target ***out, size_t *n_out);
/*
 * An accepted Ingress changed only in annotations its routes hold on
 * their own (fg_ingress_route_local_change): its canaries' match and
 * weight, or its routes' retry policy, are updated in place. Returns 1
 * when routes were patched, 0 when the plan has no route of it, -EAGAIN
 * when it needs a full computation (it was not accepted, or a new value
 * is invalid), or -errno.
 */
int fg_plan_patch_ingress(struct fg_plan *plan, json_t *ing);
/*
 * The gateways' phase (Pending, Running, Listening) follows opts'
 * dataplane_ready, listening and syncing: set in place, without
 * recomputing routes (the agent opening its listener changes nothing
 * else). Failed gateways stay so.
 */
void fg_plan_update_phases(struct fg_plan *plan, const struct fg_plan_opts *opts);
void fg_plan_free(struct fg_plan *plan);

/* Display forms (fleetgatectl get ... -o json). */
json_t *fg_plan_routes_json(const struct fg_plan *plan);
json_t *fg_plan_ingresses_json(const struct fg_plan *plan, const char *address);
const char *fg_path_type_name(enum fg_path_type type);

/* Annotation helpers shared with the proxy: the value of
 * nginx.ingress.kubernetes.io/KEY, or of its aliases higress.io/KEY and
 * mse.ingress.kubernetes.io/KEY. */
const char *fg_annotation(json_t *obj, const char *key);

/* Kubernetes path matching: Exact, or Prefix element-wise ("/foo" matches
 * "/foo" and "/foo/bar", not "/foobar"). */
bool fg_path_matches(enum fg_path_type type, const char *pattern, const char *path);
/* A route's path against a request path (no query): its regex when the
 * path is one (use-regex, rewrite-target), else fg_path_matches. */
bool fg_route_path_matches(const struct fg_route *r, const char *path);
/* The route's path is matched as a regex. */
bool fg_route_is_regex(const struct fg_route *r);
/*
 * ingress-nginx's rule: when one route of a host is a regex, every route of
 * that host is matched as one (`~* "^PATH"`), whatever Ingress it comes
 * from. Run on the plan's routes before they are ordered. -ENOMEM.
 */
int fg_routes_enforce_regex(struct fg_route *routes, size_t n);
/* Host matching: exact (case-insensitive) or "*.suffix" matching exactly
 * one more label; "" matches any. */
bool fg_host_matches(const char *pattern, bool wildcard, const char *host);

#endif

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The everyday Ingress annotations (docs/annotations.md): parsing, as a
 * table of good and bad values (agent/route_opts.c through the route
 * computation), and a LoadBalancer Service's source ranges. The proxy's
 * side is in test_annotations_proxy.c, the XDP allowlist in
 * test_annotations_l4.c.
 */
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <jansson.h>

#include "fg_regex.h"
#include "routes.h"
#include "test_progs.h"

#define C1 "c7fb82aaaa"
#define NS "web-demo"
#define NGX "nginx.ingress.kubernetes.io/"

/* ---------- a small world: one gateway, one cluster, service1 ---------- */

static json_t *gateway(void)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:{s:{s:{s:s}}}}", "apiVersion",
			 "mse.alibabacloud.com/v1alpha1", "kind", "MseIngressConfig", "metadata",
			 "name", "gw", "creationTimestamp", "2024-05-01T10:00:00Z", "annotations",
			 "mse.alibabacloud.com/remote-clusters", C1, "spec", "ingress", "local",
			 "ingressClass", "mse");
}

static json_t *cluster_objects(void)
{
	return json_pack("[{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:i, s:s, s:i}]}},"
			 " {s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:[{s:i, s:s}],"
			 "  s:[{s:[s], s:{s:b}}, {s:[s], s:{s:b}}]}]",
			 "apiVersion", "v1", "kind", "Service", "metadata", "name", "service1",
			 "namespace", NS, "spec", "type", "ClusterIP", "ports", "port", 80,
			 "protocol", "TCP", "targetPort", 8080,
			 "apiVersion", "discovery.k8s.io/v1", "kind", "EndpointSlice", "metadata",
			 "name", "service1-x", "namespace", NS, "labels",
			 "kubernetes.io/service-name", "service1", "addressType", "IPv4", "ports",
			 "port", 8080, "protocol", "TCP", "endpoints", "addresses", "10.1.0.1",
			 "conditions", "ready", 1, "addresses", "10.1.0.2", "conditions", "ready", 1);
}

/* An Ingress of service1: host, then (path, pathType) pairs, NULL-ended;
 * annotations as (key, value) pairs, NULL-ended; a key without a '/' gets
 * the nginx.ingress.kubernetes.io/ prefix. */
static json_t *ingress(const char *name, const char *created, const char *host,
		       const char *const *paths, const char *const *anns)
{
	json_t *ing, *jp = json_array(), *ja = json_object();
	size_t i;

	for (i = 0; paths[i]; i += 2)
		json_array_append_new(jp, json_pack("{s:s, s:s, s:{s:{s:s, s:{s:i}}}}", "path",
						    paths[i], "pathType", paths[i + 1], "backend",
						    "service", "name", "service1", "port",
						    "number", 80));
	for (i = 0; anns && anns[i]; i += 2) {
		char key[256];

		snprintf(key, sizeof(key), "%s%s", strchr(anns[i], '/') ? "" : NGX, anns[i]);
		json_object_set_new(ja, key, json_string(anns[i + 1]));
	}
	ing = json_pack("{s:s, s:s, s:{s:s, s:s, s:s, s:o}, s:{s:s, s:[{s:s, s:{s:o}}]}}",
			"apiVersion", "networking.k8s.io/v1", "kind", "Ingress", "metadata",
			"name", name, "namespace", NS, "creationTimestamp", created,
			"annotations", ja, "spec", "ingressClassName", "mse", "rules", "host", host,
			"http", "paths", jp);
	return ing;
}

static struct fg_plan *compute(json_t *fleet)
{
	json_t *clusters = json_pack("{s:o}", C1, cluster_objects());
	struct fg_snapshot snap = { .fleet = fleet, .clusters = clusters };
	struct fg_plan_opts opts = { .dataplane_ready = true, .listening = true };
	struct fg_plan *plan = NULL;
	int err;

	err = fg_plan_compute(&snap, &opts, &plan);
	json_decref(clusters);
	if (!ASSERT_OK(err, "fg_plan_compute"))
		return NULL;
	return plan;
}

static const struct fg_ingress_status *status_of(const struct fg_plan *p, const char *name)
{
	size_t i;

	for (i = 0; p && i < p->n_ingresses; i++)
		if (!strcmp(p->ingresses[i].name, name))
			return &p->ingresses[i];
	return NULL;
}

static const struct fg_route *route_of(const struct fg_plan *p, const char *host,
				       const char *path)
{
	size_t i;

	for (i = 0; p && i < p->n_routes; i++)
		if (!strcmp(p->routes[i].host, host) && !strcmp(p->routes[i].path, path))
			return &p->routes[i];
	return NULL;
}

/* ---------- the table ---------- */

#define MIB (1024ULL * 1024)

struct want {
	size_t n_allow, n_deny;
	const char *allow0;          /* "addr/prefix" of the first allow range */
	bool regex;
	const char *matches[3];      /* request paths the route matches */
	const char *misses[3];       /* and does not */
	const char *rewrite, *app_root, *redirect, *vhost;
	int code;
	__u32 connect_ms, read_ms, send_ms;
	bool body_set;
	unsigned long long body;
	bool affinity, persistent, change_on_failure, secure;
	const char *cookie, *cookie_path, *samesite;
	long long max_age, expires; /* 0 in the table: not checked */
	bool no_opts;                /* nothing set: no object at all */
	/* TLS: ssl_redirect 0 not given, 1 "true", 2 "false" */
	int ssl_redirect;
	bool force_ssl, https, verify, server_name;
	const char *ssl_name, *ssl_secret;
};

struct parse_case {
	const char *name;
	const char *anns[16];
	const char *path, *type;     /* default /app, Prefix */
	const char *reason;          /* NULL: accepted; else a part of the reason */
	struct want want;
};

static const struct parse_case cases[] = {
	/* ---- source ranges ---- */
	{ "allow_v4_v6", { "whitelist-source-range", "10.0.0.0/8, 192.0.2.7,2001:db8::/32" },
	  .want = { .n_allow = 3, .allow0 = "10.0.0.0/8" } },
	{ "allow_new_name_host_bits", { "allowlist-source-range", "10.1.2.3/16" },
	  .want = { .n_allow = 1, .allow0 = "10.1.0.0/16" } },
	{ "deny", { "denylist-source-range", "192.0.2.0/24,::1" }, .want = { .n_deny = 2 } },
	{ "higress_alias", { "higress.io/whitelist-source-range", "127.0.0.1" },
	  .want = { .n_allow = 1, .allow0 = "127.0.0.1/32" } },
	{ "higress_blacklist", { "higress.io/blacklist-source-range", "127.0.0.2" },
	  .want = { .n_deny = 1 } },
	{ "allow_prefix_33", { "whitelist-source-range", "10.0.0.0/33" },
	  .reason = "whitelist-source-range '10.0.0.0/33': '10.0.0.0/33' is not an IP address or CIDR" },
	{ "allow_v6_prefix_129", { "whitelist-source-range", "2001:db8::/129" },
	  .reason = "is not an IP address or CIDR" },
	{ "allow_empty", { "whitelist-source-range", "" }, .reason = "'' is not an IP address" },
	{ "allow_hostname", { "whitelist-source-range", "10.0.0.0/8,example.com" },
	  .reason = "'example.com' is not an IP address or CIDR" },
	{ "allow_trailing_comma", { "whitelist-source-range", "10.0.0.0/8," },
	  .reason = "'' is not an IP address or CIDR" },
	{ "deny_short_v4", { "denylist-source-range", "1.2.3" },
	  .reason = "denylist-source-range '1.2.3'" },
	{ "allow_prefix_sign", { "whitelist-source-range", "10.0.0.0/+8" },
	  .reason = "not an IP address or CIDR" },

	/* ---- use-regex and rewrite-target ---- */
	{ "rewrite_captures", { "rewrite-target", "/$2" }, .path = "/something(/|$)(.*)",
	  .type = "ImplementationSpecific",
	  .want = { .regex = true, .rewrite = "/$2",
		    .matches = { "/something", "/something/new", "/SOMETHING/x" },
		    .misses = { "/x/something", "/some" } } },
	{ "use_regex", { "use-regex", "true" }, .path = "/foo/[a-z]+",
	  .want = { .regex = true, .matches = { "/foo/bar", "/FOO/bar/baz" },
		    .misses = { "/foo/123", "/foo/" } } },
	{ "use_regex_false", { "use-regex", "false" },
	  .want = { .matches = { "/app", "/app/x" }, .misses = { "/apple", "/APP" } } },
	/* ingress-nginx: rewrite-target alone makes the path a regex prefix */
	{ "rewrite_makes_regex", { "rewrite-target", "/" },
	  .want = { .regex = true, .rewrite = "/", .matches = { "/app", "/apple", "/APP/x" },
		    .misses = { "/ap", "/x/app" } } },
	{ "rewrite_vars", { "rewrite-target", "/v2$uri?from=${host}" },
	  .want = { .regex = true, .rewrite = "/v2$uri?from=${host}" } },
	{ "use_regex_yes", { "use-regex", "yes" },
	  .reason = "use-regex 'yes' is neither \"true\" nor \"false\"" },
	{ "regex_invalid", { "use-regex", "true" }, .path = "/(abc",
	  .reason = "path '/(abc' is not a valid regex (use-regex or rewrite-target make paths "
		    "regexes): missing closing parenthesis at offset 5" },
	{ "rewrite_relative", { "rewrite-target", "new" }, .reason = "rewrite-target 'new' is not" },
	{ "rewrite_unknown_var", { "rewrite-target", "/$foo" }, .reason = "rewrite-target '/$foo'" },
	{ "rewrite_space", { "rewrite-target", "/a b" }, .reason = "rewrite-target '/a b'" },
	{ "rewrite_lone_dollar", { "rewrite-target", "/a$" }, .reason = "rewrite-target '/a$'" },

	/* ---- redirects ---- */
	{ "permanent", { "permanent-redirect", "https://example.org/new" },
	  .want = { .redirect = "https://example.org/new", .code = 301 } },
	{ "permanent_308", { "permanent-redirect", "https://example.org/new",
			     "permanent-redirect-code", "308" },
	  .want = { .redirect = "https://example.org/new", .code = 308 } },
	{ "permanent_vars", { "permanent-redirect", "https://example.org$request_uri" },
	  .want = { .redirect = "https://example.org$request_uri", .code = 301 } },
	{ "permanent_fragment", { "permanent-redirect", "https://example.org/#/app" },
	  .want = { .redirect = "https://example.org/#/app", .code = 301 } },
	{ "rewrite_fragment", { "rewrite-target", "/a#b" }, .reason = "rewrite-target '/a#b'" },
	{ "temporal", { "temporal-redirect", "http://x.example/" },
	  .want = { .redirect = "http://x.example/", .code = 302 } },
	{ "temporal_307", { "temporal-redirect", "http://x.example/", "temporal-redirect-code",
			    "307" },
	  .want = { .redirect = "http://x.example/", .code = 307 } },
	{ "temporal_wins", { "permanent-redirect", "https://p.example/", "temporal-redirect",
			     "https://t.example/" },
	  .want = { .redirect = "https://t.example/", .code = 302 } },
	{ "permanent_code_200", { "permanent-redirect", "https://p.example/",
				  "permanent-redirect-code", "200" },
	  .reason = "permanent-redirect-code '200' is not a redirect status from 300 to 308" },
	{ "permanent_code_text", { "permanent-redirect", "https://p.example/",
				   "permanent-redirect-code", "abc" },
	  .reason = "permanent-redirect-code 'abc'" },
	{ "temporal_code_309", { "temporal-redirect", "https://t.example/",
				 "temporal-redirect-code", "309" },
	  .reason = "temporal-redirect-code '309'" },
	{ "permanent_ftp", { "permanent-redirect", "ftp://x.example/" },
	  .reason = "permanent-redirect 'ftp://x.example/' is not an http:// or https:// URL" },
	{ "permanent_relative", { "permanent-redirect", "/new" },
	  .reason = "permanent-redirect '/new' is not" },
	{ "permanent_no_host", { "permanent-redirect", "https:///x" },
	  .reason = "permanent-redirect 'https:///x'" },
	{ "permanent_unknown_var", { "permanent-redirect", "https://x.example$foo" },
	  .reason = "permanent-redirect 'https://x.example$foo'" },
	{ "app_root", { "app-root", "/app1" }, .want = { .app_root = "/app1" } },
	{ "app_root_relative", { "app-root", "app1" }, .reason = "app-root 'app1' is not a path" },
	{ "app_root_url", { "app-root", "https://x.example/app" },
	  .reason = "app-root 'https://x.example/app'" },

	/* ---- upstream-vhost ---- */
	{ "vhost", { "upstream-vhost", "internal.example.com" },
	  .want = { .vhost = "internal.example.com" } },
	{ "vhost_port", { "upstream-vhost", "internal:8080" }, .want = { .vhost = "internal:8080" } },
	{ "vhost_space", { "upstream-vhost", "a b" }, .reason = "upstream-vhost 'a b' is not a host" },
	{ "vhost_var", { "upstream-vhost", "$host" }, .reason = "upstream-vhost '$host'" },

	/* ---- timeouts and body size ---- */
	{ "timeouts", { "proxy-connect-timeout", "5", "proxy-read-timeout", "120",
			"proxy-send-timeout", "30" },
	  .want = { .connect_ms = 5000, .read_ms = 120000, .send_ms = 30000 } },
	{ "timeout_zero", { "proxy-read-timeout", "0" },
	  .reason = "proxy-read-timeout '0' is not a whole number of seconds from 1" },
	{ "timeout_unit", { "proxy-connect-timeout", "10s" },
	  .reason = "proxy-connect-timeout '10s'" },
	{ "timeout_negative", { "proxy-send-timeout", "-1" }, .reason = "proxy-send-timeout '-1'" },
	{ "timeout_huge", { "proxy-read-timeout", "4294968" }, .reason = "proxy-read-timeout" },
	{ "body_8m", { "proxy-body-size", "8m" }, .want = { .body_set = true, .body = 8 * MIB } },
	{ "body_0_unlimited", { "proxy-body-size", "0" }, .want = { .body_set = true, .body = 0 } },
	{ "body_bytes", { "proxy-body-size", "100" }, .want = { .body_set = true, .body = 100 } },
	{ "body_1G", { "proxy-body-size", "1G" },
	  .want = { .body_set = true, .body = 1024 * MIB } },
	{ "body_8k", { "proxy-body-size", "8k" }, .want = { .body_set = true, .body = 8192 } },
	{ "body_mb", { "proxy-body-size", "8mb" },
	  .reason = "proxy-body-size '8mb' is not a size" },
	{ "body_space", { "proxy-body-size", "8 m" }, .reason = "proxy-body-size '8 m'" },
	{ "body_negative", { "proxy-body-size", "-1" }, .reason = "proxy-body-size '-1'" },
	{ "body_overflow", { "proxy-body-size", "99999999999g" },
	  .reason = "proxy-body-size '99999999999g'" },

	/* ---- affinity ---- */
	{ "affinity_defaults", { "affinity", "cookie" },
	  .want = { .affinity = true, .cookie = "INGRESSCOOKIE" } },
	{ "affinity_all", { "affinity", "cookie", "affinity-mode", "persistent",
			    "session-cookie-name", "route", "session-cookie-path", "/app",
			    "session-cookie-max-age", "3600", "session-cookie-expires", "172800",
			    "session-cookie-samesite", "Lax", "session-cookie-secure", "true" },
	  .want = { .affinity = true, .persistent = true, .cookie = "route", .cookie_path = "/app",
		    .max_age = 3600, .expires = 172800, .samesite = "Lax", .secure = true } },
	{ "affinity_mse_alias", { "mse.ingress.kubernetes.io/affinity", "cookie",
				  "mse.ingress.kubernetes.io/session-cookie-change-on-failure",
				  "true" },
	  .want = { .affinity = true, .cookie = "INGRESSCOOKIE", .change_on_failure = true } },
	{ "affinity_ip", { "affinity", "ip" },
	  .reason = "affinity 'ip' is not \"cookie\" (the only affinity type)" },
	{ "affinity_mode_sticky", { "affinity", "cookie", "affinity-mode", "sticky" },
	  .reason = "affinity-mode 'sticky' is neither \"balanced\" nor \"persistent\"" },
	{ "cookie_name_space", { "affinity", "cookie", "session-cookie-name", "my cookie" },
	  .reason = "session-cookie-name 'my cookie' is not a cookie name" },
	{ "cookie_max_age_unit", { "affinity", "cookie", "session-cookie-max-age", "1h" },
	  .reason = "session-cookie-max-age '1h' is not a whole number of seconds" },
	{ "cookie_expires_negative", { "affinity", "cookie", "session-cookie-expires", "-5" },
	  .reason = "session-cookie-expires '-5'" },
	{ "cookie_path_relative", { "affinity", "cookie", "session-cookie-path", "app" },
	  .reason = "session-cookie-path 'app' is not a cookie path" },
	{ "cookie_path_semicolon", { "affinity", "cookie", "session-cookie-path", "/a;b" },
	  .reason = "session-cookie-path '/a;b'" },
	{ "cookie_samesite", { "affinity", "cookie", "session-cookie-samesite", "Maybe" },
	  .reason = "session-cookie-samesite 'Maybe' is not None, Lax or Strict" },
	{ "cookie_secure", { "affinity", "cookie", "session-cookie-secure", "1" },
	  .reason = "session-cookie-secure '1'" },
	{ "affinity_regex_no_path", { "affinity", "cookie", "use-regex", "true" },
	  .reason = "affinity with use-regex needs session-cookie-path" },

	/* ---- TLS ---- */
	{ "ssl_redirect_false", { "ssl-redirect", "false" }, .want = { .ssl_redirect = 2 } },
	{ "ssl_redirect_true", { "ssl-redirect", "true" }, .want = { .ssl_redirect = 1 } },
	{ "force_ssl_redirect", { "force-ssl-redirect", "true" }, .want = { .force_ssl = true } },
	{ "ssl_redirect_yes", { "ssl-redirect", "yes" },
	  .reason = "ssl-redirect 'yes' is neither \"true\" nor \"false\"" },
	{ "backend_https", { "backend-protocol", "HTTPS" }, .want = { .https = true } },
	{ "backend_https_lower", { "backend-protocol", "https" }, .want = { .https = true } },
	{ "backend_http", { "backend-protocol", "HTTP" }, .want = {} },
	{ "backend_grpc", { "backend-protocol", "GRPC" },
	  .reason = "backend-protocol 'GRPC' is not supported (HTTP or HTTPS" },
	{ "proxy_ssl_all", { "backend-protocol", "HTTPS", "proxy-ssl-verify", "on",
			     "proxy-ssl-secret", "ca-secret", "proxy-ssl-name", "api.internal",
			     "proxy-ssl-server-name", "on" },
	  .want = { .https = true, .verify = true, .server_name = true, .ssl_name = "api.internal",
		    .ssl_secret = "web-demo/ca-secret" } },
	{ "proxy_ssl_secret_ns", { "backend-protocol", "HTTPS", "proxy-ssl-secret", "certs/ca" },
	  .want = { .https = true, .ssl_secret = "certs/ca" } },
	{ "proxy_ssl_verify_true", { "proxy-ssl-verify", "true" },
	  .reason = "proxy-ssl-verify 'true' is neither \"on\" nor \"off\"" },
	{ "proxy_ssl_secret_bad", { "proxy-ssl-secret", "a/b/c" },
	  .reason = "proxy-ssl-secret 'a/b/c' is not a Secret" },
	{ "proxy_ssl_name_bad", { "proxy-ssl-name", "a b" }, .reason = "proxy-ssl-name 'a b'" },

	/* ---- nothing of these ---- */
	{ "none", { "nginx.ingress.kubernetes.io/proxy-next-upstream-tries", "3" },
	  .want = { .no_opts = true } },
};

static void check_want(const struct fg_route *r, const struct want *w, const char *tag)
{
	const struct fg_route_opts *o = r->opts;
	char buf[INET6_ADDRSTRLEN + 8], a[INET6_ADDRSTRLEN];
	size_t i;

	if (w->no_opts) {
		ASSERT_TRUE(o == NULL, tag);
		return;
	}
	if (!ASSERT_OK_PTR(o, tag))
		return;
	ASSERT_EQ(o->n_allow, w->n_allow, tag);
	ASSERT_EQ(o->n_deny, w->n_deny, tag);
	if (w->allow0 && o->n_allow) {
		inet_ntop(o->allow[0].family == FG_AF_INET ? AF_INET : AF_INET6,
			  o->allow[0].addr.bytes, a, sizeof(a));
		snprintf(buf, sizeof(buf), "%s/%u", a, o->allow[0].prefix);
		ASSERT_STREQ(buf, w->allow0, tag);
	}
	ASSERT_EQ(fg_route_is_regex(r), w->regex, tag);
	for (i = 0; i < 3 && w->matches[i]; i++)
		if (!ASSERT_TRUE(fg_route_path_matches(r, w->matches[i]), tag))
			printf("  %s should match %s\n", r->path, w->matches[i]);
	for (i = 0; i < 3 && w->misses[i]; i++)
		if (!ASSERT_FALSE(fg_route_path_matches(r, w->misses[i]), tag))
			printf("  %s should not match %s\n", r->path, w->misses[i]);
#define STR(f, v) ASSERT_STREQ(o->f ? o->f : "(none)", (v) ? (v) : "(none)", tag)
	STR(rewrite_target, w->rewrite);
	STR(app_root, w->app_root);
	STR(redirect, w->redirect);
	STR(upstream_vhost, w->vhost);
	STR(cookie_path, w->cookie_path);
	STR(cookie_samesite, w->samesite);
	if (w->affinity)
		STR(cookie_name, w->cookie);
#undef STR
	if (w->redirect)
		ASSERT_EQ(o->redirect_code, w->code, tag);
	ASSERT_EQ(o->connect_timeout_ms, w->connect_ms, tag);
	ASSERT_EQ(o->read_timeout_ms, w->read_ms, tag);
	ASSERT_EQ(o->send_timeout_ms, w->send_ms, tag);
	ASSERT_EQ(o->body_limit_set, w->body_set, tag);
	ASSERT_EQ(o->body_limit, w->body, tag);
	ASSERT_EQ(o->affinity, w->affinity, tag);
	ASSERT_EQ(o->aff_persistent, w->persistent, tag);
	ASSERT_EQ(o->aff_change_on_failure, w->change_on_failure, tag);
	ASSERT_EQ(o->cookie_secure, w->secure, tag);
	if (w->max_age)
		ASSERT_EQ(o->cookie_max_age, w->max_age, tag);
	if (w->expires)
		ASSERT_EQ(o->cookie_expires, w->expires, tag);
	if (w->affinity && !w->max_age)
		ASSERT_EQ(o->cookie_max_age, -1, tag);
	ASSERT_EQ(o->ssl_redirect, w->ssl_redirect == 1 ? 1 : w->ssl_redirect == 2 ? 0 : -1, tag);
	ASSERT_EQ(o->force_ssl_redirect, w->force_ssl, tag);
	ASSERT_EQ(o->backend_https, w->https, tag);
	ASSERT_EQ(o->proxy_ssl_verify, w->verify, tag);
	ASSERT_EQ(o->proxy_ssl_server_name, w->server_name, tag);
	ASSERT_STREQ(o->proxy_ssl_name ? o->proxy_ssl_name : "(none)",
		     w->ssl_name ? w->ssl_name : "(none)", tag);
	ASSERT_STREQ(o->proxy_ssl_secret ? o->proxy_ssl_secret : "(none)",
		     w->ssl_secret ? w->ssl_secret : "(none)", tag);
}

/* Each row alone, next to a plain Ingress that must stay untouched. */
static void subtest_table(void)
{
	static const char *const other_paths[] = { "/other", "Prefix", NULL };
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct parse_case *c = &cases[i];
		const char *paths[] = { c->path ? c->path : "/app", c->type ? c->type : "Prefix",
					NULL };
		json_t *fleet = json_pack("[o]", gateway());
		const struct fg_ingress_status *st, *other;
		const struct fg_route *r;
		struct fg_plan *p;

		json_array_append_new(fleet, ingress("ann", "2024-05-01T10:00:01Z", "a.example.com",
						     paths, c->anns));
		json_array_append_new(fleet, ingress("other", "2024-05-01T10:00:02Z",
						     "b.example.com", other_paths, NULL));
		p = compute(fleet);
		json_decref(fleet);
		if (!p)
			continue;
		st = status_of(p, "ann");
		other = status_of(p, "other");
		if (ASSERT_OK_PTR(st, c->name) && ASSERT_OK_PTR(other, c->name)) {
			ASSERT_TRUE(other->accepted, c->name);
			if (c->reason) {
				ASSERT_FALSE(st->accepted, c->name);
				if (!ASSERT_OK_PTR(strstr(st->reason, c->reason), c->name))
					printf("  %s: reason '%s'\n  want a part '%s'\n", c->name,
					       st->reason, c->reason);
				ASSERT_TRUE(route_of(p, "a.example.com", paths[0]) == NULL, c->name);
				ASSERT_OK_PTR(route_of(p, "b.example.com", "/other"), c->name);
			} else if (ASSERT_TRUE(st->accepted, c->name)) {
				r = route_of(p, "a.example.com", paths[0]);
				if (ASSERT_OK_PTR(r, c->name))
					check_want(r, &c->want, c->name);
			} else {
				printf("  %s: rejected: %s\n", c->name, st->reason);
			}
		}
		fg_plan_free(p);
	}
}

/*
 * ingress-nginx: when one Ingress of a host uses use-regex or
 * rewrite-target, every path of that host is a caseless regex prefix,
 * whatever Ingress it comes from; other hosts keep Kubernetes matching.
 * Regex paths are tried longest first.
 */
static void subtest_regex_host_wide(void)
{
	static const char *const a_paths[] = { "/a[0-9]+", "ImplementationSpecific", NULL };
	static const char *const a_anns[] = { "use-regex", "true", NULL };
	static const char *const b_paths[] = { "/b", "Prefix", "/exact", "Exact",
					       "/foo/bar", "Prefix", NULL };
	static const char *const c_paths[] = { "/b", "Prefix", NULL };
	json_t *fleet = json_pack("[o]", gateway());
	const struct fg_route *b, *ex, *c, *foo;
	struct fg_plan *p;
	size_t i, i_foo = 0, i_b = 0;

	json_array_append_new(fleet, ingress("a", "2024-05-01T10:00:01Z", "x.example.com", a_paths,
					     a_anns));
	json_array_append_new(fleet, ingress("b", "2024-05-01T10:00:02Z", "x.example.com", b_paths,
					     NULL));
	json_array_append_new(fleet, ingress("c", "2024-05-01T10:00:03Z", "y.example.com", c_paths,
					     NULL));
	p = compute(fleet);
	json_decref(fleet);
	if (!p)
		return;
	b = route_of(p, "x.example.com", "/b");
	ex = route_of(p, "x.example.com", "/exact");
	foo = route_of(p, "x.example.com", "/foo/bar");
	c = route_of(p, "y.example.com", "/b");
	if (ASSERT_OK_PTR(b, "b") && ASSERT_OK_PTR(ex, "exact") && ASSERT_OK_PTR(c, "c") &&
	    ASSERT_OK_PTR(foo, "foo")) {
		ASSERT_TRUE(fg_route_is_regex(b), "b: regex (same host)");
		ASSERT_TRUE(fg_route_path_matches(b, "/bx"), "b: a regex prefix matches /bx");
		ASSERT_TRUE(fg_route_path_matches(b, "/B/y"), "b: caseless");
		ASSERT_TRUE(fg_route_is_regex(ex), "Exact: a regex prefix too");
		ASSERT_TRUE(fg_route_path_matches(ex, "/exact/more"), "Exact: prefix now");
		ASSERT_FALSE(fg_route_is_regex(c), "c: other host, not a regex");
		ASSERT_FALSE(fg_route_path_matches(c, "/bx"), "c: element-wise prefix");
		ASSERT_TRUE(b->opts == ex->opts, "one object per Ingress");
	}
	for (i = 0; i < p->n_routes; i++) {
		if (&p->routes[i] == foo)
			i_foo = i;
		if (&p->routes[i] == b)
			i_b = i;
	}
	ASSERT_LT(i_foo, i_b, "longer regex paths first");
	/* fleetgatectl get routes -o json says which paths are regexes. */
	{
		json_t *rs = fg_plan_routes_json(p), *e;
		int regex = 0, plain = 0;

		json_array_foreach(rs, i, e) {
			json_t *a = json_object_get(e, "annotations");

			if (json_is_true(json_object_get(a, "pathRegex")))
				regex++;
			else if (!a)
				plain++;
		}
		ASSERT_EQ(regex, 4, "routes json: the four paths of x.example.com are regexes");
		ASSERT_EQ(plain, 1, "routes json: y.example.com's has no annotations");
		json_decref(rs);
	}
	fg_plan_free(p);
}

/* The template expansion of redirects and rewrite targets. */
static void subtest_expand(void)
{
	static const char subject[] = "/something/new";
	size_t ov[] = { 0, 14, 10, 11, FG_REGEX_UNSET, FG_REGEX_UNSET, 11, 14 };
	struct fg_expand_vars v = {
		.subject = subject, .ovector = ov, .n_pairs = 4,
		.request_uri = "/p?q=1", .request_uri_len = 6, .uri = "/p", .uri_len = 2,
		.args = "q=1", .args_len = 3, .host = "h.example", .host_len = 9,
		.http_host = "h.example:8080", .http_host_len = 14, .scheme = "http",
	};
	static const struct {
		const char *tmpl, *want;
		int rc;
	} t[] = {
		{ "/$3", "/new", 0 },
		{ "/x$1$2y", "/x/y", 0 },
		{ "$0", "/something/new", 0 },
		{ "/${3}s", "/news", 0 },
		{ "/$9", "/", 0 },
		{ "https://a.example$request_uri", "https://a.example/p?q=1", 0 },
		{ "$scheme://$http_host$uri$is_args$args", "http://h.example:8080/p?q=1", 0 },
		{ "//${host}", "//h.example", 0 },
		{ "/$nope", NULL, -EINVAL },
		{ "/a$", NULL, -EINVAL },
		{ "/${uri", NULL, -EINVAL },
		{ "/$uri2", NULL, -EINVAL },   /* nginx reads the name "uri2" */
		{ "/$HOST", NULL, -EINVAL },
	};
	char out[128];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = fg_expand(t[i].tmpl, &v, out, sizeof(out));

		if (t[i].want) {
			if (ASSERT_GE(rc, 0, t[i].tmpl))
				ASSERT_STREQ(out, t[i].want, t[i].tmpl);
		} else {
			ASSERT_EQ(rc, t[i].rc, t[i].tmpl);
		}
	}
	ASSERT_EQ(fg_expand("/$request_uri", &v, out, 5), -ENOSPC, "too small");
}

/* CIDR lists and matching. */
static void subtest_cidr(void)
{
	struct fg_cidr *v = NULL;
	struct fg_addr a;
	char bad[96];
	size_t n = 0;

	if (!ASSERT_OK(fg_cidr_list_parse("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::ffff:0:0/96,0.0.0.0/0",
					  &v, &n, bad, sizeof(bad)), "parse"))
		return;
	ASSERT_EQ(n, 5, "n");
	inet_pton(AF_INET, "10.200.3.4", &a.v4);
	ASSERT_TRUE(fg_cidr_match(v, 1, FG_AF_INET, &a), "10/8 has 10.200.3.4");
	inet_pton(AF_INET, "11.0.0.1", &a.v4);
	ASSERT_FALSE(fg_cidr_match(v, 2, FG_AF_INET, &a), "11.0.0.1 in neither");
	ASSERT_TRUE(fg_cidr_match(v, 5, FG_AF_INET, &a), "0.0.0.0/0 has everything v4");
	inet_pton(AF_INET, "192.0.2.7", &a.v4);
	ASSERT_TRUE(fg_cidr_match(v + 1, 1, FG_AF_INET, &a), "a /32");
	inet_pton(AF_INET6, "2001:db8:ffff::1", a.bytes);
	ASSERT_TRUE(fg_cidr_match(v, 5, FG_AF_INET6, &a), "2001:db8::/32");
	inet_pton(AF_INET6, "2001:db9::1", a.bytes);
	ASSERT_FALSE(fg_cidr_match(v, 3, FG_AF_INET6, &a), "2001:db9::1 outside");
	free(v);
}

/* A LoadBalancer Service's spec.loadBalancerSourceRanges become its L4
 * ports' allowlist; a bad one keeps the Service off the data plane (never
 * open to every source), the others are exposed. */
static void subtest_l4_source_ranges(void)
{
	json_t *fleet = json_pack("[o]", gateway());
	json_t *svc_tmpl = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:[{s:i, s:s}]}}",
				     "apiVersion", "v1", "kind", "Service", "metadata", "name",
				     "service1", "namespace", NS, "spec", "type", "LoadBalancer",
				     "ports", "port", 80, "protocol", "TCP");
	json_t *good = json_deep_copy(svc_tmpl), *bad, *ann;
	const char *why;
	struct fg_plan *p;
	size_t i, seen = 0;

	json_object_set_new(json_object_get(good, "spec"), "loadBalancerSourceRanges",
			    json_pack("[s, s]", "10.0.0.0/8", "2001:db8::/32"));
	json_array_append_new(fleet, good);
	/* The same Service name in another namespace is another Service. */
	bad = json_deep_copy(svc_tmpl);
	json_object_set_new(json_object_get(bad, "metadata"), "namespace", json_string("other"));
	json_object_set_new(json_object_get(bad, "spec"), "loadBalancerSourceRanges",
			    json_pack("[s]", "10.0.0.0/40"));
	json_array_append_new(fleet, bad);
	ann = json_deep_copy(svc_tmpl);
	json_object_set_new(json_object_get(ann, "metadata"), "annotations",
			    json_pack("{s:s}", "service.beta.kubernetes.io/load-balancer-source-ranges",
				      "192.0.2.0/24,198.51.100.1"));
	json_decref(svc_tmpl);
	p = compute(fleet);
	json_decref(fleet);
	if (!p)
		return;
	for (i = 0; i < p->n_l4; i++) {
		const struct fg_l4_port *lp = &p->l4[i];

		ASSERT_TRUE(strcmp(lp->ns, "other") != 0, "the bad one is not exposed");
		if (!strcmp(lp->ns, NS)) {
			seen++;
			ASSERT_EQ(lp->n_allow, 2, "field: two ranges");
			if (lp->n_allow == 2) {
				ASSERT_EQ(lp->allow[0].prefix, 8, "10/8");
				ASSERT_EQ(lp->allow[1].family, FG_AF_INET6, "v6");
			}
		}
	}
	ASSERT_EQ(seen, 1, "the good one is exposed");
	why = json_string_value(json_object_get(p->l4_rejected, "Service other/service1"));
	if (ASSERT_OK_PTR(why, "rejected with a reason"))
		ASSERT_OK_PTR(strstr(why, "spec.loadBalancerSourceRanges: '10.0.0.0/40' is not an "
				     "IP address or CIDR"), why);
	fg_plan_free(p);

	/* The annotation Kubernetes also reads, when the field is empty. */
	fleet = json_pack("[o, o]", gateway(), ann);
	p = compute(fleet);
	json_decref(fleet);
	if (!p)
		return;
	if (ASSERT_EQ(p->n_l4, 1, "annotation form: exposed") && ASSERT_EQ(p->l4[0].n_allow, 2, "two"))
		ASSERT_EQ(p->l4[0].allow[1].prefix, 32, "an address is a /32");
	fg_plan_free(p);
}

FG_TEST(annotations_parse)
{
	if (test__start_subtest("table"))
		subtest_table();
	if (test__start_subtest("regex_host_wide"))
		subtest_regex_host_wide();
	if (test__start_subtest("expand"))
		subtest_expand();
	if (test__start_subtest("cidr"))
		subtest_cidr();
	if (test__start_subtest("l4_source_ranges"))
		subtest_l4_source_ranges();
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The everyday Ingress annotations (ingress-nginx names, docs/annotations.md):
 * source ranges, use-regex and rewrite-target, redirects, upstream-vhost,
 * timeouts, body size and cookie affinity, parsed once per Ingress into an
 * immutable, reference-counted struct fg_route_opts (routes.h) that the
 * plan's routes and the proxy's snapshots share. Pure: no I/O, no clock.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <arpa/inet.h>

#include "fg_regex.h"
#include "routes.h"

#define DEFAULT_COOKIE_NAME "INGRESSCOOKIE"
#define MAX_RANGES 1024       /* CIDRs in one source-range annotation */
#define MAX_TIMEOUT_S (UINT_MAX / 1000)
#define MAX_VALUE_LEN 2048    /* URLs, targets, cookie attributes */
#define MAX_BODY_SIZE (1ULL << 62) /* what HTTP framing takes (http.h) */

static void reasonf(char *buf, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void reasonf(char *buf, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, FG_REASON_LEN, fmt, ap);
	va_end(ap);
}

/* ---------- reference counting ---------- */

struct fg_route_opts *fg_route_opts_get(struct fg_route_opts *o)
{
	if (o)
		__atomic_add_fetch(&o->refs, 1, __ATOMIC_RELAXED);
	return o;
}

static void opts_free(struct fg_route_opts *o)
{
	size_t i;

	for (i = 0; i < o->n_paths; i++) {
		free(o->paths[i].path);
		fg_regex_free(o->paths[i].re);
	}
	free(o->paths);
	free(o->allow);
	free(o->deny);
	free(o->rewrite_target);
	free(o->app_root);
	free(o->redirect);
	free(o->upstream_vhost);
	free(o->cookie_name);
	free(o->cookie_path);
	free(o->cookie_samesite);
	free(o->proxy_ssl_name);
	free(o->proxy_ssl_secret);
	free(o);
}

void fg_route_opts_put(struct fg_route_opts *o)
{
	if (o && !__atomic_sub_fetch(&o->refs, 1, __ATOMIC_ACQ_REL))
		opts_free(o);
}

/* ---------- source ranges ---------- */

static void mask_bytes(__u8 *b, size_t len, unsigned prefix)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned keep = prefix >= 8 ? 8 : prefix;

		b[i] &= keep ? (__u8)(0xff << (8 - keep)) : 0;
		prefix -= keep;
	}
}

/* "10.0.0.0/8", "192.0.2.7" (a /32), "2001:db8::/32", "::1" (a /128). */
static bool parse_cidr(const char *s, size_t n, struct fg_cidr *c)
{
	char buf[INET6_ADDRSTRLEN + 8];
	const char *slash;
	unsigned long prefix;
	char *end;
	int max;

	if (!n || n >= sizeof(buf))
		return false;
	memcpy(buf, s, n);
	buf[n] = '\0';
	memset(c, 0, sizeof(*c));
	slash = strchr(buf, '/');
	if (slash)
		buf[slash - buf] = '\0';
	if (inet_pton(AF_INET, buf, &c->addr.v4) == 1) {
		c->family = FG_AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, buf, c->addr.bytes) == 1) {
		c->family = FG_AF_INET6;
		max = 128;
	} else {
		return false;
	}
	prefix = max;
	if (slash) {
		if (!isdigit((unsigned char)slash[1]))
			return false;
		errno = 0;
		prefix = strtoul(slash + 1, &end, 10);
		if (errno || *end || prefix > (unsigned long)max)
			return false;
	}
	c->prefix = (__u8)prefix;
	/* nginx's allow/deny ignore host bits ("low address bits are
	 * meaningless"): cleared, so matching needs no mask per request. */
	mask_bytes(c->addr.bytes, c->family == FG_AF_INET ? 4 : 16, c->prefix);
	return true;
}

int fg_cidr_list_parse(const char *s, struct fg_cidr **out, size_t *n_out, char *bad,
		       size_t bad_len)
{
	struct fg_cidr *v = NULL;
	size_t n = 0, cap = 0;

	*out = NULL;
	*n_out = 0;
	for (;;) {
		size_t len;

		while (*s == ' ' || *s == '\t')
			s++;
		len = strcspn(s, ",");
		while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
			len--;
		if (n == cap) {
			struct fg_cidr *nv;

			if (cap == MAX_RANGES) {
				snprintf(bad, bad_len, "more than %d ranges", MAX_RANGES);
				goto err;
			}
			cap = cap ? cap * 2 : 4;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return -ENOMEM;
			}
			v = nv;
		}
		if (!parse_cidr(s, len, &v[n])) {
			snprintf(bad, bad_len, "'%.*s' is not an IP address or CIDR",
				 (int)(len < 64 ? len : 64), s);
			goto err;
		}
		n++;
		s += strcspn(s, ",");
		if (!*s)
			break;
		s++;
	}
	*out = v;
	*n_out = n;
	return 0;
err:
	free(v);
	return -EINVAL;
}

bool fg_cidr_match(const struct fg_cidr *v, size_t n, int family, const struct fg_addr *a)
{
	struct fg_addr m;
	size_t i;

	for (i = 0; i < n; i++) {
		size_t len = v[i].family == FG_AF_INET ? 4 : 16;

		if (v[i].family != family)
			continue;
		memcpy(m.bytes, a->bytes, len);
		mask_bytes(m.bytes, len, v[i].prefix);
		if (!memcmp(m.bytes, v[i].addr.bytes, len))
			return true;
	}
	return false;
}

/* ---------- values ---------- */

/* Strict decimal, no sign. */
static bool parse_ull(const char *s, unsigned long long max, unsigned long long *out)
{
	unsigned long long v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (!isdigit((unsigned char)*s))
			return false;
		if (v > (max - (*s - '0')) / 10)
			return false;
		v = v * 10 + (*s - '0');
	}
	*out = v;
	return true;
}

int fg_size_parse(const char *s, unsigned long long *out)
{
	static const struct { char unit; unsigned shift; } units[] = {
		{ 'k', 10 }, { 'K', 10 }, { 'm', 20 }, { 'M', 20 }, { 'g', 30 }, { 'G', 30 },
	};
	char num[32];
	size_t n = strlen(s), i;
	unsigned shift = 0;
	unsigned long long v;

	if (!n || n >= sizeof(num))
		return -EINVAL;
	memcpy(num, s, n + 1);
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (num[n - 1] == units[i].unit) {
			shift = units[i].shift;
			num[--n] = '\0';
			break;
		}
	}
	if (!parse_ull(num, MAX_BODY_SIZE >> shift, &v))
		return -EINVAL;
	*out = v << shift;
	return 0;
}

/* A request-target or URL byte we write out as it is: visible ASCII,
 * nothing that ends a field or starts a fragment. */
static bool url_byte(unsigned char c)
{
	return c > 0x20 && c < 0x7f && c != '#';
}

/* The nginx variables a redirect URL or rewrite target may use. */
static const char *const known_vars[] = {
	"request_uri", "uri", "args", "query_string", "is_args", "host", "http_host", "scheme",
};

static int var_index(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(known_vars) / sizeof(known_vars[0]); i++)
		if (strlen(known_vars[i]) == len && !memcmp(known_vars[i], name, len))
			return (int)i;
	return -1;
}

int fg_expand(const char *tmpl, const struct fg_expand_vars *v, char *out, size_t cap)
{
	size_t o = 0;

	if (!cap)
		return -ENOSPC;
#define PUT(p, l)                                                             \
	do {                                                                  \
		size_t _l = (l);                                              \
		if (o + _l >= cap)                                            \
			return -ENOSPC;                                       \
		memcpy(out + o, (p), _l);                                     \
		o += _l;                                                      \
	} while (0)
	while (*tmpl) {
		const char *name;
		size_t len;
		bool brace;
		int k;

		if (*tmpl != '$') {
			PUT(tmpl, 1);
			tmpl++;
			continue;
		}
		tmpl++;
		brace = *tmpl == '{';
		name = tmpl + brace;
		if (isdigit((unsigned char)*name)) {
			/* $N: capture group N of the path regex, "" when it
			 * did not take part (nginx's rewrite). */
			int g = *name - '0';

			len = 1;
			if (brace && name[1] != '}')
				return -EINVAL;
			if (v && v->subject && g < v->n_pairs &&
			    v->ovector[2 * g] != FG_REGEX_UNSET)
				PUT(v->subject + v->ovector[2 * g],
				    v->ovector[2 * g + 1] - v->ovector[2 * g]);
		} else {
			/* nginx's variable name: letters, digits, '_' */
			for (len = 0; isalnum((unsigned char)name[len]) || name[len] == '_'; len++)
				;
			k = len ? var_index(name, len) : -1;
			if (k < 0 || (brace && name[len] != '}'))
				return -EINVAL;
			if (v) {
				const char *val = "";
				size_t vl = 0;

				switch (k) {
				case 0: val = v->request_uri; vl = v->request_uri_len; break;
				case 1: val = v->uri; vl = v->uri_len; break;
				case 2:
				case 3: val = v->args; vl = v->args_len; break;
				case 4: val = "?"; vl = v->args_len ? 1 : 0; break;
				case 5: val = v->host; vl = v->host_len; break;
				case 6: val = v->http_host; vl = v->http_host_len; break;
				case 7: val = v->scheme; vl = strlen(v->scheme); break;
				}
				if (vl)
					PUT(val, vl);
			}
		}
		tmpl = name + len + brace;
	}
#undef PUT
	out[o] = '\0';
	return (int)o;
}

/* A template for fg_expand: URL bytes, known variables only. */
static bool template_valid(const char *s, bool fragment)
{
	char *out;
	const char *p;
	int r;

	for (p = s; *p; p++)
		if (!url_byte(*p) && !(fragment && *p == '#'))
			return false;
	out = malloc(strlen(s) + 1);
	if (!out)
		return false;
	r = fg_expand(s, NULL, out, strlen(s) + 1);
	free(out);
	return r >= 0;
}

static bool http_url(const char *s)
{
	size_t n = !strncasecmp(s, "http://", 7) ? 7 : !strncasecmp(s, "https://", 8) ? 8 : 0;

	/* A Location may carry a fragment ("#/app"). */
	return n && s[n] && s[n] != '/' && template_valid(s, true);
}

/* RFC 6265 cookie-name: a token. */
static bool token(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("!#$%&'*+-.^_`|~", *s)))
			return false;
	return true;
}

/* A cookie attribute value: visible ASCII without ';' (RFC 6265
 * av-octet), no comma or quote either, to keep the field simple. */
static bool cookie_av(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s <= 0x20 || *s >= 0x7f || *s == ';' || *s == ',' || *s == '"')
			return false;
	return true;
}

/* A Host value: name or address literal, optional port. */
static bool host_value(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || strchr("-.:[]_", *s)))
			return false;
	return true;
}

static int bool_ann(json_t *ing, const char *key, bool *out, char *reason)
{
	const char *v = fg_annotation(ing, key);

	if (!v)
		return 0;
	if (!strcmp(v, "true")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "false")) {
		*out = false;
		return 0;
	}
	reasonf(reason, "%s '%.32s' is neither \"true\" nor \"false\"", key, v);
	return -EINVAL;
}

static int seconds_ann(json_t *ing, const char *key, __u32 *ms, bool *any, char *reason)
{
	const char *v = fg_annotation(ing, key);
	unsigned long long s;

	if (!v)
		return 0;
	*any = true;
	if (!parse_ull(v, MAX_TIMEOUT_S, &s) || !s) {
		reasonf(reason, "%s '%.32s' is not a whole number of seconds from 1 to %u "
			"(no unit)", key, v, MAX_TIMEOUT_S);
		return -EINVAL;
	}
	*ms = (__u32)(s * 1000);
	return 0;
}

static int cookie_seconds(json_t *ing, const char *key, long long *out, bool *any, char *reason)
{
	const char *v = fg_annotation(ing, key);
	unsigned long long s;

	*out = -1;
	if (!v)
		return 0;
	*any = true;
	if (!parse_ull(v, INT_MAX, &s)) {
		reasonf(reason, "%s '%.32s' is not a whole number of seconds from 0 to %d", key, v,
			INT_MAX);
		return -EINVAL;
	}
	*out = (long long)s;
	return 0;
}

/* A string annotation kept as it is, when its checker accepts it. */
static int str_ann(json_t *ing, const char *key, bool (*ok)(const char *), const char *what,
		   char **out, bool *any, char *reason)
{
	const char *v = fg_annotation(ing, key);

	if (!v)
		return 0;
	*any = true;
	if (strlen(v) > MAX_VALUE_LEN || !ok(v)) {
		reasonf(reason, "%s '%.96s' is not %s", key, v, what);
		return -EINVAL;
	}
	*out = strdup(v);
	return *out ? 0 : -ENOMEM;
}

static bool app_root_ok(const char *s)
{
	if (s[0] != '/')
		return false;
	for (; *s; s++)
		if (!url_byte(*s) || *s == '$')
			return false;
	return true;
}

static bool rewrite_ok(const char *s)
{
	return (s[0] == '/' || s[0] == '$') && template_valid(s, false);
}

static bool cookie_path_ok(const char *s)
{
	return s[0] == '/' && cookie_av(s);
}

static bool samesite_ok(const char *s)
{
	return !strcasecmp(s, "None") || !strcasecmp(s, "Lax") || !strcasecmp(s, "Strict");
}

static int parse_ranges(json_t *ing, struct fg_route_opts *o, bool *any, char *reason)
{
	static const char *const allow_keys[] = { "allowlist-source-range",
						  "whitelist-source-range" };
	static const char *const deny_keys[] = { "denylist-source-range",
						 "blacklist-source-range" };
	char bad[96];
	size_t i;
	int err;

	for (i = 0; i < 2; i++) {
		const char *key = allow_keys[i], *v = fg_annotation(ing, key);

		if (!v)
			continue;
		*any = true;
		err = fg_cidr_list_parse(v, &o->allow, &o->n_allow, bad, sizeof(bad));
		if (err == -EINVAL)
			reasonf(reason, "%s '%.64s': %s", key, v, bad);
		if (err)
			return err;
		break;
	}
	for (i = 0; i < 2; i++) {
		const char *key = deny_keys[i], *v = fg_annotation(ing, key);

		if (!v)
			continue;
		*any = true;
		err = fg_cidr_list_parse(v, &o->deny, &o->n_deny, bad, sizeof(bad));
		if (err == -EINVAL)
			reasonf(reason, "%s '%.64s': %s", key, v, bad);
		if (err)
			return err;
		break;
	}
	return 0;
}

/* temporal-redirect (302, or temporal-redirect-code) wins over
 * permanent-redirect (301, or permanent-redirect-code), as in
 * ingress-nginx. */
static int parse_redirect(json_t *ing, struct fg_route_opts *o, bool *any, char *reason)
{
	static const struct { const char *url, *code; int dflt; } kinds[] = {
		{ "temporal-redirect", "temporal-redirect-code", 302 },
		{ "permanent-redirect", "permanent-redirect-code", 301 },
	};
	size_t i;
	int err;

	for (i = 0; i < 2; i++) {
		const char *code = fg_annotation(ing, kinds[i].code);
		unsigned long long c = kinds[i].dflt;

		if (code) {
			*any = true;
			if (!parse_ull(code, 999, &c) || c < 300 || c > 308) {
				reasonf(reason, "%s '%.32s' is not a redirect status from 300 to 308",
					kinds[i].code, code);
				return -EINVAL;
			}
		}
		if (o->redirect)
			continue; /* a temporal one was given: still checked */
		err = str_ann(ing, kinds[i].url, http_url,
			      "an http:// or https:// URL (nginx variables: $request_uri, $uri, "
			      "$args, $is_args, $host, $http_host, $scheme)",
			      &o->redirect, any, reason);
		if (err)
			return err;
		if (o->redirect)
			o->redirect_code = (int)c;
	}
	return 0;
}

static int parse_affinity(json_t *ing, struct fg_route_opts *o, bool *any, char *reason)
{
	const char *type = fg_annotation(ing, "affinity");
	const char *mode = fg_annotation(ing, "affinity-mode");
	const char *name = fg_annotation(ing, "session-cookie-name");
	bool unused = false;
	int err;

	o->cookie_max_age = o->cookie_expires = -1;
	if (!type)
		return 0;
	*any = true;
	if (strcmp(type, "cookie")) {
		reasonf(reason, "affinity '%.32s' is not \"cookie\" (the only affinity type)", type);
		return -EINVAL;
	}
	o->affinity = true;
	if (mode && strcmp(mode, "balanced") && strcmp(mode, "persistent")) {
		reasonf(reason, "affinity-mode '%.32s' is neither \"balanced\" nor \"persistent\"",
			mode);
		return -EINVAL;
	}
	o->aff_persistent = mode && !strcmp(mode, "persistent");
	if (name && (strlen(name) > 128 || !token(name))) {
		reasonf(reason, "session-cookie-name '%.64s' is not a cookie name (an RFC 6265 "
			"token)", name);
		return -EINVAL;
	}
	o->cookie_name = strdup(name ? name : DEFAULT_COOKIE_NAME);
	if (!o->cookie_name)
		return -ENOMEM;
	err = str_ann(ing, "session-cookie-path", cookie_path_ok,
		      "a cookie path (starting with /, no ';', space or control byte)",
		      &o->cookie_path, &unused, reason);
	if (!err)
		err = str_ann(ing, "session-cookie-samesite", samesite_ok,
			      "None, Lax or Strict", &o->cookie_samesite, &unused, reason);
	if (!err)
		err = cookie_seconds(ing, "session-cookie-max-age", &o->cookie_max_age, &unused,
				     reason);
	if (!err)
		err = cookie_seconds(ing, "session-cookie-expires", &o->cookie_expires, &unused,
				     reason);
	if (!err)
		err = bool_ann(ing, "session-cookie-change-on-failure", &o->aff_change_on_failure,
			       reason);
	if (!err)
		err = bool_ann(ing, "session-cookie-secure", &o->cookie_secure, reason);
	return err;
}

/* The Ingress's paths, as regexes when it asks for them. */
static int parse_paths(struct fg_route_opts *o, const char *const *paths, size_t n, bool regex,
		       char *reason)
{
	size_t i;

	o->paths = calloc(n ? n : 1, sizeof(*o->paths));
	if (!o->paths)
		return -ENOMEM;
	o->n_paths = n;
	for (i = 0; i < n; i++) {
		char msg[FG_REGEX_ERR_LEN];
		int err;

		o->paths[i].path = strdup(paths[i]);
		if (!o->paths[i].path)
			return -ENOMEM;
		if (!regex)
			continue;
		err = fg_regex_compile_flags(&o->paths[i].re, paths[i],
					     FG_REGEX_F_CASELESS | FG_REGEX_F_ANCHORED, msg,
					     sizeof(msg));
		if (err == -EINVAL)
			reasonf(reason, "path '%.64s' is not a valid regex (use-regex or "
				"rewrite-target make paths regexes): %s", paths[i], msg);
		if (err)
			return err;
	}
	return 0;
}

/* nginx's "on"/"off" switches (proxy-ssl-verify, proxy-ssl-server-name). */
static int onoff_ann(json_t *ing, const char *key, bool *out, bool *any, char *reason)
{
	const char *v = fg_annotation(ing, key);

	if (!v)
		return 0;
	*any = true;
	if (!strcmp(v, "on") || !strcmp(v, "off")) {
		*out = !strcmp(v, "on");
		return 0;
	}
	reasonf(reason, "%s '%.32s' is neither \"on\" nor \"off\"", key, v);
	return -EINVAL;
}

static bool secret_ref_ok(const char *s)
{
	size_t n = strlen(s), i, slashes = 0;

	if (!n || n > FG_ID_LEN * 5 || s[0] == '/' || s[n - 1] == '/')
		return false;
	for (i = 0; i < n; i++) {
		if (s[i] == '/')
			slashes++;
		else if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
			   s[i] == '-' || s[i] == '.'))
			return false;
	}
	return slashes <= 1;
}

/* The TLS annotations: redirects to https, and TLS toward the endpoints. */
static int parse_tls(json_t *ing, struct fg_route_opts *o, bool *any, char *reason)
{
	const char *v;
	bool b = false;
	int err = 0;

	o->ssl_redirect = -1;
	if ((v = fg_annotation(ing, "ssl-redirect"))) {
		*any = true;
		err = bool_ann(ing, "ssl-redirect", &b, reason);
		o->ssl_redirect = b;
	}
	if (!err && fg_annotation(ing, "force-ssl-redirect")) {
		*any = true;
		err = bool_ann(ing, "force-ssl-redirect", &o->force_ssl_redirect, reason);
	}
	if (!err && (v = fg_annotation(ing, "backend-protocol"))) {
		*any = true;
		if (!strcasecmp(v, "HTTPS")) {
			o->backend_https = true;
		} else if (strcasecmp(v, "HTTP")) {
			reasonf(reason, "backend-protocol '%.32s' is not supported (HTTP or HTTPS; "
				"GRPC, GRPCS, FCGI and AJP are not)", v);
			err = -EINVAL;
		}
	}
	if (!err)
		err = onoff_ann(ing, "proxy-ssl-verify", &o->proxy_ssl_verify, any, reason);
	if (!err)
		err = onoff_ann(ing, "proxy-ssl-server-name", &o->proxy_ssl_server_name, any,
				reason);
	if (!err)
		err = str_ann(ing, "proxy-ssl-name", host_value, "a host name", &o->proxy_ssl_name,
			      any, reason);
	if (!err)
		err = str_ann(ing, "proxy-ssl-secret", secret_ref_ok,
			      "a Secret as namespace/name (or name, in the Ingress's namespace)",
			      &o->proxy_ssl_secret, any, reason);
	if (!err && o->proxy_ssl_secret && !strchr(o->proxy_ssl_secret, '/')) {
		const char *ns = json_string_value(json_object_get(json_object_get(ing, "metadata"),
								   "namespace"));
		char *full = NULL;

		if (asprintf(&full, "%s/%s", ns && *ns ? ns : "default", o->proxy_ssl_secret) < 0)
			return -ENOMEM;
		free(o->proxy_ssl_secret);
		o->proxy_ssl_secret = full;
	}
	return err;
}

/* Every annotation this file reads (after its prefix). */
static const char *const known[] = {
	"allowlist-source-range", "whitelist-source-range", "denylist-source-range",
	"blacklist-source-range", "use-regex", "rewrite-target", "app-root",
	"temporal-redirect", "temporal-redirect-code", "permanent-redirect",
	"permanent-redirect-code", "upstream-vhost", "proxy-connect-timeout",
	"proxy-read-timeout", "proxy-send-timeout", "proxy-body-size", "affinity",
	"affinity-mode", "session-cookie-name", "session-cookie-path", "session-cookie-max-age",
	"session-cookie-expires", "session-cookie-samesite", "session-cookie-secure",
	"session-cookie-change-on-failure", "ssl-redirect", "force-ssl-redirect",
	"backend-protocol", "proxy-ssl-verify", "proxy-ssl-secret", "proxy-ssl-name",
	"proxy-ssl-server-name",
};

/* One pass over the Ingress's annotations: most Ingresses set none of
 * these, and the plan is computed for every one of them (100k). */
static bool any_known(json_t *ing)
{
	static const char *const prefixes[] = { "nginx.ingress.kubernetes.io/", "higress.io/",
						"mse.ingress.kubernetes.io/" };
	json_t *anns = json_object_get(json_object_get(ing, "metadata"), "annotations"), *v;
	const char *key;
	size_t i, j;

	json_object_foreach(anns, key, v) {
		for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
			size_t n = strlen(prefixes[i]);

			if (strncmp(key, prefixes[i], n))
				continue;
			for (j = 0; j < sizeof(known) / sizeof(known[0]); j++)
				if (!strcmp(key + n, known[j]))
					return true;
		}
	}
	return false;
}

int fg_route_opts_parse(json_t *ing, const char *const *paths, size_t n_paths,
			struct fg_route_opts **out, char *reason)
{
	struct fg_route_opts *o;
	const char *v;
	bool any = false, regex;
	int err;

	*out = NULL;
	if (!any_known(ing))
		return 0;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->refs = 1;
	o->cookie_max_age = o->cookie_expires = -1;
	o->ssl_redirect = -1;
	err = parse_ranges(ing, o, &any, reason);
	if (!err && (v = fg_annotation(ing, "use-regex"))) {
		any = true;
		err = bool_ann(ing, "use-regex", &o->use_regex, reason);
	}
	if (!err)
		err = str_ann(ing, "rewrite-target", rewrite_ok,
			      "a path starting with / or $N (capture groups $1..$9)",
			      &o->rewrite_target, &any, reason);
	if (!err)
		err = str_ann(ing, "app-root", app_root_ok, "a path starting with /",
			      &o->app_root, &any, reason);
	if (!err)
		err = parse_redirect(ing, o, &any, reason);
	if (!err)
		err = str_ann(ing, "upstream-vhost", host_value, "a host name or address, with "
			      "an optional :port", &o->upstream_vhost, &any, reason);
	if (!err)
		err = seconds_ann(ing, "proxy-connect-timeout", &o->connect_timeout_ms, &any,
				  reason);
	if (!err)
		err = seconds_ann(ing, "proxy-read-timeout", &o->read_timeout_ms, &any, reason);
	if (!err)
		err = seconds_ann(ing, "proxy-send-timeout", &o->send_timeout_ms, &any, reason);
	if (!err && (v = fg_annotation(ing, "proxy-body-size"))) {
		any = true;
		o->body_limit_set = true;
		if (fg_size_parse(v, &o->body_limit)) {
			reasonf(reason, "proxy-body-size '%.32s' is not a size (bytes, or a number "
				"with k, m or g; 0: no limit)", v);
			err = -EINVAL;
		}
	}
	if (!err)
		err = parse_affinity(ing, o, &any, reason);
	if (!err)
		err = parse_tls(ing, o, &any, reason);
	if (!err && o->affinity && o->use_regex && !o->cookie_path) {
		/* A regex is no cookie path (ingress-nginx says the same). */
		reasonf(reason, "affinity with use-regex needs session-cookie-path");
		err = -EINVAL;
	}
	/* ingress-nginx: rewrite-target makes the paths regexes, with or
	 * without use-regex. */
	regex = o->use_regex || o->rewrite_target;
	if (!err && any)
		err = parse_paths(o, paths, n_paths, regex, reason);
	if (err || !any) {
		opts_free(o);
		return err;
	}
	*out = o;
	return 0;
}

/* ---------- regex paths ---------- */

bool fg_route_is_regex(const struct fg_route *r)
{
	return r->opts && r->path_idx < r->opts->n_paths && r->opts->paths[r->path_idx].re;
}

bool fg_route_path_matches(const struct fg_route *r, const char *path)
{
	if (fg_route_is_regex(r))
		return fg_regex_match(r->opts->paths[r->path_idx].re, path, strlen(path));
	return fg_path_matches(r->type, r->path, path);
}

static void host_key(char *buf, size_t len, const struct fg_route *r)
{
	snprintf(buf, len, "%d\x1f%s", r->wildcard, r->host);
}

/* Opts for the routes of an Ingress that has none: the paths of its
 * routes, no annotation, shared by them. */
static int opts_for_ingress(struct fg_route *routes, size_t n, const char *ingress)
{
	struct fg_route_opts *o;
	size_t i, n_paths = 0;

	for (i = 0; i < n; i++)
		if (!strcmp(routes[i].ingress, ingress) && routes[i].path_idx >= n_paths)
			n_paths = routes[i].path_idx + 1u;
	o = calloc(1, sizeof(*o));
	if (!o)
		return -ENOMEM;
	o->refs = 1;
	o->cookie_max_age = o->cookie_expires = -1;
	o->ssl_redirect = -1;
	o->paths = calloc(n_paths ? n_paths : 1, sizeof(*o->paths));
	if (!o->paths) {
		free(o);
		return -ENOMEM;
	}
	o->n_paths = n_paths;
	for (i = 0; i < n; i++) {
		struct fg_route_path *rp = &o->paths[routes[i].path_idx];

		if (strcmp(routes[i].ingress, ingress) || rp->path)
			continue;
		rp->path = strdup(routes[i].path);
		if (!rp->path) {
			opts_free(o);
			return -ENOMEM;
		}
	}
	for (i = 0; i < n; i++)
		if (!strcmp(routes[i].ingress, ingress) && !routes[i].opts)
			routes[i].opts = fg_route_opts_get(o);
	fg_route_opts_put(o); /* the routes hold it */
	return 0;
}

int fg_routes_enforce_regex(struct fg_route *routes, size_t n)
{
	json_t *hosts = json_object();
	char key[FG_HOST_LEN + 8];
	size_t i;
	int err = 0;

	if (!hosts)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		if (routes[i].is_default || !fg_route_is_regex(&routes[i]))
			continue;
		host_key(key, sizeof(key), &routes[i]);
		if (json_object_set_new(hosts, key, json_true())) {
			err = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < n && json_object_size(hosts); i++) {
		struct fg_route *r = &routes[i];
		struct fg_route_opts *o;
		struct fg_route_path *rp;

		if (r->is_default || fg_route_is_regex(r))
			continue;
		host_key(key, sizeof(key), r);
		if (!json_object_get(hosts, key))
			continue;
		if (!r->opts) {
			err = opts_for_ingress(routes, n, r->ingress);
			if (err)
				goto out;
		}
		o = r->opts;
		if (r->path_idx >= o->n_paths)
			continue;
		rp = &o->paths[r->path_idx];
		/* A path that is no valid regex stays a Kubernetes path
		 * (nginx would refuse the whole configuration). */
		err = fg_regex_compile_flags(&rp->re, r->path,
					     FG_REGEX_F_CASELESS | FG_REGEX_F_ANCHORED, NULL, 0);
		if (err == -ENOMEM)
			goto out;
		err = 0;
	}
out:
	json_decref(hosts);
	return err;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kubernetes API sources (see kube.h): one worker thread drives every
 * LIST/WATCH transfer through one libcurl multi handle; the objects live in
 * per-resource maps guarded by k->lock; fg_kube_process() copies references
 * to them into the snapshot the foreach calls walk.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <curl/curl.h>

#include "compact.h"
#include "kube.h"
#include "log.h"
#include "manifest.h"

#define PAGE_SIZE_DEFAULT 500
#define WATCH_TIMEOUT_S 300
#define BACKOFF_MIN_MS 200.0
#define BACKOFF_MAX_MS 30000.0
#define NOTFOUND_RETRY_MS 30000.0
#define SHORT_STREAM_MS 1000.0
#define CONNECT_TIMEOUT_MS 10000L
#define LIST_TIMEOUT_MS 120000L
#define MAX_BODY (512u << 20)
#define MAX_ERR_BODY (64u << 10)
#define MAX_KUBECONFIG (4u << 20)
#define SECRET_LABEL "fleetgate.io/cluster-id"
#define SA_DIR "/var/run/secrets/kubernetes.io/serviceaccount"

struct rdef {
	const char *prefix;      /* "/api/v1", "/apis/GROUP/VERSION" */
	const char *resource;
	const char *api_version;
	const char *kind;
	const char *selector;    /* labelSelector, or NULL */
	bool hidden;             /* not shown by foreach, errors not fatal */
	const char *fields;      /* fieldSelector, or NULL */
};

static const struct rdef fleet_defs[] = {
	{ "/apis/mse.alibabacloud.com/v1alpha1", "mseingressconfigs",
	  "mse.alibabacloud.com/v1alpha1", "MseIngressConfig" },
	{ "/apis/networking.k8s.io/v1", "ingresses", "networking.k8s.io/v1", "Ingress" },
	{ "/api/v1", "services", "v1", "Service" },
	/* Certificates for Ingress spec.tls: only Secrets of that type
	 * reach fleetgate (the API server filters them). */
	{ "/api/v1", "secrets", "v1", "Secret", NULL, false, "type=kubernetes.io/tls" },
};
static const struct rdef secret_def = {
	"/api/v1", "secrets", "v1", "Secret", SECRET_LABEL, true,
};
static const struct rdef cluster_defs[] = {
	{ "/api/v1", "services", "v1", "Service" },
	{ "/api/v1", "endpoints", "v1", "Endpoints" },
	{ "/apis/discovery.k8s.io/v1", "endpointslices", "discovery.k8s.io/v1", "EndpointSlice" },
	{ "/api/v1", "pods", "v1", "Pod" },
};
#define MAX_WATCHERS 6

struct blob {
	unsigned char *data;
	size_t len;
};

struct auth {
	char *server;          /* no trailing '/' */
	char *ca_file;
	struct blob ca;
	bool insecure;
	char *cert_file;
	struct blob cert;
	char *key_file;
	struct blob key;
	char *token;
	char *token_file;
	char *userpwd;
	char *proxy;
};

enum wstate { W_IDLE, W_LIST, W_WATCH };

struct fg_kube;
struct source;

struct watcher {
	struct source *src;
	const struct rdef *def;
	CURL *easy;
	struct curl_slist *hdrs;
	enum wstate state;     /* the request in flight */
	bool want_list;        /* the next request is a LIST */
	double next_at;        /* when the next request may start (ms) */
	char *rv;              /* last resourceVersion seen */
	char *cont;            /* continue token of the LIST in progress */
	json_t *objs;          /* "ns/name" -> object (under k->lock) */
	json_t *pending;       /* the LIST in progress */
	bool synced;           /* listed once (under k->lock) */
	bool notfound_logged;
	int failures;
	char *error;           /* why it fails, or NULL (under k->lock) */
	/* the transfer */
	char *url;
	char *buf;
	size_t len, cap;
	long code;
	char status[96];       /* "401 Unauthorized" */
	bool got_headers;
	bool relist;           /* a 410 ERROR event arrived */
	char *stream_error;    /* another ERROR event */
	double started;
	double listed_at;      /* when the last LIST completed */
	unsigned long events;
	char errbuf[CURL_ERROR_SIZE];
};

struct source {
	struct fg_kube *k;
	char *origin;          /* NULL: the fleet */
	char *ns;
	struct auth auth;
	json_t *kubeconfig;    /* secret sources: what they were made from */
	bool from_secret;
	bool cluster_secrets;
	bool removed;
	size_t n_w;
	struct watcher w[MAX_WATCHERS];
	struct source *next;
};

struct snap_obj {
	const char *origin;
	json_t *obj;
};

struct snap_src {
	char *origin;
	char *error;
	bool synced;
};

struct fg_kube {
	pthread_mutex_t lock;
	pthread_t thread;
	bool thread_started;
	bool stop;             /* under lock */
	bool dirty;            /* under lock */
	int efd;
	CURLM *multi;
	unsigned int page_size;
	struct source *sources;    /* sorted: fleet first, then by origin */
	json_t *secret_cfgs;       /* cluster id -> kubeconfig, from Secrets */
	unsigned int seed;
	/* the snapshot (main thread only) */
	struct snap_obj *objs;
	size_t n_objs;
	struct snap_src *srcs;
	size_t n_srcs;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static const char *origin_name(const char *origin)
{
	return origin ? origin : "fleet";
}

static void wipe_free(void *p, size_t len)
{
	if (p) {
		explicit_bzero(p, len);
		free(p);
	}
}

static void wipe_str(char *s)
{
	if (s)
		wipe_free(s, strlen(s));
}

/* ---------- base64 ---------- */

static int b64val(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '-')
		return 62;
	if (c == '/' || c == '_')
		return 63;
	return -1;
}

/* Standard or URL alphabet, padding optional, whitespace ignored. The
 * result is NUL-terminated (not counted in len). */
static int b64_decode(const char *s, struct blob *out)
{
	size_t n = strlen(s), o = 0;
	unsigned int acc = 0;
	int bits = 0, v;
	unsigned char *d = malloc(n / 4 * 3 + 4);

	if (!d)
		return -ENOMEM;
	for (; *s; s++) {
		if (*s == '=' || *s == ' ' || *s == '\n' || *s == '\r' || *s == '\t')
			continue;
		v = b64val((unsigned char)*s);
		if (v < 0) {
			wipe_free(d, n / 4 * 3 + 4);
			return -EINVAL;
		}
		acc = (acc << 6) | v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			d[o++] = (acc >> bits) & 0xff;
		}
	}
	d[o] = '\0';
	out->data = d;
	out->len = o;
	return 0;
}

static void blob_free(struct blob *b)
{
	wipe_free(b->data, b->len);
	b->data = NULL;
	b->len = 0;
}

/* ---------- kubeconfig ---------- */

static void auth_free(struct auth *a)
{
	free(a->server);
	free(a->ca_file);
	blob_free(&a->ca);
	free(a->cert_file);
	blob_free(&a->cert);
	free(a->key_file);
	blob_free(&a->key);
	wipe_str(a->token);
	free(a->token_file);
	wipe_str(a->userpwd);
	free(a->proxy);
	memset(a, 0, sizeof(*a));
}

static bool read_whole(const char *path, char **out, size_t *len, size_t max)
{
	FILE *f = fopen(path, "re");
	size_t cap = 4096, n = 0, r;
	char *buf = malloc(cap + 1), *nb;

	if (!f || !buf) {
		if (f)
			fclose(f);
		free(buf);
		return false;
	}
	while ((r = fread(buf + n, 1, cap - n, f)) > 0) {
		n += r;
		if (n == cap) {
			if (cap >= max)
				break;
			nb = realloc(buf, cap * 2 + 1);
			if (!nb)
				break;
			buf = nb;
			cap *= 2;
		}
	}
	if (ferror(f) || n >= max) {
		int e = ferror(f) ? EIO : EFBIG;

		fclose(f);
		wipe_free(buf, cap + 1);
		errno = e;
		return false;
	}
	fclose(f);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return true;
}

/*
 * A kubeconfig's text to JSON. YAML goes through fg_manifest_parse(), which
 * wants a Kubernetes object: a kubeconfig has no metadata.name (and may lack
 * apiVersion/kind), so the missing top-level keys are appended and the
 * parse retried.
 */
static int parse_kubeconfig(const char *data, size_t len, const char *name, json_t **out,
			    char *why, size_t whylen)
{
	struct fg_manifest_error err;
	size_t i = 0, cap = len + 128;
	json_t *docs = NULL;
	char *buf;
	int rc = -EINVAL, tries;

	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\n' || data[i] == '\r'))
		i++;
	if (i < len && data[i] == '{') {
		json_error_t jerr;
		json_t *v = json_loadb(data, len, 0, &jerr);

		if (!json_is_object(v)) {
			snprintf(why, whylen, "%s:%d: %s", name, jerr.line,
				 v ? "not a mapping" : jerr.text);
			json_decref(v);
			return -EINVAL;
		}
		*out = v;
		return 0;
	}
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, data, len);
	for (tries = 0; tries < 4; tries++) {
		const char *add = NULL;

		rc = fg_manifest_parse(buf, len, name, &docs, &err);
		if (!rc)
			break;
		if (strstr(err.reason, "missing metadata.name"))
			add = "\nmetadata:\n  name: kubeconfig\n";
		else if (strstr(err.reason, "missing kind"))
			add = "\nkind: Config\n";
		else if (strstr(err.reason, "missing apiVersion"))
			add = "\napiVersion: v1\n";
		if (!add || len + strlen(add) >= cap)
			break;
		memcpy(buf + len, add, strlen(add));
		len += strlen(add);
	}
	wipe_free(buf, cap);
	if (rc) {
		if (err.line)
			snprintf(why, whylen, "%s:%d: %s", name, err.line, err.reason);
		else
			snprintf(why, whylen, "%s: %s", name, err.reason);
		return rc;
	}
	if (json_array_size(docs) != 1) {
		snprintf(why, whylen, "%s: expected one YAML document", name);
		json_decref(docs);
		return -EINVAL;
	}
	*out = json_incref(json_array_get(docs, 0));
	json_decref(docs);
	json_object_del(*out, "metadata");
	return 0;
}

static json_t *named(json_t *list, const char *name, const char *field)
{
	json_t *e;
	size_t i;

	json_array_foreach(list, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));

		if (n && !strcmp(n, name))
			return json_object_get(e, field);
	}
	return NULL;
}

static const char *jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && *s ? s : NULL;
}

static int path_of(const char *p, const char *base_dir, char **out, char *why, size_t whylen,
		   const char *field)
{
	if (p[0] == '/') {
		*out = strdup(p);
	} else if (!base_dir) {
		snprintf(why, whylen, "%s: relative path %s not allowed here", field, p);
		return -EINVAL;
	} else if (asprintf(out, "%s/%s", base_dir, p) < 0) {
		*out = NULL;
	}
	return *out ? 0 : -ENOMEM;
}

static int data_or_file(json_t *o, const char *field, const char *base_dir, struct blob *b,
			char **file, char *why, size_t whylen)
{
	char dfield[64];
	const char *v;
	int rc;

	snprintf(dfield, sizeof(dfield), "%s-data", field);
	v = jstr(o, dfield);
	if (v) {
		rc = b64_decode(v, b);
		if (rc == -EINVAL)
			snprintf(why, whylen, "%s: invalid base64", dfield);
		return rc;
	}
	v = jstr(o, field);
	if (v)
		return path_of(v, base_dir, file, why, whylen, field);
	return 0;
}

static int auth_from_kubeconfig(json_t *kc, const char *context, const char *base_dir,
				struct auth *a, char **ns, char *why, size_t whylen)
{
	json_t *ctx, *cl, *user;
	const char *cname, *uname, *server, *v;
	int rc = -ENOMEM;

	memset(a, 0, sizeof(*a));
	if (!json_is_object(kc)) {
		snprintf(why, whylen, "not a kubeconfig");
		return -EINVAL;
	}
	if (!context)
		context = jstr(kc, "current-context");
	if (!context) {
		snprintf(why, whylen, "no context given and no current-context");
		return -EINVAL;
	}
	ctx = named(json_object_get(kc, "contexts"), context, "context");
	if (!json_is_object(ctx)) {
		snprintf(why, whylen, "no context named %s", context);
		return -ENOENT;
	}
	cname = jstr(ctx, "cluster");
	cl = cname ? named(json_object_get(kc, "clusters"), cname, "cluster") : NULL;
	if (!json_is_object(cl)) {
		snprintf(why, whylen, "context %s: no cluster named %s", context,
			 cname ? cname : "(none)");
		return -ENOENT;
	}
	server = jstr(cl, "server");
	if (!server || (strncmp(server, "https://", 8) && strncmp(server, "http://", 7))) {
		snprintf(why, whylen, "cluster %s: server must be an http(s):// URL", cname);
		return -EINVAL;
	}
	a->server = strdup(server);
	if (!a->server)
		goto err;
	while (strlen(a->server) > 8 && a->server[strlen(a->server) - 1] == '/')
		a->server[strlen(a->server) - 1] = '\0';
	rc = data_or_file(cl, "certificate-authority", base_dir, &a->ca, &a->ca_file, why, whylen);
	if (rc)
		goto err;
	a->insecure = json_is_true(json_object_get(cl, "insecure-skip-tls-verify"));
	if (jstr(cl, "tls-server-name"))
		pr_warn("kubeconfig cluster %s: tls-server-name is not supported, ignored\n", cname);
	if ((v = jstr(cl, "proxy-url")) && !(a->proxy = strdup(v)))
		goto nomem;
	if (ns && (v = jstr(ctx, "namespace")) && !*ns && !(*ns = strdup(v)))
		goto nomem;
	uname = jstr(ctx, "user");
	user = uname ? named(json_object_get(kc, "users"), uname, "user") : NULL;
	if (uname && !json_is_object(user)) {
		snprintf(why, whylen, "context %s: no user named %s", context, uname);
		rc = -ENOENT;
		goto err;
	}
	if (!user)
		return 0;
	if (json_object_get(user, "exec") || json_object_get(user, "auth-provider")) {
		snprintf(why, whylen, "user %s: exec and auth-provider credentials are not supported",
			 uname);
		rc = -EOPNOTSUPP;
		goto err;
	}
	rc = data_or_file(user, "client-certificate", base_dir, &a->cert, &a->cert_file, why,
			  whylen);
	if (!rc)
		rc = data_or_file(user, "client-key", base_dir, &a->key, &a->key_file, why, whylen);
	if (rc)
		goto err;
	if (!!(a->cert.data || a->cert_file) != !!(a->key.data || a->key_file)) {
		snprintf(why, whylen, "user %s: client certificate and key go together", uname);
		rc = -EINVAL;
		goto err;
	}
	if ((v = jstr(user, "token")) && !(a->token = strdup(v)))
		goto nomem;
	if ((v = jstr(user, "tokenFile"))) {
		rc = path_of(v, base_dir, &a->token_file, why, whylen, "tokenFile");
		if (rc)
			goto err;
	}
	if ((v = jstr(user, "username"))) {
		const char *pw = jstr(user, "password");

		if (asprintf(&a->userpwd, "%s:%s", v, pw ? pw : "") < 0) {
			a->userpwd = NULL;
			goto nomem;
		}
	}
	return 0;
nomem:
	rc = -ENOMEM;
err:
	if (rc == -ENOMEM)
		snprintf(why, whylen, "out of memory");
	auth_free(a);
	return rc;
}

static int auth_in_cluster(struct auth *a, char *why, size_t whylen)
{
	const char *host = getenv("KUBERNETES_SERVICE_HOST");
	const char *port = getenv("KUBERNETES_SERVICE_PORT");

	memset(a, 0, sizeof(*a));
	if (!host || !*host) {
		snprintf(why, whylen, "no kubeconfig and not in a cluster (KUBERNETES_SERVICE_HOST unset)");
		return -ENOENT;
	}
	if (asprintf(&a->server, strchr(host, ':') ? "https://[%s]:%s" : "https://%s:%s", host,
		     port && *port ? port : "443") < 0 ||
	    !(a->ca_file = strdup(SA_DIR "/ca.crt")) ||
	    !(a->token_file = strdup(SA_DIR "/token"))) {
		snprintf(why, whylen, "out of memory");
		auth_free(a);
		return -ENOMEM;
	}
	return 0;
}

/* ---------- sources ---------- */

static void watcher_init(struct watcher *w, struct source *s, const struct rdef *def)
{
	w->src = s;
	w->def = def;
	w->want_list = true;
}

static void watcher_release(struct fg_kube *k, struct watcher *w)
{
	struct curl_slist *h;

	if (w->easy) {
		if (w->state != W_IDLE)
			curl_multi_remove_handle(k->multi, w->easy);
		curl_easy_cleanup(w->easy);
	}
	for (h = w->hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(w->hdrs);
	free(w->rv);
	free(w->cont);
	json_decref(w->objs);
	json_decref(w->pending);
	free(w->error);
	free(w->url);
	free(w->buf);
	free(w->stream_error);
}

static void source_free(struct fg_kube *k, struct source *s)
{
	size_t i;

	for (i = 0; i < s->n_w; i++)
		watcher_release(k, &s->w[i]);
	auth_free(&s->auth);
	json_decref(s->kubeconfig);
	free(s->origin);
	free(s->ns);
	free(s);
}

static struct source *source_new(struct fg_kube *k, const char *origin, struct auth *auth,
				 const char *ns, bool cluster_secrets)
{
	struct source *s = calloc(1, sizeof(*s));
	size_t i;

	if (!s)
		return NULL;
	s->k = k;
	if ((origin && !(s->origin = strdup(origin))) || (ns && !(s->ns = strdup(ns)))) {
		free(s->origin);
		free(s);
		return NULL;
	}
	s->auth = *auth;
	memset(auth, 0, sizeof(*auth));
	if (!origin) {
		for (i = 0; i < sizeof(fleet_defs) / sizeof(fleet_defs[0]); i++)
			watcher_init(&s->w[s->n_w++], s, &fleet_defs[i]);
		s->cluster_secrets = cluster_secrets;
		if (cluster_secrets)
			watcher_init(&s->w[s->n_w++], s, &secret_def);
	} else {
		for (i = 0; i < sizeof(cluster_defs) / sizeof(cluster_defs[0]); i++)
			watcher_init(&s->w[s->n_w++], s, &cluster_defs[i]);
	}
	for (i = 0; i < s->n_w; i++) {
		s->w[i].objs = json_object();
		if (!s->w[i].objs) {
			source_free(k, s);
			return NULL;
		}
	}
	return s;
}

static int origin_cmp(const char *a, const char *b)
{
	if (!a || !b)
		return a ? 1 : b ? -1 : 0;
	return strcmp(a, b);
}

static struct source *find_source(struct fg_kube *k, const char *origin, bool from_secret)
{
	struct source *s;

	for (s = k->sources; s; s = s->next)
		if (!s->removed && s->from_secret == from_secret && !origin_cmp(s->origin, origin))
			return s;
	return NULL;
}

/* Under lock. */
static void mark_dirty(struct fg_kube *k)
{
	uint64_t one = 1;

	k->dirty = true;
	if (write(k->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		pr_debug("kube: eventfd write: %s\n", strerror(errno));
}

/* Under lock: inserts s in origin order (after any removed one). */
static void insert_source(struct fg_kube *k, struct source *s)
{
	struct source **pp = &k->sources;

	while (*pp && origin_cmp((*pp)->origin, s->origin) <= 0)
		pp = &(*pp)->next;
	s->next = *pp;
	*pp = s;
	mark_dirty(k);
}

static void remove_marked(struct fg_kube *k, struct source *s)
{
	s->removed = true;
	mark_dirty(k);
}

/* Under lock: makes the Secret-made sources match k->secret_cfgs. */
static void reconcile_secret_sources(struct fg_kube *k)
{
	struct source *s, *fleet = find_source(k, NULL, false);
	const char *id;
	json_t *kc;

	for (s = k->sources; s; s = s->next) {
		json_t *want;

		if (s->removed || !s->from_secret)
			continue;
		want = fleet && fleet->cluster_secrets ? json_object_get(k->secret_cfgs, s->origin)
						       : NULL;
		if (!want || !json_equal(want, s->kubeconfig) || find_source(k, s->origin, false)) {
			pr_info("kube: cluster %s: stopping the source from its Secret\n", s->origin);
			remove_marked(k, s);
		}
	}
	if (!fleet || !fleet->cluster_secrets)
		return;
	json_object_foreach(k->secret_cfgs, id, kc) {
		struct auth a;
		char why[256];
		struct source *ns;

		if (find_source(k, id, false) || find_source(k, id, true))
			continue;
		if (auth_from_kubeconfig(kc, NULL, NULL, &a, NULL, why, sizeof(why))) {
			pr_warn("kube: cluster %s: kubeconfig from Secret: %s\n", id, why);
			continue;
		}
		ns = source_new(k, id, &a, NULL, false);
		if (!ns) {
			auth_free(&a);
			continue;
		}
		ns->from_secret = true;
		ns->kubeconfig = json_incref(kc);
		pr_info("kube: cluster %s: source from Secret, server %s\n", id, ns->auth.server);
		insert_source(k, ns);
	}
}

/* Under lock: the Secret watcher's objects to k->secret_cfgs. */
static void rebuild_secret_cfgs(struct fg_kube *k, struct watcher *w)
{
	static const char *const keys[] = { "kubeconfig", "config", "value" };
	json_t *cfgs = json_object(), *sec;
	const char *key;
	size_t i;

	if (!cfgs)
		return;
	json_object_foreach(w->objs, key, sec) {
		json_t *md = json_object_get(sec, "metadata");
		const char *id = json_string_value(json_object_get(json_object_get(md, "labels"),
								   SECRET_LABEL));
		json_t *data = json_object_get(sec, "data");
		const char *b64 = NULL;
		struct blob text;
		json_t *kc;
		char why[256];

		for (i = 0; i < 3 && !b64; i++)
			b64 = jstr(data, keys[i]);
		if (!id || !*id || !b64) {
			pr_warn("kube: Secret %s: no %s label value or no kubeconfig key in data\n",
				key, SECRET_LABEL);
			continue;
		}
		if (json_object_get(cfgs, id)) {
			pr_warn("kube: Secret %s: cluster %s already has a Secret, ignored\n", key, id);
			continue;
		}
		if (b64_decode(b64, &text)) {
			pr_warn("kube: Secret %s: kubeconfig is not valid base64\n", key);
			continue;
		}
		if (parse_kubeconfig((char *)text.data, text.len, key, &kc, why, sizeof(why))) {
			pr_warn("kube: Secret %s: kubeconfig: %s\n", key, why);
			blob_free(&text);
			continue;
		}
		blob_free(&text);
		json_object_set_new(cfgs, id, kc);
	}
	json_decref(k->secret_cfgs);
	k->secret_cfgs = cfgs;
	reconcile_secret_sources(k);
}

/* ---------- transfers ---------- */

/* Under lock. */
static void set_error(struct watcher *w, const char *reason)
{
	struct fg_kube *k = w->src->k;

	if (!reason && !w->error)
		return;
	if (reason && w->error && !strcmp(reason, w->error))
		return;
	if (reason)
		pr_warn("kube: %s: %s\n", origin_name(w->src->origin), reason);
	else
		pr_info("kube: %s: %s readable again\n", origin_name(w->src->origin),
			w->def->resource);
	free(w->error);
	w->error = reason ? strdup(reason) : NULL;
	if (!w->def->hidden)
		mark_dirty(k);
}

/* Dropped: metadata.managedFields. Added: kind/apiVersion when missing. */
static json_t *normalize(struct watcher *w, json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata");

	if (!json_is_object(obj) || !json_is_object(md) || !json_is_string(json_object_get(md, "name")))
		return NULL;
	if (!json_object_get(obj, "kind"))
		json_object_set_new(obj, "kind", json_string(w->def->kind));
	if (!json_object_get(obj, "apiVersion"))
		json_object_set_new(obj, "apiVersion", json_string(w->def->api_version));
	json_object_del(md, "managedFields");
	return obj;
}

/* What is kept of an object (a new reference): a member cluster's Services
 * and EndpointSlices packed (compact.h), as the configuration directory
 * keeps them; then a change the routes cannot see (a resourceVersion, a
 * condition other than ready) compares equal and is no change. */
static json_t *kept_form(struct watcher *w, json_t *obj)
{
	json_t *packed = w->src->origin ? fg_obj_pack(obj) : NULL;

	return packed ? packed : json_incref(obj);
}

static char *obj_key(json_t *obj)
{
	json_t *md = json_object_get(obj, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	char *key;

	if (asprintf(&key, "%s/%s", ns ? ns : "", json_string_value(json_object_get(md, "name"))) < 0)
		return NULL;
	return key;
}

static void set_rv(struct watcher *w, json_t *obj)
{
	const char *rv = json_string_value(json_object_get(json_object_get(obj, "metadata"),
							   "resourceVersion"));

	if (rv && *rv && (!w->rv || strcmp(rv, w->rv))) {
		free(w->rv);
		w->rv = strdup(rv);
	}
}

static void after_change(struct watcher *w)
{
	if (w->def == &secret_def)
		rebuild_secret_cfgs(w->src->k, w);
	else
		mark_dirty(w->src->k);
}

/* One watch event line. Returns false to abort the stream. */
static bool on_event(struct watcher *w, const char *line, size_t len)
{
	struct fg_kube *k = w->src->k;
	json_error_t jerr;
	json_t *ev = json_loadb(line, len, 0, &jerr), *obj;
	const char *type;
	bool ok = true;

	if (!ev) {
		pr_warn("kube: %s: watch %s: bad event: %s\n", origin_name(w->src->origin),
			w->def->resource, jerr.text);
		free(w->stream_error);
		w->stream_error = strdup("malformed watch event");
		return false;
	}
	type = json_string_value(json_object_get(ev, "type"));
	obj = json_object_get(ev, "object");
	w->events++;
	if (!type) {
		ok = true;
	} else if (!strcmp(type, "BOOKMARK")) {
		set_rv(w, obj);
	} else if (!strcmp(type, "ERROR")) {
		json_int_t code = json_integer_value(json_object_get(obj, "code"));
		const char *msg = json_string_value(json_object_get(obj, "message"));

		if (code == 410) {
			pr_info("kube: %s: watch %s: %s: relisting\n", origin_name(w->src->origin),
				w->def->resource, msg ? msg : "410 Gone");
			w->relist = true;
		} else {
			char *e = NULL;

			if (asprintf(&e, "watch %s%s: error event %lld: %s", w->src->auth.server,
				     w->def->prefix, (long long)code, msg ? msg : "") < 0)
				e = NULL;
			free(w->stream_error);
			w->stream_error = e;
		}
		ok = false;
	} else if (normalize(w, obj)) {
		char *key = obj_key(obj);

		pthread_mutex_lock(&k->lock);
		if (key && (!strcmp(type, "ADDED") || !strcmp(type, "MODIFIED"))) {
			json_t *old = json_object_get(w->objs, key), *kept = kept_form(w, obj);

			if (!old || !json_equal(old, kept)) {
				json_object_set(w->objs, key, kept);
				after_change(w);
			}
			json_decref(kept);
		} else if (key && !strcmp(type, "DELETED")) {
			if (!json_object_del(w->objs, key))
				after_change(w);
		}
		pthread_mutex_unlock(&k->lock);
		free(key);
		set_rv(w, obj);
	}
	json_decref(ev);
	return ok;
}

static bool buf_append(struct watcher *w, const char *data, size_t n, size_t max)
{
	char *nb;
	size_t cap;

	if (w->len + n + 1 > w->cap) {
		if (w->len + n + 1 > max)
			return false;
		cap = w->cap ? w->cap : 16384;
		while (cap < w->len + n + 1)
			cap *= 2;
		nb = realloc(w->buf, cap);
		if (!nb)
			return false;
		w->buf = nb;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, data, n);
	w->len += n;
	w->buf[w->len] = '\0';
	return true;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watcher *w = arg;
	size_t n = size * nmemb, start = 0, i;

	if (w->code != 200)
		return buf_append(w, data, n, MAX_ERR_BODY) ? n : 0;
	if (w->state == W_LIST)
		return buf_append(w, data, n, MAX_BODY) ? n : 0;
	if (!buf_append(w, data, n, MAX_BODY))
		return 0;
	for (i = 0; i < w->len; i++) {
		if (w->buf[i] != '\n')
			continue;
		if (i > start && !on_event(w, w->buf + start, i - start))
			return 0;
		start = i + 1;
	}
	memmove(w->buf, w->buf + start, w->len - start);
	w->len -= start;
	return n;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watcher *w = arg;
	size_t n = size * nmemb, l = n;

	if (n > 5 && !strncmp(data, "HTTP/", 5)) {
		const char *sp = memchr(data, ' ', n);

		w->status[0] = '\0';
		if (sp) {
			while (l && (data[l - 1] == '\r' || data[l - 1] == '\n'))
				l--;
			snprintf(w->status, sizeof(w->status), "%.*s", (int)(data + l - sp - 1),
				 sp + 1);
		}
		return n;
	}
	if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n')) {
		long code = 0;

		curl_easy_getinfo(w->easy, CURLINFO_RESPONSE_CODE, &code);
		if (code >= 200) {
			w->code = code;
			w->got_headers = true;
			if (code == 200 && w->state == W_WATCH) {
				pthread_mutex_lock(&w->src->k->lock);
				w->failures = 0;
				set_error(w, NULL);
				pthread_mutex_unlock(&w->src->k->lock);
			}
		}
	}
	return n;
}

static char *escape(CURL *easy, const char *s)
{
	return curl_easy_escape(easy, s, 0);
}

static int build_url(struct watcher *w, unsigned int page_size)
{
	struct source *s = w->src;
	char *sel = w->def->selector ? escape(w->easy, w->def->selector) : NULL;
	char *fields = w->def->fields ? escape(w->easy, w->def->fields) : NULL;
	char *cont = w->cont ? escape(w->easy, w->cont) : NULL;
	char *rv = w->rv ? escape(w->easy, w->rv) : NULL;
	char nsbuf[300] = "";
	int rc;

	if (s->ns)
		snprintf(nsbuf, sizeof(nsbuf), "/namespaces/%s", s->ns);
	free(w->url);
	if (w->want_list)
		rc = asprintf(&w->url, "%s%s%s/%s?limit=%u%s%s%s%s%s%s", s->auth.server,
			      w->def->prefix, nsbuf, w->def->resource, page_size,
			      cont ? "&continue=" : "", cont ? cont : "",
			      sel ? "&labelSelector=" : "", sel ? sel : "",
			      fields ? "&fieldSelector=" : "", fields ? fields : "");
	else
		rc = asprintf(&w->url,
			      "%s%s%s/%s?watch=1&resourceVersion=%s&allowWatchBookmarks=true"
			      "&timeoutSeconds=%d%s%s%s%s",
			      s->auth.server, w->def->prefix, nsbuf, w->def->resource, rv ? rv : "",
			      WATCH_TIMEOUT_S, sel ? "&labelSelector=" : "", sel ? sel : "",
			      fields ? "&fieldSelector=" : "", fields ? fields : "");
	curl_free(sel);
	curl_free(fields);
	curl_free(cont);
	curl_free(rv);
	if (rc < 0) {
		w->url = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The URL without its query, for messages. */
static void url_base(const struct watcher *w, char *buf, size_t len)
{
	const char *q = w->url ? strchr(w->url, '?') : NULL;

	snprintf(buf, len, "%.*s", q ? (int)(q - w->url) : (int)strlen(w->url ? w->url : ""),
		 w->url ? w->url : "");
}

static struct curl_blob cblob(const struct blob *b)
{
	/* Copied: cached connections must not point into memory we free. */
	struct curl_blob cb = { .data = b->data, .len = b->len, .flags = CURL_BLOB_COPY };

	return cb;
}

/*
 * The credentials and TLS settings of a on a transfer (the rest of its
 * options are the caller's): CA, client certificate and key, basic auth,
 * proxy, and "Authorization: Bearer" appended to *hdrs (tokenFile read
 * again for every request, so projected tokens rotate).
 */
static void apply_auth(const struct auth *a, CURL *easy, struct curl_slist **hdrs,
		       const char *who)
{
	char *hdr = NULL;

	if (a->token_file) {
		char *tok;
		size_t len;

		if (read_whole(a->token_file, &tok, &len, 1 << 20)) {
			while (len && (tok[len - 1] == '\n' || tok[len - 1] == '\r' ||
				       tok[len - 1] == ' '))
				tok[--len] = '\0';
			if (asprintf(&hdr, "Authorization: Bearer %s", tok) < 0)
				hdr = NULL;
			wipe_free(tok, len);
		} else {
			pr_warn("kube: %s: cannot read tokenFile %s: %s\n", who, a->token_file,
				strerror(errno));
		}
	} else if (a->token && asprintf(&hdr, "Authorization: Bearer %s", a->token) < 0) {
		hdr = NULL;
	}
	if (hdr) {
		*hdrs = curl_slist_append(*hdrs, hdr);
		wipe_str(hdr);
	}
	if (a->proxy)
		curl_easy_setopt(easy, CURLOPT_PROXY, a->proxy);
	if (a->ca.data) {
		struct curl_blob b = cblob(&a->ca);

		curl_easy_setopt(easy, CURLOPT_CAINFO_BLOB, &b);
	} else if (a->ca_file) {
		curl_easy_setopt(easy, CURLOPT_CAINFO, a->ca_file);
	}
	if (a->insecure) {
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	if (a->cert.data) {
		struct curl_blob b = cblob(&a->cert);

		curl_easy_setopt(easy, CURLOPT_SSLCERT_BLOB, &b);
		curl_easy_setopt(easy, CURLOPT_SSLCERTTYPE, "PEM");
	} else if (a->cert_file) {
		curl_easy_setopt(easy, CURLOPT_SSLCERT, a->cert_file);
	}
	if (a->key.data) {
		struct curl_blob b = cblob(&a->key);

		curl_easy_setopt(easy, CURLOPT_SSLKEY_BLOB, &b);
		curl_easy_setopt(easy, CURLOPT_SSLKEYTYPE, "PEM");
	} else if (a->key_file) {
		curl_easy_setopt(easy, CURLOPT_SSLKEY, a->key_file);
	}
	if (a->userpwd) {
		curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(easy, CURLOPT_USERPWD, a->userpwd);
	}
}

/* Under lock. */
static int start_request(struct fg_kube *k, struct watcher *w)
{
	const struct auth *a = &w->src->auth;
	struct curl_slist *h;
	int rc;

	if (!w->easy && !(w->easy = curl_easy_init()))
		return -ENOMEM;
	curl_easy_reset(w->easy);
	for (h = w->hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(w->hdrs);
	w->hdrs = NULL;
	rc = build_url(w, k->page_size);
	if (rc)
		return rc;
	w->hdrs = curl_slist_append(NULL, "Accept: application/json");
	apply_auth(a, w->easy, &w->hdrs, origin_name(w->src->origin));
	curl_easy_setopt(w->easy, CURLOPT_URL, w->url);
	curl_easy_setopt(w->easy, CURLOPT_HTTPHEADER, w->hdrs);
	curl_easy_setopt(w->easy, CURLOPT_USERAGENT, "fleetgate");
	curl_easy_setopt(w->easy, CURLOPT_PRIVATE, w);
	curl_easy_setopt(w->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(w->easy, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(w->easy, CURLOPT_HEADERDATA, w);
	curl_easy_setopt(w->easy, CURLOPT_ERRORBUFFER, w->errbuf);
	curl_easy_setopt(w->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(w->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(w->easy, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(w->easy, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT_MS);
	curl_easy_setopt(w->easy, CURLOPT_TIMEOUT_MS,
			 w->want_list ? LIST_TIMEOUT_MS : (WATCH_TIMEOUT_S + 60) * 1000L);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPIDLE, 30L);
	curl_easy_setopt(w->easy, CURLOPT_TCP_KEEPINTVL, 10L);
	curl_easy_setopt(w->easy, CURLOPT_PROTOCOLS_STR, "http,https");
	w->len = 0;
	w->code = 0;
	w->status[0] = '\0';
	w->errbuf[0] = '\0';
	w->got_headers = false;
	w->relist = false;
	free(w->stream_error);
	w->stream_error = NULL;
	w->events = 0;
	w->started = now_ms();
	w->state = w->want_list ? W_LIST : W_WATCH;
	pr_debug("kube: %s: %s %s\n", origin_name(w->src->origin),
		 w->want_list ? "list" : "watch", w->url);
	if (curl_multi_add_handle(k->multi, w->easy) != CURLM_OK) {
		w->state = W_IDLE;
		return -ENOMEM;
	}
	return 0;
}

static double jitter(struct fg_kube *k, double ms)
{
	return ms * (0.8 + 0.4 * (rand_r(&k->seed) / (double)RAND_MAX));
}

/* Under lock. */
static void fail(struct fg_kube *k, struct watcher *w, const char *reason)
{
	double delay = BACKOFF_MIN_MS;
	int i;

	for (i = 0; i < w->failures && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	w->failures++;
	w->next_at = now_ms() + jitter(k, delay);
	set_error(w, reason);
}

/* The reason of a failed transfer. */
static void transfer_reason(struct watcher *w, CURLcode res, char *buf, size_t len)
{
	const char *verb = w->state == W_LIST ? "list" : "watch";
	char base[512];

	url_base(w, base, sizeof(base));
	if (res == CURLE_OK || w->got_headers) {
		const char *msg = NULL;
		json_t *st = w->len ? json_loadb(w->buf, w->len, 0, NULL) : NULL;
		char code[16];

		msg = json_string_value(json_object_get(st, "message"));
		snprintf(code, sizeof(code), "%ld", w->code);
		snprintf(buf, len, "%s %s: %s%s%s", verb, base, w->status[0] ? w->status : code,
			 msg ? ": " : "", msg ? msg : "");
		json_decref(st);
		return;
	}
	if (res == CURLE_COULDNT_CONNECT) {
		long oserr = 0;

		curl_easy_getinfo(w->easy, CURLINFO_OS_ERRNO, &oserr);
		if (oserr) {
			const char *host = strstr(w->src->auth.server, "://");
			size_t hl;

			host = host ? host + 3 : w->src->auth.server;
			hl = strcspn(host, "/");
			snprintf(buf, len, "%s %s: connect to %.*s: %s", verb, base, (int)hl, host,
				 strerror((int)oserr));
			return;
		}
	}
	snprintf(buf, len, "%s %s: %s", verb, base,
		 w->errbuf[0] ? w->errbuf : curl_easy_strerror(res));
	len = strlen(buf);
	while (len && buf[len - 1] == '\n')
		buf[--len] = '\0';
}

/* Under lock: replaces the objects with the finished LIST's. */
static void commit_list(struct watcher *w)
{
	const char *key;
	json_t *v, *old;
	bool changed = json_object_size(w->objs) != json_object_size(w->pending);

	json_object_foreach(w->pending, key, v) {
		old = json_object_get(w->objs, key);
		if (!old || !json_equal(old, v)) {
			changed = true;
			break;
		}
	}
	json_decref(w->objs);
	w->objs = w->pending;
	w->pending = NULL;
	if (!w->synced && !w->def->hidden)
		changed = true;
	w->synced = true;
	if (changed)
		after_change(w);
}

/* A LIST page arrived (200). Under lock. */
static void on_list_page(struct fg_kube *k, struct watcher *w)
{
	json_error_t jerr;
	json_t *list = json_loadb(w->buf ? w->buf : "", w->len, 0, &jerr), *items, *it;
	const char *cont, *rv;
	size_t i;

	items = json_object_get(list, "items");
	if (!json_is_array(items) && !json_is_null(items)) {
		char base[512], why[768];

		url_base(w, base, sizeof(base));
		snprintf(why, sizeof(why), "list %s: invalid answer: %s", base,
			 list ? "no items" : jerr.text);
		json_decref(list);
		json_decref(w->pending);
		w->pending = NULL;
		free(w->cont);
		w->cont = NULL;
		fail(k, w, why);
		return;
	}
	if (!w->pending)
		w->pending = json_object();
	json_array_foreach(items, i, it) {
		char *key;

		if (!normalize(w, it))
			continue;
		key = obj_key(it);
		if (key)
			json_object_set_new(w->pending, key, kept_form(w, it));
		free(key);
	}
	cont = json_string_value(json_object_get(json_object_get(list, "metadata"), "continue"));
	rv = json_string_value(json_object_get(json_object_get(list, "metadata"),
					       "resourceVersion"));
	free(w->cont);
	w->cont = cont && *cont ? strdup(cont) : NULL;
	w->next_at = now_ms();
	if (!w->cont) {
		/* Only a whole LIST resets the backoff: a server failing on
		 * the later pages must not be hammered. */
		w->failures = 0;
		set_error(w, NULL);
		free(w->rv);
		w->rv = rv && *rv ? strdup(rv) : NULL;
		commit_list(w);
		w->listed_at = now_ms();
		w->want_list = !w->rv;
		if (!w->rv) {
			char base[512], why[768];

			url_base(w, base, sizeof(base));
			snprintf(why, sizeof(why), "list %s: answer without metadata.resourceVersion",
				 base);
			fail(k, w, why);
		}
		pr_debug("kube: %s: listed %zu %s at resourceVersion %s\n",
			 origin_name(w->src->origin), json_object_size(w->objs), w->def->resource,
			 w->rv ? w->rv : "(none)");
	}
	json_decref(list);
}

/* When to relist after a 410: at once, unless the previous LIST is so
 * recent that the server keeps refusing its resourceVersion. */
static double relist_at(struct fg_kube *k, struct watcher *w)
{
	double now = now_ms();

	return now - w->listed_at < SHORT_STREAM_MS ? now + jitter(k, SHORT_STREAM_MS) : now;
}

/* Under lock. */
static void on_done(struct fg_kube *k, struct watcher *w, CURLcode res)
{
	char why[1024];
	bool was_list = w->state == W_LIST;

	curl_multi_remove_handle(k->multi, w->easy);
	if (w->code == 404 && w->got_headers) {
		/* The resource is not served (CRD not installed): empty. */
		if (!w->notfound_logged)
			pr_warn("kube: %s: %s%s/%s not served (404); treated as empty, retried every %.0f s\n",
				origin_name(w->src->origin), w->src->auth.server, w->def->prefix,
				w->def->resource, NOTFOUND_RETRY_MS / 1000);
		w->notfound_logged = true;
		json_decref(w->pending);
		w->pending = json_object();
		commit_list(w);
		free(w->rv);
		w->rv = NULL;
		free(w->cont);
		w->cont = NULL;
		w->want_list = true;
		w->failures = 0;
		set_error(w, NULL);
		w->next_at = now_ms() + NOTFOUND_RETRY_MS;
	} else if (w->code == 410 && w->got_headers) {
		pr_info("kube: %s: %s %s: 410 Gone: relisting\n", origin_name(w->src->origin),
			was_list ? "list" : "watch", w->def->resource);
		json_decref(w->pending);
		w->pending = NULL;
		free(w->cont);
		w->cont = NULL;
		w->want_list = true;
		w->next_at = relist_at(k, w);
	} else if (was_list) {
		if (res == CURLE_OK && w->code == 200) {
			w->notfound_logged = false;
			on_list_page(k, w);
		} else {
			transfer_reason(w, res, why, sizeof(why));
			json_decref(w->pending);
			w->pending = NULL;
			free(w->cont);
			w->cont = NULL;
			fail(k, w, why);
		}
	} else if (w->relist) {
		w->want_list = true;
		w->next_at = relist_at(k, w);
	} else if (w->got_headers && w->code == 200) {
		double lasted = now_ms() - w->started;

		w->notfound_logged = false;
		if (w->stream_error) {
			fail(k, w, w->stream_error);
		} else {
			pr_debug("kube: %s: watch %s ended after %.0f ms (%s), resuming from %s\n",
				 origin_name(w->src->origin), w->def->resource, lasted,
				 res == CURLE_OK ? "closed" : curl_easy_strerror(res),
				 w->rv ? w->rv : "(none)");
			w->want_list = !w->rv;
			w->next_at = now_ms() +
				     (lasted < SHORT_STREAM_MS && !w->events ? SHORT_STREAM_MS : 0);
		}
	} else {
		transfer_reason(w, res, why, sizeof(why));
		fail(k, w, why);
	}
	w->state = W_IDLE;
	w->len = 0;
	if (w->cap > (1u << 20)) {
		free(w->buf);
		w->buf = NULL;
		w->cap = 0;
	}
}

static void reap_removed(struct fg_kube *k)
{
	struct source **pp = &k->sources, *s;

	while ((s = *pp)) {
		if (s->removed) {
			*pp = s->next;
			source_free(k, s);
		} else {
			pp = &s->next;
		}
	}
}

static void *worker(void *arg)
{
	struct fg_kube *k = arg;
	struct source *s;
	CURLMsg *msg;
	int running, left;
	size_t i;

	pthread_mutex_lock(&k->lock);
	while (!k->stop) {
		double now = now_ms(), timeout = 1000;

		reap_removed(k);
		for (s = k->sources; s; s = s->next) {
			for (i = 0; i < s->n_w; i++) {
				struct watcher *w = &s->w[i];

				if (w->state != W_IDLE)
					continue;
				if (w->next_at <= now) {
					int rc = start_request(k, w);

					if (rc) {
						char why[128];

						snprintf(why, sizeof(why), "cannot start a request: %s",
							 strerror(-rc));
						fail(k, w, why);
					}
				} else if (w->next_at - now < timeout) {
					timeout = w->next_at - now;
				}
			}
		}
		pthread_mutex_unlock(&k->lock);
		curl_multi_poll(k->multi, NULL, 0, (int)timeout + 1, NULL);
		curl_multi_perform(k->multi, &running);
		pthread_mutex_lock(&k->lock);
		while ((msg = curl_multi_info_read(k->multi, &left))) {
			struct watcher *w = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&w);
			if (w)
				on_done(k, w, msg->data.result);
		}
	}
	pthread_mutex_unlock(&k->lock);
	return NULL;
}

/* ---------- API ---------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
	curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int fg_kube_new(struct fg_kube **out)
{
	struct fg_kube *k;
	int rc;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return -ENOMEM;
	json_object_seed(0);
	k = calloc(1, sizeof(*k));
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->page_size = PAGE_SIZE_DEFAULT;
	k->seed = (unsigned int)(now_ms() * 1000) ^ (unsigned int)getpid();
	k->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	k->multi = curl_multi_init();
	k->secret_cfgs = json_object();
	if (k->efd < 0 || !k->multi || !k->secret_cfgs) {
		rc = k->efd < 0 ? -errno : -ENOMEM;
		goto err;
	}
	rc = -pthread_create(&k->thread, NULL, worker, k);
	if (rc)
		goto err;
	k->thread_started = true;
	*out = k;
	return 0;
err:
	fg_kube_free(k);
	return rc;
}

static void snapshot_clear(struct fg_kube *k)
{
	size_t i;

	for (i = 0; i < k->n_objs; i++)
		json_decref(k->objs[i].obj);
	free(k->objs);
	k->objs = NULL;
	k->n_objs = 0;
	for (i = 0; i < k->n_srcs; i++) {
		free(k->srcs[i].origin);
		free(k->srcs[i].error);
	}
	free(k->srcs);
	k->srcs = NULL;
	k->n_srcs = 0;
}

void fg_kube_free(struct fg_kube *k)
{
	struct source *s;

	if (!k)
		return;
	if (k->thread_started) {
		pthread_mutex_lock(&k->lock);
		k->stop = true;
		pthread_mutex_unlock(&k->lock);
		curl_multi_wakeup(k->multi);
		pthread_join(k->thread, NULL);
	}
	while ((s = k->sources)) {
		k->sources = s->next;
		source_free(k, s);
	}
	if (k->multi)
		curl_multi_cleanup(k->multi);
	snapshot_clear(k);
	json_decref(k->secret_cfgs);
	if (k->efd >= 0)
		close(k->efd);
	pthread_mutex_destroy(&k->lock);
	free(k);
}

void fg_kube_set_page_size(struct fg_kube *k, unsigned int n)
{
	pthread_mutex_lock(&k->lock);
	k->page_size = n ? n : PAGE_SIZE_DEFAULT;
	pthread_mutex_unlock(&k->lock);
}

int fg_kube_add_source(struct fg_kube *k, const struct fg_kube_source_opts *o)
{
	char why[512] = "", *ns = NULL, *base_dir = NULL;
	json_t *kc = NULL;
	struct auth a;
	struct source *s, *old;
	int rc;

	if (o->kubeconfig_path) {
		char *text, *slash;
		size_t len;

		if (!read_whole(o->kubeconfig_path, &text, &len, MAX_KUBECONFIG)) {
			rc = -errno;
			pr_warn("kube: %s: cannot read kubeconfig %s: %s\n", origin_name(o->origin),
				o->kubeconfig_path, strerror(-rc));
			return rc;
		}
		rc = parse_kubeconfig(text, len, o->kubeconfig_path, &kc, why, sizeof(why));
		wipe_free(text, len);
		if (rc) {
			pr_warn("kube: %s: kubeconfig %s\n", origin_name(o->origin), why);
			return rc;
		}
		base_dir = realpath(o->kubeconfig_path, NULL);
		slash = base_dir ? strrchr(base_dir, '/') : NULL;
		if (slash)
			*slash = '\0';
	} else if (o->kubeconfig) {
		kc = json_incref(o->kubeconfig);
	}
	if (o->namespace && !(ns = strdup(o->namespace))) {
		json_decref(kc);
		free(base_dir);
		return -ENOMEM;
	}
	rc = kc ? auth_from_kubeconfig(kc, o->context, base_dir ? base_dir : NULL, &a, NULL, why,
				       sizeof(why))
		: auth_in_cluster(&a, why, sizeof(why));
	json_decref(kc);
	free(base_dir);
	if (rc) {
		pr_warn("kube: %s: %s%s%s\n", origin_name(o->origin),
			o->kubeconfig_path ? o->kubeconfig_path : "", o->kubeconfig_path ? ": " : "",
			why);
		free(ns);
		return rc;
	}
	s = source_new(k, o->origin, &a, ns, o->cluster_secrets);
	free(ns);
	if (!s) {
		auth_free(&a);
		return -ENOMEM;
	}
	pr_info("kube: %s: source %s%s\n", origin_name(o->origin), s->auth.server,
		s->ns ? " (one namespace)" : "");
	pthread_mutex_lock(&k->lock);
	old = find_source(k, o->origin, false);
	if (old)
		remove_marked(k, old);
	insert_source(k, s);
	reconcile_secret_sources(k);
	pthread_mutex_unlock(&k->lock);
	curl_multi_wakeup(k->multi);
	return 0;
}

int fg_kube_remove_source(struct fg_kube *k, const char *origin)
{
	struct source *s;

	pthread_mutex_lock(&k->lock);
	s = find_source(k, origin, false);
	if (s) {
		remove_marked(k, s);
		if (!origin) {
			json_decref(k->secret_cfgs);
			k->secret_cfgs = json_object();
		}
		reconcile_secret_sources(k);
	}
	pthread_mutex_unlock(&k->lock);
	if (!s)
		return -ENOENT;
	curl_multi_wakeup(k->multi);
	return 0;
}

int fg_kube_fd(const struct fg_kube *k)
{
	return k->efd;
}

static int key_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int fg_kube_process(struct fg_kube *k, bool *changed)
{
	struct snap_obj *objs = NULL;
	struct snap_src *srcs = NULL;
	size_t n_objs = 0, n_srcs = 0, cap = 0, i, j;
	struct source *s;
	uint64_t v;
	int rc = 0;

	if (changed)
		*changed = false;
	if (read(k->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		return -errno;
	pthread_mutex_lock(&k->lock);
	if (!k->dirty)
		goto out;
	for (s = k->sources; s; s = s->next) {
		if (!s->removed)
			n_srcs++;
		for (i = 0; !s->removed && i < s->n_w; i++)
			if (!s->w[i].def->hidden)
				cap += json_object_size(s->w[i].objs);
	}
	objs = calloc(cap ? cap : 1, sizeof(*objs));
	srcs = calloc(n_srcs ? n_srcs : 1, sizeof(*srcs));
	if (!objs || !srcs) {
		rc = -ENOMEM;
		goto fail;
	}
	n_srcs = 0;
	for (s = k->sources; s; s = s->next) {
		struct snap_src *ss;

		if (s->removed)
			continue;
		ss = &srcs[n_srcs++];
		ss->synced = true;
		if (s->origin && !(ss->origin = strdup(s->origin))) {
			rc = -ENOMEM;
			goto fail;
		}
		for (i = 0; i < s->n_w; i++) {
			struct watcher *w = &s->w[i];
			const char **keys;
			const char *key;
			json_t *obj;
			size_t n = 0;

			if (w->def->hidden)
				continue;
			if (!w->synced)
				ss->synced = false;
			if (w->error && !ss->error && !(ss->error = strdup(w->error))) {
				rc = -ENOMEM;
				goto fail;
			}
			keys = malloc((json_object_size(w->objs) + 1) * sizeof(*keys));
			if (!keys) {
				rc = -ENOMEM;
				goto fail;
			}
			json_object_foreach(w->objs, key, obj)
				keys[n++] = key;
			qsort(keys, n, sizeof(*keys), key_cmp);
			for (j = 0; j < n; j++) {
				objs[n_objs].origin = ss->origin;
				objs[n_objs++].obj = json_incref(json_object_get(w->objs, keys[j]));
			}
			free(keys);
		}
	}
	k->dirty = false;
	pthread_mutex_unlock(&k->lock);
	snapshot_clear(k);
	k->objs = objs;
	k->n_objs = n_objs;
	k->srcs = srcs;
	k->n_srcs = n_srcs;
	if (changed)
		*changed = true;
	return 0;
fail:
	pthread_mutex_unlock(&k->lock);
	for (i = 0; i < n_objs; i++)
		json_decref(objs[i].obj);
	for (i = 0; srcs && i < n_srcs; i++) {
		free(srcs[i].origin);
		free(srcs[i].error);
	}
	free(objs);
	free(srcs);
	return rc;
out:
	pthread_mutex_unlock(&k->lock);
	return rc;
}

int fg_kube_foreach(struct fg_kube *k, fg_kube_obj_cb cb, void *ctx)
{
	size_t i;
	int rc;

	for (i = 0; i < k->n_objs; i++) {
		rc = cb(k->objs[i].origin, k->objs[i].obj, ctx);
		if (rc)
			return rc;
	}
	return 0;
}

int fg_kube_foreach_error(struct fg_kube *k, fg_kube_err_cb cb, void *ctx)
{
	size_t i;
	int n = 0;

	for (i = 0; i < k->n_srcs; i++) {
		if (!k->srcs[i].error)
			continue;
		n++;
		if (cb)
			cb(k->srcs[i].origin, k->srcs[i].error, ctx);
	}
	return n;
}

int fg_kube_foreach_source(struct fg_kube *k, fg_kube_src_cb cb, void *ctx)
{
	size_t i;

	for (i = 0; i < k->n_srcs; i++)
		if (cb)
			cb(k->srcs[i].origin, k->srcs[i].synced, ctx);
	return (int)k->n_srcs;
}

/* ---------- credentials for other clients (lease.c) ---------- */

struct fg_kube_client {
	struct auth auth;
	char *ns; /* the context's namespace, or NULL */
};

int fg_kube_client_new(struct fg_kube_client **out, const char *kubeconfig_path,
		       const char *context)
{
	char why[512] = "", *base_dir = NULL, *text, *slash;
	struct fg_kube_client *c;
	json_t *kc = NULL;
	size_t len;
	int rc;

	pthread_once(&curl_once, curl_init);
	if (curl_init_rc != CURLE_OK)
		return -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (!kubeconfig_path) {
		rc = auth_in_cluster(&c->auth, why, sizeof(why));
		goto done;
	}
	if (!read_whole(kubeconfig_path, &text, &len, MAX_KUBECONFIG)) {
		rc = -errno;
		snprintf(why, sizeof(why), "cannot read it: %s", strerror(-rc));
		goto done;
	}
	rc = parse_kubeconfig(text, len, kubeconfig_path, &kc, why, sizeof(why));
	wipe_free(text, len);
	if (rc)
		goto done;
	base_dir = realpath(kubeconfig_path, NULL);
	slash = base_dir ? strrchr(base_dir, '/') : NULL;
	if (slash)
		*slash = '\0';
	rc = auth_from_kubeconfig(kc, context, base_dir, &c->auth, &c->ns, why, sizeof(why));
	json_decref(kc);
	free(base_dir);
done:
	if (rc) {
		pr_warn("kube: kubeconfig %s: %s\n", kubeconfig_path ? kubeconfig_path : "in-cluster",
			why);
		free(c->ns);
		free(c);
		return rc;
	}
	*out = c;
	return 0;
}

const char *fg_kube_client_server(const struct fg_kube_client *c)
{
	return c->auth.server;
}

int fg_kube_client_setup(const struct fg_kube_client *c, void *easy, struct curl_slist **hdrs)
{
	struct curl_slist *h = *hdrs;

	apply_auth(&c->auth, easy, &h, "client");
	curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(easy, CURLOPT_USERAGENT, "fleetgate");
	*hdrs = h;
	return 0;
}

void fg_kube_client_free(struct fg_kube_client *c)
{
	if (!c)
		return;
	auth_free(&c->auth);
	free(c->ns);
	free(c);
}

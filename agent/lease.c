// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Lease heartbeat, leader election and status writes (see lease.h). One
 * worker thread; the agent's thread only publishes its state and reads
 * the results, both under l->lock.
 */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>

#include "kube.h"
#include "lease.h"
#include "log.h"

#define LEASE_API "/apis/coordination.k8s.io/v1"
#define REQ_TIMEOUT_MS 5000L
#define STOP_TIMEOUT_MS 2000L
#define MAX_BODY (8u << 20)
#define MIN_ROUND_GAP_MS 100
#define RESYNC_MS 30000
#define LABEL_ROLE "fleetgate.io/lease"
#define ANN_ANNOUNCED "fleetgate.io/announced"
#define ANN_VIPS "fleetgate.io/vips"
#define ANN_SERVING "fleetgate.io/serving"

struct node_obs {
	char *name;           /* the Lease's name */
	char *holder;
	char *renew;          /* renewTime as last seen */
	long long changed_ms; /* when it was last seen to change (our clock) */
	unsigned duration_s;
	bool announced;
	char *serving;        /* comma-separated */
	char *vips;
	bool seen;
};

struct fg_lease {
	struct fg_kube_client *client;
	char ns[254];
	char node[254];
	char node_lease[254];
	unsigned duration_s;
	bool no_status;

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* under lock */
	bool stop;
	bool wake;
	json_t *state;       /* the agent's, as published */
	json_t *replicas;    /* gateway -> live replicas; NULL until listed */
	json_t *nodes;       /* for fg_lease_status */
	bool leader;
	char holder[254];
	char error[512];

	/* worker only */
	CURL *easy;
	long req_timeout_ms;
	char *node_rv;       /* resourceVersion of our node Lease */
	char acquired[40];   /* its acquireTime */
	struct node_obs *obs;
	size_t n_obs;
	char *l_holder, *l_renew; /* the leader Lease as last seen */
	long long l_changed_ms;
	bool am_leader;
	long long renewed_ms; /* the last successful renew as leader */
	json_t *written;     /* status path -> the patch last written */
	json_t *write_errs;  /* status path -> the error last logged */
	long long written_at;
	int abort_req;       /* set at stop: the request in flight gives up */
	char last_err[512];
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void now_micro(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf, len, "%.20s.%06dZ", base, (int)(ts.tv_nsec / 1000) % 1000000);
}

/* Seconds since a MicroTime/Time ("2024-05-01T10:00:00.123456Z"), by the
 * wall clock; 0 when it cannot be read or lies in the future. */
static double age_s(const char *t)
{
	struct timespec now;
	struct tm tm = {};
	const char *rest;
	double frac = 0, age;

	if (!t || !(rest = strptime(t, "%Y-%m-%dT%H:%M:%S", &tm)))
		return 0;
	if (*rest == '.')
		frac = strtod(rest, NULL);
	clock_gettime(CLOCK_REALTIME, &now);
	age = (double)now.tv_sec + now.tv_nsec / 1e9 - ((double)timegm(&tm) + frac);
	return age > 0 ? age : 0;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

static void set_str(char **p, const char *s)
{
	free(*p);
	*p = xstrdup(s);
}

static const char *jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

int fg_lease_node_name(const char *node, char *buf, size_t len)
{
	size_t off = strlen(FG_LEASE_NODE_PREFIX), i;

	if (len < off + 2)
		return -EINVAL;
	memcpy(buf, FG_LEASE_NODE_PREFIX, off);
	for (i = 0; node[i] && off < len - 1 && off < 253; i++) {
		char c = (char)tolower((unsigned char)node[i]);

		if (!isalnum((unsigned char)c) && c != '-' && c != '.')
			c = '-';
		buf[off++] = c;
	}
	while (off > strlen(FG_LEASE_NODE_PREFIX) && !isalnum((unsigned char)buf[off - 1]))
		off--;
	buf[off] = '\0';
	return off > strlen(FG_LEASE_NODE_PREFIX) ? 0 : -EINVAL;
}

/* ---------- one request ---------- */

struct body {
	char *buf;
	size_t len, cap;
	bool too_big;
};

static size_t write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct body *b = arg;
	size_t n = size * nmemb;

	if (b->len + n + 1 > MAX_BODY) {
		b->too_big = true;
		return 0;
	}
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 8192;
		char *nb;

		while (cap < b->len + n + 1)
			cap *= 2;
		nb = realloc(b->buf, cap);
		if (!nb)
			return 0;
		b->buf = nb;
		b->cap = cap;
	}
	memcpy(b->buf + b->len, data, n);
	b->len += n;
	b->buf[b->len] = '\0';
	return n;
}

/*
 * method path [body as ctype] -> the HTTP status code, with the answer
 * parsed into *out (may be NULL); or -errno when there is no answer. why
 * gets "METHOD PATH: reason" on a failure (transport or >= 400).
 */
static int progress_cb(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
		       curl_off_t ulnow)
{
	struct fg_lease *l = arg;

	return __atomic_load_n(&l->abort_req, __ATOMIC_RELAXED);
}

static long kreq(struct fg_lease *l, const char *method, const char *path, json_t *body,
		 const char *ctype, json_t **out, char *why, size_t whylen)
{
	char errbuf[CURL_ERROR_SIZE] = "", *url = NULL, *data = NULL, ct[96];
	struct curl_slist *hdrs = NULL, *h;
	struct body b = {};
	json_error_t jerr;
	json_t *doc = NULL;
	long code = 0;
	CURLcode res;

	if (out)
		*out = NULL;
	if (!l->easy && !(l->easy = curl_easy_init()))
		return -ENOMEM;
	curl_easy_reset(l->easy);
	if (asprintf(&url, "%s%s", fg_kube_client_server(l->client), path) < 0)
		return -ENOMEM;
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	if (body) {
		data = json_dumps(body, JSON_COMPACT);
		snprintf(ct, sizeof(ct), "Content-Type: %s", ctype ? ctype : "application/json");
		hdrs = curl_slist_append(hdrs, ct);
		curl_easy_setopt(l->easy, CURLOPT_POSTFIELDS, data ? data : "");
		curl_easy_setopt(l->easy, CURLOPT_POSTFIELDSIZE, (long)(data ? strlen(data) : 0));
	}
	fg_kube_client_setup(l->client, l->easy, &hdrs);
	curl_easy_setopt(l->easy, CURLOPT_URL, url);
	curl_easy_setopt(l->easy, CURLOPT_CUSTOMREQUEST, method);
	if (!strcmp(method, "GET"))
		curl_easy_setopt(l->easy, CURLOPT_HTTPGET, 1L);
	curl_easy_setopt(l->easy, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(l->easy, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(l->easy, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(l->easy, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(l->easy, CURLOPT_TIMEOUT_MS, l->req_timeout_ms);
	curl_easy_setopt(l->easy, CURLOPT_CONNECTTIMEOUT_MS, l->req_timeout_ms);
	curl_easy_setopt(l->easy, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(l->easy, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(l->easy, CURLOPT_XFERINFODATA, l);
	curl_easy_setopt(l->easy, CURLOPT_NOPROGRESS, 0L);
	res = curl_easy_perform(l->easy);
	if (res == CURLE_OK) {
		curl_easy_getinfo(l->easy, CURLINFO_RESPONSE_CODE, &code);
		if (b.len)
			doc = json_loadb(b.buf, b.len, 0, &jerr);
	} else {
		snprintf(why, whylen, "%s %s: %s", method, path, errbuf[0] ? errbuf
					   : curl_easy_strerror(res));
		code = res == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
	}
	if (code >= 400) {
		const char *msg = jstr(doc, "message");

		snprintf(why, whylen, "%s %s: %ld%s%s", method, path, code, msg ? ": " : "",
			 msg ? msg : "");
	}
	for (h = hdrs; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(hdrs);
	free(url);
	free(data);
	free(b.buf);
	if (out)
		*out = doc;
	else
		json_decref(doc);
	return code;
}

static void set_error(struct fg_lease *l, const char *why)
{
	if (strcmp(l->last_err, why)) {
		if (why[0])
			pr_warn("lease: %s\n", why);
		else if (l->last_err[0])
			pr_info("lease: the API server answers again\n");
		snprintf(l->last_err, sizeof(l->last_err), "%s", why);
	}
	pthread_mutex_lock(&l->lock);
	snprintf(l->error, sizeof(l->error), "%s", why);
	pthread_mutex_unlock(&l->lock);
}

/* ---------- the node's own Lease ---------- */

static char *join(json_t *arr)
{
	size_t i, len = 1;
	json_t *v;
	char *s;

	json_array_foreach(arr, i, v)
		len += strlen(json_string_value(v) ?: "") + 1;
	s = calloc(1, len);
	if (!s)
		return NULL;
	json_array_foreach(arr, i, v) {
		if (i)
			strcat(s, ",");
		strcat(s, json_string_value(v) ?: "");
	}
	return s;
}

static json_t *node_lease(struct fg_lease *l, json_t *state, const char *now)
{
	char *vips = join(json_object_get(state, "vips"));
	char *serving = join(json_object_get(state, "serving"));
	json_t *o;

	o = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:s, s:s}},"
		      " s:{s:s, s:i, s:s, s:s}}",
		      "apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata", "name",
		      l->node_lease, "namespace", l->ns, "labels", "app.kubernetes.io/name",
		      "fleetgate", LABEL_ROLE, "node", "annotations", ANN_ANNOUNCED,
		      json_is_true(json_object_get(state, "announced")) ? "true" : "false",
		      ANN_VIPS, vips ? vips : "", ANN_SERVING, serving ? serving : "", "spec",
		      "holderIdentity", l->node, "leaseDurationSeconds", (int)l->duration_s,
		      "acquireTime", l->acquired[0] ? l->acquired : now, "renewTime", now);
	free(vips);
	free(serving);
	return o;
}

static void note_rv(char **rv, json_t *obj)
{
	const char *v = jstr(json_object_get(obj, "metadata"), "resourceVersion");

	if (v)
		set_str(rv, v);
}

/* Creates or renews the node's Lease; 0 or -errno (why set). */
static int renew_node(struct fg_lease *l, json_t *state, char *why, size_t whylen)
{
	char path[600], now[40];
	json_t *obj, *ans = NULL;
	long code;
	int tries;

	now_micro(now, sizeof(now));
	for (tries = 0; tries < 3; tries++) {
		obj = node_lease(l, state, now);
		if (!obj)
			return -ENOMEM;
		if (l->node_rv) {
			json_object_set_new(json_object_get(obj, "metadata"), "resourceVersion",
					    json_string(l->node_rv));
			snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases/%s", l->ns,
				 l->node_lease);
			code = kreq(l, "PUT", path, obj, NULL, &ans, why, whylen);
		} else {
			snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases", l->ns);
			code = kreq(l, "POST", path, obj, NULL, &ans, why, whylen);
		}
		json_decref(obj);
		if (code == 200 || code == 201) {
			note_rv(&l->node_rv, ans);
			if (!l->acquired[0])
				snprintf(l->acquired, sizeof(l->acquired), "%s", now);
			json_decref(ans);
			why[0] = '\0'; /* a conflict on the way was resolved */
			return 0;
		}
		json_decref(ans);
		ans = NULL;
		if (code == 404 && l->node_rv) { /* deleted meanwhile: create it */
			free(l->node_rv);
			l->node_rv = NULL;
			continue;
		}
		if (code != 409)
			return code < 0 ? (int)code : -EIO;
		/* Conflict (changed meanwhile, or it exists from an earlier
		 * run): read its resourceVersion and write again. */
		snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases/%s", l->ns,
			 l->node_lease);
		code = kreq(l, "GET", path, NULL, NULL, &ans, why, whylen);
		if (code == 200) {
			note_rv(&l->node_rv, ans);
		} else if (code == 404) {
			free(l->node_rv);
			l->node_rv = NULL;
		} else {
			json_decref(ans);
			return code < 0 ? (int)code : -EIO;
		}
		json_decref(ans);
		ans = NULL;
	}
	return -EAGAIN;
}

/* ---------- everyone's Leases ---------- */

static struct node_obs *obs_find(struct fg_lease *l, const char *name)
{
	size_t i;

	for (i = 0; i < l->n_obs; i++)
		if (!strcmp(l->obs[i].name, name))
			return &l->obs[i];
	return NULL;
}

static void obs_free(struct node_obs *o)
{
	free(o->name);
	free(o->holder);
	free(o->renew);
	free(o->serving);
	free(o->vips);
}

static bool obs_live(const struct node_obs *o, long long now)
{
	return o->holder[0] && now - o->changed_ms <= (long long)o->duration_s * 1000;
}

static bool in_list(const char *list, const char *name)
{
	size_t n = strlen(name);
	const char *p = list;

	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);

		if (len == n && !strncmp(p, name, n))
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

/* Lists the node Leases; updates what was observed of each. */
static int list_nodes(struct fg_lease *l, char *why, size_t whylen)
{
	long long now = mono_ms();
	json_t *ans = NULL, *it;
	char path[600];
	size_t i, j;
	long code;

	snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases?labelSelector=%s%%3Dnode",
		 l->ns, "fleetgate.io%2Flease");
	code = kreq(l, "GET", path, NULL, NULL, &ans, why, whylen);
	if (code != 200) {
		json_decref(ans);
		return code < 0 ? (int)code : -EIO;
	}
	for (i = 0; i < l->n_obs; i++)
		l->obs[i].seen = false;
	json_array_foreach(json_object_get(ans, "items"), i, it) {
		json_t *md = json_object_get(it, "metadata"), *spec = json_object_get(it, "spec");
		json_t *ann = json_object_get(md, "annotations");
		const char *name = jstr(md, "name"), *renew = jstr(spec, "renewTime");
		const char *holder = jstr(spec, "holderIdentity");
		json_int_t dur = json_integer_value(json_object_get(spec, "leaseDurationSeconds"));
		struct node_obs *o;

		if (!name)
			continue;
		o = obs_find(l, name);
		if (!o) {
			struct node_obs *v = realloc(l->obs, (l->n_obs + 1) * sizeof(*v));

			if (!v)
				break;
			l->obs = v;
			o = &l->obs[l->n_obs++];
			memset(o, 0, sizeof(*o));
			o->name = xstrdup(name);
			o->renew = xstrdup(renew);
			/* First sight: as old as its renewTime says, by our
			 * clock; from then on only changes count. */
			o->changed_ms = now - (long long)(age_s(renew) * 1000);
		} else if (strcmp(o->renew, renew ? renew : "")) {
			set_str(&o->renew, renew);
			o->changed_ms = now;
		}
		set_str(&o->holder, holder);
		o->duration_s = dur > 0 ? (unsigned)dur : FG_LEASE_DEF_DURATION;
		o->announced = !strcmp(jstr(ann, ANN_ANNOUNCED) ?: "", "true");
		set_str(&o->serving, jstr(ann, ANN_SERVING));
		set_str(&o->vips, jstr(ann, ANN_VIPS));
		o->seen = true;
	}
	json_decref(ans);
	for (i = j = 0; i < l->n_obs; i++) {
		if (l->obs[i].seen)
			l->obs[j++] = l->obs[i];
		else
			obs_free(&l->obs[i]);
	}
	l->n_obs = j;
	return 0;
}

/* Gateway -> live replicas serving it; the live nodes' VIPs (sorted,
 * distinct) into *vips. */
static json_t *count_replicas(struct fg_lease *l, json_t *state, json_t **vips, json_t **nodes)
{
	long long now = mono_ms();
	json_t *counts = json_object(), *gw, *set = json_object();
	const char *key;
	json_t *val;
	size_t i, j;

	*nodes = json_array();
	json_array_foreach(json_object_get(state, "gateways"), j, gw)
		json_object_set_new(counts, jstr(gw, "name") ?: "", json_integer(0));
	for (i = 0; i < l->n_obs; i++) {
		struct node_obs *o = &l->obs[i];
		bool live = obs_live(o, now);

		json_array_append_new(*nodes, json_pack("{s:s, s:b, s:b, s:s, s:s}", "name",
			o->holder[0] ? o->holder : o->name, "live", live, "announced", o->announced,
			"serving", o->serving, "vips", o->vips));
		if (!live)
			continue;
		if (o->announced) {
			char *dup = xstrdup(o->vips), *save = NULL, *tok;

			for (tok = strtok_r(dup, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
				json_object_set_new(set, tok, json_true());
			free(dup);
		}
		json_object_foreach(counts, key, val)
			if (o->announced && in_list(o->serving, key))
				json_integer_set(val, json_integer_value(val) + 1);
	}
	*vips = json_array();
	json_object_foreach(set, key, val)
		json_array_append_new(*vips, json_string(key));
	json_decref(set);
	return counts;
}

/* ---------- the status writer ---------- */

static json_t *leader_lease(struct fg_lease *l, const char *now, const char *acquire,
			    int transitions, const char *rv)
{
	json_t *o = json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s, s:s}},"
			      " s:{s:s, s:i, s:s, s:s, s:i}}",
			      "apiVersion", "coordination.k8s.io/v1", "kind", "Lease", "metadata",
			      "name", FG_LEASE_LEADER_NAME, "namespace", l->ns, "labels",
			      "app.kubernetes.io/name", "fleetgate", LABEL_ROLE, "leader", "spec",
			      "holderIdentity", l->node, "leaseDurationSeconds", (int)l->duration_s,
			      "acquireTime", acquire, "renewTime", now, "leaseTransitions",
			      transitions);

	if (o && rv)
		json_object_set_new(json_object_get(o, "metadata"), "resourceVersion",
				    json_string(rv));
	return o;
}

static void set_leader(struct fg_lease *l, bool leader, const char *holder)
{
	if (leader != l->am_leader) {
		if (leader)
			pr_info("lease: this node (%s) writes the status now (Lease %s/%s)\n",
				l->node, l->ns, FG_LEASE_LEADER_NAME);
		else
			pr_info("lease: this node (%s) no longer writes the status%s%s\n", l->node,
				holder && *holder ? "; the writer is " : "",
				holder && *holder ? holder : "");
		json_object_clear(l->written);
	}
	l->am_leader = leader;
	pthread_mutex_lock(&l->lock);
	l->leader = leader;
	snprintf(l->holder, sizeof(l->holder), "%s", holder ? holder : "");
	pthread_mutex_unlock(&l->lock);
}

/* One step of client-go's algorithm. */
static void elect(struct fg_lease *l, char *why, size_t whylen)
{
	char path[600], now[40];
	long long mnow = mono_ms();
	json_t *ans = NULL, *spec, *obj;
	const char *holder, *renew, *acquire, *rv;
	int transitions;
	bool expired;
	long code;

	now_micro(now, sizeof(now));
	snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases/%s", l->ns,
		 FG_LEASE_LEADER_NAME);
	code = kreq(l, "GET", path, NULL, NULL, &ans, why, whylen);
	if (code == 404) {
		why[0] = '\0'; /* nobody holds it yet: take it */
		json_decref(ans);
		obj = leader_lease(l, now, now, 0, NULL);
		snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases", l->ns);
		code = kreq(l, "POST", path, obj, NULL, NULL, why, whylen);
		json_decref(obj);
		if (code == 201 || code == 200) {
			l->renewed_ms = mnow;
			set_leader(l, true, l->node);
		} else if (code == 409) {
			set_leader(l, false, "");
		}
		goto done;
	}
	if (code != 200) {
		json_decref(ans);
		goto done;
	}
	spec = json_object_get(ans, "spec");
	holder = jstr(spec, "holderIdentity") ?: "";
	renew = jstr(spec, "renewTime") ?: "";
	acquire = jstr(spec, "acquireTime") ?: now;
	transitions = (int)json_integer_value(json_object_get(spec, "leaseTransitions"));
	rv = jstr(json_object_get(ans, "metadata"), "resourceVersion");
	/* Expired only once it has not changed for the duration as seen
	 * here; a holder seen for the first time gets the full duration (as
	 * client-go does), so no clock skew makes two nodes write. */
	if (!l->l_holder || strcmp(l->l_holder, holder) || strcmp(l->l_renew, renew)) {
		l->l_changed_ms = mnow;
		set_str(&l->l_holder, holder);
		set_str(&l->l_renew, renew);
	}
	expired = !*holder || mnow - l->l_changed_ms > (long long)l->duration_s * 1000;
	if (!strcmp(holder, l->node) || expired) {
		bool ours = !strcmp(holder, l->node);

		obj = leader_lease(l, now, ours ? acquire : now, ours ? transitions : transitions + 1,
				   rv);
		code = kreq(l, "PUT", path, obj, NULL, NULL, why, whylen);
		json_decref(obj);
		if (code == 200) {
			l->renewed_ms = mnow;
			set_leader(l, true, l->node);
		} else if (code == 409) {
			set_leader(l, false, holder);
		}
	} else {
		set_leader(l, false, holder);
	}
	json_decref(ans);
done:
	/* A writer that cannot renew stops writing before its Lease could
	 * have passed to another node. */
	if (l->am_leader && mnow - l->renewed_ms > (long long)l->duration_s * 2000 / 3)
		set_leader(l, false, "");
}

static void patch_status(struct fg_lease *l, const char *path, json_t *patch)
{
	char why[700] = "";
	char *dump = json_dumps(patch, JSON_COMPACT | JSON_SORT_KEYS);
	json_t *prev;
	long code;

	if (!dump)
		return;
	prev = json_object_get(l->written, path);
	if (prev && !strcmp(json_string_value(prev) ?: "", dump)) {
		free(dump);
		return;
	}
	code = kreq(l, "PATCH", path, patch, "application/merge-patch+json", NULL, why,
		    sizeof(why));
	if (code == 200 || code == 201 || code == 404) {
		pr_debug("lease: %s %s: %s\n", code == 404 ? "gone:" : "wrote", path, dump);
		json_object_set_new(l->written, path, json_string(dump));
		json_object_del(l->write_errs, path);
	} else {
		/* Said once per path and reason (a missing RBAC rule would
		 * otherwise fill the log every round); retried every round. */
		if (strcmp(json_string_value(json_object_get(l->write_errs, path)) ?: "", why))
			pr_warn("lease: cannot write status: %s\n", why);
		json_object_set_new(l->write_errs, path, json_string(why));
		json_object_del(l->written, path);
	}
	free(dump);
}

static void write_status(struct fg_lease *l, json_t *state, json_t *counts, json_t *vips)
{
	json_t *lb = json_array(), *v, *gw, *it;
	char path[1024];
	size_t i;

	if (mono_ms() - l->written_at > RESYNC_MS) {
		json_object_clear(l->written);
		l->written_at = mono_ms();
	}
	json_array_foreach(vips, i, v)
		json_array_append_new(lb, json_pack("{s:O}", "ip", v));
	json_array_foreach(json_object_get(state, "gateways"), i, gw) {
		json_t *st = json_deep_copy(json_object_get(gw, "status")), *patch;
		const char *name = jstr(gw, "name"), *ns = jstr(gw, "namespace");
		const char *phase = jstr(st, "status") ?: "Pending";

		if (!name || !st) {
			json_decref(st);
			continue;
		}
		/* Listening as soon as one node serves it; a configuration
		 * that fails, fails everywhere. */
		if (strcmp(phase, "Failed") &&
		    json_integer_value(json_object_get(counts, name)) > 0)
			json_object_set_new(st, "status", json_string("Listening"));
		if (!json_object_get(st, "message"))
			json_object_set_new(st, "message", json_null());
		patch = json_pack("{s:o}", "status", st);
		if (ns && *ns)
			snprintf(path, sizeof(path),
				 "/apis/mse.alibabacloud.com/v1alpha1/namespaces/%s/mseingressconfigs/%s/status",
				 ns, name);
		else
			snprintf(path, sizeof(path),
				 "/apis/mse.alibabacloud.com/v1alpha1/mseingressconfigs/%s/status", name);
		patch_status(l, path, patch);
		json_decref(patch);
	}
	json_array_foreach(json_object_get(state, "ingresses"), i, it) {
		bool ok = json_is_true(json_object_get(it, "accepted"));
		json_t *patch = json_pack("{s:{s:{s:o}}}", "status", "loadBalancer", "ingress",
					  ok ? json_incref(lb) : json_array());

		snprintf(path, sizeof(path),
			 "/apis/networking.k8s.io/v1/namespaces/%s/ingresses/%s/status",
			 jstr(it, "namespace") ?: "default", jstr(it, "name") ?: "");
		patch_status(l, path, patch);
		json_decref(patch);
	}
	json_array_foreach(json_object_get(state, "services"), i, it) {
		json_t *patch = json_pack("{s:{s:{s:O}}}", "status", "loadBalancer", "ingress", lb);

		snprintf(path, sizeof(path), "/api/v1/namespaces/%s/services/%s/status",
			 jstr(it, "namespace") ?: "default", jstr(it, "name") ?: "");
		patch_status(l, path, patch);
		json_decref(patch);
	}
	json_decref(lb);
}

/* ---------- the worker ---------- */

static void round_once(struct fg_lease *l, json_t *state)
{
	char why[700] = "";
	json_t *counts = NULL, *vips = NULL, *nodes = NULL;
	int err;

	err = renew_node(l, state, why, sizeof(why));
	if (!err)
		err = list_nodes(l, why, sizeof(why));
	if (!err) {
		counts = count_replicas(l, state, &vips, &nodes);
		pthread_mutex_lock(&l->lock);
		json_decref(l->replicas);
		l->replicas = json_incref(counts);
		json_decref(l->nodes);
		l->nodes = json_incref(nodes);
		pthread_mutex_unlock(&l->lock);
	}
	if (!l->no_status) {
		char ewhy[700] = "";

		elect(l, ewhy, sizeof(ewhy));
		if (!why[0] && ewhy[0])
			snprintf(why, sizeof(why), "%s", ewhy);
		if (l->am_leader && counts)
			write_status(l, state, counts, vips);
	}
	if (!__atomic_load_n(&l->abort_req, __ATOMIC_RELAXED)) /* not at stop */
		set_error(l, why);
	json_decref(counts);
	json_decref(vips);
	json_decref(nodes);
}

/* At stop: leadership released, the node's Lease deleted. */
static void goodbye(struct fg_lease *l)
{
	char why[700] = "", path[600], now[40];
	json_t *ans = NULL, *obj;
	long code;

	__atomic_store_n(&l->abort_req, 0, __ATOMIC_RELAXED);
	l->req_timeout_ms = STOP_TIMEOUT_MS / 3;
	if (l->am_leader) {
		snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases/%s", l->ns,
			 FG_LEASE_LEADER_NAME);
		code = kreq(l, "GET", path, NULL, NULL, &ans, why, sizeof(why));
		if (code == 200 &&
		    !strcmp(jstr(json_object_get(ans, "spec"), "holderIdentity") ?: "", l->node)) {
			now_micro(now, sizeof(now));
			obj = leader_lease(l, now, now, (int)json_integer_value(json_object_get(
				json_object_get(ans, "spec"), "leaseTransitions")),
				jstr(json_object_get(ans, "metadata"), "resourceVersion"));
			json_object_set_new(json_object_get(obj, "spec"), "holderIdentity",
					    json_string(""));
			json_object_set_new(json_object_get(obj, "spec"), "leaseDurationSeconds",
					    json_integer(1));
			code = kreq(l, "PUT", path, obj, NULL, NULL, why, sizeof(why));
			json_decref(obj);
			if (code == 200)
				pr_info("lease: released %s/%s\n", l->ns, FG_LEASE_LEADER_NAME);
		}
		json_decref(ans);
	}
	snprintf(path, sizeof(path), LEASE_API "/namespaces/%s/leases/%s", l->ns, l->node_lease);
	code = kreq(l, "DELETE", path, NULL, NULL, NULL, why, sizeof(why));
	if (code == 200 || code == 202 || code == 404)
		pr_info("lease: deleted %s/%s\n", l->ns, l->node_lease);
	else
		pr_warn("lease: cannot delete the node's Lease: %s\n", why);
}

static void *worker(void *arg)
{
	struct fg_lease *l = arg;
	long long period = (long long)l->duration_s * 1000 / 3, next = 0, last = 0;
	struct timespec ts;

	if (period < 200)
		period = 200;
	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		long long now = mono_ms();
		json_t *state;

		if ((!l->wake && now < next) || now < last + MIN_ROUND_GAP_MS) {
			long long until = l->wake ? last + MIN_ROUND_GAP_MS : next;

			ts.tv_sec = until / 1000;
			ts.tv_nsec = (until % 1000) * 1000000L;
			pthread_cond_timedwait(&l->cond, &l->lock, &ts);
			continue;
		}
		l->wake = false;
		state = l->state ? json_deep_copy(l->state) : json_object();
		pthread_mutex_unlock(&l->lock);
		last = mono_ms();
		round_once(l, state);
		json_decref(state);
		pthread_mutex_lock(&l->lock);
		next = last + period;
	}
	pthread_mutex_unlock(&l->lock);
	goodbye(l);
	return NULL;
}

int fg_lease_new(struct fg_lease **out, const struct fg_lease_opts *o)
{
	pthread_condattr_t ca;
	struct fg_lease *l;
	int err;

	if (!o->node_name || !*o->node_name)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	pthread_mutex_init(&l->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	snprintf(l->ns, sizeof(l->ns), "%s", o->namespace ? o->namespace : FG_LEASE_DEF_NAMESPACE);
	snprintf(l->node, sizeof(l->node), "%s", o->node_name);
	l->duration_s = o->duration_s ? o->duration_s : FG_LEASE_DEF_DURATION;
	l->no_status = o->no_status;
	l->req_timeout_ms = REQ_TIMEOUT_MS;
	l->written = json_object();
	l->write_errs = json_object();
	l->written_at = mono_ms();
	if (!l->written || !l->write_errs) {
		err = -ENOMEM;
		goto err;
	}
	err = fg_lease_node_name(o->node_name, l->node_lease, sizeof(l->node_lease));
	if (err) {
		pr_warn("lease: node name '%s' gives no valid Lease name\n", o->node_name);
		goto err;
	}
	err = fg_kube_client_new(&l->client, o->kubeconfig, o->context);
	if (err)
		goto err;
	err = -pthread_create(&l->thread, NULL, worker, l);
	if (err)
		goto err;
	l->thread_started = true;
	pr_info("lease: node %s: heartbeat Lease %s/%s renewed every %u ms (duration %u s)%s\n",
		l->node, l->ns, l->node_lease, l->duration_s * 1000 / 3 < 200 ? 200
		: l->duration_s * 1000 / 3, l->duration_s,
		l->no_status ? "" : ", standing for status writer");
	*out = l;
	return 0;
err:
	fg_lease_free(l);
	return err;
}

void fg_lease_publish(struct fg_lease *l, json_t *state)
{
	pthread_mutex_lock(&l->lock);
	if (l->state && json_equal(l->state, state)) {
		pthread_mutex_unlock(&l->lock);
		json_decref(state);
		return;
	}
	json_decref(l->state);
	l->state = state;
	l->wake = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
}

int fg_lease_replicas(struct fg_lease *l, const char *gateway)
{
	json_t *v;
	int n = -1;

	pthread_mutex_lock(&l->lock);
	if (l->replicas) {
		v = json_object_get(l->replicas, gateway);
		n = v ? (int)json_integer_value(v) : 0;
	}
	pthread_mutex_unlock(&l->lock);
	return n;
}

bool fg_lease_leader(struct fg_lease *l)
{
	bool v;

	pthread_mutex_lock(&l->lock);
	v = l->leader;
	pthread_mutex_unlock(&l->lock);
	return v;
}

json_t *fg_lease_status(struct fg_lease *l)
{
	json_t *j;

	pthread_mutex_lock(&l->lock);
	j = json_pack("{s:s, s:s, s:s, s:b, s:s, s:o, s:s}", "node", l->node, "lease",
		      l->node_lease, "namespace", l->ns, "leader", l->leader, "holder", l->holder,
		      "nodes", l->nodes ? json_deep_copy(l->nodes) : json_array(), "error",
		      l->error);
	pthread_mutex_unlock(&l->lock);
	return j;
}

void fg_lease_free(struct fg_lease *l)
{
	size_t i;

	if (!l)
		return;
	if (l->thread_started) {
		/* The request in flight gives up; goodbye() then has its own
		 * short timeouts. */
		__atomic_store_n(&l->abort_req, 1, __ATOMIC_RELAXED);
		pthread_mutex_lock(&l->lock);
		l->stop = true;
		pthread_cond_signal(&l->cond);
		pthread_mutex_unlock(&l->lock);
		pthread_join(l->thread, NULL);
	}
	if (l->easy)
		curl_easy_cleanup(l->easy);
	fg_kube_client_free(l->client);
	for (i = 0; i < l->n_obs; i++)
		obs_free(&l->obs[i]);
	free(l->obs);
	free(l->node_rv);
	free(l->l_holder);
	free(l->l_renew);
	json_decref(l->state);
	json_decref(l->replicas);
	json_decref(l->nodes);
	json_decref(l->written);
	json_decref(l->write_errs);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

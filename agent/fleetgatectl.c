// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fleetgatectl: the operator's view of a running fleetgate data plane.
 *
 * It opens the maps the agent pinned under --pin-path and prints them as
 * kubectl-style tables (header row, aligned columns) or, with -o json, as
 * JSON. Every command first collects its data into a JSON document; the
 * table is rendered from that document, so both outputs always agree.
 *
 * Commands are looked up in one table. "get KIND" reaches the same entries
 * ("get listeners" == "listeners"); kinds served by the agent's admin socket
 * rather than the maps fit in the same table with needs_maps = false.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <jansson.h>

#include "admin.h"
#include "dataplane.h"
#include "fleetgate.h"
#include "log.h"

#define CTL_NAME "fleetgatectl"
#define CT_DEFAULT_LIMIT 100

enum ctl_exit {
	EXIT_OK = 0,
	EXIT_FAIL = 1,
	EXIT_USAGE = 2,
};

struct ctl {
	const char *pin_path;
	const char *admin_path; /* NULL: derived from the pin path */
	bool json;
	long limit;     /* conntrack rows; 0: all */
	bool limit_set;
	bool reported;  /* the error was already explained on stderr */
	struct fg_dataplane *dp;
	const struct fg_maps *maps;
	/* Array maps, read once on first use. */
	struct fg_service *services;
	struct fg_cluster *clusters;
	struct fg_backend *backends;
	__u32 max_services, max_backends; /* ids read: below the highs in use */
	__u32 cap_services, cap_backends; /* map sizes */
	/* Which services have each backend as a member (from the member
	 * lists), read on first use. */
	struct backend_services *members_of;
};

struct backend_services {
	__u32 n, cap;
	__u32 *sids;
};

/* ------------------------------------------------------------------ */
/* Tables                                                              */
/* ------------------------------------------------------------------ */

#define TBL_MAX_COLS 12
#define TBL_GAP 3

struct table {
	int ncols;
	const char *hdr[TBL_MAX_COLS];
	char **cells; /* row-major, ncols per row */
	size_t ncells;
	size_t cap;
};

static void tbl_init(struct table *t, ...)
{
	const char *h;
	va_list ap;

	memset(t, 0, sizeof(*t));
	va_start(ap, t);
	while ((h = va_arg(ap, const char *)) && t->ncols < TBL_MAX_COLS)
		t->hdr[t->ncols++] = h;
	va_end(ap);
}

/* Appends one cell; rows fill left to right. Out of memory: the cell is
 * dropped, which only garbles the table, never the process. */
__attribute__((format(printf, 2, 3)))
static void tbl_cell(struct table *t, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	if (t->ncells == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **cells = realloc(t->cells, cap * sizeof(*cells));

		if (!cells)
			return;
		t->cells = cells;
		t->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	t->cells[t->ncells++] = s;
}

static const char *tbl_at(const struct table *t, size_t row, int col)
{
	size_t i = row * t->ncols + col;

	if (i >= t->ncells || !t->cells[i])
		return "";
	return t->cells[i];
}

static void tbl_print_row(const struct table *t, const size_t *width, size_t row, bool hdr)
{
	int c;

	for (c = 0; c < t->ncols; c++) {
		const char *s = hdr ? t->hdr[c] : tbl_at(t, row, c);

		if (c == t->ncols - 1)
			printf("%s\n", s);
		else
			printf("%-*s", (int)(width[c] + TBL_GAP), s);
	}
}

static void tbl_print(const struct table *t)
{
	size_t width[TBL_MAX_COLS] = {};
	size_t nrows, r;
	int c;

	if (!t->ncols)
		return;
	nrows = (t->ncells + t->ncols - 1) / t->ncols;
	for (c = 0; c < t->ncols; c++)
		width[c] = strlen(t->hdr[c]);
	for (r = 0; r < nrows; r++)
		for (c = 0; c < t->ncols; c++)
			if (strlen(tbl_at(t, r, c)) > width[c])
				width[c] = strlen(tbl_at(t, r, c));
	tbl_print_row(t, width, 0, true);
	for (r = 0; r < nrows; r++)
		tbl_print_row(t, width, r, false);
}

static void tbl_free(struct table *t)
{
	size_t i;

	for (i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------------ */
/* JSON helpers                                                        */
/* ------------------------------------------------------------------ */

static const char *js(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static long long ji(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static double jf(const json_t *o, const char *key)
{
	return json_number_value(json_object_get(o, key));
}

static bool jb(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

static json_t *ju64(__u64 v)
{
	return json_integer((json_int_t)v);
}

static json_t *counter_json(const struct fg_counter *c)
{
	return json_pack("{s:o, s:o}", "packets", ju64(c->packets), "bytes", ju64(c->bytes));
}

static json_t *list_new(const char *kind)
{
	return json_pack("{s:s, s:i, s:[]}", "kind", kind, "count", 0, "items");
}

static int list_append(json_t *list, json_t *item)
{
	json_t *items = json_object_get(list, "items");

	if (!item || json_array_append_new(items, item))
		return -ENOMEM;
	return json_object_set_new(list, "count", json_integer(json_array_size(items)))
		? -ENOMEM : 0;
}

/* ------------------------------------------------------------------ */
/* Map access                                                          */
/* ------------------------------------------------------------------ */

/* Reads a whole array map into out (max_entries values of vsize bytes):
 * in batches where the kernel can, else one element at a time. */
static int read_array(int fd, __u32 n, size_t vsize, void *out)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 *keys, out_batch = 0, done = 0, count, i;
	void *in = NULL;
	int err = 0;

	keys = calloc(n, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	while (done < n) {
		count = n - done;
		err = bpf_map_lookup_batch(fd, in, &out_batch, keys + done,
					   (char *)out + (size_t)done * vsize, &count, &bopts);
		if (err && errno != ENOENT)
			break;
		done += count;
		if (err) {
			err = 0;
			break;
		}
		in = &out_batch;
	}
	if (err || done != n) {
		/* No batch support (or a short read): the slow path. */
		for (i = 0, err = 0; i < n && !err; i++)
			if (bpf_map_lookup_elem(fd, &i, (char *)out + (size_t)i * vsize))
				err = -errno;
	}
	free(keys);
	return err;
}

/* Number of entries of a hash map. */
static int count_hash(int fd, size_t key_size, long *count)
{
	void *cur, *next;
	void *prev = NULL;
	int err = 0;

	*count = 0;
	cur = calloc(1, key_size);
	next = calloc(1, key_size);
	if (!cur || !next) {
		err = -ENOMEM;
		goto out;
	}
	while (!bpf_map_get_next_key(fd, prev, next)) {
		memcpy(cur, next, key_size);
		prev = cur;
		(*count)++;
	}
	if (errno != ENOENT)
		err = -errno;
out:
	free(cur);
	free(next);
	return err;
}

static void *load_array(int fd, __u32 n, size_t vsize, const char *name, int *errp)
{
	void *buf = calloc(n, vsize);
	int err;

	if (!buf) {
		*errp = -ENOMEM;
		return NULL;
	}
	err = read_array(fd, n, vsize, buf);
	if (err) {
		fprintf(stderr, CTL_NAME ": cannot read map %s: %s\n", name, strerror(-err));
		free(buf);
		*errp = err;
		return NULL;
	}
	return buf;
}

static int read_settings(struct ctl *ctl, struct fg_settings *s);

static int ctl_load_tables(struct ctl *ctl)
{
	int err = 0;

	struct fg_settings st;

	ctl->max_services = ctl->cap_services = fg_dp_max_services(ctl->dp);
	ctl->max_backends = ctl->cap_backends = fg_dp_max_backends(ctl->dp);
	/* Only the ids the agent ever used are read (the maps may hold a
	 * million entries). */
	if (!read_settings(ctl, &st) && st.backend_high && st.service_high) {
		if (st.service_high < ctl->max_services)
			ctl->max_services = st.service_high;
		if (st.backend_high < ctl->max_backends)
			ctl->max_backends = st.backend_high;
	}
	if (!ctl->services)
		ctl->services = load_array(ctl->maps->services, ctl->max_services,
					   sizeof(struct fg_service), "services", &err);
	if (!err && !ctl->clusters)
		ctl->clusters = load_array(ctl->maps->clusters, FG_MAX_CLUSTERS,
					   sizeof(struct fg_cluster), "clusters", &err);
	if (!err && !ctl->backends)
		ctl->backends = load_array(ctl->maps->backends, ctl->max_backends,
					   sizeof(struct fg_backend), "backends", &err);
	return err;
}

static int read_settings(struct ctl *ctl, struct fg_settings *s)
{
	__u32 zero = 0;

	memset(s, 0, sizeof(*s));
	return bpf_map_lookup_elem(ctl->maps->settings, &zero, s) ? -errno : 0;
}

static int read_counter(struct ctl *ctl, int fd, __u32 idx, struct fg_counter *c)
{
	int err = fg_dp_read_counter(ctl->dp, fd, idx, c);

	if (err)
		memset(c, 0, sizeof(*c));
	return err;
}

/* ------------------------------------------------------------------ */
/* Names                                                               */
/* ------------------------------------------------------------------ */

static const char *proto_name(__u8 proto)
{
	switch (proto) {
	case FG_PROTO_TCP:
		return "tcp";
	case FG_PROTO_UDP:
		return "udp";
	default:
		return "?";
	}
}

static const char *family_name(__u8 family)
{
	return family == FG_AF_INET6 ? "ipv6" : "ipv4";
}

static const char *kind_name(__u8 kind)
{
	switch (kind) {
	case FG_LISTENER_L4:
		return "l4";
	case FG_LISTENER_L7:
		return "l7";
	default:
		return "?";
	}
}

static const char *ct_state_name(__u8 state)
{
	switch (state) {
	case FG_CT_NEW:
		return "new";
	case FG_CT_ESTABLISHED:
		return "established";
	case FG_CT_CLOSING:
		return "closing";
	default:
		return "?";
	}
}

static const char *verdict_of(int reason)
{
	if (reason == FG_R_FORWARD || reason == FG_R_REPLY)
		return "tx";
	return fg_reason_is_drop(reason) ? "drop" : "pass";
}

/* "10.0.0.1:80" / "[fd00::1]:80"; port in network order. */
static const char *addr_port_str(const struct fg_addr *a, __u8 family, __be16 port,
				 char *buf, size_t len)
{
	char abuf[INET6_ADDRSTRLEN];

	fg_addr_str(a, family, abuf, sizeof(abuf));
	snprintf(buf, len, family == FG_AF_INET6 ? "[%s]:%u" : "%s:%u", abuf, ntohs(port));
	return buf;
}

/* Only NUL-terminated within the field, whatever the map holds. */
static void name_copy(char *dst, const char *src)
{
	snprintf(dst, FG_NAME_LEN + 1, "%.*s", FG_NAME_LEN, src);
}

static void service_name(const struct ctl *ctl, __u32 id, char *buf)
{
	buf[0] = '\0';
	if (id < ctl->max_services && (ctl->services[id].flags & FG_SERVICE_F_ACTIVE))
		name_copy(buf, ctl->services[id].name);
}

static void cluster_name(const struct ctl *ctl, __u32 idx, char *buf)
{
	buf[0] = '\0';
	if (idx < FG_MAX_CLUSTERS && (ctl->clusters[idx].flags & FG_CLUSTER_F_ACTIVE))
		name_copy(buf, ctl->clusters[idx].name);
}

static const struct fg_backend *backend_get(const struct ctl *ctl, __u32 id)
{
	if (id >= ctl->max_backends || !(ctl->backends[id].flags & FG_BACKEND_F_ACTIVE))
		return NULL;
	return &ctl->backends[id];
}

/* "1/web", or just the id when the service has no entry. */
static void id_name_str(char *buf, size_t len, long long id, const char *name)
{
	if (name && name[0])
		snprintf(buf, len, "%lld/%s", id, name);
	else
		snprintf(buf, len, "%lld", id);
}

/* ------------------------------------------------------------------ */
/* listeners                                                           */
/* ------------------------------------------------------------------ */

struct listener_ent {
	struct fg_listener_key key;
	struct fg_listener val;
};

static int listener_cmp(const void *a, const void *b)
{
	const struct fg_listener_key *x = &((const struct listener_ent *)a)->key;
	const struct fg_listener_key *y = &((const struct listener_ent *)b)->key;
	int d;

	if (x->family != y->family)
		return x->family - y->family;
	d = memcmp(x->vip.bytes, y->vip.bytes, sizeof(x->vip.bytes));
	if (d)
		return d;
	if (x->port != y->port)
		return ntohs(x->port) - ntohs(y->port);
	return x->proto - y->proto;
}

/* Every listener, sorted by address, port and protocol. */
static int read_listeners(struct ctl *ctl, struct listener_ent **out, size_t *n_out)
{
	struct fg_listener_key *prev = NULL, next;
	struct listener_ent *ents;
	size_t n = 0;

	ents = calloc(FG_MAX_LISTENERS, sizeof(*ents));
	if (!ents)
		return -ENOMEM;
	while (n < FG_MAX_LISTENERS && !bpf_map_get_next_key(ctl->maps->listeners, prev, &next)) {
		ents[n].key = next;
		prev = &ents[n].key;
		if (bpf_map_lookup_elem(ctl->maps->listeners, &next, &ents[n].val))
			continue; /* deleted meanwhile */
		n++;
	}
	qsort(ents, n, sizeof(*ents), listener_cmp);
	*out = ents;
	*n_out = n;
	return 0;
}

static json_t *listener_json(struct ctl *ctl, const struct listener_ent *e)
{
	char vip[INET6_ADDRSTRLEN], sname[FG_NAME_LEN + 1];
	struct fg_counter c;

	fg_addr_str(&e->key.vip, e->key.family, vip, sizeof(vip));
	service_name(ctl, e->val.service_id, sname);
	read_counter(ctl, ctl->maps->listener_stats, e->val.stats_idx, &c);
	return json_pack("{s:s, s:s, s:i, s:s, s:s, s:I, s:s, s:b, s:i, s:o}",
			 "vip", vip, "family", family_name(e->key.family),
			 "port", ntohs(e->key.port), "proto", proto_name(e->key.proto),
			 "kind", kind_name(e->val.kind),
			 "service_id", (json_int_t)e->val.service_id, "service", sname,
			 "allowlist", !!(e->val.flags & FG_LISTENER_F_ALLOWLIST),
			 "stats_idx", e->val.stats_idx, "stats", counter_json(&c));
}

static int cmd_listeners(struct ctl *ctl, int argc, char **argv, json_t **out)
{
	struct listener_ent *ents;
	json_t *list;
	size_t n, i;
	int err;

	err = read_listeners(ctl, &ents, &n);
	if (err)
		return err;
	list = list_new("listeners");
	for (i = 0; list && i < n && !err; i++)
		err = list_append(list, listener_json(ctl, &ents[i]));
	free(ents);
	if (!list || err) {
		json_decref(list);
		return err ? err : -ENOMEM;
	}
	*out = list;
	return 0;
}

static void render_listeners(const json_t *doc)
{
	struct table t;
	json_t *it;
	size_t i;

	tbl_init(&t, "VIP", "PORT", "PROTO", "KIND", "SERVICE", "ALLOWLIST", "PACKETS",
		 "BYTES", NULL);
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		json_t *st = json_object_get(it, "stats");
		char svc[96];

		id_name_str(svc, sizeof(svc), ji(it, "service_id"), js(it, "service"));
		tbl_cell(&t, "%s", js(it, "vip"));
		tbl_cell(&t, "%lld", ji(it, "port"));
		tbl_cell(&t, "%s", js(it, "proto"));
		tbl_cell(&t, "%s", js(it, "kind"));
		tbl_cell(&t, "%s", svc);
		tbl_cell(&t, "%s", jb(it, "allowlist") ? "yes" : "no");
		tbl_cell(&t, "%lld", ji(st, "packets"));
		tbl_cell(&t, "%lld", ji(st, "bytes"));
	}
	tbl_print(&t);
	tbl_free(&t);
}

/* ------------------------------------------------------------------ */
/* backends                                                            */
/* ------------------------------------------------------------------ */

/* backend id -> the services whose member lists hold it. */
static int load_members(struct ctl *ctl)
{
	struct fg_ring_key cur, next, *prev = NULL;
	int err = 0;

	if (ctl->members_of)
		return 0;
	ctl->members_of = calloc(ctl->max_backends, sizeof(*ctl->members_of));
	if (!ctl->members_of)
		return -ENOMEM;
	while (!err && !bpf_map_get_next_key(ctl->maps->rings, prev, &next)) {
		__u32 *ids, n, i;

		cur = next;
		prev = &cur;
		if (cur.cluster_idx == FG_RING_CLUSTERS || !(cur.cluster_idx & FG_RING_MEMBERS))
			continue;
		if (fg_dp_ring_read(ctl->dp, cur.service_id, cur.cluster_idx, &ids, &n))
			continue;
		for (i = 0; i < n && !err; i++) {
			struct backend_services *bs;

			if (ids[i] >= ctl->max_backends)
				continue;
			bs = &ctl->members_of[ids[i]];
			if (bs->n == bs->cap) {
				__u32 cap = bs->cap ? bs->cap * 2 : 2, *a;

				a = realloc(bs->sids, cap * sizeof(*a));
				if (!a) {
					err = -ENOMEM;
					break;
				}
				bs->sids = a;
				bs->cap = cap;
			}
			bs->sids[bs->n++] = cur.service_id;
		}
		free(ids);
	}
	return err;
}

static json_t *backend_json(struct ctl *ctl, __u32 id, const struct fg_backend *be)
{
	char addr[INET6_ADDRSTRLEN], sname[FG_NAME_LEN + 1], cname[FG_NAME_LEN + 1];
	const struct backend_services *bs = ctl->members_of ? &ctl->members_of[id] : NULL;
	json_t *svcs = json_array();
	struct fg_counter c;
	__u32 i;

	fg_addr_str(&be->addr, be->family, addr, sizeof(addr));
	cluster_name(ctl, be->cluster_idx, cname);
	read_counter(ctl, ctl->maps->backend_stats, id, &c);
	for (i = 0; bs && svcs && i < bs->n; i++) {
		service_name(ctl, bs->sids[i], sname);
		json_array_append_new(svcs, json_pack("{s:I, s:s}", "id", (json_int_t)bs->sids[i],
						      "name", sname));
	}
	return json_pack("{s:I, s:I, s:o, s:I, s:s, s:s, s:s, s:i, s:I, s:s, s:o}",
			 "id", (json_int_t)id, "gen", (json_int_t)be->gen,
			 "services", svcs ? svcs : json_array(),
			 "cluster_idx", (json_int_t)be->cluster_idx,
			 "cluster", cname, "address", addr, "family", family_name(be->family),
			 "port", ntohs(be->port), "weight", (json_int_t)be->weight,
			 "state", (be->flags & FG_BACKEND_F_UP) ? "up" : "down",
			 "stats", counter_json(&c));
}

static int cmd_backends(struct ctl *ctl, int argc, char **argv, json_t **out)
{
	json_t *list = list_new("backends");
	__u32 id;
	int err = 0;

	if (!list)
		return -ENOMEM;
	err = load_members(ctl);
	for (id = 0; id < ctl->max_backends && !err; id++) {
		const struct fg_backend *be = backend_get(ctl, id);

		if (be)
			err = list_append(list, backend_json(ctl, id, be));
	}
	if (err) {
		json_decref(list);
		return err;
	}
	*out = list;
	return 0;
}

static void render_backends(const json_t *doc)
{
	struct table t;
	json_t *it;
	size_t i;

	tbl_init(&t, "ID", "SERVICES", "CLUSTER", "ADDRESS:PORT", "WEIGHT", "STATE", "PACKETS",
		 "BYTES", NULL);
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		json_t *st = json_object_get(it, "stats");
		json_t *svcs = json_object_get(it, "services"), *s0 = json_array_get(svcs, 0);
		char svc[128], one[96], cl[96];

		/* The first service, and how many more share the endpoint. */
		if (s0) {
			id_name_str(one, sizeof(one), ji(s0, "id"), js(s0, "name"));
			if (json_array_size(svcs) > 1)
				snprintf(svc, sizeof(svc), "%s +%zu", one, json_array_size(svcs) - 1);
			else
				snprintf(svc, sizeof(svc), "%s", one);
		} else {
			snprintf(svc, sizeof(svc), "-");
		}
		snprintf(cl, sizeof(cl), "%s", js(it, "cluster")[0] ? js(it, "cluster") : "-");
		tbl_cell(&t, "%lld", ji(it, "id"));
		tbl_cell(&t, "%s", svc);
		tbl_cell(&t, "%s", cl);
		tbl_cell(&t, strcmp(js(it, "family"), "ipv6") ? "%s:%lld" : "[%s]:%lld",
			 js(it, "address"), ji(it, "port"));
		tbl_cell(&t, "%lld", ji(it, "weight"));
		tbl_cell(&t, "%s", js(it, "state"));
		tbl_cell(&t, "%lld", ji(st, "packets"));
		tbl_cell(&t, "%lld", ji(st, "bytes"));
	}
	tbl_print(&t);
	tbl_free(&t);
}

/* ------------------------------------------------------------------ */
/* clusters                                                            */
/* ------------------------------------------------------------------ */

static int cmd_clusters(struct ctl *ctl, int argc, char **argv, json_t **out)
{
	json_t *list = list_new("clusters");
	char name[FG_NAME_LEN + 1];
	struct fg_counter c;
	__u32 idx;
	int err = 0;

	if (!list)
		return -ENOMEM;
	for (idx = 0; idx < FG_MAX_CLUSTERS && !err; idx++) {
		const struct fg_cluster *cl = &ctl->clusters[idx];

		if (!(cl->flags & FG_CLUSTER_F_ACTIVE))
			continue;
		name_copy(name, cl->name);
		read_counter(ctl, ctl->maps->cluster_stats, idx, &c);
		err = list_append(list, json_pack("{s:I, s:s, s:s, s:o}", "idx", (json_int_t)idx,
						  "name", name,
						  "state", (cl->flags & FG_CLUSTER_F_UP) ? "up" : "down",
						  "stats", counter_json(&c)));
	}
	if (err) {
		json_decref(list);
		return err;
	}
	*out = list;
	return 0;
}

static void render_clusters(const json_t *doc)
{
	struct table t;
	json_t *it;
	size_t i;

	tbl_init(&t, "IDX", "NAME", "STATE", "PACKETS", "BYTES", NULL);
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		json_t *st = json_object_get(it, "stats");

		tbl_cell(&t, "%lld", ji(it, "idx"));
		tbl_cell(&t, "%s", js(it, "name"));
		tbl_cell(&t, "%s", js(it, "state"));
		tbl_cell(&t, "%lld", ji(st, "packets"));
		tbl_cell(&t, "%lld", ji(st, "bytes"));
	}
	tbl_print(&t);
	tbl_free(&t);
}

/* ------------------------------------------------------------------ */
/* rings                                                               */
/* ------------------------------------------------------------------ */

/* Slots per value in ring; values >= cap are counted as empty. */
static __u32 ring_count(const __u32 *ring, __u32 size, __u32 *counts, __u32 cap)
{
	__u32 i, empty = 0;

	memset(counts, 0, cap * sizeof(*counts));
	for (i = 0; i < size; i++) {
		if (ring[i] < cap)
			counts[ring[i]]++;
		else
			empty++;
	}
	return empty;
}

static double pct(__u32 part, __u32 whole)
{
	return whole ? 100.0 * part / whole : 0.0;
}

static double round2(double v)
{
	return (double)(long long)(v * 100.0 + 0.5) / 100.0;
}

static json_t *cluster_ring_json(struct ctl *ctl, __u32 sid, double *share)
{
	const struct fg_service *svc = &ctl->services[sid];
	char name[FG_NAME_LEN + 1];
	__u32 counts[FG_MAX_CLUSTERS], *ring, size, empty, c;
	json_t *arr;
	int err;

	err = fg_dp_ring_read(ctl->dp, sid, FG_RING_CLUSTERS, &ring, &size);
	if (err)
		return json_pack("{s:i, s:i, s:[]}", "size", 0, "empty", 0, "clusters");
	empty = ring_count(ring, size, counts, FG_MAX_CLUSTERS);
	free(ring);
	arr = json_array();
	for (c = 0; arr && c < FG_MAX_CLUSTERS; c++) {
		share[c] = pct(counts[c], size);
		if (!counts[c] && !svc->cluster_weight[c])
			continue;
		cluster_name(ctl, c, name);
		json_array_append_new(arr, json_pack("{s:I, s:s, s:I, s:I, s:f}",
						     "idx", (json_int_t)c, "name", name,
						     "weight", (json_int_t)svc->cluster_weight[c],
						     "slots", (json_int_t)counts[c],
						     "share_pct", round2(share[c])));
	}
	return json_pack("{s:I, s:I, s:o}", "size", (json_int_t)size, "empty", (json_int_t)empty,
			 "clusters", arr);
}

/* One cluster of a service: its members (up or down) and, when some are
 * up, the Maglev ring over those. */
static json_t *backend_ring_json(struct ctl *ctl, __u32 sid, __u32 cidx, double cluster_share,
				 __u32 *counts)
{
	char name[FG_NAME_LEN + 1], addr[INET6_ADDRSTRLEN + 8];
	__u32 *ring = NULL, size = 0, empty = 0, *members = NULL, n_members = 0, i;
	json_t *arr;

	fg_dp_ring_read(ctl->dp, sid, cidx | FG_RING_MEMBERS, &members, &n_members);
	if (!fg_dp_ring_read(ctl->dp, sid, cidx, &ring, &size)) {
		empty = ring_count(ring, size, counts, ctl->max_backends);
		free(ring);
	}
	arr = json_array();
	for (i = 0; arr && i < n_members; i++) {
		__u32 id = members[i];
		const struct fg_backend *be = backend_get(ctl, id);
		__u32 slots = size && id < ctl->max_backends ? counts[id] : 0;
		double share = pct(slots, size);

		if (be)
			addr_port_str(&be->addr, be->family, be->port, addr, sizeof(addr));
		else
			snprintf(addr, sizeof(addr), "?");
		json_array_append_new(arr, json_pack("{s:I, s:s, s:I, s:s, s:I, s:f, s:f}",
			"id", (json_int_t)id, "address", addr,
			"weight", (json_int_t)(be ? be->weight : 0),
			"state", be && (be->flags & FG_BACKEND_F_UP) ? "up" : "down",
			"slots", (json_int_t)slots, "share_pct", round2(share),
			"effective_pct", round2(share * cluster_share / 100.0)));
	}
	free(members);
	cluster_name(ctl, cidx, name);
	return json_pack("{s:I, s:s, s:I, s:I, s:I, s:o}", "cluster_idx", (json_int_t)cidx,
			 "cluster", name, "size", (json_int_t)size, "empty", (json_int_t)empty,
			 "members", (json_int_t)n_members, "backends", arr);
}

/* The clusters of a service that have members or a ring, by index. */
static int service_clusters(struct ctl *ctl, __u32 sid, __u32 *cidx, size_t *n)
{
	struct fg_ring_key cur, next, *prev = NULL;
	bool seen[FG_MAX_CLUSTERS] = {};
	__u32 c;

	*n = 0;
	while (!bpf_map_get_next_key(ctl->maps->rings, prev, &next)) {
		cur = next;
		prev = &cur;
		if (cur.service_id != sid || cur.cluster_idx == FG_RING_CLUSTERS)
			continue;
		c = cur.cluster_idx & ~FG_RING_MEMBERS;
		if (c < FG_MAX_CLUSTERS)
			seen[c] = true;
	}
	if (errno != ENOENT)
		return -errno;
	for (c = 0; c < FG_MAX_CLUSTERS; c++)
		if (seen[c])
			cidx[(*n)++] = c;
	return 0;
}

static int parse_u32(const char *s, __u32 max, __u32 *out)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || end == s || *end || v >= max || s[0] == '-')
		return -EINVAL;
	*out = v;
	return 0;
}

static int cmd_rings(struct ctl *ctl, int argc, char **argv, json_t **out)
{
	__u32 cidx[FG_MAX_CLUSTERS];
	double share[FG_MAX_CLUSTERS] = {};
	char name[FG_NAME_LEN + 1];
	json_t *doc, *brings;
	__u32 sid, *counts;
	size_t n, i;
	int err;

	if (parse_u32(argv[0], ctl->cap_services, &sid)) {
		fprintf(stderr, CTL_NAME ": invalid service id '%s' (0..%u)\n", argv[0],
			ctl->cap_services - 1);
		ctl->reported = true;
		return -EINVAL;
	}
	if (sid >= ctl->max_services || !(ctl->services[sid].flags & FG_SERVICE_F_ACTIVE)) {
		fprintf(stderr, CTL_NAME ": service %u does not exist\n", sid);
		ctl->reported = true;
		return -ENOENT;
	}
	err = service_clusters(ctl, sid, cidx, &n);
	if (err)
		return err;
	counts = calloc(ctl->max_backends, sizeof(*counts));
	if (!counts)
		return -ENOMEM;
	service_name(ctl, sid, name);
	doc = json_pack("{s:s, s:I, s:s, s:I, s:o, s:[]}", "kind", "rings",
			"service_id", (json_int_t)sid, "service", name,
			"generation", (json_int_t)ctl->services[sid].generation,
			"cluster_ring", cluster_ring_json(ctl, sid, share), "backend_rings");
	brings = json_object_get(doc, "backend_rings");
	for (i = 0; doc && i < n; i++) {
		json_t *br = backend_ring_json(ctl, sid, cidx[i], share[cidx[i]], counts);

		if (br)
			json_array_append_new(brings, br);
	}
	free(counts);
	if (!doc)
		return -ENOMEM;
	*out = doc;
	return 0;
}

static void render_rings(const json_t *doc)
{
	json_t *cr = json_object_get(doc, "cluster_ring"), *br, *it;
	struct table t;
	size_t i, j;

	printf("Service:       %lld/%s (generation %lld)\n", ji(doc, "service_id"),
	       js(doc, "service"), ji(doc, "generation"));
	printf("Cluster ring:  %lld slots, %lld empty\n\n", ji(cr, "size"), ji(cr, "empty"));
	tbl_init(&t, "IDX", "CLUSTER", "WEIGHT", "SLOTS", "SHARE", NULL);
	json_array_foreach(json_object_get(cr, "clusters"), i, it) {
		tbl_cell(&t, "%lld", ji(it, "idx"));
		tbl_cell(&t, "%s", js(it, "name")[0] ? js(it, "name") : "-");
		tbl_cell(&t, "%lld", ji(it, "weight"));
		tbl_cell(&t, "%lld", ji(it, "slots"));
		tbl_cell(&t, "%.2f%%", jf(it, "share_pct"));
	}
	tbl_print(&t);
	tbl_free(&t);

	printf("\n");
	tbl_init(&t, "CLUSTER", "RING", "ID", "ADDRESS:PORT", "WEIGHT", "STATE", "SLOTS",
		 "SHARE", "EFFECTIVE", NULL);
	json_array_foreach(json_object_get(doc, "backend_rings"), i, br) {
		json_array_foreach(json_object_get(br, "backends"), j, it) {
			tbl_cell(&t, "%lld/%s", ji(br, "cluster_idx"), js(br, "cluster"));
			tbl_cell(&t, "%lld", ji(br, "size"));
			tbl_cell(&t, "%lld", ji(it, "id"));
			tbl_cell(&t, "%s", js(it, "address"));
			tbl_cell(&t, "%lld", ji(it, "weight"));
			tbl_cell(&t, "%s", js(it, "state"));
			tbl_cell(&t, "%lld", ji(it, "slots"));
			tbl_cell(&t, "%.2f%%", jf(it, "share_pct"));
			tbl_cell(&t, "%.2f%%", jf(it, "effective_pct"));
		}
	}
	tbl_print(&t);
	tbl_free(&t);
}

/* ------------------------------------------------------------------ */
/* conntrack                                                           */
/* ------------------------------------------------------------------ */

struct ct_ent {
	struct fg_flow key;
	struct fg_ct val;
};

/* Most recently seen first. */
static int ct_cmp(const void *a, const void *b)
{
	__u64 x = ((const struct ct_ent *)a)->val.last_seen_ns;
	__u64 y = ((const struct ct_ent *)b)->val.last_seen_ns;

	return (x < y) - (x > y);
}

static int read_conntrack(struct ctl *ctl, struct ct_ent **out, size_t *n_out)
{
	struct fg_flow cur, next, *prev = NULL;
	size_t n = 0, cap = 1024;
	struct ct_ent *ents, *tmp;

	ents = malloc(cap * sizeof(*ents));
	if (!ents)
		return -ENOMEM;
	while (!bpf_map_get_next_key(ctl->maps->conntrack, prev, &next)) {
		cur = next;
		prev = &cur;
		if (n == cap) {
			tmp = realloc(ents, 2 * cap * sizeof(*ents));
			if (!tmp) {
				free(ents);
				return -ENOMEM;
			}
			ents = tmp;
			cap *= 2;
		}
		ents[n].key = next;
		if (!bpf_map_lookup_elem(ctl->maps->conntrack, &next, &ents[n].val))
			n++;
	}
	qsort(ents, n, sizeof(*ents), ct_cmp);
	*out = ents;
	*n_out = n;
	return 0;
}

static json_t *ct_json(struct ctl *ctl, const struct ct_ent *e, __u64 now)
{
	char client[INET6_ADDRSTRLEN + 8], vip[INET6_ADDRSTRLEN + 8];
	char backend[INET6_ADDRSTRLEN + 8], snat[INET6_ADDRSTRLEN + 8];
	const struct fg_backend *be = backend_get(ctl, e->val.backend_id);
	__u64 age = now > e->val.last_seen_ns ? now - e->val.last_seen_ns : 0;

	addr_port_str(&e->key.src, e->key.family, e->key.sport, client, sizeof(client));
	addr_port_str(&e->key.dst, e->key.family, e->key.dport, vip, sizeof(vip));
	addr_port_str(&e->val.snat_addr, e->key.family, e->val.snat_port, snat, sizeof(snat));
	if (be)
		addr_port_str(&be->addr, be->family, be->port, backend, sizeof(backend));
	else
		snprintf(backend, sizeof(backend), "#%u", e->val.backend_id);
	return json_pack("{s:s, s:s, s:s, s:I, s:s, s:I, s:I, s:s, s:s, s:f}",
			 "proto", proto_name(e->key.proto), "client", client, "vip", vip,
			 "backend_id", (json_int_t)e->val.backend_id, "backend", backend,
			 "service_id", (json_int_t)e->val.service_id,
			 "cluster_idx", (json_int_t)e->val.cluster_idx, "snat", snat,
			 "state", ct_state_name(e->val.state), "age_s", age / 1e9);
}

static __u64 mono_now_ns(void)
{
	struct timespec ts;

	/* bpf_ktime_get_ns() is CLOCK_MONOTONIC. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int cmd_conntrack(struct ctl *ctl, int argc, char **argv, json_t **out)
{
	__u64 now = mono_now_ns();
	struct ct_ent *ents;
	json_t *list;
	size_t n, i, shown;
	int err;

	err = read_conntrack(ctl, &ents, &n);
	if (err)
		return err;
	shown = ctl->limit > 0 && (size_t)ctl->limit < n ? (size_t)ctl->limit : n;
	list = list_new("conntrack");
	for (i = 0; list && i < shown && !err; i++)
		err = list_append(list, ct_json(ctl, &ents[i], now));
	free(ents);
	if (list && !err)
		err = json_object_set_new(list, "total", json_integer(n)) ? -ENOMEM : 0;
	if (!list || err) {
		json_decref(list);
		return err ? err : -ENOMEM;
	}
	*out = list;
	return 0;
}

static void render_conntrack(const json_t *doc)
{
	struct table t;
	json_t *it;
	size_t i;

	tbl_init(&t, "PROTO", "CLIENT", "VIP", "BACKEND", "SNAT", "STATE", "AGE(s)", NULL);
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		tbl_cell(&t, "%s", js(it, "proto"));
		tbl_cell(&t, "%s", js(it, "client"));
		tbl_cell(&t, "%s", js(it, "vip"));
		tbl_cell(&t, "%s", js(it, "backend"));
		tbl_cell(&t, "%s", js(it, "snat"));
		tbl_cell(&t, "%s", js(it, "state"));
		tbl_cell(&t, "%.1f", jf(it, "age_s"));
	}
	tbl_print(&t);
	tbl_free(&t);
	printf("\n%lld of %lld entries shown\n", ji(doc, "count"), ji(doc, "total"));
}

/* ------------------------------------------------------------------ */
/* counters                                                            */
/* ------------------------------------------------------------------ */

static int cmd_counters(struct ctl *ctl, int argc, char **argv, json_t **out)
{
	json_t *list = list_new("counters");
	struct fg_counter c;
	int r, err = 0;

	if (!list)
		return -ENOMEM;
	for (r = 0; r < FG_R_MAX && !err; r++) {
		err = read_counter(ctl, ctl->maps->verdicts, r, &c);
		if (err)
			break;
		err = list_append(list, json_pack("{s:s, s:i, s:s, s:o, s:o}",
						  "reason", fg_reason_name(r), "code", r,
						  "verdict", verdict_of(r),
						  "packets", ju64(c.packets), "bytes", ju64(c.bytes)));
	}
	if (err) {
		fprintf(stderr, CTL_NAME ": cannot read the verdicts map: %s\n", strerror(-err));
		ctl->reported = true;
		json_decref(list);
		return err;
	}
	*out = list;
	return 0;
}

static void render_counters(const json_t *doc)
{
	struct table t;
	json_t *it;
	size_t i;

	tbl_init(&t, "REASON", "VERDICT", "PACKETS", "BYTES", NULL);
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		tbl_cell(&t, "%s", js(it, "reason"));
		tbl_cell(&t, "%s", js(it, "verdict"));
		tbl_cell(&t, "%lld", ji(it, "packets"));
		tbl_cell(&t, "%lld", ji(it, "bytes"));
	}
	tbl_print(&t);
	tbl_free(&t);
}

/* ------------------------------------------------------------------ */
/* status                                                              */
/* ------------------------------------------------------------------ */

struct up_down {
	long active, up;
};

static json_t *up_down_json(const struct up_down *u)
{
	return json_pack("{s:I, s:I, s:I}", "active", (json_int_t)u->active,
			 "up", (json_int_t)u->up, "down", (json_int_t)(u->active - u->up));
}

/* Verdict totals by "tx", "pass" and "drop". */
static json_t *verdict_summary(struct ctl *ctl)
{
	struct fg_counter sum[3] = {}, c;
	static const char *const names[3] = { "tx", "pass", "drop" };
	json_t *doc = json_object();
	int r, k;

	for (r = 0; r < FG_R_MAX; r++) {
		if (read_counter(ctl, ctl->maps->verdicts, r, &c))
			continue;
		for (k = 0; k < 3; k++)
			if (!strcmp(verdict_of(r), names[k]))
				break;
		sum[k].packets += c.packets;
		sum[k].bytes += c.bytes;
	}
	for (k = 0; doc && k < 3; k++)
		json_object_set_new(doc, names[k], counter_json(&sum[k]));
	return doc;
}

/* One interface of the ifaces map: how the program is attached (as the
 * agent recorded it, and whether the kernel still has it: through the
 * pinned link, or, for a cls_bpf filter, asked in this namespace) and its
 * SNAT addresses. */
static json_t *iface_json(struct ctl *ctl, __u32 ifindex, const struct fg_iface *ifc)
{
	json_t *v4 = json_array(), *v6 = json_array(), *it;
	enum fg_attach mode = ifc->attach;
	char buf[INET6_ADDRSTRLEN];
	const char *kernel;
	__u32 prog_id = 0;
	int i, err;

	for (i = 0; i < ifc->n_v4 && i < FG_SNAT_ADDRS; i++)
		json_array_append_new(v4, json_string(fg_addr_str(&ifc->v4[i], FG_AF_INET, buf,
								   sizeof(buf))));
	for (i = 0; i < ifc->n_v6 && i < FG_SNAT_ADDRS; i++)
		json_array_append_new(v6, json_string(fg_addr_str(&ifc->v6[i], FG_AF_INET6, buf,
								   sizeof(buf))));
	err = fg_dp_pinned_link_prog(ctl->dp, (int)ifindex, mode, &prog_id);
	if (!err) {
		kernel = prog_id ? "attached" : "detached";
	} else if (mode == FG_ATTACH_NONE) {
		kernel = "none";
	} else {
		/* No link to ask: a cls_bpf filter, seen only from the agent's
		 * namespace (an ifindex means nothing elsewhere). */
		prog_id = fg_dp_attached_prog_id((int)ifindex, mode);
		kernel = prog_id ? "attached" : "not seen from this network namespace";
	}
	it = json_pack("{s:s, s:I, s:s, s:s, s:I, s:o, s:o}", "name", ifc->name,
		       "ifindex", (json_int_t)ifindex, "attach", fg_attach_name(mode),
		       "kernel", kernel, "prog_id", (json_int_t)prog_id, "snat_v4", v4,
		       "snat_v6", v6);
	return it;
}

static json_t *ifaces_json(struct ctl *ctl)
{
	json_t *arr = json_array();
	struct fg_iface ifc;
	__u32 key, next;
	void *prev = NULL;

	while (arr && !bpf_map_get_next_key(ctl->maps->ifaces, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(ctl->maps->ifaces, &key, &ifc))
			continue;
		json_array_append_new(arr, iface_json(ctl, key, &ifc));
	}
	return arr;
}

/* The SNAT allocator: its port ranges, the resting time, its counters. */
static json_t *snat_json(struct ctl *ctl, const struct fg_settings *s)
{
	__u64 st[FG_SNAT_STAT_MAX] = {};
	json_t *stats = json_object(), *ranges = json_array();
	char buf[32];
	int k;

	fg_dp_snat_stats(ctl->dp, st);
	for (k = 0; k < FG_SNAT_STAT_MAX; k++)
		json_object_set_new(stats, fg_snat_stat_name(k), ju64(st[k]));
	if (s->snat_port_min) {
		snprintf(buf, sizeof(buf), "%u-%u", s->snat_port_min, s->snat_port_max);
		json_array_append_new(ranges, json_string(buf));
	}
	if (s->snat_port2_min) {
		snprintf(buf, sizeof(buf), "%u-%u", s->snat_port2_min, s->snat_port2_max);
		json_array_append_new(ranges, json_string(buf));
	}
	return json_pack("{s:o, s:I, s:o}", "port_ranges", ranges, "time_wait_s",
			 (json_int_t)s->snat_time_wait_s, "allocations", stats);
}

static int cmd_status(struct ctl *ctl, int argc, char **argv, json_t **out)
{
	struct up_down be = {}, cl = {};
	long listeners = 0, ct = 0, rnat = 0, ifaces = 0, services = 0, rings = 0;
	struct fg_ring_stats rs;
	struct fg_settings s;
	json_t *doc;
	__u32 i;
	int err;

	err = read_settings(ctl, &s);
	if (!err)
		err = count_hash(ctl->maps->listeners, sizeof(struct fg_listener_key), &listeners);
	if (!err)
		err = count_hash(ctl->maps->conntrack, sizeof(struct fg_flow), &ct);
	if (!err)
		err = count_hash(ctl->maps->reverse_nat, sizeof(struct fg_flow), &rnat);
	if (!err)
		err = count_hash(ctl->maps->ifaces, sizeof(__u32), &ifaces);
	if (err)
		return err;
	for (i = 0; i < ctl->max_services; i++)
		services += !!(ctl->services[i].flags & FG_SERVICE_F_ACTIVE);
	for (i = 0; i < ctl->max_backends; i++) {
		be.active += !!(ctl->backends[i].flags & FG_BACKEND_F_ACTIVE);
		be.up += (ctl->backends[i].flags & (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP)) ==
			 (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP);
	}
	for (i = 0; i < FG_MAX_CLUSTERS; i++) {
		cl.active += !!(ctl->clusters[i].flags & FG_CLUSTER_F_ACTIVE);
		cl.up += (ctl->clusters[i].flags & (FG_CLUSTER_F_ACTIVE | FG_CLUSTER_F_UP)) ==
			 (FG_CLUSTER_F_ACTIVE | FG_CLUSTER_F_UP);
	}
	fg_dp_ring_stats(ctl->dp, &rs);
	err = count_hash(ctl->maps->rings, sizeof(struct fg_ring_key), &rings);
	if (err)
		return err;
	doc = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:I, s:I, s:I,"
			" s:I, s:o}",
			"kind", "status", "pin_path", ctl->pin_path,
			"maglev_size", (json_int_t)s.maglev_size,
			"ring_slab_slots", (json_int_t)rs.slab_slots,
			"rings", (json_int_t)rings,
			"max_services", (json_int_t)ctl->cap_services,
			"max_backends", (json_int_t)ctl->cap_backends,
			"fib_gen", (json_int_t)s.fib_gen,
			"listeners", (json_int_t)listeners, "services", (json_int_t)services,
			"backends", up_down_json(&be), "clusters", up_down_json(&cl),
			"conntrack_entries", (json_int_t)ct, "conntrack_max", (json_int_t)FG_CT_MAX,
			"reverse_nat_entries", (json_int_t)rnat, "ifaces", (json_int_t)ifaces,
			"verdicts", verdict_summary(ctl));
	if (!doc)
		return -ENOMEM;
	json_object_set_new(doc, "interfaces", ifaces_json(ctl));
	json_object_set_new(doc, "snat", snat_json(ctl, &s));
	*out = doc;
	return 0;
}

static void render_status(const json_t *doc)
{
	json_t *be = json_object_get(doc, "backends"), *cl = json_object_get(doc, "clusters");
	json_t *v = json_object_get(doc, "verdicts");
	static const char *const names[] = { "tx", "pass", "drop" };
	size_t k;

	printf("Pin path:           %s\n", js(doc, "pin_path"));
	printf("Rings:              %lld in a slab of %lld slots (%.1f MiB); backend rings "
	       "%lld slots at most\n", ji(doc, "rings"), ji(doc, "ring_slab_slots"),
	       ji(doc, "ring_slab_slots") * 4.0 / (1 << 20), ji(doc, "maglev_size"));
	printf("FIB generation:     %lld\n", ji(doc, "fib_gen"));
	printf("Listeners:          %lld\n", ji(doc, "listeners"));
	printf("Services:           %lld (of %lld)\n", ji(doc, "services"), ji(doc, "max_services"));
	printf("Backends:           %lld (%lld up, %lld down; of %lld)\n", ji(be, "active"),
	       ji(be, "up"), ji(be, "down"), ji(doc, "max_backends"));
	printf("Clusters:           %lld (%lld up, %lld down)\n", ji(cl, "active"),
	       ji(cl, "up"), ji(cl, "down"));
	printf("Interfaces:         %lld\n", ji(doc, "ifaces"));
	{
		json_t *it, *a;
		struct table t;
		size_t i, j;

		tbl_init(&t, "  NAME", "IFINDEX", "ATTACH", "KERNEL", "PROG", "SNAT ADDRESSES", NULL);
		json_array_foreach(json_object_get(doc, "interfaces"), i, it) {
			char addrs[512] = "";
			size_t off = 0;
			const char *fam[] = { "snat_v4", "snat_v6" };
			int f;

			for (f = 0; f < 2; f++)
				json_array_foreach(json_object_get(it, fam[f]), j, a)
					if (off < sizeof(addrs))
						off += snprintf(addrs + off, sizeof(addrs) - off, "%s%s",
								off ? "," : "", json_string_value(a));
			tbl_cell(&t, "  %s", js(it, "name")[0] ? js(it, "name") : "?");
			tbl_cell(&t, "%lld", ji(it, "ifindex"));
			tbl_cell(&t, "%s", js(it, "attach"));
			tbl_cell(&t, "%s", js(it, "kernel"));
			tbl_cell(&t, "%lld", ji(it, "prog_id"));
			tbl_cell(&t, "%s", addrs[0] ? addrs : "-");
		}
		tbl_print(&t);
		tbl_free(&t);
	}
	{
		json_t *sn = json_object_get(doc, "snat"), *al = json_object_get(sn, "allocations");
		json_t *r;
		size_t i;

		printf("SNAT ports:         ");
		json_array_foreach(json_object_get(sn, "port_ranges"), i, r)
			printf("%s%s", i ? ", " : "", json_string_value(r));
		printf(" (a closed flow's port rests %lld s)\n", ji(sn, "time_wait_s"));
		printf("SNAT allocations:   %lld fresh, %lld reclaimed, %lld reused in TIME_WAIT, "
		       "%lld exhausted (%lld candidates skipped)\n", ji(al, "fresh"),
		       ji(al, "reclaimed"), ji(al, "reused_in_time_wait"), ji(al, "exhausted"),
		       ji(al, "skipped"));
	}
	printf("Conntrack entries:  %lld / %lld (reverse NAT %lld)\n",
	       ji(doc, "conntrack_entries"), ji(doc, "conntrack_max"),
	       ji(doc, "reverse_nat_entries"));
	printf("Verdicts:\n");
	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++) {
		json_t *c = json_object_get(v, names[k]);

		printf("  %-5s %llu packets, %llu bytes\n", names[k],
		       (unsigned long long)ji(c, "packets"), (unsigned long long)ji(c, "bytes"));
	}
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                            */
/* ------------------------------------------------------------------ */

struct command {
	const char *name;
	const char *args;  /* usage of the positional arguments */
	const char *help;
	int nargs;         /* positional arguments it takes */
	bool gettable;     /* also reachable as "get NAME" */
	bool needs_maps;   /* opens the pinned maps */
	int (*collect)(struct ctl *ctl, int argc, char **argv, json_t **out);
	void (*render)(const json_t *doc);
};

static const struct command commands[] = {
	{ "status", "", "data plane summary: ring sizes, object counts, verdict totals",
	  0, true, true, cmd_status, render_status },
	{ "listeners", "", "VIP:port listeners with their service, allowlist flag and traffic",
	  0, true, true, cmd_listeners, render_listeners },
	{ "backends", "", "active backends: service, cluster, address, weight, health, traffic",
	  0, true, true, cmd_backends, render_backends },
	{ "clusters", "", "active clusters: name, health, traffic",
	  0, true, true, cmd_clusters, render_clusters },
	{ "rings", "SERVICE_ID", "Maglev ring shares of a service: per cluster, per backend",
	  1, true, true, cmd_rings, render_rings },
	{ "conntrack", "", "tracked flows, most recent first (-n LIMIT, default 100)",
	  0, true, true, cmd_conntrack, render_conntrack },
	{ "counters", "", "packets and bytes per verdict reason (drop/pass/tx)",
	  0, true, true, cmd_counters, render_counters },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static const struct command *command_find(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (!strcmp(commands[i].name, name))
			return &commands[i];
	return NULL;
}


/* ------------------------------------------------------------------ */
/* Kinds served by the agent (admin socket)                            */
/* ------------------------------------------------------------------ */

struct agent_kind {
	const char *name;
	const char *aliases[3];
	const char *help;
	void (*render)(const json_t *items);
};

static void render_gateways(const json_t *items)
{
	struct table t;
	const json_t *it;
	size_t i;

	tbl_init(&t, "NAME", "STATUS", "REPLICAS", "AGE", NULL);
	json_array_foreach(items, i, it) {
		tbl_cell(&t, "%s", js(it, "name"));
		tbl_cell(&t, "%s", js(it, "status"));
		/* live/desired (spec.common.instance.replicas): live nodes from
		 * their Leases, or this node alone without them */
		tbl_cell(&t, "%s", *js(it, "replicas") ? js(it, "replicas") : "-");
		tbl_cell(&t, "%s", js(it, "age"));
	}
	tbl_print(&t);
	tbl_free(&t);
}

static void render_ingresses(const json_t *items)
{
	struct table t;
	const json_t *it;
	size_t i;

	tbl_init(&t, "NAMESPACE", "NAME", "CLASS", "CANARY", "ADDRESS", "STATUS", NULL);
	json_array_foreach(items, i, it) {
		json_t *lb = json_object_get(it, "loadBalancer");
		json_t *first = json_array_get(json_object_get(lb, "ingress"), 0);

		tbl_cell(&t, "%s", js(it, "namespace"));
		tbl_cell(&t, "%s", js(it, "name"));
		tbl_cell(&t, "%s", *js(it, "class") ? js(it, "class") : "<none>");
		tbl_cell(&t, "%s", jb(it, "canary") ? "yes" : "no");
		tbl_cell(&t, "%s", first ? js(first, "ip") : "");
		if (!jb(it, "accepted"))
			tbl_cell(&t, "Rejected: %s", js(it, "reason"));
		else if (*js(json_object_get(it, "tls"), "reason"))
			/* Its HTTP routes serve; some TLS host does not. */
			tbl_cell(&t, "Accepted, TLS: %s", js(json_object_get(it, "tls"), "reason"));
		else
			tbl_cell(&t, "Accepted");
	}
	tbl_print(&t);
	tbl_free(&t);
}

static void render_certificates(const json_t *items)
{
	struct table t;
	const json_t *it;
	size_t i;

	tbl_init(&t, "HOST", "INGRESS", "SECRET", "ISSUER", "NOT AFTER", "STATUS", NULL);
	json_array_foreach(items, i, it) {
		tbl_cell(&t, "%s", js(it, "host"));
		tbl_cell(&t, "%s", *js(it, "ingress") ? js(it, "ingress") : "-");
		tbl_cell(&t, "%s", *js(it, "secret") ? js(it, "secret") : "-");
		tbl_cell(&t, "%s", *js(it, "issuer") ? js(it, "issuer") : "-");
		tbl_cell(&t, "%s", *js(it, "notAfter") ? js(it, "notAfter") : "-");
		if (*js(it, "reason"))
			tbl_cell(&t, "%s: %s", js(it, "state"), js(it, "reason"));
		else
			tbl_cell(&t, "%s", js(it, "state"));
	}
	tbl_print(&t);
	tbl_free(&t);
}

static void render_agent_clusters(const json_t *items)
{
	struct table t;
	const json_t *it;
	size_t i;

	tbl_init(&t, "ID", "STATE", "SERVICES", "READY", "HEALTHY", "REASON", NULL);
	json_array_foreach(items, i, it) {
		tbl_cell(&t, "%s", js(it, "id"));
		tbl_cell(&t, "%s", js(it, "state"));
		tbl_cell(&t, "%lld", ji(it, "services"));
		tbl_cell(&t, "%lld", ji(it, "readyEndpoints"));
		tbl_cell(&t, "%lld/%lld", ji(it, "healthyEndpoints"), ji(it, "routedEndpoints"));
		tbl_cell(&t, "%s", js(it, "reason"));
	}
	tbl_print(&t);
	tbl_free(&t);
}

/* "c1 50% (2 ready), c2 50%" with the failover tiers in brackets. */
static void target_cells(struct table *t, const json_t *target)
{
	char clusters[1024] = "", why[1024] = "";
	const json_t *c;
	size_t i, n = 0, w = 0;

	json_array_foreach(json_object_get(target, "clusters"), i, c) {
		long long tier = ji(c, "tier");

		n += snprintf(clusters + n, n < sizeof(clusters) ? sizeof(clusters) - n : 0,
			      "%s%s %.1f%%%s", i ? ", " : "", js(c, "cluster"), jf(c, "effective"),
			      tier ? (tier == 1 ? " [failover 1]" : " [failover 2]") : "");
		w += snprintf(why + w, w < sizeof(why) ? sizeof(why) - w : 0, "%s%s: %s",
			      i ? "; " : "", js(c, "cluster"), js(c, "why"));
	}
	tbl_cell(t, "%s", n ? clusters : "(none: 503)");
	tbl_cell(t, "%s", why);
}

static void render_routes(const json_t *items)
{
	struct table t;
	const json_t *it, *c;
	size_t i, j;

	tbl_init(&t, "HOST", "PATH", "MATCH", "CLUSTERS", "WHY", NULL);
	json_array_foreach(items, i, it) {
		tbl_cell(&t, "%s", js(it, "host"));
		tbl_cell(&t, "%s", js(it, "path"));
		tbl_cell(&t, "%s%s", js(it, "pathType"), jb(it, "default") ? " (default)" : "");
		target_cells(&t, json_object_get(it, "target"));
		json_array_foreach(json_object_get(it, "canaries"), j, c) {
			char match[512];
			size_t n = 0;

			n += snprintf(match + n, sizeof(match) - n, "canary");
			if (*js(c, "header"))
				n += snprintf(match + n, n < sizeof(match) ? sizeof(match) - n : 0,
					      " header %s%s%s", js(c, "header"),
					      *js(c, "headerValue") ? "=" : "",
					      *js(c, "headerValue") ? js(c, "headerValue")
								    : (*js(c, "headerPattern") ? "~" : ""));
			if (*js(c, "headerPattern"))
				n += snprintf(match + n, n < sizeof(match) ? sizeof(match) - n : 0,
					      "%s", js(c, "headerPattern"));
			if (*js(c, "cookie"))
				n += snprintf(match + n, n < sizeof(match) ? sizeof(match) - n : 0,
					      " cookie %s", js(c, "cookie"));
			if (json_object_get(c, "weight"))
				snprintf(match + n, n < sizeof(match) ? sizeof(match) - n : 0,
					 " weight %lld/%lld", ji(c, "weight"), ji(c, "weightTotal"));
			tbl_cell(&t, "%s", "");
			tbl_cell(&t, "%s", "");
			tbl_cell(&t, "%s", match);
			target_cells(&t, json_object_get(c, "target"));
		}
	}
	tbl_print(&t);
	tbl_free(&t);
}

/* The gateway's own failures (no descriptor, no port): never a backend's. */
static void local_errors_line(const char *label, const json_t *le)
{
	if (!le)
		return;
	printf("%-18s %lld", label, ji(le, "total"));
	if (ji(le, "total"))
		printf(" (EMFILE %lld, ENFILE %lld, ENOBUFS %lld, ENOMEM %lld, EADDRNOTAVAIL %lld; "
		       "last: %s)", ji(le, "EMFILE"), ji(le, "ENFILE"), ji(le, "ENOBUFS"),
		       ji(le, "ENOMEM"), ji(le, "EADDRNOTAVAIL"), js(le, "last"));
	printf("\n");
}

static void render_proxy(const json_t *items)
{
	const json_t *it = json_array_get(items, 0);
	const json_t *r = json_object_get(it, "responses");

	if (!it)
		return;
	printf("Mode:              %s\n", *js(it, "mode") ? js(it, "mode") : "copy");
	printf("Workers:           %lld\n", ji(it, "workers"));
	printf("Connections:       %lld open, %lld accepted, %lld refused\n",
	       ji(it, "connections"), ji(it, "accepted"), ji(it, "refused"));
	printf("Requests:          %lld\n", ji(it, "requests"));
	printf("Responses:         1xx %lld  2xx %lld  3xx %lld  4xx %lld  5xx %lld\n",
	       ji(r, "1xx"), ji(r, "2xx"), ji(r, "3xx"), ji(r, "4xx"), ji(r, "5xx"));
	printf("Upstreams:         %lld open, %lld idle in pools, %lld connects, %lld reuses\n",
	       ji(it, "upstreams"), ji(it, "idleUpstreams"), ji(it, "upstreamConnects"),
	       ji(it, "upstreamReuses"));
	printf("Failures:          %lld connect failures, %lld retries, %lld timeouts, "
	       "%lld endpoints marked down\n", ji(it, "connectFailures"), ji(it, "retries"),
	       ji(it, "timeouts"), ji(it, "passiveDown"));
	printf("Not the backend's: %lld client body timeouts (408), %lld not resent "
	       "(not idempotent)\n", ji(it, "clientTimeouts"), ji(it, "notRetried"));
	printf("Refused:           %lld from one address over %lld, %lld at the file "
	       "descriptor budget (%lld of %lld reserved)\n", ji(it, "refusedPerClient"),
	       ji(it, "maxConnsPerClient"), ji(it, "refusedFds"), ji(it, "fdsReserved"),
	       ji(it, "fdBudget"));
	if (json_object_get(it, "tls")) {
		const json_t *t = json_object_get(it, "tls");

		printf("TLS:               %lld handshakes (%lld TLS 1.3, %lld TLS 1.2, %lld resumed, "
		       "%lld kTLS), %lld failed%s%s\n", ji(t, "handshakes"), ji(t, "tls13"),
		       ji(t, "tls12"), ji(t, "resumed"), ji(t, "ktls"), ji(t, "handshakeErrors"),
		       *js(t, "lastError") ? "; last: " : "", js(t, "lastError"));
		if (*js(t, "kernel"))
			printf("Kernel TLS:        %s\n", js(t, "kernel"));
	}
	printf("Empty reads:       %lld (reads that found nothing; %.2f per request)\n",
	       ji(it, "emptyReads"),
	       ji(it, "requests") ? (double)ji(it, "emptyReads") / ji(it, "requests") : 0.0);
	local_errors_line("Local errors:", json_object_get(it, "localErrors"));
	local_errors_line("Probe local errs:",
			  json_object_get(json_object_get(it, "health"), "localErrors"));
}

static const struct agent_kind agent_kinds[] = {
	{ "mseingressconfig", { "mseingressconfigs", "mic", NULL },
	  "gateways: NAME STATUS REPLICAS AGE (status.remoteClusters with -o json)",
	  render_gateways },
	{ "ingress", { "ingresses", "ing", NULL },
	  "Ingresses: address, accepted or why not", render_ingresses },
	{ "clusters", { "cluster", NULL, NULL },
	  "attached clusters: state, services, ready and healthy endpoints", render_agent_clusters },
	{ "routes", { "route", NULL, NULL },
	  "routes: host, path, match, clusters with effective weights and why", render_routes },
	{ "proxy", { "http", NULL, NULL },
	  "the HTTP proxy: data path mode, connections, requests, upstreams", render_proxy },
	{ "certificates", { "certificate", "certs", "tls" },
	  "TLS: host, Ingress, Secret, issuer, expiry, state or why not", render_certificates },
};

#define N_AGENT_KINDS (sizeof(agent_kinds) / sizeof(agent_kinds[0]))

static const struct agent_kind *agent_kind_find(const char *name)
{
	size_t i, j;

	for (i = 0; i < N_AGENT_KINDS; i++) {
		if (!strcmp(agent_kinds[i].name, name))
			return &agent_kinds[i];
		for (j = 0; j < 3 && agent_kinds[i].aliases[j]; j++)
			if (!strcmp(agent_kinds[i].aliases[j], name))
				return &agent_kinds[i];
	}
	return NULL;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int run_agent_get(struct ctl *ctl, const struct agent_kind *kind, int argc, char **argv)
{
	char path[108];
	json_t *req, *ans, *items;
	int err;

	if (argc > 1)
		return usage_error("get %s takes at most one NAME", kind->name);
	if (ctl->admin_path) {
		snprintf(path, sizeof(path), "%s", ctl->admin_path);
	} else if (fg_admin_socket_path(ctl->pin_path, path, sizeof(path))) {
		fprintf(stderr, CTL_NAME ": pin path %s is too long\n", ctl->pin_path);
		return EXIT_FAIL;
	}
	req = json_pack("{s:s}", "get", kind->name);
	if (argc == 1)
		json_object_set_new(req, "name", json_string(argv[0]));
	ans = fg_admin_call(path, req, 5000, &err);
	json_decref(req);
	if (!ans) {
		fprintf(stderr, CTL_NAME ": cannot ask the agent on %s: %s\n"
			"is fleetgate-agent running (with --pin-path %s)?\n",
			path, strerror(-err), ctl->pin_path);
		return EXIT_FAIL;
	}
	if (!jb(ans, "ok")) {
		fprintf(stderr, CTL_NAME ": %s%s%s: %s\n", kind->name, argc ? " " : "",
			argc ? argv[0] : "", js(ans, "error"));
		json_decref(ans);
		return EXIT_FAIL;
	}
	items = json_object_get(ans, "items");
	if (ctl->json) {
		json_t *doc;

		if (!strcmp(kind->name, "mseingressconfig") && argc == 1) {
			doc = json_incref(json_object_get(json_array_get(items, 0), "object"));
		} else if (!strcmp(kind->name, "ingress") && argc == 1) {
			/* The object's shape, so .status.loadBalancer reads as
			 * with kubectl. */
			json_t *it = json_array_get(items, 0);
			json_t *lb = json_object_get(it, "loadBalancer");

			doc = json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:o}}", "apiVersion",
					"networking.k8s.io/v1", "kind", "Ingress", "metadata", "name",
					js(it, "name"), "namespace", js(it, "namespace"), "status",
					"loadBalancer", lb ? json_incref(lb) : json_object());
			if (!jb(it, "accepted"))
				json_object_set_new(json_object_get(doc, "status"), "reason",
						    json_string(js(it, "reason")));
		}
		else if (!strcmp(kind->name, "mseingressconfig")) {
			const json_t *it;
			size_t i;

			doc = json_pack("{s:s, s:s, s:[]}", "apiVersion", "v1", "kind", "List",
					"items");
			json_array_foreach(items, i, it)
				json_array_append(json_object_get(doc, "items"),
						  json_object_get(it, "object"));
		} else {
			doc = json_pack("{s:s, s:O}", "kind", kind->name, "items", items);
		}
		json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
		putchar('\n');
		json_decref(doc);
	} else {
		kind->render(items);
	}
	json_decref(ans);
	return fflush(stdout) ? EXIT_FAIL : EXIT_OK;
}

static void usage(FILE *f)
{
	size_t i;

	fprintf(f,
		"Usage: " CTL_NAME " [OPTIONS] COMMAND [ARGS]\n"
		"       " CTL_NAME " [OPTIONS] get KIND [ARGS]\n"
		"\n"
		"Shows a running fleetgate gateway: the data plane from the maps the agent\n"
		"pinned under the pin path, and the control plane's view (gateways, Ingresses,\n"
		"clusters, routes) from the agent's admin socket.\n"
		"\n"
		"Commands:\n");
	for (i = 0; i < N_COMMANDS; i++) {
		char head[48];

		snprintf(head, sizeof(head), "%s %s", commands[i].name, commands[i].args);
		fprintf(f, "  %-22s %s\n", head, commands[i].help);
	}
	fprintf(f, "\nKinds the running agent answers (admin socket):\n");
	for (i = 0; i < N_AGENT_KINDS; i++) {
		char head[48];

		snprintf(head, sizeof(head), "get %s [NAME]", agent_kinds[i].name);
		fprintf(f, "  %-22s %s\n", head, agent_kinds[i].help);
	}
	fprintf(f,
		"  %-22s the same as COMMAND, for the data plane commands above\n"
		"  %-22s this text\n"
		"\n"
		"Options:\n"
		"  -p, --pin-path PATH    where the agent pinned its maps (default %s)\n"
		"  -s, --admin-socket P   the agent's socket (default /run/fleetgate/\n"
		"                         <last part of the pin path>.sock)\n"
		"  -o, --output FORMAT    table (default) or json\n"
		"  -n, --limit N          conntrack: rows to show, 0 for all (default %d)\n"
		"  -v, --verbose          print libbpf's messages\n"
		"  -h, --help             this text\n"
		"\n"
		"Exit status: 0 success, 1 error (e.g. no agent running), 2 usage error.\n",
		"get KIND [ARGS]", "help", FG_DEFAULT_PIN_PATH, CT_DEFAULT_LIMIT);
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, CTL_NAME ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n\n");
	usage(stderr);
	return EXIT_USAGE;
}

static int ctl_open(struct ctl *ctl)
{
	struct stat st;
	int err;

	if (stat(ctl->pin_path, &st)) {
		err = -errno;
		fprintf(stderr, CTL_NAME ": cannot open pin path %s: %s\n"
			"is fleetgate-agent running (with --pin-path %s)?\n",
			ctl->pin_path, strerror(-err), ctl->pin_path);
		return err;
	}
	err = fg_dp_open_pinned(&ctl->dp, ctl->pin_path);
	if (err) {
		fprintf(stderr, CTL_NAME ": cannot open the maps pinned under %s: %s\n"
			"is fleetgate-agent running (with --pin-path %s)?\n",
			ctl->pin_path, strerror(-err), ctl->pin_path);
		return err;
	}
	ctl->maps = fg_dp_maps(ctl->dp);
	return ctl_load_tables(ctl);
}

static void ctl_close(struct ctl *ctl)
{
	__u32 i;

	for (i = 0; ctl->members_of && i < ctl->max_backends; i++)
		free(ctl->members_of[i].sids);
	free(ctl->members_of);
	fg_dp_close(ctl->dp, false);
	free(ctl->services);
	free(ctl->clusters);
	free(ctl->backends);
}

static int output(const struct ctl *ctl, const struct command *cmd, json_t *doc)
{
	if (!ctl->json) {
		cmd->render(doc);
		return fflush(stdout) ? -errno : 0;
	}
	if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)))
		return -EIO;
	putchar('\n');
	return fflush(stdout) ? -errno : 0;
}

static int run(struct ctl *ctl, const struct command *cmd, int argc, char **argv)
{
	json_t *doc = NULL;
	int err;

	if (argc != cmd->nargs)
		return usage_error("%s takes %s", cmd->name,
				   cmd->nargs ? cmd->args : "no arguments");
	if (ctl->limit_set && cmd->collect != cmd_conntrack)
		return usage_error("-n/--limit only applies to conntrack");
	if (cmd->needs_maps) {
		err = ctl_open(ctl);
		if (err)
			return EXIT_FAIL;
	}
	err = cmd->collect(ctl, argc, argv, &doc);
	if (!err)
		err = output(ctl, cmd, doc);
	json_decref(doc);
	if (err && !ctl->reported)
		fprintf(stderr, CTL_NAME ": %s: %s\n", cmd->name, strerror(-err));
	return err ? EXIT_FAIL : EXIT_OK;
}

static int dispatch(struct ctl *ctl, int argc, char **argv)
{
	const struct command *cmd;
	const char *name;

	if (argc < 1)
		return usage_error("no command given");
	name = argv[0];
	if (!strcmp(name, "help")) {
		usage(stdout);
		return EXIT_OK;
	}
	if (!strcmp(name, "get")) {
		const struct agent_kind *kind;

		if (argc < 2)
			return usage_error("get needs a KIND");
		kind = agent_kind_find(argv[1]);
		if (kind)
			return run_agent_get(ctl, kind, argc - 2, argv + 2);
		cmd = command_find(argv[1]);
		if (!cmd || !cmd->gettable)
			return usage_error("unknown kind '%s'", argv[1]);
		return run(ctl, cmd, argc - 2, argv + 2);
	}
	cmd = command_find(name);
	if (!cmd)
		return usage_error("unknown command '%s'", name);
	return run(ctl, cmd, argc - 1, argv + 1);
}

static int parse_limit(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < 0)
		return -EINVAL;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pin-path", required_argument, NULL, 'p' },
		{ "admin-socket", required_argument, NULL, 's' },
		{ "output", required_argument, NULL, 'o' },
		{ "limit", required_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct ctl ctl = {
		.pin_path = FG_DEFAULT_PIN_PATH,
		.limit = CT_DEFAULT_LIMIT,
	};
	bool verbose = false;
	int opt, ret;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":p:s:o:n:vh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'p':
			ctl.pin_path = optarg;
			break;
		case 's':
			ctl.admin_path = optarg;
			break;
		case 'o':
			if (!strcmp(optarg, "json"))
				ctl.json = true;
			else if (!strcmp(optarg, "table"))
				ctl.json = false;
			else
				return usage_error("unknown output format '%s' (table, json)",
						   optarg);
			break;
		case 'n':
			if (parse_limit(optarg, &ctl.limit))
				return usage_error("invalid limit '%s'", optarg);
			ctl.limit_set = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case ':':
			return usage_error("option '%s' needs an argument", argv[optind - 1]);
		default:
			if (optopt)
				return usage_error("unknown option '-%c'", optopt);
			return usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	fg_log_set_level(verbose ? FG_LOG_DEBUG : FG_LOG_WARN);
	fg_log_setup_libbpf();

	ret = dispatch(&ctl, argc - optind, argv + optind);
	ctl_close(&ctl);
	return ret;
}

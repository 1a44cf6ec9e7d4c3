// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fleetgatectl against a real data plane: load the XDP object with its maps
 * pinned in a directory of our own, write one L4 service (2 clusters, 3 up
 * backends and a down one), a few counters and a conntrack entry straight
 * into the maps, then run build/fleetgatectl on the pins and check its
 * tables, its JSON and its exit codes.
 */
#include <arpa/inet.h>
#include <libgen.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <jansson.h>

#include "dataplane.h"
#include "fleetgate.h"
#include "test_progs.h"

#define SVC_ID 1
#define STATS_IDX 7

struct ctl_env {
	struct fg_dataplane *dp;
	char pin[PATH_MAX];
	char bin[PATH_MAX];
};

static struct ctl_env E;

/* build/fleetgatectl, next to build/test_progs. */
static int find_ctl(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -errno;
	self[n] = '\0';
	snprintf(buf, len, "%s/fleetgatectl", dirname(self));
	return access(buf, X_OK) ? -errno : 0;
}

/* Runs `fleetgatectl ARGS REDIR` through the shell and returns its exit
 * status (or -1); what it printed on the captured stream(s) goes in *out. */
__attribute__((format(printf, 3, 4)))
static int run_ctl(char **out, const char *redir, const char *fmt, ...)
{
	char *args = NULL, *cmd = NULL, *buf = NULL;
	size_t len = 0, cap = 0, n;
	char chunk[4096];
	va_list ap;
	FILE *p;
	int st;

	*out = NULL;
	va_start(ap, fmt);
	n = vasprintf(&args, fmt, ap);
	va_end(ap);
	if ((int)n < 0)
		return -1;
	if (asprintf(&cmd, "'%s' %s %s", E.bin, args, redir) < 0) {
		free(args);
		return -1;
	}
	free(args);
	if (test__verbose())
		printf("+ %s\n", cmd);
	fflush(stdout);
	p = popen(cmd, "r");
	free(cmd);
	if (!p)
		return -1;
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0) {
		if (len + n + 1 > cap) {
			char *nb;

			cap = (len + n + 1) * 2;
			nb = realloc(buf, cap);
			if (!nb)
				break;
			buf = nb;
		}
		memcpy(buf + len, chunk, n);
		len += n;
	}
	if (buf)
		buf[len] = '\0';
	*out = buf ? buf : strdup("");
	st = pclose(p);
	if (test__verbose())
		printf("%s", *out);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* stdout only (stderr dropped), for the tables and the JSON. */
static int ctl_out(char **out, const char *args)
{
	return run_ctl(out, "2>/dev/null", "-p '%s' %s", E.pin, args);
}

static json_t *ctl_json(const char *args)
{
	json_error_t jerr;
	json_t *doc;
	char *out;
	int rc;

	rc = ctl_out(&out, args);
	if (!ASSERT_EQ(rc, 0, "json exit")) {
		free(out);
		return NULL;
	}
	doc = json_loads(out, 0, &jerr);
	if (!doc)
		printf("JSON of '%s' does not parse: %s (line %d)\n%s\n", args, jerr.text,
		       jerr.line, out);
	free(out);
	return doc;
}

static bool contains(const char *hay, const char *needle)
{
	bool ok = hay && strstr(hay, needle);

	if (!ok)
		printf("'%s' not found in output:\n%s\n", needle, hay ? hay : "(null)");
	return ok;
}

/* A per-CPU counter with all of it on CPU 0. */
static int set_counter(int fd, __u32 idx, __u64 packets, __u64 bytes)
{
	int ncpus = fg_dp_ncpus(E.dp);
	struct fg_counter *vals = calloc(ncpus, sizeof(*vals));
	int err;

	if (!vals)
		return -ENOMEM;
	vals[0].packets = packets;
	vals[0].bytes = bytes;
	err = bpf_map_update_elem(fd, &idx, vals, BPF_ANY) ? -errno : 0;
	free(vals);
	return err;
}

static __u64 mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

static int add_conntrack(void)
{
	const struct fg_maps *m = fg_dp_maps(E.dp);
	struct fg_flow f = {
		.sport = htons(40001),
		.dport = htons(80),
		.proto = FG_PROTO_TCP,
		.family = FG_AF_INET,
	};
	struct fg_ct ct = {
		.last_seen_ns = mono_ns() - 2000000000ULL,
		.backend_id = 10,
		.service_id = SVC_ID,
		.cluster_idx = 0,
		.state = FG_CT_ESTABLISHED,
		.snat_port = htons(40000),
	};

	inet_pton(AF_INET, "192.0.2.7", &f.src.v4);
	inet_pton(AF_INET, "10.0.0.100", &f.dst.v4);
	inet_pton(AF_INET, "10.9.0.1", &ct.snat_addr.v4);
	return bpf_map_update_elem(m->conntrack, &f, &ct, BPF_ANY) ? -errno : 0;
}

static struct fg_addr v4(const char *s)
{
	struct fg_addr a = {};

	inet_pton(AF_INET, s, &a.v4);
	return a;
}

/* VIP 10.0.0.100:80/tcp -> clusters east (weight 3) and west (weight 1);
 * east has two backends, west one up and one down. */
static int setup_service(void)
{
	static const struct fg_l4_cluster_spec clusters[] = {
		{ .cluster_idx = 0, .name = "east", .weight = 3 },
		{ .cluster_idx = 1, .name = "west", .weight = 1 },
	};
	struct fg_l4_backend_spec backends[] = {
		{ .backend_id = 10, .cluster_idx = 0, .family = FG_AF_INET,
		  .addr = v4("10.1.0.1"), .port = 8080, .weight = 1, .up = true },
		{ .backend_id = 11, .cluster_idx = 0, .family = FG_AF_INET,
		  .addr = v4("10.1.0.2"), .port = 8080, .weight = 1, .up = true },
		{ .backend_id = 12, .cluster_idx = 1, .family = FG_AF_INET,
		  .addr = v4("10.2.0.1"), .port = 9090, .weight = 2, .up = true },
		{ .backend_id = 13, .cluster_idx = 1, .family = FG_AF_INET,
		  .addr = v4("10.2.0.2"), .port = 9090, .weight = 1, .up = false },
	};
	struct fg_l4_service_spec spec = {
		.service_id = SVC_ID,
		.name = "web",
		.family = FG_AF_INET,
		.vip = v4("10.0.0.100"),
		.port = 80,
		.proto = FG_PROTO_TCP,
		.kind = FG_LISTENER_L4,
		.stats_idx = STATS_IDX,
		.clusters = clusters,
		.n_clusters = 2,
		.backends = backends,
		.n_backends = 4,
	};
	const struct fg_maps *m;
	int err;

	err = fg_dp_apply_service(E.dp, &spec);
	if (err)
		return err;
	m = fg_dp_maps(E.dp);
	err = set_counter(m->listener_stats, STATS_IDX, 1234, 567890);
	if (!err)
		err = set_counter(m->backend_stats, 10, 321, 4321);
	if (!err)
		err = set_counter(m->cluster_stats, 1, 55, 5500);
	if (!err)
		err = set_counter(m->verdicts, FG_R_FORWARD, 5, 500);
	if (!err)
		err = set_counter(m->verdicts, FG_R_NO_BACKEND, 2, 120);
	if (!err)
		err = set_counter(m->verdicts, FG_R_NO_LISTENER, 9, 900);
	if (!err)
		err = add_conntrack();
	return err;
}

static void subtest_listeners(void)
{
	json_t *doc, *it;
	char *out;

	ASSERT_EQ(ctl_out(&out, "listeners"), 0, "listeners exit");
	ASSERT_TRUE(contains(out, "VIP"), "header");
	ASSERT_TRUE(contains(out, "ALLOWLIST"), "header allowlist");
	ASSERT_TRUE(contains(out, "10.0.0.100"), "vip");
	ASSERT_TRUE(contains(out, "1/web"), "service");
	ASSERT_TRUE(contains(out, "1234"), "packets");
	ASSERT_TRUE(contains(out, "567890"), "bytes");
	free(out);

	doc = ctl_json("-o json listeners");
	if (!ASSERT_OK_PTR(doc, "json"))
		return;
	ASSERT_EQ(json_integer_value(json_object_get(doc, "count")), 1, "count");
	it = json_array_get(json_object_get(doc, "items"), 0);
	ASSERT_STREQ(json_string_value(json_object_get(it, "vip")), "10.0.0.100", "vip");
	ASSERT_EQ(json_integer_value(json_object_get(it, "port")), 80, "port");
	ASSERT_STREQ(json_string_value(json_object_get(it, "proto")), "tcp", "proto");
	ASSERT_STREQ(json_string_value(json_object_get(it, "kind")), "l4", "kind");
	ASSERT_STREQ(json_string_value(json_object_get(it, "service")), "web", "service");
	ASSERT_TRUE(json_is_false(json_object_get(it, "allowlist")), "allowlist");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(it, "stats"), "packets")),
		  1234, "packets");
	json_decref(doc);
}

static void subtest_backends(void)
{
	json_t *doc, *it;
	int up = 0, down = 0;
	char *out;
	size_t i;

	ASSERT_EQ(ctl_out(&out, "backends"), 0, "backends exit");
	ASSERT_TRUE(contains(out, "ADDRESS:PORT"), "header");
	ASSERT_TRUE(contains(out, "10.1.0.1:8080"), "backend 10");
	ASSERT_TRUE(contains(out, "10.1.0.2:8080"), "backend 11");
	ASSERT_TRUE(contains(out, "10.2.0.1:9090"), "backend 12");
	ASSERT_TRUE(contains(out, "east"), "cluster east");
	ASSERT_TRUE(contains(out, "west"), "cluster west");
	ASSERT_TRUE(contains(out, "down"), "a down backend");
	free(out);

	doc = ctl_json("-o json backends");
	if (!ASSERT_OK_PTR(doc, "json"))
		return;
	ASSERT_EQ(json_integer_value(json_object_get(doc, "count")), 4, "count");
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		const char *st = json_string_value(json_object_get(it, "state"));

		up += st && !strcmp(st, "up");
		down += st && !strcmp(st, "down");
		if (json_integer_value(json_object_get(it, "id")) == 10)
			ASSERT_EQ(json_integer_value(json_object_get(
					  json_object_get(it, "stats"), "packets")), 321, "be10 pkts");
		if (json_integer_value(json_object_get(it, "id")) == 12) {
			ASSERT_STREQ(json_string_value(json_object_get(it, "cluster")), "west",
				     "be12 cluster");
			ASSERT_EQ(json_integer_value(json_object_get(it, "weight")), 2,
				  "be12 weight");
		}
	}
	ASSERT_EQ(up, 3, "up");
	ASSERT_EQ(down, 1, "down");
	json_decref(doc);
}

static void subtest_clusters(void)
{
	json_t *doc, *it;
	char *out;

	ASSERT_EQ(ctl_out(&out, "clusters"), 0, "clusters exit");
	ASSERT_TRUE(contains(out, "IDX"), "header");
	ASSERT_TRUE(contains(out, "east"), "east");
	ASSERT_TRUE(contains(out, "west"), "west");
	ASSERT_TRUE(contains(out, "5500"), "west bytes");
	free(out);

	doc = ctl_json("-o json clusters");
	if (!ASSERT_OK_PTR(doc, "json"))
		return;
	ASSERT_EQ(json_integer_value(json_object_get(doc, "count")), 2, "count");
	it = json_array_get(json_object_get(doc, "items"), 1);
	ASSERT_STREQ(json_string_value(json_object_get(it, "name")), "west", "name");
	ASSERT_STREQ(json_string_value(json_object_get(it, "state")), "up", "state");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(it, "stats"), "packets")),
		  55, "packets");
	json_decref(doc);
}

static double share_of(json_t *arr, const char *key, long long id)
{
	json_t *it;
	size_t i;

	json_array_foreach(arr, i, it)
		if (json_integer_value(json_object_get(it, key)) == id)
			return json_number_value(json_object_get(it, "share_pct"));
	return -1;
}

static void subtest_rings(void)
{
	json_t *doc, *cr, *br, *it;
	char *out;
	size_t i;

	ASSERT_EQ(ctl_out(&out, "rings 1"), 0, "rings exit");
	ASSERT_TRUE(contains(out, "SHARE"), "header");
	ASSERT_TRUE(contains(out, "east"), "east");
	ASSERT_TRUE(contains(out, "10.2.0.1:9090"), "backend 12");
	ASSERT_TRUE(contains(out, "%"), "percent");
	free(out);

	doc = ctl_json("-o json rings 1");
	if (!ASSERT_OK_PTR(doc, "json"))
		return;
	cr = json_object_get(json_object_get(doc, "cluster_ring"), "clusters");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(doc, "cluster_ring"),
						     "size")), fg_dp_cluster_ring_size(2), "ring size");
	/* Weights 3:1 -> 75% / 25%, within Maglev's rounding. */
	ASSERT_LT(abs((int)(share_of(cr, "idx", 0) * 100) - 7500), 100, "east share");
	ASSERT_LT(abs((int)(share_of(cr, "idx", 1) * 100) - 2500), 100, "west share");

	br = json_object_get(doc, "backend_rings");
	ASSERT_EQ(json_array_size(br), 2, "backend rings");
	json_array_foreach(br, i, it) {
		json_t *bes = json_object_get(it, "backends");

		if (json_integer_value(json_object_get(it, "cluster_idx")) == 0) {
			ASSERT_LT(abs((int)(share_of(bes, "id", 10) * 100) - 5000), 100, "be10");
			ASSERT_LT(abs((int)(share_of(bes, "id", 11) * 100) - 5000), 100, "be11");
		} else {
			/* The down backend is listed but owns no slot. */
			ASSERT_EQ((int)(share_of(bes, "id", 12) * 100), 10000, "be12");
			ASSERT_EQ((int)(share_of(bes, "id", 13) * 100), 0, "be13");
		}
	}
	json_decref(doc);

	ASSERT_EQ(run_ctl(&out, "2>&1", "-p '%s' rings 999", E.pin), 1, "absent service");
	ASSERT_TRUE(contains(out, "does not exist"), "absent service message");
	free(out);
	ASSERT_EQ(run_ctl(&out, "2>&1", "-p '%s' rings", E.pin), 2, "missing id");
	free(out);
}

static void subtest_counters(void)
{
	json_t *doc, *it;
	char *out;
	size_t i;
	int seen = 0;

	ASSERT_EQ(ctl_out(&out, "counters"), 0, "counters exit");
	ASSERT_TRUE(contains(out, "REASON"), "header");
	ASSERT_TRUE(contains(out, "no_backend"), "no_backend");
	ASSERT_TRUE(contains(out, "drop"), "drop marker");
	ASSERT_TRUE(contains(out, "tx"), "tx marker");
	free(out);

	doc = ctl_json("-o json counters");
	if (!ASSERT_OK_PTR(doc, "json"))
		return;
	ASSERT_EQ(json_integer_value(json_object_get(doc, "count")), FG_R_MAX, "count");
	json_array_foreach(json_object_get(doc, "items"), i, it) {
		const char *r = json_string_value(json_object_get(it, "reason"));
		const char *v = json_string_value(json_object_get(it, "verdict"));
		long long p = json_integer_value(json_object_get(it, "packets"));

		if (!r || !v)
			continue;
		if (!strcmp(r, "forward")) {
			seen++;
			ASSERT_STREQ(v, "tx", "forward verdict");
			ASSERT_EQ(p, 5, "forward packets");
		} else if (!strcmp(r, "no_backend")) {
			seen++;
			ASSERT_STREQ(v, "drop", "no_backend verdict");
			ASSERT_EQ(p, 2, "no_backend packets");
		} else if (!strcmp(r, "no_listener")) {
			seen++;
			ASSERT_STREQ(v, "pass", "no_listener verdict");
			ASSERT_EQ(p, 9, "no_listener packets");
		}
	}
	ASSERT_EQ(seen, 3, "reasons seen");
	json_decref(doc);
}

static void subtest_status(void)
{
	json_t *doc, *be, *v;
	char *out;

	ASSERT_EQ(ctl_out(&out, "status"), 0, "status exit");
	ASSERT_TRUE(contains(out, E.pin), "pin path");
	ASSERT_TRUE(contains(out, "65537"), "maglev size");
	ASSERT_TRUE(contains(out, "3 up, 1 down"), "backend health");
	free(out);

	doc = ctl_json("-o json status");
	if (!ASSERT_OK_PTR(doc, "json"))
		return;
	be = json_object_get(doc, "backends");
	v = json_object_get(doc, "verdicts");
	ASSERT_EQ(json_integer_value(json_object_get(doc, "maglev_size")),
		  FG_DEFAULT_MAGLEV_SIZE, "maglev_size");
	ASSERT_EQ(json_integer_value(json_object_get(doc, "listeners")), 1, "listeners");
	ASSERT_EQ(json_integer_value(json_object_get(doc, "services")), 1, "services");
	ASSERT_EQ(json_integer_value(json_object_get(be, "active")), 4, "backends");
	ASSERT_EQ(json_integer_value(json_object_get(be, "down")), 1, "backends down");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(doc, "clusters"),
						     "active")), 2, "clusters");
	ASSERT_EQ(json_integer_value(json_object_get(doc, "conntrack_entries")), 1, "ct");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(v, "tx"), "packets")), 5,
		  "tx");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(v, "drop"), "packets")), 2,
		  "drop");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(v, "pass"), "packets")), 9,
		  "pass");
	json_decref(doc);
}

static void subtest_conntrack(void)
{
	json_t *doc, *it;
	double age;
	char *out;

	ASSERT_EQ(ctl_out(&out, "conntrack"), 0, "conntrack exit");
	ASSERT_TRUE(contains(out, "CLIENT"), "header");
	ASSERT_TRUE(contains(out, "192.0.2.7:40001"), "client");
	ASSERT_TRUE(contains(out, "10.0.0.100:80"), "vip");
	ASSERT_TRUE(contains(out, "10.1.0.1:8080"), "backend");
	ASSERT_TRUE(contains(out, "10.9.0.1:40000"), "snat");
	ASSERT_TRUE(contains(out, "established"), "state");
	free(out);

	doc = ctl_json("-o json conntrack -n 5");
	if (!ASSERT_OK_PTR(doc, "json"))
		return;
	ASSERT_EQ(json_integer_value(json_object_get(doc, "total")), 1, "total");
	it = json_array_get(json_object_get(doc, "items"), 0);
	age = json_number_value(json_object_get(it, "age_s"));
	ASSERT_GE((int)age, 2, "age >= 2s");
	ASSERT_LT((int)age, 60, "age sane");
	json_decref(doc);

	doc = ctl_json("-o json conntrack -n 0");
	if (ASSERT_OK_PTR(doc, "json all"))
		ASSERT_EQ(json_integer_value(json_object_get(doc, "count")), 1, "count all");
	json_decref(doc);
}

static void subtest_get(void)
{
	char *out;

	ASSERT_EQ(ctl_out(&out, "get listeners"), 0, "get listeners");
	ASSERT_TRUE(contains(out, "10.0.0.100"), "get vip");
	free(out);
	ASSERT_EQ(ctl_out(&out, "get nosuchkind"), 2, "get unknown kind");
	free(out);
}

static void subtest_errors(void)
{
	char *out;

	/* Unknown command: usage on stderr, nothing on stdout, exit 2. */
	ASSERT_EQ(run_ctl(&out, "2>/dev/null", "-p '%s' frobnicate", E.pin), 2,
		  "unknown command");
	ASSERT_STREQ(out, "", "unknown command stdout");
	free(out);
	ASSERT_EQ(run_ctl(&out, "2>&1 >/dev/null", "-p '%s' frobnicate", E.pin), 2,
		  "unknown command stderr");
	ASSERT_TRUE(contains(out, "Usage:"), "usage on stderr");
	free(out);

	ASSERT_EQ(run_ctl(&out, "2>&1", "-p /sys/fs/bpf/%s-nonexistent status",
			  test__prefix()), 1, "missing pins");
	ASSERT_TRUE(contains(out, "-nonexistent"), "names the path");
	ASSERT_TRUE(contains(out, "fleetgate-agent running"), "hints at the agent");
	free(out);

	ASSERT_EQ(run_ctl(&out, "2>&1", "-o yaml status"), 2, "bad output format");
	free(out);
	ASSERT_EQ(run_ctl(&out, "2>&1", "--bogus status"), 2, "bad option");
	free(out);
	ASSERT_EQ(run_ctl(&out, "2>&1", "%s", ""), 2, "no command");
	free(out);
	ASSERT_EQ(run_ctl(&out, "2>&1", "-p '%s' -n 3 listeners", E.pin), 2,
		  "-n outside conntrack");
	free(out);

	ASSERT_EQ(run_ctl(&out, "2>/dev/null", "--help"), 0, "--help");
	ASSERT_TRUE(contains(out, "conntrack"), "help lists commands");
	ASSERT_TRUE(contains(out, "--pin-path"), "help lists options");
	free(out);
	ASSERT_EQ(run_ctl(&out, "2>/dev/null", "help"), 0, "help");
	ASSERT_TRUE(contains(out, "rings SERVICE_ID"), "help command");
	free(out);
}

FG_TEST(ctl)
{
	struct fg_dp_opts opts = {};
	int err;

	memset(&E, 0, sizeof(E));
	err = find_ctl(E.bin, sizeof(E.bin));
	if (err) {
		test__skip("%s: %s (run make first)", E.bin, strerror(-err));
		return;
	}
	snprintf(E.pin, sizeof(E.pin), "/sys/fs/bpf/%s-ctl", test__prefix());
	opts.pin_path = E.pin;
	err = fg_dp_load(&E.dp, &opts);
	if (err) {
		test__skip("cannot load the data plane: %s", strerror(-err));
		return;
	}
	if (!ASSERT_OK(setup_service(), "setup service"))
		goto out;

	if (test__start_subtest("listeners"))
		subtest_listeners();
	if (test__start_subtest("backends"))
		subtest_backends();
	if (test__start_subtest("clusters"))
		subtest_clusters();
	if (test__start_subtest("rings"))
		subtest_rings();
	if (test__start_subtest("counters"))
		subtest_counters();
	if (test__start_subtest("status"))
		subtest_status();
	if (test__start_subtest("conntrack"))
		subtest_conntrack();
	if (test__start_subtest("get"))
		subtest_get();
	if (test__start_subtest("errors"))
		subtest_errors();
out:
	fg_dp_close(E.dp, true);
}

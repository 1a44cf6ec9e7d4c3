// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The watched configuration directory: initial scan, files written in
 * place and renamed into place, a broken file keeping its old objects until
 * it is fixed, deletion, cluster directories appearing and disappearing,
 * fleet/ appearing after start. Every change is waited for the way the
 * agent does it (poll on the inotify fd, then process); the time from the
 * write to the processed change is printed (-v) and only checked against a
 * generous bound.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compact.h"
#include "configdir.h"
#include "test_progs.h"

#define LATENCY_BOUND_MS 1000.0 /* generous: the target is well under 100 ms */
#define WAIT_MS 3000.0

static double max_latency_ms;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static char *svc_yaml(const char *name, const char *ns)
{
	char *s;

	if (asprintf(&s, "apiVersion: v1\nkind: Service\nmetadata:\n  name: %s\n"
		     "  namespace: %s\nspec:\n  ports:\n  - port: 80\n    targetPort: 8080\n",
		     name, ns) < 0)
		return NULL;
	return s;
}

static bool write_in_place(const char *path, const char *content)
{
	size_t len = content ? strlen(content) : 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, content, len) == (ssize_t)len;
	return !close(fd) && ok;
}

/* Writes DIR/.NAME.tmp then renames it over DIR/NAME, as editors do. */
static bool write_by_rename(const char *dir, const char *name, const char *content)
{
	char tmp[PATH_MAX], dst[PATH_MAX];

	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
	snprintf(dst, sizeof(dst), "%s/%s", dir, name);
	return write_in_place(tmp, content) && !rename(tmp, dst);
}

static bool put_svc(const char *dir, const char *file, const char *name)
{
	char path[PATH_MAX];
	char *y = svc_yaml(name, "web-demo");
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	ok = y && write_in_place(path, y);
	free(y);
	return ok;
}

struct expect {
	const char *origin;   /* NULL: fleet */
	const char *name;     /* must be present (NULL: no check) */
	const char *gone;     /* must be absent (same origin) */
	int objects;          /* total, -1: no check */
	int errors;           /* files failing, -1: no check */
};

struct count_ctx {
	const char *origin;
	const char *name;
	int n;
	const char *last_path;
	bool unsorted;
};

static int count_cb(const char *origin, const char *path, json_t *obj, void *ctx)
{
	struct count_ctx *c = ctx;
	/* Cluster objects may be packed (compact.h). */
	const char *name = fg_obj_name(obj);

	if (c->last_path && strcmp(c->last_path, path) > 0)
		c->unsorted = true;
	c->last_path = path;
	if (!c->name || !name || strcmp(name, c->name))
		return 0;
	if ((!origin && !c->origin) || (origin && c->origin && !strcmp(origin, c->origin)))
		c->n++;
	return 0;
}

static int count_named(struct fg_configdir *cd, const char *origin, const char *name)
{
	struct count_ctx c = { .origin = origin, .name = name };

	fg_configdir_foreach(cd, count_cb, &c);
	return c.n;
}

static bool holds(struct fg_configdir *cd, const struct expect *e)
{
	if (e->name && count_named(cd, e->origin, e->name) != 1)
		return false;
	if (e->gone && count_named(cd, e->origin, e->gone) != 0)
		return false;
	if (e->objects >= 0 && fg_configdir_count(cd) != (size_t)e->objects)
		return false;
	if (e->errors >= 0 && fg_configdir_foreach_error(cd, NULL, NULL) != e->errors)
		return false;
	return true;
}

/* Polls and processes until e holds; t0 is when the change was written.
 * *changed: whether any process call in between reported a change. */
static bool wait_for(struct fg_configdir *cd, double t0, const struct expect *e,
		     const char *what, bool *changed)
{
	bool any_change = false, processed = false, ch;
	double left, lat;

	for (;;) {
		struct pollfd pfd = { .fd = fg_configdir_fd(cd), .events = POLLIN };

		left = t0 + WAIT_MS - now_ms();
		if (left <= 0)
			break;
		if (poll(&pfd, 1, left > 1000 ? 1000 : (int)left + 1) > 0) {
			if (!ASSERT_OK(fg_configdir_process(cd, &ch), "process"))
				return false;
			any_change |= ch;
			processed = true;
		}
		/* Only once the write's events were seen: an expectation
		 * that already held before must not pass by itself. */
		if (processed && holds(cd, e)) {
			lat = now_ms() - t0;
			if (lat > max_latency_ms)
				max_latency_ms = lat;
			printf("%s: applied %.3f ms after the write\n", what, lat);
			if (changed)
				*changed = any_change;
			return ASSERT_LT(lat, LATENCY_BOUND_MS, what);
		}
	}
	printf("%s: not applied after %.0f ms (%zu objects, %d errors)\n", what, WAIT_MS,
	       fg_configdir_count(cd), fg_configdir_foreach_error(cd, NULL, NULL));
	return ASSERT_TRUE(false, what);
}

struct env {
	char root[PATH_MAX];
	char fleet[PATH_MAX + 16];
	char clusters[PATH_MAX + 16];
	struct fg_configdir *cd;
};

/* A fresh tree under the scratch directory; mkdirs says whether fleet/ and
 * clusters/ exist from the start. */
static bool env_init(struct env *e, const char *name, bool mkdirs)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->root, sizeof(e->root), "%s/%s", test__tmpdir(), name);
	snprintf(e->fleet, sizeof(e->fleet), "%s/fleet", e->root);
	snprintf(e->clusters, sizeof(e->clusters), "%s/clusters", e->root);
	if (!ASSERT_OK(mkdir(e->root, 0755), "mkdir root"))
		return false;
	if (mkdirs && (!ASSERT_OK(mkdir(e->fleet, 0755), "mkdir fleet") ||
		       !ASSERT_OK(mkdir(e->clusters, 0755), "mkdir clusters")))
		return false;
	return true;
}

static bool env_open(struct env *e, bool *changed)
{
	if (!ASSERT_OK(fg_configdir_open(&e->cd, e->root), "open"))
		return false;
	return ASSERT_OK(fg_configdir_rescan(e->cd, changed), "rescan");
}

static void env_fini(struct env *e)
{
	fg_configdir_close(e->cd);
	e->cd = NULL;
	fg_sh("rm -rf '%s'", e->root);
}

static void cluster_dir(const struct env *e, const char *id, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%s", e->clusters, id);
}

static void subtest_initial_scan(void)
{
	struct count_ctx c = { 0 };
	char c1[PATH_MAX + 64], c2[PATH_MAX + 64], path[PATH_MAX + 128];
	struct env e;
	bool changed = false;

	if (!env_init(&e, "scan", true))
		return;
	cluster_dir(&e, "c7fb82a1b2c3d4e5f60718293a4b5c6d7", c1, sizeof(c1));
	cluster_dir(&e, "c15d48ca9d1fd43f9bbb89c56a474843c", c2, sizeof(c2));
	ASSERT_OK(mkdir(c1, 0755), "mkdir c1");
	ASSERT_OK(mkdir(c2, 0755), "mkdir c2");
	ASSERT_TRUE(put_svc(e.fleet, "svc.yaml", "fleet-svc"), "fleet/svc.yaml");
	ASSERT_TRUE(put_svc(e.fleet, "two.yml", "fleet-two"), "fleet/two.yml");
	ASSERT_TRUE(put_svc(e.fleet, ".hidden.yaml", "hidden"), "hidden");
	ASSERT_TRUE(put_svc(e.fleet, "backup.yaml~", "backup"), "backup");
	ASSERT_TRUE(put_svc(e.fleet, "x.yaml.swp", "swap"), "swap");
	ASSERT_TRUE(put_svc(e.fleet, "x.yaml.tmp", "tmp"), "tmp");
	ASSERT_TRUE(put_svc(e.fleet, "notes.txt", "txt"), "txt");
	snprintf(path, sizeof(path), "%s/svc.json", e.fleet);
	ASSERT_TRUE(write_in_place(path, "{\"apiVersion\":\"v1\",\"kind\":\"Service\","
					 "\"metadata\":{\"name\":\"json-svc\"}}"), "json");
	ASSERT_TRUE(put_svc(c1, "svc.yaml", "service1"), "c1 svc");
	ASSERT_TRUE(put_svc(c2, "svc.yaml", "service1"), "c2 svc");
	ASSERT_TRUE(put_svc(e.root, "stray.yaml", "stray"), "not in fleet/");
	snprintf(path, sizeof(path), "%s/nested", e.fleet);
	ASSERT_OK(mkdir(path, 0755), "mkdir nested");
	ASSERT_TRUE(put_svc(path, "deep.yaml", "deep"), "not recursive");

	if (!env_open(&e, &changed))
		goto out;
	ASSERT_TRUE(changed, "changed");
	ASSERT_EQ(fg_configdir_count(e.cd), 5, "objects");
	ASSERT_EQ(count_named(e.cd, NULL, "fleet-svc"), 1, "fleet-svc");
	ASSERT_EQ(count_named(e.cd, NULL, "fleet-two"), 1, ".yml");
	ASSERT_EQ(count_named(e.cd, NULL, "json-svc"), 1, ".json");
	ASSERT_EQ(count_named(e.cd, "c7fb82a1b2c3d4e5f60718293a4b5c6d7", "service1"), 1,
		  "cluster 1");
	ASSERT_EQ(count_named(e.cd, "c15d48ca9d1fd43f9bbb89c56a474843c", "service1"), 1,
		  "cluster 2");
	ASSERT_EQ(count_named(e.cd, NULL, "service1"), 0, "cluster objects are not fleet's");
	fg_configdir_foreach(e.cd, count_cb, &c);
	ASSERT_FALSE(c.unsorted, "sorted by path");
	ASSERT_EQ(fg_configdir_foreach_error(e.cd, NULL, NULL), 0, "errors");

	/* nothing happened since */
	ASSERT_OK(fg_configdir_process(e.cd, &changed), "process");
	ASSERT_FALSE(changed, "no change");
	ASSERT_OK(fg_configdir_rescan(e.cd, &changed), "rescan again");
	ASSERT_FALSE(changed, "rescan: no change");
	ASSERT_EQ(fg_configdir_count(e.cd), 5, "objects after rescan");
out:
	env_fini(&e);
}

struct err_seen {
	int n;
	int line;
	char path[PATH_MAX + 64];
};

static void err_cb(const char *p, const struct fg_manifest_error *err, void *ctx)
{
	struct err_seen *s = ctx;

	s->n++;
	s->line = err->line;
	snprintf(s->path, sizeof(s->path), "%s", p);
	printf("error reported: %s:%d: %s\n", p, err->line, err->reason);
}

static void subtest_files(void)
{
	struct expect x = { .objects = -1, .errors = -1 };
	char path[PATH_MAX + 64], *y;
	struct env e;
	bool changed;
	double t0;

	if (!env_init(&e, "files", true))
		return;
	ASSERT_TRUE(put_svc(e.fleet, "a.yaml", "a"), "a.yaml");
	if (!env_open(&e, NULL))
		goto out;

	/* a new file written in place */
	t0 = now_ms();
	ASSERT_TRUE(put_svc(e.fleet, "b.yaml", "b"), "write b.yaml");
	x = (struct expect){ .name = "b", .objects = 2, .errors = 0 };
	if (!wait_for(e.cd, t0, &x, "add in place", &changed))
		goto out;
	ASSERT_TRUE(changed, "changed");

	/* the same content again: no change */
	t0 = now_ms();
	ASSERT_TRUE(put_svc(e.fleet, "b.yaml", "b"), "rewrite b.yaml");
	x = (struct expect){ .name = "b", .objects = 2, .errors = 0 };
	wait_for(e.cd, t0, &x, "same content", &changed);
	ASSERT_FALSE(changed, "same content is no change");

	/* replaced by rename: a -> a2, the temp file is never loaded */
	t0 = now_ms();
	y = svc_yaml("a2", "web-demo");
	ASSERT_TRUE(y && write_by_rename(e.fleet, "a.yaml", y), "rename a.yaml");
	free(y);
	x = (struct expect){ .name = "a2", .gone = "a", .objects = 2, .errors = 0 };
	if (!wait_for(e.cd, t0, &x, "replace by rename", &changed))
		goto out;
	ASSERT_TRUE(changed, "changed");

	/* broken: reported, the old objects stay */
	snprintf(path, sizeof(path), "%s/a.yaml", e.fleet);
	t0 = now_ms();
	ASSERT_TRUE(write_in_place(path, "apiVersion: v1\nkind: Service\nmetadata:\n"
				   "  name: broken\n   namespace: x\n"), "break a.yaml");
	x = (struct expect){ .name = "a2", .gone = "broken", .objects = 2, .errors = 1 };
	if (!wait_for(e.cd, t0, &x, "broken file", &changed))
		goto out;
	ASSERT_FALSE(changed, "broken file changes nothing");
	{
		struct err_seen seen = { 0 };

		ASSERT_EQ(fg_configdir_foreach_error(e.cd, err_cb, &seen), 1, "one error");
		ASSERT_EQ(seen.n, 1, "callback calls");
		ASSERT_EQ(seen.line, 5, "error line");
		ASSERT_STREQ(seen.path, path, "error path");
	}
	/* still broken, by rename this time: still the old objects */
	t0 = now_ms();
	ASSERT_TRUE(write_by_rename(e.fleet, "a.yaml", "kind: [\n"), "rename broken");
	x = (struct expect){ .name = "a2", .objects = 2, .errors = 1 };
	wait_for(e.cd, t0, &x, "broken again", NULL);
	/* fixed */
	t0 = now_ms();
	ASSERT_TRUE(put_svc(e.fleet, "a.yaml", "a3"), "fix a.yaml");
	x = (struct expect){ .name = "a3", .gone = "a2", .objects = 2, .errors = 0 };
	if (!wait_for(e.cd, t0, &x, "recovered", &changed))
		goto out;
	ASSERT_TRUE(changed, "changed");

	/* a broken new file has no objects to keep */
	t0 = now_ms();
	ASSERT_TRUE(write_by_rename(e.fleet, "c.yaml", "apiVersion: v1\n"), "c.yaml");
	x = (struct expect){ .objects = 2, .errors = 1 };
	wait_for(e.cd, t0, &x, "broken new file", NULL);

	/* deleted: its objects go, and so does its error */
	t0 = now_ms();
	ASSERT_OK(unlink(path), "unlink a.yaml");
	snprintf(path, sizeof(path), "%s/c.yaml", e.fleet);
	ASSERT_OK(unlink(path), "unlink c.yaml");
	x = (struct expect){ .name = "b", .gone = "a3", .objects = 1, .errors = 0 };
	if (!wait_for(e.cd, t0, &x, "delete", &changed))
		goto out;
	ASSERT_TRUE(changed, "changed");

	/* moved away (renamed to an ignored name) */
	t0 = now_ms();
	snprintf(path, sizeof(path), "%s/b.yaml", e.fleet);
	{
		char bak[PATH_MAX + 64];

		snprintf(bak, sizeof(bak), "%s/b.yaml~", e.fleet);
		ASSERT_OK(rename(path, bak), "rename away");
	}
	x = (struct expect){ .gone = "b", .objects = 0, .errors = 0 };
	wait_for(e.cd, t0, &x, "moved away", NULL);

	/* several writes before one process: each file loaded once, all seen */
	t0 = now_ms();
	ASSERT_TRUE(put_svc(e.fleet, "m1.yaml", "m1"), "m1");
	ASSERT_TRUE(put_svc(e.fleet, "m2.yaml", "m2"), "m2");
	ASSERT_TRUE(put_svc(e.fleet, "m1.yaml", "m1b"), "m1 again");
	x = (struct expect){ .name = "m1b", .gone = "m1", .objects = 2, .errors = 0 };
	wait_for(e.cd, t0, &x, "batch", NULL);
	ASSERT_EQ(count_named(e.cd, NULL, "m2"), 1, "m2");
out:
	env_fini(&e);
}

static void subtest_clusters(void)
{
	struct expect x;
	char c3[PATH_MAX + 64], c4[PATH_MAX + 64], staging[PATH_MAX + 64];
	char path[PATH_MAX + 128];
	struct env e;
	double t0;

	if (!env_init(&e, "clusters", true))
		return;
	ASSERT_TRUE(put_svc(e.fleet, "svc.yaml", "fleet-svc"), "fleet svc");
	if (!env_open(&e, NULL))
		goto out;
	ASSERT_EQ(fg_configdir_count(e.cd), 1, "objects");

	/* a cluster directory created at run time, then a file in it */
	cluster_dir(&e, "c3", c3, sizeof(c3));
	t0 = now_ms();
	ASSERT_OK(mkdir(c3, 0755), "mkdir c3");
	ASSERT_TRUE(put_svc(c3, "svc.yaml", "service1"), "c3 svc");
	x = (struct expect){ .origin = "c3", .name = "service1", .objects = 2, .errors = -1 };
	if (!wait_for(e.cd, t0, &x, "cluster dir created", NULL))
		goto out;
	snprintf(path, sizeof(path), "%s/eps.yaml", c3);
	t0 = now_ms();
	ASSERT_TRUE(write_in_place(path,
				   "apiVersion: v1\nkind: Endpoints\nmetadata:\n  name: service1-eps\n"
				   "subsets:\n- addresses:\n  - ip: 10.1.0.11\n"
				   "  notReadyAddresses:\n  - ip: 10.1.0.13\n"
				   "  ports:\n  - port: 8080\n"), "c3 eps");
	x = (struct expect){ .origin = "c3", .name = "service1-eps", .objects = 3, .errors = -1 };
	wait_for(e.cd, t0, &x, "file in new cluster dir", NULL);

	/* a cluster directory moved in, already populated */
	snprintf(staging, sizeof(staging), "%s/.staging", e.root);
	cluster_dir(&e, "c4", c4, sizeof(c4));
	ASSERT_OK(mkdir(staging, 0755), "mkdir staging");
	ASSERT_TRUE(put_svc(staging, "svc.yaml", "service1"), "staging svc");
	t0 = now_ms();
	ASSERT_OK(rename(staging, c4), "move in c4");
	x = (struct expect){ .origin = "c4", .name = "service1", .objects = 4, .errors = -1 };
	wait_for(e.cd, t0, &x, "cluster dir moved in", NULL);

	/* a cluster directory removed */
	t0 = now_ms();
	fg_sh("rm -rf '%s'", c3);
	x = (struct expect){ .origin = "c3", .gone = "service1", .objects = 2, .errors = -1 };
	wait_for(e.cd, t0, &x, "cluster dir removed", NULL);
	ASSERT_EQ(count_named(e.cd, "c4", "service1"), 1, "c4 stays");

	/* a cluster directory moved out (renamed into a hidden name) */
	t0 = now_ms();
	ASSERT_OK(rename(c4, staging), "move out c4");
	x = (struct expect){ .origin = "c4", .gone = "service1", .objects = 1, .errors = -1 };
	wait_for(e.cd, t0, &x, "cluster dir moved out", NULL);
	/* its files are not followed to where it went */
	t0 = now_ms();
	ASSERT_TRUE(put_svc(staging, "more.yaml", "elsewhere"), "write in moved dir");
	ASSERT_OK(fg_configdir_process(e.cd, NULL), "process");
	ASSERT_EQ(fg_configdir_count(e.cd), 1, "moved dir not watched");

	/* back, then the whole clusters/ directory goes */
	t0 = now_ms();
	ASSERT_OK(rename(staging, c4), "move in c4 again");
	x = (struct expect){ .origin = "c4", .name = "elsewhere", .objects = 3, .errors = -1 };
	wait_for(e.cd, t0, &x, "cluster dir back", NULL);
	t0 = now_ms();
	fg_sh("rm -rf '%s'", e.clusters);
	x = (struct expect){ .name = "fleet-svc", .objects = 1, .errors = -1 };
	wait_for(e.cd, t0, &x, "clusters/ removed", NULL);

	/* and comes back */
	t0 = now_ms();
	ASSERT_OK(mkdir(e.clusters, 0755), "mkdir clusters");
	ASSERT_OK(mkdir(c3, 0755), "mkdir c3");
	ASSERT_TRUE(put_svc(c3, "svc.yaml", "service1"), "c3 svc");
	x = (struct expect){ .origin = "c3", .name = "service1", .objects = 2, .errors = -1 };
	wait_for(e.cd, t0, &x, "clusters/ recreated", NULL);
out:
	env_fini(&e);
}

static void subtest_dirs_later(void)
{
	char c1[PATH_MAX + 64];
	struct expect x;
	struct env e;
	bool changed = true;
	double t0;

	if (!env_init(&e, "later", false))
		return;
	if (!env_open(&e, &changed))
		goto out;
	ASSERT_FALSE(changed, "empty: no change");
	ASSERT_EQ(fg_configdir_count(e.cd), 0, "no objects");

	t0 = now_ms();
	ASSERT_OK(mkdir(e.fleet, 0755), "mkdir fleet");
	ASSERT_TRUE(put_svc(e.fleet, "svc.yaml", "fleet-svc"), "fleet svc");
	x = (struct expect){ .name = "fleet-svc", .objects = 1, .errors = 0 };
	wait_for(e.cd, t0, &x, "fleet/ created", NULL);

	t0 = now_ms();
	ASSERT_OK(mkdir(e.clusters, 0755), "mkdir clusters");
	cluster_dir(&e, "c1", c1, sizeof(c1));
	ASSERT_OK(mkdir(c1, 0755), "mkdir c1");
	ASSERT_TRUE(put_svc(c1, "svc.yaml", "service1"), "c1 svc");
	x = (struct expect){ .origin = "c1", .name = "service1", .objects = 2, .errors = 0 };
	wait_for(e.cd, t0, &x, "clusters/ and a cluster created", NULL);

	t0 = now_ms();
	fg_sh("rm -rf '%s'", e.fleet);
	x = (struct expect){ .gone = "fleet-svc", .objects = 1, .errors = 0 };
	wait_for(e.cd, t0, &x, "fleet/ removed", NULL);
out:
	env_fini(&e);
}

/* A Kubernetes ConfigMap volume: NAME -> ..data/NAME, ..data -> ..TS, and
 * an update swaps ..data by rename. Plain symlinks work too. */
static void subtest_symlinks(void)
{
	char d1[PATH_MAX + 64], d2[PATH_MAX + 64], lnk[PATH_MAX + 64], tmp[PATH_MAX + 64];
	struct expect x;
	struct env e;
	double t0;

	if (!env_init(&e, "symlinks", true))
		return;
	snprintf(d1, sizeof(d1), "%s/..2026_01_01_00_00_00.1", e.fleet);
	snprintf(d2, sizeof(d2), "%s/..2026_01_01_00_01_00.2", e.fleet);
	snprintf(lnk, sizeof(lnk), "%s/..data", e.fleet);
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", e.fleet);
	ASSERT_OK(mkdir(d1, 0755), "mkdir d1");
	ASSERT_TRUE(put_svc(d1, "svc.yaml", "v1"), "v1");
	ASSERT_OK(symlink("..2026_01_01_00_00_00.1", lnk), "..data");
	snprintf(tmp, sizeof(tmp), "%s/svc.yaml", e.fleet);
	ASSERT_OK(symlink("..data/svc.yaml", tmp), "svc.yaml link");
	if (!env_open(&e, NULL))
		goto out;
	ASSERT_EQ(count_named(e.cd, NULL, "v1"), 1, "through the links");
	ASSERT_EQ(fg_configdir_count(e.cd), 1, "objects");

	ASSERT_OK(mkdir(d2, 0755), "mkdir d2");
	ASSERT_TRUE(put_svc(d2, "svc.yaml", "v2"), "v2");
	snprintf(tmp, sizeof(tmp), "%s/..data_tmp", e.fleet);
	t0 = now_ms();
	ASSERT_OK(symlink("..2026_01_01_00_01_00.2", tmp), "..data_tmp");
	ASSERT_OK(rename(tmp, lnk), "swap ..data");
	x = (struct expect){ .name = "v2", .gone = "v1", .objects = 1, .errors = 0 };
	wait_for(e.cd, t0, &x, "configmap update", NULL);

	snprintf(tmp, sizeof(tmp), "%s/other.yaml", e.fleet);
	t0 = now_ms();
	ASSERT_OK(symlink("..2026_01_01_00_00_00.1/svc.yaml", tmp), "plain symlink");
	x = (struct expect){ .name = "v1", .objects = 2, .errors = 0 };
	wait_for(e.cd, t0, &x, "symlink created", NULL);
out:
	env_fini(&e);
}

/* A scan of 600 files takes the parallel parse (configdir.c: 256 files
 * or more): every object is there, in path order, a broken file among
 * them is reported with its line, and files parsed that way take later
 * changes as the others (the broken one fixed, one rewritten). */
static void subtest_many_files(void)
{
	char c1[PATH_MAX + 64], name[32], path[PATH_MAX + 128];
	struct err_seen seen = {};
	struct count_ctx c = { 0 };
	struct expect ex = { .origin = NULL, .objects = 600, .errors = 0 };
	struct env e;
	bool changed = false;
	int i, bad = 0;

	if (!env_init(&e, "many", true))
		return;
	cluster_dir(&e, "c7fb82a1b2c3d4e5f60718293a4b5c6d7", c1, sizeof(c1));
	ASSERT_OK(mkdir(c1, 0755), "mkdir c1");
	for (i = 0; i < 600 && !bad; i++) {
		snprintf(name, sizeof(name), "s%03d.yaml", i);
		snprintf(path, sizeof(path), "%s/%s", i % 2 ? c1 : e.fleet, name);
		if (i == 417)
			bad = !write_in_place(path, "apiVersion: v1\nkind: Service\nmetadata: [\n");
		else
			bad = !put_svc(i % 2 ? c1 : e.fleet, name, name);
	}
	if (!ASSERT_FALSE(bad, "600 files written") || !env_open(&e, &changed))
		goto out;
	ASSERT_TRUE(changed, "changed");
	ASSERT_EQ(fg_configdir_count(e.cd), 599, "every object but the broken file's");
	ASSERT_EQ(count_named(e.cd, NULL, "s000.yaml"), 1, "a fleet file's");
	ASSERT_EQ(count_named(e.cd, "c7fb82a1b2c3d4e5f60718293a4b5c6d7", "s599.yaml"), 1,
		  "a cluster file's");
	fg_configdir_foreach(e.cd, count_cb, &c);
	ASSERT_FALSE(c.unsorted, "sorted by path");
	ASSERT_EQ(fg_configdir_foreach_error(e.cd, err_cb, &seen), 1, "one file fails");
	ASSERT_TRUE(strstr(seen.path, "s417.yaml") != NULL, "the broken one");
	ASSERT_GT(seen.line, 0, "with its line");

	/* Fixed, and another rewritten: taken one by one as usual. */
	ASSERT_TRUE(put_svc(c1, "s417.yaml", "s417-fixed"), "fix s417");
	ASSERT_TRUE(write_by_rename(e.fleet, "s000.yaml", "apiVersion: v1\nkind: Service\n"
				    "metadata:\n  name: renamed\n  namespace: web-demo\n"), "s000");
	ex.name = "renamed";
	ex.gone = "s000.yaml";
	ASSERT_TRUE(wait_for(e.cd, now_ms(), &ex, "fixed and rewritten", &changed), "taken");
	ASSERT_EQ(count_named(e.cd, "c7fb82a1b2c3d4e5f60718293a4b5c6d7", "s417-fixed"), 1,
		  "the fixed file's object");
	ASSERT_EQ(fg_configdir_foreach_error(e.cd, NULL, NULL), 0, "no error left");
out:
	env_fini(&e);
}

FG_TEST(configdir)
{
	struct fg_configdir *cd;

	max_latency_ms = 0;
	if (test__start_subtest("open_errors")) {
		ASSERT_EQ(fg_configdir_open(&cd, "/nonexistent/fleetgate"), -ENOENT, "missing");
		ASSERT_EQ(fg_configdir_open(&cd, "/dev/null"), -ENOTDIR, "not a dir");
	}
	if (test__start_subtest("initial_scan"))
		subtest_initial_scan();
	if (test__start_subtest("files"))
		subtest_files();
	if (test__start_subtest("clusters"))
		subtest_clusters();
	if (test__start_subtest("dirs_later"))
		subtest_dirs_later();
	if (test__start_subtest("symlinks"))
		subtest_symlinks();
	if (test__start_subtest("many_files"))
		subtest_many_files();
	printf("configdir: worst write-to-applied latency %.3f ms\n", max_latency_ms);
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The configuration directory (see configdir.h).
 *
 * Events only say which paths to look at: every touched file is queued,
 * and once the queue of inotify events is drained each queued path is
 * reloaded once from what is on disk now (state, not events, decides:
 * present and parsable -> new objects; absent -> gone; unparsable -> old
 * objects kept). Directory events add or drop watches right away, and a
 * directory that appears is scanned after its watch is in place so that
 * nothing written in between is missed.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "compact.h"
#include "configdir.h"
#include "log.h"

#define DIR_MASK (IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR)
#define FILES_MASK (IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | \
		    IN_CREATE | IN_ONLYDIR)
/* Reads per fg_configdir_process(): a writer in a loop cannot keep it busy. */
#define MAX_READS 64
/* A queue this long (a start, a rescan) is parsed by threads before it is
 * applied: 110,001 files took 6 s of one core, most of it YAML. */
#define PARSE_AHEAD_MIN 256
#define PARSE_THREADS_MAX 8

enum wkind { W_ROOT, W_FLEET, W_CLUSTERS, W_CLUSTER };

struct watch {
	int wd;
	enum wkind kind;
	char *path;
	char *cluster; /* W_CLUSTER only */
};

struct cfile {
	char *path;
	char *origin;  /* NULL: fleet; else the cluster id */
	json_t *docs;  /* objects in force; NULL when it never parsed */
	bool failed;   /* last load failed: err says why */
	/* Allocated for a failed file only: 520 bytes in every one of
	 * 110,001 files were 57 MiB. NULL when failed and out of memory. */
	struct fg_manifest_error *err;
};

/* A file's content as parsed, ahead of applying it. */
struct parsed {
	int rc;
	json_t *docs;                  /* rc == 0 */
	struct fg_manifest_error *err; /* rc != 0; NULL if out of memory */
};

struct pending {
	char *path;
	char *origin;
};

struct fg_configdir {
	char *dir;
	int fd;
	struct watch *w;
	size_t nw, capw;
	struct cfile *f; /* sorted by path */
	size_t nf, capf;
	struct pending *p;
	size_t np, capp;
	bool need_rescan;
	bool changed;
	struct fg_intern *intern; /* shared short strings; NULL: none */
	fg_configdir_change_cb change_cb;
	void *change_ctx;
};

/* A file's objects went from old to new (either may be NULL). */
static void notify(struct fg_configdir *cd, const char *origin, const char *path,
		   json_t *old, json_t *new)
{
	if (cd->change_cb)
		cd->change_cb(origin, path, old, new, cd->change_ctx);
}

static bool grow(void **arr, size_t *cap, size_t n, size_t elem)
{
	size_t ncap;
	void *na;

	if (n < *cap)
		return true;
	ncap = *cap ? *cap * 2 : 16;
	na = reallocarray(*arr, ncap, elem);
	if (!na)
		return false;
	*arr = na;
	*cap = ncap;
	return true;
}

static bool has_suffix(const char *s, const char *suf)
{
	size_t n = strlen(s), m = strlen(suf);

	return n >= m && !strcmp(s + n - m, suf);
}

/* A manifest name: not hidden, not an editor's temporary file. */
static bool wanted_name(const char *name)
{
	if (name[0] == '.' || has_suffix(name, "~") || has_suffix(name, ".swp") ||
	    has_suffix(name, ".tmp"))
		return false;
	return has_suffix(name, ".yaml") || has_suffix(name, ".yml") ||
	       has_suffix(name, ".json");
}

static char *join(const char *dir, const char *name)
{
	char *s;

	return asprintf(&s, "%s/%s", dir, name) < 0 ? NULL : s;
}

/* path is dir itself or inside it */
static bool under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	return !strncmp(path, dir, n) && (path[n] == '/' || path[n] == '\0');
}

/* ---- files ---- */

static bool file_find(const struct fg_configdir *cd, const char *path, size_t *pos)
{
	size_t lo = 0, hi = cd->nf;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(cd->f[mid].path, path);

		if (!c) {
			*pos = mid;
			return true;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*pos = lo;
	return false;
}

static void file_remove(struct fg_configdir *cd, size_t i)
{
	struct cfile *f = &cd->f[i];

	if (json_array_size(f->docs)) {
		cd->changed = true;
		notify(cd, f->origin, f->path, f->docs, NULL);
	}
	pr_debug("config: %s: removed\n", f->path);
	json_decref(f->docs);
	free(f->err);
	free(f->path);
	free(f->origin);
	memmove(&cd->f[i], &cd->f[i + 1], (cd->nf - i - 1) * sizeof(*f));
	cd->nf--;
}

static void files_drop_under(struct fg_configdir *cd, const char *dir)
{
	size_t i = 0;

	while (i < cd->nf) {
		if (under(cd->f[i].path, dir))
			file_remove(cd, i);
		else
			i++;
	}
}

static struct cfile *file_insert(struct fg_configdir *cd, size_t pos,
				 const char *path, const char *origin)
{
	struct cfile *f;

	if (!grow((void **)&cd->f, &cd->capf, cd->nf, sizeof(*cd->f)))
		return NULL;
	f = &cd->f[pos];
	memmove(f + 1, f, (cd->nf - pos) * sizeof(*f));
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	f->origin = origin ? strdup(origin) : NULL;
	if (!f->path || (origin && !f->origin)) {
		free(f->path);
		free(f->origin);
		memmove(f, f + 1, (cd->nf - pos) * sizeof(*f));
		return NULL;
	}
	cd->nf++;
	return f;
}

/* A cluster's Services and EndpointSlices are most of what a fleet holds:
 * kept packed (compact.h) from the moment they are read. The fleet's own
 * objects (LoadBalancer Services among them) are read whole. */
static void pack_docs(json_t *docs)
{
	json_t *obj, *packed;
	size_t i;

	json_array_foreach(docs, i, obj) {
		packed = fg_obj_pack(obj);
		/* NULL (not packable, no memory): the whole object serves. */
		if (packed)
			json_array_set_new(docs, i, packed);
	}
}

/* Reads and parses a file; touches nothing of cd but the strings it
 * shares (locked), so workers can. origin: NULL for the fleet's files,
 * else the cluster's id. */
static void parse_one(struct fg_intern *in, const char *path, const char *origin,
		      struct parsed *p)
{
	struct fg_manifest_error err;

	p->docs = NULL;
	p->err = NULL;
	p->rc = fg_manifest_parse_file(path, &p->docs, &err);
	if (!p->rc) {
		if (origin)
			pack_docs(p->docs);
		if (in && fg_intern_tree(in, p->docs))
			pr_warn("config: %s: strings kept unshared: out of memory\n", path);
		return;
	}
	p->err = malloc(sizeof(*p->err));
	if (p->err)
		*p->err = err;
}

static const struct fg_manifest_error *error_of(const struct fg_manifest_error *err)
{
	static const struct fg_manifest_error oom = { .reason = "out of memory" };

	return err ? err : &oom;
}

/* A file's new state: its objects replace the ones in force, or its
 * failure is kept beside them; a file gone is removed. Takes p's docs
 * and err. */
static void file_apply(struct fg_configdir *cd, const char *path, const char *origin,
		       struct parsed *p)
{
	const struct fg_manifest_error *err = error_of(p->err);
	json_t *docs = p->docs;
	struct cfile *f;
	bool known;
	size_t pos;
	int rc = p->rc;

	known = file_find(cd, path, &pos);
	if (rc == -ENOENT || rc == -ENOTDIR || rc == -EISDIR || rc == -EINVAL) {
		/* Gone, or not a file (any more). */
		if (known)
			file_remove(cd, pos);
		free(p->err);
		return;
	}
	if (known) {
		f = &cd->f[pos];
	} else {
		f = file_insert(cd, pos, path, origin);
		if (!f) {
			json_decref(docs);
			free(p->err);
			pr_warn("config: %s: out of memory\n", path);
			return;
		}
	}
	if (rc) {
		if (err->line > 0)
			pr_warn("%s:%d: %s\n", path, err->line, err->reason);
		else
			pr_warn("%s: %s\n", path, err->reason);
		if (f->docs)
			pr_warn("%s: keeping the %zu object(s) of its last good version\n",
				path, json_array_size(f->docs));
		f->failed = true;
		free(f->err);
		f->err = p->err;
		return;
	}
	if (f->failed)
		pr_info("%s: parses again\n", path);
	f->failed = false;
	free(f->err);
	f->err = NULL;
	if (f->docs && json_equal(f->docs, docs)) {
		/* Rewritten as it was: the objects already handed out stay
		 * the ones in force, so that the next change of this file
		 * names (as old) the very objects its listener holds. */
		json_decref(docs);
		return;
	}
	if (f->docs || json_array_size(docs) > 0) {
		cd->changed = true;
		notify(cd, f->origin, f->path, f->docs, docs);
	}
	pr_debug("config: %s: %zu object(s)\n", path, json_array_size(docs));
	json_decref(f->docs);
	f->docs = docs;
}

static void file_reload(struct fg_configdir *cd, const char *path, const char *origin)
{
	struct parsed p;

	parse_one(cd->intern, path, origin, &p);
	file_apply(cd, path, origin, &p);
}

/* ---- the queue of paths to reload ---- */

static void queue_path(struct fg_configdir *cd, char *path, const char *origin)
{
	struct pending *p;

	if (!path)
		goto oom;
	if (!grow((void **)&cd->p, &cd->capp, cd->np, sizeof(*cd->p)))
		goto oom;
	p = &cd->p[cd->np];
	p->path = path;
	p->origin = origin ? strdup(origin) : NULL;
	if (origin && !p->origin)
		goto oom;
	cd->np++;
	return;
oom:
	free(path);
	/* Whatever was lost is picked up by a full rescan. */
	cd->need_rescan = true;
}

static int cmp_pending(const void *a, const void *b)
{
	return strcmp(((const struct pending *)a)->path,
		      ((const struct pending *)b)->path);
}

static void queue_clear(struct fg_configdir *cd)
{
	size_t i;

	for (i = 0; i < cd->np; i++) {
		free(cd->p[i].path);
		free(cd->p[i].origin);
	}
	cd->np = 0;
}

struct parse_job {
	struct fg_intern *in;
	const struct pending *p;
	struct parsed *out;
	size_t n;
	size_t next; /* atomic: the next path to take */
};

static void *parse_worker(void *arg)
{
	struct parse_job *j = arg;
	size_t i;

	while ((i = __atomic_fetch_add(&j->next, 1, __ATOMIC_RELAXED)) < j->n)
		parse_one(j->in, j->p[i].path, j->p[i].origin, &j->out[i]);
	return NULL;
}

/* Parses p[0..n) on every core: the caller's thread and up to
 * PARSE_THREADS_MAX - 1 more (as many as start). Only reading and
 * parsing run in parallel; the results are applied in order, as one
 * thread would. */
static struct parsed *parse_ahead(struct fg_intern *in, const struct pending *p, size_t n)
{
	pthread_t th[PARSE_THREADS_MAX - 1];
	struct parse_job j = { .in = in, .p = p, .n = n };
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	int nth = 0, want, i;

	j.out = calloc(n, sizeof(*j.out));
	if (!j.out)
		return NULL;
	want = cpus > PARSE_THREADS_MAX ? PARSE_THREADS_MAX : cpus > 1 ? (int)cpus : 1;
	/* Seeds jansson's hash once, before several threads build objects. */
	json_object_seed(0);
	for (i = 0; i + 1 < want; i++)
		if (!pthread_create(&th[nth], NULL, parse_worker, &j))
			nth++;
	parse_worker(&j);
	for (i = 0; i < nth; i++)
		pthread_join(th[i], NULL);
	return j.out;
}

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void queue_apply(struct fg_configdir *cd)
{
	struct parsed *ahead = NULL;
	double t0 = 0, t1 = 0;
	size_t i, n = 0;

	qsort(cd->p, cd->np, sizeof(*cd->p), cmp_pending);
	/* Each path once. */
	for (i = 0; i < cd->np; i++) {
		if (n && !strcmp(cd->p[i].path, cd->p[n - 1].path)) {
			free(cd->p[i].path);
			free(cd->p[i].origin);
			continue;
		}
		cd->p[n++] = cd->p[i];
	}
	cd->np = n;
	if (n >= PARSE_AHEAD_MIN) {
		t0 = mono_ms();
		ahead = parse_ahead(cd->intern, cd->p, n);
		t1 = mono_ms();
	}
	for (i = 0; i < n; i++) {
		if (ahead)
			file_apply(cd, cd->p[i].path, cd->p[i].origin, &ahead[i]);
		else
			file_reload(cd, cd->p[i].path, cd->p[i].origin);
	}
	if (ahead)
		pr_debug("config: %zu files parsed in %.0f ms, taken in %.0f ms\n", n, t1 - t0,
			 mono_ms() - t1);
	free(ahead);
	queue_clear(cd);
}

/* ---- watches ---- */

static struct watch *watch_by_wd(struct fg_configdir *cd, int wd)
{
	size_t i;

	for (i = 0; i < cd->nw; i++)
		if (cd->w[i].wd == wd)
			return &cd->w[i];
	return NULL;
}

static struct watch *watch_by_path(struct fg_configdir *cd, const char *path)
{
	size_t i;

	for (i = 0; i < cd->nw; i++)
		if (!strcmp(cd->w[i].path, path))
			return &cd->w[i];
	return NULL;
}

static void watch_free(struct fg_configdir *cd, size_t i, bool rm)
{
	if (rm)
		inotify_rm_watch(cd->fd, cd->w[i].wd);
	free(cd->w[i].path);
	free(cd->w[i].cluster);
	cd->w[i] = cd->w[--cd->nw];
}

/* Forgets dir (a watched directory that went away) and everything below. */
static void dir_drop(struct fg_configdir *cd, const char *dir, bool rm)
{
	char *copy = strdup(dir);
	size_t i = 0;

	if (!copy) {
		cd->need_rescan = true;
		return;
	}
	pr_debug("config: %s: gone\n", copy);
	files_drop_under(cd, copy);
	while (i < cd->nw) {
		if (under(cd->w[i].path, copy))
			watch_free(cd, i, rm || strcmp(cd->w[i].path, copy));
		else
			i++;
	}
	free(copy);
}

static bool is_dir(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

static int dir_add(struct fg_configdir *cd, enum wkind kind, const char *path,
		   const char *cluster);

/* Queues every manifest of dir and every file known under it. */
static void scan_files(struct fg_configdir *cd, const char *dir, const char *origin)
{
	struct dirent *de;
	size_t i;
	DIR *d;

	for (i = 0; i < cd->nf; i++)
		if (under(cd->f[i].path, dir))
			queue_path(cd, strdup(cd->f[i].path), origin);
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d)))
		if (wanted_name(de->d_name))
			queue_path(cd, join(dir, de->d_name), origin);
	closedir(d);
}

static void scan_subdirs(struct fg_configdir *cd, enum wkind kind, const char *dir)
{
	struct dirent *de;
	char *path;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		if (kind == W_ROOT && strcmp(de->d_name, "fleet") &&
		    strcmp(de->d_name, "clusters"))
			continue;
		path = join(dir, de->d_name);
		if (!path) {
			cd->need_rescan = true;
			continue;
		}
		if (is_dir(path)) {
			if (kind == W_CLUSTERS)
				dir_add(cd, W_CLUSTER, path, de->d_name);
			else
				dir_add(cd, !strcmp(de->d_name, "fleet") ? W_FLEET
									 : W_CLUSTERS,
					path, NULL);
		}
		free(path);
	}
	closedir(d);
}

/* Watches path (or refreshes its watch), then scans it. */
static int dir_add(struct fg_configdir *cd, enum wkind kind, const char *path,
		   const char *cluster)
{
	uint32_t mask = (kind == W_FLEET || kind == W_CLUSTER) ? FILES_MASK : DIR_MASK;
	struct watch *w;
	int wd, err;

	wd = inotify_add_watch(cd->fd, path, mask);
	if (wd < 0) {
		err = -errno;
		if (err == -ENOENT || err == -ENOTDIR)
			return 0; /* went away already */
		pr_warn("config: cannot watch %s: %s\n", path, strerror(-err));
		return err;
	}
	w = watch_by_wd(cd, wd);
	if (w && strcmp(w->path, path)) {
		/* The same directory under another name: forget the old one. */
		files_drop_under(cd, w->path);
		free(w->path);
		free(w->cluster);
		w->path = w->cluster = NULL;
	} else if (!w) {
		if (!grow((void **)&cd->w, &cd->capw, cd->nw, sizeof(*cd->w))) {
			inotify_rm_watch(cd->fd, wd);
			return -ENOMEM;
		}
		w = &cd->w[cd->nw++];
		memset(w, 0, sizeof(*w));
		w->wd = wd;
	}
	if (!w->path) {
		w->path = strdup(path);
		w->cluster = cluster ? strdup(cluster) : NULL;
		if (!w->path || (cluster && !w->cluster)) {
			inotify_rm_watch(cd->fd, wd);
			watch_free(cd, w - cd->w, false);
			return -ENOMEM;
		}
		pr_debug("config: watching %s\n", path);
	}
	w->kind = kind;

	switch (kind) {
	case W_FLEET:
	case W_CLUSTER:
		scan_files(cd, path, cluster);
		break;
	case W_ROOT:
	case W_CLUSTERS:
		scan_subdirs(cd, kind, path);
		break;
	}
	return 0;
}

/* ---- events ---- */

static void on_dir_entry(struct fg_configdir *cd, struct watch *w,
			 const struct inotify_event *ev)
{
	bool appeared = ev->mask & (IN_CREATE | IN_MOVED_TO);
	enum wkind kind = W_CLUSTER;
	char *path;

	if (ev->name[0] == '.')
		return;
	if (w->kind == W_ROOT) {
		if (!strcmp(ev->name, "fleet"))
			kind = W_FLEET;
		else if (!strcmp(ev->name, "clusters"))
			kind = W_CLUSTERS;
		else
			return;
	}
	path = join(w->path, ev->name);
	if (!path) {
		cd->need_rescan = true;
		return;
	}
	/* Symlinks to directories come without IN_ISDIR: look. */
	if (appeared && is_dir(path))
		dir_add(cd, kind, path, kind == W_CLUSTER ? ev->name : NULL);
	else if (!appeared && watch_by_path(cd, path))
		dir_drop(cd, path, true);
	free(path);
}

static void on_file_entry(struct fg_configdir *cd, struct watch *w,
			  const struct inotify_event *ev)
{
	struct stat st;
	char *path;

	/* A Kubernetes ConfigMap volume swapped its "..data" symlink. */
	if (!strcmp(ev->name, "..data") && (ev->mask & (IN_CREATE | IN_MOVED_TO))) {
		scan_files(cd, w->path, w->cluster);
		return;
	}
	if (!wanted_name(ev->name) || (ev->mask & IN_ISDIR))
		return;
	path = join(w->path, ev->name);
	if (path && (ev->mask & IN_CREATE)) {
		/* A file being written: wait for IN_CLOSE_WRITE. A symlink or
		 * a hard link is complete already. */
		if (lstat(path, &st) ||
		    !(S_ISLNK(st.st_mode) || (S_ISREG(st.st_mode) && st.st_nlink > 1))) {
			free(path);
			return;
		}
	}
	queue_path(cd, path, w->cluster);
}

static void on_event(struct fg_configdir *cd, const struct inotify_event *ev)
{
	struct watch *w;

	if (ev->mask & IN_Q_OVERFLOW) {
		pr_warn("config: inotify queue overflow, rescanning %s\n", cd->dir);
		cd->need_rescan = true;
		return;
	}
	w = watch_by_wd(cd, ev->wd);
	if (!w)
		return; /* a watch removed already */
	if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_UNMOUNT)) {
		if (w->kind == W_ROOT)
			pr_warn("config: %s went away\n", w->path);
		dir_drop(cd, w->path, !(ev->mask & IN_IGNORED));
		return;
	}
	if (!ev->len || !ev->name[0])
		return;
	if (w->kind == W_FLEET || w->kind == W_CLUSTER)
		on_file_entry(cd, w, ev);
	else
		on_dir_entry(cd, w, ev);
}

static int rescan(struct fg_configdir *cd)
{
	size_t i;

	cd->need_rescan = false;
	for (i = 0; i < cd->nf; i++)
		queue_path(cd, strdup(cd->f[i].path), cd->f[i].origin);
	return dir_add(cd, W_ROOT, cd->dir, NULL);
}

int fg_configdir_process(struct fg_configdir *cd, bool *changed)
{
	char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct inotify_event *ev;
	int reads, err = 0;
	ssize_t n;
	char *p;

	cd->changed = false;
	for (reads = 0; reads < MAX_READS; reads++) {
		n = read(cd->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			if (errno != EAGAIN)
				err = -errno;
			break;
		}
		if (n == 0)
			break;
		for (p = buf; p + sizeof(*ev) <= buf + n;
		     p += sizeof(*ev) + ev->len) {
			ev = (const struct inotify_event *)p;
			on_event(cd, ev);
		}
	}
	if (err)
		pr_warn("config: cannot read inotify events: %s\n", strerror(-err));
	if (cd->need_rescan)
		rescan(cd);
	queue_apply(cd);
	if (changed)
		*changed = cd->changed;
	return err;
}

int fg_configdir_rescan(struct fg_configdir *cd, bool *changed)
{
	int err;

	cd->changed = false;
	err = rescan(cd);
	queue_apply(cd);
	if (changed)
		*changed = cd->changed;
	return err;
}

int fg_configdir_open(struct fg_configdir **out, const char *dir)
{
	struct fg_configdir *cd;
	struct stat st;
	size_t n;
	int err;

	*out = NULL;
	err = stat(dir, &st) ? -errno : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (err) {
		pr_warn("config: cannot use %s: %s\n", dir, strerror(-err));
		return err;
	}
	cd = calloc(1, sizeof(*cd));
	if (!cd)
		return -ENOMEM;
	cd->dir = strdup(dir);
	if (!cd->dir) {
		free(cd);
		return -ENOMEM;
	}
	/* Without it strings are not shared: more memory, nothing else. */
	cd->intern = fg_intern_new();
	n = strlen(cd->dir);
	while (n > 1 && cd->dir[n - 1] == '/')
		cd->dir[--n] = '\0';
	cd->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (cd->fd < 0) {
		err = -errno;
		pr_warn("config: inotify_init1: %s\n", strerror(-err));
		free(cd->dir);
		free(cd);
		return err;
	}
	/* Only the watches: the objects come with fg_configdir_rescan(). */
	err = dir_add(cd, W_ROOT, cd->dir, NULL);
	queue_clear(cd);
	if (!err && !cd->nw)
		err = -ENOENT; /* removed under our feet */
	if (err) {
		fg_configdir_close(cd);
		return err;
	}
	*out = cd;
	return 0;
}

void fg_configdir_close(struct fg_configdir *cd)
{
	size_t i;

	if (!cd)
		return;
	queue_clear(cd);
	free(cd->p);
	for (i = 0; i < cd->nf; i++) {
		json_decref(cd->f[i].docs);
		free(cd->f[i].path);
		free(cd->f[i].origin);
		free(cd->f[i].err);
	}
	free(cd->f);
	fg_intern_free(cd->intern);
	for (i = 0; i < cd->nw; i++) {
		free(cd->w[i].path);
		free(cd->w[i].cluster);
	}
	free(cd->w);
	if (cd->fd >= 0)
		close(cd->fd);
	free(cd->dir);
	free(cd);
}

void fg_configdir_set_change_cb(struct fg_configdir *cd, fg_configdir_change_cb cb, void *ctx)
{
	cd->change_cb = cb;
	cd->change_ctx = ctx;
}

int fg_configdir_fd(const struct fg_configdir *cd)
{
	return cd->fd;
}

int fg_configdir_foreach(struct fg_configdir *cd, fg_configdir_obj_cb cb, void *ctx)
{
	size_t i, j;
	json_t *obj;
	int rc;

	for (i = 0; i < cd->nf; i++) {
		json_array_foreach(cd->f[i].docs, j, obj) {
			rc = cb(cd->f[i].origin, cd->f[i].path, obj, ctx);
			if (rc)
				return rc;
		}
	}
	return 0;
}

int fg_configdir_foreach_error(struct fg_configdir *cd, fg_configdir_err_cb cb,
			       void *ctx)
{
	int n = 0;
	size_t i;

	for (i = 0; i < cd->nf; i++) {
		if (!cd->f[i].failed)
			continue;
		n++;
		if (cb)
			cb(cd->f[i].path, error_of(cd->f[i].err), ctx);
	}
	return n;
}

size_t fg_configdir_count(const struct fg_configdir *cd)
{
	size_t i, n = 0;

	for (i = 0; i < cd->nf; i++)
		n += json_array_size(cd->f[i].docs);
	return n;
}

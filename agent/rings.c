// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The rings of the data plane: one slab of u32 slots (the ring_slots map,
 * an array behind a one-entry map-in-map so it can grow) holding every
 * service's cluster ring, every (service, cluster) backend ring and member
 * list, and the rings map telling where each one lives (include/fleetgate.h,
 * struct fg_ring). See docs/maps.md and docs/architecture.md.
 *
 * Why a slab and not one inner map per ring: replacing an inner map waits
 * for an RCU grace period (~15 ms here), so a fleet of 1,000 services took
 * 15 s to program; and an inner map per ring has a fixed size whatever it
 * holds. Here a ring costs what it holds, and publishing it is one hash
 * map update.
 *
 * Rings are rebuilt from what this process knows (members, the backends
 * it wrote, the clusters' state) and written only when what they are
 * built from changed (a signature per ring), so a health change rewrites
 * the one ring it touches.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <bpf/bpf.h>

#include "dataplane.h"
#include "dataplane_int.h"
#include "fleetgate_hash.h"
#include "log.h"

#define GRACE_MS 100     /* a retired ring's slots are reused after this */
#define IO_CHUNK 65536   /* slots per batch call */
/* A slab the agent creates can be mmapped and is written through a window
 * of it: a batch update costs a copy_from_user and an update call per
 * slot, 4-5 s of CPU for the 37 million slots of 1,000,000 endpoints. */
#define SLAB_FLAGS (BPF_F_INNER_MAP | BPF_F_MMAPABLE)
/* An array map's values are 8-byte aligned: a 4-byte slot takes 8. */
#define SLOT_BYTES 8
/* The most of the slab mapped at once: mapped pages count in the agent's
 * RSS, so the window stays small and moves with the writes. */
#define WIN_BYTES (1U << 20)

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static __u64 state_key(__u32 sid, __u32 cidx)
{
	return (__u64)sid << 32 | cidx;
}

/* ---------- sizes ---------- */

static __u32 next_prime(__u32 n)
{
	if (n <= 2)
		return 2;
	if (!(n & 1))
		n++;
	while (!fg_is_prime(n))
		n += 2;
	return n;
}

__u32 fg_dp_cluster_ring_size(size_t n_clusters)
{
	__u64 want = (__u64)FG_CLUSTER_RING_FACTOR * n_clusters;

	return next_prime(want < FG_CLUSTER_RING_MIN ? FG_CLUSTER_RING_MIN : (__u32)want);
}

__u32 fg_dp_backend_ring_size(const struct fg_dataplane *dp, __u64 weight_sum)
{
	__u64 want = (__u64)FG_BACKEND_RING_FACTOR * weight_sum;
	__u32 size;

	if (want < FG_BACKEND_RING_MIN)
		want = FG_BACKEND_RING_MIN;
	if (want >= dp->maglev_size)
		return dp->maglev_size;
	size = next_prime((__u32)want);
	return size > dp->maglev_size ? dp->maglev_size : size;
}

/* ---------- the slab ---------- */

static int scratch_reserve(struct fg_dataplane *dp, __u32 n)
{
	__u32 *a, *b;

	if (n <= dp->scratch_len)
		return 0;
	a = realloc(dp->scratch, (size_t)n * sizeof(*a));
	if (!a)
		return -ENOMEM;
	dp->scratch = a;
	b = realloc(dp->scratch_keys, (size_t)n * sizeof(*b));
	if (!b)
		return -ENOMEM;
	dp->scratch_keys = b;
	dp->scratch_len = n;
	return 0;
}

static int slab_open(struct fg_dataplane *dp)
{
	__u32 zero = 0, id;
	int fd;

	if (dp->slab_fd >= 0)
		return dp->slab_fd;
	/* User space reads a map-in-map slot as the inner map's id. */
	if (bpf_map_lookup_elem(dp->maps.ring_slots, &zero, &id))
		return -errno;
	fd = bpf_map_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	dp->slab_fd = fd;
	return fd;
}

static __u32 slab_fd_size(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.max_entries;
}

static void win_unmap(struct fg_dataplane *dp)
{
	if (dp->win)
		munmap(dp->win, (size_t)dp->win_slots * SLOT_BYTES);
	dp->win = NULL;
	dp->win_first = dp->win_slots = 0;
}

/* Maps a window of the slab holding slots [off, off + n): from off's page
 * on, WIN_BYTES or what n needs, within the slab. */
static int win_map(struct fg_dataplane *dp, __u32 off, __u32 n)
{
	__u64 per_page = (__u64)sysconf(_SC_PAGESIZE) / SLOT_BYTES;
	__u64 first = off - off % per_page, end = first + WIN_BYTES / SLOT_BYTES;
	void *p;

	if (dp->win && off >= dp->win_first && (__u64)off + n <= (__u64)dp->win_first + dp->win_slots)
		return 0;
	win_unmap(dp);
	if (end < (__u64)off + n)
		end = (__u64)off + n;
	/* The map's area ends at its last page: the window may not pass it. */
	end = (end + per_page - 1) / per_page * per_page;
	if (end > (dp->slab.size + per_page - 1) / per_page * per_page)
		end = (dp->slab.size + per_page - 1) / per_page * per_page;
	p = mmap(NULL, (end - first) * SLOT_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
		 dp->slab_fd, (off_t)(first * SLOT_BYTES));
	if (p == MAP_FAILED)
		return -errno;
	dp->win = p;
	dp->win_first = (__u32)first;
	dp->win_slots = (__u32)(end - first);
	return 0;
}

/* vals into the slab's slots through the window; false when the slab
 * cannot be mapped (the caller writes with system calls). */
static bool slab_write_mapped(struct fg_dataplane *dp, __u32 off, const __u32 *vals, __u32 n)
{
	__u32 done = 0, i;

	while (done < n) {
		__u32 chunk;
		__u32 *w;

		if (win_map(dp, off + done, 1))
			return false;
		chunk = dp->win_first + dp->win_slots - (off + done);
		if (chunk > n - done)
			chunk = n - done;
		w = dp->win + (size_t)(off + done - dp->win_first) * (SLOT_BYTES / sizeof(__u32));
		for (i = 0; i < chunk; i++)
			w[(size_t)i * (SLOT_BYTES / sizeof(__u32))] = vals[done + i];
		done += chunk;
	}
	/* The slots are in place before the ring that points at them is
	 * published (a later system call). */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	return true;
}

/* vals[0..n) into slots [off, off + n). */
static int slab_write(struct fg_dataplane *dp, int fd, __u32 off, const __u32 *vals, __u32 n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 done = 0, i;
	int err;

	if (fd == dp->slab_fd && dp->slab_mmapable && slab_write_mapped(dp, off, vals, n))
		return 0;

	while (done < n) {
		__u32 chunk = n - done > IO_CHUNK ? IO_CHUNK : n - done, count = chunk;

		err = scratch_reserve(dp, chunk);
		if (err)
			return err;
		for (i = 0; i < chunk; i++)
			dp->scratch_keys[i] = off + done + i;
		if (bpf_map_update_batch(fd, dp->scratch_keys, vals + done, &count, &bopts)) {
			/* Kernels without batches for arrays: one at a time. */
			for (i = 0; i < chunk; i++)
				if (bpf_map_update_elem(fd, &dp->scratch_keys[i], &vals[done + i],
							BPF_ANY))
					return -errno;
		}
		done += chunk;
	}
	return 0;
}

/* Slots [off, off + n) into vals. */
static int slab_read(int fd, __u32 off, __u32 *vals, __u32 n)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 done = 0, i, *keys;
	int err = 0;

	keys = malloc((n > IO_CHUNK ? IO_CHUNK : (n ? n : 1)) * sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	while (done < n) {
		__u32 chunk = n - done > IO_CHUNK ? IO_CHUNK : n - done, count = chunk;
		/* A batch resumes after the key it is given. */
		__u32 in = off + done - 1, next;

		if (bpf_map_lookup_batch(fd, off + done ? &in : NULL, &next, keys, vals + done,
					 &count, &bopts) || count != chunk) {
			for (i = 0; i < chunk; i++) {
				__u32 k = off + done + i;

				if (bpf_map_lookup_elem(fd, &k, &vals[done + i])) {
					err = -errno;
					goto out;
				}
			}
		}
		done += chunk;
	}
out:
	free(keys);
	return err;
}

static int slab_create(__u32 size, bool mmapable)
{
	LIBBPF_OPTS(bpf_map_create_opts, mopts,
		    .map_flags = mmapable ? SLAB_FLAGS : BPF_F_INNER_MAP);
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fg_ring_slab", sizeof(__u32), sizeof(__u32),
				size, &mopts);

	return fd < 0 ? -errno : fd;
}

static bool fd_mmapable(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	return !bpf_obj_get_info_by_fd(fd, &info, &len) && (info.map_flags & BPF_F_MMAPABLE);
}

/* Replaces the slab by one of new_size slots holding the same slots, so
 * every published offset stays valid. Readers see the old slab or the new
 * one, both whole. */
static int slab_grow(struct fg_dataplane *dp, __u32 new_size)
{
	__u32 zero = 0, old_size = dp->slab.size, done = 0;
	__u32 *buf = NULL;
	int fd, err;

	fd = slab_create(new_size, dp->slab_mmapable);
	if (fd < 0) {
		err = fd;
		pr_warn("cannot create a ring slab of %u slots (%llu MiB): %s\n", new_size,
			(unsigned long long)new_size * 4 >> 20, strerror(-err));
		return err;
	}
	buf = malloc(IO_CHUNK * sizeof(*buf));
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	while (done < old_size) {
		__u32 chunk = old_size - done > IO_CHUNK ? IO_CHUNK : old_size - done;

		err = slab_read(dp->slab_fd, done, buf, chunk);
		if (!err)
			err = slab_write(dp, fd, done, buf, chunk);
		if (err)
			goto out;
		done += chunk;
	}
	err = dp_update(dp, dp->maps.ring_slots, &zero, &fd, BPF_ANY);
	if (err)
		goto out;
	/* The window holds the old slab's memory: let it go with it. */
	win_unmap(dp);
	close(dp->slab_fd);
	dp->slab_fd = fd;
	fd = -1;
	err = fg_slab_grow(&dp->slab, new_size);
	pr_info("rings: slab grown from %u to %u slots (%llu MiB)\n", old_size, new_size,
		(unsigned long long)new_size * 4 >> 20);
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return err;
}

/* Makes room for at least extra more slots in one piece. */
static int slab_make_room(struct fg_dataplane *dp, __u64 extra)
{
	__u64 size = dp->slab.size, want = dp->slab.used + extra;

	if (fg_slab_largest_free(&dp->slab) >= extra)
		return 0;
	while (size < want + want / 4 || size - dp->slab.size < extra)
		size *= 2;
	if (size > dp->slab_max) {
		if (dp->slab.size >= dp->slab_max || dp->slab_max < want) {
			pr_warn("rings: the ring slab is full (%u slots, %llu MiB; --ring-slots-max "
				"%u): cannot place %llu more\n", dp->slab.size,
				(unsigned long long)dp->slab.size * 4 >> 20, dp->slab_max,
				(unsigned long long)extra);
			return -ENOSPC;
		}
		size = dp->slab_max;
	}
	return slab_grow(dp, (__u32)size);
}

int fg_dp_ring_reserve(struct fg_dataplane *dp, __u64 slots)
{
	__u64 free_slots = dp->slab.size - dp->slab.used;

	if (!dp->skel || free_slots >= slots)
		return 0;
	return slab_make_room(dp, slots);
}

static int slab_alloc(struct fg_dataplane *dp, __u32 n, __u32 *off)
{
	int err = fg_slab_alloc(&dp->slab, n, now_ms(), off);

	if (err != -ENOSPC)
		return err;
	err = slab_make_room(dp, n);
	if (err)
		return err;
	return fg_slab_alloc(&dp->slab, n, now_ms(), off);
}

/* Writes vals as the ring (or list) at key, replacing what was there;
 * the old slots are retired. n == 0 removes it. */
static int publish(struct fg_dataplane *dp, __u32 sid, __u32 cidx, const __u32 *vals, __u32 n,
		   struct fg_ring *cur)
{
	struct fg_ring_key key = { .service_id = sid, .cluster_idx = cidx };
	struct fg_ring next = {};
	int err;

	if (n) {
		err = slab_alloc(dp, n, &next.offset);
		if (err)
			return err;
		err = slab_write(dp, dp->slab_fd, next.offset, vals, n);
		if (!err) {
			next.size = n;
			err = dp_update(dp, dp->maps.rings, &key, &next, BPF_ANY);
		}
		if (err) {
			fg_slab_free_now(&dp->slab, next.offset, n);
			if (err == -E2BIG || err == -ENOMEM)
				pr_warn("rings: the rings map is full (%u entries, --max-rings): %s\n",
					dp->max_rings, strerror(-err));
			return err;
		}
	} else if (cur->size) {
		err = dp_delete(dp, dp->maps.rings, &key);
		if (err)
			return err;
	}
	if (cur->size)
		fg_slab_retire(&dp->slab, cur->offset, cur->size, now_ms());
	*cur = next;
	dp->ring_writes++;
	return 0;
}

/* ---------- state per ring key ---------- */

static struct fg_ring_state *state_get(struct fg_dataplane *dp, __u32 sid, __u32 cidx,
				       bool create)
{
	__u64 key = state_key(sid, cidx), *v = fg_hmap_get(&dp->ring_states, &key);
	struct fg_ring_state *st;

	if (v)
		return (struct fg_ring_state *)(uintptr_t)*v;
	if (!create)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (!st)
		return NULL;
	if (fg_hmap_put(&dp->ring_states, &key, (uintptr_t)st)) {
		free(st);
		return NULL;
	}
	return st;
}

static void state_drop(struct fg_dataplane *dp, __u32 sid, __u32 cidx)
{
	__u64 key = state_key(sid, cidx), *v = fg_hmap_get(&dp->ring_states, &key);
	struct fg_ring_state *st;

	if (!v)
		return;
	st = (struct fg_ring_state *)(uintptr_t)*v;
	fg_hmap_del(&dp->ring_states, &key);
	free(st->members);
	free(st->shares);
	free(st);
}

/* ---------- backend mirror and references ---------- */

/* The mirror of a backend; true when it raised the high id (the
 * settings map is to be told). */
static bool mirror_store(struct fg_dataplane *dp, __u32 id, const struct fg_backend *be)
{
	struct fg_backend_mirror *m;

	if (!dp->mirror || id >= dp->max_backends)
		return false;
	m = &dp->mirror[id];
	m->addr = be->addr;
	m->port = be->port;
	m->family = be->family;
	m->flags = be->flags;
	m->weight = be->weight;
	m->cluster_idx = be->cluster_idx;
	m->gen = be->gen;
	if (!(be->flags & FG_BACKEND_F_ACTIVE) || id < dp->backend_high)
		return false;
	dp->backend_high = id + 1;
	return true;
}

void dp_mirror_set(struct fg_dataplane *dp, __u32 id, const struct fg_backend *be)
{
	if (mirror_store(dp, id, be))
		dp_settings_highs(dp, dp->backend_high, 0);
}

static void mirror_view(const struct fg_backend_mirror *m, struct fg_backend *be)
{
	memset(be, 0, sizeof(*be));
	be->addr = m->addr;
	be->port = m->port;
	be->family = m->family;
	be->flags = m->flags;
	be->weight = m->weight;
	be->cluster_idx = m->cluster_idx;
	be->gen = m->gen;
}

/* What fg_dp_set_backend writes over old: gen follows the endpoint (the
 * same one keeps it, another one or a reused id gets the next). */
static void backend_next(const struct fg_backend *old, const struct fg_backend *be,
			 struct fg_backend *next)
{
	*next = *be;
	next->gen = old->gen;
	if (!(old->flags & FG_BACKEND_F_ACTIVE) || old->family != be->family ||
	    old->port != be->port || old->cluster_idx != be->cluster_idx ||
	    memcmp(&old->addr, &be->addr, sizeof(old->addr)))
		next->gen++;
}

/* The mirror holds what the map holds (this process is its only writer,
 * and adopt_backends read what a previous one left), so the old values
 * need no lookup, and the writes go in one batch: 1,000,000 backends
 * were three to four million system calls. */
int fg_dp_set_backends(struct fg_dataplane *dp, const __u32 *ids, const struct fg_backend *bes,
		       size_t n)
{
	struct fg_backend *vals;
	__u32 *keys, m = 0;
	bool high = false;
	size_t i;
	int err;

	for (i = 0; i < n; i++)
		if (ids[i] >= dp->max_backends)
			return -ERANGE;
	if (!dp->mirror) {
		for (i = 0, err = 0; i < n && !err; i++)
			err = fg_dp_set_backend(dp, ids[i], &bes[i]);
		return err;
	}
	keys = malloc((n ? n : 1) * sizeof(*keys));
	vals = malloc((n ? n : 1) * sizeof(*vals));
	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -ENOMEM;
	}
	for (i = 0; i < n; i++) {
		struct fg_backend old;

		mirror_view(&dp->mirror[ids[i]], &old);
		backend_next(&old, &bes[i], &vals[m]);
		if (!memcmp(&old, &vals[m], sizeof(old)))
			continue;
		keys[m++] = ids[i];
	}
	err = m ? dp_update_batch(dp, dp->maps.backends, keys, vals, m, sizeof(*keys),
				  sizeof(*vals)) : 0;
	for (i = 0; !err && i < m; i++)
		high |= mirror_store(dp, keys[i], &vals[i]);
	if (high)
		dp_settings_highs(dp, dp->backend_high, 0);
	free(keys);
	free(vals);
	return err;
}

int fg_dp_backend_view(const struct fg_dataplane *dp, __u32 id, struct fg_backend *be)
{
	const struct fg_backend_mirror *m;

	if (!dp->mirror)
		return -EOPNOTSUPP;
	if (id >= dp->max_backends)
		return -ERANGE;
	m = &dp->mirror[id];
	mirror_view(m, be);
	return 0;
}

__u32 fg_dp_max_rings(const struct fg_dataplane *dp)
{
	return dp->max_rings;
}

__u32 fg_dp_backend_high(const struct fg_dataplane *dp)
{
	return dp->backend_high;
}

const char *fg_dp_cluster_name(const struct fg_dataplane *dp, __u32 cluster_idx)
{
	if (cluster_idx >= FG_MAX_CLUSTERS || !dp->cl_mirror[cluster_idx].name[0])
		return "?";
	return dp->cl_mirror[cluster_idx].name;
}

static int ref_add(struct fg_dataplane *dp, __u32 id, __u32 sid)
{
	struct fg_backend_mirror *m = &dp->mirror[id];
	__u32 *r;

	if (!m->n_refs) {
		m->ref0 = sid;
		m->n_refs = 1;
		return 0;
	}
	/* refs holds n_refs - 1; its size is not kept (4 bytes on each of
	 * 1,000,000 mirrors): it is grown at 0, 4, 8, 16 ... to twice that,
	 * which is never below what those counts need, removals or not. */
	{
		__u32 n = m->n_refs - 1;

		if (!n || (n >= 4 && !(n & (n - 1)))) {
			r = realloc(m->refs, (n ? n * 2 : 4) * sizeof(*r));
			if (!r)
				return -ENOMEM;
			m->refs = r;
		}
	}
	m->refs[m->n_refs - 1] = sid;
	m->n_refs++;
	return 0;
}

static void ref_del(struct fg_dataplane *dp, __u32 id, __u32 sid)
{
	struct fg_backend_mirror *m = &dp->mirror[id];
	__u32 i;

	if (!m->n_refs)
		return;
	if (m->ref0 == sid) {
		if (m->n_refs > 1)
			m->ref0 = m->refs[m->n_refs - 2];
		m->n_refs--;
		return;
	}
	for (i = 0; i + 1 < m->n_refs; i++) {
		if (m->refs[i] == sid) {
			m->refs[i] = m->refs[m->n_refs - 2];
			m->n_refs--;
			return;
		}
	}
}

static int cmp_u32(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

/* ---------- membership ---------- */

int fg_dp_set_members(struct fg_dataplane *dp, __u32 sid, __u32 cidx, const __u32 *ids, size_t n)
{
	struct fg_ring_state *st;
	__u32 *sorted = NULL;
	size_t i, j;
	int err;

	if (!dp->skel || !dp->mirror)
		return -EOPNOTSUPP;
	if (sid >= dp->max_services || cidx >= FG_MAX_CLUSTERS)
		return -ERANGE;
	for (i = 0; i < n; i++)
		if (ids[i] >= dp->max_backends)
			return -ERANGE;
	st = state_get(dp, sid, cidx, n > 0);
	if (!st)
		return n ? -ENOMEM : 0;
	if (n) {
		sorted = malloc(n * sizeof(*sorted));
		if (!sorted)
			return -ENOMEM;
		memcpy(sorted, ids, n * sizeof(*sorted));
		qsort(sorted, n, sizeof(*sorted), cmp_u32);
		/* one entry per backend */
		for (i = j = 0; i < n; i++)
			if (!j || sorted[j - 1] != sorted[i])
				sorted[j++] = sorted[i];
		n = j;
	}
	if (n == st->n_members && (!n || !memcmp(sorted, st->members, n * sizeof(*sorted)))) {
		free(sorted);
		return 0;
	}
	/* The references follow (both lists sorted). */
	for (i = j = 0; i < st->n_members || j < n;) {
		if (j == n || (i < st->n_members && st->members[i] < sorted[j])) {
			ref_del(dp, st->members[i++], sid);
		} else if (i == st->n_members || sorted[j] < st->members[i]) {
			err = ref_add(dp, sorted[j++], sid);
			if (err) {
				free(sorted);
				return err;
			}
		} else {
			i++;
			j++;
		}
	}
	err = publish(dp, sid, cidx | FG_RING_MEMBERS, sorted, (__u32)n, &st->list);
	free(st->members);
	st->members = sorted;
	st->n_members = st->cap_members = (__u32)n;
	if (!n && !st->ring.size) {
		state_drop(dp, sid, cidx);
		return err;
	}
	return err;
}

int fg_dp_members(const struct fg_dataplane *dp, __u32 sid, __u32 cidx, const __u32 **ids,
		  size_t *n)
{
	__u64 key = state_key(sid, cidx), *v = fg_hmap_get(&dp->ring_states, &key);
	const struct fg_ring_state *st;

	*ids = NULL;
	*n = 0;
	if (!v)
		return -ENOENT;
	st = (const struct fg_ring_state *)(uintptr_t)*v;
	*ids = st->members;
	*n = st->n_members;
	return 0;
}

/* ---------- building rings ---------- */

static __u64 signature(const struct fg_maglev_entry *ents, size_t n, __u32 size)
{
	__u64 h = 1469598103934665603ULL ^ size;
	size_t i;

	for (i = 0; i < n; i++) {
		h = (h ^ ents[i].id) * 1099511628211ULL;
		h = (h ^ ents[i].weight) * 1099511628211ULL;
		h = (h ^ fg_bytes_hash(ents[i].key, ents[i].key_len, 0)) * 1099511628211ULL;
	}
	return h ? h : 1;
}

/* The slots each cluster holds in the cluster ring just published: the
 * metrics and `get routes` ask for every service's shares, and reading
 * them back from the slab costs a system call per slot (an array map's
 * batch lookup is element by element): 1.2 s of the control thread for
 * 11,000 services. Without memory for it, the shares are read back. */
static void note_shares(struct fg_ring_state *st, const __u32 *table, __u32 size)
{
	__u32 i;

	if (!size) {
		free(st->shares);
		st->shares = NULL;
		return;
	}
	if (!st->shares)
		st->shares = malloc(FG_MAX_CLUSTERS * sizeof(*st->shares));
	if (!st->shares)
		return;
	memset(st->shares, 0, FG_MAX_CLUSTERS * sizeof(*st->shares));
	for (i = 0; i < size; i++)
		if (table[i] < FG_MAX_CLUSTERS)
			st->shares[table[i]]++;
}

/* Builds a Maglev ring of size slots over the entries and publishes it at
 * (sid, cidx) unless the same entries built the published one. */
static int write_ring(struct fg_dataplane *dp, __u32 sid, __u32 cidx,
		      const struct fg_maglev_entry *ents, size_t n, __u32 size,
		      struct fg_ring_state *st)
{
	__u64 sig = n ? signature(ents, n, size) : 0;
	int err;

	if (sig == st->sig && (st->ring.size || !n))
		return 0;
	if (n) {
		err = scratch_reserve(dp, size);
		if (err)
			return err;
		err = fg_maglev_build(ents, n, dp->scratch, size);
		if (err)
			return err;
		/* publish() may reuse scratch_keys, not scratch. */
		err = publish(dp, sid, cidx, dp->scratch, size, &st->ring);
	} else {
		err = publish(dp, sid, cidx, NULL, 0, &st->ring);
	}
	if (!err) {
		st->sig = sig;
		if (cidx == FG_RING_CLUSTERS)
			note_shares(st, n ? dp->scratch : NULL, n ? size : 0);
	}
	return err;
}

static struct fg_maglev_entry *ents_buf(size_t n)
{
	static __thread struct fg_maglev_entry *buf;
	static __thread size_t cap;

	if (n > cap) {
		struct fg_maglev_entry *b = realloc(buf, n * sizeof(*b));

		if (!b)
			return NULL;
		buf = b;
		cap = n;
	}
	return buf;
}

/* The up backends of (sid, cidx) as Maglev entries; a backend's key is its
 * address, port and family, so it keeps its slots whatever its id. */
static struct fg_maglev_entry *backend_entries(struct fg_dataplane *dp,
					       const struct fg_ring_state *st, size_t *n,
					       __u64 *weight_sum)
{
	struct fg_maglev_entry *ents = ents_buf(st->n_members ? st->n_members : 1);
	__u32 i;

	*n = 0;
	*weight_sum = 0;
	if (!ents)
		return NULL;
	for (i = 0; i < st->n_members; i++) {
		const struct fg_backend_mirror *m = &dp->mirror[st->members[i]];

		if ((m->flags & (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP)) !=
			    (FG_BACKEND_F_ACTIVE | FG_BACKEND_F_UP) || !m->weight)
			continue;
		ents[*n].id = st->members[i];
		ents[*n].weight = m->weight;
		ents[*n].key = &m->addr;
		ents[*n].key_len = sizeof(m->addr) + sizeof(m->port) + sizeof(m->family);
		*weight_sum += m->weight;
		(*n)++;
	}
	return ents;
}

static int rebuild_one(struct fg_dataplane *dp, __u32 sid)
{
	struct fg_maglev_entry cents[FG_MAX_CLUSTERS];
	bool usable[FG_MAX_CLUSTERS] = {};
	unsigned int best_tier = 256;
	struct fg_ring_state *cst;
	struct fg_service svc;
	size_t nc = 0;
	__u32 c;
	int err;

	if (sid >= dp->max_services)
		return -ERANGE;
	if (bpf_map_lookup_elem(dp->maps.services, &sid, &svc))
		return -errno;
	if (!(svc.flags & FG_SERVICE_F_ACTIVE))
		return -ENOENT;
	for (c = 0; c < FG_MAX_CLUSTERS; c++) {
		struct fg_ring_state *st = state_get(dp, sid, c, false);
		struct fg_maglev_entry *ents;
		__u64 wsum;
		size_t n;

		if (!st)
			continue;
		ents = backend_entries(dp, st, &n, &wsum);
		if (!ents)
			return -ENOMEM;
		/* A cluster without a share has no ring: nothing picks it. */
		if (!svc.cluster_weight[c])
			n = 0;
		err = write_ring(dp, sid, c, ents, n, n ? fg_dp_backend_ring_size(dp, wsum) : 0, st);
		if (err)
			return err;
		/* A cluster without a healthy backend gets no share: its
		 * traffic fails over to the others. */
		usable[c] = n && (dp->cl_mirror[c].flags & FG_CLUSTER_F_UP);
		if (usable[c] && svc.cluster_tier[c] < best_tier)
			best_tier = svc.cluster_tier[c];
		if (!st->n_members && !st->ring.size)
			state_drop(dp, sid, c);
	}
	/* Only the best tier that can serve takes traffic: a canary's own
	 * clusters, else its main route's, else any cluster with the Service. */
	for (c = 0; c < FG_MAX_CLUSTERS; c++) {
		if (!usable[c] || svc.cluster_tier[c] != best_tier)
			continue;
		cents[nc].id = c;
		cents[nc].weight = svc.cluster_weight[c];
		cents[nc].key = dp->cl_mirror[c].name;
		cents[nc].key_len = strnlen(dp->cl_mirror[c].name, sizeof(dp->cl_mirror[c].name));
		nc++;
	}
	cst = state_get(dp, sid, FG_RING_CLUSTERS, nc > 0);
	if (!cst)
		return nc ? -ENOMEM : 0;
	err = write_ring(dp, sid, FG_RING_CLUSTERS, cents, nc, fg_dp_cluster_ring_size(nc), cst);
	if (!err && !nc)
		state_drop(dp, sid, FG_RING_CLUSTERS);
	return err;
}

int fg_dp_rebuild_service(struct fg_dataplane *dp, __u32 service_id)
{
	return fg_dp_rebuild_services(dp, &service_id, 1);
}

int fg_dp_rebuild_services(struct fg_dataplane *dp, const __u32 *service_ids, size_t n)
{
	size_t i;
	int err = 0;

	if (!dp->skel)
		return -EOPNOTSUPP;
	for (i = 0; i < n && !err; i++)
		err = rebuild_one(dp, service_ids[i]);
	return err;
}

int fg_dp_backends_changed(struct fg_dataplane *dp, const __u32 *ids, size_t n)
{
	struct fg_hmap seen;
	__u32 *sids = NULL;
	size_t n_sids = 0, cap = 0, i, k;
	int err = 0;

	if (!dp->skel || !dp->mirror)
		return -EOPNOTSUPP;
	fg_hmap_init(&seen, sizeof(__u32));
	for (i = 0; i < n && !err; i++) {
		const struct fg_backend_mirror *m;
		__u32 sid;

		if (ids[i] >= dp->max_backends)
			continue;
		m = &dp->mirror[ids[i]];
		for (k = 0; k < m->n_refs && !err; k++) {
			sid = k ? m->refs[k - 1] : m->ref0;
			if (fg_hmap_get(&seen, &sid))
				continue;
			err = fg_hmap_put(&seen, &sid, 1);
			if (!err && n_sids == cap) {
				__u32 *s = realloc(sids, (cap ? cap * 2 : 16) * sizeof(*s));

				if (!s) {
					err = -ENOMEM;
					break;
				}
				sids = s;
				cap = cap ? cap * 2 : 16;
			}
			if (!err)
				sids[n_sids++] = sid;
		}
	}
	if (!err)
		err = fg_dp_rebuild_services(dp, sids, n_sids);
	free(sids);
	fg_hmap_fini(&seen);
	return err;
}

int fg_dp_del_backend_ring(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx)
{
	struct fg_ring_state *st = state_get(dp, service_id, cluster_idx, false);
	int err;

	if (!st)
		return 0;
	err = fg_dp_set_members(dp, service_id, cluster_idx, NULL, 0);
	st = state_get(dp, service_id, cluster_idx, false);
	if (!err && st)
		err = publish(dp, service_id, cluster_idx, NULL, 0, &st->ring);
	if (!err && st)
		state_drop(dp, service_id, cluster_idx);
	return err;
}

int dp_rings_del_service(struct fg_dataplane *dp, __u32 sid)
{
	struct fg_ring_state *st;
	__u32 c;
	int err = 0;

	if (!dp->skel)
		return 0;
	for (c = 0; c < FG_MAX_CLUSTERS && !err; c++)
		err = fg_dp_del_backend_ring(dp, sid, c);
	st = state_get(dp, sid, FG_RING_CLUSTERS, false);
	if (!err && st) {
		err = publish(dp, sid, FG_RING_CLUSTERS, NULL, 0, &st->ring);
		if (!err)
			state_drop(dp, sid, FG_RING_CLUSTERS);
	}
	return err;
}

/* Direct ring writes (tests, fg_dp_apply_service callers that build their
 * own): sizes as the rebuilds choose them. */
int fg_dp_set_cluster_ring(struct fg_dataplane *dp, __u32 service_id,
			   const struct fg_maglev_entry *clusters, size_t n)
{
	struct fg_ring_state *st;
	size_t i;

	if (!dp->skel)
		return -EOPNOTSUPP;
	if (service_id >= dp->max_services)
		return -ERANGE;
	for (i = 0; i < n; i++)
		if (clusters[i].id >= FG_MAX_CLUSTERS)
			return -ERANGE;
	st = state_get(dp, service_id, FG_RING_CLUSTERS, true);
	if (!st)
		return -ENOMEM;
	return write_ring(dp, service_id, FG_RING_CLUSTERS, clusters, n,
			  fg_dp_cluster_ring_size(n), st);
}

int fg_dp_set_backend_ring(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx,
			   const struct fg_maglev_entry *backends, size_t n)
{
	struct fg_ring_state *st;
	__u64 wsum = 0;
	size_t i;

	if (!dp->skel)
		return -EOPNOTSUPP;
	if (service_id >= dp->max_services || cluster_idx >= FG_MAX_CLUSTERS)
		return -ERANGE;
	for (i = 0; i < n; i++) {
		if (backends[i].id >= dp->max_backends)
			return -ERANGE;
		wsum += backends[i].weight;
	}
	st = state_get(dp, service_id, cluster_idx, true);
	if (!st)
		return -ENOMEM;
	return write_ring(dp, service_id, cluster_idx, backends, n,
			  fg_dp_backend_ring_size(dp, wsum ? wsum : 1), st);
}

/* ---------- reading back ---------- */

int fg_dp_ring_read(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx,
		    __u32 **table, __u32 *size)
{
	struct fg_ring_key key = { .service_id = service_id, .cluster_idx = cluster_idx };
	struct fg_ring r;
	__u32 *t;
	int fd, err;

	*table = NULL;
	*size = 0;
	if (bpf_map_lookup_elem(dp->maps.rings, &key, &r))
		return errno == ENOENT ? -ENOENT : -errno;
	if (!r.size)
		return -ENOENT;
	fd = slab_open(dp);
	if (fd < 0)
		return fd;
	t = malloc((size_t)r.size * sizeof(*t));
	if (!t)
		return -ENOMEM;
	err = slab_read(fd, r.offset, t, r.size);
	if (err) {
		free(t);
		return err;
	}
	*table = t;
	*size = r.size;
	return 0;
}

/* The slab in ring_slots now; rd keeps its descriptor while the id holds. */
static int slab_reader_refresh(const struct fg_dataplane *dp, struct fg_slab_reader *rd)
{
	__u32 zero = 0, id;
	int fd;

	if (bpf_map_lookup_elem(dp->maps.ring_slots, &zero, &id))
		return -errno;
	if (rd->fd >= 0 && rd->id == id)
		return 0;
	fd = bpf_map_get_fd_by_id(id);
	if (fd < 0)
		return -errno;
	if (rd->fd >= 0)
		close(rd->fd);
	rd->fd = fd;
	rd->id = id;
	return 0;
}

int fg_dp_ring_read_shared(const struct fg_dataplane *dp, struct fg_slab_reader *rd,
			   __u32 service_id, __u32 cluster_idx, __u32 **table, __u32 *size)
{
	struct fg_ring_key key = { .service_id = service_id, .cluster_idx = cluster_idx };
	struct fg_ring r;
	__u32 *t;
	int err, attempt;

	*table = NULL;
	*size = 0;
	if (bpf_map_lookup_elem(dp->maps.rings, &key, &r))
		return errno == ENOENT ? -ENOENT : -errno;
	if (!r.size)
		return -ENOENT;
	t = malloc((size_t)r.size * sizeof(*t));
	if (!t)
		return -ENOMEM;
	/* A ring placed past the end of the slab this reader knows: the
	 * slab grew (ring_slots is written before the rings that need the
	 * room), so look it up again once. */
	for (attempt = 0; attempt < 2; attempt++) {
		err = rd->fd < 0 || attempt ? slab_reader_refresh(dp, rd) : 0;
		if (!err)
			err = slab_read(rd->fd, r.offset, t, r.size);
		if (!err)
			break;
	}
	if (err) {
		free(t);
		return err;
	}
	*table = t;
	*size = r.size;
	return 0;
}

void fg_dp_slab_reader_close(struct fg_slab_reader *rd)
{
	if (rd->fd >= 0)
		close(rd->fd);
	rd->fd = -1;
	rd->id = 0;
}

int fg_dp_cluster_shares(struct fg_dataplane *dp, __u32 service_id,
			 __u32 slots[FG_MAX_CLUSTERS], __u32 *total)
{
	__u32 *table, size, i;
	int err;

	memset(slots, 0, FG_MAX_CLUSTERS * sizeof(*slots));
	*total = 0;
	if (dp->skel) {
		const struct fg_ring_state *st = state_get(dp, service_id, FG_RING_CLUSTERS, false);

		/* This process wrote every ring it has a state for. */
		if (!st || !st->ring.size)
			return 0;
		if (st->shares) {
			for (i = 0; i < FG_MAX_CLUSTERS; i++)
				*total += slots[i] = st->shares[i];
			return 0;
		}
	}
	err = fg_dp_ring_read(dp, service_id, FG_RING_CLUSTERS, &table, &size);
	if (err)
		return err == -ENOENT ? 0 : err;
	for (i = 0; i < size; i++) {
		if (table[i] >= FG_MAX_CLUSTERS)
			continue;
		slots[table[i]]++;
		(*total)++;
	}
	free(table);
	return 0;
}

void fg_dp_ring_stats(struct fg_dataplane *dp, struct fg_ring_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->slab_slots = dp->slab.size ? dp->slab.size : (dp->slab_fd >= 0 || slab_open(dp) >= 0
							  ? slab_fd_size(dp->slab_fd) : 0);
	st->slab_used = dp->slab.used;
	st->rings = dp->ring_states.n;
	st->ring_writes = dp->ring_writes;
	st->map_writes = dp->map_writes;
}

/* ---------- set-up ---------- */

/* A previous agent's rings (pins kept): their slots stay taken and what
 * they were built from is known again, so the first rebuilds are
 * incremental, not blind rewrites. */
static int adopt_rings(struct fg_dataplane *dp)
{
	struct fg_ring_key key, next;
	struct fg_ring r;
	void *prev = NULL;
	int err;

	while (!bpf_map_get_next_key(dp->maps.rings, prev, &next)) {
		struct fg_ring_state *st;
		__u32 cidx;

		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(dp->maps.rings, &key, &r) || !r.size)
			continue;
		err = fg_slab_reserve(&dp->slab, r.offset, r.size);
		if (err) {
			pr_warn("rings: a pinned ring (service %u, %#x) overlaps another or lies "
				"outside the slab: %s\n", key.service_id, key.cluster_idx,
				strerror(-err));
			return err;
		}
		cidx = key.cluster_idx == FG_RING_CLUSTERS ? key.cluster_idx
							   : key.cluster_idx & ~FG_RING_MEMBERS;
		st = state_get(dp, key.service_id, cidx, true);
		if (!st)
			return -ENOMEM;
		if (key.cluster_idx != FG_RING_CLUSTERS && (key.cluster_idx & FG_RING_MEMBERS)) {
			st->list = r;
			st->members = malloc((size_t)r.size * sizeof(__u32));
			if (!st->members)
				return -ENOMEM;
			err = slab_read(dp->slab_fd, r.offset, st->members, r.size);
			if (err)
				return err;
			st->n_members = st->cap_members = r.size;
		} else {
			st->ring = r;
		}
	}
	return 0;
}

/* Reads what the backends map holds into the mirror (a restart). */
static int adopt_backends(struct fg_dataplane *dp)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	struct fg_backend *bes = malloc(IO_CHUNK * sizeof(*bes));
	__u32 *keys = malloc(IO_CHUNK * sizeof(*keys));
	__u32 start = 0, i;
	int err = 0;

	if (!bes || !keys) {
		err = -ENOMEM;
		goto out;
	}
	while (start < dp->max_backends) {
		__u32 count = dp->max_backends - start > IO_CHUNK ? IO_CHUNK
								  : dp->max_backends - start;
		__u32 in = start - 1, next, want = count; /* resumes after in */

		if (bpf_map_lookup_batch(dp->maps.backends, start ? &in : NULL, &next, keys, bes,
					 &count, &bopts) || count != want) {
			for (i = 0; i < want; i++) {
				keys[i] = start + i;
				if (bpf_map_lookup_elem(dp->maps.backends, &keys[i], &bes[i])) {
					err = -errno;
					goto out;
				}
			}
			count = want;
		}
		/* Inactive ones too: their gen goes on with the next endpoint. */
		for (i = 0; i < count; i++)
			if ((bes[i].flags & FG_BACKEND_F_ACTIVE) || bes[i].gen)
				dp_mirror_set(dp, start + i, &bes[i]);
		start += count;
	}
out:
	free(bes);
	free(keys);
	return err;
}

static int adopt_refs(struct fg_dataplane *dp)
{
	size_t i;
	int err;

	for (i = fg_hmap_next(&dp->ring_states, 0); i < dp->ring_states.cap;
	     i = fg_hmap_next(&dp->ring_states, i + 1)) {
		__u64 key = *(const __u64 *)fg_hmap_key(&dp->ring_states, i);
		struct fg_ring_state *st =
			(struct fg_ring_state *)(uintptr_t)*fg_hmap_val(&dp->ring_states, i);
		__u32 k;

		for (k = 0; k < st->n_members; k++) {
			if (st->members[k] >= dp->max_backends)
				continue;
			err = ref_add(dp, st->members[k], (__u32)(key >> 32));
			if (err)
				return err;
		}
	}
	return 0;
}

/* The first slab: mmapable, unless ring_slots was made by an agent whose
 * slabs are not (pins kept across an upgrade): its inner map's flags are
 * fixed, so the update refuses it and a plain one goes in. */
static int slab_install_first(struct fg_dataplane *dp, __u32 size)
{
	__u32 zero = 0;
	int fd, err;

	for (dp->slab_mmapable = true;; dp->slab_mmapable = false) {
		fd = slab_create(size, dp->slab_mmapable);
		if (fd < 0)
			return fd;
		err = dp_update(dp, dp->maps.ring_slots, &zero, &fd, BPF_ANY);
		if (!err)
			break;
		close(fd);
		if (err != -EINVAL || !dp->slab_mmapable)
			return err;
	}
	dp->slab_fd = fd;
	return 0;
}

int dp_rings_init(struct fg_dataplane *dp, __u32 initial_slots, bool loaded)
{
	__u32 i;
	int fd, err;

	fg_hmap_init(&dp->ring_states, sizeof(__u64));
	if (!loaded)
		return 0;
	for (i = 0; i < FG_MAX_CLUSTERS; i++)
		if (bpf_map_lookup_elem(dp->maps.clusters, &i, &dp->cl_mirror[i]))
			memset(&dp->cl_mirror[i], 0, sizeof(dp->cl_mirror[i]));
	dp->mirror = calloc(dp->max_backends, sizeof(*dp->mirror));
	if (!dp->mirror)
		return -ENOMEM;
	fd = slab_open(dp);
	if (fd >= 0) {
		/* Pins kept by a previous agent: its slab and rings. */
		dp->slab_mmapable = fd_mmapable(fd);
		err = fg_slab_init(&dp->slab, slab_fd_size(fd), GRACE_MS);
		if (!err)
			err = adopt_backends(dp);
		if (!err)
			err = adopt_rings(dp);
		if (!err)
			err = adopt_refs(dp);
		return err;
	}
	if (initial_slots > dp->slab_max)
		initial_slots = dp->slab_max;
	err = slab_install_first(dp, initial_slots);
	if (err)
		return err;
	return fg_slab_init(&dp->slab, initial_slots, GRACE_MS);
}

void dp_rings_fini(struct fg_dataplane *dp)
{
	size_t i;
	__u32 id;

	for (i = fg_hmap_next(&dp->ring_states, 0); i < dp->ring_states.cap;
	     i = fg_hmap_next(&dp->ring_states, i + 1)) {
		struct fg_ring_state *st =
			(struct fg_ring_state *)(uintptr_t)*fg_hmap_val(&dp->ring_states, i);

		free(st->members);
		free(st->shares);
		free(st);
	}
	fg_hmap_fini(&dp->ring_states);
	if (dp->mirror) {
		for (id = 0; id < dp->max_backends; id++)
			free(dp->mirror[id].refs);
		free(dp->mirror);
		dp->mirror = NULL;
	}
	fg_slab_fini(&dp->slab);
	win_unmap(dp);
	if (dp->slab_fd >= 0)
		close(dp->slab_fd);
	dp->slab_fd = -1;
	free(dp->scratch);
	free(dp->scratch_keys);
	dp->scratch = dp->scratch_keys = NULL;
	dp->scratch_len = 0;
}

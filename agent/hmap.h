/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A hash map from fixed-size keys to u64 values: open addressing, linear
 * probing, power-of-two capacity, tombstones. The control plane's indexes
 * (endpoint -> backend id, (service, cluster) -> ring state, object ->
 * its entry) hold up to a few million entries: this costs key size + 9
 * bytes per slot and one allocation per table, where a node-based table
 * (uthash, GHashTable) costs a node and 40-56 bytes of links per entry.
 */
#ifndef FG_HMAP_H
#define FG_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct fg_hmap {
	size_t key_size;
	size_t cap;       /* slots, a power of two (0 before the first put) */
	size_t n;         /* entries */
	size_t n_dead;    /* tombstones */
	__u8 *state;      /* per slot: 0 empty, 1 used, 2 deleted */
	__u8 *keys;       /* cap * key_size */
	__u64 *vals;
};

void fg_hmap_init(struct fg_hmap *m, size_t key_size);
void fg_hmap_fini(struct fg_hmap *m);
/* The value of key, or NULL. Valid until the next put. */
__u64 *fg_hmap_get(const struct fg_hmap *m, const void *key);
/* Inserts or replaces; 0 or -ENOMEM. */
int fg_hmap_put(struct fg_hmap *m, const void *key, __u64 val);
/* true when key was there. */
bool fg_hmap_del(struct fg_hmap *m, const void *key);
void fg_hmap_clear(struct fg_hmap *m);

/* Iteration: for (i = fg_hmap_next(m, 0); i < m->cap; i = fg_hmap_next(m, i + 1)) */
size_t fg_hmap_next(const struct fg_hmap *m, size_t i);
static inline const void *fg_hmap_key(const struct fg_hmap *m, size_t i)
{
	return m->keys + i * m->key_size;
}
static inline __u64 *fg_hmap_val(const struct fg_hmap *m, size_t i)
{
	return &m->vals[i];
}

/*
 * An index of ids whose keys live in the caller's array (keys + id *
 * key_size): 4 bytes a slot instead of key size + 9. The endpoint ->
 * backend id index holds 1,000,000 endpoints at N=10,000 C=10 E=10: 8 MiB
 * this way, 66 MiB as an fg_hmap with the keys copied in. The caller keeps
 * keys[id] equal to the key of every id it holds: written before
 * fg_hidx_put, unchanged until after fg_hidx_del. Ids up to 2^32 - 3.
 */
struct fg_hidx {
	size_t key_size;
	size_t cap;       /* slots, a power of two (0 before the first put) */
	size_t n;         /* entries */
	size_t n_dead;    /* tombstones */
	__u32 *slots;     /* 0 empty, FG_HIDX_DEAD deleted, else id + 1 */
};

void fg_hidx_init(struct fg_hidx *x, size_t key_size);
void fg_hidx_fini(struct fg_hidx *x);
/* The id of key, or -1. */
long long fg_hidx_get(const struct fg_hidx *x, const void *keys, const void *key);
/* Adds id (keys[id] already holds its key; an id already there for that
 * key is replaced). 0 or -ENOMEM. */
int fg_hidx_put(struct fg_hidx *x, const void *keys, __u32 id);
/* Removes key; true when it was there. */
bool fg_hidx_del(struct fg_hidx *x, const void *keys, const void *key);

#endif

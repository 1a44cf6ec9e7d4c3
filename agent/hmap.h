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

#endif

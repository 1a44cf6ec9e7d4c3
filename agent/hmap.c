// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fleetgate_hash.h"
#include "hmap.h"

enum { SLOT_EMPTY = 0, SLOT_USED = 1, SLOT_DEAD = 2 };

void fg_hmap_init(struct fg_hmap *m, size_t key_size)
{
	memset(m, 0, sizeof(*m));
	m->key_size = key_size;
}

void fg_hmap_fini(struct fg_hmap *m)
{
	free(m->state);
	free(m->keys);
	free(m->vals);
	m->state = m->keys = NULL;
	m->vals = NULL;
	m->cap = m->n = m->n_dead = 0;
}

void fg_hmap_clear(struct fg_hmap *m)
{
	size_t ks = m->key_size;

	fg_hmap_fini(m);
	fg_hmap_init(m, ks);
}

static size_t key_hash(const void *key, size_t key_size)
{
	__u64 h = fg_bytes_hash(key, key_size, 0x51ed27u);

	/* fg_bytes_hash is 32 bits: spread it over the high bits too. */
	h ^= (__u64)fg_bytes_hash(key, key_size, 0x2545f491u) << 32;
	return (size_t)h;
}

static size_t hash_of(const struct fg_hmap *m, const void *key)
{
	return key_hash(key, m->key_size);
}

/* The slot of key, or of where it would go (first tombstone on the way). */
static size_t probe(const struct fg_hmap *m, const void *key, bool *found)
{
	size_t mask = m->cap - 1, i = hash_of(m, key) & mask, tomb = (size_t)-1;

	for (;;) {
		__u8 st = m->state[i];

		if (st == SLOT_EMPTY) {
			*found = false;
			return tomb != (size_t)-1 ? tomb : i;
		}
		if (st == SLOT_DEAD) {
			if (tomb == (size_t)-1)
				tomb = i;
		} else if (!memcmp(m->keys + i * m->key_size, key, m->key_size)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int resize(struct fg_hmap *m, size_t cap)
{
	struct fg_hmap next = { .key_size = m->key_size, .cap = cap };
	size_t i;

	next.state = calloc(cap, 1);
	next.keys = malloc(cap * m->key_size);
	next.vals = malloc(cap * sizeof(*next.vals));
	if (!next.state || !next.keys || !next.vals) {
		free(next.state);
		free(next.keys);
		free(next.vals);
		return -ENOMEM;
	}
	for (i = 0; i < m->cap; i++) {
		bool found;
		size_t j;

		if (m->state[i] != SLOT_USED)
			continue;
		j = probe(&next, m->keys + i * m->key_size, &found);
		next.state[j] = SLOT_USED;
		memcpy(next.keys + j * m->key_size, m->keys + i * m->key_size, m->key_size);
		next.vals[j] = m->vals[i];
		next.n++;
	}
	fg_hmap_fini(m);
	*m = next;
	return 0;
}

__u64 *fg_hmap_get(const struct fg_hmap *m, const void *key)
{
	bool found;
	size_t i;

	if (!m->n)
		return NULL;
	i = probe(m, key, &found);
	return found ? &m->vals[i] : NULL;
}

int fg_hmap_put(struct fg_hmap *m, const void *key, __u64 val)
{
	bool found;
	size_t i;
	int err;

	/* At most 3/4 full, tombstones included. */
	if (!m->cap || (m->n + m->n_dead + 1) * 4 > m->cap * 3) {
		size_t cap = m->cap ? m->cap : 16;

		while ((m->n + 1) * 2 > cap)
			cap *= 2;
		err = resize(m, cap);
		if (err)
			return err;
	}
	i = probe(m, key, &found);
	if (!found) {
		if (m->state[i] == SLOT_DEAD)
			m->n_dead--;
		m->state[i] = SLOT_USED;
		memcpy(m->keys + i * m->key_size, key, m->key_size);
		m->n++;
	}
	m->vals[i] = val;
	return 0;
}

bool fg_hmap_del(struct fg_hmap *m, const void *key)
{
	bool found;
	size_t i;

	if (!m->n)
		return false;
	i = probe(m, key, &found);
	if (!found)
		return false;
	m->state[i] = SLOT_DEAD;
	m->n--;
	m->n_dead++;
	return true;
}

size_t fg_hmap_next(const struct fg_hmap *m, size_t i)
{
	while (i < m->cap && m->state[i] != SLOT_USED)
		i++;
	return i < m->cap ? i : m->cap;
}

/* ---------- ids keyed by the caller's array ---------- */

#define FG_HIDX_DEAD 0xffffffffu

void fg_hidx_init(struct fg_hidx *x, size_t key_size)
{
	memset(x, 0, sizeof(*x));
	x->key_size = key_size;
}

void fg_hidx_fini(struct fg_hidx *x)
{
	free(x->slots);
	x->slots = NULL;
	x->cap = x->n = x->n_dead = 0;
}

static size_t hidx_hash(const struct fg_hidx *x, const void *key)
{
	return key_hash(key, x->key_size);
}

static const void *hidx_key(const struct fg_hidx *x, const void *keys, __u32 slot)
{
	return (const __u8 *)keys + (size_t)(slot - 1) * x->key_size;
}

/* The slot of key, or of where it would go (first tombstone on the way). */
static size_t hidx_probe(const struct fg_hidx *x, const void *keys, const void *key, bool *found)
{
	size_t mask = x->cap - 1, i = hidx_hash(x, key) & mask, tomb = (size_t)-1;

	for (;;) {
		__u32 s = x->slots[i];

		if (!s) {
			*found = false;
			return tomb != (size_t)-1 ? tomb : i;
		}
		if (s == FG_HIDX_DEAD) {
			if (tomb == (size_t)-1)
				tomb = i;
		} else if (!memcmp(hidx_key(x, keys, s), key, x->key_size)) {
			*found = true;
			return i;
		}
		i = (i + 1) & mask;
	}
}

static int hidx_resize(struct fg_hidx *x, const void *keys, size_t cap)
{
	__u32 *slots = calloc(cap, sizeof(*slots)), *old = x->slots;
	size_t i, j, old_cap = x->cap;

	if (!slots)
		return -ENOMEM;
	x->slots = slots;
	x->cap = cap;
	x->n_dead = 0;
	for (i = 0; i < old_cap; i++) {
		if (!old[i] || old[i] == FG_HIDX_DEAD)
			continue;
		j = hidx_hash(x, hidx_key(x, keys, old[i])) & (cap - 1);
		while (slots[j])
			j = (j + 1) & (cap - 1);
		slots[j] = old[i];
	}
	free(old);
	return 0;
}

long long fg_hidx_get(const struct fg_hidx *x, const void *keys, const void *key)
{
	bool found;
	size_t i;

	if (!x->n)
		return -1;
	i = hidx_probe(x, keys, key, &found);
	return found ? (long long)x->slots[i] - 1 : -1;
}

int fg_hidx_put(struct fg_hidx *x, const void *keys, __u32 id)
{
	const void *key = (const __u8 *)keys + (size_t)id * x->key_size;
	bool found;
	size_t i;
	int err;

	if (id >= FG_HIDX_DEAD - 1)
		return -EINVAL;
	/* At most 3/4 full, tombstones included. */
	if (!x->cap || (x->n + x->n_dead + 1) * 4 > x->cap * 3) {
		size_t cap = x->cap ? x->cap : 16;

		while ((x->n + 1) * 2 > cap)
			cap *= 2;
		err = hidx_resize(x, keys, cap);
		if (err)
			return err;
	}
	i = hidx_probe(x, keys, key, &found);
	if (!found) {
		if (x->slots[i] == FG_HIDX_DEAD)
			x->n_dead--;
		x->n++;
	}
	x->slots[i] = id + 1;
	return 0;
}

bool fg_hidx_del(struct fg_hidx *x, const void *keys, const void *key)
{
	bool found;
	size_t i;

	if (!x->n)
		return false;
	i = hidx_probe(x, keys, key, &found);
	if (!found)
		return false;
	x->slots[i] = FG_HIDX_DEAD;
	x->n--;
	x->n_dead++;
	return true;
}

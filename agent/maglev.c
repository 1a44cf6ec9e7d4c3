// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Weighted Maglev.
 *
 * Plain Maglev lets every entry claim one slot per round, in turn, each from
 * its own preference list (a permutation of the slots), until the table is
 * full. Weighting it by letting heavy entries take more turns per round only
 * approximates the weights: the last round is cut short, and turns credited
 * as weight/max_weight drift. Here the weights decide the exact number of
 * slots first (largest remainder), and the turns are then interleaved so
 * that every entry progresses through its quota at the same relative pace,
 * as in stride scheduling: an entry's k-th claim happens at virtual time
 * (k + 1/2) / quota. With equal weights this is exactly Maglev's round
 * robin, and whatever the weights each entry still claims slots in its own
 * preference order, which is what keeps disruption minimal when the set of
 * entries changes.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fleetgate.h"
#include "fleetgate_hash.h"
#include "maglev.h"

/* Seeds of the permutation: distinct from each other and from the flow
 * seeds, so offset, skip and the flow's slot are unrelated. */
#define MG_SEED_OFFSET 0xcc9e2d51U
#define MG_SEED_SKIP   0x1b873593U

struct mg_state {
	const struct fg_maglev_entry *e;
	__u64 rem;   /* remainder of size * weight / sum, for largest remainder */
	__u32 quota; /* slots this entry must end up with */
	__u32 taken;
	__u32 pos;   /* next position of the permutation to try */
	__u32 skip;
};

bool fg_is_prime(__u32 n)
{
	__u64 d;

	if (n < 2)
		return false;
	if (n % 2 == 0)
		return n == 2;
	for (d = 3; d * d <= n; d += 2)
		if (n % d == 0)
			return false;
	return true;
}

static int mg_key_cmp(const struct fg_maglev_entry *a,
		      const struct fg_maglev_entry *b)
{
	__u32 len = a->key_len < b->key_len ? a->key_len : b->key_len;
	int r = len ? memcmp(a->key, b->key, len) : 0;

	if (r)
		return r;
	if (a->key_len != b->key_len)
		return a->key_len < b->key_len ? -1 : 1;
	/* Same key: fall back on the rest so the order (hence the table)
	 * still does not depend on the caller's order. */
	if (a->id != b->id)
		return a->id < b->id ? -1 : 1;
	if (a->weight != b->weight)
		return a->weight < b->weight ? -1 : 1;
	return 0;
}

static int mg_state_cmp(const void *pa, const void *pb)
{
	const struct mg_state *a = pa, *b = pb;

	return mg_key_cmp(a->e, b->e);
}

/* Largest remainder first; equal remainders in key order, for determinism. */
static int mg_rem_cmp(const void *pa, const void *pb)
{
	const struct mg_state *a = *(struct mg_state *const *)pa;
	const struct mg_state *b = *(struct mg_state *const *)pb;

	if (a->rem != b->rem)
		return a->rem > b->rem ? -1 : 1;
	return a < b ? -1 : a > b;
}

static int mg_validate(const struct fg_maglev_entry *entries, size_t n,
		       const __u32 *table, __u32 size)
{
	size_t i;

	if (!table || !fg_is_prime(size) || n > size || (n && !entries))
		return -EINVAL;
	for (i = 0; i < n; i++) {
		if (entries[i].key_len && !entries[i].key)
			return -EINVAL;
		/* FG_NONE marks free slots, here and in the data path. */
		if (entries[i].weight && entries[i].id == FG_NONE)
			return -EINVAL;
	}
	return 0;
}

/*
 * Splits size slots in proportion to the weights. The products fit in 64
 * bits (size and weight are 32-bit), and so does the sum of up to 2^32
 * weights, so no weight set can overflow.
 */
static int mg_quotas(struct mg_state *st, size_t cnt, __u32 size)
{
	struct mg_state **order;
	__u64 sum = 0, given = 0;
	size_t i;

	for (i = 0; i < cnt; i++)
		sum += st[i].e->weight;
	for (i = 0; i < cnt; i++) {
		__u64 prod = (__u64)size * st[i].e->weight;

		st[i].quota = prod / sum;
		st[i].rem = prod % sum;
		given += st[i].quota;
	}
	/* Each quota lost less than one slot, so fewer than cnt are left. */
	if (given == size)
		return 0;
	order = malloc(cnt * sizeof(*order));
	if (!order)
		return -ENOMEM;
	for (i = 0; i < cnt; i++)
		order[i] = &st[i];
	qsort(order, cnt, sizeof(*order), mg_rem_cmp);
	for (i = 0; given < size; i++, given++)
		order[i]->quota++;
	free(order);
	return 0;
}

/*
 * True when a's next claim comes before b's: compares (2t+1)/q, i.e. the
 * middle of the claim's share of the entry's progress. Centering the claims
 * keeps small quotas from bunching at the start of the fill. The products
 * need 65 bits at worst, hence 128-bit arithmetic.
 */
static bool mg_before(const struct mg_state *a, const struct mg_state *b)
{
	unsigned __int128 ta = (unsigned __int128)(2ULL * a->taken + 1) * b->quota;
	unsigned __int128 tb = (unsigned __int128)(2ULL * b->taken + 1) * a->quota;

	if (ta != tb)
		return ta < tb;
	return a < b;
}

static void mg_heap_down(struct mg_state **h, size_t len, size_t i)
{
	for (;;) {
		size_t l = 2 * i + 1, m = i;
		struct mg_state *tmp;

		if (l < len && mg_before(h[l], h[m]))
			m = l;
		if (l + 1 < len && mg_before(h[l + 1], h[m]))
			m = l + 1;
		if (m == i)
			return;
		tmp = h[i];
		h[i] = h[m];
		h[m] = tmp;
		i = m;
	}
}

/* The entry's next free slot in its preference order. The table is never
 * full here (quotas sum to size), so the walk ends within size steps. */
static __u32 mg_next(__u32 pos, __u32 skip, __u32 size)
{
	/* pos and skip are below size: one subtraction, not a division
	 * (the walk is most of a ring's build). */
	__u64 p = (__u64)pos + skip;

	return p >= size ? (__u32)(p - size) : (__u32)p;
}

static void mg_claim(struct mg_state *s, __u32 *table, __u32 size)
{
	while (table[s->pos] != FG_NONE)
		s->pos = mg_next(s->pos, s->skip, size);
	table[s->pos] = s->e->id;
	s->pos = mg_next(s->pos, s->skip, size);
	s->taken++;
}

/* All weights equal (a backend ring): quotas differ by at most one, the
 * larger ones first in key order, and the heap's schedule is then plain
 * Maglev's round robin in key order (an entry's k-th claim comes after
 * every k-1-th and before every k+1-th): the same table without a heap. */
static bool mg_equal_weights(const struct mg_state *st, size_t cnt)
{
	size_t i;

	for (i = 1; i < cnt; i++)
		if (st[i].e->weight != st[0].e->weight)
			return false;
	return true;
}

static void mg_fill_round_robin(struct mg_state *st, size_t cnt, __u32 *table, __u32 size)
{
	__u32 filled = 0;
	size_t i;

	while (filled < size)
		for (i = 0; i < cnt && filled < size; i++) {
			if (st[i].taken == st[i].quota)
				continue;
			mg_claim(&st[i], table, size);
			filled++;
		}
}

static int mg_fill(struct mg_state *st, size_t cnt, __u32 *table, __u32 size)
{
	struct mg_state **heap;
	size_t len = 0, i;

	heap = malloc(cnt * sizeof(*heap));
	if (!heap)
		return -ENOMEM;
	for (i = 0; i < cnt; i++)
		if (st[i].quota)
			heap[len++] = &st[i];
	for (i = len / 2; i-- > 0;)
		mg_heap_down(heap, len, i);
	while (len) {
		mg_claim(heap[0], table, size);
		if (heap[0]->taken == heap[0]->quota)
			heap[0] = heap[--len];
		mg_heap_down(heap, len, 0);
	}
	free(heap);
	return 0;
}

static void mg_permutation(struct mg_state *s, __u32 size)
{
	const struct fg_maglev_entry *e = s->e;

	/* size is prime, so any skip in [1, size) visits every slot. */
	s->pos = fg_bytes_hash(e->key, e->key_len, MG_SEED_OFFSET) % size;
	s->skip = fg_bytes_hash(e->key, e->key_len, MG_SEED_SKIP) % (size - 1) + 1;
}

int fg_maglev_build(const struct fg_maglev_entry *entries, size_t n,
		    __u32 *table, __u32 size)
{
	struct mg_state *st;
	size_t cnt = 0, i;
	int err;

	err = mg_validate(entries, n, table, size);
	if (err)
		return err;
	for (i = 0; i < size; i++)
		table[i] = FG_NONE;

	st = calloc(n ? n : 1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		if (entries[i].weight)
			st[cnt++].e = &entries[i];
	if (!cnt)
		goto out;

	/* Key order, so the caller's order changes nothing. */
	qsort(st, cnt, sizeof(*st), mg_state_cmp);
	for (i = 0; i < cnt; i++)
		mg_permutation(&st[i], size);
	err = mg_quotas(st, cnt, size);
	if (!err && mg_equal_weights(st, cnt))
		mg_fill_round_robin(st, cnt, table, size);
	else if (!err)
		err = mg_fill(st, cnt, table, size);
out:
	free(st);
	return err;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"

int fg_slab_init(struct fg_slab *s, __u32 size, unsigned grace_ms)
{
	memset(s, 0, sizeof(*s));
	s->size = size;
	s->grace_ms = grace_ms;
	if (!size)
		return 0;
	s->free = malloc(16 * sizeof(*s->free));
	if (!s->free)
		return -ENOMEM;
	s->cap_free = 16;
	s->free[0].off = 0;
	s->free[0].len = size;
	s->n_free = 1;
	return 0;
}

void fg_slab_fini(struct fg_slab *s)
{
	free(s->free);
	free(s->retired);
	memset(s, 0, sizeof(*s));
}

static int reserve_free(struct fg_slab *s, size_t more)
{
	struct fg_extent *f;
	size_t cap;

	if (s->n_free + more <= s->cap_free)
		return 0;
	cap = s->cap_free ? s->cap_free * 2 : 16;
	while (cap < s->n_free + more)
		cap *= 2;
	f = realloc(s->free, cap * sizeof(*f));
	if (!f)
		return -ENOMEM;
	s->free = f;
	s->cap_free = cap;
	return 0;
}

/* First free extent at or after off (binary search). */
static size_t free_index(const struct fg_slab *s, __u32 off)
{
	size_t lo = 0, hi = s->n_free;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->free[mid].off < off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int fg_slab_free_now(struct fg_slab *s, __u32 off, __u32 len)
{
	size_t i;
	bool prev, next;
	int err;

	if (!len)
		return 0;
	if ((__u64)off + len > s->size)
		return -ERANGE;
	i = free_index(s, off);
	/* Never free what is free already. */
	if ((i < s->n_free && s->free[i].off < off + len) ||
	    (i > 0 && s->free[i - 1].off + s->free[i - 1].len > off))
		return -EINVAL;
	prev = i > 0 && s->free[i - 1].off + s->free[i - 1].len == off;
	next = i < s->n_free && off + len == s->free[i].off;
	if (prev && next) {
		s->free[i - 1].len += len + s->free[i].len;
		memmove(&s->free[i], &s->free[i + 1], (s->n_free - i - 1) * sizeof(*s->free));
		s->n_free--;
	} else if (prev) {
		s->free[i - 1].len += len;
	} else if (next) {
		s->free[i].off = off;
		s->free[i].len += len;
	} else {
		err = reserve_free(s, 1);
		if (err)
			return err;
		memmove(&s->free[i + 1], &s->free[i], (s->n_free - i) * sizeof(*s->free));
		s->free[i].off = off;
		s->free[i].len = len;
		s->n_free++;
	}
	s->used -= len;
	return 0;
}

static void release_retired(struct fg_slab *s, __u64 now_ms)
{
	while (s->first_retired < s->n_retired &&
	       s->retired[s->first_retired].at_ms <= now_ms) {
		struct fg_retired *r = &s->retired[s->first_retired++];

		fg_slab_free_now(s, r->off, r->len);
	}
	if (s->first_retired == s->n_retired)
		s->first_retired = s->n_retired = 0;
}

int fg_slab_retire(struct fg_slab *s, __u32 off, __u32 len, __u64 now_ms)
{
	struct fg_retired *r;

	if (!len)
		return 0;
	if (s->n_retired == s->cap_retired) {
		size_t cap;

		/* Compact what was released before growing. */
		if (s->first_retired) {
			memmove(s->retired, &s->retired[s->first_retired],
				(s->n_retired - s->first_retired) * sizeof(*r));
			s->n_retired -= s->first_retired;
			s->first_retired = 0;
		}
		if (s->n_retired == s->cap_retired) {
			cap = s->cap_retired ? s->cap_retired * 2 : 64;
			r = realloc(s->retired, cap * sizeof(*r));
			if (!r)
				return -ENOMEM;
			s->retired = r;
			s->cap_retired = cap;
		}
	}
	r = &s->retired[s->n_retired++];
	r->off = off;
	r->len = len;
	r->at_ms = now_ms + s->grace_ms;
	return 0;
}

int fg_slab_alloc(struct fg_slab *s, __u32 n, __u64 now_ms, __u32 *off)
{
	size_t i, best = (size_t)-1;

	if (!n)
		return -EINVAL;
	release_retired(s, now_ms);
	/* Best fit: the smallest extent that holds n, so large extents stay
	 * for large rings. */
	for (i = 0; i < s->n_free; i++) {
		if (s->free[i].len < n)
			continue;
		if (best == (size_t)-1 || s->free[i].len < s->free[best].len)
			best = i;
		if (s->free[i].len == n)
			break;
	}
	if (best == (size_t)-1)
		return -ENOSPC;
	*off = s->free[best].off;
	s->free[best].off += n;
	s->free[best].len -= n;
	if (!s->free[best].len) {
		memmove(&s->free[best], &s->free[best + 1],
			(s->n_free - best - 1) * sizeof(*s->free));
		s->n_free--;
	}
	s->used += n;
	return 0;
}

int fg_slab_reserve(struct fg_slab *s, __u32 off, __u32 len)
{
	size_t i;
	struct fg_extent *f;
	__u32 end = off + len;
	int err;

	if (!len)
		return 0;
	if ((__u64)off + len > s->size)
		return -ERANGE;
	i = free_index(s, off + 1);
	if (!i)
		return -EEXIST;
	f = &s->free[i - 1];
	if (f->off > off || f->off + f->len < end)
		return -EEXIST;
	if (f->off == off && f->len == len) {
		memmove(f, f + 1, (s->n_free - i) * sizeof(*f));
		s->n_free--;
	} else if (f->off == off) {
		f->off += len;
		f->len -= len;
	} else if (f->off + f->len == end) {
		f->len -= len;
	} else {
		__u32 tail_off = end, tail_len = f->off + f->len - end;

		err = reserve_free(s, 1);
		if (err)
			return err;
		f = &s->free[i - 1];
		f->len = off - f->off;
		memmove(&s->free[i + 1], &s->free[i], (s->n_free - i) * sizeof(*f));
		s->free[i].off = tail_off;
		s->free[i].len = tail_len;
		s->n_free++;
	}
	s->used += len;
	return 0;
}

int fg_slab_grow(struct fg_slab *s, __u32 size)
{
	__u32 old = s->size;

	if (size <= old)
		return -EINVAL;
	s->size = size;
	s->used += size - old; /* fg_slab_free_now takes it back */
	return fg_slab_free_now(s, old, size - old);
}

__u32 fg_slab_largest_free(const struct fg_slab *s)
{
	__u32 best = 0;
	size_t i;

	for (i = 0; i < s->n_free; i++)
		if (s->free[i].len > best)
			best = s->free[i].len;
	return best;
}

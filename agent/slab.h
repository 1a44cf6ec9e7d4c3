/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Extents of the ring slab (the ring_slots map): which slots are free.
 *
 * A ring is written to free slots, then published; the slots of the ring
 * it replaced are freed only after a grace period, so a reader that took
 * the old ring's place just before the switch still reads the old ring,
 * never a new one written over it. Best fit over a sorted list of free
 * extents, neighbours merged; pure bookkeeping (no BPF here), so it is
 * unit-tested on its own (selftests/test_slab.c).
 */
#ifndef FG_SLAB_H
#define FG_SLAB_H

#include <stddef.h>
#include <linux/types.h>

struct fg_extent {
	__u32 off, len;
};

struct fg_retired {
	__u32 off, len;
	__u64 at_ms; /* free for reuse from then on */
};

struct fg_slab {
	__u32 size;               /* slots in the slab */
	__u64 used;               /* slots allocated (retired ones included) */
	struct fg_extent *free;   /* sorted by offset, never adjacent */
	size_t n_free, cap_free;
	struct fg_retired *retired; /* in order of retirement */
	size_t n_retired, cap_retired, first_retired;
	unsigned grace_ms;
};

int fg_slab_init(struct fg_slab *s, __u32 size, unsigned grace_ms);
void fg_slab_fini(struct fg_slab *s);
/* n slots (n > 0): 0 with *off, or -ENOSPC (grow, or wait for retired
 * extents), -ENOMEM. now_ms releases the retired extents whose grace
 * period is over first. */
int fg_slab_alloc(struct fg_slab *s, __u32 n, __u64 now_ms, __u32 *off);
/* Retires [off, off + len): reusable from now_ms + grace. */
int fg_slab_retire(struct fg_slab *s, __u32 off, __u32 len, __u64 now_ms);
/* Frees at once (a range nothing can be reading: never published). */
int fg_slab_free_now(struct fg_slab *s, __u32 off, __u32 len);
/* Marks [off, off + len) used (what a previous agent left); -EEXIST when
 * part of it is not free. */
int fg_slab_reserve(struct fg_slab *s, __u32 off, __u32 len);
/* The slab now has size slots (size > s->size): the new tail is free. */
int fg_slab_grow(struct fg_slab *s, __u32 size);
/* The largest free extent (for a caller deciding to grow). */
__u32 fg_slab_largest_free(const struct fg_slab *s);

#endif

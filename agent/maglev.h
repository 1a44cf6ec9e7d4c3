/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Weighted Maglev table population (Eisenbud et al., NSDI'16), used for both
 * selection levels: the per-service cluster ring (FG_CLUSTER_RING_SIZE slots
 * of cluster indices) and the per-(service, cluster) backend ring (--maglev-size
 * slots of backend ids).
 */
#ifndef FG_MAGLEV_H
#define FG_MAGLEV_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

struct fg_maglev_entry {
	__u32 id;        /* value written in the slots (cluster idx or backend id) */
	__u32 weight;    /* 0 = excluded */
	const void *key; /* stable identity for the permutation, e.g. the
			  * cluster id or "10.0.0.1:80": not the id, so that
			  * renumbering does not reshuffle the ring */
	__u32 key_len;
};

/*
 * Fills table[0..size) with the ids of the entries. Each entry with a
 * positive weight gets round(size * weight / sum of weights) slots, to
 * within one slot (largest remainder); an entry whose share is below one
 * slot may get none. Slots are claimed along each entry's own permutation,
 * so adding, removing or reweighting one entry moves few other flows.
 *
 * The result depends only on the set of entries, not on their order.
 * With no positive weight, every slot is FG_NONE.
 *
 * Returns 0, -EINVAL (size not prime, n > size, a NULL pointer, or a
 * weighted entry whose id is FG_NONE, which would read as an empty slot) or
 * -ENOMEM. The table is left untouched on -EINVAL and all FG_NONE on
 * -ENOMEM. Weights cannot overflow: the arithmetic is 64-bit.
 */
int fg_maglev_build(const struct fg_maglev_entry *entries, size_t n,
		    __u32 *table, __u32 size);

bool fg_is_prime(__u32 n);

#endif /* FG_MAGLEV_H */

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Incremental Internet checksum updates (RFC 1624). Sums are taken over the
 * 16-bit words as they sit in memory, which is byte-order neutral, so the
 * values are used as loaded, without byte swapping.
 */
#ifndef FG_BPF_CSUM_H
#define FG_BPF_CSUM_H

#include "common.h"

/* Adds the change from `from` to `to` (one 32-bit word) to an accumulator. */
static __always_inline __u32 csum_acc_word(__u32 acc, __u32 from, __u32 to)
{
	acc += (~from & 0xffff) + ((~from >> 16) & 0xffff);
	acc += (to & 0xffff) + (to >> 16);
	return acc;
}

static __always_inline __u32 csum_acc_half(__u32 acc, __u16 from, __u16 to)
{
	return acc + ((~(__u32)from) & 0xffff) + to;
}

static __always_inline __u32 csum_acc_addr(__u32 acc, const struct fg_addr *from,
					   const struct fg_addr *to, int words)
{
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		if (i >= words)
			break;
		acc = csum_acc_word(acc, from->v6[i], to->v6[i]);
	}
	return acc;
}

static __always_inline __u16 csum_fold(__u32 csum)
{
	csum = (csum & 0xffff) + (csum >> 16);
	csum = (csum & 0xffff) + (csum >> 16);
	return (__u16)csum;
}

/* Applies an accumulated change to a stored checksum field. */
static __always_inline __u16 csum_apply(__u16 check, __u32 acc)
{
	return ~csum_fold((__u32)(__u16)~check + acc);
}

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The flow hash, shared by the XDP program and the agent so that the agent
 * (and the distribution tests) can predict exactly which ring slot a flow
 * lands in. Bob Jenkins' lookup3 mixing over 32-bit words.
 */
#ifndef FLEETGATE_HASH_H
#define FLEETGATE_HASH_H

#include "fleetgate.h"

#ifndef FG_INLINE
#ifdef __bpf__
#define FG_INLINE static __always_inline
#else
#define FG_INLINE static inline
#endif
#endif

FG_INLINE __u32 fg_rol32(__u32 word, unsigned int shift)
{
	return (word << shift) | (word >> ((-shift) & 31));
}

#define FG_JHASH_MIX(a, b, c)                   \
	do {                                    \
		a -= c; a ^= fg_rol32(c, 4);  c += b; \
		b -= a; b ^= fg_rol32(a, 6);  a += c; \
		c -= b; c ^= fg_rol32(b, 8);  b += a; \
		a -= c; a ^= fg_rol32(c, 16); c += b; \
		b -= a; b ^= fg_rol32(a, 19); a += c; \
		c -= b; c ^= fg_rol32(b, 4);  b += a; \
	} while (0)

#define FG_JHASH_FINAL(a, b, c)                  \
	do {                                     \
		c ^= b; c -= fg_rol32(b, 14);    \
		a ^= c; a -= fg_rol32(c, 11);    \
		b ^= a; b -= fg_rol32(a, 25);    \
		c ^= b; c -= fg_rol32(b, 16);    \
		a ^= c; a -= fg_rol32(c, 4);     \
		b ^= a; b -= fg_rol32(a, 14);    \
		c ^= b; c -= fg_rol32(b, 24);    \
	} while (0)

#define FG_JHASH_INIT 0xdeadbeefU

/* Hash of a flow's 5-tuple (the 9 significant words of struct fg_flow). */
FG_INLINE __u32 fg_flow_hash(const struct fg_flow *f, __u32 seed)
{
	__u32 a, b, c;

	a = b = c = FG_JHASH_INIT + (9 << 2) + seed;

	a += f->src.v6[0]; b += f->src.v6[1]; c += f->src.v6[2];
	FG_JHASH_MIX(a, b, c);
	a += f->src.v6[3]; b += f->dst.v6[0]; c += f->dst.v6[1];
	FG_JHASH_MIX(a, b, c);
	a += f->dst.v6[2]; b += f->dst.v6[3];
	c += ((__u32)f->sport << 16 | f->dport) ^ ((__u32)f->proto << 8 | f->family);
	FG_JHASH_FINAL(a, b, c);
	return c;
}

/* Hash of a string or byte key (used by the agent for Maglev permutations). */
FG_INLINE __u32 fg_bytes_hash(const void *data, __u32 len, __u32 seed)
{
	const __u8 *k = (const __u8 *)data;
	__u32 a, b, c;

	a = b = c = FG_JHASH_INIT + len + seed;
	while (len > 12) {
		a += k[0] | (__u32)k[1] << 8 | (__u32)k[2] << 16 | (__u32)k[3] << 24;
		b += k[4] | (__u32)k[5] << 8 | (__u32)k[6] << 16 | (__u32)k[7] << 24;
		c += k[8] | (__u32)k[9] << 8 | (__u32)k[10] << 16 | (__u32)k[11] << 24;
		FG_JHASH_MIX(a, b, c);
		len -= 12;
		k += 12;
	}
	switch (len) {
	case 12: c += (__u32)k[11] << 24; /* fall through */
	case 11: c += (__u32)k[10] << 16; /* fall through */
	case 10: c += (__u32)k[9] << 8;   /* fall through */
	case 9:  c += k[8];               /* fall through */
	case 8:  b += (__u32)k[7] << 24;  /* fall through */
	case 7:  b += (__u32)k[6] << 16;  /* fall through */
	case 6:  b += (__u32)k[5] << 8;   /* fall through */
	case 5:  b += k[4];               /* fall through */
	case 4:  a += (__u32)k[3] << 24;  /* fall through */
	case 3:  a += (__u32)k[2] << 16;  /* fall through */
	case 2:  a += (__u32)k[1] << 8;   /* fall through */
	case 1:  a += k[0];
		FG_JHASH_FINAL(a, b, c);
		break;
	case 0:
		break;
	}
	return c;
}

#endif /* FLEETGATE_HASH_H */

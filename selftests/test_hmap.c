// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The control plane's hash indexes (agent/hmap.h): fg_hidx, ids keyed by
 * the caller's array, checked against fg_hmap holding the same entries
 * through random puts and deletes (tombstones, resizes, reused ids).
 */
#include <stdlib.h>
#include <string.h>

#include "hmap.h"
#include "test_progs.h"

struct key {
	__u32 a;
	__u16 b;
	__u16 pad;
};

#define N_IDS 20000

static void subtest_hidx_vs_hmap(void)
{
	struct key *keys = calloc(N_IDS, sizeof(*keys)), k;
	struct fg_hidx x;
	struct fg_hmap ref;
	unsigned int seed = 7;
	size_t i, mismatches = 0;
	int round;

	if (!ASSERT_OK_PTR(keys, "keys"))
		return;
	fg_hidx_init(&x, sizeof(struct key));
	fg_hmap_init(&ref, sizeof(struct key));
	/* Ids hold random keys out of a small space, so keys come back
	 * under other ids after a delete: what the applier does with
	 * endpoints that move. */
	for (round = 0; round < 200000; round++) {
		__u32 id = (__u32)(rand_r(&seed) % N_IDS);

		if (keys[id].a) {
			__u64 *v = fg_hmap_get(&ref, &keys[id]);

			mismatches += !v || *v != id;
			mismatches += fg_hidx_get(&x, keys, &keys[id]) != (long long)id;
			ASSERT_TRUE(fg_hidx_del(&x, keys, &keys[id]), "delete a held key");
			fg_hmap_del(&ref, &keys[id]);
			memset(&keys[id], 0, sizeof(keys[id]));
			continue;
		}
		memset(&k, 0, sizeof(k));
		k.a = 1 + (__u32)(rand_r(&seed) % (N_IDS * 2));
		k.b = (__u16)(rand_r(&seed) % 3);
		if (fg_hmap_get(&ref, &k))
			continue; /* one id per key, as the applier keeps it */
		keys[id] = k;
		if (!ASSERT_OK(fg_hidx_put(&x, keys, id), "put"))
			break;
		fg_hmap_put(&ref, &k, id);
	}
	ASSERT_EQ(mismatches, 0, "lookups that disagreed with fg_hmap");
	ASSERT_EQ(x.n, ref.n, "entries");
	for (i = fg_hmap_next(&ref, 0); i < ref.cap; i = fg_hmap_next(&ref, i + 1))
		mismatches += fg_hidx_get(&x, keys, fg_hmap_key(&ref, i)) !=
			      (long long)*fg_hmap_val(&ref, i);
	ASSERT_EQ(mismatches, 0, "every entry found under its id");
	memset(&k, 0, sizeof(k));
	k.a = N_IDS * 3;
	ASSERT_EQ(fg_hidx_get(&x, keys, &k), -1, "a key never put");
	ASSERT_FALSE(fg_hidx_del(&x, keys, &k), "deleting it");
	ASSERT_LE(x.cap * sizeof(__u32), 4 * N_IDS * sizeof(__u32) * 2, "4 bytes a slot");
	fg_hidx_fini(&x);
	fg_hmap_fini(&ref);
	free(keys);
}

FG_TEST(hmap)
{
	if (test__start_subtest("hidx_vs_hmap"))
		subtest_hidx_vs_hmap();
}

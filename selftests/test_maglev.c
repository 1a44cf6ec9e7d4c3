// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Maglev ring population: weights, the slot a flow lands in (through the
 * same hash as the XDP program), and how few flows move when the set of
 * entries changes.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "fleetgate.h"
#include "fleetgate_hash.h"
#include "maglev.h"
#include "test_progs.h"

#define NR_FLOWS 100000
#define MAX_ENTRIES 128

struct mg_set {
	struct fg_maglev_entry e[MAX_ENTRIES];
	char keys[MAX_ENTRIES][32];
	size_t n;
};

/* Backend i is "10.0.0.<i>:80" with id i: the key, not the position in the
 * array, is what the permutation follows. */
static void set_init(struct mg_set *s, const __u32 *weights, size_t n)
{
	size_t i;

	memset(s, 0, sizeof(*s));
	for (i = 0; i < n; i++) {
		snprintf(s->keys[i], sizeof(s->keys[i]), "10.0.%zu.%zu:80",
			 i / 256, i % 256);
		s->e[i].id = i;
		s->e[i].weight = weights ? weights[i] : 1;
		s->e[i].key = s->keys[i];
		s->e[i].key_len = strlen(s->keys[i]);
	}
	s->n = n;
}

static __u32 *table_new(__u32 size)
{
	return malloc((size_t)size * sizeof(__u32));
}

/* splitmix64: deterministic, so a failure reproduces. */
static __u64 prng_next(__u64 *state)
{
	__u64 z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void flow_gen(__u64 *state, struct fg_flow *f)
{
	__u64 r = prng_next(state);

	memset(f, 0, sizeof(*f));
	f->src.v4 = (__be32)r;
	f->sport = htons(1024 + (r >> 32) % (65536 - 1024));
	f->dst.v4 = htonl(0xc000020a); /* 192.0.2.10 */
	f->dport = htons(80);
	f->proto = FG_PROTO_TCP;
	f->family = FG_AF_INET;
}

/* The slot of each of NR_FLOWS flows, as the XDP program computes it. */
static __u32 *flow_slots(__u32 size, __u32 seed)
{
	__u32 *slots = malloc(NR_FLOWS * sizeof(*slots));
	__u64 st = 0x5eed;
	struct fg_flow f;
	size_t i;

	if (!slots)
		return NULL;
	for (i = 0; i < NR_FLOWS; i++) {
		flow_gen(&st, &f);
		slots[i] = fg_flow_hash(&f, seed) % size;
	}
	return slots;
}

static double pct(double part, double whole)
{
	return whole ? 100.0 * part / whole : 0.0;
}

/*
 * Slot counts must match the weights to 0.1% of the table, and the flows
 * hashed onto the table to 1 percentage point (sampling noise of 100000
 * flows is ~0.16 points at worst).
 */
static void check_distribution(const __u32 *weights, size_t n, __u32 size,
			       __u32 seed)
{
	__u64 slots_of[MAX_ENTRIES] = {}, flows_of[MAX_ENTRIES] = {};
	__u64 wsum = 0;
	__u32 *table = table_new(size), *slots = flow_slots(size, seed);
	struct mg_set s;
	size_t i;

	if (!ASSERT_OK_PTR(table, "table") || !ASSERT_OK_PTR(slots, "slots"))
		goto out;
	set_init(&s, weights, n);
	if (!ASSERT_OK(fg_maglev_build(s.e, s.n, table, size), "build"))
		goto out;
	for (i = 0; i < size && table[i] < n; i++)
		slots_of[table[i]]++;
	/* One check for the whole table, not one line per slot in -v. */
	if (!ASSERT_EQ(i, size, "slots holding a valid id"))
		goto out;
	for (i = 0; i < NR_FLOWS; i++)
		flows_of[table[slots[i]]]++;
	for (i = 0; i < n; i++)
		wsum += weights[i];
	for (i = 0; i < n; i++) {
		double want = pct(weights[i], wsum);
		double got_slots = pct(slots_of[i], size);
		double got_flows = pct(flows_of[i], NR_FLOWS);

		if (test__verbose())
			printf("  id %zu weight %u: target %.3f%% slots %.3f%% (%llu) flows %.3f%%\n",
			       i, weights[i], want, got_slots,
			       (unsigned long long)slots_of[i], got_flows);
		ASSERT_LE((long long)(1000 * (got_slots > want ? got_slots - want
							      : want - got_slots)),
			  100, "slot share off by > 0.1% (x1000)");
		ASSERT_LE((long long)(1000 * (got_flows > want ? got_flows - want
							      : want - got_flows)),
			  1000, "flow share off by > 1 point (x1000)");
	}
out:
	free(table);
	free(slots);
}

/* Counts, for the flows of `slots`, those whose backend changed from `a`
 * to `b`, split into those that had to (their backend is gone from b) and
 * the others. */
static void count_moves(const __u32 *a, const __u32 *b, const __u32 *slots,
			__u32 gone, __u64 *forced, __u64 *collateral)
{
	size_t i;

	*forced = *collateral = 0;
	for (i = 0; i < NR_FLOWS; i++) {
		__u32 x = a[slots[i]], y = b[slots[i]];

		if (x == gone)
			(*forced)++;
		else if (x != y)
			(*collateral)++;
	}
}

static void subtest_prime_check(void)
{
	ASSERT_FALSE(fg_is_prime(0), "0");
	ASSERT_FALSE(fg_is_prime(1), "1");
	ASSERT_TRUE(fg_is_prime(2), "2");
	ASSERT_TRUE(fg_is_prime(3), "3");
	ASSERT_FALSE(fg_is_prime(4), "4");
	ASSERT_FALSE(fg_is_prime(9), "9");
	ASSERT_TRUE(fg_is_prime(4093), "4093");
	ASSERT_TRUE(fg_is_prime(FG_DEFAULT_MAGLEV_SIZE), "maglev size");
	ASSERT_FALSE(fg_is_prime(65535), "65535");
	ASSERT_FALSE(fg_is_prime(65536), "65536");
	/* 65521^2: the trial division must reach the square root. */
	ASSERT_FALSE(fg_is_prime(4293001441U), "65521^2");
	ASSERT_TRUE(fg_is_prime(4294967291U), "largest 32-bit prime");
	ASSERT_FALSE(fg_is_prime(4294967295U), "2^32-1");
}

static void subtest_invalid_args(void)
{
	__u32 table[16];
	struct mg_set s;

	set_init(&s, NULL, 5);
	ASSERT_EQ(fg_maglev_build(s.e, s.n, table, 0), -EINVAL, "size 0");
	ASSERT_EQ(fg_maglev_build(s.e, s.n, table, 1), -EINVAL, "size 1");
	ASSERT_EQ(fg_maglev_build(s.e, s.n, table, 15), -EINVAL, "size 15");
	ASSERT_EQ(fg_maglev_build(s.e, s.n, table, 16), -EINVAL, "size 16");
	ASSERT_EQ(fg_maglev_build(s.e, s.n, table, 3), -EINVAL, "n > size");
	ASSERT_EQ(fg_maglev_build(s.e, s.n, NULL, 13), -EINVAL, "NULL table");
	ASSERT_EQ(fg_maglev_build(NULL, 1, table, 13), -EINVAL, "NULL entries");
	s.e[2].key = NULL;
	ASSERT_EQ(fg_maglev_build(s.e, s.n, table, 13), -EINVAL, "NULL key");
	set_init(&s, NULL, 5);
	s.e[1].id = FG_NONE;
	ASSERT_EQ(fg_maglev_build(s.e, s.n, table, 13), -EINVAL, "id FG_NONE");
	set_init(&s, NULL, 5);
	ASSERT_OK(fg_maglev_build(s.e, s.n, table, 5), "n == size");
}

static bool all_slots(const __u32 *table, __u32 size, __u32 want)
{
	__u32 i;

	for (i = 0; i < size; i++)
		if (table[i] != want)
			return false;
	return true;
}

static void subtest_empty(void)
{
	__u32 size = 4093, *table = table_new(size);
	__u32 zero[3] = {};
	struct mg_set s;

	if (!ASSERT_OK_PTR(table, "table"))
		return;
	memset(table, 0, size * sizeof(*table));
	ASSERT_OK(fg_maglev_build(NULL, 0, table, size), "build none");
	ASSERT_TRUE(all_slots(table, size, FG_NONE), "all FG_NONE");

	set_init(&s, zero, 3);
	memset(table, 0, size * sizeof(*table));
	ASSERT_OK(fg_maglev_build(s.e, s.n, table, size), "build zero weights");
	ASSERT_TRUE(all_slots(table, size, FG_NONE), "all FG_NONE");
	free(table);
}

static void subtest_single(void)
{
	__u32 size = FG_DEFAULT_MAGLEV_SIZE, *table = table_new(size);
	__u32 w[3] = { 0, 7, 0 };
	struct mg_set s;

	if (!ASSERT_OK_PTR(table, "table"))
		return;
	set_init(&s, NULL, 1);
	s.e[0].id = 42;
	ASSERT_OK(fg_maglev_build(s.e, s.n, table, size), "build");
	ASSERT_TRUE(all_slots(table, size, 42), "all 42");

	/* Zero-weight entries are left out, not given a token slot. */
	set_init(&s, w, 3);
	ASSERT_OK(fg_maglev_build(s.e, s.n, table, size), "build with zeros");
	ASSERT_TRUE(all_slots(table, size, 1), "all 1");

	/* The smallest prime: every permutation has skip 1. */
	set_init(&s, NULL, 2);
	ASSERT_OK(fg_maglev_build(s.e, s.n, table, 2), "size 2");
	ASSERT_NEQ(table[0], table[1], "one slot each");
	free(table);
}

static void subtest_order(void)
{
	__u32 size = 4093;
	__u32 *a = table_new(size), *b = table_new(size);
	__u32 w[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct fg_maglev_entry rev[8];
	struct mg_set s;
	size_t i;

	if (!ASSERT_OK_PTR(a, "a") || !ASSERT_OK_PTR(b, "b"))
		goto out;
	set_init(&s, w, 8);
	for (i = 0; i < 8; i++)
		rev[i] = s.e[7 - i];
	ASSERT_OK(fg_maglev_build(s.e, s.n, a, size), "build");
	ASSERT_OK(fg_maglev_build(rev, 8, b, size), "build reversed");
	ASSERT_MEMEQ(a, size * sizeof(*a), b, size * sizeof(*b), "same table");
out:
	free(a);
	free(b);
}

static void subtest_disruption(void)
{
	__u32 size = FG_DEFAULT_MAGLEV_SIZE;
	__u32 *t10 = table_new(size), *t9 = table_new(size);
	__u32 *t11 = table_new(size), *slots = flow_slots(size, FG_SEED_BACKEND);
	__u64 forced, collateral;
	struct mg_set s;
	size_t i;

	if (!ASSERT_OK_PTR(t10, "t10") || !ASSERT_OK_PTR(t9, "t9") ||
	    !ASSERT_OK_PTR(t11, "t11") || !ASSERT_OK_PTR(slots, "slots"))
		goto out;

	set_init(&s, NULL, 11);
	ASSERT_OK(fg_maglev_build(s.e, 10, t10, size), "build 10");
	ASSERT_OK(fg_maglev_build(s.e, 11, t11, size), "build 11");
	/* Remove backend 3 from the middle. */
	for (i = 3; i < 9; i++)
		s.e[i] = s.e[i + 1];
	ASSERT_OK(fg_maglev_build(s.e, 9, t9, size), "build 9");

	count_moves(t10, t9, slots, 3, &forced, &collateral);
	printf("  remove 1 of 10: %llu flows on it moved (%.2f%%), %llu others moved (%.3f%%)\n",
	       (unsigned long long)forced, pct(forced, NR_FLOWS),
	       (unsigned long long)collateral, pct(collateral, NR_FLOWS));
	ASSERT_GT(forced, 0, "flows on the removed backend");
	ASSERT_LE(collateral, NR_FLOWS * 2 / 100, "others moved (<= 2%)");

	/* A new backend takes 1/11 of the flows, ideally only those. */
	count_moves(t10, t11, slots, FG_NONE, &forced, &collateral);
	printf("  add 11th: %llu flows moved (%.3f%%, ideal %.3f%%)\n",
	       (unsigned long long)collateral, pct(collateral, NR_FLOWS),
	       100.0 / 11);
	ASSERT_LE(collateral, NR_FLOWS / 11 + NR_FLOWS * 2 / 100,
		  "moved on add (<= 1/11 + 2%)");
out:
	free(t10);
	free(t9);
	free(t11);
	free(slots);
}

static void subtest_weight_change(void)
{
	__u32 size = FG_DEFAULT_MAGLEV_SIZE;
	__u32 *a = table_new(size), *b = table_new(size);
	__u32 *slots = flow_slots(size, FG_SEED_BACKEND);
	__u32 w1[4] = { 1, 1, 1, 1 }, w2[4] = { 1, 1, 2, 1 };
	__u64 forced, moved;
	struct mg_set s;
	double gain = 100.0 * 2 / 5 - 100.0 / 4;

	if (!ASSERT_OK_PTR(a, "a") || !ASSERT_OK_PTR(b, "b") ||
	    !ASSERT_OK_PTR(slots, "slots"))
		goto out;
	set_init(&s, w1, 4);
	ASSERT_OK(fg_maglev_build(s.e, s.n, a, size), "build 1:1:1:1");
	set_init(&s, w2, 4);
	ASSERT_OK(fg_maglev_build(s.e, s.n, b, size), "build 1:1:2:1");
	count_moves(a, b, slots, FG_NONE, &forced, &moved);
	printf("  weight 1 -> 2 of 1 in 4: %llu flows moved (%.3f%%, share gain %.3f%%)\n",
	       (unsigned long long)moved, pct(moved, NR_FLOWS), gain);
	ASSERT_LE(pct(moved, NR_FLOWS) * 1000, (gain + 2) * 1000,
		  "moved <= gain + 2% (x1000)");
out:
	free(a);
	free(b);
	free(slots);
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void subtest_perf(void)
{
	__u32 size = FG_DEFAULT_MAGLEV_SIZE, *table = table_new(size);
	__u32 w[100];
	struct mg_set s;
	double t0, ms;
	size_t i;

	if (!ASSERT_OK_PTR(table, "table"))
		return;
	/* Mixed weights, the slower case: heavy entries probe longer. */
	for (i = 0; i < 100; i++)
		w[i] = 1 + i % 7;
	set_init(&s, w, 100);
	t0 = now_ms();
	ASSERT_OK(fg_maglev_build(s.e, s.n, table, size), "build");
	ms = now_ms() - t0;
	printf("  %u slots, 100 backends: %.2f ms\n", size, ms);
	ASSERT_LT(ms, 200, "build time (ms)");
	free(table);
}

FG_TEST(maglev)
{
	static const __u32 w11[] = { 1, 1 }, w123[] = { 1, 2, 3 };
	static const __u32 w9010[] = { 90, 10 };

	if (test__start_subtest("prime_check"))
		subtest_prime_check();
	if (test__start_subtest("invalid_args"))
		subtest_invalid_args();
	if (test__start_subtest("empty"))
		subtest_empty();
	if (test__start_subtest("single"))
		subtest_single();
	if (test__start_subtest("order"))
		subtest_order();
	if (test__start_subtest("distribution_1_1"))
		check_distribution(w11, 2, FG_DEFAULT_MAGLEV_SIZE, FG_SEED_BACKEND);
	if (test__start_subtest("distribution_1_2_3"))
		check_distribution(w123, 3, FG_DEFAULT_MAGLEV_SIZE, FG_SEED_BACKEND);
	if (test__start_subtest("distribution_90_10"))
		check_distribution(w9010, 2, FG_DEFAULT_MAGLEV_SIZE, FG_SEED_BACKEND);
	if (test__start_subtest("cluster_ring_90_10"))
		check_distribution(w9010, 2, 4093, FG_SEED_CLUSTER);
	if (test__start_subtest("disruption"))
		subtest_disruption();
	if (test__start_subtest("weight_change"))
		subtest_weight_change();
	if (test__start_subtest("perf"))
		subtest_perf();
}

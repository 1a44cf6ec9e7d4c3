/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * A small test_progs-style harness (modelled on the kernel's
 * tools/testing/selftests/bpf/test_progs).
 *
 *   FG_TEST(maglev_distribution)
 *   {
 *           if (test__start_subtest("weights_1_1")) {
 *                   ASSERT_EQ(got, want, "slots");
 *           }
 *   }
 *
 * Every test and subtest has a name "test" or "test/subtest"; the runner
 * selects them by glob (-t GLOB, repeatable; -l lists). Output printed while
 * a test runs is captured and shown only when it fails (or with -v). The run
 * ends with the line "N passed, M failed" (", K skipped" when some skipped).
 * ASSERT_* print the expression, the actual and the expected values, and
 * return true when the check held, so a test can stop early:
 *         if (!ASSERT_OK(err, "load")) return;
 */
#ifndef FG_TEST_PROGS_H
#define FG_TEST_PROGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>

typedef void (*fg_test_fn)(void);

struct fg_test_def {
	const char *name;
	fg_test_fn fn;
	struct fg_test_def *next;
};

void fg_test_register(struct fg_test_def *def);

#define FG_TEST(tname)                                                        \
	static void test_##tname(void);                                       \
	static struct fg_test_def fg_test_def_##tname = {                     \
		.name = #tname, .fn = test_##tname };                         \
	__attribute__((constructor)) static void fg_test_reg_##tname(void)    \
	{                                                                     \
		fg_test_register(&fg_test_def_##tname);                       \
	}                                                                     \
	static void test_##tname(void)

/* Starts a subtest; returns false when the selection excludes it. The
 * previous subtest (if any) of the same test is finished first. */
bool test__start_subtest(const char *name);
/* Marks the current (sub)test skipped, with a reason printed always. */
void test__skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Records a failure (the ASSERT_* macros call this). */
void test__fail(void);
/* True when running with -v. */
bool test__verbose(void);
/* Path of a scratch directory unique to this run (removed at exit). */
const char *test__tmpdir(void);
/* Name prefix unique to this run, for netns/veth/pin names ("fgt12345"). */
const char *test__prefix(void);

#define _CHECK(condition, tag, format...)                                     \
	({                                                                    \
		bool ___ok = !(condition);                                    \
		if (!___ok) {                                                 \
			test__fail();                                         \
			fprintf(stdout, "%s:%d: FAIL %s: ", __func__,         \
				__LINE__, tag);                               \
			fprintf(stdout, ##format);                            \
			fprintf(stdout, "\n");                                \
		} else if (test__verbose()) {                                 \
			fprintf(stdout, "%s:%d: ok %s\n", __func__, __LINE__, \
				tag);                                         \
		}                                                             \
		___ok;                                                        \
	})

#define ASSERT_TRUE(actual, name)                                             \
	_CHECK(!(actual), (name), "unexpected %s: got FALSE", #actual)
#define ASSERT_FALSE(actual, name)                                            \
	_CHECK((actual), (name), "unexpected %s: got TRUE", #actual)

#define _ASSERT_CMP(actual, expected, op, name)                               \
	({                                                                    \
		long long ___act = (long long)(actual);                       \
		long long ___exp = (long long)(expected);                     \
		_CHECK(!(___act op ___exp), (name),                           \
		       "unexpected %s: actual %lld (0x%llx) " #op             \
		       " expected %lld (0x%llx) does not hold",               \
		       #actual, ___act, (unsigned long long)___act, ___exp,   \
		       (unsigned long long)___exp);                           \
	})

#define ASSERT_EQ(actual, expected, name) _ASSERT_CMP(actual, expected, ==, name)
#define ASSERT_NEQ(actual, expected, name) _ASSERT_CMP(actual, expected, !=, name)
#define ASSERT_LT(actual, expected, name) _ASSERT_CMP(actual, expected, <, name)
#define ASSERT_LE(actual, expected, name) _ASSERT_CMP(actual, expected, <=, name)
#define ASSERT_GT(actual, expected, name) _ASSERT_CMP(actual, expected, >, name)
#define ASSERT_GE(actual, expected, name) _ASSERT_CMP(actual, expected, >=, name)

#define ASSERT_OK(res, name)                                                  \
	({                                                                    \
		long long ___res = (long long)(res);                          \
		_CHECK(___res != 0, (name), "unexpected error: %lld (%s)",    \
		       ___res, ___res < 0 ? strerror((int)-___res)            \
					  : strerror(errno));                 \
	})

#define ASSERT_ERR(res, name)                                                 \
	({                                                                    \
		long long ___res = (long long)(res);                          \
		_CHECK(___res >= 0, (name), "unexpected success: %lld",       \
		       ___res);                                               \
	})

#define ASSERT_OK_PTR(ptr, name)                                              \
	_CHECK((ptr) == NULL, (name), "unexpected NULL pointer %s", #ptr)

#define ASSERT_STREQ(actual, expected, name)                                  \
	({                                                                    \
		const char *___act = (actual);                                \
		const char *___exp = (expected);                              \
		_CHECK(!___act || !___exp || strcmp(___act, ___exp), (name),  \
		       "unexpected %s: actual '%s' != expected '%s'",         \
		       #actual, ___act ? ___act : "(null)",                   \
		       ___exp ? ___exp : "(null)");                           \
	})

/* Compares two byte buffers; on mismatch prints both as hex with the first
 * differing offset. */
bool fg_assert_memeq(const void *actual, size_t actual_len,
		     const void *expected, size_t expected_len,
		     const char *name, const char *func, int line);
#define ASSERT_MEMEQ(actual, actual_len, expected, expected_len, name)        \
	fg_assert_memeq(actual, actual_len, expected, expected_len, name,     \
			__func__, __LINE__)

/* Moves the calling thread into a fresh network namespace with only
 * loopback (up), so a test's sockets and the processes it starts can't
 * meet anything outside it. Returns a handle for test__netns_restore(), or
 * -errno (the test should then skip). */
int test__netns_private(void);
void test__netns_restore(int handle);

/* Runs a shell command, capturing its output into the test's log; returns
 * its exit status (or -errno). Used by the end-to-end tests. */
int fg_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif

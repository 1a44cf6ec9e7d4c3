// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * agent/fg_regex.c: user patterns in the ingress-nginx (PCRE2) dialect, their
 * compile errors, capture groups, bounded work on catastrophic patterns,
 * and matching from several threads at once. Every table runs twice: JIT
 * (where available) and interpreted, which must agree.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fg_regex.h"
#include "test_progs.h"

static const unsigned modes[] = { 0, FG_REGEX_F_NO_JIT };
static const char *const mode_names[] = { "jit", "interp" };
#define N_MODES 2

static struct fg_regex *compile_ok(const char *pattern, unsigned flags, const char *tag)
{
	char err[FG_REGEX_ERR_LEN];
	struct fg_regex *re = NULL;
	char t[256];
	int rc;

	snprintf(t, sizeof(t), "%s: compile '%s'", tag, pattern);
	rc = fg_regex_compile_flags(&re, pattern, flags, err, sizeof(err));
	if (!_CHECK(rc, t, "rc %d: %s", rc, err))
		return NULL;
	ASSERT_STREQ(err, "", t);
	if (flags & FG_REGEX_F_NO_JIT)
		ASSERT_FALSE(fg_regex_jit(re), t);
	return re;
}

/* ------------------------------------------------------------------ */

static void subtest_dialect(void)
{
	static const struct {
		const char *pattern, *subject;
		bool match;
	} cases[] = {
		/* The examples of the issue. */
		{ "^v\\d+$", "v12", true },
		{ "^v\\d+$", "v1a", false },
		{ "^v\\d+$", "v", false },
		{ "^v\\d+$", "xv12", false },
		{ "(?i)^gray$", "GRAY", true },
		{ "(?i)^gray$", "gRaY", true },
		{ "(?i)^gray$", "grayish", false },
		/* Unanchored search, like ngx.re.match. */
		{ "gray", "light-gray-2", true },
		{ "gray", "GRAY", false },
		{ "^gray", "light-gray", false },
		{ "gray$", "gray-2", false },
		{ "", "anything", true },
		{ "", "", true },
		{ "^$", "", true },
		{ "^$", "x", false },
		/* PCRE classes and escapes POSIX ERE lacks. */
		{ "^\\w+@\\w+\\.com$", "a_b@example.com", true },
		{ "\\bbeta\\b", "x beta y", true },
		{ "\\bbeta\\b", "alphabeta", false },
		{ "^\\s*on\\s*$", "  on ", true },
		{ "^[[:digit:]]{3}$", "123", true },
		{ "^\\x41\\x{42}$", "AB", true },
		/* Lazy, possessive, non-capturing, lookarounds, backreferences. */
		{ "^a.*?b$", "axxbxb", true },
		{ "^a++b$", "aaab", true },
		{ "^(?:ab)+$", "ababab", true },
		{ "^(?:ab)+$", "ababa", false },
		{ "^user-(?!test)\\w+$", "user-alice", true },
		{ "^user-(?!test)\\w+$", "user-tester", false },
		{ "(?<=v)2", "v2", true },
		{ "(?<=v)2", "x2", false },
		{ "^(\\w)\\1$", "aa", true },
		{ "^(\\w)\\1$", "ab", false },
		{ "^(?<ch>x)\\k<ch>$", "xx", true },
		/* Alternation and bounded repeats. */
		{ "^(canary|beta)$", "beta", true },
		{ "^(canary|beta)$", "betamax", false },
		{ "^[a-f0-9]{8}$", "deadbeef", true },
		{ "^[a-f0-9]{8}$", "deadbee", false },
		/* Dot does not match a newline; (?s) makes it. */
		{ "^a.b$", "a\nb", false },
		{ "(?s)^a.b$", "a\nb", true },
		/* Bytes: no UTF by default, so invalid UTF-8 is just bytes. */
		{ "^\\xff+$", "\xff\xff", true },
		{ "^caf.$", "caf\xc3", true },
		/* (*UTF) in the pattern: a subject that is not UTF-8 does not
		 * match (an error, counted as no match). */
		{ "(*UTF)^caf\\x{e9}$", "caf\xc3\xa9", true },
		{ "(*UTF)^caf", "caf\xff", false },
	};
	size_t i, m;

	for (m = 0; m < N_MODES; m++) {
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct fg_regex *re = compile_ok(cases[i].pattern, modes[m], mode_names[m]);
			char t[256];

			if (!re)
				continue;
			snprintf(t, sizeof(t), "%s: '%s' on '%s'", mode_names[m], cases[i].pattern,
				 cases[i].subject);
			ASSERT_EQ(fg_regex_match(re, cases[i].subject, strlen(cases[i].subject)),
				  cases[i].match, t);
			fg_regex_free(re);
		}
	}
	/* Why the last one is no match. */
	{
		struct fg_regex *re = compile_ok("(*UTF)^caf", 0, "utf");
		size_t ov[2];

		if (re)
			ASSERT_EQ(fg_regex_match_groups(re, "caf\xff", 4, ov, 1), -EILSEQ,
				  "not UTF-8");
		fg_regex_free(re);
	}
}

/* The subject is (pointer, length): bytes past len are not looked at, a
 * NUL inside is an ordinary byte. */
static void subtest_length_not_nul(void)
{
	static const char buf[] = "v12abc";
	static const char with_nul[] = { 'a', '\0', 'b' };
	struct fg_regex *re;
	size_t m;

	for (m = 0; m < N_MODES; m++) {
		const char *tag = mode_names[m];

		re = compile_ok("^v\\d+$", modes[m], tag);
		if (re) {
			ASSERT_TRUE(fg_regex_match(re, buf, 3), tag);
			ASSERT_FALSE(fg_regex_match(re, buf, 4), tag);
			ASSERT_FALSE(fg_regex_match(re, buf, 1), tag);
			fg_regex_free(re);
		}
		re = compile_ok("^a\\x00b$", modes[m], tag);
		if (re) {
			ASSERT_TRUE(fg_regex_match(re, with_nul, sizeof(with_nul)), tag);
			ASSERT_FALSE(fg_regex_match(re, with_nul, 1), tag);
			fg_regex_free(re);
		}
		/* An empty subject may be NULL. */
		re = compile_ok("^$", modes[m], tag);
		if (re) {
			ASSERT_TRUE(fg_regex_match(re, NULL, 0), tag);
			fg_regex_free(re);
		}
	}
}

static void subtest_compile_errors(void)
{
	static const struct {
		const char *pattern, *err;
	} cases[] = {
		{ "(abc", "missing closing parenthesis at offset 4" },
		{ "(", "missing closing parenthesis at offset 1" },
		{ "abc)", "unmatched closing parenthesis at offset 3" },
		{ "^[z-a]", "range out of order in character class at offset 4" },
		{ "a{2,1}", "numbers out of order in {} quantifier at offset 5" },
		{ "*a", "quantifier does not follow a repeatable item at offset 0" },
		{ "[abc", "missing terminating ] for character class at offset 4" },
		{ "\\", "\\ at end of pattern at offset 1" },
		{ "(?<n>a)(?<n>b)",
		  "two named subpatterns have the same name (PCRE2_DUPNAMES not set) at offset 12" },
		{ "\\1(a)x\\2", "reference to non-existent subpattern at offset 7" },
	};
	char err[FG_REGEX_ERR_LEN], small[12];
	struct fg_regex *re;
	size_t i;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *tag = cases[i].pattern;

		re = (struct fg_regex *)&re; /* poisoned: must come back NULL */
		rc = fg_regex_compile(&re, cases[i].pattern, err, sizeof(err));
		ASSERT_EQ(rc, -EINVAL, tag);
		ASSERT_TRUE(re == NULL, tag);
		ASSERT_STREQ(err, cases[i].err, tag);
	}

	/* A short buffer gets a truncated, terminated message; none is fine. */
	rc = fg_regex_compile(&re, "(abc", small, sizeof(small));
	ASSERT_EQ(rc, -EINVAL, "small buffer");
	ASSERT_STREQ(small, "missing clo", "small buffer");
	ASSERT_EQ(fg_regex_compile(&re, "(abc", NULL, 0), -EINVAL, "no buffer");
	ASSERT_EQ(fg_regex_compile(&re, NULL, err, sizeof(err)), -EINVAL, "NULL pattern");

	/* Success clears the message. */
	strcpy(err, "stale");
	if (ASSERT_OK(fg_regex_compile(&re, "ok", err, sizeof(err)), "ok")) {
		ASSERT_STREQ(err, "", "cleared");
		ASSERT_STREQ(fg_regex_pattern(re), "ok", "pattern kept");
		ASSERT_EQ(fg_regex_capture_count(re), 0, "no groups");
		fg_regex_free(re);
	}
	fg_regex_free(NULL);
}

/* ------------------------------------------------------------------ */

static void subtest_groups(void)
{
	size_t ov[2 * 32];
	struct fg_regex *re;
	char pat[256];
	size_t m, i;
	int rc;

	for (m = 0; m < N_MODES; m++) {
		const char *tag = mode_names[m];
		const char *s = "GET /api/v2/users";

		re = compile_ok("/api/(v(\\d+))/(\\w+)(/x)?", modes[m], tag);
		if (!re)
			continue;
		ASSERT_EQ(fg_regex_capture_count(re), 4, tag);
		memset(ov, 0xab, sizeof(ov));
		rc = fg_regex_match_groups(re, s, strlen(s), ov, 8);
		if (ASSERT_EQ(rc, 5, tag)) {
			ASSERT_EQ(ov[0], 4, "whole start");
			ASSERT_EQ(ov[1], 17, "whole end");
			ASSERT_EQ(ov[2], 9, "$1 start");   /* v2 */
			ASSERT_EQ(ov[3], 11, "$1 end");
			ASSERT_EQ(ov[4], 10, "$2 start");  /* 2 */
			ASSERT_EQ(ov[5], 11, "$2 end");
			ASSERT_EQ(ov[6], 12, "$3 start");  /* users */
			ASSERT_EQ(ov[7], 17, "$3 end");
			ASSERT_EQ(ov[8], FG_REGEX_UNSET, "$4 unset");
			ASSERT_EQ(ov[9], FG_REGEX_UNSET, "$4 unset");
			ASSERT_EQ(ov[10], 0xababababababababULL, "nothing past the groups");
		}
		/* Fewer pairs than groups: as many as asked. */
		memset(ov, 0xab, sizeof(ov));
		ASSERT_EQ(fg_regex_match_groups(re, s, strlen(s), ov, 2), 2, tag);
		ASSERT_EQ(ov[2], 9, "$1 start");
		ASSERT_EQ(ov[4], 0xababababababababULL, "nothing past max_pairs");
		/* No match, bad arguments. */
		ASSERT_EQ(fg_regex_match_groups(re, "GET /", 5, ov, 8), 0, tag);
		ASSERT_EQ(fg_regex_match_groups(re, s, strlen(s), ov, 0), -EINVAL, tag);
		ASSERT_EQ(fg_regex_match_groups(re, s, strlen(s), NULL, 1), -EINVAL, tag);
		fg_regex_free(re);

		/* More groups than a thread's cached match data holds. */
		strcpy(pat, "^");
		for (i = 0; i < 20; i++)
			strcat(pat, "(.)");
		re = compile_ok(pat, modes[m], tag);
		if (!re)
			continue;
		s = "abcdefghijklmnopqrstu";
		rc = fg_regex_match_groups(re, s, strlen(s), ov, 32);
		if (ASSERT_EQ(rc, 21, tag)) {
			ASSERT_EQ(ov[2 * 20], 19, "$20 start");
			ASSERT_EQ(ov[2 * 20 + 1], 20, "$20 end");
		}
		ASSERT_EQ(fg_regex_match_groups(re, s, strlen(s), ov, 18), 18, tag);
		ASSERT_EQ(ov[2 * 17], 16, "$17 start");
		ASSERT_TRUE(fg_regex_match(re, s, strlen(s)), tag);
		fg_regex_free(re);
	}
}

/* ------------------------------------------------------------------ */

/* Catastrophic backtracking: decided as "no match" by the limits (the test
 * would run for hours without them), JIT or not. */
static void subtest_catastrophic(void)
{
	static const struct {
		const char *pattern;
		bool limit; /* stopped by the limits (else PCRE2 proves no match) */
	} patterns[] = {
		{ "(a+)+$", true },
		{ "^(a|aa)+$", true },
		{ "^(\\w+\\s?)*$", true },
		{ "(.*a){20}$", true },
		{ "(a*)*b", false }, /* no 'b' in the subject: refused without trying */
	};
	size_t ov[4], m, i, n = 64 * 1024;
	char *long_s = malloc(n);
	char s[64];

	if (!ASSERT_OK_PTR(long_s, "malloc"))
		return;
	memset(s, 0, sizeof(s)); /* the JIT's vector scans read whole words */
	memset(s, 'a', 40);
	s[40] = '!';
	s[41] = '\0';
	/* Runs of 15 a's, each stopped by '!': a fixed per-position limit
	 * would let every start position spend nearly all of it. */
	for (i = 0; i < n; i++)
		long_s[i] = i % 16 == 15 ? '!' : 'a';
	for (m = 0; m < N_MODES; m++) {
		for (i = 0; i < sizeof(patterns) / sizeof(patterns[0]); i++) {
			const char *p = patterns[i].pattern;
			struct fg_regex *re = compile_ok(p, modes[m], mode_names[m]);
			char t[128];

			if (!re)
				continue;
			snprintf(t, sizeof(t), "%s: '%s' on 40 a's and '!'", mode_names[m], p);
			ASSERT_FALSE(fg_regex_match(re, s, strlen(s)), t);
			ASSERT_EQ(fg_regex_match_groups(re, s, strlen(s), ov, 2),
				  patterns[i].limit ? -E2BIG : 0, t);
			snprintf(t, sizeof(t), "%s: '%s' on 64 KiB", mode_names[m], p);
			ASSERT_FALSE(fg_regex_match(re, long_s, n), t);
			fg_regex_free(re);
		}
	}
	free(long_s);
}

/* The limits do not get in the way of ordinary patterns on long values. */
static void subtest_long_subjects(void)
{
	static const struct {
		const char *pattern;
		bool match;
	} cases[] = {
		{ ".*gray.*", true },   /* one start position, ~2n steps */
		{ "gray$", true },      /* n start positions, few steps each */
		{ "(gr|bl)(a|e)y$", true },
		{ "(?i)GRAY$", true },
		{ "^(\\w+;)*gray$", true },
		{ "blue", false },
	};
	size_t n = 32 * 1024, i, m, ov[2];
	char *s = malloc(n);

	if (!ASSERT_OK_PTR(s, "malloc"))
		return;
	for (i = 0; i < n; i++)
		s[i] = i % 8 == 7 ? ';' : 'a' + i % 7;
	memcpy(s + n - 5, ";gray", 5);
	for (m = 0; m < N_MODES; m++) {
		for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
			struct fg_regex *re = compile_ok(cases[i].pattern, modes[m], mode_names[m]);
			char t[128];

			if (!re)
				continue;
			snprintf(t, sizeof(t), "%s: '%s' on 32 KiB", mode_names[m], cases[i].pattern);
			ASSERT_EQ(fg_regex_match(re, s, n), cases[i].match, t);
			/* Decided, not stopped by a limit. */
			ASSERT_EQ(fg_regex_match_groups(re, s, n, ov, 1), cases[i].match ? 1 : 0, t);
			fg_regex_free(re);
		}
	}
	free(s);
}

/* A copy matches like the original and outlives it. */
static void subtest_dup(void)
{
	struct fg_regex *re, *copy = NULL;
	size_t m;

	for (m = 0; m < N_MODES; m++) {
		bool jit;

		re = compile_ok("(?i)^v(\\d+)$", modes[m], mode_names[m]);
		if (!re)
			continue;
		jit = fg_regex_jit(re);
		if (ASSERT_OK(fg_regex_dup(&copy, re), "dup")) {
			fg_regex_free(re);
			ASSERT_STREQ(fg_regex_pattern(copy), "(?i)^v(\\d+)$", "pattern");
			ASSERT_EQ(fg_regex_capture_count(copy), 1, "groups");
			ASSERT_EQ(fg_regex_jit(copy), jit, "jit state");
			ASSERT_TRUE(fg_regex_match(copy, "V42", 3), "copy matches");
			ASSERT_FALSE(fg_regex_match(copy, "V4x", 3), "copy does not");
			fg_regex_free(copy);
		} else {
			fg_regex_free(re);
		}
	}
}

/* ------------------------------------------------------------------ */

struct worker {
	const struct fg_regex *re;
	int ok, bad;
};

static void *worker_run(void *arg)
{
	struct worker *w = arg;
	char v[32];
	int i;

	for (i = 0; i < 20000; i++) {
		size_t ov[4];
		int n = snprintf(v, sizeof(v), i % 3 ? "v%d" : "v%dx", i);
		bool want = i % 3;

		if (fg_regex_match(w->re, v, (size_t)n) == want &&
		    fg_regex_match_groups(w->re, v, (size_t)n, ov, 2) == (want ? 2 : 0) &&
		    (!want || (ov[2] == 1 && ov[3] == (size_t)n)))
			w->ok++;
		else
			w->bad++;
	}
	return NULL;
}

/* One compiled pattern, several threads matching at once (each with its
 * own scratch, freed when it exits: run under valgrind to see). */
static void subtest_threads(void)
{
	struct worker w[4];
	pthread_t t[4];
	struct fg_regex *re;
	int i, started = 0;

	re = compile_ok("^v(\\d+)$", 0, "threads");
	if (!re)
		return;
	for (i = 0; i < 4; i++) {
		w[i] = (struct worker){ .re = re };
		if (ASSERT_OK(-pthread_create(&t[i], NULL, worker_run, &w[i]), "pthread_create"))
			started++;
		else
			break;
	}
	for (i = 0; i < started; i++) {
		pthread_join(t[i], NULL);
		ASSERT_EQ(w[i].bad, 0, "wrong results");
		ASSERT_EQ(w[i].ok, 20000, "right results");
	}
	fg_regex_free(re);
}

FG_TEST(regex)
{
	struct fg_regex *re;

	if (test__verbose() && !fg_regex_compile(&re, "x", NULL, 0)) {
		printf("PCRE2 JIT: %s\n", fg_regex_jit(re) ? "yes" : "no (interpreted)");
		fg_regex_free(re);
	}
	if (test__start_subtest("dialect"))
		subtest_dialect();
	if (test__start_subtest("length_not_nul"))
		subtest_length_not_nul();
	if (test__start_subtest("compile_errors"))
		subtest_compile_errors();
	if (test__start_subtest("groups"))
		subtest_groups();
	if (test__start_subtest("catastrophic"))
		subtest_catastrophic();
	if (test__start_subtest("long_subjects"))
		subtest_long_subjects();
	if (test__start_subtest("dup"))
		subtest_dup();
	if (test__start_subtest("threads"))
		subtest_threads();
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * User-supplied regular expressions with PCRE2: see regex.h for the
 * dialect, the limits and the threading rules.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcre2.h>

#include "fg_regex.h"

/* Pairs in a thread's cached match data: enough for fg_regex_match (which
 * needs one) and for rewrite targets ($0..$9 and a few more). */
#define CACHED_PAIRS 16

struct fg_regex {
	pcre2_code *code;
	char *pattern;
	uint32_t captures;
	bool jit;
	bool anchored;  /* one start position */
	bool startline; /* start of subject and after each newline only */
};

/* ---------- per-thread match scratch ---------- */

struct scratch {
	pcre2_match_data *md;       /* CACHED_PAIRS pairs */
	pcre2_match_context *mctx;  /* limits set per call */
	pcre2_jit_stack *jit_stack; /* NULL: PCRE2's 32 KiB on the machine stack */
};

static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static bool scratch_key_ok;

static void scratch_free(void *arg)
{
	struct scratch *s = arg;

	if (!s)
		return;
	pcre2_match_data_free(s->md);
	pcre2_match_context_free(s->mctx);
	pcre2_jit_stack_free(s->jit_stack);
	free(s);
}

static void scratch_key_init(void)
{
	scratch_key_ok = !pthread_key_create(&scratch_key, scratch_free);
}

static struct scratch *scratch_new(void)
{
	struct scratch *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->md = pcre2_match_data_create(CACHED_PAIRS, NULL);
	s->mctx = pcre2_match_context_create(NULL);
	if (!s->md || !s->mctx) {
		scratch_free(s);
		return NULL;
	}
	pcre2_set_depth_limit(s->mctx, FG_REGEX_DEPTH_LIMIT);
	pcre2_set_heap_limit(s->mctx, FG_REGEX_HEAP_LIMIT_KB);
	/* As deep as the interpreter may go; without it (no JIT, or no
	 * memory) the JIT uses its default, and deep patterns give up
	 * sooner. Reserved, touched only as deep as a match goes. */
	s->jit_stack = pcre2_jit_stack_create(32 * 1024, FG_REGEX_JIT_STACK_KB * 1024, NULL);
	if (s->jit_stack)
		pcre2_jit_stack_assign(s->mctx, NULL, s->jit_stack);
	return s;
}

/* The calling thread's scratch, or NULL (then *own says the caller got a
 * private one to free, or none could be had). */
static struct scratch *scratch_get(bool *own)
{
	struct scratch *s;

	*own = false;
	pthread_once(&scratch_once, scratch_key_init);
	if (scratch_key_ok) {
		s = pthread_getspecific(scratch_key);
		if (s)
			return s;
		s = scratch_new();
		if (s && !pthread_setspecific(scratch_key, s))
			return s;
	} else {
		s = scratch_new();
	}
	*own = s != NULL;
	return s;
}

/* ---------- compile ---------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* What pcre2_match will try, from the compiled pattern: see budget(). */
static void study(struct fg_regex *re)
{
	uint32_t opts = 0, first = 0;

	pcre2_pattern_info(re->code, PCRE2_INFO_CAPTURECOUNT, &re->captures);
	pcre2_pattern_info(re->code, PCRE2_INFO_ALLOPTIONS, &opts);
	pcre2_pattern_info(re->code, PCRE2_INFO_FIRSTCODETYPE, &first);
	re->anchored = opts & PCRE2_ANCHORED;
	/* (*NO_START_OPT) turns off the skip to line starts. */
	re->startline = first == 2 && !(opts & PCRE2_NO_START_OPTIMIZE);
}

static void jit_and_study(struct fg_regex *re, unsigned flags)
{
	/* No JIT (not built in, no executable memory, ...): interpreted,
	 * same results. */
	re->jit = !(flags & FG_REGEX_F_NO_JIT) && !pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE);
	study(re);
}

int fg_regex_compile_flags(struct fg_regex **out, const char *pattern, unsigned flags,
			   char *err, size_t errlen)
{
	struct fg_regex *re;
	PCRE2_SIZE erroff = 0;
	int errcode = 0;

	*out = NULL;
	set_err(err, errlen, "%s", "");
	if (!pattern) {
		set_err(err, errlen, "no pattern");
		return -EINVAL;
	}
	re = calloc(1, sizeof(*re));
	if (!re || !(re->pattern = strdup(pattern))) {
		free(re);
		set_err(err, errlen, "out of memory");
		return -ENOMEM;
	}
	re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
				 (flags & FG_REGEX_F_CASELESS ? PCRE2_CASELESS : 0) |
				 (flags & FG_REGEX_F_ANCHORED ? PCRE2_ANCHORED : 0),
				 &errcode, &erroff, NULL);
	if (!re->code) {
		PCRE2_UCHAR msg[FG_REGEX_ERR_LEN];
		int rc = pcre2_get_error_message(errcode, msg, sizeof(msg));

		if (rc < 0 && rc != PCRE2_ERROR_NOMEMORY) /* NOMEMORY: truncated, fine */
			snprintf((char *)msg, sizeof(msg), "error %d", errcode);
		fg_regex_free(re);
		if (errcode == PCRE2_ERROR_HEAP_FAILED) {
			set_err(err, errlen, "out of memory");
			return -ENOMEM;
		}
		set_err(err, errlen, "%s at offset %zu", (const char *)msg, (size_t)erroff);
		return -EINVAL;
	}
	jit_and_study(re, flags);
	*out = re;
	return 0;
}

int fg_regex_compile(struct fg_regex **out, const char *pattern, char *err, size_t errlen)
{
	return fg_regex_compile_flags(out, pattern, 0, err, errlen);
}

int fg_regex_dup(struct fg_regex **out, const struct fg_regex *re)
{
	struct fg_regex *c;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->pattern = strdup(re->pattern);
	/* The JIT code is not copied: compiled again for the copy. */
	c->code = pcre2_code_copy(re->code);
	if (!c->pattern || !c->code) {
		fg_regex_free(c);
		return -ENOMEM;
	}
	jit_and_study(c, re->jit ? 0 : FG_REGEX_F_NO_JIT);
	*out = c;
	return 0;
}

void fg_regex_free(struct fg_regex *re)
{
	if (!re)
		return;
	pcre2_code_free(re->code);
	free(re->pattern);
	free(re);
}

const char *fg_regex_pattern(const struct fg_regex *re)
{
	return re->pattern;
}

int fg_regex_capture_count(const struct fg_regex *re)
{
	return (int)re->captures;
}

bool fg_regex_jit(const struct fg_regex *re)
{
	return re->jit;
}

/* ---------- match ---------- */

/* PCRE2's match limit is per start position: share the budget among the
 * positions this pattern can be tried at. */
static uint32_t budget(const struct fg_regex *re, const char *subject, size_t len)
{
	size_t positions = len + 1, i;

	if (re->anchored) {
		positions = 1;
	} else if (re->startline) {
		/* Any newline convention the pattern may pick: count CR and LF. */
		positions = 1;
		for (i = 0; i < len; i++)
			positions += subject[i] == '\n' || subject[i] == '\r';
	}
	if (positions > FG_REGEX_MATCH_BUDGET / FG_REGEX_MIN_LIMIT)
		return FG_REGEX_MIN_LIMIT;
	return FG_REGEX_MATCH_BUDGET / (uint32_t)positions;
}

static int match_errno(int rc)
{
	switch (rc) {
	case PCRE2_ERROR_MATCHLIMIT:
	case PCRE2_ERROR_DEPTHLIMIT:
	case PCRE2_ERROR_HEAPLIMIT:
	case PCRE2_ERROR_JIT_STACKLIMIT:
		return -E2BIG;
	case PCRE2_ERROR_NOMEMORY:
		return -ENOMEM;
	default:
		/* The subject is not UTF-8 and a (*UTF) pattern wants it. */
		if (rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21)
			return -EILSEQ;
		return -EINVAL;
	}
}

static int run(const struct fg_regex *re, const char *subject, size_t len, size_t *ovector,
	       int max_pairs)
{
	pcre2_match_data *md = NULL, *own_md = NULL;
	struct scratch *s;
	uint32_t want, n, i;
	PCRE2_SIZE *ov;
	bool own;
	int rc;

	if (!re || max_pairs < 1)
		return -EINVAL;
	want = re->captures + 1;
	if (!subject) {
		if (len)
			return -EINVAL;
		subject = ""; /* PCRE2 refuses NULL even with length 0 */
	}
	s = scratch_get(&own);
	if (!s)
		return -ENOMEM;
	if (ovector && (uint32_t)max_pairs > CACHED_PAIRS && want > CACHED_PAIRS) {
		own_md = pcre2_match_data_create(want < (uint32_t)max_pairs ? want
									     : (uint32_t)max_pairs,
						 NULL);
		if (!own_md) {
			rc = -ENOMEM;
			goto out;
		}
	}
	md = own_md ? own_md : s->md;
	pcre2_set_match_limit(s->mctx, budget(re, subject, len));
	rc = pcre2_match(re->code, (PCRE2_SPTR)subject, len, 0, 0, md, s->mctx);
	if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL) {
		rc = 0;
		goto out;
	}
	if (rc < 0) {
		rc = match_errno(rc);
		goto out;
	}
	if (!ovector) {
		rc = 1;
		goto out;
	}
	/* rc == 0: every pair of md was set; otherwise rc pairs were. */
	n = rc ? (uint32_t)rc : pcre2_get_ovector_count(md);
	ov = pcre2_get_ovector_pointer(md);
	if (want > (uint32_t)max_pairs)
		want = (uint32_t)max_pairs;
	for (i = 0; i < want; i++) {
		bool set = i < n && ov[2 * i] != PCRE2_UNSET;

		ovector[2 * i] = set ? (size_t)ov[2 * i] : FG_REGEX_UNSET;
		ovector[2 * i + 1] = set ? (size_t)ov[2 * i + 1] : FG_REGEX_UNSET;
	}
	rc = (int)want;
out:
	pcre2_match_data_free(own_md);
	if (own)
		scratch_free(s);
	return rc;
}

bool fg_regex_match(const struct fg_regex *re, const char *subject, size_t len)
{
	return run(re, subject, len, NULL, 1) > 0;
}

int fg_regex_match_groups(const struct fg_regex *re, const char *subject, size_t len,
			  size_t *ovector, int max_pairs)
{
	if (!ovector)
		return -EINVAL;
	return run(re, subject, len, ovector, max_pairs);
}

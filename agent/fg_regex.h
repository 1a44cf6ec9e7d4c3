/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Regular expressions taken from users (annotations such as
 * canary-by-header-pattern; later use-regex paths and rewrite targets):
 * one module, one dialect, one set of limits.
 *
 * Dialect: PCRE2 (8-bit, no UTF unless the pattern says (*UTF)), the
 * dialect ingress-nginx evaluates with ngx.re.match: `\d`, `\w`, `\b`,
 * `(?i)`, lazy and possessive quantifiers, lookarounds all work. Matching is
 * an unanchored search (like ngx.re.match): a pattern that must match the
 * whole subject says so with `^...$`. Patterns are JIT-compiled where
 * PCRE2's JIT is available and interpreted otherwise; the two give the same
 * results (except where one of them runs into the limits below first).
 *
 * Bounded work (a hostile or careless pattern such as `(a+)+$` cannot stall
 * the caller): PCRE2's match limit counts backtracking steps per start
 * position, so one fixed limit would still allow limit x subject length
 * steps. Each match is instead given a budget of FG_REGEX_MATCH_BUDGET steps
 * shared by the start positions it may try (one when the pattern is
 * anchored, one per line for a leading `.*`, otherwise length + 1), with at
 * least FG_REGEX_MIN_LIMIT steps per position; recursion is limited to
 * FG_REGEX_DEPTH_LIMIT nested backtracking points and FG_REGEX_HEAP_LIMIT_KB
 * of backtracking memory when interpreted, FG_REGEX_JIT_STACK_KB of JIT
 * stack with the JIT (per thread, reserved once, touched as needed).
 * A match that cannot be decided within the limits counts as no match
 * (fg_regex_match_groups() says -E2BIG). Worst case: about
 * max(FG_REGEX_MATCH_BUDGET, FG_REGEX_MIN_LIMIT * (length + 1)) steps, a
 * few ms with the JIT and tens of ms interpreted on a 32 KiB header value.
 * Inline settings in a pattern ((*LIMIT_MATCH=n) ...) can only lower them.
 *
 * Thread safety: a compiled struct fg_regex is immutable; any number of
 * threads may match against it at once. Match scratch (PCRE2 match data
 * and match context) is per thread, created on a thread's first match and
 * freed when the thread exits. Compiling and freeing are the owner's.
 *
 * Subjects are (pointer, length): no NUL terminator is needed or read, and
 * NUL bytes in a subject are ordinary bytes.
 *
 * Include it as "fg_regex.h": on the -Iagent include path it also shadows the
 * C library's <regex.h> (POSIX regcomp is not used in fleetgate; a file
 * that asked for it would fail to compile, not silently change).
 */
#ifndef FG_REGEX_H
#define FG_REGEX_H

#include <stdbool.h>
#include <stddef.h>

#define FG_REGEX_MATCH_BUDGET 1000000u /* backtracking steps per match, all start positions */
#define FG_REGEX_MIN_LIMIT 100u        /* ... but at least this many per start position */
#define FG_REGEX_DEPTH_LIMIT 10000u    /* nested backtracking points (interpreter) */
#define FG_REGEX_HEAP_LIMIT_KB 2048u   /* backtracking memory per match (interpreter) */
#define FG_REGEX_JIT_STACK_KB 2048u    /* backtracking memory per match (JIT) */
#define FG_REGEX_ERR_LEN 128           /* enough for any compile error message */
#define FG_REGEX_UNSET ((size_t)-1)    /* offset of a group that did not take part */

/* fg_regex_compile_flags() flags. */
#define FG_REGEX_F_NO_JIT (1u << 0) /* interpret only (tests; never needed otherwise) */
/* nginx's `location ~* "^PATH"` (use-regex paths): case-insensitive, and
 * matching only at the start of the subject, as if the pattern began
 * with ^ (error offsets stay those of the pattern as written). */
#define FG_REGEX_F_CASELESS (1u << 1)
#define FG_REGEX_F_ANCHORED (1u << 2)

struct fg_regex;

/*
 * Compiles pattern (NUL-terminated) into *out. On a pattern PCRE2 rejects:
 * -EINVAL and err holds the compiler's message and where, e.g.
 * "missing closing parenthesis at offset 4" (offset in bytes from the
 * start of the pattern). -ENOMEM when out of memory. err may be NULL;
 * it is set ("" on success) when errlen > 0.
 */
int fg_regex_compile(struct fg_regex **out, const char *pattern, char *err, size_t errlen);
int fg_regex_compile_flags(struct fg_regex **out, const char *pattern, unsigned flags,
			   char *err, size_t errlen);

/* An independent copy of re (same pattern, same JIT state): 0 or -ENOMEM. */
int fg_regex_dup(struct fg_regex **out, const struct fg_regex *re);

/* True when re matches somewhere in subject[0, len). A match that exceeds
 * the limits, or any other matching failure, is false. */
bool fg_regex_match(const struct fg_regex *re, const char *subject, size_t len);

/*
 * Like fg_regex_match, and reports where: ovector (2 * max_pairs entries)
 * receives start/end byte offsets of the whole match (pair 0) and of each
 * capture group (pair N = group N) up to max_pairs; a group that did not
 * take part has both offsets FG_REGEX_UNSET. Returns the number of pairs
 * written, min(max_pairs, fg_regex_capture_count(re) + 1), on a match; 0 on
 * no match; -E2BIG when the match or recursion limits stopped it (count it
 * as no match); -EILSEQ when a (*UTF) pattern meets a subject that is not
 * UTF-8; -EINVAL on bad arguments (max_pairs < 1); -ENOMEM.
 */
int fg_regex_match_groups(const struct fg_regex *re, const char *subject, size_t len,
			  size_t *ovector, int max_pairs);

/* The pattern as given to fg_regex_compile. */
const char *fg_regex_pattern(const struct fg_regex *re);
/* Number of capture groups in the pattern. */
int fg_regex_capture_count(const struct fg_regex *re);
/* True when the pattern runs JIT-compiled. */
bool fg_regex_jit(const struct fg_regex *re);

/* NULL is fine. */
void fg_regex_free(struct fg_regex *re);

#endif

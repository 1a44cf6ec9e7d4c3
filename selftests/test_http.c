// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * HTTP/1.1 head parser and body framer: valid heads and their fields,
 * keep-alive rules, lookups, the upstream rewrite, every request smuggling
 * shape the parser must refuse, limits, incomplete heads, chunked framing
 * over arbitrary splits, pipelining, responses, and random mutations.
 *
 * Every parse works on an exact-size heap copy, so that valgrind (or ASan)
 * sees any read past len.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <strings.h>

#include "http.h"
#include "test_progs.h"

#define S(x) x, sizeof(x) - 1
#define FULL INT_MAX /* expected: the whole raw string is the head */

enum { B_ANY, B_NONE, B_LENGTH, B_CHUNKED, B_CLOSE };
enum { K_ANY, K_YES, K_NO };

static const enum fg_http_body body_of[] = {
	[B_NONE] = FG_BODY_NONE, [B_LENGTH] = FG_BODY_LENGTH,
	[B_CHUNKED] = FG_BODY_CHUNKED, [B_CLOSE] = FG_BODY_CLOSE,
};

struct rq_case {
	const char *name;
	const char *raw;
	size_t len;
	int want;            /* FULL, a head length, 0, or -status */
	const char *method;
	const char *path;
	const char *query;
	const char *host;
	unsigned port;
	int ver;             /* 10 or 11, 0 unchecked */
	int body;            /* B_* */
	unsigned long long cl;
	int ka;              /* K_* */
	int expect;          /* K_* */
	int n_headers;       /* 0: unchecked */
};

static const struct rq_case rq_cases[] = {
	/* ---- valid ---- */
	{ "get", S("GET /index.html?x=1&y HTTP/1.1\r\nHost: Example.COM:8080\r\n"
		   "User-Agent: t\r\nAccept: */*\r\n\r\n"), FULL,
	  .method = "GET", .path = "/index.html", .query = "x=1&y",
	  .host = "example.com", .port = 8080, .ver = 11, .body = B_NONE,
	  .ka = K_YES, .expect = K_NO, .n_headers = 3 },
	{ "get_bare_lf", S("GET / HTTP/1.1\nHost: a\n\n"), FULL,
	  .method = "GET", .path = "/", .host = "a", .ver = 11, .n_headers = 1 },
	{ "leading_empty_lines", S("\r\n\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n"),
	  FULL, .method = "GET", .path = "/x", .host = "a" },
	{ "post_cl", S("POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n"),
	  FULL, .method = "POST", .body = B_LENGTH, .cl = 5, .ka = K_YES },
	{ "post_cl_zero", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = 0 },
	{ "post_cl_leading_zeros", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = 7 },
	{ "cl_identical_duplicates",
	  S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = 5 },
	{ "cl_max", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387904\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = 1ULL << 62 },
	{ "cl_max_minus_1", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387903\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = (1ULL << 62) - 1 },
	{ "cl_leading_zeros_long", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
				     "0000000000000000000000000000000000000000000000000005\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = 5 },
	{ "cl_leading_zeros_max", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
				    "0000000000000000000000000000004611686018427387904\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = 1ULL << 62 },
	{ "cl_all_zeros_long", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
				 "000000000000000000000000000000000000000000\r\n\r\n"),
	  FULL, .body = B_LENGTH, .cl = 0 },
	{ "chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  FULL, .body = B_CHUNKED },
	{ "te_trailing_space", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked \r\n\r\n"),
	  FULL, .body = B_CHUNKED },
	{ "te_tab", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tchunked\r\n\r\n"),
	  FULL, .body = B_CHUNKED },
	{ "te_case", S("POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: ChUnKeD\r\n\r\n"),
	  FULL, .body = B_CHUNKED },
	{ "te_empty_list_elements", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked,\r\n\r\n"),
	  FULL, .body = B_CHUNKED },
	{ "http10_default_close", S("GET / HTTP/1.0\r\n\r\n"), FULL,
	  .ver = 10, .ka = K_NO, .host = "", .n_headers = 0 },
	{ "http10_keep_alive", S("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
	  FULL, .ver = 10, .ka = K_YES },
	{ "http10_keep_alive_and_close",
	  S("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"), FULL,
	  .ka = K_NO },
	{ "http11_close", S("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
	  FULL, .ver = 11, .ka = K_NO },
	{ "http11_close_in_list",
	  S("GET / HTTP/1.1\r\nHost: a\r\nConnection: x-foo , CLOSE\r\n\r\n"),
	  FULL, .ka = K_NO },
	{ "expect_continue",
	  S("PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n"),
	  FULL, .expect = K_YES, .body = B_LENGTH, .cl = 3 },
	{ "expect_continue_http10_ignored",
	  S("PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n"),
	  FULL, .expect = K_NO },
	{ "absolute_form", S("GET http://Foo.Example:81/a/b?q HTTP/1.1\r\nHost: other\r\n\r\n"),
	  FULL, .path = "/a/b", .query = "q", .host = "foo.example", .port = 81 },
	{ "absolute_form_no_path", S("GET HTTPS://foo HTTP/1.1\r\nHost: foo\r\n\r\n"),
	  FULL, .path = "/", .host = "foo" },
	{ "absolute_form_query_only", S("GET http://foo?x HTTP/1.1\r\nHost: foo\r\n\r\n"),
	  FULL, .path = "/", .query = "x", .host = "foo" },
	{ "options_asterisk", S("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"), FULL,
	  .method = "OPTIONS", .path = "*" },
	{ "host_ipv6", S("GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"), FULL,
	  .host = "[::1]", .port = 80 },
	{ "host_ipv6_no_port", S("GET / HTTP/1.1\r\nHost: [FE80::1]\r\n\r\n"),
	  FULL, .host = "[fe80::1]", .port = 0 },
	{ "host_trailing_dot", S("GET / HTTP/1.1\r\nHost: Example.com.\r\n\r\n"),
	  FULL, .host = "example.com" },
	{ "host_empty_port", S("GET / HTTP/1.1\r\nHost: a:\r\n\r\n"), FULL,
	  .host = "a", .port = 0 },
	{ "host_port_max", S("GET / HTTP/1.1\r\nHost: a:65535\r\n\r\n"), FULL,
	  .host = "a", .port = 65535 },
	{ "host_port_5_digits_zeros", S("GET / HTTP/1.1\r\nHost: a:00080\r\n\r\n"), FULL,
	  .host = "a", .port = 80 },
	{ "value_obs_text", S("GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\n\r\n"),
	  FULL, .n_headers = 2 },
	{ "value_empty", S("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Sp:   \r\n\r\n"),
	  FULL, .n_headers = 3 },
	{ "underscore_name_is_just_a_field",
	  S("GET / HTTP/1.1\r\nHost: a\r\nTransfer_Encoding: chunked\r\n\r\n"),
	  FULL, .body = B_NONE },
	{ "extension_method", S("PURGE /x HTTP/1.1\r\nHost: a\r\n\r\n"), FULL,
	  .method = "PURGE" },
	{ "head_followed_by_bytes", S("GET / HTTP/1.1\r\nHost: a\r\n\r\nGET /next"),
	  27, .path = "/" },

	/* ---- incomplete ---- */
	{ "empty", S(""), 0 },
	{ "no_final_crlf", S("GET / HTTP/1.1\r\nHost: a\r\n"), 0 },
	{ "final_cr_only", S("GET / HTTP/1.1\r\nHost: a\r\n\r"), 0 },

	/* ---- smuggling: framing ---- */
	{ "cl_and_te", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			 "Transfer-Encoding: chunked\r\n\r\n"), -400 },
	{ "te_and_cl", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
			 "Content-Length: 5\r\n\r\n"), -400 },
	{ "cl_cl_differ", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
			    "Content-Length: 6\r\n\r\n"), -400 },
	{ "cl_list", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n"), -400 },
	{ "cl_plus", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n"), -400 },
	{ "cl_minus", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"), -400 },
	{ "cl_hex", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n"), -400 },
	{ "cl_trailing_junk", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5a\r\n\r\n"), -400 },
	{ "cl_inner_space", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 5\r\n\r\n"), -400 },
	{ "cl_empty", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"), -400 },
	{ "cl_overflow", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n"), -400 },
	{ "cl_above_2_62", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4611686018427387905\r\n\r\n"), -400 },
	/* 20 digits whose first 19 stay below 2^62: x * 10 + d wraps */
	{ "cl_2_64_plus_5_wraps", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\n"), -400 },
	{ "cl_2_64_wraps_to_0", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n"), -400 },
	{ "cl_2_64_minus_1", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n"), -400 },
	{ "cl_2_63", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"), -400 },
	{ "cl_wrap_equals_other", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
				    "Content-Length: 18446744073709551621\r\n\r\n"), -400 },
	{ "cl_leading_zeros_over", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
				     "0000000000000000000000000000004611686018427387905\r\n\r\n"), -400 },
	{ "cl_leading_zeros_wrap", S("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
				     "00000000000000000000018446744073709551621\r\n\r\n"), -400 },
	{ "te_gzip_chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), -501 },
	{ "te_chunked_gzip", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"), -400 },
	{ "te_xchunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"), -501 },
	{ "te_chunked_x", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked-x\r\n\r\n"), -501 },
	{ "te_identity", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"), -501 },
	{ "te_chunked_param", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked;q=1\r\n\r\n"), -501 },
	{ "te_chunked_twice", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"), -400 },
	{ "te_two_lines_chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
				    "Transfer-Encoding: chunked\r\n\r\n"), -400 },
	{ "te_two_lines_gzip_chunked", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n"
					 "Transfer-Encoding: chunked\r\n\r\n"), -501 },
	{ "te_empty", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\n\r\n"), -400 },
	{ "te_http10", S("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), -400 },
	{ "te_space_before_colon", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n"), -400 },
	{ "te_tab_before_colon", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\t: chunked\r\n\r\n"), -400 },
	{ "te_vtab", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x0b\r\n\r\n"), -400 },
	{ "te_nul", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\0\r\n\r\n"), -400 },
	{ "te_obs_fold", S("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"), -400 },
	{ "te_hidden_by_fold", S("POST / HTTP/1.1\r\nHost: a\r\nX: y\r\n Transfer-Encoding: chunked\r\n\r\n"), -400 },
	{ "te_bare_cr", S("POST / HTTP/1.1\r\nHost: a\r\nX: y\rTransfer-Encoding: chunked\r\n\r\n"), -400 },

	/* ---- field syntax ---- */
	{ "first_field_ws", S("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), -400 },
	{ "bare_cr_in_line_end", S("GET / HTTP/1.1\rHost: a\r\n\r\n"), -400 },
	{ "bare_cr_end_of_head", S("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"), -400 },
	{ "nul_in_value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), -400 },
	{ "del_in_value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"), -400 },
	{ "ctl_in_value", S("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01\r\n\r\n"), -400 },
	{ "bad_name_char", S("GET / HTTP/1.1\r\nHost: a\r\nX(y): a\r\n\r\n"), -400 },
	{ "name_utf8", S("GET / HTTP/1.1\r\nHost: a\r\nX\xc3\xa9: a\r\n\r\n"), -400 },
	{ "empty_name", S("GET / HTTP/1.1\r\nHost: a\r\n: a\r\n\r\n"), -400 },
	{ "no_colon", S("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"), -400 },

	/* ---- request line ---- */
	{ "method_bad_char", S("G(T / HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "method_leading_space", S(" GET / HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "double_space_before_target", S("GET  / HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "double_space_before_version", S("GET /  HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "trailing_space", S("GET / HTTP/1.1 \r\nHost: a\r\n\r\n"), -400 },
	{ "tab_separator", S("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "no_version", S("GET /\r\n\r\n"), -400 },
	{ "version_lower", S("GET / http/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "version_two_digits", S("GET / HTTP/1.10\r\nHost: a\r\n\r\n"), -400 },
	{ "version_2_0", S("GET / HTTP/2.0\r\nHost: a\r\n\r\n"), -505 },
	{ "version_0_9", S("GET / HTTP/0.9\r\n\r\n"), -505 },
	{ "version_1_2", S("GET / HTTP/1.2\r\nHost: a\r\n\r\n"), -505 },
	{ "target_relative", S("GET foo HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "target_asterisk_get", S("GET * HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "target_ftp", S("GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "target_userinfo", S("GET http://u:p@evil/ HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "target_fragment", S("GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "target_utf8", S("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "target_del", S("GET /\x7f HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "target_nul", S("GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "absolute_empty_authority", S("GET http:/// HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "connect", S("CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n"), -501 },

	/* ---- Host ---- */
	{ "host_missing", S("GET / HTTP/1.1\r\nX: a\r\n\r\n"), -400 },
	{ "host_twice", S("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), -400 },
	{ "host_empty", S("GET / HTTP/1.1\r\nHost:\r\n\r\n"), -400 },
	{ "host_space", S("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), -400 },
	{ "host_slash", S("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), -400 },
	{ "host_at", S("GET / HTTP/1.1\r\nHost: a@b\r\n\r\n"), -400 },
	{ "host_port_big", S("GET / HTTP/1.1\r\nHost: a:65536\r\n\r\n"), -400 },
	{ "host_port_alpha", S("GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n"), -400 },
	{ "host_port_long", S("GET / HTTP/1.1\r\nHost: a:000080\r\n\r\n"), -400 },
	{ "host_port_99999", S("GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n"), -400 },
	/* 2^32 + 80: would be 80 in a 32-bit accumulator without the digit cap */
	{ "host_port_2_32_plus_80", S("GET / HTTP/1.1\r\nHost: a:4294967376\r\n\r\n"), -400 },
	{ "absolute_port_2_32_plus_80", S("GET http://a:4294967376/ HTTP/1.1\r\nHost: a\r\n\r\n"), -400 },
	{ "host_two_ports", S("GET / HTTP/1.1\r\nHost: a:80:81\r\n\r\n"), -400 },
	{ "host_ipv6_open", S("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), -400 },
	{ "host_ipv6_junk", S("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), -400 },
	{ "host_ipv6_zone", S("GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n"), -400 },
	{ "host_dot", S("GET / HTTP/1.1\r\nHost: .\r\n\r\n"), -400 },
	{ "host_invalid_with_absolute",
	  S("GET http://a/ HTTP/1.1\r\nHost: a b\r\n\r\n"), -400 },
};

static char *dup_exact(const char *s, size_t n)
{
	char *p = malloc(n ? n : 1);

	if (p)
		memcpy(p, s, n);
	return p;
}

static char lower(char c)
{
	return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static char upper(char c)
{
	return c >= 'a' && c <= 'z' ? c - ('a' - 'A') : c;
}

static bool str_is(const char *p, size_t n, const char *want)
{
	return p && strlen(want) == n && !memcmp(p, want, n);
}

static void check_rq_case(const struct rq_case *c)
{
	struct fg_http_request *req = calloc(1, sizeof(*req));
	char *buf = dup_exact(c->raw, c->len);
	const char *why = NULL;
	int want = c->want == FULL ? (int)c->len : c->want;
	int ret;

	if (!ASSERT_OK_PTR(req, "calloc") || !ASSERT_OK_PTR(buf, "malloc"))
		goto out;
	ret = fg_http_parse_request(buf, c->len, NULL, req, &why);
	if (!_CHECK(ret != want, c->name, "parse returned %d (%s), want %d",
		    ret, why ? why : "-", want))
		goto out;
	if (ret < 0)
		ASSERT_OK_PTR(why, "why set on error");
	if (ret <= 0)
		goto out;
	ASSERT_EQ(req->head_len, (size_t)ret, "head_len");
	if (c->method)
		_CHECK(!str_is(req->method, req->method_len, c->method),
		       c->name, "method '%.*s'", (int)req->method_len,
		       req->method);
	if (c->path)
		_CHECK(!str_is(req->path, req->path_len, c->path), c->name,
		       "path '%.*s' want '%s'", (int)req->path_len, req->path,
		       c->path);
	if (c->query)
		_CHECK(!str_is(req->query, req->query_len, c->query), c->name,
		       "query '%.*s' want '%s'", (int)req->query_len,
		       req->query ? req->query : "", c->query);
	if (c->host) {
		_CHECK(!str_is(req->host, req->host_len, c->host), c->name,
		       "host '%.*s' want '%s'", (int)req->host_len, req->host,
		       c->host);
		ASSERT_EQ(req->port, c->port, "port");
	}
	if (c->ver)
		ASSERT_EQ(10 + req->version_minor, c->ver, "version");
	if (c->body) {
		ASSERT_EQ(req->body, body_of[c->body], "body");
		if (c->body == B_LENGTH)
			ASSERT_EQ(req->content_length, c->cl, "content_length");
	}
	if (c->ka)
		ASSERT_EQ(req->keep_alive, c->ka == K_YES, "keep_alive");
	if (c->expect)
		ASSERT_EQ(req->expect_continue, c->expect == K_YES,
			  "expect_continue");
	if (c->n_headers)
		ASSERT_EQ(req->n_headers, (unsigned)c->n_headers, "n_headers");
out:
	free(buf);
	free(req);
}

/* Every proper prefix of a valid head is "need more". */
static void check_prefixes(const char *raw, size_t head_len, bool response)
{
	struct fg_http_request *req = malloc(sizeof(*req));
	struct fg_http_response *resp = malloc(sizeof(*resp));
	size_t k;

	if (!ASSERT_OK_PTR(req, "malloc") || !ASSERT_OK_PTR(resp, "malloc"))
		goto out;
	for (k = 0; k < head_len; k++) {
		char *buf = dup_exact(raw, k);
		const char *why = NULL;
		int ret;

		ret = response ? fg_http_parse_response(buf, k, false, resp, &why)
			       : fg_http_parse_request(buf, k, NULL, req, &why);
		free(buf);
		if (!_CHECK(ret != 0, "prefix", "prefix %zu of %zu: %d (%s)",
			    k, head_len, ret, why ? why : "-"))
			break;
	}
out:
	free(req);
	free(resp);
}

/* ---- chunked bodies ---- */

static const char chunked_body[] =
	"5;ext=1;q=\"a b\"\r\nhello\r\n"
	"1A ; big\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	"000a\r\n0123456789\r\n"
	"0;last=yes\r\nX-Trailer: v\r\nChecksum: abc def\r\n\r\n";
static const char next_req[] = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static size_t rndn(size_t n)
{
	return n ? rnd() % n : 0;
}

/* Feeds body..end in random pieces (max_piece 1 = byte by byte), using
 * the opaque/skip path at random; returns the body length found or -1. */
static long frame_random(enum fg_http_body type, unsigned long long cl,
			 const char *buf, size_t len, size_t max_piece,
			 bool use_skip)
{
	struct fg_http_framer f;
	struct fg_http_request req = { .body = type, .content_length = cl };
	size_t pos = 0;
	bool done = false;

	fg_http_framer_init(&f, &req);
	while (!done) {
		size_t piece = 1 + rndn(max_piece);
		unsigned long long op = fg_http_framer_opaque(&f);
		long ret;

		if (pos + piece > len)
			piece = len - pos;
		if (use_skip && op && piece && rndn(2)) {
			if (piece > op)
				piece = op;
			if (fg_http_framer_skip(&f, piece))
				return -2;
			pos += piece;
			done = fg_http_framer_done(&f);
			continue;
		}
		ret = fg_http_framer_feed(&f, buf + pos, piece, &done);
		if (ret < 0)
			return ret;
		if (ret > (long)piece)
			return -3;
		if (!done && ret != (long)piece)
			return -4; /* bytes left over but message not done */
		pos += ret;
		if (!done && pos == len)
			return -5; /* ran out */
	}
	return pos;
}

static long frame_whole(enum fg_http_body type, const char *buf, size_t len)
{
	struct fg_http_framer f;
	struct fg_http_request req = { .body = type };
	bool done = false;
	long ret;

	fg_http_framer_init(&f, &req);
	ret = fg_http_framer_feed(&f, buf, len, &done);
	if (ret >= 0 && !done)
		return 0;
	return ret;
}

static void test_chunked_framing(void)
{
	size_t blen = sizeof(chunked_body) - 1;
	char *buf = malloc(blen + sizeof(next_req));
	size_t total = blen + sizeof(next_req) - 1;
	struct fg_http_request *req = malloc(sizeof(*req));
	struct fg_http_framer f;
	struct fg_http_request creq = { .body = FG_BODY_CHUNKED };
	size_t i, pos;
	bool done = false;
	int iter;

	if (!ASSERT_OK_PTR(buf, "malloc") || !ASSERT_OK_PTR(req, "malloc"))
		goto out;
	memcpy(buf, chunked_body, blen);
	memcpy(buf + blen, next_req, sizeof(next_req) - 1);

	/* whole */
	ASSERT_EQ(frame_whole(FG_BODY_CHUNKED, buf, total), (long)blen, "whole");

	/* byte by byte: each byte belongs until the very last one */
	fg_http_framer_init(&f, &creq);
	for (i = 0, pos = 0; i < total; i++) {
		long ret = fg_http_framer_feed(&f, buf + i, 1, &done);

		if (!ASSERT_GE(ret, 0, "feed"))
			break;
		pos += ret;
		if (done)
			break;
		if (!ASSERT_EQ(ret, 1, "byte belongs"))
			break;
	}
	ASSERT_TRUE(done, "done byte by byte");
	ASSERT_EQ(pos, blen, "body length byte by byte");
	ASSERT_EQ(i, blen - 1, "done on the last byte");
	ASSERT_EQ(fg_http_framer_feed(&f, buf + blen, 5, &done), 0,
		  "nothing after done");
	ASSERT_TRUE(done, "still done");
	ASSERT_EQ(fg_http_framer_opaque(&f), 0, "opaque after done");

	/* the next pipelined request starts right after */
	ASSERT_EQ(fg_http_parse_request(buf + blen, total - blen, NULL, req,
					NULL),
		  (int)(total - blen), "next request");
	ASSERT_TRUE(str_is(req->path, req->path_len, "/next"), "next path");

	/* opaque: inside the data of the first chunk */
	fg_http_framer_init(&f, &creq);
	ASSERT_EQ(fg_http_framer_opaque(&f), 0, "opaque on size line");
	ASSERT_EQ(fg_http_framer_feed(&f, buf, 19, &done), 19, "to data+2");
	ASSERT_EQ(fg_http_framer_opaque(&f), 3, "opaque in data");
	ASSERT_EQ(fg_http_framer_skip(&f, 4), -EINVAL, "skip too much");
	ASSERT_OK(fg_http_framer_skip(&f, 3), "skip");
	ASSERT_EQ(fg_http_framer_opaque(&f), 0, "opaque at data CRLF");
	ASSERT_EQ(fg_http_framer_feed(&f, buf + 22, total - 22, &done),
		  (long)blen - 22, "rest");
	ASSERT_TRUE(done, "done after skip");

	/* random splits, with and without the splice path */
	for (iter = 0; iter < 2000; iter++) {
		long got = frame_random(FG_BODY_CHUNKED, 0, buf, total,
					1 + iter % 40, iter & 1);

		if (!_CHECK(got != (long)blen, "random split",
			    "iteration %d: %ld", iter, got))
			break;
	}
out:
	free(buf);
	free(req);
}

struct chunk_case {
	const char *name;
	const char *raw;
	size_t len;
	long want; /* body length, or -400 */
};

static const struct chunk_case chunk_cases[] = {
	{ "last_only", S("0\r\n\r\n"), 5 },
	{ "zeros", S("0000\r\n\r\n"), 8 },
	{ "upper_hex", S("A\r\n0123456789\r\n0\r\n\r\n"), 20 },
	{ "ext_bws", S("3 \t; a = \"x;y\"\r\nabc\r\n0\r\n\r\n"), 26 },
	{ "trailers", S("0\r\nA: b\r\nC:\r\n\r\n"), 15 },
	{ "max_size_accepted", S("4000000000000000\r\n"), 0 /* incomplete */ },
	{ "max_size_leading_zeros", S("000000000000000000004000000000000000\r\n"), 0 },
	{ "size_leading_zeros_long", S("0000000000000000000000000000000000000005\r\nhello\r\n0\r\n\r\n"), 54 },
	{ "size_just_below_max", S("3fffffffffffffff;x\r\nab"), 0 },
	{ "hex_prefix", S("0x10\r\n"), -400 },
	{ "negative", S("-1\r\n"), -400 },
	{ "plus", S("+1\r\n"), -400 },
	{ "empty_size", S("\r\n"), -400 },
	{ "bad_hex", S("g\r\n"), -400 },
	{ "size_space_no_ext", S("5 \r\nhello\r\n0\r\n\r\n"), -400 },
	{ "size_space_digit", S("5 6\r\n"), -400 },
	{ "size_bare_lf", S("5\nhello\r\n0\r\n\r\n"), -400 },
	{ "size_cr_cr", S("5\r\rhello\r\n"), -400 },
	{ "ext_bare_lf", S("5;a\nhello\r\n"), -400 },
	{ "ext_ctl", S("5;a\x01\r\nhello\r\n"), -400 },
	{ "data_too_long", S("5\r\nhelloX\r\n0\r\n\r\n"), -400 },
	{ "data_bare_lf", S("5\r\nhello\n0\r\n\r\n"), -400 },
	{ "data_no_crlf", S("5\r\nhello0\r\n\r\n"), -400 },
	{ "size_2_62_plus_1", S("4000000000000001\r\n"), -400 },
	{ "size_huge", S("FFFFFFFFFFFFFFFFFFFF\r\n"), -400 },
	{ "size_64bit_wrap", S("10000000000000005\r\nhello\r\n0\r\n\r\n"), -400 },
	{ "size_2_64", S("10000000000000000\r\n"), -400 },
	{ "size_2_64_minus_1", S("FFFFFFFFFFFFFFFF\r\n"), -400 },
	{ "size_2_63", S("8000000000000000\r\n"), -400 },
	{ "size_2_62_plus_1_leading_zeros", S("000000000000000000004000000000000001\r\n"), -400 },
	{ "size_wrap_ext", S("10000000000000005;a=b\r\nhello\r\n0\r\n\r\n"), -400 },
	{ "trailer_obs_fold", S("0\r\nX: a\r\n b\r\n\r\n"), -400 },
	{ "trailer_bare_lf", S("0\r\nX: a\n\r\n"), -400 },
	{ "trailer_no_colon", S("0\r\nX\r\n\r\n"), -400 },
	{ "trailer_space_before_colon", S("0\r\nX : a\r\n\r\n"), -400 },
	{ "trailer_nul", S("0\r\nX: \0\r\n\r\n"), -400 },
	{ "end_bare_lf", S("0\r\n\n"), -400 },
	{ "end_cr_junk", S("0\r\n\rx"), -400 },
};

static void test_chunk_cases(void)
{
	size_t i, k;

	for (i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		const struct chunk_case *c = &chunk_cases[i];
		char *buf = dup_exact(c->raw, c->len);
		struct fg_http_framer f;
		struct fg_http_request creq = { .body = FG_BODY_CHUNKED };
		long ret, sum = 0;
		bool done = false;

		ret = frame_whole(FG_BODY_CHUNKED, buf, c->len);
		_CHECK(ret != c->want, c->name, "whole: %ld want %ld", ret,
		       c->want);
		/* byte by byte gives the same answer */
		fg_http_framer_init(&f, &creq);
		for (k = 0; k < c->len && !done; k++) {
			ret = fg_http_framer_feed(&f, buf + k, 1, &done);
			if (ret < 0)
				break;
			sum += ret;
		}
		if (ret >= 0)
			ret = done ? sum : 0;
		_CHECK(ret != c->want, c->name, "byte by byte: %ld want %ld",
		       ret, c->want);
		if (c->want < 0) /* sticky */
			ASSERT_EQ(fg_http_framer_feed(&f, "0\r\n\r\n", 5,
						      &done), -400, "sticky");
		free(buf);
	}
}

static void test_chunk_limits(void)
{
	size_t n = 16384, i;
	char *buf = malloc(n);
	long ret;

	if (!ASSERT_OK_PTR(buf, "malloc"))
		return;
	/* chunk-size line: leading zeros / extensions beyond the limit */
	memset(buf, '0', n);
	ret = frame_whole(FG_BODY_CHUNKED, buf, FG_HTTP_MAX_CHUNK_LINE + 10);
	ASSERT_EQ(ret, -400, "size line too long");
	buf[0] = '1';
	buf[1] = ';';
	memset(buf + 2, 'e', n - 2);
	ret = frame_whole(FG_BODY_CHUNKED, buf, FG_HTTP_MAX_CHUNK_LINE + 10);
	ASSERT_EQ(ret, -400, "extensions too long");
	/* trailer section */
	memcpy(buf, "0\r\nX: ", 6);
	memset(buf + 6, 'a', n - 6);
	ret = frame_whole(FG_BODY_CHUNKED, buf, n);
	ASSERT_EQ(ret, -400, "trailer too long");
	/* many short trailer lines */
	memcpy(buf, "0\r\n", 3);
	for (i = 3; i + 8 < n; i += 8)
		memcpy(buf + i, "X: abc\r\n", 8);
	ret = frame_whole(FG_BODY_CHUNKED, buf, i);
	ASSERT_EQ(ret, -400, "many trailers too long");
	free(buf);
}

static void test_length_framing(void)
{
	struct fg_http_framer f;
	struct fg_http_request req = { .body = FG_BODY_LENGTH,
				       .content_length = 10 };
	bool done = true;
	int iter;

	fg_http_framer_init(&f, &req);
	ASSERT_EQ(fg_http_framer_opaque(&f), 10, "opaque");
	ASSERT_EQ(fg_http_framer_feed(&f, "abc", 3, &done), 3, "feed 3");
	ASSERT_FALSE(done, "not done");
	ASSERT_EQ(fg_http_framer_opaque(&f), 7, "opaque 7");
	ASSERT_EQ(fg_http_framer_skip(&f, 8), -EINVAL, "skip 8");
	ASSERT_OK(fg_http_framer_skip(&f, 6), "skip 6");
	ASSERT_EQ(fg_http_framer_feed(&f, "xyzGET", 6, &done), 1, "last byte");
	ASSERT_TRUE(done, "done");

	req.content_length = 0;
	fg_http_framer_init(&f, &req);
	ASSERT_TRUE(fg_http_framer_done(&f), "cl 0 done at once");
	ASSERT_EQ(fg_http_framer_feed(&f, "GET", 3, &done), 0, "cl 0 feed");
	ASSERT_TRUE(done, "cl 0 done");

	req.body = FG_BODY_NONE;
	fg_http_framer_init(&f, &req);
	ASSERT_EQ(fg_http_framer_feed(&f, "GET", 3, &done), 0, "none feed");
	ASSERT_TRUE(done, "none done");

	req.body = FG_BODY_CLOSE;
	fg_http_framer_init(&f, &req);
	ASSERT_EQ(fg_http_framer_opaque(&f), ~0ULL, "close opaque");
	ASSERT_EQ(fg_http_framer_feed(&f, "GET", 3, &done), 3, "close feed");
	ASSERT_FALSE(done, "close never done");

	for (iter = 0; iter < 200; iter++) {
		char buf[300];
		long got;

		memset(buf, 'x', sizeof(buf));
		got = frame_random(FG_BODY_LENGTH, 250, buf, sizeof(buf),
				   1 + iter % 64, iter & 1);
		if (!ASSERT_EQ(got, 250, "random length split"))
			break;
	}
}

/* ---- pipelining ---- */

static void test_pipeline(void)
{
	static const char stream[] =
		"GET /one HTTP/1.1\r\nHost: a\r\n\r\n"
		"POST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
		"POST /three HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n"
		"3\r\nabc\r\n0\r\nT: x\r\n\r\n"
		"\r\n" /* a stray CRLF after a body is allowed */
		"GET /four HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n";
	static const char *const paths[] = { "/one", "/two", "/three", "/four" };
	static const unsigned long long bodies[] = { 0, 5, 19, 0 };
	size_t len = sizeof(stream) - 1, pos = 0;
	struct fg_http_request *req = malloc(sizeof(*req));
	char *buf = dup_exact(stream, len);
	int n = 0, step;

	if (!ASSERT_OK_PTR(req, "malloc") || !ASSERT_OK_PTR(buf, "malloc"))
		goto out;
	for (step = 0; step < 2; step++) {
		pos = 0;
		n = 0;
		while (pos < len) {
			const char *why = NULL;
			struct fg_http_framer f;
			int ret = fg_http_parse_request(buf + pos, len - pos,
							NULL, req, &why);
			bool done = false;
			long b = 0, r;
			size_t p;

			if (!_CHECK(ret <= 0, "pipelined head", "%d (%s) at %zu",
				    ret, why ? why : "-", pos))
				goto out;
			if (!ASSERT_LT(n, 4, "requests"))
				goto out;
			_CHECK(!str_is(req->path, req->path_len, paths[n]),
			       "path", "'%.*s' want %s", (int)req->path_len,
			       req->path, paths[n]);
			pos += ret;
			fg_http_framer_init(&f, req);
			/* step 0: the rest at once; step 1: byte by byte */
			for (p = pos;; p++) {
				size_t piece = step ? (p < len ? 1 : 0) : len - p;

				r = fg_http_framer_feed(&f, buf + p, piece, &done);
				if (!ASSERT_GE(r, 0, "feed"))
					goto out;
				b += r;
				if (!step || done || p >= len)
					break;
			}
			ASSERT_TRUE(done, "body done");
			ASSERT_EQ(b, bodies[n], "body length");
			ASSERT_EQ(req->keep_alive, n != 3, "keep_alive");
			pos += b;
			n++;
		}
		ASSERT_EQ(n, 4, "all requests");
		ASSERT_EQ(pos, len, "whole stream");
	}
out:
	free(buf);
	free(req);
}

/* ---- lookups ---- */

static void test_lookups(void)
{
	static const char raw[] =
		"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl\r\n"
		"stage: gray\r\n"
		"Cookie: a=1; stage=gray; b=2;c=\"quoted\" ; d=; e = 5\r\n"
		"Cookie: x=y\r\n\r\n";
	struct fg_http_request *req = malloc(sizeof(*req));
	const struct fg_http_header *h;
	const char *v;
	size_t l;

	if (!ASSERT_OK_PTR(req, "malloc"))
		return;
	if (!ASSERT_EQ(fg_http_parse_request(raw, sizeof(raw) - 1, NULL, req,
					     NULL),
		       (int)sizeof(raw) - 1, "parse"))
		goto out;
	h = fg_http_find(req, "USER-agent");
	if (ASSERT_OK_PTR(h, "find user-agent"))
		ASSERT_TRUE(str_is(h->value, h->value_len, "curl"), "ua value");
	h = fg_http_find(req, "Stage");
	if (ASSERT_OK_PTR(h, "find stage"))
		ASSERT_TRUE(str_is(h->value, h->value_len, "gray"), "stage");
	ASSERT_TRUE(fg_http_find(req, "user-agen") == NULL, "no prefix match");
	ASSERT_TRUE(fg_http_find(req, "x-missing") == NULL, "missing");

	ASSERT_TRUE(fg_http_cookie(req, "stage", &v, &l) &&
		    str_is(v, l, "gray"), "cookie stage");
	ASSERT_TRUE(fg_http_cookie(req, "a", &v, &l) && str_is(v, l, "1"),
		    "cookie a");
	ASSERT_TRUE(fg_http_cookie(req, "b", &v, &l) && str_is(v, l, "2"),
		    "cookie b");
	ASSERT_TRUE(fg_http_cookie(req, "c", &v, &l) &&
		    str_is(v, l, "quoted"), "cookie quoted");
	ASSERT_TRUE(fg_http_cookie(req, "d", &v, &l) && l == 0, "cookie empty");
	ASSERT_TRUE(fg_http_cookie(req, "e", &v, &l) && str_is(v, l, "5"),
		    "cookie spaces");
	ASSERT_TRUE(fg_http_cookie(req, "x", &v, &l) && str_is(v, l, "y"),
		    "second Cookie field");
	ASSERT_FALSE(fg_http_cookie(req, "stag", &v, &l), "no prefix match");
	ASSERT_FALSE(fg_http_cookie(req, "STAGE", &v, &l), "case-sensitive");
	ASSERT_FALSE(fg_http_cookie(req, "gray", &v, &l), "not a value");
out:
	free(req);
}

/* ---- rewrite ---- */

static void test_rewrite(void)
{
	static const char raw[] =
		"POST /api?q=1 HTTP/1.1\r\n"
		"Host: Svc.example:8080\r\n"
		"Connection: keep-alive, X-Hop, Upgrade, host\r\n"
		"Keep-Alive: timeout=5\r\n"
		"Proxy-Connection: keep-alive\r\n"
		"TE: trailers\r\n"
		"Trailer: X-Sum\r\n"
		"Upgrade: h2c\r\n"
		"X-Hop: secret\r\n"
		"x-hop: again\r\n"
		"X-Forwarded-For: 1.1.1.1\r\n"
		"stage:   gray  \r\n"
		"X-Forwarded-For: 2.2.2.2, 3.3.3.3\r\n"
		"X-Real-IP: 6.6.6.6\r\n"
		"X-Forwarded-Proto: spoofed\r\n"
		"Content-Length: 005\r\n"
		"\r\n";
	static const char want[] =
		"POST /api?q=1 HTTP/1.1\r\n"
		"Host: Svc.example:8080\r\n"
		"stage: gray\r\n"
		"Content-Length: 5\r\n"
		"X-Forwarded-For: 1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.7\r\n"
		"X-Forwarded-Proto: https\r\n"
		"X-Real-IP: 10.0.0.7\r\n"
		"Connection: keep-alive\r\n"
		"\r\n";
	static const char raw2[] =
		"GET http://Foo.example:81?x HTTP/1.0\r\n"
		"Host: ignored\r\n"
		"Transfer-Encoding: chunked\r\n\r\n";
	static const char raw3[] =
		"PUT http://foo/a HTTP/1.1\r\n"
		"Host: ignored\r\n"
		"Transfer-Encoding:  chunked \r\n\r\n";
	static const char want3[] =
		"PUT /a HTTP/1.1\r\n"
		"Host: foo\r\n"
		"Transfer-Encoding: chunked\r\n"
		"X-Forwarded-For: ::1\r\n"
		"X-Forwarded-Proto: http\r\n"
		"X-Real-IP: ::1\r\n"
		"Connection: keep-alive\r\n"
		"\r\n";
	static const char raw4[] = "GET /x HTTP/1.1\r\nHost: a\r\n\r\n";
	struct fg_http_request *req = malloc(sizeof(*req));
	struct fg_http_request *re = malloc(sizeof(*re));
	char out[2048];
	size_t cap;
	int n;

	if (!ASSERT_OK_PTR(req, "malloc") || !ASSERT_OK_PTR(re, "malloc"))
		goto out;
	if (!ASSERT_GT(fg_http_parse_request(raw, sizeof(raw) - 1, NULL, req,
					     NULL), 0, "parse"))
		goto out;
	n = fg_http_rewrite_head(req, "10.0.0.7", "https", out, sizeof(out));
	if (ASSERT_GT(n, 0, "rewrite"))
		ASSERT_MEMEQ(out, n, want, sizeof(want) - 1, "rewritten head");
	/* the result parses, with the same framing */
	if (n > 0) {
		ASSERT_EQ(fg_http_parse_request(out, n, NULL, re, NULL), n,
			  "reparse");
		ASSERT_EQ(re->content_length, 5, "reparse content_length");
		ASSERT_TRUE(fg_http_find(re, "x-hop") == NULL, "x-hop gone");
	}
	/* too small by one byte, and every smaller capacity */
	for (cap = 0; cap < sizeof(want) - 1; cap++)
		if (!ASSERT_EQ(fg_http_rewrite_head(req, "10.0.0.7", "https",
						    out, cap), -ENOSPC,
			       "ENOSPC"))
			break;
	ASSERT_EQ(fg_http_rewrite_head(req, "10.0.0.7", "https", out,
				       sizeof(want) - 1), (int)sizeof(want) - 1,
		  "exact capacity");
	ASSERT_EQ(fg_http_rewrite_head(req, "1.2.3.4\r\nX: y", "http", out,
				       sizeof(out)), -EINVAL, "ip injection");
	ASSERT_EQ(fg_http_rewrite_head(req, "1.2.3.4", "ht tp", out,
				       sizeof(out)), -EINVAL, "proto injection");

	/* HTTP/1.0 with Transfer-Encoding is refused; absolute-form in 1.1 */
	ASSERT_EQ(fg_http_parse_request(raw2, sizeof(raw2) - 1, NULL, req,
					NULL), -400, "TE in 1.0");
	if (ASSERT_GT(fg_http_parse_request(raw3, sizeof(raw3) - 1, NULL, req,
					    NULL), 0, "absolute")) {
		n = fg_http_rewrite_head(req, "::1", "http", out, sizeof(out));
		if (ASSERT_GT(n, 0, "rewrite absolute"))
			ASSERT_MEMEQ(out, n, want3, sizeof(want3) - 1,
				     "absolute-form to origin-form");
	}
	if (ASSERT_GT(fg_http_parse_request(raw4, sizeof(raw4) - 1, NULL, req,
					    NULL), 0, "plain")) {
		static const char want4[] =
			"GET /x HTTP/1.1\r\nHost: a\r\n"
			"X-Forwarded-For: 192.0.2.1\r\n"
			"X-Forwarded-Proto: http\r\nX-Real-IP: 192.0.2.1\r\n"
			"Connection: keep-alive\r\n\r\n";

		n = fg_http_rewrite_head(req, "192.0.2.1", "http", out,
					 sizeof(out));
		ASSERT_MEMEQ(out, n > 0 ? n : 0, want4, sizeof(want4) - 1,
			     "plain");
	}
out:
	free(req);
	free(re);
}

/* ---- limits ---- */

static void test_limits(void)
{
	struct fg_http_limits lim = { .max_head = 1024,
				      .max_request_line = 100,
				      .max_headers = 5 };
	struct fg_http_request *req = malloc(sizeof(*req));
	size_t n = 70000, p;
	char *buf = malloc(n);
	const char *why;
	int i;

	if (!ASSERT_OK_PTR(req, "malloc") || !ASSERT_OK_PTR(buf, "malloc"))
		goto out;

	/* request line: complete and incomplete */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', 200);
	memcpy(buf + 205, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
	ASSERT_EQ(fg_http_parse_request(buf, 227, &lim, req, &why), -414,
		  "414 complete");
	ASSERT_EQ(fg_http_parse_request(buf, 150, &lim, req, &why), -414,
		  "414 incomplete");
	ASSERT_EQ(fg_http_parse_request(buf, 100, &lim, req, &why), 0,
		  "at the limit: need more");
	ASSERT_EQ(fg_http_parse_request(buf, 227, NULL, req, &why), 227,
		  "default limit");
	/* request line of exactly max_request_line */
	memcpy(buf + 100 - 9, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
	ASSERT_EQ(fg_http_parse_request(buf, 113, &lim, req, &why), 113,
		  "exactly max_request_line");
	buf[91] = 'a';
	memcpy(buf + 101 - 9, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
	ASSERT_EQ(fg_http_parse_request(buf, 114, &lim, req, &why), -414,
		  "max_request_line + 1");

	/* default 8 KiB */
	memcpy(buf, "GET /", 5);
	memset(buf + 5, 'a', 9000);
	ASSERT_EQ(fg_http_parse_request(buf, 9005, NULL, req, &why), -414,
		  "default 414");

	/* too many headers */
	p = sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 0; i < 4; i++)
		p += sprintf(buf + p, "X-%d: v\r\n", i);
	p += sprintf(buf + p, "\r\n");
	ASSERT_EQ(fg_http_parse_request(buf, p, &lim, req, &why), (int)p,
		  "5 headers");
	p -= 2;
	p += sprintf(buf + p, "X-5: v\r\n\r\n");
	ASSERT_EQ(fg_http_parse_request(buf, p, &lim, req, &why), -431,
		  "6 headers");
	p = sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\n");
	for (i = 0; i < 100; i++)
		p += sprintf(buf + p, "X-%d: v\r\n", i);
	ASSERT_EQ(fg_http_parse_request(buf, p, NULL, req, &why), -431,
		  "101 headers, incomplete: refused early");
	p += sprintf(buf + p, "\r\n");
	ASSERT_EQ(fg_http_parse_request(buf, p, NULL, req, &why), -431,
		  "101 headers");

	/* head size */
	p = sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(buf + p, 'v', 2000);
	ASSERT_EQ(fg_http_parse_request(buf, p + 2000, &lim, req, &why), -431,
		  "431 incomplete");
	memcpy(buf + p + 2000, "\r\n\r\n", 4);
	ASSERT_EQ(fg_http_parse_request(buf, p + 2004, &lim, req, &why), -431,
		  "431 complete");
	ASSERT_EQ(fg_http_parse_request(buf, p + 2004, NULL, req, &why),
		  (int)p + 2004, "default max_head");
	memset(buf + p, 'v', 40000);
	memcpy(buf + p + 40000, "\r\n\r\n", 4);
	ASSERT_EQ(fg_http_parse_request(buf, p + 40004, NULL, req, &why), -431,
		  "default 431");
	/* exactly max_head */
	p = sprintf(buf, "GET / HTTP/1.1\r\nHost: a\r\nX: ");
	memset(buf + p, 'v', 1024 - p - 4);
	memcpy(buf + 1020, "\r\n\r\n", 4);
	ASSERT_EQ(fg_http_parse_request(buf, 1024, &lim, req, &why), 1024,
		  "exactly max_head");
	/* empty lines before the request line: a few */
	memset(buf, '\n', 2000);
	ASSERT_EQ(fg_http_parse_request(buf, 2000, &lim, req, &why), -400,
		  "empty lines");
	p = sprintf(buf, "\r\n\n\r\n\n\r\n\n\r\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	ASSERT_EQ(fg_http_parse_request(buf, p, &lim, req, &why), (int)p,
		  "8 empty lines");
	p = sprintf(buf, "\n\n\n\n\n\n\n\n\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
	ASSERT_EQ(fg_http_parse_request(buf, p, &lim, req, &why), -400,
		  "9 empty lines");
out:
	free(buf);
	free(req);
}

/* ---- responses ---- */

struct rs_case {
	const char *name;
	const char *raw;
	size_t len;
	bool head;
	int want;
	int status;
	int body;
	unsigned long long cl;
	int ka;
};

static const struct rs_case rs_cases[] = {
	{ "ok_cl", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), false, FULL,
	  200, B_LENGTH, 5, K_YES },
	{ "chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  false, FULL, 200, B_CHUNKED, 0, K_YES },
	{ "gzip_chunked", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
	  false, FULL, 200, B_CHUNKED, 0, K_YES },
	{ "te_gzip_close", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"),
	  false, FULL, 200, B_CLOSE, 0, K_NO },
	{ "no_length_close", S("HTTP/1.1 200 OK\r\n\r\n"), false, FULL, 200,
	  B_CLOSE, 0, K_NO },
	{ "no_reason", S("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n"), false,
	  FULL, 200, B_LENGTH, 0, K_YES },
	{ "empty_reason", S("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n"), false,
	  FULL, 404, B_LENGTH, 0, K_YES },
	{ "head", S("HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n"), true,
	  FULL, 200, B_NONE, 500, K_YES },
	{ "204", S("HTTP/1.1 204 No Content\r\n\r\n"), false, FULL, 204, B_NONE,
	  0, K_YES },
	{ "304_with_cl", S("HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n"),
	  false, FULL, 304, B_NONE, 9, K_YES },
	{ "100", S("HTTP/1.1 100 Continue\r\n\r\n"), false, FULL, 100, B_NONE,
	  0, K_ANY },
	{ "http10_close", S("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n"), false,
	  FULL, 200, B_LENGTH, 2, K_NO },
	{ "http10_keep_alive",
	  S("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n"),
	  false, FULL, 200, B_LENGTH, 2, K_YES },
	{ "http11_close", S("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n"),
	  false, FULL, 200, B_LENGTH, 2, K_NO },
	{ "bare_lf", S("HTTP/1.1 200 OK\nContent-Length: 2\n\n"), false, FULL,
	  200, B_LENGTH, 2, K_YES },
	{ "incomplete", S("HTTP/1.1 200 OK\r\n"), false, 0 },
	{ "cl_te", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  false, -502 },
	{ "cl_differ", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
	  false, -502 },
	{ "cl_bad", S("HTTP/1.1 200 OK\r\nContent-Length: 5x\r\n\r\n"), false, -502 },
	{ "cl_2_64_plus_5_wraps", S("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551621\r\n\r\n"),
	  false, -502 },
	{ "cl_2_64_wraps_to_0", S("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n"),
	  false, -502 },
	{ "cl_wrap_to_head", S("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551621\r\n\r\n"),
	  true, -502 },
	{ "cl_wrap_equals_other", S("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
				    "Content-Length: 18446744073709551621\r\n\r\n"), false, -502 },
	{ "cl_2_62_plus_1", S("HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387905\r\n\r\n"),
	  false, -502 },
	{ "cl_max", S("HTTP/1.1 200 OK\r\nContent-Length: 4611686018427387904\r\n\r\n"),
	  false, FULL, 200, B_LENGTH, 1ULL << 62, K_YES },
	{ "cl_leading_zeros_long", S("HTTP/1.1 200 OK\r\nContent-Length: "
				     "00000000000000000000000000000000000000005\r\n\r\n"),
	  false, FULL, 200, B_LENGTH, 5, K_YES },
	{ "cl_leading_zeros_over", S("HTTP/1.1 200 OK\r\nContent-Length: "
				     "0000000000000000000000000004611686018427387905\r\n\r\n"),
	  false, -502 },
	{ "te_http10", S("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
	  false, -502 },
	{ "chunked_twice", S("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n"),
	  false, -502 },
	{ "http2", S("HTTP/2.0 200 OK\r\n\r\n"), false, -502 },
	{ "lowercase", S("http/1.1 200 OK\r\n\r\n"), false, -502 },
	{ "garbage_early", S("<html>"), false, -502 },
	{ "status_99", S("HTTP/1.1 099 X\r\n\r\n"), false, -502 },
	{ "status_600", S("HTTP/1.1 600 X\r\n\r\n"), false, -502 },
	{ "status_4_digits", S("HTTP/1.1 2000 OK\r\n\r\n"), false, -502 },
	{ "status_2_digits", S("HTTP/1.1 20 OK\r\n\r\n"), false, -502 },
	{ "reason_ctl", S("HTTP/1.1 200 O\x01K\r\n\r\n"), false, -502 },
	{ "obs_fold", S("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"), false, -502 },
	{ "space_before_colon", S("HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\n"),
	  false, -502 },
	{ "bare_cr", S("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"), false, -502 },
};

static void test_responses(void)
{
	struct fg_http_response *resp = malloc(sizeof(*resp));
	size_t i;

	if (!ASSERT_OK_PTR(resp, "malloc"))
		return;
	for (i = 0; i < sizeof(rs_cases) / sizeof(rs_cases[0]); i++) {
		const struct rs_case *c = &rs_cases[i];
		char *buf = dup_exact(c->raw, c->len);
		int want = c->want == FULL ? (int)c->len : c->want;
		const char *why = NULL;
		int ret = fg_http_parse_response(buf, c->len, c->head, resp,
						 &why);

		if (_CHECK(ret != want, c->name, "parse %d (%s) want %d", ret,
			   why ? why : "-", want) && ret > 0) {
			ASSERT_EQ(resp->status, c->status, c->name);
			ASSERT_EQ(resp->body, body_of[c->body], c->name);
			ASSERT_EQ(resp->content_length, c->cl, c->name);
			ASSERT_EQ(resp->interim, c->status < 200, c->name);
			if (c->ka)
				ASSERT_EQ(resp->keep_alive, c->ka == K_YES,
					  c->name);
			check_prefixes(c->raw, c->len, true);
		}
		free(buf);
	}
	free(resp);
}

/* A keep-alive upstream connection: where each response ends. */
static void test_response_stream(void)
{
	static const char stream[] =
		"HTTP/1.1 100 Continue\r\n\r\n"
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
		"5\r\nhello\r\n0\r\n\r\n"
		"HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n"
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
		"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" /* to a HEAD */
		"HTTP/1.0 200 OK\r\n\r\nuntil close";
	static const int statuses[] = { 100, 200, 204, 200, 200, 200 };
	static const long bodies[] = { 0, 15, 0, 2, 0, 11 };
	struct fg_http_response *resp = malloc(sizeof(*resp));
	size_t len = sizeof(stream) - 1, pos = 0;
	char *buf = dup_exact(stream, len);
	int n = 0;

	if (!ASSERT_OK_PTR(resp, "malloc") || !ASSERT_OK_PTR(buf, "malloc"))
		goto out;
	while (pos < len && n < 6) {
		struct fg_http_framer f;
		bool done = false;
		int ret = fg_http_parse_response(buf + pos, len - pos, n == 4,
						 resp, NULL);
		long b;

		if (!ASSERT_GT(ret, 0, "response head"))
			goto out;
		ASSERT_EQ(resp->status, statuses[n], "status");
		pos += ret;
		fg_http_framer_init_response(&f, resp);
		b = fg_http_framer_feed(&f, buf + pos, len - pos, &done);
		ASSERT_EQ(b, bodies[n], "body");
		ASSERT_EQ(done, n != 5, "done");
		pos += b;
		n++;
	}
	ASSERT_EQ(n, 6, "responses");
	ASSERT_EQ(pos, len, "whole stream");
out:
	free(buf);
	free(resp);
}

/* ---- number bounds ---- */

/* Decimal of an unsigned 128-bit value (the values around 2^64 that a
 * 64-bit accumulator would wrap). */
static void u128_dec(unsigned __int128 v, char *out, size_t cap)
{
	char tmp[48];
	size_t n = 0, i;

	do {
		tmp[n++] = '0' + (int)(v % 10);
		v /= 10;
	} while (v && n < sizeof(tmp));
	for (i = 0; i < n && i + 1 < cap; i++)
		out[i] = tmp[n - 1 - i];
	out[i] = '\0';
}

/*
 * Content-Length around every bound a 64-bit accumulator has (2^62, 2^63,
 * 10^19, 2^64, 10^20), with and without leading zeros, in requests and
 * responses: accepted exactly when the value is at most 2^62, and then read
 * as that value.
 */
static void test_content_length_bounds(void)
{
	static const unsigned zeros[] = { 0, 1, 19, 40 };
	const unsigned __int128 one = 1;
	const unsigned __int128 bases[] = {
		one << 62, one << 63, (unsigned __int128)10000000000000000000ULL,
		one << 64, (unsigned __int128)10000000000000000000ULL * 10,
		(one << 64) * 10 + 5,
	};
	struct fg_http_request *req = malloc(sizeof(*req));
	struct fg_http_response *resp = malloc(sizeof(*resp));
	size_t b, z;
	int delta;

	if (!ASSERT_OK_PTR(req, "malloc") || !ASSERT_OK_PTR(resp, "malloc"))
		goto out;
	for (b = 0; b < sizeof(bases) / sizeof(bases[0]); b++) {
		for (delta = -3; delta <= 10; delta++) {
			unsigned __int128 v = bases[b] + delta;
			bool ok = v <= (one << 62);

			for (z = 0; z < sizeof(zeros) / sizeof(zeros[0]); z++) {
				char num[64], raw[256], name[128], *buf;
				int len, want, ret;

				memset(num, '0', zeros[z]);
				u128_dec(v, num + zeros[z], sizeof(num) - zeros[z]);
				snprintf(name, sizeof(name), "cl %s", num);

				len = snprintf(raw, sizeof(raw),
					       "POST / HTTP/1.1\r\nHost: a\r\n"
					       "Content-Length: %s\r\n\r\n", num);
				buf = dup_exact(raw, len);
				want = ok ? len : -400;
				ret = fg_http_parse_request(buf, len, NULL, req, NULL);
				if (ASSERT_EQ(ret, want, name) && ok)
					ASSERT_TRUE(req->content_length == v &&
						    req->body == FG_BODY_LENGTH,
						    name);
				free(buf);

				len = snprintf(raw, sizeof(raw),
					       "HTTP/1.1 200 OK\r\n"
					       "Content-Length: %s\r\n\r\n", num);
				buf = dup_exact(raw, len);
				want = ok ? len : -502;
				ret = fg_http_parse_response(buf, len, false, resp,
							     NULL);
				if (ASSERT_EQ(ret, want, name) && ok)
					ASSERT_TRUE(resp->content_length == v,
						    name);
				free(buf);
			}
		}
	}
out:
	free(req);
	free(resp);
}

/* Chunk sizes around the same bounds, hex, with and without leading
 * zeros: refused above 2^62 on the size line itself. */
static void test_chunk_size_bounds(void)
{
	static const char *const sizes[][2] = {
		/* hex, "ok" or "no" */
		{ "4000000000000000", "ok" },
		{ "3fffffffffffffff", "ok" },
		{ "00000000000000000000004000000000000000", "ok" },
		{ "4000000000000001", "no" },
		{ "7fffffffffffffff", "no" },
		{ "8000000000000000", "no" },
		{ "ffffffffffffffff", "no" },
		{ "10000000000000000", "no" },
		{ "10000000000000005", "no" },
		{ "100000000000000000000000000000005", "no" },
		{ "00000000000000000000004000000000000001", "no" },
	};
	size_t i;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		char raw[128];
		int len = snprintf(raw, sizeof(raw), "%s\r\nab", sizes[i][0]);
		char *buf = dup_exact(raw, len);
		long want = sizes[i][1][0] == 'o' ? 0 : -400;

		_CHECK(frame_whole(FG_BODY_CHUNKED, buf, len) != want,
		       sizes[i][0], "want %ld", want);
		free(buf);
	}
}

/* ---- framer output: trailer filter and dechunk ---- */

#define F_DROP FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED
#define F_DECHUNK FG_FRAMER_DECHUNK

enum { P_WHOLE, P_SPLIT, P_BYTES, P_RANDOM };

/*
 * Feeds buf[0..len) to a fresh framer through fg_http_framer_feed_out, the
 * way the proxy does: opaque bytes by skip (forwarded as they are) when
 * use_skip says so at random, the rest by feed_out into an exact-size heap
 * buffer of piece + FG_HTTP_FRAMER_OUT_SLACK bytes. Pieces: P_WHOLE, two at
 * split, one byte each, or random up to max_piece. The output goes to
 * res[0..*res_len) (res holds len bytes). Returns the message length, -1
 * when the input ran out first, -400, or < -1000 on a broken contract.
 */
static long frame_out(enum fg_http_body type, unsigned long long cl,
		      unsigned flags, const char *buf, size_t len, int plan,
		      size_t split, size_t max_piece, bool use_skip, char *res,
		      size_t *res_len)
{
	struct fg_http_request req = { .body = type, .content_length = cl };
	struct fg_http_framer f;
	size_t pos = 0;
	bool done;

	*res_len = 0;
	fg_http_framer_init(&f, &req);
	if (fg_http_framer_set_filter(&f, flags))
		return -1001;
	done = fg_http_framer_done(&f);
	while (!done && pos < len) {
		unsigned long long op = fg_http_framer_opaque(&f);
		size_t piece, out_len = 0;
		char *out;
		long ret;

		switch (plan) {
		case P_WHOLE:
			piece = len - pos;
			break;
		case P_SPLIT:
			piece = pos < split ? split - pos : len - pos;
			break;
		case P_BYTES:
			piece = 1;
			break;
		default:
			piece = 1 + rndn(max_piece);
			break;
		}
		if (piece > len - pos)
			piece = len - pos;
		if (use_skip && op && rndn(2)) {
			if (piece > op)
				piece = op;
			if (fg_http_framer_skip(&f, piece))
				return -1002;
			memcpy(res + *res_len, buf + pos, piece);
			*res_len += piece;
			pos += piece;
			done = fg_http_framer_done(&f);
			continue;
		}
		out = malloc(piece + FG_HTTP_FRAMER_OUT_SLACK);
		if (!out)
			return -1003;
		ret = fg_http_framer_feed_out(&f, buf + pos, piece, out,
					      &out_len, &done);
		if (ret < 0) {
			free(out);
			return out_len ? -1004 : ret;
		}
		if ((size_t)ret > piece || (!done && (size_t)ret != piece) ||
		    out_len > piece + FG_HTTP_FRAMER_OUT_SLACK ||
		    *res_len + out_len > len) {
			free(out);
			return -1005;
		}
		memcpy(res + *res_len, out, out_len);
		*res_len += out_len;
		free(out);
		pos += ret;
	}
	return done ? (long)pos : -1;
}

struct out_case {
	const char *name;
	const char *raw;
	size_t len;
	unsigned flags;
	int tail;         /* bytes after the message, or BAD (-400) */
	const char *out;  /* what is forwarded (NULL: the message as is) */
	size_t out_len;
};

#define BAD -1
#define LONG_NAME_40 "X-Forty-Characters-Long-Field-Name-Okay-"
#define IF_NAME_40 "If-Forty-Characters-Long-Field-Name-Drop"
#define NAME_32 "X-Thirty-Two-Characters-Long-Nm"
#define NAME_33 "X-Thirty-Three-Characters-Long-Nm"

static const struct out_case out_cases[] = {
	{ "identity", S("5;e=1\r\nhello\r\n0\r\nContent-Length: 5\r\n\r\n"), 0, 0 },
	{ "drop_framing_routing",
	  S("5\r\nhello\r\n0\r\nContent-Length: 5\r\nX-Sum: abc\r\n"
	    "Transfer-Encoding: chunked\r\nHOST: evil\r\nChecksum: 1\r\n\r\n"
	    "GET /next HTTP/1.1\r\n"), F_DROP, 20,
	  S("5\r\nhello\r\n0\r\nX-Sum: abc\r\nChecksum: 1\r\n\r\n") },
	{ "drop_everything",
	  S("0\r\ncontent-length: 0\r\nConnection: close\r\nTE: trailers\r\n\r\n"),
	  F_DROP, 0, S("0\r\n\r\n") },
	{ "drop_none_there", S("0\r\n\r\n"), F_DROP, 0, S("0\r\n\r\n") },
	{ "drop_keeps_lookalikes",
	  S("0\r\nContent-Lengths: 1\r\nX-Content-Length: 1\r\nHosts: a\r\n"
	    "If: x\r\nIfx-y: z\r\nTEE: 1\r\nT: 2\r\nContent: 3\r\nHos: 4\r\n\r\n"),
	  F_DROP, 0, NULL },
	{ "drop_conditionals",
	  S("0\r\nIf-Match: x\r\nif-none-match: y\r\nIF-MODIFIED-SINCE: z\r\n"
	    "If-Anything-Else: z\r\nIf-: w\r\nX: kept\r\n\r\n"),
	  F_DROP, 0, S("0\r\nX: kept\r\n\r\n") },
	{ "drop_empty_values", S("0\r\nHost:\r\nX:\r\nExpect:   \r\n\r\n"), F_DROP,
	  0, S("0\r\nX:\r\n\r\n") },
	{ "drop_long_names",
	  S("0\r\n" LONG_NAME_40 ": a\r\n" IF_NAME_40 ": b\r\n" NAME_32 ": c\r\n"
	    NAME_33 ": d\r\nContent-Type: e\r\n\r\n"),
	  F_DROP, 0,
	  S("0\r\n" LONG_NAME_40 ": a\r\n" NAME_32 ": c\r\n" NAME_33 ": d\r\n\r\n") },
	{ "drop_keeps_ext_and_data",
	  S("3;x=1\r\na\r\n\r\n0;last\r\nTrailer: x\r\nA: b\r\n\r\nGET"), F_DROP, 3,
	  S("3;x=1\r\na\r\n\r\n0;last\r\nA: b\r\n\r\n") },
	{ "dechunk",
	  S("5;ext=1;q=\"a b\"\r\nhello\r\n1A ; big\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	    "000a\r\n0123456789\r\n0;last=yes\r\nX-Trailer: v\r\nChecksum: abc def\r\n\r\n"
	    "GET / HTTP/1.1\r\n"),
	  F_DECHUNK, 16, S("helloabcdefghijklmnopqrstuvwxyz0123456789") },
	{ "dechunk_and_drop", S("2\r\nab\r\n1\r\nc\r\n0\r\nX: y\r\n\r\n"),
	  F_DECHUNK | F_DROP, 0, S("abc") },
	{ "dechunk_empty", S("0\r\n\r\n"), F_DECHUNK, 0, S("") },
	{ "dechunk_data_looks_like_framing",
	  S("d\r\n\r\n0\r\n\r\n1\r\nx\r\n\r\n0\r\nHost: a\r\n\r\n"), F_DECHUNK, 0,
	  S("\r\n0\r\n\r\n1\r\nx\r\n") },
	{ "dechunk_binary", S("4\r\n\0\xff\n\r\r\n0\r\n\r\n"), F_DECHUNK, 0,
	  S("\0\xff\n\r") },
	{ "drop_bad_name", S("0\r\nContent-Length : 5\r\n\r\n"), F_DROP, BAD },
	{ "drop_bad_lf", S("0\r\nHost: a\n\r\n"), F_DROP, BAD },
	{ "drop_bad_ctl", S("0\r\nHost: a\x01\r\n\r\n"), F_DROP, BAD },
	{ "drop_bad_fold", S("0\r\nHost: a\r\n b\r\n\r\n"), F_DROP, BAD },
	{ "drop_bad_no_colon", S("0\r\nHost\r\n\r\n"), F_DROP, BAD },
	{ "dechunk_bad_size", S("5\r\nhello\r\nzz\r\n"), F_DECHUNK, BAD },
	{ "dechunk_bad_crlf", S("5\r\nhelloX\r\n0\r\n\r\n"), F_DECHUNK, BAD },
	{ "dechunk_wrap", S("10000000000000005\r\nhello\r\n0\r\n\r\n"), F_DECHUNK, BAD },
};

static void check_out_case(const struct out_case *c)
{
	long want = c->tail == BAD ? -400 : (long)(c->len - c->tail);
	const char *want_out = c->out ? c->out : c->raw;
	size_t want_len = c->out ? c->out_len : (size_t)(want > 0 ? want : 0);
	char *buf = dup_exact(c->raw, c->len), *res = malloc(c->len + 1);
	size_t res_len, k;
	long got;
	int iter;

	if (!ASSERT_OK_PTR(buf, "malloc") || !ASSERT_OK_PTR(res, "malloc"))
		goto out;
	/* the plain framer agrees on where the message ends */
	got = frame_whole(FG_BODY_CHUNKED, buf, c->len);
	_CHECK(got != want, c->name, "feed: %ld want %ld", got, want);

#define CHECK_RUN(what, ...)                                                  \
	do {                                                                  \
		got = frame_out(FG_BODY_CHUNKED, 0, c->flags, buf, c->len,    \
				__VA_ARGS__, res, &res_len);                  \
		if (!_CHECK(got != want, c->name, "%s: %ld want %ld",         \
			    what, got, want))                                 \
			goto out;                                             \
		if (got > 0 && !ASSERT_MEMEQ(res, res_len, want_out,          \
					     want_len, c->name))              \
			goto out;                                             \
	} while (0)

	CHECK_RUN("whole", P_WHOLE, 0, 0, false);
	CHECK_RUN("byte by byte", P_BYTES, 0, 0, false);
	for (k = 0; k <= c->len; k++)
		CHECK_RUN("split", P_SPLIT, k, 0, false);
	for (iter = 0; iter < 300; iter++)
		CHECK_RUN("random", P_RANDOM, 0, 1 + iter % 17, iter & 1);
#undef CHECK_RUN
out:
	free(buf);
	free(res);
}

static void test_framer_out_cases(void)
{
	size_t i;

	for (i = 0; i < sizeof(out_cases) / sizeof(out_cases[0]); i++)
		check_out_case(&out_cases[i]);
}

/* Every prohibited name, in three spellings, split at every byte: dropped;
 * the same name with a byte more or less: kept. */
static void test_framer_out_prohibited(void)
{
	static const char *const names[] = {
		"Content-Length", "Transfer-Encoding", "Host", "Cache-Control",
		"Expect", "Max-Forwards", "Pragma", "Range", "TE", "If-Match",
		"If-None-Match", "If-Modified-Since", "If-Unmodified-Since",
		"If-Range", "Authorization", "Proxy-Authorization",
		"WWW-Authenticate", "Proxy-Authenticate", "Authentication-Info",
		"Proxy-Authentication-Info", "Cookie", "Set-Cookie", "Age",
		"Date", "Expires", "Location", "Retry-After", "Vary", "Warning",
		"Content-Encoding", "Content-Type", "Content-Range", "Trailer",
		"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade",
		"X-Forwarded-For", "X-Forwarded-Proto", "X-Real-IP",
	};
	static const char *const allowed[] = {
		"X-Checksum", "Server-Timing", "Digest", "ETag", "Content-MD5",
		"Content-Location", "Link", "Forwarded-Other", "I", "If", "Ifx",
		"X-If-Match", "Hostx", "Xhost", "Content-Lengt", "T", "Ages",
	};
	char raw[256], want[256], res[256], variant[64];
	size_t i, v, res_len;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		for (v = 0; v < 3; v++) {
			size_t k, n = strlen(names[i]);
			int len, wlen;
			long got;

			for (k = 0; k <= n; k++)
				variant[k] = v == 0 ? names[i][k] :
					     v == 1 ? lower(names[i][k]) :
						      upper(names[i][k]);
			ASSERT_TRUE(fg_http_trailer_prohibited(variant, n),
				    variant);
			len = snprintf(raw, sizeof(raw),
				       "1\r\nx\r\n0\r\nA: 1\r\n%s: v\r\nB: 2\r\n\r\n",
				       variant);
			wlen = snprintf(want, sizeof(want),
					"1\r\nx\r\n0\r\nA: 1\r\nB: 2\r\n\r\n");
			for (k = 0; k <= (size_t)len; k++) {
				got = frame_out(FG_BODY_CHUNKED, 0, F_DROP, raw,
						len, P_SPLIT, k, 0, false, res,
						&res_len);
				if (!ASSERT_EQ(got, len, variant) ||
				    !ASSERT_MEMEQ(res, res_len, want, wlen, variant))
					return;
			}
			/* the name with a byte more: kept (but for "If-*") */
			len = snprintf(raw, sizeof(raw), "0\r\n%sx: v\r\n\r\n",
				       variant);
			got = frame_out(FG_BODY_CHUNKED, 0, F_DROP, raw, len,
					P_BYTES, 0, 0, false, res, &res_len);
			ASSERT_EQ(got, len, variant);
			if (strncasecmp(variant, "if-", 3))
				ASSERT_MEMEQ(res, res_len, raw, len, variant);
			else
				ASSERT_MEMEQ(res, res_len, "0\r\n\r\n", 5, variant);
			/* a byte less (unless that is another prohibited
			 * name or an "If-" one) */
			if (!fg_http_trailer_prohibited(variant, n - 1)) {
				len = snprintf(raw, sizeof(raw),
					       "0\r\n%.*s: v\r\n\r\n", (int)n - 1,
					       variant);
				got = frame_out(FG_BODY_CHUNKED, 0, F_DROP, raw,
						len, P_BYTES, 0, 0, false, res,
						&res_len);
				ASSERT_EQ(got, len, variant);
				ASSERT_MEMEQ(res, res_len, raw, len, variant);
			}
		}
	}
	for (i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++) {
		int len = snprintf(raw, sizeof(raw), "0\r\n%s: v\r\n\r\n",
				   allowed[i]);
		long got;

		ASSERT_FALSE(fg_http_trailer_prohibited(allowed[i],
							strlen(allowed[i])),
			     allowed[i]);
		got = frame_out(FG_BODY_CHUNKED, 0, F_DROP, raw, len, P_BYTES,
				0, 0, false, res, &res_len);
		ASSERT_EQ(got, len, allowed[i]);
		ASSERT_MEMEQ(res, res_len, raw, len, allowed[i]);
	}
}

/* The malformed and incomplete chunked cases end the same way through
 * feed_out in every mode as through feed (whole and byte by byte), and
 * without a filter feed_out forwards exactly the bytes feed consumed. */
static void test_framer_out_matches_feed(void)
{
	static const unsigned modes[] = { 0, F_DROP, F_DECHUNK, F_DROP | F_DECHUNK };
	size_t i, m, res_len;

	for (i = 0; i < sizeof(chunk_cases) / sizeof(chunk_cases[0]); i++) {
		const struct chunk_case *c = &chunk_cases[i];
		char *buf = dup_exact(c->raw, c->len), *res = malloc(c->len + 1);
		long want = c->want ? c->want : -1;

		for (m = 0; buf && res && m < 4; m++) {
			long w = frame_out(FG_BODY_CHUNKED, 0, modes[m], buf,
					   c->len, P_WHOLE, 0, 0, false, res,
					   &res_len);
			long b = frame_out(FG_BODY_CHUNKED, 0, modes[m], buf,
					   c->len, P_BYTES, 0, 0, false, res,
					   &res_len);

			_CHECK(w != want, c->name, "mode %u whole: %ld want %ld",
			       modes[m], w, want);
			_CHECK(b != want, c->name, "mode %u bytes: %ld want %ld",
			       modes[m], b, want);
			if (!modes[m] && want > 0)
				ASSERT_MEMEQ(res, res_len, c->raw, want, c->name);
		}
		free(buf);
		free(res);
	}
}

static void test_framer_out_misc(void)
{
	static const char body[] = "5\r\nhello\r\n0\r\nHost: x\r\n\r\n";
	struct fg_http_request req = { .body = FG_BODY_CHUNKED };
	struct fg_http_framer f;
	char out[128], res[512];
	size_t out_len = 99, res_len, n = 16384, i;
	bool done = true;
	char *big = malloc(n);
	long ret;

	/* flags */
	fg_http_framer_init(&f, &req);
	ASSERT_EQ(fg_http_framer_set_filter(&f, 4), -EINVAL, "unknown flag");
	ASSERT_EQ(f.filter, 0, "unchanged");
	ASSERT_OK(fg_http_framer_set_filter(&f, F_DROP | F_DECHUNK), "flags");
	ASSERT_EQ(fg_http_framer_feed_out(&f, body, 3, out, NULL, &done),
		  -EINVAL, "out_len NULL");
	ASSERT_EQ(fg_http_framer_feed_out(&f, body, 3, NULL, &out_len, &done),
		  -EINVAL, "out NULL");
	ASSERT_EQ(fg_http_framer_feed_out(&f, body, 0, NULL, &out_len, &done),
		  0, "nothing to feed");
	ASSERT_EQ(out_len, 0, "nothing out");
	ASSERT_FALSE(done, "not done");
	/* init clears the filter */
	fg_http_framer_init(&f, &req);
	ASSERT_EQ(f.filter, 0, "init clears the filter");

	/* sticky error, *out_len 0 */
	fg_http_framer_init(&f, &req);
	fg_http_framer_set_filter(&f, F_DROP);
	ASSERT_EQ(fg_http_framer_feed_out(&f, "0\r\nHost: a\r\n b\r\n", 16, out,
					  &out_len, &done), -400, "error");
	ASSERT_EQ(out_len, 0, "no output on error");
	ASSERT_EQ(fg_http_framer_feed_out(&f, "0\r\n\r\n", 5, out, &out_len,
					  &done), -400, "sticky");

	/* after done: nothing consumed, nothing out */
	fg_http_framer_init(&f, &req);
	fg_http_framer_set_filter(&f, F_DECHUNK);
	ret = fg_http_framer_feed_out(&f, body, sizeof(body) - 1, out, &out_len,
				      &done);
	ASSERT_EQ(ret, (long)sizeof(body) - 1, "dechunk all");
	ASSERT_TRUE(done, "done");
	ASSERT_MEMEQ(out, out_len, "hello", 5, "dechunked");
	ASSERT_EQ(fg_http_framer_feed_out(&f, body, 5, out, &out_len, &done), 0,
		  "after done");
	ASSERT_EQ(out_len, 0, "nothing after done");

	/* dechunk with the data skipped (the splice path): the framer writes
	 * none of the framing, the caller forwards the data */
	fg_http_framer_init(&f, &req);
	fg_http_framer_set_filter(&f, F_DECHUNK);
	ASSERT_EQ(fg_http_framer_feed_out(&f, body, 3, out, &out_len, &done), 3,
		  "size line");
	ASSERT_EQ(out_len, 0, "size line not forwarded");
	ASSERT_EQ(fg_http_framer_opaque(&f), 5, "data opaque");
	ASSERT_OK(fg_http_framer_skip(&f, 5), "skip data");
	ASSERT_EQ(fg_http_framer_feed_out(&f, body + 8, sizeof(body) - 9, out,
					  &out_len, &done),
		  (long)sizeof(body) - 9, "rest");
	ASSERT_EQ(out_len, 0, "no framing forwarded");
	ASSERT_TRUE(done, "done after skip");

	/* a held name is written with the byte that decides it: one byte
	 * in, up to FG_HTTP_FRAMER_OUT_SLACK + 1 out, never more */
	fg_http_framer_init(&f, &req);
	fg_http_framer_set_filter(&f, F_DROP);
	{
		static const char tr[] = "0\r\n" LONG_NAME_40 ": v\r\n" NAME_32
					 ": w\r\n\r\n";
		size_t max = 0;

		res_len = 0;
		for (i = 0; i < sizeof(tr) - 1; i++) {
			char *o = malloc(1 + FG_HTTP_FRAMER_OUT_SLACK);

			ret = fg_http_framer_feed_out(&f, tr + i, 1, o, &out_len,
						      &done);
			if (!ASSERT_EQ(ret, 1, "one byte"))
				break;
			if (out_len > max)
				max = out_len;
			memcpy(res + res_len, o, out_len);
			res_len += out_len;
			free(o);
		}
		ASSERT_TRUE(done, "done");
		ASSERT_EQ(max, FG_HTTP_FRAMER_OUT_SLACK + 1, "largest output");
		ASSERT_MEMEQ(res, res_len, tr, sizeof(tr) - 1, "kept as is");
	}

	/* Content-Length and close-delimited bodies: copied in every mode */
	{
		struct fg_http_request lreq = { .body = FG_BODY_LENGTH,
						.content_length = 4 };

		fg_http_framer_init(&f, &lreq);
		fg_http_framer_set_filter(&f, F_DECHUNK | F_DROP);
		ASSERT_EQ(fg_http_framer_feed_out(&f, "abcdef", 6, out, &out_len,
						  &done), 4, "length");
		ASSERT_MEMEQ(out, out_len, "abcd", 4, "length out");
		ASSERT_TRUE(done, "length done");
		lreq.body = FG_BODY_CLOSE;
		fg_http_framer_init(&f, &lreq);
		fg_http_framer_set_filter(&f, F_DECHUNK);
		ASSERT_EQ(fg_http_framer_feed_out(&f, "0\r\n\r\n", 5, out,
						  &out_len, &done), 5, "close");
		ASSERT_MEMEQ(out, out_len, "0\r\n\r\n", 5, "close out");
		ASSERT_FALSE(done, "close not done");
		lreq.body = FG_BODY_NONE;
		fg_http_framer_init(&f, &lreq);
		ASSERT_EQ(fg_http_framer_feed_out(&f, "GET", 3, out, &out_len,
						  &done), 0, "none");
		ASSERT_EQ(out_len, 0, "none out");
		ASSERT_TRUE(done, "none done");
	}

	/* the trailer section limit holds whatever is dropped */
	if (ASSERT_OK_PTR(big, "malloc")) {
		char *o = malloc(n + FG_HTTP_FRAMER_OUT_SLACK);

		memcpy(big, "0\r\n", 3);
		for (i = 3; i + 9 < n; i += 9)
			memcpy(big + i, "Host: a\r\n", 9);
		fg_http_framer_init(&f, &req);
		fg_http_framer_set_filter(&f, F_DROP);
		ASSERT_EQ(fg_http_framer_feed_out(&f, big, i, o, &out_len, &done),
			  -400, "dropped trailers too long");
		/* a single trailer line of FG_HTTP_MAX_TRAILER bytes */
		memcpy(big, "0\r\nX: ", 6);
		memset(big + 6, 'a', FG_HTTP_MAX_TRAILER);
		for (i = 0; i < 2; i++) {
			fg_http_framer_init(&f, &req);
			fg_http_framer_set_filter(&f, i ? F_DECHUNK : F_DROP);
			ASSERT_EQ(fg_http_framer_feed_out(&f, big,
							  6 + FG_HTTP_MAX_TRAILER,
							  o, &out_len, &done),
				  -400, "trailer line too long");
		}
		/* just at the limit: section (with the last-chunk LF and the
		 * final CRLF) of FG_HTTP_MAX_TRAILER bytes */
		{
			size_t line = FG_HTTP_MAX_TRAILER - 1 - 2 - 2;
			size_t tot = 3 + line + 2 + 2;

			memcpy(big, "0\r\nX:", 5);
			memset(big + 5, 'a', line - 2);
			memcpy(big + 3 + line, "\r\n\r\n", 4);
			fg_http_framer_init(&f, &req);
			fg_http_framer_set_filter(&f, F_DROP);
			ret = fg_http_framer_feed_out(&f, big, tot, o, &out_len,
						      &done);
			ASSERT_EQ(ret, (long)tot, "at the limit");
			ASSERT_TRUE(done, "at the limit done");
			ASSERT_MEMEQ(o, out_len, big, tot, "at the limit out");
			/* one byte more in the name */
			memmove(big + 4, big + 3, tot - 3);
			big[3] = 'Y';
			fg_http_framer_init(&f, &req);
			ASSERT_EQ(fg_http_framer_feed(&f, big, tot + 1, &done),
				  -400, "one byte over");
		}
		free(o);
	}
	free(big);
}

/* ---- random mutations ---- */

#define FUZZ_ITERS 100000

static const char *const fuzz_seeds[] = {
	"GET /a/b?c=d HTTP/1.1\r\nHost: example.com:8080\r\nCookie: a=1; stage=gray\r\n"
	"Connection: keep-alive, X-Foo\r\nX-Foo: bar\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
	"POST /up HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"
	"hello world",
	"POST /c HTTP/1.1\r\nHost: [::1]:80\r\nTransfer-Encoding: chunked\r\n\r\n"
	"5;x=y\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\n"
	"GET /next HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://Foo.example/x HTTP/1.1\r\nHost: foo\r\nTE: trailers\r\nUpgrade: h2c\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"\r\nPUT /x HTTP/1.1\nHost: b\nContent-Length: 0\n\n",
	"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"HTTP/1.0 204 No Content\r\nContent-Length: 0\r\nConnection: keep-alive\r\n\r\n",
	"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"
	"0\r\nContent-Length: 3\r\nX-Sum: 1\r\nHost: b\r\nIf-Match: x\r\n\r\nGET / HTTP/1.1\r\n",
};

static const char interesting[] = "\r\n \t:;,=0aF\x7f\x80/?*[]@\"-";

static size_t mutate(char *buf, size_t len, size_t cap)
{
	int ops = 1 + rndn(4), i;

	for (i = 0; i < ops; i++) {
		size_t at = rndn(len + 1), n;

		switch (rndn(7)) {
		case 0: /* random byte */
			if (len)
				buf[rndn(len)] = rnd();
			break;
		case 1: /* interesting byte */
			if (len)
				buf[rndn(len)] =
					interesting[rndn(sizeof(interesting))];
			break;
		case 2: /* insert */
			if (len < cap) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = interesting[rndn(sizeof(interesting))];
				len++;
			}
			break;
		case 3: /* delete */
			if (at < len) {
				memmove(buf + at, buf + at + 1, len - at - 1);
				len--;
			}
			break;
		case 4: /* truncate */
			len = rndn(len + 1);
			break;
		case 5: /* duplicate a slice */
			n = rndn(16);
			if (at + n <= len && len + n <= cap) {
				memmove(buf + at + n, buf + at, len - at);
				len += n;
			}
			break;
		default: /* flip case */
			if (len)
				buf[rndn(len)] ^= 0x20;
			break;
		}
	}
	return len;
}

static bool in_buf(const char *p, size_t n, const char *buf, size_t len)
{
	return !n || (p >= buf && p + n <= buf + len);
}

static void test_fuzz(void)
{
	struct fg_http_request *req = malloc(sizeof(*req));
	struct fg_http_request *re = malloc(sizeof(*re));
	struct fg_http_response *resp = malloc(sizeof(*resp));
	size_t cap = 1024, olen = 70000;
	char *work = malloc(cap), *out = malloc(olen);
	unsigned long parsed = 0, errors = 0, incomplete = 0, rewritten = 0;
	long iter;

	if (!ASSERT_OK_PTR(req, "malloc") || !ASSERT_OK_PTR(re, "malloc") ||
	    !ASSERT_OK_PTR(resp, "malloc") || !ASSERT_OK_PTR(work, "malloc") ||
	    !ASSERT_OK_PTR(out, "malloc"))
		goto out;
	rng_state = 0x2545f4914f6cdd1dULL;
	for (iter = 0; iter < FUZZ_ITERS; iter++) {
		const char *seed = fuzz_seeds[rndn(sizeof(fuzz_seeds) /
						   sizeof(fuzz_seeds[0]))];
		size_t len = strlen(seed), k;
		const char *why = NULL;
		char *buf;
		int ret;
		unsigned i;

		memcpy(work, seed, len);
		len = mutate(work, len, cap);
		buf = dup_exact(work, len);
		if (!buf)
			break;
		ret = fg_http_parse_request(buf, len, NULL, req, &why);
		if (!_CHECK(ret > (int)len, "head_len <= len",
			    "iteration %ld: %d > %zu", iter, ret, len) ||
		    !_CHECK(ret < 0 && !why, "why", "iteration %ld", iter) ||
		    !_CHECK(ret < 0 && ret != -400 && ret != -414 &&
			    ret != -431 && ret != -501 && ret != -505,
			    "status", "iteration %ld: %d", iter, ret)) {
			free(buf);
			break;
		}
		if (ret < 0)
			errors++;
		else if (!ret)
			incomplete++;
		if (ret > 0) {
			struct fg_http_framer f;
			size_t pos = ret;
			bool done = false;
			long b;

			parsed++;
			ASSERT_EQ(req->head_len, (size_t)ret, "head_len");
			ASSERT_LT(req->host_len, sizeof(req->host_buf), "host");
			ASSERT_LE(req->n_headers, FG_HTTP_MAX_HEADERS, "n");
			for (i = 0; i < req->n_headers; i++) {
				const struct fg_http_header *h = &req->headers[i];

				if (!in_buf(h->name, h->name_len, buf, ret) ||
				    !in_buf(h->value, h->value_len, buf, ret))
					ASSERT_TRUE(false, "header in head");
			}
			ASSERT_TRUE(in_buf(req->target, req->target_len, buf,
					   ret), "target in head");
			/* no proper prefix parses as a head */
			k = rndn(ret);
			ASSERT_LE(fg_http_parse_request(buf, k, NULL, re, NULL),
				  0, "prefix");
			/* frame what follows in random pieces */
			fg_http_framer_init(&f, req);
			while (!done && pos < len) {
				size_t piece = 1 + rndn(len - pos);

				b = fg_http_framer_feed(&f, buf + pos, piece,
							&done);
				if (b < 0)
					break;
				if (!ASSERT_LE(b, (long)piece, "framer"))
					break;
				pos += b;
			}
			/* feed_out ends the body where feed does, in every
			 * mode and split */
			if (req->body == FG_BODY_CHUNKED) {
				char *res = malloc(len - ret + 1);
				size_t res_len;
				long w = frame_out(FG_BODY_CHUNKED, 0, 0,
						   buf + ret, len - ret, P_WHOLE,
						   0, 0, false, res, &res_len);
				long d = frame_out(FG_BODY_CHUNKED, 0, F_DROP,
						   buf + ret, len - ret,
						   P_RANDOM, 0, 1 + rndn(8),
						   rndn(2), res, &res_len);
				long x = frame_out(FG_BODY_CHUNKED, 0,
						   F_DECHUNK, buf + ret,
						   len - ret, P_BYTES, 0, 0,
						   false, res, &res_len);

				_CHECK(w < -1000 || d != w || x != w,
				       "feed_out", "iteration %ld: %ld %ld %ld",
				       iter, w, d, x);
				free(res);
			}
			/* the rewritten head parses back to the same request */
			if (req->host_len && req->n_headers <= 95) {
				struct fg_http_limits big = { .max_head = olen };
				int n = fg_http_rewrite_head(req, "10.1.2.3",
							     "http", out, olen);
				int r2;

				if (ASSERT_GT(n, 0, "rewrite")) {
					rewritten++;
					r2 = fg_http_parse_request(out, n, &big,
								   re, &why);
					if (!_CHECK(r2 != n, "reparse",
						    "iteration %ld: %d (%s)",
						    iter, r2, why ? why : "-") ||
					    !ASSERT_EQ(re->body, req->body, "body") ||
					    !ASSERT_EQ(re->content_length,
						       req->content_length, "cl") ||
					    !ASSERT_EQ(re->host_len, req->host_len,
						       "host") ||
					    !ASSERT_TRUE(re->keep_alive, "ka")) {
						free(buf);
						break;
					}
				}
			}
		}
		/* the same bytes as a response */
		ret = fg_http_parse_response(buf, len, rndn(2), resp, &why);
		if (!_CHECK(ret > (int)len || (ret < 0 && ret != -502), "resp",
			    "iteration %ld: %d", iter, ret)) {
			free(buf);
			break;
		}
		free(buf);
	}
	if (test__verbose())
		printf("fuzz: %ld iterations, %lu parsed, %lu rewritten, "
		       "%lu refused, %lu incomplete\n", iter, parsed,
		       rewritten, errors, incomplete);
	ASSERT_GT(parsed, FUZZ_ITERS / 20, "some mutations still parse");
	ASSERT_GT(errors, FUZZ_ITERS / 20, "some mutations are refused");
out:
	free(req);
	free(re);
	free(resp);
	free(work);
	free(out);
}

FG_TEST(http)
{
	size_t i;

	if (test__start_subtest("requests")) {
		for (i = 0; i < sizeof(rq_cases) / sizeof(rq_cases[0]); i++)
			check_rq_case(&rq_cases[i]);
	}
	if (test__start_subtest("prefixes")) {
		for (i = 0; i < sizeof(rq_cases) / sizeof(rq_cases[0]); i++) {
			const struct rq_case *c = &rq_cases[i];

			if (c->want > 0)
				check_prefixes(c->raw, c->want == FULL ?
					       c->len : (size_t)c->want, false);
		}
	}
	if (test__start_subtest("keep_alive_lookups"))
		test_lookups();
	if (test__start_subtest("rewrite"))
		test_rewrite();
	if (test__start_subtest("limits"))
		test_limits();
	if (test__start_subtest("chunked"))
		test_chunked_framing();
	if (test__start_subtest("chunked_errors"))
		test_chunk_cases();
	if (test__start_subtest("chunked_limits"))
		test_chunk_limits();
	if (test__start_subtest("length"))
		test_length_framing();
	if (test__start_subtest("pipeline"))
		test_pipeline();
	if (test__start_subtest("responses"))
		test_responses();
	if (test__start_subtest("response_stream"))
		test_response_stream();
	if (test__start_subtest("content_length_bounds"))
		test_content_length_bounds();
	if (test__start_subtest("chunk_size_bounds"))
		test_chunk_size_bounds();
	if (test__start_subtest("framer_out"))
		test_framer_out_cases();
	if (test__start_subtest("framer_out_prohibited"))
		test_framer_out_prohibited();
	if (test__start_subtest("framer_out_matches_feed"))
		test_framer_out_matches_feed();
	if (test__start_subtest("framer_out_misc"))
		test_framer_out_misc();
	if (test__start_subtest("fuzz"))
		test_fuzz();
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target: the HTTP request and response parsers, the head
 * rewrite and the body framer, on arbitrary bytes. Built by `make fuzz`.
 *
 * Besides memory safety (ASan, UBSan), it checks what the parser DECIDES
 * against references written here independently of agent/http.c, and
 * abort()s on any disagreement:
 *   - every Content-Length field of an accepted request or response, found
 *     by scanning the raw head's lines (not the parser's header list), is
 *     1*DIGIT, fits strtoull without ERANGE, is at most 2^62, and equals
 *     the content_length the parser reports;
 *   - the framing (FG_BODY_NONE / LENGTH / CHUNKED / CLOSE and
 *     content_length) follows from the parsed header list by a small
 *     reference of RFC 9112 §6.3;
 *   - a chunked body is re-framed by a reference dechunker (each chunk size
 *     re-derived with strtoull(..., 16) on the chunk-size line's digits):
 *     the framer must end the message at the same offset, need more bytes
 *     exactly when the reference does, and refuse exactly what it refuses;
 *     fg_http_framer_feed_out must forward the reference's bytes: the
 *     concatenated chunk data (FG_FRAMER_DECHUNK), the message minus the
 *     prohibited trailer fields (FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED),
 *     or the message as it is (no filter), whatever the split of the
 *     input and whether data goes by fg_http_framer_skip;
 *   - numbers synthesized from the input's first bytes (check_synth) as a
 *     Content-Length, a chunk size and a Host port: accepted exactly when
 *     the strtoull/strtoul reference accepts them, with the same value.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"

#define REF_MAX_LENGTH (1ULL << 62)

/* The limits the framer documents (http.h), restated. */
#define REF_MAX_CHUNK_LINE 4096 /* bytes before the LF of a chunk-size line */
#define REF_MAX_TRAILER 8192    /* last-chunk LF + trailer section */

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_http: disagreement: %s\n", what);
	abort();
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		abort();
	return p;
}

#define CHECK(cond, what)                                                     \
	do {                                                                  \
		if (!(cond))                                                  \
			fail(what);                                           \
	} while (0)

/* ---- reference: Content-Length and framing ---------------------------- */

/* Content-Length = 1*DIGIT, <= 2^62: strtoull on a NUL-terminated copy. */
static bool ref_content_length(const char *v, size_t n,
			       unsigned long long *out)
{
	char *copy, *end;
	unsigned long long x;
	size_t i;
	bool ok;

	if (n == 0)
		return false;
	for (i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return false;
	copy = xstrndup(v, n);
	errno = 0;
	x = strtoull(copy, &end, 10);
	ok = errno != ERANGE && *end == '\0' && x <= REF_MAX_LENGTH;
	free(copy);
	if (ok)
		*out = x;
	return ok;
}

static bool name_is(const char *n, size_t l, const char *lit)
{
	return strlen(lit) == l && !strncasecmp(n, lit, l);
}

/*
 * The raw head buf[0..head_len) as lines: every "Content-Length:" line after
 * the start line must hold a valid value, equal to want. Returns how many.
 */
static unsigned raw_content_lengths(const char *buf, size_t head_len,
				    unsigned long long want)
{
	size_t p = 0;
	unsigned n = 0;
	bool start_seen = false;

	while (p < head_len) {
		const char *lf = memchr(buf + p, '\n', head_len - p);
		size_t e = lf ? (size_t)(lf - buf) : head_len, vs, ve;
		const char *colon;
		unsigned long long v;

		if (e > p && buf[e - 1] == '\r')
			e--;
		if (e == p) { /* empty line: before the start line, or the end */
			p = (lf ? (size_t)(lf - buf) : head_len) + 1;
			continue;
		}
		if (!start_seen) {
			start_seen = true;
			p = (lf ? (size_t)(lf - buf) : head_len) + 1;
			continue;
		}
		colon = memchr(buf + p, ':', e - p);
		if (colon && name_is(buf + p, colon - (buf + p), "content-length")) {
			vs = colon - buf + 1;
			ve = e;
			while (vs < ve && (buf[vs] == ' ' || buf[vs] == '\t'))
				vs++;
			while (ve > vs && (buf[ve - 1] == ' ' || buf[ve - 1] == '\t'))
				ve--;
			CHECK(ref_content_length(buf + vs, ve - vs, &v),
			      "accepted a Content-Length the reference refuses");
			CHECK(v == want, "Content-Length value differs");
			n++;
		}
		p = (lf ? (size_t)(lf - buf) : head_len) + 1;
	}
	return n;
}

struct ref_framing {
	unsigned n_cl, n_te;
	unsigned long long cl;
	bool last_chunked; /* the last non-empty coding is "chunked" */
};

static void ref_scan(const struct fg_http_header *h, unsigned n,
		     struct ref_framing *r)
{
	unsigned i;

	memset(r, 0, sizeof(*r));
	for (i = 0; i < n; i++) {
		if (name_is(h[i].name, h[i].name_len, "content-length")) {
			unsigned long long v;

			CHECK(ref_content_length(h[i].value, h[i].value_len, &v),
			      "a parsed Content-Length field is invalid");
			CHECK(!r->n_cl || v == r->cl,
			      "differing Content-Length values accepted");
			r->cl = v;
			r->n_cl++;
		} else if (name_is(h[i].name, h[i].name_len,
				   "transfer-encoding")) {
			const char *s = h[i].value, *e = s + h[i].value_len;

			r->n_te++;
			while (s < e) {
				const char *c = memchr(s, ',', e - s), *st = s;
				const char *en = c ? c : e;

				while (st < en && (*st == ' ' || *st == '\t'))
					st++;
				while (en > st && (en[-1] == ' ' || en[-1] == '\t'))
					en--;
				if (en > st)
					r->last_chunked = name_is(st, en - st,
								  "chunked");
				s = c ? c + 1 : e;
			}
		}
	}
}

static void check_request(const char *buf, const struct fg_http_request *req)
{
	struct ref_framing r;
	unsigned n_raw;

	ref_scan(req->headers, req->n_headers, &r);
	n_raw = raw_content_lengths(buf, req->head_len, req->content_length);
	CHECK(n_raw == r.n_cl, "Content-Length lines and fields differ");
	if (r.n_te) {
		CHECK(!r.n_cl, "Content-Length with Transfer-Encoding accepted");
		CHECK(req->version_minor == 1, "Transfer-Encoding in 1.0");
		CHECK(r.last_chunked, "request coding not chunked accepted");
		CHECK(req->body == FG_BODY_CHUNKED, "request framing: chunked");
	} else if (r.n_cl) {
		CHECK(req->body == FG_BODY_LENGTH, "request framing: length");
		CHECK(req->content_length == r.cl, "request content_length");
	} else {
		CHECK(req->body == FG_BODY_NONE, "request framing: none");
	}
}

static void check_response(const char *buf, const struct fg_http_response *resp,
			   bool head)
{
	struct ref_framing r;
	enum fg_http_body want;
	unsigned n_raw;

	ref_scan(resp->headers, resp->n_headers, &r);
	n_raw = raw_content_lengths(buf, resp->head_len, resp->content_length);
	CHECK(n_raw == r.n_cl, "response Content-Length lines and fields");
	CHECK(resp->content_length == (r.n_cl ? r.cl : 0),
	      "response content_length");
	CHECK(!(r.n_te && r.n_cl), "response with both CL and TE accepted");
	if (resp->status < 200 || resp->status == 204 || resp->status == 304 ||
	    head)
		want = FG_BODY_NONE;
	else if (r.n_te)
		want = r.last_chunked ? FG_BODY_CHUNKED : FG_BODY_CLOSE;
	else if (r.n_cl)
		want = FG_BODY_LENGTH;
	else
		want = FG_BODY_CLOSE;
	CHECK(resp->body == want, "response framing");
}

/* ---- reference: chunked body ------------------------------------------ */

enum { REF_DONE, REF_MORE, REF_ERR };

struct ref_chunked {
	int verdict;
	size_t end;        /* REF_DONE: the message length */
	char *data;        /* the chunk data, concatenated */
	size_t data_len;
	char *kept;        /* REF_DONE: the message minus prohibited trailers */
	size_t kept_len;
};

/* Written from RFC 9110 §6.5.1 and RFC 7230 §4.1.2, separately from the
 * list in http.c; "if-*" is every conditional. */
static bool ref_prohibited(const char *n, size_t l)
{
	static const char *const names[] = {
		"content-length", "transfer-encoding", "host", "cache-control",
		"expect", "max-forwards", "pragma", "range", "te",
		"authorization", "proxy-authorization", "www-authenticate",
		"proxy-authenticate", "authentication-info",
		"proxy-authentication-info", "cookie", "set-cookie", "age",
		"date", "expires", "location", "retry-after", "vary", "warning",
		"content-encoding", "content-type", "content-range", "trailer",
		"connection", "keep-alive", "proxy-connection", "upgrade",
		"x-forwarded-for", "x-forwarded-proto", "x-real-ip",
	};
	size_t i;

	if (l >= 3 && !strncasecmp(n, "if-", 3))
		return true;
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (name_is(n, l, names[i]))
			return true;
	return false;
}

static bool ref_tchar(unsigned char c)
{
	return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool ref_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

/*
 * A chunk-size line s[0..m) without its LF: complete (the caller saw the
 * LF; s ends with the CR) or a prefix. Grammar:
 *   1*HEXDIG [ *OWS ";" *ext-byte ] CR
 * (whitespace after the size only before a ';'; ext bytes are field bytes).
 * Returns false when no continuation can make it valid; *size gets the
 * size when complete.
 */
static bool ref_size_line(const char *s, size_t m, bool complete,
			  unsigned long long *size)
{
	size_t k = 0, i;
	bool cr = m && s[m - 1] == '\r';
	size_t c = cr ? m - 1 : m; /* content before the CR */
	char digits[REF_MAX_CHUNK_LINE + 1];
	unsigned long long v;
	char *end;

	if (complete && !cr)
		return false; /* bare LF */
	if (m > REF_MAX_CHUNK_LINE)
		return false;
	while (k < c && isxdigit((unsigned char)s[k]))
		k++;
	if (k) {
		memcpy(digits, s, k);
		digits[k] = '\0';
		errno = 0;
		v = strtoull(digits, &end, 16);
		if (errno == ERANGE || *end || v > REF_MAX_LENGTH)
			return false;
		*size = v;
	} else if (c || cr) {
		return false; /* no digit first */
	}
	i = k;
	while (i < c && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < c) {
		if (s[i] != ';')
			return false;
		for (i++; i < c; i++)
			if (s[i] == '\r' || !ref_field_byte(s[i]))
				return false;
	} else if (i > k && cr) {
		return false; /* whitespace then CR: no ';' */
	}
	return true;
}

/* A trailer line s[0..m) without its LF (complete: ends with the CR, and is
 * not the empty final line), or a prefix: 1*tchar ":" *field-byte CR. */
static bool ref_trailer_line(const char *s, size_t m, bool complete,
			     size_t *name_len)
{
	bool cr = m && s[m - 1] == '\r';
	size_t c = cr ? m - 1 : m, i = 0;

	if (complete && !cr)
		return false;
	while (i < c && ref_tchar(s[i]))
		i++;
	*name_len = i;
	if (i == c)
		return !cr; /* no colon yet: fine only while incomplete */
	if (s[i] != ':' || i == 0)
		return false;
	for (i++; i < c; i++)
		if (s[i] == '\r' || !ref_field_byte(s[i]))
			return false;
	return true;
}

static void kept_put(struct ref_chunked *r, const char *s, size_t n)
{
	memcpy(r->kept + r->kept_len, s, n);
	r->kept_len += n;
}

static void ref_dechunk(const char *b, size_t n, struct ref_chunked *r)
{
	size_t p = 0, tr;

	r->data_len = r->kept_len = 0;
	for (;;) {
		const char *lf = memchr(b + p, '\n', n - p);
		unsigned long long size = 0;
		size_t m = lf ? (size_t)(lf - (b + p)) : n - p;

		if (!ref_size_line(b + p, m, lf != NULL, &size)) {
			r->verdict = REF_ERR;
			return;
		}
		if (!lf) {
			r->verdict = REF_MORE;
			return;
		}
		kept_put(r, b + p, m + 1);
		p += m + 1;
		if (!size)
			break;
		if (n - p < size) {
			memcpy(r->data + r->data_len, b + p, n - p);
			r->data_len += n - p;
			r->verdict = REF_MORE;
			return;
		}
		memcpy(r->data + r->data_len, b + p, size);
		r->data_len += size;
		kept_put(r, b + p, size);
		p += size;
		if ((p < n && b[p] != '\r') || (p + 1 < n && b[p + 1] != '\n')) {
			r->verdict = REF_ERR;
			return;
		}
		if (p + 2 > n) {
			r->verdict = REF_MORE;
			return;
		}
		kept_put(r, b + p, 2);
		p += 2;
	}
	/* trailer section: counted from the LF of the last-chunk line */
	tr = 1;
	for (;;) {
		const char *lf = memchr(b + p, '\n', n - p);
		size_t m = lf ? (size_t)(lf - (b + p)) : n - p, name_len;

		tr += m + (lf != NULL);
		if (tr > REF_MAX_TRAILER) {
			r->verdict = REF_ERR;
			return;
		}
		if (m == 1 && b[p] == '\r') { /* the final CRLF */
			if (!lf) {
				r->verdict = REF_MORE;
				return;
			}
			kept_put(r, b + p, 2);
			r->verdict = REF_DONE;
			r->end = p + 2;
			return;
		}
		if (!ref_trailer_line(b + p, m, lf != NULL, &name_len)) {
			r->verdict = REF_ERR;
			return;
		}
		if (!lf) {
			r->verdict = REF_MORE;
			return;
		}
		if (!ref_prohibited(b + p, name_len))
			kept_put(r, b + p, m + 1);
		p += m + 1;
	}
}

/* ---- the framer against the references -------------------------------- */

/* A small deterministic generator for the piece sizes, seeded per input. */
static uint64_t rng;

static size_t rnd(size_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return n ? rng % n : 0;
}

/*
 * Runs body[0..len) through a framer set up by init, fed in pieces (random
 * sizes up to max_piece), through fg_http_framer_feed (flags < 0) or
 * fg_http_framer_feed_out with the filter flags, taking opaque bytes by
 * fg_http_framer_skip when use_skip says so at random. The output (what
 * the proxy would forward) goes to res. Returns REF_* and the end offset.
 */
static int run_framer(const struct fg_http_framer *init, int flags,
		      const char *body, size_t len, size_t max_piece,
		      bool use_skip, char *res, size_t *res_len, size_t *end)
{
	struct fg_http_framer f = *init;
	size_t pos = 0;
	bool done = fg_http_framer_done(&f);

	*res_len = 0;
	if (flags >= 0 && fg_http_framer_set_filter(&f, flags))
		fail("set_filter");
	while (!done && pos < len) {
		size_t piece = 1 + rnd(max_piece), out_len = 0;
		unsigned long long op = fg_http_framer_opaque(&f);
		char *out;
		long n;

		if (piece > len - pos)
			piece = len - pos;
		if (use_skip && op && rnd(2)) {
			if (piece > op)
				piece = op;
			CHECK(!fg_http_framer_skip(&f, piece), "skip refused");
			memcpy(res + *res_len, body + pos, piece);
			*res_len += piece;
			pos += piece;
			done = fg_http_framer_done(&f);
			continue;
		}
		if (flags < 0) {
			n = fg_http_framer_feed(&f, body + pos, piece, &done);
			if (n >= 0) {
				memcpy(res + *res_len, body + pos, n);
				*res_len += n;
			}
		} else {
			/* exact size, so ASan sees a write past the slack */
			out = malloc(piece + FG_HTTP_FRAMER_OUT_SLACK);
			if (!out)
				abort();
			n = fg_http_framer_feed_out(&f, body + pos, piece, out,
						    &out_len, &done);
			CHECK(out_len <= piece + FG_HTTP_FRAMER_OUT_SLACK,
			      "feed_out wrote beyond the slack");
			CHECK(n >= 0 || !out_len, "output with an error");
			CHECK(*res_len + out_len <= len, "more out than in");
			memcpy(res + *res_len, out, out_len);
			*res_len += out_len;
			free(out);
		}
		if (n < 0) {
			CHECK(n == -400, "framer error other than -400");
			return REF_ERR;
		}
		CHECK((size_t)n <= piece, "consumed more than given");
		CHECK(done || (size_t)n == piece, "left bytes but not done");
		pos += n;
	}
	*end = pos;
	return done ? REF_DONE : REF_MORE;
}

static void check_body(const struct fg_http_framer *init,
		       enum fg_http_body body, unsigned long long cl,
		       const char *b, size_t len)
{
	static const int modes[] = {
		-1, 0, FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED,
		FG_FRAMER_DECHUNK,
		FG_FRAMER_DECHUNK | FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED,
	};
	struct ref_chunked r = { 0 };
	char *res = malloc(len + 1);
	size_t m;

	r.data = malloc(len + 1);
	r.kept = malloc(len + 1);
	if (!res || !r.data || !r.kept)
		abort();
	switch (body) {
	case FG_BODY_CHUNKED:
		ref_dechunk(b, len, &r);
		break;
	case FG_BODY_LENGTH:
		r.verdict = len >= cl ? REF_DONE : REF_MORE;
		r.end = len >= cl ? cl : 0;
		break;
	case FG_BODY_NONE:
		r.verdict = REF_DONE;
		r.end = 0;
		break;
	default: /* close-delimited: everything, never done */
		r.verdict = REF_MORE;
		break;
	}
	for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		size_t res_len, end, max_piece = 1 + rnd(len + 1);
		bool use_skip = rnd(2);
		int v = run_framer(init, modes[m], b, len, max_piece, use_skip,
				   res, &res_len, &end);

		CHECK(v == r.verdict, "framer and reference end differently");
		if (v == REF_ERR)
			continue;
		if (v == REF_DONE)
			CHECK(end == r.end, "message end offset differs");
		else
			CHECK(end == len, "incomplete message not all consumed");
		if (body != FG_BODY_CHUNKED || modes[m] <= 0) {
			/* forwarded as it is */
			CHECK(res_len == end && !memcmp(res, b, end),
			      "forwarded bytes differ");
		} else if (modes[m] & FG_FRAMER_DECHUNK) {
			CHECK(res_len == r.data_len &&
			      !memcmp(res, r.data, res_len),
			      "dechunked data differs");
		} else if (v == REF_DONE) {
			CHECK(res_len == r.kept_len &&
			      !memcmp(res, r.kept, res_len),
			      "trailer filter output differs");
		}
	}
	free(res);
	free(r.data);
	free(r.kept);
}

/* ---- synthesized numbers ---------------------------------------------- */

/*
 * The numbers the parser reads, built from the input's first bytes (one
 * digit per byte, so the fuzzer reaches 20-digit values and long runs of
 * leading zeros quickly, which it rarely does inside a whole head) and put
 * into minimal messages: Content-Length in a request and in a response, a
 * chunk size, the port in Host. The parser must accept exactly what the
 * strtoull/strtoul reference accepts, and read the same value.
 */
static void check_synth(const uint8_t *data, size_t size)
{
	static const char hex[] = "0123456789abcdefABCDEF";
	size_t nd = size < 48 ? size : 48, i;
	char dec[49], hx[49], msg[160];
	struct fg_http_request *req = malloc(sizeof(*req));
	struct fg_http_response *resp = malloc(sizeof(*resp));
	struct fg_http_request creq = { .body = FG_BODY_CHUNKED };
	struct fg_http_framer f;
	unsigned long long want;
	bool ok, done;
	char *buf;
	int len, n;

	if (!req || !resp)
		abort();
	for (i = 0; i < nd; i++) {
		dec[i] = '0' + data[i] % 10;
		hx[i] = hex[data[i] % 22];
	}
	dec[nd] = hx[nd] = '\0';

	/* Content-Length */
	ok = ref_content_length(dec, nd, &want);
	len = snprintf(msg, sizeof(msg), "POST / HTTP/1.1\r\nHost: a\r\n"
		       "Content-Length: %s\r\n\r\n", dec);
	buf = xstrndup(msg, len);
	n = fg_http_parse_request(buf, len, NULL, req, NULL);
	CHECK(ok ? n == len : n == -400, "synthesized Content-Length");
	CHECK(!ok || (req->body == FG_BODY_LENGTH && req->content_length == want),
	      "synthesized Content-Length value");
	free(buf);
	len = snprintf(msg, sizeof(msg), "HTTP/1.1 200 OK\r\n"
		       "Content-Length: %s\r\n\r\n", dec);
	buf = xstrndup(msg, len);
	n = fg_http_parse_response(buf, len, false, resp, NULL);
	CHECK(ok ? n == len : n == -502, "synthesized response Content-Length");
	CHECK(!ok || (resp->body == FG_BODY_LENGTH &&
		      resp->content_length == want),
	      "synthesized response Content-Length value");
	free(buf);

	/* chunk size: an error on the size line, or waiting for the data */
	if (nd) {
		char *end;

		errno = 0;
		want = strtoull(hx, &end, 16);
		ok = errno != ERANGE && !*end && want <= REF_MAX_LENGTH;
		len = snprintf(msg, sizeof(msg), "%s\r\n", hx);
		buf = xstrndup(msg, len);
		fg_http_framer_init(&f, &creq);
		n = fg_http_framer_feed(&f, buf, len, &done);
		if (!ok)
			CHECK(n == -400, "synthesized chunk size accepted");
		else if (want)
			CHECK(n == len && !done &&
			      fg_http_framer_opaque(&f) == want,
			      "synthesized chunk size");
		else
			CHECK(n == len && !done, "synthesized last chunk");
		free(buf);
	}

	/* port in Host: at most 5 digits, at most 65535 */
	{
		size_t pd = nd < 12 ? nd : 12;
		unsigned long port;

		errno = 0;
		port = pd ? strtoul(dec + nd - pd, NULL, 10) : 0;
		ok = pd <= 5 && port <= 65535;
		len = snprintf(msg, sizeof(msg), "GET / HTTP/1.1\r\n"
			       "Host: a:%s\r\n\r\n", dec + nd - pd);
		buf = xstrndup(msg, len);
		n = fg_http_parse_request(buf, len, NULL, req, NULL);
		CHECK(ok ? n == len && req->port == port : n == -400,
		      "synthesized port");
		free(buf);
	}
	free(req);
	free(resp);
}

/* ---- entry ------------------------------------------------------------ */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	char *buf = malloc(size ? size : 1);
	struct fg_http_request *req = calloc(1, sizeof(*req));
	struct fg_http_response *resp = calloc(1, sizeof(*resp));
	struct fg_http_framer f;
	const char *why = NULL, *val;
	size_t val_len, i;
	char out[4096];
	int n;

	if (!buf || !req || !resp)
		goto out;
	memcpy(buf, data, size);
	rng = 0x9e3779b97f4a7c15ULL;
	for (i = 0; i < size && i < 64; i++)
		rng = (rng ^ (unsigned char)data[i]) * 0x100000001b3ULL;
	rng |= 1;
	check_synth(data, size);

	n = fg_http_parse_request(buf, size, NULL, req, &why);
	if (n > 0) {
		if ((size_t)n > size || req->head_len != (size_t)n)
			abort();
		fg_http_find(req, "host");
		fg_http_cookie(req, "stage", &val, &val_len);
		fg_http_rewrite_head(req, "192.0.2.1", "http", out, sizeof(out));
		check_request(buf, req);
		fg_http_framer_init(&f, req);
		check_body(&f, req->body, req->content_length, buf + n,
			   size - n);
	}
	/* The bytes as a chunked body on their own: the framer sees every
	 * input, not only those behind a valid head. */
	{
		struct fg_http_request creq = { .body = FG_BODY_CHUNKED };

		fg_http_framer_init(&f, &creq);
		check_body(&f, FG_BODY_CHUNKED, 0, buf, size);
	}
	n = fg_http_parse_response(buf, size, size & 1, resp, &why);
	if (n > 0) {
		if ((size_t)n > size || resp->head_len != (size_t)n)
			abort();
		check_response(buf, resp, size & 1);
		fg_http_framer_init_response(&f, resp);
		check_body(&f, resp->body, resp->content_length, buf + n,
			   size - n);
	}
out:
	free(buf);
	free(req);
	free(resp);
	return 0;
}

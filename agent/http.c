// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * HTTP/1.1 head parser and body framer: see http.h. One pass over the
 * bytes, a line at a time (memchr for LF, bounded by len); nothing is
 * allocated and nothing copied but the normalised host.
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "http.h"

/* ---- character classes ------------------------------------------------ */

/* tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" / "-" / "." /
 *         "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA   (RFC 9110 §5.6.2) */
static bool is_tchar(unsigned char c)
{
	if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
	    (c >= 'A' && c <= 'Z'))
		return true;
	switch (c) {
	case '!': case '#': case '$': case '%': case '&': case '\'':
	case '*': case '+': case '-': case '.': case '^': case '_':
	case '`': case '|': case '~':
		return true;
	}
	return false;
}

static bool is_ows(unsigned char c)
{
	return c == ' ' || c == '\t';
}

/* field-vchar / SP / HTAB (obs-text included) */
static bool is_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

static bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static unsigned char lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* s[0..n) equals the lower-case NUL-terminated lit, case-insensitively */
static bool ieq(const char *s, size_t n, const char *lit)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!lit[i] || lower(s[i]) != (unsigned char)lit[i])
			return false;
	return lit[n] == '\0';
}

static bool ieqn(const char *a, size_t an, const char *b, size_t bn)
{
	size_t i;

	if (an != bn)
		return false;
	for (i = 0; i < an; i++)
		if (lower(a[i]) != lower(b[i]))
			return false;
	return true;
}

#define FAIL(status, reason)                                                  \
	do {                                                                  \
		if (why)                                                      \
			*why = (reason);                                      \
		return -(status);                                             \
	} while (0)

/* ---- lists ----------------------------------------------------------- */

/* Next element of a comma-separated list in s[*pos..n), OWS trimmed (may be
 * empty). Returns false at the end. */
static bool list_next(const char *s, size_t n, size_t *pos, const char **e,
		      size_t *elen)
{
	size_t i = *pos, st, en;

	if (i > n)
		return false;
	while (i < n && is_ows(s[i]))
		i++;
	st = i;
	while (i < n && s[i] != ',')
		i++;
	en = i;
	while (en > st && is_ows(s[en - 1]))
		en--;
	*e = s + st;
	*elen = en - st;
	*pos = i + 1; /* past the comma, or n + 1 at the end */
	return true;
}

/* ---- field lines ------------------------------------------------------ */

/*
 * Checks the bytes of a line that has no LF yet: nothing that cannot
 * appear in a valid line (a CR is allowed as the very last byte only).
 * first_is_field: the line is a field line (no leading SP/HTAB).
 */
static int check_partial(const char *buf, size_t from, size_t len,
			 bool first_is_field, const char **why)
{
	size_t i;

	if (first_is_field && from < len && is_ows(buf[from]))
		FAIL(400, "obs-fold (line starting with whitespace)");
	for (i = from; i < len; i++) {
		unsigned char c = buf[i];

		if (c == '\r') {
			if (i + 1 < len)
				FAIL(400, "bare CR");
		} else if (!is_field_byte(c)) {
			FAIL(400, "control character");
		}
	}
	return 0;
}

/*
 * Parses field lines from buf[pos..len) up to and including the empty
 * line. Returns the head length, 0 when incomplete, or -400 / -431.
 */
static int parse_fields(const char *buf, size_t len, size_t pos,
			size_t max_head, unsigned max_headers,
			struct fg_http_header *hdrs, unsigned *n,
			const char **why)
{
	for (;;) {
		const char *lf, *l;
		size_t end, next, ll, i, j, vs, ve;
		int err;

		if (pos > max_head)
			FAIL(431, "request header fields too large");
		lf = memchr(buf + pos, '\n', len - pos);
		if (!lf) {
			if (len >= max_head)
				FAIL(431, "request header fields too large");
			err = check_partial(buf, pos, len, true, why);
			return err;
		}
		end = lf - buf;
		next = end + 1;
		if (end > pos && buf[end - 1] == '\r')
			end--;
		if (next > max_head)
			FAIL(431, "request header fields too large");
		if (end == pos)
			return (int)next;
		if (*n >= max_headers)
			FAIL(431, "too many header fields");

		l = buf + pos;
		ll = end - pos;
		if (is_ows(l[0]))
			FAIL(400, "obs-fold (line starting with whitespace)");
		for (i = 0; i < ll && is_tchar(l[i]); i++)
			;
		if (i == ll)
			FAIL(400, "field line without colon");
		if (l[i] != ':') {
			if (is_ows(l[i]))
				FAIL(400, "whitespace between field name and colon");
			if (l[i] == '\r')
				FAIL(400, "bare CR");
			FAIL(400, "invalid character in field name");
		}
		if (i == 0)
			FAIL(400, "empty field name");
		hdrs[*n].name = l;
		hdrs[*n].name_len = i;
		for (i++; i < ll && is_ows(l[i]); i++)
			;
		vs = i;
		for (j = vs; j < ll; j++) {
			unsigned char c = l[j];

			if (c == '\r')
				FAIL(400, "bare CR");
			if (!is_field_byte(c))
				FAIL(400, "control character in field value");
		}
		ve = ll;
		while (ve > vs && is_ows(l[ve - 1]))
			ve--;
		hdrs[*n].value = l + vs;
		hdrs[*n].value_len = ve - vs;
		(*n)++;
		pos = next;
	}
}

/* ---- framing fields shared by requests and responses ------------------ */

struct framing {
	unsigned n_cl;
	unsigned long long cl;
	bool te;                 /* Transfer-Encoding present */
	unsigned n_codings;
	bool last_chunked;       /* the final coding is chunked */
	bool chunked_not_final;  /* chunked followed by another coding */
	bool other_coding;       /* some coding other than chunked */
	bool conn_close;
	bool conn_keep_alive;
};

/*
 * Content-Length = 1*DIGIT, at most FG_HTTP_MAX_LENGTH. The bound is
 * checked before the multiplication, so x * 10 + d never exceeds 2^62 and
 * cannot wrap ("18446744073709551621" = 2^64 + 5 is refused, not read as
 * 5). Leading zeros are accepted however many there are (1*DIGIT allows
 * them): they leave x at 0.
 */
static int parse_length(const char *v, size_t n, unsigned long long *out)
{
	unsigned long long x = 0;
	size_t i;

	if (n == 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned d;

		if (!is_digit(v[i]))
			return -1;
		d = v[i] - '0';
		if (x > (FG_HTTP_MAX_LENGTH - d) / 10)
			return -1;
		x = x * 10 + d;
	}
	*out = x;
	return 0;
}

/* Returns 0 or -400 (the caller maps to -502 for responses). */
static int scan_framing(const struct fg_http_header *h, unsigned n,
			struct framing *fr, const char **why)
{
	unsigned i;

	memset(fr, 0, sizeof(*fr));
	for (i = 0; i < n; i++) {
		const char *e;
		size_t elen, pos = 0;

		if (ieq(h[i].name, h[i].name_len, "content-length")) {
			unsigned long long v;

			if (parse_length(h[i].value, h[i].value_len, &v))
				FAIL(400, "invalid Content-Length");
			if (fr->n_cl && v != fr->cl)
				FAIL(400, "conflicting Content-Length values");
			fr->cl = v;
			fr->n_cl++;
		} else if (ieq(h[i].name, h[i].name_len, "transfer-encoding")) {
			fr->te = true;
			while (list_next(h[i].value, h[i].value_len, &pos, &e,
					 &elen)) {
				if (!elen)
					continue;
				if (fr->last_chunked)
					fr->chunked_not_final = true;
				fr->last_chunked = ieq(e, elen, "chunked");
				if (!fr->last_chunked)
					fr->other_coding = true;
				fr->n_codings++;
			}
		} else if (ieq(h[i].name, h[i].name_len, "connection")) {
			while (list_next(h[i].value, h[i].value_len, &pos, &e,
					 &elen)) {
				if (ieq(e, elen, "close"))
					fr->conn_close = true;
				else if (ieq(e, elen, "keep-alive"))
					fr->conn_keep_alive = true;
			}
		}
	}
	return 0;
}

/* ---- host ------------------------------------------------------------- */

/* host [ ":" port ], host a reg-name of [A-Za-z0-9._~-] or an IPv6
 * literal; into out[256], lower-cased, without port or trailing dot. */
static int parse_host(const char *s, size_t n, char *out, size_t *out_len,
		      unsigned *port, const char **why)
{
	size_t i = 0, o = 0;
	bool colon = false;

	if (n == 0)
		FAIL(400, "empty Host");
	if (s[0] == '[') {
		out[o++] = '[';
		for (i = 1; i < n && s[i] != ']'; i++) {
			unsigned char c = s[i];

			if (hexval(c) < 0 && c != ':' && c != '.')
				FAIL(400, "invalid IPv6 literal in Host");
			if (c == ':')
				colon = true;
			if (o >= 254)
				FAIL(400, "Host too long");
			out[o++] = lower(c);
		}
		if (i == n || !colon)
			FAIL(400, "invalid IPv6 literal in Host");
		out[o++] = ']';
		i++;
	} else {
		for (; i < n && s[i] != ':'; i++) {
			unsigned char c = s[i];

			if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') ||
			      (c >= 'A' && c <= 'Z') || c == '-' || c == '.' ||
			      c == '_' || c == '~'))
				FAIL(400, "invalid character in Host");
			if (o >= 255)
				FAIL(400, "Host too long");
			out[o++] = lower(c);
		}
		if (o && out[o - 1] == '.')
			o--;
		if (!o)
			FAIL(400, "empty Host");
	}
	*port = 0;
	if (i < n) {
		unsigned p = 0;
		size_t d = 0;

		if (s[i] != ':')
			FAIL(400, "invalid Host");
		/* at most 5 digits, checked before the multiplication:
		 * p stays below 100000 (no wrap of "4294967376") */
		for (i++; i < n; i++, d++) {
			if (!is_digit(s[i]) || d >= 5)
				FAIL(400, "invalid port in Host");
			p = p * 10 + (s[i] - '0');
		}
		if (p > 65535)
			FAIL(400, "invalid port in Host");
		*port = p;
	}
	out[o] = '\0';
	*out_len = o;
	return 0;
}

/* ---- request ---------------------------------------------------------- */

static int parse_target(struct fg_http_request *req, const char **why)
{
	const char *t = req->target;
	size_t n = req->target_len, i, st;

	req->query = NULL;
	req->query_len = 0;
	if (t[0] == '/') {
		st = 0;
	} else if (n == 1 && t[0] == '*') {
		if (req->method_len != 7 || memcmp(req->method, "OPTIONS", 7))
			FAIL(400, "asterisk-form target only for OPTIONS");
		req->path = t;
		req->path_len = 1;
		return 0;
	} else {
		size_t s;

		if (n >= 7 && ieq(t, 7, "http://"))
			s = 7;
		else if (n >= 8 && ieq(t, 8, "https://"))
			s = 8;
		else
			FAIL(400, "invalid request target");
		for (i = s; i < n && t[i] != '/' && t[i] != '?'; i++)
			if (t[i] == '@')
				FAIL(400, "userinfo in request target");
		req->absolute_form = true;
		req->authority = t + s;
		req->authority_len = i - s;
		st = i;
		if (st == n || t[st] == '?') {
			req->path = "/";
			req->path_len = 1;
			if (st < n) {
				req->query = t + st + 1;
				req->query_len = n - st - 1;
			}
			return 0;
		}
	}
	for (i = st; i < n && t[i] != '?'; i++)
		;
	req->path = t + st;
	req->path_len = i - st;
	if (i < n) {
		req->query = t + i + 1;
		req->query_len = n - i - 1;
	}
	return 0;
}

static int parse_request_line(const char *buf, size_t p, size_t end,
			      struct fg_http_request *req, const char **why)
{
	size_t i = p, ts;
	const char *v;

	while (i < end && is_tchar(buf[i]))
		i++;
	if (i == p || i == end || buf[i] != ' ')
		FAIL(400, "invalid method");
	req->method = buf + p;
	req->method_len = i - p;
	ts = ++i;
	for (; i < end && buf[i] != ' '; i++) {
		unsigned char c = buf[i];

		if (c == '\r')
			FAIL(400, "bare CR");
		if (c <= 0x20 || c >= 0x7f || c == '#')
			FAIL(400, "invalid character in request target");
	}
	if (i == ts)
		FAIL(400, "malformed request line");
	if (i == end)
		FAIL(400, "missing HTTP version");
	req->target = buf + ts;
	req->target_len = i - ts;
	i++;
	v = buf + i;
	if (end - i != 8 || memcmp(v, "HTTP/", 5) || !is_digit(v[5]) ||
	    v[6] != '.' || !is_digit(v[7]))
		FAIL(400, "malformed HTTP version");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		FAIL(505, "HTTP version not supported");
	req->version_minor = v[7] - '0';
	if (req->method_len == 7 && !memcmp(req->method, "CONNECT", 7))
		FAIL(501, "CONNECT not supported");
	return parse_target(req, why);
}

/* Method so far in a request line without LF: token bytes up to the
 * first SP. */
static int check_partial_request_line(const char *buf, size_t p, size_t len,
				      const char **why)
{
	size_t i;

	if (p + 1 == len && buf[p] == '\r')
		return 0; /* the CR of an empty line before the request line */
	for (i = p; i < len && buf[i] != ' '; i++)
		if (!is_tchar(buf[i]))
			FAIL(400, "invalid method");
	if (i == p && i < len)
		FAIL(400, "invalid method");
	return check_partial(buf, p, len, false, why);
}

int fg_http_parse_request(const char *buf, size_t len,
			  const struct fg_http_limits *lim,
			  struct fg_http_request *req, const char **why)
{
	size_t max_head = FG_HTTP_DEF_MAX_HEAD;
	size_t max_line = FG_HTTP_DEF_MAX_REQUEST_LINE;
	unsigned max_headers = FG_HTTP_MAX_HEADERS;
	const struct fg_http_header *host_hdr = NULL;
	struct framing fr;
	size_t p = 0, end, content;
	const char *lf;
	unsigned i, empty = 0;
	int ret;

	if (lim) {
		if (lim->max_head)
			max_head = lim->max_head;
		if (lim->max_request_line)
			max_line = lim->max_request_line;
		if (lim->max_headers && lim->max_headers < max_headers)
			max_headers = lim->max_headers;
	}
	if (max_head > (1u << 30))
		max_head = 1u << 30;
	if (why)
		*why = NULL;

	memset(req, 0, offsetof(struct fg_http_request, headers));
	req->n_headers = 0;
	req->body = FG_BODY_NONE;
	req->content_length = 0;
	req->keep_alive = false;
	req->expect_continue = false;
	req->head_len = 0;
	req->host = req->host_buf;

	/* empty lines before the request line (a few: each is a LF that
	 * would make a caller parse again) */
	while (p < len && (buf[p] == '\r' || buf[p] == '\n')) {
		if (++empty > FG_HTTP_MAX_EMPTY_LINES)
			FAIL(400, "too many empty lines before request line");
		if (buf[p] == '\r') {
			if (p + 1 == len)
				break;
			if (buf[p + 1] != '\n')
				FAIL(400, "bare CR");
			p++;
		}
		p++;
		if (p > max_head)
			FAIL(431, "request header fields too large");
	}

	lf = memchr(buf + p, '\n', len - p);
	if (!lf) {
		content = len - p;
		if (content && buf[len - 1] == '\r')
			content--;
		if (content > max_line)
			FAIL(414, "URI too long");
		if (len >= max_head)
			FAIL(431, "request header fields too large");
		return check_partial_request_line(buf, p, len, why);
	}
	end = lf - buf;
	if (end > p && buf[end - 1] == '\r')
		end--;
	if (end - p > max_line)
		FAIL(414, "URI too long");
	if ((size_t)(lf - buf) + 1 > max_head)
		FAIL(431, "request header fields too large");
	ret = parse_request_line(buf, p, end, req, why);
	if (ret)
		return ret;

	ret = parse_fields(buf, len, lf - buf + 1, max_head, max_headers,
			   req->headers, &req->n_headers, why);
	if (ret <= 0)
		return ret;
	req->head_len = ret;

	if (scan_framing(req->headers, req->n_headers, &fr, why))
		return -400;
	for (i = 0; i < req->n_headers; i++) {
		const struct fg_http_header *h = &req->headers[i];

		if (ieq(h->name, h->name_len, "host")) {
			if (host_hdr)
				FAIL(400, "multiple Host fields");
			host_hdr = h;
		} else if (ieq(h->name, h->name_len, "expect")) {
			if (req->version_minor == 1 &&
			    ieq(h->value, h->value_len, "100-continue"))
				req->expect_continue = true;
		}
	}
	if (host_hdr) {
		ret = parse_host(host_hdr->value, host_hdr->value_len,
				 req->host_buf, &req->host_len, &req->port,
				 why);
		if (ret)
			return ret;
	} else if (req->version_minor == 1) {
		FAIL(400, "missing Host");
	}
	if (req->absolute_form) {
		ret = parse_host(req->authority, req->authority_len,
				 req->host_buf, &req->host_len, &req->port,
				 why);
		if (ret)
			return ret;
	} else if (host_hdr) {
		req->authority = host_hdr->value;
		req->authority_len = host_hdr->value_len;
	}

	if (fr.te) {
		if (fr.n_cl)
			FAIL(400, "both Content-Length and Transfer-Encoding");
		if (req->version_minor == 0)
			FAIL(400, "Transfer-Encoding in HTTP/1.0");
		if (!fr.n_codings)
			FAIL(400, "empty Transfer-Encoding");
		if (fr.chunked_not_final)
			FAIL(400, "chunked is not the final transfer coding");
		if (fr.other_coding)
			FAIL(501, "transfer coding not implemented");
		req->body = FG_BODY_CHUNKED;
	} else if (fr.n_cl) {
		req->body = FG_BODY_LENGTH;
		req->content_length = fr.cl;
	}
	if (req->version_minor == 1)
		req->keep_alive = !fr.conn_close;
	else
		req->keep_alive = fr.conn_keep_alive && !fr.conn_close;
	return (int)req->head_len;
}

const struct fg_http_header *fg_http_find(const struct fg_http_request *req,
					  const char *name)
{
	size_t n = strlen(name);
	unsigned i;

	for (i = 0; i < req->n_headers; i++)
		if (ieqn(req->headers[i].name, req->headers[i].name_len, name,
			 n))
			return &req->headers[i];
	return NULL;
}

bool fg_http_cookie(const struct fg_http_request *req, const char *name,
		    const char **val, size_t *len)
{
	size_t nlen = strlen(name);
	unsigned i;

	for (i = 0; i < req->n_headers; i++) {
		const struct fg_http_header *h = &req->headers[i];
		const char *s = h->value;
		size_t n = h->value_len, pos = 0;

		if (!ieq(h->name, h->name_len, "cookie"))
			continue;
		while (pos < n) {
			size_t st, eq, en, vs, ve;

			while (pos < n && (is_ows(s[pos]) || s[pos] == ';'))
				pos++;
			st = pos;
			while (pos < n && s[pos] != ';')
				pos++;
			en = pos;
			for (eq = st; eq < en && s[eq] != '='; eq++)
				;
			if (eq == en)
				continue;
			ve = eq;
			while (ve > st && is_ows(s[ve - 1]))
				ve--;
			if (ve - st != nlen || memcmp(s + st, name, nlen))
				continue;
			vs = eq + 1;
			while (vs < en && is_ows(s[vs]))
				vs++;
			while (en > vs && is_ows(s[en - 1]))
				en--;
			if (en - vs >= 2 && s[vs] == '"' && s[en - 1] == '"') {
				vs++;
				en--;
			}
			if (val)
				*val = s + vs;
			if (len)
				*len = en - vs;
			return true;
		}
	}
	return false;
}

/* ---- rewrite ---------------------------------------------------------- */

struct wbuf {
	char *p;
	size_t cap;
	size_t len;
};

static void put(struct wbuf *w, const char *s, size_t n)
{
	if (w->len <= w->cap && n <= w->cap - w->len)
		memcpy(w->p + w->len, s, n);
	w->len += n;
}

static void puts_(struct wbuf *w, const char *s)
{
	put(w, s, strlen(s));
}

static bool is_hop_by_hop(const char *n, size_t l)
{
	return ieq(n, l, "connection") || ieq(n, l, "keep-alive") ||
	       ieq(n, l, "proxy-connection") || ieq(n, l, "te") ||
	       ieq(n, l, "trailer") || ieq(n, l, "upgrade");
}

int fg_http_rewrite_head(const struct fg_http_request *req,
			 const char *client_ip, const char *proto,
			 char *out, size_t cap)
{
	bool drop[FG_HTTP_MAX_HEADERS] = { false };
	struct wbuf w = { .p = out, .cap = cap };
	bool xff_first = true;
	char num[32];
	const char *s;
	unsigned i, j;

	if (!client_ip || !*client_ip || !proto || !*proto)
		return -EINVAL;
	for (s = client_ip; *s; s++) {
		unsigned char c = *s;

		if (!(hexval(c) >= 0 || (c >= 'g' && c <= 'z') ||
		      (c >= 'G' && c <= 'Z') || c == '.' || c == ':' ||
		      c == '[' || c == ']' || c == '%' || c == '-' || c == '_'))
			return -EINVAL;
	}
	for (s = proto; *s; s++)
		if (!is_tchar(*s))
			return -EINVAL;

	/* fields named in Connection (never Host) */
	for (i = 0; i < req->n_headers; i++) {
		const struct fg_http_header *h = &req->headers[i];
		const char *e;
		size_t elen, pos = 0;

		if (!ieq(h->name, h->name_len, "connection"))
			continue;
		while (list_next(h->value, h->value_len, &pos, &e, &elen)) {
			if (!elen || ieq(e, elen, "host"))
				continue;
			for (j = 0; j < req->n_headers; j++)
				if (ieqn(req->headers[j].name,
					 req->headers[j].name_len, e, elen))
					drop[j] = true;
		}
	}

	put(&w, req->method, req->method_len);
	put(&w, " ", 1);
	if (req->absolute_form) {
		const char *rest = req->authority + req->authority_len;
		size_t rlen = req->target + req->target_len - rest;

		if (!rlen || rest[0] != '/')
			put(&w, "/", 1);
		put(&w, rest, rlen);
	} else {
		put(&w, req->target, req->target_len);
	}
	puts_(&w, " HTTP/1.1\r\n");
	if (req->absolute_form) {
		puts_(&w, "Host: ");
		put(&w, req->authority, req->authority_len);
		puts_(&w, "\r\n");
	}
	for (i = 0; i < req->n_headers; i++) {
		const struct fg_http_header *h = &req->headers[i];
		const char *n = h->name;
		size_t l = h->name_len;

		if (drop[i] || is_hop_by_hop(n, l) ||
		    ieq(n, l, "x-forwarded-for") ||
		    ieq(n, l, "x-forwarded-proto") || ieq(n, l, "x-real-ip") ||
		    ieq(n, l, "content-length") ||
		    ieq(n, l, "transfer-encoding") ||
		    (req->absolute_form && ieq(n, l, "host")))
			continue;
		put(&w, n, l);
		put(&w, ": ", 2);
		put(&w, h->value, h->value_len);
		put(&w, "\r\n", 2);
	}
	if (req->body == FG_BODY_LENGTH) {
		snprintf(num, sizeof(num), "%llu", req->content_length);
		puts_(&w, "Content-Length: ");
		puts_(&w, num);
		puts_(&w, "\r\n");
	} else if (req->body == FG_BODY_CHUNKED) {
		puts_(&w, "Transfer-Encoding: chunked\r\n");
	}
	puts_(&w, "X-Forwarded-For: ");
	for (i = 0; i < req->n_headers; i++) {
		const struct fg_http_header *h = &req->headers[i];

		if (!h->value_len || !ieq(h->name, h->name_len,
					  "x-forwarded-for"))
			continue;
		if (!xff_first)
			put(&w, ", ", 2);
		put(&w, h->value, h->value_len);
		xff_first = false;
	}
	if (!xff_first)
		put(&w, ", ", 2);
	puts_(&w, client_ip);
	puts_(&w, "\r\nX-Forwarded-Proto: ");
	puts_(&w, proto);
	puts_(&w, "\r\nX-Real-IP: ");
	puts_(&w, client_ip);
	puts_(&w, "\r\nConnection: keep-alive\r\n\r\n");
	if (w.len > cap || w.len > INT_MAX)
		return -ENOSPC;
	return (int)w.len;
}

/* ---- response --------------------------------------------------------- */

static int parse_response(const char *buf, size_t len, bool request_was_head,
			  struct fg_http_response *resp, const char **why)
{
	const size_t max_head = FG_HTTP_RESP_MAX_HEAD;
	struct framing fr;
	const char *lf, *v;
	size_t end, i;
	int ret;

	memset(resp, 0, offsetof(struct fg_http_response, headers));
	resp->n_headers = 0;
	resp->body = FG_BODY_NONE;
	resp->content_length = 0;
	resp->interim = false;
	resp->keep_alive = false;
	resp->head_len = 0;

	lf = memchr(buf, '\n', len);
	if (!lf) {
		static const char pfx[] = "HTTP/";
		size_t k = len < 5 ? len : 5;

		if (len >= max_head)
			FAIL(400, "response head too large");
		if (memcmp(buf, pfx, k))
			FAIL(400, "malformed status line");
		return check_partial(buf, 0, len, false, why);
	}
	end = lf - buf;
	if (end && buf[end - 1] == '\r')
		end--;
	v = buf;
	if (end < 12 || memcmp(v, "HTTP/", 5) || !is_digit(v[5]) ||
	    v[6] != '.' || !is_digit(v[7]) || v[8] != ' ' ||
	    !is_digit(v[9]) || !is_digit(v[10]) || !is_digit(v[11]) ||
	    (end > 12 && v[12] != ' '))
		FAIL(400, "malformed status line");
	if (v[5] != '1' || (v[7] != '0' && v[7] != '1'))
		FAIL(400, "HTTP version not supported");
	resp->version_minor = v[7] - '0';
	resp->status = (v[9] - '0') * 100 + (v[10] - '0') * 10 + (v[11] - '0');
	if (resp->status < 100 || resp->status > 599)
		FAIL(400, "invalid status code");
	if (end > 12) {
		for (i = 13; i < end; i++) {
			if (buf[i] == '\r')
				FAIL(400, "bare CR");
			if (!is_field_byte(buf[i]))
				FAIL(400, "control character in reason phrase");
		}
		resp->reason = buf + 13;
		resp->reason_len = end - 13;
	} else {
		resp->reason = buf + end;
	}

	ret = parse_fields(buf, len, lf - buf + 1, max_head,
			   FG_HTTP_MAX_HEADERS, resp->headers, &resp->n_headers,
			   why);
	if (ret <= 0)
		return ret;
	resp->head_len = ret;

	if (scan_framing(resp->headers, resp->n_headers, &fr, why))
		return -400;
	if (fr.te && fr.n_cl)
		FAIL(400, "both Content-Length and Transfer-Encoding");
	if (fr.te && resp->version_minor == 0)
		FAIL(400, "Transfer-Encoding in HTTP/1.0");
	if (fr.te && !fr.n_codings)
		FAIL(400, "empty Transfer-Encoding");
	if (fr.te && fr.chunked_not_final && fr.last_chunked)
		FAIL(400, "chunked applied more than once");
	resp->content_length = fr.cl;
	if (resp->version_minor == 1)
		resp->keep_alive = !fr.conn_close;
	else
		resp->keep_alive = fr.conn_keep_alive && !fr.conn_close;

	resp->interim = resp->status < 200;
	if (resp->interim || resp->status == 204 || resp->status == 304 ||
	    request_was_head)
		resp->body = FG_BODY_NONE;
	else if (fr.te)
		resp->body = fr.last_chunked ? FG_BODY_CHUNKED : FG_BODY_CLOSE;
	else if (fr.n_cl)
		resp->body = FG_BODY_LENGTH;
	else
		resp->body = FG_BODY_CLOSE;
	if (resp->body == FG_BODY_CLOSE)
		resp->keep_alive = false;
	return ret;
}

int fg_http_parse_response(const char *buf, size_t len, bool request_was_head,
			   struct fg_http_response *resp, const char **why)
{
	int ret = parse_response(buf, len, request_was_head, resp, why);

	return ret < 0 ? -502 : ret;
}

/* ---- body framer ------------------------------------------------------ */

enum {
	FR_SIZE_FIRST, /* first hex digit of a chunk size */
	FR_SIZE,       /* more hex digits */
	FR_SIZE_BWS,   /* whitespace after the size: only before ';' */
	FR_EXT,        /* chunk extensions, up to CR */
	FR_SIZE_LF,
	FR_DATA,
	FR_DATA_CR,
	FR_DATA_LF,
	FR_TR_START,   /* start of a trailer line (or the final CRLF) */
	FR_TR_NAME,
	FR_TR_VALUE,
	FR_TR_LF,
	FR_END_LF,
};

static void framer_init(struct fg_http_framer *f, enum fg_http_body body,
			unsigned long long cl)
{
	memset(f, 0, sizeof(*f));
	f->body = body;
	f->state = FR_SIZE_FIRST;
	switch (body) {
	case FG_BODY_NONE:
		f->done = true;
		break;
	case FG_BODY_LENGTH:
		f->remaining = cl;
		f->announced = cl;
		f->done = cl == 0;
		break;
	default:
		break;
	}
}

void fg_http_framer_init(struct fg_http_framer *f,
			 const struct fg_http_request *req)
{
	framer_init(f, req->body, req->content_length);
}

void fg_http_framer_init_response(struct fg_http_framer *f,
				  const struct fg_http_response *resp)
{
	framer_init(f, resp->body, resp->content_length);
}

/* ---- trailer filter --------------------------------------------------- */

/*
 * Fields that must not be taken from a trailer section (RFC 9110 §6.5.1,
 * with the examples of RFC 7230 §4.1.2), lower case; http.h lists them.
 * Every name starting with "if-" is a conditional and dropped too.
 */
static const char *const trailer_prohibited[] = {
	/* message framing */
	"content-length", "transfer-encoding",
	/* routing */
	"host",
	/* request modifiers: controls (conditionals: "if-*" below) */
	"cache-control", "expect", "max-forwards", "pragma", "range", "te",
	/* authentication (RFC 9110 §11, and cookies, RFC 6265) */
	"authorization", "proxy-authorization", "www-authenticate",
	"proxy-authenticate", "authentication-info",
	"proxy-authentication-info", "cookie", "set-cookie",
	/* response control data */
	"age", "date", "expires", "location", "retry-after", "vary", "warning",
	/* how to process the content */
	"content-encoding", "content-type", "content-range", "trailer",
	/* hop-by-hop */
	"connection", "keep-alive", "proxy-connection", "upgrade",
	/* set by the proxy itself (fg_http_rewrite_head) */
	"x-forwarded-for", "x-forwarded-proto", "x-real-ip",
};

/* The longest name above must fit in the hold buffer, so that a name that
 * outgrows the buffer can only be prohibited by the "if-" prefix. */
_Static_assert(sizeof("proxy-authentication-info") - 1 <= FG_HTTP_FRAMER_OUT_SLACK,
	       "trailer field names held must fit in fg_http_framer.tr_hold");

static bool trailer_name_prohibited(const char *n, size_t l)
{
	size_t i;

	if (l >= 3 && ieq(n, 3, "if-"))
		return true;
	for (i = 0; i < sizeof(trailer_prohibited) / sizeof(trailer_prohibited[0]); i++)
		if (ieq(n, l, trailer_prohibited[i]))
			return true;
	return false;
}

bool fg_http_trailer_prohibited(const char *name, size_t len)
{
	return trailer_name_prohibited(name, len);
}

/* fg_http_framer.tr_keep for the trailer field line being read */
enum {
	TRL_UNDECIDED, /* name being read, held in tr_hold */
	TRL_KEEP,
	TRL_DROP,
};

/* Where fg_http_framer_feed_out writes; NULL for fg_http_framer_feed. */
struct frout {
	char *p;
	size_t len;
};

static void out_put(struct frout *o, const void *s, size_t n)
{
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void out_byte(struct frout *o, unsigned char c)
{
	o->p[o->len++] = c;
}

/*
 * A byte of the trailer section, already accepted by the state machine,
 * with FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED (and not DECHUNK). st is
 * the state the byte was read in. A field name is held (not written) until
 * its colon shows whether the line is kept; a name longer than the hold
 * buffer is decided on its first bytes (it can only be an "if-*" one).
 * What is written per call is therefore at most the bytes given plus the
 * bytes held from the previous call (at most FG_HTTP_FRAMER_OUT_SLACK).
 */
static void trailer_out(struct fg_http_framer *f, struct frout *o,
			unsigned char st, unsigned char c)
{
	switch (st) {
	case FR_TR_START:
		if (c == '\r') { /* the final CRLF */
			out_byte(o, c);
			return;
		}
		f->tr_keep = TRL_UNDECIDED;
		f->tr_hold[0] = c;
		f->tr_hold_len = 1;
		return;
	case FR_TR_NAME:
		if (f->tr_keep == TRL_UNDECIDED) {
			if (c != ':' && f->tr_hold_len < sizeof(f->tr_hold)) {
				f->tr_hold[f->tr_hold_len++] = c;
				return;
			}
			/* the whole name (colon), or more than can be held */
			if (c == ':')
				f->tr_keep = trailer_name_prohibited(f->tr_hold,
								     f->tr_hold_len)
						     ? TRL_DROP : TRL_KEEP;
			else
				f->tr_keep = ieq(f->tr_hold, 3, "if-") ? TRL_DROP
								      : TRL_KEEP;
			if (f->tr_keep == TRL_KEEP)
				out_put(o, f->tr_hold, f->tr_hold_len);
			f->tr_hold_len = 0;
		}
		if (f->tr_keep == TRL_KEEP)
			out_byte(o, c);
		return;
	case FR_TR_VALUE:
	case FR_TR_LF:
		if (f->tr_keep == TRL_KEEP)
			out_byte(o, c);
		return;
	case FR_END_LF:
		out_byte(o, c);
		return;
	}
}

/*
 * The chunked state machine. With o (fg_http_framer_feed_out and a filter
 * set) the bytes to forward are written to o as they are consumed: chunk
 * data always; size lines, data CRLFs and the trailer section unless
 * DECHUNK; trailer lines through trailer_out with DROP_TRAILER_FIELDS.
 * Which bytes are consumed never depends on o.
 */
static long chunked_feed(struct fg_http_framer *f, const unsigned char *b,
			 size_t len, struct frout *o)
{
	bool dechunk = o && (f->filter & FG_FRAMER_DECHUNK);
	bool drop = o && !dechunk &&
		    (f->filter & FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED);
	size_t i = 0;

	while (i < len && !f->done) {
		unsigned char c = b[i], st = f->state;
		int d;

		switch (f->state) {
		case FR_SIZE_FIRST:
		case FR_SIZE:
			d = hexval(c);
			if (d >= 0) {
				/* size * 16 + d <= 2^62, checked before
				 * the multiplication */
				if (f->size > (FG_HTTP_MAX_LENGTH - d) / 16)
					return -400;
				f->size = f->size * 16 + d;
				f->state = FR_SIZE;
			} else if (f->state == FR_SIZE_FIRST) {
				return -400;
			} else if (c == ';') {
				f->state = FR_EXT;
			} else if (is_ows(c)) {
				f->state = FR_SIZE_BWS;
			} else if (c == '\r') {
				f->state = FR_SIZE_LF;
			} else {
				return -400;
			}
			if (++f->line > FG_HTTP_MAX_CHUNK_LINE)
				return -400;
			break;
		case FR_SIZE_BWS:
			if (c == ';')
				f->state = FR_EXT;
			else if (!is_ows(c))
				return -400;
			if (++f->line > FG_HTTP_MAX_CHUNK_LINE)
				return -400;
			break;
		case FR_EXT:
			if (c == '\r')
				f->state = FR_SIZE_LF;
			else if (!is_field_byte(c))
				return -400;
			if (++f->line > FG_HTTP_MAX_CHUNK_LINE)
				return -400;
			break;
		case FR_SIZE_LF:
			if (c != '\n')
				return -400;
			if (f->size) {
				f->remaining = f->size;
				/* saturating: sizes are below 2^62, their sum may not be */
				f->announced = f->announced + f->size < f->announced
						       ? ~0ULL : f->announced + f->size;
				f->state = FR_DATA;
			} else {
				f->state = FR_TR_START;
			}
			break;
		case FR_DATA: {
			size_t n = len - i;

			if (n > f->remaining)
				n = f->remaining;
			if (o)
				out_put(o, b + i, n);
			f->remaining -= n;
			i += n;
			if (!f->remaining)
				f->state = FR_DATA_CR;
			continue;
		}
		case FR_DATA_CR:
			if (c != '\r')
				return -400;
			f->state = FR_DATA_LF;
			break;
		case FR_DATA_LF:
			if (c != '\n')
				return -400;
			f->state = FR_SIZE_FIRST;
			f->size = 0;
			f->line = 0;
			break;
		case FR_TR_START:
			if (c == '\r')
				f->state = FR_END_LF;
			else if (is_tchar(c))
				f->state = FR_TR_NAME;
			else
				return -400;
			break;
		case FR_TR_NAME:
			if (c == ':')
				f->state = FR_TR_VALUE;
			else if (!is_tchar(c))
				return -400;
			break;
		case FR_TR_VALUE:
			if (c == '\r')
				f->state = FR_TR_LF;
			else if (!is_field_byte(c))
				return -400;
			break;
		case FR_TR_LF:
			if (c != '\n')
				return -400;
			f->state = FR_TR_START;
			break;
		case FR_END_LF:
			if (c != '\n')
				return -400;
			f->done = true;
			break;
		}
		if (f->state >= FR_TR_START && ++f->trailer > FG_HTTP_MAX_TRAILER)
			return -400;
		if (o && !dechunk) {
			if (drop && st >= FR_TR_START)
				trailer_out(f, o, st, c);
			else
				out_byte(o, c);
		}
		i++;
	}
	return (long)i;
}

static long framer_feed(struct fg_http_framer *f, const char *buf, size_t len,
			bool *done, struct frout *o)
{
	long ret = 0;

	if (len > LONG_MAX)
		len = LONG_MAX;
	if (f->error) {
		ret = -400;
	} else if (f->done) {
		ret = 0;
	} else {
		switch (f->body) {
		case FG_BODY_LENGTH:
			ret = len < f->remaining ? len : f->remaining;
			f->remaining -= ret;
			f->done = f->remaining == 0;
			break;
		case FG_BODY_CLOSE:
			ret = len;
			break;
		case FG_BODY_CHUNKED:
			ret = chunked_feed(f, (const unsigned char *)buf, len, o);
			if (ret < 0)
				f->error = true;
			break;
		default:
			f->done = true;
			break;
		}
	}
	if (done)
		*done = f->done;
	return ret;
}

long fg_http_framer_feed(struct fg_http_framer *f, const char *buf, size_t len,
			 bool *done)
{
	return framer_feed(f, buf, len, done, NULL);
}

int fg_http_framer_set_filter(struct fg_http_framer *f, unsigned flags)
{
	if (flags & ~(FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED |
		      FG_FRAMER_DECHUNK))
		return -EINVAL;
	f->filter = flags;
	return 0;
}

long fg_http_framer_feed_out(struct fg_http_framer *f, const char *buf,
			     size_t len, char *out, size_t *out_len, bool *done)
{
	struct frout o = { .p = out };
	long ret;

	if (!out_len || (!out && len))
		return -EINVAL;
	*out_len = 0;
	if (len > LONG_MAX)
		len = LONG_MAX;
	if (f->body == FG_BODY_CHUNKED && f->filter) {
		ret = framer_feed(f, buf, len, done, &o);
		if (ret >= 0)
			*out_len = o.len;
		return ret;
	}
	/* everything consumed is forwarded as it is */
	ret = framer_feed(f, buf, len, done, NULL);
	if (ret > 0) {
		memcpy(out, buf, ret);
		*out_len = ret;
	}
	return ret;
}

unsigned long long fg_http_framer_opaque(const struct fg_http_framer *f)
{
	if (f->error || f->done)
		return 0;
	switch (f->body) {
	case FG_BODY_LENGTH:
		return f->remaining;
	case FG_BODY_CHUNKED:
		return f->state == FR_DATA ? f->remaining : 0;
	case FG_BODY_CLOSE:
		return ~0ULL;
	default:
		return 0;
	}
}

int fg_http_framer_skip(struct fg_http_framer *f, unsigned long long n)
{
	if (n > fg_http_framer_opaque(f))
		return -EINVAL;
	if (!n || f->body == FG_BODY_CLOSE)
		return 0;
	f->remaining -= n;
	if (!f->remaining) {
		if (f->body == FG_BODY_LENGTH)
			f->done = true;
		else
			f->state = FR_DATA_CR;
	}
	return 0;
}

bool fg_http_framer_done(const struct fg_http_framer *f)
{
	return f->done;
}

unsigned long long fg_http_framer_announced(const struct fg_http_framer *f)
{
	return f->announced;
}

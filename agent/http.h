/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Zero-copy HTTP/1.1 message head parser and body framer for the L7 proxy
 * (RFC 9110, RFC 9112).
 *
 * The proxy reads bytes from a socket into a buffer and calls
 * fg_http_parse_request() on it; the request refers into that buffer
 * (method, target, header names and values are pointers + lengths, nothing
 * is copied except the normalised host), so the buffer must outlive it.
 * The return value is the length of the head: the body, if any, starts
 * right after it and is delimited by a struct fg_http_framer, which also
 * tells where the next pipelined request starts.
 *
 * The parsers allocate nothing, do not recurse, run in time linear in the
 * bytes given, and never read buf[len] or beyond. A head that is not
 * complete yet yields 0 ("read more"): every proper prefix of a valid head
 * does. Errors may be reported before the head is complete (a bad line,
 * a control byte, a limit already exceeded).
 *
 * Each call parses from the start of the buffer. A caller reading in small
 * pieces need only call again when the new bytes hold a LF (nothing else
 * completes a head) or the buffer reached max_request_line / max_head; as
 * a head has at most max_headers + FG_HTTP_MAX_EMPTY_LINES + 2 lines, that
 * bounds the total work per head to O(lines * max_head), not O(max_head^2).
 *
 * Hardening (the request is refused, and the connection should be closed
 * after the error response):
 *   400  Content-Length together with Transfer-Encoding; Content-Length
 *        values that differ (identical repeats are accepted, RFC 9110 §8.6);
 *        Content-Length not 1*DIGIT or above 2^62 (checked digit by digit
 *        before it can overflow: "18446744073709551621" is refused, not
 *        read as 2^64 + 5 mod 2^64 = 5; any number of leading zeros is
 *        fine); "chunked" not the final (or repeated) transfer coding;
 *        Transfer-Encoding in an HTTP/1.0 request; whitespace between a
 *        field name and its colon; obs-fold (a field line starting with
 *        SP/HTAB); a bare CR; NUL or another control byte (HTAB apart)
 *        in a field value; a non-token byte in the method or a field
 *        name; a request line that is not exactly
 *        "METHOD SP target SP HTTP/x.y"; a target byte outside 0x21-0x7e or
 *        a '#'; a target that is not origin-form ("/..."), absolute-form
 *        ("http://" or "https://" authority [path]) or "*" (OPTIONS only);
 *        userinfo ('@') in an absolute-form authority; a missing Host in
 *        HTTP/1.1; more than one Host; an empty or invalid Host.
 *   414  request line longer than max_request_line.
 *   431  head longer than max_head, or more than max_headers fields.
 *   501  a transfer coding other than "chunked" ("gzip, chunked",
 *        "xchunked", "identity"); the CONNECT method.
 *   505  an HTTP version other than 1.0 and 1.1 ("HTTP/2.0", "HTTP/0.9").
 *
 * Line endings: CRLF, or a bare LF (RFC 9112 §2.2 lets a recipient accept
 * it; the head is always regenerated with CRLF by fg_http_rewrite_head, so
 * the upstream never sees it). A bare CR is refused. Up to
 * FG_HTTP_MAX_EMPTY_LINES empty lines before the request line are skipped
 * (RFC 9112 §2.2) and count in head_len.
 * Chunked framing is strict: CRLF only, since those bytes are forwarded
 * as they are.
 */
#ifndef FG_HTTP_H
#define FG_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define FG_HTTP_MAX_HEADERS 100             /* size of the headers arrays */
#define FG_HTTP_DEF_MAX_HEAD (32 * 1024)
#define FG_HTTP_DEF_MAX_REQUEST_LINE (8 * 1024)
#define FG_HTTP_RESP_MAX_HEAD (64 * 1024)   /* response heads */
#define FG_HTTP_MAX_LENGTH (1ULL << 62)     /* Content-Length and chunk size */
#define FG_HTTP_MAX_CHUNK_LINE 4096         /* chunk-size line incl. extensions */
#define FG_HTTP_MAX_TRAILER 8192            /* trailer section */
#define FG_HTTP_MAX_EMPTY_LINES 8           /* before a request line -> 400 */

/* A zero field (or a NULL pointer to the struct) takes the default. */
struct fg_http_limits {
	size_t max_head;         /* default 32 KiB -> 431 (at most 1 GiB) */
	size_t max_request_line; /* default 8 KiB -> 414 (excluding CRLF) */
	unsigned max_headers;    /* default and maximum 100 -> 431 */
};

/* A field line; the value has its leading and trailing OWS removed. */
struct fg_http_header {
	const char *name;
	size_t name_len;
	const char *value;
	size_t value_len;
};

enum fg_http_body {
	FG_BODY_NONE,    /* no body: the next message starts after the head */
	FG_BODY_LENGTH,  /* content_length bytes (may be 0) */
	FG_BODY_CHUNKED, /* chunked transfer coding (the final coding) */
	FG_BODY_CLOSE,   /* responses only: until the upstream closes */
};

struct fg_http_request {
	const char *method;
	size_t method_len;
	const char *target;      /* request-target as received */
	size_t target_len;
	const char *path;        /* the target up to '?' (absolute-form: the */
	size_t path_len;         /* path after the authority, "/" if none),  */
				 /* "*" for OPTIONS *; for routing           */
	const char *query;       /* after '?' (excluded), NULL when no '?' */
	size_t query_len;
	int version_minor;       /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
	bool absolute_form;      /* target was "http[s]://authority..." */
	const char *authority;   /* Host value as received (with port), or */
	size_t authority_len;    /* the absolute-form authority, which wins */
	/* The host part of authority: port and one trailing dot stripped,
	 * lower-cased, NUL-terminated in host_buf (IPv6 literals keep their
	 * brackets: "[::1]"). host points to req->host_buf: re-point it if the
	 * struct is copied. host_len is 0 only for HTTP/1.0 without Host. */
	const char *host;
	size_t host_len;
	char host_buf[256];
	unsigned port;           /* port of the authority, 0 when none */
	struct fg_http_header headers[FG_HTTP_MAX_HEADERS];
	unsigned n_headers;
	enum fg_http_body body;  /* NONE, LENGTH or CHUNKED */
	unsigned long long content_length; /* when body == FG_BODY_LENGTH */
	bool keep_alive;         /* 1.1 unless "Connection: close"; 1.0 only
				  * with "Connection: keep-alive" */
	bool expect_continue;    /* HTTP/1.1 "Expect: 100-continue" */
	size_t head_len;         /* leading empty lines + request line +
				  * field lines + the final empty line */
};

/*
 * Parses the request head at the start of buf[0..len). Returns the head
 * length (> 0) when a whole head is there, 0 when more bytes are needed, or
 * -STATUS (-400, -414, -431, -501, -505) with a short static reason in *why
 * (why may be NULL). lim may be NULL (defaults). *req is overwritten.
 */
int fg_http_parse_request(const char *buf, size_t len,
			  const struct fg_http_limits *lim,
			  struct fg_http_request *req, const char **why);

/* First field named NAME (case-insensitive), or NULL. */
const struct fg_http_header *fg_http_find(const struct fg_http_request *req,
					  const char *name);

/*
 * The value of cookie NAME (case-sensitive) in the Cookie field(s):
 * "a=1; stage=gray; b=2" -> "gray" for "stage". Surrounding double quotes
 * are removed. Returns false when there is no such cookie.
 */
bool fg_http_cookie(const struct fg_http_request *req, const char *name,
		    const char **val, size_t *len);

/*
 * Writes the head for the upstream into out[0..cap):
 *   - "METHOD origin-form-target HTTP/1.1" (an absolute-form target is
 *     turned into origin-form, and its authority replaces the Host field);
 *   - the fields in their order, minus the hop-by-hop ones (Connection,
 *     Keep-Alive, Proxy-Connection, TE, Trailer, Upgrade and every field
 *     named in Connection, except Host which is never dropped), minus
 *     X-Forwarded-For, X-Forwarded-Proto and X-Real-IP (set below, so a
 *     client cannot spoof them), minus Content-Length and Transfer-Encoding
 *     (re-emitted in normal form: "Content-Length: N" or
 *     "Transfer-Encoding: chunked");
 *   - "X-Forwarded-For: <received values, >CLIENT_IP", "X-Forwarded-Proto:
 *     PROTO", "X-Real-IP: CLIENT_IP", "Connection: keep-alive" and CRLF.
 * An HTTP/1.0 request without Host gets no Host (the caller may add one).
 * Received XFF values are kept as they are: trusting them is the caller's
 * policy.
 * Returns the bytes written, -ENOSPC when cap is too small, or -EINVAL
 * when client_ip or proto holds a byte that is not allowed there.
 */
int fg_http_rewrite_head(const struct fg_http_request *req,
			 const char *client_ip, const char *proto,
			 char *out, size_t cap);

struct fg_http_response {
	int version_minor;       /* 0 or 1 */
	int status;              /* 100..599 */
	const char *reason;
	size_t reason_len;
	struct fg_http_header headers[FG_HTTP_MAX_HEADERS];
	unsigned n_headers;
	/* NONE for 1xx (a final response follows on the connection), 204,
	 * 304 and responses to HEAD; else CHUNKED when chunked is the final
	 * transfer coding, LENGTH with Content-Length, CLOSE otherwise
	 * (including a Transfer-Encoding whose final coding is not chunked). */
	enum fg_http_body body;
	unsigned long long content_length; /* the field's value, if present */
	bool interim;            /* 1xx */
	bool keep_alive;         /* per version and Connection; false with
				  * FG_BODY_CLOSE */
	size_t head_len;
};

/*
 * Parses a response head from the upstream. Same conventions as
 * fg_http_parse_request (limits: FG_HTTP_RESP_MAX_HEAD and
 * FG_HTTP_MAX_HEADERS) except that every error is -502: the upstream sent
 * something the proxy will not relay (malformed, Content-Length with
 * Transfer-Encoding, differing Content-Lengths, Transfer-Encoding in
 * HTTP/1.0, version other than 1.0 or 1.1, ...).
 */
int fg_http_parse_response(const char *buf, size_t len, bool request_was_head,
			   struct fg_http_response *resp, const char **why);

/*
 * Incremental body framing. Initialise after the head, then feed the bytes
 * that follow it, split anyhow; the framer keeps the chunked state across
 * calls (size line, extensions, data, CRLF, trailer section).
 */
#define FG_HTTP_FRAMER_OUT_SLACK 32  /* see fg_http_framer_feed_out */

struct fg_http_framer {
	enum fg_http_body body;
	unsigned char state;         /* chunked: FR_* in http.c */
	bool done;
	bool error;
	unsigned char filter;        /* FG_FRAMER_* flags */
	unsigned char tr_keep;       /* trailer line: TRL_* in http.c */
	unsigned char tr_hold_len;   /* bytes in tr_hold */
	unsigned long long remaining; /* LENGTH: body bytes left; CHUNKED: data
				       * bytes left in the current chunk */
	unsigned long long size;      /* chunk size being read */
	unsigned long long announced; /* body bytes announced so far: the
				       * Content-Length, or the sizes of the
				       * chunks begun (saturating) */
	unsigned line;                /* bytes of the current chunk-size line */
	unsigned trailer;             /* bytes of the trailer section */
	char tr_hold[FG_HTTP_FRAMER_OUT_SLACK]; /* trailer field name read so
						 * far, not yet forwarded */
};

void fg_http_framer_init(struct fg_http_framer *f,
			 const struct fg_http_request *req);
void fg_http_framer_init_response(struct fg_http_framer *f,
				  const struct fg_http_response *resp);

/*
 * Consumes up to len bytes of body. Returns how many of them belong to the
 * message (<= len; the rest is the next message) and sets *done once the
 * message has ended (at once for FG_BODY_NONE and Content-Length 0; never
 * for FG_BODY_CLOSE, which ends with the connection). Returns -400 on
 * malformed chunked coding (bad hex digit, "0x10", "-1", missing CRLF, bare
 * LF, chunk size above 2^62, chunk-size line longer than
 * FG_HTTP_MAX_CHUNK_LINE counting its CR, trailer section longer than
 * FG_HTTP_MAX_TRAILER counting from the LF of the last-chunk line through
 * the final LF, malformed trailer field); the error is sticky.
 * Until the message is done, every byte given is consumed (the return
 * value is len unless *done).
 * It ignores the filter of fg_http_framer_set_filter: the bytes it
 * consumes are to be forwarded as they are.
 */
long fg_http_framer_feed(struct fg_http_framer *f, const char *buf, size_t len,
			 bool *done);

/*
 * Filters for fg_http_framer_feed_out, chunked bodies only (a Content-Length
 * or close-delimited body is always forwarded as it is).
 *
 * FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED: trailer field lines (name,
 *   colon, value and their CRLF) whose name, case-insensitively, must not
 *   be sent or used as a trailer (RFC 9110 §6.5.1, RFC 7230 §4.1.2) are
 *   not forwarded; the other trailer lines, the last-chunk line and the
 *   final CRLF are. The names:
 *     framing:          Content-Length, Transfer-Encoding
 *     routing:          Host
 *     request controls: Cache-Control, Expect, Max-Forwards, Pragma, Range,
 *                       TE
 *     conditionals:     every name starting with "If-" (If-Match,
 *                       If-None-Match, If-Modified-Since,
 *                       If-Unmodified-Since, If-Range)
 *     authentication:   Authorization, Proxy-Authorization,
 *                       WWW-Authenticate, Proxy-Authenticate,
 *                       Authentication-Info, Proxy-Authentication-Info,
 *                       Cookie, Set-Cookie
 *     response control: Age, Date, Expires, Location, Retry-After, Vary,
 *                       Warning
 *     content format:   Content-Encoding, Content-Type, Content-Range,
 *                       Trailer
 *     hop-by-hop:       Connection, Keep-Alive, Proxy-Connection, Upgrade
 *     set by the proxy: X-Forwarded-For, X-Forwarded-Proto, X-Real-IP
 *   (fg_http_trailer_prohibited() answers for one name.)
 * FG_FRAMER_DECHUNK: only the chunk data is forwarded (no chunk-size
 *   lines, extensions, CRLFs or trailer section): a chunked response goes
 *   to an HTTP/1.0 client as a close-delimited body (RFC 9112 §6.1). It
 *   supersedes DROP_TRAILER_FIELDS_PROHIBITED.
 */
#define FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED 0x1u
#define FG_FRAMER_DECHUNK                        0x2u

/*
 * Sets the filter (0 or FG_FRAMER_* flags) for fg_http_framer_feed_out.
 * Call it right after fg_http_framer_init*(), which clears it, before any
 * byte is fed. Returns 0, or -EINVAL (nothing changed) for unknown flags.
 */
int fg_http_framer_set_filter(struct fg_http_framer *f, unsigned flags);

/*
 * fg_http_framer_feed, for the framing bytes the caller copies: consumes
 * exactly what fg_http_framer_feed would (same return value, same *done,
 * same errors, every byte given unless the message ends inside them) and
 * writes the bytes to forward for them into out[0..*out_len):
 *   - filter 0, or a body that is not chunked: the consumed bytes as they
 *     are (*out_len == the return value);
 *   - chunked with a filter: chunk data always, the rest per the filter.
 * out must hold len + FG_HTTP_FRAMER_OUT_SLACK bytes: with
 * DROP_TRAILER_FIELDS_PROHIBITED the name of a trailer field is held back
 * in the framer until its colon (or FG_HTTP_FRAMER_OUT_SLACK bytes of it)
 * shows whether the line is kept, and is written in a later call. A line
 * split across calls is fine; its bytes are consumed as they come.
 * Opaque bytes (fg_http_framer_opaque) may still go by fg_http_framer_skip:
 * they are chunk data (or Content-Length body), forwarded as they are in
 * every mode, DECHUNK included. Use feed_out, not feed, for every framing
 * byte of a framer with a filter, or the held name is lost.
 * Returns the bytes consumed (>= 0), -400 as fg_http_framer_feed (sticky;
 * *out_len is then 0), or -EINVAL when out_len is NULL or out is NULL with
 * len > 0.
 */
long fg_http_framer_feed_out(struct fg_http_framer *f, const char *buf,
			     size_t len, char *out, size_t *out_len,
			     bool *done);

/* True when a trailer field NAME[0..len) is dropped by
 * FG_FRAMER_DROP_TRAILER_FIELDS_PROHIBITED (case-insensitive). */
bool fg_http_trailer_prohibited(const char *name, size_t len);

/*
 * For the splice path: how many body bytes are known to follow that need no
 * inspection (Content-Length left, or the data bytes left in the current
 * chunk; ~0ULL for FG_BODY_CLOSE; 0 when the framer must see the bytes).
 */
unsigned long long fg_http_framer_opaque(const struct fg_http_framer *f);

/* Accounts for n opaque bytes forwarded without fg_http_framer_feed.
 * Returns 0, or -EINVAL (nothing changed) when n > opaque. */
int fg_http_framer_skip(struct fg_http_framer *f, unsigned long long n);

bool fg_http_framer_done(const struct fg_http_framer *f);

/* Body bytes announced so far (fg_http_framer.announced): what a body size
 * limit is checked against as soon as a chunk-size line is read, before
 * that chunk's data comes (nginx's client_max_body_size does the same). */
unsigned long long fg_http_framer_announced(const struct fg_http_framer *f);

#endif /* FG_HTTP_H */

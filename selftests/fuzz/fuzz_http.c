// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target: the HTTP request and response parsers, the head
 * rewrite and the body framer, on arbitrary bytes. Built by `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static void check_framer(struct fg_http_framer *f, const char *body, size_t len)
{
	size_t off = 0;
	bool done = false;

	while (off < len && !done) {
		/* Feed in uneven pieces: boundaries must not matter. */
		size_t piece = 1 + (off * 7 + 3) % 13;
		long n;

		if (piece > len - off)
			piece = len - off;
		n = fg_http_framer_feed(f, body + off, piece, &done);
		if (n < 0)
			return;
		if ((size_t)n > piece)
			abort();
		off += (size_t)n;
		if ((size_t)n < piece && !done)
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy, so ASan sees any read past the end. */
	char *buf = malloc(size ? size : 1);
	struct fg_http_request *req = calloc(1, sizeof(*req));
	struct fg_http_response *resp = calloc(1, sizeof(*resp));
	struct fg_http_framer f;
	const char *why = NULL, *val;
	size_t val_len;
	char out[4096];
	int n;

	if (!buf || !req || !resp)
		goto out;
	memcpy(buf, data, size);

	n = fg_http_parse_request(buf, size, NULL, req, &why);
	if (n > 0) {
		if ((size_t)n > size)
			abort();
		fg_http_find(req, "host");
		fg_http_cookie(req, "stage", &val, &val_len);
		fg_http_rewrite_head(req, "192.0.2.1", "http", out, sizeof(out));
		fg_http_framer_init(&f, req);
		check_framer(&f, buf + req->head_len, size - req->head_len);
	}
	n = fg_http_parse_response(buf, size, size & 1, resp, &why);
	if (n > 0) {
		if ((size_t)n > size)
			abort();
		fg_http_framer_init_response(&f, resp);
		check_framer(&f, buf + resp->head_len, size - resp->head_len);
	}
out:
	free(buf);
	free(req);
	free(resp);
	return 0;
}

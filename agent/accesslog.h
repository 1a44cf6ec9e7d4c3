/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The access log (--access-log PATH|-, --access-log-format combined|json):
 * one line per request, written from a buffer so that a request never
 * waits for the disk or a slow reader of stdout.
 *
 * The request path formats its line and copies it into a ring buffer (a
 * short critical section, no I/O); a writer thread empties the ring into
 * the file. When the ring is full the line is dropped and counted, never
 * waited for.
 *
 * combined: nginx's "combined" format, then the gateway's own fields:
 *   127.0.0.1 - - [03/Dec/2026:13:29:07 +0000] "GET /service1 HTTP/1.1" 200 38 "-"
 *   "curl/7.88.1" upstream=10.0.1.2:8080 cluster=c7fb82... canary=-
 *   upstream_time=0.002 request_time=0.003
 * (one line). Bytes '"', '\\', below 0x20 or above 0x7e in a field are
 * written \xHH, as nginx does; an empty field is "-".
 * json: one object per line with the same fields and a few more
 * (docs/operations.md "Access log").
 */
#ifndef FG_ACCESSLOG_H
#define FG_ACCESSLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <linux/types.h>

#include "request_record.h"

enum fg_access_log_format {
	FG_ALOG_COMBINED = 0,
	FG_ALOG_JSON,
};

#define FG_ALOG_DEF_BUFFER (1U << 20) /* ring bytes */
/* The longest line: a record's fields are capped (request_record.h), so
 * even escaped byte by byte they fit. */
#define FG_ALOG_LINE_MAX 40960

struct fg_access_log_opts {
	const char *path;  /* a file (appended to, created 0644), or "-": stdout */
	int fd;            /* >= 0: write here instead of path (not closed) */
	enum fg_access_log_format format;
	size_t buffer_size; /* ring bytes; 0: FG_ALOG_DEF_BUFFER */
};

struct fg_access_log;

int fg_access_log_format_parse(const char *s, enum fg_access_log_format *out);
/* Opens the file and starts the writer thread. */
int fg_access_log_open(struct fg_access_log **out, const struct fg_access_log_opts *opts);
/* Formats r's line (no I/O): cluster is the cluster id of r->cluster_idx
 * ("" when none), now the wall clock time the line is stamped with.
 * Returns its length (< len, NUL-terminated, always ending in \n). */
size_t fg_access_log_format(enum fg_access_log_format fmt, const struct fg_request_record *r,
			    const char *cluster, const struct timespec *now, char *buf, size_t len);
/* Formats and queues r's line; false when it was dropped (ring full). */
bool fg_access_log_record(struct fg_access_log *al, const struct fg_request_record *r,
			  const char *cluster);
/* Queues one line as it is; false when dropped. */
bool fg_access_log_push(struct fg_access_log *al, const char *line, size_t len);
/* Waits up to timeout_ms until everything queued is written; 0 or
 * -ETIMEDOUT. */
int fg_access_log_flush(struct fg_access_log *al, unsigned timeout_ms);

struct fg_access_log_stats {
	__u64 lines;   /* queued */
	__u64 dropped; /* not queued: the ring was full */
	__u64 write_errors; /* lines' bytes the file did not take (write failed) */
	__u64 bytes;   /* written */
};
void fg_access_log_stats(struct fg_access_log *al, struct fg_access_log_stats *st);
/* Writes what is queued (up to 2 s), stops the thread, closes the file.
 * NULL is fine. */
void fg_access_log_close(struct fg_access_log *al);

#endif

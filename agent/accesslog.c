// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The access log: lines formatted by the request path into a ring buffer,
 * written by a thread of their own. See accesslog.h.
 *
 * The ring: head and tail count bytes since the start (never wrap); the
 * request path appends at head under the lock, the writer writes
 * [tail, head) without it (the request path never touches bytes it has
 * not been given back) and then advances tail under the lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "accesslog.h"
#include "dataplane.h"
#include "log.h"

struct fg_access_log {
	int fd;
	bool own_fd;
	enum fg_access_log_format format;
	char *ring;
	size_t cap;
	__u64 head, tail;
	pthread_mutex_t mu;
	pthread_cond_t more;    /* the writer waits for lines */
	pthread_cond_t drained; /* flush waits for the writer */
	bool waiting, stop, started;
	pthread_t thr;
	struct fg_access_log_stats st;
	bool warned;
	char what[256];
};

int fg_access_log_format_parse(const char *s, enum fg_access_log_format *out)
{
	if (!strcmp(s, "combined"))
		*out = FG_ALOG_COMBINED;
	else if (!strcmp(s, "json"))
		*out = FG_ALOG_JSON;
	else
		return -EINVAL;
	return 0;
}

/* ---------- formatting ---------- */

struct out {
	char *p;
	size_t len, cap;
};

static void put(struct out *o, const char *s, size_t n)
{
	size_t room = o->cap - 1 - o->len; /* one kept for the \n */

	if (n > room)
		n = room;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void putf(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(struct out *o, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(o, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

/* nginx's escaping of a combined-format field: '"', '\' and bytes outside
 * 0x20..0x7e as \xHH. An empty field is "-". */
static void put_esc(struct out *o, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *c = (const unsigned char *)s, *run = c;

	if (!*c) {
		put(o, "-", 1);
		return;
	}
	for (; *c; c++) {
		if (*c == '"' || *c == '\\' || *c < 0x20 || *c > 0x7e) {
			char e[4] = { '\\', 'x', hex[*c >> 4], hex[*c & 15] };

			put(o, (const char *)run, c - run);
			put(o, e, 4);
			run = c + 1;
		}
	}
	put(o, (const char *)run, c - run);
}

/* JSON string contents; bytes above 0x7e (header fields may carry
 * obs-text) become \u00HH, so the line is valid UTF-8 whatever came in. */
static void put_json_chars(struct out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *c = (const unsigned char *)s, *run = c;

	for (; c && *c; c++) {
		if (*c == '"' || *c == '\\') {
			char e[2] = { '\\', (char)*c };

			put(o, (const char *)run, c - run);
			put(o, e, 2);
			run = c + 1;
		} else if (*c < 0x20 || *c > 0x7e) {
			char e[6] = { '\\', 'u', '0', '0', hex[*c >> 4], hex[*c & 15] };

			put(o, (const char *)run, c - run);
			put(o, e, 6);
			run = c + 1;
		}
	}
	if (c)
		put(o, (const char *)run, c - run);
}

/* A JSON string; NULL or "" with null_empty: null. */
static void put_json(struct out *o, const char *s, bool null_empty)
{
	if (null_empty && (!s || !*s)) {
		puts_(o, "null");
		return;
	}
	put(o, "\"", 1);
	put_json_chars(o, s);
	put(o, "\"", 1);
}

static double secs(__u64 from, __u64 to)
{
	return to > from ? (double)(to - from) / 1e9 : 0.0;
}

static void upstream_str(const struct fg_request_record *r, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (!r->attempts) {
		buf[0] = '\0';
		return;
	}
	fg_addr_str(&r->up_addr, r->up_family, a, sizeof(a));
	snprintf(buf, len, r->up_family == FG_AF_INET6 ? "[%s]:%u" : "%s:%u", a, r->up_port);
}

static const char *end_name(enum fg_request_end e)
{
	switch (e) {
	case FG_REQ_DONE: return "done";
	case FG_REQ_ERROR: return "error";
	case FG_REQ_ABORTED: return "aborted";
	case FG_REQ_REFUSED: return "refused";
	}
	return "unknown";
}

/* The two time stamps, made once a second per thread. */
struct stamps {
	time_t sec;
	char clf[40];  /* 03/Dec/2026:13:29:07 +0000 */
	char iso[40];  /* 2026-12-03T13:29:07+00:00 */
};

static const struct stamps *stamps_for(time_t sec)
{
	static __thread struct stamps s = { .sec = -1 };
	struct tm tm;
	long off;
	char sign;

	if (s.sec == sec)
		return &s;
	localtime_r(&sec, &tm);
	off = tm.tm_gmtoff;
	sign = off < 0 ? '-' : '+';
	if (off < 0)
		off = -off;
	strftime(s.clf, sizeof(s.clf), "%d/%b/%Y:%H:%M:%S", &tm);
	snprintf(s.clf + strlen(s.clf), sizeof(s.clf) - strlen(s.clf), " %c%02ld%02ld", sign,
		 off / 3600, off % 3600 / 60);
	strftime(s.iso, sizeof(s.iso), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(s.iso + strlen(s.iso), sizeof(s.iso) - strlen(s.iso), "%c%02ld:%02ld", sign,
		 off / 3600, off % 3600 / 60);
	s.sec = sec;
	return &s;
}

static __u64 body_bytes(const struct fg_request_record *r)
{
	return r->bytes_out > r->header_bytes_out ? r->bytes_out - r->header_bytes_out : 0;
}

static void format_combined(struct out *o, const struct fg_request_record *r, const char *cluster,
			    const struct stamps *ts)
{
	char up[INET6_ADDRSTRLEN + 16];

	upstream_str(r, up, sizeof(up));
	put_esc(o, r->client);
	puts_(o, " - - [");
	puts_(o, ts->clf);
	puts_(o, "] \"");
	if (r->method[0] && r->version_minor >= 0) {
		put_esc(o, r->method);
		put(o, " ", 1);
		put_esc(o, r->target);
		putf(o, " HTTP/1.%d", r->version_minor);
	} else {
		put(o, "-", 1);
	}
	putf(o, "\" %d %llu \"", r->status, (unsigned long long)body_bytes(r));
	put_esc(o, r->referer);
	puts_(o, "\" \"");
	put_esc(o, r->user_agent);
	puts_(o, "\" upstream=");
	put_esc(o, up);
	puts_(o, " cluster=");
	put_esc(o, cluster);
	puts_(o, " canary=");
	put_esc(o, r->canary);
	if (r->attempts)
		putf(o, " upstream_time=%.3f", secs(r->up_start_ns, r->end_ns));
	else
		puts_(o, " upstream_time=-");
	putf(o, " request_time=%.3f", secs(r->start_ns, r->end_ns));
}

static void json_time(struct out *o, const char *key, __u64 from, __u64 to)
{
	putf(o, ",\"%s\":", key);
	if (from && to)
		putf(o, "%.3f", secs(from, to));
	else
		puts_(o, "null");
}

static void format_json(struct out *o, const struct fg_request_record *r, const char *cluster,
			const struct stamps *ts)
{
	char up[INET6_ADDRSTRLEN + 16], proto[16] = "";
	bool line = r->method[0] && r->version_minor >= 0;

	upstream_str(r, up, sizeof(up));
	if (line)
		snprintf(proto, sizeof(proto), "HTTP/1.%d", r->version_minor);
	puts_(o, "{\"time\":");
	put_json(o, ts->iso, false);
	puts_(o, ",\"remote_addr\":");
	put_json(o, r->client, false);
	puts_(o, ",\"request\":");
	if (line) {
		put(o, "\"", 1);
		put_json_chars(o, r->method);
		put(o, " ", 1);
		put_json_chars(o, r->target);
		put(o, " ", 1);
		puts_(o, proto);
		put(o, "\"", 1);
	} else {
		puts_(o, "null");
	}
	puts_(o, ",\"method\":");
	put_json(o, r->method, true);
	puts_(o, ",\"uri\":");
	put_json(o, r->target, true);
	puts_(o, ",\"protocol\":");
	put_json(o, proto, true);
	putf(o, ",\"status\":%d,\"body_bytes_sent\":%llu,\"bytes_sent\":%llu,"
		"\"request_length\":%llu", r->status, (unsigned long long)body_bytes(r),
	     (unsigned long long)r->bytes_out, (unsigned long long)r->bytes_in);
	puts_(o, ",\"http_referer\":");
	put_json(o, r->referer, true);
	puts_(o, ",\"http_user_agent\":");
	put_json(o, r->user_agent, true);
	puts_(o, ",\"host\":");
	put_json(o, r->host, true);
	puts_(o, ",\"ingress\":");
	put_json(o, r->ingress, true);
	puts_(o, ",\"service\":");
	put_json(o, r->service, true);
	puts_(o, ",\"upstream\":");
	put_json(o, up, true);
	puts_(o, ",\"cluster\":");
	put_json(o, cluster, true);
	puts_(o, ",\"canary\":");
	put_json(o, r->canary, true);
	putf(o, ",\"upstream_attempts\":%u", r->attempts);
	json_time(o, "upstream_connect_time", r->up_start_ns,
		  r->up_connect_ns ? r->up_connect_ns : 0);
	json_time(o, "upstream_header_time", r->up_start_ns, r->up_header_ns);
	json_time(o, "upstream_time", r->attempts ? r->up_start_ns : 0, r->end_ns);
	json_time(o, "request_time", r->start_ns ? r->start_ns : r->end_ns, r->end_ns);
	puts_(o, ",\"end\":");
	put_json(o, end_name(r->end), false);
	puts_(o, "}");
}

size_t fg_access_log_format(enum fg_access_log_format fmt, const struct fg_request_record *r,
			    const char *cluster, const struct timespec *now, char *buf, size_t len)
{
	struct out o = { buf, 0, len - 1 }; /* and one for the NUL */
	const struct stamps *ts = stamps_for(now->tv_sec);

	if (len < 3) {
		if (len)
			buf[0] = '\0';
		return 0;
	}
	if (fmt == FG_ALOG_JSON)
		format_json(&o, r, cluster ? cluster : "", ts);
	else
		format_combined(&o, r, cluster ? cluster : "", ts);
	buf[o.len++] = '\n';
	buf[o.len] = '\0';
	return o.len;
}

/* ---------- the ring and its writer ---------- */

bool fg_access_log_push(struct fg_access_log *al, const char *line, size_t len)
{
	size_t at, first;

	pthread_mutex_lock(&al->mu);
	if (len > al->cap - (size_t)(al->head - al->tail)) {
		al->st.dropped++;
		pthread_mutex_unlock(&al->mu);
		return false;
	}
	at = al->head % al->cap;
	first = al->cap - at < len ? al->cap - at : len;
	memcpy(al->ring + at, line, first);
	memcpy(al->ring, line + first, len - first);
	al->head += len;
	al->st.lines++;
	if (al->waiting)
		pthread_cond_signal(&al->more);
	pthread_mutex_unlock(&al->mu);
	return true;
}

bool fg_access_log_record(struct fg_access_log *al, const struct fg_request_record *r,
			  const char *cluster)
{
	char line[FG_ALOG_LINE_MAX];
	struct timespec now;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &now);
	n = fg_access_log_format(al->format, r, cluster, &now, line, sizeof(line));
	return fg_access_log_push(al, line, n);
}

/* Writes all of buf; false when the file refused it. */
static bool write_all(struct fg_access_log *al, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(al->fd, buf, len);

		if (n > 0) {
			buf += n;
			len -= n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* stdout may be non-blocking: this thread may wait. */
			struct pollfd pfd = { .fd = al->fd, .events = POLLOUT };

			poll(&pfd, 1, 1000);
			continue;
		}
		if (!al->warned) {
			pr_warn("access log: cannot write to %s: %s; lines are lost until it "
				"takes them again\n", al->what, n < 0 ? strerror(errno) : "short write");
			al->warned = true;
		}
		pthread_mutex_lock(&al->mu);
		al->st.write_errors += len;
		pthread_mutex_unlock(&al->mu);
		return false;
	}
	return true;
}

static void *writer(void *arg)
{
	struct fg_access_log *al = arg;

	pthread_mutex_lock(&al->mu);
	for (;;) {
		__u64 head, tail;
		size_t at, n;

		while (al->head == al->tail && !al->stop) {
			al->waiting = true;
			pthread_cond_wait(&al->more, &al->mu);
			al->waiting = false;
		}
		if (al->head == al->tail)
			break; /* stopping, everything written */
		head = al->head;
		tail = al->tail;
		pthread_mutex_unlock(&al->mu);
		at = tail % al->cap;
		n = head - tail;
		if (n > al->cap - at)
			n = al->cap - at;
		if (write_all(al, al->ring + at, n))
			al->warned = false;
		pthread_mutex_lock(&al->mu);
		al->tail = tail + n;
		al->st.bytes += n;
		if (al->tail == al->head)
			pthread_cond_broadcast(&al->drained);
	}
	pthread_cond_broadcast(&al->drained);
	pthread_mutex_unlock(&al->mu);
	return NULL;
}

int fg_access_log_flush(struct fg_access_log *al, unsigned timeout_ms)
{
	struct timespec dl;
	int err = 0;

	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&al->mu);
	while (al->tail != al->head && !err)
		if (pthread_cond_timedwait(&al->drained, &al->mu, &dl) == ETIMEDOUT)
			err = al->tail != al->head ? -ETIMEDOUT : 0;
	pthread_mutex_unlock(&al->mu);
	return err;
}

void fg_access_log_stats(struct fg_access_log *al, struct fg_access_log_stats *st)
{
	pthread_mutex_lock(&al->mu);
	*st = al->st;
	pthread_mutex_unlock(&al->mu);
}

int fg_access_log_open(struct fg_access_log **out, const struct fg_access_log_opts *opts)
{
	struct fg_access_log *al;
	int err;

	al = calloc(1, sizeof(*al));
	if (!al)
		return -ENOMEM;
	al->format = opts->format;
	al->cap = opts->buffer_size ? opts->buffer_size : FG_ALOG_DEF_BUFFER;
	al->ring = malloc(al->cap);
	if (!al->ring) {
		free(al);
		return -ENOMEM;
	}
	if (opts->fd >= 0) {
		al->fd = opts->fd;
		snprintf(al->what, sizeof(al->what), "fd %d", opts->fd);
	} else if (!opts->path || !strcmp(opts->path, "-")) {
		al->fd = STDOUT_FILENO;
		snprintf(al->what, sizeof(al->what), "stdout");
	} else {
		al->fd = open(opts->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (al->fd < 0) {
			err = -errno;
			pr_warn("access log: cannot open %s: %s\n", opts->path, strerror(-err));
			free(al->ring);
			free(al);
			return err;
		}
		al->own_fd = true;
		snprintf(al->what, sizeof(al->what), "%s", opts->path);
	}
	pthread_mutex_init(&al->mu, NULL);
	pthread_cond_init(&al->more, NULL);
	pthread_cond_init(&al->drained, NULL);
	{
		/* The writer takes no signal: they are the event loop's. */
		sigset_t all, old;

		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		err = -pthread_create(&al->thr, NULL, writer, al);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (err) {
		pr_warn("access log: cannot start its writer thread: %s\n", strerror(-err));
		fg_access_log_close(al);
		return err;
	}
	al->started = true;
	*out = al;
	return 0;
}

void fg_access_log_close(struct fg_access_log *al)
{
	struct timespec dl;

	if (!al)
		return;
	if (al->started) {
		pthread_mutex_lock(&al->mu);
		al->stop = true;
		pthread_cond_signal(&al->more);
		pthread_mutex_unlock(&al->mu);
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += 2;
		if (pthread_timedjoin_np(al->thr, NULL, &dl)) {
			/* A reader that never reads: what is left is lost. */
			pr_warn("access log: %s did not take the last lines within 2 s; "
				"dropping them\n", al->what);
			pthread_cancel(al->thr);
			pthread_join(al->thr, NULL);
		}
	}
	if (al->own_fd)
		close(al->fd);
	pthread_mutex_destroy(&al->mu);
	pthread_cond_destroy(&al->more);
	pthread_cond_destroy(&al->drained);
	free(al->ring);
	free(al);
}

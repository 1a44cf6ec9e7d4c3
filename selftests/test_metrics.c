// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Metrics and access log, unit by unit: the Prometheus text format
 * (families, label escaping, histogram buckets, checked with promtool when
 * it is installed), the HTTP request series (status classes, buckets,
 * overflow, per-worker tables summed), the /metrics server (200, 404,
 * 405, HEAD), and the access log (combined and JSON lines, a full buffer
 * dropping and counting lines instead of waiting, a file).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <jansson.h>

#include "accesslog.h"
#include "metrics.h"
#include "test_progs.h"

static bool has_promtool(void)
{
	return fg_sh("command -v promtool >/dev/null 2>&1") == 0;
}

/* promtool check metrics on text; its exit status (or -1). */
static int promtool_check(const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/metrics-%d.txt", test__tmpdir(), rand());
	f = fopen(path, "w");
	if (!f)
		return -1;
	fputs(text, f);
	fclose(f);
	return fg_sh("promtool check metrics < %s", path);
}

static void subtest_expo_format(void)
{
	const char *l[] = { "a", "x", "b", "y", NULL };
	struct fg_expo e;

	fg_expo_init(&e);
	fg_expo_family(&e, "fg_test_total", "counter", "A test counter.");
	fg_expo_u64(&e, "fg_test_total", l, 18446744073709551615ULL);
	fg_expo_u64(&e, "fg_test_total", NULL, 0);
	fg_expo_family(&e, "fg_test_ratio", "gauge", "A gauge.");
	fg_expo_double(&e, "fg_test_ratio", NULL, 0.25);
	fg_expo_double(&e, "fg_test_ratio", l, 1.0 / 0.0);
	ASSERT_FALSE(e.oom, "no oom");
	ASSERT_STREQ(e.buf,
		     "# HELP fg_test_total A test counter.\n"
		     "# TYPE fg_test_total counter\n"
		     "fg_test_total{a=\"x\",b=\"y\"} 18446744073709551615\n"
		     "fg_test_total 0\n"
		     "# HELP fg_test_ratio A gauge.\n"
		     "# TYPE fg_test_ratio gauge\n"
		     "fg_test_ratio 0.25\n"
		     "fg_test_ratio{a=\"x\",b=\"y\"} +Inf\n",
		     "exposition text");
	if (has_promtool())
		ASSERT_EQ(promtool_check(e.buf), 0, "promtool check metrics");
	fg_expo_free(&e);
}

static void subtest_label_escaping(void)
{
	const char *l[] = { "path", "/a\\b\"c\nd", "empty", "", NULL };
	char buf[64];
	struct fg_expo e;

	ASSERT_STREQ(fg_expo_escape("x\\y\"z\n", buf, sizeof(buf)), "x\\\\y\\\"z\\n", "escape");
	fg_expo_init(&e);
	fg_expo_family(&e, "fg_esc", "gauge", "Help with \\ and\na newline \"kept\".");
	fg_expo_u64(&e, "fg_esc", l, 1);
	ASSERT_STREQ(e.buf,
		     "# HELP fg_esc Help with \\\\ and\\na newline \"kept\".\n"
		     "# TYPE fg_esc gauge\n"
		     "fg_esc{path=\"/a\\\\b\\\"c\\nd\",empty=\"\"} 1\n",
		     "escaped text");
	if (has_promtool())
		ASSERT_EQ(promtool_check(e.buf), 0, "promtool check metrics");
	fg_expo_free(&e);
}

static void obs(struct fg_http_stats *s, const char *host, const char *path, const char *cl,
		int status, double secs)
{
	struct fg_http_obs o = { .host = host, .path = path, .canary = "", .cluster = cl,
				 .status = status, .seconds = secs, .bytes_in = 10,
				 .bytes_out = 100 };

	fg_http_stats_observe(s, &o);
}

static bool has_line(const char *text, const char *line)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s\n", line);
	return strstr(text, want) != NULL;
}

static void subtest_histogram_buckets(void)
{
	struct fg_http_stats *s = NULL, *w2 = NULL, *tables[2];
	struct fg_expo e;

	if (!ASSERT_OK(fg_http_stats_new(&s, 3), "new") ||
	    !ASSERT_OK(fg_http_stats_new(&w2, 0), "new 2"))
		goto out;
	obs(s, "example.com", "/svc1", "c1", 200, 0.005);   /* le 0.005 (inclusive) */
	obs(s, "example.com", "/svc1", "c1", 204, 0.0051);  /* le 0.01 */
	obs(s, "example.com", "/svc1", "c1", 503, 0.3);     /* le 0.5 */
	obs(s, "example.com", "/svc1", "c1", 404, 20);      /* +Inf */
	obs(s, "", "", "", 404, 0);
	obs(s, "*", "/", "c2", 302, 1);
	obs(s, "other.com", "/", "c2", 200, 1);            /* the 4th series: overflow */
	obs(s, "third.com", "/", "c2", 700, 1);            /* overflow too, class other */
	fg_expo_init(&e);
	ASSERT_OK(fg_http_stats_render(&e, &s, 1), "render");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"example.com\",path=\"/svc1\","
				    "canary=\"\",cluster=\"c1\",status_class=\"2xx\"} 2"), "2xx");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"example.com\",path=\"/svc1\","
				    "canary=\"\",cluster=\"c1\",status_class=\"5xx\"} 1"), "5xx");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"\",path=\"\",canary=\"\","
				    "cluster=\"\",status_class=\"4xx\"} 1"), "no route");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"(overflow)\",path=\"\","
				    "canary=\"\",cluster=\"\",status_class=\"2xx\"} 1"), "overflow");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"(overflow)\",path=\"\","
				    "canary=\"\",cluster=\"\",status_class=\"other\"} 1"),
		    "overflow, other class");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_duration_seconds_bucket{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\",le=\"0.005\"} 1"),
		    "bucket 0.005");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_duration_seconds_bucket{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\",le=\"0.01\"} 2"),
		    "bucket 0.01 (cumulative)");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_duration_seconds_bucket{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\",le=\"0.25\"} 2"),
		    "bucket 0.25");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_duration_seconds_bucket{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\",le=\"10\"} 3"),
		    "bucket 10");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_duration_seconds_bucket{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\",le=\"+Inf\"} 4"),
		    "bucket +Inf");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_duration_seconds_count{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\"} 4"), "count");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_duration_seconds_sum{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\"} 20.3101"), "sum");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_request_bytes_total{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\"} 40"), "bytes in");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_response_bytes_total{host=\"example.com\","
				    "path=\"/svc1\",canary=\"\",cluster=\"c1\"} 400"), "bytes out");
	if (has_promtool())
		ASSERT_EQ(promtool_check(e.buf), 0, "promtool check metrics");
	fg_expo_free(&e);

	/* Two workers' tables: the same series added up. */
	obs(w2, "example.com", "/svc1", "c1", 200, 0.001);
	obs(w2, "example.com", "/svc9", "c1", 200, 0.001);
	tables[0] = s;
	tables[1] = w2;
	fg_expo_init(&e);
	ASSERT_OK(fg_http_stats_render(&e, tables, 2), "render two");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"example.com\",path=\"/svc1\","
				    "canary=\"\",cluster=\"c1\",status_class=\"2xx\"} 3"), "summed");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"example.com\",path=\"/svc9\","
				    "canary=\"\",cluster=\"c1\",status_class=\"2xx\"} 1"),
		    "second worker's own series");
	ASSERT_TRUE(has_line(e.buf, "fleetgate_http_requests_total{host=\"(overflow)\",path=\"\","
				    "canary=\"\",cluster=\"\",status_class=\"2xx\"} 1"),
		    "overflow summed");
	if (has_promtool())
		ASSERT_EQ(promtool_check(e.buf), 0, "promtool check metrics (two tables)");
	fg_expo_free(&e);
out:
	fg_http_stats_free(s);
	fg_http_stats_free(w2);
}

/* 2026-12-03 13:29:07 UTC, as in the example. */
#define T_EXAMPLE 1796304547

static void example_record(struct fg_request_record *r)
{
	fg_request_record_blank(r, "127.0.0.1");
	r->method = "GET";
	r->target = "/service1";
	r->version_minor = 1;
	r->host = "example.com";
	r->user_agent = "curl/7.88.1";
	r->routed = true;
	r->route_host = "example.com";
	r->route_path = "/service1";
	r->ingress = "web-demo/web-demo";
	r->service = "web-demo/service1";
	r->cluster_idx = 0;
	r->up_family = FG_AF_INET;
	inet_pton(AF_INET, "10.0.1.2", &r->up_addr.v4);
	r->up_port = 8080;
	r->attempts = 1;
	r->status = 200;
	r->bytes_in = 80;
	r->bytes_out = 150;
	r->header_bytes_out = 112;
	r->start_ns = 1000000000ULL;
	r->up_start_ns = 1000500000ULL;
	r->up_connect_ns = 1000900000ULL;
	r->up_header_ns = 1002000000ULL;
	r->end_ns = 1003000000ULL;
}

static void subtest_access_log_combined(void)
{
	struct timespec now = { .tv_sec = T_EXAMPLE };
	struct fg_request_record r;
	char line[FG_ALOG_LINE_MAX];
	size_t n;

	setenv("TZ", "UTC", 1);
	tzset();
	example_record(&r);
	n = fg_access_log_format(FG_ALOG_COMBINED, &r, "c7fb82a1b2c3d4e5f60718293a4b5c6d7", &now,
				 line, sizeof(line));
	ASSERT_EQ(n, strlen(line), "length");
	ASSERT_STREQ(line,
		     "127.0.0.1 - - [03/Dec/2026:13:29:07 +0000] \"GET /service1 HTTP/1.1\" 200 38 "
		     "\"-\" \"curl/7.88.1\" upstream=10.0.1.2:8080 "
		     "cluster=c7fb82a1b2c3d4e5f60718293a4b5c6d7 canary=- upstream_time=0.003 "
		     "request_time=0.003\n",
		     "combined line");

	/* A canary, an IPv6 upstream, bytes to escape. */
	r.canary = "web-demo/web-demo-cluster-second";
	r.up_family = FG_AF_INET6;
	inet_pton(AF_INET6, "fd00::2", r.up_addr.bytes);
	r.referer = "http://x/\"q\"";
	r.user_agent = "ua\\\x01\xe9";
	fg_access_log_format(FG_ALOG_COMBINED, &r, "c2", &now, line, sizeof(line));
	ASSERT_STREQ(line,
		     "127.0.0.1 - - [03/Dec/2026:13:29:07 +0000] \"GET /service1 HTTP/1.1\" 200 38 "
		     "\"http://x/\\x22q\\x22\" \"ua\\x5C\\x01\\xE9\" upstream=[fd00::2]:8080 "
		     "cluster=c2 canary=web-demo/web-demo-cluster-second upstream_time=0.003 "
		     "request_time=0.003\n",
		     "combined line, escaped");

	/* What never reached an upstream: a refusal. */
	fg_request_record_blank(&r, "10.0.0.9");
	r.status = 503;
	r.end = FG_REQ_REFUSED;
	r.bytes_out = 120;
	fg_access_log_format(FG_ALOG_COMBINED, &r, "", &now, line, sizeof(line));
	ASSERT_STREQ(line,
		     "10.0.0.9 - - [03/Dec/2026:13:29:07 +0000] \"-\" 503 120 \"-\" \"-\" "
		     "upstream=- cluster=- canary=- upstream_time=- request_time=0.000\n",
		     "refused line");
	/* A line too long for the buffer is cut, and still ends in \n. */
	n = fg_access_log_format(FG_ALOG_COMBINED, &r, "", &now, line, 40);
	ASSERT_EQ(n, 39, "cut length");
	ASSERT_EQ(line[38], '\n', "cut line ends in newline");
	unsetenv("TZ");
	tzset();
}

static void subtest_access_log_json(void)
{
	struct timespec now = { .tv_sec = T_EXAMPLE };
	struct fg_request_record r;
	char line[FG_ALOG_LINE_MAX];
	json_error_t jerr;
	json_t *j;

	setenv("TZ", "UTC", 1);
	tzset();
	example_record(&r);
	r.canary = "web-demo/canary";
	r.user_agent = "ua \"\xe9\"";
	fg_access_log_format(FG_ALOG_JSON, &r, "c1", &now, line, sizeof(line));
	ASSERT_EQ(line[strlen(line) - 1], '\n', "one line");
	ASSERT_TRUE(strchr(line, '\n') == line + strlen(line) - 1, "no newline inside");
	j = json_loads(line, 0, &jerr);
	if (!ASSERT_OK_PTR(j, "valid JSON")) {
		printf("%s: %s\n", jerr.text, line);
		goto out;
	}
	ASSERT_STREQ(json_string_value(json_object_get(j, "time")), "2026-12-03T13:29:07+00:00",
		     "time");
	ASSERT_STREQ(json_string_value(json_object_get(j, "remote_addr")), "127.0.0.1", "addr");
	ASSERT_STREQ(json_string_value(json_object_get(j, "request")), "GET /service1 HTTP/1.1",
		     "request");
	ASSERT_EQ(json_integer_value(json_object_get(j, "status")), 200, "status");
	ASSERT_EQ(json_integer_value(json_object_get(j, "body_bytes_sent")), 38, "body bytes");
	ASSERT_EQ(json_integer_value(json_object_get(j, "bytes_sent")), 150, "bytes");
	ASSERT_EQ(json_integer_value(json_object_get(j, "request_length")), 80, "request length");
	ASSERT_STREQ(json_string_value(json_object_get(j, "upstream")), "10.0.1.2:8080",
		     "upstream");
	ASSERT_STREQ(json_string_value(json_object_get(j, "cluster")), "c1", "cluster");
	ASSERT_STREQ(json_string_value(json_object_get(j, "canary")), "web-demo/canary", "canary");
	ASSERT_STREQ(json_string_value(json_object_get(j, "http_user_agent")), "ua \"\xc3\xa9\"",
		     "obs-text as U+00E9");
	ASSERT_TRUE(json_is_null(json_object_get(j, "http_referer")), "no referer: null");
	ASSERT_TRUE(fabs(json_real_value(json_object_get(j, "request_time")) - 0.003) < 1e-9,
		    "request_time");
	ASSERT_TRUE(fabs(json_real_value(json_object_get(j, "upstream_connect_time")) - 0.0) < 1e-9,
		    "upstream_connect_time");
	ASSERT_TRUE(fabs(json_real_value(json_object_get(j, "upstream_header_time")) - 0.002) <
			    1e-9, "upstream_header_time");
	ASSERT_STREQ(json_string_value(json_object_get(j, "end")), "done", "end");
	json_decref(j);

	/* No upstream: nulls. */
	fg_request_record_blank(&r, "::1");
	r.status = 400;
	r.end = FG_REQ_ERROR;
	fg_access_log_format(FG_ALOG_JSON, &r, "", &now, line, sizeof(line));
	j = json_loads(line, 0, &jerr);
	if (ASSERT_OK_PTR(j, "valid JSON (no upstream)")) {
		ASSERT_TRUE(json_is_null(json_object_get(j, "upstream")), "upstream null");
		ASSERT_TRUE(json_is_null(json_object_get(j, "upstream_time")), "upstream_time null");
		ASSERT_TRUE(json_is_null(json_object_get(j, "request")), "request null");
		ASSERT_STREQ(json_string_value(json_object_get(j, "end")), "error", "end");
		json_decref(j);
	}
out:
	unsetenv("TZ");
	tzset();
}

/* Reads everything fd has until EOF or timeout_ms without data. */
static size_t read_some(int fd, char *buf, size_t cap, unsigned timeout_ms)
{
	size_t len = 0;

	while (len < cap) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&pfd, 1, timeout_ms) != 1)
			break;
		n = read(fd, buf + len, cap - len);
		if (n <= 0)
			break;
		len += n;
	}
	return len;
}

static void subtest_access_log_drops(void)
{
	struct fg_access_log_opts o = { .fd = -1, .format = FG_ALOG_COMBINED, .buffer_size = 1024 };
	struct fg_access_log_stats st;
	struct fg_access_log *al = NULL;
	char line[128], *all = NULL, *p;
	int pfd[2] = { -1, -1 }, i, pushed = 0, dropped = 0, seen = 0, next = 0;
	long long t0;
	size_t len;

	if (!ASSERT_OK(pipe2(pfd, O_CLOEXEC), "pipe"))
		return;
	/* The smallest pipe: the writer blocks once it holds 4 KiB. */
	fcntl(pfd[1], F_SETPIPE_SZ, 4096);
	o.fd = pfd[1];
	if (!ASSERT_OK(fg_access_log_open(&al, &o), "open"))
		goto out;
	t0 = (long long)time(NULL);
	for (i = 0; i < 400; i++) {
		int n = snprintf(line, sizeof(line), "line %04d %s\n", i,
				 "................................................................");

		if (fg_access_log_push(al, line, n))
			pushed++;
		else
			dropped++;
	}
	ASSERT_LT((long long)time(NULL) - t0, 2, "pushing never waited for the reader");
	ASSERT_GT(dropped, 0, "lines dropped with nobody reading");
	ASSERT_GT(pushed, 0, "lines queued");
	fg_access_log_stats(al, &st);
	ASSERT_EQ(st.lines, pushed, "lines counted");
	ASSERT_EQ(st.dropped, dropped, "drops counted");
	/* Now read: every queued line arrives whole and in order. */
	all = malloc(1 << 20);
	if (!ASSERT_OK_PTR(all, "malloc"))
		goto out;
	len = read_some(pfd[0], all, (1 << 20) - 1, 300);
	ASSERT_OK(fg_access_log_flush(al, 2000), "flush");
	len += read_some(pfd[0], all + len, (1 << 20) - 1 - len, 100);
	all[len] = '\0';
	for (p = all; *p; p = strchr(p, '\n') + 1) {
		int k;

		if (!strchr(p, '\n') || sscanf(p, "line %d ", &k) != 1 || k < next) {
			ASSERT_TRUE(false, "a whole line, in order");
			break;
		}
		next = k + 1;
		seen++;
	}
	ASSERT_EQ(seen, pushed, "every queued line written");
out:
	fg_access_log_close(al);
	free(all);
	close(pfd[0]);
	close(pfd[1]);
}

static void subtest_access_log_file(void)
{
	struct fg_access_log_opts o = { .fd = -1, .format = FG_ALOG_JSON };
	struct fg_request_record r;
	struct fg_access_log *al = NULL;
	char path[512], buf[8192];
	FILE *f;
	size_t n;
	int lines = 0, i;

	snprintf(path, sizeof(path), "%s/access.log", test__tmpdir());
	unlink(path);
	o.path = path;
	if (!ASSERT_OK(fg_access_log_open(&al, &o), "open"))
		return;
	example_record(&r);
	for (i = 0; i < 3; i++)
		ASSERT_TRUE(fg_access_log_record(al, &r, "c1"), "queued");
	ASSERT_OK(fg_access_log_flush(al, 2000), "flush");
	fg_access_log_close(al);
	f = fopen(path, "r");
	if (!ASSERT_OK_PTR(f, "log file"))
		return;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (i = 0; buf[i]; i++)
		lines += buf[i] == '\n';
	ASSERT_EQ(lines, 3, "three lines");
	ASSERT_TRUE(strstr(buf, "\"cluster\":\"c1\"") != NULL, "JSON lines");
}

static int fixed_render(void *ctx, struct fg_expo *e)
{
	fg_expo_family(e, "fg_test_up", "gauge", "Test.");
	fg_expo_u64(e, "fg_test_up", NULL, *(int *)ctx);
	return 0;
}

/* One request to the server on 127.0.0.1:port; the whole answer. */
static char *ask(struct fg_metrics_server *s, const char *req)
{
	struct sockaddr_in sin = { .sin_family = AF_INET,
				   .sin_port = htons(fg_metrics_server_port(s)),
				   .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char *out = calloc(1, 65536);
	size_t len = 0;
	long long dl = 0;
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || !out || connect(fd, (struct sockaddr *)&sin, sizeof(sin)) ||
	    send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		if (fd >= 0)
			close(fd);
		free(out);
		return NULL;
	}
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		fg_metrics_server_process(s);
		if (poll(&pfd, 1, 10) == 1) {
			n = recv(fd, out + len, 65535 - len, 0);
			if (n <= 0)
				break;
			len += n;
		}
		if (++dl > 500)
			break; /* 5 s */
	}
	close(fd);
	return out;
}

static void subtest_server(void)
{
	struct fg_metrics_server *s = NULL;
	int val = 7;
	char *r;

	if (!ASSERT_OK(fg_metrics_server_open(&s, "127.0.0.1:0", fixed_render, &val), "open"))
		return;
	ASSERT_GT(fg_metrics_server_port(s), 0, "a port");
	r = ask(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	if (ASSERT_OK_PTR(r, "GET /metrics")) {
		ASSERT_TRUE(!strncmp(r, "HTTP/1.1 200 OK\r\n", 17), "200");
		ASSERT_TRUE(strstr(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n") !=
				    NULL, "content type");
		ASSERT_TRUE(strstr(r, "\r\n\r\n# HELP fg_test_up Test.\n# TYPE fg_test_up gauge\n"
				      "fg_test_up 7\n") != NULL, "body");
		free(r);
	}
	r = ask(s, "GET /metrics?x=1 HTTP/1.0\r\n\r\n");
	if (ASSERT_OK_PTR(r, "GET /metrics?x=1"))
		ASSERT_TRUE(!strncmp(r, "HTTP/1.1 200 ", 13), "200 with a query");
	free(r);
	r = ask(s, "GET /other HTTP/1.1\r\nHost: x\r\n\r\n");
	if (ASSERT_OK_PTR(r, "GET /other"))
		ASSERT_TRUE(!strncmp(r, "HTTP/1.1 404 ", 13), "404");
	free(r);
	r = ask(s, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
	if (ASSERT_OK_PTR(r, "POST")) {
		ASSERT_TRUE(!strncmp(r, "HTTP/1.1 405 ", 13), "405");
		ASSERT_TRUE(strstr(r, "\r\nAllow: GET, HEAD\r\n") != NULL, "Allow");
	}
	free(r);
	r = ask(s, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
	if (ASSERT_OK_PTR(r, "HEAD")) {
		ASSERT_TRUE(!strncmp(r, "HTTP/1.1 200 ", 13), "HEAD 200");
		ASSERT_TRUE(strstr(r, "fg_test_up") == NULL, "HEAD: no body");
	}
	free(r);
	r = ask(s, "garbage\r\n\r\n");
	if (ASSERT_OK_PTR(r, "garbage"))
		ASSERT_TRUE(!strncmp(r, "HTTP/1.1 400 ", 13), "400");
	free(r);
	fg_metrics_server_close(s);
	ASSERT_ERR(fg_metrics_server_open(&s, "nonsense", fixed_render, &val), "bad address");
	ASSERT_OK(fg_metrics_listen_check("127.0.0.1:10254"), "ADDR:PORT");
	ASSERT_OK(fg_metrics_listen_check("[::1]:0"), "[ADDR6]:PORT");
	ASSERT_ERR(fg_metrics_listen_check("127.0.0.1"), "no port");
	ASSERT_ERR(fg_metrics_listen_check("127.0.0.1:70000"), "port too large");
	ASSERT_ERR(fg_metrics_listen_check("[::1]80"), "no colon after ]");
	ASSERT_ERR(fg_metrics_listen_check("::1:80"), "IPv6 without brackets");
	ASSERT_ERR(fg_metrics_listen_check("host.example:80"), "a name, not an address");
}

FG_TEST(metrics)
{
	if (test__start_subtest("expo_format"))
		subtest_expo_format();
	if (test__start_subtest("label_escaping"))
		subtest_label_escaping();
	if (test__start_subtest("histogram_buckets"))
		subtest_histogram_buckets();
	if (test__start_subtest("access_log_combined"))
		subtest_access_log_combined();
	if (test__start_subtest("access_log_json"))
		subtest_access_log_json();
	if (test__start_subtest("access_log_drops"))
		subtest_access_log_drops();
	if (test__start_subtest("access_log_file"))
		subtest_access_log_file();
	if (test__start_subtest("server"))
		subtest_server();
}

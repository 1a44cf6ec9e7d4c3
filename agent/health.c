// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "health.h"
#include "hmap.h"
#include "resources.h"
#include "log.h"

struct fg_probe_state {
	__u16 fails;
	__u16 oks;
	/* Whose counts these are: a backend id reused for another endpoint
	 * starts from zero. */
	struct fg_addr addr;
	__be16 port;
};

enum probe_phase {
	PROBE_CONNECTING,
	PROBE_SENDING, /* HTTP: the request is being written */
	PROBE_READING, /* HTTP: waiting for the status line */
	PROBE_DONE,
};

struct probe {
	__u32 id;
	int fd;
	bool ok;
	bool local;    /* failed for a reason of the gateway's own: not counted */
	__u64 started; /* ms, when its connect began */
	bool http;
	enum probe_phase phase;
	int same_as; /* index of the probe of the same endpoint, or -1 */
	size_t sent;
	size_t got;
	char buf[64]; /* the start of the response: enough for the status */
	struct fg_backend be;
};

struct fg_health {
	struct fg_dataplane *dp;
	struct fg_health_opts opts;
	int epfd;
	struct fg_probe_state *state; /* by backend id (max backends, lazily touched) */
	__u32 max_backends;
	struct probe *round;
	size_t n_round;
	size_t pending; /* probes of the round not done yet */
	size_t next;    /* the next probe of the round to start */
	size_t inflight;
	__u64 started_ms;
	struct fg_local_errors local;
	char request[512];
	size_t request_len;
};

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fg_health_new(struct fg_health **out, struct fg_dataplane *dp,
		  const struct fg_health_opts *opts)
{
	struct fg_health *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->dp = dp;
	h->opts = *opts;
	h->max_backends = fg_dp_max_backends(dp);
	h->state = calloc(h->max_backends, sizeof(*h->state));
	if (!h->state) {
		free(h);
		return -ENOMEM;
	}
	if (!h->opts.timeout_ms)
		h->opts.timeout_ms = 200;
	if (!h->opts.fall)
		h->opts.fall = 2;
	if (!h->opts.rise)
		h->opts.rise = 2;
	if (!h->opts.max_inflight)
		h->opts.max_inflight = FG_HEALTH_DEF_MAX_INFLIGHT;
	fg_local_errors_init(&h->local, "health");
	if (h->opts.http_path) {
		int n = snprintf(h->request, sizeof(h->request),
				 "GET %s HTTP/1.1\r\nHost: fleetgate-health\r\n"
				 "User-Agent: fleetgate-health\r\nConnection: close\r\n\r\n",
				 h->opts.http_path);

		if (n < 0 || (size_t)n >= sizeof(h->request) || h->opts.http_path[0] != '/') {
			pr_warn("health: invalid HTTP probe path '%s'\n", h->opts.http_path);
			free(h->state);
			free(h);
			return -EINVAL;
		}
		h->request_len = n;
	}
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (h->epfd < 0) {
		int err = -errno;

		free(h->state);
		free(h);
		return err;
	}
	*out = h;
	return 0;
}

int fg_health_fd(const struct fg_health *h)
{
	return h->epfd;
}

static void probe_finish(struct fg_health *h, struct probe *p, bool ok)
{
	if (p->phase == PROBE_DONE)
		return;
	p->ok = ok;
	p->phase = PROBE_DONE;
	if (p->fd >= 0) {
		epoll_ctl(h->epfd, EPOLL_CTL_DEL, p->fd, NULL);
		close(p->fd);
		p->fd = -1;
	}
	if (p->started)
		h->inflight--;
	h->pending--;
}

/* The probe could not run for want of something local (a file descriptor,
 * a port, memory): it says nothing about the backend. */
static void probe_local_error(struct fg_health *h, struct probe *p, int err)
{
	char what[96], abuf[64];

	fg_addr_str(&p->be.addr, p->be.family, abuf, sizeof(abuf));
	snprintf(what, sizeof(what), p->be.family == FG_AF_INET ? "probe of %s:%u" : "probe of [%s]:%u",
		 abuf, ntohs(p->be.port));
	fg_local_error(&h->local, err, what);
	p->local = true;
	probe_finish(h, p, false);
}

static void free_round(struct fg_health *h)
{
	size_t i;

	for (i = 0; i < h->n_round; i++)
		if (h->round[i].phase != PROBE_DONE)
			probe_finish(h, &h->round[i], false);
	free(h->round);
	h->round = NULL;
	h->n_round = 0;
	h->pending = 0;
	h->next = 0;
	h->inflight = 0;
}

json_t *fg_health_stats(const struct fg_health *h)
{
	return json_pack("{s:o, s:I, s:I}", "localErrors", fg_local_errors_json(&h->local),
			 "roundProbes", (json_int_t)h->n_round, "inflight", (json_int_t)h->inflight);
}

const struct fg_local_errors *fg_health_local_errors(const struct fg_health *h)
{
	return &h->local;
}

void fg_health_free(struct fg_health *h)
{
	if (!h)
		return;
	free_round(h);
	close(h->epfd);
	free(h->state);
	free(h);
}

/* Starts a non-blocking connect. Returns 0, or -errno when it failed at
 * once (the probe then failed). */
static int probe_start(struct fg_health *h, struct probe *p, size_t idx)
{
	struct epoll_event ev = { .events = EPOLLOUT, .data.u64 = idx };
	struct sockaddr_storage ss = {};
	socklen_t len;

	if (p->be.family == FG_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = p->be.port;
		sin->sin_addr.s_addr = p->be.addr.v4;
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = p->be.port;
		memcpy(&sin6->sin6_addr, p->be.addr.bytes, 16);
		len = sizeof(*sin6);
	}
	p->started = now_ms();
	h->inflight++;
	p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0)
		return -errno;
	if (connect(p->fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS)
		return -errno;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, p->fd, &ev))
		return -errno;
	return 0;
}

/* Starts the round's next probes, at most max_inflight at a time. */
static void start_more(struct fg_health *h)
{
	while (h->next < h->n_round && h->inflight < h->opts.max_inflight) {
		struct probe *p = &h->round[h->next];
		int err;

		h->next++;
		if (p->phase == PROBE_DONE)
			continue; /* same endpoint as an earlier probe */
		err = probe_start(h, p, p - h->round);
		if (!err)
			continue;
		if (fg_local_errno(err))
			probe_local_error(h, p, err);
		else
			probe_finish(h, p, false);
	}
}

static bool status_ok(const struct probe *p)
{
	int status;

	/* "HTTP/1.x NNN" */
	if (p->got < 12 || strncmp(p->buf, "HTTP/1.", 7) || p->buf[8] != ' ')
		return false;
	if (sscanf(p->buf + 9, "%3d", &status) != 1)
		return false;
	return status >= 200 && status < 400;
}

static void probe_advance(struct fg_health *h, struct probe *p, __u32 events)
{
	struct epoll_event ev = { .data.u64 = p - h->round };
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	ssize_t n;

	switch (p->phase) {
	case PROBE_CONNECTING:
		if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			soerr = errno;
		if (soerr) {
			if (fg_local_errno(soerr))
				probe_local_error(h, p, soerr);
			else
				probe_finish(h, p, false);
			return;
		}
		if (!p->http) {
			probe_finish(h, p, true);
			return;
		}
		p->phase = PROBE_SENDING;
		/* fall through */
	case PROBE_SENDING:
		n = send(p->fd, h->request + p->sent, h->request_len - p->sent,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (fg_local_errno(errno))
				probe_local_error(h, p, errno);
			else if (errno != EAGAIN)
				probe_finish(h, p, false);
			return;
		}
		p->sent += n;
		if (p->sent < h->request_len)
			return;
		p->phase = PROBE_READING;
		ev.events = EPOLLIN;
		if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, p->fd, &ev))
			probe_finish(h, p, false);
		return;
	case PROBE_READING:
		n = recv(p->fd, p->buf + p->got, sizeof(p->buf) - 1 - p->got, MSG_DONTWAIT);
		if (n < 0 && errno == EAGAIN)
			return;
		if (n > 0)
			p->got += n;
		/* The status line is all we need: decide on 12 bytes, on EOF or
		 * on an error. */
		if (n <= 0 || p->got >= 12)
			probe_finish(h, p, status_ok(p));
		return;
	case PROBE_DONE:
		return;
	}
	(void)events;
}

/* Returns true when the backend's state flipped. */
static bool account(struct fg_health *h, const struct probe *p, bool *now_up)
{
	struct fg_probe_state *st = &h->state[p->id];
	bool up = p->be.flags & FG_BACKEND_F_UP;

	if (p->id >= h->max_backends)
		return false;
	if (st->port != p->be.port || memcmp(&st->addr, &p->be.addr, sizeof(st->addr))) {
		memset(st, 0, sizeof(*st));
		st->addr = p->be.addr;
		st->port = p->be.port;
	}
	if (p->ok) {
		st->fails = 0;
		if (st->oks < 0xffff)
			st->oks++;
		if (!up && st->oks >= h->opts.rise) {
			*now_up = true;
			return true;
		}
	} else {
		st->oks = 0;
		if (st->fails < 0xffff)
			st->fails++;
		if (up && st->fails >= h->opts.fall) {
			*now_up = false;
			return true;
		}
	}
	return false;
}

/* Applies the finished round: state changes, then one ring rebuild. */
static int apply_round(struct fg_health *h)
{
	struct fg_backend cur;
	__u32 *changed = NULL;
	int changes = 0, err;
	size_t i;

	for (i = 0; i < h->n_round; i++) {
		struct probe *p = &h->round[i];
		char abuf[64];
		bool up;

		if (p->same_as >= 0) {
			p->ok = h->round[p->same_as].ok;
			p->local = h->round[p->same_as].local;
		}
		if (p->local)
			continue;
		/* The proxy may have marked it down since the round began, and
		 * a new plan may have removed or reused the id. */
		if (fg_dp_backend_view(h->dp, p->id, &cur) || !(cur.flags & FG_BACKEND_F_ACTIVE) ||
		    cur.port != p->be.port || memcmp(&cur.addr, &p->be.addr, sizeof(cur.addr)))
			continue;
		p->be.flags = cur.flags;
		if (!account(h, p, &up))
			continue;
		fg_addr_str(&p->be.addr, p->be.family, abuf, sizeof(abuf));
		err = fg_dp_set_backend_up(h->dp, p->id, up);
		if (err) {
			pr_warn("health: cannot mark backend %u (%s) %s: %s\n", p->id, abuf,
				up ? "up" : "down", strerror(-err));
			continue;
		}
		pr_info("health: backend %u %s:%u of cluster %s is %s\n", p->id, abuf,
			ntohs(p->be.port), fg_dp_cluster_name(h->dp, p->be.cluster_idx),
			up ? "UP" : "DOWN");
		if (!changed) {
			changed = malloc(h->n_round * sizeof(*changed));
			if (!changed)
				return -ENOMEM;
		}
		changed[changes++] = p->id;
	}
	if (changes) {
		err = fg_dp_backends_changed(h->dp, changed, changes);
		if (err)
			pr_warn("health: cannot rebuild the rings after a health change: %s\n",
				strerror(-err));
	}
	free(changed);
	return changes;
}

/* What a probe goes to: two backends with the same one share a probe. */
struct probe_key {
	struct fg_addr addr;
	__be16 port;
	__u8 family;
	__u8 http;
};

static int start_round(struct fg_health *h)
{
	__u32 id, high = fg_dp_backend_high(h->dp);
	struct fg_hmap seen;
	size_t n = 0, cap = 0;
	struct fg_backend be;

	fg_hmap_init(&seen, sizeof(struct probe_key));
	for (id = 1; id < high; id++) {
		struct probe_key k = {};
		struct probe *p;
		__u64 *first;
		bool http;

		if (fg_dp_backend_view(h->dp, id, &be))
			continue;
		if (!(be.flags & FG_BACKEND_F_ACTIVE) ||
		    !(be.flags & (FG_BACKEND_F_PROBE_TCP | FG_BACKEND_F_PROBE_HTTP)))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct probe *np = realloc(h->round, ncap * sizeof(*np));

			if (!np) {
				fg_hmap_fini(&seen);
				return -ENOMEM;
			}
			h->round = np;
			cap = ncap;
		}
		p = &h->round[n];
		memset(p, 0, sizeof(*p));
		p->id = id;
		p->be = be;
		p->fd = -1;
		http = h->request_len && (be.flags & FG_BACKEND_F_PROBE_HTTP);
		p->http = http;
		k.addr = be.addr;
		k.port = be.port;
		k.family = be.family;
		k.http = http;
		first = fg_hmap_get(&seen, &k);
		h->n_round = ++n;
		if (first) {
			p->same_as = (int)*first;
			p->phase = PROBE_DONE;
			continue;
		}
		p->same_as = -1;
		if (fg_hmap_put(&seen, &k, n - 1)) {
			fg_hmap_fini(&seen);
			return -ENOMEM;
		}
		h->pending++;
	}
	fg_hmap_fini(&seen);
	h->started_ms = now_ms();
	start_more(h);
	return 0;
}

void fg_health_process(struct fg_health *h)
{
	struct epoll_event evs[64];
	int n, i;

	n = epoll_wait(h->epfd, evs, 64, 0);
	for (i = 0; i < n; i++) {
		size_t idx = evs[i].data.u64;

		if (idx < h->n_round)
			probe_advance(h, &h->round[idx], evs[i].events);
	}
	start_more(h);
}

/* Probes past their deadline failed; their slots go to the next ones. */
static void expire(struct fg_health *h)
{
	__u64 now = now_ms();
	size_t i;

	for (i = 0; i < h->next; i++) {
		struct probe *p = &h->round[i];

		if (p->phase != PROBE_DONE && p->started && now - p->started >= h->opts.timeout_ms)
			probe_finish(h, p, false);
	}
	start_more(h);
}

int fg_health_tick(struct fg_health *h)
{
	int changes = 0, err;

	fg_local_errors_flush(&h->local);
	if (h->round) {
		/* A round still going goes on: each probe has its own
		 * deadline, and at most max_inflight run at once. */
		fg_health_process(h);
		expire(h);
		if (h->pending)
			return 0;
		changes = apply_round(h);
		free_round(h);
	}
	err = start_round(h);
	return err ? err : changes;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <bpf/bpf.h>
#include <jansson.h>

#include "health.h"
#include "log.h"

struct fg_probe_state {
	__u16 fails;
	__u16 oks;
	/* Whose counts these are: a backend id reused for another endpoint
	 * starts from zero. */
	struct fg_addr addr;
	__be16 port;
};

struct probe;

struct fg_health {
	struct fg_dataplane *dp;
	struct fg_health_opts opts;
	struct fg_probe_state state[FG_MAX_BACKENDS];
	/* The round in flight: probes started on one tick are collected on a
	 * later one, so the agent's loop never waits for a probe. */
	struct probe *inflight;
	size_t n_inflight;
	__u64 started_ms;
};

int fg_health_new(struct fg_health **out, struct fg_dataplane *dp,
		  const struct fg_health_opts *opts)
{
	struct fg_health *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->dp = dp;
	h->opts = *opts;
	if (!h->opts.timeout_ms)
		h->opts.timeout_ms = 200;
	if (!h->opts.fall)
		h->opts.fall = 2;
	if (!h->opts.rise)
		h->opts.rise = 2;
	*out = h;
	return 0;
}

static void close_probes(struct probe *probes, size_t n);

void fg_health_free(struct fg_health *h)
{
	if (!h)
		return;
	close_probes(h->inflight, h->n_inflight);
	free(h->inflight);
	free(h);
}

/* Starts a non-blocking connect; returns the socket or -errno (an
 * immediate refusal counts as a failed probe). */
static int probe_start(const struct fg_backend *be)
{
	struct sockaddr_storage ss = {};
	socklen_t len;
	int fd;

	if (be->family == FG_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = be->port;
		sin->sin_addr.s_addr = be->addr.v4;
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = be->port;
		memcpy(&sin6->sin6_addr, be->addr.bytes, 16);
		len = sizeof(*sin6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static bool probe_ok(int fd)
{
	int soerr = 0;
	socklen_t len = sizeof(soerr);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len))
		return false;
	return soerr == 0;
}

struct probe {
	__u32 id;
	int fd;
	bool ok;
	int same_as; /* index of the probe of the same address:port, or -1 */
	struct fg_backend be;
};

static int collect(struct fg_health *h, struct probe **out, size_t *n_out)
{
	const struct fg_maps *maps = fg_dp_maps(h->dp);
	struct probe *probes = NULL;
	json_t *seen = json_object();
	size_t n = 0, cap = 0;
	struct fg_backend be;
	__u32 id;

	if (!seen)
		return -ENOMEM;
	for (id = 0; id < FG_MAX_BACKENDS; id++) {
		char key[80], abuf[64];
		json_t *first;

		if (bpf_map_lookup_elem(maps->backends, &id, &be))
			continue;
		if (!(be.flags & FG_BACKEND_F_ACTIVE) || !(be.flags & FG_BACKEND_F_PROBE_TCP))
			continue;
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 64;
			struct probe *p = realloc(probes, ncap * sizeof(*p));

			if (!p) {
				free(probes);
				json_decref(seen);
				return -ENOMEM;
			}
			probes = p;
			cap = ncap;
		}
		probes[n].id = id;
		probes[n].be = be;
		probes[n].ok = false;
		/* An endpoint serving several routes is probed once. */
		fg_addr_str(&be.addr, be.family, abuf, sizeof(abuf));
		snprintf(key, sizeof(key), "%s|%u", abuf, ntohs(be.port));
		first = json_object_get(seen, key);
		if (first) {
			probes[n].same_as = (int)json_integer_value(first);
			probes[n].fd = -1;
		} else {
			probes[n].same_as = -1;
			probes[n].fd = probe_start(&be);
			json_object_set_new(seen, key, json_integer(n));
		}
		n++;
	}
	json_decref(seen);
	*out = probes;
	*n_out = n;
	return 0;
}

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Collects what the round's probes found, without waiting: a connect that
 * has not completed by now (the deadline passed) failed. */
static void finish_probes(struct probe *probes, size_t n)
{
	struct pollfd *pfds = calloc(n ? n : 1, sizeof(*pfds));
	size_t i;

	if (!pfds)
		return;
	for (i = 0; i < n; i++) {
		pfds[i].fd = probes[i].fd; /* negative fds are ignored */
		pfds[i].events = POLLOUT;
	}
	if (poll(pfds, n, 0) > 0) {
		for (i = 0; i < n; i++)
			if (probes[i].fd >= 0 && pfds[i].revents)
				probes[i].ok = probe_ok(probes[i].fd);
	}
	free(pfds);
	close_probes(probes, n);
}

static void close_probes(struct probe *probes, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (probes[i].fd >= 0) {
			close(probes[i].fd);
			probes[i].fd = -1;
		}
	}
}

/* Returns true when the backend's state flipped. */
static bool account(struct fg_health *h, const struct probe *p, bool *now_up)
{
	struct fg_probe_state *st = &h->state[p->id];
	bool up = p->be.flags & FG_BACKEND_F_UP;

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

static int apply_round(struct fg_health *h, struct probe *probes, size_t n)
{
	bool dirty[FG_MAX_SERVICES] = {};
	int changes = 0, err;
	size_t i;

	for (i = 0; i < n; i++)
		if (probes[i].same_as >= 0)
			probes[i].ok = probes[probes[i].same_as].ok;
	for (i = 0; i < n; i++) {
		char abuf[64];
		bool up;

		if (!account(h, &probes[i], &up))
			continue;
		fg_addr_str(&probes[i].be.addr, probes[i].be.family, abuf, sizeof(abuf));
		err = fg_dp_set_backend_up(h->dp, probes[i].id, up);
		if (err) {
			pr_warn("health: cannot mark backend %u (%s) %s: %s\n", probes[i].id,
				abuf, up ? "up" : "down", strerror(-err));
			continue;
		}
		pr_info("health: backend %u %s:%u of service %u is %s\n", probes[i].id, abuf,
			ntohs(probes[i].be.port), probes[i].be.service_id, up ? "UP" : "DOWN");
		if (probes[i].be.service_id < FG_MAX_SERVICES)
			dirty[probes[i].be.service_id] = true;
		changes++;
	}
	if (changes) {
		__u32 ids[FG_MAX_SERVICES];
		size_t n_ids = 0;

		for (i = 0; i < FG_MAX_SERVICES; i++)
			if (dirty[i])
				ids[n_ids++] = i;
		err = fg_dp_rebuild_services(h->dp, ids, n_ids);
		if (err)
			pr_warn("health: cannot rebuild the rings after a health change: %s\n",
				strerror(-err));
	}
	return changes;
}

int fg_health_run_once(struct fg_health *h)
{
	int changes = 0, err;

	if (h->inflight) {
		/* A round shorter than the probe deadline goes on. */
		if (now_ms() - h->started_ms < h->opts.timeout_ms)
			return 0;
		finish_probes(h->inflight, h->n_inflight);
		changes = apply_round(h, h->inflight, h->n_inflight);
		free(h->inflight);
		h->inflight = NULL;
		h->n_inflight = 0;
	}
	err = collect(h, &h->inflight, &h->n_inflight);
	if (err)
		return err;
	h->started_ms = now_ms();
	return changes;
}

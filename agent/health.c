// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The prober (health.h). Per backend id an entry (struct ep) with the
 * endpoint it was last seen as, its consecutive failures and passes, and
 * its links in a timing wheel: one bucket per millisecond of the interval
 * (at most WHEEL_MAX buckets), an id in the bucket of its offset. As time
 * passes the wheel's cursor moves the ids of the buckets it crosses to the
 * due queue, and probes start from there while slots are free. Probes live
 * in a pool of max_inflight entries, linked by start time so the timeouts
 * are found at the head. A probe's result updates its endpoint's counts;
 * an endpoint whose state should flip waits in the pending list for the
 * next step, and once flipped in the queue of rings to rebuild.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <jansson.h>

#include "fleetgate_hash.h"
#include "health.h"
#include "resources.h"
#include "log.h"

#define NIL UINT32_MAX
#define WHEEL_MAX 65536
#define SCAN_SLICE 8192   /* ids viewed per call while a scan runs */
#define DQ_BACKLOG 4      /* due ids queued per probe slot, at most */
#define EVENTS_BATCH 128
#define REBUILD_IDS 2     /* backends per fg_dp_backends_changed call */
#define TAG_TIMER 0xffffffffULL
#define TAG_KICK 0xfffffffeULL

enum ep_flags {
	EP_KNOWN = 1 << 0,    /* scheduled (in the wheel) */
	EP_HTTP = 1 << 1,     /* probed with a GET */
	EP_QUEUED = 1 << 2,   /* in the due queue */
	EP_INFLIGHT = 1 << 3, /* a probe is open */
	EP_PENDING = 1 << 4,  /* in the list of state changes to apply */
	EP_UP = 1 << 5,       /* UP as last seen in the mirror or written */
	EP_REBUILD = 1 << 6,  /* in the queue of rings to rebuild */
};

/* Per backend id (max_backends of them, lazily touched). */
struct ep {
	/* Whose counts these are: a digest of the endpoint (address, port,
	 * family), which the data plane's mirror holds whole. 20 bytes an
	 * endpoint instead of 32: 12 MiB at 1,000,000. */
	__u32 digest;
	__u8 flags;
	__u8 pad;
	__u16 fails;
	__u16 oks;
	__u16 pad2;
	__u32 next, prev;    /* in its wheel bucket */
};

enum probe_phase {
	PROBE_FREE,
	PROBE_CONNECTING,
	PROBE_SENDING, /* HTTP: the request is being written */
	PROBE_READING, /* HTTP: waiting for the status line */
};

enum probe_result {
	R_PASS,
	R_FAIL,
	R_TIMEOUT,
	R_LOCAL, /* a reason of the gateway's own: not counted */
};

struct probe {
	__u32 id;
	__u32 gen;           /* tells a stale epoll event from this probe's */
	int fd;
	enum probe_phase phase;
	bool http;
	__u8 family;
	__be16 port;
	struct fg_addr addr;
	__u64 started;       /* us */
	__u32 older, newer;  /* the open probes by start time */
	__u32 sent, got;
	char buf[64];        /* the start of the response: enough for the status */
};

struct fg_health {
	struct fg_dataplane *dp;
	struct fg_health_opts opts;
	int epfd, tfd, kfd;
	bool armed;          /* the step timer runs */
	bool kicked;         /* kfd was written and not read yet */

	struct ep *eps;
	__u32 max_backends;
	__u32 n_known;

	/* the wheel */
	__u32 *wheel;
	__u32 *bucket_n;     /* ids per bucket: skipped buckets are counted late */
	__u32 nb;            /* buckets */
	__u64 interval_us;
	__u64 step_us;
	__u64 t0;            /* us, bucket 0 of cycle 0 */
	__u64 cursor;        /* the last bucket moved to the due queue (absolute) */

	/* the due queue: a ring of ids */
	__u32 *dq;
	size_t dq_cap, dq_head, dq_len;

	/* the probes */
	struct probe *pool;
	__u32 *free_list;
	__u32 n_free;
	__u32 oldest, newest;
	size_t inflight;

	/* the scan of the mirror */
	bool scanning, scanned_once;
	__u32 scan_pos;
	__u64 scan_epoch, scanned_epoch;

	/* state changes to apply */
	__u32 *pend;
	size_t pend_head, pend_len, pend_cap;
	/* backends whose flag changed, their rings not rebuilt yet */
	__u32 *rq;
	size_t rq_head, rq_len, rq_cap;
	__u64 last_step;     /* us */

	__u64 late_warned;   /* c.late at the last warning */
	__u64 late_warn_at;  /* us */

	__u64 deadline;      /* us: this call's budget ends */
	struct fg_health_counters c;
	struct fg_local_errors local;
	char request[512];
	size_t request_len;
};

static __u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static bool over_budget(const struct fg_health *h)
{
	return now_us() >= h->deadline;
}

/* The id's offset in the interval: its bits reversed (a van der Corput
 * sequence), so ids 1..N spread evenly over the buckets for any N. */
static __u32 bucket_of(const struct fg_health *h, __u32 id)
{
	__u32 r = id;

	r = ((r >> 1) & 0x55555555) | ((r & 0x55555555) << 1);
	r = ((r >> 2) & 0x33333333) | ((r & 0x33333333) << 2);
	r = ((r >> 4) & 0x0f0f0f0f) | ((r & 0x0f0f0f0f) << 4);
	r = ((r >> 8) & 0x00ff00ff) | ((r & 0x00ff00ff) << 8);
	r = (r >> 16) | (r << 16);
	return (__u32)(((__u64)r * h->nb) >> 32);
}

/* ---------- the wheel and the due queue ---------- */

static void wheel_add(struct fg_health *h, __u32 id)
{
	__u32 b = bucket_of(h, id);
	struct ep *e = &h->eps[id];

	h->bucket_n[b]++;
	e->prev = NIL;
	e->next = h->wheel[b];
	if (e->next != NIL)
		h->eps[e->next].prev = id;
	h->wheel[b] = id;
}

static void wheel_del(struct fg_health *h, __u32 id)
{
	struct ep *e = &h->eps[id];
	__u32 b = bucket_of(h, id);

	h->bucket_n[b]--;
	if (e->prev != NIL)
		h->eps[e->prev].next = e->next;
	else
		h->wheel[b] = e->next;
	if (e->next != NIL)
		h->eps[e->next].prev = e->prev;
	e->next = e->prev = NIL;
}

static int dq_push(struct fg_health *h, __u32 id)
{
	if (h->dq_len == h->dq_cap) {
		size_t ncap = h->dq_cap ? h->dq_cap * 2 : 1024, i;
		__u32 *n = malloc(ncap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		for (i = 0; i < h->dq_len; i++)
			n[i] = h->dq[(h->dq_head + i) & (h->dq_cap - 1)];
		free(h->dq);
		h->dq = n;
		h->dq_cap = ncap;
		h->dq_head = 0;
	}
	h->dq[(h->dq_head + h->dq_len) & (h->dq_cap - 1)] = id;
	h->dq_len++;
	return 0;
}

static __u32 dq_pop(struct fg_health *h)
{
	__u32 id = h->dq[h->dq_head];

	h->dq_head = (h->dq_head + 1) & (h->dq_cap - 1);
	h->dq_len--;
	return id;
}

/* The absolute index of the bucket that started last, at now. */
static __u64 bucket_at(const struct fg_health *h, __u64 now)
{
	__u64 el = now - h->t0;

	return el / h->interval_us * h->nb + el % h->interval_us * h->nb / h->interval_us;
}

/* Moves the ids of the buckets whose time came to the due queue; each
 * bucket once per interval however late the call. While the queue holds
 * an eighth of the endpoints (and more than a few probes' worth), a
 * bucket's ids are not walked but counted late at once: with more endpoints than the probes can visit
 * (1,000,000 every 250 ms), walking them only to find each still queued
 * cost 50-90 ms of the control thread per call, past every budget. */
static void wheel_advance(struct fg_health *h, __u64 now)
{
	__u64 target = bucket_at(h, now);
	size_t backlog = (size_t)h->opts.max_inflight * DQ_BACKLOG;

	/* An eighth of the interval's endpoints waiting: far behind, not a
	 * late turn the probes make up for. */
	if (backlog < h->n_known / 8)
		backlog = h->n_known / 8;

	if (target > h->cursor + h->nb)
		h->cursor = target - h->nb;
	while (h->cursor < target) {
		__u32 id;

		h->cursor++;
		if (h->dq_len >= backlog) {
			h->c.late += h->bucket_n[h->cursor % h->nb];
			continue;
		}
		for (id = h->wheel[h->cursor % h->nb]; id != NIL; id = h->eps[id].next) {
			struct ep *e = &h->eps[id];

			if (e->flags & (EP_QUEUED | EP_INFLIGHT)) {
				h->c.late++;
				continue;
			}
			if (dq_push(h, id))
				return; /* no memory: the next interval */
			e->flags |= EP_QUEUED;
		}
	}
}

/* ---------- the endpoints ---------- */

static __u32 digest_of(const struct fg_addr *addr, __be16 port, __u8 family)
{
	struct {
		struct fg_addr addr;
		__be16 port;
		__u8 family;
		__u8 pad;
	} k;

	memset(&k, 0, sizeof(k));
	k.addr = *addr;
	k.port = port;
	k.family = family;
	return fg_bytes_hash(&k, sizeof(k), 0x6865616cu);
}

static bool same_endpoint(const struct ep *e, const struct fg_backend *be)
{
	return e->digest == digest_of(&be->addr, be->port, be->family);
}

/* The UP flag as the mirror has it now: when someone else changed it (the
 * proxy marking a backend down, a backend written anew) the counts toward
 * the other state start again. */
static void observe_up(struct ep *e, bool up)
{
	if (!!(e->flags & EP_UP) == up)
		return;
	if (up) {
		e->fails = 0;
		e->flags |= EP_UP;
	} else {
		e->oks = 0;
		e->flags &= ~EP_UP;
	}
}

static void scan_one(struct fg_health *h, __u32 id)
{
	struct ep *e = &h->eps[id];
	struct fg_backend be;
	bool want, http;

	want = !fg_dp_backend_view(h->dp, id, &be) && (be.flags & FG_BACKEND_F_ACTIVE) &&
	       (be.flags & (FG_BACKEND_F_PROBE_TCP | FG_BACKEND_F_PROBE_HTTP));
	if (!want) {
		if (e->flags & EP_KNOWN) {
			wheel_del(h, id);
			/* queued, open or pending: dropped when met */
			e->flags &= ~(EP_KNOWN | EP_HTTP);
			h->n_known--;
		}
		return;
	}
	http = h->request_len && (be.flags & FG_BACKEND_F_PROBE_HTTP);
	if (!(e->flags & EP_KNOWN) || !same_endpoint(e, &be) || !!(e->flags & EP_HTTP) != http) {
		if (!(e->flags & EP_KNOWN)) {
			wheel_add(h, id);
			h->n_known++;
		}
		e->digest = digest_of(&be.addr, be.port, be.family);
		e->fails = e->oks = 0;
		e->flags = (e->flags & (EP_QUEUED | EP_INFLIGHT | EP_PENDING)) | EP_KNOWN |
			   (http ? EP_HTTP : 0) | ((be.flags & FG_BACKEND_F_UP) ? EP_UP : 0);
		return;
	}
	observe_up(e, be.flags & FG_BACKEND_F_UP);
}

/* A slice of the id space below fg_dp_backend_high, while a pass runs; a
 * pass starts when the routing epoch moved since the last one began. */
static void scan(struct fg_health *h)
{
	__u32 high = fg_dp_backend_high(h->dp), end, id;

	if (high > h->max_backends)
		high = h->max_backends;
	if (!h->scanning) {
		__u64 epoch = fg_dp_epoch(h->dp);

		if (h->scanned_once && epoch == h->scanned_epoch)
			return;
		h->scanning = true;
		h->scan_epoch = epoch;
		h->scan_pos = 1;
	}
	end = h->scan_pos + SCAN_SLICE < high ? h->scan_pos + SCAN_SLICE : high;
	for (id = h->scan_pos; id < end; id++)
		scan_one(h, id);
	h->scan_pos = id;
	if (h->scan_pos >= high) {
		h->scanning = false;
		h->scanned_once = true;
		h->scanned_epoch = h->scan_epoch;
		h->c.scans++;
	}
}

/* ---------- state changes ---------- */

static void pend_add(struct fg_health *h, __u32 id)
{
	struct ep *e = &h->eps[id];

	if (e->flags & EP_PENDING)
		return;
	if (h->pend_len == h->pend_cap) {
		size_t ncap = h->pend_cap ? h->pend_cap * 2 : 256;
		__u32 *n = realloc(h->pend, ncap * sizeof(*n));

		if (!n)
			return; /* the next probe tries again */
		h->pend = n;
		h->pend_cap = ncap;
	}
	h->pend[h->pend_len++] = id;
	e->flags |= EP_PENDING;
}

/* What the endpoint's counts say its state should become: 1 up, 0 down,
 * -1 no change. */
static int wanted(const struct fg_health *h, const struct ep *e)
{
	if ((e->flags & EP_UP) && e->fails >= h->opts.fall)
		return 0;
	if (!(e->flags & EP_UP) && e->oks >= h->opts.rise)
		return 1;
	return -1;
}

static void account(struct fg_health *h, const struct probe *p, enum probe_result r, int err)
{
	struct ep *e = &h->eps[p->id];
	struct fg_backend be;

	switch (r) {
	case R_PASS:
		h->c.passed++;
		break;
	case R_TIMEOUT:
		h->c.timeouts++;
		/* fall through */
	case R_FAIL:
		h->c.failed++;
		break;
	case R_LOCAL: {
		char what[96], abuf[64];

		h->c.local++;
		fg_addr_str(&p->addr, p->family, abuf, sizeof(abuf));
		snprintf(what, sizeof(what),
			 p->family == FG_AF_INET ? "probe of %s:%u" : "probe of [%s]:%u", abuf,
			 ntohs(p->port));
		fg_local_error(&h->local, err, what);
		return;
	}
	}
	/* Dropped, or another endpoint since the probe began: not its result. */
	if (!(e->flags & EP_KNOWN) || e->digest != digest_of(&p->addr, p->port, p->family))
		return;
	if (fg_dp_backend_view(h->dp, p->id, &be) || !(be.flags & FG_BACKEND_F_ACTIVE) ||
	    !same_endpoint(e, &be))
		return; /* the scan will see what it became */
	observe_up(e, be.flags & FG_BACKEND_F_UP);
	if (r == R_PASS) {
		e->fails = 0;
		if (e->oks < 0xffff)
			e->oks++;
	} else {
		e->oks = 0;
		if (e->fails < 0xffff)
			e->fails++;
	}
	if (wanted(h, e) >= 0)
		pend_add(h, p->id);
}

struct summary {
	size_t n[2];                              /* [0] down, [1] up */
	__u32 ex[2][FG_HEALTH_LOG_EXAMPLES];
	struct fg_backend exb[2][FG_HEALTH_LOG_EXAMPLES];
};

static int backend_str(const struct fg_health *h, __u32 id, const struct fg_backend *be, bool up,
		       char *buf, size_t len)
{
	char abuf[64];

	fg_addr_str(&be->addr, be->family, abuf, sizeof(abuf));
	return snprintf(buf, len,
			be->family == FG_AF_INET ? "backend %u %s:%u of cluster %s is %s"
						 : "backend %u [%s]:%u of cluster %s is %s",
			id, abuf, ntohs(be->port), fg_dp_cluster_name(h->dp, be->cluster_idx),
			up ? "UP" : "DOWN");
}

static void log_summary(const struct fg_health *h, const struct summary *s)
{
	char line[1024];
	size_t off = 0;
	int d, i;

	off += snprintf(line, sizeof(line), "health:");
	for (d = 0; d < 2; d++) {
		size_t shown = s->n[d] < FG_HEALTH_LOG_EXAMPLES ? s->n[d] : FG_HEALTH_LOG_EXAMPLES;

		if (!s->n[d])
			continue;
		if (off < sizeof(line))
			off += snprintf(line + off, sizeof(line) - off, "%s %zu %s (",
					d == 1 && s->n[0] ? "," : "", s->n[d],
					d == 0 ? (s->n[0] == 1 ? "backend DOWN" : "backends DOWN")
					       : (s->n[0] ? "UP" : s->n[1] == 1 ? "backend UP" : "backends UP"));
		for (i = 0; i < (int)shown && off < sizeof(line); i++) {
			if (i)
				off += snprintf(line + off, sizeof(line) - off, ", ");
			if (off < sizeof(line))
				off += backend_str(h, s->ex[d][i], &s->exb[d][i], d, line + off,
						   sizeof(line) - off);
		}
		if (s->n[d] > shown && off < sizeof(line))
			off += snprintf(line + off, sizeof(line) - off, ", +%zu more",
					s->n[d] - shown);
		if (off < sizeof(line))
			off += snprintf(line + off, sizeof(line) - off, ")");
	}
	pr_info("%s\n", line);
}

static void rq_add(struct fg_health *h, __u32 id)
{
	struct ep *e = &h->eps[id];

	if (e->flags & EP_REBUILD)
		return;
	if (h->rq_len == h->rq_cap) {
		size_t ncap = h->rq_cap ? h->rq_cap * 2 : 256;
		__u32 *n = realloc(h->rq, ncap * sizeof(*n));

		if (!n)
			return; /* XDP skips a down backend meanwhile */
		h->rq = n;
		h->rq_cap = ncap;
	}
	h->rq[h->rq_len++] = id;
	e->flags |= EP_REBUILD;
}

/* The rings of the changed backends, oldest first, for at most
 * FG_HEALTH_REBUILD_BUDGET_US per step, REBUILD_IDS backends per
 * fg_dp_backends_changed call. A rebuild costs milliseconds (a Maglev
 * table of thousands of slots per service), so a storm of changes is
 * worked off over steps rather than in one long call; a ring already
 * rebuilt since a backend's change is skipped as unchanged, cheaply, and
 * XDP skips a down backend until its rings are rebuilt. */
static void rebuild(struct fg_health *h)
{
	__u64 t = now_us(), deadline = t + FG_HEALTH_REBUILD_BUDGET_US, took = 0;

	/* The first call always; another while the last one's cost fits. */
	while (h->rq_head < h->rq_len && (!took || t + took <= deadline)) {
		size_t k = h->rq_len - h->rq_head, i;
		int err;

		if (k > REBUILD_IDS)
			k = REBUILD_IDS;
		for (i = 0; i < k; i++)
			h->eps[h->rq[h->rq_head + i]].flags &= ~EP_REBUILD;
		err = fg_dp_backends_changed(h->dp, h->rq + h->rq_head, k);
		if (err)
			pr_warn("health: cannot rebuild the rings after %zu health change(s): %s\n",
				k, strerror(-err));
		h->rq_head += k;
		took = now_us() - t;
		t += took;
		if (took > h->c.max_rebuild_us)
			h->c.max_rebuild_us = took;
		if (!took)
			took = 1;
	}
	if (h->rq_head == h->rq_len) {
		h->rq_head = h->rq_len = 0;
	} else if (h->rq_head > h->rq_len / 2) {
		memmove(h->rq, h->rq + h->rq_head, (h->rq_len - h->rq_head) * sizeof(*h->rq));
		h->rq_len -= h->rq_head;
		h->rq_head = 0;
	}
}

/* Applies the state changes found since the last step, within its own
 * budget (the rest stays for the next step): each backend's UP flag, one
 * log line, then one rebuild of rings (rebuild()). Returns the number of
 * changes applied. */
static int flush(struct fg_health *h)
{
	__u64 deadline = now_us() + FG_HEALTH_FLUSH_BUDGET_US;
	bool debug = fg_log_get_level() >= FG_LOG_DEBUG;
	struct summary s = {};
	size_t n = 0, failed = 0;
	__u32 fail_id = 0;
	int fail_err = 0, err;

	while (h->pend_head < h->pend_len) {
		__u32 id = h->pend[h->pend_head];
		struct ep *e = &h->eps[id];
		struct fg_backend be;
		int want;

		if (n && (n & 15) == 0 && now_us() >= deadline)
			break;
		h->pend_head++;
		e->flags &= ~EP_PENDING;
		if (!(e->flags & EP_KNOWN) || fg_dp_backend_view(h->dp, id, &be) ||
		    !(be.flags & FG_BACKEND_F_ACTIVE) || !same_endpoint(e, &be))
			continue;
		observe_up(e, be.flags & FG_BACKEND_F_UP);
		want = wanted(h, e);
		if (want < 0)
			continue;
		err = fg_dp_set_backend_up(h->dp, id, want);
		if (err) {
			if (!failed++) {
				fail_id = id;
				fail_err = err;
			}
			continue;
		}
		e->flags = want ? e->flags | EP_UP : e->flags & ~EP_UP;
		rq_add(h, id);
		n++;
		if (want)
			h->c.ups++;
		else
			h->c.downs++;
		if (s.n[want] < FG_HEALTH_LOG_EXAMPLES) {
			s.ex[want][s.n[want]] = id;
			s.exb[want][s.n[want]] = be;
		}
		s.n[want]++;
		if (debug) {
			char buf[192];

			backend_str(h, id, &be, want, buf, sizeof(buf));
			pr_debug("health: %s\n", buf);
		}
	}
	if (h->pend_head == h->pend_len) {
		h->pend_head = h->pend_len = 0;
	} else if (h->pend_head > h->pend_len / 2) {
		memmove(h->pend, h->pend + h->pend_head,
			(h->pend_len - h->pend_head) * sizeof(*h->pend));
		h->pend_len -= h->pend_head;
		h->pend_head = 0;
	}
	if (failed)
		pr_warn("health: cannot mark %zu backend(s) up or down (backend %u: %s)\n", failed,
			fail_id, strerror(-fail_err));
	if (n) {
		log_summary(h, &s);
		h->c.summaries++;
	}
	rebuild(h);
	return (int)n;
}

/* ---------- probes ---------- */

static void probe_release(struct fg_health *h, __u32 idx)
{
	struct probe *p = &h->pool[idx];

	if (p->older != NIL)
		h->pool[p->older].newer = p->newer;
	else
		h->oldest = p->newer;
	if (p->newer != NIL)
		h->pool[p->newer].older = p->older;
	else
		h->newest = p->older;
	p->phase = PROBE_FREE;
	h->eps[p->id].flags &= ~EP_INFLIGHT;
	h->free_list[h->n_free++] = idx;
	h->inflight--;
}

static void probe_finish(struct fg_health *h, __u32 idx, enum probe_result r, int err)
{
	struct probe *p = &h->pool[idx];

	if (p->fd >= 0) {
		if (r == R_PASS && !p->http) {
			/* Close with a reset: no TIME_WAIT left on the gateway
			 * by a probe per endpoint per interval. */
			struct linger lg = { .l_onoff = 1, .l_linger = 0 };

			setsockopt(p->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
		}
		close(p->fd); /* leaves the epoll set with it */
		p->fd = -1;
	}
	probe_release(h, idx);
	account(h, p, r, err);
}

static void probe_failed(struct fg_health *h, __u32 idx, int err)
{
	probe_finish(h, idx, fg_local_errno(err) ? R_LOCAL : R_FAIL, err);
}

/* Starts the probe of id: a non-blocking connect. */
static void probe_start(struct fg_health *h, __u32 id)
{
	struct ep *e = &h->eps[id];
	struct sockaddr_storage ss = {};
	struct epoll_event ev = { .events = EPOLLOUT };
	struct fg_backend be;
	struct probe *p;
	socklen_t len;
	__u32 idx;

	/* Where to: the mirror (the ep keeps a digest of it). Changed since
	 * the scan saw it: the next scan starts its counts again. */
	if (fg_dp_backend_view(h->dp, id, &be) || !same_endpoint(e, &be))
		return;
	idx = h->free_list[--h->n_free];
	p = &h->pool[idx];
	p->id = id;
	p->gen++;
	p->fd = -1;
	p->phase = PROBE_CONNECTING;
	p->http = e->flags & EP_HTTP;
	p->family = be.family;
	p->port = be.port;
	p->addr = be.addr;
	p->sent = p->got = 0;
	p->started = now_us();
	p->newer = NIL;
	p->older = h->newest;
	if (h->newest != NIL)
		h->pool[h->newest].newer = idx;
	else
		h->oldest = idx;
	h->newest = idx;
	h->inflight++;
	e->flags |= EP_INFLIGHT;
	h->c.started++;

	if (p->family == FG_AF_INET) {
		struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

		sin->sin_family = AF_INET;
		sin->sin_port = p->port;
		sin->sin_addr.s_addr = p->addr.v4;
		len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = p->port;
		memcpy(&sin6->sin6_addr, p->addr.bytes, 16);
		len = sizeof(*sin6);
	}
	p->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		probe_failed(h, idx, errno);
		return;
	}
	if (connect(p->fd, (struct sockaddr *)&ss, len) && errno != EINPROGRESS) {
		probe_failed(h, idx, errno);
		return;
	}
	ev.data.u64 = (__u64)p->gen << 32 | idx;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, p->fd, &ev))
		probe_failed(h, idx, errno);
}

/* Starts the due probes while slots are free and the budget lasts. */
static void start_due(struct fg_health *h)
{
	while (h->dq_len && h->n_free) {
		__u32 id;
		struct ep *e;

		if (over_budget(h))
			return;
		id = dq_pop(h);
		e = &h->eps[id];
		e->flags &= ~EP_QUEUED;
		if (!(e->flags & EP_KNOWN))
			continue;
		if (e->flags & EP_INFLIGHT) {
			h->c.late++;
			continue;
		}
		probe_start(h, id);
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

static void probe_advance(struct fg_health *h, __u32 idx, __u32 events)
{
	struct probe *p = &h->pool[idx];
	struct epoll_event ev = { .data.u64 = (__u64)p->gen << 32 | idx };
	int soerr = 0;
	socklen_t sl = sizeof(soerr);
	ssize_t n;

	switch (p->phase) {
	case PROBE_CONNECTING:
		/* Writable and no error: connected (SO_ERROR only when not). */
		if ((events & (EPOLLERR | EPOLLHUP)) &&
		    getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl))
			soerr = errno;
		if ((events & (EPOLLERR | EPOLLHUP)) && !soerr)
			soerr = ECONNRESET;
		if (soerr) {
			probe_failed(h, idx, soerr);
			return;
		}
		if (!p->http) {
			probe_finish(h, idx, R_PASS, 0);
			return;
		}
		p->phase = PROBE_SENDING;
		/* fall through */
	case PROBE_SENDING:
		n = send(p->fd, h->request + p->sent, h->request_len - p->sent,
			 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			if (fg_local_errno(errno))
				probe_finish(h, idx, R_LOCAL, errno);
			else if (errno != EAGAIN)
				probe_finish(h, idx, R_FAIL, errno);
			return;
		}
		p->sent += n;
		if (p->sent < h->request_len)
			return;
		p->phase = PROBE_READING;
		ev.events = EPOLLIN;
		if (epoll_ctl(h->epfd, EPOLL_CTL_MOD, p->fd, &ev))
			probe_failed(h, idx, errno);
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
			probe_finish(h, idx, status_ok(p) ? R_PASS : R_FAIL, 0);
		return;
	case PROBE_FREE:
		return;
	}
}

/* Probes past their deadline failed; the oldest are at the head. */
static void expire(struct fg_health *h, __u64 now)
{
	__u64 timeout = (__u64)h->opts.timeout_ms * 1000;

	while (h->oldest != NIL && now - h->pool[h->oldest].started >= timeout)
		probe_finish(h, h->oldest, R_TIMEOUT, ETIMEDOUT);
}

/* ---------- the step timer and the wake-up ---------- */

static void drain_fd(int fd)
{
	__u64 v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
}

static void set_timer(struct fg_health *h, bool on)
{
	struct itimerspec its = {};

	if (on == h->armed)
		return;
	if (on) {
		its.it_interval.tv_sec = h->step_us / 1000000;
		its.it_interval.tv_nsec = (h->step_us % 1000000) * 1000;
		its.it_value = its.it_interval;
		/* Resuming: no catching up on the buckets of the idle time. */
		h->cursor = bucket_at(h, now_us());
		h->last_step = now_us();
	}
	if (!timerfd_settime(h->tfd, 0, &its, NULL))
		h->armed = on;
}

static int work(struct fg_health *h)
{
	struct epoll_event evs[EVENTS_BATCH];
	__u64 start = now_us(), now, took;
	int changes = 0, n, i;
	bool drained = false;

	h->deadline = start + FG_HEALTH_BUDGET_US;
	/* Probe events first: they free slots. Level-triggered, so what the
	 * budget leaves is reported again. */
	do {
		n = epoll_wait(h->epfd, evs, EVENTS_BATCH, 0);
		drained = n < EVENTS_BATCH;
		for (i = 0; i < n; i++) {
			__u64 tag = evs[i].data.u64;
			__u32 idx = (__u32)tag;

			if (tag == TAG_TIMER) {
				drain_fd(h->tfd);
			} else if (tag == TAG_KICK) {
				drain_fd(h->kfd);
				h->kicked = false;
			} else if (idx < h->opts.max_inflight && h->pool[idx].gen == tag >> 32 &&
				   h->pool[idx].phase != PROBE_FREE) {
				probe_advance(h, idx, evs[i].events);
			}
			if (i + 1 < n && over_budget(h)) {
				drained = false;
				break;
			}
		}
	} while (!drained && !over_budget(h));
	now = now_us();
	/* Only once every ready probe was seen: one the budget left unread
	 * may have its answer waiting. */
	if (drained)
		expire(h, now);
	scan(h);
	if (h->armed)
		wheel_advance(h, now);
	start_due(h);
	if (now - h->last_step >= h->step_us) {
		__u64 epoch = fg_dp_epoch(h->dp);

		h->last_step = now;
		h->c.steps++;
		changes = flush(h);
		/* Our own writes (UP flags, rings) need no new scan. */
		if (!h->scanning && h->scanned_once && epoch == h->scanned_epoch)
			h->scanned_epoch = fg_dp_epoch(h->dp);
	}
	/* The step timer runs while there is something to probe or scan. */
	if (!h->armed && (h->n_known || h->scanning))
		set_timer(h, true);
	else if (h->armed && !h->n_known && !h->inflight && h->pend_head == h->pend_len &&
		 h->rq_head == h->rq_len && !h->scanning)
		set_timer(h, false);
	/* Probes left by the budget: come back as soon as the loop has served
	 * its other descriptors (a scan goes on a slice per call). */
	if (!h->kicked && h->dq_len && h->n_free) {
		__u64 one = 1;

		if (write(h->kfd, &one, sizeof(one)) == sizeof(one))
			h->kicked = true;
	}
	took = now_us() - start;
	if (took > h->c.max_call_us)
		h->c.max_call_us = took;
	return changes;
}

/* ---------- the API ---------- */

int fg_health_new(struct fg_health **out, struct fg_dataplane *dp,
		  const struct fg_health_opts *opts)
{
	struct epoll_event ev = { .events = EPOLLIN };
	struct fg_health *h = calloc(1, sizeof(*h));
	__u32 i;
	int err;

	if (!h)
		return -ENOMEM;
	h->dp = dp;
	h->opts = *opts;
	h->epfd = h->tfd = h->kfd = -1;
	if (!h->opts.interval_ms)
		h->opts.interval_ms = FG_HEALTH_DEF_INTERVAL_MS;
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
			err = -EINVAL;
			goto fail;
		}
		h->request_len = n;
	}
	h->interval_us = (__u64)h->opts.interval_ms * 1000;
	h->step_us = (__u64)FG_HEALTH_STEP_MS * 1000;
	if (h->step_us > h->interval_us)
		h->step_us = h->interval_us;
	h->nb = h->opts.interval_ms < WHEEL_MAX ? h->opts.interval_ms : WHEEL_MAX;
	h->max_backends = fg_dp_max_backends(dp);
	err = -ENOMEM;
	h->eps = calloc(h->max_backends, sizeof(*h->eps));
	h->wheel = malloc(h->nb * sizeof(*h->wheel));
	h->bucket_n = calloc(h->nb, sizeof(*h->bucket_n));
	h->pool = calloc(h->opts.max_inflight, sizeof(*h->pool));
	h->free_list = malloc(h->opts.max_inflight * sizeof(*h->free_list));
	if (!h->eps || !h->wheel || !h->bucket_n || !h->pool || !h->free_list)
		goto fail;
	for (i = 0; i < h->nb; i++)
		h->wheel[i] = NIL;
	for (i = 0; i < h->opts.max_inflight; i++) {
		h->pool[i].fd = -1;
		h->free_list[i] = h->opts.max_inflight - 1 - i;
	}
	h->n_free = h->opts.max_inflight;
	h->oldest = h->newest = NIL;
	h->t0 = now_us();
	h->epfd = epoll_create1(EPOLL_CLOEXEC);
	h->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	h->kfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (h->epfd < 0 || h->tfd < 0 || h->kfd < 0)
		goto fail_errno;
	ev.data.u64 = TAG_TIMER;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->tfd, &ev))
		goto fail_errno;
	ev.data.u64 = TAG_KICK;
	if (epoll_ctl(h->epfd, EPOLL_CTL_ADD, h->kfd, &ev))
		goto fail_errno;
	*out = h;
	return 0;
fail_errno:
	err = -errno;
fail:
	fg_health_free(h);
	return err;
}

int fg_health_fd(const struct fg_health *h)
{
	return h->epfd;
}

void fg_health_process(struct fg_health *h)
{
	work(h);
}

/* Turns skipped for want of capacity: said at most once a minute. */
static void warn_late(struct fg_health *h)
{
	__u64 now = now_us();

	if (h->c.late == h->late_warned ||
	    (h->late_warn_at && now - h->late_warn_at < 60ULL * 1000000))
		return;
	pr_warn("health: probes are behind: %llu turns skipped since the last warning (%u "
		"endpoints, each due every %u ms, at most %u probes open): a longer "
		"--health-interval lightens the load\n",
		(unsigned long long)(h->c.late - h->late_warned), h->n_known,
		h->opts.interval_ms, h->opts.max_inflight);
	h->late_warned = h->c.late;
	h->late_warn_at = now;
}

int fg_health_tick(struct fg_health *h)
{
	int changes;

	fg_local_errors_flush(&h->local);
	changes = work(h);
	warn_late(h);
	return changes;
}

void fg_health_counters(const struct fg_health *h, struct fg_health_counters *c)
{
	*c = h->c;
	c->endpoints = h->n_known;
	c->inflight = h->inflight;
	c->queued = h->dq_len;
	c->rebuilds_pending = h->rq_len - h->rq_head;
}

json_t *fg_health_stats(const struct fg_health *h)
{
	return json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "localErrors",
			 fg_local_errors_json(&h->local), "endpoints", (json_int_t)h->n_known,
			 "inflight", (json_int_t)h->inflight, "queued", (json_int_t)h->dq_len,
			 "probes", (json_int_t)h->c.started, "late", (json_int_t)h->c.late,
			 "summaries", (json_int_t)h->c.summaries, "rebuildsPending",
			 (json_int_t)(h->rq_len - h->rq_head));
}

const struct fg_local_errors *fg_health_local_errors(const struct fg_health *h)
{
	return &h->local;
}

void fg_health_free(struct fg_health *h)
{
	__u32 i;

	if (!h)
		return;
	if (h->pool)
		for (i = 0; i < h->opts.max_inflight; i++)
			if (h->pool[i].phase != PROBE_FREE && h->pool[i].fd >= 0)
				close(h->pool[i].fd);
	if (h->epfd >= 0)
		close(h->epfd);
	if (h->tfd >= 0)
		close(h->tfd);
	if (h->kfd >= 0)
		close(h->kfd);
	free(h->eps);
	free(h->wheel);
	free(h->bucket_n);
	free(h->pool);
	free(h->free_list);
	free(h->dq);
	free(h->pend);
	free(h->rq);
	free(h);
}

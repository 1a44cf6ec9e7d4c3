// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The prober (agent/health.c) against a loaded data plane (not pinned), in
 * a private network namespace: all of 127/8 is local, so 127.1.x.y are as
 * many endpoints as we like behind one listening socket on 0.0.0.0.
 *
 *   health_scale/fifty_thousand: 50,000 live endpoints in 500 services
 *     (half of each down at first) and a few dead ones, the prober driven
 *     as the agent's loop drives it for 3.5 intervals of 4 s (12,500
 *     probes a second: well within what the shared 2-core machine
 *     manages). No call may take 10 ms of CPU time (the wall time, printed
 *     too, adds whatever else the machine runs); every live endpoint ends
 *     up, every dead one down, the rings catch up with them; the log gets
 *     one summary line per step with changes. When the machine let the
 *     loop run on time: every endpoint is probed once per interval at its
 *     own offset (no 10 ms slot of the third interval gets more than twice
 *     the average of starts, but for the slots right after the loop was
 *     held up), and the dead go DOWN within fall x interval.
 *   health_scale/fall_rise: one endpoint dies and comes back; one the proxy
 *     marked down (passive health) comes back after `rise` passes.
 *   health_scale/churn: endpoints removed, added and readdressed by the
 *     control plane are dropped, scheduled and recounted.
 *   health_scale/http: GET probes; a 503 is a failure, a 200 a pass.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "dataplane.h"
#include "health.h"
#include "resources.h"
#include "test_progs.h"

#define CL0 "c7fb82a1b2c3d4e5f60718293a4b5c6d7"

static __u64 now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* CPU time of the calling thread (what a call cost, whoever else runs). */
static __u64 cpu_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (__u64)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* ---------- a listening socket that accepts and closes (or answers) ---------- */

struct server {
	int fd;
	__u16 port; /* host order */
	const char *reply; /* NULL: accept and close */
	pthread_t thr;
	bool running;
	__u64 accepted;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	char buf[512];

	for (;;) {
		int c = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE ||
			    errno == ENFILE)
				continue;
			break; /* shut down */
		}
		__atomic_add_fetch(&s->accepted, 1, __ATOMIC_RELAXED);
		if (s->reply) {
			struct timeval tv = { .tv_sec = 1 };

			setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			if (recv(c, buf, sizeof(buf), 0) > 0 &&
			    send(c, s->reply, strlen(s->reply), MSG_NOSIGNAL) < 0)
				buf[0] = 0;
		}
		close(c);
	}
	return NULL;
}

static int server_start(struct server *s, __u16 port, const char *reply)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t sl = sizeof(sin);
	int one = 1;

	memset(s, 0, sizeof(*s));
	s->reply = reply;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)) || listen(s->fd, 4096) ||
	    getsockname(s->fd, (struct sockaddr *)&sin, &sl)) {
		int err = -errno;

		close(s->fd);
		s->fd = -1;
		return err;
	}
	s->port = ntohs(sin.sin_port);
	if (pthread_create(&s->thr, NULL, server_main, s)) {
		close(s->fd);
		s->fd = -1;
		return -EAGAIN;
	}
	s->running = true;
	return 0;
}

static void server_stop(struct server *s)
{
	if (!s->running)
		return;
	shutdown(s->fd, SHUT_RDWR); /* wakes accept() */
	pthread_join(s->thr, NULL);
	close(s->fd);
	s->fd = -1;
	s->running = false;
}

/* A port nobody listens on (bound, not listening: connects are refused). */
static int dead_port(int *holder, __u16 *port)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t sl = sizeof(sin);

	*holder = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*holder < 0)
		return -errno;
	if (bind(*holder, (struct sockaddr *)&sin, sizeof(sin)) ||
	    getsockname(*holder, (struct sockaddr *)&sin, &sl))
		return -errno;
	*port = ntohs(sin.sin_port);
	return 0;
}

/* ---------- the data plane ---------- */

static int load_dp_sized(struct fg_dataplane **dp, __u32 max_services, __u32 maglev_size)
{
	struct fg_dp_opts o = { .max_services = max_services, .max_backends = 65536,
				.max_rings = 2 * max_services, .maglev_size = maglev_size };
	int err = fg_dp_load(dp, &o);

	if (!err)
		err = fg_dp_set_cluster(*dp, 0, CL0, true);
	return err;
}

static int load_dp(struct fg_dataplane **dp)
{
	return load_dp_sized(dp, 64, 1021);
}

/* 127.1.0.0 + n (n < 2^16), or 127.2.0.0 + n when dead. */
static int set_be(struct fg_dataplane *dp, __u32 id, __u32 n, bool second_net, __u16 port, bool up,
		  __u8 probe)
{
	struct fg_backend be = {};

	be.family = FG_AF_INET;
	be.addr.v4 = htonl((127u << 24) | ((second_net ? 2u : 1u) << 16) | (n & 0xffff));
	be.port = htons(port);
	be.weight = 1;
	be.cluster_idx = 0;
	be.flags = FG_BACKEND_F_ACTIVE | probe | (up ? FG_BACKEND_F_UP : 0);
	return fg_dp_set_backend(dp, id, &be);
}

static bool is_up(struct fg_dataplane *dp, __u32 id)
{
	struct fg_backend be;

	return !fg_dp_backend_view(dp, id, &be) && (be.flags & FG_BACKEND_F_ACTIVE) &&
	       (be.flags & FG_BACKEND_F_UP);
}

/* ---------- driving the prober as the agent's loop does ---------- */

struct drive {
	__u64 max_call_us;   /* wall time */
	__u64 max_cpu_us;    /* CPU time of the thread */
	__u64 cpu_total_us;
	__u64 wall_over_10ms; /* calls that took 10 ms or more of wall time */
	__u64 calls;
	__u64 start_us;      /* of the first drive_for of a run */
	__u64 next_tick_us;
	unsigned interval_ms;
	/* probes started per 10 ms slot since start_us */
	__u32 *slots;
	bool *stalled;       /* the slot's starts came after the loop was held up */
	size_t n_slots;
	__u64 last_started;
	__u64 last_sample_us;
	__u64 step_probes;   /* probes due per scheduling step */
};

static void timed(struct drive *d, struct fg_health *h, bool tick)
{
	__u64 t = now_us(), c = cpu_us(), dt, dc;

	if (tick)
		fg_health_tick(h);
	else
		fg_health_process(h);
	dt = now_us() - t;
	dc = cpu_us() - c;
	if (dt > d->max_call_us)
		d->max_call_us = dt;
	if (dt >= 10000)
		d->wall_over_10ms++;
	if (dc > d->max_cpu_us)
		d->max_cpu_us = dc;
	d->cpu_total_us += dc;
	d->calls++;
}

/* Polls the prober's fd and calls it for ms; fg_health_tick every interval.
 * until(arg) ends it early when true. */
static void drive_for(struct drive *d, struct fg_health *h, unsigned ms,
		      bool (*until)(void *), void *arg)
{
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	__u64 end = now_us() + ms * 1000ULL;

	epoll_ctl(ep, EPOLL_CTL_ADD, fg_health_fd(h), &ev);
	if (!d->start_us) {
		d->start_us = now_us();
		d->next_tick_us = d->start_us;
	}
	for (;;) {
		struct fg_health_counters c;
		__u64 now = now_us();

		if (now >= end || (until && until(arg)))
			break;
		if (now >= d->next_tick_us) {
			timed(d, h, true);
			d->next_tick_us += d->interval_ms * 1000ULL;
		}
		if (epoll_wait(ep, &ev, 1, 5) == 1)
			timed(d, h, false);
		fg_health_counters(h, &c);
		if (d->slots) {
			__u64 t = now_us();
			size_t s = (t - d->start_us) / 10000;

			if (s < d->n_slots) {
				d->slots[s] += c.started - d->last_started;
				/* Not on time (the thread did not run, or a call
				 * was long), or more than a step behind (probes
				 * due and not started): this slot's and the
				 * next one's starts include a catch-up. */
				if ((d->last_sample_us && t - d->last_sample_us > 10000) ||
				    c.queued > d->step_probes) {
					d->stalled[s] = true;
					if (s + 1 < d->n_slots)
						d->stalled[s + 1] = true;
				}
			}
			d->last_started = c.started;
			d->last_sample_us = t;
		}
	}
	close(ep);
}

/* ---------- stderr into a file, to count the log lines ---------- */

struct capture {
	int saved;
	FILE *f;
};

static int capture_start(struct capture *cap)
{
	fflush(stderr);
	cap->f = tmpfile();
	if (!cap->f)
		return -errno;
	cap->saved = dup(STDERR_FILENO);
	dup2(fileno(cap->f), STDERR_FILENO);
	return 0;
}

/* Counts the lines with all of the words (NULL-ended); prints the first
 * such line. */
static int capture_count(struct capture *cap, const char *w1, const char *w2)
{
	char line[4096];
	int n = 0;

	fflush(stderr);
	rewind(cap->f);
	while (fgets(line, sizeof(line), cap->f)) {
		if (strstr(line, w1) && (!w2 || strstr(line, w2))) {
			if (!n++)
				printf("first line: %s", line);
		}
	}
	return n;
}

static void capture_stop(struct capture *cap)
{
	fflush(stderr);
	dup2(cap->saved, STDERR_FILENO);
	close(cap->saved);
	fclose(cap->f);
}

/* ---------- 50,000 endpoints ---------- */

#define N_LIVE 50000
#define N_DEAD 8
#define N_SVC 500    /* services of N_LIVE / N_SVC live endpoints each */
#define SCALE_INTERVAL_MS 4000

struct scale_state {
	struct fg_dataplane *dp;
	__u64 start_us;
	__u64 dead_down_us; /* when the last dead one went down */
};

/* Starts per 10 ms slot in [first, last), but for the slots where the
 * loop was catching up. */
struct slots {
	double avg;   /* over every slot */
	__u64 max;    /* over the slots on time */
	int slots;
	int left_out;
};

static void slot_stats(const struct drive *d, size_t first, size_t last, struct slots *st)
{
	__u64 sum = 0;
	size_t i;

	memset(st, 0, sizeof(*st));
	for (i = first; i < last && i < d->n_slots; i++) {
		sum += d->slots[i];
		st->slots++;
		if (d->stalled[i])
			st->left_out++;
		else if (d->slots[i] > st->max)
			st->max = d->slots[i];
	}
	st->avg = st->slots ? (double)sum / st->slots : 0;
}

static bool rings_done(void *arg)
{
	struct fg_health_counters c;

	fg_health_counters(arg, &c);
	return !c.rebuilds_pending;
}

/* Distinct backend ids in [lo, hi) in the ring of (service, cluster 0). */
static int ring_members(struct fg_dataplane *dp, __u32 sid, __u32 lo, __u32 hi)
{
	__u32 *ring = NULL, size = 0, i;
	bool seen[N_LIVE / N_SVC] = {};
	int n = 0;

	if (fg_dp_ring_read(dp, sid, 0, &ring, &size))
		return -1;
	for (i = 0; i < size; i++)
		if (ring[i] >= lo && ring[i] < hi && !seen[ring[i] - lo]) {
			seen[ring[i] - lo] = true;
			n++;
		}
	free(ring);
	return n;
}

static bool dead_all_down(void *arg)
{
	struct scale_state *st = arg;
	__u32 i;

	if (st->dead_down_us)
		return false;
	for (i = 0; i < N_DEAD; i++)
		if (is_up(st->dp, N_LIVE + 1 + i))
			return false;
	st->dead_down_us = now_us();
	return false;
}

static void subtest_fifty_thousand(void)
{
	struct fg_health_opts ho = { .interval_ms = SCALE_INTERVAL_MS, .fall = 2, .rise = 2 };
	struct drive d = { .interval_ms = SCALE_INTERVAL_MS };
	struct scale_state st = {};
	struct fg_health_counters c;
	struct fg_health *h = NULL;
	struct server srv = { .fd = -1 };
	struct capture cap = { .saved = -1 };
	__u32 members[N_DEAD + 100], per = N_LIVE / N_SVC;
	__u64 t_drain;
	int ring_before = -1, ring_after = -1;
	__u64 soft, hard;
	int holder = -1, err, lines, down_lines, i, up_live = 0, dead_up = 0, nslots;
	unsigned run_ms = 7 * SCALE_INTERVAL_MS / 2;
	struct slots storm, calm;
	double avg;
	bool on_time;
	struct rlimit saved_nofile;
	__u16 dport;
	__u32 *ring = NULL, ring_size = 0;
	bool ring_has_dead = false;

	getrlimit(RLIMIT_NOFILE, &saved_nofile);
	if (!ASSERT_OK(fg_raise_nofile(&soft, &hard), "raise RLIMIT_NOFILE"))
		return;
	/* The agent's default, within the file limit (with room for the
	 * listener, the data plane's maps and the runner). */
	ho.max_inflight = soft >= FG_HEALTH_DEF_MAX_INFLIGHT + 256 ? FG_HEALTH_DEF_MAX_INFLIGHT
								   : (unsigned)(soft > 320 ? soft - 256 : 64);
	if (!ASSERT_OK(load_dp_sized(&st.dp, 1024, 0), "load the data plane")) {
		setrlimit(RLIMIT_NOFILE, &saved_nofile);
		return;
	}
	if (!ASSERT_OK(server_start(&srv, 0, NULL), "listen") ||
	    !ASSERT_OK(dead_port(&holder, &dport), "dead port"))
		goto out;
	/* The live ones: every other one starts down and must come up. */
	for (i = 1, err = 0; i <= N_LIVE && !err; i++)
		err = set_be(st.dp, i, i, false, srv.port, i % 2, FG_BACKEND_F_PROBE_TCP);
	for (i = 0; i < N_DEAD && !err; i++)
		err = set_be(st.dp, N_LIVE + 1 + i, i + 1, true, dport, true, FG_BACKEND_F_PROBE_TCP);
	if (!ASSERT_OK(err, "backends"))
		goto out;
	/* A service over the dead ones and 100 live ones: its ring is rebuilt
	 * without the dead. */
	for (i = 0; i < N_DEAD; i++)
		members[i] = N_LIVE + 1 + i;
	for (i = 0; i < 100; i++)
		members[N_DEAD + i] = 2 * i + 1; /* odd: started up */
	{
		__u32 w[FG_MAX_CLUSTERS] = { 1 };

		if (!ASSERT_OK(fg_dp_set_service(st.dp, 1, "web/svc"), "service") ||
		    !ASSERT_OK(fg_dp_set_cluster_weights(st.dp, 1, w), "weights") ||
		    !ASSERT_OK(fg_dp_set_members(st.dp, 1, 0, members, N_DEAD + 100), "members") ||
		    !ASSERT_OK(fg_dp_rebuild_service(st.dp, 1), "rings") ||
		    !ASSERT_OK(fg_dp_ring_read(st.dp, 1, 0, &ring, &ring_size), "ring"))
			goto out;
		for (i = 0; i < (int)ring_size; i++)
			if (ring[i] > N_LIVE)
				ring_has_dead = true;
		ASSERT_TRUE(ring_has_dead, "the ring starts with the dead in it");
		free(ring);
		ring = NULL;
		ring_has_dead = false;
		/* The live ones in services of `per` each (rings of ~3,200
		 * slots: a rebuild costs a couple of ms), half of each down:
		 * the health changes rebuild them, paced. */
		for (i = 0, err = 0; i < N_SVC && !err; i++) {
			__u32 k, m[N_LIVE / N_SVC];

			for (k = 0; k < per; k++)
				m[k] = 1 + i * per + k;
			err = fg_dp_set_service(st.dp, 2 + i, "web/svc");
			if (!err)
				err = fg_dp_set_cluster_weights(st.dp, 2 + i, w);
			if (!err)
				err = fg_dp_set_members(st.dp, 2 + i, 0, m, per);
			if (!err)
				err = fg_dp_rebuild_service(st.dp, 2 + i);
		}
		if (!ASSERT_OK(err, "services"))
			goto out;
		ring_before = ring_members(st.dp, 2, 1, 1 + per);
		/* Room for every ring at full size twice (new slots are written
		 * before the old ones retire), as the applier reserves for a
		 * plan: a slab growth copies the slab in one go (rings.c),
		 * hundreds of ms that are not the prober's. */
		if (!ASSERT_OK(fg_dp_ring_reserve(st.dp, 2ULL * N_SVC *
						  fg_dp_backend_ring_size(st.dp, per)),
			       "reserve ring slots"))
			goto out;
	}
	err = fg_health_new(&h, st.dp, &ho);
	if (!ASSERT_OK(err, "fg_health_new"))
		goto out;
	nslots = run_ms / 10 + 1;
	d.slots = calloc(nslots, sizeof(*d.slots));
	d.stalled = calloc(nslots, sizeof(*d.stalled));
	d.n_slots = nslots;
	d.step_probes = (N_LIVE + N_DEAD) * FG_HEALTH_STEP_MS / SCALE_INTERVAL_MS;
	if (!ASSERT_OK_PTR(d.slots, "slots") || !ASSERT_OK_PTR(d.stalled, "slots") ||
	    !ASSERT_OK(capture_start(&cap), "capture stderr"))
		goto out;
	st.start_us = now_us();
	drive_for(&d, h, run_ms, dead_all_down, &st);
	/* The rings catch up with the changes (paced: a few ms per step). */
	t_drain = now_us();
	drive_for(&d, h, 2 * SCALE_INTERVAL_MS, rings_done, h);
	t_drain = now_us() - t_drain;
	ring_after = ring_members(st.dp, 2, 1, 1 + per);
	fg_health_counters(h, &c);
	lines = capture_count(&cap, "health: ", " is ");
	down_lines = capture_count(&cap, "is DOWN", NULL);
	capture_stop(&cap);
	cap.saved = -1;

	for (i = 1; i <= N_LIVE; i++)
		up_live += is_up(st.dp, i);
	for (i = 0; i < N_DEAD; i++)
		dead_up += is_up(st.dp, N_LIVE + 1 + i);
	/* Starts per 10 ms slot: over the second interval (its endpoints'
	 * second passes bring half of them up: ring rebuilds share the loop)
	 * and over the third (probes only). */
	slot_stats(&d, SCALE_INTERVAL_MS / 10, 2 * SCALE_INTERVAL_MS / 10, &storm);
	slot_stats(&d, 2 * SCALE_INTERVAL_MS / 10, 3 * SCALE_INTERVAL_MS / 10, &calm);
	avg = (N_LIVE + N_DEAD) * 10.0 / SCALE_INTERVAL_MS; /* due per 10 ms */
	printf("health: %d endpoints, interval %u ms, max_inflight %u: %llu calls, longest "
	       "%llu us CPU, %llu us wall (%llu calls of 10 ms or more wall time); %.1f us CPU "
	       "per probe\n",
	       N_LIVE + N_DEAD, SCALE_INTERVAL_MS, ho.max_inflight, (unsigned long long)d.calls,
	       (unsigned long long)d.max_cpu_us, (unsigned long long)d.max_call_us,
	       (unsigned long long)d.wall_over_10ms,
	       c.started ? (double)d.cpu_total_us / c.started : 0.0);
	printf("health: rings: longest rebuild call %llu us, caught up %llu ms after the "
	       "run (%llu pending); service 2 had %d of its %u endpoints, now %d\n",
	       (unsigned long long)c.max_rebuild_us, (unsigned long long)t_drain / 1000,
	       (unsigned long long)c.rebuilds_pending, ring_before, per, ring_after);
	printf("health: %llu probes (%llu passed, %llu failed, %llu timed out, %llu local, "
	       "%llu late), %llu up, %llu down, %llu summary lines in %llu steps\n",
	       (unsigned long long)c.started, (unsigned long long)c.passed,
	       (unsigned long long)c.failed, (unsigned long long)c.timeouts,
	       (unsigned long long)c.local, (unsigned long long)c.late,
	       (unsigned long long)c.ups, (unsigned long long)c.downs,
	       (unsigned long long)c.summaries, (unsigned long long)c.steps);
	printf("health: starts per 10 ms slot, 2nd interval (changes): average %.1f, max %llu; "
	       "3rd (probes only): average %.1f, max %llu (%d and %d slots left out, catching up "
	       "after the loop was held up); dead down after %llu ms\n",
	       storm.avg, (unsigned long long)storm.max, calm.avg, (unsigned long long)calm.max,
	       storm.left_out, calm.left_out,
	       st.dead_down_us ? (unsigned long long)(st.dead_down_us - st.start_us) / 1000 : 0ULL);

	/* The work a call does (CPU time, softirq included): the wall time
	 * adds whatever else the machine runs meanwhile. */
	ASSERT_LT(d.max_cpu_us, 10000, "longest call, CPU time (us)");
	ASSERT_EQ(c.endpoints, N_LIVE + N_DEAD, "endpoints scheduled");
	ASSERT_EQ(up_live, N_LIVE, "live endpoints up");
	ASSERT_EQ(dead_up, 0, "dead endpoints up");
	ASSERT_EQ(c.ups, N_LIVE / 2, "marked up");
	ASSERT_EQ(c.downs, N_DEAD, "marked down");
	ASSERT_TRUE(st.dead_down_us, "dead ones went down");
	/* Timing is judged only when the machine let the loop run on time
	 * for most of the run (other tests, builds: 2 cores shared): the
	 * CPU time of the calls above is the prober's own. */
	on_time = storm.left_out + calm.left_out <= (storm.slots + calm.slots) / 2;
	if (!on_time)
		printf("health: the machine held the loop up in %d of %d slots: the schedule "
		       "(probes per interval, dead down in time, spread) is not judged\n",
		       storm.left_out + calm.left_out, storm.slots + calm.slots);
	if (on_time) {
		ASSERT_LE(st.dead_down_us - st.start_us,
			  (ho.fall * SCALE_INTERVAL_MS + 300) * 1000ULL,
			  "dead down within fall x interval + 300 ms (us)");
		/* Each endpoint once per interval: 3 to 4 rounds in 3.5
		 * intervals, none skipped or timed out. */
		ASSERT_GE(c.started, 3ULL * (N_LIVE + N_DEAD), "probes started");
		ASSERT_EQ(c.timeouts, 0, "timeouts");
		ASSERT_EQ(c.late, 0, "late turns");
	}
	ASSERT_LE(c.started, 4ULL * (N_LIVE + N_DEAD), "probes started");
	ASSERT_EQ(c.local, 0, "local errors");
	/* One summary line per step that changed something, and few of them. */
	ASSERT_EQ(lines, c.summaries, "summary lines");
	ASSERT_LE(c.summaries, c.steps, "at most one per step");
	ASSERT_LE(c.summaries * 20, c.ups + c.downs, "far fewer lines than changes");
	ASSERT_GE(down_lines, 1, "a line says is DOWN");
	/* Spread: no 10 ms slot above twice the average (three times while
	 * ring rebuilds share the loop). */
	ASSERT_GT(calm.avg, 0, "starts counted");
	if (on_time) {
		ASSERT_LE(calm.max, 2 * avg, "max starts per slot <= 2 x average");
		ASSERT_LE(storm.max, 3 * avg, "with changes: max starts per slot <= 3 x average");
	}
	ASSERT_EQ(c.rebuilds_pending, 0, "rings caught up");
	ASSERT_EQ(ring_before, per / 2, "ring before: the up half");
	ASSERT_EQ(ring_after, per, "ring after: every endpoint");
	/* The service's ring has no dead member left. */
	if (ASSERT_OK(fg_dp_ring_read(st.dp, 1, 0, &ring, &ring_size), "ring")) {
		for (i = 0; i < (int)ring_size; i++)
			if (ring[i] > N_LIVE)
				ring_has_dead = true;
		ASSERT_FALSE(ring_has_dead, "ring without the dead");
	}
	free(ring);
out:
	if (cap.saved >= 0)
		capture_stop(&cap);
	fg_health_free(h);
	server_stop(&srv);
	if (holder >= 0)
		close(holder);
	free(d.slots);
	free(d.stalled);
	setrlimit(RLIMIT_NOFILE, &saved_nofile);
	fg_dp_close(st.dp, true);
}

/* ---------- a few endpoints ---------- */

struct wait_up {
	struct fg_dataplane *dp;
	__u32 id;
	bool up;
};

static bool reached(void *arg)
{
	struct wait_up *w = arg;

	return is_up(w->dp, w->id) == w->up;
}

/* Drives until id is up (or down); returns the ms it took, -1 on timeout. */
static long wait_state(struct drive *d, struct fg_health *h, struct fg_dataplane *dp, __u32 id,
		       bool up, unsigned max_ms)
{
	struct wait_up w = { dp, id, up };
	__u64 t = now_us();

	drive_for(d, h, max_ms, reached, &w);
	return reached(&w) ? (long)((now_us() - t) / 1000) : -1;
}

#define SMALL_INTERVAL_MS 100

static void subtest_fall_rise(void)
{
	struct fg_health_opts ho = { .interval_ms = SMALL_INTERVAL_MS, .timeout_ms = 80 };
	struct drive d = { .interval_ms = SMALL_INTERVAL_MS };
	struct fg_dataplane *dp = NULL;
	struct fg_health *h = NULL;
	struct fg_health_counters c0, c1;
	struct server srv = { .fd = -1 }, srv2 = { .fd = -1 };
	__u16 port;
	long ms;

	if (!ASSERT_OK(load_dp(&dp), "load the data plane"))
		return;
	if (!ASSERT_OK(server_start(&srv, 0, NULL), "listen"))
		goto out;
	port = srv.port;
	ASSERT_OK(set_be(dp, 1, 1, false, port, true, FG_BACKEND_F_PROBE_TCP), "backend 1");
	ASSERT_OK(set_be(dp, 2, 2, false, port, true, FG_BACKEND_F_PROBE_TCP), "backend 2");
	/* Not probed: no probe flag. */
	ASSERT_OK(set_be(dp, 3, 3, false, port, true, 0), "backend 3");
	if (!ASSERT_OK(fg_health_new(&h, dp, &ho), "fg_health_new"))
		goto out;
	drive_for(&d, h, 3 * SMALL_INTERVAL_MS, NULL, NULL);
	fg_health_counters(h, &c0);
	ASSERT_EQ(c0.endpoints, 2, "endpoints");
	ASSERT_GE(c0.passed, 4, "passed");
	ASSERT_EQ(c0.failed, 0, "failed");
	ASSERT_TRUE(is_up(dp, 1) && is_up(dp, 2), "up");

	/* The endpoints die: down after `fall` probes. */
	server_stop(&srv);
	ms = wait_state(&d, h, dp, 1, false, 5 * SMALL_INTERVAL_MS);
	printf("health: down after %ld ms (interval %u, fall 2)\n", ms, SMALL_INTERVAL_MS);
	ASSERT_GE(ms, 0, "went down");
	ASSERT_LE(ms, 2 * SMALL_INTERVAL_MS + 100, "within fall x interval + 100 ms");
	wait_state(&d, h, dp, 2, false, 3 * SMALL_INTERVAL_MS);
	ASSERT_FALSE(is_up(dp, 2), "2 down too");

	/* They come back: up after `rise` passes. */
	if (!ASSERT_OK(server_start(&srv2, port, NULL), "listen again"))
		goto out;
	ms = wait_state(&d, h, dp, 1, true, 5 * SMALL_INTERVAL_MS);
	printf("health: up after %ld ms (rise 2)\n", ms);
	ASSERT_GE(ms, 0, "came back");
	wait_state(&d, h, dp, 2, true, 3 * SMALL_INTERVAL_MS);
	ASSERT_TRUE(is_up(dp, 2), "2 up too");

	/* Passive health: the proxy marks 1 down; it needs `rise` passes from
	 * then, not one. */
	fg_health_counters(h, &c0);
	ASSERT_OK(fg_dp_set_backend_up(dp, 1, false), "passive down");
	ms = wait_state(&d, h, dp, 1, true, 5 * SMALL_INTERVAL_MS);
	fg_health_counters(h, &c1);
	printf("health: back from passive down after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "came back");
	ASSERT_GE(ms, SMALL_INTERVAL_MS / 2, "not at the first pass");
	ASSERT_EQ(c1.ups - c0.ups, 1, "one up");
	ASSERT_TRUE(is_up(dp, 3), "unprobed 3 untouched");
out:
	fg_health_free(h);
	server_stop(&srv);
	server_stop(&srv2);
	fg_dp_close(dp, true);
}

static void subtest_churn(void)
{
	struct fg_health_opts ho = { .interval_ms = SMALL_INTERVAL_MS, .timeout_ms = 80 };
	struct drive d = { .interval_ms = SMALL_INTERVAL_MS };
	struct fg_dataplane *dp = NULL;
	struct fg_health *h = NULL;
	struct fg_health_counters c;
	struct server srv = { .fd = -1 };
	int holder = -1, i;
	__u16 dport;
	long ms;

	if (!ASSERT_OK(load_dp(&dp), "load the data plane"))
		return;
	if (!ASSERT_OK(server_start(&srv, 0, NULL), "listen") ||
	    !ASSERT_OK(dead_port(&holder, &dport), "dead port"))
		goto out;
	for (i = 1; i <= 100; i++)
		ASSERT_OK(set_be(dp, i, i, false, srv.port, true, FG_BACKEND_F_PROBE_TCP), "backend");
	if (!ASSERT_OK(fg_health_new(&h, dp, &ho), "fg_health_new"))
		goto out;
	drive_for(&d, h, 2 * SMALL_INTERVAL_MS, NULL, NULL);
	fg_health_counters(h, &c);
	ASSERT_EQ(c.endpoints, 100, "endpoints");

	/* 50 removed, 20 new ones (ids 201..220). */
	for (i = 51; i <= 100; i++)
		ASSERT_OK(fg_dp_del_backend(dp, i), "del");
	for (i = 201; i <= 220; i++)
		ASSERT_OK(set_be(dp, i, i, false, srv.port, false, FG_BACKEND_F_PROBE_TCP), "new");
	drive_for(&d, h, 4 * SMALL_INTERVAL_MS, NULL, NULL);
	fg_health_counters(h, &c);
	ASSERT_EQ(c.endpoints, 70, "endpoints after the change");
	for (i = 201; i <= 220; i++)
		if (!ASSERT_TRUE(is_up(dp, i), "new one came up"))
			break;

	/* Id 7 now names another endpoint, one that refuses: its counts start
	 * again and it goes down. */
	ASSERT_OK(set_be(dp, 7, 7, true, dport, true, FG_BACKEND_F_PROBE_TCP), "readdressed");
	ms = wait_state(&d, h, dp, 7, false, 5 * SMALL_INTERVAL_MS);
	ASSERT_GE(ms, 0, "readdressed one went down");
	/* The probe flags cleared: no longer probed. */
	for (i = 1; i <= 50; i++)
		if (i != 7)
			ASSERT_OK(set_be(dp, i, i, false, srv.port, true, 0), "unprobed");
	drive_for(&d, h, 2 * SMALL_INTERVAL_MS, NULL, NULL);
	fg_health_counters(h, &c);
	ASSERT_EQ(c.endpoints, 21, "endpoints still probed");
	ASSERT_LT(d.max_cpu_us, 10000, "longest call, CPU time (us)");
out:
	fg_health_free(h);
	server_stop(&srv);
	if (holder >= 0)
		close(holder);
	fg_dp_close(dp, true);
}

static void subtest_http(void)
{
	struct fg_health_opts ho = { .interval_ms = SMALL_INTERVAL_MS, .timeout_ms = 80,
				     .http_path = "/healthz" };
	struct drive d = { .interval_ms = SMALL_INTERVAL_MS };
	struct fg_dataplane *dp = NULL;
	struct fg_health *h = NULL;
	struct fg_health_counters c;
	struct server ok = { .fd = -1 }, bad = { .fd = -1 };

	if (!ASSERT_OK(load_dp(&dp), "load the data plane"))
		return;
	if (!ASSERT_OK(server_start(&ok, 0, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
		       "listen 200") ||
	    !ASSERT_OK(server_start(&bad, 0, "HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"),
		       "listen 503"))
		goto out;
	ASSERT_OK(set_be(dp, 1, 1, false, ok.port, false, FG_BACKEND_F_PROBE_HTTP), "ok");
	ASSERT_OK(set_be(dp, 2, 2, false, bad.port, true, FG_BACKEND_F_PROBE_HTTP), "bad");
	/* TCP-probed endpoint on the 503 server: its connect passes. */
	ASSERT_OK(set_be(dp, 3, 3, false, bad.port, false, FG_BACKEND_F_PROBE_TCP), "tcp");
	if (!ASSERT_OK(fg_health_new(&h, dp, &ho), "fg_health_new"))
		goto out;
	drive_for(&d, h, 5 * SMALL_INTERVAL_MS, NULL, NULL);
	fg_health_counters(h, &c);
	ASSERT_TRUE(is_up(dp, 1), "200 is up");
	ASSERT_FALSE(is_up(dp, 2), "503 is down");
	ASSERT_TRUE(is_up(dp, 3), "TCP probe of the 503 server is up");
	ASSERT_EQ(c.ups, 2, "ups");
	ASSERT_EQ(c.downs, 1, "downs");
	ASSERT_GE(__atomic_load_n(&ok.accepted, __ATOMIC_RELAXED), 3, "GETs served");
out:
	fg_health_free(h);
	server_stop(&ok);
	server_stop(&bad);
	fg_dp_close(dp, true);
}

FG_TEST(health_scale)
{
	int ns = test__netns_private();

	if (ns < 0) {
		test__skip("no private network namespace: %s", strerror(-ns));
		return;
	}
	if (test__start_subtest("fall_rise"))
		subtest_fall_rise();
	if (test__start_subtest("churn"))
		subtest_churn();
	if (test__start_subtest("http"))
		subtest_http();
	if (test__start_subtest("fifty_thousand"))
		subtest_fifty_thousand();
	test__netns_restore(ns);
}

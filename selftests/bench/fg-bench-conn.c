// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fg-bench-conn: connections per second against ADDR:PORT. Keeps
 * CONCURRENCY non-blocking connections in flight for SECONDS: each one
 * connects, reads the server's line up to EOF, closes (the server closes
 * first, so TIME_WAIT stays on the server side), and is replaced at once.
 * A connection not done within 2 s counts as failed and is replaced.
 *
 *   fg-bench-conn [-t SECONDS] [-c CONCURRENCY] [-r RATE] ADDR PORT
 *
 * -r opens at most RATE connections per second (a fixed offered load, for
 * measuring what a connection costs rather than how many fit).
 *
 * Prints: conn_per_s RATE ok N failed N seconds S
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define MAX_CONC 4096
#define CONN_TIMEOUT_NS 2000000000LL

struct slot {
	int fd;
	long long start;
	int got; /* bytes read */
};

static struct slot slots[MAX_CONC];
static struct sockaddr_in dst;
static int ep;
static unsigned long n_ok, n_fail, n_opened;
static double rate;        /* connections per second at most; 0: no limit */
static long long t_start;

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* With -r: may another connection be opened now? */
static bool rate_allows(void)
{
	return rate <= 0 || n_opened < (unsigned long)((now_ns() - t_start) / 1e9 * rate) + 1;
}

static void slot_open(int i)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = (uint32_t)i };
	struct slot *s = &slots[i];

	if (!rate_allows()) {
		s->fd = -1;
		return;
	}
	n_opened++;
	s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	s->start = now_ns();
	s->got = 0;
	if (s->fd < 0) {
		n_fail++;
		return;
	}
	if (connect(s->fd, (struct sockaddr *)&dst, sizeof(dst)) && errno != EINPROGRESS) {
		close(s->fd);
		s->fd = -1;
		n_fail++;
		return;
	}
	if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &ev)) {
		close(s->fd);
		s->fd = -1;
		n_fail++;
	}
}

static void slot_done(int i, bool ok)
{
	struct slot *s = &slots[i];

	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (ok)
		n_ok++;
	else
		n_fail++;
}

static void slot_event(int i, uint32_t events)
{
	struct slot *s = &slots[i];
	char buf[256];
	ssize_t n;

	if (s->fd < 0)
		return;
	if (events & EPOLLERR) {
		slot_done(i, false);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)))
		return; /* connected; wait for the line */
	for (;;) {
		n = read(s->fd, buf, sizeof(buf));
		if (n > 0) {
			s->got += (int)n;
			continue;
		}
		if (n == 0) {
			slot_done(i, s->got > 0);
			return;
		}
		if (errno == EAGAIN || errno == EINTR)
			return;
		slot_done(i, false);
		return;
	}
}

int main(int argc, char **argv)
{
	struct epoll_event evs[256];
	double secs = 5;
	int conc = 64, opt, i;
	long long t0, end, t, last_sweep;

	while ((opt = getopt(argc, argv, "t:c:r:")) != -1) {
		if (opt == 't')
			secs = atof(optarg);
		else if (opt == 'c')
			conc = atoi(optarg);
		else if (opt == 'r')
			rate = atof(optarg);
		else
			goto usage;
	}
	if (argc - optind != 2 || conc < 1 || conc > MAX_CONC || secs <= 0)
		goto usage;
	dst.sin_family = AF_INET;
	dst.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
	if (inet_pton(AF_INET, argv[optind], &dst.sin_addr) != 1)
		goto usage;
	signal(SIGPIPE, SIG_IGN);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0) {
		perror("epoll_create1");
		return 1;
	}
	t0 = t_start = now_ns();
	end = t0 + (long long)(secs * 1e9);
	last_sweep = t0;
	for (i = 0; i < conc; i++)
		slot_open(i);
	while ((t = now_ns()) < end) {
		int n = epoll_wait(ep, evs, 256, rate > 0 ? 1 : 50);

		for (i = 0; i < n; i++) {
			int k = (int)evs[i].data.u32;

			slot_event(k, evs[i].events);
			if (slots[k].fd < 0 && now_ns() < end)
				slot_open(k);
		}
		/* Paced: the slots left idle by the rate limit get their turn. */
		if (rate > 0)
			for (i = 0; i < conc && rate_allows(); i++)
				if (slots[i].fd < 0)
					slot_open(i);
		if (t - last_sweep > 100000000LL) {
			last_sweep = t;
			for (i = 0; i < conc; i++) {
				if (slots[i].fd >= 0 && t - slots[i].start > CONN_TIMEOUT_NS)
					slot_done(i, false);
				if (slots[i].fd < 0)
					slot_open(i);
			}
		}
	}
	t = now_ns();
	for (i = 0; i < conc; i++)
		if (slots[i].fd >= 0)
			close(slots[i].fd);
	printf("conn_per_s %.0f ok %lu failed %lu seconds %.2f\n",
	       n_ok / ((t - t0) / 1e9), n_ok, n_fail, (t - t0) / 1e9);
	return 0;
usage:
	fprintf(stderr, "usage: %s [-t SECONDS] [-c CONCURRENCY] [-r RATE] ADDR PORT\n", argv[0]);
	return 2;
}

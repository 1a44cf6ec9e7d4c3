// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Body byte movers of the L7 proxy and their start-up probe. See splice.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/magic.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "log.h"
#include "splice.h"
#include "sockmap.skel.h"

#ifndef SO_COOKIE
#define SO_COOKIE 57
#endif

#define PIPE_SIZE (1 << 20)

const char *fg_l7_mode_name(enum fg_l7_mode mode)
{
	switch (mode) {
	case FG_L7_AUTO: return "auto";
	case FG_L7_SOCKMAP: return "sockmap";
	case FG_L7_SPLICE: return "splice";
	case FG_L7_COPY: return "copy";
	}
	return "?";
}

int fg_l7_mode_parse(const char *s, enum fg_l7_mode *mode)
{
	static const enum fg_l7_mode all[] = { FG_L7_AUTO, FG_L7_SOCKMAP, FG_L7_SPLICE,
					       FG_L7_COPY };
	size_t i;

	for (i = 0; s && i < sizeof(all) / sizeof(all[0]); i++) {
		if (!strcmp(s, fg_l7_mode_name(all[i]))) {
			*mode = all[i];
			return 0;
		}
	}
	return -EINVAL;
}

/* ---------- sockmap ---------- */

struct fg_sockmap {
	struct sockmap_bpf *skel;
	int socks, peers, win, state;
	bool attached;
	bool pinned;
};

static bool on_bpffs(const char *path)
{
	struct statfs st;

	return !statfs(path, &st) && st.f_type == BPF_FS_MAGIC;
}

static void clear_map(int fd)
{
	__u64 key, next;

	while (!bpf_map_get_next_key(fd, NULL, &next)) {
		key = next;
		if (bpf_map_delete_elem(fd, &key))
			break;
	}
}

int fg_sockmap_open(struct fg_sockmap **out, const char *pin_path)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts);
	struct fg_sockmap *sm;
	struct bpf_map *map;
	int err;

	sm = calloc(1, sizeof(*sm));
	if (!sm)
		return -ENOMEM;
	sm->pinned = pin_path && on_bpffs(pin_path);
	if (sm->pinned)
		oopts.pin_root_path = pin_path;
	sm->skel = sockmap_bpf__open_opts(&oopts);
	if (!sm->skel) {
		err = -errno;
		free(sm);
		return err ? err : -EINVAL;
	}
	if (!sm->pinned)
		bpf_object__for_each_map(map, sm->skel->obj)
			bpf_map__set_pin_path(map, NULL);
	err = sockmap_bpf__load(sm->skel);
	if (err) {
		pr_warn("sockmap: cannot load bpf/sockmap.bpf.c: %s\n", strerror(-err));
		goto fail;
	}
	sm->socks = bpf_map__fd(sm->skel->maps.fg_sk_socks);
	sm->peers = bpf_map__fd(sm->skel->maps.fg_sk_peers);
	sm->win = bpf_map__fd(sm->skel->maps.fg_sk_win);
	sm->state = bpf_map__fd(sm->skel->maps.fg_sk_state);
	/* Pins of a previous run: their sockets are gone, so is their state. */
	clear_map(sm->win);
	clear_map(sm->state);
	err = bpf_prog_attach(bpf_program__fd(sm->skel->progs.fg_sk_verdict), sm->socks,
			      BPF_SK_SKB_VERDICT, 0);
	if (err) {
		err = -errno;
		pr_warn("sockmap: cannot attach the sk_skb verdict program: %s\n", strerror(-err));
		goto fail;
	}
	sm->attached = true;
	*out = sm;
	return 0;
fail:
	fg_sockmap_close(sm, true);
	return err;
}

void fg_sockmap_close(struct fg_sockmap *sm, bool remove_pins)
{
	if (!sm)
		return;
	if (sm->attached)
		bpf_prog_detach2(bpf_program__fd(sm->skel->progs.fg_sk_verdict), sm->socks,
				 BPF_SK_SKB_VERDICT);
	if (sm->skel) {
		if (sm->pinned && remove_pins)
			bpf_object__unpin_maps(sm->skel->obj, NULL);
		sockmap_bpf__destroy(sm->skel);
	}
	free(sm);
}

int fg_sockmap_add(struct fg_sockmap *sm, int fd, __u64 *cookie)
{
	struct fg_sk_state st = {};
	socklen_t len = sizeof(*cookie);
	__u64 v = fd;

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len))
		return -errno;
	if (bpf_map_update_elem(sm->state, cookie, &st, BPF_ANY))
		return -errno;
	if (bpf_map_update_elem(sm->socks, cookie, &v, BPF_NOEXIST)) {
		int err = -errno;

		bpf_map_delete_elem(sm->state, cookie);
		return err;
	}
	return 0;
}

int fg_sockmap_add_peer(struct fg_sockmap *sm, int fd, __u64 *cookie)
{
	socklen_t len = sizeof(*cookie);
	__u64 v = fd;

	if (getsockopt(fd, SOL_SOCKET, SO_COOKIE, cookie, &len))
		return -errno;
	if (bpf_map_update_elem(sm->peers, cookie, &v, BPF_NOEXIST))
		return -errno;
	return 0;
}

void fg_sockmap_forget(struct fg_sockmap *sm, __u64 cookie)
{
	bpf_map_delete_elem(sm->peers, &cookie);
	bpf_map_delete_elem(sm->win, &cookie);
	bpf_map_delete_elem(sm->state, &cookie);
	bpf_map_delete_elem(sm->socks, &cookie); /* gone already when closed */
}

int fg_sockmap_window(struct fg_sockmap *sm, __u64 cookie, __u64 gen, __u64 start, __u64 len,
		      __u64 peer)
{
	struct fg_sk_window w = { .gen = gen, .start = start, .end = start + len, .peer = peer };

	return bpf_map_update_elem(sm->win, &cookie, &w, BPF_ANY) ? -errno : 0;
}

int fg_sockmap_state(struct fg_sockmap *sm, __u64 cookie, struct fg_sk_state *st)
{
	struct fg_sk_state a;
	int i;

	/* The program updates the element in place while this copies it:
	 * two lookups in a row that agree on the window fields are not
	 * torn (once closed, the program leaves them alone). */
	if (bpf_map_lookup_elem(sm->state, &cookie, st))
		return -errno;
	for (i = 0; i < 64; i++) {
		if (bpf_map_lookup_elem(sm->state, &cookie, &a))
			return -errno;
		if (a.gen == st->gen && a.redirected == st->redirected && a.closed == st->closed &&
		    a.stale == st->stale && a.total_redirected == st->total_redirected) {
			*st = a;
			return 0;
		}
		*st = a;
	}
	return -EAGAIN;
}

int fg_sockmap_withdraw(struct fg_sockmap *sm, __u64 cookie, int fd, struct fg_sk_state *st)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	int err;

	if (bpf_map_delete_elem(sm->win, &cookie) && errno != ENOENT)
		return -errno;
	/* The verdict program runs under the socket's lock (softirq with the
	 * spinlock held, or the owner's backlog); TCP_INFO takes it too
	 * (lock_sock_fast), so a run that had found the window before the
	 * delete is over when this returns, and later runs find none. */
	getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len);
	do {
		err = fg_sockmap_state(sm, cookie, st);
	} while (err == -EAGAIN);
	return err;
}

bool fg_sockmap_broken(struct fg_sockmap *sm, __u64 cookie)
{
	struct fg_sk_state st;

	if (bpf_map_lookup_elem(sm->state, &cookie, &st))
		return true;
	return st.broken;
}

long fg_sockmap_count(struct fg_sockmap *sm)
{
	__u64 key, next;
	long n = 0;
	int err;

	for (err = bpf_map_get_next_key(sm->state, NULL, &next); !err;
	     err = bpf_map_get_next_key(sm->state, &key, &next)) {
		key = next;
		n++;
	}
	return n;
}

int fg_tcp_written(int fd, __u64 *out)
{
	struct tcp_info ti;
	socklen_t len = sizeof(ti);

	memset(&ti, 0, sizeof(ti));
	if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len))
		return -errno;
	if (len < offsetof(struct tcp_info, tcpi_bytes_retrans) + sizeof(ti.tcpi_bytes_retrans))
		return -EOPNOTSUPP;
	/* bytes_sent counts retransmissions too, bytes_retrans only them:
	 * their difference is snd_nxt - ISN - 1; notsent is write_seq -
	 * snd_nxt. */
	*out = ti.tcpi_bytes_sent - ti.tcpi_bytes_retrans + ti.tcpi_notsent_bytes;
	return 0;
}

/* ---------- splice(2) ---------- */

int fg_pipe_open(struct fg_pipe *p)
{
	int fds[2];

	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC))
		return -errno;
	/* Larger pipes move more per call; refused above pipe-max-size. */
	fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE);
	p->rd = fds[0];
	p->wr = fds[1];
	p->len = 0;
	return 0;
}

void fg_pipe_close(struct fg_pipe *p)
{
	if (p->rd >= 0)
		close(p->rd);
	if (p->wr >= 0)
		close(p->wr);
	p->rd = p->wr = -1;
	p->len = 0;
}

ssize_t fg_pipe_fill(struct fg_pipe *p, int from, size_t max)
{
	ssize_t n;

	if (max > PIPE_SIZE)
		max = PIPE_SIZE;
	do {
		n = splice(from, NULL, p->wr, NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return errno == EWOULDBLOCK ? -EAGAIN : -errno;
	p->len += n;
	return n;
}

ssize_t fg_pipe_drain(struct fg_pipe *p, int to)
{
	ssize_t moved = 0;

	while (p->len) {
		ssize_t n = splice(p->rd, NULL, to, NULL, p->len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

		if (n > 0) {
			p->len -= n;
			moved += n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		return n < 0 ? -errno : -EPIPE;
	}
	return moved;
}

/* ---------- probe ---------- */

#define PROBE_HDR 16
#define PROBE_BUF (256 * 1024)
#define PROBE_PAT (1 << 20)
#define PROBE_SMALL (16 * 1024) /* below this, the kernel path is not worth a window */

/* A cheap position-dependent hash of a byte stream, fed in any pieces. */
struct shash {
	__u64 h, idx;
	unsigned char tail[8];
	unsigned ntail;
};

static void shash_word(struct shash *s, __u64 w)
{
	s->h += (w ^ (w >> 29)) * (2 * s->idx + 1);
	s->h = (s->h << 7) | (s->h >> 57);
	s->idx++;
}

static void shash_feed(struct shash *s, const unsigned char *p, size_t n)
{
	__u64 w;

	while (n && s->ntail) {
		s->tail[s->ntail++] = *p++;
		n--;
		if (s->ntail == 8) {
			memcpy(&w, s->tail, 8);
			shash_word(s, w);
			s->ntail = 0;
		}
	}
	for (; n >= 8; n -= 8, p += 8) {
		memcpy(&w, p, 8);
		shash_word(s, w);
	}
	while (n--)
		s->tail[s->ntail++] = *p++;
}

static __u64 shash_end(struct shash *s)
{
	__u64 w = 0;

	if (s->ntail) {
		memcpy(&w, s->tail, s->ntail);
		shash_word(s, w ^ ((__u64)s->ntail << 56));
	}
	return s->h ^ s->idx;
}

struct probe {
	enum fg_l7_mode mode;
	struct fg_sockmap *sm;
	__u64 bytes, msg_bytes;
	__u64 deadline;       /* ms, CLOCK_MONOTONIC */
	int w, u, c, r;       /* writer -> u (agent) ; agent c -> reader r */
	unsigned char *pat;
	__u64 w_hash, r_hash, r_bytes, w_bytes;
	int w_err, r_err;
	/* agent */
	__u64 u_cookie, c_cookie, gen, read_passed, k_seen, c_base, c_own, c_kernel;
	__u64 windows, kernel_bytes;
	bool stale;
	char why[160];
};

static __u64 ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double ts_sec(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Busy CPU seconds of the whole machine so far (/proc/stat, all CPUs). */
static double machine_busy(void)
{
	unsigned long long v[10] = {};
	long hz = sysconf(_SC_CLK_TCK);
	FILE *f = fopen("/proc/stat", "r");
	int n;

	if (!f)
		return 0;
	n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &v[6], &v[7]);
	fclose(f);
	if (n < 8 || hz <= 0)
		return 0;
	/* user nice system [idle iowait] irq softirq steal */
	return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz;
}

static int send_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EPIPE;
		p += n;
		len -= n;
	}
	return 0;
}

static void *probe_writer(void *arg)
{
	struct probe *pr = arg;
	struct shash hs = {};
	__u64 left = pr->bytes, i = 0;

	while (left) {
		__u64 len = left < pr->msg_bytes ? left : pr->msg_bytes, off = 0;
		unsigned char hdr[PROBE_HDR] = "FGSP";

		memcpy(hdr + 8, &len, 8);
		memcpy(hdr + 4, &i, 4);
		shash_feed(&hs, hdr, PROBE_HDR);
		if ((pr->w_err = send_all(pr->w, hdr, PROBE_HDR)))
			return NULL;
		while (off < len) {
			size_t k = len - off < PROBE_PAT / 2 ? len - off : PROBE_PAT / 2;
			const unsigned char *src = pr->pat + (off + i * 977) % (PROBE_PAT / 2);

			shash_feed(&hs, src, k);
			if ((pr->w_err = send_all(pr->w, src, k)))
				return NULL;
			off += k;
			pr->w_bytes += k;
		}
		left -= len;
		i++;
	}
	pr->w_hash = shash_end(&hs);
	shutdown(pr->w, SHUT_WR);
	return NULL;
}

static void *probe_reader(void *arg)
{
	struct probe *pr = arg;
	struct shash hs = {};
	unsigned char *buf = malloc(PROBE_BUF);

	if (!buf) {
		pr->r_err = -ENOMEM;
		return NULL;
	}
	for (;;) {
		ssize_t n = recv(pr->r, buf, PROBE_BUF, 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pr->r_err = -errno;
			break;
		}
		if (!n)
			break;
		shash_feed(&hs, buf, n);
		pr->r_bytes += n;
	}
	pr->r_hash = shash_end(&hs);
	free(buf);
	return NULL;
}

/* Waits for fd to be readable, up to the deadline. */
static int wait_in(struct probe *pr, int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	__u64 now = ms_now();

	if (now >= pr->deadline)
		return -ETIMEDOUT;
	if (ms < 0 || now + ms > pr->deadline)
		ms = (int)(pr->deadline - now);
	return poll(&pfd, 1, ms) < 0 && errno != EINTR ? -errno : 0;
}

/* Sockmap: the bytes the kernel redirected into c are in its stream. */
static int c_barrier(struct probe *pr)
{
	__u64 w;
	int err, spins = 0;

	if (pr->mode != FG_L7_SOCKMAP)
		return 0;
	for (;;) {
		err = fg_tcp_written(pr->c, &w);
		if (err)
			return err;
		if (w - pr->c_base >= pr->c_own + pr->c_kernel)
			return 0;
		if (ms_now() >= pr->deadline)
			return -ETIMEDOUT;
		if (++spins > 16) {
			struct timespec ts = { 0, 20000 };

			nanosleep(&ts, NULL);
		}
	}
}

static int c_send(struct probe *pr, const void *buf, size_t len)
{
	int err = c_barrier(pr);

	if (err)
		return err;
	pr->c_own += len;
	return send_all(pr->c, buf, len);
}

/* Moves rem payload bytes u -> c; bytes read past them stay in buf
 * (*have). */
static int probe_move(struct probe *pr, __u64 rem, unsigned char *buf, size_t *have)
{
	struct fg_pipe pp = { -1, -1, 0 };
	int err = 0;

	if (pr->mode == FG_L7_SPLICE) {
		err = fg_pipe_open(&pp);
		if (err)
			return err;
	}
	while (rem) {
		ssize_t n;

		if (pr->mode == FG_L7_SPLICE) {
			n = fg_pipe_fill(&pp, pr->u, rem);
			if (n == -EAGAIN) {
				err = wait_in(pr, pr->u, -1);
				if (err)
					break;
				continue;
			}
			if (n <= 0) {
				err = n ? (int)n : -EPIPE;
				break;
			}
			rem -= n;
			while (pp.len) {
				n = fg_pipe_drain(&pp, pr->c);
				if (n < 0) {
					err = n;
					break;
				}
				if (pp.len) {
					struct pollfd pfd = { .fd = pr->c, .events = POLLOUT };

					if (ms_now() >= pr->deadline) {
						err = -ETIMEDOUT;
						break;
					}
					poll(&pfd, 1, 100);
				}
			}
			if (err)
				break;
			continue;
		}
		/* Sockmap: open a window at once; if bytes were passed that
		 * were not read yet, the program refuses it (stale) and they
		 * are read below. */
		if (pr->mode == FG_L7_SOCKMAP && rem >= PROBE_SMALL && !pr->stale)
			goto window;
		pr->stale = false;
		n = recv(pr->u, buf, PROBE_BUF, MSG_DONTWAIT);
		if (n > 0) {
			size_t take = (__u64)n < rem ? (size_t)n : (size_t)rem;

			if (pr->mode == FG_L7_SOCKMAP && fg_sockmap_broken(pr->sm, pr->u_cookie)) {
				snprintf(pr->why, sizeof(pr->why),
					 "the program could not remove repeated bytes");
				err = -EPROTO;
				break;
			}
			pr->read_passed += n;
			err = c_send(pr, buf, take);
			if (err)
				break;
			rem -= take;
			if ((size_t)n > take) {
				memmove(buf, buf + take, n - take);
				*have = n - take;
			}
			continue;
		}
		if (n == 0) {
			err = -EPIPE;
			break;
		}
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			err = -errno;
			break;
		}
		if (pr->mode != FG_L7_SOCKMAP || rem < PROBE_SMALL) {
			err = wait_in(pr, pr->u, -1);
			if (err)
				break;
			continue;
		}
	window:
		/* A window for the rest of the payload. */
		{
			struct fg_sk_state st;
			__u64 gen = ++pr->gen;

			err = fg_sockmap_window(pr->sm, pr->u_cookie, gen,
						pr->read_passed + pr->k_seen, rem, pr->c_cookie);
			if (err)
				break;
			pr->windows++;
			for (;;) {
				struct pollfd pfd = { .fd = pr->u, .events = POLLIN };
				int ready;

				ready = poll(&pfd, 1, 1);
				err = fg_sockmap_state(pr->sm, pr->u_cookie, &st);
				if (err == -EAGAIN) {
					err = 0;
					continue;
				}
				if (err)
					break;
				if (st.gen == gen && st.closed)
					break;
				if (ready > 0 && st.gen != gen) {
					/* Readable: bytes passed before the window,
					 * or one the program is about to see (the
					 * skb is queued before the verdict runs).
					 * Withdraw it and take the final word: it
					 * may have been adopted after all. */
					err = fg_sockmap_withdraw(pr->sm, pr->u_cookie, pr->u, &st);
					break;
				}
				if (ms_now() >= pr->deadline) {
					err = -ETIMEDOUT;
					break;
				}
			}
			if (err)
				break;
			/* What the kernel moved since we last looked (a window
			 * given up on may have been adopted after all). */
			{
				__u64 k = st.total_redirected - pr->k_seen;

				pr->k_seen = st.total_redirected;
				pr->c_kernel += k;
				pr->kernel_bytes += k;
				/* Not all of it went: bytes were passed, read
				 * them before the next window. */
				pr->stale = k != rem;
				rem -= k;
			}
		}
	}
	fg_pipe_close(&pp);
	return err;
}

static int probe_agent(struct probe *pr)
{
	unsigned char *buf = malloc(PROBE_BUF);
	size_t have = 0;
	__u64 moved = 0;
	int err = 0;

	if (!buf)
		return -ENOMEM;
	while (moved < pr->bytes) {
		__u64 len, take;

		while (have < PROBE_HDR) {
			ssize_t n = recv(pr->u, buf + have, PROBE_BUF - have, MSG_DONTWAIT);

			if (n > 0) {
				have += n;
				pr->read_passed += n;
				continue;
			}
			if (n == 0) {
				err = -EPIPE;
				goto out;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
				err = -errno;
				goto out;
			}
			err = wait_in(pr, pr->u, -1);
			if (err)
				goto out;
		}
		if (memcmp(buf, "FGSP", 4)) {
			struct fg_sk_state st = {};

			if (pr->mode == FG_L7_SOCKMAP)
				fg_sockmap_state(pr->sm, pr->u_cookie, &st);
			snprintf(pr->why, sizeof(pr->why),
				 "message header not where expected (repeated bytes removed %llu, "
				 "broken %u)",
				 (unsigned long long)st.overlap, st.broken);
			err = -EPROTO;
			goto out;
		}
		memcpy(&len, buf + 8, 8);
		take = have - PROBE_HDR < len ? have - PROBE_HDR : len;
		err = c_send(pr, buf, PROBE_HDR + take);
		if (err)
			goto out;
		memmove(buf, buf + PROBE_HDR + take, have - PROBE_HDR - take);
		have -= PROBE_HDR + take;
		if (len > take) {
			size_t left = have;

			/* have is 0 here: the payload was not complete */
			err = probe_move(pr, len - take, buf, &left);
			have = left;
			if (err)
				goto out;
		}
		moved += len;
	}
	err = c_barrier(pr);
out:
	if (err && !pr->why[0])
		snprintf(pr->why, sizeof(pr->why), "%s", strerror(-err));
	free(buf);
	return err;
}

static int tcp_pair(int lfd, const struct sockaddr_in *sin, int *a, int *b)
{
	*a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*a < 0)
		return -errno;
	if (connect(*a, (const struct sockaddr *)sin, sizeof(*sin)))
		return -errno;
	*b = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	return *b < 0 ? -errno : 0;
}

int fg_splice_probe(enum fg_l7_mode mode, struct fg_sockmap *sm, __u64 bytes, __u64 msg_bytes,
		    unsigned deadline_ms, struct fg_splice_result *res)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t slen = sizeof(sin);
	struct probe *pr;
	pthread_t tw, tr;
	bool tw_on = false, tr_on = false;
	double t0, c0, m0;
	int lfd = -1, err, i, one = 1;
	__u64 x = 0x9E3779B97F4A7C15ULL;

	memset(res, 0, sizeof(*res));
	res->mode = mode;
	if (mode == FG_L7_AUTO || (mode == FG_L7_SOCKMAP && !sm)) {
		snprintf(res->why, sizeof(res->why), "no sockmap object");
		return -EINVAL;
	}
	pr = calloc(1, sizeof(*pr));
	if (!pr)
		return -ENOMEM;
	pr->mode = mode;
	pr->sm = sm;
	pr->bytes = bytes;
	pr->msg_bytes = msg_bytes ? msg_bytes : bytes;
	pr->w = pr->u = pr->c = pr->r = -1;
	pr->pat = malloc(PROBE_PAT);
	if (!pr->pat) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < PROBE_PAT; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		pr->pat[i] = (unsigned char)x;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 4) ||
	    getsockname(lfd, (struct sockaddr *)&sin, &slen)) {
		err = -errno;
		goto out;
	}
	err = tcp_pair(lfd, &sin, &pr->w, &pr->u);
	if (!err)
		err = tcp_pair(lfd, &sin, &pr->c, &pr->r);
	if (err)
		goto out;
	setsockopt(pr->c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (mode == FG_L7_SOCKMAP) {
		err = fg_sockmap_add(sm, pr->u, &pr->u_cookie);
		if (!err)
			err = fg_sockmap_add_peer(sm, pr->c, &pr->c_cookie);
		if (err) {
			snprintf(pr->why, sizeof(pr->why), "cannot add sockets to the sockhash: %s",
				 strerror(-err));
			goto out;
		}
		err = fg_tcp_written(pr->c, &pr->c_base);
		if (err) {
			snprintf(pr->why, sizeof(pr->why), "TCP_INFO: %s", strerror(-err));
			goto out;
		}
	}
	pr->deadline = ms_now() + deadline_ms;
	m0 = machine_busy();
	c0 = ts_sec(CLOCK_THREAD_CPUTIME_ID);
	t0 = ts_sec(CLOCK_MONOTONIC);
	if (pthread_create(&tr, NULL, probe_reader, pr) == 0)
		tr_on = true;
	if (pthread_create(&tw, NULL, probe_writer, pr) == 0)
		tw_on = true;
	if (!tr_on || !tw_on) {
		err = -EAGAIN;
		goto out;
	}
	err = probe_agent(pr);
	res->agent_cpu = ts_sec(CLOCK_THREAD_CPUTIME_ID) - c0;
	shutdown(pr->c, SHUT_WR);
	if (err) {
		/* Unblock the threads. */
		shutdown(pr->u, SHUT_RDWR);
		shutdown(pr->r, SHUT_RDWR);
	}
	pthread_join(tw, NULL);
	tw_on = false;
	/* The reader ends with the FIN after the last redirected byte. */
	{
		__u64 stop = pr->deadline + 2000;

		while (ms_now() < stop) {
			struct timespec ts = { 0, 1000000 };

			if (pthread_tryjoin_np(tr, NULL) == 0) {
				tr_on = false;
				break;
			}
			nanosleep(&ts, NULL);
		}
		if (tr_on) {
			shutdown(pr->r, SHUT_RDWR);
			pthread_join(tr, NULL);
			tr_on = false;
			if (!err) {
				err = -ETIMEDOUT;
				snprintf(pr->why, sizeof(pr->why), "the client did not see the end");
			}
		}
	}
	res->seconds = ts_sec(CLOCK_MONOTONIC) - t0;
	res->system_cpu = machine_busy() - m0;
	res->bytes = pr->w_bytes;
	res->windows = pr->windows;
	res->kernel_bytes = pr->kernel_bytes;
	if (!err && (pr->w_err || pr->r_err)) {
		err = pr->w_err ? pr->w_err : pr->r_err;
		snprintf(pr->why, sizeof(pr->why), "%s side: %s", pr->w_err ? "upstream" : "client",
			 strerror(-err));
	}
	if (!err && (pr->r_bytes != pr->bytes + ((pr->bytes + pr->msg_bytes - 1) / pr->msg_bytes) *
							  PROBE_HDR ||
		     pr->r_hash != pr->w_hash)) {
		err = -EBADMSG;
		snprintf(pr->why, sizeof(pr->why),
			 "data differ: client got %llu bytes, checksum %s",
			 (unsigned long long)pr->r_bytes,
			 pr->r_hash == pr->w_hash ? "equal" : "different");
	}
	res->ok = !err;
	if (res->seconds > 0)
		res->gbps = res->bytes * 8.0 / res->seconds / 1e9;
out:
	if (tw_on || tr_on) {
		shutdown(pr->u, SHUT_RDWR);
		shutdown(pr->r, SHUT_RDWR);
		shutdown(pr->w, SHUT_RDWR);
		if (tw_on)
			pthread_join(tw, NULL);
		if (tr_on)
			pthread_join(tr, NULL);
	}
	if (err && !pr->why[0])
		snprintf(pr->why, sizeof(pr->why), "%s", strerror(-err));
	snprintf(res->why, sizeof(res->why), "%s", pr->why);
	if (mode == FG_L7_SOCKMAP && sm) {
		struct fg_sk_state st;

		if (pr->u_cookie && !fg_sockmap_state(sm, pr->u_cookie, &st))
			res->repeated_bytes = st.overlap;
		if (pr->u_cookie)
			fg_sockmap_forget(sm, pr->u_cookie);
		if (pr->c_cookie)
			fg_sockmap_forget(sm, pr->c_cookie);
	}
	for (i = 0; i < 4; i++) {
		int fd = i == 0 ? pr->w : i == 1 ? pr->u : i == 2 ? pr->c : pr->r;

		if (fd >= 0)
			close(fd);
	}
	if (lfd >= 0)
		close(lfd);
	free(pr->pat);
	free(pr);
	return err;
}

enum fg_l7_mode fg_splice_choose(struct fg_sockmap *sm, char *why, size_t len)
{
	struct fg_splice_result r;
	int err;

	/* sockmap is not a candidate: it measured no faster than splice on
	 * loopback (docs/performance.md "L7 splice modes"), costs a kernel
	 * work item per redirected skb and, against a sender faster than the
	 * agent, loses most windows to the ordering rule. */
	(void)sm;
	err = fg_splice_probe(FG_L7_SPLICE, NULL, 8 << 20, 1 << 20, 2000, &r);
	if (!err) {
		snprintf(why, len, "auto: splice probe passed (8 MiB, %.1f Gbit/s)", r.gbps);
		return FG_L7_SPLICE;
	}
	snprintf(why, len, "auto: splice probe failed (%s); copy", r.why);
	return FG_L7_COPY;
}

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * How the L7 proxy moves body bytes it does not need to look at
 * (docs/architecture.md "L7 data path", docs/performance.md "L7 splice
 * modes"):
 *
 *   copy     recv() into a user buffer, send() out (always works)
 *   splice   splice(2) socket -> pipe -> socket: no copy to user space,
 *            still one system call pair per chunk from the agent
 *   sockmap  the kernel redirects them (bpf/sockmap.bpf.c): the agent
 *            opens a window "the next N bytes of socket S go to socket P"
 *            and sees neither the bytes nor a system call per chunk
 *
 * The request and response heads (and chunk-size lines) always reach the
 * agent, whatever the mode.
 *
 * fg_splice_probe() moves framed data through one mode over loopback
 * (upstream writer -> agent -> client reader, checksum compared, within a
 * deadline) and measures it; fg_splice_choose() is what `auto` runs at
 * start-up.
 */
#ifndef FG_SPLICE_H
#define FG_SPLICE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <linux/types.h>

#include "fleetgate_sockmap.h"

enum fg_l7_mode {
	FG_L7_AUTO = 0,
	FG_L7_SOCKMAP,
	FG_L7_SPLICE,
	FG_L7_COPY,
};

const char *fg_l7_mode_name(enum fg_l7_mode mode);
/* "auto", "sockmap", "splice", "copy"; -EINVAL otherwise. */
int fg_l7_mode_parse(const char *s, enum fg_l7_mode *mode);

/* ---------- sockmap ---------- */

struct fg_sockmap;

/* Loads bpf/sockmap.bpf.c through its skeleton and attaches the verdict
 * program to the sockhash. pin_path (may be NULL) pins the maps by name
 * there, as the XDP object's are. */
int fg_sockmap_open(struct fg_sockmap **out, const char *pin_path);
/* NULL is fine. remove_pins unpins what fg_sockmap_open pinned. */
void fg_sockmap_close(struct fg_sockmap *sm, bool remove_pins);
/* Puts a TCP socket into the sockhash (before it carries any byte: bytes
 * queued before are seen by the program only when more arrive) and
 * creates its state. *cookie is its key. */
int fg_sockmap_add(struct fg_sockmap *sm, int fd, __u64 *cookie);
/* Puts a TCP socket into fg_sk_peers: a redirect target only (a psock, no
 * program: its own receive path is untouched). *cookie is its key. */
int fg_sockmap_add_peer(struct fg_sockmap *sm, int fd, __u64 *cookie);
/* Deletes the state of a socket (closing it removes it from the map). */
void fg_sockmap_forget(struct fg_sockmap *sm, __u64 cookie);
/* Opens window gen on socket `cookie`: its stream bytes [start, start +
 * len) go to `peer`, provided the program is exactly at start. */
int fg_sockmap_window(struct fg_sockmap *sm, __u64 cookie, __u64 gen, __u64 start, __u64 len,
		      __u64 peer);
int fg_sockmap_state(struct fg_sockmap *sm, __u64 cookie, struct fg_sk_state *st);
/* Takes the window of `cookie` (fd: its socket) back and returns the
 * final state: after it, the program redirects nothing more for that
 * window, and st says whether it was adopted (st->gen) and what it moved
 * (st->total_redirected). The agent's only way to give up on a window
 * whose fate is not known yet (readable socket, upstream closed). */
int fg_sockmap_withdraw(struct fg_sockmap *sm, __u64 cookie, int fd, struct fg_sk_state *st);
/* The program met repeated bytes it could not remove (fg_sk_state.broken):
 * what was read from the socket since may hold them. */
bool fg_sockmap_broken(struct fg_sockmap *sm, __u64 cookie);
/* Sockets in the map (for stats); -errno on failure. */
long fg_sockmap_count(struct fg_sockmap *sm);

/* Bytes ever written into a TCP socket's stream (its write_seq - ISN), from
 * one TCP_INFO snapshot: what the agent and the kernel's redirects put
 * there. The agent compares it with what it expects before writing itself
 * after a window (the redirect goes through a work queue). */
int fg_tcp_written(int fd, __u64 *out);

/* ---------- splice(2) ---------- */

struct fg_pipe {
	int rd, wr;
	size_t len;   /* bytes in the pipe */
};

/* A non-blocking pipe (1 MiB when allowed). */
int fg_pipe_open(struct fg_pipe *p);
void fg_pipe_close(struct fg_pipe *p);
/* Socket -> pipe, at most max bytes: >0 moved, 0 EOF, -EAGAIN, -errno. */
ssize_t fg_pipe_fill(struct fg_pipe *p, int from, size_t max);
/* Pipe -> socket: >=0 moved (the pipe may keep some), -errno. */
ssize_t fg_pipe_drain(struct fg_pipe *p, int to);

/* ---------- probe and measurement ---------- */

struct fg_splice_result {
	enum fg_l7_mode mode;
	bool ok;
	__u64 bytes;         /* payload moved */
	double seconds;      /* wall clock */
	double gbps;         /* payload Gbit/s */
	double agent_cpu;    /* CPU seconds of the agent's thread */
	double system_cpu;   /* CPU seconds of the whole machine (all CPUs,
			      * /proc/stat): includes softirq and kworkers */
	__u64 windows;       /* sockmap: windows opened */
	__u64 kernel_bytes;  /* sockmap: bytes the kernel redirected */
	__u64 repeated_bytes; /* sockmap: repeated TCP bytes the program cut */
	char why[160];       /* why it failed */
};

/*
 * Moves `bytes` of payload (messages of msg_bytes, each behind a 16-byte
 * header the agent reads and forwards itself) from an upstream writer
 * thread through the agent's loop in `mode` to a client reader thread,
 * over loopback TCP. ok when the reader got exactly what was written
 * (checksum) within deadline_ms. sm is needed for FG_L7_SOCKMAP only.
 */
int fg_splice_probe(enum fg_l7_mode mode, struct fg_sockmap *sm, __u64 bytes, __u64 msg_bytes,
		    unsigned deadline_ms, struct fg_splice_result *res);

/*
 * `auto`: probes splice with 8 MiB in 1 MiB messages (2 s deadline) and
 * returns it when it passed, else copy; *why says what happened. sockmap
 * is only used when asked for (docs/performance.md "L7 splice modes").
 */
enum fg_l7_mode fg_splice_choose(struct fg_sockmap *sm, char *why, size_t len);

#endif

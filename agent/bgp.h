/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Announcing the gateway's VIPs over BGP through BIRD 2 (docs/operations.md,
 * "Running several gateway nodes").
 *
 * The routing daemon does BGP, BFD and everything a router expects; the
 * agent only tells it whether this node should take traffic. It does so
 * with two things it owns:
 *
 *  - an include file (--bgp-include) holding one BIRD static protocol per
 *    address family, "fleetgate_vip4" / "fleetgate_vip6", with a /32 or
 *    /128 device route for each VIP through the liveness device. It is
 *    written at start (atomically, by rename) and BIRD is asked to read it
 *    again ("configure" on its control socket, --bgp-socket); the
 *    operator's BGP protocols export what these protocols hold.
 *  - the liveness device (--bgp-device, a tun device the agent creates and
 *    holds open). BIRD keeps a device route only while its device is up:
 *    the agent sets it up to announce and down to withdraw, which BIRD
 *    sees at once through netlink; no reconfiguration, nothing parsed, and
 *    nothing can block the agent. The kernel removes the device when the
 *    agent's process ends, however it ends (SIGKILL, a crash, the OOM
 *    killer), so a dead agent is withdrawn too and the include file left
 *    on disk can never announce a node whose agent is gone.
 *
 * Single-threaded; nothing here waits longer than the control socket's
 * timeout (1 s), and only at start and on retries of a failed configure.
 */
#ifndef FG_BGP_H
#define FG_BGP_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "fleetgate.h"

#define FG_BGP_DEF_SOCKET "/run/bird/bird.ctl"
#define FG_BGP_DEF_DEVICE "fleetgate-vip"
#define FG_BGP_PROTO4 "fleetgate_vip4"
#define FG_BGP_PROTO6 "fleetgate_vip6"
#define FG_BGP_MAX_VIPS 8

struct fg_bgp_vip {
	int family; /* FG_AF_INET / FG_AF_INET6 */
	struct fg_addr addr;
};

struct fg_bgp_opts {
	const char *include_path; /* required */
	const char *socket_path;  /* NULL: FG_BGP_DEF_SOCKET */
	const char *device;       /* NULL: FG_BGP_DEF_DEVICE */
	unsigned timeout_ms;      /* control socket, 0: 1000 */
};

struct fg_bgp;

/*
 * Creates the liveness device (down), writes the include file and asks
 * BIRD to read it. A BIRD that does not answer is not an error here (it
 * reads the file when it starts; fg_bgp_tick retries the configure); a
 * device that cannot be created, or a file that cannot be written, is.
 */
int fg_bgp_new(struct fg_bgp **out, const struct fg_bgp_opts *opts,
	       const struct fg_bgp_vip *vips, size_t n);
/* Announce (device up) or withdraw (device down); reason says why, for
 * the log and fg_bgp_status. 0 or -errno. */
int fg_bgp_set(struct fg_bgp *b, bool announce, const char *reason);
bool fg_bgp_announced(const struct fg_bgp *b);
/* Retries a configure BIRD has not accepted yet (backoff 1 s .. 30 s). */
void fg_bgp_tick(struct fg_bgp *b);
/* {"announced", "reason", "since", "device", "include", "socket",
 *  "configured", "birdError"} (new reference). */
json_t *fg_bgp_status(const struct fg_bgp *b);
/* Withdraws (the device goes away with its file descriptor). */
void fg_bgp_free(struct fg_bgp *b);

/* The include file's text for these VIPs (for tests). Returns the length,
 * or -ENOSPC. */
int fg_bgp_render(char *buf, size_t len, const char *device, const struct fg_bgp_vip *vips,
		  size_t n);

/*
 * One command on BIRD's control socket: reads the greeting, sends cmd,
 * collects the reply up to its last line. Returns the reply code of that
 * line (e.g. 3 "Reconfigured", 9001 a parse error), or -errno (no socket,
 * timeout). reply (may be NULL) gets the reply's text, one line per
 * reply line without the codes.
 */
int fg_bird_call(const char *socket_path, const char *cmd, unsigned timeout_ms, char *reply,
		 size_t len);

#endif

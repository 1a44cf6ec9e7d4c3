/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Active health checks of the backends in the backends map, and failover:
 * a backend that fails `fall` probes in a row is marked down and its
 * service's rings are rebuilt without it (fg_dp_rebuild_services); one that
 * passes `rise` probes in a row comes back. Flows pinned to a backend that
 * went down are re-selected by the XDP program on their next packet.
 *
 * A probe is a TCP connect, or, for the backends of HTTP routes when
 * http_path is set, a GET of that path answered with a 2xx or 3xx status.
 * Probes are event driven: the agent polls fg_health_fd() and calls
 * fg_health_process(); fg_health_tick() on every interval fails the probes
 * not done within timeout_ms of their start and, once every probe of the
 * round is done, applies it and starts the next one. At most max_inflight
 * probes (sockets) are open at once, so the prober's file descriptors are
 * bounded whatever the number of endpoints. Nothing here ever waits.
 *
 * A probe that cannot run for a reason of the gateway's own (no file
 * descriptor, no local port, no memory: fg_local_errno) counts neither as
 * a failure nor as a success: it is counted as a local error and logged
 * once per second (resources.h).
 */
#ifndef FG_HEALTH_H
#define FG_HEALTH_H

#include <jansson.h>

#include "dataplane.h"
#include "resources.h"

#define FG_HEALTH_DEF_MAX_INFLIGHT 256

struct fg_health_opts {
	unsigned int timeout_ms; /* a probe's deadline (default 200) */
	unsigned int fall;       /* failures in a row to go down (default 2) */
	unsigned int rise;       /* successes in a row to come up (default 2) */
	const char *http_path;   /* GET this path on HTTP backends; NULL: TCP only */
	unsigned int max_inflight; /* probes open at once (default 256) */
};

struct fg_health;

int fg_health_new(struct fg_health **out, struct fg_dataplane *dp,
		  const struct fg_health_opts *opts);
/* An epoll fd to poll for the probes' progress. */
int fg_health_fd(const struct fg_health *h);
/* Advances the probes that have events; finishes the round when all are
 * done. */
void fg_health_process(struct fg_health *h);
/* On every interval: closes the round in flight once its deadline passed
 * (applying the state changes) and starts the next. Returns the number of
 * state changes applied, or -errno. */
int fg_health_tick(struct fg_health *h);
/* {"localErrors": {...}, "roundProbes": N, "inflight": N} (new reference). */
json_t *fg_health_stats(const struct fg_health *h);
const struct fg_local_errors *fg_health_local_errors(const struct fg_health *h);
void fg_health_free(struct fg_health *h);

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Active health checks of the backends in the backends map, and failover:
 * a backend that fails `fall` probes in a row is marked down and its
 * service's rings are rebuilt without it (fg_dp_rebuild_service); one that
 * passes `rise` probes in a row comes back. Flows pinned to a backend that
 * went down are re-selected by the XDP program on their next packet.
 */
#ifndef FG_HEALTH_H
#define FG_HEALTH_H

#include "dataplane.h"

struct fg_health_opts {
	unsigned int timeout_ms; /* a probe's deadline (default 200) */
	unsigned int fall;       /* failures in a row to go down (default 2) */
	unsigned int rise;       /* successes in a row to come up (default 2) */
};

struct fg_health;

int fg_health_new(struct fg_health **out, struct fg_dataplane *dp,
		  const struct fg_health_opts *opts);
/* Called on every tick: collects the previous round of probes (once
 * timeout_ms has passed since it started; a connect not done by then
 * failed), applies the state changes, and starts the next round of
 * non-blocking connects. Never waits. Returns the number of changes or
 * -errno. */
int fg_health_run_once(struct fg_health *h);
void fg_health_free(struct fg_health *h);

#endif

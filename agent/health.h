/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Active health checks of the backends in the backends map, and failover:
 * a backend that fails `fall` probes in a row is marked down and the rings
 * of the services that have it are rebuilt without it
 * (fg_dp_backends_changed); one that passes `rise` probes in a row comes
 * back. Flows pinned to a backend that went down are re-selected by the XDP
 * program on their next packet. A backend the proxy marked down (passive
 * health) comes back after `rise` passes counted from then.
 *
 * A probe is a TCP connect (closed with a reset: no TIME_WAIT on the
 * gateway), or, for the backends of HTTP routes when http_path is set, a
 * GET of that path answered with a 2xx or 3xx status.
 *
 * Scheduling. Every endpoint (backend id) is probed once per interval, at
 * its own offset within the interval: the id's bits reversed, so the ids
 * the control plane hands out (dense from 1) fall evenly over the interval
 * whatever their number, and a scheduling step of S ms starts about
 * endpoints x S / interval probes, never a whole round at once. At most
 * max_inflight probes (sockets) are open at once; an endpoint whose turn
 * comes while its previous probe is still queued or open is not probed
 * twice (counted as "late": the prober is short of capacity; each endpoint
 * still gets its turn, less often, and fg_health_tick warns at most once a
 * minute that a longer interval would help).
 *
 * Endpoints are picked up from the data plane's in-process mirror of the
 * backends map (fg_dp_backend_view, no system call), in slices of the id
 * space below fg_dp_backend_high, whenever the routing epoch moved: a new
 * endpoint is scheduled, one that became inactive is dropped, one whose
 * address changed starts its counts again.
 *
 * State changes found during a step are applied together, at most once per
 * step (FG_HEALTH_STEP_MS): fg_dp_set_backend_up for each and ONE summary
 * log line, e.g.
 *   health: 3 backends DOWN (backend 7 10.0.1.2:8080 of cluster c7fb... is
 *   DOWN, backend 9 ... is DOWN, +1 more), 1 UP (backend 4 ... is UP)
 * naming at most FG_HEALTH_LOG_EXAMPLES of each (every change is logged at
 * debug level, -v); then the rings of the services that have the changed
 * backends are rebuilt with fg_dp_backends_changed, oldest changes first,
 * for about FG_HEALTH_REBUILD_BUDGET_US per step. A step with a change or
 * two does that in one call; after a storm of changes (a rebuild costs
 * milliseconds per service) the rings catch up over several steps, XDP
 * skipping a down backend meanwhile.
 *
 * Bounded work. Every call of fg_health_process()/fg_health_tick() does
 * about FG_HEALTH_BUDGET_US of probing (events, starts, a slice of the
 * scan), FG_HEALTH_FLUSH_BUDGET_US of UP flags and
 * FG_HEALTH_REBUILD_BUDGET_US of ring rebuilds at most (plus one system
 * call, or one service's rebuild, past the budget), and leaves the rest
 * for the next call: the event loop that drives the prober is never held
 * up for long, whatever the number of endpoints. The descriptor of
 * fg_health_fd() holds the probes' sockets, the step timer (armed while
 * there are endpoints) and a wake-up for probes left over by the budget,
 * so an event loop only has to poll it and call fg_health_process() when
 * it is readable, and fg_health_tick() now and then (the agent: every
 * interval) to notice the first endpoints.
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
#define FG_HEALTH_DEF_INTERVAL_MS 250
#define FG_HEALTH_STEP_MS 5           /* scheduling step (at most the interval) */
#define FG_HEALTH_BUDGET_US 2000      /* work per call, then the rest waits */
#define FG_HEALTH_FLUSH_BUDGET_US 1000 /* UP flags written per step */
#define FG_HEALTH_REBUILD_BUDGET_US 2000 /* ring rebuilds per step (aimed at) */
#define FG_HEALTH_LOG_EXAMPLES 3      /* backends named per direction in a summary */

struct fg_health_opts {
	unsigned int interval_ms; /* each endpoint probed once per interval (default 250) */
	unsigned int timeout_ms; /* a probe's deadline (default 200) */
	unsigned int fall;       /* failures in a row to go down (default 2) */
	unsigned int rise;       /* successes in a row to come up (default 2) */
	const char *http_path;   /* GET this path on HTTP backends; NULL: TCP only */
	unsigned int max_inflight; /* probes open at once (default 256) */
};

/* Totals since fg_health_new (tests, stats). */
struct fg_health_counters {
	__u64 endpoints;  /* endpoints scheduled now */
	__u64 inflight;   /* probes open now */
	__u64 queued;     /* probes due, waiting for a free slot or the next call */
	__u64 started;    /* probes started */
	__u64 passed;
	__u64 failed;     /* refused, reset, bad status, ... or timed out */
	__u64 timeouts;   /* of which timed out */
	__u64 local;      /* not counted either way (fg_local_errno) */
	__u64 late;       /* turns skipped: the previous probe was still queued or open */
	__u64 ups;        /* backends marked up */
	__u64 downs;      /* backends marked down */
	__u64 summaries;  /* summary log lines (steps that applied changes) */
	__u64 steps;      /* scheduling steps taken */
	__u64 scans;      /* complete passes over the id space */
	__u64 max_call_us; /* the longest fg_health_process/_tick call */
	__u64 max_rebuild_us; /* the longest fg_dp_backends_changed call */
	__u64 rebuilds_pending; /* backends changed, their rings not rebuilt yet */
};

struct fg_health;

int fg_health_new(struct fg_health **out, struct fg_dataplane *dp,
		  const struct fg_health_opts *opts);
/* An epoll fd to poll: readable when probes progress, a step is due or
 * work was left over. */
int fg_health_fd(const struct fg_health *h);
/* Does what is due, within the budget: probe events, timeouts, the probes
 * whose turn came, a slice of the endpoint scan, and (once per step) the
 * state changes found. */
void fg_health_process(struct fg_health *h);
/* The same, called on a timer (the agent: every interval), which also
 * flushes the local errors' log and notices endpoints while no step timer
 * runs. Returns the number of state changes applied by this call, or
 * -errno. */
int fg_health_tick(struct fg_health *h);
/* {"localErrors": {...}, "endpoints": N, "inflight": N, "queued": N,
 *  "probes": N, "late": N, "summaries": N, "rebuildsPending": N} (new
 *  reference). */
json_t *fg_health_stats(const struct fg_health *h);
void fg_health_counters(const struct fg_health *h, struct fg_health_counters *c);
const struct fg_local_errors *fg_health_local_errors(const struct fg_health *h);
void fg_health_free(struct fg_health *h);

#endif

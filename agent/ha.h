/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Several gateway nodes: when this node should take traffic, and telling
 * the routers (bgp.h) and the other nodes (lease.h) so.
 *
 * The node is ready, and its VIPs are announced, while all of this holds:
 *  - a gateway (MseIngressConfig) is Listening (the HTTP listener is open
 *    and the data plane loaded);
 *  - that gateway has a route (an accepted Ingress of its class) or a
 *    LoadBalancer Service is balanced, and at least one of them has a
 *    healthy cluster: its live cluster ring in the maps is not empty (so
 *    the health probes found an endpoint up);
 *  - the node's own check passes: XDP still attached to every --iface, the
 *    VIP an address of this node, and a socket listening on VIP:port;
 *  - it is not draining.
 * It announces once that has held for hold_ms (so a restarted node's
 * probes have had a round), and withdraws at once when any of it stops
 * holding, saying why in the log.
 *
 * Draining (SIGTERM): the VIPs are withdrawn first, the node keeps serving
 * what still reaches it, and fg_ha_drain_done() says when to exit:
 * after drain_s, or once the HTTP proxy has no connection left (not
 * before 1 s, so the routers have taken the withdrawal).
 */
#ifndef FG_HA_H
#define FG_HA_H

#include <stdbool.h>
#include <jansson.h>

#include "control.h"
#include "dataplane.h"

#define FG_HA_DEF_DRAIN_S 10

struct fg_ha_opts {
	/* BGP through BIRD; NULL bgp_include: no BGP. */
	const char *bgp_include;
	const char *bgp_socket;
	const char *bgp_device;
	/* Leases; NULL node_name: none. */
	const char *kubeconfig;   /* NULL: in-cluster */
	const char *kube_context;
	const char *lease_namespace;
	const char *node_name;
	unsigned lease_duration_s;
	/* readiness */
	const char *listen;       /* "ADDR:PORT" */
	const int *ifindex;       /* interfaces XDP must stay attached to */
	const char *const *ifnames;
	int n_ifaces;
	unsigned hold_ms;         /* 0: 1000 */
	unsigned drain_s;
};

struct fg_ha;

int fg_ha_new(struct fg_ha **out, const struct fg_ha_opts *opts, struct fg_control *control,
	      struct fg_dataplane *dp);
/* The control plane may have a new plan (after fg_control_process()):
 * what depends on it is rebuilt at the next fg_ha_update(). */
void fg_ha_plan_changed(struct fg_ha *h);
/* Re-evaluates readiness: call after the control plane's events and on
 * every timer tick. O(gateways) unless the plan or the maps changed. */
void fg_ha_update(struct fg_ha *h);
/* Whether SIGTERM should drain (BGP is on): then withdraws and starts the
 * drain. Returns false when there is nothing to drain. */
bool fg_ha_drain_start(struct fg_ha *h, const char *why);
bool fg_ha_draining(const struct fg_ha *h);
/* Whether the drain is over, given the proxy's open client connections
 * (-1: unknown). */
bool fg_ha_drain_done(struct fg_ha *h, int open_conns);
/* Adds what this module knows to an admin answer: REPLICAS of every
 * MseIngressConfig ("replicas": "LIVE/DESIRED", "liveReplicas",
 * "desiredReplicas", "announced") and, for "status", "bgp" and "lease". */
void fg_ha_admin(struct fg_ha *h, json_t *request, json_t *answer);
/* Withdraws, releases leadership and deletes the node's Lease. */
void fg_ha_free(struct fg_ha *h);

#endif

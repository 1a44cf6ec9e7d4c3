/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Several gateway nodes on one fleet, through the Kubernetes API only
 * (coordination.k8s.io/v1 Leases; docs/operations.md "Running several
 * gateway nodes"):
 *
 *  - heartbeat: every node keeps the Lease "fleetgate-node-<node name>" in
 *    the lease namespace, labelled fleetgate.io/lease=node, renewed every
 *    duration/3 and updated at once when what it announces changes. Its
 *    annotations say what the node does: fleetgate.io/announced
 *    ("true"/"false"), fleetgate.io/vips (comma-separated) and
 *    fleetgate.io/serving (the MseIngressConfigs it serves: Listening and
 *    announced). A node counts as a live replica of a gateway while its
 *    Lease keeps being renewed (renewTime changes, as observed on this
 *    node's clock: no clock comparison between nodes, as in client-go's
 *    leader election) and it serves that gateway. A node that stops
 *    cleanly deletes its Lease.
 *  - status writer: the Lease "fleetgate-status-writer" elects one node the
 *    way client-go's leaderelection does (get; create, or update with the
 *    resourceVersion read, when free, expired or ours; a 409 Conflict
 *    means another node won). Only that node writes status: each
 *    MseIngressConfig's status (status, remoteClusters, message) through
 *    its /status subresource, and status.loadBalancer.ingress of every
 *    Ingress of its classes (the VIPs of the live nodes when accepted,
 *    none when not) and of every LoadBalancer Service it balances, as JSON
 *    merge patches, only when they change (and again every 30 s). A
 *    leader that cannot renew for 2/3 of the duration stops writing; one
 *    that stops cleanly releases the Lease (empty holder) so another takes
 *    over at once.
 *
 * All API calls run on one worker thread (blocking libcurl, 5 s timeout),
 * never on the agent's event loop.
 */
#ifndef FG_LEASE_H
#define FG_LEASE_H

#include <stdbool.h>
#include <jansson.h>

#define FG_LEASE_DEF_NAMESPACE "fleetgate-system"
#define FG_LEASE_DEF_DURATION 15
#define FG_LEASE_LEADER_NAME "fleetgate-status-writer"
#define FG_LEASE_NODE_PREFIX "fleetgate-node-"

struct fg_lease_opts {
	const char *kubeconfig;  /* NULL: in-cluster */
	const char *context;     /* NULL: current-context */
	const char *namespace;   /* NULL: FG_LEASE_DEF_NAMESPACE */
	const char *node_name;   /* required: the holder identity */
	unsigned duration_s;     /* 0: FG_LEASE_DEF_DURATION (at least 1) */
	bool no_status;          /* heartbeat only, never stand for election */
};

struct fg_lease;

int fg_lease_new(struct fg_lease **out, const struct fg_lease_opts *opts);
/*
 * What this node does and what the status should say, from the agent's
 * thread, whenever it may have changed (cheap when it has not):
 *   {"announced": bool, "vips": ["10.0.9.1"], "serving": ["gw", ...],
 *    "gateways": [{"name": N, "status": {status object as routes.c
 *                  computes it}}],
 *    "ingresses": [{"namespace", "name", "accepted": bool}],
 *    "services": [{"namespace", "name"}]}
 * ingresses lists only those of the gateways' classes. Takes the
 * reference.
 */
void fg_lease_publish(struct fg_lease *l, json_t *state);
/* Live replicas serving gateway, or -1 before the first list of Leases. */
int fg_lease_replicas(struct fg_lease *l, const char *gateway);
bool fg_lease_leader(struct fg_lease *l);
/* {"node", "namespace", "leader": bool, "holder", "nodes": [{"name",
 *  "live", "announced", "serving", "vips"}], "error"} (new reference). */
json_t *fg_lease_status(struct fg_lease *l);
/* Releases leadership and deletes the node's Lease (waits at most ~2 s
 * for the API), then stops the worker. NULL is fine. */
void fg_lease_free(struct fg_lease *l);

/* "node-1.Example" -> "fleetgate-node-node-1.example" (a valid object
 * name). Returns 0 or -EINVAL (nothing usable left). */
int fg_lease_node_name(const char *node, char *buf, size_t len);

#endif

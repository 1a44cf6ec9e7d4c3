/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The control plane inside the agent: watches the config directory, builds
 * a snapshot of the fleet's and clusters' objects, computes the plan
 * (routes.c), writes it into the maps (apply.c), and answers fleetgatectl's
 * `get` requests on the admin socket.
 */
#ifndef FG_CONTROL_H
#define FG_CONTROL_H

#include <jansson.h>

#include "dataplane.h"
#include "routes.h"

struct fg_control_opts {
	const char *config_dir;  /* NULL: no config directory */
	const char *listen;      /* "ADDR:PORT" or "[ADDR6]:PORT", NULL: none */
	const char *kubeconfig;  /* the fleet's kubeconfig, "in-cluster", or NULL */
	const char *kube_context; /* NULL: current-context */
	const char *const *cluster_kubeconfigs; /* "ID=PATH[#CONTEXT]", NULL-terminated */
	bool cluster_secrets;    /* member clusters from labelled fleet Secrets */
	/* The certificate for names no Ingress has one for (PEM files). NULL:
	 * a self-signed one is generated when TLS is first needed. */
	const char *default_cert;
	const char *default_key;
};

struct fg_control;
struct fg_tls_store;

int fg_control_new(struct fg_control **out, struct fg_dataplane *dp,
		   const struct fg_control_opts *opts);
void fg_control_free(struct fg_control *c);
/* One fd to poll for the config directory and the Kubernetes API. */
int fg_control_fd(const struct fg_control *c);
/* Handles config directory events; recomputes and applies on change. */
int fg_control_process(struct fg_control *c);
/* Recomputes the plan from the current objects and applies it. */
int fg_control_recompute(struct fg_control *c);
/* Lifecycle inputs of the gateway status. */
void fg_control_set_state(struct fg_control *c, bool dataplane_ready, bool listening);
/* The same, and the plan's gateways take the new state at once (their
 * phase): no route is recomputed, unless changes are pending or there is
 * no plan yet. 0 or -errno of the computation. */
int fg_control_update_state(struct fg_control *c, bool dataplane_ready, bool listening);
/* The current plan (NULL before the first computation). */
const struct fg_plan *fg_control_plan(const struct fg_control *c);
/* Changes whenever the plan's routes, canaries, policies or targets may
 * have changed (a new plan, or one patched in place); not when only
 * endpoints changed. Readable from any thread. */
unsigned long fg_control_plan_gen(const struct fg_control *c);
/* Changes only with a new plan (a full computation): the same serial
 * means the same targets with the same service ids. Control thread. */
unsigned long fg_control_plan_serial(const struct fg_control *c);
/*
 * TLS (tls.h, tls_config.h): the SNI store of the current plan, a new
 * reference (the caller puts it), built on first use. A new store (a new
 * generation) is made whenever the certificates serving some name change:
 * an Ingress's spec.tls, a Secret edited, a certificate expiring or
 * becoming valid (a timer), and only then. Call from the control plane's
 * thread (as px_routes_publish does); NULL when no store can be made.
 */
struct fg_tls_store *fg_control_tls_store(struct fg_control *c);
/* The newest store's generation (0: none yet). Readable from any thread. */
unsigned long fg_control_tls_gen(const struct fg_control *c);
/* A fleet object ("Secret", "web", "ca") as the sources have it now
 * (borrowed: valid until the next fg_control_process), NULL when none.
 * Control thread only. */
json_t *fg_control_fleet_object(struct fg_control *c, const char *kind, const char *ns,
				const char *name);
/* Service id of a target in the data plane, or -ENOENT. */
int fg_control_service_id(struct fg_control *c, const struct fg_target *t);
/* Parses --listen "ADDR:PORT" / "[ADDR]:PORT". */
int fg_parse_listen(const char *s, struct fg_addr *addr, int *family, __u16 *port);
/* How the routes were computed so far. */
struct fg_control_stats {
	unsigned long long full;        /* whole computations */
	unsigned long long incremental; /* computations of what changed only */
	unsigned long long last_us;     /* the last one, applied, in microseconds */
	unsigned long long last_compute_us; /* of which route computation (whole ones) */
};
const struct fg_control_stats *fg_control_stats(const struct fg_control *c);
/* Admin socket handler. */
json_t *fg_control_admin(json_t *request, void *ctx);

#endif

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Ingress spec.tls against the fleet's Secrets: which host gets which
 * certificate, and why not. Part of the plan (routes.h: plan->tls, each
 * route's tls flag), computed from one place in fg_plan_compute() and
 * again on its own when only Secrets changed (fg_tls_plan_refresh).
 *
 * Rules (docs/operations.md "TLS"):
 *  - Only accepted, non-canary Ingresses count, in the plan's order (the
 *    oldest first). Each spec.tls[] item names hosts (none: the Ingress's
 *    rule hosts) and a secretName in the Ingress's namespace.
 *  - No secretName: the hosts are served with the default certificate, on
 *    purpose (state Default; the routes count as TLS).
 *  - The Secret missing, of another type, unreadable, the key not matching,
 *    or the certificate expired / not yet valid: the item's hosts are
 *    Rejected with that reason and get the default certificate. The
 *    Ingress stays accepted: its HTTP routes keep serving.
 *  - A host the certificate does not cover (DNS SANs, else the CN): that
 *    host is NotCovered (a warning, as ingress-nginx does: the default
 *    certificate serves it), the item's other hosts are fine.
 *  - A host that an older Ingress already gave another certificate:
 *    Conflict, the older one stays.
 *  - A route is tls when its host has a Ready or Default entry: exactly, or
 *    through a "*.suffix" entry for a name one label below.
 *
 * Parsed certificates are cached by Secret namespace/name and content
 * (the same JSON object is a hit at once; else a SHA-256 of type, tls.crt
 * and tls.key), so recomputations do not reparse unchanged Secrets.
 * Validity periods are checked at every computation against opts->now;
 * next_check says when the next one should be made because a certificate
 * expires or becomes valid.
 */
#ifndef FG_TLS_CONFIG_H
#define FG_TLS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>
#include <jansson.h>

#include "routes.h"
#include "tls.h"

enum fg_tls_state {
	FG_TLS_READY = 0,    /* the Secret's certificate serves the host */
	FG_TLS_DEFAULT,      /* no secretName: the default certificate, asked for */
	FG_TLS_REJECTED,     /* the Secret cannot be used: the default certificate */
	FG_TLS_NOT_COVERED,  /* the certificate does not cover the host: the default one */
	FG_TLS_CONFLICT,     /* an older Ingress gave the host another certificate */
};

struct fg_tls_host {
	char host[FG_HOST_LEN + 2];        /* lower case, "*.example.com" for wildcards */
	char ingress[FG_ID_LEN * 5 + 2];   /* namespace/name */
	char secret[FG_ID_LEN * 5 + 2];    /* namespace/name, "" without secretName */
	enum fg_tls_state state;
	char reason[FG_REASON_LEN];        /* "" when Ready or Default */
	struct fg_tls_cert *cert;          /* the Secret's certificate when it parsed (owned) */
};

struct fg_tls_plan {
	struct fg_tls_host *hosts;  /* in the Ingresses' order, then spec.tls order */
	size_t n_hosts;
	time_t next_check;          /* a certificate's validity changes then; 0: none */
};

/* Parsed certificates across computations (the control plane keeps one). */
struct fg_tls_cache;
int fg_tls_cache_new(struct fg_tls_cache **out);
void fg_tls_cache_free(struct fg_tls_cache *c);
/* Secrets parsed so far (cache misses), for the tests. */
unsigned long fg_tls_cache_parses(const struct fg_tls_cache *c);

/*
 * Computes plan->tls (replacing what was there) from the fleet's objects
 * and the plan's Ingress statuses, and sets every route's tls flag. cache
 * may be NULL (nothing kept); now 0 means time(NULL). *routes_changed
 * (may be NULL) says whether a route's tls flag changed. 0 or -ENOMEM.
 */
int fg_tls_plan_compute(json_t *fleet, struct fg_plan *plan, struct fg_tls_cache *cache,
			time_t now, bool *routes_changed);
void fg_tls_plan_free(struct fg_tls_plan *tp);

/* The store's entries: Ready hosts with their certificates (borrowed, in
 * plan order; the store keeps the first of a host). *out is malloc'ed. */
int fg_tls_plan_entries(const struct fg_tls_plan *tp, struct fg_tls_store_entry **out,
			size_t *n);
/*
 * What is wrong with an Ingress's TLS ("" when nothing, or it has none):
 * "host a.example.com: Secret web/site: tls.key does not match the
 * certificate in tls.crt (and 2 more)". Returns whether it has TLS hosts.
 */
bool fg_tls_plan_ingress(const struct fg_tls_plan *tp, const char *ingress, char *reason,
			 size_t len, size_t *n_hosts, size_t *n_ready);
const char *fg_tls_state_name(enum fg_tls_state s);
/* fleetgatectl get certificates: one item per host, then dflt (may be
 * NULL) as host "(default)". */
json_t *fg_tls_plan_json(const struct fg_tls_plan *tp, const struct fg_tls_cert *dflt);

#endif

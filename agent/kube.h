/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kubernetes API sources: the fleet's and each member cluster's objects,
 * read from their API servers by LIST then WATCH (the second object source
 * beside configdir.h, with the same (origin, object) shape).
 *
 *   fleet (origin NULL):   MseIngressConfig (mse.alibabacloud.com/v1alpha1),
 *                          Ingress (networking.k8s.io/v1), Service (v1),
 *                          Secret (v1) of type kubernetes.io/tls only
 *                          (fieldSelector), for Ingress spec.tls;
 *                          with cluster_secrets, also Secrets labelled
 *                          fleetgate.io/cluster-id (member kubeconfigs,
 *                          see below; never shown by fg_kube_foreach)
 *   cluster (origin ID):   Service, Endpoints (v1), EndpointSlice
 *                          (discovery.k8s.io/v1), Pod (v1)
 *
 * Protocol, per resource ("API concepts: efficient detection of changes"):
 * LIST ?limit=500 following metadata.continue, then WATCH from the list's
 * resourceVersion with allowWatchBookmarks and timeoutSeconds=300, keeping
 * the last resourceVersion seen (events and BOOKMARKs). A stream that ends
 * (timeout, server or proxy closing it) is resumed from that RV; HTTP 410
 * or an ERROR event with code 410 (and an expired continue token) leads to
 * a fresh LIST, whose result replaces the resource's objects. Failures to
 * connect or non-2xx answers are retried with exponential backoff (200 ms
 * doubling to 30 s, +-20% jitter) and make the source "failing" from the
 * first one: fg_kube_foreach_error() reports it with a reason until a
 * request to that resource succeeds again. A failing source KEEPS its last
 * known objects (the health probes decide whether its endpoints get
 * traffic; the control plane shows the cluster Failed). A 404 on a
 * resource (e.g. the MseIngressConfig CRD not installed) is not a failure:
 * the resource counts as empty, is logged once and retried every 30 s.
 *
 * Objects are keyed by (origin, apiVersion/kind, namespace, name); LIST
 * items get the kind/apiVersion they lack; metadata.managedFields is
 * dropped. Tokens, keys and Secret contents are never logged.
 *
 * Credentials come from a kubeconfig (file, or already parsed JSON, e.g.
 * from a Secret): the context (default current-context) names a cluster
 * (server, certificate-authority[-data], insecure-skip-tls-verify,
 * tls-server-name) and a user (client-certificate[-data] and
 * client-key[-data], token, tokenFile, username/password). Relative file
 * paths are relative to the kubeconfig's directory; tokenFile is re-read
 * for each request. exec and auth-provider users are not supported (the
 * source fails with that reason). With neither kubeconfig_path nor
 * kubeconfig, the in-cluster service account is used
 * (KUBERNETES_SERVICE_HOST/PORT, /var/run/secrets/kubernetes.io/serviceaccount).
 *
 * Member clusters from Secrets (cluster_secrets on the fleet source): a
 * Secret of the fleet labelled fleetgate.io/cluster-id=ID whose data has a
 * "kubeconfig" key (else "config", else "value") becomes the source of
 * cluster ID (current-context of that kubeconfig; relative paths are not
 * allowed in it); changing the Secret restarts that source, deleting it
 * removes it. A source added with fg_kube_add_source() for the same ID wins.
 *
 * Threading: one internal worker thread runs every transfer (libcurl multi).
 * The API below is for one (the agent's) thread: poll fg_kube_fd() for
 * POLLIN, then call fg_kube_process(); the foreach calls see the state as of
 * the last fg_kube_process().
 */
#ifndef FG_KUBE_H
#define FG_KUBE_H

#include <stdbool.h>
#include <jansson.h>

struct fg_kube_source_opts {
	const char *origin;          /* NULL: the fleet; else a cluster id */
	const char *kubeconfig_path; /* a kubeconfig file, or: */
	json_t *kubeconfig;          /* a parsed kubeconfig (borrowed; copied) */
	const char *context;         /* NULL: the kubeconfig's current-context */
	const char *namespace;       /* NULL: all namespaces */
	bool cluster_secrets;        /* fleet only: clusters from Secrets */
};

struct fg_kube;

/* 0 or -errno. Starts the worker thread. */
int fg_kube_new(struct fg_kube **out);
void fg_kube_free(struct fg_kube *k);

/*
 * Adds (or replaces: same origin) a source and starts reading it. Errors in
 * the kubeconfig (unreadable, no such context, unsupported auth) return
 * -EINVAL/-ENOENT/... after a pr_warn saying why; nothing is added then.
 */
int fg_kube_add_source(struct fg_kube *k, const struct fg_kube_source_opts *o);
/* Stops a source and drops its objects (origin NULL: the fleet). 0 or
 * -ENOENT. */
int fg_kube_remove_source(struct fg_kube *k, const char *origin);

/* LIST page size (default 500); for tests. */
void fg_kube_set_page_size(struct fg_kube *k, unsigned int n);

/* An eventfd (non-blocking) readable when something changed. */
int fg_kube_fd(const struct fg_kube *k);

/*
 * Takes the worker's current state (objects and errors) as the one the
 * foreach calls show. *changed (may be NULL) says whether objects or
 * source errors changed since the previous call. 0 or -errno.
 */
int fg_kube_process(struct fg_kube *k, bool *changed);

/* Calls cb for every current object: the fleet's first, then the clusters
 * by id; within a source, by resource, then namespace/name. obj is borrowed
 * (valid until the next fg_kube_process()/fg_kube_free(); do not modify
 * it). A non-zero return stops the walk and is returned. */
typedef int (*fg_kube_obj_cb)(const char *origin, json_t *obj, void *ctx);
int fg_kube_foreach(struct fg_kube *k, fg_kube_obj_cb cb, void *ctx);

/* Calls cb (may be NULL) for every source that cannot be read now, with
 * why: the first failing resource's "list|watch URL: DETAIL", e.g.
 * "watch https://10.0.0.1:6443/api/v1/pods: connect to 10.0.0.1:6443:
 * Connection refused", "list https://...: 401 Unauthorized: Unauthorized",
 * "list https://...: SSL certificate problem: ..."; returns how many. */
typedef void (*fg_kube_err_cb)(const char *origin, const char *reason, void *ctx);
int fg_kube_foreach_error(struct fg_kube *k, fg_kube_err_cb cb, void *ctx);

/* Calls cb for every source (as of the last fg_kube_process()), with
 * synced = whether every resource has been listed at least once, so the
 * control plane can give each cluster an entry even when it has no
 * objects; returns how many. */
typedef void (*fg_kube_src_cb)(const char *origin, bool synced, void *ctx);
int fg_kube_foreach_source(struct fg_kube *k, fg_kube_src_cb cb, void *ctx);

/*
 * Credentials for other clients of the same API server (lease.c): the
 * kubeconfig (NULL: the in-cluster service account) and context are read
 * as for a source; fg_kube_client_setup() puts the TLS and credential
 * options on a libcurl easy handle (CURL *) and appends the Authorization
 * header to *hdrs. Errors are logged with why.
 */
struct fg_kube_client;
struct curl_slist;
int fg_kube_client_new(struct fg_kube_client **out, const char *kubeconfig_path,
		       const char *context);
/* "https://host:port[/prefix]", no trailing '/'. */
const char *fg_kube_client_server(const struct fg_kube_client *c);
int fg_kube_client_setup(const struct fg_kube_client *c, void *easy, struct curl_slist **hdrs);
void fg_kube_client_free(struct fg_kube_client *c);

#endif

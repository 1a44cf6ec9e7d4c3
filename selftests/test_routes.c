// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Route computation (agent/routes.c): fleet and cluster objects in, a plan
 * out. The seed's MseIngressConfig and its five example Ingresses are the
 * acceptance behaviour; every invalid input is a table row that must be
 * rejected with a reason while the other routes stay untouched.
 *
 * Inputs are built with jansson from inline JSON (single quotes stand for
 * double quotes, see jq()) or from small builders; every plan is freed
 * with fg_plan_free and every json with json_decref, so the whole test can
 * run under valgrind --leak-check=full.
 */
#include <arpa/inet.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>

#include <jansson.h>

#include "fleetgate.h"
#include "fg_regex.h"
#include "routes.h"
#include "test_progs.h"

#define C1 "c7fb82aaaa"
#define C2 "c15d48ca9d1fd43f9bbb89c56a474843c"
#define NS "web-demo"
#define ADDR "192.0.2.10"

#define T0 "2024-05-01T10:00:00Z"
#define T1 "2024-05-01T10:00:01Z"
#define T2 "2024-05-01T10:00:02Z"
#define T3 "2024-05-01T10:00:03Z"
#define T4 "2024-05-01T10:00:04Z"
#define T5 "2024-05-01T10:00:05Z"

/* ------------------------------------------------------------------ */
/* JSON builders                                                        */
/* ------------------------------------------------------------------ */

/* printf-style JSON where ' stands for " (no value here has a quote). */
__attribute__((format(printf, 1, 2)))
static json_t *jq(const char *fmt, ...)
{
	char buf[8192], *c;
	json_error_t jerr;
	va_list ap;
	json_t *v;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	for (c = buf; *c; c++)
		if (*c == '\'')
			*c = '"';
	v = json_loads(buf, 0, &jerr);
	if (!v) {
		fprintf(stdout, "bad test JSON (%s at %d): %s\n", jerr.text, jerr.position, buf);
		abort();
	}
	return v;
}

struct world {
	json_t *fleet;
	json_t *clusters;
	json_t *errors;
};

static void w_init(struct world *w)
{
	w->fleet = json_array();
	w->clusters = json_object();
	w->errors = NULL;
}

static void w_fini(struct world *w)
{
	json_decref(w->fleet);
	json_decref(w->clusters);
	json_decref(w->errors);
	memset(w, 0, sizeof(*w));
}

static void fleet_add(struct world *w, json_t *obj)
{
	json_array_append_new(w->fleet, obj);
}

static json_t *cl_objs(struct world *w, const char *cid)
{
	json_t *arr = json_object_get(w->clusters, cid);

	if (!arr) {
		arr = json_array();
		json_object_set_new(w->clusters, cid, arr);
	}
	return arr;
}

static void cl_add(struct world *w, const char *cid, json_t *obj)
{
	json_array_append_new(cl_objs(w, cid), obj);
}

static void cl_error(struct world *w, const char *cid, const char *why)
{
	if (!w->errors)
		w->errors = json_object();
	json_object_set_new(w->errors, cid, json_string(why));
}

static struct fg_plan *compute_opts(struct world *w, bool ready, bool listening)
{
	struct fg_snapshot snap = { .fleet = w->fleet, .clusters = w->clusters,
				    .cluster_errors = w->errors };
	struct fg_plan_opts opts = { .dataplane_ready = ready, .listening = listening,
				     .address = ADDR };
	struct fg_plan *plan = NULL;
	int err;

	err = fg_plan_compute(&snap, &opts, &plan);
	if (!ASSERT_OK(err, "fg_plan_compute"))
		return NULL;
	ASSERT_OK_PTR(plan, "plan");
	return plan;
}

static struct fg_plan *compute(struct world *w)
{
	return compute_opts(w, true, true);
}

/* The seed's MseIngressConfig (cloud-only fields included: they must be
 * carried, not interpreted). remote/cls NULL: field absent. */
static json_t *gateway(const char *name, const char *created, const char *remote,
		       const char *cls)
{
	json_t *gw = jq("{'apiVersion':'mse.alibabacloud.com/v1alpha1','kind':'MseIngressConfig',"
			"'metadata':{'name':'%s','creationTimestamp':'%s'},"
			"'spec':{'common':{'instance':{'replicas':3,'spec':'2c4g'},"
			"'network':{'vSwitches':['vsw-bp1example']}},"
			"'ingress':{'local':{}},'name':'mse-ingress'}}",
			name, created);

	if (remote)
		json_object_set_new(json_object_get(gw, "metadata"), "annotations",
				    json_pack("{s:s}", "mse.alibabacloud.com/remote-clusters",
					      remote));
	if (cls)
		json_object_set_new(json_object_get(json_object_get(json_object_get(gw, "spec"),
								    "ingress"),
						    "local"),
				    "ingressClass", json_string(cls));
	return gw;
}

static json_t *seed_gateway(void)
{
	return gateway("ackone-gateway", T0, C1 "," C2, "mse");
}

/* ---- a cluster's application: Service, Pods, Endpoints/EndpointSlice ---- */

enum {
	EP_NONE = 0,     /* no Service at all */
	EP_SLICE = 1,    /* EndpointSlice */
	EP_LEGACY = 2,   /* Endpoints */
	EP_SVC_ONLY = 4, /* the Service, no endpoints objects */
};

struct app {
	const char *ns;         /* default NS */
	const char *svc;        /* default service1 */
	const char *port_name;  /* default: unnamed */
	int port;               /* default 80 */
	int target_port;        /* default 8080 */
	int ready, not_ready;
	int mode;
	const char *const *labels; /* per ready pod: extra labels as JSON text, or NULL */
};

/* Ready pod i of cluster idx: web-demo-<idx>-<i>, 10.<idx>.0.<i+1> in the
 * slice, 10.<idx>.9.<i+1> in the Endpoints (so a test can tell which was
 * read); not-ready pods at .1. / .8. When both are present, the Endpoints
 * carry two extra addresses. */
static void add_app(struct world *w, const char *cid, int idx, const struct app *a)
{
	const char *ns = a->ns ? a->ns : NS, *svc = a->svc ? a->svc : "service1";
	int port = a->port ? a->port : 80, tport = a->target_port ? a->target_port : 8080;
	json_t *objs = cl_objs(w, cid), *svc_port, *eps, *sub, *addrs, *nr, *slice, *sl_eps;
	char pod[64], ip[32], pname_json[80];
	int i, extra = (a->mode & EP_SLICE) && (a->mode & EP_LEGACY) ? 2 : 0;

	for (i = 0; i < a->ready + a->not_ready; i++) {
		bool ready = i < a->ready;
		json_t *p;

		snprintf(pod, sizeof(pod), "web-demo-%d-%s%d", idx, ready ? "" : "nr", i);
		p = jq("{'apiVersion':'v1','kind':'Pod','metadata':{'name':'%s','namespace':'%s',"
		       "'labels':{'app':'web-demo'}},'status':{'phase':'Running'}}",
		       pod, ns);
		if (ready && a->labels && a->labels[i]) {
			json_t *extra_l = jq("%s", a->labels[i]);

			json_object_update(json_object_get(json_object_get(p, "metadata"), "labels"),
					   extra_l);
			json_decref(extra_l);
		}
		json_array_append_new(objs, p);
	}
	if (a->mode == EP_NONE)
		return;

	svc_port = json_pack("{s:i, s:s, s:i}", "port", port, "protocol", "TCP", "targetPort",
			     tport);
	if (a->port_name)
		json_object_set_new(svc_port, "name", json_string(a->port_name));
	json_array_append_new(objs,
		json_pack("{s:s, s:s, s:{s:s, s:s}, s:{s:s, s:{s:s}, s:[o]}}", "apiVersion", "v1",
			  "kind", "Service", "metadata", "name", svc, "namespace", ns, "spec",
			  "type", "ClusterIP", "selector", "app", "web-demo", "ports", svc_port));
	snprintf(pname_json, sizeof(pname_json), "'name':'%s',", a->port_name ? a->port_name : "");

	if (a->mode & EP_SLICE) {
		slice = jq("{'apiVersion':'discovery.k8s.io/v1','kind':'EndpointSlice',"
			   "'metadata':{'name':'%s-x%d','namespace':'%s',"
			   "'labels':{'kubernetes.io/service-name':'%s'}},'addressType':'IPv4',"
			   "'ports':[{%s'port':%d,'protocol':'TCP'}],'endpoints':[]}",
			   svc, idx, ns, svc, pname_json, tport);
		sl_eps = json_object_get(slice, "endpoints");
		for (i = 0; i < a->ready + a->not_ready; i++) {
			bool ready = i < a->ready;

			snprintf(pod, sizeof(pod), "web-demo-%d-%s%d", idx, ready ? "" : "nr", i);
			snprintf(ip, sizeof(ip), "10.%d.%d.%d", idx, ready ? 0 : 1, i + 1);
			json_array_append_new(sl_eps,
				jq("{'addresses':['%s'],'conditions':{'ready':%s},"
				   "'targetRef':{'kind':'Pod','name':'%s','namespace':'%s'}}",
				   ip, ready ? "true" : "false", pod, ns));
		}
		json_array_append_new(objs, slice);
	}
	if (a->mode & EP_LEGACY) {
		eps = jq("{'apiVersion':'v1','kind':'Endpoints','metadata':{'name':'%s','namespace':'%s'},"
			 "'subsets':[{'addresses':[],'notReadyAddresses':[],"
			 "'ports':[{%s'port':%d,'protocol':'TCP'}]}]}",
			 svc, ns, a->port_name ? pname_json : "", tport);
		sub = json_array_get(json_object_get(eps, "subsets"), 0);
		addrs = json_object_get(sub, "addresses");
		nr = json_object_get(sub, "notReadyAddresses");
		for (i = 0; i < a->ready + a->not_ready + extra; i++) {
			bool ready = i < a->ready || i >= a->ready + a->not_ready;

			snprintf(pod, sizeof(pod), "web-demo-%d-%s%d", idx,
				 i < a->ready || !ready ? (ready ? "" : "nr") : "x", i);
			snprintf(ip, sizeof(ip), "10.%d.%d.%d", idx, ready ? 9 : 8, i + 1);
			json_array_append_new(ready ? addrs : nr,
				jq("{'ip':'%s','targetRef':{'kind':'Pod','name':'%s','namespace':'%s'}}",
				   ip, pod, ns));
		}
		json_array_append_new(objs, eps);
	}
}

static void add_web(struct world *w, const char *cid, int idx, int ready, int not_ready, int mode)
{
	struct app a = { .ready = ready, .not_ready = not_ready, .mode = mode };

	add_app(w, cid, idx, &a);
}

/* The seed world: the gateway over C1 and C2, one web-demo pod in each. */
static void seed_world(struct world *w)
{
	w_init(w);
	fleet_add(w, seed_gateway());
	add_web(w, C1, 1, 1, 0, EP_SLICE);
	add_web(w, C2, 2, 1, 0, EP_SLICE);
}

/* ---- the seed's example Ingresses, as written there ---- */

/* Example 1: ingress-demo.yaml. */
static json_t *ex1(const char *created)
{
	return jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
		  "'metadata':{'name':'web-demo','namespace':'web-demo','creationTimestamp':'%s'},"
		  "'spec':{'ingressClassName':'mse','rules':[{'host':'example.com','http':{'paths':"
		  "[{'path':'/svc1','pathType':'Exact','backend':{'service':{'name':'service1',"
		  "'port':{'number':80}}}}]}}]}}",
		  created);
}

/* Example 2: ingress-demo-cluster-one.yaml (pinned to cluster 1). */
static json_t *ex2(const char *created)
{
	return jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
		  "'metadata':{'annotations':{"
		  "'mse.ingress.kubernetes.io/service-subset':'cluster-demo-1',"
		  "'mse.ingress.kubernetes.io/subset-labels':'topology.istio.io/cluster %s\\n'},"
		  "'name':'web-demo-cluster-one','namespace':'web-demo','creationTimestamp':'%s'},"
		  "'spec':{'ingressClassName':'mse','rules':[{'host':'example.com','http':{'paths':"
		  "[{'path':'/service1','pathType':'Exact','backend':{'service':{'name':'service1',"
		  "'port':{'number':80}}}}]}}]}}",
		  C1, created);
}

/* Example 3: ingress-demo-header.yaml (stage: gray to cluster 2). */
static json_t *ex3(const char *created)
{
	return jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
		  "'metadata':{'annotations':{"
		  "'mse.ingress.kubernetes.io/service-subset':'cluster-demo-2',"
		  "'mse.ingress.kubernetes.io/subset-labels':'topology.istio.io/cluster %s\\n',"
		  "'nginx.ingress.kubernetes.io/canary':'true',"
		  "'nginx.ingress.kubernetes.io/canary-by-header':'stage',"
		  "'nginx.ingress.kubernetes.io/canary-by-header-value':'gray'},"
		  "'name':'web-demo-cluster-second','namespace':'web-demo','creationTimestamp':'%s'},"
		  "'spec':{'ingressClassName':'mse','rules':[{'host':'example.com','http':{'paths':"
		  "[{'path':'/service1','pathType':'Exact','backend':{'service':{'name':'service1',"
		  "'port':{'number':80}}}}]}}]}}",
		  C2, created);
}

/* Example 5: ingress-weight.yaml, the main Ingress and the 10% canary. */
static json_t *ex5_main(const char *created)
{
	return jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
		  "'metadata':{'annotations':{"
		  "'mse.ingress.kubernetes.io/service-subset':'cluster-demo-1',"
		  "'mse.ingress.kubernetes.io/subset-labels':'topology.istio.io/cluster %s\\n'},"
		  "'name':'web-demo-weight','namespace':'web-demo','creationTimestamp':'%s'},"
		  "'spec':{'ingressClassName':'mse','rules':[{'host':'example.com','http':{'paths':"
		  "[{'path':'/svc1-w','pathType':'Exact','backend':{'service':{'name':'service1',"
		  "'port':{'number':80}}}}]}}]}}",
		  C1, created);
}

static json_t *ex5_canary(const char *created)
{
	return jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
		  "'metadata':{'annotations':{"
		  "'mse.ingress.kubernetes.io/service-subset':'cluster-demo-2',"
		  "'mse.ingress.kubernetes.io/subset-labels':'topology.istio.io/cluster %s\\n',"
		  "'nginx.ingress.kubernetes.io/canary':'true',"
		  "'nginx.ingress.kubernetes.io/canary-weight':'10'},"
		  "'name':'web-demo-weight-canary','namespace':'web-demo','creationTimestamp':'%s'},"
		  "'spec':{'ingressClassName':'mse','rules':[{'host':'example.com','http':{'paths':"
		  "[{'path':'/svc1-w','pathType':'Exact','backend':{'service':{'name':'service1',"
		  "'port':{'number':80}}}}]}}]}}",
		  C2, created);
}

/* ---- a general Ingress, for tables ---- */

static const char OMIT[] = "<omit>";

struct ing {
	const char *name;
	const char *created;   /* default T1 */
	const char *cls;       /* default mse; OMIT: no ingressClassName */
	const char *host;      /* default example.com; OMIT: no host */
	const char *path;      /* default /svc1; OMIT: no path */
	const char *ptype;     /* default Exact; OMIT: no pathType */
	const char *svc;       /* default service1 */
	int port;              /* default 80 unless port_name; -1: neither */
	const char *port_name;
	bool default_backend;  /* spec.defaultBackend and no rules */
	const char *anns[17];  /* key, value, ..., NULL */
};

static json_t *ing_build(const struct ing *s)
{
	json_t *o, *md, *spec, *backend, *port, *path;
	size_t i;

	o = json_pack("{s:s, s:s, s:{s:s, s:s, s:s}, s:{}}", "apiVersion", "networking.k8s.io/v1",
		      "kind", "Ingress", "metadata", "name", s->name, "namespace", NS,
		      "creationTimestamp", s->created ? s->created : T1, "spec");
	md = json_object_get(o, "metadata");
	spec = json_object_get(o, "spec");
	if (s->anns[0]) {
		json_t *anns = json_object();

		for (i = 0; s->anns[i] && s->anns[i + 1]; i += 2)
			json_object_set_new(anns, s->anns[i], json_string(s->anns[i + 1]));
		json_object_set_new(md, "annotations", anns);
	}
	if (s->cls != OMIT)
		json_object_set_new(spec, "ingressClassName", json_string(s->cls ? s->cls : "mse"));

	port = json_object();
	if (s->port_name)
		json_object_set_new(port, "name", json_string(s->port_name));
	else if (s->port >= 0)
		json_object_set_new(port, "number", json_integer(s->port ? s->port : 80));
	backend = json_pack("{s:{s:s, s:o}}", "service", "name", s->svc ? s->svc : "service1",
			    "port", port);
	if (s->default_backend) {
		json_object_set_new(spec, "defaultBackend", backend);
		return o;
	}
	path = json_pack("{s:o}", "backend", backend);
	if (s->path != OMIT)
		json_object_set_new(path, "path", json_string(s->path ? s->path : "/svc1"));
	if (s->ptype != OMIT)
		json_object_set_new(path, "pathType", json_string(s->ptype ? s->ptype : "Exact"));
	{
		json_t *rule = json_pack("{s:{s:[o]}}", "http", "paths", path);

		if (s->host != OMIT)
			json_object_set_new(rule, "host",
					    json_string(s->host ? s->host : "example.com"));
		json_object_set_new(spec, "rules", json_pack("[o]", rule));
	}
	return o;
}

static void fleet_ing(struct world *w, const struct ing *s)
{
	fleet_add(w, ing_build(s));
}

/* ------------------------------------------------------------------ */
/* plan lookups and checks                                              */
/* ------------------------------------------------------------------ */

static const struct fg_ingress_status *ing_st(const struct fg_plan *p, const char *name)
{
	size_t i;

	for (i = 0; p && i < p->n_ingresses; i++)
		if (!strcmp(p->ingresses[i].name, name))
			return &p->ingresses[i];
	return NULL;
}

/* The non-default route for host (as stored: lower case, no "*.") and path. */
static const struct fg_route *route_of(const struct fg_plan *p, const char *host, const char *path)
{
	size_t i;

	for (i = 0; p && i < p->n_routes; i++)
		if (!p->routes[i].is_default && !strcmp(p->routes[i].host, host) &&
		    !strcmp(p->routes[i].path, path))
			return &p->routes[i];
	return NULL;
}

static const struct fg_target_cluster *tcl(const struct fg_target *t, const char *cid)
{
	size_t i;

	for (i = 0; t && i < t->n_clusters; i++)
		if (!strcmp(t->clusters[i].cluster, cid))
			return &t->clusters[i];
	return NULL;
}

static bool expect_accepted(const struct fg_plan *p, const char *name, const char *tag)
{
	const struct fg_ingress_status *st = ing_st(p, name);
	char t[160];

	snprintf(t, sizeof(t), "%s: ingress %s", tag, name);
	if (!ASSERT_OK_PTR(st, t))
		return false;
	if (!st->accepted)
		fprintf(stdout, "  %s rejected: %s\n", name, st->reason);
	return ASSERT_TRUE(st->accepted, t);
}

static bool expect_rejected(const struct fg_plan *p, const char *name, const char *why,
			    const char *tag)
{
	const struct fg_ingress_status *st = ing_st(p, name);
	char t[160];
	bool ok;

	snprintf(t, sizeof(t), "%s: ingress %s", tag, name);
	if (!ASSERT_OK_PTR(st, t))
		return false;
	ok = ASSERT_FALSE(st->accepted, t);
	snprintf(t, sizeof(t), "%s: reason of %s contains '%s'", tag, name, why);
	ok &= _CHECK(!strstr(st->reason, why), t, "reason is '%s'", st->reason);
	return ok;
}

/* A target cluster: tier, weight, ready (weight < 0: not checked). */
static const struct fg_target_cluster *expect_tc(const struct fg_target *t, const char *cid,
						 int tier, int weight, int ready, const char *tag)
{
	const struct fg_target_cluster *c = tcl(t, cid);
	char n[160];

	snprintf(n, sizeof(n), "%s: cluster %.12s", tag, cid);
	if (!ASSERT_OK_PTR(c, n))
		return NULL;
	ASSERT_EQ(c->tier, tier, n);
	if (weight >= 0)
		ASSERT_EQ(c->weight, weight, n);
	if (ready >= 0)
		ASSERT_EQ(c->ready, ready, n);
	ASSERT_EQ(c->n_eps, c->ready, n);
	return c;
}

static void expect_no_tc(const struct fg_target *t, const char *cid, const char *tag)
{
	char n[160];

	snprintf(n, sizeof(n), "%s: cluster %.12s absent", tag, cid);
	ASSERT_TRUE(tcl(t, cid) == NULL, n);
}

static bool ep_is(const struct fg_endpoint *e, const char *ip, int port)
{
	struct fg_addr a = {};

	if (inet_pton(AF_INET, ip, &a.v4) != 1)
		return false;
	return e->family == FG_AF_INET && !memcmp(&e->addr, &a, sizeof(a)) && e->port == port &&
	       e->ready;
}

static bool has_ep(const struct fg_target_cluster *c, const char *ip, int port)
{
	size_t i;

	for (i = 0; c && i < c->n_eps; i++)
		if (ep_is(&c->eps[i], ip, port))
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* gateway_status                                                       */
/* ------------------------------------------------------------------ */

static json_t *gw_status(const struct fg_gateway_status *gw)
{
	return json_object_get(gw->object, "status");
}

static void subtest_gateway_status(void)
{
	static const struct {
		bool ready, listening;
		const char *phase;
	} phases[] = {
		{ false, false, "Pending" },
		{ false, true, "Pending" },
		{ true, false, "Running" },
		{ true, true, "Listening" },
	};
	struct fg_plan *p;
	struct world w;
	json_t *want, *remote, *e;
	size_t i;

	for (i = 0; i < sizeof(phases) / sizeof(phases[0]); i++) {
		seed_world(&w);
		fleet_add(&w, ex1(T1));
		p = compute_opts(&w, phases[i].ready, phases[i].listening);
		if (p && ASSERT_EQ(p->n_gateways, 1, "n_gateways")) {
			const struct fg_gateway_status *gw = &p->gateways[0];

			ASSERT_STREQ(gw->name, "ackone-gateway", "name");
			ASSERT_STREQ(gw->phase, phases[i].phase, "phase");
			ASSERT_STREQ(gw->ingress_class, "mse", "class");
			ASSERT_STREQ(gw->created, T0, "created");
			ASSERT_STREQ(json_string_value(json_object_get(gw_status(gw), "status")),
				     phases[i].phase, "status.status");
			ASSERT_FALSE(json_object_get(gw_status(gw), "message"), "no message");
			/* Cloud-only fields are carried untouched. */
			ASSERT_EQ(json_integer_value(json_object_get(json_object_get(json_object_get(
				  json_object_get(gw->object, "spec"), "common"), "instance"),
				  "replicas")), 3, "replicas kept");
			ASSERT_STREQ(json_string_value(json_object_get(json_object_get(gw->object,
				     "spec"), "name")), "mse-ingress", "spec.name kept");
			/* The Ingresses are served whatever the phase. */
			expect_accepted(p, "web-demo", "phase");
		}
		fg_plan_free(p);
		w_fini(&w);
	}

	/* The Kubernetes source before a source's first list: Running, with
	 * the sources named; Listening once none is left. */
	{
		static const char *const syncing[] = { "cluster " C2 " endpointslices", "" };

		for (i = 0; i < 2; i++) {
			struct fg_snapshot snap;
			struct fg_plan_opts opts = { .dataplane_ready = true, .listening = true,
						     .address = ADDR, .syncing = syncing[i] };
			const char *msg;

			seed_world(&w);
			fleet_add(&w, ex1(T1));
			snap = (struct fg_snapshot){ .fleet = w.fleet, .clusters = w.clusters,
						     .cluster_errors = w.errors };
			p = NULL;
			if (ASSERT_OK(fg_plan_compute(&snap, &opts, &p), "compute while syncing") &&
			    ASSERT_EQ(p->n_gateways, 1, "n_gateways")) {
				msg = json_string_value(json_object_get(gw_status(&p->gateways[0]),
									"message"));
				if (i == 0) {
					ASSERT_STREQ(p->gateways[0].phase, "Running",
						     "not Listening before every first list");
					ASSERT_TRUE(msg && strstr(msg, "waiting for the first list of: "
								  "cluster " C2 " endpointslices"),
						    "the message names the source");
				} else {
					ASSERT_STREQ(p->gateways[0].phase, "Listening",
						     "Listening once every source is listed");
				}
			}
			fg_plan_free(p);
			w_fini(&w);
		}
	}

	/* Both clusters readable: exactly the seed's expected output. */
	seed_world(&w);
	p = compute(&w);
	if (p && ASSERT_EQ(p->n_gateways, 1, "n_gateways")) {
		want = jq("[{'clusterId':'%s'},{'clusterId':'%s'}]", C1, C2);
		remote = json_object_get(gw_status(&p->gateways[0]), "remoteClusters");
		if (!json_equal(remote, want)) {
			char *s = json_dumps(remote, JSON_COMPACT);

			fprintf(stdout, "remoteClusters: %s\n", s ? s : "(null)");
			free(s);
		}
		ASSERT_TRUE(json_equal(remote, want), "remoteClusters");
		json_decref(want);
		if (ASSERT_EQ(p->n_clusters, 2, "n_clusters")) {
			ASSERT_STREQ(p->clusters[0], C1, "clusters[0]");
			ASSERT_STREQ(p->clusters[1], C2, "clusters[1]");
		}
	}
	fg_plan_free(p);
	w_fini(&w);

	/* Blanks around ids are ignored, as is an empty element. */
	w_init(&w);
	fleet_add(&w, gateway("ackone-gateway", T0, " " C1 " ,, " C2 " ", "mse"));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	add_web(&w, C2, 2, 1, 0, EP_SLICE);
	p = compute(&w);
	if (p) {
		want = jq("[{'clusterId':'%s'},{'clusterId':'%s'}]", C1, C2);
		ASSERT_TRUE(json_equal(json_object_get(gw_status(&p->gateways[0]), "remoteClusters"),
				       want), "remoteClusters trimmed");
		json_decref(want);
		ASSERT_EQ(p->n_clusters, 2, "n_clusters trimmed");
	}
	fg_plan_free(p);
	w_fini(&w);

	/* C2 has no objects at all (no kubeconfig): Failed entry, not attached,
	 * the gateway still Listening and Example 1 served by C1 alone. */
	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, ex1(T1));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	p = compute(&w);
	if (p) {
		remote = json_object_get(gw_status(&p->gateways[0]), "remoteClusters");
		ASSERT_EQ(json_array_size(remote), 2, "entries");
		e = json_array_get(remote, 0);
		ASSERT_STREQ(json_string_value(json_object_get(e, "clusterId")), C1, "c1 id");
		ASSERT_FALSE(json_object_get(e, "status"), "c1 not failed");
		e = json_array_get(remote, 1);
		ASSERT_STREQ(json_string_value(json_object_get(e, "clusterId")), C2, "c2 id");
		ASSERT_STREQ(json_string_value(json_object_get(e, "status")), "Failed", "c2 Failed");
		ASSERT_OK_PTR(strstr(json_string_value(json_object_get(e, "reason")) ?: "",
				     "no objects"), "c2 reason");
		ASSERT_STREQ(p->gateways[0].phase, "Listening", "still listening");
		ASSERT_EQ(p->n_clusters, 1, "one attached");
		if (expect_accepted(p, "web-demo", "c2 missing")) {
			const struct fg_route *r = route_of(p, "example.com", "/svc1");

			if (ASSERT_OK_PTR(r, "route")) {
				expect_tc(r->target, C1, 0, 1, 1, "c2 missing");
				expect_no_tc(r->target, C2, "c2 missing");
			}
		}
	}
	fg_plan_free(p);
	w_fini(&w);

	/* C2 in cluster_errors (its objects are stale): Failed with that reason. */
	seed_world(&w);
	cl_error(&w, C2, "dial tcp 10.0.0.2:6443: connect: connection refused");
	p = compute(&w);
	if (p) {
		e = json_array_get(json_object_get(gw_status(&p->gateways[0]), "remoteClusters"), 1);
		ASSERT_STREQ(json_string_value(json_object_get(e, "status")), "Failed", "err Failed");
		ASSERT_STREQ(json_string_value(json_object_get(e, "reason")),
			     "dial tcp 10.0.0.2:6443: connect: connection refused", "err reason");
		ASSERT_EQ(p->n_clusters, 1, "err: one attached");
	}
	fg_plan_free(p);
	w_fini(&w);

	/* An invalid id. */
	w_init(&w);
	fleet_add(&w, gateway("ackone-gateway", T0, C1 ",Bad_ID", "mse"));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	cl_add(&w, "Bad_ID", jq("{'kind':'Pod','metadata':{'name':'x','namespace':'web-demo'}}"));
	p = compute(&w);
	if (p) {
		e = json_array_get(json_object_get(gw_status(&p->gateways[0]), "remoteClusters"), 1);
		ASSERT_STREQ(json_string_value(json_object_get(e, "clusterId")), "Bad_ID", "bad id");
		ASSERT_STREQ(json_string_value(json_object_get(e, "status")), "Failed", "bad Failed");
		ASSERT_OK_PTR(strstr(json_string_value(json_object_get(e, "reason")) ?: "",
				     "invalid cluster id"), "bad reason");
		if (ASSERT_EQ(p->n_clusters, 1, "bad: one attached"))
			ASSERT_STREQ(p->clusters[0], C1, "bad: c1 attached");
	}
	fg_plan_free(p);
	w_fini(&w);

	/* No ingressClass: the gateway Failed with a message; nothing served. */
	w_init(&w);
	fleet_add(&w, gateway("ackone-gateway", T0, C1 "," C2, NULL));
	fleet_add(&w, ex1(T1));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	add_web(&w, C2, 2, 1, 0, EP_SLICE);
	p = compute(&w);
	if (p) {
		ASSERT_STREQ(p->gateways[0].phase, "Failed", "no class: Failed");
		ASSERT_OK_PTR(strstr(p->gateways[0].message, "ingressClass"), "no class: message");
		ASSERT_STREQ(json_string_value(json_object_get(gw_status(&p->gateways[0]), "status")),
			     "Failed", "no class: status.status");
		ASSERT_STREQ(json_string_value(json_object_get(gw_status(&p->gateways[0]),
							       "message")),
			     p->gateways[0].message, "no class: status.message");
		ASSERT_EQ(p->n_clusters, 0, "no class: nothing attached");
		expect_rejected(p, "web-demo", "not served", "no class");
		ASSERT_EQ(p->n_routes, 0, "no class: no routes");
	}
	fg_plan_free(p);
	w_fini(&w);

	/* Two gateways for one class: the newer Failed (listed first here). */
	w_init(&w);
	fleet_add(&w, gateway("second-gateway", T2, C2, "mse"));
	fleet_add(&w, gateway("ackone-gateway", T0, C1, "mse"));
	fleet_add(&w, ex1(T3));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	add_web(&w, C2, 2, 1, 0, EP_SLICE);
	p = compute(&w);
	if (p && ASSERT_EQ(p->n_gateways, 2, "two gateways")) {
		const struct fg_gateway_status *older = &p->gateways[0], *newer = &p->gateways[1];

		if (!strcmp(older->name, "second-gateway")) {
			older = &p->gateways[1];
			newer = &p->gateways[0];
		}
		ASSERT_STREQ(older->name, "ackone-gateway", "older");
		ASSERT_STREQ(older->phase, "Listening", "older Listening");
		ASSERT_STREQ(newer->phase, "Failed", "newer Failed");
		ASSERT_OK_PTR(strstr(newer->message, "already served by MseIngressConfig ackone-gateway"),
			      "newer message");
		/* Only the older gateway's cluster is attached. */
		if (ASSERT_EQ(p->n_clusters, 1, "dup: attached"))
			ASSERT_STREQ(p->clusters[0], C1, "dup: c1");
		if (expect_accepted(p, "web-demo", "dup")) {
			const struct fg_route *r = route_of(p, "example.com", "/svc1");

			if (ASSERT_OK_PTR(r, "dup route")) {
				expect_tc(r->target, C1, 0, 1, 1, "dup");
				expect_no_tc(r->target, C2, "dup");
			}
		}
	}
	fg_plan_free(p);
	w_fini(&w);
}

/* ------------------------------------------------------------------ */
/* example1_pod_counts                                                  */
/* ------------------------------------------------------------------ */

static void subtest_example1_pod_counts(void)
{
	static const struct {
		const char *name;
		int r1, nr1, m1; /* cluster 1: ready, not ready pods, EP_* */
		int r2, nr2, m2;
		bool by_name;    /* Service port "http", Ingress port.name "http" */
		int w1, w2;      /* expected weights; -1: cluster absent */
		const char *ip1; /* an endpoint expected in cluster 1 */
		const char *ip2;
	} cases[] = {
		{ "one_pod_each", 1, 0, EP_SLICE, 1, 0, EP_SLICE, false, 1, 1, "10.1.0.1", "10.2.0.1" },
		{ "scaled_3_1", 3, 0, EP_SLICE, 1, 0, EP_SLICE, false, 3, 1, "10.1.0.3", "10.2.0.1" },
		{ "scaled_1_4", 1, 0, EP_SLICE, 4, 0, EP_SLICE, false, 1, 4, "10.1.0.1", "10.2.0.4" },
		{ "c2_without_service", 2, 0, EP_SLICE, 1, 0, EP_NONE, false, 2, -1, "10.1.0.2", NULL },
		{ "c2_service_no_endpoints", 1, 0, EP_SLICE, 0, 0, EP_SVC_ONLY, false, 1, 0, "10.1.0.1", NULL },
		{ "not_ready_slice", 2, 2, EP_SLICE, 1, 3, EP_SLICE, false, 2, 1, "10.1.0.2", "10.2.0.1" },
		{ "not_ready_endpoints", 2, 2, EP_LEGACY, 1, 3, EP_LEGACY, false, 2, 1, "10.1.9.2", "10.2.9.1" },
		{ "slice_preferred", 1, 0, EP_SLICE | EP_LEGACY, 2, 0, EP_SLICE | EP_LEGACY, false, 1, 2, "10.1.0.1", "10.2.0.2" },
		{ "endpoints_alone", 2, 0, EP_LEGACY, 1, 0, EP_LEGACY, false, 2, 1, "10.1.9.1", "10.2.9.1" },
		{ "slice_and_endpoints_mixed", 1, 0, EP_SLICE, 1, 0, EP_LEGACY, false, 1, 1, "10.1.0.1", "10.2.9.1" },
		{ "port_by_name", 1, 0, EP_SLICE, 2, 0, EP_LEGACY, true, 1, 2, "10.1.0.1", "10.2.9.2" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct app a1 = { .ready = cases[i].r1, .not_ready = cases[i].nr1, .mode = cases[i].m1,
				  .port_name = cases[i].by_name ? "http" : NULL };
		struct app a2 = { .ready = cases[i].r2, .not_ready = cases[i].nr2, .mode = cases[i].m2,
				  .port_name = cases[i].by_name ? "http" : NULL };
		const char *tag = cases[i].name;
		const struct fg_target_cluster *c;
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;
		size_t k;

		w_init(&w);
		fleet_add(&w, seed_gateway());
		if (cases[i].by_name) {
			struct ing in = { .name = "web-demo", .port_name = "http" };

			fleet_ing(&w, &in);
		} else {
			fleet_add(&w, ex1(T1));
		}
		add_app(&w, C1, 1, &a1);
		add_app(&w, C2, 2, &a2);
		p = compute(&w);
		if (!p || !expect_accepted(p, "web-demo", tag))
			goto next;
		ASSERT_EQ(p->n_routes, 1, tag);
		r = route_of(p, "example.com", "/svc1");
		if (!ASSERT_OK_PTR(r, tag))
			goto next;
		ASSERT_EQ(r->type, FG_PATH_EXACT, tag);
		ASSERT_FALSE(r->wildcard, tag);
		ASSERT_FALSE(r->is_default, tag);
		ASSERT_STREQ(r->ingress, "web-demo/web-demo", tag);
		ASSERT_EQ(r->n_canaries, 0, tag);
		ASSERT_STREQ(r->target->ns, NS, tag);
		ASSERT_STREQ(r->target->service, "service1", tag);
		if (cases[i].by_name) {
			ASSERT_EQ(r->target->port, 0, tag);
			ASSERT_STREQ(r->target->port_name, "http", tag);
		} else {
			ASSERT_EQ(r->target->port, 80, tag);
		}
		ASSERT_STREQ(r->target->subset, "", tag);

		c = expect_tc(r->target, C1, 0, cases[i].w1, cases[i].w1, tag);
		if (c) {
			ASSERT_TRUE(has_ep(c, cases[i].ip1, 8080), tag);
			for (k = 0; k < c->n_eps; k++) {
				/* never a not-ready (.1./.8.) or, with slices, an Endpoints address */
				ASSERT_EQ(c->eps[k].addr.bytes[2], (cases[i].m1 & EP_SLICE) ? 0 : 9, tag);
				ASSERT_EQ(c->eps[k].port, 8080, tag);
				ASSERT_TRUE(c->eps[k].pod_hash == fg_pod_hash("web-demo-1-0") ||
					    c->eps[k].pod_hash == fg_pod_hash("web-demo-1-1") ||
					    c->eps[k].pod_hash == fg_pod_hash("web-demo-1-2") ||
					    c->eps[k].pod_hash == fg_pod_hash("web-demo-1-3"), tag);
			}
		}
		if (cases[i].w2 < 0) {
			expect_no_tc(r->target, C2, tag);
			ASSERT_EQ(r->target->n_clusters, 1, tag);
		} else {
			c = expect_tc(r->target, C2, 0, cases[i].w2, cases[i].w2, tag);
			if (c && cases[i].ip2)
				ASSERT_TRUE(has_ep(c, cases[i].ip2, 8080), tag);
			for (k = 0; c && k < c->n_eps; k++)
				ASSERT_EQ(c->eps[k].addr.bytes[2], (cases[i].m2 & EP_SLICE) ? 0 : 9, tag);
			ASSERT_EQ(r->target->n_clusters, 2, tag);
		}
next:
		fg_plan_free(p);
		w_fini(&w);
	}

	/* The Ingress names a port the Service does not have. */
	{
		struct ing in = { .name = "web-demo", .port = 81 };
		struct fg_plan *p;
		struct world w;

		seed_world(&w);
		fleet_ing(&w, &in);
		p = compute(&w);
		if (p) {
			expect_rejected(p, "web-demo", "not found", "wrong port");
			ASSERT_EQ(p->n_routes, 0, "wrong port: no route");
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

/* ------------------------------------------------------------------ */
/* example2_pinned                                                      */
/* ------------------------------------------------------------------ */

static void subtest_example2_pinned(void)
{
	static const struct {
		int r1, r2;
	} pods[] = { { 1, 1 }, { 3, 1 }, { 1, 5 } };
	size_t i;

	for (i = 0; i < sizeof(pods) / sizeof(pods[0]); i++) {
		const struct fg_target_cluster *c;
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;

		w_init(&w);
		fleet_add(&w, seed_gateway());
		fleet_add(&w, ex2(T1));
		add_web(&w, C1, 1, pods[i].r1, 0, EP_SLICE);
		add_web(&w, C2, 2, pods[i].r2, 0, EP_SLICE);
		p = compute(&w);
		if (p && expect_accepted(p, "web-demo-cluster-one", "ex2")) {
			r = route_of(p, "example.com", "/service1");
			if (ASSERT_OK_PTR(r, "ex2 route")) {
				ASSERT_EQ(r->type, FG_PATH_EXACT, "ex2 type");
				ASSERT_STREQ(r->target->subset, "cluster-demo-1", "ex2 subset");
				ASSERT_EQ(r->target->n_clusters, 2, "ex2 n_clusters");
				c = expect_tc(r->target, C1, 0, pods[i].r1, pods[i].r1, "ex2 pinned");
				if (c) {
					ASSERT_OK_PTR(strstr(c->why, "pinned"), "ex2 why");
					ASSERT_TRUE(has_ep(c, "10.1.0.1", 8080), "ex2 ep");
				}
				/* The only tier-0 cluster is C1. */
				if (r->target->n_clusters >= 1)
					ASSERT_STREQ(r->target->clusters[0].cluster, C1, "ex2 first");
				c = expect_tc(r->target, C2, 1, pods[i].r2, pods[i].r2, "ex2 failover");
				if (c)
					ASSERT_OK_PTR(strstr(c->why, "failover"), "ex2 c2 why");
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}

	/* Pinned cluster without the Service: still accepted, served by C2
	 * as failover (Example 4 for a main route). */
	{
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;

		w_init(&w);
		fleet_add(&w, seed_gateway());
		fleet_add(&w, ex2(T1));
		add_web(&w, C1, 1, 1, 0, EP_NONE);
		add_web(&w, C2, 2, 1, 0, EP_SLICE);
		p = compute(&w);
		if (p && expect_accepted(p, "web-demo-cluster-one", "ex2 c1 deleted")) {
			r = route_of(p, "example.com", "/service1");
			if (ASSERT_OK_PTR(r, "ex2 c1 deleted route")) {
				expect_no_tc(r->target, C1, "ex2 c1 deleted");
				expect_tc(r->target, C2, 1, 1, 1, "ex2 c1 deleted");
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

/* ------------------------------------------------------------------ */
/* example3_header_canary                                               */
/* ------------------------------------------------------------------ */

static void check_ex3(struct fg_plan *p, int r1, int r2, const char *ip2, const char *tag)
{
	const struct fg_target_cluster *c;
	const struct fg_canary *cn;
	const struct fg_route *r;

	if (!expect_accepted(p, "web-demo-cluster-one", tag) ||
	    !expect_accepted(p, "web-demo-cluster-second", tag))
		return;
	ASSERT_TRUE(ing_st(p, "web-demo-cluster-second")->canary, tag);
	ASSERT_FALSE(ing_st(p, "web-demo-cluster-one")->canary, tag);
	r = route_of(p, "example.com", "/service1");
	if (!ASSERT_OK_PTR(r, tag))
		return;
	ASSERT_STREQ(r->ingress, "web-demo/web-demo-cluster-one", tag);
	if (!ASSERT_EQ(r->n_canaries, 1, tag))
		return;
	cn = &r->canaries[0];
	ASSERT_STREQ(cn->ingress, "web-demo/web-demo-cluster-second", tag);
	ASSERT_STREQ(cn->header, "stage", tag);
	ASSERT_STREQ(cn->header_value, "gray", tag);
	ASSERT_FALSE(cn->has_pattern, tag);
	ASSERT_FALSE(cn->has_weight, tag);
	ASSERT_STREQ(cn->cookie, "", tag);
	if (!ASSERT_OK_PTR(cn->target, tag))
		return;
	ASSERT_TRUE(cn->target != r->target, tag);
	ASSERT_STREQ(cn->target->subset, "cluster-demo-2", tag);
	ASSERT_EQ(cn->target->n_clusters, 2, tag);
	c = expect_tc(cn->target, C2, 0, r2, r2, tag);
	if (c)
		ASSERT_TRUE(has_ep(c, ip2, 8080), tag);
	c = expect_tc(cn->target, C1, 1, r1, r1, tag);
	if (c) {
		ASSERT_OK_PTR(strstr(c->why, "failover: main route"), tag);
		ASSERT_TRUE(has_ep(c, "10.1.0.1", 8080), tag);
	}
	/* The main route is unchanged by its canary. */
	expect_tc(r->target, C1, 0, r1, r1, tag);
	expect_tc(r->target, C2, 1, r2, r2, tag);
}

static void subtest_example3_header_canary(void)
{
	struct fg_plan *p;
	struct world w;

	seed_world(&w);
	fleet_add(&w, ex2(T1));
	fleet_add(&w, ex3(T2));
	p = compute(&w);
	if (p)
		check_ex3(p, 1, 1, "10.2.0.1", "ex3");
	fg_plan_free(p);
	w_fini(&w);

	/* The canary created before its main Ingress (and listed first). */
	seed_world(&w);
	fleet_add(&w, ex3(T1));
	fleet_add(&w, ex2(T2));
	p = compute(&w);
	if (p)
		check_ex3(p, 1, 1, "10.2.0.1", "ex3 canary first");
	fg_plan_free(p);
	w_fini(&w);

	/* 2 and 3 pods. */
	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, ex2(T1));
	fleet_add(&w, ex3(T2));
	add_web(&w, C1, 1, 2, 0, EP_SLICE);
	add_web(&w, C2, 2, 3, 0, EP_LEGACY);
	p = compute(&w);
	if (p)
		check_ex3(p, 2, 3, "10.2.9.3", "ex3 2/3 pods (C2 Endpoints)");
	fg_plan_free(p);
	w_fini(&w);

	/* All examples applied together: each keeps its route. */
	seed_world(&w);
	fleet_add(&w, ex1(T1));
	fleet_add(&w, ex2(T2));
	fleet_add(&w, ex3(T3));
	fleet_add(&w, ex5_main(T4));
	fleet_add(&w, ex5_canary(T5));
	p = compute(&w);
	if (p) {
		const struct fg_route *r;

		check_ex3(p, 1, 1, "10.2.0.1", "all examples");
		expect_accepted(p, "web-demo", "all examples");
		expect_accepted(p, "web-demo-weight", "all examples");
		expect_accepted(p, "web-demo-weight-canary", "all examples");
		ASSERT_EQ(p->n_routes, 3, "all examples: routes");
		ASSERT_EQ(p->n_ingresses, 5, "all examples: ingresses");
		r = route_of(p, "example.com", "/svc1");
		if (ASSERT_OK_PTR(r, "all: /svc1")) {
			ASSERT_EQ(r->n_canaries, 0, "all: /svc1 canaries");
			expect_tc(r->target, C1, 0, 1, 1, "all: /svc1");
			expect_tc(r->target, C2, 0, 1, 1, "all: /svc1");
		}
		r = route_of(p, "example.com", "/svc1-w");
		if (ASSERT_OK_PTR(r, "all: /svc1-w"))
			ASSERT_EQ(r->n_canaries, 1, "all: /svc1-w canaries");
	}
	fg_plan_free(p);
	w_fini(&w);

	/* Example 3 with Example 1 as main needs /service1 routed: Example 1
	 * routes /svc1, so the canary has no main route. */
	seed_world(&w);
	fleet_add(&w, ex1(T1));
	fleet_add(&w, ex3(T2));
	p = compute(&w);
	if (p) {
		expect_accepted(p, "web-demo", "ex3 over ex1");
		expect_rejected(p, "web-demo-cluster-second", "no non-canary Ingress", "ex3 over ex1");
	}
	fg_plan_free(p);
	w_fini(&w);
}

/* ------------------------------------------------------------------ */
/* example4_failover_data                                               */
/* ------------------------------------------------------------------ */

static void subtest_example4_failover_data(void)
{
	const struct fg_route *r;
	const struct fg_canary *cn;
	struct fg_plan *p;
	struct world w;

	/* C2's pod not ready: C2 stays in tier 0 with weight 0 (the data plane
	 * skips it) and C1 serves as tier 1. */
	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, ex2(T1));
	fleet_add(&w, ex3(T2));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	add_web(&w, C2, 2, 0, 1, EP_SLICE);
	p = compute(&w);
	if (p && expect_accepted(p, "web-demo-cluster-second", "ex4 down")) {
		r = route_of(p, "example.com", "/service1");
		if (ASSERT_OK_PTR(r, "ex4 down route") && ASSERT_EQ(r->n_canaries, 1, "ex4 down canaries")) {
			cn = &r->canaries[0];
			expect_tc(cn->target, C2, 0, 0, 0, "ex4 down");
			expect_tc(cn->target, C1, 1, 1, 1, "ex4 down");
			ASSERT_STREQ(cn->header, "stage", "ex4 down header");
			ASSERT_STREQ(cn->header_value, "gray", "ex4 down value");
		}
	}
	fg_plan_free(p);
	w_fini(&w);

	/* Same with Endpoints (notReadyAddresses only). */
	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, ex2(T1));
	fleet_add(&w, ex3(T2));
	add_web(&w, C1, 1, 2, 0, EP_LEGACY);
	add_web(&w, C2, 2, 0, 2, EP_LEGACY);
	p = compute(&w);
	if (p && expect_accepted(p, "web-demo-cluster-second", "ex4 down legacy")) {
		r = route_of(p, "example.com", "/service1");
		if (ASSERT_OK_PTR(r, "route") && ASSERT_EQ(r->n_canaries, 1, "canaries")) {
			expect_tc(r->canaries[0].target, C2, 0, 0, 0, "ex4 down legacy");
			expect_tc(r->canaries[0].target, C1, 1, 2, 2, "ex4 down legacy");
		}
	}
	fg_plan_free(p);
	w_fini(&w);

	/* C2's Service deleted (the cluster still readable): the canary stays
	 * accepted and fails over to the main route's C1 (seed, Example 4:
	 * "When the Service in Cluster 2 is down or deleted, traffic
	 * automatically fails over to Cluster 1"). */
	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, ex2(T1));
	fleet_add(&w, ex3(T2));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	add_web(&w, C2, 2, 1, 0, EP_NONE);
	p = compute(&w);
	if (p) {
		expect_accepted(p, "web-demo-cluster-one", "ex4 deleted");
		expect_accepted(p, "web-demo-cluster-second", "ex4 deleted");
		r = route_of(p, "example.com", "/service1");
		if (ASSERT_OK_PTR(r, "ex4 deleted route")) {
			expect_tc(r->target, C1, 0, 1, 1, "ex4 deleted main");
			expect_no_tc(r->target, C2, "ex4 deleted main");
			if (ASSERT_EQ(r->n_canaries, 1, "ex4 deleted: canary kept")) {
				cn = &r->canaries[0];
				expect_no_tc(cn->target, C2, "ex4 deleted canary");
				expect_tc(cn->target, C1, 1, 1, 1, "ex4 deleted canary");
			}
		}
	}
	fg_plan_free(p);
	w_fini(&w);

	/* Same with Example 1 as the main route of a /svc1 header canary:
	 * main tier 0 has both clusters, so C1 is the canary's tier 1. */
	{
		struct ing can = { .name = "svc1-gray", .created = T2,
				   .anns = { "mse.ingress.kubernetes.io/service-subset", "cluster-demo-2",
					     "mse.ingress.kubernetes.io/subset-labels",
					     "topology.istio.io/cluster " C2 "\n",
					     "nginx.ingress.kubernetes.io/canary", "true",
					     "nginx.ingress.kubernetes.io/canary-by-header", "stage",
					     "nginx.ingress.kubernetes.io/canary-by-header-value", "gray" } };

		w_init(&w);
		fleet_add(&w, seed_gateway());
		fleet_add(&w, ex1(T1));
		fleet_ing(&w, &can);
		add_web(&w, C1, 1, 1, 0, EP_SLICE);
		add_web(&w, C2, 2, 1, 0, EP_NONE);
		p = compute(&w);
		if (p) {
			expect_accepted(p, "web-demo", "ex4/ex1 deleted");
			expect_accepted(p, "svc1-gray", "ex4/ex1 deleted");
			r = route_of(p, "example.com", "/svc1");
			if (ASSERT_OK_PTR(r, "ex4/ex1 route") &&
			    ASSERT_EQ(r->n_canaries, 1, "ex4/ex1 deleted: canary kept")) {
				expect_no_tc(r->canaries[0].target, C2, "ex4/ex1 deleted");
				expect_tc(r->canaries[0].target, C1, 1, 1, 1, "ex4/ex1 deleted");
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

/* ------------------------------------------------------------------ */
/* example5_weight                                                      */
/* ------------------------------------------------------------------ */

static void subtest_example5_weight(void)
{
	const struct fg_target_cluster *c;
	const struct fg_canary *cn;
	const struct fg_route *r;
	struct fg_plan *p;
	struct world w;

	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, ex5_main(T1));
	fleet_add(&w, ex5_canary(T2));
	add_web(&w, C1, 1, 2, 0, EP_SLICE);
	add_web(&w, C2, 2, 1, 0, EP_SLICE);
	p = compute(&w);
	if (!p)
		goto out;
	expect_accepted(p, "web-demo-weight", "ex5");
	if (!expect_accepted(p, "web-demo-weight-canary", "ex5"))
		goto out;
	ASSERT_TRUE(ing_st(p, "web-demo-weight-canary")->canary, "ex5 canary flag");
	ASSERT_EQ(p->n_routes, 1, "ex5 routes");
	r = route_of(p, "example.com", "/svc1-w");
	if (!ASSERT_OK_PTR(r, "ex5 route"))
		goto out;
	ASSERT_EQ(r->type, FG_PATH_EXACT, "ex5 type");
	ASSERT_STREQ(r->ingress, "web-demo/web-demo-weight", "ex5 main ingress");
	c = expect_tc(r->target, C1, 0, 2, 2, "ex5 main");
	expect_tc(r->target, C2, 1, 1, 1, "ex5 main failover");
	if (!ASSERT_EQ(r->n_canaries, 1, "ex5 canaries"))
		goto out;
	cn = &r->canaries[0];
	ASSERT_STREQ(cn->ingress, "web-demo/web-demo-weight-canary", "ex5 canary ingress");
	ASSERT_TRUE(cn->has_weight, "ex5 has_weight");
	ASSERT_EQ(cn->weight, 10, "ex5 weight");
	ASSERT_EQ(cn->weight_total, 100, "ex5 weight_total");
	ASSERT_STREQ(cn->header, "", "ex5 no header");
	ASSERT_STREQ(cn->cookie, "", "ex5 no cookie");
	c = expect_tc(cn->target, C2, 0, 1, 1, "ex5 canary");
	if (c)
		ASSERT_TRUE(has_ep(c, "10.2.0.1", 8080), "ex5 canary ep");
	expect_tc(cn->target, C1, 1, 2, 2, "ex5 canary failover");
out:
	fg_plan_free(p);
	w_fini(&w);
}

/* ------------------------------------------------------------------ */
/* canary_semantics                                                     */
/* ------------------------------------------------------------------ */

#define CANARY "nginx.ingress.kubernetes.io/canary", "true"

static void subtest_canary_semantics(void)
{
	struct fg_plan *p;
	struct world w;
	const struct fg_route *r;
	const struct fg_canary *cn;

	/* Table of single canaries on Example 1's /svc1. */
	static const struct {
		const char *name;
		const char *anns[12];
		const char *header, *value, *pattern, *cookie;
		int weight, total; /* weight < 0: no weight */
		const char *yes[4], *no[4]; /* header values the pattern matches, and not */
	} one[] = {
		{ "header_only", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "X-Canary" },
		  "X-Canary", "", NULL, "", -1, 100 },
		{ "header_value", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
				    "nginx.ingress.kubernetes.io/canary-by-header-value", "gray" },
		  "stage", "gray", NULL, "", -1, 100 },
		{ "header_pattern", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
				      "nginx.ingress.kubernetes.io/canary-by-header-pattern", "^gr(a|e)y$" },
		  "stage", "", "^gr(a|e)y$", "", -1, 100,
		  { "gray", "grey" }, { "blue", "grayish" } },
		/* The ingress-nginx (PCRE) dialect: POSIX ERE rejected or
		 * never matched these. */
		{ "header_pattern_pcre_digit", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "version",
						 "nginx.ingress.kubernetes.io/canary-by-header-pattern", "^v\\d+$" },
		  "version", "", "^v\\d+$", "", -1, 100,
		  { "v12", "v1", "v2024" }, { "v1a", "v", "xv12", "V12" } },
		{ "header_pattern_pcre_caseless", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
						    "nginx.ingress.kubernetes.io/canary-by-header-pattern", "(?i)^gray$" },
		  "stage", "", "(?i)^gray$", "", -1, 100,
		  { "GRAY", "gray", "Gray" }, { "grey", "grayish", " gray" } },
		{ "header_pattern_unanchored", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
						 "nginx.ingress.kubernetes.io/canary-by-header-pattern", "gr[ae]y" },
		  "stage", "", "gr[ae]y", "", -1, 100,
		  { "gray", "light-grey-2", "grayish" }, { "GRAY", "blue" } },
		{ "higress_alias_pattern", { "higress.io/canary", "true", "higress.io/canary-by-header", "x-user",
					     "higress.io/canary-by-header-pattern", "^(alice|bob)\\b" },
		  "x-user", "", "^(alice|bob)\\b", "", -1, 100,
		  { "alice", "bob-smith" }, { "bobby", "carol" } },
		{ "cookie", { CANARY, "nginx.ingress.kubernetes.io/canary-by-cookie", "canary_user" },
		  "", "", NULL, "canary_user", -1, 100 },
		{ "weight_total_1000", { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "50",
					 "nginx.ingress.kubernetes.io/canary-weight-total", "1000" },
		  "", "", NULL, "", 50, 1000 },
		{ "weight_0", { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "0" },
		  "", "", NULL, "", 0, 100 },
		{ "weight_100", { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "100" },
		  "", "", NULL, "", 100, 100 },
		{ "higress_alias", { "higress.io/canary", "true", "higress.io/canary-by-header", "stage",
				     "higress.io/canary-by-header-value", "gray" },
		  "stage", "gray", NULL, "", -1, 100 },
		{ "mse_alias", { "mse.ingress.kubernetes.io/canary", "true",
				 "mse.ingress.kubernetes.io/canary-weight", "30" },
		  "", "", NULL, "", 30, 100 },
		{ "header_and_weight", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
					 "nginx.ingress.kubernetes.io/canary-by-header-value", "gray",
					 "nginx.ingress.kubernetes.io/canary-weight", "20" },
		  "stage", "gray", NULL, "", 20, 100 },
		{ "value_beats_pattern", { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
					   "nginx.ingress.kubernetes.io/canary-by-header-value", "gray",
					   "nginx.ingress.kubernetes.io/canary-by-header-pattern", "^x" },
		  "stage", "gray", NULL, "", -1, 100 },
	};
	size_t i, k;

	for (i = 0; i < sizeof(one) / sizeof(one[0]); i++) {
		struct ing can = { .name = "can", .created = T2 };
		const char *tag = one[i].name;

		for (k = 0; one[i].anns[k]; k++)
			can.anns[k] = one[i].anns[k];
		seed_world(&w);
		fleet_add(&w, ex1(T1));
		fleet_ing(&w, &can);
		p = compute(&w);
		if (!p || !expect_accepted(p, "can", tag))
			goto next;
		ASSERT_TRUE(ing_st(p, "can")->canary, tag);
		r = route_of(p, "example.com", "/svc1");
		if (!ASSERT_OK_PTR(r, tag) || !ASSERT_EQ(r->n_canaries, 1, tag))
			goto next;
		cn = &r->canaries[0];
		ASSERT_STREQ(cn->header, one[i].header, tag);
		ASSERT_STREQ(cn->header_value, one[i].value, tag);
		ASSERT_STREQ(cn->cookie, one[i].cookie, tag);
		ASSERT_EQ(cn->has_pattern, one[i].pattern != NULL, tag);
		if (one[i].pattern && cn->has_pattern && ASSERT_OK_PTR(cn->pattern, tag)) {
			ASSERT_STREQ(cn->header_pattern, one[i].pattern, tag);
			ASSERT_STREQ(fg_regex_pattern(cn->pattern), one[i].pattern, tag);
			for (k = 0; k < 4 && one[i].yes[k]; k++) {
				char t[128];

				snprintf(t, sizeof(t), "%s: matches '%s'", tag, one[i].yes[k]);
				ASSERT_TRUE(fg_regex_match(cn->pattern, one[i].yes[k],
							   strlen(one[i].yes[k])), t);
			}
			for (k = 0; k < 4 && one[i].no[k]; k++) {
				char t[128];

				snprintf(t, sizeof(t), "%s: does not match '%s'", tag, one[i].no[k]);
				ASSERT_FALSE(fg_regex_match(cn->pattern, one[i].no[k],
							    strlen(one[i].no[k])), t);
			}
		}
		ASSERT_EQ(cn->has_weight, one[i].weight >= 0, tag);
		if (one[i].weight >= 0) {
			ASSERT_EQ(cn->weight, one[i].weight, tag);
			ASSERT_EQ(cn->weight_total, one[i].total, tag);
		}
		/* Unpinned canary of an unpinned route: both clusters at tier 0. */
		expect_tc(cn->target, C1, 0, 1, 1, tag);
		expect_tc(cn->target, C2, 0, 1, 1, tag);
next:
		fg_plan_free(p);
		w_fini(&w);
	}

	/* Two header canaries with different values, both accepted, kept in
	 * creation order (the newer listed first in the fleet). */
	{
		struct ing blue = { .name = "can-blue", .created = T3,
				    .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
					      "nginx.ingress.kubernetes.io/canary-by-header-value", "blue" } };
		struct ing gray = { .name = "can-gray", .created = T2,
				    .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
					      "nginx.ingress.kubernetes.io/canary-by-header-value", "gray" } };

		seed_world(&w);
		fleet_ing(&w, &blue);
		fleet_ing(&w, &gray);
		fleet_add(&w, ex1(T1));
		p = compute(&w);
		if (p) {
			expect_accepted(p, "can-blue", "two values");
			expect_accepted(p, "can-gray", "two values");
			r = route_of(p, "example.com", "/svc1");
			if (ASSERT_OK_PTR(r, "two values route") &&
			    ASSERT_EQ(r->n_canaries, 2, "two values canaries")) {
				ASSERT_STREQ(r->canaries[0].header_value, "gray", "first: older");
				ASSERT_STREQ(r->canaries[0].ingress, "web-demo/can-gray", "first ingress");
				ASSERT_STREQ(r->canaries[1].header_value, "blue", "second: newer");
				ASSERT_STREQ(r->canaries[1].ingress, "web-demo/can-blue", "second ingress");
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}

	/* Weights 60 + 50: the second (newer) is over 100% and rejected. */
	{
		struct ing w60 = { .name = "can-60", .created = T2,
				   .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "60" } };
		struct ing w50 = { .name = "can-50", .created = T3,
				   .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "50" } };
		struct ing w40 = { .name = "can-40", .created = T4,
				   .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "40" } };

		seed_world(&w);
		fleet_add(&w, ex1(T1));
		fleet_ing(&w, &w50);
		fleet_ing(&w, &w60);
		fleet_ing(&w, &w40);
		p = compute(&w);
		if (p) {
			expect_accepted(p, "can-60", "60+50");
			expect_rejected(p, "can-50", "over 100%", "60+50");
			/* 60 + 40 is exactly the whole: accepted. */
			expect_accepted(p, "can-40", "60+40");
			r = route_of(p, "example.com", "/svc1");
			if (ASSERT_OK_PTR(r, "60+50 route") && ASSERT_EQ(r->n_canaries, 2, "60+40")) {
				ASSERT_EQ(r->canaries[0].weight, 60, "60 first");
				ASSERT_EQ(r->canaries[1].weight, 40, "40 second");
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}

	/* Weights with different totals: 500/1000 + 60/100 is 110%. */
	{
		struct ing a = { .name = "can-a", .created = T2,
				 .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "500",
					   "nginx.ingress.kubernetes.io/canary-weight-total", "1000" } };
		struct ing b = { .name = "can-b", .created = T3,
				 .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "x",
					   "nginx.ingress.kubernetes.io/canary-weight", "60" } };

		seed_world(&w);
		fleet_add(&w, ex1(T1));
		fleet_ing(&w, &a);
		fleet_ing(&w, &b);
		p = compute(&w);
		if (p) {
			expect_accepted(p, "can-a", "mixed totals");
			expect_rejected(p, "can-b", "over 100%", "mixed totals");
		}
		fg_plan_free(p);
		w_fini(&w);
	}

	/* A canary on a path of an Ingress with several paths gets a canary on
	 * each of its paths that has a main route. */
	{
		struct ing can = { .name = "can", .created = T2,
				   .anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-cookie", "beta" } };

		seed_world(&w);
		fleet_add(&w, ex1(T1));
		fleet_add(&w, ex2(T1));
		fleet_ing(&w, &can);
		p = compute(&w);
		if (p) {
			expect_accepted(p, "can", "cookie on /svc1");
			r = route_of(p, "example.com", "/svc1");
			if (ASSERT_OK_PTR(r, "svc1"))
				ASSERT_EQ(r->n_canaries, 1, "svc1 canaries");
			r = route_of(p, "example.com", "/service1");
			if (ASSERT_OK_PTR(r, "service1"))
				ASSERT_EQ(r->n_canaries, 0, "service1 untouched");
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

/* ------------------------------------------------------------------ */
/* invalid_inputs                                                       */
/* ------------------------------------------------------------------ */

#define SUBSET_C(id) "mse.ingress.kubernetes.io/subset-labels", "topology.istio.io/cluster " id "\n"

static void subtest_invalid_inputs(void)
{
	static const struct {
		const char *name;
		struct ing pre;  /* a valid Ingress the bad one conflicts with (name NULL: none) */
		struct ing bad;
		const char *why;
		bool canary;     /* a bad canary on /svc1: /svc1 keeps pre's canaries only */
	} cases[] = {
		{ "unknown_cluster", {}, { .name = "bad", .path = "/bad",
			.anns = { "mse.ingress.kubernetes.io/service-subset", "x", SUBSET_C("c0ffee0000") } },
		  "unknown cluster", false },
		{ "unknown_cluster_canary", {}, { .name = "bad",
			.anns = { CANARY, "mse.ingress.kubernetes.io/service-subset", "x",
				  SUBSET_C("c0ffee0000") } },
		  "unknown cluster", true },
		{ "subset_labels_not_key_value", {}, { .name = "bad", .path = "/bad",
			.anns = { "mse.ingress.kubernetes.io/subset-labels", "justonetoken" } },
		  "not 'key value'", false },
		{ "weight_abc", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "abc" } },
		  "not an integer", true },
		{ "weight_negative", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "-5" } },
		  "not an integer", true },
		{ "weight_150", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "150" } },
		  "over canary-weight-total", true },
		{ "weight_total_0", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "0",
				  "nginx.ingress.kubernetes.io/canary-weight-total", "0" } },
		  "positive integer", true },
		{ "bad_regex", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
				  "nginx.ingress.kubernetes.io/canary-by-header-pattern", "(" } },
		  "not a valid regex", true },
		/* PCRE2's own message and where. */
		{ "bad_regex_offset", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
				  "nginx.ingress.kubernetes.io/canary-by-header-pattern", "(abc" } },
		  "canary-by-header-pattern '(abc' is not a valid regex: "
		  "missing closing parenthesis at offset 4", true },
		{ "bad_regex_higress", {}, { .name = "bad",
			.anns = { "higress.io/canary", "true", "higress.io/canary-by-header", "stage",
				  "higress.io/canary-by-header-pattern", "a{2,1}" } },
		  "is not a valid regex: numbers out of order in {} quantifier at offset 5", true },
		{ "bad_regex_range", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
				  "nginx.ingress.kubernetes.io/canary-by-header-pattern", "^[z-a]" } },
		  "'^[z-a]' is not a valid regex: range out of order in character class at offset 4",
		  true },
		{ "value_without_header", {}, { .name = "bad",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header-value", "gray" } },
		  "needs canary-by-header", true },
		{ "same_header_value", { .name = "pre", .created = T2,
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "stage",
				  "nginx.ingress.kubernetes.io/canary-by-header-value", "gray" } },
		  { .name = "bad", .created = T3,
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-header", "Stage",
				  "nginx.ingress.kubernetes.io/canary-by-header-value", "gray" } },
		  "conflicts", true },
		{ "same_cookie", { .name = "pre", .created = T2,
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-cookie", "beta" } },
		  { .name = "bad", .created = T3,
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-by-cookie", "beta" } },
		  "conflicts", true },
		{ "missing_service", {}, { .name = "bad", .path = "/bad", .svc = "nosuch" },
		  "not found", false },
		{ "missing_service_canary", {}, { .name = "bad", .svc = "nosuch", .anns = { CANARY } },
		  "not found", true },
		{ "canary_without_main", {}, { .name = "bad", .path = "/nomain",
			.anns = { CANARY, "nginx.ingress.kubernetes.io/canary-weight", "10" } },
		  "no non-canary Ingress", true },
		{ "class_not_served", {}, { .name = "bad", .path = "/bad", .cls = "nginx" },
		  "not served", false },
		{ "no_class", {}, { .name = "bad", .path = "/bad", .cls = OMIT },
		  "no ingress class", false },
		{ "canary_yes", {}, { .name = "bad",
			.anns = { "nginx.ingress.kubernetes.io/canary", "yes" } },
		  "neither", false },
		{ "path_type_missing", {}, { .name = "bad", .path = "/bad", .ptype = OMIT },
		  "no pathType", false },
		{ "path_type_unknown", {}, { .name = "bad", .path = "/bad", .ptype = "Regex" },
		  "unknown pathType", false },
		{ "path_not_absolute", {}, { .name = "bad", .path = "bad" },
		  "must start with '/'", false },
		{ "invalid_host", {}, { .name = "bad", .path = "/bad", .host = "exa_mple.com" },
		  "invalid host", false },
		{ "no_port", {}, { .name = "bad", .path = "/bad", .port = -1 },
		  "no valid port", false },
		{ "port_out_of_range", {}, { .name = "bad", .path = "/bad", .port = 70000 },
		  "no valid port", false },
		{ "duplicate_main", {}, { .name = "bad", .created = T2 },
		  "already routed by Ingress web-demo/web-demo", false },
		{ "next_upstream_unknown", {}, { .name = "bad", .path = "/bad",
			.anns = { "nginx.ingress.kubernetes.io/proxy-next-upstream", "error http_418" } },
		  "proxy-next-upstream 'error http_418': 'http_418' is not one of", false },
		{ "next_upstream_off_and_more", {}, { .name = "bad", .path = "/bad",
			.anns = { "nginx.ingress.kubernetes.io/proxy-next-upstream", "off error" } },
		  "'off with other values'", false },
		{ "next_upstream_tries_17", {}, { .name = "bad", .path = "/bad",
			.anns = { "nginx.ingress.kubernetes.io/proxy-next-upstream-tries", "17" } },
		  "proxy-next-upstream-tries '17' is not an integer from 0 to 16", false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *tag = cases[i].name;
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;
		size_t want_canaries = cases[i].pre.name ? 1 : 0;

		seed_world(&w);
		fleet_add(&w, ex1(T1));
		if (cases[i].pre.name)
			fleet_ing(&w, &cases[i].pre);
		fleet_ing(&w, &cases[i].bad);
		p = compute(&w);
		if (!p)
			goto next;
		expect_rejected(p, "bad", cases[i].why, tag);
		ASSERT_EQ(ing_st(p, "bad") ? ing_st(p, "bad")->canary : cases[i].canary,
			  cases[i].canary, tag);
		/* The rest is untouched. */
		expect_accepted(p, "web-demo", tag);
		if (cases[i].pre.name)
			expect_accepted(p, "pre", tag);
		ASSERT_EQ(p->n_routes, 1, tag);
		r = route_of(p, "example.com", "/svc1");
		if (ASSERT_OK_PTR(r, tag)) {
			ASSERT_STREQ(r->ingress, "web-demo/web-demo", tag);
			expect_tc(r->target, C1, 0, 1, 1, tag);
			expect_tc(r->target, C2, 0, 1, 1, tag);
			if (ASSERT_EQ(r->n_canaries, want_canaries, tag) && want_canaries)
				ASSERT_STREQ(r->canaries[0].ingress, "web-demo/pre", tag);
		}
next:
		fg_plan_free(p);
		w_fini(&w);
	}

	/* An Ingress is taken whole or not at all: one bad path of two. */
	{
		json_t *two = jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
				 "'metadata':{'name':'two','namespace':'web-demo','creationTimestamp':'%s'},"
				 "'spec':{'ingressClassName':'mse','rules':[{'host':'example.com','http':{'paths':["
				 "{'path':'/good','pathType':'Prefix','backend':{'service':{'name':'service1','port':{'number':80}}}},"
				 "{'path':'/bad','pathType':'Prefix','backend':{'service':{'name':'nosuch','port':{'number':80}}}}"
				 "]}}]}}", T2);
		struct fg_plan *p;
		struct world w;

		seed_world(&w);
		fleet_add(&w, ex1(T1));
		fleet_add(&w, two);
		p = compute(&w);
		if (p) {
			expect_rejected(p, "two", "not found", "whole");
			ASSERT_EQ(p->n_routes, 1, "whole: only /svc1");
			ASSERT_TRUE(route_of(p, "example.com", "/good") == NULL, "whole: no /good");
			expect_accepted(p, "web-demo", "whole");
		}
		fg_plan_free(p);
		w_fini(&w);
	}
	/* A canary Ingress listing the same path twice must not put two
	 * canaries on the route (with 7 canaries already there, the second
	 * one is written past canaries[FG_MAX_CANARIES - 1]). */
	{
		json_t *dup = jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
				 "'metadata':{'name':'dup','namespace':'web-demo','creationTimestamp':'%s',"
				 "'annotations':{'nginx.ingress.kubernetes.io/canary':'true',"
				 "'nginx.ingress.kubernetes.io/canary-by-header':'stage',"
				 "'nginx.ingress.kubernetes.io/canary-by-header-value':'gray'}},"
				 "'spec':{'ingressClassName':'mse','rules':["
				 "{'host':'example.com','http':{'paths':[{'path':'/svc1','pathType':'Exact',"
				 "'backend':{'service':{'name':'service1','port':{'number':80}}}}]}},"
				 "{'host':'example.com','http':{'paths':[{'path':'/svc1','pathType':'Exact',"
				 "'backend':{'service':{'name':'service1','port':{'number':80}}}}]}}]}}", T2);
		const struct fg_ingress_status *st;
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;

		seed_world(&w);
		fleet_add(&w, ex1(T1));
		fleet_add(&w, dup);
		p = compute(&w);
		if (p) {
			r = route_of(p, "example.com", "/svc1");
			st = ing_st(p, "dup");
			if (ASSERT_OK_PTR(r, "dup route") && ASSERT_OK_PTR(st, "dup status")) {
				if (st->accepted)
					ASSERT_EQ(r->n_canaries, 1, "dup path: one canary");
				else
					ASSERT_EQ(r->n_canaries, 0, "dup path rejected: none");
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

/* ------------------------------------------------------------------ */
/* ingress_class                                                        */
/* ------------------------------------------------------------------ */

static void subtest_ingress_class(void)
{
	struct ing legacy = { .name = "legacy", .cls = OMIT, .path = "/legacy",
			      .anns = { "kubernetes.io/ingress.class", "mse" } };
	struct ing other = { .name = "other", .cls = OMIT, .path = "/other",
			     .anns = { "kubernetes.io/ingress.class", "nginx" } };
	struct ing both = { .name = "both", .cls = "nginx", .path = "/both",
			    .anns = { "kubernetes.io/ingress.class", "mse" } };
	struct ing named = { .name = "named", .cls = "mse", .path = "/named" };
	const struct fg_ingress_status *st;
	struct fg_plan *p;
	struct world w;

	seed_world(&w);
	fleet_ing(&w, &legacy);
	fleet_ing(&w, &other);
	fleet_ing(&w, &both);
	fleet_ing(&w, &named);
	p = compute(&w);
	if (p) {
		if (expect_accepted(p, "legacy", "legacy annotation")) {
			ASSERT_STREQ(ing_st(p, "legacy")->ingress_class, "mse", "legacy class");
			ASSERT_OK_PTR(route_of(p, "example.com", "/legacy"), "legacy route");
		}
		expect_rejected(p, "other", "ingress class nginx is not served", "other class");
		st = ing_st(p, "other");
		if (st)
			ASSERT_STREQ(st->ingress_class, "nginx", "other class recorded");
		/* spec.ingressClassName wins over the annotation. */
		expect_rejected(p, "both", "not served", "ingressClassName wins");
		expect_accepted(p, "named", "named");
		ASSERT_EQ(p->n_routes, 2, "class routes");
	}
	fg_plan_free(p);
	w_fini(&w);

	/* A second gateway serving another class serves that class too. */
	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, gateway("internal-gateway", T1, C1, "mse-internal"));
	add_web(&w, C1, 1, 1, 0, EP_SLICE);
	add_web(&w, C2, 2, 1, 0, EP_SLICE);
	{
		struct ing internal = { .name = "internal", .cls = "mse-internal", .path = "/int" };

		fleet_ing(&w, &internal);
	}
	p = compute(&w);
	if (p) {
		ASSERT_EQ(p->n_gateways, 2, "two classes");
		ASSERT_STREQ(p->gateways[1].phase, "Listening", "second class Listening");
		expect_accepted(p, "internal", "second class");
	}
	fg_plan_free(p);
	w_fini(&w);
}

/* ------------------------------------------------------------------ */
/* host_and_paths                                                       */
/* ------------------------------------------------------------------ */

static void subtest_host_and_paths(void)
{
	static const struct {
		enum fg_path_type type;
		const char *pattern, *path;
		bool match;
	} pm[] = {
		{ FG_PATH_EXACT, "/svc1", "/svc1", true },
		{ FG_PATH_EXACT, "/svc1", "/svc1/", false },
		{ FG_PATH_EXACT, "/svc1", "/svc", false },
		{ FG_PATH_EXACT, "/svc1", "/SVC1", false },
		{ FG_PATH_EXACT, "/", "/", true },
		{ FG_PATH_EXACT, "/", "/a", false },
		{ FG_PATH_PREFIX, "/foo", "/foo", true },
		{ FG_PATH_PREFIX, "/foo", "/foo/", true },
		{ FG_PATH_PREFIX, "/foo", "/foo/bar", true },
		{ FG_PATH_PREFIX, "/foo", "/foobar", false },
		{ FG_PATH_PREFIX, "/foo", "/fo", false },
		{ FG_PATH_PREFIX, "/foo", "/", false },
		{ FG_PATH_PREFIX, "/foo/", "/foo", true },
		{ FG_PATH_PREFIX, "/foo/", "/foo/bar", true },
		{ FG_PATH_PREFIX, "/foo/", "/foobar", false },
		{ FG_PATH_PREFIX, "/", "/", true },
		{ FG_PATH_PREFIX, "/", "/anything/at/all", true },
		{ FG_PATH_PREFIX, "/aaa/bb", "/aaa/bbb", false },
		{ FG_PATH_PREFIX, "/aaa/bbb", "/aaa/bbb/", true },
		{ FG_PATH_PREFIX, "/aaa/bbb/", "/aaa/bbb", true },
		{ FG_PATH_IMPL, "/foo", "/foo/bar", true },
		{ FG_PATH_IMPL, "/foo", "/foobar", false },
	};
	static const struct {
		const char *pattern;
		bool wildcard;
		const char *host;
		bool match;
	} hm[] = {
		{ "example.com", false, "example.com", true },
		{ "example.com", false, "EXAMPLE.com", true },
		{ "example.com", false, "a.example.com", false },
		{ "example.com", false, "example.co", false },
		{ "example.com", true, "a.example.com", true },
		{ "example.com", true, "A.Example.Com", true },
		{ "example.com", true, "a.b.example.com", false },
		{ "example.com", true, "example.com", false },
		{ "example.com", true, ".example.com", false },
		{ "example.com", true, "aexample.com", false },
		{ "", false, "anything.org", true },
		{ "", false, "", true },
	};
	struct fg_plan *p;
	struct world w;
	size_t i;

	for (i = 0; i < sizeof(pm) / sizeof(pm[0]); i++) {
		char tag[128];

		snprintf(tag, sizeof(tag), "path %s %s ~ %s", fg_path_type_name(pm[i].type),
			 pm[i].pattern, pm[i].path);
		ASSERT_EQ(fg_path_matches(pm[i].type, pm[i].pattern, pm[i].path), pm[i].match, tag);
	}
	for (i = 0; i < sizeof(hm) / sizeof(hm[0]); i++) {
		char tag[128];

		snprintf(tag, sizeof(tag), "host %s%s ~ %s", hm[i].wildcard ? "*." : "",
			 hm[i].pattern, hm[i].host);
		ASSERT_EQ(fg_host_matches(hm[i].pattern, hm[i].wildcard, hm[i].host), hm[i].match, tag);
	}
	ASSERT_STREQ(fg_path_type_name(FG_PATH_EXACT), "Exact", "name Exact");
	ASSERT_STREQ(fg_path_type_name(FG_PATH_PREFIX), "Prefix", "name Prefix");
	ASSERT_STREQ(fg_path_type_name(FG_PATH_IMPL), "ImplementationSpecific", "name Impl");

	/* Match order over several Ingresses created in a scrambled order. */
	{
		static const struct ing ings[] = {
			{ .name = "any-root", .created = T1, .host = OMIT, .path = "/", .ptype = "Prefix" },
			{ .name = "dflt", .created = T1, .default_backend = true },
			{ .name = "wild-api", .created = T2, .host = "*.example.com", .path = "/api", .ptype = "Prefix" },
			{ .name = "a-root", .created = T2, .host = "A.Example.com", .path = "/", .ptype = "Prefix" },
			{ .name = "a-api", .created = T3, .host = "a.example.com", .path = "/api", .ptype = "Prefix" },
			{ .name = "a-api-v1", .created = T3, .host = "a.example.com", .path = "/api/v1", .ptype = "ImplementationSpecific" },
			{ .name = "a-exact", .created = T4, .host = "a.example.com", .path = "/x", .ptype = "Exact" },
			{ .name = "a-api-exact", .created = T4, .host = "a.example.com", .path = "/api", .ptype = "Exact" },
			{ .name = "b-root", .created = T5, .host = "b.example.com", .path = "/", .ptype = "Prefix" },
		};
		static const struct {
			const char *host; bool wildcard; const char *path; enum fg_path_type type;
			bool dflt; const char *ingress;
		} want[] = {
			{ "a.example.com", false, "/api", FG_PATH_EXACT, false, "web-demo/a-api-exact" },
			{ "a.example.com", false, "/x", FG_PATH_EXACT, false, "web-demo/a-exact" },
			{ "a.example.com", false, "/api/v1", FG_PATH_IMPL, false, "web-demo/a-api-v1" },
			{ "a.example.com", false, "/api", FG_PATH_PREFIX, false, "web-demo/a-api" },
			{ "a.example.com", false, "/", FG_PATH_PREFIX, false, "web-demo/a-root" },
			{ "b.example.com", false, "/", FG_PATH_PREFIX, false, "web-demo/b-root" },
			{ "example.com", true, "/api", FG_PATH_PREFIX, false, "web-demo/wild-api" },
			{ "", false, "/", FG_PATH_PREFIX, false, "web-demo/any-root" },
			{ "", false, "/", FG_PATH_PREFIX, true, "web-demo/dflt" },
		};
		size_t n = sizeof(ings) / sizeof(ings[0]);

		seed_world(&w);
		for (i = 0; i < n; i++)
			fleet_ing(&w, &ings[n - 1 - i]);
		p = compute(&w);
		if (p) {
			for (i = 0; i < n; i++)
				expect_accepted(p, ings[i].name, "order");
			if (ASSERT_EQ(p->n_routes, sizeof(want) / sizeof(want[0]), "order: n_routes")) {
				for (i = 0; i < p->n_routes; i++) {
					const struct fg_route *r = &p->routes[i];
					char tag[96];

					snprintf(tag, sizeof(tag), "order[%zu] %s", i, want[i].ingress);
					ASSERT_STREQ(r->host, want[i].host, tag);
					ASSERT_EQ(r->wildcard, want[i].wildcard, tag);
					ASSERT_STREQ(r->path, want[i].path, tag);
					ASSERT_EQ(r->type, want[i].type, tag);
					ASSERT_EQ(r->is_default, want[i].dflt, tag);
					ASSERT_STREQ(r->ingress, want[i].ingress, tag);
				}
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}

	/* One Ingress, two hosts and a default backend; paths default to "/". */
	{
		json_t *multi = jq("{'apiVersion':'networking.k8s.io/v1','kind':'Ingress',"
			"'metadata':{'name':'multi','namespace':'web-demo','creationTimestamp':'%s'},"
			"'spec':{'ingressClassName':'mse',"
			"'defaultBackend':{'service':{'name':'service1','port':{'number':80}}},"
			"'rules':[{'host':'one.example.com','http':{'paths':["
			"{'path':'/a','pathType':'Prefix','backend':{'service':{'name':'service1','port':{'number':80}}}},"
			"{'pathType':'Prefix','backend':{'service':{'name':'service1','port':{'number':80}}}}]}},"
			"{'host':'*.two.example.com','http':{'paths':["
			"{'path':'/b','pathType':'Exact','backend':{'service':{'name':'service1','port':{'number':80}}}}]}}]}}",
			T1);
		/* A second default backend conflicts. */
		struct ing dflt2 = { .name = "dflt2", .created = T2, .default_backend = true };

		seed_world(&w);
		fleet_add(&w, multi);
		fleet_ing(&w, &dflt2);
		p = compute(&w);
		if (p && expect_accepted(p, "multi", "multi")) {
			ASSERT_EQ(p->n_routes, 4, "multi routes");
			ASSERT_OK_PTR(route_of(p, "one.example.com", "/a"), "multi /a");
			ASSERT_OK_PTR(route_of(p, "one.example.com", "/"), "multi / (path default)");
			{
				const struct fg_route *r = route_of(p, "two.example.com", "/b");

				if (ASSERT_OK_PTR(r, "multi wildcard"))
					ASSERT_TRUE(r->wildcard, "multi wildcard flag");
			}
			if (p->n_routes == 4) {
				ASSERT_TRUE(p->routes[3].is_default, "default last");
				ASSERT_STREQ(p->routes[3].host, "", "default host");
				ASSERT_STREQ(p->routes[3].path, "/", "default path");
				/* All four share one target. */
				ASSERT_TRUE(p->routes[0].target == p->routes[3].target, "shared target");
				ASSERT_EQ(p->n_targets, 1, "one target");
			}
			expect_rejected(p, "dflt2", "already routed", "second default");
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

/* ------------------------------------------------------------------ */
/* subsets_opensergo                                                    */
/* ------------------------------------------------------------------ */

static void subtest_subsets_opensergo(void)
{
	/* C1: base, v2, gray; C2: base, v2. */
	static const char *const l1[] = { NULL, "{'opensergo.io/canary-v2':'v2','version':'v2'}",
					  "{'opensergo.io/canary':'gray'}" };
	static const char *const l2[] = { "{'version':'v1'}", "{'opensergo.io/canary-v2':'v2','version':'v2'}" };
	static const struct {
		const char *name;
		const char *anns[6];
		int w1, w2;
		const char *pod1, *pod2; /* the only (or one) pod expected */
	} cases[] = {
		{ "v2", { "mse.ingress.kubernetes.io/service-subset", "v2" }, 1, 1,
		  "web-demo-1-1", "web-demo-2-1" },
		{ "base", { "mse.ingress.kubernetes.io/service-subset", "base" }, 1, 1,
		  "web-demo-1-0", "web-demo-2-0" },
		{ "no_match_uses_all", { "mse.ingress.kubernetes.io/service-subset", "v9" }, 3, 2,
		  NULL, NULL },
		{ "labels_filter", { "mse.ingress.kubernetes.io/service-subset", "ver2",
				     "mse.ingress.kubernetes.io/subset-labels", "version v2\n" }, 1, 1,
		  "web-demo-1-1", "web-demo-2-1" },
		{ "labels_filter_colon", { "mse.ingress.kubernetes.io/service-subset", "ver1",
					   "mse.ingress.kubernetes.io/subset-labels", "version: v1" }, 0, 1,
		  NULL, "web-demo-2-0" },
		{ "labels_and_cluster", { "mse.ingress.kubernetes.io/service-subset", "c2v2",
					  "mse.ingress.kubernetes.io/subset-labels",
					  "topology.istio.io/cluster " C2 "\nversion v2\n" }, -1, 1,
		  NULL, "web-demo-2-1" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct app a1 = { .ready = 3, .mode = EP_SLICE, .labels = l1 };
		struct app a2 = { .ready = 2, .mode = EP_LEGACY, .labels = l2 };
		struct ing in = { .name = "sub" };
		const char *tag = cases[i].name;
		const struct fg_target_cluster *c;
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;
		size_t k;

		for (k = 0; cases[i].anns[k]; k++)
			in.anns[k] = cases[i].anns[k];
		w_init(&w);
		fleet_add(&w, seed_gateway());
		fleet_ing(&w, &in);
		add_app(&w, C1, 1, &a1);
		add_app(&w, C2, 2, &a2);
		p = compute(&w);
		if (!p || !expect_accepted(p, "sub", tag))
			goto next;
		r = route_of(p, "example.com", "/svc1");
		if (!ASSERT_OK_PTR(r, tag))
			goto next;
		ASSERT_STREQ(r->target->subset, cases[i].anns[1], tag);
		if (cases[i].w1 >= 0) {
			c = expect_tc(r->target, C1, 0, cases[i].w1, cases[i].w1, tag);
			if (c && cases[i].pod1 && ASSERT_EQ(c->n_eps, 1, tag))
				ASSERT_EQ(c->eps[0].pod_hash, fg_pod_hash(cases[i].pod1), tag);
		} else {
			/* pinned to C2: C1 is failover with all its endpoints */
			expect_tc(r->target, C1, 1, 3, 3, tag);
		}
		c = expect_tc(r->target, C2, 0, cases[i].w2, cases[i].w2, tag);
		if (c && cases[i].pod2 && ASSERT_EQ(c->n_eps, 1, tag))
			ASSERT_EQ(c->eps[0].pod_hash, fg_pod_hash(cases[i].pod2), tag);
next:
		fg_plan_free(p);
		w_fini(&w);
	}

	/* Targets are shared by key: a label-filtered subset must not reuse
	 * the unfiltered target of another Ingress on the same Service, nor
	 * a same-named subset with other labels. */
	{
		struct ing all = { .name = "all", .created = T1, .path = "/all" };
		struct ing v2 = { .name = "v2", .created = T2, .path = "/v2",
				  .anns = { "mse.ingress.kubernetes.io/subset-labels", "version v2" } };
		struct ing os = { .name = "os", .created = T3, .path = "/os",
				  .anns = { "mse.ingress.kubernetes.io/service-subset", "base" } };
		struct ing lb = { .name = "lb", .created = T4, .path = "/lb",
				  .anns = { "mse.ingress.kubernetes.io/service-subset", "base",
					    "mse.ingress.kubernetes.io/subset-labels", "version v2" } };
		struct app a1 = { .ready = 3, .mode = EP_SLICE, .labels = l1 };
		struct app a2 = { .ready = 2, .mode = EP_SLICE, .labels = l2 };
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;

		w_init(&w);
		fleet_add(&w, seed_gateway());
		fleet_ing(&w, &all);
		fleet_ing(&w, &v2);
		fleet_ing(&w, &os);
		fleet_ing(&w, &lb);
		add_app(&w, C1, 1, &a1);
		add_app(&w, C2, 2, &a2);
		p = compute(&w);
		if (p) {
			r = route_of(p, "example.com", "/all");
			if (ASSERT_OK_PTR(r, "key: /all")) {
				expect_tc(r->target, C1, 0, 3, 3, "key: /all");
				expect_tc(r->target, C2, 0, 2, 2, "key: /all");
			}
			/* subset-labels without service-subset: filtered by version=v2 */
			r = route_of(p, "example.com", "/v2");
			if (ASSERT_OK_PTR(r, "key: /v2")) {
				expect_tc(r->target, C1, 0, 1, 1, "key: /v2 labels-only subset");
				expect_tc(r->target, C2, 0, 1, 1, "key: /v2 labels-only subset");
			}
			r = route_of(p, "example.com", "/os");
			if (ASSERT_OK_PTR(r, "key: /os"))
				expect_tc(r->target, C1, 0, 1, 1, "key: /os opensergo base");
			/* same subset name "base", but filtered by labels version=v2 */
			r = route_of(p, "example.com", "/lb");
			if (ASSERT_OK_PTR(r, "key: /lb") && ASSERT_OK_PTR(tcl(r->target, C1), "key: /lb c1") &&
			    ASSERT_EQ(tcl(r->target, C1)->n_eps, 1, "key: /lb c1 eps"))
				ASSERT_EQ(tcl(r->target, C1)->eps[0].pod_hash, fg_pod_hash("web-demo-1-1"),
					  "key: /lb labels, not opensergo base");
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

/* ------------------------------------------------------------------ */
/* l4_loadbalancer                                                      */
/* ------------------------------------------------------------------ */

/* A member cluster's db/pg-dns Service with n ready pods and a slice. */
static void add_l4_app(struct world *w, const char *cid, int idx, int n, const char *ports_svc,
		       const char *ports_slice)
{
	json_t *slice;
	int i;

	cl_add(w, cid, jq("{'apiVersion':'v1','kind':'Service','metadata':{'name':'edge','namespace':'db'},"
			  "'spec':{'type':'ClusterIP','selector':{'app':'edge'},'ports':%s}}", ports_svc));
	slice = jq("{'apiVersion':'discovery.k8s.io/v1','kind':'EndpointSlice',"
		   "'metadata':{'name':'edge-%d','namespace':'db','labels':{'kubernetes.io/service-name':'edge'}},"
		   "'addressType':'IPv4','ports':%s,'endpoints':[]}", idx, ports_slice);
	for (i = 0; i < n; i++) {
		cl_add(w, cid, jq("{'kind':'Pod','apiVersion':'v1','metadata':{'name':'edge-%d-%d','namespace':'db',"
				  "'labels':{'app':'edge'}}}", idx, i));
		json_array_append_new(json_object_get(slice, "endpoints"),
			jq("{'addresses':['10.%d.5.%d'],'conditions':{'ready':true},"
			   "'targetRef':{'kind':'Pod','name':'edge-%d-%d','namespace':'db'}}",
			   idx, i + 1, idx, i));
	}
	cl_add(w, cid, slice);
}

static void subtest_l4_loadbalancer(void)
{
	const struct fg_target_cluster *c;
	struct fg_plan *p;
	struct world w;
	size_t i;

	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, jq("{'apiVersion':'v1','kind':'Service','metadata':{'name':'edge','namespace':'db'},"
			 "'spec':{'type':'LoadBalancer','ports':[{'name':'pg','port':5432,'protocol':'TCP'},"
			 "{'name':'dns','port':53,'protocol':'UDP'},{'name':'sc','port':9,'protocol':'SCTP'}]}}"));
	fleet_add(&w, jq("{'apiVersion':'v1','kind':'Service','metadata':{'name':'internal','namespace':'db'},"
			 "'spec':{'type':'ClusterIP','ports':[{'port':5432}]}}"));
	{
		const char *svc_ports = "[{'name':'pg','port':5432,'protocol':'TCP','targetPort':15432},"
					"{'name':'dns','port':53,'protocol':'UDP','targetPort':5353}]";
		const char *slice_ports = "[{'name':'pg','port':15432,'protocol':'TCP'},"
					  "{'name':'dns','port':5353,'protocol':'UDP'}]";

		add_l4_app(&w, C1, 1, 3, svc_ports, slice_ports);
		add_l4_app(&w, C2, 2, 1, svc_ports, slice_ports);
	}
	p = compute(&w);
	if (p && ASSERT_EQ(p->n_l4, 2, "l4 ports")) {
		for (i = 0; i < p->n_l4; i++) {
			const struct fg_l4_port *l = &p->l4[i];
			int eport = i == 0 ? 15432 : 5353;
			char tag[32];

			snprintf(tag, sizeof(tag), "l4[%zu]", i);
			ASSERT_STREQ(l->ns, "db", tag);
			ASSERT_STREQ(l->name, "edge", tag);
			ASSERT_EQ(l->port, i == 0 ? 5432 : 53, tag);
			ASSERT_EQ(l->proto, i == 0 ? FG_PROTO_TCP : FG_PROTO_UDP, tag);
			if (!ASSERT_OK_PTR(l->target, tag))
				continue;
			c = expect_tc(l->target, C1, 0, 3, 3, tag);
			if (c)
				ASSERT_TRUE(has_ep(c, "10.1.5.3", eport), tag);
			c = expect_tc(l->target, C2, 0, 1, 1, tag);
			if (c)
				ASSERT_TRUE(has_ep(c, "10.2.5.1", eport), tag);
		}
		ASSERT_EQ(p->n_routes, 0, "l4: no routes");
	}
	fg_plan_free(p);
	w_fini(&w);

	/* The same port number for TCP and UDP (DNS) with different target
	 * ports: each listener must reach its own protocol's port. */
	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, jq("{'apiVersion':'v1','kind':'Service','metadata':{'name':'edge','namespace':'db'},"
			 "'spec':{'type':'LoadBalancer','ports':[{'name':'dns-tcp','port':53,'protocol':'TCP'},"
			 "{'name':'dns-udp','port':53,'protocol':'UDP'}]}}"));
	{
		const char *svc_ports = "[{'name':'dns-tcp','port':53,'protocol':'TCP','targetPort':5353},"
					"{'name':'dns-udp','port':53,'protocol':'UDP','targetPort':53}]";
		const char *slice_ports = "[{'name':'dns-tcp','port':5353,'protocol':'TCP'},"
					  "{'name':'dns-udp','port':53,'protocol':'UDP'}]";

		add_l4_app(&w, C1, 1, 1, svc_ports, slice_ports);
		add_l4_app(&w, C2, 2, 1, svc_ports, slice_ports);
	}
	p = compute(&w);
	if (p && ASSERT_EQ(p->n_l4, 2, "dns ports")) {
		ASSERT_EQ(p->l4[0].proto, FG_PROTO_TCP, "dns tcp first");
		ASSERT_EQ(p->l4[1].proto, FG_PROTO_UDP, "dns udp second");
		ASSERT_TRUE(has_ep(tcl(p->l4[0].target, C1), "10.1.5.1", 5353), "dns/tcp -> 5353");
		ASSERT_TRUE(p->l4[0].target != p->l4[1].target, "dns: tcp and udp targets differ");
		ASSERT_TRUE(has_ep(tcl(p->l4[1].target, C1), "10.1.5.1", 53), "dns/udp -> 53");
	}
	fg_plan_free(p);
	w_fini(&w);
}

/* ------------------------------------------------------------------ */
/* json_views                                                           */
/* ------------------------------------------------------------------ */

static json_t *jfind(json_t *arr, const char *key, const char *val)
{
	json_t *v;
	size_t i;

	json_array_foreach(arr, i, v)
		if (json_is_string(json_object_get(v, key)) &&
		    !strcmp(json_string_value(json_object_get(v, key)), val))
			return v;
	return NULL;
}

static double jreal(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_number(v) ? json_number_value(v) : -1;
}

/* A share (percent) in thousandths, to compare as integers. */
static long long share_milli(json_t *o)
{
	return llround(jreal(o, "share") * 1000);
}

static long long jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? json_integer_value(v) : -1;
}

static const char *jstrv(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	return json_is_string(v) ? json_string_value(v) : "(none)";
}

static void subtest_json_views(void)
{
	struct ing bad = { .name = "bad", .path = "/bad", .svc = "nosuch" };
	struct ing wild = { .name = "wild", .host = "*.example.org", .path = "/", .ptype = "Prefix" };
	json_t *routes, *ings, *r, *t, *cl, *cn, *lb;
	struct fg_plan *p;
	struct world w;

	w_init(&w);
	fleet_add(&w, seed_gateway());
	fleet_add(&w, ex1(T1));
	fleet_add(&w, ex5_main(T2));
	fleet_add(&w, ex5_canary(T3));
	fleet_ing(&w, &bad);
	fleet_ing(&w, &wild);
	add_web(&w, C1, 1, 3, 0, EP_SLICE);
	add_web(&w, C2, 2, 1, 0, EP_SLICE);
	p = compute(&w);
	if (!p)
		goto out;

	routes = fg_plan_routes_json(p);
	if (ASSERT_TRUE(json_is_array(routes), "routes array")) {
		ASSERT_EQ(json_array_size(routes), p->n_routes, "routes size");

		r = jfind(routes, "path", "/svc1");
		if (ASSERT_OK_PTR(r, "/svc1 json")) {
			ASSERT_STREQ(jstrv(r, "host"), "example.com", "host");
			ASSERT_STREQ(jstrv(r, "pathType"), "Exact", "pathType");
			ASSERT_TRUE(json_is_false(json_object_get(r, "default")), "default false");
			ASSERT_STREQ(jstrv(r, "ingress"), "web-demo/web-demo", "ingress");
			ASSERT_EQ(json_array_size(json_object_get(r, "canaries")), 0, "no canaries");
			t = json_object_get(r, "target");
			ASSERT_STREQ(jstrv(t, "namespace"), NS, "namespace");
			ASSERT_STREQ(jstrv(t, "service"), "service1", "service");
			ASSERT_EQ(jint(t, "port"), 80, "port");
			ASSERT_STREQ(jstrv(t, "portName"), "", "portName");
			ASSERT_STREQ(jstrv(t, "subset"), "", "subset");
			cl = jfind(json_object_get(t, "clusters"), "cluster", C1);
			if (ASSERT_OK_PTR(cl, "c1 json")) {
				ASSERT_EQ(jint(cl, "tier"), 0, "c1 tier");
				ASSERT_EQ(jint(cl, "weight"), 3, "c1 weight");
				ASSERT_EQ(jint(cl, "ready"), 3, "c1 ready");
				ASSERT_EQ(share_milli(cl), (long long)(75.0 * 1000), "c1 share 75%");
				ASSERT_STREQ(jstrv(cl, "why"), "3 ready endpoints", "c1 why");
			}
			cl = jfind(json_object_get(t, "clusters"), "cluster", C2);
			if (ASSERT_OK_PTR(cl, "c2 json"))
				ASSERT_EQ(share_milli(cl), (long long)(25.0 * 1000), "c2 share 25%");
		}

		r = jfind(routes, "path", "/svc1-w");
		if (ASSERT_OK_PTR(r, "/svc1-w json")) {
			t = json_object_get(r, "target");
			ASSERT_STREQ(jstrv(t, "subset"), "cluster-demo-1", "w subset");
			cl = jfind(json_object_get(t, "clusters"), "cluster", C1);
			if (ASSERT_OK_PTR(cl, "w c1"))
				ASSERT_EQ(share_milli(cl), (long long)(100.0 * 1000), "w c1 100% of tier 0");
			cl = jfind(json_object_get(t, "clusters"), "cluster", C2);
			if (ASSERT_OK_PTR(cl, "w c2")) {
				ASSERT_EQ(jint(cl, "tier"), 1, "w c2 tier 1");
				ASSERT_EQ(share_milli(cl), (long long)(100.0 * 1000), "w c2 100% of tier 1");
			}
			cn = json_array_get(json_object_get(r, "canaries"), 0);
			if (ASSERT_OK_PTR(cn, "w canary")) {
				ASSERT_STREQ(jstrv(cn, "ingress"), "web-demo/web-demo-weight-canary", "canary ingress");
				ASSERT_EQ(jint(cn, "weight"), 10, "canary weight");
				ASSERT_EQ(jint(cn, "weightTotal"), 100, "canary weightTotal");
				ASSERT_FALSE(json_object_get(cn, "header"), "no header key");
				ASSERT_FALSE(json_object_get(cn, "cookie"), "no cookie key");
				t = json_object_get(cn, "target");
				ASSERT_STREQ(jstrv(t, "subset"), "cluster-demo-2", "canary subset");
				cl = jfind(json_object_get(t, "clusters"), "cluster", C2);
				if (ASSERT_OK_PTR(cl, "canary c2")) {
					ASSERT_EQ(jint(cl, "tier"), 0, "canary c2 tier");
					ASSERT_EQ(share_milli(cl), (long long)(100.0 * 1000), "canary c2 share");
				}
			}
		}

		r = jfind(routes, "ingress", "web-demo/wild");
		if (ASSERT_OK_PTR(r, "wild json")) {
			ASSERT_STREQ(jstrv(r, "host"), "*.example.org", "wild host shown");
			ASSERT_STREQ(jstrv(r, "pathType"), "Prefix", "wild pathType");
		}
	}
	json_decref(routes);

	ings = fg_plan_ingresses_json(p, ADDR);
	if (ASSERT_TRUE(json_is_array(ings), "ingresses array")) {
		ASSERT_EQ(json_array_size(ings), 5, "ingresses size");
		r = jfind(ings, "name", "web-demo");
		if (ASSERT_OK_PTR(r, "web-demo json")) {
			ASSERT_STREQ(jstrv(r, "namespace"), NS, "ns");
			ASSERT_STREQ(jstrv(r, "class"), "mse", "class");
			ASSERT_TRUE(json_is_true(json_object_get(r, "accepted")), "accepted");
			ASSERT_TRUE(json_is_false(json_object_get(r, "canary")), "not canary");
			ASSERT_FALSE(json_object_get(r, "reason"), "no reason");
			lb = json_array_get(json_object_get(json_object_get(r, "loadBalancer"), "ingress"), 0);
			ASSERT_STREQ(jstrv(lb, "ip"), ADDR, "loadBalancer.ingress[0].ip");
		}
		r = jfind(ings, "name", "web-demo-weight-canary");
		if (ASSERT_OK_PTR(r, "canary json")) {
			ASSERT_TRUE(json_is_true(json_object_get(r, "canary")), "canary flag");
			ASSERT_OK_PTR(json_object_get(r, "loadBalancer"), "canary loadBalancer");
		}
		r = jfind(ings, "name", "bad");
		if (ASSERT_OK_PTR(r, "bad json")) {
			ASSERT_TRUE(json_is_false(json_object_get(r, "accepted")), "bad not accepted");
			ASSERT_FALSE(json_object_get(r, "loadBalancer"), "bad: no loadBalancer");
			ASSERT_OK_PTR(strstr(jstrv(r, "reason"), "not found"), "bad reason");
		}
	}
	json_decref(ings);

	/* No address yet: no loadBalancer at all. */
	ings = fg_plan_ingresses_json(p, NULL);
	r = jfind(ings, "name", "web-demo");
	if (ASSERT_OK_PTR(r, "no address"))
		ASSERT_FALSE(json_object_get(r, "loadBalancer"), "no address: no loadBalancer");
	json_decref(ings);
	ings = fg_plan_ingresses_json(p, "");
	r = jfind(ings, "name", "web-demo");
	if (ASSERT_OK_PTR(r, "empty address"))
		ASSERT_FALSE(json_object_get(r, "loadBalancer"), "empty address: no loadBalancer");
	json_decref(ings);
out:
	fg_plan_free(p);
	w_fini(&w);
}

/* ------------------------------------------------------------------ */

/* proxy-next-upstream and -tries (here by its higress.io alias) into the
 * route's policy. */
static void subtest_retry_policy(void)
{
	static const struct {
		const char *name, *nu, *tries;
		__u32 want_nu, want_tries;
	} cases[] = {
		{ "default", NULL, NULL, FG_NU_ERROR | FG_NU_TIMEOUT, 2 },
		{ "off", "off", NULL, 0, 2 },
		{ "words", "error timeout http_503 non_idempotent", "3",
		  FG_NU_ERROR | FG_NU_TIMEOUT | FG_NU_HTTP_503 | FG_NU_NON_IDEMPOTENT, 3 },
		{ "commas", "http_502,http_504, invalid_header", "1",
		  FG_NU_HTTP_502 | FG_NU_HTTP_504 | FG_NU_INVALID_HEADER, 1 },
		{ "tries_0_unlimited", "error", "0", FG_NU_ERROR, FG_NU_MAX_TRIES },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ing a = { .name = "pol", .path = "/pol" };
		const struct fg_route *r;
		struct fg_plan *p;
		struct world w;
		int k = 0;

		if (cases[i].nu) {
			a.anns[k++] = "nginx.ingress.kubernetes.io/proxy-next-upstream";
			a.anns[k++] = cases[i].nu;
		}
		if (cases[i].tries) {
			a.anns[k++] = "higress.io/proxy-next-upstream-tries";
			a.anns[k++] = cases[i].tries;
		}
		seed_world(&w);
		fleet_add(&w, ex1(T1));
		fleet_ing(&w, &a);
		p = compute(&w);
		if (p) {
			expect_accepted(p, "pol", cases[i].name);
			r = route_of(p, "example.com", "/pol");
			if (ASSERT_OK_PTR(r, cases[i].name)) {
				ASSERT_EQ(r->policy.next_upstream, cases[i].want_nu, cases[i].name);
				ASSERT_EQ(r->policy.next_upstream_tries, cases[i].want_tries,
					  cases[i].name);
			}
		}
		fg_plan_free(p);
		w_fini(&w);
	}
}

FG_TEST(routes)
{
	if (test__start_subtest("gateway_status"))
		subtest_gateway_status();
	if (test__start_subtest("example1_pod_counts"))
		subtest_example1_pod_counts();
	if (test__start_subtest("example2_pinned"))
		subtest_example2_pinned();
	if (test__start_subtest("example3_header_canary"))
		subtest_example3_header_canary();
	if (test__start_subtest("example4_failover_data"))
		subtest_example4_failover_data();
	if (test__start_subtest("example5_weight"))
		subtest_example5_weight();
	if (test__start_subtest("canary_semantics"))
		subtest_canary_semantics();
	if (test__start_subtest("invalid_inputs"))
		subtest_invalid_inputs();
	if (test__start_subtest("ingress_class"))
		subtest_ingress_class();
	if (test__start_subtest("host_and_paths"))
		subtest_host_and_paths();
	if (test__start_subtest("subsets_opensergo"))
		subtest_subsets_opensergo();
	if (test__start_subtest("l4_loadbalancer"))
		subtest_l4_loadbalancer();
	if (test__start_subtest("json_views"))
		subtest_json_views();
	if (test__start_subtest("retry_policy"))
		subtest_retry_policy();
}

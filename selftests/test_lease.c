// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Leases (agent/lease.c) against selftests/kube/apiserver.py: node
 * heartbeats and the live replica count (a node that stops announcing, one
 * that stops renewing, one that leaves cleanly), the election of one status
 * writer (a clean handover, an expired holder taken over only after the
 * lease duration, resourceVersion conflicts), and the status it writes:
 * the MseIngressConfig's status and status.loadBalancer.ingress of the
 * Ingresses of its class and of LoadBalancer Services, written once (not
 * again while nothing changes), read back with Debian's kubectl.
 *
 * Lease duration 2 s throughout (renewed every 0.67 s).
 */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "e2e_lib.h"
#include "kubectl_lib.h"
#include "lease.h"
#include "test_progs.h"

#define NS "fleetgate-system"
#define GW "ackone-gateway"
#define VIP "10.0.9.1"
#define DURATION 2

struct env {
	char dir[PATH_MAX - 64];
	char kubeconfig[PATH_MAX];
	char base[64];
	char log[PATH_MAX];
	const char *kubectl;
	pid_t pid;
};

static struct env env;

static bool server_start(void)
{
	char script[PATH_MAX], portfile[PATH_MAX], exe[PATH_MAX - 64], *slash;
	/* No --token: kubectl sends no bearer token over plain http, and
	 * credentials are kube.c's, tested by test_kube.c. */
	char *argv[] = { "python3", script, "--port-file", portfile, NULL };
	long long deadline = e2e_now_ms() + 10000;
	ssize_t n;
	FILE *f;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	snprintf(script, sizeof(script), "%s/../selftests/kube/apiserver.py", exe);
	if (access(script, R_OK))
		snprintf(script, sizeof(script), "selftests/kube/apiserver.py");
	snprintf(portfile, sizeof(portfile), "%s/port", env.dir);
	snprintf(env.log, sizeof(env.log), "%s/apiserver.log", env.dir);
	env.pid = e2e_spawn(env.log, NULL, argv);
	if (env.pid < 0)
		return false;
	while (e2e_now_ms() < deadline) {
		int port = 0;

		f = fopen(portfile, "r");
		if (f) {
			if (fscanf(f, "%d", &port) == 1 && port > 0) {
				fclose(f);
				snprintf(env.base, sizeof(env.base), "http://127.0.0.1:%d", port);
				return true;
			}
			fclose(f);
		}
		e2e_sleep_ms(20);
	}
	return false;
}

/* METHOD PATH [body] on the server; the answer parsed (NULL if not JSON),
 * the HTTP status in *code. */
static json_t *api(const char *method, const char *path, const char *body, int *code)
{
	char bodyfile[PATH_MAX], *out, *nl;
	json_error_t jerr;
	json_t *doc = NULL;
	int st;
	FILE *f;

	*code = 0;
	snprintf(bodyfile, sizeof(bodyfile), "%s/body.json", env.dir);
	f = fopen(bodyfile, "w");
	if (!f)
		return NULL;
	fputs(body ? body : "", f);
	fclose(f);
	out = e2e_capture(&st, true,
			  "curl -s -X %s -H 'Content-Type: %s' %s%s -w '\\n%%{http_code}' '%s%s'",
			  method, !strcmp(method, "PATCH") ? "application/merge-patch+json"
							   : "application/json",
			  body ? "--data-binary @" : "", body ? bodyfile : "", env.base, path);
	if (!out)
		return NULL;
	nl = strrchr(out, '\n');
	if (nl) {
		*code = atoi(nl + 1);
		*nl = '\0';
	}
	doc = json_loads(out, 0, &jerr);
	free(out);
	return doc;
}

/* Now as a MicroTime, "2024-05-01T10:00:00.123456Z". */
static void micro_now(char *buf, size_t len)
{
	struct timespec ts;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", gmtime(&ts.tv_sec));
	snprintf(buf, len, "%.20s.%06dZ", base, (int)(ts.tv_nsec / 1000) % 1000000);
}

static bool apply(const char *obj)
{
	int code;
	json_t *r = api("POST", "/_test/apply", obj, &code);

	json_decref(r);
	return code == 200;
}

static json_t *state(bool announced)
{
	return json_pack("{s:b, s:[s], s:[s], s:[{s:s, s:{s:s, s:[{s:s}]}}],"
			 " s:[{s:s, s:s, s:b}, {s:s, s:s, s:b}], s:[{s:s, s:s}]}",
			 "announced", announced, "vips", VIP, "serving", GW, "gateways", "name", GW,
			 "status", "status", "Running", "remoteClusters", "clusterId", "c1",
			 "ingresses", "namespace", "web-demo", "name", "web", "accepted", 1,
			 "namespace", "web-demo", "name", "rejected", "accepted", 0, "services",
			 "namespace", "web-demo", "name", "tcp-echo");
}

static struct fg_lease *node(const char *name, bool stand)
{
	struct fg_lease_opts o = {
		.kubeconfig = env.kubeconfig,
		.namespace = NS,
		.node_name = name,
		.duration_s = DURATION,
		.no_status = !stand,
	};
	struct fg_lease *l = NULL;

	if (fg_lease_new(&l, &o))
		return NULL;
	return l;
}

/* ms until fg_lease_replicas(l, GW) == want, or -1. */
static long wait_replicas(struct fg_lease *l, int want, unsigned timeout_ms)
{
	long long t0 = e2e_now_ms();

	while (e2e_now_ms() - t0 < timeout_ms) {
		if (fg_lease_replicas(l, GW) == want)
			return (long)(e2e_now_ms() - t0);
		e2e_sleep_ms(20);
	}
	printf("lease: wanted %d replicas, have %d\n", want, fg_lease_replicas(l, GW));
	return -1;
}

static void subtest_heartbeat(void)
{
	struct fg_lease *a = node("node-a", false), *b = node("Node_B", false);
	char ghost[512], now[40];
	json_t *obj, *ann;
	long ms;
	int code;

	if (!ASSERT_OK_PTR(a, "node a") || !ASSERT_OK_PTR(b, "node b"))
		goto out;
	fg_lease_publish(a, state(true));
	fg_lease_publish(b, state(true));
	ms = wait_replicas(a, 2, 4000);
	printf("lease: both nodes live after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "node a counts 2 replicas");
	ASSERT_GE(wait_replicas(b, 2, 2000), 0, "node b counts 2 replicas");

	obj = api("GET", "/apis/coordination.k8s.io/v1/namespaces/" NS
		  "/leases/fleetgate-node-node-a", NULL, &code);
	ASSERT_EQ(code, 200, "GET node a's Lease");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(obj, "spec"),
						       "holderIdentity")), "node-a", "holderIdentity");
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(obj, "spec"),
						     "leaseDurationSeconds")), DURATION,
		  "leaseDurationSeconds");
	ann = json_object_get(json_object_get(obj, "metadata"), "annotations");
	ASSERT_STREQ(json_string_value(json_object_get(ann, "fleetgate.io/vips")), VIP, "vips");
	ASSERT_STREQ(json_string_value(json_object_get(ann, "fleetgate.io/serving")), GW,
		     "serving");
	ASSERT_STREQ(json_string_value(json_object_get(json_object_get(json_object_get(obj,
		     "metadata"), "labels"), "fleetgate.io/lease")), "node", "label");
	json_decref(obj);
	obj = api("GET", "/apis/coordination.k8s.io/v1/namespaces/" NS
		  "/leases/fleetgate-node-node-b", NULL, &code);
	ASSERT_EQ(code, 200, "node name sanitised: fleetgate-node-node-b");
	json_decref(obj);

	/* Not announcing: not a replica. */
	fg_lease_publish(b, state(false));
	ms = wait_replicas(a, 1, 2000);
	printf("lease: a node that withdrew leaves the count after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "withdrawn node not counted");
	fg_lease_publish(b, state(true));
	ASSERT_GE(wait_replicas(a, 2, 2000), 0, "counted again");

	/* A node that stops renewing (a crash) drops out after the duration,
	 * by this node's clock. */
	micro_now(now, sizeof(now));
	snprintf(ghost, sizeof(ghost),
		 "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":"
		 "{\"name\":\"fleetgate-node-ghost\",\"labels\":{\"fleetgate.io/lease\":\"node\"},"
		 "\"annotations\":{\"fleetgate.io/announced\":\"true\",\"fleetgate.io/serving\":"
		 "\"" GW "\",\"fleetgate.io/vips\":\"" VIP "\"}},\"spec\":{\"holderIdentity\":"
		 "\"ghost\",\"leaseDurationSeconds\":%d,\"renewTime\":\"%s\"}}", DURATION, now);
	json_decref(api("POST", "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases", ghost,
			&code));
	ASSERT_EQ(code, 201, "ghost Lease created");
	ASSERT_GE(wait_replicas(a, 3, 2000), 0, "ghost counted while fresh");
	ms = wait_replicas(a, 2, 5000);
	printf("lease: a node that stopped renewing left the count %ld ms after its first "
	       "sight (duration %d s)\n", ms, DURATION);
	ASSERT_GE(ms, 0, "ghost dropped");

	/* A clean stop deletes the Lease. */
	fg_lease_free(b);
	b = NULL;
	obj = api("GET", "/apis/coordination.k8s.io/v1/namespaces/" NS
		  "/leases/fleetgate-node-node-b", NULL, &code);
	json_decref(obj);
	ASSERT_EQ(code, 404, "node b's Lease deleted at stop");
	ms = wait_replicas(a, 1, 2000);
	printf("lease: a node that stopped cleanly left the count after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "stopped node not counted");
out:
	fg_lease_free(a);
	fg_lease_free(b);
}

static const char *leader_holder(void)
{
	static char buf[128];
	int code;
	json_t *l = api("GET", "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/"
			FG_LEASE_LEADER_NAME, NULL, &code);

	snprintf(buf, sizeof(buf), "%s", json_string_value(json_object_get(json_object_get(l,
		 "spec"), "holderIdentity")) ?: "");
	json_decref(l);
	return buf;
}

static char *jget(const char *path, const char *field_path)
{
	int code;
	json_t *o = api("GET", path, NULL, &code), *v = o;
	char *dup, *tok, *save = NULL, *res = NULL;

	dup = strdup(field_path);
	for (tok = strtok_r(dup, ".", &save); tok && v; tok = strtok_r(NULL, ".", &save))
		v = json_is_array(v) ? json_array_get(v, atoi(tok)) : json_object_get(v, tok);
	if (json_is_string(v))
		res = strdup(json_string_value(v));
	else if (v)
		res = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	free(dup);
	json_decref(o);
	return res ? res : strdup("");
}

/* ms until path's field equals want, or -1. */
static long wait_field(const char *path, const char *field, const char *want, unsigned timeout_ms)
{
	long long t0 = e2e_now_ms();
	char *v = NULL;

	while (e2e_now_ms() - t0 < timeout_ms) {
		free(v);
		v = jget(path, field);
		if (!strcmp(v, want)) {
			free(v);
			return (long)(e2e_now_ms() - t0);
		}
		e2e_sleep_ms(50);
	}
	printf("lease: %s %s: wanted '%s', have '%s'\n", path, field, want, v);
	free(v);
	return -1;
}

static int count_patches(void)
{
	int code, n = 0;
	json_t *log = api("GET", "/_test/log", NULL, &code), *e;
	size_t i;

	json_array_foreach(log, i, e)
		if (!strcmp(json_string_value(json_object_get(e, "method")) ?: "", "PATCH"))
			n++;
	json_decref(log);
	return n;
}

#define ING_PATH "/apis/networking.k8s.io/v1/namespaces/web-demo/ingresses/"
#define GW_PATH "/apis/mse.alibabacloud.com/v1alpha1/mseingressconfigs/" GW
#define SVC_PATH "/api/v1/namespaces/web-demo/services/tcp-echo"

static void kubectl_checks(bool want_ip)
{
	char kc[PATH_MAX], cache[PATH_MAX], version[128] = "";
	char *out;
	int st;

	if (!env.kubectl) {
		env.kubectl = kubectl_find(version, sizeof(version));
		if (env.kubectl)
			printf("lease: kubectl %s: %s\n", env.kubectl, version);
	}
	if (!env.kubectl) {
		printf("lease: no kubectl (Debian package kubernetes-client): not read back\n");
		return;
	}
	snprintf(kc, sizeof(kc), "%s/kubectl.kubeconfig", env.dir);
	snprintf(cache, sizeof(cache), "%s/kubectl-cache", env.dir);
	if (!ASSERT_OK(kubectl_write_kubeconfig(kc, env.base, NULL), "kubectl kubeconfig"))
		return;
	out = e2e_capture(&st, false, "%s --kubeconfig %s --cache-dir %s get ingress -n web-demo 2>&1",
			  env.kubectl, kc, cache);
	ASSERT_EQ(st, 0, "kubectl get ingress");
	if (out) {
		char *row = strstr(out, "\nweb ");

		ASSERT_OK_PTR(strstr(out, "ADDRESS"), "ADDRESS column");
		if (ASSERT_OK_PTR(row, "row of web"))
			_CHECK(!!strstr(row, VIP) != want_ip, "kubectl ADDRESS of web",
			       "row '%.80s', VIP %s expected %s", row + 1, VIP,
			       want_ip ? "shown" : "gone");
	}
	free(out);
	out = e2e_capture(&st, false, "%s --kubeconfig %s --cache-dir %s get ingress web -n web-demo "
			  "-o jsonpath='{.status.loadBalancer.ingress[*].ip}' 2>&1", env.kubectl, kc,
			  cache);
	ASSERT_EQ(st, 0, "kubectl get ingress -o jsonpath");
	ASSERT_STREQ(out ? out : "", want_ip ? VIP : "", "status.loadBalancer.ingress[*].ip");
	free(out);
	if (!want_ip)
		return;
	out = e2e_capture(&st, false, "%s --kubeconfig %s --cache-dir %s get mseingressconfig " GW
			  " -o jsonpath='{.status.status} {.status.remoteClusters[0].clusterId}' 2>&1",
			  env.kubectl, kc, cache);
	ASSERT_EQ(st, 0, "kubectl get mseingressconfig");
	ASSERT_STREQ(out ? out : "", "Listening c1", "MseIngressConfig status through kubectl");
	free(out);
	out = e2e_capture(&st, false, "%s --kubeconfig %s --cache-dir %s get svc tcp-echo -n web-demo "
			  "-o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>&1", env.kubectl, kc,
			  cache);
	ASSERT_STREQ(out ? out : "", VIP, "Service EXTERNAL-IP through kubectl");
	free(out);
	free(e2e_capture(&st, false, "%s --kubeconfig %s --cache-dir %s get leases -n " NS " 2>&1",
			 env.kubectl, kc, cache));
}

static void subtest_status_writer(void)
{
	struct fg_lease *c = node("node-c", true), *d = node("node-d", true), *leader, *other;
	int patches;
	long ms;

	if (!ASSERT_OK_PTR(c, "node c") || !ASSERT_OK_PTR(d, "node d"))
		goto out;
	ASSERT_TRUE(apply("{\"apiVersion\":\"mse.alibabacloud.com/v1alpha1\",\"kind\":"
			  "\"MseIngressConfig\",\"metadata\":{\"name\":\"" GW "\"},\"spec\":"
			  "{\"common\":{\"instance\":{\"replicas\":3}},\"ingress\":{\"local\":"
			  "{\"ingressClass\":\"mse\"}}}}"), "apply MseIngressConfig");
	ASSERT_TRUE(apply("{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"Ingress\","
			  "\"metadata\":{\"name\":\"web\",\"namespace\":\"web-demo\"},\"spec\":"
			  "{\"ingressClassName\":\"mse\",\"rules\":[{\"host\":\"example.com\"}]}}"),
		    "apply Ingress web");
	ASSERT_TRUE(apply("{\"apiVersion\":\"networking.k8s.io/v1\",\"kind\":\"Ingress\","
			  "\"metadata\":{\"name\":\"rejected\",\"namespace\":\"web-demo\"},\"spec\":"
			  "{\"ingressClassName\":\"mse\"},\"status\":{\"loadBalancer\":{\"ingress\":"
			  "[{\"ip\":\"192.0.2.99\"}]}}}"), "apply Ingress rejected");
	ASSERT_TRUE(apply("{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":"
			  "\"tcp-echo\",\"namespace\":\"web-demo\"},\"spec\":{\"type\":"
			  "\"LoadBalancer\",\"ports\":[{\"port\":7000}]}}"), "apply Service");
	fg_lease_publish(c, state(true));
	fg_lease_publish(d, state(true));

	for (ms = 0; ms < 4000 && !(fg_lease_leader(c) ^ fg_lease_leader(d)); ms += 20)
		e2e_sleep_ms(20);
	if (!ASSERT_TRUE(fg_lease_leader(c) ^ fg_lease_leader(d), "exactly one writer"))
		goto out;
	leader = fg_lease_leader(c) ? c : d;
	other = leader == c ? d : c;
	printf("lease: %s writes the status (elected in %ld ms)\n",
	       leader == c ? "node-c" : "node-d", ms);
	ASSERT_STREQ(leader_holder(), leader == c ? "node-c" : "node-d", "holderIdentity");

	ASSERT_GE(wait_field(ING_PATH "web", "status.loadBalancer.ingress.0.ip", VIP, 3000), 0,
		  "Ingress web: status.loadBalancer.ingress[0].ip");
	ASSERT_GE(wait_field(ING_PATH "rejected", "status.loadBalancer.ingress", "[]", 3000), 0,
		  "rejected Ingress of our class: no address");
	/* Running on the node, but a node serves it: Listening. */
	ASSERT_GE(wait_field(GW_PATH, "status.status", "Listening", 3000), 0,
		  "MseIngressConfig status.status");
	ASSERT_GE(wait_field(GW_PATH, "status.remoteClusters.0.clusterId", "c1", 1000), 0,
		  "MseIngressConfig status.remoteClusters");
	ASSERT_GE(wait_field(SVC_PATH, "status.loadBalancer.ingress.0.ip", VIP, 3000), 0,
		  "Service status.loadBalancer.ingress[0].ip");
	ASSERT_GE(wait_field(GW_PATH, "spec.common.instance.replicas", "3", 100), 0,
		  "spec untouched");
	patches = count_patches();
	e2e_sleep_ms(1500);
	ASSERT_EQ(count_patches(), patches, "nothing written again while nothing changes");
	kubectl_checks(true);

	/* The writer leaves cleanly: the other takes over at once. */
	fg_lease_free(leader);
	if (leader == c)
		c = NULL;
	else
		d = NULL;
	for (ms = 0; ms < 4000 && !fg_lease_leader(other); ms += 20)
		e2e_sleep_ms(20);
	printf("lease: the other node writes the status %ld ms after the writer stopped\n", ms);
	ASSERT_TRUE(fg_lease_leader(other), "handover");
	ASSERT_LT(ms, 1500, "handover within a renew period or so");

	/* No node announces: no address. */
	fg_lease_publish(other, state(false));
	ASSERT_GE(wait_field(ING_PATH "web", "status.loadBalancer.ingress", "[]", 3000), 0,
		  "no live node: no address");
	kubectl_checks(false);
out:
	fg_lease_free(c);
	fg_lease_free(d);
}

static void subtest_takeover(void)
{
	char body[1024], now[40];
	struct fg_lease *e = NULL;
	long long t0;
	json_t *o;
	int code;
	long ms;

	/* A writer that died: its Lease is taken over only once it has not
	 * been renewed for the duration. */
	o = api("GET", "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/"
		FG_LEASE_LEADER_NAME, NULL, &code);
	micro_now(now, sizeof(now));
	snprintf(body, sizeof(body),
		 "{\"apiVersion\":\"coordination.k8s.io/v1\",\"kind\":\"Lease\",\"metadata\":"
		 "{\"name\":\"" FG_LEASE_LEADER_NAME "\",\"resourceVersion\":\"%s\"},\"spec\":"
		 "{\"holderIdentity\":\"dead-node\",\"leaseDurationSeconds\":%d,\"renewTime\":"
		 "\"%s\",\"acquireTime\":\"%s\",\"leaseTransitions\":7}}",
		 json_string_value(json_object_get(json_object_get(o, "metadata"),
						   "resourceVersion")) ?: "", DURATION, now, now);
	json_decref(o);
	json_decref(api(code == 200 ? "PUT" : "POST", code == 200 ?
			"/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/" FG_LEASE_LEADER_NAME :
			"/apis/coordination.k8s.io/v1/namespaces/" NS "/leases", body, &code));
	ASSERT_TRUE(code == 200 || code == 201, "a dead writer's Lease");
	t0 = e2e_now_ms();
	e = node("node-e", true);
	if (!ASSERT_OK_PTR(e, "node e"))
		return;
	fg_lease_publish(e, state(true));
	e2e_sleep_ms(1200);
	ASSERT_FALSE(fg_lease_leader(e), "not taken before the duration");
	while (e2e_now_ms() - t0 < 5000 && !fg_lease_leader(e))
		e2e_sleep_ms(20);
	ms = (long)(e2e_now_ms() - t0);
	printf("lease: a dead writer's Lease taken over after %ld ms (duration %d s)\n", ms,
	       DURATION);
	ASSERT_TRUE(fg_lease_leader(e), "taken over");
	ASSERT_GE(ms, DURATION * 1000 - 300, "not before the duration");
	o = api("GET", "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/"
		FG_LEASE_LEADER_NAME, NULL, &code);
	ASSERT_EQ(json_integer_value(json_object_get(json_object_get(o, "spec"),
						     "leaseTransitions")), 8, "leaseTransitions + 1");
	json_decref(o);

	/* Someone else changes the node's Lease: the next renew conflicts
	 * (409), reads it again and goes on. */
	o = api("GET", "/apis/coordination.k8s.io/v1/namespaces/" NS "/leases/fleetgate-node-node-e",
		NULL, &code);
	json_object_set_new(json_object_get(json_object_get(o, "metadata"), "labels"), "touched",
			    json_string("yes"));
	{
		char *dump = json_dumps(o, JSON_COMPACT);

		json_decref(api("PUT", "/apis/coordination.k8s.io/v1/namespaces/" NS
				"/leases/fleetgate-node-node-e", dump, &code));
		free(dump);
	}
	ASSERT_EQ(code, 200, "node e's Lease changed behind its back");
	json_decref(o);
	e2e_sleep_ms(1500);
	o = fg_lease_status(e);
	printf("lease: status after the conflict: %s\n", json_dumps(o, JSON_COMPACT));
	ASSERT_STREQ(json_string_value(json_object_get(o, "error")), "", "no error left");
	json_decref(o);
	ms = wait_replicas(e, 1, 2000);
	ASSERT_GE(ms, 0, "still live after the conflict");
	fg_lease_free(e);
}

FG_TEST(lease)
{
	if (fg_sh("command -v python3 >/dev/null && command -v curl >/dev/null") != 0) {
		test__skip("needs python3 and curl");
		return;
	}
	memset(&env, 0, sizeof(env));
	snprintf(env.dir, sizeof(env.dir), "%s/lease", test__tmpdir());
	snprintf(env.kubeconfig, sizeof(env.kubeconfig), "%s/kubeconfig", env.dir);
	if (!ASSERT_EQ(fg_sh("mkdir -p %s", env.dir), 0, "mkdir") ||
	    !ASSERT_TRUE(server_start(), "apiserver.py started"))
		goto out;
	if (!ASSERT_OK(kubectl_write_kubeconfig(env.kubeconfig, env.base, NULL), "kubeconfig"))
		goto out;
	if (test__start_subtest("heartbeat"))
		subtest_heartbeat();
	if (test__start_subtest("status_writer"))
		subtest_status_writer();
	if (test__start_subtest("takeover"))
		subtest_takeover();
out:
	if (env.pid > 0)
		e2e_stop_child(&env.pid, SIGKILL, 2000);
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The Kubernetes API client (agent/kube.c) against selftests/kube/apiserver.py
 * on 127.0.0.1: paginated LIST, watch events, bookmarks, resuming a dropped
 * watch from the last resourceVersion without relisting, compaction (410 as
 * an ERROR event and as an HTTP answer) leading to a relist, the server
 * going away and coming back, bearer token and client certificate auth with
 * CA verification, and member clusters from fleet Secrets.
 *
 * One server (TLS with a test CA made by the openssl CLI; a bearer token or
 * a client certificate of that CA authenticates) holds several stores: the
 * fleet at https://127.0.0.1:PORT and cluster ID at .../clusters/ID. Every
 * change is waited for the way the agent does it (poll the eventfd, then
 * fg_kube_process()).
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <curl/curl.h>

#include "control.h"
#include "dataplane.h"
#include "compact.h"
#include "kube.h"
#include "test_progs.h"
#include "tls.h"
#include "tls_config.h"

#define TOKEN "fg-test-token-1234"
#define EVENT_BOUND_MS 1000.0
#define WAIT_MS 5000.0

struct env {
	bool ready;
	bool failed;
	char dir[PATH_MAX - 64];
	char script[PATH_MAX];
	char state[PATH_MAX];
	char portfile[PATH_MAX];
	char srvlog[PATH_MAX];
	int port;
	pid_t pid;
};

static struct env env;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static char *path_in(const char *name)
{
	static char bufs[8][PATH_MAX + 64];
	static int i;
	char *b = bufs[i++ % 8];

	snprintf(b, PATH_MAX + 64, "%s/%s", env.dir, name);
	return b;
}

/* ---------- the server ---------- */

static pid_t spawn(const char *log, char *const argv[])
{
	pid_t parent = getpid(), pid;
	int fd;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid)
		return pid;
	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(126);
	fd = open("/dev/null", O_RDONLY);
	if (fd >= 0)
		dup2(fd, STDIN_FILENO);
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execvp(argv[0], argv);
	_exit(127);
}

static void server_stop(void)
{
	int st;

	if (env.pid <= 0)
		return;
	kill(env.pid, SIGKILL);
	waitpid(env.pid, &st, 0);
	env.pid = 0;
}

/* Starts the server (on env.port when set) and waits for its port file. */
static bool server_start(void)
{
	char port[16];
	char *argv[] = { "python3", env.script, "--port", port, "--port-file", env.portfile,
			 "--tls-cert", path_in("server.crt"), "--tls-key", path_in("server.key"),
			 "--client-ca", path_in("ca.crt"), "--token", TOKEN, "--state", env.state,
			 "--bookmark-interval", "0.3", "-v", NULL };
	double deadline = now_ms() + 10000;
	FILE *f;

	snprintf(port, sizeof(port), "%d", env.port);
	unlink(env.portfile);
	env.pid = spawn(env.srvlog, argv);
	if (env.pid < 0)
		return false;
	while (now_ms() < deadline) {
		int p = 0;

		f = fopen(env.portfile, "r");
		if (f) {
			if (fscanf(f, "%d", &p) == 1 && p > 0) {
				fclose(f);
				env.port = p;
				return true;
			}
			fclose(f);
		}
		if (waitpid(env.pid, NULL, WNOHANG) == env.pid) {
			env.pid = 0;
			return false;
		}
		sleep_ms(20);
	}
	server_stop();
	return false;
}

static void cleanup_env(void)
{
	server_stop();
}

static bool make_certs(void)
{
	const char *d = env.dir;

	if (fg_sh("command -v openssl >/dev/null"))
		return false;
	return !fg_sh("cd %s && "
		      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt "
		      "-days 2 -subj /CN=fg-test-ca >>openssl.log 2>&1 && "
		      "openssl req -x509 -newkey rsa:2048 -nodes -keyout wrongca.key -out wrongca.crt "
		      "-days 2 -subj /CN=fg-wrong-ca >>openssl.log 2>&1 && "
		      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext && "
		      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr "
		      "-subj /CN=127.0.0.1 >>openssl.log 2>&1 && "
		      "openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
		      "-out server.crt -days 2 -extfile san.ext >>openssl.log 2>&1 && "
		      "openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr "
		      "-subj /CN=fleetgate/O=system:masters >>openssl.log 2>&1 && "
		      "openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
		      "-out client.crt -days 2 >>openssl.log 2>&1 && "
		      "openssl req -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.csr "
		      "-subj /CN=rogue >>openssl.log 2>&1 && "
		      "openssl x509 -req -in rogue.csr -CA wrongca.crt -CAkey wrongca.key "
		      "-CAcreateserial -out rogue.crt -days 2 >>openssl.log 2>&1 || "
		      "{ cat openssl.log; false; }",
		      d);
}

static bool setup(void)
{
	char exe[PATH_MAX];
	ssize_t n;

	if (env.ready)
		return true;
	if (env.failed)
		return false;
	env.failed = true;
	unsetenv("http_proxy");
	unsetenv("https_proxy");
	unsetenv("HTTPS_PROXY");
	unsetenv("ALL_PROXY");
	unsetenv("all_proxy");
	snprintf(env.dir, sizeof(env.dir), "%s/kube", test__tmpdir());
	mkdir(env.dir, 0700);
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	if (n > 0 && strrchr(exe, '/'))
		*strrchr(exe, '/') = '\0';
	snprintf(env.script, sizeof(env.script), "%.*s/../selftests/kube/apiserver.py",
		 PATH_MAX - 64, exe);
	if (access(env.script, R_OK))
		snprintf(env.script, sizeof(env.script), "selftests/kube/apiserver.py");
	snprintf(env.state, sizeof(env.state), "%s/state.json", env.dir);
	snprintf(env.portfile, sizeof(env.portfile), "%s/port", env.dir);
	snprintf(env.srvlog, sizeof(env.srvlog), "%s/apiserver.log", env.dir);
	if (fg_sh("command -v python3 >/dev/null")) {
		test__skip("python3 not installed");
		return false;
	}
	if (!ASSERT_TRUE(make_certs(), "openssl certificates (apt-get install openssl)"))
		return false;
	if (!ASSERT_TRUE(server_start(), "start apiserver.py"))
		return false;
	atexit(cleanup_env);
	env.failed = false;
	env.ready = true;
	return true;
}

/* ---------- control requests ---------- */

static size_t collect(char *data, size_t size, size_t nmemb, void *arg)
{
	char **buf = arg;
	size_t n = size * nmemb, old = *buf ? strlen(*buf) : 0;
	char *nb = realloc(*buf, old + n + 1);

	if (!nb)
		return 0;
	memcpy(nb + old, data, n);
	nb[old + n] = '\0';
	*buf = nb;
	return n;
}

/* POST (body given) or GET a control endpoint; the JSON answer or NULL. */
static json_t *ctl(const char *path, const char *body)
{
	CURL *c = curl_easy_init();
	char url[512], *buf = NULL;
	json_t *res = NULL;
	long code = 0;

	snprintf(url, sizeof(url), "https://127.0.0.1:%d%s", env.port, path);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CAINFO, path_in("ca.crt"));
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (body)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	if (curl_easy_perform(c) == CURLE_OK &&
	    !curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code) && code == 200 && buf)
		res = json_loads(buf, 0, NULL);
	if (!res)
		printf("control %s failed (code %ld): %s\n", path, code, buf ? buf : "");
	free(buf);
	curl_easy_cleanup(c);
	return res;
}

static bool ctl_ok(const char *path, const char *body)
{
	json_t *r = ctl(path, body);

	json_decref(r);
	return r != NULL;
}

static int label_port(const char *label)
{
	return 8080 + (label[0] & 0x3f);
}

static char *svc_json(const char *name, const char *label)
{
	char *s;

	/* The label is in the target port too: a member cluster's Services
	 * are kept packed, with what routes read only (compact.h). */
	if (asprintf(&s, "{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{\"name\":\"%s\","
		     "\"namespace\":\"web\",\"labels\":{\"v\":\"%s\"}},\"spec\":{\"ports\":"
		     "[{\"port\":80,\"targetPort\":%d}]}}", name, label, label_port(label)) < 0)
		return NULL;
	return s;
}

static bool apply_svc(const char *cluster, const char *name, const char *label)
{
	char path[128], *body = svc_json(name, label);
	bool ok;

	snprintf(path, sizeof(path), "/_test/apply?cluster=%s", cluster);
	ok = body && ctl_ok(path, body);
	free(body);
	return ok;
}

static bool delete_obj(const char *cluster, const char *kind, const char *ns, const char *name)
{
	char path[128], body[512];

	snprintf(path, sizeof(path), "/_test/delete?cluster=%s", cluster);
	snprintf(body, sizeof(body), "{\"apiVersion\":\"v1\",\"kind\":\"%s\",\"metadata\":"
		 "{\"name\":\"%s\",\"namespace\":\"%s\"}}", kind, name, ns);
	return ctl_ok(path, body);
}

static long long store_rv(const char *cluster)
{
	char path[128];
	json_t *r;
	long long rv;

	snprintf(path, sizeof(path), "/_test/rv?cluster=%s", cluster);
	r = ctl(path, NULL);
	rv = json_integer_value(json_object_get(r, "rv"));
	json_decref(r);
	return rv;
}

static size_t log_len(void)
{
	json_t *l = ctl("/_test/log", NULL);
	size_t n = json_array_size(l);

	json_decref(l);
	return n;
}

struct reqs {
	int lists, watches, continues;
	const char *last_watch_rv; /* valid while the log is kept */
	json_t *log;
};

/* Requests for cluster/resource since log position from. */
static void count_reqs(const char *cluster, const char *resource, size_t from, struct reqs *r)
{
	json_t *e;
	size_t i;

	memset(r, 0, sizeof(*r));
	r->log = ctl("/_test/log", NULL);
	json_array_foreach(r->log, i, e) {
		if (i < from || strcmp(json_string_value(json_object_get(e, "cluster")) ?: "", cluster) ||
		    strcmp(json_string_value(json_object_get(e, "resource")) ?: "", resource))
			continue;
		if (json_is_true(json_object_get(e, "watch"))) {
			r->watches++;
			r->last_watch_rv = json_string_value(json_object_get(e, "rv"));
		} else {
			r->lists++;
			if (json_is_string(json_object_get(e, "continue")))
				r->continues++;
		}
	}
}

/* ---------- kubeconfigs ---------- */

static char *b64_file(const char *path)
{
	static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned char buf[16384];
	size_t n, i, o = 0;
	char *out;
	FILE *f = fopen(path, "r");

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	out = malloc(n / 3 * 4 + 8);
	if (!out)
		return NULL;
	for (i = 0; i < n; i += 3) {
		unsigned v = buf[i] << 16 | (i + 1 < n ? buf[i + 1] << 8 : 0) |
			     (i + 2 < n ? buf[i + 2] : 0);

		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < n ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
	return out;
}

enum ca_mode { CA_DATA, CA_FILE, CA_WRONG, CA_INSECURE };
enum user_mode { U_TOKEN, U_BADTOKEN, U_CERT_DATA, U_CERT_FILE, U_ROGUE_CERT, U_TOKEN_FILE };

/* Writes a kubeconfig for cluster (a store of the server; "" the fleet)
 * and returns its path. */
static const char *kubeconfig(const char *file, const char *cluster, enum ca_mode ca,
			      enum user_mode user)
{
	char *path = path_in(file), *ca_line = NULL, *user_lines = NULL, *a = NULL, *b = NULL;
	FILE *f;

	switch (ca) {
	case CA_DATA:
		a = b64_file(path_in("ca.crt"));
		asprintf(&ca_line, "certificate-authority-data: %s", a);
		break;
	case CA_FILE:
		asprintf(&ca_line, "certificate-authority: ca.crt"); /* relative */
		break;
	case CA_WRONG:
		a = b64_file(path_in("wrongca.crt"));
		asprintf(&ca_line, "certificate-authority-data: %s", a);
		break;
	case CA_INSECURE:
		asprintf(&ca_line, "insecure-skip-tls-verify: true");
		break;
	}
	free(a);
	a = NULL;
	switch (user) {
	case U_TOKEN:
		asprintf(&user_lines, "token: %s", TOKEN);
		break;
	case U_BADTOKEN:
		asprintf(&user_lines, "token: not-the-token");
		break;
	case U_TOKEN_FILE:
		f = fopen(path_in("token"), "w");
		if (f) {
			fprintf(f, "%s\n", TOKEN);
			fclose(f);
		}
		asprintf(&user_lines, "tokenFile: %s", path_in("token"));
		break;
	case U_CERT_DATA:
		a = b64_file(path_in("client.crt"));
		b = b64_file(path_in("client.key"));
		asprintf(&user_lines, "client-certificate-data: %s\n    client-key-data: %s", a, b);
		break;
	case U_CERT_FILE:
		asprintf(&user_lines, "client-certificate: %s\n    client-key: client.key",
			 path_in("client.crt"));
		break;
	case U_ROGUE_CERT:
		a = b64_file(path_in("rogue.crt"));
		b = b64_file(path_in("rogue.key"));
		asprintf(&user_lines, "client-certificate-data: %s\n    client-key-data: %s", a, b);
		break;
	}
	free(a);
	free(b);
	f = fopen(path, "w");
	if (!f)
		return NULL;
	/* No apiVersion/kind on purpose: kubectl accepts that too. */
	fprintf(f, "clusters:\n- name: test\n  cluster:\n    server: https://127.0.0.1:%d%s%s\n"
		"    %s\nusers:\n- name: u\n  user:\n    %s\ncontexts:\n- name: other\n"
		"  context: {cluster: nope, user: u}\n- name: ctx\n  context:\n    cluster: test\n"
		"    user: u\ncurrent-context: ctx\n",
		env.port, *cluster ? "/clusters/" : "", cluster, ca_line, user_lines);
	fclose(f);
	free(ca_line);
	free(user_lines);
	return path;
}

/* ---------- waiting ---------- */

struct probe {
	const char *origin;
	const char *kind;
	const char *key;      /* "ns/name" */
	const char *label_v;  /* metadata.labels.v, or NULL */
	int count;            /* objects of origin/kind */
	bool found;
	bool label_ok;
	bool managed_fields;
	bool kinds_ok;
};

static int probe_cb(const char *origin, json_t *obj, void *ctx)
{
	struct probe *p = ctx;
	json_t *md = json_object_get(obj, "metadata");
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	char key[256];

	if ((origin == NULL) != (p->origin == NULL) || (origin && strcmp(origin, p->origin)))
		return 0;
	if (fg_packed_is(obj)) {
		/* A member cluster's Service, packed: no apiVersion to fill in,
		 * the label seen through the target port. */
		struct fg_packed_ports it;
		struct fg_packed_port pp;

		if (!kind || !origin)
			p->kinds_ok = false;
		if (!kind || strcmp(kind, p->kind))
			return 0;
		p->count++;
		snprintf(key, sizeof(key), "%s/%s", fg_obj_ns(obj), fg_obj_name(obj) ?: "");
		if (p->key && !strcmp(key, p->key)) {
			p->found = true;
			p->label_ok = !p->label_v ||
				      (fg_packed_ports(obj, &it) && fg_packed_next_port(&it, &pp) &&
				       pp.has_target && pp.target_num == label_port(p->label_v));
		}
		return 0;
	}
	if (!kind || !json_string_value(json_object_get(obj, "apiVersion")))
		p->kinds_ok = false;
	if (!kind || strcmp(kind, p->kind))
		return 0;
	p->count++;
	if (json_object_get(md, "managedFields"))
		p->managed_fields = true;
	snprintf(key, sizeof(key), "%s/%s",
		 json_string_value(json_object_get(md, "namespace")) ?: "",
		 json_string_value(json_object_get(md, "name")) ?: "");
	if (p->key && !strcmp(key, p->key)) {
		p->found = true;
		p->label_ok = !p->label_v ||
			      !strcmp(json_string_value(json_object_get(json_object_get(md, "labels"),
									"v")) ?: "", p->label_v);
	}
	return 0;
}

static void run_probe(struct fg_kube *k, struct probe *p)
{
	p->count = 0;
	p->found = p->label_ok = p->managed_fields = false;
	p->kinds_ok = true;
	fg_kube_foreach(k, probe_cb, p);
}

struct errprobe {
	const char *origin;
	char reason[1024];
	bool failing;
};

static void err_cb(const char *origin, const char *reason, void *ctx)
{
	struct errprobe *e = ctx;

	if ((origin == NULL) == (e->origin == NULL) && (!origin || !strcmp(origin, e->origin))) {
		e->failing = true;
		snprintf(e->reason, sizeof(e->reason), "%s", reason);
	}
}

static bool failing(struct fg_kube *k, const char *origin, char *reason, size_t len)
{
	struct errprobe e = { .origin = origin };

	fg_kube_foreach_error(k, err_cb, &e);
	if (reason)
		snprintf(reason, len, "%s", e.reason);
	return e.failing;
}

struct srcprobe {
	const char *origin;
	bool present, synced;
};

static void src_cb(const char *origin, bool synced, void *ctx)
{
	struct srcprobe *s = ctx;

	if ((origin == NULL) == (s->origin == NULL) && (!origin || !strcmp(origin, s->origin))) {
		s->present = true;
		s->synced = synced;
	}
}

static bool synced(struct fg_kube *k, const char *origin)
{
	struct srcprobe s = { .origin = origin };

	fg_kube_foreach_source(k, src_cb, &s);
	return s.present && s.synced;
}

static bool present(struct fg_kube *k, const char *origin)
{
	struct srcprobe s = { .origin = origin };

	fg_kube_foreach_source(k, src_cb, &s);
	return s.present;
}

/* Waits for POLLIN on the eventfd and processes, until cond holds or
 * timeout; returns the elapsed ms, or -1 on timeout. */
#define WAIT_FOR(k, timeout, cond)                                                  \
	({                                                                          \
		double ___t0 = now_ms(), ___r = -1;                                 \
		for (;;) {                                                          \
			struct pollfd ___p = { .fd = fg_kube_fd(k), .events = POLLIN }; \
			if (cond) {                                                 \
				___r = now_ms() - ___t0;                            \
				break;                                              \
			}                                                           \
			if (now_ms() - ___t0 > (timeout))                           \
				break;                                              \
			poll(&___p, 1, 50);                                         \
			fg_kube_process(k, NULL);                                   \
		}                                                                   \
		___r;                                                               \
	})

static struct fg_kube *new_kube_with(const char *origin, const char *kc, unsigned page)
{
	struct fg_kube_source_opts o = { .origin = origin, .kubeconfig_path = kc };
	struct fg_kube *k = NULL;

	if (!ASSERT_OK(fg_kube_new(&k), "fg_kube_new"))
		return NULL;
	if (page)
		fg_kube_set_page_size(k, page);
	if (!ASSERT_OK(fg_kube_add_source(k, &o), "fg_kube_add_source")) {
		fg_kube_free(k);
		return NULL;
	}
	return k;
}

/* ---------- subtests ---------- */

static void test_list_and_watch(void)
{
	struct probe p = { .origin = "c1", .kind = "Service" };
	struct fg_kube *k;
	struct reqs r;
	char name[32];
	double t, t0;
	int i;

	for (i = 0; i < 7; i++) {
		snprintf(name, sizeof(name), "svc-%d", i);
		if (!ASSERT_TRUE(apply_svc("c1", name, "a"), "apply"))
			return;
	}
	k = new_kube_with("c1", kubeconfig("c1.yaml", "c1", CA_DATA, U_TOKEN), 3);
	if (!k)
		return;
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &p), synced(k, "c1") && p.count == 7));
	ASSERT_GE(t, 0, "initial list of 7 services");
	ASSERT_TRUE(p.kinds_ok, "kind/apiVersion filled in");
	ASSERT_FALSE(p.managed_fields, "managedFields dropped");
	ASSERT_FALSE(failing(k, "c1", NULL, 0), "not failing");
	count_reqs("c1", "services", 0, &r);
	ASSERT_EQ(r.lists, 3, "pages of 3 (7 items)");
	ASSERT_EQ(r.continues, 2, "continue tokens followed");
	json_decref(r.log);

	/* ADDED, MODIFIED, DELETED */
	p.key = "web/svc-new";
	t0 = now_ms();
	ASSERT_TRUE(apply_svc("c1", "svc-new", "a"), "apply svc-new");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &p), p.found));
	if (t >= 0)
		t = now_ms() - t0; /* from the request that made the change */
	printf("ADDED seen after %.1f ms\n", t);
	if (ASSERT_GE(t, 0, "ADDED seen"))
		ASSERT_LT(t, EVENT_BOUND_MS, "ADDED latency");
	p.label_v = "b";
	t0 = now_ms();
	ASSERT_TRUE(apply_svc("c1", "svc-new", "b"), "modify svc-new");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &p), p.found && p.label_ok));
	if (t >= 0)
		t = now_ms() - t0; /* from the request that made the change */
	printf("MODIFIED seen after %.1f ms\n", t);
	if (ASSERT_GE(t, 0, "MODIFIED seen"))
		ASSERT_LT(t, EVENT_BOUND_MS, "MODIFIED latency");
	t0 = now_ms();
	ASSERT_TRUE(delete_obj("c1", "Service", "web", "svc-new"), "delete svc-new");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &p), !p.found));
	if (t >= 0)
		t = now_ms() - t0; /* from the request that made the change */
	printf("DELETED seen after %.1f ms\n", t);
	if (ASSERT_GE(t, 0, "DELETED seen"))
		ASSERT_LT(t, EVENT_BOUND_MS, "DELETED latency");
	ASSERT_EQ(p.count, 7, "7 services left");
	count_reqs("c1", "services", 0, &r);
	ASSERT_EQ(r.lists, 3, "no relist");
	json_decref(r.log);
	fg_kube_free(k);
}

static void test_bookmark_and_resume(void)
{
	struct probe p = { .origin = "c1", .kind = "Service", .key = "web/svc-gap" };
	struct fg_kube *k;
	struct reqs r;
	size_t from;
	long long rv;
	char want[32];
	double t;

	k = new_kube_with("c1", kubeconfig("c1.yaml", "c1", CA_DATA, U_TOKEN), 0);
	if (!k)
		return;
	if (!ASSERT_GE(WAIT_FOR(k, WAIT_MS, synced(k, "c1")), 0, "synced"))
		goto out;
	sleep_ms(300); /* the watches are open */
	/* Writes to services move the store's RV; the endpoints watch only
	 * learns it from bookmarks. */
	ASSERT_TRUE(apply_svc("c1", "svc-bm", "a"), "apply svc-bm");
	rv = store_rv("c1");
	sleep_ms(1000); /* bookmarks every 0.3 s */
	from = log_len();
	ASSERT_TRUE(ctl_ok("/_test/disconnect", "{}"), "disconnect");
	/* while the watches are down: a change the resumed watch must bring */
	ASSERT_TRUE(apply_svc("c1", "svc-gap", "a"), "apply svc-gap");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &p), p.found));
	ASSERT_GE(t, 0, "change made while disconnected seen");
	sleep_ms(200);
	count_reqs("c1", "endpoints", from, &r);
	snprintf(want, sizeof(want), "%lld", rv);
	ASSERT_GE(r.watches, 1, "endpoints watch resumed");
	ASSERT_EQ(r.lists, 0, "endpoints not relisted");
	ASSERT_STREQ(r.last_watch_rv, want, "endpoints watch resumed from the bookmark's RV");
	json_decref(r.log);
	count_reqs("c1", "services", from, &r);
	ASSERT_GE(r.watches, 1, "services watch resumed");
	ASSERT_EQ(r.lists, 0, "services not relisted");
	ASSERT_STREQ(r.last_watch_rv, want, "services watch resumed from the last event's RV");
	json_decref(r.log);
	ASSERT_FALSE(failing(k, "c1", NULL, 0), "a dropped stream is no failure");
out:
	fg_kube_free(k);
}

static void test_compaction(void)
{
	struct probe gone = { .origin = "c1", .kind = "Service", .key = "web/svc-0" };
	struct probe added = { .origin = "c1", .kind = "Service", .key = "web/svc-compact" };
	struct fg_kube *k;
	struct reqs r;
	size_t from;
	char *body, *svc;
	double t;

	k = new_kube_with("c1", kubeconfig("c1.yaml", "c1", CA_DATA, U_TOKEN), 0);
	if (!k)
		return;
	if (!ASSERT_GE(WAIT_FOR(k, WAIT_MS, (run_probe(k, &gone), synced(k, "c1") && gone.found)),
		       0, "synced with svc-0"))
		goto out;
	sleep_ms(300);
	/* 410 as an ERROR event: drop streams, change things, forget history */
	from = log_len();
	svc = svc_json("svc-compact", "a");
	asprintf(&body, "{\"disconnect\":true,\"apply\":[%s],\"delete\":[{\"apiVersion\":\"v1\","
		 "\"kind\":\"Service\",\"metadata\":{\"name\":\"svc-0\",\"namespace\":\"web\"}}]}",
		 svc);
	ASSERT_TRUE(ctl_ok("/_test/compact?cluster=c1", body), "compact");
	free(body);
	free(svc);
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &gone), run_probe(k, &added),
				  !gone.found && added.found));
	ASSERT_GE(t, 0, "converged after 410 event");
	count_reqs("c1", "services", from, &r);
	ASSERT_GE(r.lists, 1, "relisted");
	json_decref(r.log);

	/* 410 as the HTTP answer to the watch */
	ASSERT_TRUE(ctl_ok("/_test/config", "{\"watch410\":\"http\"}"), "config");
	sleep_ms(300);
	from = log_len();
	ASSERT_TRUE(ctl_ok("/_test/compact?cluster=c1",
			   "{\"disconnect\":true,\"delete\":[{\"apiVersion\":\"v1\","
			   "\"kind\":\"Service\",\"metadata\":{\"name\":\"svc-compact\","
			   "\"namespace\":\"web\"}}]}"), "compact (http 410)");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &added), !added.found));
	ASSERT_GE(t, 0, "converged after HTTP 410");
	count_reqs("c1", "services", from, &r);
	ASSERT_GE(r.lists, 1, "relisted");
	json_decref(r.log);
	ASSERT_FALSE(failing(k, "c1", NULL, 0), "410 is no failure");
	ctl_ok("/_test/config", "{\"watch410\":\"event\"}");
	ctl_ok("/_test/apply?cluster=c1", "{\"apiVersion\":\"v1\",\"kind\":\"Service\","
	       "\"metadata\":{\"name\":\"svc-0\",\"namespace\":\"web\"}}");
out:
	fg_kube_free(k);
}

static void test_server_down(void)
{
	struct probe p = { .origin = "c1", .kind = "Service", .key = "web/svc-back" };
	struct fg_kube *k;
	char reason[1024];
	double t;
	int before;

	k = new_kube_with("c1", kubeconfig("c1.yaml", "c1", CA_DATA, U_TOKEN), 0);
	if (!k)
		return;
	if (!ASSERT_GE(WAIT_FOR(k, WAIT_MS, synced(k, "c1")), 0, "synced"))
		goto out;
	run_probe(k, &p);
	before = p.count;
	server_stop();
	t = WAIT_FOR(k, WAIT_MS, failing(k, "c1", reason, sizeof(reason)));
	ASSERT_GE(t, 0, "failing once the server is gone");
	printf("first reason: %s\n", reason);
	/* The first may be a reset of a request in flight; the retries then
	 * find nobody listening. */
	t = WAIT_FOR(k, WAIT_MS, failing(k, "c1", reason, sizeof(reason)) &&
				 strstr(reason, "Connection refused"));
	printf("reason: %s\n", reason);
	ASSERT_GE(t, 0, "reason says Connection refused");
	run_probe(k, &p);
	ASSERT_EQ(p.count, before, "last known objects kept");
	sleep_ms(1500); /* a few backoff rounds */
	if (!ASSERT_TRUE(server_start(), "restart apiserver.py"))
		goto out;
	t = WAIT_FOR(k, 10000, !failing(k, "c1", NULL, 0));
	printf("recovered %.0f ms after the restart\n", t);
	ASSERT_GE(t, 0, "recovered");
	ASSERT_TRUE(apply_svc("c1", "svc-back", "a"), "apply svc-back");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &p), p.found));
	ASSERT_GE(t, 0, "watching again");
out:
	fg_kube_free(k);
}

static void test_auth(void)
{
	struct probe p = { .origin = "c3", .kind = "Service", .key = "web/svc-tls" };
	struct fg_kube *k;
	char reason[1024];
	struct {
		const char *origin, *file;
		enum ca_mode ca;
		enum user_mode user;
		const char *want; /* in the reason; NULL: must work */
	} cases[] = {
		{ "bad-token", "bad-token.yaml", CA_DATA, U_BADTOKEN, "401" },
		{ "wrong-ca", "wrong-ca.yaml", CA_WRONG, U_CERT_DATA, "SSL" },
		{ "rogue-cert", "rogue.yaml", CA_DATA, U_ROGUE_CERT, "list https://" },
		{ "c3", "cert-data.yaml", CA_DATA, U_CERT_DATA, NULL },
		{ "c3", "cert-file.yaml", CA_FILE, U_CERT_FILE, NULL },
		{ "c3", "token-file.yaml", CA_FILE, U_TOKEN_FILE, NULL },
		{ "c3", "insecure.yaml", CA_INSECURE, U_TOKEN, NULL },
	};
	size_t i;
	double t;

	if (!ASSERT_TRUE(apply_svc("c3", "svc-tls", "a"), "apply"))
		return;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *kc = kubeconfig(cases[i].file, cases[i].want ? "c3" : cases[i].origin,
					    cases[i].ca, cases[i].user);

		k = new_kube_with(cases[i].origin, kc, 0);
		if (!k)
			continue;
		if (cases[i].want) {
			t = WAIT_FOR(k, WAIT_MS, failing(k, cases[i].origin, reason, sizeof(reason)));
			printf("%s: %s\n", cases[i].file, reason);
			ASSERT_GE(t, 0, cases[i].file);
			ASSERT_TRUE(strstr(reason, cases[i].want) != NULL, cases[i].want);
			ASSERT_TRUE(strstr(reason, TOKEN) == NULL, "no token in reason");
			run_probe(k, &p);
			ASSERT_EQ(p.count, 0, "nothing read");
		} else {
			t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &p), synced(k, "c3") && p.found));
			ASSERT_GE(t, 0, cases[i].file);
			ASSERT_FALSE(failing(k, "c3", NULL, 0), "not failing");
		}
		fg_kube_free(k);
	}
}

static void test_kubeconfig_errors(void)
{
	struct fg_kube_source_opts o = { .origin = "x" };
	struct fg_kube *k;
	json_t *kc;

	if (!ASSERT_OK(fg_kube_new(&k), "fg_kube_new"))
		return;
	o.kubeconfig_path = path_in("does-not-exist.yaml");
	ASSERT_EQ(fg_kube_add_source(k, &o), -ENOENT, "missing file");
	o.kubeconfig_path = kubeconfig("ctx.yaml", "c1", CA_DATA, U_TOKEN);
	o.context = "nope";
	ASSERT_EQ(fg_kube_add_source(k, &o), -ENOENT, "unknown context");
	o.context = "other";
	ASSERT_EQ(fg_kube_add_source(k, &o), -ENOENT, "context with unknown cluster");
	o.context = NULL;
	o.kubeconfig_path = NULL;
	kc = json_loads("{\"clusters\":[{\"name\":\"c\",\"cluster\":{\"server\":\"https://127.0.0.1:1\"}}],"
			"\"users\":[{\"name\":\"u\",\"user\":{\"exec\":{\"command\":\"aws\"}}}],"
			"\"contexts\":[{\"name\":\"x\",\"context\":{\"cluster\":\"c\",\"user\":\"u\"}}],"
			"\"current-context\":\"x\"}", 0, NULL);
	o.kubeconfig = kc;
	ASSERT_EQ(fg_kube_add_source(k, &o), -EOPNOTSUPP, "exec credentials");
	json_decref(kc);
	ASSERT_EQ(fg_kube_remove_source(k, "x"), -ENOENT, "nothing was added");
	fg_kube_free(k);
}

static void test_fleet_and_secrets(void)
{
	struct probe mic = { .origin = NULL, .kind = "MseIngressConfig", .key = "/gw" };
	struct probe ing = { .origin = NULL, .kind = "Ingress", .key = "web/ing" };
	struct probe sec = { .origin = NULL, .kind = "Secret" };
	struct probe c7 = { .origin = "c7", .kind = "Service", .key = "web/svc-c7" };
	struct fg_kube_source_opts o = { .origin = NULL, .cluster_secrets = true };
	struct fg_kube *k;
	char *kc_b64, *body;
	double t;

	ASSERT_TRUE(ctl_ok("/_test/apply", "{\"apiVersion\":\"mse.alibabacloud.com/v1alpha1\","
			   "\"kind\":\"MseIngressConfig\",\"metadata\":{\"name\":\"gw\"},"
			   "\"spec\":{\"name\":\"gw\"}}"), "apply MseIngressConfig");
	ASSERT_TRUE(ctl_ok("/_test/apply", "{\"apiVersion\":\"networking.k8s.io/v1\","
			   "\"kind\":\"Ingress\",\"metadata\":{\"name\":\"ing\",\"namespace\":\"web\"},"
			   "\"spec\":{\"ingressClassName\":\"mse\"}}"), "apply Ingress");
	ASSERT_TRUE(apply_svc("c7", "svc-c7", "a"), "apply in c7");
	/* an unlabelled Secret: never listed (label selector) */
	ASSERT_TRUE(ctl_ok("/_test/apply", "{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
			   "\"metadata\":{\"name\":\"other\",\"namespace\":\"kube-system\"},"
			   "\"data\":{\"x\":\"eA==\"}}"), "apply other Secret");
	if (!ASSERT_OK(fg_kube_new(&k), "fg_kube_new"))
		return;
	o.kubeconfig_path = kubeconfig("fleet.yaml", "", CA_DATA, U_TOKEN);
	if (!ASSERT_OK(fg_kube_add_source(k, &o), "add fleet"))
		goto out;
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &mic), run_probe(k, &ing),
				  synced(k, NULL) && mic.found && ing.found));
	ASSERT_GE(t, 0, "fleet objects listed");
	ASSERT_TRUE(mic.kinds_ok, "kinds filled in");

	kc_b64 = b64_file(kubeconfig("c7.yaml", "c7", CA_DATA, U_TOKEN));
	asprintf(&body, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"c7\","
		 "\"namespace\":\"fleet-system\",\"labels\":{\"fleetgate.io/cluster-id\":\"c7\"}},"
		 "\"data\":{\"kubeconfig\":\"%s\"}}", kc_b64);
	ASSERT_TRUE(ctl_ok("/_test/apply", body), "apply Secret");
	free(body);
	free(kc_b64);
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &c7), synced(k, "c7") && c7.found));
	ASSERT_GE(t, 0, "cluster c7 from its Secret");
	run_probe(k, &sec);
	ASSERT_EQ(sec.count, 0, "Secrets not shown");
	ASSERT_TRUE(delete_obj("", "Secret", "fleet-system", "c7"), "delete Secret");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &c7), !present(k, "c7") && c7.count == 0));
	ASSERT_GE(t, 0, "cluster c7 gone with its Secret");
	ASSERT_OK(fg_kube_remove_source(k, NULL), "remove fleet");
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &ing), !present(k, NULL) && ing.count == 0));
	ASSERT_GE(t, 0, "fleet objects gone");
out:
	fg_kube_free(k);
}

/* Secrets for Ingress spec.tls: the fleet source asks the server for type
 * kubernetes.io/tls only (fieldSelector), so other Secrets never reach
 * fleetgate; changes and deletions arrive through the watch. */
static void test_tls_secrets(void)
{
	struct probe site = { .origin = NULL, .kind = "Secret", .key = "web/site", .label_v = "1" };
	struct fg_kube *k;
	struct reqs r;
	size_t from = log_len(), i;
	json_t *e;
	double t;
	static const char tls_secret[] =
		"{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":\"kubernetes.io/tls\","
		"\"metadata\":{\"name\":\"site\",\"namespace\":\"web\",\"labels\":{\"v\":\"%s\"}},"
		"\"data\":{\"tls.crt\":\"Y3J0\",\"tls.key\":\"a2V5\"}}";
	char body[512];

	snprintf(body, sizeof(body), tls_secret, "1");
	ASSERT_TRUE(ctl_ok("/_test/apply", body), "apply TLS Secret");
	ASSERT_TRUE(ctl_ok("/_test/apply", "{\"apiVersion\":\"v1\",\"kind\":\"Secret\","
			   "\"type\":\"Opaque\",\"metadata\":{\"name\":\"db-password\","
			   "\"namespace\":\"web\"},\"data\":{\"password\":\"eA==\"}}"),
		    "apply Opaque Secret");
	k = new_kube_with(NULL, kubeconfig("fleet-tls.yaml", "", CA_DATA, U_TOKEN), 0);
	if (!k)
		return;
	t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &site), synced(k, NULL) && site.found));
	ASSERT_GE(t, 0, "TLS Secret listed");
	ASSERT_EQ(site.count, 1, "only the TLS Secret");
	snprintf(body, sizeof(body), tls_secret, "2");
	site.label_v = "2";
	ASSERT_TRUE(ctl_ok("/_test/apply", body), "modify TLS Secret");
	t = WAIT_FOR(k, EVENT_BOUND_MS, (run_probe(k, &site), site.found && site.label_ok));
	ASSERT_GE(t, 0, "modification seen");
	ASSERT_TRUE(delete_obj("", "Secret", "web", "site"), "delete TLS Secret");
	t = WAIT_FOR(k, EVENT_BOUND_MS, (run_probe(k, &site), !site.found));
	ASSERT_GE(t, 0, "deletion seen");
	count_reqs("", "secrets", from, &r);
	ASSERT_GE(r.lists, 1, "listed");
	ASSERT_GE(r.watches, 1, "watched");
	json_array_foreach(r.log, i, e) {
		if (i < from || strcmp(json_string_value(json_object_get(e, "resource")) ?: "",
				       "secrets"))
			continue;
		ASSERT_STREQ(json_string_value(json_object_get(e, "fields")),
			     "type=kubernetes.io/tls", "every Secret request has the fieldSelector");
	}
	json_decref(r.log);
	fg_kube_free(k);
	delete_obj("", "Secret", "web", "db-password");
}

/* The same through the control plane: an Ingress with spec.tls and its
 * Secret from the fleet's API server, the member cluster from its own; the
 * certificate serves the host; the Secret's key replaced by another one
 * rejects the host's TLS with the reason (the Ingress stays accepted), a
 * new store generation, without a full recomputation. */
static const struct fg_tls_host *kube_tls_host(struct fg_control *c)
{
	const struct fg_plan *p = fg_control_plan(c);
	size_t i;

	for (i = 0; p && p->tls && i < p->tls->n_hosts; i++)
		if (!strcmp(p->tls->hosts[i].ingress, "shop/site"))
			return &p->tls->hosts[i];
	return NULL;
}

static bool control_wait(struct fg_control *c, enum fg_tls_state want)
{
	double t0 = now_ms();

	while (now_ms() - t0 < WAIT_MS) {
		struct pollfd p = { .fd = fg_control_fd(c), .events = POLLIN };
		const struct fg_tls_host *h;

		poll(&p, 1, 50);
		fg_control_process(c);
		h = kube_tls_host(c);
		if (h && h->state == want)
			return true;
	}
	return false;
}

static int apply_tls_secret(const char *crt, const char *key)
{
	char *c = b64_file(path_in(crt)), *k = b64_file(path_in(key)), *body = NULL;
	int ok = 0;

	if (c && k &&
	    asprintf(&body, "{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"type\":"
		     "\"kubernetes.io/tls\",\"metadata\":{\"name\":\"site-tls\",\"namespace\":"
		     "\"shop\"},\"data\":{\"tls.crt\":\"%s\",\"tls.key\":\"%s\"}}", c, k) > 0)
		ok = ctl_ok("/_test/apply", body);
	free(c);
	free(k);
	free(body);
	return ok;
}

static void test_tls_control(void)
{
	struct fg_dp_opts dopts = { .max_services = 256, .max_backends = 1024, .max_rings = 1024 };
	struct fg_control_opts copts = { .listen = "10.0.0.1:80" };
	struct fg_dataplane *dp = NULL;
	struct fg_control *c = NULL;
	const struct fg_tls_host *h;
	const char *clusters[2] = { NULL, NULL };
	char spec[PATH_MAX + 64];
	unsigned long gen;
	unsigned long long full0;
	size_t i;

	/* server.crt is for localhost (make_certs). */
	ASSERT_TRUE(ctl_ok("/_test/apply", "{\"apiVersion\":\"mse.alibabacloud.com/v1alpha1\","
			   "\"kind\":\"MseIngressConfig\",\"metadata\":{\"name\":\"gw-tls\","
			   "\"annotations\":{\"mse.alibabacloud.com/remote-clusters\":\"ctls\"}},"
			   "\"spec\":{\"ingress\":{\"local\":{\"ingressClass\":\"tlsclass\"}}}}"),
		    "apply MseIngressConfig");
	ASSERT_TRUE(ctl_ok("/_test/apply", "{\"apiVersion\":\"networking.k8s.io/v1\","
			   "\"kind\":\"Ingress\",\"metadata\":{\"name\":\"site\",\"namespace\":"
			   "\"shop\"},\"spec\":{\"ingressClassName\":\"tlsclass\",\"tls\":[{\"hosts\":"
			   "[\"localhost\"],\"secretName\":\"site-tls\"}],\"rules\":[{\"host\":"
			   "\"localhost\",\"http\":{\"paths\":[{\"path\":\"/\",\"pathType\":"
			   "\"Prefix\",\"backend\":{\"service\":{\"name\":\"web\",\"port\":"
			   "{\"number\":80}}}}]}}]}}"), "apply Ingress");
	ASSERT_TRUE(ctl_ok("/_test/apply?cluster=ctls", "{\"apiVersion\":\"v1\",\"kind\":"
			   "\"Service\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},"
			   "\"spec\":{\"ports\":[{\"port\":80}]}}"), "apply Service");
	ASSERT_TRUE(ctl_ok("/_test/apply?cluster=ctls", "{\"apiVersion\":\"v1\",\"kind\":"
			   "\"Endpoints\",\"metadata\":{\"name\":\"web\",\"namespace\":\"shop\"},"
			   "\"subsets\":[{\"addresses\":[{\"ip\":\"10.3.0.1\"}],\"ports\":"
			   "[{\"port\":80}]}]}"), "apply Endpoints");
	if (!ASSERT_TRUE(apply_tls_secret("server.crt", "server.key"), "apply TLS Secret"))
		return;
	if (!ASSERT_OK(fg_dp_load(&dp, &dopts), "data plane"))
		return;
	copts.kubeconfig = kubeconfig("fleet-ctl.yaml", "", CA_DATA, U_TOKEN);
	snprintf(spec, sizeof(spec), "ctls=%s", kubeconfig("ctls.yaml", "ctls", CA_DATA, U_TOKEN));
	clusters[0] = spec;
	copts.cluster_kubeconfigs = clusters;
	if (!ASSERT_OK(fg_control_new(&c, dp, &copts), "control"))
		goto out;
	fg_control_set_state(c, true, true);
	if (!ASSERT_TRUE(control_wait(c, FG_TLS_READY), "TLS host Ready from the API")) {
		h = kube_tls_host(c);
		printf("state %s: %s\n", h ? fg_tls_state_name(h->state) : "none",
		       h ? h->reason : "");
		goto out;
	}
	for (i = 0; i < fg_control_plan(c)->n_routes; i++)
		if (!strcmp(fg_control_plan(c)->routes[i].host, "localhost"))
			ASSERT_TRUE(fg_control_plan(c)->routes[i].tls, "route tls");
	{
		struct fg_tls_store *s = fg_control_tls_store(c);

		if (ASSERT_OK_PTR(s, "store"))
			ASSERT_STREQ(fg_tls_cert_name(fg_tls_store_lookup(s, "localhost")),
				     "shop/site-tls", "served from the Secret");
		fg_tls_store_put(s);
	}
	gen = fg_control_tls_gen(c);
	full0 = fg_control_stats(c)->full;
	if (!ASSERT_TRUE(apply_tls_secret("server.crt", "client.key"), "another key"))
		goto out;
	if (ASSERT_TRUE(control_wait(c, FG_TLS_REJECTED), "rejected")) {
		h = kube_tls_host(c);
		ASSERT_STREQ(h->reason, "Secret shop/site-tls: tls.key does not match the "
			     "certificate in tls.crt", "reason");
		ASSERT_EQ(fg_control_tls_gen(c), gen + 1, "new generation");
		ASSERT_EQ(fg_control_stats(c)->full, full0, "no full computation");
		for (i = 0; i < fg_control_plan(c)->n_ingresses; i++)
			if (!strcmp(fg_control_plan(c)->ingresses[i].name, "site"))
				ASSERT_TRUE(fg_control_plan(c)->ingresses[i].accepted, "still accepted");
	}
out:
	fg_control_free(c);
	if (dp)
		fg_dp_close(dp, true);
	delete_obj("", "Secret", "shop", "site-tls");
	delete_obj("", "Ingress", "shop", "site");
}

/* A resource the server does not serve (a CRD not installed): empty, and
 * no failure. */
static void test_not_served(void)
{
	struct probe pods = { .origin = "c1", .kind = "Pod" };
	struct probe svcs = { .origin = "c1", .kind = "Service", .key = "web/svc-1" };
	struct fg_kube *k;
	double t;

	ASSERT_TRUE(ctl_ok("/_test/apply?cluster=c1", "{\"apiVersion\":\"v1\",\"kind\":\"Pod\","
			   "\"metadata\":{\"name\":\"p\",\"namespace\":\"web\"}}"), "apply Pod");
	ASSERT_TRUE(ctl_ok("/_test/config", "{\"notServed\":[\"pods\"]}"), "config");
	k = new_kube_with("c1", kubeconfig("c1.yaml", "c1", CA_DATA, U_TOKEN), 0);
	if (k) {
		t = WAIT_FOR(k, WAIT_MS, (run_probe(k, &svcs), synced(k, "c1") && svcs.found));
		ASSERT_GE(t, 0, "synced");
		run_probe(k, &pods);
		ASSERT_EQ(pods.count, 0, "no pods");
		ASSERT_FALSE(failing(k, "c1", NULL, 0), "404 is no failure");
		fg_kube_free(k);
	}
	ctl_ok("/_test/config", "{\"notServed\":[]}");
}

FG_TEST(kube)
{
	static const struct {
		const char *name;
		void (*fn)(void);
	} subs[] = {
		{ "list_and_watch", test_list_and_watch },
		{ "bookmark_and_resume", test_bookmark_and_resume },
		{ "compaction", test_compaction },
		{ "auth", test_auth },
		{ "kubeconfig_errors", test_kubeconfig_errors },
		{ "fleet_and_secrets", test_fleet_and_secrets },
		{ "tls_secrets", test_tls_secrets },
		{ "tls_control", test_tls_control },
		{ "not_served", test_not_served },
		{ "server_down", test_server_down },
	};
	size_t i;

	for (i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
		if (!test__start_subtest(subs[i].name))
			continue;
		if (!setup())
			continue;
		subs[i].fn();
		/* shown only when the subtest failed, or with -v */
		fg_sh("echo '--- apiserver.py log (tail)'; tail -n 25 %s", env.srvlog);
	}
	server_stop();
	env.ready = false;
}

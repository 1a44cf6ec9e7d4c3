// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The BIRD driver (agent/bgp.c) against a real BIRD 2 in a private network
 * namespace: the include file it writes parses, BIRD reads it on
 * "configure" over the control socket, the VIP routes appear when the
 * agent announces and disappear when it withdraws, when it frees the
 * driver, and when its process is killed with SIGKILL (the liveness device
 * goes with the process); a second agent cannot take the same device; a
 * BIRD that is not running yet is retried, not fatal.
 *
 * Skips without root, without /dev/net/tun or without BIRD 2 (`bird`).
 */
#include <limits.h>
#include <net/if.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bgp.h"
#include "dataplane.h"
#include "e2e_lib.h"
#include "test_progs.h"

struct bird_env {
	char dir[PATH_MAX - 128];
	char conf[PATH_MAX];
	char sock[PATH_MAX];
	char log[PATH_MAX];
	char inc[PATH_MAX];
	pid_t pid;
};

static bool have_bird(void)
{
	return fg_sh("command -v bird >/dev/null && command -v birdc >/dev/null") == 0;
}

static void vip(struct fg_bgp_vip *v, const char *s)
{
	fg_addr_parse(s, &v->addr, &v->family);
}

static bool bird_start(struct bird_env *b)
{
	char *argv[] = { "bird", "-f", "-c", b->conf, "-s", b->sock, NULL };
	long long deadline = e2e_now_ms() + 5000;

	unlink(b->sock);
	b->pid = e2e_spawn(b->log, NULL, argv);
	if (b->pid < 0)
		return false;
	while (e2e_now_ms() < deadline) {
		if (fg_bird_call(b->sock, "show status", 500, NULL, 0) == 13)
			return true;
		e2e_sleep_ms(20);
	}
	return false;
}

/* Whether BIRD's table has prefix (from `show route protocol PROTO`). */
static bool bird_has(struct bird_env *b, const char *proto, const char *prefix)
{
	char cmd[128], reply[8192];

	snprintf(cmd, sizeof(cmd), "show route protocol %s", proto);
	if (fg_bird_call(b->sock, cmd, 1000, reply, sizeof(reply)) < 0)
		return false;
	return strstr(reply, prefix) != NULL;
}

/* ms until bird_has() == want, or -1 after timeout_ms. */
static long wait_route(struct bird_env *b, const char *proto, const char *prefix, bool want,
		       unsigned timeout_ms)
{
	long long t0 = e2e_now_ms();

	while (e2e_now_ms() - t0 < timeout_ms) {
		if (bird_has(b, proto, prefix) == want)
			return (long)(e2e_now_ms() - t0);
		e2e_sleep_ms(5);
	}
	return -1;
}

static void subtest_render(void)
{
	struct fg_bgp_vip v[3];
	char text[2048], path[PATH_MAX], conf[PATH_MAX + 16];
	FILE *f;
	int n;

	vip(&v[0], "192.0.2.10");
	vip(&v[1], "2001:db8::10");
	vip(&v[2], "192.0.2.11");
	n = fg_bgp_render(text, sizeof(text), "fg-test", v, 3);
	if (!ASSERT_GT(n, 0, "render"))
		return;
	printf("%s", text);
	ASSERT_OK_PTR(strstr(text, "protocol static " FG_BGP_PROTO4 " {\n\tipv4;\n"
			      "\troute 192.0.2.10/32 via \"fg-test\";\n"
			      "\troute 192.0.2.11/32 via \"fg-test\";\n}\n"), "IPv4 protocol");
	ASSERT_OK_PTR(strstr(text, "protocol static " FG_BGP_PROTO6 " {\n\tipv6;\n"
			      "\troute 2001:db8::10/128 via \"fg-test\";\n}\n"), "IPv6 protocol");
	n = fg_bgp_render(text, sizeof(text), "fg-test", v, 1);
	ASSERT_GT(n, 0, "render IPv4 only");
	ASSERT_FALSE(strstr(text, FG_BGP_PROTO6), "no IPv6 protocol without IPv6 VIPs");
	ASSERT_EQ(fg_bgp_render(text, 64, "fg-test", v, 3), -ENOSPC, "short buffer");

	if (!have_bird()) {
		printf("bgp: no BIRD, the text is not parsed\n");
		return;
	}
	n = fg_bgp_render(text, sizeof(text), "fg-test", v, 3);
	snprintf(path, sizeof(path), "%s/render.conf", test__tmpdir());
	snprintf(conf, sizeof(conf), "%s.main", path);
	f = fopen(path, "w");
	if (!ASSERT_OK_PTR(f, "write include"))
		return;
	fputs(text, f);
	fclose(f);
	f = fopen(conf, "w");
	if (!ASSERT_OK_PTR(f, "write config"))
		return;
	fprintf(f, "router id 192.0.2.1;\nprotocol device {}\ninclude \"%s\";\n", path);
	fclose(f);
	ASSERT_EQ(fg_sh("bird -p -c %s", conf), 0, "bird -p parses the include file");
}

/* A child that announces 10.99.0.2 through its own device, then waits to
 * be killed. */
static pid_t announcing_child(const char *inc, const char *sock, const char *ready)
{
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid)
		return pid;
	{
		struct fg_bgp_opts o = { .include_path = inc, .socket_path = sock,
					 .device = "fgt-vip" };
		struct fg_bgp_vip v;
		struct fg_bgp *b;
		FILE *f;

		vip(&v, "10.99.0.2");
		if (fg_bgp_new(&b, &o, &v, 1) || fg_bgp_set(b, true, "test"))
			_exit(1);
		f = fopen(ready, "w");
		if (f)
			fclose(f);
		for (;;)
			pause();
	}
}

static void subtest_bird(void)
{
	struct bird_env b = {};
	struct fg_bgp_opts o = {};
	struct fg_bgp *bgp = NULL, *dup = NULL;
	struct fg_bgp_vip v[2];
	char ready[PATH_MAX + 16], reply[4096];
	json_t *st;
	pid_t child = 0;
	long ms;
	int handle, err, status;
	FILE *f;

	if (geteuid() != 0) {
		test__skip("needs root (network namespace, tun device)");
		return;
	}
	if (access("/dev/net/tun", R_OK | W_OK)) {
		test__skip("no /dev/net/tun");
		return;
	}
	if (!have_bird()) {
		test__skip("BIRD 2 is not installed (Debian package bird2; make deps)");
		return;
	}
	handle = test__netns_private();
	if (handle < 0) {
		test__skip("cannot make a private network namespace");
		return;
	}
	snprintf(b.dir, sizeof(b.dir), "%s/bird", test__tmpdir());
	snprintf(b.conf, sizeof(b.conf), "%s/bird.conf", b.dir);
	snprintf(b.sock, sizeof(b.sock), "%s/bird.ctl", b.dir);
	snprintf(b.log, sizeof(b.log), "%s/bird.log", b.dir);
	snprintf(b.inc, sizeof(b.inc), "%s/inc/vips.conf", b.dir);
	snprintf(ready, sizeof(ready), "%s/child.ready", b.dir);
	if (!ASSERT_EQ(fg_sh("mkdir -p %s/inc", b.dir), 0, "mkdir"))
		goto out;
	f = fopen(b.conf, "w");
	if (!ASSERT_OK_PTR(f, "bird.conf"))
		goto out;
	/* What docs/operations.md tells the operator to add. */
	fprintf(f, "router id 10.255.0.1;\nlog \"%s/bird.msgs\" all;\nprotocol device {}\n"
		"include \"%s/inc/*.conf\";\n", b.dir, b.dir);
	fclose(f);

	/* BIRD not running: the driver starts anyway and retries. */
	vip(&v[0], "10.99.0.1");
	vip(&v[1], "fd00:99::1");
	o.include_path = b.inc;
	o.socket_path = b.sock;
	o.device = "fgt-vip";
	err = fg_bgp_new(&bgp, &o, v, 2);
	if (!ASSERT_OK(err, "fg_bgp_new without BIRD"))
		goto out;
	st = fg_bgp_status(bgp);
	printf("bgp: status without BIRD: %s\n", json_dumps(st, JSON_COMPACT));
	ASSERT_FALSE(json_is_true(json_object_get(st, "configured")), "not configured");
	ASSERT_OK_PTR(strstr(json_string_value(json_object_get(st, "birdError")) ?: "",
			     "bird.ctl"), "birdError names the socket");
	json_decref(st);
	ASSERT_GT((long)if_nametoindex("fgt-vip"), 0, "liveness device exists");
	ASSERT_EQ(fg_bird_call(b.sock, "show status", 200, NULL, 0), -ENOENT,
		  "control socket absent: -ENOENT");

	if (!ASSERT_TRUE(bird_start(&b), "bird started"))
		goto out;
	/* The retry (backoff from 1 s) makes BIRD read the file. */
	for (ms = 0; ms < 3000 && !json_is_true(json_object_get(st = fg_bgp_status(bgp),
									"configured")); ms += 50) {
		json_decref(st);
		fg_bgp_tick(bgp);
		e2e_sleep_ms(50);
	}
	json_decref(st);
	ASSERT_LT(ms, 3000, "configured after BIRD started");
	ASSERT_GE(fg_bird_call(b.sock, "show protocols", 1000, reply, sizeof(reply)), 0,
		  "show protocols");
	printf("bgp: show protocols:\n%s", reply);
	ASSERT_OK_PTR(strstr(reply, FG_BGP_PROTO4), "BIRD has " FG_BGP_PROTO4);
	ASSERT_OK_PTR(strstr(reply, FG_BGP_PROTO6), "BIRD has " FG_BGP_PROTO6);
	ASSERT_EQ(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", false, 100), 0,
		  "withdrawn while not announced");

	ASSERT_OK(fg_bgp_set(bgp, true, "test"), "announce");
	ms = wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", true, 2000);
	printf("bgp: announced: the IPv4 route in BIRD after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "IPv4 route announced");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO6, "fd00:99::1/128", true, 2000), 0,
		  "IPv6 route announced");
	ASSERT_TRUE(fg_bgp_announced(bgp), "fg_bgp_announced");

	ASSERT_OK(fg_bgp_set(bgp, false, "test withdraw"), "withdraw");
	ms = wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", false, 2000);
	printf("bgp: withdrawn: gone from BIRD after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "IPv4 route withdrawn");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO6, "fd00:99::1/128", false, 2000), 0,
		  "IPv6 route withdrawn");

	/* Changed behind the agent's back: put back on its next tick. */
	ASSERT_OK(fg_bgp_set(bgp, true, "test"), "announce for the repair checks");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", true, 2000), 0, "announced");
	fg_sh("ip link set fgt-vip down");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", false, 2000), 0,
		  "set down by hand: withdrawn");
	fg_bgp_tick(bgp);
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", true, 2000), 0,
		  "the next tick sets it up again");
	fg_sh("ip link del fgt-vip");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", false, 2000), 0,
		  "deleted by hand: withdrawn");
	fg_bgp_tick(bgp);
	ASSERT_GT((long)if_nametoindex("fgt-vip"), 0, "the next tick creates it again");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", true, 2000), 0,
		  "and announces again");
	ASSERT_OK(fg_bgp_set(bgp, false, "test"), "withdraw after the repair checks");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", false, 2000), 0, "withdrawn");

	/* Same device twice: refused, the first keeps it. */
	err = fg_bgp_new(&dup, &o, v, 1);
	ASSERT_ERR(err, "a second driver on the same device");
	ASSERT_GT((long)if_nametoindex("fgt-vip"), 0, "the first keeps its device");

	/* Freeing the driver withdraws. */
	ASSERT_OK(fg_bgp_set(bgp, true, "test"), "announce again");
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", true, 2000), 0, "announced again");
	fg_bgp_free(bgp);
	bgp = NULL;
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.1/32", false, 2000), 0,
		  "withdrawn by fg_bgp_free");
	ASSERT_EQ((long)if_nametoindex("fgt-vip"), 0, "device removed by fg_bgp_free");

	/* The next agent (another process) is killed with SIGKILL: its
	 * device, and its routes, go with it; the include file it left
	 * announces nothing. */
	child = announcing_child(b.inc, b.sock, ready);
	if (!ASSERT_GT(child, 0, "fork"))
		goto out;
	for (ms = 0; ms < 3000 && access(ready, F_OK); ms += 20)
		e2e_sleep_ms(20);
	ASSERT_GE(wait_route(&b, FG_BGP_PROTO4, "10.99.0.2/32", true, 3000), 0,
		  "the child's route announced");
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	child = 0;
	ms = wait_route(&b, FG_BGP_PROTO4, "10.99.0.2/32", false, 2000);
	printf("bgp: SIGKILL: the route gone from BIRD after %ld ms\n", ms);
	ASSERT_GE(ms, 0, "a killed agent's route is withdrawn");
	ASSERT_EQ((long)if_nametoindex("fgt-vip"), 0, "its device is gone");
	ASSERT_GE(fg_bird_call(b.sock, "configure", 1000, reply, sizeof(reply)), 0,
		  "configure again");
	ASSERT_FALSE(bird_has(&b, FG_BGP_PROTO4, "10.99.0.2/32"),
		     "the file left behind announces nothing");
out:
	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	fg_bgp_free(dup);
	fg_bgp_free(bgp);
	if (b.pid > 0)
		e2e_stop_child(&b.pid, SIGTERM, 3000);
	test__netns_restore(handle);
}

FG_TEST(bgp)
{
	if (test__start_subtest("render"))
		subtest_render();
	if (test__start_subtest("bird"))
		subtest_bird();
}

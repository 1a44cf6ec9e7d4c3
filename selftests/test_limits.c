// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The gateway's own resources (agent/resources.c): which errors are local,
 * how they are counted and shown, the default SNAT range outside the local
 * port range, and the agent refusing an overlapping --snat-ports before it
 * touches anything.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <jansson.h>

#include "log.h"
#include "resources.h"
#include "test_progs.h"

static void subtest_local_errno(void)
{
	static const struct { int err; bool local; } cases[] = {
		{ EMFILE, true }, { -EMFILE, true }, { ENFILE, true }, { ENOBUFS, true },
		{ ENOMEM, true }, { EADDRNOTAVAIL, true }, { -EADDRNOTAVAIL, true },
		{ ECONNREFUSED, false }, { ETIMEDOUT, false }, { EHOSTUNREACH, false },
		{ ECONNRESET, false }, { 0, false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64];

		snprintf(name, sizeof(name), "errno %d", cases[i].err);
		ASSERT_EQ(fg_local_errno(cases[i].err), cases[i].local, name);
	}
}

static void subtest_counts(void)
{
	struct fg_local_errors le;
	enum fg_log_level lvl = fg_log_get_level();
	json_t *j;
	int i;

	fg_local_errors_init(&le, "test");
	fg_log_set_level(FG_LOG_WARN);
	for (i = 0; i < 5; i++)
		fg_local_error(&le, EMFILE, "probe of 10.0.0.1:80");
	fg_local_error(&le, -EADDRNOTAVAIL, "connect to 10.0.0.2:80");
	fg_log_set_level(lvl);
	j = fg_local_errors_json(&le);
	if (!ASSERT_OK_PTR(j, "json"))
		return;
	ASSERT_EQ(json_integer_value(json_object_get(j, "total")), 6, "total");
	ASSERT_EQ(json_integer_value(json_object_get(j, "EMFILE")), 5, "EMFILE");
	ASSERT_EQ(json_integer_value(json_object_get(j, "EADDRNOTAVAIL")), 1, "EADDRNOTAVAIL");
	ASSERT_STREQ(json_string_value(json_object_get(j, "last")),
		     "connect to 10.0.0.2:80: Cannot assign requested address", "last");
	/* One line at the first error; the rest wait for the interval. */
	ASSERT_EQ(le.window_count, 6, "in the current interval");
	json_decref(j);
}

static void subtest_snat_default(void)
{
	static const struct {
		const char *name;
		unsigned lmin, lmax;
		int err;
		unsigned min, max;
	} cases[] = {
		{ "linux_default", 32768, 60999, 0, 10000, 32767 },
		{ "low_local_range", 1024, 9999, 0, 10000, 65535 },
		{ "high_local_range", 50000, 65535, 0, 10000, 49999 },
		{ "above_is_larger", 10000, 20000, 0, 20001, 65535 },
		{ "whole_range", 1024, 65535, -ERANGE, 0, 0 },
		{ "too_little_left", 10500, 65000, -ERANGE, 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u16 min = 0, max = 0;
		int err = fg_snat_default_range(cases[i].lmin, cases[i].lmax, &min, &max);

		ASSERT_EQ(err, cases[i].err, cases[i].name);
		if (err)
			continue;
		ASSERT_EQ(min, cases[i].min, cases[i].name);
		ASSERT_EQ(max, cases[i].max, cases[i].name);
		/* never inside the local range */
		ASSERT_TRUE(max < cases[i].lmin || min > cases[i].lmax, cases[i].name);
	}
}

/* Every port outside the local range from FG_SNAT_LOWEST: both ranges,
 * the larger first, none inside the local range. */
static void subtest_snat_default_ranges(void)
{
	static const struct {
		const char *name;
		unsigned lmin, lmax;
		int err;
		unsigned min, max, min2, max2;
	} cases[] = {
		{ "linux_default", 32768, 60999, 0, 10000, 32767, 61000, 65535 },
		{ "low_local_range", 1024, 9999, 0, 10000, 65535, 0, 0 },
		{ "high_local_range", 50000, 65535, 0, 10000, 49999, 0, 0 },
		{ "above_is_larger", 10000, 20000, 0, 20001, 65535, 0, 0 },
		{ "both_sides", 20000, 40000, 0, 40001, 65535, 10000, 19999 },
		{ "whole_range", 1024, 65535, -ERANGE, 0, 0, 0, 0 },
		{ "too_little_left", 10300, 65300, -ERANGE, 0, 0, 0, 0 },
		{ "enough_together", 10500, 65000, 0, 65001, 65535, 10000, 10499 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		__u16 min = 0, max = 0, min2 = 0, max2 = 0;
		int err = fg_snat_default_ranges(cases[i].lmin, cases[i].lmax, &min, &max, &min2,
						 &max2);

		ASSERT_EQ(err, cases[i].err, cases[i].name);
		if (err)
			continue;
		ASSERT_EQ(min, cases[i].min, cases[i].name);
		ASSERT_EQ(max, cases[i].max, cases[i].name);
		ASSERT_EQ(min2, cases[i].min2, cases[i].name);
		ASSERT_EQ(max2, cases[i].max2, cases[i].name);
		ASSERT_TRUE(max < cases[i].lmin || min > cases[i].lmax, cases[i].name);
		ASSERT_TRUE(!min2 || max2 < cases[i].lmin || min2 > cases[i].lmax, cases[i].name);
	}
}

static void subtest_raise_nofile(void)
{
	struct rlimit before, after;
	__u64 soft, hard;

	if (!ASSERT_OK(getrlimit(RLIMIT_NOFILE, &before), "getrlimit"))
		return;
	if (!ASSERT_OK(fg_raise_nofile(&soft, &hard), "raise"))
		return;
	getrlimit(RLIMIT_NOFILE, &after);
	ASSERT_EQ(after.rlim_cur, after.rlim_max, "soft = hard");
	ASSERT_EQ(soft, after.rlim_cur, "reported");
	ASSERT_EQ(hard, before.rlim_max, "hard unchanged");
	setrlimit(RLIMIT_NOFILE, &before);
}

/* build/fleetgate-agent, next to build/test_progs. */
static int find_agent(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return -errno;
	self[n] = '\0';
	snprintf(buf, len, "%s/fleetgate-agent", dirname(self));
	return access(buf, X_OK) ? -errno : 0;
}

/* An --snat-ports inside ip_local_port_range stops the agent at once,
 * naming both ranges, before it loads or attaches anything. */
static void subtest_snat_overlap_refused(void)
{
	char agent[PATH_MAX], cmd[PATH_MAX + 256], out[4096] = "";
	__u16 lmin, lmax;
	size_t n;
	FILE *p;
	int st;

	if (find_agent(agent, sizeof(agent))) {
		test__skip("build/fleetgate-agent not found");
		return;
	}
	if (!ASSERT_OK(fg_local_port_range(&lmin, &lmax), "local range"))
		return;
	snprintf(cmd, sizeof(cmd), "'%s' --snat-ports %u-%u --iface lo --pin-path /sys/fs/bpf/%snope "
		 "--admin-socket /nonexistent/%s.sock 2>&1", agent, lmin + 10, lmax + 0u,
		 test__prefix(), test__prefix());
	p = popen(cmd, "r");
	if (!ASSERT_OK_PTR(p, "popen"))
		return;
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st = pclose(p);
	printf("%s", out);
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 2, "exit status 2");
	ASSERT_TRUE(strstr(out, "overlaps the gateway's own local port range") != NULL,
		    "says why");
	{
		char want[64];

		snprintf(want, sizeof(want), "%u-%u", lmin, lmax);
		ASSERT_TRUE(strstr(out, want) != NULL, "names the local range");
		snprintf(want, sizeof(want), "%u-%u", lmin + 10, lmax);
		ASSERT_TRUE(strstr(out, want) != NULL, "names the SNAT range");
	}
	snprintf(cmd, sizeof(cmd), "/sys/fs/bpf/%snope", test__prefix());
	ASSERT_TRUE(access(cmd, F_OK) != 0, "nothing pinned");
}

FG_TEST(limits)
{
	if (test__start_subtest("local_errno"))
		subtest_local_errno();
	if (test__start_subtest("counts"))
		subtest_counts();
	if (test__start_subtest("snat_default"))
		subtest_snat_default();
	if (test__start_subtest("snat_default_ranges"))
		subtest_snat_default_ranges();
	if (test__start_subtest("raise_nofile"))
		subtest_raise_nofile();
	if (test__start_subtest("snat_overlap_refused"))
		subtest_snat_overlap_refused();
}

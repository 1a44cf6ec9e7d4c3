// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Runs each libFuzzer target (selftests/fuzz/, built by `make fuzz` and
 * `make test`) for a bounded time from its seed corpus: any crash, leak,
 * sanitizer report or timeout fails the test with the fuzzer's output.
 * FG_FUZZ_SECONDS sets the time per target (default 20).
 */
#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_progs.h"

static void run_target(const char *name)
{
	char self[PATH_MAX], dir[PATH_MAX], bin[PATH_MAX + 64];
	const char *secs = getenv("FG_FUZZ_SECONDS");
	ssize_t n;
	char *slash;
	int rc;

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0) {
		test__skip("cannot find the test binary's directory");
		return;
	}
	self[n] = '\0';
	snprintf(dir, sizeof(dir), "%s", self);
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	snprintf(bin, sizeof(bin), "%s/fuzz/%s", dir, name);
	if (access(bin, X_OK)) {
		test__skip("%s not built (make fuzz needs clang's libFuzzer runtime)", bin);
		return;
	}
	/* The fuzzer's own exit status decides (no pipeline to hide it); its
	 * last lines go to the test's log. */
	rc = fg_sh("mkdir -p %s/fuzz/corpus-%s && %s -max_total_time=%s -max_len=65536 "
		   "-timeout=10 -artifact_prefix=%s/fuzz/%s- %s/fuzz/corpus-%s "
		   "selftests/fuzz/seeds-%s >%s/fuzz/%s.log 2>&1; rc=$?; "
		   "tail -5 %s/fuzz/%s.log; exit $rc",
		   dir, name, bin, secs ? secs : "20", dir, name, dir, name, name, dir, name,
		   dir, name);
	ASSERT_EQ(rc, 0, name);
}

FG_TEST(fuzz)
{
	if (test__start_subtest("http"))
		run_target("fuzz_http");
	if (test__start_subtest("manifest"))
		run_target("fuzz_manifest");
}

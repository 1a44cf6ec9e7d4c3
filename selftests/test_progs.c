// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * The test runner behind test_progs.h: registration, selection by glob,
 * output capture, per-(sub)test reporting and the final summary line.
 *
 * Tests run one after another in this process. While one runs (and without
 * -v), fds 1 and 2 point at a temporary log file, so the output of the test
 * and of every command it starts through fg_sh() lands in that log; the log
 * is replayed on the real stdout only for what failed.
 */
#include <ctype.h>
#include <execinfo.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <ftw.h>
#include <getopt.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_progs.h"

struct fg_result {
	bool failed;
	bool skipped;
	char skip_reason[256];
};

static struct {
	struct fg_test_def *tests; /* registration list, unsorted */
	int nr_tests;

	char **globs;
	int nr_globs;
	bool verbose;

	FILE *out;      /* the real stdout, for result lines */
	int real_out_fd; /* real stdout and stderr, kept across capture */
	int real_err_fd;
	FILE *log;      /* capture of the running test, NULL with -v */
	long log_mark;  /* log offset up to which output was reported */

	/* The running test. */
	const struct fg_test_def *test;
	int test_num;
	bool test_all_subs; /* selected by a glob without '/' */
	struct fg_result test_res;
	int nr_subs_seen;  /* test__start_subtest calls, selected or not */
	int nr_subs_run;
	int nr_subs_failed;
	int nr_subs_skipped;
	const char *sub_name; /* NULL outside a subtest */
	char sub_buf[128];
	int sub_num;
	struct fg_result sub_res;

	int passed, failed, skipped;

	char tmpdir[64];
	pid_t owner;
	char prefix[16];
} env;

void fg_test_register(struct fg_test_def *def)
{
	def->next = env.tests;
	env.tests = def;
	env.nr_tests++;
}

bool test__verbose(void)
{
	return env.verbose;
}

static struct fg_result *cur_result(void)
{
	return env.sub_name ? &env.sub_res : &env.test_res;
}

void test__fail(void)
{
	cur_result()->failed = true;
}

void test__skip(const char *fmt, ...)
{
	struct fg_result *r = cur_result();
	va_list ap;

	r->skipped = true;
	va_start(ap, fmt);
	vsnprintf(r->skip_reason, sizeof(r->skip_reason), fmt, ap);
	va_end(ap);
}

/* ---- selection ---- */

/* A glob selects a test either whole ("maglev*") or through its subtests
 * ("maglev*\/weights*"); in the latter case only the test part has to match
 * for the test body to run. */
static bool glob_selects_test(const char *glob, const char *test, bool *whole)
{
	const char *slash = strchr(glob, '/');
	char tpart[256];

	if (!slash) {
		*whole = fnmatch(glob, test, 0) == 0;
		return *whole;
	}
	*whole = false;
	snprintf(tpart, sizeof(tpart), "%.*s", (int)(slash - glob), glob);
	return fnmatch(tpart, test, 0) == 0;
}

static bool test_selected(const char *test, bool *all_subs)
{
	bool any = false, whole;
	int i;

	*all_subs = env.nr_globs == 0;
	if (!env.nr_globs)
		return true;
	for (i = 0; i < env.nr_globs; i++) {
		if (glob_selects_test(env.globs[i], test, &whole)) {
			any = true;
			*all_subs |= whole;
		}
	}
	return any;
}

static bool subtest_selected(const char *full)
{
	int i;

	if (env.test_all_subs)
		return true;
	for (i = 0; i < env.nr_globs; i++) {
		if (strchr(env.globs[i], '/') && !fnmatch(env.globs[i], full, 0))
			return true;
	}
	return false;
}

/* ---- output capture ---- */

static void capture_start(void)
{
	fflush(stdout);
	fflush(stderr);
	if (env.verbose)
		return;
	env.log = tmpfile();
	if (!env.log) {
		fprintf(env.out, "test_progs: tmpfile: %s; output not captured\n",
			strerror(errno));
		return;
	}
	env.log_mark = 0;
	dup2(fileno(env.log), STDOUT_FILENO);
	dup2(fileno(env.log), STDERR_FILENO);
}

static void capture_stop(void)
{
	fflush(stdout);
	fflush(stderr);
	if (!env.log)
		return;
	dup2(env.real_out_fd, STDOUT_FILENO);
	dup2(env.real_err_fd, STDERR_FILENO);
	fclose(env.log);
	env.log = NULL;
}

/* Copies the log written since the last report to the real stdout (when
 * show), and moves the mark past it either way. */
static void log_report(bool show)
{
	char buf[4096];
	off_t off, end;
	ssize_t n;

	fflush(stdout);
	fflush(stderr);
	if (!env.log)
		return;
	end = lseek(fileno(env.log), 0, SEEK_END);
	if (end < 0)
		return;
	for (off = env.log_mark; show && off < end; off += n) {
		n = pread(fileno(env.log), buf, sizeof(buf), off);
		if (n <= 0)
			break;
		fwrite(buf, 1, n, env.out);
	}
	env.log_mark = end;
	fflush(env.out);
}

/* ---- reporting ---- */

static const char *result_str(const struct fg_result *r)
{
	if (r->failed)
		return "FAIL";
	if (r->skipped)
		return "SKIP";
	return "OK";
}

static void print_result(const char *label, const struct fg_result *r)
{
	fprintf(env.out, "%s:%s", label, result_str(r));
	if (!r->failed && r->skipped && r->skip_reason[0])
		fprintf(env.out, " (%s)", r->skip_reason);
	fputc('\n', env.out);
	fflush(env.out);
}

static void count(const struct fg_result *r)
{
	if (r->failed)
		env.failed++;
	else if (r->skipped)
		env.skipped++;
	else
		env.passed++;
}

static void subtest_end(void)
{
	char label[300];

	if (!env.sub_name)
		return;
	log_report(env.sub_res.failed);
	snprintf(label, sizeof(label), "#%d/%d %s/%s", env.test_num,
		 env.sub_num, env.test->name, env.sub_name);
	print_result(label, &env.sub_res);
	count(&env.sub_res);
	env.nr_subs_failed += env.sub_res.failed;
	env.nr_subs_skipped += !env.sub_res.failed && env.sub_res.skipped;
	env.sub_name = NULL;
}

bool test__start_subtest(const char *name)
{
	char full[300];

	subtest_end();
	env.nr_subs_seen++;
	snprintf(full, sizeof(full), "%s/%s", env.test->name, name);
	if (!subtest_selected(full))
		return false;

	snprintf(env.sub_buf, sizeof(env.sub_buf), "%s", name);
	env.sub_name = env.sub_buf;
	env.sub_num = env.nr_subs_seen;
	memset(&env.sub_res, 0, sizeof(env.sub_res));
	env.nr_subs_run++;
	return true;
}

static void test_end(void)
{
	struct fg_result r = env.test_res;
	char label[300];

	subtest_end();
	/* Selected only through subtest globs none of which matched: the
	 * test has nothing to report unless its own code failed. */
	if (!env.nr_subs_run && !env.test_all_subs && !r.failed &&
	    !r.skipped) {
		log_report(false);
		return;
	}

	if (env.nr_subs_run) {
		/* Failures outside any subtest still have to fail the run. */
		if (r.failed)
			env.failed++;
		r.failed |= env.nr_subs_failed > 0;
		if (env.nr_subs_skipped == env.nr_subs_run && !r.skipped) {
			r.skipped = true;
			snprintf(r.skip_reason, sizeof(r.skip_reason),
				 "all subtests skipped");
		}
	} else {
		count(&r);
	}
	log_report(r.failed);
	snprintf(label, sizeof(label), "#%d %s", env.test_num, env.test->name);
	print_result(label, &r);
}

static void run_test(const struct fg_test_def *t, int num, bool all_subs)
{
	env.test = t;
	env.test_num = num;
	env.test_all_subs = all_subs;
	memset(&env.test_res, 0, sizeof(env.test_res));
	env.nr_subs_seen = env.nr_subs_run = 0;
	env.nr_subs_failed = env.nr_subs_skipped = 0;
	env.sub_name = NULL;

	capture_start();
	t->fn();
	/* Report while still capturing: log_report reads the log file. */
	test_end();
	capture_stop();
	env.test = NULL;
}

/* ---- crash reporting ---- */

static void write_str(int fd, const char *s)
{
	ssize_t n;

	while (*s) {
		n = write(fd, s, strlen(s));
		if (n <= 0)
			return;
		s += n;
	}
}

/* Async-signal-safe enough for a process that is about to die: no stdio
 * locks are taken, only write/pread. */
static void crash_handler(int sig)
{
	int fd = env.real_err_fd >= 0 ? env.real_err_fd : STDERR_FILENO;
	void *frames[64];
	char buf[4096];
	off_t off;
	ssize_t n;
	int nr;

	if (env.log) {
		for (off = env.log_mark;
		     (n = pread(fileno(env.log), buf, sizeof(buf), off)) > 0;
		     off += n)
			if (write(fd, buf, n) < 0)
				break;
	}
	write_str(fd, "\ntest_progs: caught ");
	write_str(fd, strsignal(sig));
	if (env.test) {
		write_str(fd, " in test ");
		write_str(fd, env.test->name);
		if (env.sub_name) {
			write_str(fd, "/");
			write_str(fd, env.sub_name);
		}
	}
	write_str(fd, "\n");
	nr = backtrace(frames, 64);
	backtrace_symbols_fd(frames, nr, fd);
	/* SA_RESETHAND restored the default action and SA_NODEFER lets it
	 * act right away, so the exit status still says what killed us. */
	raise(sig);
}

static void install_crash_handler(void)
{
	struct sigaction sa = {
		.sa_handler = crash_handler,
		.sa_flags = SA_RESETHAND | SA_NODEFER,
	};
	void *dummy;

	/* backtrace() loads libgcc lazily; doing that inside the handler of
	 * a crashed malloc could deadlock. */
	backtrace(&dummy, 1);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	sigaction(SIGILL, &sa, NULL);
}

/* ---- scratch directory and names ---- */

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	if (remove(path))
		fprintf(stderr, "test_progs: remove %s: %s\n", path,
			strerror(errno));
	return 0;
}

static void tmpdir_cleanup(void)
{
	/* Children that fork() without exec and then exit() run atexit
	 * handlers too; only the runner owns the directory. */
	if (!env.tmpdir[0] || getpid() != env.owner)
		return;
	nftw(env.tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	env.tmpdir[0] = '\0';
}

const char *test__tmpdir(void)
{
	if (env.tmpdir[0])
		return env.tmpdir;
	snprintf(env.tmpdir, sizeof(env.tmpdir), "/tmp/fgt-XXXXXX");
	if (!mkdtemp(env.tmpdir)) {
		fprintf(stderr, "test_progs: mkdtemp: %s\n", strerror(errno));
		env.tmpdir[0] = '\0';
		return "/tmp";
	}
	env.owner = getpid();
	return env.tmpdir;
}

const char *test__prefix(void)
{
	static const char digits[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char tmp[16];
	unsigned int pid;
	int n = 0, i;

	if (env.prefix[0])
		return env.prefix;
	/* pid in base 36: unique per run like the decimal pid, but at most
	 * 5 digits for any pid_max (4194304), so "<prefix>c1.1" style names
	 * stay well inside IFNAMSIZ. */
	pid = (unsigned int)getpid();
	do {
		tmp[n++] = digits[pid % 36];
		pid /= 36;
	} while (pid);
	memcpy(env.prefix, "fgt", 3);
	for (i = 0; i < n; i++)
		env.prefix[3 + i] = tmp[n - 1 - i];
	env.prefix[3 + n] = '\0';
	return env.prefix;
}

/* ---- helpers for tests ---- */

int fg_sh(const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	pid_t pid;
	int status, err, fd;

	va_start(ap, fmt);
	err = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (err < 0)
		return -ENOMEM;

	printf("+ %s\n", cmd);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		free(cmd);
		return err;
	}
	if (pid == 0) {
		/* A command waiting for input would hang the whole run. */
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, STDIN_FILENO);
		/* Shell pipelines expect the default SIGPIPE. */
		signal(SIGPIPE, SIG_DFL);
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	free(cmd);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status);
}

static void hex_line(const char *tag, const unsigned char *p, size_t len,
		     size_t off)
{
	size_t i;

	printf("  %04zx %-9s", off, tag);
	for (i = off; i < off + 16 && i < len; i++)
		printf(" %02x", p[i]);
	printf("\n");
}

/* Differences are marked by "^^" under the two hex rows; buffers longer
 * than a few hundred bytes only show their differing rows. */
static void hex_diff(const unsigned char *a, size_t alen,
		     const unsigned char *e, size_t elen)
{
	size_t max = alen > elen ? alen : elen;
	bool all = max <= 512, skipped = false;
	char mark[16 * 3 + 1];
	size_t off, i;
	bool diff;

	for (off = 0; off < max; off += 16) {
		diff = false;
		for (i = 0; i < 16; i++) {
			size_t k = off + i;
			bool d = k < max &&
				 (k >= alen || k >= elen || a[k] != e[k]);

			memcpy(mark + i * 3, d ? " ^^" : "   ", 3);
			diff |= d;
		}
		for (i = 16 * 3; i > 0 && mark[i - 1] == ' '; i--)
			;
		mark[i] = '\0';
		if (!all && !diff) {
			skipped = true;
			continue;
		}
		if (skipped)
			printf("  ...\n");
		skipped = false;
		hex_line("actual:", a, alen, off);
		hex_line("expected:", e, elen, off);
		if (diff)
			printf("  %4s %-9s%s\n", "", "", mark);
	}
	if (skipped)
		printf("  ...\n");
}

bool fg_assert_memeq(const void *actual, size_t actual_len,
		     const void *expected, size_t expected_len,
		     const char *name, const char *func, int line)
{
	const unsigned char *a = actual, *e = expected;
	size_t min = actual_len < expected_len ? actual_len : expected_len;
	size_t i;

	for (i = 0; i < min && a[i] == e[i]; i++)
		;
	if (i == min && actual_len == expected_len) {
		if (test__verbose())
			printf("%s:%d: ok %s\n", func, line, name);
		return true;
	}
	test__fail();
	printf("%s:%d: FAIL %s: buffers differ at offset %zu (0x%zx); actual len %zu, expected len %zu\n",
	       func, line, name, i, i, actual_len, expected_len);
	hex_diff(a, actual_len, e, expected_len);
	return false;
}

/* ---- main ---- */

static int cmp_tests(const void *a, const void *b)
{
	const struct fg_test_def *ta = *(const struct fg_test_def **)a;
	const struct fg_test_def *tb = *(const struct fg_test_def **)b;

	return strcmp(ta->name, tb->name);
}

static struct fg_test_def **sorted_tests(void)
{
	struct fg_test_def **v, *t;
	int i = 0;

	v = calloc(env.nr_tests + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (t = env.tests; t; t = t->next)
		v[i++] = t;
	qsort(v, env.nr_tests, sizeof(*v), cmp_tests);
	return v;
}

static void usage(FILE *f, const char *prog)
{
	fprintf(f,
		"Usage: %s [-t GLOB]... [-l] [-v] [-h]\n"
		"  -t GLOB  run tests whose name (\"test\") or subtest name\n"
		"           (\"test/subtest\") matches GLOB; repeatable\n"
		"  -l       list the selected test names and exit\n"
		"  -v       show all output, not just that of failures\n"
		"  -h       this help\n",
		prog);
}

static int parse_args(int argc, char **argv, bool *list)
{
	int opt;

	while ((opt = getopt(argc, argv, "t:lvh")) != -1) {
		switch (opt) {
		case 't':
			env.globs = realloc(env.globs, (env.nr_globs + 1) *
						       sizeof(*env.globs));
			if (!env.globs)
				return -ENOMEM;
			env.globs[env.nr_globs++] = optarg;
			break;
		case 'l':
			*list = true;
			break;
		case 'v':
			env.verbose = true;
			break;
		case 'h':
			usage(stdout, argv[0]);
			exit(0);
		default:
			usage(stderr, argv[0]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		usage(stderr, argv[0]);
		return -EINVAL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	/* The proxy under test must survive peers that close: as the agent. */
	signal(SIGPIPE, SIG_IGN);
	struct fg_test_def **tests;
	bool list = false, all_subs;
	int i, nr_run = 0;

	if (parse_args(argc, argv, &list))
		return 2;
	tests = sorted_tests();
	if (!tests)
		return 2;

	if (list) {
		for (i = 0; i < env.nr_tests; i++)
			if (test_selected(tests[i]->name, &all_subs))
				printf("%s\n", tests[i]->name);
		return 0;
	}

	/* Keeps stdout and stderr lines in order inside the log. */
	setvbuf(stdout, NULL, _IOLBF, 0);
	env.real_out_fd = dup(STDOUT_FILENO);
	env.real_err_fd = dup(STDERR_FILENO);
	env.out = env.real_out_fd >= 0 ? fdopen(env.real_out_fd, "w") : NULL;
	if (!env.out) {
		perror("test_progs: dup stdout");
		return 2;
	}
	fcntl(env.real_out_fd, F_SETFD, FD_CLOEXEC);
	fcntl(env.real_err_fd, F_SETFD, FD_CLOEXEC);
	env.owner = getpid();
	atexit(tmpdir_cleanup);
	install_crash_handler();

	for (i = 0; i < env.nr_tests; i++) {
		if (!test_selected(tests[i]->name, &all_subs))
			continue;
		nr_run++;
		run_test(tests[i], i + 1, all_subs);
	}
	if (!nr_run && env.nr_globs)
		fprintf(stderr, "test_progs: no test matches the selection\n");

	fprintf(env.out, "%d passed, %d failed", env.passed, env.failed);
	if (env.skipped)
		fprintf(env.out, ", %d skipped", env.skipped);
	fprintf(env.out, "\n");
	fflush(env.out);
	free(tests);
	free(env.globs);
	return env.failed ? 1 : 0;
}

int test__netns_private(void)
{
	int saved = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	int err;

	if (saved < 0)
		return -errno;
	if (unshare(CLONE_NEWNET)) {
		err = -errno;
		close(saved);
		return err;
	}
	err = fg_sh("ip link set lo up");
	if (err) {
		test__netns_restore(saved);
		return -EIO;
	}
	return saved;
}

void test__netns_restore(int handle)
{
	if (handle < 0)
		return;
	if (setns(handle, CLONE_NEWNET))
		fprintf(stderr, "test_progs: cannot return to the original network namespace: %s\n",
			strerror(errno));
	close(handle);
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/utsname.h>
#include <sys/wait.h>

#include "dataplane.h"
#include "e2e_lib.h"

long long e2e_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void e2e_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

pid_t e2e_spawn(const char *log, const char *err_log, char *const argv[])
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
	if (err_log) {
		fd = open(err_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0)
			dup2(fd, STDERR_FILENO);
	}
	/* The runner ignores SIGPIPE; the child's programs expect it. */
	signal(SIGPIPE, SIG_DFL);
	execvp(argv[0], argv);
	_exit(127);
}

bool e2e_reap(pid_t pid, int *status, unsigned int timeout_ms)
{
	long long deadline = e2e_now_ms() + timeout_ms;
	pid_t r;

	for (;;) {
		r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return true;
		if (r < 0 && errno != EINTR)
			return false;
		if (e2e_now_ms() >= deadline)
			return false;
		e2e_sleep_ms(10);
	}
}

int e2e_stop_child(pid_t *pidp, int sig, unsigned int timeout_ms)
{
	int status = -1;

	if (*pidp <= 0)
		return -1;
	kill(*pidp, sig);
	if (!e2e_reap(*pidp, &status, timeout_ms)) {
		printf("e2e: pid %d ignored signal %d, killing it\n", *pidp, sig);
		kill(*pidp, SIGKILL);
		if (!e2e_reap(*pidp, &status, 2000))
			status = -1;
	}
	*pidp = 0;
	return status;
}

char *e2e_capture(int *status, bool quiet, const char *fmt, ...)
{
	char *cmd = NULL, *buf, *tmp;
	size_t len = 0, cap = 8192, got;
	va_list ap;
	FILE *f;
	int st;

	va_start(ap, fmt);
	st = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	if (st < 0)
		return NULL;
	if (!quiet)
		printf("+ %s\n", cmd);
	fflush(stdout);
	fflush(stderr);
	buf = malloc(cap);
	f = buf ? popen(cmd, "r") : NULL;
	free(cmd);
	if (!f) {
		free(buf);
		return NULL;
	}
	while ((got = fread(buf + len, 1, cap - len - 1, f)) > 0) {
		len += got;
		if (len + 1 == cap) {
			tmp = realloc(buf, cap * 2);
			if (!tmp)
				break;
			buf = tmp;
			cap *= 2;
		}
	}
	buf[len] = '\0';
	st = pclose(f);
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	if (!quiet)
		printf("%s%s(exit %d)\n", buf, len && buf[len - 1] != '\n' ? "\n" : "", *status);
	return buf;
}

long long e2e_scaled_ms(long long ms)
{
	const char *v = getenv("FG_TEST_TIME_SCALE");
	long scale = v ? strtol(v, NULL, 10) : 1;

	return scale > 1 && scale <= 100 ? ms * scale : ms;
}

bool e2e_kernel_has_tcx(void)
{
	struct utsname u;
	int major = 0, minor = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return true;
	return major > 6 || (major == 6 && minor >= 6);
}

__u32 e2e_tc_prog_id(const char *netns, const char *ifname, const char **kind)
{
	char path[PATH_MAX];
	int self, ns, ifindex;
	__u32 id = 0;

	*kind = "tcx";
	snprintf(path, sizeof(path), "/run/netns/%s", netns);
	self = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	ns = open(path, O_RDONLY | O_CLOEXEC);
	if (self >= 0 && ns >= 0 && !setns(ns, CLONE_NEWNET)) {
		ifindex = (int)if_nametoindex(ifname);
		if (ifindex > 0) {
			id = fg_dp_attached_prog_id(ifindex, FG_ATTACH_TCX);
			if (!id) {
				id = fg_dp_attached_prog_id(ifindex, FG_ATTACH_TC_CLS);
				*kind = "cls_bpf";
			}
		}
		if (setns(self, CLONE_NEWNET))
			printf("e2e: cannot return to the test's namespace: %s\n", strerror(errno));
	}
	if (self >= 0)
		close(self);
	if (ns >= 0)
		close(ns);
	return id;
}

int e2e_script_path(const char *name, char *buf, size_t len)
{
	char exe[PATH_MAX], *slash;
	ssize_t n;

	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash)
			*slash = '\0';
		snprintf(buf, len, "%s/../selftests/e2e%s%s", exe, *name ? "/" : "", name);
		if (!access(buf, R_OK))
			return 0;
	}
	snprintf(buf, len, "selftests/e2e%s%s", *name ? "/" : "", name);
	return access(buf, R_OK) ? -ENOENT : 0;
}

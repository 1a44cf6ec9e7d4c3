/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the end-to-end tests share: a monotonic clock, child processes
 * started and stopped by PID, and shell commands whose output is kept.
 */
#ifndef FG_E2E_LIB_H
#define FG_E2E_LIB_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>

long long e2e_now_ms(void);
/* ms scaled by FG_TEST_TIME_SCALE (vm-test sets it under TCG, where the
 * guest runs 10-20 times slower): for waits on start-up work such as
 * loading and verifying the BPF programs, never for the budgets a test
 * asserts. */
long long e2e_scaled_ms(long long ms);
void e2e_sleep_ms(unsigned int ms);
/* selftests/e2e/NAME ("" for the directory) into buf: next to the test
 * binary (BUILD/../selftests/e2e), else from the working directory.
 * 0, or -ENOENT when neither is readable. */
int e2e_script_path(const char *name, char *buf, size_t len);
/* tcx links came with 6.6; before, TC is a cls_bpf filter. */
bool e2e_kernel_has_tcx(void);
/* The id of the TC program on ifname in the network namespace
 * /run/netns/<netns>, asked from inside it: a tcx link, else a cls_bpf
 * filter (*kind says which); 0 when there is none. */
__u32 e2e_tc_prog_id(const char *netns, const char *ifname, const char **kind);
/* fork + exec, stdin from /dev/null, stdout (and stderr, unless err_log)
 * appended to log. The child gets SIGTERM if the runner dies. Returns the
 * child's PID or -errno. */
pid_t e2e_spawn(const char *log, const char *err_log, char *const argv[]);
/* Waits up to timeout_ms for pid; true when reaped (status set). */
bool e2e_reap(pid_t pid, int *status, unsigned int timeout_ms);
/* sig, then SIGKILL if the child lingers; its wait status or -1. *pidp is
 * cleared. */
int e2e_stop_child(pid_t *pidp, int sig, unsigned int timeout_ms);
/* Runs a shell command and returns its stdout (+stderr if redirected),
 * malloc'ed, and its exit status in *status. quiet: no echo of the
 * command and its output into the test's log. */
char *e2e_capture(int *status, bool quiet, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif

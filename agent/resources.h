/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The gateway's own resources: its file limit, its local port range, and
 * the errors that come from running short of them.
 *
 * A connect that fails because the gateway has no file descriptor, no
 * memory, no buffer or no free local port says nothing about the backend
 * it was meant for: fg_local_errno() tells those errors apart, and callers
 * (health probes, the proxy's upstream connects) count them in a struct
 * fg_local_errors instead of marking a backend down. The log gets one
 * summary line per interval, not a line per failure.
 */
#ifndef FG_RESOURCES_H
#define FG_RESOURCES_H

#include <stdbool.h>
#include <linux/types.h>
#include <jansson.h>

/* EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL (positive or negative). */
bool fg_local_errno(int err);

struct fg_local_errors {
	const char *who;       /* "health", "proxy": starts each log line */
	__u64 total;           /* since start */
	__u64 by_errno[5];     /* EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL */
	int last_errno;
	char last_what[96];    /* what failed last, e.g. "connect to 10.0.0.1:80" */
	__u64 window_start_ms; /* the current log interval */
	__u64 window_count;    /* errors in it */
	unsigned interval_ms;  /* one log line per interval (default 1000) */
};

void fg_local_errors_init(struct fg_local_errors *le, const char *who);
/* Counts one local error (err as errno, either sign) on WHAT; logs the
 * first of an interval at once and a summary of the rest at the next. */
void fg_local_error(struct fg_local_errors *le, int err, const char *what);
/* Logs the summary of an interval that ended (call it now and then). */
void fg_local_errors_flush(struct fg_local_errors *le);
/* {"total": N, "EMFILE": N, ..., "last": "what: strerror"} (new reference). */
json_t *fg_local_errors_json(const struct fg_local_errors *le);

/*
 * Raises the soft RLIMIT_NOFILE to the hard limit. *soft gets the limit in
 * force afterwards (the old one when raising failed). Returns 0 or -errno.
 */
int fg_raise_nofile(__u64 *soft, __u64 *hard);

/* The local stack's ephemeral port range (net.ipv4.ip_local_port_range of
 * the caller's network namespace). Returns 0 or -errno. */
int fg_local_port_range(__u16 *min, __u16 *max);

/*
 * The SNAT port range the agent takes when --snat-ports is not given: the
 * larger of the two ranges outside [local_min, local_max] within
 * [FG_SNAT_LOWEST, 65535]. Returns -ERANGE when neither holds at least
 * FG_SNAT_MIN_PORTS ports.
 */
#define FG_SNAT_LOWEST 10000
#define FG_SNAT_MIN_PORTS 1024
int fg_snat_default_range(__u16 local_min, __u16 local_max, __u16 *min, __u16 *max);

/*
 * Both ranges outside [local_min, local_max] within [FG_SNAT_LOWEST,
 * 65535], the larger first: what the agent takes when --snat-ports is not
 * given (every port its own sockets cannot take). A range that is empty is
 * 0-0 (the second one only: when both are, -ERANGE); -ERANGE too when they
 * hold fewer than FG_SNAT_MIN_PORTS ports together.
 */
int fg_snat_default_ranges(__u16 local_min, __u16 local_max, __u16 *min, __u16 *max,
			   __u16 *min2, __u16 *max2);

#endif

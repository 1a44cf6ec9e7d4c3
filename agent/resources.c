// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <sys/resource.h>

#include "resources.h"
#include "log.h"

static const int local_errnos[5] = { EMFILE, ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL };
static const char *const local_names[5] = { "EMFILE", "ENFILE", "ENOBUFS", "ENOMEM",
					    "EADDRNOTAVAIL" };

static int local_index(int err)
{
	int i;

	if (err < 0)
		err = -err;
	for (i = 0; i < 5; i++)
		if (local_errnos[i] == err)
			return i;
	return -1;
}

bool fg_local_errno(int err)
{
	return local_index(err) >= 0;
}

static __u64 now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void fg_local_errors_init(struct fg_local_errors *le, const char *who)
{
	memset(le, 0, sizeof(*le));
	le->who = who;
	le->interval_ms = 1000;
}

void fg_local_errors_flush(struct fg_local_errors *le)
{
	__u64 now = now_ms();

	if (!le->window_start_ms || now - le->window_start_ms < le->interval_ms)
		return;
	/* The first error of the window was logged when it happened. */
	if (le->window_count > 1)
		pr_warn("%s: %llu more local errors in the last %.1f s (last: %s: %s); "
			"no backend was marked down for them\n",
			le->who, (unsigned long long)(le->window_count - 1),
			(now - le->window_start_ms) / 1000.0, le->last_what,
			strerror(le->last_errno));
	le->window_start_ms = 0;
	le->window_count = 0;
}

void fg_local_error(struct fg_local_errors *le, int err, const char *what)
{
	int i = local_index(err);

	if (err < 0)
		err = -err;
	le->total++;
	if (i >= 0)
		le->by_errno[i]++;
	le->last_errno = err;
	snprintf(le->last_what, sizeof(le->last_what), "%s", what);
	fg_local_errors_flush(le);
	if (!le->window_start_ms) {
		le->window_start_ms = now_ms();
		pr_warn("%s: %s: %s: the gateway is short of a local resource; no backend is "
			"marked down for it (docs/operations.md, \"Limits\")\n",
			le->who, what, strerror(err));
	}
	le->window_count++;
}

json_t *fg_local_errors_json(const struct fg_local_errors *le)
{
	char last[160];
	json_t *j = json_object();
	int i;

	if (!j)
		return NULL;
	json_object_set_new(j, "total", json_integer((json_int_t)le->total));
	for (i = 0; i < 5; i++)
		json_object_set_new(j, local_names[i], json_integer((json_int_t)le->by_errno[i]));
	if (le->total) {
		snprintf(last, sizeof(last), "%s: %s", le->last_what, strerror(le->last_errno));
		json_object_set_new(j, "last", json_string(last));
	}
	return j;
}

int fg_raise_nofile(__u64 *soft, __u64 *hard)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	*hard = rl.rlim_max;
	*soft = rl.rlim_cur;
	if (rl.rlim_cur == rl.rlim_max)
		return 0;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl))
		return -errno;
	*soft = rl.rlim_cur;
	return 0;
}

int fg_local_port_range(__u16 *min, __u16 *max)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	unsigned a, b;
	int n;

	if (!f)
		return -errno;
	n = fscanf(f, "%u %u", &a, &b);
	fclose(f);
	if (n != 2 || a > 65535 || b > 65535 || a > b)
		return -EINVAL;
	*min = a;
	*max = b;
	return 0;
}

int fg_snat_default_range(__u16 local_min, __u16 local_max, __u16 *min, __u16 *max)
{
	unsigned below_lo = FG_SNAT_LOWEST, below_hi = local_min ? local_min - 1u : 0;
	unsigned above_lo = local_max + 1u, above_hi = 65535;
	unsigned below = 0, above = 0;

	if (above_lo < FG_SNAT_LOWEST)
		above_lo = FG_SNAT_LOWEST;
	if (below_hi >= below_lo)
		below = below_hi - below_lo + 1;
	if (above_lo <= above_hi)
		above = above_hi - above_lo + 1;
	if (below < FG_SNAT_MIN_PORTS && above < FG_SNAT_MIN_PORTS)
		return -ERANGE;
	if (below >= above) {
		*min = below_lo;
		*max = below_hi;
	} else {
		*min = above_lo;
		*max = above_hi;
	}
	return 0;
}

int fg_snat_default_ranges(__u16 local_min, __u16 local_max, __u16 *min, __u16 *max,
			   __u16 *min2, __u16 *max2)
{
	unsigned lo[2] = { FG_SNAT_LOWEST, local_max + 1u };
	unsigned hi[2] = { local_min ? local_min - 1u : 0, 65535 };
	unsigned n[2] = { 0, 0 }, k;

	if (lo[1] < FG_SNAT_LOWEST)
		lo[1] = FG_SNAT_LOWEST;
	for (k = 0; k < 2; k++)
		if (hi[k] >= lo[k])
			n[k] = hi[k] - lo[k] + 1;
	if (n[0] + n[1] < FG_SNAT_MIN_PORTS)
		return -ERANGE;
	k = n[0] >= n[1] ? 0 : 1; /* the larger first */
	*min = lo[k];
	*max = hi[k];
	*min2 = n[!k] ? lo[!k] : 0;
	*max2 = n[!k] ? hi[!k] : 0;
	return 0;
}

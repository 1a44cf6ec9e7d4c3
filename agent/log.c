// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <stdio.h>
#include <bpf/libbpf.h>

#include "log.h"

static enum fg_log_level log_level = FG_LOG_INFO;

void fg_log_set_level(enum fg_log_level level)
{
	log_level = level;
}

enum fg_log_level fg_log_get_level(void)
{
	return log_level;
}

void fg_log(enum fg_log_level level, const char *fmt, ...)
{
	va_list ap;

	if (level > log_level)
		return;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

static int libbpf_print(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (log_level < FG_LOG_DEBUG && level != LIBBPF_WARN)
		return 0;
	if (log_level < FG_LOG_DEBUG)
		return 0; /* warnings are reported by our callers with context */
	return vfprintf(stderr, fmt, ap);
}

void fg_log_setup_libbpf(void)
{
	libbpf_set_print(libbpf_print);
}

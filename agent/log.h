/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
#ifndef FG_LOG_H
#define FG_LOG_H

#include <stdarg.h>

enum fg_log_level {
	FG_LOG_WARN = 0,
	FG_LOG_INFO = 1,
	FG_LOG_DEBUG = 2,
};

/* Messages at or below this level are printed (stderr). */
void fg_log_set_level(enum fg_log_level level);
enum fg_log_level fg_log_get_level(void);
void fg_log(enum fg_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Routes libbpf's own messages: silenced unless the level is DEBUG. */
void fg_log_setup_libbpf(void);

#define pr_warn(fmt, ...) fg_log(FG_LOG_WARN, fmt, ##__VA_ARGS__)
#define pr_info(fmt, ...) fg_log(FG_LOG_INFO, fmt, ##__VA_ARGS__)
#define pr_debug(fmt, ...) fg_log(FG_LOG_DEBUG, fmt, ##__VA_ARGS__)

#endif

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "admin.h"
#include "log.h"

#define ADMIN_DIR "/run/fleetgate"
#define MAX_REQUEST 8192
#define IO_TIMEOUT_MS 500

struct fg_admin {
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	fg_admin_handler handler;
	void *ctx;
};

int fg_admin_socket_path(const char *pin_path, char *buf, size_t len)
{
	const char *base = strrchr(pin_path, '/');
	char name[64];
	size_t i, n = 0;

	base = base ? base + 1 : pin_path;
	for (i = 0; base[i] && n < sizeof(name) - 1; i++) {
		char c = base[i];

		name[n++] = (c == '.' || c == '-' || c == '_' || (c >= '0' && c <= '9') ||
			     (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ? c : '_';
	}
	name[n] = '\0';
	if (!n)
		snprintf(name, sizeof(name), "fleetgate");
	if (snprintf(buf, len, "%s/%s.sock", ADMIN_DIR, name) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

static int fill_addr(struct sockaddr_un *sun, const char *path)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	strcpy(sun->sun_path, path);
	return 0;
}

int fg_admin_open(struct fg_admin **out, const char *path, fg_admin_handler handler, void *ctx)
{
	struct sockaddr_un sun;
	struct fg_admin *adm;
	int err;

	err = fill_addr(&sun, path);
	if (err)
		return err;
	adm = calloc(1, sizeof(*adm));
	if (!adm)
		return -ENOMEM;
	snprintf(adm->path, sizeof(adm->path), "%s", path);
	adm->handler = handler;
	adm->ctx = ctx;
	if (mkdir(ADMIN_DIR, 0755) && errno != EEXIST) {
		err = -errno;
		pr_warn("cannot create %s: %s\n", ADMIN_DIR, strerror(-err));
		goto err_free;
	}
	adm->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (adm->fd < 0) {
		err = -errno;
		goto err_free;
	}
	/* A socket file left by an agent that died is replaced; a live agent
	 * on the same path is not. */
	if (!connect(adm->fd, (struct sockaddr *)&sun, sizeof(sun))) {
		err = -EADDRINUSE;
		pr_warn("another agent answers on %s\n", path);
		goto err_close;
	}
	close(adm->fd);
	adm->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (adm->fd < 0) {
		err = -errno;
		goto err_free;
	}
	unlink(path);
	if (bind(adm->fd, (struct sockaddr *)&sun, sizeof(sun)) || listen(adm->fd, 16)) {
		err = -errno;
		pr_warn("cannot listen on admin socket %s: %s\n", path, strerror(-err));
		goto err_close;
	}
	chmod(path, 0600);
	*out = adm;
	return 0;
err_close:
	close(adm->fd);
err_free:
	free(adm);
	return err;
}

int fg_admin_fd(const struct fg_admin *adm)
{
	return adm->fd;
}

/* Reads one line (the request) with a deadline. */
static int read_line(int fd, char *buf, size_t len)
{
	size_t n = 0;

	while (n < len - 1) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&pfd, 1, IO_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		r = read(fd, buf + n, len - 1 - n);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		n += r;
		if (memchr(buf, '\n', n))
			break;
	}
	buf[n] = '\0';
	if (n == len - 1 && !memchr(buf, '\n', n))
		return -EMSGSIZE;
	return (int)n;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		struct pollfd pfd = { .fd = fd, .events = POLLOUT };
		ssize_t w;

		if (poll(&pfd, 1, IO_TIMEOUT_MS) <= 0)
			return -ETIMEDOUT;
		w = write(fd, buf, len);
		if (w < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		buf += w;
		len -= w;
	}
	return 0;
}

static void serve(struct fg_admin *adm, int cfd)
{
	char *buf = malloc(MAX_REQUEST);
	json_t *req = NULL, *ans;
	json_error_t jerr;
	char *out;
	int n;

	if (!buf)
		return;
	n = read_line(cfd, buf, MAX_REQUEST);
	if (n > 0)
		req = json_loads(buf, JSON_DISABLE_EOF_CHECK, &jerr);
	if (!json_is_object(req))
		ans = json_pack("{s:b, s:s}", "ok", 0, "error",
				n == -EMSGSIZE ? "request too long" : "request is not a JSON object");
	else
		ans = adm->handler(req, adm->ctx);
	out = ans ? json_dumps(ans, JSON_COMPACT) : NULL;
	if (out) {
		write_all(cfd, out, strlen(out));
		write_all(cfd, "\n", 1);
	}
	free(out);
	json_decref(ans);
	json_decref(req);
	free(buf);
}

void fg_admin_process(struct fg_admin *adm)
{
	for (;;) {
		int cfd = accept4(adm->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (cfd < 0)
			return;
		serve(adm, cfd);
		close(cfd);
	}
}

void fg_admin_close(struct fg_admin *adm)
{
	if (!adm)
		return;
	close(adm->fd);
	unlink(adm->path);
	free(adm);
}

json_t *fg_admin_call(const char *path, json_t *request, int timeout_ms, int *err)
{
	struct sockaddr_un sun;
	size_t cap = 65536, n = 0;
	char *req = NULL, *buf = NULL;
	json_t *ans = NULL;
	json_error_t jerr;
	int fd = -1;

	*err = fill_addr(&sun, path);
	if (*err)
		return NULL;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		*err = -errno;
		goto out;
	}
	req = json_dumps(request, JSON_COMPACT);
	buf = malloc(cap);
	if (!req || !buf) {
		*err = -ENOMEM;
		goto out;
	}
	*err = write_all(fd, req, strlen(req));
	if (!*err)
		*err = write_all(fd, "\n", 1);
	if (*err)
		goto out;
	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (n + 1 >= cap) {
			char *nb = realloc(buf, cap * 2);

			if (!nb) {
				*err = -ENOMEM;
				goto out;
			}
			buf = nb;
			cap *= 2;
		}
		if (poll(&pfd, 1, timeout_ms) <= 0) {
			*err = -ETIMEDOUT;
			goto out;
		}
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += r;
	}
	buf[n] = '\0';
	ans = json_loads(buf, 0, &jerr);
	if (!ans)
		*err = -EPROTO;
out:
	if (fd >= 0)
		close(fd);
	free(req);
	free(buf);
	return ans;
}

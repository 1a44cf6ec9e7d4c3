// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * BIRD 2 driver (see bgp.h): the include file, the liveness device, and
 * BIRD's control socket protocol (lines "CODE-text" continue a reply,
 * " text" continues the previous code, "CODE text" ends it; codes below
 * 1000 are results, 1000-7999 data, 8000-9999 errors).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "bgp.h"
#include "dataplane.h"
#include "log.h"

#define RETRY_MIN_MS 1000
#define RETRY_MAX_MS 30000

struct fg_bgp {
	char include_path[PATH_MAX];
	char socket_path[108];
	char device[IFNAMSIZ];
	unsigned timeout_ms;
	struct fg_bgp_vip vips[FG_BGP_MAX_VIPS];
	size_t n_vips;
	int tun_fd;
	bool announced;
	char reason[256];
	time_t since;
	bool configured;        /* BIRD accepted the include file */
	char bird_error[256];
	long long retry_at_ms;
	unsigned retry_ms;
	bool warned;
	int dev_err;            /* the last device error logged */
};

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int fg_bgp_render(char *buf, size_t len, const char *device, const struct fg_bgp_vip *vips,
		  size_t n)
{
	static const struct {
		int family;
		const char *proto, *channel;
		int plen;
	} fams[] = {
		{ FG_AF_INET, FG_BGP_PROTO4, "ipv4", 32 },
		{ FG_AF_INET6, FG_BGP_PROTO6, "ipv6", 128 },
	};
	size_t off = 0, f, i;
	int w;

#define PUT(...)                                                           \
	do {                                                               \
		w = snprintf(buf + off, len - off, __VA_ARGS__);           \
		if (w < 0 || (size_t)w >= len - off)                       \
			return -ENOSPC;                                    \
		off += w;                                                  \
	} while (0)

	PUT("# Written by fleetgate-agent (--bgp-include) when it starts; do not edit.\n"
	    "# Every VIP is a device route through \"%s\", a device that exists only\n"
	    "# while the agent runs and is up only while this node should take traffic\n"
	    "# (a gateway Listening, a healthy cluster, not draining). Export these\n"
	    "# protocols to the routers, e.g. export where proto = \"%s\";\n",
	    device, FG_BGP_PROTO4);
	for (f = 0; f < sizeof(fams) / sizeof(fams[0]); f++) {
		bool any = false;

		for (i = 0; i < n; i++)
			any |= vips[i].family == fams[f].family;
		if (!any)
			continue;
		PUT("protocol static %s {\n\t%s;\n", fams[f].proto, fams[f].channel);
		for (i = 0; i < n; i++) {
			char a[INET6_ADDRSTRLEN];

			if (vips[i].family != fams[f].family)
				continue;
			fg_addr_str(&vips[i].addr, vips[i].family, a, sizeof(a));
			PUT("\troute %s/%d via \"%s\";\n", a, fams[f].plen, device);
		}
		PUT("}\n");
	}
#undef PUT
	return (int)off;
}

/* ---------- BIRD's control socket ---------- */

static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	long long left;
	int n;

	for (;;) {
		left = deadline - mono_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

/* Reads reply lines until the one that ends the reply; returns its code.
 * Lines are appended to reply (without codes). */
static int read_reply(int fd, char *rbuf, size_t rcap, size_t *rlen, long long deadline,
		      char *reply, size_t len, size_t *roff)
{
	for (;;) {
		char *nl = memchr(rbuf, '\n', *rlen);
		ssize_t n;
		int err;

		while (nl) {
			size_t l = nl - rbuf;
			const char *text = rbuf;
			int code = -1;
			bool last = false;

			*nl = '\0';
			if (l >= 4 && strspn(rbuf, "0123456789") >= 4) {
				code = (rbuf[0] - '0') * 1000 + (rbuf[1] - '0') * 100 +
				       (rbuf[2] - '0') * 10 + (rbuf[3] - '0');
				last = l == 4 || rbuf[4] == ' ';
				text = l > 5 ? rbuf + 5 : "";
			} else if (rbuf[0] == ' ' || rbuf[0] == '+') {
				text = rbuf + 1;
			}
			if (reply && *roff < len) {
				int w = snprintf(reply + *roff, len - *roff, "%s\n", text);

				*roff += w > 0 ? (size_t)w : 0;
				if (*roff >= len)
					*roff = len - 1;
			}
			memmove(rbuf, nl + 1, *rlen - l - 1);
			*rlen -= l + 1;
			if (last)
				return code;
			nl = memchr(rbuf, '\n', *rlen);
		}
		if (*rlen == rcap) /* a line longer than the buffer: drop it */
			*rlen = 0;
		err = wait_fd(fd, POLLIN, deadline);
		if (err)
			return err;
		n = read(fd, rbuf + *rlen, rcap - *rlen);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		*rlen += n;
	}
}

int fg_bird_call(const char *socket_path, const char *cmd, unsigned timeout_ms, char *reply,
		 size_t len)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	long long deadline = mono_ms() + (timeout_ms ? timeout_ms : 1000);
	char rbuf[4096], line[512];
	size_t rlen = 0, roff = 0, off = 0;
	int fd, rc, n;

	if (reply && len)
		reply[0] = '\0';
	if (strlen(socket_path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		rc = -errno;
		if (rc != -EINPROGRESS && rc != -EAGAIN)
			goto out;
		rc = wait_fd(fd, POLLOUT, deadline);
		if (rc)
			goto out;
	}
	/* The greeting: "0001 BIRD 2.0.12 ready." */
	rc = read_reply(fd, rbuf, sizeof(rbuf), &rlen, deadline, NULL, 0, &roff);
	if (rc < 0)
		goto out;
	if (rc != 1) {
		rc = -EPROTO;
		goto out;
	}
	n = snprintf(line, sizeof(line), "%s\n", cmd);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		rc = -E2BIG;
		goto out;
	}
	while (off < (size_t)n) {
		ssize_t w = write(fd, line + off, n - off);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN) {
				rc = -errno;
				goto out;
			}
			rc = wait_fd(fd, POLLOUT, deadline);
			if (rc)
				goto out;
			continue;
		}
		off += w;
	}
	rc = read_reply(fd, rbuf, sizeof(rbuf), &rlen, deadline, reply, len, &roff);
out:
	close(fd);
	return rc;
}

/* ---------- the liveness device ---------- */

static int set_device_up(const char *name, bool up)
{
	struct ifreq ifr = {};
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr)) {
		err = -errno;
		goto out;
	}
	if (up)
		ifr.ifr_flags |= IFF_UP;
	else
		ifr.ifr_flags &= ~IFF_UP;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr))
		err = -errno;
out:
	close(fd);
	return err;
}

static int device_flags(const char *name, short *flags)
{
	struct ifreq ifr = {};
	int fd, err = 0;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr))
		err = -errno;
	else
		*flags = ifr.ifr_flags;
	close(fd);
	return err;
}

static int device_open(const char *name)
{
	struct ifreq ifr = { .ifr_flags = IFF_TUN | IFF_NO_PI };
	int fd, err;

	fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		pr_warn("bgp: cannot open /dev/net/tun for the liveness device %s: %s\n", name,
			strerror(-err));
		return err;
	}
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(fd, TUNSETIFF, &ifr)) {
		err = -errno;
		if (err == -EBUSY || err == -EEXIST || err == -EINVAL)
			pr_warn("bgp: cannot create the liveness device %s: %s: a device of that name "
				"exists and is not this agent's (another fleetgate-agent in this "
				"network namespace? give each its own --bgp-device)\n", name,
				strerror(-err));
		else
			pr_warn("bgp: cannot create the liveness device %s: %s\n", name,
				strerror(-err));
		close(fd);
		return err;
	}
	return fd;
}

/* ---------- the include file and configure ---------- */

static int write_include(struct fg_bgp *b)
{
	char text[4096], tmp[PATH_MAX + 8];
	int len, fd, err = 0;

	len = fg_bgp_render(text, sizeof(text), b->device, b->vips, b->n_vips);
	if (len < 0)
		return len;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", b->include_path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		err = -errno;
		goto fail;
	}
	if (write(fd, text, len) != len)
		err = errno ? -errno : -EIO;
	if (fsync(fd) && !err)
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && rename(tmp, b->include_path))
		err = -errno;
	if (!err)
		return 0;
	unlink(tmp);
fail:
	pr_warn("bgp: cannot write the BIRD include file %s: %s\n", b->include_path,
		strerror(-err));
	return err;
}

/* Asks BIRD to read its configuration (and so the include file) again. */
static int bird_configure(struct fg_bgp *b)
{
	char reply[1024], *p;
	int code;

	code = fg_bird_call(b->socket_path, "configure", b->timeout_ms, reply, sizeof(reply));
	if (code < 0) {
		snprintf(b->bird_error, sizeof(b->bird_error), "control socket %.108s: %s",
			 b->socket_path, strerror(-code));
		return code;
	}
	for (p = reply; *p; p++)
		if (*p == '\n')
			*p = *(p + 1) ? ' ' : '\0';
	/* 3 Reconfigured, 4 in progress, 5 queued, 17 queued (replacing),
	 * 19 nothing to do. */
	if (code == 3 || code == 4 || code == 5 || code == 17 || code == 19) {
		b->bird_error[0] = '\0';
		return 0;
	}
	snprintf(b->bird_error, sizeof(b->bird_error), "configure: %04d %.200s", code, reply);
	return -EPROTO;
}

static void try_configure(struct fg_bgp *b)
{
	int err = bird_configure(b);

	if (!err) {
		if (!b->configured)
			pr_info("bgp: BIRD read %s (configure on %s)\n", b->include_path,
				b->socket_path);
		b->configured = true;
		b->warned = false;
		return;
	}
	if (!b->warned)
		pr_warn("bgp: BIRD did not take %s: %s; retrying (a BIRD that starts later reads "
			"it itself)\n", b->include_path, b->bird_error);
	b->warned = true;
	b->retry_ms = b->retry_ms ? b->retry_ms * 2 : RETRY_MIN_MS;
	if (b->retry_ms > RETRY_MAX_MS)
		b->retry_ms = RETRY_MAX_MS;
	b->retry_at_ms = mono_ms() + b->retry_ms;
}

int fg_bgp_new(struct fg_bgp **out, const struct fg_bgp_opts *opts,
	       const struct fg_bgp_vip *vips, size_t n)
{
	const char *dev = opts->device ? opts->device : FG_BGP_DEF_DEVICE;
	const char *sock = opts->socket_path ? opts->socket_path : FG_BGP_DEF_SOCKET;
	struct fg_bgp *b;
	int err;

	if (!opts->include_path || !*opts->include_path)
		return -EINVAL;
	if (!*dev || strlen(dev) >= IFNAMSIZ || strpbrk(dev, "\"/ \t\n\\:")) {
		pr_warn("bgp: invalid --bgp-device '%s': an interface name of at most %d "
			"characters, without '\"', '/', ':', '\\' or spaces\n", dev, IFNAMSIZ - 1);
		return -EINVAL;
	}
	if (strlen(sock) >= sizeof(b->socket_path)) {
		pr_warn("bgp: --bgp-socket %s: path too long\n", sock);
		return -ENAMETOOLONG;
	}
	if (!n || n > FG_BGP_MAX_VIPS) {
		pr_warn("bgp: %zu VIPs to announce (1 to %d)\n", n, FG_BGP_MAX_VIPS);
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->tun_fd = -1;
	snprintf(b->include_path, sizeof(b->include_path), "%s", opts->include_path);
	snprintf(b->socket_path, sizeof(b->socket_path), "%s", sock);
	snprintf(b->device, sizeof(b->device), "%s", dev);
	b->timeout_ms = opts->timeout_ms ? opts->timeout_ms : 1000;
	memcpy(b->vips, vips, n * sizeof(*vips));
	b->n_vips = n;
	snprintf(b->reason, sizeof(b->reason), "starting");
	b->since = time(NULL);

	err = device_open(b->device);
	if (err < 0)
		goto err;
	b->tun_fd = err;
	err = set_device_up(b->device, false);
	if (err) {
		pr_warn("bgp: cannot set the liveness device %s down: %s\n", b->device,
			strerror(-err));
		goto err;
	}
	err = write_include(b);
	if (err)
		goto err;
	try_configure(b);
	pr_info("bgp: VIP routes in %s through device %s, withdrawn until the node is ready\n",
		b->include_path, b->device);
	*out = b;
	return 0;
err:
	fg_bgp_free(b);
	return err;
}

int fg_bgp_set(struct fg_bgp *b, bool announce, const char *reason)
{
	int err;

	if (!reason)
		reason = "";
	if (announce == b->announced) {
		snprintf(b->reason, sizeof(b->reason), "%s", reason);
		return 0;
	}
	err = set_device_up(b->device, announce);
	if (err) {
		pr_warn("bgp: cannot set %s %s to %s the VIPs: %s\n", b->device,
			announce ? "up" : "down", announce ? "announce" : "withdraw", strerror(-err));
		return err;
	}
	b->announced = announce;
	b->since = time(NULL);
	snprintf(b->reason, sizeof(b->reason), "%s", reason);
	pr_info("bgp: %s the VIPs: %s%s\n", announce ? "announcing" : "withdrew", reason,
		announce && !b->configured ? " (BIRD has not confirmed the include file yet)" : "");
	return 0;
}

bool fg_bgp_announced(const struct fg_bgp *b)
{
	return b && b->announced;
}

/* The device as the agent left it: someone may have set it down, up or
 * deleted it. Put back, said once. */
static void device_check(struct fg_bgp *b)
{
	short flags = 0;
	int err = device_flags(b->device, &flags);
	bool deleted = err == -ENODEV;

	if (!err && !!(flags & IFF_UP) == b->announced) {
		b->dev_err = 0;
		return;
	}
	if (deleted) {
		if (b->tun_fd >= 0)
			close(b->tun_fd);
		b->tun_fd = device_open(b->device);
		err = b->tun_fd < 0 ? b->tun_fd : set_device_up(b->device, b->announced);
	} else if (!err) {
		err = set_device_up(b->device, b->announced);
	}
	if (err != b->dev_err || !err)
		pr_warn("bgp: the liveness device %s was %s behind the agent's back: %s%s\n",
			b->device, deleted ? "deleted" : "set up or down",
			err ? "cannot put it back: " : "put back ",
			err ? strerror(-err) : (b->announced ? "(up)" : "(down)"));
	b->dev_err = err;
}

void fg_bgp_tick(struct fg_bgp *b)
{
	if (!b)
		return;
	device_check(b);
	if (b->configured || mono_ms() < b->retry_at_ms)
		return;
	try_configure(b);
}

json_t *fg_bgp_status(const struct fg_bgp *b)
{
	json_t *vips = json_array();
	size_t i;

	for (i = 0; i < b->n_vips; i++) {
		char a[INET6_ADDRSTRLEN];

		fg_addr_str(&b->vips[i].addr, b->vips[i].family, a, sizeof(a));
		json_array_append_new(vips, json_string(a));
	}
	return json_pack("{s:b, s:s, s:I, s:o, s:s, s:s, s:s, s:b, s:s}", "announced",
			 b->announced, "reason", b->reason, "since", (json_int_t)b->since, "vips",
			 vips, "device", b->device, "include", b->include_path, "socket",
			 b->socket_path, "configured", b->configured, "birdError", b->bird_error);
}

void fg_bgp_free(struct fg_bgp *b)
{
	if (!b)
		return;
	if (b->tun_fd >= 0) {
		if (b->announced)
			pr_info("bgp: withdrew the VIPs: the agent stops\n");
		close(b->tun_fd); /* the device, and its routes, go with it */
	}
	free(b);
}

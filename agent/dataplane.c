// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/magic.h>
#include <linux/sockios.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dataplane.h"
#include "dataplane_int.h"
#include "fleetgate_hash.h"
#include "log.h"
#include "xdp_gateway.skel.h"

/* Every routing write goes through dp_update() or dp_delete(): the epoch
 * tells in-process readers (the HTTP proxy's caches) that routing state may
 * have changed. One process drives one data plane, so one counter serves. */
static __u64 routing_epoch;

static const struct {
	const char *name;
	size_t off;
} map_names[] = {
#define M(n) { #n, offsetof(struct fg_maps, n) }
	M(listeners), M(services), M(clusters), M(backends), M(rings),
	M(ring_slots), M(allowlists), M(conntrack), M(reverse_nat), M(ifaces),
	M(settings), M(listener_stats), M(backend_stats), M(cluster_stats),
	M(verdicts), M(snat_cursor), M(snat_stats),
#undef M
};

#define N_MAPS (sizeof(map_names) / sizeof(map_names[0]))

static int *map_fd_slot(struct fg_maps *maps, size_t i)
{
	return (int *)((char *)maps + map_names[i].off);
}

static const char *reason_names[FG_R_MAX] = {
	[FG_R_NOT_IP] = "not_ip",
	[FG_R_TRUNC_ETH] = "trunc_eth",
	[FG_R_TRUNC_IP] = "trunc_ip",
	[FG_R_BAD_IP] = "bad_ip",
	[FG_R_TRUNC_L4] = "trunc_l4",
	[FG_R_FRAGMENT] = "fragment",
	[FG_R_IP6_EXT_LIMIT] = "ip6_ext_limit",
	[FG_R_ICMP] = "icmp",
	[FG_R_OTHER_L4] = "other_l4",
	[FG_R_NO_LISTENER] = "no_listener",
	[FG_R_ALLOWLIST] = "allowlist",
	[FG_R_L7] = "l7",
	[FG_R_NO_BACKEND] = "no_backend",
	[FG_R_NO_SNAT_ADDR] = "no_snat_addr",
	[FG_R_NO_SNAT_PORT] = "no_snat_port",
	[FG_R_FIB_NO_NEIGH] = "fib_no_neigh",
	[FG_R_FIB_FAIL] = "fib_fail",
	[FG_R_FORWARD] = "forward",
	[FG_R_REPLY] = "reply",
	[FG_R_CT_MAP_FULL] = "ct_map_full",
};

const char *fg_reason_name(int reason)
{
	if (reason < 0 || reason >= FG_R_MAX || !reason_names[reason])
		return "unknown";
	return reason_names[reason];
}

bool fg_reason_is_drop(int reason)
{
	switch (reason) {
	case FG_R_TRUNC_ETH:
	case FG_R_TRUNC_IP:
	case FG_R_BAD_IP:
	case FG_R_TRUNC_L4:
	case FG_R_ALLOWLIST:
	case FG_R_NO_BACKEND:
	case FG_R_NO_SNAT_ADDR:
	case FG_R_NO_SNAT_PORT:
	case FG_R_FIB_FAIL:
	case FG_R_CT_MAP_FULL:
		return true;
	default:
		return false;
	}
}

static bool is_prime(__u32 n)
{
	__u32 d;

	if (n < 2)
		return false;
	for (d = 2; (__u64)d * d <= n; d++)
		if (n % d == 0)
			return false;
	return true;
}

static int mkdir_p(const char *path)
{
	char buf[PATH_MAX];
	char *p;

	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	return 0;
}

static int check_bpffs(const char *path)
{
	struct statfs st;

	if (statfs(path, &st))
		return -errno;
	if (st.f_type != BPF_FS_MAGIC)
		return -ENOTSUP;
	return 0;
}

#define BPFFS_ROOT "/sys/fs/bpf"
/* Left in a BPF file system fleetgate mounted, so whichever fleetgate
 * process is last to leave it (an agent restarted with --keep-pins may not
 * be the one that mounted it) unmounts it, and never one mounted by
 * someone else. */
#define BPFFS_MARK "fleetgate_mounted" /* bpffs refuses names with dots */

/* Mounts the BPF file system at /sys/fs/bpf when the pin path is under it
 * and nothing is mounted there yet (as on a fresh boot without systemd's
 * mount), marking it as fleetgate's. */
static int ensure_bpffs(const char *pin_path)
{
	static const char root[] = BPFFS_ROOT;

	if (strncmp(pin_path, root, sizeof(root) - 1) ||
	    (pin_path[sizeof(root) - 1] && pin_path[sizeof(root) - 1] != '/'))
		return 0;
	if (!check_bpffs(root))
		return 0;
	if (mount("bpf", root, "bpf", 0, "mode=0700")) {
		int err = -errno;

		pr_warn("cannot mount the BPF file system at %s: %s\n", root, strerror(-err));
		return err;
	}
	pr_info("mounted the BPF file system at %s\n", root);
	if (mkdir(BPFFS_ROOT "/" BPFFS_MARK, 0700))
		pr_debug("cannot mark %s as mounted by fleetgate: %s\n", root, strerror(errno));
	return 0;
}

/* Unmounts the BPF file system fleetgate mounted, once nothing but the
 * kernel's own iterator files (maps.debug, progs.debug) and our mark is
 * left in it: a pin of anyone else keeps it mounted. */
static void release_bpffs(void)
{
	struct dirent *de;
	bool idle = true, ours = false;
	DIR *dir;

	dir = opendir(BPFFS_ROOT);
	if (!dir)
		return;
	while ((de = readdir(dir))) {
		if (!strcmp(de->d_name, BPFFS_MARK)) {
			ours = true;
			continue;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, "maps.debug") || !strcmp(de->d_name, "progs.debug"))
			continue;
		idle = false;
		break;
	}
	closedir(dir);
	if (!ours || !idle)
		return;
	rmdir(BPFFS_ROOT "/" BPFFS_MARK);
	if (umount(BPFFS_ROOT))
		pr_warn("cannot unmount the BPF file system at %s: %s\n", BPFFS_ROOT,
			strerror(errno));
}

static __u32 map_max_entries(int fd)
{
	struct bpf_map_info info = {};
	__u32 len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return 0;
	return info.max_entries;
}

static struct fg_dataplane *dp_alloc(void)
{
	struct fg_dataplane *dp = calloc(1, sizeof(*dp));
	size_t i;

	if (!dp)
		return NULL;
	for (i = 0; i < N_MAPS; i++)
		*map_fd_slot(&dp->maps, i) = -1;
	dp->slab_fd = -1;
	dp->ncpus = libbpf_num_possible_cpus();
	return dp;
}

static int settings_write_size(struct fg_dataplane *dp)
{
	const struct xdp_gateway_bpf__rodata *ro = dp->skel->rodata;
	struct fg_settings s = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(dp->maps.settings, &zero, &s))
		return -errno;
	s.maglev_size = dp->maglev_size;
	s.snat_port_min = ro->snat_port_min;
	s.snat_port_max = ro->snat_port_max;
	s.snat_port2_min = ro->snat_port2_min;
	s.snat_port2_max = ro->snat_port2_max;
	s.snat_time_wait_s = ro->snat_time_wait_ns / 1000000000ULL;
	/* A restarted agent may have other routes: drop cached next hops. */
	s.fib_gen++;
	if (bpf_map_update_elem(dp->maps.settings, &zero, &s, BPF_ANY))
		return -errno;
	return 0;
}

static void set_rodata(struct xdp_gateway_bpf *skel, const struct fg_dp_opts *opts)
{
	if (opts->snat_port_min)
		skel->rodata->snat_port_min = opts->snat_port_min;
	if (opts->snat_port_max)
		skel->rodata->snat_port_max = opts->snat_port_max;
	if (opts->snat_port2_min) {
		skel->rodata->snat_port2_min = opts->snat_port2_min;
		skel->rodata->snat_port2_max = opts->snat_port2_max;
	}
	if (opts->snat_time_wait_ns)
		skel->rodata->snat_time_wait_ns = opts->snat_time_wait_ns;
	if (opts->ct_timeout_tcp_ns)
		skel->rodata->ct_timeout_tcp_ns = opts->ct_timeout_tcp_ns;
	if (opts->ct_timeout_udp_ns)
		skel->rodata->ct_timeout_udp_ns = opts->ct_timeout_udp_ns;
}

int fg_dp_load(struct fg_dataplane **out, const struct fg_dp_opts *opts)
{
	LIBBPF_OPTS(bpf_object_open_opts, oopts);
	struct fg_dataplane *dp;
	struct bpf_map *map;
	__u32 msize = opts->maglev_size ? opts->maglev_size : FG_DEFAULT_MAGLEV_SIZE;
	size_t i;
	int err;

	if (!is_prime(msize)) {
		pr_warn("maglev size %u is not a prime\n", msize);
		return -EINVAL;
	}
	if (opts->snat_port_min && opts->snat_port_max &&
	    opts->snat_port_min > opts->snat_port_max) {
		pr_warn("SNAT port range %u-%u is empty\n", opts->snat_port_min,
			opts->snat_port_max);
		return -EINVAL;
	}
	if (opts->snat_port2_min && opts->snat_port2_min > opts->snat_port2_max) {
		pr_warn("second SNAT port range %u-%u is empty\n", opts->snat_port2_min,
			opts->snat_port2_max);
		return -EINVAL;
	}
	dp = dp_alloc();
	if (!dp)
		return -ENOMEM;
	dp->maglev_size = msize;
	dp->max_services = opts->max_services ? opts->max_services : FG_DEF_MAX_SERVICES;
	dp->max_backends = opts->max_backends ? opts->max_backends : FG_DEF_MAX_BACKENDS;
	dp->max_rings = opts->max_rings ? opts->max_rings : FG_DEF_MAX_RINGS;
	dp->slab_max = opts->ring_slots_max ? opts->ring_slots_max : FG_MAX_RING_SLOTS;

	if (opts->pin_path) {
		snprintf(dp->pin_path, sizeof(dp->pin_path), "%s", opts->pin_path);
		err = ensure_bpffs(dp->pin_path);
		if (err)
			goto err_free;
		err = mkdir_p(dp->pin_path);
		if (err) {
			pr_warn("cannot create pin path %s: %s\n", dp->pin_path, strerror(-err));
			goto err_free;
		}
		err = check_bpffs(dp->pin_path);
		if (err) {
			pr_warn("pin path %s is not on a BPF file system (mount -t bpf bpf /sys/fs/bpf): %s\n",
				dp->pin_path, strerror(-err));
			goto err_free;
		}
		oopts.pin_root_path = dp->pin_path;
		dp->pinned = true;
	}

	dp->skel = xdp_gateway_bpf__open_opts(&oopts);
	if (!dp->skel) {
		err = -errno;
		pr_warn("cannot open the XDP object: %s\n", strerror(-err));
		goto err_free;
	}
	if (!dp->pinned) {
		bpf_object__for_each_map(map, dp->skel->obj)
			bpf_map__set_pin_path(map, NULL);
	}
	set_rodata(dp->skel, opts);
	/* Sized by the flags; a pinned map of another size is refused. */
	bpf_map__set_max_entries(dp->skel->maps.services, dp->max_services);
	bpf_map__set_max_entries(dp->skel->maps.backends, dp->max_backends);
	bpf_map__set_max_entries(dp->skel->maps.backend_stats, dp->max_backends);
	bpf_map__set_max_entries(dp->skel->maps.snat_cursor, dp->max_backends);
	bpf_map__set_max_entries(dp->skel->maps.rings, dp->max_rings);
	/* Ring slabs are written through mmap (rings.c): the inner map's
	 * template must say so, or ring_slots refuses them. */
	bpf_map__set_map_flags(bpf_map__inner_map(dp->skel->maps.ring_slots),
			       BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	err = xdp_gateway_bpf__load(dp->skel);
	if (err) {
		pr_warn("cannot load the XDP object: %s%s\n", strerror(-err),
			dp->pinned ? " (maps pinned under the pin path by an incompatible build"
				     " are refused: remove them or use another --pin-path)"
				   : "");
		goto err_destroy;
	}
	for (i = 0; i < N_MAPS; i++) {
		map = bpf_object__find_map_by_name(dp->skel->obj, map_names[i].name);
		if (!map) {
			pr_warn("the XDP object has no map %s\n", map_names[i].name);
			err = -ENOENT;
			goto err_destroy;
		}
		*map_fd_slot(&dp->maps, i) = bpf_map__fd(map);
	}
	err = dp_rings_init(dp, opts->ring_slots ? opts->ring_slots : FG_DEF_RING_SLOTS, true);
	if (err) {
		pr_warn("cannot set up the ring slab: %s\n", strerror(-err));
		goto err_destroy;
	}
	err = settings_write_size(dp);
	if (err) {
		pr_warn("cannot write the settings map: %s\n", strerror(-err));
		goto err_destroy;
	}
	*out = dp;
	return 0;

err_destroy:
	dp_rings_fini(dp);
	if (dp->pinned)
		bpf_object__unpin_maps(dp->skel->obj, NULL);
	xdp_gateway_bpf__destroy(dp->skel);
err_free:
	if (dp->pinned)
		rmdir(dp->pin_path);
	if (dp->pinned)
		release_bpffs();
	free(dp);
	return err;
}

int fg_dp_open_pinned(struct fg_dataplane **out, const char *pin_path)
{
	struct fg_dataplane *dp;
	struct fg_settings s = {};
	char path[PATH_MAX];
	__u32 zero = 0;
	size_t i;
	int err, fd;

	dp = dp_alloc();
	if (!dp)
		return -ENOMEM;
	snprintf(dp->pin_path, sizeof(dp->pin_path), "%s", pin_path);
	for (i = 0; i < N_MAPS; i++) {
		snprintf(path, sizeof(path), "%s/%s", pin_path, map_names[i].name);
		fd = bpf_obj_get(path);
		if (fd < 0) {
			err = -errno;
			pr_warn("cannot open pinned map %s: %s (is fleetgate-agent running with --pin-path %s?)\n",
				path, strerror(-err), pin_path);
			goto err_close;
		}
		*map_fd_slot(&dp->maps, i) = fd;
	}
	if (bpf_map_lookup_elem(dp->maps.settings, &zero, &s) || !s.maglev_size) {
		err = -EINVAL;
		pr_warn("pinned settings map under %s holds no ring size\n", pin_path);
		goto err_close;
	}
	dp->maglev_size = s.maglev_size;
	dp->max_services = map_max_entries(dp->maps.services);
	dp->max_backends = map_max_entries(dp->maps.backends);
	dp->max_rings = map_max_entries(dp->maps.rings);
	if (!dp->max_services || !dp->max_backends) {
		err = -EINVAL;
		pr_warn("cannot read the sizes of the pinned maps under %s\n", pin_path);
		goto err_close;
	}
	err = dp_rings_init(dp, 0, false);
	if (err)
		goto err_close;
	*out = dp;
	return 0;

err_close:
	for (i = 0; i < N_MAPS; i++)
		if (*map_fd_slot(&dp->maps, i) >= 0)
			close(*map_fd_slot(&dp->maps, i));
	free(dp);
	return err;
}

static int release_link(struct fg_dataplane *dp, int ifindex, bool unpin);

void fg_dp_close(struct fg_dataplane *dp, bool remove_pins)
{
	size_t i;

	if (!dp)
		return;
	/* Keeping the pins keeps the program attached through its pinned
	 * links: the data plane runs on until the next agent adopts it. */
	while (dp->n_links > 0)
		release_link(dp, dp->links[dp->n_links - 1].ifindex, remove_pins);
	if (dp->skel) {
		if (dp->pinned && remove_pins) {
			bpf_object__unpin_maps(dp->skel->obj, NULL);
			rmdir(dp->pin_path);
		}
		xdp_gateway_bpf__destroy(dp->skel);
		if (dp->pinned && remove_pins)
			release_bpffs();
	} else {
		for (i = 0; i < N_MAPS; i++)
			if (*map_fd_slot(&dp->maps, i) >= 0)
				close(*map_fd_slot(&dp->maps, i));
	}
	dp_rings_fini(dp);
	free(dp);
}

const struct fg_maps *fg_dp_maps(const struct fg_dataplane *dp)
{
	return &dp->maps;
}

int fg_dp_prog_fd(const struct fg_dataplane *dp)
{
	return dp->skel ? bpf_program__fd(dp->skel->progs.xdp_gateway) : -ENOENT;
}

int fg_dp_tc_prog_fd(const struct fg_dataplane *dp)
{
	return dp->skel ? bpf_program__fd(dp->skel->progs.tc_gateway) : -ENOENT;
}

__u32 fg_dp_maglev_size(const struct fg_dataplane *dp)
{
	return dp->maglev_size;
}

__u32 fg_dp_max_services(const struct fg_dataplane *dp)
{
	return dp->max_services;
}

__u32 fg_dp_max_backends(const struct fg_dataplane *dp)
{
	return dp->max_backends;
}

__u64 fg_dp_epoch(const struct fg_dataplane *dp)
{
	/* Read by proxy workers on their own threads. */
	return __atomic_load_n(&routing_epoch, __ATOMIC_ACQUIRE);
}

int fg_dp_ncpus(const struct fg_dataplane *dp)
{
	return dp->ncpus;
}

const char *fg_xdp_mode_name(enum fg_xdp_mode mode)
{
	switch (mode) {
	case FG_XDP_NATIVE:
		return "native";
	case FG_XDP_GENERIC:
		return "generic";
	default:
		return "auto";
	}
}

const char *fg_attach_name(enum fg_attach mode)
{
	switch (mode) {
	case FG_ATTACH_XDP_NATIVE:
		return "xdp-native";
	case FG_ATTACH_XDP_GENERIC:
		return "xdp-generic";
	case FG_ATTACH_TCX:
		return "tcx";
	case FG_ATTACH_TC_CLS:
		return "tc-cls";
	default:
		return "none";
	}
}

int fg_attach_want_parse(const char *s, enum fg_attach_want *want)
{
	if (!strcmp(s, "auto"))
		*want = FG_ATTACH_WANT_AUTO;
	else if (!strcmp(s, "xdp"))
		*want = FG_ATTACH_WANT_XDP;
	else if (!strcmp(s, "tc"))
		*want = FG_ATTACH_WANT_TC;
	else
		return -EINVAL;
	return 0;
}

static bool mode_is_xdp(enum fg_attach mode)
{
	return mode == FG_ATTACH_XDP_NATIVE || mode == FG_ATTACH_XDP_GENERIC;
}

/* The pinned link of a kind: "xdp" (either XDP mode) or "tcx". */
static void link_pin_path(const struct fg_dataplane *dp, int ifindex, const char *kind, char *buf,
			  size_t len)
{
	/* pin_path is bounded well below PATH_MAX by the loader. */
	if (snprintf(buf, len, "%.3900s/link_%s_%d", dp->pin_path, kind, ifindex) >= (int)len)
		buf[0] = '\0';
}

/* A link pinned by an agent that exited with --keep-pins keeps the program
 * attached (and L4 flows flowing) while no agent runs; the next agent swaps
 * its own program into that link without a gap. */
static int adopt_link(struct fg_dataplane *dp, int ifindex, const char *kind, int prog_fd)
{
	char path[PATH_MAX];
	int fd;

	if (!dp->pinned)
		return -ENOENT;
	link_pin_path(dp, ifindex, kind, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -ENOENT;
	if (bpf_link_update(fd, prog_fd, NULL)) {
		int err = -errno;

		pr_warn("cannot update pinned %s link %s: %s; attaching anew\n", kind, path,
			strerror(-err));
		close(fd);
		unlink(path);
		return -ENOENT;
	}
	pr_info("adopted the %s link pinned at %s\n", !strcmp(kind, "xdp") ? "XDP" : "TC (tcx)",
		path);
	return fd;
}

static void pin_link(struct fg_dataplane *dp, int ifindex, const char *kind, int fd)
{
	char path[PATH_MAX];

	if (!dp->pinned)
		return;
	link_pin_path(dp, ifindex, kind, path, sizeof(path));
	if (bpf_obj_pin(fd, path))
		pr_warn("cannot pin %s link at %s: %s\n", kind, path, strerror(errno));
}

static const char *ifname_of(int ifindex, char name[IF_NAMESIZE])
{
	if (!if_indextoname(ifindex, name))
		snprintf(name, IF_NAMESIZE, "ifindex %d", ifindex);
	return name;
}

/* Drivers of devices that are not a NIC: software devices whose traffic the
 * stack mostly terminates or forwards as skbs, where TC costs less than
 * native XDP (which, on a veth, takes GSO/TSO from the peer). */
static const char *const virtual_drivers[] = {
	"veth", "bridge", "dummy", "vxlan", "tun", "geneve", "macvlan", "macvtap", "ipvlan",
	"ipvtap", "vrf", "team", "bonding", "ifb", "wireguard", "ip_gre", "ip6_gre", "ipip",
	"sit", "ip6_tunnel", "ip_vti", "ip6_vti", "nlmon", "netkit", "gtp", "bareudp",
	"openvswitch", "batman-adv", "vcan", "xfrm",
};

void fg_dp_attach_choose(int ifindex, struct fg_attach_info *info)
{
	struct ethtool_drvinfo di = { .cmd = ETHTOOL_GDRVINFO };
	struct ifreq ifr = {};
	size_t i;
	int fd;

	memset(info, 0, sizeof(*info));
	info->mode = FG_ATTACH_TCX;
	if (!if_indextoname(ifindex, ifr.ifr_name)) {
		snprintf(info->why, sizeof(info->why), "no interface: %s", strerror(errno));
		return;
	}
	ifr.ifr_data = (void *)&di;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || ioctl(fd, SIOCETHTOOL, &ifr)) {
		snprintf(info->why, sizeof(info->why), "driver unknown (ethtool: %s): TC",
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	snprintf(info->driver, sizeof(info->driver), "%s", di.driver);
	for (i = 0; i < sizeof(virtual_drivers) / sizeof(virtual_drivers[0]); i++) {
		if (!strcmp(di.driver, virtual_drivers[i])) {
			snprintf(info->why, sizeof(info->why),
				 "driver %s: a virtual device, TC keeps its offloads", di.driver);
			return;
		}
	}
	if (!di.bus_info[0]) {
		snprintf(info->why, sizeof(info->why),
			 "driver %s has no bus: a software device, TC", di.driver);
		return;
	}
	info->mode = FG_ATTACH_XDP_NATIVE;
	snprintf(info->why, sizeof(info->why), "driver %s on %.32s: a NIC, native XDP",
		 di.driver, di.bus_info);
}

/* One record per interface: a new attachment replaces what this process
 * had there (remove_stale then takes the old one out of the kernel). */
static int record_link(struct fg_dataplane *dp, int ifindex, int fd, enum fg_attach mode)
{
	int i;

	for (i = 0; i < dp->n_links; i++)
		if (dp->links[i].ifindex == ifindex)
			break;
	if (i < dp->n_links && dp->links[i].link_fd >= 0)
		close(dp->links[i].link_fd);
	dp->links[i].ifindex = ifindex;
	dp->links[i].link_fd = fd;
	dp->links[i].mode = mode;
	if (i == dp->n_links)
		dp->n_links++;
	return 0;
}

static int attach_xdp(struct fg_dataplane *dp, int ifindex, enum fg_xdp_mode want,
		      struct fg_attach_info *got)
{
	LIBBPF_OPTS(bpf_link_create_opts, lopts);
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int prog_fd = fg_dp_prog_fd(dp);
	char name[IF_NAMESIZE];
	int fd, err;

	if (want == FG_XDP_NATIVE)
		lopts.flags = XDP_FLAGS_DRV_MODE;
	else if (want == FG_XDP_GENERIC)
		lopts.flags = XDP_FLAGS_SKB_MODE;
	fd = adopt_link(dp, ifindex, "xdp", prog_fd);
	got->adopted = fd >= 0;
	if (fd < 0) {
		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lopts);
		if (fd < 0) {
			err = -errno;
			pr_warn("cannot attach XDP (%s mode) to %s: %s\n", fg_xdp_mode_name(want),
				ifname_of(ifindex, name), strerror(-err));
			if (err == -EBUSY)
				pr_warn("another XDP program is attached to %s (ip link show %s); "
					"remove it with: ip link set dev %s xdp off\n", name, name, name);
			return err;
		}
		pin_link(dp, ifindex, "xdp", fd);
	}
	err = bpf_xdp_query(ifindex, 0, &q);
	if (err) {
		close(fd);
		pr_warn("cannot query XDP mode on %s: %s\n", ifname_of(ifindex, name),
			strerror(-err));
		return err;
	}
	got->mode = q.attach_mode == XDP_ATTACHED_DRV ? FG_ATTACH_XDP_NATIVE
						       : FG_ATTACH_XDP_GENERIC;
	return record_link(dp, ifindex, fd, got->mode);
}

#ifndef BPF_TCX_INGRESS
#define BPF_TCX_INGRESS 46 /* kernel 6.6; not in older UAPI headers */
#endif
/* Our cls_bpf filter: found again by handle and priority. */
#define FG_TC_HANDLE 0xf1ee
#define FG_TC_PRIO   1

static int tc_cls_query(int ifindex, __u32 *prog_id)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FG_TC_HANDLE, .priority = FG_TC_PRIO);
	int err = bpf_tc_query(&hook, &opts);

	if (!err && prog_id)
		*prog_id = opts.prog_id;
	return err;
}

static int tc_cls_detach(int ifindex)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FG_TC_HANDLE, .priority = FG_TC_PRIO);

	return bpf_tc_detach(&hook, &opts);
}

/* clsact + a direct-action cls_bpf filter: kernels without tcx. The
 * filter is not tied to this process: a restart replaces it in place. */
static int attach_tc_cls(struct fg_dataplane *dp, int ifindex, struct fg_attach_info *got)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	LIBBPF_OPTS(bpf_tc_opts, opts, .handle = FG_TC_HANDLE, .priority = FG_TC_PRIO,
		    .prog_fd = fg_dp_tc_prog_fd(dp), .flags = BPF_TC_F_REPLACE);
	char name[IF_NAMESIZE];
	int err;

	got->adopted = tc_cls_query(ifindex, NULL) == 0;
	err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST) {
		pr_warn("cannot create the clsact qdisc on %s: %s\n", ifname_of(ifindex, name),
			strerror(-err));
		return err;
	}
	err = bpf_tc_attach(&hook, &opts);
	if (err) {
		pr_warn("cannot attach the TC program (cls_bpf) to %s: %s\n",
			ifname_of(ifindex, name), strerror(-err));
		return err;
	}
	if (got->adopted)
		pr_info("replaced the TC (cls_bpf) filter on %s\n", ifname_of(ifindex, name));
	got->mode = FG_ATTACH_TC_CLS;
	return record_link(dp, ifindex, -1, got->mode);
}

static int attach_tc(struct fg_dataplane *dp, int ifindex, bool cls_only,
		     struct fg_attach_info *got)
{
	int prog_fd = fg_dp_tc_prog_fd(dp);
	char name[IF_NAMESIZE];
	int fd, err;

	if (cls_only)
		return attach_tc_cls(dp, ifindex, got);
	fd = adopt_link(dp, ifindex, "tcx", prog_fd);
	got->adopted = fd >= 0;
	if (fd < 0) {
		fd = bpf_link_create(prog_fd, ifindex, BPF_TCX_INGRESS, NULL);
		if (fd < 0) {
			err = -errno;
			if (err == -EINVAL || err == -EOPNOTSUPP) {
				pr_info("no tcx links on this kernel (%s): %s gets a cls_bpf filter\n",
					strerror(-err), ifname_of(ifindex, name));
				return attach_tc_cls(dp, ifindex, got);
			}
			pr_warn("cannot attach the TC program (tcx) to %s: %s\n",
				ifname_of(ifindex, name), strerror(-err));
			return err;
		}
		pin_link(dp, ifindex, "tcx", fd);
	}
	got->mode = FG_ATTACH_TCX;
	return record_link(dp, ifindex, fd, got->mode);
}

/* Whatever another run left on ifindex in a mode other than keep: its
 * pinned link (unpinned, so the kernel detaches it) or our cls_bpf filter. */
static void remove_stale(struct fg_dataplane *dp, int ifindex, enum fg_attach keep)
{
	char path[PATH_MAX], name[IF_NAMESIZE];

	if (dp->pinned && !mode_is_xdp(keep)) {
		link_pin_path(dp, ifindex, "xdp", path, sizeof(path));
		if (!unlink(path))
			pr_info("%s: removed the XDP link a previous run pinned\n",
				ifname_of(ifindex, name));
	}
	if (dp->pinned && keep != FG_ATTACH_TCX) {
		link_pin_path(dp, ifindex, "tcx", path, sizeof(path));
		if (!unlink(path))
			pr_info("%s: removed the tcx link a previous run pinned\n",
				ifname_of(ifindex, name));
	}
	if (keep != FG_ATTACH_TC_CLS && tc_cls_query(ifindex, NULL) == 0 && !tc_cls_detach(ifindex))
		pr_info("%s: removed the cls_bpf filter a previous run left\n",
			ifname_of(ifindex, name));
}

int fg_dp_attach(struct fg_dataplane *dp, int ifindex, const struct fg_attach_opts *o,
		 struct fg_attach_info *got)
{
	struct fg_attach_info tmp;
	char name[IF_NAMESIZE];
	int err;

	if (!got)
		got = &tmp;
	if (fg_dp_prog_fd(dp) < 0)
		return -EINVAL;
	if (dp->n_links >= FG_MAX_IFACES)
		return -E2BIG;
	switch (o->want) {
	case FG_ATTACH_WANT_XDP:
		memset(got, 0, sizeof(*got));
		snprintf(got->why, sizeof(got->why), "--attach xdp");
		err = attach_xdp(dp, ifindex, o->xdp_mode, got);
		break;
	case FG_ATTACH_WANT_TC:
		memset(got, 0, sizeof(*got));
		snprintf(got->why, sizeof(got->why), "--attach tc");
		err = attach_tc(dp, ifindex, o->tc_cls, got);
		break;
	default:
		fg_dp_attach_choose(ifindex, got);
		if (mode_is_xdp(got->mode)) {
			err = attach_xdp(dp, ifindex, FG_XDP_NATIVE, got);
			if (!err)
				break;
			pr_info("%s: no native XDP (%s): TC instead\n", ifname_of(ifindex, name),
				strerror(-err));
			snprintf(got->why, sizeof(got->why), "driver %s refused native XDP: TC",
				 got->driver);
		}
		err = attach_tc(dp, ifindex, o->tc_cls, got);
		break;
	}
	if (err)
		return err;
	remove_stale(dp, ifindex, got->mode);
	return 0;
}

enum fg_attach fg_dp_attach_mode(const struct fg_dataplane *dp, int ifindex)
{
	int i;

	for (i = 0; i < dp->n_links; i++)
		if (dp->links[i].ifindex == ifindex)
			return dp->links[i].mode;
	return FG_ATTACH_NONE;
}

__u32 fg_dp_attached_prog_id(int ifindex, enum fg_attach mode)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	__u32 ids[8] = {}, cnt = 8, flags = 0, id = 0;

	switch (mode) {
	case FG_ATTACH_XDP_NATIVE:
		return bpf_xdp_query(ifindex, 0, &q) ? 0 : q.drv_prog_id;
	case FG_ATTACH_XDP_GENERIC:
		return bpf_xdp_query(ifindex, 0, &q) ? 0 : q.skb_prog_id;
	case FG_ATTACH_TCX:
		/* The ifindex goes where the target fd would (a union). */
		if (bpf_prog_query(ifindex, BPF_TCX_INGRESS, 0, &flags, ids, &cnt) || !cnt)
			return 0;
		return ids[0];
	case FG_ATTACH_TC_CLS:
		return tc_cls_query(ifindex, &id) ? 0 : id;
	default:
		return 0;
	}
}

int fg_dp_pinned_link_prog(const struct fg_dataplane *dp, int ifindex, enum fg_attach mode,
			   __u32 *prog_id)
{
	struct bpf_link_info info = {};
	__u32 len = sizeof(info);
	char path[PATH_MAX];
	int fd, err = 0;

	*prog_id = 0;
	if (!mode_is_xdp(mode) && mode != FG_ATTACH_TCX)
		return -ENOENT;
	link_pin_path(dp, ifindex, mode_is_xdp(mode) ? "xdp" : "tcx", path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -ENOENT;
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		err = -errno;
	/* xdp.ifindex and tcx.ifindex are both the union's first word; it is
	 * 0 once the device (or the link) is gone. */
	else if (info.xdp.ifindex)
		*prog_id = info.prog_id;
	close(fd);
	return err;
}

/* Drops our reference to a link; with unpin the pinned reference goes too
 * and the program is detached (a cls_bpf filter is removed). Without, a
 * pinned link keeps the program attached, and so does a filter. */
static int release_link(struct fg_dataplane *dp, int ifindex, bool unpin)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < dp->n_links; i++) {
		struct fg_link *l = &dp->links[i];

		if (l->ifindex != ifindex)
			continue;
		if (unpin && dp->pinned && l->link_fd >= 0) {
			link_pin_path(dp, ifindex, mode_is_xdp(l->mode) ? "xdp" : "tcx", path,
				      sizeof(path));
			unlink(path);
		}
		if (l->link_fd >= 0)
			close(l->link_fd);
		else if (unpin || !dp->pinned)
			tc_cls_detach(ifindex);
		*l = dp->links[dp->n_links - 1];
		dp->n_links--;
		return 0;
	}
	return -ENOENT;
}

int fg_dp_detach(struct fg_dataplane *dp, int ifindex)
{
	return release_link(dp, ifindex, true);
}


/* The epoch moves after the write: a reader that saw the new epoch reads
 * the new state (proxy workers cache by epoch on their own threads). */
int dp_update(struct fg_dataplane *dp, int fd, const void *key, const void *val, __u64 flags)
{
	int err = bpf_map_update_elem(fd, key, val, flags) ? -errno : 0;

	__atomic_add_fetch(&routing_epoch, 1, __ATOMIC_RELEASE);
	dp->map_writes++;
	return err;
}

int dp_delete(struct fg_dataplane *dp, int fd, const void *key)
{
	int err = bpf_map_delete_elem(fd, key) && errno != ENOENT ? -errno : 0;

	__atomic_add_fetch(&routing_epoch, 1, __ATOMIC_RELEASE);
	dp->map_writes++;
	return err;
}

/* Many entries in one call; then the epoch, as dp_update. Kernels
 * without batches for the map's type get one call per entry. */
int dp_update_batch(struct fg_dataplane *dp, int fd, const void *keys, const void *vals,
		    __u32 n, size_t key_size, size_t val_size)
{
	LIBBPF_OPTS(bpf_map_batch_opts, bopts);
	__u32 count = n, i;
	int err = 0;

	if (n && bpf_map_update_batch(fd, keys, vals, &count, &bopts)) {
		for (i = 0; i < n && !err; i++)
			if (bpf_map_update_elem(fd, (const char *)keys + i * key_size,
						(const char *)vals + i * val_size, BPF_ANY))
				err = -errno;
	}
	__atomic_add_fetch(&routing_epoch, 1, __ATOMIC_RELEASE);
	dp->map_writes += n;
	return err;
}

/* The ids in use reach a new high: readers of the arrays are told. */
int dp_settings_highs(struct fg_dataplane *dp, __u32 backend_high, __u32 service_high)
{
	struct fg_settings s = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(dp->maps.settings, &zero, &s))
		return -errno;
	if (s.backend_high >= backend_high && s.service_high >= service_high)
		return 0;
	if (backend_high > s.backend_high)
		s.backend_high = backend_high;
	if (service_high > s.service_high)
		s.service_high = service_high;
	return bpf_map_update_elem(dp->maps.settings, &zero, &s, BPF_ANY) ? -errno : 0;
}

int fg_dp_set_service(struct fg_dataplane *dp, __u32 service_id, const char *name)
{
	struct fg_service svc = {};

	if (service_id >= dp->max_services)
		return -ERANGE;
	if (service_id >= dp->service_high) {
		dp->service_high = service_id + 1;
		dp_settings_highs(dp, 0, dp->service_high);
	}
	bpf_map_lookup_elem(dp->maps.services, &service_id, &svc);
	memset(svc.name, 0, sizeof(svc.name));
	snprintf(svc.name, sizeof(svc.name), "%s", name ? name : "");
	svc.flags |= FG_SERVICE_F_ACTIVE;
	svc.generation++;
	return dp_update(dp, dp->maps.services, &service_id, &svc, BPF_ANY);
}

int fg_dp_del_service(struct fg_dataplane *dp, __u32 service_id)
{
	struct fg_service svc = {};
	int err;

	if (service_id >= dp->max_services)
		return -ERANGE;
	/* Rings first: nothing may pick a service being cleared. */
	err = dp_rings_del_service(dp, service_id);
	if (err)
		return err;
	return dp_update(dp, dp->maps.services, &service_id, &svc, BPF_ANY);
}

int fg_dp_set_cluster(struct fg_dataplane *dp, __u32 cluster_idx, const char *name, bool up)
{
	struct fg_cluster cl = {};

	if (cluster_idx >= FG_MAX_CLUSTERS)
		return -ERANGE;
	snprintf(cl.name, sizeof(cl.name), "%s", name ? name : "");
	cl.flags = name ? FG_CLUSTER_F_ACTIVE | (up ? FG_CLUSTER_F_UP : 0) : 0;
	if (!memcmp(&dp->cl_mirror[cluster_idx], &cl, sizeof(cl)) && dp->skel)
		return 0;
	dp->cl_mirror[cluster_idx] = cl;
	return dp_update(dp, dp->maps.clusters, &cluster_idx, &cl, BPF_ANY);
}

int fg_dp_set_cluster_up(struct fg_dataplane *dp, __u32 cluster_idx, bool up)
{
	struct fg_cluster cl;

	if (cluster_idx >= FG_MAX_CLUSTERS)
		return -ERANGE;
	if (bpf_map_lookup_elem(dp->maps.clusters, &cluster_idx, &cl))
		return -errno;
	if (!(cl.flags & FG_CLUSTER_F_ACTIVE))
		return -ENOENT;
	cl.flags = up ? cl.flags | FG_CLUSTER_F_UP : cl.flags & ~FG_CLUSTER_F_UP;
	dp->cl_mirror[cluster_idx] = cl;
	return dp_update(dp, dp->maps.clusters, &cluster_idx, &cl, BPF_ANY);
}

int fg_dp_set_listener(struct fg_dataplane *dp, const struct fg_listener_key *key,
		       const struct fg_listener *val)
{
	if (val->service_id >= dp->max_services || val->stats_idx >= FG_MAX_LISTENERS)
		return -ERANGE;
	return dp_update(dp, dp->maps.listeners, key, val, BPF_ANY);
}

int fg_dp_del_listener(struct fg_dataplane *dp, const struct fg_listener_key *key)
{
	return dp_delete(dp, dp->maps.listeners, key);
}

int fg_dp_set_backend(struct fg_dataplane *dp, __u32 backend_id, const struct fg_backend *be)
{
	struct fg_backend old, next = *be;
	int err;

	if (backend_id >= dp->max_backends)
		return -ERANGE;
	/* gen follows the endpoint: the same one keeps it, another one
	 * (or a reused id) gets the next. */
	if (bpf_map_lookup_elem(dp->maps.backends, &backend_id, &old))
		memset(&old, 0, sizeof(old));
	next.gen = old.gen;
	if (!(old.flags & FG_BACKEND_F_ACTIVE) || old.family != be->family ||
	    old.port != be->port || old.cluster_idx != be->cluster_idx ||
	    memcmp(&old.addr, &be->addr, sizeof(old.addr)))
		next.gen++;
	if (!memcmp(&old, &next, sizeof(old)))
		return 0;
	err = dp_update(dp, dp->maps.backends, &backend_id, &next, BPF_ANY);
	if (!err)
		dp_mirror_set(dp, backend_id, &next);
	return err;
}

int fg_dp_set_backend_up(struct fg_dataplane *dp, __u32 backend_id, bool up)
{
	struct fg_backend be;
	int err;

	if (backend_id >= dp->max_backends)
		return -ERANGE;
	if (bpf_map_lookup_elem(dp->maps.backends, &backend_id, &be))
		return -errno;
	if (!(be.flags & FG_BACKEND_F_ACTIVE))
		return -ENOENT;
	be.flags = up ? be.flags | FG_BACKEND_F_UP : be.flags & ~FG_BACKEND_F_UP;
	err = dp_update(dp, dp->maps.backends, &backend_id, &be, BPF_ANY);
	if (!err)
		dp_mirror_set(dp, backend_id, &be);
	return err;
}

int fg_dp_del_backend(struct fg_dataplane *dp, __u32 backend_id)
{
	struct fg_backend be = {};
	int err;

	if (backend_id >= dp->max_backends)
		return -ERANGE;
	/* gen survives, so the next endpoint given this id gets a new one. */
	if (!bpf_map_lookup_elem(dp->maps.backends, &backend_id, &be))
		be = (struct fg_backend){ .gen = be.gen };
	err = dp_update(dp, dp->maps.backends, &backend_id, &be, BPF_ANY);
	if (!err)
		dp_mirror_set(dp, backend_id, &be);
	return err;
}

/* Rewrites one part of an active service's entry. */
static int update_service(struct fg_dataplane *dp, __u32 service_id, size_t off,
			  const void *val, size_t len)
{
	struct fg_service svc;

	if (service_id >= dp->max_services)
		return -ERANGE;
	if (bpf_map_lookup_elem(dp->maps.services, &service_id, &svc))
		return -errno;
	if (!(svc.flags & FG_SERVICE_F_ACTIVE))
		return -ENOENT;
	if (!memcmp((char *)&svc + off, val, len))
		return 0;
	memcpy((char *)&svc + off, val, len);
	return dp_update(dp, dp->maps.services, &service_id, &svc, BPF_ANY);
}

int fg_dp_set_cluster_weights(struct fg_dataplane *dp, __u32 service_id,
			      const __u32 weights[FG_MAX_CLUSTERS])
{
	return update_service(dp, service_id, offsetof(struct fg_service, cluster_weight),
			      weights, sizeof(((struct fg_service *)0)->cluster_weight));
}

int fg_dp_set_cluster_tiers(struct fg_dataplane *dp, __u32 service_id,
			    const __u8 tiers[FG_MAX_CLUSTERS])
{
	return update_service(dp, service_id, offsetof(struct fg_service, cluster_tier),
			      tiers, sizeof(((struct fg_service *)0)->cluster_tier));
}

static void allow_key(struct fg_allow_key *key, __u32 service_id, int family,
		      const struct fg_addr *addr, int prefix_len)
{
	memset(key, 0, sizeof(*key));
	key->service_id = htonl(service_id);
	if (family == FG_AF_INET) {
		key->addr[10] = 0xff;
		key->addr[11] = 0xff;
		memcpy(&key->addr[12], &addr->v4, 4);
		key->prefixlen = 32 + 96 + prefix_len;
	} else {
		memcpy(key->addr, addr, 16);
		key->prefixlen = 32 + prefix_len;
	}
}

static int listener_flag_allowlist(struct fg_dataplane *dp, __u32 service_id, bool on)
{
	struct fg_listener_key key, next;
	struct fg_listener val;
	void *prev = NULL;
	int err;

	while (!bpf_map_get_next_key(dp->maps.listeners, prev, &next)) {
		key = next;
		prev = &key;
		if (bpf_map_lookup_elem(dp->maps.listeners, &key, &val))
			continue;
		if (val.service_id != service_id)
			continue;
		val.flags = on ? val.flags | FG_LISTENER_F_ALLOWLIST
			       : val.flags & ~FG_LISTENER_F_ALLOWLIST;
		err = dp_update(dp, dp->maps.listeners, &key, &val, BPF_EXIST);
		if (err)
			return err;
	}
	return 0;
}

int fg_dp_allow_add(struct fg_dataplane *dp, __u32 service_id, int family,
		    const struct fg_addr *addr, int prefix_len)
{
	struct fg_allow_key key;
	__u8 one = 1;
	int err;

	if ((family == FG_AF_INET && (prefix_len < 0 || prefix_len > 32)) ||
	    (family == FG_AF_INET6 && (prefix_len < 0 || prefix_len > 128)) ||
	    (family != FG_AF_INET && family != FG_AF_INET6))
		return -EINVAL;
	allow_key(&key, service_id, family, addr, prefix_len);
	err = dp_update(dp, dp->maps.allowlists, &key, &one, BPF_ANY);
	if (err)
		return err;
	return listener_flag_allowlist(dp, service_id, true);
}

int fg_dp_allow_clear(struct fg_dataplane *dp, __u32 service_id)
{
	struct fg_allow_key key, next;
	void *prev = NULL;
	int err;

	err = listener_flag_allowlist(dp, service_id, false);
	if (err)
		return err;
	/* Deleting while iterating restarts the walk; the trie is small. */
	while (!bpf_map_get_next_key(dp->maps.allowlists, prev, &next)) {
		key = next;
		if (ntohl(key.service_id) == service_id) {
			err = dp_delete(dp, dp->maps.allowlists, &key);
			if (err)
				return err;
			prev = NULL;
			continue;
		}
		prev = &key;
	}
	return 0;
}

int fg_dp_set_iface(struct fg_dataplane *dp, __u32 ifindex, const struct fg_iface *ifc)
{
	struct fg_iface v = *ifc;

	if (v.n_v4 > FG_SNAT_ADDRS || v.n_v6 > FG_SNAT_ADDRS)
		return -EINVAL;
	v.flags = (v.n_v4 ? FG_IFACE_F_V4 : 0) | (v.n_v6 ? FG_IFACE_F_V6 : 0);
	if (dp->skel)
		v.attach = fg_dp_attach_mode(dp, (int)ifindex);
	return dp_update(dp, dp->maps.ifaces, &ifindex, &v, BPF_ANY);
}

int fg_dp_snat_stats(struct fg_dataplane *dp, __u64 out[FG_SNAT_STAT_MAX])
{
	__u64 *vals = calloc(dp->ncpus, sizeof(*vals));
	__u32 k;
	int i;

	if (!vals)
		return -ENOMEM;
	for (k = 0; k < FG_SNAT_STAT_MAX; k++) {
		out[k] = 0;
		if (bpf_map_lookup_elem(dp->maps.snat_stats, &k, vals))
			continue;
		for (i = 0; i < dp->ncpus; i++)
			out[k] += vals[i];
	}
	free(vals);
	return 0;
}

const char *fg_snat_stat_name(int stat)
{
	static const char *const names[FG_SNAT_STAT_MAX] = {
		[FG_SNAT_FRESH] = "fresh",
		[FG_SNAT_RECLAIMED] = "reclaimed",
		[FG_SNAT_REUSED_TW] = "reused_in_time_wait",
		[FG_SNAT_SKIPPED] = "skipped",
		[FG_SNAT_EXHAUSTED] = "exhausted",
	};

	if (stat < 0 || stat >= FG_SNAT_STAT_MAX)
		return "unknown";
	return names[stat];
}

int fg_dp_del_iface(struct fg_dataplane *dp, __u32 ifindex)
{
	return dp_delete(dp, dp->maps.ifaces, &ifindex);
}

int fg_dp_bump_fib_gen(struct fg_dataplane *dp)
{
	struct fg_settings s = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(dp->maps.settings, &zero, &s))
		return -errno;
	s.fib_gen++;
	return dp_update(dp, dp->maps.settings, &zero, &s, BPF_ANY);
}

int fg_dp_read_counter(struct fg_dataplane *dp, int map_fd, __u32 idx, struct fg_counter *sum)
{
	struct fg_counter *vals;
	int i;

	vals = calloc(dp->ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, &idx, vals)) {
		int err = -errno;

		free(vals);
		return err;
	}
	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < dp->ncpus; i++) {
		sum->packets += vals[i].packets;
		sum->bytes += vals[i].bytes;
	}
	free(vals);
	return 0;
}

/* The spec's backends, and each cluster's members. */
static int apply_backends(struct fg_dataplane *dp, const struct fg_l4_service_spec *spec)
{
	__u32 *ids;
	size_t i, c, n;
	int err = 0;

	for (i = 0; i < spec->n_backends; i++) {
		const struct fg_l4_backend_spec *b = &spec->backends[i];
		struct fg_backend be = {
			.addr = b->addr,
			.port = htons(b->port),
			.family = (__u8)b->family,
			.flags = FG_BACKEND_F_ACTIVE | (b->up ? FG_BACKEND_F_UP : 0) |
				 (spec->proto == FG_PROTO_TCP ? FG_BACKEND_F_PROBE_TCP : 0),
			.cluster_idx = b->cluster_idx,
			.weight = b->weight,
		};

		if (b->family != spec->family)
			return -EAFNOSUPPORT; /* no v4<->v6 translation */
		if (b->cluster_idx >= FG_MAX_CLUSTERS)
			return -ERANGE;
		err = fg_dp_set_backend(dp, b->backend_id, &be);
		if (err)
			return err;
	}
	ids = malloc((spec->n_backends ? spec->n_backends : 1) * sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	for (c = 0; c < FG_MAX_CLUSTERS && !err; c++) {
		for (i = n = 0; i < spec->n_backends; i++)
			if (spec->backends[i].cluster_idx == c)
				ids[n++] = spec->backends[i].backend_id;
		err = fg_dp_set_members(dp, spec->service_id, c, ids, n);
	}
	free(ids);
	return err;
}

int fg_dp_apply_service(struct fg_dataplane *dp, const struct fg_l4_service_spec *spec)
{
	struct fg_listener_key lkey = {
		.vip = spec->vip,
		.port = htons(spec->port),
		.proto = spec->proto,
		.family = (__u8)spec->family,
	};
	struct fg_listener lval = {
		.service_id = spec->service_id,
		.kind = spec->kind ? spec->kind : FG_LISTENER_L4,
		.stats_idx = spec->stats_idx,
	};
	size_t i;
	int err;
	__u32 weights[FG_MAX_CLUSTERS] = {};

	for (i = 0; i < spec->n_clusters; i++) {
		const struct fg_l4_cluster_spec *cs = &spec->clusters[i];

		if (cs->cluster_idx >= FG_MAX_CLUSTERS)
			return -ERANGE;
		weights[cs->cluster_idx] = cs->weight;
		err = fg_dp_set_cluster(dp, cs->cluster_idx, cs->name, true);
		if (err)
			return err;
	}
	err = fg_dp_set_service(dp, spec->service_id, spec->name);
	if (!err)
		err = fg_dp_set_cluster_weights(dp, spec->service_id, weights);
	if (!err)
		err = apply_backends(dp, spec);
	if (!err)
		err = fg_dp_rebuild_service(dp, spec->service_id);
	if (err)
		return err;

	/* Allowlist entries before the listener flag, so no window lets
	 * everyone in or keeps everyone out. */
	for (i = 0; i < spec->n_allow; i++) {
		const struct fg_l4_allow_spec *a = &spec->allow[i];
		struct fg_allow_key key;
		__u8 one = 1;

		allow_key(&key, spec->service_id, a->family, &a->addr, a->prefix_len);
		err = dp_update(dp, dp->maps.allowlists, &key, &one, BPF_ANY);
		if (err)
			return err;
	}
	if (spec->n_allow)
		lval.flags |= FG_LISTENER_F_ALLOWLIST;
	return fg_dp_set_listener(dp, &lkey, &lval);
}

int fg_addr_parse(const char *str, struct fg_addr *addr, int *family)
{
	memset(addr, 0, sizeof(*addr));
	if (inet_pton(AF_INET, str, &addr->v4) == 1) {
		*family = FG_AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, str, addr->bytes) == 1) {
		*family = FG_AF_INET6;
		return 0;
	}
	return -EINVAL;
}

const char *fg_addr_str(const struct fg_addr *addr, int family, char *buf, size_t len)
{
	if (!inet_ntop(family == FG_AF_INET ? AF_INET : AF_INET6,
		       family == FG_AF_INET ? (const void *)&addr->v4 : addr->bytes, buf, len))
		snprintf(buf, len, "?");
	return buf;
}


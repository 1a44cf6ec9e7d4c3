// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <linux/if_link.h>
#include <linux/magic.h>
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
	M(verdicts),
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
	struct fg_settings s = {};
	__u32 zero = 0;

	if (bpf_map_lookup_elem(dp->maps.settings, &zero, &s))
		return -errno;
	s.maglev_size = dp->maglev_size;
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
	bpf_map__set_max_entries(dp->skel->maps.rings, dp->max_rings);
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

static void link_pin_path(const struct fg_dataplane *dp, int ifindex, char *buf, size_t len)
{
	/* pin_path is bounded well below PATH_MAX by the loader. */
	if (snprintf(buf, len, "%.3900s/link_xdp_%d", dp->pin_path, ifindex) >= (int)len)
		buf[0] = '\0';
}

/* A link pinned by an agent that exited with --keep-pins keeps the XDP
 * program attached (and L4 flows flowing) while no agent runs; the next
 * agent swaps its own program into that link without a gap. */
static int adopt_link(struct fg_dataplane *dp, int ifindex, int prog_fd)
{
	char path[PATH_MAX];
	int fd;

	if (!dp->pinned)
		return -ENOENT;
	link_pin_path(dp, ifindex, path, sizeof(path));
	fd = bpf_obj_get(path);
	if (fd < 0)
		return -ENOENT;
	if (bpf_link_update(fd, prog_fd, NULL)) {
		int err = -errno;

		pr_warn("cannot update pinned XDP link %s: %s; attaching anew\n", path,
			strerror(-err));
		close(fd);
		unlink(path);
		return -ENOENT;
	}
	pr_info("adopted the XDP link pinned at %s\n", path);
	return fd;
}

int fg_dp_attach(struct fg_dataplane *dp, int ifindex, enum fg_xdp_mode want,
		 enum fg_xdp_mode *got)
{
	LIBBPF_OPTS(bpf_link_create_opts, lopts);
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	int prog_fd = fg_dp_prog_fd(dp);
	char path[PATH_MAX];
	int fd, err;

	if (prog_fd < 0)
		return -EINVAL;
	if (dp->n_links >= FG_MAX_IFACES)
		return -E2BIG;
	if (want == FG_XDP_NATIVE)
		lopts.flags = XDP_FLAGS_DRV_MODE;
	else if (want == FG_XDP_GENERIC)
		lopts.flags = XDP_FLAGS_SKB_MODE;
	fd = adopt_link(dp, ifindex, prog_fd);
	if (fd < 0) {
		fd = bpf_link_create(prog_fd, ifindex, BPF_XDP, &lopts);
		if (fd < 0) {
			char name[IF_NAMESIZE] = "?";

			err = -errno;
			if_indextoname(ifindex, name);
			pr_warn("cannot attach XDP (%s mode) to %s: %s\n", fg_xdp_mode_name(want),
				name, strerror(-err));
			if (err == -EBUSY)
				pr_warn("another XDP program is attached to %s (ip link show %s); "
					"remove it with: ip link set dev %s xdp off\n", name, name, name);
			return err;
		}
		if (dp->pinned) {
			link_pin_path(dp, ifindex, path, sizeof(path));
			if (bpf_obj_pin(fd, path))
				pr_warn("cannot pin XDP link at %s: %s\n", path, strerror(errno));
		}
	}
	err = bpf_xdp_query(ifindex, 0, &q);
	if (err) {
		close(fd);
		pr_warn("cannot query XDP mode on ifindex %d: %s\n", ifindex, strerror(-err));
		return err;
	}
	dp->links[dp->n_links].ifindex = ifindex;
	dp->links[dp->n_links].link_fd = fd;
	dp->links[dp->n_links].mode = q.attach_mode == XDP_ATTACHED_DRV ? FG_XDP_NATIVE
									: FG_XDP_GENERIC;
	if (got)
		*got = dp->links[dp->n_links].mode;
	dp->n_links++;
	return 0;
}

/* Drops our reference to a link; with unpin the pinned reference goes too
 * and the program is detached. */
static int release_link(struct fg_dataplane *dp, int ifindex, bool unpin)
{
	char path[PATH_MAX];
	int i;

	for (i = 0; i < dp->n_links; i++) {
		if (dp->links[i].ifindex != ifindex)
			continue;
		if (unpin && dp->pinned) {
			link_pin_path(dp, ifindex, path, sizeof(path));
			unlink(path);
		}
		close(dp->links[i].link_fd);
		dp->links[i] = dp->links[dp->n_links - 1];
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
	return dp_update(dp, dp->maps.ifaces, &ifindex, ifc, BPF_ANY);
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


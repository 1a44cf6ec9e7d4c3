/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The data plane as the agent sees it: loading the XDP object (through its
 * skeleton), pinning its maps, attaching it to interfaces, and writing the
 * routing state into its maps. The BPF maps are the single source of truth:
 * everything here writes them, nothing keeps a private copy.
 *
 * A data plane is either loaded (fg_dp_load: owns the programs and links) or
 * opened from the pins of a running agent (fg_dp_open_pinned: maps only),
 * which is how fleetgatectl and the tests talk to it.
 */
#ifndef FG_DATAPLANE_H
#define FG_DATAPLANE_H

#include <stdbool.h>
#include <stddef.h>
#include <linux/types.h>

#include "fleetgate.h"
#include "maglev.h"

#define FG_DEFAULT_PIN_PATH "/sys/fs/bpf/fleetgate"

enum fg_xdp_mode {
	FG_XDP_AUTO = 0, /* native where the driver has it, else generic */
	FG_XDP_NATIVE,
	FG_XDP_GENERIC,
};

/* --attach: which entry point of the program an interface gets. */
enum fg_attach_want {
	FG_ATTACH_WANT_AUTO = 0, /* by driver: XDP on NICs, TC on virtual devices */
	FG_ATTACH_WANT_XDP,
	FG_ATTACH_WANT_TC,
};

struct fg_dp_opts {
	const char *pin_path; /* NULL: do not pin (tests) */
	__u32 maglev_size;    /* the largest backend ring, a prime; 0:
			       * FG_DEFAULT_MAGLEV_SIZE */
	__u32 max_services;   /* services map entries; 0: FG_DEF_MAX_SERVICES */
	__u32 max_backends;   /* backends (endpoints); 0: FG_DEF_MAX_BACKENDS */
	__u32 max_rings;      /* rings map entries; 0: FG_DEF_MAX_RINGS */
	__u32 ring_slots;     /* the ring slab's first size; 0: FG_DEF_RING_SLOTS */
	__u32 ring_slots_max; /* it grows up to this; 0: FG_MAX_RING_SLOTS */
	__u16 snat_port_min;  /* 0: 40000 */
	__u16 snat_port_max;  /* 0: 59999 */
	__u16 snat_port2_min; /* a second SNAT range; 0: none */
	__u16 snat_port2_max;
	__u64 snat_time_wait_ns; /* how long a closed flow's port rests; 0: 60 s */
	__u64 ct_timeout_tcp_ns; /* 0: defaults of bpf/lib/conntrack.h */
	__u64 ct_timeout_udp_ns;
};

/* File descriptors of every map, by name. */
struct fg_maps {
	int listeners;
	int services;
	int clusters;
	int backends;
	int rings;
	int ring_slots;
	int allowlists;
	int conntrack;
	int reverse_nat;
	int ifaces;
	int settings;
	int listener_stats;
	int backend_stats;
	int cluster_stats;
	int verdicts;
	int snat_cursor;
	int snat_stats;
};

struct fg_dataplane;

int fg_dp_load(struct fg_dataplane **out, const struct fg_dp_opts *opts);
int fg_dp_open_pinned(struct fg_dataplane **out, const char *pin_path);
/* Detaches everything; removes the pins when remove_pins. */
void fg_dp_close(struct fg_dataplane *dp, bool remove_pins);

const struct fg_maps *fg_dp_maps(const struct fg_dataplane *dp);
/* fd of the XDP program (loaded data planes only), for BPF_PROG_TEST_RUN. */
int fg_dp_prog_fd(const struct fg_dataplane *dp);
/* fd of the TC program: the same code behind the TC entry point. */
int fg_dp_tc_prog_fd(const struct fg_dataplane *dp);
__u32 fg_dp_maglev_size(const struct fg_dataplane *dp);
/* Entries of the services and backends maps (ids are below these). */
__u32 fg_dp_max_services(const struct fg_dataplane *dp);
__u32 fg_dp_max_backends(const struct fg_dataplane *dp);
__u32 fg_dp_max_rings(const struct fg_dataplane *dp);
/* A loaded data plane's backend as this process last wrote it (it is the
 * only writer), without a system call: every field as written (gen
 * included). -EOPNOTSUPP on a pinned-open one. */
int fg_dp_backend_view(const struct fg_dataplane *dp, __u32 id, struct fg_backend *be);
/* 1 + the highest backend id ever made active: ids to scan are below. */
__u32 fg_dp_backend_high(const struct fg_dataplane *dp);
/* The cluster id of an index as this process wrote it, "?" when none. */
const char *fg_dp_cluster_name(const struct fg_dataplane *dp, __u32 cluster_idx);
int fg_dp_ncpus(const struct fg_dataplane *dp);
/* Changes whenever this process writes routing state (services, clusters,
 * backends, rings, listeners): in-process caches of the maps compare it to
 * know when to reread them. */
__u64 fg_dp_epoch(const struct fg_dataplane *dp);

/*
 * Attaching, by device. AUTO asks the driver (ethtool): a physical NIC
 * gets native XDP (the fast path: before any skb exists), a virtual device
 * (veth, bridge, dummy, vxlan, tun, ...) gets TC ingress, where native XDP
 * would cost the traffic the stack terminates its offloads (on a veth it
 * turns TSO off on the peer and copies every cloned skb). A NIC whose
 * driver refuses native XDP gets TC too. TC is a tcx link (kernel >= 6.6),
 * or clsact + cls_bpf on older kernels (or with tc_cls). Links are pinned
 * under the pin path (link_xdp_IFINDEX, link_tcx_IFINDEX) and adopted by
 * the next agent (--keep-pins); a pinned link of the other kind is removed
 * once the new one is in place.
 */
struct fg_attach_opts {
	enum fg_attach_want want;
	enum fg_xdp_mode xdp_mode; /* for XDP */
	bool tc_cls;               /* TC through cls_bpf even where tcx exists */
};

struct fg_attach_info {
	enum fg_attach mode;   /* what the interface got */
	char driver[32];       /* ethtool's driver name ("" when unknown) */
	char why[96];          /* why this mode, for the log */
	bool adopted;          /* a pinned link was taken over */
};

int fg_dp_attach(struct fg_dataplane *dp, int ifindex, const struct fg_attach_opts *o,
		 struct fg_attach_info *got);
int fg_dp_detach(struct fg_dataplane *dp, int ifindex);
/* What AUTO picks for ifindex, and why (fills mode, driver, why). */
void fg_dp_attach_choose(int ifindex, struct fg_attach_info *info);
/* The mode this process attached ifindex with; FG_ATTACH_NONE if none. */
enum fg_attach fg_dp_attach_mode(const struct fg_dataplane *dp, int ifindex);
/* The kernel's view of ifindex in the calling process's network namespace:
 * the id of the program attached there in that mode (0: none). */
__u32 fg_dp_attached_prog_id(int ifindex, enum fg_attach mode);
/* The same from anywhere, through the link the agent pinned for ifindex
 * (XDP, tcx): the program id in the link while it is attached to a device,
 * 0 when not. -ENOENT when there is no pinned link (a cls_bpf filter, or
 * no pin path): ask fg_dp_attached_prog_id from the agent's namespace. */
int fg_dp_pinned_link_prog(const struct fg_dataplane *dp, int ifindex, enum fg_attach mode,
			   __u32 *prog_id);
const char *fg_xdp_mode_name(enum fg_xdp_mode mode);
/* "xdp-native", "xdp-generic", "tcx", "tc-cls", "none". */
const char *fg_attach_name(enum fg_attach mode);
/* "auto", "xdp", "tc" -> want; -EINVAL otherwise. */
int fg_attach_want_parse(const char *s, enum fg_attach_want *want);

/* --- routing state --- */
int fg_dp_set_service(struct fg_dataplane *dp, __u32 service_id, const char *name);
int fg_dp_del_service(struct fg_dataplane *dp, __u32 service_id);
int fg_dp_set_cluster(struct fg_dataplane *dp, __u32 cluster_idx, const char *name, bool up);
int fg_dp_set_cluster_up(struct fg_dataplane *dp, __u32 cluster_idx, bool up);
int fg_dp_set_listener(struct fg_dataplane *dp, const struct fg_listener_key *key,
		       const struct fg_listener *val);
int fg_dp_del_listener(struct fg_dataplane *dp, const struct fg_listener_key *key);
int fg_dp_set_backend(struct fg_dataplane *dp, __u32 backend_id, const struct fg_backend *be);
int fg_dp_set_backend_up(struct fg_dataplane *dp, __u32 backend_id, bool up);
/* fg_dp_set_backend for n backends in one system call (a loaded data
 * plane; one call each on one opened from pins). */
int fg_dp_set_backends(struct fg_dataplane *dp, const __u32 *ids, const struct fg_backend *bes,
		       size_t n);
int fg_dp_del_backend(struct fg_dataplane *dp, __u32 backend_id);
/*
 * Rings (agent/rings.c; the rings and ring_slots maps). A service's
 * backends in a cluster are its members there (fg_dp_set_members, up or
 * down); its rings are rebuilt from them and from the recorded shares and
 * tiers: per cluster a Maglev ring over its active, up members, and a
 * cluster ring over the clusters of the lowest failover tier among those
 * that are up and keep at least one up member, weighted by the shares. A
 * ring is written only when what it is built from changed, to fresh slots,
 * then published in one update: readers see the old ring or the new one.
 */
/* Records the route's intended share per cluster index (services map). */
int fg_dp_set_cluster_weights(struct fg_dataplane *dp, __u32 service_id,
			      const __u32 weights[FG_MAX_CLUSTERS]);
/* Records the failover tier per cluster index (0 = first choice). */
int fg_dp_set_cluster_tiers(struct fg_dataplane *dp, __u32 service_id,
			    const __u8 tiers[FG_MAX_CLUSTERS]);
/* Members of (service, cluster); 0 members: none. Rebuild afterwards. */
int fg_dp_set_members(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx,
		      const __u32 *backend_ids, size_t n);
/* The members this process gave (service, cluster), sorted; valid until
 * the next fg_dp_set_members on it. -ENOENT: none. */
int fg_dp_members(const struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx,
		  const __u32 **ids, size_t *n);
int fg_dp_rebuild_service(struct fg_dataplane *dp, __u32 service_id);
int fg_dp_rebuild_services(struct fg_dataplane *dp, const __u32 *service_ids, size_t n);
/* After health changes of these backends: rebuilds the services that have
 * them as members. */
int fg_dp_backends_changed(struct fg_dataplane *dp, const __u32 *backend_ids, size_t n);
/* The members and ring of (service, cluster) go. */
int fg_dp_del_backend_ring(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx);
/* Rings written directly (tests): sized as the rebuilds size them. */
int fg_dp_set_cluster_ring(struct fg_dataplane *dp, __u32 service_id,
			   const struct fg_maglev_entry *clusters, size_t n);
int fg_dp_set_backend_ring(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx,
			   const struct fg_maglev_entry *backends, size_t n);
/* Ring sizes: a prime of at least FG_CLUSTER_RING_FACTOR slots per cluster,
 * and of FG_BACKEND_RING_FACTOR slots per unit of backend weight, capped by
 * the maglev size. */
__u32 fg_dp_cluster_ring_size(size_t n_clusters);
__u32 fg_dp_backend_ring_size(const struct fg_dataplane *dp, __u64 weight_sum);
/* Room for this many more slots in the slab (grown once now rather than
 * several times while a large plan is written). */
int fg_dp_ring_reserve(struct fg_dataplane *dp, __u64 slots);
/* A ring or list as published (cluster_idx FG_RING_CLUSTERS for the
 * cluster ring, cluster | FG_RING_MEMBERS for a member list): a malloc'ed
 * copy of its slots. -ENOENT when there is none. */
int fg_dp_ring_read(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx,
		    __u32 **table, __u32 *size);

/* The same for a thread other than the one writing the maps (a proxy
 * worker): it keeps its own descriptor of the slab, found again by id when
 * the slab was replaced (grown) under it. Zero-initialise with fd = -1;
 * fg_dp_slab_reader_close releases it. */
struct fg_slab_reader {
	int fd;
	__u32 id;
};
int fg_dp_ring_read_shared(const struct fg_dataplane *dp, struct fg_slab_reader *rd,
			   __u32 service_id, __u32 cluster_idx, __u32 **table, __u32 *size);
void fg_dp_slab_reader_close(struct fg_slab_reader *rd);

struct fg_ring_stats {
	__u64 slab_slots;   /* the slab's size (4 bytes each) */
	__u64 slab_used;    /* slots in use or retired (loaded data planes) */
	__u64 rings;        /* ring keys this process holds */
	__u64 ring_writes;  /* rings and lists published */
	__u64 map_writes;   /* routing map updates and deletes */
};
void fg_dp_ring_stats(struct fg_dataplane *dp, struct fg_ring_stats *st);

/* Allowlist of a service: CIDRs; family FG_AF_INET/FG_AF_INET6. */
int fg_dp_allow_add(struct fg_dataplane *dp, __u32 service_id, int family,
		    const struct fg_addr *addr, int prefix_len);
int fg_dp_allow_clear(struct fg_dataplane *dp, __u32 service_id);
/* Writes the interface's SNAT addresses (the attach mode is filled in from
 * what this process attached there). */
int fg_dp_set_iface(struct fg_dataplane *dp, __u32 ifindex, const struct fg_iface *ifc);
/* Sums the per-CPU SNAT allocator counters (enum fg_snat_stat). */
int fg_dp_snat_stats(struct fg_dataplane *dp, __u64 out[FG_SNAT_STAT_MAX]);
const char *fg_snat_stat_name(int stat);
int fg_dp_del_iface(struct fg_dataplane *dp, __u32 ifindex);
/* Invalidates every cached next hop (after a route/neighbour change). */
int fg_dp_bump_fib_gen(struct fg_dataplane *dp);

/* --- reading back --- */
/* Sums a per-CPU counter over CPUs. */
int fg_dp_read_counter(struct fg_dataplane *dp, int map_fd, __u32 idx, struct fg_counter *sum);
const char *fg_reason_name(int reason);
/* Slots per cluster index in a service's live cluster ring (its effective
 * shares); total is the number of non-empty slots. */
int fg_dp_cluster_shares(struct fg_dataplane *dp, __u32 service_id,
			 __u32 slots[FG_MAX_CLUSTERS], __u32 *total);
bool fg_reason_is_drop(int reason);

/* --- a whole L4 service at once (what the control plane calls) --- */
struct fg_l4_cluster_spec {
	__u32 cluster_idx;
	const char *name;
	__u32 weight; /* share of the service's traffic */
};

struct fg_l4_backend_spec {
	__u32 backend_id;
	__u32 cluster_idx;
	int family;
	struct fg_addr addr;
	__u16 port; /* host order */
	__u32 weight;
	bool up;
};

struct fg_l4_allow_spec {
	int family;
	struct fg_addr addr;
	int prefix_len;
};

struct fg_l4_service_spec {
	__u32 service_id;
	const char *name;
	int family;
	struct fg_addr vip;
	__u16 port; /* host order */
	__u8 proto; /* FG_PROTO_TCP / FG_PROTO_UDP */
	__u8 kind;  /* FG_LISTENER_L4 / FG_LISTENER_L7 */
	__u16 stats_idx;
	const struct fg_l4_cluster_spec *clusters;
	size_t n_clusters;
	const struct fg_l4_backend_spec *backends;
	size_t n_backends;
	const struct fg_l4_allow_spec *allow; /* NULL/0: everyone */
	size_t n_allow;
};

/* Writes backends, rings, allowlist, then the listener last, so traffic
 * reaches the service only once everything it needs is in place. */
int fg_dp_apply_service(struct fg_dataplane *dp, const struct fg_l4_service_spec *spec);

/* "10.0.0.1" / "fd00::1" -> address and family; returns 0 or -EINVAL. */
int fg_addr_parse(const char *str, struct fg_addr *addr, int *family);
/* Formats into buf (INET6_ADDRSTRLEN at least). */
const char *fg_addr_str(const struct fg_addr *addr, int family, char *buf, size_t len);

#endif

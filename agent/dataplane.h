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

struct fg_dp_opts {
	const char *pin_path; /* NULL: do not pin (tests) */
	__u32 maglev_size;    /* 0: FG_DEFAULT_MAGLEV_SIZE; must be prime */
	__u16 snat_port_min;  /* 0: 40000 */
	__u16 snat_port_max;  /* 0: 59999 */
	__u64 ct_timeout_tcp_ns; /* 0: defaults of bpf/lib/conntrack.h */
	__u64 ct_timeout_udp_ns;
};

/* File descriptors of every map, by name. */
struct fg_maps {
	int listeners;
	int services;
	int clusters;
	int backends;
	int cluster_rings;
	int backend_rings;
	int allowlists;
	int conntrack;
	int reverse_nat;
	int ifaces;
	int settings;
	int listener_stats;
	int backend_stats;
	int cluster_stats;
	int verdicts;
};

struct fg_dataplane;

int fg_dp_load(struct fg_dataplane **out, const struct fg_dp_opts *opts);
int fg_dp_open_pinned(struct fg_dataplane **out, const char *pin_path);
/* Detaches everything; removes the pins when remove_pins. */
void fg_dp_close(struct fg_dataplane *dp, bool remove_pins);

const struct fg_maps *fg_dp_maps(const struct fg_dataplane *dp);
/* fd of the XDP program (loaded data planes only), for BPF_PROG_TEST_RUN. */
int fg_dp_prog_fd(const struct fg_dataplane *dp);
__u32 fg_dp_maglev_size(const struct fg_dataplane *dp);
int fg_dp_ncpus(const struct fg_dataplane *dp);
/* Changes whenever this process writes routing state (services, clusters,
 * backends, rings, listeners): in-process caches of the maps compare it to
 * know when to reread them. */
__u64 fg_dp_epoch(const struct fg_dataplane *dp);

/* Attaches the XDP program to ifindex through a bpf_link; reports the mode
 * the kernel used. */
int fg_dp_attach(struct fg_dataplane *dp, int ifindex, enum fg_xdp_mode want,
		 enum fg_xdp_mode *got);
int fg_dp_detach(struct fg_dataplane *dp, int ifindex);
const char *fg_xdp_mode_name(enum fg_xdp_mode mode);

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
int fg_dp_del_backend(struct fg_dataplane *dp, __u32 backend_id);
/* Builds a weighted Maglev ring over the entries and swaps it in
 * atomically: readers see the old ring or the new one, never a mix. */
int fg_dp_set_cluster_ring(struct fg_dataplane *dp, __u32 service_id,
			   const struct fg_maglev_entry *clusters, size_t n);
int fg_dp_set_backend_ring(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx,
			   const struct fg_maglev_entry *backends, size_t n);
/* Records the route's intended share per cluster index (services map). */
int fg_dp_set_cluster_weights(struct fg_dataplane *dp, __u32 service_id,
			      const __u32 weights[FG_MAX_CLUSTERS]);
/* Records the failover tier per cluster index (0 = first choice). */
int fg_dp_set_cluster_tiers(struct fg_dataplane *dp, __u32 service_id,
			    const __u8 tiers[FG_MAX_CLUSTERS]);
/* Recomputes both rings of a service from the maps alone: per cluster a
 * Maglev ring over its active, up backends, and a cluster ring over the
 * clusters of the lowest failover tier among those that are up and keep
 * at least one such backend, weighted by the recorded shares. Called after
 * every health change. */
int fg_dp_rebuild_service(struct fg_dataplane *dp, __u32 service_id);
/* The same for several services, reading the backends map once. */
int fg_dp_rebuild_services(struct fg_dataplane *dp, const __u32 *service_ids, size_t n);
/* The same, treating the backends marked in leaving[FG_MAX_BACKENDS] as
 * gone: rings are rebuilt without them before they are removed. */
int fg_dp_rebuild_services_without(struct fg_dataplane *dp, const __u32 *service_ids, size_t n,
				   const bool *leaving);
int fg_dp_del_backend_ring(struct fg_dataplane *dp, __u32 service_id, __u32 cluster_idx);
/* Allowlist of a service: CIDRs; family FG_AF_INET/FG_AF_INET6. */
int fg_dp_allow_add(struct fg_dataplane *dp, __u32 service_id, int family,
		    const struct fg_addr *addr, int prefix_len);
int fg_dp_allow_clear(struct fg_dataplane *dp, __u32 service_id);
int fg_dp_set_iface(struct fg_dataplane *dp, __u32 ifindex, const struct fg_iface *ifc);
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

/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * fleetgate: the structs shared by the BPF programs and the agent.
 *
 * This is the only place they are defined. Every struct uses fixed-width
 * types, explicit padding and a size assertion, so the BPF object (built
 * against vmlinux.h) and the agent (built against <linux/types.h>) agree on
 * every byte, and bpftool prints the field names from the BTF.
 */
#ifndef FLEETGATE_H
#define FLEETGATE_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

/* Capacities. The FG_DEF_ ones are the compiled defaults of maps the agent
 * sizes at load (--max-services, --max-backends, --max-rings,
 * --ring-slots): code reads the size of the map it has, never these. A
 * pinned map of another size or layout is refused by the loader rather
 * than silently misread. */
#define FG_DEF_MAX_SERVICES  65536
#define FG_DEF_MAX_BACKENDS  1048576
#define FG_DEF_MAX_RINGS     1048576
#define FG_DEF_RING_SLOTS    (1U << 20)   /* the slab's first size; it grows */
#define FG_MAX_RING_SLOTS    (1U << 30)   /* the slab's largest size */
#define FG_MAX_CLUSTERS        64
#define FG_MAX_LISTENERS     4096
#define FG_MAX_ALLOW_RULES  16384
#define FG_MAX_IFACES          64
#define FG_CT_MAX          262144
/* Ring sizes follow what a ring holds (agent/dataplane.c): a prime at
 * least FG_CLUSTER_RING_FACTOR slots per cluster (FG_CLUSTER_RING_MIN at
 * least) for a service's cluster ring, and at least FG_BACKEND_RING_FACTOR
 * slots per unit of backend weight for a (service, cluster) backend ring,
 * capped by the agent's --maglev-size (a prime, default below). */
#define FG_CLUSTER_RING_FACTOR 100
#define FG_CLUSTER_RING_MIN    101
#define FG_BACKEND_RING_FACTOR 32
#define FG_BACKEND_RING_MIN    31
#define FG_DEFAULT_MAGLEV_SIZE 65537
#define FG_NAME_LEN            64

/* "no entry" in a ring slot. */
#define FG_NONE 0xffffffffU

/* Hash seeds of the two selection levels: different, so the choice of
 * backend inside a cluster is independent of the choice of cluster. */
#define FG_SEED_CLUSTER 0x9e3779b9U
#define FG_SEED_BACKEND 0x85ebca6bU
#define FG_SEED_SNAT    0xc2b2ae35U

#define FG_AF_INET   2
#define FG_AF_INET6 10
#define FG_PROTO_TCP  6
#define FG_PROTO_UDP 17

/* An address of either family. IPv4 lives in the first word, the other
 * three words are zero, so one key layout serves both. */
struct fg_addr {
	union {
		__be32 v4;
		__be32 v6[4];
		__u8 bytes[16];
	};
};
_Static_assert(sizeof(struct fg_addr) == 16, "fg_addr size");

/* listeners: (VIP, port, protocol) -> service. */
struct fg_listener_key {
	struct fg_addr vip;
	__be16 port;
	__u8 proto;  /* FG_PROTO_TCP / FG_PROTO_UDP */
	__u8 family; /* FG_AF_INET / FG_AF_INET6 */
};
_Static_assert(sizeof(struct fg_listener_key) == 20, "fg_listener_key size");

enum fg_listener_kind {
	FG_LISTENER_L4 = 1, /* balanced in XDP */
	FG_LISTENER_L7 = 2, /* passed to the stack for the agent's HTTP proxy */
};

enum fg_listener_flags {
	FG_LISTENER_F_ALLOWLIST = 1 << 0, /* sources must match allowlist */
};

struct fg_listener {
	__u32 service_id;
	__u8 kind;  /* enum fg_listener_kind */
	__u8 flags; /* enum fg_listener_flags */
	__u16 stats_idx; /* slot in listener_stats */
};
_Static_assert(sizeof(struct fg_listener) == 8, "fg_listener size");

enum fg_service_flags {
	FG_SERVICE_F_ACTIVE = 1 << 0,
};

/* services: service_id -> description (array). cluster_weight holds the
 * route's intended share per cluster index and cluster_tier its failover
 * tier: the cluster ring is built over the clusters of the lowest tier that
 * still has a healthy backend (weights renormalised over them), so the
 * agent can rebuild a ring after a health change from the maps alone.
 * Tier 0 are the route's own clusters; a canary's tier 1 are its main
 * route's clusters; the last tier is any cluster serving the Service. */
struct fg_service {
	char name[FG_NAME_LEN];
	__u32 flags; /* enum fg_service_flags */
	__u32 generation; /* bumped each time the service is (re)configured */
	__u32 cluster_weight[FG_MAX_CLUSTERS];
	__u8 cluster_tier[FG_MAX_CLUSTERS];
};
_Static_assert(sizeof(struct fg_service) == 72 + 5 * FG_MAX_CLUSTERS, "fg_service size");

enum fg_cluster_flags {
	FG_CLUSTER_F_ACTIVE = 1 << 0,
	FG_CLUSTER_F_UP = 1 << 1,
};

/* clusters: cluster index -> cluster (array). The index is the agent's; the
 * name is the fleet's cluster id (e.g. c15d48ca9d1fd43f9bbb89c56a474843c). */
struct fg_cluster {
	char name[FG_NAME_LEN];
	__u32 flags; /* enum fg_cluster_flags */
	__u32 pad;
};
_Static_assert(sizeof(struct fg_cluster) == 72, "fg_cluster size");

enum fg_backend_flags {
	FG_BACKEND_F_ACTIVE = 1 << 0,
	FG_BACKEND_F_UP = 1 << 1,
	FG_BACKEND_F_PROBE_TCP = 1 << 2, /* the agent probes it with TCP connects */
	FG_BACKEND_F_PROBE_HTTP = 1 << 3, /* an HTTP route's: GET probes when enabled */
};

/* backends: backend_id -> an endpoint (address, port) of one cluster
 * (array). One entry per endpoint, shared by every service (route target,
 * L4 Service) that sends traffic to it, so its health is the endpoint's.
 * gen changes whenever the id is given to another endpoint: a conntrack
 * entry remembers it, and a flow whose backend id now names someone else
 * is re-selected rather than sent there. */
struct fg_backend {
	struct fg_addr addr;
	__be16 port;
	__u8 family;
	__u8 flags; /* enum fg_backend_flags */
	__u32 gen;
	__u32 cluster_idx;
	__u32 weight;
};
_Static_assert(sizeof(struct fg_backend) == 32, "fg_backend size");

/* rings: where a ring lives in the ring_slots slab. Keys:
 *   (service, FG_RING_CLUSTERS)       the service's cluster ring: cluster
 *                                     indexes, weighted by its shares
 *   (service, cluster)                that cluster's Maglev ring of the
 *                                     service's up backends (backend ids)
 *   (service, cluster | FG_RING_MEMBERS)  every backend of the service in
 *                                     that cluster, up or down (a list, not
 *                                     a ring): what the agent rebuilds the
 *                                     ring from after a health change
 * The agent writes a new ring to free slots, then replaces the entry (one
 * atomic update), and reuses the old slots only later: a reader sees the
 * old ring or the new one, never a mix. size 0: empty. */
struct fg_ring_key {
	__u32 service_id;
	__u32 cluster_idx;
};
_Static_assert(sizeof(struct fg_ring_key) == 8, "fg_ring_key size");

#define FG_RING_CLUSTERS 0xffffffffU
#define FG_RING_MEMBERS  0x80000000U

struct fg_ring {
	__u32 offset; /* first slot in the slab */
	__u32 size;   /* slots; a prime for rings */
};
_Static_assert(sizeof(struct fg_ring) == 8, "fg_ring size");

/* allowlists: LPM trie. Data is the service id (big-endian, so the trie
 * compares it first) then the source address; IPv4 sources are stored
 * v4-mapped (::ffff:a.b.c.d) so one trie serves both families.
 * prefixlen = 32 + address prefix length (+ 96 for IPv4). */
struct fg_allow_key {
	__u32 prefixlen;
	__be32 service_id;
	__u8 addr[16];
};
_Static_assert(sizeof(struct fg_allow_key) == 24, "fg_allow_key size");

/* A flow as seen on the wire: conntrack key (client side) and reverse_nat
 * key (backend side). */
struct fg_flow {
	struct fg_addr src;
	struct fg_addr dst;
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u16 pad;
};
_Static_assert(sizeof(struct fg_flow) == 40, "fg_flow size");

enum fg_ct_state {
	FG_CT_NEW = 1,         /* SYN seen, no reply yet */
	FG_CT_ESTABLISHED = 2, /* reply seen */
	FG_CT_CLOSING = 3,     /* FIN seen from one side */
	FG_CT_CLOSED = 4,      /* FIN seen from both sides */
};

/* Which sides sent a FIN (fins of conntrack and reverse_nat entries). */
#define FG_FIN_CLIENT  1
#define FG_FIN_BACKEND 2

/* Next-hop cache kept in conntrack and reverse_nat entries, so an
 * established flow skips bpf_fib_lookup. Valid while fib_gen equals the
 * settings map's fib_gen, which the agent bumps on every route or
 * neighbour change it hears over netlink. */
struct fg_nexthop {
	__u32 ifindex;
	__u32 fib_gen;
	__u8 dmac[6];
	__u8 smac[6];
};
_Static_assert(sizeof(struct fg_nexthop) == 20, "fg_nexthop size");

/* conntrack: client flow -> chosen backend and NAT. */
struct fg_ct {
	__u64 last_seen_ns;
	__u32 backend_id;
	__u32 service_id;
	__u32 cluster_idx;
	__u8 state; /* enum fg_ct_state */
	__u8 fins;  /* FG_FIN_CLIENT | FG_FIN_BACKEND */
	__be16 snat_port;
	struct fg_addr snat_addr;
	struct fg_nexthop nh; /* toward the backend */
	__u32 backend_gen; /* the backend's gen when the flow was placed */
};
_Static_assert(sizeof(struct fg_ct) == 64, "fg_ct size");

/* reverse_nat: backend-side flow (backend -> gateway SNAT addr:port) ->
 * the client flow it belongs to. Inserting with BPF_NOEXIST is the SNAT
 * port allocator: two flows can never own the same backend-side tuple. */
struct fg_rnat {
	struct fg_flow client; /* client -> VIP, as in conntrack */
	__u64 last_seen_ns;
	__u32 backend_id;
	__u8 state; /* enum fg_ct_state, mirrors conntrack */
	__u8 fins;  /* FG_FIN_CLIENT | FG_FIN_BACKEND, mirrors conntrack */
	__u8 pad0[2];
	struct fg_nexthop nh; /* toward the client */
	__u32 pad1;
};
_Static_assert(sizeof(struct fg_rnat) == 80, "fg_rnat size");

/* settings: one entry, written by the agent at run time. */
struct fg_settings {
	__u32 fib_gen;
	__u32 maglev_size; /* the largest backend ring (--maglev-size) */
	/* 1 + the highest backend and service ids the agent made active:
	 * readers of those arrays (fleetgatectl) need not read past them. */
	__u32 backend_high;
	__u32 service_high;
	/* What the program was loaded with (for fleetgatectl): the SNAT
	 * port ranges (the second one 0-0 when there is none) and how long
	 * a closed flow's port rests before another client tuple gets it. */
	__u16 snat_port_min, snat_port_max;
	__u16 snat_port2_min, snat_port2_max;
	__u32 snat_time_wait_s;
	__u32 pad;
};
_Static_assert(sizeof(struct fg_settings) == 32, "fg_settings size");

/* SNAT addresses per interface and family at most (--snat-addr). */
#define FG_SNAT_ADDRS 16

/* How the program is attached to an interface (fg_iface.attach). */
enum fg_attach {
	FG_ATTACH_NONE = 0,
	FG_ATTACH_XDP_NATIVE = 1,  /* XDP in the driver */
	FG_ATTACH_XDP_GENERIC = 2, /* XDP on the skb (no driver support) */
	FG_ATTACH_TCX = 3,         /* TC ingress, tcx link (kernel >= 6.6) */
	FG_ATTACH_TC_CLS = 4,      /* TC ingress, clsact + cls_bpf (older kernels) */
};

/* ifaces: ifindex -> the gateway's own addresses on it that are SNAT
 * sources toward the clusters (every usable address, or those given with
 * --snat-addr), learned by the agent over netlink, and how the program is
 * attached there. A new flow's SNAT address and port come from one index
 * that walks (address, port) pairs address first (bpf/lib/snat.h), so
 * every address added is as many more ports per backend. */
struct fg_iface {
	__u32 flags;  /* FG_IFACE_F_V4 / FG_IFACE_F_V6: has at least one */
	__u8 n_v4;    /* v4[0 .. n_v4) are in use */
	__u8 n_v6;
	__u8 attach;  /* enum fg_attach */
	__u8 pad;
	char name[16]; /* the interface's name in the agent's namespace */
	struct fg_addr v4[FG_SNAT_ADDRS];
	struct fg_addr v6[FG_SNAT_ADDRS];
};
_Static_assert(sizeof(struct fg_iface) == 24 + 2 * 16 * FG_SNAT_ADDRS, "fg_iface size");
#define FG_IFACE_F_V4 1
#define FG_IFACE_F_V6 2

/* snat_stats (per-CPU array): how new flows got their SNAT port. */
enum fg_snat_stat {
	FG_SNAT_FRESH = 0,   /* a (address, port) never used toward the backend */
	FG_SNAT_RECLAIMED,   /* used before, free again: closed longer ago than the
			      * backend's TIME_WAIT, or its flow idled out */
	FG_SNAT_REUSED_TW,   /* every candidate was live or resting: the one that
			      * closed longest ago, still inside TIME_WAIT */
	FG_SNAT_SKIPPED,     /* candidates passed over (live, or resting) */
	FG_SNAT_EXHAUSTED,   /* no candidate could be had: the SYN dropped
			      * (verdict no_snat_port) */
	FG_SNAT_STAT_MAX,
};

/* Counters (per-CPU arrays): packets and bytes. */
struct fg_counter {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct fg_counter) == 16, "fg_counter size");

/* Why the XDP program did what it did; counted in the `verdicts` map.
 * Names are in fg_reason_names (agent/dataplane.c) and docs/maps.md. */
enum fg_reason {
	FG_R_NOT_IP = 0,        /* pass: not IPv4/IPv6 */
	FG_R_TRUNC_ETH,         /* drop: frame shorter than its L2 headers */
	FG_R_TRUNC_IP,          /* drop: IP header cut short or bad length */
	FG_R_BAD_IP,            /* drop: IP version/ihl/length invalid */
	FG_R_TRUNC_L4,          /* drop: TCP/UDP header cut short */
	FG_R_FRAGMENT,          /* pass: IP fragment, left to the stack */
	FG_R_IP6_EXT_LIMIT,     /* pass: more IPv6 extension headers than we walk */
	FG_R_ICMP,              /* pass: ICMP, left to the stack */
	FG_R_OTHER_L4,          /* pass: neither TCP, UDP nor ICMP */
	FG_R_NO_LISTENER,       /* pass: not for a listener nor a NAT flow */
	FG_R_ALLOWLIST,         /* drop: source not in the listener's allowlist */
	FG_R_L7,                /* pass: L7 listener, to the HTTP proxy */
	FG_R_NO_BACKEND,        /* drop: no healthy backend for the service */
	FG_R_NO_SNAT_ADDR,      /* drop: egress iface has no address to SNAT to */
	FG_R_NO_SNAT_PORT,      /* drop: SNAT port allocation failed */
	FG_R_FIB_NO_NEIGH,      /* pass: NATed, but the next hop's neighbour is not
	                         * resolved yet: the stack forwards and resolves */
	FG_R_FIB_FAIL,          /* drop: no route to the backend/client */
	FG_R_FORWARD,           /* tx: client -> backend, NATed and redirected */
	FG_R_REPLY,             /* tx: backend -> client, reverse-NATed */
	FG_R_CT_MAP_FULL,       /* drop: conntrack insert failed */
	FG_R_MAX,
};

#endif /* FLEETGATE_H */

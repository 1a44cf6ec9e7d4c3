/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Every map of the data plane. Each one is pinned by name under the agent's
 * --pin-path (LIBBPF_PIN_BY_NAME) with its BTF, so
 *     bpftool map dump pinned /sys/fs/bpf/fleetgate/NAME
 * prints field names. docs/maps.md documents each one: key, value, writer,
 * readers and the bpftool command.
 */
#ifndef FG_MAPS_BPF_H
#define FG_MAPS_BPF_H

#include "../bpf/lib/common.h"

/* (VIP, port, protocol) -> service. Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_MAX_LISTENERS);
	__type(key, struct fg_listener_key);
	__type(value, struct fg_listener);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} listeners SEC(".maps");

/* service_id -> name, flags, table generation. Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_DEF_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct fg_service);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} services SEC(".maps");

/* cluster index -> cluster id and health. Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_MAX_CLUSTERS);
	__type(key, __u32);
	__type(value, struct fg_cluster);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} clusters SEC(".maps");

/* backend_id -> endpoint: address, port, cluster, health. Written by the
 * agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_DEF_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fg_backend);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backends SEC(".maps");

/* (service, cluster) -> where its ring lives in the slab (struct
 * fg_ring_key and fg_ring in include/fleetgate.h). Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_DEF_MAX_RINGS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_ring_key);
	__type(value, struct fg_ring);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rings SEC(".maps");

/* The slab every ring lives in: one array of u32 slots (cluster indexes,
 * backend ids) behind a one-entry map-in-map, so the agent can replace it
 * by a larger copy when it fills (offsets stay valid). */
struct ring_slab {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_DEF_RING_SLOTS);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, __u32);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 1);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ring_slab);
} ring_slots SEC(".maps");

/* Source allowlists per service (LPM trie). Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, FG_MAX_ALLOW_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct fg_allow_key);
	__type(value, __u8);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} allowlists SEC(".maps");

/* Client flow -> backend and NAT. Written by XDP, read by fleetgatectl. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_CT_MAX);
	__type(key, struct fg_flow);
	__type(value, struct fg_ct);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

/* Backend-side flow -> client flow; also the SNAT port allocator. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, FG_CT_MAX);
	__type(key, struct fg_flow);
	__type(value, struct fg_rnat);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reverse_nat SEC(".maps");

/* backend_id -> the SNAT allocator's next candidate index toward that
 * backend (bpf/lib/snat.h). Sized like backends by the agent. Written by
 * the program (atomic add). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FG_DEF_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} snat_cursor SEC(".maps");

/* enum fg_snat_stat -> count, per CPU: how new flows got their port. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_SNAT_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} snat_stats SEC(".maps");

/* ifindex -> the gateway's own addresses there (SNAT sources) and how the
 * program is attached. Written by the agent from netlink. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FG_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct fg_iface);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} ifaces SEC(".maps");

/* Run-time settings (one entry). Written by the agent. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_settings);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} settings SEC(".maps");

/* Counters, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_MAX_LISTENERS);
	__type(key, __u32);
	__type(value, struct fg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} listener_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_DEF_MAX_BACKENDS);
	__type(key, __u32);
	__type(value, struct fg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} backend_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_MAX_CLUSTERS);
	__type(key, __u32);
	__type(value, struct fg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} cluster_stats SEC(".maps");

/* enum fg_reason -> packets/bytes: every verdict, drop or pass, by why. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FG_R_MAX);
	__type(key, __u32);
	__type(value, struct fg_counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} verdicts SEC(".maps");

#endif

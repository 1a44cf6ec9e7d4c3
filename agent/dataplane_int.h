/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Inside the data plane module: the state dataplane.c (loading, maps,
 * links) and rings.c (the ring slab, membership, ring rebuilds) share.
 * Nothing outside those two files includes this.
 */
#ifndef FG_DATAPLANE_INT_H
#define FG_DATAPLANE_INT_H

#include <limits.h>
#include <stdbool.h>

#include "dataplane.h"
#include "hmap.h"
#include "slab.h"

struct xdp_gateway_bpf;

struct fg_link {
	int ifindex;
	int link_fd;           /* -1 for a cls_bpf filter (no link) */
	enum fg_attach mode;
};

/* What this process knows of a ring key (service, cluster): the members
 * it was given, and the ring and list it last published. */
struct fg_ring_state {
	__u32 *members;   /* backend ids, up or down (backend rings only) */
	__u32 n_members, cap_members;
	__u64 sig;        /* of the entries the published ring was built from */
	/* Cluster rings only: slots per cluster index in the published ring
	 * (FG_MAX_CLUSTERS), so shares are known without reading the slab;
	 * NULL for a ring adopted from pins. */
	__u32 *shares;
	struct fg_ring ring;  /* published ring (size 0: none) */
	struct fg_ring list;  /* published member list (size 0: none) */
};

/* Per backend id, what this process wrote to the backends map (the only
 * writer): ring rebuilds read it instead of a lookup per member. */
struct fg_backend_mirror {
	struct fg_addr addr;   /* addr, port, family: the Maglev key, in a row */
	__be16 port;
	__u8 family;
	__u8 flags;
	__u32 weight;
	__u32 cluster_idx;
	__u32 n_refs;     /* services whose members hold it */
	__u32 ref0;       /* the first of them; the others in refs */
	__u32 gen;        /* as written: batched writes need no lookup */
	__u32 *refs;      /* n_refs - 1 of them (ref_add says how big) */
};

struct fg_dataplane {
	struct xdp_gateway_bpf *skel; /* NULL when opened from pins */
	struct fg_maps maps;
	char pin_path[PATH_MAX];
	bool pinned;
	__u32 maglev_size;   /* the largest backend ring */
	__u32 max_services, max_backends, max_rings;
	int ncpus;
	struct fg_link links[FG_MAX_IFACES];
	int n_links;

	/* The ring slab (rings.c). */
	int slab_fd;         /* the inner map in ring_slots[0], -1: not open */
	__u32 slab_max;      /* it grows up to this */
	struct fg_slab slab; /* loaded data planes only */
	struct fg_hmap ring_states; /* (sid << 32 | cidx) -> struct fg_ring_state * */
	struct fg_backend_mirror *mirror; /* max_backends entries, lazily touched */
	struct fg_cluster cl_mirror[FG_MAX_CLUSTERS]; /* what the clusters map holds */
	__u32 backend_high;  /* 1 + the highest backend id ever made active */
	__u32 service_high;  /* 1 + the highest service id ever set */
	/* A mmapable slab is written through a window of it mapped here
	 * (rings.c slab_write): no system call per slot. */
	bool slab_mmapable;
	__u32 *win;          /* NULL: nothing mapped */
	__u32 win_first;     /* first slot the window holds */
	__u32 win_slots;     /* slots it holds */
	__u32 *scratch;      /* a ring being built, then its keys */
	__u32 *scratch_keys;
	__u32 scratch_len;
	__u64 ring_writes;   /* rings and lists published */
	__u64 map_writes;    /* routing map updates and deletes */
};

int dp_update(struct fg_dataplane *dp, int fd, const void *key, const void *val, __u64 flags);
int dp_delete(struct fg_dataplane *dp, int fd, const void *key);
int dp_update_batch(struct fg_dataplane *dp, int fd, const void *keys, const void *vals,
		    __u32 n, size_t key_size, size_t val_size);
int dp_settings_highs(struct fg_dataplane *dp, __u32 backend_high, __u32 service_high);

/* rings.c */
int dp_rings_init(struct fg_dataplane *dp, __u32 initial_slots, bool adopt);
void dp_rings_fini(struct fg_dataplane *dp);
/* The mirror of a backend the process just wrote. */
void dp_mirror_set(struct fg_dataplane *dp, __u32 id, const struct fg_backend *be);
/* Every ring and list of a service goes (the service is being removed). */
int dp_rings_del_service(struct fg_dataplane *dp, __u32 sid);

#endif

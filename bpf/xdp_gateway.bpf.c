// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fleetgate's gateway program, attached to every gateway interface: one
 * source, two entry points over the same code (bpf/lib/hook.h):
 * xdp_gateway for XDP (physical NICs: the fast path) and tc_gateway for TC
 * ingress (veths and other virtual devices, where native XDP would cost
 * the traffic the stack terminates its offloads). The agent picks one per
 * interface (--attach).
 *
 * Client side: a packet for a listener (VIP, port, protocol) is counted and
 * checked against the listener's source allowlist; L7 listeners pass to the
 * stack (the agent's HTTP proxy), L4 listeners are balanced here: conntrack
 * keeps established flows on their backend, new flows pick cluster then
 * backend (bpf/lib/lb.h), and the packet is full-NATed (DNAT to the backend,
 * SNAT to the gateway's address on the egress interface) and redirected to
 * the next hop found by bpf_fib_lookup.
 *
 * Cluster side: a packet that matches no listener but a reverse_nat entry is
 * a backend's reply; it is reverse-NATed back to the client the same way.
 *
 * Everything else passes to the stack untouched, counted by reason.
 */
#include "lib/common.h"
#include "maps.bpf.h"
#include "lib/hook.h"
#include "lib/parse.h"
#include "lib/csum.h"
#include "lib/nat.h"
#include "lib/lb.h"
#include "lib/conntrack.h"
#include "lib/snat.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

static __always_inline void count(void *map, __u32 idx, __u32 bytes)
{
	struct fg_counter *c = bpf_map_lookup_elem(map, &idx);

	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

/* The hook's return value for a pass or a drop. */
static __always_inline int hook_act(int act, const int hook)
{
	if (hook == FG_HOOK_TC)
		return act == FG_ACT_DROP ? TC_ACT_SHOT : TC_ACT_OK;
	return act == FG_ACT_DROP ? XDP_DROP : XDP_PASS;
}

/* Counts the packet under its reason; returns the hook's verdict. */
static __always_inline int verdict(const struct fg_pkt *pkt, int reason, int act, const int hook)
{
	count(&verdicts, reason, pkt->len);
	return hook_act(act, hook);
}

static __always_inline bool reason_is_malformed(int reason)
{
	return reason == FG_R_TRUNC_ETH || reason == FG_R_TRUNC_IP || reason == FG_R_BAD_IP ||
	       reason == FG_R_TRUNC_L4;
}

/* The parser's stated rule: malformed headers are dropped, the rest of what
 * we do not handle passes. */
static __always_inline int parse_verdict(const struct fg_pkt *pkt, int reason, const int hook)
{
	return verdict(pkt, reason, reason_is_malformed(reason) ? FG_ACT_DROP : FG_ACT_PASS, hook);
}

static __always_inline __u32 fib_gen_now(void)
{
	__u32 zero = 0;
	struct fg_settings *s = bpf_map_lookup_elem(&settings, &zero);

	return s ? s->fib_gen : 0;
}

/* Resolves the next hop toward dst. Returns 0 when resolved;
 * BPF_FIB_LKUP_RET_NO_NEIGH when the route is known (nh->ifindex is set)
 * but the neighbour is not resolved yet, in which case nh is marked stale
 * so the next packet looks again; any other value when there is no route. */
static __always_inline int nexthop_lookup(void *ctx, __u8 family,
					  const struct fg_addr *src,
					  const struct fg_addr *dst,
					  struct fg_nexthop *nh, __u32 gen, const int hook)
{
	struct bpf_fib_lookup fib = {};
	int rc;

	fib.ifindex = hook_ingress_ifindex(ctx, hook);
	if (family == FG_AF_INET) {
		fib.family = AF_INET;
		fib.ipv4_src = src->v4;
		fib.ipv4_dst = dst->v4;
	} else {
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, src, 16);
		__builtin_memcpy(fib.ipv6_dst, dst, 16);
	}
	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (rc == BPF_FIB_LKUP_RET_NO_NEIGH) {
		nh->ifindex = fib.ifindex;
		nh->fib_gen = ~gen;
		return rc;
	}
	if (rc != BPF_FIB_LKUP_RET_SUCCESS)
		return rc ? rc : -1;
	nh->ifindex = fib.ifindex;
	nh->fib_gen = gen;
	__builtin_memcpy(nh->dmac, fib.dmac, ETH_ALEN);
	__builtin_memcpy(nh->smac, fib.smac, ETH_ALEN);
	return 0;
}

static __always_inline int fib_verdict(const struct fg_pkt *pkt, int rc, const int hook)
{
	return verdict(pkt, FG_R_FIB_FAIL, FG_ACT_DROP, hook);
}

static __always_inline bool source_allowed(__u32 service_id, const struct fg_flow *flow)
{
	struct fg_allow_key key = {
		.prefixlen = 32 + 128,
		.service_id = bpf_htonl(service_id),
	};

	if (flow->family == FG_AF_INET) {
		key.addr[10] = 0xff;
		key.addr[11] = 0xff;
		__builtin_memcpy(&key.addr[12], &flow->src.v4, 4);
	} else {
		__builtin_memcpy(key.addr, &flow->src, 16);
	}
	return bpf_map_lookup_elem(&allowlists, &key) != NULL;
}

/* Sends the rewritten packet to its next hop. When the neighbour is not
 * resolved yet (reason FG_R_FIB_NO_NEIGH) the rewritten packet is passed
 * to the stack instead, which forwards it and resolves the neighbour
 * (the agent sets accept_local on its interfaces for the SNAT source). */
static __always_inline int transmit(void *ctx, const struct fg_pkt *pkt,
				    const struct fg_rewrite *rw,
				    const struct fg_nexthop *nh, int reason, const int hook)
{
	if (nat_rewrite(ctx, pkt, rw, hook))
		return verdict(pkt, FG_R_TRUNC_IP, FG_ACT_DROP, hook);
	if (reason == FG_R_FIB_NO_NEIGH)
		return verdict(pkt, reason, FG_ACT_PASS, hook);
	if (eth_rewrite(ctx, pkt, nh, hook))
		return verdict(pkt, FG_R_TRUNC_IP, FG_ACT_DROP, hook);
	count(&verdicts, reason, pkt->len);
	/* XDP_REDIRECT, or TC_ACT_REDIRECT to the device's egress. */
	return bpf_redirect(nh->ifindex, 0);
}

static __always_inline int tx_reason(int fib_rc, int reason)
{
	return fib_rc == BPF_FIB_LKUP_RET_NO_NEIGH ? FG_R_FIB_NO_NEIGH : reason;
}

/* Forgets a flow: its conntrack entry and the reverse_nat entry that holds
 * its SNAT port. */
static __always_inline void flow_forget(const struct fg_flow *client, const struct fg_ct *ct)
{
	struct fg_backend *be = bpf_map_lookup_elem(&backends, &ct->backend_id);
	struct fg_flow rkey;

	if (be) {
		ct_reverse_key(&rkey, be, &ct->snat_addr, ct->snat_port,
			       client->proto, client->family);
		bpf_map_delete_elem(&reverse_nat, &rkey);
	}
	bpf_map_delete_elem(&conntrack, client);
}

static __always_inline __u8 initial_state(const struct fg_pkt *pkt)
{
	if (pkt->flow.proto == FG_PROTO_TCP) {
		if (pkt->tcp_flags & FG_TCP_FIN)
			return FG_CT_CLOSING;
		if (pkt->tcp_flags & FG_TCP_SYN)
			return FG_CT_NEW;
	}
	return FG_CT_ESTABLISHED;
}

/* Per-CPU scratch space for new-flow state: the BPF stack (512 bytes for
 * the whole call chain) cannot hold it. Not pinned: it holds nothing
 * between packets. */
struct fg_new_flow_scratch {
	struct fg_ct ct;
	struct fg_rnat rn;
	struct fg_flow rkey; /* the backend-side tuple */
	struct fg_rewrite rw;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fg_new_flow_scratch);
} new_flow_scratch SEC(".maps");

static __always_inline int l4_new_flow(void *ctx, struct fg_pkt *pkt,
				       const struct fg_listener *lst, __u64 now, __u32 gen,
				       const int hook)
{
	struct fg_new_flow_scratch *scratch;
	struct fg_choice ch = {};
	struct fg_iface *ifc;
	__be16 port = 0;
	__u32 zero = 0;
	int rc, err;

	scratch = bpf_map_lookup_elem(&new_flow_scratch, &zero);
	if (!scratch)
		return verdict(pkt, FG_R_CT_MAP_FULL, FG_ACT_DROP, hook);
	__builtin_memset(scratch, 0, sizeof(*scratch));
#define nct (scratch->ct)
#define rn (scratch->rn)
#define rkey (scratch->rkey)
#define rw (scratch->rw)

	if (lb_select(lst->service_id, &pkt->flow, &ch))
		return verdict(pkt, FG_R_NO_BACKEND, FG_ACT_DROP, hook);

	rc = nexthop_lookup(ctx, pkt->flow.family, &pkt->flow.src,
			    &ch.backend->addr, &nct.nh, gen, hook);
	if (rc && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return fib_verdict(pkt, rc, hook);

	ifc = bpf_map_lookup_elem(&ifaces, &nct.nh.ifindex);
	if (!ifc)
		return verdict(pkt, FG_R_NO_SNAT_ADDR, FG_ACT_DROP, hook);

	rn.client = pkt->flow;
	rn.last_seen_ns = now;
	rn.backend_id = ch.backend_id;
	rn.state = initial_state(pkt);

	/* The SNAT address and port (bpf/lib/snat.h): the reverse_nat
	 * insert is atomic, so two CPUs never hand out the same
	 * backend-side tuple. */
	err = snat_alloc(ifc, ch.backend, ch.backend_id, pkt->flow.proto, pkt->flow.family, &rn,
			 now, &nct.snat_addr, &port, &rkey);
	if (err == -1)
		return verdict(pkt, FG_R_NO_SNAT_ADDR, FG_ACT_DROP, hook);
	if (err)
		return verdict(pkt, FG_R_NO_SNAT_PORT, FG_ACT_DROP, hook);

	nct.last_seen_ns = now;
	nct.backend_id = ch.backend_id;
	nct.backend_gen = ch.backend->gen;
	nct.service_id = lst->service_id;
	nct.cluster_idx = ch.cluster_idx;
	nct.state = rn.state;
	nct.snat_port = port;
	if (bpf_map_update_elem(&conntrack, &pkt->flow, &nct, BPF_ANY)) {
		bpf_map_delete_elem(&reverse_nat, &rkey);
		return verdict(pkt, FG_R_CT_MAP_FULL, FG_ACT_DROP, hook);
	}

	rw.saddr = nct.snat_addr;
	rw.sport = nct.snat_port;
	rw.daddr = ch.backend->addr;
	rw.dport = ch.backend->port;
	count(&backend_stats, ch.backend_id, pkt->len);
	count(&cluster_stats, ch.cluster_idx, pkt->len);
	/* A RST retires the flow even when it is the first packet we see of
	 * it: spoofed RSTs must not hold conntrack entries and SNAT ports. */
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_RST)) {
		bpf_map_delete_elem(&conntrack, &pkt->flow);
		bpf_map_delete_elem(&reverse_nat, &rkey);
	}
	return transmit(ctx, pkt, &rw, &nct.nh, tx_reason(rc, FG_R_FORWARD), hook);
#undef nct
#undef rn
#undef rkey
#undef rw
}

/* Keeps the reverse_nat entry of a live flow alive (or takes it back if
 * the LRU dropped it), so its SNAT port is never handed to another flow. */
static __always_inline void ct_keep_port(const struct fg_pkt *pkt, struct fg_ct *ct,
					 const struct fg_backend *be, __u64 now)
{
	struct fg_new_flow_scratch *sc;
	struct fg_rnat *rn;
	__u32 zero = 0;

	/* The new-flow scratch: l4_new_flow never runs in the same packet
	 * before this. */
	sc = bpf_map_lookup_elem(&new_flow_scratch, &zero);
	if (!sc)
		return;
	ct_reverse_key(&sc->rkey, be, &ct->snat_addr, ct->snat_port,
		       pkt->flow.proto, pkt->flow.family);
	rn = bpf_map_lookup_elem(&reverse_nat, &sc->rkey);
	if (rn) {
		rn->last_seen_ns = now;
		return;
	}
	__builtin_memset(&sc->rn, 0, sizeof(sc->rn));
	sc->rn.client = pkt->flow;
	sc->rn.last_seen_ns = now;
	sc->rn.backend_id = ct->backend_id;
	sc->rn.state = ct->state;
	bpf_map_update_elem(&reverse_nat, &sc->rkey, &sc->rn, BPF_NOEXIST);
}

/* l4_forward's answer when the flow has no usable conntrack entry (no
 * hook's verdict: TC_ACT_UNSPEC is -1). */
#define FG_NEED_NEW_FLOW 0x4e4e

/* A FIN from the client: both entries learn which sides have closed (the
 * reverse entry holds the SNAT port and must time out with conntrack). */
static __always_inline void ct_client_fin(const struct fg_pkt *pkt, struct fg_ct *ct,
					  const struct fg_backend *be)
{
	struct fg_flow rkey;
	struct fg_rnat *rn;
	__u8 fins = ct->fins | FG_FIN_CLIENT;

	ct_reverse_key(&rkey, be, &ct->snat_addr, ct->snat_port,
		       pkt->flow.proto, pkt->flow.family);
	rn = bpf_map_lookup_elem(&reverse_nat, &rkey);
	if (rn) {
		fins |= rn->fins;
		rn->fins = fins;
		rn->state = ct_state_after_fins(fins);
	}
	ct->fins = fins;
	ct->state = ct_state_after_fins(fins);
}

static __always_inline int l4_forward(void *ctx, struct fg_pkt *pkt,
				      const struct fg_listener *lst, const int hook)
{
	__u64 now = fg_now();
	__u32 gen = fib_gen_now();
	struct fg_backend *be = NULL;
	struct fg_rewrite rw = {};
	struct fg_nexthop nh;
	struct fg_ct *ct;
	bool syn = pkt->flow.proto == FG_PROTO_TCP &&
		   (pkt->tcp_flags & (FG_TCP_SYN | FG_TCP_ACK)) == FG_TCP_SYN;
	int rc;

	ct = bpf_map_lookup_elem(&conntrack, &pkt->flow);
	if (ct) {
		if (ct_expired(ct->last_seen_ns, pkt->flow.proto, ct->state, now) ||
		    (syn && ct->state >= FG_CT_CLOSING) ||
		    ct->service_id != lst->service_id) {
			flow_forget(&pkt->flow, ct);
			ct = NULL;
		} else {
			be = bpf_map_lookup_elem(&backends, &ct->backend_id);
			/* Failover: a flow on a backend marked down, or whose
			 * backend id was given to another endpoint since, is
			 * re-selected. */
			if (!be || !backend_is_up(be) || be->gen != ct->backend_gen) {
				flow_forget(&pkt->flow, ct);
				ct = NULL;
			}
		}
	}
	if (!ct || !be)
		return FG_NEED_NEW_FLOW;

	nh = ct->nh;
	rc = 0;
	if (nh.fib_gen != gen || !nh.ifindex) {
		rc = nexthop_lookup(ctx, pkt->flow.family, &pkt->flow.src,
				    &be->addr, &nh, gen, hook);
		if (rc && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_verdict(pkt, rc, hook);
		ct->nh = nh;
	}
	if (now - ct->last_seen_ns > FG_CT_REFRESH_NS) {
		ct->last_seen_ns = now;
		ct_keep_port(pkt, ct, be, now);
	}
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_FIN) &&
	    !(ct->fins & FG_FIN_CLIENT))
		ct_client_fin(pkt, ct, be);

	rw.saddr = ct->snat_addr;
	rw.sport = ct->snat_port;
	rw.daddr = be->addr;
	rw.dport = be->port;
	count(&backend_stats, ct->backend_id, pkt->len);
	count(&cluster_stats, ct->cluster_idx, pkt->len);
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_RST)) {
		/* flow_forget reads ct before it deletes it. */
		flow_forget(&pkt->flow, ct);
	}
	return transmit(ctx, pkt, &rw, &nh, tx_reason(rc, FG_R_FORWARD), hook);
}

/* A backend's reply to the gateway's SNAT address: back to the client. */
static __always_inline int l4_reply(void *ctx, struct fg_pkt *pkt, const int hook)
{
	struct fg_rewrite rw = {};
	const struct fg_flow *client;
	struct fg_nexthop nh;
	struct fg_rnat *rn;
	struct fg_ct *ct;
	__u64 now;
	__u32 gen;
	__u8 state, fins;
	int rc;

	rn = bpf_map_lookup_elem(&reverse_nat, &pkt->flow);
	if (!rn)
		return verdict(pkt, FG_R_NO_LISTENER, FG_ACT_PASS, hook);
	now = fg_now();
	if (ct_expired(rn->last_seen_ns, pkt->flow.proto, rn->state, now)) {
		/* A closed flow's entry stays: it is its port's record of
		 * when it closed (bpf/lib/snat.h). */
		if (rn->state != FG_CT_CLOSED)
			bpf_map_delete_elem(&reverse_nat, &pkt->flow);
		return verdict(pkt, FG_R_NO_LISTENER, FG_ACT_PASS, hook);
	}
	/* In the entry itself: read before the entry may be deleted below. */
	client = &rn->client;
	gen = fib_gen_now();
	nh = rn->nh;
	rc = 0;
	if (nh.fib_gen != gen || !nh.ifindex) {
		rc = nexthop_lookup(ctx, client->family, &client->dst, &client->src, &nh, gen, hook);
		if (rc && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
			return fib_verdict(pkt, rc, hook);
		rn->nh = nh;
	}

	state = rn->state;
	fins = rn->fins;
	if (pkt->flow.proto == FG_PROTO_TCP) {
		if (pkt->tcp_flags & FG_TCP_FIN) {
			fins |= FG_FIN_BACKEND;
			state = ct_state_after_fins(fins);
		} else if (state == FG_CT_NEW) {
			state = FG_CT_ESTABLISHED;
		}
	}
	if (state != rn->state || fins != rn->fins ||
	    now - rn->last_seen_ns > FG_CT_REFRESH_NS) {
		rn->last_seen_ns = now;
		ct = bpf_map_lookup_elem(&conntrack, client);
		if (ct) {
			ct->last_seen_ns = now;
			fins |= ct->fins;
			if (fins)
				state = ct_state_after_fins(fins);
			ct->fins = fins;
			ct->state = state;
		}
		rn->fins = fins;
		rn->state = state;
	}
	count(&backend_stats, rn->backend_id, pkt->len);

	rw.saddr = client->dst;
	rw.sport = client->dport;
	rw.daddr = client->src;
	rw.dport = client->sport;
	if (pkt->flow.proto == FG_PROTO_TCP && (pkt->tcp_flags & FG_TCP_RST)) {
		bpf_map_delete_elem(&conntrack, client);
		bpf_map_delete_elem(&reverse_nat, &pkt->flow);
	}
	return transmit(ctx, pkt, &rw, &nh, tx_reason(rc, FG_R_REPLY), hook);
}

/* One copy of each per hook: BPF-to-BPF calls (not inlined) keep the
 * combined stack of the call chain under the 512-byte limit. */
#define FG_HOOK_CALLS(H, CTX_T)								\
static __noinline int l4_new_flow_##H(CTX_T *ctx, struct fg_pkt *pkt,			\
				      const struct fg_listener *lst, __u64 now, __u32 gen) \
{											\
	return l4_new_flow(ctx, pkt, lst, now, gen, FG_HOOK_##H);			\
}											\
static __noinline int l4_forward_##H(CTX_T *ctx, struct fg_pkt *pkt,			\
				     const struct fg_listener *lst)			\
{											\
	return l4_forward(ctx, pkt, lst, FG_HOOK_##H);					\
}											\
static __noinline int l4_reply_##H(CTX_T *ctx, struct fg_pkt *pkt)			\
{											\
	return l4_reply(ctx, pkt, FG_HOOK_##H);						\
}

FG_HOOK_CALLS(XDP, struct xdp_md)
FG_HOOK_CALLS(TC, struct __sk_buff)

#define HOOK_CALL(hook, fn, ctx, ...)							\
	((hook) == FG_HOOK_TC ? fn##_TC((struct __sk_buff *)(ctx), __VA_ARGS__)		\
			      : fn##_XDP((struct xdp_md *)(ctx), __VA_ARGS__))

/* Everything after parsing, for either hook. */
static __always_inline int gateway(void *ctx, struct fg_pkt *pkt, const int hook)
{
	struct fg_listener_key lkey = {};
	struct fg_listener *lst;
	int rc;

	lkey.vip = pkt->flow.dst;
	lkey.port = pkt->flow.dport;
	lkey.proto = pkt->flow.proto;
	lkey.family = pkt->flow.family;
	lst = bpf_map_lookup_elem(&listeners, &lkey);
	if (!lst)
		return HOOK_CALL(hook, l4_reply, ctx, pkt);

	count(&listener_stats, lst->stats_idx, pkt->len);
	if ((lst->flags & FG_LISTENER_F_ALLOWLIST) &&
	    !source_allowed(lst->service_id, &pkt->flow))
		return verdict(pkt, FG_R_ALLOWLIST, FG_ACT_DROP, hook);
	if (lst->kind != FG_LISTENER_L4)
		return verdict(pkt, FG_R_L7, FG_ACT_PASS, hook);
	/* Separate calls rather than nested ones keep the combined stack of
	 * the BPF-to-BPF call chain under the 512-byte limit. */
	rc = HOOK_CALL(hook, l4_forward, ctx, pkt, lst);
	if (rc != FG_NEED_NEW_FLOW)
		return rc;
	return HOOK_CALL(hook, l4_new_flow, ctx, pkt, lst, fg_now(), fib_gen_now());
}

SEC("xdp")
int xdp_gateway(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct fg_pkt pkt = {};
	int reason;

	reason = parse_packet(data, end, end - data, &pkt);
	if (reason != FG_R_MAX)
		return parse_verdict(&pkt, reason, FG_HOOK_XDP);
	return gateway(ctx, &pkt, FG_HOOK_XDP);
}

/* TC ingress (tcx link, or clsact + cls_bpf in direct-action mode). The
 * skb may be nonlinear (GSO packets from a local stack, GRO): its headers
 * are made linear first, further only when they go beyond FG_TC_PULL. */
/* The skb's linear data now: the verifier wants each read straight from
 * the context (clang would otherwise share the address arithmetic between
 * the reads before and after a pull). */
static __always_inline void tc_linear(struct __sk_buff *skb, void **data, void **end)
{
	asm volatile("" : "+r"(skb));
	*data = (void *)(long)skb->data;
	asm volatile("" : "+r"(skb));
	*end = (void *)(long)skb->data_end;
}

SEC("tc")
int tc_gateway(struct __sk_buff *skb)
{
	__u32 len = skb->len, want;
	struct fg_pkt pkt = {};
	void *data, *end;
	int reason;

	want = len < FG_TC_PULL ? len : FG_TC_PULL;
	tc_linear(skb, &data, &end);
	if ((__u32)(end - data) < want)
		bpf_skb_pull_data(skb, want);
	tc_linear(skb, &data, &end);
	reason = parse_packet(data, end, len, &pkt);
	if (reason_is_malformed(reason) && (__u32)(end - data) < len) {
		want = len < FG_TC_PULL_MAX ? len : FG_TC_PULL_MAX;
		if (!bpf_skb_pull_data(skb, want)) {
			__builtin_memset(&pkt, 0, sizeof(pkt));
			tc_linear(skb, &data, &end);
			reason = parse_packet(data, end, len, &pkt);
		}
	}
	if (reason != FG_R_MAX)
		return parse_verdict(&pkt, reason, FG_HOOK_TC);
	return gateway(skb, &pkt, FG_HOOK_TC);
}

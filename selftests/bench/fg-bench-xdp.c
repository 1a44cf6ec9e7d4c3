// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fg-bench-xdp: cost of the XDP program per packet, through
 * BPF_PROG_TEST_RUN, in a private network namespace.
 *
 * The program NATs the packet in place, and with repeat > 1 the kernel
 * runs it again and again on the same (already rewritten) buffer, which
 * would measure something else after the first run. So every measurement
 * here is repeat = 1 per call, each call with fresh input, summing the
 * kernel-reported duration (in-kernel time, no syscall overhead) over
 * N calls. A trivial XDP_PASS program measured the same way gives the
 * fixed cost of the test-run harness itself; it is also measured with
 * repeat = N in one call, to show the two methods side by side.
 *
 *   fg-bench-xdp [-n PACKETS] [-t]  (default 1000000 per case)
 *
 * -t measures the TC entry point (tc_gateway, a __sk_buff built by the
 * kernel for each run) instead of XDP's; the names then start with tc_.
 *
 * Prints `bench: NAME VALUE UNIT` lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include "dataplane.h"
#include "log.h"
#include "pktbuild.h"

#define N_BACKENDS 64         /* spread SNAT ports: 20000 per backend */
#define N_CLUSTERS 2
#define EPOCH 100000          /* new flows between map clears */
#define N_EST_FLOWS 100000    /* flows of the many-flows established case */
#define VIP "10.99.0.100"
#define VPORT 80

/* The hook measured: names, expected verdicts, the baseline's type. */
static bool tc_hook;
static const char *pfx = "xdp";
static __u32 want_redirect = XDP_REDIRECT, want_pass = XDP_PASS;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	if (rc)
		fprintf(stderr, "fg-bench-xdp: `%s` failed (%d)\n", cmd, rc);
	return rc;
}

static int write_file(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, val, strlen(val));
	close(fd);
	return n < 0 ? -errno : 0;
}

static int netns_setup(int *ifindex)
{
	FILE *f;
	int i;

	if (unshare(CLONE_NEWNET)) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	if (sh("ip link set lo up") ||
	    sh("ip link add fgbx0 type veth peer name fgbx1") ||
	    sh("ip link set fgbx0 up && ip link set fgbx1 up") ||
	    sh("ip addr add 10.88.1.1/24 dev fgbx0"))
		return -1;
	if (write_file("/proc/sys/net/ipv4/conf/all/forwarding", "1") ||
	    write_file("/proc/sys/net/ipv4/conf/lo/forwarding", "1") ||
	    write_file("/proc/sys/net/ipv4/conf/fgbx0/forwarding", "1")) {
		fprintf(stderr, "fg-bench-xdp: cannot enable forwarding\n");
		return -1;
	}
	/* Permanent neighbours: bpf_fib_lookup then resolves every backend. */
	f = popen("ip -batch -", "w");
	if (!f)
		return -1;
	for (i = 0; i < N_BACKENDS; i++)
		fprintf(f, "neigh replace 10.88.1.%d lladdr 02:00:00:00:01:%02x dev fgbx0 nud permanent\n",
			10 + i, i);
	if (pclose(f)) {
		fprintf(stderr, "fg-bench-xdp: adding neighbours failed\n");
		return -1;
	}
	*ifindex = (int)if_nametoindex("fgbx0");
	return *ifindex ? 0 : -1;
}

static int dp_setup(struct fg_dataplane **dpp, int ifindex)
{
	struct fg_l4_cluster_spec cl[N_CLUSTERS] = {
		{ .cluster_idx = 0, .name = "bench-c0", .weight = 1 },
		{ .cluster_idx = 1, .name = "bench-c1", .weight = 1 },
	};
	struct fg_l4_backend_spec be[N_BACKENDS];
	struct fg_l4_service_spec svc = {
		.service_id = 1, .name = "bench", .port = VPORT,
		.proto = FG_PROTO_TCP, .kind = FG_LISTENER_L4,
		.clusters = cl, .n_clusters = N_CLUSTERS,
		.backends = be, .n_backends = N_BACKENDS,
	};
	struct fg_dp_opts opts = {};
	struct fg_iface ifc = { .flags = FG_IFACE_F_V4 };
	int i, fam, err;

	err = fg_dp_load(dpp, &opts);
	if (err) {
		fprintf(stderr, "fg-bench-xdp: fg_dp_load: %s\n", strerror(-err));
		return err;
	}
	fg_addr_parse(VIP, &svc.vip, &svc.family);
	for (i = 0; i < N_BACKENDS; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.88.1.%d", 10 + i);
		memset(&be[i], 0, sizeof(be[i]));
		be[i].backend_id = (__u32)i + 1;
		be[i].cluster_idx = (__u32)(i % N_CLUSTERS);
		fg_addr_parse(a, &be[i].addr, &fam);
		be[i].family = fam;
		be[i].port = 8080;
		be[i].weight = 1;
		be[i].up = true;
	}
	err = fg_dp_apply_service(*dpp, &svc);
	if (err) {
		fprintf(stderr, "fg-bench-xdp: fg_dp_apply_service: %s\n", strerror(-err));
		return err;
	}
	fg_addr_parse("10.88.1.1", &ifc.v4[0], &fam);
	ifc.n_v4 = 1;
	err = fg_dp_set_iface(*dpp, (__u32)ifindex, &ifc);
	if (err)
		fprintf(stderr, "fg-bench-xdp: fg_dp_set_iface: %s\n", strerror(-err));
	return err;
}

/* Empties a hash map: collect every key, then delete them (untimed). */
static void map_clear(int fd, size_t key_size)
{
	size_t cap = 1 << 16, n = 0, i;
	char *keys = malloc(cap * key_size);
	char *prev = NULL;

	if (!keys)
		return;
	for (;;) {
		if (n == cap) {
			char *nk = realloc(keys, 2 * cap * key_size);

			if (!nk)
				break;
			keys = nk;
			cap *= 2;
		}
		if (bpf_map_get_next_key(fd, prev, keys + n * key_size))
			break;
		prev = keys + n * key_size;
		n++;
	}
	for (i = 0; i < n; i++)
		bpf_map_delete_elem(fd, keys + i * key_size);
	free(keys);
}

struct run_stats {
	unsigned long long ns;  /* sum of kernel-reported durations */
	unsigned long calls;
	unsigned long ok;       /* retval == the expected action */
	unsigned long err;      /* syscall failures */
};

static int run_once(int prog_fd, const void *pkt, size_t len, __u32 want,
		    struct run_stats *st)
{
	static __u8 out[PKT_MAX_LEN];
	LIBBPF_OPTS(bpf_test_run_opts, o,
		.data_in = pkt,
		.data_size_in = (__u32)len,
		.data_out = out,
		.data_size_out = sizeof(out),
		.repeat = 1,
	);

	if (bpf_prog_test_run_opts(prog_fd, &o)) {
		st->err++;
		return -errno;
	}
	st->ns += o.duration;
	st->calls++;
	if (o.retval == want)
		st->ok++;
	return 0;
}

/* Flow number i -> client 10.(64 + i / 65536 / 250).x.y : port. */
static void flow_src(unsigned long i, char *addr, size_t alen, __u16 *port)
{
	unsigned long host = i / 50000, p = i % 50000;

	snprintf(addr, alen, "10.%lu.%lu.%lu", 100 + host / 62500 % 100,
		 host / 250 % 250, 1 + host % 250);
	*port = (__u16)(10000 + p);
}

static size_t build(unsigned long flow, __u8 flags, __u8 *buf)
{
	char src[32];
	struct pkt_spec s = {
		.src = src, .dst = VIP, .proto = IPPROTO_TCP,
		.dport = VPORT, .tcp_flags = flags, .seq = 1000, .ack = 1,
	};

	flow_src(flow, src, sizeof(src), &s.sport);
	if (!(flags & PKT_TCP_SYN))
		s.seq = 1001;
	return pkt_build(&s, buf, PKT_MAX_LEN);
}

static void report(const char *name, const struct run_stats *st, const char *what)
{
	printf("bench: %s_%s %.1f ns/pkt\n", pfx, name,
	       st->calls ? (double)st->ns / st->calls : 0.0);
	printf("info: %s_%s: %lu calls, repeat=1 each, summed kernel duration; %lu/%lu returned %s%s\n",
	       pfx, name, st->calls, st->ok, st->calls, what,
	       st->err ? " (some test runs FAILED)" : "");
	fflush(stdout);
}

static int bench_pass(unsigned long n, double *r1)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = (__s32)want_pass },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	enum bpf_prog_type type = tc_hook ? BPF_PROG_TYPE_SCHED_CLS : BPF_PROG_TYPE_XDP;
	__u8 buf[PKT_MAX_LEN];
	struct run_stats st = {};
	unsigned long i;
	size_t len;
	int fd;

	fd = bpf_prog_load(type, "fgb_pass", "GPL", insns, 2, NULL);
	if (fd < 0) {
		fprintf(stderr, "fg-bench-xdp: loading the pass program: %s\n", strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		len = build(i, PKT_TCP_ACK, buf);
		run_once(fd, buf, len, want_pass, &st);
	}
	report("pass_baseline_ns", &st, tc_hook ? "TC_ACT_OK" : "XDP_PASS");
	*r1 = st.calls ? (double)st.ns / st.calls : 0;

	{
		LIBBPF_OPTS(bpf_test_run_opts, o,
			.data_in = buf, .data_size_in = (__u32)len,
			.repeat = (__u32)n,
		);

		if (bpf_prog_test_run_opts(fd, &o) == 0) {
			printf("bench: %s_pass_baseline_repeat1e6_ns %.1f ns/pkt\n", pfx,
			       (double)o.duration);
			printf("info: %s_pass_baseline_repeat1e6_ns: one call with repeat=%lu, kernel average (integer ns)\n",
			       pfx, n);
		}
	}
	close(fd);

	/* How much of the program's cost one clock read is (it reads it
	 * once per packet): XDP_PASS after bpf_ktime_get_ns(). */
	{
		struct bpf_insn kt[] = {
			{ .code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_ktime_get_ns },
			{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0,
			  .imm = (__s32)want_pass },
			{ .code = BPF_JMP | BPF_EXIT },
		};
		struct run_stats ks = {};

		fd = bpf_prog_load(type, "fgb_ktime", "GPL", kt, 3, NULL);
		if (fd >= 0) {
			for (i = 0; i < n / 4; i++)
				run_once(fd, buf, len, want_pass, &ks);
			printf("info: bpf_ktime_get_ns probe: %.1f ns/pkt (repeat=1 sum, %lu calls), i.e. ~%.1f ns per clock read on this machine\n",
			       ks.calls ? (double)ks.ns / ks.calls : 0.0, ks.calls,
			       ks.calls ? (double)ks.ns / ks.calls - *r1 : 0.0);
			close(fd);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct fg_dataplane *dp = NULL;
	unsigned long n = 1000000, i;
	__u8 buf[PKT_MAX_LEN];
	struct run_stats st;
	double base = 0, est = 0;
	size_t len;
	int ifindex, prog, opt;

	while ((opt = getopt(argc, argv, "n:t")) != -1) {
		if (opt == 'n') {
			n = strtoul(optarg, NULL, 0);
		} else if (opt == 't') {
			tc_hook = true;
			pfx = "tc";
			want_redirect = 7; /* TC_ACT_REDIRECT */
			want_pass = 0;     /* TC_ACT_OK */
		} else {
			fprintf(stderr, "usage: %s [-n PACKETS] [-t]\n", argv[0]);
			return 2;
		}
	}
	if (n == 0 || n > 4000000000UL)
		n = 1000000;
	fg_log_setup_libbpf();
	if (netns_setup(&ifindex) || dp_setup(&dp, ifindex))
		return 1;
	prog = tc_hook ? fg_dp_tc_prog_fd(dp) : fg_dp_prog_fd(dp);
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* (a) new flows: a SYN of a flow never seen, every call. The maps are
	 * emptied every EPOCH flows, outside the timed runs, so the LRU never
	 * evicts and SNAT ports stay plentiful (64 backends x 20000). */
	memset(&st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		if (i && i % EPOCH == 0) {
			map_clear(fg_dp_maps(dp)->conntrack, sizeof(struct fg_flow));
			map_clear(fg_dp_maps(dp)->reverse_nat, sizeof(struct fg_flow));
		}
		len = build(i, PKT_TCP_SYN, buf);
		run_once(prog, buf, len, want_redirect, &st);
	}
	report("new_flow_ns", &st, tc_hook ? "TC_ACT_REDIRECT" : "XDP_REDIRECT");
	map_clear(fg_dp_maps(dp)->conntrack, sizeof(struct fg_flow));
	map_clear(fg_dp_maps(dp)->reverse_nat, sizeof(struct fg_flow));

	/* (b) one established flow: its SYN first (untimed), then ACKs. */
	memset(&st, 0, sizeof(st));
	len = build(7, PKT_TCP_SYN, buf);
	run_once(prog, buf, len, want_redirect, &st);
	memset(&st, 0, sizeof(st));
	len = build(7, PKT_TCP_ACK, buf);
	for (i = 0; i < n; i++)
		run_once(prog, buf, len, want_redirect, &st);
	report("established_ns", &st, tc_hook ? "TC_ACT_REDIRECT" : "XDP_REDIRECT");
	est = st.calls ? (double)st.ns / st.calls : 0;

	/* (b') established, round-robin over N_EST_FLOWS flows: colder
	 * caches, the conntrack hash table actually populated. */
	for (i = 0; i < N_EST_FLOWS; i++) {
		len = build(i, PKT_TCP_SYN, buf);
		run_once(prog, buf, len, want_redirect, &st);
	}
	memset(&st, 0, sizeof(st));
	for (i = 0; i < n; i++) {
		len = build(i % N_EST_FLOWS, PKT_TCP_ACK, buf);
		run_once(prog, buf, len, want_redirect, &st);
	}
	report("established_100k_flows_ns", &st, tc_hook ? "TC_ACT_REDIRECT" : "XDP_REDIRECT");

	/* (c) the harness itself. */
	if (bench_pass(n, &base))
		return 1;
	printf("bench: %s_established_minus_baseline_ns %.1f ns/pkt\n", pfx, est - base);

	fg_dp_close(dp, false);
	return 0;
}

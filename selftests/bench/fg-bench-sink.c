// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fg-bench-sink: the packet sink of the throughput benchmark. Attaches a
 * tiny XDP program (count in a per-CPU array, XDP_DROP) to each IFNAME of
 * the current network namespace through bpf_links, so it is detached when
 * this process ends, however it ends. Prints "ready", then the packet
 * count ("count N") on every SIGUSR1; exits on SIGTERM/SIGINT.
 *
 *   fg-bench-sink IFNAME...
 */
#include <errno.h>
#include <net/if.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

static volatile sig_atomic_t want_count, want_exit;

static void on_sig(int sig)
{
	if (sig == SIGUSR1)
		want_count = 1;
	else
		want_exit = 1;
}

#define INSN(c, d, s, o, i) { .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) }

int main(int argc, char **argv)
{
	int ncpu = libbpf_num_possible_cpus();
	__u64 *vals;
	__u32 zero = 0;
	int map, prog, i;

	if (argc < 2) {
		fprintf(stderr, "usage: %s IFNAME...\n", argv[0]);
		return 2;
	}
	vals = calloc((size_t)(ncpu > 0 ? ncpu : 1), sizeof(*vals));
	map = bpf_map_create(BPF_MAP_TYPE_PERCPU_ARRAY, "fgb_sink_cnt", 4, 8, 1, NULL);
	if (map < 0 || !vals) {
		perror("fg-bench-sink: map");
		return 1;
	}
	{
		struct bpf_insn insns[] = {
			INSN(BPF_ST | BPF_MEM | BPF_W, BPF_REG_10, 0, -4, 0),
			INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map),
			INSN(0, 0, 0, 0, 0),
			INSN(BPF_ALU64 | BPF_MOV | BPF_X, BPF_REG_2, BPF_REG_10, 0, 0),
			INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_2, 0, 0, -4),
			INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_map_lookup_elem),
			INSN(BPF_JMP | BPF_JEQ | BPF_K, BPF_REG_0, 0, 3, 0),
			INSN(BPF_LDX | BPF_MEM | BPF_DW, BPF_REG_1, BPF_REG_0, 0, 0),
			INSN(BPF_ALU64 | BPF_ADD | BPF_K, BPF_REG_1, 0, 0, 1),
			INSN(BPF_STX | BPF_MEM | BPF_DW, BPF_REG_0, BPF_REG_1, 0, 0),
			INSN(BPF_ALU64 | BPF_MOV | BPF_K, BPF_REG_0, 0, 0, XDP_DROP),
			INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0),
		};

		prog = bpf_prog_load(BPF_PROG_TYPE_XDP, "fgb_sink", "GPL", insns,
				     sizeof(insns) / sizeof(insns[0]), NULL);
	}
	if (prog < 0) {
		perror("fg-bench-sink: prog load");
		return 1;
	}
	for (i = 1; i < argc; i++) {
		int ifindex = (int)if_nametoindex(argv[i]);

		if (!ifindex || bpf_link_create(prog, ifindex, BPF_XDP, NULL) < 0) {
			fprintf(stderr, "fg-bench-sink: attach to %s: %s\n", argv[i],
				strerror(ifindex ? errno : ENODEV));
			return 1;
		}
	}
	signal(SIGUSR1, on_sig);
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("ready\n");
	while (!want_exit) {
		usleep(20000);
		if (want_count) {
			unsigned long long sum = 0;

			want_count = 0;
			if (bpf_map_lookup_elem(map, &zero, vals) == 0)
				for (i = 0; i < ncpu; i++)
					sum += vals[i];
			printf("count %llu\n", sum);
		}
	}
	return 0;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * fg-bench-config: writes one L4 service into a running agent's pinned
 * maps, one cluster per backend, every cluster and backend with weight 1.
 *
 *   fg-bench-config PIN_PATH SERVICE_ID VIP PORT tcp|udp BACKEND:PORT...
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "log.h"

#define MAX_BE 16

int main(int argc, char **argv)
{
	struct fg_l4_cluster_spec cl[MAX_BE];
	struct fg_l4_backend_spec be[MAX_BE];
	char names[MAX_BE][24];
	struct fg_l4_service_spec svc = {};
	struct fg_dataplane *dp;
	int i, n, fam, err;

	if (argc < 7 || argc - 6 > MAX_BE) {
		fprintf(stderr, "usage: %s PIN_PATH SERVICE_ID VIP PORT tcp|udp BACKEND:PORT...\n",
			argv[0]);
		return 2;
	}
	fg_log_setup_libbpf();
	svc.service_id = (__u32)strtoul(argv[2], NULL, 0);
	svc.name = "bench";
	if (fg_addr_parse(argv[3], &svc.vip, &svc.family)) {
		fprintf(stderr, "bad VIP %s\n", argv[3]);
		return 2;
	}
	svc.port = (__u16)atoi(argv[4]);
	svc.proto = strcmp(argv[5], "udp") ? FG_PROTO_TCP : FG_PROTO_UDP;
	svc.kind = FG_LISTENER_L4;
	svc.stats_idx = (__u16)svc.service_id;
	n = argc - 6;
	for (i = 0; i < n; i++) {
		char addr[64], *colon;

		snprintf(addr, sizeof(addr), "%s", argv[6 + i]);
		colon = strrchr(addr, ':');
		if (!colon) {
			fprintf(stderr, "backend %s: want ADDR:PORT\n", argv[6 + i]);
			return 2;
		}
		*colon = '\0';
		snprintf(names[i], sizeof(names[i]), "bench-c%d", i);
		cl[i] = (struct fg_l4_cluster_spec){ .cluster_idx = (__u32)i, .name = names[i],
						     .weight = 1 };
		memset(&be[i], 0, sizeof(be[i]));
		be[i].backend_id = svc.service_id * MAX_BE + (__u32)i;
		be[i].cluster_idx = (__u32)i;
		if (fg_addr_parse(addr, &be[i].addr, &fam)) {
			fprintf(stderr, "bad backend address %s\n", addr);
			return 2;
		}
		be[i].family = fam;
		be[i].port = (__u16)atoi(colon + 1);
		be[i].weight = 1;
		be[i].up = true;
	}
	svc.clusters = cl;
	svc.n_clusters = (size_t)n;
	svc.backends = be;
	svc.n_backends = (size_t)n;

	err = fg_dp_open_pinned(&dp, argv[1]);
	if (err) {
		fprintf(stderr, "cannot open pins at %s: %s\n", argv[1], strerror(-err));
		return 1;
	}
	err = fg_dp_apply_service(dp, &svc);
	if (err)
		fprintf(stderr, "apply service: %s\n", strerror(-err));
	fg_dp_close(dp, false);
	return err ? 1 : 0;
}

// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * libFuzzer target: the manifest loader (YAML and JSON, one or many
 * documents) and the route computation over what it accepts. Built by
 * `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"
#include "routes.h"
#include "tls_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fg_plan_opts opts = { .dataplane_ready = true, .listening = true,
				     .address = "192.0.2.1" };
	struct fg_manifest_error err;
	struct fg_snapshot snap = {};
	struct fg_plan *plan = NULL;
	json_t *docs = NULL;

	if (fg_manifest_parse((const char *)data, size, size & 1 ? "f.json" : "f.yaml", &docs,
			      &err))
		return 0;
	/* Whatever parses is a fleet, and the same objects are one member
	 * cluster's: routes must cope with any shape. */
	snap.fleet = docs;
	snap.clusters = json_pack("{s:O}", "c1", docs);
	if (!fg_plan_compute(&snap, &opts, &plan)) {
		json_t *r = fg_plan_routes_json(plan);
		json_t *i = fg_plan_ingresses_json(plan, "192.0.2.1");
		json_t *t = fg_tls_plan_json(plan->tls, NULL);

		json_decref(r);
		json_decref(i);
		json_decref(t);
		fg_plan_free(plan);
	}
	json_decref(snap.clusters);
	json_decref(docs);
	return 0;
}

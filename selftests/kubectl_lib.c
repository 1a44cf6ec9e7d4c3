// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "e2e_lib.h"
#include "kubectl_lib.h"

const char *kubectl_find(char *version, size_t len)
{
	static char path[PATH_MAX];
	char exe[PATH_MAX - 64], *slash, *out;
	const char *env = getenv("FLEETGATE_KUBECTL");
	ssize_t n;
	int st;

	path[0] = '\0';
	if (env && *env && access(env, X_OK) == 0) {
		snprintf(path, sizeof(path), "%s", env);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n > 0) {
			exe[n] = '\0';
			slash = strrchr(exe, '/');
			if (slash)
				*slash = '\0';
			snprintf(path, sizeof(path), "%s/kubernetes-client/usr/bin/kubectl", exe);
			if (access(path, X_OK))
				path[0] = '\0';
		}
	}
	if (!path[0]) {
		out = e2e_capture(&st, true, "command -v kubectl 2>/dev/null");
		if (out && !st) {
			out[strcspn(out, "\n")] = '\0';
			snprintf(path, sizeof(path), "%s", out);
		}
		free(out);
	}
	if (!path[0])
		return NULL;
	if (version && len) {
		out = e2e_capture(&st, true, "%s version --client 2>&1 | head -1", path);
		snprintf(version, len, "%s", out ? out : "");
		version[strcspn(version, "\n")] = '\0';
		free(out);
	}
	return path;
}

int kubectl_write_kubeconfig(const char *path, const char *server, const char *token)
{
	FILE *f = fopen(path, "w");

	if (!f)
		return -errno;
	fprintf(f,
		"apiVersion: v1\n"
		"kind: Config\n"
		"clusters:\n"
		"- name: test\n"
		"  cluster:\n"
		"    server: %s\n"
		"contexts:\n"
		"- name: test\n"
		"  context:\n"
		"    cluster: test\n"
		"    user: test\n"
		"current-context: test\n"
		"users:\n"
		"- name: test\n"
		"  user:\n",
		server);
	if (token)
		fprintf(f, "    token: %s\n", token);
	else
		fprintf(f, "    {}\n");
	return fclose(f) ? -errno : 0;
}

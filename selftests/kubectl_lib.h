/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Debian's kubectl (package kubernetes-client) for the tests that read what
 * the agent wrote back with a real client: $FLEETGATE_KUBECTL, else the
 * copy `make deps` unpacks next to the test runner when /usr/bin/kubectl
 * belongs to another package (BUILD/kubernetes-client/usr/bin/kubectl),
 * else kubectl on PATH.
 */
#ifndef FG_KUBECTL_LIB_H
#define FG_KUBECTL_LIB_H

#include <stdbool.h>
#include <stddef.h>

/* The kubectl to run, or NULL (none found); its version line into
 * version (may be NULL). */
const char *kubectl_find(char *version, size_t len);
/* A kubeconfig at path for an http:// server, no credentials (or a
 * bearer token when token is not NULL). 0 or -errno. */
int kubectl_write_kubeconfig(const char *path, const char *server, const char *token);

#endif

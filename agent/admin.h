/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The agent's admin socket: a unix stream socket where fleetgatectl sends
 * one JSON request line ({"get": "routes"}, ...) and reads one JSON answer
 * ({"ok": true, "items": [...]} or {"ok": false, "error": "..."}), then the
 * connection closes.
 */
#ifndef FG_ADMIN_H
#define FG_ADMIN_H

#include <jansson.h>

/* The socket path for a pin path: /run/fleetgate/<pin path's last
 * component>.sock, so agents with different pin paths never collide and
 * fleetgatectl -p PATH finds the right one. */
int fg_admin_socket_path(const char *pin_path, char *buf, size_t len);

/* Answers a request; returns a new reference. */
typedef json_t *(*fg_admin_handler)(json_t *request, void *ctx);

struct fg_admin;

int fg_admin_open(struct fg_admin **out, const char *path, fg_admin_handler handler, void *ctx);
int fg_admin_fd(const struct fg_admin *adm);
/* Serves the pending connections (non-blocking accept). */
void fg_admin_process(struct fg_admin *adm);
void fg_admin_close(struct fg_admin *adm);

/* Client side: sends request, returns the answer (new reference) or NULL
 * with *err set to a negative errno. */
json_t *fg_admin_call(const char *path, json_t *request, int timeout_ms, int *err);

#endif

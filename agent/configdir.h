/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The configuration directory, watched with inotify:
 *
 *   DIR/fleet/NAME.{yaml,yml,json}              objects of the fleet
 *                                    (MseIngressConfig, Ingress, Service)
 *   DIR/clusters/<cluster-id>/NAME.{yaml,...}   objects of one member cluster
 *                                    (Service, Endpoints, EndpointSlice, Pod)
 *
 * fleet/, clusters/ and the cluster directories may appear and disappear at
 * any time. Files are read with fg_manifest_parse_file(). A file that fails
 * to parse is reported (pr_warn "FILE:LINE: REASON") and its previous
 * objects stay in force until it parses again; a deleted file's objects
 * disappear, as do those of a removed cluster directory. Files written in
 * place (IN_CLOSE_WRITE) or renamed into place (IN_MOVED_TO) are both seen;
 * hidden and temporary names (".*", "*~", "*.swp", "*.tmp", anything not
 * ending in .yaml/.yml/.json) are ignored. A Kubernetes ConfigMap volume
 * (whose "..data" symlink is swapped) is followed too.
 *
 * Single-threaded: the caller polls fg_configdir_fd() for POLLIN and then
 * calls fg_configdir_process(), which drains every pending event and
 * reloads each touched file once.
 */
#ifndef FG_CONFIGDIR_H
#define FG_CONFIGDIR_H

#include <stdbool.h>
#include <jansson.h>

#include "manifest.h"

struct fg_configdir;

/* Sets up the watches on dir (which must exist) without loading anything:
 * call fg_configdir_rescan() for the initial load. 0 or -errno. */
int fg_configdir_open(struct fg_configdir **out, const char *dir);
void fg_configdir_close(struct fg_configdir *cd);

/* The inotify fd (non-blocking) to poll for POLLIN. */
int fg_configdir_fd(const struct fg_configdir *cd);

/*
 * Drains the pending events and applies them. *changed (may be NULL) is set
 * to whether the set of objects changed (a file rewritten with the same
 * objects is no change). Parse errors are not failures: they are logged and
 * kept for fg_configdir_foreach_error(). Returns 0 or -errno when the
 * events cannot be read.
 */
int fg_configdir_process(struct fg_configdir *cd, bool *changed);

/* Rereads the whole directory tree (initial load, or after the event queue
 * overflowed), re-adding watches as needed. Same *changed and return as
 * fg_configdir_process(). */
int fg_configdir_rescan(struct fg_configdir *cd, bool *changed);

/*
 * Calls cb for every current object, file by file in the order of their
 * paths and in file order within a file. origin is NULL for fleet objects,
 * else the cluster id; path is the file's full path. obj is borrowed (valid
 * until the next process/rescan/close; json_incref it to keep it and do not
 * modify it). A non-zero return from cb stops the walk and is returned.
 */
typedef int (*fg_configdir_obj_cb)(const char *origin, const char *path,
				   json_t *obj, void *ctx);
int fg_configdir_foreach(struct fg_configdir *cd, fg_configdir_obj_cb cb, void *ctx);

/* Calls cb (may be NULL) for every file whose last load failed, in path
 * order; returns how many there are. */
typedef void (*fg_configdir_err_cb)(const char *path,
				    const struct fg_manifest_error *err, void *ctx);
int fg_configdir_foreach_error(struct fg_configdir *cd, fg_configdir_err_cb cb,
			       void *ctx);

/*
 * Called during fg_configdir_process()/rescan() for every file whose
 * objects changed: old is the array of objects it had (NULL: none), new
 * the array it has now (NULL: the file is gone). Both are borrowed for the
 * call; old is released after it. Lets a caller keep an index of the
 * objects up to date with work in proportion to what changed.
 */
typedef void (*fg_configdir_change_cb)(const char *origin, const char *path, json_t *old,
				       json_t *new, void *ctx);
void fg_configdir_set_change_cb(struct fg_configdir *cd, fg_configdir_change_cb cb, void *ctx);

/* Number of objects currently loaded. */
size_t fg_configdir_count(const struct fg_configdir *cd);

#endif

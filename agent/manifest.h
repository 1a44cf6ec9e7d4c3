/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Kubernetes manifests (what `kubectl apply -f FILE` accepts) parsed into
 * jansson values.
 *
 * YAML (libyaml, event API, no recursion): one or many documents separated
 * by "---"; mappings become objects (duplicate keys are an error, "<<" merge
 * keys are honoured), sequences arrays, plain scalars are resolved with the
 * YAML 1.2 core schema (null ~ "" -> null; true/false in any of the three
 * cases -> bool; decimal, 0x and 0o integers -> integer; decimal floats ->
 * real; anything else -> string). Quoted and block (| >) scalars are always
 * strings. !!str !!int !!float !!bool !!null are honoured; other tags keep
 * the scalar as a string. Aliases are expanded by copying.
 *
 * JSON (a ".json" file name, or content whose first non-blank character is
 * '{' or '['): one or several concatenated values, through jansson with
 * duplicate keys rejected.
 *
 * Every top-level value must be an object with apiVersion, kind and
 * metadata.name (non-empty strings). An object whose kind ends in "List"
 * and which has an "items" array (v1 List, ServiceList, ...) is replaced by
 * its items. Empty documents are skipped.
 *
 * Limits: input at most FG_MANIFEST_MAX_SIZE bytes, collections nested at
 * most FG_MANIFEST_MAX_DEPTH deep, at most FG_MANIFEST_MAX_NODES nodes per
 * file once aliases are expanded. No string may contain a NUL character.
 */
#ifndef FG_MANIFEST_H
#define FG_MANIFEST_H

#include <stddef.h>
#include <jansson.h>

#define FG_MANIFEST_MAX_SIZE (4u << 20)
#define FG_MANIFEST_MAX_DEPTH 100
#define FG_MANIFEST_MAX_NODES 1000000

struct fg_manifest_error {
	char file[256];   /* file name as given ("<input>" without one) */
	int line;         /* 1-based; 0 when the error has no position */
	int column;       /* 1-based; 0 when unknown */
	char reason[256];
};

/*
 * Parses one file's content. On success returns 0 and *docs is a new JSON
 * array of objects (the caller owns the reference). On failure returns a
 * negative errno (-EBADMSG invalid content, -EFBIG too large, -ENOMEM),
 * *docs is NULL and *err (when not NULL) says where and why.
 * filename is only used for messages and to recognise ".json"; may be NULL.
 */
int fg_manifest_parse(const char *data, size_t len, const char *filename,
		      json_t **docs, struct fg_manifest_error *err);

/*
 * Reads and parses the file at path. Besides fg_manifest_parse's errors:
 * -ENOENT / -ENOTDIR when it does not exist, -EISDIR / -EINVAL when it is
 * not a regular file, other -errno from open/read. err is filled in every
 * case of failure.
 */
int fg_manifest_parse_file(const char *path, json_t **docs,
			   struct fg_manifest_error *err);

#endif

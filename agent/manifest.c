// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/*
 * Kubernetes manifests -> jansson values. See manifest.h for the rules.
 *
 * The YAML side is driven by libyaml's event API (the document API of
 * libyaml 0.2.5 recurses once per nesting level); the tree is built with
 * an explicit stack bounded by FG_MANIFEST_MAX_DEPTH, aliases are expanded
 * by copy after checking the node budget, and every error path releases
 * what was built so far. Input is untrusted (fuzzed).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "manifest.h"

#define YAML_TAG_PREFIX "tag:yaml.org,2002:"

__attribute__((format(printf, 4, 5)))
static void set_error(struct fg_manifest_error *err, int line, int column,
		      const char *fmt, ...)
{
	va_list ap;

	err->line = line;
	err->column = column;
	va_start(ap, fmt);
	vsnprintf(err->reason, sizeof(err->reason), fmt, ap);
	va_end(ap);
}

/* ---- object checks, shared by YAML and JSON ---- */

static bool nonempty_string(json_t *v)
{
	return json_is_string(v) && json_string_length(v) > 0;
}

static bool is_list_kind(json_t *obj)
{
	json_t *kind = json_object_get(obj, "kind");
	json_t *items = json_object_get(obj, "items");
	size_t n;

	if (!json_is_string(kind) || !(json_is_array(items) || json_is_null(items)))
		return false;
	n = json_string_length(kind);
	return n >= 4 && !strcmp(json_string_value(kind) + n - 4, "List");
}

/*
 * Appends obj (a new reference is taken) to docs after checking it is a
 * Kubernetes object, or its items when it is a list. where is "" or the
 * "items[N]: " path of obj inside its document.
 */
static int add_object(json_t *docs, json_t *obj, int index, int line,
		      const char *where, int nest, struct fg_manifest_error *err)
{
	json_t *meta;

	if (!json_is_object(obj)) {
		set_error(err, line, 0, "document %d: %sis not a mapping (a Kubernetes object is expected)",
			  index, where);
		return -EBADMSG;
	}
	if (is_list_kind(obj)) {
		json_t *items = json_object_get(obj, "items");
		json_t *api = json_object_get(obj, "apiVersion");
		const char *kind = json_string_value(json_object_get(obj, "kind"));
		size_t kind_len = strlen(kind) - 4, i;
		char sub[64];
		json_t *item;
		int rc;

		if (nest >= FG_MANIFEST_MAX_DEPTH) {
			set_error(err, line, 0, "document %d: lists nested too deeply", index);
			return -EBADMSG;
		}
		json_array_foreach(items, i, item) {
			/* ServiceList & co: items may leave out their type. */
			if (json_is_object(item) && kind_len > 0 &&
			    !json_object_get(item, "apiVersion") &&
			    !json_object_get(item, "kind") && nonempty_string(api)) {
				if (json_object_set(item, "apiVersion", api) ||
				    json_object_set_new(item, "kind",
							json_stringn(kind, kind_len))) {
					set_error(err, line, 0, "out of memory");
					return -ENOMEM;
				}
			}
			snprintf(sub, sizeof(sub), "%sitems[%zu]: ",
				 nest ? "" : where, i);
			rc = add_object(docs, item, index, line, sub, nest + 1, err);
			if (rc)
				return rc;
		}
		return 0;
	}
	if (!nonempty_string(json_object_get(obj, "apiVersion"))) {
		set_error(err, line, 0, "document %d: %smissing apiVersion", index, where);
		return -EBADMSG;
	}
	if (!nonempty_string(json_object_get(obj, "kind"))) {
		set_error(err, line, 0, "document %d: %smissing kind", index, where);
		return -EBADMSG;
	}
	meta = json_object_get(obj, "metadata");
	if (!json_is_object(meta) || !nonempty_string(json_object_get(meta, "name"))) {
		set_error(err, line, 0, "document %d: %smissing metadata.name", index, where);
		return -EBADMSG;
	}
	if (json_array_append(docs, obj)) {
		set_error(err, line, 0, "out of memory");
		return -ENOMEM;
	}
	return 0;
}

/* ---- scalars (YAML 1.2 core schema) ---- */

enum num_kind { NUM_NONE, NUM_INT, NUM_FLOAT };

static bool all_digits(const char *s, size_t len, int base)
{
	size_t i;

	if (!len)
		return false;
	for (i = 0; i < len; i++) {
		char c = s[i];

		if (base == 8 && !(c >= '0' && c <= '7'))
			return false;
		if (base == 10 && !(c >= '0' && c <= '9'))
			return false;
		if (base == 16 && !((c >= '0' && c <= '9') ||
				    (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
			return false;
	}
	return true;
}

/* [-+]? ( \. [0-9]+ | [0-9]+ ( \. [0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
static bool is_float_syntax(const char *s, size_t len)
{
	size_t i = 0, d1 = 0, d2 = 0, de = 0;

	if (i < len && (s[i] == '-' || s[i] == '+'))
		i++;
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++, d1++;
	if (i < len && s[i] == '.') {
		i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, d2++;
	}
	if (!d1 && !d2)
		return false;
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '-' || s[i] == '+'))
			i++;
		while (i < len && s[i] >= '0' && s[i] <= '9')
			i++, de++;
		if (!de)
			return false;
	}
	return i == len;
}

static bool is_special_float(const char *s, size_t len)
{
	static const char *const names[] = {
		".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF",
		"-.inf", "-.Inf", "-.INF", ".nan", ".NaN", ".NAN",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strlen(names[i]) == len && !memcmp(names[i], s, len))
			return true;
	return false;
}

/* s is NUL-terminated at s[len] (libyaml guarantees it) and NUL-free. */
static enum num_kind parse_number(const char *s, size_t len, long long *iv, double *dv)
{
	unsigned long long u;
	char *end;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o')) {
		int base = s[1] == 'x' ? 16 : 8;

		if (!all_digits(s + 2, len - 2, base))
			return NUM_NONE;
		errno = 0;
		u = strtoull(s + 2, &end, base);
		if (errno || u > (unsigned long long)INT64_MAX)
			return NUM_NONE; /* too large: kept as a string */
		*iv = (long long)u;
		return NUM_INT;
	}
	if (all_digits(s + (s[0] == '-' || s[0] == '+'),
		       len - (s[0] == '-' || s[0] == '+'), 10)) {
		errno = 0;
		*iv = strtoll(s, &end, 10);
		if (!errno)
			return NUM_INT;
		/* Out of the int64 range: a float, as go-yaml does. */
	}
	if (is_float_syntax(s, len)) {
		errno = 0;
		*dv = strtod(s, &end);
		if (isfinite(*dv) && end == s + len)
			return NUM_FLOAT;
	}
	return NUM_NONE;
}

static int parse_bool(const char *s, size_t len)
{
	if ((len == 4 && (!memcmp(s, "true", 4) || !memcmp(s, "True", 4) ||
			  !memcmp(s, "TRUE", 4))))
		return 1;
	if ((len == 5 && (!memcmp(s, "false", 5) || !memcmp(s, "False", 5) ||
			  !memcmp(s, "FALSE", 5))))
		return 0;
	return -1;
}

static bool is_null(const char *s, size_t len)
{
	return len == 0 || (len == 1 && s[0] == '~') ||
	       (len == 4 && (!memcmp(s, "null", 4) || !memcmp(s, "Null", 4) ||
			     !memcmp(s, "NULL", 4)));
}

/* ---- YAML ---- */

struct frame {
	json_t *node;     /* object or array being filled */
	char *anchor;     /* its anchor, or NULL */
	size_t nodes_start;
	int height;       /* 1 + height of the deepest collection inside */
	/* mappings only */
	bool have_key;
	bool key_merge;   /* the pending key is a plain "<<" */
	char *key;
	int key_line, key_col;
	json_t *merged;   /* keys that came from "<<" and may be overridden */
	yaml_mark_t start;
};

struct ym {
	yaml_parser_t parser;
	struct frame stack[FG_MANIFEST_MAX_DEPTH];
	int depth;
	json_t *anchors;  /* name -> [value, nodes, height] */
	size_t nodes;
	json_t *root;
	bool have_root;
	int root_line;
	int doc_index;
	json_t *docs;
	struct fg_manifest_error *err;
};

static int oom(struct ym *y, const yaml_mark_t *m)
{
	set_error(y->err, (int)m->line + 1, (int)m->column + 1, "out of memory");
	return -ENOMEM;
}

/* The JSON object key for a scalar: go-yaml + sigs.k8s.io/yaml turn int,
 * float and bool keys into their text. */
static int key_string(struct ym *y, json_t *v, const yaml_mark_t *m, char **out)
{
	char buf[64];

	switch (json_typeof(v)) {
	case JSON_STRING:
		*out = strdup(json_string_value(v));
		break;
	case JSON_INTEGER:
		snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));
		*out = strdup(buf);
		break;
	case JSON_REAL:
		snprintf(buf, sizeof(buf), "%.17g", json_real_value(v));
		*out = strdup(buf);
		break;
	case JSON_TRUE:
	case JSON_FALSE:
		*out = strdup(json_is_true(v) ? "true" : "false");
		break;
	case JSON_NULL:
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "null mapping key is not supported");
		return -EBADMSG;
	default:
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "mapping or sequence as a mapping key is not supported");
		return -EBADMSG;
	}
	return *out ? 0 : oom(y, m);
}

static int merge_one(struct ym *y, struct frame *f, json_t *src, const yaml_mark_t *m)
{
	const char *k;
	json_t *v;

	if (!json_is_object(src)) {
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "merge key << needs a mapping or a sequence of mappings");
		return -EBADMSG;
	}
	if (!f->merged && !(f->merged = json_object()))
		return oom(y, m);
	json_object_foreach(src, k, v) {
		if (json_object_get(f->node, k))
			continue; /* explicit keys and earlier merges win */
		if (json_object_set(f->node, k, v) ||
		    json_object_set_new(f->merged, k, json_true()))
			return oom(y, m);
	}
	return 0;
}

/* Places a finished value; the reference to v is consumed. */
static int add_value(struct ym *y, json_t *v, int height, const yaml_mark_t *m,
		     bool merge_key)
{
	struct frame *f;
	int rc = 0;

	if (!y->depth) {
		json_decref(y->root); /* cannot happen: one root per document */
		y->root = v;
		y->have_root = true;
		y->root_line = (int)m->line + 1;
		return 0;
	}
	f = &y->stack[y->depth - 1];
	if (f->height < height + 1)
		f->height = height + 1;
	if (json_is_array(f->node))
		return json_array_append_new(f->node, v) ? oom(y, m) : 0;

	if (!f->have_key) {
		rc = key_string(y, v, m, &f->key);
		json_decref(v);
		if (rc)
			return rc;
		f->have_key = true;
		f->key_merge = merge_key;
		f->key_line = (int)m->line + 1;
		f->key_col = (int)m->column + 1;
		return 0;
	}

	if (f->key_merge) {
		if (json_is_array(v)) {
			size_t i;
			json_t *e;

			json_array_foreach(v, i, e) {
				rc = merge_one(y, f, e, m);
				if (rc)
					break;
			}
		} else {
			rc = merge_one(y, f, v, m);
		}
		json_decref(v);
	} else if (json_object_get(f->node, f->key)) {
		if (f->merged && json_object_get(f->merged, f->key)) {
			json_object_del(f->merged, f->key);
			if (json_object_set_new(f->node, f->key, v))
				rc = oom(y, m);
		} else {
			json_decref(v);
			set_error(y->err, f->key_line, f->key_col,
				  "duplicate key \"%.100s\"", f->key);
			rc = -EBADMSG;
		}
	} else if (json_object_set_new(f->node, f->key, v)) {
		rc = oom(y, m);
	}
	free(f->key);
	f->key = NULL;
	f->have_key = false;
	f->key_merge = false;
	return rc;
}

static int count_node(struct ym *y, size_t n, const yaml_mark_t *m)
{
	if (n > FG_MANIFEST_MAX_NODES - y->nodes) {
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "more than %d nodes once aliases are expanded",
			  FG_MANIFEST_MAX_NODES);
		return -EBADMSG;
	}
	y->nodes += n;
	return 0;
}

static int set_anchor(struct ym *y, const char *name, json_t *v, size_t nodes,
		      int height, const yaml_mark_t *m)
{
	json_t *e = json_pack("[O,I,i]", v, (json_int_t)nodes, height);

	if (!e || json_object_set_new(y->anchors, name, e))
		return oom(y, m);
	return 0;
}

static int on_collection_start(struct ym *y, const yaml_event_t *ev, bool mapping)
{
	const yaml_mark_t *m = &ev->start_mark;
	const yaml_char_t *anchor = mapping ? ev->data.mapping_start.anchor
					    : ev->data.sequence_start.anchor;
	struct frame *f;
	int rc;

	if (y->depth >= FG_MANIFEST_MAX_DEPTH) {
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "nesting deeper than %d levels", FG_MANIFEST_MAX_DEPTH);
		return -EBADMSG;
	}
	rc = count_node(y, 1, m);
	if (rc)
		return rc;
	f = &y->stack[y->depth];
	memset(f, 0, sizeof(*f));
	f->node = mapping ? json_object() : json_array();
	if (!f->node)
		return oom(y, m);
	y->depth++;
	f->nodes_start = y->nodes - 1;
	f->height = 1;
	f->start = *m;
	if (anchor && !(f->anchor = strdup((const char *)anchor)))
		return oom(y, m);
	return 0;
}

static void frame_release(struct frame *f)
{
	json_decref(f->node);
	json_decref(f->merged);
	free(f->anchor);
	free(f->key);
	memset(f, 0, sizeof(*f));
}

static int on_collection_end(struct ym *y, const yaml_event_t *ev)
{
	struct frame *f;
	yaml_mark_t m;
	json_t *node;
	int height, rc = 0;

	if (!y->depth) /* libyaml never does this */
		return 0;
	f = &y->stack[y->depth - 1];
	node = f->node;
	height = f->height;
	m = f->start;
	if (f->anchor)
		rc = set_anchor(y, f->anchor, node, y->nodes - f->nodes_start, height, &m);
	f->node = NULL;
	frame_release(f);
	y->depth--;
	if (rc) {
		json_decref(node);
		return rc;
	}
	return add_value(y, node, height, &m, false);
}

static int scalar_to_json(struct ym *y, const yaml_event_t *ev, json_t **out,
			  bool *merge_key)
{
	const char *s = (const char *)ev->data.scalar.value;
	size_t len = ev->data.scalar.length;
	const char *tag = (const char *)ev->data.scalar.tag;
	bool plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
	const yaml_mark_t *m = &ev->start_mark;
	const char *t = NULL;
	long long iv;
	double dv;
	int b;

	*out = NULL;
	if (memchr(s, '\0', len)) {
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "NUL character in a scalar");
		return -EBADMSG;
	}
	if (tag && !strncmp(tag, YAML_TAG_PREFIX, strlen(YAML_TAG_PREFIX)))
		t = tag + strlen(YAML_TAG_PREFIX);

	if (!tag && plain) {
		if (len == 2 && !memcmp(s, "<<", 2))
			*merge_key = true;
		if (is_null(s, len)) {
			*out = json_null();
		} else if ((b = parse_bool(s, len)) >= 0) {
			*out = json_boolean(b);
		} else if (is_special_float(s, len)) {
			set_error(y->err, (int)m->line + 1, (int)m->column + 1,
				  "%.20s cannot be represented in JSON", s);
			return -EBADMSG;
		} else {
			switch (parse_number(s, len, &iv, &dv)) {
			case NUM_INT:
				*out = json_integer(iv);
				break;
			case NUM_FLOAT:
				*out = json_real(dv);
				break;
			default:
				*out = json_stringn(s, len);
			}
		}
	} else if (t && !strcmp(t, "null")) {
		*out = json_null();
	} else if (t && !strcmp(t, "bool")) {
		if ((b = parse_bool(s, len)) < 0)
			goto bad_tagged;
		*out = json_boolean(b);
	} else if (t && (!strcmp(t, "int") || !strcmp(t, "float"))) {
		if (is_special_float(s, len))
			goto bad_tagged;
		switch (parse_number(s, len, &iv, &dv)) {
		case NUM_INT:
			*out = t[0] == 'i' ? json_integer(iv) : json_real((double)iv);
			break;
		case NUM_FLOAT:
			if (t[0] == 'i')
				goto bad_tagged;
			*out = json_real(dv);
			break;
		default:
			goto bad_tagged;
		}
	} else {
		/* Quoted, block, !!str, and every other tag: a string. */
		*out = json_stringn(s, len);
	}
	if (!*out) {
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "cannot convert scalar (invalid UTF-8 or out of memory)");
		return -EBADMSG;
	}
	return 0;

bad_tagged:
	set_error(y->err, (int)m->line + 1, (int)m->column + 1,
		  "cannot decode \"%.40s\" as !!%s", s, t);
	return -EBADMSG;
}

static int on_scalar(struct ym *y, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	bool merge_key = false;
	json_t *v;
	int rc;

	rc = count_node(y, 1, m);
	if (rc)
		return rc;
	rc = scalar_to_json(y, ev, &v, &merge_key);
	if (rc)
		return rc;
	if (ev->data.scalar.anchor) {
		rc = set_anchor(y, (const char *)ev->data.scalar.anchor, v, 1, 0, m);
		if (rc) {
			json_decref(v);
			return rc;
		}
	}
	return add_value(y, v, 0, m, merge_key);
}

static int on_alias(struct ym *y, const yaml_event_t *ev)
{
	const yaml_mark_t *m = &ev->start_mark;
	const char *name = (const char *)ev->data.alias.anchor;
	json_t *e = json_object_get(y->anchors, name ? name : "");
	json_t *copy;
	size_t nodes;
	int height, rc;

	if (!e) {
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "unknown anchor \"%.60s\"", name ? name : "");
		return -EBADMSG;
	}
	nodes = (size_t)json_integer_value(json_array_get(e, 1));
	height = (int)json_integer_value(json_array_get(e, 2));
	rc = count_node(y, nodes, m);
	if (rc)
		return rc;
	if (y->depth + height > FG_MANIFEST_MAX_DEPTH) {
		set_error(y->err, (int)m->line + 1, (int)m->column + 1,
			  "nesting deeper than %d levels", FG_MANIFEST_MAX_DEPTH);
		return -EBADMSG;
	}
	copy = json_deep_copy(json_array_get(e, 0));
	if (!copy)
		return oom(y, m);
	return add_value(y, copy, height, m, false);
}

static int on_document_end(struct ym *y)
{
	int rc = 0;

	if (y->have_root && !json_is_null(y->root))
		rc = add_object(y->docs, y->root, y->doc_index, y->root_line, "", 0,
				y->err);
	json_decref(y->root);
	y->root = NULL;
	y->have_root = false;
	json_object_clear(y->anchors);
	return rc;
}

static void line_col_of(const char *data, size_t len, size_t off, int *line, int *col)
{
	size_t i, start = 0;
	int l = 1;

	if (off > len)
		off = len;
	for (i = 0; i < off; i++) {
		if (data[i] == '\n') {
			l++;
			start = i + 1;
		}
	}
	*line = l;
	*col = (int)(off - start) + 1;
}

static int yaml_failure(struct ym *y, const char *data, size_t len)
{
	yaml_parser_t *p = &y->parser;
	const char *problem = p->problem ? p->problem : "invalid YAML";
	int line, col;

	switch (p->error) {
	case YAML_MEMORY_ERROR:
		set_error(y->err, 0, 0, "out of memory");
		return -ENOMEM;
	case YAML_READER_ERROR:
		line_col_of(data, len, p->problem_offset, &line, &col);
		if (p->problem_value != -1)
			set_error(y->err, line, col, "%s: #x%X", problem,
				  (unsigned)p->problem_value);
		else
			set_error(y->err, line, col, "%s", problem);
		return -EBADMSG;
	default:
		line = (int)p->problem_mark.line + 1;
		col = (int)p->problem_mark.column + 1;
		if (p->context)
			set_error(y->err, line, col, "%s (%s at line %d)", problem,
				  p->context, (int)p->context_mark.line + 1);
		else
			set_error(y->err, line, col, "%s", problem);
		return -EBADMSG;
	}
}

static int parse_yaml(const char *data, size_t len, json_t *docs,
		      struct fg_manifest_error *err)
{
	struct ym *y;
	yaml_event_t ev;
	bool done = false;
	int rc = 0, i;

	y = calloc(1, sizeof(*y));
	if (!y) {
		set_error(err, 0, 0, "out of memory");
		return -ENOMEM;
	}
	y->docs = docs;
	y->err = err;
	y->anchors = json_object();
	if (!y->anchors || !yaml_parser_initialize(&y->parser)) {
		json_decref(y->anchors);
		free(y);
		set_error(err, 0, 0, "out of memory");
		return -ENOMEM;
	}
	/* libyaml asserts on a NULL input, even an empty one. */
	yaml_parser_set_input_string(&y->parser,
				     (const unsigned char *)(len ? data : ""), len);

	while (!done && !rc) {
		if (!yaml_parser_parse(&y->parser, &ev)) {
			rc = yaml_failure(y, data, len);
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			y->doc_index++;
			json_object_clear(y->anchors);
			break;
		case YAML_DOCUMENT_END_EVENT:
			rc = on_document_end(y);
			break;
		case YAML_MAPPING_START_EVENT:
			rc = on_collection_start(y, &ev, true);
			break;
		case YAML_SEQUENCE_START_EVENT:
			rc = on_collection_start(y, &ev, false);
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			rc = on_collection_end(y, &ev);
			break;
		case YAML_SCALAR_EVENT:
			rc = on_scalar(y, &ev);
			break;
		case YAML_ALIAS_EVENT:
			rc = on_alias(y, &ev);
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
	}

	for (i = 0; i < y->depth; i++)
		frame_release(&y->stack[i]);
	json_decref(y->root);
	json_decref(y->anchors);
	yaml_parser_delete(&y->parser);
	free(y);
	return rc;
}

/* ---- JSON ---- */

static bool json_depth_ok(json_t *v, int depth)
{
	const char *k;
	json_t *c;
	size_t i;

	if (!json_is_object(v) && !json_is_array(v))
		return true;
	if (depth >= FG_MANIFEST_MAX_DEPTH)
		return false;
	if (json_is_object(v)) {
		json_object_foreach(v, k, c)
			if (!json_depth_ok(c, depth + 1))
				return false;
	} else {
		json_array_foreach(v, i, c)
			if (!json_depth_ok(c, depth + 1))
				return false;
	}
	return true;
}

static bool is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int parse_json(const char *data, size_t len, json_t *docs,
		      struct fg_manifest_error *err)
{
	size_t off = 0, pos = 0, line_start = 0;
	int line = 1, index = 0, rc;

	for (;;) {
		json_error_t je;
		int vline, vcol;
		json_t *v;

		while (off < len && is_ws(data[off]))
			off++;
		/* Line and column of off, counted incrementally. */
		for (; pos < off; pos++) {
			if (data[pos] == '\n') {
				line++;
				line_start = pos + 1;
			}
		}
		if (off >= len)
			return 0;
		vline = line;
		vcol = (int)(off - line_start) + 1;
		index++;
		v = json_loadb(data + off, len - off,
			       JSON_REJECT_DUPLICATES | JSON_DISABLE_EOF_CHECK, &je);
		if (!v) {
			if (je.line <= 0)
				set_error(err, vline, vcol, "%s", je.text);
			else
				set_error(err, vline + je.line - 1,
					  je.line == 1 ? vcol + je.column - 1 : je.column,
					  "%s", je.text);
			return -EBADMSG;
		}
		if (!json_depth_ok(v, 0)) {
			json_decref(v);
			set_error(err, vline, vcol, "nesting deeper than %d levels",
				  FG_MANIFEST_MAX_DEPTH);
			return -EBADMSG;
		}
		rc = add_object(docs, v, index, vline, "", 0, err);
		json_decref(v);
		if (rc)
			return rc;
		if (je.position <= 0 || (size_t)je.position > len - off) {
			set_error(err, vline, vcol, "cannot find the end of the JSON value");
			return -EBADMSG;
		}
		off += (size_t)je.position;
	}
}

/* ---- entry points ---- */

static bool looks_like_json(const char *data, size_t len, const char *filename)
{
	size_t n = filename ? strlen(filename) : 0, i = 0;

	if (n >= 5 && !strcmp(filename + n - 5, ".json"))
		return true;
	while (i < len && is_ws(data[i]))
		i++;
	return i < len && (data[i] == '{' || data[i] == '[');
}

int fg_manifest_parse(const char *data, size_t len, const char *filename,
		      json_t **docs, struct fg_manifest_error *err)
{
	struct fg_manifest_error dummy;
	json_t *arr;
	int rc;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", filename ? filename : "<input>");
	*docs = NULL;
	if (!data && len) {
		set_error(err, 0, 0, "no data");
		return -EINVAL;
	}
	if (!data)
		data = "";
	if (len > FG_MANIFEST_MAX_SIZE) {
		set_error(err, 0, 0, "larger than %u bytes", FG_MANIFEST_MAX_SIZE);
		return -EFBIG;
	}
	/* A UTF-8 byte order mark: libyaml skips it, jansson does not. */
	if (len >= 3 && !memcmp(data, "\xef\xbb\xbf", 3) &&
	    looks_like_json(data + 3, len - 3, filename)) {
		data += 3;
		len -= 3;
	}
	arr = json_array();
	if (!arr) {
		set_error(err, 0, 0, "out of memory");
		return -ENOMEM;
	}
	if (looks_like_json(data, len, filename))
		rc = parse_json(data, len, arr, err);
	else
		rc = parse_yaml(data, len, arr, err);
	if (rc) {
		json_decref(arr);
		return rc;
	}
	*docs = arr;
	return 0;
}

int fg_manifest_parse_file(const char *path, json_t **docs,
			   struct fg_manifest_error *err)
{
	struct fg_manifest_error dummy;
	size_t cap, len = 0;
	struct stat st;
	char *buf = NULL, *nbuf;
	ssize_t n;
	int fd, rc;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	snprintf(err->file, sizeof(err->file), "%s", path);
	*docs = NULL;

	/* O_NONBLOCK: a FIFO must not block the agent. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		set_error(err, 0, 0, "cannot open: %s", strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		set_error(err, 0, 0, "cannot stat: %s", strerror(-rc));
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = -EISDIR;
		set_error(err, 0, 0, "is a directory");
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = -EINVAL;
		set_error(err, 0, 0, "not a regular file");
		goto out;
	}
	if (st.st_size > (off_t)FG_MANIFEST_MAX_SIZE) {
		rc = -EFBIG;
		set_error(err, 0, 0, "larger than %u bytes", FG_MANIFEST_MAX_SIZE);
		goto out;
	}
	cap = (size_t)st.st_size + 1;
	buf = malloc(cap);
	if (!buf) {
		rc = -ENOMEM;
		set_error(err, 0, 0, "out of memory");
		goto out;
	}
	for (;;) {
		if (len == cap) { /* the file grew while being read */
			if (cap > FG_MANIFEST_MAX_SIZE) {
				rc = -EFBIG;
				set_error(err, 0, 0, "larger than %u bytes",
					  FG_MANIFEST_MAX_SIZE);
				goto out;
			}
			cap = cap * 2 > FG_MANIFEST_MAX_SIZE + 1 ?
				      FG_MANIFEST_MAX_SIZE + 1 : cap * 2;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				rc = -ENOMEM;
				set_error(err, 0, 0, "out of memory");
				goto out;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			set_error(err, 0, 0, "cannot read: %s", strerror(-rc));
			goto out;
		}
		if (!n)
			break;
		len += (size_t)n;
	}
	rc = fg_manifest_parse(buf, len, path, docs, err);
out:
	free(buf);
	close(fd);
	return rc;
}

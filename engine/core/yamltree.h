/* yamltree.h: the one YAML reader of claimflow - a buffer in, a small
 * immutable tree of scalars, mappings and sequences out, each node with its
 * 1-based line and column.  Workflows, calendars and claimflowd's config all
 * read YAML through it, so they share one set of refusals, one depth limit
 * and one out-of-memory path.
 *
 * Refused (each reported as a diagnostic, file:line:col):
 *   - a tab in indentation: "tab character; indent with spaces";
 *   - anchors and aliases: "anchors and aliases are not supported" (an
 *     alias would share nodes: a billion-laughs file is a few lines);
 *   - tags: "tags are not supported";
 *   - a second document: "only one YAML document per file";
 *   - mappings and sequences nested more than CF_YT_MAX_DEPTH deep:
 *     "nesting deeper than 16 levels";
 *   - a YAML syntax or encoding error: "YAML syntax error: <libyaml's
 *     problem> (<context> at line N)".
 * Only a syntax error stops the reader; after the others it goes on and
 * hands out a tree (with a CF_YT_BAD node where something was refused), so
 * a loader can report every problem of a file in one run.
 *
 * Duplicate map keys are not errors here (the wording is the caller's: a
 * "duplicate state" or a "key given twice"): every repeated scalar key is
 * marked with dup_of, and the lookups below see only the first.
 */
#ifndef CF_YAMLTREE_H
#define CF_YAMLTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "diag.h"

/* The deepest nesting of mappings and sequences read (the root mapping is
 * level 1).  The deepest legitimate file is a workflow at 8 (root, states,
 * a state, on, an event, data, a field, its values); calendars need 4 and
 * the config 3.  16 leaves the languages room to grow and still keeps a
 * hostile file (10000 '[') to one error and a fixed-size stack. */
#define CF_YT_MAX_DEPTH 16

typedef enum {
    CF_YT_SCALAR,
    CF_YT_MAP,
    CF_YT_SEQ,
    CF_YT_BAD,     /* refused while reading (an alias, too deep): reported */
} cf_yt_kind_t;

typedef struct cf_yt_node cf_yt_node_t;
struct cf_yt_node {
    cf_yt_kind_t kind;
    bool plain;                   /* a scalar written without quotes */
    uint32_t line, col;           /* 1-based; col counts characters */
    const char *s;                /* scalar text, NUL-terminated, may hold
                                     NULs (len is the truth); "" otherwise */
    size_t len;
    size_t n;                     /* children; a map's are key, value, key,
                                     value... so n is twice its pairs */
    const cf_yt_node_t *first;    /* first child */
    const cf_yt_node_t *next;     /* next sibling */
    const cf_yt_node_t *dup_of;   /* a map key repeating an earlier scalar key
                                     of the same map: that first one */
};

typedef struct cf_yt cf_yt_t;

/* Read buf[0..len) (NULL reads as empty) into a tree.  file names the
 * diagnostics (NULL: "<buffer>"); each problem is appended to *reterr, which
 * must not be NULL.
 *
 * 0            *ret is a new tree (free with cf_yt_destroy).  It may hold
 *              refused parts: cf_yt_errors says how many problems were
 *              reported, and the caller must count them as its own.
 * CF_EBADREQ   a YAML syntax (or encoding) error, reported with the tabs
 *              found before it; no tree.
 * CF_EINTERNAL out of memory (some diagnostics may be missing); no tree. */
int cf_yt_parse(const char *file, const char *buf, size_t len, cf_yt_t **ret,
                cf_diags_t *reterr);

/* Free a tree and every node; accepts NULL and sets *t_p to NULL. */
void cf_yt_destroy(cf_yt_t **t_p);

/* The root node, or NULL when the stream holds no document (an empty file,
 * or only comments; a lone "---" is a document with an empty plain scalar).
 * Every node is valid until cf_yt_destroy. */
const cf_yt_node_t *cf_yt_root(const cf_yt_t *t);

/* How many problems cf_yt_parse reported for this tree. */
size_t cf_yt_errors(const cf_yt_t *t);

/* n is a scalar whose text is exactly s. */
bool cf_yt_eq(const cf_yt_node_t *n, const char *s);

/* The value under key in map (its first occurrence), or NULL when map is not
 * a mapping or has no such key. */
const cf_yt_node_t *cf_yt_get(const cf_yt_node_t *map, const char *key);

/* The key node whose value is v in map; map itself when v is not one of its
 * values (so a message still has a place). */
const cf_yt_node_t *cf_yt_key_of(const cf_yt_node_t *map, const cf_yt_node_t *v);

/* Each key k and value v of map (nothing when map is not a mapping),
 * duplicates included: skip those with k->dup_of. */
#define CF_YT_EACH_PAIR(map, k, v)                                             \
    for (const cf_yt_node_t *k = (map)->kind == CF_YT_MAP ? (map)->first : NULL, \
                            *v = k ? k->next : NULL;                           \
         k && v; k = v->next, v = k ? k->next : NULL)

/* Each item it of seq (nothing when seq is not a sequence). */
#define CF_YT_EACH_ITEM(seq, it)                                               \
    for (const cf_yt_node_t *it = (seq)->kind == CF_YT_SEQ ? (seq)->first : NULL; it; \
         it = it->next)

#endif

/* yamltree.c: YAML text to a tree of nodes (see yamltree.h).
 *
 * Design.  Two passes over the buffer:
 *
 *   1. A scan of the raw bytes finds the first tab in each line's
 *      indentation.  libyaml's own message for one ("found character that
 *      cannot start any token") helps nobody, so tabs are named here, and a
 *      libyaml error on a line with such a tab is not reported again.
 *   2. libyaml's event parser; each scalar / mapping-start / sequence-start
 *      becomes a node appended to the innermost open collection, kept on a
 *      fixed stack of CF_YT_MAX_DEPTH.  A collection past that depth becomes
 *      one CF_YT_BAD node and its events are skipped (counted, not stacked),
 *      so 10000 '[' cost one error and no recursion.  When a mapping ends,
 *      its repeated scalar keys are marked (dup_of).
 *
 * The event API rather than libyaml's document API: the document loader
 * resolves aliases into shared nodes and has no depth limit; with events
 * both are refused before anything is built.  Rejected too: one reader per
 * file format (there were three, with two depth limits and three sets of
 * messages, and a fix reached only one of them).
 *
 * Diagnostics come out in file order: a tab is reported when the parser
 * passes its place, so a loader that keeps only the first problem (the
 * daemon's config) keeps the first in the file.
 *
 * Positions are 1-based and count characters as libyaml does (a UTF-8
 * sequence is one column, a leading byte-order mark is not counted), so
 * positions computed here from byte offsets agree with libyaml's marks.
 *
 * Memory: every node and string lives in the tree's arena.  Out of memory -
 * from the arena, from libyaml (YAML_MEMORY_ERROR) or from the diagnostics
 * list - ends the read with CF_EINTERNAL through one flag, c->oom, checked
 * after every step of the loop; nothing is half-handed out.
 */
#include "yamltree.h"
#include "arena.h"
#include "cf_err.h"

#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct cf_yt {
    cf_arena_t arena;
    const cf_yt_node_t *root;
    size_t nerr;
};

typedef struct {
    uint32_t line, col;
} s_pos_t;

typedef struct {
    cf_yt_node_t *node;
    cf_yt_node_t *last;     /* its last child, for appending */
} s_open_t;

typedef struct {
    const char *file;
    const char *buf;
    size_t len;
    cf_diags_t *diags;
    cf_yt_t *t;
    bool oom;
    s_pos_t *tabs;          /* first tab of each line's indentation, in order */
    size_t ntabs;
    size_t tabs_reported;   /* tabs[0..tabs_reported) are in diags */
} s_ctx_t;

static const char s_bom[] = "\xef\xbb\xbf";

/* ----------------------------------------------------------- reporting --- */

__attribute__((format(printf, 4, 5)))
static void s_add(s_ctx_t *c, uint32_t line, uint32_t col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->t->nerr++;
    if (cf_diag_add(c->diags, c->file, line, col, "%s", msg) != 0)
        c->oom = true;
}

/* Report the tabs found at or before line:col that are not reported yet. */
static void s_flush_tabs(s_ctx_t *c, uint32_t line, uint32_t col)
{
    while (c->tabs_reported < c->ntabs) {
        const s_pos_t *p = &c->tabs[c->tabs_reported];
        if (p->line > line || (p->line == line && p->col > col))
            break;
        s_add(c, p->line, p->col, "tab character; indent with spaces");
        c->tabs_reported++;
    }
}

/* A problem found while parsing, at line:col, after the tabs before it. */
#define s_report(c, line, col, ...)                                            \
    do {                                                                       \
        s_flush_tabs((c), (line), (col));                                      \
        s_add((c), (line), (col), __VA_ARGS__);                                \
    } while (0)

/* ----------------------------------------------------------- positions --- */

static size_t s_bom_len(const s_ctx_t *c)
{
    return c->len >= 3 && memcmp(c->buf, s_bom, 3) == 0 ? 3 : 0;
}

/* Line and column of byte offset off (off <= len). */
static s_pos_t s_position(const s_ctx_t *c, size_t off)
{
    s_pos_t p = {1, 1};
    for (size_t i = off >= s_bom_len(c) ? s_bom_len(c) : 0; i < off; i++) {
        if (c->buf[i] == '\n') {
            p.line++;
            p.col = 1;
        } else if (((unsigned char)c->buf[i] & 0xc0) != 0x80) {
            p.col++;
        }
    }
    return p;
}

/* The byte at line:col, or 0 past the end. */
static char s_char_at(const s_ctx_t *c, uint32_t line, uint32_t col)
{
    size_t i = s_bom_len(c);
    for (uint32_t l = 1; l < line && i < c->len; i++)
        if (c->buf[i] == '\n')
            l++;
    for (uint32_t k = 1; k < col && i < c->len && c->buf[i] != '\n'; k++)
        do
            i++;
        while (i < c->len && ((unsigned char)c->buf[i] & 0xc0) == 0x80);
    return i < c->len ? c->buf[i] : 0;
}

/* ---------------------------------------------------------------- tabs --- */

/* Pass 1: the first tab in each line's indentation, into c->tabs. */
static void s_scan_tabs(s_ctx_t *c)
{
    for (int pass = 0; pass < 2; pass++) {
        size_t n = 0;
        uint32_t line = 1, col = 1;
        bool indent = true;
        for (size_t i = s_bom_len(c); i < c->len; i++) {
            char ch = c->buf[i];
            if (ch == '\n') {
                line++;
                col = 0;
                indent = true;
            } else if (indent && ch == '\t') {
                if (pass == 1)
                    c->tabs[n] = (s_pos_t){line, col};
                n++;
                indent = false;   /* the line's first only */
            } else if (ch != ' ' && ch != '\r') {
                indent = false;
            }
            col++;   /* indentation is ASCII: bytes are characters here */
        }
        if (pass == 0) {
            if (n == 0)
                return;
            if (!(c->tabs = cf_arena_alloc(&c->t->arena, n * sizeof *c->tabs))) {
                c->oom = true;
                return;
            }
        }
        c->ntabs = n;
    }
}

static bool s_tab_line(const s_ctx_t *c, uint32_t line)
{
    size_t lo = 0, hi = c->ntabs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (c->tabs[mid].line == line)
            return true;
        if (c->tabs[mid].line < line)
            lo = mid + 1;
        else
            hi = mid;
    }
    return false;
}

/* libyaml failed: out of memory, or a syntax error to report. */
static void s_yaml_error(s_ctx_t *c, const yaml_parser_t *p)
{
    if (p->error == YAML_MEMORY_ERROR) {
        c->oom = true;
        return;
    }
    s_pos_t at;
    if (p->error == YAML_READER_ERROR) /* a byte offset, not a mark */
        at = s_position(c, p->problem_offset < c->len ? p->problem_offset : c->len);
    else
        at = (s_pos_t){(uint32_t)p->problem_mark.line + 1,
                       (uint32_t)p->problem_mark.column + 1};
    s_flush_tabs(c, at.line, UINT32_MAX);
    if (s_tab_line(c, at.line))
        return; /* the tab was the trouble, and has been named */
    if (p->error != YAML_READER_ERROR && s_char_at(c, at.line, at.col) == '\t') {
        s_add(c, at.line, at.col, "tab character; indent with spaces");
        return;
    }
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->context)
        s_add(c, at.line, at.col, "YAML syntax error: %s (%s at line %u)", problem,
              p->context, (unsigned)p->context_mark.line + 1);
    else
        s_add(c, at.line, at.col, "YAML syntax error: %s", problem);
}

/* ---------------------------------------------------------- duplicates --- */

typedef struct {
    cf_yt_node_t *key;
    size_t idx;             /* order in the map */
} s_key_t;

static bool s_same_text(const cf_yt_node_t *a, const cf_yt_node_t *b)
{
    return a->len == b->len && memcmp(a->s, b->s, a->len) == 0;
}

static int s_key_cmp(const void *x, const void *y)
{
    const s_key_t *a = x, *b = y;
    size_t n = a->key->len < b->key->len ? a->key->len : b->key->len;
    int r = memcmp(a->key->s, b->key->s, n);
    if (r)
        return r;
    if (a->key->len != b->key->len)
        return a->key->len < b->key->len ? -1 : 1;
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Mark each scalar key of map that repeats an earlier one.  Small maps
 * compare every pair; big ones sort (so a hostile 100k-key map stays
 * n log n).  The nodes are this tree's own, so the casts are safe. */
static void s_mark_dups(s_ctx_t *c, cf_yt_node_t *map)
{
    size_t npairs = map->n / 2;
    if (npairs < 8) {
        for (const cf_yt_node_t *k = map->first; k && k->next; k = k->next->next) {
            if (k->kind != CF_YT_SCALAR)
                continue;
            for (const cf_yt_node_t *e = map->first; e != k; e = e->next->next)
                if (e->kind == CF_YT_SCALAR && s_same_text(e, k)) {
                    ((cf_yt_node_t *)k)->dup_of = e;
                    break;
                }
        }
        return;
    }
    s_key_t *keys = malloc(npairs * sizeof *keys);
    if (!keys) {
        c->oom = true;
        return;
    }
    size_t nk = 0, idx = 0;
    for (const cf_yt_node_t *k = map->first; k && k->next; k = k->next->next, idx++)
        if (k->kind == CF_YT_SCALAR)
            keys[nk++] = (s_key_t){(cf_yt_node_t *)k, idx};
    qsort(keys, nk, sizeof *keys, s_key_cmp);
    for (size_t i = 1; i < nk; i++)
        if (s_same_text(keys[i].key, keys[i - 1].key))
            keys[i].key->dup_of = keys[i - 1].key->dup_of ? keys[i - 1].key->dup_of
                                                          : keys[i - 1].key;
    free(keys);
}

/* ---------------------------------------------------------------- read --- */

static cf_yt_node_t *s_node_new(s_ctx_t *c, cf_yt_kind_t kind, const yaml_mark_t *m)
{
    cf_yt_node_t *n = cf_arena_alloc(&c->t->arena, sizeof *n);
    if (!n) {
        c->oom = true;
        return NULL;
    }
    n->kind = kind;
    n->line = (uint32_t)m->line + 1;
    n->col = (uint32_t)m->column + 1;
    n->s = "";
    return n;
}

/* Pass 2: the event loop.  false on a syntax error (reported) or when out
 * of memory (c->oom). */
static bool s_read(s_ctx_t *c, yaml_parser_t *parser, yaml_event_t *ev, bool *ev_live)
{
    s_open_t stack[CF_YT_MAX_DEPTH];
    size_t depth = 0, skip = 0;
    int docs = 0;

    for (;;) {
        if (!yaml_parser_parse(parser, ev)) {
            s_yaml_error(c, parser);
            return false;
        }
        *ev_live = true;
        const yaml_event_t *e = ev;
        const yaml_mark_t *m = &e->start_mark;
        const uint32_t line = (uint32_t)m->line + 1, col = (uint32_t)m->column + 1;
        cf_yt_node_t *n = NULL;
        bool open = false, done = false;
        const unsigned char *anchor = NULL, *tag = NULL;

        switch (e->type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                s_report(c, line, col, "only one YAML document per file");
                done = true;
            }
            break;
        case YAML_ALIAS_EVENT:
            if (skip)
                break;
            s_report(c, line, col, "anchors and aliases are not supported");
            n = s_node_new(c, CF_YT_BAD, m);
            break;
        case YAML_SCALAR_EVENT:
            if (skip)
                break;
            anchor = e->data.scalar.anchor;
            tag = e->data.scalar.tag;
            if (!(n = s_node_new(c, CF_YT_SCALAR, m)))
                break;
            n->s = cf_arena_strndup(&c->t->arena, (const char *)e->data.scalar.value,
                                    e->data.scalar.length);
            if (!n->s)
                c->oom = true;
            n->len = e->data.scalar.length;
            n->plain = e->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (skip) {
                skip++;
                break;
            }
            if (e->type == YAML_MAPPING_START_EVENT) {
                anchor = e->data.mapping_start.anchor;
                tag = e->data.mapping_start.tag;
            } else {
                anchor = e->data.sequence_start.anchor;
                tag = e->data.sequence_start.tag;
            }
            if (depth == CF_YT_MAX_DEPTH) {
                s_report(c, line, col, "nesting deeper than %d levels", CF_YT_MAX_DEPTH);
                n = s_node_new(c, CF_YT_BAD, m);
                skip = 1;
                anchor = tag = NULL;
                break;
            }
            n = s_node_new(c, e->type == YAML_MAPPING_START_EVENT ? CF_YT_MAP : CF_YT_SEQ, m);
            open = true;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (skip) {
                skip--;
            } else if (depth > 0) {
                if (e->type == YAML_MAPPING_END_EVENT)
                    s_mark_dups(c, stack[depth - 1].node);
                depth--;
            }
            break;
        default:
            break;
        }
        if (anchor)
            s_report(c, line, col, "anchors and aliases are not supported");
        if (tag)
            s_report(c, line, col, "tags are not supported");
        if (n) {
            if (depth > 0) {
                s_open_t *parent = &stack[depth - 1];
                if (parent->last)
                    parent->last->next = n;
                else
                    parent->node->first = n;
                parent->last = n;
                parent->node->n++;
            } else if (!c->t->root) {
                c->t->root = n;
            }
            if (open)
                stack[depth++] = (s_open_t){n, NULL};
        }
        yaml_event_delete(ev);
        *ev_live = false;
        if (c->oom)
            return false;
        if (done)
            return true;
    }
}

int cf_yt_parse(const char *file, const char *buf, size_t len, cf_yt_t **ret,
                cf_diags_t *reterr)
{
    assert(ret && reterr);
    cf_yt_t *t = calloc(1, sizeof *t);
    if (!t)
        return CF_EINTERNAL;
    s_ctx_t c = {
        .file = file ? file : "<buffer>",
        .buf = buf ? buf : "",
        .len = buf ? len : 0,
        .diags = reterr,
        .t = t,
    };
    yaml_parser_t parser;
    yaml_event_t ev;
    bool ev_live = false, ok = false;

    s_scan_tabs(&c);
    if (c.oom)
        goto out_tree;
    if (!yaml_parser_initialize(&parser)) {
        c.oom = true;
        goto out_tree;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)c.buf, c.len);
    ok = s_read(&c, &parser, &ev, &ev_live);
    if (!c.oom)
        s_flush_tabs(&c, UINT32_MAX, UINT32_MAX);
    if (ev_live)
        yaml_event_delete(&ev);
    yaml_parser_delete(&parser);
out_tree:
    if (c.oom || !ok) {
        cf_yt_destroy(&t);
        return c.oom ? CF_EINTERNAL : CF_EBADREQ;
    }
    *ret = t;
    return 0;
}

void cf_yt_destroy(cf_yt_t **t_p)
{
    if (!t_p || !*t_p)
        return;
    cf_arena_free(&(*t_p)->arena);
    free(*t_p);
    *t_p = NULL;
}

/* ------------------------------------------------------------- queries --- */

const cf_yt_node_t *cf_yt_root(const cf_yt_t *t)
{
    return t->root;
}

size_t cf_yt_errors(const cf_yt_t *t)
{
    return t->nerr;
}

bool cf_yt_eq(const cf_yt_node_t *n, const char *s)
{
    return n->kind == CF_YT_SCALAR && strlen(s) == n->len && memcmp(n->s, s, n->len) == 0;
}

const cf_yt_node_t *cf_yt_get(const cf_yt_node_t *map, const char *key)
{
    CF_YT_EACH_PAIR(map, k, v)
        if (!k->dup_of && cf_yt_eq(k, key))
            return v;
    return NULL;
}

const cf_yt_node_t *cf_yt_key_of(const cf_yt_node_t *map, const cf_yt_node_t *v)
{
    CF_YT_EACH_PAIR(map, k, x)
        if (x == v)
            return k;
    return map;
}

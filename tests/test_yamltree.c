/* test_yamltree.c: the one YAML reader (engine/core/yamltree.h) - the tree
 * it builds, each refusal at its exact place with its message, duplicate
 * keys, and every out-of-memory path (through the arena's fault injection)
 * ending in CF_EINTERNAL with nothing leaked. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "cf_err.h"
#include "cf_test.h"
#include "yamltree.h"

/* Parse text; the return code, the tree in *t (NULL unless 0). */
static int s_parse(const char *text, size_t len, cf_yt_t **t, cf_diags_t *d)
{
    *t = NULL;
    int rc = cf_yt_parse("t.yaml", text, len, t, d);
    if (rc == 0)
        CF_ASSERT(*t != NULL);
    else
        CF_ASSERT(*t == NULL);
    return rc;
}

/* Expect one problem: rc, its count, and the first at line:col with msg. */
static void s_expect(const char *text, int want_rc, size_t nerr, uint32_t line, uint32_t col,
                     const char *msg)
{
    cf_yt_t *t;
    cf_diags_t d = {0};
    int rc = s_parse(text, strlen(text), &t, &d);
    if (rc != want_rc || d.n != nerr || d.v[0].line != line || d.v[0].col != col ||
        !strstr(d.v[0].message, msg)) {
        fprintf(stderr, "text: %s\n", text);
        cf_diags_print(&d, stderr);
    }
    CF_ASSERT_INT_EQ(rc, want_rc);
    CF_ASSERT_INT_EQ(d.n, nerr);
    if (t)
        CF_ASSERT_INT_EQ(cf_yt_errors(t), nerr);
    CF_ASSERT_STR_EQ(d.v[0].file, "t.yaml");
    CF_ASSERT_INT_EQ(d.v[0].line, line);
    CF_ASSERT_INT_EQ(d.v[0].col, col);
    CF_ASSERT_STR_HAS(d.v[0].message, msg);
    cf_yt_destroy(&t);
    cf_diags_clear(&d);
}

/* "a: " and depth flow lists around x, so the root map is level 1 and the
 * innermost list level depth + 1. */
static char *s_nested(size_t depth, size_t *len)
{
    char *buf = malloc(2 * depth + 8);
    CF_ASSERT(buf != NULL);
    size_t n = 0;
    memcpy(buf, "a: ", 3);
    n = 3;
    for (size_t i = 0; i < depth; i++)
        buf[n++] = '[';
    buf[n++] = 'x';
    for (size_t i = 0; i < depth; i++)
        buf[n++] = ']';
    buf[n++] = '\n';
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ---------------------------------------------------------------- tree --- */

static void test_tree_shape(void)
{
    static const char text[] =
        "name: claimflow\n"
        "list:\n"
        "  - one\n"
        "  - 'two'\n"
        "map: {k: v, e: }\n";
    cf_yt_t *t;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(s_parse(text, strlen(text), &t, &d), 0);
    CF_ASSERT_INT_EQ(d.n, 0);
    CF_ASSERT_INT_EQ(cf_yt_errors(t), 0);
    const cf_yt_node_t *root = cf_yt_root(t);
    CF_ASSERT(root != NULL);
    CF_ASSERT_INT_EQ(root->kind, CF_YT_MAP);
    CF_ASSERT_INT_EQ(root->n, 6);
    CF_ASSERT_INT_EQ(root->line, 1);
    CF_ASSERT_INT_EQ(root->col, 1);

    const cf_yt_node_t *name = cf_yt_get(root, "name");
    CF_ASSERT(name != NULL);
    CF_ASSERT_INT_EQ(name->kind, CF_YT_SCALAR);
    CF_ASSERT_STR_EQ(name->s, "claimflow");
    CF_ASSERT_INT_EQ(name->len, 9);
    CF_ASSERT(name->plain);
    CF_ASSERT_INT_EQ(name->line, 1);
    CF_ASSERT_INT_EQ(name->col, 7);
    CF_ASSERT(cf_yt_eq(name, "claimflow"));
    CF_ASSERT(!cf_yt_eq(name, "claimflo"));
    CF_ASSERT(!cf_yt_eq(root, ""));
    const cf_yt_node_t *key = cf_yt_key_of(root, name);
    CF_ASSERT(cf_yt_eq(key, "name"));
    CF_ASSERT(cf_yt_key_of(root, root) == root);

    const cf_yt_node_t *list = cf_yt_get(root, "list");
    CF_ASSERT_INT_EQ(list->kind, CF_YT_SEQ);
    CF_ASSERT_INT_EQ(list->n, 2);
    CF_ASSERT_INT_EQ(list->line, 3);
    CF_ASSERT_INT_EQ(list->col, 3);
    const char *want[] = {"one", "two"};
    size_t i = 0;
    CF_YT_EACH_ITEM(list, it) {
        CF_ASSERT(i < 2);
        CF_ASSERT(cf_yt_eq(it, want[i]));
        CF_ASSERT_INT_EQ(it->line, 3 + i);
        CF_ASSERT(it->plain == (i == 0));
        i++;
    }
    CF_ASSERT_INT_EQ(i, 2);
    CF_ASSERT(cf_yt_get(list, "one") == NULL);   /* not a mapping */

    const cf_yt_node_t *map = cf_yt_get(root, "map");
    CF_ASSERT_INT_EQ(map->kind, CF_YT_MAP);
    const cf_yt_node_t *e = cf_yt_get(map, "e");
    CF_ASSERT(e != NULL && e->kind == CF_YT_SCALAR && e->plain && e->len == 0);
    CF_ASSERT_STR_EQ(e->s, "");
    CF_ASSERT(cf_yt_get(map, "x") == NULL);
    i = 0;
    CF_YT_EACH_PAIR(map, k, v) {
        CF_ASSERT(cf_yt_eq(k, i == 0 ? "k" : "e"));
        CF_ASSERT(k->dup_of == NULL);
        CF_ASSERT(v == (i == 0 ? cf_yt_get(map, "k") : e));
        i++;
    }
    CF_ASSERT_INT_EQ(i, 2);
    CF_YT_EACH_ITEM(map, it)
        CF_ASSERT(!"a mapping has no items");
    cf_yt_destroy(&t);
    CF_ASSERT(t == NULL);
    cf_yt_destroy(&t);
    cf_yt_destroy(NULL);
    cf_diags_clear(&d);
}

static void test_empty(void)
{
    static const char *const texts[] = {"", "# only a comment\n\n", "\n\n\n"};
    for (size_t i = 0; i < 3; i++) {
        cf_yt_t *t;
        cf_diags_t d = {0};
        CF_ASSERT_INT_EQ(s_parse(texts[i], strlen(texts[i]), &t, &d), 0);
        CF_ASSERT_INT_EQ(d.n, 0);
        CF_ASSERT(cf_yt_root(t) == NULL);
        cf_yt_destroy(&t);
    }
    /* a NULL buffer reads as empty, and names "<buffer>" */
    cf_yt_t *t = NULL;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(cf_yt_parse(NULL, NULL, 5, &t, &d), 0);
    CF_ASSERT(cf_yt_root(t) == NULL);
    cf_yt_destroy(&t);
    /* a lone "---" is a document holding an empty plain scalar */
    CF_ASSERT_INT_EQ(s_parse("---\n", 4, &t, &d), 0);
    const cf_yt_node_t *root = cf_yt_root(t);
    CF_ASSERT(root != NULL && root->kind == CF_YT_SCALAR && root->plain && root->len == 0);
    cf_yt_destroy(&t);
    CF_ASSERT_INT_EQ(cf_yt_parse(NULL, "a: \"x", 5, &t, &d), CF_EBADREQ);
    CF_ASSERT_STR_EQ(d.v[0].file, "<buffer>");
    cf_diags_clear(&d);
}

static void test_scalar_with_nul(void)
{
    static const char text[] = "a: \"x\\0y\"\nb: \"\\0\"\n";
    cf_yt_t *t;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(s_parse(text, strlen(text), &t, &d), 0);
    const cf_yt_node_t *a = cf_yt_get(cf_yt_root(t), "a");
    CF_ASSERT_INT_EQ(a->len, 3);
    CF_ASSERT_INT_EQ(memcmp(a->s, "x\0y", 4), 0);   /* and NUL-terminated */
    CF_ASSERT(!a->plain);
    CF_ASSERT(!cf_yt_eq(a, "x"));
    const cf_yt_node_t *b = cf_yt_get(cf_yt_root(t), "b");
    CF_ASSERT_INT_EQ(b->len, 1);
    CF_ASSERT(!cf_yt_eq(b, ""));
    cf_yt_destroy(&t);

    /* raw NUL bytes in the buffer are not YAML: refused, not truncated */
    static const char raw[] = "a: x\0y\n";
    CF_ASSERT_INT_EQ(s_parse(raw, sizeof raw - 1, &t, &d), CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_INT_EQ(d.v[0].line, 1);
    CF_ASSERT_INT_EQ(d.v[0].col, 5);
    CF_ASSERT_STR_HAS(d.v[0].message, "YAML syntax error: control characters are not allowed");
    cf_diags_clear(&d);
}

/* ----------------------------------------------------------- refusals --- */

static void test_depth_limit(void)
{
    /* at the limit: the root map and 15 lists */
    size_t len;
    char *buf = s_nested(CF_YT_MAX_DEPTH - 1, &len);
    cf_yt_t *t;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(s_parse(buf, len, &t, &d), 0);
    CF_ASSERT_INT_EQ(d.n, 0);
    const cf_yt_node_t *n = cf_yt_get(cf_yt_root(t), "a");
    for (int level = 2; level <= CF_YT_MAX_DEPTH; level++) {
        CF_ASSERT_INT_EQ(n->kind, CF_YT_SEQ);
        CF_ASSERT_INT_EQ(n->n, 1);
        n = n->first;
    }
    CF_ASSERT(cf_yt_eq(n, "x"));
    cf_yt_destroy(&t);
    free(buf);

    /* one past it: the 16th '[' (column 19) is level 17, a CF_YT_BAD node */
    buf = s_nested(CF_YT_MAX_DEPTH, &len);
    CF_ASSERT_INT_EQ(s_parse(buf, len, &t, &d), 0);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_INT_EQ(cf_yt_errors(t), 1);
    CF_ASSERT_INT_EQ(d.v[0].line, 1);
    CF_ASSERT_INT_EQ(d.v[0].col, 19);
    CF_ASSERT_STR_EQ(d.v[0].message, "nesting deeper than 16 levels");
    n = cf_yt_get(cf_yt_root(t), "a");
    for (int level = 2; level <= CF_YT_MAX_DEPTH; level++)
        n = n->first;
    CF_ASSERT_INT_EQ(n->kind, CF_YT_BAD);
    CF_ASSERT_INT_EQ(n->col, 19);
    cf_yt_destroy(&t);
    cf_diags_clear(&d);
    free(buf);

    /* 10000 deep: still one error, and the rest of the file is read */
    buf = s_nested(10000, &len);
    char *more = malloc(len + 16);
    memcpy(more, buf, len);
    memcpy(more + len, "b: &x 1\n", 8);
    CF_ASSERT_INT_EQ(s_parse(more, len + 8, &t, &d), 0);
    CF_ASSERT_INT_EQ(d.n, 2);
    CF_ASSERT_STR_EQ(d.v[0].message, "nesting deeper than 16 levels");
    CF_ASSERT_INT_EQ(d.v[1].line, 2);
    CF_ASSERT_STR_EQ(d.v[1].message, "anchors and aliases are not supported");
    CF_ASSERT(cf_yt_eq(cf_yt_get(cf_yt_root(t), "b"), "1"));
    cf_yt_destroy(&t);
    cf_diags_clear(&d);
    free(more);
    free(buf);
}

static void test_refusals(void)
{
    /* tabs in indentation, named, with the syntax error they cause left out */
    s_expect("a:\n\tb: 1\n", CF_EBADREQ, 1, 2, 1, "tab character; indent with spaces");
    s_expect("a:\n  \tb: 1\n", CF_EBADREQ, 1, 2, 3, "tab character; indent with spaces");
    /* a tab where libyaml wants a token, not in indentation */
    s_expect("- \tx\n", CF_EBADREQ, 1, 1, 3, "tab character; indent with spaces");
    /* a leading byte-order mark is not a column */
    s_expect("\xef\xbb\xbf" "- \tx\n", CF_EBADREQ, 1, 1, 3, "tab character");
    s_expect("\xef\xbb\xbf" "\tx: 1\n", CF_EBADREQ, 1, 1, 1, "tab character");
    /* tabs that separate, inside a value or in a comment are YAML */
    s_expect("a: \"x\ty\"  # \t\nb:\t[1,\t2]\nc: [\n", CF_EBADREQ, 1, 4, 1,
             "YAML syntax error");
    /* every line's tab, and nothing else, even when the parser stopped early */
    {
        cf_yt_t *t;
        cf_diags_t d = {0};
        static const char text[] = "a:\n\tb: 1\nc:\n\t\td: 2\n";
        CF_ASSERT_INT_EQ(s_parse(text, strlen(text), &t, &d), CF_EBADREQ);
        CF_ASSERT_INT_EQ(d.n, 2);
        CF_ASSERT_INT_EQ(d.v[0].line, 2);
        CF_ASSERT_INT_EQ(d.v[1].line, 4);
        CF_ASSERT_INT_EQ(d.v[1].col, 1);
        cf_diags_clear(&d);
    }

    s_expect("a: &x 1\n", 0, 1, 1, 4, "anchors and aliases are not supported");
    s_expect("a: 1\nb: *x\n", 0, 1, 2, 4, "anchors and aliases are not supported");
    s_expect("a: &x 1\nb: *x\n", 0, 2, 1, 4, "anchors and aliases are not supported");
    s_expect("a: !!int 1\n", 0, 1, 1, 4, "tags are not supported");
    s_expect("a: !x {b: 1}\n", 0, 1, 1, 4, "tags are not supported");
    s_expect("a: 1\n---\nb: 2\n", 0, 1, 2, 1, "only one YAML document per file");
    s_expect("---\na: 1\n...\n---\nb: 2\n", 0, 1, 4, 1, "only one YAML document per file");

    /* an alias is a CF_YT_BAD node; the anchored node is kept */
    cf_yt_t *t;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(s_parse("a: &x 1\nb: *x\n", 14, &t, &d), 0);
    CF_ASSERT_INT_EQ(cf_yt_get(cf_yt_root(t), "a")->kind, CF_YT_SCALAR);
    CF_ASSERT_INT_EQ(cf_yt_get(cf_yt_root(t), "b")->kind, CF_YT_BAD);
    cf_yt_destroy(&t);
    cf_diags_clear(&d);
    /* a second document: the first is the tree */
    CF_ASSERT_INT_EQ(s_parse("a: 1\n---\nb: 2\n", 14, &t, &d), 0);
    CF_ASSERT(cf_yt_get(cf_yt_root(t), "a") != NULL);
    CF_ASSERT(cf_yt_get(cf_yt_root(t), "b") == NULL);
    cf_yt_destroy(&t);
    cf_diags_clear(&d);
}

static void test_syntax_errors(void)
{
    s_expect("a: [1, 2\n", CF_EBADREQ, 1, 2, 1,
             "YAML syntax error: did not find expected ',' or ']' "
             "(while parsing a flow sequence at line 1)");
    s_expect("a: {b: 1\n", CF_EBADREQ, 1, 2, 1, "YAML syntax error");
    s_expect("a: b\n c: d\n", CF_EBADREQ, 1, 2, 3,
             "YAML syntax error: mapping values are not allowed in this context");
    s_expect("a: 'x\n", CF_EBADREQ, 1, 2, 1, "YAML syntax error");
    /* an encoding error: positions count characters (the 'æ' is one) */
    s_expect("b:\n  dk: \"\xc3\xa6\xff\xfe\"\n", CF_EBADREQ, 1, 2, 9,
             "YAML syntax error: invalid leading UTF-8 octet");
    /* the problems before a syntax error are reported, in file order */
    cf_yt_t *t;
    cf_diags_t d = {0};
    static const char text[] = "a: &x 1\nb:\n\tc: 2\nd: !t 3\ne: [\n";
    CF_ASSERT_INT_EQ(s_parse(text, strlen(text), &t, &d), CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 2);
    CF_ASSERT_INT_EQ(d.v[0].line, 1);
    CF_ASSERT_STR_HAS(d.v[0].message, "anchors");
    CF_ASSERT_INT_EQ(d.v[1].line, 3);
    CF_ASSERT_STR_HAS(d.v[1].message, "tab character");
    cf_diags_clear(&d);
}

/* --------------------------------------------------------- duplicates --- */

static void test_duplicate_keys(void)
{
    static const char text[] =
        "a: 1\n"
        "b: 2\n"
        "a: 3\n"
        "\"a\": 4\n"
        "[x]: 5\n"
        "[x]: 6\n"
        "small: {k: 1, k: 2}\n";
    cf_yt_t *t;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(s_parse(text, strlen(text), &t, &d), 0);
    CF_ASSERT_INT_EQ(d.n, 0);    /* not an error of the reader's */
    const cf_yt_node_t *root = cf_yt_root(t);
    const cf_yt_node_t *first = root->first;
    size_t ndup = 0;
    CF_YT_EACH_PAIR(root, k, v) {
        if (!k->dup_of)
            continue;
        ndup++;
        CF_ASSERT(k->dup_of == first);    /* always the first occurrence */
        CF_ASSERT(cf_yt_eq(k, "a"));
    }
    CF_ASSERT_INT_EQ(ndup, 2);
    /* lookups see the first only; non-scalar keys are never duplicates */
    CF_ASSERT(cf_yt_eq(cf_yt_get(root, "a"), "1"));
    const cf_yt_node_t *small = cf_yt_get(root, "small");
    CF_ASSERT(small->first->next->next->dup_of == small->first);
    CF_ASSERT(cf_yt_eq(cf_yt_get(small, "k"), "1"));
    cf_yt_destroy(&t);

    /* a big map (sorted, not compared pairwise): 1000 keys, each twice */
    size_t cap = 64 * 1024, n = 0;
    char *buf = malloc(cap);
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 1000; i++)
            n += (size_t)snprintf(buf + n, cap - n, "k%d: %d\n", (i * 7919) % 1000, round);
    CF_ASSERT_INT_EQ(s_parse(buf, n, &t, &d), 0);
    root = cf_yt_root(t);
    CF_ASSERT_INT_EQ(root->n, 4000);
    ndup = 0;
    CF_YT_EACH_PAIR(root, k, v) {
        if (!k->dup_of)
            continue;
        ndup++;
        CF_ASSERT(cf_yt_eq(k->dup_of, k->s));
        CF_ASSERT(k->dup_of->line < k->line);
        CF_ASSERT(k->dup_of->dup_of == NULL);
        CF_ASSERT(cf_yt_eq(cf_yt_get(root, k->s), "0"));
    }
    CF_ASSERT_INT_EQ(ndup, 1000);
    cf_yt_destroy(&t);
    free(buf);
    cf_diags_clear(&d);
}

/* ----------------------------------------------------- out of memory --- */

/* Fail the n-th arena allocation for n = 1, 2, ... until the parse succeeds:
 * each failure is CF_EINTERNAL with no tree, and (under ASan) no leak. */
static void test_out_of_memory(void)
{
    size_t len;
    char *deep = s_nested(40, &len);
    static const char base[] =
        "a: 1\nb: [x, y, {c: d}]\n\tbad: tab\ne: &x 1\nf: !t 2\n"
        "g: {k1: 1, k2: 2, k3: 3, k4: 4, k5: 5, k6: 6, k7: 7, k8: 8, k1: 9}\n";
    char *text = malloc(sizeof base + len);
    memcpy(text, base, sizeof base - 1);
    memcpy(text + sizeof base - 1, deep, len);    /* "a: [[...x...]]\n", a repeated key */
    size_t n = sizeof base - 1 + len;
    free(deep);
    /* the tab line makes it a syntax error; without it, a tree */
    for (int with_tab = 1; with_tab >= 0; with_tab--) {
        if (!with_tab)
            memcpy(strstr(text, "\tbad"), "#", 1);
        int want = with_tab ? CF_EBADREQ : 0;
        unsigned long k;
        int rc = CF_EINTERNAL;
        for (k = 1; k < 1000 && rc == CF_EINTERNAL; k++) {
            cf_yt_t *t = NULL;
            cf_diags_t d = {0};
            cf_arena_fail_after(k);
            rc = cf_yt_parse("oom.yaml", text, n, &t, &d);
            cf_arena_fail_after(0);
            if (rc == CF_EINTERNAL)
                CF_ASSERT(t == NULL);
            else
                CF_ASSERT_INT_EQ(rc, want);
            cf_yt_destroy(&t);
            cf_diags_clear(&d);
        }
        CF_ASSERT_INT_EQ(rc, want);
        CF_ASSERT(k > 10);      /* the failures did reach into the tree */
    }
    free(text);
}

int main(void)
{
    CF_RUN(test_tree_shape);
    CF_RUN(test_empty);
    CF_RUN(test_scalar_with_nul);
    CF_RUN(test_depth_limit);
    CF_RUN(test_refusals);
    CF_RUN(test_syntax_errors);
    CF_RUN(test_duplicate_keys);
    CF_RUN(test_out_of_memory);
    return cf_test_done();
}

/* workflow.c: the workflow language - YAML text in, an immutable cf_wf_t out.
 *
 * Loading is three passes over one file, and every pass reports every error
 * it finds and goes on, so one run names all of a file's problems:
 *
 *   1. read.  core's YAML reader (yamltree.h) builds a small tree of scalar /
 *      map / sequence nodes, each with its 1-based line and column; tabs in
 *      indentation, anchors, aliases, tags, nesting deeper than
 *      CF_YT_MAX_DEPTH and a second document are refused there, with the
 *      messages every YAML file of claimflow gets.  A YAML syntax error ends
 *      the load (the tree is partial, so checking it would only add noise).
 *   2. compile.  A walk of the tree checks each mapping's keys against a
 *      table (unknown keys; duplicates, which the reader marks, are reported
 *      here with what they name: "duplicate state 'a'"),
 *      each value's type, and builds the model: fields, states, events,
 *      autos, timers, flags.  State names are collected first, so `to:` can
 *      be resolved anywhere.
 *   3. graph.  One initial state; every state reachable from it (through
 *      `to`, `auto` and `any`; `$previous` returns somewhere already reached);
 *      no non-final state without a way out.
 *
 * Memory: the tree is the reader's, freed when loading ends, and so is a
 * scratch arena; the definition lives in its own arena, which cf_wf_destroy
 * frees in one go, so the model is plain structs with no ownership inside.
 * Out of memory (the reader's CF_EINTERNAL, an arena, a diagnostic) longjmps
 * back to cf_wf_load_buffer, which frees the tree and both arenas.
 */
#include "workflow.h"
#include "arena.h"
#include "cf_err.h"
#include "yamltree.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_MAX_NAME  64   /* bytes in any name */

/* ---------------------------------------------------------------- roles --- */

static const struct {
    unsigned bit;
    const char *name;
} s_roles[] = {
#define CF_XX(s, v, name) {(v), (name)},
    CF_ROLE_MAP(CF_XX)
#undef CF_XX
};
#define S_NROLES (sizeof s_roles / sizeof s_roles[0])

static const struct {
    unsigned bit;
    const char *name;
} s_guards[] = {
#define CF_XX(s, v, name) {(v), (name)},
    CF_GUARD_MAP(CF_XX)
#undef CF_XX
};
#define S_NGUARDS (sizeof s_guards / sizeof s_guards[0])

static const char *const s_ftypes[] = {
#define CF_XX(s, name) name,
    CF_FTYPE_MAP(CF_XX)
#undef CF_XX
};
#define S_NFTYPES (sizeof s_ftypes / sizeof s_ftypes[0])

unsigned cf_role_parse(const char *name, size_t len)
{
    for (size_t i = 0; i < S_NROLES; i++)
        if (strlen(s_roles[i].name) == len && memcmp(s_roles[i].name, name, len) == 0)
            return s_roles[i].bit;
    return 0;
}

const char *cf_role_name(unsigned role)
{
    for (size_t i = 0; i < S_NROLES; i++)
        if (s_roles[i].bit == role)
            return s_roles[i].name;
    return "?";
}

/* ---------------------------------------------------------------- arena --- */
/* cf_arena with the load's one out-of-memory path: a longjmp back to
 * cf_wf_load_buffer, so the compile passes need no error plumbing. */

typedef struct {
    cf_arena_t a;
    jmp_buf *oom;
} s_arena_t;

static void *s_alloc(s_arena_t *a, size_t n)
{
    void *r = cf_arena_alloc(&a->a, n);
    if (!r)
        longjmp(*a->oom, 1);
    return r;
}

static char *s_strndup(s_arena_t *a, const char *s, size_t len)
{
    char *r = cf_arena_strndup(&a->a, s, len);
    if (!r)
        longjmp(*a->oom, 1);
    return r;
}

/* The definition handed out: the public struct first, then its arena (which
 * holds the struct itself). */
typedef struct {
    cf_wf_t pub;
    cf_arena_t arena;
} s_wf_t;

/* --------------------------------------------------------------- context --- */

typedef struct {
    const char *name;
    int idx;
} s_name_idx_t;

typedef struct {
    const char *file;
    const char *buf;
    size_t len;
    cf_diags_t *diags;
    size_t nerr;
    int rc;
    jmp_buf oom;
    cf_yt_t *yt;          /* the file's tree */
    s_arena_t scratch;    /* freed when loading ends */
    s_arena_t out;        /* becomes the definition's */

    /* compile */
    s_wf_t *wf;
    cf_wf_field_t *fields;
    cf_wf_state_t *states;
    const cf_yt_node_t **state_keys;
    s_name_idx_t *state_order;  /* states sorted by name, for lookups */
    const char *flags[CF_WF_MAX_FLAGS];
    size_t nflags;
    bool flags_full;      /* the flag limit was reported */
    size_t nclaim;        /* fields of type claim */
} s_ctx_t;

/* Report one error at line:col (0 = no place).  Control bytes in names taken
 * from the file are shown as '?' so a message stays one printable line. */
__attribute__((format(printf, 4, 5)))
static void s_errat(s_ctx_t *c, uint32_t line, uint32_t col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    c->nerr++;
    if (cf_diag_add(c->diags, c->file, line, col, "%s", msg) != 0)
        longjmp(c->oom, 1);
}

#define s_err(c, node, ...) s_errat((c), (node)->line, (node)->col, __VA_ARGS__)

/* A scalar's text for a message: at most S_SHOW bytes of it. */
#define S_SHOW 64
#define S_Q(node) (int)((node)->len < S_SHOW ? (node)->len : S_SHOW), (node)->s

/* --------------------------------------------------------- tree helpers --- */

static bool s_is_null(const cf_yt_node_t *n)
{
    return n->kind == CF_YT_SCALAR && n->plain && n->len == 0;
}

/* A mapping (an empty value counts as an empty one); else reported. */
static bool s_want_map(s_ctx_t *c, const cf_yt_node_t *n, const char *what)
{
    if (n->kind == CF_YT_MAP || s_is_null(n))
        return true;
    if (n->kind != CF_YT_BAD)
        s_err(c, n, "%s must be a mapping", what);
    return false;
}

/* A list (an empty value counts as an empty one); else reported. */
static bool s_want_seq(s_ctx_t *c, const cf_yt_node_t *n, const char *what)
{
    if (n->kind == CF_YT_SEQ || s_is_null(n))
        return true;
    if (n->kind != CF_YT_BAD)
        s_err(c, n, "%s must be a list", what);
    return false;
}

/* A single non-empty value; else reported. */
static bool s_want_scalar(s_ctx_t *c, const cf_yt_node_t *n, const char *what)
{
    if (n->kind == CF_YT_SCALAR && !s_is_null(n))
        return true;
    if (n->kind == CF_YT_BAD)
        return false;
    if (n->kind == CF_YT_SCALAR)
        s_err(c, n, "%s must not be empty", what);
    else
        s_err(c, n, "%s must be a single value, not a %s", what,
              n->kind == CF_YT_MAP ? "mapping" : "list");
    return false;
}

static bool s_want_bool(s_ctx_t *c, const cf_yt_node_t *n, const char *what, bool *ret)
{
    if (n->kind == CF_YT_BAD)
        return false;
    if (n->kind == CF_YT_SCALAR && n->plain && (cf_yt_eq(n, "true") || cf_yt_eq(n, "false"))) {
        *ret = cf_yt_eq(n, "true");
        return true;
    }
    s_err(c, n, "%s must be true or false", what);
    return false;
}

/* A plain decimal integer in [lo, hi]; hi of S_INT_HUGE means no bound. */
#define S_INT_HUGE INT64_C(999999999999999999)
static bool s_want_int(s_ctx_t *c, const cf_yt_node_t *n, const char *what,
                       int64_t lo, int64_t hi, int64_t *ret)
{
    if (n->kind == CF_YT_BAD)
        return false;
    int64_t v = 0;
    bool ok = n->kind == CF_YT_SCALAR && n->plain && n->len > 0 && n->len <= 18;
    for (size_t i = 0; ok && i < n->len; i++) {
        if (n->s[i] < '0' || n->s[i] > '9')
            ok = false;
        else
            v = v * 10 + (n->s[i] - '0');
    }
    if (!ok || v < lo || v > hi) {
        if (hi >= S_INT_HUGE)
            s_err(c, n, "%s must be an integer >= %lld", what, (long long)lo);
        else
            s_err(c, n, "%s must be an integer from %lld to %lld", what,
                  (long long)lo, (long long)hi);
        return false;
    }
    *ret = v;
    return true;
}

typedef enum { S_IDENT, S_EVENT, S_FLAG } s_name_kind_t;

/* ident [a-z][a-z0-9_]*, event ident(.ident)*, flag [a-z][a-z0-9_.]* */
static bool s_name_ok(const cf_yt_node_t *n, s_name_kind_t kind)
{
    if (n->kind != CF_YT_SCALAR || n->len == 0 || n->len > S_MAX_NAME)
        return false;
    bool word_start = true;
    for (size_t i = 0; i < n->len; i++) {
        char ch = n->s[i];
        bool lower = ch >= 'a' && ch <= 'z';
        bool tail = lower || (ch >= '0' && ch <= '9') || ch == '_';
        if (word_start) {
            if (!lower)
                return false;
            word_start = false;
        } else if (ch == '.' && kind != S_IDENT) {
            word_start = kind == S_EVENT;
        } else if (!tail) {
            return false;
        }
    }
    return !word_start;
}

static const char *const s_name_rule[] = {
    [S_IDENT] = "lower-case letters, digits and '_', starting with a letter",
    [S_EVENT] = "lower-case words separated by '.', e.g. decision.approved",
    [S_FLAG] = "lower-case letters, digits, '_' and '.', starting with a letter",
};

/* Check a name; reported when bad (what: "state", "event", ...). */
static bool s_want_name(s_ctx_t *c, const cf_yt_node_t *n, s_name_kind_t kind, const char *what)
{
    if (n->kind == CF_YT_BAD)
        return false;
    if (s_name_ok(n, kind))
        return true;
    if (n->kind != CF_YT_SCALAR)
        s_err(c, n, "%s name must be a single value", what);
    else if (n->len > S_MAX_NAME)
        s_err(c, n, "%s name '%.*s...' is longer than %d bytes", what, S_Q(n), S_MAX_NAME);
    else
        s_err(c, n, "invalid %s name '%.*s' (%s)", what, S_Q(n), s_name_rule[kind]);
    return false;
}

/* Report the repeated keys of map (what: "state", "key", ...).  The reader
 * has marked them (dup_of), and every lookup sees the first only. */
static void s_dups(s_ctx_t *c, const cf_yt_node_t *map, const char *what)
{
    CF_YT_EACH_PAIR(map, k, v)
        if (k->dup_of)
            s_err(c, k, "duplicate %s '%.*s' (first at line %u)", what, S_Q(k),
                  (unsigned)k->dup_of->line);
}

/* Report keys of map that are not in allowed (NULL-terminated). */
static void s_keys(s_ctx_t *c, const cf_yt_node_t *map, const char *const *allowed,
                   const char *where)
{
    if (map->kind != CF_YT_MAP)
        return;
    for (const cf_yt_node_t *k = map->first; k && k->next; k = k->next->next) {
        if (k->kind == CF_YT_BAD || k->dup_of)
            continue;
        if (k->kind != CF_YT_SCALAR) {
            s_err(c, k, "keys in %s must be names, not a %s", where,
                  k->kind == CF_YT_MAP ? "mapping" : "list");
            continue;
        }
        bool known = false;
        char list[256] = "";
        size_t used = 0;
        for (size_t i = 0; allowed[i]; i++) {
            known = known || cf_yt_eq(k, allowed[i]);
            int w = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", allowed[i]);
            if (w > 0 && (size_t)w < sizeof list - used)
                used += (size_t)w;
        }
        if (!known)
            s_err(c, k, "unknown key '%.*s' in %s (expected: %s)", S_Q(k), where, list);
    }
}

/* ---------------------------------------------------------- 2. compile --- */

/* Index of the state named by scalar n (binary search), or -1. */
static int s_state_find_node(const s_ctx_t *c, const cf_yt_node_t *n)
{
    size_t lo = 0, hi = c->wf->pub.nstates;
    if (n->kind != CF_YT_SCALAR || memchr(n->s, '\0', n->len))
        return -1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const char *name = c->state_order[mid].name;
        int r = strncmp(name, n->s, n->len);
        if (r == 0 && name[n->len] != '\0')
            r = 1;
        if (r == 0)
            return c->state_order[mid].idx;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

static int s_order_cmp(const void *a, const void *b)
{
    return strcmp(((const s_name_idx_t *)a)->name, ((const s_name_idx_t *)b)->name);
}

static unsigned s_roles_of(s_ctx_t *c, const cf_yt_node_t *seq, const char *what)
{
    unsigned roles = 0;
    if (!s_want_seq(c, seq, what))
        return 0;
    CF_YT_EACH_ITEM(seq, it) {
        if (!s_want_scalar(c, it, "a role"))
            continue;
        unsigned r = cf_role_parse(it->s, it->len);
        if (!r)
            s_err(c, it, "unknown role '%.*s' (roles: member, handler, supervisor, "
                  "auditor, system)", S_Q(it));
        roles |= r;
    }
    return roles;
}

static unsigned s_guards_of(s_ctx_t *c, const cf_yt_node_t *seq, const char *what)
{
    unsigned guards = 0;
    if (!s_want_seq(c, seq, what))
        return 0;
    CF_YT_EACH_ITEM(seq, it) {
        if (!s_want_scalar(c, it, "a guard"))
            continue;
        unsigned g = 0;
        for (size_t i = 0; i < S_NGUARDS; i++)
            if (cf_yt_eq(it, s_guards[i].name))
                g = s_guards[i].bit;
        if (!g)
            s_err(c, it, "unknown guard '%.*s' (guards: consent_valid)", S_Q(it));
        guards |= g;
    }
    return guards;
}

static int s_flag(s_ctx_t *c, const cf_yt_node_t *n)
{
    for (size_t i = 0; i < c->nflags; i++)
        if (cf_yt_eq(n, c->flags[i]))
            return (int)i;
    if (c->nflags == CF_WF_MAX_FLAGS) {
        if (!c->flags_full)
            s_err(c, n, "more than %d flags: '%.*s' would be flag %d",
                  CF_WF_MAX_FLAGS, S_Q(n), CF_WF_MAX_FLAGS + 1);
        c->flags_full = true;
        return -1;
    }
    c->flags[c->nflags] = s_strndup(&c->out, n->s, n->len);
    return (int)c->nflags++;
}

static uint64_t s_flags_of(s_ctx_t *c, const cf_yt_node_t *seq, const char *what)
{
    uint64_t bits = 0;
    if (!s_want_seq(c, seq, what))
        return 0;
    CF_YT_EACH_ITEM(seq, it) {
        if (!s_want_name(c, it, S_FLAG, "flag"))
            continue;
        int i = s_flag(c, it);
        if (i >= 0)
            bits |= UINT64_C(1) << i;
    }
    return bits;
}

static const char *const s_field_keys[] = {"type", "required", "max", "min", "values",
                                           "not_before", "not_after", "internal", NULL};
static const char *const s_bound_keys[] = {"claim", "except_by", NULL};

/* `min:`/`max:` of an integer or money field: an integer, or (event data
 * only) {claim: FIELD, except_by: [roles]} naming an integer or money
 * field of the claim's data. */
static void s_bound(s_ctx_t *c, const cf_yt_node_t *n, const char *key, const cf_wf_field_t *f,
                    bool claim_data, cf_wf_bound_t *b)
{
    b->claim_field = -1;
    if (n->kind == CF_YT_MAP) {
        char what[96];
        snprintf(what, sizeof what, "'%s' of field '%s'", key, f->name);
        s_dups(c, n, "key");
        s_keys(c, n, s_bound_keys, what);
        const cf_yt_node_t *fn = cf_yt_get(n, "claim"), *ex = cf_yt_get(n, "except_by");
        if (claim_data) {
            s_err(c, n, "field '%s': a bound naming a claim field is allowed only in an "
                  "event's data", f->name);
            return;
        }
        if (!fn) {
            s_err(c, n, "%s has no 'claim' (the claim data field it is compared with)", what);
            return;
        }
        if (!s_want_scalar(c, fn, "'claim'"))
            return;
        for (size_t i = 0; i < c->wf->pub.nfields; i++)
            if (cf_yt_eq(fn, c->fields[i].name))
                b->claim_field = (int)i;
        if (b->claim_field < 0) {
            s_err(c, fn, "%s: '%.*s' is not a field of the claim's data", what, S_Q(fn));
            return;
        }
        cf_wf_ftype_t t = c->fields[b->claim_field].type;
        if (t != CF_FT_INTEGER && t != CF_FT_MONEY) {
            s_err(c, fn, "%s: claim field '%.*s' is not an integer or money field", what,
                  S_Q(fn));
            b->claim_field = -1;
            return;
        }
        if (ex)
            b->except = s_roles_of(c, ex, "'except_by'");
        b->claim_name = c->fields[b->claim_field].name;
        b->set = true;
        return;
    }
    /* a plain integer, possibly negative */
    bool neg = n->kind == CF_YT_SCALAR && n->len > 1 && n->s[0] == '-';
    cf_yt_node_t tmp = *n;
    if (neg) {
        tmp.s++;
        tmp.len--;
    }
    int64_t v;
    char what[64];
    snprintf(what, sizeof what, "'%s'", key);
    if (s_want_int(c, &tmp, what, 0, S_INT_HUGE, &v)) {
        b->value = neg ? -v : v;
        b->set = true;
    }
}

/* `not_before:`/`not_after:` of a date field: `today`, or today plus or
 * minus a number of days, weeks, months or years (`+1y`, `-30d`, `+6mo`). */
static void s_date_bound(s_ctx_t *c, const cf_yt_node_t *n, const char *key,
                         cf_wf_date_bound_t *b)
{
    if (!s_want_scalar(c, n, key))
        return;
    if (cf_yt_eq(n, "today")) {
        b->set = true;
        return;
    }
    char buf[24];
    cf_dur_t d;
    bool ok = n->len >= 3 && n->len < sizeof buf && (n->s[0] == '+' || n->s[0] == '-');
    if (ok) {
        memcpy(buf, n->s + 1, n->len - 1);
        buf[n->len - 1] = '\0';
        ok = cf_dur_parse(buf, &d) == 0 &&
             (d.unit == CF_DUR_DAYS || d.unit == CF_DUR_WEEKS || d.unit == CF_DUR_MONTHS ||
              d.unit == CF_DUR_YEARS);
    }
    if (!ok) {
        s_err(c, n, "bad date bound '%.*s' for '%s' (expected today, or today plus or minus "
              "days, weeks, months or years: +1y, -30d, +6mo)", S_Q(n), key);
        return;
    }
    b->set = true;
    b->n = n->s[0] == '-' ? -d.n : d.n;
    b->unit = d.unit;
}

static void s_field(s_ctx_t *c, const cf_yt_node_t *k, const cf_yt_node_t *v, cf_wf_field_t *f,
                    bool claim_data)
{
    char what[128];
    snprintf(what, sizeof what, "field '%s'", f->name);
    f->max_len = CF_WF_STRING_DEFAULT_MAX;
    if (!s_want_map(c, v, what))
        return;
    s_dups(c, v, "key");
    s_keys(c, v, s_field_keys, what);

    const cf_yt_node_t *type = cf_yt_get(v, "type");
    bool typed = false;
    if (!type) {
        s_err(c, k, "field '%s' has no type", f->name);
    } else if (s_want_scalar(c, type, "a field's type")) {
        for (size_t i = 0; i < S_NFTYPES; i++)
            if (cf_yt_eq(type, s_ftypes[i])) {
                f->type = (cf_wf_ftype_t)i;
                typed = true;
            }
        if (!typed)
            s_err(c, type, "unknown type '%.*s' for field '%s' (types: string, integer, "
                  "boolean, date, person_id, enum, claim, money)", S_Q(type), f->name);
    }
    if (typed && f->type == CF_FT_CLAIM) {
        if (!claim_data)
            s_err(c, type, "field '%s': type claim is allowed only in the claim's data",
                  f->name);
        else if (++c->nclaim > 1)
            s_err(c, type, "field '%s': a workflow has at most one field of type claim",
                  f->name);
    }
    if (typed && claim_data && strcmp(f->name, "member") == 0 && f->type != CF_FT_PERSON_ID)
        s_err(c, type, "field 'member' (the claim's member) must have type person_id");

    const cf_yt_node_t *n = cf_yt_get(v, "required");
    if (n)
        s_want_bool(c, n, "required", &f->required);

    bool numeric = typed && (f->type == CF_FT_INTEGER || f->type == CF_FT_MONEY);
    if ((n = cf_yt_get(v, "max"))) {
        int64_t max;
        if (numeric)
            s_bound(c, n, "max", f, claim_data, &f->max);
        else if (typed && f->type != CF_FT_STRING)
            s_err(c, cf_yt_key_of(v, n), "field '%s': max applies only to string, integer "
                  "and money fields", f->name);
        else if (s_want_int(c, n, "max", 1, CF_WF_STRING_LIMIT, &max))
            f->max_len = (uint32_t)max;
    }
    if ((n = cf_yt_get(v, "min"))) {
        if (numeric)
            s_bound(c, n, "min", f, claim_data, &f->min);
        else if (typed)
            s_err(c, cf_yt_key_of(v, n), "field '%s': min applies only to integer and money "
                  "fields", f->name);
    }
    if (f->min.set && f->max.set && f->min.claim_field < 0 && f->max.claim_field < 0 &&
        f->min.value > f->max.value)
        s_err(c, cf_yt_get(v, "min"), "field '%s': min is above max", f->name);
    static const char *const dkeys[] = {"not_before", "not_after"};
    for (int i = 0; i < 2; i++) {
        if (!(n = cf_yt_get(v, dkeys[i])))
            continue;
        if (typed && f->type != CF_FT_DATE)
            s_err(c, cf_yt_key_of(v, n), "field '%s': %s applies only to date fields", f->name,
                  dkeys[i]);
        else if (typed)
            s_date_bound(c, n, dkeys[i], i == 0 ? &f->not_before : &f->not_after);
    }
    if ((n = cf_yt_get(v, "internal"))) {
        if (!claim_data)
            s_err(c, cf_yt_key_of(v, n), "field '%s': internal applies only to the claim's "
                  "data", f->name);
        else
            s_want_bool(c, n, "internal", &f->internal);
        if (f->internal && f->required)
            s_err(c, cf_yt_key_of(v, n), "field '%s': an internal field cannot be required "
                  "(events record it later)", f->name);
    }

    n = cf_yt_get(v, "values");
    if (typed && f->type == CF_FT_ENUM && !n) {
        s_err(c, k, "enum field '%s' has no values", f->name);
    } else if (n && typed && f->type != CF_FT_ENUM) {
        s_err(c, cf_yt_key_of(v, n), "field '%s': values applies only to enum fields", f->name);
    } else if (n && s_want_seq(c, n, "values")) {
        const char **vals = s_alloc(&c->out, (n->n ? n->n : 1) * sizeof *vals);
        size_t nv = 0;
        CF_YT_EACH_ITEM(n, it) {
            if (!s_want_scalar(c, it, "an enum value"))
                continue;
            bool dup = false;
            for (size_t i = 0; i < nv && !dup; i++)
                dup = cf_yt_eq(it, vals[i]);
            if (dup) {
                s_err(c, it, "duplicate value '%.*s' in enum field '%s'", S_Q(it), f->name);
                continue;
            }
            vals[nv++] = s_strndup(&c->out, it->s, it->len);
        }
        if (nv == 0 && n->n == 0)
            s_err(c, n, "enum field '%s' has no values", f->name);
        f->values = vals;
        f->nvalues = nv;
    }
}

static void s_fields(s_ctx_t *c, const cf_yt_node_t *map, const char *what, bool claim_data,
                     const cf_wf_field_t **ret, size_t *nret)
{
    *ret = NULL;
    *nret = 0;
    if (!s_want_map(c, map, what))
        return;
    s_dups(c, map, "field");
    cf_wf_field_t *f = s_alloc(&c->out, (map->n / 2 + 1) * sizeof *f);
    size_t n = 0;
    CF_YT_EACH_PAIR(map, k, v) {
        if (k->dup_of || !s_want_name(c, k, S_IDENT, "field"))
            continue;
        f[n].name = s_strndup(&c->out, k->s, k->len);
        s_field(c, k, v, &f[n], claim_data);
        n++;
    }
    *ret = f;
    *nret = n;
}

static const char *const s_event_keys[] = {"to", "by", "requires", "data", "set", "clear",
                                           "scope", "if_set", "if_clear", "record", NULL};
/* The scopes an event may need of a representative (`scope:`). */
static const char *const s_event_scopes[] = {"claims", "complaints", "consent", NULL};

/* `record: {event_field: claim_field}`: the event's value is written into
 * the claim's data; the claim field must be internal and of the same type. */
static void s_record(s_ctx_t *c, const cf_yt_node_t *map, cf_wf_event_t *ev)
{
    if (!s_want_map(c, map, "'record'"))
        return;
    s_dups(c, map, "key");
    int *rec = s_alloc(&c->out, (ev->nfields + 1) * sizeof *rec);
    int nrec = 0;
    for (size_t i = 0; i < ev->nfields; i++)
        rec[i] = -1;
    CF_YT_EACH_PAIR(map, k, v) {
        if (k->dup_of || !s_want_scalar(c, k, "a field"))
            continue;
        int ei = -1, ci = -1;
        for (size_t i = 0; i < ev->nfields; i++)
            if (cf_yt_eq(k, ev->fields[i].name))
                ei = (int)i;
        if (ei < 0) {
            s_err(c, k, "event '%s' records '%.*s', which is not a field of its data",
                  ev->name, S_Q(k));
            continue;
        }
        if (!s_want_scalar(c, v, "a claim field"))
            continue;
        for (size_t i = 0; i < c->wf->pub.nfields; i++)
            if (cf_yt_eq(v, c->fields[i].name))
                ci = (int)i;
        if (ci < 0) {
            s_err(c, v, "event '%s' records into '%.*s', which is not a field of the claim's "
                  "data", ev->name, S_Q(v));
        } else if (!c->fields[ci].internal) {
            s_err(c, v, "event '%s' records into claim field '%s', which is not internal "
                  "(the member's data is never overwritten)", ev->name, c->fields[ci].name);
        } else if (c->fields[ci].type != ev->fields[ei].type) {
            s_err(c, v, "event '%s' records field '%s' into claim field '%s' of another type",
                  ev->name, ev->fields[ei].name, c->fields[ci].name);
        } else if (++nrec > CF_WF_MAX_RECORD) {
            s_err(c, k, "event '%s' records more than %d fields", ev->name, CF_WF_MAX_RECORD);
        } else {
            rec[ei] = ci;
        }
    }
    ev->record = rec;
}

static void s_event(s_ctx_t *c, const cf_yt_node_t *k, const cf_yt_node_t *v, cf_wf_event_t *ev)
{
    char what[128];
    ev->name = s_strndup(&c->out, k->s, k->len);
    ev->line = k->line;
    ev->col = k->col;
    ev->to = CF_WF_STAY;
    snprintf(what, sizeof what, "event '%s'", ev->name);
    if (!s_want_map(c, v, what))
        return;
    s_dups(c, v, "key");
    s_keys(c, v, s_event_keys, what);

    const cf_yt_node_t *n = cf_yt_get(v, "to");
    if (n && s_want_scalar(c, n, "'to'")) {
        if (cf_yt_eq(n, "$previous")) {
            ev->to = CF_WF_PREVIOUS;
        } else {
            int to = s_state_find_node(c, n);
            if (to < 0)
                s_err(c, n, "event '%s': target state '%.*s' does not exist", ev->name, S_Q(n));
            else
                ev->to = to;
        }
    }
    if (!(n = cf_yt_get(v, "by")))
        s_err(c, k, "event '%s' has no 'by' (the roles that may send it)", ev->name);
    else if ((ev->roles = s_roles_of(c, n, "'by'")) == 0 && n->n == 0 && n->kind != CF_YT_BAD &&
             (n->kind == CF_YT_SEQ || s_is_null(n)))
        s_err(c, n, "event '%s': 'by' must list at least one role", ev->name);
    if ((n = cf_yt_get(v, "requires")))
        ev->guards = s_guards_of(c, n, "'requires'");
    if ((n = cf_yt_get(v, "data")))
        s_fields(c, n, "'data'", false, &ev->fields, &ev->nfields);
    if ((n = cf_yt_get(v, "set")))
        ev->set_flags = s_flags_of(c, n, "'set'");
    if ((n = cf_yt_get(v, "clear")))
        ev->clear_flags = s_flags_of(c, n, "'clear'");
    if ((n = cf_yt_get(v, "scope")) && s_want_scalar(c, n, "'scope'")) {
        for (int i = 0; s_event_scopes[i]; i++)
            if (cf_yt_eq(n, s_event_scopes[i]))
                ev->scope = s_event_scopes[i];
        if (!ev->scope)
            s_err(c, n, "event '%s': 'scope' must be claims, complaints or consent", ev->name);
    }
    if ((n = cf_yt_get(v, "if_set")))
        ev->if_set = s_flags_of(c, n, "'if_set'");
    if ((n = cf_yt_get(v, "if_clear")))
        ev->if_clear = s_flags_of(c, n, "'if_clear'");
    if ((n = cf_yt_get(v, "record")))
        s_record(c, n, ev);
}

static void s_events(s_ctx_t *c, const cf_yt_node_t *map, const char *what,
                     const cf_wf_event_t **ret, size_t *nret)
{
    *ret = NULL;
    *nret = 0;
    if (!s_want_map(c, map, what))
        return;
    s_dups(c, map, "event");
    cf_wf_event_t *ev = s_alloc(&c->out, (map->n / 2 + 1) * sizeof *ev);
    size_t n = 0;
    CF_YT_EACH_PAIR(map, k, v) {
        if (k->dup_of || !s_want_name(c, k, S_EVENT, "event"))
            continue;
        s_event(c, k, v, &ev[n++]);
    }
    *ret = ev;
    *nret = n;
}

static const char *const s_auto_keys[] = {"to", "when", "requires", NULL};
static const char *const s_when_keys[] = {"field", "in", NULL};

static bool s_auto(s_ctx_t *c, const cf_yt_node_t *item, cf_wf_auto_t *a)
{
    a->when_field = -1;
    a->to = -1;
    if (!s_want_map(c, item, "an auto move"))
        return false;
    s_dups(c, item, "key");
    s_keys(c, item, s_auto_keys, "an auto move");
    const cf_yt_node_t *n = cf_yt_get(item, "to");
    if (!n) {
        s_err(c, item, "auto move has no 'to'");
    } else if (s_want_scalar(c, n, "'to'")) {
        if ((a->to = s_state_find_node(c, n)) < 0)
            s_err(c, n, "auto move: target state '%.*s' does not exist", S_Q(n));
    }
    if ((n = cf_yt_get(item, "requires")))
        a->guards = s_guards_of(c, n, "'requires'");
    const cf_yt_node_t *when = cf_yt_get(item, "when");
    if (when && s_want_map(c, when, "'when'")) {
        s_dups(c, when, "key");
        s_keys(c, when, s_when_keys, "'when'");
        const cf_wf_field_t *f = NULL;
        const cf_yt_node_t *fn = cf_yt_get(when, "field"), *in = cf_yt_get(when, "in");
        if (!fn) {
            s_err(c, when, "'when' has no 'field'");
        } else if (s_want_scalar(c, fn, "'field'")) {
            for (size_t i = 0; i < c->wf->pub.nfields; i++)
                if (cf_yt_eq(fn, c->fields[i].name)) {
                    f = &c->fields[i];
                    a->when_field = (int)i;
                }
            if (!f)
                s_err(c, fn, "'when' field '%.*s' is not a field of the claim's data", S_Q(fn));
            else if (f->type != CF_FT_ENUM)
                s_err(c, fn, "'when' field '%.*s' is not an enum field", S_Q(fn));
            if (f && f->type != CF_FT_ENUM)
                f = NULL;
        }
        if (!in) {
            s_err(c, when, "'when' has no 'in'");
        } else if (s_want_seq(c, in, "'in'")) {
            const char **vals = s_alloc(&c->out, (in->n + 1) * sizeof *vals);
            size_t nv = 0;
            CF_YT_EACH_ITEM(in, it) {
                if (!s_want_scalar(c, it, "a value"))
                    continue;
                bool found = false;
                for (size_t i = 0; f && i < f->nvalues && !found; i++)
                    if (cf_yt_eq(it, f->values[i])) {
                        found = true;
                        vals[nv++] = f->values[i];
                    }
                if (f && !found)
                    s_err(c, it, "'%.*s' is not a value of enum field '%s'", S_Q(it), f->name);
            }
            a->when_in = vals;
            a->nwhen_in = nv;
        }
    }
    return a->to >= 0;
}

static const char *const s_timer_keys[] = {"after", "at", "send", "on_pause", NULL};

static void s_timers(s_ctx_t *c, const cf_yt_node_t *map, size_t si)
{
    cf_wf_state_t *st = &c->states[si];
    if (!s_want_map(c, map, "'timers'"))
        return;
    s_dups(c, map, "timer");
    cf_wf_timer_t *t = s_alloc(&c->out, (map->n / 2 + 1) * sizeof *t);
    size_t n = 0;
    CF_YT_EACH_PAIR(map, k, v) {
        if (k->dup_of || !s_want_name(c, k, S_IDENT, "timer"))
            continue;
        cf_wf_timer_t *x = &t[n];
        char what[128];
        x->name = s_strndup(&c->out, k->s, k->len);
        snprintf(what, sizeof what, "timer '%s'", x->name);
        if (!s_want_map(c, v, what))
            continue;
        s_dups(c, v, "key");
        s_keys(c, v, s_timer_keys, what);
        bool ok = true;
        const cf_yt_node_t *after = cf_yt_get(v, "after"), *send = cf_yt_get(v, "send");
        const cf_yt_node_t *at = cf_yt_get(v, "at"), *pause = cf_yt_get(v, "on_pause");
        x->at_field = -1;
        if (after && at) {
            s_err(c, cf_yt_key_of(v, at), "timer '%s' has both 'after' and 'at'", x->name);
            ok = false;
        } else if (at) {
            /* a date of the claim's data: due at the end of that day */
            if (!s_want_scalar(c, at, "'at'")) {
                ok = false;
            } else {
                for (size_t i = 0; i < c->wf->pub.nfields; i++)
                    if (cf_yt_eq(at, c->fields[i].name))
                        x->at_field = (int)i;
                if (x->at_field < 0 || c->fields[x->at_field].type != CF_FT_DATE) {
                    s_err(c, at, "timer '%s': 'at' must name a date field of the claim's "
                          "data, not '%.*s'", x->name, S_Q(at));
                    x->at_field = -1;
                    ok = false;
                }
            }
        } else if (!after) {
            s_err(c, k, "timer '%s' has no 'after' (or 'at')", x->name);
            ok = false;
        } else if (!s_want_scalar(c, after, "'after'")) {
            ok = false;
        } else if (strlen(after->s) != after->len || cf_dur_parse(after->s, &x->after) != 0) {
            s_err(c, after, "bad duration '%.*s' for timer '%s' (expected a number and a "
                  "unit: 30m, 2h, 2d, 4w, 6mo, 1y, 1bd)", S_Q(after), x->name);
            ok = false;
        }
        if (pause && s_want_scalar(c, pause, "'on_pause'")) {
            if (cf_yt_eq(pause, "keep"))
                x->keep = true;
            else if (!cf_yt_eq(pause, "restart"))
                s_err(c, pause, "timer '%s': on_pause must be restart or keep, not '%.*s'",
                      x->name, S_Q(pause));
        }
        if (!send) {
            s_err(c, k, "timer '%s' has no 'send'", x->name);
            ok = false;
        } else if (!s_want_name(c, send, S_EVENT, "event")) {
            ok = false;
        } else {
            x->event = s_strndup(&c->out, send->s, send->len);
            const cf_wf_event_t *ev =
                cf_wf_event_find(&c->wf->pub, (int)si, send->s, send->len);
            if (!ev || !(ev->roles & CF_ROLE_SYSTEM)) {
                s_err(c, send, "timer '%s' sends '%s', which state '%s' does not accept "
                      "from system", x->name, x->event, st->name);
                ok = false;
            }
        }
        if (ok)
            n++;
    }
    st->timers = t;
    st->ntimers = n;
}

static const char *const s_state_keys[] = {"initial", "final", "auto", "timers", "on",
                                           "owner", "refusals", NULL};
static void s_refusal_map(s_ctx_t *c, const cf_yt_node_t *map, const cf_wf_refusal_t **ret,
                          size_t *nret);

static void s_state(s_ctx_t *c, size_t si, const cf_yt_node_t *v)
{
    cf_wf_state_t *st = &c->states[si];
    char what[128];
    snprintf(what, sizeof what, "state '%s'", st->name);
    if (!s_want_map(c, v, what))
        return;
    s_dups(c, v, "key");
    s_keys(c, v, s_state_keys, what);
    const cf_yt_node_t *n;
    if ((n = cf_yt_get(v, "initial")))
        s_want_bool(c, n, "initial", &st->initial);
    if ((n = cf_yt_get(v, "final")))
        s_want_bool(c, n, "final", &st->final);
    if (st->final) {
        static const char *const moving[] = {"on", "auto", "timers", "owner", "refusals"};
        for (size_t i = 0; i < 5; i++)
            if ((n = cf_yt_get(v, moving[i])))
                s_err(c, cf_yt_key_of(v, n), "final state '%s' cannot have '%s'", st->name,
                      moving[i]);
        return;
    }
    if ((n = cf_yt_get(v, "on")))
        s_events(c, n, "'on'", &st->events, &st->nevents);
    if ((n = cf_yt_get(v, "auto")) && s_want_seq(c, n, "'auto'")) {
        cf_wf_auto_t *a = s_alloc(&c->out, (n->n + 1) * sizeof *a);
        size_t na = 0;
        CF_YT_EACH_ITEM(n, it)
            if (s_auto(c, it, &a[na]))
                na++;
        st->autos = a;
        st->nautos = na;
    }
    if ((n = cf_yt_get(v, "timers")))
        s_timers(c, n, si);
    if ((n = cf_yt_get(v, "owner")) && s_want_scalar(c, n, "'owner'")) {
        if (cf_yt_eq(n, "required"))
            st->owner_required = true;
        else if (!cf_yt_eq(n, "optional"))
            s_err(c, n, "state '%s': owner must be required or optional, not '%.*s'",
                  st->name, S_Q(n));
    }
}

static bool s_event_declared(const s_ctx_t *c, const cf_yt_node_t *n)
{
    const cf_wf_t *wf = &c->wf->pub;
    for (size_t i = 0; i < wf->nany; i++)
        if (cf_yt_eq(n, wf->any[i].name))
            return true;
    for (size_t s = 0; s < wf->nstates; s++)
        for (size_t i = 0; i < wf->states[s].nevents; i++)
            if (cf_yt_eq(n, wf->states[s].events[i].name))
                return true;
    return false;
}

static void s_refusals(s_ctx_t *c, const cf_yt_node_t *map)
{
    s_refusal_map(c, map, &c->wf->pub.refusals, &c->wf->pub.nrefusals);
}

static void s_refusal_map(s_ctx_t *c, const cf_yt_node_t *map, const cf_wf_refusal_t **ret,
                          size_t *nret)
{
    if (!s_want_map(c, map, "'refusals'"))
        return;
    s_dups(c, map, "refusal");
    cf_wf_refusal_t *r = s_alloc(&c->out, (map->n / 2 + 1) * sizeof *r);
    size_t n = 0;
    CF_YT_EACH_PAIR(map, k, v) {
        if (k->dup_of || !s_want_name(c, k, S_EVENT, "event"))
            continue;
        if (!s_event_declared(c, k)) {
            s_err(c, k, "refusal for event '%.*s', which no state accepts", S_Q(k));
            continue;
        }
        if (!s_want_scalar(c, v, "a refusal"))
            continue;
        r[n].event = s_strndup(&c->out, k->s, k->len);
        r[n].message = s_strndup(&c->out, v->s, v->len);
        n++;
    }
    *ret = r;
    *nret = n;
}

/* ------------------------------------------- calendar and currency --- */
/* `calendar:` and `currency:` are each a scalar (every claim) or
 * `{by_member_country: {dk: ..., no: ...}}` (by the claim's country).  A
 * pick function checks one value and stores it for one country, or for
 * every country when country is -1; false when the value is refused. */
typedef bool s_pick_fn(s_ctx_t *c, const cf_yt_node_t *v, int country);

static bool s_pick_calendar(s_ctx_t *c, const cf_yt_node_t *v, int country)
{
    cf_wf_t *wf = &c->wf->pub;
    if (!s_want_name(c, v, S_IDENT, "calendar"))
        return false;
    const char *name = s_strndup(&c->out, v->s, v->len);
    if (country < 0)
        wf->calendar = name;
    for (int i = 0; i < CF_COUNTRY_N; i++)
        if (country < 0 || i == country) {
            wf->calendars[i] = name;
            wf->calendar_at[i] = (cf_wf_pos_t){v->line, v->col};
        }
    return true;
}

static bool s_pick_currency(s_ctx_t *c, const cf_yt_node_t *v, int country)
{
    int cur = cf_currency_parse(v->s, v->len);
    if (cur < 0) {
        s_err(c, v, "unknown currency '%.*s' (currencies: %s)", S_Q(v), cf_currency_list());
        return false;
    }
    for (int i = 0; i < CF_COUNTRY_N; i++)
        if (country < 0 || i == country)
            c->wf->pub.currency[i] = (cf_currency_t)cur;
    return true;
}

static const char *const s_by_country_keys[] = {"by_member_country", NULL};

/* n, the value of key: a scalar, or the by_member_country map (every
 * country required when every).  *first: the map's first country taken. */
static void s_per_country(s_ctx_t *c, const cf_yt_node_t *n, const char *key, s_pick_fn *pick,
                          bool every, int *first)
{
    char what[64];
    snprintf(what, sizeof what, "'%s'", key);
    if (n->kind == CF_YT_BAD)
        return;
    if (n->kind == CF_YT_SCALAR) {
        if (s_want_scalar(c, n, what))
            pick(c, n, -1);
        return;
    }
    if (n->kind != CF_YT_MAP) {
        s_err(c, n, "%s must be a single value or {by_member_country: {%s: ...}}, not a list",
              what, cf_country_list());
        return;
    }
    s_dups(c, n, "key");
    s_keys(c, n, s_by_country_keys, what);
    const cf_yt_node_t *m = cf_yt_get(n, "by_member_country");
    if (!m) {
        if (n->n == 0)     /* otherwise s_keys has named the key that is there */
            s_err(c, n, "%s has no 'by_member_country' (a map of country to %s)", what, key);
        return;
    }
    if (!s_want_map(c, m, "'by_member_country'"))
        return;
    s_dups(c, m, "country");
    unsigned seen = 0;
    CF_YT_EACH_PAIR(m, k, v) {
        if (k->dup_of || k->kind != CF_YT_SCALAR)
            continue;
        int cc = cf_country_parse(k->s, k->len);
        if (cc < 0) {
            s_err(c, k, "unknown country '%.*s' in %s by_member_country (countries: %s)",
                  S_Q(k), what, cf_country_list());
            continue;
        }
        seen |= 1u << cc;
        if (s_want_scalar(c, v, what) && pick(c, v, cc) && *first < 0)
            *first = cc;
    }
    for (int i = 0; every && i < CF_COUNTRY_N; i++)
        if (!(seen & (1u << i)))
            s_err(c, m, "%s by_member_country names no %s for country '%s' (every country "
                  "needs one: %s)", what, key, cf_country_code((cf_country_t)i),
                  cf_country_list());
}

static void s_calendar_currency(s_ctx_t *c, const cf_yt_node_t *root)
{
    cf_wf_t *wf = &c->wf->pub;
    for (int i = 0; i < CF_COUNTRY_N; i++)
        wf->currency[i] = cf_country_currency((cf_country_t)i);
    int first = -1;
    const cf_yt_node_t *n;
    if (!(n = cf_yt_get(root, "calendar")))
        s_err(c, root, "missing required key 'calendar' (the business-day calendar)");
    else
        s_per_country(c, n, "calendar", s_pick_calendar, true, &first);
    wf->first_country = first < 0 ? (cf_country_t)0 : (cf_country_t)first;
    int ignored = -1;
    if ((n = cf_yt_get(root, "currency")))
        s_per_country(c, n, "currency", s_pick_currency, false, &ignored);
}

/* ------------------------------------------------------------ 3. graph --- */

static void s_graph(s_ctx_t *c, const cf_yt_node_t *states_key)
{
    cf_wf_t *wf = &c->wf->pub;
    size_t ns = wf->nstates;
    wf->initial = -1;
    for (size_t i = 0; i < ns; i++) {
        if (!c->states[i].initial)
            continue;
        if (wf->initial < 0)
            wf->initial = (int)i;
        else
            s_err(c, c->state_keys[i], "more than one initial state ('%s' and '%s')",
                  wf->states[wf->initial].name, c->states[i].name);
    }
    if (ns == 0) {
        s_err(c, states_key, "the workflow declares no states");
        return;
    }
    if (wf->initial < 0) {
        s_err(c, states_key, "no initial state (mark one state with initial: true)");
    } else {
        bool *seen = s_alloc(&c->scratch, ns * sizeof *seen);
        size_t *queue = s_alloc(&c->scratch, ns * sizeof *queue), head = 0, tail = 0;
        seen[wf->initial] = true;
        queue[tail++] = (size_t)wf->initial;
        while (head < tail) {
            const cf_wf_state_t *st = &wf->states[queue[head++]];
            size_t total = st->nevents + st->nautos + (st->final ? 0 : wf->nany);
            for (size_t i = 0; i < total; i++) {
                int to;
                if (i < st->nevents)
                    to = st->events[i].to;
                else if (i < st->nevents + st->nautos)
                    to = st->autos[i - st->nevents].to;
                else
                    to = wf->any[i - st->nevents - st->nautos].to;
                if (to >= 0 && !seen[to]) {
                    seen[to] = true;
                    queue[tail++] = (size_t)to;
                }
            }
        }
        for (size_t i = 0; i < ns; i++)
            if (!seen[i])
                s_err(c, c->state_keys[i], "state '%s' is unreachable from the initial "
                      "state '%s'", wf->states[i].name, wf->states[wf->initial].name);
    }
    for (size_t i = 0; i < ns; i++) {
        const cf_wf_state_t *st = &wf->states[i];
        if (!st->final && st->nevents == 0 && st->nautos == 0 && wf->nany == 0)
            s_err(c, c->state_keys[i], "state '%s' is not final and has no way out (no "
                  "events, no autos and no 'any' events)", st->name);
    }
}

/* ------------------------------------------------------------- compile --- */

static const char *const s_top_keys[] = {
    "workflow", "version", "calendar", "currency", "created_by", "data", "refusals", "states",
    "any", NULL,
};

static void s_compile(s_ctx_t *c, const cf_yt_node_t *root)
{
    cf_wf_t *wf = &c->wf->pub;
    s_dups(c, root, "key");
    s_keys(c, root, s_top_keys, "the workflow");

    const cf_yt_node_t *n;
    if (!(n = cf_yt_get(root, "workflow")))
        s_err(c, root, "missing required key 'workflow' (the workflow's name)");
    else if (s_want_name(c, n, S_IDENT, "workflow"))
        wf->name = s_strndup(&c->out, n->s, n->len);

    int64_t version;
    if (!(n = cf_yt_get(root, "version")))
        s_err(c, root, "missing required key 'version'");
    else if (s_want_int(c, n, "version", 1, S_INT_HUGE, &version))
        wf->version = version;

    s_calendar_currency(c, root);

    wf->created_by = CF_ROLE_MEMBER;
    if ((n = cf_yt_get(root, "created_by"))) {
        wf->created_by = s_roles_of(c, n, "created_by");
        if (n->n == 0 && (n->kind == CF_YT_SEQ || s_is_null(n)))
            s_err(c, n, "created_by must list at least one role");
    }

    if ((n = cf_yt_get(root, "data"))) {
        const cf_wf_field_t *f;
        s_fields(c, n, "'data'", true, &f, &wf->nfields);
        c->fields = (cf_wf_field_t *)f;
        wf->fields = f;
    }

    /* state names first: `to` may name any of them */
    const cf_yt_node_t *states = cf_yt_get(root, "states");
    const cf_yt_node_t *states_key = states ? cf_yt_key_of(root, states) : root;
    if (!states) {
        s_err(c, root, "missing required key 'states'");
    } else if (s_want_map(c, states, "'states'")) {
        s_dups(c, states, "state");
        size_t cap = states->n / 2 + 1, ns = 0;
        c->states = s_alloc(&c->out, cap * sizeof *c->states);
        c->state_keys = s_alloc(&c->scratch, cap * sizeof *c->state_keys);
        c->state_order = s_alloc(&c->scratch, cap * sizeof *c->state_order);
        CF_YT_EACH_PAIR(states, k, v) {
            if (k->dup_of || !s_want_name(c, k, S_IDENT, "state"))
                continue;
            c->states[ns].name = s_strndup(&c->out, k->s, k->len);
            c->state_keys[ns] = k;
            c->state_order[ns].name = c->states[ns].name;
            c->state_order[ns].idx = (int)ns;
            ns++;
        }
        wf->states = c->states;
        wf->nstates = ns;
        qsort(c->state_order, ns, sizeof *c->state_order, s_order_cmp);
    }

    if ((n = cf_yt_get(root, "any")))
        s_events(c, n, "'any'", &wf->any, &wf->nany);

    for (size_t i = 0; i < wf->nstates; i++)
        s_state(c, i, c->state_keys[i]->next);

    if ((n = cf_yt_get(root, "refusals")))
        s_refusals(c, n);
    for (size_t i = 0; i < wf->nstates; i++) {
        const cf_yt_node_t *sv = c->state_keys[i]->next;
        if (sv->kind == CF_YT_MAP && !c->states[i].final && (n = cf_yt_get(sv, "refusals")))
            s_refusal_map(c, n, &c->states[i].refusals, &c->states[i].nrefusals);
    }

    wf->nflags = c->nflags;
    if (c->nflags) {
        const char **flags = s_alloc(&c->out, c->nflags * sizeof *flags);
        memcpy(flags, c->flags, c->nflags * sizeof *flags);
        wf->flags = flags;
    }
    if (states && (states->kind == CF_YT_MAP || s_is_null(states)))
        s_graph(c, states_key);
}

/* ------------------------------------------------------------------ load --- */

static int s_diag_cmp(const void *a, const void *b)
{
    const cf_diag_t *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    if (x->col != y->col)
        return x->col < y->col ? -1 : 1;
    return 0;
}

/* Sort the diagnostics this load added by place, keeping the order of those
 * at one place (merge sort through a scratch array: qsort is not stable). */
static void s_sort_diags(cf_diag_t *v, size_t n, cf_diag_t *tmp)
{
    if (n < 2)
        return;
    size_t h = n / 2;
    s_sort_diags(v, h, tmp);
    s_sort_diags(v + h, n - h, tmp);
    size_t i = 0, j = h, k = 0;
    while (i < h && j < n)
        tmp[k++] = s_diag_cmp(&v[j], &v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

/* The load proper; out of memory longjmps past it to cf_wf_load_buffer. */
static int s_load(s_ctx_t *c, cf_wf_t **ret)
{
    size_t first_diag = c->diags->n;
    int rc = cf_yt_parse(c->file, c->buf, c->len, &c->yt, c->diags);
    if (rc == CF_EINTERNAL)
        longjmp(c->oom, 1);
    if (rc != 0)
        goto out_sort;
    rc = CF_EBADREQ;
    c->nerr += cf_yt_errors(c->yt);
    const cf_yt_node_t *root = cf_yt_root(c->yt);
    if (!root || s_is_null(root)) {
        s_errat(c, 1, 1, "the file is empty (expected a workflow mapping)");
        goto out_sort;
    }
    if (root->kind != CF_YT_MAP) {
        if (root->kind != CF_YT_BAD)
            s_err(c, root, "the file is not a mapping (expected keys workflow, version, "
                  "calendar, states, ...)");
        goto out_sort;
    }
    c->wf = s_alloc(&c->out, sizeof *c->wf);
    s_compile(c, root);
    if (c->nerr == 0) {
        c->wf->pub.source = s_strndup(&c->out, c->buf, c->len);
        c->wf->pub.source_len = c->len;
        c->wf->arena = c->out.a;
        c->out.a = (cf_arena_t){0};
        *ret = &c->wf->pub;
        rc = 0;
    }
out_sort:
    if (c->diags->n - first_diag > 1) {
        cf_diag_t *tmp = malloc((c->diags->n - first_diag) * sizeof *tmp);
        if (tmp)
            s_sort_diags(c->diags->v + first_diag, c->diags->n - first_diag, tmp);
        free(tmp);
    }
    return rc;
}

int cf_wf_load_buffer(const char *file, const char *buf, size_t len,
                      cf_wf_t **ret, cf_diags_t *reterr)
{
    cf_diags_t scratch = {0};
    cf_diags_t *diags = reterr ? reterr : &scratch;
    if (!file)
        file = "<buffer>";
    if (len > CF_WF_MAX_FILE) {
        int rc = cf_diag_add(diags, file, 0, 0, "file is larger than %d bytes (%zu bytes)",
                             CF_WF_MAX_FILE, len) ? CF_EINTERNAL : CF_EBADREQ;
        cf_diags_clear(&scratch);
        return rc;
    }
    s_ctx_t *c = calloc(1, sizeof *c);
    if (!c)
        return CF_EINTERNAL;
    c->file = file;
    c->buf = buf ? buf : "";
    c->len = buf ? len : 0;
    c->diags = diags;
    c->scratch.oom = &c->oom;
    c->out.oom = &c->oom;
    /* only c (never reassigned) is used after a longjmp */
    if (setjmp(c->oom) == 0)
        c->rc = s_load(c, ret);
    else
        c->rc = CF_EINTERNAL;

    int rc = c->rc;
    cf_yt_destroy(&c->yt);
    cf_arena_free(&c->scratch.a);
    cf_arena_free(&c->out.a);
    free(c);
    cf_diags_clear(&scratch);
    return rc;
}

int cf_wf_load_file(const char *path, cf_wf_t **ret, cf_diags_t *reterr)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return cf_diag_add(reterr, path, 0, 0, "cannot open: %s", strerror(e))
                   ? CF_EINTERNAL : CF_EBADREQ;
    }
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > CF_WF_MAX_FILE) {
        fclose(f);
        return cf_diag_add(reterr, path, 0, 0, "file is larger than %d bytes (%lld bytes)",
                           CF_WF_MAX_FILE, (long long)st.st_size)
                   ? CF_EINTERNAL : CF_EBADREQ;
    }
    /* read one byte past the limit, so a pipe that is too long is noticed */
    char *buf = malloc(CF_WF_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return CF_EINTERNAL;
    }
    size_t n = fread(buf, 1, CF_WF_MAX_FILE + 1, f);
    int rerr = ferror(f) ? errno : 0;
    fclose(f);
    int rc;
    if (rerr)
        rc = cf_diag_add(reterr, path, 0, 0, "cannot read: %s", strerror(rerr))
                 ? CF_EINTERNAL : CF_EBADREQ;
    else
        rc = cf_wf_load_buffer(path, buf, n, ret, reterr);
    free(buf);
    return rc;
}

void cf_wf_destroy(cf_wf_t **wf_p)
{
    if (!wf_p || !*wf_p)
        return;
    s_wf_t *wf = (s_wf_t *)(void *)*wf_p;
    cf_arena_t arena = wf->arena; /* wf itself lives in the arena */
    cf_arena_free(&arena);
    *wf_p = NULL;
}

int cf_wf_check_calendars(const cf_wf_t *wf, const char *file, const char *calfile,
                          bool (*exists)(void *ctx, const char *name), void *ctx,
                          cf_diags_t *reterr)
{
    int rc = 0;
    for (int i = 0; i < CF_COUNTRY_N; i++) {
        const char *name = wf->calendars[i];
        bool again = false;   /* one message per name, not per country */
        for (int j = 0; j < i && !again; j++)
            again = wf->calendar && strcmp(wf->calendars[j], name) == 0;
        if (again || exists(ctx, name))
            continue;
        int e = wf->calendar
                    ? cf_diag_add(reterr, file, wf->calendar_at[i].line, wf->calendar_at[i].col,
                                  "workflow '%s' names calendar '%s', which %s does not "
                                  "declare", wf->name, name, calfile)
                    : cf_diag_add(reterr, file, wf->calendar_at[i].line, wf->calendar_at[i].col,
                                  "workflow '%s' names calendar '%s' for members of country "
                                  "'%s', which %s does not declare", wf->name, name,
                                  cf_country_code((cf_country_t)i), calfile);
        if (e != 0)
            return CF_EINTERNAL;
        rc = CF_EBADREQ;
    }
    return rc;
}

/* -------------------------------------------------------------- lookups --- */

int cf_wf_state_find(const cf_wf_t *wf, const char *name)
{
    for (size_t i = 0; i < wf->nstates; i++)
        if (strcmp(wf->states[i].name, name) == 0)
            return (int)i;
    return -1;
}

int cf_wf_flag_find(const cf_wf_t *wf, const char *name)
{
    for (size_t i = 0; i < wf->nflags; i++)
        if (strcmp(wf->flags[i], name) == 0)
            return (int)i;
    return -1;
}

int cf_wf_field_find(const cf_wf_t *wf, const char *name)
{
    for (size_t i = 0; i < wf->nfields; i++)
        if (strcmp(wf->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

static bool s_name_is(const char *name, const char *s, size_t len)
{
    return strncmp(name, s, len) == 0 && name[len] == '\0';
}

const cf_wf_event_t *cf_wf_event_find(const cf_wf_t *wf, int state,
                                      const char *name, size_t len)
{
    if (state < 0 || (size_t)state >= wf->nstates || !name || memchr(name, '\0', len))
        return NULL;
    const cf_wf_state_t *st = &wf->states[state];
    for (size_t i = 0; i < st->nevents; i++)
        if (s_name_is(st->events[i].name, name, len))
            return &st->events[i];
    if (st->final)
        return NULL;
    for (size_t i = 0; i < wf->nany; i++)
        if (s_name_is(wf->any[i].name, name, len))
            return &wf->any[i];
    return NULL;
}

const char *cf_wf_refusal_in(const cf_wf_t *wf, int state, const char *event, size_t len)
{
    if (!event || memchr(event, '\0', len))
        return NULL;
    if (state >= 0 && (size_t)state < wf->nstates) {
        const cf_wf_state_t *st = &wf->states[state];
        for (size_t i = 0; i < st->nrefusals; i++)
            if (s_name_is(st->refusals[i].event, event, len))
                return st->refusals[i].message;
    }
    return cf_wf_refusal(wf, event, len);
}

const char *cf_wf_refusal(const cf_wf_t *wf, const char *event, size_t len)
{
    if (!event || memchr(event, '\0', len))
        return NULL;
    for (size_t i = 0; i < wf->nrefusals; i++)
        if (s_name_is(wf->refusals[i].event, event, len))
            return wf->refusals[i].message;
    return NULL;
}

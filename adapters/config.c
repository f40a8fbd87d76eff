/* config.c: claimflowd's --config file, read with the engine's YAML reader
 * (yamltree.h), the one that reads workflows and calendars: the same
 * refusals (tabs, anchors and aliases, tags, a second document, deep
 * nesting), the same messages, one out-of-memory path.  Every check fails
 * with one "path:line:col: what" line, the first problem found (the
 * reader's first diagnostic, or the walk's): an operator fixes a config
 * file one line at a time, and the daemon must say exactly one line on
 * stderr before it exits 2.  Rejected: libyaml's document API, which this
 * file used before - it resolved aliases silently and had no depth limit.
 *
 * Messages name keys and positions, never values: the file is not personal
 * data, but the rule "logs carry no values" is easier to keep without
 * exceptions.
 *
 * CURVE keys are checked here (Z85 that decodes, each key one identity: no
 * key listed twice, for two operators, or for an operator and the portal),
 * and the daemon's secret key file is read here too, after the file itself
 * checked out, so claimflowd has one place that says "config is bad".
 */
#include "config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "workflow.h"
#include "yamltree.h"

typedef struct {
    const char *path;
    cf_error_t *reterr;
} s_ctx_t;

/* ------------------------------------------------------------ helpers --- */
static int s_fail(s_ctx_t *c, const cf_yt_node_t *n, const char *what)
{
    if (n)
        return cf_error_set(c->reterr, CF_EBADREQ, "%s:%lu:%lu: %s", c->path,
                            (unsigned long)n->line, (unsigned long)n->col, what);
    return cf_error_set(c->reterr, CF_EBADREQ, "%s: %s", c->path, what);
}

static bool s_is_scalar(const cf_yt_node_t *n)
{
    return n && n->kind == CF_YT_SCALAR;
}

static bool s_scalar_eq(const cf_yt_node_t *n, const char *s)
{
    return n && cf_yt_eq(n, s);
}

/* A positive decimal integer scalar no larger than max. */
static int s_uint(s_ctx_t *c, const cf_yt_node_t *n, const char *key,
                  uint64_t max, uint64_t *ret)
{
    char msg[128];
    snprintf(msg, sizeof msg, "'%s' must be an integer from 1 to %llu", key,
             (unsigned long long)max);
    if (!s_is_scalar(n) || n->len == 0 || n->len > 20)
        return s_fail(c, n, msg);
    uint64_t v = 0;
    for (size_t i = 0; i < n->len; i++) {
        unsigned char ch = (unsigned char)n->s[i];
        if (ch < '0' || ch > '9' || v > (max - (ch - '0')) / 10)
            return s_fail(c, n, msg);
        v = v * 10 + (ch - '0');
    }
    if (v == 0)
        return s_fail(c, n, msg);
    *ret = v;
    return 0;
}

static bool s_operator_id_ok(const char *s, size_t len)
{
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
              (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
              ch == '@' || ch == '-'))
            return false;
    }
    /* The history writes `member` and `system` as actors: an operator of
     * that name would be indistinguishable from them. */
    return !((len == 6 && memcmp(s, "member", 6) == 0) ||
             (len == 6 && memcmp(s, "system", 6) == 0));
}

static bool s_z85_key_ok(const char *s, size_t len)
{
    return cf_key_z85_decode(s, len, NULL);
}

/* Roles an operator may have: the three operator roles of workflow.h. */
static const struct {
    const char *name;
    unsigned role;
} s_roles[] = {
    {"handler", CF_ROLE_HANDLER},
    {"supervisor", CF_ROLE_SUPERVISOR},
    {"auditor", CF_ROLE_AUDITOR},
};

/* ---------------------------------------------------------- operators --- */
static int s_operator(s_ctx_t *c, const cf_yt_node_t *n, cf_operator_t *op)
{
    if (!n || n->kind != CF_YT_MAP)
        return s_fail(c, n, "each operator must be a map of id, role and key");
    const cf_yt_node_t *id = NULL, *role = NULL, *key = NULL;
    CF_YT_EACH_PAIR(n, k, v) {
        const cf_yt_node_t **slot = s_scalar_eq(k, "id")     ? &id
                                  : s_scalar_eq(k, "role")   ? &role
                                  : s_scalar_eq(k, "key")    ? &key
                                                             : NULL;
        if (!slot)
            return s_fail(c, k, "unknown key in an operator (id, role, key)");
        if (k->dup_of)
            return s_fail(c, k, "key given twice");
        *slot = v;
    }
    if (!id)
        return s_fail(c, n, "operator without 'id'");
    if (!role)
        return s_fail(c, n, "operator without 'role'");
    if (!s_is_scalar(id) ||
        !s_operator_id_ok(id->s, id->len))
        return s_fail(c, id, "'id' must be 1-64 characters of A-Z a-z 0-9 . _ @ - "
                             "and not 'member' or 'system'");
    op->role = 0;
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++)
        if (s_scalar_eq(role, s_roles[i].name))
            op->role = s_roles[i].role;
    if (!op->role)
        return s_fail(c, role, "'role' must be handler, supervisor or auditor");
    if (key && !(s_is_scalar(key) && s_z85_key_ok(key->s, key->len)))
        return s_fail(c, key, "'key' must be a 40-character Z85 CURVE public key");

    op->id = strndup(id->s, id->len);
    op->key = key ? strndup(key->s, key->len) : NULL;
    if (!op->id || (key && !op->key))
        return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
    return 0;
}

static int s_operators(s_ctx_t *c, const cf_yt_node_t *n, cf_config_t *cfg)
{
    if (!n || n->kind != CF_YT_SEQ)
        return s_fail(c, n, "'operators' must be a list");
    size_t count = n->n;
    if (count > CF_CONFIG_MAX_OPERATORS)
        return s_fail(c, n, "'operators' has more than 10000 entries");
    if (count == 0)
        return 0;
    cfg->operators = calloc(count, sizeof *cfg->operators);
    if (!cfg->operators)
        return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
    size_t i = 0;
    CF_YT_EACH_ITEM(n, item) {
        /* Counted before the call so a half-filled entry is freed too. */
        cfg->noperators = i + 1;
        int rc = s_operator(c, item, &cfg->operators[i]);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->operators[j].id, cfg->operators[i].id) == 0)
                return s_fail(c, item, "operator id listed twice");
            /* A key is one identity: two operators with one key could act
             * as each other. */
            if (cfg->operators[i].key && cfg->operators[j].key &&
                strcmp(cfg->operators[j].key, cfg->operators[i].key) == 0)
                return s_fail(c, item, "the same 'key' is given for two operators");
        }
        i++;
    }
    return 0;
}

/* --------------------------------------------------------- curve, portal --- */
/* The keys of a map node, each checked against the allowed names (NULL-
 * terminated) and given at most once; vals[i] gets the value of names[i]. */
static int s_map(s_ctx_t *c, const cf_yt_node_t *n, const char *what,
                 const char *const *names, const cf_yt_node_t **vals)
{
    char msg[160];
    if (!n || n->kind != CF_YT_MAP) {
        snprintf(msg, sizeof msg, "'%s' must be a map", what);
        return s_fail(c, n, msg);
    }
    CF_YT_EACH_PAIR(n, k, v) {
        size_t i = 0;
        while (names[i] && !s_scalar_eq(k, names[i]))
            i++;
        if (!names[i]) {
            snprintf(msg, sizeof msg, "unknown key in '%s' (%s%s%s)", what, names[0],
                     names[1] ? ", " : "", names[1] ? names[1] : "");
            return s_fail(c, k, msg);
        }
        if (k->dup_of)
            return s_fail(c, k, "key given twice");
        vals[i] = v;
    }
    return 0;
}

/* A file name, relative to the config file's directory when it is not
 * absolute, so a config and its files can move together. */
static int s_path(s_ctx_t *c, const cf_yt_node_t *f, const char *what, char **ret)
{
    char msg[96];
    snprintf(msg, sizeof msg, "'%s' must be a file name", what);
    if (!s_is_scalar(f) || f->len == 0 || f->len >= PATH_MAX || memchr(f->s, '\0', f->len))
        return s_fail(c, f, msg);
    const char *slash = strrchr(c->path, '/');
    int dirlen = f->s[0] != '/' && slash ? (int)(slash - c->path + 1) : 0;
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%.*s%.*s", dirlen, c->path, (int)f->len, f->s) >=
        (int)sizeof path) {
        snprintf(msg, sizeof msg, "'%s' is too long", what);
        return s_fail(c, f, msg);
    }
    if (!(*ret = strdup(path)))
        return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
    return 0;
}

static int s_curve(s_ctx_t *c, const cf_yt_node_t *n, cf_config_t *cfg)
{
    static const char *const names[] = {"secret_key_file", NULL};
    const cf_yt_node_t *vals[1] = {NULL};
    int rc = s_map(c, n, "curve", names, vals);
    if (rc < 0)
        return rc;
    const cf_yt_node_t *f = vals[0];
    if (!f)
        return s_fail(c, n, "'curve' without 'secret_key_file'");
    if ((rc = s_path(c, f, "secret_key_file", &cfg->curve_secret_file)) < 0)
        return rc;
    cfg->curve = true;
    return 0;
}

static int s_portal(s_ctx_t *c, const cf_yt_node_t *n, cf_config_t *cfg)
{
    static const char *const names[] = {"keys", NULL};
    const cf_yt_node_t *vals[1] = {NULL};
    int rc = s_map(c, n, "portal", names, vals);
    if (rc < 0)
        return rc;
    const cf_yt_node_t *keys = vals[0];
    if (!keys || keys->kind != CF_YT_SEQ)
        return s_fail(c, keys ? keys : n, "'portal' needs 'keys', a list of CURVE public keys");
    size_t count = keys->n;
    if (count > CF_CONFIG_MAX_PORTAL_KEYS)
        return s_fail(c, keys, "'keys' has more than 10000 entries");
    if (count == 0)
        return 0;
    if (!(cfg->portal_keys = calloc(count, sizeof *cfg->portal_keys)))
        return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
    size_t i = 0;
    CF_YT_EACH_ITEM(keys, k) {
        if (!s_is_scalar(k) || !s_z85_key_ok(k->s, k->len))
            return s_fail(c, k, "each portal key must be a 40-character Z85 CURVE public key");
        memcpy(cfg->portal_keys[i], k->s, CF_KEY_Z85_LEN);
        cfg->portal_keys[i][CF_KEY_Z85_LEN] = '\0';
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->portal_keys[j], cfg->portal_keys[i]) == 0)
                return s_fail(c, k, "portal key listed twice");
        cfg->nportal_keys = ++i;
    }
    return 0;
}

static int s_retention(s_ctx_t *c, const cf_yt_node_t *n, cf_config_t *cfg)
{
    static const char *const names[] = {"closed_claims_days", "access_log_days", NULL};
    const cf_yt_node_t *vals[2] = {NULL, NULL};
    int rc = s_map(c, n, "retention", names, vals);
    if (rc < 0)
        return rc;
    if (!vals[0] && !vals[1])
        return s_fail(c, n, "'retention' without 'closed_claims_days' or 'access_log_days'");
    uint64_t days;
    if (vals[0]) {
        if ((rc = s_uint(c, vals[0], "closed_claims_days", 36500, &days)) < 0)
            return rc;
        cfg->purge_after = (int64_t)days * 86400;
    }
    if (vals[1]) {
        if ((rc = s_uint(c, vals[1], "access_log_days", 36500, &days)) < 0)
            return rc;
        cfg->audit_retention = (int64_t)days * 86400;
    }
    return 0;
}

/* privacy.show_operator_ids_to_members: true or false (the words only, as
 * everywhere in claimflow's YAML). */
static int s_privacy(s_ctx_t *c, const cf_yt_node_t *n, cf_config_t *cfg)
{
    static const char *const names[] = {"show_operator_ids_to_members", NULL};
    const cf_yt_node_t *vals[1] = {NULL};
    int rc = s_map(c, n, "privacy", names, vals);
    if (rc < 0)
        return rc;
    if (!vals[0])
        return 0;
    if (s_scalar_eq(vals[0], "true"))
        cfg->show_operator_ids = true;
    else if (!s_scalar_eq(vals[0], "false"))
        return s_fail(c, vals[0], "'show_operator_ids_to_members' must be true or false");
    return 0;
}

/* http.listen: "IPv4:PORT", "[IPv6]:PORT" or "localhost:PORT" (127.0.0.1),
 * PORT 0-65535.  No other host names: the daemon resolves nothing at start,
 * and "is this loopback?" must have one answer. */
static int s_http(s_ctx_t *c, const cf_yt_node_t *n, cf_config_t *cfg)
{
    static const char *const names[] = {"listen", NULL};
    const cf_yt_node_t *vals[1] = {NULL};
    int rc = s_map(c, n, "http", names, vals);
    if (rc < 0)
        return rc;
    const cf_yt_node_t *l = vals[0];
    if (!l)
        return s_fail(c, n, "'http' without 'listen'");
    static const char msg[] = "'listen' must be ADDRESS:PORT: an IPv4 address, "
                              "[an IPv6 address] or localhost, and a port from 0 to 65535";
    char buf[64];
    if (!s_is_scalar(l) || l->len == 0 || l->len >= sizeof buf || memchr(l->s, '\0', l->len))
        return s_fail(c, l, msg);
    memcpy(buf, l->s, l->len);
    buf[l->len] = '\0';
    char *colon = strrchr(buf, ':');
    if (!colon || colon[1] == '\0' || strlen(colon + 1) > 5)
        return s_fail(c, l, msg);
    unsigned port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (*p < '0' || *p > '9')
            return s_fail(c, l, msg);
        port = port * 10 + (unsigned)(*p - '0');
    }
    if (port > 65535)
        return s_fail(c, l, msg);
    *colon = '\0';
    char *host = buf;
    if (strcmp(host, "localhost") == 0)
        snprintf(buf, sizeof buf, "127.0.0.1");
    memset(&cfg->http_addr, 0, sizeof cfg->http_addr);
    if (host[0] == '[') {
        size_t hl = strlen(host);
        if (hl < 3 || host[hl - 1] != ']')
            return s_fail(c, l, msg);
        host[hl - 1] = '\0';
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&cfg->http_addr;
        if (inet_pton(AF_INET6, host + 1, &a6->sin6_addr) != 1)
            return s_fail(c, l, msg);
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        cfg->http_loopback = IN6_IS_ADDR_LOOPBACK(&a6->sin6_addr);
    } else {
        struct sockaddr_in *a4 = (struct sockaddr_in *)&cfg->http_addr;
        if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
            return s_fail(c, l, msg);
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        cfg->http_loopback = (ntohl(a4->sin_addr.s_addr) >> 24) == 127;
    }
    cfg->http = true;
    return 0;
}

/* A key is one identity: a portal key that is also an operator's would let
 * one party be both (the events socket would not know which). */
static int s_keys_disjoint(s_ctx_t *c, const cf_config_t *cfg)
{
    for (size_t i = 0; i < cfg->nportal_keys; i++)
        for (size_t j = 0; j < cfg->noperators; j++)
            if (cfg->operators[j].key &&
                strcmp(cfg->operators[j].key, cfg->portal_keys[i]) == 0) {
                char msg[160];
                snprintf(msg, sizeof msg, "portal key %zu is also the key of operator '%s'",
                         i + 1, cfg->operators[j].id);
                return s_fail(c, NULL, msg);
            }
    return 0;
}

/* ------------------------------------------------------------- cluster --- */
/* A scalar copied if it is 1..max bytes of the allowed characters. */
static int s_word(s_ctx_t *c, const cf_yt_node_t *n, size_t max, const char *allowed,
                  const char *msg, char **ret)
{
    if (!s_is_scalar(n) || n->len == 0 || n->len > max)
        return s_fail(c, n, msg);
    for (size_t i = 0; i < n->len; i++)
        if (!isalnum((unsigned char)n->s[i]) && !strchr(allowed, n->s[i]))
            return s_fail(c, n, msg);
    if (!(*ret = strndup(n->s, n->len)))
        return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
    return 0;
}

/* A duration: a whole number and s, m, h or d ("24h"). */
static int s_duration(s_ctx_t *c, const cf_yt_node_t *n, const char *what, int64_t *ret)
{
    char msg[128];
    snprintf(msg, sizeof msg, "'%s' must be a whole number and s, m, h or d (e.g. 24h)", what);
    if (!s_is_scalar(n) || n->len < 2 || n->len > 12)
        return s_fail(c, n, msg);
    int64_t v = 0;
    for (size_t i = 0; i + 1 < n->len; i++) {
        if (!isdigit((unsigned char)n->s[i]))
            return s_fail(c, n, msg);
        v = v * 10 + (n->s[i] - '0');
    }
    switch (n->s[n->len - 1]) {
    case 's': break;
    case 'm': v *= 60; break;
    case 'h': v *= 3600; break;
    case 'd': v *= 86400; break;
    default: return s_fail(c, n, msg);
    }
    *ret = v;
    return 0;
}

static int s_cluster(s_ctx_t *c, const cf_yt_node_t *n, cf_config_t *cfg)
{
    static const char *const names[] = {"etcd", "prefix", "node", "lease_seconds",
                                        "log_retention", "tls", NULL};
    const cf_yt_node_t *vals[6] = {NULL};
    int rc = s_map(c, n, "cluster", names, vals);
    if (rc < 0)
        return rc;
    cf_cluster_conf_t *cl = &cfg->cl;
    cl->lease_seconds = 5;
    cl->log_retention = 86400;
    const cf_yt_node_t *urls = vals[0];
    if (!urls || urls->kind != CF_YT_SEQ || urls->n == 0)
        return s_fail(c, urls ? urls : n, "'cluster' needs 'etcd', a list of etcd client URLs");
    if (urls->n > CF_CONFIG_MAX_ETCD)
        return s_fail(c, urls, "'etcd' lists more than 16 URLs");
    CF_YT_EACH_ITEM(urls, u) {
        static const char msg[] = "each etcd URL must be http://HOST:PORT or https://HOST:PORT";
        if (!s_is_scalar(u) || u->len > 200 ||
            !((u->len > 7 && memcmp(u->s, "http://", 7) == 0) ||
              (u->len > 8 && memcmp(u->s, "https://", 8) == 0)))
            return s_fail(c, u, msg);
        for (size_t i = 0; i < u->len; i++)
            if ((unsigned char)u->s[i] <= ' ' || u->s[i] == '"' || u->s[i] == '\\')
                return s_fail(c, u, msg);
        if (!(cl->etcd[cl->netcd] = strndup(u->s, u->len)))
            return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
        cl->netcd++;
    }
    if (!vals[1])
        return s_fail(c, n, "'cluster' needs 'prefix' (e.g. /claimflow/prod)");
    if ((rc = s_word(c, vals[1], 200, "/._-",
                     "'prefix' must be /NAME[/NAME...] of A-Z a-z 0-9 . _ -", &cl->prefix)) < 0)
        return rc;
    size_t pl = strlen(cl->prefix);
    if (cl->prefix[0] != '/' || cl->prefix[pl - 1] == '/' || strstr(cl->prefix, "//"))
        return s_fail(c, vals[1], "'prefix' must be /NAME[/NAME...] of A-Z a-z 0-9 . _ -");
    if (vals[2] && (rc = s_word(c, vals[2], 64, "._-",
                                "'node' must be 1-64 characters of A-Z a-z 0-9 . _ -",
                                &cl->node)) < 0)
        return rc;
    uint64_t u;
    if (vals[3]) {
        if ((rc = s_uint(c, vals[3], "lease_seconds", 60, &u)) < 0)
            return rc;
        if (u < 2)
            return s_fail(c, vals[3], "'lease_seconds' must be from 2 to 60");
        cl->lease_seconds = (unsigned)u;
    }
    if (vals[4] && (rc = s_duration(c, vals[4], "log_retention", &cl->log_retention)) < 0)
        return rc;
    if (vals[5]) {
        static const char *const tnames[] = {"ca", "cert", "key", NULL};
        const cf_yt_node_t *t[3] = {NULL};
        if ((rc = s_map(c, vals[5], "tls", tnames, t)) < 0)
            return rc;
        if ((t[0] && (rc = s_path(c, t[0], "ca", &cl->tls_ca)) < 0) ||
            (t[1] && (rc = s_path(c, t[1], "cert", &cl->tls_cert)) < 0) ||
            (t[2] && (rc = s_path(c, t[2], "key", &cl->tls_key)) < 0))
            return rc;
        if (!t[1] != !t[2])
            return s_fail(c, vals[5], "'tls' needs both 'cert' and 'key', or neither");
    }
    cfg->cluster = true;
    return 0;
}

/* --------------------------------------------------------------- file --- */
static int s_root(s_ctx_t *c, const cf_yt_node_t *root, cf_config_t *cfg)
{
    if (!root)
        return s_fail(c, NULL, "empty file (expected a map with 'operators')");
    if (root->kind != CF_YT_MAP)
        return s_fail(c, root, "the file must be a map");
    CF_YT_EACH_PAIR(root, k, v) {
        uint64_t u;
        int rc;
        if (k->dup_of) {
            return s_fail(c, k, "key given twice");
        } else if (s_scalar_eq(k, "operators")) {
            if ((rc = s_operators(c, v, cfg)) < 0)
                return rc;
        } else if (s_scalar_eq(k, "max_frame")) {
            if ((rc = s_uint(c, v, "max_frame", 64u << 20, &u)) < 0)
                return rc;
            cfg->max_frame = (size_t)u;
        } else if (s_scalar_eq(k, "max_document")) {
            if ((rc = s_uint(c, v, "max_document", 64u << 20, &u)) < 0)
                return rc;
            cfg->max_document = (size_t)u;
        } else if (s_scalar_eq(k, "idempotency_days")) {
            if ((rc = s_uint(c, v, "idempotency_days", 3650, &u)) < 0)
                return rc;
            cfg->idem_retention = (int64_t)u * 86400;
        } else if (s_scalar_eq(k, "consent_changes_per_day")) {
            if ((rc = s_uint(c, v, "consent_changes_per_day", 100000, &u)) < 0)
                return rc;
            cfg->consent_changes = (unsigned)u;
        } else if (s_scalar_eq(k, "curve")) {
            if ((rc = s_curve(c, v, cfg)) < 0)
                return rc;
        } else if (s_scalar_eq(k, "portal")) {
            if ((rc = s_portal(c, v, cfg)) < 0)
                return rc;
        } else if (s_scalar_eq(k, "retention")) {
            if ((rc = s_retention(c, v, cfg)) < 0)
                return rc;
        } else if (s_scalar_eq(k, "privacy")) {
            if ((rc = s_privacy(c, v, cfg)) < 0)
                return rc;
        } else if (s_scalar_eq(k, "http")) {
            if ((rc = s_http(c, v, cfg)) < 0)
                return rc;
        } else if (s_scalar_eq(k, "cluster")) {
            if ((rc = s_cluster(c, v, cfg)) < 0)
                return rc;
        } else {
            return s_fail(c, k, "unknown key (operators, curve, portal, retention, "
                                "privacy, http, cluster, max_frame, max_document, "
                                "idempotency_days, consent_changes_per_day)");
        }
    }
    if (!cf_yt_get(root, "operators"))
        return s_fail(c, root, "no 'operators' list");
    return s_keys_disjoint(c, cfg);
}

static int s_read_file(const char *path, char **ret, size_t *ret_len,
                       cf_error_t *reterr)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cf_error_set(reterr, CF_EBADREQ, "%s: cannot open: %s", path,
                            strerror(errno));
    char *buf = malloc(CF_CONFIG_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    size_t len = fread(buf, 1, CF_CONFIG_MAX_FILE + 1, f);
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cf_error_set(reterr, CF_EBADREQ, "%s: cannot read", path);
    }
    if (len > CF_CONFIG_MAX_FILE) {
        free(buf);
        return cf_error_set(reterr, CF_EBADREQ, "%s: larger than 1 MiB", path);
    }
    *ret = buf;
    *ret_len = len;
    return 0;
}

int cf_config_load(const char *path, cf_config_t **ret, cf_error_t *reterr)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = s_read_file(path, &buf, &len, reterr);
    if (rc < 0)
        return rc;

    cf_config_t *cfg = calloc(1, sizeof *cfg);
    if (!cfg) {
        rc = cf_error_set(reterr, CF_EINTERNAL, "out of memory");
        goto out_free_buf;
    }

    /* The reader's problems: the first one is the line the operator gets. */
    cf_diags_t diags = {0};
    cf_yt_t *yt = NULL;
    rc = cf_yt_parse(path, buf, len, &yt, &diags);
    if (rc == 0 && cf_yt_errors(yt) > 0)
        rc = CF_EBADREQ;
    if (rc == CF_EBADREQ && diags.n > 0) {
        const cf_diag_t *d = &diags.v[0];
        rc = cf_error_set(reterr, CF_EBADREQ, "%s:%lu:%lu: %s", path, (unsigned long)d->line,
                          (unsigned long)d->col, d->message);
        goto out_tree;
    }
    if (rc != 0) {  /* out of memory, in the reader or for its diagnostic */
        rc = cf_error_set(reterr, CF_EINTERNAL, "out of memory");
        goto out_tree;
    }
    s_ctx_t c = {.path = path, .reterr = reterr};
    if ((rc = s_root(&c, cf_yt_root(yt), cfg)) < 0)
        goto out_tree;
    /* Read only once the file is known good: its errors come first. */
    if (cfg->curve &&
        (rc = cf_key_read(cfg->curve_secret_file, true, cfg->curve_secret, reterr)) < 0)
        goto out_tree;

    cf_yt_destroy(&yt);
    cf_diags_clear(&diags);
    free(buf);
    *ret = cfg;
    return 0;

out_tree:
    cf_yt_destroy(&yt);
    cf_diags_clear(&diags);
    cf_config_destroy(&cfg);
out_free_buf:
    free(buf);
    return rc;
}

void cf_config_destroy(cf_config_t **c_p)
{
    if (!c_p || !*c_p)
        return;
    cf_config_t *c = *c_p;
    for (size_t i = 0; i < c->noperators; i++) {
        free((char *)c->operators[i].id);
        free((char *)c->operators[i].key);
    }
    free(c->operators);
    free(c->curve_secret_file);
    free(c->portal_keys);
    for (size_t i = 0; i < c->cl.netcd; i++)
        free(c->cl.etcd[i]);
    free(c->cl.prefix);
    free(c->cl.node);
    free(c->cl.tls_ca);
    free(c->cl.tls_cert);
    free(c->cl.tls_key);
    cf_key_wipe(c->curve_secret);
    free(c);
    *c_p = NULL;
}

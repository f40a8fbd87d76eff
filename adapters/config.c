/* config.c: claimflowd's --config file, read with libyaml's document API.
 *
 * The file is small (a roster, a few numbers), so it is loaded whole into a
 * yaml_document_t and walked; the event API would buy nothing here.  Every
 * check fails with one "path:line:col: what" line, the first problem found:
 * an operator fixes a config file one line at a time, and the daemon must
 * say exactly one line on stderr before it exits 2.
 *
 * Messages name keys and positions, never values: the file is not personal
 * data, but the rule "logs carry no values" is easier to keep without
 * exceptions.
 *
 * libyaml's 1/0 returns are converted here and nowhere else.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "workflow.h"

typedef struct {
    const char *path;
    yaml_document_t *doc;
    cf_error_t *reterr;
} s_ctx_t;

/* ------------------------------------------------------------ helpers --- */
static int s_fail(s_ctx_t *c, const yaml_node_t *n, const char *what)
{
    if (n)
        return cf_error_set(c->reterr, CF_EBADREQ, "%s:%lu:%lu: %s", c->path,
                            (unsigned long)n->start_mark.line + 1,
                            (unsigned long)n->start_mark.column + 1, what);
    return cf_error_set(c->reterr, CF_EBADREQ, "%s: %s", c->path, what);
}

static bool s_is_scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE;
}

static bool s_scalar_eq(const yaml_node_t *n, const char *s)
{
    size_t len = strlen(s);
    return s_is_scalar(n) && n->data.scalar.length == len &&
           memcmp(n->data.scalar.value, s, len) == 0;
}

/* A positive decimal integer scalar no larger than max. */
static int s_uint(s_ctx_t *c, const yaml_node_t *n, const char *key,
                  uint64_t max, uint64_t *ret)
{
    char msg[128];
    snprintf(msg, sizeof msg, "'%s' must be an integer from 1 to %llu", key,
             (unsigned long long)max);
    if (!s_is_scalar(n) || n->data.scalar.length == 0 ||
        n->data.scalar.length > 20)
        return s_fail(c, n, msg);
    uint64_t v = 0;
    for (size_t i = 0; i < n->data.scalar.length; i++) {
        unsigned char ch = n->data.scalar.value[i];
        if (ch < '0' || ch > '9' || v > (max - (ch - '0')) / 10)
            return s_fail(c, n, msg);
        v = v * 10 + (ch - '0');
    }
    if (v == 0)
        return s_fail(c, n, msg);
    *ret = v;
    return 0;
}

static bool s_operator_id_ok(const unsigned char *s, size_t len)
{
    if (len < 1 || len > 64)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = s[i];
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

static bool s_z85_key_ok(const unsigned char *s, size_t len)
{
    static const char z85[] =
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        ".-:+=^!/*?&<>()[]{}@%$#";
    if (len != 40)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!s[i] || !strchr(z85, s[i]))
            return false;
    return true;
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
static int s_operator(s_ctx_t *c, const yaml_node_t *n, cf_operator_t *op)
{
    if (!n || n->type != YAML_MAPPING_NODE)
        return s_fail(c, n, "each operator must be a map of id, role and key");
    const yaml_node_t *id = NULL, *role = NULL, *key = NULL;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start;
         p < n->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        const yaml_node_t **slot = s_scalar_eq(k, "id")     ? &id
                                 : s_scalar_eq(k, "role")   ? &role
                                 : s_scalar_eq(k, "key")    ? &key
                                                            : NULL;
        if (!slot)
            return s_fail(c, k, "unknown key in an operator (id, role, key)");
        if (*slot)
            return s_fail(c, k, "key given twice");
        *slot = v;
    }
    if (!id)
        return s_fail(c, n, "operator without 'id'");
    if (!role)
        return s_fail(c, n, "operator without 'role'");
    if (!s_is_scalar(id) ||
        !s_operator_id_ok(id->data.scalar.value, id->data.scalar.length))
        return s_fail(c, id, "'id' must be 1-64 characters of A-Z a-z 0-9 . _ @ - "
                             "and not 'member' or 'system'");
    op->role = 0;
    for (size_t i = 0; i < sizeof s_roles / sizeof s_roles[0]; i++)
        if (s_scalar_eq(role, s_roles[i].name))
            op->role = s_roles[i].role;
    if (!op->role)
        return s_fail(c, role, "'role' must be handler, supervisor or auditor");
    if (key && !(s_is_scalar(key) &&
                 s_z85_key_ok(key->data.scalar.value, key->data.scalar.length)))
        return s_fail(c, key, "'key' must be a 40-character Z85 CURVE public key");

    op->id = strndup((const char *)id->data.scalar.value, id->data.scalar.length);
    op->key = key ? strndup((const char *)key->data.scalar.value,
                            key->data.scalar.length)
                  : NULL;
    if (!op->id || (key && !op->key))
        return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
    return 0;
}

static int s_operators(s_ctx_t *c, const yaml_node_t *n, cf_config_t *cfg)
{
    if (!n || n->type != YAML_SEQUENCE_NODE)
        return s_fail(c, n, "'operators' must be a list");
    size_t count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (count > CF_CONFIG_MAX_OPERATORS)
        return s_fail(c, n, "'operators' has more than 10000 entries");
    if (count == 0)
        return 0;
    cfg->operators = calloc(count, sizeof *cfg->operators);
    if (!cfg->operators)
        return cf_error_set(c->reterr, CF_EINTERNAL, "out of memory");
    for (size_t i = 0; i < count; i++) {
        const yaml_node_t *item =
            yaml_document_get_node(c->doc, n->data.sequence.items.start[i]);
        /* Counted before the call so a half-filled entry is freed too. */
        cfg->noperators = i + 1;
        int rc = s_operator(c, item, &cfg->operators[i]);
        if (rc < 0)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->operators[j].id, cfg->operators[i].id) == 0)
                return s_fail(c, item, "operator id listed twice");
    }
    return 0;
}

/* --------------------------------------------------------------- file --- */
static int s_root(s_ctx_t *c, cf_config_t *cfg)
{
    const yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (!root)
        return s_fail(c, NULL, "empty file (expected a map with 'operators')");
    if (root->type != YAML_MAPPING_NODE)
        return s_fail(c, root, "the file must be a map");
    bool seen_ops = false, seen_frame = false, seen_doc = false, seen_idem = false;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         p < root->data.mapping.pairs.top; p++) {
        const yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        const yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        uint64_t u;
        int rc;
        if (s_scalar_eq(k, "operators")) {
            if (seen_ops)
                return s_fail(c, k, "key given twice");
            seen_ops = true;
            if ((rc = s_operators(c, v, cfg)) < 0)
                return rc;
        } else if (s_scalar_eq(k, "max_frame")) {
            if (seen_frame)
                return s_fail(c, k, "key given twice");
            seen_frame = true;
            if ((rc = s_uint(c, v, "max_frame", 64u << 20, &u)) < 0)
                return rc;
            cfg->max_frame = (size_t)u;
        } else if (s_scalar_eq(k, "max_document")) {
            if (seen_doc)
                return s_fail(c, k, "key given twice");
            seen_doc = true;
            if ((rc = s_uint(c, v, "max_document", 64u << 20, &u)) < 0)
                return rc;
            cfg->max_document = (size_t)u;
        } else if (s_scalar_eq(k, "idempotency_days")) {
            if (seen_idem)
                return s_fail(c, k, "key given twice");
            seen_idem = true;
            if ((rc = s_uint(c, v, "idempotency_days", 3650, &u)) < 0)
                return rc;
            cfg->idem_retention = (int64_t)u * 86400;
        } else {
            return s_fail(c, k, "unknown key (operators, max_frame, max_document, "
                                "idempotency_days)");
        }
    }
    if (!seen_ops)
        return s_fail(c, root, "no 'operators' list");
    return 0;
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

    yaml_parser_t parser;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&parser)) {
        rc = cf_error_set(reterr, CF_EINTERNAL, "out of memory");
        goto out_free_cfg;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)buf, len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = cf_error_set(reterr, CF_EBADREQ, "%s:%lu:%lu: not valid YAML: %s",
                          path, (unsigned long)parser.problem_mark.line + 1,
                          (unsigned long)parser.problem_mark.column + 1,
                          parser.problem ? parser.problem : "parse error");
        goto out_parser;
    }
    s_ctx_t c = {.path = path, .doc = &doc, .reterr = reterr};
    rc = s_root(&c, cfg);
    yaml_document_delete(&doc);
    if (rc < 0)
        goto out_parser;

    yaml_parser_delete(&parser);
    free(buf);
    *ret = cfg;
    return 0;

out_parser:
    yaml_parser_delete(&parser);
out_free_cfg:
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
    free(c);
    *c_p = NULL;
}

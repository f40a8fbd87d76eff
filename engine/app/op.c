/* op.c: the helpers every op handler shares (op.h). */
#include "op.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void cf_op_key(cf_op_t *op, const char *key)
{
    cf_pack_str(&op->pk, key);
    op->nout++;
}

int cf_op_fail(cf_op_t *op, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op->err.code = code;
    vsnprintf(op->err.message, sizeof op->err.message, fmt, ap);
    va_end(ap);
    return code;
}

int cf_op_str(cf_op_t *op, const char *key, bool required, size_t max, const char **s,
              size_t *len)
{
    const msgpack_object *o = cf_mp_get(op->req, key);
    *s = NULL;
    *len = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        if (required)
            return cf_op_fail(op, CF_EBADREQ, "field '%s' is required", key);
        return 0;
    }
    if (o->type != MSGPACK_OBJECT_STR)
        return cf_op_fail(op, CF_EBADREQ, "field '%s' must be a string", key);
    if (o->via.str.size == 0 || o->via.str.size > max)
        return cf_op_fail(op, CF_EBADREQ, "field '%s' must be 1 to %zu bytes", key, max);
    *s = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
}

int cf_op_int(cf_op_t *op, const char *key, int64_t min, int64_t max, int64_t dflt,
              int64_t *ret)
{
    const msgpack_object *o = cf_mp_get(op->req, key);
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        *ret = dflt;
        return 0;
    }
    int64_t v;
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        v = (int64_t)o->via.u64;
    else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        v = o->via.i64;
    else
        return cf_op_fail(op, CF_EBADREQ, "field '%s' must be an integer", key);
    if (v < min || v > max)
        return cf_op_fail(op, CF_EBADREQ, "field '%s' must be between %lld and %lld", key,
                          (long long)min, (long long)max);
    *ret = v;
    return 0;
}

int cf_op_time(cf_op_t *op, const char *key, bool required, cf_time_t *ret, bool *present)
{
    const char *s;
    size_t n;
    int rc = cf_op_str(op, key, required, 64, &s, &n);
    if (rc != 0)
        return rc;
    *present = s != NULL;
    if (s && cf_time_parse(s, n, ret) != 0)
        return cf_op_fail(op, CF_EBADREQ, "field '%s' must be an RFC 3339 time "
                          "(2026-11-24T09:15:00Z)", key);
    return 0;
}

bool cf_op_by_other(const cf_op_t *op)
{
    return op->ep == CF_EP_PORTAL && op->has_by && op->has_member &&
           memcmp(op->by_hash, op->member_hash, CF_MEMBER_HASH_LEN) != 0;
}

const char *cf_op_audit_actor(const cf_op_t *op)
{
    return cf_op_by_other(op) ? CF_ACTOR_REPRESENTATIVE : op->actor;
}

int cf_op_audit_one(cf_op_t *op, const char *opname, const cf_claim_t *c)
{
    if (op->ep != CF_EP_OPERATOR && !cf_op_by_other(op))
        return 0;
    const char *ids[1] = {c->id};
    int rc = cf_claims_audit(op->b, cf_op_audit_actor(op), opname, ids, 1);
    if (rc == 0)
        op->wrote = op->audited = true;
    return rc;
}

/* op.h: one request being applied, as the op handlers see it, and the
 * helpers they share (reply fields, errors, field readers).  Handlers
 * receive this and the batch context in it - never the engine. */
#ifndef CF_OP_H
#define CF_OP_H

#include <msgpack.h>

#include "claims.h"

/* Replies that list (history, query, audit) stop adding items once the
 * list holds about this many bytes, always holding at least one item, and
 * say where to go on (`next`): no reply grows with the store (only a
 * whole `document` is bigger, up to max_document). */
#define CF_PAGE_BYTES ((size_t)1 << 20)
/* An operator's `purpose` (kept in the access log): its most bytes, and
 * what is kept when a request gives none.  A portal request's entries
 * (export) carry CF_PURPOSE_MEMBER. */
#define CF_PURPOSE_MAX 200
#define CF_PURPOSE_DEFAULT "case handling"
#define CF_PURPOSE_MEMBER "the member's own request"

/* One request being applied. */
typedef struct {
    cf_batch_t *b;
    cf_endpoint_t ep;
    const msgpack_object *req;      /* the request map */
    unsigned role;
    char actor[CF_NAME_MAX + 1];    /* "member" or the operator id */
    bool has_member;                /* portal: the request's member */
    unsigned char member_hash[CF_MEMBER_HASH_LEN];
    /* reply fields beyond ok/id, packed by the op */
    msgpack_sbuffer out;
    msgpack_packer pk;
    uint32_t nout;
    cf_error_t err;
    bool wrote;
    bool audited;                   /* the op wrote its own access-log entry */
    char purpose[CF_PURPOSE_MAX + 1];   /* why an operator reads: the access log */
    /* Who acts (docs/protocol.md, "Members and representatives"). */
    char member_pid[CF_PID_LEN];    /* the request's `member`, canonical ("" none) */
    bool has_by;                    /* `by` names a person (maybe the member) */
    char by[CF_PID_LEN];            /* canonical `by` */
    unsigned char by_hash[CF_MEMBER_HASH_LEN];
    bool phone;                     /* an operator recording a call: channel phone */
    char reference[CF_REFERENCE_MAX + 1];  /* the call's reference */
    unsigned act_role;              /* the role the state machine sees: the
                                     * caller's, or member for a call */
    int by_kind;                    /* the representation `by` acts under
                                     * (cf_rep_kind_t), once checked */
} cf_op_t;

/* A portal request by a representative (`by` someone other than the
 * member): its reads are recorded in the access log like an operator's,
 * as actor CF_ACTOR_REPRESENTATIVE (the log holds no person ids). */
#define CF_ACTOR_REPRESENTATIVE "representative"
bool cf_op_by_other(const cf_op_t *op);
/* The actor an access-log entry of op names. */
const char *cf_op_audit_actor(const cf_op_t *op);

/* Start the next reply field (its value is packed next, on op->pk). */
void cf_op_key(cf_op_t *op, const char *key);
/* Record the op's error (code and message) and return code. */
int cf_op_fail(cf_op_t *op, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Field readers shared by the handlers: 0, or CF_EBADREQ naming the field
 * (recorded in op->err).  A string: required or absent/nil; 1..max bytes.
 * An integer in [min, max], dflt when absent.  A time: RFC 3339. */
int cf_op_str(cf_op_t *op, const char *key, bool required, size_t max, const char **s,
              size_t *len);
int cf_op_int(cf_op_t *op, const char *key, int64_t min, int64_t max, int64_t dflt,
              int64_t *ret);
int cf_op_time(cf_op_t *op, const char *key, bool required, cf_time_t *ret, bool *present);

/* Record an operator's read of one claim's personal data (the access
 * log); nothing on the portal.  0 or a store error. */
int cf_op_audit_one(cf_op_t *op, const char *opname, const cf_claim_t *c);

#endif

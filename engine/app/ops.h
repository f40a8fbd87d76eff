/* ops.h: the protocol's operations (docs/protocol.md): one handler each,
 * found in one table.  The dispatcher (dispatch.c) decodes a request,
 * checks its keys, authorises the caller and handles idempotency before a
 * handler runs; a handler validates its fields, works through the claims
 * layer (claims.h) and packs its reply fields (op.h). */
#ifndef CF_OPS_H
#define CF_OPS_H

#include "op.h"

typedef int (*cf_op_fn)(cf_op_t *op);

#define CF_OPEP_PORTAL   1
#define CF_OPEP_OPERATOR 2

typedef struct {
    const char *name;
    cf_op_fn fn;
    unsigned endpoints;     /* CF_OPEP_* */
    unsigned roles;         /* CF_ROLE_* allowed to call it; 0: anyone */
    bool writes;            /* changes the store: `id` required, idempotent */
    bool needs_member;      /* portal: `member` required */
    const char *const *keys;/* allowed request keys beyond op/id/actor/member */
    /* What a representative acting with `by` needs (CF_SCOPE_* bits, checked
     * by the dispatcher on the portal), CF_OPSCOPE_HANDLER (the handler
     * checks: it depends on the event, the claim or the member's age), or
     * 0 (`by` not allowed). */
    unsigned scope;
    /* Operator endpoint: CF_OPPHONE_ALLOWED (a handler may record the op
     * from a call: channel phone, by, reference), CF_OPPHONE_REQUIRED
     * (only so), or 0. */
    unsigned phone;
    bool operator_member;   /* operator endpoint: `member` allowed */
} cf_op_def_t;

#define CF_OPSCOPE_HANDLER 0x100
#define CF_OPPHONE_ALLOWED 1
#define CF_OPPHONE_REQUIRED 2

/* The op named name[0..len), or NULL. */
const cf_op_def_t *cf_op_find(const char *name, size_t len);

#endif

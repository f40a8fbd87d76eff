/* dispatch.c: the first stage of a request - decoding the frame, checking
 * its keys, authenticating and authorising the caller, idempotency, and
 * packing the reply around what the op handler (ops.c) packed.
 *
 * Idempotency.  A writing request's reply is kept under (endpoint, actor,
 * id) with a hash of the request's bytes, in the same transaction as its
 * effect; a retry gets the kept reply, a different request under the same id
 * gets `conflict`.  Entries older than the retention are pruned a few per
 * batch by the engine (idem_age index).
 */
#include "dispatch.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpcheck.h"
#include "ops.h"
#include "person.h"
#include "reps.h"

/* ========================================================== dispatch === */

static const char *const s_common_keys[] = {"op", "id", "actor", "member", "purpose", "by",
                                            "channel", "reference", NULL};

static bool s_key_allowed(const cf_op_def_t *def, const msgpack_object_str *k)
{
    for (int i = 0; s_common_keys[i]; i++)
        if (strlen(s_common_keys[i]) == k->size && memcmp(s_common_keys[i], k->ptr, k->size) == 0)
            return true;
    for (int i = 0; def->keys && def->keys[i]; i++)
        if (strlen(def->keys[i]) == k->size && memcmp(def->keys[i], k->ptr, k->size) == 0)
            return true;
    return false;
}

/* A key's name for a message: only if short and printable (it is the
 * client's bytes). */
static const char *s_safe_name(const msgpack_object_str *k, char *buf, size_t cap)
{
    if (k->size == 0 || k->size >= cap || k->size > 40)
        return "(unprintable)";
    for (uint32_t i = 0; i < k->size; i++)
        if (k->ptr[i] < 0x21 || k->ptr[i] > 0x7e)
            return "(unprintable)";
    memcpy(buf, k->ptr, k->size);
    buf[k->size] = '\0';
    return buf;
}

static const cf_operator_t *s_operator(const cf_limits_t *lim, const msgpack_object *actor)
{
    for (size_t i = 0; i < lim->noperators; i++)
        if (cf_mp_streq(actor, lim->operators[i].id))
            return &lim->operators[i];
    return NULL;
}

/* An operator's `purpose`: printable text of 1..CF_PURPOSE_MAX bytes, kept
 * in the access log; CF_PURPOSE_DEFAULT when absent. */
static int s_purpose(cf_op_t *op)
{
    const msgpack_object *p = cf_mp_get(op->req, "purpose");
    snprintf(op->purpose, sizeof op->purpose, "%s", CF_PURPOSE_DEFAULT);
    if (!p || p->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (p->type != MSGPACK_OBJECT_STR || p->via.str.size == 0 ||
        p->via.str.size > CF_PURPOSE_MAX)
        return cf_op_fail(op, CF_EBADREQ, "field 'purpose' must be a string of 1 to %d bytes",
                          CF_PURPOSE_MAX);
    for (uint32_t i = 0; i < p->via.str.size; i++) {
        unsigned char ch = (unsigned char)p->via.str.ptr[i];
        if (ch < 0x20 || ch == 0x7f)
            return cf_op_fail(op, CF_EBADREQ, "field 'purpose' must not hold control "
                              "characters");
    }
    memcpy(op->purpose, p->via.str.ptr, p->via.str.size);
    op->purpose[p->via.str.size] = '\0';
    return 0;
}

/* `by`: the person acting, canonical, and its hash. */
static int s_by(cf_op_t *op)
{
    const msgpack_object *by = cf_mp_get(op->req, "by");
    if (by->type != MSGPACK_OBJECT_STR ||
        cf_pid_canonical(by->via.str.ptr, by->via.str.size, op->by) != 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'by' is not a valid person id (Danish CPR or "
                          "Norwegian national identity or D-number)");
    cf_claims_member_hash(op->b, op->by, op->by_hash);
    op->has_by = true;
    return 0;
}

/* An operator's `channel`, `by`, `reference`: a call the Health Team
 * records for a member; and the member such a request names. */
static int s_phone(cf_op_t *op, const cf_op_def_t *def)
{
    const msgpack_object *ch = cf_mp_get(op->req, "channel");
    if (!ch) {
        if (cf_mp_get(op->req, "by") || cf_mp_get(op->req, "reference"))
            return cf_op_fail(op, CF_EBADREQ, "fields 'by' and 'reference' need channel "
                              "'phone' on the operator endpoint");
        return 0;
    }
    if (!cf_mp_streq(ch, "phone"))
        return cf_op_fail(op, CF_EBADREQ, "field 'channel' must be 'phone' (an operator "
                          "recording a call)");
    if (!def->phone)
        return cf_op_fail(op, CF_EBADREQ, "op '%s' is not recorded from a call", def->name);
    if (!cf_mp_get(op->req, "by"))
        return cf_op_fail(op, CF_EBADREQ, "field 'by' is required with channel 'phone' (the "
                          "person the operator spoke to)");
    int rc = s_by(op);
    if (rc != 0)
        return rc;
    const char *ref;
    size_t rl;
    if ((rc = cf_op_str(op, "reference", true, CF_REFERENCE_MAX, &ref, &rl)) != 0)
        return rc;
    for (size_t i = 0; i < rl; i++)
        if ((unsigned char)ref[i] < 0x20 || ref[i] == 0x7f)
            return cf_op_fail(op, CF_EBADREQ, "field 'reference' must not hold control "
                              "characters");
    memcpy(op->reference, ref, rl);
    op->reference[rl] = '\0';
    op->phone = true;
    /* The access-log entry says it was a call (its reference is no
     * person id), unless the operator gave a purpose. */
    if (!cf_mp_get(op->req, "purpose"))
        snprintf(op->purpose, sizeof op->purpose, "phone call %.*s",
                 (int)(sizeof op->purpose - 12), op->reference);
    const msgpack_object *m = cf_mp_get(op->req, "member");
    if (m && def->operator_member) {
        if (m->type != MSGPACK_OBJECT_STR ||
            cf_pid_canonical(m->via.str.ptr, m->via.str.size, op->member_pid) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'member' is not a valid person id (Danish "
                              "CPR or Norwegian national identity or D-number)");
        cf_claims_member_hash(op->b, op->member_pid, op->member_hash);
        op->has_member = true;
    }
    return 0;
}

/* Authenticate and authorise: who is asking, may they use this op here. */
static int s_authorise(cf_op_t *op, const cf_op_def_t *def, const cf_request_t *req)
{
    cf_batch_t *b = op->b;
    int rc;
    if (req->endpoint == CF_EP_PORTAL) {
        if (!(def->endpoints & CF_OPEP_PORTAL))
            return cf_op_fail(op, CF_EFORBIDDEN, "op '%s' is not served on the portal endpoint",
                              def->name);
        op->role = CF_ROLE_MEMBER;
        snprintf(op->actor, sizeof op->actor, "member");
        if (cf_mp_get(op->req, "purpose"))
            return cf_op_fail(op, CF_EBADREQ, "field 'purpose' is not allowed on the portal "
                              "endpoint (a member's reads are their own)");
        snprintf(op->purpose, sizeof op->purpose, "%s", CF_PURPOSE_MEMBER);
        const msgpack_object *m = cf_mp_get(op->req, "member");
        if (def->needs_member && !m)
            return cf_op_fail(op, CF_EBADREQ, "field 'member' is required on the portal endpoint");
        if (m) {
            char canon[12];
            if (m->type != MSGPACK_OBJECT_STR ||
                cf_pid_canonical(m->via.str.ptr, m->via.str.size, canon) != 0)
                return cf_op_fail(op, CF_EBADREQ,
                                  "field 'member' is not a valid person id (Danish CPR or "
                                  "Norwegian national identity or D-number)");
            cf_claims_member_hash(b, canon, op->member_hash);
            snprintf(op->member_pid, sizeof op->member_pid, "%s", canon);
            op->has_member = true;
        }
        if (cf_mp_get(op->req, "channel") || cf_mp_get(op->req, "reference"))
            return cf_op_fail(op, CF_EBADREQ, "fields 'channel' and 'reference' are for "
                              "operators recording a call, not the portal");
        op->act_role = CF_ROLE_MEMBER;
        /* `by` on an op that acts for no member (ping) is checked and
         * ignored: a portal session sends it on every request. */
        if (cf_mp_get(op->req, "by")) {
            if (def->scope && !m)
                return cf_op_fail(op, CF_EBADREQ, "field 'by' needs field 'member'");
            if ((rc = s_by(op)) != 0)
                return rc;
            if (!def->scope)
                op->has_by = false;
        }
        return 0;
    }
    if (!(def->endpoints & CF_OPEP_OPERATOR))
        return cf_op_fail(op, CF_EFORBIDDEN, "op '%s' is not served on the operator endpoint",
                          def->name);
    if ((rc = s_purpose(op)) != 0)
        return rc;
    if (cf_mp_get(op->req, "member") && !def->operator_member)
        return cf_op_fail(op, CF_EBADREQ, "field 'member' is not allowed on the operator "
                          "endpoint for op '%s'", def->name);
    if ((rc = s_phone(op, def)) != 0)
        return rc;
    const msgpack_object *a = cf_mp_get(op->req, "actor");
    if (!a) {
        if (def->roles == 0) { /* ping */
            snprintf(op->actor, sizeof op->actor, "anonymous");
            return 0;
        }
        return cf_op_fail(op, CF_EBADREQ, "field 'actor' is required on the operator endpoint");
    }
    if (a->type != MSGPACK_OBJECT_STR)
        return cf_op_fail(op, CF_EBADREQ, "field 'actor' must be a string");
    const cf_operator_t *o = s_operator(b->lim, a);
    if (!o)
        return cf_op_fail(op, CF_EFORBIDDEN, "actor is not an operator in the roster");
    if (req->auth_actor && strcmp(req->auth_actor, o->id) != 0)
        return cf_op_fail(op, CF_EFORBIDDEN,
                          "actor '%s' does not match the operator authenticated by the key", o->id);
    op->role = o->role;
    /* A call recorded by the Health Team: the handler relays what the
     * member (or their representative) asked, so the workflow sees the
     * member's role; the event names the operator, `by` and the call. */
    op->act_role = op->phone ? CF_ROLE_MEMBER : o->role;
    snprintf(op->actor, sizeof op->actor, "%s", o->id);
    if (def->roles && !(def->roles & o->role))
        return cf_op_fail(op, CF_EFORBIDDEN, "role '%s' may not use op '%s'",
                          cf_role_name(o->role), def->name);
    if (op->phone && !(o->role & (CF_ROLE_HANDLER | CF_ROLE_SUPERVISOR)))
        return cf_op_fail(op, CF_EFORBIDDEN, "role '%s' may not record a call",
                          cf_role_name(o->role));
    if (def->phone == CF_OPPHONE_REQUIRED && !op->phone)
        return cf_op_fail(op, CF_EFORBIDDEN, "an operator records op '%s' only from a call "
                          "(channel 'phone', 'by' and 'reference')", def->name);
    return 0;
}

/* The idempotency key: endpoint, actor, request id.  On the portal the
 * actor is the member the request names: ids are scoped per member, so one
 * member's ids neither block nor reveal another's. */
static size_t s_idem_key(unsigned char *k, const cf_op_t *op, const msgpack_object *id)
{
    if (op->ep == CF_EP_PORTAL && op->has_member)
        return cf_key_idem_member(k, op->member_hash,
                                  op->has_by && memcmp(op->by_hash, op->member_hash,
                                                       CF_MEMBER_HASH_LEN) != 0
                                      ? op->by_hash : NULL,
                                  id->via.str.ptr, id->via.str.size);
    return cf_key_idem(k, op->ep == CF_EP_PORTAL ? 'p' : 'o', op->actor, id->via.str.ptr,
                       id->via.str.size);
}

/* An operator request that names a claim or a member is an access to that
 * member's data whatever its outcome (a refused event still tells the
 * claim's state; a query that finds nothing still tells that): the ops
 * that show data log their own entry; every other one gets one here.  The
 * entry names the claim when the request named a claim id. */
static int s_audit_rest(cf_op_t *op, const cf_op_def_t *def)
{
    if (op->ep != CF_EP_OPERATOR || op->audited || strcmp(def->name, "audit") == 0 ||
        strcmp(def->name, "purge") == 0)
        return 0;
    const msgpack_object *c = cf_mp_get(op->req, "claim");
    const msgpack_object *m = cf_mp_get(op->req, "member");
    bool claim = c && c->type == MSGPACK_OBJECT_STR && c->via.str.size == CF_ID_LEN;
    if (!claim && !(m && m->type == MSGPACK_OBJECT_STR))
        return 0;
    char id[CF_ID_LEN + 1];
    const char *ids[1] = {id};
    if (claim)
        snprintf(id, sizeof id, "%.*s", (int)CF_ID_LEN, c->via.str.ptr);
    int rc = cf_claims_audit(op->b, op->actor, def->name, ids, claim ? 1 : 0);
    if (rc == 0)
        op->wrote = op->audited = true;
    return rc;
}

/* Finish a reply: {ok, id?, fields...} or {ok: false, id?, error}. */
static void s_reply_finish(cf_op_t *op, int code, const msgpack_object *id, cf_reply_t *r)
{
    if (code != 0) {
        cf_reply_error_id(r, code, op->err.message[0] ? op->err.message : cf_strerror(code), id);
        return;
    }
    msgpack_sbuffer_clear(&r->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1 + (id ? 1 : 0) + op->nout);
    cf_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    if (id) {
        cf_pack_str(&pk, "id");
        msgpack_pack_object(&pk, *id);
    }
    if (op->out.size)
        msgpack_sbuffer_write(&r->body, op->out.data, op->out.size);
    r->code = 0;
}

void cf_dispatch(cf_batch_t *b, const cf_request_t *req, cf_reply_t *r)
{
    cf_op_t op;
    memset(&op, 0, sizeof op);
    op.b = b;
    op.ep = req->endpoint;
    msgpack_sbuffer_init(&op.out);
    msgpack_packer_init(&op.pk, &op.out, msgpack_sbuffer_write);
    r->wrote = false;

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *idobj = NULL;
    int code = 0;
    size_t off = 0;
    /* Checked before unpacking: msgpack-c trusts declared counts. */
    int chk = cf_mpcheck(req->frame, req->len, NULL);
    msgpack_unpack_return ur = chk == 0
        ? msgpack_unpack_next(&up, req->frame, req->len, &off)
        : chk > 0 ? MSGPACK_UNPACK_CONTINUE : MSGPACK_UNPACK_PARSE_ERROR;
    if (chk == CF_MPCHECK_TOO_MANY_KEYS) {
        code = cf_op_fail(&op, CF_EBADREQ, "%s", cf_mpcheck_strerror(chk));
        goto out;
    }
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        code = cf_op_fail(&op, CF_EBADREQ, ur == MSGPACK_UNPACK_CONTINUE
                                               ? "the frame is truncated msgpack, or declares more elements than it holds"
                                               : "the frame is not msgpack, or nests deeper than 32");
        goto out;
    }
    if (off != req->len) {
        code = cf_op_fail(&op, CF_EBADREQ, "the frame holds bytes after the request map");
        goto out;
    }
    op.req = &up.data;
    if (op.req->type != MSGPACK_OBJECT_MAP) {
        code = cf_op_fail(&op, CF_EBADREQ, "the request must be a msgpack map");
        goto out;
    }
    for (uint32_t i = 0; i < op.req->via.map.size; i++) {
        const msgpack_object *k = &op.req->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            code = cf_op_fail(&op, CF_EBADREQ, "the request map's keys must be strings");
            goto out;
        }
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *k2 = &op.req->via.map.ptr[j].key;
            /* An empty string's ptr may be NULL: memcmp must not see it. */
            if (k2->via.str.size == k->via.str.size &&
                (k->via.str.size == 0 ||
                 memcmp(k2->via.str.ptr, k->via.str.ptr, k->via.str.size) == 0)) {
                code = cf_op_fail(&op, CF_EBADREQ, "the request map repeats a key");
                goto out;
            }
        }
    }
    const msgpack_object *id = cf_mp_get(op.req, "id");
    if (id) {
        if (id->type != MSGPACK_OBJECT_STR || id->via.str.size < 1 || id->via.str.size > 128) {
            code = cf_op_fail(&op, CF_EBADREQ, "field 'id' must be a string of 1 to 128 bytes");
            goto out;
        }
        idobj = id;
    }
    const msgpack_object *opname = cf_mp_get(op.req, "op");
    if (!opname) {
        code = cf_op_fail(&op, CF_EBADREQ, "field 'op' is required");
        goto out;
    }
    if (opname->type != MSGPACK_OBJECT_STR) {
        code = cf_op_fail(&op, CF_EBADREQ, "field 'op' must be a string");
        goto out;
    }
    const cf_op_def_t *def = cf_op_find(opname->via.str.ptr, opname->via.str.size);
    if (!def) {
        char nb[48];
        code = cf_op_fail(&op, CF_EUNKNOWNOP, "unknown op '%s' (see docs/protocol.md)",
                          s_safe_name(&opname->via.str, nb, sizeof nb));
        goto out;
    }
    for (uint32_t i = 0; i < op.req->via.map.size; i++) {
        const msgpack_object_str *k = &op.req->via.map.ptr[i].key.via.str;
        if (!s_key_allowed(def, k)) {
            char nb[48];
            code = cf_op_fail(&op, CF_EBADREQ, "field '%s' is not allowed in op '%s'",
                              s_safe_name(k, nb, sizeof nb), def->name);
            goto out;
        }
    }
    r->op = def->name;
    if ((code = s_authorise(&op, def, req)) != 0)
        goto out;
    if (def->writes && !id) {
        code = cf_op_fail(&op, CF_EBADREQ, "field 'id' is required for op '%s' (the "
                          "idempotency key)", def->name);
        goto out;
    }

    unsigned char ikey[CF_IDEM_KEY_MAX];
    size_t iklen = 0;
    unsigned char hash[32];
    if (def->writes) {
        iklen = s_idem_key(ikey, &op, id);
        crypto_generichash(hash, sizeof hash, req->frame, req->len, NULL, 0);
        cf_bytes_t v;
        int rc = cf_txn_get(b->txn, CF_DB_IDEM, ikey, iklen, &v);
        if (rc == 0) {
            if (v.len < CF_IDEM_HEAD || memcmp(v.data, hash, 32) != 0) {
                code = cf_op_fail(&op, CF_ECONFLICT, "request id was already used for a "
                                  "different request");
                goto out;
            }
            /* The same request again: the same reply, no second effect. */
            msgpack_sbuffer_clear(&r->body);
            msgpack_sbuffer_write(&r->body, (const char *)v.data + CF_IDEM_HEAD,
                                  v.len - CF_IDEM_HEAD);
            /* The kept reply's code: ok or the error it gave. */
            msgpack_unpacked ru;
            msgpack_unpacked_init(&ru);
            size_t ro = 0;
            r->code = 0;
            if (msgpack_unpack_next(&ru, r->body.data, r->body.size, &ro) ==
                MSGPACK_UNPACK_SUCCESS) {
                const msgpack_object *err = cf_mp_get(cf_mp_get(&ru.data, "error"), "code");
                if (err && err->type == MSGPACK_OBJECT_STR) {
                    char cb[32];
                    snprintf(cb, sizeof cb, "%.*s", (int)err->via.str.size, err->via.str.ptr);
                    r->code = cf_errcode(cb);
                }
            }
            msgpack_unpacked_destroy(&ru);
            msgpack_sbuffer_destroy(&op.out);
            msgpack_unpacked_destroy(&up);
            return;
        }
        if (rc != CF_ENOTFOUND) {
            code = cf_op_fail(&op, rc, "the store cannot be read");
            goto out;
        }
    }

    /* A representative acting (`by`): the scope the op needs, in one
     * place; ops whose scope depends on the event, the claim or the
     * member's age check it themselves (CF_OPSCOPE_HANDLER). */
    code = 0;
    if (op.ep == CF_EP_PORTAL && op.has_by && !(def->scope & CF_OPSCOPE_HANDLER))
        code = cf_reps_require(&op, op.member_hash, def->scope);
    /* What the access-log entries of this request say about it: a
     * representative's reads are recorded like an operator's, under the
     * kind of representation (never the person id). */
    b->audit_role = cf_role_name(op.role);
    b->audit_purpose = op.purpose;
    if (cf_op_by_other(&op)) {
        b->audit_role = CF_ACTOR_REPRESENTATIVE;
        snprintf(op.purpose, sizeof op.purpose, "read by the member's %s",
                 op.by_kind ? cf_rep_kind_name(op.by_kind) : "representative");
    }
    if (code == 0)
        code = def->fn(&op);
    if (!cf_batch_failed(b) && s_audit_rest(&op, def) != 0 && code == 0)
        code = cf_op_fail(&op, CF_EUNAVAIL, "the access log cannot be written");
    b->audit_role = b->audit_purpose = NULL;
    if (cf_batch_failed(b)) {
        if (code == 0)
            code = cf_op_fail(&op, CF_EUNAVAIL, "the store cannot take writes now");
        goto out;
    }
    s_reply_finish(&op, code, idobj, r);
    r->wrote = op.wrote;
    if (def->writes && code != CF_EUNAVAIL && code != CF_EINTERNAL) {
        /* Keep the reply (and its age index entry); a failed write fails
         * the batch, which then re-runs without this request. */
        unsigned char *val;
        size_t vl;
        if (cf_idem_encode(hash, b->now, r->body.data, r->body.size, &val, &vl) != 0) {
            code = cf_op_fail(&op, CF_EINTERNAL, "out of memory");
            goto out;
        }
        int rc = cf_txn_put(b->txn, CF_DB_IDEM, ikey, iklen, val, vl);
        free(val);
        unsigned char akey[8 + sizeof ikey];
        size_t al = cf_key_idem_age(akey, b->now, ikey, iklen);
        if (rc == 0)
            cf_txn_put(b->txn, CF_DB_IDEM_AGE, akey, al, "", 0);
        r->wrote = true;
    }
    msgpack_sbuffer_destroy(&op.out);
    msgpack_unpacked_destroy(&up);
    return;
out:
    s_reply_finish(&op, code, idobj, r);
    msgpack_sbuffer_destroy(&op.out);
    msgpack_unpacked_destroy(&up);
}


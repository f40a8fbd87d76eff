/* ops.c: the protocol's operations (docs/protocol.md), one function each,
 * and the table the dispatcher (engine.c) finds them in.
 *
 * Every writing op follows the same shape: read and validate everything,
 * run the state machine, compute due times - and only then write.  A refused
 * request returns before its first write, which is what lets a batch share
 * one transaction without nested transactions.
 */
#include "engine_int.h"

#include <openssl/sha.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "person.h"

/* ============================================================ helpers === */

/* A string field: 0 and its bytes, or CF_EBADREQ naming it. */
static int s_str(cf_op_t *op, const char *key, bool required, size_t max, const char **s,
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

static int s_int(cf_op_t *op, const char *key, int64_t min, int64_t max, int64_t dflt,
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

static int s_time(cf_op_t *op, const char *key, bool required, cf_time_t *ret, bool *present)
{
    const char *s;
    size_t n;
    int rc = s_str(op, key, required, 64, &s, &n);
    if (rc != 0)
        return rc;
    *present = s != NULL;
    if (s && cf_time_parse(s, n, ret) != 0)
        return cf_op_fail(op, CF_EBADREQ, "field '%s' must be an RFC 3339 time "
                          "(2026-11-24T09:15:00Z)", key);
    return 0;
}

/* Load the claim the request names in `claim`; on the portal, a claim of
 * another member is not_found (its existence is not disclosed). */
static int s_load(cf_op_t *op, cf_claim_t *c)
{
    const char *id;
    size_t n;
    int rc = s_str(op, "claim", true, 128, &id, &n);
    if (rc != 0)
        return rc;
    rc = cf_engine_load_claim(op->e, id, n, c);
    if (rc == CF_ENOTFOUND)
        return cf_op_fail(op, CF_ENOTFOUND, "no claim with that id");
    if (rc != 0)
        return cf_op_fail(op, rc, "the claim cannot be read");
    if (op->ep == CF_EP_PORTAL &&
        (!c->has_member || memcmp(c->member, op->member_hash, CF_MEMBER_HASH_LEN) != 0)) {
        cf_claim_fini(c);
        return cf_op_fail(op, CF_ENOTFOUND, "no claim with that id");
    }
    return 0;
}

static void s_sm_fail(cf_op_t *op, const cf_error_t *err)
{
    op->err = *err;
}

/* Record an operator's read of one claim's personal data. */
static int s_audit_one(cf_op_t *op, const char *opname, const cf_claim_t *c)
{
    if (op->ep != CF_EP_OPERATOR)
        return 0;
    const char *ids[1] = {c->id};
    int rc = cf_engine_audit(op->e, op->actor, opname, ids, 1);
    if (rc == 0)
        op->wrote = true;
    return rc;
}

/* Pack a msgpack object (event data) for the history, or NULL/0 when none. */
static void s_pack_obj(msgpack_sbuffer *sb, const msgpack_object *o)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_object(&pk, *o);
}

/* ============================================================== ping === */

static int s_ping(cf_op_t *op)
{
    cf_engine_t *e = op->e;
    cf_op_key(op, "version");
    cf_pack_str(&op->pk, cf_engine_version());
    /* The engine's clock (manual or real), so a client measures ages
     * against the daemon's time, not its own. */
    cf_op_key(op, "now");
    cf_pack_time(&op->pk, e->now);
    cf_op_key(op, "workflows");
    msgpack_pack_array(&op->pk, (uint32_t)e->nwfs);
    for (size_t i = 0; i < e->nwfs; i++) {
        msgpack_pack_map(&op->pk, 2);
        cf_pack_str(&op->pk, "name");
        cf_pack_str(&op->pk, e->wfs[i].wf->name);
        cf_pack_str(&op->pk, "version");
        msgpack_pack_int64(&op->pk, e->wfs[i].wf->version);
    }
    return 0;
}

/* ============================================================ create === */

static int s_create(cf_op_t *op)
{
    cf_engine_t *e = op->e;
    const char *wname;
    size_t wlen;
    int rc = s_str(op, "workflow", true, CF_NAME_MAX, &wname, &wlen);
    if (rc != 0)
        return rc;
    const msgpack_object *data = cf_mp_get(op->req, "data");
    if (!data)
        return cf_op_fail(op, CF_EBADREQ, "field 'data' is required");
    if (data->type != MSGPACK_OBJECT_MAP)
        return cf_op_fail(op, CF_EBADREQ, "field 'data' must be a map");
    const cf_wf_entry_t *w = cf_engine_wf(e, wname, wlen, 0);
    if (!w)
        return cf_op_fail(op, CF_ENOTFOUND, "no workflow by that name (ping lists them)");
    const cf_wf_t *wf = w->wf;

    cf_claim_t c;
    memset(&c, 0, sizeof c);
    c.wf = wf;
    c.prev = -1;
    c.data = *data;

    /* The member: data.member, or the member of the claim referred to. */
    const msgpack_object *m = cf_mp_get(data, "member");
    char canon[12];
    if (m && cf_wf_field_find(wf, "member") >= 0 && m->type == MSGPACK_OBJECT_STR &&
        cf_pid_canonical(m->via.str.ptr, m->via.str.size, canon) == 0) {
        cf_engine_member_hash(e, canon, c.member);
        c.has_member = true;
    }
    for (size_t i = 0; i < wf->nfields; i++) {
        if (wf->fields[i].type != CF_FT_CLAIM)
            continue;
        const msgpack_object *p = cf_mp_get(data, wf->fields[i].name);
        if (!p || p->type != MSGPACK_OBJECT_STR)
            break; /* the state machine names the field */
        cf_claim_t parent;
        rc = cf_engine_load_claim(e, p->via.str.ptr, p->via.str.size, &parent);
        if (rc == 0 && op->ep == CF_EP_PORTAL &&
            (!parent.has_member || memcmp(parent.member, op->member_hash, 16) != 0)) {
            cf_claim_fini(&parent);
            rc = CF_ENOTFOUND;
        }
        if (rc == CF_ENOTFOUND)
            return cf_op_fail(op, CF_ENOTFOUND, "field '%s' names no claim", wf->fields[i].name);
        if (rc != 0)
            return cf_op_fail(op, rc, "the claim referred to cannot be read");
        memcpy(c.parent, parent.id, sizeof c.parent);
        if (parent.has_member) {
            memcpy(c.member, parent.member, CF_MEMBER_HASH_LEN);
            c.has_member = true;
        }
        cf_claim_fini(&parent);
        break;
    }
    if (op->ep == CF_EP_PORTAL && c.has_member &&
        memcmp(c.member, op->member_hash, CF_MEMBER_HASH_LEN) != 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'member' and the claim's member differ");

    cf_sm_ctx_t ctx = {.now = e->now, .claim_data = data};
    if (c.has_member && (rc = cf_engine_consent_ctx(e, c.member, &ctx)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    cf_sm_result_t r;
    cf_error_t err;
    if ((rc = cf_sm_create(wf, op->role, data, &ctx, &r, &err)) != 0) {
        s_sm_fail(op, &err);
        return rc;
    }
    if (op->ep == CF_EP_PORTAL && !c.has_member)
        return cf_op_fail(op, CF_EBADREQ, "this workflow's claims have no member; the portal "
                          "cannot create them");
    cf_time_t dues[CF_CLAIM_MAX_TIMERS];
    if ((rc = cf_engine_dues(e, &c, &r, dues)) != 0)
        return cf_op_fail(op, rc, "a timer's due time is outside the calendar's years");

    cf_engine_new_id(e, c.id);
    c.created = c.updated = e->now;
    c.state = r.next.state; /* write_transition moves from here to next */
    if (c.has_member) {
        unsigned char k[CF_MEMBER_HASH_LEN + CF_ID_LEN];
        memcpy(k, c.member, CF_MEMBER_HASH_LEN);
        memcpy(k + CF_MEMBER_HASH_LEN, c.id, CF_ID_LEN);
        if ((rc = cf_engine_put(e, CF_DB_IDX_MEMBER, k, sizeof k, "", 0)) != 0)
            return rc;
    }
    if ((rc = cf_engine_write_transition(e, &c, &r, "claim.created", op->actor, NULL, 0, dues,
                                         true)) != 0)
        return rc;
    op->wrote = true;
    cf_op_key(op, "claim");
    cf_claim_pack_reply(&op->pk, &c);
    return 0;
}

/* ============================================================== send === */

/* Apply event (with data) to c as op's actor and write it. */
static int s_apply(cf_op_t *op, cf_claim_t *c, const char *event, size_t elen,
                   const msgpack_object *data, const char *hist, size_t hlen)
{
    cf_engine_t *e = op->e;
    cf_sm_ctx_t ctx = {.now = e->now, .claim_data = &c->data};
    int rc;
    if (c->has_member && (rc = cf_engine_consent_ctx(e, c->member, &ctx)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    cf_sm_claim_t cur = {c->state, c->prev, c->flags};
    cf_sm_result_t r;
    cf_error_t err;
    if ((rc = cf_sm_apply(c->wf, &cur, event, elen, op->role, data, &ctx, &r, &err)) != 0) {
        s_sm_fail(op, &err);
        return rc;
    }
    cf_time_t dues[CF_CLAIM_MAX_TIMERS];
    if ((rc = cf_engine_dues(e, c, &r, dues)) != 0)
        return cf_op_fail(op, rc, "a timer's due time is outside the calendar's years");
    char ev[CF_NAME_MAX + 1];
    snprintf(ev, sizeof ev, "%.*s", (int)elen, event);
    if ((rc = cf_engine_write_transition(e, c, &r, ev, op->actor, hist, hlen, dues, false)) != 0)
        return rc;
    op->wrote = true;
    return 0;
}

static int s_send(cf_op_t *op)
{
    const char *event;
    size_t elen;
    int rc = s_str(op, "event", true, CF_NAME_MAX, &event, &elen);
    if (rc != 0)
        return rc;
    const msgpack_object *data = cf_mp_get(op->req, "data");
    if (data && data->type != MSGPACK_OBJECT_MAP && data->type != MSGPACK_OBJECT_NIL)
        return cf_op_fail(op, CF_EBADREQ, "field 'data' must be a map");
    if (elen > 9 && memcmp(event, "document.", 9) == 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'event': document events are sent by "
                          "attaching the document (op 'attach')");
    cf_claim_t c;
    if ((rc = s_load(op, &c)) != 0)
        return rc;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    if (data && data->type == MSGPACK_OBJECT_MAP && data->via.map.size)
        s_pack_obj(&sb, data);
    rc = s_apply(op, &c, event, elen, data, sb.size ? sb.data : NULL, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0) {
        cf_op_key(op, "claim");
        cf_claim_pack_reply(&op->pk, &c);
    }
    cf_claim_fini(&c);
    return rc;
}

/* ============================================================ attach === */

static bool s_kind_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32 || s[0] < 'a' || s[0] > 'z')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static int s_attach(cf_op_t *op)
{
    cf_engine_t *e = op->e;
    const char *kind, *ctype;
    size_t klen, clen;
    int rc;
    if ((rc = s_str(op, "kind", true, 32, &kind, &klen)) != 0 ||
        (rc = s_str(op, "content_type", true, 127, &ctype, &clen)) != 0)
        return rc;
    if (!s_kind_ok(kind, klen))
        return cf_op_fail(op, CF_EBADREQ, "field 'kind' must be a lower-case name "
                          "([a-z][a-z0-9_]*, at most 32 bytes)");
    const msgpack_object *body = cf_mp_get(op->req, "body");
    if (!body)
        return cf_op_fail(op, CF_EBADREQ, "field 'body' is required");
    if (body->type != MSGPACK_OBJECT_BIN)
        return cf_op_fail(op, CF_EBADREQ, "field 'body' must be msgpack bin");
    if (body->via.bin.size == 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'body' is empty");
    if (body->via.bin.size > e->max_document)
        return cf_op_fail(op, CF_ETOOLARGE, "the document is %u bytes; the limit is %zu",
                          body->via.bin.size, e->max_document);
    if (klen == 8 && memcmp(kind, "referral", 8) == 0) {
        if (clen != 15 || memcmp(ctype, "application/pdf", 15) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'content_type': a referral must be "
                              "application/pdf");
        if (body->via.bin.size < 5 || memcmp(body->via.bin.ptr, "%PDF-", 5) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'body': a referral must be a PDF (it does "
                              "not start with %%PDF-)");
    }
    cf_claim_t c;
    if ((rc = s_load(op, &c)) != 0)
        return rc;
    if (c.ndocs == CF_CLAIM_MAX_DOCS) {
        cf_claim_fini(&c);
        return cf_op_fail(op, CF_ETOOLARGE, "the claim already holds %d documents",
                          CF_CLAIM_MAX_DOCS);
    }
    cf_claim_doc_t *d = &c.docs[c.ndocs];
    snprintf(d->kind, sizeof d->kind, "%.*s", (int)klen, kind);
    /* OpenSSL's SHA-256 uses the CPU's SHA extensions; libsodium's does not
     * (nearly twice the attach rate at 100 KiB, docs/BENCHMARKS.md). */
    SHA256((const unsigned char *)body->via.bin.ptr, body->via.bin.size, d->sha);
    d->size = body->via.bin.size;
    char hex[65];
    cf_hex(d->sha, 32, hex);
    c.ndocs++;

    char event[CF_NAME_MAX + 1];
    int elen = snprintf(event, sizeof event, "document.%s", d->kind);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cf_pack_str(&pk, "kind");
    cf_pack_str(&pk, d->kind);
    cf_pack_str(&pk, "sha256");
    cf_pack_str(&pk, hex);
    cf_pack_str(&pk, "size");
    msgpack_pack_uint64(&pk, d->size);
    /* The transition first: if the state refuses the document, nothing is
     * stored.  (It writes the claim record, document list included.) */
    rc = s_apply(op, &c, event, (size_t)elen, NULL, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0) {
        MDB_val v;
        uint32_t refs = 0;
        if (cf_engine_get(e, CF_DB_DOC_REFS, d->sha, 32, &v) == 0 && v.mv_size == 4)
            refs = cf_be32_get(v.mv_data);
        unsigned char rb[4];
        cf_be32_put(rb, refs + 1);
        rc = cf_engine_put(e, CF_DB_DOC_REFS, d->sha, 32, rb, 4);
        int g = rc == 0 ? cf_engine_get(e, CF_DB_DOCS, d->sha, 32, &v) : 0;
        if (rc == 0 && g == CF_ENOTFOUND) {
            /* [content_type, body] */
            msgpack_sbuffer db;
            msgpack_sbuffer_init(&db);
            msgpack_packer dp;
            msgpack_packer_init(&dp, &db, msgpack_sbuffer_write);
            msgpack_pack_array(&dp, 2);
            cf_pack_strn(&dp, ctype, clen);
            msgpack_pack_bin(&dp, body->via.bin.size);
            msgpack_pack_bin_body(&dp, body->via.bin.ptr, body->via.bin.size);
            rc = db.data ? cf_engine_put(e, CF_DB_DOCS, d->sha, 32, db.data, db.size)
                         : CF_EINTERNAL;
            msgpack_sbuffer_destroy(&db);
        } else if (rc == 0 && g != 0) {
            rc = g;
        }
    }
    if (rc == 0) {
        cf_op_key(op, "claim");
        cf_claim_pack_reply(&op->pk, &c);
        cf_op_key(op, "document");
        msgpack_pack_map(&op->pk, 3);
        cf_pack_str(&op->pk, "kind");
        cf_pack_str(&op->pk, c.docs[c.ndocs - 1].kind);
        cf_pack_str(&op->pk, "sha256");
        cf_pack_str(&op->pk, hex);
        cf_pack_str(&op->pk, "size");
        msgpack_pack_uint64(&op->pk, c.docs[c.ndocs - 1].size);
    }
    cf_claim_fini(&c);
    return rc;
}

static int s_unhex(const char *s, size_t n, unsigned char *out, size_t outlen)
{
    if (n != outlen * 2)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return 0;
}

static int s_document(cf_op_t *op)
{
    const char *hex;
    size_t hlen;
    unsigned char sha[32];
    int rc = s_str(op, "sha256", true, 64, &hex, &hlen);
    if (rc != 0)
        return rc;
    if (s_unhex(hex, hlen, sha, 32) != 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'sha256' must be 64 lower-case hex digits");
    cf_claim_t c;
    if ((rc = s_load(op, &c)) != 0)
        return rc;
    const cf_claim_doc_t *d = NULL;
    for (size_t i = 0; i < c.ndocs; i++)
        if (memcmp(c.docs[i].sha, sha, 32) == 0)
            d = &c.docs[i];
    if (!d) {
        cf_claim_fini(&c);
        return cf_op_fail(op, CF_ENOTFOUND, "the claim holds no document with that sha256");
    }
    MDB_val v;
    rc = cf_engine_get(op->e, CF_DB_DOCS, sha, 32, &v);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (rc != 0 || msgpack_unpack_next(&up, v.mv_data, v.mv_size, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size != 2) {
        msgpack_unpacked_destroy(&up);
        cf_claim_fini(&c);
        return cf_op_fail(op, rc == CF_ENOTFOUND ? CF_ENOTFOUND : CF_EINTERNAL,
                          "the document cannot be read");
    }
    if ((rc = s_audit_one(op, "document", &c)) != 0) {
        msgpack_unpacked_destroy(&up);
        cf_claim_fini(&c);
        return rc;
    }
    cf_op_key(op, "document");
    msgpack_pack_map(&op->pk, 5);
    cf_pack_str(&op->pk, "kind");
    cf_pack_str(&op->pk, d->kind);
    cf_pack_str(&op->pk, "content_type");
    msgpack_pack_object(&op->pk, up.data.via.array.ptr[0]);
    cf_pack_str(&op->pk, "sha256");
    cf_pack_strn(&op->pk, hex, hlen);
    cf_pack_str(&op->pk, "size");
    msgpack_pack_uint64(&op->pk, d->size);
    cf_pack_str(&op->pk, "body");
    msgpack_pack_object(&op->pk, up.data.via.array.ptr[1]);
    msgpack_unpacked_destroy(&up);
    cf_claim_fini(&c);
    return 0;
}

/* =========================================================== consent === */

static int s_put_member(cf_engine_t *e, const unsigned char *hash, const cf_sm_ctx_t *ctx)
{
    unsigned char v[24];
    cf_be64_put(v, (uint64_t)ctx->consent_given_at);
    cf_be64_put(v + 8, (uint64_t)ctx->consent_valid_until);
    cf_be64_put(v + 16, (uint64_t)ctx->consent_withdrawn_at);
    return cf_engine_put(e, CF_DB_MEMBERS, hash, CF_MEMBER_HASH_LEN, v, sizeof v);
}

static int s_consent(cf_op_t *op, bool give)
{
    cf_engine_t *e = op->e;
    const char *member;
    size_t mlen;
    int rc = s_str(op, "member", true, 32, &member, &mlen);
    if (rc != 0)
        return rc;
    cf_sm_ctx_t ctx;
    if ((rc = cf_engine_consent_ctx(e, op->member_hash, &ctx)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    bool had = ctx.consent_given_at != 0 && ctx.consent_withdrawn_at == 0 &&
               ctx.consent_valid_until > e->now;
    if (!give && !had)
        return cf_op_fail(op, CF_ENOTFOUND, "the member holds no valid consent to withdraw");
    unsigned char k[CF_TIMER_KEY_MAX];
    size_t kl;
    if (ctx.consent_given_at && !ctx.consent_withdrawn_at) {
        kl = cf_timer_key(k, ctx.consent_valid_until, CF_TIMER_MEMBER, op->member_hash,
                          CF_MEMBER_HASH_LEN, CF_CONSENT_TIMER);
        if ((rc = cf_engine_del(e, CF_DB_TIMERS, k, kl)) != 0)
            return rc;
    }
    if (give) {
        ctx.consent_given_at = e->now;
        ctx.consent_valid_until = cf_add_year(e->now);
        ctx.consent_withdrawn_at = 0;
        kl = cf_timer_key(k, ctx.consent_valid_until, CF_TIMER_MEMBER, op->member_hash,
                          CF_MEMBER_HASH_LEN, CF_CONSENT_TIMER);
        if ((rc = cf_engine_put(e, CF_DB_TIMERS, k, kl, "consent.expired", 15)) != 0)
            return rc;
    } else {
        ctx.consent_withdrawn_at = e->now;
    }
    if ((rc = s_put_member(e, op->member_hash, &ctx)) != 0)
        return rc;
    msgpack_sbuffer moved;
    msgpack_sbuffer_init(&moved);
    msgpack_packer mp;
    msgpack_packer_init(&mp, &moved, msgpack_sbuffer_write);
    uint32_t nmoved = 0;
    rc = cf_engine_fanout(e, op->member_hash, give ? "consent.given" : "consent.withdrawn", &mp,
                          &nmoved);
    if (rc == 0) {
        op->wrote = true;
        cf_op_key(op, "consent");
        msgpack_pack_map(&op->pk, 4);
        cf_pack_str(&op->pk, "member");
        cf_pack_strn(&op->pk, member, mlen);
        cf_pack_str(&op->pk, "given_at");
        cf_pack_time(&op->pk, ctx.consent_given_at);
        cf_pack_str(&op->pk, "valid_until");
        cf_pack_time(&op->pk, ctx.consent_valid_until);
        cf_pack_str(&op->pk, "withdrawn_at");
        if (ctx.consent_withdrawn_at)
            cf_pack_time(&op->pk, ctx.consent_withdrawn_at);
        else
            msgpack_pack_nil(&op->pk);
        cf_op_key(op, "moved");
        msgpack_pack_array(&op->pk, nmoved);
        if (moved.size)
            msgpack_sbuffer_write(&op->out, moved.data, moved.size);
    }
    msgpack_sbuffer_destroy(&moved);
    return rc;
}

static int s_consent_give(cf_op_t *op) { return s_consent(op, true); }
static int s_consent_withdraw(cf_op_t *op) { return s_consent(op, false); }

/* ========================================================= get, history === */

static int s_get(cf_op_t *op)
{
    cf_claim_t c;
    int rc = s_load(op, &c);
    if (rc != 0)
        return rc;
    if ((rc = s_audit_one(op, "get", &c)) != 0) {
        cf_claim_fini(&c);
        return rc;
    }
    cf_op_key(op, "claim");
    cf_claim_pack_reply(&op->pk, &c);
    cf_claim_fini(&c);
    return 0;
}

static int s_history(cf_op_t *op)
{
    cf_claim_t c;
    int rc = s_load(op, &c);
    if (rc != 0)
        return rc;
    if ((rc = s_audit_one(op, "history", &c)) != 0) {
        cf_claim_fini(&c);
        return rc;
    }
    cf_op_key(op, "events");
    msgpack_pack_array(&op->pk, c.seq);
    unsigned char k[CF_ID_LEN + 4];
    memcpy(k, c.id, CF_ID_LEN);
    for (uint32_t seq = 1; seq <= c.seq && rc == 0; seq++) {
        MDB_val v;
        cf_be32_put(k + CF_ID_LEN, seq);
        rc = cf_engine_get(op->e, CF_DB_HISTORY, k, sizeof k, &v);
        if (rc == 0)
            rc = cf_event_pack_reply(&op->pk, c.id, NULL, v.mv_data, v.mv_size);
    }
    cf_claim_fini(&c);
    if (rc != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the claim's history cannot be read");
    return 0;
}

/* ============================================================= query === */

static int s_query(cf_op_t *op)
{
    cf_engine_t *e = op->e;
    const char *wf, *state, *flag, *after;
    size_t wl, sl, fl, al;
    int64_t limit;
    int rc;
    if ((rc = s_str(op, "workflow", false, CF_NAME_MAX, &wf, &wl)) != 0 ||
        (rc = s_str(op, "state", false, CF_NAME_MAX, &state, &sl)) != 0 ||
        (rc = s_str(op, "flag", false, CF_NAME_MAX, &flag, &fl)) != 0 ||
        (rc = s_str(op, "after", false, 2 * 512, &after, &al)) != 0 ||
        (rc = s_int(op, "limit", 1, 1000, 100, &limit)) != 0)
        return rc;
    const msgpack_object *open = cf_mp_get(op->req, "open");
    if (open && open->type != MSGPACK_OBJECT_BOOLEAN && open->type != MSGPACK_OBJECT_NIL)
        return cf_op_fail(op, CF_EBADREQ, "field 'open' must be a boolean");
    int want_open = open && open->type == MSGPACK_OBJECT_BOOLEAN ? (open->via.boolean ? 1 : 0) : -1;
    if (state && !wf)
        return cf_op_fail(op, CF_EBADREQ, "field 'state' needs field 'workflow'");
    if (op->ep == CF_EP_OPERATOR) {
        const msgpack_object *m = cf_mp_get(op->req, "member");
        if (m) {
            char canon[12];
            if (m->type != MSGPACK_OBJECT_STR ||
                cf_pid_canonical(m->via.str.ptr, m->via.str.size, canon) != 0)
                return cf_op_fail(op, CF_EBADREQ, "field 'member' is not a valid person id");
            cf_engine_member_hash(e, canon, op->member_hash);
            op->has_member = true;
        }
    }
    /* The most selective index: member, then workflow+state, flag, workflow. */
    unsigned char prefix[2 * CF_NAME_MAX + 4];
    size_t plen = 0;
    cf_db_t db;
    if (op->has_member) {
        db = CF_DB_IDX_MEMBER;
        memcpy(prefix, op->member_hash, CF_MEMBER_HASH_LEN);
        plen = CF_MEMBER_HASH_LEN;
    } else if (wf && state) {
        db = CF_DB_IDX_STATE;
        memcpy(prefix, wf, wl);
        prefix[wl] = 0;
        memcpy(prefix + wl + 1, state, sl);
        prefix[wl + 1 + sl] = 0;
        plen = wl + sl + 2;
    } else if (flag) {
        db = CF_DB_IDX_FLAG;
        memcpy(prefix, flag, fl);
        prefix[fl] = 0;
        plen = fl + 1;
    } else if (wf) {
        db = CF_DB_IDX_STATE;
        memcpy(prefix, wf, wl);
        prefix[wl] = 0;
        plen = wl + 1;
    } else {
        db = CF_DB_CLAIMS;
    }
    unsigned char start[512];
    size_t startlen = plen;
    memcpy(start, prefix, plen);
    if (after) {
        if (al % 2 || al / 2 > sizeof start || s_unhex(after, al, start, al / 2) != 0 ||
            al / 2 < plen || memcmp(start, prefix, plen) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'after' is not a cursor of this query");
        startlen = al / 2;
    }
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, db), &cur)) != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the index cannot be read");
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    uint32_t count = 0;
    size_t scanned = 0;
    bool more = false;
    /* The ids returned, for the access log. */
    char (*ids)[CF_ID_LEN] = malloc((size_t)limit * CF_ID_LEN);
    if (!ids) {
        mdb_cursor_close(cur);
        msgpack_sbuffer_destroy(&list);
        return cf_op_fail(op, CF_EINTERNAL, "out of memory");
    }
    unsigned char last[512];
    size_t lastlen = 0;
    MDB_val k = {startlen, start}, v;
    rc = startlen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && after && k.mv_size == startlen && memcmp(k.mv_data, start, startlen) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    while (rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0) {
        if (count == (uint32_t)limit || scanned == CF_QUERY_SCAN_MAX) {
            more = true;
            break;
        }
        scanned++;
        if (k.mv_size > sizeof last || k.mv_size < CF_ID_LEN)
            break;
        memcpy(last, k.mv_data, k.mv_size);
        lastlen = k.mv_size;
        const char *id = (const char *)last + lastlen - CF_ID_LEN;
        cf_claim_t c;
        if (cf_engine_load_claim(e, id, CF_ID_LEN, &c) == 0) {
            bool ok = (!wf || (strlen(c.wf->name) == wl && memcmp(c.wf->name, wf, wl) == 0)) &&
                      (!state || (strlen(c.wf->states[c.state].name) == sl &&
                                  memcmp(c.wf->states[c.state].name, state, sl) == 0)) &&
                      (want_open < 0 || want_open == !c.wf->states[c.state].final) &&
                      (!op->has_member ||
                       (c.has_member && memcmp(c.member, op->member_hash, 16) == 0));
            if (ok && flag) {
                char fb[CF_NAME_MAX + 1];
                snprintf(fb, sizeof fb, "%.*s", (int)fl, flag);
                int bit = cf_wf_flag_find(c.wf, fb);
                ok = bit >= 0 && ((c.flags >> bit) & 1);
            }
            if (ok) {
                cf_claim_pack_reply(&lp, &c);
                memcpy(ids[count], c.id, CF_ID_LEN);
                count++;
            }
            cf_claim_fini(&c);
        }
        /* The cursor may be invalid after the loads above only for writes;
         * reads keep it valid. */
        k.mv_size = lastlen;
        k.mv_data = last;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    rc = 0;
    if (op->ep == CF_EP_OPERATOR && count) {
        const char **idv = malloc(count * sizeof *idv);
        if (!idv) {
            rc = CF_EINTERNAL;
        } else {
            for (uint32_t i = 0; i < count; i++)
                idv[i] = ids[i];
            rc = cf_engine_audit(e, op->actor, "query", idv, count);
            free(idv);
            op->wrote = rc == 0;
        }
    }
    free(ids);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&list);
        return cf_op_fail(op, rc, "the access log cannot be written");
    }
    cf_op_key(op, "claims");
    msgpack_pack_array(&op->pk, count);
    if (list.size)
        msgpack_sbuffer_write(&op->out, list.data, list.size);
    msgpack_sbuffer_destroy(&list);
    if (more && lastlen) {
        char hex[2 * sizeof last + 1];
        cf_hex(last, lastlen, hex);
        cf_op_key(op, "next");
        cf_pack_str(&op->pk, hex);
    }
    return 0;
}

/* ====================================================== timers, stats === */

static int s_timers(cf_op_t *op)
{
    cf_engine_t *e = op->e;
    cf_time_t before = 0;
    bool has_before = false;
    int64_t limit;
    int rc;
    if ((rc = s_time(op, "due_before", false, &before, &has_before)) != 0 ||
        (rc = s_int(op, "limit", 1, 1000, 100, &limit)) != 0)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_TIMERS), &cur)) != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the timers cannot be read");
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    uint32_t count = 0;
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    while (rc == 0 && count < (uint32_t)limit) {
        if (k.mv_size < 9)
            break;
        cf_time_t due = (cf_time_t)cf_be64_get(k.mv_data);
        if (has_before && due >= before)
            break;
        const unsigned char *kp = k.mv_data;
        if (kp[8] == CF_TIMER_CLAIM && k.mv_size > 9 + CF_ID_LEN) {
            cf_claim_t c;
            char name[CF_NAME_MAX + 1], event[CF_NAME_MAX + 1];
            snprintf(name, sizeof name, "%.*s", (int)(k.mv_size - 9 - CF_ID_LEN),
                     (const char *)kp + 9 + CF_ID_LEN);
            snprintf(event, sizeof event, "%.*s", (int)v.mv_size, (const char *)v.mv_data);
            if (cf_engine_load_claim(e, (const char *)kp + 9, CF_ID_LEN, &c) == 0) {
                msgpack_pack_map(&lp, 6);
                cf_pack_str(&lp, "claim");
                cf_pack_str(&lp, c.id);
                cf_pack_str(&lp, "workflow");
                cf_pack_str(&lp, c.wf->name);
                cf_pack_str(&lp, "state");
                cf_pack_str(&lp, c.wf->states[c.state].name);
                cf_pack_str(&lp, "name");
                cf_pack_str(&lp, name);
                cf_pack_str(&lp, "event");
                cf_pack_str(&lp, event);
                cf_pack_str(&lp, "due_at");
                cf_pack_time(&lp, due);
                count++;
                cf_claim_fini(&c);
            }
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    cf_op_key(op, "timers");
    msgpack_pack_array(&op->pk, count);
    if (list.size)
        msgpack_sbuffer_write(&op->out, list.data, list.size);
    msgpack_sbuffer_destroy(&list);
    return 0;
}

/* One walk of an index whose keys are a group prefix then a claim id:
 * packs under `key` a list with one map per group, `count` its entries.
 * The state index's prefix is "workflow\0state\0", packed as `workflow` and
 * `state`; the flag index's is the flag, packed as `flag`. */
static int s_count_groups(cf_op_t *op, cf_db_t db, const char *key, bool by_state)
{
    cf_engine_t *e = op->e;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, db), &cur);
    if (rc != 0)
        return rc;
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    uint32_t groups = 0;
    char group[2 * CF_NAME_MAX + 2] = "";
    size_t glen = 0;
    uint64_t n = 0;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (;;) {
        bool end = rc != 0 || k.mv_size <= CF_ID_LEN;
        size_t kl = end ? 0 : k.mv_size - CF_ID_LEN;
        if (end || kl != glen || memcmp(k.mv_data, group, glen) != 0) {
            if (glen) {
                msgpack_pack_map(&lp, by_state ? 3 : 2);
                if (by_state) {
                    cf_pack_str(&lp, "workflow");
                    cf_pack_str(&lp, group);
                    cf_pack_str(&lp, "state");
                    cf_pack_str(&lp, group + strlen(group) + 1);
                } else {
                    cf_pack_str(&lp, "flag");
                    cf_pack_str(&lp, group);
                }
                cf_pack_str(&lp, "count");
                msgpack_pack_uint64(&lp, n);
                groups++;
            }
            if (end || kl > sizeof group)
                break;
            memcpy(group, k.mv_data, kl);
            glen = kl;
            n = 0;
        }
        n++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    cf_op_key(op, key);
    msgpack_pack_array(&op->pk, groups);
    if (list.size)
        msgpack_sbuffer_write(&op->out, list.data, list.size);
    msgpack_sbuffer_destroy(&list);
    return 0;
}

static int s_stats(cf_op_t *op)
{
    cf_engine_t *e = op->e;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;
    if (s_count_groups(op, CF_DB_IDX_STATE, "states", true) != 0 ||
        s_count_groups(op, CF_DB_IDX_FLAG, "flags", false) != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the indexes cannot be read");

    /* Timers: pending, and overdue (a walk that stops at the first not due). */
    MDB_stat st;
    uint64_t pending = 0, overdue = 0;
    if (mdb_stat(e->txn, cf_store_dbi(e->store, CF_DB_TIMERS), &st) == 0)
        pending = st.ms_entries;
    if (mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_TIMERS), &cur) == 0) {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        while (rc == 0 && k.mv_size >= 8 && (cf_time_t)cf_be64_get(k.mv_data) <= e->now) {
            overdue++;
            rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
        }
        mdb_cursor_close(cur);
    }
    cf_op_key(op, "timers");
    msgpack_pack_map(&op->pk, 2);
    cf_pack_str(&op->pk, "pending");
    msgpack_pack_uint64(&op->pk, pending);
    cf_pack_str(&op->pk, "overdue");
    msgpack_pack_uint64(&op->pk, overdue);
    cf_op_key(op, "claims");
    msgpack_pack_uint64(&op->pk, mdb_stat(e->txn, cf_store_dbi(e->store, CF_DB_CLAIMS), &st) == 0
                                     ? st.ms_entries : 0);
    return 0;
}

/* ============================================================= clock === */

static int s_clock(cf_op_t *op, bool advance)
{
    cf_engine_t *e = op->e;
    if (!e->manual)
        return cf_op_fail(op, CF_EFORBIDDEN, "the clock is real; clock ops need claimflowd "
                          "--clock manual:<time>");
    int rc;
    cf_time_t to;
    if (advance) {
        int64_t secs;
        if (!cf_mp_get(op->req, "seconds"))
            return cf_op_fail(op, CF_EBADREQ, "field 'seconds' is required");
        if ((rc = s_int(op, "seconds", 1, INT64_C(50) * 366 * 86400, 0, &secs)) != 0)
            return rc;
        to = e->manual_now + secs;
    } else {
        bool present;
        if ((rc = s_time(op, "at", true, &to, &present)) != 0)
            return rc;
        if (to < e->manual_now)
            return cf_op_fail(op, CF_EBADREQ, "field 'at' is earlier than the clock");
    }
    /* Step through the timers due up to `to`, each at its due time, so a
     * test that jumps a week sees what a week of real time would have done:
     * events at their due times (late_seconds 0), and timers those events
     * start, if due before `to`, firing too.  Timers already overdue fire at
     * the clock's current time.  All in this batch's transaction. */
    size_t fired = 0;
    for (;;) {
        cf_time_t due;
        rc = cf_timers_next_due(e, &due);
        if (rc == CF_ENOTFOUND || (rc == 0 && due > to))
            break;
        if (rc != 0)
            return rc;
        if (due > e->manual_now)
            e->manual_now = due;
        e->now = e->manual_now;
        size_t n = 0;
        if ((rc = cf_timers_fire_txn(e, SIZE_MAX, &n)) != 0)
            return rc;
        fired += n;
        if (n == 0)
            break; /* cannot happen (the first timer is due): never spin */
    }
    e->manual_now = to;
    e->now = to;
    op->wrote = fired > 0;
    cf_op_key(op, "now");
    cf_pack_time(&op->pk, to);
    cf_op_key(op, "fired");
    msgpack_pack_uint64(&op->pk, fired);
    return 0;
}

static int s_clock_advance(cf_op_t *op) { return s_clock(op, true); }
static int s_clock_set(cf_op_t *op) { return s_clock(op, false); }

/* ============================================================= table === */

#define R_ANY_OP (CF_ROLE_HANDLER | CF_ROLE_SUPERVISOR | CF_ROLE_AUDITOR)
#define R_WRITE (CF_ROLE_MEMBER | CF_ROLE_HANDLER | CF_ROLE_SUPERVISOR)
#define R_READ (CF_ROLE_MEMBER | R_ANY_OP)
#define EP_BOTH (CF_OPEP_PORTAL | CF_OPEP_OPERATOR)

static const char *const k_create[] = {"workflow", "data", NULL};
static const char *const k_send[] = {"claim", "event", "data", NULL};
static const char *const k_attach[] = {"claim", "kind", "content_type", "body", NULL};
static const char *const k_document[] = {"claim", "sha256", NULL};
static const char *const k_claim[] = {"claim", NULL};
static const char *const k_query[] = {"workflow", "state", "flag", "open", "limit", "after", NULL};
static const char *const k_timers[] = {"due_before", "limit", NULL};
static const char *const k_advance[] = {"seconds", NULL};
static const char *const k_set[] = {"at", NULL};
static const char *const k_audit[] = {"claim", "operator", "limit", "after", NULL};
static const char *const k_purge[] = {"closed_before", NULL};

/* name, fn, endpoints, roles (0: anyone, no actor needed), writes,
 * portal needs member, keys */
static const cf_op_def_t s_ops[] = {
    {"ping", s_ping, EP_BOTH, 0, false, false, NULL},
    {"create", s_create, EP_BOTH, R_WRITE, true, true, k_create},
    {"send", s_send, EP_BOTH, R_WRITE, true, true, k_send},
    {"attach", s_attach, EP_BOTH, R_WRITE, true, true, k_attach},
    {"document", s_document, EP_BOTH, R_READ, false, true, k_document},
    {"consent.give", s_consent_give, CF_OPEP_PORTAL, CF_ROLE_MEMBER, true, true, NULL},
    {"consent.withdraw", s_consent_withdraw, CF_OPEP_PORTAL, CF_ROLE_MEMBER, true, true, NULL},
    {"get", s_get, EP_BOTH, R_READ, false, true, k_claim},
    {"history", s_history, EP_BOTH, R_READ, false, true, k_claim},
    {"query", s_query, EP_BOTH, R_READ, false, true, k_query},
    {"timers", s_timers, CF_OPEP_OPERATOR, R_ANY_OP, false, false, k_timers},
    {"stats", s_stats, CF_OPEP_OPERATOR, R_ANY_OP, false, false, NULL},
    {"clock.advance", s_clock_advance, CF_OPEP_OPERATOR, R_ANY_OP, false, false, k_advance},
    {"clock.set", s_clock_set, CF_OPEP_OPERATOR, R_ANY_OP, false, false, k_set},
    {"audit", cf_op_audit, CF_OPEP_OPERATOR, CF_ROLE_AUDITOR | CF_ROLE_SUPERVISOR, false, false,
     k_audit},
    {"purge", cf_op_purge, CF_OPEP_OPERATOR, CF_ROLE_SUPERVISOR, true, false, k_purge},
};

const cf_op_def_t *cf_op_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof s_ops / sizeof s_ops[0]; i++)
        if (strlen(s_ops[i].name) == len && memcmp(s_ops[i].name, name, len) == 0)
            return &s_ops[i];
    return NULL;
}

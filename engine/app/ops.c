/* ops.c: the protocol's operations (docs/protocol.md), one function each,
 * and the table the dispatcher (engine.c) finds them in.
 *
 * Every writing op follows the same shape: read and validate everything,
 * run the state machine, compute due times - and only then write.  A refused
 * request returns before its first write, which is what lets a batch share
 * one transaction without nested transactions.
 */
#include "ops.h"

#include <openssl/sha.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_be.h"
#include "mpcheck.h"
#include "cf_version.h"
#include "person.h"
#include "privacy.h"
#include "reps.h"
#include "rights.h"
#include "timers.h"

/* The most index entries one query page looks at. */
#define CF_QUERY_SCAN_MAX 10000

/* ============================================================ helpers === */

/* Load the claim the request names in `claim`; on the portal, a claim of
 * another member is not_found (its existence is not disclosed). */
static int s_load(cf_op_t *op, cf_claim_t *c)
{
    const char *id;
    size_t n;
    int rc = cf_op_str(op, "claim", true, 128, &id, &n);
    if (rc != 0)
        return rc;
    rc = cf_claims_load(op->b, id, n, c);
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
    cf_batch_t *b = op->b;
    cf_op_key(op, "version");
    cf_pack_str(&op->pk, CF_VERSION);
    /* The engine's clock (manual or real), so a client measures ages
     * against the daemon's time, not its own. */
    cf_op_key(op, "now");
    cf_pack_time(&op->pk, b->now);
    cf_op_key(op, "workflows");
    msgpack_pack_array(&op->pk, (uint32_t)b->reg->n);
    for (size_t i = 0; i < b->reg->n; i++) {
        msgpack_pack_map(&op->pk, 2);
        cf_pack_str(&op->pk, "name");
        cf_pack_str(&op->pk, b->reg->v[i].wf->name);
        cf_pack_str(&op->pk, "version");
        msgpack_pack_int64(&op->pk, b->reg->v[i].wf->version);
    }
    /* A replica also says what it is and how far it has applied (the
     * batch running now is not applied yet). */
    if (b->cluster) {
        op->nout += CF_CLUSTER_PING_FIELDS;
        cf_cluster_view_pack(&op->pk, b->cluster, cf_store_seq(b->store));
    }
    return 0;
}

/* ============================================================ create === */

static int s_create(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    const char *wname;
    size_t wlen;
    int rc = cf_op_str(op, "workflow", true, CF_NAME_MAX, &wname, &wlen);
    if (rc != 0)
        return rc;
    const msgpack_object *data = cf_mp_get(op->req, "data");
    if (!data)
        return cf_op_fail(op, CF_EBADREQ, "field 'data' is required");
    if (data->type != MSGPACK_OBJECT_MAP)
        return cf_op_fail(op, CF_EBADREQ, "field 'data' must be a map");
    const cf_wf_entry_t *w = cf_registry_find(b->reg, wname, wlen, 0);
    if (!w)
        return cf_op_fail(op, CF_ENOTFOUND, "no workflow by that name (ping lists them)");
    const cf_wf_t *wf = w->wf;

    cf_claim_t c;
    memset(&c, 0, sizeof c);
    c.wf = wf;
    c.prev = -1;
    c.data = *data;
    c.country = w->country;

    /* The member: data.member, or the member of the claim referred to; the
     * claim's country with it, from the kind of person id, or the parent's
     * (docs/workflows.md).  Fixed from here on. */
    const msgpack_object *m = cf_mp_get(data, "member");
    char canon[12];
    if (m && cf_wf_field_find(wf, "member") >= 0 && m->type == MSGPACK_OBJECT_STR &&
        cf_pid_canonical(m->via.str.ptr, m->via.str.size, canon) == 0) {
        cf_claims_member_hash(b, canon, c.member);
        c.has_member = true;
        int country = cf_pid_country(cf_pid_check(m->via.str.ptr, m->via.str.size));
        if (country >= 0)
            c.country = (cf_country_t)country;
    }
    for (size_t i = 0; i < wf->nfields; i++) {
        if (wf->fields[i].type != CF_FT_CLAIM)
            continue;
        const msgpack_object *p = cf_mp_get(data, wf->fields[i].name);
        if (!p || p->type != MSGPACK_OBJECT_STR)
            break; /* the state machine names the field */
        cf_claim_t parent;
        rc = cf_claims_load(b, p->via.str.ptr, p->via.str.size, &parent);
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
        c.country = parent.country;
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
    if (op->phone && !c.has_member)
        return cf_op_fail(op, CF_EBADREQ, "a claim recorded from a call names its member "
                          "(data.member)");
    if (c.has_member && (rc = cf_reps_require(op, c.member, CF_SCOPE_CLAIMS)) != 0)
        return rc;

    cf_sm_ctx_t ctx = {.now = b->now, .claim_data = data,
                       .today = cf_claims_today(b, wf, c.country)};
    if (c.has_member && (rc = cf_claims_consent_ctx(b, c.member, &ctx)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    cf_sm_result_t r;
    cf_error_t err;
    if ((rc = cf_sm_create(wf, op->act_role, data, &ctx, &r, &err)) != 0) {
        s_sm_fail(op, &err);
        return rc;
    }
    if (op->ep == CF_EP_PORTAL && !c.has_member)
        return cf_op_fail(op, CF_EBADREQ, "this workflow's claims have no member; the portal "
                          "cannot create them");
    cf_event_who_t who = cf_reps_who(op, c.has_member ? c.member : NULL);
    if ((rc = cf_claims_create(b, &c, &r, op->actor, &who)) != 0)
        return rc == CF_EBADREQ
                   ? cf_op_fail(op, rc, "a timer's due time is outside the calendar's years")
                   : rc;
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
    cf_apply_rec_t rec = {.actor = op->actor, .hist = hist, .hist_len = hlen,
                          .who = cf_reps_who(op, c->has_member ? c->member : NULL)};
    int rc = cf_claims_apply(op->b, c, event, elen, op->act_role, data, &rec, &op->err);
    if (rc == 0)
        op->wrote = true;
    return rc;
}

static int s_send(cf_op_t *op)
{
    const char *event;
    size_t elen;
    int rc = cf_op_str(op, "event", true, CF_NAME_MAX, &event, &elen);
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
    /* A representative's scope: as the workflow names it (`scope:`;
     * docs/workflows.md, "What a representative needs"). */
    unsigned scope = cf_reps_event_scope(c.wf, c.state, event, elen);
    if (op->has_by && (!c.has_member || (rc = cf_reps_require(op, c.member, scope)) != 0)) {
        cf_claim_fini(&c);
        return rc ? rc : cf_op_fail(op, CF_EBADREQ, "this claim has no member to act for");
    }
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

/* ============================================================ assign === */

/* assign {claim, to}: the claim's owner.  A supervisor assigns any claim to
 * any handler or supervisor of the roster, or releases it (to nil); a
 * handler takes an unowned claim for themselves, or releases their own.
 * Recorded as `claim.assigned` {owner, previous} in the history, without a
 * transition. */
static int s_assign(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    const msgpack_object *to = cf_mp_get(op->req, "to");
    if (!to)
        return cf_op_fail(op, CF_EBADREQ, "field 'to' is required (an operator id, or nil to "
                          "release the claim)");
    const cf_operator_t *who = NULL;
    if (to->type == MSGPACK_OBJECT_STR) {
        for (size_t i = 0; i < b->lim->noperators && !who; i++)
            if (cf_mp_streq(to, b->lim->operators[i].id))
                who = &b->lim->operators[i];
        if (!who)
            return cf_op_fail(op, CF_EBADREQ, "field 'to' is not an operator in the roster");
        if (!(who->role & (CF_ROLE_HANDLER | CF_ROLE_SUPERVISOR)))
            return cf_op_fail(op, CF_EBADREQ, "field 'to': an owner is a handler or a "
                              "supervisor, not an %s", cf_role_name(who->role));
    } else if (to->type != MSGPACK_OBJECT_NIL) {
        return cf_op_fail(op, CF_EBADREQ, "field 'to' must be an operator id or nil");
    }
    cf_claim_t c;
    int rc = s_load(op, &c);
    if (rc != 0)
        return rc;
    if (c.wf->states[c.state].final) {
        rc = cf_op_fail(op, CF_EINVTRANS, "the claim is in final state '%s'; its owner does "
                        "not change", c.wf->states[c.state].name);
        goto out;
    }
    if (op->role == CF_ROLE_HANDLER) {
        bool take = who && strcmp(who->id, op->actor) == 0 && c.owner[0] == '\0';
        bool release = !who && strcmp(c.owner, op->actor) == 0;
        bool same = who && strcmp(who->id, c.owner) == 0 && strcmp(c.owner, op->actor) == 0;
        if (!take && !release && !same) {
            rc = cf_op_fail(op, CF_EFORBIDDEN, "role 'handler' may take an unowned claim for "
                            "themselves or release their own; a supervisor assigns (owner: "
                            "%s)", c.owner[0] ? c.owner : "none");
            goto out;
        }
    }
    if ((who && strcmp(who->id, c.owner) == 0) || (!who && c.owner[0] == '\0')) {
        /* already so: nothing to record */
        cf_op_key(op, "claim");
        cf_claim_pack_reply(&op->pk, &c);
        goto out;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cf_pack_str(&pk, "owner");
    if (who)
        cf_pack_str(&pk, who->id);
    else
        msgpack_pack_nil(&pk);
    cf_pack_str(&pk, "previous");
    if (c.owner[0])
        cf_pack_str(&pk, c.owner);
    else
        msgpack_pack_nil(&pk);
    snprintf(c.owner, sizeof c.owner, "%s", who ? who->id : "");
    cf_apply_rec_t rec = {.actor = op->actor, .hist = sb.data, .hist_len = sb.size};
    rc = sb.data ? cf_claims_note(b, &c, "claim.assigned", &rec) : CF_EINTERNAL;
    msgpack_sbuffer_destroy(&sb);
    if (rc == 0) {
        op->wrote = true;
        cf_op_key(op, "claim");
        cf_claim_pack_reply(&op->pk, &c);
    }
out:
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
    cf_batch_t *b = op->b;
    const char *kind, *ctype;
    size_t klen, clen;
    int rc;
    if ((rc = cf_op_str(op, "kind", true, 32, &kind, &klen)) != 0 ||
        (rc = cf_op_str(op, "content_type", true, 127, &ctype, &clen)) != 0)
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
    if (body->via.bin.size > b->lim->max_document)
        return cf_op_fail(op, CF_ETOOLARGE, "the document is %u bytes; the limit is %zu",
                          body->via.bin.size, b->lim->max_document);
    /* A doctor's referral and a provider's invoice are PDFs (seed 003:
     * "Print to PDF"; the insurer's payment process reads the invoice). */
    bool referral = klen == 8 && memcmp(kind, "referral", 8) == 0;
    if (referral || (klen == 7 && memcmp(kind, "invoice", 7) == 0)) {
        const char *what = referral ? "a referral" : "an invoice";
        if (clen != 15 || memcmp(ctype, "application/pdf", 15) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'content_type': %s must be "
                              "application/pdf", what);
        if (body->via.bin.size < 5 || memcmp(body->via.bin.ptr, "%PDF-", 5) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'body': %s must be a PDF (it does "
                              "not start with %%PDF-)", what);
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
    if (rc == 0)
        rc = cf_claims_doc_ref(b, d->sha, ctype, clen, body->via.bin.ptr, body->via.bin.size);
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

/* A document range's largest length: a reader that never reads holds at
 * most this per reply it asked for (docs/SECURITY.md). */
#define CF_RANGE_MAX ((int64_t)256 << 10)

/* The reply's "document" for the stored body of sha: kind, content_type,
 * sha256, size and the body - whole up to a page, or the range 'offset'
 * and 'length' of the request asked for.  One reader for a claim's
 * documents and a representation's evidence.  0 or an error recorded. */
static int s_document_reply(cf_op_t *op, const unsigned char sha[32], const char *kind,
                            uint64_t size)
{
    int64_t offset, length;
    bool ranged = cf_mp_get(op->req, "offset") || cf_mp_get(op->req, "length");
    int rc;
    if ((rc = cf_op_int(op, "offset", 0, INT64_MAX, 0, &offset)) != 0 ||
        (rc = cf_op_int(op, "length", 1, CF_RANGE_MAX, CF_RANGE_MAX, &length)) != 0)
        return rc;
    cf_bytes_t v;
    rc = cf_txn_get(op->b->txn, CF_DB_DOCS, sha, 32, &v);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (rc != 0 || cf_mpcheck(v.data, v.len, NULL) != 0 ||
        msgpack_unpack_next(&up, v.data, v.len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size != 2) {
        msgpack_unpacked_destroy(&up);
        return cf_op_fail(op, rc == CF_ENOTFOUND ? CF_ENOTFOUND : CF_EINTERNAL,
                          "the document cannot be read");
    }
    const msgpack_object *body = &up.data.via.array.ptr[1];
    if (body->type != MSGPACK_OBJECT_BIN) {
        msgpack_unpacked_destroy(&up);
        return cf_op_fail(op, CF_EINTERNAL, "the document cannot be read");
    }
    /* A whole body in one reply only up to a page's size: a client that
     * asks for 10 MiB documents and does not read would make the daemon
     * queue 10 MiB a reply (docs/RELIABILITY.md, "Bounds"); ranges exist. */
    if (!ranged && body->via.bin.size > CF_PAGE_BYTES) {
        uint32_t n = body->via.bin.size;
        msgpack_unpacked_destroy(&up);
        return cf_op_fail(op, CF_ETOOLARGE, "the document is %u bytes, more than a reply "
                          "holds (%zu): read it in ranges ('offset', 'length' up to %lld)",
                          n, CF_PAGE_BYTES, (long long)CF_RANGE_MAX);
    }
    if (ranged && (uint64_t)offset > body->via.bin.size) {
        uint32_t n = body->via.bin.size;     /* (up's zone goes first) */
        msgpack_unpacked_destroy(&up);
        return cf_op_fail(op, CF_EBADREQ, "field 'offset' is past the document's end (%u bytes)",
                          n);
    }
    char hex[65];
    cf_hex(sha, 32, hex);
    cf_op_key(op, "document");
    msgpack_pack_map(&op->pk, ranged ? 6 : 5);
    cf_pack_str(&op->pk, "kind");
    cf_pack_str(&op->pk, kind);
    cf_pack_str(&op->pk, "content_type");
    msgpack_pack_object(&op->pk, up.data.via.array.ptr[0]);
    cf_pack_str(&op->pk, "sha256");
    cf_pack_str(&op->pk, hex);
    cf_pack_str(&op->pk, "size");
    msgpack_pack_uint64(&op->pk, size);
    cf_pack_str(&op->pk, "body");
    if (ranged) {
        /* [offset, offset + length) of the body, cut at its end. */
        size_t left = body->via.bin.size - (size_t)offset;
        size_t n = left < (size_t)length ? left : (size_t)length;
        msgpack_pack_bin(&op->pk, n);
        msgpack_pack_bin_body(&op->pk, body->via.bin.ptr + offset, n);
        cf_pack_str(&op->pk, "offset");
        msgpack_pack_uint64(&op->pk, (uint64_t)offset);
    } else {
        msgpack_pack_object(&op->pk, *body);
    }
    msgpack_unpacked_destroy(&up);
    return 0;
}

static int s_document(cf_op_t *op)
{
    const char *hex;
    size_t hlen;
    unsigned char sha[32];
    int rc = cf_op_str(op, "sha256", true, 64, &hex, &hlen);
    if (rc != 0)
        return rc;
    if (cf_unhex(hex, hlen, sha, 32) != 0)
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
    /* The access-log entry first: the body the reply copies is borrowed
     * from the store, valid only until the transaction's next write
     * (store.h). */
    if ((rc = cf_op_audit_one(op, "document", &c)) != 0) {
        cf_claim_fini(&c);
        return rc;
    }
    char kind[sizeof d->kind];
    memcpy(kind, d->kind, sizeof kind);
    uint64_t size = d->size;
    cf_claim_fini(&c);
    return s_document_reply(op, sha, kind, size);
}

/* representation.evidence: the document a representation rests on (the
 * custody papers, a power of attorney, an assessment), for the operators
 * who check it.  The dispatcher's access-log entry names the member. */
static int s_rep_evidence(cf_op_t *op)
{
    const char *names[2] = {"member", "representative"};
    unsigned char hash[2][CF_MEMBER_HASH_LEN];
    for (int i = 0; i < 2; i++) {
        const char *s;
        size_t n;
        char canon[12];
        int rc = cf_op_str(op, names[i], true, 32, &s, &n);
        if (rc != 0)
            return rc;
        if (cf_pid_canonical(s, n, canon) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field '%s' is not a valid person id", names[i]);
        cf_claims_member_hash(op->b, canon, hash[i]);
    }
    cf_rep_t r;
    int rc = cf_reps_get(op->b, hash[0], hash[1], &r);
    if (rc == CF_ENOTFOUND)
        return cf_op_fail(op, CF_ENOTFOUND, "no representation of the member by that person");
    if (rc != 0)
        return cf_op_fail(op, rc, "the member's representations cannot be read");
    if (!r.has_evidence)
        return cf_op_fail(op, CF_ENOTFOUND, "the representation has no evidence document (a "
                          "member's own grant)");
    return s_document_reply(op, r.ev_sha, r.ev_kind, r.ev_size);
}

/* =========================================================== consent === */

/* `involved` (consent.give, a member aged 15 to 17): the person ids of the
 * parents involved in the decision, recorded with the consent. */
static int s_involved(cf_op_t *op, cf_consent_t *c, bool *present)
{
    const msgpack_object *o = cf_mp_get(op->req, "involved");
    c->ninvolved = 0;
    *present = o && o->type != MSGPACK_OBJECT_NIL;
    if (!*present)
        return 0;
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size > CF_CONSENT_MAX_INVOLVED)
        return cf_op_fail(op, CF_EBADREQ, "field 'involved' must be a list of at most %d "
                          "person ids", CF_CONSENT_MAX_INVOLVED);
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        if (e->type != MSGPACK_OBJECT_STR ||
            cf_pid_canonical(e->via.str.ptr, e->via.str.size, c->involved[c->ninvolved]) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'involved' holds something that is not a "
                              "valid person id");
        c->ninvolved++;
    }
    return 0;
}

static int s_consent(cf_op_t *op, bool give)
{
    cf_batch_t *b = op->b;
    const char *member;
    size_t mlen;
    int rc = cf_op_str(op, "member", true, 32, &member, &mlen);
    if (rc != 0)
        return rc;
    cf_consent_t ctx, inv;
    memset(&inv, 0, sizeof inv);
    bool involved;
    if ((rc = s_involved(op, &inv, &involved)) != 0)
        return rc;
    /* Who may: the age rules (reps.c). */
    cf_time_t lapses;
    if ((rc = cf_reps_consent_rule(op, op->member_pid, op->member_hash, give, involved,
                                   &lapses)) != 0)
        return rc;
    if ((rc = cf_claims_consent_get(b, op->member_hash, &ctx)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    bool had = ctx.given_at != 0 && ctx.withdrawn_at == 0 && ctx.valid_until > b->now;
    if (!give && !had)
        return cf_op_fail(op, CF_ENOTFOUND, "the member holds no valid consent to withdraw");
    /* Each change fans out over the member's open claims and writes their
     * histories: a member (or a portal bug) flapping consent would grow the
     * store without bound.  A fixed number of changes per member and UTC
     * day; refusing the excess (rather than coalescing it) keeps every
     * accepted change exact in every claim's history. */
    int64_t day = b->now >= 0 ? b->now / 86400 : (b->now - 86399) / 86400;
    if (ctx.change_day != day) {
        ctx.change_day = day;
        ctx.changes = 0;
    }
    if (ctx.changes >= b->lim->consent_changes)
        return cf_op_fail(op, CF_EUNAVAIL, "the member's consent changed %u times today, the "
                          "most a day allows; retry tomorrow", b->lim->consent_changes);
    ctx.changes++;
    if ((rc = cf_claims_consent_timers(b, op->member_hash, &ctx, false)) != 0)
        return rc;
    cf_event_who_t who = cf_reps_who(op, op->member_hash);
    if (give) {
        ctx.given_at = b->now;
        ctx.valid_until = cf_add_year(b->now);
        ctx.withdrawn_at = 0;
        /* A parent's consent for a child ends on the child's 15th birthday,
         * when that comes first: from then on the young person decides. */
        ctx.lapses_at = 0;
        if (lapses && lapses < ctx.valid_until)
            ctx.valid_until = ctx.lapses_at = lapses;
        snprintf(ctx.given_by, sizeof ctx.given_by, "%s", who.by ? who.by : "");
        snprintf(ctx.channel, sizeof ctx.channel, "%s", op->phone ? "phone" : "portal");
        snprintf(ctx.reference, sizeof ctx.reference, "%s", op->phone ? op->reference : "");
        ctx.ninvolved = inv.ninvolved;
        memcpy(ctx.involved, inv.involved, sizeof ctx.involved);
        if ((rc = cf_claims_consent_timers(b, op->member_hash, &ctx, true)) != 0)
            return rc;
    } else {
        ctx.withdrawn_at = b->now;
    }
    if ((rc = cf_claims_consent_put(b, op->member_hash, &ctx)) != 0)
        return rc;
    msgpack_sbuffer moved;
    msgpack_sbuffer_init(&moved);
    msgpack_packer mp;
    msgpack_packer_init(&mp, &moved, msgpack_sbuffer_write);
    uint32_t nmoved = 0;
    rc = cf_claims_fanout(b, op->member_hash, give ? "consent.given" : "consent.withdrawn", &who,
                          NULL, 0, &mp, &nmoved);
    if (rc == 0) {
        op->wrote = true;
        cf_op_key(op, "consent");
        cf_rights_pack_consent(&op->pk, member, mlen, &ctx);
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
    if ((rc = cf_op_audit_one(op, "get", &c)) != 0) {
        cf_claim_fini(&c);
        return rc;
    }
    cf_op_key(op, "claim");
    cf_claim_pack_reply(&op->pk, &c);
    cf_claim_fini(&c);
    return 0;
}

/* History pages: at most `limit` events and about CF_PAGE_BYTES of them
 * (always at least one), so no reply grows with a claim's history. */
#define CF_HISTORY_MAX 1000

static int s_history(cf_op_t *op)
{
    int64_t after, limit;
    int rc;
    if ((rc = cf_op_int(op, "after", 0, UINT32_MAX, 0, &after)) != 0 ||
        (rc = cf_op_int(op, "limit", 1, CF_HISTORY_MAX, CF_HISTORY_MAX, &limit)) != 0)
        return rc;
    cf_claim_t c;
    if ((rc = s_load(op, &c)) != 0)
        return rc;
    if ((rc = cf_op_audit_one(op, "history", &c)) != 0) {
        cf_claim_fini(&c);
        return rc;
    }
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    unsigned char k[CF_KEY_MAX];
    uint32_t n = 0, seq = (uint32_t)after;
    while (rc == 0 && seq < c.seq && n < (uint32_t)limit &&
           (n == 0 || list.size < CF_PAGE_BYTES)) {
        cf_bytes_t v;
        size_t kl = cf_key_history(k, c.id, ++seq);
        rc = cf_txn_get(op->b->txn, CF_DB_HISTORY, k, kl, &v);
        if (rc == 0)
            rc = cf_event_pack_reply(&lp, c.id, NULL, 0, v.data, v.len);
        n++;
    }
    if (rc == 0) {
        cf_op_key(op, "events");
        msgpack_pack_array(&op->pk, n);
        if (list.size)
            msgpack_sbuffer_write(&op->out, list.data, list.size);
        if (seq < c.seq) {
            cf_op_key(op, "next");
            msgpack_pack_uint32(&op->pk, seq);
        }
    }
    msgpack_sbuffer_destroy(&list);
    cf_claim_fini(&c);
    if (rc != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the claim's history cannot be read");
    return 0;
}

/* =========================================================== changes === */
/* The change feed: every event committed after batch `after`, in commit
 * order, each with its `batch`; the portal's only of its member's claims.
 * Whole batches per page (a cursor is a batch), at most `limit` events and
 * about CF_PAGE_BYTES, and a walk of at most CF_CHANGES_SCAN entries (a
 * member's events among everyone's): `next` says where to go on; `seq`
 * is the last committed batch, where a caught-up subscriber resumes. */
#define CF_CHANGES_MAX 1000
#define CF_CHANGES_SCAN 20000

typedef struct {
    cf_op_t *op;
    msgpack_packer *lp;
    msgpack_sbuffer *list;
    uint32_t limit, n;
    size_t scanned;
    uint64_t batch;          /* of the entry being looked at */
    uint64_t last;           /* the last committed batch: later ones are this one's */
    uint64_t done;           /* the last batch whose events are all in */
    bool more;
    int err;
} s_changes_t;

static int s_changes_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    s_changes_t *x = ctx;
    if (k.len != 12)
        return CF_SCAN_NEXT;
    uint64_t batch = cf_be64_get(k.data);
    /* Events of the batch this request runs in are not committed yet (and
     * go out on the events socket when they are). */
    if (batch > x->last)
        return CF_SCAN_STOP;
    if (batch != x->batch) {
        /* A batch boundary: stop here if the page is full. */
        if (x->batch)
            x->done = x->batch;
        if (x->n >= x->limit || x->list->size >= CF_PAGE_BYTES || x->scanned >= CF_CHANGES_SCAN) {
            x->more = true;
            return CF_SCAN_STOP;
        }
        x->batch = batch;
    }
    x->scanned++;
    cf_change_t ch;
    if (cf_change_decode(v.data, v.len, &ch) != 0)
        return CF_SCAN_NEXT;
    cf_op_t *op = x->op;
    if (op->ep == CF_EP_PORTAL &&
        (!ch.has_member || memcmp(ch.member, op->member_hash, CF_MEMBER_HASH_LEN) != 0))
        return CF_SCAN_NEXT;
    unsigned char hk[CF_KEY_MAX];
    size_t hkl = cf_key_history(hk, ch.claim, ch.seq);
    cf_bytes_t ev;
    int rc = cf_txn_get(op->b->txn, CF_DB_HISTORY, hk, hkl, &ev);
    if (rc == CF_ENOTFOUND)
        return CF_SCAN_NEXT;          /* purged since */
    if (rc == 0)
        rc = cf_event_pack_reply(x->lp, ch.claim, ch.workflow, batch, ev.data, ev.len);
    if (rc != 0) {
        x->err = rc;
        return rc;
    }
    x->n++;
    return CF_SCAN_NEXT;
}

static int s_changes(cf_op_t *op)
{
    int64_t after, limit;
    int rc;
    if ((rc = cf_op_int(op, "after", 0, INT64_MAX, 0, &after)) != 0 ||
        (rc = cf_op_int(op, "limit", 1, CF_CHANGES_MAX, CF_CHANGES_MAX, &limit)) != 0)
        return rc;
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    s_changes_t x = {.op = op, .lp = &lp, .list = &list, .limit = (uint32_t)limit,
                     .last = cf_store_seq(op->b->store)};
    unsigned char from[12];
    size_t fl = cf_key_change(from, (uint64_t)after + 1, 0);
    rc = cf_txn_scan(op->b->txn, CF_DB_CHANGES, from, fl, 0, s_changes_one, &x);
    if (rc == 0) {
        cf_op_key(op, "changes");
        msgpack_pack_array(&op->pk, x.n);
        if (list.size)
            msgpack_sbuffer_write(&op->out, list.data, list.size);
        if (x.more) {
            cf_op_key(op, "next");
            msgpack_pack_uint64(&op->pk, x.done);
        }
        cf_op_key(op, "seq");
        msgpack_pack_uint64(&op->pk, cf_store_seq(op->b->store));
    }
    msgpack_sbuffer_destroy(&list);
    if (rc != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the change feed cannot be read");
    return 0;
}

/* ============================================================= query === */

typedef struct {
    cf_op_t *op;
    const char *wf, *state, *flag, *owner;
    size_t wl, sl, fl, ol;
    int want_open;
    bool unowned;
    uint32_t limit, count;
    size_t scanned;
    bool more;
    const unsigned char *after;     /* the cursor: skip this key itself */
    size_t afterlen;
    unsigned char last[512];
    size_t lastlen;
    char (*ids)[CF_ID_LEN];
    msgpack_sbuffer list;
    msgpack_packer lp;
} s_query_t;

/* One index entry: its claim, if it matches, into the page. */
static int s_query_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_query_t *q = ctx;
    if (q->after && k.len == q->afterlen && memcmp(k.data, q->after, k.len) == 0)
        return CF_SCAN_NEXT;
    if (q->count == q->limit || q->scanned == CF_QUERY_SCAN_MAX ||
        (q->count && q->list.size >= CF_PAGE_BYTES)) {
        q->more = true;
        return CF_SCAN_STOP;
    }
    q->scanned++;
    if (k.len > sizeof q->last || k.len < CF_ID_LEN)
        return CF_SCAN_STOP;
    memcpy(q->last, k.data, k.len);
    q->lastlen = k.len;
    const char *id = (const char *)q->last + q->lastlen - CF_ID_LEN;
    cf_claim_t c;
    int rc = cf_claims_load(q->op->b, id, CF_ID_LEN, &c);
    if (rc == CF_ENOTFOUND)
        return CF_SCAN_NEXT;
    if (rc != 0)
        return rc;
    cf_op_t *op = q->op;
    bool ok = (!q->wf || (strlen(c.wf->name) == q->wl && memcmp(c.wf->name, q->wf, q->wl) == 0)) &&
              (!q->state || (strlen(c.wf->states[c.state].name) == q->sl &&
                             memcmp(c.wf->states[c.state].name, q->state, q->sl) == 0)) &&
              (q->want_open < 0 || q->want_open == !c.wf->states[c.state].final) &&
              (!q->owner || (strlen(c.owner) == q->ol && memcmp(c.owner, q->owner, q->ol) == 0)) &&
              (!q->unowned || c.owner[0] == '\0') &&
              (!op->has_member ||
               (c.has_member && memcmp(c.member, op->member_hash, CF_MEMBER_HASH_LEN) == 0));
    if (ok && q->flag) {
        char fb[CF_NAME_MAX + 1];
        snprintf(fb, sizeof fb, "%.*s", (int)q->fl, q->flag);
        int bit = cf_wf_flag_find(c.wf, fb);
        ok = bit >= 0 && ((c.flags >> bit) & 1);
    }
    if (ok) {
        cf_claim_pack_reply(&q->lp, &c);
        memcpy(q->ids[q->count], c.id, CF_ID_LEN);
        q->count++;
    }
    cf_claim_fini(&c);
    return CF_SCAN_NEXT;
}

static int s_query(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    const char *wf, *state, *flag, *after, *owner;
    size_t wl, sl, fl, al, ol;
    int64_t limit;
    int rc;
    if ((rc = cf_op_str(op, "owner", false, CF_NAME_MAX, &owner, &ol)) != 0 ||
        (rc = cf_op_str(op, "workflow", false, CF_NAME_MAX, &wf, &wl)) != 0 ||
        (rc = cf_op_str(op, "state", false, CF_NAME_MAX, &state, &sl)) != 0 ||
        (rc = cf_op_str(op, "flag", false, CF_NAME_MAX, &flag, &fl)) != 0 ||
        (rc = cf_op_str(op, "after", false, 2 * 512, &after, &al)) != 0 ||
        (rc = cf_op_int(op, "limit", 1, 1000, 100, &limit)) != 0)
        return rc;
    const msgpack_object *open = cf_mp_get(op->req, "open");
    if (open && open->type != MSGPACK_OBJECT_BOOLEAN && open->type != MSGPACK_OBJECT_NIL)
        return cf_op_fail(op, CF_EBADREQ, "field 'open' must be a boolean");
    int want_open = open && open->type == MSGPACK_OBJECT_BOOLEAN ? (open->via.boolean ? 1 : 0) : -1;
    const msgpack_object *unowned = cf_mp_get(op->req, "unowned");
    if (unowned && unowned->type != MSGPACK_OBJECT_BOOLEAN && unowned->type != MSGPACK_OBJECT_NIL)
        return cf_op_fail(op, CF_EBADREQ, "field 'unowned' must be a boolean");
    bool want_unowned = unowned && unowned->type == MSGPACK_OBJECT_BOOLEAN && unowned->via.boolean;
    if (want_unowned && owner)
        return cf_op_fail(op, CF_EBADREQ, "fields 'owner' and 'unowned' exclude each other");
    if (state && !wf)
        return cf_op_fail(op, CF_EBADREQ, "field 'state' needs field 'workflow'");
    if (op->ep == CF_EP_OPERATOR) {
        const msgpack_object *m = cf_mp_get(op->req, "member");
        if (m) {
            char canon[12];
            if (m->type != MSGPACK_OBJECT_STR ||
                cf_pid_canonical(m->via.str.ptr, m->via.str.size, canon) != 0)
                return cf_op_fail(op, CF_EBADREQ, "field 'member' is not a valid person id");
            cf_claims_member_hash(b, canon, op->member_hash);
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
        if (al % 2 || al / 2 > sizeof start || cf_unhex(after, al, start, al / 2) != 0 ||
            al / 2 < plen || memcmp(start, prefix, plen) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'after' is not a cursor of this query");
        startlen = al / 2;
    }
    s_query_t q = {.op = op, .wf = wf, .wl = wl, .state = state, .sl = sl, .flag = flag,
                   .fl = fl, .want_open = want_open, .limit = (uint32_t)limit,
                   .owner = owner, .ol = ol, .unowned = want_unowned,
                   .after = after ? start : NULL, .afterlen = startlen};
    msgpack_sbuffer_init(&q.list);
    msgpack_packer_init(&q.lp, &q.list, msgpack_sbuffer_write);
    /* The ids returned, for the access log. */
    q.ids = malloc((size_t)limit * CF_ID_LEN);
    if (!q.ids) {
        msgpack_sbuffer_destroy(&q.list);
        return cf_op_fail(op, CF_EINTERNAL, "out of memory");
    }
    rc = cf_txn_scan(b->txn, db, start, startlen, plen, s_query_one, &q);
    if (rc != 0) {
        free(q.ids);
        msgpack_sbuffer_destroy(&q.list);
        return cf_op_fail(op, rc, "the claims cannot be read");
    }
    if ((op->ep == CF_EP_OPERATOR || cf_op_by_other(op)) && q.count) {
        const char **idv = malloc(q.count * sizeof *idv);
        if (!idv) {
            rc = CF_EINTERNAL;
        } else {
            for (uint32_t i = 0; i < q.count; i++)
                idv[i] = q.ids[i];
            rc = cf_claims_audit(b, cf_op_audit_actor(op), "query", idv, q.count);
            free(idv);
            op->wrote = op->audited = rc == 0;
        }
    }
    free(q.ids);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&q.list);
        return cf_op_fail(op, rc, "the access log cannot be written");
    }
    cf_op_key(op, "claims");
    msgpack_pack_array(&op->pk, q.count);
    if (q.list.size)
        msgpack_sbuffer_write(&op->out, q.list.data, q.list.size);
    msgpack_sbuffer_destroy(&q.list);
    if (q.more && q.lastlen) {
        char hex[2 * sizeof q.last + 1];
        cf_hex(q.last, q.lastlen, hex);
        cf_op_key(op, "next");
        cf_pack_str(&op->pk, hex);
    }
    return 0;
}

/* ====================================================== timers, stats === */

typedef struct {
    cf_batch_t *b;
    cf_time_t before;
    bool has_before;
    uint32_t limit, count;
    msgpack_packer *lp;
} s_timers_t;

static int s_timer_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    s_timers_t *x = ctx;
    if (x->count == x->limit)
        return CF_SCAN_STOP;
    cf_timer_key_t tk;
    if (cf_key_timer_parse(k.data, k.len, &tk) != 0)
        return CF_SCAN_NEXT;
    if (x->has_before && tk.due >= x->before)
        return CF_SCAN_STOP;
    if (tk.kind != CF_TIMER_CLAIM)
        return CF_SCAN_NEXT;
    char event[CF_NAME_MAX + 1];
    snprintf(event, sizeof event, "%.*s", (int)v.len, (const char *)v.data);
    cf_claim_t c;
    int rc = cf_claims_load(x->b, tk.id, CF_ID_LEN, &c);
    if (rc == CF_ENOTFOUND)
        return CF_SCAN_NEXT;
    if (rc != 0)
        return rc;
    msgpack_packer *lp = x->lp;
    msgpack_pack_map(lp, 6);
    cf_pack_str(lp, "claim");
    cf_pack_str(lp, c.id);
    cf_pack_str(lp, "workflow");
    cf_pack_str(lp, c.wf->name);
    cf_pack_str(lp, "state");
    cf_pack_str(lp, c.wf->states[c.state].name);
    cf_pack_str(lp, "name");
    cf_pack_str(lp, tk.name);
    cf_pack_str(lp, "event");
    cf_pack_str(lp, event);
    cf_pack_str(lp, "due_at");
    cf_pack_time(lp, tk.due);
    x->count++;
    cf_claim_fini(&c);
    return CF_SCAN_NEXT;
}

static int s_timers(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    s_timers_t x = {.b = b};
    int64_t limit;
    int rc;
    if ((rc = cf_op_time(op, "due_before", false, &x.before, &x.has_before)) != 0 ||
        (rc = cf_op_int(op, "limit", 1, 1000, 100, &limit)) != 0)
        return rc;
    x.limit = (uint32_t)limit;
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    x.lp = &lp;
    rc = cf_txn_scan(b->txn, CF_DB_TIMERS, NULL, 0, 0, s_timer_one, &x);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&list);
        return cf_op_fail(op, rc, "the timers cannot be read");
    }
    cf_op_key(op, "timers");
    msgpack_pack_array(&op->pk, x.count);
    if (list.size)
        msgpack_sbuffer_write(&op->out, list.data, list.size);
    msgpack_sbuffer_destroy(&list);
    return 0;
}

/* One walk of an index whose keys are a group prefix then a claim id:
 * one map per group, `count` its entries.  The state index's prefix is
 * "workflow\0state\0", packed as `workflow` and `state`; the flag index's
 * is the flag, packed as `flag`. */
typedef struct {
    bool by_state;
    msgpack_packer *lp;
    uint32_t groups;
    char group[2 * CF_NAME_MAX + 2];
    size_t glen;
    uint64_t n;
} s_groups_t;

static void s_group_flush(s_groups_t *g)
{
    if (!g->glen)
        return;
    msgpack_packer *lp = g->lp;
    msgpack_pack_map(lp, g->by_state ? 3 : 2);
    if (g->by_state) {
        cf_pack_str(lp, "workflow");
        cf_pack_str(lp, g->group);
        cf_pack_str(lp, "state");
        cf_pack_str(lp, g->group + strlen(g->group) + 1);
    } else {
        cf_pack_str(lp, "flag");
        cf_pack_str(lp, g->group);
    }
    cf_pack_str(lp, "count");
    msgpack_pack_uint64(lp, g->n);
    g->groups++;
}

/* One kept count (db `counts`): a group and its number. */
static int s_count_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    s_groups_t *g = ctx;
    if (k.len < 2 || k.len - 1 >= sizeof g->group || v.len != 8)
        return CF_SCAN_NEXT;
    memcpy(g->group, (const char *)k.data + 1, k.len - 1);
    g->group[k.len - 1] = 0;
    g->glen = k.len - 1;
    g->n = cf_be64_get(v.data);
    s_group_flush(g);
    g->glen = 0;
    return CF_SCAN_NEXT;
}

static int s_count_groups(cf_op_t *op, char kind, const char *key, bool by_state)
{
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    s_groups_t g = {.by_state = by_state, .lp = &lp};
    int rc = cf_txn_scan(op->b->txn, CF_DB_COUNTS, &kind, 1, 1, s_count_one, &g);
    if (rc == 0) {
        s_group_flush(&g);
        cf_op_key(op, key);
        msgpack_pack_array(&op->pk, g.groups);
        if (list.size)
            msgpack_sbuffer_write(&op->out, list.data, list.size);
    }
    msgpack_sbuffer_destroy(&list);
    return rc;
}

typedef struct {
    cf_time_t now;
    uint64_t overdue;
} s_overdue_t;

static int s_overdue_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_overdue_t *x = ctx;
    if (k.len < 8 || (cf_time_t)cf_be64_get(k.data) > x->now)
        return CF_SCAN_STOP;
    x->overdue++;
    return CF_SCAN_NEXT;
}

static int s_stats(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    int rc;
    if ((rc = s_count_groups(op, 's', "states", true)) != 0 ||
        (rc = s_count_groups(op, 'f', "flags", false)) != 0)
        return cf_op_fail(op, rc, "the indexes cannot be read");

    /* Timers: pending, and overdue (a walk that stops at the first not due). */
    uint64_t pending = 0, claims = 0;
    s_overdue_t od = {b->now, 0};
    if ((rc = cf_txn_count(b->txn, CF_DB_TIMERS, &pending)) != 0 ||
        (rc = cf_txn_scan(b->txn, CF_DB_TIMERS, NULL, 0, 0, s_overdue_one, &od)) != 0 ||
        (rc = cf_txn_count(b->txn, CF_DB_CLAIMS, &claims)) != 0)
        return cf_op_fail(op, rc, "the timers cannot be read");
    cf_op_key(op, "timers");
    msgpack_pack_map(&op->pk, 2);
    cf_pack_str(&op->pk, "pending");
    msgpack_pack_uint64(&op->pk, pending);
    cf_pack_str(&op->pk, "overdue");
    msgpack_pack_uint64(&op->pk, od.overdue);
    cf_op_key(op, "claims");
    msgpack_pack_uint64(&op->pk, claims);
    cf_op_key(op, "seq");
    msgpack_pack_uint64(&op->pk, cf_store_seq(b->store));
    return 0;
}

/* ============================================================= clock === */

static int s_clock(cf_op_t *op, bool advance)
{
    cf_batch_t *b = op->b;
    if (!b->clock->manual)
        return cf_op_fail(op, CF_EFORBIDDEN, "the clock is real; clock ops need claimflowd "
                          "--clock manual:<time>");
    int rc;
    cf_time_t to;
    if (advance) {
        int64_t secs;
        if (!cf_mp_get(op->req, "seconds"))
            return cf_op_fail(op, CF_EBADREQ, "field 'seconds' is required");
        if ((rc = cf_op_int(op, "seconds", 1, INT64_C(50) * 366 * 86400, 0, &secs)) != 0)
            return rc;
        to = b->clock->manual_now + secs;
    } else {
        bool present;
        if ((rc = cf_op_time(op, "at", true, &to, &present)) != 0)
            return rc;
        if (to < b->clock->manual_now)
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
        rc = cf_timers_next_due(b->txn, &due);
        if (rc == CF_ENOTFOUND || (rc == 0 && due > to))
            break;
        if (rc != 0)
            return rc;
        if (due > b->clock->manual_now)
            b->clock->manual_now = due;
        b->now = b->clock->manual_now;
        size_t n = 0;
        if ((rc = cf_timers_fire(b, SIZE_MAX, &n)) != 0)
            return rc;
        fired += n;
        if (n == 0)
            break; /* cannot happen (the first timer is due): never spin */
    }
    b->clock->manual_now = to;
    b->now = to;
    op->wrote = true;
    /* A cluster's manual clock is the cluster's: the next leader starts
     * from it (cf_engine_open), so a test's timers fire once in all. */
    if (b->cluster) {
        unsigned char v[8];
        cf_be64_put(v, (uint64_t)to);
        if ((rc = cf_txn_put(b->txn, CF_DB_META, "clock", 5, v, 8)) != 0)
            return rc;
    }
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
static const char *const k_document[] = {"claim", "sha256", "offset", "length", NULL};
static const char *const k_claim[] = {"claim", NULL};
static const char *const k_assign[] = {"claim", "to", NULL};
static const char *const k_history[] = {"claim", "after", "limit", NULL};
static const char *const k_query[] = {"workflow", "state", "flag", "open", "owner", "unowned",
                                      "limit", "after", NULL};
static const char *const k_timers[] = {"due_before", "limit", NULL};
static const char *const k_advance[] = {"seconds", NULL};
static const char *const k_set[] = {"at", NULL};
static const char *const k_audit[] = {"claim", "operator", "limit", "after", NULL};
static const char *const k_purge[] = {"closed_before", "limit", NULL};
static const char *const k_page[] = {"after", "limit", NULL};
static const char *const k_export[] = {"after", NULL};
static const char *const k_consent_give[] = {"involved", NULL};
static const char *const k_rep_add[] = {"representative", "kind", "scope", "valid_until",
                                        "evidence", "decides", NULL};
static const char *const k_rep_grant[] = {"representative", "scope", "valid_until", NULL};
static const char *const k_rep_revoke[] = {"representative", NULL};
static const char *const k_rep_evidence[] = {"representative", "offset", "length", NULL};

#define R_CALL (CF_ROLE_HANDLER | CF_ROLE_SUPERVISOR)
#define S_HANDLER CF_OPSCOPE_HANDLER
#define PH_OK CF_OPPHONE_ALLOWED
#define PH_ONLY CF_OPPHONE_REQUIRED

/* name, fn, endpoints, roles (0: anyone, no actor needed), writes,
 * portal needs member, keys, scope a representative needs (`by`), phone
 * (operators recording a call), operator endpoint takes `member` */
static const cf_op_def_t s_ops[] = {
    {"ping", s_ping, EP_BOTH, 0, false, false, NULL, 0, 0, false},
    {"create", s_create, EP_BOTH, R_WRITE, true, true, k_create, S_HANDLER, PH_OK, false},
    {"send", s_send, EP_BOTH, R_WRITE, true, true, k_send, S_HANDLER, PH_OK, false},
    {"attach", s_attach, EP_BOTH, R_WRITE, true, true, k_attach, CF_SCOPE_CLAIMS, 0, false},
    {"assign", s_assign, CF_OPEP_OPERATOR, CF_ROLE_HANDLER | CF_ROLE_SUPERVISOR, true, false,
     k_assign, 0, 0, false},
    {"document", s_document, EP_BOTH, R_READ, false, true, k_document, CF_SCOPE_READ, 0, false},
    {"consent.give", s_consent_give, EP_BOTH, CF_ROLE_MEMBER | R_CALL, true, true,
     k_consent_give, S_HANDLER, PH_ONLY, true},
    {"consent.withdraw", s_consent_withdraw, EP_BOTH, CF_ROLE_MEMBER | R_CALL, true, true,
     NULL, S_HANDLER, PH_ONLY, true},
    {"consent.get", cf_op_consent_get, CF_OPEP_PORTAL, CF_ROLE_MEMBER, false, true, NULL,
     CF_SCOPE_READ, 0, false},
    {"access_log", cf_op_access_log, CF_OPEP_PORTAL, CF_ROLE_MEMBER, false, true, k_page,
     CF_SCOPE_READ, 0, false},
    {"export", cf_op_export, EP_BOTH, R_READ, false, true, k_export, CF_SCOPE_READ, 0, true},
    {"get", s_get, EP_BOTH, R_READ, false, true, k_claim, CF_SCOPE_READ, 0, false},
    {"history", s_history, EP_BOTH, R_READ, false, true, k_history, CF_SCOPE_READ, 0, false},
    {"query", s_query, EP_BOTH, R_READ, false, true, k_query, CF_SCOPE_READ, 0, true},
    {"changes", s_changes, EP_BOTH, R_READ, false, true, k_page, CF_SCOPE_READ, 0, false},
    {"timers", s_timers, CF_OPEP_OPERATOR, R_ANY_OP, false, false, k_timers, 0, 0, false},
    {"stats", s_stats, CF_OPEP_OPERATOR, R_ANY_OP, false, false, NULL, 0, 0, false},
    /* Clock ops are writing ops: a retry with the same id must not move
     * the clock twice (the kept reply answers it). */
    {"clock.advance", s_clock_advance, CF_OPEP_OPERATOR, R_ANY_OP, true, false, k_advance, 0, 0,
     false},
    {"clock.set", s_clock_set, CF_OPEP_OPERATOR, R_ANY_OP, true, false, k_set, 0, 0, false},
    {"audit", cf_op_audit, CF_OPEP_OPERATOR, CF_ROLE_AUDITOR | CF_ROLE_SUPERVISOR, false, false,
     k_audit, 0, 0, false},
    {"purge", cf_op_purge, CF_OPEP_OPERATOR, CF_ROLE_SUPERVISOR, true, false, k_purge, 0, 0,
     false},
    /* Who may act for a member (reps.c). */
    {"representation.add", cf_op_rep_add, CF_OPEP_OPERATOR, R_CALL, true, false, k_rep_add, 0,
     0, true},
    {"representation.grant", cf_op_rep_grant, CF_OPEP_PORTAL, CF_ROLE_MEMBER, true, true,
     k_rep_grant, S_HANDLER, 0, false},
    {"representation.revoke", cf_op_rep_revoke, EP_BOTH, CF_ROLE_MEMBER | R_CALL, true, true,
     k_rep_revoke, S_HANDLER, 0, true},
    {"representation.list", cf_op_rep_list, EP_BOTH, R_READ, false, true, NULL, S_HANDLER, 0,
     true},
    {"representation.evidence", s_rep_evidence, CF_OPEP_OPERATOR, R_ANY_OP, false, false,
     k_rep_evidence, 0, 0, true},
};

const cf_op_def_t *cf_op_find(const char *name, size_t len)
{
    for (size_t i = 0; i < sizeof s_ops / sizeof s_ops[0]; i++)
        if (strlen(s_ops[i].name) == len && memcmp(s_ops[i].name, name, len) == 0)
            return &s_ops[i];
    return NULL;
}

/* rights.c: the member's own view of their data (rights.h).
 *
 * consent.get shows the consent record as the member's claims' guard sees
 * it, with who gave it (the member, or a representative's person id), the
 * channel (portal, or phone when the Health Team recorded a call), when a
 * parent's consent for a child lapses (the 15th birthday), and the parents
 * a young person involved.
 */
#include "rights.h"

#include <stdlib.h>
#include <string.h>

#include "mpcheck.h"
#include "person.h"
#include "reps.h"

/* ============================================================ consent === */

void cf_rights_pack_consent(msgpack_packer *pk, const char *member, size_t mlen,
                            const cf_consent_t *c)
{
    if (c->given_at == 0) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 9);
    cf_pack_str(pk, "member");
    cf_pack_strn(pk, member, mlen);
    cf_pack_str(pk, "given_at");
    cf_pack_time(pk, c->given_at);
    cf_pack_str(pk, "valid_until");
    cf_pack_time(pk, c->valid_until);
    cf_pack_str(pk, "withdrawn_at");
    if (c->withdrawn_at)
        cf_pack_time(pk, c->withdrawn_at);
    else
        msgpack_pack_nil(pk);
    /* "member", or the person id of the representative who gave it */
    cf_pack_str(pk, "given_by");
    cf_pack_str(pk, c->given_by[0] ? c->given_by : "member");
    cf_pack_str(pk, "channel");
    cf_pack_str(pk, c->channel[0] ? c->channel : "portal");
    /* A parent's consent for a child: the 15th birthday, when it ends */
    cf_pack_str(pk, "lapses_at");
    if (c->lapses_at)
        cf_pack_time(pk, c->lapses_at);
    else
        msgpack_pack_nil(pk);
    cf_pack_str(pk, "involved");
    msgpack_pack_array(pk, (uint32_t)c->ninvolved);
    for (size_t i = 0; i < c->ninvolved; i++)
        cf_pack_str(pk, c->involved[i]);
    cf_pack_str(pk, "reference");
    if (c->reference[0])
        cf_pack_str(pk, c->reference);
    else
        msgpack_pack_nil(pk);
}

int cf_op_consent_get(cf_op_t *op)
{
    const char *member;
    size_t mlen;
    int rc = cf_op_str(op, "member", true, 32, &member, &mlen);
    if (rc != 0)
        return rc;
    cf_consent_t c;
    if ((rc = cf_claims_consent_get(op->b, op->member_hash, &c)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    cf_op_key(op, "consent");
    cf_rights_pack_consent(&op->pk, member, mlen, &c);
    return 0;
}

/* ========================================================= access log === */
/* The member's view of the access log is made from the log's claim index
 * (audit_claim): every entry naming one of the member's claims, newest
 * first.  The log itself holds no person ids or member hashes (it is kept
 * as long as the store, SECURITY.md), so an access that named no claim of
 * the member - an operator's query by person id that found nothing - cannot
 * be attributed to them; one that found claims names them.  A member-keyed
 * index was rejected for that reason: it would put a member link into the
 * log that purge would then have to find.
 *
 * Each page collects the audit keys of all the member's claims, sorts them
 * newest first and takes the ones after the cursor: a member has few
 * claims, and the cost is that of their accesses, not of the log's. */

typedef struct {
    unsigned char (*keys)[CF_AUDIT_KEY_LEN];
    size_t n, cap;
    size_t idlen;           /* the claim id's length in the key being walked */
} s_akeys_t;

static int s_collect_akey(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_akeys_t *x = ctx;
    if (k.len != x->idlen + CF_AUDIT_KEY_LEN)
        return CF_SCAN_NEXT;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        void *nv = realloc(x->keys, cap * CF_AUDIT_KEY_LEN);
        if (!nv)
            return CF_EINTERNAL;
        x->keys = nv;
        x->cap = cap;
    }
    memcpy(x->keys[x->n++], (const unsigned char *)k.data + x->idlen, CF_AUDIT_KEY_LEN);
    return CF_SCAN_NEXT;
}

static int s_akey_desc(const void *a, const void *b)
{
    return memcmp(b, a, CF_AUDIT_KEY_LEN);
}

static int s_id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CF_ID_LEN);
}

/* The member's claims (sorted, as the member index holds them). */
typedef struct {
    char (*ids)[CF_ID_LEN];
    size_t n;
} s_member_t;

static bool s_is_members(const s_member_t *m, const char *id)
{
    return bsearch(id, m->ids, m->n, CF_ID_LEN, s_id_cmp) != NULL;
}

/* One entry as a member is shown it: at, op, role, purpose, the member's
 * claims it named, and the operator's id only when configured. */
static void s_pack_access(cf_batch_t *b, msgpack_packer *pk, const s_member_t *m,
                          const cf_audit_rec_t *a)
{
    bool ids = b->lim->show_operator_ids;
    msgpack_pack_map(pk, ids ? 6 : 5);
    cf_pack_str(pk, "at");
    cf_pack_time(pk, a->at);
    cf_pack_str(pk, "op");
    msgpack_pack_object(pk, a->op);
    cf_pack_str(pk, "role");
    if (a->role)
        msgpack_pack_object(pk, *a->role);
    else
        msgpack_pack_nil(pk);
    cf_pack_str(pk, "purpose");
    if (a->purpose)
        msgpack_pack_object(pk, *a->purpose);
    else
        msgpack_pack_nil(pk);
    cf_pack_str(pk, "claims");
    char id[CF_ID_LEN + 1];
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->nclaims; i++)
        n += cf_audit_claim(a, i, id) == 0 && s_is_members(m, id);
    msgpack_pack_array(pk, n);
    for (uint32_t i = 0; i < a->nclaims; i++)
        if (cf_audit_claim(a, i, id) == 0 && s_is_members(m, id))
            cf_pack_strn(pk, id, CF_ID_LEN);
    if (ids) {
        cf_pack_str(pk, "actor");
        msgpack_pack_object(pk, a->actor);
    }
}

/* A page of the member's access log into lp: entries older than after
 * (NULL: from the newest), at most limit and about max_bytes (always at
 * least one).  *count, and *more with the last key returned in last. */
static int s_access_page(cf_batch_t *b, const s_member_t *m, const unsigned char *after,
                         uint32_t limit, size_t max_bytes, msgpack_packer *lp,
                         msgpack_sbuffer *lsb, uint32_t *count, bool *more,
                         unsigned char last[CF_AUDIT_KEY_LEN])
{
    s_akeys_t x = {0};
    int rc = 0;
    /* Under both forms of the index key: the id's 16 bytes, and the 26
     * characters of entries written before (schema.h). */
    for (size_t i = 0; i < m->n && rc == 0; i++) {
        x.idlen = CF_ID_LEN;
        rc = cf_txn_scan(b->txn, CF_DB_AUDIT_CLAIM, m->ids[i], CF_ID_LEN, CF_ID_LEN,
                         s_collect_akey, &x);
        unsigned char bin[CF_ID_BIN_LEN];
        if (rc == 0 && cf_id_to_bin(m->ids[i], bin) == 0) {
            x.idlen = CF_ID_BIN_LEN;
            rc = cf_txn_scan(b->txn, CF_DB_AUDIT_CLAIM, bin, sizeof bin, sizeof bin,
                             s_collect_akey, &x);
        }
    }
    *count = 0;
    *more = false;
    if (rc == 0 && x.n)
        qsort(x.keys, x.n, CF_AUDIT_KEY_LEN, s_akey_desc);
    size_t base = lsb->size;
    for (size_t i = 0; rc == 0 && i < x.n; i++) {
        /* one entry naming two of the member's claims is one access */
        if (i > 0 && memcmp(x.keys[i], x.keys[i - 1], CF_AUDIT_KEY_LEN) == 0)
            continue;
        if (after && memcmp(x.keys[i], after, CF_AUDIT_KEY_LEN) >= 0)
            continue;
        if (*count == limit || (*count > 0 && lsb->size - base >= max_bytes)) {
            *more = true;
            break;
        }
        cf_bytes_t v;
        rc = cf_txn_get(b->txn, CF_DB_AUDIT, x.keys[i], CF_AUDIT_KEY_LEN, &v);
        if (rc == CF_ENOTFOUND) {
            rc = 0; /* an entry pruned from the log: its index entry lags */
            continue;
        }
        if (rc != 0)
            break;
        cf_audit_rec_t a;
        if (cf_audit_decode(v.data, v.len, &a) != 0)
            rc = CF_EINTERNAL;
        else
            s_pack_access(b, lp, m, &a);
        cf_audit_fini(&a);
        if (rc == 0) {
            memcpy(last, x.keys[i], CF_AUDIT_KEY_LEN);
            (*count)++;
        }
    }
    free(x.keys);
    return rc;
}

/* `after`: a cursor from a previous page (the hex of an audit key). */
static int s_cursor(cf_op_t *op, const char *key, unsigned char out[CF_AUDIT_KEY_LEN],
                    bool *present)
{
    const char *s;
    size_t n;
    int rc = cf_op_str(op, key, false, 2 * CF_AUDIT_KEY_LEN, &s, &n);
    *present = s != NULL;
    if (rc == 0 && s && (n != 2 * CF_AUDIT_KEY_LEN || cf_unhex(s, n, out, CF_AUDIT_KEY_LEN) != 0))
        return cf_op_fail(op, CF_EBADREQ, "field '%s' is not a cursor of this log", key);
    return rc;
}

/* The most bytes of entries a page holds (besides `limit`). */
#define CF_RIGHTS_PAGE_BYTES ((size_t)1 << 20)

int cf_op_access_log(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    unsigned char after[CF_AUDIT_KEY_LEN], last[CF_AUDIT_KEY_LEN];
    bool has_after;
    int64_t limit;
    int rc;
    if ((rc = s_cursor(op, "after", after, &has_after)) != 0 ||
        (rc = cf_op_int(op, "limit", 1, 1000, 100, &limit)) != 0)
        return rc;
    s_member_t m = {0};
    if ((rc = cf_claims_of_member(b, op->member_hash, &m.ids, &m.n)) != 0)
        return cf_op_fail(op, rc, "the member's claims cannot be read");
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    uint32_t count;
    bool more;
    rc = s_access_page(b, &m, has_after ? after : NULL, (uint32_t)limit, CF_RIGHTS_PAGE_BYTES,
                       &lp, &list, &count, &more, last);
    free(m.ids);
    if (rc == 0) {
        cf_op_key(op, "entries");
        msgpack_pack_array(&op->pk, count);
        if (list.size)
            msgpack_sbuffer_write(&op->out, list.data, list.size);
        if (more) {
            char hex[2 * CF_AUDIT_KEY_LEN + 1];
            cf_hex(last, CF_AUDIT_KEY_LEN, hex);
            cf_op_key(op, "next");
            cf_pack_str(&op->pk, hex);
        }
    }
    msgpack_sbuffer_destroy(&list);
    if (rc != 0)
        return cf_op_fail(op, rc, "the access log cannot be read");
    return 0;
}

/* ============================================================= export === */
/* Everything held about one member, in pages of about
 * CF_RIGHTS_PAGE_BYTES: the consent (on every page), then the member's
 * claims in id order, each with its whole history (a claim is never split
 * across pages), then the access log as `access_log` shows it, newest
 * first.  The cursor says where the next page starts: "c:" + the last
 * claim id, "a:" (the log from its newest entry) or "a:" + the last audit
 * key in hex.  Each page is itself an access (op `export`, the claims it
 * held), recorded after the page was read, so a page never shows itself. */

static int s_pack_claim_with_history(cf_batch_t *b, msgpack_packer *pk, const cf_claim_t *c)
{
    msgpack_pack_map(pk, 2);
    cf_pack_str(pk, "claim");
    cf_claim_pack_reply(pk, c);
    cf_pack_str(pk, "events");
    msgpack_pack_array(pk, c->seq);
    unsigned char k[CF_KEY_MAX];
    for (uint32_t seq = 1; seq <= c->seq; seq++) {
        cf_bytes_t v;
        size_t kl = cf_key_history(k, c->id, seq);
        int rc = cf_txn_get(b->txn, CF_DB_HISTORY, k, kl, &v);
        if (rc == 0)
            rc = cf_event_pack_reply(pk, c->id, NULL, 0, v.data, v.len);
        if (rc != 0)
            return rc == CF_ENOTFOUND ? CF_EINTERNAL : rc;
    }
    return 0;
}

int cf_op_export(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    const char *member, *after;
    size_t mlen, alen;
    int rc;
    if ((rc = cf_op_str(op, "member", true, 32, &member, &mlen)) != 0 ||
        (rc = cf_op_str(op, "after", false, 2 + 2 * CF_AUDIT_KEY_LEN, &after, &alen)) != 0)
        return rc;
    if (op->ep == CF_EP_OPERATOR) {
        char canon[12];
        if (cf_pid_canonical(member, mlen, canon) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'member' is not a valid person id");
        cf_claims_member_hash(b, canon, op->member_hash);
        op->has_member = true;
    }
    /* Where this page starts. */
    bool in_log = false, log_from = false;
    char claim_after[CF_ID_LEN + 1] = "";
    unsigned char log_after[CF_AUDIT_KEY_LEN];
    if (after) {
        bool okc = alen == 2 + CF_ID_LEN && memcmp(after, "c:", 2) == 0;
        bool oka = alen == 2 && memcmp(after, "a:", 2) == 0;
        bool okk = alen == 2 + 2 * CF_AUDIT_KEY_LEN && memcmp(after, "a:", 2) == 0 &&
                   cf_unhex(after + 2, alen - 2, log_after, CF_AUDIT_KEY_LEN) == 0;
        if (!okc && !oka && !okk)
            return cf_op_fail(op, CF_EBADREQ, "field 'after' is not a cursor of this export");
        if (okc)
            memcpy(claim_after, after + 2, CF_ID_LEN);
        in_log = oka || okk;
        log_from = okk;
    }
    cf_consent_t consent;
    if ((rc = cf_claims_consent_get(b, op->member_hash, &consent)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    s_member_t m = {0};
    if ((rc = cf_claims_of_member(b, op->member_hash, &m.ids, &m.n)) != 0)
        return cf_op_fail(op, rc, "the member's claims cannot be read");

    msgpack_sbuffer cl, lg;
    msgpack_sbuffer_init(&cl);
    msgpack_sbuffer_init(&lg);
    msgpack_packer cp, lp;
    msgpack_packer_init(&cp, &cl, msgpack_sbuffer_write);
    msgpack_packer_init(&lp, &lg, msgpack_sbuffer_write);
    const char **paged = calloc(m.n ? m.n : 1, sizeof *paged);
    uint32_t nclaims = 0, nlog = 0;
    char next[2 + 2 * CF_AUDIT_KEY_LEN + 1] = "";
    if (!paged)
        rc = CF_EINTERNAL;
    for (size_t i = 0; rc == 0 && !in_log && i < m.n; i++) {
        if (claim_after[0] && memcmp(m.ids[i], claim_after, CF_ID_LEN) <= 0)
            continue;
        if (nclaims > 0 && cl.size >= CF_RIGHTS_PAGE_BYTES) {
            snprintf(next, sizeof next, "c:%.*s", (int)CF_ID_LEN, m.ids[i - 1]);
            break;
        }
        cf_claim_t c;
        rc = cf_claims_load(b, m.ids[i], CF_ID_LEN, &c);
        if (rc == CF_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        rc = s_pack_claim_with_history(b, &cp, &c);
        cf_claim_fini(&c);
        paged[nclaims++] = m.ids[i];
    }
    /* The access log, when the claims are done and the page has room. */
    if (rc == 0 && !next[0]) {
        if (!in_log && nclaims > 0 && cl.size >= CF_RIGHTS_PAGE_BYTES) {
            snprintf(next, sizeof next, "a:");
        } else {
            bool more;
            unsigned char last[CF_AUDIT_KEY_LEN];
            size_t room = CF_RIGHTS_PAGE_BYTES - (in_log ? 0 : cl.size);
            rc = s_access_page(b, &m, log_from ? log_after : NULL, 1000, room, &lp, &lg, &nlog,
                               &more, last);
            if (rc == 0 && more) {
                memcpy(next, "a:", 2);
                cf_hex(last, CF_AUDIT_KEY_LEN, next + 2);
            }
        }
    }
    /* The export is an access like any read, on either endpoint. */
    if (rc == 0 && (rc = cf_claims_audit(b, cf_op_audit_actor(op), "export", paged, nclaims)) == 0)
        op->wrote = op->audited = true;
    if (rc == 0) {
        cf_op_key(op, "member");
        cf_pack_strn(&op->pk, member, mlen);
        cf_op_key(op, "consent");
        cf_rights_pack_consent(&op->pk, member, mlen, &consent);
        /* Who may act for the member (reps.c): on every page, as consent. */
        cf_op_key(op, "representations");
        rc = cf_reps_pack_member(b, op->member_hash, &op->pk);
    }
    if (rc == 0) {
        cf_op_key(op, "claims");
        msgpack_pack_array(&op->pk, nclaims);
        if (cl.size)
            msgpack_sbuffer_write(&op->out, cl.data, cl.size);
        cf_op_key(op, "access_log");
        msgpack_pack_array(&op->pk, nlog);
        if (lg.size)
            msgpack_sbuffer_write(&op->out, lg.data, lg.size);
        if (next[0]) {
            cf_op_key(op, "next");
            cf_pack_str(&op->pk, next);
        }
    }
    free(paged);
    free(m.ids);
    msgpack_sbuffer_destroy(&cl);
    msgpack_sbuffer_destroy(&lg);
    if (rc != 0 && !op->err.code)
        return cf_op_fail(op, rc, "the member's data cannot be read");
    return rc;
}

/* privacy.c: the access log's reader and the purge of closed claims'
 * personal data (docs/SECURITY.md).
 *
 * Purge keeps an anonymised skeleton of each claim - workflow, version,
 * states, flags, times, and its history without event data - and erases the
 * rest: data fields, documents (when no other claim holds the same bytes),
 * the member link and index entries, the member's consent once none of their
 * claims remain, and idempotency entries (kept replies repeat claim data)
 * older than the cut-off.  LMDB keeps the bytes of freed pages until they
 * are reused, so after the purge commits the engine rewrites the file with a
 * compacting copy (cf_store_compact): erased means gone from the file.
 */
#include "privacy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_be.h"
#include "mpcheck.h"
#include "reps.h"

#define CF_PURGE_MAX 10000

/* ============================================================== audit === */

static int s_str_opt(cf_op_t *op, const char *key, size_t max, const char **s, size_t *n)
{
    const msgpack_object *o = cf_mp_get(op->req, key);
    *s = NULL;
    *n = 0;
    if (!o || o->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0 || o->via.str.size > max)
        return cf_op_fail(op, CF_EBADREQ, "field '%s' must be a string of 1 to %zu bytes", key,
                          max);
    *s = o->via.str.ptr;
    *n = o->via.str.size;
    return 0;
}

/* One entry as the protocol shows it: claim ids always in text, whether
 * the record holds them as 16 bytes or (written before) as text; elements
 * a later format appends are not shown here. */
static void s_pack_entry(msgpack_packer *pk, const void *rec, size_t len)
{
    cf_audit_rec_t r;
    if (cf_audit_decode(rec, len, &r) != 0) {
        cf_audit_fini(&r);
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 6);
    cf_pack_str(pk, "at");
    cf_pack_time(pk, r.at);
    cf_pack_str(pk, "actor");
    msgpack_pack_object(pk, r.actor);
    cf_pack_str(pk, "op");
    msgpack_pack_object(pk, r.op);
    cf_pack_str(pk, "claims");
    msgpack_pack_array(pk, r.nclaims);
    for (uint32_t i = 0; i < r.nclaims; i++) {
        char id[CF_ID_LEN + 1];
        if (cf_audit_claim(&r, i, id) == 0)
            cf_pack_strn(pk, id, CF_ID_LEN);
        else
            msgpack_pack_nil(pk);
    }
    /* nil on entries written before roles and purposes were kept */
    cf_pack_str(pk, "role");
    if (r.role)
        msgpack_pack_object(pk, *r.role);
    else
        msgpack_pack_nil(pk);
    cf_pack_str(pk, "purpose");
    if (r.purpose)
        msgpack_pack_object(pk, *r.purpose);
    else
        msgpack_pack_nil(pk);
    cf_audit_fini(&r);
}

typedef struct {
    cf_batch_t *b;
    cf_db_t db;
    size_t plen;
    uint32_t limit, count;
    bool more;
    const unsigned char *after;
    size_t afterlen;
    unsigned char last[CF_AUDIT_KEY_LEN];
    msgpack_sbuffer *list;
    msgpack_packer *lp;
} s_audit_t;

static int s_audit_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    s_audit_t *x = ctx;
    if (x->after && k.len == x->afterlen && memcmp(k.data, x->after, k.len) == 0)
        return CF_SCAN_NEXT;
    if (k.len != x->plen + CF_AUDIT_KEY_LEN)
        return CF_SCAN_STOP;
    if (x->count == x->limit || (x->count && x->list->size >= CF_PAGE_BYTES)) {
        x->more = true;
        return CF_SCAN_STOP;
    }
    memcpy(x->last, (const unsigned char *)k.data + x->plen, CF_AUDIT_KEY_LEN);
    cf_bytes_t rec = v;
    if (x->db != CF_DB_AUDIT) {
        int rc = cf_txn_get(x->b->txn, CF_DB_AUDIT, x->last, CF_AUDIT_KEY_LEN, &rec);
        if (rc != 0)
            return rc == CF_ENOTFOUND ? CF_EINTERNAL : rc;
    }
    s_pack_entry(x->lp, rec.data, rec.len);
    x->count++;
    return CF_SCAN_NEXT;
}

/* One claim's entries: its index holds two forms of key (schema.h), which
 * the claims layer merges. */
static int s_audit_of_claim(s_audit_t *x, const char *claim, const unsigned char *after)
{
    char id[CF_ID_LEN + 1];
    memcpy(id, claim, CF_ID_LEN);
    id[CF_ID_LEN] = '\0';
    unsigned char (*keys)[CF_AUDIT_KEY_LEN] = malloc((x->limit + 1) * CF_AUDIT_KEY_LEN);
    if (!keys)
        return CF_EINTERNAL;
    size_t n;
    int rc = cf_claims_audit_of_claim(x->b->txn, id, after, x->limit + 1, keys, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (x->count == x->limit || (x->count && x->list->size >= CF_PAGE_BYTES)) {
            x->more = true;
            break;
        }
        cf_bytes_t rec;
        if ((rc = cf_txn_get(x->b->txn, CF_DB_AUDIT, keys[i], CF_AUDIT_KEY_LEN, &rec)) != 0) {
            rc = rc == CF_ENOTFOUND ? CF_EINTERNAL : rc;
            break;
        }
        memcpy(x->last, keys[i], CF_AUDIT_KEY_LEN);
        s_pack_entry(x->lp, rec.data, rec.len);
        x->count++;
    }
    free(keys);
    return rc;
}

int cf_op_audit(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    const char *claim, *actor, *after;
    size_t cl, al, afl;
    int rc;
    if ((rc = s_str_opt(op, "claim", CF_ID_LEN, &claim, &cl)) != 0 ||
        (rc = s_str_opt(op, "operator", CF_NAME_MAX, &actor, &al)) != 0 ||
        (rc = s_str_opt(op, "after", 256, &after, &afl)) != 0)
        return rc;
    const msgpack_object *lo = cf_mp_get(op->req, "limit");
    int64_t limit = 100;
    if (lo) {
        if (lo->type != MSGPACK_OBJECT_POSITIVE_INTEGER || lo->via.u64 < 1 || lo->via.u64 > 1000)
            return cf_op_fail(op, CF_EBADREQ, "field 'limit' must be between 1 and 1000");
        limit = (int64_t)lo->via.u64;
    }
    if (claim && actor)
        return cf_op_fail(op, CF_EBADREQ, "give 'claim' or 'operator', not both");
    /* Walk an index (claim or actor) to audit keys, or the log itself. */
    unsigned char prefix[CF_NAME_MAX + 2];
    size_t plen = 0;
    cf_db_t db = CF_DB_AUDIT;
    if (claim) {
        if (cl != CF_ID_LEN)
            return cf_op_fail(op, CF_EBADREQ, "field 'claim' is not a claim id");
        db = CF_DB_AUDIT_CLAIM;
        memcpy(prefix, claim, cl);
        plen = cl;
    } else if (actor) {
        db = CF_DB_AUDIT_ACTOR;
        memcpy(prefix, actor, al);
        prefix[al] = 0;
        plen = al + 1;
    }
    unsigned char start[CF_NAME_MAX + 2 + 16];
    size_t startlen = plen;
    memcpy(start, prefix, plen);
    if (after) {
        if (afl != 32)
            return cf_op_fail(op, CF_EBADREQ, "field 'after' is not a cursor of this log");
        for (size_t i = 0; i < 16; i++) {
            unsigned v;
            if (sscanf(after + 2 * i, "%2x", &v) != 1)
                return cf_op_fail(op, CF_EBADREQ, "field 'after' is not a cursor of this log");
            start[plen + i] = (unsigned char)v;
        }
        startlen = plen + 16;
    }
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    s_audit_t x = {.b = b, .db = db, .plen = plen, .limit = (uint32_t)limit, .lp = &lp,
                   .list = &list,
                   .after = after ? start : NULL, .afterlen = startlen};
    if (claim)
        rc = s_audit_of_claim(&x, claim, after ? start + plen : NULL);
    else
        rc = cf_txn_scan(b->txn, db, start, startlen, plen, s_audit_one, &x);
    if (rc != 0) {
        msgpack_sbuffer_destroy(&list);
        return cf_op_fail(op, rc, "the access log cannot be read");
    }
    uint32_t count = x.count;
    bool more = x.more;
    unsigned char *last = x.last;
    cf_op_key(op, "entries");
    msgpack_pack_array(&op->pk, count);
    if (list.size)
        msgpack_sbuffer_write(&op->out, list.data, list.size);
    msgpack_sbuffer_destroy(&list);
    if (more) {
        char hex[33];
        cf_hex(last, 16, hex);
        cf_op_key(op, "next");
        cf_pack_str(&op->pk, hex);
    }
    return 0;
}

/* ============================================================== purge === */

/* Rewrite one history record without its data. */
static int s_strip_event(cf_batch_t *b, const char *id, uint32_t seq)
{
    unsigned char k[CF_KEY_MAX];
    size_t kl = cf_key_history(k, id, seq);
    cf_bytes_t v;
    int rc = cf_txn_get(b->txn, CF_DB_HISTORY, k, kl, &v);
    if (rc != 0)
        return rc == CF_ENOTFOUND ? 0 : rc;
    msgpack_sbuffer *sb = &b->scratch;
    bool changed;
    if ((rc = cf_event_strip(v.data, v.len, sb, &changed)) != 0 || !changed)
        return rc;
    return cf_txn_put(b->txn, CF_DB_HISTORY, k, kl, sb->data, sb->size);
}

/* Forget a member with no claims left: the consent record and its timers,
 * and the member's representations. */
static int s_any(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)k;
    (void)v;
    *(bool *)ctx = true;
    return CF_SCAN_STOP;
}

static int s_drop_member_if_unused(cf_batch_t *b, const unsigned char *hash)
{
    bool used = false;
    int rc = cf_txn_scan(b->txn, CF_DB_IDX_MEMBER, hash, CF_MEMBER_HASH_LEN, CF_MEMBER_HASH_LEN,
                         s_any, &used);
    if (rc != 0 || used)
        return rc;
    cf_consent_t c;
    if ((rc = cf_claims_consent_get(b, hash, &c)) != 0)
        return rc;
    if ((rc = cf_claims_consent_timers(b, hash, &c, false)) != 0)
        return rc;
    /* Who could act for the member goes with the member: records,
     * evidence documents, end timers (reps.c). */
    if ((rc = cf_reps_erase_member(b, hash)) != 0)
        return rc;
    return cf_txn_del(b->txn, CF_DB_MEMBERS, hash, CF_MEMBER_HASH_LEN);
}

static int s_purge_claim(cf_batch_t *b, cf_claim_t *c, unsigned char (*members)[16],
                         size_t *nmembers)
{
    int rc;
    for (size_t i = 0; i < c->ndocs; i++)
        if ((rc = cf_claims_doc_unref(b, c->docs[i].sha)) != 0)
            return rc;
    c->ndocs = 0;
    for (uint32_t seq = 1; seq <= c->seq; seq++)
        if ((rc = s_strip_event(b, c->id, seq)) != 0)
            return rc;
    if (c->has_member) {
        unsigned char k[CF_KEY_MAX];
        size_t kl = cf_key_member(k, c->member, c->id);
        if ((rc = cf_txn_del(b->txn, CF_DB_IDX_MEMBER, k, kl)) != 0)
            return rc;
        memcpy(members[(*nmembers)++], c->member, CF_MEMBER_HASH_LEN);
        c->has_member = false;
    }
    /* The data map becomes empty. */
    c->data.type = MSGPACK_OBJECT_MAP;
    c->data.via.map.size = 0;
    c->data.via.map.ptr = NULL;
    return cf_claims_save(b, c);
}

/* Claims closed before the cut-off, oldest first, from the closed index
 * (idx_closed), up to CF_PURGE_MAX.  Each entry is taken out of the index
 * as it is collected: a claim is purged once, and skeletons and claims
 * already erased are never walked again, so a purge's cost follows what it
 * erases, not what it erased before. */
typedef struct {
    cf_batch_t *b;
    cf_time_t cutoff;
    size_t limit;
    char (*ids)[CF_ID_LEN];
    size_t n, cap;
    bool more;
} s_ids_t;

static int s_collect(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_ids_t *x = ctx;
    if (k.len != 8 + CF_ID_LEN)
        return CF_SCAN_DEL;
    if ((cf_time_t)cf_be64_get(k.data) >= x->cutoff)
        return CF_SCAN_STOP;
    if (x->n == x->limit) {
        x->more = true;
        return CF_SCAN_STOP;
    }
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 64;
        void *nv = realloc(x->ids, cap * CF_ID_LEN);
        if (!nv)
            return CF_EINTERNAL;
        x->ids = nv;
        x->cap = cap;
    }
    memcpy(x->ids[x->n++], (const char *)k.data + 8, CF_ID_LEN);
    return CF_SCAN_DEL;
}

/* Delete idempotency entries kept before the cut-off (and their age index
 * entries). */
typedef struct {
    cf_batch_t *b;
    cf_time_t cutoff;
} s_idem_cut_t;

static int s_idem_cut(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_idem_cut_t *x = ctx;
    if (k.len <= 8 || (cf_time_t)cf_be64_get(k.data) >= x->cutoff)
        return CF_SCAN_STOP;
    int rc = cf_txn_del(x->b->txn, CF_DB_IDEM, (const char *)k.data + 8, k.len - 8);
    return rc ? rc : CF_SCAN_DEL;
}

int cf_op_purge(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    const char *s;
    size_t n;
    int rc = s_str_opt(op, "closed_before", 64, &s, &n);
    if (rc != 0)
        return rc;
    cf_time_t cutoff;
    if (s) {
        int y;
        unsigned m, d;
        if (cf_date_parse(s, n, &y, &m, &d) == 0)
            cutoff = cf_days_from_civil(y, m, d) * 86400;
        else if (cf_time_parse(s, n, &cutoff) != 0)
            return cf_op_fail(op, CF_EBADREQ, "field 'closed_before' must be a date "
                              "(YYYY-MM-DD) or an RFC 3339 time");
    } else if (b->lim->purge_after > 0) {
        cutoff = b->now - b->lim->purge_after;
    } else {
        return cf_op_fail(op, CF_EBADREQ, "field 'closed_before' is required (no retention "
                          "period is configured)");
    }
    if (cutoff > b->now)
        return cf_op_fail(op, CF_EBADREQ, "field 'closed_before' is in the future");

    int64_t limit;
    if ((rc = cf_op_int(op, "limit", 1, CF_PURGE_MAX, CF_PURGE_MAX, &limit)) != 0)
        return rc;
    s_ids_t x = {.b = b, .cutoff = cutoff, .limit = (size_t)limit};
    rc = cf_txn_scan(b->txn, CF_DB_IDX_CLOSED, NULL, 0, 0, s_collect, &x);
    unsigned char (*members)[16] = malloc((x.n ? x.n : 1) * 16);
    const char **purged = malloc((x.n ? x.n : 1) * sizeof *purged);
    size_t nmembers = 0, npurged = 0;
    if (rc == 0 && (!members || !purged))
        rc = CF_EINTERNAL;
    for (size_t i = 0; i < x.n && rc == 0; i++) {
        cf_claim_t c;
        rc = cf_claims_load(b, x.ids[i], CF_ID_LEN, &c);
        if (rc == CF_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        bool personal = c.data.via.map.size || c.ndocs || c.has_member;
        /* The index holds claims final in their own workflow version. */
        if (c.wf->states[c.state].final && personal) {
            rc = s_purge_claim(b, &c, members, &nmembers);
            purged[npurged++] = x.ids[i];
        }
        cf_claim_fini(&c);
    }
    for (size_t i = 0; i < nmembers && rc == 0; i++)
        rc = s_drop_member_if_unused(b, members[i]);
    /* Kept replies older than the cut-off may repeat the erased data. */
    if (rc == 0 && npurged) {
        s_idem_cut_t ic = {b, cutoff};
        rc = cf_txn_scan(b->txn, CF_DB_IDEM_AGE, NULL, 0, 0, s_idem_cut, &ic);
    }
    if (rc == 0)
        rc = cf_claims_audit(b, op->actor, "purge", purged, npurged);
    op->audited = rc == 0;
    if (rc == 0) {
        op->wrote = true;
        b->purge_ran = true;
        if (npurged)
            b->compact_pending = true;
        cf_op_key(op, "purged");
        msgpack_pack_uint64(&op->pk, npurged);
        cf_op_key(op, "more");
        if (x.more)
            msgpack_pack_true(&op->pk);
        else
            msgpack_pack_false(&op->pk);
    }
    free(members);
    free(purged);
    free(x.ids);
    /* A purge that failed part-way is a failure: the batch re-runs or the
     * request is answered with the error, never `ok` for half of it. */
    if (rc != 0 && !op->err.code)
        return cf_op_fail(op, rc < 0 ? rc : CF_EINTERNAL, "the purge could not be written");
    return rc;
}

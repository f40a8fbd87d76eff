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
#include "engine_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void s_pack_entry(msgpack_packer *pk, const void *rec, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, rec, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 4) {
        const msgpack_object *a = up.data.via.array.ptr;
        msgpack_pack_map(pk, 4);
        cf_pack_str(pk, "at");
        cf_pack_time(pk, a[0].type == MSGPACK_OBJECT_POSITIVE_INTEGER ? (cf_time_t)a[0].via.u64 : 0);
        cf_pack_str(pk, "actor");
        msgpack_pack_object(pk, a[1]);
        cf_pack_str(pk, "op");
        msgpack_pack_object(pk, a[2]);
        cf_pack_str(pk, "claims");
        msgpack_pack_object(pk, a[3]);
    } else {
        msgpack_pack_nil(pk);
    }
    msgpack_unpacked_destroy(&up);
}

int cf_op_audit(cf_op_t *op)
{
    cf_engine_t *e = op->e;
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
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, db), &cur)) != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the access log cannot be read");
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    uint32_t count = 0;
    bool more = false;
    unsigned char last[16];
    MDB_val k = {startlen, start}, v;
    rc = startlen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && after && k.mv_size == startlen && memcmp(k.mv_data, start, startlen) == 0)
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    while (rc == 0 && k.mv_size == plen + 16 && memcmp(k.mv_data, prefix, plen) == 0) {
        if (count == (uint32_t)limit) {
            more = true;
            break;
        }
        memcpy(last, (unsigned char *)k.mv_data + plen, 16);
        MDB_val rec;
        if (db == CF_DB_AUDIT)
            rec = v;
        else if (cf_engine_get(e, CF_DB_AUDIT, last, 16, &rec) != 0)
            break;
        s_pack_entry(&lp, rec.mv_data, rec.mv_size);
        count++;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
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
static int s_strip_event(cf_engine_t *e, const char *id, uint32_t seq)
{
    unsigned char k[CF_ID_LEN + 4];
    memcpy(k, id, CF_ID_LEN);
    cf_be32_put(k + CF_ID_LEN, seq);
    MDB_val v;
    int rc = cf_engine_get(e, CF_DB_HISTORY, k, sizeof k, &v);
    if (rc != 0)
        return rc == CF_ENOTFOUND ? 0 : rc;
    char *copy = malloc(v.mv_size);
    if (!copy)
        return CF_EINTERNAL;
    memcpy(copy, v.mv_data, v.mv_size);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    rc = 0;
    if (msgpack_unpack_next(&up, copy, v.mv_size, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 7 &&
        up.data.via.array.ptr[6].type != MSGPACK_OBJECT_NIL) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_array(&pk, 7);
        for (int i = 0; i < 6; i++)
            msgpack_pack_object(&pk, up.data.via.array.ptr[i]);
        msgpack_pack_nil(&pk);
        rc = sb.data ? cf_engine_put(e, CF_DB_HISTORY, k, sizeof k, sb.data, sb.size) : CF_EINTERNAL;
        msgpack_sbuffer_destroy(&sb);
    }
    msgpack_unpacked_destroy(&up);
    free(copy);
    return rc;
}

/* One document reference fewer; the bytes go with the last one. */
static int s_drop_doc(cf_engine_t *e, const unsigned char *sha)
{
    MDB_val v;
    uint32_t refs = 0;
    int rc = cf_engine_get(e, CF_DB_DOC_REFS, sha, 32, &v);
    if (rc == 0 && v.mv_size == 4)
        refs = cf_be32_get(v.mv_data);
    else if (rc != CF_ENOTFOUND)
        return rc;
    if (refs > 1) {
        unsigned char b[4];
        cf_be32_put(b, refs - 1);
        return cf_engine_put(e, CF_DB_DOC_REFS, sha, 32, b, 4);
    }
    if ((rc = cf_engine_del(e, CF_DB_DOC_REFS, sha, 32)) != 0)
        return rc;
    return cf_engine_del(e, CF_DB_DOCS, sha, 32);
}

/* Forget a member with no claims left: the consent record and its timer. */
static int s_drop_member_if_unused(cf_engine_t *e, const unsigned char *hash)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_IDX_MEMBER), &cur);
    if (rc != 0)
        return cf_store_err(rc);
    MDB_val k = {CF_MEMBER_HASH_LEN, (void *)hash}, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    bool used = rc == 0 && k.mv_size >= CF_MEMBER_HASH_LEN &&
                memcmp(k.mv_data, hash, CF_MEMBER_HASH_LEN) == 0;
    mdb_cursor_close(cur);
    if (used)
        return 0;
    cf_sm_ctx_t ctx;
    if ((rc = cf_engine_consent_ctx(e, hash, &ctx)) != 0)
        return rc;
    if (ctx.consent_given_at && !ctx.consent_withdrawn_at) {
        unsigned char tk[CF_TIMER_KEY_MAX];
        size_t tl = cf_timer_key(tk, ctx.consent_valid_until, CF_TIMER_MEMBER, hash,
                                 CF_MEMBER_HASH_LEN, CF_CONSENT_TIMER);
        if ((rc = cf_engine_del(e, CF_DB_TIMERS, tk, tl)) != 0)
            return rc;
    }
    return cf_engine_del(e, CF_DB_MEMBERS, hash, CF_MEMBER_HASH_LEN);
}

static int s_purge_claim(cf_engine_t *e, cf_claim_t *c, unsigned char (*members)[16],
                         size_t *nmembers)
{
    int rc;
    for (size_t i = 0; i < c->ndocs; i++)
        if ((rc = s_drop_doc(e, c->docs[i].sha)) != 0)
            return rc;
    c->ndocs = 0;
    for (uint32_t seq = 1; seq <= c->seq; seq++)
        if ((rc = s_strip_event(e, c->id, seq)) != 0)
            return rc;
    if (c->has_member) {
        unsigned char k[CF_MEMBER_HASH_LEN + CF_ID_LEN];
        memcpy(k, c->member, CF_MEMBER_HASH_LEN);
        memcpy(k + CF_MEMBER_HASH_LEN, c->id, CF_ID_LEN);
        if ((rc = cf_engine_del(e, CF_DB_IDX_MEMBER, k, sizeof k)) != 0)
            return rc;
        memcpy(members[(*nmembers)++], c->member, CF_MEMBER_HASH_LEN);
        c->has_member = false;
    }
    /* The data map becomes empty. */
    c->data.type = MSGPACK_OBJECT_MAP;
    c->data.via.map.size = 0;
    c->data.via.map.ptr = NULL;
    msgpack_sbuffer *sb = &e->scratch;
    if ((rc = cf_claim_encode(c, sb)) != 0)
        return rc;
    return cf_engine_put(e, CF_DB_CLAIMS, c->id, CF_ID_LEN, sb->data, sb->size);
}

int cf_op_purge(cf_op_t *op)
{
    cf_engine_t *e = op->e;
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
    } else if (e->purge_after > 0) {
        cutoff = e->now - e->purge_after;
    } else {
        return cf_op_fail(op, CF_EBADREQ, "field 'closed_before' is required (no retention "
                          "period is configured)");
    }
    if (cutoff > e->now)
        return cf_op_fail(op, CF_EBADREQ, "field 'closed_before' is in the future");

    /* Closed claims: those in a final state, found through the state index. */
    size_t cap = 64, nids = 0;
    char (*ids)[CF_ID_LEN] = malloc(cap * CF_ID_LEN);
    if (!ids)
        return cf_op_fail(op, CF_EINTERNAL, "out of memory");
    bool more = false;
    for (size_t w = 0; w < e->nwfs && !more; w++) {
        const cf_wf_t *wf = e->wfs[w].wf;
        for (size_t st = 0; st < wf->nstates && !more; st++) {
            if (!wf->states[st].final)
                continue;
            unsigned char prefix[2 * CF_NAME_MAX + 2];
            size_t a = strlen(wf->name), b = strlen(wf->states[st].name);
            memcpy(prefix, wf->name, a);
            prefix[a] = 0;
            memcpy(prefix + a + 1, wf->states[st].name, b);
            prefix[a + 1 + b] = 0;
            size_t plen = a + b + 2;
            MDB_cursor *cur;
            if ((rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_IDX_STATE), &cur)) != 0)
                break;
            MDB_val k = {plen, prefix}, v;
            rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
            while (rc == 0 && k.mv_size == plen + CF_ID_LEN && memcmp(k.mv_data, prefix, plen) == 0) {
                if (nids == CF_PURGE_MAX) {
                    more = true;
                    break;
                }
                if (nids == cap) {
                    void *nv = realloc(ids, (cap *= 2) * CF_ID_LEN);
                    if (!nv) {
                        rc = ENOMEM;
                        break;
                    }
                    ids = nv;
                }
                memcpy(ids[nids++], (char *)k.mv_data + plen, CF_ID_LEN);
                rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
            }
            mdb_cursor_close(cur);
            rc = 0;
        }
    }
    unsigned char (*members)[16] = malloc((nids ? nids : 1) * 16);
    const char **purged = malloc((nids ? nids : 1) * sizeof *purged);
    size_t nmembers = 0, npurged = 0;
    if (!members || !purged) {
        rc = CF_EINTERNAL;
        goto out;
    }
    for (size_t i = 0; i < nids && rc == 0; i++) {
        cf_claim_t c;
        if (cf_engine_load_claim(e, ids[i], CF_ID_LEN, &c) != 0)
            continue;
        bool personal = c.data.via.map.size || c.ndocs || c.has_member;
        if (c.updated < cutoff && personal) {
            rc = s_purge_claim(e, &c, members, &nmembers);
            purged[npurged++] = ids[i];
        }
        cf_claim_fini(&c);
    }
    for (size_t i = 0; i < nmembers && rc == 0; i++)
        rc = s_drop_member_if_unused(e, members[i]);
    /* Kept replies older than the cut-off may repeat the erased data. */
    if (rc == 0 && npurged) {
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_IDEM_AGE), &cur)) == 0) {
            MDB_val k, v;
            while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && k.mv_size > 8 &&
                   (cf_time_t)cf_be64_get(k.mv_data) < cutoff) {
                MDB_val ik = {k.mv_size - 8, (char *)k.mv_data + 8};
                mdb_del(e->txn, cf_store_dbi(e->store, CF_DB_IDEM), &ik, NULL);
                if ((rc = mdb_cursor_del(cur, 0)) != 0)
                    break;
            }
            mdb_cursor_close(cur);
            rc = rc == MDB_NOTFOUND || rc == 0 ? 0 : cf_store_err(rc);
            if (rc != 0)
                e->broken = true;
        }
    }
    if (rc == 0)
        rc = cf_engine_audit(e, op->actor, "purge", purged, npurged);
    if (rc == 0) {
        op->wrote = true;
        if (npurged)
            e->compact_pending = true;
        cf_op_key(op, "purged");
        msgpack_pack_uint64(&op->pk, npurged);
        cf_op_key(op, "more");
        if (more)
            msgpack_pack_true(&op->pk);
        else
            msgpack_pack_false(&op->pk);
    }
out:
    free(members);
    free(purged);
    free(ids);
    if (rc != 0 && !op->err.code)
        return cf_op_fail(op, rc < 0 ? rc : CF_EINTERNAL, "the purge could not be written");
    return rc;
}

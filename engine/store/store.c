/* store.c: the LMDB environment, and the only code that calls LMDB.
 *
 * Durability: the environment is opened without MDB_NOSYNC/MDB_NOMETASYNC,
 * so mdb_txn_commit returns only after the data and the meta page are
 * fsync'd; that is what makes `ok: true` mean durable.  MDB_WRITEMAP is not
 * used: with it a full disk shows up as SIGBUS on a page write instead of an
 * error from commit.
 *
 * Growth: the map starts small and doubles when a write meets MDB_MAP_FULL;
 * the engine then re-runs the batch (LMDB only resizes with no transaction
 * open).  A cap (map_max) or no_grow turns a full map into CF_EUNAVAIL, which
 * is also what a full disk gives at commit; nothing committed is touched.
 *
 * Write sets.  With a hook set, each put and delete of a write transaction
 * is appended, already encoded, to the transaction's buffer: the encoding is
 * msgpack, with fixed-width headers (db as a positive fixint, key and value
 * as bin32, nil for a delete) so the array count is the only thing not
 * known while appending, and the buffer handed to the hook IS the encoding
 * - a 15-byte array header is reserved in front and filled in at commit.  Recording per write
 * rather than diffing pages at commit was chosen because LMDB offers no page
 * diff, and the engine's writes are few per request.
 *
 * The batch sequence lives in meta "seq", written by the commit itself and
 * not part of any write set (the encoding carries it in its header).
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pthread.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cf_be.h"
#include "mpcheck.h"

#define S_WS_HEAD 15   /* array32 (5) + fixint version (1) + uint64 seq (9) */
#define S_WS_VERSION 1

struct cf_store {
    MDB_env *env;
    MDB_dbi dbi[CF_DB__COUNT];
    unsigned char hashkey[32];
    size_t map_size, map_max;
    bool no_grow;
    bool map_full;
    uint64_t seq;
    cf_commit_hook_fn hook;
    void *hook_ctx;
    cf_fault_t fault_kind;
    unsigned fault_n;          /* 0: disarmed */
    bool defer_meta_sync;      /* MDB_NOMETASYNC: cf_store_sync makes it durable */
    bool undo;                 /* keep undo records of recorded batches */
    uint64_t undo_acked;       /* undo records up to this are dropped */
    uint64_t commit_ns;        /* time spent in LMDB's commit (fsyncs), summed */
    uint64_t commit_hist[CF_STORE_HIST];   /* commits by duration (store.h) */
    /* cf_store_sync may run on another thread: it must not meet the
     * environment being closed and reopened by a compaction. */
    pthread_mutex_t env_lock;
};

struct cf_wset {
    msgpack_sbuffer buf;       /* S_WS_HEAD reserved bytes, then the entries */
    size_t n;                  /* entries */
};

struct cf_txn {
    cf_store_t *s;
    MDB_txn *txn;
    bool rdonly;
    bool failed;
    bool record;
    size_t nwrites;
    cf_wset_t ws;
    bool undo;                 /* recording the values writes replace */
    cf_wset_t ub;              /* ... as a write set of before-images */
};

static const char *const s_db_names[CF_DB__COUNT] = {
#define CF_XX(s, name) name,
    CF_DB_MAP(CF_XX)
#undef CF_XX
};

const char *cf_db_name(cf_db_t db)
{
    return (unsigned)db < CF_DB__COUNT ? s_db_names[db] : NULL;
}

/* LMDB's errors -> CF_E*, in one place. */
static int s_err(int rc)
{
    switch (rc) {
    case 0: return 0;
    case MDB_NOTFOUND: return CF_ENOTFOUND;
    case MDB_MAP_FULL:
    case ENOSPC:
    case EIO:
    case EDQUOT:
    case EROFS:
        return CF_EUNAVAIL;
    default: return CF_EINTERNAL;
    }
}

static int s_note(cf_store_t *s, int rc)
{
    if (rc == MDB_MAP_FULL)
        s->map_full = true;
    return s_err(rc);
}

/* An injected fault of this kind is due now. */
static bool s_fault(cf_store_t *s, cf_fault_t kind)
{
    if (!s->fault_n || s->fault_kind != kind)
        return false;
    return --s->fault_n == 0;
}

void cf_store_fault(cf_store_t *s, cf_fault_t kind, unsigned n)
{
    s->fault_kind = kind;
    s->fault_n = n;
}

bool cf_store_map_full(const cf_store_t *s) { return s->map_full; }
const unsigned char *cf_store_hashkey(const cf_store_t *s) { return s->hashkey; }
uint64_t cf_store_seq(const cf_store_t *s)
{
    return __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
}

static void s_seq_set(cf_store_t *s, uint64_t seq)
{
    __atomic_store_n(&s->seq, seq, __ATOMIC_RELEASE);
}

bool cf_store_defers_sync(const cf_store_t *s) { return s->defer_meta_sync; }
uint64_t cf_store_commit_ns(const cf_store_t *s) { return s->commit_ns; }
const uint64_t *cf_store_commit_hist(const cf_store_t *s) { return s->commit_hist; }

/* Quarter octaves: 0-3 µs one bucket each, then four buckets per power of
 * two (4, 5, 6, 7, 8-9, 10-11, ...): 19 % wide at most, 64 of them reach
 * 115 ms. */
static int s_hist_bucket(uint64_t us)
{
    if (us < 4)
        return (int)us;
    int msb = 63 - __builtin_clzll(us);
    int b = 4 * (msb - 1) + (int)((us >> (msb - 2)) & 3);
    return b < CF_STORE_HIST ? b : CF_STORE_HIST - 1;
}

uint64_t cf_store_hist_lower_us(int b)
{
    if (b < 4)
        return b < 0 ? 0 : (uint64_t)b;
    return (uint64_t)(4 + b % 4) << (b / 4 - 1);
}

int cf_store_sync(cf_store_t *s, uint64_t *ret_seq)
{
    /* Every batch committed before the fdatasync begins is covered by it:
     * read the sequence first. */
    uint64_t seq = cf_store_seq(s);
    pthread_mutex_lock(&s->env_lock);
    int rc = s->env ? mdb_env_sync(s->env, 1) : EIO;
    pthread_mutex_unlock(&s->env_lock);
    if (rc != 0)
        return s_err(rc);
    *ret_seq = seq;
    return 0;
}

void cf_store_set_hook(cf_store_t *s, cf_commit_hook_fn hook, void *ctx)
{
    s->hook = hook;
    s->hook_ctx = ctx;
}

/* ============================================================ write sets === */

cf_bytes_t cf_wset_encoded(const cf_wset_t *ws)
{
    return (cf_bytes_t){ws->buf.data, ws->buf.size};
}

static int s_ws_init(cf_wset_t *ws)
{
    msgpack_sbuffer_init(&ws->buf);
    static const char zero[S_WS_HEAD];
    return msgpack_sbuffer_write(&ws->buf, zero, sizeof zero) == 0 ? 0 : CF_EINTERNAL;
}

static void s_ws_fini(cf_wset_t *ws)
{
    msgpack_sbuffer_destroy(&ws->buf);
    ws->n = 0;
}

/* Append one entry; val NULL is a delete. */
static int s_ws_add(cf_wset_t *ws, cf_db_t db, const void *k, size_t kl, const void *v,
                    size_t vl, bool del)
{
    unsigned char h[6];
    h[0] = (unsigned char)db;
    h[1] = 0xc6;
    cf_be32_put(h + 2, (uint32_t)kl);
    int rc = msgpack_sbuffer_write(&ws->buf, (const char *)h, 6);
    if (rc == 0 && kl)
        rc = msgpack_sbuffer_write(&ws->buf, k, kl);
    if (rc == 0 && del) {
        rc = msgpack_sbuffer_write(&ws->buf, "\xc0", 1);
    } else if (rc == 0) {
        h[0] = 0xc6;
        cf_be32_put(h + 1, (uint32_t)vl);
        rc = msgpack_sbuffer_write(&ws->buf, (const char *)h, 5);
        if (rc == 0 && vl)
            rc = msgpack_sbuffer_write(&ws->buf, v, vl);
    }
    if (rc != 0)
        return CF_EINTERNAL;
    ws->n++;
    return 0;
}

static void s_ws_head(cf_wset_t *ws, uint64_t seq)
{
    unsigned char *p = (unsigned char *)ws->buf.data;
    p[0] = 0xdd;
    cf_be32_put(p + 1, (uint32_t)(2 + 3 * ws->n));
    p[5] = S_WS_VERSION;
    p[6] = 0xcf;
    cf_be64_put(p + 7, seq);
}

/* ====================================================== transactions === */

static int s_begin(cf_store_t *s, bool rdonly, bool record, cf_txn_t **ret)
{
    cf_txn_t *t = calloc(1, sizeof *t);
    if (!t)
        return CF_EINTERNAL;
    t->s = s;
    t->rdonly = rdonly;
    t->record = record && !rdonly;
    t->undo = t->record && s->undo;
    if (t->record && s_ws_init(&t->ws) != 0) {
        free(t);
        return CF_EINTERNAL;
    }
    if (t->undo && s_ws_init(&t->ub) != 0) {
        s_ws_fini(&t->ws);
        free(t);
        return CF_EINTERNAL;
    }
    unsigned flags = rdonly ? MDB_RDONLY : 0;
    int rc = mdb_txn_begin(s->env, NULL, flags, &t->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the map: adopt its size. */
        mdb_env_set_mapsize(s->env, 0);
        rc = mdb_txn_begin(s->env, NULL, flags, &t->txn);
    }
    if (rc != 0) {
        if (t->record)
            s_ws_fini(&t->ws);
        if (t->undo)
            s_ws_fini(&t->ub);
        free(t);
        return s_note(s, rc);
    }
    *ret = t;
    return 0;
}

int cf_store_begin(cf_store_t *s, bool rdonly, cf_txn_t **ret)
{
    return s_begin(s, rdonly, s->hook != NULL, ret);
}

static void s_txn_free(cf_txn_t *t)
{
    if (t->record)
        s_ws_fini(&t->ws);
    if (t->undo)
        s_ws_fini(&t->ub);
    free(t);
}

void cf_txn_abort(cf_txn_t **t_p)
{
    if (!t_p || !*t_p)
        return;
    mdb_txn_abort((*t_p)->txn);
    s_txn_free(*t_p);
    *t_p = NULL;
}

bool cf_txn_failed(const cf_txn_t *t) { return t->failed; }
size_t cf_txn_writes(const cf_txn_t *t) { return t->nwrites; }

/* A write's outcome: a failure fails the transaction. */
static int s_wrote(cf_txn_t *t, int mrc)
{
    if (mrc == 0)
        return 0;
    t->failed = true;
    return s_note(t->s, mrc);
}

int cf_txn_get(cf_txn_t *t, cf_db_t db, const void *key, size_t klen, cf_bytes_t *val)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t->txn, t->s->dbi[db], &k, &v);
    if (rc == 0) {
        val->data = v.mv_data;
        val->len = v.mv_size;
        return 0;
    }
    if (rc != MDB_NOTFOUND)
        t->failed = !t->rdonly;
    return s_note(t->s, rc);
}

/* Record what key holds before a write replaces it (nothing there: a
 * delete undoes the write). */
static int s_undo_note(cf_txn_t *t, cf_db_t db, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key}, old;
    int rc = mdb_get(t->txn, t->s->dbi[db], &k, &old);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return s_wrote(t, rc);
    if (s_ws_add(&t->ub, db, key, klen, rc == 0 ? old.mv_data : NULL, rc == 0 ? old.mv_size : 0,
                 rc != 0) != 0) {
        t->failed = true;
        return CF_EINTERNAL;
    }
    return 0;
}

int cf_txn_put(cf_txn_t *t, cf_db_t db, const void *key, size_t klen, const void *val,
               size_t vlen)
{
    if (s_fault(t->s, CF_FAULT_PUT))
        return s_wrote(t, EIO);
    if (t->undo) {
        int urc = s_undo_note(t, db, key, klen);
        if (urc != 0)
            return urc;
    }
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc = s_wrote(t, mdb_put(t->txn, t->s->dbi[db], &k, &v, 0));
    if (rc == 0) {
        t->nwrites++;
        if (t->record && s_ws_add(&t->ws, db, key, klen, val, vlen, false) != 0) {
            t->failed = true;
            return CF_EINTERNAL;
        }
    }
    return rc;
}

/* Record a delete of k (before it happens: k may point into the page). */
static int s_del_note(cf_txn_t *t, cf_db_t db, const void *key, size_t klen)
{
    t->nwrites++;
    if (t->record && s_ws_add(&t->ws, db, key, klen, NULL, 0, true) != 0) {
        t->failed = true;
        return CF_EINTERNAL;
    }
    return 0;
}

int cf_txn_del(cf_txn_t *t, cf_db_t db, const void *key, size_t klen)
{
    if (s_fault(t->s, CF_FAULT_DEL))
        return s_wrote(t, EIO);
    MDB_val k = {klen, (void *)key};
    if (t->undo) {
        MDB_val old;
        int grc = mdb_get(t->txn, t->s->dbi[db], &k, &old);
        if (grc == MDB_NOTFOUND)
            return 0;
        if (grc != 0)
            return s_wrote(t, grc);
        if (s_ws_add(&t->ub, db, key, klen, old.mv_data, old.mv_size, false) != 0) {
            t->failed = true;
            return CF_EINTERNAL;
        }
    }
    int rc = mdb_del(t->txn, t->s->dbi[db], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return 0;
    if ((rc = s_wrote(t, rc)) != 0)
        return rc;
    return s_del_note(t, db, key, klen);
}

int cf_txn_scan(cf_txn_t *t, cf_db_t db, const void *from, size_t fromlen, size_t prefixlen,
                cf_scan_fn fn, void *ctx)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &cur);
    if (rc != 0) {
        t->failed = !t->rdonly;
        return s_err(rc);
    }
    MDB_val k = {fromlen, (void *)from}, v;
    rc = mdb_cursor_get(cur, &k, &v, fromlen ? MDB_SET_RANGE : MDB_FIRST);
    int result = 0;
    while (rc == 0) {
        if (prefixlen && (k.mv_size < prefixlen || memcmp(k.mv_data, from, prefixlen) != 0))
            break;
        int verdict = fn(ctx, (cf_bytes_t){k.mv_data, k.mv_size},
                         (cf_bytes_t){v.mv_data, v.mv_size});
        if (verdict < 0) {
            result = verdict;
            break;
        }
        if (verdict == CF_SCAN_STOP)
            break;
        if (verdict == CF_SCAN_DEL) {
            if (s_fault(t->s, CF_FAULT_DEL)) {
                result = s_wrote(t, EIO);
                break;
            }
            /* Noted first: k points into the page the delete changes. */
            if ((result = s_del_note(t, db, k.mv_data, k.mv_size)) != 0)
                break;
            if (t->undo && s_ws_add(&t->ub, db, k.mv_data, k.mv_size, v.mv_data, v.mv_size,
                                    false) != 0) {
                t->failed = true;
                result = CF_EINTERNAL;
                break;
            }
            if ((result = s_wrote(t, mdb_cursor_del(cur, 0))) != 0)
                break;
            /* After a delete LMDB's MDB_NEXT returns the entry now under
             * the cursor (the old next), not the one after it. */
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (result == 0 && rc != 0 && rc != MDB_NOTFOUND) {
        t->failed = !t->rdonly;
        result = s_err(rc);
    }
    mdb_cursor_close(cur);
    return result;
}

static int s_edge(cf_txn_t *t, cf_db_t db, MDB_cursor_op op, cf_bytes_t *k, cf_bytes_t *v)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(t->txn, t->s->dbi[db], &cur);
    if (rc == 0) {
        MDB_val mk, mv;
        rc = mdb_cursor_get(cur, &mk, &mv, op);
        if (rc == 0) {
            k->data = mk.mv_data;
            k->len = mk.mv_size;
            v->data = mv.mv_data;
            v->len = mv.mv_size;
        }
        mdb_cursor_close(cur);
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        t->failed = !t->rdonly;
    return s_err(rc);
}

int cf_txn_first(cf_txn_t *t, cf_db_t db, cf_bytes_t *k, cf_bytes_t *v)
{
    return s_edge(t, db, MDB_FIRST, k, v);
}

int cf_txn_last(cf_txn_t *t, cf_db_t db, cf_bytes_t *k, cf_bytes_t *v)
{
    return s_edge(t, db, MDB_LAST, k, v);
}

int cf_txn_count(cf_txn_t *t, cf_db_t db, uint64_t *ret)
{
    MDB_stat st;
    int rc = mdb_stat(t->txn, t->s->dbi[db], &st);
    if (rc == 0)
        *ret = st.ms_entries;
    return s_err(rc);
}

/* The batch's undo record, in its own transaction: the SHA-256 of its write
 * set (which batch this is, to tell it from another leader's batch of the
 * same seq) and its before-images; the records of acknowledged batches go. */
static int s_undo_keep(cf_txn_t *t, uint64_t seq)
{
    cf_store_t *s = t->s;
    unsigned char key[8];
    cf_be64_put(key, seq);
    s_ws_head(&t->ub, seq);
    size_t len = 32 + t->ub.buf.size;
    MDB_val k = {8, key}, v = {len, NULL};
    int rc = mdb_put(t->txn, s->dbi[CF_DB_UNDO], &k, &v, MDB_RESERVE);
    if (rc != 0)
        return s_note(s, rc);
    crypto_hash_sha256(v.mv_data, (const unsigned char *)t->ws.buf.data, t->ws.buf.size);
    memcpy((unsigned char *)v.mv_data + 32, t->ub.buf.data, t->ub.buf.size);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(t->txn, s->dbi[CF_DB_UNDO], &cur)) != 0)
        return s_note(s, rc);
    MDB_val ck, cv;
    while ((rc = mdb_cursor_get(cur, &ck, &cv, MDB_FIRST)) == 0 && ck.mv_size == 8 &&
           cf_be64_get(ck.mv_data) <= s->undo_acked)
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : s_note(s, rc);
}

/* Commit t as batch seq: meta "seq", the hook (when call_hook), LMDB. */
static int s_commit(cf_txn_t *t, uint64_t seq, bool call_hook)
{
    cf_store_t *s = t->s;
    unsigned char sb[8];
    cf_be64_put(sb, seq);
    MDB_val k = {3, (void *)"seq"}, v = {8, sb};
    int rc = s_note(s, mdb_put(t->txn, s->dbi[CF_DB_META], &k, &v, 0));
    if (rc != 0)
        return rc;
    bool hooked = false;
    if (call_hook && s->hook && t->record) {
        s_ws_head(&t->ws, seq);
        if (t->undo && (rc = s_undo_keep(t, seq)) != 0)
            return rc;
        if (s->hook(s->hook_ctx, seq, &t->ws) != 0)
            return CF_EUNAVAIL;
        hooked = true;
    }
    int mrc;
    if (s_fault(s, CF_FAULT_COMMIT)) {
        mdb_txn_abort(t->txn);   /* the injected fault: LMDB never saw the commit */
        mrc = EIO;
    } else {
        struct timespec a, z;
        clock_gettime(CLOCK_MONOTONIC, &a);
        mrc = mdb_txn_commit(t->txn);   /* frees the transaction, also on failure */
        clock_gettime(CLOCK_MONOTONIC, &z);
        uint64_t ns = (uint64_t)((z.tv_sec - a.tv_sec) * 1000000000LL + (z.tv_nsec - a.tv_nsec));
        s->commit_ns += ns;
        s->commit_hist[s_hist_bucket(ns / 1000)]++;
    }
    t->txn = NULL;
    if (mrc != 0) {
        if (hooked)
            s->hook(s->hook_ctx, seq, NULL);
        return s_note(s, mrc);
    }
    s_seq_set(s, seq);
    return 0;
}

int cf_txn_commit(cf_txn_t **t_p, uint64_t *ret_seq)
{
    cf_txn_t *t = *t_p;
    *t_p = NULL;
    int rc = 0;
    if (t->rdonly || (!t->failed && t->nwrites == 0)) {
        mdb_txn_abort(t->txn);
    } else if (t->failed) {
        mdb_txn_abort(t->txn);
        rc = CF_EUNAVAIL;
    } else {
        rc = s_commit(t, t->s->seq + 1, true);
        if (rc != 0 && t->txn)
            mdb_txn_abort(t->txn);
    }
    if (ret_seq)
        *ret_seq = t->s->seq;
    s_txn_free(t);
    return rc;
}

/* ============================================================== apply === */

static uint64_t s_mp_uint(const msgpack_object *o, bool *ok)
{
    *ok = o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
    return *ok ? o->via.u64 : 0;
}

/* Read the meta records a write set may have brought (a replica's first). */
static void s_meta_reload(cf_store_t *s, MDB_txn *txn)
{
    MDB_val k = {7, (void *)"hashkey"}, v;
    if (mdb_get(txn, s->dbi[CF_DB_META], &k, &v) == 0 && v.mv_size == sizeof s->hashkey)
        memcpy(s->hashkey, v.mv_data, sizeof s->hashkey);
}

int cf_store_apply(cf_store_t *s, const void *enc, size_t len, cf_error_t *reterr)
{
    if (cf_mpcheck(enc, len, NULL) != 0)
        return cf_error_set(reterr, CF_EBADREQ, "a write set must be one msgpack array");
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int rc = CF_EBADREQ;
    const char *why = "a write set must be one msgpack array [1, seq, (db, key, value|nil)...]";
    if (msgpack_unpack_next(&up, enc, len, &off) != MSGPACK_UNPACK_SUCCESS || off != len ||
        up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size < 2 ||
        (up.data.via.array.size - 2) % 3 != 0)
        goto out;
    const msgpack_object *a = up.data.via.array.ptr;
    bool ok1, ok2;
    uint64_t version = s_mp_uint(&a[0], &ok1), seq = s_mp_uint(&a[1], &ok2);
    if (!ok1 || !ok2 || version != S_WS_VERSION) {
        why = "a write set's header must be [1, seq]";
        goto out;
    }
    if (seq != s->seq + 1) {
        rc = CF_ECONFLICT;
        why = "the write set is not the store's next batch";
        goto out;
    }
    size_t n = (up.data.via.array.size - 2) / 3;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *e = &a[2 + 3 * i];
        bool okd;
        uint64_t db = s_mp_uint(&e[0], &okd);
        if (!okd || db >= CF_DB__COUNT || e[1].type != MSGPACK_OBJECT_BIN ||
            e[1].via.bin.size == 0 || e[1].via.bin.size > 511 ||
            (e[2].type != MSGPACK_OBJECT_BIN && e[2].type != MSGPACK_OBJECT_NIL)) {
            why = "a write set entry must be (database index, key bin of 1..511 bytes, value "
                  "bin or nil)";
            goto out;
        }
    }
    cf_txn_t *t;
    if ((rc = s_begin(s, false, false, &t)) != 0) {
        why = "the store cannot begin a transaction";
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const msgpack_object *e = &a[2 + 3 * i];
        cf_db_t db = (cf_db_t)e[0].via.u64;
        if (e[2].type == MSGPACK_OBJECT_NIL)
            rc = cf_txn_del(t, db, e[1].via.bin.ptr, e[1].via.bin.size);
        else
            rc = cf_txn_put(t, db, e[1].via.bin.ptr, e[1].via.bin.size, e[2].via.bin.ptr,
                            e[2].via.bin.size);
    }
    if (rc == 0) {
        s_meta_reload(s, t->txn);
        rc = s_commit(t, seq, false);
    }
    if (rc != 0 && t->txn)
        mdb_txn_abort(t->txn);
    s_txn_free(t);
    why = "the write set cannot be stored";
out:
    msgpack_unpacked_destroy(&up);
    return rc ? cf_error_set(reterr, rc, "%s", why) : 0;
}

/* ============================================================== undo === */

void cf_store_undo_acked(cf_store_t *s, uint64_t seq)
{
    if (seq > s->undo_acked)
        s->undo_acked = seq;
}

int cf_store_undo_sha(cf_store_t *s, uint64_t seq, unsigned char sha[32])
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return s_note(s, rc);
    unsigned char key[8];
    cf_be64_put(key, seq);
    MDB_val k = {8, key}, v;
    rc = mdb_get(txn, s->dbi[CF_DB_UNDO], &k, &v);
    if (rc == 0 && v.mv_size >= 32)
        memcpy(sha, v.mv_data, 32);
    else if (rc == 0)
        rc = MDB_NOTFOUND;
    mdb_txn_abort(txn);
    return s_err(rc);
}

int cf_store_undo_forget(cf_store_t *s, uint64_t seq)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return s_note(s, rc);
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, s->dbi[CF_DB_UNDO], &cur)) == 0) {
        MDB_val k, v;
        while ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0 && k.mv_size == 8 &&
               cf_be64_get(k.mv_data) <= seq)
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
        mdb_cursor_close(cur);
    }
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        return s_note(s, rc);
    }
    return s_note(s, mdb_txn_commit(txn));
}

/* Undo one batch's writes in txn: its before-images, newest first. */
static int s_undo_one(cf_store_t *s, MDB_txn *txn, uint64_t seq, const char **why)
{
    unsigned char key[8];
    cf_be64_put(key, seq);
    MDB_val k = {8, key}, v;
    int rc = mdb_get(txn, s->dbi[CF_DB_UNDO], &k, &v);
    if (rc == MDB_NOTFOUND) {
        *why = "a batch to take back has no undo record";
        return CF_ENOTFOUND;
    }
    if (rc != 0)
        return s_note(s, rc);
    /* Copied: the writes below move the page it is on. */
    size_t len = v.mv_size - 32;
    char *buf = malloc(len ? len : 1);
    if (!buf)
        return CF_EINTERNAL;
    memcpy(buf, (const char *)v.mv_data + 32, len);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    rc = CF_EINTERNAL;
    *why = "an undo record is damaged";
    if (msgpack_unpack_next(&up, buf, len, &off) == MSGPACK_UNPACK_SUCCESS &&
        up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size >= 2 &&
        (up.data.via.array.size - 2) % 3 == 0) {
        const msgpack_object *a = up.data.via.array.ptr;
        size_t n = (up.data.via.array.size - 2) / 3;
        rc = 0;
        for (size_t i = n; i-- > 0 && rc == 0;) {
            const msgpack_object *e = &a[2 + 3 * i];
            if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[0].via.u64 >= CF_DB__COUNT ||
                e[1].type != MSGPACK_OBJECT_BIN) {
                rc = CF_EINTERNAL;
                break;
            }
            MDB_dbi dbi = s->dbi[e[0].via.u64];
            MDB_val uk = {e[1].via.bin.size, (void *)e[1].via.bin.ptr};
            if (e[2].type == MSGPACK_OBJECT_NIL) {
                int mrc = mdb_del(txn, dbi, &uk, NULL);
                rc = mrc == MDB_NOTFOUND ? 0 : s_note(s, mrc);
            } else if (e[2].type == MSGPACK_OBJECT_BIN) {
                MDB_val uv = {e[2].via.bin.size, (void *)e[2].via.bin.ptr};
                rc = s_note(s, mdb_put(txn, dbi, &uk, &uv, 0));
            } else {
                rc = CF_EINTERNAL;
            }
        }
        if (rc == 0)
            rc = s_note(s, mdb_del(txn, s->dbi[CF_DB_UNDO], &k, NULL));
    }
    msgpack_unpacked_destroy(&up);
    free(buf);
    if (rc != 0 && rc != CF_EINTERNAL)
        *why = "the store cannot take the batch back";
    return rc;
}

int cf_store_rollback(cf_store_t *s, uint64_t to_seq, cf_error_t *reterr)
{
    if (to_seq >= s->seq)
        return 0;
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    if (rc != 0)
        return cf_error_set(reterr, s_note(s, rc), "the store cannot begin a transaction");
    const char *why = "";
    for (uint64_t seq = s->seq; seq > to_seq && rc == 0; seq--)
        rc = s_undo_one(s, txn, seq, &why);
    if (rc == 0) {
        unsigned char sb[8];
        cf_be64_put(sb, to_seq);
        MDB_val k = {3, (void *)"seq"}, v = {8, sb};
        rc = s_note(s, mdb_put(txn, s->dbi[CF_DB_META], &k, &v, 0));
        why = "the store cannot take the batches back";
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return cf_error_set(reterr, rc, "%s", why);
    }
    s_meta_reload(s, txn);
    if ((rc = mdb_txn_commit(txn)) != 0)
        return cf_error_set(reterr, s_note(s, rc), "the store cannot take the batches back");
    s_seq_set(s, to_seq);
    return 0;
}

/* ============================================================== open === */

/* Read (or, for a new store, write through the commit path) the meta
 * records: format (refusing a newer one), member-hash key, sequence. */
static int s_meta_init(cf_store_t *s, bool bare, cf_error_t *reterr)
{
    cf_txn_t *t;
    int rc = cf_store_begin(s, false, &t);
    if (rc != 0)
        return cf_error_set(reterr, rc, "cannot begin a transaction");
    cf_bytes_t v;
    rc = cf_txn_get(t, CF_DB_META, "seq", 3, &v);
    if (rc == 0 && v.len == 8)
        s_seq_set(s, cf_be64_get(v.data));
    rc = cf_txn_get(t, CF_DB_META, "format", 6, &v);
    if (rc == CF_ENOTFOUND) {
        if (bare) {
            cf_txn_abort(&t);
            return 0;
        }
        unsigned char f[4];
        cf_be32_put(f, CF_STORE_FORMAT);
        randombytes_buf(s->hashkey, sizeof s->hashkey);
        if ((rc = cf_txn_put(t, CF_DB_META, "format", 6, f, 4)) != 0 ||
            (rc = cf_txn_put(t, CF_DB_META, "hashkey", 7, s->hashkey, sizeof s->hashkey)) != 0 ||
            (rc = cf_txn_commit(&t, NULL)) != 0) {
            cf_txn_abort(&t);
            return cf_error_set(reterr, rc, "cannot initialise the store");
        }
        return 0;
    }
    uint32_t format = rc == 0 && v.len == 4 ? cf_be32_get(v.data) : 0;
    if (format == 0 || format > CF_STORE_FORMAT) {
        cf_txn_abort(&t);
        return cf_error_set(reterr, CF_EUNAVAIL,
                            "the store was written by a newer claimflow (format %u; this "
                            "version reads format %d): upgrade claimflowd",
                            format, CF_STORE_FORMAT);
    }
    rc = cf_txn_get(t, CF_DB_META, "hashkey", 7, &v);
    if (rc != 0 || v.len != sizeof s->hashkey) {
        cf_txn_abort(&t);
        return cf_error_set(reterr, CF_EUNAVAIL, "the store's meta records are damaged");
    }
    memcpy(s->hashkey, v.data, sizeof s->hashkey);
    cf_txn_abort(&t);
    return 0;
}

/* Create and open the environment handle (no transaction). */
static int s_env_open(cf_store_t *s, const char *dir)
{
    int rc = mdb_env_create(&s->env);
    if (rc != 0)
        return rc;
    if ((rc = mdb_env_set_maxdbs(s->env, CF_DB__COUNT + 2)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 126)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, s->map_size)) != 0 ||
        (rc = mdb_env_open(s->env, dir,
                           MDB_NOTLS | (s->defer_meta_sync ? MDB_NOMETASYNC : 0), 0600)) != 0) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
    return rc;
}

/* Open every named database, creating the missing ones: the store's shape,
 * not data, so not a batch (a replay target creates the same ones). */
static int s_dbis_open(cf_store_t *s)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(s->env, NULL, 0, &txn);
    for (int i = 0; i < CF_DB__COUNT && rc == 0; i++)
        rc = mdb_dbi_open(txn, s_db_names[i], MDB_CREATE, &s->dbi[i]);
    if (rc == 0)
        return mdb_txn_commit(txn);
    mdb_txn_abort(txn);
    return rc;
}

/* A data.mdb shorter than its meta pages say is a truncated copy: LMDB
 * would map it and die of SIGBUS at the first page past the end. */
static int s_check_size(cf_store_t *s, const char *dir, cf_error_t *reterr)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    char path[4096];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    if (mdb_env_info(s->env, &info) != 0 || mdb_env_stat(s->env, &st) != 0 ||
        stat(path, &fst) != 0)
        return 0;
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if ((uint64_t)fst.st_size < need)
        return cf_error_set(reterr, CF_EUNAVAIL,
                            "data.mdb is %lld bytes but its meta pages say %llu: a truncated "
                            "or partial copy; restore a complete backup",
                            (long long)fst.st_size, (unsigned long long)need);
    return 0;
}

/* A compaction killed midway leaves a partial copy: remove it (and
 * anything else squatting on the name: it is the store's). */
static void s_compact_leftovers(const char *dir)
{
    char tmp[4096], file[4200];
    snprintf(tmp, sizeof tmp, "%s/.compact", dir);
    snprintf(file, sizeof file, "%s/data.mdb", tmp);
    struct stat st;
    if (lstat(tmp, &st) == 0 && !S_ISDIR(st.st_mode)) {
        unlink(tmp);
        return;
    }
    unlink(file);
    rmdir(tmp);
}

int cf_store_open(const char *dir, const cf_store_opts_t *opts, cf_store_t **ret,
                  cf_error_t *reterr)
{
    if (sodium_init() < 0)
        return cf_error_set(reterr, CF_EINTERNAL, "libsodium cannot initialise");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot create data directory: %s",
                            strerror(errno));
    cf_store_t *s = calloc(1, sizeof *s);
    if (!s)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    s->map_size = opts && opts->map_size ? opts->map_size : (size_t)64 << 20;
    s->map_max = opts ? opts->map_max : 0;
    s->no_grow = opts && opts->no_grow;
    s->defer_meta_sync = opts && opts->defer_meta_sync;
    s->undo = opts && opts->undo;
    pthread_mutex_init(&s->env_lock, NULL);
    if (opts)
        cf_store_set_hook(s, opts->hook, opts->hook_ctx);
    s_compact_leftovers(dir);

    int rc = s_env_open(s, dir);
    if (rc != 0) {
        free(s);
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot open the store: %s", mdb_strerror(rc));
    }
    int err = s_check_size(s, dir, reterr);
    if (err != 0)
        goto fail;
    /* A store that grew earlier keeps its size. */
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
        s->map_size = info.me_mapsize;
    if ((rc = s_dbis_open(s)) != 0) {
        err = cf_error_set(reterr, CF_EUNAVAIL, "cannot open the store: %s", mdb_strerror(rc));
        goto fail;
    }
    if ((err = s_meta_init(s, opts && opts->bare, reterr)) != 0)
        goto fail;
    *ret = s;
    return 0;
fail:
    mdb_env_close(s->env);
    free(s);
    return err;
}

void cf_store_destroy(cf_store_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    cf_store_t *s = *s_p;
    mdb_env_close(s->env);
    pthread_mutex_destroy(&s->env_lock);
    sodium_memzero(s->hashkey, sizeof s->hashkey);
    free(s);
    *s_p = NULL;
}

int cf_store_grow(cf_store_t *s)
{
    if (s->no_grow)
        return CF_EUNAVAIL;
    size_t next = s->map_size * 2;
    if (s->map_max && next > s->map_max)
        next = s->map_max;
    if (next <= s->map_size)
        return CF_EUNAVAIL;
    int rc = mdb_env_set_mapsize(s->env, next);
    if (rc != 0)
        return s_err(rc);
    s->map_size = next;
    s->map_full = false;
    return 0;
}

/* ============================================================ copies === */

int cf_store_compact(cf_store_t *s, const char *dir, cf_error_t *reterr)
{
    char tmp[2048], from[2100], to[2100];
    snprintf(tmp, sizeof tmp, "%s/.compact", dir);
    snprintf(from, sizeof from, "%s/data.mdb", tmp);
    snprintf(to, sizeof to, "%s/data.mdb", dir);
    unlink(from);
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot create %s: %s", tmp, strerror(errno));
    int rc = mdb_env_copy2(s->env, tmp, MDB_CP_COMPACT);
    if (rc != 0) {
        unlink(from);
        rmdir(tmp);
        return cf_error_set(reterr, CF_EUNAVAIL, "compaction failed: %s", mdb_strerror(rc));
    }
    /* The copy is complete and synced; swap it in with no handle open. */
    pthread_mutex_lock(&s->env_lock);
    mdb_env_close(s->env);
    s->env = NULL;
    int moved = rename(from, to);
    int moved_errno = errno;
    rmdir(tmp);
    rc = s_env_open(s, dir);
    pthread_mutex_unlock(&s->env_lock);
    if (rc != 0 || (rc = s_dbis_open(s)) != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot reopen the store after compaction: %s",
                            mdb_strerror(rc));
    if (moved != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot swap in the compacted store: %s",
                            strerror(moved_errno));
    return 0;
}

/* Open dir's environment read-only (another process may write it). */
static int s_env_open_ro(const char *dir, unsigned extra, MDB_env **ret)
{
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc != 0)
        return rc;
    if ((rc = mdb_env_set_maxdbs(env, CF_DB__COUNT + 2)) != 0 ||
        (rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS | extra, 0600)) != 0) {
        mdb_env_close(env);
        return rc;
    }
    *ret = env;
    return 0;
}

int cf_store_copy(const char *src_dir, const char *dst_dir, cf_error_t *reterr)
{
    char part[4200], final[4200];
    snprintf(part, sizeof part, "%s/data.mdb.partial", dst_dir);
    snprintf(final, sizeof final, "%s/data.mdb", dst_dir);
    if (mkdir(dst_dir, 0700) != 0 && errno != EEXIST)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot create %s: %s", dst_dir,
                            strerror(errno));
    if (access(final, F_OK) == 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "%s already holds a data.mdb", dst_dir);
    MDB_env *env;
    int rc = s_env_open_ro(src_dir, 0, &env);
    if (rc != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot open the store in %s: %s", src_dir,
                            mdb_strerror(rc));
    int fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        int e = errno;
        mdb_env_close(env);
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot create %s: %s", part, strerror(e));
    }
    for (int attempt = 0;; attempt++) {
        rc = mdb_env_copyfd2(env, fd, MDB_CP_COMPACT);
        if (rc != MDB_MAP_RESIZED || attempt == 5)
            break;
        /* The writer grew its map under us: adopt the size, start over. */
        if (ftruncate(fd, 0) != 0 || lseek(fd, 0, SEEK_SET) != 0 ||
            (rc = mdb_env_set_mapsize(env, 0)) != 0) {
            rc = rc ? rc : errno;
            break;
        }
    }
    mdb_env_close(env);
    if (rc == 0 && fsync(fd) != 0)
        rc = errno;
    if (close(fd) != 0 && rc == 0)
        rc = errno;
    /* Only a complete, synced copy gets the name data.mdb. */
    if (rc == 0 && rename(part, final) != 0)
        rc = errno;
    if (rc != 0) {
        unlink(part);
        return cf_error_set(reterr, CF_EUNAVAIL, "copy failed: %s", mdb_strerror(rc));
    }
    int dfd = open(dst_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);   /* the rename's durability; a failure leaves the copy as is */
        close(dfd);
    }
    return 0;
}

int cf_store_inspect(const char *dir, cf_store_facts_t *ret, cf_error_t *reterr)
{
    MDB_env *env;
    int rc = s_env_open_ro(dir, MDB_NOLOCK, &env);
    if (rc != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot open the store in %s: %s", dir,
                            mdb_strerror(rc));
    MDB_envinfo info;
    MDB_stat st;
    MDB_txn *txn;
    MDB_dbi dbi;
    memset(ret, 0, sizeof *ret);
    if ((rc = mdb_env_info(env, &info)) == 0 && (rc = mdb_env_stat(env, &st)) == 0)
        ret->used_bytes = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    if (rc == 0 && (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) == 0) {
        rc = mdb_dbi_open(txn, "claims", 0, &dbi);
        if (rc == 0 && (rc = mdb_stat(txn, dbi, &st)) == 0)
            ret->claims = st.ms_entries;
        else if (rc == MDB_NOTFOUND)
            rc = 0;
        MDB_val k = {3, (void *)"seq"}, v;
        if (rc == 0 && mdb_dbi_open(txn, "meta", 0, &dbi) == 0 &&
            mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == 8)
            ret->seq = cf_be64_get(v.mv_data);
        mdb_txn_abort(txn);
    }
    mdb_env_close(env);
    return rc ? cf_error_set(reterr, CF_EUNAVAIL, "the store in %s cannot be read: %s", dir,
                             mdb_strerror(rc))
              : 0;
}

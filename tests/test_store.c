/* test_store.c: the store (the only door to LMDB) and the schema's codecs,
 * on real LMDB files in temp dirs - transactions, scans, the one commit
 * with its batch sequence and write sets, replay into a bare store, fault
 * injection, the size check at open, copies; record codecs round trip and
 * hostile bytes. */
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cf_be.h"
#include "cf_fixture.h"
#include "schema.h"
#include "store.h"

static char s_dir[300];

static cf_store_t *s_store(const char *name, const cf_store_opts_t *o)
{
    snprintf(s_dir, sizeof s_dir, "%s/%s", s_tmp, name);
    cf_store_t *s = NULL;
    cf_error_t err = {0};
    int rc = cf_store_open(s_dir, o, &s, &err);
    if (rc != 0)
        CF_FAILF_("cf_store_open: %s", err.message);
    return s;
}

/* Every entry of every database, as one string "db key=value;..." (hex),
 * the logical content mdb_dump shows. */
typedef struct {
    char *buf;
    size_t len, cap;
} s_dump_t;

static void s_dump_add(s_dump_t *d, const char *s, size_t n)
{
    if (d->len + n + 1 > d->cap) {
        d->cap = (d->len + n + 1) * 2;
        d->buf = realloc(d->buf, d->cap);
        CF_ASSERT(d->buf != NULL);
    }
    memcpy(d->buf + d->len, s, n);
    d->len += n;
    d->buf[d->len] = 0;
}

static int s_dump_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    s_dump_t *d = ctx;
    char hex[2 * 4096 + 1];
    cf_hex(k.data, k.len < 4096 ? k.len : 4096, hex);
    s_dump_add(d, hex, strlen(hex));
    s_dump_add(d, "=", 1);
    cf_hex(v.data, v.len < 4096 ? v.len : 4096, hex);
    s_dump_add(d, hex, strlen(hex));
    s_dump_add(d, ";", 1);
    return CF_SCAN_NEXT;
}

static char *s_dump(cf_store_t *s)
{
    s_dump_t d = {0};
    s_dump_add(&d, "", 0);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, true, &t), 0);
    for (int db = 0; db < CF_DB__COUNT; db++) {
        s_dump_add(&d, cf_db_name((cf_db_t)db), strlen(cf_db_name((cf_db_t)db)));
        s_dump_add(&d, ":", 1);
        CF_ASSERT_INT_EQ(cf_txn_scan(t, (cf_db_t)db, NULL, 0, 0, s_dump_one, &d), 0);
        s_dump_add(&d, "\n", 1);
    }
    cf_txn_abort(&t);
    return d.buf;
}

/* ------------------------------------------------------------ recorder --- */
typedef struct {
    unsigned char *v[64];
    size_t len[64];
    uint64_t seq[64];
    size_t n;
    uint64_t aborted;
    int refuse;        /* the hook's answer */
} s_rec_t;

static int s_hook(void *ctx, uint64_t seq, const cf_wset_t *ws)
{
    s_rec_t *r = ctx;
    if (!ws) {
        r->aborted = seq;
        return 0;
    }
    if (r->refuse)
        return r->refuse;
    cf_bytes_t b = cf_wset_encoded(ws);
    CF_ASSERT(r->n < 64);
    r->v[r->n] = malloc(b.len);
    memcpy(r->v[r->n], b.data, b.len);
    r->len[r->n] = b.len;
    r->seq[r->n++] = seq;
    return 0;
}

static void s_rec_free(s_rec_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->v[i]);
    r->n = 0;
}

/* ---------------------------------------------------------------- tests --- */

static void test_open_commit_seq(void)
{
    s_mktemp();
    cf_store_t *s = s_store("a", NULL);
    /* The store's creation is batch 1 (format, hash key). */
    CF_ASSERT_INT_EQ(cf_store_seq(s), 1);
    unsigned char key[32];
    memcpy(key, cf_store_hashkey(s), 32);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "k1", 2, "v1", 2), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "k2", 2, "v2", 2), 0);
    CF_ASSERT_INT_EQ(cf_txn_del(t, CF_DB_CLAIMS, "nope", 4), 0);   /* absent: fine */
    CF_ASSERT_INT_EQ(cf_txn_writes(t), 2);
    uint64_t seq = 0;
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, &seq), 0);
    CF_ASSERT(t == NULL);
    CF_ASSERT_INT_EQ(seq, 2);
    /* A transaction that writes nothing does not take a sequence number. */
    CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
    cf_bytes_t v;
    CF_ASSERT_INT_EQ(cf_txn_get(t, CF_DB_CLAIMS, "k1", 2, &v), 0);
    CF_ASSERT_INT_EQ(v.len, 2);
    CF_ASSERT(memcmp(v.data, "v1", 2) == 0);
    CF_ASSERT_INT_EQ(cf_txn_get(t, CF_DB_CLAIMS, "k3", 2, &v), CF_ENOTFOUND);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, &seq), 0);
    CF_ASSERT_INT_EQ(seq, 2);
    cf_store_destroy(&s);
    CF_ASSERT(s == NULL);
    /* Reopened: the same sequence and hash key. */
    s = s_store("a", NULL);
    CF_ASSERT_INT_EQ(cf_store_seq(s), 2);
    CF_ASSERT(memcmp(cf_store_hashkey(s), key, 32) == 0);
    cf_store_destroy(&s);
    s_rmrf(s_tmp);
}

static uint64_t s_hist_sum(const cf_store_t *s)
{
    const uint64_t *h = cf_store_commit_hist(s);
    uint64_t n = 0;
    for (int b = 0; b < CF_STORE_HIST; b++)
        n += h[b];
    return n;
}

/* The commit histogram the daemon's profile logs: quarter-octave buckets
 * with the bounds store.h gives, one count per commit that wrote. */
static void test_commit_histogram(void)
{
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(0), 0);
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(3), 3);
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(4), 4);
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(7), 7);
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(8), 8);
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(11), 14);
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(12), 16);
    CF_ASSERT_INT_EQ(cf_store_hist_lower_us(CF_STORE_HIST - 1), 114688);
    for (int b = 4; b < CF_STORE_HIST; b++) {
        uint64_t lo = cf_store_hist_lower_us(b), hi = cf_store_hist_lower_us(b + 1);
        CF_ASSERT(lo < hi);
        CF_ASSERT(hi * 4 <= lo * 5);   /* at most 25 % wide */
    }
    s_mktemp();
    cf_store_t *s = s_store("h", NULL);
    uint64_t n0 = s_hist_sum(s);
    cf_txn_t *t;
    for (int i = 0; i < 3; i++) {
        CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
        CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "k", 1, "v", 1), 0);
        CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);
        CF_ASSERT_INT_EQ(s_hist_sum(s), n0 + (uint64_t)i + 1);
    }
    cf_store_destroy(&s);
    s_rmrf(s_tmp);
}

typedef struct {
    char seen[16][8];
    int n, stop_at, del_odd;
} s_scan_t;

static int s_scan_cb(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_scan_t *x = ctx;
    if (x->n == x->stop_at)
        return CF_SCAN_STOP;
    snprintf(x->seen[x->n], 8, "%.*s", (int)k.len, (const char *)k.data);
    x->n++;
    if (x->del_odd && ((const char *)k.data)[k.len - 1] % 2)
        return CF_SCAN_DEL;
    return CF_SCAN_NEXT;
}

static int s_scan_err(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)ctx;
    (void)k;
    (void)v;
    return CF_EINTERNAL;
}

static void test_scan_prefix_stop_delete(void)
{
    s_mktemp();
    cf_store_t *s = s_store("a", NULL);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
    const char *keys[] = {"a1", "a2", "a3", "a4", "b1", "b2"};
    for (int i = 0; i < 6; i++)
        CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_IDX_FLAG, keys[i], 2, "", 0), 0);
    /* Prefix "a", from "a2". */
    s_scan_t x = {.stop_at = -1};
    CF_ASSERT_INT_EQ(cf_txn_scan(t, CF_DB_IDX_FLAG, "a2", 2, 1, s_scan_cb, &x), 0);
    CF_ASSERT_INT_EQ(x.n, 3);
    CF_ASSERT_STR_EQ(x.seen[0], "a2");
    CF_ASSERT_STR_EQ(x.seen[2], "a4");
    /* Stop after two. */
    memset(&x, 0, sizeof x);
    x.stop_at = 2;
    CF_ASSERT_INT_EQ(cf_txn_scan(t, CF_DB_IDX_FLAG, NULL, 0, 0, s_scan_cb, &x), 0);
    CF_ASSERT_INT_EQ(x.n, 2);
    /* Delete the odd ones while walking: every entry is still seen once. */
    memset(&x, 0, sizeof x);
    x.stop_at = -1;
    x.del_odd = 1;
    CF_ASSERT_INT_EQ(cf_txn_scan(t, CF_DB_IDX_FLAG, NULL, 0, 0, s_scan_cb, &x), 0);
    CF_ASSERT_INT_EQ(x.n, 6);
    CF_ASSERT_STR_EQ(x.seen[5], "b2");
    uint64_t n;
    CF_ASSERT_INT_EQ(cf_txn_count(t, CF_DB_IDX_FLAG, &n), 0);
    CF_ASSERT_INT_EQ(n, 3);
    cf_bytes_t k, v;
    CF_ASSERT_INT_EQ(cf_txn_first(t, CF_DB_IDX_FLAG, &k, &v), 0);
    CF_ASSERT(k.len == 2 && memcmp(k.data, "a2", 2) == 0);
    CF_ASSERT_INT_EQ(cf_txn_last(t, CF_DB_IDX_FLAG, &k, &v), 0);
    CF_ASSERT(k.len == 2 && memcmp(k.data, "b2", 2) == 0);
    CF_ASSERT_INT_EQ(cf_txn_first(t, CF_DB_DOCS, &k, &v), CF_ENOTFOUND);
    /* A callback's error ends the scan and is returned. */
    CF_ASSERT_INT_EQ(cf_txn_scan(t, CF_DB_IDX_FLAG, NULL, 0, 0, s_scan_err, NULL), CF_EINTERNAL);
    cf_txn_abort(&t);
    CF_ASSERT(t == NULL);
    cf_txn_abort(&t);   /* NULL: accepted */
    cf_store_destroy(&s);
    s_rmrf(s_tmp);
}

static void test_write_sets_replay_exactly(void)
{
    s_mktemp();
    s_rec_t rec = {0};
    cf_store_opts_t o = {.hook = s_hook, .hook_ctx = &rec};
    cf_store_t *a = s_store("a", &o);
    CF_ASSERT_INT_EQ(rec.n, 1);                 /* the store's creation */
    CF_ASSERT_INT_EQ(rec.seq[0], 1);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(a, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c1", 2, "one", 3), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_TIMERS, "t1", 2, "ev", 2), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c1", 2, "uno", 3), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);
    CF_ASSERT_INT_EQ(cf_store_begin(a, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_del(t, CF_DB_TIMERS, "t1", 2), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_DOCS, "d", 1, "", 0), 0);   /* empty value */
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);
    CF_ASSERT_INT_EQ(rec.n, 3);
    CF_ASSERT_INT_EQ(rec.seq[2], 3);

    /* Replay into a bare store: the same content and sequence. */
    cf_store_opts_t bare = {.bare = true};
    cf_store_t *b = s_store("b", &bare);
    CF_ASSERT_INT_EQ(cf_store_seq(b), 0);
    cf_error_t err;
    /* Out of order: refused. */
    CF_ASSERT_INT_EQ(cf_store_apply(b, rec.v[1], rec.len[1], &err), CF_ECONFLICT);
    for (size_t i = 0; i < rec.n; i++)
        CF_ASSERT_INT_EQ(cf_store_apply(b, rec.v[i], rec.len[i], &err), 0);
    CF_ASSERT_INT_EQ(cf_store_seq(b), 3);
    CF_ASSERT(memcmp(cf_store_hashkey(a), cf_store_hashkey(b), 32) == 0);
    char *da = s_dump(a), *db = s_dump(b);
    CF_ASSERT_STR_EQ(da, db);
    free(da);
    free(db);
    /* Again: the store has it already. */
    CF_ASSERT_INT_EQ(cf_store_apply(b, rec.v[2], rec.len[2], &err), CF_ECONFLICT);

    /* Hostile write sets: refused with a reason, nothing stored. */
    const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"", 0},
        {"\xc1", 1},                                   /* not msgpack */
        {"\x92\x02\x04", 3},                           /* version 2 */
        {"\x92\x01\xa1x", 4},                          /* seq a string */
        {"\x95\x01\x04\x20\xc4\x01k\xc0", 8},          /* db 32: none */
        {"\x95\x01\x04\x01\xa1k\xc0", 7},              /* key a str */
        {"\x95\x01\x04\x01\xc4\x00\xc0", 7},           /* empty key */
        {"\x95\x01\x04\x01\xc4\x01k\x05", 8},          /* value an int */
        {"\x94\x01\x04\x01\xc4", 5},                   /* truncated */
        {"\xdd\xff\xff\xff\xff\x01", 6},               /* 4G elements declared */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = cf_store_apply(b, bad[i].bytes, bad[i].len, &err);
        if (rc != CF_EBADREQ)
            CF_FAILF_("hostile write set %zu: %d (%s)", i, rc, err.message);
    }
    CF_ASSERT_INT_EQ(cf_store_seq(b), 3);
    s_rec_free(&rec);
    cf_store_destroy(&a);
    cf_store_destroy(&b);
    s_rmrf(s_tmp);
}

/* A cluster leader's store keeps each batch's undo record until told the
 * batch is safe; rolling back restores exactly what was there. */
static int s_count_undo(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)k, (void)v;
    (*(int *)ctx)++;
    return CF_SCAN_NEXT;
}

static int s_del_all(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)ctx, (void)k, (void)v;
    return CF_SCAN_DEL;
}

static int s_undo_records(cf_store_t *s)
{
    int n = 0;
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, true, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_scan(t, CF_DB_UNDO, NULL, 0, 0, s_count_undo, &n), 0);
    cf_txn_abort(&t);
    return n;
}

static void test_undo_and_rollback(void)
{
    s_mktemp();
    s_rec_t rec = {0};
    cf_store_opts_t o = {.hook = s_hook, .hook_ctx = &rec, .undo = true};
    cf_store_t *a = s_store("a", &o);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(a, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c1", 2, "one", 3), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_TIMERS, "t1", 2, "ev", 2), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_TIMERS, "t2", 2, "ev2", 3), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);        /* seq 2 */
    char *at2 = s_dump(a);
    /* Batch 3: overwrite twice, delete, scan-delete, a new key, a delete of
     * nothing. */
    CF_ASSERT_INT_EQ(cf_store_begin(a, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c1", 2, "uno", 3), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c1", 2, "eins", 4), 0);
    CF_ASSERT_INT_EQ(cf_txn_del(t, CF_DB_TIMERS, "t1", 2), 0);
    CF_ASSERT_INT_EQ(cf_txn_del(t, CF_DB_TIMERS, "zz", 2), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_DOCS, "d", 1, "doc", 3), 0);
    CF_ASSERT_INT_EQ(cf_txn_scan(t, CF_DB_TIMERS, NULL, 0, 0, s_del_all, NULL), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);        /* seq 3 */
    CF_ASSERT_INT_EQ(cf_store_begin(a, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c2", 2, "two", 3), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);        /* seq 4 */
    CF_ASSERT_INT_EQ(cf_store_seq(a), 4);
    CF_ASSERT_INT_EQ(s_undo_records(a), 4);              /* 1 (creation) .. 4 */
    /* The record names its batch by the write set's SHA-256. */
    unsigned char sha[32], want[32];
    CF_ASSERT_INT_EQ(cf_store_undo_sha(a, 3, sha), 0);
    crypto_hash_sha256(want, rec.v[2], rec.len[2]);
    CF_ASSERT(memcmp(sha, want, 32) == 0);
    CF_ASSERT_INT_EQ(cf_store_undo_sha(a, 9, sha), CF_ENOTFOUND);

    /* Back to 2: exactly what batch 2 left (undo records 3, 4 gone). */
    cf_error_t err = {0};
    CF_ASSERT_INT_EQ(cf_store_rollback(a, 2, &err), 0);
    CF_ASSERT_INT_EQ(cf_store_seq(a), 2);
    CF_ASSERT_INT_EQ(s_undo_records(a), 2);
    char *now = s_dump(a);
    CF_ASSERT_STR_EQ(now, at2);
    free(now);
    /* After a reopen too. */
    cf_store_destroy(&a);
    a = s_store("a", &o);
    CF_ASSERT_INT_EQ(cf_store_seq(a), 2);
    now = s_dump(a);
    CF_ASSERT_STR_EQ(now, at2);
    free(now);

    /* Acknowledged records go with the next batch; forget drops the rest;
     * a batch without a record cannot be taken back. */
    cf_store_undo_acked(a, 2);
    CF_ASSERT_INT_EQ(cf_store_begin(a, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c3", 2, "three", 5), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);        /* seq 3 again */
    CF_ASSERT_INT_EQ(s_undo_records(a), 1);
    CF_ASSERT_INT_EQ(cf_store_undo_forget(a, 3), 0);
    CF_ASSERT_INT_EQ(s_undo_records(a), 0);
    CF_ASSERT_INT_EQ(cf_store_seq(a), 3);
    CF_ASSERT_INT_EQ(cf_store_rollback(a, 2, &err), CF_ENOTFOUND);
    CF_ASSERT_INT_EQ(cf_store_seq(a), 3);
    free(at2);
    s_rec_free(&rec);
    cf_store_destroy(&a);
    s_rmrf(s_tmp);
}

static void test_write_set_entries(void)
{
    s_mktemp();
    s_rec_t rec = {0};
    cf_store_t *s = s_store("a", NULL);
    cf_store_set_hook(s, s_hook, &rec);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_IDX_FLAG, "a1", 2, "", 0), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_IDX_FLAG, "a2", 2, "x", 1), 0);
    s_scan_t x = {.stop_at = -1, .del_odd = 1};
    CF_ASSERT_INT_EQ(cf_txn_scan(t, CF_DB_IDX_FLAG, NULL, 0, 0, s_scan_cb, &x), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);
    CF_ASSERT_INT_EQ(rec.n, 1);
    /* The encoding: [1, seq, db, key, value|nil, ...]: put a1, put a2,
     * delete a1 (from the scan). */
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    CF_ASSERT(msgpack_unpack_next(&up, (const char *)rec.v[0], rec.len[0], NULL) ==
              MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *a = up.data.via.array.ptr;
    CF_ASSERT_INT_EQ(up.data.via.array.size, 2 + 3 * 3);
    CF_ASSERT_INT_EQ(a[0].via.u64, 1);
    CF_ASSERT_INT_EQ(a[1].via.u64, 2);
    CF_ASSERT_INT_EQ(a[2].via.u64, CF_DB_IDX_FLAG);
    CF_ASSERT(a[3].type == MSGPACK_OBJECT_BIN && a[3].via.bin.size == 2);
    CF_ASSERT(a[4].type == MSGPACK_OBJECT_BIN && a[4].via.bin.size == 0);
    CF_ASSERT(a[7].type == MSGPACK_OBJECT_BIN && a[7].via.bin.size == 1);
    CF_ASSERT(a[8].via.u64 == CF_DB_IDX_FLAG && a[9].via.bin.size == 2 &&
              memcmp(a[9].via.bin.ptr, "a1", 2) == 0);
    CF_ASSERT(a[10].type == MSGPACK_OBJECT_NIL);
    msgpack_unpacked_destroy(&up);
    /* A hook that refuses: the batch is not stored. */
    rec.refuse = CF_EUNAVAIL;
    CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c", 1, "v", 1), 0);
    uint64_t seq;
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, &seq), CF_EUNAVAIL);
    CF_ASSERT_INT_EQ(seq, 2);
    CF_ASSERT_INT_EQ(cf_store_begin(s, true, &t), 0);
    cf_bytes_t v;
    CF_ASSERT_INT_EQ(cf_txn_get(t, CF_DB_CLAIMS, "c", 1, &v), CF_ENOTFOUND);
    cf_txn_abort(&t);
    s_rec_free(&rec);
    cf_store_destroy(&s);
    s_rmrf(s_tmp);
}

static void test_store_faults_leave_nothing(void)
{
    s_mktemp();
    s_rec_t rec = {0};
    cf_store_t *s = s_store("a", NULL);
    cf_store_set_hook(s, s_hook, &rec);
    char *before = s_dump(s);
    cf_fault_t kinds[] = {CF_FAULT_PUT, CF_FAULT_DEL, CF_FAULT_COMMIT};
    for (int k = 0; k < 3; k++) {
        for (unsigned n = 1; n <= 3; n++) {
            cf_store_fault(s, kinds[k], n);
            cf_txn_t *t;
            CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
            int rc = 0;
            for (int i = 0; i < 3 && rc == 0; i++) {
                char key[8];
                snprintf(key, sizeof key, "k%d", i);
                rc = cf_txn_put(t, CF_DB_CLAIMS, key, 2, "v", 1);
                if (rc == 0)
                    rc = cf_txn_del(t, CF_DB_CLAIMS, key, 2);
            }
            int crc = cf_txn_commit(&t, NULL);
            if (kinds[k] == CF_FAULT_COMMIT && n > 1) {
                /* Only one commit: the fault never fires. */
                CF_ASSERT_INT_EQ(crc, 0);
                cf_store_fault(s, CF_FAULT_COMMIT, 0);
                continue;
            }
            CF_ASSERT_INT_EQ(crc, CF_EUNAVAIL);
            if (kinds[k] != CF_FAULT_COMMIT)
                CF_ASSERT_INT_EQ(rc, CF_EUNAVAIL);
            char *after = s_dump(s);
            CF_ASSERT_STR_EQ(after, before);
            free(after);
        }
    }
    /* A commit that failed after the hook accepted: the hook is told. */
    CF_ASSERT(rec.aborted > 0);
    CF_ASSERT(!cf_store_map_full(s));
    free(before);
    s_rec_free(&rec);
    cf_store_destroy(&s);
    s_rmrf(s_tmp);
}

static void test_truncated_file_refused_and_leftovers_removed(void)
{
    s_mktemp();
    cf_store_t *s = s_store("a", NULL);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
    char big[4000];
    memset(big, 'x', sizeof big);
    for (int i = 0; i < 200; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%05d", i);
        CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_DOCS, key, strlen(key), big, sizeof big), 0);
    }
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);
    cf_store_destroy(&s);
    /* A copy killed half-way; and a compaction's partial copy. */
    char path[400], comp[400];
    snprintf(path, sizeof path, "%s/data.mdb", s_dir);
    struct stat st;
    CF_ASSERT_INT_EQ(stat(path, &st), 0);
    CF_ASSERT_INT_EQ(truncate(path, st.st_size / 2), 0);
    snprintf(comp, sizeof comp, "%s/.compact", s_dir);
    CF_ASSERT_INT_EQ(mkdir(comp, 0700), 0);
    snprintf(comp, sizeof comp, "%s/.compact/data.mdb", s_dir);
    int fd = open(comp, O_CREAT | O_WRONLY, 0600);
    CF_ASSERT(fd >= 0);
    close(fd);
    cf_error_t err = {0};
    CF_ASSERT_INT_EQ(cf_store_open(s_dir, NULL, &s, &err), CF_EUNAVAIL);
    CF_ASSERT_STR_HAS(err.message, "a truncated or partial copy");
    CF_ASSERT(access(comp, F_OK) != 0);     /* the partial compaction is gone */
    s_rmrf(s_tmp);
}

static void test_copy_is_complete_or_absent(void)
{
    s_mktemp();
    cf_store_t *s = s_store("a", NULL);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_CLAIMS, "c", 1, "v", 1), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);
    char src[300], dst[300], part[400];
    snprintf(src, sizeof src, "%s", s_dir);
    snprintf(dst, sizeof dst, "%s/copy", s_tmp);
    cf_error_t err;
    CF_ASSERT_INT_EQ(cf_store_copy(src, dst, &err), 0);
    snprintf(part, sizeof part, "%s/data.mdb.partial", dst);
    CF_ASSERT(access(part, F_OK) != 0);
    cf_store_facts_t f;
    CF_ASSERT_INT_EQ(cf_store_inspect(dst, &f, &err), 0);
    CF_ASSERT_INT_EQ(f.claims, 1);
    CF_ASSERT_INT_EQ(f.seq, 2);
    /* Never over an existing copy. */
    CF_ASSERT_INT_EQ(cf_store_copy(src, dst, &err), CF_EUNAVAIL);
    CF_ASSERT_STR_HAS(err.message, "already holds a data.mdb");
    cf_store_destroy(&s);
    s_rmrf(s_tmp);
}

/* ------------------------------------------------------------- codecs --- */

/* The default country the resolver reports: a record without one reads
 * with it. */
static cf_country_t s_default_country = CF_COUNTRY_DK;

static const cf_wf_t *s_resolve_wf(void *ctx, const char *name, size_t n, int64_t ver,
                                   cf_country_t *ret_country)
{
    const cf_wf_t *wf = ctx;
    *ret_country = s_default_country;
    return strlen(wf->name) == n && memcmp(wf->name, name, n) == 0 && wf->version == ver
               ? wf : NULL;
}

/* rec (len bytes): a record the engine wrote for a Danish member before
 * the owner, 14 elements, the last the country "dk". */
static void s_claim_country_element(const unsigned char *rec, size_t len, const cf_wf_t *wf)
{
    cf_claim_t c;
    CF_ASSERT_INT_EQ(rec[0], 0x9e);                               /* fixarray 14 */
    CF_ASSERT(memcmp(rec + len - 3, "\xa2" "dk", 3) == 0);
    CF_ASSERT_INT_EQ(cf_claim_decode(rec, len, s_resolve_wf, (void *)wf, &c), 0);
    CF_ASSERT_INT_EQ(c.country, CF_COUNTRY_DK);
    cf_claim_fini(&c);

    /* A record from before the country: 13 elements.  It reads with the
     * version's default country (here, to tell it from the "dk" it had:
     * no), and is written back with 14. */
    unsigned char *old = malloc(len);
    memcpy(old, rec, len - 3);
    old[0] = 0x9d;                                                /* fixarray 13 */
    s_default_country = CF_COUNTRY_NO;
    CF_ASSERT_INT_EQ(cf_claim_decode(old, len - 3, s_resolve_wf, (void *)wf, &c), 0);
    CF_ASSERT_INT_EQ(c.country, CF_COUNTRY_NO);
    CF_ASSERT_STR_EQ(c.wf->states[c.state].name, "awaiting_referral");
    CF_ASSERT(c.has_member);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CF_ASSERT_INT_EQ(cf_claim_encode(&c, &sb), 0);
    /* written back with 16: array16 header, no owner, no frames */
    CF_ASSERT_INT_EQ(sb.size, len + 4);
    CF_ASSERT(memcmp(sb.data, "\xdc\x00\x10", 3) == 0);
    CF_ASSERT(memcmp(sb.data + 3, rec + 1, len - 4) == 0);
    CF_ASSERT(memcmp(sb.data + len - 1, "\xa2" "no" "\xc0\x90", 5) == 0);
    cf_claim_fini(&c);
    s_default_country = CF_COUNTRY_DK;

    /* Otherwise strict: a country that is not one, or not a string, or an
     * element more, is a corrupt record. */
    unsigned char *bad = malloc(len + 1);
    memcpy(bad, rec, len);
    memcpy(bad + len - 2, "se", 2);
    CF_ASSERT_INT_EQ(cf_claim_decode(bad, len, s_resolve_wf, (void *)wf, &c), CF_EINTERNAL);
    bad[len - 3] = 0x01;                                          /* the integer 1 */
    CF_ASSERT_INT_EQ(cf_claim_decode(bad, len - 2, s_resolve_wf, (void *)wf, &c),
                     CF_EINTERNAL);
    memcpy(bad, rec, len);
    bad[0] = 0x9f;                                                /* fixarray 15 */
    bad[len] = 0xc0;
    CF_ASSERT_INT_EQ(cf_claim_decode(bad, len + 1, s_resolve_wf, (void *)wf, &c), CF_EINTERNAL);
    bad[0] = 0x9c;                                                /* fixarray 12 */
    CF_ASSERT_INT_EQ(cf_claim_decode(bad, len - 6, s_resolve_wf, (void *)wf, &c), CF_EINTERNAL);
    free(bad);
    free(old);
    msgpack_sbuffer_destroy(&sb);
}

static void test_codecs_round_trip_and_hostile_bytes(void)
{
    cf_engine_t *e = s_open();
    /* A claim made by the engine, read back through the codec. */
    const char *id = s_create(e, CPR_A, "physiotherapy");
    char cid[CF_ID_LEN + 1];
    snprintf(cid, sizeof cid, "%s", id);
    cf_store_t *s = cf_engine_store(e);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(s, true, &t), 0);
    cf_bytes_t v;
    CF_ASSERT_INT_EQ(cf_txn_get(t, CF_DB_CLAIMS, cid, CF_ID_LEN, &v), 0);
    unsigned char *rec = malloc(v.len);
    size_t len = v.len;
    memcpy(rec, v.data, len);
    cf_txn_abort(&t);
    cf_wf_t *wf = NULL;
    char path[1024];
    snprintf(path, sizeof path, "%s/workflows/health_claim.yaml", cf_test_srcdir());
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(cf_wf_load_file(path, &wf, &d), 0);
    cf_diags_clear(&d);
    cf_claim_t c;
    CF_ASSERT_INT_EQ(cf_claim_decode(rec, len, s_resolve_wf, wf, &c), 0);
    CF_ASSERT_STR_EQ(c.wf->states[c.state].name, "awaiting_referral");
    CF_ASSERT(c.has_member);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CF_ASSERT_INT_EQ(cf_claim_encode(&c, &sb), 0);
    CF_ASSERT_INT_EQ(sb.size, len);
    CF_ASSERT(memcmp(sb.data, rec, len) == 0);        /* byte for byte */
    cf_claim_fini(&c);
    /* Every prefix of the record, and bytes flipped one at a time: an
     * error or a claim, never a crash (ASan watches). */
    for (size_t n = 0; n < len; n++)
        CF_ASSERT_INT_EQ(cf_claim_decode(rec, n, s_resolve_wf, wf, &c), CF_EINTERNAL);
    for (size_t i = 0; i < len; i++) {
        unsigned char save = rec[i];
        for (int bit = 0; bit < 8; bit++) {
            rec[i] = save ^ (unsigned char)(1 << bit);
            if (cf_claim_decode(rec, len, s_resolve_wf, wf, &c) == 0) {
                sb.size = 0;
                CF_ASSERT_INT_EQ(cf_claim_encode(&c, &sb), 0);
                cf_claim_fini(&c);
            }
        }
        rec[i] = save;
    }
    /* Declared counts the bytes cannot hold. */
    CF_ASSERT_INT_EQ(cf_claim_decode("\xdd\xff\xff\xff\xff", 5, s_resolve_wf, wf, &c),
                     CF_EINTERNAL);
    /* Written now: 16 elements, the owner (nil) and the frames ([]) after
     * the country. */
    CF_ASSERT(memcmp(rec, "\xdc\x00\x10", 3) == 0);
    CF_ASSERT(memcmp(rec + len - 5, "\xa2" "dk" "\xc0\x90", 5) == 0);
    {
        cf_claim_t oc;
        CF_ASSERT_INT_EQ(cf_claim_decode(rec, len, s_resolve_wf, (void *)wf, &oc), 0);
        CF_ASSERT_STR_EQ(oc.owner, "");
        CF_ASSERT_INT_EQ(oc.nframes, 0);
        /* an owner and a frame with a kept timer survive the round trip */
        snprintf(oc.owner, sizeof oc.owner, "op-anna");
        oc.nframes = 1;
        oc.frames[0] = (cf_claim_frame_t){.state = oc.state, .prev = -1, .ntimers = 1};
        snprintf(oc.frames[0].timers[0].name, sizeof oc.frames[0].timers[0].name, "window");
        snprintf(oc.frames[0].timers[0].event, sizeof oc.frames[0].timers[0].event, "w.expired");
        oc.frames[0].timers[0].due = 1234567;
        msgpack_sbuffer osb;
        msgpack_sbuffer_init(&osb);
        CF_ASSERT_INT_EQ(cf_claim_encode(&oc, &osb), 0);
        cf_claim_fini(&oc);
        CF_ASSERT_INT_EQ(cf_claim_decode(osb.data, osb.size, s_resolve_wf, (void *)wf, &oc), 0);
        CF_ASSERT_STR_EQ(oc.owner, "op-anna");
        CF_ASSERT_INT_EQ(oc.nframes, 1);
        CF_ASSERT_INT_EQ(oc.frames[0].prev, -1);
        CF_ASSERT_STR_EQ(oc.frames[0].timers[0].name, "window");
        CF_ASSERT_STR_EQ(oc.frames[0].timers[0].event, "w.expired");
        CF_ASSERT_INT_EQ(oc.frames[0].timers[0].due, 1234567);
        cf_claim_fini(&oc);
        msgpack_sbuffer_destroy(&osb);
    }
    /* The same record from before the owner: 14 elements. */
    unsigned char *rec14 = malloc(len);
    rec14[0] = 0x9e;
    memcpy(rec14 + 1, rec + 3, len - 5);
    s_claim_country_element(rec14, len - 4, wf);
    free(rec14);
    /* Events: encode, view, strip. */
    CF_ASSERT_INT_EQ(cf_event_encode(3, 1000, "decision.denied", "in_review", "denied", "hanne",
                                     "\x81\xa6reason\xa3no!", 12, NULL, &sb), 0);
    msgpack_sbuffer out;
    msgpack_sbuffer_init(&out);
    bool changed;
    CF_ASSERT_INT_EQ(cf_event_strip(sb.data, sb.size, &out, &changed), 0);
    CF_ASSERT(changed);
    CF_ASSERT(memmem(out.data, out.size, "reason", 6) == NULL);
    CF_ASSERT_INT_EQ(cf_event_strip("\x93\x01", 2, &out, &changed), CF_EINTERNAL);
    /* Who acted (issue 15): by, channel, reference; the protocol's map
     * shows them, a purge strips by and reference and keeps the channel. */
    {
        cf_event_who_t who = {"0101801234", "phone", "rec-1"};
        CF_ASSERT_INT_EQ(cf_event_encode(4, 1000, "consent.given", "a", "b", "system", NULL, 0,
                                         &who, &sb), 0);
        msgpack_sbuffer rep;
        msgpack_sbuffer_init(&rep);
        msgpack_packer rpk;
        msgpack_packer_init(&rpk, &rep, msgpack_sbuffer_write);
        CF_ASSERT_INT_EQ(cf_event_pack_reply(&rpk, cid, NULL, 0, sb.data, sb.size), 0);
        CF_ASSERT(memmem(rep.data, rep.size, "\xa2" "by\xaa" "0101801234", 14) != NULL);
        CF_ASSERT(memmem(rep.data, rep.size, "\xa7" "channel\xa5" "phone", 14) != NULL);
        CF_ASSERT(memmem(rep.data, rep.size, "\xa9" "reference\xa5" "rec-1", 16) != NULL);
        CF_ASSERT_INT_EQ(cf_event_strip(sb.data, sb.size, &out, &changed), 0);
        CF_ASSERT(changed);
        CF_ASSERT(memmem(out.data, out.size, "0101801234", 10) == NULL);
        CF_ASSERT(memmem(out.data, out.size, "rec-1", 5) == NULL);
        CF_ASSERT(memmem(out.data, out.size, "phone", 5) != NULL);
        /* A record of before (7 elements): by nil, the channel its actor
         * implies, no reference. */
        static const char old[] = "\x97\x01\x02\xa1" "e\xc0\xa1" "b\xa5" "hanne\xc0";
        msgpack_sbuffer_clear(&rep);
        CF_ASSERT_INT_EQ(cf_event_pack_reply(&rpk, cid, NULL, 0, old, sizeof old - 1), 0);
        CF_ASSERT(memmem(rep.data, rep.size, "\xa2" "by\xc0", 4) != NULL);
        CF_ASSERT(memmem(rep.data, rep.size, "\xa7" "channel\xa8" "operator", 17) != NULL);
        CF_ASSERT(memmem(rep.data, rep.size, "reference", 9) == NULL);
        msgpack_sbuffer_destroy(&rep);
    }
    /* Representation records: round trip, hostile. */
    {
        cf_rep_t r, back;
        memset(&r, 0, sizeof r);
        snprintf(r.member, sizeof r.member, "1501145123");
        snprintf(r.rep, sizeof r.rep, "0101801234");
        r.kind = CF_REP_PARENT;
        r.scope = CF_SCOPE_CONSENT | CF_SCOPE_READ;
        r.valid_from = 10;
        r.valid_until = 20;
        r.has_evidence = true;
        snprintf(r.ev_kind, sizeof r.ev_kind, "custody");
        memset(r.ev_sha, 0xab, 32);
        r.ev_size = 99;
        snprintf(r.registered_by, sizeof r.registered_by, "hanne");
        CF_ASSERT_INT_EQ(cf_rep_encode(&r, &sb), 0);
        CF_ASSERT_INT_EQ(cf_rep_decode(sb.data, sb.size, &back), 0);
        CF_ASSERT_STR_EQ(back.member, "1501145123");
        CF_ASSERT_STR_EQ(back.rep, "0101801234");
        CF_ASSERT_INT_EQ(back.kind, CF_REP_PARENT);
        CF_ASSERT_INT_EQ(back.scope, CF_SCOPE_CONSENT | CF_SCOPE_READ);
        CF_ASSERT(back.valid_from == 10 && back.valid_until == 20 && back.revoked_at == 0);
        CF_ASSERT(back.has_evidence && back.ev_size == 99 && back.ev_sha[31] == 0xab);
        CF_ASSERT_STR_EQ(back.ev_kind, "custody");
        CF_ASSERT_STR_EQ(back.registered_by, "hanne");
        CF_ASSERT(!back.decides);
        /* decides: an 11th element; a record without it is 10 long, as
         * before, and the element must be a boolean. */
        CF_ASSERT_INT_EQ((unsigned char)sb.data[0], 0x9a);
        r.decides = true;
        CF_ASSERT_INT_EQ(cf_rep_encode(&r, &sb), 0);
        CF_ASSERT_INT_EQ((unsigned char)sb.data[0], 0x9b);
        CF_ASSERT_INT_EQ(cf_rep_decode(sb.data, sb.size, &back), 0);
        CF_ASSERT(back.decides);
        sb.data[sb.size - 1] = (char)0x01;        /* true -> 1: not a boolean */
        CF_ASSERT_INT_EQ(cf_rep_decode(sb.data, sb.size, &back), CF_EINTERNAL);
        r.decides = false;
        CF_ASSERT_INT_EQ(cf_rep_encode(&r, &sb), 0);
        CF_ASSERT_INT_EQ(cf_rep_decode(sb.data, sb.size - 1, &back), CF_EINTERNAL);
        CF_ASSERT_INT_EQ(cf_rep_decode("\x93\x01\x02\x03", 4, &back), CF_EINTERNAL);
        CF_ASSERT_STR_EQ(cf_rep_kind_name(CF_REP_THIRD_PARTY), "third_party");
        CF_ASSERT_INT_EQ(cf_rep_kind_find("next_of_kin", 11), CF_REP_NEXT_OF_KIN);
        CF_ASSERT_INT_EQ(cf_rep_kind_find("uncle", 5), CF_REP_NONE);
        CF_ASSERT_INT_EQ(cf_scope_find("complaints", 10), CF_SCOPE_COMPLAINTS);
        CF_ASSERT_INT_EQ(cf_scope_find("write", 5), 0);
    }
    msgpack_sbuffer_destroy(&out);
    msgpack_sbuffer_destroy(&sb);
    /* Timer keys: round trip, hostile. */
    unsigned char k[CF_KEY_MAX];
    size_t kl = cf_key_timer(k, 1234567, CF_TIMER_CLAIM, cid, CF_ID_LEN, "decision_sla");
    cf_timer_key_t tk;
    CF_ASSERT_INT_EQ(cf_key_timer_parse(k, kl, &tk), 0);
    CF_ASSERT_INT_EQ(tk.due, 1234567);
    CF_ASSERT_STR_EQ(tk.id, cid);
    CF_ASSERT_STR_EQ(tk.name, "decision_sla");
    CF_ASSERT_INT_EQ(cf_key_timer_parse(k, 9, &tk), CF_EINTERNAL);
    k[8] = 'z';
    CF_ASSERT_INT_EQ(cf_key_timer_parse(k, kl, &tk), CF_EINTERNAL);
    /* Consent records: round trip, wrong length. */
    cf_consent_t cs = {1, 2, 3, 20500, 7, "", "", 0, 0, {""}, ""}, back;
    msgpack_sbuffer csb;
    msgpack_sbuffer_init(&csb);
    CF_ASSERT_INT_EQ(cf_consent_encode(&cs, &csb), 0);
    const unsigned char *cr = (const unsigned char *)csb.data;
    CF_ASSERT_INT_EQ(cf_consent_decode(cr, csb.size, &back), 0);
    CF_ASSERT(back.given_at == 1 && back.valid_until == 2 && back.withdrawn_at == 3);
    CF_ASSERT(back.change_day == 20500 && back.changes == 7);
    CF_ASSERT_STR_EQ(back.channel, "portal");
    CF_ASSERT_STR_EQ(back.given_by, "");
    /* Who gave it: a parent, by phone, with a lapse and a reference. */
    snprintf(cs.given_by, sizeof cs.given_by, "0101801234");
    snprintf(cs.channel, sizeof cs.channel, "phone");
    cs.lapses_at = 2;
    cs.ninvolved = 1;
    snprintf(cs.involved[0], sizeof cs.involved[0], "0202802345");
    snprintf(cs.reference, sizeof cs.reference, "call-7");
    CF_ASSERT_INT_EQ(cf_consent_encode(&cs, &csb), 0);
    cr = (const unsigned char *)csb.data;
    CF_ASSERT_INT_EQ(cf_consent_decode(cr, csb.size, &back), 0);
    CF_ASSERT_STR_EQ(back.given_by, "0101801234");
    CF_ASSERT_STR_EQ(back.channel, "phone");
    CF_ASSERT_STR_EQ(back.involved[0], "0202802345");
    CF_ASSERT_STR_EQ(back.reference, "call-7");
    CF_ASSERT(back.lapses_at == 2 && back.ninvolved == 1 && back.changes == 7);
    /* A record of before issue 15 (40 bytes): the member, on the portal. */
    CF_ASSERT_INT_EQ(cf_consent_decode(cr, CF_CONSENT_REC_LEN, &back), 0);
    CF_ASSERT(back.changes == 7 && back.given_by[0] == 0 && back.lapses_at == 0);
    CF_ASSERT_INT_EQ(cf_consent_decode(cr, CF_CONSENT_REC_LEN + 1, &back), CF_EINTERNAL);
    /* A record from before the rate limit: no changes counted. */
    CF_ASSERT_INT_EQ(cf_consent_decode(cr, CF_CONSENT_REC_OLD, &back), 0);
    CF_ASSERT(back.given_at == 1 && back.changes == 0);
    CF_ASSERT_INT_EQ(cf_consent_decode(cr, 23, &back), CF_EINTERNAL);
    msgpack_sbuffer_destroy(&csb);
    free(rec);
    cf_wf_destroy(&wf);
    s_close(&e);
}

/* Claim ids as 16 bytes (the access log's form): the ULID spec's example,
 * round trips, and what is no canonical ULID stays text. */
static void test_claim_ids_in_binary(void)
{
    unsigned char bin[CF_ID_BIN_LEN];
    char back[CF_ID_LEN + 1];
    static const unsigned char want[CF_ID_BIN_LEN] = {
        0x01, 0x56, 0x3e, 0x3a, 0xb5, 0xd3, 0xd6, 0x76,
        0x4c, 0x61, 0xef, 0xb9, 0x93, 0x02, 0xbd, 0x5b};
    CF_ASSERT_INT_EQ(cf_id_to_bin("01ARZ3NDEKTSV4RRFFQ69G5FAV", bin), 0);
    CF_ASSERT(memcmp(bin, want, sizeof want) == 0);
    cf_id_from_bin(bin, back);
    CF_ASSERT_STR_EQ(back, "01ARZ3NDEKTSV4RRFFQ69G5FAV");
    /* The extremes. */
    CF_ASSERT_INT_EQ(cf_id_to_bin("7ZZZZZZZZZZZZZZZZZZZZZZZZZ", bin), 0);
    for (size_t i = 0; i < sizeof bin; i++)
        CF_ASSERT_INT_EQ(bin[i], 0xff);
    cf_id_from_bin(bin, back);
    CF_ASSERT_STR_EQ(back, "7ZZZZZZZZZZZZZZZZZZZZZZZZZ");
    CF_ASSERT_INT_EQ(cf_id_to_bin("00000000000000000000000000", bin), 0);
    cf_id_from_bin(bin, back);
    CF_ASSERT_STR_EQ(back, "00000000000000000000000000");
    /* Ids the engine makes round trip. */
    cf_engine_t *e = s_open();
    for (int i = 0; i < 50; i++) {
        char id[CF_ID_LEN + 1];
        snprintf(id, sizeof id, "%s", s_create(e, CPR_A, "physiotherapy"));
        CF_ASSERT_INT_EQ(cf_id_to_bin(id, bin), 0);
        cf_id_from_bin(bin, back);
        CF_ASSERT_STR_EQ(back, id);
    }
    s_close(&e);
    /* Not canonical: past 128 bits, lower case, outside the alphabet. */
    CF_ASSERT_INT_EQ(cf_id_to_bin("80000000000000000000000000", bin), CF_EBADREQ);
    CF_ASSERT_INT_EQ(cf_id_to_bin("01arz3ndektsv4rrffq69g5fav", bin), CF_EBADREQ);
    CF_ASSERT_INT_EQ(cf_id_to_bin("01ARZ3NDEKTSV4RRFFQ69G5FAU", bin), CF_EBADREQ);
    CF_ASSERT_INT_EQ(cf_id_to_bin("01ARZ3NDEKTSV4RRFFQ69G5FA\n", bin), CF_EBADREQ);
    char nul[CF_ID_LEN + 1] = "01ARZ3NDEKTSV4RRFFQ69G5FAV";
    nul[3] = '\0';
    CF_ASSERT_INT_EQ(cf_id_to_bin(nul, bin), CF_EBADREQ);
    /* The index key's two forms. */
    unsigned char k[CF_KEY_MAX], akey[CF_AUDIT_KEY_LEN] = {1};
    bool text;
    CF_ASSERT_INT_EQ(cf_key_audit_claim(k, "01ARZ3NDEKTSV4RRFFQ69G5FAV", akey, &text),
                     CF_AUDIT_CLAIM_BIN);
    CF_ASSERT(!text && memcmp(k, want, sizeof want) == 0);
    CF_ASSERT_INT_EQ(cf_key_audit_claim(k, "not-a-ulid-but-26-bytes-xx", akey, &text),
                     CF_AUDIT_CLAIM_TEXT);
    CF_ASSERT(text && memcmp(k, "not-a-ulid", 10) == 0);
    /* Records: binary ids, text ids, elements appended after the fourth. */
    const char *ids[2] = {"01ARZ3NDEKTSV4RRFFQ69G5FAV", "not-a-ulid-but-26-bytes-xx"};
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    CF_ASSERT_INT_EQ(cf_audit_encode(1000, "hanne", "query", ids, 2, NULL, NULL, &sb), 0);
    CF_ASSERT_INT_EQ(sb.size, 1 + 3 + 6 + 6 + 1 + 18 + 27);
    cf_audit_rec_t r;
    CF_ASSERT_INT_EQ(cf_audit_decode(sb.data, sb.size, &r), 0);
    CF_ASSERT_INT_EQ(r.at, 1000);
    CF_ASSERT_INT_EQ(r.nclaims, 2);
    CF_ASSERT_INT_EQ(r.claims[0].type, MSGPACK_OBJECT_BIN);
    CF_ASSERT_INT_EQ(cf_audit_claim(&r, 0, back), 0);
    CF_ASSERT_STR_EQ(back, ids[0]);
    CF_ASSERT_INT_EQ(cf_audit_claim(&r, 1, back), 0);
    CF_ASSERT_STR_EQ(back, ids[1]);
    CF_ASSERT_INT_EQ(r.nrest, 0);
    cf_audit_fini(&r);
    /* [at, actor, op, [id], purpose, role]: issue 17's trailing elements. */
    static const char later[] = "\x96\xcd\x03\xe8\xa5hanne\xa3get\x91\xc4\x10"
                                "0123456789abcdef\xa7payment\xa7handler";
    CF_ASSERT_INT_EQ(cf_audit_decode(later, sizeof later - 1, &r), 0);
    CF_ASSERT_INT_EQ(r.nclaims, 1);
    CF_ASSERT_INT_EQ(r.nrest, 2);
    cf_audit_fini(&r);
    /* Hostile: every prefix, a wrong shape. */
    for (size_t n = 0; n < sb.size; n++) {
        CF_ASSERT_INT_EQ(cf_audit_decode(sb.data, n, &r), CF_EINTERNAL);
        cf_audit_fini(&r);
    }
    CF_ASSERT_INT_EQ(cf_audit_decode("\x93\x01\xa1x\xa1y", 6, &r), CF_EINTERNAL);
    cf_audit_fini(&r);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    CF_RUN(test_open_commit_seq);
    CF_RUN(test_commit_histogram);
    CF_RUN(test_scan_prefix_stop_delete);
    CF_RUN(test_write_sets_replay_exactly);
    CF_RUN(test_write_set_entries);
    CF_RUN(test_undo_and_rollback);
    CF_RUN(test_store_faults_leave_nothing);
    CF_RUN(test_truncated_file_refused_and_leftovers_removed);
    CF_RUN(test_copy_is_complete_or_absent);
    CF_RUN(test_codecs_round_trip_and_hostile_bytes);
    CF_RUN(test_claim_ids_in_binary);
    return cf_test_done();
}

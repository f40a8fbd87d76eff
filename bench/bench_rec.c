/* bench_rec.c: record the LMDB writes the engine makes, so the LMDB ceiling
 * can replay exactly them - the same databases, the same keys, the same
 * value sizes, in the same order - without the engine's work around them.
 *
 * How: this file defines mdb_put, mdb_del and mdb_cursor_del.  The engine is
 * a static library linked into claimflow-bench, so its calls bind to these
 * definitions at link time (the executable's symbol wins over liblmdb.so's),
 * and these pass every call on to liblmdb's own function, found with
 * dlsym(RTLD_NEXT).  While no recording is on, that is all they do (one
 * indirect call).  The alternative - a recipe of "what a transition
 * writes" written down by hand from engine.c - was rejected: it goes stale
 * the day the engine changes, and the point of the ceiling is to be the
 * same writes.
 *
 * A database is recorded by name (the store's CF_DB_MAP), found once per
 * recording by asking LMDB for each name's handle in the writer's
 * transaction; the engine keeps its handles for the life of the store.
 */
#include "bench.h"

#include <dlfcn.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

typedef int (*s_put_fn)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *, unsigned int);
typedef int (*s_del_fn)(MDB_txn *, MDB_dbi, MDB_val *, MDB_val *);
typedef int (*s_cdel_fn)(MDB_cursor *, unsigned int);

static s_put_fn s_real_put;
static s_del_fn s_real_del;
static s_cdel_fn s_real_cdel;

static bench_rec_t *s_rec;
static bool s_mapped;
static MDB_dbi s_dbi[BENCH_MAX_DBS];
static int s_ndbi;

static const char *const s_db_names[] = {
#define CF_XX(s, name) name,
    CF_DB_MAP(CF_XX)
#undef CF_XX
};

static void *s_sym(const char *name)
{
    void *p = dlsym(RTLD_NEXT, name);
    if (!p) {
        fprintf(stderr, "claimflow-bench: cannot find liblmdb's %s: %s\n", name, dlerror());
        abort();
    }
    return p;
}

static void s_init(void)
{
    if (s_real_put)
        return;
    /* A data pointer to a function pointer through memcpy: ISO C has no
     * cast between them, POSIX guarantees the representation. */
    void *p = s_sym("mdb_put");
    memcpy(&s_real_put, &p, sizeof p);
    p = s_sym("mdb_del");
    memcpy(&s_real_del, &p, sizeof p);
    p = s_sym("mdb_cursor_del");
    memcpy(&s_real_cdel, &p, sizeof p);
}

void bench_rec_start(bench_rec_t *r)
{
    s_init();
    s_rec = r;
    s_mapped = false;
}

void bench_rec_stop(void)
{
    s_rec = NULL;
}

void bench_rec_free(bench_rec_t *r)
{
    free(r->ops);
    free(r->keys);
    memset(r, 0, sizeof *r);
}

static void s_map(MDB_txn *txn)
{
    bench_rec_t *r = s_rec;
    s_ndbi = 0;
    r->ndbs = 0;
    for (size_t i = 0; i < sizeof s_db_names / sizeof s_db_names[0] && i < BENCH_MAX_DBS; i++) {
        MDB_dbi dbi;
        if (mdb_dbi_open(txn, s_db_names[i], 0, &dbi) != 0)
            continue;
        s_dbi[s_ndbi++] = dbi;
        snprintf(r->names[r->ndbs++], sizeof r->names[0], "%s", s_db_names[i]);
    }
    s_mapped = true;
}

static void s_note(MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, size_t vlen, bool del)
{
    bench_rec_t *r = s_rec;
    if (!s_mapped)
        s_map(txn);
    int db = -1;
    for (int i = 0; i < s_ndbi; i++)
        if (s_dbi[i] == dbi)
            db = i;
    if (db < 0 || r->failed)
        return;
    if (r->nops == r->capops) {
        size_t cap = r->capops ? r->capops * 2 : 65536;
        bench_recop_t *v = realloc(r->ops, cap * sizeof *v);
        if (!v) {
            r->failed = true;
            return;
        }
        r->ops = v;
        r->capops = cap;
    }
    if (r->nkeys + k->mv_size > r->capkeys) {
        size_t cap = r->capkeys ? r->capkeys * 2 : (size_t)1 << 22;
        while (cap < r->nkeys + k->mv_size)
            cap *= 2;
        unsigned char *v = realloc(r->keys, cap);
        if (!v) {
            r->failed = true;
            return;
        }
        r->keys = v;
        r->capkeys = cap;
    }
    bench_recop_t *op = &r->ops[r->nops++];
    op->db = (uint8_t)db;
    op->del = del;
    op->klen = (uint16_t)k->mv_size;
    op->vlen = (uint32_t)vlen;
    op->koff = r->nkeys;
    memcpy(r->keys + r->nkeys, k->mv_data, k->mv_size);
    r->nkeys += k->mv_size;
    if (del)
        r->dels[db]++;
    else
        r->puts[db]++;
    r->kbytes[db] += k->mv_size;
    r->vbytes[db] += vlen;
}

/* ------------------------------------------------------- interposed --- */
int mdb_put(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data, unsigned int flags)
{
    s_init();
    int rc = s_real_put(txn, dbi, key, data, flags);
    if (s_rec && rc == 0)
        s_note(txn, dbi, key, data->mv_size, false);
    return rc;
}

int mdb_del(MDB_txn *txn, MDB_dbi dbi, MDB_val *key, MDB_val *data)
{
    s_init();
    int rc = s_real_del(txn, dbi, key, data);
    if (s_rec && rc == 0)
        s_note(txn, dbi, key, 0, true);
    return rc;
}

int mdb_cursor_del(MDB_cursor *cursor, unsigned int flags)
{
    s_init();
    MDB_val k = {0, NULL}, v;
    bool have = s_rec && mdb_cursor_get(cursor, &k, &v, MDB_GET_CURRENT) == 0;
    unsigned char kb[512];
    if (have && k.mv_size <= sizeof kb) {
        memcpy(kb, k.mv_data, k.mv_size); /* the page holding it changes */
        k.mv_data = kb;
    } else {
        have = false;
    }
    int rc = s_real_cdel(cursor, flags);
    if (have && rc == 0)
        s_note(mdb_cursor_txn(cursor), mdb_cursor_dbi(cursor), &k, 0, true);
    return rc;
}

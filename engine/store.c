/* store.c: the LMDB environment.
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
 */
#include "store.h"

#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

struct cf_store {
    MDB_env *env;
    MDB_dbi dbi[CF_DB__COUNT];
    unsigned char hashkey[32];
    size_t map_size, map_max;
    bool no_grow;
    bool map_full;
};

static const char *const s_db_names[CF_DB__COUNT] = {
#define CF_XX(s, name) name,
    CF_DB_MAP(CF_XX)
#undef CF_XX
};

void cf_be64_put(unsigned char *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

uint64_t cf_be64_get(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void cf_be32_put(unsigned char *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (unsigned char)v;
}

uint32_t cf_be32_get(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int cf_store_err(int rc)
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
    return cf_store_err(rc);
}

bool cf_store_map_full(const cf_store_t *s) { return s->map_full; }
void cf_store_clear_map_full(cf_store_t *s) { s->map_full = false; }
MDB_env *cf_store_env(cf_store_t *s) { return s->env; }
MDB_dbi cf_store_dbi(const cf_store_t *s, cf_db_t db) { return s->dbi[db]; }
const unsigned char *cf_store_hashkey(const cf_store_t *s) { return s->hashkey; }

/* Read or create the meta records: the format version (refusing a newer
 * one) and the member-hash key. */
static int s_meta_init(cf_store_t *s, MDB_txn *txn, cf_error_t *reterr)
{
    MDB_dbi meta = s->dbi[CF_DB_META];
    MDB_val k = {6, (void *)"format"}, v;
    int rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_NOTFOUND) {
        unsigned char f[4];
        cf_be32_put(f, CF_STORE_FORMAT);
        v.mv_size = 4;
        v.mv_data = f;
        if ((rc = mdb_put(txn, meta, &k, &v, 0)) != 0)
            goto fail;
    } else if (rc != 0) {
        goto fail;
    } else {
        uint32_t format = v.mv_size == 4 ? cf_be32_get(v.mv_data) : 0;
        if (format == 0 || format > CF_STORE_FORMAT)
            return cf_error_set(reterr, CF_EUNAVAIL,
                                "the store was written by a newer claimflow (format %u; this "
                                "version reads format %d): upgrade claimflowd",
                                format, CF_STORE_FORMAT);
    }
    MDB_val hk = {7, (void *)"hashkey"};
    rc = mdb_get(txn, meta, &hk, &v);
    if (rc == MDB_NOTFOUND) {
        randombytes_buf(s->hashkey, sizeof s->hashkey);
        v.mv_size = sizeof s->hashkey;
        v.mv_data = s->hashkey;
        if ((rc = mdb_put(txn, meta, &hk, &v, 0)) != 0)
            goto fail;
    } else if (rc != 0 || v.mv_size != sizeof s->hashkey) {
        goto fail;
    } else {
        memcpy(s->hashkey, v.mv_data, sizeof s->hashkey);
    }
    return 0;
fail:
    return cf_error_set(reterr, cf_store_err(rc), "cannot initialise the store: %s",
                        mdb_strerror(rc));
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
        (rc = mdb_env_open(s->env, dir, MDB_NOTLS, 0600)) != 0) {
        mdb_env_close(s->env);
        s->env = NULL;
    }
    return rc;
}

/* Open every named database (creating the missing ones). */
static int s_dbis_open(cf_store_t *s, MDB_txn *txn)
{
    int rc = 0;
    for (int i = 0; i < CF_DB__COUNT && rc == 0; i++)
        rc = mdb_dbi_open(txn, s_db_names[i], MDB_CREATE, &s->dbi[i]);
    return rc;
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

    MDB_txn *txn = NULL;
    int rc = s_env_open(s, dir);
    if (rc != 0)
        goto out_free;
    /* A store that grew earlier keeps its size. */
    MDB_envinfo info;
    if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size)
        s->map_size = info.me_mapsize;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        goto out_close;
    if ((rc = s_dbis_open(s, txn)) != 0)
        goto out_abort;
    int err = s_meta_init(s, txn, reterr);
    if (err != 0) {
        mdb_txn_abort(txn);
        mdb_env_close(s->env);
        free(s);
        return err;
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto out_close;
    *ret = s;
    return 0;

out_abort:
    mdb_txn_abort(txn);
out_close:
    mdb_env_close(s->env);
out_free:
    free(s);
    return cf_error_set(reterr, CF_EUNAVAIL, "cannot open the store: %s", mdb_strerror(rc));
}

void cf_store_destroy(cf_store_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    cf_store_t *s = *s_p;
    mdb_env_close(s->env);
    sodium_memzero(s->hashkey, sizeof s->hashkey);
    free(s);
    *s_p = NULL;
}

int cf_store_begin(cf_store_t *s, bool rdonly, MDB_txn **ret)
{
    int rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, ret);
    if (rc == MDB_MAP_RESIZED) {
        mdb_env_set_mapsize(s->env, 0);
        rc = mdb_txn_begin(s->env, NULL, rdonly ? MDB_RDONLY : 0, ret);
    }
    return s_note(s, rc);
}

int cf_store_commit(cf_store_t *s, MDB_txn *txn)
{
    return s_note(s, mdb_txn_commit(txn));
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
        return cf_store_err(rc);
    s->map_size = next;
    s->map_full = false;
    return 0;
}

int cf_store_get(cf_store_t *s, MDB_txn *txn, cf_db_t db, const void *key,
                 size_t klen, MDB_val *val)
{
    MDB_val k = {klen, (void *)key};
    return s_note(s, mdb_get(txn, s->dbi[db], &k, val));
}

int cf_store_put(cf_store_t *s, MDB_txn *txn, cf_db_t db, const void *key,
                 size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    return s_note(s, mdb_put(txn, s->dbi[db], &k, &v, 0));
}

int cf_store_del(cf_store_t *s, MDB_txn *txn, cf_db_t db, const void *key, size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc = mdb_del(txn, s->dbi[db], &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : s_note(s, rc);
}

int cf_store_backup(cf_store_t *s, const char *dir, cf_error_t *reterr)
{
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot create backup directory: %s",
                            strerror(errno));
    int rc = mdb_env_copy2(s->env, dir, MDB_CP_COMPACT);
    if (rc != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "backup failed: %s", mdb_strerror(rc));
    return 0;
}

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
    mdb_env_close(s->env);
    s->env = NULL;
    int moved = rename(from, to);
    rmdir(tmp);
    MDB_txn *txn;
    if ((rc = s_env_open(s, dir)) != 0 || (rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot reopen the store after compaction: %s",
                            mdb_strerror(rc));
    if ((rc = s_dbis_open(s, txn)) != 0 || (rc = mdb_txn_commit(txn)) != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot reopen the store after compaction: %s",
                            mdb_strerror(rc));
    if (moved != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot swap in the compacted store: %s",
                            strerror(errno));
    return 0;
}

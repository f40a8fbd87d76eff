/* store.h: the LMDB environment behind the engine - one environment, named
 * sub-databases (docs/storage.md), and thin wrappers that turn LMDB's errno
 * values into CF_E* codes in one place.
 *
 * The store knows keys and bytes, not claims: records are encoded by
 * record.h, and what a transition writes is decided by the engine.  All
 * functions take the transaction explicitly; the engine never holds one past
 * a batch.
 */
#ifndef CF_STORE_H
#define CF_STORE_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cf_err.h"

/* The on-disk format this code writes and reads (meta "format"). */
#define CF_STORE_FORMAT 1

#define CF_DB_MAP(XX)                                                        \
    XX(META,       "meta")       /* "format", "hashkey" */                    \
    XX(CLAIMS,     "claims")     /* claim id -> claim record */               \
    XX(HISTORY,    "history")    /* claim id + seq(be32) -> event record */   \
    XX(IDX_STATE,  "idx_state")  /* workflow\0state\0claim id -> "" */        \
    XX(IDX_MEMBER, "idx_member") /* member hash(16) + claim id -> "" */       \
    XX(IDX_FLAG,   "idx_flag")   /* flag\0claim id -> "" */                   \
    XX(TIMERS,     "timers")     /* due(be64) + target + name -> event */     \
    XX(IDEM,       "idem")       /* scope + request id -> idem record */      \
    XX(IDEM_AGE,   "idem_age")   /* at(be64) + idem key -> "" */              \
    XX(MEMBERS,    "members")    /* member hash(16) -> consent record */      \
    XX(DOCS,       "docs")       /* sha256(32) -> document record */          \
    XX(WORKFLOWS,  "workflows")  /* name@version -> YAML source */            \
    XX(DOC_REFS,   "doc_refs")   /* sha256(32) -> claims holding it (be32) */ \
    XX(AUDIT,      "audit")      /* at(be64) + seq(be64) -> access record */  \
    XX(AUDIT_CLAIM, "audit_claim") /* claim id + audit key -> "" */          \
    XX(AUDIT_ACTOR, "audit_actor") /* actor\0 + audit key -> "" */

typedef enum {
#define CF_XX(s, name) CF_DB_##s,
    CF_DB_MAP(CF_XX)
#undef CF_XX
    CF_DB__COUNT
} cf_db_t;

typedef struct cf_store cf_store_t;

typedef struct {
    size_t map_size;   /* initial; 0 = 64 MiB */
    size_t map_max;    /* growth cap; 0 = none */
    bool no_grow;
} cf_store_opts_t;

/* Open or create the environment in dir (created, mode 0700, if missing).
 * 0, or CF_EUNAVAIL (cannot open; written by a newer format) with the reason
 * in *reterr. */
int cf_store_open(const char *dir, const cf_store_opts_t *opts, cf_store_t **ret,
                  cf_error_t *reterr);
void cf_store_destroy(cf_store_t **s_p);

MDB_env *cf_store_env(cf_store_t *s);
MDB_dbi cf_store_dbi(const cf_store_t *s, cf_db_t db);
/* The 32-byte key of the member-id hash (meta "hashkey"). */
const unsigned char *cf_store_hashkey(const cf_store_t *s);

/* Begin a transaction (write unless rdonly).  0 or CF_EUNAVAIL/CF_EINTERNAL. */
int cf_store_begin(cf_store_t *s, bool rdonly, MDB_txn **ret);
/* Commit: 0 (durable), or CF_EUNAVAIL (disk full / I/O error / map full,
 * which cf_store_map_full then tells; the transaction is gone). */
int cf_store_commit(cf_store_t *s, MDB_txn *txn);

/* Double the map (up to map_max).  Only with no transaction open.  0, or
 * CF_EUNAVAIL when growth is disabled or capped. */
int cf_store_grow(cf_store_t *s);

/* LMDB error -> CF_E*: MDB_MAP_FULL, ENOSPC, EIO -> CF_EUNAVAIL;
 * MDB_NOTFOUND -> CF_ENOTFOUND; anything else CF_EINTERNAL. */
int cf_store_err(int mdb_rc);
/* The last LMDB error seen by the wrappers was a full map (retry after
 * cf_store_grow). */
bool cf_store_map_full(const cf_store_t *s);
void cf_store_clear_map_full(cf_store_t *s);

/* get: 0 and *val (valid until the next write in txn or its end), or
 * CF_ENOTFOUND, or CF_EINTERNAL. */
int cf_store_get(cf_store_t *s, MDB_txn *txn, cf_db_t db, const void *key,
                 size_t klen, MDB_val *val);
int cf_store_put(cf_store_t *s, MDB_txn *txn, cf_db_t db, const void *key,
                 size_t klen, const void *val, size_t vlen);
/* del: 0 also when the key was absent. */
int cf_store_del(cf_store_t *s, MDB_txn *txn, cf_db_t db, const void *key, size_t klen);

/* Rewrite the environment in place, compacted: a compacting copy (free
 * pages left out, so bytes of deleted records are not carried over) is
 * swapped in for data.mdb and the environment reopened.  No transaction may
 * be open.  0 or CF_EUNAVAIL (the old file is then still in use). */
int cf_store_compact(cf_store_t *s, const char *dir, cf_error_t *reterr);

/* Copy the environment, compacted, to dir (created if missing; must hold no
 * data.mdb).  0 or CF_EUNAVAIL with the reason. */
int cf_store_backup(cf_store_t *s, const char *dir, cf_error_t *reterr);

/* Big-endian helpers for keys that sort by number. */
void cf_be64_put(unsigned char *p, uint64_t v);
uint64_t cf_be64_get(const unsigned char *p);
void cf_be32_put(unsigned char *p, uint32_t v);
uint32_t cf_be32_get(const unsigned char *p);

#endif

/* store.h: the only door to LMDB.
 *
 * One environment with named sub-databases (docs/storage.md lists them and
 * their keys; schema.h encodes them).  The store knows databases, keys and
 * bytes - not claims.  Everything above it reads and writes through an
 * opaque transaction (cf_txn_t): get, put, del, a prefix scan, and ONE
 * commit function that every writer uses (requests, fired timers, workflow
 * registration, purge, the store's own meta records).
 *
 * The commit path.  A write transaction that changed anything commits as
 * the next batch sequence number (meta "seq", stored in the same
 * transaction, so it is durable exactly when the batch is).  Before LMDB
 * commits, a commit hook - when one is set - is handed the batch's complete
 * write set: every put and delete in order, as (database, key, value or
 * delete).  Replaying the write sets of batches 1..n in order into an empty
 * store (cf_store_apply) gives the same logical content and sequence: this
 * is what replication and the write-set test build on.  Without a hook the
 * write set is not recorded at all (one branch per write).
 *
 * Errors are the engine's CF_E* codes, converted from LMDB's in one place
 * (s_err in store.c): MDB_NOTFOUND -> CF_ENOTFOUND; full map, full disk, I/O
 * -> CF_EUNAVAIL; anything else CF_EINTERNAL.
 *
 * Threads: one thread writes.  A read transaction may be used by another
 * thread (the environment is opened MDB_NOTLS), one transaction per thread.
 */
#ifndef CF_STORE_H
#define CF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cf_err.h"

/* The on-disk format this code writes and reads (meta "format"). */
#define CF_STORE_FORMAT 1

/* The databases.  The index of each is part of the write-set format, so new
 * databases are added at the end. */
#define CF_DB_MAP(XX)                                                        \
    XX(META,       "meta")       /* "format", "hashkey", "seq" */             \
    XX(CLAIMS,     "claims")     /* claim id -> claim record */               \
    XX(HISTORY,    "history")    /* claim id + seq(be32) -> event record */   \
    XX(IDX_STATE,  "idx_state")  /* workflow\0state\0claim id -> "" */        \
    XX(IDX_MEMBER, "idx_member") /* member hash(16) + claim id -> "" */       \
    XX(IDX_FLAG,   "idx_flag")   /* flag\0claim id -> "" */                   \
    XX(TIMERS,     "timers")     /* due(be64) + kind + target + name -> event */ \
    XX(IDEM,       "idem")       /* scope + request id -> idem record */      \
    XX(IDEM_AGE,   "idem_age")   /* at(be64) + idem key -> "" */              \
    XX(MEMBERS,    "members")    /* member hash(16) -> consent record */      \
    XX(DOCS,       "docs")       /* sha256(32) -> document record */          \
    XX(WORKFLOWS,  "workflows")  /* name@version -> YAML source */            \
    XX(DOC_REFS,   "doc_refs")   /* sha256(32) -> claims holding it (be32) */ \
    XX(AUDIT,      "audit")      /* at(be64) + seq(be64) -> access record */  \
    XX(AUDIT_CLAIM, "audit_claim") /* claim id + audit key -> "" */          \
    XX(AUDIT_ACTOR, "audit_actor") /* actor\0 + audit key -> "" */        \
    XX(IDX_CLOSED, "idx_closed") /* closed at(be64) + claim id -> "" */ \
    XX(CHANGES,    "changes")    /* batch(be64) + n(be32) -> change record */ \
    XX(UNDO,       "undo")       /* batch(be64) -> sha256(write set) + undo set; \
                                    a node's own, never in a write set */ \
    XX(REPS,       "reps")       /* member hash + representative hash -> representation */ \
    XX(REPS_BY,    "reps_by")    /* representative hash + member hash -> "" */ \
    XX(COUNTS,     "counts")     /* 's' + workflow\0state\0 | 'f' + flag\0 -> count (be64) */

typedef enum {
#define CF_XX(s, name) CF_DB_##s,
    CF_DB_MAP(CF_XX)
#undef CF_XX
    CF_DB__COUNT
} cf_db_t;

/* A database's name ("claims"), or NULL for an index out of range. */
const char *cf_db_name(cf_db_t db);

typedef struct cf_store cf_store_t;
typedef struct cf_txn cf_txn_t;
typedef struct cf_wset cf_wset_t;

/* Bytes borrowed from the store: valid until the next write in the same
 * transaction, or its end. */
typedef struct {
    const void *data;
    size_t len;
} cf_bytes_t;

/* Called with each batch's write set before LMDB commits it (seq is the
 * batch's sequence number).  Return 0 to let the commit go ahead; anything
 * else aborts the batch and cf_txn_commit returns CF_EUNAVAIL.  If LMDB's
 * own commit then fails (disk full), the hook is called once more with the
 * same seq and ws NULL: the batch it accepted did not commit. */
typedef int (*cf_commit_hook_fn)(void *ctx, uint64_t seq, const cf_wset_t *ws);

typedef struct {
    size_t map_size;          /* initial; 0 = 64 MiB */
    size_t map_max;           /* growth cap; 0 = none */
    bool no_grow;
    /* Open an empty directory without writing the meta records: a replay
     * (or replica) target whose first write set brings them. */
    bool bare;
    cf_commit_hook_fn hook;   /* may be NULL; also sees the meta batch of a new store */
    void *hook_ctx;
    /* Commit with one fsync (the data pages) and leave the meta page's to
     * cf_store_sync (LMDB's MDB_NOMETASYNC): a batch is then durable only
     * once a sync that began after its commit returns (or the next commit
     * does).  The store stays consistent across any crash either way. */
    bool defer_meta_sync;
    /* Keep each recorded batch's undo set - the values its writes replaced
     * - in the database `undo`, in the batch's own transaction, until
     * cf_store_undo_acked says the batch is safe: a cluster's leader
     * commits a batch before the log holds it, and must be able to take it
     * back (cf_store_rollback) if the log never does. */
    bool undo;
} cf_store_opts_t;

/* Open or create the environment in dir (created, mode 0700, if missing).
 * 0, or CF_EUNAVAIL (cannot open; written by a newer format; data.mdb
 * shorter than its meta pages say - a truncated copy) with the reason in
 * *reterr, or CF_EINTERNAL (out of memory). */
int cf_store_open(const char *dir, const cf_store_opts_t *opts, cf_store_t **ret,
                  cf_error_t *reterr);
/* Close.  Accepts NULL; sets *s_p to NULL.  No transaction may be open. */
void cf_store_destroy(cf_store_t **s_p);

/* The 32-byte key of the member-id hash (meta "hashkey"). */
const unsigned char *cf_store_hashkey(const cf_store_t *s);
/* The sequence number of the last committed batch (0: none). */
uint64_t cf_store_seq(const cf_store_t *s);
/* With defer_meta_sync: make every batch committed so far durable (an
 * fdatasync of the environment); *ret_seq is the last batch it covers.
 * The one function that may run on a thread other than the writer's, one
 * such thread at a time, concurrently with transactions and commits.
 * 0 or CF_EUNAVAIL (I/O error). */
int cf_store_sync(cf_store_t *s, uint64_t *ret_seq);
bool cf_store_defers_sync(const cf_store_t *s);
/* Nanoseconds spent in LMDB's commits (their fsyncs), summed since open:
 * what the daemon's profile subtracts from a batch's run. */
uint64_t cf_store_commit_ns(const cf_store_t *s);
/* Every commit's duration, counted since open in CF_STORE_HIST buckets of a
 * quarter octave each (bucket b holds [cf_store_hist_lower_us(b),
 * cf_store_hist_lower_us(b + 1)) µs; the last one everything above 115 ms):
 * the daemon's profile logs it, so a benchmark sees the commits' tail, not
 * only their sum. */
#define CF_STORE_HIST 64
const uint64_t *cf_store_commit_hist(const cf_store_t *s);
uint64_t cf_store_hist_lower_us(int bucket);
/* Replace the commit hook (NULL: none). */
void cf_store_set_hook(cf_store_t *s, cf_commit_hook_fn hook, void *ctx);

/* ------------------------------------------------------ transactions --- */
/* Begin a transaction (write unless rdonly).  One write transaction at a
 * time.  0, or CF_EUNAVAIL / CF_EINTERNAL. */
int cf_store_begin(cf_store_t *s, bool rdonly, cf_txn_t **ret);

/* get: 0 and *val (borrowed, see cf_bytes_t), CF_ENOTFOUND, or
 * CF_EINTERNAL. */
int cf_txn_get(cf_txn_t *t, cf_db_t db, const void *key, size_t klen, cf_bytes_t *val);
/* put / del (del: 0 also when the key was absent).  0, CF_EUNAVAIL (map or
 * disk full; cf_store_map_full tells which) or CF_EINTERNAL.  After any
 * failed write the transaction is failed (cf_txn_failed): it can only be
 * aborted. */
int cf_txn_put(cf_txn_t *t, cf_db_t db, const void *key, size_t klen, const void *val,
               size_t vlen);
int cf_txn_del(cf_txn_t *t, cf_db_t db, const void *key, size_t klen);

/* A scan callback's verdict on the entry it was shown. */
enum {
    CF_SCAN_NEXT = 0,    /* go on */
    CF_SCAN_STOP = 1,    /* end the scan; cf_txn_scan returns 0 */
    CF_SCAN_DEL = 2,     /* delete this entry (a write), then go on */
};
/* k and v are borrowed for the call.  Returns a CF_SCAN_* verdict, or a
 * negative CF_E* that ends the scan and is returned by cf_txn_scan. */
typedef int (*cf_scan_fn)(void *ctx, cf_bytes_t k, cf_bytes_t v);

/* Walk db in key order from the first key >= from[0..fromlen) (the first
 * key when fromlen is 0) while a key starts with from[0..prefixlen)
 * (prefixlen <= fromlen; 0: to the end).  0, the callback's error, or a
 * store error. */
int cf_txn_scan(cf_txn_t *t, cf_db_t db, const void *from, size_t fromlen, size_t prefixlen,
                cf_scan_fn fn, void *ctx);
/* The first / last entry of db: 0, or CF_ENOTFOUND when it is empty. */
int cf_txn_first(cf_txn_t *t, cf_db_t db, cf_bytes_t *k, cf_bytes_t *v);
int cf_txn_last(cf_txn_t *t, cf_db_t db, cf_bytes_t *k, cf_bytes_t *v);
/* The number of entries in db. */
int cf_txn_count(cf_txn_t *t, cf_db_t db, uint64_t *ret);

/* A write failed: the transaction can only be aborted. */
bool cf_txn_failed(const cf_txn_t *t);
/* Writes so far (puts and deletes). */
size_t cf_txn_writes(const cf_txn_t *t);

/* The one commit.  A read transaction, or a write transaction that wrote
 * nothing, ends without writing (seq unchanged).  Otherwise the batch gets
 * the next sequence number, the hook sees its write set, and LMDB commits
 * with fsync: on 0 the batch is durable.  *ret_seq (may be NULL) is the
 * store's sequence after the call.  CF_EUNAVAIL when the transaction had
 * failed, the hook refused, or the disk/map is full (nothing of the batch
 * is stored).  The transaction is gone in every case; *t_p becomes NULL. */
int cf_txn_commit(cf_txn_t **t_p, uint64_t *ret_seq);
/* Abandon a transaction.  Accepts NULL; sets *t_p to NULL. */
void cf_txn_abort(cf_txn_t **t_p);

/* ----------------------------------------------------------- write sets --- */
/* The write set's encoding: every put and delete of the batch in the order
 * they were made (msgpack, docs/storage.md "Write sets").  Borrowed, valid
 * during the hook call. */
cf_bytes_t cf_wset_encoded(const cf_wset_t *ws);

/* Apply one encoded write set in one transaction, as batch `seq` of the
 * encoding, which must be the store's next (cf_store_seq + 1).  0,
 * CF_EBADREQ (not a write set: the reason in *reterr), CF_ECONFLICT (not
 * the next sequence), or CF_EUNAVAIL. */
int cf_store_apply(cf_store_t *s, const void *enc, size_t len, cf_error_t *reterr);

/* ----------------------------------------------------------------- undo --- */
/* Batches up to seq are safe: their undo records go with the next batch
 * (or cf_store_undo_forget). */
void cf_store_undo_acked(cf_store_t *s, uint64_t seq);
/* The SHA-256 of batch seq's write set, from its undo record: 0, or
 * CF_ENOTFOUND (no undo record: the batch was acknowledged, or applied). */
int cf_store_undo_sha(cf_store_t *s, uint64_t seq, unsigned char sha[32]);
/* Drop the undo records up to seq, in a transaction of their own that is
 * not a batch (seq unchanged).  0 or CF_EUNAVAIL. */
int cf_store_undo_forget(cf_store_t *s, uint64_t seq);
/* Take back the batches after to_seq, newest first, with their undo
 * records, in one transaction that sets the sequence to to_seq.  0,
 * CF_ENOTFOUND (a batch has no undo record: it cannot be taken back), or
 * CF_EUNAVAIL.  No transaction may be open. */
int cf_store_rollback(cf_store_t *s, uint64_t to_seq, cf_error_t *reterr);

/* ---------------------------------------------------------------- growth --- */
/* Double the map (up to map_max).  Only with no transaction open.  0, or
 * CF_EUNAVAIL when growth is disabled or capped. */
int cf_store_grow(cf_store_t *s);
/* The last failed write or commit failed because the map was full (retry
 * after cf_store_grow). */
bool cf_store_map_full(const cf_store_t *s);

/* ------------------------------------------------------------- copies --- */
/* Rewrite the environment in place, compacted: a compacting copy (free
 * pages left out, so bytes of deleted records are not carried over) is
 * swapped in for data.mdb and the environment reopened.  No transaction may
 * be open.  0 or CF_EUNAVAIL with the reason (the old file is then still in
 * use and complete). */
int cf_store_compact(cf_store_t *s, const char *dir, cf_error_t *reterr);

/* Copy the environment in src_dir (open in another process or not),
 * compacted, to dst_dir/data.mdb through a temporary name renamed when the
 * copy is complete and synced, so a killed copy never leaves a
 * complete-looking data.mdb.  dst_dir is created if missing and must hold no
 * data.mdb.  0 or CF_EUNAVAIL with the reason. */
int cf_store_copy(const char *src_dir, const char *dst_dir, cf_error_t *reterr);

/* Read-only facts about the store in dir, without writing to it: the
 * number of claims, the size of the used part (for `claimctl backup`'s
 * summary) and the batch sequence.  0 or CF_EUNAVAIL with the reason. */
typedef struct {
    uint64_t claims;
    uint64_t used_bytes;
    uint64_t seq;
} cf_store_facts_t;
int cf_store_inspect(const char *dir, cf_store_facts_t *ret, cf_error_t *reterr);

/* --------------------------------------------------------------- faults --- */
/* Test support: make the n-th (1-based) put, del or commit from now fail as
 * an I/O error would (CF_EUNAVAIL, not a full map); n 0 disarms.  One fault
 * at a time.  The cost when disarmed is one branch. */
typedef enum { CF_FAULT_PUT, CF_FAULT_DEL, CF_FAULT_COMMIT } cf_fault_t;
void cf_store_fault(cf_store_t *s, cf_fault_t kind, unsigned n);

#endif

/* engine.h: the claims engine - one object that owns the store, the compiled
 * workflows and calendars, and the clock, and applies requests in batches.
 *
 * A request is one protocol frame (a msgpack map, docs/protocol.md) plus where
 * it came from.  cf_engine_run applies a batch of requests in ONE LMDB write
 * transaction and commits it with one fsync (group commit); each request is
 * validated completely before it writes anything, so a request that fails
 * leaves no trace and does not disturb the others in its batch.  When the run
 * returns, every reply with ok: true is durable.  If the commit itself fails
 * (disk full), every reply of the batch that wrote is replaced by an
 * `unavailable` error and nothing of the batch is stored.
 *
 * The engine is not thread-safe: one thread drives it (claimflowd's main
 * loop, a test, the benchmark).  It never logs or prints.
 */
#ifndef CF_ENGINE_H
#define CF_ENGINE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "cf_err.h"
#include "cf_time.h"
#include "diag.h"
#include "proto.h"
#include "store.h"

typedef struct cf_engine cf_engine_t;

typedef struct {
    const char *data_dir;        /* LMDB directory; created if missing */
    const char *workflows_dir;   /* workflow *.yaml and calendars.yaml */
    size_t map_size;             /* initial map size; 0 = 64 MiB */
    size_t map_max;              /* the map never grows past this; 0 = no limit */
    bool no_grow;                /* never grow: a full map is `unavailable` */
    int64_t idem_retention;      /* seconds an idempotency entry is kept; 0 = 7 days */
    int64_t audit_retention;     /* seconds an access-log entry is kept; 0 = 1825 days */
    unsigned consent_changes_per_day;  /* per member and UTC day; 0 = 20 */
    size_t max_document;         /* largest document body; 0 = 10 MiB */
    bool manual_clock;           /* time moves only by clock.set/advance */
    cf_time_t manual_start;      /* the manual clock's first reading */
    int64_t purge_after;         /* purge without a date: claims closed longer ago
                                    than this many seconds; 0 = a date is needed */
    bool show_operator_ids;      /* a member's access log names the operators
                                    (config privacy.show_operator_ids_to_members) */
    const cf_operator_t *operators;  /* copied */
    size_t noperators;
    /* Called with every committed batch's write set (store.h), from the
     * store's creation on; NULL: none (and no cost). */
    cf_commit_hook_fn commit_hook;
    void *hook_ctx;
    /* Commit with one fsync and make batches durable with cf_engine_sync,
     * which a second thread runs while the next batch is prepared (store.h
     * defer_meta_sync; claimflowd's default). */
    bool defer_sync;
    /* A replica's view of its cluster, which `ping` reports; borrowed for
     * the engine's life (the daemon updates it).  NULL: a single node. */
    const cf_cluster_view_t *cluster;
    /* Keep undo records of each batch until the store is told it is safe
     * (store.h): a cluster's pipelined leader. */
    bool undo;
} cf_engine_opts_t;

/* Open (or create) the store in opts->data_dir, load the workflows and
 * calendars of opts->workflows_dir, check them against the definitions the
 * store already holds.  0 and a new engine (free with cf_engine_destroy), or:
 * CF_EBADREQ  a workflow or calendar file is invalid, a workflow names an
 *             unknown calendar, or a file changed under a version the store
 *             already has (each problem appended to *reterr);
 * CF_EUNAVAIL the store cannot be opened or was written by a newer format
 *             (one diagnostic saying which);
 * CF_EINTERNAL out of memory. */
int cf_engine_open(const cf_engine_opts_t *opts, cf_engine_t **ret, cf_diags_t *reterr);

/* Close the store.  Accepts NULL; sets *e_p to NULL. */
void cf_engine_destroy(cf_engine_t **e_p);

/* ------------------------------------------------------------ requests --- */
/* Apply reqs[0..n) in one transaction; replies[i] (initialised by the caller
 * with cf_reply_init; previous contents are replaced) answers reqs[i].
 * Returns 0, or CF_EUNAVAIL when the batch could not be committed (the
 * writing replies then say `unavailable`); the replies are always filled. */
int cf_engine_run(cf_engine_t *e, const cf_request_t *reqs, size_t n,
                  cf_reply_t *replies);

/* ----------------------------------------------------- published events --- */
/* Events committed by the last cf_engine_run or cf_engine_fire_due, in commit
 * order, for the events socket: topic "<workflow>/<event>" and the event map.
 * Borrowed; valid until the next run, fire, take or destroy. */
typedef struct {
    const char *topic;
    const char *body;
    size_t body_len;
} cf_pub_t;

size_t cf_engine_published(const cf_engine_t *e, const cf_pub_t **ret);

/* -------------------------------------------------------- clock, timers --- */
/* The engine's clock: real, or manual (opts.manual_clock). */
cf_time_t cf_engine_now(const cf_engine_t *e);
bool cf_engine_clock_is_manual(const cf_engine_t *e);

/* The due time of the earliest pending timer, or 0 when none. */
cf_time_t cf_engine_next_due(cf_engine_t *e);

/* Fire every timer due at the engine's now, in due order, each exactly once,
 * in batches of at most `max` per transaction; *fired (may be NULL) counts
 * them.  A timer that fell due while the daemon was down fires late, its
 * lateness in seconds in the event's data.  0, or CF_EUNAVAIL. */
int cf_engine_fire_due(cf_engine_t *e, size_t max, size_t *fired);

/* ------------------------------------------------------------ maintenance --- */
/* The sequence number of the last committed batch (store.h). */
uint64_t cf_engine_seq(const cf_engine_t *e);
/* Microseconds spent in the store's commits since open (their fsyncs). */
uint64_t cf_engine_commit_us(const cf_engine_t *e);
/* The store's commits by duration (store.h, CF_STORE_HIST buckets). */
const uint64_t *cf_engine_commit_hist(const cf_engine_t *e);

/* With opts.defer_sync: make every batch committed so far durable; *ret_seq
 * is the last one covered.  Safe on one thread other than the engine's,
 * concurrently with it (it only syncs the store's file).  Without
 * defer_sync every commit is durable already: returns at once.  0 or
 * CF_EUNAVAIL. */
int cf_engine_sync(cf_engine_t *e, uint64_t *ret_seq);

/* A purge committed but the compaction that removes the erased bytes from
 * the file did not finish (its error in *reterr when not NULL): it is
 * retried at the next purge and at the next open. */
bool cf_engine_compact_failed(const cf_engine_t *e, cf_error_t *reterr);

/* Test support: the store under the engine (fault injection, write-set
 * hooks).  Borrowed until cf_engine_destroy. */
cf_store_t *cf_engine_store(cf_engine_t *e);

/* claimflow's version string (meson's project version). */
const char *cf_engine_version(void);

/* The LMDB environment path, for tools (mdb_stat). */
const char *cf_engine_data_dir(const cf_engine_t *e);

#endif

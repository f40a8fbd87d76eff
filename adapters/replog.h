/* replog.h: the replicated log a cluster of claimflowd nodes shares, and the
 * leadership over it (docs/CLUSTER.md).  The interface is narrow on purpose
 * - campaign/renew/resign, append-if-leader, read from, trim, and a small
 * directory of nodes - so that another consensus store could replace etcd
 * (replog_etcd.c is the one backend).
 *
 * The log holds batches: entry `seq` is the write set (store.h) of the
 * batch the store committed as `seq`, appended by the leader of `epoch`.
 * An append succeeds only while its epoch's leadership holds and the slot
 * is empty, so the log is contiguous and every entry has one author.
 * Epochs are the backend's own ordering of leaderships (etcd: the create
 * revision of the leader key) and never decrease along the log.
 *
 * Every call blocks, bounded by the backend's timeout.  Messages name the
 * call and the reason, never a key's or value's content.
 */
#ifndef CF_REPLOG_H
#define CF_REPLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cf_err.h"

typedef struct cf_replog cf_replog_t;

typedef struct {
    const char *const *urls;      /* the backend's endpoints */
    size_t nurls;
    const char *prefix;           /* every key of this cluster under it */
    const char *node;             /* this node's name */
    int64_t lease_seconds;
    long timeout_ms;              /* per call */
    const char *tls_ca, *tls_cert, *tls_key;
} cf_replog_opts_t;

int cf_replog_open(const cf_replog_opts_t *o, cf_replog_t **ret, cf_error_t *reterr);
void cf_replog_close(cf_replog_t **l_p);

/* ---------------------------------------------------------- leadership --- */
/* Try to become the leader: only when there is none and the log has no
 * entry `next` (so the caller has applied the whole log).  0 with *won, and
 * when won *epoch; or CF_EUNAVAIL. */
int cf_replog_campaign(cf_replog_t *l, uint64_t next, bool *won, uint64_t *epoch,
                       cf_error_t *reterr);
/* Renew the leader's lease: 0 and *ttl_ms, the lease's time left measured
 * from before the call (0: the lease is gone: leadership is lost). */
int cf_replog_renew(cf_replog_t *l, int64_t *ttl_ms, cf_error_t *reterr);
/* Give leadership up (best effort: the lease also lapses by itself). */
void cf_replog_resign(cf_replog_t *l);
/* The current leader: its node name into node (empty: none) and epoch. */
int cf_replog_leader(cf_replog_t *l, char *node, size_t cap, uint64_t *epoch,
                     cf_error_t *reterr);

/* ----------------------------------------------------------------- log --- */
/* Append batch seq's write set as the leader of epoch, written at `at`
 * (seconds, for trimming by age).  0: appended.  CF_ECONFLICT: not appended
 * - the leadership is lost or the slot is taken.  CF_EUNAVAIL: the outcome
 * is unknown. */
int cf_replog_append(cf_replog_t *l, uint64_t epoch, uint64_t seq, const void *ws, size_t len,
                     int64_t at, cf_error_t *reterr);

/* Append consecutive batches v[0..n) (v[i].seq = v[0].seq + i), as many
 * to one backend transaction as fit (one request each way: what lets the
 * leader's next batches ride on one round trip).  *appended: how many made
 * it, in order, whatever the result.  0, CF_ECONFLICT or CF_EUNAVAIL as
 * cf_replog_append. */
typedef struct {
    uint64_t seq;
    const void *ws;
    size_t len;
} cf_replog_entry_t;
int cf_replog_append_many(cf_replog_t *l, uint64_t epoch, const cf_replog_entry_t *v, size_t n,
                          int64_t at, size_t *appended, cf_error_t *reterr);

/* One entry as read: its write set (complete, also when it travelled in
 * chunks) and the epoch that appended it.  Borrowed for the call. */
typedef int (*cf_replog_fn)(void *ctx, uint64_t seq, uint64_t epoch, const void *ws,
                            size_t len);

/* Call fn with entries from..from+max-1 that exist, in order, stopping at
 * the first missing one, or when fn returns non-zero (returned).  *n: the
 * entries given to fn.  With first, when there were none: *first is the
 * log's first entry (0: the log is empty), so a caller behind the trimmed
 * head can tell. */
int cf_replog_read(cf_replog_t *l, uint64_t from, size_t max, cf_replog_fn fn, void *ctx,
                   size_t *n, uint64_t *first, cf_error_t *reterr);

/* Drop old entries: those appended more than retention seconds before now
 * and below every node's applied seq (cf_replog_applied), never the last
 * one all have applied.  *head: the new first entry (0: nothing dropped).
 * 0 or CF_EUNAVAIL. */
int cf_replog_trim(cf_replog_t *l, int64_t now, int64_t retention, uint64_t *head,
                   cf_error_t *reterr);

/* --------------------------------------------------------------- watch --- */
/* A thread that watches the log and the leader key and writes a byte to fd
 * whenever either changes (a new batch, a lapsed or new leader): a
 * follower reads the log when told, not on a timer.  It reconnects by
 * itself; a missed change only costs the reader's fallback poll.  NULL
 * with reterr on failure to start. */
typedef struct cf_replog_watch cf_replog_watch_t;
int cf_replog_watch_start(const cf_replog_opts_t *o, int fd, cf_replog_watch_t **ret,
                          cf_error_t *reterr);
void cf_replog_watch_stop(cf_replog_watch_t **w_p);

/* ------------------------------------------------------------- nodes --- */
/* Publish this node's description (JSON: its endpoints, version, workflow
 * digest) for the others and for clients. */
int cf_replog_publish(cf_replog_t *l, const char *json, cf_error_t *reterr);
/* Another node's description (NUL-terminated, free it), or CF_ENOTFOUND. */
int cf_replog_describe(cf_replog_t *l, const char *node, char **json, cf_error_t *reterr);
/* Record how far this node has applied (trimming waits for every node). */
int cf_replog_applied(cf_replog_t *l, uint64_t seq, cf_error_t *reterr);

#endif

/* syncer.h: the thread that makes committed batches durable while the
 * daemon's loop goes on (claimflowd --sync deferred, the default).
 *
 * The engine commits a batch with one fsync of its data pages and leaves
 * the meta page's (store.h defer_meta_sync).  After each commit the loop
 * kicks this thread, which runs cf_engine_sync - one fdatasync covering
 * every batch committed before it began - and reports the last batch it
 * covered through a pipe the loop polls.  Replies wait in the stage
 * (stage.h) until that report: `ok: true` still means durable on disk, and
 * the loop receives and runs batch N+1 while batch N's sync is in flight.
 * The rejected alternative, MDB_NOSYNC with syncs off-thread, would let
 * the kernel write a later meta page before earlier data pages: a power
 * loss could then corrupt the store, not only lose its last batches.
 */
#ifndef CF_SYNCER_H
#define CF_SYNCER_H

#include <stdint.h>

#include "engine.h"

typedef struct cf_syncer cf_syncer_t;

/* Start the thread for e (which must outlive it).  NULL with errno. */
cf_syncer_t *cf_syncer_new(cf_engine_t *e);
/* Sync everything committed so far, stop and join the thread; *ret_seq
 * (may be NULL) is the last batch made durable.  Accepts NULL. */
void cf_syncer_destroy(cf_syncer_t **s_p, uint64_t *ret_seq);

/* A batch committed: sync soon (several kicks before a sync make one). */
void cf_syncer_kick(cf_syncer_t *s);
/* Readable when a sync finished: poll it with the sockets. */
int cf_syncer_fd(const cf_syncer_t *s);
/* Drain the fd: the last batch made durable so far (0 when none).  A
 * failed sync is retried by the thread; *failures counts them (may be
 * NULL). */
uint64_t cf_syncer_take(cf_syncer_t *s, uint64_t *failures);

#endif

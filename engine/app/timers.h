/* timers.h: durable timers - firing the due ones inside a batch. */
#ifndef CF_TIMERS_H
#define CF_TIMERS_H

#include "claims.h"

/* Fire every timer due at b->now, at most max, in due order, inside the
 * batch's transaction; *fired counts them.  0 or a store error (the batch
 * must then be aborted). */
int cf_timers_fire(cf_batch_t *b, size_t max, size_t *fired);

/* The due time of the soonest pending timer (claim or member) in txn:
 * 0, or CF_ENOTFOUND when none is pending. */
int cf_timers_next_due(cf_txn_t *txn, cf_time_t *due);

#endif

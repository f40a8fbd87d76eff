/* dispatch.h: one request through the pipeline's first stage - decode,
 * allowed keys, authorisation, idempotency - to its op handler, and the
 * reply packed (dispatch.c). */
#ifndef CF_DISPATCH_H
#define CF_DISPATCH_H

#include "claims.h"
#include "proto.h"

/* Apply req in batch b; r (initialised) receives the reply, r->wrote when
 * the request changed the store.  A failed store write leaves the batch
 * failed (cf_batch_failed): the caller aborts and re-runs the batch. */
void cf_dispatch(cf_batch_t *b, const cf_request_t *req, cf_reply_t *r);

#endif

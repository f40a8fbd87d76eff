/* stage.h: the stage between commit and reply.
 *
 * A committed batch's replies and events wait here until the batch is
 * released; only then do they go out.  Today a batch is released as soon
 * as its commit returns (one node: durable on disk is the promise).  With
 * replicas, a batch is released when the log holds it (cf_stage_ack), and
 * the daemon's loop goes on running batch N+1 while batch N waits: the
 * stage is a FIFO, so replies still leave in commit order.
 *
 * A batch's watermark is the store's sequence number when it committed -
 * its own, or, for a batch that wrote nothing, the last committed one - so a
 * read that saw batch N's data is not answered before N is released.
 *
 * Ownership: the stage takes the envelope frames and the reply bodies it is
 * given (they are moved, not copied) and frees them when sent or at
 * destroy.  Not thread-safe; the daemon's loop owns it.
 */
#ifndef CF_STAGE_H
#define CF_STAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zmq.h>

#include "engine.h"

typedef struct cf_stage cf_stage_t;

/* What a release does with each message: the daemon's senders. */
typedef struct {
    /* Send a reply: its envelope frames then body (borrowed for the call). */
    void (*reply)(void *ctx, void *sock, zmq_msg_t *env, size_t nenv, const cf_reply_t *r);
    /* Publish one event. */
    void (*publish)(void *ctx, const char *topic, const char *body, size_t len);
    void *ctx;
} cf_stage_out_t;

/* delay_us: hold each batch at least this long after its commit (0: none) -
 * a stand-in for a replica's acknowledgement, for measuring the pipeline
 * (claimflowd --release-delay-us). */
cf_stage_t *cf_stage_new(const cf_stage_out_t *out, int64_t delay_us);
/* Release everything still held (each batch is durable), then free.
 * Accepts NULL; sets *s_p to NULL. */
void cf_stage_destroy(cf_stage_t **s_p);

/* Open a batch committed as `watermark`, at now_us (CLOCK_MONOTONIC). */
int cf_stage_begin(cf_stage_t *s, uint64_t watermark, int64_t now_us);
/* Add a reply to the open batch: env[0..nenv) and *r are moved in (r is
 * left empty, re-initialised). 0 or -1 (out of memory: sent at once). */
int cf_stage_reply(cf_stage_t *s, void *sock, zmq_msg_t *env, size_t nenv, cf_reply_t *r);
/* Add the events published by the engine's last run (copied). */
int cf_stage_events(cf_stage_t *s, const cf_pub_t *p, size_t n);
void cf_stage_end(cf_stage_t *s);

/* Forget, unsent, the held batches after seq: a cluster's leader whose log
 * never took them (their clients get no answer, and retry with the same
 * id).  Returns how many. */
size_t cf_stage_drop(cf_stage_t *s, uint64_t seq);

/* Batches up to seq are acknowledged (durable where the promise says). */
void cf_stage_ack(cf_stage_t *s, uint64_t seq);
/* Send every batch, in order, that is acknowledged and past its delay.
 * Returns the number of batches released. */
size_t cf_stage_release(cf_stage_t *s, int64_t now_us);
/* Microseconds until the first held batch may be released: -1 when none is
 * held, 0 when one is due now. */
int64_t cf_stage_wait_us(const cf_stage_t *s, int64_t now_us);

#endif

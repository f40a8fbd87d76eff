/* stage.c: the stage between commit and reply (stage.h).
 *
 * A ring of batches, each with its replies (envelope frames moved from the
 * receive slots, reply buffers moved from the engine's array) and its
 * events (copied: the engine reuses its own buffers at the next run).
 * Moving rather than copying keeps the cost of the stage at a few pointer
 * writes per reply when batches are released at once, as on one node.
 */
#include "stage.h"

#include <stdlib.h>
#include <string.h>

#define S_ENV_MAX 8

typedef struct {
    void *sock;
    zmq_msg_t env[S_ENV_MAX];
    size_t nenv;
    cf_reply_t r;
} s_reply_t;

typedef struct {
    char *topic;
    char *body;
    size_t len;
} s_event_t;

typedef struct {
    uint64_t watermark;
    int64_t release_at_us;
    s_reply_t *replies;
    size_t nreplies, capreplies;
    s_event_t *events;
    size_t nevents, capevents;
} s_batch_t;

struct cf_stage {
    cf_stage_out_t out;
    int64_t delay_us;
    uint64_t acked;
    s_batch_t *ring;           /* FIFO: head .. head + n - 1, modulo cap */
    size_t head, n, cap;
    s_batch_t *open;
};

cf_stage_t *cf_stage_new(const cf_stage_out_t *out, int64_t delay_us)
{
    cf_stage_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->out = *out;
    s->delay_us = delay_us > 0 ? delay_us : 0;
    return s;
}

static void s_batch_send(cf_stage_t *s, s_batch_t *b)
{
    for (size_t i = 0; i < b->nreplies; i++) {
        s_reply_t *r = &b->replies[i];
        s->out.reply(s->out.ctx, r->sock, r->env, r->nenv, &r->r);
        for (size_t j = 0; j < r->nenv; j++)
            zmq_msg_close(&r->env[j]);
        cf_reply_fini(&r->r);
    }
    for (size_t i = 0; i < b->nevents; i++) {
        s->out.publish(s->out.ctx, b->events[i].topic, b->events[i].body, b->events[i].len);
        free(b->events[i].topic);
        free(b->events[i].body);
    }
    b->nreplies = b->nevents = 0;
}

static void s_batch_free(s_batch_t *b)
{
    free(b->replies);
    free(b->events);
}

void cf_stage_destroy(cf_stage_t **s_p)
{
    if (!s_p || !*s_p)
        return;
    cf_stage_t *s = *s_p;
    /* Every held batch committed: what it answers is true. */
    for (size_t i = 0; i < s->n; i++)
        s_batch_send(s, &s->ring[(s->head + i) % s->cap]);
    for (size_t i = 0; i < s->cap; i++)
        s_batch_free(&s->ring[i]);
    free(s->ring);
    free(s);
    *s_p = NULL;
}

int cf_stage_begin(cf_stage_t *s, uint64_t watermark, int64_t now_us)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        s_batch_t *ring = calloc(cap, sizeof *ring);
        if (!ring)
            return -1;
        for (size_t i = 0; i < s->n; i++)
            ring[i] = s->ring[(s->head + i) % s->cap];
        /* The free slots keep their buffers for reuse. */
        for (size_t i = s->n; i < s->cap; i++)
            ring[i] = s->ring[(s->head + i) % s->cap];
        free(s->ring);
        s->ring = ring;
        s->head = 0;
        s->cap = cap;
    }
    s_batch_t *b = &s->ring[(s->head + s->n) % s->cap];
    s->n++;
    b->watermark = watermark;
    b->release_at_us = now_us + s->delay_us;
    b->nreplies = b->nevents = 0;
    s->open = b;
    return 0;
}

int cf_stage_reply(cf_stage_t *s, void *sock, zmq_msg_t *env, size_t nenv, cf_reply_t *r)
{
    s_batch_t *b = s->open;
    if (b->nreplies == b->capreplies) {
        size_t cap = b->capreplies ? b->capreplies * 2 : 64;
        s_reply_t *v = realloc(b->replies, cap * sizeof *v);
        if (!v || nenv > S_ENV_MAX) {
            if (v)
                b->replies = v;
            s->out.reply(s->out.ctx, sock, env, nenv, r);
            return -1;
        }
        b->replies = v;
        b->capreplies = cap;
    }
    s_reply_t *x = &b->replies[b->nreplies++];
    x->sock = sock;
    x->nenv = nenv;
    for (size_t i = 0; i < nenv; i++) {
        zmq_msg_init(&x->env[i]);
        zmq_msg_move(&x->env[i], &env[i]);
    }
    x->r = *r;            /* the body buffer moves with the struct */
    cf_reply_init(r);
    return 0;
}

int cf_stage_events(cf_stage_t *s, const cf_pub_t *p, size_t n)
{
    s_batch_t *b = s->open;
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (b->nevents == b->capevents) {
            size_t cap = b->capevents ? b->capevents * 2 : 64;
            s_event_t *v = realloc(b->events, cap * sizeof *v);
            if (!v) {
                s->out.publish(s->out.ctx, p[i].topic, p[i].body, p[i].body_len);
                rc = -1;
                continue;
            }
            b->events = v;
            b->capevents = cap;
        }
        s_event_t *e = &b->events[b->nevents];
        e->topic = strdup(p[i].topic);
        e->body = malloc(p[i].body_len ? p[i].body_len : 1);
        if (!e->topic || !e->body) {
            free(e->topic);
            free(e->body);
            s->out.publish(s->out.ctx, p[i].topic, p[i].body, p[i].body_len);
            rc = -1;
            continue;
        }
        memcpy(e->body, p[i].body, p[i].body_len);
        e->len = p[i].body_len;
        b->nevents++;
    }
    return rc;
}

void cf_stage_end(cf_stage_t *s)
{
    s->open = NULL;
}

static void s_batch_drop(s_batch_t *b)
{
    for (size_t i = 0; i < b->nreplies; i++) {
        for (size_t j = 0; j < b->replies[i].nenv; j++)
            zmq_msg_close(&b->replies[i].env[j]);
        cf_reply_fini(&b->replies[i].r);
    }
    for (size_t i = 0; i < b->nevents; i++) {
        free(b->events[i].topic);
        free(b->events[i].body);
    }
    b->nreplies = b->nevents = 0;
}

size_t cf_stage_drop(cf_stage_t *s, uint64_t seq)
{
    size_t dropped = 0;
    while (s->n) {
        s_batch_t *b = &s->ring[(s->head + s->n - 1) % s->cap];
        if (b->watermark <= seq)
            break;
        s_batch_drop(b);
        s->n--;
        dropped++;
    }
    return dropped;
}

void cf_stage_ack(cf_stage_t *s, uint64_t seq)
{
    if (seq > s->acked)
        s->acked = seq;
}

size_t cf_stage_release(cf_stage_t *s, int64_t now_us)
{
    size_t released = 0;
    while (s->n) {
        s_batch_t *b = &s->ring[s->head];
        if (b->watermark > s->acked || b->release_at_us > now_us)
            break;
        s_batch_send(s, b);
        s->head = (s->head + 1) % s->cap;
        s->n--;
        released++;
    }
    return released;
}

int64_t cf_stage_wait_us(const cf_stage_t *s, int64_t now_us)
{
    if (!s->n)
        return -1;
    const s_batch_t *b = &s->ring[s->head];
    if (b->watermark > s->acked)
        return -1;   /* waits for an acknowledgement, not for time */
    return b->release_at_us > now_us ? b->release_at_us - now_us : 0;
}

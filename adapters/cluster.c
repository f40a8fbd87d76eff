/* cluster.c: a replica's role, its log and its lease (cluster.h). */
#include "cluster.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <unistd.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cf_be.h"
#include "cf_version.h"
#include "replog.h"

/* A follower reads the log when its watch says something changed (a batch,
 * the leader key), at once again when a read found batches, and at least
 * this often: the watch is a wake-up, the read is the truth. */
#define S_POLL_US 100000
/* ... and who leads (campaigning when no one does), and whether the log
 * still holds our next batch, this often: the failover's detection time. */
#define S_CHECK_US 200000
/* Batches read per ask. */
#define S_READ_MAX 64
/* How often a node says how far it has applied, and the leader trims. */
#define S_APPLIED_US 1000000
#define S_TRIM_US 5000000
/* The leader stops serving this long before its lease could lapse: etcd
 * counts the lease from its own receipt of the renewal, we from before
 * sending it, and clocks drift. */
#define S_LEASE_MARGIN_US 500000

/* The appender: the leader's batches on their way to the log.  The loop's
 * commit hook queues a copy of each write set and goes on (LMDB commits the
 * batch with its undo record, the replies wait in the stage); this thread
 * appends what is queued - several batches per etcd transaction when they
 * queued up during the last one - and reports the last batch appended
 * through a pipe the loop polls.  If an append fails, the queue stops:
 * the loop steps down and takes back what the log does not hold. */
typedef struct {
    uint64_t seq;
    unsigned char *ws;
    size_t len;
} s_item_t;

typedef struct {
    pthread_t thread;
    bool running;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    s_item_t *q;
    size_t qhead, qn, qcap, qbytes;
    bool stop, failed;
    uint64_t acked;                     /* the last batch the log holds */
    uint64_t epoch;
    int64_t lease_end_us;               /* the loop's, copied at each renewal */
    char why[320];
    int pipe[2];
    cf_replog_t *log;                   /* its own: one etcd client per thread */
} s_appender_t;

/* Queued bytes beyond which the hook waits for the appender. */
#define S_QUEUE_BYTES ((size_t)64 << 20)

struct cf_cluster {
    cf_cluster_opts_t o;
    s_appender_t ap;
    bool pipelined;                     /* the hook queues (after the marker) */
    cf_replog_opts_t lo;
    cf_replog_watch_t *watch;           /* wakes the loop through ap.pipe */
    char *node, *data_dir, *portal, *operator, *events, *digest;
    cf_replog_t *log;
    cf_store_t *store;                  /* while follower */
    bool leader, lost;
    bool unresolved;                    /* undo records the log was not asked about */
    uint64_t epoch;                     /* of the last batch applied or appended */
    uint64_t leader_epoch;              /* the known leader's (follower) */
    uint64_t seq;                       /* applied (follower) / committed (leader) */
    uint64_t acked;                     /* leader: the last batch the log holds */
    uint64_t applied_published;
    int64_t lease_end_us, next_renew_us, next_poll_us, next_applied_us, next_trim_us;
    int64_t next_check_us;              /* follower: leader and gap checks */
    char leader_node[80];
    char *leader_portal, *leader_operator, *leader_events;
    cf_cluster_view_t view;
};

static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_log(const cf_cluster_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_log(const cf_cluster_t *c, const char *fmt, ...)
{
    if (!c->o.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->o.log(line);
}

static void s_view_update(cf_cluster_t *c)
{
    c->view.role = c->leader ? "leader" : "follower";
    c->view.epoch = c->leader ? c->epoch : c->leader_epoch;
    c->view.node = c->node;
    if (c->leader) {
        c->view.leader_node = c->node;
        c->view.leader_portal = c->portal;
        c->view.leader_operator = c->operator;
        c->view.leader_events = c->events;
    } else if (c->leader_node[0]) {
        c->view.leader_node = c->leader_node;
        c->view.leader_portal = c->leader_portal;
        c->view.leader_operator = c->leader_operator;
        c->view.leader_events = c->leader_events;
    } else {
        c->view.leader_node = c->view.leader_portal = NULL;
        c->view.leader_operator = c->view.leader_events = NULL;
    }
}

/* -------------------------------------------------------------- store --- */
static int s_store_open(cf_cluster_t *c, cf_error_t *reterr)
{
    /* bare: a new replica's first batches bring the meta records. */
    cf_store_opts_t so = {.map_size = c->o.map_size, .no_grow = c->o.no_grow, .bare = true};
    int rc = cf_store_open(c->data_dir, &so, &c->store, reterr);
    if (rc == 0)
        c->seq = cf_store_seq(c->store);
    return rc;
}

typedef struct {
    cf_cluster_t *c;
    cf_error_t *err;
} s_apply_t;

static int s_apply_one(void *ctx, uint64_t seq, uint64_t epoch, const void *ws, size_t len)
{
    s_apply_t *a = ctx;
    cf_cluster_t *c = a->c;
    if (epoch < c->epoch)
        return cf_error_set(a->err, CF_EINTERNAL,
                            "batch %" PRIu64 " of the log has epoch %" PRIu64
                            ", older than the %" PRIu64 " before it", seq, epoch, c->epoch);
    int rc = cf_store_apply(c->store, ws, len, a->err);
    /* A full map grows (as the engine's does) and the batch goes again. */
    while (rc == CF_EUNAVAIL && cf_store_map_full(c->store) && cf_store_grow(c->store) == 0)
        rc = cf_store_apply(c->store, ws, len, a->err);
    if (rc != 0)
        return rc;
    c->seq = seq;
    c->epoch = epoch;
    return 0;
}

static int s_sha_one(void *ctx, uint64_t seq, uint64_t epoch, const void *ws, size_t len)
{
    (void)seq, (void)epoch;
    crypto_hash_sha256(ctx, ws, len);
    return 0;
}

/* Batches this store committed as a leader whose log may not hold them
 * (their undo records): the newest the log holds with the same write set
 * is kept with all before it; those after it are taken back, newest first.
 * Then the store is exactly a prefix of the log. */
static int s_resolve_undo(cf_cluster_t *c, cf_error_t *reterr)
{
    for (;;) {
        uint64_t s = cf_store_seq(c->store);
        unsigned char mine[32], theirs[32];
        int rc = s ? cf_store_undo_sha(c->store, s, mine) : CF_ENOTFOUND;
        if (rc == CF_ENOTFOUND)
            break;
        if (rc != 0)
            return cf_error_set(reterr, rc, "cannot read the store's undo records");
        size_t n = 0;
        if ((rc = cf_replog_read(c->log, s, 1, s_sha_one, theirs, &n, NULL, reterr)) != 0)
            return rc;
        if (n == 1 && memcmp(mine, theirs, 32) == 0)
            break;
        if ((rc = cf_store_rollback(c->store, s - 1, reterr)) != 0)
            return rc;
        s_log(c, "took back batch %" PRIu64 ": the log does not hold it", s);
    }
    c->seq = cf_store_seq(c->store);
    if (cf_store_undo_forget(c->store, c->seq) != 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot drop the store's undo records");
    return 0;
}

static int s_ignore(void *ctx, uint64_t seq, uint64_t epoch, const void *ws, size_t len)
{
    (void)ctx, (void)seq, (void)epoch, (void)ws, (void)len;
    return 0;
}

/* Apply what the log holds after our seq (at most one read).  *n: how
 * many.  A log that starts after our next batch is a gap no read closes;
 * looking for one costs a request, so only with check_gap. */
static int s_catch_up(cf_cluster_t *c, size_t *n, bool check_gap, cf_error_t *reterr)
{
    s_apply_t a = {c, reterr};
    uint64_t first = 0;
    int rc = cf_replog_read(c->log, c->seq + 1, S_READ_MAX, s_apply_one, &a, n,
                            check_gap ? &first : NULL, reterr);
    if (rc != 0)
        return rc;
    if (*n == 0 && first > c->seq + 1)
        return cf_error_set(reterr, CF_EUNAVAIL,
                            "the cluster's log starts at batch %" PRIu64 " and this node has "
                            "applied up to %" PRIu64 ": the batches between are trimmed; "
                            "re-seed this node from a backup of another (docs/CLUSTER.md)",
                            first, c->seq);
    return 0;
}

/* ------------------------------------------------------------- leader --- */
static void s_leader_forget(cf_cluster_t *c)
{
    c->leader_node[0] = '\0';
    c->leader_epoch = 0;
    free(c->leader_portal);
    free(c->leader_operator);
    free(c->leader_events);
    c->leader_portal = c->leader_operator = c->leader_events = NULL;
}

static char *s_json_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? strdup(s) : NULL;
}

/* Learn who leads (and their endpoints, when it changed). */
static int s_learn_leader(cf_cluster_t *c, cf_error_t *reterr)
{
    char node[80];
    uint64_t epoch;
    int rc = cf_replog_leader(c->log, node, sizeof node, &epoch, reterr);
    if (rc != 0)
        return rc;
    if (strcmp(node, c->leader_node) != 0 || !c->leader_portal) {
        s_leader_forget(c);
        if (node[0]) {
            char *js = NULL;
            if (cf_replog_describe(c->log, node, &js, reterr) == 0) {
                json_t *j = json_loads(js, 0, NULL);
                if (j) {
                    c->leader_portal = s_json_str(j, "portal");
                    c->leader_operator = s_json_str(j, "operator");
                    c->leader_events = s_json_str(j, "events");
                    json_decref(j);
                }
                free(js);
            }
            snprintf(c->leader_node, sizeof c->leader_node, "%s", node);
        }
    }
    c->leader_epoch = node[0] ? epoch : 0;
    s_view_update(c);
    return 0;
}

/* The epoch marker: the first batch of an epoch records it (meta "epoch":
 * be64 epoch and the leader's name), through the log like any batch. */
static int s_mark_epoch(cf_cluster_t *c, cf_error_t *reterr)
{
    cf_store_set_hook(c->store, cf_cluster_hook, c);
    unsigned char v[8 + 80];
    cf_be64_put(v, c->epoch);
    size_t nl = strlen(c->node);
    memcpy(v + 8, c->node, nl);
    cf_txn_t *t;
    int rc = cf_store_begin(c->store, false, &t);
    if (rc == 0 && (rc = cf_txn_put(t, CF_DB_META, "epoch", 5, v, 8 + nl)) == 0)
        rc = cf_txn_commit(&t, NULL);
    cf_txn_abort(&t);
    cf_store_set_hook(c->store, NULL, NULL);
    if (rc != 0 || c->lost)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot append the epoch marker");
    return 0;
}

static int s_appender_start(cf_cluster_t *c, cf_error_t *reterr);
static uint64_t s_appender_stop(cf_cluster_t *c, bool drain);

static int s_campaign(cf_cluster_t *c, int64_t now, cf_error_t *reterr)
{
    bool won = false;
    uint64_t epoch = 0;
    int64_t t0 = now;
    int rc = cf_replog_campaign(c->log, c->seq + 1, &won, &epoch, reterr);
    if (rc != 0 || !won)
        return rc != 0 ? rc : CF_CLUSTER_NONE;
    c->leader = true;
    c->lost = false;
    c->epoch = epoch;
    c->lease_end_us = t0 + (int64_t)c->o.conf->lease_seconds * 1000000 - S_LEASE_MARGIN_US;
    c->next_renew_us = t0 + (int64_t)c->o.conf->lease_seconds * 1000000 / 3;
    c->next_trim_us = t0 + S_TRIM_US;
    s_leader_forget(c);
    s_view_update(c);
    if ((rc = s_mark_epoch(c, reterr)) != 0) {
        cf_replog_resign(c->log);
        c->leader = false;
        s_view_update(c);
        return rc;
    }
    cf_store_destroy(&c->store);
    c->acked = c->seq;
    if ((rc = s_appender_start(c, reterr)) != 0) {
        cf_replog_resign(c->log);
        c->leader = false;
        s_view_update(c);
        (void)s_store_open(c, reterr);
        return rc;
    }
    c->pipelined = true;
    s_log(c, "leader of epoch %" PRIu64 " from batch %" PRIu64, c->epoch, c->seq);
    return CF_CLUSTER_PROMOTE;
}

static int s_hook_sync(cf_cluster_t *c, uint64_t seq, const cf_wset_t *ws)
{
    cf_bytes_t enc = cf_wset_encoded(ws);
    cf_error_t err = {0};
    int rc = cf_replog_append(c->log, c->epoch, seq, enc.data, enc.len, (int64_t)time(NULL),
                              &err);
    if (rc != 0) {
        c->lost = true;
        s_log(c, "batch %" PRIu64 " %s: %s", seq,
              rc == CF_ECONFLICT ? "not appended" : "append outcome unknown", err.message);
        return rc;
    }
    c->seq = c->acked = seq;
    return 0;
}

/* Queue a copy for the appender; wait while the queue is over its bound. */
static int s_hook_queue(cf_cluster_t *c, uint64_t seq, const cf_wset_t *ws)
{
    s_appender_t *ap = &c->ap;
    cf_bytes_t enc = cf_wset_encoded(ws);
    unsigned char *copy = malloc(enc.len ? enc.len : 1);
    if (!copy)
        return CF_EINTERNAL;
    memcpy(copy, enc.data, enc.len);
    pthread_mutex_lock(&ap->mu);
    while (!ap->failed && ap->qbytes > S_QUEUE_BYTES)
        pthread_cond_wait(&ap->cv, &ap->mu);
    int rc = 0;
    if (ap->failed) {
        rc = CF_EUNAVAIL;
    } else if (ap->qn == ap->qcap) {
        size_t cap = ap->qcap ? ap->qcap * 2 : 64;
        s_item_t *q = malloc(cap * sizeof *q);
        if (!q) {
            rc = CF_EINTERNAL;
        } else {
            for (size_t i = 0; i < ap->qn; i++)
                q[i] = ap->q[(ap->qhead + i) % ap->qcap];
            free(ap->q);
            ap->q = q;
            ap->qhead = 0;
            ap->qcap = cap;
        }
    }
    if (rc == 0) {
        ap->q[(ap->qhead + ap->qn++) % ap->qcap] = (s_item_t){seq, copy, enc.len};
        ap->qbytes += enc.len;
        pthread_cond_broadcast(&ap->cv);
    }
    pthread_mutex_unlock(&ap->mu);
    if (rc != 0) {
        free(copy);
        c->lost = true;
        return rc;
    }
    c->seq = seq;
    return 0;
}

int cf_cluster_hook(void *ctx, uint64_t seq, const cf_wset_t *ws)
{
    cf_cluster_t *c = ctx;
    if (!ws) {
        /* Queued or appended, but LMDB could not commit it: the log may get
         * a batch this store lacks.  Only a follower's catch-up mends that. */
        c->lost = true;
        return 0;
    }
    if (!c->leader || c->lost || s_mono_us() >= c->lease_end_us) {
        c->lost = true;
        return CF_EUNAVAIL;
    }
    return c->pipelined ? s_hook_queue(c, seq, ws) : s_hook_sync(c, seq, ws);
}

/* ----------------------------------------------------------- appender --- */
static void *s_appender_main(void *arg)
{
    cf_cluster_t *c = arg;
    s_appender_t *ap = &c->ap;
    cf_replog_entry_t *v = NULL;
    size_t vcap = 0;
    pthread_mutex_lock(&ap->mu);
    for (;;) {
        while (!ap->stop && (ap->qn == 0 || ap->failed))
            pthread_cond_wait(&ap->cv, &ap->mu);
        if (ap->stop && (ap->qn == 0 || ap->failed))
            break;
        /* Everything queued goes now (the queue keeps its items until
         * they are in: the hook only adds at the tail). */
        size_t n = ap->qn;
        if (n > vcap) {
            cf_replog_entry_t *nv = realloc(v, n * sizeof *nv);
            if (!nv) {
                ap->failed = true;
                snprintf(ap->why, sizeof ap->why, "out of memory");
                break;
            }
            v = nv;
            vcap = n;
        }
        for (size_t i = 0; i < n; i++) {
            const s_item_t *it = &ap->q[(ap->qhead + i) % ap->qcap];
            v[i] = (cf_replog_entry_t){it->seq, it->ws, it->len};
        }
        uint64_t epoch = ap->epoch;
        bool lapsed = s_mono_us() >= ap->lease_end_us;
        pthread_mutex_unlock(&ap->mu);

        size_t done = 0;
        cf_error_t err = {0};
        int rc = lapsed ? cf_error_set(&err, CF_ECONFLICT, "the lease lapsed")
                        : cf_replog_append_many(ap->log, epoch, v, n, (int64_t)time(NULL), &done,
                                                &err);
        pthread_mutex_lock(&ap->mu);
        for (size_t i = 0; i < done; i++) {
            s_item_t *it = &ap->q[ap->qhead];
            ap->acked = it->seq;
            ap->qbytes -= it->len;
            free(it->ws);
            ap->qhead = (ap->qhead + 1) % ap->qcap;
            ap->qn--;
        }
        if (rc != 0) {
            ap->failed = true;
            snprintf(ap->why, sizeof ap->why, "batch %" PRIu64 " %s: %.200s",
                     v[done].seq, rc == CF_ECONFLICT ? "not appended" : "append outcome unknown",
                     err.message);
        }
        pthread_cond_broadcast(&ap->cv);
        ssize_t w = write(ap->pipe[1], "a", 1);
        (void)w;
    }
    pthread_mutex_unlock(&ap->mu);
    free(v);
    return NULL;
}

/* Empty the wake-up pipe; whether anything was in it. */
static bool s_drain(int fd)
{
    char buf[64];
    bool any = false;
    while (read(fd, buf, sizeof buf) > 0)
        any = true;
    return any;
}

static int s_appender_start(cf_cluster_t *c, cf_error_t *reterr)
{
    s_appender_t *ap = &c->ap;
    int rc = ap->log ? 0 : cf_replog_open(&c->lo, &ap->log, reterr);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&ap->mu);
    ap->stop = ap->failed = false;
    ap->acked = c->seq;
    ap->epoch = c->epoch;
    ap->lease_end_us = c->lease_end_us;
    ap->why[0] = '\0';
    pthread_mutex_unlock(&ap->mu);
    if (pthread_create(&ap->thread, NULL, s_appender_main, c) != 0)
        return cf_error_set(reterr, CF_EINTERNAL, "cannot start the appender thread");
    ap->running = true;
    return 0;
}

/* Stop the thread: with drain, after it appended what is queued (or
 * failed).  Returns the last batch the log holds. */
static uint64_t s_appender_stop(cf_cluster_t *c, bool drain)
{
    s_appender_t *ap = &c->ap;
    if (!ap->running)
        return c->acked;
    pthread_mutex_lock(&ap->mu);
    if (!drain)
        ap->failed = true;
    ap->stop = true;
    pthread_cond_broadcast(&ap->cv);
    pthread_mutex_unlock(&ap->mu);
    pthread_join(ap->thread, NULL);
    ap->running = false;
    pthread_mutex_lock(&ap->mu);
    for (; ap->qn; ap->qn--, ap->qhead = (ap->qhead + 1) % ap->qcap)
        free(ap->q[ap->qhead].ws);
    ap->qbytes = 0;
    if (ap->acked > c->acked)
        c->acked = ap->acked;
    pthread_mutex_unlock(&ap->mu);
    (void)s_drain(ap->pipe[0]);
    return c->acked;
}

int cf_cluster_fd(const cf_cluster_t *c) { return c->ap.pipe[0]; }

uint64_t cf_cluster_acked(cf_cluster_t *c)
{
    s_appender_t *ap = &c->ap;
    bool woken = s_drain(ap->pipe[0]);
    /* The watch's wake-ups come through the same pipe: read the log now. */
    if (woken && !c->leader)
        c->next_poll_us = c->next_check_us = 0;
    pthread_mutex_lock(&ap->mu);
    if (ap->running && ap->acked > c->acked)
        c->acked = ap->acked;
    bool failed = ap->running && ap->failed;
    char why[320];
    snprintf(why, sizeof why, "%s", ap->why);
    pthread_mutex_unlock(&ap->mu);
    if (failed && !c->lost) {
        c->lost = true;
        s_log(c, "%s", why);
    }
    return c->acked;
}

/* ---------------------------------------------------------------- api --- */
static char *s_publish_json(const cf_cluster_t *c)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "node", c->node, "portal",
                          c->portal, "operator", c->operator, "events", c->events, "version",
                          CF_VERSION, "workflows", c->digest);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return s;
}

int cf_cluster_open(const cf_cluster_opts_t *o, cf_cluster_t **ret, cf_error_t *reterr)
{
    cf_cluster_t *c = calloc(1, sizeof *c);
    if (!c)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    c->o = *o;
    if (!(c->node = strdup(o->node)) || !(c->data_dir = strdup(o->data_dir)) ||
        !(c->portal = strdup(o->portal)) || !(c->operator = strdup(o->operator)) ||
        !(c->events = strdup(o->events)) || !(c->digest = strdup(o->workflows_digest))) {
        cf_cluster_close(&c);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    c->o.node = c->node;
    c->o.data_dir = c->data_dir;
    s_view_update(c);
    pthread_mutex_init(&c->ap.mu, NULL);
    pthread_cond_init(&c->ap.cv, NULL);
    c->ap.pipe[0] = c->ap.pipe[1] = -1;
    if (pipe(c->ap.pipe) != 0 || fcntl(c->ap.pipe[0], F_SETFL, O_NONBLOCK) != 0 ||
        fcntl(c->ap.pipe[1], F_SETFL, O_NONBLOCK) != 0) {
        cf_cluster_close(&c);
        return cf_error_set(reterr, CF_EINTERNAL, "cannot make a pipe: %s", strerror(errno));
    }
    const cf_cluster_conf_t *cl = o->conf;
    cf_replog_opts_t lo = {.urls = (const char *const *)cl->etcd, .nurls = cl->netcd,
                           .prefix = cl->prefix, .node = c->node,
                           .lease_seconds = cl->lease_seconds,
                           .timeout_ms = (long)cl->lease_seconds * 1000 / 3,
                           .tls_ca = cl->tls_ca, .tls_cert = cl->tls_cert, .tls_key = cl->tls_key};
    c->lo = lo;
    int rc = cf_replog_open(&lo, &c->log, reterr);
    if (rc == 0)
        rc = cf_replog_watch_start(&lo, c->ap.pipe[1], &c->watch, reterr);
    if (rc == 0)
        rc = s_store_open(c, reterr);
    if (rc == 0)
        rc = s_resolve_undo(c, reterr);
    if (rc != 0) {
        cf_cluster_close(&c);
        return rc == CF_EINTERNAL ? CF_EUNAVAIL : rc;
    }
    /* A store with batches the log never had was written outside this
     * cluster.  (A log that is empty may start from any store: a single
     * node becoming the cluster's first.) */
    if (c->seq > 0) {
        size_t n = 0;
        uint64_t first = 0;
        rc = cf_replog_read(c->log, c->seq, 1, s_ignore, NULL, &n, &first, reterr);
        if (rc == 0 && n == 0 && first != 0 && first <= c->seq)
            rc = cf_error_set(reterr, CF_EUNAVAIL,
                              "this node's store holds batches up to %" PRIu64 " that the "
                              "cluster's log does not: it was written outside this cluster",
                              c->seq);
        if (rc != 0) {
            cf_cluster_close(&c);
            return rc == CF_EINTERNAL ? CF_EUNAVAIL : rc;
        }
    }
    for (;;) {
        size_t n = 0;
        if ((rc = s_catch_up(c, &n, true, reterr)) != 0) {
            cf_cluster_close(&c);
            return rc == CF_EINTERNAL ? CF_EUNAVAIL : rc;
        }
        if (n == 0)
            break;
    }
    if ((rc = s_learn_leader(c, reterr)) != 0) {
        cf_cluster_close(&c);
        return rc;
    }
    if (c->leader_node[0]) {
        char *js = NULL;
        if (cf_replog_describe(c->log, c->leader_node, &js, reterr) == 0) {
            json_t *j = json_loads(js, 0, NULL);
            const char *d = j ? json_string_value(json_object_get(j, "workflows")) : NULL;
            bool same = d && strcmp(d, c->digest) == 0;
            json_decref(j);
            free(js);
            if (!same && strcmp(c->leader_node, c->node) != 0) {
                cf_error_set(reterr, CF_EUNAVAIL,
                             "the cluster's leader (node %s) runs a different set of workflows "
                             "and calendars: every node needs the same workflows directory",
                             c->leader_node);
                cf_cluster_close(&c);
                return CF_EUNAVAIL;
            }
        }
    }
    char *js = s_publish_json(c);
    rc = js ? cf_replog_publish(c->log, js, reterr) : CF_EINTERNAL;
    free(js);
    if (rc == 0)
        rc = cf_replog_applied(c->log, c->seq, reterr);
    if (rc != 0) {
        cf_cluster_close(&c);
        return rc;
    }
    c->applied_published = c->seq;
    *ret = c;
    return 0;
}

void cf_cluster_close(cf_cluster_t **c_p)
{
    cf_cluster_t *c = c_p ? *c_p : NULL;
    if (!c)
        return;
    s_appender_stop(c, false);
    cf_replog_watch_stop(&c->watch);
    if (c->leader && c->log)
        cf_replog_resign(c->log);
    cf_store_destroy(&c->store);
    cf_replog_close(&c->log);
    cf_replog_close(&c->ap.log);
    free(c->ap.q);
    if (c->ap.pipe[0] >= 0) {
        close(c->ap.pipe[0]);
        close(c->ap.pipe[1]);
    }
    pthread_mutex_destroy(&c->ap.mu);
    pthread_cond_destroy(&c->ap.cv);
    s_leader_forget(c);
    free(c->node);
    free(c->data_dir);
    free(c->portal);
    free(c->operator);
    free(c->events);
    free(c->digest);
    free(c);
    *c_p = NULL;
}

static void s_publish_applied(cf_cluster_t *c, int64_t now)
{
    uint64_t applied = c->leader ? c->acked : c->seq;
    if (now < c->next_applied_us || applied == c->applied_published)
        return;
    c->next_applied_us = now + S_APPLIED_US;
    if (cf_replog_applied(c->log, applied, NULL) == 0)
        c->applied_published = applied;
}

static int s_demote(cf_cluster_t *c, const char *why)
{
    s_log(c, "no longer the leader of epoch %" PRIu64 ": %s", c->epoch, why);
    s_appender_stop(c, false);
    c->pipelined = false;
    cf_replog_resign(c->log);
    c->leader = false;
    c->lost = false;
    s_leader_forget(c);
    s_view_update(c);
    c->next_poll_us = 0;
    return CF_CLUSTER_DEMOTE;
}

int cf_cluster_tick(cf_cluster_t *c, int64_t now, cf_error_t *reterr)
{
    if (c->leader) {
        if (c->lost)
            return s_demote(c, "a batch could not be appended to the log");
        if (now >= c->next_renew_us) {
            int64_t t0 = s_mono_us(), ttl_ms = 0;
            cf_error_t err = {0};
            if (cf_replog_renew(c->log, &ttl_ms, &err) != 0 || ttl_ms <= 0) {
                if (ttl_ms <= 0 && !err.message[0])
                    snprintf(err.message, sizeof err.message, "the lease is gone");
                if (s_mono_us() >= c->lease_end_us || ttl_ms <= 0)
                    return s_demote(c, err.message);
                /* Not renewed, not lapsed yet: try again soon. */
                c->next_renew_us = s_mono_us() + 100000;
            } else {
                c->lease_end_us = t0 + ttl_ms * 1000 - S_LEASE_MARGIN_US;
                c->next_renew_us = t0 + (int64_t)c->o.conf->lease_seconds * 1000000 / 3;
                pthread_mutex_lock(&c->ap.mu);
                c->ap.lease_end_us = c->lease_end_us;
                pthread_mutex_unlock(&c->ap.mu);
            }
        }
        if (s_mono_us() >= c->lease_end_us)
            return s_demote(c, "the lease could not be renewed in time");
        s_publish_applied(c, now);
        if (now >= c->next_trim_us) {
            c->next_trim_us = now + S_TRIM_US;
            uint64_t head = 0;
            (void)cf_replog_trim(c->log, (int64_t)time(NULL), c->o.conf->log_retention, &head,
                                 NULL);
        }
        return CF_CLUSTER_NONE;
    }
    if (!c->store || now < c->next_poll_us)
        return CF_CLUSTER_NONE;
    size_t n = 0;
    cf_error_t err = {0};
    if (c->unresolved) {
        c->next_poll_us = now + S_CHECK_US;
        int urc = s_resolve_undo(c, &err);
        if (urc == CF_ENOTFOUND || urc == CF_EINTERNAL) {
            *reterr = err;
            return CF_CLUSTER_FATAL;
        }
        if (urc != 0)
            return CF_CLUSTER_NONE;
        c->unresolved = false;
    }
    bool check = now >= c->next_check_us;
    if (check)
        c->next_check_us = now + S_CHECK_US;
    int rc = s_catch_up(c, &n, check, &err);
    if (rc == CF_EINTERNAL || (rc == CF_EUNAVAIL && err.message[0] && strstr(err.message, "re-seed"))) {
        *reterr = err;
        return CF_CLUSTER_FATAL;
    }
    if (rc == 0 && n > 0) {
        c->next_poll_us = now;   /* more may be waiting */
        s_publish_applied(c, now);
        return CF_CLUSTER_NONE;
    }
    c->next_poll_us = now + S_POLL_US;
    s_publish_applied(c, now);
    if (rc != 0 || !check)
        return CF_CLUSTER_NONE;   /* etcd unreachable: keep trying */
    if (s_learn_leader(c, &err) != 0 || c->leader_node[0])
        return CF_CLUSTER_NONE;
    rc = s_campaign(c, now, &err);
    if (rc == CF_CLUSTER_PROMOTE)
        return rc;
    if (rc < 0 && !c->store) {
        *reterr = err;
        return CF_CLUSTER_FATAL;
    }
    return CF_CLUSTER_NONE;
}

long cf_cluster_wait_ms(const cf_cluster_t *c, int64_t now)
{
    int64_t next = c->leader ? c->next_renew_us : c->next_poll_us;
    if (c->leader && c->next_trim_us < next)
        next = c->next_trim_us;
    int64_t w = next - now;
    return w <= 0 ? 0 : (long)((w + 999) / 1000);
}

int cf_cluster_follow(cf_cluster_t *c, cf_error_t *reterr)
{
    int rc = s_store_open(c, reterr);
    if (rc != 0)
        return rc;
    /* etcd may be what failed: then the question waits for the next tick
     * (nothing is applied or campaigned before it is answered). */
    cf_error_t err = {0};
    c->unresolved = s_resolve_undo(c, &err) != 0;
    if (c->unresolved)
        s_log(c, "cannot yet tell which batches the log holds: %s", err.message);
    return 0;
}

uint64_t cf_cluster_drain(cf_cluster_t *c)
{
    if (c->leader && c->ap.running)
        s_appender_stop(c, true);
    return c->acked;
}

void cf_cluster_step_down(cf_cluster_t *c, const char *why)
{
    if (c->leader)
        (void)s_demote(c, why);
}

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cf_cluster_digest(const char *dir, char hex[65], cf_error_t *reterr)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return cf_error_set(reterr, CF_EBADREQ, "cannot read the workflows directory %s", dir);
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dh)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0 || de->d_name[0] == '.')
            continue;
        char **v = realloc(names, (n + 1) * sizeof *v);
        if (!v || !(v[n] = strdup(de->d_name))) {
            if (v)
                names = v;
            rc = cf_error_set(reterr, CF_EINTERNAL, "out of memory");
            break;
        }
        names = v;
        n++;
    }
    closedir(dh);
    if (n)
        qsort(names, n, sizeof *names, s_strcmp_p);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            rc = cf_error_set(reterr, CF_EBADREQ, "cannot read %s", path);
            break;
        }
        crypto_hash_sha256_update(&st, (const unsigned char *)names[i], strlen(names[i]) + 1);
        unsigned char buf[8192];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0)
            crypto_hash_sha256_update(&st, buf, got);
        fclose(f);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != 0)
        return rc;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, sizeof h);
    return 0;
}

bool cf_cluster_is_leader(const cf_cluster_t *c) { return c->leader; }

bool cf_cluster_lost(const cf_cluster_t *c) { return c->leader && c->lost; }

bool cf_cluster_serving(const cf_cluster_t *c, int64_t now)
{
    return c->leader && !c->lost && now < c->lease_end_us;
}

const cf_cluster_view_t *cf_cluster_view(const cf_cluster_t *c) { return &c->view; }

uint64_t cf_cluster_seq(const cf_cluster_t *c) { return c->seq; }

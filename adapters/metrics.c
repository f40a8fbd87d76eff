/* metrics.c: claimflowd's numbers, counted by the main loop, published as
 * immutable snapshots, rendered for Prometheus by the HTTP thread.
 *
 * The main loop writes `cur` (no lock: only it touches it).  Publishing
 * deep-copies `cur` into a reference-counted snapshot and swaps the
 * published pointer under `mu`; a reader takes a reference under `mu`,
 * renders without it, and drops the reference under it again, so the
 * mutex is held for a pointer swap or a counter, never for a render or a
 * copy.  The snapshot a reader holds is never written again: a render sees
 * one consistent moment, and the main loop never waits for a slow scraper.
 * (Rejected: rendering the text in the main loop and publishing the string.
 * It costs the loop the formatting on every publish whether or not anyone
 * scrapes; a snapshot copy is a few small arrays.)
 *
 * The liveness beat is an atomic: /healthz must see a stuck main loop even
 * when nothing is published.
 *
 * Label sets are bounded by construction: endpoint (2), op (s_op_names,
 * the protocol's ops, or "unknown"), code (ok + the protocol's ten),
 * workflow/state/flag names from the workflow files.  The op list is the
 * protocol's (docs/protocol.md, Operations), not learnt from requests: a
 * request's `op` is the client's word until the engine has looked it up,
 * and a made-up op answered bad_request must not become a label.  An op
 * added to the protocol shows as "unknown" until it is added here.
 */
#include "metrics.h"
#include "mp.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#define S_NCODES 12          /* ok, then CF_E* -1 .. -11 */
#define S_NAME 65            /* workflow, state, flag, op names (CF_NAME_MAX + 1) */

static const double s_batch_le[] = {1, 2, 4, 8, 16, 32, 64, 128, 256};
static const double s_commit_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                     0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
#define S_NBATCH (sizeof s_batch_le / sizeof s_batch_le[0])
#define S_NCOMMIT (sizeof s_commit_le / sizeof s_commit_le[0])
#define S_MAXBUCKETS 16

typedef struct {
    uint64_t bucket[S_MAXBUCKETS];   /* per bucket, not cumulative; last: +Inf */
    double sum;
    uint64_t count;
} s_hist_t;

static const char *const s_op_names[] = {
    "ping", "create", "send", "attach", "document", "consent.give", "consent.withdraw",
    "get", "history", "query", "timers", "stats", "clock.advance", "clock.set",
    "audit", "purge", "consent.get", "access_log", "export", "changes",
    "unknown",                       /* last: anything else */
};
#define S_NOPS (sizeof s_op_names / sizeof s_op_names[0])

typedef struct {
    char workflow[S_NAME], state[S_NAME];
    uint64_t count;
} s_state_t;

typedef struct {
    char flag[S_NAME];
    uint64_t count;
} s_flag_t;

/* Everything a page shows; `cur` is the main loop's, snapshots are copies. */
typedef struct {
    uint64_t requests[S_NOPS][2][S_NCODES];  /* [op][endpoint][code index] */
    uint64_t reply_bytes[2];
    uint64_t dropped, events, event_bytes, fired, commit_failures;
    s_hist_t batch, commit;
    bool writable;
    uint64_t store_bytes;
    /* from the last good stats run */
    bool have_stats;
    s_state_t *states;
    size_t nstates;
    s_flag_t *flags;
    size_t nflags;
    uint64_t timers_pending, timers_overdue;
    int64_t stats_at;
    double stats_seconds;
    uint64_t stats_failures;
} s_nums_t;

typedef struct {
    int refs;                        /* under cf_metrics.mu */
    s_nums_t n;
} s_snap_t;

struct cf_metrics {
    s_nums_t cur;
    pthread_mutex_t mu;
    s_snap_t *pub;
    _Atomic int64_t beat_ms;
    char version[32];
    int64_t start_time;
};

static int64_t s_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_nums_fini(s_nums_t *n)
{
    free(n->states);
    free(n->flags);
    n->states = NULL;
    n->flags = NULL;
}

/* Deep copy; CF_EINTERNAL out of memory (dst untouched then). */
static int s_nums_copy(s_nums_t *dst, const s_nums_t *src)
{
    s_state_t *st = NULL;
    s_flag_t *fl = NULL;
    if (src->nstates && !(st = malloc(src->nstates * sizeof *st)))
        return CF_EINTERNAL;
    if (src->nflags && !(fl = malloc(src->nflags * sizeof *fl))) {
        free(st);
        return CF_EINTERNAL;
    }
    *dst = *src;
    if (st)
        memcpy(st, src->states, src->nstates * sizeof *st);
    if (fl)
        memcpy(fl, src->flags, src->nflags * sizeof *fl);
    dst->states = st;
    dst->flags = fl;
    return 0;
}

static void s_snap_unref(cf_metrics_t *m, s_snap_t *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&m->mu);
    bool last = --s->refs == 0;
    pthread_mutex_unlock(&m->mu);
    if (last) {
        s_nums_fini(&s->n);
        free(s);
    }
}

cf_metrics_t *cf_metrics_new(const char *version, int64_t start_time)
{
    cf_metrics_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        return NULL;
    }
    snprintf(m->version, sizeof m->version, "%s", version);
    m->start_time = start_time;
    m->cur.writable = true;
    atomic_store(&m->beat_ms, s_mono_ms());
    if (cf_metrics_publish(m) != 0) {
        cf_metrics_destroy(&m);
        return NULL;
    }
    return m;
}

void cf_metrics_destroy(cf_metrics_t **m_p)
{
    if (!m_p || !*m_p)
        return;
    cf_metrics_t *m = *m_p;
    s_snap_unref(m, m->pub);
    s_nums_fini(&m->cur);
    pthread_mutex_destroy(&m->mu);
    free(m);
    *m_p = NULL;
}

/* ---------------------------------------------------------- counting --- */
static size_t s_code_index(int code)
{
    if (code == 0)
        return 0;
    if (code <= -1 && code >= -(S_NCODES - 1))
        return (size_t)-code;
    return (size_t)-CF_EINTERNAL;
}

static void s_hist_add(s_hist_t *h, const double *le, size_t nle, double v)
{
    size_t i = 0;
    while (i < nle && v > le[i])
        i++;
    h->bucket[i]++;                  /* i == nle: +Inf */
    h->sum += v;
    h->count++;
}

void cf_metrics_request(cf_metrics_t *m, cf_endpoint_t ep, const char *op, int code,
                        size_t reply_bytes)
{
    size_t e = ep == CF_EP_OPERATOR ? 1 : 0;
    size_t i = 0;
    while (op && i < S_NOPS - 1 && strcmp(s_op_names[i], op) != 0)
        i++;
    if (!op)
        i = S_NOPS - 1;
    m->cur.requests[i][e][s_code_index(code)]++;
    m->cur.reply_bytes[e] += reply_bytes;
}

void cf_metrics_batch(cf_metrics_t *m, size_t n, double seconds, bool failed)
{
    s_hist_add(&m->cur.batch, s_batch_le, S_NBATCH, (double)n);
    s_hist_add(&m->cur.commit, s_commit_le, S_NCOMMIT, seconds);
    m->cur.commit_failures += failed;
}

void cf_metrics_events(cf_metrics_t *m, size_t n, size_t bytes)
{
    m->cur.events += n;
    m->cur.event_bytes += bytes;
}

void cf_metrics_fired(cf_metrics_t *m, size_t n)
{
    m->cur.fired += n;
}

void cf_metrics_dropped(cf_metrics_t *m, uint64_t total)
{
    m->cur.dropped = total;
}

void cf_metrics_writable(cf_metrics_t *m, bool writable)
{
    m->cur.writable = writable;
}

void cf_metrics_store_bytes(cf_metrics_t *m, uint64_t bytes)
{
    m->cur.store_bytes = bytes;
}

void cf_metrics_beat(cf_metrics_t *m)
{
    atomic_store(&m->beat_ms, s_mono_ms());
}

int cf_metrics_publish(cf_metrics_t *m)
{
    s_snap_t *s = calloc(1, sizeof *s);
    if (!s)
        return CF_EINTERNAL;
    if (s_nums_copy(&s->n, &m->cur) != 0) {
        free(s);
        return CF_EINTERNAL;
    }
    s->refs = 1;                     /* the published pointer's */
    pthread_mutex_lock(&m->mu);
    s_snap_t *old = m->pub;
    m->pub = s;
    pthread_mutex_unlock(&m->mu);
    s_snap_unref(m, old);
    return 0;
}

/* ------------------------------------------------------- stats reply --- */
static bool s_name(const msgpack_object *o, char out[S_NAME])
{
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= S_NAME)
        return false;
    if (o->via.str.size)
        memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return true;
}

static bool s_count(const msgpack_object *o, uint64_t *ret)
{
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *ret = o->via.u64;
    return true;
}

static int s_stats_parse(s_nums_t *n, const msgpack_object *r)
{
    const msgpack_object *ok = cf_mp_get(r, "ok"), *states = cf_mp_get(r, "states"),
                         *flags = cf_mp_get(r, "flags"), *timers = cf_mp_get(r, "timers");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN || !ok->via.boolean || !states ||
        states->type != MSGPACK_OBJECT_ARRAY || !flags || flags->type != MSGPACK_OBJECT_ARRAY ||
        !s_count(cf_mp_get(timers, "pending"), &n->timers_pending) ||
        !s_count(cf_mp_get(timers, "overdue"), &n->timers_overdue))
        return CF_EBADREQ;
    uint32_t ns = states->via.array.size, nf = flags->via.array.size;
    if (ns && !(n->states = calloc(ns, sizeof *n->states)))
        return CF_EINTERNAL;
    if (nf && !(n->flags = calloc(nf, sizeof *n->flags)))
        return CF_EINTERNAL;
    for (uint32_t i = 0; i < ns; i++) {
        const msgpack_object *e = &states->via.array.ptr[i];
        s_state_t *s = &n->states[i];
        if (!s_name(cf_mp_get(e, "workflow"), s->workflow) || !s_name(cf_mp_get(e, "state"), s->state) ||
            !s_count(cf_mp_get(e, "count"), &s->count))
            return CF_EBADREQ;
        n->nstates = i + 1;
    }
    for (uint32_t i = 0; i < nf; i++) {
        const msgpack_object *e = &flags->via.array.ptr[i];
        s_flag_t *f = &n->flags[i];
        if (!s_name(cf_mp_get(e, "flag"), f->flag) || !s_count(cf_mp_get(e, "count"), &f->count))
            return CF_EBADREQ;
        n->nflags = i + 1;
    }
    return 0;
}

int cf_metrics_stats(cf_metrics_t *m, const void *reply, size_t len, double seconds,
                     int64_t now)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    s_nums_t fresh = {0};
    int rc = CF_EBADREQ;
    if (msgpack_unpack_next(&u, reply, len, NULL) == MSGPACK_UNPACK_SUCCESS)
        rc = s_stats_parse(&fresh, &u.data);
    msgpack_unpacked_destroy(&u);
    if (rc != 0) {
        s_nums_fini(&fresh);
        m->cur.stats_failures++;
        return rc;
    }
    s_nums_t *c = &m->cur;
    s_nums_fini(c);
    c->states = fresh.states;
    c->nstates = fresh.nstates;
    c->flags = fresh.flags;
    c->nflags = fresh.nflags;
    c->timers_pending = fresh.timers_pending;
    c->timers_overdue = fresh.timers_overdue;
    c->stats_at = now;
    c->stats_seconds = seconds;
    c->have_stats = true;
    return 0;
}

/* ---------------------------------------------------------- rendering --- */
typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} s_buf_t;

static void s_printf(s_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(s_buf_t *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        size_t cap = b->cap * 2 + (size_t)w;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
}

/* A label value, escaped as the format says (\\, \", \n). */
static void s_label(s_buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            s_printf(b, "\\\\");
        else if (*v == '"')
            s_printf(b, "\\\"");
        else if (*v == '\n')
            s_printf(b, "\\n");
        else
            s_printf(b, "%c", *v);
    }
}

static void s_family(s_buf_t *b, const char *name, const char *type, const char *help)
{
    s_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void s_hist(s_buf_t *b, const char *name, const char *help, const s_hist_t *h,
                   const double *le, size_t nle)
{
    s_family(b, name, "histogram", help);
    uint64_t cum = 0;
    for (size_t i = 0; i < nle; i++) {
        cum += h->bucket[i];
        s_printf(b, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name, le[i], cum);
    }
    cum += h->bucket[nle];
    s_printf(b, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, cum);
    s_printf(b, "%s_sum %.9g\n%s_count %" PRIu64 "\n", name, h->sum, name, h->count);
}

static void s_counter(s_buf_t *b, const char *name, const char *help, uint64_t v)
{
    s_family(b, name, "counter", help);
    s_printf(b, "%s %" PRIu64 "\n", name, v);
}

static void s_gauge(s_buf_t *b, const char *name, const char *help, double v)
{
    s_family(b, name, "gauge", help);
    s_printf(b, "%s %.17g\n", name, v);
}

static void s_render(s_buf_t *b, const cf_metrics_t *m, const s_nums_t *n)
{
    static const char *const eps[2] = {"portal", "operator"};

    s_family(b, "claimflow_build_info", "gauge", "The running claimflowd's version.");
    s_printf(b, "claimflow_build_info{version=\"");
    s_label(b, m->version);
    s_printf(b, "\"} 1\n");
    s_gauge(b, "claimflow_start_time_seconds", "When claimflowd started, Unix time.",
            (double)m->start_time);
    s_gauge(b, "claimflow_store_writable", "1 when the store takes writes (the last "
            "write was committed), 0 when it refuses them (disk or map full).",
            n->writable ? 1 : 0);
    s_gauge(b, "claimflow_store_file_bytes", "Size of the store's data file (data.mdb).",
            (double)n->store_bytes);

    s_family(b, "claimflow_requests_total", "counter", "Requests answered, by endpoint, "
             "op and result code (ok, or the protocol's error code).");
    for (size_t i = 0; i < S_NOPS; i++)
        for (size_t e = 0; e < 2; e++)
            for (size_t c = 0; c < S_NCODES; c++)
                if (n->requests[i][e][c])
                    s_printf(b, "claimflow_requests_total{endpoint=\"%s\",op=\"%s\","
                             "code=\"%s\"} %" PRIu64 "\n", eps[e], s_op_names[i],
                             c == 0 ? "ok" : cf_errname(-(int)c), n->requests[i][e][c]);
    s_family(b, "claimflow_reply_bytes_total", "counter", "Bytes of replies sent, by endpoint.");
    for (size_t e = 0; e < 2; e++)
        s_printf(b, "claimflow_reply_bytes_total{endpoint=\"%s\"} %" PRIu64 "\n", eps[e],
                 n->reply_bytes[e]);
    s_counter(b, "claimflow_replies_dropped_total", "Replies not delivered: the client "
              "went away or does not read.", n->dropped);
    s_counter(b, "claimflow_events_published_total", "Events published on the events "
              "socket.", n->events);
    s_counter(b, "claimflow_event_bytes_total", "Bytes published on the events socket "
              "(topic and body frames).", n->event_bytes);
    s_counter(b, "claimflow_timers_fired_total", "Timers fired.", n->fired);
    s_hist(b, "claimflow_batch_size", "Requests per engine run (one transaction, one "
           "fsync).", &n->batch, s_batch_le, S_NBATCH);
    s_hist(b, "claimflow_commit_duration_seconds", "Time of one engine run: apply the "
           "batch, commit, fsync.", &n->commit, s_commit_le, S_NCOMMIT);
    s_counter(b, "claimflow_commit_failures_total", "Engine runs in which the store "
              "refused writes (map or disk full); those writes were answered unavailable.",
              n->commit_failures);

    s_family(b, "claimflow_claims", "gauge", "Claims by workflow and state.");
    for (size_t i = 0; i < n->nstates; i++) {
        s_printf(b, "claimflow_claims{workflow=\"");
        s_label(b, n->states[i].workflow);
        s_printf(b, "\",state=\"");
        s_label(b, n->states[i].state);
        s_printf(b, "\"} %" PRIu64 "\n", n->states[i].count);
    }
    s_family(b, "claimflow_claims_flagged", "gauge", "Claims carrying a flag "
             "(sla.warning, sla.breached, ...).");
    for (size_t i = 0; i < n->nflags; i++) {
        s_printf(b, "claimflow_claims_flagged{flag=\"");
        s_label(b, n->flags[i].flag);
        s_printf(b, "\"} %" PRIu64 "\n", n->flags[i].count);
    }
    if (n->have_stats) {
        s_gauge(b, "claimflow_timers_pending", "Timers pending (members' consent expiries "
                "included).", (double)n->timers_pending);
        s_gauge(b, "claimflow_timers_overdue", "Timers due but not fired yet.",
                (double)n->timers_overdue);
        s_gauge(b, "claimflow_stats_timestamp_seconds", "When the claim, flag and timer "
                "numbers were taken, engine time (Unix seconds).", (double)n->stats_at);
        s_gauge(b, "claimflow_stats_duration_seconds", "How long taking them took (the "
                "engine's stats op).", n->stats_seconds);
    }
    s_counter(b, "claimflow_stats_failures_total", "Stats runs that failed (the numbers "
              "above are then older).", n->stats_failures);
}

int cf_metrics_render(cf_metrics_t *m, char **ret, size_t *ret_len)
{
    pthread_mutex_lock(&m->mu);
    s_snap_t *s = m->pub;
    s->refs++;
    pthread_mutex_unlock(&m->mu);

    s_buf_t b = {.cap = 8192};
    b.p = malloc(b.cap);
    b.oom = !b.p;
    if (b.p)
        b.p[0] = '\0';
    s_render(&b, m, &s->n);
    s_snap_unref(m, s);
    if (b.oom) {
        free(b.p);
        return CF_EINTERNAL;
    }
    *ret = b.p;
    *ret_len = b.len;
    return 0;
}

int cf_metrics_health(cf_metrics_t *m, char *line, size_t len)
{
    int64_t stalled = (s_mono_ms() - atomic_load(&m->beat_ms)) / 1000;
    if (stalled > CF_METRICS_STALL_S) {
        snprintf(line, len, "not serving: the main loop has not come round for %" PRId64 " s",
                 stalled);
        return 503;
    }
    snprintf(line, len, "ok");
    return 200;
}

int cf_metrics_readiness(cf_metrics_t *m, char *line, size_t len)
{
    pthread_mutex_lock(&m->mu);
    bool writable = m->pub->n.writable;
    pthread_mutex_unlock(&m->mu);
    if (!writable) {
        snprintf(line, len, "not ready: the store refuses writes (disk or map full)");
        return 503;
    }
    snprintf(line, len, "ready");
    return 200;
}

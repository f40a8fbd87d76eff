/* bench_scale.c: scale mode - the daemon on a store of a million finished
 * claims and a million pending timers (bench_inproc.c builds it).
 *
 * Measured over the real daemon and its sockets:
 *   - start-up: exec to the `started` line, and to the first ping's reply
 *     (nothing is replayed at start: the store is the state);
 *   - the first page of a queue (operator query health_claim/in_review,
 *     limit 100, over hundreds of thousands of open claims): the first call
 *     and the median of the next 20;
 *   - a member's claims (portal query by member), 21 different members;
 *   - firing the first N due timers: the manual clock is set (clock.set) to
 *     the due time of the N-th pending timer, read from the store, and the
 *     reply comes once every timer due by then has fired, in that request's
 *     transaction;
 *   - latency at a fixed rate (--scale-rate): the load's open loop on this
 *     store and on a store of --scale-small claims built the same way (a
 *     daemon of its own), in alternating rounds.  The ratio of their p99s
 *     says whether a request's cost grows with the store (goal <= 1.5).
 * Operator reads write the access log, so the queue page includes a commit.
 */
#include "bench.h"

#include <inttypes.h>
#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "cf_time.h"

/* One request, one reply, on a DEALER; the reply unpacked into up.  The
 * reply's round trip in ms into *ms.  0, or -1 (no reply in 120 s). */
static int s_call(void *sock, msgpack_sbuffer *sb, msgpack_unpacked *up, zmq_msg_t *m,
                  double *ms)
{
    double t0 = bench_now();
    if (zmq_send(sock, sb->data, sb->size, 0) < 0)
        return -1;
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, 120000) <= 0 || zmq_msg_recv(m, sock, 0) < 0)
        return -1;
    *ms = (bench_now() - t0) * 1e3;
    size_t off = 0;
    if (msgpack_unpack_next(up, zmq_msg_data(m), zmq_msg_size(m), &off) != MSGPACK_UNPACK_SUCCESS)
        return -1;
    return 0;
}

static double s_median(double *v, int n)
{
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n ? v[n / 2] : 0;
}

/* The due time of the n-th pending timer (1-based), from the store. */
static int s_nth_due(const char *data, uint64_t n, cf_time_t *due)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    if (mdb_env_create(&env) != 0)
        return -1;
    mdb_env_set_maxdbs(env, 64);
    int rc = mdb_env_open(env, data, MDB_RDONLY | MDB_NOTLS, 0600);
    if (rc == 0)
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    if (rc != 0) {
        mdb_env_close(env);
        return -1;
    }
    rc = mdb_dbi_open(txn, "timers", 0, &dbi);
    if (rc == 0)
        rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc == 0) {
        MDB_val k, v;
        int op = MDB_FIRST;
        uint64_t i = 0;
        while ((rc = mdb_cursor_get(cur, &k, &v, op)) == 0 && ++i < n)
            op = MDB_NEXT;
        if (rc == 0 && k.mv_size >= 8) {
            const unsigned char *p = k.mv_data;
            uint64_t t = 0;
            for (int j = 0; j < 8; j++)
                t = t << 8 | p[j];
            *due = (cf_time_t)t;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return rc == 0 ? 0 : -1;
}

static void s_fail(bench_scale_t *r, const char *what)
{
    r->ok = false;
    if (!r->first_error[0])
        snprintf(r->first_error, sizeof r->first_error, "scale: %.480s", what);
}

/* A store just built leaves gigabytes of dirty pages for the kernel to
 * write back; measured over that writeback, the daemon's fsyncs would wait
 * behind the build's.  Flush them first: each store is measured at rest. */
static void s_settle(double built_seconds)
{
    double t0 = bench_now();
    sync();
    fprintf(stderr, "claimflow-bench: scale: the build's pages flushed in %.1f s (built in %.1f s)\n",
            bench_now() - t0, built_seconds);
}

/* Add one round's figures to the phase's. */
static void s_merge(bench_load_t *into, bench_load_t *from)
{
    bool first = into->rounds == 0;
    for (size_t i = 0; i < from->lat.n; i++)
        bench_lat_add(&into->lat, from->lat.v[i]);
    for (int k = 0; k < BENCH_K__COUNT; k++)
        for (size_t i = 0; i < from->lat_kind[k].n; i++)
            bench_lat_add(&into->lat_kind[k], from->lat_kind[k].v[i]);
    into->name = from->name;
    into->clients = from->clients;
    into->inflight = from->inflight;
    into->rate = from->rate;
    into->req_rate = from->req_rate;
    into->seconds += from->seconds;
    into->requests += from->requests;
    into->replies_ok += from->replies_ok;
    into->replies_err += from->replies_err;
    into->transitions += from->transitions;
    into->claims_done += from->claims_done;
    into->inquiries_done += from->inquiries_done;
    into->all_requests += from->all_requests;
    into->all_ok += from->all_ok;
    into->all_err += from->all_err;
    into->all_transitions += from->all_transitions;
    into->all_claims_done += from->all_claims_done;
    into->all_inquiries_done += from->all_inquiries_done;
    into->bytes_sent += from->bytes_sent;
    into->bytes_recv += from->bytes_recv;
    into->late_sends += from->late_sends;
    into->commits += from->commits;
    /* Rounds are of equal length: the mean of their shares. */
    into->steal_pct = (into->steal_pct * (double)into->rounds + from->steal_pct) /
                      (double)(into->rounds + 1);
    into->rounds++;
    into->daemon_cpu += from->daemon_cpu;
    into->bench_cpu += from->bench_cpu;
    if (from->daemon_hwm_kib > into->daemon_hwm_kib)
        into->daemon_hwm_kib = from->daemon_hwm_kib;
    into->has_loop = (first || into->has_loop) && from->has_loop;
    for (int k = 0; k < 7; k++)
        into->loop_us[k] += from->loop_us[k];
    into->loop_batches += from->loop_batches;
    for (int b = 0; b < CF_STORE_HIST; b++)
        into->commit_hist[b] += from->commit_hist[b];
    if (!into->first_error[0] && from->first_error[0])
        memcpy(into->first_error, from->first_error, sizeof into->first_error);
    into->completed = (first || into->completed) && from->completed;
    bench_load_free(from);
}

/* One round of the open loop at --scale-rate against d, added to l. */
static void s_fixed_round(const bench_opts_t *o, const bench_daemon_t *d, long claims,
                          double seconds, double warmup, bench_load_t *l, bench_scale_t *r)
{
    bench_load_t one;
    memset(&one, 0, sizeof one);
    fprintf(stderr, "claimflow-bench: scale: open loop at %.0f transitions/s on %ld claims, "
                    "%.1f s\n", o->scale_rate, claims, seconds);
    if (bench_load_run(o, d, o->scale_rate, seconds, warmup, 0, &one) != 0) {
        char what[600];
        snprintf(what, sizeof what, "open loop on %ld claims: %s", claims,
                 one.first_error[0] ? one.first_error : "did not complete");
        s_fail(r, what);
    }
    s_merge(l, &one);
}

/* The small store: built as the big one, with as many timers per claim,
 * in dir, and a daemon of its own started on it.  0 or -1. */
static int s_small_start(const bench_opts_t *o, bench_scale_t *r, char *dir, size_t dirlen,
                         bench_daemon_t *d)
{
    char data[600];
    if (bench_mkdtemp(o, "small", dir, dirlen) != 0) {
        s_fail(r, "no temp directory for the small store");
        return -1;
    }
    snprintf(data, sizeof data, "%s/data", dir);
    long timers = o->scale ? (long)((double)o->scale_timers * (double)o->scale_small /
                                    (double)o->scale) : 0;
    if (bench_scale_build(o, dir, o->scale_small, timers, &r->small) != 0) {
        s_fail(r, r->small.first_error[0] ? r->small.first_error : "the small store's build failed");
        bench_rmrf(dir);
        return -1;
    }
    s_settle(r->small.build_seconds);
    if (bench_daemon_start(o, dir, data, r->small.clock_end, d) != 0) {
        s_fail(r, "the daemon did not start on the small store");
        bench_rmrf(dir);
        return -1;
    }
    return 0;
}

/* Latency at a fixed rate on the big store (its daemon: big) and on a
 * small one, in alternating rounds: the virtual disk's speed drifts over
 * minutes, and alternating gives both stores the same share of that
 * drift, so their ratio is about the stores, not about when each ran. */
#define SCALE_ROUNDS 4
static void s_fixed_both(const bench_opts_t *o, const bench_daemon_t *big, bench_scale_t *r)
{
    char dir[512];
    bench_daemon_t small;
    if (s_small_start(o, r, dir, sizeof dir, &small) != 0)
        return;
    double each = o->scale_seconds / SCALE_ROUNDS;
    for (int k = 0; k < SCALE_ROUNDS && r->ok; k++) {
        double warm = k == 0 ? o->warmup : o->warmup / 4;
        s_fixed_round(o, big, r->build.finished, each, warm, &r->fixed_big, r);
        s_fixed_round(o, &small, r->small.finished, each, warm, &r->fixed_small, r);
    }
    r->ran_fixed = true;
    if (bench_daemon_stop(&small) != 0)
        s_fail(r, "the daemon on the small store did not stop cleanly");
    bench_rmrf(dir);
}

int bench_scale_run(const bench_opts_t *o, bench_scale_t *r)
{
    memset(r, 0, sizeof *r);
    r->ran = true;
    char dir[512], data[600];
    if (bench_mkdtemp(o, "scale", dir, sizeof dir) != 0) {
        s_fail(r, "no temp directory");
        return -1;
    }
    snprintf(data, sizeof data, "%s/data", dir);
    fprintf(stderr, "claimflow-bench: scale: building %ld finished claims, %ld pending timers\n",
            o->scale, o->scale_timers);
    if (bench_scale_build(o, dir, o->scale, o->scale_timers, &r->build) != 0) {
        s_fail(r, r->build.first_error[0] ? r->build.first_error : "the build failed");
        bench_rmrf(dir);
        return -1;
    }
    r->ok = true;
    s_settle(r->build.build_seconds);
    bench_store_t st;
    if (bench_store_read(data, false, &st) == 0) {
        r->store_file_bytes = st.file_bytes;
        r->store_used_bytes = bench_store_bytes(&st, NULL);
    }
    fprintf(stderr, "claimflow-bench: scale: built in %.1f s (%" PRIu64 " timers); starting the "
                    "daemon\n", r->build.build_seconds, r->build.pending_timers);

    bench_daemon_t d;
    if (bench_daemon_start(o, dir, data, r->build.clock_end, &d) != 0) {
        s_fail(r, "the daemon did not start on the scale store");
        bench_rmrf(dir);
        return -1;
    }
    r->startup_line_ms = (d.ready_at - d.started_at) * 1e3;
    void *ctx = zmq_ctx_new();
    void *ps = zmq_socket(ctx, ZMQ_DEALER), *os = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(ps, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(os, ZMQ_LINGER, &linger, sizeof linger);
    zmq_connect(ps, d.portal);
    zmq_connect(os, d.operator);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    zmq_msg_t m;
    zmq_msg_init(&m);
    double ms, v[21];
    char err[480];

    /* Start-up: the first reply. */
    msgpack_pack_map(&pk, 1);
    bench_mp_kv(&pk, "op", "ping");
    if (s_call(ps, &sb, &up, &m, &ms) != 0 || !bench_mp_ok(&up.data, err, sizeof err))
        s_fail(r, "ping");
    r->startup_ms = (bench_now() - d.started_at) * 1e3;
    bench_proc_t p;
    if (bench_proc_read(d.pid, &p) == 0)
        r->startup_rss_kib = p.rss_kib;

    /* The handler's queue, first page. */
    long want_q = r->build.open < 100 ? r->build.open : 100;
    for (int i = 0; i < 21; i++) {
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 5);
        bench_mp_kv(&pk, "op", "query");
        bench_mp_kv(&pk, "actor", "hanne");
        bench_mp_kv(&pk, "workflow", "health_claim");
        bench_mp_kv(&pk, "state", "in_review");
        cf_pack_str(&pk, "limit");
        msgpack_pack_int64(&pk, 100);
        if (s_call(os, &sb, &up, &m, &ms) != 0 || !bench_mp_ok(&up.data, err, sizeof err)) {
            s_fail(r, "queue query");
            break;
        }
        const msgpack_object *cl = cf_mp_get(&up.data, "claims");
        r->queue_count = cl && cl->type == MSGPACK_OBJECT_ARRAY ? cl->via.array.size : 0;
        if (r->queue_count != (uint32_t)want_q)
            s_fail(r, "the queue's first page is not full");
        if (i == 0)
            r->queue_first_ms = ms;
        else
            v[i - 1] = ms;
    }
    r->queue_p50_ms = s_median(v, 20);

    /* A member's claims: 21 members spread over the store. */
    uint64_t rng = 7;
    for (int i = 0; i < 21; i++) {
        char cpr[12];
        bench_cpr(50000000 + bench_rand(&rng) % (uint64_t)r->build.members, cpr);
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 2);
        bench_mp_kv(&pk, "op", "query");
        bench_mp_kv(&pk, "member", cpr);
        if (s_call(ps, &sb, &up, &m, &ms) != 0 || !bench_mp_ok(&up.data, err, sizeof err)) {
            s_fail(r, "member query");
            break;
        }
        const msgpack_object *cl = cf_mp_get(&up.data, "claims");
        r->member_count = cl && cl->type == MSGPACK_OBJECT_ARRAY ? cl->via.array.size : 0;
        if (r->member_count < 1)
            s_fail(r, "a member's query found no claims");
        if (i == 0)
            r->member_first_ms = ms;
        else
            v[i - 1] = ms;
    }
    r->member_p50_ms = s_median(v, 20);

    /* The fixed rate, before the timers fire: the store as built. */
    if (o->scale_rate > 0)
        s_fixed_both(o, &d, r);

    /* Fire the first N due timers. */
    cf_time_t due = 0;
    r->fire_asked = (uint64_t)o->scale_fire;
    if (r->fire_asked > r->build.pending_timers)
        r->fire_asked = r->build.pending_timers;
    if (r->fire_asked && s_nth_due(data, r->fire_asked, &due) == 0) {
        char at[CF_TIME_BUFLEN];
        cf_time_format(due, at);
        msgpack_sbuffer_clear(&sb);
        msgpack_pack_map(&pk, 4);
        bench_mp_kv(&pk, "id", "scale-clock-set");
        bench_mp_kv(&pk, "op", "clock.set");
        bench_mp_kv(&pk, "actor", "hanne");
        bench_mp_kv(&pk, "at", at);
        if (s_call(os, &sb, &up, &m, &ms) != 0 || !bench_mp_ok(&up.data, err, sizeof err)) {
            s_fail(r, "clock.set");
        } else {
            const msgpack_object *f = cf_mp_get(&up.data, "fired");
            r->fire_fired = f && f->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? f->via.u64 : 0;
            r->fire_ms = ms;
            if (r->fire_fired < r->fire_asked)
                s_fail(r, "fewer timers fired than were due");
        }
    } else if (r->fire_asked) {
        s_fail(r, "cannot read the timers");
    }
    if (bench_proc_read(d.pid, &p) == 0)
        r->daemon_hwm_kib = p.hwm_kib;

    zmq_msg_close(&m);
    msgpack_unpacked_destroy(&up);
    msgpack_sbuffer_destroy(&sb);
    zmq_close(ps);
    zmq_close(os);
    zmq_ctx_term(ctx);
    if (bench_daemon_stop(&d) != 0)
        s_fail(r, "the daemon did not stop cleanly");
    bench_rmrf(dir);
    return r->ok ? 0 : -1;
}

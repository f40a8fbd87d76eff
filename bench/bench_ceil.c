/* bench_ceil.c: the ceilings the engine is measured against, in the same run
 * on the same machine.
 *
 * Raw LMDB.  The writes the engine made for the calibration lifecycles
 * (bench_rec.c: every put and delete, with its database, key and value size,
 * in order) are replayed into a fresh environment opened as the engine opens
 * its own (MDB_NOTLS, no NOSYNC: every commit is fsync'd), with nothing else
 * around them: no request parsing, no state machine, no reads, no replies.
 * Three ways: one commit per transition (what a server without group commit
 * could do at best), `batch` transitions per commit (the daemon's own mean
 * batch in the closed-loop run), and 256 per commit (the daemon's largest
 * batch).  A commit is cut at the op that ends the batch's share of the
 * recording (records per transition x batch), not at a request boundary the
 * recording does not keep; over thousands of commits the difference is
 * nothing.
 *
 * Raw ZeroMQ.  An echo server thread on a ROUTER bound to loopback TCP, like
 * the daemon's, answering each request frame with a reply frame of the size
 * the daemon's replies had; DEALER clients as in the load.  One client with
 * one request in flight gives the round trip; clients x inflight as in the
 * load give the pipelined rate.
 */
#include "bench.h"

#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

/* ============================================================== LMDB === */

typedef struct {
    double tps;
    bench_lat_t commit;       /* ns per commit */
    bool ok;
} s_replay_t;

static void s_replay(const bench_opts_t *o, const bench_rec_t *rec, double per_commit,
                     double max_seconds, s_replay_t *out)
{
    memset(out, 0, sizeof *out);
    char dir[512];
    if (bench_mkdtemp(o, "lmdb", dir, sizeof dir) != 0)
        return;
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_dbi dbi[BENCH_MAX_DBS];
    unsigned char *vals = NULL;
    uint32_t vmax = 1;
    uint64_t vbytes = 0;
    for (size_t i = 0; i < rec->nops; i++) {
        if (rec->ops[i].vlen > vmax)
            vmax = rec->ops[i].vlen;
        vbytes += rec->ops[i].vlen + rec->ops[i].klen;
    }
    size_t map = (size_t)vbytes * 4 + ((size_t)256 << 20);
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 64) != 0 ||
        mdb_env_set_mapsize(env, map) != 0 || mdb_env_open(env, dir, MDB_NOTLS, 0600) != 0)
        goto out;
    if (!(vals = malloc(vmax)))
        goto out;
    uint64_t rng = 0x243F6A8885A308D3ULL;
    for (uint32_t i = 0; i < vmax; i++)
        vals[i] = (unsigned char)bench_rand(&rng);
    if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
        goto out;
    for (int i = 0; i < rec->ndbs; i++)
        if (mdb_dbi_open(txn, rec->names[i], MDB_CREATE, &dbi[i]) != 0)
            goto out_abort;
    if (mdb_txn_commit(txn) != 0) {
        txn = NULL;
        goto out;
    }
    txn = NULL;

    double ops_per_trans = (double)rec->nops / (double)rec->transitions;
    size_t per = (size_t)(per_commit * ops_per_trans + 0.5);
    if (per < 1)
        per = 1;
    double t0 = bench_now();
    size_t done = 0;
    while (done < rec->nops) {
        if (mdb_txn_begin(env, NULL, 0, &txn) != 0)
            goto out;
        size_t end = done + per < rec->nops ? done + per : rec->nops;
        for (; done < end; done++) {
            const bench_recop_t *op = &rec->ops[done];
            MDB_val k = {op->klen, rec->keys + op->koff};
            int rc;
            if (op->del) {
                rc = mdb_del(txn, dbi[op->db], &k, NULL);
                if (rc == MDB_NOTFOUND)
                    rc = 0;
            } else {
                MDB_val v = {op->vlen, vals};
                rc = mdb_put(txn, dbi[op->db], &k, &v, 0);
            }
            if (rc != 0) {
                fprintf(stderr, "claimflow-bench: LMDB replay: %s\n", mdb_strerror(rc));
                goto out_abort;
            }
        }
        uint64_t c0 = bench_now_ns();
        int rc = mdb_txn_commit(txn);
        txn = NULL;
        if (rc != 0) {
            fprintf(stderr, "claimflow-bench: LMDB replay commit: %s\n", mdb_strerror(rc));
            goto out;
        }
        bench_lat_add(&out->commit, bench_now_ns() - c0);
        if (bench_now() - t0 > max_seconds)
            break;
    }
    double secs = bench_now() - t0;
    out->tps = secs > 0 ? (double)done / ops_per_trans / secs : 0;
    out->ok = true;
    goto out;
out_abort:
    mdb_txn_abort(txn);
out:
    if (env)
        mdb_env_close(env);
    free(vals);
    bench_rmrf(dir);
}

int bench_ceil_lmdb(const bench_opts_t *o, const bench_rec_t *rec, double batch, bench_ceil_t *c)
{
    if (!rec->nops || !rec->transitions) {
        snprintf(c->first_error, sizeof c->first_error, "no engine writes were recorded");
        return -1;
    }
    c->rec_ops = rec->nops;
    c->rec_transitions = rec->transitions;
    c->records_per_transition = (double)rec->nops / (double)rec->transitions;
    uint64_t bytes = 0;
    for (int i = 0; i < rec->ndbs; i++)
        bytes += rec->kbytes[i] + rec->vbytes[i];
    c->bytes_per_transition = (double)bytes / (double)rec->transitions;
    c->lmdb_batch = batch < 1 ? 1 : batch;
    s_replay_t r;
    s_replay(o, rec, 1, o->ceil_seconds, &r);
    c->lmdb_sync1_tps = r.tps;
    c->lmdb_sync1_commit_p50_us = (double)bench_lat_q(&r.commit, 0.5) / 1e3;
    c->lmdb_sync1_commit_p99_us = (double)bench_lat_q(&r.commit, 0.99) / 1e3;
    bench_lat_free(&r.commit);
    bool ok = r.ok;
    /* The batched replays run through the whole recording: it is sized so
     * that takes a second or so, long enough for thousands of commits. */
    s_replay(o, rec, c->lmdb_batch, 1e9, &r);
    c->lmdb_batch_tps = r.tps;
    bench_lat_free(&r.commit);
    ok &= r.ok;
    s_replay(o, rec, 256, 1e9, &r);
    c->lmdb_batch256_tps = r.tps;
    bench_lat_free(&r.commit);
    ok &= r.ok;
    if (!ok)
        snprintf(c->first_error, sizeof c->first_error, "the LMDB replay failed");
    return ok ? 0 : -1;
}

/* ============================================================ ZeroMQ === */

typedef struct {
    void *sock;
    size_t rep_bytes;
    atomic_bool stop;
} s_echo_t;

static void *s_echo_main(void *arg)
{
    s_echo_t *E = arg;
    char *rep = calloc(1, E->rep_bytes ? E->rep_bytes : 1);
    zmq_pollitem_t it = {.socket = E->sock, .events = ZMQ_POLLIN};
    while (rep && !atomic_load(&E->stop)) {
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        /* Like the daemon: take what is waiting (up to 256), then answer. */
        for (int n = 0; n < 256; n++) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            if (zmq_msg_recv(&id, E->sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                break;
            }
            zmq_msg_init(&body);
            zmq_msg_recv(&body, E->sock, 0);
            zmq_msg_close(&body);
            zmq_msg_send(&id, E->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT);
            zmq_send(E->sock, rep, E->rep_bytes, ZMQ_DONTWAIT);
            zmq_msg_close(&id);
        }
    }
    free(rep);
    return NULL;
}

int bench_ceil_zmq(const bench_opts_t *o, size_t req_bytes, size_t rep_bytes, bench_ceil_t *c)
{
    c->zmq_req_bytes = req_bytes;
    c->zmq_rep_bytes = rep_bytes;
    c->zmq_clients = o->clients;
    c->zmq_inflight = o->inflight;
    void *ctx = zmq_ctx_new();
    s_echo_t E = {.rep_bytes = rep_bytes};
    atomic_init(&E.stop, false);
    E.sock = zmq_socket(ctx, ZMQ_ROUTER);
    int hwm = 10000, linger = 0;
    zmq_setsockopt(E.sock, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(E.sock, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(E.sock, ZMQ_LINGER, &linger, sizeof linger);
    char ep[256];
    size_t el = sizeof ep;
    if (zmq_bind(E.sock, "tcp://127.0.0.1:*") < 0 ||
        zmq_getsockopt(E.sock, ZMQ_LAST_ENDPOINT, ep, &el) < 0) {
        zmq_close(E.sock);
        zmq_ctx_term(ctx);
        return -1;
    }
    pthread_t th;
    if (pthread_create(&th, NULL, s_echo_main, &E) != 0) {
        zmq_close(E.sock);
        zmq_ctx_term(ctx);
        return -1;
    }
    char *req = calloc(1, req_bytes ? req_bytes : 1);
    int n = o->clients;
    void **socks = calloc((size_t)n, sizeof *socks);
    zmq_pollitem_t *items = calloc((size_t)n, sizeof *items);
    bool ok = req && socks && items;
    for (int i = 0; ok && i < n; i++) {
        socks[i] = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(socks[i], ZMQ_LINGER, &linger, sizeof linger);
        ok = zmq_connect(socks[i], ep) == 0;
        items[i] = (zmq_pollitem_t){.socket = socks[i], .events = ZMQ_POLLIN};
    }
    /* Round trip: one request in flight. */
    bench_lat_t rtt = {0};
    double t0 = bench_now();
    while (ok && bench_now() - t0 < o->ceil_seconds) {
        uint64_t s0 = bench_now_ns();
        zmq_send(socks[0], req, req_bytes, 0);
        zmq_msg_t m;
        zmq_msg_init(&m);
        zmq_pollitem_t it = {.socket = socks[0], .events = ZMQ_POLLIN};
        if (zmq_poll(&it, 1, 5000) <= 0 || zmq_msg_recv(&m, socks[0], 0) < 0)
            ok = false;
        zmq_msg_close(&m);
        bench_lat_add(&rtt, bench_now_ns() - s0);
    }
    c->zmq_rtt_p50_us = (double)bench_lat_q(&rtt, 0.5) / 1e3;
    c->zmq_rtt_p99_us = (double)bench_lat_q(&rtt, 0.99) / 1e3;
    bench_lat_free(&rtt);
    /* Pipelined: every client keeps `inflight` requests going. */
    uint64_t outstanding = 0, counted = 0;
    for (int i = 0; ok && i < n; i++)
        for (int k = 0; k < o->inflight; k++, outstanding++)
            zmq_send(socks[i], req, req_bytes, 0);
    double warm = bench_now() + o->ceil_seconds * 0.2;
    double end = warm + o->ceil_seconds;
    while (ok && outstanding) {
        double now = bench_now();
        if (now > end + 10) {
            ok = false;
            break;
        }
        if (zmq_poll(items, n, 100) < 0)
            break;
        now = bench_now();
        for (int i = 0; i < n; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            zmq_msg_t m;
            zmq_msg_init(&m);
            while (zmq_msg_recv(&m, socks[i], ZMQ_DONTWAIT) >= 0) {
                outstanding--;
                if (now >= warm && now < end)
                    counted++;
                if (now < end) {
                    zmq_send(socks[i], req, req_bytes, 0);
                    outstanding++;
                }
            }
            zmq_msg_close(&m);
        }
    }
    c->zmq_pipelined_rps = (double)counted / o->ceil_seconds;
    for (int i = 0; socks && i < n; i++)
        if (socks[i])
            zmq_close(socks[i]);
    atomic_store(&E.stop, true);
    pthread_join(th, NULL);
    zmq_close(E.sock);
    zmq_ctx_term(ctx);
    free(socks);
    free(items);
    free(req);
    if (!ok)
        snprintf(c->first_error, sizeof c->first_error, "the ZeroMQ echo run failed");
    return ok ? 0 : -1;
}

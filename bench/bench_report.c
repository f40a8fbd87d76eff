/* bench_report.c: the results as a table (stdout, for people and for
 * docs/BENCHMARKS.md) and as JSON (--json FILE, for tools and for comparing
 * runs).  Both come from the one bench_result_t; the JSON writer is a few
 * printf calls, since every value is a number, a bool or a plain string.
 *
 * Ratios to the ceilings are computed here, once, so the table and the JSON
 * cannot disagree.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

void bench_check(bench_result_t *R, bool ok, const char *fmt, ...)
{
    if (ok) {
        R->passed++;
        return;
    }
    R->failed++;
    va_list ap;
    va_start(ap, fmt);
    if ((size_t)R->failed <= sizeof R->failures / sizeof R->failures[0])
        vsnprintf(R->failures[R->failed - 1], sizeof R->failures[0], fmt, ap);
    va_end(ap);
}

typedef struct {
    double closed_tps, closed_cps, closed_rps, closed_batch;
    double closed_daemon_cpu_pct;
    double open_tps;
    double r_lmdb_batch, r_lmdb_256, r_lmdb_sync1, r_inproc_batch, r_zmq_rps, r_open_rtt;
    double open_p99_ms;
    double r_open_p99_commit_p99;   /* open-loop p99 / one durable commit's p99 */
    double r_closed_inproc;         /* daemon closed loop / engine in-process */
    double open_commit_p99_us;      /* the daemon's own commits in the open loop, p99 */
    double r_open_p99_own_commit;   /* open-loop p99 / that */
    double r_hook;                  /* in-process with a no-op hook / without */
    double fixed_big_p50_ms, fixed_big_p99_ms, fixed_small_p50_ms, fixed_small_p99_ms;
    double r_fixed_p99;             /* p99 at a fixed rate, big store / small store */
} s_derived_t;

static double s_div(double a, double b)
{
    return b > 0 ? a / b : 0;
}

static double s_ms(bench_lat_t *l, double q)
{
    return (double)bench_lat_q(l, q) / 1e6;
}

static void s_derive(bench_result_t *R, s_derived_t *x)
{
    memset(x, 0, sizeof *x);
    bench_load_t *c = &R->closed, *o = &R->open;
    if (R->ran_closed) {
        x->closed_tps = s_div((double)c->transitions, c->seconds);
        x->closed_cps = s_div((double)c->claims_done, c->seconds);
        x->closed_rps = s_div((double)c->requests, c->seconds);
        x->closed_batch = s_div((double)c->requests, (double)c->commits);
        x->closed_daemon_cpu_pct = s_div(100 * c->daemon_cpu, c->seconds);
    }
    if (R->ran_open) {
        x->open_tps = s_div((double)o->transitions, o->seconds);
        x->open_p99_ms = s_ms(&o->lat, 0.99);
    }
    if (R->ran_ceil) {
        x->r_lmdb_batch = s_div(x->closed_tps, R->ceil.lmdb_batch_tps);
        x->r_lmdb_256 = s_div(x->closed_tps, R->ceil.lmdb_batch256_tps);
        x->r_lmdb_sync1 = s_div(x->closed_tps, R->ceil.lmdb_sync1_tps);
        x->r_zmq_rps = s_div(x->closed_rps, R->ceil.zmq_pipelined_rps);
        x->r_open_rtt = R->ran_open ? s_div(s_ms(&o->lat, 0.5) * 1e3, R->ceil.zmq_rtt_p50_us) : 0;
    }
    if (R->ran_calib && R->ran_ceil)
        x->r_inproc_batch = s_div(R->calib.tps, R->ceil.lmdb_batch_tps);
    if (R->ran_open && R->ran_ceil)
        x->r_open_p99_commit_p99 = s_div(x->open_p99_ms * 1e3, R->ceil.lmdb_sync1_commit_p99_us);
    if (R->ran_open) {
        x->open_commit_p99_us = bench_hist_q_us(o->commit_hist, 0.99);
        x->r_open_p99_own_commit = s_div(x->open_p99_ms * 1e3, x->open_commit_p99_us);
    }
    if (R->ran_closed && R->ran_calib)
        x->r_closed_inproc = s_div(x->closed_tps, R->calib.tps);
    if (R->ran_calib && R->ran_calib_hook)
        x->r_hook = s_div(R->calib_hook.tps, R->calib.tps);
    if (R->scale.ran_fixed) {
        x->fixed_big_p50_ms = s_ms(&R->scale.fixed_big.lat, 0.5);
        x->fixed_big_p99_ms = s_ms(&R->scale.fixed_big.lat, 0.99);
        x->fixed_small_p50_ms = s_ms(&R->scale.fixed_small.lat, 0.5);
        x->fixed_small_p99_ms = s_ms(&R->scale.fixed_small.lat, 0.99);
        x->r_fixed_p99 = s_div(x->fixed_big_p99_ms, x->fixed_small_p99_ms);
    }
}

/* Where the daemon's loop spent the measured window, from its profile. */
static void s_table_loop(FILE *f, const bench_load_t *l)
{
    if (!l->has_loop)
        return;
    double total = 0;
    for (int k = 0; k < 7; k++)
        if (k != 3)             /* commit is inside run */
            total += l->loop_us[k];
    if (total <= 0)
        return;
    static const char *const names[] = {"waiting in poll", "receive (frames, checks)",
                                        "engine run, without commit", "commit (LMDB fsyncs)",
                                        "stage and send replies", "timers", "other"};
    fprintf(f, "  %-34s %9s %12s\n", "daemon loop, share of the window", "",
            "us per batch");
    for (int k = 0; k < 7; k++) {
        double us = k == 2 ? l->loop_us[2] - l->loop_us[3] : l->loop_us[k];
        fprintf(f, "    %-32s %8.1f%% %12.1f\n", names[k], 100 * us / total,
                l->loop_batches ? us / (double)l->loop_batches : 0);
    }
    fprintf(f, "    %-32s %9s %12" PRIu64 "\n", "batches", "", l->loop_batches);
    uint64_t n = 0;
    for (int b = 0; b < CF_STORE_HIST; b++)
        n += l->commit_hist[b];
    if (n)
        fprintf(f, "  %-34s %12.0f %8.0f %8.0f   (%" PRIu64 " commits; bucket bounds)\n",
                "daemon commit us p50 p99 max", bench_hist_q_us(l->commit_hist, 0.5),
                bench_hist_q_us(l->commit_hist, 0.99), bench_hist_q_us(l->commit_hist, 1.0), n);
}

static void s_table_load(FILE *f, bench_load_t *l, const char *title)
{
    fprintf(f, "\n%s\n", title);
    fprintf(f, "  %-34s %12.0f\n", "durable transitions/s", s_div((double)l->transitions, l->seconds));
    fprintf(f, "  %-34s %12.0f\n", "claims finished/s", s_div((double)l->claims_done, l->seconds));
    fprintf(f, "  %-34s %12.0f\n", "requests answered/s", s_div((double)l->requests, l->seconds));
    fprintf(f, "  %-34s %12.2f %8.2f %8.2f %8.2f\n", "latency ms p50 p99 p99.9 max",
            s_ms(&l->lat, 0.5), s_ms(&l->lat, 0.99), s_ms(&l->lat, 0.999),
            (double)bench_lat_max(&l->lat) / 1e6);
    for (int k = 0; k < BENCH_K__COUNT; k++)
        if (l->lat_kind[k].n)
            fprintf(f, "    %-32s %12.2f %8.2f %8.2f   (%zu)\n", bench_kind_names[k],
                    s_ms(&l->lat_kind[k], 0.5), s_ms(&l->lat_kind[k], 0.99),
                    s_ms(&l->lat_kind[k], 0.999), l->lat_kind[k].n);
    fprintf(f, "  %-34s %12.0f  (%.1f requests per commit)\n", "commits/s",
            s_div((double)l->commits, l->seconds), s_div((double)l->requests, (double)l->commits));
    fprintf(f, "  %-34s %11.0f%%  of one core (bench itself: %.0f%%)\n", "daemon CPU",
            s_div(100 * l->daemon_cpu, l->seconds), s_div(100 * l->bench_cpu, l->seconds));
    /* A VM's host may give our vCPUs' time to others: a window with much
     * of it measured the neighbours, not the daemon. */
    fprintf(f, "  %-34s %11.1f%%  of the machine's CPU time\n", "CPU steal (hypervisor)",
            l->steal_pct);
    fprintf(f, "  %-34s %12.1f MiB\n", "daemon peak memory (VmHWM)", (double)l->daemon_hwm_kib / 1024);
    fprintf(f, "  %-34s %12" PRIu64 " ok, %" PRIu64 " not ok\n", "replies (whole phase)", l->all_ok,
            l->all_err);
    if (l->rate > 0)
        fprintf(f, "  %-34s %12" PRIu64 "\n", "requests sent > 1 ms late", l->late_sends);
    if (l->first_error[0])
        fprintf(f, "  first error: %s\n", l->first_error);
}

/* --cluster's figures, derived once for the table and the JSON. */
typedef struct {
    double s_tps, r_tps;               /* closed loop, transitions/s */
    double s_open_tps, r_open_tps;     /* achieved at the fixed rate */
    double s_p50, r_p50, s_p99, r_p99; /* open loop, ms */
    double s_batch, r_batch;           /* closed loop, requests per commit */
    double ratio_tps, ratio_p50, ratio_p99;
    double fail_max_s, fail_mean_s;
} s_cluster_fig_t;

static void s_cluster_fig(bench_cluster_res_t *C, s_cluster_fig_t *g)
{
    memset(g, 0, sizeof *g);
    bench_load_t *sc = &C->single_closed, *so = &C->single_open;
    bench_load_t *rc = &C->repl_closed, *ro = &C->repl_open;
    g->s_tps = s_div((double)sc->transitions, sc->seconds);
    g->r_tps = s_div((double)rc->transitions, rc->seconds);
    g->s_open_tps = s_div((double)so->transitions, so->seconds);
    g->r_open_tps = s_div((double)ro->transitions, ro->seconds);
    g->s_p50 = s_ms(&so->lat, 0.5);
    g->r_p50 = s_ms(&ro->lat, 0.5);
    g->s_p99 = s_ms(&so->lat, 0.99);
    g->r_p99 = s_ms(&ro->lat, 0.99);
    g->s_batch = s_div((double)sc->requests, (double)sc->commits);
    g->r_batch = s_div((double)rc->requests, (double)rc->commits);
    g->ratio_tps = s_div(g->r_tps, g->s_tps);
    g->ratio_p50 = s_div(g->r_p50, g->s_p50);
    g->ratio_p99 = s_div(g->r_p99, g->s_p99);
    double sum = 0;
    int n = 0;
    for (int k = 0; k < C->nfail; k++) {
        if (C->fail[k].ack_s <= 0)
            continue;
        sum += C->fail[k].ack_s;
        n++;
        if (C->fail[k].ack_s > g->fail_max_s)
            g->fail_max_s = C->fail[k].ack_s;
    }
    g->fail_mean_s = n ? sum / n : 0;
}

static void s_table_cluster(bench_result_t *R, FILE *f)
{
    bench_cluster_res_t *C = &R->cluster;
    const bench_opts_t *o = R->o;
    s_cluster_fig_t g;
    s_cluster_fig(C, &g);
    char t[200];
    if (C->ran_single) {
        snprintf(t, sizeof t, "single node: closed loop, %.1f s after %.1f s warm-up", o->duration,
                 o->warmup);
        s_table_load(f, &C->single_closed, t);
        s_table_loop(f, &C->single_closed);
        snprintf(t, sizeof t, "single node: open loop at %.0f transitions/s, %.1f s", C->rate,
                 o->duration);
        s_table_load(f, &C->single_open, t);
    }
    if (C->ran_repl) {
        snprintf(t, sizeof t, "3 replicas (leader): closed loop, %.1f s after %.1f s warm-up",
                 o->duration, o->warmup);
        s_table_load(f, &C->repl_closed, t);
        s_table_loop(f, &C->repl_closed);
        snprintf(t, sizeof t, "3 replicas (leader): open loop at %.0f transitions/s, %.1f s",
                 C->rate, o->duration);
        s_table_load(f, &C->repl_open, t);
    }
    fprintf(f, "\nreplicas: 3 claimflowd on a 3-member etcd (lease %u s) beside a single node, "
               "same run\n", C->lease);
    fprintf(f, "  %-34s %12s %12s %8s\n", "", "single", "3 replicas", "ratio");
    fprintf(f, "  %-34s %12.0f %12.0f %8.3f\n", "closed loop, durable transitions/s", g.s_tps,
            g.r_tps, g.ratio_tps);
    fprintf(f, "  %-34s %12.1f %12.1f\n", "  requests per commit", g.s_batch, g.r_batch);
    snprintf(t, sizeof t, "open loop at %.0f tr/s, achieved", C->rate);
    fprintf(f, "  %-34s %12.0f %12.0f\n", t, g.s_open_tps, g.r_open_tps);
    fprintf(f, "  %-34s %12.2f %12.2f %8.2f\n", "  latency p50 ms", g.s_p50, g.r_p50, g.ratio_p50);
    fprintf(f, "  %-34s %12.2f %12.2f %8.2f\n", "  latency p99 ms", g.s_p99, g.r_p99, g.ratio_p99);
    if (!C->nfail)
        return;
    fprintf(f, "\nfailover: kill -9 of the leader under %.0f creates/s (lease %u s); time from "
               "the kill to the first ok from the next leader\n", C->rate, C->lease);
    fprintf(f, "  %-3s %-9s %10s %14s %8s %8s %11s\n", "#", "from->to", "ack s", "leader named s",
            "sent", "refused", "unanswered");
    for (int k = 0; k < C->nfail; k++) {
        bench_failover_t *x = &C->fail[k];
        fprintf(f, "  %-3d %c->%-6c %10.2f %14.2f %8" PRIu64 " %8" PRIu64 " %11" PRIu64 "\n",
                k + 1, 'a' + x->from, x->to >= 0 ? 'a' + x->to : '?', x->ack_s, x->named_s,
                x->sent, x->refused, x->unanswered);
    }
    fprintf(f, "  %-34s %12.2f s (mean %.2f s; the tests' bound 2 x lease + 5 = %u s)\n",
            "failover, max", g.fail_max_s, g.fail_mean_s, 2 * C->lease + 5);
}

void bench_report_table(bench_result_t *R, FILE *f)
{
    const bench_opts_t *o = R->o;
    s_derived_t x;
    s_derive(R, &x);
    fprintf(f, "claimflow-bench: %s, %s, kernel %s\n", R->started, R->machine, R->kernel);
    fprintf(f, "load average before %.2f %.2f %.2f, after %.2f %.2f %.2f; run took %.0f s\n",
            R->load_before[0], R->load_before[1], R->load_before[2], R->load_after[0],
            R->load_after[1], R->load_after[2], R->wall_seconds);
    fprintf(f, "clients %d x %d in flight, mix lifecycle:inquiry:read %d:%d:%d, referral %zu bytes\n",
            o->clients, o->inflight, o->mix[0], o->mix[1], o->mix[2], o->doc_bytes);
    char t[160];
    if (R->cluster.ran)
        s_table_cluster(R, f);
    if (R->ran_closed) {
        snprintf(t, sizeof t, "closed loop, %.1f s after %.1f s warm-up", o->duration, o->warmup);
        s_table_load(f, &R->closed, t);
        s_table_loop(f, &R->closed);
    }
    if (R->ran_open) {
        snprintf(t, sizeof t, "open loop at %.0f transitions/s (%.0f requests/s), %.1f s; latency "
                 "from the intended send time", R->open.rate, R->open.req_rate, o->duration);
        s_table_load(f, &R->open, t);
        s_table_loop(f, &R->open);
    }
    if (R->storefig.ran) {
        bench_storefig_t *s = &R->storefig;
        fprintf(f, "\nstore: %ld lifecycles run to in_treatment on a fresh daemon\n", s->claims);
        fprintf(f, "  %-34s %12.0f\n", "bytes per finished claim, no docs", s->per_claim);
        fprintf(f, "  %-34s %12.0f\n", "  and without idem (kept 7 days)", s->per_claim_noidem);
        fprintf(f, "  %-34s %12.0f\n", "  of which the access log", s->audit_per_claim);
        fprintf(f, "  %-34s %12.0f\n", "data.mdb file bytes per claim", s->file_per_claim);
        fprintf(f, "  %-14s %10s %10s %10s %10s\n", "database", "entries", "bytes", "B/claim",
                "avg val");
        for (int i = 0; i < s->st.ndbs; i++) {
            bench_dbstat_t *d = &s->st.dbs[i];
            /* The access log is listed even when empty: it is part of
             * what a claim costs (issue 18, item 7). */
            if (!d->entries && strncmp(d->name, "audit", 5) != 0)
                continue;
            double b = (double)(d->pages * s->st.psize);
            fprintf(f, "  %-14s %10" PRIu64 " %10.0f %10.0f %10.0f\n", d->name, d->entries, b,
                    s_div(b, (double)s->claims), d->avg_val);
        }
    }
    if (R->ran_calib) {
        fprintf(f, "\nengine in-process (no ZeroMQ): %ld lifecycles, %d per transaction\n",
                R->calib.lifecycles, R->calib.batch);
        fprintf(f, "  %-34s %12.0f  (CPU %.0f%% of the time)\n", "durable transitions/s",
                R->calib.tps, s_div(100 * R->calib.cpu, R->calib.seconds));
        /* One commit per step of the lock-stepped batch. */
        double commits = R->calib.batch ? (double)R->calib.transitions / R->calib.batch : 0;
        fprintf(f, "  %-34s %12.0f %8.0f %8.0f   (LMDB's commits: %.0f%% of the time)\n",
                "commit us per batch mean p50 p99", s_div(R->calib.commit_us, commits),
                bench_hist_q_us(R->calib.commit_hist, 0.5),
                bench_hist_q_us(R->calib.commit_hist, 0.99),
                s_div(100 * R->calib.commit_us / 1e6, R->calib.seconds));
        if (R->ran_calib_hook)
            fprintf(f, "  %-34s %12.0f  (%.2f of no hook)\n", "  with a no-op commit hook",
                    R->calib_hook.tps, s_div(R->calib_hook.tps, R->calib.tps));
    }
    if (R->ran_ceil) {
        bench_ceil_t *c = &R->ceil;
        fprintf(f, "\nceilings (same run, same machine)\n");
        fprintf(f, "  %-34s %12.1f  (%.0f bytes)\n", "LMDB records written/transition",
                c->records_per_transition, c->bytes_per_transition);
        fprintf(f, "  %-34s %12.0f  (commit p50 %.0f us, p99 %.0f us)\n",
                "LMDB 1 fsync/transition, tr/s", c->lmdb_sync1_tps, c->lmdb_sync1_commit_p50_us,
                c->lmdb_sync1_commit_p99_us);
        snprintf(t, sizeof t, "LMDB batched x%.1f, tr/s", c->lmdb_batch);
        fprintf(f, "  %-34s %12.0f\n", t, c->lmdb_batch_tps);
        fprintf(f, "  %-34s %12.0f\n", "LMDB batched x256, tr/s", c->lmdb_batch256_tps);
        fprintf(f, "  %-34s %12.1f %8.1f  (%zu B request, %zu B reply)\n",
                "ZeroMQ round trip us p50 p99", c->zmq_rtt_p50_us, c->zmq_rtt_p99_us,
                c->zmq_req_bytes, c->zmq_rep_bytes);
        fprintf(f, "  %-34s %12.0f  (%d x %d in flight)\n", "ZeroMQ pipelined requests/s",
                c->zmq_pipelined_rps, c->zmq_clients, c->zmq_inflight);
        fprintf(f, "\nratios\n");
        fprintf(f, "  %-44s %8.2f\n", "daemon / LMDB batched (same batch)", x.r_lmdb_batch);
        fprintf(f, "  %-44s %8.2f\n", "daemon / LMDB batched x256", x.r_lmdb_256);
        fprintf(f, "  %-44s %8.2f\n", "daemon / LMDB one fsync per transition", x.r_lmdb_sync1);
        fprintf(f, "  %-44s %8.2f\n", "engine in-process / LMDB batched (same batch)",
                x.r_inproc_batch);
        fprintf(f, "  %-44s %8.2f\n", "daemon requests/s / ZeroMQ pipelined", x.r_zmq_rps);
        if (R->ran_open)
            fprintf(f, "  %-44s %8.1f\n", "open-loop p50 latency / ZeroMQ round trip", x.r_open_rtt);
        if (R->ran_open)
            fprintf(f, "  %-44s %8.1f  (goal <= 4)\n", "open-loop p99 / one durable commit's p99",
                    x.r_open_p99_commit_p99);
        if (R->ran_open && x.open_commit_p99_us > 0)
            fprintf(f, "  %-44s %8.1f  (the daemon's batch commit p99 %.0f us = %.1f x one "
                       "transition's)\n", "open-loop p99 / the daemon's own commit p99",
                    x.r_open_p99_own_commit, x.open_commit_p99_us,
                    s_div(x.open_commit_p99_us, R->ceil.lmdb_sync1_commit_p99_us));
    }
    if (R->ran_closed && R->ran_calib)
        fprintf(f, "  %-44s %8.2f  (goal >= 0.7)\n", "daemon closed loop / engine in-process",
                x.r_closed_inproc);
    if (R->ran_calib_hook)
        fprintf(f, "  %-44s %8.2f\n", "engine with a no-op commit hook / without", x.r_hook);
    if (R->scale.ran) {
        bench_scale_t *s = &R->scale;
        fprintf(f, "\nscale: %ld finished claims, %ld open (in_review), %ld members, %" PRIu64
                   " pending timers\n", s->build.finished, s->build.open, s->build.members,
                s->build.pending_timers);
        fprintf(f, "  %-34s %12.1f s  (%" PRIu64 " requests in-process)\n", "build", s->build.build_seconds,
                s->build.requests);
        fprintf(f, "  %-34s %12.2f GiB  (pages in use %.2f GiB)\n", "store file",
                (double)s->store_file_bytes / (1 << 30), (double)s->store_used_bytes / (1 << 30));
        fprintf(f, "  %-34s %12.1f ms  (start line %.1f ms), RSS %.1f MiB\n",
                "daemon start-up to first reply", s->startup_ms, s->startup_line_ms,
                (double)s->startup_rss_kib / 1024);
        fprintf(f, "  %-34s %12.2f ms  first, %.2f ms p50 (%u claims)\n", "queue first page",
                s->queue_first_ms, s->queue_p50_ms, s->queue_count);
        fprintf(f, "  %-34s %12.2f ms  first, %.2f ms p50\n", "a member's claims",
                s->member_first_ms, s->member_p50_ms);
        fprintf(f, "  %-34s %12.1f ms  (%" PRIu64 " fired, %.1f us each)\n", "fire due timers",
                s->fire_ms, s->fire_fired, s_div(s->fire_ms * 1e3, (double)s->fire_fired));
        fprintf(f, "  %-34s %12.1f MiB\n", "daemon peak memory (VmHWM)",
                (double)s->daemon_hwm_kib / 1024);
        if (s->ran_fixed) {
            snprintf(t, sizeof t, "open loop at %.0f transitions/s on %ld claims, %.1f s; latency "
                     "from the intended send time", o->scale_rate, s->build.finished,
                     o->scale_seconds);
            s_table_load(f, &s->fixed_big, t);
            s_table_loop(f, &s->fixed_big);
            snprintf(t, sizeof t, "the same on %ld claims (%" PRIu64 " pending timers)",
                     s->small.finished, s->small.pending_timers);
            s_table_load(f, &s->fixed_small, t);
            s_table_loop(f, &s->fixed_small);
            fprintf(f, "  %-44s %8.2f  (p99 %.2f ms / %.2f ms; p50 %.2f / %.2f; goal <= 1.5)\n",
                    "p99 at a fixed rate, big store / small", x.r_fixed_p99, x.fixed_big_p99_ms,
                    x.fixed_small_p99_ms, x.fixed_big_p50_ms, x.fixed_small_p50_ms);
        }
        if (s->first_error[0])
            fprintf(f, "  first error: %s\n", s->first_error);
    }
    if (o->quick) {
        /* Small sizes and few clients: the targets say nothing here. */
        fprintf(f, "\ntargets: not judged in --quick\n\n");
        return;
    }
    if (R->cluster.ran) {
        fprintf(f, "\n");
        return;   /* the targets are the single node's full run */
    }
    fprintf(f, "\ntargets\n");
    if (R->ran_closed)
        fprintf(f, "  %-52s %s (%.0f, %d clients)\n", ">= 20,000 durable transitions/s, 64 clients",
                x.closed_tps >= 20000 && o->clients >= 64 ? "met" : "MISSED", x.closed_tps,
                o->clients);
    if (R->ran_open)
        fprintf(f, "  %-52s %s (p99 %.2f ms at %.0f)\n", "p99 < 10 ms at 5,000 transitions/s open loop",
                x.open_p99_ms < 10 && R->open.rate >= 5000 ? "met" : "MISSED", x.open_p99_ms,
                R->open.rate);
    if (R->storefig.ran)
        fprintf(f, "  %-52s %s (%.0f)\n", "<= 4 KiB store per finished claim, no documents",
                R->storefig.per_claim <= 4096 ? "met" : "MISSED", R->storefig.per_claim);
    if (R->scale.ran)
        fprintf(f, "  %-52s %s (%.0f ms at %ld claims)\n", "start-up < 1 s with 1,000,000 claims",
                R->scale.startup_ms < 1000 && R->scale.build.finished >= 1000000 ? "met" : "MISSED",
                R->scale.startup_ms, R->scale.build.finished);
    if (R->scale.ran_fixed)
        fprintf(f, "  %-52s %s (%.2f, %ld / %ld claims)\n", "p99 at a fixed rate, 1M / 1k claims <= 1.5",
                x.r_fixed_p99 > 0 && x.r_fixed_p99 <= 1.5 && R->scale.build.finished >= 1000000
                    ? "met" : "MISSED", x.r_fixed_p99, R->scale.build.finished,
                R->scale.small.finished);
    if (R->ran_ceil && R->ran_closed)
        fprintf(f, "  %-52s %s (%.2f)\n", ">= 0.5 of the batched-LMDB ceiling",
                x.r_lmdb_batch >= 0.5 ? "met" : "MISSED", x.r_lmdb_batch);
    fprintf(f, "\n");
}

/* ================================================================ JSON === */

static void s_jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static void s_jload(FILE *f, const char *name, bench_load_t *l, bool last)
{
    fprintf(f, "  \"%s\": {\"clients\": %d, \"inflight\": %d, \"rate\": %.1f, \"req_rate\": %.1f, "
               "\"seconds\": %.3f,\n", name, l->clients, l->inflight, l->rate, l->req_rate,
            l->seconds);
    fprintf(f, "    \"transitions_per_s\": %.1f, \"claims_per_s\": %.1f, \"requests_per_s\": %.1f,\n",
            s_div((double)l->transitions, l->seconds), s_div((double)l->claims_done, l->seconds),
            s_div((double)l->requests, l->seconds));
    fprintf(f, "    \"latency_ms\": {\"p50\": %.3f, \"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f, "
               "\"n\": %zu},\n", s_ms(&l->lat, 0.5), s_ms(&l->lat, 0.99), s_ms(&l->lat, 0.999),
            (double)bench_lat_max(&l->lat) / 1e6, l->lat.n);
    fprintf(f, "    \"latency_ms_by_kind\": {");
    bool first = true;
    for (int k = 0; k < BENCH_K__COUNT; k++) {
        if (!l->lat_kind[k].n)
            continue;
        fprintf(f, "%s\"%s\": {\"p50\": %.3f, \"p99\": %.3f, \"n\": %zu}", first ? "" : ", ",
                bench_kind_names[k], s_ms(&l->lat_kind[k], 0.5), s_ms(&l->lat_kind[k], 0.99),
                l->lat_kind[k].n);
        first = false;
    }
    fprintf(f, "},\n");
    fprintf(f, "    \"commits\": %" PRIu64 ", \"requests_per_commit\": %.2f, \"daemon_cpu_s\": %.3f, "
               "\"bench_cpu_s\": %.3f, \"daemon_hwm_kib\": %ld, \"steal_pct\": %.2f, "
               "\"commit_p50_us\": %.0f, \"commit_p99_us\": %.0f,\n", l->commits,
            s_div((double)l->requests, (double)l->commits), l->daemon_cpu, l->bench_cpu,
            l->daemon_hwm_kib, l->steal_pct, bench_hist_q_us(l->commit_hist, 0.5),
            bench_hist_q_us(l->commit_hist, 0.99));
    fprintf(f, "    \"all_requests\": %" PRIu64 ", \"all_ok\": %" PRIu64 ", \"all_err\": %" PRIu64
               ", \"late_sends\": %" PRIu64 ", \"completed\": %s, \"first_error\": ",
            l->all_requests, l->all_ok, l->all_err, l->late_sends, l->completed ? "true" : "false");
    s_jstr(f, l->first_error);
    fprintf(f, "}%s\n", last ? "" : ",");
}

int bench_report_json(bench_result_t *R, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "claimflow-bench: cannot write %s\n", path);
        return -1;
    }
    const bench_opts_t *o = R->o;
    s_derived_t x;
    s_derive(R, &x);
    fprintf(f, "{\n  \"started\": ");
    s_jstr(f, R->started);
    fprintf(f, ", \"machine\": ");
    s_jstr(f, R->machine);
    fprintf(f, ", \"kernel\": ");
    s_jstr(f, R->kernel);
    fprintf(f, ",\n  \"load_before\": [%.2f, %.2f, %.2f], \"load_after\": [%.2f, %.2f, %.2f], "
               "\"wall_seconds\": %.1f,\n", R->load_before[0], R->load_before[1],
            R->load_before[2], R->load_after[0], R->load_after[1], R->load_after[2],
            R->wall_seconds);
    fprintf(f, "  \"options\": {\"clients\": %d, \"inflight\": %d, \"duration\": %.1f, "
               "\"warmup\": %.1f, \"rate\": %.0f, \"mix\": [%d, %d, %d], \"doc_bytes\": %zu, "
               "\"quick\": %s},\n", o->clients, o->inflight, o->duration, o->warmup, o->rate,
            o->mix[0], o->mix[1], o->mix[2], o->doc_bytes, o->quick ? "true" : "false");
    if (R->ran_closed)
        s_jload(f, "closed", &R->closed, false);
    if (R->ran_open)
        s_jload(f, "open", &R->open, false);
    if (R->storefig.ran) {
        bench_storefig_t *s = &R->storefig;
        fprintf(f, "  \"store\": {\"claims\": %ld, \"bytes_per_claim_nodocs\": %.1f, "
                   "\"bytes_per_claim_nodocs_noidem\": %.1f, \"audit_bytes_per_claim\": %.1f, "
                   "\"file_bytes_per_claim\": %.1f, "
                   "\"page_size\": %zu, \"dbs\": {", s->claims, s->per_claim, s->per_claim_noidem,
                s->audit_per_claim, s->file_per_claim, s->st.psize);
        for (int i = 0; i < s->st.ndbs; i++)
            fprintf(f, "%s\"%s\": {\"entries\": %" PRIu64 ", \"pages\": %" PRIu64
                       ", \"avg_key\": %.1f, \"avg_val\": %.1f}", i ? ", " : "", s->st.dbs[i].name,
                    s->st.dbs[i].entries, s->st.dbs[i].pages, s->st.dbs[i].avg_key,
                    s->st.dbs[i].avg_val);
        fprintf(f, "}},\n");
    }
    if (R->ran_calib)
        fprintf(f, "  \"engine_inproc\": {\"lifecycles\": %ld, \"batch\": %d, \"transitions\": %"
                   PRIu64 ", \"seconds\": %.3f, \"transitions_per_s\": %.1f, \"cpu_s\": %.3f, "
                   "\"commit_s\": %.3f, \"commit_p50_us\": %.0f, \"commit_p99_us\": %.0f},\n",
                R->calib.lifecycles, R->calib.batch, R->calib.transitions, R->calib.seconds,
                R->calib.tps, R->calib.cpu, R->calib.commit_us / 1e6,
                bench_hist_q_us(R->calib.commit_hist, 0.5),
                bench_hist_q_us(R->calib.commit_hist, 0.99));
    if (R->ran_calib_hook)
        fprintf(f, "  \"engine_inproc_noop_hook\": {\"transitions_per_s\": %.1f, \"cpu_s\": %.3f},\n",
                R->calib_hook.tps, R->calib_hook.cpu);
    if (R->ran_ceil) {
        bench_ceil_t *c = &R->ceil;
        fprintf(f, "  \"ceilings\": {\"records_per_transition\": %.2f, \"bytes_per_transition\": "
                   "%.1f, \"lmdb_sync1_tps\": %.1f, \"lmdb_sync1_commit_p50_us\": %.1f, "
                   "\"lmdb_sync1_commit_p99_us\": %.1f, \"lmdb_batch\": %.2f, \"lmdb_batch_tps\": "
                   "%.1f, \"lmdb_batch256_tps\": %.1f,\n    \"zmq_req_bytes\": %zu, "
                   "\"zmq_rep_bytes\": %zu, \"zmq_rtt_p50_us\": %.1f, \"zmq_rtt_p99_us\": %.1f, "
                   "\"zmq_pipelined_rps\": %.1f},\n", c->records_per_transition,
                c->bytes_per_transition, c->lmdb_sync1_tps, c->lmdb_sync1_commit_p50_us,
                c->lmdb_sync1_commit_p99_us, c->lmdb_batch, c->lmdb_batch_tps,
                c->lmdb_batch256_tps, c->zmq_req_bytes, c->zmq_rep_bytes, c->zmq_rtt_p50_us,
                c->zmq_rtt_p99_us, c->zmq_pipelined_rps);
        fprintf(f, "  \"ratios\": {\"daemon_to_lmdb_batch\": %.3f, \"daemon_to_lmdb_batch256\": "
                   "%.3f, \"daemon_to_lmdb_sync1\": %.3f, \"inproc_to_lmdb_batch\": %.3f, "
                   "\"daemon_rps_to_zmq_pipelined\": %.3f, \"open_p50_to_zmq_rtt\": %.2f, "
                   "\"open_p99_to_commit_p99\": %.2f, \"daemon_to_inproc\": %.3f, "
                   "\"noop_hook_to_none\": %.3f, \"open_commit_p99_us\": %.0f, "
                   "\"open_p99_to_own_commit_p99\": %.2f},\n",
                x.r_lmdb_batch, x.r_lmdb_256, x.r_lmdb_sync1, x.r_inproc_batch, x.r_zmq_rps,
                x.r_open_rtt, x.r_open_p99_commit_p99, x.r_closed_inproc, x.r_hook,
                x.open_commit_p99_us, x.r_open_p99_own_commit);
    }
    if (R->cluster.ran) {
        bench_cluster_res_t *C = &R->cluster;
        s_cluster_fig_t g;
        s_cluster_fig(C, &g);
        if (C->ran_single) {
            s_jload(f, "cluster_single_closed", &C->single_closed, false);
            s_jload(f, "cluster_single_open", &C->single_open, false);
        }
        if (C->ran_repl) {
            s_jload(f, "cluster_replicated_closed", &C->repl_closed, false);
            s_jload(f, "cluster_replicated_open", &C->repl_open, false);
        }
        fprintf(f, "  \"cluster\": {\"nodes\": %d, \"etcd_members\": %d, \"lease_s\": %u, "
                   "\"rate\": %.1f,\n", BENCH_CL_NODES, BENCH_CL_NODES, C->lease, C->rate);
        fprintf(f, "    \"single\": {\"closed_tps\": %.1f, \"requests_per_commit\": %.2f, "
                   "\"open_tps\": %.1f, \"open_p50_ms\": %.3f, \"open_p99_ms\": %.3f},\n",
                g.s_tps, g.s_batch, g.s_open_tps, g.s_p50, g.s_p99);
        fprintf(f, "    \"replicated\": {\"closed_tps\": %.1f, \"requests_per_commit\": %.2f, "
                   "\"open_tps\": %.1f, \"open_p50_ms\": %.3f, \"open_p99_ms\": %.3f},\n",
                g.r_tps, g.r_batch, g.r_open_tps, g.r_p50, g.r_p99);
        fprintf(f, "    \"ratio\": {\"closed_tps\": %.4f, \"open_p50\": %.3f, \"open_p99\": "
                   "%.3f},\n", g.ratio_tps, g.ratio_p50, g.ratio_p99);
        fprintf(f, "    \"failover\": [");
        for (int k = 0; k < C->nfail; k++) {
            bench_failover_t *fo = &C->fail[k];
            fprintf(f, "%s{\"from\": \"%c\", \"to\": \"%c\", \"ack_s\": %.3f, "
                       "\"leader_named_s\": %.3f, \"sent\": %" PRIu64 ", \"refused\": %" PRIu64
                       ", \"unanswered\": %" PRIu64 ", \"ok_before\": %" PRIu64 "}",
                    k ? ", " : "", 'a' + fo->from, fo->to >= 0 ? 'a' + fo->to : '?', fo->ack_s,
                    fo->named_s, fo->sent, fo->refused, fo->unanswered, fo->ok_before);
        }
        fprintf(f, "],\n    \"failover_max_s\": %.3f, \"failover_mean_s\": %.3f},\n",
                g.fail_max_s, g.fail_mean_s);
    }
    if (R->scale.ran) {
        bench_scale_t *s = &R->scale;
        fprintf(f, "  \"scale\": {\"finished\": %ld, \"open\": %ld, \"members\": %ld, "
                   "\"pending_timers\": %" PRIu64 ", \"build_seconds\": %.1f, "
                   "\"store_file_bytes\": %" PRIu64 ", \"store_used_bytes\": %" PRIu64 ",\n",
                s->build.finished, s->build.open, s->build.members, s->build.pending_timers,
                s->build.build_seconds, s->store_file_bytes, s->store_used_bytes);
        fprintf(f, "    \"startup_ms\": %.2f, \"startup_line_ms\": %.2f, \"startup_rss_kib\": %ld, "
                   "\"queue_first_ms\": %.3f, \"queue_p50_ms\": %.3f, \"queue_count\": %u, "
                   "\"member_first_ms\": %.3f, \"member_p50_ms\": %.3f, \"fire_asked\": %" PRIu64
                   ", \"fire_fired\": %" PRIu64 ", \"fire_ms\": %.2f, \"daemon_hwm_kib\": %ld, "
                   "\"ok\": %s},\n", s->startup_ms, s->startup_line_ms, s->startup_rss_kib,
                s->queue_first_ms, s->queue_p50_ms, s->queue_count, s->member_first_ms,
                s->member_p50_ms, s->fire_asked, s->fire_fired, s->fire_ms, s->daemon_hwm_kib,
                s->ok ? "true" : "false");
        if (s->ran_fixed)
            fprintf(f, "  \"fixed_rate\": {\"rate\": %.0f, \"big_claims\": %ld, \"small_claims\": "
                       "%ld, \"big_p50_ms\": %.3f, \"big_p99_ms\": %.3f, \"small_p50_ms\": %.3f, "
                       "\"small_p99_ms\": %.3f, \"ratio_p99\": %.3f},\n",
                    o->scale_rate, s->build.finished, s->small.finished, x.fixed_big_p50_ms,
                    x.fixed_big_p99_ms, x.fixed_small_p50_ms, x.fixed_small_p99_ms, x.r_fixed_p99);
    }
    fprintf(f, "  \"targets\": {\"closed_tps\": %.1f, \"open_p99_ms\": %.3f, "
               "\"store_bytes_per_claim\": %.1f, \"startup_ms\": %.2f, \"ratio_lmdb_batch\": %.3f},\n",
            x.closed_tps, x.open_p99_ms, R->storefig.per_claim, R->scale.startup_ms,
            x.r_lmdb_batch);
    fprintf(f, "  \"passed\": %d, \"failed\": %d\n}\n", R->passed, R->failed);
    int rc = ferror(f) ? -1 : 0;
    if (fclose(f) != 0)
        rc = -1;
    return rc;
}

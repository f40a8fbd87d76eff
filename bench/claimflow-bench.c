/* claimflow-bench.c: the load benchmark's options and the order of its
 * phases (docs/BENCHMARKS.md says what each measures and why).
 *
 *   1. closed loop on a fresh daemon: peak throughput;
 *   2. open loop on the same daemon: latency at a fixed arrival rate;
 *   3. the store phase on a second fresh daemon: bytes per finished claim;
 *   4. the engine in-process, recording its LMDB writes (calibration);
 *   5. the ceilings: those writes replayed on raw LMDB, and raw ZeroMQ;
 *   6. scale mode (--scale N): the daemon on a store of N finished claims.
 *
 * --cluster replaces all of them with the replicas' comparison: a single
 * node and then 3 replicas on a 3-member etcd, each through the same closed
 * loop and the same fixed-rate open loop, then kill -9 of the leader under
 * load, --failovers times.  Separate from the full run because the cluster
 * sustains a fraction of the single node's rate, and the comparison is only
 * fair at one rate both sustain.
 *
 * Everything runs in this process or in daemons it starts and stops, on
 * directories it makes under --tmpdir and removes.  Every reply is checked;
 * the run ends with "N passed, M failed" and exits 1 when anything failed
 * (the test suite runs --quick for that, never for a timing).
 */
#include "bench.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static const char s_usage[] =
    "usage: claimflow-bench [--quick] [--daemon PATH] [--daemon-arg ARG] [--workflows DIR]\n"
    "         [--json FILE]\n"
    "         [--clients N] [--inflight N] [--duration S] [--warmup S] [--rate TPS]\n"
    "         [--mix L,I,R] [--doc-bytes N] [--store-claims N] [--calib-claims N]\n"
    "         [--scale N] [--scale-timers N] [--scale-fire N] [--ceil-seconds S]\n"
    "         [--no-load] [--no-ceilings] [--tmpdir DIR] [--seed N]\n"
    "         [--cluster [--lease S] [--failovers N]]\n"
    "\n"
    "  --quick            everything, small and short (< 20 s): the test suite's run\n"
    "  --daemon PATH      claimflowd to start ($CF_BUILDDIR/adapters/claimflowd, or\n"
    "                     the one beside this program's build directory)\n"
    "  --daemon-arg ARG   one more flag for it, e.g. --release-delay-us=2000 (up to 8)\n"
    "  --workflows DIR    workflows ($CF_SRCDIR/workflows, or ./workflows)\n"
    "  --json FILE        also write the results as JSON\n"
    "  --clients N        concurrent clients, each a portal and an operator DEALER (64)\n"
    "  --inflight N       scripts in flight per client (4)\n"
    "  --duration S       measured seconds per load phase (10), after --warmup S (2)\n"
    "  --rate TPS         open loop: durable transitions per second (5000; 0 skips it)\n"
    "  --mix L,I,R        weights of lifecycles, inquiries and reads (8,1,1)\n"
    "  --doc-bytes N      referral size (4096)\n"
    "  --store-claims N   lifecycles of the store-size phase (20000; 0 skips it)\n"
    "  --calib-claims N   lifecycles of the in-process calibration (20000)\n"
    "  --scale N          scale mode with N finished claims (0: off)\n"
    "  --scale-timers N   pending timers in scale mode (N)\n"
    "  --scale-fire N     due timers fired in scale mode (10000)\n"
    "  --scale-rate TPS   scale mode: an open loop at TPS transitions/s on the scale store\n"
    "                     and on a small one, latency compared (1000; 0: skip)\n"
    "  --scale-small N    finished claims of that small store (1000)\n"
    "  --scale-seconds S  measured seconds of each of those loops (20)\n"
    "  --ceil-seconds S   per ceiling measurement (3)\n"
    "  --no-load          skip the load phases; --no-ceilings skip the ceilings\n"
    "  --cluster          only the replicas' comparison: a single node, then 3\n"
    "                     claimflowd replicas on a 3-member etcd (/usr/bin/etcd) on\n"
    "                     loopback, each through the closed loop and the open loop\n"
    "                     at --rate (default here 300), then kill -9 of the leader\n"
    "                     under a stream of creates at that rate (docs/BENCHMARKS.md)\n"
    "  --lease S          --cluster: the replicas' lease_seconds (5; 2..60)\n"
    "  --failovers N      --cluster: leader kills, each timed (3; up to 10)\n";

enum {
    OPT_DAEMON = 256, OPT_WORKFLOWS, OPT_JSON, OPT_CLIENTS, OPT_INFLIGHT, OPT_DURATION,
    OPT_WARMUP, OPT_RATE, OPT_MIX, OPT_DOC, OPT_STORE, OPT_CALIB, OPT_SCALE, OPT_STIMERS,
    OPT_SFIRE, OPT_SRATE, OPT_SSMALL, OPT_SSECS, OPT_CEIL, OPT_NOLOAD, OPT_NOCEIL, OPT_TMP, OPT_SEED, OPT_QUICK, OPT_HELP,
    OPT_DAEMON_ARG, OPT_CLUSTER, OPT_LEASE, OPT_FAILOVERS,
};

static const struct option s_longopts[] = {
    {"daemon", required_argument, NULL, OPT_DAEMON},
    {"daemon-arg", required_argument, NULL, OPT_DAEMON_ARG},
    {"workflows", required_argument, NULL, OPT_WORKFLOWS},
    {"json", required_argument, NULL, OPT_JSON},
    {"clients", required_argument, NULL, OPT_CLIENTS},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"rate", required_argument, NULL, OPT_RATE},
    {"mix", required_argument, NULL, OPT_MIX},
    {"doc-bytes", required_argument, NULL, OPT_DOC},
    {"store-claims", required_argument, NULL, OPT_STORE},
    {"calib-claims", required_argument, NULL, OPT_CALIB},
    {"scale", required_argument, NULL, OPT_SCALE},
    {"scale-timers", required_argument, NULL, OPT_STIMERS},
    {"scale-fire", required_argument, NULL, OPT_SFIRE},
    {"scale-rate", required_argument, NULL, OPT_SRATE},
    {"scale-small", required_argument, NULL, OPT_SSMALL},
    {"scale-seconds", required_argument, NULL, OPT_SSECS},
    {"ceil-seconds", required_argument, NULL, OPT_CEIL},
    {"no-load", no_argument, NULL, OPT_NOLOAD},
    {"no-ceilings", no_argument, NULL, OPT_NOCEIL},
    {"tmpdir", required_argument, NULL, OPT_TMP},
    {"seed", required_argument, NULL, OPT_SEED},
    {"quick", no_argument, NULL, OPT_QUICK},
    {"cluster", no_argument, NULL, OPT_CLUSTER},
    {"lease", required_argument, NULL, OPT_LEASE},
    {"failovers", required_argument, NULL, OPT_FAILOVERS},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void s_usage_fail(const char *what, const char *arg)
{
    fprintf(stderr, "claimflow-bench: %s '%s' (see --help)\n", what, arg);
    exit(2);
}

static long s_long(const char *s, long min, long max)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min || v > max)
        s_usage_fail("expected a whole number in range, not", s);
    return v;
}

static double s_double(const char *s, double min)
{
    char *end;
    double v = strtod(s, &end);
    if (*end || end == s || v < min)
        s_usage_fail("expected a number, not", s);
    return v;
}

static char s_daemon_buf[PATH_MAX + 64], s_wf_buf[PATH_MAX + 64];

/* Where the daemon and the workflows are when no flag says. */
static void s_defaults(bench_opts_t *o)
{
    const char *b = getenv("CF_BUILDDIR"), *src = getenv("CF_SRCDIR");
    if (b) {
        snprintf(s_daemon_buf, sizeof s_daemon_buf, "%s/adapters/claimflowd", b);
    } else {
        /* This program is <build>/bench/claimflow-bench. */
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        self[n > 0 ? n : 0] = '\0';
        char *slash = strrchr(self, '/');
        if (slash)
            *slash = '\0';
        snprintf(s_daemon_buf, sizeof s_daemon_buf, "%s/../adapters/claimflowd", self);
    }
    snprintf(s_wf_buf, sizeof s_wf_buf, "%s/workflows", src ? src : ".");
    o->daemon = s_daemon_buf;
    o->workflows = s_wf_buf;
    const char *t = getenv("TMPDIR");
    o->tmpdir = t && *t ? t : "/tmp";
}

static void s_parse(int argc, char **argv, bench_opts_t *o)
{
    *o = (bench_opts_t){
        .clients = 64, .inflight = 4, .duration = 10, .warmup = 2, .rate = 5000,
        .mix = {8, 1, 1}, .doc_bytes = 4096, .store_claims = 20000, .calib_claims = 20000,
        .scale_fire = 10000, .scale_rate = 1000, .scale_small = 1000, .scale_seconds = 20,
        .ceil_seconds = 3, .seed = 1, .lease = 5, .failovers = 3,
    };
    s_defaults(o);
    /* --quick first, so explicit flags still win over its sizes. */
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0) {
            o->quick = true;
            o->clients = 8;
            o->inflight = 2;
            o->duration = 1.5;
            o->warmup = 0.5;
            o->rate = 300;
            o->store_claims = 200;
            o->calib_claims = 400;
            o->scale = 2000;
            o->scale_fire = 200;
            o->scale_rate = 200;
            o->scale_small = 500;
            o->scale_seconds = 1.5;
            o->ceil_seconds = 0.5;
            o->lease = 2;
            o->failovers = 1;
        }
    long scale_timers = -1;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", s_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DAEMON: o->daemon = optarg; break;
        case OPT_DAEMON_ARG:
            if (o->ndaemon_args == 8) {
                fprintf(stderr, "claimflow-bench: at most 8 --daemon-arg\n");
                exit(2);
            }
            o->daemon_args[o->ndaemon_args++] = optarg;
            break;
        case OPT_WORKFLOWS: o->workflows = optarg; break;
        case OPT_JSON: o->json_path = optarg; break;
        case OPT_CLIENTS: o->clients = (int)s_long(optarg, 1, 4096); break;
        case OPT_INFLIGHT: o->inflight = (int)s_long(optarg, 1, 1024); break;
        case OPT_DURATION: o->duration = s_double(optarg, 0.1); break;
        case OPT_WARMUP: o->warmup = s_double(optarg, 0); break;
        case OPT_RATE:
            o->rate = s_double(optarg, 0);
            o->rate_set = true;
            break;
        case OPT_MIX:
            if (sscanf(optarg, "%d,%d,%d", &o->mix[0], &o->mix[1], &o->mix[2]) != 3 ||
                o->mix[0] < 1 || o->mix[1] < 0 || o->mix[2] < 0)
                s_usage_fail("--mix: expected L,I,R with L >= 1, not", optarg);
            break;
        case OPT_DOC: o->doc_bytes = (size_t)s_long(optarg, 64, 10 << 20); break;
        case OPT_STORE: o->store_claims = s_long(optarg, 0, 100000000); break;
        case OPT_CALIB: o->calib_claims = s_long(optarg, 1, 100000000); break;
        case OPT_SCALE: o->scale = s_long(optarg, 0, 100000000); break;
        case OPT_STIMERS: scale_timers = s_long(optarg, 0, 100000000); break;
        case OPT_SFIRE: o->scale_fire = s_long(optarg, 0, 100000000); break;
        case OPT_SRATE: o->scale_rate = s_double(optarg, 0); break;
        case OPT_SSMALL: o->scale_small = s_long(optarg, 1, 100000000); break;
        case OPT_SSECS: o->scale_seconds = s_double(optarg, 0.1); break;
        case OPT_CEIL: o->ceil_seconds = s_double(optarg, 0.1); break;
        case OPT_NOLOAD: o->no_load = true; break;
        case OPT_NOCEIL: o->no_ceilings = true; break;
        case OPT_TMP: o->tmpdir = optarg; break;
        case OPT_SEED: o->seed = (uint64_t)s_long(optarg, 1, LONG_MAX); break;
        case OPT_QUICK: break;
        case OPT_CLUSTER: o->cluster = true; break;
        case OPT_LEASE: o->lease = (unsigned)s_long(optarg, 2, 60); break;
        case OPT_FAILOVERS: o->failovers = (int)s_long(optarg, 0, BENCH_FAILOVERS_MAX); break;
        case 'h':
        case OPT_HELP: fputs(s_usage, stdout); exit(0);
        default: s_usage_fail("unknown flag or missing value:", argv[optind - 1]);
        }
    }
    if (optind < argc)
        s_usage_fail("unexpected argument", argv[optind]);
    o->scale_timers = scale_timers >= 0 ? scale_timers : o->scale;
    if (o->cluster && !o->rate_set)
        o->rate = o->quick ? 100 : BENCH_CLUSTER_RATE;
    if (o->cluster && o->rate <= 0)
        s_usage_fail("--cluster needs a fixed rate above 0, not --rate", "0");
}

static void s_loadavg(double out[3])
{
    out[0] = out[1] = out[2] = 0;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3)
            out[0] = out[1] = out[2] = 0;
        fclose(f);
    }
}

static void s_machine(bench_result_t *R)
{
    char model[160] = "unknown CPU";
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (f) {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "model name", 10) == 0) {
                char *p = strchr(line, ':');
                if (p) {
                    p += 1 + strspn(p + 1, " \t");
                    p[strcspn(p, "\n")] = '\0';
                    snprintf(model, sizeof model, "%s", p);
                }
                break;
            }
        fclose(f);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    long mem = sysconf(_SC_PHYS_PAGES) / 1024 * (sysconf(_SC_PAGESIZE) / 1024);
    snprintf(R->machine, sizeof R->machine, "%s, %ld cores, %.0f GiB", model, ncpu,
             (double)mem / 1024);
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(R->kernel, sizeof R->kernel, "%s", u.release);
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(R->started, sizeof R->started, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ============================================================ phases === */

static void s_phase_load(bench_opts_t *o, bench_result_t *R)
{
    char dir[512];
    if (bench_mkdtemp(o, "load", dir, sizeof dir) != 0) {
        bench_check(R, false, "load: no temp directory");
        return;
    }
    bench_daemon_t d;
    if (bench_daemon_start(o, dir, NULL, NULL, &d) != 0) {
        bench_check(R, false, "load: the daemon did not start");
        bench_rmrf(dir);
        return;
    }
    fprintf(stderr, "claimflow-bench: closed loop, %d clients x %d, %.0f s\n", o->clients,
            o->inflight, o->duration);
    int rc = bench_load_run(o, &d, 0, o->duration, o->warmup, 0, &R->closed);
    R->ran_closed = true;
    bench_check(R, rc == 0, "closed loop: %s", R->closed.first_error[0] ? R->closed.first_error
                                                                        : "did not complete");
    if (o->rate > 0) {
        fprintf(stderr, "claimflow-bench: open loop at %.0f transitions/s, %.0f s\n", o->rate,
                o->duration);
        rc = bench_load_run(o, &d, o->rate, o->duration, o->warmup, 0, &R->open);
        R->ran_open = true;
        bench_check(R, rc == 0, "open loop: %s", R->open.first_error[0] ? R->open.first_error
                                                                        : "did not complete");
    }
    bench_check(R, bench_daemon_stop(&d) == 0, "load: the daemon did not stop cleanly (log %s)",
                d.log);
    bench_rmrf(dir);
}

static void s_phase_store(bench_opts_t *o, bench_result_t *R)
{
    char dir[512];
    bench_storefig_t *s = &R->storefig;
    if (bench_mkdtemp(o, "store", dir, sizeof dir) != 0) {
        bench_check(R, false, "store: no temp directory");
        return;
    }
    bench_daemon_t d;
    if (bench_daemon_start(o, dir, NULL, NULL, &d) != 0) {
        bench_check(R, false, "store: the daemon did not start");
        bench_rmrf(dir);
        return;
    }
    fprintf(stderr, "claimflow-bench: store phase, %ld lifecycles\n", o->store_claims);
    int rc = bench_load_run(o, &d, 0, 0, 0, o->store_claims, &R->store);
    s->ran = true;
    s->claims = (long)R->store.all_claims_done;
    bench_check(R, rc == 0 && s->claims == o->store_claims, "store phase: %s",
                R->store.first_error[0] ? R->store.first_error : "not every lifecycle finished");
    bench_check(R, bench_daemon_stop(&d) == 0, "store: the daemon did not stop cleanly");
    /* Documents out: their size is the portal's choice, not the engine's. */
    static const char *const nodocs[] = {"docs", NULL};
    static const char *const noidem[] = {"docs", "idem", "idem_age", NULL};
    if (bench_store_read(d.data, true, &s->st) == 0 && s->claims > 0) {
        s->bytes_nodocs = bench_store_bytes(&s->st, nodocs);
        s->bytes_nodocs_noidem = bench_store_bytes(&s->st, noidem);
        s->per_claim = (double)s->bytes_nodocs / (double)s->claims;
        s->per_claim_noidem = (double)s->bytes_nodocs_noidem / (double)s->claims;
        /* The access log: one entry per operator request naming a claim. */
        static const char *const audit[] = {"audit", "audit_claim", "audit_actor"};
        s->bytes_audit = 0;
        for (size_t i = 0; i < sizeof audit / sizeof audit[0]; i++) {
            const bench_dbstat_t *a = bench_store_db(&s->st, audit[i]);
            s->bytes_audit += a ? a->pages * s->st.psize : 0;
        }
        s->audit_per_claim = (double)s->bytes_audit / (double)s->claims;
        s->file_per_claim = (double)s->st.file_bytes / (double)s->claims;
        s->ok = true;
    }
    bench_check(R, s->ok, "store: cannot read the store's figures");
    bench_load_free(&R->store);
    bench_rmrf(dir);
}

static void s_phase_ceilings(bench_opts_t *o, bench_result_t *R)
{
    /* The batch the daemon formed in the closed loop, in transitions per
     * commit; the load's client count when there was no load. */
    double batch = o->clients;
    if (R->ran_closed && R->closed.commits)
        batch = (double)R->closed.transitions / (double)R->closed.commits;
    if (batch < 1)
        batch = 1;
    bench_rec_t rec;
    memset(&rec, 0, sizeof rec);
    fprintf(stderr, "claimflow-bench: engine in-process, %ld lifecycles, %d per transaction\n",
            o->calib_claims, (int)(batch + 0.5));
    int rc = bench_calibrate(o, o->calib_claims, (int)(batch + 0.5), &rec, &R->calib);
    R->ran_calib = true;
    bench_check(R, rc == 0, "in-process calibration: %s",
                R->calib.first_error[0] ? R->calib.first_error : "failed");
    fprintf(stderr, "claimflow-bench: engine in-process with a no-op commit hook\n");
    rc = bench_calibrate_hooked(o, o->calib_claims, (int)(batch + 0.5), &R->calib_hook);
    R->ran_calib_hook = true;
    bench_check(R, rc == 0, "in-process calibration with a hook: %s",
                R->calib_hook.first_error[0] ? R->calib_hook.first_error : "failed");
    if (o->no_ceilings) {
        bench_rec_free(&rec);
        return;
    }
    fprintf(stderr, "claimflow-bench: ceilings: LMDB replay of %zu writes, ZeroMQ echo\n",
            rec.nops);
    rc = bench_ceil_lmdb(o, &rec, batch, &R->ceil);
    bench_check(R, rc == 0, "LMDB ceiling: %s", R->ceil.first_error);
    bench_rec_free(&rec);
    size_t req = 200, rep = 600;
    if (R->ran_closed && R->closed.all_requests && R->closed.all_ok) {
        req = (size_t)(R->closed.bytes_sent / R->closed.all_requests);
        rep = (size_t)(R->closed.bytes_recv / R->closed.all_ok);
    }
    rc = bench_ceil_zmq(o, req, rep, &R->ceil);
    bench_check(R, rc == 0, "ZeroMQ ceiling: %s", R->ceil.first_error);
    R->ran_ceil = true;
}

/* The closed loop, then the open loop at the cluster's rate, against d. */
static void s_cluster_loads(bench_opts_t *o, bench_result_t *R, const bench_daemon_t *d,
                            const char *what, bench_load_t *closed, bench_load_t *open)
{
    fprintf(stderr, "claimflow-bench: %s: closed loop, %d clients x %d, %.0f s\n", what,
            o->clients, o->inflight, o->duration);
    int rc = bench_load_run(o, d, 0, o->duration, o->warmup, 0, closed);
    bench_check(R, rc == 0, "%s closed loop: %s", what,
                closed->first_error[0] ? closed->first_error : "did not complete");
    fprintf(stderr, "claimflow-bench: %s: open loop at %.0f transitions/s, %.0f s\n", what,
            o->rate, o->duration);
    rc = bench_load_run(o, d, o->rate, o->duration, o->warmup, 0, open);
    bench_check(R, rc == 0, "%s open loop: %s", what,
                open->first_error[0] ? open->first_error : "did not complete");
}

static void s_phase_single(bench_opts_t *o, bench_result_t *R)
{
    bench_cluster_res_t *C = &R->cluster;
    char dir[512];
    if (bench_mkdtemp(o, "single", dir, sizeof dir) != 0) {
        bench_check(R, false, "single node: no temp directory");
        return;
    }
    bench_daemon_t d;
    if (bench_daemon_start(o, dir, NULL, NULL, &d) != 0) {
        bench_check(R, false, "single node: the daemon did not start");
        bench_rmrf(dir);
        return;
    }
    s_cluster_loads(o, R, &d, "single node", &C->single_closed, &C->single_open);
    C->ran_single = true;
    bench_check(R, bench_daemon_stop(&d) == 0, "single node: the daemon did not stop cleanly");
    bench_rmrf(dir);
}

static void s_phase_failovers(bench_opts_t *o, bench_result_t *R, bench_cluster_t *c)
{
    bench_cluster_res_t *C = &R->cluster;
    char err[512];
    for (int k = 0; k < o->failovers; k++) {
        int leader = bench_cluster_leader(c, 4.0 * c->lease + 20);
        if (leader < 0) {
            bench_check(R, false, "failover %d: no leader", k + 1);
            return;
        }
        fprintf(stderr, "claimflow-bench: failover %d: kill -9 node %c under %.0f creates/s\n",
                k + 1, 'a' + leader, o->rate);
        int rc = bench_cluster_failover(o, c, leader, o->rate, &C->fail[k], err, sizeof err);
        C->nfail = k + 1;
        bench_check(R, rc == 0, "failover %d: %s", k + 1, err);
        if (rc != 0)
            return;
    }
}

static void s_phase_cluster(bench_opts_t *o, bench_result_t *R)
{
    bench_cluster_res_t *C = &R->cluster;
    C->ran = true;
    C->lease = o->lease;
    C->rate = o->rate;
    s_phase_single(o, R);
    char dir[512], err[512];
    if (bench_mkdtemp(o, "cluster", dir, sizeof dir) != 0) {
        bench_check(R, false, "cluster: no temp directory");
        return;
    }
    bench_cluster_t c;
    fprintf(stderr, "claimflow-bench: 3 etcd members, 3 replicas, lease %u s\n", o->lease);
    if (bench_cluster_start(o, dir, o->lease, &c, err, sizeof err) != 0) {
        bench_check(R, false, "cluster: %s", err);
        bench_rmrf(dir);
        return;
    }
    int leader = bench_cluster_leader(&c, 4.0 * o->lease + 20);
    bench_check(R, leader >= 0, "cluster: no node became the leader");
    if (leader >= 0) {
        s_cluster_loads(o, R, &c.node[leader], "3 replicas", &C->repl_closed, &C->repl_open);
        C->ran_repl = true;
        s_phase_failovers(o, R, &c);
    }
    bench_check(R, bench_cluster_stop(&c) == 0, "cluster: a node or etcd did not stop cleanly");
    /* A failed cluster run keeps its logs (every node's, every member's):
     * they are the only account of why. */
    if (R->failed)
        fprintf(stderr, "claimflow-bench: the cluster's directory is kept: %s\n", dir);
    else
        bench_rmrf(dir);
}

int main(int argc, char **argv)
{
    bench_opts_t o;
    s_parse(argc, argv, &o);
    static bench_result_t R;
    R.o = &o;
    s_machine(&R);
    s_loadavg(R.load_before);
    double t0 = bench_now();
    if (access(o.daemon, X_OK) != 0) {
        fprintf(stderr, "claimflow-bench: no daemon at %s (build it, or pass --daemon)\n",
                o.daemon);
        return 2;
    }

    if (o.cluster && access(BENCH_ETCD_BIN, X_OK) != 0) {
        /* 77: meson's "skipped", for a machine without etcd-server. */
        fprintf(stderr, "claimflow-bench: --cluster needs %s (etcd-server); skipped\n",
                BENCH_ETCD_BIN);
        return 77;
    }
    if (o.cluster) {
        s_phase_cluster(&o, &R);
    } else {
        if (!o.no_load)
            s_phase_load(&o, &R);
        if (o.store_claims > 0)
            s_phase_store(&o, &R);
        s_phase_ceilings(&o, &R);
    }
    if (o.scale > 0 && !o.cluster) {
        int rc = bench_scale_run(&o, &R.scale);
        bench_check(&R, rc == 0, "%s", R.scale.first_error[0] ? R.scale.first_error : "scale");
    }

    R.wall_seconds = bench_now() - t0;
    s_loadavg(R.load_after);
    bench_report_table(&R, stdout);
    if (o.json_path && bench_report_json(&R, o.json_path) != 0)
        bench_check(&R, false, "cannot write %s", o.json_path);
    for (int i = 0; i < R.failed && i < 8; i++)
        printf("FAILED: %s\n", R.failures[i]);
    printf("claimflow-bench: %d passed, %d failed (%.1f s)\n", R.passed, R.failed,
           R.wall_seconds);
    bench_load_free(&R.closed);
    bench_load_free(&R.open);
    bench_load_free(&R.cluster.single_closed);
    bench_load_free(&R.cluster.single_open);
    bench_load_free(&R.cluster.repl_closed);
    bench_load_free(&R.cluster.repl_open);
    bench_load_free(&R.scale.fixed_big);
    bench_load_free(&R.scale.fixed_small);
    return R.failed ? 1 : 0;
}

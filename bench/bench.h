/* bench.h: what the parts of claimflow-bench share - options, the latency
 * recorder, the daemon under test, the store's figures, the load generator,
 * the ceilings, the in-process engine runs and the report.
 *
 * claimflow-bench is a program, not a library: its parts print progress to
 * stderr and results to stdout, and a failure that makes the run meaningless
 * (the daemon does not start) ends the phase with an error the report
 * counts.  Each phase fills a result struct; bench_report.c prints them all
 * as a table and as JSON.
 *
 * The parts:
 *   bench_util.c    clocks, latencies, starting the daemon, /proc, LMDB stats
 *   bench_load.c    N DEALER clients through whole lifecycles (closed, open loop)
 *   bench_rec.c     records the engine's LMDB writes (for the LMDB ceiling)
 *   bench_inproc.c  the engine in-process: calibration run, the 1M-claim store
 *   bench_ceil.c    the ceilings: raw LMDB (replaying the recorded writes), ZeroMQ
 *   bench_scale.c   scale mode: start-up, queue page, member, timer firing at 1M
 *   bench_cluster.c --cluster: etcd members and claimflowd replicas, failover
 *   bench_report.c  the table and the JSON
 *   claimflow-bench.c  options and the order of the phases
 */
#ifndef CF_BENCH_H
#define CF_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <msgpack.h>

#include "mp.h"
#include "store.h"   /* CF_STORE_HIST: the daemon's commits by duration */

#define BENCH_T0 "2026-11-24T06:00:00Z"   /* manual clocks start here (a Tuesday) */

/* ------------------------------------------------------------ options --- */
typedef enum {
    BENCH_K_CREATE,      /* portal create health_claim */
    BENCH_K_ATTACH,      /* portal attach referral */
    BENCH_K_CONSENT,     /* portal consent.give */
    BENCH_K_DECIDE,      /* operator send decision.approved / guarantee.issued */
    BENCH_K_TREAT,       /* portal send treatment.started */
    BENCH_K_INQUIRY,     /* portal create inquiry, operator inquiry.answered */
    BENCH_K_READ,        /* query / get / history */
    BENCH_K__COUNT
} bench_kind_t;

extern const char *const bench_kind_names[BENCH_K__COUNT];

typedef struct {
    const char *daemon;       /* claimflowd binary */
    const char *daemon_args[8];  /* extra flags for it (--daemon-arg) */
    int ndaemon_args;
    const char *workflows;    /* workflows directory */
    const char *json_path;    /* --json FILE, or NULL */
    const char *tmpdir;       /* where stores go */
    int clients;              /* concurrent clients (each a portal and an operator DEALER) */
    int inflight;             /* scripts in flight per client */
    double duration;          /* seconds measured per load phase */
    double warmup;            /* seconds run before measuring */
    double rate;              /* open loop: durable transitions per second (0: skip) */
    int mix[3];               /* weights: lifecycle, inquiry, read */
    size_t doc_bytes;         /* referral body size */
    long store_claims;        /* lifecycles of the store-size phase (0: skip) */
    long calib_claims;        /* lifecycles of the in-process calibration */
    long scale;               /* finished claims for scale mode (0: skip) */
    long scale_timers;        /* pending timers for scale mode */
    long scale_fire;          /* timers to fire in scale mode */
    double scale_rate;        /* scale mode: the fixed rate on the big and the small store (0: skip) */
    long scale_small;         /* scale mode: finished claims of the small store */
    double scale_seconds;     /* scale mode: measured seconds of each fixed-rate loop */
    double ceil_seconds;      /* per ceiling measurement */
    bool cluster;             /* --cluster: replicas beside a single node, only that */
    bool rate_set;            /* --rate given (else --cluster uses its own default) */
    unsigned lease;           /* --cluster: lease_seconds of the replicas */
    int failovers;            /* --cluster: leader kills under load */
    bool quick;
    bool no_ceilings;
    bool no_load;
    uint64_t seed;
} bench_opts_t;

/* ------------------------------------------------------------- time --- */
double bench_now(void);                 /* CLOCK_MONOTONIC, seconds */
uint64_t bench_now_ns(void);

/* ---------------------------------------------------- latency recorder --- */
/* Latencies in nanoseconds, kept whole (a run records at most a few
 * million), sorted once for the percentiles. */
typedef struct {
    uint64_t *v;
    size_t n, cap;
    bool sorted;
} bench_lat_t;

void bench_lat_add(bench_lat_t *l, uint64_t ns);
/* The q-quantile (0..1) in ns, nearest rank; 0 when empty.  Sorts on first use. */
uint64_t bench_lat_q(bench_lat_t *l, double q);
uint64_t bench_lat_max(bench_lat_t *l);
void bench_lat_free(bench_lat_t *l);

/* --------------------------------------------------------------- daemon --- */
typedef struct {
    pid_t pid;
    char dir[512];          /* the run's directory (config, log) */
    char data[600];         /* the store */
    char portal[256], operator[256], events[256];
    char log[600];          /* the daemon's stderr */
    double started_at;      /* bench_now() at exec */
    double ready_at;        /* bench_now() when the start line appeared */
} bench_daemon_t;

/* Write the roster config into dir and start claimflowd on data (NULL:
 * dir/data) with free ports; manual_clock is an RFC 3339 time for
 * --clock manual:, or NULL for the real clock.  0, or -1 with a message on
 * stderr. */
int bench_daemon_start(const bench_opts_t *o, const char *dir, const char *data,
                       const char *manual_clock, bench_daemon_t *d);
/* The same with cfg_extra (YAML, e.g. a `cluster:` section; NULL: none)
 * appended to the config. */
int bench_daemon_start_cfg(const bench_opts_t *o, const char *dir, const char *data,
                           const char *manual_clock, const char *cfg_extra, bench_daemon_t *d);
/* SIGTERM, wait; 0 when it exited 0. */
int bench_daemon_stop(bench_daemon_t *d);

typedef struct {
    double utime, stime;    /* seconds of CPU */
    long hwm_kib, rss_kib;  /* VmHWM, VmRSS */
} bench_proc_t;
int bench_proc_read(pid_t pid, bench_proc_t *p);
/* The machine's CPU time from /proc/stat's "cpu" line, in ticks: all of it
 * and the part the hypervisor gave to others (steal).  0 or -1. */
int bench_cpu_read(uint64_t *total, uint64_t *steal);

/* -------------------------------------------------------- store figures --- */
#define BENCH_MAX_DBS 24
typedef struct {
    char name[32];
    uint64_t entries;
    uint64_t pages;          /* branch + leaf + overflow */
    double avg_key, avg_val; /* by a full scan (scan = true) */
} bench_dbstat_t;

typedef struct {
    size_t psize;
    uint64_t last_pgno, last_txnid, map_size;
    uint64_t file_bytes;
    int ndbs;
    bench_dbstat_t dbs[BENCH_MAX_DBS];
} bench_store_t;

/* Figures of the LMDB environment in dir (read-only, may be open by the
 * daemon).  scan: also average key and value sizes.  0 or -1. */
int bench_store_read(const char *dir, bool scan, bench_store_t *s);
/* Only the last transaction id (commits so far).  0 or -1. */
int bench_store_txnid(const char *dir, uint64_t *txnid);
const bench_dbstat_t *bench_store_db(const bench_store_t *s, const char *name);
/* Bytes of the pages of every database but the excluded ones (NULL-ended). */
uint64_t bench_store_bytes(const bench_store_t *s, const char *const *exclude);

/* -------------------------------------------------------------- scripts --- */
/* A script is a chain of dependent requests (bench_load.c explains them). */
enum { BENCH_S_LIFE, BENCH_S_INQUIRY, BENCH_S_READ };
enum { BENCH_EP_P, BENCH_EP_O };

typedef struct {
    int script, step, read_kind;
    char member[12];
    char claim[32];        /* the health claim */
    char inquiry[32];      /* the inquiry claim */
} bench_script_t;

/* Pack the script's next request with idempotency id `id` into pk; doc is
 * the referral body buffer (at least doc_len + 64 bytes, starting "%PDF-"),
 * made unique per request.  Returns the endpoint (BENCH_EP_*); *kind says
 * what it is. */
int bench_pack_step(msgpack_packer *pk, const bench_script_t *s, const char *id, char *doc,
                    size_t doc_len, bench_kind_t *kind);
/* The state a lifecycle step's reply must show (NULL for consent.give,
 * whose reply says `moved`). */
const char *bench_life_want(int step);

/* ----------------------------------------------------------------- load --- */
typedef struct {
    const char *name;        /* "closed" / "open" / "store" */
    int clients, inflight;
    double rate;             /* open loop: intended transitions per second */
    double req_rate;         /* open loop: intended requests per second */
    double seconds;          /* measured window */
    uint64_t requests, replies_ok, replies_err;  /* in the window */
    uint64_t transitions;    /* durable transitions confirmed in the window */
    uint64_t claims_done;    /* health claims reaching in_treatment in the window */
    uint64_t inquiries_done;
    uint64_t all_requests, all_ok, all_err;      /* the whole phase, incl. warm-up, drain */
    uint64_t all_transitions, all_claims_done, all_inquiries_done;
    uint64_t bytes_sent, bytes_recv;
    uint64_t late_sends;     /* open loop: requests sent > 1 ms after their intended time */
    uint64_t commits;        /* store transactions committed in the window */
    double daemon_cpu;       /* seconds of CPU (user+sys) in the window */
    double bench_cpu;
    long daemon_hwm_kib;
    bench_lat_t lat, lat_kind[BENCH_K__COUNT];
    char first_error[512];
    bool completed;
    /* Where the daemon's loop spent the window (its SIGUSR1 profile line,
     * read before and after): µs in poll (waiting), receive, run (engine,
     * commits included), commit (LMDB's fsyncs), stage (staging and
     * sending), fire (timers), other; batches. */
    double loop_us[7];
    uint64_t loop_batches;
    uint64_t commit_hist[CF_STORE_HIST];   /* the window's commits by duration */
    double steal_pct;        /* CPU time the VM's host took in the window (/proc/stat) */
    int rounds;              /* windows merged into this one (scale mode's rounds) */
    bool has_loop;
} bench_load_t;

/* Run one phase against d.  rate 0: closed loop; else open loop at `rate`
 * transitions per second.  limit > 0: start exactly `limit` lifecycle
 * scripts (mix ignored) and stop when they are done (the store phase).
 * Returns 0 when the phase ran to its end with every reply ok. */
int bench_load_run(const bench_opts_t *o, const bench_daemon_t *d, double rate,
                   double seconds, double warmup, long limit, bench_load_t *r);
void bench_load_free(bench_load_t *r);

/* Ask the daemon for its loop profile (SIGUSR1) and read it from its log:
 * out[7] as in bench_load_t.loop_us, *batches, hist its commits by duration
 * since start.  0, or -1 when no new line
 * came within 2 s. */
int bench_daemon_profile(const bench_daemon_t *d, double out[7], uint64_t *batches,
                         uint64_t hist[CF_STORE_HIST]);
/* The q-quantile (0..1) of a commit histogram in µs: the upper bound of
 * the bucket it falls in (0 when empty). */
double bench_hist_q_us(const uint64_t hist[CF_STORE_HIST], double q);

/* ------------------------------------------------------------ recorder --- */
/* bench_rec.c interposes mdb_put/mdb_del/mdb_cursor_del: while recording,
 * every write the engine makes to LMDB is kept (database, key, value size),
 * so the LMDB ceiling replays exactly the engine's writes without its work. */
typedef struct {
    uint8_t db;              /* index into names */
    uint8_t del;
    uint16_t klen;
    uint32_t vlen;
    uint64_t koff;           /* into keys */
} bench_recop_t;

typedef struct {
    bench_recop_t *ops;
    size_t nops, capops;
    unsigned char *keys;
    size_t nkeys, capkeys;
    int ndbs;
    char names[BENCH_MAX_DBS][32];
    uint64_t puts[BENCH_MAX_DBS], dels[BENCH_MAX_DBS];
    uint64_t kbytes[BENCH_MAX_DBS], vbytes[BENCH_MAX_DBS];
    uint64_t transitions;    /* set by the caller: what the recorded requests did */
    bool failed;             /* out of memory: the recording is incomplete */
} bench_rec_t;

/* Start recording into r (zeroed by the caller), stop.  One at a time. */
void bench_rec_start(bench_rec_t *r);
void bench_rec_stop(void);
void bench_rec_free(bench_rec_t *r);


/* ---------------------------------------------------------- in-process --- */
typedef struct {
    long lifecycles;
    int batch;                /* requests per cf_engine_run */
    uint64_t transitions, requests, errors;
    double seconds;
    double tps;               /* transitions per second, engine alone */
    double cpu;               /* process CPU seconds in the timed part */
    double commit_us;         /* of which in LMDB's commits (their fsyncs) */
    uint64_t commit_hist[CF_STORE_HIST];   /* those commits by duration */
    char first_error[512];
} bench_calib_t;

/* Run `lifecycles` health-claim lifecycles (the load's script) through the
 * engine in-process, `batch` lifecycles in lock step per cf_engine_run, on a
 * fresh store under o->tmpdir, recording the LMDB writes into rec (may be
 * NULL).  0, or -1 when a reply was not ok. */
int bench_calibrate(const bench_opts_t *o, long lifecycles, int batch, bench_rec_t *rec,
                    bench_calib_t *c);
/* The same with a commit hook that does nothing (the store records each
 * batch's write set and hands it over): the cost of the seam's hook. */
int bench_calibrate_hooked(const bench_opts_t *o, long lifecycles, int batch, bench_calib_t *c);

typedef struct {
    long finished, open, members;
    uint64_t pending_timers;       /* counted in the store after the build */
    uint64_t requests;
    double build_seconds;
    char clock_end[40];            /* the manual clock when the build ended */
    char first_error[512];
} bench_build_t;

/* Build the scale store in dir: `finished` claims, and open claims so that
 * claim and consent timers pending add up to `timers`.  0 or -1. */
int bench_scale_build(const bench_opts_t *o, const char *dir, long finished, long timers,
                      bench_build_t *b);

/* ------------------------------------------------------------- ceilings --- */
typedef struct {
    /* raw LMDB, replaying the engine's recorded writes */
    uint64_t rec_ops, rec_transitions;
    double records_per_transition;       /* puts + dels */
    double bytes_per_transition;         /* keys + values written */
    double lmdb_sync1_tps;               /* one fsync'd commit per transition */
    double lmdb_sync1_commit_p50_us, lmdb_sync1_commit_p99_us;
    double lmdb_batch_tps;               /* lmdb_batch transitions per commit */
    double lmdb_batch;
    double lmdb_batch256_tps;            /* 256 per commit (the daemon's largest batch) */
    /* raw ZeroMQ over loopback TCP, an echo server on a ROUTER */
    size_t zmq_req_bytes, zmq_rep_bytes;
    double zmq_rtt_p50_us, zmq_rtt_p99_us;
    double zmq_pipelined_rps;            /* clients x inflight, as the load */
    int zmq_clients, zmq_inflight;
    bool ok;
    char first_error[256];
} bench_ceil_t;

int bench_ceil_lmdb(const bench_opts_t *o, const bench_rec_t *rec, double batch, bench_ceil_t *c);
int bench_ceil_zmq(const bench_opts_t *o, size_t req_bytes, size_t rep_bytes, bench_ceil_t *c);

/* ---------------------------------------------------------------- scale --- */
typedef struct {
    bench_build_t build;
    uint64_t store_file_bytes, store_used_bytes;
    double startup_line_ms;       /* exec -> the start line */
    double startup_ms;            /* exec -> first ping reply */
    long startup_rss_kib;
    double queue_first_ms, queue_p50_ms;    /* operator query health_claim/in_review limit 100 */
    uint32_t queue_count;
    double member_first_ms, member_p50_ms;  /* portal query member */
    uint32_t member_count;
    uint64_t fire_asked, fire_fired;
    double fire_ms;
    long daemon_hwm_kib;
    /* The same open loop at --scale-rate on this store and on a store of
     * --scale-small claims built the same way: per-request cost must not
     * depend on the store's size (issue 19). */
    bench_build_t small;
    bench_load_t fixed_big, fixed_small;
    bool ran_fixed;
    bool ran, ok;
    char first_error[512];
} bench_scale_t;

int bench_scale_run(const bench_opts_t *o, bench_scale_t *r);

/* ---------------------------------------------------------- store phase --- */
typedef struct {
    long claims;                   /* finished lifecycles */
    bench_store_t st;
    uint64_t bytes_nodocs;         /* every database's pages but docs */
    uint64_t bytes_nodocs_noidem;  /* and without idem, idem_age (expire after 7 days) */
    uint64_t bytes_audit;          /* the access log: audit, audit_claim, audit_actor */
    double per_claim, per_claim_noidem, audit_per_claim, file_per_claim;
    bool ran, ok;
} bench_storefig_t;

/* -------------------------------------------------------------- cluster --- */
#define BENCH_CL_NODES 3           /* etcd members, and claimflowd replicas */
#define BENCH_FAILOVERS_MAX 10
#define BENCH_CLUSTER_RATE 300     /* --cluster's fixed rate unless --rate */
#define BENCH_ETCD_BIN "/usr/bin/etcd"   /* Debian's etcd-server */

typedef struct {
    pid_t pid;
    int client_port, peer_port;
    char url[64];              /* its client URL */
} bench_etcd_t;

/* A 3-member etcd and 3 claimflowd replicas on loopback, under dir. */
typedef struct {
    char dir[512];
    char prefix[64];           /* the cluster's keys in etcd */
    unsigned lease;
    bench_etcd_t etcd[BENCH_CL_NODES];
    bench_daemon_t node[BENCH_CL_NODES];   /* pid 0: not running */
} bench_cluster_t;

/* One kill -9 of the leader under a fixed-rate stream of creates. */
typedef struct {
    int from, to;              /* node indexes: the killed leader, the next */
    double ack_s;              /* kill -> first ok reply from another node */
    double named_s;            /* kill -> first not_leader naming the next leader
                                  (or that ok reply, when none came first) */
    uint64_t sent;             /* creates sent from the kill to that ok reply */
    uint64_t refused;          /* of them, answered not_leader or unavailable */
    uint64_t unanswered;       /* sent (before or after the kill) and never answered */
    uint64_t ok_before;        /* acknowledged by the old leader before the kill */
} bench_failover_t;

typedef struct {
    bool ran;
    unsigned lease;
    double rate;               /* the fixed rate of both open loops and the failover stream */
    bench_load_t single_closed, single_open, repl_closed, repl_open;
    bool ran_single, ran_repl;
    int nfail;
    bench_failover_t fail[BENCH_FAILOVERS_MAX];
    char first_error[512];
} bench_cluster_res_t;

/* Start 3 etcd members (free ports, data under dir) and 3 claimflowd nodes
 * a, b, c with a `cluster:` config of lease `lease` seconds; returns when
 * etcd is healthy and every node printed its start line.  0, or -1 with a
 * message in err (whatever started is stopped). */
int bench_cluster_start(const bench_opts_t *o, const char *dir, unsigned lease,
                        bench_cluster_t *c, char *err, size_t errlen);
/* The index of the node whose ping says role: leader, waiting up to
 * timeout seconds; -1 when none did. */
int bench_cluster_leader(const bench_cluster_t *c, double timeout);
/* Kill -9 the leader (index leader) while creates stream at `rate` per
 * second, follow not_leader to the next one, then restart the killed node
 * as a follower.  0, or -1 with a message in err (f holds what was seen). */
int bench_cluster_failover(const bench_opts_t *o, bench_cluster_t *c, int leader, double rate,
                           bench_failover_t *f, char *err, size_t errlen);
/* SIGTERM every node, then every etcd member; 0 when all exited cleanly.
 * Does not remove dir. */
int bench_cluster_stop(bench_cluster_t *c);

/* ---------------------------------------------------------------- report --- */
typedef struct {
    const bench_opts_t *o;
    char machine[256], kernel[128], started[40];
    double load_before[3], load_after[3];
    double wall_seconds;
    bench_load_t closed, open, store;
    bool ran_closed, ran_open;
    bench_storefig_t storefig;
    bench_calib_t calib;
    bool ran_calib;
    bench_calib_t calib_hook;      /* the same with a no-op commit hook */
    bool ran_calib_hook;
    bench_ceil_t ceil;
    bool ran_ceil;
    bench_scale_t scale;
    bench_cluster_res_t cluster;
    int passed, failed;
    char failures[8][256];
} bench_result_t;

void bench_check(bench_result_t *R, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void bench_report_table(bench_result_t *R, FILE *f);
int bench_report_json(bench_result_t *R, const char *path);

/* ------------------------------------------------------------- helpers --- */
void bench_rmrf(const char *path);
/* A fresh directory under o->tmpdir; path into buf.  0 or -1. */
int bench_mkdtemp(const bench_opts_t *o, const char *tag, char *buf, size_t len);
/* A unique Danish CPR number (DDMMYY-SSSS, a real 1900s date) for n. */
void bench_cpr(uint64_t n, char out[12]);
uint64_t bench_rand(uint64_t *state);
/* Process CPU seconds (this process). */
double bench_self_cpu(void);
/* msgpack helpers shared by the parts. */
void bench_mp_kv(msgpack_packer *pk, const char *k, const char *v);
void bench_mp_copy(const msgpack_object *o, char *out, size_t len);
/* A reply's ok, and its error "code: message" into err when not ok. */
bool bench_mp_ok(const msgpack_object *rep, char *err, size_t len);

#endif

/* claimflowd.c: the ZeroMQ front of the claims engine.
 *
 * One thread, one loop.  Two ROUTER sockets (portal, operator) take requests,
 * a PUB socket publishes committed events, and a self-pipe carries
 * SIGTERM/SIGINT into the same zmq_poll:
 *
 *   poll (timeout: until the next timer is due, at most 1 s)
 *   -> drain up to 256 waiting requests from both ROUTERs, one from each in
 *      turn, into a batch
 *   -> cf_engine_run: the whole batch in one LMDB transaction, one fsync
 *   -> hand every reply (with the envelope its request came with) and the
 *      events the batch committed to the stage (stage.c), which holds them
 *      until the batch is released - at once on one node - then sends them
 *   -> fire timers that are due, their events through the stage too
 *
 * Group commit is why the loop batches: one fsync per batch, not per request,
 * and replies are sent only after the commit, so `ok: true` is durable.  The
 * alternative, a thread per socket feeding a writer thread, was rejected: the
 * engine is single-threaded by contract and one loop needs no locks, and
 * zmq_poll already multiplexes everything we wait on.
 *
 * Framing (docs/protocol.md): frame 0 is the ROUTER's peer identity; if an
 * empty delimiter follows somewhere (REQ, or a DEALER imitating one), every
 * frame up to and including it is envelope; the next frame is the request,
 * and any frame after that makes the message a bad_request.  The transport
 * decides bad_request (framing) and too_large (over --max-frame) itself,
 * without giving the frame to the engine; those replies keep their place in
 * the batch, so one client's replies still come back in the order it sent.
 * It also runs the frame check (mpcheck.h) and refuses, bad_request, a frame
 * that is not one well-formed msgpack object within its bounds (depth, keys
 * per map), so the reply can name the bound.
 *
 * The daemon never blocks on a client: every send is ZMQ_DONTWAIT, so a
 * reply to a peer that went away or stopped reading is dropped rather than
 * stalling everyone else.  ROUTER_MANDATORY is on so that libzmq says so
 * (EHOSTUNREACH, EAGAIN at the high-water mark) instead of dropping
 * silently: every lost reply is counted (`dropped_replies`).
 *
 * Security (docs/SECURITY.md): with `curve:` in the config every socket is a
 * CURVE server and a ZAP handler (zap.c), polled in this same loop, decides
 * which client keys may complete the handshake on which socket; a client
 * that may not never gets a message to the engine.  On the operator socket
 * the handler names the operator the key belongs to, libzmq attaches that to
 * every message ("User-Id"), and the engine gets it as auth_actor: a request
 * whose `actor` is someone else is forbidden.  Without `curve:` nobody is
 * authenticated, so the daemon binds loopback, ipc:// and inproc:// only,
 * and says so at start.
 *
 * Metrics (metrics.c, http.c; only with `http:` in the config): this loop
 * owns every number - it counts the replies it sends, times each engine
 * run, and about once a second (sooner after writes, never more than a
 * twentieth of its time) runs a `stats` request through the engine as an
 * internal operator nobody else may name; then it publishes a snapshot.
 * The HTTP thread renders snapshots and never sees the engine.
 *
 * Subscribers: libzmq bounds a PUB socket's queue per subscriber
 * (CFD_PUB_HWM), never in total, so the daemon caps the events socket's
 * connections.  A socket monitor counts them (accepted up, disconnected
 * down) and the ZAP handler, which the events socket consults with or
 * without CURVE, asks s_admit_subscriber about each handshake: beyond the
 * cap it is refused (status 400); the client connects again later.  Capping
 * in the ZAP handler was chosen over XPUB's subscription messages, which
 * cannot say which subscriber left and so cannot be counted.
 *
 * Logging: one line at start, one at stop, one per daemon-level error, on
 * stderr.  Never a request's contents: errors name codes and op names, and
 * an op name is logged only if it looks like one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <msgpack.h>
#include <zmq.h>

#include "cluster.h"
#include "config.h"
#include "stage.h"
#include "syncer.h"
#include "wslog.h"
#include "engine.h"
#include "http.h"
#include "keyfile.h"
#include "cf_version.h"
#include "metrics.h"
#include "mp.h"
#include "mpcheck.h"
#include "sdnotify.h"
#include "workflow.h"
#include "zap.h"


#define CFD_BATCH_MAX      256              /* requests per engine run */
#define CFD_BATCH_BYTES    (64u << 20)      /* stop draining past this */
#define CFD_HARD_MAX_MSG   (64 << 20)       /* largest --max-frame */
/* Inbound bytes, per peer.  libzmq holds a frame whole before the daemon can
 * refuse it, and drops the connection of a peer whose frame header declares
 * more than ZMQ_MAXMSGSIZE, before allocating anything.  So the ROUTERs' limit
 * is --max-frame plus a margin: a frame a little over the limit (a document
 * request just over) gets a `too_large` reply, anything larger costs its
 * sender the connection and the daemon nothing.  The receive high-water mark
 * is sized in frames of that limit, so one peer's queue holds at most
 * CFD_PEER_IN_BYTES (or CFD_RCVHWM_MAX frames, if fewer). */
#define CFD_FRAME_MARGIN   (1u << 20)
#define CFD_PEER_IN_BYTES  ((size_t)256 << 20)
#define CFD_RCVHWM_MIN     8
#define CFD_RCVHWM_MAX     10000
/* The events socket receives only subscriptions ("\x01" + topic; a topic is
 * at most two 64-byte names): anything longer drops the subscriber. */
#define CFD_SUB_MAX_MSG    1024
#define CFD_SUB_RCVHWM     1000
#define CFD_MAX_FRAME      (16u << 20)      /* default --max-frame */
#define CFD_ENV_MAX        16               /* envelope frames kept per request */
#define CFD_KEEP_FRAMES    (CFD_ENV_MAX + 2)
#define CFD_TICK_MS        1000             /* longest poll */
#define CFD_FIRE_MAX       256              /* timers per fire transaction */
/* Outbound bytes, per peer.  libzmq bounds a ROUTER's queue to one peer in
 * messages (ZMQ_SNDHWM), not bytes, so the daemon bounds every reply's size
 * instead: lists stop at about 1 MiB (history, query, audit: CF_PAGE_BYTES
 * and one item more) and a whole document is sent only up to 1 MiB (larger
 * ones in ranges of 256 KiB), so no reply exceeds CFD_REPLY_MAX, and the
 * queue of a peer that does not read holds at most CFD_PEER_OUT_BYTES:
 * CFD_ROUTER_HWM = 256 MiB / (1 MiB + 64 KiB) = 240 replies.  A high-water
 * mark sized for 10 MiB documents (25 replies) was rejected: it would drop
 * the replies of any client with 26 small requests in flight and a full
 * socket buffer. */
#define CFD_REPLY_MAX      ((size_t)(1u << 20) + (64u << 10))
#define CFD_PEER_OUT_BYTES ((size_t)256 << 20)
#define CFD_ROUTER_HWM     ((int)(CFD_PEER_OUT_BYTES / CFD_REPLY_MAX))
/* Events queued for one subscriber, and how many subscribers there may be:
 * libzmq bounds a PUB queue per subscriber only, so the daemon bounds the
 * subscribers (the ZAP gate, s_admit_subscriber), and the two together bound
 * what deaf subscribers can make it hold: 32 x 20,000 events. */
#define CFD_PUB_HWM        20000
#define CFD_MAX_SUBSCRIBERS 32
#define CFD_EVMON_EP       "inproc://claimflowd-events-monitor"
#define CFD_LINGER_MS      100

/* The internal operator whose `stats` requests feed /metrics: an auditor
 * (reads, never writes), named with a '/' that no configured operator id may
 * hold, and refused on the operator socket (s_serve). */
#define CFD_METRICS_ACTOR  "claimflowd/metrics"
#define CFD_STATS_IDLE_MS  1000             /* stats at least this often */
#define CFD_STATS_DIRTY_MS 100              /* ... this soon after a write */
#define CFD_STATS_SHARE    20               /* ... at most 1/20 of the time */
#define CFD_PUBLISH_MS     100              /* counters published this often */

#define CFD_EXIT_RUNTIME   1
#define CFD_EXIT_USAGE     2

/* --------------------------------------------------------------- flags --- */
typedef struct {
    const char *data_dir;
    const char *workflows_dir;
    const char *config_path;
    const char *portal_ep;
    const char *operator_ep;
    const char *events_ep;
    bool manual_clock;
    cf_time_t manual_start;
    size_t max_frame;              /* 0: not given */
    size_t map_size;
    bool no_grow;
    const char *record_writesets;
    int64_t release_delay_us;
    bool sync_immediate;            /* --sync immediate */
    size_t max_subscribers;
    const char *node;               /* --node: the cluster node's name */
} s_flags_t;

enum {
    OPT_DATA = 256, OPT_WORKFLOWS, OPT_CONFIG, OPT_PORTAL, OPT_OPERATOR,
    OPT_EVENTS, OPT_CLOCK, OPT_MAX_FRAME, OPT_MAP_SIZE, OPT_NO_GROW,
    OPT_MAX_SUBSCRIBERS, OPT_VERSION, OPT_HELP, OPT_RECORD_WS, OPT_RELEASE_DELAY, OPT_SYNC,
    OPT_NODE,
};

static const struct option s_longopts[] = {
    {"data",      required_argument, NULL, OPT_DATA},
    {"workflows", required_argument, NULL, OPT_WORKFLOWS},
    {"config",    required_argument, NULL, OPT_CONFIG},
    {"portal",    required_argument, NULL, OPT_PORTAL},
    {"operator",  required_argument, NULL, OPT_OPERATOR},
    {"events",    required_argument, NULL, OPT_EVENTS},
    {"clock",     required_argument, NULL, OPT_CLOCK},
    {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
    {"map-size",  required_argument, NULL, OPT_MAP_SIZE},
    {"no-grow",   no_argument,       NULL, OPT_NO_GROW},
    {"record-writesets", required_argument, NULL, OPT_RECORD_WS},
    {"release-delay-us", required_argument, NULL, OPT_RELEASE_DELAY},
    {"sync", required_argument, NULL, OPT_SYNC},
    {"max-subscribers", required_argument, NULL, OPT_MAX_SUBSCRIBERS},
    {"node",      required_argument, NULL, OPT_NODE},
    {"version",   no_argument,       NULL, OPT_VERSION},
    {"help",      no_argument,       NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static const char s_usage[] =
    "usage: claimflowd [--data DIR] [--workflows DIR] [--config FILE]\n"
    "                  [--portal EP] [--operator EP] [--events EP]\n"
    "                  [--clock real|manual:RFC3339] [--max-frame BYTES]\n"
    "                  [--map-size BYTES] [--no-grow] [--max-subscribers N]\n"
    "                  [--record-writesets FILE] [--release-delay-us N]\n"
    "                  [--sync deferred|immediate] [--node NAME]\n"
    "                  [--version] [--help]\n"
    "\n"
    "  --data DIR        LMDB store directory, created if missing (./var)\n"
    "  --workflows DIR   workflow and calendar YAML (./workflows)\n"
    "  --config FILE     operators roster, CURVE keys, retention and limits\n"
    "                    (docs/operations.md); without it no operator is known\n"
    "                    and, without CURVE, only loopback may be bound\n"
    "  --portal EP       portal ROUTER (tcp://127.0.0.1:7401)\n"
    "  --operator EP     operator ROUTER (tcp://127.0.0.1:7402)\n"
    "  --events EP       events PUB (tcp://127.0.0.1:7403)\n"
    "  --clock SPEC      real (default), or manual:2026-11-24T09:00:00Z for\n"
    "                    tests (time moves only by clock.advance/clock.set)\n"
    "  --max-frame BYTES largest request frame (16M; at most 64M)\n"
    "  --map-size BYTES  initial LMDB map size (64M)\n"
    "  --no-grow         never grow the map: full means `unavailable`\n"
    "  --sync MODE       immediate (default): both fsyncs in the commit.\n"
    "                    deferred: a commit fsyncs its data, a second thread\n"
    "                    the meta page while the next batch runs; replies wait\n"
    "                    for it (docs/storage.md, docs/BENCHMARKS.md)\n"
    "  --record-writesets FILE\n"
    "                    append every committed batch's write set to FILE\n"
    "                    (docs/storage.md; tests and inspection)\n"
    "  --release-delay-us N\n"
    "                    hold each batch's replies N microseconds after its\n"
    "                    commit, as a replica's acknowledgement would (for\n"
    "                    measuring the pipeline; docs/BENCHMARKS.md)\n"
    "  --max-subscribers N  connections the events socket takes at once (32);\n"
    "                    more are refused until one goes\n"
    "  --node NAME       with a `cluster:` config, this node's name (overrides\n"
    "                    cluster.node; docs/CLUSTER.md)\n"
    "BYTES takes a K, M or G suffix (powers of 1024).\n"
    "Runs in the foreground until SIGTERM or SIGINT.\n";

/* One line on stderr, then exit 2: the contract for bad flags and files. */
static void s_usage_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void s_usage_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("claimflowd: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see claimflowd --help)\n", stderr);
    va_end(ap);
    exit(CFD_EXIT_USAGE);
}

/* Decimal bytes with an optional K/M/G suffix (1024-based). */
static int s_parse_bytes(const char *s, uint64_t max, uint64_t *ret)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    default: return -1;
    }
    if (*p != '\0' || v == 0 || v > (max >> shift))
        return -1;
    *ret = v << shift;
    return 0;
}

static void s_parse_flags(int argc, char **argv, s_flags_t *f)
{
    *f = (s_flags_t){
        .data_dir = "./var",
        .workflows_dir = "./workflows",
        .portal_ep = "tcp://127.0.0.1:7401",
        .operator_ep = "tcp://127.0.0.1:7402",
        .events_ep = "tcp://127.0.0.1:7403",
        .max_subscribers = CFD_MAX_SUBSCRIBERS,
        /* Measured on this project's 2-core VM, deferred was slower: the
         * syncer's fsync and the next commit's contend for the same disk
         * (docs/BENCHMARKS.md).  It stays an option for disks where a meta
         * page's fsync costs more than one more fsync in line. */
        .sync_immediate = true,
    };
    opterr = 0;
    int c;
    uint64_t u;
    while ((c = getopt_long(argc, argv, ":h", s_longopts, NULL)) != -1) {
        switch (c) {
        case OPT_DATA:      f->data_dir = optarg; break;
        case OPT_WORKFLOWS: f->workflows_dir = optarg; break;
        case OPT_CONFIG:    f->config_path = optarg; break;
        case OPT_PORTAL:    f->portal_ep = optarg; break;
        case OPT_OPERATOR:  f->operator_ep = optarg; break;
        case OPT_EVENTS:    f->events_ep = optarg; break;
        case OPT_NO_GROW:   f->no_grow = true; break;
        case OPT_NODE: {
            size_t n = strlen(optarg);
            if (n == 0 || n > 64 || strspn(optarg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
                                                   "qrstuvwxyz0123456789._-") != n)
                s_usage_fail("--node: expected 1-64 characters of A-Z a-z 0-9 . _ -");
            f->node = optarg;
            break;
        }
        case OPT_RECORD_WS: f->record_writesets = optarg; break;
        case OPT_SYNC:
            if (strcmp(optarg, "deferred") == 0)
                f->sync_immediate = false;
            else if (strcmp(optarg, "immediate") == 0)
                f->sync_immediate = true;
            else
                s_usage_fail("--sync: expected 'deferred' or 'immediate'");
            break;
        case OPT_RELEASE_DELAY: {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || *end || v < 0 || v > 10 * 1000 * 1000)
                s_usage_fail("--release-delay-us: expected microseconds from 0 to 10000000");
            f->release_delay_us = v;
            break;
        }
        case OPT_CLOCK:
            if (strcmp(optarg, "real") == 0) {
                f->manual_clock = false;
            } else if (strncmp(optarg, "manual:", 7) == 0 &&
                       cf_time_parse(optarg + 7, strlen(optarg + 7),
                                     &f->manual_start) == 0) {
                f->manual_clock = true;
            } else {
                s_usage_fail("--clock: expected 'real' or 'manual:' and an RFC 3339 "
                             "time, e.g. manual:2026-11-24T09:00:00Z");
            }
            break;
        case OPT_MAX_FRAME:
            if (s_parse_bytes(optarg, CFD_HARD_MAX_MSG, &u) < 0)
                s_usage_fail("--max-frame: expected a byte count from 1 to 64M");
            f->max_frame = (size_t)u;
            break;
        case OPT_MAX_SUBSCRIBERS:
            if (s_parse_bytes(optarg, 10000, &u) < 0 || strpbrk(optarg, "kKmMgG"))
                s_usage_fail("--max-subscribers: expected a number from 1 to 10000");
            f->max_subscribers = (size_t)u;
            break;
        case OPT_MAP_SIZE:
            if (s_parse_bytes(optarg, (uint64_t)1 << 40, &u) < 0 || u < (1u << 20))
                s_usage_fail("--map-size: expected a byte count from 1M to 1024G");
            f->map_size = (size_t)u;
            break;
        case OPT_VERSION:
            printf("claimflowd %s\n", CF_VERSION);
            exit(0);
        case 'h':
        case OPT_HELP:
            fputs(s_usage, stdout);
            exit(0);
        case ':':
            s_usage_fail("flag '%s' needs a value", argv[optind - 1]);
        default:
            s_usage_fail("unknown flag '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        s_usage_fail("unexpected argument '%s'", argv[optind]);
}

/* ------------------------------------------------------------- signals --- */
static volatile sig_atomic_t s_stop_signal;
static volatile sig_atomic_t s_profile_wanted;     /* SIGUSR1: log the loop profile */
static int s_sigpipe[2] = {-1, -1};

static void s_on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGUSR1)
        s_profile_wanted = 1;
    else
        s_stop_signal = sig;
    /* Wakes zmq_poll even if the signal lands between the flag check and
     * the poll; a full pipe already holds a wake-up. */
    ssize_t w = write(s_sigpipe[1], "x", 1);
    (void)w;
    errno = saved;
}

static int s_signals_install(void)
{
    if (pipe2(s_sigpipe, O_NONBLOCK | O_CLOEXEC) < 0)
        return -1;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;                 /* no SA_RESTART: zmq_poll gets EINTR */
    if (sigaction(SIGTERM, &sa, NULL) < 0 || sigaction(SIGINT, &sa, NULL) < 0 ||
        sigaction(SIGUSR1, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

/* -------------------------------------------------------------- daemon --- */
/* One request of a batch, with everything needed to answer it. */
typedef struct {
    void *sock;
    cf_endpoint_t ep;
    zmq_msg_t env[CFD_ENV_MAX];
    size_t nenv;
    zmq_msg_t req;
    bool has_req;
    int refuse;              /* the transport's verdict: 0 or a CF_E* */
    const char *refuse_msg;
    char user[65];           /* the operator its CURVE key proves, or "" */
    size_t eng;              /* index into the engine's batch when !refuse */
} s_slot_t;

typedef struct {
    cf_engine_t *engine;                 /* NULL while a cluster follower */
    cf_cluster_t *cluster;               /* NULL: a single node */
    cf_engine_opts_t eo;                 /* how to open the engine (again) */
    const char *data_dir;
    void *ctx;
    void *portal, *operator, *events;
    cf_zap_t *zap;                       /* also without CURVE: the events gate */
    bool curve;
    void *evmon;                         /* the events socket's monitor */
    int64_t nsubs;                       /* connections to the events socket */
    size_t max_subs;
    size_t max_frame;
    bool manual;
    s_slot_t *slots;                     /* CFD_BATCH_MAX */
    cf_request_t *reqs;                  /* CFD_BATCH_MAX */
    cf_reply_t *replies;                 /* CFD_BATCH_MAX, engine's */
    cf_reply_t *refusals;                /* CFD_BATCH_MAX, transport's */
    uint64_t nrequests;
    uint64_t ndropped;                   /* replies not delivered */
    bool commit_failing;
    uint64_t nfailed_commits;
    int64_t fire_retry_ms;               /* don't retry a failed fire before */
    cf_stage_t *stage;                   /* replies and events until released */
    /* Where the loop's wall time goes, in µs since start (SIGUSR1 logs it;
     * claimflow-bench reads it around each load phase). */
    struct {
        int64_t poll, recv, run, stage, fire, other;
        uint64_t batches;
    } prof;
    cf_syncer_t *syncer;                 /* --sync deferred: the durability thread */
    uint64_t kicked_seq;                 /* the last batch the syncer was told of */
    uint64_t sync_failures;
    bool compact_failing;                /* the last compaction after a purge failed */
    cf_wslog_t *wslog;                   /* --record-writesets */
    cf_metrics_t *metrics;               /* NULL when `http:` is not configured */
    cf_http_t *http;
    int64_t stats_last_ms, stats_cost_ms, publish_last_ms;
    bool stats_dirty;                    /* written since the last stats run */
    bool metrics_dirty;                  /* counted since the last publish */
} s_daemon_t;

static int64_t s_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The monotonic clock in microseconds, and in the units callers want. */
static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t s_mono_ms(void) { return s_mono_us() / 1000; }
static double s_mono_s(void) { return (double)s_mono_us() / 1e6; }

/* The op of a request frame, if it has one that looks like an op name
 * (a-z, '.', '_'; at most 32): safe to log.  "?" otherwise. */
static void s_op_name(const void *frame, size_t len, char out[33])
{
    strcpy(out, "?");
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (cf_mpcheck(frame, len, NULL) == 0 &&
        msgpack_unpack_next(&u, frame, len, NULL) == MSGPACK_UNPACK_SUCCESS &&
        u.data.type == MSGPACK_OBJECT_MAP) {
        const msgpack_object *v = cf_mp_get(&u.data, "op");
        bool clean = v && v->type == MSGPACK_OBJECT_STR && v->via.str.size > 0 &&
                     v->via.str.size <= 32;
        for (uint32_t j = 0; clean && j < v->via.str.size; j++) {
            char ch = v->via.str.ptr[j];
            clean = (ch >= 'a' && ch <= 'z') || ch == '.' || ch == '_';
        }
        if (clean) {
            memcpy(out, v->via.str.ptr, v->via.str.size);
            out[v->via.str.size] = '\0';
        }
    }
    msgpack_unpacked_destroy(&u);
}

/* ---------------------------------------------------------- receiving --- */
static void s_slot_clear(s_slot_t *s)
{
    for (size_t i = 0; i < s->nenv; i++)
        zmq_msg_close(&s->env[i]);
    s->nenv = 0;
    if (s->has_req)
        zmq_msg_close(&s->req);
    s->has_req = false;
    s->refuse = 0;
    s->refuse_msg = NULL;
    s->user[0] = '\0';
}

/* Read one whole message from sock into s.  1: a request (perhaps refused by
 * the transport, see s->refuse); 0: nothing waiting; -1: a socket error. */
static int s_recv_one(s_daemon_t *d, void *sock, cf_endpoint_t ep, s_slot_t *s)
{
    zmq_msg_t parts[CFD_KEEP_FRAMES];
    size_t kept = 0, total = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
            int err = zmq_errno();
            zmq_msg_close(&m);
            if (total == 0 && (err == EAGAIN || err == EINTR))
                return 0;
            /* Parts of a message arrive together: a failure mid-message is
             * a libzmq error, not a client's. */
            for (size_t i = 0; i < kept; i++)
                zmq_msg_close(&parts[i]);
            fprintf(stderr, "claimflowd: error: receive failed: %s\n",
                    zmq_strerror(err));
            return -1;
        }
        bool more = zmq_msg_more(&m);
        total++;
        if (kept < CFD_KEEP_FRAMES) {
            zmq_msg_init(&parts[kept]);
            zmq_msg_move(&parts[kept], &m);
            kept++;
        }
        zmq_msg_close(&m);
        if (!more)
            break;
    }

    /* Frame 0 is the peer identity; an empty frame after it ends the
     * envelope. */
    size_t delim = 0;
    for (size_t i = 1; i < kept && !delim; i++)
        if (zmq_msg_size(&parts[i]) == 0)
            delim = i;

    s->sock = sock;
    s->ep = ep;
    s->refuse = 0;
    /* An envelope too long to keep is answered to the identity alone. */
    size_t nenv = delim && delim < CFD_ENV_MAX ? delim + 1 : 1;
    size_t reqi = nenv;
    if (total > kept || delim >= CFD_ENV_MAX) {
        s->refuse = CF_EBADREQ;
        s->refuse_msg = "a request is one frame after the envelope; the message "
                        "has too many frames";
    } else {
        if (reqi >= total) {
            s->refuse = CF_EBADREQ;
            s->refuse_msg = "the message has no request frame";
        } else if (total > reqi + 1) {
            s->refuse = CF_EBADREQ;
            s->refuse_msg = "a request is one frame after the envelope; the "
                            "message has more";
        } else if (zmq_msg_size(&parts[reqi]) > d->max_frame) {
            s->refuse = CF_ETOOLARGE;
            s->refuse_msg = "the request frame is larger than the daemon's "
                            "max_frame";
        } else {
            /* The engine runs the same check, but its message cannot name
             * the bound a frame broke (a map over CF_MP_MAX_KEYS keys reads
             * there as "not msgpack"); a linear walk, so doing it twice
             * costs little next to unpacking. */
            int chk = cf_mpcheck(zmq_msg_data(&parts[reqi]),
                                 zmq_msg_size(&parts[reqi]), NULL);
            if (chk != CF_MPCHECK_OK) {
                s->refuse = CF_EBADREQ;
                s->refuse_msg = cf_mpcheck_strerror(chk);
            }
        }
    }
    s->user[0] = '\0';
    if (d->curve && ep == CF_EP_OPERATOR && !s->refuse) {
        /* Who the key belongs to, as the ZAP handler said; every message
         * of the connection carries it.  Without it nobody is proven, and
         * the request must not run as whoever it names. */
        const char *user = zmq_msg_gets(&parts[reqi], "User-Id");
        if (!user || !*user || strlen(user) >= sizeof s->user) {
            s->refuse = CF_EFORBIDDEN;
            s->refuse_msg = "the connection carries no authenticated operator";
        } else {
            snprintf(s->user, sizeof s->user, "%s", user);
        }
    }

    s->nenv = 0;
    for (size_t i = 0; i < nenv; i++) {
        zmq_msg_init(&s->env[i]);
        zmq_msg_move(&s->env[i], &parts[i]);
        s->nenv++;
    }
    s->has_req = false;
    if (!s->refuse) {
        zmq_msg_init(&s->req);
        zmq_msg_move(&s->req, &parts[reqi]);
        s->has_req = true;
    }
    for (size_t i = 0; i < kept; i++)
        zmq_msg_close(&parts[i]);
    return 1;
}

/* ------------------------------------------------------------ sending --- */
/* The stage's senders (stage.h): a reply with its envelope, an event. */
static void s_send_reply(void *ctx, void *sock, zmq_msg_t *env, size_t nenv,
                         const cf_reply_t *r)
{
    s_daemon_t *d = ctx;
    if (r->body.size == 0) {                   /* out of memory building it */
        d->ndropped++;
        return;
    }
    for (size_t i = 0; i < nenv; i++)
        if (zmq_msg_send(&env[i], sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) {
            d->ndropped++;
            return;
        }
    if (zmq_send(sock, r->body.data, r->body.size, ZMQ_DONTWAIT) < 0)
        d->ndropped++;
}

static void s_send_event(void *ctx, const char *topic, const char *body, size_t len)
{
    s_daemon_t *d = ctx;
    /* PUB never blocks: a slow subscriber loses messages at its HWM. */
    if (zmq_send(d->events, topic, strlen(topic), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return;
    zmq_send(d->events, body, len, ZMQ_DONTWAIT);
}

/* The engine's last run committed up to cf_engine_seq: stage its events in
 * the open batch. */
static void s_stage_events(s_daemon_t *d)
{
    const cf_pub_t *p;
    if (!d->engine)
        return;
    size_t n = cf_engine_published(d->engine, &p);
    if (d->metrics && n) {
        size_t bytes = 0;
        for (size_t i = 0; i < n; i++)
            bytes += strlen(p[i].topic) + p[i].body_len;
        cf_metrics_events(d->metrics, n, bytes);
        d->metrics_dirty = true;
    }
    cf_stage_events(d->stage, p, n);
}

/* One node: a batch is acknowledged when its commit returns. */
static uint64_t s_seq(const s_daemon_t *d)
{
    return d->engine ? cf_engine_seq(d->engine) : cf_cluster_seq(d->cluster);
}

static void s_release(s_daemon_t *d)
{
    uint64_t seq = s_seq(d);
    if (d->cluster && cf_cluster_is_leader(d->cluster)) {
        /* A leader's batch is acknowledged when the log holds it: the
         * appender says so (s_cluster_release). */
    } else if (!d->syncer) {
        cf_stage_ack(d->stage, seq);          /* every commit synced itself */
    } else if (seq > d->kicked_seq) {
        cf_syncer_kick(d->syncer);            /* acknowledged when synced */
        d->kicked_seq = seq;
    }
    cf_stage_release(d->stage, s_mono_us());
}

/* The syncer made batches durable: release what waited for them. */
static void s_synced(s_daemon_t *d)
{
    uint64_t failures = 0;
    cf_stage_ack(d->stage, cf_syncer_take(d->syncer, &failures));
    if (failures > d->sync_failures)
        fprintf(stderr, "claimflowd: error: syncing the store failed (%" PRIu64 " times so "
                        "far); replies wait until it succeeds\n", failures);
    d->sync_failures = failures;
    cf_stage_release(d->stage, s_mono_us());
}

/* ------------------------------------------------------------- serving --- */
/* The store's health, as the replies show it: log once when writes start
 * failing (`unavailable`: disk or map full) and once when they succeed
 * again, not once per refused request. */
static void s_store_health(s_daemon_t *d, bool failed, bool wrote, const char *what)
{
    if (failed) {
        d->nfailed_commits++;
        if (!d->commit_failing)
            fprintf(stderr, "claimflowd: error: %s: the store refuses writes: "
                            "unavailable (disk or map full?)\n", what);
        d->commit_failing = true;
    } else if (wrote && d->commit_failing) {
        fprintf(stderr, "claimflowd: the store takes writes again after %" PRIu64
                        " refused batches\n", d->nfailed_commits);
        d->commit_failing = false;
        d->nfailed_commits = 0;
    }
}

/* The loop's profile, one line: cumulative µs per stage since start; `run`
 * includes `commit` (LMDB's commits, their fsyncs); then the commits by
 * duration, the non-empty buckets of store.h's histogram as bucket:count. */
static void s_profile_log(const s_daemon_t *d)
{
    char hist[CF_STORE_HIST * 24] = "";
    size_t n = 0;
    const uint64_t *h = d->engine ? cf_engine_commit_hist(d->engine) : NULL;
    for (int b = 0; h && b < CF_STORE_HIST; b++)
        if (h[b])
            n += (size_t)snprintf(hist + n, sizeof hist - n, "%s%d:%" PRIu64, n ? "," : "", b,
                                  h[b]);
    fprintf(stderr, "claimflowd: loop us: poll=%" PRId64 " recv=%" PRId64 " run=%" PRId64
                    " commit=%" PRIu64 " stage=%" PRId64 " fire=%" PRId64 " other=%" PRId64
                    " batches=%" PRIu64 " commits=%s\n",
            d->prof.poll, d->prof.recv, d->prof.run,
            d->engine ? cf_engine_commit_us(d->engine) : 0,
            d->prof.stage, d->prof.fire, d->prof.other, d->prof.batches, hist);
}

/* A compaction after a purge that failed leaves the erased bytes in
 * data.mdb: say so once, and once when a later one succeeds. */
static void s_compact_health(s_daemon_t *d)
{
    cf_error_t err;
    if (!d->engine)
        return;
    bool failed = cf_engine_compact_failed(d->engine, &err);
    if (failed && !d->compact_failing)
        fprintf(stderr, "claimflowd: error: the compaction after a purge failed (%s): the "
                        "erased data stays in data.mdb until it succeeds; retried at the "
                        "next purge and at start\n", err.message);
    else if (!failed && d->compact_failing)
        fprintf(stderr, "claimflowd: the compaction after a purge succeeded\n");
    d->compact_failing = failed;
}

/* ------------------------------------------------------------- metrics --- */
/* True when the request frame's `actor` is exactly name. */
static bool s_actor_is(const void *frame, size_t len, const char *name)
{
    bool is = false;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    if (cf_mpcheck(frame, len, NULL) == 0 &&
        msgpack_unpack_next(&u, frame, len, NULL) == MSGPACK_UNPACK_SUCCESS)
        is = cf_mp_streq(cf_mp_get(&u.data, "actor"), name);
    msgpack_unpacked_destroy(&u);
    return is;
}

/* Count one reply (sent or not) of slot s.  The op is the engine's (the
 * reply names it): the frame is not parsed again. */
static void s_count_reply(s_daemon_t *d, const s_slot_t *s, const cf_reply_t *r)
{
    if (!d->metrics)
        return;
    cf_metrics_request(d->metrics, s->ep, r->op, r->code, r->body.size);
    d->metrics_dirty = true;
    /* Under the manual clock, timers fire inside clock.advance/clock.set,
     * not in s_fire: their replies say how many. */
    if (r->code == 0 && r->op && strncmp(r->op, "clock.", 6) == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, r->body.data, r->body.size, NULL) ==
            MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *v = cf_mp_get(&u.data, "fired");
            if (v && v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                cf_metrics_fired(d->metrics, (size_t)v->via.u64);
        }
        msgpack_unpacked_destroy(&u);
    }
}

/* Run `stats` through the engine as CFD_METRICS_ACTOR and hand the reply to
 * the metrics.  Called between batches, never with published events unsent
 * (a run replaces them). */
static void s_metrics_stats(s_daemon_t *d)
{
    if (!d->engine)
        return;   /* a follower: the leader's metrics count the claims */
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "stats", 5);
    msgpack_pack_str_with_body(&pk, "actor", 5);
    msgpack_pack_str_with_body(&pk, CFD_METRICS_ACTOR, strlen(CFD_METRICS_ACTOR));
    cf_request_t req = {.endpoint = CF_EP_OPERATOR, .frame = sb.data, .len = sb.size};
    cf_reply_t rep;
    cf_reply_init(&rep);
    double t0 = s_mono_s();
    /* A failed run leaves an error reply, which cf_metrics_stats counts as
     * a failed stats run: nothing else to do with rc. */
    (void)cf_engine_run(d->engine, &req, 1, &rep);
    double took = s_mono_s() - t0;
    (void)cf_metrics_stats(d->metrics, rep.body.data, rep.body.size, took,
                           (int64_t)cf_engine_now(d->engine));
    d->stats_cost_ms = (int64_t)(took * 1000);
    cf_reply_fini(&rep);
    msgpack_sbuffer_destroy(&sb);
}

/* How long until the next stats run is due (ms, 0: now). */
static int64_t s_stats_wait(const s_daemon_t *d, int64_t now)
{
    int64_t floor = d->stats_dirty ? CFD_STATS_DIRTY_MS : CFD_STATS_IDLE_MS;
    int64_t gap = d->stats_cost_ms * CFD_STATS_SHARE;
    int64_t wait = d->stats_last_ms + (gap > floor ? gap : floor) - now;
    return wait < 0 ? 0 : wait;
}

/* Once per loop iteration: the liveness beat, stats when due, a publish
 * when something changed (at most every CFD_PUBLISH_MS) or stats ran. */
static void s_metrics_tick(s_daemon_t *d, bool force)
{
    if (!d->metrics)
        return;
    cf_metrics_beat(d->metrics);
    int64_t now = s_mono_ms();
    bool stats = force || s_stats_wait(d, now) == 0;
    if (stats) {
        s_metrics_stats(d);
        d->stats_last_ms = now;
        d->stats_dirty = false;
    }
    if (!stats && !(d->metrics_dirty && now - d->publish_last_ms >= CFD_PUBLISH_MS))
        return;
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/data.mdb", d->data_dir);
    if (stat(path, &st) == 0)
        cf_metrics_store_bytes(d->metrics, (uint64_t)st.st_size);
    cf_metrics_dropped(d->metrics, d->ndropped);
    cf_metrics_writable(d->metrics, !d->commit_failing);
    /* Out of memory keeps the previous snapshot up; the next tick retries. */
    if (cf_metrics_publish(d->metrics) == 0) {
        d->publish_last_ms = now;
        d->metrics_dirty = false;
    }
}

/* The poll timeout, shortened so that stats due after a write, and a
 * publish of fresh counts, are not a whole tick late. */
static long s_metrics_timeout(const s_daemon_t *d, long timeout)
{
    if (!d->metrics)
        return timeout;
    int64_t now = s_mono_ms();
    int64_t wait = s_stats_wait(d, now);
    if (d->metrics_dirty) {
        int64_t pw = d->publish_last_ms + CFD_PUBLISH_MS - now;
        wait = pw < wait ? (pw < 0 ? 0 : pw) : wait;
    }
    return wait < timeout ? (long)wait : timeout;
}

/* Drain a batch from both sockets, run it, answer it.  Returns the number of
 * requests served, or -1 on a socket error. */
static int s_serve(s_daemon_t *d)
{
    void *socks[2] = {d->portal, d->operator};
    cf_endpoint_t eps[2] = {CF_EP_PORTAL, CF_EP_OPERATOR};
    bool open[2] = {true, true};
    size_t n = 0, neng = 0, bytes = 0;
    int result = 0;

    int64_t t_recv = s_mono_us();
    /* One from each socket in turn, so a busy portal cannot starve the
     * operators (or the other way round). */
    while (n < CFD_BATCH_MAX && bytes < CFD_BATCH_BYTES && (open[0] || open[1])) {
        for (int k = 0; k < 2 && n < CFD_BATCH_MAX; k++) {
            if (!open[k])
                continue;
            int rc = s_recv_one(d, socks[k], eps[k], &d->slots[n]);
            if (rc < 0) {
                result = -1;
                open[k] = false;
            } else if (rc == 0) {
                open[k] = false;
            } else {
                s_slot_t *s = &d->slots[n];
                /* Only the daemon itself may be its metrics operator. */
                if (!s->refuse && d->metrics && s->ep == CF_EP_OPERATOR &&
                    s_actor_is(zmq_msg_data(&s->req), zmq_msg_size(&s->req),
                               CFD_METRICS_ACTOR)) {
                    s->refuse = CF_EFORBIDDEN;
                    s->refuse_msg = "actor is not an operator in the roster";
                }
                if (!s->refuse) {
                    s->eng = neng;
                    d->reqs[neng] = (cf_request_t){
                        .endpoint = s->ep,
                        .auth_actor = s->user[0] ? s->user : NULL,
                        .frame = zmq_msg_data(&s->req),
                        .len = zmq_msg_size(&s->req),
                    };
                    bytes += d->reqs[neng].len;
                    neng++;
                }
                n++;
            }
        }
    }
    int64_t t_run = s_mono_us();
    d->prof.recv += t_run - t_recv;
    if (n == 0)
        return result;
    d->prof.batches++;

    for (size_t i = 0; i < neng; i++)
        cf_reply_init(&d->replies[i]);
    /* A follower, or a leader whose lease may have lapsed: ping is answered
     * here, everything else is `not_leader`. */
    bool follower = d->cluster && !cf_cluster_serving(d->cluster, s_mono_us());
    if (follower) {
        int64_t now = d->eo.manual_clock && d->engine ? cf_engine_now(d->engine)
                                                      : (int64_t)time(NULL);
        for (size_t i = 0; i < neng; i++)
            cf_reply_follower(&d->replies[i], &d->reqs[i], cf_cluster_view(d->cluster),
                              s_seq(d), now);
    } else if (neng > 0) {
        double t0 = d->metrics ? s_mono_s() : 0;
        int rc = cf_engine_run(d->engine, d->reqs, neng, d->replies);
        bool failed = rc < 0, wrote = false;
        for (size_t i = 0; i < neng; i++) {
            failed |= d->replies[i].code == CF_EUNAVAIL;
            wrote |= d->replies[i].wrote && d->replies[i].code == 0;
        }
        if (!(d->cluster && cf_cluster_lost(d->cluster)))   /* the cluster says why */
            s_store_health(d, failed, wrote, "request batch");
        s_compact_health(d);
        if (d->metrics) {
            cf_metrics_batch(d->metrics, neng, s_mono_s() - t0, failed);
            d->stats_dirty |= wrote;
            d->metrics_dirty = true;
        }
    }
    /* Into the stage, in the order received: replies leave only when the
     * batch is released. */
    int64_t t_stage = s_mono_us();
    d->prof.run += t_stage - t_run;
    cf_stage_begin(d->stage, s_seq(d), t_stage);
    for (size_t i = 0; i < n; i++) {
        s_slot_t *s = &d->slots[i];
        if (s->refuse) {
            cf_reply_init(&d->refusals[i]);
            cf_reply_error(&d->refusals[i], s->refuse, s->refuse_msg);
            s_count_reply(d, s, &d->refusals[i]);
            cf_stage_reply(d->stage, s->sock, s->env, s->nenv, &d->refusals[i]);
            cf_reply_fini(&d->refusals[i]);
        } else {
            cf_reply_t *r = &d->replies[s->eng];
            if (r->code == CF_EINTERNAL) {
                char opname[33];
                s_op_name(d->reqs[s->eng].frame, d->reqs[s->eng].len, opname);
                fprintf(stderr, "claimflowd: error: internal error answering "
                                "op %s on the %s endpoint\n", opname,
                        s->ep == CF_EP_PORTAL ? "portal" : "operator");
            }
            s_count_reply(d, s, r);
            cf_stage_reply(d->stage, s->sock, s->env, s->nenv, r);
        }
        s_slot_clear(s);
    }
    for (size_t i = 0; i < neng; i++)
        cf_reply_fini(&d->replies[i]);
    d->nrequests += n;
    s_stage_events(d);
    cf_stage_end(d->stage);
    s_release(d);
    d->prof.stage += s_mono_us() - t_stage;
    return result < 0 ? -1 : (int)n;
}

/* Fire the timers that are due now, if any; publish what they committed. */
static void s_fire(s_daemon_t *d)
{
    if (!d->engine || (d->cluster && !cf_cluster_serving(d->cluster, s_mono_us())))
        return;   /* only a cluster's leader fires, through the log */
    cf_time_t due = cf_engine_next_due(d->engine);
    if (due == 0 || due > cf_engine_now(d->engine))
        return;
    if (d->fire_retry_ms && s_mono_ms() < d->fire_retry_ms)
        return;
    size_t fired = 0;
    int rc = cf_engine_fire_due(d->engine, CFD_FIRE_MAX, &fired);
    cf_stage_begin(d->stage, cf_engine_seq(d->engine), s_mono_us());
    s_stage_events(d);
    cf_stage_end(d->stage);
    s_release(d);
    if (d->metrics && fired) {
        cf_metrics_fired(d->metrics, fired);
        d->stats_dirty = d->metrics_dirty = true;
    }
    if (!(d->cluster && cf_cluster_lost(d->cluster)))
        s_store_health(d, rc < 0, fired > 0, "firing timers");
    /* A failed fire leaves the timers due: back off rather than spin. */
    d->fire_retry_ms = rc < 0 ? s_mono_ms() + CFD_TICK_MS : 0;
}

/* How long zmq_poll may sleep: until the next timer, the next batch to
 * release or the cluster's next duty, at most a tick. */
static long s_engine_wait(s_daemon_t *d);
static long s_poll_timeout(s_daemon_t *d)
{
    int64_t held = cf_stage_wait_us(d->stage, s_mono_us());
    if (held >= 0)
        return (long)((held + 999) / 1000);
    if (d->cluster) {
        long cw = cf_cluster_wait_ms(d->cluster, s_mono_us());
        if (!d->engine)
            return cw < CFD_TICK_MS ? cw : CFD_TICK_MS;
        long w = s_engine_wait(d);
        return cw < w ? cw : w;
    }
    return s_engine_wait(d);
}

static long s_engine_wait(s_daemon_t *d)
{
    if (d->manual)                  /* only requests move a manual clock */
        return CFD_TICK_MS;
    cf_time_t due = cf_engine_next_due(d->engine);
    if (due == 0)
        return CFD_TICK_MS;
    if (d->fire_retry_ms) {
        int64_t wait = d->fire_retry_ms - s_mono_ms();
        return wait <= 0 ? 0 : wait > CFD_TICK_MS ? CFD_TICK_MS : (long)wait;
    }
    int64_t wait = (int64_t)due * 1000 - s_real_ms();
    if (wait <= 0)
        return 0;
    return wait > CFD_TICK_MS ? CFD_TICK_MS : (long)wait;
}

/* --------------------------------------------------------------- setup --- */
/* A bound socket; with secret (the daemon's Z85 secret key), a CURVE server
 * whose handshakes the ZAP handler decides under the domain `name`. */
static void *s_socket(void *ctx, int type, const char *ep, char *resolved,
                      size_t rlen, const char *name, const char *secret,
                      size_t max_frame)
{
    void *s = zmq_socket(ctx, type);
    if (!s) {
        fprintf(stderr, "claimflowd: cannot create the %s socket: %s\n", name,
                zmq_strerror(zmq_errno()));
        return NULL;
    }
    int linger = CFD_LINGER_MS, one = 1;
    int sndhwm, rcvhwm;
    int64_t maxmsg;
    if (type == ZMQ_PUB) {
        sndhwm = CFD_PUB_HWM;
        rcvhwm = CFD_SUB_RCVHWM;
        maxmsg = CFD_SUB_MAX_MSG;
    } else {
        sndhwm = CFD_ROUTER_HWM;
        maxmsg = (int64_t)max_frame + CFD_FRAME_MARGIN;
        size_t frames = CFD_PEER_IN_BYTES / (size_t)maxmsg;
        rcvhwm = frames < CFD_RCVHWM_MIN ? CFD_RCVHWM_MIN
               : frames > CFD_RCVHWM_MAX ? CFD_RCVHWM_MAX : (int)frames;
    }
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_SNDHWM, &sndhwm, sizeof sndhwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &rcvhwm, sizeof rcvhwm);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (type == ZMQ_ROUTER)
        zmq_setsockopt(s, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    /* Without CURVE the events socket still asks the ZAP handler, whose
     * gate caps the subscribers; the ROUTERs need no handler then. */
    if ((secret || type == ZMQ_PUB) &&
        zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, name, strlen(name)) < 0) {
        fprintf(stderr, "claimflowd: cannot set the %s socket's ZAP domain: %s\n", name,
                zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    if (secret && (zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) < 0 ||
                   zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret, CF_KEY_BUFLEN) < 0)) {
        fprintf(stderr, "claimflowd: cannot enable CURVE on the %s socket: %s\n", name,
                zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    if (zmq_bind(s, ep) < 0) {
        fprintf(stderr, "claimflowd: cannot bind the %s socket to %s: %s\n",
                name, ep, zmq_strerror(zmq_errno()));
        zmq_close(s);
        return NULL;
    }
    size_t len = rlen;
    if (zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, resolved, &len) < 0)
        snprintf(resolved, rlen, "%s", ep);
    return s;
}

/* The number of workflows the engine loaded, from its own ping reply (the
 * engine has no other way to say), or -1. */
static int s_workflow_count(cf_engine_t *e)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "op", 2);
    msgpack_pack_str_with_body(&pk, "ping", 4);
    cf_request_t req = {.endpoint = CF_EP_PORTAL, .frame = sb.data, .len = sb.size};
    cf_reply_t rep;
    cf_reply_init(&rep);
    int count = -1;
    if (cf_engine_run(e, &req, 1, &rep) == 0 && rep.code == 0) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        if (msgpack_unpack_next(&u, rep.body.data, rep.body.size, NULL) ==
            MSGPACK_UNPACK_SUCCESS) {
            const msgpack_object *w = cf_mp_get(&u.data, "workflows");
            if (w && w->type == MSGPACK_OBJECT_ARRAY)
                count = (int)w->via.array.size;
        }
        msgpack_unpacked_destroy(&u);
    }
    cf_reply_fini(&rep);
    msgpack_sbuffer_destroy(&sb);
    return count;
}

/* Count the events socket's connections from its monitor: accepted ones
 * up, closed ones (refused handshakes too) down.  Never waits. */
static void s_count_subscribers(s_daemon_t *d)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, d->evmon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        /* Frame 1: the event (uint16, host order) and a value; frame 2:
         * the endpoint. */
        uint16_t ev = 0;
        if (zmq_msg_size(&m) >= sizeof ev)
            memcpy(&ev, zmq_msg_data(&m), sizeof ev);
        bool more = zmq_msg_more(&m);
        zmq_msg_close(&m);
        while (more) {
            zmq_msg_init(&m);
            more = zmq_msg_recv(&m, d->evmon, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&m);
            zmq_msg_close(&m);
        }
        if (ev == ZMQ_EVENT_ACCEPTED)
            d->nsubs++;
        else if (ev == ZMQ_EVENT_DISCONNECTED && d->nsubs > 0)
            d->nsubs--;
    }
}

/* The ZAP gate of the events socket.  A client is counted from its TCP
 * accept, which libzmq reports before the client's handshake asks this: so
 * the one asking is among d->nsubs. */
static bool s_admit_subscriber(void *arg)
{
    s_daemon_t *d = arg;
    s_count_subscribers(d);
    return d->nsubs <= (int64_t)d->max_subs;
}

/* Watch the events socket's connections.  Our end takes every event
 * (receive HWM 0): libzmq's monitor sends block, in its I/O thread, holding
 * a lock that stopping the monitor needs. */
static int s_monitor_events(s_daemon_t *d)
{
    int zero = 0;
    if (zmq_socket_monitor(d->events, CFD_EVMON_EP,
                           ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) < 0 ||
        !(d->evmon = zmq_socket(d->ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(d->evmon, ZMQ_RCVHWM, &zero, sizeof zero) < 0 ||
        zmq_setsockopt(d->evmon, ZMQ_LINGER, &zero, sizeof zero) < 0 ||
        zmq_connect(d->evmon, CFD_EVMON_EP) < 0) {
        fprintf(stderr, "claimflowd: cannot monitor the events socket: %s\n",
                zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

static void s_close(s_daemon_t *d)
{
    /* The HTTP thread reads the metrics: it stops first. */
    cf_http_stop(&d->http);
    cf_metrics_destroy(&d->metrics);
    if (d->evmon) {
        zmq_socket_monitor(d->events, NULL, 0);
        zmq_close(d->evmon);
        d->evmon = NULL;
    }
    /* Linger was set small at creation: queued replies get that long. */
    /* What the stage still holds committed: made durable, then sent before
     * the sockets go. */
    uint64_t synced = 0;
    if (d->syncer) {
        cf_syncer_destroy(&d->syncer, &synced);
        cf_stage_ack(d->stage, synced);
    }
    cf_stage_destroy(&d->stage);
    if (d->portal)
        zmq_close(d->portal);
    if (d->operator)
        zmq_close(d->operator);
    if (d->events)
        zmq_close(d->events);
    d->portal = d->operator = d->events = NULL;
    cf_zap_destroy(&d->zap);
    if (d->ctx)
        zmq_ctx_term(d->ctx);
    cf_wslog_close(&d->wslog);
    d->ctx = NULL;
    cf_engine_destroy(&d->engine);
    cf_cluster_close(&d->cluster);
    free(d->slots);
    free(d->reqs);
    free(d->replies);
    free(d->refusals);
}

/* Every connected client holds a file descriptor: raise the soft limit to
 * the hard one so a thousand idle portal connections do not starve the
 * others (1024 is the usual soft default). */
static void s_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Without CURVE nobody is authenticated: only endpoints no other machine
 * can reach may be bound - tcp on a loopback address (127.0.0.0/8, ::1,
 * localhost), ipc:// and inproc://.  Anything else, including `*` and
 * interface names, is refused rather than guessed about. */
static bool s_endpoint_local(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0)
        return true;
    if (strncmp(ep, "tcp://", 6) != 0)
        return false;
    const char *host = ep + 6, *end;
    if (*host == '[') {
        host++;
        end = strchr(host, ']');
        if (!end || end[1] != ':')
            return false;
    } else {
        end = strrchr(host, ':');
        if (!end)
            return false;
    }
    char buf[64];
    size_t n = (size_t)(end - host);
    if (n == 0 || n >= sizeof buf)
        return false;
    memcpy(buf, host, n);
    buf[n] = '\0';
    if (strcmp(buf, "localhost") == 0)
        return true;
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, buf, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, buf, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* ------------------------------------------------------------- cluster --- */
static void s_cluster_log(const char *line)
{
    fprintf(stderr, "claimflowd: cluster: %s\n", line);
}

/* Load the workflows as the engine would, on a scratch store that is gone
 * afterwards: the number of workflow versions, or a CF_E* with diagnostics. */
static int s_check_workflows(const cf_engine_opts_t *eo, cf_diags_t *d)
{
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/claimflowd-check-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        cf_diag_add(d, dir, 0, 0, "cannot make a scratch directory: %s", strerror(errno));
        return CF_EUNAVAIL;
    }
    cf_engine_opts_t o = *eo;
    o.data_dir = dir;
    o.map_size = 4u << 20;
    o.commit_hook = NULL;
    o.cluster = NULL;
    cf_engine_t *e = NULL;
    int rc = cf_engine_open(&o, &e, d);
    if (rc == 0)
        rc = s_workflow_count(e);
    cf_engine_destroy(&e);
    char path[4200];
    snprintf(path, sizeof path, "%s/data.mdb", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/lock.mdb", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}

/* Batches the log holds now: their replies and events may go, their undo
 * records may go. */
static void s_cluster_release(s_daemon_t *d, uint64_t acked)
{
    if (d->engine && cf_cluster_is_leader(d->cluster)) {
        cf_store_undo_acked(cf_engine_store(d->engine), acked);
        cf_stage_ack(d->stage, acked);
        cf_stage_release(d->stage, s_mono_us());
    }
}

/* The cluster's duties of this iteration, and a change of role. */
static int s_cluster_step(s_daemon_t *d)
{
    cf_error_t err = {0};
    s_cluster_release(d, cf_cluster_acked(d->cluster));
    int r = cf_cluster_tick(d->cluster, s_mono_us(), &err);
    if (r == CF_CLUSTER_FATAL) {
        fprintf(stderr, "claimflowd: error: %s\n", err.message);
        return -1;
    }
    if (r == CF_CLUSTER_PROMOTE) {
        cf_diags_t diags = {0};
        int rc = cf_engine_open(&d->eo, &d->engine, &diags);
        if (rc == 0) {
            cf_diags_clear(&diags);
            s_compact_health(d);
            s_fire(d);   /* timers that fell due while no one led */
            return 0;
        }
        cf_diags_print(&diags, stderr);
        cf_diags_clear(&diags);
        fprintf(stderr, "claimflowd: error: cannot open the store as the leader: %s\n",
                cf_errname(rc));
        cf_cluster_step_down(d->cluster, "the engine could not open");
        r = CF_CLUSTER_DEMOTE;
    }
    if (r == CF_CLUSTER_DEMOTE) {
        /* What the log does not hold is taken back: nobody hears of it
         * (its clients retry with the same id). */
        cf_stage_drop(d->stage, cf_cluster_acked(d->cluster));
        cf_engine_destroy(&d->engine);
        if (cf_cluster_follow(d->cluster, &err) < 0) {
            fprintf(stderr, "claimflowd: error: cannot reopen the store as a follower: %s\n",
                    err.message);
            return -1;
        }
    }
    return 0;
}

static const char *s_signame(int sig)
{
    return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : "signal";
}

int main(int argc, char **argv)
{
    /* Under systemd, every line from here on carries its level; if the
     * stream cannot be made, lines go out plain (nothing is lost). */
    (void)cf_sd_journal_stderr();
    s_flags_t f;
    s_parse_flags(argc, argv, &f);

    cf_config_t *cfg = NULL;
    if (f.config_path) {
        cf_error_t cerr = {0};
        if (cf_config_load(f.config_path, &cfg, &cerr) < 0) {
            fprintf(stderr, "claimflowd: %s\n", cerr.message);
            return CFD_EXIT_USAGE;
        }
    }
    bool curve = cfg && cfg->curve;
    if (!curve) {
        const char *const eps[][2] = {
            {"portal", f.portal_ep}, {"operator", f.operator_ep}, {"events", f.events_ep}};
        for (size_t i = 0; i < sizeof eps / sizeof eps[0]; i++)
            if (!s_endpoint_local(eps[i][1])) {
                fprintf(stderr, "claimflowd: cannot bind the %s socket to %s: CURVE is "
                                "off (no 'curve:' in the config), so only loopback "
                                "(tcp://127.0.0.1, tcp://[::1], tcp://localhost), "
                                "ipc:// or inproc:// may be bound\n", eps[i][0], eps[i][1]);
                cf_config_destroy(&cfg);
                return CFD_EXIT_USAGE;
            }
    }
    /* HTTP has no authentication of its own: loopback only, unless the
     * operator has turned CURVE on (SECURITY.md says what it reveals). */
    bool http_on = cfg && cfg->http;
    struct sockaddr_storage http_addr = {0};
    if (http_on) {
        http_addr = cfg->http_addr;
        if (!curve && !cfg->http_loopback) {
            char host[64] = "?";
            unsigned port;
            if (http_addr.ss_family == AF_INET6) {
                const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&http_addr;
                inet_ntop(AF_INET6, &a6->sin6_addr, host + 1, sizeof host - 2);
                host[0] = '[';
                strcat(host, "]");
                port = ntohs(a6->sin6_port);
            } else {
                const struct sockaddr_in *a4 = (const struct sockaddr_in *)&http_addr;
                inet_ntop(AF_INET, &a4->sin_addr, host, sizeof host);
                port = ntohs(a4->sin_port);
            }
            fprintf(stderr, "claimflowd: cannot serve HTTP on %s:%u: CURVE is off (no "
                            "'curve:' in the config), so only a loopback address "
                            "(127.0.0.1, [::1], localhost) may be listened on\n", host, port);
            cf_config_destroy(&cfg);
            return CFD_EXIT_USAGE;
        }
    }
    size_t max_frame = f.max_frame ? f.max_frame
                     : cfg && cfg->max_frame ? cfg->max_frame : CFD_MAX_FRAME;

    if (s_signals_install() < 0) {
        fprintf(stderr, "claimflowd: cannot install signal handlers: %s\n",
                strerror(errno));
        cf_config_destroy(&cfg);
        return CFD_EXIT_RUNTIME;
    }

    bool clustered = cfg && cfg->cluster;
    const char *node = f.node ? f.node : clustered ? cfg->cl.node : NULL;
    const char *cluster_misuse =
        f.node && !clustered ? "--node needs a config with a 'cluster:' section"
        : clustered && !node ? "a cluster node needs a name: 'node' in the config's "
                               "'cluster:' section, or --node"
        : clustered && f.record_writesets ? "--record-writesets is for a single node, not "
                                            "a cluster's (its log is in etcd)"
        : clustered && !f.sync_immediate ? "--sync deferred is for a single node: a "
                                           "cluster's leader commits after its log append"
        : NULL;
    if (cluster_misuse) {
        fprintf(stderr, "claimflowd: %s\n", cluster_misuse);
        cf_config_destroy(&cfg);
        return CFD_EXIT_USAGE;
    }

    s_daemon_t d = {.max_frame = max_frame, .manual = f.manual_clock, .curve = curve,
                    .max_subs = f.max_subscribers, .data_dir = f.data_dir};
    if (f.record_writesets && !(d.wslog = cf_wslog_open(f.record_writesets))) {
        fprintf(stderr, "claimflowd: cannot open --record-writesets %s: %s\n",
                f.record_writesets, strerror(errno));
        cf_config_destroy(&cfg);
        return CFD_EXIT_USAGE;
    }
    cf_engine_opts_t eo = {
        .data_dir = f.data_dir,
        .workflows_dir = f.workflows_dir,
        .map_size = f.map_size,
        .no_grow = f.no_grow,
        .idem_retention = cfg ? cfg->idem_retention : 0,
        .audit_retention = cfg ? cfg->audit_retention : 0,
        .consent_changes_per_day = cfg ? cfg->consent_changes : 0,
        .max_document = cfg ? cfg->max_document : 0,
        .manual_clock = f.manual_clock,
        .manual_start = f.manual_start,
        .purge_after = cfg ? cfg->purge_after : 0,
        .show_operator_ids = cfg ? cfg->show_operator_ids : false,
        .operators = cfg ? cfg->operators : NULL,
        .noperators = cfg ? cfg->noperators : 0,
        .commit_hook = d.wslog ? cf_wslog_hook : NULL,
        .hook_ctx = d.wslog,
        .defer_sync = !f.sync_immediate,
    };
    size_t noperators = eo.noperators, keyless = 0;
    for (size_t i = 0; i < noperators; i++)
        keyless += !cfg->operators[i].key;
    /* With metrics, the roster the engine gets has one more: the daemon's
     * own auditor for `stats` (CFD_METRICS_ACTOR).  The engine copies it. */
    cf_operator_t *roster = NULL;
    if (http_on) {
        roster = calloc(noperators + 1, sizeof *roster);
        if (!roster) {
            fprintf(stderr, "claimflowd: out of memory\n");
            cf_config_destroy(&cfg);
            return CFD_EXIT_RUNTIME;
        }
        for (size_t i = 0; i < noperators; i++)
            roster[i] = cfg->operators[i];
        roster[noperators] = (cf_operator_t){.id = CFD_METRICS_ACTOR, .role = CF_ROLE_AUDITOR};
        eo.operators = roster;
        eo.noperators = noperators + 1;
    }
    bool no_portal_keys = cfg && cfg->nportal_keys == 0;
    cf_diags_t diags = {0};
    d.eo = eo;
    /* A cluster node opens its engine only when it leads; it checks its
     * workflows now, on a scratch store, so a bad file stops it here. */
    int rc = clustered ? s_check_workflows(&eo, &diags) : cf_engine_open(&eo, &d.engine, &diags);
    if (rc < 0) {
        free(roster);
        cf_config_destroy(&cfg);
        cf_wslog_close(&d.wslog);
        cf_diags_print(&diags, stderr);
        cf_diags_clear(&diags);
        fprintf(stderr, "claimflowd: cannot open the store in %s with the "
                        "workflows of %s: %s\n",
                f.data_dir, f.workflows_dir, cf_errname(rc));
        return CFD_EXIT_USAGE;
    }
    cf_diags_clear(&diags);
    s_compact_health(&d);
    int nworkflows = clustered ? rc : s_workflow_count(d.engine);
    d.eo.undo = clustered;   /* a leader commits before its log holds a batch */
    if (!clustered) {            /* the engine has its copy */
        free(roster);
        roster = NULL;
        d.eo.operators = NULL;
    }

    d.slots = calloc(CFD_BATCH_MAX, sizeof *d.slots);
    d.reqs = calloc(CFD_BATCH_MAX, sizeof *d.reqs);
    d.replies = calloc(CFD_BATCH_MAX, sizeof *d.replies);
    d.refusals = calloc(CFD_BATCH_MAX, sizeof *d.refusals);
    cf_stage_out_t out = {s_send_reply, s_send_event, &d};
    d.stage = cf_stage_new(&out, f.release_delay_us);
    if (!f.sync_immediate)
        d.syncer = cf_syncer_new(d.engine);
    s_raise_nofile();
    d.ctx = zmq_ctx_new();
    if (!d.slots || !d.reqs || !d.replies || !d.refusals || !d.stage || !d.ctx ||
        (!f.sync_immediate && !d.syncer)) {
        fprintf(stderr, "claimflowd: out of memory\n");
        cf_config_destroy(&cfg);
        s_close(&d);
        return CFD_EXIT_RUNTIME;
    }
    /* The handler first: a handshake that finds none is not refused by
     * every libzmq.  Without CURVE it serves the events socket's gate. */
    cf_error_t zerr = {0};
    if (cf_zap_new(d.ctx, cfg, &d.zap, &zerr) < 0) {
        fprintf(stderr, "claimflowd: %s\n", zerr.message);
        cf_config_destroy(&cfg);
        s_close(&d);
        return CFD_EXIT_RUNTIME;
    }
    cf_zap_set_gate(d.zap, s_admit_subscriber, &d);
    const char *secret = curve ? cfg->curve_secret : NULL;
    char portal_ep[256], operator_ep[256], events_ep[256];
    d.portal = s_socket(d.ctx, ZMQ_ROUTER, f.portal_ep, portal_ep,
                        sizeof portal_ep, CF_ZAP_PORTAL, secret, max_frame);
    d.operator = d.portal ? s_socket(d.ctx, ZMQ_ROUTER, f.operator_ep,
                                     operator_ep, sizeof operator_ep,
                                     CF_ZAP_OPERATOR, secret, max_frame)
                          : NULL;
    d.events = d.operator ? s_socket(d.ctx, ZMQ_PUB, f.events_ep, events_ep,
                                     sizeof events_ep, CF_ZAP_EVENTS, secret, max_frame)
                          : NULL;
    /* libzmq holds its own copy now; ours goes with the config - except a
     * cluster node's, which reopens its engine with the roster and keeps
     * the cluster section. */
    if (!clustered)
        cf_config_destroy(&cfg);
    if (!d.events) {
        s_close(&d);
        cf_config_destroy(&cfg);
        free(roster);
        return CFD_EXIT_USAGE;
    }
    if (clustered) {
        char digest[65];
        cf_error_t cerr = {0};
        cf_cluster_opts_t co = {.conf = &cfg->cl, .node = node, .data_dir = f.data_dir,
                                .map_size = f.map_size, .no_grow = f.no_grow,
                                .portal = portal_ep, .operator = operator_ep,
                                .events = events_ep, .workflows_digest = digest,
                                .log = s_cluster_log};
        if (cf_cluster_digest(f.workflows_dir, digest, &cerr) < 0 ||
            cf_cluster_open(&co, &d.cluster, &cerr) < 0) {
            fprintf(stderr, "claimflowd: cannot join the cluster: %s\n", cerr.message);
            s_close(&d);
            cf_config_destroy(&cfg);
            free(roster);
            return CFD_EXIT_RUNTIME;
        }
        d.eo.commit_hook = cf_cluster_hook;
        d.eo.hook_ctx = d.cluster;
        d.eo.cluster = cf_cluster_view(d.cluster);
    }
    if (s_monitor_events(&d) < 0) {
        s_close(&d);
        return CFD_EXIT_RUNTIME;
    }

    if (!f.config_path)
        fprintf(stderr, "claimflowd: warning: no --config: the operator "
                        "endpoint knows no operator, every operator request "
                        "is forbidden\n");
    if (!curve)
        fprintf(stderr, "claimflowd: warning: CURVE is off (no 'curve:' in the "
                        "config): no client is authenticated and nothing is "
                        "encrypted; only loopback endpoints are bound\n");
    if (curve && no_portal_keys)
        fprintf(stderr, "claimflowd: warning: CURVE is on and 'portal: keys' is "
                        "empty: no portal backend can connect\n");
    if (curve && keyless)
        fprintf(stderr, "claimflowd: warning: CURVE is on and %zu operators have "
                        "no 'key': they cannot connect\n", keyless);

    /* Metrics before the first fire, so its timers are counted. */
    if (http_on && !(d.metrics = cf_metrics_new(CF_VERSION, (int64_t)time(NULL)))) {
        fprintf(stderr, "claimflowd: out of memory\n");
        s_close(&d);
        return CFD_EXIT_RUNTIME;
    }

    /* Timers that fell due while the daemon was down fire now, late. */
    s_fire(&d);

    /* The first snapshot holds stats, then the HTTP thread may serve it. */
    char http_bound[80] = "";
    if (http_on) {
        s_metrics_tick(&d, true);
        cf_error_t herr = {0};
        if (cf_http_start(&http_addr, d.metrics, &d.http, http_bound, sizeof http_bound,
                          &herr) < 0) {
            fprintf(stderr, "claimflowd: %s\n", herr.message);
            s_close(&d);
            return CFD_EXIT_USAGE;
        }
    }

    /* systemd (Type=notify): ready now that the sockets are bound and the
     * store is open; the watchdog is fed from the loop below.  Before the
     * `started` line, so a warning about it comes first like the others. */
    cf_sd_t *sd = cf_sd_new();
    cf_error_t sderr = {0};
    if (cf_sd_notify(sd, "READY=1\nSTATUS=serving", &sderr) < 0)
        fprintf(stderr, "claimflowd: warning: cannot notify systemd: %s\n", sderr.message);

    char clockbuf[CF_TIME_BUFLEN];
    fprintf(stderr, "claimflowd: started version %s portal=%s operator=%s "
                    "events=%s data=%s workflows=%d operators=%zu curve=%s clock=%s%s%s%s%s%s\n",
            CF_VERSION, portal_ep, operator_ep, events_ep, f.data_dir,
            nworkflows, noperators, curve ? "on" : "off",
            f.manual_clock ? "manual:" : "real",
            f.manual_clock ? cf_time_format(f.manual_start, clockbuf) : "",
            http_on ? " http=" : "", http_bound, clustered ? " node=" : "",
            clustered ? node : "");

    zmq_pollitem_t items[7] = {
        {.socket = d.portal, .events = ZMQ_POLLIN},
        {.socket = d.operator, .events = ZMQ_POLLIN},
        {.socket = NULL, .fd = s_sigpipe[0], .events = ZMQ_POLLIN},
        {.socket = cf_zap_socket(d.zap), .events = ZMQ_POLLIN},
        {.socket = d.evmon, .events = ZMQ_POLLIN},
        {.socket = NULL, .fd = d.syncer ? cf_syncer_fd(d.syncer) : -1, .events = ZMQ_POLLIN},
        {.socket = NULL, .fd = -1, .events = ZMQ_POLLIN},
    };
    int nitems = d.syncer ? 6 : 5;
    if (d.cluster) {        /* the appender's reports (no syncer in a cluster) */
        items[5].fd = cf_cluster_fd(d.cluster);
        nitems = 6;
    }
    int exit_code = 0;
    while (!s_stop_signal) {
        long timeout = s_metrics_timeout(&d, s_poll_timeout(&d));
        int64_t t_poll = s_mono_us();
        int prc = zmq_poll(items, nitems, cf_sd_watchdog_tick(sd, timeout));
        int64_t t_work = s_mono_us();
        d.prof.poll += t_work - t_poll;
        if (items[2].revents & ZMQ_POLLIN) {
            char drain[64];
            while (read(s_sigpipe[0], drain, sizeof drain) > 0)
                ;
        }
        if (s_profile_wanted) {
            s_profile_wanted = 0;
            s_profile_log(&d);
        }
        if (prc < 0) {
            if (zmq_errno() == EINTR)
                continue;
            fprintf(stderr, "claimflowd: error: poll failed: %s\n",
                    zmq_strerror(zmq_errno()));
            exit_code = CFD_EXIT_RUNTIME;
            break;
        }
        if (d.cluster && s_cluster_step(&d) < 0) {
            exit_code = CFD_EXIT_RUNTIME;
            break;
        }
        /* Handshakes first: a client waiting on one is waiting on us. */
        s_count_subscribers(&d);
        if (cf_zap_handle(d.zap) < 0) {
            fprintf(stderr, "claimflowd: error: the ZAP handler failed: %s\n",
                    zmq_strerror(zmq_errno()));
            exit_code = CFD_EXIT_RUNTIME;
            break;
        }
        int64_t serve0 = d.prof.recv + d.prof.run + d.prof.stage;
        if (s_serve(&d) < 0) {
            exit_code = CFD_EXIT_RUNTIME;
            break;
        }
        int64_t t_fire = s_mono_us();
        s_fire(&d);
        int64_t t_rest = s_mono_us();
        d.prof.fire += t_rest - t_fire;
        if (d.syncer && (items[5].revents & ZMQ_POLLIN))
            s_synced(&d);
        cf_stage_release(d.stage, s_mono_us());   /* batches whose wait is over */
        s_metrics_tick(&d, false);
        /* Everything else of the iteration: handshakes, subscriber
         * counts, syncer reports, releases, metrics. */
        int64_t serve = d.prof.recv + d.prof.run + d.prof.stage - serve0;
        d.prof.other += (s_mono_us() - t_work) - serve - (t_rest - t_fire);
    }
    /* Answer what libzmq has already taken in, then stop.  A failed
     * STOPPING=1 only costs systemd the early notice. */
    (void)cf_sd_notify(sd, "STOPPING=1\nSTATUS=stopping", NULL);
    if (exit_code == 0)
        while (s_serve(&d) > 0)
            ;
    /* A leader answers what its log took; the rest gets no answer. */
    if (d.cluster) {
        uint64_t acked = cf_cluster_drain(d.cluster);
        s_cluster_release(&d, acked);
        cf_stage_drop(d.stage, acked);
    }

    char denied[48] = "";
    if (curve)
        snprintf(denied, sizeof denied, " denied_handshakes=%" PRIu64, cf_zap_denied(d.zap));
    fprintf(stderr, "claimflowd: stopped (%s) requests=%" PRIu64
                    " dropped_replies=%" PRIu64 " refused_subscribers=%" PRIu64 "%s\n",
            exit_code ? "error" : s_signame((int)s_stop_signal), d.nrequests,
            d.ndropped, cf_zap_gated(d.zap), denied);
    s_close(&d);
    cf_config_destroy(&cfg);
    free(roster);
    cf_sd_destroy(&sd);
    close(s_sigpipe[0]);
    close(s_sigpipe[1]);
    return exit_code;
}

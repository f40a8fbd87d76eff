/* cmd_watch.c: claimctl watch - follow committed transitions live on
 * claimflowd's events socket (SUB), until SIGINT/SIGTERM or --count events.
 *
 * Two ways to run.  Plain (no operator known, or only --events given): the
 * SUB socket alone, as below.  Resuming (an operator and the operator
 * endpoint(s) known, or --after): every event carries its `batch`, and the
 * operator endpoint's `changes` op replays committed events after a batch,
 * so watch subscribes, then fetches `changes` after the last batch it
 * printed (--after at first), prints those, and drops live events of a batch
 * it already has.  When the events connection drops, reconnects, or stays
 * silent while the node it reads no longer leads (a `ping` after a second
 * without events), it finds the leader again (any node's `ping` names the
 * leader's events endpoint), subscribes there and catches up the same way:
 * no gap, no duplicate, across a failover.
 *
 * Subscribe first, then fetch: the other order loses what is committed in
 * between.  A subscription also takes effect at the publisher a moment
 * after the handshake, so the first live event after (re)subscribing, batch
 * B, makes watch fetch once more what lies between the last batch it has
 * and B (or, when none comes, the feed is read again a second later).  A batch is published event by event; if the connection broke
 * inside one, the catch-up starts at that batch and skips the events of it
 * already printed (the feed and the stream give a batch's events in the
 * same order).  A feed page may end with events of a batch after its
 * `seq`: the batch the `changes` request itself ran in, still being written
 * and possibly incomplete, so the catch-up stops before it and the live
 * stream brings it whole.  Resuming from a checkpoint file or a server-side cursor was
 * rejected: the last printed batch is all the state a watcher needs, and
 * --after hands it to the next run.
 *
 * A SUB socket cannot tell "nobody there" from "nothing happening", so the
 * socket is watched with zmq_socket_monitor: a ZMTP handshake with the daemon
 * within --timeout proves it is there (otherwise exit 3, like every other
 * command), and a disconnect later is reported on stderr while libzmq
 * reconnects by itself - events published meanwhile are lost to this
 * subscriber (the store, `history`, is the record).
 *
 * With --key/--server-key the SUB socket is a CURVE client; a refused
 * handshake, reported by the same monitor, ends the command (exit 3)
 * instead of waiting out --timeout.
 *
 * Signals only set a flag; zmq_poll returns EINTR (the handler is installed
 * without SA_RESTART) and the loop ends cleanly, exit 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "cli.h"
#include "cmd.h"
#include "json.h"
#include "mpcheck.h"

static volatile sig_atomic_t s_stop;

static void s_on_signal(int sig)
{
    (void)sig;
    s_stop = 1;
}

static void s_print_event(const cf_cli_t *cli, const msgpack_object *ev)
{
    if (cli->json) {
        cf_json_print(stdout, ev, 0);
        fputc('\n', stdout);
        return;
    }
    char at[CF_CLI_TIMELEN], claim[64], wf[64], event[96], from[64], to[64], actor[96];
    char what[170], move[140];
    const msgpack_object *f = cf_mp_get(ev, "from");
    snprintf(what, sizeof what, "%s/%s", cf_cli_text(cf_mp_get(ev, "workflow"), wf, sizeof wf),
             cf_cli_text(cf_mp_get(ev, "event"), event, sizeof event));
    cf_cli_text(cf_mp_get(ev, "to"), to, sizeof to);
    if (!f || f->type == MSGPACK_OBJECT_NIL)
        snprintf(move, sizeof move, "→ %s", to);
    else
        snprintf(move, sizeof move, "%s → %s", cf_cli_text(f, from, sizeof from), to);
    /* A stream cannot be measured ahead: fixed widths that fit the usual
     * names; a longer one just pushes its line out. */
    printf("%-17s %-26s %s%-32s%s %-34s %s\n", cf_cli_time(cli, cf_mp_get(ev, "at"), at),
           cf_cli_text(cf_mp_get(ev, "claim"), claim, sizeof claim), cf_cli_color(cli, CF_C_CYAN),
           what, cf_cli_color(cli, CF_C_RESET), move,
           cf_cli_text(cf_mp_get(ev, "actor"), actor, sizeof actor));
}

typedef int (*s_on_event_t)(void *ctx, const msgpack_object *ev);

/* Receive one published event ([topic, body]) and hand it to on_event
 * (its return is returned).  0 not an event (skipped), -1 receive error. */
static int s_receive(void *sub, s_on_event_t on_event, void *ctx)
{
    zmq_msg_t part;
    int nparts = 0, rc = 0;
    zmq_msg_init(&part);
    for (;;) {
        if (zmq_msg_recv(&part, sub, ZMQ_DONTWAIT) < 0) {
            rc = -1;
            break;
        }
        nparts++;
        bool more = zmq_msg_more(&part);
        if (nparts == 2 && !more) {
            msgpack_unpacked u;
            size_t off = 0;
            msgpack_unpacked_init(&u);
            if (cf_mpcheck(zmq_msg_data(&part), zmq_msg_size(&part), NULL) == 0 &&
                msgpack_unpack_next(&u, zmq_msg_data(&part), zmq_msg_size(&part), &off) ==
                    MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP)
                rc = on_event(ctx, &u.data);
            msgpack_unpacked_destroy(&u);
        }
        if (!more)
            break;
        zmq_msg_close(&part);
        zmq_msg_init(&part);
    }
    zmq_msg_close(&part);
    return rc;
}

static int s_print_plain(void *ctx, const msgpack_object *ev)
{
    s_print_event(ctx, ev);
    return 1;
}

static long s_elapsed_ms(const struct timespec *t0)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - t0->tv_sec) * 1000 + (now.tv_nsec - t0->tv_nsec) / 1000000;
}

static void s_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The SUB socket (subscribed to topic, CURVE when asked) and its monitor
 * of handshakes and disconnects.  0, or -1 with errno. */
static int s_sub_open(const cf_cli_t *cli, void *ctx, const char *topic, void **ret_sub,
                      void **ret_mon)
{
    int zero = 0;
    cf_client_curve_t keys;
    void *sub = zmq_socket(ctx, ZMQ_SUB), *mon = NULL;
    *ret_sub = sub;
    *ret_mon = NULL;
    if (!sub ||
        zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) != 0 ||
        cf_client_curve_apply(sub, cf_cli_curve(cli, &keys)) != 0 ||
        zmq_socket_monitor(sub, "inproc://claimctl.watch.monitor",
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               CF_CLIENT_HS_EVENTS) != 0 ||
        !(mon = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(mon, "inproc://claimctl.watch.monitor") != 0) {
        *ret_mon = mon;
        return -1;
    }
    *ret_mon = mon;
    return 0;
}

/* ================================================================ plain === */
/* The SUB socket alone, on every endpoint of --events. */
static int s_watch_plain(cf_cli_t *cli, void *sub, void *mon, long count)
{
    for (size_t i = 0; i < cli->events_nodes.n; i++)
        if (zmq_connect(sub, cli->events_nodes.ep[i]) != 0)
            return cf_cli_fail(CF_EXIT_USAGE, "'%s' is not a ZeroMQ endpoint (e.g. "
                               CF_CLI_DEFAULT_EVENTS ")", cli->events_nodes.ep[i]);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool connected = false, ever = false;
    long seen = 0;
    int rc = CF_EXIT_OK;
    while (!s_stop && (count == 0 || seen < count)) {
        zmq_pollitem_t items[] = {{sub, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
        long wait = -1;
        if (!ever) {
            wait = (long)(cli->timeout * 1000) - s_elapsed_ms(&t0);
            if (wait <= 0) {
                rc = cf_cli_fail(CF_EXIT_CONNECT, "cannot reach claimflowd at %s (is it running?)",
                                 cli->events);
                break;
            }
        }
        int n = zmq_poll(items, 2, wait);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = cf_cli_fail(CF_EXIT_CONNECT, "watch: %s", zmq_strerror(errno));
            break;
        }
        if (items[1].revents & ZMQ_POLLIN) {
            uint32_t value;
            unsigned ev = cf_client_monitor_event(mon, &value);
            int reason = cf_client_hs_reason(ev, value);
            if (reason != CF_CLIENT_HS_NONE) {
                rc = cf_cli_handshake_failed(cli, cli->events_nodes.ep[0], reason);
                break;
            }
            if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                if (ever)
                    fprintf(stderr, "claimctl: watch: reconnected to %s (events in between "
                                    "were missed; see 'claimctl history')\n", cli->events);
                connected = ever = true;
            } else if (ev == ZMQ_EVENT_DISCONNECTED && connected) {
                fprintf(stderr, "claimctl: watch: lost claimflowd at %s; reconnecting\n",
                        cli->events);
                connected = false;
            }
        }
        if ((items[0].revents & ZMQ_POLLIN) && s_receive(sub, s_print_plain, cli) > 0) {
            seen++;
            fflush(stdout);
        }
    }
    return rc;
}

/* =============================================================== resume === */
#define S_HEARTBEAT_MS 1000     /* silence after which the leader is pinged */
#define S_RETRY_MS 200          /* between attempts to find a leader again */

typedef struct {
    cf_cli_t *cli;
    void *sub, *mon;
    const char *workflow;       /* only its events (the SUB's topic does the same) */
    long count, seen;
    /* Every event of a batch <= fence is printed (or not ours); of
     * last_batch (> fence) the first n_last are. */
    uint64_t fence, last_batch;
    long n_last;
    bool hole_check;            /* the first live event since subscribing is due */
    char events[CF_NODES_EPLEN];    /* the events endpoint followed */
    char connected[CF_NODES_MAX][CF_NODES_EPLEN];
    size_t nconnected;
} s_watch_t;

enum { S_GO_ON = 0, S_DONE = 1 };   /* besides CF_EXIT_* codes, as s_* return */

static bool s_wanted(const s_watch_t *w, const msgpack_object *ev)
{
    return !w->workflow || cf_mp_streq(cf_mp_get(ev, "workflow"), w->workflow);
}

static uint64_t s_batch(const msgpack_object *ev)
{
    const msgpack_object *b = cf_mp_get(ev, "batch");
    return b && b->type == MSGPACK_OBJECT_POSITIVE_INTEGER ? b->via.u64 : 0;
}

/* Print one event and count it: S_DONE once --count are printed. */
static int s_emit(s_watch_t *w, const msgpack_object *ev, uint64_t batch)
{
    s_print_event(w->cli, ev);
    fflush(stdout);
    if (batch == w->last_batch) {
        w->n_last++;
    } else {
        w->last_batch = batch;
        w->n_last = 1;
    }
    w->seen++;
    return w->count && w->seen >= w->count ? S_DONE : S_GO_ON;
}

/* Print the feed's events after what is printed and before batch `below`
 * (UINT64_MAX: all), then move the fence past them.  S_GO_ON, S_DONE, or
 * the exit code of a failed request with the failure in *f. */
static int s_catch_up(s_watch_t *w, uint64_t below, cf_cli_failure_t *f)
{
    bool partial = w->n_last > 0 && w->last_batch > w->fence;
    uint64_t after = partial ? w->last_batch - 1 : w->fence;
    long skip = partial ? w->n_last : 0;
    for (;;) {
        cf_req_t req;
        cf_req_init(&req, "changes");
        cf_req_int(&req, "after", (int64_t)after);
        msgpack_unpacked reply;
        msgpack_unpacked_init(&reply);
        int rc = cf_cli_request(w->cli, &req, &reply, f);
        if (rc != CF_EXIT_OK) {
            msgpack_unpacked_destroy(&reply);
            return rc;
        }
        uint64_t next = 0, seq = 0;
        const msgpack_object *o = cf_mp_get(&reply.data, "seq");
        if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            seq = o->via.u64;
        const msgpack_object *ch = cf_mp_get(&reply.data, "changes");
        uint32_t n = ch && ch->type == MSGPACK_OBJECT_ARRAY ? ch->via.array.size : 0;
        bool reached = false;
        for (uint32_t i = 0; i < n && !reached && rc == S_GO_ON; i++) {
            const msgpack_object *ev = &ch->via.array.ptr[i];
            uint64_t b = s_batch(ev);
            /* A batch after `seq` was still being written when the feed
             * was read (the request ran in it), so it may be incomplete
             * here: the live stream brings it whole. */
            if (b >= below || b > seq) {
                reached = true;
            } else if (b <= w->fence || !s_wanted(w, ev)) {
                continue;
            } else if (partial && b == w->last_batch && skip > 0) {
                skip--;
            } else {
                rc = s_emit(w, ev, b);
            }
        }
        o = cf_mp_get(&reply.data, "next");
        bool more = o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && (next = o->via.u64) > after;
        msgpack_unpacked_destroy(&reply);
        if (rc != S_GO_ON)
            return rc;
        if (!reached && more) {
            after = next;
            continue;
        }
        /* Every batch up to here is printed: the fence moves past them. */
        uint64_t upto = below - 1 < seq ? below - 1 : seq;
        if (upto > w->fence)
            w->fence = upto;
        if (w->last_batch <= w->fence) {
            w->last_batch = w->fence;
            w->n_last = 0;
        }
        return S_GO_ON;
    }
}

/* A live event: dropped when its batch is printed already; the first since
 * subscribing first fetches what lies between (the subscription's start). */
static int s_live(void *ctx, const msgpack_object *ev)
{
    s_watch_t *w = ctx;
    uint64_t b = s_batch(ev);
    if (b <= w->fence)
        return 0;
    if (w->hole_check) {
        cf_cli_failure_t f;
        int rc = s_catch_up(w, b, &f);
        if (rc == S_DONE)
            return S_DONE + 1;
        if (rc != S_GO_ON)
            return -2;             /* the leader went away: find it again */
        w->hole_check = false;
        if (b <= w->fence)
            return 0;
    }
    return s_emit(w, ev, b) == S_DONE ? S_DONE + 1 : 1;
}

/* Connect the SUB socket to ep unless it is already. */
static int s_connect(s_watch_t *w, const char *ep)
{
    for (size_t i = 0; i < w->nconnected; i++)
        if (strcmp(w->connected[i], ep) == 0)
            return 0;
    if (w->nconnected == CF_NODES_MAX) {
        /* Leaders come and go on a long watch: start over with this one. */
        for (size_t i = 0; i < w->nconnected; i++)
            zmq_disconnect(w->sub, w->connected[i]);
        w->nconnected = 0;
    }
    if (zmq_connect(w->sub, ep) != 0)
        return -1;
    snprintf(w->connected[w->nconnected++], CF_NODES_EPLEN, "%s", ep);
    return 0;
}

/* Ask the nodes where the leader publishes.  Only a node that says it
 * leads (or a daemon without a cluster, which says no role) is taken at its
 * word: a follower's `leader` may be a node that died a moment ago, so it
 * is asked itself next.  0 with the events endpoint in w->events and the
 * leader current in cli->nodes; 1 ask again now; 2 no node knows a leader
 * yet (ask again shortly); or an exit code with the failure in *f. */
static int s_find_events(s_watch_t *w, cf_cli_failure_t *f)
{
    cf_req_t req;
    cf_req_init(&req, "ping");
    msgpack_unpacked reply;
    msgpack_unpacked_init(&reply);
    int rc = cf_cli_request(w->cli, &req, &reply, f);
    if (rc == CF_EXIT_OK) {
        const msgpack_object *role = cf_mp_get(&reply.data, "role");
        const msgpack_object *l = cf_mp_get(&reply.data, "leader");
        char op[CF_NODES_EPLEN], ev[CF_NODES_EPLEN];
        bool named = l && l->type == MSGPACK_OBJECT_MAP &&
                     cf_mp_get_str(l, "operator", op, sizeof op) &&
                     cf_mp_get_str(l, "events", ev, sizeof ev);
        if (!role) {
            snprintf(w->events, sizeof w->events, "%s", w->cli->events_nodes.ep[0]);
        } else if (cf_mp_streq(role, "leader") && named) {
            /* A wildcard bind names no host: then --events says where. */
            snprintf(w->events, sizeof w->events, "%s",
                     cf_nodes_wildcard(ev) ? w->cli->events_nodes.ep[0] : ev);
        } else if (named && !cf_nodes_wildcard(op)) {
            rc = cf_nodes_follow(&w->cli->nodes, op) ? 1 : 2;
        } else {
            cf_nodes_next(&w->cli->nodes);
            rc = 2;
        }
    }
    msgpack_unpacked_destroy(&reply);
    return rc;
}

/* s_find_events until it finds the leader or --timeout passes (then
 * NOLEADER in *f). */
static int s_find_leader(s_watch_t *w, cf_cli_failure_t *f)
{
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long budget = (long)(w->cli->timeout * 1000);
    for (;;) {
        int rc = s_find_events(w, f);
        if (rc != 1 && rc != 2)
            return rc;
        if (s_elapsed_ms(&t0) >= budget || s_stop) {
            f->kind = CF_CLI_F_NOLEADER;
            return CF_EXIT_CONNECT;
        }
        if (rc == 2) {
            struct timespec ts = {0, S_RETRY_MS * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
}

/* The last committed batch, as the feed says: where a live start begins. */
static int s_feed_seq(s_watch_t *w, uint64_t *ret, cf_cli_failure_t *f)
{
    cf_req_t req;
    cf_req_init(&req, "changes");
    cf_req_int(&req, "limit", 1);
    msgpack_unpacked reply;
    msgpack_unpacked_init(&reply);
    int rc = cf_cli_request(w->cli, &req, &reply, f);
    const msgpack_object *o = rc == CF_EXIT_OK ? cf_mp_get(&reply.data, "seq") : NULL;
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *ret = o->via.u64;
    else if (rc == CF_EXIT_OK) {
        f->kind = CF_CLI_F_PROTO;
        rc = CF_EXIT_CONNECT;
    }
    msgpack_unpacked_destroy(&reply);
    return rc;
}

/* Wait for a handshake on the SUB socket (any endpoint) until deadline_ms
 * of t0.  0, or an exit code (printed). */
static int s_await_handshake(s_watch_t *w, const struct timespec *t0, long deadline_ms)
{
    for (;;) {
        long left = deadline_ms - s_elapsed_ms(t0);
        if (left <= 0)
            return cf_cli_fail(CF_EXIT_CONNECT, "cannot reach claimflowd at %s (is it running?)",
                               w->events);
        zmq_pollitem_t it = {w->mon, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, left);
        if (n < 0 && errno == EINTR && s_stop)
            return CF_EXIT_OK;
        if (n <= 0)
            continue;
        uint32_t value;
        unsigned ev = cf_client_monitor_event(w->mon, &value);
        int reason = cf_client_hs_reason(ev, value);
        if (reason != CF_CLIENT_HS_NONE)
            return cf_cli_handshake_failed(w->cli, w->events, reason);
        if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
            return 0;
    }
}

/* (Re)start following: find the leader, subscribe to its events, catch up
 * (a live start first takes the feed's seq as where it begins).  The first
 * time a failure ends watch (its exit code, printed); later ones are
 * retried until a leader is found or a signal comes.  S_GO_ON, S_DONE or
 * an exit code. */
static int s_sync(s_watch_t *w, bool first, bool live_start)
{
    cf_cli_failure_t f;
    bool told = false;
    for (;;) {
        if (s_stop)
            return S_DONE;
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int rc = s_find_leader(w, &f);
        if (rc == CF_EXIT_OK) {
            if (!w->cli->events_given && s_connect(w, w->events) != 0)
                return cf_cli_fail(CF_EXIT_USAGE, "'%s' is not a ZeroMQ endpoint (e.g. "
                                   CF_CLI_DEFAULT_EVENTS ")", w->events);
            if (first && (rc = s_await_handshake(w, &t0, (long)(w->cli->timeout * 1000))) != 0)
                return rc;
            if (s_stop)
                return S_DONE;
            w->hole_check = true;
            if (first && live_start && (rc = s_feed_seq(w, &w->fence, &f)) == CF_EXIT_OK)
                w->last_batch = w->fence;
            if (rc == CF_EXIT_OK)
                rc = s_catch_up(w, UINT64_MAX, &f);
            if (rc == S_GO_ON || rc == S_DONE) {
                if (!first)
                    fprintf(stderr, "claimctl: watch: following the leader's events at %s "
                                    "from batch %" PRIu64 "\n", w->events, w->fence);
                return rc;
            }
        }
        if (first || f.kind == CF_CLI_F_REFUSED || f.kind == CF_CLI_F_BADEP ||
            f.kind == CF_CLI_F_HANDSHAKE)
            return cf_cli_report(w->cli, &f);
        if (!told)
            fprintf(stderr, "claimctl: watch: no leader yet among %s; still trying\n",
                    w->cli->endpoint);
        told = true;
    }
}

/* After a second without events: is the node followed still the leader,
 * publishing where watch listens? */
static bool s_still_leads(s_watch_t *w)
{
    cf_req_t req;
    cf_req_init(&req, "ping");
    msgpack_unpacked reply;
    msgpack_unpacked_init(&reply);
    cf_cli_failure_t f;
    bool yes = false;
    if (cf_cli_request(w->cli, &req, &reply, &f) == CF_EXIT_OK) {
        const msgpack_object *role = cf_mp_get(&reply.data, "role");
        char ev[CF_NODES_EPLEN];
        yes = !role || (cf_mp_streq(role, "leader") &&
                        cf_mp_get_str(cf_mp_get(&reply.data, "leader"), "events", ev, sizeof ev) &&
                        (strcmp(ev, w->events) == 0 || cf_nodes_wildcard(ev)));
    }
    msgpack_unpacked_destroy(&reply);
    return yes;
}

static int s_watch_resume(cf_cli_t *cli, void *sub, void *mon, const char *workflow, long count,
                          const uint64_t *after)
{
    s_watch_t w;
    memset(&w, 0, sizeof w);
    w.cli = cli;
    w.sub = sub;
    w.mon = mon;
    w.workflow = workflow;
    w.count = count;
    if (after)
        w.fence = w.last_batch = *after;
    /* --events given: every node's events endpoint at once (only the
     * leader publishes), and never another name for one of them, which
     * would be a second connection to the same publisher. */
    for (size_t i = 0; cli->events_given && i < cli->events_nodes.n; i++)
        if (s_connect(&w, cli->events_nodes.ep[i]) != 0)
            return cf_cli_fail(CF_EXIT_USAGE, "'%s' is not a ZeroMQ endpoint (e.g. "
                               CF_CLI_DEFAULT_EVENTS ")", cli->events_nodes.ep[i]);
    int rc = s_sync(&w, true, after == NULL);
    if (rc != S_GO_ON)
        return rc == S_DONE ? CF_EXIT_OK : rc;
    struct timespec quiet;
    clock_gettime(CLOCK_MONOTONIC, &quiet);
    while (!s_stop && (count == 0 || w.seen < count)) {
        zmq_pollitem_t items[] = {{sub, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
        long wait = S_HEARTBEAT_MS - s_elapsed_ms(&quiet);
        int n = zmq_poll(items, 2, wait > 0 ? wait : 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return cf_cli_fail(CF_EXIT_CONNECT, "watch: %s", zmq_strerror(errno));
        bool resync = false;
        if (items[1].revents & ZMQ_POLLIN) {
            uint32_t value;
            unsigned ev = cf_client_monitor_event(mon, &value);
            int reason = cf_client_hs_reason(ev, value);
            if (reason != CF_CLIENT_HS_NONE)
                return cf_cli_handshake_failed(cli, w.events, reason);
            if (ev == ZMQ_EVENT_DISCONNECTED) {
                fprintf(stderr, "claimctl: watch: lost a connection to claimflowd's events; "
                                "finding the leader\n");
                resync = true;
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int got = s_receive(sub, s_live, &w);
            if (got == S_DONE + 1)
                break;
            resync = resync || got == -2;
            clock_gettime(CLOCK_MONOTONIC, &quiet);
        } else if (!resync && s_elapsed_ms(&quiet) >= S_HEARTBEAT_MS) {
            resync = !s_still_leads(&w);
            if (resync)
                fprintf(stderr, "claimctl: watch: %s no longer publishes the leader's events; "
                                "finding the leader\n", w.events);
            if (!resync && w.hole_check) {
                /* No live event since subscribing, a second ago: the
                 * subscription is in effect by now, so what the feed has
                 * beyond the fence was committed before it. */
                cf_cli_failure_t f;
                rc = s_catch_up(&w, UINT64_MAX, &f);
                if (rc == S_DONE)
                    break;
                resync = rc != S_GO_ON;
                w.hole_check = resync;
            }
            clock_gettime(CLOCK_MONOTONIC, &quiet);
        }
        if (resync) {
            rc = s_sync(&w, false, false);
            if (rc == S_DONE)
                break;
            if (rc != S_GO_ON)
                return rc;
            clock_gettime(CLOCK_MONOTONIC, &quiet);
        }
    }
    return CF_EXIT_OK;
}

/* ================================================================= main === */
/* --after BATCH: a whole number, 0 included (from the feed's beginning). */
static bool s_parse_batch(const char *s, uint64_t *ret)
{
    if (!s || *s < '0' || *s > '9')
        return false;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v > INT64_MAX)
        return false;
    *ret = v;
    return true;
}

int cf_cmd_watch(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "watch", "", "Print each committed transition as it happens: time, claim, event, from → to, actor.",
        "Runs until Ctrl-C (SIGINT) or SIGTERM (exit 0), or until --count events.\n\n"
        "With an operator (--as, CLAIMFLOW_OPERATOR) and claimflowd's operator\n"
        "endpoint(s) watch resumes: after a lost connection, or when the node it\n"
        "listens to stops leading a cluster, it finds the leader again (of the\n"
        "--endpoint list) and prints what was committed meanwhile from the change\n"
        "feed first: no gap, no duplicate.  --after BATCH starts from a batch (the\n"
        "`batch` of the last event a previous run printed): catch-up, then live.\n"
        "Without an operator, or with --events alone, events committed while\n"
        "watch is not connected are not replayed: use 'claimctl history'.\n\n"
        "examples:\n"
        "  claimctl watch\n"
        "  claimctl watch --workflow health_claim --json | jq -c 'select(.event==\"sla.breached\")'\n"
        "  claimctl watch --count 1 --json    # wait for the next event, print it, exit\n"
        "  claimctl watch --json --as hanne --endpoint tcp://a:7402,tcp://b:7402,tcp://c:7402\n"
        "  claimctl watch --json --as hanne --after 1041   # everything after batch 1041\n",
        CF_CO_EVENTS | CF_CO_JSON | CF_CO_LOCAL | CF_CO_DAEMON | CF_CO_NOAS, 0, 0};
    const char *workflow = NULL, *after_arg = NULL;
    long count = 0;
    const cf_opt_t opts[] = {
        {"workflow", "W", "only events of workflow W", CF_OPT_STR, &workflow, false},
        {"count", "N", "exit 0 after N events", CF_OPT_COUNT, &count, false},
        {"after", "BATCH", "first every event committed after batch BATCH (needs --as), then live", CF_OPT_STR, &after_arg, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    uint64_t after = 0;
    if (after_arg && !s_parse_batch(after_arg, &after)) {
        rc = cf_cli_usage_error(&cli, "--after: '%s' is not a batch number", after_arg);
        goto out_cli;
    }
    if (after_arg && !cli.actor) {
        rc = cf_cli_usage_error(&cli, "--after needs --as OPERATOR (or CLAIMFLOW_OPERATOR): "
                                      "the change feed is read on the operator endpoint");
        goto out_cli;
    }
    /* Resuming needs the operator endpoint; one who named only --events
     * gets the plain watch they always had. */
    bool resume = cli.actor && (after_arg || cli.endpoint_given || !cli.events_given);

    char topic[256] = "";
    if (workflow)
        snprintf(topic, sizeof topic, "%s/", workflow);
    void *ctx = zmq_ctx_new(), *sub = NULL, *mon = NULL;
    if (!ctx) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "watch: %s", zmq_strerror(errno));
        goto out_cli;
    }
    if (s_sub_open(&cli, ctx, topic, &sub, &mon) != 0) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "watch: %s", zmq_strerror(errno));
        goto out_sockets;
    }
    s_signals();
    rc = resume ? s_watch_resume(&cli, sub, mon, workflow, count, after_arg ? &after : NULL)
                : s_watch_plain(&cli, sub, mon, count);
    zmq_socket_monitor(sub, NULL, 0);
out_sockets:
    if (mon)
        zmq_close(mon);
    if (sub)
        zmq_close(sub);
    zmq_ctx_term(ctx);
out_cli:
    cf_cli_fini(&cli);
    return rc;
}

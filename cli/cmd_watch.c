/* cmd_watch.c: claimctl watch - follow committed transitions live on
 * claimflowd's events socket (SUB), until SIGINT/SIGTERM or --count events.
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

/* Receive one published event ([topic, body]) and print it.  1 printed,
 * 0 not an event (skipped), -1 receive error. */
static int s_receive(const cf_cli_t *cli, void *sub)
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
                    MSGPACK_UNPACK_SUCCESS && u.data.type == MSGPACK_OBJECT_MAP) {
                s_print_event(cli, &u.data);
                rc = 1;
            }
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

int cf_cmd_watch(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "watch", "", "Print each committed transition as it happens: time, claim, event, from → to, actor.",
        "Runs until Ctrl-C (SIGINT) or SIGTERM (exit 0), or until --count events.\n"
        "Events committed while watch is not connected are not replayed: use\n"
        "'claimctl history' for the record.\n\n"
        "examples:\n"
        "  claimctl watch\n"
        "  claimctl watch --workflow health_claim --json | jq -c 'select(.event==\"sla.breached\")'\n"
        "  claimctl watch --count 1 --json    # wait for the next event, print it, exit\n",
        CF_CO_EVENTS | CF_CO_JSON | CF_CO_LOCAL, 0, 0};
    const char *workflow = NULL;
    long count = 0;
    const cf_opt_t opts[] = {
        {"workflow", "W", "only events of workflow W", CF_OPT_STR, &workflow, false},
        {"count", "N", "exit 0 after N events", CF_OPT_COUNT, &count, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;

    char topic[256] = "";
    if (workflow)
        snprintf(topic, sizeof topic, "%s/", workflow);
    int zero = 0;
    void *ctx = zmq_ctx_new(), *sub = NULL, *mon = NULL;
    cf_client_curve_t keys;
    if (!ctx) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "watch: %s", zmq_strerror(errno));
        goto out_cli;
    }
    if (!(sub = zmq_socket(ctx, ZMQ_SUB)) ||
        zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(sub, ZMQ_SUBSCRIBE, topic, strlen(topic)) != 0 ||
        cf_client_curve_apply(sub, cf_cli_curve(&cli, &keys)) != 0 ||
        zmq_socket_monitor(sub, "inproc://claimctl.watch.monitor",
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               CF_CLIENT_HS_EVENTS) != 0 ||
        !(mon = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(mon, "inproc://claimctl.watch.monitor") != 0) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "watch: %s", zmq_strerror(errno));
        goto out_sockets;
    }
    if (zmq_connect(sub, cli.events) != 0) {
        rc = cf_cli_fail(CF_EXIT_USAGE, "'%s' is not a ZeroMQ endpoint (e.g. "
                         CF_CLI_DEFAULT_EVENTS ")", cli.events);
        goto out_sockets;
    }

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    bool connected = false, ever = false;
    long seen = 0;
    rc = CF_EXIT_OK;
    while (!s_stop && (count == 0 || seen < count)) {
        zmq_pollitem_t items[] = {{sub, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
        long wait = -1;
        if (!ever) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long spent = (now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000;
            wait = (long)(cli.timeout * 1000) - spent;
            if (wait <= 0) {
                rc = cf_cli_fail(CF_EXIT_CONNECT, "cannot reach claimflowd at %s (is it running?)",
                                 cli.events);
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
                rc = cf_cli_handshake_failed(&cli, cli.events, reason);
                break;
            }
            if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                if (ever)
                    fprintf(stderr, "claimctl: watch: reconnected to %s (events in between "
                                    "were missed; see 'claimctl history')\n", cli.events);
                connected = ever = true;
            } else if (ev == ZMQ_EVENT_DISCONNECTED && connected) {
                fprintf(stderr, "claimctl: watch: lost claimflowd at %s; reconnecting\n",
                        cli.events);
                connected = false;
            }
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int got = s_receive(&cli, sub);
            if (got > 0) {
                seen++;
                fflush(stdout);
            }
        }
    }
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

/* cli.h: what every claimctl command that talks to claimflowd shares - its
 * options (parsed from one table, which also writes --help), the
 * connection, how a failure becomes a message and an exit code, local time,
 * colour, aligned tables.
 *
 * A command declares a cf_cmd_spec_t (name, positional arguments, which
 * common option groups it takes) and its own cf_opt_t table, then:
 *
 *     cf_cli_t cli;
 *     int rc = cf_cli_parse(&cli, &spec, opts, n, argc, argv);
 *     if (rc >= 0) return rc;           // --help (0) or usage error (2)
 *     ... cf_cli_call(&cli, &req, &reply) ...
 *     cf_cli_fini(&cli);
 */
#ifndef CF_CLI_CLI_H
#define CF_CLI_CLI_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "calendar.h"
#include "cf_time.h"
#include "client.h"
#include "cmd.h"
#include "keyfile.h"
#include "nodes.h"

#define CF_CLI_DEFAULT_ENDPOINT "tcp://127.0.0.1:7402"
#define CF_CLI_DEFAULT_EVENTS   "tcp://127.0.0.1:7403"
#define CF_CLI_DEFAULT_CALENDAR "dk"
#define CF_CLI_DEFAULT_TIMEOUT  5.0

/* --------------------------------------------------------------- options --- */
typedef enum {
    CF_OPT_FLAG,    /* --json: target is bool * */
    CF_OPT_STR,     /* --reason TEXT: target is const char ** (argv's string) */
    CF_OPT_COUNT,   /* --limit N: target is long *, N in 1..LONG_MAX */
} cf_opt_kind_t;

typedef struct {
    const char *name;      /* without "--" */
    const char *metavar;   /* "TEXT"; NULL for a flag */
    const char *help;      /* one line */
    cf_opt_kind_t kind;
    void *target;
    bool required;         /* a usage error when not given */
} cf_opt_t;

/* Common option groups a command takes (cf_cmd_spec_t.common). */
enum {
    CF_CO_DAEMON = 1u << 0,   /* --endpoint, --as, --purpose, --timeout, --key, --server-key */
    CF_CO_JSON   = 1u << 1,   /* --json */
    CF_CO_LOCAL  = 1u << 2,   /* --workflows, --calendar: times in local time */
    CF_CO_ID     = 1u << 3,   /* --id: idempotency key of a writing command */
    CF_CO_EVENTS = 1u << 4,   /* --events, --timeout, --key, --server-key */
    CF_CO_NOAS   = 1u << 5,   /* with CF_CO_DAEMON: --as is optional (ping needs none) */
    CF_CO_CALL   = 1u << 6,   /* --by, --reference: record a phone call */
};

typedef struct {
    const char *name;       /* "deny" */
    const char *args;       /* positional synopsis, "CLAIM"; "" for none */
    const char *summary;    /* one line for 'claimctl help' and --help */
    const char *details;    /* more lines for --help (examples), or NULL */
    unsigned common;        /* CF_CO_* */
    int min_args, max_args; /* positional arguments; max -1 for any number */
} cf_cmd_spec_t;

typedef struct {
    const cf_cmd_spec_t *spec;
    const cf_opt_t *opts;
    size_t nopts;

    /* Common options, after the environment's defaults. */
    const char *endpoint, *events, *actor, *workflows, *calendar, *id;
    const char *purpose;       /* --purpose: why the operator reads (access log) */
    const char *timeout_arg;   /* --timeout as given */
    const char *key_file;      /* --key: our secret key file, or NULL */
    const char *server_key;    /* --server-key: a Z85 key or a file, or NULL */
    bool curve;                /* both given and loaded: talk CURVE */
    char curve_secret[CF_KEY_BUFLEN], curve_public[CF_KEY_BUFLEN],
        curve_server[CF_KEY_BUFLEN];     /* Z85; the secret wiped by fini */
    double timeout;            /* seconds */
    bool json;
    bool reveal;               /* --reveal: person ids unmasked (access-logged) */
    const char *call_by;       /* --by: the person on the phone (channel phone) */
    const char *reference;     /* --reference: the call's reference */
    bool color;                /* stdout is a terminal and NO_COLOR is unset */

    char **args;               /* positional arguments (borrowed strings) */
    int nargs;

    cf_cal_set_t *cals;        /* NULL: times shown in UTC */
    const cf_cal_t *cal;
    cf_client_t *client;       /* to the current node; made by cf_cli_call */
    /* --endpoint and --events as lists (nodes.h); *_given: set by an
     * option or the environment rather than by default. */
    cf_nodes_t nodes, events_nodes;
    bool endpoint_given, events_given;
} cf_cli_t;

/* Parse argv (argv[0] is the command's name) against opts[0..nopts) and the
 * spec's common groups; fill cli.  Returns -1 when the command should run
 * (then call cf_cli_fini when done), or the exit code to return at once:
 * CF_EXIT_OK after --help (usage on stdout), CF_EXIT_USAGE after a usage
 * error (message and usage on stderr). */
int cf_cli_parse(cf_cli_t *cli, const cf_cmd_spec_t *spec, const cf_opt_t *opts,
                 size_t nopts, int argc, char **argv);
void cf_cli_fini(cf_cli_t *cli);

/* The command's usage: synopsis, summary, every option with its help. */
void cf_cli_usage(const cf_cli_t *cli, FILE *out);

/* Print "claimctl: NAME: message" and the usage on stderr; CF_EXIT_USAGE. */
int cf_cli_usage_error(const cf_cli_t *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "claimctl: message" on stderr; returns code. */
int cf_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---------------------------------------------------------------- daemon --- */
/* Why a request got no `ok: true` (cf_cli_request), for cf_cli_report. */
enum {
    CF_CLI_F_REFUSED = 1,  /* ok: false (not not_leader): err */
    CF_CLI_F_BADEP,        /* an endpoint ZeroMQ does not take */
    CF_CLI_F_UNREACHABLE,  /* no node took the connection */
    CF_CLI_F_TIMEOUT,      /* sent, no reply within the timeout */
    CF_CLI_F_HANDSHAKE,    /* the CURVE handshake failed: hs_reason */
    CF_CLI_F_PROTO,        /* the reply is not a protocol map */
    CF_CLI_F_SYS,          /* a ZeroMQ call failed: sys_errno */
    CF_CLI_F_NOLEADER,     /* only followers answered, until the timeout */
};

typedef struct {
    int kind;                          /* CF_CLI_F_* */
    char endpoint[CF_NODES_EPLEN];     /* the node it concerns */
    cf_client_error_t err;             /* REFUSED: the daemon's code, message */
    int hs_reason;                     /* HANDSHAKE: CF_CLIENT_HS_* */
    int sys_errno;                     /* SYS, BADEP */
} cf_cli_failure_t;

/* Send req to the node believed to lead (the first of --endpoint's list at
 * first) and wait for the reply, following `not_leader` to the leader it
 * names and moving on to the next node of the list when a node does not
 * answer within its share of --timeout (all of it for a list of one) or
 * knows no leader; with a list, `unavailable` is asked again a few times
 * (a leader that lost its lease says not_leader next); the same request
 * (same `id`, same bytes) every time, for at most --timeout in all.  Prints nothing.  Returns CF_EXIT_OK, or
 * the exit code with the reason in *reterr: CF_EXIT_REFUSED (REFUSED),
 * CF_EXIT_USAGE (BADEP), CF_EXIT_CONNECT (the others).  *reply as for
 * cf_cli_call. */
int cf_cli_request(cf_cli_t *cli, const cf_req_t *req, msgpack_unpacked *reply,
                   cf_cli_failure_t *reterr);

/* Print what a failure means for a person on stderr ("claimctl: ...");
 * returns its exit code. */
int cf_cli_report(const cf_cli_t *cli, const cf_cli_failure_t *f);

/* cf_cli_request, then cf_cli_report on failure: send req to claimflowd
 * (the leader of a list) and wait for the reply (in *reply, initialised by
 * the caller, destroyed by the caller even on failure).  Returns the exit
 * code, having printed on stderr what went wrong:
 *   CF_EXIT_OK       ok: true;
 *   CF_EXIT_REFUSED  ok: false: "claimctl: <code>: <message>";
 *   CF_EXIT_CONNECT  "claimctl: cannot reach claimflowd at <endpoint> (is it
 *                    running?)", or no reply within the timeout, or the
 *                    CURVE handshake failed (the message says how), or no
 *                    node of the list led within the timeout. */
int cf_cli_call(cf_cli_t *cli, const cf_req_t *req, msgpack_unpacked *reply);

/* cmd_document.c: fetch the document base names (its op and identifying
 * keys; offset and length are added per range) in ranges into out (NULL
 * or "-": stdout; else out.partial renamed when complete), checked against
 * sha (NULL: the SHA-256 the daemon's first reply names).  what names the
 * command in messages.  An exit code. */
int cf_cli_fetch_document(cf_cli_t *cli, const char *what, const cf_req_t *base,
                          const char *sha, const char *out);

/* The client side of CURVE for a socket, from --key/--server-key, or NULL
 * when CURVE is not asked for.  Borrowed from cli. */
const cf_client_curve_t *cf_cli_curve(const cf_cli_t *cli, cf_client_curve_t *buf);

/* Print the message for a failed CURVE handshake (a CF_CLIENT_HS_* reason)
 * on stderr; returns CF_EXIT_CONNECT. */
int cf_cli_handshake_failed(const cf_cli_t *cli, const char *endpoint, int reason);

/* A request id: --id when given, else a fresh random one in buf (>= 33). */
const char *cf_cli_request_id(const cf_cli_t *cli, char *buf);

/* ---------------------------------------------------------------- output --- */
#define CF_CLI_TIMELEN 40

/* A protocol time (RFC 3339 string) for a person: "2026-11-24 10:15" in the
 * calendar's zone, or "2026-11-24 09:15Z" when no calendar is loaded; "-"
 * when t is NULL or nil; the string as it is when it does not parse. */
char *cf_cli_time(const cf_cli_t *cli, const msgpack_object *t, char *buf);
char *cf_cli_time_at(const cf_cli_t *cli, cf_time_t t, char *buf);

/* A scalar for a table cell or a line: strings with control characters
 * replaced by '?' (member-supplied text must not drive the terminal),
 * integers, booleans; "-" for NULL or nil; "[...]" / "{...}" for containers. */
char *cf_cli_text(const msgpack_object *o, char *buf, size_t len);

/* A duration in seconds as "3d 4h", "5h 10m", "12m", "40s"; "-" if < 0. */
char *cf_cli_age(long long seconds, char *buf, size_t len);

/* ANSI colours, or "" when cli->color is off. */
typedef enum { CF_C_RESET, CF_C_BOLD, CF_C_DIM, CF_C_RED, CF_C_YELLOW, CF_C_GREEN,
               CF_C_CYAN } cf_color_t;
const char *cf_cli_color(const cf_cli_t *cli, cf_color_t c);
/* The colour for a flag: red for *.breached, yellow for *.warning. */
cf_color_t cf_cli_flag_color(const char *flag);

/* Print o as one pretty JSON document and a newline on stdout. */
void cf_cli_json(const msgpack_object *o);

/* Print the JSON document {key: value} as cf_cli_json does. */
void cf_cli_json_one(const char *key, msgpack_object value);

/* Progress on stderr, rewriting one line, only when stderr is a terminal;
 * fmt NULL ends the line. */
void cf_cli_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ----------------------------------------------------------------- table --- */
/* Rows of cells, printed with every column as wide as its widest cell
 * (counted in characters, not bytes).  Cells are copied. */
#define CF_TABLE_MAXCOLS 8

typedef struct {
    size_t ncols;
    const char *head[CF_TABLE_MAXCOLS];
    char **cells;              /* nrows * ncols */
    cf_color_t *colors;        /* one per cell; CF_C_RESET = none */
    size_t nrows, cap;
    /* When not 0: a line's most characters.  The last column's cells are
     * cut to fit, ending in "…" (the last column keeps at least 12). */
    size_t max_width;
} cf_table_t;

/* The terminal's width for cutting long lines: stdout's when it is a
 * terminal, else $COLUMNS when set; 0 (do not cut) otherwise. */
size_t cf_cli_term_width(void);

void cf_table_init(cf_table_t *t, size_t ncols, const char *const *head);
/* Add a row of ncols cells; colors may be NULL.  0 or CF_EINTERNAL (OOM). */
int cf_table_add(cf_table_t *t, const char *const *cells, const cf_color_t *colors);
/* Print the header (bold when colour is on) and the rows to stdout. */
void cf_table_print(const cf_table_t *t, const cf_cli_t *cli);
void cf_table_fini(cf_table_t *t);

#endif

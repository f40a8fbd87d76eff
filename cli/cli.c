/* cli.c: the shared plumbing of claimctl's daemon commands.
 *
 * Options come from tables (the command's own, then the common groups it
 * asked for), so parsing, `--help` and the usage printed on a usage error are
 * generated from the same list and cannot drift apart.  Parsing is by hand
 * rather than getopt_long: getopt permutes argv and keeps global state, and
 * claimctl wants only long options, `--name VALUE` or `--name=VALUE`, with
 * positional arguments anywhere.
 *
 * Environment defaults (CLAIMFLOW_ENDPOINT, ...) are applied before the
 * command line, so an option always wins.
 *
 * CURVE keys (--key, --server-key) are loaded while parsing, so a missing
 * or unsafe key file is a usage error before anything is sent; the secret
 * stays in cli until cf_cli_fini wipes it.  Output helpers never let a byte
 * of claim data reach the terminal as a control character.
 */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "json.h"

/* -------------------------------------------------------------- options --- */
/* The common groups' options; targets are filled per parse (s_common). */
typedef struct {
    unsigned group;
    cf_opt_t opt;
} s_common_opt_t;

static size_t s_common(cf_cli_t *cli, unsigned groups, cf_opt_t *out)
{
    const s_common_opt_t all[] = {
        {CF_CO_ID, {"id", "ID", "idempotency key: retrying with the same ID has no second effect (default: random)", CF_OPT_STR, &cli->id, false}},
        {CF_CO_JSON, {"json", NULL, "print JSON (the protocol's field names) instead of a table", CF_OPT_FLAG, &cli->json, false}},
        {CF_CO_LOCAL, {"workflows", "DIR", "where calendars.yaml is, for local time (CLAIMFLOW_WORKFLOWS; default ./workflows)", CF_OPT_STR, &cli->workflows, false}},
        {CF_CO_LOCAL, {"calendar", "NAME", "the calendar whose time zone times are shown in (default dk; UTC if none loads)", CF_OPT_STR, &cli->calendar, false}},
        {CF_CO_DAEMON, {"endpoint", "URL", "claimflowd's operator endpoint, or a cluster's as URL,URL,... (CLAIMFLOW_ENDPOINT; default " CF_CLI_DEFAULT_ENDPOINT ")", CF_OPT_STR, &cli->endpoint, false}},
        {CF_CO_DAEMON, {"as", "OPERATOR", "your operator id in the daemon's roster (CLAIMFLOW_OPERATOR)", CF_OPT_STR, &cli->actor, false}},
        {CF_CO_DAEMON, {"purpose", "TEXT", "why you read the member's data, kept in the access log the member sees (CLAIMFLOW_PURPOSE; default: case handling)", CF_OPT_STR, &cli->purpose, false}},
        {CF_CO_DAEMON, {"reveal", NULL, "show person ids whole (they are masked to the birth date otherwise); the access log records it", CF_OPT_FLAG, &cli->reveal, false}},
        {CF_CO_CALL, {"by", "PERSON", "record a phone call: the person you spoke to (the member, or who acts for them); needs --reference", CF_OPT_STR, &cli->call_by, false}},
        {CF_CO_CALL, {"reference", "REF", "the call's reference, e.g. its recording id (1-128 bytes)", CF_OPT_STR, &cli->reference, false}},
        {CF_CO_EVENTS, {"events", "URL", "claimflowd's events endpoint, or a cluster's as URL,URL,... (CLAIMFLOW_EVENTS; default " CF_CLI_DEFAULT_EVENTS ")", CF_OPT_STR, &cli->events, false}},
        {CF_CO_DAEMON | CF_CO_EVENTS, {"timeout", "SECONDS", "wait at most this long for claimflowd (default 5)", CF_OPT_STR, &cli->timeout_arg, false}},
        {CF_CO_DAEMON | CF_CO_EVENTS, {"key", "FILE", "your CURVE secret key file, from 'claimctl keygen' (CLAIMFLOW_KEY)", CF_OPT_STR, &cli->key_file, false}},
        {CF_CO_DAEMON | CF_CO_EVENTS, {"server-key", "KEY", "claimflowd's CURVE public key: 40 Z85 characters, or a file holding them (CLAIMFLOW_SERVER_KEY)", CF_OPT_STR, &cli->server_key, false}},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i].group & groups)
            out[n++] = all[i].opt;
    return n;
}

#define S_MAXCOMMON 15

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t s_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}


void cf_cli_usage(const cf_cli_t *cli, FILE *out)
{
    const cf_cmd_spec_t *sp = cli->spec;
    cf_opt_t common[S_MAXCOMMON];
    size_t ncommon = s_common((cf_cli_t *)cli, sp->common, common);

    fprintf(out, "usage: claimctl %s", sp->name);
    if (sp->args && *sp->args)
        fprintf(out, " %s", sp->args);
    for (size_t i = 0; i < cli->nopts; i++)
        if (cli->opts[i].required)
            fprintf(out, " --%s %s", cli->opts[i].name, cli->opts[i].metavar);
    fprintf(out, " [OPTIONS]\n\n%s\n\noptions:\n", sp->summary);
    /* Two passes over both lists: measure the left column, then print. */
    size_t col = 10;
    for (int print = 0; print < 2; print++)
        for (size_t i = 0; i < cli->nopts + ncommon; i++) {
            const cf_opt_t *o = i < cli->nopts ? &cli->opts[i] : &common[i - cli->nopts];
            char left[64];
            snprintf(left, sizeof left, "--%s%s%s", o->name, o->metavar ? " " : "",
                     o->metavar ? o->metavar : "");
            size_t w = s_width(left);
            if (!print)
                col = w > col ? w : col;
            else
                fprintf(out, "  %s%*s  %s%s\n", left, (int)(col - w), "", o->help,
                        o->required ? " (required)" : "");
        }
    fprintf(out, "  %-*s  %s\n", (int)col, "-h, --help", "show this help");
    if (sp->details)
        fprintf(out, "\n%s", sp->details);
    fprintf(out, "\nexit codes: 0 done, 1 claimflowd refused, 2 usage error, "
                 "3 cannot reach claimflowd\n");
}

int cf_cli_usage_error(const cf_cli_t *cli, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "claimctl: %s: ", cli->spec->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    cf_cli_usage(cli, stderr);
    return CF_EXIT_USAGE;
}

int cf_cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("claimctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n", stderr);
    return code;
}

/* Store value into o's target.  0, or -1 when it does not parse. */
static int s_set(const cf_opt_t *o, const char *value)
{
    switch (o->kind) {
    case CF_OPT_FLAG:
        *(bool *)o->target = true;
        return 0;
    case CF_OPT_STR:
        *(const char **)o->target = value;
        return 0;
    case CF_OPT_COUNT: {
        char *end;
        errno = 0;
        long v = strtol(value, &end, 10);
        if (errno || end == value || *end || v < 1 || value[0] == '+' || value[0] == ' ')
            return -1;
        *(long *)o->target = v;
        return 0;
    }
    }
    return -1;
}

static const char *s_env(const char *name, const char *dflt)
{
    const char *v = getenv(name);
    return v && *v ? v : dflt;
}

/* Load the calendars for local time.  A failure falls back to UTC quietly
 * unless the calendar was asked for by name (then it is a usage error). */
static int s_load_calendar(cf_cli_t *cli, bool asked)
{
    char path[PATH_MAX];
    cf_diags_t diags = {0};
    snprintf(path, sizeof path, "%s/calendars.yaml", cli->workflows);
    if (cf_cal_set_load_file(path, &cli->cals, &diags) != 0) {
        if (asked) {
            cf_diags_print(&diags, stderr);
            cf_diags_clear(&diags);
            return cf_cli_usage_error(cli, "cannot load calendars from %s", path);
        }
        cf_diags_clear(&diags);
        return -1;
    }
    cf_diags_clear(&diags);
    cli->cal = cf_cal_find(cli->cals, cli->calendar);
    if (!cli->cal) {
        if (asked)
            return cf_cli_usage_error(cli, "no calendar '%s' in %s", cli->calendar, path);
        cf_cal_set_destroy(&cli->cals);
    }
    return -1;
}

/* Load --key and --server-key (both or neither).  -1 when loaded, else the
 * exit code after a usage error. */
static int s_load_keys(cf_cli_t *cli)
{
    if (!cli->key_file)
        return cf_cli_usage_error(cli, "--server-key needs --key (or CLAIMFLOW_KEY): "
                                       "CURVE needs your secret key too");
    if (!cli->server_key)
        return cf_cli_usage_error(cli, "--key needs --server-key (or CLAIMFLOW_SERVER_KEY): "
                                       "the daemon's public key");
    cf_error_t err = {0};
    if (cf_key_read(cli->key_file, true, cli->curve_secret, &err) != 0)
        return cf_cli_usage_error(cli, "--key: %s", err.message);
    if (cf_key_public(cli->curve_secret, cli->curve_public) != 0)
        return cf_cli_usage_error(cli, "--key: %s: this libzmq has no CURVE support",
                                  cli->key_file);
    /* 40 Z85 characters that decode are the key itself; anything else names
     * a file (a file name of exactly that shape can be given as ./NAME). */
    size_t n = strlen(cli->server_key);
    if (cf_key_z85_decode(cli->server_key, n, NULL)) {
        memcpy(cli->curve_server, cli->server_key, n + 1);
    } else if (cf_key_read(cli->server_key, false, cli->curve_server, &err) != 0) {
        return cf_cli_usage_error(cli, "--server-key: %s", err.message);
    }
    cli->curve = true;
    return -1;
}

/* --endpoint and --events as lists of nodes (nodes.h), and whether each was
 * asked for rather than defaulted.  -1, or the exit code after a usage
 * error. */
static int s_parse_lists(cf_cli_t *cli, const cf_opt_t *common, size_t ncommon,
                         const bool *given)
{
    char why[160];
    cli->endpoint_given = s_env("CLAIMFLOW_ENDPOINT", NULL) != NULL;
    cli->events_given = s_env("CLAIMFLOW_EVENTS", NULL) != NULL;
    for (size_t j = 0; j < ncommon; j++) {
        if (strcmp(common[j].name, "endpoint") == 0 && given[j])
            cli->endpoint_given = true;
        if (strcmp(common[j].name, "events") == 0 && given[j])
            cli->events_given = true;
    }
    if ((cli->spec->common & CF_CO_DAEMON) &&
        cf_nodes_parse(cli->endpoint, &cli->nodes, why, sizeof why) != 0)
        return cf_cli_usage_error(cli, "--endpoint: %s", why);
    if ((cli->spec->common & CF_CO_EVENTS) &&
        cf_nodes_parse(cli->events, &cli->events_nodes, why, sizeof why) != 0)
        return cf_cli_usage_error(cli, "--events: %s", why);
    return -1;
}

int cf_cli_parse(cf_cli_t *cli, const cf_cmd_spec_t *spec, const cf_opt_t *opts,
                 size_t nopts, int argc, char **argv)
{
    memset(cli, 0, sizeof *cli);
    cli->spec = spec;
    cli->opts = opts;
    cli->nopts = nopts;
    cli->endpoint = s_env("CLAIMFLOW_ENDPOINT", CF_CLI_DEFAULT_ENDPOINT);
    cli->events = s_env("CLAIMFLOW_EVENTS", CF_CLI_DEFAULT_EVENTS);
    cli->actor = s_env("CLAIMFLOW_OPERATOR", NULL);
    cli->purpose = s_env("CLAIMFLOW_PURPOSE", NULL);
    cli->workflows = s_env("CLAIMFLOW_WORKFLOWS", "./workflows");
    cli->calendar = s_env("CLAIMFLOW_CALENDAR", CF_CLI_DEFAULT_CALENDAR);
    cli->timeout_arg = s_env("CLAIMFLOW_TIMEOUT", NULL);
    if (spec->common & (CF_CO_DAEMON | CF_CO_EVENTS)) {
        cli->key_file = s_env("CLAIMFLOW_KEY", NULL);
        cli->server_key = s_env("CLAIMFLOW_SERVER_KEY", NULL);
    }
    cli->timeout = CF_CLI_DEFAULT_TIMEOUT;
    cli->color = isatty(STDOUT_FILENO) && getenv("NO_COLOR") == NULL;
    
    cf_opt_t common[S_MAXCOMMON];
    size_t ncommon = s_common(cli, spec->common, common);
    bool given[64] = {false};
    int rc = CF_EXIT_USAGE;

    if (!(cli->args = calloc((size_t)argc + 1, sizeof *cli->args)))
        return cf_cli_fail(CF_EXIT_REFUSED, "out of memory");
    bool only_args = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_args || a[0] != '-' || a[1] == '\0') {
            cli->args[cli->nargs++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_args = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            cf_cli_usage(cli, stdout);
            rc = CF_EXIT_OK;
            goto out_free;
        }
        if (a[1] != '-') {
            rc = cf_cli_usage_error(cli, "unknown option '%s'", a);
            goto out_free;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const cf_opt_t *o = NULL;
        size_t idx = 0;
        for (size_t j = 0; j < nopts + ncommon && !o; j++) {
            const cf_opt_t *c = j < nopts ? &opts[j] : &common[j - nopts];
            if (strlen(c->name) == nlen && strncmp(c->name, name, nlen) == 0)
                o = c, idx = j;
        }
        if (!o) {
            rc = cf_cli_usage_error(cli, "unknown option '--%.*s'", (int)nlen, name);
            goto out_free;
        }
        const char *value = NULL;
        if (o->kind == CF_OPT_FLAG) {
            if (eq) {
                rc = cf_cli_usage_error(cli, "--%s takes no value", o->name);
                goto out_free;
            }
        } else if (eq) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            rc = cf_cli_usage_error(cli, "--%s needs a value (%s)", o->name, o->metavar);
            goto out_free;
        }
        if (s_set(o, value) != 0) {
            rc = cf_cli_usage_error(cli, "--%s: '%s' is not a positive integer", o->name, value);
            goto out_free;
        }
        if (idx < sizeof given / sizeof given[0])
            given[idx] = true;
    }
    for (size_t j = 0; j < nopts; j++)
        if (opts[j].required && !given[j]) {
            rc = cf_cli_usage_error(cli, "--%s is required", opts[j].name);
            goto out_free;
        }
    if (cli->nargs < spec->min_args ||
        (spec->max_args >= 0 && cli->nargs > spec->max_args)) {
        if (cli->nargs < spec->min_args)
            rc = cf_cli_usage_error(cli, "missing argument (%s)", spec->args);
        else
            rc = cf_cli_usage_error(cli, "unexpected argument '%s'", cli->args[spec->max_args]);
        goto out_free;
    }
    if (cli->timeout_arg) {
        char *end;
        double t = strtod(cli->timeout_arg, &end);
        if (end == cli->timeout_arg || *end || !(t > 0) || t > 86400) {
            rc = cf_cli_usage_error(cli, "--timeout: '%s' is not a number of seconds (0 < s <= 86400)",
                                    cli->timeout_arg);
            goto out_free;
        }
        cli->timeout = t;
    }
    if ((cli->key_file || cli->server_key) && (rc = s_load_keys(cli)) >= 0)
        goto out_free;
    if ((spec->common & CF_CO_DAEMON) && !(spec->common & CF_CO_NOAS) && !cli->actor) {
        rc = cf_cli_usage_error(cli, "who are you? give --as OPERATOR or set CLAIMFLOW_OPERATOR");
        goto out_free;
    }
    if (cli->purpose && (strlen(cli->purpose) < 1 || strlen(cli->purpose) > 200)) {
        rc = cf_cli_usage_error(cli, "--purpose must be 1 to 200 bytes");
        goto out_free;
    }
    cf_json_set_masking(!cli->reveal);
    if (!cli->call_by != !cli->reference) {
        rc = cf_cli_usage_error(cli, "--by and --reference go together (a phone call)");
        goto out_free;
    }
    if (cli->id && (strlen(cli->id) < 1 || strlen(cli->id) > 128)) {
        rc = cf_cli_usage_error(cli, "--id must be 1 to 128 bytes");
        goto out_free;
    }
    if ((rc = s_parse_lists(cli, common, ncommon, given + nopts)) >= 0)
        goto out_free;
    if (spec->common & CF_CO_LOCAL) {
        bool asked = s_env("CLAIMFLOW_CALENDAR", NULL) != NULL;
        for (size_t j = 0; j < ncommon; j++)
            if (strcmp(common[j].name, "calendar") == 0 && given[nopts + j])
                asked = true;
        if ((rc = s_load_calendar(cli, asked)) >= 0)
            goto out_free;
    }
    return -1;

out_free:
    cf_cli_fini(cli);
    return rc;
}

void cf_cli_fini(cf_cli_t *cli)
{
    cf_client_destroy(&cli->client);
    cf_cal_set_destroy(&cli->cals);
    cli->cal = NULL;
    cf_key_wipe(cli->curve_secret);
    cli->curve = false;
    free(cli->args);
    cli->args = NULL;
    cli->nargs = 0;
}

/* --------------------------------------------------------------- daemon --- */
const cf_client_curve_t *cf_cli_curve(const cf_cli_t *cli, cf_client_curve_t *buf)
{
    if (!cli->curve)
        return NULL;
    buf->server = cli->curve_server;
    buf->public_key = cli->curve_public;
    buf->secret_key = cli->curve_secret;
    return buf;
}

int cf_cli_handshake_failed(const cf_cli_t *cli, const char *endpoint, int reason)
{
    /* The events socket also refuses subscribers beyond its cap, keys or
     * not (claimflowd --max-subscribers); without keys that is the only
     * refusal there can be. */
    bool events = (cli->events && strcmp(endpoint, cli->events) == 0) ||
                  cf_nodes_find(&cli->events_nodes, endpoint) >= 0;
    if (reason == CF_CLIENT_HS_REFUSED && events && !cli->curve)
        return cf_cli_fail(CF_EXIT_CONNECT, "claimflowd at %s refused the subscription: it "
                           "has all the subscribers it takes (--max-subscribers); try again "
                           "later", endpoint);
    if (reason == CF_CLIENT_HS_REFUSED && events)
        return cf_cli_fail(CF_EXIT_CONNECT, "claimflowd at %s refused your key (is the public "
                           "key of %s on the daemon's list for this endpoint?), or has all "
                           "the subscribers it takes (--max-subscribers)",
                           endpoint, cli->key_file ? cli->key_file : "--key");
    if (reason == CF_CLIENT_HS_REFUSED)
        return cf_cli_fail(CF_EXIT_CONNECT, "claimflowd at %s refused your key (is the public "
                           "key of %s on the daemon's list for this endpoint?)",
                           endpoint, cli->key_file ? cli->key_file : "--key");
    /* Without keys, a failed handshake is almost always a daemon that
     * requires CURVE; libzmq reports it as a mismatch or with no detail. */
    if (!cli->curve)
        return cf_cli_fail(CF_EXIT_CONNECT, "claimflowd at %s refused the connection during "
                           "the handshake (it requires CURVE?): give --key and --server-key "
                           "(or CLAIMFLOW_KEY, CLAIMFLOW_SERVER_KEY)", endpoint);
    if (reason == CF_CLIENT_HS_MECHANISM)
        return cf_cli_fail(CF_EXIT_CONNECT, "claimflowd at %s does not use CURVE: drop --key "
                           "and --server-key", endpoint);
    return cf_cli_fail(CF_EXIT_CONNECT, "the CURVE handshake with claimflowd at %s failed "
                       "(is --server-key the daemon's public key?)", endpoint);
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void s_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* How long one node may take to answer: all that is left for a list of
 * one (what claimctl always did), else its share of --timeout, at least
 * S_NODE_MIN_MS (a connection and a CURVE handshake on a slow network). */
#define S_NODE_MIN_MS 1000
#define S_PAUSE_MS 100          /* between rounds when no node leads */
#define S_UNAVAILABLE_RETRIES 3 /* a list's leader answering unavailable ... */
#define S_UNAVAILABLE_PAUSE_MS 500   /* ... is asked again after this */

static int s_attempt_ms(const cf_cli_t *cli, int64_t left)
{
    if (cli->nodes.n <= 1)
        return (int)left;
    int64_t share = (int64_t)ceil(cli->timeout * 1000.0 / (double)cli->nodes.n);
    if (share < S_NODE_MIN_MS)
        share = S_NODE_MIN_MS;
    return (int)(share < left ? share : left);
}

/* The client for the current node, its wait bounded by ms.  0, or the
 * failure's kind (BADEP, SYS) in *f. */
static int s_client_for(cf_cli_t *cli, int ms, cf_cli_failure_t *f)
{
    const char *ep = cf_nodes_current(&cli->nodes);
    if (cli->client && strcmp(cf_client_endpoint(cli->client), ep) == 0) {
        cf_client_set_timeout(cli->client, ms);
        return 0;
    }
    cf_client_destroy(&cli->client);
    cf_client_curve_t keys;
    cli->client = cf_client_new(ep, cli->actor, ms, cf_cli_curve(cli, &keys));
    if (cli->client) {
        /* With other nodes to try, a dead one is passed over at once. */
        cf_client_set_fail_fast(cli->client, cli->nodes.n > 1);
        return 0;
    }
    f->sys_errno = errno;
    f->kind = errno == EINVAL || errno == EPROTONOSUPPORT ? CF_CLI_F_BADEP : CF_CLI_F_SYS;
    return f->kind;
}

/* The operator endpoint a not_leader reply names as the leader's, into buf
 * ("" when it names none). */
static void s_leader_operator(const msgpack_object *reply, char *buf, size_t len)
{
    buf[0] = '\0';
    const msgpack_object *e = cf_mp_get(reply, "error");
    const msgpack_object *l = e && e->type == MSGPACK_OBJECT_MAP ? cf_mp_get(e, "leader") : NULL;
    if (l && l->type == MSGPACK_OBJECT_MAP && !cf_mp_get_str(l, "operator", buf, len))
        buf[0] = '\0';
}

int cf_cli_request(cf_cli_t *cli, const cf_req_t *req, msgpack_unpacked *reply,
                   cf_cli_failure_t *f)
{
    memset(f, 0, sizeof *f);
    if (cli->nodes.n == 0) {
        char why[160];
        if (cf_nodes_parse(cli->endpoint, &cli->nodes, why, sizeof why) != 0) {
            snprintf(f->endpoint, sizeof f->endpoint, "%s", cli->endpoint);
            f->kind = CF_CLI_F_BADEP;
            f->sys_errno = EINVAL;
            return CF_EXIT_USAGE;
        }
    }
    /* Every operator request may say why (the access log keeps it); a
     * reveal of person ids says so in it. */
    cf_req_t with = *req;
    char purpose[201];
    if (cli->reveal) {
        static const char tag[] = " (person ids revealed)";
        const char *why = cli->purpose ? cli->purpose : "case handling";
        int keep = (int)(sizeof purpose - sizeof tag);
        snprintf(purpose, sizeof purpose, "%.*s%s", keep, why, tag);
        cf_req_str(&with, "purpose", purpose);
        req = &with;
    } else if (cli->purpose) {
        cf_req_str(&with, "purpose", cli->purpose);
        req = &with;
    }
    /* A call the Health Team records (docs/protocol.md, "The Health Team
     * by phone"). */
    if (cli->call_by) {
        if (req != &with)
            with = *req;
        cf_req_str(&with, "channel", "phone");
        cf_req_str(&with, "by", cli->call_by);
        cf_req_str(&with, "reference", cli->reference);
        req = &with;
    }
    int64_t deadline = s_now_ms() + (int64_t)ceil(cli->timeout * 1000.0);
    size_t redirects = 0, unavailable = 0;
    /* Nodes that did not answer in this call: a follower's word that one
     * of them leads is stale (its lease has not run out yet). */
    bool down[CF_NODES_MAX] = {false};
    for (;;) {
        int64_t left = deadline - s_now_ms();
        if (left <= 0)                    /* f holds the last attempt's failure */
            return f->kind == CF_CLI_F_REFUSED ? CF_EXIT_REFUSED : CF_EXIT_CONNECT;
        const char *ep = cf_nodes_current(&cli->nodes);
        snprintf(f->endpoint, sizeof f->endpoint, "%s", ep);
        if (s_client_for(cli, s_attempt_ms(cli, left), f) != 0)
            return f->kind == CF_CLI_F_BADEP ? CF_EXIT_USAGE : CF_EXIT_CONNECT;
        msgpack_unpacked_destroy(reply);
        msgpack_unpacked_init(reply);
        int rc = cf_client_call(cli->client, req, reply, &f->err);
        if (rc == 0)
            return CF_EXIT_OK;
        if (rc == CF_CLIENT_EREFUSED && strcmp(f->err.code, "unavailable") == 0 &&
            cli->nodes.n > 1 && unavailable < S_UNAVAILABLE_RETRIES) {
            /* A leader that lost its lease while writing says so; by the
             * next try it says not_leader.  A full disk stays unavailable. */
            f->kind = CF_CLI_F_REFUSED;
            unavailable++;
            left = deadline - s_now_ms();
            s_sleep_ms(left < S_UNAVAILABLE_PAUSE_MS ? (left > 0 ? left : 0)
                                                     : S_UNAVAILABLE_PAUSE_MS);
            continue;
        }
        if (rc == CF_CLIENT_EREFUSED && strcmp(f->err.code, "not_leader") != 0) {
            f->kind = CF_CLI_F_REFUSED;
            return CF_EXIT_REFUSED;
        }
        if (rc == CF_CLIENT_EREFUSED) {
            /* A follower: the same frame to the leader it names, or the
             * next node when it knows none; a pause after a whole round of
             * followers, so an election is waited for, not hammered. */
            char leader[CF_NODES_EPLEN];
            s_leader_operator(&reply->data, leader, sizeof leader);
            f->kind = CF_CLI_F_NOLEADER;
            int li = leader[0] ? cf_nodes_find(&cli->nodes, leader) : -1;
            bool pause;
            if (leader[0] && !cf_nodes_wildcard(leader) && !(li >= 0 && down[li])) {
                cf_nodes_follow(&cli->nodes, leader);
                pause = ++redirects > cli->nodes.n;
            } else {
                pause = cf_nodes_next(&cli->nodes);
            }
            if (pause) {
                redirects = 0;
                memset(down, 0, sizeof down);
                left = deadline - s_now_ms();
                s_sleep_ms(left < S_PAUSE_MS ? (left > 0 ? left : 0) : S_PAUSE_MS);
            }
            continue;
        }
        switch (rc) {
        case CF_CLIENT_EUNREACHABLE:
            f->kind = CF_CLI_F_UNREACHABLE;
            break;
        case CF_CLIENT_ETIMEOUT:
            /* A late reply would answer the wrong request: a new socket. */
            cf_client_destroy(&cli->client);
            f->kind = CF_CLI_F_TIMEOUT;
            break;
        case CF_CLIENT_EHANDSHAKE:
            /* Every node has the same keys: no other node can do better. */
            f->hs_reason = cf_client_handshake_reason(cli->client);
            cf_client_destroy(&cli->client);
            f->kind = CF_CLI_F_HANDSHAKE;
            return CF_EXIT_CONNECT;
        case CF_CLIENT_EPROTO:
            f->kind = CF_CLI_F_PROTO;
            return CF_EXIT_CONNECT;
        default:
            f->sys_errno = errno;
            f->kind = CF_CLI_F_SYS;
            return CF_EXIT_CONNECT;
        }
        if (!cli->nodes.leader[0])
            down[cli->nodes.cur] = true;
        cf_nodes_next(&cli->nodes);
    }
}

int cf_cli_report(const cf_cli_t *cli, const cf_cli_failure_t *f)
{
    bool list = cli->nodes.n > 1;
    switch (f->kind) {
    case CF_CLI_F_REFUSED:
        return cf_cli_fail(CF_EXIT_REFUSED, "%s: %s", f->err.code, f->err.message);
    case CF_CLI_F_BADEP:
        return cf_cli_fail(CF_EXIT_USAGE, "'%s' is not a ZeroMQ endpoint "
                           "(e.g. " CF_CLI_DEFAULT_ENDPOINT ")", f->endpoint);
    case CF_CLI_F_UNREACHABLE:
        if (list)
            return cf_cli_fail(CF_EXIT_CONNECT, "cannot reach claimflowd at any of %s "
                               "within %g s (are they running?)", cli->endpoint, cli->timeout);
        return cf_cli_fail(CF_EXIT_CONNECT, "cannot reach claimflowd at %s (is it running?)",
                           f->endpoint);
    case CF_CLI_F_TIMEOUT:
        if (list)
            return cf_cli_fail(CF_EXIT_CONNECT, "no reply from claimflowd at any of %s "
                               "within %g s (the last tried: %s)", cli->endpoint,
                               cli->timeout, f->endpoint);
        return cf_cli_fail(CF_EXIT_CONNECT, "no reply from claimflowd at %s within %g s",
                           f->endpoint, cli->timeout);
    case CF_CLI_F_NOLEADER:
        return cf_cli_fail(CF_EXIT_CONNECT, "no leader among claimflowd at %s within %g s "
                           "(the cluster is electing one, or has lost etcd's quorum): "
                           "retry", cli->endpoint, cli->timeout);
    case CF_CLI_F_HANDSHAKE:
        return cf_cli_handshake_failed(cli, f->endpoint, f->hs_reason);
    case CF_CLI_F_PROTO:
        return cf_cli_fail(CF_EXIT_CONNECT, "claimflowd at %s sent a reply that is not "
                           "a protocol map", f->endpoint);
    default:
        return cf_cli_fail(CF_EXIT_CONNECT, "cannot talk to claimflowd at %s (%s)",
                           f->endpoint, strerror(f->sys_errno));
    }
}

int cf_cli_call(cf_cli_t *cli, const cf_req_t *req, msgpack_unpacked *reply)
{
    cf_cli_failure_t f;
    int rc = cf_cli_request(cli, req, reply, &f);
    return rc == CF_EXIT_OK ? rc : cf_cli_report(cli, &f);
}

const char *cf_cli_request_id(const cf_cli_t *cli, char *buf)
{
    return cli->id ? cli->id : cf_client_new_id(buf);
}

/* --------------------------------------------------------------- output --- */
char *cf_cli_time_at(const cf_cli_t *cli, cf_time_t t, char *buf)
{
    char iso[CF_TIME_BUFLEN];
    if (cli->cal) {
        cf_cal_format_local(cli->cal, t, iso);          /* ...T10:15:00+01:00 */
        snprintf(buf, CF_CLI_TIMELEN, "%.10s %.5s", iso, iso + 11);
    } else {
        cf_time_format(t, iso);                          /* ...T09:15:00Z */
        snprintf(buf, CF_CLI_TIMELEN, "%.10s %.5sZ", iso, iso + 11);
    }
    return buf;
}

char *cf_cli_time(const cf_cli_t *cli, const msgpack_object *t, char *buf)
{
    cf_time_t at;
    if (!t || t->type == MSGPACK_OBJECT_NIL) {
        snprintf(buf, CF_CLI_TIMELEN, "-");
        return buf;
    }
    if (t->type != MSGPACK_OBJECT_STR || cf_time_parse(t->via.str.ptr, t->via.str.size, &at) != 0)
        return cf_cli_text(t, buf, CF_CLI_TIMELEN);
    return cf_cli_time_at(cli, at, buf);
}

char *cf_cli_text(const msgpack_object *o, char *buf, size_t len)
{
    if (!o || o->type == MSGPACK_OBJECT_NIL) {
        snprintf(buf, len, "-");
        return buf;
    }
    switch (o->type) {
    case MSGPACK_OBJECT_STR: {
        size_t n = 0;
        uint32_t i = 0;
        const unsigned char *s = (const unsigned char *)o->via.str.ptr;
        if (len >= 12 && cf_json_mask(o->via.str.ptr, o->via.str.size, buf))
            return buf;     /* a person id, masked */
        for (; i < o->via.str.size && n + 1 < len; i++) {
            unsigned char c = s[i];
            /* C0, DEL, and C1 (U+0080..U+009F, UTF-8 C2 80..C2 9F) */
            if (c == 0xc2 && i + 1 < o->via.str.size && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f) {
                buf[n++] = '?';
                i++;
                continue;
            }
            buf[n++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
        }
        if (i < o->via.str.size) {
            /* Truncated: drop what may be half a UTF-8 sequence. */
            while (n > 0 && ((unsigned char)buf[n - 1] & 0xc0) == 0x80)
                n--;
            if (n > 0 && ((unsigned char)buf[n - 1] & 0xc0) == 0xc0)
                n--;
        }
        buf[n] = '\0';
        return buf;
    }
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        snprintf(buf, len, "%llu", (unsigned long long)o->via.u64);
        return buf;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        snprintf(buf, len, "%lld", (long long)o->via.i64);
        return buf;
    case MSGPACK_OBJECT_BOOLEAN:
        snprintf(buf, len, "%s", o->via.boolean ? "true" : "false");
        return buf;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        snprintf(buf, len, "%g", o->via.f64);
        return buf;
    case MSGPACK_OBJECT_ARRAY:
        snprintf(buf, len, "[%u items]", (unsigned)o->via.array.size);
        return buf;
    case MSGPACK_OBJECT_MAP:
        snprintf(buf, len, "{%u keys}", (unsigned)o->via.map.size);
        return buf;
    case MSGPACK_OBJECT_BIN:
        snprintf(buf, len, "(%u bytes)", (unsigned)o->via.bin.size);
        return buf;
    default:
        snprintf(buf, len, "?");
        return buf;
    }
}

char *cf_cli_age(long long s, char *buf, size_t len)
{
    if (s < 0)
        snprintf(buf, len, "-");
    else if (s >= 86400)
        snprintf(buf, len, "%lldd %lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(buf, len, "%lldh %lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(buf, len, "%lldm", s / 60);
    else
        snprintf(buf, len, "%llds", s);
    return buf;
}

const char *cf_cli_color(const cf_cli_t *cli, cf_color_t c)
{
    static const char *const codes[] = {
        [CF_C_RESET] = "\033[0m", [CF_C_BOLD] = "\033[1m",   [CF_C_DIM] = "\033[2m",
        [CF_C_RED] = "\033[31m",  [CF_C_YELLOW] = "\033[33m", [CF_C_GREEN] = "\033[32m",
        [CF_C_CYAN] = "\033[36m",
    };
    return cli->color ? codes[c] : "";
}

cf_color_t cf_cli_flag_color(const char *flag)
{
    size_t n = strlen(flag);
    if (n >= 9 && strcmp(flag + n - 9, ".breached") == 0)
        return CF_C_RED;
    if (n >= 8 && strcmp(flag + n - 8, ".warning") == 0)
        return CF_C_YELLOW;
    return CF_C_RESET;
}

void cf_cli_json(const msgpack_object *o)
{
    cf_json_print(stdout, o, 2);
    fputc('\n', stdout);
}

void cf_cli_json_one(const char *key, msgpack_object value)
{
    msgpack_object_kv kv = {cf_mp_str(key), value};
    msgpack_object m;
    memset(&m, 0, sizeof m);
    m.type = MSGPACK_OBJECT_MAP;
    m.via.map.size = 1;
    m.via.map.ptr = &kv;
    cf_cli_json(&m);
}

void cf_cli_progress(const char *fmt, ...)
{
    if (!isatty(STDERR_FILENO))
        return;
    if (!fmt) {
        fputs("\n", stderr);
        return;
    }
    va_list ap;
    fputs("\r", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\033[K", stderr);
    fflush(stderr);
}

/* ---------------------------------------------------------------- table --- */
void cf_table_init(cf_table_t *t, size_t ncols, const char *const *head)
{
    memset(t, 0, sizeof *t);
    t->ncols = ncols < CF_TABLE_MAXCOLS ? ncols : CF_TABLE_MAXCOLS;
    for (size_t i = 0; i < t->ncols; i++)
        t->head[i] = head[i];
}

int cf_table_add(cf_table_t *t, const char *const *cells, const cf_color_t *colors)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 32;
        char **c = realloc(t->cells, cap * t->ncols * sizeof *c);
        if (!c)
            return CF_EINTERNAL;
        t->cells = c;
        cf_color_t *k = realloc(t->colors, cap * t->ncols * sizeof *k);
        if (!k)
            return CF_EINTERNAL;
        t->colors = k;
        t->cap = cap;
    }
    size_t base = t->nrows * t->ncols;
    for (size_t i = 0; i < t->ncols; i++) {
        if (!(t->cells[base + i] = strdup(cells[i] ? cells[i] : "-"))) {
            while (i-- > 0)
                free(t->cells[base + i]);
            return CF_EINTERNAL;
        }
        t->colors[base + i] = colors ? colors[i] : CF_C_RESET;
    }
    t->nrows++;
    return 0;
}

size_t cf_cli_term_width(void)
{
    struct winsize ws;
    if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    const char *c = getenv("COLUMNS");
    long n = c ? strtol(c, NULL, 10) : 0;
    return n > 0 && n < 100000 ? (size_t)n : 0;
}

/* Cut the cell *s_p (the table's, malloc'd) to at most max characters,
 * the last one "…"; left whole when it fits or memory is short. */
static void s_cut(char **s_p, size_t max)
{
    char *s = *s_p;
    if (max == 0 || s_width(s) <= max)
        return;
    size_t chars = 0, keep = 0;
    for (; s[keep]; keep++) {
        if (((unsigned char)s[keep] & 0xc0) != 0x80) {
            if (chars == max - 1)
                break;
            chars++;
        }
    }
    char *cut = malloc(keep + sizeof "…");
    if (!cut)
        return;
    memcpy(cut, s, keep);
    memcpy(cut + keep, "…", sizeof "…");
    free(s);
    *s_p = cut;
}

void cf_table_print(const cf_table_t *t, const cf_cli_t *cli)
{
    size_t width[CF_TABLE_MAXCOLS];
    for (size_t c = 0; c < t->ncols; c++) {
        width[c] = s_width(t->head[c]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t w = s_width(t->cells[r * t->ncols + c]);
            if (w > width[c])
                width[c] = w;
        }
    }
    if (t->max_width && t->ncols) {
        size_t used = 0;
        for (size_t c = 0; c + 1 < t->ncols; c++)
            used += width[c] + 2;
        size_t last = t->max_width > used + 12 ? t->max_width - used : 12;
        for (size_t r = 0; r < t->nrows; r++)
            s_cut(&t->cells[r * t->ncols + t->ncols - 1], last);
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = r == 0 ? t->head[c] : t->cells[(r - 1) * t->ncols + c];
            cf_color_t k = r == 0 ? CF_C_BOLD : t->colors[(r - 1) * t->ncols + c];
            bool last = c + 1 == t->ncols;
            if (k != CF_C_RESET)
                printf("%s%s%s", cf_cli_color(cli, k), s, cf_cli_color(cli, CF_C_RESET));
            else
                fputs(s, stdout);
            if (!last)
                printf("%*s", (int)(width[c] - s_width(s) + 2), "");
        }
        fputc('\n', stdout);
    }
}

void cf_table_fini(cf_table_t *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    free(t->colors);
    memset(t, 0, sizeof *t);
}

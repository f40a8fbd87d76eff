/* cmd_security.c: claimctl's security commands - keygen (CURVE key pairs),
 * audit (who read which claim: the access log) and purge (erase closed
 * claims' personal data).  docs/SECURITY.md is the design; docs/claimctl.md
 * the manual.
 *
 * audit pages through the daemon's `audit` op to the end (or --limit) and
 * shows one entry a row.  A table needs every row before it can size its
 * columns, so rows are kept (copied) as pages arrive; --json streams one
 * entry a line instead, like export.
 *
 * purge repeats the daemon's `purge` while it says `more` (it erases at
 * most 10,000 claims per transaction).  Each round is a writing request with
 * its own id: ID, ID-2, ID-3, ... when --id is given, so re-running the same
 * command after a lost reply repeats no round that was done.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "json.h"
#include "keyfile.h"

#define S_AUDIT_PAGE 1000L

/* ---------------------------------------------------------------- keygen --- */
int cf_cmd_keygen(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "keygen", "NAME", "Make a CURVE key pair: NAME.key (secret, mode 0600) and NAME.pub (public).",
        "Neither file may exist: a key is never overwritten.  Give NAME.pub's key to\n"
        "whoever keeps claimflowd's config (an operator's `key:`, or `portal: keys:`);\n"
        "keep NAME.key to yourself and pass it with --key (or CLAIMFLOW_KEY).\n"
        "For the daemon, NAME.key is its `curve: secret_key_file` and NAME.pub is\n"
        "what every client gives as --server-key.\n\n"
        "examples:\n"
        "  claimctl keygen ~/.claimflow/hanne\n"
        "  claimctl keygen /etc/claimflow/claimflowd\n",
        0, 1, 1};
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    char pub[CF_KEY_BUFLEN];
    cf_error_t err = {0};
    if (cf_key_generate(cli.args[0], pub, &err) != 0) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "keygen: %s", err.message);
    } else {
        printf("wrote %s.key (secret key, mode 0600) and %s.pub (public key)\n"
               "public key: %s\n",
               cli.args[0], cli.args[0], pub);
        rc = CF_EXIT_OK;
    }
    cf_cli_fini(&cli);
    return rc;
}

/* ----------------------------------------------------------------- audit --- */
/* The claims cell: the one claim, or the first and how many more. */
static const char *s_claims_cell(const msgpack_object *claims, char *buf, size_t len)
{
    if (!claims || claims->type != MSGPACK_OBJECT_ARRAY || claims->via.array.size == 0) {
        snprintf(buf, len, "-");
        return buf;
    }
    char first[64];
    cf_cli_text(&claims->via.array.ptr[0], first, sizeof first);
    if (claims->via.array.size == 1)
        snprintf(buf, len, "%s", first);
    else
        snprintf(buf, len, "%s +%u more", first, (unsigned)claims->via.array.size - 1);
    return buf;
}

int cf_cmd_audit(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "audit", "", "The access log: who read which claims, when, with which op (auditors and supervisors).",
        "Every operator read is logged by claimflowd when it happens: get, history,\n"
        "query (also what queue and export read), document.  Without --claim or\n"
        "--actor: the whole log, oldest first.  Columns: TIME, OPERATOR, OP, CLAIMS\n"
        "(the claim, or the first and how many more); --json: one entry a line,\n"
        "{\"at\", \"actor\", \"op\", \"claims\": [...]}.\n\n"
        "examples:\n"
        "  claimctl audit --claim 01JDX3M4QK8Z6V1N2B3C4D5E6F --as aud\n"
        "  claimctl audit --actor hanne --json --as sofie\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_LOCAL, 0, 0};
    const char *claim = NULL, *actor = NULL;
    long limit = 0;
    const cf_opt_t opts[] = {
        {"claim", "CLAIM", "only reads of this claim", CF_OPT_STR, &claim, false},
        {"actor", "OPERATOR", "only reads by this operator", CF_OPT_STR, &actor, false},
        {"limit", "N", "at most N entries (default: all)", CF_OPT_COUNT, &limit, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    if (claim && actor) {
        rc = cf_cli_usage_error(&cli, "give --claim or --actor, not both");
        cf_cli_fini(&cli);
        return rc;
    }
    static const char *const head[] = {"TIME", "OPERATOR", "OP", "CLAIMS"};
    cf_table_t t;
    cf_table_init(&t, 4, head);
    msgpack_unpacked page, prev;
    msgpack_unpacked_init(&page);
    msgpack_unpacked_init(&prev);
    const msgpack_object *next = NULL;
    long shown = 0;
    for (;;) {
        cf_req_t req;
        cf_req_init(&req, "audit");
        if (claim)
            cf_req_str(&req, "claim", claim);
        if (actor)
            cf_req_str(&req, "operator", actor);
        long want = limit ? limit - shown : S_AUDIT_PAGE;
        cf_req_int(&req, "limit", want < S_AUDIT_PAGE ? want : S_AUDIT_PAGE);
        if (next)
            cf_req_obj(&req, "after", *next);
        if ((rc = cf_cli_call(&cli, &req, &page)) != CF_EXIT_OK)
            break;
        /* The cursor we sent lived in prev's page. */
        msgpack_unpacked_destroy(&prev);
        msgpack_unpacked_init(&prev);
        const msgpack_object *entries = cf_mp_get(&page.data, "entries");
        if (!entries || entries->type != MSGPACK_OBJECT_ARRAY) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "audit: claimflowd's reply has no entries");
            break;
        }
        for (uint32_t i = 0; i < entries->via.array.size; i++) {
            const msgpack_object *e = &entries->via.array.ptr[i];
            if (cli.json) {
                cf_json_print(stdout, e, 0);
                fputc('\n', stdout);
                continue;
            }
            char at[CF_CLI_TIMELEN], who[96], opn[32], cl[96];
            const char *cells[] = {cf_cli_time(&cli, cf_mp_get(e, "at"), at),
                                   cf_cli_text(cf_mp_get(e, "actor"), who, sizeof who),
                                   cf_cli_text(cf_mp_get(e, "op"), opn, sizeof opn),
                                   s_claims_cell(cf_mp_get(e, "claims"), cl, sizeof cl)};
            if (cf_table_add(&t, cells, NULL) != 0) {
                rc = cf_cli_fail(CF_EXIT_REFUSED, "audit: out of memory");
                goto out;
            }
        }
        shown += entries->via.array.size;
        const msgpack_object *nx = cf_mp_get(&page.data, "next");
        if (!nx || nx->type != MSGPACK_OBJECT_STR || (limit && shown >= limit))
            break;
        next = nx;
        prev = page;
        msgpack_unpacked_init(&page);
    }
    if (rc == CF_EXIT_OK && !cli.json) {
        if (t.nrows)
            cf_table_print(&t, &cli);
        else
            printf("no entries\n");
    }
    if (rc == CF_EXIT_OK && fflush(stdout) != 0)
        rc = cf_cli_fail(CF_EXIT_REFUSED, "audit: cannot write the output");
out:
    msgpack_unpacked_destroy(&page);
    msgpack_unpacked_destroy(&prev);
    cf_table_fini(&t);
    cf_cli_fini(&cli);
    return rc;
}

/* ----------------------------------------------------------------- purge --- */
int cf_cmd_purge(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "purge", "", "Erase the personal data of claims closed before a date (supervisors).",
        "A claim in a final state (closed, withdrawn, in_treatment) whose last event\n"
        "is before DATE keeps an anonymous skeleton - workflow, states, times, the\n"
        "history without data - and loses its data, documents and member link; a\n"
        "member with no claims left loses their consent record too.  The store file\n"
        "is then rewritten so the erased bytes are gone from the disk.  Without\n"
        "--closed-before the daemon's retention period applies (config\n"
        "`retention: closed_claims_days`); without one it is a usage error there.\n"
        "Prints how many claims were purged (--json: {\"purged\": N}).\n\n"
        "examples:\n"
        "  claimctl purge --closed-before 2016-01-01 --as sofie\n"
        "  claimctl purge --as sofie          # the configured retention period\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID, 0, 0};
    const char *before = NULL;
    const cf_opt_t opts[] = {
        {"closed-before", "DATE", "claims closed before this day (YYYY-MM-DD, UTC) or RFC 3339 time",
         CF_OPT_STR, &before, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    if (before) {
        int y;
        unsigned m, d;
        cf_time_t t;
        if (cf_date_parse(before, strlen(before), &y, &m, &d) != 0 &&
            cf_time_parse(before, strlen(before), &t) != 0) {
            rc = cf_cli_usage_error(&cli, "--closed-before: '%s' is not a date (YYYY-MM-DD) "
                                          "or an RFC 3339 time", before);
            cf_cli_fini(&cli);
            return rc;
        }
    }
    uint64_t total = 0;
    bool progressed = false;
    char idbuf[160];
    for (unsigned round = 1;; round++) {
        char fresh[40];
        if (cli.id && round == 1)
            snprintf(idbuf, sizeof idbuf, "%s", cli.id);
        else if (cli.id)
            snprintf(idbuf, sizeof idbuf, "%.128s-%u", cli.id, round);
        else
            snprintf(idbuf, sizeof idbuf, "%s", cf_client_new_id(fresh));
        cf_req_t req;
        cf_req_init(&req, "purge");
        cf_req_str(&req, "id", idbuf);
        if (before)
            cf_req_str(&req, "closed_before", before);
        msgpack_unpacked rep;
        msgpack_unpacked_init(&rep);
        rc = cf_cli_call(&cli, &req, &rep);
        const msgpack_object *n = rc == 0 ? cf_mp_get(&rep.data, "purged") : NULL;
        const msgpack_object *more = rc == 0 ? cf_mp_get(&rep.data, "more") : NULL;
        if (rc == 0 && (!n || n->type != MSGPACK_OBJECT_POSITIVE_INTEGER))
            rc = cf_cli_fail(CF_EXIT_CONNECT, "purge: claimflowd's reply has no count");
        if (rc == 0)
            total += n->via.u64;
        bool again = rc == 0 && more && more->type == MSGPACK_OBJECT_BOOLEAN && more->via.boolean;
        msgpack_unpacked_destroy(&rep);
        if (!again)
            break;
        cf_cli_progress("claimctl: purge: %llu claims", (unsigned long long)total);
        progressed = true;
    }
    if (progressed)
        cf_cli_progress(NULL);
    if (rc == 0) {
        if (cli.json)
            printf("{\n  \"purged\": %llu\n}\n", (unsigned long long)total);
        else
            printf("purged %llu claim%s\n", (unsigned long long)total, total == 1 ? "" : "s");
    }
    cf_cli_fini(&cli);
    return rc;
}

/* cmd_rights.c: claimctl export --member ID - everything claimflowd holds
 * about one member, for a written subject access request answered by an
 * operator (GDPR art. 15; docs/SECURITY.md, "What a member can see").
 *
 * One JSON object a line: {"consent": ...} first, one {"representation":
 * ...} per representation of the member, then one
 * {"claim": ..., "events": [...]} per claim, then one {"access": ...} per
 * access-log entry, newest first - the `export` op's pages, followed to the
 * end.  Each page is recorded in the access log with the operator's
 * --purpose.  `claimctl export` without --member is the claims export of
 * cmd_ops.c; the command table sends both here, which picks.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "json.h"

/* {key: value} on one line. */
static void s_line(const char *key, const msgpack_object *value)
{
    msgpack_object_kv kv = {cf_mp_str(key), *value};
    msgpack_object m;
    memset(&m, 0, sizeof m);
    m.type = MSGPACK_OBJECT_MAP;
    m.via.map.size = 1;
    m.via.map.ptr = &kv;
    cf_json_print(stdout, &m, 0);
    fputc('\n', stdout);
}

static int s_export_member(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "export", "", "Everything held about one member, one JSON object a line: consent, "
        "representations, claims with their whole history, the access log.",
        "Each page read is recorded in the access log, with --purpose, and the member\n"
        "sees it there.  Document bodies are not included (their kind, size and\n"
        "sha256 are): fetch them with the document op.\n\n"
        "examples:\n"
        "  claimctl export --member 0101901234 --purpose 'written request 2026-11-24' --reveal --as hanne > member.jsonl\n",
        CF_CO_DAEMON, 0, 0};
    const char *member = NULL;
    const cf_opt_t opts[] = {
        {"member", "ID", "the member's person id (CPR, fødselsnummer or D-number)", CF_OPT_STR,
         &member, true},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    msgpack_unpacked page, prev;
    msgpack_unpacked_init(&page);
    msgpack_unpacked_init(&prev);
    const msgpack_object *next = NULL;
    size_t nclaims = 0, naccess = 0;
    bool first = true;
    for (;;) {
        cf_req_t req;
        cf_req_init(&req, "export");
        cf_req_str(&req, "member", member);
        if (next)
            cf_req_obj(&req, "after", *next);
        if ((rc = cf_cli_call(&cli, &req, &page)) != CF_EXIT_OK)
            break;
        msgpack_unpacked_destroy(&prev);
        msgpack_unpacked_init(&prev);
        const msgpack_object *consent = cf_mp_get(&page.data, "consent");
        const msgpack_object *claims = cf_mp_get(&page.data, "claims");
        const msgpack_object *log = cf_mp_get(&page.data, "access_log");
        if (!consent || !claims || claims->type != MSGPACK_OBJECT_ARRAY || !log ||
            log->type != MSGPACK_OBJECT_ARRAY) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "export: claimflowd's reply has no consent, "
                             "claims or access_log");
            break;
        }
        const msgpack_object *reps = cf_mp_get(&page.data, "representations");
        if (first) {
            s_line("consent", consent);
            for (uint32_t i = 0; reps && reps->type == MSGPACK_OBJECT_ARRAY &&
                                 i < reps->via.array.size; i++)
                s_line("representation", &reps->via.array.ptr[i]);
        }
        first = false;
        for (uint32_t i = 0; i < claims->via.array.size; i++) {
            cf_json_print(stdout, &claims->via.array.ptr[i], 0);
            fputc('\n', stdout);
        }
        for (uint32_t i = 0; i < log->via.array.size; i++)
            s_line("access", &log->via.array.ptr[i]);
        nclaims += claims->via.array.size;
        naccess += log->via.array.size;
        cf_cli_progress("claimctl: export: %zu claims, %zu accesses", nclaims, naccess);
        if (ferror(stdout)) {
            rc = cf_cli_fail(CF_EXIT_REFUSED, "export: cannot write the output");
            break;
        }
        next = cf_mp_get(&page.data, "next");
        if (!next || next->type == MSGPACK_OBJECT_NIL)
            break;
        /* The cursor lives in this page: keep it until the next call. */
        prev = page;
        msgpack_unpacked_init(&page);
    }
    cf_cli_progress(NULL);
    if (rc == 0 && fflush(stdout) != 0)
        rc = cf_cli_fail(CF_EXIT_REFUSED, "export: cannot write the output");
    msgpack_unpacked_destroy(&page);
    msgpack_unpacked_destroy(&prev);
    cf_cli_fini(&cli);
    return rc;
}

int cf_cmd_export_any(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--member") == 0 || strncmp(argv[i], "--member=", 9) == 0)
            return s_export_member(argc, argv);
    return cf_cmd_export(argc, argv);
}

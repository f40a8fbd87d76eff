/* cmd_reps.c: claimctl representation - who may act for a member
 * (docs/protocol.md, "Members and representatives"): the Health Team
 * registers a parent, guardian, next of kin, attorney or third party with
 * the evidence document, revokes one, and lists a member's.
 *
 * One command with an action (add, revoke, list) rather than three: the
 * three share the member and representative arguments and the table, and
 * `claimctl help` stays one line for them.  Person ids are masked in the
 * output like everywhere in claimctl (--reveal shows them, access-logged).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

/* The largest evidence file read (the daemon's default document limit). */
#define S_EVIDENCE_MAX ((long)10 << 20)

static int s_read_file(const char *path, char **ret, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return cf_cli_fail(CF_EXIT_REFUSED, "representation: cannot open %s", path);
    char *buf = malloc((size_t)S_EVIDENCE_MAX + 1);
    size_t n = buf ? fread(buf, 1, (size_t)S_EVIDENCE_MAX + 1, f) : 0;
    int bad = !buf || ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return cf_cli_fail(CF_EXIT_REFUSED, "representation: cannot read %s", path);
    }
    if (n == 0 || n > (size_t)S_EVIDENCE_MAX) {
        free(buf);
        return cf_cli_fail(CF_EXIT_REFUSED, "representation: %s is empty or larger than "
                           "10 MiB", path);
    }
    *ret = buf;
    *len = n;
    return 0;
}

/* "consent,claims" as a msgpack array of views into buf (a copy). */
static int s_scope(const char *s, char *buf, size_t cap, msgpack_object *items, uint32_t max,
                   msgpack_object *ret)
{
    uint32_t n = 0;
    snprintf(buf, cap, "%s", s);
    for (char *p = strtok(buf, ","); p; p = strtok(NULL, ",")) {
        if (n == max)
            return -1;
        items[n++] = cf_mp_str(p);
    }
    memset(ret, 0, sizeof *ret);
    ret->type = MSGPACK_OBJECT_ARRAY;
    ret->via.array.size = n;
    ret->via.array.ptr = items;
    return n ? 0 : -1;
}

/* The kind, and "+decides" for a parent or guardian who decides for an
 * assessed young person. */
static const char *s_kind(const msgpack_object *r, char *out, size_t cap)
{
    char k[24];
    const msgpack_object *d = cf_mp_get(r, "decides");
    snprintf(out, cap, "%s%s", cf_cli_text(cf_mp_get(r, "kind"), k, sizeof k),
             d && d->type == MSGPACK_OBJECT_BOOLEAN && d->via.boolean ? "+decides" : "");
    return out;
}

static void s_row(const cf_cli_t *cli, cf_table_t *t, const msgpack_object *r)
{
    char m[32], rep[32], kind[32], until[CF_CLI_TIMELEN], state[16], scope[96] = "";
    const msgpack_object *sc = cf_mp_get(r, "scope");
    for (uint32_t i = 0; sc && sc->type == MSGPACK_OBJECT_ARRAY && i < sc->via.array.size; i++) {
        char one[24];
        size_t n = strlen(scope);
        snprintf(scope + n, sizeof scope - n, "%s%s", n ? "," : "",
                 cf_cli_text(&sc->via.array.ptr[i], one, sizeof one));
    }
    const msgpack_object *active = cf_mp_get(r, "active");
    const msgpack_object *revoked = cf_mp_get(r, "revoked_at");
    snprintf(state, sizeof state, "%s",
             active && active->type == MSGPACK_OBJECT_BOOLEAN && active->via.boolean ? "active"
             : revoked && revoked->type != MSGPACK_OBJECT_NIL ? "revoked" : "ended");
    const char *cells[] = {
        cf_cli_text(cf_mp_get(r, "member"), m, sizeof m),
        cf_cli_text(cf_mp_get(r, "representative"), rep, sizeof rep),
        s_kind(r, kind, sizeof kind),
        scope,
        cf_cli_time(cli, cf_mp_get(r, "valid_until"), until),
        state,
    };
    cf_color_t colors[] = {CF_C_RESET, CF_C_RESET, CF_C_CYAN, CF_C_RESET, CF_C_RESET,
                           strcmp(state, "active") == 0 ? CF_C_GREEN : CF_C_DIM};
    cf_table_add(t, cells, colors);
}

static void s_print(const cf_cli_t *cli, const msgpack_object *list, uint32_t n)
{
    static const char *const head[] = {"MEMBER", "REPRESENTATIVE", "KIND", "SCOPE",
                                       "VALID UNTIL", "STATE"};
    cf_table_t t;
    cf_table_init(&t, 6, head);
    for (uint32_t i = 0; i < n; i++)
        s_row(cli, &t, &list[i]);
    cf_table_print(&t, cli);
    cf_table_fini(&t);
}

int cf_cmd_representation(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "representation", "add|revoke|list|evidence MEMBER [REPRESENTATIVE]",
        "Who may act for a member: register (add), end (revoke), list representations, or "
        "fetch the evidence one rests on.",
        "add registers REPRESENTATIVE for MEMBER with --kind, --scope and the\n"
        "--evidence document; a next_of_kin or guardian of an adult needs a\n"
        "supervisor.  A parent's ends by itself on the member's 18th birthday.\n"
        "--decides registers a parent or guardian who decides for a member of\n"
        "15-17 assessed unable to appreciate the decision (KIND shows +decides).\n\n"
        "examples:\n"
        "  claimctl representation add 1501145123 0103801234 --kind parent \\\n"
        "      --scope consent,claims,read --evidence custody.pdf --as hanne\n"
        "  claimctl representation list 1501145123 --as hanne\n"
        "  claimctl representation revoke 1501145123 0103801234 --as hanne\n"
        "  claimctl representation evidence 1501145123 0103801234 -o custody.pdf --as aud\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID | CF_CO_LOCAL, 2, 3};
    const char *kind = NULL, *scope = NULL, *evidence = NULL, *until = NULL;
    const char *ctype = "application/pdf", *evkind = NULL;
    bool decides = false;
    const char *out = NULL;
    const cf_opt_t opts[] = {
        {"kind", "K", "add: parent, guardian, next_of_kin, attorney or third_party", CF_OPT_STR, &kind, false},
        {"scope", "LIST", "add: what they may do, comma-separated: consent, claims, complaints, read", CF_OPT_STR, &scope, false},
        {"evidence", "FILE", "add: the document the representation rests on", CF_OPT_STR, &evidence, false},
        {"content-type", "TYPE", "add: the evidence's content type (default application/pdf)", CF_OPT_STR, &ctype, false},
        {"evidence-kind", "NAME", "add: the evidence's kind (default evidence)", CF_OPT_STR, &evkind, false},
        {"valid-until", "DATE", "add: the last day it holds (YYYY-MM-DD); default until revoked, or the 18th birthday", CF_OPT_STR, &until, false},
        {"decides", NULL, "add: a parent or guardian who decides for a member of 15-17 assessed unable to appreciate the decision (the assessment is the evidence)", CF_OPT_FLAG, &decides, false},
        {"output", "FILE", "evidence: write it to FILE (- for stdout); also -o FILE", CF_OPT_STR, &out, false},
    };
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "-o") == 0)
            argv[i] = (char *)"--output";   /* as `claimctl document` */
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    const char *action = cli.args[0];
    bool add = strcmp(action, "add") == 0, revoke = strcmp(action, "revoke") == 0,
         list = strcmp(action, "list") == 0, evid = strcmp(action, "evidence") == 0;
    char *body = NULL, idbuf[40], sbuf[128];
    size_t blen = 0;
    msgpack_object items[8], sc, ev;
    msgpack_object_kv evkv[3];
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    if (!add && !revoke && !list && !evid) {
        rc = cf_cli_usage_error(&cli, "'%s' is not add, revoke, list or evidence", action);
        goto out;
    }
    if (evid) {
        if (cli.nargs != 3) {
            rc = cf_cli_usage_error(&cli, "evidence takes MEMBER and REPRESENTATIVE");
            goto out;
        }
        cf_req_t base;
        cf_req_init(&base, "representation.evidence");
        cf_req_str(&base, "member", cli.args[1]);
        cf_req_str(&base, "representative", cli.args[2]);
        rc = cf_cli_fetch_document(&cli, "representation evidence", &base, NULL, out);
        goto out;
    }
    if ((list && cli.nargs != 2) || (!list && cli.nargs != 3)) {
        rc = cf_cli_usage_error(&cli, list ? "list takes MEMBER only"
                                           : "%s takes MEMBER and REPRESENTATIVE", action);
        goto out;
    }
    if (add && (!kind || !scope || !evidence)) {
        rc = cf_cli_usage_error(&cli, "add needs --kind, --scope and --evidence");
        goto out;
    }
    cf_req_t req;
    cf_req_init(&req, list ? "representation.list" : add ? "representation.add"
                                                         : "representation.revoke");
    if (!list)
        cf_req_str(&req, "id", cf_cli_request_id(&cli, idbuf));
    cf_req_str(&req, "member", cli.args[1]);
    if (!list)
        cf_req_str(&req, "representative", cli.args[2]);
    if (add) {
        if (s_scope(scope, sbuf, sizeof sbuf, items, 8, &sc) != 0) {
            rc = cf_cli_usage_error(&cli, "--scope: a comma-separated list of 1 to 8 scopes");
            goto out;
        }
        if ((rc = s_read_file(evidence, &body, &blen)) != 0)
            goto out;
        uint32_t n = 0;
        evkv[n++] = (msgpack_object_kv){cf_mp_str("content_type"), cf_mp_str(ctype)};
        msgpack_object b;
        memset(&b, 0, sizeof b);
        b.type = MSGPACK_OBJECT_BIN;
        b.via.bin.size = (uint32_t)blen;
        b.via.bin.ptr = body;
        evkv[n++] = (msgpack_object_kv){cf_mp_str("body"), b};
        if (evkind)
            evkv[n++] = (msgpack_object_kv){cf_mp_str("kind"), cf_mp_str(evkind)};
        memset(&ev, 0, sizeof ev);
        ev.type = MSGPACK_OBJECT_MAP;
        ev.via.map.size = n;
        ev.via.map.ptr = evkv;
        cf_req_str(&req, "kind", kind);
        cf_req_obj(&req, "scope", sc);
        cf_req_obj(&req, "evidence", ev);
        if (until)
            cf_req_str(&req, "valid_until", until);
        if (decides)
            cf_req_bool(&req, "decides", true);
    }
    if ((rc = cf_cli_call(&cli, &req, &rep)) != 0)
        goto out;
    const char *key = list ? "representations" : "representation";
    const msgpack_object *r = cf_mp_get(&rep.data, key);
    if (!r || (list && r->type != MSGPACK_OBJECT_ARRAY)) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "representation: claimflowd's reply has no %s", key);
        goto out;
    }
    if (cli.json)
        cf_cli_json_one(key, *r);
    else if (list)
        s_print(&cli, r->via.array.ptr, r->via.array.size);
    else
        s_print(&cli, r, 1);
out:
    free(body);
    msgpack_unpacked_destroy(&rep);
    cf_cli_fini(&cli);
    return rc;
}

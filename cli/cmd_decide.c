/* cmd_decide.c: the writing commands - named decisions (approve, deny, ...)
 * and the generic `send`.
 *
 * Every named decision is a row of s_decisions: the event it sends and the
 * options that become the event's data.  One function runs them all, so a
 * new decision is a new row (and a row in claimctl.c), never new code.
 * Each call is one `send` with a fresh random `id` unless --id gives one:
 * the daemon remembers the reply per id, so a script that lost a reply
 * (timeout, exit 3) retries with the same --id and gets the same answer
 * without a second effect.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"
#include "person.h"

typedef enum { S_STR, S_INT, S_DATE } s_type_t;

typedef struct {
    const char *opt;        /* command-line option, "valid-until" */
    const char *metavar;
    const char *key;        /* the event data's key, "valid_until" */
    s_type_t type;
    const char *help;
    bool optional;          /* left out of the data when not given */
} s_field_t;

#define S_MAXFIELDS 3

typedef struct {
    const char *name;
    const char *event;
    const char *arg;        /* what the positional argument is */
    const char *summary;
    const char *example;
    s_field_t fields[S_MAXFIELDS];
} s_decision_t;

static const s_decision_t s_decisions[] = {
    {"approve", "decision.approved", "CLAIM", "Approve a claim in review (decision.approved).",
     "  claimctl approve 01JDX3M4QK8Z6V1N2B3C4D5E6F --as hanne\n", {{0}}},
    {"deny", "decision.denied", "CLAIM", "Deny a claim in review, with the reason the member is given (decision.denied).",
     "  claimctl deny 01JDX3M4QK8Z6V1N2B3C4D5E6F --reason 'not covered by the policy' --as hanne\n",
     {{"reason", "TEXT", "reason", S_STR, "why, in words the member reads", false}}},
    {"request-info", "info.requested", "CLAIM", "Ask the member for more information (info.requested).",
     "  claimctl request-info 01JDX3M4QK8Z6V1N2B3C4D5E6F --text 'Please send the invoice' --as hanne\n",
     {{"text", "TEXT", "text", S_STR, "what the member is asked", false}}},
    {"guarantee", "guarantee.issued", "CLAIM", "Issue a payment guarantee for an approved claim (guarantee.issued).",
     "  claimctl guarantee 01JDX3M4QK8Z6V1N2B3C4D5E6F --amount 150000 --provider 'Fysio Nord' \\\n"
     "      --valid-until 2027-02-28 --as hanne\n",
     {{"amount", "ØRE", "amount", S_INT, "the amount guaranteed, in øre (150000 = 1,500.00 kr)", false},
      {"provider", "P", "provider", S_STR, "the provider the guarantee is for", false},
      {"valid-until", "YYYY-MM-DD", "valid_until", S_DATE, "the last day the guarantee holds", false}}},
    {"refer-network", "network.referred", "CLAIM", "Refer an approved claim to a provider in the insurer's network (network.referred).",
     "  claimctl refer-network 01JDX3M4QK8Z6V1N2B3C4D5E6F --provider 'Klinik Øst' --as hanne\n",
     {{"provider", "P", "provider", S_STR, "the network provider", false}}},
    {"answer", "inquiry.answered", "INQUIRY", "Answer a member's inquiry (inquiry.answered).",
     "  claimctl answer 01JDX4A9R2T7W3Y5Z8B1C4D6E9 --text 'Your claim is with a handler.' --as hanne\n",
     {{"text", "TEXT", "text", S_STR, "the answer", false}}},
    {"uphold", "complaint.upheld", "CLAIM", "Uphold a complaint: the claim goes back to approved (complaint.upheld; supervisors, the claim's owner set).",
     "  claimctl uphold 01JDX3M4QK8Z6V1N2B3C4D5E6F --reason 'the referral covers it' --as sofie\n",
     {{"reason", "TEXT", "reason", S_STR, "why, in words the member reads (optional)", true}}},
    {"reject", "complaint.rejected", "CLAIM", "Reject a complaint, with the reason (complaint.rejected; supervisors).",
     "  claimctl reject 01JDX3M4QK8Z6V1N2B3C4D5E6F --reason 'the policy excludes it' --as sofie\n",
     {{"reason", "TEXT", "reason", S_STR, "why, in words the member reads", false}}},
    {"settle", "settlement.paid", "CLAIM", "Record the payment of an invoiced claim (settlement.paid): the claim is settled.",
     "  claimctl settle 01JDX3M4QK8Z6V1N2B3C4D5E6F --amount 150000 --paid-to provider \\\n"
     "      --reference PAY-2026-0042 --as hanne\n",
     {{"amount", "ØRE", "amount", S_INT, "the amount paid, in øre; above the guarantee only by a supervisor", false},
      {"paid-to", "provider|member", "paid_to", S_STR, "who was paid: the provider, or the member (a refund)", false},
      {"reference", "REF", "reference", S_STR, "the payment's reference in the payment system", false}}},
    {"reject-settlement", "settlement.rejected", "CLAIM", "Refuse to pay an invoiced claim, with the reason (settlement.rejected).",
     "  claimctl reject-settlement 01JDX3M4QK8Z6V1N2B3C4D5E6F --reason 'the invoice is for another treatment' --as hanne\n",
     {{"reason", "TEXT", "reason", S_STR, "why, in words the member reads", false}}},
    {"close", "claim.closed", "CLAIM", "Close an open claim, with the reason (claim.closed; supervisors once a guarantee or treatment is under way).",
     "  claimctl close 01JDX3M4QK8Z6V1N2B3C4D5E6F --reason 'the member has not answered since March' --as hanne\n",
     {{"reason", "TEXT", "reason", S_STR, "why the claim is closed", false}}},
};

/* KEY=VALUE arguments into *ret (calloc'd; free()): a person id a string,
 * other digits an integer, true/false a boolean, anything else a string.
 * 0 or the exit code. */
static bool s_integer(const char *s, int64_t *ret);

static int s_kv(cf_cli_t *cli, char **args, uint32_t n, msgpack_object_kv **ret)
{
    msgpack_object_kv *kv = calloc(n ? n : 1, sizeof *kv);
    if (!kv)
        return cf_cli_fail(CF_EXIT_REFUSED, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        char *a = args[i], *eq = strchr(a, '=');
        if (!eq || eq == a) {
            free(kv);
            return cf_cli_usage_error(cli, "'%s' is not KEY=VALUE", a);
        }
        /* The key is a prefix of an argv string: cut it there (argv is ours). */
        *eq = '\0';
        for (uint32_t j = 0; j < i; j++)
            if (cf_mp_streq(&kv[j].key, a)) {
                free(kv);
                return cf_cli_usage_error(cli, "key '%s' given twice", a);
            }
        const char *v = eq + 1;
        int64_t num;
        kv[i].key = cf_mp_str(a);
        if (cf_pid_check(v, strlen(v)) != CF_PID_INVALID)
            kv[i].val = cf_mp_str(v);       /* a person id, even all digits */
        else if (s_integer(v, &num))
            kv[i].val = cf_mp_int(num);
        else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
            kv[i].val = cf_mp_bool(v[0] == 't');
        else
            kv[i].val = cf_mp_str(v);
    }
    *ret = kv;
    return 0;
}

/* The reply's payload (every key but ok and id) as JSON. */
static void s_json_reply(const msgpack_object *reply)
{
    msgpack_object_kv kv[16];
    uint32_t n = 0;
    for (uint32_t i = 0; i < reply->via.map.size && n < 16; i++) {
        const msgpack_object *k = &reply->via.map.ptr[i].key;
        if (!cf_mp_streq(k, "ok") && !cf_mp_streq(k, "id"))
            kv[n++] = reply->via.map.ptr[i];
    }
    msgpack_object m;
    memset(&m, 0, sizeof m);
    m.type = MSGPACK_OBJECT_MAP;
    m.via.map.size = n;
    m.via.map.ptr = kv;
    cf_cli_json(&m);
}

/* Run req (whose reply has a claim) and print the claim's id and state.
 * The exit code. */
static int s_print_claim(cf_cli_t *cli, const cf_req_t *req, const char *what)
{
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    int rc = cf_cli_call(cli, req, &rep);
    if (rc == 0) {
        const msgpack_object *c = cf_mp_get(&rep.data, "claim");
        if (!c) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "%s: claimflowd's reply has no claim", what);
        } else if (cli->json) {
            cf_cli_json_one("claim", *c);
        } else {
            char id[64], st[64];
            printf("%s: %s%s%s\n", cf_cli_text(cf_mp_get(c, "id"), id, sizeof id),
                   cf_cli_color(cli, CF_C_BOLD), cf_cli_text(cf_mp_get(c, "state"), st, sizeof st),
                   cf_cli_color(cli, CF_C_RESET));
        }
    }
    msgpack_unpacked_destroy(&rep);
    return rc;
}

/* Send event (with data, or none) to claim and print the new state.  The
 * exit code. */
static int s_send(cf_cli_t *cli, const char *claim, const char *event,
                  const msgpack_object_kv *data, uint32_t ndata)
{
    char idbuf[40];
    cf_req_t req;
    cf_req_init(&req, "send");
    cf_req_str(&req, "id", cf_cli_request_id(cli, idbuf));
    cf_req_str(&req, "claim", claim);
    cf_req_str(&req, "event", event);
    if (ndata) {
        msgpack_object m;
        memset(&m, 0, sizeof m);
        m.type = MSGPACK_OBJECT_MAP;
        m.via.map.size = ndata;
        m.via.map.ptr = (msgpack_object_kv *)data;
        cf_req_obj(&req, "data", m);
    }
    return s_print_claim(cli, &req, "send");
}

/* All digits (and fits int64): *ret and true. */
static bool s_integer(const char *s, int64_t *ret)
{
    if (!*s)
        return false;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || v > INT64_MAX)
        return false;
    *ret = (int64_t)v;
    return true;
}

int cf_cmd_decide(int argc, char **argv)
{
    const s_decision_t *d = NULL;
    for (size_t i = 0; i < sizeof s_decisions / sizeof s_decisions[0] && !d; i++)
        if (strcmp(argv[0], s_decisions[i].name) == 0)
            d = &s_decisions[i];
    if (!d)
        return cf_cli_fail(CF_EXIT_USAGE, "%s: not a decision", argv[0]);

    char details[768];
    snprintf(details, sizeof details,
             "Sends the event %s; prints the claim's new state (--json: {\"claim\": {...}}).\n\n"
             "example:\n%s", d->event, d->example);
    const cf_cmd_spec_t spec = {d->name, d->arg, d->summary, details,
                                CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID, 1, 1};
    const char *values[S_MAXFIELDS] = {NULL};
    cf_opt_t opts[S_MAXFIELDS];
    size_t nopts = 0;
    for (; nopts < S_MAXFIELDS && d->fields[nopts].opt; nopts++) {
        const s_field_t *f = &d->fields[nopts];
        opts[nopts] = (cf_opt_t){f->opt, f->metavar, f->help, CF_OPT_STR, &values[nopts],
                                 !f->optional};
    }
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, nopts, argc, argv);
    if (rc >= 0)
        return rc;

    msgpack_object_kv kv[S_MAXFIELDS];
    size_t nkv = 0;
    for (size_t i = 0; i < nopts; i++) {
        const s_field_t *f = &d->fields[i];
        if (!values[i])
            continue; /* an optional field not given */
        msgpack_object_kv *x = &kv[nkv++];
        x->key = cf_mp_str(f->key);
        int64_t n;
        int y;
        unsigned m, day;
        switch (f->type) {
        case S_INT:
            if (!s_integer(values[i], &n)) {
                rc = cf_cli_usage_error(&cli, "--%s: '%s' is not a whole number of øre", f->opt, values[i]);
                goto out;
            }
            x->val = cf_mp_int(n);
            break;
        case S_DATE:
            if (cf_date_parse(values[i], strlen(values[i]), &y, &m, &day) != 0 ||
                strlen(values[i]) != 10) {
                rc = cf_cli_usage_error(&cli, "--%s: '%s' is not a date (YYYY-MM-DD)", f->opt, values[i]);
                goto out;
            }
            x->val = cf_mp_str(values[i]);
            break;
        case S_STR:
            if (!*values[i]) {
                rc = cf_cli_usage_error(&cli, "--%s must not be empty", f->opt);
                goto out;
            }
            x->val = cf_mp_str(values[i]);
            break;
        }
    }
    rc = s_send(&cli, cli.args[0], d->event, kv, (uint32_t)nkv);
out:
    cf_cli_fini(&cli);
    return rc;
}

int cf_cmd_reconsider(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "reconsider", "CLAIM",
        "Answer a member's reconsideration request: the decision stands (--upheld) or changes (--changed).",
        "--upheld sends decision.upheld (the reason is required): the claim goes back to\n"
        "its decided state, whose complaint window keeps running, and the member may\n"
        "complain.  --changed sends decision.changed: the claim is approved.  Prints the\n"
        "claim's new state (--json: {\"claim\": {...}}).\n\n"
        "examples:\n"
        "  claimctl reconsider 01JDX3M4QK8Z6V1N2B3C4D5E6F --upheld --reason 'the policy excludes it' --as hanne\n"
        "  claimctl reconsider 01JDX3M4QK8Z6V1N2B3C4D5E6F --changed --reason 'the new statement covers it' --as hanne\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID, 1, 1};
    bool upheld = false, changed = false;
    const char *reason = NULL;
    const cf_opt_t opts[] = {
        {"upheld", NULL, "the decision stands (decision.upheld)", CF_OPT_FLAG, &upheld, false},
        {"changed", NULL, "the decision changes: approved (decision.changed)", CF_OPT_FLAG,
         &changed, false},
        {"reason", "TEXT", "why, in words the member reads (required with --upheld)", CF_OPT_STR,
         &reason, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    if (upheld == changed)
        rc = cf_cli_usage_error(&cli, "give one of --upheld and --changed");
    else if (upheld && (!reason || !*reason))
        rc = cf_cli_usage_error(&cli, "--upheld needs --reason");
    else if (reason && !*reason)
        rc = cf_cli_usage_error(&cli, "--reason must not be empty");
    else {
        msgpack_object_kv kv[1] = {{cf_mp_str("reason"), cf_mp_str(reason ? reason : "")}};
        rc = s_send(&cli, cli.args[0], upheld ? "decision.upheld" : "decision.changed", kv,
                    reason ? 1 : 0);
    }
    cf_cli_fini(&cli);
    return rc;
}

/* op assign {claim, to}; prints "CLAIM: owner OP" (or "no owner"). */
static int s_assign(cf_cli_t *cli, const char *claim, const char *to)
{
    char idbuf[40];
    cf_req_t req;
    cf_req_init(&req, "assign");
    cf_req_str(&req, "id", cf_cli_request_id(cli, idbuf));
    cf_req_str(&req, "claim", claim);
    if (to)
        cf_req_str(&req, "to", to);
    else
        cf_req_obj(&req, "to", (msgpack_object){.type = MSGPACK_OBJECT_NIL});
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    int rc = cf_cli_call(cli, &req, &rep);
    if (rc == 0) {
        const msgpack_object *c = cf_mp_get(&rep.data, "claim");
        if (!c) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "assign: claimflowd's reply has no claim");
        } else if (cli->json) {
            cf_cli_json_one("claim", *c);
        } else {
            char id[64], own[72];
            const msgpack_object *o = cf_mp_get(c, "owner");
            if (o && o->type == MSGPACK_OBJECT_STR)
                printf("%s: owner %s\n", cf_cli_text(cf_mp_get(c, "id"), id, sizeof id),
                       cf_cli_text(o, own, sizeof own));
            else
                printf("%s: no owner\n", cf_cli_text(cf_mp_get(c, "id"), id, sizeof id));
        }
    }
    msgpack_unpacked_destroy(&rep);
    return rc;
}

int cf_cmd_assign(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "assign", "CLAIM", "Give a claim an owner, or take it away (--release); supervisors.",
        "The owner is an operator of the roster (a handler or a supervisor); a state\n"
        "such as complaint_review accepts operators' events only once the claim has\n"
        "one.  A handler takes an unowned claim with 'claimctl take'.\n\n"
        "examples:\n"
        "  claimctl assign 01JDX3M4QK8Z6V1N2B3C4D5E6F --to sofie --as sofie\n"
        "  claimctl assign 01JDX3M4QK8Z6V1N2B3C4D5E6F --release --as sofie\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID, 1, 1};
    const char *to = NULL;
    bool release = false;
    const cf_opt_t opts[] = {
        {"to", "OP", "the operator who owns the claim from now on", CF_OPT_STR, &to, false},
        {"release", NULL, "the claim has no owner from now on", CF_OPT_FLAG, &release, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    if ((to != NULL) == release)
        rc = cf_cli_usage_error(&cli, "give one of --to OP and --release");
    else
        rc = s_assign(&cli, cli.args[0], to);
    cf_cli_fini(&cli);
    return rc;
}

int cf_cmd_take(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "take", "CLAIM", "Take an unowned claim: the operator (--as) becomes its owner.",
        "examples:\n"
        "  claimctl take 01JDX3M4QK8Z6V1N2B3C4D5E6F --as hanne\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID, 1, 1};
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    if (!cli.actor || !*cli.actor)
        rc = cf_cli_usage_error(&cli, "take needs --as OPERATOR (or CLAIMFLOW_OPERATOR)");
    else
        rc = s_assign(&cli, cli.args[0], cli.actor);
    cf_cli_fini(&cli);
    return rc;
}

int cf_cmd_send(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "send", "CLAIM EVENT [KEY=VALUE...]",
        "Send any event to a claim; KEY=VALUE pairs become the event's data.",
        "A VALUE of digits only is sent as an integer, true/false as a boolean,\n"
        "anything else as a string.  Prints the claim's new state.\n\n"
        "examples:\n"
        "  claimctl send 01JDX3M4QK8Z6V1N2B3C4D5E6F decision.approved --as hanne\n"
        "  claimctl send 01JDX3M4QK8Z6V1N2B3C4D5E6F guarantee.issued amount=150000 \\\n"
        "      provider='Fysio Nord' valid_until=2027-02-28 --id retry-safe-42 --as hanne\n"
        "  claimctl send 01JDX3M4QK8Z6V1N2B3C4D5E6F complaint.filed text='please look again' \\\n"
        "      --by 0101901234 --reference rec-0042 --as hanne     # a member's call\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID | CF_CO_CALL, 2, -1};
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    uint32_t n = (uint32_t)cli.nargs - 2;
    msgpack_object_kv *kv = NULL;
    if ((rc = s_kv(&cli, cli.args + 2, n, &kv)) == 0)
        rc = s_send(&cli, cli.args[0], cli.args[1], kv, n);
    free(kv);
    cf_cli_fini(&cli);
    return rc;
}

int cf_cmd_create(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "create", "WORKFLOW KEY=VALUE...",
        "Record a claim a member reported by phone (the Health Team): --by, --reference.",
        "KEY=VALUE pairs are the claim's data, as for send; the member is data's\n"
        "member.  The workflow sees the member's role; the history names you, the\n"
        "person on the phone and the call.  Prints the claim's id and state.\n\n"
        "examples:\n"
        "  claimctl create health_claim member=0101901234 treatment=chiropractic \\\n"
        "      --by 0101901234 --reference rec-0042 --as hanne\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID | CF_CO_CALL, 2, -1};
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    msgpack_object_kv *kv = NULL;
    uint32_t n = (uint32_t)cli.nargs - 1;
    if (!cli.call_by)
        rc = cf_cli_usage_error(&cli, "an operator creates a claim only from a call: give --by "
                                      "and --reference");
    else
        rc = s_kv(&cli, cli.args + 1, n, &kv);
    if (rc == 0) {
        char idbuf[40];
        cf_req_t req;
        cf_req_init(&req, "create");
        cf_req_str(&req, "id", cf_cli_request_id(&cli, idbuf));
        cf_req_str(&req, "workflow", cli.args[0]);
        msgpack_object m;
        memset(&m, 0, sizeof m);
        m.type = MSGPACK_OBJECT_MAP;
        m.via.map.size = n;
        m.via.map.ptr = kv;
        cf_req_obj(&req, "data", m);
        rc = s_print_claim(&cli, &req, "create");
    }
    free(kv);
    cf_cli_fini(&cli);
    return rc;
}

int cf_cmd_consent(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "consent", "give|withdraw MEMBER",
        "Record a member's consent (or its withdrawal) given by phone: --by, --reference.",
        "The age rules apply to --by: under 15 a parent or guardian, 15 to 17 only\n"
        "the member (--involved: the parents involved), 18 and over the member or\n"
        "a representative with scope consent.  Prints the claims that moved on.\n\n"
        "examples:\n"
        "  claimctl consent give 0101901234 --by 0101901234 --reference rec-0042 --as hanne\n"
        "  claimctl consent give 0505104123 --involved 0103801234 --by 0505104123 \\\n"
        "      --reference rec-0043 --as hanne\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID | CF_CO_CALL, 2, 2};
    const char *involved = NULL;
    const cf_opt_t opts[] = {
        {"involved", "IDS", "give, 15 to 17: the parents involved, comma-separated person ids", CF_OPT_STR, &involved, false},
    };
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, sizeof opts / sizeof opts[0], argc, argv);
    if (rc >= 0)
        return rc;
    bool give = strcmp(cli.args[0], "give") == 0;
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    char ibuf[256];
    msgpack_object items[8];
    if (!give && strcmp(cli.args[0], "withdraw") != 0) {
        rc = cf_cli_usage_error(&cli, "'%s' is not give or withdraw", cli.args[0]);
        goto out;
    }
    if (!cli.call_by) {
        rc = cf_cli_usage_error(&cli, "an operator records consent only from a call: give --by "
                                      "and --reference");
        goto out;
    }
    char idbuf[40];
    cf_req_t req;
    cf_req_init(&req, give ? "consent.give" : "consent.withdraw");
    cf_req_str(&req, "id", cf_cli_request_id(&cli, idbuf));
    cf_req_str(&req, "member", cli.args[1]);
    if (involved) {
        uint32_t n = 0;
        snprintf(ibuf, sizeof ibuf, "%s", involved);
        for (char *p = strtok(ibuf, ","); p && n < 8; p = strtok(NULL, ","))
            items[n++] = cf_mp_str(p);
        msgpack_object a;
        memset(&a, 0, sizeof a);
        a.type = MSGPACK_OBJECT_ARRAY;
        a.via.array.size = n;
        a.via.array.ptr = items;
        cf_req_obj(&req, "involved", a);
    }
    if ((rc = cf_cli_call(&cli, &req, &rep)) != 0)
        goto out;
    const msgpack_object *moved = cf_mp_get(&rep.data, "moved");
    if (!moved || moved->type != MSGPACK_OBJECT_ARRAY) {
        rc = cf_cli_fail(CF_EXIT_CONNECT, "consent: claimflowd's reply has no moved");
    } else if (cli.json) {
        s_json_reply(&rep.data);
    } else {
        printf("consent %s: %u claim%s moved on\n", give ? "given" : "withdrawn",
               (unsigned)moved->via.array.size, moved->via.array.size == 1 ? "" : "s");
        for (uint32_t i = 0; i < moved->via.array.size; i++) {
            char id[64];
            printf("  %s\n", cf_cli_text(&moved->via.array.ptr[i], id, sizeof id));
        }
    }
out:
    msgpack_unpacked_destroy(&rep);
    cf_cli_fini(&cli);
    return rc;
}

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

typedef enum { S_STR, S_INT, S_DATE } s_type_t;

typedef struct {
    const char *opt;        /* command-line option, "valid-until" */
    const char *metavar;
    const char *key;        /* the event data's key, "valid_until" */
    s_type_t type;
    const char *help;
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
     {{"reason", "TEXT", "reason", S_STR, "why, in words the member reads"}}},
    {"request-info", "info.requested", "CLAIM", "Ask the member for more information (info.requested).",
     "  claimctl request-info 01JDX3M4QK8Z6V1N2B3C4D5E6F --text 'Please send the invoice' --as hanne\n",
     {{"text", "TEXT", "text", S_STR, "what the member is asked"}}},
    {"guarantee", "guarantee.issued", "CLAIM", "Issue a payment guarantee for an approved claim (guarantee.issued).",
     "  claimctl guarantee 01JDX3M4QK8Z6V1N2B3C4D5E6F --amount 150000 --provider 'Fysio Nord' \\\n"
     "      --valid-until 2027-02-28 --as hanne\n",
     {{"amount", "ØRE", "amount", S_INT, "the amount guaranteed, in øre (150000 = 1,500.00 kr)"},
      {"provider", "P", "provider", S_STR, "the provider the guarantee is for"},
      {"valid-until", "YYYY-MM-DD", "valid_until", S_DATE, "the last day the guarantee holds"}}},
    {"refer-network", "network.referred", "CLAIM", "Refer an approved claim to a provider in the insurer's network (network.referred).",
     "  claimctl refer-network 01JDX3M4QK8Z6V1N2B3C4D5E6F --provider 'Klinik Øst' --as hanne\n",
     {{"provider", "P", "provider", S_STR, "the network provider"}}},
    {"answer", "inquiry.answered", "INQUIRY", "Answer a member's inquiry (inquiry.answered).",
     "  claimctl answer 01JDX4A9R2T7W3Y5Z8B1C4D6E9 --text 'Your claim is with a handler.' --as hanne\n",
     {{"text", "TEXT", "text", S_STR, "the answer"}}},
    {"uphold", "complaint.upheld", "CLAIM", "Uphold a complaint: the claim goes back to approved (complaint.upheld; supervisors).",
     "  claimctl uphold 01JDX3M4QK8Z6V1N2B3C4D5E6F --as sofie\n", {{0}}},
    {"reject", "complaint.rejected", "CLAIM", "Reject a complaint, with the reason (complaint.rejected; supervisors).",
     "  claimctl reject 01JDX3M4QK8Z6V1N2B3C4D5E6F --reason 'the policy excludes it' --as sofie\n",
     {{"reason", "TEXT", "reason", S_STR, "why, in words the member reads"}}},
};

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
    msgpack_unpacked rep;
    msgpack_unpacked_init(&rep);
    int rc = cf_cli_call(cli, &req, &rep);
    if (rc == 0) {
        const msgpack_object *c = cf_mp_get(&rep.data, "claim");
        if (!c) {
            rc = cf_cli_fail(CF_EXIT_CONNECT, "send: claimflowd's reply has no claim");
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
        opts[nopts] = (cf_opt_t){f->opt, f->metavar, f->help, CF_OPT_STR, &values[nopts], true};
    }
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, opts, nopts, argc, argv);
    if (rc >= 0)
        return rc;

    msgpack_object_kv kv[S_MAXFIELDS];
    for (size_t i = 0; i < nopts; i++) {
        const s_field_t *f = &d->fields[i];
        kv[i].key = cf_mp_str(f->key);
        int64_t n;
        int y;
        unsigned m, day;
        switch (f->type) {
        case S_INT:
            if (!s_integer(values[i], &n)) {
                rc = cf_cli_usage_error(&cli, "--%s: '%s' is not a whole number of øre", f->opt, values[i]);
                goto out;
            }
            kv[i].val = cf_mp_int(n);
            break;
        case S_DATE:
            if (cf_date_parse(values[i], strlen(values[i]), &y, &m, &day) != 0 ||
                strlen(values[i]) != 10) {
                rc = cf_cli_usage_error(&cli, "--%s: '%s' is not a date (YYYY-MM-DD)", f->opt, values[i]);
                goto out;
            }
            kv[i].val = cf_mp_str(values[i]);
            break;
        case S_STR:
            if (!*values[i]) {
                rc = cf_cli_usage_error(&cli, "--%s must not be empty", f->opt);
                goto out;
            }
            kv[i].val = cf_mp_str(values[i]);
            break;
        }
    }
    rc = s_send(&cli, cli.args[0], d->event, kv, (uint32_t)nopts);
out:
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
        "      provider='Fysio Nord' valid_until=2027-02-28 --id retry-safe-42 --as hanne\n",
        CF_CO_DAEMON | CF_CO_JSON | CF_CO_ID, 2, -1};
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    uint32_t n = (uint32_t)cli.nargs - 2;
    msgpack_object_kv *kv = calloc(n ? n : 1, sizeof *kv);
    if (!kv) {
        rc = cf_cli_fail(CF_EXIT_REFUSED, "out of memory");
        goto out;
    }
    for (uint32_t i = 0; i < n; i++) {
        char *a = cli.args[2 + i], *eq = strchr(a, '=');
        if (!eq || eq == a) {
            rc = cf_cli_usage_error(&cli, "'%s' is not KEY=VALUE", a);
            goto out_kv;
        }
        /* The key is a prefix of an argv string: cut it there (argv is ours). */
        *eq = '\0';
        for (uint32_t j = 0; j < i; j++)
            if (cf_mp_streq(&kv[j].key, a)) {
                rc = cf_cli_usage_error(&cli, "key '%s' given twice", a);
                goto out_kv;
            }
        const char *v = eq + 1;
        int64_t num;
        kv[i].key = cf_mp_str(a);
        if (s_integer(v, &num))
            kv[i].val = cf_mp_int(num);
        else if (strcmp(v, "true") == 0 || strcmp(v, "false") == 0)
            kv[i].val = cf_mp_bool(v[0] == 't');
        else
            kv[i].val = cf_mp_str(v);
    }
    rc = s_send(&cli, cli.args[0], cli.args[1], kv, n);
out_kv:
    free(kv);
out:
    cf_cli_fini(&cli);
    return rc;
}

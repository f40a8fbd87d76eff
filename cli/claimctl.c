/* claimctl: the operators' command line.  A table of commands; each command
 * parses its own options (cmd_*.c) and returns the exit code. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} s_command_t;

static const s_command_t s_commands[] = {
    {"workflow", cf_cmd_workflow, "validate, show or draw workflow definitions"},
    {"calendar", cf_cmd_calendar, "public holidays and business-day arithmetic"},
    {"queue", cf_cmd_queue, "open claims, most urgent first (breached SLAs, then soonest due)"},
    {"show", cf_cmd_show, "one claim: data, state, flags, timers, documents, last events"},
    {"history", cf_cmd_history, "a claim's whole history, one event a line"},
    {"document", cf_cmd_document, "a claim's document into a file, in ranges, SHA-256 checked"},
    {"approve", cf_cmd_decide, "approve a claim in review (decision.approved)"},
    {"deny", cf_cmd_decide, "deny a claim in review, with a reason (decision.denied)"},
    {"request-info", cf_cmd_decide, "ask the member for more information (info.requested)"},
    {"guarantee", cf_cmd_decide, "issue a payment guarantee (guarantee.issued)"},
    {"refer-network", cf_cmd_decide, "refer to a network provider (network.referred)"},
    {"answer", cf_cmd_decide, "answer an inquiry (inquiry.answered)"},
    {"uphold", cf_cmd_decide, "uphold a complaint (complaint.upheld)"},
    {"reject", cf_cmd_decide, "reject a complaint, with a reason (complaint.rejected)"},
    {"reconsider", cf_cmd_reconsider, "answer a reconsideration: --upheld or --changed"},
    {"settle", cf_cmd_decide, "record an invoice's payment (settlement.paid)"},
    {"reject-settlement", cf_cmd_decide, "refuse an invoice, with a reason (settlement.rejected)"},
    {"close", cf_cmd_decide, "close an open claim, with a reason (claim.closed)"},
    {"assign", cf_cmd_assign, "give a claim an owner (--to OP) or none (--release)"},
    {"take", cf_cmd_take, "take an unowned claim for yourself"},
    {"send", cf_cmd_send, "send any event to a claim, with KEY=VALUE data"},
    {"create", cf_cmd_create, "record a claim a member reported by phone (--by, --reference)"},
    {"consent", cf_cmd_consent, "record a consent given or withdrawn by phone (--by, --reference)"},
    {"timers", cf_cmd_timers, "pending timers, soonest first"},
    {"stats", cf_cmd_stats, "claims per state, breached SLAs, pending timers"},
    {"watch", cf_cmd_watch, "print transitions live as they are committed"},
    {"cluster", cf_cmd_cluster, "each node of a cluster: role, applied batches, lag, epoch"},
    {"export", cf_cmd_export_any, "every claim as JSON lines; with --member, everything held about one member"},
    {"backup", cf_cmd_backup, "a consistent, compacted copy of the live store"},
    {"representation", cf_cmd_representation, "who may act for a member: add, revoke, list (handlers, supervisors)"},
    {"audit", cf_cmd_audit, "the access log: who read which claims (auditors, supervisors)"},
    {"purge", cf_cmd_purge, "erase the personal data of claims closed before a date (supervisors)"},
    {"keygen", cf_cmd_keygen, "make a CURVE key pair: NAME.key (secret, 0600) and NAME.pub"},
};

/* Options before the command set the environment the commands take their
 * defaults from, so `claimctl --as hanne queue` and `CLAIMFLOW_OPERATOR=hanne
 * claimctl queue` are one thing, and an option after the command wins. */
static const struct {
    const char *opt, *env;
} s_globals[] = {
    {"endpoint", "CLAIMFLOW_ENDPOINT"},   {"events", "CLAIMFLOW_EVENTS"},
    {"as", "CLAIMFLOW_OPERATOR"},         {"workflows", "CLAIMFLOW_WORKFLOWS"},
    {"purpose", "CLAIMFLOW_PURPOSE"},
    {"calendar", "CLAIMFLOW_CALENDAR"},   {"timeout", "CLAIMFLOW_TIMEOUT"},
    {"key", "CLAIMFLOW_KEY"},             {"server-key", "CLAIMFLOW_SERVER_KEY"},
};

/* Consume leading --name VALUE / --name=VALUE global options; the index of
 * the first other argument, or -1 after a usage error. */
static int s_globals_apply(int argc, char **argv)
{
    int i = 1;
    while (i < argc && strncmp(argv[i], "--", 2) == 0 && argv[i][2]) {
        const char *name = argv[i] + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        size_t g = 0;
        while (g < sizeof s_globals / sizeof s_globals[0] &&
               !(strlen(s_globals[g].opt) == n && strncmp(s_globals[g].opt, name, n) == 0))
            g++;
        if (g == sizeof s_globals / sizeof s_globals[0])
            break;                      /* --help, or not a global option */
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
        if (!value) {
            fprintf(stderr, "claimctl: --%s needs a value\n", s_globals[g].opt);
            return -1;
        }
        setenv(s_globals[g].env, value, 1);
        i += eq ? 1 : 2;
    }
    return i;
}

static void s_usage(FILE *out)
{
    fprintf(out, "usage: claimctl [GLOBAL OPTIONS] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        fprintf(out, "  %-14s %s\n", s_commands[i].name, s_commands[i].summary);
    fprintf(out, "\nglobal options (before COMMAND; the same option after COMMAND wins):\n"
                 "  --endpoint URL[,URL...] --events URL[,URL...] --as OPERATOR --timeout SECONDS\n"
                 "  --workflows DIR --calendar NAME --key FILE --server-key KEY\n"
                 "\n'claimctl COMMAND --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    int first = s_globals_apply(argc, argv);
    if (first < 0) {
        s_usage(stderr);
        return CF_EXIT_USAGE;
    }
    argc -= first - 1;
    argv += first - 1;
    if (argc < 2) {
        s_usage(stderr);
        return CF_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        if (argc > 2) {
            for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
                if (strcmp(argv[2], s_commands[i].name) == 0) {
                    char help[] = "--help";
                    char *a[] = {argv[2], help, NULL};
                    return s_commands[i].run(2, a);
                }
        }
        s_usage(stdout);
        return CF_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof s_commands / sizeof s_commands[0]; i++)
        if (strcmp(argv[1], s_commands[i].name) == 0)
            return s_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "claimctl: unknown command '%s'\n", argv[1]);
    s_usage(stderr);
    return CF_EXIT_USAGE;
}

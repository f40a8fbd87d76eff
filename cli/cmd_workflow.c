/* cmd_workflow.c: claimctl workflow validate | show | dot.
 *
 * Thin front ends over cf_wf_load_file: validate prints the loader's
 * diagnostics as file:line:col: message (what editors and CI parse); show
 * prints the compiled model, not the YAML, so what it shows is what the
 * engine runs; dot draws the same model for Graphviz (docs/health_claim.svg is
 * made with it, see docs/workflows.md).
 *
 * validate takes a directory's files the way claimflowd reads the directory:
 * the file named calendars.yaml is the calendars file, every other one a
 * workflow, so `validate workflows/<all>.yaml` checks what the daemon loads;
 * and with a calendars file it checks each workflow's `calendar` against it,
 * which the daemon refuses to start without.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "cmd.h"
#include "workflow.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *args;
    const char *summary;
} s_sub_t;

static int s_validate(int argc, char **argv);
/* The calendar and the currency as the file says them: one name, or
 * "dk=dk,no=no" by member country. */
static void s_per_country(const cf_wf_t *wf, char *cal, size_t clen, char *cur, size_t ulen)
{
    bool one_cur = true;
    for (int i = 1; i < CF_COUNTRY_N; i++)
        one_cur = one_cur && wf->currency[i] == wf->currency[0];
    size_t cn = 0, un = 0;
    cal[0] = cur[0] = '\0';
    for (int i = 0; i < CF_COUNTRY_N; i++) {
        const char *code = cf_country_code((cf_country_t)i);
        if (!wf->calendar && cn < clen)
            cn += (size_t)snprintf(cal + cn, clen - cn, "%s%s=%s", i ? "," : "", code,
                                   wf->calendars[i]);
        if (!one_cur && un < ulen)
            un += (size_t)snprintf(cur + un, ulen - un, "%s%s=%s", i ? "," : "", code,
                                   cf_currency_code(wf->currency[i]));
    }
    if (wf->calendar)
        snprintf(cal, clen, "%s", wf->calendar);
    if (one_cur)
        snprintf(cur, ulen, "%s", cf_currency_code(wf->currency[0]));
}

static int s_show(int argc, char **argv);
static int s_dot(int argc, char **argv);

static const s_sub_t s_subs[] = {
    {"validate", s_validate, "[--calendars FILE] FILE...",
     "check workflow files, and the calendars file (calendars.yaml or --calendars FILE) "
     "their calendars must be in; every error as file:line:col: message"},
    {"show", s_show, "FILE", "print a workflow's states, events and timers as a table"},
    {"dot", s_dot, "FILE", "print a workflow as a Graphviz graph (claimctl workflow dot F | dot -Tsvg)"},
};
#define S_NSUBS (sizeof s_subs / sizeof s_subs[0])

static void s_usage(FILE *out)
{
    fprintf(out, "usage: claimctl workflow SUBCOMMAND [ARGS...]\n\nsubcommands:\n");
    for (size_t i = 0; i < S_NSUBS; i++)
        fprintf(out, "  %-8s %s\n           %s\n", s_subs[i].name, s_subs[i].args, s_subs[i].summary);
    fprintf(out, "\nThe workflow language is described in docs/workflows.md.\n");
}

static void s_sub_usage(const s_sub_t *s, FILE *out)
{
    fprintf(out, "usage: claimctl workflow %s %s\n  %s\n", s->name, s->args, s->summary);
}

static bool s_is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

/* Common argument handling: --help, no options, a file count in [min, max].
 * Returns -1 to go on, else the exit code. */
static int s_args(const s_sub_t *s, int argc, char **argv, int min, int max)
{
    for (int i = 1; i < argc; i++) {
        if (s_is_help(argv[i])) {
            s_sub_usage(s, stdout);
            return CF_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0' && strcmp(argv[i], "--") != 0) {
            fprintf(stderr, "claimctl workflow %s: unknown option '%s'\n", s->name, argv[i]);
            s_sub_usage(s, stderr);
            return CF_EXIT_USAGE;
        }
    }
    int nfiles = argc - 1;
    if (nfiles < min || (max >= 0 && nfiles > max)) {
        s_sub_usage(s, stderr);
        return CF_EXIT_USAGE;
    }
    return -1;
}

/* Load path; on failure print its diagnostics and return NULL. */
static cf_wf_t *s_load(const char *path)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    int rc = cf_wf_load_file(path, &wf, &d);
    cf_diags_print(&d, stderr);
    if (rc != 0 && d.n == 0)
        fprintf(stderr, "%s: cannot load: out of memory\n", path);
    cf_diags_clear(&d);
    return rc == 0 ? wf : NULL;
}

/* -------------------------------------------------------------- validate --- */

static bool s_is_calendars_file(const char *path)
{
    const char *base = strrchr(path, '/');
    return strcmp(base ? base + 1 : path, "calendars.yaml") == 0;
}

/* When a timer falls due, for a person: "after 2bd", "at guarantee_valid_until". */
static const char *s_timer_when(const cf_wf_t *wf, const cf_wf_timer_t *t, char *buf,
                                size_t len)
{
    char dur[32];
    if (t->at_field >= 0 && (size_t)t->at_field < wf->nfields)
        snprintf(buf, len, "at %s", wf->fields[t->at_field].name);
    else
        snprintf(buf, len, "after %s", cf_dur_format(t->after, dur, sizeof dur));
    return buf;
}

/* "claimctl workflow validate: <what>'<arg>'<after>", then the usage. */
static int s_validate_usage(const char *what, const char *arg, const char *after)
{
    fprintf(stderr, "claimctl workflow validate: %s%s%s\n", what, arg, after);
    s_sub_usage(&s_subs[0], stderr);
    return CF_EXIT_USAGE;
}

static bool s_cal_exists(void *ctx, const char *name)
{
    return cf_cal_find(ctx, name) != NULL;
}

/* Load the calendars file and say so; NULL (its errors printed) when it
 * does not load. */
static cf_cal_set_t *s_load_calendars(const char *path)
{
    cf_cal_set_t *cals = NULL;
    cf_diags_t d = {0};
    int rc = cf_cal_set_load_file(path, &cals, &d);
    cf_diags_print(&d, stderr);
    if (rc != 0 && d.n == 0)
        fprintf(stderr, "%s: cannot load: out of memory\n", path);
    cf_diags_clear(&d);
    if (rc != 0)
        return NULL;
    printf("%s: ok (calendars", path);
    for (size_t i = 0; i < cf_cal_count(cals); i++)
        printf("%s%s", i ? ", " : " ", cf_cal_name(cf_cal_at(cals, i)));
    printf(")\n");
    return cals;
}

static int s_validate(int argc, char **argv)
{
    const char *calfile = NULL;
    bool options = true;
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && s_is_help(a)) {
            s_sub_usage(&s_subs[0], stdout);
            return CF_EXIT_OK;
        }
        if (options && strcmp(a, "--") == 0) {
            options = false;
            continue;
        }
        bool flag = options && strcmp(a, "--calendars") == 0;
        if (flag && i + 1 == argc)
            return s_validate_usage("--calendars needs a file", "", "");
        if (options && !flag && a[0] == '-' && a[1] != '\0')
            return s_validate_usage("unknown option '", a, "'");
        if (flag || s_is_calendars_file(a)) {
            const char *f = flag ? argv[++i] : a;
            if (calfile && strcmp(calfile, f) != 0)
                return s_validate_usage("'", f, "' is a second calendars file: give one");
            calfile = f;
        } else {
            nfiles++;
        }
    }
    if (nfiles == 0 && !calfile) {
        s_sub_usage(&s_subs[0], stderr);
        return CF_EXIT_USAGE;
    }

    int rc = CF_EXIT_OK;
    cf_cal_set_t *cals = NULL;
    if (calfile && !(cals = s_load_calendars(calfile)))
        rc = CF_EXIT_REFUSED;
    options = true;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (options && strcmp(a, "--") == 0) {
            options = false;
            continue;
        }
        if (options && strcmp(a, "--calendars") == 0) {
            i++;
            continue;
        }
        if (s_is_calendars_file(a))
            continue;
        cf_wf_t *wf = s_load(a);
        if (!wf) {
            rc = CF_EXIT_REFUSED;
            continue;
        }
        cf_diags_t d = {0};
        if (cals && cf_wf_check_calendars(wf, a, calfile, s_cal_exists, cals, &d) != 0) {
            /* The daemon's check and words for the same refusal (engine.c). */
            cf_diags_print(&d, stderr);
            rc = CF_EXIT_REFUSED;
        } else {
            printf("%s: ok (workflow %s, version %lld, %zu states)\n", a, wf->name,
                   (long long)wf->version, wf->nstates);
        }
        cf_diags_clear(&d);
        cf_wf_destroy(&wf);
    }
    cf_cal_set_destroy(&cals);
    return rc;
}

/* ------------------------------------------------------------------ show --- */

static const char *s_target(const cf_wf_t *wf, int to)
{
    if (to == CF_WF_STAY)
        return "(stays)";
    if (to == CF_WF_PREVIOUS)
        return "$previous";
    return wf->states[to].name;
}

static void s_roles_str(unsigned roles, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned bit = 1; bit <= CF_ROLE_SYSTEM; bit <<= 1)
        if (roles & bit) {
            int w = snprintf(buf + used, len - used, "%s%s", used ? "," : "", cf_role_name(bit));
            if (w > 0 && (size_t)w < len - used)
                used += (size_t)w;
        }
}

static void s_flags_str(const cf_wf_t *wf, uint64_t set, uint64_t clear, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < wf->nflags; i++) {
        uint64_t bit = UINT64_C(1) << i;
        if (!((set | clear) & bit))
            continue;
        int w = snprintf(buf + used, len - used, "%s%s%s", used ? "," : "",
                         (clear & bit) ? "-" : "", wf->flags[i]);
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
    }
}

static const char *s_ftype_name(cf_wf_ftype_t t)
{
    static const char *const names[] = {
#define CF_XX(s, name) name,
        CF_FTYPE_MAP(CF_XX)
#undef CF_XX
    };
    return (size_t)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

static void s_fields_str(const cf_wf_field_t *f, size_t n, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        int w = snprintf(buf + used, len - used, "%s%s:%s%s", used ? "," : "", f[i].name,
                         s_ftype_name(f[i].type), f[i].required ? "!" : "");
        if (w > 0 && (size_t)w < len - used)
            used += (size_t)w;
    }
}

static void s_show_events(const cf_wf_t *wf, const cf_wf_event_t *ev, size_t n, const char *indent)
{
    if (n == 0)
        return;
    printf("%s%-20s %-18s %-18s %-14s %-26s %s\n", indent, "EVENT", "TO", "BY", "REQUIRES",
           "SETS", "DATA (! = required)");
    for (size_t i = 0; i < n; i++) {
        char roles[96], flags[256], data[512], req[256] = "";
        s_roles_str(ev[i].roles, roles, sizeof roles);
        s_flags_str(wf, ev[i].set_flags, ev[i].clear_flags, flags, sizeof flags);
        s_fields_str(ev[i].fields, ev[i].nfields, data, sizeof data);
        /* guards, then flags that must be set (flag) or clear (!flag) */
        size_t used = 0;
        if (ev[i].guards & CF_GUARD_CONSENT_VALID)
            used += (size_t)snprintf(req, sizeof req, "consent_valid");
        for (size_t f = 0; f < wf->nflags && used < sizeof req; f++) {
            uint64_t bit = UINT64_C(1) << f;
            if (!((ev[i].if_set | ev[i].if_clear) & bit))
                continue;
            int w = snprintf(req + used, sizeof req - used, "%s%s%s", used ? "," : "",
                             (ev[i].if_clear & bit) ? "!" : "", wf->flags[f]);
            used = w < 0 || (size_t)w >= sizeof req - used ? sizeof req : used + (size_t)w;
        }
        printf("%s%-20s %-18s %-18s %-14s %-26s %s\n", indent, ev[i].name,
               s_target(wf, ev[i].to), roles, req[0] ? req : "-",
               flags[0] ? flags : "-", data[0] ? data : "-");
    }
}

static int s_show(int argc, char **argv)
{
    int rc = s_args(&s_subs[1], argc, argv, 1, 1);
    if (rc >= 0)
        return rc;
    cf_wf_t *wf = s_load(argv[1]);
    if (!wf)
        return CF_EXIT_REFUSED;
    char roles[96];
    s_roles_str(wf->created_by, roles, sizeof roles);
    char cal[160], cur[64];
    s_per_country(wf, cal, sizeof cal, cur, sizeof cur);
    printf("workflow %s  version %lld  calendar %s  currency %s  created by %s\n", wf->name,
           (long long)wf->version, cal, cur, roles);
    if (wf->nfields) {
        printf("\ndata:\n");
        for (size_t i = 0; i < wf->nfields; i++) {
            const cf_wf_field_t *f = &wf->fields[i];
            printf("  %-16s %-10s %s", f->name, s_ftype_name(f->type),
                   f->required ? "required" : "optional");
            if (f->type == CF_FT_STRING)
                printf(", max %u bytes", (unsigned)f->max_len);
            for (size_t j = 0; j < f->nvalues; j++)
                printf("%s%s", j ? "|" : ", one of ", f->values[j]);
            printf("\n");
        }
    }
    printf("\nstates:\n");
    for (size_t s = 0; s < wf->nstates; s++) {
        const cf_wf_state_t *st = &wf->states[s];
        printf("\n  %s%s%s\n", st->name, st->initial ? "  (initial)" : "",
               st->final ? "  (final)" : "");
        for (size_t i = 0; i < st->nautos; i++) {
            const cf_wf_auto_t *a = &st->autos[i];
            printf("    auto -> %s", wf->states[a->to].name);
            if (a->when_field >= 0) {
                printf("  when %s in ", wf->fields[a->when_field].name);
                for (size_t j = 0; j < a->nwhen_in; j++)
                    printf("%s%s", j ? "|" : "", a->when_in[j]);
            }
            if (a->guards & CF_GUARD_CONSENT_VALID)
                printf("  requires consent_valid");
            printf("\n");
        }
        if (st->owner_required)
            printf("    owner required\n");
        for (size_t i = 0; i < st->ntimers; i++) {
            char dur[80];
            printf("    timer %-18s %-11s sends %s%s\n", st->timers[i].name,
                   s_timer_when(wf, &st->timers[i], dur, sizeof dur), st->timers[i].event,
                   st->timers[i].keep ? "  (kept across a pause)" : "");
        }
        s_show_events(wf, st->events, st->nevents, "    ");
    }
    if (wf->nany) {
        printf("\nany (accepted in every non-final state):\n");
        s_show_events(wf, wf->any, wf->nany, "    ");
    }
    if (wf->nrefusals) {
        printf("\nrefusals:\n");
        for (size_t i = 0; i < wf->nrefusals; i++)
            printf("  %s: %s\n", wf->refusals[i].event, wf->refusals[i].message);
    }
    cf_wf_destroy(&wf);
    return CF_EXIT_OK;
}

/* ------------------------------------------------------------------- dot --- */

/* Print s as a DOT string body (quotes and backslashes escaped). */
static void s_dot_str(const char *s)
{
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            putchar('\\');
        putchar(*s);
    }
}

static void s_dot_edge(const cf_wf_t *wf, const char *from, const cf_wf_event_t *ev)
{
    char roles[96];
    s_roles_str(ev->roles, roles, sizeof roles);
    const char *to = ev->to == CF_WF_STAY ? from
                   : ev->to == CF_WF_PREVIOUS ? "$previous" : wf->states[ev->to].name;
    printf("  \"%s\" -> \"%s\" [label=\"%s\\n(%s)%s\"%s];\n", from, to, ev->name, roles,
           (ev->guards & CF_GUARD_CONSENT_VALID) ? "\\n[consent_valid]" : "",
           ev->to == CF_WF_STAY ? ", style=dotted" : "");
}

static int s_dot(int argc, char **argv)
{
    int rc = s_args(&s_subs[2], argc, argv, 1, 1);
    if (rc >= 0)
        return rc;
    cf_wf_t *wf = s_load(argv[1]);
    if (!wf)
        return CF_EXIT_REFUSED;
    bool previous = false;
    printf("digraph \"%s\" {\n", wf->name);
    printf("  label=\"%s (version %lld)\"; labelloc=t; rankdir=TB;\n", wf->name,
           (long long)wf->version);
    printf("  node [shape=box, style=rounded, fontname=\"Helvetica\", fontsize=11];\n");
    printf("  edge [fontname=\"Helvetica\", fontsize=9];\n");
    printf("  \"__start\" [shape=point, width=0.15];\n");
    printf("  \"__start\" -> \"%s\";\n", wf->states[wf->initial].name);
    for (size_t s = 0; s < wf->nstates; s++) {
        const cf_wf_state_t *st = &wf->states[s];
        printf("  \"%s\" [label=\"%s", st->name, st->name);
        if (st->owner_required)
            printf("\\nowner required");
        for (size_t i = 0; i < st->ntimers; i++) {
            char dur[80];
            printf("\\ntimer %s: %s%s", s_timer_when(wf, &st->timers[i], dur, sizeof dur),
                   st->timers[i].event, st->timers[i].keep ? " (kept)" : "");
        }
        printf("\"%s];\n", st->final ? ", peripheries=2, style=\"rounded,bold\"" : "");
    }
    for (size_t s = 0; s < wf->nstates; s++) {
        const cf_wf_state_t *st = &wf->states[s];
        for (size_t i = 0; i < st->nautos; i++) {
            const cf_wf_auto_t *a = &st->autos[i];
            printf("  \"%s\" -> \"%s\" [style=dashed, label=\"auto", st->name,
                   wf->states[a->to].name);
            if (a->when_field >= 0) {
                printf("\\nwhen %s in ", wf->fields[a->when_field].name);
                for (size_t j = 0; j < a->nwhen_in; j++)
                    printf("%s%s", j ? "|" : "", a->when_in[j]);
            }
            if (a->guards & CF_GUARD_CONSENT_VALID)
                printf("\\n[consent_valid]");
            printf("\"];\n");
        }
        /* events that stay share one loop, so their labels do not overlap */
        bool stays = false;
        for (size_t i = 0; i < st->nevents; i++) {
            previous = previous || st->events[i].to == CF_WF_PREVIOUS;
            if (st->events[i].to != CF_WF_STAY)
                s_dot_edge(wf, st->name, &st->events[i]);
        }
        for (size_t i = 0; i < st->nevents; i++) {
            const cf_wf_event_t *ev = &st->events[i];
            if (ev->to != CF_WF_STAY)
                continue;
            char roles[96];
            s_roles_str(ev->roles, roles, sizeof roles);
            if (!stays)
                printf("  \"%s\" -> \"%s\" [style=dotted, label=\"", st->name, st->name);
            printf("%s%s (%s)", stays ? "\\n" : "", ev->name, roles);
            stays = true;
        }
        if (stays)
            printf("\"];\n");
    }
    if (wf->nany) {
        printf("  \"__any\" [label=\"any non-final state\", style=\"rounded,dashed\"];\n");
        for (size_t i = 0; i < wf->nany; i++) {
            previous = previous || wf->any[i].to == CF_WF_PREVIOUS;
            s_dot_edge(wf, "__any", &wf->any[i]);
        }
    }
    if (previous)
        printf("  \"$previous\" [label=\"(the state before)\", shape=plaintext];\n");
    if (wf->nrefusals) {
        printf("  \"__refusals\" [shape=note, fontsize=9, label=\"");
        for (size_t i = 0; i < wf->nrefusals; i++) {
            printf("%s refused: ", wf->refusals[i].event);
            s_dot_str(wf->refusals[i].message);
            printf("\\l");
        }
        printf("\"];\n");
    }
    printf("}\n");
    cf_wf_destroy(&wf);
    return CF_EXIT_OK;
}

/* ------------------------------------------------------------------ main --- */

int cf_cmd_workflow(int argc, char **argv)
{
    if (argc < 2) {
        s_usage(stderr);
        return CF_EXIT_USAGE;
    }
    if (s_is_help(argv[1])) {
        s_usage(stdout);
        return CF_EXIT_OK;
    }
    for (size_t i = 0; i < S_NSUBS; i++)
        if (strcmp(argv[1], s_subs[i].name) == 0)
            return s_subs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "claimctl workflow: unknown subcommand '%s'\n", argv[1]);
    s_usage(stderr);
    return CF_EXIT_USAGE;
}

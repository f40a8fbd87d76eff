/* test_workflow.c: the workflow loader - the shipped workflows compile to the
 * model other modules rely on, and every error class is reported at its exact
 * place with a message naming what is wrong. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "cf_err.h"
#include "cf_test.h"
#include "workflow.h"

static char s_path[1024];

static const char *s_fixture(const char *name)
{
    snprintf(s_path, sizeof s_path, "%s/tests/data/workflows/%s", cf_test_srcdir(), name);
    return s_path;
}

static cf_wf_t *s_load_shipped(const char *name)
{
    char path[1024];
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    snprintf(path, sizeof path, "%s/workflows/%s", cf_test_srcdir(), name);
    int rc = cf_wf_load_file(path, &wf, &d);
    if (rc != 0)
        cf_diags_print(&d, stderr);
    cf_diags_clear(&d);
    CF_ASSERT_INT_EQ(rc, 0);
    CF_ASSERT(wf != NULL);
    return wf;
}

static int s_load_buf(const char *text, cf_diags_t *d)
{
    cf_wf_t *wf = NULL;
    int rc = cf_wf_load_buffer("buf.yaml", text, strlen(text), &wf, d);
    if (rc == 0)
        CF_ASSERT(wf != NULL);
    else
        CF_ASSERT(wf == NULL);
    cf_wf_destroy(&wf);
    return rc;
}

/* ------------------------------------------------------------ shipped --- */

static void test_health_claim_model(void)
{
    cf_wf_t *wf = s_load_shipped("health_claim.yaml");
    CF_ASSERT_STR_EQ(wf->name, "health_claim");
    CF_ASSERT_INT_EQ(wf->version, 4);
    /* calendar and currency by the member's country */
    CF_ASSERT(wf->calendar == NULL);
    CF_ASSERT_STR_EQ(wf->calendars[CF_COUNTRY_DK], "dk");
    CF_ASSERT_STR_EQ(wf->calendars[CF_COUNTRY_NO], "no");
    CF_ASSERT_INT_EQ(wf->first_country, CF_COUNTRY_DK);
    CF_ASSERT_INT_EQ(wf->currency[CF_COUNTRY_DK], CF_CURRENCY_DKK);
    CF_ASSERT_INT_EQ(wf->currency[CF_COUNTRY_NO], CF_CURRENCY_NOK);
    CF_ASSERT_INT_EQ(wf->created_by, CF_ROLE_MEMBER);
    CF_ASSERT_INT_EQ(wf->nstates, 22);
    CF_ASSERT_STR_EQ(wf->states[wf->initial].name, "reported");
    CF_ASSERT(wf->source != NULL && wf->source_len > 100);
    CF_ASSERT_INT_EQ(memcmp(wf->source, "# health_claim", 14), 0);

    static const char *const finals[] = {"settled", "closed", "withdrawn"};
    for (size_t i = 0; i < 3; i++)
        CF_ASSERT(wf->states[cf_wf_state_find(wf, finals[i])].final);
    CF_ASSERT(!wf->states[cf_wf_state_find(wf, "in_treatment")].final);
    CF_ASSERT_INT_EQ(cf_wf_state_find(wf, "nope"), -1);

    /* data */
    CF_ASSERT_INT_EQ(wf->nfields, 6);
    CF_ASSERT(wf->fields[cf_wf_field_find(wf, "guarantee_amount")].internal);
    CF_ASSERT(wf->fields[cf_wf_field_find(wf, "guarantee_valid_until")].internal);
    CF_ASSERT(wf->fields[cf_wf_field_find(wf, "appeal_outcome")].internal);
    int m = cf_wf_field_find(wf, "member"), t = cf_wf_field_find(wf, "treatment");
    CF_ASSERT_INT_EQ(wf->fields[m].type, CF_FT_PERSON_ID);
    CF_ASSERT(wf->fields[m].required);
    CF_ASSERT_INT_EQ(wf->fields[t].type, CF_FT_ENUM);
    CF_ASSERT_INT_EQ(wf->fields[t].nvalues, 6);
    CF_ASSERT_STR_EQ(wf->fields[t].values[1], "chiropractic");
    CF_ASSERT_INT_EQ(wf->fields[cf_wf_field_find(wf, "description")].max_len, 2000);

    /* reported: the referral table, then the fallback */
    const cf_wf_state_t *rep = &wf->states[wf->initial];
    CF_ASSERT_INT_EQ(rep->nautos, 2);
    CF_ASSERT_STR_EQ(wf->states[rep->autos[0].to].name, "awaiting_referral");
    CF_ASSERT_INT_EQ(rep->autos[0].when_field, t);
    CF_ASSERT_INT_EQ(rep->autos[0].nwhen_in, 5);
    CF_ASSERT_STR_EQ(wf->states[rep->autos[1].to].name, "awaiting_consent");
    CF_ASSERT_INT_EQ(rep->autos[1].when_field, -1);

    /* in_review timers and the event the state accepts */
    int ir = cf_wf_state_find(wf, "in_review");
    const cf_wf_state_t *st = &wf->states[ir];
    CF_ASSERT_INT_EQ(st->ntimers, 2);
    CF_ASSERT_STR_EQ(st->timers[0].name, "decision_warning");
    CF_ASSERT_INT_EQ(st->timers[0].after.n, 1);
    CF_ASSERT_INT_EQ(st->timers[0].after.unit, CF_DUR_BDAYS);
    CF_ASSERT_STR_EQ(st->timers[0].event, "sla.warning");
    CF_ASSERT_INT_EQ(st->timers[1].after.n, 2);
    CF_ASSERT_STR_EQ(st->timers[1].event, "sla.breached");
    const cf_wf_event_t *ev = cf_wf_event_find(wf, ir, "sla.warning", 11);
    CF_ASSERT(ev != NULL);
    CF_ASSERT_INT_EQ(ev->to, CF_WF_STAY);
    CF_ASSERT_INT_EQ(ev->roles, CF_ROLE_SYSTEM);
    CF_ASSERT_INT_EQ(ev->set_flags, UINT64_C(1) << cf_wf_flag_find(wf, "sla.warning"));
    CF_ASSERT_INT_EQ(wf->nflags, 6);
    ev = cf_wf_event_find(wf, ir, "decision.denied", 15);
    CF_ASSERT_INT_EQ(ev->nfields, 1);
    CF_ASSERT_STR_EQ(ev->fields[0].name, "reason");
    CF_ASSERT(ev->fields[0].required);
    CF_ASSERT_INT_EQ(ev->line, 95);
    CF_ASSERT_INT_EQ(ev->col, 7);
    /* a prefix of a name is not the name */
    CF_ASSERT(cf_wf_event_find(wf, ir, "sla.warning", 3) == NULL);

    /* any: in every non-final state, never in a final one */
    CF_ASSERT_INT_EQ(wf->nany, 4);
    ev = cf_wf_event_find(wf, ir, "consent.withdrawn", 17);
    CF_ASSERT(ev == &wf->any[0]);
    CF_ASSERT(cf_wf_event_find(wf, cf_wf_state_find(wf, "closed"), "consent.withdrawn", 17) == NULL);

    /* $previous and the guard */
    int cw = cf_wf_state_find(wf, "consent_withdrawn");
    ev = cf_wf_event_find(wf, cw, "consent.given", 13);
    CF_ASSERT_INT_EQ(ev->to, CF_WF_PREVIOUS);
    CF_ASSERT_INT_EQ(ev->guards, CF_GUARD_CONSENT_VALID);

    /* approved: the guarantee's data */
    ev = cf_wf_event_find(wf, cf_wf_state_find(wf, "approved"), "guarantee.issued", 16);
    CF_ASSERT_INT_EQ(ev->nfields, 3);
    CF_ASSERT_INT_EQ(ev->fields[0].type, CF_FT_MONEY);
    CF_ASSERT(ev->fields[0].min.set && ev->fields[0].min.value == 1);
    CF_ASSERT_INT_EQ(ev->fields[2].type, CF_FT_DATE);
    CF_ASSERT(ev->fields[2].not_before.set && ev->fields[2].not_before.n == 0);
    CF_ASSERT(ev->fields[2].not_after.n == 1 && ev->fields[2].not_after.unit == CF_DUR_YEARS);
    CF_ASSERT_INT_EQ(ev->record[0], cf_wf_field_find(wf, "guarantee_amount"));
    CF_ASSERT_INT_EQ(ev->record[2], cf_wf_field_find(wf, "guarantee_valid_until"));

    /* the guarantee's expiry at its date; the settlement's bound */
    st = &wf->states[cf_wf_state_find(wf, "guarantee_issued")];
    CF_ASSERT_STR_EQ(st->timers[0].name, "guarantee_expiry");
    CF_ASSERT_INT_EQ(st->timers[0].at_field, cf_wf_field_find(wf, "guarantee_valid_until"));
    ev = cf_wf_event_find(wf, cf_wf_state_find(wf, "invoice_received"), "settlement.paid", 15);
    CF_ASSERT_STR_EQ(ev->fields[0].max.claim_name, "guarantee_amount");
    CF_ASSERT_INT_EQ(ev->fields[0].max.except, CF_ROLE_SUPERVISOR);

    /* denied: the complaint window, 6 months, kept across a pause */
    st = &wf->states[cf_wf_state_find(wf, "denied")];
    CF_ASSERT_INT_EQ(st->ntimers, 1);
    CF_ASSERT_INT_EQ(st->timers[0].after.n, 6);
    CF_ASSERT_INT_EQ(st->timers[0].after.unit, CF_DUR_MONTHS);
    CF_ASSERT(st->timers[0].keep);
    /* complaint_review needs an owner */
    CF_ASSERT(wf->states[cf_wf_state_find(wf, "complaint_review")].owner_required);
    CF_ASSERT_STR_HAS(cf_wf_refusal_in(wf, cf_wf_state_find(wf, "guarantee_expired"),
                                       "treatment.started", 17), "expired");

    CF_ASSERT_STR_HAS(cf_wf_refusal(wf, "treatment.started", 17), "pre-approved");
    CF_ASSERT(cf_wf_refusal(wf, "decision.approved", 17) == NULL);
    cf_wf_destroy(&wf);
    CF_ASSERT(wf == NULL);
    cf_wf_destroy(&wf);  /* idempotent */
    cf_wf_destroy(NULL);
}

static void test_inquiry_model(void)
{
    cf_wf_t *wf = s_load_shipped("inquiry.yaml");
    CF_ASSERT_STR_EQ(wf->name, "inquiry");
    CF_ASSERT_INT_EQ(wf->nstates, 3);
    CF_ASSERT_STR_EQ(wf->states[wf->initial].name, "open");
    CF_ASSERT_INT_EQ(wf->fields[cf_wf_field_find(wf, "claim")].type, CF_FT_CLAIM);
    CF_ASSERT_INT_EQ(wf->fields[cf_wf_field_find(wf, "text")].max_len, 4000);
    const cf_wf_state_t *open = &wf->states[wf->initial];
    CF_ASSERT_INT_EQ(open->ntimers, 2);
    CF_ASSERT_INT_EQ(open->timers[0].after.unit, CF_DUR_DAYS);
    CF_ASSERT_INT_EQ(open->timers[0].after.n, 1);
    CF_ASSERT_STR_EQ(open->timers[0].event, "sla.warning");
    CF_ASSERT_INT_EQ(open->timers[1].after.unit, CF_DUR_DAYS);
    CF_ASSERT_INT_EQ(open->timers[1].after.n, 2);
    CF_ASSERT_STR_EQ(open->timers[1].event, "sla.breached");
    CF_ASSERT(wf->states[cf_wf_state_find(wf, "answered")].final);
    cf_wf_destroy(&wf);
}

/* ----------------------------------------------------------- fixtures --- */

/* One fixture per error class: the number of errors, and the first error's
 * place and a distinctive part of its message. */
static const struct {
    const char *file;
    size_t nerr;
    uint32_t line, col;
    const char *msg;
} s_cases[] = {
    {"unknown_key.yaml", 2, 4, 1, "unknown key 'colour' in the workflow"},
    {"wrong_type.yaml", 3, 2, 10, "version must be an integer >= 1"},
    {"duplicates.yaml", 4, 6, 3, "duplicate field 'note' (first at line 5)"},
    {"bad_target.yaml", 1, 8, 16, "target state 'nowhere' does not exist"},
    {"unreachable.yaml", 1, 10, 3, "state 'island' is unreachable from the initial state 'a'"},
    {"dead_end.yaml", 1, 10, 3, "state 'stuck' is not final and has no way out"},
    {"no_initial.yaml", 1, 4, 1, "no initial state"},
    {"two_initial.yaml", 1, 9, 3, "more than one initial state ('a' and 'b')"},
    {"unknown_role.yaml", 1, 8, 32, "unknown role 'doctor'"},
    {"unknown_guard.yaml", 1, 8, 44, "unknown guard 'is_paid'"},
    {"bad_duration.yaml", 1, 8, 20, "bad duration '3 days' for timer 'due'"},
    {"timer_send.yaml", 2, 8, 30, "timer 'due' sends 'go', which state 'a' does not accept from system"},
    {"when_value.yaml", 2, 12, 41, "'huge' is not a value of enum field 'kind'"},
    {"too_many_flags.yaml", 1, 8, 344, "more than 64 flags: 'f64'"},
    {"syntax.yaml", 1, 9, 3, "YAML syntax error: did not find expected ',' or '}'"},
    {"tabs.yaml", 1, 6, 1, "tab character; indent with spaces"},
    {"empty.yaml", 1, 1, 1, "the file is empty"},
    {"comments_only.yaml", 1, 1, 1, "the file is empty"},
    {"not_mapping.yaml", 1, 1, 1, "the file is not a mapping"},
    {"deep.yaml", 2, 8, 65, "an enum value must be a single value, not a list"},
    {"anchors.yaml", 2, 8, 11, "anchors and aliases are not supported"},
};

static void test_fixtures(void)
{
    for (size_t i = 0; i < sizeof s_cases / sizeof s_cases[0]; i++) {
        cf_wf_t *wf = NULL;
        cf_diags_t d = {0};
        int rc = cf_wf_load_file(s_fixture(s_cases[i].file), &wf, &d);
        if (d.n != s_cases[i].nerr || d.n == 0 || d.v[0].line != s_cases[i].line ||
            d.v[0].col != s_cases[i].col || !strstr(d.v[0].message, s_cases[i].msg)) {
            fprintf(stderr, "fixture %s:\n", s_cases[i].file);
            cf_diags_print(&d, stderr);
        }
        CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
        CF_ASSERT(wf == NULL);
        CF_ASSERT_INT_EQ(d.n, s_cases[i].nerr);
        CF_ASSERT_INT_EQ(d.v[0].line, s_cases[i].line);
        CF_ASSERT_INT_EQ(d.v[0].col, s_cases[i].col);
        CF_ASSERT_STR_HAS(d.v[0].message, s_cases[i].msg);
        CF_ASSERT_STR_HAS(d.v[0].file, s_cases[i].file);
        cf_diags_clear(&d);
    }
}

/* The rest of the multi-error fixtures: every error, in order. */
typedef struct {
    uint32_t line, col;
    const char *msg;
} s_want_t;

static void s_expect(const char *file, const s_want_t *want, size_t n)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    int rc = cf_wf_load_file(s_fixture(file), &wf, &d);
    if (d.n != n)
        cf_diags_print(&d, stderr);
    CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, n);
    for (size_t i = 0; i < n; i++) {
        CF_ASSERT_INT_EQ(d.v[i].line, want[i].line);
        CF_ASSERT_INT_EQ(d.v[i].col, want[i].col);
        CF_ASSERT_STR_HAS(d.v[i].message, want[i].msg);
    }
    cf_diags_clear(&d);
}

#define S_EXPECT(file, ...)                                                    \
    do {                                                                       \
        static const s_want_t w_[] = {__VA_ARGS__};                            \
        s_expect(file, w_, sizeof w_ / sizeof w_[0]);                          \
    } while (0)

static void test_every_error_reported(void)
{
    S_EXPECT("after_errors.yaml",
             {12, 12, "state 'a': owner must be required or optional, not 'sometimes'"},
             {14, 16, "timer 't1': 'at' must name a date field of the claim's data, not 'nowhere'"},
             {15, 23, "timer 't2' has both 'after' and 'at'"},
             {16, 46, "timer 't3': on_pause must be restart or keep, not 'freeze'"},
             {23, 73, "unknown role 'boss'"},
             {24, 43, "bad date bound 'yesterday' for 'not_before' (expected today, or today "
                      "plus or minus days, weeks, months or years: +1y, -30d, +6mo)"},
             {24, 65, "bad date bound '+1bd' for 'not_after'"},
             {25, 32, "field 'word': min applies only to integer and money fields"},
             {26, 41, "'max' of field 'x': 'nope' is not a field of the claim's data"},
             {27, 35, "field 'y': min is above max"},
             {28, 26, "event 'go' records into claim field 'plain', which is not internal"},
             {28, 33, "event 'go' records 'missing', which is not a field of its data"},
             {28, 58, "event 'go' records field 'until' into claim field 'note' of another type"});
    S_EXPECT("duplicates.yaml",
             {6, 3, "duplicate field 'note'"},
             {12, 7, "duplicate timer 't1' (first at line 11)"},
             {16, 7, "duplicate event 'go' (first at line 15)"},
             {18, 3, "duplicate state 'a' (first at line 8)"});
    S_EXPECT("unknown_key.yaml",
             {4, 1, "unknown key 'colour'"},
             {9, 33, "unknown key 'too' in event 'go' (expected: to, by, requires, data, set, clear, scope, if_set, if_clear, record)"});
    S_EXPECT("wrong_type.yaml",
             {2, 10, "version must be an integer"},
             {7, 12, "final must be true or false"},   /* `yes` is not a boolean */
             {9, 23, "'by' must be a list"});
    S_EXPECT("timer_send.yaml",
             {8, 30, "sends 'go'"},
             {9, 31, "sends 'missing.event'"});
    S_EXPECT("when_value.yaml",
             {12, 41, "'huge'"},
             {14, 23, "'when' field 'note' is not an enum field"});
    S_EXPECT("deep.yaml",
             {8, 65, "single value"},
             {8, 73, "nesting deeper than 16 levels"});
    S_EXPECT("anchors.yaml",
             {8, 11, "anchors and aliases are not supported"},
             {9, 14, "anchors and aliases are not supported"});
    S_EXPECT("several.yaml",
             {1, 11, "invalid workflow name 'Bad-Name'"},
             {2, 10, "version must be an integer >= 1"},
             {4, 22, "unknown role 'robot'"},
             {6, 18, "field 'member' (the claim's member) must have type person_id"},
             {7, 3, "enum field 'kind' has no values"},
             {8, 25, "max applies only to string, integer and money fields"},
             {13, 44, "unknown guard 'magic'"},
             {14, 7, "invalid event name 'Go!'"},
             {15, 7, "event 'back' has no 'by'"},
             {16, 20, "final state 'b' cannot have 'on'"});
}

/* ------------------------------------------------------------ buffers --- */

static const char s_base[] =
    "workflow: t\nversion: 1\ncalendar: dk\n"
    "states:\n  a:\n    initial: true\n    on:\n      go: {to: b, by: [member]}\n"
    "  b: {final: true}\n";

/* The language of issue 16, compiled: bounds, flag conditions, record,
 * timers at a date and kept across a pause, owner, state refusals. */
static void test_after_model(void)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/fuzz/corpus/fuzz_workflow/after.yaml",
             cf_test_srcdir());
    int rc = cf_wf_load_file(path, &wf, &d);
    if (rc)
        cf_diags_print(&d, stderr);
    CF_ASSERT_INT_EQ(rc, 0);
    CF_ASSERT(wf->fields[0].internal);
    const cf_wf_state_t *a = &wf->states[cf_wf_state_find(wf, "a")];
    CF_ASSERT(a->owner_required);
    CF_ASSERT_INT_EQ(a->ntimers, 2);
    CF_ASSERT_INT_EQ(a->timers[0].after.unit, CF_DUR_MONTHS);
    CF_ASSERT_INT_EQ(a->timers[0].after.n, 6);
    CF_ASSERT(a->timers[0].keep);
    CF_ASSERT_INT_EQ(a->timers[0].at_field, -1);
    CF_ASSERT_INT_EQ(a->timers[1].at_field, cf_wf_field_find(wf, "valid"));
    CF_ASSERT(!a->timers[1].keep);
    CF_ASSERT_STR_EQ(cf_wf_refusal_in(wf, 0, "go", 2), "not yet");
    CF_ASSERT(cf_wf_refusal(wf, "go", 2) == NULL);
    const cf_wf_event_t *go = cf_wf_event_find(wf, 0, "go", 2);
    CF_ASSERT(go != NULL);
    CF_ASSERT_INT_EQ(go->if_set, UINT64_C(1) << cf_wf_flag_find(wf, "ready"));
    CF_ASSERT_INT_EQ(go->if_clear, UINT64_C(1) << cf_wf_flag_find(wf, "lapsed"));
    CF_ASSERT_INT_EQ(go->record[0], cf_wf_field_find(wf, "granted"));
    CF_ASSERT_INT_EQ(go->record[1], cf_wf_field_find(wf, "valid"));
    CF_ASSERT_INT_EQ(go->record[2], -1);
    const cf_wf_field_t *amount = &go->fields[0];
    CF_ASSERT(amount->min.set && amount->min.value == 1 && amount->min.claim_field < 0);
    CF_ASSERT(amount->max.set);
    CF_ASSERT_STR_EQ(amount->max.claim_name, "granted");
    CF_ASSERT_INT_EQ(amount->max.except, CF_ROLE_SUPERVISOR);
    const cf_wf_field_t *until = &go->fields[1];
    CF_ASSERT(until->not_before.set && until->not_before.n == 0);
    CF_ASSERT(until->not_after.set && until->not_after.n == 1 &&
              until->not_after.unit == CF_DUR_YEARS);
    CF_ASSERT_INT_EQ(go->fields[2].min.value, -3);
    cf_wf_destroy(&wf);
}

static void test_minimal_and_defaults(void)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("m.yaml", s_base, strlen(s_base), &wf, &d), 0);
    CF_ASSERT_INT_EQ(d.n, 0);
    CF_ASSERT_INT_EQ(wf->created_by, CF_ROLE_MEMBER);
    CF_ASSERT_INT_EQ(wf->nfields, 0);
    CF_ASSERT_INT_EQ(wf->nany, 0);
    CF_ASSERT_INT_EQ(wf->source_len, strlen(s_base));
    CF_ASSERT_INT_EQ(memcmp(wf->source, s_base, wf->source_len), 0);
    cf_wf_destroy(&wf);

    /* a field's defaults; `no` is a string, not a boolean */
    static const char text[] =
        "workflow: t\nversion: 1\ncalendar: dk\ncreated_by: [member, handler]\n"
        "data:\n  answer: {type: enum, values: [yes, no, on]}\n  note: {type: string}\n"
        "states:\n  a:\n    initial: true\n    on:\n      go: {to: b, by: [member]}\n"
        "  b: {final: true}\n";
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("m.yaml", text, strlen(text), &wf, &d), 0);
    CF_ASSERT_INT_EQ(wf->created_by, CF_ROLE_MEMBER | CF_ROLE_HANDLER);
    CF_ASSERT_STR_EQ(wf->fields[0].values[1], "no");
    CF_ASSERT_INT_EQ(wf->fields[1].max_len, CF_WF_STRING_DEFAULT_MAX);
    CF_ASSERT(!wf->fields[1].required);
    CF_ASSERT(wf->states[0].events[0].scope == NULL);   /* the default */
    cf_wf_destroy(&wf);

    /* `scope`: what a representative sending the event needs */
    static const char scoped[] =
        "workflow: t\nversion: 1\ncalendar: dk\n"
        "states:\n  a:\n    initial: true\n    on:\n"
        "      appeal.filed: {to: b, by: [member], scope: complaints}\n"
        "  b: {final: true}\n";
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("m.yaml", scoped, strlen(scoped), &wf, &d), 0);
    CF_ASSERT_STR_EQ(wf->states[0].events[0].scope, "complaints");
    cf_wf_destroy(&wf);
    static const char bad[] =
        "workflow: t\nversion: 1\ncalendar: dk\n"
        "states:\n  a:\n    initial: true\n    on:\n"
        "      appeal.filed: {to: b, by: [member], scope: read}\n"
        "  b: {final: true}\n";
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("m.yaml", bad, strlen(bad), &wf, &d), CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT(strstr(d.v[0].message, "'scope' must be claims, complaints or consent") != NULL);
    cf_diags_clear(&d);
}

/* ------------------------------------------ calendar and currency --- */

/* A workflow whose third and fourth lines are cal and cur (cur may be ""). */
static int s_load_cc(const char *cal, const char *cur, cf_wf_t **ret, cf_diags_t *d)
{
    char text[1024];
    snprintf(text, sizeof text,
             "workflow: t\nversion: 1\n%s\n%s\n"
             "data: {member: {type: person_id, required: true}}\n"
             "states:\n  a:\n    initial: true\n    on:\n      go: {to: b, by: [member]}\n"
             "  b: {final: true}\n", cal, cur);
    return cf_wf_load_buffer("cc.yaml", text, strlen(text), ret, d);
}

static void test_calendar_currency_by_member_country(void)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    /* A scalar: every country; currency from the country. */
    CF_ASSERT_INT_EQ(s_load_cc("calendar: dk", "", &wf, &d), 0);
    CF_ASSERT_STR_EQ(wf->calendar, "dk");
    CF_ASSERT_STR_EQ(wf->calendars[CF_COUNTRY_DK], "dk");
    CF_ASSERT_STR_EQ(wf->calendars[CF_COUNTRY_NO], "dk");
    CF_ASSERT_INT_EQ(wf->calendar_at[CF_COUNTRY_NO].line, 3);
    CF_ASSERT_INT_EQ(wf->calendar_at[CF_COUNTRY_NO].col, 11);
    CF_ASSERT_INT_EQ(wf->currency[CF_COUNTRY_DK], CF_CURRENCY_DKK);
    CF_ASSERT_INT_EQ(wf->currency[CF_COUNTRY_NO], CF_CURRENCY_NOK);
    cf_wf_destroy(&wf);
    /* By country, in any order: the first entry is the default country;
     * a scalar currency for every country. */
    CF_ASSERT_INT_EQ(s_load_cc("calendar: {by_member_country: {no: oslo, dk: kbh}}",
                               "currency: DKK", &wf, &d), 0);
    CF_ASSERT(wf->calendar == NULL);
    CF_ASSERT_STR_EQ(wf->calendars[CF_COUNTRY_DK], "kbh");
    CF_ASSERT_STR_EQ(wf->calendars[CF_COUNTRY_NO], "oslo");
    CF_ASSERT_INT_EQ(wf->calendar_at[CF_COUNTRY_DK].col, 46);
    CF_ASSERT_INT_EQ(wf->first_country, CF_COUNTRY_NO);
    CF_ASSERT_INT_EQ(wf->currency[CF_COUNTRY_NO], CF_CURRENCY_DKK);
    cf_wf_destroy(&wf);
    /* A currency map may name some countries; the others default. */
    CF_ASSERT_INT_EQ(s_load_cc("calendar: dk", "currency: {by_member_country: {dk: NOK}}",
                               &wf, &d), 0);
    CF_ASSERT_INT_EQ(wf->currency[CF_COUNTRY_DK], CF_CURRENCY_NOK);
    CF_ASSERT_INT_EQ(wf->currency[CF_COUNTRY_NO], CF_CURRENCY_NOK);
    cf_wf_destroy(&wf);
    CF_ASSERT_INT_EQ(d.n, 0);

    /* Each mistake: one diagnostic at its place, exactly. */
    static const struct {
        const char *cal, *cur;
        uint32_t line, col;
        const char *msg;
    } bad[] = {
        {"calendar: {by_member_country: {dk: dk, no: no, se: se}}", "", 3, 48,
         "unknown country 'se' in 'calendar' by_member_country (countries: dk, no)"},
        {"calendar: {by_member_country: {dk: dk}}", "", 3, 31,
         "'calendar' by_member_country names no calendar for country 'no' (every country "
         "needs one: dk, no)"},
        {"calendar: [dk, no]", "", 3, 11,
         "'calendar' must be a single value or {by_member_country: {dk, no: ...}}, not a "
         "list"},
        {"calendar: {by_member_country: [dk, no]}", "", 3, 31,
         "'by_member_country' must be a mapping"},
        {"calendar: {by_member_country: {dk: [dk], no: no}}", "", 3, 36,
         "'calendar' must be a single value, not a list"},
        {"calendar: {by_country: {dk: dk, no: no}}", "", 3, 12,
         "unknown key 'by_country' in 'calendar' (expected: by_member_country)"},
        {"calendar: {}", "", 3, 11,
         "'calendar' has no 'by_member_country' (a map of country to calendar)"},
        {"calendar: {by_member_country: {dk: dk, no: Oslo}}", "", 3, 44,
         "invalid calendar name 'Oslo' (lower-case letters, digits and '_', starting with a "
         "letter)"},
        {"calendar: {by_member_country: {dk: dk, no: no, dk: no}}", "", 3, 48,
         "duplicate country 'dk' (first at line 3)"},
        {"calendar: dk", "currency: EUR", 4, 11,
         "unknown currency 'EUR' (currencies: DKK, NOK)"},
        {"calendar: dk", "currency: {by_member_country: {dk: DKK, no: nok}}", 4, 45,
         "unknown currency 'nok' (currencies: DKK, NOK)"},
        {"calendar: dk", "currency: {by_member_country: {fi: EUR}}", 4, 32,
         "unknown country 'fi' in 'currency' by_member_country (countries: dk, no)"},
        {"calendar: dk", "currency: {by_member_country: DKK}", 4, 31,
         "'by_member_country' must be a mapping"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = s_load_cc(bad[i].cal, bad[i].cur, &wf, &d);
        if (d.n != 1 || d.v[0].line != bad[i].line || d.v[0].col != bad[i].col ||
            strcmp(d.v[0].message, bad[i].msg) != 0) {
            fprintf(stderr, "case %zu:\n", i);
            cf_diags_print(&d, stderr);
        }
        CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
        CF_ASSERT(wf == NULL);
        CF_ASSERT_INT_EQ(d.n, 1);
        CF_ASSERT_INT_EQ(d.v[0].line, bad[i].line);
        CF_ASSERT_INT_EQ(d.v[0].col, bad[i].col);
        CF_ASSERT_STR_EQ(d.v[0].message, bad[i].msg);
        cf_diags_clear(&d);
    }
}

static bool s_only_dk(void *ctx, const char *name)
{
    (void)ctx;
    return strcmp(name, "dk") == 0;
}

/* An unknown calendar: the loader cannot know the calendars; the check the
 * daemon and `claimctl workflow validate` share names each one missing at
 * its place. */
static void test_check_calendars(void)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(s_load_cc("calendar: {by_member_country: {dk: dk, no: oslo}}", "", &wf,
                               &d), 0);
    CF_ASSERT_INT_EQ(cf_wf_check_calendars(wf, "cc.yaml", "cal.yaml", s_only_dk, NULL, &d),
                     CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_STR_EQ(d.v[0].file, "cc.yaml");
    CF_ASSERT_INT_EQ(d.v[0].line, 3);
    CF_ASSERT_INT_EQ(d.v[0].col, 44);
    CF_ASSERT_STR_EQ(d.v[0].message, "workflow 't' names calendar 'oslo' for members of "
                     "country 'no', which cal.yaml does not declare");
    cf_diags_clear(&d);
    cf_wf_destroy(&wf);
    /* A scalar that is missing: one message, not one per country. */
    CF_ASSERT_INT_EQ(s_load_cc("calendar: se", "", &wf, &d), 0);
    CF_ASSERT_INT_EQ(cf_wf_check_calendars(wf, "cc.yaml", "cal.yaml", s_only_dk, NULL, &d),
                     CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_STR_EQ(d.v[0].message, "workflow 't' names calendar 'se', which cal.yaml does "
                     "not declare");
    cf_diags_clear(&d);
    cf_wf_destroy(&wf);
    CF_ASSERT_INT_EQ(s_load_cc("calendar: dk", "", &wf, &d), 0);
    CF_ASSERT_INT_EQ(cf_wf_check_calendars(wf, "cc.yaml", "cal.yaml", s_only_dk, NULL, &d), 0);
    CF_ASSERT_INT_EQ(d.n, 0);
    cf_wf_destroy(&wf);
}

static void test_buffer_errors(void)
{
    static const struct {
        const char *text;
        uint32_t line, col;
        const char *msg;
    } cases[] = {
        {"workflow: t\nversion: 1\n", 1, 1, "missing required key 'calendar'"},
        {"just a scalar\n", 1, 1, "the file is not a mapping"},
        {"---\n", 1, 1, "the file is empty"},
        {"a: [1, 2\n", 2, 1, "YAML syntax error"},
        {"a: \"\\xff\xff\"\n", 1, 9, "YAML syntax error: invalid leading UTF-8 octet"},
        {"workflow: t\nversion: 1\ncalendar: dk\nstates:\n  a: {initial: true}\n", 5, 3,
         "state 'a' is not final and has no way out"},
        {"workflow: t\nversion: 1\ncalendar: dk\nstates: {}\n", 4, 1, "declares no states"},
        {"workflow: t\nversion: 1\ncalendar: dk\nstates:\n  a:\n    initial: true\n"
         "    on: {go: {to: b, by: [member]}}\n  b: {final: true}\n"
         "refusals: {nope: hi}\n", 9, 12, "refusal for event 'nope', which no state accepts"},
        {"workflow: t\nversion: 1\ncalendar: dk\nstates:\n  a:\n    initial: true\n"
         "    auto: [{when: {field: k, in: [x]}}]\n    on: {go: {to: b, by: [member]}}\n"
         "  b: {final: true}\n", 7, 12, "auto move has no 'to'"},
        {"workflow: t\nversion: 1\ncalendar: dk\ndata:\n  p: {type: claim}\n  q: {type: claim}\n"
         "states:\n  a:\n    initial: true\n    on: {go: {to: b, by: [member]}}\n"
         "  b: {final: true}\n", 6, 13, "at most one field of type claim"},
        {"workflow: t\nversion: 1\ncalendar: dk\ndata:\n  s: {type: string, max: 70000}\n"
         "states:\n  a:\n    initial: true\n    on: {go: {to: b, by: [member]}}\n"
         "  b: {final: true}\n", 5, 26, "max must be an integer from 1 to 65536"},
        {"workflow: t\nversion: 1\ncalendar: dk\ndata:\n  s: {type: text}\n"
         "states:\n  a:\n    initial: true\n    on: {go: {to: b, by: [member]}}\n"
         "  b: {final: true}\n", 5, 13, "unknown type 'text' for field 's'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cf_diags_t d = {0};
        int rc = s_load_buf(cases[i].text, &d);
        if (d.n == 0 || d.v[0].line != cases[i].line || d.v[0].col != cases[i].col ||
            !strstr(d.v[0].message, cases[i].msg)) {
            fprintf(stderr, "case %zu:\n", i);
            cf_diags_print(&d, stderr);
        }
        CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
        CF_ASSERT(d.n >= 1);
        CF_ASSERT_INT_EQ(d.v[0].line, cases[i].line);
        CF_ASSERT_INT_EQ(d.v[0].col, cases[i].col);
        CF_ASSERT_STR_HAS(d.v[0].message, cases[i].msg);
        cf_diags_clear(&d);
    }
}

/* The diagnostic whose message has needle, or NULL. */
static const cf_diag_t *s_find(const cf_diags_t *d, const char *needle)
{
    for (size_t i = 0; i < d->n; i++)
        if (strstr(d->v[i].message, needle))
            return &d->v[i];
    return NULL;
}

/* Errors of the YAML layer in a file whose root keys are wrong too: each is
 * reported along with the others. */
static void test_yaml_layer(void)
{
    static const struct {
        const char *text;
        uint32_t line, col;
        const char *msg;
    } cases[] = {
        {"a: 1\n---\nb: 2\n", 2, 1, "only one YAML document per file"},
        {"a: [[[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]]\n", 1, 19, "nesting deeper than 16 levels"},
        {"a: &x 1\nb: *x\n", 1, 4, "anchors and aliases are not supported"},
        {"a: !!int 1\n", 1, 4, "tags are not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cf_diags_t d = {0};
        CF_ASSERT_INT_EQ(s_load_buf(cases[i].text, &d), CF_EBADREQ);
        const cf_diag_t *x = s_find(&d, cases[i].msg);
        if (!x)
            cf_diags_print(&d, stderr);
        CF_ASSERT(x != NULL);
        CF_ASSERT_INT_EQ(x->line, cases[i].line);
        CF_ASSERT_INT_EQ(x->col, cases[i].col);
        cf_diags_clear(&d);
    }
}

static void test_too_large(void)
{
    size_t len = 10 * 1024 * 1024;
    char *buf = malloc(len);
    CF_ASSERT(buf != NULL);
    for (size_t i = 0; i < len; i++)
        buf[i] = (i % 64 == 63) ? '\n' : 'a';
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    int rc = cf_wf_load_buffer("big.yaml", buf, len, &wf, &d);
    free(buf);
    CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
    CF_ASSERT(wf == NULL);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_INT_EQ(d.v[0].line, 0);
    CF_ASSERT_STR_HAS(d.v[0].message, "larger than 1048576 bytes");
    cf_diags_clear(&d);

    /* exactly the limit is read (and here is not YAML worth the name) */
    buf = malloc(CF_WF_MAX_FILE);
    memset(buf, ' ', CF_WF_MAX_FILE);
    memcpy(buf, "a: b", 4);
    rc = cf_wf_load_buffer("edge.yaml", buf, CF_WF_MAX_FILE, &wf, &d);
    free(buf);
    CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
    CF_ASSERT(d.n >= 1);
    CF_ASSERT(!strstr(d.v[0].message, "larger than"));
    cf_diags_clear(&d);
}

static void test_deep_nesting(void)
{
    /* 10000 nested flow lists: one error, no recursion, no crash */
    size_t depth = 10000;
    char *buf = malloc(2 * depth + 8);
    size_t n = 0;
    memcpy(buf, "a: ", 3);
    n = 3;
    for (size_t i = 0; i < depth; i++)
        buf[n++] = '[';
    for (size_t i = 0; i < depth; i++)
        buf[n++] = ']';
    buf[n++] = '\n';
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    int rc = cf_wf_load_buffer("deep.yaml", buf, n, &wf, &d);
    free(buf);
    CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
    /* the root map is level 1, so the 16th '[' (column 19) is level 17;
     * reported once, beside the missing keys of the root */
    const cf_diag_t *x = s_find(&d, "nesting deeper than 16 levels");
    CF_ASSERT(x != NULL);
    CF_ASSERT_INT_EQ(x->line, 1);
    CF_ASSERT_INT_EQ(x->col, 19);
    size_t nesting = 0;
    for (size_t i = 0; i < d.n; i++)
        nesting += strstr(d.v[i].message, "nesting") != NULL;
    CF_ASSERT_INT_EQ(nesting, 1);
    cf_diags_clear(&d);
}

static void test_unreadable(void)
{
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(cf_wf_load_file("/nonexistent/x.yaml", &wf, &d), CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_INT_EQ(d.v[0].line, 0);
    CF_ASSERT_STR_HAS(d.v[0].message, "cannot open");
    cf_diags_clear(&d);
}

/* xorshift, so the run is the same every time */
static uint64_t s_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void test_garbage(void)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    static const char alphabet[] = "abc:-[]{}&*!|>'\"#\n \t,.?0123456789$%@`~\\";
    char buf[600];
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)(s_rand(&seed) % sizeof buf);
        for (size_t i = 0; i < len; i++) {
            uint64_t r = s_rand(&seed);
            buf[i] = round % 3 == 0 ? (char)(r & 0xff) : alphabet[r % (sizeof alphabet - 1)];
        }
        cf_wf_t *wf = NULL;
        cf_diags_t d = {0};
        int rc = cf_wf_load_buffer("g.yaml", buf, len, &wf, &d);
        CF_ASSERT(rc == CF_EBADREQ);
        CF_ASSERT(d.n >= 1);
        cf_wf_destroy(&wf);
        cf_diags_clear(&d);
    }
    /* mutations of a valid file: any outcome but a crash, and errors when refused */
    char path[1024];
    snprintf(path, sizeof path, "%s/workflows/health_claim.yaml", cf_test_srcdir());
    FILE *f = fopen(path, "rb");
    CF_ASSERT(f != NULL);
    static char src[65536];
    size_t slen = fread(src, 1, sizeof src, f);
    fclose(f);
    static char mut[65536];
    for (int round = 0; round < 2000; round++) {
        memcpy(mut, src, slen);
        for (int k = 0; k < 4; k++)
            mut[s_rand(&seed) % slen] = alphabet[s_rand(&seed) % (sizeof alphabet - 1)];
        cf_wf_t *wf = NULL;
        cf_diags_t d = {0};
        int rc = cf_wf_load_buffer("m.yaml", mut, slen, &wf, &d);
        CF_ASSERT(rc == 0 ? d.n == 0 && wf != NULL : rc == CF_EBADREQ && d.n >= 1);
        cf_wf_destroy(&wf);
        cf_diags_clear(&d);
    }
}

static void test_roles(void)
{
    CF_ASSERT_INT_EQ(cf_role_parse("handler", 7), CF_ROLE_HANDLER);
    CF_ASSERT_INT_EQ(cf_role_parse("handlers", 8), 0);
    CF_ASSERT_INT_EQ(cf_role_parse("hand", 4), 0);
    CF_ASSERT_STR_EQ(cf_role_name(CF_ROLE_SYSTEM), "system");
    CF_ASSERT_STR_EQ(cf_role_name(CF_ROLE_SYSTEM | CF_ROLE_MEMBER), "?");
}

/* Out of memory at each arena allocation of a load in turn (the YAML
 * reader's, the scratch and the definition's): CF_EINTERNAL, no definition
 * and (under ASan) nothing leaked, until the load succeeds. */
static void test_out_of_memory(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/workflows/health_claim.yaml", cf_test_srcdir());
    int rc = CF_EINTERNAL;
    unsigned long k;
    for (k = 1; k < 100000 && rc == CF_EINTERNAL; k++) {
        cf_wf_t *wf = NULL;
        cf_diags_t d = {0};
        cf_arena_fail_after(k);
        rc = cf_wf_load_file(path, &wf, &d);
        cf_arena_fail_after(0);
        CF_ASSERT(rc == 0 || (rc == CF_EINTERNAL && wf == NULL));
        cf_wf_destroy(&wf);
        cf_diags_clear(&d);
    }
    CF_ASSERT_INT_EQ(rc, 0);
    CF_ASSERT(k > 100);
}

int main(void)
{
    CF_RUN(test_health_claim_model);
    CF_RUN(test_inquiry_model);
    CF_RUN(test_fixtures);
    CF_RUN(test_every_error_reported);
    CF_RUN(test_minimal_and_defaults);
    CF_RUN(test_after_model);
    CF_RUN(test_buffer_errors);
    CF_RUN(test_calendar_currency_by_member_country);
    CF_RUN(test_check_calendars);
    CF_RUN(test_yaml_layer);
    CF_RUN(test_too_large);
    CF_RUN(test_deep_nesting);
    CF_RUN(test_out_of_memory);
    CF_RUN(test_unreadable);
    CF_RUN(test_garbage);
    CF_RUN(test_roles);
    return cf_test_done();
}

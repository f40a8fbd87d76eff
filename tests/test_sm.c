/* test_sm.c: the state machine on the shipped workflows - every transition
 * (table-driven, and the table is checked to cover every event of every
 * state), every guard outcome, every error class with its exact code and the
 * name it must carry, $previous, automatic moves, timers and flags. */
#include <string.h>

#include "cf_test.h"
#include "sm.h"
#include "workflow.h"

/* -------------------------------------------------------------- fixtures --- */

static cf_wf_t *s_hc, *s_inq;

static cf_wf_t *s_load(const char *name)
{
    char path[1024];
    cf_wf_t *wf = NULL;
    cf_diags_t d = {0};
    snprintf(path, sizeof path, "%s/workflows/%s", cf_test_srcdir(), name);
    if (cf_wf_load_file(path, &wf, &d) != 0) {
        cf_diags_print(&d, stderr);
        exit(1);
    }
    cf_diags_clear(&d);
    return wf;
}

/* msgpack data built in place: a map of up to 8 pairs */
typedef struct {
    msgpack_object obj;
    msgpack_object_kv kv[8];
} s_data_t;

static msgpack_object s_str(const char *s)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

static msgpack_object s_int(int64_t v)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    if (v >= 0) {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = (uint64_t)v;
    } else {
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = v;
    }
    return o;
}

static msgpack_object s_float(double v)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_FLOAT64;
    o.via.f64 = v;
    return o;
}

static msgpack_object s_bool(bool v)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_BOOLEAN;
    o.via.boolean = v;
    return o;
}

static msgpack_object s_nil(void)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_NIL;
    return o;
}

static void s_data_init(s_data_t *d)
{
    memset(d, 0, sizeof *d);
    d->obj.type = MSGPACK_OBJECT_MAP;
    d->obj.via.map.ptr = d->kv;
}

static s_data_t *s_put(s_data_t *d, const char *key, msgpack_object v)
{
    d->kv[d->obj.via.map.size].key = s_str(key);
    d->kv[d->obj.via.map.size].val = v;
    d->obj.via.map.size++;
    return d;
}

/* the event data the table refers to */
typedef enum {
    D_NONE, D_TEXT, D_REASON, D_GUARANTEE, D_PROVIDER, D_PAID, D_BOARD, D_DECIDED
} s_dkind_t;

static const msgpack_object *s_data(s_data_t *d, s_dkind_t kind)
{
    s_data_init(d);
    switch (kind) {
    case D_NONE:
        return NULL;
    case D_TEXT:
        s_put(d, "text", s_str("my knee still hurts"));
        break;
    case D_REASON:
        s_put(d, "reason", s_str("not covered by the policy"));
        break;
    case D_GUARANTEE:
        s_put(d, "amount", s_int(125000));
        s_put(d, "provider", s_str("Fysio Nord"));
        s_put(d, "valid_until", s_str("2026-12-31"));
        break;
    case D_PROVIDER:
        s_put(d, "provider", s_str("Fysio Nord"));
        break;
    case D_PAID:
        s_put(d, "amount", s_int(125000));
        s_put(d, "paid_to", s_str("provider"));
        s_put(d, "reference", s_str("PAY-1"));
        break;
    case D_BOARD:
        s_put(d, "board", s_str("Ankenævnet for Forsikring"));
        break;
    case D_DECIDED:
        s_put(d, "outcome", s_str("rejected"));
        s_put(d, "reference", s_str("AK-2026-17"));
        break;
    }
    return &d->obj;
}

#define NOW ((cf_time_t)1780000000)

static cf_sm_ctx_t s_ctx(bool consent)
{
    cf_sm_ctx_t c = {0};
    c.now = NOW;
    c.today = NOW / 86400;   /* 2026-05-28 */
    c.has_owner = true;
    if (consent) {
        c.consent_given_at = NOW - 86400;
        c.consent_valid_until = NOW + 365 * 86400;
    }
    return c;
}

static int S(const cf_wf_t *wf, const char *name)
{
    int i = cf_wf_state_find(wf, name);
    if (i < 0) {
        fprintf(stderr, "no state %s\n", name);
        exit(1);
    }
    return i;
}

static int s_apply(const cf_wf_t *wf, const char *state, int prev, uint64_t flags,
                   const char *event, unsigned role, const msgpack_object *data, bool consent,
                   cf_sm_result_t *r, cf_error_t *e)
{
    cf_sm_claim_t cur = {S(wf, state), prev, flags};
    cf_sm_ctx_t ctx = s_ctx(consent);
    memset(e, 0, sizeof *e);
    return cf_sm_apply(wf, &cur, event, strlen(event), role, data, &ctx, r, e);
}

/* ---------------------------------------------------------- transitions --- */

#define M CF_ROLE_MEMBER
#define H CF_ROLE_HANDLER
#define SU CF_ROLE_SUPERVISOR
#define SY CF_ROLE_SYSTEM

static const struct {
    bool inquiry;
    const char *from, *event;
    unsigned role;
    s_dkind_t data;
    bool consent;
    const char *to;
    size_t ncancel, nstart;
    const char *flag;   /* the claim's flags after the event: one, or NULL */
    const char *have;   /* a flag the claim has before, or NULL */
} s_rows[] = {
    /* health_claim */
    {0, "awaiting_referral", "document.referral", M, D_NONE, 0, "awaiting_consent", 2, 2, NULL, NULL},
    {0, "awaiting_referral", "claim.reminder", SY, D_NONE, 0, "awaiting_referral", 0, 0, NULL, NULL},
    {0, "awaiting_referral", "claim.expired", SY, D_NONE, 0, "closed", 2, 0, NULL, NULL},
    {0, "awaiting_referral", "claim.withdrawn", M, D_NONE, 0, "withdrawn", 2, 0, NULL, NULL},
    {0, "awaiting_consent", "consent.given", SY, D_NONE, 1, "in_review", 2, 2, NULL, NULL},
    {0, "awaiting_consent", "document.referral", M, D_NONE, 0, "awaiting_consent", 0, 0, NULL, NULL},
    {0, "awaiting_consent", "claim.reminder", SY, D_NONE, 0, "awaiting_consent", 0, 0, NULL, NULL},
    {0, "awaiting_consent", "claim.expired", SY, D_NONE, 0, "closed", 2, 0, NULL, NULL},
    {0, "awaiting_consent", "claim.withdrawn", M, D_NONE, 0, "withdrawn", 2, 0, NULL, NULL},
    {0, "in_review", "sla.warning", SY, D_NONE, 1, "in_review", 0, 0, "sla.warning", NULL},
    {0, "in_review", "sla.breached", SY, D_NONE, 1, "in_review", 0, 0, "sla.breached", NULL},
    {0, "in_review", "document.referral", M, D_NONE, 1, "in_review", 0, 0, NULL, NULL},
    {0, "in_review", "info.requested", H, D_TEXT, 1, "awaiting_info", 2, 2, NULL, "sla.breached"},
    {0, "in_review", "decision.approved", H, D_NONE, 1, "approved", 2, 0, NULL, "sla.warning"},
    {0, "in_review", "decision.denied", H, D_REASON, 1, "denied", 2, 1, NULL, NULL},
    {0, "in_review", "claim.withdrawn", M, D_NONE, 1, "withdrawn", 2, 0, NULL, NULL},
    {0, "awaiting_info", "document.referral", M, D_NONE, 1, "awaiting_info", 0, 0, NULL, NULL},
    {0, "awaiting_info", "document.statement", M, D_NONE, 1, "awaiting_info", 0, 0, NULL, NULL},
    {0, "awaiting_info", "document.other", M, D_NONE, 1, "awaiting_info", 0, 0, NULL, NULL},
    {0, "awaiting_info", "info.provided", M, D_TEXT, 1, "in_review", 2, 2, NULL, NULL},
    {0, "awaiting_info", "claim.reminder", SY, D_NONE, 1, "awaiting_info", 0, 0, NULL, NULL},
    {0, "awaiting_info", "claim.expired", SY, D_NONE, 1, "closed", 2, 0, NULL, NULL},
    {0, "awaiting_info", "claim.withdrawn", M, D_NONE, 1, "withdrawn", 2, 0, NULL, NULL},
    {0, "approved", "guarantee.issued", H, D_GUARANTEE, 1, "guarantee_issued", 0, 2, "preapproved", NULL},
    {0, "approved", "network.referred", H, D_PROVIDER, 1, "network_referral", 0, 1, "preapproved", NULL},
    {0, "approved", "settlement.paid", H, D_PAID, 1, "settled", 0, 0, "invoice.received", "invoice.received"},
    {0, "guarantee_issued", "treatment.started", M, D_NONE, 1, "in_treatment", 2, 0, NULL, "preapproved"},
    {0, "guarantee_issued", "guarantee.expired", SY, D_NONE, 1, "guarantee_expired", 2, 1, NULL, "preapproved"},
    {0, "guarantee_issued", "complaint.window_closed", SY, D_NONE, 1, "guarantee_issued", 0, 0, "complaint.window_closed", NULL},
    {0, "guarantee_issued", "reconsideration.requested", M, D_TEXT, 1, "reconsideration", 2, 2, NULL, NULL},
    {0, "guarantee_issued", "complaint.filed", M, D_TEXT, 1, "complaint_review", 2, 2, "reconsideration.upheld", "reconsideration.upheld"},
    {0, "guarantee_issued", "claim.closed", SU, D_REASON, 1, "closed", 2, 0, NULL, NULL},
    {0, "network_referral", "treatment.started", M, D_NONE, 1, "in_treatment", 1, 0, NULL, "preapproved"},
    {0, "network_referral", "complaint.window_closed", SY, D_NONE, 1, "network_referral", 0, 0, "complaint.window_closed", NULL},
    {0, "network_referral", "reconsideration.requested", M, D_TEXT, 1, "reconsideration", 1, 2, NULL, NULL},
    {0, "network_referral", "complaint.filed", M, D_TEXT, 1, "complaint_review", 1, 2, "reconsideration.upheld", "reconsideration.upheld"},
    {0, "guarantee_expired", "guarantee.issued", H, D_GUARANTEE, 1, "guarantee_issued", 1, 2, "preapproved", NULL},
    {0, "guarantee_expired", "claim.expired", SY, D_NONE, 1, "closed", 1, 0, NULL, NULL},
    {0, "guarantee_expired", "claim.closed", SU, D_REASON, 1, "closed", 1, 0, NULL, NULL},
    {0, "denied", "reconsideration.requested", M, D_TEXT, 1, "reconsideration", 1, 2, NULL, NULL},
    {0, "denied", "complaint.filed", M, D_TEXT, 1, "complaint_review", 1, 2, "reconsideration.upheld", "reconsideration.upheld"},
    {0, "denied", "complaint.expired", SY, D_NONE, 1, "closed", 1, 0, NULL, NULL},
    {0, "reconsideration", "sla.warning", SY, D_NONE, 1, "reconsideration", 0, 0, "sla.warning", NULL},
    {0, "reconsideration", "sla.breached", SY, D_NONE, 1, "reconsideration", 0, 0, "sla.breached", NULL},
    {0, "reconsideration", "decision.changed", H, D_NONE, 1, "approved", 2, 0, NULL, "sla.warning"},
    /* $previous: the claim was in denied before (prev set by the runner) */
    {0, "reconsideration", "decision.upheld", H, D_REASON, 1, "denied", 2, 1, "reconsideration.upheld", "sla.breached"},
    {0, "reconsideration", "claim.withdrawn", M, D_NONE, 1, "withdrawn", 2, 0, NULL, NULL},
    {0, "complaint_review", "sla.warning", SY, D_NONE, 1, "complaint_review", 0, 0, "sla.warning", NULL},
    {0, "complaint_review", "sla.breached", SY, D_NONE, 1, "complaint_review", 0, 0, "sla.breached", NULL},
    {0, "complaint_review", "complaint.upheld", SU, D_NONE, 1, "approved", 2, 0, NULL, "reconsideration.upheld"},
    {0, "complaint_review", "complaint.rejected", SU, D_REASON, 1, "complaint_rejected", 2, 2, NULL, "sla.warning"},
    {0, "complaint_review", "claim.withdrawn", M, D_NONE, 1, "withdrawn", 2, 0, NULL, NULL},
    {0, "complaint_rejected", "appeal.filed", M, D_BOARD, 1, "external_appeal", 2, 0, NULL, NULL},
    {0, "complaint_rejected", "appeal.expired", SY, D_NONE, 1, "closed", 2, 0, NULL, NULL},
    {0, "complaint_rejected", "treatment.started", M, D_NONE, 1, "in_treatment", 2, 0, NULL, "preapproved"},
    {0, "complaint_rejected", "guarantee.expired", SY, D_NONE, 1, "complaint_rejected", 0, 0, NULL, "preapproved"},
    {0, "external_appeal", "appeal.decided", H, D_DECIDED, 1, "closed", 0, 0, NULL, NULL},
    {0, "in_treatment", "document.invoice", M, D_NONE, 1, "invoice_received", 0, 2, "invoice.received", NULL},
    {0, "in_treatment", "claim.closed", SU, D_REASON, 1, "closed", 0, 0, NULL, NULL},
    {0, "invoice_received", "sla.warning", SY, D_NONE, 1, "invoice_received", 0, 0, "sla.warning", NULL},
    {0, "invoice_received", "sla.breached", SY, D_NONE, 1, "invoice_received", 0, 0, "sla.breached", NULL},
    {0, "invoice_received", "document.invoice", H, D_NONE, 1, "invoice_received", 0, 0, NULL, NULL},
    {0, "invoice_received", "settlement.paid", H, D_PAID, 1, "settled", 2, 0, NULL, "sla.breached"},
    {0, "invoice_received", "settlement.rejected", SU, D_REASON, 1, "settlement_rejected", 2, 1, NULL, "reconsideration.upheld"},
    {0, "invoice_received", "claim.closed", SU, D_REASON, 1, "closed", 2, 0, NULL, NULL},
    {0, "settlement_rejected", "reconsideration.requested", M, D_TEXT, 1, "reconsideration", 1, 2, NULL, NULL},
    {0, "settlement_rejected", "complaint.filed", M, D_TEXT, 1, "complaint_review", 1, 2, "reconsideration.upheld", "reconsideration.upheld"},
    {0, "settlement_rejected", "complaint.expired", SY, D_NONE, 1, "closed", 1, 0, NULL, NULL},
    {0, "consent_withdrawn", "consent.given", SY, D_NONE, 1, "denied", 2, 1, NULL, NULL},
    {0, "consent_withdrawn", "claim.reminder", SY, D_NONE, 1, "consent_withdrawn", 0, 0, NULL, NULL},
    {0, "consent_withdrawn", "claim.expired", SY, D_NONE, 1, "closed", 2, 0, NULL, NULL},
    {0, "consent_withdrawn", "claim.withdrawn", M, D_NONE, 0, "withdrawn", 2, 0, NULL, NULL},
    /* inquiry */
    {1, "open", "sla.warning", SY, D_NONE, 0, "open", 0, 0, "sla.warning", NULL},
    {1, "open", "sla.breached", SY, D_NONE, 0, "open", 0, 0, "sla.breached", NULL},
    {1, "open", "inquiry.answered", H, D_TEXT, 0, "answered", 2, 0, NULL, NULL},
    {1, "open", "claim.closed", H, D_REASON, 0, "closed", 2, 0, NULL, NULL},
};
#define S_NROWS (sizeof s_rows / sizeof s_rows[0])

static void test_every_transition(void)
{
    for (size_t i = 0; i < S_NROWS; i++) {
        const cf_wf_t *wf = s_rows[i].inquiry ? s_inq : s_hc;
        s_data_t d;
        cf_sm_result_t r;
        cf_error_t e;
        int from = S(wf, s_rows[i].from);
        int prev = s_rows[i].inquiry ? -1 : S(wf, "denied");
        uint64_t have = s_rows[i].have
                            ? UINT64_C(1) << cf_wf_flag_find(wf, s_rows[i].have) : 0;
        int rc = s_apply(wf, s_rows[i].from, prev, have, s_rows[i].event, s_rows[i].role,
                         s_data(&d, s_rows[i].data), s_rows[i].consent, &r, &e);
        if (rc)
            fprintf(stderr, "row %zu (%s %s): %s\n", i, s_rows[i].from, s_rows[i].event,
                    e.message);
        CF_ASSERT_INT_EQ(rc, 0);
        CF_ASSERT_STR_EQ(wf->states[r.next.state].name, s_rows[i].to);
        CF_ASSERT_INT_EQ(r.from, from);
        CF_ASSERT(r.event != NULL);
        CF_ASSERT_STR_EQ(r.event->name, s_rows[i].event);
        CF_ASSERT_INT_EQ(r.state_changed, r.next.state != from);
        CF_ASSERT_INT_EQ(r.next.prev, r.state_changed ? from : prev);
        CF_ASSERT_INT_EQ(r.ncancel, s_rows[i].ncancel);
        CF_ASSERT_INT_EQ(r.nstart, s_rows[i].nstart);
        if (r.ncancel)
            CF_ASSERT(r.cancel == wf->states[from].timers);
        if (r.nstart)
            CF_ASSERT(r.start == wf->states[r.next.state].timers);
        uint64_t flags = s_rows[i].flag
                             ? UINT64_C(1) << cf_wf_flag_find(wf, s_rows[i].flag) : 0;
        CF_ASSERT_INT_EQ(r.next.flags, flags);
    }
}

/* The table covers every event each state declares. */
static void test_table_is_complete(void)
{
    const cf_wf_t *wfs[2] = {s_hc, s_inq};
    for (int w = 0; w < 2; w++) {
        const cf_wf_t *wf = wfs[w];
        for (size_t s = 0; s < wf->nstates; s++)
            for (size_t i = 0; i < wf->states[s].nevents; i++) {
                bool found = false;
                for (size_t k = 0; k < S_NROWS && !found; k++)
                    found = s_rows[k].inquiry == (w == 1) &&
                            strcmp(s_rows[k].from, wf->states[s].name) == 0 &&
                            strcmp(s_rows[k].event, wf->states[s].events[i].name) == 0;
                if (!found)
                    fprintf(stderr, "not in the table: %s %s\n", wf->states[s].name,
                            wf->states[s].events[i].name);
                CF_ASSERT(found);
            }
    }
}

/* `any` events: in every non-final state, to consent_withdrawn, which
 * remembers where the claim was; refused in every final state. */
static void test_any_events(void)
{
    static const char *const events[] = {"consent.withdrawn", "consent.expired"};
    int cw = S(s_hc, "consent_withdrawn");
    for (size_t s = 0; s < s_hc->nstates; s++) {
        const cf_wf_state_t *st = &s_hc->states[s];
        for (size_t k = 0; k < 2; k++) {
            cf_sm_result_t r;
            cf_error_t e;
            int rc = s_apply(s_hc, st->name, -1, 0, events[k], SY, NULL, true, &r, &e);
            if (st->final) {
                CF_ASSERT_INT_EQ(rc, CF_EINVTRANS);
                CF_ASSERT_STR_HAS(e.message, "(accepts: none)");
                continue;
            }
            CF_ASSERT_INT_EQ(rc, 0);
            CF_ASSERT_INT_EQ(r.next.state, cw);
            if ((int)s == cw) {
                /* a self-loop: nothing changes, $previous still works */
                CF_ASSERT(!r.state_changed);
                CF_ASSERT_INT_EQ(r.next.prev, -1);
            } else {
                CF_ASSERT(r.state_changed);
                CF_ASSERT_INT_EQ(r.next.prev, (int)s);
                CF_ASSERT_INT_EQ(r.ncancel, st->ntimers);
                CF_ASSERT_INT_EQ(r.nstart, 2);   /* the reminder, the expiry */
            }
            CF_ASSERT(r.event == &s_hc->any[k]);
        }
    }
}

/* ------------------------------------------------------------- creation --- */

static int s_create(const cf_wf_t *wf, unsigned role, const char *treatment, bool consent,
                    cf_sm_result_t *r, cf_error_t *e)
{
    s_data_t d;
    s_data_init(&d);
    s_put(&d, "member", s_str("010190-1234"));
    s_put(&d, "treatment", s_str(treatment));
    cf_sm_ctx_t ctx = s_ctx(consent);
    ctx.claim_data = &d.obj;
    memset(e, 0, sizeof *e);
    return cf_sm_create(wf, role, &d.obj, &ctx, r, e);
}

static void test_create_autos(void)
{
    static const char *const referral[] = {"physiotherapy", "psychology", "specialist",
                                           "scan", "surgery"};
    cf_sm_result_t r;
    cf_error_t e;
    for (size_t i = 0; i < 5; i++)
        for (int consent = 0; consent < 2; consent++) {
            CF_ASSERT_INT_EQ(s_create(s_hc, M, referral[i], consent, &r, &e), 0);
            CF_ASSERT_STR_EQ(s_hc->states[r.next.state].name, "awaiting_referral");
            CF_ASSERT_INT_EQ(r.nstart, 2);   /* the reminder and the expiry */
        }
    /* chiropractic needs no referral */
    CF_ASSERT_INT_EQ(s_create(s_hc, M, "chiropractic", false, &r, &e), 0);
    CF_ASSERT_STR_EQ(s_hc->states[r.next.state].name, "awaiting_consent");
    CF_ASSERT_INT_EQ(r.from, -1);
    CF_ASSERT_INT_EQ(r.next.prev, -1);
    CF_ASSERT_INT_EQ(r.next.flags, 0);
    CF_ASSERT(r.state_changed);
    CF_ASSERT(r.event == NULL);
    CF_ASSERT_INT_EQ(r.ncancel, 0);
    CF_ASSERT_INT_EQ(r.nstart, 2);
    /* ... and with a valid consent goes on to review, its timers started */
    CF_ASSERT_INT_EQ(s_create(s_hc, M, "chiropractic", true, &r, &e), 0);
    CF_ASSERT_STR_EQ(s_hc->states[r.next.state].name, "in_review");
    CF_ASSERT_INT_EQ(r.nstart, 2);
    CF_ASSERT(r.start == s_hc->states[r.next.state].timers);
    CF_ASSERT_STR_EQ(r.start[0].event, "sla.warning");
    CF_ASSERT_INT_EQ(r.ncancel, 0);
}

static void test_create_errors(void)
{
    cf_sm_result_t r;
    cf_error_t e;
    CF_ASSERT_INT_EQ(s_create(s_hc, H, "scan", false, &r, &e), CF_EFORBIDDEN);
    CF_ASSERT_INT_EQ(e.code, CF_EFORBIDDEN);
    CF_ASSERT_STR_EQ(e.message, "role 'handler' may not create a 'health_claim' claim "
                                "(allowed: member)");
    CF_ASSERT_INT_EQ(s_create(s_hc, 0, "scan", false, &r, &e), CF_EFORBIDDEN);
    CF_ASSERT_INT_EQ(s_create(s_hc, M | H, "scan", false, &r, &e), CF_EFORBIDDEN);
    CF_ASSERT_INT_EQ(s_create(s_hc, M, "massage", false, &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_HAS(e.message, "field 'treatment'");
    CF_ASSERT(!strstr(e.message, "massage"));

    s_data_t d;
    cf_sm_ctx_t ctx = s_ctx(false);
    s_data_init(&d);
    s_put(&d, "member", s_str("320190-1234"));
    s_put(&d, "treatment", s_str("scan"));
    ctx.claim_data = &d.obj;
    CF_ASSERT_INT_EQ(cf_sm_create(s_hc, M, &d.obj, &ctx, &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_HAS(e.message, "field 'member' is not a valid person id");
    CF_ASSERT(!strstr(e.message, "320190"));  /* never the value */
    CF_ASSERT_INT_EQ(cf_sm_create(s_hc, M, NULL, &ctx, &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_EQ(e.message, "missing required field 'member'");

    /* an inquiry: a claim reference and a text */
    s_data_init(&d);
    s_put(&d, "claim", s_str("c-2026-000123"));
    s_put(&d, "text", s_str("when do I hear from you?"));
    ctx.claim_data = &d.obj;
    CF_ASSERT_INT_EQ(cf_sm_create(s_inq, M, &d.obj, &ctx, &r, &e), 0);
    CF_ASSERT_STR_EQ(s_inq->states[r.next.state].name, "open");
    CF_ASSERT_INT_EQ(r.nstart, 2);
    CF_ASSERT_STR_EQ(r.start[0].name, "response_warning");
    CF_ASSERT_STR_EQ(r.start[1].name, "response_due");
    s_data_init(&d);
    s_put(&d, "claim", s_str(""));
    s_put(&d, "text", s_str("x"));
    CF_ASSERT_INT_EQ(cf_sm_create(s_inq, M, &d.obj, &ctx, &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_HAS(e.message, "field 'claim' must be a claim id");
}

/* ------------------------------------------------------------- $previous --- */

static void test_previous(void)
{
    cf_sm_result_t r;
    cf_error_t e;
    int ir = S(s_hc, "in_review"), cw = S(s_hc, "consent_withdrawn");
    /* in review, consent withdrawn: its timers cancelled */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", S(s_hc, "awaiting_consent"), 1,
                             "consent.withdrawn", SY, NULL, false, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.state, cw);
    CF_ASSERT_INT_EQ(r.next.prev, ir);
    CF_ASSERT_INT_EQ(r.next.flags, 1);  /* flags stay */
    CF_ASSERT_INT_EQ(r.ncancel, 2);
    /* consent given again: back to review, timers started afresh */
    cf_sm_claim_t cur = r.next;
    cf_sm_ctx_t ctx = s_ctx(true);
    CF_ASSERT_INT_EQ(cf_sm_apply(s_hc, &cur, "consent.given", 13, SY, NULL, &ctx, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.state, ir);
    CF_ASSERT_INT_EQ(r.next.prev, cw);
    CF_ASSERT_INT_EQ(r.returned_to, ir);
    CF_ASSERT_INT_EQ(r.nstart, 2);
    CF_ASSERT_INT_EQ(r.ncancel, 2);   /* consent_withdrawn's reminder and expiry */
    CF_ASSERT_INT_EQ(r.next.flags, 1);

    /* back to awaiting_consent, whose auto goes on to review */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "consent_withdrawn", S(s_hc, "awaiting_consent"), 0,
                             "consent.given", SY, NULL, true, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.state, ir);
    CF_ASSERT_INT_EQ(r.next.prev, cw);
    CF_ASSERT_INT_EQ(r.nstart, 2);

    /* no previous state */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "consent_withdrawn", -1, 0, "consent.given", SY, NULL,
                             true, &r, &e), CF_EINVTRANS);
    CF_ASSERT_STR_HAS(e.message, "state 'consent_withdrawn' has none");
}

/* ---------------------------------------------------------------- guards --- */

static void test_guards(void)
{
    cf_sm_ctx_t c = s_ctx(true);
    CF_ASSERT(cf_sm_guard_holds(CF_GUARD_CONSENT_VALID, &c));
    c.now = c.consent_valid_until - 1;
    CF_ASSERT(cf_sm_guard_holds(CF_GUARD_CONSENT_VALID, &c));
    c.now = c.consent_valid_until;  /* expired at valid_until */
    CF_ASSERT(!cf_sm_guard_holds(CF_GUARD_CONSENT_VALID, &c));
    c = s_ctx(true);
    c.consent_withdrawn_at = NOW - 10;
    CF_ASSERT(!cf_sm_guard_holds(CF_GUARD_CONSENT_VALID, &c));
    c = s_ctx(false);
    CF_ASSERT(!cf_sm_guard_holds(CF_GUARD_CONSENT_VALID, &c));
    c.consent_valid_until = NOW + 1000;  /* a date without a given consent */
    CF_ASSERT(!cf_sm_guard_holds(CF_GUARD_CONSENT_VALID, &c));
    CF_ASSERT(!cf_sm_guard_holds(0x80, &c));

    /* through an event: fails with no consent, names the guard */
    cf_sm_result_t r;
    cf_error_t e;
    CF_ASSERT_INT_EQ(s_apply(s_hc, "awaiting_consent", -1, 0, "consent.given", SY, NULL,
                             false, &r, &e), CF_EGUARD);
    CF_ASSERT_INT_EQ(e.code, CF_EGUARD);
    CF_ASSERT_STR_EQ(e.message, "guard 'consent_valid' failed: the member has no valid consent");
    CF_ASSERT_INT_EQ(s_apply(s_hc, "consent_withdrawn", S(s_hc, "in_review"), 0,
                             "consent.given", SY, NULL, false, &r, &e), CF_EGUARD);
    /* a withdrawn consent fails too */
    cf_sm_claim_t cur = {S(s_hc, "awaiting_consent"), -1, 0};
    c = s_ctx(true);
    c.consent_withdrawn_at = NOW - 1;
    CF_ASSERT_INT_EQ(cf_sm_apply(s_hc, &cur, "consent.given", 13, SY, NULL, &c, &r, &e),
                     CF_EGUARD);
    /* and the auto guard: a document with consent lands in review */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "awaiting_referral", -1, 0, "document.referral", M, NULL,
                             true, &r, &e), 0);
    CF_ASSERT_STR_EQ(s_hc->states[r.next.state].name, "in_review");
    CF_ASSERT_INT_EQ(r.next.prev, S(s_hc, "awaiting_referral"));
    CF_ASSERT_INT_EQ(r.nstart, 2);
}

/* ---------------------------------------------------------------- errors --- */

static void test_invalid_transition(void)
{
    cf_sm_result_t r;
    cf_error_t e;
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "treatment.started", M, NULL, true,
                             &r, &e), CF_EINVTRANS);
    CF_ASSERT_INT_EQ(e.code, CF_EINVTRANS);
    CF_ASSERT_STR_EQ(e.message,
                     "event 'treatment.started' is not accepted in state 'in_review' (accepts: "
                     "sla.warning, sla.breached, document.referral, info.requested, "
                     "decision.approved, decision.denied, claim.withdrawn, consent.withdrawn, "
                     "consent.expired, consent.expiring, claim.closed): "
                     "treatment is covered only once it is pre-approved (a payment guarantee "
                     "or a network referral)");
    /* no refusal text for an event without one */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "approved", -1, 0, "decision.approved", H, NULL, true,
                             &r, &e), CF_EINVTRANS);
    CF_ASSERT_STR_EQ(e.message,
                     "event 'decision.approved' is not accepted in state 'approved' (accepts: "
                     "guarantee.issued, network.referred, settlement.paid, consent.withdrawn, "
                     "consent.expired, consent.expiring, claim.closed)");
    /* an unknown event; a final state */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "closed", -1, 0, "no.such", M, NULL, true, &r, &e),
                     CF_EINVTRANS);
    CF_ASSERT_STR_EQ(e.message,
                     "event 'no.such' is not accepted in state 'closed' (accepts: none)");
    /* the state is checked before the role */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "denied", -1, 0, "decision.approved", M, NULL, true, &r,
                             &e), CF_EINVTRANS);
    /* an out-of-range state is the caller's bug, not the member's */
    cf_sm_claim_t cur = {99, -1, 0};
    cf_sm_ctx_t c = s_ctx(true);
    CF_ASSERT_INT_EQ(cf_sm_apply(s_hc, &cur, "x", 1, M, NULL, &c, &r, &e), CF_EINTERNAL);
}

static void test_forbidden(void)
{
    cf_sm_result_t r;
    cf_error_t e;
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "decision.approved", M, NULL, true,
                             &r, &e), CF_EFORBIDDEN);
    CF_ASSERT_INT_EQ(e.code, CF_EFORBIDDEN);
    CF_ASSERT_STR_EQ(e.message, "role 'member' may not send 'decision.approved' (allowed: handler)");
    CF_ASSERT_INT_EQ(s_apply(s_hc, "complaint_review", -1, 0, "complaint.upheld", H, NULL,
                             true, &r, &e), CF_EFORBIDDEN);
    CF_ASSERT_STR_EQ(e.message, "role 'handler' may not send 'complaint.upheld' (allowed: supervisor)");
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "sla.warning", CF_ROLE_AUDITOR, NULL,
                             true, &r, &e), CF_EFORBIDDEN);
    CF_ASSERT_STR_HAS(e.message, "role 'auditor'");
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "claim.withdrawn", 0, NULL, true, &r,
                             &e), CF_EFORBIDDEN);
    /* the role is checked before the data and the guard */
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "decision.denied", M, NULL, true, &r,
                             &e), CF_EFORBIDDEN);
    CF_ASSERT_INT_EQ(s_apply(s_hc, "awaiting_consent", -1, 0, "consent.given", M, NULL,
                             false, &r, &e), CF_EFORBIDDEN);
}

/* 201 bytes: one more than guarantee.issued's provider takes */
static char s_long[202];

/* Each data violation on guarantee.issued: bad_request naming the field. */
static void test_bad_request(void)
{
    memset(s_long, 'p', 201);
    const struct {
        const char *field;   /* replaced (or added, or removed with a NULL value) */
        int kind;            /* 0 remove, 1 string, 2 int, 3 float, 4 bool, 5 nil, 6 -1 */
        const char *s;
        const char *msg;
    } cases[] = {
        {"colour", 1, "red", "unknown field 'colour'"},
        {"amount", 0, NULL, "missing required field 'amount'"},
        {"amount", 5, NULL, "missing required field 'amount'"},   /* nil is absent */
        /* amount is money: minor units of the claim's currency, >= 0 */
        {"amount", 1, "125000", "field 'amount' must be an integer amount in minor units (øre)"},
        {"amount", 3, NULL,
         "field 'amount' must be an integer amount in minor units (øre), not a float"},
        {"amount", 6, NULL, "field 'amount' must be at least 1"},   /* min: 1 */
        {"provider", 2, NULL, "field 'provider' must be a string"},
        {"provider", 1, s_long, "field 'provider' is longer than 200 bytes"},
        {"valid_until", 1, "2026-02-30", "field 'valid_until' must be a real date written YYYY-MM-DD"},
        {"valid_until", 1, "31-12-2026", "field 'valid_until' must be a real date"},
        {"valid_until", 4, NULL, "field 'valid_until' must be a real date"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_data_t d;
        s_data(&d, D_GUARANTEE);
        msgpack_object v = s_nil();
        switch (cases[i].kind) {
        case 1: v = s_str(cases[i].s); break;
        case 2: v = s_int(7); break;
        case 3: v = s_float(1250.5); break;
        case 4: v = s_bool(true); break;
        case 6: v = s_int(-1); break;
        default: break;
        }
        bool found = false;
        for (uint32_t k = 0; k < d.obj.via.map.size; k++) {
            if (d.kv[k].key.via.str.size == strlen(cases[i].field) &&
                memcmp(d.kv[k].key.via.str.ptr, cases[i].field, strlen(cases[i].field)) == 0) {
                found = true;
                if (cases[i].kind == 0) {
                    d.kv[k] = d.kv[--d.obj.via.map.size];
                } else {
                    d.kv[k].val = v;
                }
                break;
            }
        }
        if (!found)
            s_put(&d, cases[i].field, v);
        cf_sm_result_t r;
        cf_error_t e;
        int rc = s_apply(s_hc, "approved", -1, 0, "guarantee.issued", H, &d.obj, true, &r, &e);
        if (rc != CF_EBADREQ || !strstr(e.message, cases[i].msg))
            fprintf(stderr, "case %zu: %s\n", i, e.message);
        CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
        CF_ASSERT_INT_EQ(e.code, CF_EBADREQ);
        CF_ASSERT_STR_HAS(e.message, cases[i].msg);
        if (cases[i].s && cases[i].kind == 1 && strcmp(cases[i].field, "colour") != 0)
            CF_ASSERT(!strstr(e.message, cases[i].s));
    }
    /* data that is not a map; data for an event that takes none */
    cf_sm_result_t r;
    cf_error_t e;
    msgpack_object s = s_str("hello");
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "decision.approved", H, &s, true,
                             &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_HAS(e.message, "data must be a map");
    s_data_t d;
    s_data_init(&d);
    s_put(&d, "reason", s_str("x"));
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "decision.approved", H, &d.obj, true,
                             &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_EQ(e.message, "unknown field 'reason' (this takes no data)");
    /* nil data is no data */
    msgpack_object nil = s_nil();
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "decision.approved", H, &nil, true,
                             &r, &e), 0);
    /* a field given twice */
    s_data_init(&d);
    s_put(&d, "reason", s_str("x"));
    s_put(&d, "reason", s_str("y"));
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", -1, 0, "decision.denied", H, &d.obj, true,
                             &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_HAS(e.message, "field 'reason' is given twice");
    /* the data is checked before the guard */
    s_data_init(&d);
    s_put(&d, "x", s_int(1));
    CF_ASSERT_INT_EQ(s_apply(s_hc, "awaiting_consent", -1, 0, "consent.given", SY, &d.obj,
                             false, &r, &e), CF_EBADREQ);
}

/* Every field type through cf_sm_check_data, on a workflow that has them all. */
static void test_check_data_types(void)
{
    static const char text[] =
        "workflow: types\nversion: 1\ncalendar: dk\n"
        "data:\n"
        "  member: {type: person_id, required: true}\n"
        "  parent: {type: claim}\n"
        "  urgent: {type: boolean}\n"
        "  count: {type: integer}\n"
        "  born: {type: date}\n"
        "  size: {type: enum, values: [s, m, l]}\n"
        "  note: {type: string, max: 5}\n"
        "states:\n  a:\n    initial: true\n    on: {go: {to: b, by: [member]}}\n"
        "  b: {final: true}\n";
    cf_wf_t *wf = NULL;
    cf_diags_t dg = {0};
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("types.yaml", text, strlen(text), &wf, &dg), 0);
    cf_error_t e;
    s_data_t d;

    s_data_init(&d);
    s_put(&d, "member", s_str("15058545640"));
    s_put(&d, "parent", s_str("c1"));
    s_put(&d, "urgent", s_bool(false));
    s_put(&d, "count", s_int(-3));
    s_put(&d, "born", s_str("2000-02-29"));
    s_put(&d, "size", s_str("m"));
    s_put(&d, "note", s_str("12345"));
    CF_ASSERT_INT_EQ(cf_sm_check_data(wf->fields, wf->nfields, &d.obj, CF_ROLE_HANDLER, NULL, &e), 0);

    struct {
        uint32_t idx;
        msgpack_object v;
        const char *msg;
    } cases[] = {
        {0, s_str("15058545641"), "field 'member' is not a valid person id"},
        {0, s_int(1505854564), "field 'member' is not a valid person id"},
        {1, s_int(1), "field 'parent' must be a claim id"},
        {2, s_str("true"), "field 'urgent' must be a boolean"},
        {3, s_float(2.0), "field 'count' must be an integer, not a float"},
        {3, s_bool(true), "field 'count' must be an integer"},
        {4, s_str("1900-02-29"), "field 'born' must be a real date"},
        {5, s_str("xl"), "field 'size' is not one of its allowed values"},
        {6, s_str("123456"), "field 'note' is longer than 5 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        msgpack_object keep = d.kv[cases[i].idx].val;
        d.kv[cases[i].idx].val = cases[i].v;
        memset(&e, 0, sizeof e);
        CF_ASSERT_INT_EQ(cf_sm_check_data(wf->fields, wf->nfields, &d.obj, CF_ROLE_HANDLER, NULL, &e), CF_EBADREQ);
        CF_ASSERT_STR_HAS(e.message, cases[i].msg);
        d.kv[cases[i].idx].val = keep;
    }
    /* an empty key (msgpack may give it a NULL ptr) */
    d.kv[0].key.via.str.ptr = NULL;
    d.kv[0].key.via.str.size = 0;
    CF_ASSERT_INT_EQ(cf_sm_check_data(wf->fields, wf->nfields, &d.obj, CF_ROLE_HANDLER, NULL, &e), CF_EBADREQ);
    CF_ASSERT_STR_EQ(e.message, "unknown field ''");
    /* a non-string key */
    d.kv[0].key = s_int(5);
    CF_ASSERT_INT_EQ(cf_sm_check_data(wf->fields, wf->nfields, &d.obj, CF_ROLE_HANDLER, NULL, &e), CF_EBADREQ);
    CF_ASSERT_STR_HAS(e.message, "data keys must be field names");
    cf_wf_destroy(&wf);
}

static void test_flags(void)
{
    cf_sm_result_t r;
    cf_error_t e;
    int w = cf_wf_flag_find(s_hc, "sla.warning"), b = cf_wf_flag_find(s_hc, "sla.breached");
    CF_ASSERT(w >= 0 && b >= 0 && w != b);
    CF_ASSERT_INT_EQ(cf_wf_flag_find(s_hc, "nope"), -1);
    CF_ASSERT_INT_EQ(s_apply(s_hc, "in_review", 3, 0, "sla.warning", SY, NULL, true, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.flags, UINT64_C(1) << w);
    CF_ASSERT(!r.state_changed);
    CF_ASSERT_INT_EQ(r.next.prev, 3);  /* unchanged when the state is */
    CF_ASSERT_INT_EQ(r.ncancel + r.nstart, 0);
    cf_sm_claim_t cur = r.next;
    cf_sm_ctx_t c = s_ctx(true);
    CF_ASSERT_INT_EQ(cf_sm_apply(s_hc, &cur, "sla.breached", 12, SY, NULL, &c, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.flags, (UINT64_C(1) << w) | (UINT64_C(1) << b));
    /* flags stay as a record across later transitions, unless cleared: a
     * decision clears the deadline's flags (health_claim 4) */
    cur = r.next;
    CF_ASSERT_INT_EQ(cf_sm_apply(s_hc, &cur, "consent.withdrawn", 17, SY, NULL, &c, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.flags, (UINT64_C(1) << w) | (UINT64_C(1) << b));
    CF_ASSERT_INT_EQ(cf_sm_apply(s_hc, &cur, "decision.approved", 17, H, NULL, &c, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.flags, 0);

    /* clear, on a workflow that uses it */
    static const char text[] =
        "workflow: f\nversion: 1\ncalendar: dk\n"
        "states:\n  a:\n    initial: true\n    on:\n"
        "      mark: {by: [system], set: [x.one, x.two]}\n"
        "      unmark: {by: [system], clear: [x.one]}\n"
        "      go: {to: b, by: [member]}\n"
        "  b: {final: true}\n";
    cf_wf_t *wf = NULL;
    cf_diags_t dg = {0};
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("f.yaml", text, strlen(text), &wf, &dg), 0);
    CF_ASSERT_INT_EQ(wf->nflags, 2);
    cur = (cf_sm_claim_t){0, -1, 0};
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "mark", 4, SY, NULL, &c, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.flags, 3);
    cur = r.next;
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "unmark", 6, SY, NULL, &c, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.next.flags, 2);
    cf_wf_destroy(&wf);
}

/* A cycle of autos in a definition ends after nstates steps, not never. */
/* ------------------------------------------------- issue 16 features --- */

static const char s_after_text[] =
    "workflow: after\nversion: 1\ncalendar: dk\n"
    "data:\n"
    "  member: {type: person_id, required: true}\n"
    "  granted: {type: money, internal: true}\n"
    "  outcome: {type: enum, values: [yes, no], internal: true}\n"
    "states:\n"
    "  a:\n    initial: true\n    on:\n"
    "      grant:\n        to: a\n        by: [handler]\n"
    "        data:\n"
    "          amount: {type: money, required: true, min: 1, max: 5000000}\n"
    "          until: {type: date, not_before: today, not_after: +1y}\n"
    "          count: {type: integer, min: -5, max: 5}\n"
    "        record: {amount: granted}\n"
    "      pay:\n        by: [handler, supervisor]\n"
    "        data: {amount: {type: money, required: true, max: {claim: granted, except_by: [supervisor]}}}\n"
    "      upheld: {by: [handler], set: [upheld]}\n"
    "      complain: {to: r, by: [member], if_set: [upheld], if_clear: [lapsed]}\n"
    "      lapse: {by: [system], set: [lapsed]}\n"
    "      decide:\n        to: d\n        by: [handler]\n"
    "        data: {outcome: {type: enum, values: [yes, no], required: true}}\n"
    "        record: {outcome: outcome}\n"
    "    refusals: {nothing: \"not here\"}\n"
    "  r:\n    owner: required\n    on:\n"
    "      answer: {to: a, by: [supervisor]}\n"
    "      note: {by: [member]}\n"
    "      back: {to: $previous, by: [member]}\n"
    "      nothing: {by: [member]}\n"
    "  d:\n    auto:\n      - {to: y, when: {field: outcome, in: [yes]}}\n      - {to: n}\n"
    "  y: {final: true}\n  n: {final: true}\n"
    "refusals: {nothing: \"never\", complain: \"a complaint follows an upheld decision\"}\n";

static void test_bounds(void)
{
    cf_wf_t *wf = NULL;
    cf_diags_t dg = {0};
    int rc = cf_wf_load_buffer("after.yaml", s_after_text, strlen(s_after_text), &wf, &dg);
    if (rc)
        cf_diags_print(&dg, stderr);
    CF_ASSERT_INT_EQ(rc, 0);
    cf_sm_claim_t cur = {S(wf, "a"), -1, 0};
    cf_sm_ctx_t ctx = s_ctx(true);
    ctx.today = cf_days_from_civil(2026, 3, 2);
    cf_sm_result_t r;
    cf_error_t e;
    s_data_t d;
    struct {
        msgpack_object amount;
        const char *until;
        int64_t count;
        int rc;
        const char *msg;
    } cases[] = {
        {s_int(150000), "2026-03-02", 0, 0, NULL},
        {s_int(150000), "2027-03-02", 5, 0, NULL},
        {s_int(1), "2026-06-30", -5, 0, NULL},
        {s_int(-150000), "2026-06-30", 0, CF_EBADREQ, "field 'amount' must be at least 1"},
        {s_int(0), "2026-06-30", 0, CF_EBADREQ, "field 'amount' must be at least 1"},
        {s_int(5000001), "2026-06-30", 0, CF_EBADREQ, "field 'amount' must be at most 5000000"},
        {s_int(100), "2026-03-01", 0, CF_EBADREQ,
         "field 'until' must not be before today (2026-03-02)"},
        {s_int(100), "2020-01-01", 0, CF_EBADREQ,
         "field 'until' must not be before today (2026-03-02)"},
        {s_int(100), "2027-03-03", 0, CF_EBADREQ,
         "field 'until' must not be after today + 1y (2027-03-02)"},
        {s_int(100), "2026-06-30", 6, CF_EBADREQ, "field 'count' must be at most 5"},
        {s_int(100), "2026-06-30", -6, CF_EBADREQ, "field 'count' must be at least -5"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        s_data_init(&d);
        s_put(&d, "amount", cases[i].amount);
        s_put(&d, "until", s_str(cases[i].until));
        s_put(&d, "count", s_int(cases[i].count));
        memset(&e, 0, sizeof e);
        CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "grant", 5, H, &d.obj, &ctx, &r, &e),
                         cases[i].rc);
        if (cases[i].msg)
            CF_ASSERT_STR_EQ(e.message, cases[i].msg);
    }
    /* never the value in a message */
    s_data_init(&d);
    s_put(&d, "amount", s_int(-150000));
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "grant", 5, H, &d.obj, &ctx, &r, &e), CF_EBADREQ);
    CF_ASSERT(strstr(e.message, "150000") == NULL);

    /* a bound on a claim field: binds the handler, not the supervisor, and
     * nobody while the claim has no such value */
    s_data_t claim;
    s_data_init(&claim);
    s_put(&claim, "member", s_str("15058545640"));
    ctx.claim_data = &claim.obj;
    s_data_init(&d);
    s_put(&d, "amount", s_int(200000));
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "pay", 3, H, &d.obj, &ctx, &r, &e), 0);
    s_put(&claim, "granted", s_int(150000));
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "pay", 3, H, &d.obj, &ctx, &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_EQ(e.message, "field 'amount' must not be above the claim's 'granted' "
                     "(unless sent by a supervisor)");
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "pay", 3, SU, &d.obj, &ctx, &r, &e), 0);
    d.kv[0].val = s_int(150000);
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "pay", 3, H, &d.obj, &ctx, &r, &e), 0);
    /* without a context (no claim, no today) those bounds are not checked */
    d.kv[0].val = s_int(900000);
    CF_ASSERT_INT_EQ(cf_sm_check_data(wf->states[cur.state].events[1].fields, 1, &d.obj, H,
                                      NULL, &e), 0);

    /* internal fields are not given at creation */
    s_data_t cd;
    s_data_init(&cd);
    s_put(&cd, "member", s_str("15058545640"));
    s_put(&cd, "granted", s_int(1));
    CF_ASSERT_INT_EQ(cf_sm_create(wf, M, &cd.obj, &ctx, &r, &e), CF_EBADREQ);
    CF_ASSERT_STR_EQ(e.message, "field 'granted' is recorded by the claim's events; it cannot "
                     "be given when the claim is created");
    cf_wf_destroy(&wf);
}

static void test_flag_conditions_owner_record(void)
{
    cf_wf_t *wf = NULL;
    cf_diags_t dg = {0};
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("after.yaml", s_after_text, strlen(s_after_text), &wf,
                                       &dg), 0);
    int up = cf_wf_flag_find(wf, "upheld"), lapsed = cf_wf_flag_find(wf, "lapsed");
    CF_ASSERT(up >= 0 && lapsed >= 0);
    cf_sm_claim_t cur = {S(wf, "a"), -1, 0};
    cf_sm_ctx_t ctx = s_ctx(true);
    cf_sm_result_t r;
    cf_error_t e;
    /* if_set: the flag must be set; the refusal text follows */
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "complain", 8, M, NULL, &ctx, &r, &e), CF_EGUARD);
    CF_ASSERT_STR_EQ(e.message, "event 'complain' needs flag 'upheld' set: a complaint follows "
                     "an upheld decision");
    cur.flags = UINT64_C(1) << up;
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "complain", 8, M, NULL, &ctx, &r, &e), 0);
    CF_ASSERT_STR_EQ(wf->states[r.next.state].name, "r");
    CF_ASSERT_INT_EQ(r.returned_to, -1);
    /* if_clear */
    cur.flags |= UINT64_C(1) << lapsed;
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "complain", 8, M, NULL, &ctx, &r, &e), CF_EGUARD);
    CF_ASSERT_STR_HAS(e.message, "event 'complain' needs flag 'lapsed' clear");

    /* owner: required binds operators, not the member or the system */
    cf_sm_claim_t inr = {S(wf, "r"), S(wf, "a"), 0};
    ctx.has_owner = false;
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &inr, "answer", 6, SU, NULL, &ctx, &r, &e), CF_EGUARD);
    CF_ASSERT_STR_EQ(e.message, "state 'r' needs an owner before 'answer' is accepted "
                     "(assign the claim first: op assign)");
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &inr, "note", 4, M, NULL, &ctx, &r, &e), 0);
    ctx.has_owner = true;
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &inr, "answer", 6, SU, NULL, &ctx, &r, &e), 0);
    /* $previous says where it returned */
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &inr, "back", 4, M, NULL, &ctx, &r, &e), 0);
    CF_ASSERT_INT_EQ(r.returned_to, S(wf, "a"));
    /* a state's refusal text before the workflow's */
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "nothing", 7, M, NULL, &ctx, &r, &e),
                     CF_EINVTRANS);
    CF_ASSERT_STR_HAS(e.message, "): not here");
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &(cf_sm_claim_t){S(wf, "d"), -1, 0}, "nothing", 7, M,
                                 NULL, &ctx, &r, &e), CF_EINVTRANS);
    CF_ASSERT_STR_HAS(e.message, "): never");

    /* record: the autos after the event see the recorded value */
    s_data_t claim, d;
    s_data_init(&claim);
    s_put(&claim, "member", s_str("15058545640"));
    ctx.claim_data = &claim.obj;
    s_data_init(&d);
    s_put(&d, "outcome", s_str("yes"));
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "decide", 6, H, &d.obj, &ctx, &r, &e), 0);
    CF_ASSERT_STR_EQ(wf->states[r.next.state].name, "y");
    d.kv[0].val = s_str("no");
    CF_ASSERT_INT_EQ(cf_sm_apply(wf, &cur, "decide", 6, H, &d.obj, &ctx, &r, &e), 0);
    CF_ASSERT_STR_EQ(wf->states[r.next.state].name, "n");
    cf_wf_destroy(&wf);
}

static void test_auto_cycle(void)
{
    static const char text[] =
        "workflow: loop\nversion: 1\ncalendar: dk\n"
        "states:\n"
        "  a: {initial: true, auto: [{to: b}]}\n"
        "  b: {auto: [{to: c}]}\n"
        "  c: {auto: [{to: a}], on: {stop: {to: d, by: [member]}}}\n"
        "  d: {final: true}\n";
    cf_wf_t *wf = NULL;
    cf_diags_t dg = {0};
    CF_ASSERT_INT_EQ(cf_wf_load_buffer("loop.yaml", text, strlen(text), &wf, &dg), 0);
    cf_sm_result_t r;
    cf_error_t e;
    cf_sm_ctx_t c = s_ctx(false);
    CF_ASSERT_INT_EQ(cf_sm_create(wf, M, NULL, &c, &r, &e), 0);
    /* 4 states: a -> b -> c -> a -> b */
    CF_ASSERT_STR_EQ(wf->states[r.next.state].name, "b");
    cf_wf_destroy(&wf);
}

int main(void)
{
    s_hc = s_load("health_claim.yaml");
    s_inq = s_load("inquiry.yaml");
    CF_RUN(test_every_transition);
    CF_RUN(test_table_is_complete);
    CF_RUN(test_any_events);
    CF_RUN(test_create_autos);
    CF_RUN(test_create_errors);
    CF_RUN(test_previous);
    CF_RUN(test_guards);
    CF_RUN(test_invalid_transition);
    CF_RUN(test_forbidden);
    CF_RUN(test_bad_request);
    CF_RUN(test_check_data_types);
    CF_RUN(test_flags);
    CF_RUN(test_auto_cycle);
    CF_RUN(test_bounds);
    CF_RUN(test_flag_conditions_owner_record);
    cf_wf_destroy(&s_hc);
    cf_wf_destroy(&s_inq);
    return cf_test_done();
}

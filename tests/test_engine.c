/* test_engine.c: the store and the engine on real LMDB files in temp dirs,
 * driven with real protocol frames (no daemon, no mocks): lifecycles,
 * idempotency, consent, documents, workflow versions, paging, batches, map
 * growth, and a fork/SIGKILL crash test. */
#include <dirent.h>
#include <stdarg.h>
#include <errno.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cf_fixture.h"
#include "schema.h"

/* -------------------------------------------------------------- tests --- */

static void test_lifecycle(void)
{
    cf_engine_t *e = s_open();
    const char *id = s_create(e, CPR_A, "physiotherapy");
    char claim[32];
    snprintf(claim, sizeof claim, "%s", id);
    CF_ASSERT_INT_EQ(strlen(claim), 26);

    const msgpack_object *r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_A, claim);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "awaiting_referral");
    CF_ASSERT_STR_EQ(S(r, "claim.workflow"), "health_claim");
    CF_ASSERT_STR_EQ(S(r, "claim.version"), "4");
    CF_ASSERT_STR_EQ(S(r, "claim.created_at"), T0);
    CF_ASSERT_STR_EQ(S(r, "claim.owner"), "null");

    r = s_attach(e, CPR_A, claim, "referral", "application/pdf", s_pdf, sizeof s_pdf - 1);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "awaiting_consent");
    CF_ASSERT_STR_EQ(S(r, "document.kind"), "referral");
    CF_ASSERT_STR_EQ(S(r, "document.sha256"),
                     "4579fbf2740104b473bd355e10bad2bc7534f0496119a9390915199f1db01180"); /* sha256sum of s_pdf */

    r = s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_A);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "moved.0"), claim);
    CF_ASSERT_STR_EQ(S(r, "consent.given_at"), T0);
    CF_ASSERT_STR_EQ(S(r, "consent.valid_until"), "2027-11-24T09:00:00Z");
    CF_ASSERT_STR_EQ(S(r, "consent.withdrawn_at"), "null");

    r = s_call(e, O, "{'op':'get','actor':'aud','claim':'%s'}", claim);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "in_review");
    /* 1bd and 2bd on the Danish calendar from Tuesday 10:00 local. */
    CF_ASSERT_STR_EQ(S(r, "claim.timers.0.name"), "decision_warning");
    CF_ASSERT_STR_EQ(S(r, "claim.timers.0.due_at"), "2026-11-25T09:00:00Z");
    CF_ASSERT_STR_EQ(S(r, "claim.timers.1.name"), "decision_due");
    CF_ASSERT_STR_EQ(S(r, "claim.timers.1.due_at"), "2026-11-26T09:00:00Z");

    r = s_call(e, O, "{'op':'send','id':'a1','actor':'hanne','claim':'%s','event':'decision.approved'}", claim);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "approved");
    CF_ASSERT(cf_mp_path(r, "claim.timers.0") == NULL);

    r = s_call(e, O, "{'op':'send','id':'g1','actor':'hanne','claim':'%s','event':'guarantee.issued',"
               "'data':{'amount':150000,'provider':'Fysio Nord','valid_until':'2027-02-01'}}", claim);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "guarantee_issued");

    r = s_call(e, P, "{'op':'send','id':'t1','member':'%s','claim':'%s','event':'treatment.started'}",
               CPR_A, claim);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "in_treatment");

    r = s_call(e, O, "{'op':'history','actor':'hanne','claim':'%s'}", claim);
    ASSERT_OK(r);
    static const char *const want[][4] = {
        {"claim.created", "null", "awaiting_referral", "member"},
        {"document.referral", "awaiting_referral", "awaiting_consent", "member"},
        {"consent.given", "awaiting_consent", "in_review", "system"},
        {"decision.approved", "in_review", "approved", "hanne"},
        {"guarantee.issued", "approved", "guarantee_issued", "hanne"},
        {"treatment.started", "guarantee_issued", "in_treatment", "member"},
    };
    const msgpack_object *ev = cf_mp_path(r, "events");
    CF_ASSERT(ev && ev->type == MSGPACK_OBJECT_ARRAY);
    CF_ASSERT_INT_EQ(ev->via.array.size, 6);
    for (int i = 0; i < 6; i++) {
        const msgpack_object *x = &ev->via.array.ptr[i];
        CF_ASSERT_INT_EQ(atoi(S(x, "seq")), i + 1);
        CF_ASSERT_STR_EQ(S(x, "event"), want[i][0]);
        CF_ASSERT_STR_EQ(S(x, "from"), want[i][1]);
        CF_ASSERT_STR_EQ(S(x, "to"), want[i][2]);
        CF_ASSERT_STR_EQ(S(x, "actor"), want[i][3]);
        CF_ASSERT_STR_EQ(S(x, "claim"), claim);
    }
    CF_ASSERT_STR_EQ(S(r, "events.4.data.provider"), "Fysio Nord");
    CF_ASSERT_STR_EQ(S(r, "events.1.data.kind"), "referral");

    /* The published events of the last run: treatment.started. */
    const cf_pub_t *pubs;
    s_call(e, P, "{'op':'send','id':'t1','member':'%s','claim':'%s','event':'treatment.started'}",
           CPR_A, claim); /* a retry publishes nothing */
    CF_ASSERT_INT_EQ(cf_engine_published(e, &pubs), 0);
    s_close(&e);
}

static void test_treatment_before_approval(void)
{
    cf_engine_t *e = s_open();
    s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_B);
    const char *claim = s_create(e, CPR_B, "chiropractic");
    const msgpack_object *r = s_call(e, P,
        "{'op':'send','id':'t1','member':'%s','claim':'%s','event':'treatment.started'}", CPR_B, claim);
    ASSERT_ERR(r, "invalid_transition");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "in_review");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "pre-approved");
    s_close(&e);
}

static void test_idempotency(void)
{
    cf_engine_t *e = s_open();
    s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_B);
    const char *c = s_create(e, CPR_B, "chiropractic");
    char claim[32];
    snprintf(claim, sizeof claim, "%s", c);
    msgpack_sbuffer f;
    cf_mp_from_json(&f, "{'op':'send','id':'req-42','actor':'hanne','claim':'%s','event':'decision.approved'}", claim);
    const msgpack_sbuffer *raw1, *raw2;
    const msgpack_object *r1 = s_frame(e, O, f.data, f.size, &raw1);
    ASSERT_OK(r1);
    const msgpack_object *r2 = s_frame(e, O, f.data, f.size, &raw2);
    ASSERT_OK(r2);
    /* The same reply, byte for byte, and no second effect. */
    CF_ASSERT_INT_EQ(raw1->size, raw2->size);
    CF_ASSERT(memcmp(raw1->data, raw2->data, raw1->size) == 0);
    const msgpack_object *h = s_call(e, O, "{'op':'history','actor':'hanne','claim':'%s'}", claim);
    CF_ASSERT_INT_EQ(cf_mp_path(h, "events")->via.array.size, 2);
    msgpack_sbuffer_destroy(&f);
    /* Same id, different request: conflict. */
    const msgpack_object *r3 = s_call(e, O,
        "{'op':'send','id':'req-42','actor':'hanne','claim':'%s','event':'decision.denied','data':{'reason':'x'}}", claim);
    ASSERT_ERR(r3, "conflict");
    CF_ASSERT_STR_EQ(S(r3, "id"), "req-42");
    /* A different operator has its own id space. */
    const msgpack_object *r4 = s_call(e, O,
        "{'op':'send','id':'req-42','actor':'sofie','claim':'%s','event':'decision.denied','data':{'reason':'x'}}", claim);
    ASSERT_ERR(r4, "invalid_transition");
    s_close(&e);
}

static void test_consent_before_and_after(void)
{
    cf_engine_t *e = s_open();
    /* Before: the claim goes straight to review. */
    s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_B);
    const char *c1 = s_create(e, CPR_B, "chiropractic");
    const msgpack_object *r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_B, c1);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "in_review");
    /* After: it waits, then moves when consent is given. */
    const char *c2 = s_create(e, CPR_C, "chiropractic");
    char id2[32];
    snprintf(id2, sizeof id2, "%s", c2);
    r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_C, id2);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "awaiting_consent");
    /* Only the system may send consent.given: the guard path is consent. */
    r = s_call(e, O, "{'op':'send','id':'x','actor':'hanne','claim':'%s','event':'consent.given'}", id2);
    ASSERT_ERR(r, "forbidden");
    r = s_call(e, P, "{'op':'consent.give','id':'c2','member':'%s'}", CPR_C);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "moved.0"), id2);
    r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_C, id2);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "in_review");
    /* Another member's claim is not visible on the portal. */
    r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_B, id2);
    ASSERT_ERR(r, "not_found");
    s_close(&e);
}

static void test_consent_withdrawal_fanout(void)
{
    cf_engine_t *e = s_open();
    s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_C);
    s_call(e, P, "{'op':'consent.give','id':'c2','member':'%s'}", CPR_D);
    char a[32], b[32], other[32], done[32];
    snprintf(a, sizeof a, "%s", s_create(e, CPR_C, "chiropractic"));
    snprintf(b, sizeof b, "%s", s_create(e, CPR_C, "chiropractic"));
    snprintf(done, sizeof done, "%s", s_create(e, CPR_C, "chiropractic"));
    snprintf(other, sizeof other, "%s", s_create(e, CPR_D, "chiropractic"));
    ASSERT_OK(s_call(e, P, "{'op':'send','id':'w','member':'%s','claim':'%s','event':'claim.withdrawn'}", CPR_C, done));

    const msgpack_object *r = s_call(e, P, "{'op':'consent.withdraw','id':'w1','member':'%s'}", CPR_C);
    ASSERT_OK(r);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "moved")->via.array.size, 2);
    CF_ASSERT_STR_EQ(S(r, "consent.withdrawn_at"), T0);
    const char *ids[] = {a, b};
    for (int i = 0; i < 2; i++) {
        r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", ids[i]);
        CF_ASSERT_STR_EQ(S(r, "claim.state"), "consent_withdrawn");
        /* review's timers gone; the pause's reminder and expiry run */
        CF_ASSERT_STR_EQ(S(r, "claim.timers.0.name"), "reminder");
        CF_ASSERT_STR_EQ(S(r, "claim.timers.0.due_at"), "2026-12-24T09:00:00Z");
        CF_ASSERT_STR_EQ(S(r, "claim.timers.1.name"), "expiry");
        CF_ASSERT(cf_mp_path(r, "claim.timers.2") == NULL);
    }
    r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", done);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "withdrawn");
    r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", other);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "in_review");
    /* Withdrawing again: nothing to withdraw. */
    r = s_call(e, P, "{'op':'consent.withdraw','id':'w2','member':'%s'}", CPR_C);
    ASSERT_ERR(r, "not_found");
    /* Given again: both return to the state they were in. */
    r = s_call(e, P, "{'op':'consent.give','id':'c3','member':'%s'}", CPR_C);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "moved")->via.array.size, 2);
    for (int i = 0; i < 2; i++) {
        r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", ids[i]);
        CF_ASSERT_STR_EQ(S(r, "claim.state"), "in_review");
        CF_ASSERT_STR_EQ(S(r, "claim.timers.0.name"), "decision_warning");
    }
    s_close(&e);
}

static void test_consent_expiry(void)
{
    cf_engine_t *e = s_open();
    s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_C);
    char a[32];
    snprintf(a, sizeof a, "%s", s_create(e, CPR_C, "chiropractic"));
    /* approved: a state without timers of its own */
    ASSERT_OK(s_call(e, O, "{'op':'send','id':'i1','actor':'hanne','claim':'%s','event':'decision.approved'}", a));
    /* A year later, to the second, the consent runs out. */
    const msgpack_object *r = s_call(e, O, "{'op':'clock.set','actor':'hanne','at':'2027-11-24T08:59:59Z'}");
    ASSERT_OK(r);
    r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", a);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "approved");
    r = s_call(e, O, "{'op':'clock.advance','actor':'hanne','seconds':1}");
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "fired"), "1");
    r = s_call(e, O, "{'op':'history','actor':'hanne','claim':'%s'}", a);
    /* 30 days before, the reminder; the claim stays where it is. */
    CF_ASSERT_STR_EQ(S(r, "events.2.event"), "consent.expiring");
    CF_ASSERT_STR_EQ(S(r, "events.2.at"), "2027-10-25T09:00:00Z");
    CF_ASSERT_STR_EQ(S(r, "events.2.to"), "approved");
    CF_ASSERT_STR_EQ(S(r, "events.3.event"), "consent.expired");
    CF_ASSERT_STR_EQ(S(r, "events.3.to"), "consent_withdrawn");
    CF_ASSERT_STR_EQ(S(r, "events.3.actor"), "system");
    s_close(&e);
}

static void test_documents(void)
{
    cf_engine_t *e = s_open();
    char claim[32];
    snprintf(claim, sizeof claim, "%s", s_create(e, CPR_A, "scan"));
    const char notpdf[] = "GIF89a........";
    const msgpack_object *r = s_attach(e, CPR_A, claim, "referral", "application/pdf", notpdf, sizeof notpdf - 1);
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "%PDF-");
    r = s_attach(e, CPR_A, claim, "referral", "image/gif", s_pdf, sizeof s_pdf - 1);
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "content_type");
    size_t big = ((size_t)10 << 20) + 1;
    char *huge = malloc(big);
    CF_ASSERT(huge);
    memcpy(huge, "%PDF-", 5);
    memset(huge + 5, 'x', big - 5);
    r = s_attach(e, CPR_A, claim, "referral", "application/pdf", huge, big);
    free(huge);
    ASSERT_ERR(r, "too_large");
    /* Nothing was stored by the refusals. */
    r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_A, claim);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "awaiting_referral");
    CF_ASSERT(cf_mp_path(r, "claim.documents.0") == NULL);
    r = s_attach(e, CPR_A, claim, "referral", "application/pdf", s_pdf, sizeof s_pdf - 1);
    ASSERT_OK(r);
    char sha[80];
    snprintf(sha, sizeof sha, "%s", S(r, "document.sha256"));
    CF_ASSERT_STR_EQ(S(r, "claim.documents.0.sha256"), sha);
    r = s_call(e, O, "{'op':'document','actor':'hanne','claim':'%s','sha256':'%s'}", claim, sha);
    ASSERT_OK(r);
    const msgpack_object *body = cf_mp_path(r, "document.body");
    CF_ASSERT(body && body->type == MSGPACK_OBJECT_BIN);
    CF_ASSERT_INT_EQ(body->via.bin.size, sizeof s_pdf - 1);
    CF_ASSERT(memcmp(body->via.bin.ptr, s_pdf, body->via.bin.size) == 0);
    CF_ASSERT_STR_EQ(S(r, "document.content_type"), "application/pdf");
    /* A corrected referral before the decision: both kept, in order. */
    static const char pdf2[] = "%PDF-1.4 corrected";
    r = s_attach(e, CPR_A, claim, "referral", "application/pdf", pdf2, sizeof pdf2 - 1);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "awaiting_consent");
    CF_ASSERT_STR_EQ(S(r, "claim.documents.0.sha256"), sha);
    CF_ASSERT_STR_EQ(S(r, "claim.documents.1.kind"), "referral");
    /* An invoice is not taken before treatment: nothing stored. */
    r = s_attach(e, CPR_A, claim, "invoice", "application/pdf", s_pdf, sizeof s_pdf - 1);
    ASSERT_ERR(r, "invalid_transition");
    r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_A, claim);
    CF_ASSERT(cf_mp_path(r, "claim.documents.2") == NULL);
    /* Document events only come with a document. */
    r = s_call(e, P, "{'op':'send','id':'d','member':'%s','claim':'%s','event':'document.referral'}", CPR_A, claim);
    ASSERT_ERR(r, "bad_request");
    s_close(&e);
}

static void s_copy_file(const char *from, const char *to, const char *replace, const char *with)
{
    FILE *f = fopen(from, "rb");
    CF_ASSERT(f);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    FILE *o = fopen(to, "wb");
    CF_ASSERT(o);
    char *at = replace ? strstr(buf, replace) : NULL;
    if (replace)
        CF_ASSERT(at != NULL);
    if (at) {
        fwrite(buf, 1, (size_t)(at - buf), o);
        fputs(with, o);
        fputs(at + strlen(replace), o);
    } else {
        fwrite(buf, 1, n, o);
    }
    fclose(o);
}

static void test_workflow_versions(void)
{
    const char *tmp = s_mktemp();
    char wf[300], data[300], src[1024], dst[1024];
    snprintf(wf, sizeof wf, "%s/wf", tmp);
    snprintf(data, sizeof data, "%s/data", tmp);
    mkdir(wf, 0700);
    const char *files[] = {"calendars.yaml", "health_claim.yaml", "inquiry.yaml"};
    for (int i = 0; i < 3; i++) {
        snprintf(src, sizeof src, "%s/workflows/%s", cf_test_srcdir(), files[i]);
        snprintf(dst, sizeof dst, "%s/%s", wf, files[i]);
        s_copy_file(src, dst, NULL, NULL);
    }
    cf_engine_t *e = s_open_at(data, wf, 0, false);
    s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_B);
    char old[32];
    snprintf(old, sizeof old, "%s", s_create(e, CPR_B, "chiropractic"));
    cf_engine_destroy(&e);
    s_free_replies();

    /* Version 5 replaces the file; version 4 lives on in the store. */
    snprintf(src, sizeof src, "%s/workflows/health_claim.yaml", cf_test_srcdir());
    snprintf(dst, sizeof dst, "%s/health_claim.yaml", wf);
    s_copy_file(src, dst, "version: 4", "version: 5");
    e = s_open_at(data, wf, 0, false);
    const msgpack_object *r = s_call(e, P, "{'op':'ping'}");
    ASSERT_OK(r);
    r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", old);
    CF_ASSERT_STR_EQ(S(r, "claim.version"), "4");
    ASSERT_OK(s_call(e, O, "{'op':'send','id':'a','actor':'hanne','claim':'%s','event':'decision.approved'}", old));
    char nw[32];
    snprintf(nw, sizeof nw, "%s", s_create(e, CPR_B, "chiropractic"));
    r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", nw);
    CF_ASSERT_STR_EQ(S(r, "claim.version"), "5");
    cf_engine_destroy(&e);
    s_free_replies();

    /* A changed file under a version the store holds is refused. */
    s_copy_file(src, dst, "version: 4", "version: 5\n# changed\n");
    cf_time_t t0;
    cf_time_parse(T0, strlen(T0), &t0);
    cf_engine_opts_t o = {.data_dir = data, .workflows_dir = wf, .manual_clock = true,
                          .manual_start = t0};
    cf_diags_t d = {0};
    CF_ASSERT_INT_EQ(cf_engine_open(&o, &e, &d), CF_EBADREQ);
    CF_ASSERT(d.n >= 1);
    CF_ASSERT_STR_HAS(d.v[0].message, "differs from the version 5");
    cf_diags_clear(&d);
    s_rmrf(s_tmp);
}

static void test_paging(void)
{
    cf_engine_t *e = s_open();
    /* 250 claims waiting for consent, created in batches of 50. */
    for (int b = 0; b < 5; b++) {
        cf_request_t reqs[50];
        cf_reply_t reps[50];
        msgpack_sbuffer fr[50];
        for (int i = 0; i < 50; i++) {
            cf_mp_from_json(&fr[i], "{'op':'create','id':'p%d','member':'%s','workflow':'health_claim',"
                            "'data':{'member':'%s','treatment':'chiropractic'}}", b * 50 + i, CPR_D, CPR_D);
            reqs[i] = (cf_request_t){P, NULL, fr[i].data, fr[i].size};
            cf_reply_init(&reps[i]);
        }
        CF_ASSERT_INT_EQ(cf_engine_run(e, reqs, 50, reps), 0);
        for (int i = 0; i < 50; i++) {
            CF_ASSERT_INT_EQ(reps[i].code, 0);
            cf_reply_fini(&reps[i]);
            msgpack_sbuffer_destroy(&fr[i]);
        }
    }
    char after[1100] = "";
    char prev[32] = "";
    int total = 0, pages = 0;
    for (;;) {
        const msgpack_object *r;
        if (after[0])
            r = s_call(e, O, "{'op':'query','actor':'aud','workflow':'health_claim','state':'awaiting_consent','limit':100,'after':'%s'}", after);
        else
            r = s_call(e, O, "{'op':'query','actor':'aud','workflow':'health_claim','state':'awaiting_consent','limit':100}");
        ASSERT_OK(r);
        const msgpack_object *cl = cf_mp_path(r, "claims");
        pages++;
        for (uint32_t i = 0; i < cl->via.array.size; i++) {
            const char *id = S(&cl->via.array.ptr[i], "id");
            CF_ASSERT(strcmp(prev, id) < 0); /* creation order, no repeats */
            snprintf(prev, sizeof prev, "%s", id);
            total++;
        }
        const char *next = S(r, "next");
        if (!next) {
            CF_ASSERT_INT_EQ(cl->via.array.size, 50);
            break;
        }
        CF_ASSERT_INT_EQ(cl->via.array.size, 100);
        snprintf(after, sizeof after, "%s", next);
    }
    CF_ASSERT_INT_EQ(total, 250);
    CF_ASSERT_INT_EQ(pages, 3);
    /* The member's claims, on the portal. */
    const msgpack_object *r = s_call(e, P, "{'op':'query','member':'%s','limit':1000}", CPR_D);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "claims")->via.array.size, 250);
    r = s_call(e, P, "{'op':'query','member':'%s'}", CPR_A);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "claims")->via.array.size, 0);
    r = s_call(e, O, "{'op':'stats','actor':'aud'}");
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "states.0.state"), "awaiting_consent");
    CF_ASSERT_STR_EQ(S(r, "states.0.count"), "250");
    CF_ASSERT_STR_EQ(S(r, "claims"), "250");
    s_close(&e);
}

static void test_batch_one_fails(void)
{
    cf_engine_t *e = s_open();
    msgpack_sbuffer f[3];
    cf_mp_from_json(&f[0], "{'op':'create','id':'b1','member':'%s','workflow':'health_claim','data':{'member':'%s','treatment':'scan'}}", CPR_A, CPR_A);
    cf_mp_from_json(&f[1], "{'op':'create','id':'b2','member':'%s','workflow':'health_claim','data':{'member':'%s','treatment':'massage'}}", CPR_A, CPR_A);
    cf_mp_from_json(&f[2], "{'op':'create','id':'b3','member':'%s','workflow':'health_claim','data':{'member':'%s','treatment':'surgery'}}", CPR_A, CPR_A);
    cf_request_t reqs[3];
    cf_reply_t reps[3];
    for (int i = 0; i < 3; i++) {
        reqs[i] = (cf_request_t){P, NULL, f[i].data, f[i].size};
        cf_reply_init(&reps[i]);
    }
    CF_ASSERT_INT_EQ(cf_engine_run(e, reqs, 3, reps), 0);
    CF_ASSERT_INT_EQ(reps[0].code, 0);
    CF_ASSERT_INT_EQ(reps[1].code, CF_EBADREQ);
    CF_ASSERT_INT_EQ(reps[2].code, 0);
    CF_ASSERT(reps[0].wrote && reps[2].wrote);
    for (int i = 0; i < 3; i++) {
        cf_reply_fini(&reps[i]);
        msgpack_sbuffer_destroy(&f[i]);
    }
    const msgpack_object *r = s_call(e, P, "{'op':'query','member':'%s'}", CPR_A);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "claims")->via.array.size, 2);
    CF_ASSERT_STR_EQ(S(r, "claims.0.data.treatment"), "scan");
    CF_ASSERT_STR_EQ(S(r, "claims.1.data.treatment"), "surgery");
    s_close(&e);
}

static void test_errors(void)
{
    cf_engine_t *e = s_open();
    const msgpack_object *r;
    r = s_frame(e, P, "\xc1", 1, NULL);
    ASSERT_ERR(r, "bad_request");
    r = s_frame(e, P, "\x92\x01\x02", 3, NULL);
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "map");
    r = s_frame(e, P, "\x82\xa2op", 4, NULL);
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "truncated");
    r = s_call(e, P, "{'op':'fly'}");
    ASSERT_ERR(r, "unknown_op");
    r = s_call(e, P, "{'op':'get','member':'%s','claim':'01ARZ3NDEKTSV4RRFFQ69G5FAV'}", CPR_A);
    ASSERT_ERR(r, "not_found");
    r = s_call(e, P, "{'op':'get','member':'12345','claim':'x'}");
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "member");
    r = s_call(e, P, "{'op':'create','member':'%s','workflow':'health_claim','data':{}}", CPR_A);
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "'id'");
    r = s_call(e, P, "{'op':'stats'}");
    ASSERT_ERR(r, "forbidden");
    r = s_call(e, O, "{'op':'stats','actor':'mallory'}");
    ASSERT_ERR(r, "forbidden");
    r = s_call(e, O, "{'op':'create','id':'x','actor':'aud','workflow':'health_claim','data':{}}");
    ASSERT_ERR(r, "forbidden");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "auditor");
    r = s_call(e, O, "{'op':'get','actor':'hanne','claim':'x','color':'red'}");
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "'color'");
    r = s_call(e, P, "{'op':'consent.give','id':'z','member':'%s','extra':1}", CPR_A);
    ASSERT_ERR(r, "bad_request");
    /* No person id in any message. */
    r = s_call(e, P, "{'op':'create','id':'y','member':'%s','workflow':'health_claim','data':{'member':'%s','treatment':'scan'}}", CPR_A, CPR_B);
    ASSERT_ERR(r, "bad_request");
    CF_ASSERT(strstr(S(r, "error.message"), CPR_A) == NULL);
    CF_ASSERT(strstr(S(r, "error.message"), "020285") == NULL);
    s_close(&e);
}

static void test_map_growth_and_full(void)
{
    /* Growing: a 1 MiB map takes 300 claims by growing. */
    const char *tmp = s_mktemp();
    char data[300];
    snprintf(data, sizeof data, "%s/grow", tmp);
    cf_engine_t *e = s_open_at(data, NULL, 1 << 20, false);
    for (int i = 0; i < 300; i++) {
        const msgpack_object *r = s_call(e, P,
            "{'op':'create','id':'g%d','member':'%s','workflow':'health_claim','data':{'member':'%s','treatment':'scan','description':'%0900d'}}",
            i, CPR_A, CPR_A, i);
        ASSERT_OK(r);
    }
    cf_engine_destroy(&e);
    s_free_replies();
    /* Not growing: writes fail `unavailable`, reads go on. */
    snprintf(data, sizeof data, "%s/full", tmp);
    e = s_open_at(data, NULL, 1 << 20, true);
    int ok = 0, full = 0;
    char first[32] = "";
    for (int i = 0; i < 2000 && full < 3; i++) {
        const msgpack_object *r = s_call(e, P,
            "{'op':'create','id':'f%d','member':'%s','workflow':'health_claim','data':{'member':'%s','treatment':'scan','description':'%0900d'}}",
            i, CPR_A, CPR_A, i);
        if (cf_mp_path(r, "ok")->via.boolean) {
            ok++;
            if (!first[0])
                snprintf(first, sizeof first, "%s", S(r, "claim.id"));
        } else {
            ASSERT_ERR(r, "unavailable");
            full++;
        }
    }
    CF_ASSERT(ok > 10);
    CF_ASSERT_INT_EQ(full, 3);
    const msgpack_object *r = s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_A, first);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "awaiting_referral");
    cf_engine_destroy(&e);
    s_free_replies();
    s_rmrf(s_tmp);
}

static void test_roles_and_audit(void)
{
    cf_engine_t *e = s_open();
    s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", CPR_B);
    char claim[32];
    snprintf(claim, sizeof claim, "%s", s_create(e, CPR_B, "chiropractic"));
    /* An auditor reads and never writes. */
    const msgpack_object *r = s_call(e, O, "{'op':'send','id':'a','actor':'aud','claim':'%s','event':'decision.approved'}", claim);
    ASSERT_ERR(r, "forbidden");
    ASSERT_OK(s_call(e, O, "{'op':'send','id':'d','actor':'hanne','claim':'%s','event':'decision.denied','data':{'reason':'r'}}", claim));
    ASSERT_OK(s_call(e, P, "{'op':'send','id':'rr','member':'%s','claim':'%s','event':'reconsideration.requested','data':{'text':'t'}}", CPR_B, claim));
    ASSERT_OK(s_call(e, O, "{'op':'send','id':'du','actor':'hanne','claim':'%s','event':'decision.upheld','data':{'reason':'r'}}", claim));
    ASSERT_OK(s_call(e, P, "{'op':'send','id':'f','member':'%s','claim':'%s','event':'complaint.filed','data':{'text':'t'}}", CPR_B, claim));
    ASSERT_OK(s_call(e, O, "{'op':'assign','id':'as','actor':'sofie','claim':'%s','to':'sofie'}", claim));
    /* A handler cannot uphold a complaint; a supervisor can. */
    r = s_call(e, O, "{'op':'send','id':'u1','actor':'hanne','claim':'%s','event':'complaint.upheld'}", claim);
    ASSERT_ERR(r, "forbidden");
    CF_ASSERT_STR_HAS(S(r, "error.message"), "handler");
    ASSERT_OK(s_call(e, O, "{'op':'send','id':'u2','actor':'sofie','claim':'%s','event':'complaint.upheld'}", claim));

    /* Every operator request naming the claim is logged, once, whatever its
     * outcome (the refused upheld too: its error tells the claim's state);
     * portal reads (the member's own) are not. */
    ASSERT_OK(s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", claim));
    ASSERT_OK(s_call(e, O, "{'op':'history','actor':'hanne','claim':'%s'}", claim));
    ASSERT_OK(s_call(e, O, "{'op':'query','actor':'aud','workflow':'health_claim'}"));
    ASSERT_OK(s_call(e, P, "{'op':'get','member':'%s','claim':'%s'}", CPR_B, claim));
    r = s_call(e, O, "{'op':'audit','actor':'aud','claim':'%s'}", claim);
    ASSERT_OK(r);
    const msgpack_object *en = cf_mp_path(r, "entries");
    CF_ASSERT_INT_EQ(en->via.array.size, 8);
    static const char *const want[][2] = {{"send", "hanne"}, {"send", "hanne"},
                                          {"assign", "sofie"}, {"send", "hanne"},
                                          {"send", "sofie"}, {"get", "hanne"},
                                          {"history", "hanne"}, {"query", "aud"}};
    for (int i = 0; i < 8; i++) {
        char path[32];
        snprintf(path, sizeof path, "entries.%d.op", i);
        CF_ASSERT_STR_EQ(S(r, path), want[i][0]);
        snprintf(path, sizeof path, "entries.%d.actor", i);
        CF_ASSERT_STR_EQ(S(r, path), want[i][1]);
        snprintf(path, sizeof path, "entries.%d.claims.0", i);
        CF_ASSERT_STR_EQ(S(r, path), claim);
    }
    r = s_call(e, O, "{'op':'audit','actor':'sofie','operator':'hanne'}");
    CF_ASSERT_INT_EQ(cf_mp_path(r, "entries")->via.array.size, 5);   /* 3 sends, get, history */
    /* The log itself is for auditors and supervisors only. */
    r = s_call(e, O, "{'op':'audit','actor':'hanne','claim':'%s'}", claim);
    ASSERT_ERR(r, "forbidden");
    s_close(&e);
}

/* The access log of a store from before the binary ids: an entry written
 * the old way (ids as 26 characters, record and index) reads back beside
 * new ones, in time order, by claim, by actor and whole; the retention
 * prunes both kinds with their index keys. */
static void s_count3(cf_engine_t *e, uint64_t want_log, uint64_t want_claim, uint64_t want_actor)
{
    cf_txn_t *t;
    uint64_t n;
    CF_ASSERT_INT_EQ(cf_store_begin(cf_engine_store(e), true, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_count(t, CF_DB_AUDIT, &n), 0);
    CF_ASSERT_INT_EQ(n, want_log);
    CF_ASSERT_INT_EQ(cf_txn_count(t, CF_DB_AUDIT_CLAIM, &n), 0);
    CF_ASSERT_INT_EQ(n, want_claim);
    CF_ASSERT_INT_EQ(cf_txn_count(t, CF_DB_AUDIT_ACTOR, &n), 0);
    CF_ASSERT_INT_EQ(n, want_actor);
    cf_txn_abort(&t);
}

static void test_access_log_old_entries_and_retention(void)
{
    cf_engine_t *e = s_open();
    char a[CF_ID_LEN + 1], b[CF_ID_LEN + 1];
    snprintf(a, sizeof a, "%s", s_create(e, CPR_A, "physiotherapy"));
    snprintf(b, sizeof b, "%s", s_create(e, CPR_B, "physiotherapy"));
    /* An old entry, an hour before T0, naming both claims in text. */
    cf_time_t t0;
    CF_ASSERT_INT_EQ(cf_time_parse(T0, strlen(T0), &t0), 0);
    unsigned char akey[CF_AUDIT_KEY_LEN], k[CF_KEY_MAX];
    cf_key_audit(akey, t0 - 3600, 1000);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int64(&pk, t0 - 3600);
    cf_pack_str(&pk, "hanne");
    cf_pack_str(&pk, "query");
    msgpack_pack_array(&pk, 2);
    cf_pack_str(&pk, a);
    cf_pack_str(&pk, b);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(cf_engine_store(e), false, &t), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_AUDIT, akey, sizeof akey, sb.data, sb.size), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_AUDIT_CLAIM, k, cf_key_audit_claim_text(k, a, akey), "", 0), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_AUDIT_CLAIM, k, cf_key_audit_claim_text(k, b, akey), "", 0), 0);
    CF_ASSERT_INT_EQ(cf_txn_put(t, CF_DB_AUDIT_ACTOR, k, cf_key_audit_actor(k, "hanne", akey), "", 0), 0);
    CF_ASSERT_INT_EQ(cf_txn_commit(&t, NULL), 0);
    msgpack_sbuffer_destroy(&sb);
    /* New entries: a get of a, a listing of both. */
    ASSERT_OK(s_call(e, O, "{'op':'get','actor':'hanne','claim':'%s'}", a));
    ASSERT_OK(s_call(e, O, "{'op':'query','actor':'hanne','workflow':'health_claim'}"));
    s_count3(e, 3, 5, 3);
    const msgpack_object *r = s_call(e, O, "{'op':'audit','actor':'aud','claim':'%s'}", a);
    ASSERT_OK(r);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "entries")->via.array.size, 3);
    CF_ASSERT_STR_EQ(S(r, "entries.0.op"), "query");
    CF_ASSERT_STR_EQ(S(r, "entries.0.at"), "2026-11-24T08:00:00Z");
    CF_ASSERT_STR_EQ(S(r, "entries.0.claims.0"), a);
    CF_ASSERT_STR_EQ(S(r, "entries.0.claims.1"), b);
    CF_ASSERT_STR_EQ(S(r, "entries.1.op"), "get");
    CF_ASSERT_STR_EQ(S(r, "entries.1.claims.0"), a);
    CF_ASSERT_STR_EQ(S(r, "entries.2.op"), "query");
    CF_ASSERT_INT_EQ(cf_mp_path(r, "entries.2.claims")->via.array.size, 2);
    /* Paged one by one across the two forms: the same three, in order. */
    static const char *const ops[] = {"query", "get", "query"};
    char after[40] = "";
    for (int i = 0; i < 3; i++) {
        r = after[0] ? s_call(e, O, "{'op':'audit','actor':'aud','claim':'%s','limit':1,"
                              "'after':'%s'}", a, after)
                     : s_call(e, O, "{'op':'audit','actor':'aud','claim':'%s','limit':1}", a);
        ASSERT_OK(r);
        CF_ASSERT_INT_EQ(cf_mp_path(r, "entries")->via.array.size, 1);
        CF_ASSERT_STR_EQ(S(r, "entries.0.op"), ops[i]);
        const msgpack_object *nx = cf_mp_path(r, "next");
        if (i < 2) {
            CF_ASSERT(nx && nx->type == MSGPACK_OBJECT_STR);
            snprintf(after, sizeof after, "%.*s", (int)nx->via.str.size, nx->via.str.ptr);
        } else {
            CF_ASSERT(nx == NULL);
        }
    }
    r = s_call(e, O, "{'op':'audit','actor':'aud','claim':'%s'}", b);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "entries")->via.array.size, 2);
    r = s_call(e, O, "{'op':'audit','actor':'aud','operator':'hanne'}");
    CF_ASSERT_INT_EQ(cf_mp_path(r, "entries")->via.array.size, 3);
    CF_ASSERT_STR_EQ(S(r, "entries.0.claims.1"), b);
    /* Five years on (1825 days, the default) less an hour: the old entry
     * is past it, the new ones not yet. */
    ASSERT_OK(s_call(e, O, "{'op':'clock.advance','actor':'hanne','seconds':%d}",
                     1825 * 86400 - 1800));
    /* (The clock moves inside its batch: the next batch prunes.) */
    ASSERT_OK(s_call(e, O, "{'op':'ping','actor':'hanne'}"));
    s_count3(e, 2, 3, 2);
    r = s_call(e, O, "{'op':'audit','actor':'aud','claim':'%s'}", b);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "entries")->via.array.size, 1);
    ASSERT_OK(s_call(e, O, "{'op':'clock.advance','actor':'hanne','seconds':3600}"));
    ASSERT_OK(s_call(e, O, "{'op':'ping','actor':'hanne'}"));
    s_count3(e, 0, 0, 0);
    s_close(&e);
}

static bool s_file_has(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    CF_ASSERT(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    CF_ASSERT(buf && fread(buf, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    bool found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

static void test_purge(void)
{
    cf_engine_t *e = s_open();
    const char *gone = "150583-1234", *kept = "0303754321";
    static const char pdf[] = "%PDF-1.4 SECRET-REFERRAL-MARKER-7f3a";
    char a[32], b[32];
    snprintf(a, sizeof a, "%s", s_create(e, gone, "scan"));
    ASSERT_OK(s_attach(e, gone, a, "referral", "application/pdf", pdf, sizeof pdf - 1));
    ASSERT_OK(s_call(e, P, "{'op':'consent.give','id':'c1','member':'%s'}", gone));
    ASSERT_OK(s_call(e, O, "{'op':'send','id':'d','actor':'hanne','claim':'%s','event':'decision.denied','data':{'reason':'REASON-TEXT-91'}}", a));
    ASSERT_OK(s_call(e, O, "{'op':'send','id':'x','actor':'sofie','claim':'%s','event':'claim.closed','data':{'reason':'r'}}", a));
    snprintf(b, sizeof b, "%s", s_create(e, kept, "chiropractic"));
    ASSERT_OK(s_call(e, O, "{'op':'clock.advance','actor':'hanne','seconds':86400}"));

    /* Only a supervisor purges. */
    const msgpack_object *r = s_call(e, O, "{'op':'purge','id':'p0','actor':'hanne','closed_before':'2026-11-25'}");
    ASSERT_ERR(r, "forbidden");
    r = s_call(e, O, "{'op':'purge','id':'p1','actor':'sofie','closed_before':'2026-11-25'}");
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "purged"), "1");
    r = s_call(e, O, "{'op':'get','actor':'aud','claim':'%s'}", a);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "closed");
    CF_ASSERT_INT_EQ(cf_mp_path(r, "claim.data")->via.map.size, 0);
    CF_ASSERT(cf_mp_path(r, "claim.documents.0") == NULL);
    r = s_call(e, O, "{'op':'history','actor':'aud','claim':'%s'}", a);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "events")->via.array.size, 5);
    CF_ASSERT_STR_EQ(S(r, "events.2.event"), "consent.given");
    CF_ASSERT_INT_EQ(cf_mp_path(r, "events.3.data")->via.map.size, 0);
    /* The member has no claims left: their consent is gone too. */
    r = s_call(e, P, "{'op':'consent.withdraw','id':'cw','member':'%s'}", gone);
    ASSERT_ERR(r, "not_found");
    r = s_call(e, O, "{'op':'audit','actor':'aud','operator':'sofie'}");
    CF_ASSERT_STR_EQ(S(r, "entries.0.op"), "send");   /* the claim's closing */
    CF_ASSERT_STR_EQ(S(r, "entries.1.op"), "purge");
    CF_ASSERT_STR_EQ(S(r, "entries.1.claims.0"), a);
    /* Gone from the file itself, not just from the index. */
    char file[600];
    snprintf(file, sizeof file, "%s/data.mdb", cf_engine_data_dir(e));
    CF_ASSERT(!s_file_has(file, gone));
    CF_ASSERT(!s_file_has(file, "1505831234"));
    CF_ASSERT(!s_file_has(file, "SECRET-REFERRAL-MARKER"));
    CF_ASSERT(!s_file_has(file, "REASON-TEXT-91"));
    CF_ASSERT(s_file_has(file, kept)); /* the scan does see what is there */
    /* And the store still works after the compaction. */
    r = s_call(e, O, "{'op':'get','actor':'aud','claim':'%s'}", b);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "awaiting_consent");
    ASSERT_OK(s_call(e, P, "{'op':'consent.give','id':'c9','member':'%s'}", kept));
    s_close(&e);
}

/* ---------------------------------------------------------- crash test --- */
/* A child applies a fixed script of requests to 30 claims, acknowledging each
 * `ok` reply on a pipe; the parent kills it with SIGKILL at random points,
 * restarts it where the acknowledgements stopped - re-sending the request
 * that was in flight with the same id - and at the end checks that every
 * claim's history is exactly the script: nothing acknowledged lost, nothing
 * applied twice, no gaps. */

#define CRASH_CLAIMS 30
#define CRASH_STEPS 7

static void s_crash_frame(msgpack_sbuffer *sb, int i, int step, const char *claim)
{
    char cpr[16];
    snprintf(cpr, sizeof cpr, "%02d%02d80-1234", 1 + i % 28, 1 + (i / 28) % 12);
    switch (step) {
    case 0: cf_mp_from_json(sb, "{'op':'consent.give','id':'k%d-0','member':'%s'}", i, cpr); break;
    case 1: cf_mp_from_json(sb, "{'op':'create','id':'k%d-1','member':'%s','workflow':'health_claim','data':{'member':'%s','treatment':'chiropractic'}}", i, cpr, cpr); break;
    case 2: cf_mp_from_json(sb, "{'op':'send','id':'k%d-2','actor':'hanne','claim':'%s','event':'info.requested','data':{'text':'t'}}", i, claim); break;
    case 3: cf_mp_from_json(sb, "{'op':'send','id':'k%d-3','member':'%s','claim':'%s','event':'info.provided','data':{'text':'t'}}", i, cpr, claim); break;
    case 4: cf_mp_from_json(sb, "{'op':'send','id':'k%d-4','actor':'hanne','claim':'%s','event':'decision.approved'}", i, claim); break;
    case 5: cf_mp_from_json(sb, "{'op':'send','id':'k%d-5','actor':'hanne','claim':'%s','event':'guarantee.issued','data':{'amount':1000,'provider':'p','valid_until':'2027-01-01'}}", i, claim); break;
    default: cf_mp_from_json(sb, "{'op':'send','id':'k%d-6','member':'%s','claim':'%s','event':'treatment.started'}", i, cpr, claim); break;
    }
}

static cf_endpoint_t s_crash_ep(int step)
{
    return step == 2 || step == 4 || step == 5 ? O : P;
}

/* Run the script from (i, step); ack "i step claim\n" after each ok. */
static void s_crash_child(const char *data, int fd, int i0, int step0, const char *claim0)
{
    cf_engine_t *e = s_open_at(data, NULL, 0, false);
    char claim[32];
    snprintf(claim, sizeof claim, "%s", claim0);
    for (int i = i0; i < CRASH_CLAIMS; i++) {
        for (int step = i == i0 ? step0 : 0; step < CRASH_STEPS; step++) {
            msgpack_sbuffer sb;
            s_crash_frame(&sb, i, step, claim);
            const msgpack_object *r = s_frame(e, s_crash_ep(step), sb.data, sb.size, NULL);
            msgpack_sbuffer_destroy(&sb);
            if (!cf_mp_path(r, "ok")->via.boolean)
                _exit(3);
            if (step == 1)
                snprintf(claim, sizeof claim, "%s", S(r, "claim.id"));
            char line[64];
            int n = snprintf(line, sizeof line, "%d %d %s\n", i, step, claim);
            if (write(fd, line, (size_t)n) != n)
                _exit(4);
            s_free_replies();
        }
    }
    _exit(0);
}

static void test_crash_sigkill(void)
{
    const char *tmp = s_mktemp();
    char data[300];
    snprintf(data, sizeof data, "%s/data", tmp);
    int i = 0, step = 0, kills = 0;
    char claim[32] = "-";
    char claims[CRASH_CLAIMS][32];
    srand((unsigned)time(NULL));
    while (i < CRASH_CLAIMS) {
        int fds[2];
        CF_ASSERT(pipe(fds) == 0);
        pid_t pid = fork();
        CF_ASSERT(pid >= 0);
        if (pid == 0) {
            close(fds[0]);
            s_crash_child(data, fds[1], i, step, claim);
        }
        close(fds[1]);
        FILE *in = fdopen(fds[0], "r");
        int want = kills < 20 ? 1 + rand() % 12 : 1 << 30;
        int got = 0;
        char line[128];
        while (got < want && fgets(line, sizeof line, in)) {
            int ai, as;
            char ac[32];
            CF_ASSERT(sscanf(line, "%d %d %31s", &ai, &as, ac) == 3);
            /* Acknowledged: the next request to apply is the one after. */
            i = ai;
            step = as + 1;
            snprintf(claim, sizeof claim, "%s", ac);
            if (as >= 1)
                snprintf(claims[ai], sizeof claims[ai], "%s", ac);
            if (step == CRASH_STEPS) {
                i++;
                step = 0;
                snprintf(claim, sizeof claim, "-");
            }
            got++;
        }
        if (got == want) {
            usleep((useconds_t)(rand() % 3000));
            kill(pid, SIGKILL);
            kills++;
        }
        fclose(in);
        int status;
        waitpid(pid, &status, 0);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            CF_ASSERT_INT_EQ(WEXITSTATUS(status), 0);
    }
    CF_ASSERT(kills >= 20);
    /* Every claim: exactly the script, once, gap-free, ending in its state. */
    cf_engine_t *e = s_open_at(data, NULL, 0, false);
    static const char *const events[] = {"claim.created", "info.requested", "info.provided",
                                         "decision.approved", "guarantee.issued", "treatment.started"};
    for (int c = 0; c < CRASH_CLAIMS; c++) {
        const msgpack_object *r = s_call(e, O, "{'op':'history','actor':'aud','claim':'%s'}", claims[c]);
        ASSERT_OK(r);
        const msgpack_object *ev = cf_mp_path(r, "events");
        CF_ASSERT_INT_EQ(ev->via.array.size, 6);
        for (int k = 0; k < 6; k++) {
            CF_ASSERT_INT_EQ(atoi(S(&ev->via.array.ptr[k], "seq")), k + 1);
            CF_ASSERT_STR_EQ(S(&ev->via.array.ptr[k], "event"), events[k]);
            if (k > 0)
                CF_ASSERT_STR_EQ(S(&ev->via.array.ptr[k], "from"), S(&ev->via.array.ptr[k - 1], "to"));
        }
        r = s_call(e, O, "{'op':'get','actor':'aud','claim':'%s'}", claims[c]);
        CF_ASSERT_STR_EQ(S(r, "claim.state"), "in_treatment");
        s_free_replies();
    }
    /* And exactly 30 claims: no create applied twice. */
    const msgpack_object *r = s_call(e, O, "{'op':'stats','actor':'aud'}");
    CF_ASSERT_STR_EQ(S(r, "claims"), "30");
    s_close(&e);
}

int main(void)
{
    CF_RUN(test_lifecycle);
    CF_RUN(test_treatment_before_approval);
    CF_RUN(test_idempotency);
    CF_RUN(test_consent_before_and_after);
    CF_RUN(test_consent_withdrawal_fanout);
    CF_RUN(test_consent_expiry);
    CF_RUN(test_documents);
    CF_RUN(test_workflow_versions);
    CF_RUN(test_paging);
    CF_RUN(test_batch_one_fails);
    CF_RUN(test_errors);
    CF_RUN(test_map_growth_and_full);
    CF_RUN(test_roles_and_audit);
    CF_RUN(test_access_log_old_entries_and_retention);
    CF_RUN(test_purge);
    CF_RUN(test_crash_sigkill);
    return cf_test_done();
}

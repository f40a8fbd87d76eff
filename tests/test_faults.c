/* test_faults.c: the engine under store faults.  For each kind of write
 * (put, delete, commit) and each position N, a request whose N-th write
 * fails must leave no partial state - every database's logical content is
 * what it was before - get an `unavailable`/`internal` reply, and the
 * engine must keep serving: the same request again succeeds.  The requests
 * chosen write a lot: consent (fan-out over several claims, timers,
 * indexes, history), attach (documents), a purge (documents, history,
 * idempotency, access log, compaction marker).  Run under ASan/UBSan in
 * the test build. */
#include "cf_fixture.h"
#include "schema.h"
#include "store.h"

static int s_dump_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    FILE *f = ctx;
    fwrite(&k.len, sizeof k.len, 1, f);
    fwrite(k.data, 1, k.len, f);
    fwrite(&v.len, sizeof v.len, 1, f);
    fwrite(v.data, 1, v.len, f);
    return CF_SCAN_NEXT;
}

/* Every entry of every database (the meta sequence included). */
static char *s_dump(cf_engine_t *e, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    CF_ASSERT(f != NULL);
    cf_txn_t *t;
    CF_ASSERT_INT_EQ(cf_store_begin(cf_engine_store(e), true, &t), 0);
    for (int db = 0; db < CF_DB__COUNT; db++)
        CF_ASSERT_INT_EQ(cf_txn_scan(t, (cf_db_t)db, NULL, 0, 0, s_dump_one, f), 0);
    cf_txn_abort(&t);
    fclose(f);
    return buf;
}

/* Let batch housekeeping finish first (idempotency entries past their
 * retention are pruned a few per batch, in any batch): what the fault walk
 * compares is the request's own effect. */
static void s_settle(cf_engine_t *e)
{
    for (;;) {
        uint64_t seq = cf_engine_seq(e);
        ASSERT_OK(s_call(e, O, "{'op':'ping'}"));
        if (cf_engine_seq(e) == seq)
            return;
    }
}

/* Run frame (JSON-like text) with the N-th write of kind failing, for N
 * from 1 until the request gets through; each failure must leave the store
 * as it was.  Returns the number of faults tried. */
static int s_fault_walk(cf_engine_t *e, cf_fault_t kind, const char *text)
{
    cf_store_t *s = cf_engine_store(e);
    for (unsigned n = 1; n < 500; n++) {
        s_settle(e);
        size_t blen, alen;
        char *before = s_dump(e, &blen);
        uint64_t seq0 = cf_engine_seq(e);
        cf_store_fault(s, kind, n);
        const msgpack_object *r = s_call(e, O, "%s", text);
        const msgpack_object *okv = cf_mp_path(r, "ok");
        bool ok = okv && okv->type == MSGPACK_OBJECT_BOOLEAN && okv->via.boolean;
        cf_store_fault(s, kind, 0);
        char *after = s_dump(e, &alen);
        if (!ok) {
            const char *code = S(r, "error.code");
            if (strcmp(code, "unavailable") != 0 && strcmp(code, "internal") != 0)
                CF_FAILF_("fault %u: reply %s: %s", n, code, S(r, "error.message"));
            if (blen != alen || memcmp(before, after, blen) != 0)
                CF_FAILF_("fault %u of kind %d left a partial write (%zu -> %zu bytes; %s: %s)",
                          n, (int)kind, blen, alen, S(r, "error.code"), S(r, "error.message"));
            CF_ASSERT_INT_EQ(cf_engine_seq(e), seq0);
        }
        free(before);
        free(after);
        if (ok)
            return (int)n;
    }
    CF_FAILF_("the request never got through");
    return 0;
}

static void s_claims_in_review(cf_engine_t *e, const char *member, int n)
{
    static const char pdf[] = "%PDF-1.4\n%faults\n%%EOF\n";
    for (int i = 0; i < n; i++) {
        const char *id = s_create(e, member, "physiotherapy");
        char cid[CF_ID_LEN + 1];
        snprintf(cid, sizeof cid, "%s", id);
        ASSERT_OK(s_attach(e, member, cid, "referral", "application/pdf", pdf, sizeof pdf - 1));
    }
}

static void test_consent_under_put_del_commit_faults(void)
{
    cf_engine_t *e = s_open();
    s_claims_in_review(e, CPR_A, 3);
    static const cf_fault_t kinds[] = {CF_FAULT_PUT, CF_FAULT_DEL, CF_FAULT_COMMIT};
    int ids = 0;
    for (int k = 0; k < 3; k++) {
        char text[256];
        /* give, then withdraw: each fans out over the three claims. */
        for (int give = 1; give >= 0; give--) {
            snprintf(text, sizeof text,
                     "{'op':'%s','id':'f-%d','member':'" CPR_A "'}",
                     give ? "consent.give" : "consent.withdraw", ++ids);
            /* The portal endpoint: s_call's O is for operators; consent is
             * a portal op. */
            const msgpack_object *r;
            cf_store_t *s = cf_engine_store(e);
            unsigned n;
            for (n = 1; n < 500; n++) {
                size_t blen, alen;
                char *before = s_dump(e, &blen);
                cf_store_fault(s, kinds[k], n);
                r = s_call(e, P, "%s", text);
                cf_store_fault(s, kinds[k], 0);
                char *after = s_dump(e, &alen);
                const msgpack_object *okv = cf_mp_path(r, "ok");
                bool ok = okv && okv->via.boolean;
                if (!ok) {
                    const char *code = S(r, "error.code");
                    CF_ASSERT(strcmp(code, "unavailable") == 0 || strcmp(code, "internal") == 0);
                    CF_ASSERT(blen == alen && memcmp(before, after, blen) == 0);
                }
                free(before);
                free(after);
                if (ok)
                    break;
            }
            /* Many writes were tried and failed, and then it went through:
             * all three claims moved. */
            CF_ASSERT(kinds[k] == CF_FAULT_COMMIT ? n == 2 : n > 3);
            CF_ASSERT_INT_EQ(cf_mp_path(r, "moved")->via.array.size, 3);
        }
    }
    s_close(&e);
}

static void test_operator_ops_under_faults(void)
{
    cf_engine_t *e = s_open();
    s_claims_in_review(e, CPR_B, 2);
    ASSERT_OK(s_call(e, P, "{'op':'consent.give','id':'g1','member':'" CPR_B "'}"));
    const msgpack_object *q = s_call(e, O, "{'op':'query','actor':'hanne','member':'" CPR_B "'}");
    char c0[CF_ID_LEN + 1], c1[CF_ID_LEN + 1];
    snprintf(c0, sizeof c0, "%s", S(q, "claims.0.id"));
    snprintf(c1, sizeof c1, "%s", S(q, "claims.1.id"));
    char text[256];
    /* A denial (transition, timers out, flags), an operator read (the access
     * log), and a clock jump firing timers. */
    snprintf(text, sizeof text, "{'op':'send','id':'d1','actor':'hanne','claim':'%s',"
             "'event':'decision.denied','data':{'reason':'not covered'}}", c0);
    CF_ASSERT(s_fault_walk(e, CF_FAULT_PUT, text) > 3);
    snprintf(text, sizeof text, "{'op':'get','actor':'hanne','claim':'%s'}", c1);
    CF_ASSERT(s_fault_walk(e, CF_FAULT_PUT, text) > 1);
    CF_ASSERT(s_fault_walk(e, CF_FAULT_DEL, "{'op':'clock.advance','id':'ck1','actor':'hanne',"
                                            "'seconds':864000}") > 1);
    /* Withdraw c1 (final; c0 is denied, still open for a complaint), then purge: a partial purge is never
     * answered ok. */
    char w[256];
    snprintf(w, sizeof w, "{'op':'send','id':'w1','member':'" CPR_B "','claim':'%s',"
             "'event':'claim.withdrawn'}", c1);
    ASSERT_OK(s_call(e, P, "%s", w));
    ASSERT_OK(s_call(e, O, "{'op':'clock.advance','id':'ck2','actor':'hanne','seconds':864000}"));
    int puts = s_fault_walk(e, CF_FAULT_PUT, "{'op':'purge','id':'pg1','actor':'sofie',"
                                             "'closed_before':'2026-12-14'}");
    CF_ASSERT(puts > 5);
    const msgpack_object *r = s_call(e, O, "{'op':'purge','id':'pg1','actor':'sofie',"
                                           "'closed_before':'2026-12-14'}");
    ASSERT_OK(r);
    CF_ASSERT_INT_EQ(cf_mp_path(r, "purged")->via.u64, 1);
    s_close(&e);
}

int main(void)
{
    CF_RUN(test_consent_under_put_del_commit_faults);
    CF_RUN(test_operator_ops_under_faults);
    return cf_test_done();
}

/* bench_inproc.c: the engine in this process, without the daemon - for two
 * jobs that must not pay for ZeroMQ.
 *
 * Calibration: the load's health-claim lifecycle (create, referral upload,
 * consent, decision, guarantee, treatment), `batch` lifecycles in lock step,
 * each step of the batch one cf_engine_run (one transaction, one fsync), as
 * the daemon's group commit would run them if `batch` clients sent together.
 * Its rate is the engine's own (no transport), and bench_rec.c records the
 * LMDB writes it makes, which the LMDB ceiling replays.
 *
 * The scale store: a million finished claims and a million pending timers
 * take minutes through a socket and seconds less in-process, and what scale
 * mode measures is the daemon on that store, not how it was filled.  The
 * engine runs on a manual clock (so the open claims' timers fall due at known
 * times, a second apart per group); members consent first, so a chiropractic
 * claim (no referral needed) goes straight to in_review when created.  Per
 * group of members, four runs: consents and every create; approvals;
 * guarantees; treatments and a one-second clock.advance.  The finished
 * claims carry no document: the store's size is measured elsewhere (the
 * store phase), with them.
 */
#include "bench.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "workflow.h"

/* The commit hook of the hooked calibration: does nothing, so what it
 * measures is the store recording each write set and handing it over. */
static int s_noop_hook(void *ctx, uint64_t seq, const cf_wset_t *ws)
{
    (void)ctx;
    (void)seq;
    (void)ws;
    return 0;
}

static bool s_hooked;

static int s_open(const bench_opts_t *o, const char *data, bool manual, size_t map_size,
                  cf_engine_t **e)
{
    cf_time_t t0 = 0;
    cf_time_parse(BENCH_T0, strlen(BENCH_T0), &t0);
    cf_operator_t ops[] = {{"hanne", CF_ROLE_HANDLER, NULL}};
    cf_engine_opts_t eo = {
        .data_dir = data,
        .workflows_dir = o->workflows,
        .map_size = map_size,
        .manual_clock = manual,
        .manual_start = t0,
        .operators = ops,
        .noperators = 1,
        .commit_hook = s_hooked ? s_noop_hook : NULL,
    };
    cf_diags_t d = {0};
    int rc = cf_engine_open(&eo, e, &d);
    if (rc != 0) {
        cf_diags_print(&d, stderr);
        fprintf(stderr, "claimflow-bench: cannot open an engine on %s: %s\n", data,
                cf_errname(rc));
    }
    cf_diags_clear(&d);
    return rc == 0 ? 0 : -1;
}

/* A batch of requests and their replies, reused from run to run. */
typedef struct {
    size_t n, cap;
    msgpack_sbuffer *frames;
    cf_request_t *reqs;
    cf_reply_t *replies;
    uint64_t requests;
} s_batch_t;

static int s_batch_init(s_batch_t *b, size_t cap)
{
    memset(b, 0, sizeof *b);
    b->frames = calloc(cap, sizeof *b->frames);
    b->reqs = calloc(cap, sizeof *b->reqs);
    b->replies = calloc(cap, sizeof *b->replies);
    if (!b->frames || !b->reqs || !b->replies)
        return -1;
    b->cap = cap;
    for (size_t i = 0; i < cap; i++) {
        msgpack_sbuffer_init(&b->frames[i]);
        cf_reply_init(&b->replies[i]);
    }
    return 0;
}

static void s_batch_fini(s_batch_t *b)
{
    for (size_t i = 0; i < b->cap; i++) {
        msgpack_sbuffer_destroy(&b->frames[i]);
        cf_reply_fini(&b->replies[i]);
    }
    free(b->frames);
    free(b->reqs);
    free(b->replies);
}

/* The packer of the batch's next request. */
static msgpack_packer s_batch_next(s_batch_t *b, int ep)
{
    msgpack_sbuffer_clear(&b->frames[b->n]);
    b->reqs[b->n].endpoint = ep == BENCH_EP_O ? CF_EP_OPERATOR : CF_EP_PORTAL;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &b->frames[b->n], msgpack_sbuffer_write);
    b->n++;
    return pk;
}

static int s_batch_run(cf_engine_t *e, s_batch_t *b)
{
    for (size_t i = 0; i < b->n; i++) {
        b->reqs[i].frame = b->frames[i].data;
        b->reqs[i].len = b->frames[i].size;
        b->reqs[i].auth_actor = NULL;
    }
    int rc = cf_engine_run(e, b->reqs, b->n, b->replies);
    b->requests += b->n;
    return rc;
}

/* Unpack reply i into up; false (and err) when it is not ok. */
static bool s_reply(s_batch_t *b, size_t i, msgpack_unpacked *up, char *err, size_t len)
{
    size_t off = 0;
    if (msgpack_unpack_next(up, b->replies[i].body.data, b->replies[i].body.size, &off) !=
        MSGPACK_UNPACK_SUCCESS) {
        snprintf(err, len, "a reply is not msgpack");
        return false;
    }
    return bench_mp_ok(&up->data, err, len);
}

/* ======================================================== calibration === */

int bench_calibrate_hooked(const bench_opts_t *o, long lifecycles, int batch, bench_calib_t *c)
{
    s_hooked = true;
    int rc = bench_calibrate(o, lifecycles, batch, NULL, c);
    s_hooked = false;
    return rc;
}

int bench_calibrate(const bench_opts_t *o, long lifecycles, int batch, bench_rec_t *rec,
                    bench_calib_t *c)
{
    memset(c, 0, sizeof *c);
    c->lifecycles = lifecycles;
    c->batch = batch;
    char dir[512], data[600];
    if (bench_mkdtemp(o, "calib", dir, sizeof dir) != 0)
        return -1;
    snprintf(data, sizeof data, "%s/data", dir);
    cf_engine_t *e = NULL;
    s_batch_t b;
    bench_script_t *sc = calloc((size_t)batch, sizeof *sc);
    size_t dn = o->doc_bytes < 64 ? 64 : o->doc_bytes;
    char *doc = malloc(dn + 64);
    int result = -1;
    if (!sc || !doc || s_batch_init(&b, (size_t)batch) != 0)
        goto out;
    memset(doc, 'x', dn + 64);
    memcpy(doc, "%PDF-1.4\n", 9);
    if (s_open(o, data, false, (size_t)1 << 30, &e) != 0)
        goto out;
    if (rec)
        bench_rec_start(rec);
    double t0 = bench_now(), cpu0 = bench_self_cpu();
    uint64_t commit0 = cf_engine_commit_us(e), hist0[CF_STORE_HIST];
    memcpy(hist0, cf_engine_commit_hist(e), sizeof hist0);
    uint64_t seq = 0, member = 90000000;
    for (long done = 0; done < lifecycles && !c->errors; done += batch) {
        int n = (int)(lifecycles - done < batch ? lifecycles - done : batch);
        for (int i = 0; i < n; i++) {
            memset(&sc[i], 0, sizeof sc[i]);
            sc[i].script = BENCH_S_LIFE;
            bench_cpr(member++, sc[i].member);
        }
        for (int step = 0; step < 6 && !c->errors; step++) {
            b.n = 0;
            for (int i = 0; i < n; i++) {
                char id[32];
                snprintf(id, sizeof id, "c%" PRIu64, ++seq);
                sc[i].step = step;
                bench_kind_t kind;
                msgpack_packer pk = s_batch_next(&b, BENCH_EP_P);
                int ep = bench_pack_step(&pk, &sc[i], id, doc, o->doc_bytes, &kind);
                b.reqs[b.n - 1].endpoint = ep == BENCH_EP_O ? CF_EP_OPERATOR : CF_EP_PORTAL;
            }
            s_batch_run(e, &b);
            for (int i = 0; i < n; i++) {
                msgpack_unpacked up;
                msgpack_unpacked_init(&up);
                char err[480];
                if (!s_reply(&b, (size_t)i, &up, err, sizeof err)) {
                    if (!c->errors++)
                        snprintf(c->first_error, sizeof c->first_error, "step %d: %s", step, err);
                } else if (step == 0) {
                    bench_mp_copy(cf_mp_get(cf_mp_get(&up.data, "claim"), "id"), sc[i].claim,
                                  sizeof sc[i].claim);
                } else if (bench_life_want(step) &&
                           !cf_mp_streq(cf_mp_get(cf_mp_get(&up.data, "claim"), "state"),
                                           bench_life_want(step))) {
                    if (!c->errors++)
                        snprintf(c->first_error, sizeof c->first_error,
                                 "step %d reached the wrong state", step);
                }
                msgpack_unpacked_destroy(&up);
            }
            c->transitions += (uint64_t)n;
        }
    }
    c->seconds = bench_now() - t0;
    c->cpu = bench_self_cpu() - cpu0;
    c->commit_us = (double)(cf_engine_commit_us(e) - commit0);
    for (int k = 0; k < CF_STORE_HIST; k++)
        c->commit_hist[k] = cf_engine_commit_hist(e)[k] - hist0[k];
    if (rec) {
        bench_rec_stop();
        rec->transitions = c->transitions;
    }
    c->requests = b.requests;
    c->tps = c->seconds > 0 ? (double)c->transitions / c->seconds : 0;
    result = c->errors || (rec && rec->failed) ? -1 : 0;
out:
    if (b.cap)
        s_batch_fini(&b);
    cf_engine_destroy(&e);
    free(sc);
    free(doc);
    bench_rmrf(dir);
    return result;
}

/* ========================================================= scale build === */

#define SCALE_GROUP 250      /* members per group */
#define SCALE_PER_MEMBER 4   /* finished claims per member */

static void s_pack_consent(s_batch_t *b, uint64_t *seq, const char *member)
{
    char id[32];
    snprintf(id, sizeof id, "s%" PRIu64, ++*seq);
    msgpack_packer pk = s_batch_next(b, BENCH_EP_P);
    msgpack_pack_map(&pk, 3);
    bench_mp_kv(&pk, "op", "consent.give");
    bench_mp_kv(&pk, "id", id);
    bench_mp_kv(&pk, "member", member);
}

static void s_pack_create(s_batch_t *b, uint64_t *seq, const char *member)
{
    char id[32];
    snprintf(id, sizeof id, "s%" PRIu64, ++*seq);
    msgpack_packer pk = s_batch_next(b, BENCH_EP_P);
    msgpack_pack_map(&pk, 5);
    bench_mp_kv(&pk, "op", "create");
    bench_mp_kv(&pk, "id", id);
    bench_mp_kv(&pk, "member", member);
    bench_mp_kv(&pk, "workflow", "health_claim");
    cf_pack_str(&pk, "data");
    msgpack_pack_map(&pk, 3);
    bench_mp_kv(&pk, "member", member);
    bench_mp_kv(&pk, "treatment", "chiropractic");
    bench_mp_kv(&pk, "description", "lower back pain");
}

static void s_pack_send(s_batch_t *b, uint64_t *seq, const char *member, const char *claim,
                        const char *event)
{
    char id[32];
    snprintf(id, sizeof id, "s%" PRIu64, ++*seq);
    bool op = member == NULL;
    msgpack_packer pk = s_batch_next(b, op ? BENCH_EP_O : BENCH_EP_P);
    bool data = strcmp(event, "guarantee.issued") == 0;
    msgpack_pack_map(&pk, 5 + data);
    bench_mp_kv(&pk, "op", "send");
    bench_mp_kv(&pk, "id", id);
    if (op)
        bench_mp_kv(&pk, "actor", "hanne");
    else
        bench_mp_kv(&pk, "member", member);
    bench_mp_kv(&pk, "claim", claim);
    bench_mp_kv(&pk, "event", event);
    if (data) {
        cf_pack_str(&pk, "data");
        msgpack_pack_map(&pk, 3);
        cf_pack_str(&pk, "amount");
        msgpack_pack_int64(&pk, 45000);
        bench_mp_kv(&pk, "provider", "Kiropraktor Syd");
        bench_mp_kv(&pk, "valid_until", "2027-06-30");
    }
}

/* Check replies [from, to) are ok and in state `want` (NULL: no claim);
 * copy the claim ids to ids when given. */
static int s_check_run(s_batch_t *b, size_t from, size_t to, const char *want,
                       char (*ids)[32], bench_build_t *r)
{
    int bad = 0;
    for (size_t i = from; i < to; i++) {
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        char err[480];
        const msgpack_object *claim = NULL;
        if (!s_reply(b, i, &up, err, sizeof err)) {
            bad++;
        } else if (want) {
            claim = cf_mp_get(&up.data, "claim");
            if (!cf_mp_streq(cf_mp_get(claim, "state"), want)) {
                snprintf(err, sizeof err, "a claim is not in state %s", want);
                bad++;
            } else if (ids) {
                bench_mp_copy(cf_mp_get(claim, "id"), ids[i - from], 32);
            }
        }
        if (bad && !r->first_error[0])
            snprintf(r->first_error, sizeof r->first_error, "scale build: %s", err);
        msgpack_unpacked_destroy(&up);
    }
    return bad ? -1 : 0;
}

int bench_scale_build(const bench_opts_t *o, const char *dir, long finished, long timers,
                      bench_build_t *r)
{
    memset(r, 0, sizeof *r);
    long members = (finished + SCALE_PER_MEMBER - 1) / SCALE_PER_MEMBER;
    long open = timers > members ? (timers - members) / 2 : 0;  /* 2 timers each */
    r->members = members;
    r->finished = finished;
    r->open = open;
    char data[600];
    snprintf(data, sizeof data, "%s/data", dir);
    cf_engine_t *e = NULL;
    /* The map starts big enough for the whole build: no growth on the way. */
    size_t map = (size_t)(finished * 4096 + open * 4096) + ((size_t)256 << 20);
    if (s_open(o, data, true, map, &e) != 0)
        return -1;
    size_t cap = SCALE_GROUP * (1 + SCALE_PER_MEMBER) + (size_t)(open / members + 2) * SCALE_GROUP + 8;
    s_batch_t b;
    char(*ids)[32] = calloc(cap, sizeof *ids);
    char(*mem)[12] = calloc(cap, sizeof *mem);
    int result = -1;
    if (!ids || !mem || s_batch_init(&b, cap) != 0) {
        free(ids);
        free(mem);
        cf_engine_destroy(&e);
        return -1;
    }
    double t0 = bench_now(), last = t0;
    uint64_t seq = 0;
    long fin_left = finished, open_done = 0;
    for (long g = 0; g * SCALE_GROUP < members; g++) {
        long m0 = g * SCALE_GROUP, m1 = m0 + SCALE_GROUP < members ? m0 + SCALE_GROUP : members;
        /* 1: consents, then the finished claims' creates, then the open ones. */
        b.n = 0;
        char cpr[12];
        for (long m = m0; m < m1; m++) {
            bench_cpr(50000000 + (uint64_t)m, cpr);
            s_pack_consent(&b, &seq, cpr);
        }
        size_t nfin = 0;
        for (long m = m0; m < m1; m++)
            for (int k = 0; k < SCALE_PER_MEMBER && fin_left > 0; k++, fin_left--) {
                bench_cpr(50000000 + (uint64_t)m, mem[nfin++]);
                s_pack_create(&b, &seq, mem[nfin - 1]);
            }
        for (long m = m0; m < m1; m++) {
            long want = (long)((double)(m + 1) * (double)open / (double)members);
            for (; open_done < want; open_done++) {
                bench_cpr(50000000 + (uint64_t)m, cpr);
                s_pack_create(&b, &seq, cpr);
            }
        }
        size_t first_create = (size_t)(m1 - m0);
        s_batch_run(e, &b);
        if (s_check_run(&b, 0, first_create, NULL, NULL, r) != 0 ||
            s_check_run(&b, first_create, b.n, "in_review", ids, r) != 0)
            goto out;
        /* 2-4: decision, guarantee, treatment of the finished ones. */
        static const char *const events[] = {"decision.approved", "guarantee.issued",
                                             "treatment.started"};
        static const char *const states[] = {"approved", "guarantee_issued", "in_treatment"};
        for (int s = 0; s < 3; s++) {
            b.n = 0;
            for (size_t i = 0; i < nfin; i++)
                s_pack_send(&b, &seq, s == 2 ? mem[i] : NULL, ids[i], events[s]);
            if (s == 2) {
                /* The next group's claims a second later. */
                msgpack_packer pk = s_batch_next(&b, BENCH_EP_O);
                char cid[32];
                snprintf(cid, sizeof cid, "clock-%" PRIu64, seq++);
                msgpack_pack_map(&pk, 4);
                bench_mp_kv(&pk, "id", cid);
                bench_mp_kv(&pk, "op", "clock.advance");
                bench_mp_kv(&pk, "actor", "hanne");
                cf_pack_str(&pk, "seconds");
                msgpack_pack_int64(&pk, 1);
            }
            s_batch_run(e, &b);
            if (s_check_run(&b, 0, nfin, states[s], NULL, r) != 0 ||
                s_check_run(&b, nfin, b.n, NULL, NULL, r) != 0)
                goto out;
        }
        r->requests = b.requests;
        double now = bench_now();
        if (now - last > 10) {
            fprintf(stderr, "claimflow-bench: scale build: %ld of %ld members, %.0f s\n", m1,
                    members, now - t0);
            last = now;
        }
    }
    r->build_seconds = bench_now() - t0;
    r->requests = b.requests;
    cf_time_format(cf_engine_now(e), r->clock_end);
    result = 0;
out:
    s_batch_fini(&b);
    free(ids);
    free(mem);
    cf_engine_destroy(&e);
    if (result == 0) {
        bench_store_t st;
        if (bench_store_read(data, false, &st) == 0) {
            const bench_dbstat_t *t = bench_store_db(&st, "timers");
            r->pending_timers = t ? t->entries : 0;
        }
    }
    return result;
}

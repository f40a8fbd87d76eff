/* test_timers.c: SLA timers on the engine with the manual clock - 10,000
 * claims through their warning and breach, a jump over Easter, and timers
 * that fall due while the process is dead. */
#include <signal.h>
#include <sys/wait.h>

#include "cf_fixture.h"

#define CPR_M "0101901234"

/* Create n claims of one member (consent given first, so each goes straight
 * to in_review), in batches of 500. */
static void s_create_in_review(cf_engine_t *e, int n)
{
    ASSERT_OK(s_call(e, P, "{'op':'consent.give','id':'consent','member':'%s'}", CPR_M));
    for (int b = 0; b < n; b += 500) {
        int m = n - b < 500 ? n - b : 500;
        cf_request_t *reqs = calloc((size_t)m, sizeof *reqs);
        cf_reply_t *reps = calloc((size_t)m, sizeof *reps);
        msgpack_sbuffer *fr = calloc((size_t)m, sizeof *fr);
        CF_ASSERT(reqs && reps && fr);
        for (int i = 0; i < m; i++) {
            cf_mp_from_json(&fr[i], "{'op':'create','id':'n%d','member':'%s','workflow':'health_claim',"
                            "'data':{'member':'%s','treatment':'chiropractic'}}", b + i, CPR_M, CPR_M);
            reqs[i] = (cf_request_t){P, NULL, fr[i].data, fr[i].size};
            cf_reply_init(&reps[i]);
        }
        CF_ASSERT_INT_EQ(cf_engine_run(e, reqs, (size_t)m, reps), 0);
        for (int i = 0; i < m; i++) {
            CF_ASSERT_INT_EQ(reps[i].code, 0);
            cf_reply_fini(&reps[i]);
            msgpack_sbuffer_destroy(&fr[i]);
        }
        free(reqs);
        free(reps);
        free(fr);
    }
}

static const char *s_flag_count(cf_engine_t *e, const char *flag)
{
    const msgpack_object *r = s_call(e, O, "{'op':'stats','actor':'aud'}");
    const msgpack_object *flags = cf_mp_path(r, "flags");
    for (uint32_t i = 0; flags && i < flags->via.array.size; i++)
        if (strcmp(S(&flags->via.array.ptr[i], "flag"), flag) == 0)
            return S(&flags->via.array.ptr[i], "count");
    return "0";
}

static void test_ten_thousand_slas(void)
{
    s_clock_start = T0; /* Tuesday 2026-11-24 10:00 in Copenhagen */
    cf_engine_t *e = s_open();
    s_create_in_review(e, 10000);
    const msgpack_object *r = s_call(e, O, "{'op':'stats','actor':'aud'}");
    CF_ASSERT_STR_EQ(S(r, "timers.pending"), "20002"); /* 2 per claim + the consent's 2 */
    CF_ASSERT_STR_EQ(S(r, "states.0.state"), "in_review");
    CF_ASSERT_STR_EQ(S(r, "states.0.count"), "10000");

    /* One second before the warning: nothing. */
    r = s_call(e, O, "{'op':'clock.set','actor':'hanne','at':'2026-11-25T08:59:59Z'}");
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "fired"), "0");
    r = s_call(e, O, "{'op':'clock.advance','actor':'hanne','seconds':1}");
    CF_ASSERT_STR_EQ(S(r, "fired"), "10000");
    CF_ASSERT_STR_EQ(s_flag_count(e, "sla.warning"), "10000");
    CF_ASSERT_STR_EQ(s_flag_count(e, "sla.breached"), "0");
    /* Advancing again fires nothing twice. */
    r = s_call(e, O, "{'op':'clock.advance','actor':'hanne','seconds':3600}");
    CF_ASSERT_STR_EQ(S(r, "fired"), "0");
    r = s_call(e, O, "{'op':'clock.set','actor':'hanne','at':'2026-11-26T09:00:00Z'}");
    CF_ASSERT_STR_EQ(S(r, "fired"), "10000");
    CF_ASSERT_STR_EQ(s_flag_count(e, "sla.breached"), "10000");
    r = s_call(e, O, "{'op':'stats','actor':'aud'}");
    CF_ASSERT_STR_EQ(S(r, "timers.pending"), "2"); /* the consent's expiry and reminder */

    /* Each claim's history: created, warned, breached - once each. */
    r = s_call(e, O, "{'op':'query','actor':'aud','workflow':'health_claim','state':'in_review','limit':1000}");
    const msgpack_object *cl = cf_mp_path(r, "claims");
    CF_ASSERT_INT_EQ(cl->via.array.size, 1000);
    for (uint32_t i = 0; i < cl->via.array.size; i += 97) {
        const msgpack_object *h = s_call(e, O, "{'op':'history','actor':'aud','claim':'%s'}",
                                         S(&cl->via.array.ptr[i], "id"));
        CF_ASSERT_INT_EQ(cf_mp_path(h, "events")->via.array.size, 3);
        CF_ASSERT_STR_EQ(S(h, "events.1.event"), "sla.warning");
        CF_ASSERT_STR_EQ(S(h, "events.1.actor"), "system");
        CF_ASSERT_STR_EQ(S(h, "events.1.data.timer"), "decision_warning");
        CF_ASSERT_STR_EQ(S(h, "events.1.data.due_at"), "2026-11-25T09:00:00Z");
        CF_ASSERT_STR_EQ(S(h, "events.1.data.late_seconds"), "0");
        CF_ASSERT_STR_EQ(S(h, "events.2.event"), "sla.breached");
        CF_ASSERT_STR_EQ(S(h, "events.2.at"), "2026-11-26T09:00:00Z");
    }
    s_close(&e);
}

static void test_over_easter(void)
{
    /* Wednesday 1 April 2026, 10:00 in Copenhagen (CEST). Thursday 2 is
     * Skærtorsdag, Friday 3 Langfredag, Monday 6 2. påskedag. */
    s_clock_start = "2026-04-01T08:00:00Z";
    cf_engine_t *e = s_open();
    s_create_in_review(e, 1);
    const msgpack_object *r = s_call(e, O, "{'op':'timers','actor':'aud'}");
    CF_ASSERT_STR_EQ(S(r, "timers.0.name"), "decision_warning");
    CF_ASSERT_STR_EQ(S(r, "timers.0.due_at"), "2026-04-07T08:00:00Z");
    CF_ASSERT_STR_EQ(S(r, "timers.1.name"), "decision_due");
    CF_ASSERT_STR_EQ(S(r, "timers.1.due_at"), "2026-04-08T08:00:00Z");
    /* Day by day: nothing fires over the holidays. */
    static const char *const days[] = {"2026-04-02", "2026-04-03", "2026-04-04", "2026-04-05",
                                       "2026-04-06"};
    for (int i = 0; i < 5; i++) {
        r = s_call(e, O, "{'op':'clock.set','actor':'hanne','at':'%sT12:00:00Z'}", days[i]);
        CF_ASSERT_STR_EQ(S(r, "fired"), "0");
    }
    r = s_call(e, O, "{'op':'clock.set','actor':'hanne','at':'2026-04-07T12:00:00Z'}");
    CF_ASSERT_STR_EQ(S(r, "fired"), "1");
    r = s_call(e, O, "{'op':'clock.set','actor':'hanne','at':'2026-04-08T12:00:00Z'}");
    CF_ASSERT_STR_EQ(S(r, "fired"), "1");
    /* In order: the warning, then the breach, each at its due time: the
     * clock stepped through them (late_seconds 0). */
    r = s_call(e, O, "{'op':'query','actor':'aud','workflow':'health_claim'}");
    const msgpack_object *h = s_call(e, O, "{'op':'history','actor':'aud','claim':'%s'}",
                                     S(r, "claims.0.id"));
    CF_ASSERT_STR_EQ(S(h, "events.1.event"), "sla.warning");
    CF_ASSERT_STR_EQ(S(h, "events.1.data.late_seconds"), "0");
    CF_ASSERT_STR_EQ(S(h, "events.1.at"), "2026-04-07T08:00:00Z");
    CF_ASSERT_STR_EQ(S(h, "events.2.event"), "sla.breached");
    CF_ASSERT_STR_EQ(S(h, "events.2.at"), "2026-04-08T08:00:00Z");
    s_close(&e);
    s_clock_start = T0;
}

static void test_inquiry_two_days(void)
{
    s_clock_start = T0;
    cf_engine_t *e = s_open();
    s_create_in_review(e, 1);
    const msgpack_object *r = s_call(e, O, "{'op':'query','actor':'aud','workflow':'health_claim'}");
    char parent[32];
    snprintf(parent, sizeof parent, "%s", S(r, "claims.0.id"));
    r = s_call(e, P, "{'op':'create','id':'inq','member':'%s','workflow':'inquiry',"
               "'data':{'claim':'%s','text':'when?'}}", CPR_M, parent);
    ASSERT_OK(r);
    CF_ASSERT_STR_EQ(S(r, "claim.state"), "open");
    CF_ASSERT_STR_EQ(S(r, "claim.parent"), parent);
    /* 1 and 2 calendar days, not business days. */
    CF_ASSERT_STR_EQ(S(r, "claim.timers.0.name"), "response_warning");
    CF_ASSERT_STR_EQ(S(r, "claim.timers.0.due_at"), "2026-11-25T09:00:00Z");
    CF_ASSERT_STR_EQ(S(r, "claim.timers.1.name"), "response_due");
    CF_ASSERT_STR_EQ(S(r, "claim.timers.1.due_at"), "2026-11-26T09:00:00Z");
    s_close(&e);
}

/* A child creates claims and dies by SIGKILL with their timers pending; the
 * parent opens the store three days later: each timer fires once, late. */
static void test_timers_across_a_crash(void)
{
    s_clock_start = T0;
    const char *tmp = s_mktemp();
    char data[300];
    snprintf(data, sizeof data, "%s/data", tmp);
    int fds[2];
    CF_ASSERT(pipe(fds) == 0);
    pid_t pid = fork();
    CF_ASSERT(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        cf_engine_t *e = s_open_at(data, NULL, 0, false);
        s_create_in_review(e, 20);
        if (write(fds[1], "x", 1) != 1)
            _exit(4);
        for (;;)
            pause();
    }
    close(fds[1]);
    char c;
    CF_ASSERT_INT_EQ(read(fds[0], &c, 1), 1);
    close(fds[0]);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CF_ASSERT(WIFSIGNALED(status));

    s_clock_start = "2026-11-27T09:00:00Z"; /* Friday: both due while down */
    cf_engine_t *e = s_open_at(data, NULL, 0, false);
    CF_ASSERT_INT_EQ(cf_engine_next_due(e), 1795597200); /* 2026-11-25T09:00:00Z */
    size_t fired = 0;
    CF_ASSERT_INT_EQ(cf_engine_fire_due(e, 7, &fired), 0); /* batches of 7 */
    CF_ASSERT_INT_EQ(fired, 40);
    const cf_pub_t *pubs;
    CF_ASSERT_INT_EQ(cf_engine_published(e, &pubs), 40);
    CF_ASSERT_STR_EQ(pubs[0].topic, "health_claim/sla.warning");
    cf_engine_destroy(&e);
    s_free_replies();
    /* Restarted again: nothing fires twice. */
    e = s_open_at(data, NULL, 0, false);
    CF_ASSERT_INT_EQ(cf_engine_fire_due(e, 1000, &fired), 0);
    CF_ASSERT_INT_EQ(fired, 0);
    const msgpack_object *r = s_call(e, O, "{'op':'query','actor':'aud','workflow':'health_claim','state':'in_review'}");
    const msgpack_object *cl = cf_mp_path(r, "claims");
    CF_ASSERT_INT_EQ(cl->via.array.size, 20);
    for (uint32_t i = 0; i < cl->via.array.size; i++) {
        const msgpack_object *h = s_call(e, O, "{'op':'history','actor':'aud','claim':'%s'}",
                                         S(&cl->via.array.ptr[i], "id"));
        CF_ASSERT_INT_EQ(cf_mp_path(h, "events")->via.array.size, 3);
        CF_ASSERT_STR_EQ(S(h, "events.1.event"), "sla.warning");
        CF_ASSERT_STR_EQ(S(h, "events.1.data.late_seconds"), "172800");
        CF_ASSERT_STR_EQ(S(h, "events.2.event"), "sla.breached");
        CF_ASSERT_STR_EQ(S(h, "events.2.data.late_seconds"), "86400");
    }
    s_close(&e);
    s_clock_start = T0;
}

int main(void)
{
    CF_RUN(test_ten_thousand_slas);
    CF_RUN(test_over_easter);
    CF_RUN(test_inquiry_two_days);
    CF_RUN(test_timers_across_a_crash);
    return cf_test_done();
}

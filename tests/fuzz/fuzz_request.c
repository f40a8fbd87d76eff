/* fuzz_request.c: the request decoder and dispatcher on arbitrary frames.
 *
 * One engine lives for the whole run (opening one per input would spend the
 * time in mkdtemp and the workflow compiler, not in the code under test):
 * a store in a temp dir (on /dev/shm when there is one, so commits do not
 * wait for a disk), the shipped workflows ($CF_SRCDIR/workflows), a manual
 * clock at T0 and the fixture's roster (hanne handler, sofie supervisor, aud
 * auditor).  The map is capped at 64 MiB and never grows, so a long run
 * fills it: `unavailable` replies are expected then, and fine.
 *
 * Each input is one byte that picks the endpoint by its lowest bit (so 'P'
 * is the portal, 'O' the operator), then one request frame; the seed corpus
 * (tests/fuzz/corpus/fuzz_request, real requests of every op on both
 * endpoints, written by `reliability_util.py make-corpus`) is made that way.  Claim ids are random, which a fuzzer
 * cannot guess: a frame may name the claims made at start-up by the
 * placeholders FUZZCLAIM00000000000000000A .. D (26 bytes, a claim id's
 * length), replaced before the frame is run.
 *
 * The oracle: cf_engine_run returns 0, or CF_EUNAVAIL with the reply saying
 * unavailable; the reply is exactly one msgpack map with a boolean `ok`;
 * ok: true has code 0; ok: false has code != 0 and an `error` map of two
 * strings, `code` and `message`.  Anything else abort()s (plus what ASan and
 * UBSan find).  State carries over from input to input, as in the daemon, so
 * a crash may need the inputs before it: run the whole crash directory
 * again (run-fuzzer.sh replays every file of tests/fuzz/regress/fuzz_request,
 * in one process, before it fuzzes).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <msgpack.h>

#include "mp.h"
#include "engine.h"
#include "workflow.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_T0 "2026-11-24T09:00:00Z"
#define FUZZ_MAP (64u << 20)
#define FUZZ_NCLAIMS 4
#define FUZZ_ID_LEN 26

static cf_engine_t *s_engine;
static char s_tmp[512];
static char s_claims[FUZZ_NCLAIMS][FUZZ_ID_LEN + 1];
static const char s_placeholder[] = "FUZZCLAIM0000000000000000"; /* + 'A'..'D' */

static const cf_operator_t s_roster[] = {
    {"hanne", CF_ROLE_HANDLER, NULL},
    {"sofie", CF_ROLE_SUPERVISOR, NULL},
    {"aud", CF_ROLE_AUDITOR, NULL},
};

/* ----------------------------------------------------------- the oracle --- */
static void s_die(const char *why, const cf_reply_t *r)
{
    fprintf(stderr, "fuzz_request: %s (code %d, %zu reply bytes)\n", why, r->code,
            r->body.size);
    abort();
}

/* The reply must be one msgpack map with a boolean ok, and an error map of
 * two strings when ok is false.  Returns ok. */
static bool s_check_reply(int rc, const cf_reply_t *r)
{
    if (rc != 0 && !(rc == CF_EUNAVAIL && r->code == CF_EUNAVAIL))
        s_die("cf_engine_run failed without an unavailable reply", r);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    if (msgpack_unpack_next(&u, r->body.data, r->body.size, &off) != MSGPACK_UNPACK_SUCCESS)
        s_die("reply is not msgpack", r);
    if (off != r->body.size)
        s_die("bytes after the reply map", r);
    if (u.data.type != MSGPACK_OBJECT_MAP)
        s_die("reply is not a map", r);
    const msgpack_object *ok = cf_mp_get(&u.data, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN)
        s_die("reply has no boolean ok", r);
    bool is_ok = ok->via.boolean;
    if (is_ok != (r->code == 0))
        s_die("ok disagrees with the reply's code", r);
    if (!is_ok) {
        const msgpack_object *e = cf_mp_get(&u.data, "error");
        const msgpack_object *code = e && e->type == MSGPACK_OBJECT_MAP ? cf_mp_get(e, "code") : NULL;
        const msgpack_object *msg = e && e->type == MSGPACK_OBJECT_MAP ? cf_mp_get(e, "message") : NULL;
        if (!code || code->type != MSGPACK_OBJECT_STR || code->via.str.size == 0 ||
            !msg || msg->type != MSGPACK_OBJECT_STR)
            s_die("ok: false without an error map of code and message", r);
        if (strlen(cf_errname(r->code)) != code->via.str.size ||
            memcmp(cf_errname(r->code), code->via.str.ptr, code->via.str.size) != 0)
            s_die("error.code is not the reply's code", r);
    }
    msgpack_unpacked_destroy(&u);
    return is_ok;
}

static bool s_run(cf_endpoint_t ep, const void *frame, size_t len, cf_reply_t *r)
{
    cf_request_t req = {.endpoint = ep, .auth_actor = NULL, .frame = frame, .len = len};
    int rc = cf_engine_run(s_engine, &req, 1, r);
    return s_check_reply(rc, r);
}

/* ----------------------------------------------------------------- setup --- */
static void s_pack_str(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

/* Run a request given as NULL-terminated key/value strings (a value "{...}"
 * is not parsed: data maps are packed by the caller through `data`).  Dies
 * unless it is answered ok; the reply's claim.id into ret_id when asked. */
static void s_setup(cf_endpoint_t ep, const char *const *kv, const char *data_kv[],
                    char *ret_id)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    size_t n = 0, nd = 0;
    while (kv[2 * n])
        n++;
    while (data_kv && data_kv[2 * nd])
        nd++;
    msgpack_pack_map(&pk, n + (data_kv ? 1 : 0));
    for (size_t i = 0; i < n; i++) {
        s_pack_str(&pk, kv[2 * i]);
        s_pack_str(&pk, kv[2 * i + 1]);
    }
    if (data_kv) {
        s_pack_str(&pk, "data");
        msgpack_pack_map(&pk, nd);
        for (size_t i = 0; i < nd; i++) {
            s_pack_str(&pk, data_kv[2 * i]);
            s_pack_str(&pk, data_kv[2 * i + 1]);
        }
    }
    cf_reply_t r;
    cf_reply_init(&r);
    if (!s_run(ep, sb.data, sb.size, &r))
        s_die("a set-up request failed", &r);
    if (ret_id) {
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        msgpack_unpack_next(&u, r.body.data, r.body.size, NULL);
        const msgpack_object *c = cf_mp_get(&u.data, "claim");
        const msgpack_object *id = c ? cf_mp_get(c, "id") : NULL;
        if (!id || id->type != MSGPACK_OBJECT_STR || id->via.str.size != FUZZ_ID_LEN)
            s_die("create answered no claim id", &r);
        memcpy(ret_id, id->via.str.ptr, FUZZ_ID_LEN);
        ret_id[FUZZ_ID_LEN] = '\0';
        msgpack_unpacked_destroy(&u);
    }
    cf_reply_fini(&r);
    msgpack_sbuffer_destroy(&sb);
}

static void s_cleanup(void)
{
    if (!s_engine)
        return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_tmp);
    cf_engine_destroy(&s_engine);
    if (system(cmd) != 0)
        fprintf(stderr, "fuzz_request: could not remove the temp store\n");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *src = getenv("CF_SRCDIR");
    char wf[1024];
    snprintf(wf, sizeof wf, "%s/workflows", src ? src : ".");
    if (access(wf, R_OK) != 0) {
        fprintf(stderr, "fuzz_request: no workflows in %s: set CF_SRCDIR to the "
                        "source tree\n", wf);
        exit(2);
    }
    char *tmp = s_tmp;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm"
                     : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(s_tmp, sizeof s_tmp, "%s/cf-fuzz-request-XXXXXX", base);
    if (!mkdtemp(tmp)) {
        perror("fuzz_request: mkdtemp");
        exit(2);
    }
    char data[600];
    snprintf(data, sizeof data, "%s/data", tmp);
    cf_time_t t0;
    if (cf_time_parse(FUZZ_T0, strlen(FUZZ_T0), &t0) != 0)
        abort();
    cf_engine_opts_t o = {
        .data_dir = data,
        .workflows_dir = wf,
        .map_size = FUZZ_MAP,
        .no_grow = true,
        .manual_clock = true,
        .manual_start = t0,
        .operators = s_roster,
        .noperators = 3,
    };
    cf_diags_t d = {0};
    if (cf_engine_open(&o, &s_engine, &d) != 0) {
        cf_diags_print(&d, stderr);
        exit(2);
    }
    cf_diags_clear(&d);
    atexit(s_cleanup);

    /* The placeholders' claims: A awaiting a referral, B in review (consent
     * given, with its SLA timers), C an inquiry about B, D denied (its
     * complaint window pending). */
    static const char *const consent[] = {"op", "consent.give", "id", "s-1", "member",
                                          "0202851111", NULL};
    s_setup(CF_EP_PORTAL, consent, NULL, NULL);
    static const char *const a[] = {"op", "create", "id", "s-2", "workflow", "health_claim",
                                    "member", "0101901234", NULL};
    static const char *ad[] = {"member", "0101901234", "treatment", "physiotherapy", NULL};
    s_setup(CF_EP_PORTAL, a, ad, s_claims[0]);
    static const char *const b[] = {"op", "create", "id", "s-3", "workflow", "health_claim",
                                    "member", "0202851111", NULL};
    static const char *bd[] = {"member", "0202851111", "treatment", "chiropractic", NULL};
    s_setup(CF_EP_PORTAL, b, bd, s_claims[1]);
    const char *const c[] = {"op", "create", "id", "s-4", "workflow", "inquiry",
                             "member", "0202851111", NULL};
    const char *cd[] = {"claim", s_claims[1], "text", "when?", NULL};
    s_setup(CF_EP_PORTAL, c, cd, s_claims[2]);
    s_setup(CF_EP_PORTAL, b, bd, NULL); /* the same id again: the stored reply */
    static const char *const b2[] = {"op", "create", "id", "s-5", "workflow", "health_claim",
                                     "member", "0202851111", NULL};
    s_setup(CF_EP_PORTAL, b2, bd, s_claims[3]);
    const char *const deny[] = {"op", "send", "id", "s-6", "actor", "hanne", "claim",
                                s_claims[3], "event", "decision.denied", NULL};
    const char *denyd[] = {"reason", "no", NULL};
    s_setup(CF_EP_OPERATOR, deny, denyd, NULL);
    return 0;
}

/* ------------------------------------------------------------ one input --- */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cf_endpoint_t ep = (data[0] & 1) ? CF_EP_OPERATOR : CF_EP_PORTAL;
    data++;
    size--;
    /* A copy, so the placeholders can be replaced; exactly sized, so ASan
     * sees a read past the frame's end.  An empty frame stays at data's end. */
    uint8_t *frame = size ? malloc(size) : NULL;
    if (size && !frame)
        return 0;
    if (size)
        memcpy(frame, data, size);
    const size_t plen = sizeof s_placeholder - 1;
    for (size_t i = 0; i + FUZZ_ID_LEN <= size; i++) {
        if (memcmp(frame + i, s_placeholder, plen) != 0)
            continue;
        unsigned k = (unsigned)(frame[i + plen] - 'A');
        if (k < FUZZ_NCLAIMS) {
            memcpy(frame + i, s_claims[k], FUZZ_ID_LEN);
            i += FUZZ_ID_LEN - 1;
        }
    }
    cf_reply_t r;
    cf_reply_init(&r);
    s_run(ep, frame ? frame : data, size, &r);
    cf_reply_fini(&r);
    free(frame);
    return 0;
}

/* cf_fixture.h: the engine tests' fixture - an engine on a real LMDB
 * directory in a temp dir with the shipped workflows, a manual clock at
 * T0 and a roster (hanne handler, sofie supervisor, aud auditor), and
 * helpers that send protocol frames written as JSON-like text. */
#ifndef CF_FIXTURE_H
#define CF_FIXTURE_H

#include <dirent.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cf_mp.h"
#include "cf_test.h"
#include "engine.h"
#include "workflow.h"

#define T0 "2026-11-24T09:00:00Z" /* a Tuesday */
#define CPR_A "0101901234"
#define CPR_B "020285-1111"
#define CPR_C "0303754321"
#define CPR_D "0404665555"

/* ------------------------------------------------------------ fixture --- */

/* The manual clock's start for the next s_open (tests may change it). */
static const char *s_clock_start = T0;
static char s_tmp[256];
typedef struct {
    msgpack_unpacked up;
    cf_reply_t r;   /* the unpacked objects point into r.body */
} s_kept_t;
static s_kept_t s_replies[1024];
static size_t s_nreplies;

static inline void s_free_replies(void)
{
    for (size_t i = 0; i < s_nreplies; i++) {
        msgpack_unpacked_destroy(&s_replies[i].up);
        cf_reply_fini(&s_replies[i].r);
    }
    s_nreplies = 0;
}

static inline void s_rmrf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d)) != NULL) {
            if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                continue;
            char *p;
            if (asprintf(&p, "%s/%s", path, de->d_name) < 0)
                continue;
            s_rmrf(p);
            free(p);
        }
        closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static inline const char *s_mktemp(void)
{
    snprintf(s_tmp, sizeof s_tmp, "%s/cf-engine-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    CF_ASSERT(mkdtemp(s_tmp) != NULL);
    return s_tmp;
}

static const cf_operator_t s_roster[] = {
    {"hanne", CF_ROLE_HANDLER, NULL},
    {"sofie", CF_ROLE_SUPERVISOR, NULL},
    {"aud", CF_ROLE_AUDITOR, NULL},
};

static inline cf_engine_t *s_open_at(const char *data, const char *wfdir, size_t map_size, bool no_grow)
{
    char wf[1024];
    snprintf(wf, sizeof wf, "%s/workflows", cf_test_srcdir());
    cf_time_t t0;
    CF_ASSERT_INT_EQ(cf_time_parse(s_clock_start, strlen(s_clock_start), &t0), 0);
    cf_engine_opts_t o = {
        .data_dir = data,
        .workflows_dir = wfdir ? wfdir : wf,
        .map_size = map_size,
        .no_grow = no_grow,
        .manual_clock = true,
        .manual_start = t0,
        .operators = s_roster,
        .noperators = 3,
    };
    cf_engine_t *e = NULL;
    cf_diags_t d = {0};
    int rc = cf_engine_open(&o, &e, &d);
    if (rc != 0)
        cf_diags_print(&d, stderr);
    cf_diags_clear(&d);
    CF_ASSERT_INT_EQ(rc, 0);
    return e;
}

static inline cf_engine_t *s_open(void)
{
    char data[300];
    snprintf(data, sizeof data, "%s/data", s_mktemp());
    return s_open_at(data, NULL, 0, false);
}

static inline void s_close(cf_engine_t **e)
{
    cf_engine_destroy(e);
    s_free_replies();
    s_rmrf(s_tmp);
}

/* Run one frame; the reply's root object (valid until s_free_replies).
 * *raw (may be NULL) gets the reply's bytes. */
static inline const msgpack_object *s_frame(cf_engine_t *e, cf_endpoint_t ep, const char *frame,
                                     size_t len, const msgpack_sbuffer **raw)
{
    if (s_nreplies == 1024)
        s_free_replies();
    s_kept_t *k = &s_replies[s_nreplies++];
    cf_request_t req = {ep, NULL, frame, len};
    cf_reply_init(&k->r);
    msgpack_unpacked_init(&k->up);
    int rc = cf_engine_run(e, &req, 1, &k->r);
    /* A batch that cannot commit answers `unavailable`. */
    if (rc != 0)
        CF_ASSERT_INT_EQ(k->r.code, CF_EUNAVAIL);
    size_t off = 0;
    CF_ASSERT(msgpack_unpack_next(&k->up, k->r.body.data, k->r.body.size, &off) ==
              MSGPACK_UNPACK_SUCCESS);
    if (raw)
        *raw = &k->r.body;
    return &k->up.data;
}

__attribute__((format(printf, 3, 4))) static inline const msgpack_object *
s_call(cf_engine_t *e, cf_endpoint_t ep, const char *fmt, ...)
{
    char text[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    /* Clock ops are writing ops: give them a fresh id, as a client would,
     * unless the test chose one. */
    static unsigned clock_ids;
    if (strstr(text, "'op':'clock.") && !strstr(text, "'id':") && text[0] == '{') {
        char with[sizeof text + 32];
        snprintf(with, sizeof with, "{'id':'clock-%u',%s", ++clock_ids, text + 1);
        size_t n = strnlen(with, sizeof text - 1); /* a long request is cut, as above */
        memcpy(text, with, n);
        text[n] = '\0';
    }
    msgpack_sbuffer sb;
    cf_mp_from_json(&sb, "%s", text);
    const msgpack_object *o = s_frame(e, ep, sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
    return o;
}

#define P CF_EP_PORTAL
#define O CF_EP_OPERATOR
#define S(o, path) cf_mp_s(cf_mp_path((o), (path)))
#define ASSERT_OK(o)                                                                    \
    do {                                                                                \
        const msgpack_object *ok_ = cf_mp_path((o), "ok");                              \
        if (!ok_ || ok_->type != MSGPACK_OBJECT_BOOLEAN || !ok_->via.boolean)           \
            CF_FAILF_("reply not ok: %s: %s", S((o), "error.code"), S((o), "error.message")); \
    } while (0)
#define ASSERT_ERR(o, code) CF_ASSERT_STR_EQ(S((o), "error.code"), (code))

static int s_seq;

/* A new health_claim for member with treatment; returns its id (static ring). */
static inline const char *s_create(cf_engine_t *e, const char *member, const char *treatment)
{
    const msgpack_object *r = s_call(e, P,
        "{'op':'create','id':'create-%d','member':'%s','workflow':'health_claim',"
        "'data':{'member':'%s','treatment':'%s'}}", ++s_seq, member, member, treatment);
    ASSERT_OK(r);
    return S(r, "claim.id");
}

static inline const msgpack_object *s_attach(cf_engine_t *e, const char *member, const char *claim,
                                      const char *kind, const char *ctype, const void *body,
                                      size_t len)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    char id[32];
    snprintf(id, sizeof id, "attach-%d", ++s_seq);
    const char *kv[][2] = {{"op", "attach"}, {"id", id}, {"member", member}, {"claim", claim},
                           {"kind", kind}, {"content_type", ctype}};
    msgpack_pack_map(&pk, 7);
    for (int i = 0; i < 6; i++) {
        msgpack_pack_str(&pk, strlen(kv[i][0]));
        msgpack_pack_str_body(&pk, kv[i][0], strlen(kv[i][0]));
        msgpack_pack_str(&pk, strlen(kv[i][1]));
        msgpack_pack_str_body(&pk, kv[i][1], strlen(kv[i][1]));
    }
    msgpack_pack_str(&pk, 4);
    msgpack_pack_str_body(&pk, "body", 4);
    msgpack_pack_bin(&pk, len);
    msgpack_pack_bin_body(&pk, body, len);
    const msgpack_object *o = s_frame(e, P, sb.data, sb.size, NULL);
    msgpack_sbuffer_destroy(&sb);
    return o;
}

__attribute__((unused)) static const char s_pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n";

#endif

/* reps.c: representations and the rules of who may act for a member
 * (reps.h).
 *
 * One record per (member, representative): registering again replaces it
 * (its evidence counted once less, its end timer cancelled), revoking
 * stamps revoked_at and keeps the record, so the member and an auditor see
 * who could act and when.  Whether a representation is in force is decided
 * from its times at the engine's clock, never from whether a timer has
 * fired: the end timer only records the end (ended_at) and cannot be late
 * in a way that matters.  A parent's or guardian's representation of a
 * minor gets the 18th birthday as its end when registered (a guardian's own
 * valid_until, an adult guardianship, wins), so the same rule serves both.
 *
 * Rejected: the representation inside the member's consent record (one
 * record per member, but a member has several representatives, and the
 * record is fixed-size and read on every event); a representative-keyed
 * primary (then purge by member would need a scan of everything).
 */
#include "reps.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "person.h"

/* ============================================================ helpers === */

bool cf_reps_active(const cf_rep_t *r, cf_time_t t)
{
    return r->revoked_at == 0 && r->valid_from <= t && (r->valid_until == 0 || t < r->valid_until);
}

int cf_reps_get(cf_batch_t *b, const unsigned char *member, const unsigned char *rep,
                cf_rep_t *ret)
{
    unsigned char k[CF_REP_KEY_LEN];
    cf_key_rep(k, member, rep);
    cf_bytes_t v;
    int rc = cf_txn_get(b->txn, CF_DB_REPS, k, sizeof k, &v);
    if (rc != 0)
        return rc;
    return cf_rep_decode(v.data, v.len, ret);
}

static void s_timer_name(const unsigned char *rep, char out[CF_NAME_MAX + 1])
{
    char hex[2 * CF_MEMBER_HASH_LEN + 1];
    cf_hex(rep, CF_MEMBER_HASH_LEN, hex);
    snprintf(out, CF_NAME_MAX + 1, "%s%s", CF_REP_END_TIMER, hex);
}

/* Start or cancel r's end timer (when it has an end). */
static int s_end_timer(cf_batch_t *b, const unsigned char *member, const unsigned char *rep,
                       const cf_rep_t *r, bool start)
{
    if (r->valid_until == 0)
        return 0;
    char name[CF_NAME_MAX + 1];
    s_timer_name(rep, name);
    unsigned char k[CF_TIMER_KEY_MAX];
    size_t kl = cf_key_timer(k, r->valid_until, CF_TIMER_MEMBER, member, CF_MEMBER_HASH_LEN,
                             name);
    return start ? cf_txn_put(b->txn, CF_DB_TIMERS, k, kl, "representation.ended", 20)
                 : cf_txn_del(b->txn, CF_DB_TIMERS, k, kl);
}

static int s_put(cf_batch_t *b, const unsigned char *member, const unsigned char *rep,
                 const cf_rep_t *r)
{
    msgpack_sbuffer *sb = &b->scratch;
    int rc = cf_rep_encode(r, sb);
    if (rc != 0)
        return rc;
    unsigned char k[CF_REP_KEY_LEN];
    cf_key_rep(k, member, rep);
    if ((rc = cf_txn_put(b->txn, CF_DB_REPS, k, sizeof k, sb->data, sb->size)) != 0)
        return rc;
    cf_key_rep(k, rep, member);
    return cf_txn_put(b->txn, CF_DB_REPS_BY, k, sizeof k, "", 0);
}

/* ============================================================= ages === */

/* A person turns a year older at midnight where they live: in the zone of
 * their country's calendar (a Danish 18th birthday begins at 23:00 or 22:00
 * UTC the day before).  Without a calendar for the country, dates are read
 * in UTC. */
static const cf_cal_t *s_person_cal(const cf_batch_t *b, const char *pid)
{
    int c = cf_pid_country(cf_pid_check(pid, strlen(pid)));
    return b->person_cal && c >= 0 && c < CF_COUNTRY_N ? b->person_cal[c] : NULL;
}

/* Whole years of age at the batch's clock, or -1 (not born). */
static int s_age(const cf_batch_t *b, const char *pid)
{
    const cf_cal_t *cal = s_person_cal(b, pid);
    if (!cal)
        return cf_pid_age(pid, strlen(pid), b->now);
    return cf_pid_age_on(pid, strlen(pid), cf_cal_today(cal, b->now));
}

/* *ret: the instant the person turns `years`: local midnight.  0 or
 * CF_EBADREQ. */
static int s_birthday(const cf_batch_t *b, const char *pid, int years, cf_time_t *ret)
{
    const cf_cal_t *cal = s_person_cal(b, pid);
    if (!cal)
        return cf_pid_birthday(pid, strlen(pid), years, ret);
    int64_t day;
    int rc = cf_pid_birthday_day(pid, strlen(pid), years, &day);
    if (rc == 0)
        *ret = cf_cal_end_of_day(cal, day - 1);   /* the end of the day before */
    return rc;
}

static bool s_same(const unsigned char *a, const unsigned char *b)
{
    return memcmp(a, b, CF_MEMBER_HASH_LEN) == 0;
}

/* The scope names of bits, for a message: "consent, read". */
static void s_scope_text(unsigned bits, char *out, size_t cap)
{
    out[0] = '\0';
    for (unsigned bit = 1; bit <= CF_SCOPE_READ; bit <<= 1) {
        if (!(bits & bit))
            continue;
        size_t n = strlen(out);
        snprintf(out + n, cap - n, "%s%s", n ? ", " : "", cf_scope_name(bit));
    }
    if (!out[0])
        snprintf(out, cap, "none");
}

/* ========================================================= the checks === */

int cf_reps_require(cf_op_t *op, const unsigned char *member, unsigned scope)
{
    if (!op->has_by || s_same(op->by_hash, member))
        return 0;
    cf_rep_t r;
    int rc = cf_reps_get(op->b, member, op->by_hash, &r);
    if (rc == CF_ENOTFOUND || (rc == 0 && !cf_reps_active(&r, op->b->now)))
        return cf_op_fail(op, CF_EFORBIDDEN, "the person acting ('by') holds no representation "
                          "of the member in force");
    if (rc != 0)
        return cf_op_fail(op, rc, "the member's representations cannot be read");
    if (!(r.scope & scope)) {
        char have[64];
        s_scope_text(r.scope, have, sizeof have);
        return cf_op_fail(op, CF_EFORBIDDEN, "the representation of the member does not cover "
                          "'%s' (its scope: %s)", cf_scope_name(scope), have);
    }
    op->by_kind = r.kind;
    return 0;
}

unsigned cf_reps_event_scope(const cf_wf_t *wf, int state, const char *event, size_t len)
{
    const cf_wf_event_t *ev = cf_wf_event_find(wf, state, event, len);
    if (ev && ev->scope)
        return cf_scope_find(ev->scope, strlen(ev->scope));
    return len > 10 && memcmp(event, "complaint.", 10) == 0 ? CF_SCOPE_COMPLAINTS
                                                             : CF_SCOPE_CLAIMS;
}

cf_event_who_t cf_reps_who(const cf_op_t *op, const unsigned char *member)
{
    cf_event_who_t w = {NULL, NULL, NULL};
    if (op->has_by && !(member && s_same(op->by_hash, member)))
        w.by = op->by;
    if (op->phone) {
        w.channel = "phone";
        w.reference = op->reference;
    } else if (op->ep == CF_EP_PORTAL) {
        w.channel = "portal";
    }
    return w;
}

static int s_decider(cf_batch_t *b, const unsigned char *member, cf_rep_t *r);

int cf_reps_consent_rule(cf_op_t *op, const char *member, const unsigned char *hash, bool give,
                         bool involved, cf_time_t *ret_lapses)
{
    cf_batch_t *b = op->b;
    *ret_lapses = 0;
    int age = s_age(b, member);
    if (age < 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'member' names a person not born at the "
                          "engine's clock");
    bool self = !op->has_by || s_same(op->by_hash, hash);
    const char *verb = give ? "give" : "withdraw";
    if (involved && !(give && self && age >= 15 && age < 18))
        return cf_op_fail(op, CF_EBADREQ, "field 'involved' is for a member aged 15 to 17 "
                          "giving their own consent");
    if (age >= 15 && age < 18) {
        /* Unless assessed unable (a representation that decides): then
         * that parent or guardian consents, and the member does not. */
        cf_rep_t r;
        int rc = self ? s_decider(b, hash, &r) : cf_reps_get(b, hash, op->by_hash, &r);
        bool decides = rc == 0 && r.decides && cf_reps_active(&r, b->now) &&
                       (r.scope & CF_SCOPE_CONSENT);
        if (rc != 0 && rc != CF_ENOTFOUND)
            return cf_op_fail(op, rc, "the member's representations cannot be read");
        if (self && decides)
            return cf_op_fail(op, CF_EFORBIDDEN, "the member was assessed unable to appreciate "
                              "the decision; their custodial parent or guardian must %s "
                              "consent for them", verb);
        if (!self && !decides)
            return cf_op_fail(op, CF_EFORBIDDEN, "a member aged 15 to 17 must %s consent "
                              "themselves; a parent or guardian cannot do it for them "
                              "(record the parents involved in 'involved')", verb);
        /* The consent a deciding parent gives runs its year like any
         * other; the parent's authority itself ends at 18 (rep_end). */
        return 0;
    }
    if (age < 15 && self)
        return cf_op_fail(op, CF_EFORBIDDEN, "a member under 15 cannot %s consent; a parent or "
                          "guardian must", verb);
    if (self)
        return 0;
    cf_rep_t r;
    int rc = cf_reps_get(b, hash, op->by_hash, &r);
    if (rc == CF_ENOTFOUND || (rc == 0 && !cf_reps_active(&r, b->now)))
        return cf_op_fail(op, CF_EFORBIDDEN, "the person acting ('by') holds no representation "
                          "of the member in force");
    if (rc != 0)
        return cf_op_fail(op, rc, "the member's representations cannot be read");
    if (age < 15 && r.kind != CF_REP_PARENT && r.kind != CF_REP_GUARDIAN)
        return cf_op_fail(op, CF_EFORBIDDEN, "for a member under 15 only a parent or guardian "
                          "may %s consent (this representation is '%s')", verb,
                          cf_rep_kind_name(r.kind));
    if (!(r.scope & CF_SCOPE_CONSENT)) {
        char have[64];
        s_scope_text(r.scope, have, sizeof have);
        return cf_op_fail(op, CF_EFORBIDDEN, "the representation of the member does not cover "
                          "'consent' (its scope: %s)", have);
    }
    if (age < 15 && s_birthday(b, member, 15, ret_lapses) != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the member's 15th birthday cannot be computed");
    return 0;
}

/* ============================================================== purge === */

typedef struct {
    unsigned char (*keys)[CF_REP_KEY_LEN];
    size_t n, cap;
} s_keys_t;

static int s_collect(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_keys_t *x = ctx;
    if (k.len != CF_REP_KEY_LEN)
        return CF_SCAN_NEXT;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        void *nv = realloc(x->keys, cap * CF_REP_KEY_LEN);
        if (!nv)
            return CF_EINTERNAL;
        x->keys = nv;
        x->cap = cap;
    }
    memcpy(x->keys[x->n++], k.data, CF_REP_KEY_LEN);
    return CF_SCAN_NEXT;
}

/* The keys under prefix (a hash) of db into *x (x->keys: free()). */
static int s_keys(cf_batch_t *b, cf_db_t db, const unsigned char *prefix, s_keys_t *x)
{
    memset(x, 0, sizeof *x);
    return cf_txn_scan(b->txn, db, prefix, CF_MEMBER_HASH_LEN, CF_MEMBER_HASH_LEN, s_collect, x);
}

/* The member's representation in force that decides for them (r), 0; or
 * CF_ENOTFOUND when none does; or a store error. */
static int s_decider(cf_batch_t *b, const unsigned char *member, cf_rep_t *r)
{
    s_keys_t x;
    int rc = s_keys(b, CF_DB_REPS, member, &x);
    int found = CF_ENOTFOUND;
    for (size_t i = 0; rc == 0 && i < x.n && found != 0; i++) {
        rc = cf_reps_get(b, member, x.keys[i] + CF_MEMBER_HASH_LEN, r);
        if (rc == 0 && r->decides && cf_reps_active(r, b->now))
            found = 0;
        else if (rc == CF_ENOTFOUND)
            rc = 0;
    }
    free(x.keys);
    return rc != 0 ? rc : found;
}

int cf_reps_erase_member(cf_batch_t *b, const unsigned char *member)
{
    s_keys_t x;
    int rc = s_keys(b, CF_DB_REPS, member, &x);
    for (size_t i = 0; rc == 0 && i < x.n; i++) {
        const unsigned char *rep = x.keys[i] + CF_MEMBER_HASH_LEN;
        cf_rep_t r;
        rc = cf_reps_get(b, member, rep, &r);
        if (rc == 0 && r.has_evidence)
            rc = cf_claims_doc_unref(b, r.ev_sha);
        if (rc == 0)
            rc = s_end_timer(b, member, rep, &r, false);
        if (rc == CF_EINTERNAL)      /* a record that does not decode goes all the same */
            rc = 0;
        if (rc == 0)
            rc = cf_txn_del(b->txn, CF_DB_REPS, x.keys[i], CF_REP_KEY_LEN);
        unsigned char k[CF_REP_KEY_LEN];
        cf_key_rep(k, rep, member);
        if (rc == 0)
            rc = cf_txn_del(b->txn, CF_DB_REPS_BY, k, sizeof k);
    }
    free(x.keys);
    return rc;
}

/* ============================================================= timers === */

int cf_reps_fire_end(cf_batch_t *b, const unsigned char *member, const char *name,
                     cf_time_t due)
{
    size_t pl = strlen(CF_REP_END_TIMER);
    unsigned char rep[CF_MEMBER_HASH_LEN];
    if (strlen(name) != pl + 2 * CF_MEMBER_HASH_LEN ||
        cf_unhex(name + pl, 2 * CF_MEMBER_HASH_LEN, rep, sizeof rep) != 0)
        return 0; /* not one of ours: dropped */
    cf_rep_t r;
    int rc = cf_reps_get(b, member, rep, &r);
    if (rc == CF_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (r.revoked_at || r.ended_at || r.valid_until != due)
        return 0; /* revoked or replaced since */
    r.ended_at = due;
    return s_put(b, member, rep, &r);
}

/* ======================================================== the fields === */

/* A person id field: canonical into out, its hash into hash. */
static int s_pid_field(cf_op_t *op, const char *key, char out[CF_PID_LEN],
                       unsigned char hash[CF_MEMBER_HASH_LEN])
{
    const char *s;
    size_t n;
    int rc = cf_op_str(op, key, true, 32, &s, &n);
    if (rc != 0)
        return rc;
    if (cf_pid_canonical(s, n, out) != 0)
        return cf_op_fail(op, CF_EBADREQ, "field '%s' is not a valid person id (Danish CPR or "
                          "Norwegian national identity or D-number)", key);
    cf_claims_member_hash(op->b, out, hash);
    return 0;
}

/* `valid_until` of member's representation: a date (valid through that
 * day where the member lives, as their birthdays above) or an RFC 3339
 * time, in the future.  *ret 0 when absent and not required. */
static int s_until(cf_op_t *op, const char *member, bool required, cf_time_t *ret)
{
    const char *s;
    size_t n;
    int rc = cf_op_str(op, "valid_until", required, 64, &s, &n);
    *ret = 0;
    if (rc != 0 || !s)
        return rc;
    int y;
    unsigned m, d;
    if (cf_date_parse(s, n, &y, &m, &d) == 0) {
        const cf_cal_t *cal = s_person_cal(op->b, member);
        int64_t day = cf_days_from_civil(y, m, d);
        *ret = cal ? cf_cal_end_of_day(cal, day) : (day + 1) * 86400;
    } else if (cf_time_parse(s, n, ret) != 0) {
        return cf_op_fail(op, CF_EBADREQ, "field 'valid_until' must be a date (YYYY-MM-DD) or "
                          "an RFC 3339 time");
    }
    if (*ret <= op->b->now)
        return cf_op_fail(op, CF_EBADREQ, "field 'valid_until' is not in the future");
    return 0;
}

static int s_scope_field(cf_op_t *op, unsigned *ret)
{
    const msgpack_object *o = cf_mp_get(op->req, "scope");
    *ret = 0;
    if (!o)
        return cf_op_fail(op, CF_EBADREQ, "field 'scope' is required");
    if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size == 0 || o->via.array.size > 8)
        return cf_op_fail(op, CF_EBADREQ, "field 'scope' must be a list of 1 to 8 of consent, "
                          "claims, complaints, read");
    for (uint32_t i = 0; i < o->via.array.size; i++) {
        const msgpack_object *e = &o->via.array.ptr[i];
        unsigned bit = e->type == MSGPACK_OBJECT_STR ? cf_scope_find(e->via.str.ptr,
                                                                     e->via.str.size) : 0;
        if (!bit)
            return cf_op_fail(op, CF_EBADREQ, "field 'scope' holds something other than "
                              "consent, claims, complaints, read");
        *ret |= bit;
    }
    return 0;
}

/* The evidence document {content_type, body, kind?}: hashed into r. */
static int s_evidence(cf_op_t *op, cf_rep_t *r, const char **ctype, size_t *clen,
                      const msgpack_object **body)
{
    const msgpack_object *e = cf_mp_get(op->req, "evidence");
    if (!e || e->type == MSGPACK_OBJECT_NIL)
        return cf_op_fail(op, CF_EBADREQ, "field 'evidence' is required (the document the "
                          "representation rests on)");
    if (e->type != MSGPACK_OBJECT_MAP)
        return cf_op_fail(op, CF_EBADREQ, "field 'evidence' must be a map of content_type "
                          "and body");
    for (uint32_t i = 0; i < e->via.map.size; i++) {
        const msgpack_object *k = &e->via.map.ptr[i].key;
        if (!(cf_mp_streq(k, "content_type") || cf_mp_streq(k, "body") ||
              cf_mp_streq(k, "kind")))
            return cf_op_fail(op, CF_EBADREQ, "field 'evidence' holds a key other than "
                              "content_type, body, kind");
    }
    const msgpack_object *ct = cf_mp_get(e, "content_type"), *k = cf_mp_get(e, "kind");
    *body = cf_mp_get(e, "body");
    if (!ct || ct->type != MSGPACK_OBJECT_STR || ct->via.str.size == 0 ||
        ct->via.str.size > 127)
        return cf_op_fail(op, CF_EBADREQ, "field 'evidence.content_type' must be a string of "
                          "1 to 127 bytes");
    if (!*body || (*body)->type != MSGPACK_OBJECT_BIN || (*body)->via.bin.size == 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'evidence.body' must be non-empty msgpack bin");
    if ((*body)->via.bin.size > op->b->lim->max_document)
        return cf_op_fail(op, CF_ETOOLARGE, "the document is %u bytes; the limit is %zu",
                          (*body)->via.bin.size, op->b->lim->max_document);
    snprintf(r->ev_kind, sizeof r->ev_kind, "evidence");
    if (k) {
        bool okk = k->type == MSGPACK_OBJECT_STR && k->via.str.size >= 1 &&
                   k->via.str.size <= 32 && k->via.str.ptr[0] >= 'a' && k->via.str.ptr[0] <= 'z';
        for (uint32_t i = 0; okk && i < k->via.str.size; i++) {
            char ch = k->via.str.ptr[i];
            okk = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_';
        }
        if (!okk)
            return cf_op_fail(op, CF_EBADREQ, "field 'evidence.kind' must be a lower-case name "
                              "([a-z][a-z0-9_]*, at most 32 bytes)");
        snprintf(r->ev_kind, sizeof r->ev_kind, "%.*s", (int)k->via.str.size, k->via.str.ptr);
    }
    *ctype = ct->via.str.ptr;
    *clen = ct->via.str.size;
    SHA256((const unsigned char *)(*body)->via.bin.ptr, (*body)->via.bin.size, r->ev_sha);
    r->ev_size = (*body)->via.bin.size;
    r->has_evidence = true;
    return 0;
}

/* ============================================================ replies === */

static void s_pack_time_or_nil(msgpack_packer *pk, cf_time_t t)
{
    if (t)
        cf_pack_time(pk, t);
    else
        msgpack_pack_nil(pk);
}

static void s_pack_rep(msgpack_packer *pk, const cf_rep_t *r, cf_time_t now)
{
    msgpack_pack_map(pk, 12);
    cf_pack_str(pk, "member");
    cf_pack_str(pk, r->member);
    cf_pack_str(pk, "representative");
    cf_pack_str(pk, r->rep);
    cf_pack_str(pk, "kind");
    cf_pack_str(pk, cf_rep_kind_name(r->kind));
    cf_pack_str(pk, "scope");
    uint32_t n = 0;
    for (unsigned bit = 1; bit <= CF_SCOPE_READ; bit <<= 1)
        n += (r->scope & bit) != 0;
    msgpack_pack_array(pk, n);
    for (unsigned bit = 1; bit <= CF_SCOPE_READ; bit <<= 1)
        if (r->scope & bit)
            cf_pack_str(pk, cf_scope_name(bit));
    cf_pack_str(pk, "valid_from");
    cf_pack_time(pk, r->valid_from);
    cf_pack_str(pk, "valid_until");
    s_pack_time_or_nil(pk, r->valid_until);
    cf_pack_str(pk, "evidence");
    if (r->has_evidence) {
        char hex[65];
        cf_hex(r->ev_sha, 32, hex);
        msgpack_pack_map(pk, 3);
        cf_pack_str(pk, "kind");
        cf_pack_str(pk, r->ev_kind);
        cf_pack_str(pk, "sha256");
        cf_pack_str(pk, hex);
        cf_pack_str(pk, "size");
        msgpack_pack_uint64(pk, r->ev_size);
    } else {
        msgpack_pack_nil(pk);
    }
    cf_pack_str(pk, "registered_by");
    cf_pack_str(pk, r->registered_by);
    cf_pack_str(pk, "revoked_at");
    s_pack_time_or_nil(pk, r->revoked_at);
    /* Ended: recorded by its timer, or due and the timer not yet run. */
    cf_pack_str(pk, "ended_at");
    s_pack_time_or_nil(pk, r->ended_at ? r->ended_at
                           : r->revoked_at == 0 && r->valid_until && now >= r->valid_until
                               ? r->valid_until : 0);
    cf_pack_str(pk, "active");
    if (cf_reps_active(r, now))
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
    cf_pack_str(pk, "decides");
    if (r->decides)
        msgpack_pack_true(pk);
    else
        msgpack_pack_false(pk);
}

int cf_reps_pack_member(cf_batch_t *b, const unsigned char *member, msgpack_packer *pk)
{
    s_keys_t x;
    int rc = s_keys(b, CF_DB_REPS, member, &x);
    cf_rep_t *v = rc == 0 ? calloc(x.n ? x.n : 1, sizeof *v) : NULL;
    size_t n = 0;
    if (rc == 0 && !v)
        rc = CF_EINTERNAL;
    for (size_t i = 0; rc == 0 && i < x.n; i++) {
        rc = cf_reps_get(b, member, x.keys[i] + CF_MEMBER_HASH_LEN, &v[n]);
        if (rc == 0)
            n++;
        else if (rc == CF_ENOTFOUND)
            rc = 0;
    }
    if (rc == 0) {
        msgpack_pack_array(pk, (uint32_t)n);
        for (size_t i = 0; i < n; i++)
            s_pack_rep(pk, &v[i], b->now);
    }
    free(v);
    free(x.keys);
    return rc;
}

/* ============================================================ the ops === */

/* Write r as the representation of member by rep, replacing what was
 * there (its evidence and end timer), the new evidence's bytes with it;
 * reply `representation`. */
static int s_register(cf_op_t *op, const unsigned char *mh, const unsigned char *rh,
                      cf_rep_t *r, const char *ctype, size_t clen, const msgpack_object *body)
{
    cf_batch_t *b = op->b;
    cf_rep_t old;
    int rc = cf_reps_get(b, mh, rh, &old);
    if (rc == 0) {
        if (old.has_evidence && (rc = cf_claims_doc_unref(b, old.ev_sha)) != 0)
            return rc;
        if ((rc = s_end_timer(b, mh, rh, &old, false)) != 0)
            return rc;
    } else if (rc != CF_ENOTFOUND && rc != CF_EINTERNAL) {
        return rc;
    }
    if (r->has_evidence &&
        (rc = cf_claims_doc_ref(b, r->ev_sha, ctype, clen, body->via.bin.ptr,
                                body->via.bin.size)) != 0)
        return rc;
    if ((rc = s_end_timer(b, mh, rh, r, true)) != 0 || (rc = s_put(b, mh, rh, r)) != 0)
        return rc;
    op->wrote = true;
    cf_op_key(op, "representation");
    s_pack_rep(&op->pk, r, b->now);
    return 0;
}

int cf_op_rep_add(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    cf_rep_t r;
    memset(&r, 0, sizeof r);
    unsigned char mh[CF_MEMBER_HASH_LEN], rh[CF_MEMBER_HASH_LEN];
    const char *kind, *ctype = NULL;
    size_t klen, clen = 0;
    const msgpack_object *body = NULL;
    int rc;
    if ((rc = s_pid_field(op, "member", r.member, mh)) != 0 ||
        (rc = s_pid_field(op, "representative", r.rep, rh)) != 0 ||
        (rc = cf_op_str(op, "kind", true, 32, &kind, &klen)) != 0 ||
        (rc = s_scope_field(op, &r.scope)) != 0 || (rc = s_until(op, r.member, false, &r.valid_until)) != 0)
        return rc;
    if ((r.kind = cf_rep_kind_find(kind, klen)) == CF_REP_NONE)
        return cf_op_fail(op, CF_EBADREQ, "field 'kind' must be one of parent, guardian, "
                          "next_of_kin, attorney, third_party");
    if (s_same(mh, rh))
        return cf_op_fail(op, CF_EBADREQ, "field 'representative' names the member");
    if ((rc = s_evidence(op, &r, &ctype, &clen, &body)) != 0)
        return rc;
    const msgpack_object *dec = cf_mp_get(op->req, "decides");
    if (dec && dec->type != MSGPACK_OBJECT_BOOLEAN && dec->type != MSGPACK_OBJECT_NIL)
        return cf_op_fail(op, CF_EBADREQ, "field 'decides' must be a boolean");
    r.decides = dec && dec->type == MSGPACK_OBJECT_BOOLEAN && dec->via.boolean;
    int age = s_age(b, r.member);
    int rage = s_age(b, r.rep);
    if (age < 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'member' names a person not born at the "
                          "engine's clock");
    if (rage < 18)
        return cf_op_fail(op, CF_EFORBIDDEN, "a representative must be 18 or over");
    bool adult = age >= 18;
    cf_time_t at18 = 0;
    if (!adult && s_birthday(b, r.member, 18, &at18) != 0)
        return cf_op_fail(op, CF_EINTERNAL, "the member's 18th birthday cannot be computed");
    switch (r.kind) {
    case CF_REP_PARENT:
        if (adult)
            return cf_op_fail(op, CF_EFORBIDDEN, "a parent represents a member under 18; for an "
                              "adult register a guardian, next_of_kin or attorney");
        /* A parent's authority ends at 18, whatever was asked. */
        if (r.valid_until == 0 || r.valid_until > at18)
            r.valid_until = at18;
        break;
    case CF_REP_GUARDIAN:
    case CF_REP_NEXT_OF_KIN:
        if (adult && op->role != CF_ROLE_SUPERVISOR)
            return cf_op_fail(op, CF_EFORBIDDEN, "a next_of_kin or guardian representation of "
                              "an adult must be registered by a supervisor");
        /* A guardian of a minor until 18, unless registered with its own
         * end (an adult guardianship). */
        if (r.kind == CF_REP_GUARDIAN && !adult && r.valid_until == 0)
            r.valid_until = at18;
        break;
    default:        /* attorney, third_party */
        if (!adult)
            return cf_op_fail(op, CF_EFORBIDDEN, "a member under 18 cannot be represented by "
                              "an attorney or third party; a parent or guardian acts for them");
        break;
    }
    /* Seed 001: a young person of 15-17 decides for themselves unless the
     * healthcare professional assessed them unable to appreciate the
     * decision; then the custodial parent decides.  The assessment is the
     * evidence this registration rests on. */
    if (r.decides) {
        if (r.kind != CF_REP_PARENT && r.kind != CF_REP_GUARDIAN)
            return cf_op_fail(op, CF_EBADREQ, "field 'decides' is for a parent or guardian");
        if (age < 15 || adult)
            return cf_op_fail(op, CF_EBADREQ, "field 'decides' is for a member aged 15 to 17 "
                              "(under 15 a parent or guardian decides anyway)");
        if (!(r.scope & CF_SCOPE_CONSENT))
            return cf_op_fail(op, CF_EBADREQ, "field 'decides' needs 'consent' in 'scope'");
    }
    r.valid_from = b->now;
    snprintf(r.registered_by, sizeof r.registered_by, "%s", op->actor);
    return s_register(op, mh, rh, &r, ctype, clen, body);
}

int cf_op_rep_grant(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    cf_rep_t r;
    memset(&r, 0, sizeof r);
    unsigned char rh[CF_MEMBER_HASH_LEN];
    int rc;
    if ((rc = s_pid_field(op, "representative", r.rep, rh)) != 0 ||
        (rc = s_scope_field(op, &r.scope)) != 0 || (rc = s_until(op, op->member_pid, true, &r.valid_until)) != 0)
        return rc;
    if (op->has_by && !s_same(op->by_hash, op->member_hash))
        return cf_op_fail(op, CF_EFORBIDDEN, "only the member may authorise a third party; a "
                          "representative cannot pass it on");
    snprintf(r.member, sizeof r.member, "%s", op->member_pid);
    if (s_same(op->member_hash, rh))
        return cf_op_fail(op, CF_EBADREQ, "field 'representative' names the member");
    int age = s_age(b, r.member);
    if (age < 18)
        return cf_op_fail(op, CF_EFORBIDDEN, "a member under 18 cannot authorise a third party; "
                          "a parent or guardian acts for them");
    if (s_age(b, r.rep) < 18)
        return cf_op_fail(op, CF_EFORBIDDEN, "a representative must be 18 or over");
    r.kind = CF_REP_THIRD_PARTY;
    r.valid_from = b->now;
    snprintf(r.registered_by, sizeof r.registered_by, "member");
    return s_register(op, op->member_hash, rh, &r, NULL, 0, NULL);
}

int cf_op_rep_revoke(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    char member[CF_PID_LEN], rep[CF_PID_LEN];
    unsigned char mh[CF_MEMBER_HASH_LEN], rh[CF_MEMBER_HASH_LEN];
    int rc;
    if ((rc = s_pid_field(op, "member", member, mh)) != 0 ||
        (rc = s_pid_field(op, "representative", rep, rh)) != 0)
        return rc;
    cf_rep_t r;
    rc = cf_reps_get(b, mh, rh, &r);
    if (rc == CF_ENOTFOUND || (rc == 0 && !cf_reps_active(&r, b->now)))
        return cf_op_fail(op, CF_ENOTFOUND, "no representation of the member by that person in "
                          "force");
    if (rc != 0)
        return cf_op_fail(op, rc, "the member's representations cannot be read");
    if (op->ep == CF_EP_PORTAL) {
        /* The member ends what they granted; a representative may always
         * step down. */
        bool self = !op->has_by || s_same(op->by_hash, mh);
        bool renounce = op->has_by && s_same(op->by_hash, rh);
        if (!renounce && !(self && (r.kind == CF_REP_THIRD_PARTY || r.kind == CF_REP_ATTORNEY)))
            return cf_op_fail(op, CF_EFORBIDDEN, self
                              ? "a member revokes only a third_party or attorney representation "
                                "on the portal; the Health Team ends the others"
                              : "only the member or the representative may revoke a "
                                "representation");
    } else if ((r.kind == CF_REP_GUARDIAN || r.kind == CF_REP_NEXT_OF_KIN) &&
               op->role != CF_ROLE_SUPERVISOR &&
               s_age(b, member) >= 18) {
        return cf_op_fail(op, CF_EFORBIDDEN, "a next_of_kin or guardian representation of an "
                          "adult must be revoked by a supervisor");
    }
    if ((rc = s_end_timer(b, mh, rh, &r, false)) != 0)
        return rc;
    r.revoked_at = b->now;
    if ((rc = s_put(b, mh, rh, &r)) != 0)
        return rc;
    op->wrote = true;
    cf_op_key(op, "representation");
    s_pack_rep(&op->pk, &r, b->now);
    return 0;
}

int cf_op_rep_list(cf_op_t *op)
{
    cf_batch_t *b = op->b;
    char member[CF_PID_LEN];
    unsigned char mh[CF_MEMBER_HASH_LEN];
    int rc;
    if ((rc = s_pid_field(op, "member", member, mh)) != 0)
        return rc;
    /* The member's own (to the member, a representative who may read, or
     * an operator), and those in which the caller is the representative. */
    bool theirs = op->ep == CF_EP_OPERATOR || !op->has_by || s_same(op->by_hash, mh);
    if (!theirs) {
        cf_rep_t r;
        rc = cf_reps_get(b, mh, op->by_hash, &r);
        if (rc != 0 && rc != CF_ENOTFOUND)
            return cf_op_fail(op, rc, "the member's representations cannot be read");
        theirs = rc == 0 && cf_reps_active(&r, b->now) && (r.scope & CF_SCOPE_READ);
    }
    const unsigned char *caller = op->ep == CF_EP_PORTAL ? (op->has_by ? op->by_hash : mh) : mh;
    s_keys_t of, by;
    memset(&of, 0, sizeof of);
    rc = theirs ? s_keys(b, CF_DB_REPS, mh, &of) : 0;
    if (rc == 0)
        rc = s_keys(b, CF_DB_REPS_BY, caller, &by);
    else
        memset(&by, 0, sizeof by);
    msgpack_sbuffer list;
    msgpack_sbuffer_init(&list);
    msgpack_packer lp;
    msgpack_packer_init(&lp, &list, msgpack_sbuffer_write);
    uint32_t n = 0;
    for (size_t i = 0; rc == 0 && i < of.n + by.n; i++) {
        unsigned char k[CF_REP_KEY_LEN];
        if (i < of.n) {
            memcpy(k, of.keys[i], sizeof k);
        } else {
            /* reps_by: representative + member; the record's key the other way */
            cf_key_rep(k, by.keys[i - of.n] + CF_MEMBER_HASH_LEN, by.keys[i - of.n]);
            if (theirs && s_same(k, mh))
                continue;       /* listed already */
        }
        cf_rep_t r;
        rc = cf_reps_get(b, k, k + CF_MEMBER_HASH_LEN, &r);
        if (rc == CF_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc == 0) {
            s_pack_rep(&lp, &r, b->now);
            n++;
        }
    }
    free(of.keys);
    free(by.keys);
    if (rc == 0) {
        cf_op_key(op, "representations");
        msgpack_pack_array(&op->pk, n);
        if (list.size)
            msgpack_sbuffer_write(&op->out, list.data, list.size);
    }
    msgpack_sbuffer_destroy(&list);
    if (rc != 0)
        return cf_op_fail(op, rc, "the representations cannot be read");
    return 0;
}

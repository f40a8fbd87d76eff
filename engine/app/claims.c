/* claims.c: the claims layer (claims.h).
 *
 * Every change to a claim goes through cf_claims_apply or cf_claims_create,
 * which share one write path (s_write): timers of the old state out and of
 * the new one in, the state and flag indexes, the history record, the
 * publication (made from the history record just written, so subscribers
 * see exactly what `history` will show), and the claim record last.  The
 * validation - state machine, guards, due times - happens before the first
 * write, so a refused event leaves no trace in the batch's transaction.
 */
#include "claims.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cf_be.h"

/* ============================================================== batch === */

void cf_batch_init(cf_batch_t *b)
{
    msgpack_sbuffer_init(&b->scratch);
    b->compact_pending = false;
    b->purge_ran = false;
    b->audit_role = b->audit_purpose = NULL;
}

void cf_batch_fini(cf_batch_t *b)
{
    msgpack_sbuffer_destroy(&b->scratch);
}

const cf_wf_entry_t *cf_registry_find(const cf_registry_t *r, const char *name, size_t len,
                                      int64_t version)
{
    for (size_t i = 0; i < r->n; i++) {
        const cf_wf_t *wf = r->v[i].wf;
        if (strlen(wf->name) == len && memcmp(wf->name, name, len) == 0 &&
            (version ? wf->version == version : r->v[i].latest))
            return &r->v[i];
    }
    return NULL;
}

/* ======================================================= publications === */

void cf_pubs_truncate(cf_pubs_t *p, size_t n)
{
    while (p->n > n) {
        p->n--;
        free(p->v[p->n].topic);
        free(p->v[p->n].body);
    }
}

void cf_pubs_clear(cf_pubs_t *p) { cf_pubs_truncate(p, 0); }

void cf_pubs_fini(cf_pubs_t *p)
{
    cf_pubs_clear(p);
    free(p->v);
    p->v = NULL;
    p->cap = 0;
}

int cf_claims_publish(cf_batch_t *b, const char *workflow, const char *event, const char *body,
                      size_t len)
{
    cf_pubs_t *ps = b->pubs;
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        cf_pub_own_t *v = realloc(ps->v, cap * sizeof *v);
        if (!v)
            return CF_EINTERNAL;
        ps->v = v;
        ps->cap = cap;
    }
    cf_pub_own_t *p = &ps->v[ps->n];
    size_t tl = strlen(workflow) + 1 + strlen(event) + 1;
    p->topic = malloc(tl);
    p->body = malloc(len ? len : 1);
    if (!p->topic || !p->body) {
        free(p->topic);
        free(p->body);
        return CF_EINTERNAL;
    }
    snprintf(p->topic, tl, "%s/%s", workflow, event);
    memcpy(p->body, body, len);
    p->body_len = len;
    ps->n++;
    return 0;
}

/* ============================================================ helpers === */

void cf_claims_new_id(cf_batch_t *b, char out[CF_ID_LEN + 1])
{
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    cf_idgen_t *g = b->ids;
    uint64_t ms;
    if (b->clock->manual) {
        ms = (uint64_t)b->clock->manual_now * 1000;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    }
    if (ms <= g->last_ms) {
        /* Same millisecond (or a clock step back): keep order by counting
         * up the random part. */
        ms = g->last_ms;
        for (int i = 9; i >= 0 && ++g->last_rand[i] == 0; i--)
            ;
    } else {
        g->last_ms = ms;
        randombytes_buf(g->last_rand, sizeof g->last_rand);
        g->last_rand[0] &= 0x7f; /* room to count up */
    }
    /* 48 bits of time -> 10 chars, 80 bits of randomness -> 16 chars. */
    for (int i = 9; i >= 0; i--, ms >>= 5)
        out[i] = b32[ms & 31];
    const unsigned char *r = g->last_rand;
    uint64_t hi = (uint64_t)r[0] << 32 | (uint64_t)r[1] << 24 | (uint64_t)r[2] << 16 |
                  (uint64_t)r[3] << 8 | r[4];
    uint64_t lo = (uint64_t)r[5] << 32 | (uint64_t)r[6] << 24 | (uint64_t)r[7] << 16 |
                  (uint64_t)r[8] << 8 | r[9];
    for (int i = 17; i >= 10; i--, hi >>= 5)
        out[i] = b32[hi & 31];
    for (int i = 25; i >= 18; i--, lo >>= 5)
        out[i] = b32[lo & 31];
    out[CF_ID_LEN] = '\0';
}

void cf_claims_member_hash(const cf_batch_t *b, const char *canon,
                           unsigned char out[CF_MEMBER_HASH_LEN])
{
    crypto_generichash(out, CF_MEMBER_HASH_LEN, (const unsigned char *)canon, strlen(canon),
                       cf_store_hashkey(b->store), 32);
}

static const cf_wf_t *s_resolve(void *ctx, const char *name, size_t len, int64_t version)
{
    const cf_wf_entry_t *w = cf_registry_find(ctx, name, len, version);
    return w ? w->wf : NULL;
}

int cf_claims_load(cf_batch_t *b, const char *id, size_t len, cf_claim_t *c)
{
    if (len != CF_ID_LEN)
        return CF_ENOTFOUND;
    cf_bytes_t v;
    int rc = cf_txn_get(b->txn, CF_DB_CLAIMS, id, len, &v);
    if (rc != 0)
        return rc;
    rc = cf_claim_decode(v.data, v.len, s_resolve, (void *)b->reg, c);
    if (rc != 0)
        return rc;
    memcpy(c->id, id, CF_ID_LEN);
    c->id[CF_ID_LEN] = '\0';
    return 0;
}

int cf_claims_consent_get(cf_batch_t *b, const unsigned char *hash, cf_consent_t *ret)
{
    memset(ret, 0, sizeof *ret);
    cf_bytes_t v;
    int rc = cf_txn_get(b->txn, CF_DB_MEMBERS, hash, CF_MEMBER_HASH_LEN, &v);
    if (rc == CF_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return cf_consent_decode(v.data, v.len, ret);
}

int cf_claims_consent_put(cf_batch_t *b, const unsigned char *hash, const cf_consent_t *c)
{
    unsigned char v[CF_CONSENT_REC_LEN];
    cf_consent_encode(c, v);
    return cf_txn_put(b->txn, CF_DB_MEMBERS, hash, CF_MEMBER_HASH_LEN, v, sizeof v);
}

int cf_claims_consent_ctx(cf_batch_t *b, const unsigned char *hash, cf_sm_ctx_t *ctx)
{
    cf_consent_t c;
    int rc = cf_claims_consent_get(b, hash, &c);
    ctx->consent_given_at = c.given_at;
    ctx->consent_valid_until = c.valid_until;
    ctx->consent_withdrawn_at = c.withdrawn_at;
    return rc;
}

int cf_claims_consent_timers(cf_batch_t *b, const unsigned char *hash, const cf_consent_t *c,
                             bool start)
{
    if (!start && (c->given_at == 0 || c->withdrawn_at != 0))
        return 0;
    static const struct {
        const char *name, *event;
        cf_time_t before;
    } timers[] = {
        {CF_CONSENT_TIMER, "consent.expired", 0},
        {CF_CONSENT_EXPIRING_TIMER, "consent.expiring", CF_CONSENT_NOTICE},
    };
    unsigned char k[CF_TIMER_KEY_MAX];
    for (size_t i = 0; i < sizeof timers / sizeof timers[0]; i++) {
        size_t kl = cf_key_timer(k, c->valid_until - timers[i].before, CF_TIMER_MEMBER, hash,
                                 CF_MEMBER_HASH_LEN, timers[i].name);
        int rc = start ? cf_txn_put(b->txn, CF_DB_TIMERS, k, kl, timers[i].event,
                                    strlen(timers[i].event))
                       : cf_txn_del(b->txn, CF_DB_TIMERS, k, kl);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Due times of r's timers to start, computed before any write. */
static int s_dues(cf_batch_t *b, const cf_claim_t *c, const cf_sm_result_t *r, cf_time_t *dues)
{
    if (!r->state_changed)
        return 0;
    if (r->nstart > CF_CLAIM_MAX_TIMERS)
        return CF_EINTERNAL;
    const cf_wf_entry_t *w = cf_registry_find(b->reg, c->wf->name, strlen(c->wf->name),
                                              c->wf->version);
    if (!w)
        return CF_EINTERNAL;
    for (size_t i = 0; i < r->nstart; i++)
        if (cf_cal_add(w->cal, b->now, r->start[i].after, &dues[i]) != 0)
            return CF_EBADREQ;
    return 0;
}

/* =========================================================== the write === */

/* Write one transition of c (loaded, or new when created): timers, indexes,
 * history, publication, record. */
static int s_write(cf_batch_t *b, cf_claim_t *c, const cf_sm_result_t *r, const char *event,
                   const cf_apply_rec_t *rec, const cf_time_t *dues, bool created)
{
    cf_txn_t *t = b->txn;
    unsigned char k[CF_KEY_MAX];
    size_t kl;
    const cf_wf_t *wf = c->wf;
    int rc = 0;

    if (r->state_changed || created) {
        for (size_t i = 0; i < c->ntimers; i++) {
            kl = cf_key_timer(k, c->timers[i].due, CF_TIMER_CLAIM, c->id, CF_ID_LEN,
                              c->timers[i].name);
            if ((rc = cf_txn_del(t, CF_DB_TIMERS, k, kl)) != 0)
                return rc;
        }
        c->ntimers = 0;
        for (size_t i = 0; i < r->nstart; i++) {
            cf_claim_timer_t *tm = &c->timers[c->ntimers++];
            snprintf(tm->name, sizeof tm->name, "%s", r->start[i].name);
            snprintf(tm->event, sizeof tm->event, "%s", r->start[i].event);
            tm->due = dues[i];
            kl = cf_key_timer(k, tm->due, CF_TIMER_CLAIM, c->id, CF_ID_LEN, tm->name);
            if ((rc = cf_txn_put(t, CF_DB_TIMERS, k, kl, tm->event, strlen(tm->event))) != 0)
                return rc;
        }
        if (!created) {
            kl = cf_key_state(k, wf->name, wf->states[c->state].name, c->id);
            if ((rc = cf_txn_del(t, CF_DB_IDX_STATE, k, kl)) != 0)
                return rc;
        }
        kl = cf_key_state(k, wf->name, wf->states[r->next.state].name, c->id);
        if ((rc = cf_txn_put(t, CF_DB_IDX_STATE, k, kl, "", 0)) != 0)
            return rc;
        /* Entering a final state of the claim's own version: the purge's
         * index, by the time it closed.  (Leaving one cannot happen.) */
        if (wf->states[r->next.state].final && (created || !wf->states[c->state].final)) {
            kl = cf_key_closed(k, b->now, c->id);
            if ((rc = cf_txn_put(t, CF_DB_IDX_CLOSED, k, kl, "", 0)) != 0)
                return rc;
        }
    }
    uint64_t changed = c->flags ^ r->next.flags;
    for (size_t i = 0; i < wf->nflags; i++) {
        if (!((changed >> i) & 1))
            continue;
        kl = cf_key_flag(k, wf->flags[i], c->id);
        rc = (r->next.flags >> i) & 1 ? cf_txn_put(t, CF_DB_IDX_FLAG, k, kl, "", 0)
                                      : cf_txn_del(t, CF_DB_IDX_FLAG, k, kl);
        if (rc != 0)
            return rc;
    }
    const char *from = created || r->from < 0 ? NULL : wf->states[c->state].name;
    c->state = r->next.state;
    c->prev = r->next.prev;
    c->flags = r->next.flags;
    c->updated = b->now;
    c->seq++;

    msgpack_sbuffer *sb = &b->scratch;
    if ((rc = cf_event_encode(c->seq, b->now, event, from, wf->states[c->state].name,
                              rec->actor, rec->hist, rec->hist_len, sb)) != 0)
        return rc;
    kl = cf_key_history(k, c->id, c->seq);
    if ((rc = cf_txn_put(t, CF_DB_HISTORY, k, kl, sb->data, sb->size)) != 0)
        return rc;

    msgpack_sbuffer pub;
    msgpack_sbuffer_init(&pub);
    msgpack_packer ppk;
    msgpack_packer_init(&ppk, &pub, msgpack_sbuffer_write);
    rc = cf_event_pack_reply(&ppk, c->id, wf->name, sb->data, sb->size);
    if (rc == 0)
        rc = cf_claims_publish(b, wf->name, event, pub.data, pub.size);
    msgpack_sbuffer_destroy(&pub);
    if (rc != 0)
        return rc;
    return cf_claims_save(b, c);
}

int cf_claims_save(cf_batch_t *b, const cf_claim_t *c)
{
    msgpack_sbuffer *sb = &b->scratch;
    int rc = cf_claim_encode(c, sb);
    if (rc != 0)
        return rc;
    return cf_txn_put(b->txn, CF_DB_CLAIMS, c->id, CF_ID_LEN, sb->data, sb->size);
}

int cf_claims_apply(cf_batch_t *b, cf_claim_t *c, const char *event, size_t elen,
                    unsigned role, const msgpack_object *data, const cf_apply_rec_t *rec,
                    cf_error_t *reterr)
{
    cf_sm_ctx_t ctx = {.now = b->now, .claim_data = &c->data};
    int rc;
    if (c->has_member && (rc = cf_claims_consent_ctx(b, c->member, &ctx)) != 0)
        return cf_error_set(reterr, rc, "the member's consent cannot be read");
    cf_sm_claim_t cur = {c->state, c->prev, c->flags};
    cf_sm_result_t r;
    if ((rc = cf_sm_apply(c->wf, &cur, event, elen, role, data, &ctx, &r, reterr)) != 0)
        return rc;
    if (rec->only_changes && !r.state_changed && r.next.flags == c->flags)
        return 1;
    cf_time_t dues[CF_CLAIM_MAX_TIMERS];
    if ((rc = s_dues(b, c, &r, dues)) != 0)
        return cf_error_set(reterr, rc, "a timer's due time is outside the calendar's years");
    char ev[CF_NAME_MAX + 1];
    snprintf(ev, sizeof ev, "%.*s", (int)elen, event);
    return s_write(b, c, &r, ev, rec, dues, false);
}

int cf_claims_create(cf_batch_t *b, cf_claim_t *c, const cf_sm_result_t *r, const char *actor)
{
    cf_time_t dues[CF_CLAIM_MAX_TIMERS];
    int rc = s_dues(b, c, r, dues);
    if (rc != 0)
        return rc;
    cf_claims_new_id(b, c->id);
    c->created = c->updated = b->now;
    c->state = r->next.state; /* s_write moves from here to next */
    if (c->has_member) {
        unsigned char k[CF_KEY_MAX];
        size_t kl = cf_key_member(k, c->member, c->id);
        if ((rc = cf_txn_put(b->txn, CF_DB_IDX_MEMBER, k, kl, "", 0)) != 0)
            return rc;
    }
    cf_apply_rec_t rec = {.actor = actor};
    return s_write(b, c, r, "claim.created", &rec, dues, true);
}

/* ============================================================ fan-out === */

typedef struct {
    const unsigned char *hash;
    char (*ids)[CF_ID_LEN];
    size_t n, cap;
} s_ids_t;

static int s_collect_id(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_ids_t *x = ctx;
    if (k.len != CF_MEMBER_HASH_LEN + CF_ID_LEN)
        return CF_SCAN_NEXT;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 16;
        void *nv = realloc(x->ids, cap * CF_ID_LEN);
        if (!nv)
            return CF_EINTERNAL;
        x->ids = nv;
        x->cap = cap;
    }
    memcpy(x->ids[x->n++], (const char *)k.data + CF_MEMBER_HASH_LEN, CF_ID_LEN);
    return CF_SCAN_NEXT;
}

int cf_claims_of_member(cf_batch_t *b, const unsigned char *hash, char (**ret)[CF_ID_LEN],
                        size_t *n)
{
    s_ids_t x = {hash, NULL, 0, 0};
    int rc = cf_txn_scan(b->txn, CF_DB_IDX_MEMBER, hash, CF_MEMBER_HASH_LEN, CF_MEMBER_HASH_LEN,
                         s_collect_id, &x);
    if (rc != 0) {
        free(x.ids);
        return rc;
    }
    *ret = x.ids;
    *n = x.n;
    return 0;
}

/* The fan-out and the notice: event to every open claim of a member, as
 * rec says. */
static int s_fanout(cf_batch_t *b, const unsigned char *hash, const char *event,
                    const cf_apply_rec_t *rec_in, msgpack_packer *moved, uint32_t *nmoved)
{
    /* The ids first, then the writes: simpler to reason about than writing
     * while a cursor walks the same index. */
    char (*ids)[CF_ID_LEN] = NULL;
    size_t nids = 0;
    int rc = cf_claims_of_member(b, hash, &ids, &nids);
    if (rc != 0)
        return rc;
    cf_apply_rec_t rec = *rec_in;
    for (size_t i = 0; i < nids && rc == 0; i++) {
        cf_claim_t c;
        rc = cf_claims_load(b, ids[i], CF_ID_LEN, &c);
        if (rc == CF_ENOTFOUND) {
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
        if (!c.wf->states[c.state].final) {
            rc = cf_claims_apply(b, &c, event, strlen(event), CF_ROLE_SYSTEM, NULL, &rec, NULL);
            if (rc == 0 && moved)
                cf_pack_strn(moved, c.id, CF_ID_LEN);
            if (rc == 0 && nmoved)
                (*nmoved)++;
            /* Refused by the state (it does not take the event) or no
             * change: the claim stays as it is. */
            if (rc > 0 || (rc < 0 && !cf_batch_failed(b) && rc != CF_EINTERNAL))
                rc = 0;
        }
        cf_claim_fini(&c);
    }
    free(ids);
    return rc;
}

int cf_claims_fanout(cf_batch_t *b, const unsigned char *hash, const char *event,
                     msgpack_packer *moved, uint32_t *nmoved)
{
    cf_apply_rec_t rec = {.actor = "system", .only_changes = true};
    return s_fanout(b, hash, event, &rec, moved, nmoved);
}

int cf_claims_notify(cf_batch_t *b, const unsigned char *hash, const char *event,
                     const char *hist, size_t hlen, uint32_t *notified)
{
    cf_apply_rec_t rec = {.actor = "system", .hist = hist, .hist_len = hlen};
    return s_fanout(b, hash, event, &rec, NULL, notified);
}

/* ========================================================== access log === */

int cf_claims_audit(cf_batch_t *b, const char *actor, const char *opname,
                    const char *const *claims, size_t n)
{
    /* Key: at + sequence, so the log reads in time order; two indexes find
     * the entries of one claim or one actor. */
    unsigned char key[CF_AUDIT_KEY_LEN];
    cf_key_audit(key, b->now, ++*b->audit_seq);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    int rc = cf_audit_encode(b->now, actor, opname, claims, n, b->audit_purpose, b->audit_role,
                             &sb);
    if (rc == 0)
        rc = cf_txn_put(b->txn, CF_DB_AUDIT, key, sizeof key, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    unsigned char k[CF_KEY_MAX];
    for (size_t i = 0; rc == 0 && i < n; i++) {
        size_t kl = cf_key_audit_claim(k, claims[i], key);
        rc = cf_txn_put(b->txn, CF_DB_AUDIT_CLAIM, k, kl, "", 0);
    }
    if (rc == 0 && strlen(actor) <= CF_NAME_MAX) {
        size_t kl = cf_key_audit_actor(k, actor, key);
        rc = cf_txn_put(b->txn, CF_DB_AUDIT_ACTOR, k, kl, "", 0);
    }
    return rc;
}

static int s_max_seq(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    uint64_t *max = ctx;
    if (k.len == CF_AUDIT_KEY_LEN && cf_be64_get((const unsigned char *)k.data + 8) > *max)
        *max = cf_be64_get((const unsigned char *)k.data + 8);
    return CF_SCAN_NEXT;
}

int cf_claims_audit_seq(cf_txn_t *txn, uint64_t *ret)
{
    /* Kept in meta by every batch that writes the log.  Not the last key's:
     * keys sort by time first, and a clock set back at a restart would make
     * the sequence repeat and an entry be overwritten. */
    cf_bytes_t v;
    *ret = 0;
    int rc = cf_txn_get(txn, CF_DB_META, "audit_seq", 9, &v);
    if (rc == 0 && v.len == 8) {
        *ret = cf_be64_get(v.data);
        return 0;
    }
    if (rc != CF_ENOTFOUND && rc != 0)
        return rc;
    /* A store from before: the largest sequence of any entry. */
    return cf_txn_scan(txn, CF_DB_AUDIT, NULL, 0, 0, s_max_seq, ret);
}

int cf_claims_audit_seq_save(cf_batch_t *b)
{
    unsigned char v[8];
    cf_be64_put(v, *b->audit_seq);
    return cf_txn_put(b->txn, CF_DB_META, "audit_seq", 9, v, sizeof v);
}

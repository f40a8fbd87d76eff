/* claims.c: the claims layer (claims.h).
 *
 * Every change to a claim goes through cf_claims_apply or cf_claims_create,
 * which share one write path (s_write): timers of the old state out and of
 * the new one in, the state and flag indexes, the history record, the
 * publication (made from the history record just written, so subscribers
 * see exactly what `history` will show), and the claim record last.  The
 * validation - state machine, guards, due times - happens before the first
 * write, so a refused event leaves no trace in the batch's transaction.
 * (cf_claims_note writes the same way without a transition: an owner's
 * assignment.)
 *
 * Pauses (docs/workflows.md): each move that is not `$previous` pushes a
 * frame - the state left, its previous state, its `on_pause: keep` timers -
 * onto the claim's return stack; `$previous` pops the frame of the state it
 * returns to and restarts those timers at their kept due times (a past one
 * fires at once), so a complaint window survives a consent pause and a
 * reconsideration.  Keeping the stack in the record, not re-deriving it from
 * the history, was chosen because a transition must not read the history;
 * it is bounded (CF_CLAIM_MAX_FRAMES, the oldest dropped) and emptied by a
 * final state.  The state machine stays pure: it only says where `$previous`
 * went (returned_to); this layer owns the stack.
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
    b->cluster = NULL;
    b->nchanges = 0;
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

const cf_wf_entry_t *cf_registry_of(const cf_registry_t *r, const cf_wf_t *wf)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->v[i].wf == wf)
            return &r->v[i];
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
    /* 48 bits of time, 80 of randomness: the ULID's 16 bytes, in text. */
    unsigned char bin[CF_ID_BIN_LEN];
    for (int i = 5; i >= 0; i--, ms >>= 8)
        bin[i] = (unsigned char)ms;
    memcpy(bin + 6, g->last_rand, sizeof g->last_rand);
    cf_id_from_bin(bin, out);
}

void cf_claims_member_hash(const cf_batch_t *b, const char *canon,
                           unsigned char out[CF_MEMBER_HASH_LEN])
{
    crypto_generichash(out, CF_MEMBER_HASH_LEN, (const unsigned char *)canon, strlen(canon),
                       cf_store_hashkey(b->store), 32);
}

static const cf_wf_t *s_resolve(void *ctx, const char *name, size_t len, int64_t version,
                                cf_country_t *ret_country)
{
    const cf_wf_entry_t *w = cf_registry_find(ctx, name, len, version);
    if (!w)
        return NULL;
    *ret_country = w->country;
    return w->wf;
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
    msgpack_sbuffer *sb = &b->scratch;
    int rc = cf_consent_encode(c, sb);
    if (rc != 0)
        return rc;
    return cf_txn_put(b->txn, CF_DB_MEMBERS, hash, CF_MEMBER_HASH_LEN, sb->data, sb->size);
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

/* A timer that does not start: an `at:` timer whose date the claim lacks. */
#define S_NO_DUE INT64_MIN

static const cf_cal_t *s_cal(const cf_batch_t *b, const cf_wf_t *wf, cf_country_t country)
{
    /* By address, not name: this runs for every transition. */
    const cf_wf_entry_t *w = cf_registry_of(b->reg, wf);
    if (!w || (unsigned)country >= CF_COUNTRY_N)
        return NULL;
    return w->cal[country];
}

int64_t cf_claims_today(const cf_batch_t *b, const cf_wf_t *wf, cf_country_t country)
{
    const cf_cal_t *cal = s_cal(b, wf, country);
    return cal ? cf_cal_today(cal, b->now) : b->now / 86400;
}

/* The frame of the state r returns to (`$previous`), newest first, or -1. */
static int s_return_frame(const cf_claim_t *c, const cf_sm_result_t *r)
{
    if (r->returned_to < 0)
        return -1;
    for (size_t i = c->nframes; i-- > 0;)
        if (c->frames[i].state == r->returned_to)
            return (int)i;
    return -1;
}

/* The counts `stats` reports, kept as claims move: walking every index
 * entry for them, inside the batch loop, grew with the store (issue 19). */
int cf_claims_count(cf_txn_t *t, char kind, const unsigned char *group, size_t glen, int delta)
{
    unsigned char k[CF_KEY_MAX];
    if (glen + 1 > sizeof k)
        return CF_EINTERNAL;
    k[0] = (unsigned char)kind;
    memcpy(k + 1, group, glen);
    cf_bytes_t v;
    uint64_t n = 0;
    int rc = cf_txn_get(t, CF_DB_COUNTS, k, glen + 1, &v);
    if (rc == 0 && v.len == 8)
        n = cf_be64_get(v.data);
    else if (rc != 0 && rc != CF_ENOTFOUND)
        return rc;
    n = delta < 0 ? (n ? n - 1 : 0) : n + 1;
    if (n == 0)
        return cf_txn_del(t, CF_DB_COUNTS, k, glen + 1);
    unsigned char b[8];
    cf_be64_put(b, n);
    return cf_txn_put(t, CF_DB_COUNTS, k, glen + 1, b, 8);
}

/* Due times of r's timers to start, computed before any write: a kept due
 * time from the frame returned to (fr, may be NULL), the end of an `at:`
 * date in the claim's data (c->data, with the event's `record:` applied),
 * or now + `after` in the claim's calendar. */
static int s_dues(cf_batch_t *b, const cf_claim_t *c, const cf_sm_result_t *r,
                  const cf_claim_frame_t *fr, cf_time_t *dues)
{
    if (!r->state_changed)
        return 0;
    if (r->nstart > CF_CLAIM_MAX_TIMERS)
        return CF_EINTERNAL;
    const cf_cal_t *cal = s_cal(b, c->wf, c->country);
    if (!cal)
        return CF_EINTERNAL;
    for (size_t i = 0; i < r->nstart; i++) {
        const cf_wf_timer_t *t = &r->start[i];
        bool kept = false;
        for (size_t j = 0; t->keep && fr && j < fr->ntimers && !kept; j++)
            if (strcmp(fr->timers[j].name, t->name) == 0) {
                dues[i] = fr->timers[j].due; /* past: fires at once */
                kept = true;
            }
        if (kept)
            continue;
        if (t->at_field >= 0) {
            const msgpack_object *v = cf_mp_get(&c->data, c->wf->fields[t->at_field].name);
            int y;
            unsigned m, d;
            dues[i] = S_NO_DUE;
            if (v && v->type == MSGPACK_OBJECT_STR &&
                cf_date_parse(v->via.str.ptr, v->via.str.size, &y, &m, &d) == 0)
                dues[i] = cf_cal_end_of_day(cal, cf_days_from_civil(y, m, d));
            continue;
        }
        if (cf_cal_add(cal, b->now, t->after, &dues[i]) != 0)
            return CF_EBADREQ;
    }
    return 0;
}

/* Apply ev's `record:` to c's data: the event's values of recorded fields
 * replace the claim's.  0 or CF_EINTERNAL. */
static int s_record(cf_claim_t *c, const cf_wf_event_t *ev, const msgpack_object *data)
{
    if (!ev || !ev->record || !data || data->type != MSGPACK_OBJECT_MAP)
        return 0;
    const cf_wf_t *wf = c->wf;
    const msgpack_object *vals[CF_WF_MAX_RECORD];
    const char *names[CF_WF_MAX_RECORD];
    size_t n = 0;
    for (size_t i = 0; i < ev->nfields && n < CF_WF_MAX_RECORD; i++) {
        if (ev->record[i] < 0)
            continue;
        const msgpack_object *v = cf_mp_get(data, ev->fields[i].name);
        if (!v || v->type == MSGPACK_OBJECT_NIL)
            continue;
        vals[n] = v;
        names[n++] = wf->fields[ev->record[i]].name;
    }
    if (n == 0)
        return 0;
    const msgpack_object *old = &c->data;
    uint32_t keep = 0;
    bool *drop = calloc(old->via.map.size + 1, sizeof *drop);
    if (!drop)
        return CF_EINTERNAL;
    for (uint32_t i = 0; i < old->via.map.size; i++) {
        const msgpack_object *k = &old->via.map.ptr[i].key;
        for (size_t j = 0; j < n && !drop[i]; j++)
            drop[i] = k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(names[j]) &&
                      memcmp(k->via.str.ptr, names[j], k->via.str.size) == 0;
        keep += !drop[i];
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, keep + (uint32_t)n);
    for (uint32_t i = 0; i < old->via.map.size; i++) {
        if (drop[i])
            continue;
        msgpack_pack_object(&pk, old->via.map.ptr[i].key);
        msgpack_pack_object(&pk, old->via.map.ptr[i].val);
    }
    for (size_t j = 0; j < n; j++) {
        cf_pack_str(&pk, names[j]);
        msgpack_pack_object(&pk, *vals[j]);
    }
    free(drop);
    int rc = sb.data ? cf_claim_set_data(c, sb.data, sb.size) : CF_EINTERNAL;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* The return stack on a state change (c still in the state left): entering
 * a final state empties it; returning (`$previous`) to a state pops its
 * frame and what was pushed after it; any other move pushes the state left
 * with its previous state and its running `on_pause: keep` timers (the
 * oldest frame goes when the stack is full).  *prev: the claim's previous
 * state after the move. */
static void s_frames(cf_claim_t *c, const cf_sm_result_t *r, int fr, int *prev)
{
    const cf_wf_t *wf = c->wf;
    *prev = r->next.prev;
    if (wf->states[r->next.state].final) {
        c->nframes = 0;
        return;
    }
    if (fr >= 0) {
        if (r->next.state == c->frames[fr].state)
            *prev = c->frames[fr].prev;
        c->nframes = (size_t)fr;
        return;
    }
    if (r->returned_to >= 0 || r->from < 0)
        return;
    if (c->nframes == CF_CLAIM_MAX_FRAMES) {
        memmove(&c->frames[0], &c->frames[1], (CF_CLAIM_MAX_FRAMES - 1) * sizeof c->frames[0]);
        c->nframes--;
    }
    cf_claim_frame_t *f = &c->frames[c->nframes++];
    f->state = c->state;
    f->prev = c->prev;
    f->ntimers = 0;
    const cf_wf_state_t *st = &wf->states[c->state];
    for (size_t i = 0; i < c->ntimers && f->ntimers < CF_FRAME_MAX_TIMERS; i++)
        for (size_t j = 0; j < st->ntimers; j++)
            if (st->timers[j].keep && strcmp(st->timers[j].name, c->timers[i].name) == 0)
                f->timers[f->ntimers++] = c->timers[i];
}

/* =========================================================== the write === */

/* Write one transition of c (loaded, or new when created): timers, indexes,
 * history, publication, record. */
static int s_write(cf_batch_t *b, cf_claim_t *c, const cf_sm_result_t *r, const char *event,
                   const cf_apply_rec_t *rec, const cf_time_t *dues, int fr, bool created)
{
    cf_txn_t *t = b->txn;
    unsigned char k[CF_KEY_MAX];
    size_t kl;
    const cf_wf_t *wf = c->wf;
    int rc = 0;
    int next_prev = r->next.prev;

    if (r->state_changed || created) {
        for (size_t i = 0; i < c->ntimers; i++) {
            kl = cf_key_timer(k, c->timers[i].due, CF_TIMER_CLAIM, c->id, CF_ID_LEN,
                              c->timers[i].name);
            if ((rc = cf_txn_del(t, CF_DB_TIMERS, k, kl)) != 0)
                return rc;
        }
        if (!created)
            s_frames(c, r, fr, &next_prev);
        c->ntimers = 0;
        for (size_t i = 0; i < r->nstart; i++) {
            if (dues[i] == S_NO_DUE)
                continue;
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
            if ((rc = cf_txn_del(t, CF_DB_IDX_STATE, k, kl)) != 0 ||
                (rc = cf_claims_count(t, 's', k, kl - CF_ID_LEN, -1)) != 0)
                return rc;
        }
        kl = cf_key_state(k, wf->name, wf->states[r->next.state].name, c->id);
        if ((rc = cf_txn_put(t, CF_DB_IDX_STATE, k, kl, "", 0)) != 0 ||
            (rc = cf_claims_count(t, 's', k, kl - CF_ID_LEN, +1)) != 0)
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
        bool on = (r->next.flags >> i) & 1;
        rc = on ? cf_txn_put(t, CF_DB_IDX_FLAG, k, kl, "", 0)
                : cf_txn_del(t, CF_DB_IDX_FLAG, k, kl);
        if (rc == 0)
            rc = cf_claims_count(t, 'f', k, kl - CF_ID_LEN, on ? +1 : -1);
        if (rc != 0)
            return rc;
    }
    const char *from = created || r->from < 0 ? NULL : wf->states[c->state].name;
    c->state = r->next.state;
    c->prev = next_prev;
    c->flags = r->next.flags;
    c->updated = b->now;
    c->seq++;

    msgpack_sbuffer *sb = &b->scratch;
    if ((rc = cf_event_encode(c->seq, b->now, event, from, wf->states[c->state].name,
                              rec->actor, rec->hist, rec->hist_len, &rec->who, sb)) != 0)
        return rc;
    kl = cf_key_history(k, c->id, c->seq);
    if ((rc = cf_txn_put(t, CF_DB_HISTORY, k, kl, sb->data, sb->size)) != 0)
        return rc;

    /* The change feed: this batch commits as the store's next sequence
     * (one writer), the n-th event of it. */
    const uint64_t batch = cf_store_seq(b->store) + 1;
    cf_change_t ch = {.at = b->now, .seq = c->seq, .has_member = c->has_member};
    memcpy(ch.claim, c->id, CF_ID_LEN + 1);
    memcpy(ch.member, c->member, CF_MEMBER_HASH_LEN);
    snprintf(ch.workflow, sizeof ch.workflow, "%s", wf->name);
    unsigned char cv[CF_CHANGE_MAX];
    size_t cvl = cf_change_encode(&ch, cv);
    kl = cf_key_change(k, batch, b->nchanges++);
    if ((rc = cf_txn_put(t, CF_DB_CHANGES, k, kl, cv, cvl)) != 0)
        return rc;

    msgpack_sbuffer pub;
    msgpack_sbuffer_init(&pub);
    msgpack_packer ppk;
    msgpack_packer_init(&ppk, &pub, msgpack_sbuffer_write);
    rc = cf_event_pack_reply(&ppk, c->id, wf->name, batch, sb->data, sb->size);
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
    cf_sm_ctx_t ctx = {.now = b->now, .claim_data = &c->data,
                       .today = cf_claims_today(b, c->wf, c->country),
                       .has_owner = c->owner[0] != '\0'};
    int rc;
    if (c->has_member && (rc = cf_claims_consent_ctx(b, c->member, &ctx)) != 0)
        return cf_error_set(reterr, rc, "the member's consent cannot be read");
    cf_sm_claim_t cur = {c->state, c->prev, c->flags};
    cf_sm_result_t r;
    if ((rc = cf_sm_apply(c->wf, &cur, event, elen, role, data, &ctx, &r, reterr)) != 0)
        return rc;
    if (rec->only_changes && !r.state_changed && r.next.flags == c->flags)
        return 1;
    if ((rc = s_record(c, r.event, data)) != 0)
        return cf_error_set(reterr, rc, "the event's data cannot be recorded");
    int fr = s_return_frame(c, &r);
    /* kept due times only for the state returned to itself (not one its
     * autos went on to) */
    const cf_claim_frame_t *kept =
        fr >= 0 && c->frames[fr].state == r.next.state ? &c->frames[fr] : NULL;
    cf_time_t dues[CF_CLAIM_MAX_TIMERS];
    if ((rc = s_dues(b, c, &r, kept, dues)) != 0)
        return cf_error_set(reterr, rc, "a timer's due time is outside the calendar's years");
    char ev[CF_NAME_MAX + 1];
    snprintf(ev, sizeof ev, "%.*s", (int)elen, event);
    return s_write(b, c, &r, ev, rec, dues, fr, false);
}

int cf_claims_note(cf_batch_t *b, cf_claim_t *c, const char *event, const cf_apply_rec_t *rec)
{
    cf_sm_result_t r = {0};
    r.next = (cf_sm_claim_t){c->state, c->prev, c->flags};
    r.from = c->state;
    r.returned_to = -1;
    return s_write(b, c, &r, event, rec, NULL, -1, false);
}

int cf_claims_create(cf_batch_t *b, cf_claim_t *c, const cf_sm_result_t *r, const char *actor,
                     const cf_event_who_t *who)
{
    cf_time_t dues[CF_CLAIM_MAX_TIMERS];
    int rc = s_dues(b, c, r, NULL, dues);
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
    if (who)
        rec.who = *who;
    return s_write(b, c, r, "claim.created", &rec, dues, -1, true);
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
                     const cf_event_who_t *who, const char *hist, size_t hlen,
                     msgpack_packer *moved, uint32_t *nmoved)
{
    cf_apply_rec_t rec = {.actor = "system", .only_changes = true, .hist = hist,
                          .hist_len = hlen};
    if (who)
        rec.who = *who;
    return s_fanout(b, hash, event, &rec, moved, nmoved);
}

int cf_claims_notify(cf_batch_t *b, const unsigned char *hash, const char *event,
                     const char *hist, size_t hlen, uint32_t *notified)
{
    cf_apply_rec_t rec = {.actor = "system", .hist = hist, .hist_len = hlen};
    return s_fanout(b, hash, event, &rec, NULL, notified);
}

/* ========================================================== documents === */

/* *refs: the references to document sha (0: none).  0 or an error. */
static int s_doc_refs(cf_batch_t *b, const unsigned char sha[32], uint32_t *refs)
{
    cf_bytes_t v;
    *refs = 0;
    int rc = cf_txn_get(b->txn, CF_DB_DOC_REFS, sha, 32, &v);
    if (rc == 0 && v.len == CF_DOCREFS_LEN)
        *refs = cf_be32_get(v.data);
    else if (rc != CF_ENOTFOUND)
        return rc ? rc : CF_EINTERNAL;
    return 0;
}

int cf_claims_doc_ref(cf_batch_t *b, const unsigned char sha[32], const char *ctype,
                      size_t clen, const void *body, size_t blen)
{
    uint32_t refs;
    int rc = s_doc_refs(b, sha, &refs);
    if (rc != 0)
        return rc;
    cf_bytes_t v;
    unsigned char rb[CF_DOCREFS_LEN];
    cf_be32_put(rb, refs + 1);
    if ((rc = cf_txn_put(b->txn, CF_DB_DOC_REFS, sha, 32, rb, sizeof rb)) != 0)
        return rc;
    rc = cf_txn_get(b->txn, CF_DB_DOCS, sha, 32, &v);
    if (rc != CF_ENOTFOUND)
        return rc;      /* 0: the bytes are there already */
    msgpack_sbuffer db;
    msgpack_sbuffer_init(&db);
    rc = cf_doc_encode(ctype, clen, body, blen, &db);
    if (rc == 0)
        rc = cf_txn_put(b->txn, CF_DB_DOCS, sha, 32, db.data, db.size);
    msgpack_sbuffer_destroy(&db);
    return rc;
}

int cf_claims_doc_unref(cf_batch_t *b, const unsigned char sha[32])
{
    uint32_t refs;
    int rc = s_doc_refs(b, sha, &refs);
    if (rc != 0)
        return rc;
    if (refs > 1) {
        unsigned char rb[CF_DOCREFS_LEN];
        cf_be32_put(rb, refs - 1);
        return cf_txn_put(b->txn, CF_DB_DOC_REFS, sha, 32, rb, sizeof rb);
    }
    if ((rc = cf_txn_del(b->txn, CF_DB_DOC_REFS, sha, 32)) != 0)
        return rc;
    return cf_txn_del(b->txn, CF_DB_DOCS, sha, 32);
}

/* ========================================================== access log === */

int cf_claims_audit(cf_batch_t *b, const char *actor, const char *opname,
                    const char *const *claims, size_t n)
{
    /* Key: at + sequence, so the log reads in time order; two indexes find
     * the entries of one claim or one actor.  Claim ids are stored as their
     * 16 bytes (schema.h): a listing of 1,000 claims costs ~100 bytes a
     * claim instead of ~125 (docs/SECURITY.md). */
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
        size_t kl = cf_key_audit_claim(k, claims[i], key, NULL);
        rc = cf_txn_put(b->txn, CF_DB_AUDIT_CLAIM, k, kl, "", 0);
    }
    if (rc == 0 && strlen(actor) <= CF_NAME_MAX) {
        size_t kl = cf_key_audit_actor(k, actor, key);
        rc = cf_txn_put(b->txn, CF_DB_AUDIT_ACTOR, k, kl, "", 0);
    }
    return rc;
}

/* One claim's entries: its audit_claim keys in both forms (schema.h),
 * merged in audit-key order. */
typedef struct {
    size_t plen, klen, cap, n;
    const unsigned char *after;
    unsigned char (*keys)[CF_AUDIT_KEY_LEN];
} s_of_claim_t;

static int s_of_claim_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_of_claim_t *x = ctx;
    const unsigned char *akey = (const unsigned char *)k.data + x->plen;
    if (k.len != x->klen)
        return CF_SCAN_NEXT;      /* the other form, sharing the prefix */
    if (x->after && memcmp(akey, x->after, CF_AUDIT_KEY_LEN) <= 0)
        return CF_SCAN_NEXT;
    if (x->n == x->cap)
        return CF_SCAN_STOP;
    memcpy(x->keys[x->n++], akey, CF_AUDIT_KEY_LEN);
    return CF_SCAN_NEXT;
}

static int s_akey_cmp(const void *a, const void *b)
{
    return memcmp(a, b, CF_AUDIT_KEY_LEN);
}

int cf_claims_audit_of_claim(cf_txn_t *txn, const char *id, const unsigned char *after,
                             size_t max, unsigned char (*ret)[CF_AUDIT_KEY_LEN],
                             size_t *ret_n)
{
    /* Up to max of each form, merged: the first max of the union are
     * among them. */
    unsigned char (*keys)[CF_AUDIT_KEY_LEN] = malloc(2 * (max ? max : 1) * CF_AUDIT_KEY_LEN);
    if (!keys)
        return CF_EINTERNAL;
    unsigned char from[CF_KEY_MAX];
    bool text;
    size_t plen = cf_key_audit_claim(from, id, NULL, &text);
    s_of_claim_t x = {.plen = plen, .klen = plen + CF_AUDIT_KEY_LEN, .cap = max,
                      .after = after, .keys = keys};
    if (after)
        memcpy(from + plen, after, CF_AUDIT_KEY_LEN);
    int rc = cf_txn_scan(txn, CF_DB_AUDIT_CLAIM, from, plen + (after ? CF_AUDIT_KEY_LEN : 0),
                         plen, s_of_claim_one, &x);
    if (rc == 0 && !text) {
        /* A ULID: its entries from before the binary form are under its text. */
        plen = cf_key_audit_claim_text(from, id, NULL);
        if (after)
            memcpy(from + plen, after, CF_AUDIT_KEY_LEN);
        x.plen = plen;
        x.klen = plen + CF_AUDIT_KEY_LEN;
        x.cap = x.n + max;
        rc = cf_txn_scan(txn, CF_DB_AUDIT_CLAIM, from, plen + (after ? CF_AUDIT_KEY_LEN : 0),
                         plen, s_of_claim_one, &x);
    }
    if (rc == 0) {
        qsort(keys, x.n, CF_AUDIT_KEY_LEN, s_akey_cmp);
        *ret_n = x.n < max ? x.n : max;
        memcpy(ret, keys, *ret_n * CF_AUDIT_KEY_LEN);
    }
    free(keys);
    return rc;
}

/* Delete one entry and its index keys; rec is a copy (deletes move the
 * store's pages).  *nkeys counts the index keys deleted. */
static int s_audit_drop(cf_txn_t *txn, const unsigned char *akey, const void *rec, size_t len,
                        size_t *nkeys)
{
    cf_audit_rec_t r;
    unsigned char k[CF_KEY_MAX];
    int rc = 0;
    /* A record that does not decode goes alone: its index keys, if it had
     * any, cannot be named, and a reader skips keys whose entry is gone. */
    if (cf_audit_decode(rec, len, &r) == 0) {
        for (uint32_t i = 0; rc == 0 && i < r.nclaims; i++) {
            /* The key has the form of the record's element: bin or text. */
            char id[CF_ID_LEN + 1];
            if (cf_audit_claim(&r, i, id) != 0)
                continue;
            size_t kl = r.claims[i].type == MSGPACK_OBJECT_BIN
                            ? cf_key_audit_claim(k, id, akey, NULL)
                            : cf_key_audit_claim_text(k, id, akey);
            rc = cf_txn_del(txn, CF_DB_AUDIT_CLAIM, k, kl);
            (*nkeys)++;
        }
        if (rc == 0 && r.actor.via.str.size <= CF_NAME_MAX) {
            char actor[CF_NAME_MAX + 1];
            memcpy(actor, r.actor.via.str.ptr, r.actor.via.str.size);
            actor[r.actor.via.str.size] = '\0';
            size_t kl = cf_key_audit_actor(k, actor, akey);
            rc = cf_txn_del(txn, CF_DB_AUDIT_ACTOR, k, kl);
        }
    }
    cf_audit_fini(&r);
    /* (A key already gone - a claim named twice in one entry - is no
     * failure: cf_txn_del returns 0.) */
    return rc == 0 ? cf_txn_del(txn, CF_DB_AUDIT, akey, CF_AUDIT_KEY_LEN) : rc;
}

typedef struct {
    cf_txn_t *txn;
    cf_time_t before;
    size_t max_entries, max_keys, entries, keys;
    unsigned char akey[CF_AUDIT_KEY_LEN];
    void *rec;
    size_t len;
    bool found;
} s_prune_t;

static int s_prune_first(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    s_prune_t *x = ctx;
    if (k.len != CF_AUDIT_KEY_LEN || (cf_time_t)cf_be64_get(k.data) >= x->before)
        return CF_SCAN_STOP;
    x->rec = malloc(v.len ? v.len : 1);
    if (!x->rec)
        return CF_EINTERNAL;
    memcpy(x->akey, k.data, CF_AUDIT_KEY_LEN);
    memcpy(x->rec, v.data, v.len);
    x->len = v.len;
    x->found = true;
    return CF_SCAN_STOP;
}

int cf_claims_audit_prune(cf_batch_t *b, cf_time_t before, size_t max_entries,
                          size_t max_keys, size_t *ret_n)
{
    s_prune_t x = {.txn = b->txn, .before = before};
    int rc = 0;
    /* Oldest first, one entry at a time: deleting under a scan's cursor in
     * other databases is fine, but each entry's record must be copied
     * before its index keys go. */
    while (rc == 0 && x.entries < max_entries && x.keys < max_keys) {
        x.found = false;
        if ((rc = cf_txn_scan(b->txn, CF_DB_AUDIT, NULL, 0, 0, s_prune_first, &x)) != 0 ||
            !x.found)
            break;
        rc = s_audit_drop(b->txn, x.akey, x.rec, x.len, &x.keys);
        free(x.rec);
        x.rec = NULL;
        x.entries++;
    }
    if (ret_n)
        *ret_n = x.entries;
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

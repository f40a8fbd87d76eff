/* timers.c: durable timers.
 *
 * A timer is one key in the `timers` database: due time (big-endian, so the
 * next due timer is the first key), the target (a claim, or a member for the
 * consent expiry) and the timer's name; the value is the event it sends.  It
 * is written in the transaction that starts it and deleted in the one that
 * fires or cancels it, so it fires exactly once, also across a crash: a
 * transaction that fired it either committed (timer gone, event recorded) or
 * did not (timer still there, fires at the next start).  Finding the due
 * ones looks at the first key only, again and again: cost proportional to
 * the number due, not to the number pending.
 */
#include "timers.h"

#include <stdio.h>
#include <string.h>

#include "cf_be.h"
#include "reps.h"

/* A claim's timer: send its event as `system`, lateness in the data. */
static int s_fire_claim(cf_batch_t *b, const cf_timer_key_t *tk, const char *event, size_t elen)
{
    cf_claim_t c;
    int rc = cf_claims_load(b, tk->id, CF_ID_LEN, &c);
    if (rc == CF_ENOTFOUND)
        return 0; /* claim gone: nothing to do */
    if (rc != 0)
        return rc;
    /* The timer leaves the claim's list whatever the event does. */
    for (size_t i = 0; i < c.ntimers; i++) {
        if (strcmp(c.timers[i].name, tk->name) == 0 && c.timers[i].due == tk->due) {
            memmove(&c.timers[i], &c.timers[i + 1], (c.ntimers - i - 1) * sizeof c.timers[0]);
            c.ntimers--;
            break;
        }
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    cf_pack_str(&pk, "timer");
    cf_pack_str(&pk, tk->name);
    cf_pack_str(&pk, "due_at");
    cf_pack_time(&pk, tk->due);
    cf_pack_str(&pk, "late_seconds");
    msgpack_pack_int64(&pk, b->now > tk->due ? b->now - tk->due : 0);
    cf_apply_rec_t rec = {.actor = "system", .hist = sb.data, .hist_len = sb.size};
    rc = sb.data ? cf_claims_apply(b, &c, event, elen, CF_ROLE_SYSTEM, NULL, &rec, NULL)
                 : CF_EINTERNAL;
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0 && !cf_batch_failed(b) && rc != CF_EINTERNAL)
        rc = cf_claims_save(b, &c); /* not accepted any more: just forget the timer */
    cf_claim_fini(&c);
    return rc;
}

/* A consent's end: its claims pause (consent.expired).  A parent's consent
 * for a child that ends on the child's 15th birthday says so in the
 * events' data: from then on only the young person can consent. */
static int s_expire(cf_batch_t *b, const unsigned char *member, const cf_consent_t *c)
{
    if (!c->lapses_at || c->lapses_at != c->valid_until)
        return cf_claims_fanout(b, member, "consent.expired", NULL, NULL, 0, NULL, NULL);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 2);
    cf_pack_str(&pk, "reason");
    cf_pack_str(&pk, "age_15");
    cf_pack_str(&pk, "lapses_at");
    cf_pack_time(&pk, c->lapses_at);
    int rc = sb.data ? cf_claims_fanout(b, member, "consent.expired", NULL, sb.data, sb.size,
                                        NULL, NULL)
                     : CF_EINTERNAL;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

/* A member's consent timers: the expiry moves the member's claims as a
 * withdrawal does; the reminder before it is recorded in every open claim
 * that takes it (consent.expiring, with the consent's valid_until). */
static int s_fire_member(cf_batch_t *b, const cf_timer_key_t *tk)
{
    cf_consent_t c;
    int rc = cf_claims_consent_get(b, tk->member, &c);
    if (rc != 0)
        return rc;
    bool notice = strcmp(tk->name, CF_CONSENT_EXPIRING_TIMER) == 0;
    if (c.given_at == 0 || c.withdrawn_at != 0 ||
        c.valid_until != tk->due + (notice ? CF_CONSENT_NOTICE : 0))
        return 0; /* renewed or withdrawn since: stale timer */
    if (!notice)
        return s_expire(b, tk->member, &c);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cf_pack_str(&pk, "valid_until");
    cf_pack_time(&pk, c.valid_until);
    rc = sb.data ? cf_claims_notify(b, tk->member, "consent.expiring", sb.data, sb.size, NULL)
                 : CF_EINTERNAL;
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

int cf_timers_next_due(cf_txn_t *txn, cf_time_t *due)
{
    cf_bytes_t k, v;
    int rc = cf_txn_first(txn, CF_DB_TIMERS, &k, &v);
    if (rc != 0)
        return rc;
    if (k.len < 8)
        return CF_EINTERNAL;
    *due = (cf_time_t)cf_be64_get(k.data);
    return 0;
}

int cf_timers_fire(cf_batch_t *b, size_t max, size_t *fired)
{
    size_t n = 0;
    int rc = 0;
    while (n < max) {
        cf_bytes_t k, v;
        rc = cf_txn_first(b->txn, CF_DB_TIMERS, &k, &v);
        if (rc == CF_ENOTFOUND) {
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        cf_timer_key_t tk;
        if (k.len >= 8 && (cf_time_t)cf_be64_get(k.data) > b->now)
            break;
        /* Copy out what the delete below invalidates. */
        unsigned char key[CF_TIMER_KEY_MAX + 1];
        char event[CF_NAME_MAX + 1];
        size_t kl = k.len < sizeof key ? k.len : sizeof key - 1;
        size_t el = v.len < sizeof event ? v.len : sizeof event - 1;
        memcpy(key, k.data, kl);
        memcpy(event, v.data, el);
        event[el] = '\0';
        if ((rc = cf_txn_del(b->txn, CF_DB_TIMERS, key, kl)) != 0)
            break;
        /* A key that is not a timer's is dropped (deleted above). */
        if (cf_key_timer_parse(key, kl, &tk) == 0) {
            if (tk.kind == CF_TIMER_CLAIM)
                rc = s_fire_claim(b, &tk, event, el);
            else if (strncmp(tk.name, CF_REP_END_TIMER, strlen(CF_REP_END_TIMER)) == 0)
                rc = cf_reps_fire_end(b, tk.member, tk.name, tk.due);
            else
                rc = s_fire_member(b, &tk);
        }
        if (rc == 0 && cf_batch_failed(b))
            rc = CF_EUNAVAIL;
        if (rc != 0)
            break;
        n++;
    }
    if (fired)
        *fired = n;
    return rc;
}

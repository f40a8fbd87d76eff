/* timers.c: durable timers.
 *
 * A timer is one key in the `timers` database: due time (big-endian, so the
 * next due timer is the first key), the target (a claim, or a member for the
 * consent expiry) and the timer's name; the value is the event it sends.  It
 * is written in the transaction that starts it and deleted in the one that
 * fires or cancels it, so it fires exactly once, also across a crash: a
 * transaction that fired it either committed (timer gone, event recorded) or
 * did not (timer still there, fires at the next start).  Finding the due
 * ones is a cursor walk from the first key that stops at the first key not
 * yet due: cost proportional to the number due, not to the number pending.
 */
#include "engine_int.h"

#include <string.h>

size_t cf_timer_key(unsigned char *k, cf_time_t due, char kind, const void *target,
                    size_t tlen, const char *name)
{
    size_t nl = strlen(name);
    cf_be64_put(k, (uint64_t)due);
    k[8] = (unsigned char)kind;
    memcpy(k + 9, target, tlen);
    memcpy(k + 9 + tlen, name, nl);
    return 9 + tlen + nl;
}

cf_time_t cf_add_year(cf_time_t t)
{
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int y;
    unsigned m, d;
    cf_civil_from_days(days, &y, &m, &d);
    y++;
    if (m == 2 && d == 29 && !cf_is_leap(y))
        d = 28;
    return cf_days_from_civil(y, m, d) * 86400 + secs;
}

/* A claim's timer: send its event as `system`, lateness in the data. */
static int s_fire_claim(cf_engine_t *e, const char *id, const char *name, cf_time_t due,
                        const char *event, size_t elen)
{
    cf_claim_t c;
    int rc = cf_engine_load_claim(e, id, CF_ID_LEN, &c);
    if (rc == CF_ENOTFOUND)
        return 0; /* claim gone (purged): nothing to do */
    if (rc != 0)
        return rc;
    /* The timer leaves the claim's list whatever the event does. */
    for (size_t i = 0; i < c.ntimers; i++) {
        if (strcmp(c.timers[i].name, name) == 0 && c.timers[i].due == due) {
            memmove(&c.timers[i], &c.timers[i + 1], (c.ntimers - i - 1) * sizeof c.timers[0]);
            c.ntimers--;
            break;
        }
    }
    char ev[CF_NAME_MAX + 1];
    snprintf(ev, sizeof ev, "%.*s", (int)elen, event);
    cf_sm_ctx_t ctx = {.now = e->now, .claim_data = &c.data};
    cf_sm_claim_t cur = {c.state, c.prev, c.flags};
    cf_sm_result_t r;
    cf_time_t dues[CF_CLAIM_MAX_TIMERS];
    if (c.has_member)
        cf_engine_consent_ctx(e, c.member, &ctx);
    if (cf_sm_apply(c.wf, &cur, ev, strlen(ev), CF_ROLE_SYSTEM, NULL, &ctx, &r, NULL) == 0 &&
        cf_engine_dues(e, &c, &r, dues) == 0) {
        msgpack_sbuffer sb;
        msgpack_sbuffer_init(&sb);
        msgpack_packer pk;
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 3);
        cf_pack_str(&pk, "timer");
        cf_pack_str(&pk, name);
        cf_pack_str(&pk, "due_at");
        cf_pack_time(&pk, due);
        cf_pack_str(&pk, "late_seconds");
        msgpack_pack_int64(&pk, e->now > due ? e->now - due : 0);
        rc = cf_engine_write_transition(e, &c, &r, ev, "system", sb.data, sb.size, dues, false);
        msgpack_sbuffer_destroy(&sb);
    } else {
        /* Not accepted any more: just forget the timer. */
        msgpack_sbuffer *sb = &e->scratch;
        if ((rc = cf_claim_encode(&c, sb)) == 0)
            rc = cf_engine_put(e, CF_DB_CLAIMS, c.id, CF_ID_LEN, sb->data, sb->size);
    }
    cf_claim_fini(&c);
    return rc;
}

/* The consent expiry: the member's claims move as on withdrawal. */
static int s_fire_member(cf_engine_t *e, const unsigned char *hash, cf_time_t due)
{
    cf_sm_ctx_t ctx;
    int rc = cf_engine_consent_ctx(e, hash, &ctx);
    if (rc != 0)
        return rc;
    if (ctx.consent_given_at == 0 || ctx.consent_withdrawn_at != 0 ||
        ctx.consent_valid_until != due)
        return 0; /* renewed or withdrawn since: stale timer */
    return cf_engine_fanout(e, hash, "consent.expired", NULL, NULL);
}

int cf_timers_next_due(cf_engine_t *e, cf_time_t *due)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_TIMERS), &cur);
    if (rc != 0)
        return cf_store_err(rc);
    MDB_val k, v;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return CF_ENOTFOUND;
    if (rc != 0)
        return cf_store_err(rc);
    if (k.mv_size < 9)
        return CF_EINTERNAL;
    *due = (cf_time_t)cf_be64_get(k.mv_data);
    return 0;
}

int cf_timers_fire_txn(cf_engine_t *e, size_t max, size_t *fired)
{
    size_t n = 0;
    int rc = 0;
    while (n < max) {
        MDB_cursor *cur;
        if ((rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_TIMERS), &cur)) != 0) {
            e->broken = true;
            return cf_store_err(rc);
        }
        MDB_val k, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
        if (rc != 0 || k.mv_size < 9 || (cf_time_t)cf_be64_get(k.mv_data) > e->now) {
            mdb_cursor_close(cur);
            rc = rc == MDB_NOTFOUND ? 0 : cf_store_err(rc);
            break;
        }
        /* Copy the key and value out: the delete below invalidates them. */
        unsigned char key[CF_TIMER_KEY_MAX + 1];
        char event[CF_NAME_MAX + 1];
        size_t kl = k.mv_size < sizeof key ? k.mv_size : sizeof key - 1;
        size_t el = v.mv_size < sizeof event ? v.mv_size : sizeof event - 1;
        memcpy(key, k.mv_data, kl);
        memcpy(event, v.mv_data, el);
        rc = mdb_cursor_del(cur, 0);
        mdb_cursor_close(cur);
        if (rc != 0) {
            e->broken = true;
            return cf_store_err(rc);
        }
        cf_time_t due = (cf_time_t)cf_be64_get(key);
        if (key[8] == CF_TIMER_CLAIM && kl > 9 + CF_ID_LEN) {
            char id[CF_ID_LEN + 1], name[CF_NAME_MAX + 1];
            memcpy(id, key + 9, CF_ID_LEN);
            id[CF_ID_LEN] = '\0';
            snprintf(name, sizeof name, "%.*s", (int)(kl - 9 - CF_ID_LEN),
                     (char *)key + 9 + CF_ID_LEN);
            rc = s_fire_claim(e, id, name, due, event, el);
        } else if (key[8] == CF_TIMER_MEMBER && kl >= 9 + CF_MEMBER_HASH_LEN) {
            rc = s_fire_member(e, key + 9, due);
        }
        if (rc != 0 || e->broken)
            return rc ? rc : CF_EUNAVAIL;
        n++;
    }
    if (fired)
        *fired = n;
    return rc;
}

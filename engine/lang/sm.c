/* sm.c: the state machine (see sm.h).
 *
 * A transition is a pure function: it reads the compiled definition, the
 * claim's (state, prev, flags), the event and its data and the context, and
 * writes a result whose pointers go into the definition.  Nothing here
 * allocates, so a result is valid as long as the definition is.
 *
 * Invariants:
 *   - checks run in the order sm.h gives (accepted, role, data, guards), so a
 *     caller sees the error that tells them most;
 *   - `prev` changes only when the state does, so a self-loop (an `any` event
 *     back to the state it is sent in) never makes $previous point at itself;
 *   - automatic moves are followed at most nstates times, so a cycle of autos
 *     in a definition cannot hang the engine;
 *   - error messages name fields, states, roles and guards, never a value the
 *     member sent (a person id or free text).
 */
#include "sm.h"
#include "person.h"

#include <string.h>

/* ---------------------------------------------------------------- guards --- */

typedef bool (*s_guard_fn)(const cf_sm_ctx_t *ctx);

static bool s_consent_valid(const cf_sm_ctx_t *ctx)
{
    return ctx->consent_given_at != 0 && ctx->consent_withdrawn_at == 0 &&
           ctx->now < ctx->consent_valid_until;
}

/* One row per CF_GUARD_MAP entry: the predicate and why it failed. */
static const struct {
    unsigned bit;
    const char *name;
    s_guard_fn holds;
    const char *failure;
} s_guards[] = {
    {CF_GUARD_CONSENT_VALID, "consent_valid", s_consent_valid,
     "the member has no valid consent"},
};
#define S_NGUARDS (sizeof s_guards / sizeof s_guards[0])

bool cf_sm_guard_holds(unsigned guard, const cf_sm_ctx_t *ctx)
{
    for (size_t i = 0; i < S_NGUARDS; i++)
        if (s_guards[i].bit == guard)
            return s_guards[i].holds(ctx);
    return false;
}

/* 0, or CF_EGUARD naming the first guard of guards that fails. */
static int s_guards_hold(unsigned guards, const cf_sm_ctx_t *ctx, cf_error_t *reterr)
{
    for (size_t i = 0; i < S_NGUARDS; i++)
        if ((guards & s_guards[i].bit) && !s_guards[i].holds(ctx))
            return cf_error_set(reterr, CF_EGUARD, "guard '%s' failed: %s",
                                s_guards[i].name, s_guards[i].failure);
    return 0;
}

/* ------------------------------------------------------------------ data --- */

#define S_SHOW 64   /* bytes of a field name the client sent, in a message */

static bool s_str_is(const msgpack_object_str *s, const char *name)
{
    /* an empty msgpack string may carry a NULL ptr */
    return strlen(name) == s->size && (s->size == 0 || memcmp(s->ptr, name, s->size) == 0);
}

static bool s_is_none(const msgpack_object *data)
{
    return !data || data->type == MSGPACK_OBJECT_NIL;
}

static const msgpack_object *s_data_get(const msgpack_object *data, const char *name);

/* The roles of a bound's except_by, for its message. */
static const char *s_except_text(unsigned except, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (unsigned bit = 1; bit <= CF_ROLE_SYSTEM && except; bit <<= 1) {
        if (!(except & bit))
            continue;
        int w = snprintf(buf + used, cap - used, "%s%s", used ? " or " : " (unless sent by a ",
                         cf_role_name(bit));
        if (w > 0 && (size_t)w < cap - used)
            used += (size_t)w;
    }
    if (used && used + 1 < cap)
        snprintf(buf + used, cap - used, ")");
    return buf;
}

/* One integer bound of f: v (huge: beyond int64) against b. */
static int s_check_bound(const cf_wf_field_t *f, const cf_wf_bound_t *b, bool is_max, int64_t v,
                         bool huge, unsigned role, const cf_sm_ctx_t *ctx, cf_error_t *reterr)
{
    if (!b->set)
        return 0;
    int64_t bound = b->value;
    if (b->claim_field >= 0) {
        if (!ctx || (role & b->except))
            return 0;
        const msgpack_object *cv = s_data_get(ctx->claim_data, b->claim_name);
        if (!cv)
            return 0; /* the claim has no such value (yet): no bound */
        if (cv->type == MSGPACK_OBJECT_POSITIVE_INTEGER && cv->via.u64 <= INT64_MAX)
            bound = (int64_t)cv->via.u64;
        else if (cv->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            bound = cv->via.i64;
        else
            return 0;
    }
    bool out = is_max ? (huge || v > bound) : (!huge && v < bound);
    if (!out)
        return 0;
    if (b->claim_field >= 0) {
        char ex[96];
        return cf_error_set(reterr, CF_EBADREQ, "field '%s' must not be %s the claim's '%s'%s",
                            f->name, is_max ? "above" : "below", b->claim_name,
                            s_except_text(b->except, ex, sizeof ex));
    }
    return cf_error_set(reterr, CF_EBADREQ, "field '%s' must be at %s %lld", f->name,
                        is_max ? "most" : "least", (long long)bound);
}

/* today + b, in days since 1970. */
static int64_t s_date_bound_day(const cf_wf_date_bound_t *b, int64_t today)
{
    switch (b->unit) {
    case CF_DUR_WEEKS:
        return today + 7 * b->n;
    case CF_DUR_MONTHS:
        return cf_days_add_months(today, b->n);
    case CF_DUR_YEARS:
        return cf_days_add_months(today, 12 * b->n);
    default:
        return today + b->n;
    }
}

/* not_before: day must be on or after the bound, else on or before it. */
static int s_check_date_bound(const cf_wf_field_t *f, const cf_wf_date_bound_t *b,
                              bool not_before, int64_t day, const cf_sm_ctx_t *ctx,
                              cf_error_t *reterr)
{
    if (!b->set || !ctx)
        return 0;
    int64_t bound = s_date_bound_day(b, ctx->today);
    if (not_before ? day >= bound : day <= bound)
        return 0;
    int y;
    unsigned m, d;
    cf_civil_from_days(bound, &y, &m, &d);
    char rel[48] = "";
    if (b->n) {
        static const char *const unit[] = {[CF_DUR_DAYS] = "d", [CF_DUR_WEEKS] = "w",
                                           [CF_DUR_MONTHS] = "mo", [CF_DUR_YEARS] = "y"};
        snprintf(rel, sizeof rel, " %c %lld%s", b->n < 0 ? '-' : '+',
                 (long long)(b->n < 0 ? -b->n : b->n),
                 (size_t)b->unit < sizeof unit / sizeof unit[0] && unit[b->unit] ? unit[b->unit]
                                                                                  : "d");
    }
    return cf_error_set(reterr, CF_EBADREQ, "field '%s' must not be %s today%s (%04d-%02u-%02u)",
                        f->name, not_before ? "before" : "after", rel, y, m, d);
}

/* Check one value against its field. */
static int s_check_value(const cf_wf_field_t *f, const msgpack_object *v, unsigned role,
                         const cf_sm_ctx_t *ctx, cf_error_t *reterr)
{
    const char *name = f->name;
    bool is_str = v->type == MSGPACK_OBJECT_STR;
    const char *s = is_str && v->via.str.ptr ? v->via.str.ptr : "";
    size_t len = is_str ? v->via.str.size : 0;

    switch (f->type) {
    case CF_FT_STRING:
        if (!is_str)
            return cf_error_set(reterr, CF_EBADREQ, "field '%s' must be a string", name);
        if (len > f->max_len)
            return cf_error_set(reterr, CF_EBADREQ, "field '%s' is longer than %u bytes",
                                name, (unsigned)f->max_len);
        return 0;
    case CF_FT_INTEGER:
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER ||
            v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            bool huge = v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 > INT64_MAX;
            int64_t x = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? v->via.i64
                        : huge ? INT64_MAX : (int64_t)v->via.u64;
            int rc = s_check_bound(f, &f->min, false, x, huge, role, ctx, reterr);
            return rc ? rc : s_check_bound(f, &f->max, true, x, huge, role, ctx, reterr);
        }
        if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            return cf_error_set(reterr, CF_EBADREQ,
                                "field '%s' must be an integer, not a float", name);
        return cf_error_set(reterr, CF_EBADREQ, "field '%s' must be an integer", name);
    case CF_FT_MONEY:
        /* minor units of the claim's currency: a whole number, never below 0 */
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
            int64_t x = (int64_t)v->via.u64;
            int rc = s_check_bound(f, &f->min, false, x, false, role, ctx, reterr);
            return rc ? rc : s_check_bound(f, &f->max, true, x, false, role, ctx, reterr);
        }
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
            /* a plain lower bound says more than "negative" */
            if (f->min.set && f->min.claim_field < 0 && f->min.value >= 0)
                return s_check_bound(f, &f->min, false, v->via.i64, false, role, ctx, reterr);
            return cf_error_set(reterr, CF_EBADREQ, "field '%s' must not be negative", name);
        }
        return cf_error_set(reterr, CF_EBADREQ, "field '%s' must be an integer amount in "
                            "minor units (øre)%s", name,
                            v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64
                                ? ", not a float" : "");
    case CF_FT_BOOLEAN:
        if (v->type == MSGPACK_OBJECT_BOOLEAN)
            return 0;
        return cf_error_set(reterr, CF_EBADREQ, "field '%s' must be a boolean", name);
    case CF_FT_DATE: {
        int y;
        unsigned m, d;
        if (is_str && cf_date_parse(s, len, &y, &m, &d) == 0) {
            int64_t day = cf_days_from_civil(y, m, d);
            int rc = s_check_date_bound(f, &f->not_before, true, day, ctx, reterr);
            return rc ? rc : s_check_date_bound(f, &f->not_after, false, day, ctx, reterr);
        }
        return cf_error_set(reterr, CF_EBADREQ,
                            "field '%s' must be a real date written YYYY-MM-DD", name);
    }
    case CF_FT_PERSON_ID:
        if (is_str && cf_pid_check(s, len) != CF_PID_INVALID)
            return 0;
        return cf_error_set(reterr, CF_EBADREQ, "field '%s' is not a valid person id "
                            "(a Danish CPR number or a Norwegian national identity "
                            "number)", name);
    case CF_FT_ENUM:
        for (size_t i = 0; is_str && i < f->nvalues; i++)
            if (s_str_is(&v->via.str, f->values[i]))
                return 0;
        return cf_error_set(reterr, CF_EBADREQ, "field '%s' is not one of its allowed "
                            "values", name);
    case CF_FT_CLAIM:
        if (is_str && len >= 1 && len <= 128)
            return 0;
        return cf_error_set(reterr, CF_EBADREQ,
                            "field '%s' must be a claim id (a string of 1 to 128 bytes)",
                            name);
    }
    return cf_error_set(reterr, CF_EINTERNAL, "field '%s' has an unknown type", name);
}

int cf_sm_check_data(const cf_wf_field_t *fields, size_t nfields,
                     const msgpack_object *data, unsigned role, const cf_sm_ctx_t *ctx,
                     cf_error_t *reterr)
{
    static const msgpack_object_kv no_kv;
    const msgpack_object_kv *kv = &no_kv;
    size_t n = 0;
    if (!s_is_none(data)) {
        if (data->type != MSGPACK_OBJECT_MAP)
            return cf_error_set(reterr, CF_EBADREQ, "data must be a map of field names "
                                "to values");
        kv = data->via.map.ptr;
        n = data->via.map.size;
    }
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *k = &kv[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return cf_error_set(reterr, CF_EBADREQ, "data keys must be field names "
                                "(strings)");
        const cf_wf_field_t *f = NULL;
        for (size_t j = 0; j < nfields && !f; j++)
            if (s_str_is(&k->via.str, fields[j].name))
                f = &fields[j];
        if (!f) {
            int show = k->via.str.size < S_SHOW ? (int)k->via.str.size : S_SHOW;
            for (int j = 0; j < show; j++)
                if ((unsigned char)k->via.str.ptr[j] < 0x20 || k->via.str.ptr[j] == '\0')
                    show = j;
            return cf_error_set(reterr, CF_EBADREQ, "unknown field '%.*s'%s", show,
                                show ? k->via.str.ptr : "", nfields ? "" : " (this takes no data)");
        }
        for (size_t j = 0; j < i; j++)
            if (kv[j].key.type == MSGPACK_OBJECT_STR && s_str_is(&kv[j].key.via.str, f->name))
                return cf_error_set(reterr, CF_EBADREQ, "field '%s' is given twice",
                                    f->name);
        if (kv[i].val.type == MSGPACK_OBJECT_NIL)
            continue; /* nil is absent */
        int rc = s_check_value(f, &kv[i].val, role, ctx, reterr);
        if (rc)
            return rc;
    }
    for (size_t j = 0; j < nfields; j++) {
        if (!fields[j].required)
            continue;
        bool present = false;
        for (size_t i = 0; i < n && !present; i++)
            present = kv[i].key.type == MSGPACK_OBJECT_STR &&
                      s_str_is(&kv[i].key.via.str, fields[j].name) &&
                      kv[i].val.type != MSGPACK_OBJECT_NIL;
        if (!present)
            return cf_error_set(reterr, CF_EBADREQ, "missing required field '%s'",
                                fields[j].name);
    }
    return 0;
}

/* ---------------------------------------------------------------- autos --- */

/* The claim data's value for field name, or NULL. */
static const msgpack_object *s_data_get(const msgpack_object *data, const char *name)
{
    if (s_is_none(data) || data->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (size_t i = 0; i < data->via.map.size; i++) {
        const msgpack_object_kv *kv = &data->via.map.ptr[i];
        if (kv->key.type == MSGPACK_OBJECT_STR && s_str_is(&kv->key.via.str, name))
            return &kv->val;
    }
    return NULL;
}

/* The claim's value of field fi as it is after ev (which may `record:` into
 * it from its data), or NULL. */
static const msgpack_object *s_field_value(const cf_wf_t *wf, int fi, const cf_sm_ctx_t *ctx,
                                           const cf_wf_event_t *ev, const msgpack_object *evdata)
{
    for (size_t i = 0; ev && ev->record && i < ev->nfields; i++) {
        if (ev->record[i] != fi)
            continue;
        const msgpack_object *v = s_data_get(evdata, ev->fields[i].name);
        if (v && v->type != MSGPACK_OBJECT_NIL)
            return v;
    }
    return s_data_get(ctx->claim_data, wf->fields[fi].name);
}

static bool s_auto_holds(const cf_wf_t *wf, const cf_wf_auto_t *a, const cf_sm_ctx_t *ctx,
                         const cf_wf_event_t *ev, const msgpack_object *evdata)
{
    if (a->when_field >= 0) {
        if ((size_t)a->when_field >= wf->nfields)
            return false;
        const msgpack_object *v = s_field_value(wf, a->when_field, ctx, ev, evdata);
        bool in = false;
        for (size_t i = 0; v && v->type == MSGPACK_OBJECT_STR && i < a->nwhen_in && !in; i++)
            in = s_str_is(&v->via.str, a->when_in[i]);
        if (!in)
            return false;
    }
    return s_guards_hold(a->guards, ctx, NULL) == 0;
}

/* Follow automatic moves from state; the state they end in. */
static int s_follow_autos(const cf_wf_t *wf, int state, const cf_sm_ctx_t *ctx,
                          const cf_wf_event_t *ev, const msgpack_object *evdata)
{
    for (size_t step = 0; step < wf->nstates; step++) {
        const cf_wf_state_t *st = &wf->states[state];
        int next = -1;
        for (size_t i = 0; i < st->nautos && next < 0; i++)
            if (s_auto_holds(wf, &st->autos[i], ctx, ev, evdata))
                next = st->autos[i].to;
        if (next < 0 || (size_t)next >= wf->nstates)
            break;
        state = next;
    }
    return state;
}

/* ---------------------------------------------------------- transitions --- */

static void s_set_timers(const cf_wf_t *wf, cf_sm_result_t *r)
{
    r->cancel = NULL;
    r->ncancel = 0;
    r->start = NULL;
    r->nstart = 0;
    if (!r->state_changed)
        return;
    if (r->from >= 0) {
        r->cancel = wf->states[r->from].timers;
        r->ncancel = wf->states[r->from].ntimers;
    }
    r->start = wf->states[r->next.state].timers;
    r->nstart = wf->states[r->next.state].ntimers;
}

/* CF_EFORBIDDEN for role, listing the allowed roles. */
static int s_forbidden(unsigned role, unsigned allowed, const char *what, cf_error_t *reterr)
{
    char list[128] = "";
    size_t used = 0;
    for (unsigned bit = 1; bit <= CF_ROLE_SYSTEM; bit <<= 1) {
        if (!(allowed & bit))
            continue;
        int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "",
                         cf_role_name(bit));
        if (w > 0 && (size_t)w < sizeof list - used)
            used += (size_t)w;
    }
    return cf_error_set(reterr, CF_EFORBIDDEN, "role '%s' may not %s (allowed: %s)",
                        cf_role_name(role), what, used ? list : "none");
}

static bool s_role_ok(unsigned role, unsigned allowed)
{
    return role != 0 && (role & (role - 1)) == 0 && (role & allowed) != 0;
}

int cf_sm_create(const cf_wf_t *wf, unsigned role, const msgpack_object *data,
                 const cf_sm_ctx_t *ctx, cf_sm_result_t *ret, cf_error_t *reterr)
{
    char what[160];
    if (!s_role_ok(role, wf->created_by)) {
        snprintf(what, sizeof what, "create a '%s' claim", wf->name);
        return s_forbidden(role, wf->created_by, what, reterr);
    }
    int rc = cf_sm_check_data(wf->fields, wf->nfields, data, role, ctx, reterr);
    if (rc)
        return rc;
    for (size_t i = 0; i < wf->nfields; i++) {
        const msgpack_object *v = wf->fields[i].internal ? s_data_get(data, wf->fields[i].name)
                                                         : NULL;
        if (v && v->type != MSGPACK_OBJECT_NIL)
            return cf_error_set(reterr, CF_EBADREQ, "field '%s' is recorded by the claim's "
                                "events; it cannot be given when the claim is created",
                                wf->fields[i].name);
    }
    if (wf->initial < 0 || (size_t)wf->initial >= wf->nstates)
        return cf_error_set(reterr, CF_EINTERNAL, "workflow '%s' has no initial state",
                            wf->name);
    cf_sm_result_t r = {0};
    r.from = -1;
    r.next.prev = -1;
    r.next.flags = 0;
    r.next.state = s_follow_autos(wf, wf->initial, ctx, NULL, NULL);
    r.returned_to = -1;
    r.state_changed = true;
    s_set_timers(wf, &r);
    *ret = r;
    return 0;
}

/* CF_EGUARD when cur's flags do not meet ev's `if_set`/`if_clear`: names
 * the flag, and adds the refusal text for the event. */
static int s_flags_hold(const cf_wf_t *wf, const cf_sm_claim_t *cur, const cf_wf_event_t *ev,
                        cf_error_t *reterr)
{
    for (size_t i = 0; i < wf->nflags; i++) {
        uint64_t bit = UINT64_C(1) << i;
        bool want_set = (ev->if_set & bit) && !(cur->flags & bit);
        bool want_clear = (ev->if_clear & bit) && (cur->flags & bit);
        if (!want_set && !want_clear)
            continue;
        const char *why = cf_wf_refusal_in(wf, cur->state, ev->name, strlen(ev->name));
        return cf_error_set(reterr, CF_EGUARD, "event '%s' needs flag '%s' %s%s%s", ev->name,
                            wf->flags[i], want_set ? "set" : "clear", why ? ": " : "",
                            why ? why : "");
    }
    return 0;
}

/* CF_EINVTRANS: the state, the events it accepts, the refusal text. */
static int s_not_accepted(const cf_wf_t *wf, int state, const char *event, size_t len,
                          cf_error_t *reterr)
{
    const cf_wf_state_t *st = &wf->states[state];
    char list[400] = "";
    size_t used = 0;
    size_t total = st->nevents + (st->final ? 0 : wf->nany);
    for (size_t i = 0; i < total; i++) {
        const char *name = i < st->nevents ? st->events[i].name : wf->any[i - st->nevents].name;
        /* an `any` event the state overrides is listed once */
        if (i >= st->nevents && cf_wf_event_find(wf, state, name, strlen(name)) !=
                                    &wf->any[i - st->nevents])
            continue;
        int w = snprintf(list + used, sizeof list - used, "%s%s", used ? ", " : "", name);
        if (w < 0 || (size_t)w >= sizeof list - used) {
            snprintf(list + used, sizeof list - used, ", ...");
            break;
        }
        used += (size_t)w;
    }
    int show = len < S_SHOW ? (int)len : S_SHOW;
    for (int j = 0; j < show; j++)
        if ((unsigned char)event[j] < 0x20)
            show = j;
    const char *why = cf_wf_refusal_in(wf, state, event, len);
    return cf_error_set(reterr, CF_EINVTRANS,
                        "event '%.*s' is not accepted in state '%s' (accepts: %s)%s%s", show,
                        event, st->name, used ? list : "none", why ? ": " : "",
                        why ? why : "");
}

int cf_sm_apply(const cf_wf_t *wf, const cf_sm_claim_t *cur, const char *event,
                size_t len, unsigned role, const msgpack_object *data,
                const cf_sm_ctx_t *ctx, cf_sm_result_t *ret, cf_error_t *reterr)
{
    if (cur->state < 0 || (size_t)cur->state >= wf->nstates)
        return cf_error_set(reterr, CF_EINTERNAL, "claim state %d is not a state of "
                            "workflow '%s'", cur->state, wf->name);
    const cf_wf_event_t *ev = cf_wf_event_find(wf, cur->state, event, len);
    if (!ev)
        return s_not_accepted(wf, cur->state, event ? event : "", event ? len : 0, reterr);
    if (!s_role_ok(role, ev->roles)) {
        char what[128];
        snprintf(what, sizeof what, "send '%s'", ev->name);
        return s_forbidden(role, ev->roles, what, reterr);
    }
    int rc = cf_sm_check_data(ev->fields, ev->nfields, data, role, ctx, reterr);
    if (rc)
        return rc;
    if ((rc = s_guards_hold(ev->guards, ctx, reterr)))
        return rc;
    if ((rc = s_flags_hold(wf, cur, ev, reterr)))
        return rc;
    if (wf->states[cur->state].owner_required && !ctx->has_owner &&
        !(role & (CF_ROLE_MEMBER | CF_ROLE_SYSTEM)))
        return cf_error_set(reterr, CF_EGUARD, "state '%s' needs an owner before '%s' is "
                            "accepted (assign the claim first: op assign)",
                            wf->states[cur->state].name, ev->name);

    cf_sm_result_t r = {0};
    r.from = cur->state;
    r.event = ev;
    r.next = *cur;
    r.next.flags = (cur->flags & ~ev->clear_flags) | ev->set_flags;
    int to = ev->to;
    if (to == CF_WF_PREVIOUS) {
        if (cur->prev < 0 || (size_t)cur->prev >= wf->nstates)
            return cf_error_set(reterr, CF_EINVTRANS, "event '%s' returns to the previous "
                                "state, and state '%s' has none", ev->name,
                                wf->states[cur->state].name);
        to = cur->prev;
    }
    r.returned_to = ev->to == CF_WF_PREVIOUS ? to : -1;
    if (to != CF_WF_STAY)
        r.next.state = s_follow_autos(wf, to, ctx, ev, data);
    r.state_changed = r.next.state != r.from;
    r.next.prev = r.state_changed ? r.from : cur->prev;
    s_set_timers(wf, &r);
    *ret = r;
    return 0;
}

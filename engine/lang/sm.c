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

/* Check one value against its field. */
static int s_check_value(const cf_wf_field_t *f, const msgpack_object *v, cf_error_t *reterr)
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
            v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return 0;
        if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64)
            return cf_error_set(reterr, CF_EBADREQ,
                                "field '%s' must be an integer, not a float", name);
        return cf_error_set(reterr, CF_EBADREQ, "field '%s' must be an integer", name);
    case CF_FT_MONEY:
        /* minor units of the claim's currency: a whole number, never below 0 */
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX)
            return 0;
        if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
            return cf_error_set(reterr, CF_EBADREQ, "field '%s' must not be negative", name);
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
        if (is_str && cf_date_parse(s, len, &y, &m, &d) == 0)
            return 0;
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
                     const msgpack_object *data, cf_error_t *reterr)
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
        int rc = s_check_value(f, &kv[i].val, reterr);
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

static bool s_auto_holds(const cf_wf_t *wf, const cf_wf_auto_t *a, const cf_sm_ctx_t *ctx)
{
    if (a->when_field >= 0) {
        if ((size_t)a->when_field >= wf->nfields)
            return false;
        const msgpack_object *v = s_data_get(ctx->claim_data, wf->fields[a->when_field].name);
        bool in = false;
        for (size_t i = 0; v && v->type == MSGPACK_OBJECT_STR && i < a->nwhen_in && !in; i++)
            in = s_str_is(&v->via.str, a->when_in[i]);
        if (!in)
            return false;
    }
    return s_guards_hold(a->guards, ctx, NULL) == 0;
}

/* Follow automatic moves from state; the state they end in. */
static int s_follow_autos(const cf_wf_t *wf, int state, const cf_sm_ctx_t *ctx)
{
    for (size_t step = 0; step < wf->nstates; step++) {
        const cf_wf_state_t *st = &wf->states[state];
        int next = -1;
        for (size_t i = 0; i < st->nautos && next < 0; i++)
            if (s_auto_holds(wf, &st->autos[i], ctx))
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
    int rc = cf_sm_check_data(wf->fields, wf->nfields, data, reterr);
    if (rc)
        return rc;
    if (wf->initial < 0 || (size_t)wf->initial >= wf->nstates)
        return cf_error_set(reterr, CF_EINTERNAL, "workflow '%s' has no initial state",
                            wf->name);
    cf_sm_result_t r = {0};
    r.from = -1;
    r.next.prev = -1;
    r.next.flags = 0;
    r.next.state = s_follow_autos(wf, wf->initial, ctx);
    r.state_changed = true;
    s_set_timers(wf, &r);
    *ret = r;
    return 0;
}

/* CF_EINVTRANS: the state, the events it accepts, the refusal text. */
static int s_not_accepted(const cf_wf_t *wf, int state, const char *event, size_t len,
                          cf_error_t *reterr)
{
    const cf_wf_state_t *st = &wf->states[state];
    char list[256] = "";
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
    const char *why = cf_wf_refusal(wf, event, len);
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
    int rc = cf_sm_check_data(ev->fields, ev->nfields, data, reterr);
    if (rc)
        return rc;
    if ((rc = s_guards_hold(ev->guards, ctx, reterr)))
        return rc;

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
    if (to != CF_WF_STAY)
        r.next.state = s_follow_autos(wf, to, ctx);
    r.state_changed = r.next.state != r.from;
    r.next.prev = r.state_changed ? r.from : cur->prev;
    s_set_timers(wf, &r);
    *ret = r;
    return 0;
}

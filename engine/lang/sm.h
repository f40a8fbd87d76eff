/* sm.h: the state machine - a pure function from (definition, claim state,
 * event, actor role, event data, context) to the next state and its effects,
 * or a precise error.
 *
 * No I/O, no clock, no allocation: the context carries `now` and what the
 * guards need (the member's consent), and the result points into the
 * immutable definition.  So it is tested exhaustively in unit tests, and the
 * engine (engine.h) is the only place that turns its result into writes.
 *
 * Order of checks, so the error is the most useful one: the state accepts the
 * event (else CF_EINVTRANS), the role may send it (CF_EFORBIDDEN), the data is
 * valid (CF_EBADREQ), the guards hold (CF_EGUARD).  Then the target state is
 * entered and its automatic moves (`auto:`) are followed.
 */
#ifndef CF_SM_H
#define CF_SM_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#include "cf_err.h"
#include "cf_time.h"
#include "workflow.h"

/* What a guard may look at.  Times are 0 when absent. */
typedef struct {
    cf_time_t now;
    int64_t today;     /* the local date of now in the claim's calendar, days since
                          1970: what `not_before: today` means */
    cf_time_t consent_given_at;
    cf_time_t consent_valid_until;
    cf_time_t consent_withdrawn_at;
    bool has_owner;    /* the claim has an owner (`owner: required` states) */
    const msgpack_object *claim_data;  /* the claim's data map (`when`, bounds) */
} cf_sm_ctx_t;

/* The part of a claim the state machine reads and writes. */
typedef struct {
    int state;       /* index into wf->states */
    int prev;        /* the state before, for $previous; -1 when none */
    uint64_t flags;  /* bit i = wf->flags[i] */
} cf_sm_claim_t;

typedef struct {
    cf_sm_claim_t next;
    int from;                      /* state before the transition, -1 at creation */
    bool state_changed;            /* next.state != from */
    /* Timers of the state left, to cancel (none when the state is unchanged). */
    const cf_wf_timer_t *cancel;
    size_t ncancel;
    /* Timers of the state entered, to start (none when unchanged). */
    const cf_wf_timer_t *start;
    size_t nstart;
    const cf_wf_event_t *event;    /* the matched event; NULL at creation */
    /* `to: $previous`: the state returned to (before its autos), else -1.
     * The claims layer restores what a pause kept (timers with
     * `on_pause: keep`, the state's own previous state). */
    int returned_to;
} cf_sm_result_t;

/* True when guard (one CF_GUARD_* bit) holds in ctx. */
bool cf_sm_guard_holds(unsigned guard, const cf_sm_ctx_t *ctx);

/* Check data (a msgpack map, or NULL / nil for none) against fields: every
 * key is a declared field, every required field is present, every value has
 * its field's type (string max length, integer, boolean, date YYYY-MM-DD,
 * person_id valid, enum one of its values, claim a non-empty string) and
 * keeps within its bounds: integer and money `min`/`max` (a bound naming a
 * claim field reads ctx->claim_data and does not bind role when role is in
 * its `except_by`), dates `not_before`/`not_after` against ctx->today.
 * ctx NULL: the bounds relative to a claim or a day are not checked.
 * 0, or CF_EBADREQ naming the field and the bound (never its value). */
int cf_sm_check_data(const cf_wf_field_t *fields, size_t nfields,
                     const msgpack_object *data, unsigned role, const cf_sm_ctx_t *ctx,
                     cf_error_t *reterr);

/* A new claim of wf, created by role with data: validates the data against
 * the workflow's fields, enters the initial state and follows its automatic
 * moves.  ctx->claim_data must be data.  0, CF_EFORBIDDEN (role may not
 * create), CF_EBADREQ (data). */
int cf_sm_create(const cf_wf_t *wf, unsigned role, const msgpack_object *data,
                 const cf_sm_ctx_t *ctx, cf_sm_result_t *ret, cf_error_t *reterr);

/* Apply event (name of length len) sent by role with data to a claim in cur.
 * 0, or CF_EINVTRANS (names the state and the events it accepts, plus the
 * refusal text for the event), CF_EFORBIDDEN (names the role),
 * CF_EBADREQ (names the field), CF_EGUARD (names the guard, the flag the
 * event's `if_set`/`if_clear` wants, or the missing owner of an
 * `owner: required` state, which binds every role but member and system).
 * Automatic moves after the event see the claim's data with the event's
 * `record:` applied.
 * Setting flags: the event's `set`/`clear` are applied to next.flags.
 * `$previous` goes to cur->prev; next.prev is the state left when the state
 * changes, else unchanged. */
int cf_sm_apply(const cf_wf_t *wf, const cf_sm_claim_t *cur, const char *event,
                size_t len, unsigned role, const msgpack_object *data,
                const cf_sm_ctx_t *ctx, cf_sm_result_t *ret, cf_error_t *reterr);

#endif

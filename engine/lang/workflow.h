/* workflow.h: workflow definitions, loaded from YAML and compiled into an
 * immutable model the state machine (sm.h) runs on.
 *
 * The language is documented in docs/workflows.md.  A compiled cf_wf_t is
 * never modified after cf_wf_load_* returns it; every pointer inside it is
 * owned by it and valid until cf_wf_destroy.  The state machine refers to
 * states and flags by index; the store keeps their names (docs/storage.md),
 * so a later version may reorder them freely.
 */
#ifndef CF_WORKFLOW_H
#define CF_WORKFLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cf_time.h"
#include "country.h"
#include "diag.h"

/* ---------------------------------------------------------------- roles --- */
/* Who may send an event.  A bit set, so an event lists several. */
#define CF_ROLE_MAP(XX)               \
    XX(MEMBER,     0x01, "member")    \
    XX(HANDLER,    0x02, "handler")   \
    XX(SUPERVISOR, 0x04, "supervisor")\
    XX(AUDITOR,    0x08, "auditor")   \
    XX(SYSTEM,     0x10, "system")

enum {
#define CF_XX(s, v, name) CF_ROLE_##s = (v),
    CF_ROLE_MAP(CF_XX)
#undef CF_XX
};

/* The role bit named name (length len), or 0 when it is not a role. */
unsigned cf_role_parse(const char *name, size_t len);
/* The name of one role bit ("member"), or "?" for anything else. */
const char *cf_role_name(unsigned role);

/* --------------------------------------------------------------- guards --- */
/* Built-in guards, named in `requires:`.  Each is a pure predicate over the
 * state machine's context (sm.h, cf_sm_ctx_t). */
#define CF_GUARD_MAP(XX) \
    XX(CONSENT_VALID, 0x01, "consent_valid")

enum {
#define CF_XX(s, v, name) CF_GUARD_##s = (v),
    CF_GUARD_MAP(CF_XX)
#undef CF_XX
};

/* --------------------------------------------------------------- fields --- */
#define CF_FTYPE_MAP(XX)                 \
    XX(STRING,    "string")              \
    XX(INTEGER,   "integer")             \
    XX(BOOLEAN,   "boolean")             \
    XX(DATE,      "date")                \
    XX(PERSON_ID, "person_id")           \
    XX(ENUM,      "enum")                \
    XX(CLAIM,     "claim")               \
    XX(MONEY,     "money")

typedef enum {
#define CF_XX(s, name) CF_FT_##s,
    CF_FTYPE_MAP(CF_XX)
#undef CF_XX
} cf_wf_ftype_t;

/* Default and largest max length of a string field, in bytes. */
#define CF_WF_STRING_DEFAULT_MAX 4096
#define CF_WF_STRING_LIMIT       65536

/* A bound of an integer or money field (`min:`, `max:`): a number, or the
 * value of a claim data field (`{claim: guarantee_amount}`), which the roles
 * in `except` may exceed.  A bound on a claim field the claim does not have
 * (yet) does not apply. */
typedef struct {
    bool set;
    int64_t value;
    int claim_field;             /* index into the workflow's fields, or -1 */
    const char *claim_name;      /* its name, for checks and messages */
    unsigned except;             /* CF_ROLE_* bits the bound does not bind */
} cf_wf_bound_t;

/* A date bound (`not_before:`, `not_after:`) relative to the engine's
 * today in the claim's calendar: today + n units (`today`: n 0; `+1y`,
 * `-30d`; units d, w, mo, y). */
typedef struct {
    bool set;
    int64_t n;
    cf_dur_unit_t unit;
} cf_wf_date_bound_t;

typedef struct {
    const char *name;
    cf_wf_ftype_t type;
    bool required;
    bool internal;               /* claim data written only by events' `record:` */
    uint32_t max_len;            /* CF_FT_STRING: bytes */
    const char *const *values;   /* CF_FT_ENUM */
    size_t nvalues;
    cf_wf_bound_t min, max;      /* CF_FT_INTEGER, CF_FT_MONEY */
    cf_wf_date_bound_t not_before, not_after;  /* CF_FT_DATE */
} cf_wf_field_t;

/* --------------------------------------------------------------- events --- */
#define CF_WF_STAY     (-1)   /* no `to`: stays, timers keep running */
#define CF_WF_PREVIOUS (-2)   /* `to: $previous` */

#define CF_WF_MAX_FLAGS 64
#define CF_WF_MAX_RECORD 16   /* fields one event may `record:` */

typedef struct {
    const char *name;            /* "decision.approved" */
    int to;                      /* state index, CF_WF_STAY or CF_WF_PREVIOUS */
    unsigned roles;              /* CF_ROLE_* bits */
    unsigned guards;             /* CF_GUARD_* bits */
    const cf_wf_field_t *fields; /* the event's own data */
    size_t nfields;
    uint64_t set_flags;          /* bit i = flags[i] of the workflow */
    uint64_t clear_flags;
    /* `scope`: what a representative sending it for the member needs -
     * "claims", "complaints" or "consent"; NULL: the default (complaints for
     * a complaint.* event, claims for the rest; docs/workflows.md). */
    const char *scope;
    uint64_t if_set, if_clear;   /* flags that must be set / clear (`if_set:`) */
    /* `record:`: record[i] is the claim data field the event's field i is
     * written to, or -1; NULL when the event records nothing. */
    const int *record;
    uint32_t line, col;          /* where it was declared, for messages */
} cf_wf_event_t;

typedef struct {
    const char *name;            /* "decision_due" */
    cf_dur_t after;              /* when at_field < 0 */
    int at_field;                /* `at:`: a date field of the claim's data, or -1 */
    bool keep;                   /* `on_pause: keep`: a return keeps the due time */
    const char *event;           /* sent, as actor system, when due */
} cf_wf_timer_t;

/* An automatic move, tried in order on entering a state: the first whose
 * `when` and `requires` hold is taken at once, in the same transition. */
typedef struct {
    int to;                      /* state index */
    unsigned guards;
    int when_field;              /* index into the workflow's data fields, or -1 */
    const char *const *when_in;  /* the field's value must be one of these */
    size_t nwhen_in;
} cf_wf_auto_t;

/* An explanation given with invalid_transition (and failed flag
 * conditions) for an event, from a `refusals:` map: the state's, then the
 * workflow's. */
typedef struct {
    const char *event;
    const char *message;
} cf_wf_refusal_t;

typedef struct {
    const char *name;
    bool initial;
    bool final;
    bool owner_required;         /* `owner: required`: operators' events need an owner */
    const cf_wf_refusal_t *refusals;
    size_t nrefusals;
    const cf_wf_event_t *events;
    size_t nevents;
    const cf_wf_timer_t *timers;
    size_t ntimers;
    const cf_wf_auto_t *autos;
    size_t nautos;
} cf_wf_state_t;


/* A place in the workflow's file, for diagnostics made after loading. */
typedef struct {
    uint32_t line, col;
} cf_wf_pos_t;

typedef struct cf_wf {
    const char *name;             /* "health_claim" */
    int64_t version;              /* >= 1 */
    /* The calendar and currency of a claim, by the claim's country (fixed at
     * creation from its member, docs/workflows.md).  A scalar `calendar:`
     * fills every entry with the same name and is kept in `calendar`; with
     * `calendar: {by_member_country: ...}` `calendar` is NULL and
     * `first_country` is the map's first entry, the country of a claim with
     * neither member nor parent.  `currency:` defaults per country from
     * cf_country_currency. */
    const char *calendar;
    const char *calendars[CF_COUNTRY_N];
    cf_wf_pos_t calendar_at[CF_COUNTRY_N];
    cf_country_t first_country;
    cf_currency_t currency[CF_COUNTRY_N];
    unsigned created_by;          /* roles that may create a claim */
    const cf_wf_field_t *fields;  /* the claim's data */
    size_t nfields;
    const cf_wf_state_t *states;
    size_t nstates;
    int initial;                  /* index of the initial state */
    const cf_wf_event_t *any;     /* accepted in every non-final state */
    size_t nany;
    const char *const *flags;     /* every flag set or cleared anywhere */
    size_t nflags;
    const cf_wf_refusal_t *refusals;
    size_t nrefusals;
    const char *source;           /* the YAML text it was compiled from */
    size_t source_len;
} cf_wf_t;

/* ---------------------------------------------------------------- load --- */
/* The largest workflow file accepted, in bytes. */
#define CF_WF_MAX_FILE (1024 * 1024)

/* Compile the workflow in buf[0..len) (file names it in diagnostics).
 * On success *ret is a new definition (free with cf_wf_destroy) and 0 is
 * returned.  Otherwise CF_EBADREQ (the definition is invalid; every error found
 * is appended to *reterr as file:line:col + message), or CF_EINTERNAL (out of
 * memory).  Never crashes on any input. */
int cf_wf_load_buffer(const char *file, const char *buf, size_t len,
                      cf_wf_t **ret, cf_diags_t *reterr);

/* Read path and compile it, as cf_wf_load_buffer.  An unreadable file is one
 * diagnostic at line 0. */
int cf_wf_load_file(const char *path, cf_wf_t **ret, cf_diags_t *reterr);

/* Free a definition; accepts NULL and sets *wf_p to NULL. */
void cf_wf_destroy(cf_wf_t **wf_p);

/* Check that every calendar wf names exists: exists(ctx, name) says whether
 * the calendars file calfile declares it (the loader cannot: the calendars
 * are another file).  Each one missing is one diagnostic at its place in
 * file, naming calfile.  0, CF_EBADREQ (some are missing) or CF_EINTERNAL
 * (out of memory for a diagnostic).  The daemon (at start) and `claimctl
 * workflow validate` both check with it, so they refuse with the same
 * words. */
int cf_wf_check_calendars(const cf_wf_t *wf, const char *file, const char *calfile,
                          bool (*exists)(void *ctx, const char *name), void *ctx,
                          cf_diags_t *reterr);

/* -------------------------------------------------------------- lookups --- */
/* Index of the state named name, or -1. */
int cf_wf_state_find(const cf_wf_t *wf, const char *name);
/* Index of the flag named name, or -1. */
int cf_wf_flag_find(const cf_wf_t *wf, const char *name);
/* Index of the claim data field named name, or -1. */
int cf_wf_field_find(const cf_wf_t *wf, const char *name);
/* The event name (length len) as accepted in state: the state's own events
 * first, then `any` when the state is not final; NULL when not accepted. */
const cf_wf_event_t *cf_wf_event_find(const cf_wf_t *wf, int state,
                                      const char *name, size_t len);
/* The refusal text for event, or NULL. */
const char *cf_wf_refusal(const cf_wf_t *wf, const char *event, size_t len);
/* The refusal text for event in state: the state's own, else the
 * workflow's; NULL when neither has one. */
const char *cf_wf_refusal_in(const cf_wf_t *wf, int state, const char *event, size_t len);

#endif

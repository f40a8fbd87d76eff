/* claims.h: the claims layer - everything an operation does to claims,
 * over one batch's context (cf_batch_t): loading a claim, applying an event
 * (the one "context -> state machine -> due times -> write" path), the
 * consent fan-out, staging publications, and the access log.  Below it:
 * schema.h (keys, records) and store.h (the transaction).  Above it: the op
 * handlers (ops.h), the timers (timers.h), the dispatcher and the engine.
 *
 * A batch context lives for one write transaction (cf_engine_run,
 * cf_engine_fire_due).  It borrows the engine's registry, limits and clock;
 * it owns the publications staged in it until the engine takes them.
 */
#ifndef CF_CLAIMS_H
#define CF_CLAIMS_H

#include <msgpack.h>

#include "calendar.h"
#include "proto.h"
#include "schema.h"
#include "sm.h"
#include "store.h"
#include "workflow.h"

/* One compiled workflow version and its calendars, resolved once when the
 * engine opens: the request path indexes cal by the claim's country and
 * never looks a calendar up by name. */
typedef struct {
    cf_wf_t *wf;
    const cf_cal_t *cal[CF_COUNTRY_N];  /* by claim country; borrowed from the engine */
    cf_country_t country;    /* default: claims with neither member nor parent */
    bool latest;             /* the highest version of its name */
} cf_wf_entry_t;

/* The workflow versions the engine knows (owned by the engine). */
typedef struct {
    cf_wf_entry_t *v;
    size_t n;
} cf_registry_t;

/* The version of name (version 0: the latest), or NULL. */
const cf_wf_entry_t *cf_registry_find(const cf_registry_t *r, const char *name, size_t len,
                                      int64_t version);
/* The entry of a definition the registry holds (by its address), or NULL. */
const cf_wf_entry_t *cf_registry_of(const cf_registry_t *r, const cf_wf_t *wf);

/* Settings every batch reads (owned by the engine). */
typedef struct {
    const cf_operator_t *operators;
    size_t noperators;
    int64_t idem_retention;      /* seconds */
    int64_t audit_retention;     /* seconds an access-log entry is kept */
    size_t max_document;         /* bytes */
    int64_t purge_after;         /* seconds; 0: purge needs a date */
    unsigned consent_changes;    /* consent changes per member and UTC day */
    bool show_operator_ids;      /* a member's access log names operators */
} cf_limits_t;

/* The manual clock and the claim-id generator: engine state a batch may
 * move (committed or not, see cf_engine_run). */
typedef struct {
    bool manual;
    cf_time_t manual_now;
} cf_clock_t;

typedef struct {
    uint64_t last_ms;
    unsigned char last_rand[10];
} cf_idgen_t;

/* An event to publish after the batch commits. */
typedef struct {
    char *topic;
    char *body;
    size_t body_len;
} cf_pub_own_t;

typedef struct {
    cf_pub_own_t *v;
    size_t n, cap;
} cf_pubs_t;

void cf_pubs_clear(cf_pubs_t *p);
/* Drop the entries past n (a part of the batch that did not commit). */
void cf_pubs_truncate(cf_pubs_t *p, size_t n);
void cf_pubs_fini(cf_pubs_t *p);

typedef struct {
    cf_store_t *store;
    cf_txn_t *txn;                  /* the batch's write transaction */
    cf_time_t now;                  /* the batch's clock reading */
    const cf_registry_t *reg;
    /* By country (cf_pid_country), the calendar in whose zone a person of
     * that country turns a year older (reps.c); NULL entries read dates in
     * UTC.  Borrowed from the engine. */
    const cf_cal_t *const *person_cal;
    const cf_limits_t *lim;
    cf_clock_t *clock;
    cf_idgen_t *ids;
    uint64_t *audit_seq;            /* the access log's last sequence */
    cf_pubs_t *pubs;                /* staged publications */
    msgpack_sbuffer scratch;        /* record encoding; reused */
    /* The current request's role and purpose, kept in the access-log
     * entries it writes (set by the dispatcher for each request; NULL
     * outside one, e.g. while timers fire). */
    const char *audit_role, *audit_purpose;
    const cf_cluster_view_t *cluster;   /* a replica's view, or NULL */
    uint32_t nchanges;              /* change-feed entries written so far */
    bool compact_pending;           /* a purge erased data: compact after commit */
    bool purge_ran;                 /* a purge committed: retry a failed compaction */
} cf_batch_t;

/* Begin / end a batch context around an open write transaction. */
void cf_batch_init(cf_batch_t *b);
void cf_batch_fini(cf_batch_t *b);

/* The batch's transaction failed (a write failed): abort and re-run. */
static inline bool cf_batch_failed(const cf_batch_t *b) { return cf_txn_failed(b->txn); }

/* ------------------------------------------------------------ helpers --- */
/* A new claim id: ULID-like, monotonic within a millisecond. */
void cf_claims_new_id(cf_batch_t *b, char out[CF_ID_LEN + 1]);
/* Add delta (+1 or -1) to the count `stats` reports for an index group:
 * kind 's' and an idx_state key's workflow\0state\0, or 'f' and an
 * idx_flag key's flag\0 (group, glen: the key without its claim id). */
int cf_claims_count(cf_txn_t *t, char kind, const unsigned char *group, size_t glen, int delta);

/* The member-id hash of a canonical person id (keyed, store's hashkey). */
void cf_claims_member_hash(const cf_batch_t *b, const char *canon,
                           unsigned char out[CF_MEMBER_HASH_LEN]);

/* ------------------------------------------------------------- claims --- */
/* Load claim id[0..len): 0, CF_ENOTFOUND, or CF_EINTERNAL.  Free with
 * cf_claim_fini. */
int cf_claims_load(cf_batch_t *b, const char *id, size_t len, cf_claim_t *c);

/* The member's consent into ctx (zeros when none).  0 or a store error. */
int cf_claims_consent_ctx(cf_batch_t *b, const unsigned char *hash, cf_sm_ctx_t *ctx);
/* Read / write a member's consent record. */
int cf_claims_consent_get(cf_batch_t *b, const unsigned char *hash, cf_consent_t *ret);
int cf_claims_consent_put(cf_batch_t *b, const unsigned char *hash, const cf_consent_t *c);

/* How an applied event is recorded. */
typedef struct {
    const char *actor;           /* "system", "member" or the operator id */
    const char *hist;            /* history data (packed msgpack map) or NULL */
    size_t hist_len;
    bool only_changes;           /* skip (return 1) unless state or flags change */
    cf_event_who_t who;          /* by, channel, reference (schema.h) */
} cf_apply_rec_t;

/* Start (start true) or cancel the member timers of consent c: its expiry
 * (consent.expired at valid_until) and its reminder (consent.expiring
 * CF_CONSENT_NOTICE before).  Cancelling a consent that is not running
 * (never given, withdrawn) does nothing.  0 or a store error. */
int cf_claims_consent_timers(cf_batch_t *b, const unsigned char *hash, const cf_consent_t *c,
                             bool start);

/* Apply event[0..elen) with data to c as role: the consent context (and the
 * claim's owner, the engine's today in its calendar), the state machine, the
 * event's `record:` into c->data, the due times of timers it starts (kept
 * ones from the return stack, `at:` dates, durations), then the write
 * (transition, return stack, indexes, timers, history, publication).  Nothing is written
 * unless every check passed.  0; CF_E* from the state machine with its
 * message in *reterr (may be NULL); CF_EBADREQ when a due time falls
 * outside the calendar's years; or a store error; 1 when rec->only_changes
 * and the event would change nothing (nothing written). */
int cf_claims_apply(cf_batch_t *b, cf_claim_t *c, const char *event, size_t elen,
                    unsigned role, const msgpack_object *data, const cf_apply_rec_t *rec,
                    cf_error_t *reterr);

/* Create claim c (wf, data, member, parent set by the caller) with r, the
 * state machine's result for the creation: id, indexes, first history
 * entry `claim.created`, recorded as actor and who (may be NULL).  0,
 * CF_EBADREQ (due time), or a store error. */
int cf_claims_create(cf_batch_t *b, cf_claim_t *c, const cf_sm_result_t *r, const char *actor,
                     const cf_event_who_t *who);

/* Record event[0..elen) in c's history without a transition (the claim
 * stays where it is, its timers run on): an assignment.  History,
 * publication, change feed and record, as cf_claims_apply writes them.
 * 0 or a store error. */
int cf_claims_note(cf_batch_t *b, cf_claim_t *c, const char *event, const cf_apply_rec_t *rec);

/* The engine's today (days since 1970) in the calendar of wf for a claim
 * of country: what `not_before: today` compares with. */
int64_t cf_claims_today(const cf_batch_t *b, const cf_wf_t *wf, cf_country_t country);

/* Rewrite c's record as it is (e.g. a timer left its list). */
int cf_claims_save(cf_batch_t *b, const cf_claim_t *c);

/* Send event (as `system`) to every open claim of a member whose state
 * accepts it and changes: the consent fan-out.  who (may be NULL: the
 * engine's own, channel system) says who caused it, hist[0..hlen) (may be
 * NULL) is the events' history data.  Ids of the claims moved are packed
 * into *moved (may be NULL), counted in *nmoved.  0 or a store error. */
int cf_claims_fanout(cf_batch_t *b, const unsigned char *hash, const char *event,
                     const cf_event_who_t *who, const char *hist, size_t hlen,
                     msgpack_packer *moved, uint32_t *nmoved);

/* Send event (as `system`, with history data hist[0..hlen), may be NULL)
 * to every open claim of a member whose state accepts it, recorded in each
 * claim's history and published even when it changes nothing: a notice
 * (consent.expiring).  *notified (may be NULL) counts them.  0 or a store
 * error. */
int cf_claims_notify(cf_batch_t *b, const unsigned char *hash, const char *event,
                     const char *hist, size_t hlen, uint32_t *notified);

/* Documents (claim documents and representations' evidence), kept once
 * per content (sha256) with a count of their holders: cf_claims_doc_ref
 * counts one holder more and stores the bytes with the first;
 * cf_claims_doc_unref counts one fewer and deletes the bytes with the last.
 * 0 or a store error. */
int cf_claims_doc_ref(cf_batch_t *b, const unsigned char sha[32], const char *ctype,
                      size_t clen, const void *body, size_t blen);
int cf_claims_doc_unref(cf_batch_t *b, const unsigned char sha[32]);

/* The claim ids of a member, in id order, into *ret (malloc'd; free()). */
int cf_claims_of_member(cf_batch_t *b, const unsigned char *hash, char (**ret)[CF_ID_LEN],
                        size_t *n);

/* Stage an event for publication after commit. */
int cf_claims_publish(cf_batch_t *b, const char *workflow, const char *event, const char *body,
                      size_t len);

/* ---------------------------------------------------------- access log --- */
/* Record an access to claims[0..n) (each CF_ID_LEN bytes) by actor with op
 * (docs/SECURITY.md), with the batch's audit_role and audit_purpose: one
 * entry, each claim id in it and in the per-claim index as its 16 bytes
 * (schema.h).  0 or a store error. */
int cf_claims_audit(cf_batch_t *b, const char *actor, const char *opname,
                    const char *const *claims, size_t n);
/* One claim's access-log entries: the audit keys (CF_AUDIT_KEY_LEN each)
 * of its audit_claim index entries after `after` (NULL: from the first),
 * in key order (time, sequence), at most max of them, into ret (room for
 * max), their number in *ret_n.  Looks under both forms of the index key
 * (the 16-byte id, and the 26 characters of entries from before; schema.h).
 * 0, CF_EINTERNAL (out of memory) or a store error. */
int cf_claims_audit_of_claim(cf_txn_t *txn, const char *id, const unsigned char *after,
                             size_t max, unsigned char (*ret)[CF_AUDIT_KEY_LEN],
                             size_t *ret_n);
/* The retention: delete entries older than `before`, oldest first, with
 * their audit_claim and audit_actor index entries, until max_entries are
 * deleted or max_keys index keys (always at least one entry when one is
 * due).  *ret_n (may be NULL): the entries deleted.  0 or a store error. */
int cf_claims_audit_prune(cf_batch_t *b, cf_time_t before, size_t max_entries,
                          size_t max_keys, size_t *ret_n);
/* The access log's last sequence number (at engine open). */
int cf_claims_audit_seq(cf_txn_t *txn, uint64_t *ret);
/* Keep the sequence in meta (in the batch that moved it). */
int cf_claims_audit_seq_save(cf_batch_t *b);

#endif

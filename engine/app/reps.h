/* reps.h: who may act for a member - representations (parents, guardians,
 * next of kin, attorneys, third parties), the check of a request's `by`,
 * and the age rules for consent (docs/protocol.md, "Members and
 * representatives").
 *
 * A representation lives under the member it is of (reps: member hash +
 * representative hash), with a reverse index by representative (reps_by),
 * so isolation and purge work by member, and a representative's own list
 * is one prefix scan.  Every rule that refuses says which rule failed, and
 * never a person id.
 */
#ifndef CF_REPS_H
#define CF_REPS_H

#include "op.h"

/* A representation's end timer's name prefix (a member timer, schema.h):
 * "rep_end" + the representative's hash in hex. */
#define CF_REP_END_TIMER "rep_end"

/* Is r in force at t: not revoked, begun, not ended. */
bool cf_reps_active(const cf_rep_t *r, cf_time_t t);

/* The representation of member (hash) by rep (hash) into *ret: 0,
 * CF_ENOTFOUND, or a store error / CF_EINTERNAL. */
int cf_reps_get(cf_batch_t *b, const unsigned char *member, const unsigned char *rep,
                cf_rep_t *ret);

/* May op's `by` act for the member (hash) with scope (CF_SCOPE_* bit)?
 * 0 when `by` is absent or is the member, or holds a representation in
 * force covering scope; else CF_EFORBIDDEN with the rule in op->err (or a
 * store error). */
int cf_reps_require(cf_op_t *op, const unsigned char *member, unsigned scope);

/* The scope (CF_SCOPE_* bit) a representative needs to send event[0..len)
 * to a claim of wf in state: the event's `scope:` in the workflow, else
 * complaints for a complaint.* event and claims for any other. */
unsigned cf_reps_event_scope(const cf_wf_t *wf, int state, const char *event, size_t len);

/* Who acted, for the events a request records: by (when someone other
 * than the member, whose hash is member), the channel and the reference.
 * Borrows op's strings. */
cf_event_who_t cf_reps_who(const cf_op_t *op, const unsigned char *member);

/* The age rules for consent (one place): may op's `by` give (give true) or
 * withdraw the consent of member (canonical person id, and its hash) now?
 * Under 15: only a parent or guardian with scope consent; 15 to 17: only
 * the member (`involved`, given: the parents involved, only here); 18 and
 * over: the member or a representative with scope consent.  0, with
 * *ret_lapses the member's 15th birthday when a parent's or guardian's
 * consent for a child under 15 (else 0); CF_EFORBIDDEN naming the rule,
 * CF_EBADREQ (`involved` where it does not apply), or a store error - the
 * message in op->err. */
int cf_reps_consent_rule(cf_op_t *op, const char *member, const unsigned char *hash, bool give,
                         bool involved, cf_time_t *ret_lapses);

/* Pack the member's (hash) representations as the protocol's list (the
 * export).  0 or a store error. */
int cf_reps_pack_member(cf_batch_t *b, const unsigned char *member, msgpack_packer *pk);

/* A member's representations are erased with the member (purge): records,
 * reverse index entries, end timers, evidence documents.  0 or a store
 * error. */
int cf_reps_erase_member(cf_batch_t *b, const unsigned char *member);

/* A representation's end timer fired (name CF_REP_END_TIMER...): record
 * the end.  A stale timer (revoked, replaced) does nothing.  0 or a store
 * error. */
int cf_reps_fire_end(cf_batch_t *b, const unsigned char *member, const char *name,
                     cf_time_t due);

/* Ops (docs/protocol.md): representation.add and .revoke (operators:
 * handler, supervisor), representation.grant (portal: an adult member
 * authorises a third party), representation.revoke (portal: the member, or
 * the representative renouncing), representation.list (both). */
int cf_op_rep_add(cf_op_t *op);
int cf_op_rep_grant(cf_op_t *op);
int cf_op_rep_revoke(cf_op_t *op);
int cf_op_rep_list(cf_op_t *op);

#endif

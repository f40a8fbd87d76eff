/* rights.h: what a member may see of their own data (docs/SECURITY.md,
 * "What a member can see"): their consent, every operator access to their
 * claims (the access log, as the member is shown it), and an export of
 * everything claimflow holds about them.  GDPR art. 15; the access log's
 * dates and purposes after EU Court of Justice C-579/21.
 *
 * The handlers are rows of the op table (ops.c); they read through the
 * claims layer (claims.h) and the schema (schema.h) like every other op.
 */
#ifndef CF_RIGHTS_H
#define CF_RIGHTS_H

#include "op.h"

/* The consent map of the protocol (docs/protocol.md, "consent"): member,
 * given_at, valid_until, withdrawn_at, given_by, channel, lapses_at,
 * involved, reference; nil when the
 * member never gave one (c->given_at == 0). */
void cf_rights_pack_consent(msgpack_packer *pk, const char *member, size_t mlen,
                            const cf_consent_t *c);

/* op `consent.get` (portal): the member's consent. */
int cf_op_consent_get(cf_op_t *op);
/* op `access_log` (portal): every operator access to the member's claims,
 * newest first, as the member is shown it (role, purpose; the operator's id
 * only when configured). */
int cf_op_access_log(cf_op_t *op);
/* op `export` (portal; operators for a written request): everything held
 * about one member - consent, claims with their whole history and document
 * metadata, the access log - in pages; each page is recorded in the access
 * log (op `export`). */
int cf_op_export(cf_op_t *op);

#endif

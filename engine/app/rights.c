/* rights.c: the member's own view of their data (rights.h).
 *
 * consent.get shows the consent record as the member's claims' guard sees
 * it.  Who gave it and through which channel are constants today: consent
 * is only ever given by the member through the portal (op consent.give,
 * portal only), so the record does not spend bytes on them; a second
 * channel (a handler recording a paper form) would add them to the record.
 */
#include "rights.h"

#include <string.h>

/* ============================================================ consent === */

void cf_rights_pack_consent(msgpack_packer *pk, const char *member, size_t mlen,
                            const cf_consent_t *c)
{
    if (c->given_at == 0) {
        msgpack_pack_nil(pk);
        return;
    }
    msgpack_pack_map(pk, 6);
    cf_pack_str(pk, "member");
    cf_pack_strn(pk, member, mlen);
    cf_pack_str(pk, "given_at");
    cf_pack_time(pk, c->given_at);
    cf_pack_str(pk, "valid_until");
    cf_pack_time(pk, c->valid_until);
    cf_pack_str(pk, "withdrawn_at");
    if (c->withdrawn_at)
        cf_pack_time(pk, c->withdrawn_at);
    else
        msgpack_pack_nil(pk);
    cf_pack_str(pk, "given_by");
    cf_pack_str(pk, "member");
    cf_pack_str(pk, "channel");
    cf_pack_str(pk, "portal");
}

int cf_op_consent_get(cf_op_t *op)
{
    const char *member;
    size_t mlen;
    int rc = cf_op_str(op, "member", true, 32, &member, &mlen);
    if (rc != 0)
        return rc;
    cf_consent_t c;
    if ((rc = cf_claims_consent_get(op->b, op->member_hash, &c)) != 0)
        return cf_op_fail(op, rc, "the member's consent cannot be read");
    cf_op_key(op, "consent");
    cf_rights_pack_consent(&op->pk, member, mlen, &c);
    return 0;
}

/* privacy.h: the access log's reader and the purge of closed claims'
 * personal data (docs/SECURITY.md). */
#ifndef CF_PRIVACY_H
#define CF_PRIVACY_H

#include "op.h"

/* op `audit`: the access log, newest entries by claim or operator. */
int cf_op_audit(cf_op_t *op);
/* op `purge`: erase the personal data of claims closed before a date. */
int cf_op_purge(cf_op_t *op);

#endif

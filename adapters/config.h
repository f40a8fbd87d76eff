/* config.h: claimflowd's --config file (YAML).
 *
 *   operators:                 # the operator endpoint's roster
 *     - id: hanne              # 1..64 bytes [A-Za-z0-9._@-]; not member/system
 *       role: handler          # handler | supervisor | auditor
 *       key: "<40 chars Z85>"  # optional CURVE public key
 *   max_frame: 16777216        # optional, bytes; a flag overrides it
 *   max_document: 10485760     # optional, bytes
 *   idempotency_days: 7        # optional, how long a reply is remembered
 *
 * Unknown keys are errors, so a typo is never silently ignored (the same
 * rule as the protocol's).  docs/operations.md is the manual.
 */
#ifndef CF_CONFIG_H
#define CF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "cf_err.h"
#include "engine.h"

/* The largest config file read, in bytes. */
#define CF_CONFIG_MAX_FILE (1024 * 1024)
/* The most operators a roster may hold. */
#define CF_CONFIG_MAX_OPERATORS 10000

typedef struct {
    cf_operator_t *operators;   /* owned, with their strings */
    size_t noperators;
    size_t max_frame;           /* 0 when the file does not set it */
    size_t max_document;        /* 0 when not set */
    int64_t idem_retention;     /* seconds; 0 when not set */
} cf_config_t;

/* Read and check the config file at path.  0 and a new config (free with
 * cf_config_destroy), or:
 * CF_EBADREQ   unreadable, not YAML, or not the shape above; reterr->message
 *              is one line "path:line:col: what" naming the key at fault;
 * CF_EINTERNAL out of memory. */
int cf_config_load(const char *path, cf_config_t **ret, cf_error_t *reterr);

/* Free a config; accepts NULL and sets *c_p to NULL. */
void cf_config_destroy(cf_config_t **c_p);

#endif

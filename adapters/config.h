/* config.h: claimflowd's --config file (YAML).
 *
 *   operators:                 # the operator endpoint's roster
 *     - id: hanne              # 1..64 bytes [A-Za-z0-9._@-]; not member/system
 *       role: handler          # handler | supervisor | auditor
 *       key: "<40 chars Z85>"  # CURVE public key; needed when curve is on
 *   curve:                     # optional: every socket requires CURVE
 *     secret_key_file: PATH    # the daemon's secret key (40 Z85 chars, 0600)
 *   portal:
 *     keys: ["<40 chars Z85>"] # the portal endpoint's allow-list
 *   retention:                 # either or both
 *     closed_claims_days: 3650 # purge without a date: closed longer than this
 *     access_log_days: 1825    # access-log entries kept (default 5 years)
 *   privacy:
 *     show_operator_ids_to_members: false  # the member's access log names
 *                              # the operator (default: role and purpose only)
 *   http:                      # optional: /metrics, /healthz, /readyz
 *     listen: 127.0.0.1:9464   # IPv4:PORT, [IPv6]:PORT or localhost:PORT;
 *                              # port 0 picks a free one
 *   cluster:                   # optional: a replica of a cluster (CLUSTER.md)
 *     etcd: [http://10.0.0.1:2379, ...]  # etcd's client URLs (http/https)
 *     prefix: /claimflow/prod  # every key of this cluster under it
 *     node: a                  # this node's name; --node overrides it
 *     lease_seconds: 5         # leadership lease, 2..60
 *     log_retention: 24h       # log kept at least this long (s, m, h, d)
 *     tls: {ca: PATH, cert: PATH, key: PATH}   # optional, for https URLs
 *   max_frame: 16777216        # optional, bytes; a flag overrides it
 *   max_document: 10485760     # optional, bytes
 *   idempotency_days: 7        # optional, how long a reply is remembered
 *   consent_changes_per_day: 20  # optional, per member and UTC day
 *
 * A relative secret_key_file is relative to the config file's directory, so
 * a config and its key can move together.
 * Unknown keys are errors, so a typo is never silently ignored (the same
 * rule as the protocol's).  docs/operations.md is the manual.
 */
#ifndef CF_CONFIG_H
#define CF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "cf_err.h"
#include "engine.h"
#include "keyfile.h"

/* The largest config file read, in bytes. */
#define CF_CONFIG_MAX_FILE (1024 * 1024)
/* The most operators a roster may hold, and portal keys a list. */
#define CF_CONFIG_MAX_OPERATORS 10000
#define CF_CONFIG_MAX_PORTAL_KEYS 10000

/* The most etcd URLs a cluster section lists. */
#define CF_CONFIG_MAX_ETCD 16

/* The `cluster:` section (every string owned). */
typedef struct {
    char *etcd[CF_CONFIG_MAX_ETCD];
    size_t netcd;
    char *prefix;               /* no trailing slash */
    char *node;                 /* NULL when only --node gives it */
    unsigned lease_seconds;     /* default 5 */
    int64_t log_retention;      /* seconds; default 86400 */
    char *tls_ca, *tls_cert, *tls_key;   /* resolved like secret_key_file */
} cf_cluster_conf_t;

typedef struct {
    cf_operator_t *operators;   /* owned, with their strings */
    size_t noperators;
    size_t max_frame;           /* 0 when the file does not set it */
    size_t max_document;        /* 0 when not set */
    int64_t idem_retention;     /* seconds; 0 when not set */
    unsigned consent_changes;   /* per member and day; 0 when not set */
    int64_t purge_after;        /* retention.closed_claims_days in seconds; 0: not set */
    int64_t audit_retention;    /* retention.access_log_days in seconds; 0: not set */
    bool show_operator_ids;     /* privacy.show_operator_ids_to_members */
    bool curve;                 /* `curve:` given: every socket requires CURVE */
    char *curve_secret_file;    /* owned; resolved against the config's directory */
    char curve_secret[CF_KEY_BUFLEN];  /* the daemon's secret key (Z85), read
                                          from that file; wiped by destroy */
    char (*portal_keys)[CF_KEY_BUFLEN];  /* owned: portal.keys, Z85 */
    size_t nportal_keys;
    bool http;                  /* `http:` given: serve /metrics and health */
    struct sockaddr_storage http_addr;  /* http.listen, an AF_INET or AF_INET6
                                           address and port (0: any free) */
    bool http_loopback;         /* that address is 127.0.0.0/8 or ::1 */
    bool cluster;               /* `cluster:` given */
    cf_cluster_conf_t cl;
} cf_config_t;

/* Read and check the config file at path.  0 and a new config (free with
 * cf_config_destroy), or:
 * CF_EBADREQ   unreadable, not YAML, or not the shape above; reterr->message
 *              is one line "path:line:col: what" naming the key at fault;
 *              or the secret key file is missing, not a key, or readable by
 *              group or others ("keypath: what", never the key);
 * CF_EINTERNAL out of memory. */
int cf_config_load(const char *path, cf_config_t **ret, cf_error_t *reterr);

/* Free a config, wiping the secret key; accepts NULL and sets *c_p to NULL. */
void cf_config_destroy(cf_config_t **c_p);

#endif

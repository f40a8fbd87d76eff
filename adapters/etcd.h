/* etcd.h: the few etcd v3 calls claimflowd's replication needs, over etcd's
 * JSON gateway (/v3/kv/range, /v3/kv/txn, /v3/kv/deleterange, /v3/lease/...)
 * with libcurl.  Keys and values are bytes (base64 on the wire, libsodium's
 * codec); revisions and lease ids are int64 (strings on the wire).
 *
 * Endpoints.  The client talks to one etcd member at a time and moves to the
 * next URL when a member cannot be reached.  A read is retried on the next
 * member; a write is retried only when it certainly was not sent (no
 * connection).  Otherwise a write whose answer did not arrive returns
 * CF_EUNAVAIL with *unknown set: it may or may not have happened, and only
 * the caller knows how to find out.
 *
 * Blocking: every call waits for its answer, at most the timeout given at
 * creation.  One thread uses one client.  Nothing here logs; error messages
 * name the call and the transport's reason, never a key or value.
 */
#ifndef CF_ETCD_H
#define CF_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cf_err.h"

typedef struct cf_etcd cf_etcd_t;

typedef struct {
    const char *const *urls;      /* client URLs, e.g. http://127.0.0.1:2379 */
    size_t nurls;
    long timeout_ms;              /* per call; 0 = 2000 */
    const char *tls_ca, *tls_cert, *tls_key;   /* may be NULL */
} cf_etcd_opts_t;

/* 0 and a client, CF_EINTERNAL (out of memory, libcurl). */
int cf_etcd_new(const cf_etcd_opts_t *o, cf_etcd_t **ret, cf_error_t *reterr);
void cf_etcd_destroy(cf_etcd_t **e_p);

/* The URL in use (for messages). */
const char *cf_etcd_url(const cf_etcd_t *e);

/* One key-value (owned by its cf_etcd_kvs_t). */
typedef struct {
    unsigned char *key;
    size_t klen;
    unsigned char *val;
    size_t vlen;
    int64_t create_rev, mod_rev, lease;
} cf_etcd_kv_t;

typedef struct {
    cf_etcd_kv_t *v;
    size_t n;
    bool more;                    /* the limit cut the answer short */
    int64_t revision;             /* the store's revision the answer is of */
} cf_etcd_kvs_t;

void cf_etcd_kvs_free(cf_etcd_kvs_t *kvs);

/* The keys in [key, end) (end NULL: key alone; end "\0" of length 1: every
 * key >= key), in key order, at most limit (0: no limit).  keys_only leaves
 * val NULL.  Linearizable.  0, CF_EUNAVAIL (no member answered) or
 * CF_EINTERNAL (an answer that is not etcd's). */
int cf_etcd_range(cf_etcd_t *e, const void *key, size_t klen, const void *end, size_t elen,
                  int64_t limit, bool keys_only, cf_etcd_kvs_t *ret, cf_error_t *reterr);

/* A transaction's compare: key's create revision equals rev (0: the key
 * does not exist). */
typedef struct {
    const void *key;
    size_t klen;
    int64_t create_rev;
} cf_etcd_cmp_t;

/* A transaction's operation on success: put (val, lease 0 = none) or,
 * with del, delete [key, end) (end NULL: key alone). */
typedef struct {
    bool del;
    const void *key;
    size_t klen;
    const void *val;
    size_t vlen;
    const void *end;
    size_t elen;
    int64_t lease;
} cf_etcd_op_t;

/* If every compare holds, do every op, atomically.  0 with *succeeded and
 * *revision (the store's revision after it); CF_EUNAVAIL with *unknown
 * telling whether it may have happened; CF_EINTERNAL. */
int cf_etcd_txn(cf_etcd_t *e, const cf_etcd_cmp_t *cmps, size_t ncmp, const cf_etcd_op_t *ops,
                size_t nop, bool *succeeded, int64_t *revision, bool *unknown,
                cf_error_t *reterr);

/* Leases.  grant: a new lease of ttl seconds.  keepalive: *ttl is the
 * seconds left after renewing (0: the lease is gone).  revoke: the lease and
 * its keys go at once. */
int cf_etcd_lease_grant(cf_etcd_t *e, int64_t ttl, int64_t *id, cf_error_t *reterr);
int cf_etcd_lease_keepalive(cf_etcd_t *e, int64_t id, int64_t *ttl, cf_error_t *reterr);
int cf_etcd_lease_revoke(cf_etcd_t *e, int64_t id, cf_error_t *reterr);

/* A watch of [key, end) on a thread of its own: any change writes a byte
 * to fd (a wake-up, not the change: the reader reads what changed).  The
 * thread reconnects by itself, to the next member, and writes a byte then
 * too (a change may have been missed).  0, or CF_EINTERNAL. */
typedef struct cf_etcd_watch cf_etcd_watch_t;
int cf_etcd_watch_start(const cf_etcd_opts_t *o, const void *key, size_t klen, const void *end,
                        size_t elen, int fd, cf_etcd_watch_t **ret, cf_error_t *reterr);
void cf_etcd_watch_stop(cf_etcd_watch_t **w_p);

#endif

/* engine_int.h: what engine.c, ops.c and timers.c share.  Not installed, not
 * for other layers. */
#ifndef CF_ENGINE_INT_H
#define CF_ENGINE_INT_H

#include <lmdb.h>
#include <msgpack.h>

#include "calendar.h"
#include "claim.h"
#include "engine.h"
#include "sm.h"
#include "store.h"
#include "workflow.h"

/* The timer target kinds in a timer key: due(be64) kind target name. */
#define CF_TIMER_CLAIM  'c'   /* target: claim id (26) */
#define CF_TIMER_MEMBER 'm'   /* target: member hash (16) */
#define CF_TIMER_KEY_MAX (8 + 1 + CF_ID_LEN + CF_NAME_MAX)
#define CF_CONSENT_TIMER "consent"

#define CF_QUERY_SCAN_MAX 10000

typedef struct {
    cf_wf_t *wf;
    const cf_cal_t *cal;
    bool latest;             /* the highest version of its name */
} cf_wf_entry_t;

typedef struct {
    char *topic;
    char *body;
    size_t body_len;
} cf_pub_own_t;

struct cf_engine {
    cf_store_t *store;
    cf_cal_set_t *cals;
    cf_wf_entry_t *wfs;
    size_t nwfs;
    cf_operator_t *operators;   /* owned copies */
    size_t noperators;
    int64_t idem_retention;
    size_t max_document;
    bool manual;
    cf_time_t manual_now;
    char *data_dir;
    /* claim ids: ULID-like, monotonic within a millisecond */
    uint64_t id_last_ms;
    unsigned char id_last_rand[10];
    /* the batch in progress */
    MDB_txn *txn;
    cf_time_t now;
    bool broken;                /* a store write failed: abort and re-run */
    /* published events of the last run */
    cf_pub_own_t *pubs;
    cf_pub_t *pub_view;
    size_t npubs, cappubs;
    msgpack_sbuffer scratch;
    /* access audit: the last key's sequence number */
    uint64_t audit_seq;
    int64_t purge_after;        /* default retention for purge, seconds; 0 none */
    bool compact_pending;       /* a purge committed: compact the file */
};

/* One request being applied. */
typedef struct {
    cf_engine_t *e;
    cf_endpoint_t ep;
    const msgpack_object *req;      /* the request map */
    unsigned role;
    char actor[CF_NAME_MAX + 1];    /* "member" or the operator id */
    bool has_member;                /* portal: the request's member */
    unsigned char member_hash[CF_MEMBER_HASH_LEN];
    /* reply fields beyond ok/id, packed by the op */
    msgpack_sbuffer out;
    msgpack_packer pk;
    uint32_t nout;
    cf_error_t err;
    bool wrote;
} cf_op_t;

/* ops.c */
typedef int (*cf_op_fn)(cf_op_t *op);
#define CF_OPEP_PORTAL   1
#define CF_OPEP_OPERATOR 2
typedef struct {
    const char *name;
    cf_op_fn fn;
    unsigned endpoints;     /* CF_OPEP_* */
    unsigned roles;         /* CF_ROLE_* allowed to call it */
    bool writes;            /* changes the store: `id` required, idempotent */
    bool needs_member;      /* portal: `member` required */
    const char *const *keys;/* allowed request keys beyond op/id/actor/member */
} cf_op_def_t;
const cf_op_def_t *cf_op_find(const char *name, size_t len);
/* privacy.c */
int cf_op_audit(cf_op_t *op);
int cf_op_purge(cf_op_t *op);

/* engine.c: helpers for ops */
void cf_op_key(cf_op_t *op, const char *key);         /* next reply field */
int cf_op_fail(cf_op_t *op, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const cf_wf_entry_t *cf_engine_wf(const cf_engine_t *e, const char *name, size_t len,
                                  int64_t version);   /* version 0: latest */
int cf_engine_put(cf_engine_t *e, cf_db_t db, const void *k, size_t kl, const void *v,
                  size_t vl);
int cf_engine_del(cf_engine_t *e, cf_db_t db, const void *k, size_t kl);
int cf_engine_get(cf_engine_t *e, cf_db_t db, const void *k, size_t kl, MDB_val *v);
int cf_engine_load_claim(cf_engine_t *e, const char *id, size_t len, cf_claim_t *c);
void cf_engine_new_id(cf_engine_t *e, char out[CF_ID_LEN + 1]);
void cf_engine_member_hash(const cf_engine_t *e, const char *canon, unsigned char out[16]);
/* The member's consent into ctx (zeros when none). */
int cf_engine_consent_ctx(cf_engine_t *e, const unsigned char *hash, cf_sm_ctx_t *ctx);
/* Due times of r's timers to start, computed before any write. */
int cf_engine_dues(cf_engine_t *e, const cf_claim_t *c, const cf_sm_result_t *r,
                   cf_time_t *dues);
/* Write one transition of c (already loaded or new): indexes, timers,
 * history (data: packed msgpack or NULL), record; publish.  `created` writes
 * the claim's first history entry `claim.created`. */
int cf_engine_write_transition(cf_engine_t *e, cf_claim_t *c, const cf_sm_result_t *r,
                               const char *event, const char *actor,
                               const char *hist_data, size_t hist_len,
                               const cf_time_t *dues, bool created);
/* Fan an event out to every open claim of a member (consent): those whose
 * state accepts it and changes; ids appended to *moved (packed strings,
 * counted in *nmoved).  0 or a store error. */
int cf_engine_fanout(cf_engine_t *e, const unsigned char *hash, const char *event,
                     msgpack_packer *moved, uint32_t *nmoved);
int cf_engine_publish(cf_engine_t *e, const char *workflow, const char *event,
                      const char *body, size_t len);

/* Record an access to claims[0..n) (each CF_ID_LEN bytes) by actor with op,
 * in the current transaction (the access log, docs/SECURITY.md). */
int cf_engine_audit(cf_engine_t *e, const char *actor, const char *opname,
                    const char *const *claims, size_t n);

/* timers.c */
size_t cf_timer_key(unsigned char *k, cf_time_t due, char kind, const void *target,
                    size_t tlen, const char *name);
/* Fire every timer due at e->now inside the current transaction, at most max. */
int cf_timers_fire_txn(cf_engine_t *e, size_t max, size_t *fired);
/* The due time of the soonest pending timer (claim or member), in e->txn;
 * CF_ENOTFOUND when none is pending. */
int cf_timers_next_due(cf_engine_t *e, cf_time_t *due);
/* Add one year in UTC civil time (29 Feb -> 28 Feb). */
cf_time_t cf_add_year(cf_time_t t);

#endif

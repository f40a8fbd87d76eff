/* proto.h: a request as the engine receives it and the reply it gives
 * (docs/protocol.md) - the types the daemon, the dispatcher and the engine
 * share, and the reply helpers. */
#ifndef CF_PROTO_H
#define CF_PROTO_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "cf_err.h"

/* One operator of the roster (claimflowd's --config `operators:`). */
typedef struct {
    const char *id;        /* operator id, 1..64 bytes [A-Za-z0-9._@-] */
    unsigned role;         /* one CF_ROLE_* bit: handler, supervisor or auditor */
    const char *key;       /* Z85 CURVE public key, or NULL */
} cf_operator_t;

typedef enum {
    CF_EP_PORTAL,     /* the portal backend: acts as role member */
    CF_EP_OPERATOR,   /* operators: `actor` names one in the roster */
} cf_endpoint_t;

typedef struct {
    cf_endpoint_t endpoint;
    /* The operator id proven by the transport (CURVE key), or NULL when the
     * transport proves none; when set, a request's `actor` must equal it. */
    const char *auth_actor;
    const void *frame;        /* the request frame; borrowed for the call */
    size_t len;
} cf_request_t;

typedef struct {
    msgpack_sbuffer body;     /* the reply frame; owned, see cf_reply_fini */
    int code;                 /* 0 when ok: true, else the CF_E* of the error */
    bool wrote;               /* the request changed the store */
    /* The op's name when the request named one the engine knows (a static
     * string), else NULL: for counting by op without parsing the frame
     * again. */
    const char *op;
} cf_reply_t;

/* A replica's view of its cluster (docs/CLUSTER.md), for `ping` and the
 * `not_leader` error: kept by the daemon, borrowed by the engine.  The
 * leader's endpoints are NULL while no leader is known. */
typedef struct {
    const char *role;             /* "leader" or "follower" */
    uint64_t epoch;               /* the leader's epoch (0: none known) */
    const char *node;             /* this node's name */
    const char *leader_node, *leader_portal, *leader_operator, *leader_events;
} cf_cluster_view_t;

/* The cluster fields of a `ping` reply: role, seq (the batch sequence
 * applied here), epoch, node and leader (a map of node, portal, operator and
 * events, or nil): CF_CLUSTER_PING_FIELDS key/value pairs. */
#define CF_CLUSTER_PING_FIELDS 5
void cf_cluster_view_pack(msgpack_packer *pk, const cf_cluster_view_t *v, uint64_t seq);

/* A follower's answer to req: `ping` (version, now, and the cluster
 * fields), or for any other frame the error `not_leader` whose error map
 * carries `leader` (as in ping). */
void cf_reply_follower(cf_reply_t *r, const cf_request_t *req, const cf_cluster_view_t *v,
                       uint64_t seq, int64_t now);

void cf_reply_init(cf_reply_t *r);
void cf_reply_fini(cf_reply_t *r);

/* Make r an error reply {ok: false, error: {code, message}} (for a transport
 * that refuses a frame before the engine sees it, e.g. too_large).  0 or
 * CF_EINTERNAL. */
int cf_reply_error(cf_reply_t *r, int code, const char *message);

/* Make r an error reply that keeps the request's `id` when its frame has a
 * valid one (a batch that could not be stored answers each request). */
void cf_reply_error_req(cf_reply_t *r, int code, const char *message, const cf_request_t *req);

/* Make r an error reply with id (a msgpack object, or NULL for none). */
void cf_reply_error_id(cf_reply_t *r, int code, const char *message, const msgpack_object *id);

#endif

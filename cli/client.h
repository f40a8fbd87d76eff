/* client.h: claimctl's side of the protocol (docs/protocol.md) - build one
 * request map, send it to claimflowd over a DEALER socket, wait a bounded
 * time for the reply, hand back the decoded map.
 *
 * The client never prints: it returns what happened and the CLI (cli.h)
 * decides what a person sees.  It never hangs either: the socket has
 * ZMQ_LINGER 0 and ZMQ_IMMEDIATE, so a daemon that is not there shows up as
 * a socket that never becomes writable, and every wait is a zmq_poll bounded
 * by the timeout given to cf_client_new.
 */
#ifndef CF_CLI_CLIENT_H
#define CF_CLI_CLIENT_H

#include <msgpack.h>

#include "mp.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <zmq.h>

/* -------------------------------------------------------------- requests --- */
/* A request map under construction: string keys pointing at borrowed values.
 * Every string (keys, values) must outlive the cf_client_call that sends it;
 * argv strings and literals do.  Adding more than CF_REQ_MAX keys is a
 * programmer error (assert). */
#define CF_REQ_MAX 16

typedef struct {
    msgpack_object_kv kv[CF_REQ_MAX];
    uint32_t n;
} cf_req_t;

/* Start a request {op: op}. */
void cf_req_init(cf_req_t *r, const char *op);
void cf_req_str(cf_req_t *r, const char *key, const char *val);
void cf_req_int(cf_req_t *r, const char *key, int64_t val);
void cf_req_bool(cf_req_t *r, const char *key, bool val);
/* Any object, e.g. a map built by the caller (borrowed likewise). */
void cf_req_obj(cf_req_t *r, const char *key, msgpack_object val);

/* msgpack_object views of a string or an integer, for building maps. */
msgpack_object cf_mp_str(const char *s);
msgpack_object cf_mp_int(int64_t v);
msgpack_object cf_mp_bool(bool v);

/* Reading replies: cf_mp_get, cf_mp_get_str, cf_mp_streq (the engine's
 * shared helpers, mp.h). */

/* ---------------------------------------------------------------- client --- */
typedef struct cf_client cf_client_t;

/* What cf_client_call can return besides 0.  Outside CF_ERRNO_MAP's range:
 * these are the transport's failures, not the daemon's answers. */
enum {
    CF_CLIENT_EREFUSED    = -100, /* ok: false; *reterr holds code and message */
    CF_CLIENT_EUNREACHABLE = -101, /* no connection within the timeout */
    CF_CLIENT_ETIMEOUT    = -102, /* sent, but no reply within the timeout */
    CF_CLIENT_EPROTO      = -103, /* the reply is not a msgpack map with ok */
    CF_CLIENT_ESYS        = -104, /* a ZeroMQ call failed (errno kept) */
    CF_CLIENT_EHANDSHAKE  = -105, /* the CURVE handshake failed; see
                                     cf_client_handshake_reason */
};

/* Why a handshake failed (cf_client_handshake_reason, cf_client_monitor_read). */
enum {
    CF_CLIENT_HS_NONE = 0,
    CF_CLIENT_HS_REFUSED,     /* the daemon's ZAP handler refused our key */
    CF_CLIENT_HS_MECHANISM,   /* one side talks CURVE, the other does not */
    CF_CLIENT_HS_FAILED,      /* no detail: typically a wrong server key */
};

/* CURVE keys for a client socket, each 40 Z85 characters and a NUL.
 * Borrowed. */
#define CF_CLIENT_KEYLEN 41
typedef struct {
    const char *server;       /* the daemon's public key */
    const char *public_key;   /* ours */
    const char *secret_key;   /* ours */
} cf_client_curve_t;

/* Make sock a CURVE client; call before it connects.  curve NULL: nothing.
 * 0, or -1 with errno. */
int cf_client_curve_apply(void *sock, const cf_client_curve_t *curve);

/* The events a socket monitor needs to see handshake failures. */
#define CF_CLIENT_HS_EVENTS                                                     \
    (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | \
     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

/* A socket monitor's event (and its value) as a CF_CLIENT_HS_* reason;
 * CF_CLIENT_HS_NONE when it is not a handshake failure. */
int cf_client_hs_reason(unsigned event, uint32_t value);

/* Reads one event from a socket monitor's PAIR socket without waiting: its
 * number, and its value into *value; 0 when there is none. */
unsigned cf_client_monitor_event(void *mon, uint32_t *value);

typedef struct {
    char code[48];        /* the protocol's error code, "not_found" */
    char message[320];
} cf_client_error_t;

/* A client for endpoint (copied).  actor (copied; NULL for none) is added to
 * every request but ping; timeout_ms bounds each call's wait (> 0); curve
 * (keys copied by libzmq; NULL for none) makes it a CURVE client.  NULL when
 * ZeroMQ cannot make the socket or endpoint is not a valid ZeroMQ endpoint
 * (errno says which: EINVAL for a bad endpoint). */
cf_client_t *cf_client_new(const char *endpoint, const char *actor, int timeout_ms,
                           const cf_client_curve_t *curve);

/* After CF_CLIENT_EHANDSHAKE: why (CF_CLIENT_HS_*). */
int cf_client_handshake_reason(const cf_client_t *self);

/* Close the socket and context.  Accepts NULL; sets *self_p to NULL. */
void cf_client_destroy(cf_client_t **self_p);

/* The endpoint this client talks to (for messages).  Borrowed. */
const char *cf_client_endpoint(const cf_client_t *self);

/* Bound the following calls' waits by timeout_ms (> 0) instead of
 * cf_client_new's: a list of nodes gives each node a share of the whole. */
void cf_client_set_timeout(cf_client_t *self, int timeout_ms);

/* on: a connection refused while a call waits to send ends it at once as
 * CF_CLIENT_EUNREACHABLE, and one dropped while it waits for the reply as
 * CF_CLIENT_ETIMEOUT, instead of waiting out the timeout for a daemon that
 * may come back - for a client with other nodes to try (default off). */
void cf_client_set_fail_fast(cf_client_t *self, bool on);

/* Send req and wait for its reply.  0: *ret (initialised by the caller with
 * msgpack_unpacked_init, destroyed by the caller with
 * msgpack_unpacked_destroy) holds the reply map, whose `ok` is true.
 * CF_CLIENT_EREFUSED: the daemon said ok: false; *reterr (may be NULL) has
 * the error's code and message, and *ret the whole reply.
 * CF_CLIENT_EUNREACHABLE, CF_CLIENT_ETIMEOUT, CF_CLIENT_EPROTO,
 * CF_CLIENT_ESYS, CF_CLIENT_EHANDSHAKE as above (a failed handshake ends the
 * wait at once: retrying with the same keys cannot succeed).  After ETIMEOUT the client must not be used again
 * (a late reply would answer the wrong request). */
int cf_client_call(cf_client_t *self, const cf_req_t *req, msgpack_unpacked *ret,
                   cf_client_error_t *reterr);

/* A fresh random request id (32 lowercase hex digits) into buf (>= 33). */
char *cf_client_new_id(char *buf);

#endif

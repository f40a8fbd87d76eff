/* zap.h: claimflowd's ZAP handler (ZeroMQ RFC 27) - who may complete a
 * CURVE handshake on which socket (docs/SECURITY.md).
 *
 * libzmq asks the handler about every CURVE handshake on a socket of the
 * same context, naming the socket's ZMQ_ZAP_DOMAIN and the client's public
 * key.  The handler answers from three allow-lists built from the config:
 *
 *   domain "portal"    the keys of `portal: {keys: [...]}`;
 *   domain "operator"  the operators' `key`s; the reply's user id is the
 *                      operator id, which libzmq attaches to every message
 *                      of that connection ("User-Id"), so the daemon knows
 *                      who is asking without trusting the request;
 *   domain "events"    any key of either list.
 *
 * Anything else - an unknown key, another mechanism, an unknown domain - is
 * refused (status 400) and the handshake fails: nothing the client sends
 * reaches the engine.
 *
 * Without CURVE the handler runs too, for the events socket alone (the only
 * socket given a ZAP domain then, so the only one whose NULL-mechanism
 * handshakes libzmq brings here): it admits any client there, as long as the
 * daemon's gate (cf_zap_set_gate) agrees.  With or without CURVE, the gate
 * decides every events handshake the keys allow: a refusal is status 400
 * ("too many subscribers"); libzmq's client does not retry after it.  That is how the
 * daemon caps its subscribers (docs/SECURITY.md): libzmq bounds a PUB
 * socket's queue per subscriber, never in total.
 *
 * The handler is a ZMQ_REP socket bound at inproc://zeromq.zap.01, polled in
 * the daemon's own loop (one thread, like everything else there); it must be
 * bound before any CURVE socket binds.
 */
#ifndef CF_ZAP_H
#define CF_ZAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define CF_ZAP_PORTAL   "portal"
#define CF_ZAP_OPERATOR "operator"
#define CF_ZAP_EVENTS   "events"

typedef struct cf_zap cf_zap_t;

/* Bind the handler in ctx with the allow-lists of cfg (copied); cfg NULL or
 * without `curve:` makes a handler for NULL-mechanism handshakes on the
 * events socket only.  0 and a new handler (free with cf_zap_destroy, before
 * the context is terminated), or CF_EINTERNAL (out of memory, or the bind
 * failed: reterr says which). */
int cf_zap_new(void *ctx, const cf_config_t *cfg, cf_zap_t **ret, cf_error_t *reterr);

/* Close the socket and free the lists.  Accepts NULL; sets *self_p to NULL. */
void cf_zap_destroy(cf_zap_t **self_p);

/* The REP socket, for zmq_poll.  Borrowed. */
void *cf_zap_socket(const cf_zap_t *self);

/* Answer every request waiting on the socket, without blocking.  Returns
 * the number answered, or -1 on a socket error (zmq_errno). */
int cf_zap_handle(cf_zap_t *self);

/* Asked about every handshake on the events socket that the keys allow:
 * true admits it, false refuses it with status 400.  NULL (the default)
 * admits all.  arg is passed back, borrowed. */
typedef bool cf_zap_gate_fn(void *arg);
void cf_zap_set_gate(cf_zap_t *self, cf_zap_gate_fn *gate, void *arg);

/* Handshakes refused so far: for their keys, and by the gate. */
uint64_t cf_zap_denied(const cf_zap_t *self);
uint64_t cf_zap_gated(const cf_zap_t *self);

#endif

/* zap.c: the ZAP handler (RFC 27) for claimflowd's CURVE sockets.
 *
 * A request is version "1.0", request id, domain, address, routing id,
 * mechanism, then the mechanism's credentials (CURVE: the client's 32-byte
 * public key).  The reply is version, request id, status code, status text,
 * user id, metadata.  A REP socket keeps the envelope for us, and must
 * answer every request it takes, so even a malformed one gets a reply
 * (status 400): a REP that skipped one would refuse every later request,
 * and with it every later handshake.
 *
 * The lists are flat arrays of binary keys searched linearly: at most
 * 20,000 keys of 32 bytes, read only during handshakes.  A hash table was
 * rejected as more code than a handshake's cost justifies.  Keys are public,
 * so the comparison need not be constant-time.
 *
 * Without CURVE only the events socket has a ZAP domain, so only its
 * NULL-mechanism handshakes come here, and the keys decide nothing: the gate
 * alone (the daemon's subscriber cap) does.
 *
 * Nothing here logs: the daemon reports the count of refusals when it stops.
 * A refused client's key or address is not logged (an attacker could fill
 * the log; the address is not ours to keep).
 */
#include "zap.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#define S_ZAP_ENDPOINT "inproc://zeromq.zap.01"
#define S_MAX_FRAMES 8
#define S_ID_MAX 64

typedef struct {
    uint8_t key[CF_KEY_BIN_LEN];
    char id[S_ID_MAX + 1];          /* operator id, or "" for a portal key */
} s_entry_t;

struct cf_zap {
    void *sock;
    bool curve;                     /* false: NULL mechanism, events only */
    s_entry_t *portal;
    size_t nportal;
    s_entry_t *ops;
    size_t nops;
    cf_zap_gate_fn *gate;
    void *gate_arg;
    uint64_t denied, gated;
};

/* The allow-lists of cfg's keys; -1 when out of memory. */
static int s_load_keys(cf_zap_t *self, const cf_config_t *cfg)
{
    if ((cfg->nportal_keys && !(self->portal = calloc(cfg->nportal_keys, sizeof *self->portal))) ||
        (cfg->noperators && !(self->ops = calloc(cfg->noperators, sizeof *self->ops))))
        return -1;
    /* The config checked every key: decoding cannot fail here. */
    for (size_t i = 0; i < cfg->nportal_keys; i++)
        if (cf_key_z85_decode(cfg->portal_keys[i], CF_KEY_Z85_LEN, self->portal[self->nportal].key))
            self->nportal++;
    for (size_t i = 0; i < cfg->noperators; i++) {
        const cf_operator_t *o = &cfg->operators[i];
        if (!o->key || strlen(o->id) > S_ID_MAX ||
            !cf_key_z85_decode(o->key, strlen(o->key), self->ops[self->nops].key))
            continue;
        snprintf(self->ops[self->nops].id, sizeof self->ops[self->nops].id, "%s", o->id);
        self->nops++;
    }
    return 0;
}

int cf_zap_new(void *ctx, const cf_config_t *cfg, cf_zap_t **ret, cf_error_t *reterr)
{
    cf_zap_t *self = calloc(1, sizeof *self);
    if (!self)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    self->curve = cfg && cfg->curve;
    if (self->curve && s_load_keys(self, cfg) != 0) {
        cf_zap_destroy(&self);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    int linger = 0;
    if (!(self->sock = zmq_socket(ctx, ZMQ_REP)) ||
        zmq_setsockopt(self->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
        zmq_bind(self->sock, S_ZAP_ENDPOINT) != 0) {
        int err = zmq_errno();
        cf_zap_destroy(&self);
        return cf_error_set(reterr, CF_EINTERNAL, "cannot start the ZAP handler: %s",
                            zmq_strerror(err));
    }
    *ret = self;
    return 0;
}

void cf_zap_destroy(cf_zap_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cf_zap_t *self = *self_p;
    if (self->sock)
        zmq_close(self->sock);
    free(self->portal);
    free(self->ops);
    free(self);
    *self_p = NULL;
}

void *cf_zap_socket(const cf_zap_t *self)
{
    return self->sock;
}

uint64_t cf_zap_denied(const cf_zap_t *self)
{
    return self->denied;
}

uint64_t cf_zap_gated(const cf_zap_t *self)
{
    return self->gated;
}

void cf_zap_set_gate(cf_zap_t *self, cf_zap_gate_fn *gate, void *arg)
{
    self->gate = gate;
    self->gate_arg = arg;
}

static const s_entry_t *s_find(const s_entry_t *list, size_t n, const void *key)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(list[i].key, key, CF_KEY_BIN_LEN) == 0)
            return &list[i];
    return NULL;
}

static bool s_frame_eq(zmq_msg_t *m, const char *s)
{
    size_t n = strlen(s);
    return zmq_msg_size(m) == n && memcmp(zmq_msg_data(m), s, n) == 0;
}

/* What the keys say about one request: the user id to grant, or NULL to
 * refuse. */
static const char *s_keys_decide(const cf_zap_t *self, zmq_msg_t *f, size_t n)
{
    /* version, request id, domain, address, routing id, mechanism[, key] */
    if (!self->curve)
        return n == 6 && s_frame_eq(&f[0], "1.0") && s_frame_eq(&f[5], "NULL") &&
                       s_frame_eq(&f[2], CF_ZAP_EVENTS)
                   ? "" : NULL;
    if (n != 7 || !s_frame_eq(&f[0], "1.0") || !s_frame_eq(&f[5], "CURVE") ||
        zmq_msg_size(&f[6]) != CF_KEY_BIN_LEN)
        return NULL;
    const void *key = zmq_msg_data(&f[6]);
    const s_entry_t *op = s_find(self->ops, self->nops, key);
    const s_entry_t *pk = s_find(self->portal, self->nportal, key);
    if (s_frame_eq(&f[2], CF_ZAP_OPERATOR))
        return op ? op->id : NULL;
    if (s_frame_eq(&f[2], CF_ZAP_PORTAL))
        return pk ? "portal" : NULL;
    if (s_frame_eq(&f[2], CF_ZAP_EVENTS))
        return op ? op->id : pk ? "portal" : NULL;
    return NULL;
}

static int s_send(void *sock, const void *data, size_t len, bool more)
{
    return zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

/* Take one request and answer it: 1 answered, 0 none waiting, -1 error. */
static int s_handle_one(cf_zap_t *self)
{
    zmq_msg_t f[S_MAX_FRAMES];
    size_t n = 0, total = 0;
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, self->sock, ZMQ_DONTWAIT) < 0) {
            int err = zmq_errno();
            zmq_msg_close(&m);
            for (size_t i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            if (total == 0 && (err == EAGAIN || err == EINTR))
                return 0;
            errno = err;
            return -1;
        }
        bool more = zmq_msg_more(&m);
        total++;
        if (n < S_MAX_FRAMES) {
            zmq_msg_init(&f[n]);
            zmq_msg_move(&f[n], &m);
            n++;
        }
        zmq_msg_close(&m);
        if (!more)
            break;
    }
    const char *user = total == n ? s_keys_decide(self, f, n) : NULL;
    const char *code = "200", *text = "OK";
    if (!user) {
        self->denied++;
        code = "400", text = "not allowed";
    } else if (s_frame_eq(&f[2], CF_ZAP_EVENTS) && self->gate && !self->gate(self->gate_arg)) {
        self->gated++;
        user = NULL;
        /* Not 300 ("try later"): libzmq's NULL mechanism answers that with
         * silence, and the connection hangs until the handshake times out,
         * holding its place.  A 400 closes it at once. */
        code = "400", text = "too many subscribers";
    }
    /* The request id goes back as it came; an empty one if there was none. */
    int rc = s_send(self->sock, "1.0", 3, true);
    if (rc == 0)
        rc = s_send(self->sock, n > 1 ? zmq_msg_data(&f[1]) : "", n > 1 ? zmq_msg_size(&f[1]) : 0,
                    true);
    if (rc == 0)
        rc = s_send(self->sock, code, 3, true);
    if (rc == 0)
        rc = s_send(self->sock, text, strlen(text), true);
    if (rc == 0)
        rc = s_send(self->sock, user ? user : "", user ? strlen(user) : 0, true);
    if (rc == 0)
        rc = s_send(self->sock, "", 0, false);
    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return rc < 0 ? -1 : 1;
}

int cf_zap_handle(cf_zap_t *self)
{
    int count = 0;
    for (;;) {
        int rc = s_handle_one(self);
        if (rc < 0)
            return -1;
        if (rc == 0)
            return count;
        count++;
    }
}

/* client.c: one DEALER socket to claimflowd's operator endpoint.
 *
 * Design: a call is strictly request-then-reply on one socket, so the reply
 * to a request is the next message that arrives (the daemon answers a DEALER
 * in the order requests were sent).  Requests go out as one frame, no empty
 * delimiter; whatever envelope frames come back are skipped and the last
 * frame is the reply.
 *
 * Never hanging is the point of the option choice.  ZMQ_IMMEDIATE queues
 * nothing for a peer that is not connected, so "can I send?" (ZMQ_POLLOUT)
 * is exactly "is the daemon there?", and a dead daemon is told apart from a
 * slow one: unreachable (never writable) vs timeout (sent, no answer).
 * ZMQ_LINGER 0 makes closing the socket drop anything unsent instead of
 * blocking zmq_ctx_term.  A REQ socket was rejected: after a timeout its state
 * machine refuses to send again, and it cannot tell the two failures apart.
 *
 * CURVE (docs/SECURITY.md): with ZMQ_IMMEDIATE a socket whose handshake is
 * refused never becomes writable either, so "refused" would look like "not
 * running".  A socket monitor reports handshake failures; the first one ends
 * the wait with CF_CLIENT_EHANDSHAKE and a reason, since trying again with
 * the same keys cannot succeed.
 */
#include "client.h"
#include "mpcheck.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

struct cf_client {
    void *ctx;
    void *sock;
    void *mon;                 /* handshake failures of sock */
    int hs_reason;             /* CF_CLIENT_HS_* after EHANDSHAKE */
    bool fail_fast;            /* a refused connection or a drop ends the wait */
    char *endpoint;
    char *actor;
    int timeout_ms;
};

/* -------------------------------------------------------------- requests --- */
msgpack_object cf_mp_str(const char *s)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_STR;
    o.via.str.ptr = s;
    o.via.str.size = (uint32_t)strlen(s);
    return o;
}

msgpack_object cf_mp_int(int64_t v)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    if (v >= 0) {
        o.type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        o.via.u64 = (uint64_t)v;
    } else {
        o.type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        o.via.i64 = v;
    }
    return o;
}

msgpack_object cf_mp_bool(bool v)
{
    msgpack_object o;
    memset(&o, 0, sizeof o);
    o.type = MSGPACK_OBJECT_BOOLEAN;
    o.via.boolean = v;
    return o;
}

void cf_req_obj(cf_req_t *r, const char *key, msgpack_object val)
{
    assert(r->n < CF_REQ_MAX);
    r->kv[r->n].key = cf_mp_str(key);
    r->kv[r->n].val = val;
    r->n++;
}

void cf_req_init(cf_req_t *r, const char *op)
{
    r->n = 0;
    cf_req_str(r, "op", op);
}

void cf_req_str(cf_req_t *r, const char *key, const char *val) { cf_req_obj(r, key, cf_mp_str(val)); }
void cf_req_int(cf_req_t *r, const char *key, int64_t val) { cf_req_obj(r, key, cf_mp_int(val)); }
void cf_req_bool(cf_req_t *r, const char *key, bool val) { cf_req_obj(r, key, cf_mp_bool(val)); }

/* ------------------------------------------------------- reading replies --- */
/* ----------------------------------------------------------------- curve --- */
int cf_client_curve_apply(void *sock, const cf_client_curve_t *curve)
{
    if (!curve)
        return 0;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, curve->server, CF_CLIENT_KEYLEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, curve->public_key, CF_CLIENT_KEYLEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, curve->secret_key, CF_CLIENT_KEYLEN) != 0)
        return -1;
    return 0;
}

int cf_client_hs_reason(unsigned event, uint32_t value)
{
    switch (event) {
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
        return CF_CLIENT_HS_REFUSED;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
        return value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH ? CF_CLIENT_HS_MECHANISM
                                                                  : CF_CLIENT_HS_FAILED;
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        return CF_CLIENT_HS_FAILED;
    default:
        return CF_CLIENT_HS_NONE;
    }
}

/* A monitor of sock's handshake failures on a PAIR socket of ctx (one per
 * socket: libzmq allows no second).  0, or -1 with errno. */
static int s_monitor_start(void *ctx, void *sock, void **ret_mon)
{
    char ep[80];
    int zero = 0, err;
    snprintf(ep, sizeof ep, "inproc://claimctl.client.monitor.%p", sock);
    if (zmq_socket_monitor(sock, ep, CF_CLIENT_HS_EVENTS | ZMQ_EVENT_CONNECT_RETRIED |
                                         ZMQ_EVENT_DISCONNECTED) != 0)
        return -1;
    void *mon = zmq_socket(ctx, ZMQ_PAIR);
    if (!mon)
        return -1;
    if (zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero) != 0 || zmq_connect(mon, ep) != 0) {
        err = errno;
        zmq_close(mon);
        errno = err;
        return -1;
    }
    *ret_mon = mon;
    return 0;
}

unsigned cf_client_monitor_event(void *mon, uint32_t *value)
{
    zmq_msg_t m;
    unsigned ev = 0;
    *value = 0;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) >= 0 && zmq_msg_size(&m) >= 6) {
        uint16_t e;
        memcpy(&e, zmq_msg_data(&m), 2);
        memcpy(value, (char *)zmq_msg_data(&m) + 2, 4);
        ev = e;
    }
    /* The second frame (the endpoint) is not needed. */
    while (zmq_msg_more(&m)) {
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, mon, ZMQ_DONTWAIT) < 0)
            break;
    }
    zmq_msg_close(&m);
    return ev;
}

int cf_client_handshake_reason(const cf_client_t *self)
{
    return self->hs_reason;
}

/* ---------------------------------------------------------------- client --- */
cf_client_t *cf_client_new(const char *endpoint, const char *actor, int timeout_ms,
                           const cf_client_curve_t *curve)
{
    assert(endpoint && timeout_ms > 0);
    int zero = 0, one = 1, err;
    cf_client_t *self = calloc(1, sizeof *self);
    if (!self)
        return NULL;
    self->timeout_ms = timeout_ms;
    if (!(self->endpoint = strdup(endpoint)) || (actor && !(self->actor = strdup(actor))))
        goto out_free;
    if (!(self->ctx = zmq_ctx_new()))
        goto out_free;
    if (!(self->sock = zmq_socket(self->ctx, ZMQ_DEALER)))
        goto out_ctx;
    if (zmq_setsockopt(self->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(self->sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        cf_client_curve_apply(self->sock, curve) != 0 ||
        s_monitor_start(self->ctx, self->sock, &self->mon) != 0 ||
        zmq_connect(self->sock, endpoint) != 0)
        goto out_sock;
    return self;

out_sock:
    err = errno;
    if (self->mon)
        zmq_close(self->mon);
    errno = err;
    err = errno;
    zmq_close(self->sock);
    errno = err;
out_ctx:
    err = errno;
    zmq_ctx_term(self->ctx);
    errno = err;
out_free:
    err = errno;
    free(self->actor);
    free(self->endpoint);
    free(self);
    errno = err;
    return NULL;
}

void cf_client_destroy(cf_client_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    cf_client_t *self = *self_p;
    zmq_close(self->mon);
    zmq_close(self->sock);
    zmq_ctx_term(self->ctx);
    free(self->actor);
    free(self->endpoint);
    free(self);
    *self_p = NULL;
}

const char *cf_client_endpoint(const cf_client_t *self) { return self->endpoint; }

void cf_client_set_timeout(cf_client_t *self, int timeout_ms)
{
    assert(timeout_ms > 0);
    self->timeout_ms = timeout_ms;
}

void cf_client_set_fail_fast(cf_client_t *self, bool on)
{
    self->fail_fast = on;
}

static int64_t s_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until the socket has `events` or the deadline passes: 1 ready,
 * 0 deadline (or, failing fast, a refused connection while waiting to send
 * or a dropped one while waiting for the reply), -1 ZeroMQ error, -2 a
 * handshake failed (self->hs_reason).  EINTR (a signal) just polls again. */
static int s_wait(cf_client_t *self, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - s_now_ms();
        if (left < 0)
            left = 0;
        zmq_pollitem_t items[2] = {{self->sock, 0, events, 0}, {self->mon, 0, ZMQ_POLLIN, 0}};
        int rc = zmq_poll(items, 2, (long)left);
        if (rc > 0 && (items[0].revents & events))
            return 1;
        if (rc > 0 && (items[1].revents & ZMQ_POLLIN)) {
            uint32_t value;
            unsigned ev = cf_client_monitor_event(self->mon, &value);
            if ((self->hs_reason = cf_client_hs_reason(ev, value)) != CF_CLIENT_HS_NONE)
                return -2;
            if (self->fail_fast && ((ev == ZMQ_EVENT_CONNECT_RETRIED && (events & ZMQ_POLLOUT)) ||
                                    (ev == ZMQ_EVENT_DISCONNECTED && (events & ZMQ_POLLIN))))
                return 0;
        }
        if (rc == 0 && left == 0)
            return 0;
        if (rc < 0 && errno != EINTR)
            return -1;
    }
}

/* Receive one whole message; its last frame into *ret (the caller frees it
 * with zmq_msg_close).  0 or -1. */
static int s_recv_last(void *sock, zmq_msg_t *ret)
{
    zmq_msg_init(ret);
    for (;;) {
        zmq_msg_close(ret);
        zmq_msg_init(ret);
        if (zmq_msg_recv(ret, sock, ZMQ_DONTWAIT) < 0)
            return -1;
        if (!zmq_msg_more(ret))
            return 0;
    }
}

int cf_client_call(cf_client_t *self, const cf_req_t *req, msgpack_unpacked *ret,
                   cf_client_error_t *reterr)
{
    int64_t deadline = s_now_ms() + self->timeout_ms;
    msgpack_object_kv kv[CF_REQ_MAX + 1];
    uint32_t n = req->n;
    memcpy(kv, req->kv, n * sizeof kv[0]);
    bool ping = n > 0 && cf_mp_streq(&kv[0].val, "ping");
    if (self->actor && !ping) {
        kv[n].key = cf_mp_str("actor");
        kv[n].val = cf_mp_str(self->actor);
        n++;
    }
    msgpack_object map;
    memset(&map, 0, sizeof map);
    map.type = MSGPACK_OBJECT_MAP;
    map.via.map.size = n;
    map.via.map.ptr = kv;

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    int rc = msgpack_pack_object(&pk, map) == 0 ? 0 : CF_CLIENT_ESYS;
    if (rc != 0)
        goto out_buf;

    switch (s_wait(self, ZMQ_POLLOUT, deadline)) {
    case 0: rc = CF_CLIENT_EUNREACHABLE; goto out_buf;
    case -1: rc = CF_CLIENT_ESYS; goto out_buf;
    case -2: rc = CF_CLIENT_EHANDSHAKE; goto out_buf;
    default: break;
    }
    if (zmq_send(self->sock, sb.data, sb.size, ZMQ_DONTWAIT) < 0) {
        /* Writable a moment ago, gone now: the peer dropped in between. */
        rc = errno == EAGAIN ? CF_CLIENT_EUNREACHABLE : CF_CLIENT_ESYS;
        goto out_buf;
    }
    switch (s_wait(self, ZMQ_POLLIN, deadline)) {
    case 0: rc = CF_CLIENT_ETIMEOUT; goto out_buf;
    case -1: rc = CF_CLIENT_ESYS; goto out_buf;
    case -2: rc = CF_CLIENT_EHANDSHAKE; goto out_buf;
    default: break;
    }

    zmq_msg_t msg;
    if (s_recv_last(self->sock, &msg) != 0) {
        rc = CF_CLIENT_ESYS;
        goto out_msg;
    }
    /* msgpack_unpack_next points strings into the buffer it parsed, so the
     * buffer must live as long as *ret: a copy, freed with ret's zone. */
    size_t off = 0, len = zmq_msg_size(&msg);
    char *copy = malloc(len ? len : 1);
    if (!copy) {
        rc = CF_CLIENT_ESYS;
        goto out_msg;
    }
    memcpy(copy, zmq_msg_data(&msg), len);
    if (cf_mpcheck(copy, len, NULL) != 0 ||
        msgpack_unpack_next(ret, copy, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        !ret->zone || !msgpack_zone_push_finalizer(ret->zone, free, copy)) {
        free(copy);
        msgpack_unpacked_destroy(ret);
        msgpack_unpacked_init(ret);
        rc = CF_CLIENT_EPROTO;
        goto out_msg;
    }
    if (ret->data.type != MSGPACK_OBJECT_MAP) {
        rc = CF_CLIENT_EPROTO;
        goto out_msg;
    }
    const msgpack_object *ok = cf_mp_get(&ret->data, "ok");
    if (!ok || ok->type != MSGPACK_OBJECT_BOOLEAN) {
        rc = CF_CLIENT_EPROTO;
        goto out_msg;
    }
    if (!ok->via.boolean) {
        rc = CF_CLIENT_EREFUSED;
        if (reterr) {
            const msgpack_object *e = cf_mp_get(&ret->data, "error");
            if (!cf_mp_get_str(e, "code", reterr->code, sizeof reterr->code))
                snprintf(reterr->code, sizeof reterr->code, "internal");
            if (!cf_mp_get_str(e, "message", reterr->message, sizeof reterr->message))
                snprintf(reterr->message, sizeof reterr->message, "(no message)");
        }
    }
out_msg:
    zmq_msg_close(&msg);
out_buf:
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

char *cf_client_new_id(char *buf)
{
    unsigned char r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t n = getrandom(r + got, sizeof r - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        /* No entropy source at all is not something a CLI can mend; an id
         * from time and pid still avoids accidental reuse. */
        if (n < 0) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            snprintf(buf, 33, "%016llx%08x%08x", (unsigned long long)ts.tv_sec,
                     (unsigned)ts.tv_nsec, (unsigned)getpid());
            return buf;
        }
        got += (size_t)n;
    }
    for (size_t i = 0; i < sizeof r; i++)
        snprintf(buf + 2 * i, 3, "%02x", r[i]);
    return buf;
}

/* bench_load.c: the load generator - clients driving the real daemon over
 * ZeroMQ through whole claim lifecycles, inquiries and queries.
 *
 * Scripts.  A script is a chain of dependent requests: a health_claim's
 * lifecycle (create, referral upload, consent, decision, guarantee,
 * treatment: 6 requests, 6 transitions, each member new), an inquiry about a
 * finished claim (create, answer: 2 and 2) or one read (the handler's queue
 * page, a member's claims, a claim, a history).  A script has at most one
 * request outstanding; a client (one portal and one operator DEALER) runs
 * several scripts at once, so several requests are in flight per socket and
 * the daemon's group commit has something to group.
 *
 * Closed loop: each client keeps --inflight scripts going; a reply sends the
 * script's next request at once.  That finds the peak rate.  Open loop:
 * requests are due at a fixed rate, on a schedule that does not wait for the
 * daemon; each takes the next step of a script whose last reply is in, or
 * starts a new script.  Latency is measured from the request's due time, not
 * from when it was sent, so a stall of the daemon (or of this program) shows
 * in the figures instead of silently lowering the rate (coordinated
 * omission).
 *
 * One thread drives every socket.  zmq_poll sleeps in whole milliseconds,
 * too coarse for a schedule at 5,000 requests a second, so the loop polls the
 * sockets' ZMQ_FD with ppoll (nanoseconds) and, as libzmq requires with that
 * edge-triggered descriptor, drains a socket whenever it was used or its
 * descriptor woke us, checking ZMQ_EVENTS until no message is left.
 *
 * The store phase runs a fixed number of lifecycles (no inquiries, no
 * reads) to the end, so the store's size can be divided by finished claims.
 *
 * Every reply is checked: ok: true, the echoed id (which also proves the
 * per-socket order), and the state the claim reached.  A wrong reply ends its
 * script and is counted; --quick fails on any.
 */
#include "bench.h"

#include <errno.h>
#include <inttypes.h>
#include <msgpack.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A guarantee's valid_until: 180 days from the real clock's today. */
static const char *s_valid_until(void)
{
    static char buf[16];
    if (!buf[0]) {
        time_t t = time(NULL) + 180 * 86400;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(buf, sizeof buf, "%Y-%m-%d", &tm);
    }
    return buf;
}
#include <zmq.h>

typedef struct {
    bench_script_t sc;
    int client;
    uint64_t member_n;
    bool ready;            /* open loop: waiting for its next due time */
} s_slot_t;

typedef struct {
    uint32_t slot;
    bench_kind_t kind;
    uint64_t seq;
    uint64_t sent_ns, due_ns;
} s_out_t;

typedef struct {
    void *z;
    int fd;
    bool dirty;
    s_out_t *ring;          /* outstanding requests, in send order */
    size_t head, n, cap;
} s_sock_t;

typedef struct {
    char claim[32];
    char member[12];
} s_done_t;

#define DONE_RING 4096

/* Request ids and members are unique across the phases of one run, which
 * may share a daemon: an id used twice would be answered `conflict`. */
static uint64_t s_req_seq;
static uint64_t s_member_next = 1;

typedef struct {
    const bench_opts_t *o;
    bench_load_t *r;
    void *ctx;
    int nclients;
    s_sock_t *socks;         /* client c: socks[2c] portal, socks[2c+1] operator */
    struct pollfd *pfds;
    s_slot_t *slots;
    size_t nslots, capslots;
    uint32_t *readyq;        /* open loop: slots waiting for a due time */
    size_t rq_head, rq_n, rq_cap;
    uint32_t *freeq;         /* open loop: finished slot objects to reuse */
    size_t nfree, capfree;
    s_done_t done[DONE_RING];
    uint64_t ndone;
    long limit, started;     /* store phase: lifecycles to run, started so far */
    uint64_t rng;
    uint64_t t_meas, t_end;  /* window, ns */
    bool stopping;           /* past t_end: no new requests */
    uint64_t outstanding;
    int next_client;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char *doc;
    int mix_total;
} s_load_t;

/* ========================================================== sockets === */

static void s_out_push(s_sock_t *s, const s_out_t *o)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        s_out_t *v = malloc(cap * sizeof *v);
        if (!v) {
            fprintf(stderr, "claimflow-bench: out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < s->n; i++)
            v[i] = s->ring[(s->head + i) % s->cap];
        free(s->ring);
        s->ring = v;
        s->head = 0;
        s->cap = cap;
    }
    s->ring[(s->head + s->n) % s->cap] = *o;
    s->n++;
}

static bool s_out_pop(s_sock_t *s, s_out_t *o)
{
    if (s->n == 0)
        return false;
    *o = s->ring[s->head];
    s->head = (s->head + 1) % s->cap;
    s->n--;
    return true;
}

static void s_readyq_push(s_load_t *L, uint32_t slot)
{
    if (L->rq_n == L->rq_cap) {
        size_t cap = L->rq_cap ? L->rq_cap * 2 : 1024;
        uint32_t *v = malloc(cap * sizeof *v);
        if (!v)
            exit(1);
        for (size_t i = 0; i < L->rq_n; i++)
            v[i] = L->readyq[(L->rq_head + i) % L->rq_cap];
        free(L->readyq);
        L->readyq = v;
        L->rq_head = 0;
        L->rq_cap = cap;
    }
    L->readyq[(L->rq_head + L->rq_n) % L->rq_cap] = slot;
    L->rq_n++;
}

static uint32_t s_slot_new(s_load_t *L)
{
    if (L->nfree)
        return L->freeq[--L->nfree];
    if (L->nslots == L->capslots) {
        size_t cap = L->capslots ? L->capslots * 2 : 256;
        s_slot_t *v = realloc(L->slots, cap * sizeof *v);
        if (!v)
            exit(1);
        L->slots = v;
        L->capslots = cap;
    }
    memset(&L->slots[L->nslots], 0, sizeof L->slots[0]);
    return (uint32_t)L->nslots++;
}

static void s_slot_free(s_load_t *L, uint32_t slot)
{
    if (L->nfree == L->capfree) {
        size_t cap = L->capfree ? L->capfree * 2 : 256;
        uint32_t *v = realloc(L->freeq, cap * sizeof *v);
        if (!v)
            exit(1);
        L->freeq = v;
        L->capfree = cap;
    }
    L->freeq[L->nfree++] = slot;
}

/* ========================================================== scripts === */

const char *bench_life_want(int step)
{
    static const char *const want[] = {"awaiting_referral", "awaiting_consent", NULL,
                                       "approved", "guarantee_issued", "in_treatment"};
    return step >= 0 && step < 6 ? want[step] : NULL;
}

int bench_pack_step(msgpack_packer *pk, const bench_script_t *s, const char *id, char *doc,
                    size_t doc_len, bench_kind_t *kind)
{
    int ep = BENCH_EP_P;
    *kind = BENCH_K_READ;
    if (s->script == BENCH_S_LIFE) {
        switch (s->step) {
        case 0:
            *kind = BENCH_K_CREATE;
            msgpack_pack_map(pk, 5);
            bench_mp_kv(pk, "op", "create");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "member", s->member);
            bench_mp_kv(pk, "workflow", "health_claim");
            cf_pack_str(pk, "data");
            msgpack_pack_map(pk, 3);
            bench_mp_kv(pk, "member", s->member);
            bench_mp_kv(pk, "treatment", "physiotherapy");
            bench_mp_kv(pk, "description", "knee after a fall");
            break;
        case 1: {
            *kind = BENCH_K_ATTACH;
            msgpack_pack_map(pk, 7);
            bench_mp_kv(pk, "op", "attach");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "member", s->member);
            bench_mp_kv(pk, "claim", s->claim);
            bench_mp_kv(pk, "kind", "referral");
            bench_mp_kv(pk, "content_type", "application/pdf");
            cf_pack_str(pk, "body");
            /* Each referral its own bytes: documents are stored by hash,
             * and real referrals do not repeat. */
            size_t n = doc_len < 64 ? 64 : doc_len;
            int w = snprintf(doc + 9, 48, "%% %.26s %.16s\n", s->claim, id);
            doc[9 + w] = ' ';
            msgpack_pack_bin(pk, n);
            msgpack_pack_bin_body(pk, doc, n);
            break;
        }
        case 2:
            *kind = BENCH_K_CONSENT;
            msgpack_pack_map(pk, 3);
            bench_mp_kv(pk, "op", "consent.give");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "member", s->member);
            break;
        case 3:
            *kind = BENCH_K_DECIDE;
            ep = BENCH_EP_O;
            msgpack_pack_map(pk, 5);
            bench_mp_kv(pk, "op", "send");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "actor", "hanne");
            bench_mp_kv(pk, "claim", s->claim);
            bench_mp_kv(pk, "event", "decision.approved");
            break;
        case 4:
            *kind = BENCH_K_DECIDE;
            ep = BENCH_EP_O;
            msgpack_pack_map(pk, 6);
            bench_mp_kv(pk, "op", "send");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "actor", "hanne");
            bench_mp_kv(pk, "claim", s->claim);
            bench_mp_kv(pk, "event", "guarantee.issued");
            cf_pack_str(pk, "data");
            msgpack_pack_map(pk, 3);
            cf_pack_str(pk, "amount");
            msgpack_pack_int64(pk, 150000);
            bench_mp_kv(pk, "provider", "Fysioterapi Nord");
            /* health_claim 4 takes a valid_until within a year of today */
            bench_mp_kv(pk, "valid_until", s_valid_until());
            break;
        default:
            *kind = BENCH_K_TREAT;
            msgpack_pack_map(pk, 5);
            bench_mp_kv(pk, "op", "send");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "member", s->member);
            bench_mp_kv(pk, "claim", s->claim);
            bench_mp_kv(pk, "event", "treatment.started");
            break;
        }
    } else if (s->script == BENCH_S_INQUIRY) {
        *kind = BENCH_K_INQUIRY;
        if (s->step == 0) {
            msgpack_pack_map(pk, 5);
            bench_mp_kv(pk, "op", "create");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "member", s->member);
            bench_mp_kv(pk, "workflow", "inquiry");
            cf_pack_str(pk, "data");
            msgpack_pack_map(pk, 2);
            bench_mp_kv(pk, "claim", s->claim);
            bench_mp_kv(pk, "text", "When may I start the treatment?");
        } else {
            ep = BENCH_EP_O;
            msgpack_pack_map(pk, 6);
            bench_mp_kv(pk, "op", "send");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "actor", "hanne");
            bench_mp_kv(pk, "claim", s->inquiry);
            bench_mp_kv(pk, "event", "inquiry.answered");
            cf_pack_str(pk, "data");
            msgpack_pack_map(pk, 1);
            bench_mp_kv(pk, "text", "You may start it now: the guarantee is issued.");
        }
    } else {
        switch (s->read_kind) {
        case 0: /* the handler's queue, first page */
            ep = BENCH_EP_O;
            msgpack_pack_map(pk, 6);
            bench_mp_kv(pk, "op", "query");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "actor", "hanne");
            bench_mp_kv(pk, "workflow", "health_claim");
            bench_mp_kv(pk, "state", "in_review");
            cf_pack_str(pk, "limit");
            msgpack_pack_int64(pk, 20);
            break;
        case 1: /* a member's claims */
            msgpack_pack_map(pk, 3);
            bench_mp_kv(pk, "op", "query");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "member", s->member);
            break;
        case 2:
            msgpack_pack_map(pk, 4);
            bench_mp_kv(pk, "op", "get");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "member", s->member);
            bench_mp_kv(pk, "claim", s->claim);
            break;
        default:
            ep = BENCH_EP_O;
            msgpack_pack_map(pk, 4);
            bench_mp_kv(pk, "op", "history");
            bench_mp_kv(pk, "id", id);
            bench_mp_kv(pk, "actor", "hanne");
            bench_mp_kv(pk, "claim", s->claim);
            break;
        }
    }
    return ep;
}

static void s_error(s_load_t *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_error(s_load_t *L, const char *fmt, ...)
{
    if (L->r->first_error[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(L->r->first_error, sizeof L->r->first_error, fmt, ap);
    va_end(ap);
}

/* Choose what a slot does next; false when no new script may start. */
static bool s_script_start(s_load_t *L, s_slot_t *sl)
{
    bench_script_t *s = &sl->sc;
    int script;
    if (L->limit) {
        if (L->started >= L->limit)
            return false;
        script = BENCH_S_LIFE;
    } else {
        int pick = (int)(bench_rand(&L->rng) % (uint64_t)L->mix_total);
        script = pick < L->o->mix[0]                  ? BENCH_S_LIFE
                 : pick < L->o->mix[0] + L->o->mix[1] ? BENCH_S_INQUIRY
                                                      : BENCH_S_READ;
    }
    L->started++;
    s->step = 0;
    sl->ready = false;
    if (script != BENCH_S_LIFE && L->ndone == 0)
        script = BENCH_S_LIFE; /* nothing finished to ask about yet */
    s->script = script;
    if (script == BENCH_S_LIFE) {
        sl->member_n = s_member_next++;
        bench_cpr(sl->member_n, s->member);
        s->claim[0] = '\0';
    } else {
        uint64_t back = bench_rand(&L->rng) % (L->ndone < DONE_RING ? L->ndone : DONE_RING);
        const s_done_t *d = &L->done[(L->ndone - 1 - back) % DONE_RING];
        memcpy(s->claim, d->claim, sizeof s->claim);
        memcpy(s->member, d->member, sizeof s->member);
        s->read_kind = (int)(bench_rand(&L->rng) % 4);
    }
    return true;
}

/* Pack and send the slot's next request. */
static void s_send(s_load_t *L, uint32_t slot, uint64_t due_ns)
{
    s_slot_t *sl = &L->slots[slot];
    msgpack_sbuffer_clear(&L->sb);
    char id[32];
    uint64_t seq = ++s_req_seq;
    snprintf(id, sizeof id, "b%" PRIu64, seq);
    bench_kind_t kind;
    int ep = bench_pack_step(&L->pk, &sl->sc, id, L->doc, L->o->doc_bytes, &kind);
    s_sock_t *so = &L->socks[2 * sl->client + ep];
    if (zmq_send(so->z, L->sb.data, L->sb.size, 0) < 0) {
        fprintf(stderr, "claimflow-bench: send: %s\n", zmq_strerror(zmq_errno()));
        exit(1);
    }
    so->dirty = true;
    uint64_t now = bench_now_ns();
    s_out_t out = {slot, kind, seq, now, due_ns ? due_ns : now};
    s_out_push(so, &out);
    L->outstanding++;
    L->r->all_requests++;
    L->r->bytes_sent += L->sb.size;
    if (due_ns && now > due_ns + 1000000)
        L->r->late_sends++;
}

/* Check a reply against what the step expects; advance the script.
 * Returns the transitions it confirmed, or -1 when it is wrong. */
static int s_check(s_load_t *L, bench_script_t *s, const msgpack_object *rep, bool *finished)
{
    const msgpack_object *claim = cf_mp_get(rep, "claim");
    const msgpack_object *state = cf_mp_get(claim, "state");
    *finished = false;
    if (s->script == BENCH_S_LIFE) {
        if (s->step == 2) {
            const msgpack_object *moved = cf_mp_get(rep, "moved");
            if (!moved || moved->type != MSGPACK_OBJECT_ARRAY || moved->via.array.size != 1 ||
                !cf_mp_streq(&moved->via.array.ptr[0], s->claim)) {
                s_error(L, "consent.give did not move the member's claim");
                return -1;
            }
            s->step++;
            return 1;
        }
        if (!cf_mp_streq(state, bench_life_want(s->step))) {
            char got[64];
            bench_mp_copy(state, got, sizeof got);
            s_error(L, "a lifecycle step reached state '%s', not '%s'", got,
                    bench_life_want(s->step));
            return -1;
        }
        if (s->step == 0)
            bench_mp_copy(cf_mp_get(claim, "id"), s->claim, sizeof s->claim);
        if (++s->step == 6) {
            *finished = true;
            s_done_t *d = &L->done[L->ndone++ % DONE_RING];
            memcpy(d->claim, s->claim, sizeof d->claim);
            memcpy(d->member, s->member, sizeof d->member);
        }
        return 1;
    }
    if (s->script == BENCH_S_INQUIRY) {
        if (!cf_mp_streq(state, s->step == 0 ? "open" : "answered")) {
            s_error(L, "an inquiry step reached an unexpected state");
            return -1;
        }
        if (s->step == 0)
            bench_mp_copy(cf_mp_get(claim, "id"), s->inquiry, sizeof s->inquiry);
        if (++s->step == 2)
            *finished = true;
        return 1;
    }
    *finished = true;
    return 0;
}

/* The slot's script goes on: closed loop, its next request at once; open
 * loop, when the schedule next has a request due. */
static void s_advance(s_load_t *L, uint32_t slot, bool open_loop, bool alive)
{
    if (L->stopping || !alive) {
        if (open_loop)
            s_slot_free(L, slot);
        return;
    }
    if (open_loop) {
        L->slots[slot].ready = true;
        s_readyq_push(L, slot);
    } else {
        s_send(L, slot, 0);
    }
}

static void s_on_reply(s_load_t *L, s_sock_t *so, const void *data, size_t len, bool open_loop)
{
    uint64_t now = bench_now_ns();
    s_out_t out;
    if (!s_out_pop(so, &out)) {
        s_error(L, "a reply came that no request asked for");
        L->r->all_err++;
        return;
    }
    L->outstanding--;
    L->r->bytes_recv += len;
    bool in_window = now >= L->t_meas && now < L->t_end;
    if (out.due_ns >= L->t_meas && out.due_ns < L->t_end) {
        bench_lat_add(&L->r->lat, now - out.due_ns);
        bench_lat_add(&L->r->lat_kind[out.kind], now - out.due_ns);
    }
    bench_script_t *s = &L->slots[out.slot].sc;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int trans = -1;
    bool finished = false;
    if (msgpack_unpack_next(&up, data, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        s_error(L, "a reply is not a msgpack map");
    } else {
        char want[32], got[64], err[480];
        snprintf(want, sizeof want, "b%" PRIu64, out.seq);
        bench_mp_copy(cf_mp_get(&up.data, "id"), got, sizeof got);
        if (strcmp(want, got) != 0)
            s_error(L, "reply out of order: id '%s', expected '%s'", got, want);
        else if (!bench_mp_ok(&up.data, err, sizeof err))
            s_error(L, "reply to a %s request not ok: %s", bench_kind_names[out.kind], err);
        else
            trans = s_check(L, s, &up.data, &finished);
    }
    msgpack_unpacked_destroy(&up);
    if (trans < 0) {
        L->r->all_err++;
        if (in_window)
            L->r->replies_err++;
        finished = true; /* a broken script is dropped */
    } else {
        L->r->all_ok++;
        L->r->all_transitions += (uint64_t)trans;
        bool life_done = finished && s->script == BENCH_S_LIFE;
        bool inq_done = finished && s->script == BENCH_S_INQUIRY;
        L->r->all_claims_done += life_done;
        L->r->all_inquiries_done += inq_done;
        if (in_window) {
            L->r->replies_ok++;
            L->r->transitions += (uint64_t)trans;
            L->r->claims_done += life_done;
            L->r->inquiries_done += inq_done;
        }
    }
    if (in_window)
        L->r->requests++;
    bool alive = true;
    if (finished && !L->stopping)
        alive = s_script_start(L, &L->slots[out.slot]);
    s_advance(L, out.slot, open_loop, alive);
}

/* Take every message waiting on so. */
static void s_drain(s_load_t *L, s_sock_t *so, bool open_loop)
{
    for (;;) {
        int ev = 0;
        size_t el = sizeof ev;
        if (zmq_getsockopt(so->z, ZMQ_EVENTS, &ev, &el) < 0 || !(ev & ZMQ_POLLIN))
            break;
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, so->z, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            break;
        }
        bool more = zmq_msg_more(&m);
        s_on_reply(L, so, zmq_msg_data(&m), zmq_msg_size(&m), open_loop);
        zmq_msg_close(&m);
        while (more) { /* a reply is one frame: drop extras, count it wrong */
            zmq_msg_init(&m);
            zmq_msg_recv(&m, so->z, 0);
            more = zmq_msg_more(&m);
            zmq_msg_close(&m);
            s_error(L, "a reply had more than one frame");
            L->r->all_err++;
        }
    }
    so->dirty = false;
}

static void s_drain_dirty(s_load_t *L, bool open_loop)
{
    bool again = true;
    while (again) {
        again = false;
        for (int i = 0; i < 2 * L->nclients; i++) {
            if (L->socks[i].dirty) {
                s_drain(L, &L->socks[i], open_loop);
                again = true;
            }
        }
    }
}

/* ============================================================= phase === */

int bench_load_run(const bench_opts_t *o, const bench_daemon_t *d, double rate,
                   double seconds, double warmup, long limit, bench_load_t *r)
{
    memset(r, 0, sizeof *r);
    r->name = limit > 0 ? "store" : rate > 0 ? "open" : "closed";
    r->clients = o->clients;
    r->inflight = o->inflight;
    r->rate = rate;
    r->seconds = seconds;
    bool open_loop = rate > 0 && limit <= 0;
    /* The schedule is in requests; the rate asked for is in transitions:
     * a lifecycle is 6 requests and 6 transitions, an inquiry 2 and 2, a
     * read 1 and 0. */
    double wt = 6.0 * o->mix[0] + 2.0 * o->mix[1];
    double wr = wt + o->mix[2];
    r->req_rate = open_loop && wt > 0 ? rate * wr / wt : 0;

    s_load_t L;
    memset(&L, 0, sizeof L);
    L.o = o;
    L.r = r;
    L.rng = o->seed ? o->seed : 0x9E3779B97F4A7C15ULL;
    L.mix_total = o->mix[0] + o->mix[1] + o->mix[2];
    L.limit = limit > 0 ? limit : 0;
    L.nclients = o->clients;
    msgpack_sbuffer_init(&L.sb);
    msgpack_packer_init(&L.pk, &L.sb, msgpack_sbuffer_write);
    size_t dn = o->doc_bytes < 64 ? 64 : o->doc_bytes;
    L.doc = malloc(dn + 64);
    L.ctx = zmq_ctx_new();
    L.socks = calloc((size_t)(2 * L.nclients), sizeof *L.socks);
    L.pfds = calloc((size_t)(2 * L.nclients), sizeof *L.pfds);
    if (!L.doc || !L.ctx || !L.socks || !L.pfds) {
        fprintf(stderr, "claimflow-bench: out of memory\n");
        exit(1);
    }
    memset(L.doc, 'x', dn + 64);
    memcpy(L.doc, "%PDF-1.4\n", 9);
    L.doc[dn + 63] = '\0';
    int hwm = 1000000, linger = 0;
    for (int i = 0; i < 2 * L.nclients; i++) {
        s_sock_t *so = &L.socks[i];
        so->z = zmq_socket(L.ctx, ZMQ_DEALER);
        zmq_setsockopt(so->z, ZMQ_SNDHWM, &hwm, sizeof hwm);
        zmq_setsockopt(so->z, ZMQ_RCVHWM, &hwm, sizeof hwm);
        zmq_setsockopt(so->z, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(so->z, i % 2 == BENCH_EP_P ? d->portal : d->operator) < 0) {
            fprintf(stderr, "claimflow-bench: connect: %s\n", zmq_strerror(zmq_errno()));
            exit(1);
        }
        size_t fl = sizeof so->fd;
        zmq_getsockopt(so->z, ZMQ_FD, &so->fd, &fl);
        L.pfds[i].fd = so->fd;
        L.pfds[i].events = POLLIN;
    }

    uint64_t t0 = bench_now_ns();
    L.t_meas = t0 + (uint64_t)(warmup * 1e9);
    /* The store phase has no window: it ends when its lifecycles are done. */
    L.t_end = L.limit ? UINT64_MAX / 2 : L.t_meas + (uint64_t)(seconds * 1e9);
    uint64_t period = open_loop ? (uint64_t)(1e9 / r->req_rate) : 0;
    uint64_t next_due = t0;
    if (!open_loop) {
        for (int c = 0; c < L.nclients; c++)
            for (int k = 0; k < o->inflight; k++) {
                uint32_t slot = s_slot_new(&L);
                L.slots[slot].client = c;
                if (s_script_start(&L, &L.slots[slot]))
                    s_send(&L, slot, 0);
            }
    }
    bench_proc_t p0 = {0}, p1 = {0};
    double c0 = 0, loop0[7] = {0};
    uint64_t lb0 = 0, hist0[CF_STORE_HIST], hist1[CF_STORE_HIST];
    uint64_t tx0 = 0, tx1 = 0;
    uint64_t cpu0 = 0, steal0 = 0, cpu1 = 0, steal1 = 0;
    bool measuring = false, measured = false;
    uint64_t drain_deadline = L.limit ? t0 + 600000000000ull : L.t_end + 30000000000ull;
    for (;;) {
        uint64_t now = bench_now_ns();
        if (!measuring && now >= L.t_meas) {
            measuring = true;
            r->has_loop = bench_daemon_profile(d, loop0, &lb0, hist0) == 0;
            bench_proc_read(d->pid, &p0);
            bench_cpu_read(&cpu0, &steal0);
            c0 = bench_self_cpu();
            bench_store_txnid(d->data, &tx0);
        }
        if (measuring && !measured && now >= L.t_end) {
            measured = true;
            L.stopping = true;
            double loop1[7];
            uint64_t lb1;
            if (r->has_loop && bench_daemon_profile(d, loop1, &lb1, hist1) == 0) {
                for (int k = 0; k < 7; k++)
                    r->loop_us[k] = loop1[k] - loop0[k];
                r->loop_batches = lb1 - lb0;
                for (int b = 0; b < CF_STORE_HIST; b++)
                    r->commit_hist[b] = hist1[b] - hist0[b];
            } else {
                r->has_loop = false;
            }
            bench_proc_read(d->pid, &p1);
            r->bench_cpu = bench_self_cpu() - c0;
            bench_store_txnid(d->data, &tx1);
            if (bench_cpu_read(&cpu1, &steal1) == 0 && cpu1 > cpu0)
                r->steal_pct = 100.0 * (double)(steal1 - steal0) / (double)(cpu1 - cpu0);
        }
        if (L.limit && L.started >= L.limit && L.outstanding == 0 && !measured) {
            /* The store phase: every lifecycle is done. */
            measured = L.stopping = true;
            bench_proc_read(d->pid, &p1);
            r->bench_cpu = bench_self_cpu() - c0;
            bench_store_txnid(d->data, &tx1);
            r->seconds = (double)(now - L.t_meas) / 1e9;
        }
        if (L.stopping && L.outstanding == 0)
            break;
        if (now > drain_deadline) {
            s_error(&L, "%s: replies still missing 30 s after the end", r->name);
            break;
        }
        if (open_loop && !L.stopping) {
            while (next_due <= now && next_due < L.t_end) {
                uint32_t slot;
                if (L.rq_n) {
                    slot = L.readyq[L.rq_head];
                    L.rq_head = (L.rq_head + 1) % L.rq_cap;
                    L.rq_n--;
                    L.slots[slot].ready = false;
                } else {
                    slot = s_slot_new(&L);
                    L.slots[slot].client = L.next_client++ % L.nclients;
                    s_script_start(&L, &L.slots[slot]);
                }
                s_send(&L, slot, next_due);
                next_due += period;
            }
        }
        s_drain_dirty(&L, open_loop);
        /* Sleep until a socket wakes us, the next due time, or a window edge. */
        uint64_t wake = measuring ? (measured ? now + 50000000 : L.t_end) : L.t_meas;
        if (open_loop && !L.stopping && next_due < wake)
            wake = next_due;
        if (wake > now + 50000000)
            wake = now + 50000000;
        now = bench_now_ns();
        if (wake <= now)
            continue;
        struct timespec ts = {(time_t)((wake - now) / 1000000000u),
                              (long)((wake - now) % 1000000000u)};
        int n = ppoll(L.pfds, (nfds_t)(2 * L.nclients), &ts, NULL);
        if (n > 0)
            for (int i = 0; i < 2 * L.nclients; i++)
                if (L.pfds[i].revents)
                    L.socks[i].dirty = true;
    }
    r->completed = measured && L.outstanding == 0;
    r->daemon_cpu = (p1.utime + p1.stime) - (p0.utime + p0.stime);
    r->daemon_hwm_kib = p1.hwm_kib;
    r->commits = tx1 - tx0;

    for (int i = 0; i < 2 * L.nclients; i++) {
        zmq_close(L.socks[i].z);
        free(L.socks[i].ring);
    }
    zmq_ctx_term(L.ctx);
    free(L.socks);
    free(L.pfds);
    free(L.slots);
    free(L.readyq);
    free(L.freeq);
    free(L.doc);
    msgpack_sbuffer_destroy(&L.sb);
    return r->completed && r->all_err == 0 ? 0 : -1;
}

void bench_load_free(bench_load_t *r)
{
    bench_lat_free(&r->lat);
    for (int i = 0; i < BENCH_K__COUNT; i++)
        bench_lat_free(&r->lat_kind[i]);
}

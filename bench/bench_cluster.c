/* bench_cluster.c: --cluster's machinery - a 3-member etcd and 3 claimflowd
 * replicas on loopback, finding the leader by ping, and a kill -9 of the
 * leader under a fixed-rate stream of creates.
 *
 * The processes are the real ones (Debian's etcd, our claimflowd), started
 * as tests/integration/cluster.py starts them: free ports on 127.0.0.1, a
 * directory each under the run's, etcd's log to a file.  etcd's health is
 * read from its /health over a hand-written HTTP/1.0 GET, so the bench needs
 * no HTTP library for one request.
 *
 * Failover is measured as a client sees it: creates go out on a fixed
 * schedule (a new id each, so a refusal is counted, never retried); after
 * the kill they go to a surviving node and follow `not_leader` to the node
 * it names.  The time is from the kill to the first `ok` from another node.
 * The bench knows it killed the leader, so it moves at once instead of
 * waiting out a timeout as a real client would: the figure is the
 * cluster's, not a client timeout's.  A not_leader that still names the
 * dead leader (its lease has not lapsed) is not followed there.
 */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static void s_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ============================================================== etcd === */

/* A port free right now on 127.0.0.1 (another process may take it before
 * etcd binds it; the start then fails and says so). */
static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* etcd's GET /health says {"health":"true"} once its raft has a leader. */
static bool s_etcd_healthy(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct timeval tv = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[2048];
    size_t n = 0;
    static const char req[] = "GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        write(fd, req, sizeof req - 1) == (ssize_t)(sizeof req - 1)) {
        ssize_t k;
        while (n < sizeof buf - 1 && (k = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
            n += (size_t)k;
    }
    close(fd);
    buf[n] = '\0';
    return strstr(buf, " 200 ") && strstr(buf, "\"health\":\"true\"");
}

static int s_etcd_spawn(const bench_cluster_t *c, int i, bench_etcd_t *e)
{
    char name[8], data[700], logp[700], peer[64], initial[512] = "", token[64];
    snprintf(name, sizeof name, "e%d", i);
    snprintf(data, sizeof data, "%s/etcd-%s", c->dir, name);
    snprintf(logp, sizeof logp, "%s/etcd-%s.log", c->dir, name);
    snprintf(peer, sizeof peer, "http://127.0.0.1:%d", e->peer_port);
    for (int j = 0; j < BENCH_CL_NODES; j++) {
        size_t l = strlen(initial);
        snprintf(initial + l, sizeof initial - l, "%se%d=http://127.0.0.1:%d", j ? "," : "", j,
                 c->etcd[j].peer_port);
    }
    /* A token per run: members of another run on the same ports never join. */
    snprintf(token, sizeof token, "cf-bench-%d", (int)getpid());
    char *argv[] = {(char *)BENCH_ETCD_BIN, (char *)"--name", name, (char *)"--data-dir", data,
                    (char *)"--listen-client-urls", e->url, (char *)"--advertise-client-urls",
                    e->url, (char *)"--listen-peer-urls", peer,
                    (char *)"--initial-advertise-peer-urls", peer, (char *)"--initial-cluster",
                    initial, (char *)"--initial-cluster-token", token,
                    (char *)"--initial-cluster-state", (char *)"new", (char *)"--log-outputs",
                    logp, (char *)"--logger", (char *)"zap", NULL};
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    e->pid = pid;
    return 0;
}

/* SIGTERM, then SIGKILL after 10 s; 0 when it exited by itself. */
static int s_reap(pid_t pid)
{
    if (pid <= 0)
        return 0;
    kill(pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 1000; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return 0;
        s_sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
}

/* ============================================================== ping === */

typedef struct {
    bool ok;
    char role[16], node[16];
    char leader_portal[256];   /* "" when no leader is named */
    uint64_t seq;
} s_ping_t;

static void s_leader_portal(const msgpack_object *leader, char *out, size_t len)
{
    out[0] = '\0';
    if (leader && leader->type == MSGPACK_OBJECT_MAP)
        bench_mp_copy(cf_mp_get(leader, "portal"), out, len);
}

/* One ping on the node's portal endpoint, waiting up to timeout_ms. */
static int s_ping(void *ctx, const char *endpoint, int timeout_ms, s_ping_t *p)
{
    memset(p, 0, sizeof *p);
    void *z = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0;
    zmq_setsockopt(z, ZMQ_LINGER, &linger, sizeof linger);
    int rc = -1;
    if (zmq_connect(z, endpoint) == 0 && zmq_send(z, "\x82\xa2op\xa4ping\xa2id\xa2p1", 15, 0) == 15) {
        zmq_pollitem_t it = {z, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, timeout_ms) == 1) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, z, 0) >= 0) {
                msgpack_unpacked up;
                msgpack_unpacked_init(&up);
                if (msgpack_unpack_next(&up, zmq_msg_data(&m), zmq_msg_size(&m), NULL) ==
                    MSGPACK_UNPACK_SUCCESS) {
                    p->ok = bench_mp_ok(&up.data, NULL, 0);
                    bench_mp_copy(cf_mp_get(&up.data, "role"), p->role, sizeof p->role);
                    bench_mp_copy(cf_mp_get(&up.data, "node"), p->node, sizeof p->node);
                    s_leader_portal(cf_mp_get(&up.data, "leader"), p->leader_portal,
                                    sizeof p->leader_portal);
                    const msgpack_object *seq = cf_mp_get(&up.data, "seq");
                    if (seq && seq->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                        p->seq = seq->via.u64;
                    rc = 0;
                }
                msgpack_unpacked_destroy(&up);
            }
            zmq_msg_close(&m);
        }
    }
    zmq_close(z);
    return rc;
}

int bench_cluster_leader(const bench_cluster_t *c, double timeout)
{
    void *ctx = zmq_ctx_new();
    double end = bench_now() + timeout;
    int found = -1;
    while (found < 0 && bench_now() < end) {
        for (int i = 0; i < BENCH_CL_NODES && found < 0; i++) {
            s_ping_t p;
            if (c->node[i].pid > 0 && s_ping(ctx, c->node[i].portal, 1000, &p) == 0 && p.ok &&
                strcmp(p.role, "leader") == 0)
                found = i;
        }
        if (found < 0)
            s_sleep_ms(50);
    }
    zmq_ctx_term(ctx);
    return found;
}

/* ============================================================ start === */

static int s_node_start(const bench_opts_t *o, bench_cluster_t *c, int i)
{
    char ndir[600], cfg[1024], urls[256] = "";
    snprintf(ndir, sizeof ndir, "%s/node-%c", c->dir, 'a' + i);
    if (mkdir(ndir, 0700) != 0 && errno != EEXIST)
        return -1;
    for (int j = 0; j < BENCH_CL_NODES; j++) {
        size_t l = strlen(urls);
        snprintf(urls + l, sizeof urls - l, "%s%s", j ? ", " : "", c->etcd[j].url);
    }
    snprintf(cfg, sizeof cfg,
             "cluster:\n  etcd: [%s]\n  prefix: %s\n  node: %c\n  lease_seconds: %u\n", urls,
             c->prefix, 'a' + i, c->lease);
    return bench_daemon_start_cfg(o, ndir, NULL, NULL, cfg, &c->node[i]);
}

int bench_cluster_start(const bench_opts_t *o, const char *dir, unsigned lease,
                        bench_cluster_t *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    snprintf(c->dir, sizeof c->dir, "%s", dir);
    snprintf(c->prefix, sizeof c->prefix, "/claimflow/bench%d", (int)getpid());
    c->lease = lease;
    if (access(BENCH_ETCD_BIN, X_OK) != 0) {
        snprintf(err, errlen, "no %s (Debian's etcd-server)", BENCH_ETCD_BIN);
        return -1;
    }
    for (int i = 0; i < BENCH_CL_NODES; i++) {
        c->etcd[i].client_port = s_free_port();
        c->etcd[i].peer_port = s_free_port();
        snprintf(c->etcd[i].url, sizeof c->etcd[i].url, "http://127.0.0.1:%d",
                 c->etcd[i].client_port);
    }
    for (int i = 0; i < BENCH_CL_NODES; i++)
        if (s_etcd_spawn(c, i, &c->etcd[i]) != 0) {
            snprintf(err, errlen, "cannot start etcd: %s", strerror(errno));
            goto out_stop;
        }
    double end = bench_now() + 30;
    for (int i = 0; i < BENCH_CL_NODES; i++)
        while (!s_etcd_healthy(c->etcd[i].client_port)) {
            if (bench_now() > end) {
                snprintf(err, errlen, "etcd member e%d not healthy within 30 s (log %s/etcd-e%d.log)",
                         i, dir, i);
                goto out_stop;
            }
            s_sleep_ms(100);
        }
    for (int i = 0; i < BENCH_CL_NODES; i++)
        if (s_node_start(o, c, i) != 0) {
            snprintf(err, errlen, "claimflowd node %c did not start (log %s/node-%c/claimflowd.log)",
                     'a' + i, dir, 'a' + i);
            goto out_stop;
        }
    return 0;
out_stop:
    bench_cluster_stop(c);
    return -1;
}

int bench_cluster_stop(bench_cluster_t *c)
{
    int rc = 0;
    for (int i = 0; i < BENCH_CL_NODES; i++)
        if (c->node[i].pid > 0 && bench_daemon_stop(&c->node[i]) != 0)
            rc = -1;
    /* etcd last: a node stopping may still write its lease's revocation. */
    for (int i = 0; i < BENCH_CL_NODES; i++) {
        if (s_reap(c->etcd[i].pid) != 0)
            rc = -1;
        c->etcd[i].pid = 0;
    }
    return rc;
}

/* ========================================================= failover === */

enum { S_PENDING, S_OK, S_REFUSED, S_WRONG };

typedef struct {
    int node;
    uint8_t state;
} s_req_t;

typedef struct {
    const bench_cluster_t *c;
    void *ctx;
    void *sock[BENCH_CL_NODES];
    s_req_t *reqs;
    size_t nreqs, cap;
    int target, victim;
    double t_kill;               /* 0 before the kill */
    bench_failover_t *f;
    uint64_t member;
    char *err;
    size_t errlen;
} s_fo_t;

static uint64_t s_fo_member = 50000000;   /* far from the load's members */

static int s_fo_send(s_fo_t *F)
{
    if (F->nreqs == F->cap) {
        size_t cap = F->cap ? F->cap * 2 : 4096;
        s_req_t *v = realloc(F->reqs, cap * sizeof *v);
        if (!v)
            return -1;
        F->reqs = v;
        F->cap = cap;
    }
    char id[32], member[12];
    snprintf(id, sizeof id, "f%zu", F->nreqs);
    bench_cpr(s_fo_member++, member);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bench_script_t sc = {.script = BENCH_S_LIFE, .step = 0};
    memcpy(sc.member, member, sizeof sc.member);
    bench_kind_t kind;
    bench_pack_step(&pk, &sc, id, NULL, 0, &kind);
    int rc = zmq_send(F->sock[F->target], sb.data, sb.size, ZMQ_DONTWAIT) < 0 ? -1 : 0;
    msgpack_sbuffer_destroy(&sb);
    F->reqs[F->nreqs++] = (s_req_t){F->target, S_PENDING};
    if (F->t_kill > 0 && F->f->ack_s == 0)
        F->f->sent++;
    return rc;
}

static int s_node_of_portal(const s_fo_t *F, const char *portal)
{
    for (int i = 0; i < BENCH_CL_NODES; i++)
        if (F->c->node[i].pid > 0 && strcmp(F->c->node[i].portal, portal) == 0)
            return i;
    return -1;
}

static void s_fo_reply(s_fo_t *F, int from, const void *data, size_t len)
{
    double now = bench_now();
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (msgpack_unpack_next(&up, data, len, NULL) != MSGPACK_UNPACK_SUCCESS) {
        msgpack_unpacked_destroy(&up);
        return;
    }
    char id[32], code[32], leader[256], msg[400];
    bench_mp_copy(cf_mp_get(&up.data, "id"), id, sizeof id);
    size_t k = id[0] == 'f' ? (size_t)strtoull(id + 1, NULL, 10) : SIZE_MAX;
    bool ok = bench_mp_ok(&up.data, msg, sizeof msg);
    const msgpack_object *e = cf_mp_get(&up.data, "error");
    bench_mp_copy(cf_mp_get(e, "code"), code, sizeof code);
    s_leader_portal(cf_mp_get(e, "leader"), leader, sizeof leader);
    msgpack_unpacked_destroy(&up);
    if (k >= F->nreqs || F->reqs[k].state != S_PENDING)
        return;
    bool after = F->t_kill > 0;
    if (ok) {
        F->reqs[k].state = S_OK;
        if (!after)
            F->f->ok_before++;
        else if (from != F->victim && F->f->ack_s == 0) {
            F->f->ack_s = now - F->t_kill;
            F->f->to = from;
            if (F->f->named_s == 0)
                F->f->named_s = F->f->ack_s;
        }
        return;
    }
    bool refused = strcmp(code, "not_leader") == 0 || strcmp(code, "unavailable") == 0;
    F->reqs[k].state = refused ? S_REFUSED : S_WRONG;
    if (!refused) {
        if (!F->err[0])
            snprintf(F->err, F->errlen, "failover: a create was answered %s", msg);
        return;
    }
    if (after && F->f->ack_s == 0)
        F->f->refused++;
    int to = leader[0] ? s_node_of_portal(F, leader) : -1;
    if (after && to >= 0 && to != F->victim) {
        if (F->f->named_s == 0)
            F->f->named_s = now - F->t_kill;
        F->target = to;
    }
}

static void s_fo_drain(s_fo_t *F, int timeout_ms)
{
    zmq_pollitem_t it[BENCH_CL_NODES];
    for (int i = 0; i < BENCH_CL_NODES; i++)
        it[i] = (zmq_pollitem_t){F->sock[i], 0, ZMQ_POLLIN, 0};
    if (zmq_poll(it, BENCH_CL_NODES, timeout_ms) <= 0)
        return;
    for (int i = 0; i < BENCH_CL_NODES; i++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, F->sock[i], ZMQ_DONTWAIT) >= 0)
            s_fo_reply(F, i, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
}

/* Stream creates at `rate` until `until` (bench_now()), or, when until is
 * 0, until another node acknowledged one after the kill or `give_up`. */
static void s_fo_stream(s_fo_t *F, double rate, double until, double give_up)
{
    double period = 1.0 / rate, next = bench_now();
    for (;;) {
        double now = bench_now();
        if (until > 0 ? now >= until : F->f->ack_s > 0 || now >= give_up)
            return;
        while (next <= now) {
            if (s_fo_send(F) != 0 && !F->err[0])
                snprintf(F->err, F->errlen, "failover: cannot send");
            next += period;
        }
        int ms = (int)((next - bench_now()) * 1000);
        s_fo_drain(F, ms < 0 ? 0 : ms);
    }
}

/* After the kill the stream moves to the next surviving node, as a client
 * would after a timeout; not_leader then leads it on. */
static int s_fo_next_alive(const s_fo_t *F, int from)
{
    for (int k = 1; k <= BENCH_CL_NODES; k++) {
        int i = (from + k) % BENCH_CL_NODES;
        if (i != F->victim && F->c->node[i].pid > 0)
            return i;
    }
    return -1;
}

static void s_fo_close(s_fo_t *F)
{
    for (int i = 0; i < BENCH_CL_NODES; i++)
        if (F->sock[i])
            zmq_close(F->sock[i]);
    zmq_ctx_term(F->ctx);
    free(F->reqs);
}

int bench_cluster_failover(const bench_opts_t *o, bench_cluster_t *c, int leader, double rate,
                           bench_failover_t *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof *f);
    err[0] = '\0';
    f->from = leader;
    f->to = -1;
    s_fo_t F = {.c = c, .target = leader, .victim = leader, .f = f, .err = err, .errlen = errlen};
    F.ctx = zmq_ctx_new();
    int linger = 0, hwm = 1000000;
    for (int i = 0; i < BENCH_CL_NODES; i++) {
        F.sock[i] = zmq_socket(F.ctx, ZMQ_DEALER);
        zmq_setsockopt(F.sock[i], ZMQ_LINGER, &linger, sizeof linger);
        zmq_setsockopt(F.sock[i], ZMQ_SNDHWM, &hwm, sizeof hwm);
        if (c->node[i].pid > 0 && zmq_connect(F.sock[i], c->node[i].portal) != 0) {
            snprintf(err, errlen, "failover: connect %s: %s", c->node[i].portal,
                     zmq_strerror(zmq_errno()));
            s_fo_close(&F);
            return -1;
        }
    }
    /* Steady load on the leader first, so the kill lands mid-stream. */
    s_fo_stream(&F, rate, bench_now() + (o->quick ? 0.5 : 1.0), 0);
    pid_t pid = c->node[leader].pid;
    kill(pid, SIGKILL);
    F.t_kill = bench_now();
    waitpid(pid, NULL, 0);
    c->node[leader].pid = 0;
    F.target = s_fo_next_alive(&F, leader);
    if (F.target < 0) {
        snprintf(err, errlen, "failover: no other node is running");
        s_fo_close(&F);
        return -1;
    }
    /* The bound the cluster tests hold writes to: 2 x lease + 5 s; twice
     * that before calling it a failure. */
    s_fo_stream(&F, rate, 0, F.t_kill + 2 * (4.0 * c->lease + 10));
    /* Replies still on their way get a moment; the dead node's never come. */
    s_fo_stream(&F, rate, bench_now() + 0.5, 0);
    for (double end = bench_now() + 1.0; bench_now() < end;)
        s_fo_drain(&F, 50);
    for (size_t k = 0; k < F.nreqs; k++)
        f->unanswered += F.reqs[k].state == S_PENDING;
    s_fo_close(&F);
    if (f->ack_s == 0 && !err[0])
        snprintf(err, errlen, "failover: no other node acknowledged a create within %.0f s",
                 2 * (4.0 * c->lease + 10));
    /* The killed node comes back as a follower on its own store, so the
     * next failover again has three nodes. */
    if (s_node_start(o, c, leader) != 0 && !err[0])
        snprintf(err, errlen, "failover: node %c did not restart", 'a' + leader);
    return err[0] ? -1 : 0;
}

/* cmd_cluster.c: claimctl cluster - every node of --endpoint's list, as it
 * answers `ping`: its name, role, applied batch sequence, lag behind the
 * leader and the leader's epoch (docs/claimctl.md, "Clusters").
 *
 * Each node is asked on its own socket, one after the other, and never
 * through the leader-following of cf_cli_call: the point is what each node
 * says of itself, a follower included.  Asking them in parallel was
 * rejected: a few nodes, each bounded by --timeout, do not need it, and one
 * socket per node keeps the CURVE handshake reporting of client.c.
 *
 * LAG is the leader's seq minus the node's, both as pinged a moment apart,
 * so a follower pinged after a commit the leader's answer predates would
 * seem ahead: it is shown as 0, never negative.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmd.h"

typedef struct {
    const char *endpoint;          /* borrowed from cli.nodes */
    bool answered;
    const char *why;               /* when not: "unreachable", ... */
    char node[64], role[16];
    bool has_seq, has_epoch;
    uint64_t seq, epoch;
} s_row_t;

static const char *s_why(int kind)
{
    switch (kind) {
    case CF_CLI_F_TIMEOUT:   return "no reply";
    case CF_CLI_F_HANDSHAKE: return "handshake failed";
    case CF_CLI_F_PROTO:     return "not claimflowd";
    default:                 return "unreachable";
    }
}

static bool s_uint(const msgpack_object *m, const char *key, uint64_t *ret)
{
    const msgpack_object *o = cf_mp_get(m, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return false;
    *ret = o->via.u64;
    return true;
}

/* Ping one node on a socket of its own.  0, or the failure in *f. */
static int s_ping(const cf_cli_t *cli, s_row_t *row, cf_cli_failure_t *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->endpoint, sizeof f->endpoint, "%s", row->endpoint);
    int ms = (int)ceil(cli->timeout * 1000.0);
    cf_client_curve_t keys;
    cf_client_t *c = cf_client_new(row->endpoint, NULL, ms > 0 ? ms : 1, cf_cli_curve(cli, &keys));
    if (!c) {
        f->sys_errno = errno;
        f->kind = errno == EINVAL || errno == EPROTONOSUPPORT ? CF_CLI_F_BADEP : CF_CLI_F_SYS;
        return -1;
    }
    cf_req_t req;
    cf_req_init(&req, "ping");
    msgpack_unpacked reply;
    msgpack_unpacked_init(&reply);
    int rc = cf_client_call(c, &req, &reply, &f->err);
    switch (rc) {
    case 0: break;
    case CF_CLIENT_EREFUSED:     f->kind = CF_CLI_F_REFUSED; break;
    case CF_CLIENT_EUNREACHABLE: f->kind = CF_CLI_F_UNREACHABLE; break;
    case CF_CLIENT_ETIMEOUT:     f->kind = CF_CLI_F_TIMEOUT; break;
    case CF_CLIENT_EHANDSHAKE:
        f->kind = CF_CLI_F_HANDSHAKE;
        f->hs_reason = cf_client_handshake_reason(c);
        break;
    case CF_CLIENT_EPROTO:       f->kind = CF_CLI_F_PROTO; break;
    default:
        f->kind = CF_CLI_F_SYS;
        f->sys_errno = errno;
        break;
    }
    if (rc == 0) {
        const msgpack_object *m = &reply.data;
        row->answered = true;
        /* A daemon without a cluster section says no role: it is alone. */
        if (!cf_mp_get_str(m, "role", row->role, sizeof row->role))
            snprintf(row->role, sizeof row->role, "single");
        if (!cf_mp_get_str(m, "node", row->node, sizeof row->node))
            snprintf(row->node, sizeof row->node, "-");
        row->has_seq = s_uint(m, "seq", &row->seq);
        row->has_epoch = s_uint(m, "epoch", &row->epoch);
    } else {
        row->why = s_why(f->kind);
    }
    msgpack_unpacked_destroy(&reply);
    cf_client_destroy(&c);
    return rc == 0 ? 0 : -1;
}

/* The leader whose word counts: the answering one with the highest epoch
 * (two may say so for a moment during a failover), or NULL. */
static const s_row_t *s_leader(const s_row_t *rows, size_t n)
{
    const s_row_t *best = NULL;
    for (size_t i = 0; i < n; i++)
        if (rows[i].answered && strcmp(rows[i].role, "leader") == 0 &&
            (!best || rows[i].epoch > best->epoch))
            best = &rows[i];
    return best;
}

static bool s_lag(const s_row_t *r, const s_row_t *leader, uint64_t *ret)
{
    if (!leader || !leader->has_seq || !r->answered || !r->has_seq)
        return false;
    *ret = leader->seq > r->seq ? leader->seq - r->seq : 0;
    return true;
}

static void s_pack_uint(msgpack_packer *pk, bool has, uint64_t v)
{
    if (has)
        msgpack_pack_uint64(pk, v);
    else
        msgpack_pack_nil(pk);
}

static void s_pack_text(msgpack_packer *pk, bool has, const char *s)
{
    if (has)
        cf_pack_str(pk, s);
    else
        msgpack_pack_nil(pk);
}

/* {"nodes": [{endpoint, node, role, seq, lag, epoch, error}]}: every key
 * always there (nil when unknown), so a script reads them without tests. */
static int s_print_json(const s_row_t *rows, size_t n, const s_row_t *leader)
{
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    cf_pack_str(&pk, "nodes");
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        const s_row_t *r = &rows[i];
        uint64_t lag = 0;
        bool has_lag = s_lag(r, leader, &lag);
        msgpack_pack_map(&pk, 7);
        cf_pack_str(&pk, "endpoint");
        cf_pack_str(&pk, r->endpoint);
        cf_pack_str(&pk, "node");
        s_pack_text(&pk, r->answered && strcmp(r->node, "-") != 0, r->node);
        cf_pack_str(&pk, "role");
        cf_pack_str(&pk, r->answered ? r->role : "unreachable");
        cf_pack_str(&pk, "seq");
        s_pack_uint(&pk, r->has_seq, r->seq);
        cf_pack_str(&pk, "lag");
        s_pack_uint(&pk, has_lag, lag);
        cf_pack_str(&pk, "epoch");
        s_pack_uint(&pk, r->has_epoch, r->epoch);
        cf_pack_str(&pk, "error");
        s_pack_text(&pk, !r->answered, r->why);
    }
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    int rc = CF_EXIT_REFUSED;
    if (msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS) {
        cf_cli_json(&u.data);
        rc = CF_EXIT_OK;
    }
    msgpack_unpacked_destroy(&u);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static int s_print_table(const cf_cli_t *cli, const s_row_t *rows, size_t n,
                         const s_row_t *leader)
{
    static const char *const head[] = {"NODE", "ROLE", "SEQ", "LAG", "EPOCH", "ENDPOINT"};
    cf_table_t t;
    cf_table_init(&t, 6, head);
    int rc = CF_EXIT_OK;
    for (size_t i = 0; i < n && rc == CF_EXIT_OK; i++) {
        const s_row_t *r = &rows[i];
        char seq[24] = "-", lag[24] = "-", epoch[24] = "-";
        uint64_t l;
        if (r->has_seq)
            snprintf(seq, sizeof seq, "%llu", (unsigned long long)r->seq);
        if (s_lag(r, leader, &l))
            snprintf(lag, sizeof lag, "%llu", (unsigned long long)l);
        if (r->has_epoch)
            snprintf(epoch, sizeof epoch, "%llu", (unsigned long long)r->epoch);
        const char *cells[] = {r->answered ? r->node : "-", r->answered ? r->role : r->why,
                               seq, lag, epoch, r->endpoint};
        cf_color_t colors[6] = {CF_C_RESET};
        colors[1] = !r->answered ? CF_C_RED : r == leader ? CF_C_GREEN : CF_C_RESET;
        if (cf_table_add(&t, cells, colors) != 0)
            rc = cf_cli_fail(CF_EXIT_REFUSED, "out of memory");
    }
    if (rc == CF_EXIT_OK)
        cf_table_print(&t, cli);
    cf_table_fini(&t);
    return rc;
}

int cf_cmd_cluster(int argc, char **argv)
{
    static const cf_cmd_spec_t spec = {
        "cluster", "", "Each node of --endpoint's list: its role, applied batches, lag behind the leader, epoch.",
        "Pings every node of the list, one after the other (each within --timeout),\n"
        "and prints one row per node: NODE, ROLE (leader, follower, single for a\n"
        "daemon without a cluster, or why it did not answer), SEQ (batches applied),\n"
        "LAG (the leader's SEQ minus the node's), EPOCH (of the leader it knows),\n"
        "ENDPOINT.  Exit 0 when some node answered, 3 when none did.  --as is not\n"
        "needed (ping needs no operator).\n\n"
        "examples:\n"
        "  claimctl cluster --endpoint tcp://10.0.0.1:7402,tcp://10.0.0.2:7402,tcp://10.0.0.3:7402\n"
        "  claimctl cluster --json | jq -r '.nodes[] | select(.role == \"leader\") | .endpoint'\n",
        CF_CO_DAEMON | CF_CO_NOAS | CF_CO_JSON, 0, 0};
    cf_cli_t cli;
    int rc = cf_cli_parse(&cli, &spec, NULL, 0, argc, argv);
    if (rc >= 0)
        return rc;
    s_row_t rows[CF_NODES_MAX];
    size_t n = cli.nodes.n, answered = 0;
    cf_cli_failure_t f, last;
    memset(&last, 0, sizeof last);
    for (size_t i = 0; i < n; i++) {
        memset(&rows[i], 0, sizeof rows[i]);
        rows[i].endpoint = cli.nodes.ep[i];
        if (s_ping(&cli, &rows[i], &f) == 0) {
            answered++;
        } else if (f.kind == CF_CLI_F_BADEP) {
            rc = cf_cli_report(&cli, &f);
            goto out;
        } else {
            last = f;
        }
    }
    if (answered == 0) {
        rc = cf_cli_report(&cli, &last);
        goto out;
    }
    const s_row_t *leader = s_leader(rows, n);
    rc = cli.json ? s_print_json(rows, n, leader) : s_print_table(&cli, rows, n, leader);
out:
    cf_cli_fini(&cli);
    return rc;
}

/* replog_etcd.c: the replicated log on etcd (replog.h).
 *
 * Keys, all under the cluster's prefix P:
 *   P/leader                  this epoch's leader: its node name, bound to
 *                             its lease; the key's create revision is the
 *                             epoch
 *   P/log/<seq, 20 digits>    a batch: msgpack [1, epoch, at, node, write set
 *                             (bin) or nil, chunks, total bytes]
 *   P/chunk/<seq>/<epoch>/<i> a write set too big for one etcd request, in
 *                             pieces written (each under the same leadership
 *                             check) before its log entry; a batch whose
 *                             entry never landed leaves chunks that trimming
 *                             removes
 *   P/logtime/<time>          the first seq appended in that 10-second
 *                             slot (UTC seconds): what trimming by age reads
 *   P/nodes/<node>            a node's description (JSON)
 *   P/applied/<node>          how far a node has applied (decimal)
 * Fixed-width numbers keep etcd's key order the numeric order.
 */
#include "replog.h"

#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "mp.h"

/* A write set up to this many bytes travels inside its log entry; bigger
 * ones in chunks of this size.  etcd refuses requests over 1.5 MiB by
 * default, and base64 makes 4 bytes of 3. */
#define S_CHUNK ((size_t)1 << 20)
/* Trimming by age knows an entry's time to within this many seconds. */
#define S_SLOT 10

struct cf_replog {
    cf_etcd_t *etcd;
    char *prefix, *node;
    int64_t lease_seconds;
    int64_t lease;               /* while leader (or campaigning) */
    int64_t last_slot;           /* the last P/logtime written */
    msgpack_sbuffer sb;
};

int cf_replog_open(const cf_replog_opts_t *o, cf_replog_t **ret, cf_error_t *reterr)
{
    cf_replog_t *l = calloc(1, sizeof *l);
    if (!l || !(l->prefix = strdup(o->prefix)) || !(l->node = strdup(o->node))) {
        cf_replog_close(&l);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    msgpack_sbuffer_init(&l->sb);
    l->lease_seconds = o->lease_seconds;
    cf_etcd_opts_t eo = {.urls = o->urls, .nurls = o->nurls, .timeout_ms = o->timeout_ms,
                         .tls_ca = o->tls_ca, .tls_cert = o->tls_cert, .tls_key = o->tls_key};
    int rc = cf_etcd_new(&eo, &l->etcd, reterr);
    if (rc != 0) {
        cf_replog_close(&l);
        return rc;
    }
    *ret = l;
    return 0;
}

void cf_replog_close(cf_replog_t **l_p)
{
    cf_replog_t *l = l_p ? *l_p : NULL;
    if (!l)
        return;
    cf_etcd_destroy(&l->etcd);
    msgpack_sbuffer_destroy(&l->sb);
    free(l->prefix);
    free(l->node);
    free(l);
    *l_p = NULL;
}

/* --------------------------------------------------------------- keys --- */
static size_t s_key(const cf_replog_t *l, char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t s_key(const cf_replog_t *l, char *out, size_t cap, const char *fmt, ...)
{
    int n = snprintf(out, cap, "%s/", l->prefix);
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(out + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return (size_t)n;
}

#define S_KEYCAP 320

/* ---------------------------------------------------------- leadership --- */
int cf_replog_campaign(cf_replog_t *l, uint64_t next, bool *won, uint64_t *epoch,
                       cf_error_t *reterr)
{
    *won = false;
    int64_t lease;
    int rc = cf_etcd_lease_grant(l->etcd, l->lease_seconds, &lease, reterr);
    if (rc != 0)
        return rc;
    char lk[S_KEYCAP], sk[S_KEYCAP];
    size_t lkl = s_key(l, lk, sizeof lk, "leader");
    size_t skl = s_key(l, sk, sizeof sk, "log/%020" PRIu64, next);
    cf_etcd_cmp_t cmp[2] = {{lk, lkl, 0}, {sk, skl, 0}};
    cf_etcd_op_t op = {.key = lk, .klen = lkl, .val = l->node, .vlen = strlen(l->node),
                       .lease = lease};
    bool ok = false, unknown = false;
    int64_t rev = 0;
    rc = cf_etcd_txn(l->etcd, cmp, 2, &op, 1, &ok, &rev, &unknown, reterr);
    if (rc != 0 || !ok) {
        /* Lost, or unknown: either way the lease goes, and with it the
         * key if the txn did land. */
        (void)cf_etcd_lease_revoke(l->etcd, lease, NULL);
        return rc;
    }
    l->lease = lease;
    l->last_slot = 0;
    *won = true;
    *epoch = (uint64_t)rev;
    return 0;
}

int cf_replog_renew(cf_replog_t *l, int64_t *ttl_ms, cf_error_t *reterr)
{
    int64_t ttl = 0;
    *ttl_ms = 0;
    if (!l->lease)
        return 0;
    int rc = cf_etcd_lease_keepalive(l->etcd, l->lease, &ttl, reterr);
    if (rc != 0)
        return rc;
    *ttl_ms = ttl * 1000;
    return 0;
}

void cf_replog_resign(cf_replog_t *l)
{
    if (l->lease)
        (void)cf_etcd_lease_revoke(l->etcd, l->lease, NULL);
    l->lease = 0;
}

int cf_replog_leader(cf_replog_t *l, char *node, size_t cap, uint64_t *epoch,
                     cf_error_t *reterr)
{
    char lk[S_KEYCAP];
    size_t lkl = s_key(l, lk, sizeof lk, "leader");
    cf_etcd_kvs_t kvs;
    int rc = cf_etcd_range(l->etcd, lk, lkl, NULL, 0, 1, false, &kvs, reterr);
    if (rc != 0)
        return rc;
    node[0] = '\0';
    *epoch = 0;
    if (kvs.n == 1) {
        snprintf(node, cap, "%.*s", (int)kvs.v[0].vlen, (const char *)kvs.v[0].val);
        *epoch = (uint64_t)kvs.v[0].create_rev;
    }
    cf_etcd_kvs_free(&kvs);
    return 0;
}

/* ----------------------------------------------------------------- log --- */
static int s_entry(cf_replog_t *l, uint64_t epoch, int64_t at, const void *ws, size_t len,
                   uint32_t chunks)
{
    msgpack_sbuffer_clear(&l->sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &l->sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint32(&pk, 1);
    msgpack_pack_uint64(&pk, epoch);
    msgpack_pack_int64(&pk, at);
    cf_pack_str(&pk, l->node);
    if (chunks) {
        msgpack_pack_nil(&pk);
    } else {
        msgpack_pack_bin(&pk, (uint32_t)len);
        msgpack_pack_bin_body(&pk, ws, len);
    }
    msgpack_pack_uint32(&pk, chunks);
    msgpack_pack_uint64(&pk, len);
    return l->sb.data ? 0 : CF_EINTERNAL;
}

int cf_replog_append(cf_replog_t *l, uint64_t epoch, uint64_t seq, const void *ws, size_t len,
                     int64_t at, cf_error_t *reterr)
{
    char lk[S_KEYCAP], sk[S_KEYCAP], ck[S_KEYCAP], tk[S_KEYCAP], tv[24];
    size_t lkl = s_key(l, lk, sizeof lk, "leader");
    size_t skl = s_key(l, sk, sizeof sk, "log/%020" PRIu64, seq);
    cf_etcd_cmp_t lead = {lk, lkl, (int64_t)epoch};
    bool ok = false, unknown = false;
    int rc;
    uint32_t chunks = len > S_CHUNK ? (uint32_t)((len + S_CHUNK - 1) / S_CHUNK) : 0;
    for (uint32_t i = 0; i < chunks; i++) {
        size_t ckl = s_key(l, ck, sizeof ck, "chunk/%020" PRIu64 "/%020" PRIu64 "/%06" PRIu32,
                           seq, epoch, i);
        size_t off = (size_t)i * S_CHUNK, n = len - off < S_CHUNK ? len - off : S_CHUNK;
        cf_etcd_op_t put = {.key = ck, .klen = ckl, .val = (const char *)ws + off, .vlen = n};
        if ((rc = cf_etcd_txn(l->etcd, &lead, 1, &put, 1, &ok, NULL, &unknown, reterr)) != 0)
            return CF_EUNAVAIL;
        if (!ok)
            return cf_error_set(reterr, CF_ECONFLICT, "the leadership was lost");
    }
    if ((rc = s_entry(l, epoch, at, ws, len, chunks)) != 0)
        return cf_error_set(reterr, rc, "out of memory");
    cf_etcd_op_t ops[2] = {{.key = sk, .klen = skl, .val = l->sb.data, .vlen = l->sb.size}};
    size_t nops = 1;
    int64_t slot = at - at % S_SLOT;
    if (slot != l->last_slot) {
        size_t tkl = s_key(l, tk, sizeof tk, "logtime/%020" PRId64, slot);
        int tvl = snprintf(tv, sizeof tv, "%" PRIu64, seq);
        ops[nops++] = (cf_etcd_op_t){.key = tk, .klen = tkl, .val = tv, .vlen = (size_t)tvl};
    }
    cf_etcd_cmp_t cmp[2] = {lead, {sk, skl, 0}};
    rc = cf_etcd_txn(l->etcd, cmp, 2, ops, nops, &ok, NULL, &unknown, reterr);
    if (rc != 0)
        return CF_EUNAVAIL;
    if (!ok)
        return cf_error_set(reterr, CF_ECONFLICT,
                            "the leadership was lost (or batch %" PRIu64 " was taken)", seq);
    l->last_slot = slot;
    return 0;
}

/* Entries per group transaction: etcd allows 128 operations in one (its
 * --max-txn-ops default), and one more is the time slot. */
#define S_GROUP_MAX 64

int cf_replog_append_many(cf_replog_t *l, uint64_t epoch, const cf_replog_entry_t *v, size_t n,
                          int64_t at, size_t *appended, cf_error_t *reterr)
{
    *appended = 0;
    while (*appended < n) {
        const cf_replog_entry_t *g = &v[*appended];
        /* A big batch goes alone (in chunks). */
        size_t k = 0, bytes = 0;
        while (*appended + k < n && k < S_GROUP_MAX && g[k].len <= S_CHUNK &&
               bytes + g[k].len <= S_CHUNK)
            bytes += g[k++].len;
        if (k <= 1) {
            int rc = cf_replog_append(l, epoch, g[0].seq, g[0].ws, g[0].len, at, reterr);
            if (rc != 0)
                return rc;
            (*appended)++;
            continue;
        }
        char (*keys)[S_KEYCAP] = calloc(k + 2, S_KEYCAP);
        msgpack_sbuffer *bufs = calloc(k, sizeof *bufs);
        cf_etcd_op_t *ops = calloc(k + 1, sizeof *ops);
        int rc = keys && bufs && ops ? 0 : CF_EINTERNAL;
        size_t nops = 0;
        for (size_t i = 0; i < k && rc == 0; i++) {
            if ((rc = s_entry(l, epoch, at, g[i].ws, g[i].len, 0)) != 0)
                break;
            bufs[i] = l->sb;                  /* taken over; a new one for the next */
            msgpack_sbuffer_init(&l->sb);
            size_t kl = s_key(l, keys[i], S_KEYCAP, "log/%020" PRIu64, g[i].seq);
            ops[nops++] = (cf_etcd_op_t){.key = keys[i], .klen = kl, .val = bufs[i].data,
                                         .vlen = bufs[i].size};
        }
        char tv[24];
        int64_t slot = at - at % S_SLOT;
        if (rc == 0 && slot != l->last_slot) {
            size_t tkl = s_key(l, keys[k], S_KEYCAP, "logtime/%020" PRId64, slot);
            int tvl = snprintf(tv, sizeof tv, "%" PRIu64, g[0].seq);
            ops[nops++] = (cf_etcd_op_t){.key = keys[k], .klen = tkl, .val = tv,
                                         .vlen = (size_t)tvl};
        }
        bool ok = false, unknown = false;
        if (rc == 0) {
            size_t lkl = s_key(l, keys[k + 1], S_KEYCAP, "leader");
            cf_etcd_cmp_t cmp[2] = {{keys[k + 1], lkl, (int64_t)epoch},
                                    {keys[0], ops[0].klen, 0}};
            if (cf_etcd_txn(l->etcd, cmp, 2, ops, nops, &ok, NULL, &unknown, reterr) != 0)
                rc = CF_EUNAVAIL;
            else if (!ok)
                rc = cf_error_set(reterr, CF_ECONFLICT, "the leadership was lost (or batch %"
                                  PRIu64 " was taken)", g[0].seq);
        } else {
            cf_error_set(reterr, rc, "out of memory");
        }
        for (size_t i = 0; bufs && i < k; i++)
            msgpack_sbuffer_destroy(&bufs[i]);
        free(bufs);
        free(ops);
        free(keys);
        if (rc != 0)
            return rc;
        l->last_slot = slot;
        *appended += k;
    }
    return 0;
}

/* The log's first entry (0: empty). */
static int s_first(cf_replog_t *l, uint64_t *first, cf_error_t *reterr)
{
    char k[S_KEYCAP], e[S_KEYCAP];
    size_t kl = s_key(l, k, sizeof k, "log/"), el = s_key(l, e, sizeof e, "log0");
    cf_etcd_kvs_t kvs;
    int rc = cf_etcd_range(l->etcd, k, kl, e, el, 1, true, &kvs, reterr);
    if (rc != 0)
        return rc;
    *first = 0;
    if (kvs.n == 1 && kvs.v[0].klen > kl)
        *first = strtoull((const char *)kvs.v[0].key + kl, NULL, 10);
    cf_etcd_kvs_free(&kvs);
    return 0;
}

/* A chunked write set, put together. */
static int s_chunks(cf_replog_t *l, uint64_t seq, uint64_t epoch, uint32_t n, uint64_t total,
                    unsigned char **ret, cf_error_t *reterr)
{
    char k[S_KEYCAP], e[S_KEYCAP];
    size_t kl = s_key(l, k, sizeof k, "chunk/%020" PRIu64 "/%020" PRIu64 "/", seq, epoch);
    size_t el = s_key(l, e, sizeof e, "chunk/%020" PRIu64 "/%020" PRIu64 "0", seq, epoch);
    unsigned char *buf = malloc(total ? total : 1);
    if (!buf)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    size_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        /* One chunk per read: each answer stays near one etcd request. */
        char ck[S_KEYCAP];
        size_t ckl = s_key(l, ck, sizeof ck, "chunk/%020" PRIu64 "/%020" PRIu64 "/%06" PRIu32,
                           seq, epoch, i);
        cf_etcd_kvs_t kvs;
        int rc = cf_etcd_range(l->etcd, ck, ckl, NULL, 0, 1, false, &kvs, reterr);
        if (rc != 0) {
            free(buf);
            return rc;
        }
        bool bad = kvs.n != 1 || off + kvs.v[0].vlen > total;
        if (!bad) {
            memcpy(buf + off, kvs.v[0].val, kvs.v[0].vlen);
            off += kvs.v[0].vlen;
        }
        cf_etcd_kvs_free(&kvs);
        if (bad) {
            free(buf);
            return cf_error_set(reterr, CF_EINTERNAL,
                                "batch %" PRIu64 " has a missing or oversized chunk", seq);
        }
    }
    (void)kl;
    (void)el;
    if (off != total) {
        free(buf);
        return cf_error_set(reterr, CF_EINTERNAL, "batch %" PRIu64 " has missing chunks", seq);
    }
    *ret = buf;
    return 0;
}

int cf_replog_read(cf_replog_t *l, uint64_t from, size_t max, cf_replog_fn fn, void *ctx,
                   size_t *n, uint64_t *first, cf_error_t *reterr)
{
    *n = 0;
    if (first)
        *first = 0;
    char k[S_KEYCAP], e[S_KEYCAP];
    size_t kl = s_key(l, k, sizeof k, "log/%020" PRIu64, from);
    size_t el = s_key(l, e, sizeof e, "log/%020" PRIu64, from + max);
    cf_etcd_kvs_t kvs;
    int rc = cf_etcd_range(l->etcd, k, kl, e, el, (int64_t)max, false, &kvs, reterr);
    if (rc != 0)
        return rc;
    size_t plen = kl - 20;
    for (size_t i = 0; i < kvs.n && rc == 0; i++) {
        const cf_etcd_kv_t *kv = &kvs.v[i];
        uint64_t seq = kv->klen == plen + 20 ? strtoull((const char *)kv->key + plen, NULL, 10) : 0;
        if (seq != from + i)
            break;   /* a gap: stop at it */
        msgpack_unpacked up;
        msgpack_unpacked_init(&up);
        size_t off = 0;
        const msgpack_object *a = NULL;
        if (msgpack_unpack_next(&up, (const char *)kv->val, kv->vlen, &off) ==
                MSGPACK_UNPACK_SUCCESS &&
            up.data.type == MSGPACK_OBJECT_ARRAY && up.data.via.array.size == 7)
            a = up.data.via.array.ptr;
        if (!a || a[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            a[5].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            a[6].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
            (a[5].via.u64 == 0 && a[4].type != MSGPACK_OBJECT_BIN)) {
            msgpack_unpacked_destroy(&up);
            rc = cf_error_set(reterr, CF_EINTERNAL, "log entry %" PRIu64 " is not a batch", seq);
            break;
        }
        uint64_t epoch = a[1].via.u64;
        if (a[5].via.u64 == 0) {
            rc = fn(ctx, seq, epoch, a[4].via.bin.ptr, a[4].via.bin.size);
        } else {
            unsigned char *ws = NULL;
            rc = s_chunks(l, seq, epoch, (uint32_t)a[5].via.u64, a[6].via.u64, &ws, reterr);
            if (rc == 0)
                rc = fn(ctx, seq, epoch, ws, (size_t)a[6].via.u64);
            free(ws);
        }
        msgpack_unpacked_destroy(&up);
        if (rc == 0)
            (*n)++;
    }
    cf_etcd_kvs_free(&kvs);
    if (rc == 0 && *n == 0 && first)
        rc = s_first(l, first, reterr);
    return rc;
}

/* A value that is a decimal number (applied, logtime). */
static uint64_t s_kv_uint(const cf_etcd_kv_t *kv)
{
    char v[24];
    snprintf(v, sizeof v, "%.*s", (int)(kv->vlen < 23 ? kv->vlen : 23), (const char *)kv->val);
    return strtoull(v, NULL, 10);
}

/* The smallest applied seq any node has published (UINT64_MAX: none). */
static int s_min_applied(cf_replog_t *l, uint64_t *min, cf_error_t *reterr)
{
    char k[S_KEYCAP], e[S_KEYCAP];
    size_t kl = s_key(l, k, sizeof k, "applied/"), el = s_key(l, e, sizeof e, "applied0");
    cf_etcd_kvs_t kvs;
    int rc = cf_etcd_range(l->etcd, k, kl, e, el, 0, false, &kvs, reterr);
    if (rc != 0)
        return rc;
    *min = UINT64_MAX;
    for (size_t i = 0; i < kvs.n; i++) {
        uint64_t s = s_kv_uint(&kvs.v[i]);
        if (s < *min)
            *min = s;
    }
    cf_etcd_kvs_free(&kvs);
    return 0;
}

int cf_replog_trim(cf_replog_t *l, int64_t now, int64_t retention, uint64_t *head,
                   cf_error_t *reterr)
{
    *head = 0;
    uint64_t min_applied;
    int rc = s_min_applied(l, &min_applied, reterr);
    if (rc != 0)
        return rc;
    if (min_applied == UINT64_MAX || min_applied == 0)
        return 0;
    /* The first seq of the newest slot that began at least `retention`
     * ago: everything before it is older than the retention. */
    char k[S_KEYCAP], e[S_KEYCAP];
    int64_t cutoff = now - retention;
    size_t kl = s_key(l, k, sizeof k, "logtime/");
    size_t el = s_key(l, e, sizeof e, "logtime/%020" PRId64, cutoff < 0 ? 0 : cutoff + 1);
    cf_etcd_kvs_t kvs;
    if ((rc = cf_etcd_range(l->etcd, k, kl, e, el, 0, false, &kvs, reterr)) != 0)
        return rc;
    uint64_t by_age = 0;
    for (size_t i = 0; i < kvs.n; i++) {
        uint64_t s = s_kv_uint(&kvs.v[i]);
        if (s > by_age)
            by_age = s;
    }
    cf_etcd_kvs_free(&kvs);
    /* Below both - and never the last entry every node has applied: a log
     * that is never empty lets a node that comes back from far behind (or
     * from another cluster) see that it cannot follow. */
    uint64_t cut = by_age < min_applied ? by_age : min_applied;
    if (cut <= 1)
        return 0;
    char lk[S_KEYCAP], le[S_KEYCAP], ck[S_KEYCAP], ce[S_KEYCAP], te[S_KEYCAP];
    size_t lkl = s_key(l, lk, sizeof lk, "log/");
    size_t lel = s_key(l, le, sizeof le, "log/%020" PRIu64, cut);
    size_t ckl = s_key(l, ck, sizeof ck, "chunk/");
    size_t cel = s_key(l, ce, sizeof ce, "chunk/%020" PRIu64, cut);
    size_t tel = s_key(l, te, sizeof te, "logtime/%020" PRId64, cutoff < 0 ? 0 : cutoff - S_SLOT);
    cf_etcd_op_t ops[3] = {
        {.del = true, .key = lk, .klen = lkl, .end = le, .elen = lel},
        {.del = true, .key = ck, .klen = ckl, .end = ce, .elen = cel},
        {.del = true, .key = k, .klen = kl, .end = te, .elen = tel},
    };
    bool ok = false, unknown = false;
    if ((rc = cf_etcd_txn(l->etcd, NULL, 0, ops, 3, &ok, NULL, &unknown, reterr)) != 0)
        return rc;
    *head = cut;
    return 0;
}

/* --------------------------------------------------------------- watch --- */
struct cf_replog_watch {
    cf_etcd_watch_t *w;
};

int cf_replog_watch_start(const cf_replog_opts_t *o, int fd, cf_replog_watch_t **ret,
                          cf_error_t *reterr)
{
    cf_replog_watch_t *rw = calloc(1, sizeof *rw);
    if (!rw)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    /* [P/leader, P/log0): the leader key and every log key, not the chunks,
     * the nodes' applied records or the time slots. */
    char k[S_KEYCAP], e[S_KEYCAP];
    int kl = snprintf(k, sizeof k, "%s/leader", o->prefix);
    int el = snprintf(e, sizeof e, "%s/log0", o->prefix);
    cf_etcd_opts_t eo = {.urls = o->urls, .nurls = o->nurls, .tls_ca = o->tls_ca,
                         .tls_cert = o->tls_cert, .tls_key = o->tls_key};
    int rc = cf_etcd_watch_start(&eo, k, (size_t)kl, e, (size_t)el, fd, &rw->w, reterr);
    if (rc != 0) {
        free(rw);
        return rc;
    }
    *ret = rw;
    return 0;
}

void cf_replog_watch_stop(cf_replog_watch_t **w_p)
{
    cf_replog_watch_t *rw = w_p ? *w_p : NULL;
    if (!rw)
        return;
    cf_etcd_watch_stop(&rw->w);
    free(rw);
    *w_p = NULL;
}

/* ------------------------------------------------------------- nodes --- */
static int s_put(cf_replog_t *l, const char *key, size_t kl, const void *v, size_t vl,
                 cf_error_t *reterr)
{
    cf_etcd_op_t op = {.key = key, .klen = kl, .val = v, .vlen = vl};
    bool ok = false, unknown = false;
    return cf_etcd_txn(l->etcd, NULL, 0, &op, 1, &ok, NULL, &unknown, reterr);
}

int cf_replog_publish(cf_replog_t *l, const char *json, cf_error_t *reterr)
{
    char k[S_KEYCAP];
    size_t kl = s_key(l, k, sizeof k, "nodes/%s", l->node);
    return s_put(l, k, kl, json, strlen(json), reterr);
}

int cf_replog_describe(cf_replog_t *l, const char *node, char **json, cf_error_t *reterr)
{
    char k[S_KEYCAP];
    size_t kl = s_key(l, k, sizeof k, "nodes/%s", node);
    cf_etcd_kvs_t kvs;
    int rc = cf_etcd_range(l->etcd, k, kl, NULL, 0, 1, false, &kvs, reterr);
    if (rc != 0)
        return rc;
    if (kvs.n != 1) {
        cf_etcd_kvs_free(&kvs);
        return CF_ENOTFOUND;
    }
    *json = strndup((const char *)kvs.v[0].val, kvs.v[0].vlen);
    cf_etcd_kvs_free(&kvs);
    return *json ? 0 : cf_error_set(reterr, CF_EINTERNAL, "out of memory");
}

int cf_replog_applied(cf_replog_t *l, uint64_t seq, cf_error_t *reterr)
{
    char k[S_KEYCAP], v[24];
    size_t kl = s_key(l, k, sizeof k, "applied/%s", l->node);
    int vl = snprintf(v, sizeof v, "%" PRIu64, seq);
    return s_put(l, k, kl, v, (size_t)vl, reterr);
}

/* cluster.c: a replica's role, its log and its lease (cluster.h). */
#include "cluster.h"

#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cf_be.h"
#include "cf_version.h"
#include "replog.h"

/* A follower asks for new batches this often when the last ask found none
 * (and at once again when it found some). */
#define S_POLL_US 20000
/* ... and who leads (campaigning when no one does), and whether the log
 * still holds our next batch, this often: the failover's detection time. */
#define S_CHECK_US 100000
/* Batches read per ask. */
#define S_READ_MAX 64
/* How often a node says how far it has applied, and the leader trims. */
#define S_APPLIED_US 1000000
#define S_TRIM_US 5000000
/* The leader stops serving this long before its lease could lapse: etcd
 * counts the lease from its own receipt of the renewal, we from before
 * sending it, and clocks drift. */
#define S_LEASE_MARGIN_US 500000

struct cf_cluster {
    cf_cluster_opts_t o;
    char *node, *data_dir, *portal, *operator, *events, *digest;
    cf_replog_t *log;
    cf_store_t *store;                  /* while follower */
    bool leader, lost;
    uint64_t epoch;                     /* of the last batch applied or appended */
    uint64_t leader_epoch;              /* the known leader's (follower) */
    uint64_t seq;                       /* applied (follower) / appended (leader) */
    uint64_t applied_published;
    int64_t lease_end_us, next_renew_us, next_poll_us, next_applied_us, next_trim_us;
    int64_t next_check_us;              /* follower: leader and gap checks */
    char leader_node[80];
    char *leader_portal, *leader_operator, *leader_events;
    cf_cluster_view_t view;
};

static int64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void s_log(const cf_cluster_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_log(const cf_cluster_t *c, const char *fmt, ...)
{
    if (!c->o.log)
        return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    c->o.log(line);
}

static void s_view_update(cf_cluster_t *c)
{
    c->view.role = c->leader ? "leader" : "follower";
    c->view.epoch = c->leader ? c->epoch : c->leader_epoch;
    c->view.node = c->node;
    if (c->leader) {
        c->view.leader_node = c->node;
        c->view.leader_portal = c->portal;
        c->view.leader_operator = c->operator;
        c->view.leader_events = c->events;
    } else if (c->leader_node[0]) {
        c->view.leader_node = c->leader_node;
        c->view.leader_portal = c->leader_portal;
        c->view.leader_operator = c->leader_operator;
        c->view.leader_events = c->leader_events;
    } else {
        c->view.leader_node = c->view.leader_portal = NULL;
        c->view.leader_operator = c->view.leader_events = NULL;
    }
}

/* -------------------------------------------------------------- store --- */
static int s_store_open(cf_cluster_t *c, cf_error_t *reterr)
{
    /* bare: a new replica's first batches bring the meta records. */
    cf_store_opts_t so = {.map_size = c->o.map_size, .no_grow = c->o.no_grow, .bare = true};
    int rc = cf_store_open(c->data_dir, &so, &c->store, reterr);
    if (rc == 0)
        c->seq = cf_store_seq(c->store);
    return rc;
}

typedef struct {
    cf_cluster_t *c;
    cf_error_t *err;
} s_apply_t;

static int s_apply_one(void *ctx, uint64_t seq, uint64_t epoch, const void *ws, size_t len)
{
    s_apply_t *a = ctx;
    cf_cluster_t *c = a->c;
    if (epoch < c->epoch)
        return cf_error_set(a->err, CF_EINTERNAL,
                            "batch %" PRIu64 " of the log has epoch %" PRIu64
                            ", older than the %" PRIu64 " before it", seq, epoch, c->epoch);
    int rc = cf_store_apply(c->store, ws, len, a->err);
    /* A full map grows (as the engine's does) and the batch goes again. */
    while (rc == CF_EUNAVAIL && cf_store_map_full(c->store) && cf_store_grow(c->store) == 0)
        rc = cf_store_apply(c->store, ws, len, a->err);
    if (rc != 0)
        return rc;
    c->seq = seq;
    c->epoch = epoch;
    return 0;
}

static int s_ignore(void *ctx, uint64_t seq, uint64_t epoch, const void *ws, size_t len)
{
    (void)ctx, (void)seq, (void)epoch, (void)ws, (void)len;
    return 0;
}

/* Apply what the log holds after our seq (at most one read).  *n: how
 * many.  A log that starts after our next batch is a gap no read closes;
 * looking for one costs a request, so only with check_gap. */
static int s_catch_up(cf_cluster_t *c, size_t *n, bool check_gap, cf_error_t *reterr)
{
    s_apply_t a = {c, reterr};
    uint64_t first = 0;
    int rc = cf_replog_read(c->log, c->seq + 1, S_READ_MAX, s_apply_one, &a, n,
                            check_gap ? &first : NULL, reterr);
    if (rc != 0)
        return rc;
    if (*n == 0 && first > c->seq + 1)
        return cf_error_set(reterr, CF_EUNAVAIL,
                            "the cluster's log starts at batch %" PRIu64 " and this node has "
                            "applied up to %" PRIu64 ": the batches between are trimmed; "
                            "re-seed this node from a backup of another (docs/CLUSTER.md)",
                            first, c->seq);
    return 0;
}

/* ------------------------------------------------------------- leader --- */
static void s_leader_forget(cf_cluster_t *c)
{
    c->leader_node[0] = '\0';
    c->leader_epoch = 0;
    free(c->leader_portal);
    free(c->leader_operator);
    free(c->leader_events);
    c->leader_portal = c->leader_operator = c->leader_events = NULL;
}

static char *s_json_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? strdup(s) : NULL;
}

/* Learn who leads (and their endpoints, when it changed). */
static int s_learn_leader(cf_cluster_t *c, cf_error_t *reterr)
{
    char node[80];
    uint64_t epoch;
    int rc = cf_replog_leader(c->log, node, sizeof node, &epoch, reterr);
    if (rc != 0)
        return rc;
    if (strcmp(node, c->leader_node) != 0 || !c->leader_portal) {
        s_leader_forget(c);
        if (node[0]) {
            char *js = NULL;
            if (cf_replog_describe(c->log, node, &js, reterr) == 0) {
                json_t *j = json_loads(js, 0, NULL);
                if (j) {
                    c->leader_portal = s_json_str(j, "portal");
                    c->leader_operator = s_json_str(j, "operator");
                    c->leader_events = s_json_str(j, "events");
                    json_decref(j);
                }
                free(js);
            }
            snprintf(c->leader_node, sizeof c->leader_node, "%s", node);
        }
    }
    c->leader_epoch = node[0] ? epoch : 0;
    s_view_update(c);
    return 0;
}

/* The epoch marker: the first batch of an epoch records it (meta "epoch":
 * be64 epoch and the leader's name), through the log like any batch. */
static int s_mark_epoch(cf_cluster_t *c, cf_error_t *reterr)
{
    cf_store_set_hook(c->store, cf_cluster_hook, c);
    unsigned char v[8 + 80];
    cf_be64_put(v, c->epoch);
    size_t nl = strlen(c->node);
    memcpy(v + 8, c->node, nl);
    cf_txn_t *t;
    int rc = cf_store_begin(c->store, false, &t);
    if (rc == 0 && (rc = cf_txn_put(t, CF_DB_META, "epoch", 5, v, 8 + nl)) == 0)
        rc = cf_txn_commit(&t, NULL);
    cf_txn_abort(&t);
    cf_store_set_hook(c->store, NULL, NULL);
    if (rc != 0 || c->lost)
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot append the epoch marker");
    return 0;
}

static int s_campaign(cf_cluster_t *c, int64_t now, cf_error_t *reterr)
{
    bool won = false;
    uint64_t epoch = 0;
    int64_t t0 = now;
    int rc = cf_replog_campaign(c->log, c->seq + 1, &won, &epoch, reterr);
    if (rc != 0 || !won)
        return rc != 0 ? rc : CF_CLUSTER_NONE;
    c->leader = true;
    c->lost = false;
    c->epoch = epoch;
    c->lease_end_us = t0 + (int64_t)c->o.conf->lease_seconds * 1000000 - S_LEASE_MARGIN_US;
    c->next_renew_us = t0 + (int64_t)c->o.conf->lease_seconds * 1000000 / 3;
    c->next_trim_us = t0 + S_TRIM_US;
    s_leader_forget(c);
    s_view_update(c);
    if ((rc = s_mark_epoch(c, reterr)) != 0) {
        cf_replog_resign(c->log);
        c->leader = false;
        s_view_update(c);
        return rc;
    }
    cf_store_destroy(&c->store);
    s_log(c, "leader of epoch %" PRIu64 " from batch %" PRIu64, c->epoch, c->seq);
    return CF_CLUSTER_PROMOTE;
}

int cf_cluster_hook(void *ctx, uint64_t seq, const cf_wset_t *ws)
{
    cf_cluster_t *c = ctx;
    if (!ws) {
        /* Appended, but LMDB could not commit it: the log is ahead of this
         * store.  Only a follower's catch-up can mend that. */
        c->lost = true;
        return 0;
    }
    if (!c->leader || c->lost || s_mono_us() >= c->lease_end_us) {
        c->lost = true;
        return CF_EUNAVAIL;
    }
    cf_bytes_t enc = cf_wset_encoded(ws);
    cf_error_t err = {0};
    int rc = cf_replog_append(c->log, c->epoch, seq, enc.data, enc.len, (int64_t)time(NULL),
                              &err);
    if (rc != 0) {
        c->lost = true;
        s_log(c, "batch %" PRIu64 " %s: %s", seq,
              rc == CF_ECONFLICT ? "not appended" : "append outcome unknown", err.message);
        return rc;
    }
    c->seq = seq;
    return 0;
}

/* ---------------------------------------------------------------- api --- */
static char *s_publish_json(const cf_cluster_t *c)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "node", c->node, "portal",
                          c->portal, "operator", c->operator, "events", c->events, "version",
                          CF_VERSION, "workflows", c->digest);
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(j);
    return s;
}

int cf_cluster_open(const cf_cluster_opts_t *o, cf_cluster_t **ret, cf_error_t *reterr)
{
    cf_cluster_t *c = calloc(1, sizeof *c);
    if (!c)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    c->o = *o;
    if (!(c->node = strdup(o->node)) || !(c->data_dir = strdup(o->data_dir)) ||
        !(c->portal = strdup(o->portal)) || !(c->operator = strdup(o->operator)) ||
        !(c->events = strdup(o->events)) || !(c->digest = strdup(o->workflows_digest))) {
        cf_cluster_close(&c);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    c->o.node = c->node;
    c->o.data_dir = c->data_dir;
    s_view_update(c);
    const cf_cluster_conf_t *cl = o->conf;
    cf_replog_opts_t lo = {.urls = (const char *const *)cl->etcd, .nurls = cl->netcd,
                           .prefix = cl->prefix, .node = c->node,
                           .lease_seconds = cl->lease_seconds,
                           .timeout_ms = (long)cl->lease_seconds * 1000 / 3,
                           .tls_ca = cl->tls_ca, .tls_cert = cl->tls_cert, .tls_key = cl->tls_key};
    int rc = cf_replog_open(&lo, &c->log, reterr);
    if (rc == 0)
        rc = s_store_open(c, reterr);
    if (rc != 0) {
        cf_cluster_close(&c);
        return rc;
    }
    /* A store with batches the log never had was written outside this
     * cluster.  (A log that is empty may start from any store: a single
     * node becoming the cluster's first.) */
    if (c->seq > 0) {
        size_t n = 0;
        uint64_t first = 0;
        rc = cf_replog_read(c->log, c->seq, 1, s_ignore, NULL, &n, &first, reterr);
        if (rc == 0 && n == 0 && first != 0 && first <= c->seq)
            rc = cf_error_set(reterr, CF_EUNAVAIL,
                              "this node's store holds batches up to %" PRIu64 " that the "
                              "cluster's log does not: it was written outside this cluster",
                              c->seq);
        if (rc != 0) {
            cf_cluster_close(&c);
            return rc == CF_EINTERNAL ? CF_EUNAVAIL : rc;
        }
    }
    for (;;) {
        size_t n = 0;
        if ((rc = s_catch_up(c, &n, true, reterr)) != 0) {
            cf_cluster_close(&c);
            return rc == CF_EINTERNAL ? CF_EUNAVAIL : rc;
        }
        if (n == 0)
            break;
    }
    if ((rc = s_learn_leader(c, reterr)) != 0) {
        cf_cluster_close(&c);
        return rc;
    }
    if (c->leader_node[0]) {
        char *js = NULL;
        if (cf_replog_describe(c->log, c->leader_node, &js, reterr) == 0) {
            json_t *j = json_loads(js, 0, NULL);
            const char *d = j ? json_string_value(json_object_get(j, "workflows")) : NULL;
            bool same = d && strcmp(d, c->digest) == 0;
            json_decref(j);
            free(js);
            if (!same && strcmp(c->leader_node, c->node) != 0) {
                cf_error_set(reterr, CF_EUNAVAIL,
                             "the cluster's leader (node %s) runs a different set of workflows "
                             "and calendars: every node needs the same workflows directory",
                             c->leader_node);
                cf_cluster_close(&c);
                return CF_EUNAVAIL;
            }
        }
    }
    char *js = s_publish_json(c);
    rc = js ? cf_replog_publish(c->log, js, reterr) : CF_EINTERNAL;
    free(js);
    if (rc == 0)
        rc = cf_replog_applied(c->log, c->seq, reterr);
    if (rc != 0) {
        cf_cluster_close(&c);
        return rc;
    }
    c->applied_published = c->seq;
    *ret = c;
    return 0;
}

void cf_cluster_close(cf_cluster_t **c_p)
{
    cf_cluster_t *c = c_p ? *c_p : NULL;
    if (!c)
        return;
    if (c->leader && c->log)
        cf_replog_resign(c->log);
    cf_store_destroy(&c->store);
    cf_replog_close(&c->log);
    s_leader_forget(c);
    free(c->node);
    free(c->data_dir);
    free(c->portal);
    free(c->operator);
    free(c->events);
    free(c->digest);
    free(c);
    *c_p = NULL;
}

static void s_publish_applied(cf_cluster_t *c, int64_t now)
{
    if (now < c->next_applied_us || c->seq == c->applied_published)
        return;
    c->next_applied_us = now + S_APPLIED_US;
    if (cf_replog_applied(c->log, c->seq, NULL) == 0)
        c->applied_published = c->seq;
}

static int s_demote(cf_cluster_t *c, const char *why)
{
    s_log(c, "no longer the leader of epoch %" PRIu64 ": %s", c->epoch, why);
    cf_replog_resign(c->log);
    c->leader = false;
    c->lost = false;
    s_leader_forget(c);
    s_view_update(c);
    c->next_poll_us = 0;
    return CF_CLUSTER_DEMOTE;
}

int cf_cluster_tick(cf_cluster_t *c, int64_t now, cf_error_t *reterr)
{
    if (c->leader) {
        if (c->lost)
            return s_demote(c, "a batch could not be appended to the log");
        if (now >= c->next_renew_us) {
            int64_t t0 = s_mono_us(), ttl_ms = 0;
            cf_error_t err = {0};
            if (cf_replog_renew(c->log, &ttl_ms, &err) != 0 || ttl_ms <= 0) {
                if (ttl_ms <= 0 && !err.message[0])
                    snprintf(err.message, sizeof err.message, "the lease is gone");
                if (s_mono_us() >= c->lease_end_us || ttl_ms <= 0)
                    return s_demote(c, err.message);
                /* Not renewed, not lapsed yet: try again soon. */
                c->next_renew_us = s_mono_us() + 100000;
            } else {
                c->lease_end_us = t0 + ttl_ms * 1000 - S_LEASE_MARGIN_US;
                c->next_renew_us = t0 + (int64_t)c->o.conf->lease_seconds * 1000000 / 3;
            }
        }
        if (s_mono_us() >= c->lease_end_us)
            return s_demote(c, "the lease could not be renewed in time");
        s_publish_applied(c, now);
        if (now >= c->next_trim_us) {
            c->next_trim_us = now + S_TRIM_US;
            uint64_t head = 0;
            (void)cf_replog_trim(c->log, (int64_t)time(NULL), c->o.conf->log_retention, &head,
                                 NULL);
        }
        return CF_CLUSTER_NONE;
    }
    if (!c->store || now < c->next_poll_us)
        return CF_CLUSTER_NONE;
    size_t n = 0;
    cf_error_t err = {0};
    bool check = now >= c->next_check_us;
    if (check)
        c->next_check_us = now + S_CHECK_US;
    int rc = s_catch_up(c, &n, check, &err);
    if (rc == CF_EINTERNAL || (rc == CF_EUNAVAIL && err.message[0] && strstr(err.message, "re-seed"))) {
        *reterr = err;
        return CF_CLUSTER_FATAL;
    }
    if (rc == 0 && n > 0) {
        c->next_poll_us = now;   /* more may be waiting */
        s_publish_applied(c, now);
        return CF_CLUSTER_NONE;
    }
    c->next_poll_us = now + S_POLL_US;
    s_publish_applied(c, now);
    if (rc != 0 || !check)
        return CF_CLUSTER_NONE;   /* etcd unreachable: keep trying */
    if (s_learn_leader(c, &err) != 0 || c->leader_node[0])
        return CF_CLUSTER_NONE;
    rc = s_campaign(c, now, &err);
    if (rc == CF_CLUSTER_PROMOTE)
        return rc;
    if (rc < 0 && !c->store) {
        *reterr = err;
        return CF_CLUSTER_FATAL;
    }
    return CF_CLUSTER_NONE;
}

long cf_cluster_wait_ms(const cf_cluster_t *c, int64_t now)
{
    int64_t next = c->leader ? c->next_renew_us : c->next_poll_us;
    if (c->leader && c->next_trim_us < next)
        next = c->next_trim_us;
    int64_t w = next - now;
    return w <= 0 ? 0 : (long)((w + 999) / 1000);
}

int cf_cluster_follow(cf_cluster_t *c, cf_error_t *reterr)
{
    return s_store_open(c, reterr);
}

void cf_cluster_step_down(cf_cluster_t *c, const char *why)
{
    if (c->leader)
        (void)s_demote(c, why);
}

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int cf_cluster_digest(const char *dir, char hex[65], cf_error_t *reterr)
{
    DIR *dh = opendir(dir);
    if (!dh)
        return cf_error_set(reterr, CF_EBADREQ, "cannot read the workflows directory %s", dir);
    char **names = NULL;
    size_t n = 0;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(dh)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l < 6 || strcmp(de->d_name + l - 5, ".yaml") != 0 || de->d_name[0] == '.')
            continue;
        char **v = realloc(names, (n + 1) * sizeof *v);
        if (!v || !(v[n] = strdup(de->d_name))) {
            if (v)
                names = v;
            rc = cf_error_set(reterr, CF_EINTERNAL, "out of memory");
            break;
        }
        names = v;
        n++;
    }
    closedir(dh);
    if (n)
        qsort(names, n, sizeof *names, s_strcmp_p);
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            rc = cf_error_set(reterr, CF_EBADREQ, "cannot read %s", path);
            break;
        }
        crypto_hash_sha256_update(&st, (const unsigned char *)names[i], strlen(names[i]) + 1);
        unsigned char buf[8192];
        size_t got;
        while ((got = fread(buf, 1, sizeof buf, f)) > 0)
            crypto_hash_sha256_update(&st, buf, got);
        fclose(f);
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (rc != 0)
        return rc;
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&st, h);
    sodium_bin2hex(hex, 65, h, sizeof h);
    return 0;
}

bool cf_cluster_is_leader(const cf_cluster_t *c) { return c->leader; }

bool cf_cluster_lost(const cf_cluster_t *c) { return c->leader && c->lost; }

bool cf_cluster_serving(const cf_cluster_t *c, int64_t now)
{
    return c->leader && !c->lost && now < c->lease_end_us;
}

const cf_cluster_view_t *cf_cluster_view(const cf_cluster_t *c) { return &c->view; }

uint64_t cf_cluster_seq(const cf_cluster_t *c) { return c->seq; }

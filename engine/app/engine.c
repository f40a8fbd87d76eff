/* engine.c: the engine object - opening the store with its workflows and
 * calendars, and the batch loop: every write transaction of a request batch
 * or a timer batch begins, runs and commits here, through the store's one
 * commit path (store.h), so each batch gets its sequence number and the
 * commit hook sees its write set.
 *
 * The request pipeline: cf_engine_run -> dispatch (decode, keys, authorise,
 * idempotency; dispatch.c) -> op handler (ops.c, privacy.c) -> claims layer
 * (claims.c: load, apply, write, fan-out, publication, access log) ->
 * schema (keys, records) -> store.  Each stage calls only the next.
 *
 * Batches.  cf_engine_run applies a batch in one write transaction and
 * commits once.  Each operation validates everything (request, state
 * machine, guards, due times) before its first write, so a refused request
 * has written nothing and needs no nested transaction (LMDB's nested
 * transactions cost a 2 MiB dirty-list allocation each).  A write that fails
 * (full map, I/O) leaves the transaction failed: the batch is aborted and
 * run again from the start - after growing the map, or with that one request
 * answered `unavailable` - so the others still land.  Nothing is answered
 * before the commit returns.
 *
 * Idempotency entries and access-log entries older than their retention
 * are pruned a few per batch, oldest first (the idem_age index; the access
 * log's own keys, which begin with the time), so pruning never stalls a
 * batch.  The access log's budget is counted in entries and in the index
 * keys they name (a listing names up to 1,000 claims): a batch of n
 * requests writes at most n entries and prunes up to 32, or 8,192 claim
 * references, so entries past the retention are gone within a few batches
 * of falling due, also under load.
 */
#include "engine.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_be.h"
#include "cf_version.h"
#include "claims.h"
#include "dispatch.h"
#include "timers.h"

#define CF_IDEM_PRUNE_PER_BATCH 64
/* More than a batch can write (256 requests, a few events each), so the
 * feed's pruning keeps up with any load. */
#define CF_CHANGES_PRUNE_PER_BATCH 1024
#define CF_AUDIT_PRUNE_ENTRIES 32
#define CF_AUDIT_PRUNE_KEYS 8192
#define CF_AUDIT_RETENTION_DEFAULT ((int64_t)1825 * 86400)

struct cf_engine {
    cf_store_t *store;
    cf_cal_set_t *cals;
    const cf_cal_t *person_cal[CF_COUNTRY_N];   /* the first calendar of each country */
    cf_registry_t reg;
    cf_operator_t *operators;   /* owned copies */
    cf_limits_t lim;
    cf_clock_t clock;
    cf_idgen_t ids;
    char *data_dir;
    char cal_path[4096];        /* the calendars file, named in diagnostics */
    uint64_t audit_seq;         /* the access log's last key sequence */
    cf_pubs_t pubs;             /* published events of the last run */
    cf_pub_t *pub_view;
    bool compact_failed;
    cf_error_t compact_err;
    /* The earliest due timer, as of batch sequence next_due_seq: the daemon
     * asks before every poll, and only a commit can change the answer. */
    cf_time_t next_due;
    uint64_t next_due_seq;
    bool next_due_known;
    const cf_cluster_view_t *cluster;   /* borrowed; NULL: a single node */
};

static bool s_cal_exists(void *ctx, const char *name)
{
    return cf_cal_find(ctx, name) != NULL;
}

/* Add a workflow version with its calendars resolved: by country, and the
 * default country of its claims that have no member (the scalar calendar's
 * country, or the by_member_country map's first). */
static int s_registry_add(cf_engine_t *e, cf_wf_t **wf_p, const char *file, cf_diags_t *d)
{
    cf_wf_t *wf = *wf_p;
    int rc = cf_wf_check_calendars(wf, file, e->cal_path, s_cal_exists, e->cals, d);
    if (rc != 0) {
        cf_wf_destroy(wf_p);
        return rc;
    }
    cf_wf_entry_t *v = realloc(e->reg.v, (e->reg.n + 1) * sizeof *v);
    if (!v) {
        cf_wf_destroy(wf_p);
        return CF_EINTERNAL;
    }
    e->reg.v = v;
    cf_wf_entry_t *w = &e->reg.v[e->reg.n++];
    w->wf = wf;
    for (int i = 0; i < CF_COUNTRY_N; i++)
        w->cal[i] = cf_cal_find(e->cals, wf->calendars[i]);
    w->country = wf->calendar ? cf_cal_country(w->cal[0]) : wf->first_country;
    w->latest = false;
    *wf_p = NULL;
    return 0;
}

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A stored version no file provides any more: compile it from the store. */
typedef struct {
    cf_engine_t *e;
    cf_diags_t *d;
    int result;
} s_stored_t;

static int s_stored_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    s_stored_t *x = ctx;
    const char *at = memchr(k.data, '@', k.len);
    if (!at)
        return CF_SCAN_NEXT;
    char ver[24];
    size_t vl = k.len - (size_t)(at + 1 - (const char *)k.data);
    snprintf(ver, sizeof ver, "%.*s", (int)(vl < sizeof ver ? vl : sizeof ver - 1), at + 1);
    int64_t version = strtoll(ver, NULL, 10);
    if (cf_registry_find(&x->e->reg, k.data, (size_t)(at - (const char *)k.data), version))
        return CF_SCAN_NEXT;
    char label[200];
    snprintf(label, sizeof label, "store:%.*s", (int)(k.len < 180 ? k.len : 180),
             (const char *)k.data);
    cf_wf_t *wf = NULL;
    int rc;
    if ((rc = cf_wf_load_buffer(label, v.data, v.len, &wf, x->d)) != 0 ||
        (rc = s_registry_add(x->e, &wf, label, x->d)) != 0)
        x->result = rc;
    return CF_SCAN_NEXT;
}

/* Load every workflow file of dir, check each against the version the store
 * holds (a changed file under a stored version is refused), store new ones,
 * then compile the stored versions no file provides any more: claims stay
 * on the version they were created with. */
static int s_load_workflows(cf_engine_t *e, const char *dir, cf_diags_t *d)
{
    char path[4096];
    snprintf(e->cal_path, sizeof e->cal_path, "%s/calendars.yaml", dir);
    int rc = cf_cal_set_load_file(e->cal_path, &e->cals, d);
    if (rc != 0)
        return rc;
    /* A person's birthday begins at midnight in their country's zone: the
     * first calendar the file gives for that country says which zone. */
    for (size_t i = 0; i < cf_cal_count(e->cals); i++) {
        const cf_cal_t *cal = cf_cal_at(e->cals, i);
        cf_country_t c = cf_cal_country(cal);
        if ((unsigned)c < CF_COUNTRY_N && !e->person_cal[c])
            e->person_cal[c] = cal;
    }

    DIR *dh = opendir(dir);
    if (!dh) {
        cf_diag_add(d, dir, 0, 0, "cannot read the workflows directory: %s", strerror(errno));
        return CF_EBADREQ;
    }
    char **names = NULL;
    size_t nnames = 0;
    struct dirent *de;
    while ((de = readdir(dh)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".yaml") != 0 ||
            strcmp(de->d_name, "calendars.yaml") == 0 || de->d_name[0] == '.')
            continue;
        char **v = realloc(names, (nnames + 1) * sizeof *v);
        if (!v || !(v[nnames] = strdup(de->d_name))) {
            free(v ? v : names);
            closedir(dh);
            return CF_EINTERNAL;
        }
        names = v;
        nnames++;
    }
    closedir(dh);
    qsort(names, nnames, sizeof *names, s_strcmp_p);

    int result = 0;
    cf_txn_t *txn = NULL;
    if ((rc = cf_store_begin(e->store, false, &txn)) != 0) {
        cf_diag_add(d, e->data_dir, 0, 0, "cannot begin a transaction");
        result = rc;
        goto out;
    }
    for (size_t i = 0; i < nnames; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        cf_wf_t *wf = NULL;
        if ((rc = cf_wf_load_file(path, &wf, d)) != 0) {
            result = rc;
            continue;
        }
        char key[160];
        int kl = snprintf(key, sizeof key, "%s@%lld", wf->name, (long long)wf->version);
        if (cf_registry_find(&e->reg, wf->name, strlen(wf->name), wf->version)) {
            cf_diag_add(d, path, 0, 0, "workflow '%s' version %lld is defined twice",
                        wf->name, (long long)wf->version);
            cf_wf_destroy(&wf);
            result = CF_EBADREQ;
            continue;
        }
        cf_bytes_t v;
        rc = cf_txn_get(txn, CF_DB_WORKFLOWS, key, (size_t)kl, &v);
        if (rc == 0 && (v.len != wf->source_len || memcmp(v.data, wf->source, v.len) != 0)) {
            cf_diag_add(d, path, 0, 0,
                        "workflow '%s' version %lld differs from the version %lld the store "
                        "already holds; give the changed workflow a new version number",
                        wf->name, (long long)wf->version, (long long)wf->version);
            cf_wf_destroy(&wf);
            result = CF_EBADREQ;
            continue;
        }
        if (rc != 0 && rc != CF_ENOTFOUND) {
            cf_diag_add(d, path, 0, 0, "cannot read the stored workflow definitions");
            cf_wf_destroy(&wf);
            result = rc;
            continue;
        }
        if (rc == CF_ENOTFOUND &&
            cf_txn_put(txn, CF_DB_WORKFLOWS, key, (size_t)kl, wf->source, wf->source_len) != 0) {
            cf_diag_add(d, path, 0, 0, "cannot store the workflow definition");
            cf_wf_destroy(&wf);
            result = CF_EUNAVAIL;
            continue;
        }
        if ((rc = s_registry_add(e, &wf, path, d)) != 0)
            result = rc;
    }
    /* Versions only the store still has. */
    if (result == 0) {
        s_stored_t x = {e, d, 0};
        if ((rc = cf_txn_scan(txn, CF_DB_WORKFLOWS, NULL, 0, 0, s_stored_one, &x)) != 0)
            result = rc;
        else if (x.result != 0)
            result = x.result;
    }
    if (result == 0) {
        if ((rc = cf_txn_commit(&txn, NULL)) != 0) {
            cf_diag_add(d, e->data_dir, 0, 0, "cannot commit the workflow definitions");
            result = rc;
        }
    } else {
        cf_txn_abort(&txn);
    }
    /* Mark the latest version of each name. */
    cf_wf_entry_t *w = e->reg.v;
    for (size_t i = 0; i < e->reg.n; i++) {
        const cf_wf_entry_t *best = cf_registry_find(&e->reg, w[i].wf->name,
                                                     strlen(w[i].wf->name), 0);
        if (!best || best->wf->version < w[i].wf->version) {
            for (size_t j = 0; j < e->reg.n; j++)
                if (strcmp(w[j].wf->name, w[i].wf->name) == 0)
                    w[j].latest = false;
            w[i].latest = true;
        }
    }
out:
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    return result;
}


/* =============================================================== open === */

static int s_compact(cf_engine_t *e);

/* Stores written before the closed index (idx_closed) existed: index their
 * closed claims once, by the time of their last change, in one batch, and
 * leave meta "idx_closed" so it is done once. */
typedef struct {
    cf_engine_t *e;
    cf_batch_t *b;
    char kind;                  /* s_count_one: 's' or 'f' */
} s_mig_t;

static int s_mig_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_mig_t *x = ctx;
    if (k.len <= CF_ID_LEN)
        return CF_SCAN_NEXT;
    cf_claim_t c;
    int rc = cf_claims_load(x->b, (const char *)k.data + k.len - CF_ID_LEN, CF_ID_LEN, &c);
    if (rc == CF_ENOTFOUND)
        return CF_SCAN_NEXT;
    if (rc != 0)
        return rc;
    if (c.wf->states[c.state].final &&
        (c.data.via.map.size || c.ndocs || c.has_member)) {
        unsigned char key[CF_KEY_MAX];
        size_t kl = cf_key_closed(key, c.updated, c.id);
        rc = cf_txn_put(x->b->txn, CF_DB_IDX_CLOSED, key, kl, "", 0);
    }
    cf_claim_fini(&c);
    return rc;
}

static void s_batch_begin(cf_engine_t *e, cf_batch_t *b, cf_txn_t *txn);

static int s_migrate_closed(cf_engine_t *e)
{
    cf_txn_t *txn;
    int rc = cf_store_begin(e->store, false, &txn);
    if (rc != 0)
        return rc;
    cf_bytes_t v;
    if (cf_txn_get(txn, CF_DB_META, "idx_closed", 10, &v) == 0) {
        cf_txn_abort(&txn);
        return 0;
    }
    cf_batch_t b;
    s_batch_begin(e, &b, txn);
    s_mig_t x = {e, &b, 0};
    for (size_t w = 0; w < e->reg.n && rc == 0; w++) {
        const cf_wf_t *wf = e->reg.v[w].wf;
        for (size_t st = 0; st < wf->nstates && rc == 0; st++) {
            if (!wf->states[st].final)
                continue;
            unsigned char prefix[CF_KEY_MAX];
            size_t plen = cf_key_state_prefix(prefix, wf->name, wf->states[st].name);
            rc = cf_txn_scan(txn, CF_DB_IDX_STATE, prefix, plen, plen, s_mig_one, &x);
        }
    }
    cf_batch_fini(&b);
    if (rc == 0)
        rc = cf_txn_put(txn, CF_DB_META, "idx_closed", 10, "", 0);
    if (rc == 0)
        return cf_txn_commit(&txn, NULL);
    cf_txn_abort(&txn);
    return rc;
}

/* Stores written before the counts (db `counts`): count every index entry
 * once, in one batch, and leave meta "counts". */
static int s_count_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_mig_t *x = ctx;
    if (k.len <= CF_ID_LEN)
        return CF_SCAN_NEXT;
    return cf_claims_count(x->b->txn, x->kind, k.data, k.len - CF_ID_LEN, +1);
}

static int s_migrate_counts(cf_engine_t *e)
{
    cf_txn_t *txn;
    int rc = cf_store_begin(e->store, false, &txn);
    if (rc != 0)
        return rc;
    cf_bytes_t v;
    if (cf_txn_get(txn, CF_DB_META, "counts", 6, &v) == 0) {
        cf_txn_abort(&txn);
        return 0;
    }
    cf_batch_t b;
    s_batch_begin(e, &b, txn);
    s_mig_t x = {e, &b, 's'};
    rc = cf_txn_scan(txn, CF_DB_IDX_STATE, NULL, 0, 0, s_count_one, &x);
    x.kind = 'f';
    if (rc == 0)
        rc = cf_txn_scan(txn, CF_DB_IDX_FLAG, NULL, 0, 0, s_count_one, &x);
    cf_batch_fini(&b);
    if (rc == 0)
        rc = cf_txn_put(txn, CF_DB_META, "counts", 6, "", 0);
    if (rc == 0)
        return cf_txn_commit(&txn, NULL);
    cf_txn_abort(&txn);
    return rc;
}

int cf_engine_open(const cf_engine_opts_t *opts, cf_engine_t **ret, cf_diags_t *reterr)
{
    cf_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return CF_EINTERNAL;
    e->lim.idem_retention = opts->idem_retention > 0 ? opts->idem_retention : 7 * 86400;
    e->lim.audit_retention = opts->audit_retention > 0 ? opts->audit_retention
                                                       : CF_AUDIT_RETENTION_DEFAULT;
    e->lim.max_document = opts->max_document ? opts->max_document : (size_t)10 << 20;
    e->lim.purge_after = opts->purge_after;
    e->lim.show_operator_ids = opts->show_operator_ids;
    e->cluster = opts->cluster;
    e->lim.consent_changes = opts->consent_changes_per_day ? opts->consent_changes_per_day : 20;
    e->clock.manual = opts->manual_clock;
    e->clock.manual_now = opts->manual_start;
    e->data_dir = strdup(opts->data_dir ? opts->data_dir : "./var");
    int rc = CF_EINTERNAL;
    if (!e->data_dir)
        goto fail;
    if (opts->noperators) {
        e->operators = calloc(opts->noperators, sizeof *e->operators);
        if (!e->operators)
            goto fail;
        for (size_t i = 0; i < opts->noperators; i++) {
            e->operators[i].role = opts->operators[i].role;
            e->operators[i].id = strdup(opts->operators[i].id);
            e->operators[i].key = opts->operators[i].key ? strdup(opts->operators[i].key) : NULL;
            e->lim.noperators++;
            if (!e->operators[i].id)
                goto fail;
        }
    }
    e->lim.operators = e->operators;
    cf_store_opts_t so = {.map_size = opts->map_size, .map_max = opts->map_max,
                          .no_grow = opts->no_grow, .hook = opts->commit_hook,
                          .hook_ctx = opts->hook_ctx, .defer_meta_sync = opts->defer_sync,
                          .undo = opts->undo};
    cf_error_t err;
    if ((rc = cf_store_open(e->data_dir, &so, &e->store, &err)) != 0) {
        cf_diag_add(reterr, e->data_dir, 0, 0, "%s", err.message);
        goto fail;
    }
    if ((rc = s_load_workflows(e, opts->workflows_dir ? opts->workflows_dir : "./workflows",
                               reterr)) != 0)
        goto fail;
    if ((rc = s_migrate_counts(e)) != 0) {
        cf_diag_add(reterr, e->data_dir, 0, 0, "cannot count the claims by state and flag");
        goto fail;
    }
    if ((rc = s_migrate_closed(e)) != 0) {
        cf_diag_add(reterr, e->data_dir, 0, 0, "cannot index the closed claims");
        goto fail;
    }
    cf_txn_t *txn;
    cf_bytes_t v;
    bool compact = false;
    if ((rc = cf_store_begin(e->store, true, &txn)) == 0) {
        rc = cf_claims_audit_seq(txn, &e->audit_seq);
        compact = cf_txn_get(txn, CF_DB_META, "compact", 7, &v) == 0;
        /* A cluster's manual clock goes on from where the last leader's
         * was (ops.c, s_clock). */
        if (e->cluster && e->clock.manual && cf_txn_get(txn, CF_DB_META, "clock", 5, &v) == 0 &&
            v.len == 8 && (cf_time_t)cf_be64_get(v.data) > e->clock.manual_now)
            e->clock.manual_now = (cf_time_t)cf_be64_get(v.data);
        cf_txn_abort(&txn);
    }
    if (rc != 0) {
        cf_diag_add(reterr, e->data_dir, 0, 0, "cannot read the access log");
        goto fail;
    }
    /* A purge whose compaction did not finish: finish it now. */
    if (compact)
        s_compact(e);
    *ret = e;
    return 0;
fail:
    cf_engine_destroy(&e);
    return rc;
}

void cf_engine_destroy(cf_engine_t **e_p)
{
    if (!e_p || !*e_p)
        return;
    cf_engine_t *e = *e_p;
    cf_pubs_fini(&e->pubs);
    free(e->pub_view);
    for (size_t i = 0; i < e->reg.n; i++)
        cf_wf_destroy(&e->reg.v[i].wf);
    free(e->reg.v);
    cf_cal_set_destroy(&e->cals);
    cf_store_destroy(&e->store);
    for (size_t i = 0; i < e->lim.noperators; i++) {
        free((char *)e->operators[i].id);
        free((char *)e->operators[i].key);
    }
    free(e->operators);
    free(e->data_dir);
    free(e);
    *e_p = NULL;
}

const char *cf_engine_data_dir(const cf_engine_t *e) { return e->data_dir; }
bool cf_engine_clock_is_manual(const cf_engine_t *e) { return e->clock.manual; }
uint64_t cf_engine_seq(const cf_engine_t *e) { return cf_store_seq(e->store); }
uint64_t cf_engine_commit_us(const cf_engine_t *e) { return cf_store_commit_ns(e->store) / 1000; }
const uint64_t *cf_engine_commit_hist(const cf_engine_t *e) { return cf_store_commit_hist(e->store); }

int cf_engine_sync(cf_engine_t *e, uint64_t *ret_seq)
{
    if (!cf_store_defers_sync(e->store)) {
        *ret_seq = cf_store_seq(e->store);
        return 0;
    }
    return cf_store_sync(e->store, ret_seq);
}
cf_store_t *cf_engine_store(cf_engine_t *e) { return e->store; }
const char *cf_engine_version(void) { return CF_VERSION; }

bool cf_engine_compact_failed(const cf_engine_t *e, cf_error_t *reterr)
{
    if (e->compact_failed && reterr)
        *reterr = e->compact_err;
    return e->compact_failed;
}

cf_time_t cf_engine_now(const cf_engine_t *e)
{
    return e->clock.manual ? e->clock.manual_now : cf_time_now();
}

size_t cf_engine_published(const cf_engine_t *e, const cf_pub_t **ret)
{
    cf_engine_t *m = (cf_engine_t *)e;
    free(m->pub_view);
    m->pub_view = e->pubs.n ? calloc(e->pubs.n, sizeof *m->pub_view) : NULL;
    if (!m->pub_view) {
        *ret = NULL;
        return 0;
    }
    for (size_t i = 0; i < e->pubs.n; i++) {
        m->pub_view[i].topic = e->pubs.v[i].topic;
        m->pub_view[i].body = e->pubs.v[i].body;
        m->pub_view[i].body_len = e->pubs.v[i].body_len;
    }
    *ret = m->pub_view;
    return e->pubs.n;
}

/* ========================================================= compaction === */

/* Rewrite the file without the erased bytes, then drop the meta marker the
 * purge left (a batch of its own).  A failure keeps the marker: the next
 * purge or the next open tries again. */
static int s_compact(cf_engine_t *e)
{
    int rc = cf_store_compact(e->store, e->data_dir, &e->compact_err);
    e->compact_failed = rc != 0;
    if (rc != 0)
        return rc;
    cf_txn_t *txn;
    if ((rc = cf_store_begin(e->store, false, &txn)) == 0) {
        rc = cf_txn_del(txn, CF_DB_META, "compact", 7);
        rc = rc ? (cf_txn_abort(&txn), rc) : cf_txn_commit(&txn, NULL);
    }
    return rc;
}

/* ============================================================ batches === */

/* Add `compacted: false` and `compaction_error` to an ok reply map. */
static void s_reply_add_compaction(cf_reply_t *r, const cf_error_t *err)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    if (r->code != 0 || msgpack_unpack_next(&up, r->body.data, r->body.size, NULL) !=
                            MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&up);
        return;
    }
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, up.data.via.map.size + 2);
    for (uint32_t i = 0; i < up.data.via.map.size; i++) {
        msgpack_pack_object(&pk, up.data.via.map.ptr[i].key);
        msgpack_pack_object(&pk, up.data.via.map.ptr[i].val);
    }
    cf_pack_str(&pk, "compacted");
    msgpack_pack_false(&pk);
    cf_pack_str(&pk, "compaction_error");
    cf_pack_str(&pk, err->message);
    msgpack_unpacked_destroy(&up);
    if (sb.data) {
        msgpack_sbuffer_destroy(&r->body);
        r->body = sb;
    } else {
        msgpack_sbuffer_destroy(&sb);
    }
}

static void s_batch_begin(cf_engine_t *e, cf_batch_t *b, cf_txn_t *txn)
{
    cf_batch_init(b);
    b->store = e->store;
    b->txn = txn;
    b->now = cf_engine_now(e);
    b->reg = &e->reg;
    b->person_cal = e->person_cal;
    b->lim = &e->lim;
    b->clock = &e->clock;
    b->ids = &e->ids;
    b->audit_seq = &e->audit_seq;
    b->pubs = &e->pubs;
    b->cluster = e->cluster;
}

/* Delete a few idempotency and access-log entries past their retention,
 * oldest first. */
typedef struct {
    cf_batch_t *b;
    cf_time_t limit;
    int n;
} s_prune_t;

static int s_prune_one(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)v;
    s_prune_t *x = ctx;
    if (x->n == CF_IDEM_PRUNE_PER_BATCH || k.len < 8 ||
        (cf_time_t)cf_be64_get(k.data) >= x->limit)
        return CF_SCAN_STOP;
    int rc = cf_txn_del(x->b->txn, CF_DB_IDEM, (const char *)k.data + 8, k.len - 8);
    if (rc != 0)
        return rc;
    x->n++;
    return CF_SCAN_DEL;
}

/* The change feed keeps what the idempotency records keep: a subscriber
 * away longer than that starts again from a `query`. */
static int s_prune_change(void *ctx, cf_bytes_t k, cf_bytes_t v)
{
    (void)k;
    s_prune_t *x = ctx;
    if (x->n == CF_CHANGES_PRUNE_PER_BATCH || v.len < 8 ||
        (cf_time_t)cf_be64_get(v.data) >= x->limit)
        return CF_SCAN_STOP;
    x->n++;
    return CF_SCAN_DEL;
}

static int s_prune(cf_batch_t *b)
{
    s_prune_t x = {b, b->now - b->lim->idem_retention, 0};
    int rc = cf_txn_scan(b->txn, CF_DB_IDEM_AGE, NULL, 0, 0, s_prune_one, &x);
    s_prune_t xc = {b, b->now - b->lim->idem_retention, 0};
    if (rc == 0)
        rc = cf_txn_scan(b->txn, CF_DB_CHANGES, NULL, 0, 0, s_prune_change, &xc);
    if (rc == 0)
        rc = cf_claims_audit_prune(b, b->now - b->lim->audit_retention, CF_AUDIT_PRUNE_ENTRIES,
                                   CF_AUDIT_PRUNE_KEYS, NULL);
    return rc;
}

int cf_engine_run(cf_engine_t *e, const cf_request_t *reqs, size_t n, cf_reply_t *replies)
{
    int *forced = calloc(n ? n : 1, sizeof *forced);
    if (!forced) {
        for (size_t i = 0; i < n; i++)
            cf_reply_error(&replies[i], CF_EINTERNAL, "out of memory");
        return CF_EINTERNAL;
    }
    bool prune = true, compact = false;
    long compact_req = -1;      /* the request whose purge wants a compaction */
    int result = 0;
    /* clock ops move the manual clock inside the batch: a batch that is run
     * again, or not committed, must not have moved it. */
    const cf_time_t manual0 = e->clock.manual_now;
    for (;;) {
        cf_pubs_clear(&e->pubs);
        e->clock.manual_now = manual0;
        const uint64_t audit0 = e->audit_seq;
        cf_txn_t *txn;
        int rc = cf_store_begin(e->store, false, &txn);
        if (rc != 0) {
            for (size_t i = 0; i < n; i++)
                cf_reply_error_req(&replies[i], CF_EUNAVAIL,
                                   "the store cannot be opened for writing", &reqs[i]);
            result = CF_EUNAVAIL;
            break;
        }
        cf_batch_t b;
        s_batch_begin(e, &b, txn);
        long failed_at = -1;
        if (prune && (s_prune(&b) != 0 || cf_batch_failed(&b)))
            failed_at = -2;
        for (size_t i = 0; failed_at == -1 && i < n; i++) {
            if (forced[i]) {
                cf_reply_error_req(&replies[i], forced[i],
                                   forced[i] == CF_EUNAVAIL
                                       ? "the store is full: nothing was changed; retry later"
                                       : "the store failed: nothing was changed",
                                   &reqs[i]);
                continue;
            }
            bool had = b.compact_pending || b.purge_ran;
            cf_dispatch(&b, &reqs[i], &replies[i]);
            if (cf_batch_failed(&b))
                failed_at = (long)i;
            else if (!had && (b.compact_pending || b.purge_ran))
                compact_req = (long)i;
        }
        if (failed_at == -1 && e->audit_seq != audit0 &&
            (cf_claims_audit_seq_save(&b) != 0 || cf_batch_failed(&b)))
            failed_at = (long)n - 1;
        /* A purge erased data: mark the store for compaction in the same
         * transaction, so a crash before the compaction still finishes it. */
        if (failed_at == -1 && b.compact_pending &&
            (cf_txn_put(txn, CF_DB_META, "compact", 7, "", 0) != 0 || cf_batch_failed(&b)))
            failed_at = (long)n - 1;
        /* A purge after a compaction that failed tries it again. */
        compact = b.compact_pending || (b.purge_ran && e->compact_failed);
        cf_batch_fini(&b);
        if (failed_at != -1) {
            bool full = cf_store_map_full(e->store);
            cf_txn_abort(&txn);
            e->audit_seq = audit0;
            compact_req = -1;
            if (full && cf_store_grow(e->store) == 0)
                continue;
            if (failed_at == -2)
                prune = false;
            else
                forced[failed_at] = full ? CF_EUNAVAIL : CF_EINTERNAL;
            continue;
        }
        rc = cf_txn_commit(&txn, NULL);
        if (rc != 0 && cf_store_map_full(e->store) && cf_store_grow(e->store) == 0) {
            e->audit_seq = audit0;
            continue; /* the commit itself needed more map: grow, run again */
        }
        if (rc != 0) {
            for (size_t i = 0; i < n; i++)
                if (replies[i].wrote)
                    cf_reply_error_req(&replies[i], CF_EUNAVAIL,
                                       "the store cannot take writes now (disk full?): nothing "
                                       "was changed; retry later",
                                       &reqs[i]);
            cf_pubs_clear(&e->pubs);
            e->clock.manual_now = manual0;
            e->audit_seq = audit0;
            result = CF_EUNAVAIL;
            compact = false;
        }
        break;
    }
    /* A purge committed: rewrite the file so the erased bytes, which LMDB's
     * freed pages still hold, are gone from it.  If that fails the purge's
     * reply says so (the data is erased logically, not yet from the file);
     * the marker the purge left makes the next purge or start try again. */
    if (compact && s_compact(e) != 0 && e->compact_failed && compact_req >= 0)
        s_reply_add_compaction(&replies[compact_req], &e->compact_err);
    free(forced);
    return result;
}

cf_time_t cf_engine_next_due(cf_engine_t *e)
{
    uint64_t seq = cf_store_seq(e->store);
    if (e->next_due_known && e->next_due_seq == seq)
        return e->next_due;
    cf_txn_t *txn;
    if (cf_store_begin(e->store, true, &txn) != 0)
        return 0;
    cf_time_t due = 0;
    int rc = cf_timers_next_due(txn, &due);
    cf_txn_abort(&txn);
    if (rc != 0 && rc != CF_ENOTFOUND)
        return 0;           /* not remembered: asked again next time */
    e->next_due = rc == 0 ? due : 0;
    e->next_due_seq = seq;
    e->next_due_known = true;
    return e->next_due;
}

int cf_engine_fire_due(cf_engine_t *e, size_t max, size_t *fired)
{
    size_t total = 0;
    int result = 0;
    if (max == 0)
        max = 1000;
    cf_pubs_clear(&e->pubs);
    for (;;) {
        size_t n = 0, keep = e->pubs.n;
        const uint64_t audit0 = e->audit_seq;
        cf_txn_t *txn;
        if (cf_store_begin(e->store, false, &txn) != 0) {
            result = CF_EUNAVAIL;
            break;
        }
        cf_batch_t b;
        s_batch_begin(e, &b, txn);
        int rc = cf_timers_fire(&b, max, &n);
        bool failed = rc != 0 || cf_batch_failed(&b);
        cf_batch_fini(&b);
        if (!failed)
            rc = cf_txn_commit(&txn, NULL);
        else
            cf_txn_abort(&txn);
        if (failed || rc != 0) {
            bool full = cf_store_map_full(e->store);
            cf_pubs_truncate(&e->pubs, keep);
            e->audit_seq = audit0;
            if (full && cf_store_grow(e->store) == 0)
                continue;
            result = CF_EUNAVAIL;
            break;
        }
        total += n;
        if (n < max)
            break;
    }
    if (fired)
        *fired = total;
    return result;
}

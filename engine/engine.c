/* engine.c: the engine object - opening the store with its workflows and
 * calendars, running batches of requests with group commit, and the pieces
 * every operation shares (claim loading, transitions, publication).
 *
 * Batches.  cf_engine_run applies a batch in one write transaction and
 * commits once.  Each operation validates everything (request, state
 * machine, guards, due times) before its first write, so a refused request
 * has written nothing and needs no nested transaction (LMDB's nested
 * transactions cost a 2 MiB dirty-list allocation each).  A write that fails
 * (full map, I/O) leaves the transaction unusable: the batch is aborted and
 * run again from the start - after growing the map, or with that one request
 * answered `unavailable` - so the others still land.  Nothing is answered
 * before the commit returns.
 *
 * Idempotency.  A writing request's reply is kept under (endpoint, actor,
 * id) with a hash of the request's bytes, in the same transaction as its
 * effect; a retry gets the kept reply, a different request under the same id
 * gets `conflict`.  Entries older than the retention are pruned a few per
 * batch, oldest first (idem_age index), so pruning never stalls a batch.
 */
#include "engine_int.h"
#include "mpcheck.h"

#include <dirent.h>
#include <errno.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "person.h"

#define CF_VERSION "0.1.0"
#define CF_IDEM_PRUNE_PER_BATCH 64

/* ============================================================ replies === */

void cf_reply_init(cf_reply_t *r)
{
    msgpack_sbuffer_init(&r->body);
    r->code = 0;
    r->wrote = false;
}

void cf_reply_fini(cf_reply_t *r)
{
    msgpack_sbuffer_destroy(&r->body);
    msgpack_sbuffer_init(&r->body);
}

static void s_pack_error(msgpack_packer *pk, int code, const char *message)
{
    msgpack_pack_map(pk, 2);
    cf_pack_str(pk, "code");
    cf_pack_str(pk, cf_errname(code));
    cf_pack_str(pk, "message");
    cf_pack_str(pk, message);
}

static void s_reply_error_id(cf_reply_t *r, int code, const char *message,
                             const msgpack_object *id)
{
    msgpack_sbuffer_clear(&r->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, id ? 3 : 2);
    cf_pack_str(&pk, "ok");
    msgpack_pack_false(&pk);
    if (id) {
        cf_pack_str(&pk, "id");
        msgpack_pack_object(&pk, *id);
    }
    cf_pack_str(&pk, "error");
    s_pack_error(&pk, code, message);
    r->code = code;
}

/* An error reply to req that keeps its `id` when the frame has one (for
 * replies made outside the op: a batch that could not be stored). */
static void s_reply_error_req(cf_reply_t *r, int code, const char *message,
                              const cf_request_t *req)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    const msgpack_object *id = NULL;
    if (cf_mpcheck(req->frame, req->len, NULL) == 0 &&
        msgpack_unpack_next(&up, req->frame, req->len, &off) == MSGPACK_UNPACK_SUCCESS) {
        id = cf_mp_get(&up.data, "id");
        if (id && (id->type != MSGPACK_OBJECT_STR || id->via.str.size < 1 ||
                   id->via.str.size > 128))
            id = NULL;
    }
    s_reply_error_id(r, code, message, id);
    r->wrote = false;
    msgpack_unpacked_destroy(&up);
}

int cf_reply_error(cf_reply_t *r, int code, const char *message)
{
    s_reply_error_id(r, code, message, NULL);
    r->wrote = false;
    return r->body.data ? 0 : CF_EINTERNAL;
}

void cf_op_key(cf_op_t *op, const char *key)
{
    cf_pack_str(&op->pk, key);
    op->nout++;
}

int cf_op_fail(cf_op_t *op, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    op->err.code = code;
    vsnprintf(op->err.message, sizeof op->err.message, fmt, ap);
    va_end(ap);
    return code;
}

/* ============================================================ store io === */

int cf_engine_put(cf_engine_t *e, cf_db_t db, const void *k, size_t kl, const void *v,
                  size_t vl)
{
    int rc = cf_store_put(e->store, e->txn, db, k, kl, v, vl);
    if (rc != 0)
        e->broken = true;
    return rc;
}

int cf_engine_del(cf_engine_t *e, cf_db_t db, const void *k, size_t kl)
{
    int rc = cf_store_del(e->store, e->txn, db, k, kl);
    if (rc != 0)
        e->broken = true;
    return rc;
}

int cf_engine_get(cf_engine_t *e, cf_db_t db, const void *k, size_t kl, MDB_val *v)
{
    int rc = cf_store_get(e->store, e->txn, db, k, kl, v);
    if (rc != 0 && rc != CF_ENOTFOUND)
        e->broken = true;
    return rc;
}

/* ========================================================== registry === */

const cf_wf_entry_t *cf_engine_wf(const cf_engine_t *e, const char *name, size_t len,
                                  int64_t version)
{
    for (size_t i = 0; i < e->nwfs; i++) {
        const cf_wf_t *wf = e->wfs[i].wf;
        if (strlen(wf->name) == len && memcmp(wf->name, name, len) == 0 &&
            (version ? wf->version == version : e->wfs[i].latest))
            return &e->wfs[i];
    }
    return NULL;
}

static const cf_wf_t *s_resolve(void *ctx, const char *name, size_t len, int64_t version)
{
    const cf_wf_entry_t *w = cf_engine_wf(ctx, name, len, version);
    return w ? w->wf : NULL;
}

int cf_engine_load_claim(cf_engine_t *e, const char *id, size_t len, cf_claim_t *c)
{
    MDB_val v;
    if (len != CF_ID_LEN)
        return CF_ENOTFOUND;
    int rc = cf_engine_get(e, CF_DB_CLAIMS, id, len, &v);
    if (rc != 0)
        return rc;
    rc = cf_claim_decode(v.mv_data, v.mv_size, s_resolve, e, c);
    if (rc != 0)
        return rc;
    memcpy(c->id, id, CF_ID_LEN);
    c->id[CF_ID_LEN] = '\0';
    return 0;
}

static int s_registry_add(cf_engine_t *e, cf_wf_t **wf_p, const char *file, cf_diags_t *d)
{
    cf_wf_t *wf = *wf_p;
    const cf_cal_t *cal = cf_cal_find(e->cals, wf->calendar);
    if (!cal) {
        cf_diag_add(d, file, 0, 0, "workflow '%s' names calendar '%s', which calendars.yaml "
                    "does not declare", wf->name, wf->calendar);
        cf_wf_destroy(wf_p);
        return CF_EBADREQ;
    }
    cf_wf_entry_t *v = realloc(e->wfs, (e->nwfs + 1) * sizeof *v);
    if (!v) {
        cf_wf_destroy(wf_p);
        return CF_EINTERNAL;
    }
    e->wfs = v;
    e->wfs[e->nwfs].wf = wf;
    e->wfs[e->nwfs].cal = cal;
    e->wfs[e->nwfs].latest = false;
    e->nwfs++;
    *wf_p = NULL;
    return 0;
}

static int s_strcmp_p(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Load every workflow file of dir, check each against the version the store
 * holds (a changed file under a stored version is refused), store new ones,
 * then compile the stored versions no file provides any more: claims stay
 * on the version they were created with. */
static int s_load_workflows(cf_engine_t *e, const char *dir, cf_diags_t *d)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/calendars.yaml", dir);
    int rc = cf_cal_set_load_file(path, &e->cals, d);
    if (rc != 0)
        return rc;

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
    MDB_txn *txn = NULL;
    if ((rc = cf_store_begin(e->store, false, &txn)) != 0) {
        cf_diag_add(d, e->data_dir, 0, 0, "cannot begin a transaction");
        result = rc;
        goto out;
    }
    e->txn = txn;
    for (size_t i = 0; i < nnames; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        cf_wf_t *wf = NULL;
        if ((rc = cf_wf_load_file(path, &wf, d)) != 0) {
            result = rc;
            continue;
        }
        char key[160];
        int kl = snprintf(key, sizeof key, "%s@%lld", wf->name, (long long)wf->version);
        if (cf_engine_wf(e, wf->name, strlen(wf->name), wf->version)) {
            cf_diag_add(d, path, 0, 0, "workflow '%s' version %lld is defined twice",
                        wf->name, (long long)wf->version);
            cf_wf_destroy(&wf);
            result = CF_EBADREQ;
            continue;
        }
        MDB_val v;
        rc = cf_engine_get(e, CF_DB_WORKFLOWS, key, (size_t)kl, &v);
        if (rc == 0 && (v.mv_size != wf->source_len ||
                        memcmp(v.mv_data, wf->source, v.mv_size) != 0)) {
            cf_diag_add(d, path, 0, 0,
                        "workflow '%s' version %lld differs from the version %lld the store "
                        "already holds; give the changed workflow a new version number",
                        wf->name, (long long)wf->version, (long long)wf->version);
            cf_wf_destroy(&wf);
            result = CF_EBADREQ;
            continue;
        }
        if (rc == CF_ENOTFOUND &&
            cf_engine_put(e, CF_DB_WORKFLOWS, key, (size_t)kl, wf->source, wf->source_len) != 0) {
            cf_diag_add(d, path, 0, 0, "cannot store the workflow definition");
            cf_wf_destroy(&wf);
            result = CF_EUNAVAIL;
            continue;
        }
        if ((rc = s_registry_add(e, &wf, path, d)) != 0)
            result = rc;
    }
    /* Versions only the store still has. */
    MDB_cursor *cur;
    if (result == 0 && mdb_cursor_open(txn, cf_store_dbi(e->store, CF_DB_WORKFLOWS), &cur) == 0) {
        MDB_val k, v;
        int op = MDB_FIRST;
        while (mdb_cursor_get(cur, &k, &v, op) == 0) {
            op = MDB_NEXT;
            const char *at = memchr(k.mv_data, '@', k.mv_size);
            if (!at)
                continue;
            int64_t version = strtoll(at + 1, NULL, 10);
            if (cf_engine_wf(e, k.mv_data, (size_t)(at - (char *)k.mv_data), version))
                continue;
            char label[200];
            snprintf(label, sizeof label, "store:%.*s", (int)k.mv_size, (char *)k.mv_data);
            cf_wf_t *wf = NULL;
            if ((rc = cf_wf_load_buffer(label, v.mv_data, v.mv_size, &wf, d)) != 0 ||
                (rc = s_registry_add(e, &wf, label, d)) != 0)
                result = rc;
        }
        mdb_cursor_close(cur);
    }
    if (result == 0 && e->broken)
        result = CF_EUNAVAIL;
    if (result == 0) {
        if ((rc = cf_store_commit(e->store, txn)) != 0) {
            cf_diag_add(d, e->data_dir, 0, 0, "cannot commit the workflow definitions");
            result = rc;
        }
    } else {
        mdb_txn_abort(txn);
    }
    e->txn = NULL;
    e->broken = false;
    /* Mark the latest version of each name. */
    for (size_t i = 0; i < e->nwfs; i++) {
        const cf_wf_entry_t *best = cf_engine_wf(e, e->wfs[i].wf->name,
                                                 strlen(e->wfs[i].wf->name), 0);
        if (!best || best->wf->version < e->wfs[i].wf->version) {
            for (size_t j = 0; j < e->nwfs; j++)
                if (strcmp(e->wfs[j].wf->name, e->wfs[i].wf->name) == 0)
                    e->wfs[j].latest = false;
            e->wfs[i].latest = true;
        }
    }
out:
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    return result;
}

/* ============================================================== audit === */

static int s_audit_seq_load(cf_engine_t *e)
{
    MDB_txn *txn;
    int rc = cf_store_begin(e->store, true, &txn);
    if (rc != 0)
        return rc;
    MDB_cursor *cur;
    if ((rc = mdb_cursor_open(txn, cf_store_dbi(e->store, CF_DB_AUDIT), &cur)) == 0) {
        MDB_val k, v;
        if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == 16)
            e->audit_seq = cf_be64_get((unsigned char *)k.mv_data + 8);
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return cf_store_err(rc);
}

int cf_engine_audit(cf_engine_t *e, const char *actor, const char *opname,
                    const char *const *claims, size_t n)
{
    /* Key: at + sequence, so the log reads in time order; two indexes find
     * the entries of one claim or one actor. */
    unsigned char key[16];
    cf_be64_put(key, (uint64_t)e->now);
    cf_be64_put(key + 8, ++e->audit_seq);
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 4);
    msgpack_pack_int64(&pk, e->now);
    cf_pack_str(&pk, actor);
    cf_pack_str(&pk, opname);
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        cf_pack_strn(&pk, claims[i], CF_ID_LEN);
    int rc = sb.data ? cf_engine_put(e, CF_DB_AUDIT, key, sizeof key, sb.data, sb.size)
                     : CF_EINTERNAL;
    msgpack_sbuffer_destroy(&sb);
    unsigned char k[CF_NAME_MAX + 1 + 16 + CF_ID_LEN];
    for (size_t i = 0; rc == 0 && i < n; i++) {
        memcpy(k, claims[i], CF_ID_LEN);
        memcpy(k + CF_ID_LEN, key, 16);
        rc = cf_engine_put(e, CF_DB_AUDIT_CLAIM, k, CF_ID_LEN + 16, "", 0);
    }
    size_t al = strlen(actor);
    if (rc == 0 && al <= CF_NAME_MAX) {
        memcpy(k, actor, al);
        k[al] = 0;
        memcpy(k + al + 1, key, 16);
        rc = cf_engine_put(e, CF_DB_AUDIT_ACTOR, k, al + 17, "", 0);
    }
    return rc;
}

/* =============================================================== open === */

int cf_engine_open(const cf_engine_opts_t *opts, cf_engine_t **ret, cf_diags_t *reterr)
{
    cf_engine_t *e = calloc(1, sizeof *e);
    if (!e)
        return CF_EINTERNAL;
    msgpack_sbuffer_init(&e->scratch);
    e->idem_retention = opts->idem_retention > 0 ? opts->idem_retention : 7 * 86400;
    e->max_document = opts->max_document ? opts->max_document : (size_t)10 << 20;
    e->purge_after = opts->purge_after;
    e->manual = opts->manual_clock;
    e->manual_now = opts->manual_start;
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
            e->noperators++;
            if (!e->operators[i].id)
                goto fail;
        }
    }
    cf_store_opts_t so = {opts->map_size, opts->map_max, opts->no_grow};
    cf_error_t err;
    if ((rc = cf_store_open(e->data_dir, &so, &e->store, &err)) != 0) {
        cf_diag_add(reterr, e->data_dir, 0, 0, "%s", err.message);
        goto fail;
    }
    if ((rc = s_load_workflows(e, opts->workflows_dir ? opts->workflows_dir : "./workflows",
                               reterr)) != 0)
        goto fail;
    if ((rc = s_audit_seq_load(e)) != 0) {
        cf_diag_add(reterr, e->data_dir, 0, 0, "cannot read the access log");
        goto fail;
    }
    *ret = e;
    return 0;
fail:
    cf_engine_destroy(&e);
    return rc;
}

static void s_pubs_clear(cf_engine_t *e)
{
    for (size_t i = 0; i < e->npubs; i++) {
        free(e->pubs[i].topic);
        free(e->pubs[i].body);
    }
    e->npubs = 0;
}

void cf_engine_destroy(cf_engine_t **e_p)
{
    if (!e_p || !*e_p)
        return;
    cf_engine_t *e = *e_p;
    s_pubs_clear(e);
    free(e->pubs);
    free(e->pub_view);
    for (size_t i = 0; i < e->nwfs; i++)
        cf_wf_destroy(&e->wfs[i].wf);
    free(e->wfs);
    cf_cal_set_destroy(&e->cals);
    cf_store_destroy(&e->store);
    for (size_t i = 0; i < e->noperators; i++) {
        free((char *)e->operators[i].id);
        free((char *)e->operators[i].key);
    }
    free(e->operators);
    free(e->data_dir);
    msgpack_sbuffer_destroy(&e->scratch);
    free(e);
    *e_p = NULL;
}

const char *cf_engine_data_dir(const cf_engine_t *e) { return e->data_dir; }
bool cf_engine_clock_is_manual(const cf_engine_t *e) { return e->manual; }

cf_time_t cf_engine_now(const cf_engine_t *e)
{
    return e->manual ? e->manual_now : cf_time_now();
}

int cf_engine_backup(cf_engine_t *e, const char *dir, cf_error_t *reterr)
{
    return cf_store_backup(e->store, dir, reterr);
}

/* ============================================================ helpers === */

void cf_engine_new_id(cf_engine_t *e, char out[CF_ID_LEN + 1])
{
    static const char b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    uint64_t ms;
    if (e->manual) {
        ms = (uint64_t)e->manual_now * 1000;
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    }
    if (ms <= e->id_last_ms) {
        /* Same millisecond (or a clock step back): keep order by counting
         * up the random part. */
        ms = e->id_last_ms;
        for (int i = 9; i >= 0 && ++e->id_last_rand[i] == 0; i--)
            ;
    } else {
        e->id_last_ms = ms;
        randombytes_buf(e->id_last_rand, sizeof e->id_last_rand);
        e->id_last_rand[0] &= 0x7f; /* room to count up */
    }
    /* 48 bits of time -> 10 chars, 80 bits of randomness -> 16 chars. */
    for (int i = 9; i >= 0; i--, ms >>= 5)
        out[i] = b32[ms & 31];
    const unsigned char *r = e->id_last_rand;
    uint64_t hi = (uint64_t)r[0] << 32 | (uint64_t)r[1] << 24 | (uint64_t)r[2] << 16 |
                  (uint64_t)r[3] << 8 | r[4];
    uint64_t lo = (uint64_t)r[5] << 32 | (uint64_t)r[6] << 24 | (uint64_t)r[7] << 16 |
                  (uint64_t)r[8] << 8 | r[9];
    for (int i = 17; i >= 10; i--, hi >>= 5)
        out[i] = b32[hi & 31];
    for (int i = 25; i >= 18; i--, lo >>= 5)
        out[i] = b32[lo & 31];
    out[CF_ID_LEN] = '\0';
}

void cf_engine_member_hash(const cf_engine_t *e, const char *canon, unsigned char out[16])
{
    crypto_generichash(out, CF_MEMBER_HASH_LEN, (const unsigned char *)canon, strlen(canon),
                       cf_store_hashkey(e->store), 32);
}

int cf_engine_consent_ctx(cf_engine_t *e, const unsigned char *hash, cf_sm_ctx_t *ctx)
{
    ctx->consent_given_at = ctx->consent_valid_until = ctx->consent_withdrawn_at = 0;
    MDB_val v;
    int rc = cf_engine_get(e, CF_DB_MEMBERS, hash, CF_MEMBER_HASH_LEN, &v);
    if (rc == CF_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (v.mv_size != 24)
        return CF_EINTERNAL;
    ctx->consent_given_at = (cf_time_t)cf_be64_get(v.mv_data);
    ctx->consent_valid_until = (cf_time_t)cf_be64_get((unsigned char *)v.mv_data + 8);
    ctx->consent_withdrawn_at = (cf_time_t)cf_be64_get((unsigned char *)v.mv_data + 16);
    return 0;
}

int cf_engine_publish(cf_engine_t *e, const char *workflow, const char *event,
                      const char *body, size_t len)
{
    if (e->npubs == e->cappubs) {
        size_t cap = e->cappubs ? e->cappubs * 2 : 64;
        cf_pub_own_t *v = realloc(e->pubs, cap * sizeof *v);
        if (!v)
            return CF_EINTERNAL;
        e->pubs = v;
        e->cappubs = cap;
    }
    cf_pub_own_t *p = &e->pubs[e->npubs];
    size_t tl = strlen(workflow) + 1 + strlen(event) + 1;
    p->topic = malloc(tl);
    p->body = malloc(len ? len : 1);
    if (!p->topic || !p->body) {
        free(p->topic);
        free(p->body);
        return CF_EINTERNAL;
    }
    snprintf(p->topic, tl, "%s/%s", workflow, event);
    memcpy(p->body, body, len);
    p->body_len = len;
    e->npubs++;
    return 0;
}

size_t cf_engine_published(const cf_engine_t *e, const cf_pub_t **ret)
{
    cf_engine_t *m = (cf_engine_t *)e;
    free(m->pub_view);
    m->pub_view = e->npubs ? calloc(e->npubs, sizeof *m->pub_view) : NULL;
    if (!m->pub_view) {
        *ret = NULL;
        return 0;
    }
    for (size_t i = 0; i < e->npubs; i++) {
        m->pub_view[i].topic = e->pubs[i].topic;
        m->pub_view[i].body = e->pubs[i].body;
        m->pub_view[i].body_len = e->pubs[i].body_len;
    }
    *ret = m->pub_view;
    return e->npubs;
}

int cf_engine_dues(cf_engine_t *e, const cf_claim_t *c, const cf_sm_result_t *r,
                   cf_time_t *dues)
{
    if (!r->state_changed)
        return 0;
    if (r->nstart > CF_CLAIM_MAX_TIMERS)
        return CF_EINTERNAL;
    const cf_wf_entry_t *w = cf_engine_wf(e, c->wf->name, strlen(c->wf->name), c->wf->version);
    if (!w)
        return CF_EINTERNAL;
    for (size_t i = 0; i < r->nstart; i++)
        if (cf_cal_add(w->cal, e->now, r->start[i].after, &dues[i]) != 0)
            return CF_EBADREQ;
    return 0;
}

static size_t s_state_key(unsigned char *k, const cf_wf_t *wf, int state, const char *id)
{
    size_t a = strlen(wf->name), b = strlen(wf->states[state].name);
    memcpy(k, wf->name, a);
    k[a] = 0;
    memcpy(k + a + 1, wf->states[state].name, b);
    k[a + 1 + b] = 0;
    memcpy(k + a + b + 2, id, CF_ID_LEN);
    return a + b + 2 + CF_ID_LEN;
}

static size_t s_flag_key(unsigned char *k, const char *flag, const char *id)
{
    size_t a = strlen(flag);
    memcpy(k, flag, a);
    k[a] = 0;
    memcpy(k + a + 1, id, CF_ID_LEN);
    return a + 1 + CF_ID_LEN;
}

int cf_engine_write_transition(cf_engine_t *e, cf_claim_t *c, const cf_sm_result_t *r,
                               const char *event, const char *actor,
                               const char *hist_data, size_t hist_len,
                               const cf_time_t *dues, bool created)
{
    unsigned char k[CF_TIMER_KEY_MAX + 160];
    size_t kl;
    const cf_wf_t *wf = c->wf;
    int rc = 0;

    if (r->state_changed || created) {
        for (size_t i = 0; i < c->ntimers; i++) {
            kl = cf_timer_key(k, c->timers[i].due, CF_TIMER_CLAIM, c->id, CF_ID_LEN,
                              c->timers[i].name);
            if ((rc = cf_engine_del(e, CF_DB_TIMERS, k, kl)) != 0)
                return rc;
        }
        c->ntimers = 0;
        for (size_t i = 0; i < r->nstart; i++) {
            cf_claim_timer_t *t = &c->timers[c->ntimers++];
            snprintf(t->name, sizeof t->name, "%s", r->start[i].name);
            snprintf(t->event, sizeof t->event, "%s", r->start[i].event);
            t->due = dues[i];
            kl = cf_timer_key(k, t->due, CF_TIMER_CLAIM, c->id, CF_ID_LEN, t->name);
            if ((rc = cf_engine_put(e, CF_DB_TIMERS, k, kl, t->event, strlen(t->event))) != 0)
                return rc;
        }
        if (!created) {
            kl = s_state_key(k, wf, c->state, c->id);
            if ((rc = cf_engine_del(e, CF_DB_IDX_STATE, k, kl)) != 0)
                return rc;
        }
        kl = s_state_key(k, wf, r->next.state, c->id);
        if ((rc = cf_engine_put(e, CF_DB_IDX_STATE, k, kl, "", 0)) != 0)
            return rc;
    }
    uint64_t changed = c->flags ^ r->next.flags;
    for (size_t i = 0; i < wf->nflags; i++) {
        if (!((changed >> i) & 1))
            continue;
        kl = s_flag_key(k, wf->flags[i], c->id);
        rc = (r->next.flags >> i) & 1 ? cf_engine_put(e, CF_DB_IDX_FLAG, k, kl, "", 0)
                                      : cf_engine_del(e, CF_DB_IDX_FLAG, k, kl);
        if (rc != 0)
            return rc;
    }
    const char *from = created || r->from < 0 ? NULL : wf->states[c->state].name;
    c->state = r->next.state;
    c->prev = r->next.prev;
    c->flags = r->next.flags;
    c->updated = e->now;
    c->seq++;

    /* History: [seq, at, event, from|nil, to, actor, data|nil] */
    msgpack_sbuffer *sb = &e->scratch;
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 7);
    msgpack_pack_uint32(&pk, c->seq);
    msgpack_pack_int64(&pk, e->now);
    cf_pack_str(&pk, event);
    if (from)
        cf_pack_str(&pk, from);
    else
        msgpack_pack_nil(&pk);
    cf_pack_str(&pk, wf->states[c->state].name);
    cf_pack_str(&pk, actor);
    if (hist_data)
        msgpack_sbuffer_write(sb, hist_data, hist_len);
    else
        msgpack_pack_nil(&pk);
    if (!sb->data)
        return CF_EINTERNAL;
    memcpy(k, c->id, CF_ID_LEN);
    cf_be32_put(k + CF_ID_LEN, c->seq);
    if ((rc = cf_engine_put(e, CF_DB_HISTORY, k, CF_ID_LEN + 4, sb->data, sb->size)) != 0)
        return rc;

    /* Publication body, from the history record just written. */
    msgpack_sbuffer pub;
    msgpack_sbuffer_init(&pub);
    msgpack_packer ppk;
    msgpack_packer_init(&ppk, &pub, msgpack_sbuffer_write);
    rc = cf_event_pack_reply(&ppk, c->id, wf->name, sb->data, sb->size);
    if (rc == 0)
        rc = cf_engine_publish(e, wf->name, event, pub.data, pub.size);
    msgpack_sbuffer_destroy(&pub);
    if (rc != 0)
        return rc;

    if ((rc = cf_claim_encode(c, sb)) != 0)
        return rc;
    return cf_engine_put(e, CF_DB_CLAIMS, c->id, CF_ID_LEN, sb->data, sb->size);
}

int cf_engine_fanout(cf_engine_t *e, const unsigned char *hash, const char *event,
                     msgpack_packer *moved, uint32_t *nmoved)
{
    /* Collect the member's claim ids first: writing while a cursor walks the
     * same index is allowed in LMDB, but the list is short and this is
     * simpler to reason about. */
    MDB_cursor *cur;
    int rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_IDX_MEMBER), &cur);
    if (rc != 0) {
        e->broken = true;
        return cf_store_err(rc);
    }
    size_t nids = 0, cap = 16;
    char (*ids)[CF_ID_LEN] = malloc(cap * CF_ID_LEN);
    MDB_val k = {CF_MEMBER_HASH_LEN, (void *)hash}, v;
    rc = ids ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : ENOMEM;
    while (rc == 0 && k.mv_size == CF_MEMBER_HASH_LEN + CF_ID_LEN &&
           memcmp(k.mv_data, hash, CF_MEMBER_HASH_LEN) == 0) {
        if (nids == cap) {
            void *nv = realloc(ids, (cap *= 2) * CF_ID_LEN);
            if (!nv) {
                rc = ENOMEM;
                break;
            }
            ids = nv;
        }
        memcpy(ids[nids++], (char *)k.mv_data + CF_MEMBER_HASH_LEN, CF_ID_LEN);
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        free(ids);
        e->broken = true;
        return rc == ENOMEM ? CF_EINTERNAL : cf_store_err(rc);
    }
    rc = 0;
    for (size_t i = 0; i < nids && rc == 0; i++) {
        cf_claim_t c;
        if (cf_engine_load_claim(e, ids[i], CF_ID_LEN, &c) != 0)
            continue;
        cf_sm_ctx_t ctx = {.now = e->now, .claim_data = &c.data};
        cf_sm_claim_t cur_sm = {c.state, c.prev, c.flags};
        cf_sm_result_t r;
        cf_time_t dues[CF_CLAIM_MAX_TIMERS];
        if (!c.wf->states[c.state].final &&
            cf_engine_consent_ctx(e, hash, &ctx) == 0 &&
            cf_sm_apply(c.wf, &cur_sm, event, strlen(event), CF_ROLE_SYSTEM, NULL, &ctx, &r,
                        NULL) == 0 &&
            (r.state_changed || r.next.flags != c.flags) &&
            cf_engine_dues(e, &c, &r, dues) == 0) {
            rc = cf_engine_write_transition(e, &c, &r, event, "system", NULL, 0, dues, false);
            if (rc == 0 && moved) {
                cf_pack_strn(moved, c.id, CF_ID_LEN);
                (*nmoved)++;
            }
        }
        cf_claim_fini(&c);
    }
    free(ids);
    return rc;
}

/* ========================================================== dispatch === */

static const char *const s_common_keys[] = {"op", "id", "actor", "member", NULL};

static bool s_key_allowed(const cf_op_def_t *def, const msgpack_object_str *k)
{
    for (int i = 0; s_common_keys[i]; i++)
        if (strlen(s_common_keys[i]) == k->size && memcmp(s_common_keys[i], k->ptr, k->size) == 0)
            return true;
    for (int i = 0; def->keys && def->keys[i]; i++)
        if (strlen(def->keys[i]) == k->size && memcmp(def->keys[i], k->ptr, k->size) == 0)
            return true;
    return false;
}

/* A key's name for a message: only if short and printable (it is the
 * client's bytes). */
static const char *s_safe_name(const msgpack_object_str *k, char *buf, size_t cap)
{
    if (k->size == 0 || k->size >= cap || k->size > 40)
        return "(unprintable)";
    for (uint32_t i = 0; i < k->size; i++)
        if (k->ptr[i] < 0x21 || k->ptr[i] > 0x7e)
            return "(unprintable)";
    memcpy(buf, k->ptr, k->size);
    buf[k->size] = '\0';
    return buf;
}

static const cf_operator_t *s_operator(const cf_engine_t *e, const msgpack_object *actor)
{
    for (size_t i = 0; i < e->noperators; i++)
        if (cf_mp_streq(actor, e->operators[i].id))
            return &e->operators[i];
    return NULL;
}

/* Authenticate and authorise: who is asking, may they use this op here. */
static int s_authorise(cf_op_t *op, const cf_op_def_t *def, const cf_request_t *req)
{
    cf_engine_t *e = op->e;
    if (req->endpoint == CF_EP_PORTAL) {
        if (!(def->endpoints & CF_OPEP_PORTAL))
            return cf_op_fail(op, CF_EFORBIDDEN, "op '%s' is not served on the portal endpoint",
                              def->name);
        op->role = CF_ROLE_MEMBER;
        snprintf(op->actor, sizeof op->actor, "member");
        const msgpack_object *m = cf_mp_get(op->req, "member");
        if (def->needs_member && !m)
            return cf_op_fail(op, CF_EBADREQ, "field 'member' is required on the portal endpoint");
        if (m) {
            char canon[12];
            if (m->type != MSGPACK_OBJECT_STR ||
                cf_pid_canonical(m->via.str.ptr, m->via.str.size, canon) != 0)
                return cf_op_fail(op, CF_EBADREQ,
                                  "field 'member' is not a valid person id (Danish CPR or "
                                  "Norwegian national identity or D-number)");
            cf_engine_member_hash(e, canon, op->member_hash);
            op->has_member = true;
        }
        return 0;
    }
    if (!(def->endpoints & CF_OPEP_OPERATOR))
        return cf_op_fail(op, CF_EFORBIDDEN, "op '%s' is not served on the operator endpoint",
                          def->name);
    if (cf_mp_get(op->req, "member") && strcmp(def->name, "query") != 0)
        return cf_op_fail(op, CF_EBADREQ, "field 'member' is not allowed on the operator "
                          "endpoint for op '%s'", def->name);
    const msgpack_object *a = cf_mp_get(op->req, "actor");
    if (!a) {
        if (def->roles == 0) { /* ping */
            snprintf(op->actor, sizeof op->actor, "anonymous");
            return 0;
        }
        return cf_op_fail(op, CF_EBADREQ, "field 'actor' is required on the operator endpoint");
    }
    if (a->type != MSGPACK_OBJECT_STR)
        return cf_op_fail(op, CF_EBADREQ, "field 'actor' must be a string");
    const cf_operator_t *o = s_operator(e, a);
    if (!o)
        return cf_op_fail(op, CF_EFORBIDDEN, "actor is not an operator in the roster");
    if (req->auth_actor && strcmp(req->auth_actor, o->id) != 0)
        return cf_op_fail(op, CF_EFORBIDDEN,
                          "actor '%s' does not match the operator authenticated by the key", o->id);
    op->role = o->role;
    snprintf(op->actor, sizeof op->actor, "%s", o->id);
    if (def->roles && !(def->roles & o->role))
        return cf_op_fail(op, CF_EFORBIDDEN, "role '%s' may not use op '%s'",
                          cf_role_name(o->role), def->name);
    return 0;
}

/* The idempotency key: endpoint, actor, request id. */
static size_t s_idem_key(unsigned char *k, const cf_op_t *op, const msgpack_object *id)
{
    size_t al = strlen(op->actor);
    k[0] = op->ep == CF_EP_PORTAL ? 'p' : 'o';
    memcpy(k + 1, op->actor, al);
    k[1 + al] = 0;
    memcpy(k + 2 + al, id->via.str.ptr, id->via.str.size);
    return 2 + al + id->via.str.size;
}

/* Finish a reply: {ok, id?, fields...} or {ok: false, id?, error}. */
static void s_reply_finish(cf_op_t *op, int code, const msgpack_object *id, cf_reply_t *r)
{
    if (code != 0) {
        s_reply_error_id(r, code, op->err.message[0] ? op->err.message : cf_strerror(code), id);
        return;
    }
    msgpack_sbuffer_clear(&r->body);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &r->body, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1 + (id ? 1 : 0) + op->nout);
    cf_pack_str(&pk, "ok");
    msgpack_pack_true(&pk);
    if (id) {
        cf_pack_str(&pk, "id");
        msgpack_pack_object(&pk, *id);
    }
    if (op->out.size)
        msgpack_sbuffer_write(&r->body, op->out.data, op->out.size);
    r->code = 0;
}

static void s_dispatch(cf_engine_t *e, const cf_request_t *req, cf_reply_t *r)
{
    cf_op_t op;
    memset(&op, 0, sizeof op);
    op.e = e;
    op.ep = req->endpoint;
    msgpack_sbuffer_init(&op.out);
    msgpack_packer_init(&op.pk, &op.out, msgpack_sbuffer_write);
    r->wrote = false;

    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    const msgpack_object *idobj = NULL;
    int code = 0;
    size_t off = 0;
    /* Checked before unpacking: msgpack-c trusts declared counts. */
    int chk = cf_mpcheck(req->frame, req->len, NULL);
    msgpack_unpack_return ur = chk == 0
        ? msgpack_unpack_next(&up, req->frame, req->len, &off)
        : chk > 0 ? MSGPACK_UNPACK_CONTINUE : MSGPACK_UNPACK_PARSE_ERROR;
    if (ur != MSGPACK_UNPACK_SUCCESS) {
        code = cf_op_fail(&op, CF_EBADREQ, ur == MSGPACK_UNPACK_CONTINUE
                                               ? "the frame is truncated msgpack, or declares more elements than it holds"
                                               : "the frame is not msgpack, or nests deeper than 32");
        goto out;
    }
    if (off != req->len) {
        code = cf_op_fail(&op, CF_EBADREQ, "the frame holds bytes after the request map");
        goto out;
    }
    op.req = &up.data;
    if (op.req->type != MSGPACK_OBJECT_MAP) {
        code = cf_op_fail(&op, CF_EBADREQ, "the request must be a msgpack map");
        goto out;
    }
    for (uint32_t i = 0; i < op.req->via.map.size; i++) {
        const msgpack_object *k = &op.req->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR) {
            code = cf_op_fail(&op, CF_EBADREQ, "the request map's keys must be strings");
            goto out;
        }
        for (uint32_t j = 0; j < i; j++) {
            const msgpack_object *k2 = &op.req->via.map.ptr[j].key;
            /* An empty string's ptr may be NULL: memcmp must not see it. */
            if (k2->via.str.size == k->via.str.size &&
                (k->via.str.size == 0 ||
                 memcmp(k2->via.str.ptr, k->via.str.ptr, k->via.str.size) == 0)) {
                code = cf_op_fail(&op, CF_EBADREQ, "the request map repeats a key");
                goto out;
            }
        }
    }
    const msgpack_object *id = cf_mp_get(op.req, "id");
    if (id) {
        if (id->type != MSGPACK_OBJECT_STR || id->via.str.size < 1 || id->via.str.size > 128) {
            code = cf_op_fail(&op, CF_EBADREQ, "field 'id' must be a string of 1 to 128 bytes");
            goto out;
        }
        idobj = id;
    }
    const msgpack_object *opname = cf_mp_get(op.req, "op");
    if (!opname) {
        code = cf_op_fail(&op, CF_EBADREQ, "field 'op' is required");
        goto out;
    }
    if (opname->type != MSGPACK_OBJECT_STR) {
        code = cf_op_fail(&op, CF_EBADREQ, "field 'op' must be a string");
        goto out;
    }
    const cf_op_def_t *def = cf_op_find(opname->via.str.ptr, opname->via.str.size);
    if (!def) {
        char nb[48];
        code = cf_op_fail(&op, CF_EUNKNOWNOP, "unknown op '%s' (see docs/protocol.md)",
                          s_safe_name(&opname->via.str, nb, sizeof nb));
        goto out;
    }
    for (uint32_t i = 0; i < op.req->via.map.size; i++) {
        const msgpack_object_str *k = &op.req->via.map.ptr[i].key.via.str;
        if (!s_key_allowed(def, k)) {
            char nb[48];
            code = cf_op_fail(&op, CF_EBADREQ, "field '%s' is not allowed in op '%s'",
                              s_safe_name(k, nb, sizeof nb), def->name);
            goto out;
        }
    }
    if ((code = s_authorise(&op, def, req)) != 0)
        goto out;
    if (def->writes && !id) {
        code = cf_op_fail(&op, CF_EBADREQ, "field 'id' is required for op '%s' (the "
                          "idempotency key)", def->name);
        goto out;
    }

    unsigned char ikey[2 + CF_NAME_MAX + 130];
    size_t iklen = 0;
    unsigned char hash[32];
    if (def->writes) {
        iklen = s_idem_key(ikey, &op, id);
        crypto_generichash(hash, sizeof hash, req->frame, req->len, NULL, 0);
        MDB_val v;
        int rc = cf_engine_get(e, CF_DB_IDEM, ikey, iklen, &v);
        if (rc == 0) {
            if (v.mv_size < 40 || memcmp(v.mv_data, hash, 32) != 0) {
                code = cf_op_fail(&op, CF_ECONFLICT, "request id was already used for a "
                                  "different request");
                goto out;
            }
            /* The same request again: the same reply, no second effect. */
            msgpack_sbuffer_clear(&r->body);
            msgpack_sbuffer_write(&r->body, (char *)v.mv_data + 40, v.mv_size - 40);
            /* The kept reply's code: ok or the error it gave. */
            msgpack_unpacked ru;
            msgpack_unpacked_init(&ru);
            size_t ro = 0;
            r->code = 0;
            if (msgpack_unpack_next(&ru, r->body.data, r->body.size, &ro) ==
                MSGPACK_UNPACK_SUCCESS) {
                const msgpack_object *err = cf_mp_get(cf_mp_get(&ru.data, "error"), "code");
                if (err && err->type == MSGPACK_OBJECT_STR) {
                    char cb[32];
                    snprintf(cb, sizeof cb, "%.*s", (int)err->via.str.size, err->via.str.ptr);
                    r->code = cf_errcode(cb);
                }
            }
            msgpack_unpacked_destroy(&ru);
            msgpack_sbuffer_destroy(&op.out);
            msgpack_unpacked_destroy(&up);
            return;
        }
        if (rc != CF_ENOTFOUND) {
            code = cf_op_fail(&op, rc, "the store cannot be read");
            goto out;
        }
    }

    code = def->fn(&op);
    if (e->broken) {
        if (code == 0)
            code = cf_op_fail(&op, CF_EUNAVAIL, "the store cannot take writes now");
        goto out;
    }
    s_reply_finish(&op, code, idobj, r);
    r->wrote = op.wrote;
    if (def->writes && code != CF_EUNAVAIL && code != CF_EINTERNAL) {
        /* Keep the reply: [hash(32) | at(8) | reply]. */
        size_t vl = 40 + r->body.size;
        unsigned char *val = malloc(vl);
        if (!val) {
            code = cf_op_fail(&op, CF_EINTERNAL, "out of memory");
            goto out;
        }
        memcpy(val, hash, 32);
        cf_be64_put(val + 32, (uint64_t)e->now);
        memcpy(val + 40, r->body.data, r->body.size);
        int rc = cf_engine_put(e, CF_DB_IDEM, ikey, iklen, val, vl);
        free(val);
        unsigned char akey[8 + sizeof ikey];
        cf_be64_put(akey, (uint64_t)e->now);
        memcpy(akey + 8, ikey, iklen);
        if (rc == 0)
            cf_engine_put(e, CF_DB_IDEM_AGE, akey, 8 + iklen, "", 0);
        r->wrote = true;
    }
    msgpack_sbuffer_destroy(&op.out);
    msgpack_unpacked_destroy(&up);
    return;
out:
    s_reply_finish(&op, code, idobj, r);
    msgpack_sbuffer_destroy(&op.out);
    msgpack_unpacked_destroy(&up);
}

/* Delete a few idempotency entries past the retention, oldest first. */
static int s_idem_prune(cf_engine_t *e)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(e->txn, cf_store_dbi(e->store, CF_DB_IDEM_AGE), &cur);
    if (rc != 0)
        return cf_store_err(rc);
    cf_time_t limit = e->now - e->idem_retention;
    MDB_val k, v;
    int n = 0;
    while (n < CF_IDEM_PRUNE_PER_BATCH && (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (k.mv_size < 8 || (cf_time_t)cf_be64_get(k.mv_data) >= limit)
            break;
        MDB_val ik = {k.mv_size - 8, (char *)k.mv_data + 8};
        rc = mdb_del(e->txn, cf_store_dbi(e->store, CF_DB_IDEM), &ik, NULL);
        if (rc != 0 && rc != MDB_NOTFOUND)
            break;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        e->broken = true;
        return cf_store_err(rc);
    }
    return 0;
}

int cf_engine_run(cf_engine_t *e, const cf_request_t *reqs, size_t n, cf_reply_t *replies)
{
    int *forced = calloc(n ? n : 1, sizeof *forced);
    if (!forced) {
        for (size_t i = 0; i < n; i++)
            cf_reply_error(&replies[i], CF_EINTERNAL, "out of memory");
        return CF_EINTERNAL;
    }
    bool prune = true;
    int result = 0;
    /* clock ops move the manual clock inside the batch: a batch that is run
     * again, or not committed, must not have moved it. */
    const cf_time_t manual0 = e->manual_now;
    for (;;) {
        s_pubs_clear(e);
        e->manual_now = manual0;
        e->now = cf_engine_now(e);
        e->broken = false;
        cf_store_clear_map_full(e->store);
        int rc = cf_store_begin(e->store, false, &e->txn);
        if (rc != 0) {
            for (size_t i = 0; i < n; i++)
                s_reply_error_req(&replies[i], CF_EUNAVAIL,
                                  "the store cannot be opened for writing", &reqs[i]);
            result = CF_EUNAVAIL;
            break;
        }
        long broken_at = -1;
        if (prune && s_idem_prune(e) != 0)
            broken_at = -2;
        for (size_t i = 0; broken_at == -1 && i < n; i++) {
            if (forced[i]) {
                s_reply_error_req(&replies[i], forced[i],
                                  forced[i] == CF_EUNAVAIL
                                      ? "the store is full: nothing was changed; retry later"
                                      : "the store failed: nothing was changed",
                                  &reqs[i]);
                continue;
            }
            s_dispatch(e, &reqs[i], &replies[i]);
            if (e->broken)
                broken_at = (long)i;
        }
        if (broken_at != -1) {
            bool full = cf_store_map_full(e->store);
            mdb_txn_abort(e->txn);
            e->txn = NULL;
            if (full && cf_store_grow(e->store) == 0)
                continue;
            if (broken_at == -2)
                prune = false;
            else
                forced[broken_at] = full ? CF_EUNAVAIL : CF_EINTERNAL;
            continue;
        }
        rc = cf_store_commit(e->store, e->txn);
        e->txn = NULL;
        if (rc != 0 && cf_store_map_full(e->store) && cf_store_grow(e->store) == 0)
            continue; /* the commit itself needed more map: grow, run again */
        if (rc != 0) {
            for (size_t i = 0; i < n; i++)
                if (replies[i].wrote)
                    s_reply_error_req(&replies[i], CF_EUNAVAIL,
                                      "the store cannot take writes now (disk full?): nothing "
                                      "was changed; retry later",
                                      &reqs[i]);
            s_pubs_clear(e);
            e->manual_now = manual0;
            result = CF_EUNAVAIL;
        }
        break;
    }
    if (e->compact_pending) {
        /* A purge committed: rewrite the file so the erased bytes, which
         * LMDB's freed pages still hold, are gone from it. */
        cf_error_t err;
        e->compact_pending = false;
        cf_store_compact(e->store, e->data_dir, &err);
    }
    free(forced);
    return result;
}

cf_time_t cf_engine_next_due(cf_engine_t *e)
{
    MDB_txn *txn;
    if (cf_store_begin(e->store, true, &txn) != 0)
        return 0;
    MDB_cursor *cur;
    cf_time_t due = 0;
    if (mdb_cursor_open(txn, cf_store_dbi(e->store, CF_DB_TIMERS), &cur) == 0) {
        MDB_val k, v;
        if (mdb_cursor_get(cur, &k, &v, MDB_FIRST) == 0 && k.mv_size >= 8)
            due = (cf_time_t)cf_be64_get(k.mv_data);
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return due;
}

int cf_engine_fire_due(cf_engine_t *e, size_t max, size_t *fired)
{
    size_t total = 0;
    if (max == 0)
        max = 1000;
    s_pubs_clear(e);
    for (;;) {
        e->now = cf_engine_now(e);
        e->broken = false;
        cf_store_clear_map_full(e->store);
        size_t n = 0;
        size_t keep = e->npubs;
        int rc = cf_store_begin(e->store, false, &e->txn);
        if (rc != 0)
            return CF_EUNAVAIL;
        rc = cf_timers_fire_txn(e, max, &n);
        if (rc != 0 || e->broken) {
            bool full = cf_store_map_full(e->store);
            mdb_txn_abort(e->txn);
            e->txn = NULL;
            while (e->npubs > keep) {
                e->npubs--;
                free(e->pubs[e->npubs].topic);
                free(e->pubs[e->npubs].body);
            }
            if (full && cf_store_grow(e->store) == 0)
                continue;
            if (fired)
                *fired = total;
            return CF_EUNAVAIL;
        }
        rc = cf_store_commit(e->store, e->txn);
        e->txn = NULL;
        if (rc != 0) {
            while (e->npubs > keep) {
                e->npubs--;
                free(e->pubs[e->npubs].topic);
                free(e->pubs[e->npubs].body);
            }
            if (fired)
                *fired = total;
            return CF_EUNAVAIL;
        }
        total += n;
        if (n < max)
            break;
    }
    if (fired)
        *fired = total;
    return 0;
}

const char *cf_engine_version(void)
{
    return CF_VERSION;
}

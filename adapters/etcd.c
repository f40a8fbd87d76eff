/* etcd.c: etcd v3 over its JSON gateway (etcd.h).
 *
 * Each call builds one JSON body (jansson), POSTs it with a reused curl
 * handle (one connection kept alive per member), and reads the answer.
 * proto3's JSON leaves out fields at their defaults: a failed txn has no
 * "succeeded", an empty range no "kvs", a lapsed lease no "TTL" - so every
 * absent field reads as its zero.
 */
#include "etcd.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* An answer is at most this big: the log's reads ask for few entries. */
#define S_MAX_ANSWER ((size_t)256 << 20)

struct cf_etcd {
    CURL *curl;
    char **urls;
    size_t nurls, cur;
    long timeout_ms;
    char *buf;                  /* the last answer */
    size_t len, cap;
    bool overflow;
    struct curl_slist *headers;
};

static size_t s_write(char *p, size_t size, size_t n, void *ctx)
{
    cf_etcd_t *e = ctx;
    size_t add = size * n;
    if (e->len + add + 1 > S_MAX_ANSWER) {
        e->overflow = true;
        return 0;
    }
    if (e->len + add + 1 > e->cap) {
        size_t cap = e->cap ? e->cap : 4096;
        while (cap < e->len + add + 1)
            cap *= 2;
        char *b = realloc(e->buf, cap);
        if (!b)
            return 0;
        e->buf = b;
        e->cap = cap;
    }
    memcpy(e->buf + e->len, p, add);
    e->len += add;
    e->buf[e->len] = '\0';
    return add;
}

/* What every request of ours sets: JSON, no signals, http(s) only, TLS. */
static void s_setup(CURL *curl, struct curl_slist *headers, const cf_etcd_opts_t *o,
                    long connect_ms)
{
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
    if (o->tls_ca)
        curl_easy_setopt(curl, CURLOPT_CAINFO, o->tls_ca);
    if (o->tls_cert) {
        curl_easy_setopt(curl, CURLOPT_SSLCERT, o->tls_cert);
        curl_easy_setopt(curl, CURLOPT_SSLKEY, o->tls_key);
    }
}

int cf_etcd_new(const cf_etcd_opts_t *o, cf_etcd_t **ret, cf_error_t *reterr)
{
    static bool inited;
    if (!inited) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
            return cf_error_set(reterr, CF_EINTERNAL, "libcurl cannot start");
        inited = true;
    }
    cf_etcd_t *e = calloc(1, sizeof *e);
    if (!e || !(e->urls = calloc(o->nurls, sizeof *e->urls)) || !(e->curl = curl_easy_init()))
        goto oom;
    for (size_t i = 0; i < o->nurls; i++)
        if (!(e->urls[e->nurls++] = strdup(o->urls[i])))
            goto oom;
    e->timeout_ms = o->timeout_ms ? o->timeout_ms : 2000;
    if (!(e->headers = curl_slist_append(NULL, "Content-Type: application/json")))
        goto oom;
    s_setup(e->curl, e->headers, o, e->timeout_ms < 1000 ? e->timeout_ms : 1000);
    curl_easy_setopt(e->curl, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(e->curl, CURLOPT_WRITEDATA, e);
    curl_easy_setopt(e->curl, CURLOPT_TIMEOUT_MS, e->timeout_ms);
    curl_easy_setopt(e->curl, CURLOPT_TCP_NODELAY, 1L);
    *ret = e;
    return 0;
oom:
    cf_etcd_destroy(&e);
    return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
}

void cf_etcd_destroy(cf_etcd_t **e_p)
{
    cf_etcd_t *e = e_p ? *e_p : NULL;
    if (!e)
        return;
    if (e->curl)
        curl_easy_cleanup(e->curl);
    curl_slist_free_all(e->headers);
    for (size_t i = 0; i < e->nurls; i++)
        free(e->urls[i]);
    free(e->urls);
    free(e->buf);
    free(e);
    *e_p = NULL;
}

const char *cf_etcd_url(const cf_etcd_t *e) { return e->urls[e->cur]; }

/* ------------------------------------------------------------ encoding --- */
static json_t *s_b64(const void *p, size_t n)
{
    size_t cap = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    char *s = malloc(cap);
    if (!s)
        return NULL;
    sodium_bin2base64(s, cap, p, n, sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string(s);
    free(s);
    return j;
}

/* A base64 field of o into a new buffer (absent: empty). */
static int s_unb64(const json_t *o, const char *field, unsigned char **ret, size_t *len)
{
    const char *s = json_string_value(json_object_get(o, field));
    size_t sl = s ? strlen(s) : 0;
    unsigned char *b = malloc(sl + 1);
    if (!b)
        return CF_EINTERNAL;
    size_t bl = 0;
    if (sl && sodium_base642bin(b, sl + 1, s, sl, NULL, &bl, NULL,
                                sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(b);
        return CF_EINTERNAL;
    }
    b[bl] = 0;
    *ret = b;
    *len = bl;
    return 0;
}

static json_t *s_i64(int64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%lld", (long long)v);
    return json_string(b);
}

/* An int64 field: a string or a number; absent: 0. */
static int64_t s_get_i64(const json_t *o, const char *field)
{
    const json_t *v = json_object_get(o, field);
    if (json_is_string(v))
        return strtoll(json_string_value(v), NULL, 10);
    if (json_is_integer(v))
        return (int64_t)json_integer_value(v);
    return 0;
}

/* ----------------------------------------------------------- transport --- */
typedef enum { S_READ, S_WRITE } s_kind_t;

/* POST body to path on the current member (moving on as etcd.h says);
 * *ret the parsed answer.  A member that answers with an HTTP error counts
 * as reached: its error is the call's. */
static int s_call(cf_etcd_t *e, const char *path, json_t *body, s_kind_t kind, json_t **ret,
                  bool *unknown, cf_error_t *reterr)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    if (unknown)
        *unknown = false;
    if (!text)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    int rc = CF_EUNAVAIL;
    char why[160] = "no etcd URL";
    for (size_t tries = 0; tries < e->nurls; tries++) {
        char url[320];
        snprintf(url, sizeof url, "%s%s", e->urls[e->cur], path);
        e->len = 0;
        e->overflow = false;
        curl_easy_setopt(e->curl, CURLOPT_URL, url);
        curl_easy_setopt(e->curl, CURLOPT_POSTFIELDS, text);
        CURLcode cc = curl_easy_perform(e->curl);
        if (cc == CURLE_OK) {
            long status = 0;
            curl_easy_getinfo(e->curl, CURLINFO_RESPONSE_CODE, &status);
            json_error_t jerr;
            json_t *j = e->len ? json_loadb(e->buf, e->len, 0, &jerr) : NULL;
            if (status == 200 && json_is_object(j)) {
                free(text);
                *ret = j;
                return 0;
            }
            const char *msg = j ? json_string_value(json_object_get(j, "message")) : NULL;
            if (!msg && j)
                msg = json_string_value(json_object_get(j, "error"));
            snprintf(why, sizeof why, "etcd %s answered HTTP %ld%s%.100s", path, status,
                     msg ? ": " : "", msg ? msg : "");
            json_decref(j);
            /* 5xx: the member could not do it (no leader, stopping):
             * another may.  A write's outcome is then unknown. */
            rc = status >= 500 ? CF_EUNAVAIL : CF_EINTERNAL;
            if (rc == CF_EINTERNAL)
                break;
            if (kind == S_WRITE) {
                if (unknown)
                    *unknown = true;
                break;
            }
        } else {
            snprintf(why, sizeof why, "etcd at %s: %s", e->urls[e->cur], curl_easy_strerror(cc));
            bool unsent = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST;
            if (kind == S_WRITE && !unsent) {
                if (unknown)
                    *unknown = true;
                e->cur = (e->cur + 1) % e->nurls;
                break;
            }
        }
        e->cur = (e->cur + 1) % e->nurls;
    }
    free(text);
    return cf_error_set(reterr, rc, "%s", why);
}

/* --------------------------------------------------------------- calls --- */
void cf_etcd_kvs_free(cf_etcd_kvs_t *kvs)
{
    for (size_t i = 0; i < kvs->n; i++) {
        free(kvs->v[i].key);
        free(kvs->v[i].val);
    }
    free(kvs->v);
    memset(kvs, 0, sizeof *kvs);
}

int cf_etcd_range(cf_etcd_t *e, const void *key, size_t klen, const void *end, size_t elen,
                  int64_t limit, bool keys_only, cf_etcd_kvs_t *ret, cf_error_t *reterr)
{
    memset(ret, 0, sizeof *ret);
    json_t *b = json_object();
    if (!b)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    json_object_set_new(b, "key", s_b64(key, klen));
    if (end)
        json_object_set_new(b, "range_end", s_b64(end, elen));
    if (limit)
        json_object_set_new(b, "limit", s_i64(limit));
    if (keys_only)
        json_object_set_new(b, "keys_only", json_true());
    json_t *a;
    int rc = s_call(e, "/v3/kv/range", b, S_READ, &a, NULL, reterr);
    if (rc != 0)
        return rc;
    ret->revision = s_get_i64(json_object_get(a, "header"), "revision");
    ret->more = json_is_true(json_object_get(a, "more"));
    json_t *kvs = json_object_get(a, "kvs");
    size_t n = json_is_array(kvs) ? json_array_size(kvs) : 0;
    if (n && !(ret->v = calloc(n, sizeof *ret->v))) {
        json_decref(a);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        json_t *kv = json_array_get(kvs, i);
        cf_etcd_kv_t *o = &ret->v[ret->n];
        if (s_unb64(kv, "key", &o->key, &o->klen) != 0) {
            rc = CF_EINTERNAL;
            break;
        }
        ret->n++;
        if (!keys_only && s_unb64(kv, "value", &o->val, &o->vlen) != 0) {
            rc = CF_EINTERNAL;
            break;
        }
        o->create_rev = s_get_i64(kv, "create_revision");
        o->mod_rev = s_get_i64(kv, "mod_revision");
        o->lease = s_get_i64(kv, "lease");
    }
    json_decref(a);
    if (rc != 0) {
        cf_etcd_kvs_free(ret);
        return cf_error_set(reterr, rc, "etcd's range answer is not base64");
    }
    return 0;
}

int cf_etcd_txn(cf_etcd_t *e, const cf_etcd_cmp_t *cmps, size_t ncmp, const cf_etcd_op_t *ops,
                size_t nop, bool *succeeded, int64_t *revision, bool *unknown,
                cf_error_t *reterr)
{
    json_t *b = json_object(), *cmp = json_array(), *suc = json_array();
    if (!b || !cmp || !suc) {
        json_decref(b);
        json_decref(cmp);
        json_decref(suc);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    for (size_t i = 0; i < ncmp; i++) {
        json_t *c = json_object();
        json_object_set_new(c, "key", s_b64(cmps[i].key, cmps[i].klen));
        json_object_set_new(c, "result", json_string("EQUAL"));
        json_object_set_new(c, "target", json_string("CREATE"));
        json_object_set_new(c, "create_revision", s_i64(cmps[i].create_rev));
        json_array_append_new(cmp, c);
    }
    for (size_t i = 0; i < nop; i++) {
        json_t *r = json_object(), *o = json_object();
        json_object_set_new(r, "key", s_b64(ops[i].key, ops[i].klen));
        if (ops[i].del) {
            if (ops[i].end)
                json_object_set_new(r, "range_end", s_b64(ops[i].end, ops[i].elen));
            json_object_set_new(o, "request_delete_range", r);
        } else {
            json_object_set_new(r, "value", s_b64(ops[i].val, ops[i].vlen));
            if (ops[i].lease)
                json_object_set_new(r, "lease", s_i64(ops[i].lease));
            json_object_set_new(o, "request_put", r);
        }
        json_array_append_new(suc, o);
    }
    json_object_set_new(b, "compare", cmp);
    json_object_set_new(b, "success", suc);
    json_t *a;
    int rc = s_call(e, "/v3/kv/txn", b, S_WRITE, &a, unknown, reterr);
    if (rc != 0)
        return rc;
    *succeeded = json_is_true(json_object_get(a, "succeeded"));
    if (revision)
        *revision = s_get_i64(json_object_get(a, "header"), "revision");
    json_decref(a);
    return 0;
}

int cf_etcd_lease_grant(cf_etcd_t *e, int64_t ttl, int64_t *id, cf_error_t *reterr)
{
    json_t *b = json_object(), *a;
    json_object_set_new(b, "TTL", s_i64(ttl));
    int rc = s_call(e, "/v3/lease/grant", b, S_WRITE, &a, NULL, reterr);
    if (rc != 0)
        return rc;
    *id = s_get_i64(a, "ID");
    json_decref(a);
    return *id ? 0 : cf_error_set(reterr, CF_EINTERNAL, "etcd granted no lease");
}

int cf_etcd_lease_keepalive(cf_etcd_t *e, int64_t id, int64_t *ttl, cf_error_t *reterr)
{
    json_t *b = json_object(), *a;
    json_object_set_new(b, "ID", s_i64(id));
    /* The gateway streams keepalive answers; one request gets one. */
    int rc = s_call(e, "/v3/lease/keepalive", b, S_WRITE, &a, NULL, reterr);
    if (rc != 0)
        return rc;
    *ttl = s_get_i64(json_object_get(a, "result"), "TTL");
    json_decref(a);
    return 0;
}

int cf_etcd_lease_revoke(cf_etcd_t *e, int64_t id, cf_error_t *reterr)
{
    json_t *b = json_object(), *a;
    json_object_set_new(b, "ID", s_i64(id));
    int rc = s_call(e, "/v3/lease/revoke", b, S_WRITE, &a, NULL, reterr);
    if (rc != 0)
        return rc;
    json_decref(a);
    return 0;
}

/* --------------------------------------------------------------- watch --- */
/* etcd's gateway streams a watch as one long POST /v3/watch answer, a JSON
 * object per change.  The thread does not parse them: any bytes mean
 * "something changed". */
struct cf_etcd_watch {
    pthread_t thread;
    bool started;
    atomic_int stop;
    int fd;
    cf_etcd_opts_t o;            /* urls and TLS paths borrowed from the caller */
    char *body;
};

static void s_wake(int fd)
{
    ssize_t r = write(fd, "w", 1);   /* a full pipe: a wake-up is pending */
    (void)r;
}

static size_t s_watch_data(char *p, size_t size, size_t n, void *ctx)
{
    cf_etcd_watch_t *w = ctx;
    (void)p;
    if (atomic_load(&w->stop))
        return 0;
    s_wake(w->fd);
    return size * n;
}

static int s_watch_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&((cf_etcd_watch_t *)ctx)->stop) ? 1 : 0;
}

static void *s_watch_main(void *arg)
{
    cf_etcd_watch_t *w = arg;
    CURL *curl = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    size_t cur = 0;
    while (curl && h && !atomic_load(&w->stop)) {
        char url[320];
        snprintf(url, sizeof url, "%s/v3/watch", w->o.urls[cur]);
        curl_easy_reset(curl);
        s_setup(curl, h, &w->o, 1000);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, w->body);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, s_watch_data);
        curl_easy_setopt(curl, CURLOPT_WRITEDATA, w);
        curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, s_watch_progress);
        curl_easy_setopt(curl, CURLOPT_XFERINFODATA, w);
        (void)curl_easy_perform(curl);
        /* Ended: a member went away, or we are stopping. */
        s_wake(w->fd);
        cur = (cur + 1) % w->o.nurls;
        for (int i = 0; i < 10 && !atomic_load(&w->stop); i++)
            usleep(20000);
    }
    curl_slist_free_all(h);
    if (curl)
        curl_easy_cleanup(curl);
    return NULL;
}

int cf_etcd_watch_start(const cf_etcd_opts_t *o, const void *key, size_t klen, const void *end,
                        size_t elen, int fd, cf_etcd_watch_t **ret, cf_error_t *reterr)
{
    cf_etcd_watch_t *w = calloc(1, sizeof *w);
    json_t *b = json_object(), *cr = json_object();
    char *body = NULL;
    if (w && b && cr) {
        json_object_set_new(cr, "key", s_b64(key, klen));
        json_object_set_new(cr, "range_end", s_b64(end, elen));
        json_object_set_new(b, "create_request", cr);
        cr = NULL;
        body = json_dumps(b, JSON_COMPACT);
    }
    json_decref(cr);
    json_decref(b);
    if (!w || !body) {
        free(w);
        free(body);
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    }
    w->o = *o;
    w->fd = fd;
    w->body = body;
    atomic_init(&w->stop, 0);
    if (pthread_create(&w->thread, NULL, s_watch_main, w) != 0) {
        free(w->body);
        free(w);
        return cf_error_set(reterr, CF_EINTERNAL, "cannot start the watch thread");
    }
    w->started = true;
    *ret = w;
    return 0;
}

void cf_etcd_watch_stop(cf_etcd_watch_t **w_p)
{
    cf_etcd_watch_t *w = w_p ? *w_p : NULL;
    if (!w)
        return;
    atomic_store(&w->stop, 1);
    if (w->started)
        pthread_join(w->thread, NULL);
    free(w->body);
    free(w);
    *w_p = NULL;
}

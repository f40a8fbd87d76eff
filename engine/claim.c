/* claim.c: claim records and the protocol's claim and event maps.
 * Records are positional arrays: smaller than maps (no key names repeated in
 * every record) and cheap to decode; CF_STORE_FORMAT versions the layout. */
#include "claim.h"
#include "cf_err.h"

#include <stdlib.h>
#include <string.h>

void cf_pack_strn(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

void cf_pack_str(msgpack_packer *pk, const char *s)
{
    cf_pack_strn(pk, s, strlen(s));
}

void cf_pack_time(msgpack_packer *pk, cf_time_t t)
{
    char buf[CF_TIME_BUFLEN];
    cf_pack_str(pk, cf_time_format(t, buf));
}

void cf_hex(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

const msgpack_object *cf_mp_get(const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen(key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            memcmp(k->via.str.ptr, key, klen) == 0)
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

bool cf_mp_streq(const msgpack_object *o, const char *s)
{
    /* An empty string's ptr may be NULL: memcmp must not see it. */
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           (o->via.str.size == 0 || memcmp(o->via.str.ptr, s, o->via.str.size) == 0);
}

static bool s_str(const msgpack_object *o, char *out, size_t cap)
{
    if (o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap)
        return false;
    memcpy(out, o->via.str.ptr, o->via.str.size);
    out[o->via.str.size] = '\0';
    return true;
}

static bool s_int(const msgpack_object *o, int64_t *v)
{
    if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX) {
        *v = (int64_t)o->via.u64;
        return true;
    }
    if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *v = o->via.i64;
        return true;
    }
    return false;
}

static int s_state_index(const cf_wf_t *wf, const msgpack_object *o)
{
    char name[CF_NAME_MAX + 1];
    if (!s_str(o, name, sizeof name))
        return -1;
    return cf_wf_state_find(wf, name);
}

int cf_claim_decode(const void *bytes, size_t len, cf_wf_resolve_fn resolve,
                    void *ctx, cf_claim_t *c)
{
    memset(c, 0, sizeof *c);
    c->raw = malloc(len ? len : 1);
    if (!c->raw)
        return CF_EINTERNAL;
    memcpy(c->raw, bytes, len);
    msgpack_unpacked_init(&c->up);
    c->has_up = true;
    size_t off = 0;
    if (msgpack_unpack_next(&c->up, c->raw, len, &off) != MSGPACK_UNPACK_SUCCESS)
        goto corrupt;
    const msgpack_object *r = &c->up.data;
    if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 13)
        goto corrupt;
    const msgpack_object *a = r->via.array.ptr;
    int64_t version, t;
    if (a[0].type != MSGPACK_OBJECT_STR || !s_int(&a[1], &version))
        goto corrupt;
    c->wf = resolve(ctx, a[0].via.str.ptr, a[0].via.str.size, version);
    if (!c->wf)
        goto corrupt;
    if ((c->state = s_state_index(c->wf, &a[2])) < 0)
        goto corrupt;
    c->prev = a[3].type == MSGPACK_OBJECT_NIL ? -1 : s_state_index(c->wf, &a[3]);
    if (a[4].type != MSGPACK_OBJECT_MAP)
        goto corrupt;
    c->data = a[4];
    if (a[5].type != MSGPACK_OBJECT_ARRAY)
        goto corrupt;
    for (uint32_t i = 0; i < a[5].via.array.size; i++) {
        char name[CF_NAME_MAX + 1];
        if (!s_str(&a[5].via.array.ptr[i], name, sizeof name))
            goto corrupt;
        int bit = cf_wf_flag_find(c->wf, name);
        if (bit >= 0)
            c->flags |= UINT64_C(1) << bit;
    }
    if (a[6].type != MSGPACK_OBJECT_ARRAY || a[6].via.array.size > CF_CLAIM_MAX_TIMERS)
        goto corrupt;
    for (uint32_t i = 0; i < a[6].via.array.size; i++) {
        const msgpack_object *tm = &a[6].via.array.ptr[i];
        cf_claim_timer_t *ct = &c->timers[c->ntimers++];
        if (tm->type != MSGPACK_OBJECT_ARRAY || tm->via.array.size != 3 ||
            !s_str(&tm->via.array.ptr[0], ct->name, sizeof ct->name) ||
            !s_int(&tm->via.array.ptr[1], &ct->due) ||
            !s_str(&tm->via.array.ptr[2], ct->event, sizeof ct->event))
            goto corrupt;
    }
    if (a[7].type != MSGPACK_OBJECT_ARRAY || a[7].via.array.size > CF_CLAIM_MAX_DOCS)
        goto corrupt;
    for (uint32_t i = 0; i < a[7].via.array.size; i++) {
        const msgpack_object *d = &a[7].via.array.ptr[i];
        cf_claim_doc_t *cd = &c->docs[c->ndocs++];
        int64_t size;
        if (d->type != MSGPACK_OBJECT_ARRAY || d->via.array.size != 3 ||
            !s_str(&d->via.array.ptr[0], cd->kind, sizeof cd->kind) ||
            d->via.array.ptr[1].type != MSGPACK_OBJECT_BIN ||
            d->via.array.ptr[1].via.bin.size != 32 || !s_int(&d->via.array.ptr[2], &size))
            goto corrupt;
        memcpy(cd->sha, d->via.array.ptr[1].via.bin.ptr, 32);
        cd->size = (uint64_t)size;
    }
    if (a[8].type != MSGPACK_OBJECT_NIL && !s_str(&a[8], c->parent, sizeof c->parent))
        goto corrupt;
    if (a[9].type == MSGPACK_OBJECT_BIN && a[9].via.bin.size == CF_MEMBER_HASH_LEN) {
        c->has_member = true;
        memcpy(c->member, a[9].via.bin.ptr, CF_MEMBER_HASH_LEN);
    } else if (a[9].type != MSGPACK_OBJECT_NIL) {
        goto corrupt;
    }
    if (!s_int(&a[10], &c->created) || !s_int(&a[11], &c->updated) || !s_int(&a[12], &t))
        goto corrupt;
    c->seq = (uint32_t)t;
    return 0;
corrupt:
    cf_claim_fini(c);
    return CF_EINTERNAL;
}

void cf_claim_fini(cf_claim_t *c)
{
    if (c->has_up)
        msgpack_unpacked_destroy(&c->up);
    c->has_up = false;
    free(c->raw);
    c->raw = NULL;
}

static void s_pack_flags(msgpack_packer *pk, const cf_claim_t *c)
{
    uint32_t n = 0;
    for (size_t i = 0; i < c->wf->nflags; i++)
        n += (c->flags >> i) & 1;
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < c->wf->nflags; i++)
        if ((c->flags >> i) & 1)
            cf_pack_str(pk, c->wf->flags[i]);
}

int cf_claim_encode(const cf_claim_t *c, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 13);
    cf_pack_str(&pk, c->wf->name);
    msgpack_pack_int64(&pk, c->wf->version);
    cf_pack_str(&pk, c->wf->states[c->state].name);
    if (c->prev >= 0)
        cf_pack_str(&pk, c->wf->states[c->prev].name);
    else
        msgpack_pack_nil(&pk);
    msgpack_pack_object(&pk, c->data);
    s_pack_flags(&pk, c);
    msgpack_pack_array(&pk, (uint32_t)c->ntimers);
    for (size_t i = 0; i < c->ntimers; i++) {
        msgpack_pack_array(&pk, 3);
        cf_pack_str(&pk, c->timers[i].name);
        msgpack_pack_int64(&pk, c->timers[i].due);
        cf_pack_str(&pk, c->timers[i].event);
    }
    msgpack_pack_array(&pk, (uint32_t)c->ndocs);
    for (size_t i = 0; i < c->ndocs; i++) {
        msgpack_pack_array(&pk, 3);
        cf_pack_str(&pk, c->docs[i].kind);
        msgpack_pack_bin(&pk, 32);
        msgpack_pack_bin_body(&pk, c->docs[i].sha, 32);
        msgpack_pack_uint64(&pk, c->docs[i].size);
    }
    if (c->parent[0])
        cf_pack_str(&pk, c->parent);
    else
        msgpack_pack_nil(&pk);
    if (c->has_member) {
        msgpack_pack_bin(&pk, CF_MEMBER_HASH_LEN);
        msgpack_pack_bin_body(&pk, c->member, CF_MEMBER_HASH_LEN);
    } else {
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_int64(&pk, c->created);
    msgpack_pack_int64(&pk, c->updated);
    msgpack_pack_uint32(&pk, c->seq);
    return sb->data ? 0 : CF_EINTERNAL;
}

void cf_claim_pack_reply(msgpack_packer *pk, const cf_claim_t *c)
{
    msgpack_pack_map(pk, c->parent[0] ? 11 : 10);
    cf_pack_str(pk, "id");
    cf_pack_str(pk, c->id);
    cf_pack_str(pk, "workflow");
    cf_pack_str(pk, c->wf->name);
    cf_pack_str(pk, "version");
    msgpack_pack_int64(pk, c->wf->version);
    cf_pack_str(pk, "state");
    cf_pack_str(pk, c->wf->states[c->state].name);
    cf_pack_str(pk, "data");
    msgpack_pack_object(pk, c->data);
    cf_pack_str(pk, "flags");
    s_pack_flags(pk, c);
    cf_pack_str(pk, "timers");
    msgpack_pack_array(pk, (uint32_t)c->ntimers);
    for (size_t i = 0; i < c->ntimers; i++) {
        msgpack_pack_map(pk, 2);
        cf_pack_str(pk, "name");
        cf_pack_str(pk, c->timers[i].name);
        cf_pack_str(pk, "due_at");
        cf_pack_time(pk, c->timers[i].due);
    }
    cf_pack_str(pk, "documents");
    msgpack_pack_array(pk, (uint32_t)c->ndocs);
    for (size_t i = 0; i < c->ndocs; i++) {
        char hex[65];
        cf_hex(c->docs[i].sha, 32, hex);
        msgpack_pack_map(pk, 3);
        cf_pack_str(pk, "kind");
        cf_pack_str(pk, c->docs[i].kind);
        cf_pack_str(pk, "sha256");
        cf_pack_str(pk, hex);
        cf_pack_str(pk, "size");
        msgpack_pack_uint64(pk, c->docs[i].size);
    }
    if (c->parent[0]) {
        cf_pack_str(pk, "parent");
        cf_pack_str(pk, c->parent);
    }
    cf_pack_str(pk, "created_at");
    cf_pack_time(pk, c->created);
    cf_pack_str(pk, "updated_at");
    cf_pack_time(pk, c->updated);
}

int cf_event_pack_reply(msgpack_packer *pk, const char *claim_id, const char *workflow,
                        const void *rec, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    int err = CF_EINTERNAL;
    if (msgpack_unpack_next(&up, rec, len, &off) != MSGPACK_UNPACK_SUCCESS)
        goto out;
    const msgpack_object *r = &up.data;
    if (r->type != MSGPACK_OBJECT_ARRAY || r->via.array.size != 7)
        goto out;
    const msgpack_object *a = r->via.array.ptr;
    int64_t seq, at;
    if (!s_int(&a[0], &seq) || !s_int(&a[1], &at))
        goto out;
    msgpack_pack_map(pk, workflow ? 9 : 8);
    cf_pack_str(pk, "claim");
    cf_pack_str(pk, claim_id);
    if (workflow) {
        cf_pack_str(pk, "workflow");
        cf_pack_str(pk, workflow);
    }
    cf_pack_str(pk, "seq");
    msgpack_pack_int64(pk, seq);
    cf_pack_str(pk, "at");
    cf_pack_time(pk, at);
    static const char *const keys[] = {"event", "from", "to", "actor"};
    for (int i = 0; i < 4; i++) {
        cf_pack_str(pk, keys[i]);
        msgpack_pack_object(pk, a[2 + i]);
    }
    cf_pack_str(pk, "data");
    if (a[6].type == MSGPACK_OBJECT_NIL)
        msgpack_pack_map(pk, 0);
    else
        msgpack_pack_object(pk, a[6]);
    err = 0;
out:
    msgpack_unpacked_destroy(&up);
    return err;
}

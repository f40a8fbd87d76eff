/* schema.c: every key layout and record codec of the store (schema.h), and
 * the protocol's claim and event maps made from the records.
 *
 * Records are positional msgpack arrays: smaller than maps (no key names
 * repeated in every record) and cheap to decode; CF_STORE_FORMAT versions
 * the layout.  Every decoder runs cf_mpcheck first: a damaged record is
 * CF_EINTERNAL, never a crash or a giant allocation.
 */
#include "schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cf_be.h"
#include "cf_err.h"
#include "mpcheck.h"

/* One stored record into up (initialised by the caller): checked first, so
 * no count the bytes claim is believed before it is bounded. */
static bool s_unpack(msgpack_unpacked *up, const void *rec, size_t len)
{
    size_t off = 0;
    return cf_mpcheck(rec, len, NULL) == 0 &&
           msgpack_unpack_next(up, rec, len, &off) == MSGPACK_UNPACK_SUCCESS;
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

/* The channel an event's actor implies, for records that do not say. */
static const char *s_channel_of(const char *actor)
{
    if (strcmp(actor, "system") == 0)
        return "system";
    if (strcmp(actor, "member") == 0)
        return "portal";
    return "operator";
}

static int s_state_index(const cf_wf_t *wf, const msgpack_object *o)
{
    char name[CF_NAME_MAX + 1];
    if (!s_str(o, name, sizeof name))
        return -1;
    return cf_wf_state_find(wf, name);
}

static bool s_timer_decode(const msgpack_object *tm, cf_claim_timer_t *ct)
{
    return tm->type == MSGPACK_OBJECT_ARRAY && tm->via.array.size == 3 &&
           s_str(&tm->via.array.ptr[0], ct->name, sizeof ct->name) &&
           s_int(&tm->via.array.ptr[1], &ct->due) &&
           s_str(&tm->via.array.ptr[2], ct->event, sizeof ct->event);
}

/* Elements 14 (owner) and 15 (frames). */
static int s_decode_owner_frames(cf_claim_t *c, const msgpack_object *o,
                                 const msgpack_object *f)
{
    if (o->type != MSGPACK_OBJECT_NIL && !s_str(o, c->owner, sizeof c->owner))
        return CF_EINTERNAL;
    if (f->type != MSGPACK_OBJECT_ARRAY || f->via.array.size > CF_CLAIM_MAX_FRAMES)
        return CF_EINTERNAL;
    for (uint32_t i = 0; i < f->via.array.size; i++) {
        const msgpack_object *fr = &f->via.array.ptr[i];
        cf_claim_frame_t *cf = &c->frames[c->nframes++];
        if (fr->type != MSGPACK_OBJECT_ARRAY || fr->via.array.size != 3)
            return CF_EINTERNAL;
        const msgpack_object *x = fr->via.array.ptr;
        if ((cf->state = s_state_index(c->wf, &x[0])) < 0)
            return CF_EINTERNAL;
        cf->prev = x[1].type == MSGPACK_OBJECT_NIL ? -1 : s_state_index(c->wf, &x[1]);
        if (x[2].type != MSGPACK_OBJECT_ARRAY || x[2].via.array.size > CF_FRAME_MAX_TIMERS)
            return CF_EINTERNAL;
        cf->ntimers = 0;
        for (uint32_t j = 0; j < x[2].via.array.size; j++)
            if (!s_timer_decode(&x[2].via.array.ptr[j], &cf->timers[cf->ntimers++]))
                return CF_EINTERNAL;
    }
    return 0;
}

int cf_claim_set_data(cf_claim_t *c, const void *bytes, size_t len)
{
    char *raw = malloc(len ? len : 1);
    if (!raw)
        return CF_EINTERNAL;
    memcpy(raw, bytes, len);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    size_t off = 0;
    if (msgpack_unpack_next(&up, raw, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        up.data.type != MSGPACK_OBJECT_MAP) {
        msgpack_unpacked_destroy(&up);
        free(raw);
        return CF_EINTERNAL;
    }
    if (c->has_data_up)
        msgpack_unpacked_destroy(&c->data_up);
    free(c->data_raw);
    c->data_raw = raw;
    c->data_up = up;
    c->has_data_up = true;
    c->data = c->data_up.data;
    return 0;
}

int cf_claim_decode(const void *bytes, size_t len, cf_wf_resolve_fn resolve,
                    void *ctx, cf_claim_t *c)
{
    /* Not memset: a claim is ~9 KiB of fixed arrays (timers, documents)
     * and this runs for every claim a request touches - zeroing it was a
     * tenth of the daemon's instructions (docs/BENCHMARKS.md).  The counts
     * say which entries are valid. */
    c->id[0] = '\0';
    c->wf = NULL;
    c->state = 0;
    c->prev = -1;
    c->flags = 0;
    c->ntimers = c->ndocs = 0;
    c->parent[0] = '\0';
    c->has_member = false;
    c->created = c->updated = 0;
    c->seq = 0;
    c->country = (cf_country_t)0;
    c->owner[0] = '\0';
    c->nframes = 0;
    c->has_up = false;
    c->data_raw = NULL;
    c->has_data_up = false;
    c->raw = malloc(len ? len : 1);
    if (!c->raw)
        return CF_EINTERNAL;
    memcpy(c->raw, bytes, len);
    msgpack_unpacked_init(&c->up);
    c->has_up = true;
    if (!s_unpack(&c->up, c->raw, len))
        goto corrupt;
    const msgpack_object *r = &c->up.data;
    /* 13 elements: a record from before the country, 14: before the owner
     * (schema.h) */
    if (r->type != MSGPACK_OBJECT_ARRAY ||
        (r->via.array.size != 13 && r->via.array.size != 14 && r->via.array.size != 16))
        goto corrupt;
    const msgpack_object *a = r->via.array.ptr;
    int64_t version, t;
    if (a[0].type != MSGPACK_OBJECT_STR || !s_int(&a[1], &version))
        goto corrupt;
    c->wf = resolve(ctx, a[0].via.str.ptr, a[0].via.str.size, version, &c->country);
    if (!c->wf)
        goto corrupt;
    if (r->via.array.size >= 14) {
        int country = a[13].type == MSGPACK_OBJECT_STR
                          ? cf_country_parse(a[13].via.str.ptr, a[13].via.str.size) : -1;
        if (country < 0)
            goto corrupt;
        c->country = (cf_country_t)country;
    }
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
        if (!s_timer_decode(tm, &c->timers[c->ntimers++]))
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
    if (r->via.array.size == 16 && s_decode_owner_frames(c, &a[14], &a[15]) != 0)
        goto corrupt;
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
    if (c->has_data_up)
        msgpack_unpacked_destroy(&c->data_up);
    c->has_data_up = false;
    free(c->data_raw);
    c->data_raw = NULL;
}

static void s_pack_timer(msgpack_packer *pk, const cf_claim_timer_t *t)
{
    msgpack_pack_array(pk, 3);
    cf_pack_str(pk, t->name);
    msgpack_pack_int64(pk, t->due);
    cf_pack_str(pk, t->event);
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
    msgpack_pack_array(&pk, 16);
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
    for (size_t i = 0; i < c->ntimers; i++)
        s_pack_timer(&pk, &c->timers[i]);
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
    cf_pack_str(&pk, cf_country_code(c->country));
    if (c->owner[0])
        cf_pack_str(&pk, c->owner);
    else
        msgpack_pack_nil(&pk);
    msgpack_pack_array(&pk, (uint32_t)c->nframes);
    for (size_t i = 0; i < c->nframes; i++) {
        const cf_claim_frame_t *f = &c->frames[i];
        msgpack_pack_array(&pk, 3);
        cf_pack_str(&pk, c->wf->states[f->state].name);
        if (f->prev >= 0)
            cf_pack_str(&pk, c->wf->states[f->prev].name);
        else
            msgpack_pack_nil(&pk);
        msgpack_pack_array(&pk, (uint32_t)f->ntimers);
        for (size_t j = 0; j < f->ntimers; j++)
            s_pack_timer(&pk, &f->timers[j]);
    }
    return sb->data ? 0 : CF_EINTERNAL;
}

void cf_claim_pack_reply(msgpack_packer *pk, const cf_claim_t *c)
{
    msgpack_pack_map(pk, c->parent[0] ? 14 : 13);
    cf_pack_str(pk, "id");
    cf_pack_str(pk, c->id);
    cf_pack_str(pk, "workflow");
    cf_pack_str(pk, c->wf->name);
    cf_pack_str(pk, "version");
    msgpack_pack_int64(pk, c->wf->version);
    cf_pack_str(pk, "state");
    cf_pack_str(pk, c->wf->states[c->state].name);
    cf_pack_str(pk, "country");
    cf_pack_str(pk, cf_country_code(c->country));
    cf_pack_str(pk, "currency");
    cf_pack_str(pk, cf_currency_code(c->wf->currency[c->country]));
    cf_pack_str(pk, "owner");
    if (c->owner[0])
        cf_pack_str(pk, c->owner);
    else
        msgpack_pack_nil(pk);
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
                        uint64_t batch, const void *rec, size_t len)
{
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int err = CF_EINTERNAL;
    if (!s_unpack(&up, rec, len))
        goto out;
    const msgpack_object *r = &up.data;
    if (r->type != MSGPACK_OBJECT_ARRAY ||
        (r->via.array.size != 7 && r->via.array.size != 10))
        goto out;
    const msgpack_object *a = r->via.array.ptr;
    bool ten = r->via.array.size == 10;
    int64_t seq, at;
    if (!s_int(&a[0], &seq) || !s_int(&a[1], &at) || a[5].type != MSGPACK_OBJECT_STR)
        goto out;
    bool ref = ten && a[9].type == MSGPACK_OBJECT_STR;
    msgpack_pack_map(pk, (workflow ? 11 : 10) + (ref ? 1 : 0) + (batch != 0));
    cf_pack_str(pk, "claim");
    cf_pack_str(pk, claim_id);
    if (workflow) {
        cf_pack_str(pk, "workflow");
        cf_pack_str(pk, workflow);
    }
    if (batch) {
        cf_pack_str(pk, "batch");
        msgpack_pack_uint64(pk, batch);
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
    cf_pack_str(pk, "by");
    if (ten)
        msgpack_pack_object(pk, a[7]);
    else
        msgpack_pack_nil(pk);
    cf_pack_str(pk, "channel");
    if (ten) {
        msgpack_pack_object(pk, a[8]);
    } else {
        char actor[CF_NAME_MAX + 1];
        cf_pack_str(pk, s_channel_of(s_str(&a[5], actor, sizeof actor) ? actor : ""));
    }
    if (ref) {
        cf_pack_str(pk, "reference");
        msgpack_pack_object(pk, a[9]);
    }
    err = 0;
out:
    msgpack_unpacked_destroy(&up);
    return err;
}

/* ================================================================ keys === */

static size_t s_put_z(unsigned char *k, const char *s)
{
    size_t n = strlen(s);
    memcpy(k, s, n);
    k[n] = 0;
    return n + 1;
}

size_t cf_key_state_prefix(unsigned char *k, const char *workflow, const char *state)
{
    size_t n = s_put_z(k, workflow);
    return n + s_put_z(k + n, state);
}

size_t cf_key_state(unsigned char *k, const char *workflow, const char *state, const char *id)
{
    size_t n = cf_key_state_prefix(k, workflow, state);
    memcpy(k + n, id, CF_ID_LEN);
    return n + CF_ID_LEN;
}

size_t cf_key_flag(unsigned char *k, const char *flag, const char *id)
{
    size_t n = s_put_z(k, flag);
    memcpy(k + n, id, CF_ID_LEN);
    return n + CF_ID_LEN;
}

size_t cf_key_member(unsigned char *k, const unsigned char *hash, const char *id)
{
    memcpy(k, hash, CF_MEMBER_HASH_LEN);
    memcpy(k + CF_MEMBER_HASH_LEN, id, CF_ID_LEN);
    return CF_MEMBER_HASH_LEN + CF_ID_LEN;
}

size_t cf_key_closed(unsigned char *k, cf_time_t at, const char *id)
{
    cf_be64_put(k, (uint64_t)at);
    memcpy(k + 8, id, CF_ID_LEN);
    return 8 + CF_ID_LEN;
}

size_t cf_key_history(unsigned char *k, const char *id, uint32_t seq)
{
    memcpy(k, id, CF_ID_LEN);
    cf_be32_put(k + CF_ID_LEN, seq);
    return CF_ID_LEN + 4;
}

size_t cf_key_change(unsigned char *k, uint64_t batch, uint32_t n)
{
    cf_be64_put(k, batch);
    cf_be32_put(k + 8, n);
    return 12;
}

size_t cf_change_encode(const cf_change_t *c, unsigned char *out)
{
    size_t at = 0;
    cf_be64_put(out, (uint64_t)c->at);
    at += 8;
    memcpy(out + at, c->claim, CF_ID_LEN);
    at += CF_ID_LEN;
    cf_be32_put(out + at, c->seq);
    at += 4;
    out[at++] = c->has_member;
    if (c->has_member) {
        memcpy(out + at, c->member, CF_MEMBER_HASH_LEN);
        at += CF_MEMBER_HASH_LEN;
    }
    size_t wl = strnlen(c->workflow, CF_NAME_MAX);
    memcpy(out + at, c->workflow, wl);
    return at + wl;
}

int cf_change_decode(const void *v, size_t len, cf_change_t *c)
{
    const unsigned char *p = v;
    size_t at = 8 + CF_ID_LEN + 4 + 1;
    if (len < at)
        return CF_EINTERNAL;
    c->at = (cf_time_t)cf_be64_get(p);
    memcpy(c->claim, p + 8, CF_ID_LEN);
    c->claim[CF_ID_LEN] = '\0';
    c->seq = cf_be32_get(p + 8 + CF_ID_LEN);
    c->has_member = p[at - 1] != 0;
    if (c->has_member) {
        if (len < at + CF_MEMBER_HASH_LEN)
            return CF_EINTERNAL;
        memcpy(c->member, p + at, CF_MEMBER_HASH_LEN);
        at += CF_MEMBER_HASH_LEN;
    }
    if (len - at > CF_NAME_MAX)
        return CF_EINTERNAL;
    memcpy(c->workflow, p + at, len - at);
    c->workflow[len - at] = '\0';
    return 0;
}

size_t cf_key_timer(unsigned char *k, cf_time_t due, char kind, const void *target,
                    size_t tlen, const char *name)
{
    size_t nl = strlen(name);
    cf_be64_put(k, (uint64_t)due);
    k[8] = (unsigned char)kind;
    memcpy(k + 9, target, tlen);
    memcpy(k + 9 + tlen, name, nl);
    return 9 + tlen + nl;
}

int cf_key_timer_parse(const void *key, size_t kl, cf_timer_key_t *t)
{
    const unsigned char *k = key;
    memset(t, 0, sizeof *t);
    if (kl < 9)
        return CF_EINTERNAL;
    t->due = (cf_time_t)cf_be64_get(k);
    t->kind = (char)k[8];
    size_t tlen;
    if (t->kind == CF_TIMER_CLAIM && kl > 9 + CF_ID_LEN) {
        memcpy(t->id, k + 9, CF_ID_LEN);
        tlen = CF_ID_LEN;
    } else if (t->kind == CF_TIMER_MEMBER && kl >= 9 + CF_MEMBER_HASH_LEN) {
        memcpy(t->member, k + 9, CF_MEMBER_HASH_LEN);
        tlen = CF_MEMBER_HASH_LEN;
    } else {
        return CF_EINTERNAL;
    }
    size_t nl = kl - 9 - tlen;
    if (nl > CF_NAME_MAX)
        return CF_EINTERNAL;
    memcpy(t->name, k + 9 + tlen, nl);
    t->name[nl] = '\0';
    return 0;
}

size_t cf_key_idem(unsigned char *k, char endpoint, const char *actor, const char *id,
                   size_t idlen)
{
    k[0] = (unsigned char)endpoint;
    size_t n = 1 + s_put_z(k + 1, actor);
    memcpy(k + n, id, idlen);
    return n + idlen;
}

size_t cf_key_idem_member(unsigned char *k, const unsigned char *hash, const unsigned char *by,
                          const char *id, size_t idlen)
{
    k[0] = 'm';
    memcpy(k + 1, id, idlen);
    k[1 + idlen] = 0;
    memcpy(k + 2 + idlen, hash, CF_MEMBER_HASH_LEN);
    if (!by)
        return 2 + idlen + CF_MEMBER_HASH_LEN;
    memcpy(k + 2 + idlen + CF_MEMBER_HASH_LEN, by, CF_MEMBER_HASH_LEN);
    return 2 + idlen + 2 * CF_MEMBER_HASH_LEN;
}

size_t cf_key_idem_age(unsigned char *k, cf_time_t at, const unsigned char *ikey, size_t iklen)
{
    cf_be64_put(k, (uint64_t)at);
    memcpy(k + 8, ikey, iklen);
    return 8 + iklen;
}

void cf_key_audit(unsigned char *k, cf_time_t at, uint64_t seq)
{
    cf_be64_put(k, (uint64_t)at);
    cf_be64_put(k + 8, seq);
}

/* Crockford's base32, as ULIDs use it. */
static const char s_b32[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

static int s_b32_val(char ch)
{
    const char *p = ch ? strchr(s_b32, ch) : NULL;
    return p ? (int)(p - s_b32) : -1;
}

/* The 26 characters are 130 bits, the top two zero: the 128-bit ULID. */
int cf_id_to_bin(const char *id, unsigned char out[CF_ID_BIN_LEN])
{
    unsigned char v[CF_ID_BIN_LEN] = {0};
    for (size_t i = 0; i < CF_ID_LEN; i++) {
        int d = s_b32_val(id[i]);
        if (d < 0 || (i == 0 && d > 7))
            return CF_EBADREQ;
        /* v = v << 5 | d, over 128 bits */
        unsigned carry = (unsigned)d;
        for (int j = CF_ID_BIN_LEN - 1; j >= 0; j--) {
            unsigned x = (unsigned)v[j] << 5 | carry;
            v[j] = (unsigned char)x;
            carry = x >> 8;
        }
    }
    memcpy(out, v, sizeof v);
    return 0;
}

void cf_id_from_bin(const unsigned char bin[CF_ID_BIN_LEN], char out[CF_ID_LEN + 1])
{
    /* Character i holds bits 125-5i .. 129-5i of the 130-bit number. */
    for (int i = 0; i < CF_ID_LEN; i++) {
        unsigned d = 0;
        for (int b = 0; b < 5; b++) {
            int bit = 129 - 5 * i - b;          /* from the top, 0 = least significant */
            if (bit < 128 && (bin[CF_ID_BIN_LEN - 1 - bit / 8] >> (bit % 8) & 1))
                d |= 1u << (4 - b);
        }
        out[i] = s_b32[d];
    }
    out[CF_ID_LEN] = '\0';
}

size_t cf_key_audit_claim(unsigned char *k, const char *id, const unsigned char *akey,
                          bool *text)
{
    bool t = cf_id_to_bin(id, k) != 0;
    if (text)
        *text = t;
    if (t)
        return cf_key_audit_claim_text(k, id, akey);
    if (akey)
        memcpy(k + CF_ID_BIN_LEN, akey, CF_AUDIT_KEY_LEN);
    return CF_ID_BIN_LEN + (akey ? CF_AUDIT_KEY_LEN : 0);
}

size_t cf_key_audit_claim_text(unsigned char *k, const char *id, const unsigned char *akey)
{
    memcpy(k, id, CF_ID_LEN);
    if (akey)
        memcpy(k + CF_ID_LEN, akey, CF_AUDIT_KEY_LEN);
    return CF_ID_LEN + (akey ? CF_AUDIT_KEY_LEN : 0);
}

size_t cf_key_audit_actor(unsigned char *k, const char *actor, const unsigned char *akey)
{
    size_t n = s_put_z(k, actor);
    memcpy(k + n, akey, CF_AUDIT_KEY_LEN);
    return n + CF_AUDIT_KEY_LEN;
}

/* ============================================================= records === */

int cf_consent_encode(const cf_consent_t *c, msgpack_sbuffer *sb)
{
    unsigned char out[CF_CONSENT_REC_LEN];
    cf_be64_put(out, (uint64_t)c->given_at);
    cf_be64_put(out + 8, (uint64_t)c->valid_until);
    cf_be64_put(out + 16, (uint64_t)c->withdrawn_at);
    cf_be64_put(out + 24, (uint64_t)c->change_day);
    cf_be64_put(out + 32, c->changes);
    msgpack_sbuffer_clear(sb);
    msgpack_sbuffer_write(sb, (const char *)out, sizeof out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 5);
    if (c->given_by[0])
        cf_pack_str(&pk, c->given_by);
    else
        msgpack_pack_nil(&pk);
    cf_pack_str(&pk, c->channel[0] ? c->channel : "portal");
    msgpack_pack_int64(&pk, c->lapses_at);
    msgpack_pack_array(&pk, (uint32_t)c->ninvolved);
    for (size_t i = 0; i < c->ninvolved; i++)
        cf_pack_str(&pk, c->involved[i]);
    if (c->reference[0])
        cf_pack_str(&pk, c->reference);
    else
        msgpack_pack_nil(&pk);
    return sb->data ? 0 : CF_EINTERNAL;
}

int cf_consent_decode(const void *rec, size_t len, cf_consent_t *c)
{
    const unsigned char *p = rec;
    memset(c, 0, sizeof *c);
    if (len != CF_CONSENT_REC_OLD && len < CF_CONSENT_REC_LEN)
        return CF_EINTERNAL;
    c->given_at = (cf_time_t)cf_be64_get(p);
    c->valid_until = (cf_time_t)cf_be64_get(p + 8);
    c->withdrawn_at = (cf_time_t)cf_be64_get(p + 16);
    snprintf(c->channel, sizeof c->channel, "portal");
    if (len == CF_CONSENT_REC_OLD)
        return 0;
    c->change_day = (int64_t)cf_be64_get(p + 24);
    c->changes = cf_be64_get(p + 32);
    if (len == CF_CONSENT_REC_LEN)
        return 0;
    /* Who gave it (since issue 15). */
    const char *t = (const char *)rec + CF_CONSENT_REC_LEN;
    size_t tl = len - CF_CONSENT_REC_LEN;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = CF_EINTERNAL;
    if (!s_unpack(&up, t, tl) ||
        up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size < 5)
        goto out;
    const msgpack_object *a = up.data.via.array.ptr;
    if ((a[0].type != MSGPACK_OBJECT_NIL && !s_str(&a[0], c->given_by, sizeof c->given_by)) ||
        !s_str(&a[1], c->channel, sizeof c->channel) || !s_int(&a[2], &c->lapses_at) ||
        a[3].type != MSGPACK_OBJECT_ARRAY || a[3].via.array.size > CF_CONSENT_MAX_INVOLVED ||
        (a[4].type != MSGPACK_OBJECT_NIL && !s_str(&a[4], c->reference, sizeof c->reference)))
        goto out;
    for (uint32_t i = 0; i < a[3].via.array.size; i++)
        if (!s_str(&a[3].via.array.ptr[i], c->involved[c->ninvolved++], CF_PID_LEN))
            goto out;
    rc = 0;
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

/* ===================================================== representations === */

static const char *const s_kinds[] = {
    NULL,
#define CF_XX(s, name) name,
    CF_REP_KIND_MAP(CF_XX)
#undef CF_XX
};

const char *cf_rep_kind_name(int kind)
{
    return kind > 0 && (size_t)kind < sizeof s_kinds / sizeof s_kinds[0] ? s_kinds[kind] : NULL;
}

int cf_rep_kind_find(const char *s, size_t len)
{
    for (size_t i = 1; i < sizeof s_kinds / sizeof s_kinds[0]; i++)
        if (strlen(s_kinds[i]) == len && memcmp(s_kinds[i], s, len) == 0)
            return (int)i;
    return CF_REP_NONE;
}

static const struct {
    unsigned bit;
    const char *name;
} s_scopes[] = {
#define CF_XX(s, v, name) {v, name},
    CF_SCOPE_MAP(CF_XX)
#undef CF_XX
};

const char *cf_scope_name(unsigned bit)
{
    for (size_t i = 0; i < sizeof s_scopes / sizeof s_scopes[0]; i++)
        if (s_scopes[i].bit == bit)
            return s_scopes[i].name;
    return NULL;
}

unsigned cf_scope_find(const char *s, size_t len)
{
    for (size_t i = 0; i < sizeof s_scopes / sizeof s_scopes[0]; i++)
        if (strlen(s_scopes[i].name) == len && memcmp(s_scopes[i].name, s, len) == 0)
            return s_scopes[i].bit;
    return 0;
}

size_t cf_key_rep(unsigned char *k, const unsigned char *first, const unsigned char *second)
{
    memcpy(k, first, CF_MEMBER_HASH_LEN);
    memcpy(k + CF_MEMBER_HASH_LEN, second, CF_MEMBER_HASH_LEN);
    return CF_REP_KEY_LEN;
}

static void s_pack_time_or_nil(msgpack_packer *pk, cf_time_t t)
{
    if (t)
        msgpack_pack_int64(pk, t);
    else
        msgpack_pack_nil(pk);
}

int cf_rep_encode(const cf_rep_t *r, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, r->decides ? 11 : 10);
    cf_pack_str(&pk, r->member);
    cf_pack_str(&pk, r->rep);
    const char *kind = cf_rep_kind_name(r->kind);
    if (!kind)
        return CF_EINTERNAL;
    cf_pack_str(&pk, kind);
    uint32_t n = 0;
    for (size_t i = 0; i < sizeof s_scopes / sizeof s_scopes[0]; i++)
        n += (r->scope & s_scopes[i].bit) != 0;
    msgpack_pack_array(&pk, n);
    for (size_t i = 0; i < sizeof s_scopes / sizeof s_scopes[0]; i++)
        if (r->scope & s_scopes[i].bit)
            cf_pack_str(&pk, s_scopes[i].name);
    msgpack_pack_int64(&pk, r->valid_from);
    s_pack_time_or_nil(&pk, r->valid_until);
    if (r->has_evidence) {
        msgpack_pack_array(&pk, 3);
        cf_pack_str(&pk, r->ev_kind);
        msgpack_pack_bin(&pk, 32);
        msgpack_pack_bin_body(&pk, r->ev_sha, 32);
        msgpack_pack_uint64(&pk, r->ev_size);
    } else {
        msgpack_pack_nil(&pk);
    }
    cf_pack_str(&pk, r->registered_by);
    s_pack_time_or_nil(&pk, r->revoked_at);
    s_pack_time_or_nil(&pk, r->ended_at);
    if (r->decides)
        msgpack_pack_true(&pk);
    return sb->data ? 0 : CF_EINTERNAL;
}

static bool s_time_opt(const msgpack_object *o, cf_time_t *t)
{
    *t = 0;
    return o->type == MSGPACK_OBJECT_NIL || s_int(o, t);
}

int cf_rep_decode(const void *rec, size_t len, cf_rep_t *r)
{
    memset(r, 0, sizeof *r);
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = CF_EINTERNAL;
    if (!s_unpack(&up, rec, len) ||
        up.data.type != MSGPACK_OBJECT_ARRAY || up.data.via.array.size < 10)
        goto out;
    const msgpack_object *a = up.data.via.array.ptr;
    if (!s_str(&a[0], r->member, sizeof r->member) || !s_str(&a[1], r->rep, sizeof r->rep) ||
        a[2].type != MSGPACK_OBJECT_STR || a[3].type != MSGPACK_OBJECT_ARRAY ||
        !s_int(&a[4], &r->valid_from) || !s_time_opt(&a[5], &r->valid_until) ||
        !s_str(&a[7], r->registered_by, sizeof r->registered_by) ||
        !s_time_opt(&a[8], &r->revoked_at) || !s_time_opt(&a[9], &r->ended_at))
        goto out;
    if ((r->kind = cf_rep_kind_find(a[2].via.str.ptr, a[2].via.str.size)) == CF_REP_NONE)
        goto out;
    for (uint32_t i = 0; i < a[3].via.array.size; i++) {
        const msgpack_object *o = &a[3].via.array.ptr[i];
        if (o->type == MSGPACK_OBJECT_STR)
            r->scope |= cf_scope_find(o->via.str.ptr, o->via.str.size);
    }
    if (a[6].type == MSGPACK_OBJECT_ARRAY) {
        const msgpack_object *e = a[6].via.array.ptr;
        int64_t size;
        if (a[6].via.array.size != 3 || !s_str(&e[0], r->ev_kind, sizeof r->ev_kind) ||
            e[1].type != MSGPACK_OBJECT_BIN || e[1].via.bin.size != 32 || !s_int(&e[2], &size))
            goto out;
        memcpy(r->ev_sha, e[1].via.bin.ptr, 32);
        r->ev_size = (uint64_t)size;
        r->has_evidence = true;
    } else if (a[6].type != MSGPACK_OBJECT_NIL) {
        goto out;
    }
    if (up.data.via.array.size > 10) {
        if (a[10].type != MSGPACK_OBJECT_BOOLEAN)
            goto out;
        r->decides = a[10].via.boolean;
    }
    rc = 0;
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

int cf_doc_encode(const char *ctype, size_t clen, const void *body, size_t blen,
                  msgpack_sbuffer *sb)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 2);
    cf_pack_strn(&pk, ctype, clen);
    msgpack_pack_bin(&pk, blen);
    msgpack_pack_bin_body(&pk, body, blen);
    return sb->data ? 0 : CF_EINTERNAL;
}

int cf_idem_encode(const unsigned char hash[32], cf_time_t at, const void *reply, size_t len,
                   unsigned char **ret, size_t *ret_len)
{
    unsigned char *v = malloc(CF_IDEM_HEAD + len);
    if (!v)
        return CF_EINTERNAL;
    memcpy(v, hash, 32);
    cf_be64_put(v + 32, (uint64_t)at);
    memcpy(v + CF_IDEM_HEAD, reply, len);
    *ret = v;
    *ret_len = CF_IDEM_HEAD + len;
    return 0;
}

int cf_audit_encode(cf_time_t at, const char *actor, const char *op,
                    const char *const *claims, size_t n, const char *purpose,
                    const char *role, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    bool why = purpose || role;
    msgpack_pack_array(&pk, why ? 6 : 4);
    msgpack_pack_int64(&pk, at);
    cf_pack_str(&pk, actor);
    cf_pack_str(&pk, op);
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        unsigned char bin[CF_ID_BIN_LEN];
        if (cf_id_to_bin(claims[i], bin) == 0) {
            msgpack_pack_bin(&pk, sizeof bin);
            msgpack_pack_bin_body(&pk, bin, sizeof bin);
        } else {
            cf_pack_strn(&pk, claims[i], CF_ID_LEN);
        }
    }
    /* Trailing, so a reader of the older four elements reads these too. */
    if (why) {
        if (purpose)
            cf_pack_str(&pk, purpose);
        else
            msgpack_pack_nil(&pk);
        if (role)
            cf_pack_str(&pk, role);
        else
            msgpack_pack_nil(&pk);
    }
    return sb->data ? 0 : CF_EINTERNAL;
}

int cf_audit_decode(const void *rec, size_t len, cf_audit_rec_t *r)
{
    memset(r, 0, sizeof *r);
    msgpack_unpacked_init(&r->up);
    int64_t at;
    if (!s_unpack(&r->up, rec, len) ||
        r->up.data.type != MSGPACK_OBJECT_ARRAY || r->up.data.via.array.size < 4)
        return CF_EINTERNAL;
    const msgpack_object *a = r->up.data.via.array.ptr;
    if (!s_int(&a[0], &at) || a[1].type != MSGPACK_OBJECT_STR ||
        a[2].type != MSGPACK_OBJECT_STR || a[3].type != MSGPACK_OBJECT_ARRAY)
        return CF_EINTERNAL;
    r->at = at;
    r->actor = a[1];
    r->op = a[2];
    r->claims = a[3].via.array.ptr;
    r->nclaims = a[3].via.array.size;
    r->rest = a + 4;
    r->nrest = r->up.data.via.array.size - 4;
    if (r->nrest > 0 && a[4].type == MSGPACK_OBJECT_STR)
        r->purpose = &a[4];
    if (r->nrest > 1 && a[5].type == MSGPACK_OBJECT_STR)
        r->role = &a[5];
    return 0;
}

void cf_audit_fini(cf_audit_rec_t *r)
{
    msgpack_unpacked_destroy(&r->up);
}

int cf_audit_claim(const cf_audit_rec_t *r, uint32_t i, char out[CF_ID_LEN + 1])
{
    const msgpack_object *o = &r->claims[i];
    if (o->type == MSGPACK_OBJECT_BIN && o->via.bin.size == CF_ID_BIN_LEN) {
        cf_id_from_bin((const unsigned char *)o->via.bin.ptr, out);
        return 0;
    }
    if (o->type == MSGPACK_OBJECT_STR && o->via.str.size == CF_ID_LEN) {
        memcpy(out, o->via.str.ptr, CF_ID_LEN);
        out[CF_ID_LEN] = '\0';
        return 0;
    }
    return CF_EINTERNAL;
}

int cf_event_encode(uint32_t seq, cf_time_t at, const char *event, const char *from,
                    const char *to, const char *actor, const void *data, size_t dlen,
                    const cf_event_who_t *who, msgpack_sbuffer *sb)
{
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, 10);
    msgpack_pack_uint32(&pk, seq);
    msgpack_pack_int64(&pk, at);
    cf_pack_str(&pk, event);
    if (from)
        cf_pack_str(&pk, from);
    else
        msgpack_pack_nil(&pk);
    cf_pack_str(&pk, to);
    cf_pack_str(&pk, actor);
    if (data)
        msgpack_sbuffer_write(sb, data, dlen);
    else
        msgpack_pack_nil(&pk);
    if (who && who->by)
        cf_pack_str(&pk, who->by);
    else
        msgpack_pack_nil(&pk);
    cf_pack_str(&pk, who && who->channel ? who->channel : s_channel_of(actor));
    if (who && who->reference)
        cf_pack_str(&pk, who->reference);
    else
        msgpack_pack_nil(&pk);
    return sb->data ? 0 : CF_EINTERNAL;
}

int cf_event_strip(const void *rec, size_t len, msgpack_sbuffer *sb, bool *changed)
{
    *changed = false;
    msgpack_unpacked up;
    msgpack_unpacked_init(&up);
    int rc = CF_EINTERNAL;
    if (!s_unpack(&up, rec, len) ||
        up.data.type != MSGPACK_OBJECT_ARRAY ||
        (up.data.via.array.size != 7 && up.data.via.array.size != 10))
        goto out;
    rc = 0;
    const msgpack_object *a = up.data.via.array.ptr;
    bool ten = up.data.via.array.size == 10;
    /* data, by and reference are personal; the channel is not */
    if (a[6].type == MSGPACK_OBJECT_NIL &&
        (!ten || (a[7].type == MSGPACK_OBJECT_NIL && a[9].type == MSGPACK_OBJECT_NIL)))
        goto out;
    msgpack_sbuffer_clear(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_array(&pk, up.data.via.array.size);
    for (int i = 0; i < 6; i++)
        msgpack_pack_object(&pk, a[i]);
    msgpack_pack_nil(&pk);
    if (ten) {
        msgpack_pack_nil(&pk);
        msgpack_pack_object(&pk, a[8]);
        msgpack_pack_nil(&pk);
    }
    rc = sb->data ? 0 : CF_EINTERNAL;
    *changed = rc == 0;
out:
    msgpack_unpacked_destroy(&up);
    return rc;
}

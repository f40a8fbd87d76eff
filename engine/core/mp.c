/* mp.c: shared msgpack helpers (mp.h). */
#include "mp.h"

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

const msgpack_object *cf_mp_get(const msgpack_object *map, const char *key)
{
    return cf_mp_getn(map, key, strlen(key));
}

const msgpack_object *cf_mp_getn(const msgpack_object *map, const char *key, size_t klen)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        /* An empty string's ptr may be NULL: memcmp must not see it. */
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen &&
            (klen == 0 || memcmp(k->via.str.ptr, key, klen) == 0))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

bool cf_mp_streq(const msgpack_object *o, const char *s)
{
    return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
           (o->via.str.size == 0 || memcmp(o->via.str.ptr, s, o->via.str.size) == 0);
}

const char *cf_mp_get_str(const msgpack_object *map, const char *key, char *buf, size_t cap)
{
    const msgpack_object *o = cf_mp_get(map, key);
    if (!o || o->type != MSGPACK_OBJECT_STR || cap == 0)
        return NULL;
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    if (n)
        memcpy(buf, o->via.str.ptr, n);
    buf[n] = '\0';
    return buf;
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

int cf_unhex(const char *s, size_t n, unsigned char *out, size_t outlen)
{
    if (n != outlen * 2)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return 0;
}

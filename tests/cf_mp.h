/* cf_mp.h: test helpers for msgpack - build a request from JSON-like text
 * (single quotes allowed, so C strings stay readable) and read a reply by a
 * dotted path ("claim.state", "claim.timers.0.name").
 *
 *   msgpack_sbuffer sb; cf_mp_from_json(&sb, "{'op':'get','claim':'%s'}", id);
 *   const msgpack_object *o = cf_mp_path(&reply, "error.code");
 *
 * Test-only: aborts on malformed input, which is the test's own bug.
 */
#ifndef CF_TEST_MP_H
#define CF_TEST_MP_H

#include <ctype.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

static const char *cf_mp_j_(msgpack_packer *pk, const char *p);

static const char *cf_mp_j_ws_(const char *p)
{
    while (*p && isspace((unsigned char)*p))
        p++;
    return p;
}

static const char *cf_mp_j_str_(msgpack_packer *pk, const char *p)
{
    char q = *p++;
    char buf[8192];
    size_t n = 0;
    while (*p && *p != q) {
        if (*p == '\\' && p[1])
            p++;
        if (n + 1 >= sizeof buf)
            abort();
        buf[n++] = *p++;
    }
    if (*p != q)
        abort();
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, buf, n);
    return p + 1;
}

static size_t cf_mp_j_count_(const char *p)
{
    /* Count top-level elements of the container starting after p[0]. */
    int depth = 0;
    size_t n = 0;
    bool any = false;
    char q = 0;
    for (p++; *p; p++) {
        if (q) {
            if (*p == '\\')
                p++;
            else if (*p == q)
                q = 0;
            continue;
        }
        if (*p == '\'' || *p == '"') {
            q = *p;
            any = true;
        } else if (*p == '{' || *p == '[') {
            depth++;
            any = true;
        } else if (*p == '}' || *p == ']') {
            if (depth-- == 0)
                return any ? n + 1 : 0;
        } else if (*p == ',' && depth == 0) {
            n++;
        } else if (!isspace((unsigned char)*p)) {
            any = true;
        }
    }
    abort();
}

static const char *cf_mp_j_(msgpack_packer *pk, const char *p)
{
    p = cf_mp_j_ws_(p);
    if (*p == '{') {
        size_t n = cf_mp_j_count_(p);
        msgpack_pack_map(pk, n);
        p = cf_mp_j_ws_(p + 1);
        for (size_t i = 0; i < n; i++) {
            p = cf_mp_j_str_(pk, cf_mp_j_ws_(p));
            p = cf_mp_j_ws_(p);
            if (*p++ != ':')
                abort();
            p = cf_mp_j_ws_(cf_mp_j_(pk, p));
            if (*p == ',')
                p++;
        }
        p = cf_mp_j_ws_(p);
        if (*p != '}')
            abort();
        return p + 1;
    }
    if (*p == '[') {
        size_t n = cf_mp_j_count_(p);
        msgpack_pack_array(pk, n);
        p = cf_mp_j_ws_(p + 1);
        for (size_t i = 0; i < n; i++) {
            p = cf_mp_j_ws_(cf_mp_j_(pk, p));
            if (*p == ',')
                p++;
        }
        p = cf_mp_j_ws_(p);
        if (*p != ']')
            abort();
        return p + 1;
    }
    if (*p == '\'' || *p == '"')
        return cf_mp_j_str_(pk, p);
    if (strncmp(p, "true", 4) == 0) {
        msgpack_pack_true(pk);
        return p + 4;
    }
    if (strncmp(p, "false", 5) == 0) {
        msgpack_pack_false(pk);
        return p + 5;
    }
    if (strncmp(p, "null", 4) == 0) {
        msgpack_pack_nil(pk);
        return p + 4;
    }
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p)
        abort();
    if (*end == '.') {
        double d = strtod(p, &end);
        msgpack_pack_double(pk, d);
        return end;
    }
    msgpack_pack_int64(pk, v);
    return end;
}

/* sb is initialised here; free with msgpack_sbuffer_destroy. */
__attribute__((format(printf, 2, 3))) static inline void
cf_mp_from_json(msgpack_sbuffer *sb, const char *fmt, ...)
{
    char text[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    cf_mp_j_(&pk, text);
}

/* The object at a dotted path ("claim.timers.0.name"), or NULL. */
static inline const msgpack_object *cf_mp_path(const msgpack_object *o, const char *path)
{
    char part[128];
    while (o && *path) {
        size_t n = strcspn(path, ".");
        if (n >= sizeof part)
            return NULL;
        memcpy(part, path, n);
        part[n] = 0;
        path += n + (path[n] == '.');
        if (o->type == MSGPACK_OBJECT_MAP) {
            o = cf_mp_getn(o, part, n);
        } else if (o->type == MSGPACK_OBJECT_ARRAY) {
            char *end;
            unsigned long i = strtoul(part, &end, 10);
            o = *end == 0 && i < o->via.array.size ? &o->via.array.ptr[i] : NULL;
        } else {
            return NULL;
        }
    }
    return o;
}

/* A string object as a NUL-terminated copy in a static ring (test use). */
static inline const char *cf_mp_s(const msgpack_object *o)
{
    static char ring[8][1024];
    static int at;
    if (!o)
        return NULL;
    char *b = ring[at++ % 8];
    if (o->type == MSGPACK_OBJECT_STR) {
        snprintf(b, 1024, "%.*s", (int)o->via.str.size, o->via.str.ptr);
    } else if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER) {
        snprintf(b, 1024, "%llu", (unsigned long long)o->via.u64);
    } else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        snprintf(b, 1024, "%lld", (long long)o->via.i64);
    } else if (o->type == MSGPACK_OBJECT_BOOLEAN) {
        snprintf(b, 1024, "%s", o->via.boolean ? "true" : "false");
    } else if (o->type == MSGPACK_OBJECT_NIL) {
        snprintf(b, 1024, "null");
    } else {
        snprintf(b, 1024, "(type %d)", (int)o->type);
    }
    return b;
}

#endif

/* json.c: msgpack -> JSON, written straight to a FILE.
 *
 * Strings are decoded as UTF-8 as they are written so that the output is
 * valid JSON whatever the daemon (or a member, through a claim's free text)
 * put in them: invalid sequences, overlong forms and surrogates become
 * U+FFFD.  Control characters - C0, DEL and C1 - are written as \u escapes,
 * which also keeps terminal escape sequences in member-supplied text from
 * reaching an operator's terminal raw; so are U+2028/U+2029, which many line
 * splitters (Python's splitlines, JavaScript) take for line ends and would
 * break a JSON line apart.  Recursion follows the object's depth,
 * which msgpack-c's unpacker already bounds.
 *
 * Person ids are masked to their birth date unless the operator asked to
 * see them (claimctl --reveal, which the access log records): a string that
 * is a valid person id as a whole is one.  Checking every string costs
 * nothing next to a terminal; a free-text field holding an id among other
 * words is not masked (the engine never puts one there).
 */
#include "json.h"

#include "person.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes) and its code
 * point, or 0 when the bytes there are not one. */
static size_t s_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
    unsigned char c = s[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if ((c & 0xe0) == 0xc0) {
        len = 2, v = c & 0x1f, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        len = 3, v = c & 0x0f, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return len;
}

void cf_json_print_str(FILE *out, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t n = s_utf8(s + i, len - i, &cp);
        if (n == 0) {
            fputs("\\ufffd", out);
            i++;
            continue;
        }
        switch (cp) {
        case '"': fputs("\\\"", out); break;
        case '\\': fputs("\\\\", out); break;
        case '\b': fputs("\\b", out); break;
        case '\f': fputs("\\f", out); break;
        case '\n': fputs("\\n", out); break;
        case '\r': fputs("\\r", out); break;
        case '\t': fputs("\\t", out); break;
        default:
            if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x2028 || cp == 0x2029)
                fprintf(out, "\\u%04x", (unsigned)cp);
            else
                fwrite(s + i, 1, n, out);
        }
        i += n;
    }
    fputc('"', out);
}

void cf_json_print_base64(FILE *out, const unsigned char *s, size_t len)
{
    static const char abc[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < len)
            v |= s[i + 2];
        fputc(abc[v >> 18 & 63], out);
        fputc(abc[v >> 12 & 63], out);
        fputc(i + 1 < len ? abc[v >> 6 & 63] : '=', out);
        fputc(i + 2 < len ? abc[v & 63] : '=', out);
    }
}

static bool s_masking = true;

void cf_json_set_masking(bool on) { s_masking = on; }
bool cf_json_masking(void) { return s_masking; }

bool cf_json_mask(const char *s, size_t len, char *out)
{
    if (!s_masking || len < 10 || len > 11 || cf_pid_check(s, len) == CF_PID_INVALID)
        return false;
    for (size_t i = 0; i < len; i++)
        out[i] = i < 6 || s[i] == '-' ? s[i] : 'X';
    out[len] = '\0';
    return true;
}

static void s_newline(FILE *out, int indent, int depth)
{
    if (indent <= 0)
        return;
    fputc('\n', out);
    for (int i = 0; i < indent * depth; i++)
        fputc(' ', out);
}

static void s_print(FILE *out, const msgpack_object *o, int indent, int depth);

/* A map key: strings as they are, anything else as its JSON text quoted
 * (JSON objects only have string keys). */
static void s_print_key(FILE *out, const msgpack_object *k)
{
    if (k->type == MSGPACK_OBJECT_STR) {
        cf_json_print_str(out, k->via.str.ptr, k->via.str.size);
        return;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!mem) {
        fputs("\"?\"", out);
        return;
    }
    s_print(mem, k, 0, 0);
    fclose(mem);
    cf_json_print_str(out, buf, len);
    free(buf);
}

static void s_print(FILE *out, const msgpack_object *o, int indent, int depth)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
    case MSGPACK_OBJECT_EXT:
        fputs("null", out);
        break;
    case MSGPACK_OBJECT_BOOLEAN:
        fputs(o->via.boolean ? "true" : "false", out);
        break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        fprintf(out, "%" PRIu64, o->via.u64);
        break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        fprintf(out, "%" PRId64, o->via.i64);
        break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (isfinite(o->via.f64))
            fprintf(out, "%.17g", o->via.f64);
        else
            fputs("null", out);
        break;
    case MSGPACK_OBJECT_STR: {
        char masked[12];
        if (cf_json_mask(o->via.str.ptr, o->via.str.size, masked))
            cf_json_print_str(out, masked, o->via.str.size);
        else
            cf_json_print_str(out, o->via.str.ptr, o->via.str.size);
        break;
    }
    case MSGPACK_OBJECT_BIN:
        fputc('"', out);
        cf_json_print_base64(out, (const unsigned char *)o->via.bin.ptr, o->via.bin.size);
        fputc('"', out);
        break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', out);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                fputc(',', out);
            s_newline(out, indent, depth + 1);
            s_print(out, &o->via.array.ptr[i], indent, depth + 1);
        }
        if (o->via.array.size)
            s_newline(out, indent, depth);
        fputc(']', out);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', out);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i)
                fputc(',', out);
            s_newline(out, indent, depth + 1);
            s_print_key(out, &o->via.map.ptr[i].key);
            fputs(indent > 0 ? ": " : ":", out);
            s_print(out, &o->via.map.ptr[i].val, indent, depth + 1);
        }
        if (o->via.map.size)
            s_newline(out, indent, depth);
        fputc('}', out);
        break;
    default:
        fputs("null", out);
    }
}

void cf_json_print(FILE *out, const msgpack_object *o, int indent)
{
    s_print(out, o, indent, 0);
}

/* mp.h: the msgpack helpers every layer and program shares (engine,
 * claimctl, bench, tests): packing C strings and times, looking keys up in
 * maps, hex.  One copy, so a fix reaches every caller (an empty string's
 * NULL ptr once reached only one of four copies). */
#ifndef CF_MP_H
#define CF_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "cf_time.h"

/* Pack a C string / n bytes as a msgpack str. */
void cf_pack_str(msgpack_packer *pk, const char *s);
void cf_pack_strn(msgpack_packer *pk, const char *s, size_t n);
/* Pack t as an RFC 3339 UTC string ("2026-11-24T09:15:00Z"). */
void cf_pack_time(msgpack_packer *pk, cf_time_t t);

/* The value of key in map: borrowed from map; NULL when map is NULL, not a
 * map, or has no such string key. */
const msgpack_object *cf_mp_get(const msgpack_object *map, const char *key);
/* The same for a key of klen bytes (not NUL-terminated). */
const msgpack_object *cf_mp_getn(const msgpack_object *map, const char *key, size_t klen);
/* o is a str equal to s (false for NULL). */
bool cf_mp_streq(const msgpack_object *o, const char *s);
/* The str value of key copied into buf (NUL-terminated, cut at cap - 1
 * bytes) and returned, or NULL when absent or not a str. */
const char *cf_mp_get_str(const msgpack_object *map, const char *key, char *buf, size_t cap);

/* Lower-case hex of in[0..n) into out (2n + 1 bytes). */
void cf_hex(const unsigned char *in, size_t n, char *out);
/* Lower-case hex s[0..n) into out[0..outlen): 0, or -1 when n != 2 outlen
 * or a digit is not [0-9a-f]. */
int cf_unhex(const char *s, size_t n, unsigned char *out, size_t outlen);

#endif

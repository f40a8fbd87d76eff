/* mpcheck: see mpcheck.h.  A single pass over the bytes with a small stack
 * of "elements still to read" per open container.  Every bound is checked
 * at a container's header, from its declared count, so what a refused frame
 * costs does not grow with what it declares. */
#include "mpcheck.h"

#include <stdint.h>

static uint64_t s_be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

int cf_mpcheck(const void *buf, size_t len, size_t *used)
{
    const unsigned char *p = buf;
    size_t pos = 0;
    /* left[d]: elements still to read in the container open at depth d;
     * depth 0 is the top level, which holds exactly one object. */
    uint64_t left[CF_MP_MAX_DEPTH + 1];
    int depth = 0;
    left[0] = 1;
    uint64_t pending = 1; /* sum of left[]: each needs at least one byte */

    while (depth >= 0) {
        if (left[depth] == 0) {
            depth--;
            continue;
        }
        if (pos >= len)
            return CF_MPCHECK_TRUNCATED;
        unsigned char b = p[pos++];
        left[depth]--;
        pending--;
        uint64_t skip = 0, elems = 0;
        int hdr = 0; /* bytes of length/count after the type byte */
        int kind = 0; /* 0 scalar/bytes, 1 array, 2 map */
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
            /* fixint, nil, bool */
        } else if (b >= 0x80 && b <= 0x8f) {
            kind = 2, elems = b & 0x0f;
        } else if (b >= 0x90 && b <= 0x9f) {
            kind = 1, elems = b & 0x0f;
        } else if (b >= 0xa0 && b <= 0xbf) {
            skip = b & 0x1f;
        } else {
            switch (b) {
            case 0xc4: case 0xd9: hdr = 1; break;             /* bin8, str8 */
            case 0xc5: case 0xda: hdr = 2; break;             /* bin16, str16 */
            case 0xc6: case 0xdb: hdr = 4; break;             /* bin32, str32 */
            case 0xc7: hdr = 1, skip = 1; break;              /* ext8 (+type) */
            case 0xc8: hdr = 2, skip = 1; break;              /* ext16 */
            case 0xc9: hdr = 4, skip = 1; break;              /* ext32 */
            case 0xca: skip = 4; break;                       /* float32 */
            case 0xcb: skip = 8; break;                       /* float64 */
            case 0xcc: case 0xd0: skip = 1; break;
            case 0xcd: case 0xd1: skip = 2; break;
            case 0xce: case 0xd2: skip = 4; break;
            case 0xcf: case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;                       /* fixext1 */
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc: kind = 1, hdr = 2; break;
            case 0xdd: kind = 1, hdr = 4; break;
            case 0xde: kind = 2, hdr = 2; break;
            case 0xdf: kind = 2, hdr = 4; break;
            default: return CF_MPCHECK_MALFORMED; /* 0xc1: never used */
            }
        }
        if (hdr) {
            if (len - pos < (size_t)hdr)
                return CF_MPCHECK_TRUNCATED;
            uint64_t n = s_be(p + pos, hdr);
            pos += (size_t)hdr;
            if (kind)
                elems = n;
            else
                skip += n;
        }
        if (kind) {
            /* Before the fit check: no byte that could follow makes such a
             * map acceptable, so "truncated" would be the wrong answer. */
            if (kind == 2 && elems > CF_MP_MAX_KEYS)
                return CF_MPCHECK_TOO_MANY_KEYS;
            uint64_t need = kind == 2 ? elems * 2 : elems;
            if (pending + need > (uint64_t)(len - pos))
                return CF_MPCHECK_TRUNCATED; /* ends before the elements it declares */
            if (need == 0)
                continue;
            if (depth + 1 > CF_MP_MAX_DEPTH)
                return CF_MPCHECK_TOO_DEEP;
            left[++depth] = need;
            pending += need;
        } else {
            if ((uint64_t)(len - pos) < skip)
                return CF_MPCHECK_TRUNCATED;
            pos += (size_t)skip;
        }
    }
    if (used)
        *used = pos;
    return CF_MPCHECK_OK;
}

#define S_STR_(x) #x
#define S_STR(x) S_STR_(x)

const char *cf_mpcheck_strerror(int rc)
{
    switch (rc) {
    case CF_MPCHECK_OK:
        return "well-formed msgpack";
    case CF_MPCHECK_TRUNCATED:
        return "the frame is truncated msgpack, or declares more elements than it holds";
    case CF_MPCHECK_TOO_DEEP:
        return "the frame nests deeper than " S_STR(CF_MP_MAX_DEPTH);
    case CF_MPCHECK_TOO_MANY_KEYS:
        return "a map in the frame has more than " S_STR(CF_MP_MAX_KEYS)
               " keys, the most a request may hold";
    default:
        return "the frame is not msgpack";
    }
}

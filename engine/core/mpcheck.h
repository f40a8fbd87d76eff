/* mpcheck: a structural check of msgpack bytes before they are unpacked.
 *
 * msgpack-c's unpacker allocates a container's element array from the
 * count its header declares, before reading any element: a ten-byte frame
 * announcing an array of 0xdddddddd elements asks for 100 GiB.  Every frame
 * from outside (requests, records read back) passes this walk first; it
 * allocates nothing and accepts a container only when the elements it
 * declares, together with those still pending, could fit in the bytes that
 * remain (each element takes at least one byte).
 *
 * It also refuses any map, at any depth, that declares more than
 * CF_MP_MAX_KEYS keys, at its header: whoever reads a map after this check
 * may then spend time per pair of keys (a duplicate-key check, a field
 * lookup per key) without a 1 MiB frame of 200,000 short keys costing
 * minutes (issue 18, item 3). */
#ifndef CF_MPCHECK_H
#define CF_MPCHECK_H

#include <stddef.h>

/* Deepest nesting accepted (msgpack-c's own stack is 32 deep). */
#define CF_MP_MAX_DEPTH 32

/* Most keys a map may have, at any depth.  The largest map a request
 * legitimately holds is a claim's or an event's `data`, one key per field
 * its workflow declares (the shipped workflows declare at most 3; a request
 * map itself has at most 8 keys): 256 leaves room for long insurer forms,
 * while 256 x 256 key comparisons cost microseconds (docs/protocol.md). */
#define CF_MP_MAX_KEYS 256

/* cf_mpcheck's results. */
#define CF_MPCHECK_OK             0
#define CF_MPCHECK_TRUNCATED      1   /* the bytes end inside the object */
#define CF_MPCHECK_MALFORMED    (-1)  /* not msgpack (0xc1) */
#define CF_MPCHECK_TOO_DEEP     (-2)  /* nests deeper than CF_MP_MAX_DEPTH */
#define CF_MPCHECK_TOO_MANY_KEYS (-3) /* a map declares over CF_MP_MAX_KEYS keys */

/* Checks that buf starts with one complete, well-formed msgpack object, in
 * one pass and without allocating.
 * Returns CF_MPCHECK_OK and sets *used (if not NULL) to the object's length;
 * CF_MPCHECK_TRUNCATED when the bytes end inside the object or a container
 * declares more elements than the remaining bytes could hold; a negative
 * CF_MPCHECK_* when no more bytes could make it acceptable.  Callers that
 * need only "acceptable or not" compare with 0. */
int cf_mpcheck(const void *buf, size_t len, size_t *used);

/* A person's sentence for a cf_mpcheck result (names the bound at fault);
 * a static string, never NULL. */
const char *cf_mpcheck_strerror(int rc);

#endif

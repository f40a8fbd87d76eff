/* mpcheck: a structural check of msgpack bytes before they are unpacked.
 *
 * msgpack-c's unpacker allocates a container's element array from the
 * count its header declares, before reading any element: a ten-byte frame
 * announcing an array of 0xdddddddd elements asks for 100 GiB.  Every frame
 * from outside (requests, records read back) passes this walk first; it
 * allocates nothing and accepts a container only when the elements it
 * declares, together with those still pending, could fit in the bytes that
 * remain (each element takes at least one byte). */
#ifndef CF_MPCHECK_H
#define CF_MPCHECK_H

#include <stddef.h>

/* Deepest nesting accepted (msgpack-c's own stack is 32 deep). */
#define CF_MP_MAX_DEPTH 32

/* Checks that buf starts with one complete, well-formed msgpack object.
 * Returns 0 and sets *used (if not NULL) to its length; 1 when the bytes
 * end inside the object (truncated); -1 when the bytes are not msgpack or
 * declare more elements than they could hold, or nest too deep. */
int cf_mpcheck(const void *buf, size_t len, size_t *used);

#endif

/* cf_err.h: claimflow's error codes, from one X-macro list.
 *
 * 0 is success; every error is a negative CF_E... value.  The protocol's
 * error codes (docs/protocol.md) are generated from the same list, one to one,
 * so a code can never be added to the engine without the protocol knowing it.
 * Details travel in a cf_error_t out-parameter (reterr_), never in logs.
 */
#ifndef CF_ERR_H
#define CF_ERR_H

#include <stdarg.h>
#include <stddef.h>

/* XX(SUFFIX, value, protocol code, generic message) */
#define CF_ERRNO_MAP(XX)                                                       \
    XX(BADREQ,    -1, "bad_request",        "bad request")                     \
    XX(UNKNOWNOP, -2, "unknown_op",         "unknown operation")               \
    XX(NOTFOUND,  -3, "not_found",          "not found")                       \
    XX(INVTRANS,  -4, "invalid_transition", "invalid transition")              \
    XX(GUARD,     -5, "guard_failed",       "guard failed")                    \
    XX(FORBIDDEN, -6, "forbidden",          "forbidden")                       \
    XX(CONFLICT,  -7, "conflict",           "conflict")                        \
    XX(TOOLARGE,  -8, "too_large",          "too large")                       \
    XX(UNAVAIL,   -9, "unavailable",        "unavailable")                     \
    XX(INTERNAL, -10, "internal",           "internal error")                  \
    XX(NOTLEADER, -11, "not_leader",        "not the leader")

enum {
#define CF_XX(s, v, code, msg) CF_E##s = (v),
    CF_ERRNO_MAP(CF_XX)
#undef CF_XX
};

/* A failure's details: the code and a message a person can act on.  The
 * message names the field, state or guard at fault, never a value the member
 * supplied (no person id, no free text). */
typedef struct {
    int code;
    char message[640];   /* room for a state's list of events and a refusal text */
} cf_error_t;

/* The protocol code ("bad_request") of err, or "internal" for anything not in
 * the list.  Static string. */
const char *cf_errname(int err);

/* A generic English message for err.  Static string. */
const char *cf_strerror(int err);

/* Parse a protocol code back into its value; 0 when unknown. */
int cf_errcode(const char *name);

/* Fill *reterr (which may be NULL) and return code, so a failing path can be
 * written `return cf_error_set(reterr, CF_EBADREQ, "field '%s' ...", f);`. */
int cf_error_set(cf_error_t *reterr, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif

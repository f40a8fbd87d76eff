/* cf_err.c: names and messages generated from CF_ERRNO_MAP. */
#include "cf_err.h"

#include <stdio.h>
#include <string.h>

const char *cf_errname(int err)
{
    switch (err) {
#define CF_XX(s, v, code, msg) case (v): return code;
        CF_ERRNO_MAP(CF_XX)
#undef CF_XX
    default: return "internal";
    }
}

const char *cf_strerror(int err)
{
    if (err == 0)
        return "success";
    switch (err) {
#define CF_XX(s, v, code, msg) case (v): return msg;
        CF_ERRNO_MAP(CF_XX)
#undef CF_XX
    default: return "internal error";
    }
}

int cf_errcode(const char *name)
{
#define CF_XX(s, v, code, msg) if (strcmp(name, code) == 0) return (v);
    CF_ERRNO_MAP(CF_XX)
#undef CF_XX
    return 0;
}

int cf_error_set(cf_error_t *reterr, int code, const char *fmt, ...)
{
    if (reterr) {
        va_list ap;
        va_start(ap, fmt);
        reterr->code = code;
        vsnprintf(reterr->message, sizeof reterr->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* diag.c: diagnostics list. */
#include "diag.h"
#include "cf_err.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int cf_diag_add(cf_diags_t *d, const char *file, uint32_t line, uint32_t col,
                const char *fmt, ...)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 8;
        cf_diag_t *v = realloc(d->v, cap * sizeof *v);
        if (!v)
            return CF_EINTERNAL;
        d->v = v;
        d->cap = cap;
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cf_diag_t *x = &d->v[d->n];
    x->file = strdup(file ? file : "");
    x->message = strdup(msg);
    if (!x->file || !x->message) {
        free(x->file);
        free(x->message);
        return CF_EINTERNAL;
    }
    x->line = line;
    x->col = col;
    d->n++;
    return 0;
}

void cf_diags_print(const cf_diags_t *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const cf_diag_t *x = &d->v[i];
        if (x->line)
            fprintf(out, "%s:%u:%u: %s\n", x->file, x->line, x->col, x->message);
        else
            fprintf(out, "%s: %s\n", x->file, x->message);
    }
}

void cf_diags_clear(cf_diags_t *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].message);
    }
    free(d->v);
    d->v = NULL;
    d->n = d->cap = 0;
}

/* diag.h: a list of diagnostics (file:line:col: message), for loaders that
 * report every error in a file rather than the first. */
#ifndef CF_DIAG_H
#define CF_DIAG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct {
    char *file;
    uint32_t line, col;           /* 1-based; 0 when the error has no place */
    char *message;
} cf_diag_t;

typedef struct {
    cf_diag_t *v;
    size_t n, cap;
} cf_diags_t;

/* Append one diagnostic (message formatted).  0, or CF_EINTERNAL when out of
 * memory (the diagnostic is then dropped). */
int cf_diag_add(cf_diags_t *d, const char *file, uint32_t line, uint32_t col,
                const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* Print each as "file:line:col: message\n" (":line:col" left out when 0). */
void cf_diags_print(const cf_diags_t *d, FILE *out);

/* Free every diagnostic; the list is empty afterwards and may be reused. */
void cf_diags_clear(cf_diags_t *d);

#endif

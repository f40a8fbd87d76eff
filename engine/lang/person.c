/* person.c: person ids (see person.h).
 *
 * The shape decides the country: 11 digits is Norwegian, 10 digits or
 * DDMMYY-SSSS is a Danish CPR number.  Both carry a birth date, and the year's
 * century follows from the serial (CPR: its first digit; Norway: the three-
 * digit individual number), so "the date must be real" means checking it in
 * the right century (29 February exists in 2000 but not in 1900).
 *
 * Nothing is copied or logged: the id is read in place.
 */
#include "person.h"
#include "cf_err.h"
#include "cf_time.h"

#include <stdbool.h>
#include <string.h>

static bool s_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

static int s_num(const char *s, size_t n)
{
    int v = 0;
    for (size_t i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

static bool s_date_ok(int day, int month, int year)
{
    return month >= 1 && month <= 12 && day >= 1 &&
           (unsigned)day <= cf_days_in_month(year, (unsigned)month);
}

/* ------------------------------------------------------------------ CPR --- */
/* d[0..10): DDMMYYSSSS.  Century from the 7th digit (CPR office table). */
static bool s_cpr_ok(const char *d)
{
    int day = s_num(d, 2), month = s_num(d + 2, 2), yy = s_num(d + 4, 2);
    int c7 = d[6] - '0', century;
    if (c7 <= 3)
        century = 1900;
    else if (c7 == 4 || c7 == 9)
        century = yy <= 36 ? 2000 : 1900;
    else
        century = yy <= 57 ? 2000 : 1800;
    return s_date_ok(day, month, century + yy);
}

/* -------------------------------------------------------------- Norway --- */

static const int s_k1_weights[9] = {3, 7, 6, 1, 8, 9, 4, 5, 2};
static const int s_k2_weights[10] = {5, 4, 3, 2, 7, 6, 5, 4, 3, 2};

/* The mod-11 control digit over d[0..n) with weights w, or -1 (remainder 1). */
static int s_mod11(const char *d, const int *w, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (d[i] - '0') * w[i];
    int r = sum % 11;
    if (r == 0)
        return 0;
    return r == 1 ? -1 : 11 - r;
}

/* Century from the individual number (Skatteetaten's table), or -1. */
static int s_no_century(int ind, int yy)
{
    if (ind <= 499)
        return 1900;
    if (ind <= 749 && yy >= 54)
        return 1800;
    if (yy <= 39)
        return 2000;   /* 500-999 */
    if (ind >= 900)
        return 1900;   /* 900-999, yy >= 40 */
    return -1;
}

static cf_pid_kind_t s_no_check(const char *d)
{
    int k1 = s_mod11(d, s_k1_weights, 9);
    int k2 = s_mod11(d, s_k2_weights, 10);
    if (k1 < 0 || k2 < 0 || k1 != d[9] - '0' || k2 != d[10] - '0')
        return CF_PID_INVALID;
    int day = s_num(d, 2), month = s_num(d + 2, 2), yy = s_num(d + 4, 2);
    cf_pid_kind_t kind = CF_PID_NO_FNR;
    if (day > 40) {
        day -= 40;
        kind = CF_PID_NO_DNR;
    }
    int century = s_no_century(s_num(d + 6, 3), yy);
    if (century < 0 || !s_date_ok(day, month, century + yy))
        return CF_PID_INVALID;
    return kind;
}

/* ---------------------------------------------------------------- public --- */

cf_pid_kind_t cf_pid_check(const char *s, size_t len)
{
    char d[10];
    if (!s)
        return CF_PID_INVALID;
    if (len == 11 && s_digits(s, 11))
        return s_no_check(s);
    if (len == 11 && s[6] == '-' && s_digits(s, 6) && s_digits(s + 7, 4)) {
        memcpy(d, s, 6);
        memcpy(d + 6, s + 7, 4);
        return s_cpr_ok(d) ? CF_PID_DK_CPR : CF_PID_INVALID;
    }
    if (len == 10 && s_digits(s, 10))
        return s_cpr_ok(s) ? CF_PID_DK_CPR : CF_PID_INVALID;
    return CF_PID_INVALID;
}

int cf_pid_canonical(const char *s, size_t len, char out[12])
{
    cf_pid_kind_t kind = cf_pid_check(s, len);
    if (kind == CF_PID_INVALID)
        return CF_EBADREQ;
    if (kind == CF_PID_DK_CPR && len == 11) {
        memcpy(out, s, 6);
        memcpy(out + 6, s + 7, 4);
        out[10] = '\0';
    } else {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return 0;
}

int cf_pid_country(cf_pid_kind_t kind)
{
    switch (kind) {
    case CF_PID_DK_CPR:
        return CF_COUNTRY_DK;
    case CF_PID_NO_FNR:
    case CF_PID_NO_DNR:
        return CF_COUNTRY_NO;
    case CF_PID_INVALID:
        break;
    }
    return -1;
}

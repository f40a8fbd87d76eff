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
/* d[0..10): DDMMYYSSSS.  Century from the 7th digit (CPR office table).
 * The birth date into *y, *m, *day (may be NULL) when real. */
static bool s_cpr_birth(const char *d, int *y, int *m, int *dd)
{
    int day = s_num(d, 2), month = s_num(d + 2, 2), yy = s_num(d + 4, 2);
    int c7 = d[6] - '0', century;
    if (c7 <= 3)
        century = 1900;
    else if (c7 == 4 || c7 == 9)
        century = yy <= 36 ? 2000 : 1900;
    else
        century = yy <= 57 ? 2000 : 1800;
    if (!s_date_ok(day, month, century + yy))
        return false;
    if (y) {
        *y = century + yy;
        *m = month;
        *dd = day;
    }
    return true;
}

static bool s_cpr_ok(const char *d) { return s_cpr_birth(d, NULL, NULL, NULL); }

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

static cf_pid_kind_t s_no_check(const char *d, int *y, int *m, int *dd)
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
    if (y) {
        *y = century + yy;
        *m = month;
        *dd = day;
    }
    return kind;
}

/* ---------------------------------------------------------------- public --- */

cf_pid_kind_t cf_pid_check(const char *s, size_t len)
{
    char d[10];
    if (!s)
        return CF_PID_INVALID;
    if (len == 11 && s_digits(s, 11))
        return s_no_check(s, NULL, NULL, NULL);
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

/* ---------------------------------------------------------------- age --- */

int cf_pid_birth(const char *s, size_t len, int *y, unsigned *m, unsigned *d)
{
    char c[12];
    if (cf_pid_canonical(s, len, c) != 0)
        return CF_EBADREQ;
    int yy, mm, dd;
    bool ok = strlen(c) == 11 ? s_no_check(c, &yy, &mm, &dd) != CF_PID_INVALID
                              : s_cpr_birth(c, &yy, &mm, &dd);
    if (!ok)
        return CF_EBADREQ;
    *y = yy;
    *m = (unsigned)mm;
    *d = (unsigned)dd;
    return 0;
}

/* The day (days since 1970) a person born y-m-d turns `years`: the same
 * date, and 1 March for a 29 February birthday in a common year. */
static int64_t s_birthday(int y, unsigned m, unsigned d, int years)
{
    int ty = y + years;
    if (m == 2 && d == 29 && !cf_is_leap(ty))
        return cf_days_from_civil(ty, 3, 1);
    return cf_days_from_civil(ty, m, d);
}

int cf_pid_birthday_day(const char *s, size_t len, int years, int64_t *ret)
{
    int y;
    unsigned m, d;
    if (years < 0 || years > 200 || cf_pid_birth(s, len, &y, &m, &d) != 0)
        return CF_EBADREQ;
    *ret = s_birthday(y, m, d, years);
    return 0;
}

int cf_pid_birthday(const char *s, size_t len, int years, cf_time_t *ret)
{
    int64_t day;
    int rc = cf_pid_birthday_day(s, len, years, &day);
    if (rc == 0)
        *ret = day * 86400;
    return rc;
}

int cf_pid_age(const char *s, size_t len, cf_time_t at)
{
    return cf_pid_age_on(s, len, at >= 0 ? at / 86400 : (at - 86399) / 86400);
}

int cf_pid_age_on(const char *s, size_t len, int64_t today)
{
    int y;
    unsigned m, d;
    if (cf_pid_birth(s, len, &y, &m, &d) != 0)
        return -1;
    if (today < cf_days_from_civil(y, m, d))
        return -1;      /* not born yet: no age */
    int cy;
    unsigned cm, cd;
    cf_civil_from_days(today, &cy, &cm, &cd);
    int age = cy - y;
    if (today < s_birthday(y, m, d, age))
        age--;
    return age;
}

/* cf_time.c: RFC 3339, civil dates, durations.  No locale, no time zone: the
 * C library's mktime/localtime depend on the process-global TZ, which the
 * engine never touches. */
#include "cf_time.h"
#include "cf_err.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

int64_t cf_days_from_civil(int y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void cf_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const int64_t yy = (int64_t)yoe + era * 400;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

int cf_weekday(int64_t days)
{
    /* 1970-01-01 was a Thursday (4). */
    int64_t w = (days + 3) % 7;
    if (w < 0)
        w += 7;
    return (int)w + 1;
}

bool cf_is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned cf_days_in_month(int y, unsigned m)
{
    static const unsigned dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12)
        return 0;
    return m == 2 && cf_is_leap(y) ? 29 : dim[m - 1];
}

char *cf_time_format(cf_time_t t, char *buf)
{
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days -= 1;
    }
    int y;
    unsigned m, d;
    cf_civil_from_days(days, &y, &m, &d);
    if (y < 0 || y > 9999) {
        snprintf(buf, CF_TIME_BUFLEN, "%04d-%02u-%02uT%02d:%02d:%02dZ", y, m, d,
                 (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60));
        return buf;
    }
    /* By hand: every reply, event and history record carries times, and
     * snprintf was 7% of the engine's instructions (docs/BENCHMARKS.md). */
    unsigned v[6] = {(unsigned)y, m, d, (unsigned)(secs / 3600),
                     (unsigned)(secs / 60 % 60), (unsigned)(secs % 60)};
    char *p = buf;
    *p++ = (char)('0' + v[0] / 1000);
    *p++ = (char)('0' + v[0] / 100 % 10);
    *p++ = (char)('0' + v[0] / 10 % 10);
    *p++ = (char)('0' + v[0] % 10);
    for (int i = 1; i < 6; i++) {
        *p++ = "--T::"[i - 1];
        *p++ = (char)('0' + v[i] / 10);
        *p++ = (char)('0' + v[i] % 10);
    }
    *p++ = 'Z';
    *p = '\0';
    return buf;
}

static int s_digits(const char *s, size_t n, int *ret)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return 0;
}

int cf_date_parse(const char *s, size_t len, int *y, unsigned *m, unsigned *d)
{
    int yy, mm, dd;
    if (len != 10 || s[4] != '-' || s[7] != '-' || s_digits(s, 4, &yy) ||
        s_digits(s + 5, 2, &mm) || s_digits(s + 8, 2, &dd))
        return CF_EBADREQ;
    if (yy < 1 || mm < 1 || mm > 12 || dd < 1 || (unsigned)dd > cf_days_in_month(yy, (unsigned)mm))
        return CF_EBADREQ;
    *y = yy;
    *m = (unsigned)mm;
    *d = (unsigned)dd;
    return 0;
}

int cf_time_parse(const char *s, size_t len, cf_time_t *ret)
{
    int y, hh, mi, ss, oh = 0, om = 0, sign = 0;
    unsigned m, d;
    if (len < 20 || cf_date_parse(s, 10, &y, &m, &d) != 0)
        return CF_EBADREQ;
    if ((s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' ||
        s_digits(s + 11, 2, &hh) || s_digits(s + 14, 2, &mi) || s_digits(s + 17, 2, &ss))
        return CF_EBADREQ;
    if (hh > 23 || mi > 59 || ss > 60)
        return CF_EBADREQ;
    size_t i = 19;
    if (s[i] == '.') {
        i++;
        size_t start = i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == start)
            return CF_EBADREQ;
    }
    if (i >= len)
        return CF_EBADREQ;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        sign = s[i] == '+' ? 1 : -1;
        if (len - i < 6 || s[i + 3] != ':' || s_digits(s + i + 1, 2, &oh) ||
            s_digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return CF_EBADREQ;
        i += 6;
    } else {
        return CF_EBADREQ;
    }
    if (i != len)
        return CF_EBADREQ;
    if (ss == 60)
        ss = 59; /* a leap second is the last second of its minute */
    cf_time_t t = cf_days_from_civil(y, m, d) * 86400 + hh * 3600 + mi * 60 + ss;
    t -= sign * (oh * 3600 + om * 60);
    *ret = t;
    return 0;
}

int cf_dur_parse(const char *s, cf_dur_t *ret)
{
    int64_t n = 0;
    size_t i = 0;
    if (!s)
        return CF_EBADREQ;
    while (s[i] >= '0' && s[i] <= '9') {
        n = n * 10 + (s[i] - '0');
        if (n > CF_DUR_MAX)
            return CF_EBADREQ;
        i++;
    }
    if (i == 0 || n == 0)
        return CF_EBADREQ;
    static const struct { const char *suffix; cf_dur_unit_t unit; } units[] = {
        {"m", CF_DUR_MINUTES}, {"h", CF_DUR_HOURS}, {"d", CF_DUR_DAYS},
        {"w", CF_DUR_WEEKS},   {"y", CF_DUR_YEARS}, {"bd", CF_DUR_BDAYS},
        {"mo", CF_DUR_MONTHS},
    };
    for (size_t k = 0; k < sizeof units / sizeof units[0]; k++) {
        if (strcmp(s + i, units[k].suffix) == 0) {
            ret->n = n;
            ret->unit = units[k].unit;
            return 0;
        }
    }
    return CF_EBADREQ;
}

char *cf_dur_format(cf_dur_t d, char *buf, size_t len)
{
    static const char *const suffix[] = {"m", "h", "d", "w", "y", "bd", "mo"};
    snprintf(buf, len, "%lld%s", (long long)d.n, suffix[d.unit]);
    return buf;
}

cf_time_t cf_time_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (cf_time_t)ts.tv_sec;
}

int64_t cf_days_add_months(int64_t d, int64_t n)
{
    int y;
    unsigned m, day;
    cf_civil_from_days(d, &y, &m, &day);
    int64_t months = (int64_t)y * 12 + (m - 1) + n;
    int64_t ny = months >= 0 ? months / 12 : -((-months + 11) / 12);
    unsigned nm = (unsigned)(months - ny * 12) + 1;
    if (day > cf_days_in_month((int)ny, nm))
        day = cf_days_in_month((int)ny, nm);
    return cf_days_from_civil((int)ny, nm, day);
}

cf_time_t cf_add_year(cf_time_t t)
{
    int64_t days = t / 86400, secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    int y;
    unsigned m, d;
    cf_civil_from_days(days, &y, &m, &d);
    y++;
    if (m == 2 && d == 29 && !cf_is_leap(y))
        d = 28;
    return cf_days_from_civil(y, m, d) * 86400 + secs;
}

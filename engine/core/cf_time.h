/* cf_time.h: instants, civil dates and durations, shared by every layer.
 *
 * An instant is whole seconds since the Unix epoch, UTC (cf_time_t).  The
 * protocol speaks RFC 3339 in UTC; a date (YYYY-MM-DD) is a civil date with no
 * zone.  Civil-date arithmetic uses Howard Hinnant's days_from_civil, exact for
 * the proleptic Gregorian calendar.  Business days and local time are the
 * calendar module's job (engine/calendar.h), not this one's.
 */
#ifndef CF_TIME_H
#define CF_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int64_t cf_time_t;

#define CF_TIME_BUFLEN 32

typedef enum {
    CF_DUR_MINUTES,  /* "30m": absolute seconds */
    CF_DUR_HOURS,    /* "2h":  absolute seconds */
    CF_DUR_DAYS,     /* "2d":  same local clock time N calendar days later */
    CF_DUR_WEEKS,    /* "4w":  7N calendar days */
    CF_DUR_YEARS,    /* "1y":  same local date and time N years later (29 Feb -> 28 Feb) */
    CF_DUR_BDAYS,    /* "2bd": N business days of the claim's calendar */
    CF_DUR_MONTHS,   /* "6mo": same local date and time N months later (31st -> month's last) */
} cf_dur_unit_t;

typedef struct {
    int64_t n;            /* 1..CF_DUR_MAX */
    cf_dur_unit_t unit;
} cf_dur_t;

#define CF_DUR_MAX 100000

/* Parse "30m", "2h", "2d", "4w", "6mo", "1y", "1bd".  0, or CF_EBADREQ for anything
 * else (no sign, no spaces, no zero, no unit other than those). */
int cf_dur_parse(const char *s, cf_dur_t *ret);

/* Write d in the form cf_dur_parse reads; returns buf. */
char *cf_dur_format(cf_dur_t d, char *buf, size_t len);

/* Days since 1970-01-01 of a proleptic Gregorian date (no range check). */
int64_t cf_days_from_civil(int y, unsigned m, unsigned d);
void cf_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d);
/* ISO weekday of a day number: 1 = Monday ... 7 = Sunday. */
int cf_weekday(int64_t days);
/* 28..31 */
unsigned cf_days_in_month(int y, unsigned m);
bool cf_is_leap(int y);

/* The date (days since 1970) d plus n months (n may be negative), the day
 * cut to the month's last (31 March + 1 month: 30 April). */
int64_t cf_days_add_months(int64_t d, int64_t n);

/* t plus one year in UTC civil time (29 February -> 28 February). */
cf_time_t cf_add_year(cf_time_t t);

/* "2026-11-24T09:15:00Z" into buf (at least CF_TIME_BUFLEN); returns buf. */
char *cf_time_format(cf_time_t t, char *buf);

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm), 't' and
 * 'z' accepted, fraction dropped.  0 or CF_EBADREQ.  s need not be
 * NUL-terminated. */
int cf_time_parse(const char *s, size_t len, cf_time_t *ret);

/* YYYY-MM-DD, a real date, year 1..9999.  0 or CF_EBADREQ. */
int cf_date_parse(const char *s, size_t len, int *y, unsigned *m, unsigned *d);

/* The real clock, UTC seconds. */
cf_time_t cf_time_now(void);

#endif

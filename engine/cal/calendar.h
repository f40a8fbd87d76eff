/* calendar.h: business-day calendars - public holidays by rule (Denmark,
 * Norway, 1900-2199), the insurer's own closing days, working weekdays, and a
 * time zone from the system's tz database - and the duration arithmetic the
 * timers use.  Rules and examples: docs/timers.md.
 *
 * Calendars are declared in YAML (workflows/calendars.yaml).  A loaded set is
 * immutable and may be shared by threads.  Nothing here reads the process's TZ
 * or calls localtime(): zones are read from /usr/share/zoneinfo (TZif) so two
 * calendars in two zones can be used side by side.
 */
#ifndef CF_CALENDAR_H
#define CF_CALENDAR_H

#include <stdbool.h>
#include <stddef.h>

#include "cf_err.h"
#include "cf_time.h"
#include "country.h"
#include "diag.h"

typedef struct cf_cal cf_cal_t;
typedef struct cf_cal_set cf_cal_set_t;

typedef struct {
    int year;
    unsigned month, day;
    const char *name;   /* "Langfredag"; static or owned by the calendar */
} cf_cal_day_t;

#define CF_CAL_YEAR_MIN 1900
#define CF_CAL_YEAR_MAX 2199

/* Load a calendars file (top-level key `calendars:`).  0 and a new set (free
 * with cf_cal_set_destroy), or CF_EBADREQ with every error appended to
 * *reterr as file:line:col + message, or CF_EINTERNAL. */
int cf_cal_set_load_file(const char *path, cf_cal_set_t **ret, cf_diags_t *reterr);
int cf_cal_set_load_buffer(const char *file, const char *buf, size_t len,
                           cf_cal_set_t **ret, cf_diags_t *reterr);
void cf_cal_set_destroy(cf_cal_set_t **set_p);

/* The calendar named name, or NULL; borrowed, valid while the set lives. */
const cf_cal_t *cf_cal_find(const cf_cal_set_t *set, const char *name);
/* Names of the calendars in the set, in file order. */
size_t cf_cal_count(const cf_cal_set_t *set);
const cf_cal_t *cf_cal_at(const cf_cal_set_t *set, size_t i);
const char *cf_cal_name(const cf_cal_t *cal);
const char *cf_cal_tz(const cf_cal_t *cal);  /* "Europe/Copenhagen" */
/* The country whose public holidays it keeps (its `country:`). */
cf_country_t cf_cal_country(const cf_cal_t *cal);

/* Public holidays and closing days of year, in date order, written to
 * out[0..cap); *n is the number there are (may exceed cap).  0, or
 * CF_EBADREQ when year is outside CF_CAL_YEAR_MIN..MAX. */
int cf_cal_closed_days(const cf_cal_t *cal, int year, cf_cal_day_t *out,
                       size_t cap, size_t *n);

/* True when the date is a working weekday and not a holiday or closing day. */
bool cf_cal_is_business_day(const cf_cal_t *cal, int y, unsigned m, unsigned d);

/* start + d in cal: minutes and hours are absolute; days, weeks and years are
 * local-calendar arithmetic keeping the local clock time; business days keep
 * the local clock time N business days later, a start outside a business day
 * counting from the next business day's opening (docs/timers.md).
 * 0, or CF_EBADREQ (result outside the supported years). */
int cf_cal_add(const cf_cal_t *cal, cf_time_t start, cf_dur_t d, cf_time_t *ret);

/* UTC offset in seconds of cal's zone at instant t. */
int cf_cal_utc_offset(const cf_cal_t *cal, cf_time_t t);

/* The local date (days since 1970) of instant t in cal's zone. */
int64_t cf_cal_today(const cf_cal_t *cal, cf_time_t t);

/* The end of local date day in cal's zone: the instant the next day
 * begins (local midnight; a gap in the zone's clock moves it to the first
 * instant of the next day). */
cf_time_t cf_cal_end_of_day(const cf_cal_t *cal, int64_t day);

/* t as local time, "2026-04-03T10:00:00+02:00", into buf (CF_TIME_BUFLEN). */
char *cf_cal_format_local(const cf_cal_t *cal, cf_time_t t, char *buf);

#endif

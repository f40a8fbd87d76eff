/* cal_tz.h: time zones for the calendar module (private to cf_cal; tests use
 * it directly).  A zone is read from a TZif file (RFC 8536, versions 1-3) and
 * answers two questions without touching the process's TZ: the UTC offset at
 * an instant, and the instant of a local wall-clock time.
 *
 * A cf_tz_t is immutable once built and may be shared by threads.
 */
#ifndef CF_CAL_TZ_H
#define CF_CAL_TZ_H

#include <stddef.h>
#include <stdint.h>

#include "cf_time.h"

typedef struct cf_tz cf_tz_t;

/* Largest TZif file accepted (real ones are a few KiB). */
#define CF_TZ_FILE_MAX (256 * 1024)

/* Load zone name ("Europe/Oslo") from dir (NULL: $TZDIR, else
 * /usr/share/zoneinfo).  0 and a new zone (free with cf_tz_destroy), or
 *   CF_ENOTFOUND  no such zone (or a name that is not a zone path: absolute,
 *                 "..", characters other than A-Z a-z 0-9 _ + - . /);
 *   CF_EBADREQ    the file is unreadable or not a valid TZif file;
 *   CF_EINTERNAL  out of memory.
 * On failure a reason is written to why (if not NULL). */
int cf_tz_load(const char *dir, const char *name, cf_tz_t **ret, char *why,
               size_t whylen);

/* Parse a TZif image.  0, CF_EBADREQ (reason in why) or CF_EINTERNAL. */
int cf_tz_parse(const unsigned char *buf, size_t len, cf_tz_t **ret, char *why,
                size_t whylen);

/* A zone with no transitions, only a POSIX TZ rule ("CET-1CEST,M3.5.0,
 * M10.5.0/3"; Mm.w.d, Jn and n dates, times -167..167 h).  0, CF_EBADREQ or
 * CF_EINTERNAL. */
int cf_tz_from_posix(const char *rule, cf_tz_t **ret);

void cf_tz_destroy(cf_tz_t **tz_p);

/* UTC offset in seconds (east positive) at instant t.  When since is not NULL
 * it receives the instant that offset took effect (INT64_MIN: always). */
int32_t cf_tz_offset(const cf_tz_t *tz, cf_time_t t, cf_time_t *since);

/* The instant whose local wall-clock time is local (seconds since
 * 1970-01-01T00:00 local).  A time that occurs twice (the autumn overlap)
 * gives the earlier instant; a time that does not occur (the spring gap) is
 * moved forward by the length of the gap, i.e. read with the offset in force
 * before the gap (02:30 on 2026-03-29 in Copenhagen is 03:30 CEST). */
cf_time_t cf_tz_local_to_utc(const cf_tz_t *tz, int64_t local);

#endif

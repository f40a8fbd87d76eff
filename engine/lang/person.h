/* person.h: person ids - Danish CPR numbers and Norwegian national identity
 * numbers (fødselsnummer) and D-numbers.
 *
 * CPR: DDMMYY-SSSS or DDMMYYSSSS; the date must be real; the century follows
 * from the 7th digit and the year (CPR office rules); no modulus-11 check (it
 * stopped holding in 2007).  Norway: 11 digits DDMMYYIIIKK, both mod-11
 * control digits must hold; a D-number has 4 added to the first digit.
 * Nothing here logs or copies the id.
 */
#ifndef CF_PERSON_H
#define CF_PERSON_H

#include <stddef.h>

#include "country.h"
#include "cf_time.h"

typedef enum {
    CF_PID_INVALID = 0,
    CF_PID_DK_CPR,
    CF_PID_NO_FNR,
    CF_PID_NO_DNR,
} cf_pid_kind_t;

/* What kind of person id s[0..len) is, or CF_PID_INVALID. */
cf_pid_kind_t cf_pid_check(const char *s, size_t len);

/* The country a valid id belongs to (CPR: dk; fødselsnummer, D-number:
 * no), or -1 for CF_PID_INVALID: what fixes a claim's country. */
int cf_pid_country(cf_pid_kind_t kind);

/* The canonical form of a valid id: CPR without the dash (10 digits),
 * Norwegian ids as given (11 digits).  out must hold 12 bytes.  0 or
 * CF_EBADREQ. */
int cf_pid_canonical(const char *s, size_t len, char out[12]);

/* Ages.  A person turns a year older when their birthday begins where they
 * live: at local midnight.  This module knows dates, not zones, so its
 * primary functions take and give local dates (days since 1970); the
 * engine turns them into instants with the calendar of the person's country
 * (engine/app/reps.c).  The instant forms below read the date in UTC, for
 * callers with no calendar.  Born on 29 February, one turns a year older on
 * 1 March in a common year (the Danish and Norwegian practice).  Nothing
 * here reads the system clock. */

/* Whole years of age on local date day, or -1 (not a valid id, or day is
 * before the birth date). */
int cf_pid_age_on(const char *s, size_t len, int64_t day);
/* *ret: the local date (days since 1970) the person turns `years`
 * (0..200).  0 or CF_EBADREQ. */
int cf_pid_birthday_day(const char *s, size_t len, int years, int64_t *ret);

/* The birth date of a valid id into *y, *m, *d.  0 or CF_EBADREQ. */
int cf_pid_birth(const char *s, size_t len, int *y, unsigned *m, unsigned *d);
/* Whole years of age at instant at, its date read in UTC, or -1. */
int cf_pid_age(const char *s, size_t len, cf_time_t at);
/* *ret: 00:00 UTC of the date the person turns `years` (0..200).  0 or
 * CF_EBADREQ. */
int cf_pid_birthday(const char *s, size_t len, int years, cf_time_t *ret);

#endif

/* country.h: the countries claimflow serves and their currencies - what a
 * member's person id, a calendar and a workflow's `by_member_country` map
 * have in common (docs/workflows.md, "Calendar and currency per member").
 *
 * One X-macro list each, so names, parsing and the tables indexed by
 * country (a workflow's calendar and currency per country, a registry
 * entry's resolved calendars) come from one place.  Adding a country is a
 * line here and its holiday rules in calendar.c.
 */
#ifndef CF_COUNTRY_H
#define CF_COUNTRY_H

#include <stddef.h>
#include <stdint.h>

/* country, its code (ISO 3166 in lower case, as calendars.yaml and the
 * protocol write it), and the currency its claims default to. */
#define CF_COUNTRY_MAP(XX)    \
    XX(DK, "dk", DKK)         \
    XX(NO, "no", NOK)

/* currency and its ISO 4217 code. */
#define CF_CURRENCY_MAP(XX) \
    XX(DKK, "DKK")          \
    XX(NOK, "NOK")

typedef enum {
#define CF_XX(s, code, cur) CF_COUNTRY_##s,
    CF_COUNTRY_MAP(CF_XX)
#undef CF_XX
    CF_COUNTRY_N
} cf_country_t;

typedef enum {
#define CF_XX(s, code) CF_CURRENCY_##s,
    CF_CURRENCY_MAP(CF_XX)
#undef CF_XX
    CF_CURRENCY_N
} cf_currency_t;

/* The country whose code is s[0..len), or -1. */
int cf_country_parse(const char *s, size_t len);
/* The code of a country ("dk"); "?" for anything else. */
const char *cf_country_code(cf_country_t c);
/* The currency a country's claims use unless the workflow says otherwise. */
cf_currency_t cf_country_currency(cf_country_t c);
/* The codes of every country, ", "-separated ("dk, no"), for messages. */
const char *cf_country_list(void);

/* The currency whose code is s[0..len) (upper case, "NOK"), or -1. */
int cf_currency_parse(const char *s, size_t len);
/* The code of a currency ("NOK"); "?" for anything else. */
const char *cf_currency_code(cf_currency_t c);
/* The codes of every currency, ", "-separated, for messages. */
const char *cf_currency_list(void);

/* An amount in minor units (øre) of currency cur as people of its country
 * write it, into buf[0..len): DKK "1.500,00 kr.", NOK "kr 1 500,00" (plain
 * spaces, docs/claimctl.md); a negative amount gets a leading '-'.  Returns
 * buf; an empty string when len is too small (48 bytes always do). */
char *cf_currency_format(cf_currency_t cur, int64_t minor, char *buf, size_t len);

#endif

/* country.c: countries, currencies and amounts as their people write them
 * (country.h).
 *
 * Amount formats are a small table (thousands separator, decimal mark,
 * symbol before or after) rather than the C library's locales: a locale
 * depends on what the machine has installed (Debian ships few by default)
 * and on process-wide state, and claimctl must print the same bytes
 * everywhere.
 */
#include "country.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *code;
    cf_currency_t currency;
} s_countries[] = {
#define CF_XX(s, code, cur) {code, CF_CURRENCY_##cur},
    CF_COUNTRY_MAP(CF_XX)
#undef CF_XX
};

/* How each currency's amounts are written.  NOK groups with a plain space
 * (Norwegian typesetting uses a thin or no-break space; a plain one is what
 * an operator types into grep). */
static const struct {
    const char *code;
    const char *prefix, *suffix;
    char group, decimal;
} s_currencies[] = {
    [CF_CURRENCY_DKK] = {"DKK", "", " kr.", '.', ','},
    [CF_CURRENCY_NOK] = {"NOK", "kr ", "", ' ', ','},
};

_Static_assert(sizeof s_currencies / sizeof s_currencies[0] == CF_CURRENCY_N,
               "a format for every currency of CF_CURRENCY_MAP");

static bool s_is(const char *name, const char *s, size_t len)
{
    return strlen(name) == len && memcmp(name, s, len) == 0;
}

int cf_country_parse(const char *s, size_t len)
{
    for (int i = 0; i < CF_COUNTRY_N; i++)
        if (s_is(s_countries[i].code, s, len))
            return i;
    return -1;
}

const char *cf_country_code(cf_country_t c)
{
    return (unsigned)c < CF_COUNTRY_N ? s_countries[c].code : "?";
}

cf_currency_t cf_country_currency(cf_country_t c)
{
    return (unsigned)c < CF_COUNTRY_N ? s_countries[c].currency : CF_CURRENCY_DKK;
}

/* ", dk, no" made by the X-macro; the list starts past the first ", ". */
const char *cf_country_list(void)
{
    static const char list[] = ""
#define CF_XX(s, code, cur) ", " code
        CF_COUNTRY_MAP(CF_XX)
#undef CF_XX
        ;
    return &list[2];
}

int cf_currency_parse(const char *s, size_t len)
{
    for (int i = 0; i < CF_CURRENCY_N; i++)
        if (s_is(s_currencies[i].code, s, len))
            return i;
    return -1;
}

const char *cf_currency_code(cf_currency_t c)
{
    return (unsigned)c < CF_CURRENCY_N ? s_currencies[c].code : "?";
}

const char *cf_currency_list(void)
{
    static const char list[] = ""
#define CF_XX(s, code) ", " code
        CF_CURRENCY_MAP(CF_XX)
#undef CF_XX
        ;
    return &list[2];
}

char *cf_currency_format(cf_currency_t cur, int64_t minor, char *buf, size_t len)
{
    if (len)
        buf[0] = '\0';
    if ((unsigned)cur >= CF_CURRENCY_N)
        return buf;
    /* unsigned, so INT64_MIN has a magnitude too */
    uint64_t mag = minor < 0 ? 0 - (uint64_t)minor : (uint64_t)minor;
    char digits[24];
    int nd = snprintf(digits, sizeof digits, "%llu", (unsigned long long)(mag / 100));
    char whole[40];
    size_t w = 0;
    for (int i = 0; i < nd; i++) {
        if (i > 0 && (nd - i) % 3 == 0)
            whole[w++] = s_currencies[cur].group;
        whole[w++] = digits[i];
    }
    whole[w] = '\0';
    int n = snprintf(buf, len, "%s%s%s%c%02u%s", minor < 0 ? "-" : "",
                     s_currencies[cur].prefix, whole, s_currencies[cur].decimal,
                     (unsigned)(mag % 100), s_currencies[cur].suffix);
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
    }
    return buf;
}

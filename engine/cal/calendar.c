/* calendar.c: business-day calendars (see calendar.h, docs/timers.md).
 *
 * Design.  Holidays are not stored: each country is a small table of rules
 * (fixed month/day, or an offset from Easter Sunday, optionally ending in a
 * given year) evaluated on demand, so every year 1900-2199 costs the same and
 * nothing is generated at load time.  Easter is the anonymous Gregorian
 * computus.  The insurer's closing days are a short list of (year or every
 * year, month, day).  A date's "closed" name is the first matching holiday
 * rule in table order, else "closing day": that one lookup gives
 * cf_cal_closed_days (walk the year's dates, so the output is sorted and free
 * of duplicates by construction, and needs no allocation) and
 * cf_cal_is_business_day.
 *
 * Time zones come from cal_tz.c (TZif + POSIX footer); durations are applied
 * in local civil time where the unit is calendar-based and converted back with
 * cf_tz_local_to_utc (gap: forward by the gap; overlap: earlier instant).
 *
 * Loading is two passes: core's YAML reader (yamltree.h) builds a small
 * tree, refusing tabs in indentation, anchors, aliases, tags, deep nesting
 * and a second document with the messages every YAML file of claimflow
 * gets; then a validator walks the tree and reports every error it finds
 * with file:line:col instead of stopping at the first (the reader's refusals
 * do not stop it; a syntax error does).  Rejected: validating straight from
 * the event stream - it makes "duplicate key" and "missing key" checks a
 * state machine of their own.
 *
 * Invariants of a loaded set: every calendar has a country, a zone, at least
 * one workday and a valid opening time; nothing in it changes after load, so
 * it may be shared by threads.
 */
#include "calendar.h"
#include "cal_tz.h"
#include "yamltree.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_FILE_MAX (1024 * 1024)   /* calendars file size limit */
#define S_NAME_MAX 64              /* calendar name length */

/* ------------------------------------------------------------ holidays --- */

typedef struct {
    bool easter;        /* day is an offset from Easter Sunday; else month/day */
    unsigned month;
    int day;
    int last_year;      /* 0: still observed */
    const char *name;
} s_holiday_t;

static const s_holiday_t s_dk[] = {
    {false, 1, 1, 0, "Nytårsdag"},
    {true, 0, -3, 0, "Skærtorsdag"},
    {true, 0, -2, 0, "Langfredag"},
    {true, 0, 0, 0, "Påskedag"},
    {true, 0, 1, 0, "2. påskedag"},
    {true, 0, 26, 2023, "Store bededag"},   /* abolished from 2024 */
    {true, 0, 39, 0, "Kristi himmelfartsdag"},
    {true, 0, 49, 0, "Pinsedag"},
    {true, 0, 50, 0, "2. pinsedag"},
    {false, 12, 25, 0, "Juledag"},
    {false, 12, 26, 0, "2. juledag"},
};

/* 1 and 17 May come before the movable feasts: when they coincide (1 May
 * 2008 was Ascension Day) the date is listed under its fixed name. */
static const s_holiday_t s_no[] = {
    {false, 1, 1, 0, "1. nyttårsdag"},
    {true, 0, -3, 0, "Skjærtorsdag"},
    {true, 0, -2, 0, "Langfredag"},
    {true, 0, 0, 0, "1. påskedag"},
    {true, 0, 1, 0, "2. påskedag"},
    {false, 5, 1, 0, "1. mai"},
    {false, 5, 17, 0, "17. mai"},
    {true, 0, 39, 0, "Kristi himmelfartsdag"},
    {true, 0, 49, 0, "1. pinsedag"},
    {true, 0, 50, 0, "2. pinsedag"},
    {false, 12, 25, 0, "1. juledag"},
    {false, 12, 26, 0, "2. juledag"},
};

typedef struct {
    cf_country_t id;
    const s_holiday_t *rules;
    size_t n;
} s_country_t;

/* Holiday rules for every country of CF_COUNTRY_MAP (country.h). */
static const s_country_t s_countries[] = {
    {CF_COUNTRY_DK, s_dk, sizeof s_dk / sizeof s_dk[0]},
    {CF_COUNTRY_NO, s_no, sizeof s_no / sizeof s_no[0]},
};
#define S_NCOUNTRIES (sizeof s_countries / sizeof s_countries[0])

static const char *const s_wdays[7] = {"mon", "tue", "wed", "thu", "fri", "sat", "sun"};

/* Day number of Easter Sunday: the anonymous Gregorian algorithm (Meeus). */
static int64_t s_easter(int y)
{
    int a = y % 19, b = y / 100, c = y % 100, d = b / 4, e = b % 4;
    int f = (b + 8) / 25, g = (b - f + 1) / 3;
    int h = (19 * a + b - d - g + 15) % 30;
    int i = c / 4, k = c % 4;
    int l = (32 + 2 * e + 2 * i - h - k) % 7;
    int m = (a + 11 * h + 22 * l) / 451;
    int month = (h + l - 7 * m + 114) / 31, day = (h + l - 7 * m + 114) % 31 + 1;
    return cf_days_from_civil(y, (unsigned)month, (unsigned)day);
}

/* ----------------------------------------------------------- the model --- */

typedef struct {
    int year;                   /* 0: every year */
    unsigned month, day;
} s_closed_t;

struct cf_cal {
    char *name;
    char *tzname;
    const s_country_t *country;
    unsigned workdays;          /* bit (iso weekday - 1) */
    int opens;                  /* seconds after local midnight */
    s_closed_t *closed;
    size_t nclosed;
    cf_tz_t *tz;
};

struct cf_cal_set {
    cf_cal_t **v;
    size_t n, cap;
};

static void s_cal_free(cf_cal_t *cal)
{
    if (!cal)
        return;
    free(cal->name);
    free(cal->tzname);
    free(cal->closed);
    cf_tz_destroy(&cal->tz);
    free(cal);
}

void cf_cal_set_destroy(cf_cal_set_t **set_p)
{
    if (!set_p || !*set_p)
        return;
    cf_cal_set_t *set = *set_p;
    for (size_t i = 0; i < set->n; i++)
        s_cal_free(set->v[i]);
    free(set->v);
    free(set);
    *set_p = NULL;
}

/* The name under which (y, m, d) is closed, or NULL.  eday: s_easter(y). */
static const char *s_closed_name(const cf_cal_t *cal, int y, unsigned m, unsigned d,
                                 int64_t day, int64_t eday)
{
    for (size_t i = 0; i < cal->country->n; i++) {
        const s_holiday_t *h = &cal->country->rules[i];
        if (h->last_year && y > h->last_year)
            continue;
        if (h->easter ? day == eday + h->day : (h->month == m && (unsigned)h->day == d))
            return h->name;
    }
    for (size_t i = 0; i < cal->nclosed; i++) {
        const s_closed_t *c = &cal->closed[i];
        if ((c->year == 0 || c->year == y) && c->month == m && c->day == d)
            return "closing day";
    }
    return NULL;
}

static bool s_bday(const cf_cal_t *cal, int64_t day)
{
    int y;
    unsigned m, d;
    if (!(cal->workdays & 1u << (cf_weekday(day) - 1)))
        return false;
    cf_civil_from_days(day, &y, &m, &d);
    return !s_closed_name(cal, y, m, d, day, s_easter(y));
}

/* ------------------------------------------------------------- queries --- */

const cf_cal_t *cf_cal_find(const cf_cal_set_t *set, const char *name)
{
    for (size_t i = 0; set && name && i < set->n; i++)
        if (strcmp(set->v[i]->name, name) == 0)
            return set->v[i];
    return NULL;
}

size_t cf_cal_count(const cf_cal_set_t *set)
{
    return set ? set->n : 0;
}

const cf_cal_t *cf_cal_at(const cf_cal_set_t *set, size_t i)
{
    return set && i < set->n ? set->v[i] : NULL;
}

const char *cf_cal_name(const cf_cal_t *cal)
{
    return cal->name;
}

const char *cf_cal_tz(const cf_cal_t *cal)
{
    return cal->tzname;
}

cf_country_t cf_cal_country(const cf_cal_t *cal)
{
    return cal->country->id;
}

int cf_cal_closed_days(const cf_cal_t *cal, int year, cf_cal_day_t *out, size_t cap,
                       size_t *n)
{
    *n = 0;
    if (year < CF_CAL_YEAR_MIN || year > CF_CAL_YEAR_MAX)
        return CF_EBADREQ;
    const int64_t eday = s_easter(year);
    size_t k = 0;
    for (unsigned m = 1; m <= 12; m++) {
        for (unsigned d = 1; d <= cf_days_in_month(year, m); d++) {
            const char *name =
                s_closed_name(cal, year, m, d, cf_days_from_civil(year, m, d), eday);
            if (!name)
                continue;
            if (k < cap)
                out[k] = (cf_cal_day_t){year, m, d, name};
            k++;
        }
    }
    *n = k;
    return 0;
}

bool cf_cal_is_business_day(const cf_cal_t *cal, int y, unsigned m, unsigned d)
{
    if (m < 1 || m > 12 || d < 1 || d > cf_days_in_month(y, m))
        return false;
    return s_bday(cal, cf_days_from_civil(y, m, d));
}

int cf_cal_utc_offset(const cf_cal_t *cal, cf_time_t t)
{
    return cf_tz_offset(cal->tz, t, NULL);
}

static int64_t s_floordiv(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

int64_t cf_cal_today(const cf_cal_t *cal, cf_time_t t)
{
    return s_floordiv(t + cf_tz_offset(cal->tz, t, NULL), 86400);
}

cf_time_t cf_cal_end_of_day(const cf_cal_t *cal, int64_t day)
{
    return cf_tz_local_to_utc(cal->tz, (day + 1) * 86400);
}

char *cf_cal_format_local(const cf_cal_t *cal, cf_time_t t, char *buf)
{
    /* RFC 3339 offsets are whole minutes; a pre-1900 LMT offset with seconds
     * is cut to minutes and the local time shown with it, so the string
     * still names the instant t (to the second). */
    int off = cf_tz_offset(cal->tz, t, NULL) / 60 * 60;
    int64_t local = t + off, days = s_floordiv(local, 86400), sec = local - days * 86400;
    int y;
    unsigned m, d;
    cf_civil_from_days(days, &y, &m, &d);
    int aoff = off < 0 ? -off : off;
    snprintf(buf, CF_TIME_BUFLEN, "%04d-%02u-%02uT%02d:%02d:%02d%c%02d:%02d", y, m, d,
             (int)(sec / 3600), (int)(sec / 60 % 60), (int)(sec % 60), off < 0 ? '-' : '+',
             aoff / 3600, aoff / 60 % 60);
    return buf;
}

/* ------------------------------------------------------------ cf_cal_add --- */

static int s_year_of_day(int64_t day)
{
    int y;
    unsigned m, d;
    cf_civil_from_days(day, &y, &m, &d);
    return y;
}

/* The first business day after day; CF_EBADREQ past CF_CAL_YEAR_MAX. */
static int s_next_bday(const cf_cal_t *cal, int64_t *day)
{
    const int64_t last = cf_days_from_civil(CF_CAL_YEAR_MAX, 12, 31);
    int64_t x = *day;
    do {
        if (++x > last)
            return CF_EBADREQ;
    } while (!s_bday(cal, x));
    *day = x;
    return 0;
}

int cf_cal_add(const cf_cal_t *cal, cf_time_t start, cf_dur_t dur, cf_time_t *ret)
{
    /* Keep every intermediate far from int64 and civil-date limits. */
    const cf_time_t tmin = cf_days_from_civil(CF_CAL_YEAR_MIN - 100, 1, 1) * 86400;
    const cf_time_t tmax = cf_days_from_civil(CF_CAL_YEAR_MAX + 100, 1, 1) * 86400;
    if (start < tmin || start > tmax || dur.n < 1 || dur.n > CF_DUR_MAX)
        return CF_EBADREQ;

    const int64_t local = start + cf_tz_offset(cal->tz, start, NULL);
    int64_t day = s_floordiv(local, 86400), tod = local - day * 86400;
    cf_time_t t;
    int y;
    unsigned m, d;

    switch (dur.unit) {
    case CF_DUR_MINUTES:
    case CF_DUR_HOURS:
        t = start + dur.n * (dur.unit == CF_DUR_MINUTES ? 60 : 3600);
        break;
    case CF_DUR_DAYS:
    case CF_DUR_WEEKS:
        day += dur.n * (dur.unit == CF_DUR_WEEKS ? 7 : 1);
        t = cf_tz_local_to_utc(cal->tz, day * 86400 + tod);
        break;
    case CF_DUR_YEARS:
        cf_civil_from_days(day, &y, &m, &d);
        y += (int)dur.n;
        if (y > CF_CAL_YEAR_MAX)
            return CF_EBADREQ;
        if (d > cf_days_in_month(y, m))
            d = cf_days_in_month(y, m); /* 29 Feb -> 28 Feb */
        t = cf_tz_local_to_utc(cal->tz, cf_days_from_civil(y, m, d) * 86400 + tod);
        break;
    case CF_DUR_MONTHS:
        day = cf_days_add_months(day, dur.n);
        if (s_year_of_day(day) > CF_CAL_YEAR_MAX)
            return CF_EBADREQ;
        t = cf_tz_local_to_utc(cal->tz, day * 86400 + tod);
        break;
    case CF_DUR_BDAYS:
        if (!s_bday(cal, day)) {
            /* Start outside a business day: the clock starts at the next
             * business day's opening, and that day itself does not count. */
            if (s_next_bday(cal, &day) != 0)
                return CF_EBADREQ;
            tod = cal->opens;
        }
        for (int64_t i = 0; i < dur.n; i++)
            if (s_next_bday(cal, &day) != 0)
                return CF_EBADREQ;
        t = cf_tz_local_to_utc(cal->tz, day * 86400 + tod);
        break;
    default:
        return CF_EBADREQ;
    }
    const int ry = s_year_of_day(s_floordiv(t + cf_tz_offset(cal->tz, t, NULL), 86400));
    if (ry < CF_CAL_YEAR_MIN || ry > CF_CAL_YEAR_MAX)
        return CF_EBADREQ;
    *ret = t;
    return 0;
}

/* ----------------------------------------------------------- context --- */

typedef struct {
    const char *file;
    cf_diags_t *diags;
    size_t nerr;
    bool oom;
} s_ctx_t;

static void s_err(s_ctx_t *cx, uint32_t line, uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void s_err(s_ctx_t *cx, uint32_t line, uint32_t col, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cx->nerr++;
    if (cf_diag_add(cx->diags, cx->file, line, col, "%s", msg) != 0)
        cx->oom = true;
}

/* -------------------------------------------------------- validation --- */

static bool s_is_null(const cf_yt_node_t *n)
{
    return n->kind == CF_YT_SCALAR && n->plain &&
           (n->len == 0 || cf_yt_eq(n, "~") || cf_yt_eq(n, "null") || cf_yt_eq(n, "Null") ||
            cf_yt_eq(n, "NULL"));
}

/* A scalar for a message: at most 40 bytes, control characters as '?'. */
static const char *s_show(const cf_yt_node_t *n, char *buf, size_t cap)
{
    size_t k = 0, lim = cap - 4;
    if (lim > 40)
        lim = 40;
    for (size_t i = 0; i < n->len && k < lim; i++) {
        unsigned char c = (unsigned char)n->s[i];
        buf[k++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (k < n->len) {
        while (k > 0 && ((unsigned char)buf[k] & 0xc0) == 0x80)
            k--; /* do not cut a UTF-8 sequence */
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

static const char *s_kind_name(const cf_yt_node_t *n)
{
    return n->kind == CF_YT_MAP ? "a mapping" : n->kind == CF_YT_SEQ ? "a list" : "a string";
}

/* A key of a map: a scalar that is not a duplicate (the reader marks them),
 * else reported; what: "key" or "calendar". */
static bool s_key_ok(s_ctx_t *cx, const cf_yt_node_t *k, const char *what)
{
    char b[48];
    if (k->kind == CF_YT_BAD)
        return false;
    if (k->kind != CF_YT_SCALAR) {
        s_err(cx, k->line, k->col, "a key must be a string, not %s", s_kind_name(k));
        return false;
    }
    if (k->dup_of) {
        s_err(cx, k->line, k->col, "duplicate %s '%s' (first at line %u)", what,
              s_show(k, b, sizeof b), k->dup_of->line);
        return false;
    }
    return true;
}

static bool s_want_scalar(s_ctx_t *cx, const cf_yt_node_t *v, const char *what)
{
    if (v->kind == CF_YT_SCALAR && !s_is_null(v))
        return true;
    if (v->kind != CF_YT_BAD)
        s_err(cx, v->line, v->col, "%s: expected a string, found %s", what,
              v->kind == CF_YT_SCALAR ? "nothing" : s_kind_name(v));
    return false;
}

static bool s_digits(const char *s, size_t n, int *ret)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *ret = v;
    return true;
}

static void s_check_country(s_ctx_t *cx, const cf_yt_node_t *v, cf_cal_t *cal)
{
    if (!s_want_scalar(cx, v, "country"))
        return;
    for (size_t i = 0; i < S_NCOUNTRIES; i++)
        if (cf_yt_eq(v, cf_country_code(s_countries[i].id)))
            cal->country = &s_countries[i];
    if (!cal->country) {
        char b[48];
        s_err(cx, v->line, v->col, "unknown country '%s' (expected dk or no)",
              s_show(v, b, sizeof b));
    }
}

static void s_check_tz(s_ctx_t *cx, const cf_yt_node_t *v, cf_cal_t *cal)
{
    char why[256] = "", b[48];
    if (!s_want_scalar(cx, v, "timezone"))
        return;
    if (strlen(v->s) != v->len) {
        s_err(cx, v->line, v->col, "unknown time zone '%s'", s_show(v, b, sizeof b));
        return;
    }
    int rc = cf_tz_load(NULL, v->s, &cal->tz, why, sizeof why);
    if (rc == CF_EINTERNAL)
        cx->oom = true;
    else if (rc == CF_ENOTFOUND)
        s_err(cx, v->line, v->col, "unknown time zone '%s'", s_show(v, b, sizeof b));
    else if (rc != 0)
        s_err(cx, v->line, v->col, "cannot read time zone '%s': %s", s_show(v, b, sizeof b),
              why);
    else if (!(cal->tzname = strdup(v->s)))
        cx->oom = true;
}

static void s_check_workdays(s_ctx_t *cx, const cf_yt_node_t *v, cf_cal_t *cal)
{
    char b[48];
    if (v->kind != CF_YT_SEQ) {
        if (v->kind != CF_YT_BAD)
            s_err(cx, v->line, v->col, "workdays: expected a list like [mon, tue, wed, thu, fri]");
        return;
    }
    if (v->n == 0) {
        s_err(cx, v->line, v->col, "workdays: at least one day is needed");
        return;
    }
    unsigned bits = 0;
    CF_YT_EACH_ITEM(v, x) {
        if (!s_want_scalar(cx, x, "workdays"))
            continue;
        size_t w = 0;
        while (w < 7 && !cf_yt_eq(x, s_wdays[w]))
            w++;
        if (w == 7)
            s_err(cx, x->line, x->col, "bad weekday '%s' (expected mon, tue, wed, thu, fri, sat or sun)",
                  s_show(x, b, sizeof b));
        else if (bits & 1u << w)
            s_err(cx, x->line, x->col, "weekday '%s' listed twice", s_wdays[w]);
        else
            bits |= 1u << w;
    }
    cal->workdays = bits;
}

static void s_check_opens(s_ctx_t *cx, const cf_yt_node_t *v, cf_cal_t *cal)
{
    int h, m;
    char b[48];
    if (!s_want_scalar(cx, v, "opens"))
        return;
    if (v->len != 5 || v->s[2] != ':' || !s_digits(v->s, 2, &h) ||
        !s_digits(v->s + 3, 2, &m) || h > 23 || m > 59) {
        s_err(cx, v->line, v->col, "opens: bad time '%s' (expected \"HH:MM\", 00:00-23:59)",
              s_show(v, b, sizeof b));
        return;
    }
    cal->opens = h * 3600 + m * 60;
}

/* "MM-DD" (every year; 02-29 in leap years) or "YYYY-MM-DD" (that year). */
static bool s_parse_closed(const cf_yt_node_t *v, s_closed_t *c, bool *range)
{
    int y = 0, m, d;
    *range = false;
    if (v->len == 5 && v->s[2] == '-' && s_digits(v->s, 2, &m) &&
        s_digits(v->s + 3, 2, &d)) {
        if (m < 1 || m > 12 || d < 1 || (unsigned)d > cf_days_in_month(2000, (unsigned)m))
            return false;
    } else if (v->len == 10) {
        unsigned um, ud;
        if (cf_date_parse(v->s, 10, &y, &um, &ud) != 0)
            return false;
        if (y < CF_CAL_YEAR_MIN || y > CF_CAL_YEAR_MAX) {
            *range = true;
            return false;
        }
        m = (int)um;
        d = (int)ud;
    } else {
        return false;
    }
    *c = (s_closed_t){y, (unsigned)m, (unsigned)d};
    return true;
}

static void s_check_closed(s_ctx_t *cx, const cf_yt_node_t *v, cf_cal_t *cal)
{
    char b[48];
    if (s_is_null(v))
        return;
    if (v->kind != CF_YT_SEQ) {
        if (v->kind != CF_YT_BAD)
            s_err(cx, v->line, v->col, "closed: expected a list of \"MM-DD\" or YYYY-MM-DD dates");
        return;
    }
    if (v->n && !(cal->closed = calloc(v->n, sizeof *cal->closed))) {
        cx->oom = true;
        return;
    }
    CF_YT_EACH_ITEM(v, x) {
        s_closed_t c;
        bool range;
        if (!s_want_scalar(cx, x, "closed"))
            continue;
        if (!s_parse_closed(x, &c, &range)) {
            s_err(cx, x->line, x->col,
                  range ? "closed: date '%s' outside the years 1900-2199"
                        : "closed: bad date '%s' (expected MM-DD or YYYY-MM-DD)",
                  s_show(x, b, sizeof b));
            continue;
        }
        size_t j = 0;
        while (j < cal->nclosed && !(cal->closed[j].year == c.year &&
                                     cal->closed[j].month == c.month && cal->closed[j].day == c.day))
            j++;
        if (j < cal->nclosed) {
            s_err(cx, x->line, x->col, "closed: '%s' listed twice", s_show(x, b, sizeof b));
            continue;
        }
        cal->closed[cal->nclosed++] = c;
    }
}

typedef struct {
    const char *key;
    void (*check)(s_ctx_t *, const cf_yt_node_t *, cf_cal_t *);
    bool required;
} s_field_t;

static const s_field_t s_fields[] = {
    {"country", s_check_country, true},
    {"timezone", s_check_tz, true},
    {"workdays", s_check_workdays, false},
    {"opens", s_check_opens, false},
    {"closed", s_check_closed, false},
};
#define S_NFIELDS (sizeof s_fields / sizeof s_fields[0])

static bool s_name_ok(const cf_yt_node_t *k)
{
    if (k->len == 0 || k->len > S_NAME_MAX)
        return false;
    for (size_t i = 0; i < k->len; i++) {
        char c = k->s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* One calendar: key k, value v.  Returns the calendar (possibly incomplete
 * when errors were reported) or NULL when out of memory. */
static cf_cal_t *s_check_cal(s_ctx_t *cx, const cf_yt_node_t *k, const cf_yt_node_t *v)
{
    char b[48];
    cf_cal_t *cal = calloc(1, sizeof *cal);
    if (!cal || !(cal->name = strdup(k->s))) {
        free(cal);
        cx->oom = true;
        return NULL;
    }
    cal->workdays = 0x1f; /* mon-fri */
    cal->opens = 8 * 3600;
    if (!s_name_ok(k))
        s_err(cx, k->line, k->col,
              "bad calendar name '%s' (1-64 letters, digits, '_' or '-')", s_show(k, b, sizeof b));
    if (v->kind != CF_YT_MAP) {
        if (v->kind != CF_YT_BAD)
            s_err(cx, v->line, v->col, "calendar '%s': expected a mapping, found %s",
                  s_show(k, b, sizeof b), s_is_null(v) ? "nothing" : s_kind_name(v));
        return cal;
    }
    bool seen[S_NFIELDS] = {false};
    CF_YT_EACH_PAIR(v, fk, fv) {
        if (!s_key_ok(cx, fk, "key"))
            continue;
        size_t f = 0;
        while (f < S_NFIELDS && !cf_yt_eq(fk, s_fields[f].key))
            f++;
        if (f == S_NFIELDS) {
            s_err(cx, fk->line, fk->col,
                  "unknown key '%s' (expected country, timezone, workdays, opens or closed)",
                  s_show(fk, b, sizeof b));
            continue;
        }
        seen[f] = true;
        s_fields[f].check(cx, fv, cal);
    }
    for (size_t f = 0; f < S_NFIELDS; f++)
        if (s_fields[f].required && !seen[f])
            s_err(cx, v->line, v->col, "calendar '%s': missing key '%s'", s_show(k, b, sizeof b),
                  s_fields[f].key);
    return cal;
}

static void s_check_calendars(s_ctx_t *cx, const cf_yt_node_t *cals, cf_cal_set_t *set)
{
    if (cals->kind != CF_YT_MAP || cals->n == 0) {
        if (cals->kind != CF_YT_BAD)
            s_err(cx, cals->line, cals->col, "calendars: expected a mapping of calendar names%s",
                  cals->kind == CF_YT_MAP || s_is_null(cals) ? " (none declared)" : "");
        return;
    }
    CF_YT_EACH_PAIR(cals, k, v) {
        if (!s_key_ok(cx, k, "calendar"))
            continue;
        if (set->n == set->cap) {
            size_t cap = set->cap ? set->cap * 2 : 4;
            cf_cal_t **grown = realloc(set->v, cap * sizeof *grown);
            if (!grown) {
                cx->oom = true;
                return;
            }
            set->v = grown;
            set->cap = cap;
        }
        cf_cal_t *cal = s_check_cal(cx, k, v);
        if (!cal)
            return;
        set->v[set->n++] = cal;
    }
}

static void s_check_root(s_ctx_t *cx, const cf_yt_node_t *root, cf_cal_set_t *set)
{
    char b[48];
    if (!root || s_is_null(root)) {
        s_err(cx, 1, 1, "empty file (expected a 'calendars:' mapping)");
        return;
    }
    if (root->kind != CF_YT_MAP) {
        if (root->kind != CF_YT_BAD)
            s_err(cx, root->line, root->col,
                  "the top level must be a mapping with the key 'calendars', not %s",
                  s_kind_name(root));
        return;
    }
    bool seen = false;
    CF_YT_EACH_PAIR(root, k, v) {
        if (!s_key_ok(cx, k, "key"))
            continue;
        if (cf_yt_eq(k, "calendars")) {
            seen = true;
            s_check_calendars(cx, v, set);
        } else {
            s_err(cx, k->line, k->col, "unknown key '%s' (expected 'calendars')",
                  s_show(k, b, sizeof b));
        }
    }
    if (!seen)
        s_err(cx, root->line, root->col, "missing key 'calendars'");
}

/* -------------------------------------------------------------- loading --- */

int cf_cal_set_load_buffer(const char *file, const char *buf, size_t len,
                           cf_cal_set_t **ret, cf_diags_t *reterr)
{
    s_ctx_t cx = {file ? file : "<buffer>", reterr, 0, false};
    cf_yt_t *yt = NULL;
    int rc;

    cf_cal_set_t *set = calloc(1, sizeof *set);
    if (!set)
        return CF_EINTERNAL;
    if (len > S_FILE_MAX) {
        s_err(&cx, 0, 0, "file too large (%zu bytes; the limit is 1 MiB)", len);
        goto out_done;
    }
    rc = cf_yt_parse(cx.file, buf, buf ? len : 0, &yt, reterr);
    if (rc == CF_EINTERNAL) {
        cx.oom = true;
    } else if (rc != 0) {
        cx.nerr++;  /* the syntax error, reported by the reader */
    } else {
        cx.nerr += cf_yt_errors(yt);
        s_check_root(&cx, cf_yt_root(yt), set);
    }

out_done:
    cf_yt_destroy(&yt);
    rc = cx.oom ? CF_EINTERNAL : cx.nerr ? CF_EBADREQ : 0;
    if (rc) {
        cf_cal_set_destroy(&set);
        return rc;
    }
    *ret = set;
    return 0;
}

int cf_cal_set_load_file(const char *path, cf_cal_set_t **ret, cf_diags_t *reterr)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        cf_diag_add(reterr, path, 0, 0, "cannot open: %s", strerror(errno));
        return CF_EBADREQ;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        cf_diag_add(reterr, path, 0, 0, "not a regular file");
        return CF_EBADREQ;
    }
    char *buf = malloc(S_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return CF_EINTERNAL;
    }
    size_t len = fread(buf, 1, S_FILE_MAX + 1, f);
    int rc;
    if (ferror(f)) {
        cf_diag_add(reterr, path, 0, 0, "read error");
        rc = CF_EBADREQ;
    } else {
        /* len == S_FILE_MAX + 1 is reported as too large by the loader. */
        rc = cf_cal_set_load_buffer(path, buf, len, ret, reterr);
    }
    fclose(f);
    free(buf);
    return rc;
}

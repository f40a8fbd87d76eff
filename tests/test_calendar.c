/* test_calendar.c: holidays, time zones, duration arithmetic, the calendars
 * loader and `claimctl calendar` (cli/cmd_calendar.c is linked in).
 *
 * Expected values are literal: holiday tables checked by hand against the
 * published Danish and Norwegian calendars (Easter dates against an
 * independent computus), instants as UTC strings.  Time zones are the
 * system's (/usr/share/zoneinfo); a few tests point TZDIR at a temporary
 * directory of their own.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cf_test.h"

#include "../cli/cmd.h"
#include "arena.h"
#include "cal_tz.h"
#include "calendar.h"

/* ------------------------------------------------------------ helpers --- */

static const char s_test_yaml[] =
    "calendars:\n"
    "  dk:\n"
    "    country: dk\n"
    "    timezone: Europe/Copenhagen\n"
    "    workdays: [mon, tue, wed, thu, fri]\n"
    "    opens: \"08:00\"\n"
    "    closed:\n"
    "      - \"12-24\"\n"
    "      - \"12-31\"\n"
    "      - \"06-05\"\n"
    "      - 2026-12-28\n"
    "  no:\n"
    "    country: no\n"
    "    timezone: Europe/Oslo\n"
    "    workdays: [mon, tue, wed, thu, fri]\n"
    "    opens: \"08:00\"\n"
    "    closed: [\"12-24\", \"12-31\"]\n"
    "  plain-dk:\n"
    "    country: dk\n"
    "    timezone: Europe/Copenhagen\n"
    "  plain-no:\n"
    "    country: no\n"
    "    timezone: Europe/Oslo\n"
    "  sun-thu:\n"
    "    country: dk\n"
    "    timezone: Europe/Copenhagen\n"
    "    workdays: [sun, mon, tue, wed, thu]\n"
    "    opens: \"09:30\"\n";

static cf_cal_set_t *s_set;

static const cf_cal_t *s_cal(const char *name)
{
    if (!s_set) {
        cf_diags_t d = {0};
        int rc = cf_cal_set_load_buffer("test.yaml", s_test_yaml, strlen(s_test_yaml), &s_set, &d);
        if (rc != 0)
            cf_diags_print(&d, stderr);
        cf_diags_clear(&d);
        CF_ASSERT_INT_EQ(rc, 0);
    }
    const cf_cal_t *cal = cf_cal_find(s_set, name);
    CF_ASSERT(cal != NULL);
    return cal;
}

static cf_time_t s_t(const char *s)
{
    cf_time_t t = 0;
    CF_ASSERT_INT_EQ(cf_time_parse(s, strlen(s), &t), 0);
    return t;
}

/* cal + duration from start, as a UTC string ("ERR" when refused). */
static const char *s_add(const char *cal, const char *start, const char *dur)
{
    static char buf[CF_TIME_BUFLEN];
    cf_dur_t d;
    cf_time_t r;
    CF_ASSERT_INT_EQ(cf_dur_parse(dur, &d), 0);
    if (cf_cal_add(s_cal(cal), s_t(start), d, &r) != 0)
        return "ERR";
    return cf_time_format(r, buf);
}

/* The year's closed days of cal, compared with "YYYY-MM-DD Name" lines. */
static void s_expect_days(const char *cal, int year, const char *const *want, size_t nwant)
{
    cf_cal_day_t days[400];
    size_t n = 0;
    CF_ASSERT_INT_EQ(cf_cal_closed_days(s_cal(cal), year, days, 400, &n), 0);
    for (size_t i = 0; i < n && i < nwant; i++) {
        char got[128];
        snprintf(got, sizeof got, "%04d-%02u-%02u %s", days[i].year, days[i].month,
                 days[i].day, days[i].name);
        CF_ASSERT_STR_EQ(got, want[i]);
    }
    CF_ASSERT_INT_EQ(n, nwant);
}

#define S_EXPECT(cal, year, ...)                                               \
    do {                                                                       \
        static const char *const w_[] = {__VA_ARGS__};                         \
        s_expect_days(cal, year, w_, sizeof w_ / sizeof w_[0]);                \
    } while (0)

/* Output buffers on the heap: gcc's -Wformat-truncation would otherwise
 * weigh their full size against cf_test.h's 1 KiB message buffer. */
#define S_BUFLEN 16384
static char *s_out, *s_errout, *s_diag;

/* Long texts: both shown, each cut to fit cf_test.h's message buffer. */
#define S_ASSERT_TEXT(got, want)                                               \
    do {                                                                       \
        const char *g_ = (got), *w_ = (want);                                  \
        if (strcmp(g_, w_) != 0)                                               \
            CF_FAILF_("texts differ\n--- got:\n%.450s\n--- want:\n%.450s", g_, w_); \
    } while (0)

/* Load buf; 0 or the error code, diagnostics joined as "line:col: msg\n". */
static int s_load(const char *buf, size_t len, char *out, size_t cap)
{
    cf_diags_t d = {0};
    cf_cal_set_t *set = NULL;
    int rc = cf_cal_set_load_buffer("t.yaml", buf, len, &set, &d);
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < d.n && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s:%u:%u: %s\n", d.v[i].file, d.v[i].line,
                              d.v[i].col, d.v[i].message);
    if (rc == 0)
        CF_ASSERT(set != NULL && d.n == 0);
    else
        CF_ASSERT(set == NULL);
    cf_cal_set_destroy(&set);
    cf_diags_clear(&d);
    return rc;
}

static void s_expect_error(const char *yaml, const char *want)
{
    CF_ASSERT_INT_EQ(s_load(yaml, strlen(yaml), s_diag, S_BUFLEN), CF_EBADREQ);
    CF_ASSERT_STR_HAS(s_diag, want);
}

static unsigned char *s_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    CF_ASSERT(f != NULL);
    unsigned char *buf = malloc(1 << 20);
    CF_ASSERT(buf != NULL);
    *len = fread(buf, 1, 1 << 20, f);
    fclose(f);
    return buf;
}

/* --------------------------------------------------- holidays by rule --- */

static void test_dk_2023_store_bededag(void)
{
    S_EXPECT("plain-dk", 2023, "2023-01-01 Nytårsdag", "2023-04-06 Skærtorsdag",
             "2023-04-07 Langfredag", "2023-04-09 Påskedag", "2023-04-10 2. påskedag",
             "2023-05-05 Store bededag", "2023-05-18 Kristi himmelfartsdag",
             "2023-05-28 Pinsedag", "2023-05-29 2. pinsedag", "2023-12-25 Juledag",
             "2023-12-26 2. juledag");
    CF_ASSERT(!cf_cal_is_business_day(s_cal("plain-dk"), 2023, 5, 5));
}

static void test_dk_2024_leap_year_no_store_bededag(void)
{
    S_EXPECT("plain-dk", 2024, "2024-01-01 Nytårsdag", "2024-03-28 Skærtorsdag",
             "2024-03-29 Langfredag", "2024-03-31 Påskedag", "2024-04-01 2. påskedag",
             "2024-05-09 Kristi himmelfartsdag", "2024-05-19 Pinsedag",
             "2024-05-20 2. pinsedag", "2024-12-25 Juledag", "2024-12-26 2. juledag");
    /* Store bededag 2024 would have been Friday 26 April */
    CF_ASSERT(cf_cal_is_business_day(s_cal("plain-dk"), 2024, 4, 26));
    CF_ASSERT(cf_cal_is_business_day(s_cal("plain-dk"), 2024, 2, 29));
}

static void test_dk_early_and_late_easter(void)
{
    S_EXPECT("plain-dk", 2008, "2008-01-01 Nytårsdag", "2008-03-20 Skærtorsdag",
             "2008-03-21 Langfredag", "2008-03-23 Påskedag", "2008-03-24 2. påskedag",
             "2008-04-18 Store bededag", "2008-05-01 Kristi himmelfartsdag",
             "2008-05-11 Pinsedag", "2008-05-12 2. pinsedag", "2008-12-25 Juledag",
             "2008-12-26 2. juledag");
    S_EXPECT("plain-dk", 2160, "2160-01-01 Nytårsdag", "2160-03-20 Skærtorsdag",
             "2160-03-21 Langfredag", "2160-03-23 Påskedag", "2160-03-24 2. påskedag",
             "2160-05-01 Kristi himmelfartsdag", "2160-05-11 Pinsedag",
             "2160-05-12 2. pinsedag", "2160-12-25 Juledag", "2160-12-26 2. juledag");
    S_EXPECT("plain-dk", 2011, "2011-01-01 Nytårsdag", "2011-04-21 Skærtorsdag",
             "2011-04-22 Langfredag", "2011-04-24 Påskedag", "2011-04-25 2. påskedag",
             "2011-05-20 Store bededag", "2011-06-02 Kristi himmelfartsdag",
             "2011-06-12 Pinsedag", "2011-06-13 2. pinsedag", "2011-12-25 Juledag",
             "2011-12-26 2. juledag");
    S_EXPECT("plain-dk", 2038, "2038-01-01 Nytårsdag", "2038-04-22 Skærtorsdag",
             "2038-04-23 Langfredag", "2038-04-25 Påskedag", "2038-04-26 2. påskedag",
             "2038-06-03 Kristi himmelfartsdag", "2038-06-13 Pinsedag",
             "2038-06-14 2. pinsedag", "2038-12-25 Juledag", "2038-12-26 2. juledag");
}

static void test_dk_bounds(void)
{
    S_EXPECT("plain-dk", 1900, "1900-01-01 Nytårsdag", "1900-04-12 Skærtorsdag",
             "1900-04-13 Langfredag", "1900-04-15 Påskedag", "1900-04-16 2. påskedag",
             "1900-05-11 Store bededag", "1900-05-24 Kristi himmelfartsdag",
             "1900-06-03 Pinsedag", "1900-06-04 2. pinsedag", "1900-12-25 Juledag",
             "1900-12-26 2. juledag");
    S_EXPECT("plain-dk", 2199, "2199-01-01 Nytårsdag", "2199-04-11 Skærtorsdag",
             "2199-04-12 Langfredag", "2199-04-14 Påskedag", "2199-04-15 2. påskedag",
             "2199-05-23 Kristi himmelfartsdag", "2199-06-02 Pinsedag",
             "2199-06-03 2. pinsedag", "2199-12-25 Juledag", "2199-12-26 2. juledag");
    cf_cal_day_t days[4];
    size_t n = 99;
    CF_ASSERT_INT_EQ(cf_cal_closed_days(s_cal("dk"), 1899, days, 4, &n), CF_EBADREQ);
    CF_ASSERT_INT_EQ(n, 0);
    CF_ASSERT_INT_EQ(cf_cal_closed_days(s_cal("no"), 2200, days, 4, &n), CF_EBADREQ);
    CF_ASSERT_INT_EQ(n, 0);
    /* a short buffer: the count is still the whole year's */
    CF_ASSERT_INT_EQ(cf_cal_closed_days(s_cal("plain-dk"), 2026, days, 4, &n), 0);
    CF_ASSERT_INT_EQ(n, 10);
    CF_ASSERT_STR_EQ(days[3].name, "Påskedag");
    CF_ASSERT_INT_EQ(cf_cal_closed_days(s_cal("plain-dk"), 2026, NULL, 0, &n), 0);
    CF_ASSERT_INT_EQ(n, 10);
}

static void test_no_holidays(void)
{
    S_EXPECT("plain-no", 2023, "2023-01-01 1. nyttårsdag", "2023-04-06 Skjærtorsdag",
             "2023-04-07 Langfredag", "2023-04-09 1. påskedag", "2023-04-10 2. påskedag",
             "2023-05-01 1. mai", "2023-05-17 17. mai", "2023-05-18 Kristi himmelfartsdag",
             "2023-05-28 1. pinsedag", "2023-05-29 2. pinsedag", "2023-12-25 1. juledag",
             "2023-12-26 2. juledag");
    S_EXPECT("plain-no", 2024, "2024-01-01 1. nyttårsdag", "2024-03-28 Skjærtorsdag",
             "2024-03-29 Langfredag", "2024-03-31 1. påskedag", "2024-04-01 2. påskedag",
             "2024-05-01 1. mai", "2024-05-09 Kristi himmelfartsdag", "2024-05-17 17. mai",
             "2024-05-19 1. pinsedag", "2024-05-20 2. pinsedag", "2024-12-25 1. juledag",
             "2024-12-26 2. juledag");
    S_EXPECT("plain-no", 2038, "2038-01-01 1. nyttårsdag", "2038-04-22 Skjærtorsdag",
             "2038-04-23 Langfredag", "2038-04-25 1. påskedag", "2038-04-26 2. påskedag",
             "2038-05-01 1. mai", "2038-05-17 17. mai", "2038-06-03 Kristi himmelfartsdag",
             "2038-06-13 1. pinsedag", "2038-06-14 2. pinsedag", "2038-12-25 1. juledag",
             "2038-12-26 2. juledag");
    S_EXPECT("plain-no", 1900, "1900-01-01 1. nyttårsdag", "1900-04-12 Skjærtorsdag",
             "1900-04-13 Langfredag", "1900-04-15 1. påskedag", "1900-04-16 2. påskedag",
             "1900-05-01 1. mai", "1900-05-17 17. mai", "1900-05-24 Kristi himmelfartsdag",
             "1900-06-03 1. pinsedag", "1900-06-04 2. pinsedag", "1900-12-25 1. juledag",
             "1900-12-26 2. juledag");
    S_EXPECT("plain-no", 2199, "2199-01-01 1. nyttårsdag", "2199-04-11 Skjærtorsdag",
             "2199-04-12 Langfredag", "2199-04-14 1. påskedag", "2199-04-15 2. påskedag",
             "2199-05-01 1. mai", "2199-05-17 17. mai", "2199-05-23 Kristi himmelfartsdag",
             "2199-06-02 1. pinsedag", "2199-06-03 2. pinsedag", "2199-12-25 1. juledag",
             "2199-12-26 2. juledag");
}

static void test_no_coinciding_holidays_listed_once(void)
{
    /* 2008: Ascension Day on 1 May (early Easter 23 March) */
    S_EXPECT("plain-no", 2008, "2008-01-01 1. nyttårsdag", "2008-03-20 Skjærtorsdag",
             "2008-03-21 Langfredag", "2008-03-23 1. påskedag", "2008-03-24 2. påskedag",
             "2008-05-01 1. mai", "2008-05-11 1. pinsedag", "2008-05-12 2. pinsedag",
             "2008-05-17 17. mai", "2008-12-25 1. juledag", "2008-12-26 2. juledag");
    /* 2027: Whit Monday on 17 May */
    S_EXPECT("plain-no", 2027, "2027-01-01 1. nyttårsdag", "2027-03-25 Skjærtorsdag",
             "2027-03-26 Langfredag", "2027-03-28 1. påskedag", "2027-03-29 2. påskedag",
             "2027-05-01 1. mai", "2027-05-06 Kristi himmelfartsdag", "2027-05-16 1. pinsedag",
             "2027-05-17 17. mai", "2027-12-25 1. juledag", "2027-12-26 2. juledag");
}

static void test_closing_days(void)
{
    S_EXPECT("dk", 2026, "2026-01-01 Nytårsdag", "2026-04-02 Skærtorsdag",
             "2026-04-03 Langfredag", "2026-04-05 Påskedag", "2026-04-06 2. påskedag",
             "2026-05-14 Kristi himmelfartsdag", "2026-05-24 Pinsedag",
             "2026-05-25 2. pinsedag", "2026-06-05 closing day", "2026-12-24 closing day",
             "2026-12-25 Juledag", "2026-12-26 2. juledag", "2026-12-28 closing day",
             "2026-12-31 closing day");
    /* 2027-12-28 is not closed: that entry named 2026 only */
    S_EXPECT("dk", 2027, "2027-01-01 Nytårsdag", "2027-03-25 Skærtorsdag",
             "2027-03-26 Langfredag", "2027-03-28 Påskedag", "2027-03-29 2. påskedag",
             "2027-05-06 Kristi himmelfartsdag", "2027-05-16 Pinsedag",
             "2027-05-17 2. pinsedag", "2027-06-05 closing day", "2027-12-24 closing day",
             "2027-12-25 Juledag", "2027-12-26 2. juledag", "2027-12-31 closing day");
    /* 2022: Whit Sunday is 5 June - the holiday's name wins */
    cf_cal_day_t days[40];
    size_t n;
    CF_ASSERT_INT_EQ(cf_cal_closed_days(s_cal("dk"), 2022, days, 40, &n), 0);
    CF_ASSERT_INT_EQ(n, 13);
    CF_ASSERT_INT_EQ(days[7].month, 6);
    CF_ASSERT_INT_EQ(days[7].day, 5);
    CF_ASSERT_STR_EQ(days[7].name, "Pinsedag");
    CF_ASSERT_INT_EQ(days[8].day, 6);
    CF_ASSERT_STR_EQ(days[8].name, "2. pinsedag");
}

static void test_is_business_day(void)
{
    const cf_cal_t *dk = s_cal("dk"), *no = s_cal("no"), *st = s_cal("sun-thu");
    CF_ASSERT(cf_cal_is_business_day(dk, 2026, 4, 1));    /* Wednesday */
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 4, 2));   /* Skærtorsdag */
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 4, 4));   /* Saturday */
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 12, 24)); /* closing day */
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 12, 28)); /* that year only */
    CF_ASSERT(cf_cal_is_business_day(dk, 2027, 12, 28));
    CF_ASSERT(!cf_cal_is_business_day(no, 2027, 5, 17));  /* Monday, 17. mai */
    CF_ASSERT(cf_cal_is_business_day(no, 2026, 6, 5));    /* Grundlovsdag is Danish */
    CF_ASSERT(!cf_cal_is_business_day(st, 2026, 3, 6));   /* Friday */
    CF_ASSERT(cf_cal_is_business_day(st, 2026, 3, 8));    /* Sunday */
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 2, 29));  /* no such date */
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 13, 1));
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 4, 0));
}

/* ---------------------------------------------------------- time zones --- */

static void test_utc_offset(void)
{
    const cf_cal_t *dk = s_cal("dk"), *no = s_cal("no");
    CF_ASSERT_STR_EQ(cf_cal_tz(dk), "Europe/Copenhagen");
    CF_ASSERT_STR_EQ(cf_cal_tz(no), "Europe/Oslo");
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2026-01-15T12:00:00Z")), 3600);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2026-07-01T12:00:00Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2026-03-29T00:59:59Z")), 3600);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2026-03-29T01:00:00Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(no, s_t("2026-10-25T00:59:59Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(no, s_t("2026-10-25T01:00:00Z")), 3600);
    /* history from the table */
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("1970-07-01T00:00:00Z")), 3600);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("1980-07-01T00:00:00Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("1944-07-01T00:00:00Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(no, s_t("1959-07-01T00:00:00Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("1893-01-01T00:00:00Z")), 3020); /* LMT */
    /* after the table: the footer's rule (last Sundays: 2150-03-29, 10-25) */
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2150-03-29T00:59:59Z")), 3600);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2150-03-29T01:00:00Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2150-10-25T00:59:59Z")), 7200);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(dk, s_t("2150-10-25T01:00:00Z")), 3600);
    CF_ASSERT_INT_EQ(cf_cal_utc_offset(no, s_t("2199-12-31T23:00:00Z")), 3600);
}

static void test_format_local(void)
{
    char buf[CF_TIME_BUFLEN];
    const cf_cal_t *dk = s_cal("dk");
    CF_ASSERT_STR_EQ(cf_cal_format_local(dk, s_t("2026-04-03T08:00:00Z"), buf),
                     "2026-04-03T10:00:00+02:00");
    CF_ASSERT_STR_EQ(cf_cal_format_local(dk, s_t("2026-12-31T23:30:05Z"), buf),
                     "2027-01-01T00:30:05+01:00");
    /* an LMT offset of 50:20 is shown cut to minutes, still the same instant */
    CF_ASSERT_STR_EQ(cf_cal_format_local(dk, s_t("1893-01-01T00:00:00Z"), buf),
                     "1893-01-01T00:50:00+00:50");
}

static int32_t s_posix_off(const char *rule, const char *utc)
{
    cf_tz_t *tz = NULL;
    CF_ASSERT_INT_EQ(cf_tz_from_posix(rule, &tz), 0);
    int32_t off = cf_tz_offset(tz, s_t(utc), NULL);
    cf_tz_destroy(&tz);
    return off;
}

static void test_posix_rules(void)
{
    const char *ny = "EST5EDT,M3.2.0,M11.1.0", *syd = "AEST-10AEDT,M10.1.0,M4.1.0/3",
               *nuuk = "<-02>2<-01>,M3.5.0/-1,M10.5.0/0";
    CF_ASSERT_INT_EQ(s_posix_off(ny, "2026-03-08T06:59:59Z"), -18000);
    CF_ASSERT_INT_EQ(s_posix_off(ny, "2026-03-08T07:00:00Z"), -14400);
    CF_ASSERT_INT_EQ(s_posix_off(ny, "2026-11-01T05:59:59Z"), -14400);
    CF_ASSERT_INT_EQ(s_posix_off(ny, "2026-11-01T06:00:00Z"), -18000);
    /* southern hemisphere: DST over the new year */
    CF_ASSERT_INT_EQ(s_posix_off(syd, "2026-01-01T00:00:00Z"), 39600);
    CF_ASSERT_INT_EQ(s_posix_off(syd, "2026-04-04T15:59:59Z"), 39600);
    CF_ASSERT_INT_EQ(s_posix_off(syd, "2026-04-04T16:00:00Z"), 36000);
    CF_ASSERT_INT_EQ(s_posix_off(syd, "2026-10-03T15:59:59Z"), 36000);
    CF_ASSERT_INT_EQ(s_posix_off(syd, "2026-10-03T16:00:00Z"), 39600);
    /* negative transition time (the day before, local) */
    CF_ASSERT_INT_EQ(s_posix_off(nuuk, "2026-03-29T00:59:59Z"), -7200);
    CF_ASSERT_INT_EQ(s_posix_off(nuuk, "2026-03-29T01:00:00Z"), -3600);
    CF_ASSERT_INT_EQ(s_posix_off(nuuk, "2026-10-25T00:59:59Z"), -3600);
    CF_ASSERT_INT_EQ(s_posix_off(nuuk, "2026-10-25T01:00:00Z"), -7200);
    /* Julian dates: J60 is always 1 March, 59 is 29 Feb in a leap year */
    CF_ASSERT_INT_EQ(s_posix_off("AAA0BBB,J60/0,J300/0", "2024-02-29T23:59:59Z"), 0);
    CF_ASSERT_INT_EQ(s_posix_off("AAA0BBB,J60/0,J300/0", "2024-03-01T00:00:00Z"), 3600);
    CF_ASSERT_INT_EQ(s_posix_off("AAA0BBB,59/0,300/0", "2024-02-29T00:00:00Z"), 3600);
    CF_ASSERT_INT_EQ(s_posix_off("AAA0BBB,59/0,300/0", "2023-03-01T00:00:00Z"), 3600);
    CF_ASSERT_INT_EQ(s_posix_off("AAA0BBB,59/0,300/0", "2023-02-28T23:59:59Z"), 0);
    /* fixed offsets, DST all year */
    CF_ASSERT_INT_EQ(s_posix_off("<+03>-3", "2026-06-01T00:00:00Z"), 10800);
    CF_ASSERT_INT_EQ(s_posix_off("UTC0", "2026-06-01T00:00:00Z"), 0);
    CF_ASSERT_INT_EQ(s_posix_off("EST5EDT,0/0,J365/25", "2026-06-01T00:00:00Z"), -14400);
    CF_ASSERT_INT_EQ(s_posix_off("EST5EDT,0/0,J365/25", "2026-01-01T00:00:00Z"), -14400);

    static const char *const bad[] = {
        "", "CET", "C-1", "CET-1CEST", "CET-1CEST,M3.5.0", "CET-1CEST,M13.5.0,M10.5.0",
        "CET-1CEST,M3.6.0,M10.5.0", "CET-1CEST,M3.5.7,M10.5.0", "CET-1CEST,M3.5.0,M10.5.0/168",
        "CET-25", "CET-1CEST,J0,J365", "CET-1CEST,366,J365", "<AB>1", "<A B>1",
        "CET-1CEST,M3.5.0,M10.5.0x", "CET-1:60",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cf_tz_t *tz = NULL;
        if (cf_tz_from_posix(bad[i], &tz) != CF_EBADREQ)
            CF_FAILF_("rule \"%s\" accepted", bad[i]);
        CF_ASSERT(tz == NULL);
    }
}

static void test_local_to_utc_gap_and_overlap(void)
{
    cf_tz_t *tz = NULL;
    CF_ASSERT_INT_EQ(cf_tz_load(NULL, "Europe/Copenhagen", &tz, NULL, 0), 0);
    const int64_t mar29 = cf_days_from_civil(2026, 3, 29) * 86400;
    const int64_t oct25 = cf_days_from_civil(2026, 10, 25) * 86400;
    /* before, in and after the spring gap 02:00-03:00 */
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, mar29 + 5400), s_t("2026-03-29T00:30:00Z"));
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, mar29 + 7200), s_t("2026-03-29T01:00:00Z"));
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, mar29 + 9000), s_t("2026-03-29T01:30:00Z"));
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, mar29 + 10800), s_t("2026-03-29T01:00:00Z"));
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, mar29 + 12600), s_t("2026-03-29T01:30:00Z"));
    /* the autumn overlap 02:00-03:00 happens twice: the earlier (CEST) */
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, oct25 + 5400), s_t("2026-10-24T23:30:00Z"));
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, oct25 + 7200), s_t("2026-10-25T00:00:00Z"));
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, oct25 + 9000), s_t("2026-10-25T00:30:00Z"));
    CF_ASSERT_INT_EQ(cf_tz_local_to_utc(tz, oct25 + 10800), s_t("2026-10-25T02:00:00Z"));

    /* Round trip over whole years, inside the table and on the footer rule:
     * local(t) maps back to t, or to the earlier instant of an overlap. */
    static const int years[] = {1916, 1945, 1980, 2026, 2037, 2038, 2150, 2199};
    for (size_t k = 0; k < sizeof years / sizeof years[0]; k++) {
        cf_time_t t0 = cf_days_from_civil(years[k], 1, 1) * 86400;
        for (cf_time_t t = t0; t < t0 + 366 * 86400; t += 900) {
            int64_t local = t + cf_tz_offset(tz, t, NULL);
            cf_time_t back = cf_tz_local_to_utc(tz, local);
            if (back != t && !(back < t && back + cf_tz_offset(tz, back, NULL) == local))
                CF_FAILF_("round trip of %lld gave %lld", (long long)t, (long long)back);
        }
    }
    cf_tz_destroy(&tz);
    cf_tz_destroy(&tz); /* idempotent */
    cf_tz_destroy(NULL);
}

static void test_tzif_robustness(void)
{
    size_t len;
    unsigned char *buf = s_read("/usr/share/zoneinfo/Europe/Oslo", &len);
    char why[128];
    cf_tz_t *tz = NULL;
    CF_ASSERT_INT_EQ(cf_tz_parse(buf, len, &tz, why, sizeof why), 0);
    cf_tz_destroy(&tz);
    /* every truncation is refused or parsed, never read past the end */
    for (size_t n = 0; n < len; n++) {
        unsigned char *copy = malloc(n ? n : 1);
        CF_ASSERT(copy != NULL);
        memcpy(copy, buf, n);
        int rc = cf_tz_parse(copy, n, &tz, why, sizeof why);
        CF_ASSERT(rc == 0 || rc == CF_EBADREQ);
        cf_tz_destroy(&tz);
        free(copy);
    }
    /* corrupt bytes everywhere: no crash */
    uint32_t seed = 12345;
    for (int i = 0; i < 4000; i++) {
        unsigned char *copy = malloc(len);
        CF_ASSERT(copy != NULL);
        memcpy(copy, buf, len);
        for (int k = 0; k < 3; k++) {
            seed = seed * 1103515245u + 12345u;
            copy[(seed >> 8) % len] = (unsigned char)(seed >> 20);
        }
        if (cf_tz_parse(copy, len, &tz, why, sizeof why) == 0) {
            (void)cf_tz_offset(tz, s_t("2026-06-01T00:00:00Z"), NULL);
            (void)cf_tz_local_to_utc(tz, s_t("2150-03-29T02:30:00Z"));
            cf_tz_destroy(&tz);
        }
        free(copy);
    }
    CF_ASSERT_INT_EQ(cf_tz_parse((const unsigned char *)"TZif", 4, &tz, why, sizeof why),
                     CF_EBADREQ);
    CF_ASSERT_STR_HAS(why, "TZif");

    /* A version 1 file (32-bit table only, no footer): the v1 part of this
     * one, with its version byte cleared. */
    uint32_t c[6];
    for (int i = 0; i < 6; i++)
        c[i] = (uint32_t)buf[20 + 4 * i] << 24 | (uint32_t)buf[21 + 4 * i] << 16 |
               (uint32_t)buf[22 + 4 * i] << 8 | buf[23 + 4 * i];
    size_t v1 = 44 + c[3] * 5 + c[4] * 6 + c[5] + c[2] * 8 + c[1] + c[0];
    CF_ASSERT(v1 < len);
    buf[4] = 0;
    CF_ASSERT_INT_EQ(cf_tz_parse(buf, v1, &tz, why, sizeof why), 0);
    CF_ASSERT_INT_EQ(cf_tz_offset(tz, s_t("1990-07-01T00:00:00Z"), NULL), 7200);
    CF_ASSERT_INT_EQ(cf_tz_offset(tz, s_t("1990-12-01T00:00:00Z"), NULL), 3600);
    cf_tz_destroy(&tz);
    free(buf);
}

static void test_tz_names_and_tzdir(void)
{
    cf_tz_t *tz = NULL;
    char why[256];
    static const char *const bad[] = {"", "/etc/passwd", "../etc/passwd", "Europe/../../etc/passwd",
                                      "Europe//Oslo", "Europe/", ".hidden", "Europe/Oslo\n",
                                      "Europe/Os lo"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CF_ASSERT_INT_EQ(cf_tz_load(NULL, bad[i], &tz, why, sizeof why), CF_ENOTFOUND);
    CF_ASSERT_INT_EQ(cf_tz_load(NULL, "Europe/Nowhere", &tz, why, sizeof why), CF_ENOTFOUND);
    CF_ASSERT_INT_EQ(cf_tz_load(NULL, "Europe", &tz, why, sizeof why), CF_ENOTFOUND);

    /* TZDIR: a zone directory of our own, with a good and a broken zone */
    char dir[] = "/tmp/cf_tzdir_XXXXXX";
    CF_ASSERT(mkdtemp(dir) != NULL);
    char path[256], sub[256];
    snprintf(sub, sizeof sub, "%s/Nordic", dir);
    CF_ASSERT_INT_EQ(mkdir(sub, 0700), 0);
    size_t len;
    unsigned char *buf = s_read("/usr/share/zoneinfo/Europe/Oslo", &len);
    snprintf(path, sizeof path, "%s/Nordic/Oslo", dir);
    FILE *f = fopen(path, "wb");
    CF_ASSERT(f != NULL);
    fwrite(buf, 1, len, f);
    fclose(f);
    free(buf);
    char broken[256];
    snprintf(broken, sizeof broken, "%s/Nordic/Broken", dir);
    f = fopen(broken, "wb");
    CF_ASSERT(f != NULL);
    fputs("not a zone\n", f);
    fclose(f);

    CF_ASSERT_INT_EQ(setenv("TZDIR", dir, 1), 0);
    int rc_good = cf_tz_load(NULL, "Nordic/Oslo", &tz, why, sizeof why);
    cf_tz_destroy(&tz);
    int rc_sys = cf_tz_load(NULL, "Europe/Oslo", &tz, why, sizeof why);
    int rc_bad = cf_tz_load(NULL, "Nordic/Broken", &tz, why, sizeof why);
    static const char yaml[] = "calendars:\n"
                               "  a:\n"
                               "    country: no\n"
                               "    timezone: Nordic/Broken\n"
                               "  b:\n"
                               "    country: no\n"
                               "    timezone: Nordic/Oslo\n";
    int rc_yaml = s_load(yaml, sizeof yaml - 1, s_diag, S_BUFLEN);
    unsetenv("TZDIR");
    remove(path);
    remove(broken);
    rmdir(sub);
    rmdir(dir);

    CF_ASSERT_INT_EQ(rc_good, 0);
    CF_ASSERT_INT_EQ(rc_sys, CF_ENOTFOUND);
    CF_ASSERT_INT_EQ(rc_bad, CF_EBADREQ);
    CF_ASSERT(strstr(why, "not a TZif file") != NULL);
    CF_ASSERT_INT_EQ(rc_yaml, CF_EBADREQ);
    CF_ASSERT_STR_HAS(s_diag, "t.yaml:4:15: cannot read time zone 'Nordic/Broken': not a TZif file\n");
    CF_ASSERT(strstr(s_diag, "Nordic/Oslo") == NULL);
}

/* -------------------------------------------------- duration arithmetic --- */

static void test_add_business_days_easter(void)
{
    /* Wed 1 April 2026; Thu 2 - Mon 6 April closed (Easter Sunday 5 April) */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-04-01T10:00:00+02:00", "1bd"), "2026-04-07T08:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-04-01T10:00:00+02:00", "2bd"), "2026-04-08T08:00:00Z");
    /* Maundy Thursday is not a business day: opening of Tue 7 April, +1 */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-04-02T09:00:00+02:00", "1bd"), "2026-04-08T06:00:00Z");
    CF_ASSERT_STR_EQ(s_add("no", "2026-04-03T15:00:00+02:00", "3bd"), "2026-04-10T06:00:00Z");
    /* Denmark 2023: Store bededag Fri 5 May; 2024 the same Friday works */
    CF_ASSERT_STR_EQ(s_add("dk", "2023-05-04T10:00:00+02:00", "1bd"), "2023-05-08T08:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2024-04-25T10:00:00+02:00", "1bd"), "2024-04-26T08:00:00Z");
}

static void test_add_business_days_weekend(void)
{
    /* Friday 10:00 + 1bd = Monday 10:00 */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-06T10:00:00+01:00", "1bd"), "2026-03-09T09:00:00Z");
    /* Saturday: counted from Monday's opening, so Tuesday 08:00 */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-07T12:00:00+01:00", "1bd"), "2026-03-10T07:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-08T23:30:00+01:00", "1bd"), "2026-03-10T07:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-08T23:30:00+01:00", "5bd"), "2026-03-16T07:00:00Z");
    /* the local date decides: 23:30Z on Friday is Saturday 00:30 in Copenhagen */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-06T23:30:00Z", "1bd"), "2026-03-10T07:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-06T22:59:59Z", "1bd"), "2026-03-09T22:59:59Z");
    /* two plain weeks */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-01-05T10:00:00+01:00", "10bd"), "2026-01-19T09:00:00Z");
    /* another week and another opening time */
    CF_ASSERT_STR_EQ(s_add("sun-thu", "2026-03-06T12:00:00+01:00", "1bd"), "2026-03-09T08:30:00Z");
    CF_ASSERT_STR_EQ(s_add("sun-thu", "2026-03-05T12:00:00+01:00", "1bd"), "2026-03-08T11:00:00Z");
}

static void test_add_business_days_christmas(void)
{
    /* Wed 23 Dec 2026: 24 closed, 25-26 holidays, 27 Sunday, 28 closed in
     * the test calendar (2026 only), 31 closed, 1 Jan holiday */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-12-23T10:00:00+01:00", "1bd"), "2026-12-29T09:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-12-23T10:00:00+01:00", "2bd"), "2026-12-30T09:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-12-23T10:00:00+01:00", "3bd"), "2027-01-04T09:00:00Z");
    /* no closing days at all: 24 Dec is a business day */
    CF_ASSERT_STR_EQ(s_add("plain-dk", "2026-12-23T10:00:00+01:00", "2bd"), "2026-12-28T09:00:00Z");
    /* Norway, 17 May 2027 is a Monday */
    CF_ASSERT_STR_EQ(s_add("no", "2027-05-14T10:00:00+02:00", "1bd"), "2027-05-18T08:00:00Z");
    CF_ASSERT_STR_EQ(s_add("no", "2026-05-13T10:00:00+02:00", "1bd"), "2026-05-15T08:00:00Z");
    CF_ASSERT_STR_EQ(s_add("no", "2026-05-13T10:00:00+02:00", "2bd"), "2026-05-18T08:00:00Z");
}

static void test_add_business_days_dst(void)
{
    /* the local clock time is kept across the change: 71 h and 73 h */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-27T10:00:00+01:00", "1bd"), "2026-03-30T08:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-10-23T10:00:00+02:00", "1bd"), "2026-10-26T09:00:00Z");
    CF_ASSERT_STR_EQ(s_add("no", "2026-03-28T10:00:00+01:00", "1bd"), "2026-03-31T06:00:00Z");
}

static void test_add_days_weeks_across_dst(void)
{
    /* 2d over the spring change is 47 real hours, over the autumn one 49 */
    cf_time_t a = s_t("2026-03-28T12:00:00+01:00"), b = s_t("2026-10-24T12:00:00+02:00");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-28T12:00:00+01:00", "2d"), "2026-03-30T10:00:00Z");
    CF_ASSERT_INT_EQ(s_t("2026-03-30T10:00:00Z") - a, 47 * 3600);
    CF_ASSERT_STR_EQ(s_add("dk", "2026-10-24T12:00:00+02:00", "2d"), "2026-10-26T11:00:00Z");
    CF_ASSERT_INT_EQ(s_t("2026-10-26T11:00:00Z") - b, 49 * 3600);
    /* a clock time that does not exist moves forward by the gap... */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-28T02:30:00+01:00", "1d"), "2026-03-29T01:30:00Z");
    /* ...one that exists twice is the earlier */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-10-24T02:30:00+02:00", "1d"), "2026-10-25T00:30:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-10-25T02:30:00+01:00", "1d"), "2026-10-26T01:30:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-20T10:00:00+01:00", "2w"), "2026-04-03T08:00:00Z");
    /* minutes and hours are absolute */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-29T01:30:00+01:00", "1h"), "2026-03-29T01:30:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-29T01:30:00+01:00", "90m"), "2026-03-29T02:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-10-25T02:30:00+02:00", "1h"), "2026-10-25T01:30:00Z");
}

static void test_add_months_and_end_of_day(void)
{
    /* the complaint window: 6 months, the day cut to the month's last */
    CF_ASSERT_STR_EQ(s_add("dk", "2026-03-02T10:00:00+01:00", "6mo"), "2026-09-02T08:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-08-31T10:00:00+02:00", "6mo"), "2027-02-28T09:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2027-08-31T10:00:00+02:00", "6mo"), "2028-02-29T09:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-11-15T10:00:00+01:00", "14mo"), "2028-01-15T09:00:00Z");
    CF_ASSERT_INT_EQ(cf_days_add_months(cf_days_from_civil(2026, 1, 31), -2),
                     cf_days_from_civil(2025, 11, 30));
    cf_dur_t d;
    char buf[16];
    CF_ASSERT_INT_EQ(cf_dur_parse("6mo", &d), 0);
    CF_ASSERT_STR_EQ(cf_dur_format(d, buf, sizeof buf), "6mo");
    /* a guarantee valid until 10 March ends at local midnight after it */
    const cf_cal_t *dk = s_cal("dk");
    char t[CF_TIME_BUFLEN];
    int64_t day = cf_days_from_civil(2026, 3, 10);
    CF_ASSERT_STR_EQ(cf_time_format(cf_cal_end_of_day(dk, day), t), "2026-03-10T23:00:00Z");
    day = cf_days_from_civil(2026, 7, 10);
    CF_ASSERT_STR_EQ(cf_time_format(cf_cal_end_of_day(dk, day), t), "2026-07-10T22:00:00Z");
    CF_ASSERT_INT_EQ(cf_cal_today(dk, s_t("2026-03-10T23:30:00Z")),
                     cf_days_from_civil(2026, 3, 11));
    CF_ASSERT_INT_EQ(cf_cal_today(dk, s_t("2026-03-10T22:59:59Z")),
                     cf_days_from_civil(2026, 3, 10));
}

static void test_add_years(void)
{
    /* consent valid one year: 29 Feb -> 28 Feb */
    CF_ASSERT_STR_EQ(s_add("dk", "2024-02-29T12:00:00+01:00", "1y"), "2025-02-28T11:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2024-02-29T12:00:00+01:00", "4y"), "2028-02-29T11:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2025-06-15T09:30:00+02:00", "1y"), "2026-06-15T07:30:00Z");
    /* the local date is kept, not the UTC one */
    CF_ASSERT_STR_EQ(s_add("no", "2025-11-30T23:30:00+01:00", "1y"), "2026-11-30T22:30:00Z");
}

static void test_add_out_of_range(void)
{
    cf_time_t r = 42;
    cf_dur_t d = {1, CF_DUR_WEEKS};
    CF_ASSERT_STR_EQ(s_add("dk", "2199-12-30T12:00:00Z", "1w"), "ERR");
    CF_ASSERT_STR_EQ(s_add("dk", "2199-12-31T22:00:00Z", "1h"), "ERR"); /* 2200 local */
    CF_ASSERT_STR_EQ(s_add("dk", "2199-12-31T22:00:00Z", "59m"), "2199-12-31T22:59:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2199-06-01T12:00:00Z", "1y"), "ERR");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-01-01T12:00:00Z", "100000bd"), "ERR");
    /* Mon 30 Dec 2199: the next business day is Tue 31 Dec - closed in dk */
    CF_ASSERT_STR_EQ(s_add("plain-dk", "2199-12-30T12:00:00Z", "1bd"), "2199-12-31T12:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "2199-12-30T12:00:00Z", "1bd"), "ERR");
    CF_ASSERT_STR_EQ(s_add("dk", "2026-01-01T12:00:00Z", "100000d"), "ERR");
    CF_ASSERT_STR_EQ(s_add("dk", "1899-12-31T12:00:00+01:00", "1d"), "1900-01-01T11:00:00Z");
    CF_ASSERT_STR_EQ(s_add("dk", "1800-12-31T12:00:00+01:00", "1d"), "ERR");
    CF_ASSERT_INT_EQ(cf_cal_add(s_cal("dk"), INT64_MAX, d, &r), CF_EBADREQ);
    CF_ASSERT_INT_EQ(cf_cal_add(s_cal("dk"), INT64_MIN, d, &r), CF_EBADREQ);
    d.n = 0;
    CF_ASSERT_INT_EQ(cf_cal_add(s_cal("dk"), 0, d, &r), CF_EBADREQ);
    d.n = CF_DUR_MAX + 1;
    CF_ASSERT_INT_EQ(cf_cal_add(s_cal("dk"), 0, d, &r), CF_EBADREQ);
    d = (cf_dur_t){1, (cf_dur_unit_t)99};
    CF_ASSERT_INT_EQ(cf_cal_add(s_cal("dk"), 0, d, &r), CF_EBADREQ);
    CF_ASSERT_INT_EQ(r, 42); /* untouched on failure */
}

/* ------------------------------------------------------------ the loader --- */

static void test_shipped_calendars_load(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/workflows/calendars.yaml", cf_test_srcdir());
    cf_diags_t d = {0};
    cf_cal_set_t *set = NULL;
    int rc = cf_cal_set_load_file(path, &set, &d);
    cf_diags_print(&d, stderr);
    cf_diags_clear(&d);
    CF_ASSERT_INT_EQ(rc, 0);
    CF_ASSERT_INT_EQ(cf_cal_count(set), 2);
    CF_ASSERT_STR_EQ(cf_cal_name(cf_cal_at(set, 0)), "dk");
    CF_ASSERT_STR_EQ(cf_cal_name(cf_cal_at(set, 1)), "no");
    CF_ASSERT(cf_cal_at(set, 2) == NULL);
    CF_ASSERT(cf_cal_find(set, "se") == NULL);
    const cf_cal_t *dk = cf_cal_find(set, "dk");
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 6, 5));  /* Grundlovsdag */
    CF_ASSERT(!cf_cal_is_business_day(dk, 2026, 12, 24));
    CF_ASSERT(cf_cal_is_business_day(dk, 2026, 12, 28));
    CF_ASSERT(!cf_cal_is_business_day(cf_cal_find(set, "no"), 2026, 12, 31));
    /* Wed 23 Dec 2026 + 2bd: 24 closed, 25-27 holidays and Sunday, 28 (1), 29 (2) */
    cf_time_t due = 0;
    char buf[CF_TIME_BUFLEN];
    CF_ASSERT_INT_EQ(cf_cal_add(dk, s_t("2026-12-23T10:00:00+01:00"), (cf_dur_t){2, CF_DUR_BDAYS}, &due), 0);
    CF_ASSERT_STR_EQ(cf_cal_format_local(dk, due, buf), "2026-12-29T10:00:00+01:00");
    cf_cal_set_destroy(&set);
    CF_ASSERT(set == NULL);
    cf_cal_set_destroy(&set);
}

static void test_loader_errors(void)
{
    s_expect_error("", "t.yaml:1:1: empty file");
    s_expect_error("# nothing\n\n", "t.yaml:1:1: empty file");
    s_expect_error("---\n", "t.yaml:1:1: empty file");
    s_expect_error("- a\n- b\n", "t.yaml:1:1: the top level must be a mapping");
    s_expect_error("calendar:\n  dk: {}\n", "t.yaml:1:1: unknown key 'calendar' (expected 'calendars')");
    s_expect_error("calendar:\n  dk: {}\n", "t.yaml:1:1: missing key 'calendars'");
    s_expect_error("calendars:\n", "t.yaml:1:11: calendars: expected a mapping of calendar names (none declared)");
    s_expect_error("calendars: {}\n", "t.yaml:1:12: calendars: expected a mapping of calendar names (none declared)");
    s_expect_error("calendars: [dk]\n", "t.yaml:1:12: calendars: expected a mapping");
    s_expect_error("calendars:\n  dk:\n", "t.yaml:2:6: calendar 'dk': expected a mapping, found nothing");
    s_expect_error("calendars:\n  dk:\n    country: se\n    timezone: Europe/Copenhagen\n",
                   "t.yaml:3:14: unknown country 'se' (expected dk or no)");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Copenhagen\n    holidays: []\n",
                   "t.yaml:5:5: unknown key 'holidays' (expected country, timezone, workdays, opens or closed)");
    s_expect_error("calendars:\n  dk:\n    timezone: Europe/Copenhagen\n",
                   "t.yaml:3:5: calendar 'dk': missing key 'country'");
    s_expect_error("calendars:\n  dk:\n    country: dk\n",
                   "t.yaml:3:5: calendar 'dk': missing key 'timezone'");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Kobenhavn\n",
                   "t.yaml:4:15: unknown time zone 'Europe/Kobenhavn'");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: ../../../etc/passwd\n",
                   "t.yaml:4:15: unknown time zone '../../../etc/passwd'");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: \"Europe/Oslo\\0x\"\n",
                   "t.yaml:4:15: unknown time zone 'Europe/Oslo?x'");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: [Europe/Oslo]\n",
                   "t.yaml:4:15: timezone: expected a string, found a list");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n"
                   "    workdays: [mon, tue, wed, thu, fre]\n",
                   "t.yaml:5:36: bad weekday 'fre' (expected mon, tue, wed, thu, fri, sat or sun)");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n"
                   "    workdays: [mon, mon]\n",
                   "t.yaml:5:21: weekday 'mon' listed twice");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n    workdays: []\n",
                   "t.yaml:5:15: workdays: at least one day is needed");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n    workdays: mon\n",
                   "t.yaml:5:15: workdays: expected a list");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n    opens: \"8:00\"\n",
                   "t.yaml:5:12: opens: bad time '8:00'");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n    opens: \"24:00\"\n",
                   "t.yaml:5:12: opens: bad time '24:00'");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n"
                   "    closed: [\"12-32\", \"02-30\", 2026-02-29, 1899-12-24, 2200-01-01, \"1224\", \"13-01\", [x]]\n",
                   "t.yaml:5:14: closed: bad date '12-32' (expected MM-DD or YYYY-MM-DD)\n"
                   "t.yaml:5:23: closed: bad date '02-30' (expected MM-DD or YYYY-MM-DD)\n"
                   "t.yaml:5:32: closed: bad date '2026-02-29' (expected MM-DD or YYYY-MM-DD)\n"
                   "t.yaml:5:44: closed: date '1899-12-24' outside the years 1900-2199\n"
                   "t.yaml:5:56: closed: date '2200-01-01' outside the years 1900-2199\n"
                   "t.yaml:5:68: closed: bad date '1224' (expected MM-DD or YYYY-MM-DD)\n"
                   "t.yaml:5:76: closed: bad date '13-01' (expected MM-DD or YYYY-MM-DD)\n"
                   "t.yaml:5:85: closed: expected a string, found a list\n");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n"
                   "    closed: [\"12-24\", \"12-24\"]\n",
                   "t.yaml:5:23: closed: '12-24' listed twice");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    timezone: Europe/Oslo\n"
                   "  dk:\n    country: dk\n    timezone: Europe/Oslo\n",
                   "t.yaml:5:3: duplicate calendar 'dk' (first at line 2)");
    s_expect_error("calendars:\n  dk:\n    country: dk\n    country: no\n    timezone: Europe/Oslo\n",
                   "t.yaml:4:5: duplicate key 'country' (first at line 3)");
    s_expect_error("calendars:\n  \"d k\":\n    country: dk\n    timezone: Europe/Oslo\n",
                   "t.yaml:2:3: bad calendar name 'd k'");
    s_expect_error("calendars:\n  [a]: {country: dk}\n", "t.yaml:2:3: a key must be a string, not a list");
    s_expect_error("calendars:\n  dk:\n\tcountry: dk\n", "t.yaml:3:1: tab character; indent with spaces");
    s_expect_error("calendars:\n  dk: &base\n    country: dk\n    timezone: Europe/Oslo\n  no: *base\n",
                   "t.yaml:2:7: anchors and aliases are not supported\n"
                   "t.yaml:5:7: anchors and aliases are not supported\n");
    s_expect_error("calendars:\n  dk: {country: dk\n", "t.yaml:3:1: YAML syntax error:");
    s_expect_error("calendars:\n  dk: [\n", "YAML syntax error:");
    s_expect_error("calendars: \"abc\n", "t.yaml:");
    s_expect_error("calendars:\n- a\n  b: c\n", "YAML syntax error:");
    s_expect_error("calendars: {}\n---\ncalendars: {}\n", "t.yaml:2:1: only one YAML document per file");
    s_expect_error("calendars:\n  dk: \"\xc3\xa6\xff\xfe\"\n", "t.yaml:2:9: YAML syntax error: invalid leading UTF-8 octet");
    s_expect_error("\xef\xbb\xbf" "calendars:\n  dk:\n    country: dk\n\t\n", "t.yaml:4:1: tab character");
    s_expect_error("\xef\xbb\xbf" "- \tx\n", "t.yaml:1:3: tab character");
    /* a tab that separates is YAML (the file is wrong for other reasons) */
    s_expect_error("x: \t1\n", "t.yaml:1:1: unknown key 'x' (expected 'calendars')");
    s_expect_error("calendars: !!map {}\n", "t.yaml:1:12: tags are not supported");
    s_expect_error("calendars: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
                   "t.yaml:1:27: nesting deeper than 16 levels");
}

static void test_loader_reports_every_error(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/calendars/many_errors.yaml", cf_test_srcdir());
    size_t len;
    unsigned char *buf = s_read(path, &len);
    CF_ASSERT_INT_EQ(s_load((const char *)buf, len, s_diag, S_BUFLEN), CF_EBADREQ);
    free(buf);
    S_ASSERT_TEXT(s_diag,
                     "t.yaml:6:14: unknown country 'se' (expected dk or no)\n"
                     "t.yaml:7:15: unknown time zone 'Europe/Stockholmx'\n"
                     "t.yaml:8:26: bad weekday 'thur' (expected mon, tue, wed, thu, fri, sat or sun)\n"
                     "t.yaml:9:12: opens: bad time '8am' (expected \"HH:MM\", 00:00-23:59)\n"
                     "t.yaml:11:9: closed: bad date '12-33' (expected MM-DD or YYYY-MM-DD)\n"
                     "t.yaml:12:5: unknown key 'weekends' (expected country, timezone, workdays, opens or closed)\n"
                     "t.yaml:13:3: duplicate calendar 'dk' (first at line 5)\n"
                     "t.yaml:16:1: unknown key 'holidays' (expected 'calendars')\n");

    /* and through the file API, with the file's own name */
    cf_diags_t d = {0};
    cf_cal_set_t *set = NULL;
    CF_ASSERT_INT_EQ(cf_cal_set_load_file(path, &set, &d), CF_EBADREQ);
    CF_ASSERT(set == NULL);
    CF_ASSERT_INT_EQ(d.n, 8);
    CF_ASSERT(strcmp(d.v[0].file, path) == 0);
    CF_ASSERT_INT_EQ(d.v[0].line, 6);
    CF_ASSERT_INT_EQ(d.v[0].col, 14);
    cf_diags_clear(&d);
}

static void test_loader_files(void)
{
    cf_diags_t d = {0};
    cf_cal_set_t *set = NULL;
    CF_ASSERT_INT_EQ(cf_cal_set_load_file("/nonexistent/calendars.yaml", &set, &d), CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_STR_HAS(d.v[0].message, "cannot open");
    cf_diags_clear(&d);
    CF_ASSERT_INT_EQ(cf_cal_set_load_file("/tmp", &set, &d), CF_EBADREQ);
    CF_ASSERT_STR_HAS(d.v[0].message, "not a regular file");
    cf_diags_clear(&d);

    /* more than 1 MiB: refused before parsing */
    size_t big = 1024 * 1024 + 1;
    char *buf = malloc(big);
    CF_ASSERT(buf != NULL);
    memset(buf, '#', big);
    CF_ASSERT_INT_EQ(cf_cal_set_load_buffer("big.yaml", buf, big, &set, &d), CF_EBADREQ);
    CF_ASSERT_INT_EQ(d.n, 1);
    CF_ASSERT_STR_HAS(d.v[0].message, "file too large");
    cf_diags_clear(&d);
    char tmpl[] = "/tmp/cf_cal_big_XXXXXX";
    int fd = mkstemp(tmpl);
    CF_ASSERT(fd >= 0);
    CF_ASSERT_INT_EQ(write(fd, buf, big), (int64_t)big);
    close(fd);
    int rc = cf_cal_set_load_file(tmpl, &set, &d);
    remove(tmpl);
    free(buf);
    CF_ASSERT_INT_EQ(rc, CF_EBADREQ);
    CF_ASSERT_STR_HAS(d.v[0].message, "file too large");
    cf_diags_clear(&d);

    /* a NULL buffer is an empty file */
    CF_ASSERT_INT_EQ(cf_cal_set_load_buffer(NULL, NULL, 0, &set, &d), CF_EBADREQ);
    CF_ASSERT_STR_EQ(d.v[0].file, "<buffer>");
    cf_diags_clear(&d);
}

/* Out of memory in the YAML reader at each of its allocations in turn:
 * CF_EINTERNAL, no set and (under ASan) nothing leaked, until it loads. */
static void test_loader_out_of_memory(void)
{
    int rc = CF_EINTERNAL;
    unsigned long k;
    for (k = 1; k < 10000 && rc == CF_EINTERNAL; k++) {
        cf_cal_set_t *set = NULL;
        cf_diags_t d = {0};
        cf_arena_fail_after(k);
        rc = cf_cal_set_load_buffer("t.yaml", s_test_yaml, strlen(s_test_yaml), &set, &d);
        cf_arena_fail_after(0);
        CF_ASSERT(rc == 0 || (rc == CF_EINTERNAL && set == NULL));
        cf_cal_set_destroy(&set);
        cf_diags_clear(&d);
    }
    CF_ASSERT_INT_EQ(rc, 0);
    CF_ASSERT(k > 10);
}

/* Mutations of a good file: refused or loaded, never a crash or a leak. */
static void test_loader_mutations(void)
{
    const size_t len = strlen(s_test_yaml);
    char *buf = malloc(len + 1);
    CF_ASSERT(buf != NULL);
    static const char pool[] = " \t\n:-[]{}&*!|>'\"#%@`,?0aZ\\";
    uint32_t seed = 7;
    int loaded = 0;
    for (int i = 0; i < 1500; i++) {
        memcpy(buf, s_test_yaml, len);
        size_t n = len;
        for (int k = 0; k < 1 + i % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % n;
            switch ((seed >> 4) % 3) {
            case 0: buf[at] = pool[(seed >> 16) % (sizeof pool - 1)]; break;
            case 1: memmove(buf + at, buf + at + 1, n - at - 1); n--; break;
            default: buf[at] = (char)(seed >> 24); break;
            }
        }
        int rc = s_load(buf, n, s_diag, S_BUFLEN);
        CF_ASSERT(rc == 0 || rc == CF_EBADREQ);
        loaded += rc == 0;
    }
    free(buf);
    CF_ASSERT(loaded > 0);
}

/* ------------------------------------------------------------------ CLI --- */


static void s_slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

/* Run `claimctl calendar ARGS...` with the test fixture's calendars,
 * capturing stdout and stderr. */
static int s_cli(const char *a1, ...)
{
    char *argv[32];
    int argc = 0;
    static char cmd[] = "calendar";
    argv[argc++] = cmd;
    va_list ap;
    va_start(ap, a1);
    for (const char *a = a1; a && argc < 31; a = va_arg(ap, const char *))
        argv[argc++] = (char *)(uintptr_t)a;
    va_end(ap);
    argv[argc] = NULL;

    fflush(stdout);
    fflush(stderr);
    FILE *fo = tmpfile(), *fe = tmpfile();
    CF_ASSERT(fo && fe);
    int so = dup(1), se = dup(2);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    int rc = cf_cmd_calendar(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    s_slurp(fo, s_out, S_BUFLEN);
    s_slurp(fe, s_errout, S_BUFLEN);
    return rc;
}

static char s_fixture[4096];

static const char *s_fixture_path(void)
{
    snprintf(s_fixture, sizeof s_fixture, "%s/tests/data/calendars/test.yaml", cf_test_srcdir());
    return s_fixture;
}

static void test_cli_holidays(void)
{
    const char *f = s_fixture_path();
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar", "dk", "--year", "2026", NULL), 0);
    S_ASSERT_TEXT(s_out,
                     "2026-01-01  Nytårsdag\n2026-04-02  Skærtorsdag\n2026-04-03  Langfredag\n"
                     "2026-04-05  Påskedag\n2026-04-06  2. påskedag\n2026-05-14  Kristi himmelfartsdag\n"
                     "2026-05-24  Pinsedag\n2026-05-25  2. pinsedag\n2026-06-05  closing day\n"
                     "2026-12-24  closing day\n2026-12-25  Juledag\n2026-12-26  2. juledag\n"
                     "2026-12-28  closing day\n2026-12-31  closing day\n");
    CF_ASSERT_STR_EQ(s_errout, "");
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar=no", "--year=2027", "--json", NULL), 0);
    S_ASSERT_TEXT(s_out,
                     "[\n  {\"date\": \"2027-01-01\", \"name\": \"1. nyttårsdag\"},\n"
                     "  {\"date\": \"2027-03-25\", \"name\": \"Skjærtorsdag\"},\n"
                     "  {\"date\": \"2027-03-26\", \"name\": \"Langfredag\"},\n"
                     "  {\"date\": \"2027-03-28\", \"name\": \"1. påskedag\"},\n"
                     "  {\"date\": \"2027-03-29\", \"name\": \"2. påskedag\"},\n"
                     "  {\"date\": \"2027-05-01\", \"name\": \"1. mai\"},\n"
                     "  {\"date\": \"2027-05-06\", \"name\": \"Kristi himmelfartsdag\"},\n"
                     "  {\"date\": \"2027-05-16\", \"name\": \"1. pinsedag\"},\n"
                     "  {\"date\": \"2027-05-17\", \"name\": \"17. mai\"},\n"
                     "  {\"date\": \"2027-12-24\", \"name\": \"closing day\"},\n"
                     "  {\"date\": \"2027-12-25\", \"name\": \"1. juledag\"},\n"
                     "  {\"date\": \"2027-12-26\", \"name\": \"2. juledag\"},\n"
                     "  {\"date\": \"2027-12-31\", \"name\": \"closing day\"}\n]\n");
}

static void test_cli_add(void)
{
    const char *f = s_fixture_path();
    CF_ASSERT_INT_EQ(s_cli("add", "--calendars", f, "--calendar", "dk", "--from",
                           "2026-04-01T10:00:00+02:00", "--duration", "2bd", NULL), 0);
    CF_ASSERT_STR_EQ(s_out, "2026-04-08T10:00:00+02:00\n");
    CF_ASSERT_INT_EQ(s_cli("add", "--calendars", f, "--calendar", "dk", "--from",
                           "2026-12-23T09:00:00Z", "--duration", "2bd", "--json", NULL), 0);
    CF_ASSERT_STR_EQ(s_out, "{\"from\": \"2026-12-23T09:00:00Z\", \"duration\": \"2bd\", "
                            "\"due\": \"2026-12-30T09:00:00Z\", \"due_local\": \"2026-12-30T10:00:00+01:00\"}\n");
    CF_ASSERT_INT_EQ(s_cli("add", "--calendars", f, "--calendar", "no", "--from",
                           "2026-03-28T12:00:00+01:00", "--duration", "2d", NULL), 0);
    CF_ASSERT_STR_EQ(s_out, "2026-03-30T12:00:00+02:00\n");
    CF_ASSERT_INT_EQ(s_cli("add", "--calendars", f, "--calendar", "no", "--from",
                           "2199-12-31T12:00:00Z", "--duration", "1d", NULL), 1);
    CF_ASSERT_STR_HAS(s_errout, "claimctl: the due time falls outside the years 1900-2199\n");
    CF_ASSERT_INT_EQ(s_cli("add", "--calendars", f, "--calendar", "no", "--from",
                           "2026-03-28 12:00", "--duration", "2d", NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "claimctl: calendar: --from '2026-03-28 12:00': expected an RFC 3339 time");
    CF_ASSERT_STR_HAS(s_errout, "usage: claimctl calendar");
    CF_ASSERT_INT_EQ(s_cli("add", "--calendars", f, "--calendar", "no", "--from",
                           "2026-03-28T12:00:00Z", "--duration", "2days", NULL), 2);
    CF_ASSERT_INT_EQ(s_cli("add", "--calendars", f, "--calendar", "no", "--duration", "2d", NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "--from TIME and --duration DUR are required");
}

static void test_cli_is_business_day(void)
{
    const char *f = s_fixture_path();
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "no", "2026-05-17", NULL), 1);
    CF_ASSERT_STR_EQ(s_out, "no (17. mai)\n");
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "no", "2026-05-18", NULL), 0);
    CF_ASSERT_STR_EQ(s_out, "yes\n");
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", "2026-05-16", NULL), 1);
    CF_ASSERT_STR_EQ(s_out, "no (Saturday)\n");
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", "2026-12-24", NULL), 1);
    CF_ASSERT_STR_EQ(s_out, "no (closing day)\n");
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", "--json", "2026-04-03", NULL), 1);
    CF_ASSERT_STR_EQ(s_out, "{\"date\": \"2026-04-03\", \"business_day\": false, \"reason\": \"Langfredag\"}\n");
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", "--json", "2026-04-07", NULL), 0);
    CF_ASSERT_STR_EQ(s_out, "{\"date\": \"2026-04-07\", \"business_day\": true, \"reason\": null}\n");
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", "2026-02-30", NULL), 2);
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", "1899-12-01", NULL), 2);
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", NULL), 2);
    CF_ASSERT_INT_EQ(s_cli("is-business-day", "--calendars", f, "--calendar", "dk", "2026-01-01", "2026-01-02", NULL), 2);
}

static void test_cli_usage_and_errors(void)
{
    const char *f = s_fixture_path();
    CF_ASSERT_INT_EQ(s_cli("--help", NULL), 0);
    CF_ASSERT_STR_HAS(s_out, "usage: claimctl calendar holidays");
    CF_ASSERT_STR_EQ(s_errout, "");
    CF_ASSERT_INT_EQ(s_cli("add", "--help", NULL), 0);
    CF_ASSERT_STR_HAS(s_out, "usage:");
    CF_ASSERT_INT_EQ(s_cli(NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "usage:");
    CF_ASSERT_STR_EQ(s_out, "");
    CF_ASSERT_INT_EQ(s_cli("frobnicate", NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "claimctl: calendar: unknown subcommand 'frobnicate'\n");
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar", "dk", NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "--year YYYY is required");
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar", "dk", "--year", "2200", NULL), 2);
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar", "dk", "--year", "20x6", NULL), 2);
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar", "dk", "--year", NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "option '--year' needs a value");
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar", "dk", "--from", "x", "--year", "2026", NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "unknown option '--from'");
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--year", "2026", NULL), 2);
    CF_ASSERT_STR_HAS(s_errout, "--calendar NAME is required");
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", f, "--calendar", "se", "--year", "2026", NULL), 2);
    CF_ASSERT_STR_EQ(s_errout, "claimctl: unknown calendar 'se' (known: dk, no, plain-dk, plain-no, sun-thu)\n");
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", "/nonexistent.yaml", "--calendar", "dk", "--year", "2026", NULL), 1);
    CF_ASSERT_STR_HAS(s_errout, "claimctl: /nonexistent.yaml: cannot open: ");

    char bad[4096];
    snprintf(bad, sizeof bad, "%s/tests/data/calendars/many_errors.yaml", cf_test_srcdir());
    CF_ASSERT_INT_EQ(s_cli("holidays", "--calendars", bad, "--calendar", "dk", "--year", "2026", NULL), 1);
    CF_ASSERT_STR_HAS(s_errout, "many_errors.yaml:6:14: unknown country 'se' (expected dk or no)\n");

    /* the default file: $CLAIMFLOW_WORKFLOWS/calendars.yaml */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/workflows", cf_test_srcdir());
    setenv("CLAIMFLOW_WORKFLOWS", dir, 1);
    int rc = s_cli("is-business-day", "--calendar", "dk", "2026-06-05", NULL);
    unsetenv("CLAIMFLOW_WORKFLOWS");
    CF_ASSERT_INT_EQ(rc, 1);
    CF_ASSERT_STR_EQ(s_out, "no (closing day)\n");
}

int main(void)
{
    s_out = malloc(S_BUFLEN);
    s_errout = malloc(S_BUFLEN);
    s_diag = malloc(S_BUFLEN);
    if (!s_out || !s_errout || !s_diag)
        return 1;
    CF_RUN(test_dk_2023_store_bededag);
    CF_RUN(test_dk_2024_leap_year_no_store_bededag);
    CF_RUN(test_dk_early_and_late_easter);
    CF_RUN(test_dk_bounds);
    CF_RUN(test_no_holidays);
    CF_RUN(test_no_coinciding_holidays_listed_once);
    CF_RUN(test_closing_days);
    CF_RUN(test_is_business_day);
    CF_RUN(test_utc_offset);
    CF_RUN(test_format_local);
    CF_RUN(test_posix_rules);
    CF_RUN(test_local_to_utc_gap_and_overlap);
    CF_RUN(test_tzif_robustness);
    CF_RUN(test_tz_names_and_tzdir);
    CF_RUN(test_add_business_days_easter);
    CF_RUN(test_add_business_days_weekend);
    CF_RUN(test_add_business_days_christmas);
    CF_RUN(test_add_business_days_dst);
    CF_RUN(test_add_days_weeks_across_dst);
    CF_RUN(test_add_years);
    CF_RUN(test_add_months_and_end_of_day);
    CF_RUN(test_add_out_of_range);
    CF_RUN(test_shipped_calendars_load);
    CF_RUN(test_loader_errors);
    CF_RUN(test_loader_reports_every_error);
    CF_RUN(test_loader_files);
    CF_RUN(test_loader_out_of_memory);
    CF_RUN(test_loader_mutations);
    CF_RUN(test_cli_holidays);
    CF_RUN(test_cli_add);
    CF_RUN(test_cli_is_business_day);
    CF_RUN(test_cli_usage_and_errors);
    cf_cal_set_destroy(&s_set);
    free(s_out);
    free(s_errout);
    free(s_diag);
    return cf_test_done();
}

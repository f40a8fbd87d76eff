/* test_person.c: person ids - Danish CPR numbers (shape, real date, century
 * from the 7th digit) and Norwegian fødselsnummer and D-numbers (both mod-11
 * control digits, real date, century from the individual number).  The
 * Norwegian examples were computed with the published algorithm. */
#include <string.h>

#include "cf_err.h"
#include "cf_test.h"
#include "cf_time.h"
#include "person.h"

#define S_KIND(s) cf_pid_check((s), strlen(s))

static void test_cpr_valid(void)
{
    CF_ASSERT_INT_EQ(S_KIND("010190-1234"), CF_PID_DK_CPR);
    CF_ASSERT_INT_EQ(S_KIND("0101901234"), CF_PID_DK_CPR);
    CF_ASSERT_INT_EQ(S_KIND("311299-0001"), CF_PID_DK_CPR);
    /* 29 February in a leap year of the century the 7th digit gives */
    CF_ASSERT_INT_EQ(S_KIND("290200-4123"), CF_PID_DK_CPR);  /* 4, yy <= 36: 2000 */
    CF_ASSERT_INT_EQ(S_KIND("290236-4000"), CF_PID_DK_CPR);  /* 2036 */
    CF_ASSERT_INT_EQ(S_KIND("290296-9000"), CF_PID_DK_CPR);  /* 9, yy > 36: 1996 */
    CF_ASSERT_INT_EQ(S_KIND("290200-5123"), CF_PID_DK_CPR);  /* 5, yy <= 57: 2000 */
    CF_ASSERT_INT_EQ(S_KIND("290260-8123"), CF_PID_DK_CPR);  /* 8, yy > 57: 1860 */
    /* no modulus-11 check: this fails it and is still a CPR number */
    CF_ASSERT_INT_EQ(S_KIND("0101901235"), CF_PID_DK_CPR);
}

static void test_cpr_invalid(void)
{
    CF_ASSERT_INT_EQ(S_KIND("290200-1123"), CF_PID_INVALID);  /* 1900 is not leap */
    CF_ASSERT_INT_EQ(S_KIND("290237-4000"), CF_PID_INVALID);  /* 1937 */
    CF_ASSERT_INT_EQ(S_KIND("290258-5000"), CF_PID_INVALID);  /* 1858 */
    CF_ASSERT_INT_EQ(S_KIND("320190-1234"), CF_PID_INVALID);  /* day 32 */
    CF_ASSERT_INT_EQ(S_KIND("000190-1234"), CF_PID_INVALID);  /* day 0 */
    CF_ASSERT_INT_EQ(S_KIND("311190-1234"), CF_PID_INVALID);  /* 31 November */
    CF_ASSERT_INT_EQ(S_KIND("011390-1234"), CF_PID_INVALID);  /* month 13 */
    CF_ASSERT_INT_EQ(S_KIND("010090-1234"), CF_PID_INVALID);  /* month 0 */
    CF_ASSERT_INT_EQ(S_KIND("010190 1234"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("010190-123"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("010190-12345"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("01019O-1234"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("0101-901234"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("010190123"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND(""), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(cf_pid_check(NULL, 0), CF_PID_INVALID);
    /* an embedded NUL is not a digit */
    CF_ASSERT_INT_EQ(cf_pid_check("01019\0" "1234", 10), CF_PID_INVALID);
}

static void test_no_fnr(void)
{
    CF_ASSERT_INT_EQ(S_KIND("15058545640"), CF_PID_NO_FNR);  /* 1985, individual 456 */
    CF_ASSERT_INT_EQ(S_KIND("31129990077"), CF_PID_NO_FNR);  /* 900-999, yy >= 40: 1999 */
    CF_ASSERT_INT_EQ(S_KIND("01010150155"), CF_PID_NO_FNR);  /* 500-999, yy <= 39: 2001 */
    CF_ASSERT_INT_EQ(S_KIND("17055460086"), CF_PID_NO_FNR);  /* 500-749, yy >= 54: 1854 */
    CF_ASSERT_INT_EQ(S_KIND("17055449988"), CF_PID_NO_FNR);  /* 000-499: 1954 */
    CF_ASSERT_INT_EQ(S_KIND("29020050088"), CF_PID_NO_FNR);  /* 29 Feb 2000 */
    CF_ASSERT_INT_EQ(S_KIND("29029610086"), CF_PID_NO_FNR);  /* 29 Feb 1996 */
}

static void test_no_dnr(void)
{
    CF_ASSERT_INT_EQ(S_KIND("41019012393"), CF_PID_NO_DNR);  /* 01.01.1990 + 40 */
    CF_ASSERT_INT_EQ(S_KIND("55058545634"), CF_PID_NO_DNR);  /* 15.05.1985 + 40 */
}

/* The kind of id fixes a claim's country. */
static void test_country(void)
{
    CF_ASSERT_INT_EQ(cf_pid_country(S_KIND("010190-1234")), CF_COUNTRY_DK);
    CF_ASSERT_INT_EQ(cf_pid_country(S_KIND("17055449988")), CF_COUNTRY_NO);
    CF_ASSERT_INT_EQ(cf_pid_country(S_KIND("41019012393")), CF_COUNTRY_NO);
    CF_ASSERT_INT_EQ(cf_pid_country(S_KIND("15058545641")), -1);
}

static void test_no_invalid(void)
{
    /* one control digit wrong, either of them */
    CF_ASSERT_INT_EQ(S_KIND("15058545641"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("15058545650"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("41019012394"), CF_PID_INVALID);
    /* a digit of the body changed: the control digits catch it */
    CF_ASSERT_INT_EQ(S_KIND("15058545740"), CF_PID_INVALID);
    /* control digits hold, the date does not */
    CF_ASSERT_INT_EQ(S_KIND("29029012324"), CF_PID_INVALID);  /* 29 Feb 1990 */
    CF_ASSERT_INT_EQ(S_KIND("29020012380"), CF_PID_INVALID);  /* 29 Feb 1900 */
    /* control digits hold, no century for this individual number and year */
    CF_ASSERT_INT_EQ(S_KIND("31125575032"), CF_PID_INVALID);  /* 750, yy 55 */
    CF_ASSERT_INT_EQ(S_KIND("01014080054"), CF_PID_INVALID);  /* 800, yy 40 */
    /* a body whose first control digit would be 10: no digit can be right */
    for (char k = '0'; k <= '9'; k++) {
        char id[12] = "010190108";
        id[9] = k;
        for (char k2 = '0'; k2 <= '9'; k2++) {
            id[10] = k2;
            CF_ASSERT_INT_EQ(S_KIND(id), CF_PID_INVALID);
        }
    }
    CF_ASSERT_INT_EQ(S_KIND("1505854564"), CF_PID_DK_CPR);   /* 10 digits is Danish */
    CF_ASSERT_INT_EQ(S_KIND("150585456400"), CF_PID_INVALID);
    CF_ASSERT_INT_EQ(S_KIND("1505854564a"), CF_PID_INVALID);
}

static void test_canonical(void)
{
    char out[12];
    CF_ASSERT_INT_EQ(cf_pid_canonical("010190-1234", 11, out), 0);
    CF_ASSERT_STR_EQ(out, "0101901234");
    CF_ASSERT_INT_EQ(cf_pid_canonical("0101901234", 10, out), 0);
    CF_ASSERT_STR_EQ(out, "0101901234");
    CF_ASSERT_INT_EQ(cf_pid_canonical("15058545640", 11, out), 0);
    CF_ASSERT_STR_EQ(out, "15058545640");
    CF_ASSERT_INT_EQ(cf_pid_canonical("41019012393", 11, out), 0);
    CF_ASSERT_STR_EQ(out, "41019012393");
    CF_ASSERT_INT_EQ(cf_pid_canonical("320190-1234", 11, out), CF_EBADREQ);
    CF_ASSERT_INT_EQ(cf_pid_canonical("15058545641", 11, out), CF_EBADREQ);
}

/* Ages at the engine's clock: the day before, of and after the 15th and
 * 18th birthdays (00:00 UTC starts the day), 29 February birthdays (a year
 * older on 1 March in a common year), CPR with the century from the 7th
 * digit, Norwegian fødselsnummer and D-numbers. */
#define S_DAY(y, m, d) (cf_days_from_civil((y), (m), (d)) * 86400)
#define S_AGE(id, t) cf_pid_age((id), strlen(id), (t))

static void test_age_cpr(void)
{
    const char *id = "1501145123";     /* 15 Jan 2014: 7th digit 5, yy 14 -> 2000s */
    int y;
    unsigned m, d;
    CF_ASSERT_INT_EQ(cf_pid_birth(id, 10, &y, &m, &d), 0);
    CF_ASSERT_INT_EQ(y, 2014);
    CF_ASSERT_INT_EQ(m, 1);
    CF_ASSERT_INT_EQ(d, 15);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2026, 11, 24)), 12);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2029, 1, 14) + 86399), 14);  /* the day before */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2029, 1, 15)), 15);          /* 00:00 of the day */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2029, 1, 16)), 15);          /* the day after */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2032, 1, 15) - 1), 17);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2032, 1, 15)), 18);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2032, 1, 16)), 18);
    CF_ASSERT_INT_EQ(S_AGE("150114-5123", S_DAY(2032, 1, 15)), 18);   /* with the dash */
    cf_time_t t;
    CF_ASSERT_INT_EQ(cf_pid_birthday(id, 10, 15, &t), 0);
    CF_ASSERT_INT_EQ(t, S_DAY(2029, 1, 15));
    CF_ASSERT_INT_EQ(cf_pid_birthday(id, 10, 18, &t), 0);
    CF_ASSERT_INT_EQ(t, S_DAY(2032, 1, 15));
    /* the 7th digit decides the century: 3 is the 1900s */
    CF_ASSERT_INT_EQ(S_AGE("1501143123", S_DAY(2026, 11, 24)), 112);
    /* before the birth date there is no age; an invalid id has none */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2014, 1, 14)), -1);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2014, 1, 15)), 0);
    CF_ASSERT_INT_EQ(S_AGE("3201145123", S_DAY(2026, 1, 1)), -1);
    CF_ASSERT_INT_EQ(cf_pid_birthday("3201145123", 10, 15, &t), CF_EBADREQ);
    /* The date forms the engine uses with the member's calendar (local
     * dates; reps.c turns them into local midnight). */
    int64_t day;
    CF_ASSERT_INT_EQ(cf_pid_birthday_day(id, 10, 18, &day), 0);
    CF_ASSERT_INT_EQ(day, S_DAY(2032, 1, 15) / 86400);
    CF_ASSERT_INT_EQ(cf_pid_age_on(id, 10, day - 1), 17);
    CF_ASSERT_INT_EQ(cf_pid_age_on(id, 10, day), 18);
    CF_ASSERT_INT_EQ(cf_pid_age_on(id, 10, S_DAY(2014, 1, 14) / 86400), -1);
    CF_ASSERT_INT_EQ(cf_pid_birthday_day(id, 10, 201, &day), CF_EBADREQ);
    CF_ASSERT_INT_EQ(cf_pid_age_on("3201145123", 10, day), -1);
}

static void test_age_leap(void)
{
    const char *id = "290212-4123";   /* 29 Feb 2012 */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2027, 2, 28)), 14);         /* common year: not yet */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2027, 3, 1)), 15);          /* 1 March */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2027, 3, 2)), 15);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2030, 2, 28)), 17);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2030, 3, 1)), 18);
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2028, 2, 28)), 15);         /* leap year: on the 29th */
    CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2028, 2, 29)), 16);
    cf_time_t t;
    CF_ASSERT_INT_EQ(cf_pid_birthday(id, 11, 15, &t), 0);
    CF_ASSERT_INT_EQ(t, S_DAY(2027, 3, 1));
    CF_ASSERT_INT_EQ(cf_pid_birthday(id, 11, 16, &t), 0);
    CF_ASSERT_INT_EQ(t, S_DAY(2028, 2, 29));
    /* Norway, 29 Feb 2008 (individual 500: the 2000s) */
    CF_ASSERT_INT_EQ(S_AGE("29020850025", S_DAY(2023, 2, 28)), 14);
    CF_ASSERT_INT_EQ(S_AGE("29020850025", S_DAY(2023, 3, 1)), 15);
    CF_ASSERT_INT_EQ(S_AGE("29020850025", S_DAY(2026, 2, 28)), 17);
    CF_ASSERT_INT_EQ(S_AGE("29020850025", S_DAY(2026, 3, 1)), 18);
}

static void test_age_norway(void)
{
    const char *fnr = "10031150014", *dnr = "50031150008";   /* 10 Mar 2011 */
    for (int i = 0; i < 2; i++) {
        const char *id = i ? dnr : fnr;
        int y;
        unsigned m, d;
        CF_ASSERT_INT_EQ(cf_pid_birth(id, 11, &y, &m, &d), 0);
        CF_ASSERT_INT_EQ(y, 2011);
        CF_ASSERT_INT_EQ(m, 3);
        CF_ASSERT_INT_EQ(d, 10);       /* the D-number's day less 40 */
        CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2026, 3, 9)), 14);
        CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2026, 3, 10)), 15);
        CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2026, 3, 11)), 15);
        CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2029, 3, 9)), 17);
        CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2029, 3, 10)), 18);
        CF_ASSERT_INT_EQ(S_AGE(id, S_DAY(2029, 3, 11)), 18);
    }
    CF_ASSERT_INT_EQ(S_AGE("15068540078", S_DAY(2026, 11, 24)), 41);   /* 1985 */
    CF_ASSERT_INT_EQ(S_AGE("10031150015", S_DAY(2026, 1, 1)), -1);     /* control digit */
}

int main(void)
{
    CF_RUN(test_cpr_valid);
    CF_RUN(test_cpr_invalid);
    CF_RUN(test_no_fnr);
    CF_RUN(test_no_dnr);
    CF_RUN(test_country);
    CF_RUN(test_no_invalid);
    CF_RUN(test_canonical);
    CF_RUN(test_age_cpr);
    CF_RUN(test_age_leap);
    CF_RUN(test_age_norway);
    return cf_test_done();
}

/* test_time: RFC 3339 formatting and parsing (engine/cf_time.c), checked
 * against the C library's gmtime_r/strftime. */
#include <time.h>

#include "cf_test.h"
#include "cf_time.h"

static void s_libc(cf_time_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Every hour-and-a-bit from 1900 to 2200 formats as libc does and parses
 * back to the same second. */
static void test_format_matches_libc_and_round_trips(void)
{
    char ours[CF_TIME_BUFLEN], theirs[64];
    for (cf_time_t t = -2208988800; t < 7258118400; t += 3607 * 7 + 13) {
        cf_time_format(t, ours);
        s_libc(t, theirs, sizeof theirs);
        CF_ASSERT_STR_EQ(ours, theirs);
        cf_time_t back = 0;
        CF_ASSERT_INT_EQ(cf_time_parse(ours, strlen(ours), &back), 0);
        CF_ASSERT_INT_EQ(back, t);
    }
}

static void test_format_edges(void)
{
    char b[CF_TIME_BUFLEN];
    CF_ASSERT_STR_EQ(cf_time_format(0, b), "1970-01-01T00:00:00Z");
    CF_ASSERT_STR_EQ(cf_time_format(-1, b), "1969-12-31T23:59:59Z");
    CF_ASSERT_STR_EQ(cf_time_format(951868799, b), "2000-02-29T23:59:59Z");
    CF_ASSERT_STR_EQ(cf_time_format(253402300799, b), "9999-12-31T23:59:59Z");
    CF_ASSERT_STR_EQ(cf_time_format(1795511700, b), "2026-11-24T09:15:00Z");
}

int main(void)
{
    CF_RUN(test_format_matches_libc_and_round_trips);
    CF_RUN(test_format_edges);
    return cf_test_done();
}

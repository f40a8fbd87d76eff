/* test_country: countries, currencies and amounts as people write them
 * (engine/core/country.c): exact strings, the edges of grouping, and the
 * tables' parsing. */
#include <string.h>

#include "cf_test.h"
#include "country.h"

static void test_codes(void)
{
    CF_ASSERT_INT_EQ(cf_country_parse("dk", 2), CF_COUNTRY_DK);
    CF_ASSERT_INT_EQ(cf_country_parse("no", 2), CF_COUNTRY_NO);
    CF_ASSERT_INT_EQ(cf_country_parse("nor", 2), CF_COUNTRY_NO);   /* length counts */
    CF_ASSERT_INT_EQ(cf_country_parse("NO", 2), -1);
    CF_ASSERT_INT_EQ(cf_country_parse("se", 2), -1);
    CF_ASSERT_INT_EQ(cf_country_parse("d", 1), -1);
    CF_ASSERT_STR_EQ(cf_country_code(CF_COUNTRY_NO), "no");
    CF_ASSERT_STR_EQ(cf_country_code((cf_country_t)7), "?");
    CF_ASSERT_INT_EQ(cf_country_currency(CF_COUNTRY_DK), CF_CURRENCY_DKK);
    CF_ASSERT_INT_EQ(cf_country_currency(CF_COUNTRY_NO), CF_CURRENCY_NOK);
    CF_ASSERT_STR_EQ(cf_country_list(), "dk, no");
    CF_ASSERT_INT_EQ(cf_currency_parse("NOK", 3), CF_CURRENCY_NOK);
    CF_ASSERT_INT_EQ(cf_currency_parse("nok", 3), -1);
    CF_ASSERT_STR_EQ(cf_currency_code(CF_CURRENCY_DKK), "DKK");
    CF_ASSERT_STR_EQ(cf_currency_list(), "DKK, NOK");
}

static void test_amounts(void)
{
    static const struct {
        cf_currency_t cur;
        int64_t minor;
        const char *want;
    } cases[] = {
        {CF_CURRENCY_DKK, 150000, "1.500,00 kr."},
        {CF_CURRENCY_NOK, 150000, "kr 1 500,00"},
        {CF_CURRENCY_DKK, 0, "0,00 kr."},
        {CF_CURRENCY_NOK, 5, "kr 0,05"},
        {CF_CURRENCY_DKK, 99999, "999,99 kr."},
        {CF_CURRENCY_NOK, 100000, "kr 1 000,00"},
        {CF_CURRENCY_DKK, 123456789, "1.234.567,89 kr."},
        {CF_CURRENCY_NOK, 123456789, "kr 1 234 567,89"},
        {CF_CURRENCY_DKK, -150050, "-1.500,50 kr."},
        {CF_CURRENCY_NOK, INT64_MAX, "kr 92 233 720 368 547 758,07"},
        {CF_CURRENCY_DKK, INT64_MIN, "-92.233.720.368.547.758,08 kr."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[48];
        CF_ASSERT_STR_EQ(cf_currency_format(cases[i].cur, cases[i].minor, buf, sizeof buf),
                         cases[i].want);
    }
    /* Too small a buffer: empty, never cut. */
    char small[8];
    CF_ASSERT_STR_EQ(cf_currency_format(CF_CURRENCY_NOK, 150000, small, sizeof small), "");
    CF_ASSERT_STR_EQ(cf_currency_format((cf_currency_t)9, 1, small, sizeof small), "");
}

int main(void)
{
    CF_RUN(test_codes);
    CF_RUN(test_amounts);
    return cf_test_done();
}

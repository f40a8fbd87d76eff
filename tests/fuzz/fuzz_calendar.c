/* fuzz_calendar.c: the calendars loader (engine/calendar.h) on arbitrary
 * bytes, then every query the timers make on what it accepted.  It must
 * never crash, leak or read out of bounds; it must either load a set with
 * no diagnostics or refuse with at least one; and a loaded calendar must
 * answer for any year in range (holidays in date order, business-day
 * arithmetic that moves forward).  The time zone names come from the input
 * too, so the zoneinfo path check is fuzzed with them. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "calendar.h"
#include "cf_err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* 2026-11-24T09:00:00Z and one instant near each end of the range. */
static const cf_time_t s_starts[] = {1795597200, -2208988800 + 86400 * 400,
                                     7258118400 - 86400 * 400};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cf_cal_set_t *set = NULL;
    cf_diags_t d = {0};
    int rc = cf_cal_set_load_buffer("fuzz.yaml", (const char *)data, size, &set, &d);
    if (rc == 0 && (set == NULL || d.n != 0))
        abort();
    if (rc == CF_EBADREQ && (set != NULL || d.n == 0))
        abort();
    for (size_t i = 0; set && i < cf_cal_count(set); i++) {
        const cf_cal_t *cal = cf_cal_at(set, i);
        if (!cal || cf_cal_find(set, cf_cal_name(cal)) != cal || !cf_cal_tz(cal))
            abort();
        cf_cal_day_t days[64];
        size_t n;
        const int years[] = {CF_CAL_YEAR_MIN, 2026, 2027, CF_CAL_YEAR_MAX};
        for (size_t y = 0; y < sizeof years / sizeof years[0]; y++) {
            if (cf_cal_closed_days(cal, years[y], days, 64, &n) != 0)
                abort();
            for (size_t k = 1; k < n && k < 64; k++)
                if (days[k].month < days[k - 1].month ||
                    (days[k].month == days[k - 1].month && days[k].day < days[k - 1].day))
                    abort();
            cf_cal_is_business_day(cal, years[y], 12, 24);
        }
        const cf_dur_t durs[] = {{1, CF_DUR_BDAYS}, {2, CF_DUR_DAYS}, {4, CF_DUR_WEEKS},
                                 {1, CF_DUR_YEARS}, {90, CF_DUR_MINUTES}};
        for (size_t s = 0; s < sizeof s_starts / sizeof s_starts[0]; s++)
            for (size_t k = 0; k < sizeof durs / sizeof durs[0]; k++) {
                cf_time_t t;
                char buf[CF_TIME_BUFLEN];
                if (cf_cal_add(cal, s_starts[s], durs[k], &t) == 0 && t <= s_starts[s])
                    abort();
                cf_cal_utc_offset(cal, s_starts[s]);
                cf_cal_format_local(cal, s_starts[s], buf);
            }
    }
    cf_cal_set_destroy(&set);
    cf_diags_clear(&d);
    return 0;
}

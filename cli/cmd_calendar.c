/* cmd_calendar.c: claimctl calendar holidays | add | is-business-day.
 *
 * A thin shell over engine/calendar.h: parse options, load the calendars
 * file, ask one question, print the answer (text, or JSON with --json).
 * Options come from one table that says which subcommands take them, so
 * parsing, checking and the usage text cannot drift apart.
 *
 * Exit codes (cmd.h): 0 success (is-business-day: yes), 1 refused
 * (is-business-day: no; a calendars file with errors; a due time outside
 * 1900-2199), 2 usage (bad or missing arguments, unknown calendar).
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calendar.h"
#include "cmd.h"

enum { S_HOLIDAYS = 1, S_ADD = 2, S_ISBD = 4, S_ALL = 7 };

static const struct {
    const char *name;
    unsigned bit;
} s_subs[] = {
    {"holidays", S_HOLIDAYS},
    {"add", S_ADD},
    {"is-business-day", S_ISBD},
};

typedef enum { O_CALENDARS, O_CALENDAR, O_YEAR, O_FROM, O_DURATION, O_JSON, O_N } s_opt_id_t;

static const struct {
    const char *name;
    bool has_value;
    unsigned subs;
} s_opts[O_N] = {
    [O_CALENDARS] = {"--calendars", true, S_ALL},
    [O_CALENDAR] = {"--calendar", true, S_ALL},
    [O_YEAR] = {"--year", true, S_HOLIDAYS},
    [O_FROM] = {"--from", true, S_ADD},
    [O_DURATION] = {"--duration", true, S_ADD},
    [O_JSON] = {"--json", false, S_ALL},
};

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: claimctl calendar holidays --calendar NAME --year YYYY [--json]\n"
            "       claimctl calendar add --calendar NAME --from TIME --duration DUR [--json]\n"
            "       claimctl calendar is-business-day --calendar NAME DATE [--json]\n"
            "\n"
            "  --calendars FILE  the calendars file (default $CLAIMFLOW_WORKFLOWS/calendars.yaml,\n"
            "                    else ./workflows/calendars.yaml)\n"
            "  TIME  RFC 3339, e.g. 2026-04-01T10:00:00+02:00\n"
            "  DUR   30m, 2h, 2d, 4w, 1y or 2bd (business days); rules in docs/timers.md\n"
            "  DATE  YYYY-MM-DD; years %d-%d\n"
            "\n"
            "exit status: 0 done (is-business-day: yes), 1 refused (is-business-day: no),\n"
            "2 usage error\n",
            CF_CAL_YEAR_MIN, CF_CAL_YEAR_MAX);
}

static int s_bad_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int s_bad_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "claimctl: calendar: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    s_usage(stderr);
    return CF_EXIT_USAGE;
}

static void s_json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

/* Load the calendars file and find name: 0 and *set / *cal, or an exit code
 * (the reason already printed). */
static int s_open(const char *file, const char *name, cf_cal_set_t **set,
                  const cf_cal_t **cal)
{
    char path[4096];
    const bool by_default = !file;
    if (!file) {
        const char *dir = getenv("CLAIMFLOW_WORKFLOWS");
        snprintf(path, sizeof path, "%s/calendars.yaml", dir && *dir ? dir : "./workflows");
        file = path;
    }
    cf_diags_t diags = {0};
    int rc = cf_cal_set_load_file(file, set, &diags);
    if (rc != 0) {
        for (size_t i = 0; i < diags.n; i++) {
            const cf_diag_t *d = &diags.v[i];
            if (d->line)
                fprintf(stderr, "claimctl: %s:%u:%u: %s\n", d->file, d->line, d->col, d->message);
            else
                fprintf(stderr, "claimctl: %s: %s%s\n", d->file, d->message,
                        by_default ? " (pass --calendars FILE or set CLAIMFLOW_WORKFLOWS)" : "");
        }
        if (diags.n == 0)
            fprintf(stderr, "claimctl: %s: %s\n", file, cf_strerror(rc));
        cf_diags_clear(&diags);
        return CF_EXIT_REFUSED;
    }
    *cal = cf_cal_find(*set, name);
    if (!*cal) {
        fprintf(stderr, "claimctl: unknown calendar '%s' (known:", name);
        for (size_t i = 0; i < cf_cal_count(*set); i++)
            fprintf(stderr, "%s %s", i ? "," : "", cf_cal_name(cf_cal_at(*set, i)));
        fprintf(stderr, ")\n");
        cf_cal_set_destroy(set);
        return CF_EXIT_USAGE;
    }
    return 0;
}

static int s_holidays(const cf_cal_t *cal, int year, bool json)
{
    cf_cal_day_t days[400]; /* at most 366 */
    size_t n;
    if (cf_cal_closed_days(cal, year, days, sizeof days / sizeof days[0], &n) != 0 ||
        n > sizeof days / sizeof days[0]) {
        fprintf(stderr, "claimctl: cannot list the closed days of %d\n", year);
        return CF_EXIT_REFUSED;
    }
    if (json)
        printf("[");
    for (size_t i = 0; i < n; i++) {
        char date[16];
        snprintf(date, sizeof date, "%04d-%02u-%02u", days[i].year, days[i].month, days[i].day);
        if (json) {
            printf("%s\n  {\"date\": \"%s\", \"name\": ", i ? "," : "", date);
            s_json_str(stdout, days[i].name);
            printf("}");
        } else {
            printf("%s  %s\n", date, days[i].name);
        }
    }
    if (json)
        printf("%s]\n", n ? "\n" : "");
    return CF_EXIT_OK;
}

static int s_add(const cf_cal_t *cal, cf_time_t from, cf_dur_t dur, bool json)
{
    cf_time_t due;
    char a[CF_TIME_BUFLEN], b[CF_TIME_BUFLEN], c[CF_TIME_BUFLEN], ds[32];
    if (cf_cal_add(cal, from, dur, &due) != 0) {
        fprintf(stderr, "claimctl: the due time falls outside the years %d-%d\n",
                CF_CAL_YEAR_MIN, CF_CAL_YEAR_MAX);
        return CF_EXIT_REFUSED;
    }
    cf_cal_format_local(cal, due, c);
    if (json)
        printf("{\"from\": \"%s\", \"duration\": \"%s\", \"due\": \"%s\", \"due_local\": \"%s\"}\n",
               cf_time_format(from, a), cf_dur_format(dur, ds, sizeof ds),
               cf_time_format(due, b), c);
    else
        printf("%s\n", c);
    return CF_EXIT_OK;
}

static int s_is_bd(const cf_cal_t *cal, int y, unsigned m, unsigned d, bool json)
{
    static const char *const wd[7] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                      "Friday", "Saturday", "Sunday"};
    const bool yes = cf_cal_is_business_day(cal, y, m, d);
    const char *why = NULL;
    if (!yes) {
        cf_cal_day_t days[400];
        size_t n;
        if (cf_cal_closed_days(cal, y, days, sizeof days / sizeof days[0], &n) == 0)
            for (size_t i = 0; i < n && i < sizeof days / sizeof days[0]; i++)
                if (days[i].month == m && days[i].day == d)
                    why = days[i].name;
        if (!why)
            why = wd[cf_weekday(cf_days_from_civil(y, m, d)) - 1];
    }
    if (json) {
        printf("{\"date\": \"%04d-%02u-%02u\", \"business_day\": %s, \"reason\": ", y, m, d,
               yes ? "true" : "false");
        if (why)
            s_json_str(stdout, why);
        else
            printf("null");
        printf("}\n");
    } else if (yes) {
        printf("yes\n");
    } else {
        printf("no (%s)\n", why);
    }
    return yes ? CF_EXIT_OK : CF_EXIT_REFUSED;
}

int cf_cmd_calendar(int argc, char **argv)
{
    const char *val[O_N] = {NULL};
    const char *positional = NULL;
    unsigned sub = 0;

    if (argc < 2) {
        s_usage(stderr);
        return CF_EXIT_USAGE;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return CF_EXIT_OK;
        }
    }
    for (size_t k = 0; k < sizeof s_subs / sizeof s_subs[0]; k++)
        if (strcmp(argv[1], s_subs[k].name) == 0)
            sub = s_subs[k].bit;
    if (!sub)
        return s_bad_usage("unknown subcommand '%s'", argv[1]);

    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (positional || sub != S_ISBD)
                return s_bad_usage("unexpected argument '%s'", a);
            positional = a;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t nlen = eq ? (size_t)(eq - a) : strlen(a);
        int o = 0;
        while (o < O_N && !(strlen(s_opts[o].name) == nlen && strncmp(a, s_opts[o].name, nlen) == 0))
            o++;
        if (o == O_N || !(s_opts[o].subs & sub))
            return s_bad_usage("unknown option '%s'", a);
        if (s_opts[o].has_value) {
            if (eq)
                val[o] = eq + 1;
            else if (i + 1 < argc)
                val[o] = argv[++i];
            else
                return s_bad_usage("option '%s' needs a value", a);
        } else if (eq) {
            return s_bad_usage("option '%s' takes no value", a);
        } else {
            val[o] = "";
        }
    }
    if (!val[O_CALENDAR])
        return s_bad_usage("%s", "--calendar NAME is required");

    int year = 0, y = 0;
    unsigned m = 0, d = 0;
    cf_time_t from = 0;
    cf_dur_t dur = {0, CF_DUR_MINUTES};
    if (sub == S_HOLIDAYS) {
        const char *s = val[O_YEAR];
        if (!s)
            return s_bad_usage("%s", "--year YYYY is required");
        char *end;
        long v = strtol(s, &end, 10);
        if (!*s || *end || v < CF_CAL_YEAR_MIN || v > CF_CAL_YEAR_MAX)
            return s_bad_usage("--year '%s': expected a year 1900-2199", s);
        year = (int)v;
    } else if (sub == S_ADD) {
        if (!val[O_FROM] || !val[O_DURATION])
            return s_bad_usage("%s", "--from TIME and --duration DUR are required");
        if (cf_time_parse(val[O_FROM], strlen(val[O_FROM]), &from) != 0)
            return s_bad_usage("--from '%s': expected an RFC 3339 time like 2026-04-01T10:00:00+02:00",
                               val[O_FROM]);
        if (cf_dur_parse(val[O_DURATION], &dur) != 0)
            return s_bad_usage("--duration '%s': expected 30m, 2h, 2d, 4w, 1y or 2bd",
                               val[O_DURATION]);
    } else {
        if (!positional)
            return s_bad_usage("%s", "a DATE (YYYY-MM-DD) is required");
        if (cf_date_parse(positional, strlen(positional), &y, &m, &d) != 0 ||
            y < CF_CAL_YEAR_MIN || y > CF_CAL_YEAR_MAX)
            return s_bad_usage("'%s': expected a date YYYY-MM-DD in 1900-2199", positional);
    }

    cf_cal_set_t *set = NULL;
    const cf_cal_t *cal = NULL;
    int rc = s_open(val[O_CALENDARS], val[O_CALENDAR], &set, &cal);
    if (rc != 0)
        return rc;
    const bool json = val[O_JSON] != NULL;
    if (sub == S_HOLIDAYS)
        rc = s_holidays(cal, year, json);
    else if (sub == S_ADD)
        rc = s_add(cal, from, dur, json);
    else
        rc = s_is_bd(cal, y, m, d, json);
    cf_cal_set_destroy(&set);
    fflush(stdout);
    return rc;
}

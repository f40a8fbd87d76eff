/* cal_tz.c: TZif reader and POSIX TZ rules, for the calendar module.
 *
 * Design.  A zone is the 64-bit transition table of the TZif file (the v1
 * 32-bit table only when the file has nothing else) plus the footer's POSIX TZ
 * rule, which answers for every instant after the last transition (fat
 * Europe/Oslo lists transitions up to 2037, slim files almost none).  The
 * offset at t is a binary search in the table, or - past its end - the rule
 * evaluated for the years around t.
 *
 * Local -> UTC walks the periods of constant offset backwards from local+26h
 * to local-26h (no real offset is larger; the parser refuses any that is):
 * every period whose offset maps local into itself is a solution, the last
 * one found is the earliest (overlap rule: earlier instant); when there is
 * none, local fell into a gap between two periods and is read with the offset
 * before the gap, which moves it forward by the gap's length.  Rejected: the
 * usual "guess with offset(local), correct once" trick - it picks the later
 * instant in some overlaps and is wrong next to two close transitions.
 *
 * Nothing here calls localtime/mktime or reads TZ: those are process-global,
 * and two calendars in two zones must work side by side.
 *
 * Invariants: types[] is non-empty; every idx[i] < ntypes; when[] strictly
 * increasing; every offset is within +-26 h.
 */
#include "cal_tz.h"
#include "cf_err.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define S_OFF_MAX (26 * 3600)

typedef struct {
    char kind;          /* 'M' month.week.day, 'J' julian 1..365, 'N' 0..365 */
    int a, b, c;        /* M: month, week, weekday (0 = Sunday); J/N: a = day */
    int32_t time;       /* local seconds after midnight, -167h..167h */
} s_pdate_t;

typedef struct {
    int32_t std_off, dst_off;   /* east positive */
    bool has_dst;
    s_pdate_t start, end;       /* start: into DST (std time); end: out of it */
} s_rule_t;

struct cf_tz {
    size_t n;            /* transitions */
    int64_t *when;
    uint8_t *idx;
    size_t ntypes;
    int32_t *types;      /* utoff of each local time type */
    bool has_rule;
    s_rule_t rule;
};

static void s_why(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_why(char *why, size_t len, const char *fmt, ...)
{
    if (!why || !len)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------ POSIX TZ rules --- */

static bool s_isalpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool s_isdigit(char c)
{
    return c >= '0' && c <= '9';
}

/* A zone abbreviation: 3+ letters, or <...> of letters, digits, + and -. */
static const char *s_p_name(const char *p)
{
    const char *s;
    if (*p == '<') {
        s = ++p;
        while (s_isalpha(*p) || s_isdigit(*p) || *p == '+' || *p == '-')
            p++;
        if (*p != '>' || p - s < 3)
            return NULL;
        return p + 1;
    }
    s = p;
    while (s_isalpha(*p))
        p++;
    return p - s >= 3 ? p : NULL;
}

static const char *s_p_int(const char *p, int max, int *ret)
{
    int v = 0;
    if (!s_isdigit(*p))
        return NULL;
    while (s_isdigit(*p)) {
        v = v * 10 + (*p++ - '0');
        if (v > max)
            return NULL;
    }
    *ret = v;
    return p;
}

/* [+-]hh[:mm[:ss]] with hh <= maxh, as seconds. */
static const char *s_p_hms(const char *p, int maxh, int32_t *ret)
{
    int sign = 1, h, m = 0, s = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!(p = s_p_int(p, maxh, &h)))
        return NULL;
    if (*p == ':') {
        if (!(p = s_p_int(p + 1, 59, &m)))
            return NULL;
        if (*p == ':' && !(p = s_p_int(p + 1, 59, &s)))
            return NULL;
    }
    *ret = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *s_p_date(const char *p, s_pdate_t *d)
{
    d->time = 7200; /* 02:00 unless given */
    d->b = d->c = 0;
    if (*p == 'M') {
        d->kind = 'M';
        if (!(p = s_p_int(p + 1, 12, &d->a)) || d->a < 1 || *p != '.' ||
            !(p = s_p_int(p + 1, 5, &d->b)) || d->b < 1 || *p != '.' ||
            !(p = s_p_int(p + 1, 6, &d->c)))
            return NULL;
    } else if (*p == 'J') {
        d->kind = 'J';
        if (!(p = s_p_int(p + 1, 365, &d->a)) || d->a < 1)
            return NULL;
    } else {
        d->kind = 'N';
        if (!(p = s_p_int(p, 365, &d->a)))
            return NULL;
    }
    if (*p == '/' && !(p = s_p_hms(p + 1, 167, &d->time)))
        return NULL;
    return p;
}

/* std offset [dst [offset] ,start[/time],end[/time]] - POSIX offsets are
 * west positive; stored east positive. */
static int s_rule_parse(const char *s, s_rule_t *r)
{
    const char *p = s;
    int32_t off;
    memset(r, 0, sizeof *r);
    if (!(p = s_p_name(p)) || !(p = s_p_hms(p, 24, &off)))
        return CF_EBADREQ;
    r->std_off = -off;
    if (!*p)
        return 0;
    if (!(p = s_p_name(p)))
        return CF_EBADREQ;
    r->has_dst = true;
    r->dst_off = r->std_off + 3600;
    if (*p && *p != ',') {
        if (!(p = s_p_hms(p, 24, &off)))
            return CF_EBADREQ;
        r->dst_off = -off;
    }
    /* No default rules: a TZif footer always states them. */
    if (*p != ',' || !(p = s_p_date(p + 1, &r->start)) || *p != ',' ||
        !(p = s_p_date(p + 1, &r->end)) || *p)
        return CF_EBADREQ;
    return 0;
}

/* Day number (since 1970-01-01) of rule date d in year y. */
static int64_t s_pdate_day(const s_pdate_t *d, int y)
{
    const int64_t jan1 = cf_days_from_civil(y, 1, 1);
    if (d->kind == 'J')
        return jan1 + d->a - 1 + (cf_is_leap(y) && d->a >= 60);
    if (d->kind == 'N')
        return jan1 + d->a;
    const int64_t first = cf_days_from_civil(y, (unsigned)d->a, 1);
    const int want = d->c == 0 ? 7 : d->c; /* ISO weekday */
    int64_t day = first + (want - cf_weekday(first) + 7) % 7 + 7 * (d->b - 1);
    while (day >= first + cf_days_in_month(y, (unsigned)d->a))
        day -= 7;
    return day;
}

static int32_t s_rule_offset(const s_rule_t *r, cf_time_t t, cf_time_t *since)
{
    if (!r->has_dst) {
        *since = INT64_MIN;
        return r->std_off;
    }
    struct { cf_time_t at; bool dst; } tr[8], x;
    int y;
    unsigned m, d;
    cf_civil_from_days(t / 86400 - (t % 86400 < 0), &y, &m, &d);
    size_t n = 0;
    for (int yy = y - 2; yy <= y + 1; yy++) {
        tr[n].at = s_pdate_day(&r->start, yy) * 86400 + r->start.time - r->std_off;
        tr[n++].dst = true;
        tr[n].at = s_pdate_day(&r->end, yy) * 86400 + r->end.time - r->dst_off;
        tr[n++].dst = false;
    }
    /* Stable insertion sort: coinciding transitions (DST all year) keep
     * their order, so the later year's start wins. */
    for (size_t i = 1; i < n; i++) {
        x = tr[i];
        size_t j = i;
        for (; j > 0 && tr[j - 1].at > x.at; j--)
            tr[j] = tr[j - 1];
        tr[j] = x;
    }
    for (size_t i = n; i-- > 0;) {
        if (tr[i].at <= t) {
            *since = tr[i].at;
            return tr[i].dst ? r->dst_off : r->std_off;
        }
    }
    *since = INT64_MIN; /* not reached: y-2's transitions precede t */
    return r->std_off;
}

/* ------------------------------------------------------------- queries --- */

int32_t cf_tz_offset(const cf_tz_t *tz, cf_time_t t, cf_time_t *since)
{
    cf_time_t dummy;
    if (!since)
        since = &dummy;
    if (tz->n == 0 && tz->has_rule)
        return s_rule_offset(&tz->rule, t, since);
    if (tz->n == 0 || t < tz->when[0]) {
        *since = INT64_MIN;
        return tz->types[0];
    }
    size_t lo = 0, hi = tz->n; /* last i with when[i] <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->when[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    if (lo == tz->n - 1 && tz->has_rule) {
        int32_t off = s_rule_offset(&tz->rule, t, since);
        if (*since < tz->when[lo])
            *since = tz->when[lo];
        return off;
    }
    *since = tz->when[lo];
    return tz->types[tz->idx[lo]];
}

cf_time_t cf_tz_local_to_utc(const cf_tz_t *tz, int64_t local)
{
    cf_time_t hi = local + S_OFF_MAX, end = INT64_MAX;
    cf_time_t best = 0, gap_t = 0, later_since = 0;
    int32_t later_off = 0;
    bool found = false, gap = false, have_later = false;
    /* 64 periods in 52 hours only in a hostile file; stop rather than spin. */
    for (int i = 0; i < 64; i++) {
        cf_time_t since;
        int32_t off = cf_tz_offset(tz, hi, &since);
        cf_time_t cand = local - off;
        if (cand >= since && cand < end) {
            best = cand; /* walking backwards: the last found is the earliest */
            found = true;
        }
        if (have_later && !gap && off < later_off && local >= later_since + off &&
            local < later_since + later_off) {
            gap = true;
            gap_t = local - off;
        }
        if (since == INT64_MIN || since <= local - S_OFF_MAX)
            break;
        have_later = true;
        later_off = off;
        later_since = since;
        end = since;
        hi = since - 1;
    }
    if (found)
        return best;
    if (gap)
        return gap_t;
    return local - cf_tz_offset(tz, local, NULL);
}

/* --------------------------------------------------------------- TZif --- */

void cf_tz_destroy(cf_tz_t **tz_p)
{
    if (!tz_p || !*tz_p)
        return;
    cf_tz_t *tz = *tz_p;
    free(tz->when);
    free(tz->idx);
    free(tz->types);
    free(tz);
    *tz_p = NULL;
}

static uint32_t s_be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t s_be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)s_be32(p) << 32 | s_be32(p + 4));
}

typedef struct {
    uint32_t isut, isstd, leap, time, type, chars;
} s_counts_t;

static int s_header(const unsigned char *p, size_t len, s_counts_t *c, int *version)
{
    if (len < 44 || memcmp(p, "TZif", 4) != 0)
        return -1;
    *version = p[4] == 0 ? 1 : p[4] >= '2' && p[4] <= '9' ? p[4] - '0' : -1;
    c->isut = s_be32(p + 20);
    c->isstd = s_be32(p + 24);
    c->leap = s_be32(p + 28);
    c->time = s_be32(p + 32);
    c->type = s_be32(p + 36);
    c->chars = s_be32(p + 40);
    return *version < 0 ? -1 : 0;
}

static uint64_t s_block_len(const s_counts_t *c, unsigned tsize)
{
    return (uint64_t)c->time * tsize + c->time + (uint64_t)c->type * 6 + c->chars +
           (uint64_t)c->leap * (tsize + 4) + c->isstd + c->isut;
}

int cf_tz_parse(const unsigned char *buf, size_t len, cf_tz_t **ret, char *why,
                size_t whylen)
{
    s_counts_t c;
    int version;
    unsigned tsize = 4;
    if (s_header(buf, len, &c, &version) != 0) {
        s_why(why, whylen, "not a TZif file");
        return CF_EBADREQ;
    }
    uint64_t blen = s_block_len(&c, 4);
    const unsigned char *p = buf + 44, *endp = buf + len;
    if (blen > (uint64_t)(endp - p)) {
        s_why(why, whylen, "truncated TZif file");
        return CF_EBADREQ;
    }
    if (version >= 2) {
        p += blen;
        int v2;
        if (s_header(p, (size_t)(endp - p), &c, &v2) != 0) {
            s_why(why, whylen, "bad TZif version 2+ header");
            return CF_EBADREQ;
        }
        p += 44;
        tsize = 8;
        blen = s_block_len(&c, 8);
        if (blen > (uint64_t)(endp - p)) {
            s_why(why, whylen, "truncated TZif file");
            return CF_EBADREQ;
        }
    }
    if (c.type < 1 || c.type > 256 || c.chars < 1 || (c.isstd && c.isstd != c.type) ||
        (c.isut && c.isut != c.type)) {
        s_why(why, whylen, "bad TZif counts");
        return CF_EBADREQ;
    }
    if (c.leap) {
        s_why(why, whylen, "leap-second (right/) zones are not supported");
        return CF_EBADREQ;
    }

    cf_tz_t *tz = calloc(1, sizeof *tz);
    if (!tz)
        return CF_EINTERNAL;
    tz->n = c.time;
    tz->ntypes = c.type;
    tz->types = calloc(c.type, sizeof *tz->types);
    if (c.time) {
        tz->when = calloc(c.time, sizeof *tz->when);
        tz->idx = calloc(c.time, 1);
    }
    if (!tz->types || (c.time && (!tz->when || !tz->idx))) {
        cf_tz_destroy(&tz);
        return CF_EINTERNAL;
    }
    const unsigned char *q = p;
    for (size_t i = 0; i < c.time; i++, q += tsize) {
        tz->when[i] = tsize == 8 ? s_be64(q) : (int32_t)s_be32(q);
        if (i && tz->when[i] <= tz->when[i - 1]) {
            s_why(why, whylen, "TZif transitions out of order");
            goto out_bad;
        }
    }
    for (size_t i = 0; i < c.time; i++, q++) {
        if (*q >= c.type) {
            s_why(why, whylen, "TZif transition to an unknown type");
            goto out_bad;
        }
        tz->idx[i] = *q;
    }
    for (size_t i = 0; i < c.type; i++, q += 6) {
        int32_t off = (int32_t)s_be32(q);
        if (off < -S_OFF_MAX || off > S_OFF_MAX || q[5] >= c.chars) {
            s_why(why, whylen, "bad TZif local time type");
            goto out_bad;
        }
        tz->types[i] = off;
    }
    p += blen;

    if (version >= 2) {
        /* Footer: "\n" POSIX-TZ "\n"; an empty rule means none. */
        if (p >= endp || *p != '\n') {
            s_why(why, whylen, "TZif footer missing");
            goto out_bad;
        }
        const unsigned char *nl = memchr(p + 1, '\n', (size_t)(endp - p - 1));
        if (!nl || nl - p - 1 > 128) {
            s_why(why, whylen, "bad TZif footer");
            goto out_bad;
        }
        char rule[130];
        memcpy(rule, p + 1, (size_t)(nl - p - 1));
        rule[nl - p - 1] = '\0';
        if (rule[0]) {
            if (strlen(rule) != (size_t)(nl - p - 1) || s_rule_parse(rule, &tz->rule) != 0 ||
                tz->rule.dst_off < -S_OFF_MAX || tz->rule.dst_off > S_OFF_MAX) {
                s_why(why, whylen, "bad TZif footer rule");
                goto out_bad;
            }
            tz->has_rule = true;
        }
    }
    *ret = tz;
    return 0;

out_bad:
    cf_tz_destroy(&tz);
    return CF_EBADREQ;
}

int cf_tz_from_posix(const char *rule, cf_tz_t **ret)
{
    s_rule_t r;
    if (!rule || strlen(rule) > 128 || s_rule_parse(rule, &r) != 0 ||
        r.dst_off < -S_OFF_MAX || r.dst_off > S_OFF_MAX)
        return CF_EBADREQ;
    cf_tz_t *tz = calloc(1, sizeof *tz);
    if (tz)
        tz->types = calloc(1, sizeof *tz->types);
    if (!tz || !tz->types) {
        cf_tz_destroy(&tz);
        return CF_EINTERNAL;
    }
    tz->ntypes = 1;
    tz->types[0] = r.std_off;
    tz->rule = r;
    tz->has_rule = true;
    *ret = tz;
    return 0;
}

/* A zone name is a relative path of tz database names, nothing more, so a
 * calendars file cannot read /etc/shadow through "../../etc/shadow". */
static bool s_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > 255 || name[0] == '/' || name[len - 1] == '/')
        return false;
    for (const char *p = name; *p; p++) {
        char ch = *p;
        if (!(s_isalpha(ch) || s_isdigit(ch) || ch == '_' || ch == '+' || ch == '-' ||
              ch == '.' || ch == '/'))
            return false;
        if (ch == '.' && (p == name || p[-1] == '/'))
            return false; /* no ".", "..", hidden files */
        if (ch == '/' && p[1] == '/')
            return false;
    }
    return true;
}

int cf_tz_load(const char *dir, const char *name, cf_tz_t **ret, char *why,
               size_t whylen)
{
    if (!s_name_ok(name)) {
        s_why(why, whylen, "not a time zone name");
        return CF_ENOTFOUND;
    }
    if (!dir) {
        dir = getenv("TZDIR");
        if (!dir || !*dir)
            dir = "/usr/share/zoneinfo";
    }
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        s_why(why, whylen, "path too long");
        return CF_ENOTFOUND;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        s_why(why, whylen, "%s: %s", path, strerror(e));
        return e == ENOENT || e == ENOTDIR ? CF_ENOTFOUND : CF_EBADREQ;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        s_why(why, whylen, "%s: not a regular file", path);
        return CF_ENOTFOUND;
    }
    unsigned char *buf = malloc(CF_TZ_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return CF_EINTERNAL;
    }
    size_t len = fread(buf, 1, CF_TZ_FILE_MAX + 1, f);
    bool err = ferror(f) != 0;
    fclose(f);
    int rc;
    if (err) {
        s_why(why, whylen, "%s: read error", path);
        rc = CF_EBADREQ;
    } else if (len > CF_TZ_FILE_MAX) {
        s_why(why, whylen, "%s: too large for a TZif file", path);
        rc = CF_EBADREQ;
    } else {
        rc = cf_tz_parse(buf, len, ret, why, whylen);
    }
    free(buf);
    return rc;
}

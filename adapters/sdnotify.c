/* sdnotify.c: the notify protocol of sd_notify(3), the watchdog, and the
 * journal's level prefixes - without libsystemd (sdnotify.h says why).
 *
 * Notify: $NOTIFY_SOCKET is a unix datagram socket's path, or its abstract
 * name with '@' for the leading NUL; each state is one datagram of
 * newline-separated KEY=VALUE lines.  One socket is made on first use and
 * kept.  Sends are MSG_DONTWAIT: the daemon's loop never waits on anyone,
 * systemd included; a lost WATCHDOG=1 is followed by another at half the
 * interval, well before systemd would act.
 *
 * Levels: journald reads a "<N>" at the start of a stderr line as its
 * syslog priority (sd-daemon(3)).  Rather than change every fprintf of
 * claimflowd (and the workflow loader's diagnostics printer, which takes a
 * FILE *), stderr is swapped for a fopencookie stream that classifies each
 * complete line by the prefixes in s_levels and writes it, prefixed, to
 * file descriptor 2 in one write(2).  glibc documents stderr as an ordinary
 * variable that may be assigned.  The alternative of a cf_log(priority, ...)
 * call at every site was rejected for now: it would touch every error path
 * of claimflowd.c while the prefixes already carry the level.
 */
#include "sdnotify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct cf_sd {
    char *path;                  /* $NOTIFY_SOCKET, or NULL */
    int fd;                      /* made on first send; -1 before */
    uint64_t watchdog_usec;      /* 0: off */
    uint64_t next_ping_us;       /* monotonic; 0: at the first tick */
    uint64_t failed;             /* watchdog pings not sent */
};

static uint64_t s_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* A decimal without sign or suffix, > 0; 0 when s is not one. */
static uint64_t s_env_u64(const char *name)
{
    const char *s = getenv(name);
    if (!s || !*s)
        return 0;
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    return v;
}

cf_sd_t *cf_sd_new(void)
{
    cf_sd_t *sd = calloc(1, sizeof *sd);
    if (!sd)
        return NULL;
    sd->fd = -1;
    const char *ns = getenv("NOTIFY_SOCKET");
    if (ns && *ns && !(sd->path = strdup(ns))) {
        free(sd);
        return NULL;
    }
    uint64_t usec = s_env_u64("WATCHDOG_USEC");
    const char *wpid = getenv("WATCHDOG_PID");
    /* The watchdog is for the process systemd names (a child inheriting the
     * variables must not feed it). */
    if (usec && (!wpid || s_env_u64("WATCHDOG_PID") == (uint64_t)getpid()))
        sd->watchdog_usec = usec;
    return sd;
}

void cf_sd_destroy(cf_sd_t **sd_p)
{
    if (!sd_p || !*sd_p)
        return;
    cf_sd_t *sd = *sd_p;
    if (sd->fd >= 0)
        close(sd->fd);
    free(sd->path);
    free(sd);
    *sd_p = NULL;
}

int cf_sd_notify(cf_sd_t *sd, const char *state, cf_error_t *reterr)
{
    if (!sd || !sd->path)
        return 0;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(sd->path);
    if ((sd->path[0] != '/' && sd->path[0] != '@') || len < 2 ||
        len >= sizeof sa.sun_path)
        return cf_error_set(reterr, CF_EBADREQ, "NOTIFY_SOCKET: not an absolute "
                            "path or an abstract socket name");
    memcpy(sa.sun_path, sd->path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    if (sd->fd < 0 &&
        (sd->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "NOTIFY_SOCKET: %s", strerror(errno));
    ssize_t n = sendto(sd->fd, state, strlen(state), MSG_DONTWAIT | MSG_NOSIGNAL,
                       (const struct sockaddr *)&sa, salen);
    if (n < 0)
        return cf_error_set(reterr, CF_EUNAVAIL, "NOTIFY_SOCKET: %s", strerror(errno));
    return 0;
}

uint64_t cf_sd_watchdog_usec(const cf_sd_t *sd)
{
    return sd ? sd->watchdog_usec : 0;
}

long cf_sd_watchdog_tick(cf_sd_t *sd, long timeout_ms)
{
    if (!sd || !sd->watchdog_usec)
        return timeout_ms;
    uint64_t now = s_mono_us();
    if (now >= sd->next_ping_us) {
        if (cf_sd_notify(sd, "WATCHDOG=1", NULL) < 0)
            sd->failed++;
        sd->next_ping_us = now + sd->watchdog_usec / 2;
    }
    uint64_t wait_ms = (sd->next_ping_us - now + 999) / 1000;
    return timeout_ms < 0 || (uint64_t)timeout_ms > wait_ms ? (long)wait_ms : timeout_ms;
}

/* ------------------------------------------------------- journal levels --- */
bool cf_sd_stderr_is_journal(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    char tail;
    if (!js || sscanf(js, "%llu:%llu%c", &dev, &ino, &tail) != 2)
        return false;
    struct stat st;
    if (fstat(STDERR_FILENO, &st) < 0)
        return false;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* The daemon's lines and their syslog priorities, first match wins
 * (docs/operations.md, Logs).  Anything else is an error: the lines without
 * a level word are start-up failures and the workflow loader's diagnostics. */
static const struct {
    const char *prefix;
    char level;
} s_levels[] = {
    {"claimflowd: error:", '3'},
    {"claimflowd: warning:", '4'},
    {"claimflowd: stopped (error)", '3'},
    {"claimflowd: stopped (", '6'},
    {"claimflowd: started ", '6'},
    {"claimflowd: the store takes writes again", '5'},
};

#define CF_SD_LINE_MAX 4096

typedef struct {
    char buf[CF_SD_LINE_MAX + 4];    /* "<N>" + the line + '\n' */
    size_t len;                      /* bytes of the line so far, after "<N>" */
} s_journal_t;

static char s_level_of(const char *line, size_t len)
{
    for (size_t i = 0; i < sizeof s_levels / sizeof s_levels[0]; i++) {
        size_t pl = strlen(s_levels[i].prefix);
        if (len >= pl && memcmp(line, s_levels[i].prefix, pl) == 0)
            return s_levels[i].level;
    }
    return '3';
}

static void s_write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;                  /* nowhere else to report it */
        p += w;
        n -= (size_t)w;
    }
}

static void s_journal_flush_line(s_journal_t *j)
{
    char *line = j->buf + 3;
    j->buf[0] = '<';
    j->buf[1] = s_level_of(line, j->len);
    j->buf[2] = '>';
    line[j->len] = '\n';
    s_write_all(j->buf, j->len + 4);
    j->len = 0;
}

static ssize_t s_journal_write(void *cookie, const char *data, size_t size)
{
    s_journal_t *j = cookie;
    for (size_t i = 0; i < size; i++) {
        if (data[i] == '\n') {
            s_journal_flush_line(j);
            continue;
        }
        if (j->len == CF_SD_LINE_MAX)     /* an overlong line goes in pieces */
            s_journal_flush_line(j);
        j->buf[3 + j->len++] = data[i];
    }
    return (ssize_t)size;
}

static int s_journal_close(void *cookie)
{
    s_journal_t *j = cookie;
    if (j->len)
        s_journal_flush_line(j);
    return 0;
}

/* One per process, as stderr is; static so it needs no allocation (and no
 * leak checker wonders who owns it after exit). */
static s_journal_t s_journal;
static FILE *s_journal_file;

int cf_sd_journal_stderr(void)
{
    if (!cf_sd_stderr_is_journal())
        return 0;
    cookie_io_functions_t io = {.write = s_journal_write, .close = s_journal_close};
    FILE *f = fopencookie(&s_journal, "w", io);
    if (!f)
        return CF_EINTERNAL;
    setvbuf(f, NULL, _IOLBF, 0);
    fflush(stderr);
    s_journal_file = f;
    stderr = f;
    return 0;
}

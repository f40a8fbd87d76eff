/* sdnotify.h: telling systemd how the daemon is doing (Type=notify), the
 * watchdog, and log lines the journal files by level.
 *
 * The service-manager side of sd_notify(3): READY=1 once claimflowd serves,
 * STOPPING=1 when it begins to stop, WATCHDOG=1 at half the interval systemd
 * asks for (WatchdogSec=, passed as $WATCHDOG_USEC).  Outside systemd (no
 * $NOTIFY_SOCKET) every call is a no-op, so the daemon calls them
 * unconditionally.
 *
 * Why not libsystemd: the protocol is one datagram on a unix socket, which
 * systemd documents as a stable interface for exactly this reimplementation
 * (sd_notify(3), NOTES); libsystemd-dev would add a dependency of the daemon
 * on the whole of libsystemd0 (and, on a Debian 12 whose systemd lags the
 * archive, an upgrade of systemd itself just to build).  What is not here:
 * file-descriptor passing (FDSTORE) and vsock addresses (systemd 253+).
 */
#ifndef CF_SDNOTIFY_H
#define CF_SDNOTIFY_H

#include <stdbool.h>
#include <stdint.h>

#include "cf_err.h"

typedef struct cf_sd cf_sd_t;

/* Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID once (the watchdog
 * is on only when WATCHDOG_PID is unset or names this process).  Returns a
 * handle, or NULL when out of memory (every call below accepts NULL as
 * "not under systemd").  A malformed variable counts as absent. */
cf_sd_t *cf_sd_new(void);

/* Free; accepts NULL and sets *sd_p to NULL. */
void cf_sd_destroy(cf_sd_t **sd_p);

/* Send state (e.g. "READY=1\nSTATUS=serving") as one datagram.  0 when sent
 * or when there is no $NOTIFY_SOCKET; CF_EUNAVAIL when the socket cannot be
 * reached (reterr->message "NOTIFY_SOCKET: why"); CF_EBADREQ when
 * $NOTIFY_SOCKET is not an absolute path or an abstract name ('@...'). */
int cf_sd_notify(cf_sd_t *sd, const char *state, cf_error_t *reterr);

/* The watchdog interval in microseconds, or 0 when off. */
uint64_t cf_sd_watchdog_usec(const cf_sd_t *sd);

/* Call once per loop iteration with the poll timeout the loop wants (ms):
 * sends WATCHDOG=1 when one is due (every half interval) and returns the
 * timeout shortened so the next one is not late.  Without a watchdog,
 * returns timeout_ms unchanged.  A failed send is counted, not returned:
 * the loop has nothing better to do than try again next time. */
long cf_sd_watchdog_tick(cf_sd_t *sd, long timeout_ms);

/* True when stderr is the journal: $JOURNAL_STREAM ("DEV:INODE") names the
 * file stderr is open on (systemd.exec(5)).  A stderr redirected elsewhere
 * by a wrapper keeps plain lines. */
bool cf_sd_stderr_is_journal(void);

/* When stderr is the journal, replace stderr with a stream that starts each
 * line with its syslog priority ("<3>" error, "<4>" warning, "<6>" info)
 * so journald files it by level (sd-daemon(3)).  The priority comes from
 * the line, by the prefixes docs/operations.md gives the daemon's lines
 * (`claimflowd: error:`, `claimflowd: warning:`, `claimflowd: started`, ...;
 * an unknown line is an error, the safe side for a line nobody classified).
 * A no-op otherwise.  0, or CF_EINTERNAL when the stream cannot be made
 * (stderr is left as it was). */
int cf_sd_journal_stderr(void);

#endif

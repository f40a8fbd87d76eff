/* http.h: /metrics, /healthz and /readyz over HTTP (libmicrohttpd).
 *
 * Off unless the config says `http: {listen: ADDRESS:PORT}`.  The server
 * runs in libmicrohttpd's own thread and answers from a cf_metrics_t only
 * (metrics.h): it never touches the engine or the store.  GET and HEAD
 * only; every reply is text/plain.
 *
 *   /metrics  200, the latest snapshot in Prometheus' text format (0.0.4)
 *   /healthz  200 "ok", or 503 and why (the main loop is stuck)
 *   /readyz   200 "ready", or 503 and why (the store refuses writes)
 *   other     404; a method other than GET/HEAD 405
 */
#ifndef CF_HTTP_H
#define CF_HTTP_H

#include <stddef.h>
#include <sys/socket.h>

#include "cf_err.h"
#include "metrics.h"

typedef struct cf_http cf_http_t;

/* Listen on addr (AF_INET or AF_INET6; port 0 picks a free one) and serve
 * from m, which must outlive the server.  0 and a running server in *ret,
 * with the address bound ("127.0.0.1:9464", "[::1]:9464") in bound; or
 * CF_EUNAVAIL when it cannot listen (reterr->message says why, e.g. the
 * port is taken), CF_EINTERNAL out of memory. */
int cf_http_start(const struct sockaddr_storage *addr, cf_metrics_t *m, cf_http_t **ret,
                  char *bound, size_t blen, cf_error_t *reterr);

/* Stop serving (waits for the thread) and free; accepts NULL and sets
 * *h_p to NULL. */
void cf_http_stop(cf_http_t **h_p);

#endif

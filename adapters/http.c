/* http.c: the HTTP side of metrics.h, on libmicrohttpd.
 *
 * libmicrohttpd's internal polling thread (MHD_USE_AUTO_INTERNAL_THREAD):
 * one thread, whatever poll mechanism the library finds best, started and
 * joined by MHD_start_daemon/MHD_stop_daemon.  A thread per connection was
 * rejected: a scraper and a load balancer are a handful of short requests.
 * Connections are capped (CF_HTTP_MAX_CONN) and time out after
 * CF_HTTP_TIMEOUT_S, so a client that opens sockets and says nothing
 * cannot exhaust the daemon's descriptors.
 *
 * libmicrohttpd logs nothing unless asked (MHD_USE_ERROR_LOG is not set):
 * the daemon's stderr stays the daemon's.
 */
#include "http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#define CF_HTTP_MAX_CONN  32
#define CF_HTTP_TIMEOUT_S 10

struct cf_http {
    struct MHD_Daemon *mhd;
    cf_metrics_t *metrics;
};

#define S_TEXT "text/plain; charset=utf-8"
#define S_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"

static enum MHD_Result s_reply(struct MHD_Connection *c, unsigned status, const char *type,
                               char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(body);
        return MHD_NO;               /* libmicrohttpd closes the connection */
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* One line and a newline, copied by libmicrohttpd. */
static enum MHD_Result s_line(struct MHD_Connection *c, unsigned status, const char *line)
{
    char buf[200];
    int n = snprintf(buf, sizeof buf, "%s\n", line);
    if (n < 0 || (size_t)n >= sizeof buf)
        n = (int)sizeof buf - 1;
    return s_reply(c, status, S_TEXT, buf, (size_t)n, MHD_RESPMEM_MUST_COPY);
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version,
                                const char *upload, size_t *upload_size, void **state)
{
    cf_http_t *h = cls;
    (void)version;
    (void)upload;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return s_line(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    /* A GET with a body: libmicrohttpd hands it over in pieces; skip them. */
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    (void)state;
    char line[160];
    if (strcmp(url, "/metrics") == 0) {
        char *text;
        size_t len;
        if (cf_metrics_render(h->metrics, &text, &len) < 0)
            return s_line(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return s_reply(c, MHD_HTTP_OK, S_PROMETHEUS, text, len, MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0) {
        int status = cf_metrics_health(h->metrics, line, sizeof line);
        return s_line(c, (unsigned)status, line);
    }
    if (strcmp(url, "/readyz") == 0) {
        int status = cf_metrics_readiness(h->metrics, line, sizeof line);
        return s_line(c, (unsigned)status, line);
    }
    return s_line(c, MHD_HTTP_NOT_FOUND, "not found: /metrics, /healthz, /readyz");
}

int cf_http_start(const struct sockaddr_storage *addr, cf_metrics_t *m, cf_http_t **ret,
                  char *bound, size_t blen, cf_error_t *reterr)
{
    cf_http_t *h = calloc(1, sizeof *h);
    if (!h)
        return cf_error_set(reterr, CF_EINTERNAL, "out of memory");
    h->metrics = m;
    bool v6 = addr->ss_family == AF_INET6;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | (v6 ? MHD_USE_IPv6 : 0);
    errno = 0;
    h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, s_handle, h,
                              MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)addr,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)CF_HTTP_MAX_CONN,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CF_HTTP_TIMEOUT_S,
                              MHD_OPTION_END);
    char host[INET6_ADDRSTRLEN] = "?";
    if (v6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)addr)->sin6_addr, host, sizeof host);
    else
        inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, host, sizeof host);
    if (!h->mhd) {
        int err = errno;
        free(h);
        return cf_error_set(reterr, CF_EUNAVAIL, "cannot listen for HTTP on %s%s%s:%u: %s",
                            v6 ? "[" : "", host, v6 ? "]" : "",
                            ntohs(v6 ? ((const struct sockaddr_in6 *)addr)->sin6_port
                                     : ((const struct sockaddr_in *)addr)->sin_port),
                            err ? strerror(err) : "libmicrohttpd refused");
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(bound, blen, "%s%s%s:%u", v6 ? "[" : "", host, v6 ? "]" : "",
             info ? (unsigned)info->port : 0u);
    *ret = h;
    return 0;
}

void cf_http_stop(cf_http_t **h_p)
{
    if (!h_p || !*h_p)
        return;
    MHD_stop_daemon((*h_p)->mhd);
    free(*h_p);
    *h_p = NULL;
}

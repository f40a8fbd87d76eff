/* metrics.h: claimflowd's numbers, for /metrics, /healthz and /readyz.
 *
 * Two sides, two threads.  The daemon's main loop owns every number: it
 * counts the replies it sends, times its engine runs, copies in what the
 * engine's own `stats` op says, and now and then publishes all of it as
 * one immutable snapshot.  The HTTP thread (http.c) reads only published
 * snapshots: it never sees the engine, the store or a number being counted.
 *
 *   main loop                        HTTP thread
 *   cf_metrics_request/_batch/...
 *   cf_metrics_stats(stats reply)
 *   cf_metrics_publish()  --mutex-->  cf_metrics_render()  (/metrics)
 *   cf_metrics_beat()     --atomic->  cf_metrics_health()  (/healthz)
 *                                     cf_metrics_readiness() (/readyz)
 *
 * Functions marked "main loop" must be called from one thread only (the one
 * that made the object); the others from any thread.
 *
 * Only counts and the names the daemon itself defines are kept: endpoint,
 * op (one of the protocol's, else "unknown"), error code, workflow, state
 * and flag names from the workflow files.  Never a person id, a claim id or
 * anything a request carried.
 */
#ifndef CF_METRICS_H
#define CF_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cf_err.h"
#include "engine.h"

typedef struct cf_metrics cf_metrics_t;

/* A new, empty set of numbers with a first (empty) snapshot published.
 * version and start_time (Unix seconds) label the page.  NULL when out of
 * memory.  Free with cf_metrics_destroy once the HTTP thread is stopped. */
cf_metrics_t *cf_metrics_new(const char *version, int64_t start_time);

/* Free; accepts NULL and sets *m_p to NULL. */
void cf_metrics_destroy(cf_metrics_t **m_p);

/* ------------------------------------------------------ main loop only --- */
/* One reply sent (or dropped) on endpoint ep for op (NULL, or a name not
 * in the protocol: counted as "unknown"), with the reply's code (0 or a
 * CF_E*) and size in bytes. */
void cf_metrics_request(cf_metrics_t *m, cf_endpoint_t ep, const char *op, int code,
                        size_t reply_bytes);

/* One engine run of n requests that took seconds (apply, commit, fsync);
 * failed: the store refused writes in it (a reply `unavailable`, or the
 * commit failed). */
void cf_metrics_batch(cf_metrics_t *m, size_t n, double seconds, bool failed);

/* n events published, bytes in all (topic and body frames). */
void cf_metrics_events(cf_metrics_t *m, size_t n, size_t bytes);

/* n timers fired. */
void cf_metrics_fired(cf_metrics_t *m, size_t n);

/* Replies not delivered, in all since start (the daemon's own count). */
void cf_metrics_dropped(cf_metrics_t *m, uint64_t total);

/* Whether the store takes writes (the last write was committed). */
void cf_metrics_writable(cf_metrics_t *m, bool writable);

/* The size of the store's data file, bytes. */
void cf_metrics_store_bytes(cf_metrics_t *m, uint64_t bytes);

/* Take the claims, flags and timers of a `stats` reply frame (protocol.md)
 * that took seconds to run, at engine time now (Unix seconds).  0, or
 * CF_EBADREQ when the frame is not an ok stats reply (the previous numbers
 * stay; the failure is counted), CF_EINTERNAL out of memory. */
int cf_metrics_stats(cf_metrics_t *m, const void *reply, size_t len, double seconds,
                     int64_t now);

/* The main loop is alive: call once per iteration (an atomic store). */
void cf_metrics_beat(cf_metrics_t *m);

/* Publish the numbers as they are now.  0, or CF_EINTERNAL out of memory
 * (the previous snapshot stays published). */
int cf_metrics_publish(cf_metrics_t *m);

/* ------------------------------------------------------- any thread --- */
/* The latest snapshot in Prometheus' text format (0.0.4).  0 and a string
 * in *ret (NUL-terminated, *ret_len bytes; caller frees with free()), or
 * CF_EINTERNAL out of memory. */
int cf_metrics_render(cf_metrics_t *m, char **ret, size_t *ret_len);

/* Liveness: 200 and "ok", or 503 and why (the main loop has not come round
 * for more than CF_METRICS_STALL_S seconds).  line gets one line without
 * newline. */
#define CF_METRICS_STALL_S 10
int cf_metrics_health(cf_metrics_t *m, char *line, size_t len);

/* Readiness: 200 and "ready", or 503 and why (the store refuses writes). */
int cf_metrics_readiness(cf_metrics_t *m, char *line, size_t len);

#endif

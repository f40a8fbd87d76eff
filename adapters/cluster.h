/* cluster.h: one claimflowd node of a replicated cluster (docs/CLUSTER.md).
 *
 * A node is a follower or the leader.  A follower holds its LMDB store
 * itself, applies the replicated log (replog.h) to it in order, answers
 * `ping` and refuses everything else with `not_leader`, and campaigns when
 * there is no leader and it has applied the whole log.  The leader's store
 * belongs to the engine, whose every commit passes cf_cluster_hook: the
 * batch's write set is appended to the log first, and only if that append
 * succeeded does LMDB commit and the replies go out.
 *
 * The daemon drives it: cf_cluster_tick on every loop iteration, which may
 * say PROMOTE (the node won: its store is closed, open the engine on the
 * data directory with cf_cluster_hook) or DEMOTE (close the engine, then
 * cf_cluster_follow).  The leader serves only while its lease holds
 * (cf_cluster_serving); a lease it cannot renew, or an append that fails,
 * demotes it at the next tick.
 */
#ifndef CF_CLUSTER_H
#define CF_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "proto.h"
#include "store.h"

typedef struct cf_cluster cf_cluster_t;

typedef struct {
    const cf_cluster_conf_t *conf;
    const char *node;                    /* this node's name */
    const char *data_dir;
    size_t map_size;
    bool no_grow;
    /* What this node publishes: its endpoints as bound, and the digest of
     * its workflows directory (every node must run the same set). */
    const char *portal, *operator, *events;
    const char *workflows_digest;
    void (*log)(const char *line);       /* one line, no newline */
} cf_cluster_opts_t;

/* Open the log, open the store, apply every batch of the log, publish this
 * node.  0, or CF_EUNAVAIL with the reason (etcd unreachable; the log no
 * longer holds the batches after the store's; the store holds batches the
 * log does not; the leader runs another workflow set). */
int cf_cluster_open(const cf_cluster_opts_t *o, cf_cluster_t **ret, cf_error_t *reterr);
void cf_cluster_close(cf_cluster_t **c_p);

enum { CF_CLUSTER_NONE, CF_CLUSTER_PROMOTE, CF_CLUSTER_DEMOTE, CF_CLUSTER_FATAL };

/* Do what is due at now_us (monotonic µs): as follower apply new batches,
 * learn the leader, campaign; as leader renew the lease, trim the log.
 * Returns CF_CLUSTER_*; FATAL with the reason in *reterr (a batch that
 * cannot be applied). */
int cf_cluster_tick(cf_cluster_t *c, int64_t now_us, cf_error_t *reterr);
/* Milliseconds until the next tick has something to do. */
long cf_cluster_wait_ms(const cf_cluster_t *c, int64_t now_us);

/* Stop leading now (the engine could not open): the daemon closes the
 * engine and calls cf_cluster_follow. */
void cf_cluster_step_down(cf_cluster_t *c, const char *why);

/* The SHA-256 (hex) of a workflows directory's *.yaml files, names and
 * contents in name order: nodes of one cluster must agree on it. */
int cf_cluster_digest(const char *dir, char hex[65], cf_error_t *reterr);

/* After DEMOTE and closing the engine: reopen the store as a follower,
 * taking back the batches it committed as leader that the log does not
 * hold (the stage's replies for them must be dropped first:
 * cf_stage_drop after cf_cluster_acked). */
int cf_cluster_follow(cf_cluster_t *c, cf_error_t *reterr);

bool cf_cluster_is_leader(const cf_cluster_t *c);
/* The leader failed to append a batch (it steps down at the next tick):
 * the batch's `unavailable` replies are the log's, not the disk's. */
bool cf_cluster_lost(const cf_cluster_t *c);
/* The leader may answer requests: its lease holds at now_us. */
bool cf_cluster_serving(const cf_cluster_t *c, int64_t now_us);

/* The engine's commit hook while leader (store.h): append, then commit. */
int cf_cluster_hook(void *ctx, uint64_t seq, const cf_wset_t *ws);

/* The leader's appender (cluster.c): readable when batches reached the log
 * (or an append failed); poll it with the sockets. */
int cf_cluster_fd(const cf_cluster_t *c);
/* Drain the fd: the last batch the log holds (the stage may release up to
 * it; the store may drop undo records up to it).  A failed append makes
 * the next tick DEMOTE. */
uint64_t cf_cluster_acked(cf_cluster_t *c);
/* Stopping: let the appender finish what is queued; the last batch the log
 * holds. */
uint64_t cf_cluster_drain(cf_cluster_t *c);

/* The view `ping` reports (borrowed; kept current by the tick). */
const cf_cluster_view_t *cf_cluster_view(const cf_cluster_t *c);
/* The batch sequence this node has applied (follower) - the leader's is
 * the engine's. */
uint64_t cf_cluster_seq(const cf_cluster_t *c);

#endif

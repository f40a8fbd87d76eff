/* nodes.h: the claimflowd nodes claimctl may talk to - a comma-separated
 * list of endpoints (`--endpoint a,b,c`, `--events a,b,c`) and which one
 * is believed to lead a cluster (docs/claimctl.md, "Clusters").
 *
 * A request goes to the current node: initially the first of the list,
 * later the last one known to lead.  A `not_leader` reply names the
 * leader's endpoint (cf_nodes_follow makes it current, inside the list or
 * not); a node that does not answer, or a follower that knows no leader,
 * moves the request on to the next node of the list (cf_nodes_next).
 * One endpoint is a list of one: what claimctl always did.
 *
 * Pure bookkeeping: no sockets, no printing.
 */
#ifndef CF_CLI_NODES_H
#define CF_CLI_NODES_H

#include <stdbool.h>
#include <stddef.h>

#define CF_NODES_MAX 16        /* endpoints in one list */
#define CF_NODES_EPLEN 256     /* the longest endpoint, NUL included */

typedef struct {
    char ep[CF_NODES_MAX][CF_NODES_EPLEN];
    size_t n;                  /* endpoints in the list, >= 1 once parsed */
    size_t cur;                /* the list's current index */
    char leader[CF_NODES_EPLEN];   /* a leader outside the list, or "" */
} cf_nodes_t;

/* Parse list ("URL" or "URL,URL,..."; spaces around a URL are dropped)
 * into *ret.  0, or -1 with a reason for a person in why (an empty entry,
 * more than CF_NODES_MAX, an entry longer than CF_NODES_EPLEN - 1).
 * Endpoints are not checked here: ZeroMQ does that when connecting. */
int cf_nodes_parse(const char *list, cf_nodes_t *ret, char *why, size_t whylen);

/* The endpoint a request goes to now.  Borrowed: valid until the next
 * cf_nodes_* call on n. */
const char *cf_nodes_current(const cf_nodes_t *n);

/* The node answered not_leader naming the leader's endpoint `leader` (NULL
 * or "" when it knows none).  A leader in the list becomes current; one
 * outside it (another address for the same node, or a node added later) is
 * tried as it is; none, or a wildcard bind address (`*`, `0.0.0.0`,
 * `[::]` as the host) that names no host to connect to, moves on to the next
 * node of the list.  Returns true when the current endpoint changed. */
bool cf_nodes_follow(cf_nodes_t *n, const char *leader);

/* The current node did not answer: the next of the list (after a leader
 * outside the list, the list's current one again).  Returns true when the
 * list went round to its first node again: every node had its turn. */
bool cf_nodes_next(cf_nodes_t *n);

/* The index of ep in the list, or -1. */
int cf_nodes_find(const cf_nodes_t *n, const char *ep);

/* A wildcard bind address (no host a client can connect to). */
bool cf_nodes_wildcard(const char *ep);

#endif

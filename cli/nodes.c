/* nodes.c: a list of claimflowd endpoints and the node believed to lead
 * (nodes.h).
 *
 * Fixed arrays rather than allocations: a cluster has 3 or 5 nodes, a list
 * of 16 is already more than any deployment needs, and a struct that holds
 * its strings needs no cleanup on any of claimctl's exit paths.
 *
 * Following a leader outside the list (the `leader.operator` a follower
 * read from etcd) was kept rather than insisting on the list: the list is
 * how claimctl starts, the cluster's own word is what it follows.  Only a
 * wildcard bind address is not followed - it names no host.
 */
#include "nodes.h"

#include <stdio.h>
#include <string.h>

static bool s_space(char c) { return c == ' ' || c == '\t'; }

int cf_nodes_parse(const char *list, cf_nodes_t *ret, char *why, size_t whylen)
{
    memset(ret, 0, sizeof *ret);
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        while (p < end && s_space(*p))
            p++;
        while (end > p && s_space(end[-1]))
            end--;
        size_t len = (size_t)(end - p);
        if (len == 0) {
            snprintf(why, whylen, "an empty endpoint in the list '%s'", list);
            return -1;
        }
        if (ret->n == CF_NODES_MAX) {
            snprintf(why, whylen, "more than %d endpoints in the list", CF_NODES_MAX);
            return -1;
        }
        if (len >= CF_NODES_EPLEN) {
            snprintf(why, whylen, "an endpoint longer than %d bytes", CF_NODES_EPLEN - 1);
            return -1;
        }
        memcpy(ret->ep[ret->n], p, len);
        ret->ep[ret->n][len] = '\0';
        ret->n++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

const char *cf_nodes_current(const cf_nodes_t *n)
{
    return n->leader[0] ? n->leader : n->ep[n->cur];
}

int cf_nodes_find(const cf_nodes_t *n, const char *ep)
{
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->ep[i], ep) == 0)
            return (int)i;
    return -1;
}

bool cf_nodes_wildcard(const char *ep)
{
    const char *host = strstr(ep, "://");
    if (!host)
        return false;
    host += 3;
    return strncmp(host, "*:", 2) == 0 || strncmp(host, "0.0.0.0:", 8) == 0 ||
           strncmp(host, "[::]:", 5) == 0 || strncmp(host, "[*]:", 4) == 0;
}

bool cf_nodes_follow(cf_nodes_t *n, const char *leader)
{
    const char *before = cf_nodes_current(n);
    char was[CF_NODES_EPLEN];
    snprintf(was, sizeof was, "%s", before);
    if (!leader || !*leader || cf_nodes_wildcard(leader) || strlen(leader) >= CF_NODES_EPLEN) {
        cf_nodes_next(n);
    } else {
        int i = cf_nodes_find(n, leader);
        if (i >= 0) {
            n->cur = (size_t)i;
            n->leader[0] = '\0';
        } else {
            snprintf(n->leader, sizeof n->leader, "%s", leader);
        }
    }
    return strcmp(was, cf_nodes_current(n)) != 0;
}

bool cf_nodes_next(cf_nodes_t *n)
{
    if (n->leader[0]) {
        n->leader[0] = '\0';
        return false;
    }
    n->cur = (n->cur + 1) % n->n;
    return n->cur == 0;
}

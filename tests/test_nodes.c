/* test_nodes: claimctl's list of cluster nodes (cli/nodes.c) - parsing
 * `--endpoint a,b,c`, following a leader named by not_leader (inside the
 * list, outside it, a wildcard bind address, none), and going round. */
#include <string.h>

#include "../cli/nodes.h"
#include "cf_test.h"

static void test_parse(void)
{
    cf_nodes_t n;
    char why[160];
    CF_ASSERT_INT_EQ(cf_nodes_parse("tcp://127.0.0.1:7402", &n, why, sizeof why), 0);
    CF_ASSERT_INT_EQ((int)n.n, 1);
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://127.0.0.1:7402");
    CF_ASSERT_INT_EQ(cf_nodes_parse(" tcp://a:1 ,tcp://b:2,\ttcp://c:3 ", &n, why, sizeof why), 0);
    CF_ASSERT_INT_EQ((int)n.n, 3);
    CF_ASSERT_STR_EQ(n.ep[0], "tcp://a:1");
    CF_ASSERT_STR_EQ(n.ep[1], "tcp://b:2");
    CF_ASSERT_STR_EQ(n.ep[2], "tcp://c:3");
    CF_ASSERT_INT_EQ(cf_nodes_find(&n, "tcp://c:3"), 2);
    CF_ASSERT_INT_EQ(cf_nodes_find(&n, "tcp://d:4"), -1);

    CF_ASSERT_INT_EQ(cf_nodes_parse("tcp://a:1,,tcp://b:2", &n, why, sizeof why), -1);
    CF_ASSERT_STR_EQ(why, "an empty endpoint in the list 'tcp://a:1,,tcp://b:2'");
    CF_ASSERT_INT_EQ(cf_nodes_parse("tcp://a:1,", &n, why, sizeof why), -1);
    CF_ASSERT_INT_EQ(cf_nodes_parse("", &n, why, sizeof why), -1);
    char many[40 * 17] = "";
    for (int i = 0; i < 17; i++)
        strcat(many, i ? ",tcp://x:1" : "tcp://x:1");
    CF_ASSERT_INT_EQ(cf_nodes_parse(many, &n, why, sizeof why), -1);
    CF_ASSERT_STR_EQ(why, "more than 16 endpoints in the list");
    char longest[CF_NODES_EPLEN + 1];
    memset(longest, 'x', CF_NODES_EPLEN);
    longest[CF_NODES_EPLEN] = '\0';
    CF_ASSERT_INT_EQ(cf_nodes_parse(longest, &n, why, sizeof why), -1);
    CF_ASSERT_STR_EQ(why, "an endpoint longer than 255 bytes");
    longest[CF_NODES_EPLEN - 1] = '\0';
    CF_ASSERT_INT_EQ(cf_nodes_parse(longest, &n, why, sizeof why), 0);
}

static void test_follow_and_next(void)
{
    cf_nodes_t n;
    char why[160];
    CF_ASSERT_INT_EQ(cf_nodes_parse("tcp://a:1,tcp://b:2,tcp://c:3", &n, why, sizeof why), 0);
    /* A leader in the list becomes current. */
    CF_ASSERT(cf_nodes_follow(&n, "tcp://c:3"));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://c:3");
    CF_ASSERT(!cf_nodes_follow(&n, "tcp://c:3"));
    /* Round the list: true when it comes back to the first. */
    CF_ASSERT(cf_nodes_next(&n));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://a:1");
    CF_ASSERT(!cf_nodes_next(&n));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://b:2");
    /* One outside the list is tried as named; passing it over goes back
     * to the list where it was. */
    CF_ASSERT(cf_nodes_follow(&n, "tcp://d:4"));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://d:4");
    CF_ASSERT(!cf_nodes_next(&n));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://b:2");
    /* None, or a wildcard bind address: the next of the list. */
    CF_ASSERT(cf_nodes_follow(&n, NULL));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://c:3");
    CF_ASSERT(cf_nodes_follow(&n, "tcp://*:7402"));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://a:1");
    CF_ASSERT(cf_nodes_follow(&n, ""));
    CF_ASSERT_STR_EQ(cf_nodes_current(&n), "tcp://b:2");
}

static void test_wildcard(void)
{
    CF_ASSERT(cf_nodes_wildcard("tcp://*:7402"));
    CF_ASSERT(cf_nodes_wildcard("tcp://0.0.0.0:7402"));
    CF_ASSERT(cf_nodes_wildcard("tcp://[::]:7402"));
    CF_ASSERT(!cf_nodes_wildcard("tcp://127.0.0.1:7402"));
    CF_ASSERT(!cf_nodes_wildcard("tcp://claims-1.example:7402"));
    CF_ASSERT(!cf_nodes_wildcard("ipc:///run/claimflow/operator"));
    CF_ASSERT(!cf_nodes_wildcard("no scheme"));
}

int main(void)
{
    CF_RUN(test_parse);
    CF_RUN(test_follow_and_next);
    CF_RUN(test_wildcard);
    return cf_test_done();
}

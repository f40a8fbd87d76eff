"""test_cluster_cli.py: claimctl and the Python client module against a
real cluster - three etcd members and three claimflowd nodes on loopback
(cluster.py) - with the leader killed (kill -9) under them.

- `claimctl cluster` shows one leader and two followers with the leader's
  epoch and each node's seq as its own ping says; `--json` parses;
- a claimctl command given the three endpoints, a follower first, follows
  `not_leader` to the leader; after the leader is killed the same command
  line (same --id) succeeds against the new leader, exactly once;
- `claimctl watch --after S --count N --json` across a leader kill prints
  exactly the change feed's events after S: no gap, no duplicate; on a
  single daemon a live start prints consecutive feed events;
- claimflow.ClusterClient (clients/python/claimflow.py) follows not_leader
  and resends the same id, and finds the new leader after a kill;
  docs/protocol.md's "Connecting to a cluster" example runs as written.

docs/claimctl.md ("Clusters") and docs/protocol.md ("Connecting to a
cluster") describe what is checked here.
"""

import contextlib
import io
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLAIMCTL, SRC_DIR, TIMEOUT_SCALE, WORKFLOWS_DIR, Daemon, check,  # noqa: E402
                     cpr, eq, new_id, ok, op, portal, run_tests)
from cluster import Etcd, Cluster, ClusterClient, have_etcd  # noqa: E402
import claimflow  # noqa: E402  (harness put clients/python on the path)

LEASE = 2
RUN_TIMEOUT = 120          # an ASan claimctl on a busy machine; never a hang
FAILOVER = 30              # claimctl --timeout across a failover (2 x lease + slack)


# ------------------------------------------------------------- claimctl ---
def env():
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("CLAIMFLOW_"):
            e.pop(k)
    e["CLAIMFLOW_WORKFLOWS"] = WORKFLOWS_DIR
    return e


class Run:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "exit %s\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)

    def json(self):
        return json.loads(self.out)


def run(*args, environ=None):
    p = subprocess.run([CLAIMCTL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT * TIMEOUT_SCALE, env=environ or env(),
                       stdin=subprocess.DEVNULL)
    return Run(p)


def ok_run(r):
    if r.rc != 0:
        raise AssertionError("expected exit 0, got %r" % r)
    return r


def endpoints(nodes, what="operator"):
    return ",".join(getattr(d, what) for d in nodes)


# --------------------------------------------------------------- helpers ---
def with_cluster(fn):
    if not have_etcd():
        print("SKIP: etcd not installed (Debian's etcd-server)")
        return
    with Etcd(3) as etcd, Cluster(etcd, 3, lease=LEASE) as cl:
        fn(cl)


def roles(cl):
    """(leader, [followers]) once there is a leader and both others follow it."""
    leader = cl.wait_leader()
    deadline = time.monotonic() + 30 * TIMEOUT_SCALE
    while time.monotonic() < deadline:
        followers = [d for d in cl.nodes.values() if d is not leader and d.running()]
        pings = [cl.ping(d) for d in followers]
        if all(p and p["role"] == "follower" and p["leader"] and
               p["leader"]["node"] == leader.name for p in pings):
            return leader, followers
        time.sleep(0.1)
    raise AssertionError("the followers do not know the leader")


def create_claims(pc, member, n):
    """n claims created through the cluster; their ids."""
    ids = []
    for _ in range(n):
        r, _ = pc.call({"op": "create", "id": new_id("cc"), "member": member,
                        "workflow": "health_claim",
                        "data": {"member": member, "treatment": "chiropractic"}})
        ids.append(ok(r)["claim"]["id"])
    return ids


def feed(cl, after):
    """Every event of the change feed after batch `after`, from the leader."""
    h = ClusterClient(cl, "operator", {"actor": "hanne"})
    out = []
    try:
        while True:
            r, _ = h.call({"op": "changes", "after": after})
            out += ok(r)["changes"]
            if "next" not in r:
                return out, r["seq"]
            after = r["next"]
    finally:
        h.close()


# ------------------------------------------------------------------ tests ---
def test_cluster_shows_each_node():
    def body(cl):
        leader, followers = roles(cl)
        pc = ClusterClient(cl)
        create_claims(pc, cpr(1, 2, 1980, 1234), 3)
        pc.close()
        seq = cl.ping(leader)["seq"]
        cl.wait_seq(seq)
        nodes = [followers[0], leader, followers[1]]
        r = ok_run(run("cluster", "--endpoint", endpoints(nodes), "--json"))
        epoch = cl.ping(leader)["epoch"]
        got = r.json()["nodes"]
        want = []
        for d in nodes:
            p = cl.ping(d)
            want.append({"endpoint": d.operator, "node": d.name, "role": p["role"],
                         "seq": p["seq"], "lag": 0, "epoch": p["epoch"], "error": None})
        eq(got, want)
        eq([n["role"] for n in got], ["follower", "leader", "follower"])
        eq({n["epoch"] for n in got}, {epoch})
        eq({n["seq"] for n in got}, {seq})
        # The table: a header and one row per node, in the list's order.
        t = ok_run(run("cluster", "--endpoint", endpoints(nodes)))
        lines = t.out.splitlines()
        eq(lines[0].split(), ["NODE", "ROLE", "SEQ", "LAG", "EPOCH", "ENDPOINT"])
        eq([ln.split() for ln in lines[1:]],
           [[d.name, r, str(seq), "0", str(epoch), d.operator]
            for d, r in zip(nodes, ["follower", "leader", "follower"])])
        # A node that is down is shown as such; the others still answer.
        victim = followers[1]
        victim.kill()
        r = ok_run(run("cluster", "--endpoint", endpoints(nodes), "--json", "--timeout", "1"))
        eq(r.json()["nodes"][2], {"endpoint": victim.operator, "node": None,
                                  "role": "unreachable", "seq": None, "lag": None,
                                  "epoch": None, "error": "unreachable"})
        eq([n["role"] for n in r.json()["nodes"][:2]], ["follower", "leader"])
        # None answering is exit 3, as for every command.
        dead = "tcp://127.0.0.1:1,%s" % victim.operator
        r = run("cluster", "--endpoint", dead, "--timeout", "1")
        eq((r.rc, r.out), (3, ""), r)
        eq(r.err, "claimctl: cannot reach claimflowd at any of %s within 1 s "
                  "(are they running?)\n" % dead)
    with_cluster(body)


def test_claimctl_follows_the_leader_and_survives_its_death():
    def body(cl):
        leader, followers = roles(cl)
        m = cpr(2, 3, 1981, 1234)
        pc = ClusterClient(cl)
        cid = create_claims(pc, m, 1)[0]
        r, _ = pc.call({"op": "consent.give", "id": new_id(), "member": m})
        ok(r)
        pc.close()
        nodes = [followers[0], leader, followers[1]]
        eps = endpoints(nodes)
        # A follower first: the request follows not_leader to the leader.
        r = ok_run(run("approve", cid, "--endpoint", eps, "--as", "hanne", "--id",
                       "approve-" + cid, "--json"))
        eq(r.json()["claim"]["state"], "approved")
        r = ok_run(run("show", cid, "--endpoint", eps, "--as", "hanne", "--json"))
        eq([e["event"] for e in r.json()["events"]][-1], "decision.approved")
        # The environment takes the same list.
        e = env()
        e["CLAIMFLOW_ENDPOINT"] = eps
        e["CLAIMFLOW_OPERATOR"] = "hanne"
        r = ok_run(run("stats", "--json", environ=e))
        check(r.json()["claims"] >= 1, r)
        # The leader dies; the same command line, at once, finds the new one
        # and gets the remembered reply (same --id: applied once).
        leader.kill()
        r = ok_run(run("approve", cid, "--endpoint", eps, "--as", "hanne", "--id",
                       "approve-" + cid, "--json", "--timeout", FAILOVER))
        eq(r.json()["claim"]["state"], "approved")
        new = cl.wait_leader()
        check(new is not leader, "a new leader")
        # The dead node first in the list: passed over.
        eps2 = endpoints([leader, followers[0], followers[1]])
        r = ok_run(run("guarantee", cid, "--amount", 150000, "--provider", "Fysio Nord",
                       "--valid-until", "2027-02-01", "--endpoint", eps2, "--as", "hanne",
                       "--json", "--timeout", FAILOVER))
        eq(r.json()["claim"]["state"], "guarantee_issued")
        r = ok_run(run("history", cid, "--endpoint", eps2, "--as", "hanne", "--json",
                       "--timeout", FAILOVER))
        evs = r.json()["events"]
        eq([e["event"] for e in evs], ["claim.created", "consent.given", "decision.approved",
                                       "guarantee.issued"])
        eq([e["seq"] for e in evs], [1, 2, 3, 4])
        # A refusal from the leader is still exit 1 with the daemon's words.
        r = run("approve", cid, "--endpoint", eps2, "--as", "hanne", "--timeout", FAILOVER)
        eq(r.rc, 1, r)
        check(r.err.startswith("claimctl: invalid_transition: "), r)
    with_cluster(body)


def test_watch_resumes_across_a_leader_kill():
    def body(cl):
        leader, followers = roles(cl)
        m = cpr(3, 4, 1982, 1234)
        pc = ClusterClient(cl)
        create_claims(pc, m, 2)
        after = cl.ping(leader)["seq"]
        create_claims(pc, m, 5)             # before watch: its catch-up
        total = 5 + 10 + 13
        nodes = [followers[0], leader, followers[1]]
        w = subprocess.Popen([CLAIMCTL, "watch", "--json", "--count", str(total),
                              "--after", str(after), "--endpoint", endpoints(nodes),
                              "--as", "hanne", "--timeout", str(FAILOVER)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        try:
            create_claims(pc, m, 10)        # live
            leader.kill()
            create_claims(pc, m, 13)        # after the failover
            out, errs = w.communicate(timeout=RUN_TIMEOUT * TIMEOUT_SCALE)
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
            pc.close()
        eq(w.returncode, 0, errs)
        printed = [json.loads(ln) for ln in out.splitlines()]
        want, _ = feed(cl, after)
        eq(len(want), total)
        eq(len(printed), total, errs)
        eq(printed, want, errs)
        batches = [e["batch"] for e in printed]
        eq(batches, sorted(batches))
        check(batches[0] > after, batches[0], after)
    with_cluster(body)


def test_python_cluster_client_follows_not_leader():
    def body(cl):
        leader, followers = roles(cl)
        m = cpr(4, 5, 1983, 1234)
        nodes = [followers[0], followers[1], leader]
        p = claimflow.ClusterClient([d.portal for d in nodes], member=m, timeout=3)
        o = claimflow.ClusterClient(endpoints(nodes).split(","), actor="hanne", timeout=3)
        try:
            c = p.create("health_claim", {"member": m, "treatment": "chiropractic"},
                         request_id="py-create-1")
            eq(p.endpoint, leader.portal)
            eq(p.leader, {"node": leader.name, "portal": leader.portal,
                          "operator": leader.operator, "events": leader.events})
            # A follower answered first (not_leader), then the leader.
            eq(p.sent, 2)
            eq(o.get(c["id"])["state"], "awaiting_consent")
            # The leader dies: the same request id again finds the new leader
            # and gets the remembered reply.
            leader.kill()
            again = p.create("health_claim", {"member": m, "treatment": "chiropractic"},
                             request_id="py-create-1", give_up=FAILOVER)
            eq(again["id"], c["id"])
            new = cl.wait_leader()
            eq(p.endpoint, new.portal)
            eq(len(list(o.claims(member=m))), 1)
            # An error that is not about leadership is raised as it is.
            try:
                p.send_event(c["id"], "treatment.started")
                raise AssertionError("not refused")
            except claimflow.InvalidTransition as e:
                eq(e.code, "invalid_transition")
        finally:
            p.close()
            o.close()
    with_cluster(body)


def test_watch_resumes_on_a_single_daemon_too():
    # No cluster: the operator endpoint's feed and --events; a live start
    # (no --after) prints consecutive feed events from where it began.
    with Daemon() as d:
        p = portal(d)
        m = cpr(5, 6, 1984, 1234)
        w = subprocess.Popen([CLAIMCTL, "watch", "--json", "--count", "3", "--endpoint",
                              d.operator, "--events", d.events, "--as", "hanne"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        deadline = time.monotonic() + RUN_TIMEOUT * TIMEOUT_SCALE
        while w.poll() is None and time.monotonic() < deadline:
            ok(p.call({"op": "create", "id": new_id(), "member": m, "workflow": "health_claim",
                       "data": {"member": m, "treatment": "chiropractic"}}))
            time.sleep(0.05)
        out, errs = w.communicate(timeout=10)
        eq((w.returncode, errs), (0, ""))
        printed = [json.loads(ln) for ln in out.splitlines()]
        feed_ = ok(op(d).call({"op": "changes", "after": printed[0]["batch"] - 1,
                               "limit": 3}))["changes"]
        eq(printed, feed_)
    # --after needs an operator, and a number.
    r = run("watch", "--after", "3")
    eq(r.rc, 2, r)
    eq(r.err.splitlines()[0], "claimctl: watch: --after needs --as OPERATOR (or "
                              "CLAIMFLOW_OPERATOR): the change feed is read on the operator "
                              "endpoint")
    r = run("watch", "--after", "x", "--as", "hanne")
    eq(r.rc, 2, r)
    eq(r.err.splitlines()[0], "claimctl: watch: --after: 'x' is not a batch number")


def test_protocol_md_cluster_snippet_runs():
    # docs/protocol.md's "Connecting to a cluster" example, with this
    # cluster's endpoints in place of the example's.
    text = open(os.path.join(SRC_DIR, "docs", "protocol.md")).read()
    section = text[text.index("## Connecting to a cluster"):]
    snippet = section[section.index("```python\n") + 10:]
    snippet = snippet[:snippet.index("```")]

    def body(cl):
        leader, followers = roles(cl)
        nodes = [followers[0], leader, followers[1]]
        code = re.sub(r"(?m)^portals = \[.*\]$", "portals = %r" % [d.portal for d in nodes],
                      snippet)
        code = re.sub(r"(?m)^operators = \[.*\]$",
                      "operators = %r" % [d.operator for d in nodes], code)
        check(code.count("tcp://10.0.0.") == 0, code)
        out = io.StringIO()
        scope = {}
        with contextlib.redirect_stdout(out):
            exec(compile(code, "protocol.md", "exec"), scope)
        scope["portal"].close()
        scope["ops"].close()
        eq(out.getvalue(), "%s %r\n" % (leader.portal, {
            "node": leader.name, "portal": leader.portal, "operator": leader.operator,
            "events": leader.events}))
        want, seq = feed(cl, 0)
        eq(scope["last"], max(e["batch"] for e in want))
        eq(scope["c"]["state"], "awaiting_consent")
    with_cluster(body)


if __name__ == "__main__":
    run_tests(globals())

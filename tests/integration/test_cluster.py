"""test_cluster.py: replicas and failover on a real 3-member etcd
(docs/CLUSTER.md).  Three etcd members and three claimflowd nodes run as
processes on loopback; a client drives claims through the leader, following
`not_leader`, while the test injects faults: kill -9 of the leader, SIGSTOP
of the leader past its lease, kill -9 of etcd's own leader, every node killed
at once; a node wiped and re-seeded from another's backup.

After each, check_cluster() asserts: every acknowledged create is present
exactly once, on every node; a request with unknown outcome at most once;
each claim's history is gap-free and matches the replies; every node at the
same seq has the same mdb_dump; the log's batch sequence numbers are
contiguous and its epochs never decrease; writes resumed within
2 x lease + 5 s of the fault.

CF_CLUSTER_ROUNDS (default 1) repeats the fault tests: the slow suite's long
form runs hundreds of faults.
"""

import os
import signal
import subprocess
import sys
import threading
import time

from harness import (Daemon, Client, run_tests, check, eq, ok, err, cpr, fnr, new_id,
                     write_config, CLAIMCTL, TIMEOUT_SCALE)
from cluster import Etcd, Cluster, ClusterClient, have_etcd

LEASE = 2
ROUNDS = int(os.environ.get("CF_CLUSTER_ROUNDS", "1"))
RESUME_BOUND = 2 * LEASE + 5


def _create_req(i, member):
    return {"op": "create", "id": new_id("cl%d" % i), "member": member,
            "workflow": "health_claim",
            "data": {"member": member, "treatment": "chiropractic"}}


class Load:
    """A portal client creating claims (and giving consent) one after the
    other in a thread; records what each request came to."""

    def __init__(self, cl, member=None):
        self.cl = cl
        self.member = member or cpr(day=12, month=3, year=1980, serial=3321)
        self.acked = {}        # request id -> claim id
        self.unknown = []      # request ids given up on
        self.errors = []       # (request id, reply) refused for good
        self.ack_times = []    # monotonic time of every ack
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.client = ClusterClient(cl)

    def _run(self):
        i = 0
        while not self.stop_flag.is_set():
            req = _create_req(i, self.member)
            i += 1
            r, _ = self.client.call(req, give_up=40)
            if r is None:
                self.unknown.append(req["id"])
            elif r.get("ok"):
                self.acked[req["id"]] = r["claim"]["id"]
                self.ack_times.append(time.monotonic())
            else:
                self.errors.append((req["id"], r))

    def start(self):
        self.thread.start()
        return self

    def wait_acks(self, n, timeout=30):
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        target = len(self.acked) + n
        while len(self.acked) < target and time.monotonic() < deadline:
            time.sleep(0.05)
        check(len(self.acked) >= target, "load made no progress", len(self.acked), target)

    def resumed_within(self, since, bound):
        """The first ack after `since` came within `bound` seconds."""
        deadline = since + bound * TIMEOUT_SCALE + 1
        while time.monotonic() < deadline:
            after = [t for t in self.ack_times if t > since]
            if after:
                took = after[0] - since
                check(took <= bound * TIMEOUT_SCALE, "writes resumed after %.1fs" % took)
                return took
            time.sleep(0.05)
        raise AssertionError("writes did not resume within %ss" % bound)

    def finish(self):
        self.stop_flag.set()
        self.thread.join(60)
        self.client.close()


def check_cluster(cl, load=None):
    """The invariants of the module docstring."""
    leader = cl.wait_leader()
    seq = cl.ping(leader)["seq"]
    cl.wait_seq(seq)
    # The log: contiguous, epochs never decrease.
    entries = cl.log_entries()
    check(entries, "the log is empty")
    seqs = [e[0] for e in entries]
    eq(seqs, list(range(seqs[0], seqs[0] + len(seqs))), "log seqs contiguous")
    epochs = [e[1] for e in entries]
    eq(epochs, sorted(epochs), "epochs never decrease")
    check(entries[-1][0] >= seq, "the log holds the leader's seq", entries[-1], seq)
    # Every node the same, byte for byte (logical dump).
    dumps = {n: cl.dump(d) for n, d in cl.nodes.items() if d.running()}
    first = next(iter(dumps.values()))
    for n, dmp in dumps.items():
        check(dmp == first, "node %s differs from the others" % n)
    if load is None:
        return
    # Every acknowledged create exactly once; unknown ones at most once.
    h = ClusterClient(cl, "operator", {"actor": "hanne"})
    claim_ids = set(load.acked.values())
    eq(len(claim_ids), len(load.acked), "one claim per acknowledged request")
    for cid in claim_ids:
        r, _ = h.call({"op": "history", "claim": cid})
        ok(r)
        evs = r["events"]
        eq([e["seq"] for e in evs], list(range(1, len(evs) + 1)), "history gap-free", cid)
        eq(evs[0]["event"], "claim.created", cid)
    stored, after = set(), None
    while True:
        req = {"op": "query", "member": load.member, "limit": 1000}
        if after:
            req["after"] = after
        q, _ = h.call(req)
        stored |= {c["id"] for c in ok(q)["claims"]}
        after = q.get("next")
        if not after:
            break
    check(claim_ids <= stored, "an acknowledged claim is missing", claim_ids - stored)
    extra = stored - claim_ids
    check(len(extra) <= len(load.unknown), "claims nobody asked for", len(extra),
          len(load.unknown))
    # The change feed on the (new) leader: every acknowledged claim's
    # creation, in commit order, with no gap across the failovers.
    created, after = {}, 0
    while True:
        r, _ = h.call({"op": "changes", "after": after})
        for e in ok(r)["changes"]:
            check(e["batch"] > after or e["batch"] == after, e)
            if e["event"] == "claim.created":
                created[e["claim"]] = e["batch"]
        if "next" not in r:
            break
        after = r["next"]
    check(claim_ids <= set(created), "the change feed misses claims",
          claim_ids - set(created))
    # A retry of an acknowledged request gives the same claim (the
    # replicated idempotency record), exactly once.
    rid, cid = next(iter(load.acked.items()))
    p = ClusterClient(cl)
    r, _ = p.call(dict(_create_req(0, load.member), id=rid))
    eq(ok(r)["claim"]["id"], cid, "retry answered from the idempotency record")
    p.close()
    h.close()
    check(not load.errors, "requests refused", load.errors[:3])


def _with_cluster(fn, n_etcd=3, n=3, extra="", clock=None, args=()):
    if not have_etcd():
        print("SKIP: etcd not installed (Debian's etcd-server)")
        return
    with Etcd(n_etcd) as etcd, Cluster(etcd, n, lease=LEASE, extra=extra, clock=clock,
                                       args=args) as cl:
        fn(etcd, cl)


# ------------------------------------------------------------------ tests ---
def test_one_leader_and_followers_point_to_it():
    def body(etcd, cl):
        leader = cl.wait_leader()
        lp = cl.ping(leader)
        eq(lp["role"], "leader")
        eq(lp["node"], leader.name)
        eq(lp["leader"], {"node": leader.name, "portal": leader.portal,
                          "operator": leader.operator, "events": leader.events})
        check(lp["epoch"] > 0, lp)
        check("workflows" in lp, lp)
        for d in cl.nodes.values():
            if d is leader:
                continue
            fp = cl.ping(d)
            eq(fp["role"], "follower", fp)
            eq(fp["leader"], lp["leader"], fp)
            eq(fp["epoch"], lp["epoch"], fp)
            # Every other op: not_leader, naming the leader's endpoints.
            c = Client(d.portal)
            m = cpr(day=2, month=2, year=1990)
            r = c.call(_create_req(1, m))
            check("follower" in err(r, "not_leader"), r)
            eq(r["error"]["leader"], lp["leader"])
            eq(r["id"], r["id"])
            c.close()
            o = Client(d.operator, {"actor": "hanne"})
            r = o.call({"op": "stats"})
            err(r, "not_leader")
            o.close()
        # Through the leader: a lifecycle, seen on every node.
        p = ClusterClient(cl)
        m = cpr(day=3, month=3, year=1991)
        c, _ = p.call(_create_req(2, m))
        cid = ok(c)["claim"]["id"]
        eq(c["claim"]["state"], "awaiting_consent")
        r, _ = p.call({"op": "consent.give", "id": new_id(), "member": m})
        ok(r)
        r, _ = p.call({"op": "get", "member": m, "claim": cid})
        eq(ok(r)["claim"]["state"], "in_review")
        p.close()
        check_cluster(cl)
    _with_cluster(body)


def test_a_node_with_other_workflows_is_refused():
    def body(etcd, cl):
        cl.wait_leader()
        import shutil
        from harness import WORKFLOWS_DIR
        d = cl._node("d")
        wf = os.path.join(d.tmp, "workflows")
        shutil.copytree(WORKFLOWS_DIR, wf)
        with open(os.path.join(wf, "inquiry.yaml"), "a") as f:
            f.write("# a local change\n")
        d.workflows_dir = wf
        try:
            d.start()
            raise AssertionError("a node with other workflows joined")
        except RuntimeError as e:
            check("runs a different set of workflows and calendars" in str(e), str(e))
        finally:
            d.cleanup()
    _with_cluster(body)


def test_a_large_document_travels_in_chunks():
    # A batch bigger than one etcd request (1.5 MiB) goes as chunks of the
    # same batch, applied all or nothing on every node, whose maps grow.
    def body(etcd, cl):
        p = ClusterClient(cl)
        m = cpr(day=5, month=5, year=1985)
        c, _ = p.call(dict(_create_req(5, m), data={"member": m, "treatment": "physiotherapy"}))
        cid = ok(c)["claim"]["id"]
        pdf = b"%PDF-1.4\n" + os.urandom(3 << 20) + b"\n%%EOF\n"
        r, _ = p.call({"op": "attach", "id": new_id(), "member": m, "claim": cid,
                       "kind": "referral", "content_type": "application/pdf", "body": pdf},
                      timeout=20)
        sha = ok(r)["document"]["sha256"]
        chunks = etcd.range_prefix(cl.prefix + "/chunk/")
        check(len(chunks) >= 3, "the batch went in chunks", len(chunks))
        check_cluster(cl)
        # Every node serves the same bytes once it leads.
        old = cl.wait_leader()
        old.kill()
        r, _ = p.call({"op": "document", "member": m, "claim": cid, "sha256": sha,
                       "offset": 0, "length": 1 << 18})
        eq(ok(r)["document"]["body"], pdf[:1 << 18])
        eq(r["document"]["size"], len(pdf))
        p.close()
    # A map of 1 MiB: every node grows it to take the batch (a follower's
    # apply as the leader's engine).
    _with_cluster(body, args=["--map-size", "1M"])


def test_each_timer_fires_once_across_a_failover():
    # The manual clock is the cluster's (meta "clock", through the log):
    # the next leader goes on from it, and fired timers are gone from every
    # store with the batch that fired them.
    def body(etcd, cl):
        p = ClusterClient(cl)
        o = ClusterClient(cl, "operator", {"actor": "hanne"})
        claims = []
        for i in range(6):
            m = cpr(day=10 + i, month=6, year=1970 + i)
            c, _ = p.call(_create_req(10 + i, m))
            claims.append(ok(c)["claim"]["id"])
            ok(p.call({"op": "consent.give", "id": new_id(), "member": m})[0])
        r, _ = o.call({"op": "clock.set", "id": new_id(), "at": "2026-11-25T10:00:00Z"})
        eq(ok(r)["fired"], 6)
        old = cl.wait_leader()
        old.kill()
        new = cl.wait_leader()
        eq(cl.ping(new)["now"], "2026-11-25T10:00:00Z", "the clock went on from the log")
        r, _ = o.call({"op": "clock.set", "id": new_id(), "at": "2026-11-26T10:00:00Z"})
        eq(ok(r)["fired"], 6)
        old.start()
        for cid in claims:
            r, _ = o.call({"op": "history", "claim": cid})
            evs = [e["event"] for e in ok(r)["events"]]
            eq(evs.count("sla.warning"), 1, cid, evs)
            eq(evs.count("sla.breached"), 1, cid, evs)
        r, _ = o.call({"op": "timers"})
        eq([t["name"] for t in ok(r)["timers"]], [])
        p.close()
        o.close()
        check_cluster(cl)
    _with_cluster(body, clock="2026-11-24T09:00:00Z")


def test_a_batch_the_log_never_took_is_taken_back():
    # The leader commits a batch before its log holds it (the pipeline).
    # Here the log never does: every etcd member is paused while the batch
    # is on its way, and the member it went to is killed before it could
    # read it.  The leader steps down, takes the batch back (its undo
    # record), and the claim exists nowhere; nobody was told it did.
    def body(etcd, cl):
        leader = cl.wait_leader()
        p = ClusterClient(cl)
        m0 = cpr(day=6, month=6, year=1986)
        ok(p.call(_create_req(20, m0))[0])
        cl.wait_seq(cl.ping(leader)["seq"])
        for i in range(etcd.n):
            etcd.signal(i, signal.SIGSTOP)
        direct = Client(leader.portal)
        m = cpr(day=7, month=7, year=1987)
        direct.send(_create_req(21, m))
        # It steps down: its renewal or its append times out.
        check(leader.log_lines("no longer the leader", timeout=15), "it still leads")
        etcd.kill(0)                     # the member the request went to
        for i in (1, 2):
            etcd.signal(i, signal.SIGCONT)
        check(leader.log_lines("took back batch", timeout=30), "nothing taken back")
        try:
            r = direct.recv(timeout=1)
            raise AssertionError("a reply for a batch the log never took: %r" % (r,))
        except TimeoutError:
            pass
        direct.close()
        etcd.start(0)
        cl.wait_leader()
        q, _ = ClusterClient(cl, "operator", {"actor": "hanne"}).call(
            {"op": "query", "member": m})
        eq(ok(q)["claims"], [], "the claim nobody was told of is nowhere")
        q, _ = ClusterClient(cl, "operator", {"actor": "hanne"}).call(
            {"op": "query", "member": m0})
        eq(len(ok(q)["claims"]), 1)
        p.close()
        check_cluster(cl)
    _with_cluster(body)


def test_leader_killed_under_load():
    def body(etcd, cl):
        load = Load(cl).start()
        try:
            for _ in range(ROUNDS):
                load.wait_acks(5)
                leader = cl.wait_leader()
                t = time.monotonic()
                leader.kill()
                load.resumed_within(t, RESUME_BOUND)
                new = cl.wait_leader()
                check(new is not leader, "a new leader")
                leader.start()          # back as a follower, catching up
                load.wait_acks(5)
        finally:
            load.finish()
        check_cluster(cl, load)
    _with_cluster(body)


def test_leader_stopped_past_its_lease_acknowledges_nothing():
    def body(etcd, cl):
        load = Load(cl).start()
        try:
            for _ in range(ROUNDS):
                load.wait_acks(5)
                old = cl.wait_leader()
                direct = Client(old.portal)
                t = time.monotonic()
                old.proc.send_signal(signal.SIGSTOP)
                # A request waits in the stopped leader's socket.
                m = cpr(day=4, month=4, year=1992)
                direct.send(_create_req(3, m))
                load.resumed_within(t, RESUME_BOUND)
                new = cl.wait_leader(exclude=(old.name,))
                check(new is not old)
                time.sleep(LEASE + 0.5)
                old.proc.send_signal(signal.SIGCONT)
                # What the old leader answers now is not an acknowledgement.
                r = direct.recv(timeout=10)
                err(r, "not_leader")
                r = direct.call(_create_req(4, m), timeout=10)
                err(r, "not_leader")
                direct.close()
                deadline = time.monotonic() + 10
                while cl.ping(old)["role"] != "follower" and time.monotonic() < deadline:
                    time.sleep(0.1)
                eq(cl.ping(old)["role"], "follower")
                load.wait_acks(5)
        finally:
            load.finish()
        check_cluster(cl, load)
    _with_cluster(body)


def test_etcd_leader_killed():
    def body(etcd, cl):
        load = Load(cl).start()
        try:
            for _ in range(ROUNDS):
                load.wait_acks(5)
                i = etcd.leader()
                check(i is not None, "etcd has a leader")
                t = time.monotonic()
                etcd.kill(i)
                load.resumed_within(t, RESUME_BOUND)
                etcd.start(i)
                load.wait_acks(5)
        finally:
            load.finish()
        check_cluster(cl, load)
    _with_cluster(body)


def test_every_node_killed_at_once_and_restarted():
    def body(etcd, cl):
        load = Load(cl).start()
        try:
            load.wait_acks(10)
            t = time.monotonic()
            for d in cl.nodes.values():
                d.kill()
            for d in cl.nodes.values():
                d.start()
            load.resumed_within(t, RESUME_BOUND + 10)
            load.wait_acks(5)
        finally:
            load.finish()
        check_cluster(cl, load)
    _with_cluster(body)


def test_wiped_node_reseeded_from_a_backup_catches_up():
    def body(etcd, cl):
        load = Load(cl).start()
        try:
            load.wait_acks(5)
            leader = cl.wait_leader()
            victim = next(d for d in cl.nodes.values() if d is not leader)
            vseq = cl.ping(victim)["seq"]
            victim.kill()
            # The log is trimmed past the victim once it is forgotten (its
            # applied record removed, as when a node is decommissioned).
            etcd.delete(cl.prefix + "/applied/" + victim.name)
            load.wait_acks(10)
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                first = cl.log_entries()[0][0]
                if first > vseq + 1:
                    break
                time.sleep(0.5)
            check(first > vseq + 1, "the log was not trimmed past the node", first, vseq)
        finally:
            load.finish()
        # Its old store is behind the log's head: it refuses to start.
        try:
            victim.start()
            raise AssertionError("a node behind the trimmed log started")
        except RuntimeError as e:
            check("re-seed this node from a backup" in str(e), str(e))
        # Re-seeded from another node's backup, it catches up and matches.
        import shutil
        shutil.rmtree(victim.data_dir)
        backup = os.path.join(victim.tmp, "seed")
        r = subprocess.run([CLAIMCTL, "backup", backup, "--data", leader.data_dir],
                           capture_output=True, text=True, timeout=60)
        eq(r.returncode, 0, r.stderr)
        os.rename(backup, victim.data_dir)
        victim.start()
        eq(cl.ping(victim)["role"], "follower")
        check_cluster(cl)
    _with_cluster(body, extra="  log_retention: 1s\n")


def test_cluster_config_is_checked():
    # --node without a cluster section, a cluster without a node name.
    with Daemon(config=False) as d:
        pass
    d = Daemon(args=["--node", "a"])
    try:
        d.start()
        raise AssertionError("started")
    except RuntimeError as e:
        check("--node needs a config with a 'cluster:' section" in str(e), str(e))
    finally:
        d.cleanup()
    d = Daemon(config=False)
    d.config = write_config(os.path.join(d.tmp, "c.yaml"), extra=(
        "cluster:\n  etcd: [http://127.0.0.1:1]\n  prefix: /claimflow/x\n"))
    try:
        d.start()
        raise AssertionError("started")
    except RuntimeError as e:
        check("a cluster node needs a name" in str(e), str(e))
    finally:
        d.cleanup()
    for bad, want in [
        ("  etcd: [ftp://x]\n  prefix: /p\n  node: a\n", "each etcd URL must be"),
        ("  etcd: [http://127.0.0.1:1]\n  prefix: p/\n  node: a\n", "'prefix' must be"),
        ("  etcd: [http://127.0.0.1:1]\n  prefix: /p\n  node: a\n  lease_seconds: 1\n",
         "'lease_seconds' must be from 2 to 60"),
        ("  etcd: [http://127.0.0.1:1]\n  prefix: /p\n  node: a\n  log_retention: 3x\n",
         "'log_retention' must be a whole number"),
        ("  etcd: [http://127.0.0.1:1]\n  prefix: /p\n  node: a\n  colour: red\n",
         "unknown key in 'cluster'"),
    ]:
        d = Daemon(config=False)
        d.config = write_config(os.path.join(d.tmp, "c.yaml"), extra="cluster:\n" + bad)
        try:
            d.start()
            raise AssertionError("started with %r" % bad)
        except RuntimeError as e:
            check(want in str(e), bad, str(e))
        finally:
            d.cleanup()
    # etcd not reachable: a one-line reason, not a hang.
    d = Daemon(config=False)
    d.config = write_config(os.path.join(d.tmp, "c.yaml"), extra=(
        "cluster:\n  etcd: [http://127.0.0.1:9]\n  prefix: /claimflow/x\n  node: a\n"))
    try:
        d.start()
        raise AssertionError("started")
    except RuntimeError as e:
        check("cannot join the cluster" in str(e), str(e))
    finally:
        d.cleanup()


if __name__ == "__main__":
    run_tests(globals())

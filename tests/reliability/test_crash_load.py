"""Reliability: crash under load (docs/RELIABILITY.md, "Durability" and
"Exactly-once effects").

Concurrent clients drive claimflowd, each over its own members and claims,
and record every `ok` reply.  The daemon is killed with SIGKILL at random
moments and restarted on the same store (new ports: the clients read the new
`started` line and reconnect).  A client whose request got no reply resends
the very same frame (same `id`, same bytes) to the restarted daemon until it
is answered, as docs/protocol.md tells clients to.  At the end:

- every acknowledged transition is in the store, and nothing else: each
  claim's history is exactly the events its client had acknowledged, in
  order (so no request was applied twice and none was lost), seq 1..n
  without gaps, ending in the claim's state; as many claims as creates;
- pending timers are intact (the two SLA timers of every claim in
  in_review, the complaint window of every denied claim, ...);
- the clock is advanced past every timer and the daemon killed while it
  fires them; after the restart each timer has fired exactly once.

Short form: 10 kills (the test command); long form (`--long`): 200.
CF_SEED fixes the scripts' random choices (printed at the start); the kill
moments are random by design.
"""

import os
import random
import sys
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from harness import T0, check, eq, ok, pack, unpack  # noqa: E402
from reliability_util import (LONG, SLOW, RDaemon, full_read, log,  # noqa: E402
                              member, run)

KILLS = 200 if LONG else 10
THREADS = 4
MEMBERS_PER_THREAD = 3
REPLY_TIMEOUT = 60.0 * SLOW     # one request, not counting daemon restarts
# Past every timer the scripts leave pending (the 6-month complaint window,
# a guarantee's last day), before the members' consent reminders.
T_LATER = "2027-06-01T09:00:00Z"
T_AFTER = "2027-07-01T09:00:00Z"   # the second restart's clock

# The scripts: a claim's life from in_review (chiropractic with consent
# already given skips the referral), cut at a random length.
APPROVE_PATH = [
    ("o", "info.requested", {"text": "please send the invoice"}, "awaiting_info"),
    ("p", "info.provided", {"text": "sent"}, "in_review"),
    ("o", "decision.approved", None, "approved"),
    ("o", "guarantee.issued", {"amount": 150000, "provider": "Kiropraktor Syd",
                               "valid_until": "2027-05-24"}, "guarantee_issued"),
    ("p", "treatment.started", None, "in_treatment"),
]
DENY_PATH = [
    ("o", "decision.denied", {"reason": "not covered"}, "denied"),
]

# What each end state's pending timers are (health_claim 4, everything
# decided at T0), what firing them appends, and what is pending after.
TIMERS_IN = {
    "in_review": {"decision_warning": "2026-11-25T09:00:00Z",
                  "decision_due": "2026-11-26T09:00:00Z"},
    "awaiting_info": {"reminder": "2026-12-24T09:00:00Z", "expiry": "2027-02-22T09:00:00Z"},
    "denied": {"complaint_window": "2027-05-24T08:00:00Z"},
    "guarantee_issued": {"guarantee_expiry": "2027-05-24T22:00:00Z",
                         "complaint_window": "2027-05-24T08:00:00Z"},
}
FIRED_IN = {
    "in_review": [("sla.warning", "in_review"), ("sla.breached", "in_review")],
    "awaiting_info": [("claim.reminder", "awaiting_info"), ("claim.expired", "closed")],
    "denied": [("complaint.expired", "closed")],
    "guarantee_issued": [("complaint.window_closed", "guarantee_issued"),
                         ("guarantee.expired", "guarantee_expired")],
}
# (its due time is 90 days after guarantee.expired fired: at its own due
# time, or at the clock's time when a kill made it fire late at restart)
TIMERS_AFTER = {
    "guarantee_expired": {"expiry"},
}


# ------------------------------------------------------------- the daemon ---
class Shared:
    """The daemon's current endpoints and generation, for the clients."""

    def __init__(self):
        self.cv = threading.Condition()
        self.gen = 0
        self.up = False
        self.eps = None
        self.stop = False

    def publish(self, d):
        with self.cv:
            self.gen += 1
            self.eps = {"p": d.portal, "o": d.operator}
            self.up = True
            self.cv.notify_all()

    def down(self):
        with self.cv:
            self.up = False

    def wait_up(self, timeout):
        with self.cv:
            if not self.cv.wait_for(lambda: self.up, timeout):
                raise TimeoutError("the daemon did not come back")
            return self.gen, dict(self.eps)


class Worker(threading.Thread):
    """One client: its own members and claims, one request at a time,
    every request resent unchanged until it is answered."""

    def __init__(self, shared, n, seed):
        super().__init__(daemon=True)
        self.shared = shared
        self.n = n
        self.rng = random.Random(seed)
        self.ctx = zmq.Context.instance()
        self.socks = {}
        self.gen = -1
        self.members = [member(1000 + n * 100 + k) for k in range(MEMBERS_PER_THREAD)]
        self.claims = {}       # claim id -> [(event, actor, to)] acknowledged
        self.states = {}       # claim id -> state after the last ack
        self.acks = 0
        self.resent = 0
        self.error = None

    def _connect(self, gen, eps):
        for s in self.socks.values():
            s.close(0)
        self.socks = {}
        for k, ep in eps.items():
            s = self.ctx.socket(zmq.DEALER)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(ep)
            self.socks[k] = s
        self.gen = gen

    def call(self, where, req):
        """Send req (packed once: a resend is the same bytes) until a reply
        comes from some incarnation of the daemon; the reply."""
        frame = pack(req)
        deadline = time.monotonic() + REPLY_TIMEOUT
        sent = 0
        while True:
            gen, eps = self.shared.wait_up(REPLY_TIMEOUT)
            if gen != self.gen:
                self._connect(gen, eps)
            s = self.socks[where]
            s.send_multipart([b"", frame])
            sent += 1
            if sent > 1:
                self.resent += 1
            while True:
                if s.poll(50):
                    return unpack(s.recv_multipart()[-1])
                if self.shared.gen != self.gen or not self.shared.up:
                    break                       # killed: resend to the next one
                if time.monotonic() > deadline:
                    raise TimeoutError("no reply to %r" % (req,))

    def expect_ok(self, where, req, state=None):
        r = self.call(where, req)
        if r.get("ok") is not True or r.get("id") != req["id"]:
            raise AssertionError("worker %d: %r -> %r" % (self.n, req, r))
        if state is not None:
            eq(r["claim"]["state"], state, req, r)
        self.acks += 1
        return r

    def run(self):
        try:
            self._run()
        except Exception as ex:                 # noqa: BLE001 - reported by main
            self.error = ex
        finally:
            for s in self.socks.values():
                s.close(0)

    def _id(self, what):
        self._k = getattr(self, "_k", 0) + 1
        return "w%d-%s-%d" % (self.n, what, self._k)

    def _run(self):
        for m in self.members:
            self.expect_ok("p", {"op": "consent.give", "id": self._id("consent"),
                                 "member": m})
        while not self.shared.stop:
            m = self.rng.choice(self.members)
            r = self.expect_ok("p", {
                "op": "create", "id": self._id("create"), "workflow": "health_claim",
                "member": m, "data": {"member": m, "treatment": "chiropractic"}},
                "in_review")
            cid = r["claim"]["id"]
            self.claims[cid] = [("claim.created", "member", "in_review")]
            self.states[cid] = "in_review"
            path = self.rng.choice([APPROVE_PATH, APPROVE_PATH, DENY_PATH])
            for where, event, data, to in path[:self.rng.randint(0, len(path))]:
                if self.shared.stop:
                    break
                req = {"op": "send", "id": self._id("send"), "claim": cid,
                       "event": event}
                if data is not None:
                    req["data"] = data
                if where == "p":
                    req["member"] = m
                else:
                    req["actor"] = "hanne"
                self.expect_ok(where, req, to)
                self.claims[cid].append(
                    (event, "member" if where == "p" else "hanne", to))
                self.states[cid] = to


# ------------------------------------------------------------- the checks ---
def check_store(d, workers, fired=False):
    """Everything acknowledged is there exactly once; timers as expected."""
    o = d.client(d.operator, {"actor": "aud"})
    got = full_read(o, timeout=60)
    want = {}
    for w in workers:
        for cid, evs in w.claims.items():
            want[cid] = (list(evs), w.states[cid])
    eq(sorted(got), sorted(want), "the claims in the store are the acknowledged creates")
    st = ok(o.call({"op": "stats"}, timeout=60 * SLOW))
    eq(st["claims"], len(want), st)
    ntimers = 0
    for cid, (evs, state) in want.items():
        claim, history = got[cid]
        if fired and state in FIRED_IN:
            evs = evs + [(e, "system", to) for e, to in FIRED_IN[state]]
            state = evs[-1][2]
        eq([(e["event"], e["actor"], e["to"]) for e in history], evs, cid)
        eq(claim["state"], state, cid)
        timers = {t["name"]: t["due_at"] for t in claim["timers"]}
        if fired:
            eq(set(timers), TIMERS_AFTER.get(state, set()), cid, claim)
        else:
            eq(timers, TIMERS_IN.get(state, {}), cid, claim)
        ntimers += len(timers)
    # Every claim timer, and two consent timers per member (the expiry and
    # its reminder 30 days before).
    nmembers = sum(len(w.members) for w in workers)
    eq(st["timers"]["pending"], ntimers + 2 * nmembers, st)
    if ntimers <= 1000:
        t = ok(o.call({"op": "timers", "limit": 1000}, timeout=60 * SLOW))["timers"]
        eq(len(t), ntimers, "timers op")
    return want


def test_crash_under_load():
    seed = int(os.environ.get("CF_SEED") or random.SystemRandom().randrange(1 << 30))
    log("seed %d (CF_SEED=%d reproduces the scripts), %d kills", seed, seed, KILLS)
    rng = random.Random(seed)
    kill_rng = random.SystemRandom()
    shared = Shared()
    d = RDaemon(clock=T0)
    try:
        d.start()
        shared.publish(d)
        workers = [Worker(shared, n, rng.randrange(1 << 30)) for n in range(THREADS)]
        for w in workers:
            w.start()
        t0 = time.monotonic()
        last_acks = 0
        for k in range(KILLS):
            time.sleep(kill_rng.uniform(0.2, 0.8) * (1 if SLOW == 1 else 5))
            acks = sum(w.acks for w in workers)
            check(acks > last_acks, "no progress before kill %d" % k)
            for w in workers:
                check(w.error is None, w.error)
            last_acks = acks
            shared.down()
            rc = d.sigkill()
            eq(rc, -9, "claimflowd died on its own before kill %d" % k)
            d.start()
            shared.publish(d)
        shared.stop = True
        for w in workers:
            w.join(REPLY_TIMEOUT + 30)
            check(not w.is_alive(), "worker %d hangs" % w.n)
            check(w.error is None, "worker %d: %r" % (w.n, w.error))
        acks = sum(w.acks for w in workers)
        resent = sum(w.resent for w in workers)
        nclaims = sum(len(w.claims) for w in workers)
        log("%d kills in %.1fs: %d acknowledged requests, %d claims, "
            "%d requests resent after a kill", KILLS, time.monotonic() - t0,
            acks, nclaims, resent)
        check(resent > 0, "no request was ever caught by a kill")

        # A last kill with nothing in flight, then the whole store is read.
        shared.down()
        d.sigkill()
        d.start()
        want = check_store(d, workers)
        states = {}
        for _, state in want.values():
            states[state] = states.get(state, 0) + 1
        log("end states: %s", states)
        check(states.get("in_review", 0) > 0, "no claim left with timers", states)

        # Timers fire once, even when the daemon dies while firing them: ask
        # for the clock to jump past every timer, kill at once (before, during
        # or after the fire), restart with the clock there: whatever had not
        # fired fires at start.
        o = d.client(d.operator, {"actor": "hanne"})
        o.send({"op": "clock.set", "at": T_LATER})
        time.sleep(kill_rng.uniform(0, 0.05))
        d.sigkill()
        d.clock = T_LATER
        d.start()
        check_store(d, workers, fired=True)
        # And never again: another restart, the clock further on.
        d.stop()
        d.clock = T_AFTER
        d.start()
        check_store(d, workers, fired=True)
        bad = d.started_with_errors()
        eq(bad, [], "sanitizer reports")
        rc = d.stop()
        eq(rc, 0, "\n".join(d.stderr_lines[-40:]))
    finally:
        shared.stop = True
        d.cleanup()


if __name__ == "__main__":
    run(globals())

"""Reliability: a full store (docs/RELIABILITY.md, "Full disk").

Two ways the store runs out of room, one test each:

- test_map_full: the map is capped (`--map-size 1M --no-grow`), root-free.
  Claims with distinct 32 KiB referrals, then small writes, fill it until
  writes are refused.  Then: every kind of writing request is answered
  exactly `unavailable` (with its id) and changes nothing (mdb_stat's entry
  counts do not move); every read still works (a full read: each claim, its
  gap-free history, every document body against its sha256, stats, timers).
  "Space is freed" by the remedy docs/operations.md gives for a capped map:
  restart with a larger --map-size.  The store reads back exactly as it was
  (mdb_stat and the full read), and the refused requests, resent unchanged
  (same id, same bytes), now succeed, each exactly once.
- test_disk_full: the store on a small tmpfs, the filesystem filled with a
  ballast file; the commit fails with ENOSPC.  Same checks, but space is
  freed by deleting the ballast, and the SAME daemon process carries on (the
  log says the store takes writes again).  Needs root (mount); skipped,
  with a line saying so, when tmpfs cannot be mounted.

Short form: one fill each; long form: the map test five times, with
documents of 4 KiB to 200 KiB (LMDB's overflow pages of many lengths).
"""

import hashlib
import os
import random
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from harness import T0, check, eq, err, ok  # noqa: E402
from reliability_util import (LONG, SLOW, RDaemon, full_read, log,  # noqa: E402
                              mdb_all_entries, mdb_stat, member, run)

TIMEOUT = 30 * SLOW
PDF_HEAD = b"%PDF-1.4\n"
REFUSED_LOG = ("claimflowd: error: request batch: the store refuses writes: "
               "unavailable (disk or map full?)")
# Consecutive refused writes (every kind, round robin) that count as full.
FULL_AFTER = 24


class Filler:
    """Writes until the store is full; remembers every acknowledged claim
    and every refused request (its exact frame, for the resend)."""

    def __init__(self, d, rng, doc_size):
        self.d = d
        self.rng = rng
        self.doc_size = doc_size
        self.p = d.client(d.portal)
        self.o = d.client(d.operator, {"actor": "hanne"})
        self.m_consent = member(1)      # consent given: claims go to in_review
        self.m_docs = member(2)         # no consent: referral -> awaiting_consent
        self.k = 0
        self.in_review = []             # claims a `send` can move
        self.refused = []               # (client, request) answered unavailable
        self.acked = 0
        self.members = [self.m_consent, self.m_docs]

    def rid(self, what):
        self.k += 1
        return "fill-%s-%d" % (what, self.k)

    def pdf(self, size):
        return PDF_HEAD + self.rng.randbytes(size - len(PDF_HEAD))

    def reconnect(self, d):
        self.d = d
        self.p = d.client(d.portal)
        self.o = d.client(d.operator, {"actor": "hanne"})

    def call(self, c, req):
        """ok reply, or None when `unavailable` (recorded); anything else
        fails the test."""
        r = c.call(req, timeout=TIMEOUT)
        eq(r.get("id"), req["id"], req, r)
        if r["ok"] is True:
            self.acked += 1
            return r
        err(r, "unavailable")
        self.refused.append(("p" if c is self.p else "o", req))
        return None

    # One writing request of each kind; each returns True when it was ok.
    def create_doc(self):
        m = self.m_docs
        r = self.call(self.p, {"op": "create", "id": self.rid("create"),
                               "workflow": "health_claim", "member": m,
                               "data": {"member": m, "treatment": "physiotherapy"}})
        if r is None:
            return False
        eq(r["claim"]["state"], "awaiting_referral", r)
        body = self.pdf(self.doc_size)
        r = self.call(self.p, {"op": "attach", "id": self.rid("attach"), "member": m,
                               "claim": r["claim"]["id"], "kind": "referral",
                               "content_type": "application/pdf", "body": body})
        if r is not None:
            eq(r["claim"]["state"], "awaiting_consent", r)
            eq(r["document"]["sha256"], hashlib.sha256(body).hexdigest(), r)
        return r is not None

    def create_small(self):
        m = self.m_consent
        r = self.call(self.p, {"op": "create", "id": self.rid("create"),
                               "workflow": "health_claim", "member": m,
                               "data": {"member": m, "treatment": "chiropractic",
                                        "description": "back pain"}})
        if r is not None:
            eq(r["claim"]["state"], "in_review", r)
            self.in_review.append(r["claim"]["id"])
        return r is not None

    def send(self):
        if not self.in_review:
            return self.create_small()
        cid = self.in_review[-1]
        r = self.call(self.o, {"op": "send", "id": self.rid("send"), "claim": cid,
                               "event": "decision.denied",
                               "data": {"reason": "not covered"}})
        self.in_review.pop()      # a refused send will be resent: not twice
        if r is not None:
            eq(r["claim"]["state"], "denied", r)
        return r is not None

    def consent(self):
        m = member(1000 + self.k)
        return self.call(self.p, {"op": "consent.give", "id": self.rid("consent"),
                                  "member": m}) is not None

    def fill(self):
        """Big documents until one is refused, then every kind of small write
        until FULL_AFTER in a row are refused."""
        kinds = [self.create_small, self.send, self.consent, self.create_doc]
        assert self.consent() and self.call(self.p, {
            "op": "consent.give", "id": self.rid("consent"),
            "member": self.m_consent}) is not None
        while self.create_doc():
            pass
        refused_in_a_row = 0
        i = 0
        while refused_in_a_row < FULL_AFTER:
            if kinds[i % len(kinds)]():
                refused_in_a_row = 0
            else:
                refused_in_a_row += 1
            i += 1
            check(i < 100000, "the store never filled")
        log("full after %d acknowledged writes (%d refused)", self.acked,
            len(self.refused))

    def settle(self):
        """Fill until one whole round of the probe's writes is refused.  A
        full LMDB map is not monotonic: pages freed by earlier commits come
        back once no reader holds an older snapshot, and a small write that
        lands where its B-tree leaf has room may then fit after many larger
        ones did not.  What the test judges is that refused writes change
        nothing, so it first reaches a store where none of them fits."""
        for _ in range(50):
            if not any([f() for f in self.PROBES]):
                return
        raise AssertionError("the store never stayed full for a whole round")

    # The probe's writes.  Not a new member's consent: its four small
    # records (each in a leaf of its own database, its idempotency key now
    # under the member's own prefix) are the smallest write there is, and a
    # store that refuses every claim write may still have the few pages one
    # of them needs - not full for it, which is not a refusal to test.
    @property
    def PROBES(self):
        return (self.create_small, self.send, self.create_doc, self.create_small,
                self.send, self.create_doc)

    def probe(self):
        """Every kind of claim write, now: each must be refused."""
        n = len(self.refused)
        for f in self.PROBES:
            check(not f(), "a write succeeded on a full store", f.__name__)
        check(len(self.refused) >= n + 6, self.refused[n:])


def store_entries(data_dir):
    return mdb_all_entries(mdb_stat(data_dir))


def portal_snapshot(d, members):
    """Everything the members can read through the portal (reads there
    write nothing: no access-log entry): {claim id: (claim, events,
    {sha256: body})}, every history checked gap-free and ending in the
    claim's state."""
    p = d.client(d.portal)
    out = {}
    for m in members:
        after = None
        while True:
            req = {"op": "query", "member": m, "limit": 1000}
            if after is not None:
                req["after"] = after
            r = ok(p.call(req, timeout=TIMEOUT))
            for cl in r["claims"]:
                ev = ok(p.call({"op": "history", "member": m, "claim": cl["id"]},
                               timeout=TIMEOUT))["events"]
                eq([e["seq"] for e in ev], list(range(1, len(ev) + 1)), ev)
                eq(ev[-1]["to"], cl["state"], cl["id"], ev[-1])
                eq(ok(p.call({"op": "get", "member": m, "claim": cl["id"]},
                             timeout=TIMEOUT))["claim"], cl)
                bodies = {}
                for doc in cl["documents"]:
                    body = ok(p.call({"op": "document", "member": m, "claim": cl["id"],
                                      "sha256": doc["sha256"]},
                                     timeout=TIMEOUT))["document"]["body"]
                    eq(hashlib.sha256(body).hexdigest(), doc["sha256"], cl["id"])
                    bodies[doc["sha256"]] = body
                out[cl["id"]] = (cl, ev, bodies)
            after = r.get("next")
            if after is None:
                break
    return out


def unaudited_reads(d):
    """The operator reads that write nothing: stats and timers."""
    o = d.client(d.operator, {"actor": "aud"})
    st = ok(o.call({"op": "stats"}, timeout=TIMEOUT))
    del st["ok"]
    t = ok(o.call({"op": "timers", "limit": 1000}, timeout=TIMEOUT))["timers"]
    return st, sorted((x["claim"], x["name"], x["due_at"]) for x in t)


def check_refusals(d, f, data_dir):
    """The full store: writes refused and harmless, reads work.  Returns
    (mdb_stat entries, portal snapshot) as they are once it is full."""
    f.settle()
    mark = len(d.stderr_lines)
    before = store_entries(data_dir)
    snap = portal_snapshot(d, f.members)
    ro = unaudited_reads(d)
    eq(ro[0]["claims"], len(snap), "every claim is some member's")
    eq(len(ro[1]), sum(len(cl["timers"]) for cl, _, _ in snap.values()),
       "pending claim timers")
    f.probe()
    eq(store_entries(data_dir), before, "refused writes changed the store")
    eq(portal_snapshot(d, f.members), snap, "refused writes changed what reads return")
    eq(unaudited_reads(d), ro, "refused writes changed stats or timers")
    # Logged once, when writes started failing (during the fill), not again.
    eq(d.stderr_lines[mark:], [], "log lines while the store stays full")
    check(REFUSED_LOG in d.stderr_lines[:mark], d.stderr_lines[-5:])
    # An operator's read of personal data writes an access-log entry in the
    # same transaction: when even that does not fit, the read fails closed
    # (`unavailable`, nothing shown) rather than show data unlogged.
    o = d.client(d.operator, {"actor": "aud"})
    shown = refused = 0
    for cid, (cl, ev, _) in snap.items():
        for req, key, want in (({"op": "get", "claim": cid}, "claim", cl),
                               ({"op": "history", "claim": cid}, "events", ev)):
            r = o.call(req, timeout=TIMEOUT)
            if r["ok"]:
                eq(r[key], want, req)
                shown += 1
            else:
                err(r, "unavailable")
                refused += 1
    log("operator reads on the full store: %d shown (and logged), %d refused "
        "(the access log could not be written)", shown, refused)
    return store_entries(data_dir), snap


def resend(d, f, snap):
    """Resend every refused request (unchanged frames, new connections):
    each is applied once; then the store is the old one plus exactly those."""
    clients = {"p": d.client(d.portal),
               "o": d.client(d.operator, {"actor": "hanne"})}   # as Filler's
    replies = {}
    for where, req in f.refused:
        replies[req["id"]] = ok(clients[where].call(req, timeout=TIMEOUT))
    for where, req in f.refused:        # again: the same reply, no effect
        eq(clients[where].call(req, timeout=TIMEOUT), replies[req["id"]], req["id"])
    claims = portal_snapshot(d, f.members)
    moved = {r["claim"]["id"] for r in replies.values() if "claim" in r}
    for cid, v in snap.items():
        if cid not in moved:
            eq(claims[cid], v, "an old claim changed", cid)
    created = {cid for cid in moved if cid not in snap}
    ncreates = sum(1 for _, req in f.refused if req["op"] == "create")
    eq(len(created), ncreates, "one claim per resent create")
    eq(set(claims), set(snap) | created, "claims after the resends")
    # The operators' view agrees (their reads are logged again now).
    aud = d.client(d.operator, {"actor": "aud"})
    got = full_read(aud, TIMEOUT)
    eq(sorted(got), sorted(claims))
    for cid, (cl, ev) in got.items():
        eq((cl, ev), claims[cid][:2], cid)
    return replies


# ------------------------------------------------------------------ tests ---
def fill_capped(doc_size, seed):
    rng = random.Random(seed)
    d = RDaemon(clock=T0, args=["--map-size", "1M", "--no-grow"])
    try:
        d.start()
        f = Filler(d, rng, doc_size)
        f.fill()
        before, snap = check_refusals(d, f, d.data_dir)

        # Freeing space: a restart with a larger map (the remedy for a cap).
        eq(d.stop(), 0, "\n".join(d.stderr_lines[-20:]))
        eq(store_entries(d.data_dir), before, "the store after the stop")
        d.args = ["--map-size", "16M", "--no-grow"]
        d.start()
        eq(portal_snapshot(d, f.members), snap, "the store after the restart")
        eq(store_entries(d.data_dir), before, "the store after the restart")
        replies = resend(d, f, snap)
        log("doc %d bytes: %d refused requests resent, each landed once",
            doc_size, len(replies))
        bad = d.started_with_errors()
        eq(bad, [], "sanitizer reports")
        eq(d.stop(), 0, "\n".join(d.stderr_lines[-20:]))
        mdb_stat(d.data_dir)
    finally:
        d.cleanup()


def test_map_full():
    seed = int(os.environ.get("CF_SEED") or random.SystemRandom().randrange(1 << 30))
    log("seed %d", seed)
    for size in [4 << 10, 8 << 10, 32 << 10, 128 << 10, 200 << 10] if LONG \
            else [32 << 10]:
        fill_capped(size, seed + size)


def test_disk_full():
    if os.geteuid() != 0:
        log("skipped: mounting a tmpfs needs root")
        return
    tmp = tempfile.mkdtemp(prefix="cf-full-")
    mnt = os.path.join(tmp, "mnt")
    os.mkdir(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700",
                        "tmpfs", mnt], capture_output=True)
    if r.returncode != 0:
        log("skipped: cannot mount a tmpfs: %s", r.stderr.decode().strip())
        os.rmdir(mnt)
        os.rmdir(tmp)
        return
    d = None
    try:
        data = os.path.join(mnt, "var")
        d = RDaemon(clock=T0, data_dir=data)
        d.start()
        rng = random.Random(7)
        f = Filler(d, rng, 16 << 10)
        # Fill the filesystem but for 256 KiB; the store then hits ENOSPC.
        st = os.statvfs(mnt)
        ballast = os.path.join(mnt, "ballast")
        with open(ballast, "wb") as b:
            b.write(b"\0" * max(0, st.f_bavail * st.f_frsize - (256 << 10)))
        f.fill()
        _, snap = check_refusals(d, f, data)
        # Freeing space: the same process carries on.
        os.unlink(ballast)
        replies = resend(d, f, snap)
        check(any(l.startswith("claimflowd: the store takes writes again after ")
                  for l in d.stderr_lines), d.stderr_lines[-10:])
        log("disk full: %d refused requests resent to the same daemon, each "
            "landed once", len(replies))
        eq(d.started_with_errors(), [], "sanitizer reports")
        eq(d.stop(), 0, "\n".join(d.stderr_lines[-20:]))
        mdb_stat(data)
    finally:
        if d is not None:
            d.cleanup()
        subprocess.run(["umount", mnt])
        os.rmdir(mnt)
        os.rmdir(tmp)


if __name__ == "__main__":
    run(globals())

"""Integration: write sets - the storage seam's contract (docs/storage.md).

Every committed batch hands the commit hook its complete write set; applied
in order to an empty store, the write sets give the same logical content
(mdb_dump of every database) and the same batch sequence.  The lifecycle
and security tests run with the recorder on too (meson: writesets_lifecycle,
writesets_security, CF_WRITESETS=1); this file drives one store through
every kind of write - creates, transitions, documents, representations
and their evidence, consent fan-out,
timers firing and their deletion, idempotency pruning, access-log writes,
purge and its compaction - and checks the log holds each kind, then that
the checker itself catches a missing batch."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

import struct  # noqa: E402

import msgpack  # noqa: E402

from harness import Daemon, T0, check, cpr, eq, new_id, ok, op, portal, run_tests  # noqa: E402

PDF = b"%PDF-1.4\n% writesets\ntrailer\n%%EOF\n"
DBS = ["meta", "claims", "history", "idx_state", "idx_member", "idx_flag", "timers", "idem",
       "idem_age", "members", "docs", "workflows", "doc_refs", "audit", "audit_claim",
       "audit_actor", "idx_closed", "changes", "undo", "reps", "reps_by",
       "counts"]


def read_log(path):
    """[(seq, [(db name, key, value or None)...])] of the committed batches."""
    data = open(path, "rb").read()
    out, at = [], 0
    while at < len(data):
        tag = data[at:at + 1]
        if tag == b"W":
            (n,) = struct.unpack(">I", data[at + 1:at + 5])
            ws = msgpack.unpackb(data[at + 5:at + 5 + n], raw=True)
            eq(ws[0], 1)                        # the encoding's version
            seq = ws[1]
            entries = [(DBS[ws[i]], ws[i + 1], ws[i + 2]) for i in range(2, len(ws), 3)]
            while out and out[-1][0] >= seq:
                out.pop()
            out.append((seq, entries))
            at += 5 + n
        elif tag == b"A":
            (seq,) = struct.unpack(">Q", data[at + 1:at + 9])
            if out and out[-1][0] == seq:
                out.pop()
            at += 9
        else:
            raise AssertionError("not a write-set log at byte %d" % at)
    return out


def _scenario(d):
    p, h = portal(d), op(d, "hanne")
    sofie = op(d, "sofie")
    m1, m2 = cpr(1, 1, 1990, 1234), cpr(2, 2, 1980, 2345)
    c1 = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim", "member": m1,
                    "data": {"member": m1, "treatment": "physiotherapy",
                             "description": "knee"}}))["claim"]["id"]
    c2 = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim", "member": m2,
                    "data": {"member": m2, "treatment": "physiotherapy",
                             "description": "back"}}))["claim"]["id"]
    for c, m in ((c1, m1), (c2, m2)):
        # Different bytes per claim: the purge deletes c2's document.
        ok(p.call({"op": "attach", "id": new_id(), "member": m, "claim": c, "kind": "referral",
                   "content_type": "application/pdf", "body": PDF + c.encode()}))
        # Consent fans out: the claim moves to review and its SLA timers start.
        eq(ok(p.call({"op": "consent.give", "id": new_id(), "member": m}))["moved"], [c])
    # A representation of m2 with its evidence (reps, reps_by, docs): the
    # purge below erases it with m2's data.
    ok(h.call({"op": "representation.add", "id": new_id(), "member": m2,
               "representative": cpr(3, 3, 1960, 3456), "kind": "attorney", "scope": ["read"],
               "evidence": {"content_type": "application/pdf", "body": PDF + b"power"}}))
    # An operator read: the access log and its two indexes.
    ok(h.call({"op": "get", "claim": c1}))
    # Two business days: the SLA timers fire (and are deleted), flags set.
    r = ok(h.call({"op": "clock.advance", "seconds": 3 * 86400}))
    check(r["fired"] >= 2, r)
    # c2 is withdrawn: final, and purgeable later.
    ok(p.call({"op": "send", "id": new_id(), "member": m2, "claim": c2,
               "event": "claim.withdrawn"}))
    # Past the idempotency retention (7 days) and the purge cut-off: the
    # next batches prune kept replies, the purge erases c2's data.
    ok(h.call({"op": "clock.advance", "seconds": 10 * 86400}))
    ok(h.call({"op": "ping"}))
    ok(h.call({"op": "get", "claim": c1}))
    r = ok(sofie.call({"op": "purge", "id": new_id(), "closed_before": "2026-12-05"}))
    eq(r["purged"], 1, r)
    return c1, c2


def test_every_kind_of_write_is_recorded_and_replays_exactly():
    d = Daemon(clock=T0)
    d.wslog = os.path.join(d.tmp, "writesets.log")
    with d:
        _scenario(d)
        d.stop()
        seq = d.check_writesets()
        batches = read_log(d.wslog)
        # Sequence numbers are contiguous from the store's creation.
        eq([b[0] for b in batches], list(range(1, seq + 1)))
        puts, dels = set(), set()
        for _, entries in batches:
            for db, _, val in entries:
                (dels if val is None else puts).add(db)
        # Every database is written; deletions of fired timers, of pruned
        # idempotency entries (and their age index), of the purged claim's
        # member link and document.
        for db in DBS:
            if db != "undo":        # a node's own (a cluster leader's): never in a write set
                check(db in puts, "no put in %s" % db)
        for db in ("timers", "idem", "idem_age", "idx_member", "idx_state", "docs",
                   "doc_refs", "members", "idx_closed", "reps", "reps_by"):
            check(db in dels, "no delete in %s" % db)
        # The store's own first batch: format and hash key.
        eq(sorted(k for _, k, _ in batches[0][1]), [b"format", b"hashkey"])
        d.start()       # (so that __exit__ stops it cleanly)


def test_the_check_catches_a_missing_batch():
    d = Daemon(clock=T0)
    d.wslog = os.path.join(d.tmp, "writesets.log")
    with d:
        p = portal(d)
        m = cpr(3, 3, 1970, 1234)
        ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim", "member": m,
                   "data": {"member": m, "treatment": "physiotherapy"}}))
        ok(p.call({"op": "consent.give", "id": new_id(), "member": m}))
        d.stop()
        d.check_writesets()
        # Drop the last batch from the log: the replay must differ.
        data = open(d.wslog, "rb").read()
        at, last = 0, 0
        while at < len(data):
            last = at
            at += 5 + struct.unpack(">I", data[at + 1:at + 5])[0] if data[at:at + 1] == b"W" \
                else 9
        open(d.wslog, "wb").write(data[:last])
        try:
            d.check_writesets()
        except AssertionError as e:
            check("differ" in str(e), e)
        else:
            raise AssertionError("a log without the last batch replayed equal")
        d.wslog = None
        d.start()


if __name__ == "__main__":
    run_tests(globals())

"""test_changes.py: the change feed (`changes`, docs/protocol.md) and the
batch sequence on published events, through the real daemon."""

from harness import (Daemon, Subscriber, T0, check, cpr, eq, err, new_id, ok, op, portal,
                     run_tests)


def _create(p, m, treatment="chiropractic"):
    return ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                      "member": m, "data": {"member": m, "treatment": treatment}}))["claim"]


def test_published_events_carry_their_batch_and_the_feed_repeats_them():
    with Daemon(clock=T0) as d:
        sub = Subscriber(d)
        p = portal(d)
        a, b = cpr(1, 1, 1990, 1234), cpr(2, 2, 1991, 1234)
        ca = _create(p, a)
        ok(p.call({"op": "consent.give", "id": new_id(), "member": a}))
        cb = _create(p, b)
        published = [sub.next()[1] for _ in range(3)]
        eq([(e["claim"], e["event"]) for e in published],
           [(ca["id"], "claim.created"), (ca["id"], "consent.given"),
            (cb["id"], "claim.created")])
        batches = [e["batch"] for e in published]
        check(batches[0] < batches[1] < batches[2], batches)
        # The operator's feed: the same events, the same maps, in order.
        o = op(d)
        r = ok(o.call({"op": "changes"}))
        eq(r["changes"], published)
        check("next" not in r, r)
        stats = ok(o.call({"op": "stats"}))
        eq(r["seq"], stats["seq"])
        # After a batch: only later ones.
        r = ok(o.call({"op": "changes", "after": batches[0]}))
        eq(r["changes"], published[1:])
        r = ok(o.call({"op": "changes", "after": batches[2]}))
        eq(r["changes"], [])
        # Pages: a limit of 1 gives one batch and the cursor to go on.
        got, after = [], 0
        for _ in range(10):
            r = ok(o.call({"op": "changes", "after": after, "limit": 1}))
            got += r["changes"]
            if "next" not in r:
                break
            eq(r["next"], r["changes"][-1]["batch"])
            after = r["next"]
        eq(got, published)
        # A feed read in the same batch as a write does not show that
        # batch: it is not committed yet (it goes out live when it is).
        p.send({"op": "create", "id": new_id(), "workflow": "health_claim", "member": a,
                "data": {"member": a, "treatment": "chiropractic"}})
        o.send({"op": "changes", "after": batches[2]})
        p.recv()
        r = ok(o.recv())
        check(all(e["batch"] <= r["seq"] for e in r["changes"]), r)


def test_the_portal_sees_only_its_members_changes():
    with Daemon(clock=T0) as d:
        p = portal(d)
        a, b = cpr(3, 3, 1980, 1234), cpr(4, 4, 1981, 1234)
        ca = _create(p, a)
        _create(p, b)
        ok(p.call({"op": "consent.give", "id": new_id(), "member": b}))
        r = ok(p.call({"op": "changes", "member": a}))
        eq([(e["claim"], e["event"]) for e in r["changes"]], [(ca["id"], "claim.created")])
        check("field 'member' is required" in err(p.call({"op": "changes"}), "bad_request"))
        # A member with nothing: an empty feed, not an error.
        r = ok(p.call({"op": "changes", "member": cpr(5, 5, 1982, 1234)}))
        eq(r["changes"], [])


def test_bad_cursors_are_refused():
    with Daemon(clock=T0) as d:
        o = op(d)
        check("after" in err(o.call({"op": "changes", "after": -1}), "bad_request"))
        check("limit" in err(o.call({"op": "changes", "limit": 0}), "bad_request"))
        check("limit" in err(o.call({"op": "changes", "limit": 1001}), "bad_request"))
        check("after" in err(o.call({"op": "changes", "after": "x"}), "bad_request"))
        err(o.call({"op": "changes", "colour": 1}), "bad_request")


def test_the_feed_forgets_what_the_idempotency_records_forget():
    # A subscriber away longer than idempotency_days starts from a query:
    # entries older than that are pruned (as the batches go on).
    with Daemon(clock=T0) as d:
        p, o = portal(d), op(d)
        a = cpr(6, 6, 1983, 1234)
        _create(p, a)
        eq(len(ok(o.call({"op": "changes"}))["changes"]), 1)
        ok(o.call({"op": "clock.advance", "id": new_id(), "seconds": 8 * 86400}))
        _create(p, cpr(7, 7, 1984, 1234))
        r = ok(o.call({"op": "changes"}))
        eq([e["event"] for e in r["changes"]], ["claim.created"])
        eq(r["changes"][0]["at"], "2026-12-02T09:00:00Z")


if __name__ == "__main__":
    run_tests(globals())

"""Integration: a member's rights over their data, through the real daemon.

consent.get; the consent.expiring reminder 30 days before a consent runs
out (manual clock); the member's view of the access log (role and purpose,
operator ids only when configured); the export of everything held about a
member; Norwegian members on Norwegian calendars and currency.  Every
assertion is on exact codes and fields (docs/protocol.md)."""

import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, Subscriber, T0, check, cpr, eq, err, fnr,  # noqa: E402
                     new_id, ok, op, portal, run_tests)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"


# ------------------------------------------------------------- helpers ---
def create(p, member, treatment="physiotherapy"):
    return ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                      "member": member,
                      "data": {"member": member, "treatment": treatment}}))["claim"]


def give_consent(p, member):
    return ok(p.call({"op": "consent.give", "id": new_id(), "member": member}))


def history(c, claim_id, **kw):
    req = {"op": "history", "claim": claim_id}
    req.update(kw)
    return ok(c.call(req))["events"]


# --------------------------------------------------------------- tests ---
def test_consent_get():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m = cpr(2, 2, 1980, 1111)
        # Never given: nil, exactly as for a member nobody knows.
        eq(ok(p.call({"op": "consent.get", "member": m})),
           {"ok": True, "consent": None})
        give_consent(p, m)
        want = {"member": m, "given_at": T0, "valid_until": "2027-11-24T09:00:00Z",
                "withdrawn_at": None, "given_by": "member", "channel": "portal"}
        eq(ok(p.call({"op": "consent.get", "member": m}))["consent"], want)
        # The id is echoed; a read takes no idempotency record.
        r = ok(p.call({"op": "consent.get", "id": "c-1", "member": m}))
        eq(r, {"ok": True, "id": "c-1", "consent": want})
        ok(h.call({"op": "clock.advance", "id": new_id(), "seconds": 3600}))
        r = ok(p.call({"op": "consent.withdraw", "id": new_id(), "member": m}))
        want["withdrawn_at"] = "2026-11-24T10:00:00Z"
        eq(r["consent"], want)
        eq(ok(p.call({"op": "consent.get", "member": m}))["consent"], want)
        # Bad input, the portal only, no stray keys.
        err(p.call({"op": "consent.get"}), "bad_request")
        err(p.call({"op": "consent.get", "member": "123"}), "bad_request")
        err(p.call({"op": "consent.get", "member": m, "claim": "x"}), "bad_request")
        err(h.call({"op": "consent.get"}), "forbidden")



# A consent given at T0 runs until a year later; its reminder is due 30
# days (of 24 hours) before that.
VALID_UNTIL = "2027-11-24T09:00:00Z"
REMINDER = "2027-10-25T09:00:00Z"


def test_consent_expiring_30_days_before():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m, other = cpr(3, 3, 1970, 2222), cpr(4, 4, 1971, 3333)
        a = create(p, m)                               # awaiting_referral
        w = create(p, m)
        ok(p.call({"op": "send", "id": new_id(), "member": m, "claim": w["id"],
                   "event": "claim.withdrawn"}))       # final: no reminder
        q = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry",
                       "member": m, "data": {"claim": a["id"], "text": "when?"}}))["claim"]
        o = create(p, other)
        give_consent(p, m)
        give_consent(p, other)
        # The other member renews 10 days later: their first reminder is stale.
        ok(h.call({"op": "clock.advance", "id": new_id(), "seconds": 10 * 86400}))
        give_consent(p, other)
        sub = Subscriber(d, "health_claim/consent.expiring")
        # One second before: nothing yet.
        ok(h.call({"op": "clock.set", "id": new_id(), "at": "2027-10-25T08:59:59Z"}))
        for c in (a, q, w, o):
            check(all(e["event"] != "consent.expiring" for e in history(h, c["id"])), c)
        # Exactly 30 days before: the reminder, in each open claim's history.
        r = ok(h.call({"op": "clock.advance", "id": new_id(), "seconds": 1}))
        eq((r["now"], r["fired"]), (REMINDER, 1), r)
        for c, state, flags in ((a, "awaiting_referral", []), (q, "open", ["sla.breached"])):
            ev = history(h, c["id"])[-1]
            eq({k: ev[k] for k in ("event", "at", "from", "to", "actor", "data")},
               {"event": "consent.expiring", "at": REMINDER, "from": state, "to": state,
                "actor": "system", "data": {"valid_until": VALID_UNTIL}}, ev)
            got = ok(p.call({"op": "get", "member": m, "claim": c["id"]}))["claim"]
            eq((got["state"], got["flags"]), (state, flags), got)
        eq(history(h, w["id"])[-1]["event"], "claim.withdrawn")
        check(all(e["event"] != "consent.expiring" for e in history(h, o["id"])))
        topic, ev = sub.next()
        eq((topic, ev["claim"], ev["event"], ev["workflow"]),
           ("health_claim/consent.expiring", a["id"], "consent.expiring", "health_claim"), ev)
        # The consent itself is unchanged and still valid.
        eq(ok(p.call({"op": "consent.get", "member": m}))["consent"]["valid_until"],
           VALID_UNTIL)
        # The renewed consent's reminder comes 30 days before its own end.
        r = ok(h.call({"op": "clock.set", "id": new_id(), "at": "2027-11-04T08:59:59Z"}))
        eq(r["fired"], 0, r)
        r = ok(h.call({"op": "clock.advance", "id": new_id(), "seconds": 1}))
        eq(r["fired"], 1, r)
        ev = history(h, o["id"])[-1]
        eq((ev["event"], ev["at"], ev["data"]),
           ("consent.expiring", "2027-11-04T09:00:00Z",
            {"valid_until": "2027-12-04T09:00:00Z"}), ev)
        # Then the expiry itself moves the first member's open claims.
        r = ok(h.call({"op": "clock.set", "id": new_id(), "at": VALID_UNTIL}))
        eq(history(h, a["id"])[-1]["event"], "consent.expired")


def test_withdrawn_consent_sends_no_reminder():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m = cpr(5, 5, 1975, 1212)
        a = create(p, m)
        give_consent(p, m)
        ok(p.call({"op": "consent.withdraw", "id": new_id(), "member": m}))
        n = len(history(h, a["id"]))
        r = ok(h.call({"op": "clock.set", "id": new_id(), "at": VALID_UNTIL}))
        eq(r["fired"], 0, r)
        eq(len(history(h, a["id"])), n)


if __name__ == "__main__":
    run_tests(globals())

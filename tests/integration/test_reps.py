"""Integration: who may act for a member (issue 15), through the real daemon.

Representations (parents, guardians, next of kin, third parties), the `by`
of portal requests and its scope check, the age rules for consent (under
15: a parent or guardian; 15 to 17: only the member, with `involved`; 18
and over: the member or a representative), the lapse of a parent's consent
on the child's 15th birthday and the end of a parent's representation on
the 18th (manual clock), the Health Team recording calls (channel phone),
and `by` / `channel` / `reference` in every event, field by field.  The
children's CPR numbers are 2000s births (7th digit 4 or 5)."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLAIMCTL, WORKFLOWS_DIR, Daemon, Subscriber, T0, check, cpr, eq, err, fnr, new_id, ok, op,  # noqa: E402
                     portal, run_tests)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
CUSTODY = b"%PDF-1.4 custody certificate\n%%EOF\n"

CHILD_12 = "1501145123"     # 15 January 2014: 12 at T0 (the boy)
CHILD_14 = "2012114123"     # 20 December 2011: 14 at T0, 15 on 2026-12-20
CHILD_16 = "0505104123"     # 5 May 2010: 16 at T0
CHILD_17 = "1012084123"     # 10 December 2008: 17 at T0, 18 on 2026-12-10
MOTHER = cpr(1, 3, 1980, 1234, dash=False)
FATHER = cpr(2, 4, 1979, 2345, dash=False)
ADULT = cpr(5, 6, 1950, 3456, dash=False)
FRIEND = cpr(7, 8, 1975, 1111, dash=False)
KIN = cpr(9, 10, 1978, 2222, dash=False)


# ------------------------------------------------------------- helpers ---
def create(p, member, by=None, treatment="physiotherapy"):
    req = {"op": "create", "id": new_id(), "workflow": "health_claim", "member": member,
           "data": {"member": member, "treatment": treatment}}
    if by:
        req["by"] = by
    return ok(p.call(req))["claim"]


def attach(p, member, claim, by=None):
    req = {"op": "attach", "id": new_id(), "member": member, "claim": claim,
           "kind": "referral", "content_type": "application/pdf", "body": PDF}
    if by:
        req["by"] = by
    return ok(p.call(req))["claim"]


def consent(p, member, by=None, **kw):
    req = {"op": "consent.give", "id": new_id(), "member": member}
    if by:
        req["by"] = by
    req.update(kw)
    return p.call(req)


def add(h, member, rep, kind, scope, **kw):
    req = {"op": "representation.add", "id": new_id(), "member": member, "representative": rep,
           "kind": kind, "scope": scope,
           "evidence": {"content_type": "application/pdf", "body": CUSTODY}}
    req.update(kw)
    return h.call(req)


def get(p, member, claim, by=None):
    req = {"op": "get", "member": member, "claim": claim}
    if by:
        req["by"] = by
    return p.call(req)


def claimctl(d, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMFLOW_")}
    env["CLAIMFLOW_WORKFLOWS"] = WORKFLOWS_DIR      # local time: the dk calendar
    r = subprocess.run([CLAIMCTL] + list(args) + ["--endpoint", d.operator, "--as", "hanne"],
                       capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env=env)
    eq(r.returncode, 0, r.stdout, r.stderr)
    return r.stdout


def set_clock(h, at):
    return ok(h.call({"op": "clock.set", "id": new_id(), "at": at}))


def history(h, claim):
    return ok(h.call({"op": "history", "claim": claim}))["events"]


def state(h, claim):
    return ok(h.call({"op": "get", "claim": claim}))["claim"]["state"]


# --------------------------------------------------------------- tests ---
def test_child_under_15_refused_and_parent_consents():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        c = create(p, CHILD_12)
        attach(p, CHILD_12, c["id"])
        # The 12-year-old's own consent: refused, and the message names the rule.
        msg = err(consent(p, CHILD_12), "forbidden")
        eq(msg, "a member under 15 cannot give consent; a parent or guardian must")
        eq(state(h, c["id"]), "awaiting_consent")
        # The mother, not yet registered: no representation.
        msg = err(consent(p, CHILD_12, by=MOTHER), "forbidden")
        check("no representation" in msg, msg)
        check(MOTHER not in msg and CHILD_12 not in msg, msg)
        rep = ok(add(h, CHILD_12, MOTHER, "parent", ["consent", "claims", "read"]))
        r = rep["representation"]
        eq((r["member"], r["representative"], r["kind"], r["scope"], r["registered_by"]),
           (CHILD_12, MOTHER, "parent", ["consent", "claims", "read"], "hanne"))
        # A parent's representation ends by itself on the 18th birthday.
        eq((r["valid_from"], r["valid_until"], r["active"]), (T0, "2032-01-14T23:00:00Z", True))
        eq(sorted(r["evidence"]), ["kind", "sha256", "size"])
        eq(r["evidence"]["size"], len(CUSTODY))
        g = ok(consent(p, CHILD_12, by=MOTHER))
        eq(g["moved"], [c["id"]])
        eq(g["consent"]["given_by"], MOTHER)
        eq(g["consent"]["channel"], "portal")
        # 15th birthday 2029-01-15 is after the year: it expires first.
        eq(g["consent"]["lapses_at"], None)
        eq(state(h, c["id"]), "in_review")
        ev = history(h, c["id"])[-1]
        eq((ev["event"], ev["actor"], ev["by"], ev["channel"]),
           ("consent.given", "system", MOTHER, "portal"))
        check("reference" not in ev, ev)
        # The mother files a claim for the boy and reads it; a father with
        # no representation cannot.
        c2 = create(p, CHILD_12, by=MOTHER, treatment="chiropractic")
        eq(c2["state"], "in_review")
        ok(get(p, CHILD_12, c2["id"], by=MOTHER))
        err(get(p, CHILD_12, c2["id"], by=FATHER), "forbidden")
        ev = history(h, c2["id"])[0]
        eq((ev["event"], ev["actor"], ev["by"], ev["channel"]),
           ("claim.created", "member", MOTHER, "portal"))
        # claimctl prints who acted and how; the person id masked to the
        # birth date unless --reveal (which the access log records).
        out = claimctl(d, "history", c2["id"])
        row = out.splitlines()[1].split()
        eq(row[-2:], [MOTHER[:6] + "XXXX", "portal"], out)
        check(MOTHER not in out and CHILD_12 not in out, out)
        out = claimctl(d, "history", c2["id"], "--reveal")
        eq(out.splitlines()[1].split()[-2:], [MOTHER, "portal"], out)
        log = ok(op(d, "aud").call({"op": "audit", "claim": c2["id"]}))["entries"]
        eq([x["purpose"] for x in log if x["op"] == "history"][-1],
           "case handling (person ids revealed)")


def test_parent_consent_lapses_on_15th_birthday_and_the_young_person_consents():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        ok(add(h, CHILD_14, MOTHER, "parent", ["consent", "claims"]))
        c = create(p, CHILD_14, by=MOTHER)
        attach(p, CHILD_14, c["id"], by=MOTHER)
        g = ok(consent(p, CHILD_14, by=MOTHER))
        # The portal sees it coming: it lapses on the 15th birthday, at
        # midnight in Copenhagen (23:00 UTC the day before, in winter).
        eq((g["consent"]["valid_until"], g["consent"]["lapses_at"]),
           ("2026-12-19T23:00:00Z", "2026-12-19T23:00:00Z"))
        eq(ok(p.call({"op": "consent.get", "member": CHILD_14}))["consent"]["lapses_at"],
           "2026-12-19T23:00:00Z")
        eq(state(h, c["id"]), "in_review")
        ok(h.call({"op": "send", "id": new_id(), "claim": c["id"], "event": "decision.approved"}))
        set_clock(h, "2026-12-19T22:59:59Z")
        eq(state(h, c["id"]), "approved")
        set_clock(h, "2026-12-19T23:00:00Z")
        # The claim pauses; the event says why.
        eq(state(h, c["id"]), "consent_withdrawn")
        ev = history(h, c["id"])[-1]
        eq((ev["event"], ev["actor"], ev["by"], ev["channel"], ev["data"]),
           ("consent.expired", "system", None, "system",
            {"reason": "age_15", "lapses_at": "2026-12-19T23:00:00Z"}))
        # Now 15: the mother can no longer consent for her...
        msg = err(consent(p, CHILD_14, by=MOTHER), "forbidden")
        eq(msg, "a member aged 15 to 17 must give consent themselves; a parent or guardian "
                "cannot do it for them (record the parents involved in 'involved')")
        # ...the young person consents herself, and the claim resumes.
        g = ok(consent(p, CHILD_14, involved=[MOTHER]))
        eq(g["moved"], [c["id"]])
        eq((g["consent"]["given_by"], g["consent"]["lapses_at"], g["consent"]["involved"]),
           ("member", None, [MOTHER]))
        eq(state(h, c["id"]), "approved")
        ev = history(h, c["id"])[-1]
        eq((ev["event"], ev["by"], ev["channel"]), ("consent.given", None, "portal"))


def test_16_year_old_consents_with_involved_parent_alone_refused():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        ok(add(h, CHILD_16, FATHER, "parent", ["consent", "claims", "read"]))
        c = create(p, CHILD_16, treatment="chiropractic")
        eq(c["state"], "awaiting_consent")
        msg = err(consent(p, CHILD_16, by=FATHER), "forbidden")
        check(msg.startswith("a member aged 15 to 17 must give consent themselves"), msg)
        # `involved` is for the young person's own consent only.
        msg = err(consent(p, ADULT, involved=[MOTHER]), "bad_request")
        check("'involved'" in msg, msg)
        err(consent(p, CHILD_16, involved=["not-an-id"]), "bad_request")
        g = ok(consent(p, CHILD_16, involved=[MOTHER, FATHER]))
        eq(g["consent"]["involved"], [MOTHER, FATHER])
        eq((g["consent"]["given_by"], g["consent"]["channel"]), ("member", "portal"))
        eq(g["moved"], [c["id"]])
        # The father still reads (scope read), and may not withdraw for her.
        ok(get(p, CHILD_16, c["id"], by=FATHER))
        msg = err(p.call({"op": "consent.withdraw", "id": new_id(), "member": CHILD_16,
                          "by": FATHER}), "forbidden")
        check("15 to 17" in msg, msg)


def test_a_16_year_old_assessed_unable_the_parent_decides():
    """Seed 001: a young person of 15-17 consents themselves unless the
    healthcare professional assessed them unable to appreciate the
    decision; then the custodial parent decides. The Health Team registers
    the parent with `decides` and the assessment as evidence."""
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        # `decides` is for a parent or guardian of a member aged 15 to 17,
        # with consent in scope, and must be a boolean.
        eq(err(add(h, CHILD_14, MOTHER, "parent", ["consent"], decides=True), "bad_request"),
           "field 'decides' is for a member aged 15 to 17 (under 15 a parent or guardian "
           "decides anyway)")
        eq(err(add(h, CHILD_16, MOTHER, "parent", ["claims"], decides=True), "bad_request"),
           "field 'decides' needs 'consent' in 'scope'")
        eq(err(add(op(d, "sofie"), CHILD_16, KIN, "next_of_kin", ["consent"], decides=True),
               "bad_request"), "field 'decides' is for a parent or guardian")
        eq(err(add(h, CHILD_16, MOTHER, "parent", ["consent"], decides="yes"), "bad_request"),
           "field 'decides' must be a boolean")
        r = ok(add(h, CHILD_16, MOTHER, "parent", ["consent", "claims", "read"], decides=True,
                   evidence={"content_type": "application/pdf", "kind": "assessment",
                             "body": b"%PDF-1.4 the doctor's assessment\n%%EOF\n"}))
        eq((r["representation"]["decides"], r["representation"]["evidence"]["kind"]),
           (True, "assessment"))
        c = create(p, CHILD_16, treatment="chiropractic")
        # The young person's own consent is refused, with the reason...
        eq(err(consent(p, CHILD_16), "forbidden"),
           "the member was assessed unable to appreciate the decision; their custodial parent "
           "or guardian must give consent for them")
        # ...and the deciding parent's is taken; the claim moves.
        g = ok(consent(p, CHILD_16, by=MOTHER))
        eq((g["consent"]["given_by"], g["moved"]), (MOTHER, [c["id"]]))
        # The other parent, registered without `decides`, still may not.
        ok(add(h, CHILD_16, FATHER, "parent", ["consent", "read"]))
        check("15 to 17" in err(consent(p, CHILD_16, by=FATHER), "forbidden"))
        lst = ok(p.call({"op": "representation.list", "member": CHILD_16}))["representations"]
        eq(sorted((x["representative"], x["decides"]) for x in lst),
           sorted([(MOTHER, True), (FATHER, False)]))
        # Once the assessment's registration is revoked, she decides again.
        ok(h.call({"op": "representation.revoke", "id": new_id(), "member": CHILD_16,
                   "representative": MOTHER}))
        check("15 to 17" in err(p.call({"op": "consent.withdraw", "id": new_id(),
                                        "member": CHILD_16, "by": MOTHER}), "forbidden"))
        ok(p.call({"op": "consent.withdraw", "id": new_id(), "member": CHILD_16}))


def test_third_party_grant_scope_and_revoke():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        c = create(p, ADULT, treatment="chiropractic")
        # A child cannot grant; the adult can, for a time.
        msg = err(p.call({"op": "representation.grant", "id": new_id(), "member": CHILD_16,
                          "representative": FRIEND, "scope": ["read"],
                          "valid_until": "2027-06-30"}), "forbidden")
        check("under 18" in msg, msg)
        r = ok(p.call({"op": "representation.grant", "id": new_id(), "member": ADULT,
                       "representative": FRIEND, "scope": ["read"],
                       "valid_until": "2027-06-30"}))["representation"]
        eq((r["kind"], r["registered_by"], r["valid_until"], r["evidence"]),
           ("third_party", "member", "2027-06-30T22:00:00Z", None))
        # Used for get, and the member sees that read in the access log
        # (as a representative's, without the person id)...
        eq(ok(get(p, ADULT, c["id"], by=FRIEND))["claim"]["id"], c["id"])
        log = ok(p.call({"op": "access_log", "member": ADULT}))["entries"]
        eq([(e["op"], e["role"], e["purpose"], e["claims"]) for e in log],
           [("get", "representative", "read by the member's third_party", [c["id"]])])
        ok(p.call({"op": "history", "member": ADULT, "claim": c["id"], "by": FRIEND}))
        # ...refused for consent (scope) and for the claim's events.
        msg = err(consent(p, ADULT, by=FRIEND), "forbidden")
        eq(msg, "the representation of the member does not cover 'consent' (its scope: read)")
        msg = err(p.call({"op": "send", "id": new_id(), "member": ADULT, "claim": c["id"],
                          "by": FRIEND, "event": "claim.withdrawn"}), "forbidden")
        check("'claims'" in msg, msg)
        # Only the member grants; a representative cannot pass it on.
        err(p.call({"op": "representation.grant", "id": new_id(), "member": ADULT,
                    "by": FRIEND, "representative": KIN, "scope": ["read"],
                    "valid_until": "2027-06-30"}), "forbidden")
        # Both see it in their lists.
        mine = ok(p.call({"op": "representation.list", "member": ADULT}))["representations"]
        eq([(x["member"], x["representative"]) for x in mine], [(ADULT, FRIEND)])
        theirs = ok(p.call({"op": "representation.list", "member": FRIEND}))["representations"]
        eq([(x["member"], x["representative"]) for x in theirs], [(ADULT, FRIEND)])
        r = ok(p.call({"op": "representation.revoke", "id": new_id(), "member": ADULT,
                       "representative": FRIEND}))["representation"]
        eq((r["revoked_at"], r["active"]), (T0, False))
        msg = err(get(p, ADULT, c["id"], by=FRIEND), "forbidden")
        check("no representation" in msg, msg)
        err(p.call({"op": "representation.revoke", "id": new_id(), "member": ADULT,
                    "representative": FRIEND}), "not_found")


def test_complaints_scope_follows_the_workflow():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        c = create(p, ADULT, treatment="chiropractic")
        ok(consent(p, ADULT))
        ok(p.call({"op": "representation.grant", "id": new_id(), "member": ADULT,
                   "representative": FRIEND, "scope": ["complaints", "read"],
                   "valid_until": "2027-06-30"}))
        ok(h.call({"op": "send", "id": new_id(), "claim": c["id"], "event": "decision.denied",
                   "data": {"reason": "not covered"}}))
        # A complaint follows a reconsideration the department upheld (issue 16).
        ok(p.call({"op": "send", "id": new_id(), "member": ADULT, "claim": c["id"],
                   "event": "reconsideration.requested", "data": {"text": "please"}}))
        ok(h.call({"op": "send", "id": new_id(), "claim": c["id"], "event": "decision.upheld",
                   "data": {"reason": "still not covered"}}))
        # complaint.filed needs `complaints` (the default for complaint.*)...
        r = ok(p.call({"op": "send", "id": new_id(), "member": ADULT, "claim": c["id"],
                       "by": FRIEND, "event": "complaint.filed",
                       "data": {"text": "please look again"}}))
        eq(r["claim"]["state"], "complaint_review")
        ev = history(h, c["id"])[-1]
        eq((ev["event"], ev["actor"], ev["by"], ev["channel"]),
           ("complaint.filed", "member", FRIEND, "portal"))
        # ...and nothing else: creating a claim needs `claims`.
        msg = err(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                          "member": ADULT, "by": FRIEND,
                          "data": {"member": ADULT, "treatment": "scan"}}), "forbidden")
        eq(msg, "the representation of the member does not cover 'claims' (its scope: "
                "complaints, read)")


def test_operators_read_the_evidence():
    """representation.evidence: the document a representation rests on, for
    the operators who check it (handler, supervisor, auditor), whole or in
    ranges, each read in the access log."""
    with Daemon(clock=T0) as d:
        p, h, a = portal(d), op(d), op(d, "aud")
        ok(add(h, CHILD_12, MOTHER, "parent", ["consent", "read"]))
        got = ok(a.call({"op": "representation.evidence", "member": CHILD_12,
                         "representative": MOTHER}))["document"]
        eq((got["kind"], got["content_type"], got["size"], got["body"]),
           ("evidence", "application/pdf", len(CUSTODY), CUSTODY))
        part = ok(h.call({"op": "representation.evidence", "member": CHILD_12,
                          "representative": MOTHER, "offset": 4, "length": 6}))["document"]
        eq((part["body"], part["offset"]), (CUSTODY[4:10], 4))
        # A member's own grant has none; an unknown pair is not found.
        ok(p.call({"op": "representation.grant", "id": new_id(), "member": ADULT,
                   "representative": FRIEND, "scope": ["read"], "valid_until": "2027-06-30"}))
        eq(err(h.call({"op": "representation.evidence", "member": ADULT,
                       "representative": FRIEND}), "not_found"),
           "the representation has no evidence document (a member's own grant)")
        eq(err(h.call({"op": "representation.evidence", "member": ADULT,
                       "representative": MOTHER}), "not_found"),
           "no representation of the member by that person")
        eq(err(h.call({"op": "representation.evidence", "member": "not-an-id",
                       "representative": MOTHER}), "bad_request"),
           "field 'member' is not a valid person id")
        # Operators only.
        eq(err(p.call({"op": "representation.evidence", "member": CHILD_12,
                       "representative": MOTHER}), "forbidden"),
           "op 'representation.evidence' is not served on the portal endpoint")
        log = ok(a.call({"op": "audit", "operator": "aud"}))["entries"]
        check(any(x["op"] == "representation.evidence" for x in log), log)


def test_next_of_kin_needs_a_supervisor():
    with Daemon(clock=T0) as d:
        p, h, s = portal(d), op(d), op(d, "sofie")
        c = create(p, ADULT, treatment="chiropractic")
        msg = err(add(h, ADULT, KIN, "next_of_kin", ["consent", "read"]), "forbidden")
        eq(msg, "a next_of_kin or guardian representation of an adult must be registered by "
                "a supervisor")
        err(consent(p, ADULT, by=KIN), "forbidden")
        # Evidence is required.
        req = {"op": "representation.add", "id": new_id(), "member": ADULT, "representative": KIN,
               "kind": "next_of_kin", "scope": ["consent"]}
        msg = err(s.call(req), "bad_request")
        check("'evidence'" in msg, msg)
        r = ok(add(s, ADULT, KIN, "next_of_kin", ["consent", "read"]))["representation"]
        eq((r["registered_by"], r["valid_until"]), ("sofie", None))
        g = ok(consent(p, ADULT, by=KIN))
        eq((g["consent"]["given_by"], g["moved"]), (KIN, [c["id"]]))
        # A handler cannot end it either.
        err(h.call({"op": "representation.revoke", "id": new_id(), "member": ADULT,
                    "representative": KIN}), "forbidden")
        # The operator's list shows it, and so does the member's export.
        lst = ok(h.call({"op": "representation.list", "member": ADULT}))["representations"]
        eq([(x["kind"], x["active"]) for x in lst], [("next_of_kin", True)])
        ex = ok(p.call({"op": "export", "member": ADULT}))
        eq(ex["representations"], lst)


def test_representation_ends_on_the_18th_birthday():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        c = create(p, CHILD_17, treatment="chiropractic")
        r = ok(add(h, CHILD_17, MOTHER, "parent", ["claims", "read"],
                   valid_until="2030-01-01"))["representation"]
        # Asked for longer: a parent's authority ends at 18 all the same, at
        # the birthday's local midnight (Copenhagen: 23:00 UTC in winter).
        eq(r["valid_until"], "2026-12-09T23:00:00Z")
        ok(get(p, CHILD_17, c["id"], by=MOTHER))
        before = ok(h.call({"op": "stats"}))["timers"]["pending"]
        set_clock(h, "2026-12-09T22:59:59Z")
        ok(get(p, CHILD_17, c["id"], by=MOTHER))
        r = set_clock(h, "2026-12-09T23:00:00Z")
        check(r["fired"] >= 1, r)
        eq(ok(h.call({"op": "stats"}))["timers"]["pending"], before - 1)
        msg = err(get(p, CHILD_17, c["id"], by=MOTHER), "forbidden")
        check("no representation" in msg, msg)
        lst = ok(p.call({"op": "representation.list", "member": CHILD_17}))["representations"]
        eq([(x["active"], x["ended_at"], x["revoked_at"]) for x in lst],
           [(False, "2026-12-09T23:00:00Z", None)])
        # An adult guardianship registered with its own end outlives the 18th.
        r = ok(add(op(d, "sofie"), CHILD_14, KIN, "guardian", ["read"],
                   valid_until="2031-01-01"))["representation"]
        eq(r["valid_until"], "2031-01-01T23:00:00Z")
        # Parents of adults, and third parties of children, are not a thing.
        err(add(h, ADULT, MOTHER, "parent", ["read"]), "forbidden")
        err(add(h, CHILD_14, FRIEND, "third_party", ["read"]), "forbidden")
        # Nor a child representing someone.
        msg = err(add(h, ADULT, CHILD_16, "attorney", ["read"]), "forbidden")
        eq(msg, "a representative must be 18 or over")


def test_birthdays_begin_at_local_midnight():
    """A member turns 18 at midnight where they live, not at 00:00 UTC: in
    summer (CEST) that is 22:00 UTC the day before, for a Danish CPR in
    Copenhagen and a Norwegian fødselsnummer in Oslo alike. Until then only
    a parent may act; from then the member authorises a third party."""
    dk = "1006094123"                                   # 10 June 2009
    no = fnr(day=10, month=6, year=2009)

    def grant(p, m):
        return p.call({"op": "representation.grant", "id": new_id(), "member": m,
                       "representative": FRIEND, "scope": ["read"], "valid_until": "2027-12-31"})

    with Daemon(clock="2027-06-09T21:59:59Z") as d:
        p, h = portal(d), op(d)
        for m in (dk, no):
            msg = err(grant(p, m), "forbidden")
            eq(msg, "a member under 18 cannot authorise a third party; a parent or guardian "
                    "acts for them")
            r = ok(add(h, m, MOTHER, "parent", ["read"]))["representation"]
            eq(r["valid_until"], "2027-06-09T22:00:00Z")
        set_clock(h, "2027-06-09T22:00:00Z")
        for m in (dk, no):
            eq(ok(grant(p, m))["representation"]["kind"], "third_party")
            lst = ok(p.call({"op": "representation.list", "member": m}))["representations"]
            eq(sorted((x["kind"], x["active"]) for x in lst),
               [("parent", False), ("third_party", True)])


def test_claimctl_representation():
    with Daemon(clock=T0) as d:
        ev = os.path.join(d.tmp, "custody.pdf")
        with open(ev, "wb") as f:
            f.write(CUSTODY)
        out = claimctl(d, "representation", "add", CHILD_12, MOTHER, "--kind", "parent",
                       "--scope", "consent,claims,read", "--evidence", ev)
        lines = out.splitlines()
        eq(lines[0].split(), ["MEMBER", "REPRESENTATIVE", "KIND", "SCOPE", "VALID", "UNTIL",
                              "STATE"], out)
        eq(lines[1].split(), [CHILD_12[:6] + "XXXX", MOTHER[:6] + "XXXX", "parent",
                              "consent,claims,read", "2032-01-15", "00:00", "active"], out)
        out = claimctl(d, "representation", "list", CHILD_12, "--json", "--reveal")
        got = json.loads(out)["representations"]
        eq([(x["member"], x["representative"], x["evidence"]["size"]) for x in got],
           [(CHILD_12, MOTHER, len(CUSTODY))])
        # The evidence back, in ranges, SHA-256 checked, into a file.
        got = os.path.join(d.tmp, "back.pdf")
        claimctl(d, "representation", "evidence", CHILD_12, MOTHER, "-o", got)
        with open(got, "rb") as f:
            eq(f.read(), CUSTODY)
        check(not os.path.exists(got + ".partial"))
        out = claimctl(d, "representation", "revoke", CHILD_12, MOTHER)
        eq(out.splitlines()[1].split()[-1], "revoked", out)
        # The mother no longer acts for him.
        err(consent(portal(d), CHILD_12, by=MOTHER), "forbidden")
        # --decides: the parent who decides for an assessed 16-year-old.
        out = claimctl(d, "representation", "add", CHILD_16, FATHER, "--kind", "parent",
                       "--scope", "consent,read", "--evidence", ev, "--evidence-kind",
                       "assessment", "--decides")
        eq(out.splitlines()[1].split()[2], "parent+decides", out)
        ok(consent(portal(d), CHILD_16, by=FATHER))


def test_claimctl_records_calls():
    with Daemon(clock=T0) as d:
        h = op(d)
        out = claimctl(d, "create", "health_claim", "member=" + ADULT, "treatment=chiropractic",
                       "--by", ADULT, "--reference", "rec-7")
        cid, st = out.split(":")
        eq(st.strip(), "awaiting_consent", out)
        out = claimctl(d, "consent", "give", ADULT, "--by", ADULT, "--reference", "rec-8")
        eq(out.splitlines(), ["consent given: 1 claim moved on", "  " + cid], out)
        ok(h.call({"op": "send", "id": new_id(), "claim": cid, "event": "decision.denied",
                   "data": {"reason": "not covered"}}))
        claimctl(d, "send", cid, "reconsideration.requested", "text=again", "--by", ADULT,
                 "--reference", "rec-10")
        ok(h.call({"op": "send", "id": new_id(), "claim": cid, "event": "decision.upheld",
                   "data": {"reason": "still not covered"}}))
        out = claimctl(d, "send", cid, "complaint.filed", "text=please", "--by", ADULT,
                       "--reference", "rec-9")
        eq(out.strip(), cid + ": complaint_review", out)
        eq([(e["event"], e["actor"], e["channel"], e.get("reference")) for e in history(h, cid)],
           [("claim.created", "hanne", "phone", "rec-7"),
            ("consent.given", "system", "phone", "rec-8"),
            ("decision.denied", "hanne", "operator", None),
            ("reconsideration.requested", "hanne", "phone", "rec-10"),
            ("decision.upheld", "hanne", "operator", None),
            ("complaint.filed", "hanne", "phone", "rec-9")])
        # Without the call's fields: a usage error, nothing sent.
        r = subprocess.run([CLAIMCTL, "consent", "give", ADULT, "--endpoint", d.operator,
                            "--as", "hanne"], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        eq(r.returncode, 2, r.stderr)


def test_isolation_not_found_is_the_same():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        ok(add(h, CHILD_12, MOTHER, "parent", ["claims", "read"]))
        mine = create(p, CHILD_12, by=MOTHER)
        other = create(p, CHILD_16)
        # Another member's claim named under the represented child, and a
        # claim that does not exist: the same not_found, word for word.
        a = err(get(p, CHILD_12, other["id"], by=MOTHER), "not_found")
        b = err(get(p, CHILD_12, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", by=MOTHER), "not_found")
        eq(a, b)
        # The child she does not represent: refused by rule, nothing shown.
        msg = err(get(p, CHILD_16, other["id"], by=MOTHER), "forbidden")
        check(CHILD_16 not in msg and MOTHER not in msg, msg)
        err(p.call({"op": "query", "member": CHILD_16, "by": MOTHER}), "forbidden")
        got = ok(p.call({"op": "query", "member": CHILD_12, "by": MOTHER}))["claims"]
        eq([x["id"] for x in got], [mine["id"]])
        # Her list: only the child she represents.
        lst = ok(p.call({"op": "representation.list", "member": MOTHER}))["representations"]
        eq([x["member"] for x in lst], [CHILD_12])
        # The same request id from the mother and from the child's own
        # portal session do not collide.
        rid = new_id()
        ok(p.call({"op": "create", "id": rid, "workflow": "health_claim", "member": CHILD_12,
                   "by": MOTHER, "data": {"member": CHILD_12, "treatment": "scan"}}))
        ok(p.call({"op": "create", "id": rid, "workflow": "health_claim", "member": CHILD_12,
                   "data": {"member": CHILD_12, "treatment": "surgery"}}))
        # A portal session acting for the child (the client module's
        # `member` and `by` session fields, sent on every request, ping too).
        s = d.client(d.portal, {"member": CHILD_12, "by": MOTHER})
        ok(s.call({"op": "ping"}))
        got = ok(s.call({"op": "query"}))["claims"]
        eq(len(got), 3)
        err(s.call({"op": "ping", "by": "not-a-person"}), "bad_request")
        err(p.call({"op": "get", "claim": mine["id"], "by": MOTHER}), "bad_request")
        # The portal cannot claim a call.
        err(p.call({"op": "get", "member": CHILD_12, "claim": mine["id"],
                    "channel": "phone"}), "bad_request")


def test_health_team_by_phone():
    with Daemon(clock=T0) as d:
        p, h, a = portal(d), op(d), op(d, "aud")
        sub = Subscriber(d, "health_claim/")
        # Without the call's fields a handler still may not act as the member.
        err(h.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                    "data": {"member": ADULT, "treatment": "chiropractic"}}), "forbidden")
        call = {"channel": "phone", "by": ADULT, "reference": "rec-2026-11-24-0001"}
        bad = dict(call)
        del bad["reference"]
        err(h.call(dict({"op": "create", "id": new_id(), "workflow": "health_claim",
                         "data": {"member": ADULT, "treatment": "chiropractic"}}, **bad)),
            "bad_request")
        err(a.call(dict({"op": "create", "id": new_id(), "workflow": "health_claim",
                         "data": {"member": ADULT, "treatment": "chiropractic"}}, **call)),
            "forbidden")
        c = ok(h.call(dict({"op": "create", "id": new_id(), "workflow": "health_claim",
                            "data": {"member": ADULT, "treatment": "chiropractic"}},
                           **call)))["claim"]
        eq(c["state"], "awaiting_consent")
        g = ok(h.call(dict({"op": "consent.give", "id": new_id(), "member": ADULT}, **call)))
        eq(g["moved"], [c["id"]])
        eq((g["consent"]["given_by"], g["consent"]["channel"], g["consent"]["reference"]),
           ("member", "phone", "rec-2026-11-24-0001"))
        # A next of kin on the phone: the rules apply to `by`.
        kin_call = dict(call, by=KIN, reference="rec-2")
        msg = err(h.call(dict({"op": "consent.withdraw", "id": new_id(), "member": ADULT},
                              **kin_call)), "forbidden")
        check("no representation" in msg, msg)
        # Deny, then a complaint filed by phone for the member.
        ok(h.call({"op": "send", "id": new_id(), "claim": c["id"], "event": "decision.denied",
                   "data": {"reason": "not covered"}}))
        ok(h.call(dict({"op": "send", "id": new_id(), "claim": c["id"],
                        "event": "reconsideration.requested", "data": {"text": "again"}},
                       **dict(call, reference="rec-4"))))
        ok(h.call({"op": "send", "id": new_id(), "claim": c["id"], "event": "decision.upheld",
                   "data": {"reason": "still not covered"}}))
        ok(h.call(dict({"op": "send", "id": new_id(), "claim": c["id"],
                        "event": "complaint.filed", "data": {"text": "please reconsider"}},
                       **dict(call, reference="rec-3"))))
        ev = history(h, c["id"])
        want = [
            ("claim.created", "hanne", None, "phone", "rec-2026-11-24-0001"),
            ("consent.given", "system", None, "phone", "rec-2026-11-24-0001"),
            ("decision.denied", "hanne", None, "operator", None),
            ("reconsideration.requested", "hanne", None, "phone", "rec-4"),
            ("decision.upheld", "hanne", None, "operator", None),
            ("complaint.filed", "hanne", None, "phone", "rec-3"),
        ]
        eq([(e["event"], e["actor"], e["by"], e["channel"], e.get("reference")) for e in ev],
           want)
        # Published events carry the same.
        seen = [sub.next()[1] for _ in range(len(want))]
        eq([(e["event"], e["actor"], e["by"], e["channel"], e.get("reference")) for e in seen],
           want)
        # The access log says it was a call (its reference; no person id).
        log = ok(op(d, "aud").call({"op": "audit", "claim": c["id"]}))["entries"]
        check(("send", "phone call rec-3") in [(x["op"], x["purpose"]) for x in log], log)
        check(KIN not in repr(log) and ADULT not in repr(log), log)
        # A registered next of kin calls: by names them.
        ok(add(op(d, "sofie"), ADULT, KIN, "next_of_kin", ["consent", "complaints"]))
        w = ok(h.call(dict({"op": "consent.withdraw", "id": new_id(), "member": ADULT},
                           **kin_call)))
        eq(w["moved"], [c["id"]])
        ev = history(h, c["id"])[-1]
        eq((ev["event"], ev["actor"], ev["by"], ev["channel"], ev["reference"]),
           ("consent.withdrawn", "system", KIN, "phone", "rec-2"))


def test_purge_erases_representations_and_evidence():
    with Daemon(clock=T0) as d:
        p, h, s = portal(d), op(d), op(d, "sofie")
        ok(add(h, CHILD_12, MOTHER, "parent", ["claims", "read"]))
        c = create(p, CHILD_12, by=MOTHER)
        ok(p.call({"op": "send", "id": new_id(), "member": CHILD_12, "by": MOTHER,
                   "claim": c["id"], "event": "claim.withdrawn"}))
        ev = history(h, c["id"])
        eq([e["by"] for e in ev], [MOTHER, MOTHER])
        set_clock(h, "2027-01-01T00:00:00Z")
        r = ok(s.call({"op": "purge", "id": new_id(), "closed_before": "2026-12-31"}))
        eq(r["purged"], 1)
        # The history keeps its skeleton without who acted; the child's
        # representations and their evidence are gone.
        ev = history(h, c["id"])
        eq([(e["by"], e["channel"], e["data"]) for e in ev],
           [(None, "portal", {}), (None, "portal", {})])
        eq(ok(h.call({"op": "representation.list", "member": CHILD_12}))["representations"], [])
        eq(ok(p.call({"op": "representation.list", "member": MOTHER}))["representations"], [])


def test_backup_holds_representations_and_evidence():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        r = ok(add(h, CHILD_12, MOTHER, "parent", ["consent", "claims", "read"]))
        sha = r["representation"]["evidence"]["sha256"]
        c = create(p, CHILD_12, by=MOTHER, treatment="chiropractic")
        dest = os.path.join(d.tmp, "copy")
        b = subprocess.run([CLAIMCTL, "backup", dest, "--data", d.data_dir],
                           capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        eq(b.returncode, 0, b.stderr)
        with Daemon(clock=T0, data_dir=dest) as d2:
            p2 = portal(d2)
            lst = ok(p2.call({"op": "representation.list", "member": MOTHER}))["representations"]
            eq([(x["member"], x["evidence"]["sha256"], x["active"]) for x in lst],
               [(CHILD_12, sha, True)])
            # The copy's representation works: the mother consents there.
            eq(ok(consent(p2, CHILD_12, by=MOTHER))["moved"], [c["id"]])


if __name__ == "__main__":
    run_tests(globals())

"""Print docs/protocol.md's worked examples from a real run.

    CF_BUILDDIR=build/hC /usr/bin/python3 tests/integration/worked_example.py
    CF_BUILDDIR=build/hC /usr/bin/python3 tests/integration/worked_example.py reps

The second prints "Worked example: a mother and her daughter" (issue 15).

Runs claimflowd (manual clock, fresh store), takes one health_claim through
its whole life, and prints every request and reply as JSON in Markdown.
Bodies (bin) are shown as <bin N bytes>; long maps are kept whole so the
page shows exactly what the daemon says."""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import T0, Daemon, op, portal  # noqa: E402

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"


def show(x):
    if isinstance(x, bytes):
        return "<bin %d bytes>" % len(x)
    if isinstance(x, dict):
        return {k: show(v) for k, v in x.items()}
    if isinstance(x, list):
        return [show(v) for v in x]
    return x


def js(x, indent=None, width=100, pad=""):
    """JSON; with indent, a map or list is broken over lines only when it
    does not fit in width."""
    x = show(x)
    flat = json.dumps(x, ensure_ascii=False)
    if indent is None or len(pad) + len(flat) <= width or \
            not isinstance(x, (dict, list)) or not x:
        return flat
    inner = pad + " " * indent
    if isinstance(x, dict):
        items = ["%s%s: %s" % (inner, json.dumps(k, ensure_ascii=False),
                               js(v, indent, width, inner)) for k, v in x.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    items = [inner + js(v, indent, width, inner) for v in x]
    return "[\n" + ",\n".join(items) + "\n" + pad + "]"


def main():
    out = []

    def step(title, client, req, where):
        rep = client.call(req)
        out.append("%s\n\n```\n%s → %s\n← %s\n```\n"
                   % (title, where, js(req, 2), js(rep, 2)))
        return rep

    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m = "010190-1234"
        c = step("The member reports a claim for physiotherapy; it needs a "
                 "referral first:", p,
                 {"op": "create", "id": "portal-7f3a-0001", "workflow": "health_claim",
                  "member": m, "data": {"member": m, "treatment": "physiotherapy",
                                        "description": "knee after a fall"}},
                 "P")["claim"]
        cid = c["id"]
        step("The GP's referral is uploaded (a PDF; `body` is msgpack bin). "
             "The claim moves on to wait for consent:", p,
             {"op": "attach", "id": "portal-7f3a-0002", "member": m, "claim": cid,
              "kind": "referral", "content_type": "application/pdf", "body": PDF},
             "P")
        step("Treatment cannot start yet: the refusal says why:", p,
             {"op": "send", "id": "portal-7f3a-0003", "member": m, "claim": cid,
              "event": "treatment.started"}, "P")
        step("The member consents to the insurer processing health data; "
             "every claim of theirs waiting for it moves on (`moved`), and "
             "entering `in_review` starts the SLA timers (1 and 2 business "
             "days on the `dk` calendar):", p,
             {"op": "consent.give", "id": "portal-7f3a-0004", "member": m}, "P")
        step("The handler's queue:", h,
             {"op": "query", "actor": "hanne", "workflow": "health_claim",
              "state": "in_review"}, "O")
        step("A business day passes without a decision (the test clock); "
             "the warning timer fires:", h,
             {"op": "clock.advance", "id": "hanne-clock-1", "actor": "hanne", "seconds": 86400}, "O")
        step("The handler approves (the decision clears the deadline's flags):", h,
             {"op": "send", "id": "hanne-0001", "actor": "hanne", "claim": cid,
              "event": "decision.approved"}, "O")
        step("and issues a payment guarantee (1,500.00 kr, in øre):", h,
             {"op": "send", "id": "hanne-0002", "actor": "hanne", "claim": cid,
              "event": "guarantee.issued",
              "data": {"amount": 150000, "provider": "Fysioterapi Nord",
                       "valid_until": "2027-05-24"}}, "O")
        step("The member starts treatment; the claim waits for the provider's "
             "invoice:", p,
             {"op": "send", "id": "portal-7f3a-0005", "member": m, "claim": cid,
              "event": "treatment.started"}, "P")
        step("A retry of the same request (same `id`, same bytes) gets the "
             "same reply and changes nothing:", p,
             {"op": "send", "id": "portal-7f3a-0005", "member": m, "claim": cid,
              "event": "treatment.started"}, "P")
        step("The member attaches the provider's invoice (a PDF); the "
             "settlement's deadline starts (10 and 15 calendar days):", p,
             {"op": "attach", "id": "portal-7f3a-0006", "member": m, "claim": cid,
              "kind": "invoice", "content_type": "application/pdf", "body": PDF}, "P")
        step("The handler records the payment to the provider (not above the "
             "guarantee: a handler's larger amount is refused); `settled` is "
             "final:", h,
             {"op": "send", "id": "hanne-0003", "actor": "hanne", "claim": cid,
              "event": "settlement.paid",
              "data": {"amount": 150000, "paid_to": "provider",
                       "reference": "PAY-2026-0042"}}, "O")
        step("The whole history, gap-free by `seq`:", h,
             {"op": "history", "actor": "hanne", "claim": cid}, "O")
    print("\n".join(out))


def reps():
    out = []

    def step(title, client, req, where):
        rep = client.call(req)
        out.append("%s\n\n```\n%s → %s\n← %s\n```\n"
                   % (title, where, js(req, 2), js(rep, 2)))
        return rep

    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        girl, mother = "150114-4122", "010380-1234"
        step("The girl, 12, tries to consent herself through the portal; the "
             "refusal names the rule:", p,
             {"op": "consent.give", "id": "portal-9c1e-0001", "member": girl}, "P")
        step("The Health Team registers her mother as a parent with the "
             "custody certificate as evidence; a parent's representation ends "
             "by itself on the 18th birthday:", h,
             {"op": "representation.add", "id": "hanne-rep-1", "actor": "hanne",
              "member": girl, "representative": mother, "kind": "parent",
              "scope": ["consent", "claims", "read"],
              "evidence": {"content_type": "application/pdf", "body": PDF,
                           "kind": "custody"}}, "O")
        c = step("The mother, logged in to the portal, files a claim for her "
                 "daughter (`member` is the daughter, `by` the mother):", p,
                 {"op": "create", "id": "portal-9c1e-0002", "workflow": "health_claim",
                  "member": girl, "by": mother,
                  "data": {"member": girl, "treatment": "chiropractic"}}, "P")["claim"]
        step("and consents for her; the claim moves on:", p,
             {"op": "consent.give", "id": "portal-9c1e-0003", "member": girl, "by": mother},
             "P")
        step("The handler approves:", h,
             {"op": "send", "id": "hanne-9c1e-1", "actor": "hanne", "claim": c["id"],
              "event": "decision.approved"}, "O")
        step("Two years on (the test clock); the consent expired after its "
             "year (a reminder 30 days before, then `consent.expired`), and the claim "
             "waits in `consent_withdrawn`:", h,
             {"op": "clock.set", "id": "hanne-clock-2", "actor": "hanne",
              "at": "2028-11-24T09:00:00Z"}, "O")
        step("The mother renews it.  The girl turns 15 before the year is out, "
             "so the consent lapses on her birthday, and the portal sees it "
             "coming (`lapses_at`):", p,
             {"op": "consent.give", "id": "portal-9c1e-0004", "member": girl,
                     "by": mother}, "P")
        step("Her 15th birthday begins (midnight in Copenhagen, 23:00 UTC): "
             "the consent lapses and the claim pauses:", h,
             {"op": "clock.set", "id": "hanne-clock-3", "actor": "hanne",
              "at": "2029-01-14T23:00:00Z"}, "O")
        step("Her mother can no longer consent for her:", p,
             {"op": "consent.give", "id": "portal-9c1e-0005", "member": girl, "by": mother},
             "P")
        step("She consents herself, naming her mother as involved; the claim "
             "resumes where it was:", p,
             {"op": "consent.give", "id": "portal-9c1e-0006", "member": girl,
              "involved": [mother]}, "P")
        step("The claim's history says who acted, and how:", h,
             {"op": "history", "actor": "hanne", "claim": c["id"]}, "O")
    print("\n".join(out))


if __name__ == "__main__":
    reps() if sys.argv[1:] == ["reps"] else main()

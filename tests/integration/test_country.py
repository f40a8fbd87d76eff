"""Integration: country per member (issue 17), through the real claimflowd
and claimctl on a manual clock.

A claim's country is fixed at creation from its member's person id (CPR:
dk; fødselsnummer and D-number: no) or its parent claim; its decision
timers count business days in that country's calendar and its amounts are
in that country's currency.  Each scenario creates a Danish, a Norwegian
(fødselsnummer) and a Norwegian (D-number) claim at the same moment, each
straight into review (chiropractic, consent on file), and asserts the exact
due times of the two SLA timers (1bd warning, 2bd deadline; local clock
time 10:00, CEST, is 08:00Z)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402,F401

import subprocess  # noqa: E402

from harness import (CLAIMCTL, WORKFLOWS_DIR, Daemon, check, cpr, eq, fnr,  # noqa: E402
                     new_id, ok, op, portal, run_tests)

DK = cpr(1, 1, 1990, 1234)
NO_FNR = fnr(15, 6, 1985)
NO_DNR = fnr(1, 1, 1990, dnumber=True)
MEMBERS = (("dk", DK), ("fnr", NO_FNR), ("dnr", NO_DNR))
START = "2026-03-31T08:00:00Z"


def create(p, member, treatment="chiropractic"):
    return ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                      "member": member,
                      "data": {"member": member, "treatment": treatment}}))["claim"]


def set_clock(d, at):
    ok(op(d).call({"op": "clock.set", "at": at}))


def dues(c):
    return [(t["name"], t["due_at"]) for t in c["timers"]]


def in_review_at(d, at):
    """The three members' claims entering review at `at`: {who: claim}."""
    set_clock(d, at)
    p = portal(d)
    claims = {who: create(p, m) for who, m in MEMBERS}
    for c in claims.values():
        eq(c["state"], "in_review", c)
    return claims


def consent_all(d):
    p = portal(d)
    for _, m in MEMBERS:
        ok(p.call({"op": "consent.give", "id": new_id(), "member": m}))


def test_decision_timers_follow_the_members_calendar():
    with Daemon(clock=START) as d:
        consent_all(d)
        # Wed 1 April, before Easter: both countries close Thursday 2 April
        # (skjærtorsdag / skærtorsdag), Good Friday 3 April and Easter
        # Monday 6 April.
        c = in_review_at(d, "2026-04-01T08:00:00Z")
        for who in ("dk", "fnr", "dnr"):
            eq(dues(c[who]), [("decision_warning", "2026-04-07T08:00:00Z"),
                              ("decision_due", "2026-04-08T08:00:00Z")], who, c[who])
        # Thu 30 April: 1 May is a Norwegian public holiday, not a Danish one.
        c = in_review_at(d, "2026-04-30T08:00:00Z")
        eq(dues(c["dk"]), [("decision_warning", "2026-05-01T08:00:00Z"),
                           ("decision_due", "2026-05-04T08:00:00Z")], c["dk"])
        for who in ("fnr", "dnr"):
            eq(dues(c[who]), [("decision_warning", "2026-05-04T08:00:00Z"),
                              ("decision_due", "2026-05-05T08:00:00Z")], who, c[who])
        # Wed 13 May: Ascension (Thu 14 May) in both; 17 May 2026 is a Sunday.
        c = in_review_at(d, "2026-05-13T08:00:00Z")
        for who in ("dk", "fnr", "dnr"):
            eq(dues(c[who]), [("decision_warning", "2026-05-15T08:00:00Z"),
                              ("decision_due", "2026-05-18T08:00:00Z")], who, c[who])
        # Thu 4 June: the Danish calendar closes on grundlovsdag (Fri 5
        # June, calendars.yaml), the Norwegian one does not.
        c = in_review_at(d, "2026-06-04T08:00:00Z")
        eq(dues(c["dk"]), [("decision_warning", "2026-06-08T08:00:00Z"),
                           ("decision_due", "2026-06-09T08:00:00Z")], c["dk"])
        for who in ("fnr", "dnr"):
            eq(dues(c[who]), [("decision_warning", "2026-06-05T08:00:00Z"),
                              ("decision_due", "2026-06-08T08:00:00Z")], who, c[who])
        # Country and currency in the claim map, as created and as read.
        for who, country, currency in (("dk", "dk", "DKK"), ("fnr", "no", "NOK"),
                                       ("dnr", "no", "NOK")):
            got = ok(op(d, "aud").call({"op": "get", "claim": c[who]["id"]}))["claim"]
            eq((c[who]["country"], c[who]["currency"]), (country, currency), who, c[who])
            eq((got["country"], got["currency"]), (country, currency), who, got)
            eq(dues(got), dues(c[who]), who)


def test_timers_fire_on_the_members_calendar():
    """The SLA warning of a Norwegian claim entering review on Thu 30 April
    fires on Mon 4 May, not on 1 May (the issue's report); the Danish one
    on 1 May."""
    with Daemon(clock=START) as d:
        consent_all(d)
        c = in_review_at(d, "2026-04-30T08:00:00Z")
        set_clock(d, "2026-05-01T08:00:00Z")
        flags = {w: ok(op(d, "aud").call({"op": "get", "claim": c[w]["id"]}))["claim"]["flags"]
                 for w in ("dk", "fnr", "dnr")}
        eq(flags, {"dk": ["sla.warning"], "fnr": [], "dnr": []})
        set_clock(d, "2026-05-04T08:00:00Z")
        flags = {w: ok(op(d, "aud").call({"op": "get", "claim": c[w]["id"]}))["claim"]["flags"]
                 for w in ("dk", "fnr", "dnr")}
        eq(flags, {"dk": ["sla.warning", "sla.breached"], "fnr": ["sla.warning"],
                   "dnr": ["sla.warning"]})


def test_inquiry_takes_its_parents_country():
    with Daemon(clock=START) as d:
        consent_all(d)
        p = portal(d)
        for who, member, country, currency in (("fnr", NO_FNR, "no", "NOK"),
                                               ("dk", DK, "dk", "DKK")):
            parent = create(p, member)
            inq = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry",
                             "member": member,
                             "data": {"claim": parent["id"], "text": "Hvor langt er saken?"}}))
            inq = inq["claim"]
            eq((inq["parent"], inq["country"], inq["currency"]),
               (parent["id"], country, currency), who, inq)
            # Calendar days in the parent's zone: 10:00 local a day later.
            eq(dues(inq), [("response_warning", "2026-04-01T08:00:00Z"),
                           ("response_due", "2026-04-02T08:00:00Z")], who, inq)


def ctl(d, *args, actor="hanne"):
    env = dict(os.environ)
    for k in ("CLAIMFLOW_ENDPOINT", "CLAIMFLOW_OPERATOR", "CLAIMFLOW_CALENDAR", "COLUMNS"):
        env.pop(k, None)
    env["CLAIMFLOW_WORKFLOWS"] = WORKFLOWS_DIR
    p = subprocess.run([CLAIMCTL] + list(args) + ["--endpoint", d.operator, "--as", actor],
                       capture_output=True, text=True, timeout=60, env=env,
                       stdin=subprocess.DEVNULL)
    eq(p.returncode, 0, p.stdout, p.stderr)
    return p.stdout


def test_claimctl_shows_amounts_in_the_claims_currency():
    with Daemon(clock=START) as d:
        consent_all(d)
        p = portal(d)
        want = {DK: ("dk", "DKK", "1.500,00 kr."), NO_FNR: ("no", "NOK", "kr 1 500,00")}
        for member, (country, currency, shown) in want.items():
            cid = create(p, member)["id"]
            ctl(d, "approve", cid)
            ctl(d, "guarantee", cid, "--amount", "150000", "--provider", "Fysio Nord",
                "--valid-until", "2027-02-01")
            out = ctl(d, "show", cid)
            check("\ncountry    %s\ncurrency   %s\n" % (country, currency) in out, out)
            line = [ln for ln in out.splitlines() if "guarantee.issued" in ln]
            eq(len(line), 1, out)
            check(line[0].endswith("hanne   -   operator  amount: %s, provider: Fysio Nord, "
                                   "valid_until: 2027-02-01" % shown), line[0])
            hist = ctl(d, "history", cid).splitlines()
            eq(hist[0].split()[-1], "DETAIL", hist)
            g = [ln for ln in hist if "guarantee.issued" in ln]
            eq(len(g), 1, hist)
            check(g[0].endswith("hanne   -   operator  amount: %s, provider: Fysio Nord, "
                                "valid_until: 2027-02-01" % shown), g[0])
            # --json stays the protocol's raw values.
            import json
            doc = json.loads(ctl(d, "history", cid, "--json"))
            eq(doc["events"][-1]["data"]["amount"], 150000)
            doc = json.loads(ctl(d, "show", cid, "--json"))
            eq((doc["claim"]["country"], doc["claim"]["currency"]), (country, currency))


if __name__ == "__main__":
    run_tests(globals())

"""Integration: a member's rights over their data, through the real daemon.

consent.get; the consent.expiring reminder 30 days before a consent runs
out (manual clock); the member's view of the access log (role and purpose,
operator ids only when configured); the export of everything held about a
member; Norwegian members on Norwegian calendars and currency.  Every
assertion is on exact codes and fields (docs/protocol.md)."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLAIMCTL, WORKFLOWS_DIR, Daemon, Subscriber, write_config, T0, check, cpr, eq, err, fnr,  # noqa: E402
                     new_id, ok, op, portal, run_tests)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"


# ------------------------------------------------------------- helpers ---
def create(p, member, treatment="physiotherapy"):
    return ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                      "member": member,
                      "data": {"member": member, "treatment": treatment}}))["claim"]


def give_consent(p, member):
    return ok(p.call({"op": "consent.give", "id": new_id(), "member": member}))


def claimctl(d, *args, actor="hanne"):
    """claimctl ARGS against d's operator endpoint; (exit code, stdout, stderr)."""
    e = {k: v for k, v in os.environ.items() if not k.startswith("CLAIMFLOW_")}
    e["CLAIMFLOW_WORKFLOWS"] = WORKFLOWS_DIR
    p = subprocess.run([CLAIMCTL] + [str(a) for a in args] +
                       ["--endpoint", d.operator, "--as", actor],
                       capture_output=True, text=True, timeout=60, env=e,
                       stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout, p.stderr


def access_log(p, member, **kw):
    req = {"op": "access_log", "member": member}
    req.update(kw)
    return ok(p.call(req))


def tick(h, seconds=60):
    ok(h.call({"op": "clock.advance", "id": new_id(), "seconds": seconds}))


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
                "withdrawn_at": None, "given_by": "member", "channel": "portal",
                "lapses_at": None, "involved": [], "reference": None}
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
        a = create(p, m, "chiropractic")   # in review once consent is given
        w = create(p, m)
        ok(p.call({"op": "send", "id": new_id(), "member": m, "claim": w["id"],
                   "event": "claim.withdrawn"}))       # final: no reminder
        q = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry",
                       "member": m, "data": {"claim": a["id"], "text": "when?"}}))["claim"]
        o = create(p, other, "chiropractic")
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
        for c, state, flags in ((a, "in_review", ["sla.warning", "sla.breached"]),
                                (q, "open", ["sla.warning", "sla.breached"])):
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
        # Only the pause's own timers: the reminder at 30 days, the closing
        # at 90 (health_claim 4); no consent reminder.
        eq(r["fired"], 2, r)
        eq([e["event"] for e in history(h, a["id"])[n:]], ["claim.reminder", "claim.expired"])



def test_access_log_shows_role_and_purpose_not_the_operator():
    with Daemon(clock=T0) as d:
        p, h, s, a = portal(d), op(d, "hanne"), op(d, "sofie"), op(d, "aud")
        ma, mb, unknown = cpr(6, 6, 1966, 1001), cpr(7, 7, 1967, 1002), cpr(8, 8, 1968, 1003)
        ca, cb = create(p, ma), create(p, mb)
        # Nobody has read anything yet: both look exactly like a stranger.
        empty = {"ok": True, "entries": []}
        for m in (ma, mb, unknown):
            eq(access_log(p, m), empty)
        # An operator reads A's claim three times, each with a purpose.
        tick(h)
        ok(h.call({"op": "get", "claim": ca["id"], "purpose": "assessing the referral"}))
        tick(h)
        ok(h.call({"op": "history", "claim": ca["id"], "purpose": "checking the timeline"}))
        tick(h)
        ok(h.call({"op": "get", "claim": ca["id"]}))    # the default purpose
        r = access_log(p, ma)
        eq(r, {"ok": True, "entries": [
            {"at": "2026-11-24T09:03:00Z", "op": "get", "role": "handler",
             "purpose": "case handling", "claims": [ca["id"]]},
            {"at": "2026-11-24T09:02:00Z", "op": "history", "role": "handler",
             "purpose": "checking the timeline", "claims": [ca["id"]]},
            {"at": "2026-11-24T09:01:00Z", "op": "get", "role": "handler",
             "purpose": "assessing the referral", "claims": [ca["id"]]}]})
        check("hanne" not in repr(r), r)
        # B's log and a stranger's: nothing of A's.
        eq(access_log(p, mb), empty)
        eq(access_log(p, unknown), empty)
        # A query over both members' claims: each sees only their own claim.
        tick(h)
        ok(s.call({"op": "query", "workflow": "health_claim", "purpose": "supervision"}))
        want = {"at": "2026-11-24T09:04:00Z", "op": "query", "role": "supervisor",
                "purpose": "supervision"}
        eq(access_log(p, ma)["entries"][0], dict(want, claims=[ca["id"]]))
        eq(access_log(p, mb)["entries"], [dict(want, claims=[cb["id"]])])
        # Paging, newest first.
        r1 = access_log(p, ma, limit=3)
        eq(len(r1["entries"]), 3, r1)
        r2 = access_log(p, ma, limit=3, after=r1["next"])
        eq(r2, {"ok": True, "entries": [
            {"at": "2026-11-24T09:01:00Z", "op": "get", "role": "handler",
             "purpose": "assessing the referral", "claims": [ca["id"]]}]})
        # The auditors' log holds the same, with the operator.
        e = ok(a.call({"op": "audit", "claim": ca["id"]}))["entries"][0]
        eq(e, {"at": "2026-11-24T09:01:00Z", "actor": "hanne", "op": "get",
               "claims": [ca["id"]], "role": "handler", "purpose": "assessing the referral"})
        # Bad input.
        err(p.call({"op": "access_log", "member": ma, "after": "zz"}), "bad_request")
        err(p.call({"op": "access_log", "member": ma, "limit": 0}), "bad_request")
        err(p.call({"op": "access_log"}), "bad_request")
        err(h.call({"op": "access_log", "member": ma}), "forbidden")
        err(p.call({"op": "get", "member": ma, "claim": ca["id"], "purpose": "x"}),
            "bad_request")
        err(h.call({"op": "get", "claim": ca["id"], "purpose": ""}), "bad_request")
        err(h.call({"op": "get", "claim": ca["id"], "purpose": "x" * 201}), "bad_request")
        err(h.call({"op": "get", "claim": ca["id"], "purpose": "a\nb"}), "bad_request")
        err(h.call({"op": "get", "claim": ca["id"], "purpose": 7}), "bad_request")
        # claimctl --purpose on a read command.
        rc, out, errout = claimctl(d, "show", ca["id"], "--purpose", "written complaint")
        eq(rc, 0, out, errout)
        got = access_log(p, ma, limit=2)["entries"]
        eq([(x["op"], x["purpose"]) for x in got],
           [("history", "written complaint"), ("get", "written complaint")], got)


def test_access_log_names_operators_when_configured():
    tmp = tempfile.mkdtemp(prefix="cf-rights-")
    cfg = write_config(os.path.join(tmp, "config.yaml"),
                       extra="privacy:\n  show_operator_ids_to_members: true\n")
    d = Daemon(clock=T0, config=cfg)
    with d:
        p, h = portal(d), op(d, "hanne")
        m = cpr(9, 9, 1969, 1004)
        c = create(p, m)
        ok(h.call({"op": "get", "claim": c["id"], "purpose": "assessment"}))
        eq(access_log(p, m)["entries"],
           [{"at": T0, "op": "get", "role": "handler", "purpose": "assessment",
             "claims": [c["id"]], "actor": "hanne"}])
    shutil.rmtree(tmp)
    # Anything but true or false is refused at start, naming the key.
    bad = write_config(os.path.join(tmp + ".bad.yaml"),
                       extra="privacy:\n  show_operator_ids_to_members: yes\n")
    d = Daemon(clock=T0, config=bad)
    try:
        d.start()
        raise AssertionError("claimflowd started with a bad privacy setting")
    except RuntimeError as e:
        check("'show_operator_ids_to_members' must be true or false" in str(e), str(e))
    finally:
        d.cleanup()
        os.unlink(bad)



def test_export_holds_everything_of_the_member_and_nothing_else():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d, "hanne")
        m, other = cpr(10, 10, 1960, 2001), cpr(11, 11, 1961, 2002)
        c1, c2 = create(p, m), create(p, m, "chiropractic")
        ok(p.call({"op": "attach", "id": new_id(), "member": m, "claim": c1["id"],
                   "kind": "referral", "content_type": "application/pdf", "body": PDF}))
        q = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry", "member": m,
                       "data": {"claim": c1["id"], "text": "how long?"}}))["claim"]
        give_consent(p, m)
        co = create(p, other)
        give_consent(p, other)
        for purpose in ("assessment", "second opinion", "complaint"):
            tick(h)
            ok(h.call({"op": "get", "claim": c1["id"], "purpose": purpose}))
        ok(h.call({"op": "get", "claim": co["id"]}))
        ok(h.call({"op": "send", "id": new_id(), "claim": c2["id"],
                   "event": "decision.approved"}))
        # What the store holds about the member, read op by op.
        ids = sorted(c["id"] for c in ok(p.call({"op": "query", "member": m}))["claims"])
        eq(ids, sorted([c1["id"], c2["id"], q["id"]]))
        want_claims = [{"claim": ok(p.call({"op": "get", "member": m, "claim": i}))["claim"],
                        "events": history(p, i, member=m)} for i in ids]
        want_log = access_log(p, m, limit=1000)["entries"]
        # The three reads and the decision, newest first; not the other's read.
        eq([(e["op"], e["purpose"], e["claims"]) for e in want_log],
           [("send", "case handling", [c2["id"]]), ("get", "complaint", [c1["id"]]),
            ("get", "second opinion", [c1["id"]]), ("get", "assessment", [c1["id"]])])
        want_consent = ok(p.call({"op": "consent.get", "member": m}))["consent"]

        r = ok(p.call({"op": "export", "member": m}))
        eq(r, {"ok": True, "member": m, "consent": want_consent, "representations": [],
               "claims": want_claims, "access_log": want_log})
        text = repr(r)
        for x in (other, co["id"]):
            check(x not in text, x)
        # Document metadata, not bytes.
        eq(r["claims"][[c["claim"]["id"] for c in r["claims"]].index(c1["id"])]
           ["claim"]["documents"][0]["size"], len(PDF))
        # The export is itself in the member's log (and the auditors').
        e = access_log(p, m)["entries"][0]
        eq(e, {"at": "2026-11-24T09:03:00Z", "op": "export", "role": "member",
               "purpose": "the member's own request", "claims": ids})
        # Cursors: the claims after one, the log alone; a foreign cursor.
        r = ok(p.call({"op": "export", "member": m, "after": "c:" + ids[0]}))
        eq([c["claim"]["id"] for c in r["claims"]], ids[1:], r)
        r = ok(p.call({"op": "export", "member": m, "after": "a:"}))
        eq((r["claims"], len(r["access_log"])), ([], 6), r)   # + the two exports
        err(p.call({"op": "export", "member": m, "after": "x"}), "bad_request")
        err(p.call({"op": "export"}), "bad_request")
        # A stranger's export: nothing, exactly as for a member with no data.
        stranger = cpr(12, 12, 1962, 2003)
        eq(ok(p.call({"op": "export", "member": stranger})),
           {"ok": True, "member": stranger, "consent": None, "representations": [], "claims": [],
            "access_log": []})
        # An operator answers a written request: claimctl export --member.
        rc, out, errout = claimctl(d, "export", "--member", m, "--purpose", "written request",
                                   "--reveal")
        eq(rc, 0, out, errout)
        lines = [json.loads(x) for x in out.splitlines()]
        eq(lines[0], {"consent": want_consent})
        eq([x["claim"]["id"] for x in lines[1:4]], ids)
        eq([x["events"] for x in lines[1:4]], [c["events"] for c in want_claims])
        check(all(list(x) == ["access"] for x in lines[4:]), lines)
        eq(len(lines), 4 + 6, lines)
        e = access_log(p, m)["entries"][0]
        eq((e["op"], e["role"], e["purpose"], e["claims"]),
           ("export", "handler", "written request (person ids revealed)", ids), e)
        err(h.call({"op": "export", "member": "0101"}), "bad_request")
        rc, out, errout = claimctl(d, "export", "--member", "123")
        eq(rc, 1, out, errout)


if __name__ == "__main__":
    run_tests(globals())

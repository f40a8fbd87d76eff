"""Integration: an operator's day through claimctl, against the real claimflowd.

Claims are created the way members create them (the portal, through the
harness client); everything an operator does goes through the claimctl
binary as a subprocess with --endpoint set to the daemon's operator endpoint
and --as naming the operator.  Assertions are on exact exit codes, exact
messages for claimctl's own errors, and the JSON output field by field
(docs/claimctl.md, docs/protocol.md)."""

import os
import sys

# harness first: without python3-zmq/python3-msgpack in this interpreter it
# runs the test again with Debian's /usr/bin/python3.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402,F401

import datetime  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import zoneinfo  # noqa: E402

from harness import (CLAIMCTL, SRC_DIR, WORKFLOWS_DIR, Client, Daemon, T0,  # noqa: E402
                     check, cpr, eq, new_id, ok, op, portal, run_tests)

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
RUN_TIMEOUT = 60          # an ASan claimctl on a busy machine; never a hang


# ------------------------------------------------------------- claimctl ---
class Run:
    def __init__(self, p, elapsed):
        self.rc, self.out, self.err, self.elapsed = p.returncode, p.stdout, p.stderr, elapsed

    def __repr__(self):
        return "exit %s\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)

    def json(self):
        return json.loads(self.out)

    def lines(self):
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def env(columns=None):
    e = dict(os.environ)
    for k in ("CLAIMFLOW_ENDPOINT", "CLAIMFLOW_OPERATOR", "CLAIMFLOW_EVENTS",
              "CLAIMFLOW_CALENDAR", "CLAIMFLOW_TIMEOUT", "CLAIMFLOW_KEY",
              "CLAIMFLOW_SERVER_KEY", "COLUMNS"):
        e.pop(k, None)
    e["CLAIMFLOW_WORKFLOWS"] = WORKFLOWS_DIR
    if columns:
        e["COLUMNS"] = str(columns)     # the width show/history cut lines at
    return e


def run(*args, timeout=RUN_TIMEOUT, columns=None):
    t = time.monotonic()
    p = subprocess.run([CLAIMCTL] + [str(a) for a in args], capture_output=True,
                       text=True, timeout=timeout, env=env(columns), stdin=subprocess.DEVNULL)
    return Run(p, time.monotonic() - t)


def ctl(d, *args, actor="hanne", columns=None):
    """claimctl ARGS --endpoint <d's operator endpoint> --as actor."""
    return run(*args, "--endpoint", d.operator, "--as", actor, columns=columns)


def ok_run(r):
    if r.rc != 0:
        raise AssertionError("expected exit 0, got %r" % r)
    return r


def refused(r, code):
    """Exit 1 and exactly one stderr line 'claimctl: <code>: <message>'."""
    eq(r.rc, 1, r)
    lines = r.err.splitlines()
    eq(len(lines), 1, r)
    check(lines[0].startswith("claimctl: %s: " % code) and
          len(lines[0]) > len("claimctl: %s: " % code), r)
    eq(r.out, "", r)
    return lines[0]


def usage(r, command, first_line):
    """Exit 2, the message, then the command's usage on stderr."""
    eq(r.rc, 2, r)
    lines = r.err.splitlines()
    eq(lines[0], first_line, r)
    check(lines[1].startswith("usage: claimctl %s" % command), r)
    eq(r.out, "", r)


def local(at):
    """A protocol time as claimctl shows it: Copenhagen, minutes."""
    t = datetime.datetime.fromisoformat(at.replace("Z", "+00:00"))
    return t.astimezone(zoneinfo.ZoneInfo("Europe/Copenhagen")).strftime("%Y-%m-%d %H:%M")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ------------------------------------------------------------ the portal ---
def create(p, member, treatment="chiropractic", **extra):
    data = {"member": member, "treatment": treatment}
    data.update(extra)
    return ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                      "member": member, "data": data}))["claim"]


def consent(p, member):
    return ok(p.call({"op": "consent.give", "id": new_id(), "member": member}))


def attach_referral(p, member, claim_id):
    return ok(p.call({"op": "attach", "id": new_id(), "member": member, "claim": claim_id,
                      "kind": "referral", "content_type": "application/pdf", "body": PDF}))


def member_send(p, member, claim_id, event, data=None):
    req = {"op": "send", "id": new_id(), "member": member, "claim": claim_id, "event": event}
    if data is not None:
        req["data"] = data
    return ok(p.call(req))["claim"]


def advance(d, seconds):
    return ok(op(d).call({"op": "clock.advance", "seconds": seconds}))


def get(d, claim_id):
    return ok(op(d, "aud").call({"op": "get", "claim": claim_id}))["claim"]


def history(d, claim_id):
    return ok(op(d, "aud").call({"op": "history", "claim": claim_id}))["events"]


M1, M2, M3, M4 = cpr(1, 1, 1990, 1234), cpr(2, 2, 1980, 2345), \
    cpr(3, 3, 1970, 3456), cpr(4, 4, 1960, 1111)


def operator_day_claims(d):
    """The morning's queue, on the manual clock from T0 (Tue 09:00Z):
    A  chiropractic, in review from T0: breached by Thu 10:00Z;
    E  physiotherapy, reported first but in review an hour after F;
    F  chiropractic, in review from Thu 10:00Z;
    G  physiotherapy, waiting for its referral (its reminder in 30 days)."""
    p = portal(d)
    a = create(p, M1)
    consent(p, M1)
    advance(d, 2 * 86400 + 3600)            # Thu 10:00Z: past A's 2bd
    e = create(p, M2, "physiotherapy")
    f = create(p, M3)
    consent(p, M3)
    advance(d, 3600)                        # Thu 11:00Z
    attach_referral(p, M2, e["id"])
    consent(p, M2)
    g = create(p, M4, "physiotherapy")
    return a["id"], e["id"], f["id"], g["id"]


# ------------------------------------------------------------------ tests ---
def test_help_describes_every_command():
    r = ok_run(run("help"))
    commands = ["queue", "show", "history", "approve", "deny", "request-info", "guarantee",
                "refer-network", "answer", "uphold", "reject", "send", "timers", "stats",
                "watch", "export", "backup", "audit", "purge", "keygen", "representation",
                "create", "consent"]
    for c in commands:
        check(("\n  %s " % c) in r.out, c, r)
        h = ok_run(run(c, "--help"))
        check(h.out.startswith("usage: claimctl %s" % c), h)
        check("--help" in h.out and "exit codes:" in h.out, h)
        eq(ok_run(run("help", c)).out, h.out)
    g = ok_run(run("guarantee", "--help"))
    for opt in ("--amount ØRE", "--provider P", "--valid-until YYYY-MM-DD", "--id ID",
                "--endpoint URL", "--as OPERATOR", "--timeout SECONDS", "--json",
                "--key FILE", "--server-key KEY"):
        check(opt in g.out, opt, g)
    r = run("frobnicate")
    eq(r.rc, 2, r)
    eq(r.err.splitlines()[0], "claimctl: unknown command 'frobnicate'", r)


def test_daemon_down_exit_3_fast():
    port = free_port()
    ep = "tcp://127.0.0.1:%d" % port
    want = "claimctl: cannot reach claimflowd at %s (is it running?)\n" % ep
    for args in (["queue"], ["show", "01JDX3M4QK8Z6V1N2B3C4D5E6F"], ["approve", "X"],
                 ["stats"], ["timers"], ["export"], ["send", "X", "decision.approved", "a=1"]):
        r = run(*args, "--endpoint", ep, "--as", "hanne", "--timeout", "1")
        eq(r.rc, 3, args, r)
        eq(r.err, want, args)
        eq(r.out, "", args)
        check(r.elapsed < 10, "took %.1fs" % r.elapsed, args)
    # The default timeout (5 s) bounds it too, and the env var names the endpoint.
    e = env()
    e["CLAIMFLOW_ENDPOINT"] = ep
    e["CLAIMFLOW_OPERATOR"] = "hanne"
    t = time.monotonic()
    p = subprocess.run([CLAIMCTL, "queue"], capture_output=True, text=True, env=e,
                       timeout=RUN_TIMEOUT)
    eq((p.returncode, p.stderr), (3, want))
    check(time.monotonic() - t < 15)
    # watch: the events endpoint.
    ev = "tcp://127.0.0.1:%d" % free_port()
    r = run("watch", "--events", ev, "--timeout", "1")
    eq(r.rc, 3, r)
    eq(r.err, "claimctl: cannot reach claimflowd at %s (is it running?)\n" % ev)
    # Something that takes the connection but never answers: exit 3 too,
    # with a message that says so (the request may have been applied).
    import zmq
    ctx = zmq.Context.instance()
    mute = ctx.socket(zmq.ROUTER)
    mute.setsockopt(zmq.LINGER, 0)
    port = mute.bind_to_random_port("tcp://127.0.0.1")
    try:
        ep = "tcp://127.0.0.1:%d" % port
        r = run("approve", "X", "--endpoint", ep, "--as", "hanne", "--timeout", "1")
        eq((r.rc, r.err), (3, "claimctl: no reply from claimflowd at %s within 1 s\n" % ep))
        check(r.elapsed < 10, r.elapsed)
    finally:
        mute.close(0)
    # A daemon that was there and stopped.
    d = Daemon(clock=T0)
    try:
        d.start()
        ok_run(ctl(d, "stats"))
        d.stop()
        r = run("stats", "--endpoint", d.operator, "--as", "hanne", "--timeout", "1")
        eq((r.rc, r.err), (3, "claimctl: cannot reach claimflowd at %s (is it running?)\n"
                           % d.operator))
    finally:
        d.cleanup()


def test_queue_breached_first():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        r = ok_run(ctl(d, "queue", "--json"))
        claims = r.json()["claims"]
        eq([c["id"] for c in claims], [a, f, e, g], r)
        ca = claims[0]
        eq(ca["state"], "in_review")
        eq(ca["workflow"], "health_claim")
        eq(ca["version"], 4)
        check(ca["owner"] is None, ca)
        # Person ids are masked to their birth date (issue 15) without --reveal.
        eq(ca["data"], {"member": M1[:6] + "-XXXX", "treatment": "chiropractic"})
        eq(sorted(ca["flags"]), ["sla.breached", "sla.warning"])
        eq(ca["timers"], [])
        eq(ca["created_at"], T0)
        eq(dict(ca, data=get(d, a)["data"]), get(d, a))   # the protocol's object, masked
        eq([t["name"] for t in claims[1]["timers"]], ["decision_warning", "decision_due"])
        eq(claims[1]["timers"][0]["due_at"], "2026-11-27T10:00:00Z")
        eq(claims[2]["timers"][0]["due_at"], "2026-11-27T11:00:00Z")
        eq(claims[3]["state"], "awaiting_referral")
        # waiting for the member: a reminder at 30 days, closed at 90
        eq([(t["name"], t["due_at"]) for t in claims[3]["timers"]],
           [("reminder", "2026-12-26T11:00:00Z"), ("expiry", "2027-02-24T11:00:00Z")])

        # The table: aligned columns, local (Copenhagen) time, breached first.
        t = ok_run(ctl(d, "queue"))
        lines = t.out.splitlines()
        eq(lines[0].split(), ["ID", "STATE", "TREATMENT", "AGE", "NEXT", "DUE", "OWNER", "FLAGS"], t)
        eq([ln.split()[0] for ln in lines[1:]], [a, f, e, g], t)
        check("\x1b" not in t.out, "no colour when not a terminal", t)
        col = lines[0].index("NEXT DUE")
        eq(lines[2][col:col + 16], "2026-11-27 11:00", t)   # 10:00Z in Copenhagen
        eq(lines[3][col:col + 16], "2026-11-27 12:00", t)
        check(lines[1].rstrip().endswith("sla.warning,sla.breached") or
              lines[1].rstrip().endswith("sla.breached,sla.warning"), t)
        eq(lines[1].split()[1:3], ["in_review", "chiropractic"], t)

        # Filters go to the daemon's query.
        eq([c["id"] for c in ok_run(ctl(d, "queue", "--flag", "sla.breached", "--json")).json()["claims"]], [a])
        eq([c["id"] for c in ok_run(ctl(d, "queue", "--state", "awaiting_referral", "--json")).json()["claims"]], [g])
        eq([c["id"] for c in ok_run(ctl(d, "queue", "--limit", "2", "--json")).json()["claims"]], [a, f])
        eq(ok_run(ctl(d, "queue", "--workflow", "inquiry", "--json")).json(), {"claims": []})
        eq(ok_run(ctl(d, "queue", "--workflow", "inquiry")).out, "no open claims match\n")
        # UTC when asked for a calendar that is not there is a usage error;
        # with no calendars at all, times are UTC.
        empty = tempfile.mkdtemp(prefix="cf-nocal-")
        try:
            u = ok_run(ctl(d, "queue", "--workflows", empty))
            eq(u.out.splitlines()[2][col:col + 17], "2026-11-27 10:00Z", u)
            usage(ctl(d, "queue", "--calendar", "xx"), "queue",
                  "claimctl: queue: no calendar 'xx' in %s/calendars.yaml" % WORKFLOWS_DIR)
        finally:
            shutil.rmtree(empty)


def test_queue_and_timers_count_from_the_daemons_clock():
    """Issue 18: `queue`'s AGE used this machine's clock ("271d 22h" for a
    claim just created under a manual clock).  ping's `now` is the engine's
    clock; AGE, "overdue" and `timers --due-within` count from it."""
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)        # the clock is Thu 11:00Z
        eq(ok(op(d).call({"op": "ping"}))["now"], "2026-11-26T11:00:00Z")
        t = ok_run(ctl(d, "queue"))
        lines = t.out.splitlines()
        age, due = lines[0].index("AGE"), lines[0].index("NEXT DUE")
        eq([(ln.split()[0], ln[age:due].strip()) for ln in lines[1:]],
           [(a, "2d 2h"), (f, "1h 0m"), (e, "1h 0m"), (g, "0s")], t)
        # Due within a day of the daemon's Thu 11:00Z (before Fri 11:00Z):
        # F's SLA warning (Fri 10:00Z), not E's (Fri 11:00Z) nor the
        # deadlines (Mon); within 25 hours both warnings.
        for within, want in (("1d", [f]), ("1bd", [f]), ("25h", [f, e])):
            r = ok_run(ctl(d, "timers", "--due-within", within, "--json"))
            eq([(x["claim"], x["name"]) for x in r.json()["timers"]],
               [(c, "decision_warning") for c in want], within, r)


SE_CLAIM = """\
workflow: se_claim
version: 1
calendar: se
states:
  open:
    initial: true
    on:
      done: {to: closed, by: [handler]}
  closed: {final: true}
"""


def test_workflow_validate_a_directory():
    """Issue 18: `claimctl workflow validate workflows/*.yaml` (as
    docs/workflows.md says) failed on calendars.yaml, and a workflow naming
    a calendar that does not exist validated while the daemon then refused
    to start.  calendars.yaml is validated as the calendars file, and each
    workflow's calendar is checked against it."""
    files = sorted(os.path.join(WORKFLOWS_DIR, f) for f in os.listdir(WORKFLOWS_DIR)
                   if f.endswith(".yaml"))
    r = ok_run(run("workflow", "validate", *files))
    eq(r.out.splitlines(), [
        "%s/calendars.yaml: ok (calendars dk, no)" % WORKFLOWS_DIR,
        "%s/health_claim.yaml: ok (workflow health_claim, version 4, 22 states)" % WORKFLOWS_DIR,
        "%s/inquiry.yaml: ok (workflow inquiry, version 4, 3 states)" % WORKFLOWS_DIR], r)
    eq(r.err, "", r)

    tmp = tempfile.mkdtemp(prefix="cf-validate-")
    try:
        wd = os.path.join(tmp, "workflows")
        shutil.copytree(WORKFLOWS_DIR, wd)
        se = os.path.join(wd, "se_claim.yaml")
        with open(se, "w") as f:
            f.write(SE_CLAIM)
        files = sorted(os.path.join(wd, f) for f in os.listdir(wd))
        r = run("workflow", "validate", *files)
        eq(r.rc, 1, r)
        eq(r.err.splitlines(), ["%s:3:11: workflow 'se_claim' names calendar 'se', which "
                                "%s/calendars.yaml does not declare" % (se, wd)], r)
        eq(len(r.out.splitlines()), 3, r)          # the others are ok
        # ... exactly what the daemon refuses to start with.
        try:
            Daemon(workflows_dir=wd).start()
            raise AssertionError("claimflowd started with calendar 'se' missing")
        except RuntimeError as ex:
            check("names calendar 'se'" in str(ex) and "exit 2" in str(ex), ex)
        # By member country: every calendar of the map is checked, each
        # one missing at its place; the daemon refuses the same.
        with open(se, "w") as f:
            f.write(SE_CLAIM.replace("calendar: se", "calendar:\n  by_member_country:\n"
                                     "    dk: dk\n    no: oslo\n"))
        r = run("workflow", "validate", *files)
        eq(r.rc, 1, r)
        eq(r.err.splitlines(), ["%s:6:9: workflow 'se_claim' names calendar 'oslo' for "
                                "members of country 'no', which %s/calendars.yaml does not "
                                "declare" % (se, wd)], r)
        try:
            Daemon(workflows_dir=wd).start()
            raise AssertionError("claimflowd started with calendar 'oslo' missing")
        except RuntimeError as ex:
            check("se_claim.yaml:6:9: workflow 'se_claim' names calendar 'oslo' for members "
                  "of country 'no'" in str(ex) and "exit 2" in str(ex), ex)
        with open(se, "w") as f:
            f.write(SE_CLAIM)
        # Without a calendars file the calendar cannot be checked;
        # --calendars names one by another name.
        ok_run(run("workflow", "validate", se))
        other = os.path.join(SRC_DIR, "tests", "data", "calendars", "test.yaml")
        r = run("workflow", "validate", "--calendars", other, se)
        eq(r.rc, 1, r)
        check("which %s does not declare" % other in r.err, r)
        # A broken calendars file: its errors, file:line:col, exit 1.
        bad = os.path.join(tmp, "calendars.yaml")
        with open(bad, "w") as f:
            f.write("calendars:\n  dk:\n    country: xx\n")
        r = run("workflow", "validate", bad)
        eq(r.rc, 1, r)
        check(r.err.startswith("%s:3:" % bad), r)
        r = run("workflow", "validate", bad, os.path.join(wd, "calendars.yaml"))
        eq(r.rc, 2, r)
        eq(r.err.splitlines()[0], "claimctl workflow validate: '%s/calendars.yaml' is a "
                                  "second calendars file: give one" % wd, r)
    finally:
        shutil.rmtree(tmp)


def test_operator_day_decisions_and_watch():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        p = portal(d)

        # watch, started before the decisions, sees them as JSON lines.
        w = subprocess.Popen([CLAIMCTL, "watch", "--events", d.events, "--workflow",
                              "health_claim", "--json", "--count", "3"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        time.sleep(1.5)                      # the subscription reaches the PUB
        # Approve and issue a guarantee.
        r = ok_run(ctl(d, "approve", a))
        eq(r.out, "%s: approved\n" % a)
        eq(r.err, "")
        r = ok_run(ctl(d, "guarantee", a, "--amount", "150000", "--provider", "Fysio Nord",
                       "--valid-until", "2027-02-28", "--json"))
        c = r.json()["claim"]
        eq((c["id"], c["state"]), (a, "guarantee_issued"))
        # Deny: the third event watch waits for.
        eq(ok_run(ctl(d, "deny", f, "--reason", "not covered by the policy")).out,
           "%s: denied\n" % f)
        out, err = w.communicate(timeout=RUN_TIMEOUT)
        eq(w.returncode, 0, err)
        events = [json.loads(line) for line in out.splitlines()]
        eq([(x["claim"], x["event"], x["from"], x["to"], x["actor"], x["workflow"])
            for x in events],
           [(a, "decision.approved", "in_review", "approved", "hanne", "health_claim"),
            (a, "guarantee.issued", "approved", "guarantee_issued", "hanne", "health_claim"),
            (f, "decision.denied", "in_review", "denied", "hanne", "health_claim")], out)
        eq(events[1]["data"], {"amount": 150000, "provider": "Fysio Nord",
                               "valid_until": "2027-02-28"})
        eq(events[2]["data"], {"reason": "not covered by the policy"})
        hist_a = history(d, a)
        # A published event is the history's, with its workflow and the
        # batch that committed it (the change feed's cursor).
        check(events[0]["batch"] < events[1]["batch"], events)
        eq(events[0], dict(hist_a[-2], workflow="health_claim", batch=events[0]["batch"]))
        eq(events[1], dict(hist_a[-1], workflow="health_claim", batch=events[1]["batch"]))

        # The complaint: the department reconsiders first and upholds its
        # decision; the member complains, a handler may not decide it, the
        # supervisor takes it and upholds it, and the claim goes to a
        # network provider.
        member_send(p, M3, f, "reconsideration.requested", {"text": "I was told it was covered"})
        eq(ok_run(ctl(d, "reconsider", f, "--upheld", "--reason", "the policy is clear")).out,
           "%s: denied\n" % f)
        member_send(p, M3, f, "complaint.filed", {"text": "I was told it was covered"})
        refused(ctl(d, "uphold", f), "forbidden")
        eq(refused(ctl(d, "uphold", f, actor="sofie"), "guard_failed"),
           "claimctl: guard_failed: state 'complaint_review' needs an owner before "
           "'complaint.upheld' is accepted (assign the claim first: op assign)")
        eq(ok_run(ctl(d, "take", f, actor="sofie")).out, "%s: owner sofie\n" % f)
        eq(ok_run(ctl(d, "uphold", f, actor="sofie")).out, "%s: approved\n" % f)
        eq(ok_run(ctl(d, "refer-network", f, "--provider", "Klinik Øst")).out,
           "%s: network_referral\n" % f)
        eq(history(d, f)[-1]["data"], {"provider": "Klinik Øst"})

        # Request information; the member answers; deny; complaint rejected.
        eq(ok_run(ctl(d, "request-info", e, "--text", "Please send the invoice")).out,
           "%s: awaiting_info\n" % e)
        eq(history(d, e)[-1]["data"], {"text": "Please send the invoice"})
        member_send(p, M2, e, "info.provided", {"text": "attached"})
        ok_run(ctl(d, "deny", e, "--reason", "no cover"))
        member_send(p, M2, e, "reconsideration.requested", {"text": "please reconsider"})
        ok_run(ctl(d, "reconsider", e, "--upheld", "--reason", "no cover still"))
        member_send(p, M2, e, "complaint.filed", {"text": "please reconsider"})
        eq(ok_run(ctl(d, "assign", e, "--to", "sofie", actor="sofie")).out,
           "%s: owner sofie\n" % e)
        eq(ok_run(ctl(d, "reject", e, "--reason", "the policy excludes it", actor="sofie")).out,
           "%s: complaint_rejected\n" % e)
        ev = history(d, e)[-1]
        eq((ev["event"], ev["from"], ev["to"], ev["actor"], ev["data"]),
           ("complaint.rejected", "complaint_review", "complaint_rejected", "sofie",
            {"reason": "the policy excludes it"}))

        # An inquiry about A, answered.
        inq = ok(p.call({"op": "create", "id": new_id(), "workflow": "inquiry", "member": M1,
                         "data": {"claim": a, "text": "When can I start?"}}))["claim"]
        eq(ok_run(ctl(d, "answer", inq["id"], "--text", "Now: the guarantee is issued.")).out,
           "%s: answered\n" % inq["id"])
        ev = history(d, inq["id"])[-1]
        eq((ev["event"], ev["to"], ev["actor"], ev["data"]),
           ("inquiry.answered", "answered", "hanne", {"text": "Now: the guarantee is issued."}))

        # What is left open, most urgent first (no flags: each decision
        # cleared its deadline's): G's reminder in a month, A's guarantee
        # ending in February, then the 6-month windows of E (the appeal)
        # and F (a dispute of the referral), due at the same second.
        eq([c["id"] for c in ok_run(ctl(d, "queue", "--json")).json()["claims"]], [g, a, e, f])


def test_show_and_history():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        p = portal(d)
        # Give A more than 10 events: info requested and provided, repeatedly.
        for i in range(4):
            ok_run(ctl(d, "request-info", a, "--text", "question %d" % i))
            member_send(p, M1, a, "info.provided", {"text": "answer %d" % i})
        hist = history(d, a)
        check(len(hist) > 10, hist)

        r = ok_run(ctl(d, "show", a, "--json"))
        eq(r.json()["claim"]["data"]["member"], M1[:6] + "-XXXX")
        check(M1 not in r.out, r)
        r = ok_run(ctl(d, "show", a, "--json", "--reveal"))
        doc = r.json()
        eq(sorted(doc), ["claim", "events"])
        eq(doc["claim"], get(d, a))
        # The reveal is in the access log.
        log = ok(op(d, "aud").call({"op": "audit", "claim": a}))["entries"]
        check(any(x["purpose"] == "case handling (person ids revealed)" for x in log), log)
        eq(doc["events"], hist[-10:])
        eq([x["seq"] for x in doc["events"]], list(range(len(hist) - 9, len(hist) + 1)))

        s = ok_run(ctl(d, "show", e))
        for want in ("claim      %s" % e, "workflow   health_claim v4", "state      in_review",
                     "\ncountry    dk\ncurrency   DKK\n",
                     "treatment  physiotherapy", "decision_warning  2026-11-27 12:00",
                     "referral  59", "last events (3 of 3)"):
            check(want in s.out, want, s)
        doc = ok_run(ctl(d, "show", e, "--json")).json()
        eq(doc["claim"]["documents"][0]["kind"], "referral")
        eq(doc["claim"]["documents"][0]["size"], len(PDF))

        h = ok_run(ctl(d, "history", a, "--json"))
        eq(h.json(), {"events": hist})
        t = ok_run(ctl(d, "history", a))
        lines = t.out.splitlines()
        eq(len(lines), len(hist) + 1, t)
        eq(lines[0].split(), ["SEQ", "TIME", "EVENT", "FROM", "→", "TO", "ACTOR", "BY",
                              "CHANNEL", "DETAIL"], t)
        eq(lines[1].split(), ["1", "2026-11-24", "10:00", "claim.created", "→",
                              "awaiting_consent", "member", "-", "portal"], t)
        eq(lines[3].split(), ["3"] + local(hist[2]["at"]).split() +
           ["sla.warning", "in_review", "→", "in_review", "system", "-", "system",
            "timer:", "decision_warning,", "due_at:", "2026-11-25T09:00:00Z,",
            "late_seconds:", "0"], t)
        # each event's data on its line: the request's text, the answer
        check(any(ln.split()[3:4] == ["info.requested"] and ln.endswith("text: question 0")
                  for ln in lines), t)
        check(any(ln.split()[3:4] == ["info.provided"] and ln.endswith("text: answer 3")
                  for ln in lines), t)

        # Member text with quotes, newlines and a terminal escape: exact in
        # JSON, defused in the table.
        nasty = 'knee "left"\n\ttab \\ \x1b[31mred\x1b[0m Ærø \u2028 ✓'
        c = create(p, cpr(5, 5, 1975, 1212), description=nasty)
        doc = ok_run(ctl(d, "show", c["id"], "--json")).json()
        eq(doc["claim"]["data"]["description"], nasty)
        s = ok_run(ctl(d, "show", c["id"]))
        check("\x1b" not in s.out and "?[31mred?[0m" in s.out, s)
        eq(json.loads(ok_run(ctl(d, "export")).out.splitlines()[-1])["data"]["description"], nasty)


def test_after_the_decision_commands_and_event_data():
    """Issue 16: reconsider, uphold, settle, reject-settlement, close,
    assign, take, queue --mine/--owner/--unowned; show and history print
    each event's data, cut with … at the terminal's width, whole with
    --wide."""
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        p = portal(d)
        reason = "the policy excludes treatment of an injury older than two years " * 2
        eq(ok_run(ctl(d, "deny", a, "--reason", reason.strip())).out, "%s: denied\n" % a)
        member_send(p, M1, a, "reconsideration.requested", {"text": "it is not that old"})
        usage(ctl(d, "reconsider", a), "reconsider",
              "claimctl: reconsider: give one of --upheld and --changed")
        usage(ctl(d, "reconsider", a, "--upheld"), "reconsider",
              "claimctl: reconsider: --upheld needs --reason")
        eq(ok_run(ctl(d, "reconsider", a, "--changed", "--reason", "the x-ray dates it")).out,
           "%s: approved\n" % a)
        ev = history(d, a)[-1]
        eq((ev["event"], ev["data"]), ("decision.changed", {"reason": "the x-ray dates it"}))
        ok_run(ctl(d, "guarantee", a, "--amount", "150000", "--provider", "Fysio Nord",
                   "--valid-until", "2027-02-28"))
        member_send(p, M1, a, "treatment.started")
        ok(p.call({"op": "attach", "id": new_id(), "member": M1, "claim": a, "kind": "invoice",
                   "content_type": "application/pdf", "body": PDF}))
        r = refused(ctl(d, "settle", a, "--amount", "150001", "--paid-to", "provider",
                        "--reference", "PAY-1"), "bad_request")
        eq(r, "claimctl: bad_request: field 'amount' must not be above the claim's "
              "'guarantee_amount' (unless sent by a supervisor)")
        usage(ctl(d, "settle", a, "--amount", "1,50", "--paid-to", "provider",
                  "--reference", "PAY-1"), "settle",
              "claimctl: settle: --amount: '1,50' is not a whole number of øre")
        eq(ok_run(ctl(d, "settle", a, "--amount", "150000", "--paid-to", "provider",
                      "--reference", "PAY-2026-0042")).out, "%s: settled\n" % a)

        # History: every event's data on its line; amounts in kroner.
        h = ok_run(ctl(d, "history", a, "--wide"))
        lines = h.out.splitlines()
        denied = [ln for ln in lines if " decision.denied " in ln]
        eq(len(denied), 1, h)
        check(denied[0].endswith("hanne   -   operator  reason: " + reason.strip()), denied[0])
        paid = [ln for ln in lines if " settlement.paid " in ln][0]
        check(paid.endswith("amount: 1.500,00 kr., paid_to: provider, "
                            "reference: PAY-2026-0042"), paid)
        req = [ln for ln in lines if " reconsideration.requested " in ln][0]
        check(req.endswith("member  -   portal    text: it is not that old"), req)
        # Cut at the terminal's width (here $COLUMNS), with …; --wide whole.
        cut = ok_run(ctl(d, "history", a, columns=140)).out.splitlines()
        check(all(len(ln) <= 140 for ln in cut), cut)
        d1 = [ln for ln in cut if " decision.denied " in ln][0]
        eq(len(d1), 140, d1)
        check(d1.endswith("…") and "reason: the policy excludes" in d1, d1)
        eq(len(cut), len(lines))
        s = ok_run(ctl(d, "show", a, columns=140)).out
        check("\nstate      settled\nowner      -\n" in s, s)
        check("\nguarantee_amount       1.500,00 kr.\n" in s, s)     # an amount, by its name
        check(any(ln.endswith("…") for ln in s.splitlines()), s)
        s = ok_run(ctl(d, "show", a, "--wide", columns=140)).out
        check(paid.split("hanne", 1)[1].strip() in s, s)

        # Owners: take, assign, release; the queue by owner.
        eq(ok_run(ctl(d, "take", e)).out, "%s: owner hanne\n" % e)
        eq(refused(ctl(d, "assign", f, "--to", "sofie"), "forbidden"),
           "claimctl: forbidden: role 'handler' may take an unowned claim for themselves or "
           "release their own; a supervisor assigns (owner: none)")
        eq(ok_run(ctl(d, "assign", f, "--to", "sofie", actor="sofie")).out,
           "%s: owner sofie\n" % f)
        usage(ctl(d, "assign", f), "assign", "claimctl: assign: give one of --to OP and --release")
        ids = lambda *a: [c["id"] for c in ok_run(ctl(d, "queue", "--json", *a[1:],  # noqa
                                                      actor=a[0])).json()["claims"]]
        eq(ids("hanne", "--mine"), [e])
        eq(ids("sofie", "--mine"), [f])
        eq(ids("aud", "--owner", "sofie"), [f])
        eq(ids("aud", "--unowned"), [g])
        q = ok_run(ctl(d, "queue", "--owner", "hanne")).out.splitlines()
        eq(q[0].split()[6], "OWNER", q)
        eq(q[1].split()[:2], [e, "in_review"], q)
        eq(q[1].split()[-2:], ["hanne", "-"], q)         # OWNER, FLAGS
        usage(ctl(d, "queue", "--mine", "--unowned"), "queue",
              "claimctl: queue: --mine, --owner and --unowned exclude each other")
        eq(ok_run(ctl(d, "assign", f, "--release", actor="sofie")).out, "%s: no owner\n" % f)
        eq(ids("aud", "--unowned"), [f, g])

        # Close, with the reason in the history.
        eq(ok_run(ctl(d, "close", g, "--reason", "the member moved abroad")).out,
           "%s: closed\n" % g)
        ev = history(d, g)[-1]
        eq((ev["event"], ev["data"]), ("claim.closed", {"reason": "the member moved abroad"}))
        # reject-settlement and uphold (with a reason) on a fresh path.
        ok_run(ctl(d, "deny", f, "--reason", "no"))
        member_send(p, M3, f, "reconsideration.requested", {"text": "please"})
        eq(ok_run(ctl(d, "reconsider", f, "--upheld", "--reason", "still no")).out,
           "%s: denied\n" % f)
        member_send(p, M3, f, "complaint.filed", {"text": "please"})
        ok_run(ctl(d, "take", f, actor="sofie"))
        eq(ok_run(ctl(d, "uphold", f, "--reason", "covered after all", actor="sofie")).out,
           "%s: approved\n" % f)
        eq(history(d, f)[-1]["data"], {"reason": "covered after all"})
        ok_run(ctl(d, "refer-network", f, "--provider", "Klinik Øst"))
        member_send(p, M3, f, "treatment.started")
        ok(p.call({"op": "attach", "id": new_id(), "member": M3, "claim": f, "kind": "invoice",
                   "content_type": "application/pdf", "body": PDF}))
        eq(ok_run(ctl(d, "reject-settlement", f, "--reason", "another clinic's invoice")).out,
           "%s: settlement_rejected\n" % f)


def test_errors_exit_codes_and_messages():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        # Unknown claim.
        refused(ctl(d, "show", "01JDX3M4QK8Z6V1N2B3C4D5E6F"), "not_found")
        refused(ctl(d, "history", "01JDX3M4QK8Z6V1N2B3C4D5E6F"), "not_found")
        refused(ctl(d, "approve", "01JDX3M4QK8Z6V1N2B3C4D5E6F"), "not_found")
        # An event the state does not accept: the message names the state.
        line = refused(ctl(d, "approve", g), "invalid_transition")
        check("awaiting_referral" in line, line)
        refused(ctl(d, "send", a, "claim.withdrawn"), "forbidden")   # a member's event
        # Unknown operator; an auditor who tries to write.
        refused(ctl(d, "queue", actor="mallory"), "forbidden")
        refused(ctl(d, "approve", a, actor="aud"), "forbidden")
        ok_run(ctl(d, "queue", actor="aud"))
        # The daemon's field checks (guarantee on a claim in review: wrong state).
        refused(ctl(d, "guarantee", a, "--amount", "100", "--provider", "P",
                    "--valid-until", "2027-01-31"), "invalid_transition")
        # Usage errors: exit 2, the message, the command's usage; nothing sent.
        usage(ctl(d, "guarantee", a, "--amount", "12.50", "--provider", "P",
                  "--valid-until", "2027-01-31"), "guarantee",
              "claimctl: guarantee: --amount: '12.50' is not a whole number of øre")
        usage(ctl(d, "guarantee", a, "--amount", "100", "--provider", "P",
                  "--valid-until", "2027-02-30"), "guarantee",
              "claimctl: guarantee: --valid-until: '2027-02-30' is not a date (YYYY-MM-DD)")
        usage(ctl(d, "deny", a), "deny", "claimctl: deny: --reason is required")
        usage(run("deny", a, "--as", "hanne", "--endpoint", d.operator, "--reason"), "deny",
              "claimctl: deny: --reason needs a value (TEXT)")
        usage(ctl(d, "approve"), "approve", "claimctl: approve: missing argument (CLAIM)")
        usage(ctl(d, "approve", a, "b"), "approve", "claimctl: approve: unexpected argument 'b'")
        usage(ctl(d, "queue", "--limit", "0"), "queue",
              "claimctl: queue: --limit: '0' is not a positive integer")
        usage(ctl(d, "queue", "--frob"), "queue", "claimctl: queue: unknown option '--frob'")
        usage(ctl(d, "send", a), "send", "claimctl: send: missing argument (CLAIM EVENT [KEY=VALUE...])")
        usage(ctl(d, "send", a, "decision.denied", "reason"), "send",
              "claimctl: send: 'reason' is not KEY=VALUE")
        usage(ctl(d, "timers", "--due-within", "soon"), "timers",
              "claimctl: timers: --due-within: 'soon' is not a duration (30m, 2h, 1d, 1w, 2bd)")
        usage(run("stats", "--endpoint", d.operator), "stats",
              "claimctl: stats: who are you? give --as OPERATOR or set CLAIMFLOW_OPERATOR")
        usage(ctl(d, "stats", "--timeout", "-1"), "stats",
              "claimctl: stats: --timeout: '-1' is not a number of seconds (0 < s <= 86400)")
        # Nothing above changed A or G.
        eq(get(d, a)["state"], "in_review")
        eq(len(history(d, g)), 1)


def test_send_generic_and_idempotent_retry():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        ok_run(ctl(d, "approve", a))
        args = ["send", a, "guarantee.issued", "amount=150000", "provider=Fysio Nord",
                "valid_until=2027-02-28", "--id", "script-retry-1"]
        r1 = ok_run(ctl(d, *args))
        eq(r1.out, "%s: guarantee_issued\n" % a)
        n = len(history(d, a))
        r2 = ok_run(ctl(d, *args))             # the retry: same reply, no second effect
        eq(r2.out, r1.out)
        eq(len(history(d, a)), n)
        ev = history(d, a)[-1]
        eq(ev["data"], {"amount": 150000, "provider": "Fysio Nord", "valid_until": "2027-02-28"})
        check(isinstance(ev["data"]["amount"], int))
        # The same id for another request is the daemon's conflict.
        refused(ctl(d, "send", f, "decision.approved", "--id", "script-retry-1"), "conflict")
        # Booleans and strings reach the daemon typed: a bool where a string
        # belongs is its bad_request.
        refused(ctl(d, "send", f, "decision.denied", "reason=true"), "bad_request")
        # Named decisions take --id as well.
        r = ok_run(ctl(d, "deny", f, "--reason", "r", "--id", "deny-f-1"))
        eq(ok_run(ctl(d, "deny", f, "--reason", "r", "--id", "deny-f-1")).out, r.out)


def test_timers_and_stats():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        r = ok_run(ctl(d, "timers", "--json"))
        timers = r.json()["timers"]
        eq([(t["claim"], t["name"]) for t in timers],
           [(f, "decision_warning"), (e, "decision_warning"), (f, "decision_due"),
            (e, "decision_due"), (g, "reminder"), (g, "expiry")], r)
        eq(timers[0], {"claim": f, "workflow": "health_claim", "state": "in_review",
                       "name": "decision_warning", "event": "sla.warning",
                       "due_at": "2026-11-27T10:00:00Z"})
        r = ok_run(ctl(d, "timers", "--due-before", "2026-11-27T10:30:00Z", "--json"))
        eq([(t["claim"], t["name"]) for t in r.json()["timers"]], [(f, "decision_warning")])
        t = ok_run(ctl(d, "timers"))
        lines = t.out.splitlines()
        eq(lines[0].split(), ["DUE", "CLAIM", "WORKFLOW", "STATE", "TIMER", "EVENT"], t)
        eq(lines[1].split(), ["2026-11-27", "11:00", f, "health_claim", "in_review",
                              "decision_warning", "sla.warning"], t)
        eq(ok_run(ctl(d, "timers", "--due-before", "2026-11-24T00:00:00Z")).out,
           "no pending timers due by then\n")

        s = ok_run(ctl(d, "stats", "--json")).json()
        eq(sorted(s), ["claims", "flags", "seq", "states", "timers"])
        eq(s["claims"], 4)
        # Every committed batch has the next sequence number: the store's
        # creation, the workflows, 4 creates, consent, 3 fired timers...
        check(isinstance(s["seq"], int) and s["seq"] >= 6, s)
        eq(sorted((x["workflow"], x["state"], x["count"]) for x in s["states"]),
           [("health_claim", "awaiting_referral", 1), ("health_claim", "in_review", 3)])
        eq(sorted((x["flag"], x["count"]) for x in s["flags"]),
           [("sla.breached", 1), ("sla.warning", 1)])
        eq(s["timers"]["overdue"], 0)
        h = ok_run(ctl(d, "stats"))
        check(h.out.startswith("claims  4\n"), h)
        check("sla.breached  1" in h.out, h)


def test_watch_human_until_sigint():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        w = subprocess.Popen([CLAIMCTL, "watch", "--events", d.events],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env())
        time.sleep(1.5)
        ok_run(ctl(d, "approve", a))
        advance(d, 86400)                      # F's and E's warnings fire (system)
        time.sleep(1.0)
        w.send_signal(signal.SIGINT)
        out, err = w.communicate(timeout=RUN_TIMEOUT)
        eq(w.returncode, 0, err)
        lines = out.splitlines()
        eq(len(lines), 3, out)
        eq(lines[0].split(), ["2026-11-26", "12:00", a, "health_claim/decision.approved",
                              "in_review", "→", "approved", "hanne"], out)
        eq(lines[1].split()[2:], [f, "health_claim/sla.warning", "in_review", "→",
                                  "in_review", "system"], out)
        # SIGTERM ends it the same way.
        w = subprocess.Popen([CLAIMCTL, "watch", "--events", d.events],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        time.sleep(1.0)
        w.send_signal(signal.SIGTERM)
        w.communicate(timeout=RUN_TIMEOUT)
        eq(w.returncode, 0)


def on_terminal(args, extra_env=None):
    """Run claimctl with stdout and stderr on a pseudo-terminal; its output."""
    import pty
    master, slave = pty.openpty()
    e = env()
    e.pop("NO_COLOR", None)
    e.update(extra_env or {})
    p = subprocess.Popen([CLAIMCTL] + args, stdout=slave, stderr=slave,
                         stdin=subprocess.DEVNULL, env=e)
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:                      # EIO: the child closed the pty
            break
        if not b:
            break
        chunks.append(b)
    os.close(master)
    eq(p.wait(RUN_TIMEOUT), 0)
    return b"".join(chunks).decode()


def test_colour_only_on_a_terminal():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        args = ["queue", "--endpoint", d.operator, "--as", "hanne"]
        tty = on_terminal(args)
        check("\x1b[31msla.warning,sla.breached\x1b[0m" in tty or
              "\x1b[31msla.breached,sla.warning\x1b[0m" in tty, tty)
        check("\x1b[1mID\x1b[0m" in tty, tty)
        plain = on_terminal(args, {"NO_COLOR": "1"})
        check("\x1b" not in plain, plain)
        # Same columns either way.
        eq([ln.split()[0] for ln in plain.splitlines()[1:]], [a, f, e, g], plain)
        # export shows progress on a terminal's stderr, only there.
        out = on_terminal(["export", "--endpoint", d.operator, "--as", "aud"])
        check("claimctl: export: 4 claims" in out, out)


def test_export_every_claim():
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        ok_run(ctl(d, "approve", a))
        ok_run(ctl(d, "deny", f, "--reason", "no"))
        r = ok_run(ctl(d, "export", "--reveal"))
        eq(r.err, "")
        claims = r.lines()
        eq([c["id"] for c in claims], [a, e, f, g])
        for c in claims:
            eq(c, get(d, c["id"]))
        eq([c["id"] for c in ok_run(ctl(d, "export", "--workflow", "inquiry")).lines()], [])


def test_audit_and_purge_without_curve():
    """The access log and purge through claimctl on a daemon without CURVE
    (the operator named by --as); test_security.py does both with keys."""
    with Daemon(clock=T0) as d:
        a, e, f, g = operator_day_claims(d)
        ok_run(ctl(d, "show", a))
        ok_run(ctl(d, "history", a, actor="aud"))
        r = ok_run(ctl(d, "audit", "--claim", a, "--json", actor="aud"))
        eq([(x["actor"], x["op"], x["claims"]) for x in r.lines()],
           [("hanne", "get", [a]), ("hanne", "history", [a]), ("aud", "history", [a])], r)
        r = ok_run(ctl(d, "audit", "--actor", "aud", actor="sofie"))
        lines = r.out.splitlines()
        eq(len(lines), 2, r)
        eq(lines[1].split()[2:], ["aud", "history", a], r)
        eq(ok_run(ctl(d, "audit", "--actor", "nobody", actor="aud")).out, "no entries\n")
        refused(ctl(d, "audit", "--claim", a), "forbidden")
        # F: denied, closed by an operator; then purged.
        ok_run(ctl(d, "deny", f, "--reason", "no"))
        eq(ok_run(ctl(d, "close", f, "--reason", "the member moved abroad")).out,
           "%s: closed\n" % f)
        refused(ctl(d, "purge", "--closed-before", "2026-11-20"), "forbidden")
        eq(ok_run(ctl(d, "purge", "--closed-before", "2026-11-20", actor="sofie")).out,
           "purged 0 claims\n")
        advance(d, 86400)
        eq(ok_run(ctl(d, "purge", "--closed-before", "2026-11-27", actor="sofie")).out,
           "purged 1 claim\n")
        eq(get(d, f)["data"], {})
        # Usage errors: nothing sent.
        usage(ctl(d, "audit", "--claim", a, "--actor", "x"), "audit",
              "claimctl: audit: give --claim or --actor, not both")
        usage(ctl(d, "purge", "--closed-before", "soon"), "purge",
              "claimctl: purge: --closed-before: 'soon' is not a date (YYYY-MM-DD) or an "
              "RFC 3339 time")
        usage(ctl(d, "stats", "--server-key", "x" * 40), "stats",
              "claimctl: stats: --server-key needs --key (or CLAIMFLOW_KEY): CURVE needs "
              "your secret key too")


def test_backup_under_load():
    with Daemon() as d:                        # the real clock, as in production
        p = portal(d)
        acked = [create(p, cpr(1 + i % 28, 1 + i % 12, 1950 + i % 40, i))["id"]
                 for i in range(60)]
        stop = threading.Event()
        during = []
        errors = []

        def load():
            c = Client(d.portal)
            try:
                i = 0
                while not stop.is_set():
                    m = cpr(1 + i % 28, 6, 1961, 2000 + i % 1000)
                    r = c.call({"op": "create", "id": new_id("load"), "workflow": "health_claim",
                                "member": m, "data": {"member": m, "treatment": "scan"}})
                    if r.get("ok") is not True:
                        errors.append(r)
                    else:
                        during.append(r["claim"]["id"])
                    i += 1
            except Exception as ex:            # noqa: BLE001 - reported below
                errors.append(ex)
            finally:
                c.close()

        t = threading.Thread(target=load)
        t.start()
        time.sleep(0.5)
        before = list(acked) + list(during)    # every claim acknowledged so far
        dest = os.path.join(d.tmp, "backup", "copy")
        os.makedirs(os.path.dirname(dest))
        try:
            r = run("backup", dest, "--data", d.data_dir)
        finally:
            stop.set()
            t.join(30)
        eq(errors, [])
        check(len(during) > len(before) - len(acked), "the load ran while the backup did",
              len(during), len(before))
        ok_run(r)
        eq(r.err, "")
        size = os.path.getsize(os.path.join(dest, "data.mdb"))
        check(r.out.startswith("backup: %s: " % dest) and "(%d bytes)" % size in r.out, r)
        nclaims = int(r.out.rsplit(", ", 1)[1].split()[0])
        check(nclaims >= len(before), nclaims, len(before))
        eq(sorted(os.listdir(dest)), ["data.mdb"])   # the verify left no lock file

        # mdb_stat opens the copy and sees the claims database.
        if shutil.which("mdb_stat"):
            s = subprocess.run(["mdb_stat", "-s", "claims", dest], capture_output=True,
                               text=True, timeout=30)
            eq(s.returncode, 0, s.stderr)
            entries = int([ln for ln in s.stdout.splitlines() if "Entries:" in ln][0].split()[-1])
            eq(entries, nclaims)

        # A daemon started on the copy holds every claim acknowledged before.
        with Daemon(data_dir=dest) as r2:
            o = op(r2, "aud")
            for cid in before:
                eq(ok(o.call({"op": "get", "claim": cid}))["claim"]["id"], cid)
            exported = ok_run(ctl(r2, "export", actor="aud")).lines()
            eq(len(exported), nclaims)

        # Into a directory that is not empty: refused, nothing touched.
        r = run("backup", dest, "--data", d.data_dir)
        eq((r.rc, r.err), (1, "claimctl: backup: %s is not empty (a backup goes into a new "
                              "or empty directory)\n" % dest))
        missing = os.path.join(d.tmp, "nowhere")
        r = run("backup", os.path.join(d.tmp, "b2"), "--data", missing)
        eq(r.rc, 1, r)
        check(r.err.startswith("claimctl: backup: no claimflow store in %s" % missing), r)
        usage(run("backup"), "backup", "claimctl: backup: missing argument (DIR)")


def history_pages(d, claim_id):
    """The whole history through the protocol, page by page; and the pages."""
    events, sizes, after = [], [], 0
    while True:
        r = ok(op(d, "aud").call({"op": "history", "claim": claim_id, "after": after}))
        events += r["events"]
        sizes.append(len(r["events"]))
        if "next" not in r:
            return events, sizes
        after = r["next"]


def test_history_and_show_follow_the_pages():
    # 300 events of ~4 KB: the daemon's history replies stop at about
    # 1 MiB, so the history comes in two pages; claimctl reads them all.
    with Daemon(clock=T0) as d:
        p = portal(d)
        a = create(p, M1)["id"]
        consent(p, M1)
        h = op(d, "hanne")
        for i in range(150):
            ok(h.call({"op": "send", "id": new_id(), "claim": a, "event": "info.requested",
                       "data": {"text": "%04d" % i + "q" * 3996}}))
            member_send(p, M1, a, "info.provided", {"text": "%04d" % i + "a" * 3996})
        hist, sizes = history_pages(d, a)
        eq(len(sizes), 2, sizes)
        eq([e["seq"] for e in hist], list(range(1, len(hist) + 1)))
        eq(ok_run(ctl(d, "history", a, "--json")).json(), {"events": hist})
        t = ok_run(ctl(d, "history", a))
        eq(len(t.out.splitlines()), len(hist) + 1)
        doc = ok_run(ctl(d, "show", a, "--json")).json()
        eq(doc["events"], hist[-10:])
        check("last events (10 of %d)" % len(hist) in ok_run(ctl(d, "show", a)).out)


def test_document_in_ranges_checked():
    with Daemon(clock=T0) as d:
        p = portal(d)
        a = create(p, M1, "physiotherapy")["id"]
        body = b"%PDF-1.4\n" + os.urandom(600 * 1024)     # three ranges of 256 KiB
        sha = ok(p.call({"op": "attach", "id": new_id(), "member": M1, "claim": a,
                         "kind": "referral", "content_type": "application/pdf",
                         "body": body}))["document"]["sha256"]
        tmp = tempfile.mkdtemp(prefix="cf-doc-")
        try:
            path = os.path.join(tmp, "referral.pdf")
            r = ok_run(ctl(d, "document", a, sha, "-o", path))
            eq(r.out, "")
            eq(r.err, "claimctl: document: %d bytes written to %s, SHA-256 checked\n"
               % (len(body), path))
            eq(open(path, "rb").read(), body)
            eq(sorted(os.listdir(tmp)), ["referral.pdf"])
            # On stdout (-o -): the bytes themselves.
            q = subprocess.run([CLAIMCTL, "document", a, sha, "-o", "-", "--endpoint",
                                d.operator, "--as", "hanne"], capture_output=True,
                               timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
            eq((q.returncode, q.stdout == body, q.stderr), (0, True, b""))
            # Every range was an access-log entry.
            log = ok(op(d, "aud").call({"op": "audit", "claim": a}))["entries"]
            eq([e["op"] for e in log], ["document"] * 6)
            # A document the claim does not hold: refused, no file at all.
            other = "0" * 64
            r = ctl(d, "document", a, other, "-o", os.path.join(tmp, "x.pdf"))
            refused(r, "not_found")
            eq(sorted(os.listdir(tmp)), ["referral.pdf"])
            r = ctl(d, "document", a, "ABC", "-o", os.path.join(tmp, "x.pdf"))
            eq(r.rc, 2, r)
            eq(r.err.splitlines()[0],
               "claimctl: document: SHA256 must be 64 lower-case hex digits")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run_tests(globals())

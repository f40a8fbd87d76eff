"""Integration: the Python client module (clients/python/claimflow.py)
against the real claimflowd.

The session fields, every op method, document upload and download (the
body checked against its SHA-256), one exception class per error code of
docs/protocol.md's table (each raised by a real reply, but `internal`, which
no request can cause on purpose), retries that resend the same id and so
apply a write exactly once, late replies dropped by id, Timeout, CURVE keys
from claimctl keygen's files, and README's portal example run as written."""

import contextlib
import io
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SRC_DIR, Daemon, T0, check, cpr, eq,  # noqa: E402
                     run_tests)
import claimflow  # noqa: E402  (harness put clients/python on the path)
from test_errors import guarded_workflows  # noqa: E402
from test_lifecycle import PDF  # noqa: E402

PROTOCOL_MD = os.path.join(SRC_DIR, "docs", "protocol.md")
README_MD = os.path.join(SRC_DIR, "README.md")


def portal_client(d, member=None, **kw):
    c = claimflow.Client(d.portal, member=member, **kw)
    d._clients.append(c)
    return c


def op_client(d, actor="hanne", **kw):
    c = claimflow.Client(d.operator, actor=actor, **kw)
    d._clients.append(c)
    return c


def raises(cls, fn, *args, **kw):
    """The exception fn raised, after checking it is exactly a cls."""
    try:
        fn(*args, **kw)
    except claimflow.Error as e:
        eq(type(e), cls, str(e))
        return e
    raise AssertionError("%s not raised" % cls.__name__)


# ------------------------------------------------------------- the tests ---
def test_one_class_per_protocol_error_code():
    # The codes of protocol.md's error table, in its order.
    text = open(PROTOCOL_MD).read()
    table = text[text.index("| code | meaning |"):]
    table = table[:table.index("\n\n")]
    codes = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    eq(codes, ["bad_request", "unknown_op", "not_found", "invalid_transition",
               "guard_failed", "forbidden", "conflict", "too_large",
               "unavailable", "not_leader", "internal"])
    eq(sorted(claimflow.ERRORS), sorted(codes))
    for code, cls in claimflow.ERRORS.items():
        eq(cls.code, code)
        check(issubclass(cls, claimflow.Error), cls)
        e = claimflow.error_for({"ok": False, "error": {"code": code, "message": "m"}}, "r1")
        eq((type(e), e.code, e.message, e.request_id, str(e)), (cls, code, "m", "r1",
                                                                 "%s: m" % code))
    eq([c for c, cls in claimflow.ERRORS.items() if cls.retryable],
       ["unavailable", "not_leader"])
    # A code this module does not know (a newer daemon) is still an Error.
    e = claimflow.error_for({"ok": False, "error": {"code": "shiny_new", "message": "x"}})
    eq((type(e), e.code), (claimflow.Error, "shiny_new"))
    check(issubclass(claimflow.Timeout, TimeoutError))


def test_portal_session_documents_and_consent():
    with Daemon(clock=T0) as d:
        m, other = cpr(1, 1, 1990, 1234), cpr(2, 2, 1980, 2345)
        p = portal_client(d, member=m)
        eq(p.member, m)
        eq(p.ping()["now"], T0)
        c = p.create("health_claim", {"member": m, "treatment": "physiotherapy"})
        eq((c["state"], c["data"]["member"]), ("awaiting_referral", m), c)
        # Upload from a file, content type from its name.
        path = os.path.join(d.tmp, "referral.pdf")
        with open(path, "wb") as f:
            f.write(PDF)
        r = p.attach_file(c["id"], "referral", path)
        eq(r["claim"]["state"], "awaiting_consent", r)
        doc = r["document"]
        eq((doc["kind"], doc["size"]), ("referral", len(PDF)), doc)
        # Download: the body, checked against its sha256; then to a file.
        got = p.document(c["id"], doc["sha256"])
        eq((got["body"], got["content_type"], got["kind"]),
           (PDF, "application/pdf", "referral"), got)
        out = os.path.join(d.tmp, "copy.pdf")
        meta = p.download(c["id"], doc["sha256"], out)
        eq(open(out, "rb").read(), PDF)
        eq(sorted(meta), ["content_type", "kind", "sha256", "size"], meta)
        check(not os.path.exists(out + ".part"), out)
        # Consent moves the claim; the reply says which.
        r = p.consent_give()
        eq((r["moved"], r["consent"]["member"]), ([c["id"]], m), r)
        eq(p.get(c["id"])["state"], "in_review")
        eq([e["event"] for e in p.history(c["id"])],
           ["claim.created", "document.referral", "consent.given"])
        # Another member's session does not see the claim.
        p.member = other
        e = raises(claimflow.NotFound, p.get, c["id"])
        eq(e.reply["id"], e.request_id, e.reply)
        # member=None leaves the field out: the portal needs it.
        p.member = None
        eq(p.session, {})
        e = raises(claimflow.BadRequest, p.get, c["id"])
        check("member" in e.message, e.message)
        # An explicit field wins over the session's.
        p.member = other
        eq(p.get(c["id"], member=m)["id"], c["id"])


def test_representations_and_a_session_acting_for_a_child():
    child, mother = "1501145123", cpr(1, 3, 1980, 1234, dash=False)
    with Daemon(clock=T0) as d:
        h = op_client(d)
        r = h.representation_add(child, mother, "parent", ["consent", "claims", "read"],
                                 b"%PDF-1.4 custody")
        eq((r["kind"], r["active"], r["valid_until"]), ("parent", True, "2032-01-14T23:00:00Z"))
        # The mother's portal session acts for her son: member and by.
        p = portal_client(d, child, by=mother)
        c = p.create("health_claim", {"member": child, "treatment": "chiropractic"})
        eq(p.consent_give()["moved"], [c["id"]])
        eq(p.consent_get()["given_by"], mother)
        eq([x["member"] for x in p.representations()], [child])
        # The boy himself may not consent (under 15): Forbidden, naming the rule.
        boy = portal_client(d, child)
        e = raises(claimflow.Forbidden, boy.consent_give)
        check("under 15" in str(e), e)
        # An adult grants and revokes a third party.
        a = portal_client(d, cpr(5, 6, 1950, 3456, dash=False))
        g = a.representation_grant(mother, ["read"], "2027-06-30")
        eq((g["kind"], g["registered_by"]), ("third_party", "member"))
        eq(a.representation_revoke(mother)["active"], False)


def test_member_rights_history_pages_and_export():
    # The member's own ops (issue 17) through the module: consent.get, the
    # access log (every page), export (every page), and history across pages.
    with Daemon(clock=T0) as d:
        m = cpr(3, 3, 1970, 1234)
        p = portal_client(d, member=m)
        eq(p.consent_get(), None)
        c = p.create("health_claim", {"member": m, "treatment": "chiropractic"})
        p.consent_give()
        got = p.consent_get()
        eq((got["given_at"], got["given_by"], got["channel"]), (T0, "member", "portal"), got)
        # Withdraw and give again a few times: more events than one page of 3.
        for _ in range(3):
            p.consent_withdraw()
            p.consent_give()
        whole = p.history(c["id"])
        eq([e["seq"] for e in whole], list(range(1, len(whole) + 1)))
        eq([e["seq"] for e in p.history(c["id"], limit=3)], [e["seq"] for e in whole])
        h = op_client(d, "hanne")
        for purpose in ("first read", "second read"):
            h.call("get", claim=c["id"], purpose=purpose)
        log = p.access_log(limit=1)
        eq([(e["op"], e["role"], e["purpose"]) for e in log],
           [("get", "handler", "second read"), ("get", "handler", "first read")], log)
        check(all("actor" not in e for e in log), log)
        pages = list(p.export())
        claims = [x["claim"]["id"] for pg in pages for x in pg["claims"]]
        eq(claims, [c["id"]])
        eq(pages[0]["consent"]["given_by"], "member", pages[0])


def test_operator_session_pages_timers_stats_and_clock():
    with Daemon(clock=T0) as d:
        m = cpr(3, 3, 1970, 3456)
        p, h = portal_client(d, member=m), op_client(d, "hanne")
        p.consent_give()
        ids = []
        for _ in range(3):
            # Chiropractic needs no referral; with consent given a new claim
            # goes straight to in_review.
            ids.append(p.create("health_claim", {"member": m, "treatment": "chiropractic"})["id"])
        # Three pages of one claim each, oldest first.
        eq([c["id"] for c in h.claims(workflow="health_claim", state="in_review",
                                      limit=1)], ids)
        eq(h.query(workflow="health_claim", limit=2)["next"] is not None, True)
        eq(len(h.timers()), 6)           # decision_warning, decision_due each
        s = h.stats()
        eq((s["claims"], s["timers"]["pending"]), (3, 8), s)  # + consent expiry, reminder
        r = h.clock_advance(86400)
        eq((r["now"], r["fired"]), ("2026-11-25T09:00:00Z", 3), r)
        eq(h.clock_set("2026-11-26T09:00:00Z")["fired"], 3)
        flags = {f["flag"]: f["count"] for f in h.stats()["flags"]}
        eq(flags, {"sla.warning": 3, "sla.breached": 3})
        claim = h.send_event(ids[0], "decision.approved")
        eq(claim["state"], "approved", claim)
        # The auditor reads the access log of hanne's reads.
        aud = op_client(d, "aud")
        eq(aud.actor, "aud")
        entries = aud.audit(operator="hanne")["entries"]
        # (every operator request naming a claim is logged: the send too)
        eq(sorted(set(e["op"] for e in entries)), ["query", "send"], entries)


def test_each_error_code_raises_its_class():
    d = Daemon(clock=T0, args=["--max-frame", "64K"])
    d.workflows_dir = guarded_workflows(d.tmp)
    with d:
        m = cpr(4, 4, 1960, 1111)
        p, h = portal_client(d, member=m), op_client(d)
        e = raises(claimflow.BadRequest, p.create, "health_claim", {"member": m})
        check("treatment" in e.message, e.message)
        eq((e.code, e.reply["ok"], e.reply["id"]), ("bad_request", False, e.request_id))
        raises(claimflow.UnknownOp, p.call, "teleport")
        raises(claimflow.NotFound, p.get, "01M86CH3M0C6PRT4J849W5PE7A")
        c = p.create("health_claim", {"member": m, "treatment": "scan"})
        e = raises(claimflow.InvalidTransition, p.send_event, c["id"], "treatment.started")
        check("awaiting_referral" in e.message, e.message)
        g = p.create("guarded", {"member": m})
        e = raises(claimflow.GuardFailed, p.send_event, g["id"], "submit")
        check("consent_valid" in e.message, e.message)
        raises(claimflow.Forbidden, p.timers)
        # The same id for another request.
        p.create("health_claim", {"member": m, "treatment": "scan"}, request_id="same-id")
        e = raises(claimflow.Conflict, p.create, "health_claim",
                   {"member": m, "treatment": "physiotherapy"}, request_id="same-id")
        eq(e.request_id, "same-id")
        # A frame over --max-frame: the transport's reply has no id, and is
        # still taken as this request's answer.
        e = raises(claimflow.TooLarge, p.attach, c["id"], "referral",
                   b"%PDF-1.4\n" + b"x" * (70 << 10))
        eq("id" in e.reply, False, e.reply)
        check("max_frame" in e.message, e.message)
        # Operators name an actor; none is bad_request, an unknown one forbidden.
        h.actor = "nobody"
        raises(claimflow.Forbidden, h.stats)
        h.actor = "hanne"
        eq(h.stats()["claims"], 3)


def test_unavailable_is_retryable_and_names_its_id():
    with Daemon(clock=T0, args=["--map-size", "1M", "--no-grow"]) as d:
        m = cpr(5, 5, 1955, 2222)
        p = portal_client(d, member=m)
        caught = again = None
        for i in range(100):
            body = b"%PDF-1.4\n" + os.urandom(60000)
            data = {"member": m, "treatment": "scan"}
            try:
                again = (p.create, ("health_claim", data), "fill-c%d" % i)
                c = p.create("health_claim", data, request_id="fill-c%d" % i)
                again = (p.attach, (c["id"], "referral", body), "fill-a%d" % i)
                p.attach(c["id"], "referral", body, request_id="fill-a%d" % i)
            except claimflow.Unavailable as e:
                caught = e
                break
        check(caught is not None, "the 1 MiB store never filled")
        eq((caught.retryable, caught.code, caught.reply["id"], caught.request_id),
           (True, "unavailable", again[2], again[2]))
        check("nothing was changed" in caught.message, caught.message)
        # The same request again (same id, same bytes) is refused again:
        # an `unavailable` reply is not remembered.
        fn, args, rid = again
        e = raises(claimflow.Unavailable, fn, *args, request_id=rid)
        eq(e.request_id, rid)
        eq(p.ping()["now"], T0)


def test_retry_resends_the_same_id_and_applies_once():
    with Daemon(clock=T0) as d:
        m = cpr(6, 6, 1966, 3333)
        p = portal_client(d, member=m, timeout=1.0, retries=20)
        p.ping()                          # connected
        sent0 = p.sent
        d.proc.send_signal(signal.SIGSTOP)
        result = {}

        def create():
            try:
                result["claim"] = p.create("health_claim",
                                           {"member": m, "treatment": "scan"},
                                           request_id="create-once")
            except Exception as e:        # reported below
                result["error"] = e
        t = threading.Thread(target=create)
        try:
            t.start()
            # Wait until the request went out twice (one timeout, one retry).
            deadline = time.monotonic() + 30
            while p.sent < sent0 + 2 and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        t.join(60)
        check(p.sent >= sent0 + 2, p.sent, sent0)
        check("claim" in result, result)
        # The daemon got the same frame at least twice: one claim, one event.
        claims = list(p.claims(member=m))
        eq([c["id"] for c in claims], [result["claim"]["id"]], claims)
        eq([e["event"] for e in p.history(claims[0]["id"])], ["claim.created"])
        # Late replies to the extra attempts were dropped by id, not taken
        # for the answers above; one more call gets its own answer too.
        eq(p.get(claims[0]["id"])["id"], claims[0]["id"])


def test_timeout_after_every_attempt():
    with Daemon(clock=T0) as d:
        p = portal_client(d, member=cpr(), timeout=0.2, retries=2)
        p.ping()
        d.proc.send_signal(signal.SIGSTOP)
        try:
            sent0 = p.sent
            e = raises(claimflow.Timeout, p.consent_give, request_id="t-1")
            eq((p.sent - sent0, e.request_id, e.reply), (3, "t-1", None))
            check(isinstance(e, TimeoutError))
            check("3 attempts" in str(e), str(e))
        finally:
            d.proc.send_signal(signal.SIGCONT)
        # The daemon answers all three now; the retry with the same id gets
        # the remembered reply, and the late ones are dropped.
        r = p.consent_give(request_id="t-1")
        eq(r["id"], "t-1")
        eq(p.ping()["now"], T0)


def test_curve_keys_from_keygen_files():
    from test_security import Keys, curve_config
    d = Daemon(clock=T0)
    keys = Keys(d)
    curve_config(d, keys)
    with d:
        pub = claimflow.load_key(keys.server_pub_file)
        eq(pub, keys.server_pub)
        h = op_client(d, "hanne", server_key=pub, public_key=keys.public("hanne"),
                      secret_key=claimflow.load_key(keys.ops["hanne"][1]))
        eq(h.stats()["claims"], 0)
        # The key is the operator: naming another actor is forbidden.
        h.actor = "sofie"
        raises(claimflow.Forbidden, h.stats)
        try:
            claimflow.Client(d.portal, server_key=pub)
        except ValueError as e:
            eq(str(e), "CURVE needs server_key, public_key and secret_key")
        else:
            raise AssertionError("half a key set accepted")


def test_readme_portal_example_runs_as_written():
    text = open(README_MD).read()
    block = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    check('Client("tcp://127.0.0.1:7401"' in block, block)
    with Daemon(clock=T0) as d:
        code = block.replace("tcp://127.0.0.1:7401", d.portal)
        code = code.replace('sys.path.insert(0, "clients/python")',
                            'sys.path.insert(0, %r)' % os.path.join(SRC_DIR, "clients",
                                                                   "python"))
        env, out = {}, io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), env)
        portal = env["portal"]
        d._clients.append(portal)
        eq(out.getvalue(), env["c"]["id"] + "\n")
        c = portal.get(env["c"]["id"])
        eq((c["state"], len(c["documents"])), ("in_review", 1), c)
        # The handler's part, then README's last portal line.
        h = op_client(d, "hanne")
        h.send_event(c["id"], "decision.approved")
        h.send_event(c["id"], "guarantee.issued", {"amount": 150000, "provider": "Fysio Nord",
                                                   "valid_until": "2027-02-01"})
        line = re.search(r"^`(portal\.send_event\(.*\))`\.$", text, re.M).group(1)
        eq(eval(line, env)["state"], "in_treatment")


if __name__ == "__main__":
    run_tests(globals())

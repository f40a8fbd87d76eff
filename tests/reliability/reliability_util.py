"""reliability_util.py: what the reliability tests (docs/RELIABILITY.md) share
beyond harness.py.

- Short and long forms: every reliability test runs its short form by
  default (the test command) and its long form with `--long` on the command
  line or CF_LONG=1 in the environment (meson's `slow` suite).  run() strips
  `--long` before harness.run_tests sees the argument list.
- CF_DAEMON_WRAPPER: a command put in front of claimflowd, e.g.
  CF_DAEMON_WRAPPER="valgrind --error-exitcode=99 --leak-check=full".
  Valgrind cannot run a sanitized binary, so with a wrapper the tests skip
  (exit 77) when claimflowd was built with ASan; CF_DAEMON_BINARY names
  another build's claimflowd (docs/RELIABILITY.md).
- CF_PLAIN_BUILDDIR: a build without sanitizers (`./dev test` exports
  build/plain, which it builds when the slow suite is asked for), for what
  a sanitized daemon cannot do: valgrind, and judging memory (ASan's
  quarantine and shadow memory grow by themselves).  plain_daemon() gives
  its claimflowd.
- Memory: the daemon's VmRSS/VmHWM/RssAnon from /proc/<pid>/status.
- Store checks: mdb_stat -a, and a full read (every claim by paging `query`,
  the history of each, gap-free and ending in the claim's state).
- Members: member(n) is a distinct valid CPR number for every n.

The Daemon of harness.py is reused: it applies CF_DAEMON_WRAPPER and
CF_DAEMON_BINARY itself (for the valgrind run of the integration tests);
RDaemon adds the pid, SIGKILL without closing clients, and a scan of the
daemon's stderr for sanitizer reports.
"""

import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import harness  # noqa: E402  (first: it re-executes /usr/bin/python3 if needed)
import msgpack  # noqa: E402
from harness import Client, Daemon, check, cpr, eq, ok  # noqa: E402

LONG = os.environ.get("CF_LONG") == "1" or "--long" in sys.argv[1:]
WRAPPER = shlex.split(os.environ.get("CF_DAEMON_WRAPPER", ""))
DAEMON_BINARY = os.environ.get("CF_DAEMON_BINARY") or harness.CLAIMFLOWD

if WRAPPER:
    # valgrind makes start-up (and everything else) 20-50 times slower
    harness.START_TIMEOUT = 300.0
    harness.STOP_TIMEOUT = 300.0

# How much slower replies are under the wrapper: timeouts scale by this.
SLOW = 20 if WRAPPER else 1


def run(namespace):
    """harness.run_tests without the `--long` flag; skip (77) when a wrapper
    is asked for but claimflowd is sanitized (valgrind cannot run it)."""
    argv = [a for a in sys.argv[1:] if a != "--long"]
    if WRAPPER and is_sanitized(DAEMON_BINARY):
        print("SKIP: CF_DAEMON_WRAPPER set but %s is built with ASan; set "
              "CF_DAEMON_BINARY to a build without sanitizers" % DAEMON_BINARY)
        sys.exit(77)
    harness.run_tests(namespace, argv)


def plain_daemon():
    """A claimflowd built without sanitizers: CF_DAEMON_BINARY or this
    build's when unsanitized, else CF_PLAIN_BUILDDIR's; None if there is
    none."""
    for path in (DAEMON_BINARY,
                 os.path.join(os.environ.get("CF_PLAIN_BUILDDIR") or "/nonexistent",
                              "adapters", "claimflowd")):
        if os.access(path, os.X_OK) and not is_sanitized(path):
            return path
    return None


NO_PLAIN = ("needs a claimflowd built without sanitizers: run `./dev test --suite "
            "slow` (it builds build/plain and exports CF_PLAIN_BUILDDIR), or set "
            "CF_PLAIN_BUILDDIR to such a build directory")


def is_sanitized(path):
    try:
        with open(path, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False


def log(fmt, *args):
    """A progress line on stdout (meson keeps it in the test log)."""
    sys.stdout.write((fmt % args if args else fmt) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------- daemon ---
class RDaemon(Daemon):
    """harness.Daemon (which applies CF_DAEMON_WRAPPER itself) on
    CF_DAEMON_BINARY, with what the reliability tests need."""

    def __init__(self, **kw):
        kw.setdefault("binary", DAEMON_BINARY)
        super().__init__(**kw)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def sigkill(self):
        """SIGKILL without touching clients (harness's kill() closes the
        clients it made; the load threads own theirs)."""
        if self.proc is None:
            return None
        self.proc.kill()
        return self._reap(harness.STOP_TIMEOUT)

    def started_with_errors(self):
        """Sanitizer or valgrind reports in what the daemon printed."""
        bad = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
               "runtime error:", "Invalid read", "Invalid write",
               "definitely lost: [1-9]")
        return [line for line in self.stderr_lines
                if any(b in line for b in bad[:5])]


def memory(pid):
    """{VmRSS, VmHWM, RssAnon, RssFile} of pid in KiB (0 when absent)."""
    out = {"VmRSS": 0, "VmHWM": 0, "RssAnon": 0, "RssFile": 0}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in out:
                out[k] = int(v.split()[0])
    return out


def nfds(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def mib(kib):
    return kib / 1024.0


# ------------------------------------------------------------- members ---
def member(n):
    """A distinct CPR number for every n >= 0 (up to 13440 * 4000)."""
    day = 1 + n % 28
    month = 1 + (n // 28) % 12
    year = 1950 + (n // 336) % 40
    serial = (n // 13440) % 4000
    return cpr(day, month, year, serial)


# ---------------------------------------------------------- store checks ---
def mdb_stat(data_dir):
    """`mdb_stat -a DIR` (every sub-database); its output, or AssertionError
    with what it printed.  (lmdb-utils; the test is skipped without it.)"""
    r = subprocess.run(["mdb_stat", "-a", data_dir], capture_output=True,
                       timeout=60)
    if r.returncode != 0:
        raise AssertionError("mdb_stat -a %s: exit %d: %s"
                             % (data_dir, r.returncode, r.stderr.decode()))
    out = r.stdout.decode()
    for name in ("claims", "history", "idem", "timers"):
        check("Status of %s" % name in out, "mdb_stat lists no " + name, out)
    return out


def mdb_all_entries(stat_out):
    """{sub-database: Entries} of every database in mdb_stat -a output (the
    main database is `""`)."""
    out, name = {}, ""
    for line in stat_out.splitlines():
        if line.startswith("Status of "):
            name = line[len("Status of "):].strip()
        elif line.strip().startswith("Entries:"):
            out[name] = int(line.split(":")[1])
    return out


def mdb_entries(stat_out, name):
    """The `Entries:` of one sub-database in mdb_stat -a output."""
    block = stat_out.split("Status of %s\n" % name, 1)[1]
    for line in block.splitlines():
        if line.strip().startswith("Entries:"):
            return int(line.split(":")[1])
    raise AssertionError("no Entries for %s" % name)


def all_claims(c, timeout=30):
    """Every claim, through `query` pages (operator client)."""
    claims, after = [], None
    while True:
        req = {"op": "query", "limit": 1000}
        if after is not None:
            req["after"] = after
        r = ok(c.call(req, timeout=timeout * SLOW))
        claims += r["claims"]
        after = r.get("next")
        if after is None:
            return claims


def full_read(c, timeout=30):
    """Read everything: every claim and its history, checking each history
    is gap-free (seq 1..n), chained (from == previous to) and ends in the
    claim's state.  {claim id: (claim, events)}."""
    got = {}
    for cl in all_claims(c, timeout):
        ev = ok(c.call({"op": "history", "claim": cl["id"]},
                       timeout=timeout * SLOW))["events"]
        eq([e["seq"] for e in ev], list(range(1, len(ev) + 1)), cl["id"], ev)
        check(ev[0]["event"] == "claim.created" and ev[0]["from"] is None,
              ev[0])
        for a, b in zip(ev, ev[1:]):
            eq(b["from"], a["to"], cl["id"], b)
        eq(ev[-1]["to"], cl["state"], cl["id"], ev[-1])
        got[cl["id"]] = (cl, ev)
    return got


def snapshot(c, timeout=30):
    """Everything a client can read, for comparing a store before and after:
    {claim id: (claim, events, {sha256: body})} through full_read, plus
    `stats`.  c is an operator client whose actor may read (e.g. aud)."""
    import hashlib
    out = {}
    for cid, (cl, ev) in full_read(c, timeout).items():
        bodies = {}
        for doc in cl["documents"]:
            r = ok(c.call({"op": "document", "claim": cid, "sha256": doc["sha256"]},
                          timeout=timeout * SLOW))["document"]
            eq(hashlib.sha256(r["body"]).hexdigest(), doc["sha256"], cid)
            eq(len(r["body"]), doc["size"], cid)
            bodies[doc["sha256"]] = r["body"]
        out[cid] = (cl, ev, bodies)
    st = ok(c.call({"op": "stats"}, timeout=timeout * SLOW))
    del st["ok"]
    return out, st


def stop_counts(d):
    """The counters of the daemon's `stopped` line (requests,
    dropped_replies) as {name: int}; d must have been stopped."""
    import re
    for line in reversed(d.stderr_lines):
        if line.startswith("claimflowd: stopped"):
            return {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", line)}
    raise AssertionError("no `stopped` line:\n" + "\n".join(d.stderr_lines[-20:]))


def wait_for(pred, timeout, what, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def percentile(xs, p):
    if not xs:
        return 0.0
    s = sorted(xs)
    return s[min(len(s) - 1, int(len(s) * p / 100.0))]


# ------------------------------------------------- fuzz_request's corpus ---
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"


def request_corpus():
    """{file name: bytes}: real requests of every op, as fuzz_request reads
    them (one endpoint byte, 'P' portal or 'O' operator, then the frame).
    FUZZCLAIM0000000000000000A..D name the claims fuzz_request makes at
    start (see tests/fuzz/fuzz_request.c)."""
    import hashlib
    A, B, C, D = ("FUZZCLAIM0000000000000000" + k for k in "ABCD")
    ma, mb = "010190-1234", "0202851111"
    sha = hashlib.sha256(PDF).hexdigest()
    P = [
        ("ping", {"op": "ping"}),
        ("ping_id", {"op": "ping", "id": "p-1"}),
        ("create_health", {"op": "create", "id": "c-1", "workflow": "health_claim",
                           "member": ma, "data": {"member": ma, "treatment": "scan",
                                                  "description": "knee"}}),
        ("create_chiro", {"op": "create", "id": "c-2", "workflow": "health_claim",
                          "member": mb, "data": {"member": mb, "treatment": "chiropractic"}}),
        ("create_inquiry", {"op": "create", "id": "c-3", "workflow": "inquiry",
                            "member": mb, "data": {"claim": B, "text": "status?"}}),
        ("create_fnr", {"op": "create", "id": "c-4", "workflow": "health_claim",
                        "member": "15068540019", "data": {"member": "15068540019",
                                                          "treatment": "surgery"}}),
        ("send_withdraw", {"op": "send", "id": "s-1", "member": ma, "claim": A,
                           "event": "claim.withdrawn"}),
        ("send_info", {"op": "send", "id": "s-2", "member": mb, "claim": B,
                       "event": "info.provided", "data": {"text": "here"}}),
        ("send_complaint", {"op": "send", "id": "s-3", "member": mb, "claim": D,
                            "event": "complaint.filed", "data": {"text": "unfair"}}),
        ("send_reconsideration", {"op": "send", "id": "s-9", "member": mb, "claim": D,
                                  "event": "reconsideration.requested",
                                  "data": {"text": "again"}}),
        ("send_treatment", {"op": "send", "id": "s-4", "member": mb, "claim": B,
                            "event": "treatment.started"}),
        ("attach", {"op": "attach", "id": "a-1", "member": ma, "claim": A,
                    "kind": "referral", "content_type": "application/pdf", "body": PDF}),
        ("document", {"op": "document", "member": ma, "claim": A, "sha256": sha}),
        ("consent_give", {"op": "consent.give", "id": "g-1", "member": ma}),
        ("consent_withdraw", {"op": "consent.withdraw", "id": "w-1", "member": mb}),
        ("get", {"op": "get", "member": mb, "claim": B}),
        ("history", {"op": "history", "member": mb, "claim": C}),
        ("query", {"op": "query", "member": mb, "workflow": "health_claim",
                   "state": "in_review", "open": True, "limit": 10}),
        ("query_after", {"op": "query", "member": mb, "flag": "sla.warning",
                         "after": "x", "limit": 1000}),
        ("bad_types", {"op": "create", "id": 7, "workflow": ["x"], "data": None,
                       "member": b"\x00"}),
        ("unknown_op", {"op": "frobnicate", "id": "u-1"}),
    ]
    O = [
        ("ping", {"op": "ping"}),
        ("create_health", {"op": "create", "id": "oc-1", "actor": "hanne",
                           "workflow": "health_claim",
                           "data": {"member": ma, "treatment": "psychology"}}),
        ("send_approve", {"op": "send", "id": "os-1", "actor": "hanne", "claim": B,
                          "event": "decision.approved"}),
        ("send_guarantee", {"op": "send", "id": "os-2", "actor": "hanne", "claim": B,
                            "event": "guarantee.issued",
                            "data": {"amount": 1500000, "provider": "Fysio Nord",
                                     "valid_until": "2027-05-24"}}),
        ("send_info", {"op": "send", "id": "os-3", "actor": "hanne", "claim": B,
                       "event": "info.requested", "data": {"text": "invoice"}}),
        ("send_deny", {"op": "send", "id": "os-4", "actor": "hanne", "claim": B,
                       "event": "decision.denied", "data": {"reason": "no"}}),
        ("send_upheld", {"op": "send", "id": "os-5", "actor": "sofie", "claim": D,
                         "event": "complaint.upheld"}),
        ("send_settlement", {"op": "send", "id": "os-9", "actor": "hanne", "claim": B,
                             "event": "settlement.paid",
                             "data": {"amount": 150000, "paid_to": "provider",
                                      "reference": "PAY-1"}}),
        ("assign", {"op": "assign", "id": "oas-1", "actor": "sofie", "claim": B,
                    "to": "hanne"}),
        ("assign_release", {"op": "assign", "id": "oas-2", "actor": "hanne", "claim": B,
                            "to": None}),
        ("query_owner", {"op": "query", "actor": "aud", "workflow": "health_claim",
                         "owner": "sofie", "open": True}),
        ("query_unowned", {"op": "query", "actor": "aud", "unowned": True}),
        ("send_answer", {"op": "send", "id": "os-6", "actor": "hanne", "claim": C,
                         "event": "inquiry.answered", "data": {"text": "soon"}}),
        ("attach", {"op": "attach", "id": "oa-1", "actor": "hanne", "claim": A,
                    "kind": "referral", "content_type": "application/pdf",
                    "body": PDF}),
        ("document", {"op": "document", "actor": "aud", "claim": A, "sha256": sha}),
        ("get", {"op": "get", "actor": "aud", "claim": D}),
        ("history", {"op": "history", "actor": "aud", "claim": B}),
        ("query", {"op": "query", "actor": "aud", "workflow": "health_claim",
                   "state": "denied", "member": mb, "limit": 2}),
        ("query_open", {"op": "query", "actor": "sofie", "open": False}),
        ("timers", {"op": "timers", "actor": "aud", "due_before": "2026-12-01T00:00:00Z",
                    "limit": 5}),
        ("stats", {"op": "stats", "actor": "aud"}),
        ("clock_advance", {"op": "clock.advance", "id": "oc-1", "actor": "hanne", "seconds": 86400}),
        ("clock_set", {"op": "clock.set", "id": "oc-2", "actor": "hanne",
                       "at": "2026-12-24T10:15:00+01:00"}),
        ("consent_on_operator", {"op": "consent.give", "id": "og-1", "actor": "hanne",
                                 "member": ma}),
        ("no_actor", {"op": "get", "claim": A}),
    ]
    out = {}
    for prefix, reqs in (("P", P), ("O", O)):
        for name, req in reqs:
            out["%s_%s.mp" % (prefix.lower(), name)] = \
                prefix.encode() + msgpack.packb(req, use_bin_type=True)
    out["p_not_a_map.mp"] = b"P" + msgpack.packb(["op", "ping"])
    out["o_truncated.mp"] = b"O" + msgpack.packb({"op": "stats", "actor": "aud"})[:-2]
    return out


def write_request_corpus(path):
    os.makedirs(path, exist_ok=True)
    for name, data in sorted(request_corpus().items()):
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)


__all__ = ["LONG", "WRAPPER", "SLOW", "RDaemon", "Client", "memory", "nfds",
           "mib", "member", "mdb_stat", "mdb_entries", "mdb_all_entries",
           "all_claims", "full_read", "snapshot", "stop_counts", "wait_for", "percentile", "run", "log"]


if __name__ == "__main__":
    # python3 reliability_util.py make-corpus: (re)write fuzz_request's seeds
    if sys.argv[1:2] == ["make-corpus"]:
        write_request_corpus(os.path.join(harness.SRC_DIR, "tests", "fuzz",
                                          "corpus", "fuzz_request"))
    else:
        sys.exit("usage: reliability_util.py make-corpus")

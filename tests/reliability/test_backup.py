"""Reliability: backup under load, and restore (docs/RELIABILITY.md,
"Backup and restore").

Client threads drive claimflowd (creates and transitions; each records
every acknowledged request in order) while `claimctl backup DIR --data
DATA_DIR` copies the live store.  The daemon starts with a 1 MiB map, so it
grows its map during the run and a backup may meet LMDB's MDB_MAP_RESIZED.
Each backup is then restored - a second claimflowd started on DIR, as
docs/storage.md says - and checked:

- it opens, mdb_stat reads every sub-database, and claimctl's summary line
  gives the number of claims the restored daemon holds;
- every claim acknowledged before the backup began is there, and each
  claim's history is exactly a prefix of what its client had acknowledged by
  the end, at least as long as what it had acknowledged when the backup
  began (a consistent snapshot: nothing half-written, nothing invented);
  histories are gap-free and end in the claim's state; the claims' pending
  timers are those of their states;
- the copy keeps the idempotency record: a create acknowledged before the
  backup, resent unchanged to the restored daemon, gets the same reply and
  makes no second claim; and the restored daemon takes new writes.

The last backup is restored the other way docs/claimctl.md gives (stop the
daemon, put the copy's data.mdb in place of its own, start it again).

Short form: 2 backups; long form: 20.
"""

import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
import harness  # noqa: E402
from harness import T0, Client, check, eq, ok  # noqa: E402
from reliability_util import (LONG, SLOW, RDaemon, full_read, log,  # noqa: E402
                              mdb_stat, member, run)

BACKUPS = 20 if LONG else 2
THREADS = 3
TIMEOUT = 60 * SLOW

PATH = [                                  # a claim's life after create
    ("o", "info.requested", {"text": "invoice please"}, "awaiting_info"),
    ("p", "info.provided", {"text": "sent"}, "in_review"),
    ("o", "decision.approved", None, "approved"),
    ("o", "guarantee.issued", {"amount": 150000, "provider": "Kiropraktor Syd",
                               "valid_until": "2027-05-24"}, "guarantee_issued"),
    ("p", "treatment.started", None, "in_treatment"),
]
TIMERS_IN = {"in_review": {"decision_warning", "decision_due"},
             "awaiting_info": {"reminder", "expiry"},
             "guarantee_issued": {"guarantee_expiry", "complaint_window"}}


class Worker(threading.Thread):
    """Creates claims and moves each a random way along PATH; acklog holds
    every acknowledged (claim, event, actor, state), in order."""

    def __init__(self, d, n, seed):
        super().__init__(daemon=True)
        self.n = n
        self.rng = random.Random(seed)
        self.p = Client(d.portal)
        self.o = Client(d.operator, {"actor": "hanne"})
        self.m = member(500 + n)
        self.acklog = []
        self.creates = []          # (request, reply) of each acknowledged create
        self.stop = False
        self.error = None
        self.k = 0

    def call(self, where, req, state):
        r = (self.p if where == "p" else self.o).call(req, timeout=TIMEOUT)
        ok(r)
        eq((r["id"], r["claim"]["state"]), (req["id"], state), req, r)
        return r

    def run(self):
        try:
            ok(self.p.call({"op": "consent.give", "id": "w%d-consent" % self.n,
                            "member": self.m}, timeout=TIMEOUT))
            while not self.stop:
                self.k += 1
                req = {"op": "create", "id": "w%d-c%d" % (self.n, self.k),
                       "workflow": "health_claim", "member": self.m,
                       "data": {"member": self.m, "treatment": "chiropractic"}}
                r = self.call("p", req, "in_review")
                cid = r["claim"]["id"]
                self.creates.append((req, r))
                self.acklog.append((cid, "claim.created", "member", "in_review"))
                for where, event, data, to in PATH[:self.rng.randint(0, len(PATH))]:
                    self.k += 1
                    req = {"op": "send", "id": "w%d-s%d" % (self.n, self.k),
                           "claim": cid, "event": event}
                    if data is not None:
                        req["data"] = data
                    if where == "p":
                        req["member"] = self.m
                    self.call(where, req, to)
                    self.acklog.append((cid, event, "member" if where == "p" else "hanne", to))
        except Exception as ex:               # noqa: BLE001 - reported by main
            self.error = ex
        finally:
            self.p.close()
            self.o.close()


def acked(workers, marks):
    """{claim: [(event, actor, state)...]} of the first marks[i] acks of
    each worker."""
    out = {}
    for w, n in zip(workers, marks):
        for cid, ev, actor, to in w.acklog[:n]:
            out.setdefault(cid, []).append((ev, actor, to))
    return out


def backup(data_dir, dest):
    r = subprocess.run([harness.CLAIMCTL, "backup", dest, "--data", data_dir],
                       capture_output=True, timeout=300 * SLOW)
    out = r.stdout.decode()
    eq(r.returncode, 0, out, r.stderr.decode())
    m = re.fullmatch(r"backup: (.*): [0-9.]+ MiB \(([0-9]+) bytes\), ([0-9]+) claims\n", out)
    check(m is not None and m.group(1) == dest, out)
    eq(int(m.group(2)), os.path.getsize(os.path.join(dest, "data.mdb")), out)
    return int(m.group(3))


def check_restored(d, before, final, nclaims):
    """d runs on a restored copy: `before` (acked when the backup began) is
    all there; every history is a prefix of `final` (acked by the end)."""
    aud = d.client(d.operator, {"actor": "aud"})
    got = full_read(aud, TIMEOUT)
    eq(len(got), nclaims, "claimctl's claim count")
    check(set(before) <= set(got), "claims acknowledged before the backup are missing",
          sorted(set(before) - set(got))[:5])
    check(set(got) <= set(final), "the copy holds claims nobody created",
          sorted(set(got) - set(final))[:5])
    for cid, (cl, ev) in got.items():
        hist = [(e["event"], e["actor"], e["to"]) for e in ev]
        eq(hist, final[cid][:len(hist)], "not a prefix of what was acknowledged", cid)
        check(len(hist) >= len(before.get(cid, [])), "an acknowledged transition is "
              "missing", cid, hist, before.get(cid))
        eq({t["name"] for t in cl["timers"]}, TIMERS_IN.get(cl["state"], set()), cid, cl)
    st = ok(aud.call({"op": "stats"}, timeout=TIMEOUT))
    eq(st["claims"], nclaims, st)
    return got


def test_backup_under_load():
    seed = int(os.environ.get("CF_SEED") or random.SystemRandom().randrange(1 << 30))
    log("seed %d, %d backups", seed, BACKUPS)
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="cf-backup-")
    d = RDaemon(clock=T0, args=["--map-size", "1M"])
    workers = []
    try:
        d.start()
        workers = [Worker(d, n, rng.randrange(1 << 30)) for n in range(THREADS)]
        for w in workers:
            w.start()
        results = []
        for b in range(BACKUPS):
            time.sleep(rng.uniform(0.5, 1.5) * SLOW)
            for w in workers:
                check(w.error is None, w.error)
            marks = [len(w.acklog) for w in workers]
            dest = os.path.join(tmp, "backup-%d" % b)
            t = time.monotonic()
            nclaims = backup(d.data_dir, dest)
            during = sum(len(w.acklog) for w in workers) - sum(marks)
            results.append((dest, marks, nclaims))
            log("backup %d: %d claims acknowledged before it, %d in the copy, %d "
                "requests acknowledged while it ran (%.2fs)", b,
                len(acked(workers, marks)), nclaims, during, time.monotonic() - t)
            mdb_stat(dest)
        for w in workers:
            w.stop = True
        for w in workers:
            w.join(TIMEOUT + 30)
            check(not w.is_alive() and w.error is None, w.n, w.error)
        final = acked(workers, [len(w.acklog) for w in workers])
        pristine = os.path.join(tmp, "last.mdb")     # before a daemon writes to it
        shutil.copyfile(os.path.join(results[-1][0], "data.mdb"), pristine)
        log("load done: %d claims, %d acknowledged requests, map %d bytes",
            len(final), sum(len(w.acklog) for w in workers),
            os.path.getsize(os.path.join(d.data_dir, "data.mdb")))

        # Restore each copy in a daemon of its own.
        for dest, marks, nclaims in results:
            r = RDaemon(clock=T0, data_dir=dest)
            try:
                r.start()
                got = check_restored(r, acked(workers, marks), final, nclaims)
                # The idempotency record came along: an old create, resent.
                w = workers[0]
                req, reply = next((q, a) for q, a in w.creates
                                  if a["claim"]["id"] in got)
                p = r.client(r.portal)
                eq(p.call(req, timeout=TIMEOUT), reply, "a resent create after restore")
                m = member(900)
                ok(p.call({"op": "consent.give", "id": "after-restore", "member": m}))
                n = ok(p.call({"op": "create", "id": "after-restore-c", "workflow":
                               "health_claim", "member": m,
                               "data": {"member": m, "treatment": "scan"}}))
                eq(n["claim"]["state"], "awaiting_referral", n)
                st = ok(r.client(r.operator, {"actor": "aud"}).call({"op": "stats"}))
                eq(st["claims"], nclaims + 1, st)
                eq(r.started_with_errors(), [], "sanitizer reports")
                eq(r.stop(), 0, "\n".join(r.stderr_lines[-20:]))
            finally:
                r.cleanup()

        # The other restore: the copy's data.mdb in place of the daemon's own.
        dest, marks, nclaims = results[-1]
        eq(d.stop(), 0, "\n".join(d.stderr_lines[-20:]))
        shutil.copyfile(pristine, os.path.join(d.data_dir, "data.mdb"))
        d.start()
        check_restored(d, acked(workers, marks), final, nclaims)
        eq(d.started_with_errors(), [], "sanitizer reports")
        eq(d.stop(), 0, "\n".join(d.stderr_lines[-20:]))
    finally:
        for w in workers:
            w.stop = True
        d.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


def test_killed_backup_leaves_no_data_mdb():
    """Issue 18, item 10: a `claimctl backup` killed mid-copy left a
    data.mdb that looked complete and made a daemon started on it die of
    SIGBUS.  The copy is written as data.mdb.partial and renamed only when
    complete and checked: SIGKILL at any moment of the copy leaves no
    data.mdb; a backup that completes leaves data.mdb alone."""
    tmp = tempfile.mkdtemp(prefix="cf-bk-kill-")
    try:
        with RDaemon(clock=T0) as d:
            p = d.client(d.portal)
            m = member(1)
            ok(p.call({"op": "consent.give", "id": "c", "member": m}))
            # ~80 MiB of distinct documents: a copy takes long enough to be
            # caught in the middle.
            for i in range(8):
                c = ok(p.call({"op": "create", "id": "k%d" % i, "member": m,
                               "workflow": "health_claim",
                               "data": {"member": m, "treatment": "scan"}}))["claim"]
                ok(p.call({"op": "attach", "id": "a%d" % i, "member": m,
                           "claim": c["id"], "kind": "referral",
                           "content_type": "application/pdf",
                           "body": b"%PDF-1.4\n" + os.urandom(10 * (1 << 20) - 9)},
                          timeout=TIMEOUT))
            caught = 0
            for attempt in range(40):
                dest = os.path.join(tmp, "kill-%d" % attempt)
                partial = os.path.join(dest, "data.mdb.partial")
                proc = subprocess.Popen([harness.CLAIMCTL, "backup", dest, "--data",
                                         d.data_dir], stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                # Wait until the copy has begun, at a random point of it.
                want = random.randrange(1, 60) << 20
                while proc.poll() is None:
                    try:
                        if os.path.getsize(partial) >= want:
                            break
                    except OSError:
                        pass
                    try:
                        if os.path.getsize(os.path.join(dest, "data.mdb")) >= want:
                            break           # the unfixed claimctl: caught too
                    except OSError:
                        pass
                    time.sleep(0.0005)
                proc.kill()
                rc = proc.wait()
                if rc != -9:
                    continue                # it finished first: not a kill mid-copy
                caught += 1
                left = sorted(os.listdir(dest))
                check("data.mdb" not in left, "a killed backup left a data.mdb", left)
                eq(left, ["data.mdb.partial"], "what a killed backup leaves")
                if caught == 3:
                    break
            log("%d backups killed mid-copy in %d attempts", caught, attempt + 1)
            check(caught > 0, "no backup was caught mid-copy")
            # A complete one leaves only data.mdb, and it restores.
            dest = os.path.join(tmp, "complete")
            nclaims = backup(d.data_dir, dest)
            eq(sorted(os.listdir(dest)), ["data.mdb"])
            eq(nclaims, 8)
        with RDaemon(clock=T0, data_dir=dest) as r:
            aud = r.client(r.operator, {"actor": "aud"})
            eq(ok(aud.call({"op": "stats"}))["claims"], 8)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    run(globals())

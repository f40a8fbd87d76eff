"""Reliability: soak (docs/RELIABILITY.md, "Soak").

Mixed load on one claimflowd for 10 minutes (long form), with the daemon's
memory and the clients' latencies recorded every minute:

- writers (portal and operator), CLAIMS_PER_S claims a second each: claims of every kind - chiropractic with
  consent (straight to review), physiotherapy with a referral PDF, an
  inquiry about a claim - moved along approve, deny/complain and withdraw
  paths, each reply checked (state, id);
- readers, READS_PER_S a second: get, history, document, query, stats on the operator endpoint
  (each logged in the access log) and on the portal;
- a subscriber following every event;
- the manual clock moved on 1 hour each second, so SLA timers, complaint
  windows and inquiry deadlines fire throughout, and after 7 simulated days
  idempotency entries are pruned.

Checked: every reply is what the script expects; at the end every history
is gap-free and ends in its claim's state, every acknowledged claim is
there; and memory is flat after warm-up: the daemon's anonymous memory
(RssAnon: the heap, not the mapped store file) at the end is within
FLAT_MIB + 10 % of its level after the second minute.  Latency is recorded,
never asserted.  CF_SOAK_JSON=FILE writes the per-minute figures as JSON.

Short form: 3 "minutes" of 5 s (the same script, as a smoke test; memory is
not judged on 15 s), on the test build's daemon (ASan); long form: 10
minutes of 60 s on a daemon built without sanitizers (plain_daemon(): the
ASan build's heap grows by itself, its allocator quarantine and shadow
memory, so it cannot be judged flat), skipped (77) when there is none.
"""

import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from harness import T0, Client, Subscriber, check, eq, ok  # noqa: E402
from reliability_util import (LONG, NO_PLAIN, PDF, SLOW, RDaemon, full_read,  # noqa: E402
                              log, memory, member, mib, nfds, percentile, plain_daemon,
                              run)

MINUTES = 10 if LONG else 3
MINUTE = 60.0 if LONG else 5.0
WARMUP = 2                    # minutes before memory must be flat
FLAT_MIB = 16
WRITERS = 3
READERS = 1
CLAIMS_PER_S = 40             # per writer: a steady load, not a benchmark
READS_PER_S = 200             # per reader
TIMEOUT = 60 * SLOW


class Stats:
    """Latencies per minute and kind, shared by the client threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.minute = 0
        self.lat = {}            # (minute, kind) -> [seconds]

    def add(self, kind, seconds):
        with self.lock:
            self.lat.setdefault((self.minute, kind), []).append(seconds)


class Load(threading.Thread):
    def __init__(self, d, n, stats, seed):
        super().__init__(daemon=True)
        self.n = n
        self.stats = stats
        self.rng = random.Random(seed)
        self.p = Client(d.portal)
        self.o = Client(d.operator, {"actor": "hanne"})
        self.stop = False
        self.error = None
        self.k = 0

    def call(self, where, req, kind):
        t = time.monotonic()
        r = (self.p if where == "p" else self.o).call(req, timeout=TIMEOUT)
        self.stats.add(kind, time.monotonic() - t)
        return r

    def pace(self, rate):
        """Sleep so that this thread runs `rate` iterations a second."""
        self.next_at = getattr(self, "next_at", time.monotonic()) + 1.0 / rate
        delay = self.next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            self.next_at = time.monotonic()     # behind: do not burst to catch up

    def rid(self):
        self.k += 1
        return "s%d-%d" % (self.n, self.k)

    def run(self):
        try:
            self.body()
        except Exception as ex:               # noqa: BLE001 - reported by main
            self.error = ex
        finally:
            self.p.close()
            self.o.close()


class Writer(Load):
    def __init__(self, *a):
        super().__init__(*a)
        self.members = [member(2000 + self.n * 10 + i) for i in range(5)]
        self.claims = {}          # claim id -> member
        # The ids in creation order, for the readers' random pick: choosing
        # from the dict needs a list of it, a copy that grows with the run
        # and, under the GIL, delays every writer's clock (list.append and
        # indexing are atomic).
        self.ids = []

    def send(self, where, cid, event, data=None, want=None):
        req = {"op": "send", "id": self.rid(), "claim": cid, "event": event}
        if data:
            req["data"] = data
        if where == "p":
            req["member"] = self.claims[cid]
        r = self.call(where, req, "write")
        if r.get("ok") is not True:
            # A timer (sla, complaint window) may have moved it first.
            check(r["error"]["code"] == "invalid_transition", req, r)
            return None
        if want:
            eq(r["claim"]["state"], want, req, r)
        return r

    def body(self):
        for m in self.members:
            ok(self.call("p", {"op": "consent.give", "id": self.rid(), "member": m}, "write"))
        while not self.stop:
            self.pace(CLAIMS_PER_S)
            m = self.rng.choice(self.members)
            kind = self.rng.random()
            treatment = "chiropractic" if kind < 0.6 else "physiotherapy"
            r = ok(self.call("p", {"op": "create", "id": self.rid(), "workflow": "health_claim",
                                   "member": m, "data": {"member": m, "treatment": treatment,
                                                         "description": "soak"}}, "write"))
            cid = r["claim"]["id"]
            self.claims[cid] = m
            self.ids.append(cid)
            if treatment == "physiotherapy":
                body = PDF + self.rng.randbytes(self.rng.randint(100, 4000))
                r = ok(self.call("p", {"op": "attach", "id": self.rid(), "member": m,
                                       "claim": cid, "kind": "referral",
                                       "content_type": "application/pdf", "body": body},
                                 "write"))
                eq(r["claim"]["state"], "in_review", r)
            if self.rng.random() < 0.2:
                ok(self.call("p", {"op": "create", "id": self.rid(), "workflow": "inquiry",
                                   "member": m, "data": {"claim": cid, "text": "status?"}},
                             "write"))
            path = self.rng.random()
            if path < 0.4:
                if self.send("o", cid, "decision.approved", want="approved"):
                    if self.send("o", cid, "guarantee.issued",
                                 {"amount": 150000, "provider": "Fysio Nord",
                                  "valid_until": "2027-05-31"}, "guarantee_issued"):
                        self.send("p", cid, "treatment.started", want="in_treatment")
            elif path < 0.6:
                if self.send("o", cid, "decision.denied", {"reason": "not covered"}, "denied"):
                    if self.rng.random() < 0.5:
                        self.send("p", cid, "reconsideration.requested", {"text": "unfair"},
                                  "reconsideration")
            elif path < 0.7:
                self.send("p", cid, "claim.withdrawn", want="withdrawn")
            # else: left in review, for the SLA timers


class Reader(Load):
    def __init__(self, d, n, stats, seed, writers):
        super().__init__(d, n, stats, seed)
        self.writers = writers
        self.aud = Client(d.operator, {"actor": "aud"})

    def body(self):
        while not self.stop:
            self.pace(READS_PER_S)
            w = self.rng.choice(self.writers)
            if not w.ids:
                time.sleep(0.01)
                continue
            cid = w.ids[self.rng.randrange(len(w.ids))]
            m = w.claims[cid]
            op = self.rng.choice(["get", "history", "document", "query", "stats", "pget"])
            t = time.monotonic()
            if op == "pget":
                r = self.p.call({"op": "get", "member": m, "claim": cid}, timeout=TIMEOUT)
            elif op in ("get", "history"):
                r = self.aud.call({"op": op, "claim": cid}, timeout=TIMEOUT)
            elif op == "document":
                cl = ok(self.aud.call({"op": "get", "claim": cid}, timeout=TIMEOUT))["claim"]
                if not cl["documents"]:
                    continue
                r = self.aud.call({"op": "document", "claim": cid,
                                   "sha256": cl["documents"][0]["sha256"]}, timeout=TIMEOUT)
            elif op == "query":
                r = self.aud.call({"op": "query", "workflow": "health_claim",
                                   "state": "in_review", "limit": 50}, timeout=TIMEOUT)
            else:
                r = self.aud.call({"op": "stats"}, timeout=TIMEOUT)
            self.stats.add("read", time.monotonic() - t)
            ok(r)
        self.aud.close()


class Clock(Load):
    """One simulated hour per second."""

    def body(self):
        while not self.stop:
            time.sleep(1.0)
            r = ok(self.call("o", {"op": "clock.advance", "seconds": 3600}, "clock"))
            self.stats.add("fired", r.get("fired", 0))


def cpu_ticks():
    """(all, steal) CPU ticks of the machine, from /proc/stat: a minute in
    which the VM's host took much of the CPU measured the neighbours."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return sum(v), v[7]


def test_soak():
    asan = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
    stats = Stats()
    binary = plain_daemon() if LONG else None
    if LONG and not binary:
        print("SKIP: the long soak judges memory, so it " + NO_PLAIN)
        sys.exit(77)
    d = RDaemon(clock=T0, **({"binary": binary} if binary else {}))
    log("claimflowd: %s", d.binary)
    threads = []
    events = [0]
    try:
        d.start()
        sub = Subscriber(d)
        writers = [Writer(d, n, stats, n) for n in range(WRITERS)]
        threads = writers + [Reader(d, 100 + n, stats, 100 + n, writers)
                             for n in range(READERS)] + [Clock(d, 200, stats, 0)]
        for t in threads:
            t.start()
        rows = []
        ticks = cpu_ticks()
        start = time.monotonic()
        for minute in range(MINUTES):
            end = start + (minute + 1) * MINUTE
            while time.monotonic() < end:
                try:
                    sub.next(timeout=0.2)
                    events[0] += 1
                except TimeoutError:
                    pass
            for t in threads:
                check(t.error is None, t.error)
            with stats.lock:
                stats.minute = minute + 1
                lat = {k: v for (m, k), v in stats.lat.items() if m == minute}
            mem = memory(d.pid)
            now_ticks = cpu_ticks()
            steal = round(100.0 * (now_ticks[1] - ticks[1]) / max(1, now_ticks[0] - ticks[0]), 1)
            ticks = now_ticks
            row = {"minute": minute + 1, "rss_mib": round(mib(mem["VmRSS"]), 1),
                   "hwm_mib": round(mib(mem["VmHWM"]), 1),
                   "anon_mib": round(mib(mem["RssAnon"]), 1),
                   "file_mib": round(mib(mem["RssFile"]), 1),
                   "store_mib": round(os.path.getsize(os.path.join(d.data_dir, "data.mdb"))
                                      / 1048576.0, 1),
                   "fds": nfds(d.pid), "events": events[0], "steal_pct": steal}
            for kind in ("write", "read"):
                xs = lat.get(kind, [])
                row[kind] = {"n": len(xs), "p50_ms": round(percentile(xs, 50) * 1000, 2),
                             "p99_ms": round(percentile(xs, 99) * 1000, 2),
                             "max_ms": round(max(xs or [0]) * 1000, 2)}
            # The manual clock fires every timer due in the hour it moves
            # in that one request (the real clock fires them 256 a batch):
            # its slowest advance, and how many fired, explain a stall.
            xs = lat.get("clock", [])
            row["clock"] = {"n": len(xs), "max_ms": round(max(xs or [0]) * 1000, 2),
                            "fired": int(sum(lat.get("fired", [])))}
            rows.append(row)
            log("minute %2d: RSS %6.1f MiB (anon %6.1f, file %6.1f), HWM %6.1f, store "
                "%6.1f MiB, %d fds, %d events | writes %d p50 %.1f p99 %.1f max %.1f ms "
                "| reads %d p50 %.1f p99 %.1f max %.1f ms | clock max %.1f ms, %d fired | steal %.1f%%",
                row["minute"], row["rss_mib"],
                row["anon_mib"], row["file_mib"], row["hwm_mib"], row["store_mib"],
                row["fds"], row["events"], row["write"]["n"], row["write"]["p50_ms"],
                row["write"]["p99_ms"], row["write"]["max_ms"], row["read"]["n"],
                row["read"]["p50_ms"], row["read"]["p99_ms"], row["read"]["max_ms"],
                row["clock"]["max_ms"], row["clock"]["fired"], row["steal_pct"])
        for t in threads:
            t.stop = True
        for t in threads:
            t.join(TIMEOUT + 30)
            check(not t.is_alive() and t.error is None, t.n, t.error)
        if os.environ.get("CF_SOAK_JSON"):
            with open(os.environ["CF_SOAK_JSON"], "w") as f:
                json.dump(rows, f, indent=1)

        # Everything is there and consistent.
        aud = d.client(d.operator, {"actor": "aud"})
        got = full_read(aud, TIMEOUT)
        for w in writers:
            check(set(w.claims) <= set(got), "a claim is missing")
        log("end: %d claims, %d requests acknowledged, %d events seen",
            len(got), sum(w.k for w in threads), events[0])
        if MINUTES > WARMUP + 1:
            base, last = rows[WARMUP - 1]["anon_mib"], rows[-1]["anon_mib"]
            log("memory after warm-up: RssAnon %.1f MiB at minute %d, %.1f MiB at "
                "minute %d", base, WARMUP, last, MINUTES)
            check(last <= base * 1.1 + FLAT_MIB, "memory grows", rows)
        eq(d.started_with_errors(), [], "sanitizer reports")
        eq(d.stop(), 0, "\n".join(d.stderr_lines[-20:]))
    finally:
        for t in threads:
            t.stop = True
        d.cleanup()
        os.environ["ASAN_OPTIONS"] = asan


if __name__ == "__main__":
    run(globals())

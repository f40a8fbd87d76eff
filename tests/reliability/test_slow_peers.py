"""Reliability: slow and absent peers (docs/RELIABILITY.md, "Slow peers").

While a flood of transitions runs, three kinds of bad peer hang on the
daemon:

- a subscriber that never reads (every event is for it, it takes none);
- a portal client that sends 20,000 `get`s and never reads a reply;
- 1,000 connected clients that never send anything.

Meanwhile a well-behaved client works its own claim and a well-behaved
subscriber follows its events.  Checked, all exactly:

- the others are served: every request of the good client is answered with
  the right state, the good subscriber receives exactly the good client's
  events in order, and each idle client is answered when it finally pings;
- the queues are bounded, not the daemon's memory: the never-reading
  subscriber, reading at last, gets an in-order prefix of the flood's events
  and not all of them (the PUB high-water mark dropped the rest); the
  never-reading client gets an in-order prefix of its replies, and the
  daemon's `dropped_replies` is exactly the number it did not get;
- memory: the daemon's heap at its peak (the largest RssAnon sampled during
  the round: the queues full) grows by less than MEM_LIMIT_MIB above the
  warm baseline in every round (a generous bound on what the queues can
  hold: 20,000 events, 10,000 replies, 1,000 connections, with ASan's
  overhead), and in the long form the last of eight rounds peaks less than
  a tenth of the first round's growth (+8 MiB) above the round before
  (bounded queues, nothing accumulating; the allocator's own fragmentation
  settles within a few rounds).
  RssAnon, not VmHWM: VmHWM counts the mapped store file, which grows with
  every round's 150,000 history records.

Under ASan the freed-memory quarantine is cut to 16 MiB for this daemon
(ASAN_OPTIONS quarantine_size_mb), or it alone would fill 256 MiB.

Short form: one round of 150,000 events; long form: eight rounds.
"""

import os
import resource
import sys
import tempfile
import threading
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from harness import T0, check, eq, ok, pack, unpack, write_config  # noqa: E402
from reliability_util import (LONG, SLOW, RDaemon, log, memory, mib,  # noqa: E402
                              member, nfds, run, stop_counts, wait_for)

ROUNDS = 8 if LONG else 1
IDLE = 1000
FLOOD_CLAIMS = 250            # one consent request moves all of them
FLOOD_REQUESTS = 600          # 150,000 events, past the PUB HWM (20,000)
SLOW_GETS = 20000             # past the ROUTER HWM (10,000) and the socket buffers
MEM_LIMIT_MIB = 512           # heap growth over the warm baseline, any build
TIMEOUT = 60 * SLOW
DESCRIPTION = "x" * 2000      # makes each `get` reply ~2.3 KB


def sub_socket(ctx, ep, topic, never_reads=False):
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.LINGER, 0)
    if never_reads:
        # Small buffers on our side, so the daemon's queue is what fills.
        s.setsockopt(zmq.RCVHWM, 1)
        s.setsockopt(zmq.RCVBUF, 4096)
    s.setsockopt(zmq.SUBSCRIBE, topic)
    s.connect(ep)
    return s


class GoodSubscriber(threading.Thread):
    """Follows the good client's events (topic health_claim/info.)."""

    def __init__(self, ctx, ep):
        super().__init__(daemon=True)
        self.sock = sub_socket(ctx, ep, b"health_claim/info.")
        self.events = []
        self.stop = False

    def run(self):
        while not self.stop:
            if self.sock.poll(100):
                topic, body = self.sock.recv_multipart()
                ev = unpack(body)
                self.events.append((topic.decode(), ev["claim"], ev["seq"], ev["to"]))


def drain(sock, marker, timeout):
    """Read sock until a message for which marker(frames) is true: every
    message before it, in order; None when none came within timeout (the
    marker itself may have been dropped: the caller sends another)."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sock.poll(200):
            frames = sock.recv_multipart()
            if marker(frames):
                return got
            got.append(frames)
            end = time.monotonic() + timeout
    return None


def is_subsequence(xs, ys):
    it = iter(ys)
    return all(any(x == y for y in it) for x in xs)


def one_round(d, ctx, rnd, good, p, o, flood_member, flood_claims, mem0):
    # -- the bad peers --
    fds0 = nfds(d.pid)
    idle = []
    for i in range(IDLE):
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(d.portal)
        idle.append(s)
    wait_for(lambda: nfds(d.pid) >= fds0 + IDLE - 5, 60 * SLOW,
             "the daemon to accept %d idle connections" % IDLE)
    deaf_sub = sub_socket(ctx, d.events, b"", never_reads=True)
    mute = ctx.socket(zmq.DEALER)       # sends, never reads
    mute.setsockopt(zmq.LINGER, 0)
    mute.setsockopt(zmq.RCVHWM, 1)
    mute.setsockopt(zmq.RCVBUF, 4096)
    mute.connect(d.portal)
    time.sleep(0.3)                     # PUB/SUB: let the subscription arrive

    # -- the flood, the mute client's requests, the good client's work --
    big = flood_claims[0]
    expected = []                       # the flood's events, in publish order
    seq = {cid: len(ok(p.call({"op": "history", "member": flood_member, "claim": cid},
                              timeout=TIMEOUT))["events"]) for cid in flood_claims}
    mute_sent = 0
    give = False
    peak = 0                            # the heap's largest sample (RssAnon, KiB)
    for k in range(FLOOD_REQUESTS):
        req = {"op": "consent.give" if give else "consent.withdraw",
               "id": "flood-%d-%d" % (rnd, k), "member": flood_member}
        r = ok(p.call(req, timeout=TIMEOUT))
        eq(sorted(r["moved"]), flood_claims, req)
        event = "consent.given" if give else "consent.withdrawn"
        for cid in r["moved"]:
            seq[cid] += 1
            expected.append(("health_claim/" + event, cid, seq[cid]))
        give = not give
        for _ in range(SLOW_GETS // FLOOD_REQUESTS + 1):
            if mute_sent < SLOW_GETS:
                mute.send_multipart([b"", pack({"op": "get", "id": "g-%d" % mute_sent,
                                                "member": flood_member, "claim": big})])
                mute_sent += 1
        if k % 20 == 0:
            good.step(o, p)
            peak = max(peak, memory(d.pid)["RssAnon"])
    if give:                            # leave the flood claims in_review
        r = ok(p.call({"op": "consent.give", "id": "flood-%d-end" % rnd,
                   "member": flood_member}, timeout=TIMEOUT))
        for cid in r["moved"]:
            seq[cid] += 1
            expected.append(("health_claim/consent.given", cid, seq[cid]))
    # Everything sent is answered or dropped once this (later) reply comes.
    ok(p.call({"op": "ping"}, timeout=TIMEOUT))
    mem1 = memory(d.pid)
    peak = max(peak, mem1["RssAnon"])
    log("round %d: %d flood events, %d gets unread; daemon heap (RssAnon) peak %.0f "
        "MiB (+%.0f over the warm baseline), VmHWM %.0f MiB (with the mapped store), "
        "%d fds", rnd, len(expected), mute_sent, mib(peak), mib(peak - mem0["RssAnon"]),
        mib(mem1["VmHWM"]), nfds(d.pid))

    # -- the deaf subscriber reads at last: some events, in order, not all --
    got = drain_quiet(deaf_sub)
    while True:
        # A transition of the good client, published after the whole flood,
        # marks the end of what the subscriber will ever get.
        good.step(o, p)
        mark = (good.claim, good.seq)
        rest = drain(deaf_sub, lambda f: (unpack(f[1])["claim"], unpack(f[1])["seq"]) == mark,
                     5 * SLOW)
        if rest is not None:
            got += rest
            break
        got += drain_quiet(deaf_sub)
    flood_got = [(f[0].decode(), unpack(f[1])["claim"], unpack(f[1])["seq"]) for f in got
                 if not f[0].startswith(b"health_claim/info.")]
    log("round %d: the deaf subscriber got %d of %d flood events", rnd,
        len(flood_got), len(expected))
    check(0 < len(flood_got) < len(expected), "the PUB queue did not drop",
          len(flood_got), len(expected))
    check(is_subsequence(flood_got, expected), "the deaf subscriber's events are "
          "not the flood's, in order, each once", flood_got[:10])
    deaf_sub.close(0)

    # -- the mute client reads at last: some replies, in order, not all --
    replies = []
    while True:
        replies += [unpack(f[-1]) for f in drain_quiet(mute)]
        mute.send_multipart([b"", pack({"op": "ping", "id": "mark-%d" % mute_sent})])
        mute_sent += 1
        rest = drain_until_id(mute, "mark-%d" % (mute_sent - 1), 5 * SLOW)
        if rest is not None:
            replies += rest
            break
    gets = [int(r["id"][2:]) for r in replies if r["id"].startswith("g-")]
    eq(gets, sorted(set(gets)), "the mute client's replies are in order, each once")
    for r in replies:
        check(r["ok"] is True, r)
        if r["id"].startswith("g-"):
            eq(r["claim"]["id"], big, r["id"])
    dropped = mute_sent - len(replies)
    log("round %d: the mute client got %d of %d replies", rnd, len(replies), mute_sent)
    check(dropped > 0 and len(gets) < SLOW_GETS, "the ROUTER queue did not drop")
    mute.close(0)

    # -- the idle clients are served when they speak --
    for i, s in enumerate(idle):
        s.send_multipart([b"", pack({"op": "ping", "id": "idle-%d" % i})])
    for i, s in enumerate(idle):
        check(s.poll(int(TIMEOUT * 1000)), "idle client %d not answered" % i)
        r = unpack(s.recv_multipart()[-1])
        eq((r["ok"], r["id"]), (True, "idle-%d" % i), r)
        s.close(0)
    wait_for(lambda: nfds(d.pid) <= fds0 + 5, 60 * SLOW,
             "the daemon to close the idle connections")
    return peak, dropped


def drain_quiet(sock, quiet=1.0):
    """Read until nothing came for `quiet` seconds (a drain, not a check)."""
    got = []
    while sock.poll(int(quiet * 1000 * SLOW)):
        got.append(sock.recv_multipart())
    return got


def drain_until_id(sock, rid, timeout):
    """Replies up to and including the one with id rid, or None."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sock.poll(200):
            r = unpack(sock.recv_multipart()[-1])
            got.append(r)
            if r.get("id") == rid:
                return got
    return None


class Good:
    """The well-behaved client: one claim, info.requested / info.provided
    in turn, each answered with the right state."""

    def __init__(self, p, o, m):
        self.m = m
        self.k = 0
        self.marks = 0
        ok(p.call({"op": "consent.give", "id": "good-consent", "member": m}))
        r = ok(p.call({"op": "create", "id": "good-create", "workflow": "health_claim",
                       "member": m, "data": {"member": m, "treatment": "chiropractic"}}))
        self.claim = r["claim"]["id"]
        self.state = "in_review"
        self.seq = 1
        self.expect = []

    def step(self, o, p):
        self.k += 1
        if self.state == "in_review":
            r = ok(o.call({"op": "send", "id": "good-%d" % self.k, "claim": self.claim,
                           "event": "info.requested", "data": {"text": "more"}},
                          timeout=TIMEOUT))
            ev, self.state = "info.requested", "awaiting_info"
        else:
            r = ok(p.call({"op": "send", "id": "good-%d" % self.k, "member": self.m,
                           "claim": self.claim, "event": "info.provided"},
                          timeout=TIMEOUT))
            ev, self.state = "info.provided", "in_review"
        eq(r["claim"]["state"], self.state, r)
        self.seq += 1
        self.expect.append(("health_claim/" + ev, self.claim, self.seq, self.state))


def test_slow_peers():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    check(hard >= 2 * IDLE + 200, "need %d open files, the limit is %d"
          % (2 * IDLE + 200, hard))
    asan = os.environ.get("ASAN_OPTIONS", "")
    os.environ["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
    ctx = zmq.Context()
    ctx.set(zmq.MAX_SOCKETS, 2 * IDLE + 100)
    # The warm-up and the rounds flap one member's consent many times a day.
    d = RDaemon(clock=T0, config=write_config(
        os.path.join(tempfile.mkdtemp(prefix="cf-sp-"), "config.yaml"),
        extra="consent_changes_per_day: 100000\n"))
    sub = None
    try:
        d.start()
        p = d.client(d.portal)
        o = d.client(d.operator, {"actor": "hanne"})
        sub = GoodSubscriber(ctx, d.events)
        sub.start()
        time.sleep(0.3)
        good = Good(p, o, member(1))
        fm = member(2)
        ok(p.call({"op": "consent.give", "id": "flood-consent", "member": fm}))
        flood_claims = []
        for i in range(FLOOD_CLAIMS):
            r = ok(p.call({"op": "create", "id": "flood-create-%d" % i,
                           "workflow": "health_claim", "member": fm,
                           "data": {"member": fm, "treatment": "chiropractic",
                                    "description": DESCRIPTION}}, timeout=TIMEOUT))
            flood_claims.append(r["claim"]["id"])
        flood_claims.sort()
        # Warm up: the same kinds of work, with nobody slow.
        for k in range(40):
            ok(p.call({"op": "consent.withdraw" if k % 2 == 0 else "consent.give",
                       "id": "warm-%d" % k, "member": fm}, timeout=TIMEOUT))
            ok(p.call({"op": "get", "member": fm, "claim": flood_claims[0]}))
            good.step(o, p)
        mem0 = memory(d.pid)
        log("warm baseline: VmHWM %.0f MiB, RssAnon %.0f MiB, %d fds",
            mib(mem0["VmHWM"]), mib(mem0["RssAnon"]), nfds(d.pid))
        peaks = []
        total_dropped = 0
        for rnd in range(ROUNDS):
            peak, dropped = one_round(d, ctx, rnd, good, p, o, fm, flood_claims, mem0)
            total_dropped += dropped
            peaks.append(peak)
            check(mib(peak - mem0["RssAnon"]) < MEM_LIMIT_MIB,
                  "the heap grew by %.0f MiB" % mib(peak - mem0["RssAnon"]))
        if len(peaks) > 1:
            first = peaks[0] - mem0["RssAnon"]
            last = peaks[-1] - peaks[-2]
            log("heap peaks by round (MiB): %s; round 1 +%.0f over the baseline, the "
                "last round %+.0f", " ".join("%.0f" % mib(x) for x in peaks),
                mib(first), mib(last))
            check(last < first / 10 + 8 * 1024, "memory keeps growing round after round",
                  [mib(x) for x in peaks])

        # The good client and subscriber were served throughout.
        ok(p.call({"op": "ping"}))
        wait_for(lambda: len(sub.events) >= len(good.expect), 30 * SLOW,
                 "the good subscriber's events")
        sub.stop = True
        sub.join(5)
        eq(sub.events, good.expect, "the good subscriber's events")
        h = ok(o.call({"op": "history", "claim": good.claim}))["events"]
        eq(len(h), good.seq, "the good claim's history")
        eq(d.started_with_errors(), [], "sanitizer reports")
        eq(d.stop(), 0, "\n".join(d.stderr_lines[-20:]))
        eq(stop_counts(d)["dropped_replies"], total_dropped, "dropped_replies")
    finally:
        if sub is not None:
            sub.stop = True
            sub.join(5)
        d.cleanup()
        ctx.destroy(0)
        os.environ["ASAN_OPTIONS"] = asan


if __name__ == "__main__":
    run(globals())

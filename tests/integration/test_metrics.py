"""Integration: /metrics, /healthz and /readyz of the real claimflowd
(adapters/metrics.c, adapters/http.c; docs/operations.md, Metrics).

The daemon runs with `http: {listen: 127.0.0.1:0}` and a manual clock.  A
few claim lives with SLA timers are driven through the portal and operator
sockets; then the page must agree with the engine's own `stats` op (claims
by workflow and state, flags, timers), with what the test sent (requests by
endpoint, op and code; reply bytes; batch sizes), with what a subscriber
received (events and their bytes) and with the timers the clock fired.  The
whole page is parsed with Debian's python3-prometheus-client.  /readyz turns
503 when the store is full.  The page never holds a claim id or a person id.

The numbers are published by the daemon's loop a moment after the requests
(at most about a second): each check waits until the page agrees, up to
PAGE_TIMEOUT, and then compares exactly."""

import calendar
import http.client
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (TIMEOUT_SCALE, Daemon, Subscriber, T0, check, cpr, eq,  # noqa: E402
                     err, new_id, ok, op, portal, run_tests, write_config)
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from test_lifecycle import PDF, attach_referral, create, give_consent, send  # noqa: E402

PAGE_TIMEOUT = 15 * TIMEOUT_SCALE
HTTP_CONFIG = "http:\n  listen: 127.0.0.1:0\n"


def http_daemon(**kw):
    d = Daemon(config=False, **kw)
    d.config = write_config(os.path.join(d.tmp, "config.yaml"), extra=HTTP_CONFIG)
    return d


def get(d, path, method="GET"):
    """(status, content type, body text) of one request to d's HTTP endpoint."""
    host, port = d.http.rsplit(":", 1)
    c = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        c.request(method, path)
        r = c.getresponse()
        return r.status, r.getheader("Content-Type"), r.read().decode()
    finally:
        c.close()


def families(text):
    """{name: family} of the whole page; the parser raises on anything that
    is not the text format."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def samples(fams, family, sample_name=None):
    """{labels as a sorted tuple of items: value} of one family's samples
    (sample_name picks _bucket/_sum/_count of a histogram)."""
    f = fams.get(family)
    if f is None:
        return {}
    return {tuple(sorted(s.labels.items())): s.value for s in f.samples
            if sample_name is None or s.name == sample_name}


def wait_page(d, pred, what):
    """The parsed page, once pred(families) is true; fails with the last
    page (and what pred said) after PAGE_TIMEOUT."""
    deadline = time.monotonic() + PAGE_TIMEOUT
    while True:
        status, _, text = get(d, "/metrics")
        eq(status, 200, text)
        fams = families(text)
        got = pred(fams)
        if got is True:
            return fams, text
        if time.monotonic() > deadline:
            raise AssertionError("%s: %r\n%s" % (what, got, text))
        time.sleep(0.05)


def expect_stats(stats):
    """The page's claims/flags/timers as the stats reply says them."""
    return {
        "claims": {(("state", s["state"]), ("workflow", s["workflow"])): float(s["count"])
                   for s in stats["states"]},
        "flags": {(("flag", f["flag"]),): float(f["count"]) for f in stats["flags"]},
        "pending": float(stats["timers"]["pending"]),
        "overdue": float(stats["timers"]["overdue"]),
    }


def page_stats(fams):
    return {
        "claims": samples(fams, "claimflow_claims"),
        "flags": samples(fams, "claimflow_claims_flagged"),
        "pending": samples(fams, "claimflow_timers_pending").get((), None),
        "overdue": samples(fams, "claimflow_timers_overdue").get((), None),
    }


class Counting:
    """Wraps a harness Client: counts requests by (op, code) as the replies
    say, and reply bytes as they came off the wire."""

    def __init__(self, client, endpoint, tally):
        self.c, self.endpoint, self.tally = client, endpoint, tally
        orig = client._recv_frames

        def recv_frames(timeout):
            frames = orig(timeout)
            tally["bytes"][endpoint] = tally["bytes"].get(endpoint, 0) + len(frames[-1])
            return frames
        client._recv_frames = recv_frames

    def call(self, req, timeout=5):
        r = self.c.call(req, timeout)
        code = "ok" if r.get("ok") else r["error"]["code"]
        key = (self.endpoint, req["op"], code)
        self.tally["req"][key] = self.tally["req"].get(key, 0) + 1
        return r


# ------------------------------------------------------------- the tests ---
def test_metrics_agree_with_stats_and_with_what_was_sent():
    with http_daemon(clock=T0) as d:
        check(d.http is not None, d.started_line)
        check(d.http.startswith("127.0.0.1:"), d.started_line)
        tally = {"req": {}, "bytes": {}}
        sub = Subscriber(d)
        p = Counting(portal(d), "portal", tally)
        h = Counting(op(d, "hanne"), "operator", tally)

        # Three members, four claims: two in review with SLA timers, one
        # waiting for a referral, one approved; an invalid transition, a
        # made-up op and a forbidden op for the error codes.
        members = [cpr(1, 1, 1990, 1234), cpr(2, 2, 1980, 2345), cpr(3, 3, 1970, 3456)]
        claims = []
        for m in members[:2]:
            c = create(p, m)
            attach_referral(p, m, c["id"])
            give_consent(p, m)
            claims.append(c["id"])
        waiting = create(p, members[2])
        claims.append(waiting["id"])
        err(send(p, waiting["id"], "treatment.started", member=members[2]),
            "invalid_transition")
        err(p.call({"op": "teleport", "id": new_id()}), "unknown_op")
        err(p.call({"op": "stats"}), "forbidden")
        # A business day: the two decision_warning timers fire (sla.warning);
        # one claim is approved; a second day breaches the other.
        fired = ok(h.call({"op": "clock.advance", "seconds": 86400}))["fired"]
        eq(fired, 2)
        ok(send(h, claims[0], "decision.approved"))
        fired += ok(h.call({"op": "clock.advance", "seconds": 86400}))["fired"]
        eq(fired, 3)
        stats = ok(h.call({"op": "stats"}))
        want = expect_stats(stats)
        # (the approval cleared its claim's deadline flags: health_claim 4)
        eq(want["flags"], {(("flag", "sla.warning"),): 1.0, (("flag", "sla.breached"),): 1.0})

        # The requests the test made, by endpoint, op and code.
        # A made-up op is never a label: it counts as op "unknown".
        want_req = {(("code", code), ("endpoint", ep),
                     ("op", "unknown" if o == "teleport" else o)): float(n)
                    for (ep, o, code), n in tally["req"].items()}
        eq(want_req[(("code", "unknown_op"), ("endpoint", "portal"), ("op", "unknown"))], 1.0)
        nreq = sum(tally["req"].values())

        def agrees(fams):
            got = page_stats(fams)
            if got != want:
                return ("stats", got, want)
            reqs = samples(fams, "claimflow_requests", "claimflow_requests_total")
            if reqs != want_req:
                return ("requests", reqs, want_req)
            return True
        fams, text = wait_page(d, agrees, "the page does not agree with stats")

        # Reply bytes, per endpoint, as the client received them.
        eq(samples(fams, "claimflow_reply_bytes", "claimflow_reply_bytes_total"),
           {(("endpoint", "portal"),): float(tally["bytes"]["portal"]),
            (("endpoint", "operator"),): float(tally["bytes"]["operator"])})
        # One request at a time: every engine run was a batch of one.
        batch = {s.name: s for s in fams["claimflow_batch_size"].samples
                 if s.name != "claimflow_batch_size_bucket"}
        eq((batch["claimflow_batch_size_count"].value, batch["claimflow_batch_size_sum"].value),
           (float(nreq), float(nreq)))
        buckets = samples(fams, "claimflow_batch_size", "claimflow_batch_size_bucket")
        eq(buckets[(("le", "1"),)], float(nreq), buckets)
        eq(buckets[(("le", "+Inf"),)], float(nreq), buckets)
        commit = samples(fams, "claimflow_commit_duration_seconds",
                         "claimflow_commit_duration_seconds_count")
        eq(commit, {(): float(nreq)})
        eq(samples(fams, "claimflow_timers_fired", "claimflow_timers_fired_total"),
           {(): float(fired)})
        eq(samples(fams, "claimflow_commit_failures", "claimflow_commit_failures_total"),
           {(): 0.0})
        eq(samples(fams, "claimflow_store_writable"), {(): 1.0})
        t0 = calendar.timegm(time.strptime(T0, "%Y-%m-%dT%H:%M:%SZ"))
        eq(samples(fams, "claimflow_stats_timestamp_seconds"), {(): float(t0 + 2 * 86400)})
        eq(samples(fams, "claimflow_build_info"), {(("version", "0.1.0"),): 1.0})

        # Every event published, counted and measured as the subscriber got it.
        events, ebytes = 0, 0
        while sub.sock.poll(500):
            frames = sub.sock.recv_multipart()
            events += 1
            ebytes += sum(len(f) for f in frames)
        check(events >= 10, events)
        fams, _ = wait_page(d, lambda f: samples(f, "claimflow_events_published",
                                                  "claimflow_events_published_total")
                            == {(): float(events)} or events, "events")
        eq(samples(fams, "claimflow_event_bytes", "claimflow_event_bytes_total"),
           {(): float(ebytes)})

        # Every family has HELP and TYPE; histograms' buckets only grow.
        for f in fams.values():
            check(f.documentation and f.type in ("counter", "gauge", "histogram"), f)
        for name in ("claimflow_batch_size", "claimflow_commit_duration_seconds"):
            vals = [s.value for s in fams[name].samples if s.name == name + "_bucket"]
            eq(vals, sorted(vals), name)

        # Counts only: no claim id, no person id anywhere on the page.
        for secret in claims + members + [m.replace("-", "") for m in members]:
            check(secret not in text, secret)


def test_health_readiness_and_http_errors():
    with http_daemon(clock=T0) as d:
        eq(get(d, "/healthz"), (200, "text/plain; charset=utf-8", "ok\n"))
        eq(get(d, "/readyz"), (200, "text/plain; charset=utf-8", "ready\n"))
        status, ctype, _ = get(d, "/metrics")
        eq((status, ctype), (200, "text/plain; version=0.0.4; charset=utf-8"))
        eq(get(d, "/metrics", "HEAD")[0], 200)
        eq(get(d, "/nothing"), (404, "text/plain; charset=utf-8",
                                "not found: /metrics, /healthz, /readyz\n"))
        eq(get(d, "/metrics", "POST")[:1], (405,))
        eq(get(d, "/metrics", "POST")[2], "only GET and HEAD\n")
        # The internal operator that runs `stats` for the page is not an
        # operator anyone can name.
        r = op(d, "claimflowd/metrics").call({"op": "stats"})
        eq(err(r, "forbidden"), "actor is not an operator in the roster")


def test_readyz_fails_when_the_store_is_full():
    with http_daemon(clock=T0, args=["--map-size", "1M", "--no-grow"]) as d:
        p = portal(d)
        m = cpr()
        full = None
        for i in range(100):
            c = create(p, m)
            r = p.call({"op": "attach", "id": new_id(), "member": m, "claim": c["id"],
                        "kind": "referral", "content_type": "application/pdf",
                        "body": PDF + os.urandom(60000)})
            if not r["ok"]:
                full = r
                break
        check(full is not None, "the 1 MiB store never filled")
        err(full, "unavailable")
        deadline = time.monotonic() + PAGE_TIMEOUT
        while get(d, "/readyz")[0] != 503 and time.monotonic() < deadline:
            time.sleep(0.05)
        eq(get(d, "/readyz"), (503, "text/plain; charset=utf-8",
                               "not ready: the store refuses writes (disk or map full)\n"))
        # Alive all the same, and saying so on the page.
        eq(get(d, "/healthz")[0], 200)
        fams, _ = wait_page(d, lambda f: samples(f, "claimflow_store_writable") == {(): 0.0}
                            or "writable", "writable")
        failures = samples(fams, "claimflow_commit_failures", "claimflow_commit_failures_total")
        check(failures[()] >= 1.0, failures)
        reqs = samples(fams, "claimflow_requests", "claimflow_requests_total")
        eq(reqs[(("code", "unavailable"), ("endpoint", "portal"), ("op", "attach"))], 1.0, reqs)
        # Restarted with room to grow (operations.md's remedy): ready again.
        d.args = []
        d.restart()
        eq(get(d, "/readyz"), (200, "text/plain; charset=utf-8", "ready\n"))


def test_http_config_errors():
    d = Daemon(config=False)
    try:
        cfg = os.path.join(d.tmp, "c.yaml")
        # write_config's roster takes lines 1-7: `http:` is on line 8.
        cases = [
            ("http:\n  listen: 10.1.2.3:9464\n",
             "claimflowd: cannot serve HTTP on 10.1.2.3:9464: CURVE is off (no 'curve:' in "
             "the config), so only a loopback address (127.0.0.1, [::1], localhost) may be "
             "listened on"),
            ("http:\n  listen: metrics.example:9464\n",
             "claimflowd: %s:9:11: 'listen' must be ADDRESS:PORT: an IPv4 address, "
             "[an IPv6 address] or localhost, and a port from 0 to 65535" % cfg),
            ("http:\n  listen: 127.0.0.1:65536\n",
             "claimflowd: %s:9:11: 'listen' must be ADDRESS:PORT: an IPv4 address, "
             "[an IPv6 address] or localhost, and a port from 0 to 65535" % cfg),
            ("http:\n  port: 9464\n",
             "claimflowd: %s:9:3: unknown key in 'http' (listen)" % cfg),
            ("http: {}\n", "claimflowd: %s:8:7: 'http' without 'listen'" % cfg),
        ]
        for extra, want in cases:
            write_config(cfg, extra=extra)
            d.config = cfg
            try:
                d.start()
            except RuntimeError as e:
                eq(d.stderr_lines[-1], want, str(e))
            else:
                d.stop()
                raise AssertionError("started with %r" % extra)
        # A taken port: exit 2, one line naming it.
        with http_daemon(clock=T0) as first:
            write_config(cfg, extra="http:\n  listen: %s\n" % first.http)
            try:
                d.start()
            except RuntimeError as e:
                eq(d.stderr_lines[-1], "claimflowd: cannot listen for HTTP on %s: "
                   "Address already in use" % first.http, str(e))
            else:
                d.stop()
                raise AssertionError("bound a taken port")
    finally:
        d.cleanup()


if __name__ == "__main__":
    run_tests(globals())

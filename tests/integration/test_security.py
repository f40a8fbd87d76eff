"""Integration: issue 9 (security) through the real claimflowd and claimctl.

CURVE on all three sockets with the daemon's ZAP handler; the operator's
identity from the key; roles; the access log; purge and retention; the
loopback-only rule without CURVE; key and config file checks.  Keys are
made with `claimctl keygen` (the daemon's and the operators') or
zmq.curve_keypair (strangers).  docs/SECURITY.md lists the threats these
tests stand for.

"No answer" is shown without timing: the client's socket monitor reports
the failed handshake (a definite event), ZMQ_RECONNECT_IVL -1 keeps it from
trying again, and the daemon's `stopped` line counts every request that
reached the engine (`requests=`) and every key its ZAP handler refused
(`denied_handshakes=`), both exactly."""

import os
import sys

# harness first: without python3-zmq/python3-msgpack in this interpreter it
# runs the test again with Debian's /usr/bin/python3.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402,F401

import json  # noqa: E402
import re  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import msgpack  # noqa: E402
import zmq.utils.monitor  # noqa: E402

from harness import (CLAIMCTL, CLAIMFLOWD, WORKFLOWS_DIR, Client, Daemon, T0,  # noqa: E402
                     check, cpr, eq, err, fnr, new_id, ok, op, portal, run_tests)

PDF_MARK = b"REFERRAL-MARK-7f3a9c"
PDF = b"%PDF-1.4\n% " + PDF_MARK + b"\ntrailer\n%%EOF\n"
RUN_TIMEOUT = 60
HANDSHAKE_TIMEOUT = 20     # a definite event is awaited; this only bounds a bug
Z85 = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
_ctx = zmq.Context.instance()


# ------------------------------------------------------------- claimctl ---
class Run:
    def __init__(self, p):
        self.rc, self.out, self.err = p.returncode, p.stdout, p.stderr

    def __repr__(self):
        return "exit %s\n--- stdout\n%s--- stderr\n%s" % (self.rc, self.out, self.err)

    def json(self):
        return json.loads(self.out)

    def lines(self):
        return [json.loads(x) for x in self.out.splitlines() if x.strip()]


def env(**extra):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("CLAIMFLOW_"):
            del e[k]
    e["CLAIMFLOW_WORKFLOWS"] = WORKFLOWS_DIR
    e.update(extra)
    return e


def run(*args, cwd=None, **extra_env):
    p = subprocess.run([CLAIMCTL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=RUN_TIMEOUT, env=env(**extra_env), stdin=subprocess.DEVNULL,
                       cwd=cwd)
    return Run(p)


def ok_run(r):
    if r.rc != 0:
        raise AssertionError("expected exit 0, got %r" % r)
    return r


def refused(r, code, message=None):
    """Exit 1 and exactly 'claimctl: <code>: <message>' on stderr."""
    eq(r.rc, 1, r)
    lines = r.err.splitlines()
    eq(len(lines), 1, r)
    check(lines[0].startswith("claimctl: %s: " % code), r)
    if message is not None:
        eq(lines[0], "claimctl: %s: %s" % (code, message), r)
    eq(r.out, "", r)
    return lines[0]


def keygen(directory, name):
    """claimctl keygen DIR/NAME: (public key, path of NAME.key, of NAME.pub)."""
    base = os.path.join(directory, name)
    r = ok_run(run("keygen", base))
    pub = open(base + ".pub").read().strip()
    eq(r.out, "wrote %s.key (secret key, mode 0600) and %s.pub (public key)\n"
              "public key: %s\n" % (base, base, pub), r)
    return pub, base + ".key", base + ".pub"


# ------------------------------------------------------------ the daemon ---
class Keys:
    """The key pairs of one CURVE deployment, in d.tmp/keys."""

    def __init__(self, d):
        self.dir = os.path.join(d.tmp, "keys")
        os.mkdir(self.dir, 0o700)
        self.server_pub, self.server_key, self.server_pub_file = keygen(self.dir, "claimflowd")
        self.ops = {}
        for oid in ("hanne", "sofie", "aud"):
            self.ops[oid] = keygen(self.dir, oid)
        self.portal = keygen(self.dir, "portal")

    def secret(self, name):
        """The Z85 secret key of an operator or "portal"."""
        path = self.portal[1] if name == "portal" else self.ops[name][1]
        return open(path).read().strip()

    def public(self, name):
        return self.portal[0] if name == "portal" else self.ops[name][0]


def curve_config(d, keys, extra=""):
    """Write d's config: the three operators with their keys, CURVE on with
    the daemon's key (relative to the config file), the portal's key."""
    with open(d.config, "w") as f:
        f.write("operators:\n")
        for oid, role in (("hanne", "handler"), ("sofie", "supervisor"), ("aud", "auditor")):
            f.write('  - id: %s\n    role: %s\n    key: "%s"\n' % (oid, role, keys.public(oid)))
        f.write("curve:\n  secret_key_file: keys/claimflowd.key\n")
        f.write('portal:\n  keys: ["%s"]\n' % keys.public("portal"))
        f.write(extra)


def curve_daemon(clock=T0, extra=""):
    d = Daemon(clock=clock)
    keys = Keys(d)
    curve_config(d, keys, extra)
    return d, keys


class CurveClient(Client):
    """A DEALER like the harness's Client, with CURVE keys (or none) and a
    monitor of its handshake.  It never reconnects, so one refused
    handshake is exactly one (the daemon's count stays exact)."""

    def __init__(self, d, endpoint, server=None, public=None, secret=None, defaults=None,
                 kind=zmq.DEALER):
        sock = _ctx.socket(kind)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, -1)
        if public:
            sock.curve_serverkey = server.encode()
            sock.curve_publickey = public.encode()
            sock.curve_secretkey = secret.encode()
        self.mon = sock.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL |
            zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
        sock.connect(endpoint)
        Client.__init__(self, endpoint, defaults, sock=sock)
        d._clients.append(self)

    def send(self, req):
        """Queue req without blocking.  The request waits in the socket
        until a handshake succeeds; if one already failed there is no peer
        left to queue it for (EAGAIN): either way it never reaches the
        daemon, which is the point."""
        try:
            self.sock.send_multipart([b"", msgpack.packb(self.full_request(req), use_bin_type=True)],
                                     zmq.NOBLOCK)
        except zmq.Again:
            pass

    def handshake(self):
        """The first handshake event: ('HANDSHAKE_SUCCEEDED', 0),
        ('HANDSHAKE_FAILED_AUTH', 400), ..."""
        if not self.mon.poll(HANDSHAKE_TIMEOUT * 1000):
            raise AssertionError("no handshake event from %s" % self.endpoint)
        ev = zmq.utils.monitor.recv_monitor_message(self.mon)
        return zmq.Event(ev["event"]).name, ev["value"]

    def close(self):
        if self.sock is not None:
            self.sock.disable_monitor()
            self.mon.close(0)
            self.sock.close(0)
            self.socket = None


def client(d, keys, endpoint, who, actor=None):
    """A CURVE client of d holding `who`'s key ("portal" or an operator)."""
    return CurveClient(d, endpoint, keys.server_pub, keys.public(who), keys.secret(who),
                       {"actor": actor} if actor else None)


def ctl(d, keys, who, *args, actor=None):
    """claimctl ARGS on d's operator endpoint, with `who`'s key, as actor."""
    return run(*args, "--endpoint", d.operator, "--as", actor or who, "--key", keys.ops[who][1],
               "--server-key", keys.server_pub_file)


def stopped_line(d):
    lines = [x for x in d.stderr_lines if x.startswith("claimflowd: stopped")]
    eq(len(lines), 1, d.stderr_lines)
    return lines[0]


def in_review(p, member, treatment="chiropractic", description=None):
    data = {"member": member, "treatment": treatment}
    if description:
        data["description"] = description
    c = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                   "member": member, "data": data}))["claim"]
    ok(p.call({"op": "consent.give", "id": new_id(), "member": member}))
    return c["id"]


def member_send(p, member, claim, event, data=None):
    req = {"op": "send", "id": new_id(), "member": member, "claim": claim, "event": event}
    if data is not None:
        req["data"] = data
    return ok(p.call(req))["claim"]


# ------------------------------------------------------------------ keys ---
def test_keygen_writes_a_key_pair_readable_by_its_owner_only():
    with tempfile.TemporaryDirectory() as tmp:
        pub, key, pubf = keygen(tmp, "hanne")
        st = os.stat(key)
        eq(stat.S_IMODE(st.st_mode), 0o600)
        secret = open(key).read()
        check(secret.endswith("\n") and Z85.match(secret[:-1]), "secret key form")
        check(Z85.match(pub), pub)
        eq(open(pubf).read(), pub + "\n")
        # The public key is the secret key's.
        eq(zmq.curve_public(secret[:-1].encode()).decode(), pub)
        # Two runs never make the same key.
        pub2 = keygen(tmp, "sofie")[0]
        check(pub2 != pub, pub)
        # Never overwritten: exit 1, the file named, both files as they were.
        r = run("keygen", os.path.join(tmp, "hanne"))
        eq((r.rc, r.out), (1, ""), r)
        eq(r.err, "claimctl: keygen: %s exists: a key file is never overwritten\n" % key, r)
        eq(open(key).read(), secret)
        eq(open(pubf).read(), pub + "\n")
        # A NAME.pub alone also stops it, and no NAME.key is left behind.
        open(os.path.join(tmp, "lone.pub"), "w").write("x\n")
        r = run("keygen", os.path.join(tmp, "lone"))
        eq(r.rc, 1, r)
        check(not os.path.exists(os.path.join(tmp, "lone.key")), r)
        # Usage: NAME is required.
        r = run("keygen")
        eq(r.rc, 2, r)
        eq(r.err.splitlines()[0], "claimctl: keygen: missing argument (NAME)", r)
        # The secret never reaches the output.
        check(secret[:-1] not in r.out + r.err, r)


def test_key_and_config_errors_name_the_file_never_the_key():
    d = Daemon()
    try:
        keys = Keys(d)
        secret = open(keys.server_key).read().strip()

        def start_fails(extra_config_text=None, config_text=None):
            if config_text is not None:
                with open(d.config, "w") as f:
                    f.write(config_text)
            else:
                curve_config(d, keys, extra_config_text or "")
            p = subprocess.run(d.command(), capture_output=True, text=True, timeout=RUN_TIMEOUT)
            eq(p.returncode, 2, p.stderr)
            lines = p.stderr.splitlines()
            eq(len(lines), 1, p.stderr)
            for k in [secret] + [keys.secret(o) for o in ("hanne", "sofie", "aud", "portal")]:
                check(k not in p.stderr, "key material in", p.stderr)
            check(not os.path.exists(d.data_dir), "the store was created")
            return lines[0]

        # The secret key file readable by others: refused like ssh does.
        os.chmod(keys.server_key, 0o640)
        eq(start_fails(), "claimflowd: %s: the secret key file is accessible by group or "
                          "others (mode 0640); it must be readable by its owner only "
                          "(chmod 600 %s)" % (keys.server_key, keys.server_key))
        os.chmod(keys.server_key, 0o600)
        # Not a key.
        with open(keys.server_key, "w") as f:
            f.write(secret[:39] + "_\n")
        eq(start_fails(), "claimflowd: %s: not a key file (expected one CURVE key: 40 Z85 "
                          "characters, as 'claimctl keygen' writes)" % keys.server_key)
        # A 5-character group that overflows 32 bits is not a key either.
        with open(keys.server_key, "w") as f:
            f.write("#####" * 8 + "\n")
        check(start_fails().endswith(": not a key file (expected one CURVE key: 40 Z85 "
                                     "characters, as 'claimctl keygen' writes)"), "overflow")
        os.unlink(keys.server_key)
        eq(start_fails(), "claimflowd: %s: cannot open the key file: No such file or "
                          "directory" % keys.server_key)
        with open(keys.server_key, "w") as f:
            f.write(secret + "\n")
        os.chmod(keys.server_key, 0o600)

        # The config's keys: each one a Z85 key, each one identity.
        cfg = d.config
        head = "operators:\n  - id: hanne\n    role: handler\n"
        eq(start_fails(config_text=head + '    key: "%s"\n' % ("x" * 39)),
           "claimflowd: %s:4:10: 'key' must be a 40-character Z85 CURVE public key" % cfg)
        eq(start_fails(config_text=head + 'portal:\n  keys: ["%s_"]\n' % keys.public("portal")[:39]),
           "claimflowd: %s:5:10: each portal key must be a 40-character Z85 CURVE public key" % cfg)
        two = ('operators:\n  - id: a\n    role: handler\n    key: "%s"\n'
               '  - id: b\n    role: auditor\n    key: "%s"\n') % ((keys.public("hanne"),) * 2)
        eq(start_fails(config_text=two),
           "claimflowd: %s:5:5: the same 'key' is given for two operators" % cfg)
        eq(start_fails(config_text=head + '    key: "%s"\nportal:\n  keys: ["%s"]\n'
                       % ((keys.public("hanne"),) * 2)),
           "claimflowd: %s: portal key 1 is also the key of operator 'hanne'" % cfg)
        eq(start_fails(config_text=head + 'portal:\n  keys: ["%s", "%s"]\n'
                       % ((keys.public("portal"),) * 2)),
           "claimflowd: %s:5:54: portal key listed twice" % cfg)
        eq(start_fails(config_text=head + "curve:\n  secret_key: x\n"),
           "claimflowd: %s:5:3: unknown key in 'curve' (secret_key_file)" % cfg)
        eq(start_fails(config_text=head + "curve: {}\n"),
           "claimflowd: %s:4:8: 'curve' without 'secret_key_file'" % cfg)
        eq(start_fails(config_text=head + "retention:\n  closed_claims_days: 0\n"),
           "claimflowd: %s:5:23: 'closed_claims_days' must be an integer from 1 to 36500" % cfg)
        eq(start_fails(config_text=head + "retention: {days: 3}\n"),
           "claimflowd: %s:4:13: unknown key in 'retention' (closed_claims_days, "
           "access_log_days)" % cfg)
        eq(start_fails(config_text=head + "retention: {access_log_days: 0}\n"),
           "claimflowd: %s:4:30: 'access_log_days' must be an integer from 1 to 36500" % cfg)
        eq(start_fails(config_text=head + "retention: {}\n"),
           "claimflowd: %s:4:12: 'retention' without 'closed_claims_days' or "
           "'access_log_days'" % cfg)
    finally:
        d.cleanup()


# ----------------------------------------------------------------- CURVE ---
def test_no_key_or_a_wrong_key_gets_no_answer_and_changes_nothing():
    d, keys = curve_daemon()
    with d:
        check(" curve=on " in d.started_line, d.started_line)
        check(not any("CURVE is off" in x for x in d.stderr_lines), d.stderr_lines)
        stranger_pub, stranger_sec = [k.decode() for k in zmq.curve_keypair()]
        other_server = zmq.curve_keypair()[0].decode()
        m = cpr(5, 5, 1975, 1234)
        create = {"op": "create", "id": new_id(), "workflow": "health_claim", "member": m,
                  "data": {"member": m, "treatment": "chiropractic"}}
        send = {"op": "stats", "actor": "hanne"}
        # (client, request, the handshake event it gets, refused by ZAP?)
        bad = [
            (CurveClient(d, d.portal), create, None, False),                   # no key
            (CurveClient(d, d.portal, keys.server_pub, stranger_pub, stranger_sec),
             create, ("HANDSHAKE_FAILED_AUTH", 400), True),                    # not listed
            (client(d, keys, d.portal, "hanne"),                               # wrong list
             create, ("HANDSHAKE_FAILED_AUTH", 400), True),
            (CurveClient(d, d.portal, other_server, keys.public("portal"),     # wrong server
                         keys.secret("portal")), create, None, False),
            (CurveClient(d, d.operator), send, None, False),                   # no key
            (CurveClient(d, d.operator, keys.server_pub, stranger_pub, stranger_sec),
             send, ("HANDSHAKE_FAILED_AUTH", 400), True),
            (client(d, keys, d.operator, "portal"), send,                      # portal's key
             ("HANDSHAKE_FAILED_AUTH", 400), True),
        ]
        for c, req, want, _ in bad:
            c.send(req)             # queued; it can only leave after a handshake
            got = c.handshake()
            if want:
                eq(got, want, c.endpoint)
            else:
                check(got[0] in ("HANDSHAKE_FAILED_NO_DETAIL", "HANDSHAKE_FAILED_PROTOCOL"),
                      got, c.endpoint)
        # A subscriber without a key, or with a stranger's, gets no events.
        subs = [CurveClient(d, d.events, kind=zmq.SUB),
                CurveClient(d, d.events, keys.server_pub, stranger_pub, stranger_sec,
                            kind=zmq.SUB)]
        for s in subs:
            s.sock.setsockopt(zmq.SUBSCRIBE, b"")
        check(subs[0].handshake()[0] != "HANDSHAKE_SUCCEEDED", "keyless subscriber")
        eq(subs[1].handshake(), ("HANDSHAKE_FAILED_AUTH", 400))

        # The keys that belong get through, and see that nothing changed.
        p = client(d, keys, d.portal, "portal")
        eq(ok(p.call({"op": "query", "member": m}))["claims"], [])
        o = client(d, keys, d.operator, "hanne", actor="hanne")
        eq(ok(o.call({"op": "stats"}))["claims"], 0)
        ok(p.call(dict(create, id=new_id())))
        eq(ok(o.call({"op": "stats"}))["claims"], 1)
        for c, _, _, _ in bad:
            check(c.sock.poll(0) == 0, "a refused client got a reply", c.endpoint)
        for s in subs:
            check(s.sock.poll(0) == 0, "a refused subscriber got an event")
    # Exactly the four good requests reached the engine; the ZAP handler
    # refused exactly the five listed-nowhere-or-elsewhere keys.
    line = stopped_line(d)
    check(" requests=4 " in line, line)
    check(line.endswith(" denied_handshakes=5"), line)


def test_events_socket_needs_a_listed_key():
    d, keys = curve_daemon()
    with d:
        subs = {}
        for who in ("portal", "aud"):
            s = CurveClient(d, d.events, keys.server_pub, keys.public(who), keys.secret(who),
                            kind=zmq.SUB)
            s.sock.setsockopt(zmq.SUBSCRIBE, b"health_claim/")
            eq(s.handshake(), ("HANDSHAKE_SUCCEEDED", 0))
            subs[who] = s
        w = subprocess.Popen([CLAIMCTL, "watch", "--json", "--count", "1", "--events", d.events,
                              "--key", keys.ops["sofie"][1], "--server-key", keys.server_pub],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env())
        time.sleep(1.5)                      # the subscriptions reach the PUB
        m = fnr()
        p = client(d, keys, d.portal, "portal")
        c = in_review(p, m)
        for who, s in subs.items():
            check(s.sock.poll(HANDSHAKE_TIMEOUT * 1000), who)
            topic, body = s.sock.recv_multipart()
            eq(topic, b"health_claim/claim.created", who)
            eq(msgpack.unpackb(body)["claim"], c, who)
        out, errout = w.communicate(timeout=RUN_TIMEOUT)
        eq(w.returncode, 0, errout)
        ev = json.loads(out)
        eq((ev["claim"], ev["event"]), (c, "claim.created"))
        # claimctl watch with a key that is on no list: exit 3 at once.
        stranger = os.path.join(d.tmp, "stranger")
        ok_run(run("keygen", stranger))
        r = run("watch", "--events", d.events, "--key", stranger + ".key",
                "--server-key", keys.server_pub, "--timeout", "30")
        eq(r.rc, 3, r)
        eq(r.err, "claimctl: claimflowd at %s refused your key (is the public key of %s.key "
                  "on the daemon's list for this endpoint?), or has all the subscribers "
                  "it takes (--max-subscribers)\n" % (d.events, stranger), r)


def test_the_key_is_the_operator():
    d, keys = curve_daemon()
    with d:
        h = client(d, keys, d.operator, "hanne")
        ok(h.call({"op": "stats", "actor": "hanne"}))
        eq(err(h.call({"op": "stats", "actor": "sofie"}), "forbidden"),
           "actor 'sofie' does not match the operator authenticated by the key")
        eq(err(h.call({"op": "stats", "actor": "mallory"}), "forbidden"),
           "actor is not an operator in the roster")
        eq(err(h.call({"op": "stats"}), "bad_request"),
           "field 'actor' is required on the operator endpoint")
        ok(h.call({"op": "ping"}))
        # Through claimctl: hanne's key cannot act as sofie (who could uphold).
        p = client(d, keys, d.portal, "portal")
        m = cpr(6, 6, 1966, 2345)
        c = in_review(p, m)
        refused(ctl(d, keys, "hanne", "approve", c, actor="sofie"), "forbidden",
                "actor 'sofie' does not match the operator authenticated by the key")
        refused(ctl(d, keys, "aud", "approve", c, actor="hanne"), "forbidden",
                "actor 'hanne' does not match the operator authenticated by the key")
        eq(ok_run(ctl(d, keys, "hanne", "approve", c)).out, "%s: approved\n" % c)
        hist = ok(h.call({"op": "history", "claim": c, "actor": "hanne"}))["events"]
        eq([(e["event"], e["actor"]) for e in hist][-1:], [("decision.approved", "hanne")])
        # claimctl without keys, or with the wrong server key: exit 3, no request.
        r = run("stats", "--endpoint", d.operator, "--as", "hanne", "--timeout", "30")
        eq(r.rc, 3, r)
        eq(r.err, "claimctl: claimflowd at %s refused the connection during the handshake "
                  "(it requires CURVE?): give --key and --server-key (or CLAIMFLOW_KEY, "
                  "CLAIMFLOW_SERVER_KEY)\n" % d.operator, r)
        r = run("stats", "--endpoint", d.operator, "--as", "hanne", "--timeout", "30",
                CLAIMFLOW_KEY=keys.ops["hanne"][1],
                CLAIMFLOW_SERVER_KEY=keys.public("sofie"))
        eq(r.rc, 3, r)
        eq(r.err, "claimctl: the CURVE handshake with claimflowd at %s failed (is "
                  "--server-key the daemon's public key?)\n" % d.operator, r)
        # The environment works like the options, and the server key may be
        # given as text.
        r = ok_run(run("stats", "--json", "--endpoint", d.operator, "--as", "hanne",
                       CLAIMFLOW_KEY=keys.ops["hanne"][1], CLAIMFLOW_SERVER_KEY=keys.server_pub))
        eq(r.json()["claims"], 1)
        # An unsafe key file is refused before anything is sent.
        os.chmod(keys.ops["hanne"][1], 0o644)
        r = ctl(d, keys, "hanne", "stats")
        eq(r.rc, 2, r)
        eq(r.err.splitlines()[0], "claimctl: stats: --key: %s: the secret key file is "
                                  "accessible by group or others (mode 0644); it must be "
                                  "readable by its owner only (chmod 600 %s)"
                                  % (keys.ops["hanne"][1], keys.ops["hanne"][1]), r)
        os.chmod(keys.ops["hanne"][1], 0o600)
        r = run("stats", "--endpoint", d.operator, "--as", "hanne", "--key", keys.ops["hanne"][1])
        eq(r.rc, 2, r)
        eq(r.err.splitlines()[0], "claimctl: stats: --key needs --server-key (or "
                                  "CLAIMFLOW_SERVER_KEY): the daemon's public key", r)


def test_roles_through_the_daemon():
    d, keys = curve_daemon()
    with d:
        p = client(d, keys, d.portal, "portal")
        m = cpr(7, 7, 1977, 3456)
        c = in_review(p, m)
        # An auditor reads and never writes.
        refused(ctl(d, keys, "aud", "approve", c), "forbidden",
                "role 'auditor' may not use op 'send'")
        refused(ctl(d, keys, "aud", "purge", "--closed-before", "2026-01-01"), "forbidden",
                "role 'auditor' may not use op 'purge'")
        ok_run(ctl(d, keys, "aud", "show", c))
        eq(ok_run(ctl(d, keys, "hanne", "deny", c, "--reason", "not covered")).out,
           "%s: denied\n" % c)
        member_send(p, m, c, "reconsideration.requested", {"text": "please look again"})
        eq(ok_run(ctl(d, keys, "hanne", "reconsider", c, "--upheld", "--reason", "still not")).out,
           "%s: denied\n" % c)
        member_send(p, m, c, "complaint.filed", {"text": "please look again"})
        eq(ok_run(ctl(d, keys, "sofie", "assign", c, "--to", "sofie")).out,
           "%s: owner sofie\n" % c)
        # A handler cannot decide a complaint; a supervisor can.
        refused(ctl(d, keys, "hanne", "uphold", c), "forbidden",
                "role 'handler' may not send 'complaint.upheld' (allowed: supervisor)")
        refused(ctl(d, keys, "hanne", "audit", "--claim", c), "forbidden",
                "role 'handler' may not use op 'audit'")
        refused(ctl(d, keys, "hanne", "purge", "--closed-before", "2026-01-01"), "forbidden",
                "role 'handler' may not use op 'purge'")
        eq(ok_run(ctl(d, keys, "sofie", "uphold", c)).out, "%s: approved\n" % c)
        # The portal sees one member's claims: another member's is not there.
        other = cpr(8, 8, 1988, 1234)
        eq(err(p.call({"op": "get", "member": other, "claim": c}), "not_found"),
           "no claim with that id")
        eq(ok(p.call({"op": "query", "member": other}))["claims"], [])
        eq([x["id"] for x in ok(p.call({"op": "query", "member": m}))["claims"]], [c])


def test_every_operator_read_is_in_the_access_log_exactly_once():
    d, keys = curve_daemon()
    with d:
        p = client(d, keys, d.portal, "portal")
        m = cpr(9, 9, 1979, 1234)
        a = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim", "member": m,
                       "data": {"member": m, "treatment": "physiotherapy"}}))["claim"]["id"]
        doc = ok(p.call({"op": "attach", "id": new_id(), "member": m, "claim": a,
                         "kind": "referral", "content_type": "application/pdf",
                         "body": PDF}))["document"]
        ok(p.call({"op": "consent.give", "id": new_id(), "member": m}))
        # The portal's reads are the member's own: not in the operators' log.
        ok(p.call({"op": "get", "member": m, "claim": a}))
        ok(p.call({"op": "history", "member": m, "claim": a}))

        ok_run(ctl(d, keys, "hanne", "show", a))                 # get + history
        ok_run(ctl(d, keys, "hanne", "history", a))              # history
        ok_run(ctl(d, keys, "hanne", "queue"))                   # query
        ok_run(ctl(d, keys, "aud", "export"))                    # query
        o = client(d, keys, d.operator, "sofie", actor="sofie")
        eq(ok(o.call({"op": "document", "claim": a, "sha256": doc["sha256"]}))
           ["document"]["body"], PDF)                            # document
        ok_run(ctl(d, keys, "hanne", "timers"))                  # not a claim read
        ok_run(ctl(d, keys, "hanne", "stats"))                   # not a claim read

        want = [("hanne", "get"), ("hanne", "history"), ("hanne", "history"),
                ("hanne", "query"), ("aud", "query"), ("sofie", "document")]
        for reader in ("aud", "sofie"):
            r = ok_run(ctl(d, keys, reader, "audit", "--claim", a, "--json"))
            entries = r.lines()
            eq([(e["actor"], e["op"]) for e in entries], want, r)
            for e in entries:
                eq(e["claims"], [a])
                eq(e["at"], T0)
        # Reading the log adds nothing to it; --actor and --limit filter it.
        r = ok_run(ctl(d, keys, "aud", "audit", "--actor", "hanne", "--json"))
        eq([e["op"] for e in r.lines()], ["get", "history", "history", "query"])
        r = ok_run(ctl(d, keys, "aud", "audit", "--json", "--limit", "2"))
        eq([(e["actor"], e["op"]) for e in r.lines()], want[:2])
        eq(len(ok_run(ctl(d, keys, "aud", "audit", "--json")).lines()), len(want))
        # The table: local time, operator, op, claim.
        r = ok_run(ctl(d, keys, "sofie", "audit", "--claim", a))
        lines = r.out.splitlines()
        eq(lines[0].split(), ["TIME", "OPERATOR", "OP", "CLAIMS"])
        eq(lines[1].split(), ["2026-11-24", "10:00", "hanne", "get", a])
        eq(len(lines), 1 + len(want))
        # Usage: one filter at a time.
        r = ctl(d, keys, "aud", "audit", "--claim", a, "--actor", "hanne")
        eq(r.rc, 2, r)
        eq(r.err.splitlines()[0], "claimctl: audit: give --claim or --actor, not both")


def scan(path, needles):
    """The needles (bytes) found anywhere in the raw file."""
    data = open(path, "rb").read()
    return [n for n in needles if n in data]


def test_purge_leaves_no_person_id_or_document_in_the_store_file():
    # Retention 30 days: a purge without a date uses it.
    d, keys = curve_daemon(extra="retention:\n  closed_claims_days: 30\n")
    with d:
        p = client(d, keys, d.portal, "portal")
        o = client(d, keys, d.operator, "hanne", actor="hanne")
        ma, mb, mc = cpr(10, 10, 1950, 1234), fnr(12, 12, 1962), cpr(11, 11, 1961, 2345)
        # A: physiotherapy with a referral, withdrawn by the member.
        a = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim", "member": ma,
                       "data": {"member": ma, "treatment": "physiotherapy",
                                "description": "DESC-MARK-A knee"}}))["claim"]["id"]
        ok(p.call({"op": "attach", "id": new_id(), "member": ma, "claim": a, "kind": "referral",
                   "content_type": "application/pdf", "body": PDF}))
        member_send(p, ma, a, "claim.withdrawn")
        # B: denied, complaint rejected: closed.
        b = in_review(p, mb, description="DESC-MARK-B back")
        ok_run(ctl(d, keys, "hanne", "deny", b, "--reason", "REASON-MARK-B"))
        member_send(p, mb, b, "reconsideration.requested", {"text": "COMPLAINT-MARK-B"})
        ok_run(ctl(d, keys, "hanne", "reconsider", b, "--upheld", "--reason", "UPHELD-MARK-B"))
        member_send(p, mb, b, "complaint.filed", {"text": "COMPLAINT-MARK-B"})
        ok_run(ctl(d, keys, "sofie", "take", b))
        eq(ok_run(ctl(d, keys, "sofie", "reject", b, "--reason", "REJECT-MARK-B")).out,
           "%s: complaint_rejected\n" % b)
        eq(ok_run(ctl(d, keys, "sofie", "close", b, "--reason", "CLOSE-MARK-B")).out,
           "%s: closed\n" % b)
        # C: still open; its member's data must stay.
        c = in_review(p, mc, description="DESC-MARK-C")

        given = [ma.encode(), mb.encode(), PDF_MARK, b"DESC-MARK-A", b"DESC-MARK-B",
                 b"REASON-MARK-B", b"COMPLAINT-MARK-B", b"UPHELD-MARK-B", b"REJECT-MARK-B",
                 b"CLOSE-MARK-B"]
        # Every way a person id could be written: as given, without the
        # dash, in UTF-16 (a CPR is ASCII digits: one NUL between each).
        gone = given + [ma.replace("-", "").encode(), ma.encode("utf-16-le"),
                        mb.encode("utf-16-le")]
        kept = [mc.encode(), b"DESC-MARK-C"]
        store = os.path.join(d.data_dir, "data.mdb")
        eq(scan(store, given), given)          # the scan finds what is there

        # Not yet 30 days closed: nothing to purge.
        eq(ok_run(ctl(d, keys, "sofie", "purge")).out, "purged 0 claims\n")
        ok(o.call({"op": "clock.advance", "seconds": 31 * 86400}))
        r = ok_run(ctl(d, keys, "sofie", "purge", "--json", "--id", "purge-1"))
        eq(r.json(), {"purged": 2})
        # The same --id again: the same answer, no second purge.
        eq(ok_run(ctl(d, keys, "sofie", "purge", "--json", "--id", "purge-1")).json(),
           {"purged": 2})
        eq(ok_run(ctl(d, keys, "sofie", "purge")).out, "purged 0 claims\n")

        # The skeletons are left: states and history without data.
        for cid, state in ((a, "withdrawn"), (b, "closed")):
            got = ok(o.call({"op": "get", "claim": cid}))["claim"]
            eq((got["state"], got["data"], got["documents"]), (state, {}, []))
            for ev in ok(o.call({"op": "history", "claim": cid}))["events"]:
                check(not ev.get("data"), ev)
        eq(ok(p.call({"op": "query", "member": ma}))["claims"], [])
        eq(ok(o.call({"op": "get", "claim": c}))["claim"]["data"]["description"], "DESC-MARK-C")
        # The purge is in the access log.
        r = ok_run(ctl(d, keys, "aud", "audit", "--actor", "sofie", "--json"))
        purges = [e for e in r.lines() if e["op"] == "purge"]
        eq(sorted(purges[1]["claims"]), sorted([a, b]), r)
        # No value of theirs in any log line.
        # The file after the daemon is gone: nothing cached, nothing pending.
        eq(d.stop(), 0)
        eq(scan(store, gone), [])
        eq(scan(store, kept), kept)
        # No value of theirs in any log line.
        text = "\n".join(d.stderr_lines)
        for n in given + kept:
            check(n.decode() not in text, n, d.stderr_lines)


def test_access_log_survives_a_clock_set_back_at_restart():
    # Two reads at T0; restarts with the clock a day earlier, twice: every
    # read keeps its own entry (the sequence is not taken from the newest
    # entry's key, which sorts by time).
    d = Daemon(clock=T0)
    with d:
        p, h = portal(d), op(d, "hanne")
        m = cpr(8, 8, 1988, 1234)
        c = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                       "member": m, "data": {"member": m, "treatment": "scan"}}))["claim"]["id"]
        ok(h.call({"op": "get", "claim": c}))
        ok(h.call({"op": "get", "claim": c}))
        for _ in range(2):
            d.clock = "2026-11-23T09:00:00Z"
            d.restart()
            ok(op(d, "hanne").call({"op": "get", "claim": c}))
        r = ok(op(d, "sofie").call({"op": "audit", "claim": c}))
        eq(len(r["entries"]), 4, r)
        eq(sorted(e["at"] for e in r["entries"]),
           ["2026-11-23T09:00:00Z", "2026-11-23T09:00:00Z", T0, T0])


def test_purge_makes_progress_and_ends():
    # Claims are taken out of the closed index as they are purged: rounds
    # of `limit` erase each claim once and then say there is no more.
    with Daemon(clock=T0) as d:
        p, o, s = portal(d), op(d, "hanne"), op(d, "sofie")
        m = cpr(6, 6, 1966, 1234)
        for i in range(25):
            c = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim",
                           "member": m, "data": {"member": m, "treatment": "scan"}}))
            member_send(p, m, c["claim"]["id"], "claim.withdrawn")
        ok(o.call({"op": "clock.advance", "seconds": 2 * 86400}))
        rounds = []
        for _ in range(6):
            r = ok(s.call({"op": "purge", "id": new_id(), "closed_before": "2026-11-25",
                           "limit": 10}))
            rounds.append((r["purged"], r["more"]))
            if not r["more"]:
                break
        eq(rounds, [(10, True), (10, True), (5, False)])
        r = ok(s.call({"op": "purge", "id": new_id(), "closed_before": "2026-11-25"}))
        eq((r["purged"], r["more"]), (0, False))
        eq(ok(p.call({"op": "query", "member": m}))["claims"], [])


WF_V1 = """workflow: tiny
version: 1
calendar: dk
created_by: [member]
data:
  member: {type: person_id, required: true}
  note: {type: string, max: 100}
states:
  open:
    initial: true
    on:
      done: {to: done, by: [member]}
  done: {final: true}
"""

# Version 2: `done` is no longer final (a later step follows).
WF_V2 = WF_V1.replace("version: 1", "version: 2").replace(
    "  done: {final: true}\n",
    "  done:\n    on:\n      archived: {to: archived, by: [handler]}\n"
    "  archived: {final: true}\n")


def test_purge_judges_finality_by_the_claims_own_version():
    import shutil as _sh
    tmp = tempfile.mkdtemp(prefix="cf-wfv-")
    try:
        _sh.copy(os.path.join(WORKFLOWS_DIR, "calendars.yaml"), tmp)
        with open(os.path.join(tmp, "tiny.yaml"), "w") as f:
            f.write(WF_V1)
        d = Daemon(clock=T0, workflows_dir=tmp)
        with d:
            p = portal(d)
            m = cpr(7, 7, 1977, 1234)
            c1 = ok(p.call({"op": "create", "id": new_id(), "workflow": "tiny", "member": m,
                            "data": {"member": m, "note": "V1-MARK"}}))["claim"]["id"]
            member_send(p, m, c1, "done")
            # The insurer ships version 2; claims keep their version.
            with open(os.path.join(tmp, "tiny.yaml"), "w") as f:
                f.write(WF_V2)
            d.restart()
            p, o, s = portal(d), op(d, "hanne"), op(d, "sofie")
            c2 = ok(p.call({"op": "create", "id": new_id(), "workflow": "tiny", "member": m,
                            "data": {"member": m, "note": "V2-MARK"}}))["claim"]
            eq(c2["version"], 2)
            member_send(p, m, c2["id"], "done")
            ok(o.call({"op": "clock.advance", "seconds": 2 * 86400}))
            r = ok(s.call({"op": "purge", "id": new_id(), "closed_before": "2026-11-25"}))
            eq(r["purged"], 1, r)
            # The v1 claim (done is final in v1) is erased; the v2 claim in
            # `done` is open in v2 and keeps its data.
            eq(ok(o.call({"op": "get", "claim": c1}))["claim"]["data"], {})
            got = ok(o.call({"op": "get", "claim": c2["id"]}))["claim"]
            eq(got["data"]["note"], "V2-MARK")
            ok(o.call({"op": "send", "id": new_id(), "claim": c2["id"], "event": "archived"}))
    finally:
        _sh.rmtree(tmp, ignore_errors=True)


def test_failed_compaction_is_reported_and_finished_at_start():
    # A purge whose compaction fails: the reply and one log line say so, the
    # erased bytes are still in the file, and the next start finishes it.
    with Daemon(clock=T0) as d:
        p, o, s = portal(d), op(d, "hanne"), op(d, "sofie")
        m = cpr(5, 5, 1955, 1234)
        a = ok(p.call({"op": "create", "id": new_id(), "workflow": "health_claim", "member": m,
                       "data": {"member": m, "treatment": "physiotherapy",
                                "description": "COMPACT-MARK"}}))["claim"]["id"]
        member_send(p, m, a, "claim.withdrawn")
        ok(o.call({"op": "clock.advance", "seconds": 2 * 86400}))
        store = os.path.join(d.data_dir, "data.mdb")
        # The compaction's work directory taken by a file: the copy fails.
        open(os.path.join(d.data_dir, ".compact"), "w").close()
        r = ok(s.call({"op": "purge", "id": new_id(), "closed_before": "2026-11-25"}))
        eq((r["purged"], r["compacted"]), (1, False), r)
        check(r["compaction_error"].startswith("compaction failed: "), r)
        lines = d.log_lines("compaction after a purge failed")
        eq(len(lines), 1, d.stderr_lines)
        check("COMPACT-MARK" not in lines[0], lines)
        eq(ok(o.call({"op": "get", "claim": a}))["claim"]["data"], {})
        eq(d.stop(), 0)
        eq(scan(store, [b"COMPACT-MARK"]), [b"COMPACT-MARK"])   # still in the file
        d.start()       # the marker the purge left: compacted at start
        eq(d.stop(), 0)
        eq(scan(store, [b"COMPACT-MARK"]), [])
        check(not os.path.exists(os.path.join(d.data_dir, ".compact")))


def test_purge_without_retention_needs_a_date():
    d, keys = curve_daemon()
    with d:
        refused(ctl(d, keys, "sofie", "purge"), "bad_request",
                "field 'closed_before' is required (no retention period is configured)")
        r = ctl(d, keys, "sofie", "purge", "--closed-before", "yesterday")
        eq(r.rc, 2, r)
        eq(r.err.splitlines()[0], "claimctl: purge: --closed-before: 'yesterday' is not a "
                                  "date (YYYY-MM-DD) or an RFC 3339 time", r)
        refused(ctl(d, keys, "sofie", "purge", "--closed-before", "2027-01-01"), "bad_request",
                "field 'closed_before' is in the future")
        eq(ok_run(ctl(d, keys, "sofie", "purge", "--closed-before", "2026-01-01")).out,
           "purged 0 claims\n")


# ----------------------------------------------------------- CURVE is off ---
def test_without_curve_only_loopback_is_bound():
    for sock, ep in (("portal", "tcp://0.0.0.0:*"), ("operator", "tcp://*:0"),
                     ("events", "tcp://[::]:*"), ("portal", "tcp://eth0:*"),
                     ("operator", "tcp://10.0.0.1:*"), ("events", "pgm://eth0;239.1.1.1:5555"),
                     ("portal", "tcp://127.0.0.1.evil.example:*")):
        d = Daemon()
        try:
            p = subprocess.run(d.command(["--" + sock, ep]), capture_output=True, text=True,
                               timeout=RUN_TIMEOUT)
            eq(p.returncode, 2, p.stderr)
            eq(p.stderr, "claimflowd: cannot bind the %s socket to %s: CURVE is off (no "
                         "'curve:' in the config), so only loopback (tcp://127.0.0.1, "
                         "tcp://[::1], tcp://localhost), ipc:// or inproc:// may be bound\n"
                         % (sock, ep))
            check(not os.path.exists(d.data_dir), "the store was created")
        finally:
            d.cleanup()
    # Loopback and ipc:// are bound, with a warning.
    d = Daemon(clock=T0, args=["--portal", "ipc://" + os.path.join(tempfile.gettempdir(),
                                                                    "cf-sec-%d" % os.getpid()),
                               "--operator", "tcp://127.0.0.2:*"])
    with d:
        warn = [x for x in d.stderr_lines if x.startswith("claimflowd: warning: CURVE")]
        eq(warn, ["claimflowd: warning: CURVE is off (no 'curve:' in the config): no client is "
                  "authenticated and nothing is encrypted; only loopback endpoints are bound"])
        check(" curve=off " in d.started_line, d.started_line)
        check(d.portal.startswith("ipc://"), d.started_line)
        ok(portal(d).call({"op": "ping"}))
        ok(op(d).call({"op": "stats"}))
    # With CURVE the same daemon may listen on every interface.
    d, keys = curve_daemon()
    d.args = ["--portal", "tcp://0.0.0.0:*"]
    with d:
        port = d.portal.rsplit(":", 1)[1]
        p = CurveClient(d, "tcp://127.0.0.1:" + port, keys.server_pub, keys.public("portal"),
                        keys.secret("portal"))
        ok(p.call({"op": "ping"}))


if __name__ == "__main__":
    if not os.access(CLAIMCTL, os.X_OK) or not os.access(CLAIMFLOWD, os.X_OK):
        print("SKIP: claimctl or claimflowd not built")
        sys.exit(77)
    run_tests(globals())

"""Integration: claimflowd as a process - flags, config, signals,
durability, start-up timers, logging (docs/operations.md)."""

import datetime
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (CLAIMFLOWD, WORKFLOWS_DIR, Daemon, Subscriber, T0,  # noqa: E402
                     check, cpr, eq, err, fnr, new_id, ok, op, portal,
                     run_tests, write_config)
from test_lifecycle import create, in_review, send  # noqa: E402


def run_bad(args, tmp):
    """Run claimflowd expecting it to refuse to start; (stderr lines, stdout)."""
    cmd = [CLAIMFLOWD, "--data", os.path.join(tmp, "var"),
           "--workflows", WORKFLOWS_DIR,
           "--portal", "tcp://127.0.0.1:*", "--operator", "tcp://127.0.0.1:*",
           "--events", "tcp://127.0.0.1:*"] + args
    r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=30)
    lines = r.stderr.decode().splitlines()
    if r.returncode != 2:
        raise AssertionError("%r: exit %d, want 2: %r" % (args, r.returncode, lines))
    return lines, r.stdout


# ------------------------------------------------------------ start-up ---
def test_bad_flags_exit_2_one_line():
    d = Daemon()
    try:
        cases = [
            ["--frobnicate"],
            ["--max-frame", "0"],
            ["--max-frame", "65M"],
            ["--max-frame", "12x"],
            ["--map-size", "abc"],
            ["--map-size", "1000"],
            ["--clock", "manual:yesterday"],
            ["--clock", "fast"],
            ["--sync", "sometimes"],
            ["--release-delay-us", "-1"],
            ["extra-argument"],
            ["--config", os.path.join(d.tmp, "missing.yaml")],
            ["--data"],
        ]
        for args in cases:
            lines, out = run_bad(args, d.tmp)
            check(len(lines) == 1 and lines[0].startswith("claimflowd: "),
                  args, lines)
            eq(out, b"", args)
        # Flags are checked before anything is opened or bound: the data
        # directory was not even created.
        check(not os.path.exists(os.path.join(d.tmp, "var")), "var created")
        # Endpoints are checked by binding them, after the store opened.
        for args in (["--portal", "nonsense"], ["--events", "tcp://256.1.1.1:1"]):
            lines, out = run_bad(args, d.tmp)
            check(len(lines) == 1 and lines[0].startswith("claimflowd: cannot bind"),
                  args, lines)
    finally:
        d.cleanup()


def test_bad_config_exit_2_one_line():
    d = Daemon()
    try:
        bad = {
            "not yaml": "operators: [\n",
            "not a map": "- a\n- b\n",
            "no operators": "max_frame: 1000\n",
            "unknown key": "operators: []\nmax_frames: 1\n",
            "bad role": "operators:\n  - id: hanne\n    role: boss\n",
            "member role": "operators:\n  - id: hanne\n    role: member\n",
            "no role": "operators:\n  - id: hanne\n",
            "bad id": "operators:\n  - id: 'han ne'\n    role: handler\n",
            "reserved id": "operators:\n  - id: system\n    role: handler\n",
            "duplicate": ("operators:\n  - {id: a, role: handler}\n"
                          "  - {id: a, role: auditor}\n"),
            "bad key": "operators:\n  - {id: a, role: handler, key: short}\n",
            "operator key": "operators:\n  - {id: a, role: handler, pin: 1}\n",
            "bad max_frame": "operators: []\nmax_frame: -5\n",
        }
        for name, text in bad.items():
            path = os.path.join(d.tmp, "bad.yaml")
            with open(path, "w") as f:
                f.write(text)
            lines, _ = run_bad(["--config", path], d.tmp)
            check(len(lines) == 1 and lines[0].startswith("claimflowd: " + path),
                  name, lines)
        # Positions are reported line:col.
        with open(os.path.join(d.tmp, "bad.yaml"), "w") as f:
            f.write(bad["bad role"])
        lines, _ = run_bad(["--config", os.path.join(d.tmp, "bad.yaml")], d.tmp)
        check(":3:11:" in lines[0], lines)
        # The YAML reader of workflows and calendars, with its messages: the
        # first problem in the file is the one line.
        path = os.path.join(d.tmp, "bad.yaml")
        yaml_level = [
            ("operators: &ops []\nportal: *ops\n",
             "1:12: anchors and aliases are not supported"),
            ("operators: []\nmax_frame: !!int 5\n", "2:12: tags are not supported"),
            ("operators: []\n---\noperators: []\n", "2:1: only one YAML document per file"),
            ("operators:\n\t- id: a\n", "2:1: tab character; indent with spaces"),
            ("operators: [[[[[[[[[[[[[[[[x]]]]]]]]]]]]]]]]\n",
             "1:27: nesting deeper than 16 levels"),
            ("operators: [\n", "2:1: YAML syntax error: did not find expected node content "
             "(while parsing a flow node at line 2)"),
            ("operators: []\noperators: []\n", "2:1: key given twice"),
        ]
        for text, want in yaml_level:
            with open(path, "w") as f:
                f.write(text)
            lines, _ = run_bad(["--config", path], d.tmp)
            eq(lines, ["claimflowd: %s:%s" % (path, want)], text)
    finally:
        d.cleanup()


def test_bad_workflows_exit_2():
    d = Daemon()
    try:
        wd = os.path.join(d.tmp, "wf")
        os.mkdir(wd)
        with open(os.path.join(wd, "calendars.yaml"), "w") as f:
            f.write(open(os.path.join(WORKFLOWS_DIR, "calendars.yaml")).read())
        with open(os.path.join(wd, "broken.yaml"), "w") as f:
            f.write("workflow: broken\nversion: 1\nstates: {}\n")
        lines, _ = run_bad(["--workflows", wd], d.tmp)
        check(len(lines) >= 2, lines)                 # diagnostics, then why
        check(any("broken.yaml" in ln for ln in lines), lines)
        check(lines[-1].startswith("claimflowd: cannot open"), lines)
        lines, _ = run_bad(["--workflows", os.path.join(d.tmp, "none")], d.tmp)
        check(lines[-1].startswith("claimflowd: cannot open"), lines)
    finally:
        d.cleanup()


def test_port_in_use_exit_2():
    with Daemon() as d:
        os.mkdir(os.path.join(d.tmp, "other"))
        lines, _ = run_bad(["--portal", d.portal], os.path.join(d.tmp, "other"))
        eq(len(lines), 1, lines)
        check("portal" in lines[0] and "bind" in lines[0], lines)


def test_help_and_version():
    r = subprocess.run([CLAIMFLOWD, "--version"], capture_output=True, timeout=10)
    eq(r.returncode, 0)
    eq(r.stdout, b"claimflowd 0.1.0\n")
    r = subprocess.run([CLAIMFLOWD, "--help"], capture_output=True, timeout=10)
    eq(r.returncode, 0)
    check(b"--max-frame" in r.stdout and b"--no-grow" in r.stdout, r.stdout)


def test_started_line():
    with Daemon(clock=T0) as d:
        line = d.started_line
        check(line.startswith("claimflowd: started version 0.1.0 portal=tcp://127.0.0.1:"),
              line)
        check(" workflows=2 " in line and " operators=3 " in line, line)
        check(("data=%s " % d.data_dir) in line, line)
        check(line.endswith("clock=manual:2026-11-24T09:00:00Z"), line)
        check(":*" not in line, line)            # ports resolved
        check(os.path.isdir(d.data_dir), "data dir not created")


def test_no_config_knows_no_operator():
    with Daemon(config=False) as d:
        check(any(ln.startswith("claimflowd: warning: no --config")
                  for ln in d.stderr_lines), d.stderr_lines)
        check(" operators=0 " in d.started_line, d.started_line)
        ok(op(d, None).call({"op": "ping"}))
        err(op(d, "hanne").call({"op": "stats"}), "forbidden")
        # The portal works as ever.
        ok(portal(d).call({"op": "ping"}))


def test_config_roster_and_limits():
    d = Daemon()
    write_config(d.config, [("ida", "supervisor")], "max_frame: 2048\n")
    with d:
        err(op(d, "hanne").call({"op": "stats"}), "forbidden")
        ok(op(d, "ida").call({"op": "stats"}))
        err(portal(d).call({"op": "ping", "pad": "x" * 3000}), "too_large")
    # The flag wins over the file: the engine sees the frame (and refuses
    # the unknown key).
    d = Daemon(args=["--max-frame", "8K"])
    write_config(d.config, [("ida", "supervisor")], "max_frame: 2048\n")
    with d:
        err(portal(d).call({"op": "ping", "pad": "x" * 3000}), "bad_request")


def test_example_config():
    src = os.path.dirname(WORKFLOWS_DIR)
    with Daemon(config=os.path.join(src, "config.example.yaml")) as d:
        for actor in ("hanne", "sofie", "aud"):
            ok(op(d, actor).call({"op": "stats"}))


# ------------------------------------------------------------- signals ---
def test_sigterm_exit_0_and_reopen():
    d = Daemon(clock=T0)
    try:
        d.start()
        p = portal(d)
        m = cpr()
        c = in_review(p, m)
        eq(d.stop(), 0)
        check(d.stderr_lines[-1].startswith("claimflowd: stopped (SIGTERM)"),
              d.stderr_lines[-1])
        d.start()
        got = ok(op(d).call({"op": "get", "claim": c["id"]}))["claim"]
        eq(got, c)
        ev = ok(op(d).call({"op": "history", "claim": c["id"]}))["events"]
        eq(len(ev), 3, ev)
        eq(d.stop(signal.SIGINT), 0)
        check(d.stderr_lines[-1].startswith("claimflowd: stopped (SIGINT)"),
              d.stderr_lines[-1])
    finally:
        d.cleanup()


def test_sigterm_answers_what_it_read():
    d = Daemon(clock=T0)
    try:
        d.start()
        p = portal(d)
        m = cpr()
        n = 200
        for i in range(n):
            p.send({"op": "create", "id": "t-%d" % i, "workflow": "health_claim",
                    "member": m, "data": {"member": m, "treatment": "scan"}})
        first = ok(p.recv(timeout=10))
        d.proc.send_signal(signal.SIGTERM)
        got = [first]
        while True:
            try:
                got.append(p.recv(timeout=2))
            except TimeoutError:
                break
        eq(d._reap(20), 0)
        d.proc = None
        for r in got:
            ok(r)
        d.start()
        h = op(d)
        for r in got:                       # every ok reply is on disk
            ok(h.call({"op": "get", "claim": r["claim"]["id"]}))
    finally:
        d.cleanup()


def test_sigkill_after_ok_is_durable():
    # Both sync modes: the default (the syncer thread fsyncs the meta page
    # before the reply leaves) and the commit doing both fsyncs itself.
    for mode in ("deferred", "immediate"):
        _sigkill_after_ok_is_durable(["--sync", mode])


def _sigkill_after_ok_is_durable(args):
    d = Daemon(clock=T0, args=args)
    try:
        d.start()
        p = portal(d)
        m = fnr()
        c = create(p, m, "chiropractic")
        r = ok(p.call({"op": "consent.give", "id": new_id(), "member": m}))
        eq(r["moved"], [c["id"]], r)
        eq(d.kill(), -signal.SIGKILL)
        d.start()
        got = ok(portal(d).call({"op": "get", "member": m, "claim": c["id"]}))["claim"]
        eq(got["state"], "in_review", got)
        ev = ok(op(d).call({"op": "history", "claim": c["id"]}))["events"]
        eq([e["seq"] for e in ev], [1, 2], ev)
    finally:
        d.cleanup()


def test_timers_due_while_down_fire_at_start():
    d = Daemon(clock=T0)
    try:
        d.start()
        c = in_review(portal(d), cpr())
        eq(d.stop(), 0)
        # Down for three days: both SLA timers fell due meanwhile.
        d.clock = "2026-11-27T09:00:00Z"
        d.start()
        got = ok(op(d).call({"op": "get", "claim": c["id"]}))["claim"]
        eq(sorted(got["flags"]), ["sla.breached", "sla.warning"], got)
        eq(got["timers"], [], got)
        ev = ok(op(d).call({"op": "history", "claim": c["id"]}))["events"]
        late = {e["data"]["timer"]: e["data"]["late_seconds"] for e in ev[-2:]}
        eq(late, {"decision_warning": 2 * 86400, "decision_due": 86400}, ev)
        eq([e["at"] for e in ev[-2:]], ["2026-11-27T09:00:00Z"] * 2, ev)
    finally:
        d.cleanup()


def test_logs_carry_no_personal_data():
    with Daemon(clock=T0) as d:
        p, h = portal(d), op(d)
        m = cpr(24, 12, 1961, 1357)
        c = in_review(p, m)
        send(h, c["id"], "decision.denied", {"reason": "Secret-Reason-XYZ"})
        p.call({"op": "010190-1234"})
        p.call({"op": "consent.give", "id": new_id(), "member": "311399-9999"})
        h.call({"op": "get", "claim": "Secret-Claim"})
    text = "\n".join(d.stderr_lines)
    for s in (m, m.replace("-", ""), "Secret", "010190", "311399"):
        check(s not in text, s, d.stderr_lines)


TICKING = """\
workflow: ticking
version: 1
calendar: dk
created_by: [member]
data:
  member: {type: person_id, required: true}
states:
  waiting:
    initial: true
    timers:
      soon: {after: 1m, send: tick}
    on:
      tick: {to: done, by: [system]}
  done: {final: true}
"""


def test_real_clock_timer_fires_in_the_loop():
    # The shortest timer is a minute.  Create the claim on a manual clock
    # set 56 s in the past, then restart on the real clock: the timer falls
    # due 4 s later, and the loop must fire and publish it with no request
    # arriving to wake it.  Under valgrind (CF_TIMEOUT_SCALE) a restart takes
    # tens of seconds: the timer then falls due up to 58 s later.
    lead = min(4 * harness.TIMEOUT_SCALE, 58)
    d = Daemon()
    try:
        wd = os.path.join(d.tmp, "workflows")
        shutil.copytree(WORKFLOWS_DIR, wd)
        with open(os.path.join(wd, "ticking.yaml"), "w") as f:
            f.write(TICKING)
        d.workflows_dir = wd
        past = datetime.datetime.now(datetime.timezone.utc) - \
            datetime.timedelta(seconds=60 - lead)
        d.clock = past.strftime("%Y-%m-%dT%H:%M:%SZ")
        d.start()
        m = cpr()
        c = ok(portal(d).call({"op": "create", "id": new_id(), "workflow": "ticking",
                               "member": m, "data": {"member": m}}))["claim"]
        eq(c["state"], "waiting", c)
        d.clock = None
        d.restart()
        sub = Subscriber(d, "ticking/")
        got = ok(op(d).call({"op": "get", "claim": c["id"]}))["claim"]
        eq(got["state"], "waiting", got)           # not yet due
        topic, ev = sub.next(timeout=15)
        eq(topic, "ticking/tick")
        eq((ev["claim"], ev["actor"], ev["to"]), (c["id"], "system", "done"), ev)
        check(ev["data"]["late_seconds"] <= 2 * harness.TIMEOUT_SCALE, ev)
        got = ok(op(d).call({"op": "get", "claim": c["id"]}))["claim"]
        eq(got["state"], "done", got)
        eq(d.stop(), 0)
    finally:
        d.cleanup()


def test_sigusr1_logs_the_loop_profile_and_commits():
    """SIGUSR1: one line of the loop's stages and every commit counted in
    the duration histogram (claimflow-bench reads it around each window)."""
    d = Daemon(clock=T0)
    try:
        d.start()
        p = portal(d)
        m = cpr()
        in_review(p, m)          # consent, create, attach: three commits at least
        d.proc.send_signal(signal.SIGUSR1)
        lines = d.log_lines("claimflowd: loop us: ")
        eq(len(lines), 1, lines)
        fields = dict(f.split("=", 1) for f in lines[0].split("loop us: ")[1].split())
        eq(sorted(fields), ["batches", "commit", "commits", "fire", "other", "poll", "recv",
                            "run", "stage"], lines[0])
        check(int(fields["batches"]) >= 3, lines[0])
        buckets = [b.split(":") for b in fields["commits"].split(",")]
        check(all(0 <= int(b) < 64 for b, _ in buckets), lines[0])
        check(sum(int(n) for _, n in buckets) >= 3, lines[0])
        check(m not in lines[0], "a person id in the profile line")
    finally:
        d.cleanup()


if __name__ == "__main__":
    run_tests(globals())

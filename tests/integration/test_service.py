"""Integration: claimflowd as systemd sees it (adapters/sdnotify.c).

The test plays systemd's part: it binds the unix datagram socket named by
$NOTIFY_SOCKET and reads what the real daemon sends - READY=1 once the
sockets are bound and the store is open (a request right after it is
answered), WATCHDOG=1 while $WATCHDOG_USEC is set (and not for another
process's $WATCHDOG_PID), STOPPING=1 at SIGTERM, nothing else.  With
$JOURNAL_STREAM naming its stderr, each log line starts with its syslog
priority; with a $JOURNAL_STREAM that is not its stderr, lines stay plain."""

import os
import signal
import socket
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CLAIMFLOWD, WORKFLOWS_DIR, Daemon, T0, check, eq, ok,  # noqa: E402
                     portal, run_tests)

READY = "READY=1\nSTATUS=serving"
STOPPING = "STOPPING=1\nSTATUS=stopping"


class NotifySocket:
    """What systemd listens on: a unix datagram socket (a path, or an
    abstract name given as '@name')."""

    def __init__(self, name):
        self.name = name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + name[1:] if name.startswith("@") else name)

    def next(self, timeout=20):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096).decode()
        except socket.timeout:
            raise TimeoutError("no notification within %ss" % timeout) from None

    def rest(self):
        """Every datagram already waiting."""
        out = []
        self.sock.setblocking(False)
        try:
            while True:
                out.append(self.sock.recv(4096).decode())
        except BlockingIOError:
            return out

    def close(self):
        self.sock.close()


def test_ready_when_serving_and_stopping_at_sigterm():
    d = Daemon(clock=T0)
    ns = NotifySocket(os.path.join(d.tmp, "notify"))
    d.env["NOTIFY_SOCKET"] = ns.name
    try:
        with d:
            eq(ns.next(), READY)
            # Ready means served: a request right after it is answered.
            eq(ok(portal(d).call({"op": "ping"}))["now"], T0)
            eq(d.stop(), 0)
            eq(ns.rest(), [STOPPING])
    finally:
        ns.close()


def test_abstract_notify_socket():
    name = "@claimflow-test-%d-%s" % (os.getpid(), os.urandom(4).hex())
    ns = NotifySocket(name)
    try:
        with Daemon(clock=T0, env={"NOTIFY_SOCKET": name}) as d:
            eq(ns.next(), READY)
            eq(d.stop(), 0)
            eq(ns.rest(), [STOPPING])
    finally:
        ns.close()


def test_watchdog_pings_at_half_the_interval():
    d = Daemon(clock=T0, env={"WATCHDOG_USEC": "200000"})
    ns = NotifySocket(os.path.join(d.tmp, "notify"))
    d.env["NOTIFY_SOCKET"] = ns.name
    try:
        with d:
            eq(ns.next(), READY)
            eq(ns.next(), "WATCHDOG=1")
            eq(ns.next(), "WATCHDOG=1")
            eq(d.stop(), 0)
            rest = ns.rest()
            eq(rest[-1], STOPPING, rest)
            eq(set(rest[:-1]) <= {"WATCHDOG=1"}, True, rest)
    finally:
        ns.close()


def test_no_watchdog_for_another_process():
    # WATCHDOG_PID names another process (as when a child inherits the
    # variables): the watchdog is not ours to feed.
    d = Daemon(clock=T0, env={"WATCHDOG_USEC": "100000", "WATCHDOG_PID": "1"})
    ns = NotifySocket(os.path.join(d.tmp, "notify"))
    d.env["NOTIFY_SOCKET"] = ns.name
    try:
        with d:
            eq(ns.next(), READY)
            for _ in range(5):               # serve a while: a few intervals
                ok(portal(d).call({"op": "ping"}))
            eq(d.stop(), 0)
            eq(ns.rest(), [STOPPING])
    finally:
        ns.close()


def test_unusable_notify_socket_is_a_warning():
    for value, why in (("relative/notify", "not an absolute path or an abstract socket name"),
                       ("/nonexistent/claimflow/notify", "No such file or directory")):
        with Daemon(clock=T0, env={"NOTIFY_SOCKET": value}) as d:
            want = "claimflowd: warning: cannot notify systemd: NOTIFY_SOCKET: " + why
            eq([ln for ln in d.stderr_lines if "notify" in ln], [want], d.stderr_lines)
            ok(portal(d).call({"op": "ping"}))


# ------------------------------------------------------------- journal ---
def run_on_journal(args):
    """claimflowd with stderr on a pipe that $JOURNAL_STREAM names, as
    systemd's stdout/stderr stream to journald; returns (proc, lines, the
    reader thread), lines filling as the daemon writes."""
    r, w = os.pipe()
    st = os.fstat(w)
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    proc = subprocess.Popen([CLAIMFLOWD] + args, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=w, env=env)
    os.close(w)
    lines, started = [], threading.Event()

    def reader():
        with os.fdopen(r, "rb") as f:
            for raw in f:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                lines.append(line)
                sys.stderr.write("  [claimflowd] %s\n" % line)
                if "claimflowd: started" in line:
                    started.set()
        started.set()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    started.wait(20)
    return proc, lines, t


def test_journal_lines_carry_their_priority():
    d = Daemon(clock=T0)
    try:
        args = ["--data", d.data_dir, "--workflows", WORKFLOWS_DIR,
                "--portal", "tcp://127.0.0.1:*", "--operator", "tcp://127.0.0.1:*",
                "--events", "tcp://127.0.0.1:*", "--clock", "manual:" + T0]
        proc, lines, t = run_on_journal(args)
        proc.send_signal(signal.SIGTERM)
        eq(proc.wait(20), 0)
        t.join(5)
        eq([ln[:30] for ln in lines], [
            "<4>claimflowd: warning: no --c",
            "<4>claimflowd: warning: CURVE ",
            "<6>claimflowd: started version",
            "<6>claimflowd: stopped (SIGTER",
        ], lines)
        # A start-up failure has no level word: it is an error.
        proc, lines, t = run_on_journal(args + ["--clock", "sometime"])
        eq(proc.wait(20), 2)
        t.join(5)
        eq(lines, ["<3>claimflowd: --clock: expected 'real' or 'manual:' and an RFC 3339 "
                   "time, e.g. manual:2026-11-24T09:00:00Z (see claimflowd --help)"])
    finally:
        d.cleanup()


def test_plain_lines_when_stderr_is_not_the_journal():
    # A JOURNAL_STREAM inherited by a daemon whose stderr went elsewhere.
    with Daemon(clock=T0, env={"JOURNAL_STREAM": "1:1"}) as d:
        check(d.started_line.startswith("claimflowd: started"), d.started_line)
        check(all(ln.startswith("claimflowd: ") for ln in d.stderr_lines), d.stderr_lines)


if __name__ == "__main__":
    run_tests(globals())

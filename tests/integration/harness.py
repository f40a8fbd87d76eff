"""harness.py: run the real claimflowd over real ZeroMQ sockets.

Shared by the daemon's integration tests (test_*.py beside this file) and
claimctl's.  Everything a test needs and nothing it could get wrong twice:

    from harness import Daemon, portal, op, cpr, fnr, new_id, run_tests, check

    def test_ping():
        with Daemon() as d:
            r = op(d).call({"op": "ping"})
            check(r["ok"] is True, r)

    if __name__ == "__main__":
        run_tests(globals())

Daemon starts the binary from $CF_BUILDDIR/adapters/claimflowd on a fresh
LMDB directory (tempfile.mkdtemp), binds every socket to
tcp://127.0.0.1:* and reads the endpoints back from its `started` line on
stderr (docs/operations.md).  Its stderr is collected in a thread
(d.stderr_lines) so the pipe never fills and a test can check what it logged.

Client is the client module's claimflow.Client (clients/python/claimflow.py),
a DEALER that sends ["", request] (REQ framing); its call() returns the
decoded reply map, ok or not, and raises TimeoutError when no reply comes.
"""

import datetime
import itertools
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback

try:
    import msgpack
    import zmq
except ImportError:
    # A python3 earlier in PATH (pyenv, a venv) may lack Debian's
    # python3-zmq/python3-msgpack: run the test again with the system one.
    if os.path.exists("/usr/bin/python3") and \
            os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
            and not os.environ.get("CF_REEXEC"):
        os.environ["CF_REEXEC"] = "1"
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    raise

SRC_DIR = os.environ.get("CF_SRCDIR") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD_DIR = os.environ.get("CF_BUILDDIR") or os.path.join(SRC_DIR, "build")
CLAIMFLOWD = os.path.join(BUILD_DIR, "adapters", "claimflowd")
CLAIMCTL = os.path.join(BUILD_DIR, "cli", "claimctl")
CF_REPLAY = os.path.join(BUILD_DIR, "tests", "cf_replay")
# CF_WRITESETS=1: every daemon on a fresh store records its write sets
# (--record-writesets) and, when it stops cleanly, they are replayed into an
# empty store that must hold exactly the same (the write-set test,
# docs/storage.md).
WRITESETS = os.environ.get("CF_WRITESETS") == "1"
WORKFLOWS_DIR = os.path.join(SRC_DIR, "workflows")

# The client module the portal backends use (clients/python/claimflow.py):
# the tests' Client below is one.
sys.path.insert(0, os.path.join(SRC_DIR, "clients", "python"))
import claimflow  # noqa: E402

# The valgrind run (tests/reliability/valgrind_integration.py) names a build
# without sanitizers (CF_DAEMON_BINARY), a command to put in front of the
# daemon (CF_DAEMON_WRAPPER) and a factor for every timeout below and in
# Client/Subscriber (CF_TIMEOUT_SCALE).  Unset, nothing changes.
CLAIMFLOWD = os.environ.get("CF_DAEMON_BINARY") or CLAIMFLOWD
DAEMON_WRAPPER = shlex.split(os.environ.get("CF_DAEMON_WRAPPER", ""))
TIMEOUT_SCALE = float(os.environ.get("CF_TIMEOUT_SCALE") or 1)

# The manual clock most tests run on: a Tuesday morning, Danish winter time.
T0 = "2026-11-24T09:00:00Z"

DEFAULT_OPERATORS = [
    ("hanne", "handler"),
    ("sofie", "supervisor"),
    ("aud", "auditor"),
]

START_TIMEOUT = 20.0 * TIMEOUT_SCALE   # ASan builds start slowly on a busy CI machine
STOP_TIMEOUT = 20.0 * TIMEOUT_SCALE

_ctx = zmq.Context.instance()
_ids = itertools.count(1)


# ------------------------------------------------------------------ ids ---
def new_id(prefix="req"):
    """A fresh idempotency id, unique within this process."""
    return "%s-%d-%d" % (prefix, os.getpid(), next(_ids))


def cpr(day=1, month=1, year=1990, serial=1234, dash=True):
    """A Danish CPR number for a real date (no mod-11 check applies).
    The 7th digit decides the century; serial 0000-3999 means 1900-1999
    (and 2000-2036 for 4/9), which is all a test needs for 1937-1999."""
    assert 1900 <= year <= 1999 and 0 <= serial <= 3999
    datetime.date(year, month, day)     # raises for an unreal date
    s = "%02d%02d%02d" % (day, month, year % 100)
    return s + ("-" if dash else "") + "%04d" % serial


def _fnr_controls(nine):
    w1 = [3, 7, 6, 1, 8, 9, 4, 5, 2]
    w2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]
    d = [int(c) for c in nine]
    k1 = 11 - sum(a * b for a, b in zip(w1, d)) % 11
    k1 = 0 if k1 == 11 else k1
    if k1 == 10:
        return None
    d.append(k1)
    k2 = 11 - sum(a * b for a, b in zip(w2, d)) % 11
    k2 = 0 if k2 == 11 else k2
    if k2 == 10:
        return None
    return "%d%d" % (k1, k2)


def fnr(day=15, month=6, year=1985, start=400, dnumber=False):
    """A valid Norwegian fødselsnummer (or D-number) with both mod-11
    control digits right.  Individual numbers 000-499 are 1900-1999,
    500-999 2000-2039.  The first individual number from `start` (at
    least 500 for the 2000s) whose controls exist is used."""
    assert 1900 <= year <= 2039
    datetime.date(year, month, day)
    dd = day + 40 if dnumber else day
    if year >= 2000:
        start = max(start, 500)
    for ind in range(start, 500 if year < 2000 else 1000):
        nine = "%02d%02d%02d%03d" % (dd, month, year % 100, ind)
        k = _fnr_controls(nine)
        if k is not None:
            return nine + k
    raise ValueError("no valid individual number from %d" % start)


def fnr_bad(**kw):
    """A fødselsnummer with a wrong second control digit."""
    s = fnr(**kw)
    return s[:10] + str((int(s[10]) + 1) % 10)


# ---------------------------------------------------------------- daemon ---
def write_config(path, operators=DEFAULT_OPERATORS, extra=""):
    """Write a claimflowd --config file with the given (id, role) roster."""
    with open(path, "w") as f:
        f.write("operators:\n")
        for oid, role in operators:
            f.write("  - id: %s\n    role: %s\n" % (oid, role))
        f.write(extra)
    return path


class Daemon:
    """One claimflowd process on its own data directory.

    Daemon(clock=T0) runs it with `--clock manual:T0`; config=None uses a
    config file with DEFAULT_OPERATORS, config=False passes no --config;
    args are extra flags for every start; env, extra environment variables
    (NOTIFY_SOCKET, ...).  The data directory is removed by cleanup()
    (called by __exit__) unless keep=True."""

    def __init__(self, clock=None, config=None, args=(), data_dir=None,
                 workflows_dir=None, keep=False, binary=None, env=None):
        self.binary = binary or CLAIMFLOWD
        self.tmp = tempfile.mkdtemp(prefix="cf-it-")
        self.data_dir = data_dir or os.path.join(self.tmp, "var")
        self.workflows_dir = workflows_dir or WORKFLOWS_DIR
        if config is None:
            config = write_config(os.path.join(self.tmp, "config.yaml"))
        self.config = config
        self.clock = clock
        self.args = list(args)
        self.env = dict(env or {})
        self.keep = keep
        self.proc = None
        self.portal = self.operator = self.events = self.http = None
        self.started_line = None
        self.stderr_lines = []
        self._reader = None
        self._started = threading.Event()
        self._clients = []
        self.wslog = (os.path.join(self.tmp, "writesets.log")
                      if WRITESETS and data_dir is None else None)

    # -- process --
    def command(self, extra_args=()):
        cmd = [self.binary, "--data", self.data_dir,
               "--workflows", self.workflows_dir,
               "--portal", "tcp://127.0.0.1:*",
               "--operator", "tcp://127.0.0.1:*",
               "--events", "tcp://127.0.0.1:*"]
        if self.config:
            cmd += ["--config", self.config]
        if self.clock:
            cmd += ["--clock", "manual:" + self.clock]
        if self.wslog:
            cmd += ["--record-writesets", self.wslog]
        return DAEMON_WRAPPER + cmd + self.args + list(extra_args)

    def _read_stderr(self, proc):
        for raw in proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.stderr_lines.append(line)
            sys.stderr.write("  [claimflowd] %s\n" % line)
            if line.startswith("claimflowd: started"):
                self.started_line = line
                self._started.set()
        self._started.set()

    def start(self, extra_args=()):
        """Start the daemon and wait for its `started` line; returns self.
        Raises RuntimeError (with what it printed) if it exits instead."""
        assert self.proc is None, "already running"
        self._last_extra = list(extra_args)
        self._started.clear()
        self.started_line = None
        self.proc = subprocess.Popen(self.command(extra_args),
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     env=dict(os.environ, **self.env))
        self._reader = threading.Thread(target=self._read_stderr,
                                        args=(self.proc,), daemon=True)
        self._reader.start()
        self._started.wait(START_TIMEOUT)
        if self.started_line is None:
            try:
                self.proc.wait(2)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            rc = self.proc.returncode
            self.proc = None
            raise RuntimeError("claimflowd did not start (exit %s): %s"
                               % (rc, "\n".join(self.stderr_lines[-20:])))
        m = dict(re.findall(r"(\w+)=(\S+)", self.started_line))
        self.portal, self.operator, self.events = \
            m["portal"], m["operator"], m["events"]
        self.http = m.get("http")         # with `http:` in the config
        return self

    def _close_clients(self):
        for c in self._clients:
            c.close()
        self._clients = []

    def _reap(self, timeout):
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("claimflowd did not stop within %ss" % timeout)
        finally:
            if self._reader:
                self._reader.join(5)
            self.proc = None
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Send sig (SIGTERM) and wait; returns the exit code (negative:
        killed by that signal, as subprocess reports it)."""
        if self.proc is None:
            return None
        self._close_clients()
        self.proc.send_signal(sig)
        return self._reap(timeout)

    def kill(self):
        """SIGKILL: no chance to clean up (the durability tests)."""
        if self.proc is None:
            return None
        self._close_clients()
        self.proc.kill()
        return self._reap(STOP_TIMEOUT)

    def restart(self, extra_args=None):
        """Stop (SIGTERM) if running, then start on the same data directory.
        New endpoints: make new clients after it."""
        rc = self.stop()
        if rc not in (None, 0):
            raise AssertionError("claimflowd exited %s on SIGTERM:\n%s"
                                 % (rc, "\n".join(self.stderr_lines[-40:])))
        return self.start(self._last_extra if extra_args is None
                          else extra_args)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def log_lines(self, needle, timeout=10):
        """The stderr lines containing needle, once there is one (the line is
        written before the reply that follows it is sent, but this process
        reads stderr on another thread), or [] after timeout."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while True:
            got = [ln for ln in self.stderr_lines if needle in ln]
            if got or time.monotonic() > deadline:
                return got
            time.sleep(0.01)

    def cleanup(self):
        try:
            if self.proc is not None:
                self.kill()
        finally:
            if not self.keep:
                shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        try:
            if self.proc is not None:
                rc = self.stop()
                # A sanitizer report makes the exit code non-zero: a leak or
                # UB found at shutdown fails the test that caused it.
                if exc[0] is None and rc != 0:
                    raise AssertionError("claimflowd exited %s on SIGTERM:\n%s"
                                         % (rc, "\n".join(self.stderr_lines[-40:])))
            if exc[0] is None and self.wslog:
                self.check_writesets()
        finally:
            self.cleanup()

    def check_writesets(self):
        """Replay the recorded write sets into an empty store and check that
        it holds exactly what the daemon's store holds: every database's
        logical content (mdb_dump, without the map size) and the batch
        sequence.  Returns the sequence."""
        replay = os.path.join(self.tmp, "replay")
        shutil.rmtree(replay, ignore_errors=True)
        r = subprocess.run([CF_REPLAY, self.wslog, replay, self.data_dir],
                           capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise AssertionError("cf_replay failed: %s" % r.stderr)
        seq = int(r.stdout.split()[1])

        def dump(d):
            out = subprocess.run(["mdb_dump", "-a", d], capture_output=True,
                                 timeout=120, check=True).stdout
            return [ln for ln in out.split(b"\n") if not ln.startswith(b"mapsize=")]
        a, b = dump(self.data_dir), dump(replay)
        if a != b:
            db = "?"
            for x, y in zip(a, b):
                if x.startswith(b"database="):
                    db = x.decode()
                if x != y:
                    break
            raise AssertionError("the replayed write sets differ from the store "
                                 "(%d vs %d dump lines; first difference in %s)"
                                 % (len(a), len(b), db))
        if seq < 2:
            raise AssertionError("replay reached seq %d only" % seq)
        return seq
        return False

    # -- clients --
    def client(self, endpoint, defaults=None):
        c = Client(endpoint, defaults)
        self._clients.append(c)
        return c


# ---------------------------------------------------------------- client ---
class Client(claimflow.Client):
    """The client module's Client (clients/python/claimflow.py) as the tests
    use it: no retries (a test that gets no reply must see TimeoutError, not
    a resend), timeouts scaled by CF_TIMEOUT_SCALE, and replies returned as
    maps, ok or not, for the test to check (err(), ok()).  `defaults` are the
    module's session fields: merged into every request that does not set the
    key itself (op() sets `actor`).  sock= adopts a socket made elsewhere
    (test_security's CURVE clients with monitors)."""

    def __init__(self, endpoint, defaults=None, sock=None):
        super().__init__(endpoint, session=defaults, timeout=5 * TIMEOUT_SCALE,
                         retries=0, context=_ctx, socket=sock)

    @property
    def sock(self):
        return self.socket

    @property
    def defaults(self):
        return self.session

    def full_request(self, req):
        full = super().full_request(req)
        # Clock ops are writing ops (idempotent by `id`): give them a fresh
        # id, as a real client would, unless the test chose one.
        if str(full.get("op", "")).startswith("clock.") and "id" not in full:
            full["id"] = new_id()
        return full

    def send(self, req):
        """Send one request without waiting (pipelining); see recv()."""
        self.sock.send_multipart([b"", pack(self.full_request(req))])

    def send_raw(self, frames):
        """Send frames exactly as given (bytes each); no delimiter added."""
        self.sock.send_multipart([bytes(f) for f in frames])

    def recv_raw(self, timeout=5):
        """The next reply's frames, or TimeoutError."""
        if not self.sock.poll(int(timeout * TIMEOUT_SCALE * 1000)):
            raise TimeoutError("no reply from %s within %ss"
                               % (self.endpoint, timeout))
        return self.sock.recv_multipart()

    def recv(self, timeout=5):
        """The next reply, decoded (its last frame)."""
        return unpack(self.recv_raw(timeout)[-1])

    def call(self, req, timeout=5):
        """The reply to req (claimflow.Client.request: a reply carrying
        another request's id is dropped); claimflow.Timeout, a TimeoutError,
        when none comes."""
        return self.request(req, timeout=timeout * TIMEOUT_SCALE, retries=0)

    def call_raw(self, frames, timeout=5):
        """send_raw(frames), then the decoded reply."""
        self.send_raw(frames)
        return self.recv(timeout)


def unpack(frame):
    return msgpack.unpackb(frame, raw=False, strict_map_key=False)


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def portal(d):
    """A client of d's portal endpoint (acts as role member)."""
    return d.client(d.portal)


def op(d, actor="hanne"):
    """A client of d's operator endpoint whose requests carry `actor`
    (pass actor=None for none)."""
    return d.client(d.operator, {"actor": actor} if actor else None)


class Subscriber:
    """A SUB socket on d's events endpoint; next() returns (topic, event)."""

    def __init__(self, d, topic=""):
        self.sock = _ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        self.sock.connect(d.events)
        d._clients.append(self)
        time.sleep(0.2)   # PUB/SUB slow joiner: let the subscription arrive

    def next(self, timeout=5):
        if not self.sock.poll(int(timeout * TIMEOUT_SCALE * 1000)):
            raise TimeoutError("no event within %ss" % timeout)
        frames = self.sock.recv_multipart()
        assert len(frames) == 2, frames
        return frames[0].decode(), unpack(frames[1])

    def close(self):
        if self.sock is not None:
            self.sock.close(0)
            self.sock = None


# ------------------------------------------------------------ assertions ---
def check(cond, *what):
    """assert that prints what it was given (the reply) when it fails."""
    if not cond:
        raise AssertionError(" ".join(repr(w) for w in what) or "check failed")


def eq(got, want, *what):
    if got != want:
        raise AssertionError("got %r, want %r %s"
                             % (got, want, " ".join(repr(w) for w in what)))


def ok(reply):
    """The reply, after checking ok: true (prints it otherwise)."""
    if not isinstance(reply, dict) or reply.get("ok") is not True:
        raise AssertionError("expected ok reply, got %r" % (reply,))
    return reply


def err(reply, code):
    """The reply's error message, after checking ok: false with code."""
    if (not isinstance(reply, dict) or reply.get("ok") is not False
            or not isinstance(reply.get("error"), dict)
            or reply["error"].get("code") != code):
        raise AssertionError("expected error %s, got %r" % (code, reply))
    return reply["error"].get("message", "")


# ---------------------------------------------------------------- runner ---
def run_tests(namespace, argv=None):
    """Run every test_* function of namespace (in definition order), or
    only those named on the command line; print one line per test and
    `N passed, N failed`; exit 1 on any failure, 77 (meson's skip) when
    the binary under test does not exist."""
    argv = sys.argv[1:] if argv is None else argv
    if not os.access(CLAIMFLOWD, os.X_OK):
        print("SKIP: %s not built" % CLAIMFLOWD)
        sys.exit(77)
    tests = [(n, f) for n, f in namespace.items()
             if n.startswith("test_") and callable(f)]
    if argv:
        tests = [(n, f) for n, f in tests if n in argv]
    passed = failed = 0
    for name, fn in tests:
        t = time.monotonic()
        try:
            fn()
        except Exception:
            failed += 1
            print("FAIL %s (%.1fs)" % (name, time.monotonic() - t))
            traceback.print_exc(file=sys.stdout)
        else:
            passed += 1
            print("ok   %s (%.1fs)" % (name, time.monotonic() - t))
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)

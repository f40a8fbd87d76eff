"""The daemon's integration tests (tests/integration/test_*.py) with every
claimflowd they start running under valgrind memcheck (docs/RELIABILITY.md,
"Memory errors"); the long form's answer to "ASan cannot see what it does
not instrument" (libzmq, LMDB, libsodium, msgpack-c are not built with it).

    valgrind_integration.py [TEST_SCRIPT...]

Valgrind cannot run an ASan binary, so the daemon comes from
CF_DAEMON_BINARY, or else this build's claimflowd when it has no sanitizer,
or else CF_PLAIN_BUILDDIR's (`./dev test --suite slow` builds build/plain
without sanitizers and exports it); otherwise the test is skipped (exit 77)
with a line saying how to run it:

    ./dev test --suite slow valgrind_integration
    # or by hand, from the ASan test build:
    meson setup build/plain --buildtype=debugoptimized -Dfuzz=disabled
    meson compile -C build/plain adapters/claimflowd
    CF_PLAIN_BUILDDIR=$PWD/build/plain meson test -C build/test --suite slow valgrind_integration

harness.py puts CF_DAEMON_WRAPPER in front of each daemon and stretches its
timeouts by CF_TIMEOUT_SCALE.  Valgrind writes to a log file per process
(not the daemon's stderr, which the tests read); a daemon with a memory
error or a definite leak exits 99, which fails the test that stopped it, and
every log is scanned afterwards as well (a daemon killed with SIGKILL
reports its errors but no exit code).  The claimctl binaries the tests run
are not wrapped.
"""

import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("CF_SRCDIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("CF_BUILDDIR") or os.path.join(SRC, "build")
SCALE = "30"


def sanitized(path):
    with open(path, "rb") as f:
        return b"__asan_init" in f.read()


def main(argv):
    binary = os.environ.get("CF_DAEMON_BINARY") or os.path.join(BUILD, "adapters", "claimflowd")
    if not os.access(binary, os.X_OK):
        print("SKIP: %s not built" % binary)
        return 77
    plain = os.path.join(os.environ.get("CF_PLAIN_BUILDDIR") or "/nonexistent",
                         "adapters", "claimflowd")
    if sanitized(binary) and os.access(plain, os.X_OK) and not sanitized(plain):
        binary = plain
    if sanitized(binary):
        print("SKIP: %s is built with ASan, which valgrind cannot run: run "
              "`./dev test --suite slow` (it builds build/plain without sanitizers "
              "and exports CF_PLAIN_BUILDDIR), or set CF_PLAIN_BUILDDIR or "
              "CF_DAEMON_BINARY to such a build" % binary)
        return 77
    if shutil.which("valgrind") is None:
        print("SKIP: valgrind is not installed")
        return 77
    scripts = argv or sorted(glob.glob(os.path.join(SRC, "tests", "integration", "test_*.py")))
    logs = tempfile.mkdtemp(prefix="cf-valgrind-")
    env = dict(os.environ)
    env.update({
        "CF_DAEMON_BINARY": binary,
        "CF_DAEMON_WRAPPER": " ".join([
            "valgrind", "--tool=memcheck", "--error-exitcode=99",
            "--leak-check=full", "--errors-for-leak-kinds=definite",
            "--show-leak-kinds=definite", "--track-fds=no",
            "--log-file=%s/vg.%%p.log" % logs]),
        "CF_TIMEOUT_SCALE": SCALE,
    })
    print("claimflowd: %s\nvalgrind logs: %s" % (binary, logs))
    failed = []
    for script in scripts:
        t = time.monotonic()
        r = subprocess.run([sys.executable, script], env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out = r.stdout.decode("utf-8", "replace")
        summary = (re.findall(r"^\d+ passed, \d+ failed$", out, re.M) or ["?"])[-1]
        print("%-4s %s: %s (%.0fs)" % ("ok" if r.returncode in (0, 77) else "FAIL",
                                        os.path.basename(script), summary,
                                        time.monotonic() - t))
        if r.returncode not in (0, 77):
            failed.append(script)
            print("\n".join("    " + x for x in out.splitlines()
                            if not x.startswith("  [claimflowd]"))[-6000:])
        sys.stdout.flush()

    runs = sorted(glob.glob(os.path.join(logs, "vg.*.log")))
    bad = []
    for path in runs:
        with open(path, errors="replace") as f:
            text = f.read()
        m = re.findall(r"ERROR SUMMARY: (\d+) errors", text)
        if m and int(m[-1]) > 0:
            bad.append(path)
            print("valgrind errors in %s:\n%s" % (path, text[-4000:]))
    print("%d daemons ran under valgrind, %d with errors" % (len(runs), len(bad)))
    ok = not failed and not bad and runs
    if ok:
        shutil.rmtree(logs, ignore_errors=True)
    else:
        print("valgrind logs kept in %s" % logs)
    print("%d passed, %d failed" % (1 if ok else 0, 0 if ok else 1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

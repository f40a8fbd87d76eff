"""Package: `./dev package` builds the Debian package; this checks what it
built (docs/operations.md, Package).

Suite `slow` (the build alone takes about a minute on two cores):
    meson test -C build/test --suite slow package

- the .deb's contents (dpkg-deb -c): exactly the files, modes and owners
  listed in CONTENTS;
- its control data: conffiles, dependencies, the postinst that makes the
  data directory 0700 for the claimflow user and creates that user from
  sysusers.d;
- lintian: no error or warning (./dev package runs it with --fail-on; the
  two overridden tags are explained in debian/claimflow.lintian-overrides);
- the unit: the hardening the issue asks for, and `systemd-analyze verify`
  passes on it (with ExecStart pointing at the extracted binary, since the
  package is not installed on the machine that builds it);
- the packaged claimflowd, with the packaged workflows and config, starts
  and serves a portal request, and says READY=1 on a NOTIFY_SOCKET.
"""

import os
import re
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
from harness import SRC_DIR, Daemon, check, eq, ok, portal, run_tests  # noqa: E402

# (mode, owner, path) of every file and link in the package; directories
# are checked by their mode only (the DIRS table).
CONTENTS = [
    ("-rw-r--r--", "root/root", "./etc/claimflow/claimflowd.yaml"),
    ("-rw-r--r--", "root/root", "./lib/systemd/system/claimflowd.service"),
    ("-rwxr-xr-x", "root/root", "./usr/bin/claimctl"),
    ("-rwxr-xr-x", "root/root", "./usr/bin/claimflowd"),
    ("-rw-r--r--", "root/root", "./usr/lib/sysusers.d/claimflow.conf"),
    ("-rw-r--r--", "root/root", "./usr/share/claimflow/config.example.yaml"),
    ("-rw-r--r--", "root/root", "./usr/share/claimflow/workflows/calendars.yaml"),
    ("-rw-r--r--", "root/root", "./usr/share/claimflow/workflows/health_claim.yaml"),
    ("-rw-r--r--", "root/root", "./usr/share/claimflow/workflows/inquiry.yaml"),
    ("-rw-r--r--", "root/root", "./usr/share/doc/claimflow/SECURITY.md"),
    ("-rw-r--r--", "root/root", "./usr/share/doc/claimflow/changelog.gz"),
    ("-rw-r--r--", "root/root", "./usr/share/doc/claimflow/copyright"),
    ("-rw-r--r--", "root/root", "./usr/share/doc/claimflow/operations.md"),
    ("-rw-r--r--", "root/root", "./usr/share/lintian/overrides/claimflow"),
]

UNIT_MUST = [
    "Type=notify", "WatchdogSec=30s", "User=claimflow", "Group=claimflow",
    "ExecStart=/usr/bin/claimflowd --data /var/lib/claimflow --workflows "
    "/usr/share/claimflow/workflows --config /etc/claimflow/claimflowd.yaml",
    "RestartPreventExitStatus=2", "StateDirectory=claimflow", "StateDirectoryMode=0700",
    "ReadWritePaths=/var/lib/claimflow", "NoNewPrivileges=yes", "ProtectSystem=strict",
    "ProtectHome=yes", "PrivateTmp=yes", "PrivateDevices=yes", "CapabilityBoundingSet=",
    "SystemCallFilter=@system-service", "WantedBy=multi-user.target",
]

_built = {}


def build():
    """./dev package, once: (path of the .deb, directory it was unpacked to)."""
    if not _built:
        r = subprocess.run([os.path.join(SRC_DIR, "dev"), "package"], capture_output=True,
                           text=True, timeout=1500)
        if r.returncode != 0:
            raise AssertionError("./dev package failed (%d):\n%s\n%s"
                                 % (r.returncode, r.stdout[-3000:], r.stderr[-5000:]))
        deb = r.stdout.strip().splitlines()[-1]
        deb = deb if os.path.isabs(deb) else os.path.join(SRC_DIR, deb)
        check(deb.endswith("_amd64.deb") or deb.endswith(".deb"), deb)
        # lintian's own output (stderr of ./dev package): no E: or W: line.
        tags = [ln for ln in r.stderr.splitlines() if re.match(r"^[EW]: ", ln)]
        eq(tags, [], r.stderr)
        root = tempfile.mkdtemp(prefix="cf-deb-")
        subprocess.run(["dpkg-deb", "-x", deb, root], check=True)
        _built.update(deb=deb, root=root)
    return _built["deb"], _built["root"]


def test_contents():
    deb, _ = build()
    out = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True,
                         check=True).stdout
    files, dirs = [], {}
    for line in out.splitlines():
        f = line.split()
        mode, owner, path = f[0], f[1], f[5]
        if mode.startswith("d"):
            dirs[path] = (mode, owner)
        else:
            files.append((mode, owner, path))
    eq(sorted(files), sorted(CONTENTS), out)
    for path, (mode, owner) in dirs.items():
        eq((mode, owner), ("drwxr-xr-x", "root/root"), path)


def test_control_data():
    deb, _ = build()
    tmp = tempfile.mkdtemp(prefix="cf-debctl-")
    subprocess.run(["dpkg-deb", "-e", deb, tmp], check=True)
    eq(open(os.path.join(tmp, "conffiles")).read(), "/etc/claimflow/claimflowd.yaml\n")
    field = lambda name: subprocess.run(["dpkg-deb", "-f", deb, name], capture_output=True,
                                        text=True, check=True).stdout.strip()
    eq(field("Package"), "claimflow")
    depends = [d.strip() for d in field("Depends").split(",")]
    for want in ("systemd | systemd-standalone-sysusers", "tzdata"):
        check(want in depends, want, depends)
    for lib in ("liblmdb0", "libmicrohttpd12", "libmsgpackc2", "libyaml-0-2", "libzmq5",
                "libsodium23"):
        check(any(d.startswith(lib + " ") or d == lib for d in depends), lib, depends)
    postinst = open(os.path.join(tmp, "postinst")).read()
    check("systemd-sysusers" in postinst and "claimflow.conf" in postinst, postinst)
    check("install -d -o claimflow -g claimflow -m 0700 /var/lib/claimflow" in postinst,
          postinst)
    # The debhelper snippets enable and start the unit.
    check("deb-systemd-helper" in postinst and "claimflowd.service" in postinst, postinst)
    eq(os.stat(os.path.join(tmp, "postinst")).st_mode & 0o777, 0o755)


def test_unit_is_hardened_and_verifies():
    _, root = build()
    unit_path = os.path.join(root, "lib/systemd/system/claimflowd.service")
    unit = open(unit_path).read()
    lines = [ln.strip() for ln in unit.splitlines()]
    for want in UNIT_MUST:
        check(want in lines, want)
    sysusers = open(os.path.join(root, "usr/lib/sysusers.d/claimflow.conf")).read()
    check('u claimflow - "claimflow daemon" /var/lib/claimflow' in sysusers.splitlines(),
          sysusers)
    # systemd-analyze checks that ExecStart's binary exists: point it at the
    # one extracted from the package; everything else as shipped.
    vdir = tempfile.mkdtemp(prefix="cf-unit-")
    with open(os.path.join(vdir, "claimflowd.service"), "w") as f:
        f.write(unit.replace("/usr/bin/claimflowd", os.path.join(root, "usr/bin/claimflowd")))
    r = subprocess.run(["systemd-analyze", "verify", os.path.join(vdir, "claimflowd.service")],
                       capture_output=True, text=True)
    eq((r.returncode, r.stdout, r.stderr), (0, "", ""))


def test_packaged_daemon_serves():
    _, root = build()
    binary = os.path.join(root, "usr/bin/claimflowd")
    eq(subprocess.run([binary, "--version"], capture_output=True, text=True).stdout,
       "claimflowd 0.1.0\n")
    d = Daemon(binary=binary, workflows_dir=os.path.join(root, "usr/share/claimflow/workflows"),
               config=os.path.join(root, "etc/claimflow/claimflowd.yaml"))
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(os.path.join(d.tmp, "notify"))
    d.env["NOTIFY_SOCKET"] = os.path.join(d.tmp, "notify")
    try:
        with d:
            ns.settimeout(20)
            eq(ns.recv(4096), b"READY=1\nSTATUS=serving")
            r = ok(portal(d).call({"op": "ping"}))
            eq(sorted(w["name"] for w in r["workflows"]), ["health_claim", "inquiry"])
            check("operators=3" in d.started_line, d.started_line)
    finally:
        ns.close()


if __name__ == "__main__":
    run_tests(globals())

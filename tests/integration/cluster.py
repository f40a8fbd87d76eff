"""cluster.py: a real etcd cluster and real claimflowd replicas on loopback.

    from cluster import Etcd, Cluster

    with Etcd(3) as etcd, Cluster(etcd, 3) as cl:
        leader = cl.wait_leader()
        r = cl.call(portal_request)          # follows not_leader to the leader

Etcd starts `etcd` (Debian's etcd-server) members as processes on
127.0.0.1 with free ports and a temp dir each; Cluster starts claimflowd
nodes (harness.Daemon, the real binary) whose configs name those members.
Nothing here is a mock: the checks read etcd through its JSON gateway and
the nodes' LMDB stores with mdb_dump.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

import msgpack

from harness import (Daemon, Client, write_config, TIMEOUT_SCALE, START_TIMEOUT)

ETCD = shutil.which("etcd") or "/usr/bin/etcd"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def have_etcd():
    return os.access(ETCD, os.X_OK)


# ------------------------------------------------------------------- etcd ---
class Etcd:
    """n etcd members on loopback.  kill(i)/start(i) for faults."""

    def __init__(self, n=3):
        self.n = n
        self.tmp = tempfile.mkdtemp(prefix="cf-etcd-")
        self.client_ports = [free_port() for _ in range(n)]
        self.peer_ports = [free_port() for _ in range(n)]
        self.names = ["e%d" % i for i in range(n)]
        self.procs = [None] * n
        self.started_once = [False] * n
        self.urls = ["http://127.0.0.1:%d" % p for p in self.client_ports]

    def _cmd(self, i):
        initial = ",".join("%s=http://127.0.0.1:%d" % (self.names[j], self.peer_ports[j])
                           for j in range(self.n))
        return [ETCD, "--name", self.names[i],
                "--data-dir", os.path.join(self.tmp, self.names[i]),
                "--listen-client-urls", self.urls[i],
                "--advertise-client-urls", self.urls[i],
                "--listen-peer-urls", "http://127.0.0.1:%d" % self.peer_ports[i],
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % self.peer_ports[i],
                "--initial-cluster", initial,
                "--initial-cluster-token", os.path.basename(self.tmp),
                "--initial-cluster-state", "existing" if self.started_once[i] else "new",
                "--log-outputs", os.path.join(self.tmp, self.names[i] + ".log"),
                "--logger", "zap"]

    def start(self, i=None):
        for j in ([i] if i is not None else range(self.n)):
            self.procs[j] = subprocess.Popen(self._cmd(j), stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL,
                                             stderr=subprocess.DEVNULL)
            self.started_once[j] = True
        self.wait_healthy()
        return self

    def kill(self, i):
        p = self.procs[i]
        if p is not None:
            p.kill()
            p.wait()
            self.procs[i] = None

    def signal(self, i, sig):
        if self.procs[i] is not None:
            self.procs[i].send_signal(sig)

    def post(self, i, path, body, timeout=3):
        req = urllib.request.Request(self.urls[i] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())

    def live(self):
        return [i for i in range(self.n) if self.procs[i] is not None]

    def wait_healthy(self, timeout=30):
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            try:
                for i in self.live():
                    self.post(i, "/v3/kv/range", {"key": _b64(b"/health")}, timeout=2)
                return
            except Exception:
                time.sleep(0.2)
        raise RuntimeError("etcd did not become healthy")

    def leader(self):
        """The index of etcd's own raft leader among the live members."""
        for i in self.live():
            try:
                st = self.post(i, "/v3/maintenance/status", {})
                lid = st.get("leader")
                mid = st["header"]["member_id"]
                if lid == mid:
                    return i
            except Exception:
                pass
        return None

    def range_prefix(self, prefix):
        """Every (key, value) under prefix, via any live member."""
        p = prefix.encode()
        end = p[:-1] + bytes([p[-1] + 1])
        for i in self.live():
            try:
                r = self.post(i, "/v3/kv/range", {"key": _b64(p), "range_end": _b64(end)})
                return [(base64.b64decode(kv["key"]), base64.b64decode(kv.get("value", "")))
                        for kv in r.get("kvs", [])]
            except Exception:
                continue
        raise RuntimeError("no etcd member answers")

    def delete(self, key):
        for i in self.live():
            try:
                return self.post(i, "/v3/kv/deleterange", {"key": _b64(key.encode())})
            except Exception:
                continue

    def cleanup(self):
        for i in range(self.n):
            self.kill(i)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


def _b64(b):
    return base64.b64encode(b).decode()


# -------------------------------------------------------------- replicas ---
class Cluster:
    """n claimflowd nodes (a, b, c, ...) on one etcd."""

    def __init__(self, etcd, n=3, lease=2, prefix=None, extra="", clock=None, args=()):
        self.etcd = etcd
        self.clock = clock
        self.args = list(args)
        self.lease = lease
        self.prefix = prefix or "/claimflow/t%d" % os.getpid()
        self.names = [chr(ord("a") + i) for i in range(n)]
        self.nodes = {}
        for name in self.names:
            self.nodes[name] = self._node(name, extra)

    def _node(self, name, extra=""):
        d = Daemon(config=False, clock=self.clock, args=self.args)
        d.name = name
        d.config = write_config(os.path.join(d.tmp, "config.yaml"), extra=(
            "cluster:\n  etcd: [%s]\n  prefix: %s\n  node: %s\n  lease_seconds: %d\n%s"
            % (", ".join(self.etcd.urls), self.prefix, name, self.lease, extra)))
        return d

    def start(self):
        for d in self.nodes.values():
            d.start()
        return self

    def ping(self, d, timeout=2):
        c = Client(d.portal)
        try:
            return c.call({"op": "ping"}, timeout=timeout)
        except TimeoutError:
            return None
        finally:
            c.close()

    def wait_leader(self, timeout=None, exclude=()):
        """The node that says it leads (and serves), once there is one."""
        deadline = time.monotonic() + (timeout or (4 * self.lease + 20)) * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            for name, d in self.nodes.items():
                if name in exclude or not d.running():
                    continue
                r = self.ping(d, timeout=1)
                if r and r.get("role") == "leader":
                    return d
            time.sleep(0.1)
        raise AssertionError("no leader within the timeout")

    def wait_seq(self, seq, timeout=30):
        """Every running node has applied at least seq."""
        deadline = time.monotonic() + timeout * TIMEOUT_SCALE
        while time.monotonic() < deadline:
            seqs = [self.ping(d, timeout=1) for d in self.nodes.values() if d.running()]
            if all(r and r["seq"] >= seq for r in seqs):
                return
            time.sleep(0.1)
        raise AssertionError("nodes did not reach seq %d" % seq)

    def log_entries(self):
        """[(seq, epoch, node)] of the log in etcd, in key order."""
        out = []
        for k, v in self.etcd.range_prefix(self.prefix + "/log/"):
            e = msgpack.unpackb(v, raw=False)
            out.append((int(k.rsplit(b"/", 1)[1]), e[1], e[3]))
        return out

    def dump(self, d):
        """Every database's logical content but the node's own: the map
        size, and `undo` (a leader's records of batches not yet known to be
        in the log, store.h)."""
        out = subprocess.run(["mdb_dump", "-a", d.data_dir], capture_output=True,
                             timeout=120, check=True).stdout
        lines, skip = [], False
        for ln in out.split(b"\n"):
            if ln.startswith(b"VERSION="):
                skip = False
            if ln == b"database=undo":
                skip = True
                while lines and lines[-1] != b"" and not lines[-1].startswith(b"DATA=END"):
                    lines.pop()
            if not skip and not ln.startswith(b"mapsize="):
                lines.append(ln)
        return lines

    def cleanup(self):
        for d in self.nodes.values():
            d.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()


class ClusterClient:
    """A portal (or operator) client of the whole cluster: it sends to the
    node it believes leads and follows `not_leader` (or finds the leader by
    ping when none is named, or the node does not answer), resending the
    same request - same `id` - until an answer that is not about
    leadership arrives or `give_up` seconds pass.  Returns (reply, tries);
    reply None: the outcome is unknown."""

    def __init__(self, cluster, endpoint="portal", defaults=None):
        self.cl = cluster
        self.endpoint = endpoint
        self.defaults = defaults
        self.node = None
        self.clients = {}

    def _client(self, d):
        ep = getattr(d, self.endpoint)
        c = self.clients.get(ep)
        if c is None:
            c = self.clients[ep] = Client(ep, self.defaults)
        return c

    def _find(self, endpoint_of_leader=None):
        for d in self.cl.nodes.values():
            if not d.running():
                continue
            if endpoint_of_leader and getattr(d, self.endpoint) == endpoint_of_leader:
                return d
        if endpoint_of_leader:
            return None
        for d in self.cl.nodes.values():
            if d.running():
                r = self.cl.ping(d, timeout=1)
                if r and r.get("role") == "leader":
                    return d
        return None

    def call(self, req, give_up=60, timeout=3):
        deadline = time.monotonic() + give_up * TIMEOUT_SCALE
        tries = 0
        while time.monotonic() < deadline:
            if self.node is None or not self.node.running():
                self.node = self._find()
                if self.node is None:
                    time.sleep(0.1)
                    continue
            tries += 1
            c = self._client(self.node)
            try:
                r = c.call(req, timeout=timeout)
            except TimeoutError:
                # The node is gone or stopped: its socket may hold a stale
                # reply now, so use a fresh one next time.
                c.close()
                self.clients.pop(getattr(self.node, self.endpoint), None)
                self.node = None
                continue
            if r.get("ok") is False and r["error"]["code"] == "not_leader":
                leader = r["error"].get("leader")
                self.node = self._find(leader and leader[self.endpoint]) if leader else None
                if self.node is None:
                    time.sleep(0.1)
                continue
            if r.get("ok") is False and r["error"]["code"] == "unavailable":
                time.sleep(0.1)
                continue
            return r, tries
        return None, tries

    def close(self):
        for c in self.clients.values():
            c.close()
        self.clients = {}

"""Reliability: what one peer can make the daemon hold (docs/RELIABILITY.md,
"Bounds"; issue 18, items 4 and 11).

- Frames over the limit (item 4): 30 frames of 60 MiB from one client took
  the daemon to 1.8 GiB, each held whole before it was refused `too_large`.
  Now libzmq's ZMQ_MAXMSGSIZE is --max-frame + 1 MiB on the request sockets:
  a frame within that margin is answered `too_large`; a larger one closes
  its sender's connection at the frame's header, before anything is
  allocated.  Checked: the exact replies, the disconnects (the client's
  socket monitor), the daemon's peak memory (VmHWM) not rising by one such
  frame, and everyone (the sender too, reconnected) served afterwards.

Short form: --max-frame 1M, five frames of 8 MiB; long form: the default
16 MiB, thirty frames of 60 MiB (the issue's case).
"""

import os
import sys

import zmq
from zmq.utils.monitor import recv_monitor_message

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "integration"))
from harness import _ctx, eq, err, ok, pack, portal, unpack  # noqa: E402
from reliability_util import (LONG, SLOW, RDaemon, check, log, memory,  # noqa: E402
                              mib, run, wait_for)

MIB = 1 << 20
MARGIN = MIB                         # claimflowd's CFD_FRAME_MARGIN


def test_frames_over_the_limit_cost_the_sender_its_connection():
    max_frame = 16 * MIB if LONG else MIB
    big, n = (60 * MIB, 30) if LONG else (8 * MIB, 5)
    args = [] if LONG else ["--max-frame", "1M"]
    with RDaemon(args=args) as d:
        p = portal(d)
        ok(p.call({"op": "ping"}))
        # Within the margin: held once, answered too_large, in order.
        near = pack({"op": "ping", "pad": b"x" * (max_frame + MARGIN // 2)})
        for _ in range(n):
            p.send_raw([b"", near])
        for _ in range(n):
            msg = err(p.recv(timeout=60 * SLOW), "too_large")
            check("max_frame" in msg, msg)
        base = memory(d.pid)["VmHWM"]

        # Over the margin: each frame costs its sender the connection, before
        # the daemon allocates it.  The DEALER reconnects and sends the next.
        s = _ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        mon = s.get_monitor_socket(zmq.EVENT_DISCONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
        s.connect(d.portal)
        frame = b"\x81\xa2op\xc4" + b"x" * big   # a map whose value is cut short
        events = []

        def drain_monitor():
            while mon.poll(0):
                events.append(recv_monitor_message(mon)["event"])
            return events.count(zmq.EVENT_DISCONNECTED)

        for _ in range(n):
            s.send_multipart([b"", frame])
        wait_for(lambda: drain_monitor() >= n, 120 * SLOW,
                 "%d disconnects of the client sending %d-MiB frames" % (n, big // MIB))
        check(not s.poll(500), "a frame over the limit got a reply")
        grown = memory(d.pid)["VmHWM"] - base
        log("%d frames of %d MiB: %d disconnects; VmHWM %+.1f MiB (limit %d MiB + 1 MiB)",
            n, big // MIB, events.count(zmq.EVENT_DISCONNECTED), mib(grown),
            max_frame // MIB)
        check(grown < big // 1024, "the daemon's peak memory rose by a refused frame",
              mib(grown))

        # Everyone is served afterwards, the sender too (reconnected).
        ok(p.call({"op": "ping", "id": "after"}))
        s.send_multipart([b"", pack({"op": "ping", "id": "sender"})])
        check(s.poll(int(30000 * SLOW)), "no reply to the reconnected sender")
        eq(ok(unpack(s.recv_multipart()[-1]))["id"], "sender")
        s.disable_monitor()
        mon.close(0)
        s.close(0)
        eq(d.started_with_errors(), [])


if __name__ == "__main__":
    run(globals())

"""claimflow.py: a client for claimflowd, for portal backends and scripts.

    from claimflow import Client, InvalidTransition

    portal = Client("tcp://127.0.0.1:7401", member="0101901234")
    claim = portal.create("health_claim", {"member": portal.member,
                                           "treatment": "physiotherapy"})
    portal.attach(claim["id"], "referral", pdf_bytes)
    portal.consent_give()
    try:
        portal.send_event(claim["id"], "treatment.started")
    except InvalidTransition as e:
        print(e.code, e.message)     # never a person id or free text

    handler = Client("tcp://127.0.0.1:7402", actor="hanne")
    for c in handler.claims(workflow="health_claim", state="in_review"):
        ...

    # A cluster: every node's portal endpoint; requests find the leader.
    portal = ClusterClient(["tcp://10.0.0.1:7401", "tcp://10.0.0.2:7401",
                            "tcp://10.0.0.3:7401"], member="0101901234")

Needs only Debian's python3-zmq and python3-msgpack.  The wire protocol is
docs/protocol.md; this module is one way to speak it, not part of it.

Design:
- One DEALER socket per Client, framing ["", request] like a REQ socket, so
  the daemon returns ["", reply].  One request is in flight at a time in
  call()/request(); post()/receive() pipeline several.
- Every request made through call() (and the op methods built on it) gets
  an `id` unless the caller gives one.  A retry after a timeout resends the
  SAME frame - same `id`, same bytes - so the daemon answers a write it
  already applied with the reply it remembered and applies nothing twice
  (protocol.md, Idempotency).  The socket is kept across retries (no
  reconnect per attempt): libzmq reconnects by itself when the daemon
  restarts, and a late reply to an earlier attempt is recognised by its
  `id` and dropped, so it can never be taken for the answer to the next
  request.  (The "lazy pirate" alternative, a new socket per retry, was
  rejected: with CURVE each new socket costs a handshake, and replies
  already carry the id needed to tell them apart.)
- A reply with ok: false raises the exception class of its error code (one
  per code of protocol.md's table, all subclasses of Error); Timeout is
  raised when no reply came within the timeout on every attempt.  Replies
  `unavailable` are not retried here: the store is full and a retry loop
  would only hide it; Unavailable.retryable says the caller may retry later
  with the same id (Error.request_id).
- The session: `member` (portal), `actor` (operator) and `by` (the portal's
  acting person, for a daemon that knows the field) are added to every
  request that does not set them itself.  None leaves the field out.
- Documents: attach() uploads bytes (attach_file() a file); document()
  downloads one and checks its body against the SHA-256 the daemon names,
  download() writes it to a file.

- A cluster (docs/protocol.md, "Connecting to a cluster"): ClusterClient
  takes every node's endpoint and is a Client in all else.  A request goes
  to the node last known to lead; a follower's `not_leader` names the
  leader, to which the SAME frame (same `id`) is sent; a node that does not
  answer within `timeout`, or a follower that knows no leader, passes the
  request on to the next node, for at most `give_up` seconds.  A separate
  class rather than a list given to Client: Client's one socket and its
  retry rules stay exactly what a single daemon needs.

Transport refusals (a frame larger than the daemon's max_frame) come back
without an `id` (protocol.md): while a request is waiting, an id-less error
reply is taken as its answer.
"""

import hashlib
import itertools
import mimetypes
import os
import threading
import time

import msgpack
import zmq

__all__ = [
    "Client", "ClusterClient", "Error", "Timeout", "ProtocolError", "ERRORS", "error_for",
    "BadRequest", "UnknownOp", "NotFound", "InvalidTransition", "GuardFailed",
    "Forbidden", "Conflict", "TooLarge", "Unavailable", "Internal", "NotLeader",
    "WRITING_OPS", "load_key",
]

# Ops that change the store and so require an id (protocol.md).
WRITING_OPS = frozenset(["create", "send", "attach", "consent.give",
                         "consent.withdraw", "purge"])


# ---------------------------------------------------------------- errors ---
class Error(Exception):
    """A claimflowd error reply, or (subclasses Timeout, ProtocolError) a
    failure to get one.  `code` is the protocol's error code, `message` the
    daemon's message (names fields and states, never values), `reply` the
    whole reply map (None for Timeout), `request_id` the request's id."""

    code = None
    retryable = False

    def __init__(self, message, reply=None, request_id=None, code=None):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.message = message
        self.reply = reply
        self.request_id = request_id

    def __str__(self):
        return "%s: %s" % (self.code, self.message) if self.code else self.message


class BadRequest(Error):
    """A field is missing, of the wrong type, or not allowed."""
    code = "bad_request"


class UnknownOp(Error):
    """`op` names no operation."""
    code = "unknown_op"


class NotFound(Error):
    """No such claim, member, document or workflow (or another member's)."""
    code = "not_found"


class InvalidTransition(Error):
    """The claim's state does not accept the event."""
    code = "invalid_transition"


class GuardFailed(Error):
    """A guard of the transition does not hold (e.g. consent_valid)."""
    code = "guard_failed"


class Forbidden(Error):
    """The role may not do this, or the op is not served on this endpoint."""
    code = "forbidden"


class Conflict(Error):
    """The id was already used for a different request."""
    code = "conflict"


class TooLarge(Error):
    """The frame or a document is larger than allowed."""
    code = "too_large"


class Unavailable(Error):
    """The store takes no writes now (full); nothing changed.  Retry later
    with the same id."""
    code = "unavailable"
    retryable = True


class Internal(Error):
    """A bug in the daemon; nothing changed."""
    code = "internal"


class NotLeader(Error):
    """A follower of a cluster: nothing changed; send the same request (same
    id) to the leader, whose endpoints the error map's `leader` names (None
    while none is known: retry shortly).  ClusterClient does this itself."""
    code = "not_leader"
    retryable = True

    @property
    def leader(self):
        """The leader's {node, portal, operator, events}, or None."""
        e = self.reply.get("error") if isinstance(self.reply, dict) else None
        return e.get("leader") if isinstance(e, dict) else None


class Timeout(Error, TimeoutError):
    """No reply within the timeout, on every attempt.  A write may or may
    not have been applied: retry with the same id (request_id) to find out."""
    retryable = True


class ProtocolError(Error):
    """Something that is not a claimflowd reply: not a msgpack map, or a
    document whose body does not match its SHA-256."""


# Error code -> class, one per code of docs/protocol.md's table.
ERRORS = {cls.code: cls for cls in (
    BadRequest, UnknownOp, NotFound, InvalidTransition, GuardFailed,
    Forbidden, Conflict, TooLarge, Unavailable, NotLeader, Internal)}


def error_for(reply, request_id=None):
    """The exception for an ok: false reply: the class of its code, or Error
    with that code for a code this module does not know (a newer daemon)."""
    e = reply.get("error") if isinstance(reply, dict) else None
    if not isinstance(e, dict):
        return ProtocolError("an ok: false reply without an error map", reply, request_id)
    code = e.get("code")
    message = e.get("message") or ""
    cls = ERRORS.get(code)
    if cls is None:
        return Error(message, reply, request_id, code=str(code))
    return cls(message, reply, request_id)


# ------------------------------------------------------------------ keys ---
def load_key(path):
    """The key in a file written by `claimctl keygen` (40 Z85 characters)."""
    with open(path, "rb") as f:
        key = f.read().strip()
    if len(key) != 40:
        raise ValueError("%s: not a key file (expected 40 Z85 characters)" % path)
    return key.decode("ascii")


# ---------------------------------------------------------------- client ---
_pid_ids = itertools.count(1)
_id_lock = threading.Lock()


class Client:
    """A connection to one claimflowd endpoint (portal or operator).

    endpoint  a ZeroMQ endpoint, e.g. "tcp://127.0.0.1:7401"
    member, actor, by
              session fields added to every request that does not set them
              (portal: member; operator: actor); also properties
    timeout   seconds to wait for each attempt's reply (default 5)
    retries   attempts after the first when no reply comes (default 2)
    server_key, public_key, secret_key
              CURVE: the daemon's public key and this client's key pair
              (Z85 strings; load_key() reads claimctl keygen's files)
    context   a zmq.Context (default: the process's shared one)
    socket    an already configured, connected socket to adopt instead of
              making one (tests use it for monitors)
    id_prefix prefix of generated request ids (default "py-<pid>")

    Not thread-safe: one Client per thread (libzmq sockets are not either).
    """

    def __init__(self, endpoint, member=None, actor=None, by=None, timeout=5.0,
                 retries=2, server_key=None, public_key=None, secret_key=None,
                 context=None, socket=None, id_prefix=None, session=None):
        self.endpoint = endpoint
        self.session = dict(session or {})
        for key, value in (("member", member), ("actor", actor), ("by", by)):
            if value is not None:
                self.session[key] = value
        self.timeout = timeout
        self.retries = retries
        self.sent = 0                       # frames sent, retries included
        self.id_prefix = id_prefix or "py-%d-%s" % (os.getpid(), os.urandom(3).hex())
        if socket is not None:
            self.socket = socket
            return
        ctx = context or zmq.Context.instance()
        self.socket = ctx.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if server_key or public_key or secret_key:
            if not (server_key and public_key and secret_key):
                self.socket.close(0)
                raise ValueError("CURVE needs server_key, public_key and secret_key")
            self.socket.curve_serverkey = _b(server_key)
            self.socket.curve_publickey = _b(public_key)
            self.socket.curve_secretkey = _b(secret_key)
        self.socket.connect(endpoint)

    # -- session --
    def _session_property(key):
        def get(self):
            return self.session.get(key)

        def put(self, value):
            if value is None:
                self.session.pop(key, None)
            else:
                self.session[key] = value
        return property(get, put, doc="session field `%s` (None: not sent)" % key)

    member = _session_property("member")
    actor = _session_property("actor")
    by = _session_property("by")
    del _session_property

    # -- life --
    def close(self):
        """Close the socket (pending requests are dropped).  Idempotent."""
        if self.socket is not None:
            self.socket.close(0)
            self.socket = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def new_id(self):
        """A fresh request id, unique across processes (128 bytes at most)."""
        with _id_lock:
            n = next(_pid_ids)
        return "%s-%d" % (self.id_prefix, n)

    # -- the wire --
    def full_request(self, req):
        """req with the session's fields added where req does not set them."""
        full = dict(self.session)
        full.update(req)
        return full

    def post(self, req):
        """Send one request (session fields added) without waiting; its reply
        comes from receive().  Replies come back in the order sent."""
        self._send_frame(pack(self.full_request(req)))

    def receive(self, timeout=None):
        """The next reply map; Timeout when none comes within timeout."""
        return unpack(self._recv_frames(self._timeout(timeout))[-1])

    def request(self, req, timeout=None, retries=None):
        """Send req (session fields added) and return the reply map, ok or
        not - nothing is raised for an error reply.  Without a reply within
        timeout the same frame is sent again, up to `retries` more times;
        then Timeout.  Replies carrying another request's id are dropped."""
        timeout = self._timeout(timeout)
        retries = self.retries if retries is None else retries
        full = self.full_request(req)
        frame = pack(full)
        rid = full.get("id")
        for _ in range(retries + 1):
            self._send_frame(frame)
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    frames = self._recv_frames(left)
                except Timeout:
                    break
                reply = unpack(frames[-1])
                if not isinstance(reply, dict):
                    raise ProtocolError("the reply is not a map", reply, rid)
                if self._answers(reply, rid):
                    return reply
        raise Timeout("no reply from %s within %ss (%d attempts)"
                      % (self.endpoint, _fmt_s(timeout), retries + 1), None, rid)

    def call(self, op, request_id=None, timeout=None, retries=None, **fields):
        """Run op with fields; an id is generated unless request_id is given.
        Returns the ok: true reply map; raises the Error subclass of the
        reply's code otherwise, or Timeout."""
        req = {"op": op}
        req.update(fields)
        rid = request_id or self.new_id()
        req["id"] = rid
        reply = self.request(req, timeout, retries)
        if reply.get("ok") is True:
            return reply
        raise error_for(reply, rid)

    # -- portal and operator ops (docs/protocol.md, Operations) --
    def ping(self, **kw):
        """{version, now, workflows}."""
        return self.call("ping", **kw)

    def create(self, workflow, data, **kw):
        """A new claim of workflow with data; returns the claim."""
        return self.call("create", workflow=workflow, data=data, **kw)["claim"]

    def send_event(self, claim, event, data=None, **kw):
        """Send the claim an event (op `send`); returns the claim."""
        if data is not None:
            kw["data"] = data
        return self.call("send", claim=claim, event=event, **kw)["claim"]

    def get(self, claim, **kw):
        return self.call("get", claim=claim, **kw)["claim"]

    def assign(self, claim, to, **kw):
        """Give the claim an owner (an operator id), or none (to=None);
        operator endpoint.  Returns the claim."""
        return self.call("assign", claim=claim, to=to, **kw)["claim"]

    def history(self, claim, **kw):
        """The claim's events, by seq: every page (the daemon returns at
        most 1,000 events, about 1 MiB, a page and says `next`)."""
        events, after = [], kw.pop("after", None)
        while True:
            if after is not None:
                kw["after"] = after
            r = self.call("history", claim=claim, **kw)
            events += r["events"]
            if r.get("next") is None:
                return events
            after = r["next"]

    def query(self, **filters):
        """One page: {claims, next?}.  See claims() for all of them."""
        return self.call("query", **filters)

    def claims(self, **filters):
        """Every claim matching filters (workflow, state, member, flag, open),
        oldest first, following the `next` cursor page by page."""
        after = filters.pop("after", None)
        while True:
            if after is not None:
                filters["after"] = after
            page = self.query(**filters)
            for c in page["claims"]:
                yield c
            after = page.get("next")
            if after is None:
                return

    def consent_give(self, **kw):
        """{consent, moved}: the session member's consent."""
        return self.call("consent.give", **kw)

    def consent_withdraw(self, **kw):
        return self.call("consent.withdraw", **kw)

    def consent_get(self, **kw):
        """The session member's consent map (given_at, valid_until,
        withdrawn_at, given_by, channel, lapses_at, involved, reference), or
        None when none was given."""
        return self.call("consent.get", **kw)["consent"]

    # -- who may act for a member (docs/protocol.md, "Members and
    # representatives"); `by` is a session field like `member` --
    def representation_add(self, member, representative, kind, scope, evidence,
                           content_type="application/pdf", **kw):
        """Operator: register a representation (kind parent, guardian,
        next_of_kin, attorney, third_party; scope a list of consent,
        claims, complaints, read) with its evidence document (bytes);
        decides=True for a parent or guardian who decides for a member of
        15-17 assessed unable (the assessment as the evidence); returns the
        representation map."""
        return self.call("representation.add", member=member, representative=representative,
                         kind=kind, scope=list(scope),
                         evidence={"content_type": content_type, "body": bytes(evidence)},
                         **kw)["representation"]

    def representation_grant(self, representative, scope, valid_until, **kw):
        """Portal: the session member (an adult) authorises a third party
        until valid_until (a date or a time); returns the representation."""
        return self.call("representation.grant", representative=representative,
                         scope=list(scope), valid_until=valid_until, **kw)["representation"]

    def representation_revoke(self, representative, **kw):
        """Revoke the session member's (or, operator: member=...)
        representation by representative; returns it, revoked."""
        return self.call("representation.revoke", representative=representative,
                         **kw)["representation"]

    def representations(self, **kw):
        """The member's representations, and those in which the caller
        (`by`, or the member) is the representative."""
        return self.call("representation.list", **kw)["representations"]

    def access_log(self, **kw):
        """Every operator access to the session member's claims, newest
        first, all pages: [{at, op, role, purpose, claims, actor?}]."""
        entries, after = [], kw.pop("after", None)
        while True:
            if after is not None:
                kw["after"] = after
            r = self.call("access_log", **kw)
            entries += r["entries"]
            if r.get("next") is None:
                return entries
            after = r["next"]

    def export(self, **kw):
        """Everything held about the session member, page by page (each a
        map: member, consent, representations, claims, access_log;
        docs/protocol.md)."""
        after = kw.pop("after", None)
        while True:
            if after is not None:
                kw["after"] = after
            r = self.call("export", **kw)
            yield r
            if r.get("next") is None:
                return
            after = r["next"]

    def timers(self, **kw):
        """Pending claim timers, soonest first (operator)."""
        return self.call("timers", **kw)["timers"]

    def stats(self, **kw):
        """{states, flags, timers, claims} (operator)."""
        return self.call("stats", **kw)

    def clock_advance(self, seconds, **kw):
        """Manual clock only: {now, fired}."""
        return self.call("clock.advance", seconds=seconds, **kw)

    def clock_set(self, at, **kw):
        return self.call("clock.set", at=at, **kw)

    def audit(self, **kw):
        return self.call("audit", **kw)

    def purge(self, **kw):
        return self.call("purge", **kw)

    # -- documents --
    def attach(self, claim, kind, body, content_type="application/pdf", **kw):
        """Upload a document (bytes); returns {claim, document}."""
        return self.call("attach", claim=claim, kind=kind, content_type=content_type,
                         body=bytes(body), **kw)

    def attach_file(self, claim, kind, path, content_type=None, **kw):
        """Upload the file at path; content_type guessed from its name when
        not given (application/octet-stream if unknown)."""
        if content_type is None:
            content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        with open(path, "rb") as f:
            body = f.read()
        return self.attach(claim, kind, body, content_type, **kw)

    RANGE = 256 * 1024      # the daemon's largest document range

    def document(self, claim, sha256, **kw):
        """Download a document: {kind, content_type, sha256, size, body},
        in ranges of 256 KiB (the daemon sends a whole body in one reply
        only up to 1 MiB).  ProtocolError if the body does not hash to
        sha256."""
        parts, offset = [], 0
        while True:
            doc = self.call("document", claim=claim, sha256=sha256, offset=offset,
                            length=self.RANGE, **kw)["document"]
            part = doc.get("body")
            if not isinstance(part, bytes):
                break
            parts.append(part)
            offset += len(part)
            if not part or offset >= doc.get("size", 0):
                break
        doc.pop("offset", None)
        doc["body"] = b"".join(parts)
        body = doc.get("body")
        if not isinstance(body, bytes) or hashlib.sha256(body).hexdigest() != sha256:
            raise ProtocolError("the document's body does not match its sha256",
                                None, kw.get("request_id"))
        return doc

    def download(self, claim, sha256, path, **kw):
        """Write a document's body to path (through path + ".part", renamed
        when complete); returns the document without its body."""
        doc = self.document(claim, sha256, **kw)
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.write(doc["body"])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return {k: v for k, v in doc.items() if k != "body"}

    # -- internals --
    def _timeout(self, timeout):
        return self.timeout if timeout is None else timeout

    def _send_frame(self, frame):
        try:
            self.socket.send_multipart([b"", frame], zmq.NOBLOCK)
        except zmq.Again:
            # Queue full or no peer yet: counts as an attempt without a reply.
            pass
        self.sent += 1

    def _recv_frames(self, timeout):
        if not self.socket.poll(max(0, int(timeout * 1000))):
            raise Timeout("no reply from %s within %ss" % (self.endpoint, _fmt_s(timeout)))
        return self.socket.recv_multipart()

    @staticmethod
    def _answers(reply, rid):
        if rid is None:
            return True
        got = reply.get("id")
        if got == rid:
            return True
        # A transport refusal (too_large, bad framing) carries no id.
        return got is None and reply.get("ok") is False


# --------------------------------------------------------------- cluster ---
class ClusterClient(Client):
    """A Client of a cluster's nodes (docs/protocol.md, "Connecting to a
    cluster"): every op method of Client, sent to the leader.

    endpoints  every node's endpoint of one kind - all portal, or all
               operator - as a list or "URL,URL,URL"
    kind       "portal" or "operator": which of the leader's endpoints to
               follow (default "operator" with an actor, else "portal")
    timeout    seconds one node has to answer before the next is tried
    give_up    seconds one request may take in all (default 30; a call's
               give_up= overrides it), then Timeout
    the rest   as Client; CURVE keys are the same for every node (a
               cluster's nodes share theirs)

    `endpoint` is the node requests go to now (the leader, once found),
    `leader` the last leader map a node named ({node, portal, operator,
    events}), `sent` the frames sent in all.  `retries` is not used: a
    request is resent, always the same frame, until an answer that is not
    about leadership comes or give_up passes.  `unavailable` (a leader that
    lost its lease while writing, or a full disk) is resent to the same node
    UNAVAILABLE_RETRIES times, UNAVAILABLE_PAUSE apart - a node that lost
    its lease says not_leader by then - and then raised as Unavailable."""

    PAUSE = 0.1      # between rounds when no node knows a leader
    UNAVAILABLE_RETRIES = 3
    UNAVAILABLE_PAUSE = 0.5

    def __init__(self, endpoints, member=None, actor=None, by=None, timeout=5.0,
                 retries=2, give_up=30.0, server_key=None, public_key=None,
                 secret_key=None, context=None, id_prefix=None, session=None, kind=None):
        if isinstance(endpoints, str):
            endpoints = [e.strip() for e in endpoints.split(",")]
        if not endpoints or not all(endpoints):
            raise ValueError("ClusterClient needs at least one endpoint")
        self.endpoints = list(endpoints)
        self.session = dict(session or {})
        for key, value in (("member", member), ("actor", actor), ("by", by)):
            if value is not None:
                self.session[key] = value
        self.kind = kind or ("operator" if "actor" in self.session else "portal")
        if self.kind not in ("portal", "operator"):
            raise ValueError("kind must be 'portal' or 'operator'")
        self.timeout = timeout
        self.retries = retries
        self.give_up = give_up
        self.sent = 0
        self.id_prefix = id_prefix or "py-%d-%s" % (os.getpid(), os.urandom(3).hex())
        self.leader = None
        self.endpoint = self.endpoints[0]
        self._index = 0
        self._keys = dict(server_key=server_key, public_key=public_key, secret_key=secret_key)
        if any(self._keys.values()) and not all(self._keys.values()):
            raise ValueError("CURVE needs server_key, public_key and secret_key")
        self._context = context
        self._clients = {}
        self.socket = None

    def close(self):
        """Close every node's socket.  Idempotent."""
        for c in self._clients.values():
            c.close()
        self._clients = {}

    def post(self, req):
        raise NotImplementedError("ClusterClient sends one request at a time: use request()")

    def receive(self, timeout=None):
        raise NotImplementedError("ClusterClient sends one request at a time: use request()")

    def call(self, op, request_id=None, timeout=None, retries=None, give_up=None, **fields):
        """As Client.call, through the leader; give_up bounds the whole call."""
        req = {"op": op}
        req.update(fields)
        rid = request_id or self.new_id()
        req["id"] = rid
        reply = self.request(req, timeout, retries, give_up)
        if reply.get("ok") is True:
            return reply
        raise error_for(reply, rid)

    def request(self, req, timeout=None, retries=None, give_up=None):
        """The reply to req (session fields added) from the leader, ok or
        not (never not_leader); Timeout when no node led within give_up."""
        timeout = self._timeout(timeout)
        give_up = self.give_up if give_up is None else give_up
        full = self.full_request(req)
        rid = full.get("id")
        deadline = time.monotonic() + give_up
        down, redirects, unavailable = set(), 0, 0
        while time.monotonic() < deadline:
            ep = self.endpoint
            left = deadline - time.monotonic()
            self.sent += 1
            try:
                # The node's client has no session: `full` is sent as it is,
                # the same bytes every time.
                reply = self._client(ep).request(full, timeout=min(timeout, left), retries=0)
            except Timeout:
                # Gone or stopped: a fresh socket next time, so a frame
                # queued for it is not delivered when it comes back.
                self._clients.pop(ep).close()
                down.add(ep)
                self._next()
                continue
            err = reply.get("error") if reply.get("ok") is False else None
            code = err.get("code") if isinstance(err, dict) else None
            if code == "unavailable" and unavailable < self.UNAVAILABLE_RETRIES:
                unavailable += 1
                time.sleep(min(self.UNAVAILABLE_PAUSE, max(0.0, deadline - time.monotonic())))
                continue
            if code != "not_leader":
                return reply
            leader = err.get("leader")
            self.leader = leader
            target = leader.get(self.kind) if isinstance(leader, dict) else None
            if target and target not in down and not _wildcard(target):
                self.endpoint = target
                redirects += 1
                pause = redirects > len(self.endpoints)
            else:
                pause = self._next()
            if pause:
                redirects = 0
                down.clear()
                time.sleep(min(self.PAUSE, max(0.0, deadline - time.monotonic())))
        raise Timeout("no leader among %s answered within %ss"
                      % (",".join(self.endpoints), _fmt_s(give_up)), None, rid)

    def _client(self, ep):
        c = self._clients.get(ep)
        if c is None:
            c = self._clients[ep] = Client(ep, timeout=self.timeout, retries=0,
                                           context=self._context, id_prefix=self.id_prefix,
                                           **self._keys)
        return c

    def _next(self):
        """The next node of the list; True when it went round to the first."""
        if self.endpoint in self.endpoints:
            self._index = (self.endpoints.index(self.endpoint) + 1) % len(self.endpoints)
        self.endpoint = self.endpoints[self._index]
        return self._index == 0


def _wildcard(ep):
    """A bind address with no host to connect to (tcp://*:7401, 0.0.0.0)."""
    host = ep.split("://", 1)[-1]
    return host.startswith(("*:", "0.0.0.0:", "[::]:", "[*]:"))


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def unpack(frame):
    try:
        return msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except (ValueError, msgpack.exceptions.ExtraData) as e:
        raise ProtocolError("the reply is not msgpack: %s" % e) from None


def _b(key):
    return key.encode("ascii") if isinstance(key, str) else bytes(key)


def _fmt_s(seconds):
    return ("%g" % seconds)

"""A fault-injecting HTTP/1.1 reverse proxy for the tests.

``FaultProxy`` listens on 127.0.0.1 and relays every request byte for byte to one upstream
server on loopback (SeaweedFS, ``cloudstore serve``, Azurite, ...). The Host header is left as
the client sent it, so a client configured with the proxy's URL signs requests that the
upstream still accepts. Bodies (Content-Length, chunked, or until close) are streamed, never
buffered whole; ``Expect: 100-continue`` and keep-alive work as they do without the proxy.

Per request it may inject one fault, drawn at the configured rates:

``reset``
    close the client connection with a TCP RST (``reset_at``): before forwarding the request,
    after forwarding it (the upstream acted on it, the client never hears back), or in the
    middle of the response body;
``503`` (or any three-digit status)
    answer with that status and an S3-style XML error body (``ServiceUnavailable`` for 503),
    without forwarding;
``slowdown``
    answer ``503`` with the S3 code ``SlowDown``;
``throttle``
    answer with the cloud's own throttling reply, by the proxy's ``dialect``: S3 ``503 SlowDown``,
    Azure ``503`` ``ServerBusy``, GCS ``429`` ``rateLimitExceeded``, Swift ``498 Rate Limited``;
``stall``
    hold the upstream's response for ``stall_seconds``, then relay it;
``blackhole``
    read the request and never answer (a server that stops answering), until the client gives up;
``flip``
    invert one byte in the middle of a 2xx response body (the length stays the same);
``flip_request``
    invert one byte in the middle of the request body forwarded upstream (the length stays the
    same; Content-Length and chunked bodies alike);
``truncate``
    relay the response head and only the first half of its body, then close the connection
    (FIN, no RST): the promised length is never sent;
``status``
    answer with the fixed ``status`` (403 ``AccessDenied`` by default), without forwarding;
``error200``
    answer ``200 OK`` with an S3 ``InternalError`` XML body (the S3 "200 with an error" case).

Synthetic answers (statuses, ``throttle``) are shaped like the upstream's own errors, by
``dialect``: ``"s3"`` (XML, the default), ``"azure"`` (XML and ``x-ms-error-code``), ``"gcs"``
(JSON), ``"swift"`` and ``"local"`` (plain text).

Example::

    with FaultProxy(upstream=("127.0.0.1", port), rates={"reset": 0.03, "503": 0.03}, seed=7) as proxy:
        client = make_client(endpoint=proxy.url)
        ...
        assert proxy.stats["503"] > 0
"""

from __future__ import annotations

import contextlib
import http
import ipaddress
import itertools
import json
import queue
import random
import re
import select
import socket
import struct
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit
from xml.sax.saxutils import escape

ResetPoint = Literal["before", "after", "mid", "random"]
Dialect = Literal["s3", "azure", "gcs", "swift", "local"]

#: Fault kinds besides the plain three-digit statuses ("503", "500", ...).
NAMED_KINDS = frozenset(
    {"reset", "slowdown", "throttle", "stall", "blackhole", "flip", "flip_request", "truncate", "status", "error200"}
)
#: Kinds that forward the request and act on it or on its answer (the others answer in its place).
FORWARDED_KINDS = frozenset({"reset", "stall", "flip", "flip_request", "truncate"})

#: The S3 error code sent with each synthetic status.
S3_ERROR_CODES: dict[int, str] = {
    400: "BadRequest",
    401: "InvalidAccessKeyId",
    403: "AccessDenied",
    404: "NoSuchKey",
    408: "RequestTimeout",
    409: "Conflict",
    412: "PreconditionFailed",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}

#: Azure's error code (``x-ms-error-code``) for each synthetic status.
AZURE_ERROR_CODES: dict[int, str] = {
    400: "InvalidInput",
    403: "AuthorizationFailure",
    404: "BlobNotFound",
    409: "ResourceAlreadyExists",
    412: "ConditionNotMet",
    500: "InternalError",
    503: "ServerBusy",
}

#: The GCS JSON API's ``errors[].reason`` for each synthetic status.
GCS_REASONS: dict[int, str] = {
    400: "invalid",
    401: "authError",
    403: "forbidden",
    404: "notFound",
    409: "conflict",
    412: "conditionNotMet",
    429: "rateLimitExceeded",
    500: "backendError",
    503: "backendError",
}

#: Each cloud's throttling answer: status and error code.
THROTTLE_REPLIES: dict[str, tuple[int, str]] = {
    "s3": (503, "SlowDown"),
    "azure": (503, "ServerBusy"),
    "gcs": (429, "rateLimitExceeded"),
    # Swift's ratelimit middleware: "498 Rate Limited", body "Slow down".
    "swift": (498, "Slow down"),
    "local": (503, "Slow down"),
}

_STAT_KEYS: tuple[str, ...] = (
    *("connections", "requests", "forwarded", "faults", "upstream_errors"),
    *("reset_before", "reset_after", "reset_mid"),
    *sorted(NAMED_KINDS),
    "503",
)

_BUFSIZE = 256 * 1024
_MAX_HEAD = 64 * 1024
_MAX_LINE = 8 * 1024
#: How long a closing connection keeps reading what the client still sends, so that our
#: last response is not destroyed by an RST (the "lingering close" of HTTP servers).
_LINGER_SECONDS = 2.0
_POLL_SECONDS = 0.2


def is_fault_kind(kind: str) -> bool:
    """Whether ``kind`` names a fault this proxy can inject."""
    return kind in NAMED_KINDS or _status_of(kind) is not None


def _status_of(kind: str) -> int | None:
    if len(kind) == 3 and kind.isdigit() and 400 <= int(kind) <= 599:
        return int(kind)
    return None


@dataclass
class FaultRule:
    """Inject ``kind`` into a share ``rate`` of the requests that match the filters.

    ``methods`` (upper case) and ``path`` (a regular expression searched in the request target,
    i.e. path and query) restrict the requests the rule applies to. ``limit`` caps how many
    times the rule fires; ``once_per_path`` fires it at most once per path (query left out), e.g.
    at most one flipped response per object however many ranges and retries read it.
    ``status``/``code`` are used by the ``status`` kind; ``reset_at`` by the ``reset`` kind.
    """

    kind: str
    rate: float = 1.0
    methods: frozenset[str] | None = None
    path: re.Pattern[str] | None = None
    status: int = 403
    code: str | None = None
    reset_at: ResetPoint = "random"
    limit: int | None = None
    once_per_path: bool = False
    #: How many requests this rule has chosen so far.
    fired: int = 0
    #: The paths it fired on (kept for ``once_per_path``).
    fired_paths: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        if not is_fault_kind(self.kind):
            raise ValueError(f"unknown fault kind {self.kind!r}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {self.rate}")

    def applies_to(self, method: str, target: str) -> bool:
        if self.limit is not None and self.fired >= self.limit:
            return False
        if self.methods is not None and method not in self.methods:
            return False
        if self.once_per_path and target.partition("?")[0] in self.fired_paths:
            return False
        return self.path is None or self.path.search(target) is not None


@dataclass
class RequestRecord:
    """One request the proxy received, the fault actually injected into it (if any) and the status
    the upstream answered it with (None: not forwarded, or not answered)."""

    method: str
    target: str
    connection: int
    fault: str | None = None
    status: int | None = None


@dataclass
class _Fault:
    kind: str
    rule: FaultRule
    reset_at: Literal["before", "after", "mid"]


class _ProtocolError(Exception):
    """The peer broke HTTP framing or closed the connection in the middle of a message."""


class _UpstreamWriteError(Exception):
    """The upstream stopped accepting the request (it may have answered early)."""


class _Aborted(Exception):
    """A reset fault fired: the connection has been reset."""


def _quiet(action: Callable[[], object]) -> None:
    with contextlib.suppress(OSError):
        action()


class _Reader:
    """Buffered reads from a socket, so that HTTP framing can be parsed without losing body bytes."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buf = bytearray()

    def read_until(self, delimiter: bytes, limit: int) -> bytes | None:
        """Bytes up to and including ``delimiter``; None at EOF before the first byte."""
        start = 0
        while True:
            end = self._buf.find(delimiter, start)
            if end >= 0:
                end += len(delimiter)
                out = bytes(self._buf[:end])
                del self._buf[:end]
                return out
            if len(self._buf) > limit:
                raise _ProtocolError("header or framing line too long")
            start = max(0, len(self._buf) - len(delimiter) + 1)
            data = self._sock.recv(_BUFSIZE)
            if not data:
                if self._buf:
                    raise _ProtocolError("connection closed in the middle of a header")
                return None
            self._buf += data

    def read_some(self, limit: int) -> bytes:
        """Between 1 and ``limit`` bytes, or b'' at EOF."""
        if self._buf:
            out = bytes(self._buf[:limit])
            del self._buf[:limit]
            return out
        return self._sock.recv(min(limit, _BUFSIZE))

    def read_exact(self, size: int) -> bytes:
        parts = []
        while size:
            data = self.read_some(size)
            if not data:
                raise _ProtocolError("connection closed in the middle of a message")
            parts.append(data)
            size -= len(data)
        return b"".join(parts)

    def has_buffered(self) -> bool:
        return bool(self._buf)


@dataclass
class _Message:
    """The framing-relevant parts of a request or response head."""

    head: bytes
    first_line: str
    headers: dict[str, str]

    @classmethod
    def parse(cls, head: bytes) -> _Message:
        lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise _ProtocolError(f"malformed header line {line[:80]!r}")
            name = name.strip().lower()
            # Repeated headers are joined, as RFC 9110 allows for list-valued fields.
            headers[name] = f"{headers[name]}, {value.strip()}" if name in headers else value.strip()
        return cls(head, lines[0], headers)

    @property
    def chunked(self) -> bool:
        return "chunked" in self.headers.get("transfer-encoding", "").lower()

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        if value is None:
            return None
        try:
            length = int(value.split(",")[0])
        except ValueError as exc:
            raise _ProtocolError(f"bad Content-Length {value!r}") from exc
        if length < 0:
            raise _ProtocolError(f"bad Content-Length {value!r}")
        return length

    def wants_close(self, version: str) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if "close" in tokens:
            return True
        return version == "HTTP/1.0" and "keep-alive" not in tokens


@dataclass
class _Request:
    message: _Message
    method: str
    target: str
    version: str

    @classmethod
    def parse(cls, head: bytes) -> _Request:
        message = _Message.parse(head)
        parts = message.first_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _ProtocolError(f"malformed request line {message.first_line[:80]!r}")
        return cls(message, parts[0].upper(), parts[1], parts[2])

    @property
    def has_body(self) -> bool:
        return self.message.chunked or bool(self.message.content_length)

    @property
    def expects_continue(self) -> bool:
        return self.message.headers.get("expect", "").lower() == "100-continue"

    @property
    def wants_close(self) -> bool:
        return self.message.wants_close(self.version)


@dataclass
class _Plan:
    """What the response side must send for one request, in order."""

    request: _Request
    record: RequestRecord
    fault: _Fault | None = None
    upstream: _Upstream | None = None
    synthetic: bytes | None = None
    close_after: bool = False


class _Upstream:
    """One connection to the upstream server."""

    def __init__(self, address: tuple[str, int], timeout: float) -> None:
        self.sock = socket.create_connection(address, timeout=min(timeout, 10.0))
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = _Reader(self.sock)

    def is_dropped(self) -> bool:
        """Whether the upstream closed this idle connection (or sent something unasked)."""
        if self.reader.has_buffered():
            return True
        poller = select.poll()
        try:
            poller.register(self.sock, select.POLLIN)
            # Readable while idle means EOF, an error, or bytes nobody asked for.
            return bool(poller.poll(0))
        except (OSError, ValueError):
            return True

    def send(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.sock.sendall(data)
        except OSError as exc:
            raise _UpstreamWriteError(str(exc)) from exc

    def close(self) -> None:
        _quiet(lambda: self.sock.shutdown(socket.SHUT_RDWR))
        _quiet(self.sock.close)


def _relay_body(
    reader: _Reader,
    framing: Literal["none", "length", "chunked", "close"],
    length: int,
    send_data: Callable[[bytes], None],
    send_framing: Callable[[bytes], None],
) -> None:
    """Stream one message body from ``reader``: data through ``send_data``, chunk framing through ``send_framing``."""
    if framing == "length":
        _relay_exact(reader, length, send_data)
    elif framing == "close":
        while data := reader.read_some(_BUFSIZE):
            send_data(data)
    elif framing == "chunked":
        while True:
            line = reader.read_until(b"\r\n", _MAX_LINE)
            if line is None:
                raise _ProtocolError("connection closed in the middle of a chunked body")
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError as exc:
                raise _ProtocolError(f"bad chunk size line {line[:40]!r}") from exc
            send_framing(line)
            if size == 0:
                while True:
                    trailer = reader.read_until(b"\r\n", _MAX_HEAD)
                    if trailer is None:
                        raise _ProtocolError("connection closed in the chunked trailer")
                    send_framing(trailer)
                    if trailer == b"\r\n":
                        return
            _relay_exact(reader, size, send_data)
            end = reader.read_exact(2)
            if end != b"\r\n":
                raise _ProtocolError("chunk not followed by CRLF")
            send_framing(end)


def _relay_exact(reader: _Reader, size: int, send: Callable[[bytes], None]) -> None:
    while size:
        data = reader.read_some(min(size, _BUFSIZE))
        if not data:
            raise _ProtocolError("connection closed in the middle of a body")
        size -= len(data)
        send(data)


def _error_code(dialect: Dialect, status: int) -> str:
    """The error code the upstream's cloud would send with ``status``."""
    if dialect == "azure":
        return AZURE_ERROR_CODES.get(status, "InternalError" if status >= 500 else "InvalidInput")
    if dialect == "gcs":
        return GCS_REASONS.get(status, "backendError" if status >= 500 else "invalid")
    if dialect in ("swift", "local"):
        return _reason(status)
    return S3_ERROR_CODES.get(status, "InternalError")


def _reason(status: int) -> str:
    if status == 498:
        return "Rate Limited"  # Swift's ratelimit middleware
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _error_response(
    status: int,
    code: str,
    resource: str,
    request_id: str,
    *,
    head_only: bool,
    close: bool,
    dialect: Dialect = "s3",
) -> bytes:
    """An error response shaped like ``dialect``'s own (S3/Azure XML, GCS JSON, Swift/LOCAL text)."""
    message = "Injected by the cloudstore test fault proxy"
    headers: list[str]
    if dialect == "azure":
        body = (
            '<?xml version="1.0" encoding="utf-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{message}\nRequestId:{request_id}</Message></Error>"
        ).encode()
        headers = ["Content-Type: application/xml", f"x-ms-error-code: {code}", f"x-ms-request-id: {request_id}"]
    elif dialect == "gcs":
        error = {"code": status, "message": message, "errors": [{"reason": code, "message": message}]}
        body = json.dumps({"error": error}).encode()
        headers = ["Content-Type: application/json; charset=UTF-8", f"X-GUploader-UploadID: {request_id}"]
    elif dialect in ("swift", "local"):
        body = f"{code}\n".encode()
        headers = ["Content-Type: text/plain; charset=UTF-8", f"X-Trans-Id: {request_id}"]
    else:
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{escape(code)}</Code><Message>{message}</Message>"
            f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
        ).encode()
        headers = ["Content-Type: application/xml", f"x-amz-request-id: {request_id}"]
    lines = [
        f"HTTP/1.1 {status} {_reason(status)}",
        *headers,
        f"Content-Length: {0 if head_only else len(body)}",
        "Server: cloudstore-faultproxy",
        f"Connection: {'close' if close else 'keep-alive'}",
    ]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


class _Connection:
    """One client connection: a request thread and a response thread around one upstream connection.

    The request thread parses requests, decides faults and forwards; it hands the response
    thread a ``_Plan`` per request, in order. Only the response thread writes to the client.
    """

    def __init__(self, proxy: FaultProxy, client: socket.socket, number: int) -> None:
        self.proxy = proxy
        self.client = client
        self.number = number
        self.client_reader = _Reader(client)
        self.upstream: _Upstream | None = None
        self.plans: queue.SimpleQueue[_Plan | None] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.outstanding = 0
        self.closing = False
        self.torn_down = False
        #: Set when waiting (a stall, a lingering close) should end early.
        self.wake = threading.Event()
        self.reader_done = threading.Event()
        self._alive = 2
        name = f"faultproxy-{proxy.port}-c{number}"
        self.threads = [
            threading.Thread(target=self._run_requests, name=f"{name}-requests", daemon=True),
            threading.Thread(target=self._run_responses, name=f"{name}-responses", daemon=True),
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    # -- shutting down -------------------------------------------------------------------------

    def teardown(self) -> None:
        """Close both sides now (FIN), waking both threads."""
        with self.lock:
            if self.torn_down:
                return
            self.torn_down = True
        _quiet(lambda: self.client.shutdown(socket.SHUT_RDWR))
        self._stop_upstream_and_wake()

    def abort(self) -> None:
        """Reset the client connection (RST, no FIN), waking both threads."""
        with self.lock:
            if self.torn_down:
                return
            self.torn_down = True
        # With SO_LINGER 0, close() sends an RST. SHUT_RD sends nothing to the peer but wakes a
        # thread blocked reading the socket (closing the fd alone would not wake it).
        _quiet(lambda: self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)))
        _quiet(lambda: self.client.shutdown(socket.SHUT_RD))
        self._stop_upstream_and_wake()

    def _stop_upstream_and_wake(self) -> None:
        upstream = self.upstream
        if upstream is not None:
            _quiet(lambda: upstream.sock.shutdown(socket.SHUT_RDWR))
        self.plans.put(None)
        self.wake.set()

    def _close_gracefully(self) -> None:
        with self.lock:
            if self.torn_down:
                return
            self.closing = True
        _quiet(lambda: self.client.shutdown(socket.SHUT_WR))
        upstream = self.upstream
        if upstream is not None:
            _quiet(lambda: upstream.sock.shutdown(socket.SHUT_RDWR))
        self.reader_done.wait(_LINGER_SECONDS)
        self.teardown()

    def _thread_done(self) -> None:
        with self.lock:
            self._alive -= 1
            last = self._alive == 0
        if last:
            _quiet(self.client.close)
            if self.upstream is not None:
                self.upstream.close()
            self.proxy._connection_finished(self)

    # -- the request side ----------------------------------------------------------------------

    def _run_requests(self) -> None:
        try:
            self._request_loop()
        except _Aborted:
            pass
        except (OSError, _ProtocolError):
            self.teardown()
        finally:
            self.reader_done.set()
            self._thread_done()

    def _request_loop(self) -> None:
        while True:
            head = self._read_request_head()
            if head is None or self.torn_down:
                self.wake.set()
                self.plans.put(None)
                return
            if self.closing:
                self._discard_until_eof()
                return
            request = _Request.parse(head)
            record, fault = self.proxy._admit(request, self.number)
            if fault is not None and fault.kind == "reset" and fault.reset_at == "before":
                self.proxy._injected(record, "reset", "reset_before")
                self.abort()
                raise _Aborted
            if fault is not None and fault.kind == "blackhole":
                self._swallow(request, record, fault)
                continue
            if fault is not None and fault.kind not in FORWARDED_KINDS:
                if self._answer_without_forwarding(request, record, fault):
                    continue
                return
            if not self._forward(request, record, fault):
                return

    def _read_request_head(self) -> bytes | None:
        """The next request head, or None when the client closed (or idled out) between requests."""
        while True:
            try:
                head = self.client_reader.read_until(b"\r\n\r\n", _MAX_HEAD)
            except TimeoutError:
                with self.lock:
                    busy = self.outstanding > 0 and not self.torn_down
                if busy:
                    continue
                return None
            if head is None:
                return None
            head = head.lstrip(b"\r\n")
            if head:
                return head

    def _swallow(self, request: _Request, record: RequestRecord, fault: _Fault) -> None:
        """Read the request and its body, forward nothing and never answer (the response side waits)."""
        self.proxy._injected(record, "blackhole")
        self._discard_body(request)
        self._enqueue(_Plan(request, record, fault=fault))

    def _answer_without_forwarding(self, request: _Request, record: RequestRecord, fault: _Fault) -> bool:
        """Queue a synthetic answer; False when the connection must close afterwards."""
        # A server that answers an Expect: 100-continue request before reading its body must
        # close the connection (the client may never send that body).
        early = request.expects_continue and request.has_body
        close = early or request.wants_close
        response = self.proxy._synthetic_response(fault, request, close=close)
        self.proxy._injected(record, fault.kind)
        if not early:
            self._discard_body(request)
        self._enqueue(_Plan(request, record, fault=fault, synthetic=response, close_after=close))
        if close:
            self.plans.put(None)
            self._discard_until_eof()
            return False
        return True

    def _forward(self, request: _Request, record: RequestRecord, fault: _Fault | None) -> bool:
        """Forward one request upstream; False when the connection must close afterwards."""
        try:
            upstream = self._upstream_for_next_request()
        except OSError:
            self.proxy._count("upstream_errors")
            response = _error_response(
                502,
                _error_code(self.proxy.dialect, 502),
                request.target,
                "faultproxy-upstream",
                head_only=request.method == "HEAD",
                close=True,
                dialect=self.proxy.dialect,
            )
            if not (request.expects_continue and request.has_body):
                self._discard_body(request)
            self._enqueue(_Plan(request, record, synthetic=response, close_after=True))
            self.plans.put(None)
            self._discard_until_eof()
            return False
        self._enqueue(_Plan(request, record, fault=fault, upstream=upstream, close_after=request.wants_close))
        self.proxy._count("forwarded")
        send: Callable[[bytes], None] = upstream.send
        if fault is not None and fault.kind == "flip_request" and request.has_body:
            target = request.message.content_length // 2 if request.message.content_length else None
            send = _request_tap(self.proxy, record, upstream.send, target).send
        try:
            upstream.send(request.message.head)
            self._pump_body(request, send, upstream.send)
        except _UpstreamWriteError:
            # The upstream stopped reading: the response side relays whatever it answered.
            self.plans.put(None)
            self._discard_until_eof()
            return False
        if request.wants_close:
            self.plans.put(None)
            self._discard_until_eof()
            return False
        return True

    def _upstream_for_next_request(self) -> _Upstream:
        with self.lock:
            idle = self.outstanding == 0
        upstream = self.upstream
        if upstream is not None and idle and upstream.is_dropped():
            # The upstream closed a kept-alive connection: reconnect, as a client would.
            upstream.close()
            upstream = None
        if upstream is None:
            upstream = _Upstream(self.proxy.upstream, self.proxy.upstream_timeout)
            self.upstream = upstream
            with self.lock:
                torn_down = self.torn_down
            if torn_down:
                upstream.close()
                raise OSError("connection torn down")
        return upstream

    def _pump_body(
        self, request: _Request, send: Callable[[bytes], None], send_framing: Callable[[bytes], None] | None = None
    ) -> None:
        """Relay the request body: its data through ``send``, chunk framing through ``send_framing``."""
        framing = send_framing or send
        if request.message.chunked:
            _relay_body(self.client_reader, "chunked", 0, send, framing)
        elif request.message.content_length:
            _relay_body(self.client_reader, "length", request.message.content_length, send, framing)

    def _discard_body(self, request: _Request) -> None:
        self._pump_body(request, self._discard)

    def _discard_until_eof(self) -> None:
        with contextlib.suppress(OSError):
            while data := self.client_reader.read_some(_BUFSIZE):
                self._discard(data)

    def _discard(self, data: bytes) -> None:
        # After shutdown(SHUT_RD), Linux wakes a blocked reader with EOF but still delivers
        # data that arrives later: stop reading explicitly once the connection is torn down.
        if self.torn_down:
            raise _Aborted

    def _enqueue(self, plan: _Plan) -> None:
        with self.lock:
            self.outstanding += 1
        self.plans.put(plan)

    # -- the response side ---------------------------------------------------------------------

    def _run_responses(self) -> None:
        graceful = True
        try:
            while True:
                plan = self.plans.get()
                if plan is None:
                    break
                try:
                    keep_alive = self._respond(plan)
                finally:
                    with self.lock:
                        self.outstanding -= 1
                if not keep_alive:
                    break
        except _Aborted:
            graceful = False
        except _ProtocolError:
            self.proxy._count("upstream_errors")
            graceful = False
            self.teardown()
        except OSError:
            graceful = False
            self.teardown()
        finally:
            if graceful:
                self._close_gracefully()
            self._thread_done()

    def _respond(self, plan: _Plan) -> bool:
        """Send the response for one request; False when the connection must close afterwards."""
        if plan.synthetic is not None:
            self.client.sendall(plan.synthetic)
            return not plan.close_after
        if plan.fault is not None and plan.fault.kind == "blackhole":
            # Never answer: wait until the client gives up (or the proxy stops), then close.
            self.wake.wait()
            raise _Aborted
        upstream = plan.upstream
        assert upstream is not None
        while True:
            head = upstream.reader.read_until(b"\r\n\r\n", _MAX_HEAD)
            if head is None:
                raise _ProtocolError("upstream closed the connection before answering")
            response = _Message.parse(head)
            parts = response.first_line.split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise _ProtocolError(f"malformed status line {response.first_line[:80]!r}")
            version, status = parts[0], int(parts[1])
            if 100 <= status < 200 and status != 101:
                self.client.sendall(head)  # 100 Continue and friends: relay, then read the real answer
                continue
            break
        plan.record.status = status

        fault = plan.fault
        if fault is not None and fault.kind == "stall":
            self.proxy._injected(plan.record, "stall")
            self.wake.wait(self.proxy.stall_seconds)

        framing: Literal["none", "length", "chunked", "close"]
        length = 0
        if plan.request.method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            framing = "none"
        elif response.chunked:
            framing = "chunked"
        elif response.content_length is not None:
            framing, length = "length", response.content_length
        else:
            framing = "close"
        has_body = framing in ("chunked", "close") or length > 0

        body_fault: str | None = None
        if fault is not None and fault.kind == "reset":
            body_fault = "reset"
            if fault.reset_at == "after" or not has_body:
                self.proxy._injected(plan.record, "reset", "reset_after")
                self.abort()
                raise _Aborted
        elif fault is not None and fault.kind == "flip" and has_body and 200 <= status < 300:
            body_fault = "flip"
        elif fault is not None and fault.kind == "truncate" and has_body:
            body_fault = "truncate"

        self.client.sendall(head)
        if framing != "none":
            tap = _body_tap(self, plan.record, body_fault, length // 2 if framing == "length" else None)
            _relay_body(upstream.reader, framing, length, tap.send, self.client.sendall)
        return not (plan.close_after or framing == "close" or response.wants_close(version))


class _OffsetTap:
    """Passes body data on to ``send``, except the one piece holding offset ``target``, which goes
    to ``hit(piece, index)`` instead (``target`` None: the middle of the first piece)."""

    def __init__(self, send: Callable[[bytes], None], target: int | None, hit: Callable[[bytes, int], None]) -> None:
        self._send = send
        self._hit = hit
        self.target = target
        self.offset = 0
        self.fired = False

    def send(self, data: bytes) -> None:
        if not self.fired:
            if self.target is None:
                self.target = self.offset + len(data) // 2
            index = self.target - self.offset
            if 0 <= index < len(data):
                self.fired = True
                self.offset += len(data)
                self._hit(data, index)
                return
        self.offset += len(data)
        self._send(data)


def _flipped(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0xFF
    return bytes(out)


def _body_tap(connection: _Connection, record: RequestRecord, kind: str | None, target: int | None) -> _OffsetTap:
    """A tap sending a response body to the client with the fault ``kind`` (if any) at ``target``."""
    client, proxy = connection.client, connection.proxy

    def hit(data: bytes, index: int) -> None:
        if kind == "flip":
            proxy._injected(record, "flip")
            client.sendall(_flipped(data, index))
            return
        client.sendall(data[:index])
        if kind == "truncate":
            proxy._injected(record, "truncate")
            connection.teardown()  # FIN: a clean close that leaves the promised body unsent
        else:
            proxy._injected(record, "reset", "reset_mid")
            connection.abort()
        raise _Aborted

    tap = _OffsetTap(client.sendall, target, hit)
    tap.fired = kind is None
    return tap


def _request_tap(
    proxy: FaultProxy, record: RequestRecord, send: Callable[[bytes], None], target: int | None
) -> _OffsetTap:
    """A tap forwarding a request body upstream with one byte inverted at ``target``."""

    def hit(data: bytes, index: int) -> None:
        proxy._injected(record, "flip_request")
        send(_flipped(data, index))

    return _OffsetTap(send, target, hit)


class FaultProxy:
    """A fault-injecting HTTP/1.1 reverse proxy on 127.0.0.1 in front of one loopback upstream.

    ``rates`` maps fault kinds to the share of requests that get them (one draw per request,
    so at most one fault each; the shares must add up to at most 1). ``methods`` and ``path``
    restrict which requests those rates apply to; ``add_rule`` adds more specific rules, which
    are tried first. Use it as a context manager; ``url`` is what clients connect to.
    """

    def __init__(
        self,
        upstream: tuple[str, int] | str,
        rates: Mapping[str, float] | None = None,
        *,
        seed: int | None = None,
        methods: Iterable[str] | None = None,
        path: str | None = None,
        status: int = 403,
        stall_seconds: float = 2.0,
        reset_at: ResetPoint = "random",
        dialect: Dialect = "s3",
        port: int = 0,
        max_connections: int = 128,
        idle_timeout: float = 60.0,
        upstream_timeout: float = 300.0,
        log_size: int = 100_000,
    ) -> None:
        if dialect not in THROTTLE_REPLIES:
            raise ValueError(f"unknown dialect {dialect!r}; choose one of {sorted(THROTTLE_REPLIES)}")
        self.upstream = _loopback_address(upstream)
        #: Whose error format synthetic answers copy: "s3", "azure", "gcs", "swift" or "local".
        self.dialect: Dialect = dialect
        self.stall_seconds = stall_seconds
        self.idle_timeout = idle_timeout
        self.upstream_timeout = upstream_timeout
        self.max_connections = max_connections
        self._requested_port = port
        self._status = status
        self._reset_at: ResetPoint = reset_at
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._rules: list[FaultRule] = []
        self._rate_rules: list[FaultRule] = []
        self._disabled: set[str] = set()
        self._paused = 0
        self._counts: Counter[str] = Counter()
        self._log: deque[RequestRecord] = deque(maxlen=log_size)
        self._connection_numbers = itertools.count(1)
        self._response_ids = itertools.count(1)
        self._connections: set[_Connection] = set()
        self._slots = threading.BoundedSemaphore(max_connections)
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self.port = 0
        self.set_rates(rates or {}, methods=methods, path=path)

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The base URL clients use instead of the upstream's."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> FaultProxy:
        if self._listener is not None:
            raise RuntimeError("proxy already started")
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self._requested_port))
        listener.listen(128)
        listener.settimeout(_POLL_SECONDS)
        self._listener = listener
        self.port = int(listener.getsockname()[1])
        self._accept_thread = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True)
        self._accept_thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, close every connection and join every thread."""
        self._stopping.set()
        if self._listener is not None:
            # Wake the accept loop now rather than at its next poll.
            with contextlib.suppress(OSError), socket.create_connection(self.address, timeout=1):
                pass
        if self._accept_thread is not None:
            self._accept_thread.join(timeout)
        if self._listener is not None:
            _quiet(self._listener.close)
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.teardown()
        for connection in connections:
            for thread in connection.threads:
                thread.join(timeout)
        leftover = [t.name for c in connections for t in c.threads if t.is_alive()]
        if leftover:
            raise RuntimeError(f"fault proxy threads did not stop: {leftover}")

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- configuration -------------------------------------------------------------------------

    def set_rates(
        self, rates: Mapping[str, float], *, methods: Iterable[str] | None = None, path: str | None = None
    ) -> None:
        """Replace the rate-based faults (``{"reset": 0.03, "503": 0.03, ...}``)."""
        method_set = frozenset(m.upper() for m in methods) if methods is not None else None
        pattern = re.compile(path) if path is not None else None
        rules = [
            FaultRule(
                kind,
                rate,
                methods=method_set,
                path=pattern,
                status=self._status,
                reset_at=self._reset_at,
            )
            for kind, rate in rates.items()
        ]
        total = sum(rule.rate for rule in rules)
        if total > 1.0 + 1e-9:
            raise ValueError(f"fault rates add up to {total}, more than 1")
        with self._lock:
            self._rate_rules = rules

    def add_rule(
        self,
        kind: str,
        rate: float = 1.0,
        *,
        methods: Iterable[str] | None = None,
        path: str | None = None,
        status: int | None = None,
        code: str | None = None,
        reset_at: ResetPoint | None = None,
        limit: int | None = None,
        once_per_path: bool = False,
    ) -> FaultRule:
        """Add a rule tried before the rates, e.g. ``add_rule("status", path="^/bucket/key", status=403)``."""
        rule = FaultRule(
            kind,
            rate,
            methods=frozenset(m.upper() for m in methods) if methods is not None else None,
            path=re.compile(path) if path is not None else None,
            status=status if status is not None else self._status,
            code=code,
            reset_at=reset_at if reset_at is not None else self._reset_at,
            limit=limit,
            once_per_path=once_per_path,
        )
        with self._lock:
            self._rules.append(rule)
        return rule

    def remove_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.remove(rule)

    def clear_faults(self) -> None:
        """Remove every rule and rate: the proxy then only relays."""
        with self._lock:
            self._rules = []
            self._rate_rules = []

    def disable(self, *kinds: str) -> None:
        """Stop injecting these kinds (their rules stay, for ``enable``)."""
        with self._lock:
            self._disabled.update(kinds)

    def enable(self, *kinds: str) -> None:
        with self._lock:
            self._disabled.difference_update(kinds)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No faults at all inside this block (e.g. while setting up or checking data)."""
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    # -- observation ---------------------------------------------------------------------------

    @property
    def stats(self) -> Counter[str]:
        """A snapshot of the counts: ``connections``, ``requests``, ``forwarded``, ``upstream_errors``,
        ``faults`` (all injected), one entry per fault kind (``reset``, ``503``, ...) and
        ``reset_before``/``reset_mid``. Absent keys read as 0."""
        with self._lock:
            counts: Counter[str] = Counter(dict.fromkeys(_STAT_KEYS, 0))
            counts.update(dict.fromkeys((rule.kind for rule in (*self._rules, *self._rate_rules)), 0))
            counts.update(self._counts)
            return counts

    @property
    def requests(self) -> list[RequestRecord]:
        """The requests received so far (the latest ``log_size``), with the fault injected into each."""
        with self._lock:
            return list(self._log)

    def count_requests(self, method: str | None = None, path: str | None = None) -> int:
        """How many requests matched ``method`` and the regular expression ``path``."""
        pattern = re.compile(path) if path is not None else None
        return sum(
            1
            for r in self.requests
            if (method is None or r.method == method.upper()) and (pattern is None or pattern.search(r.target))
        )

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._log.clear()

    @property
    def active_connections(self) -> int:
        with self._lock:
            return len(self._connections)

    # -- internals used by the connections ------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            if not self._slots.acquire(timeout=_POLL_SECONDS):
                continue
            client: socket.socket | None = None
            while not self._stopping.is_set():
                try:
                    client, _ = self._listener.accept()
                    break
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.wait(0.05):
                        break
            if client is None or self._stopping.is_set():
                if client is not None:
                    _quiet(client.close)
                self._slots.release()
                return
            client.settimeout(self.idle_timeout)
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = _Connection(self, client, next(self._connection_numbers))
            with self._lock:
                self._connections.add(connection)
                self._counts["connections"] += 1
            connection.start()

    def _connection_finished(self, connection: _Connection) -> None:
        with self._lock:
            self._connections.discard(connection)
        self._slots.release()

    def _admit(self, request: _Request, connection: int) -> tuple[RequestRecord, _Fault | None]:
        """Log a request and draw its fault."""
        record = RequestRecord(request.method, request.target, connection)
        with self._lock:
            self._counts["requests"] += 1
            self._log.append(record)
            return record, self._draw(request.method, request.target)

    def _draw(self, method: str, target: str) -> _Fault | None:
        if self._paused:
            return None
        eligible = [
            rule
            for rule in itertools.chain(self._rules, self._rate_rules)
            if rule.rate > 0 and rule.kind not in self._disabled and rule.applies_to(method, target)
        ]
        if not eligible:
            return None
        draw = self._rng.random()
        cumulative = 0.0
        for rule in eligible:
            cumulative += rule.rate
            if draw < cumulative:
                rule.fired += 1
                rule.fired_paths.add(target.partition("?")[0])
                reset_at: Literal["before", "after", "mid"]
                if rule.reset_at == "random":
                    reset_at = ("before", "after", "mid")[int(self._rng.random() * 3)]
                else:
                    reset_at = rule.reset_at
                return _Fault(rule.kind, rule, reset_at)
        return None

    def _count(self, *keys: str) -> None:
        with self._lock:
            self._counts.update(keys)

    def _injected(self, record: RequestRecord, kind: str, *detail: str) -> None:
        with self._lock:
            record.fault = kind
            self._counts.update((kind, "faults", *detail))

    def _synthetic_response(self, fault: _Fault, request: _Request, *, close: bool) -> bytes:
        kind = fault.kind
        dialect = self.dialect
        if kind == "slowdown":
            status, code = 503, "SlowDown"
        elif kind == "throttle":
            status, code = THROTTLE_REPLIES[dialect]
        elif kind == "error200":
            status, code = 200, "InternalError"
        else:
            status = fault.rule.status if kind == "status" else int(kind)
            code = fault.rule.code or _error_code(dialect, status)
        request_id = f"faultproxy-{next(self._response_ids)}"
        return _error_response(
            status, code, request.target, request_id, head_only=request.method == "HEAD", close=close, dialect=dialect
        )


def _loopback_address(upstream: tuple[str, int] | str) -> tuple[str, int]:
    if isinstance(upstream, str):
        parts = urlsplit(upstream if "://" in upstream else f"http://{upstream}")
        if parts.hostname is None or parts.port is None:
            raise ValueError(f"upstream {upstream!r} needs a host and a port")
        host, port = parts.hostname, parts.port
    else:
        host, port = upstream
    addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    if not addresses or not all(ipaddress.ip_address(a).is_loopback for a in addresses):
        raise ValueError(f"the fault proxy only forwards to loopback, not {host!r}")
    return (host, port)

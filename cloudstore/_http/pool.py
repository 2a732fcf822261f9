"""A bounded pool of keep-alive HTTP/1.1 connections: the transport of the lean request paths.

The SDKs' own transports cost most of a small request's client CPU (issue 15,
``benchmarks/NOTES.md``); a provider's hot requests (single put/get/head, list pages, parts,
batch deletes) instead go over one :class:`ConnectionPool` per backend, straight on
sockets with the HTTP/1.1 framing of :mod:`cloudstore._http.framing`. The pool knows nothing
of any cloud: the provider signs the request and reads the answer.

API (stable: the providers build on it)::

    pool = ConnectionPool(max_connections=pool_size(config), timeouts=Timeouts.from_config(config),
                          ssl_context=ssl_context(verify))
    origin = Origin.from_url("https://s3.example.com")          # (scheme, host, port)
    response = pool.request("GET", origin, "/bucket/key", headers={...})   # headers incl. signature
    response.status, response.headers.get("etag")              # headers: case-insensitive
    response.readinto(memoryview(buffer)) / response.read(n) / response.read()
    response.close()                                            # or ``with response:``
    pool.close()

- At most ``max_connections`` connections per origin are open at once; a request waits (up to
  the read timeout) for one to come back, then fails with a retryable
  :class:`~cloudstore.exceptions.ProviderConnectionException`.
- A connection is checked out per request and goes back to the pool only when its response
  was read to the end (``read``/``readinto`` reaching it, or ``close`` after that); a response
  closed (or garbage-collected) before its end closes its connection instead.
- Connect and read timeouts are the config's :class:`~cloudstore.config.Timeouts`.
- A kept-alive connection the server closed in the meantime is noticed before reuse where it
  can be (the socket is readable), and otherwise when the request fails before any answer: an
  idempotent request (GET, HEAD, PUT, DELETE, or ``idempotent=True``) is then sent once more on
  a fresh connection. Only ``bytes``-like bodies are accepted, or a tuple of them (sent one after
  the other, never joined: a multipart body around a caller's large buffer), so resending is
  always possible.
- Socket errors, timeouts and broken HTTP framing (on the request or while reading the body)
  raise :class:`~cloudstore.exceptions.ProviderConnectionException` (retryable; the SDK-free
  error is chained). An HTTP error *status* is not an exception here: the caller maps it.
- Observers (:func:`add_observer`; the test seam ``cloudstore.testing.sent_requests``) are told of
  every request as it is sent, as a :class:`SentRequest`.
- A forward proxy named by the environment (``HTTP_PROXY``/``HTTPS_PROXY``, ``NO_PROXY``) is
  used as the SDKs use it: https through a ``CONNECT`` tunnel, http with absolute targets.
- Nothing is logged but the method, origin and path of a resent request (never headers, where
  the signature and tokens are, nor the query, where a presigned URL's are).
"""

from __future__ import annotations

import base64
import io
import logging
import os
import select
import socket
import ssl
import threading
import urllib.parse
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

from cloudstore._http import framing
from cloudstore._http.framing import ConnectionClosed, FramingError, Headers
from cloudstore.config import Timeouts
from cloudstore.exceptions import InvalidParamException, ProviderConnectionException

log = logging.getLogger("cloudstore.http")

#: Methods that may be sent again when a stale connection lost them (RFC 9110, 9.2.2).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: Errors that mean a kept-alive connection was already dead when the request went out.
_STALE_ERRORS = (ConnectionClosed, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
#: Everything a socket, TLS or HTTP framing failure raises.
_TRANSPORT_ERRORS = (OSError, FramingError)
#: Methods whose request has a body, so an empty one is sent as ``Content-Length: 0``.
_BODY_METHODS = frozenset({"PUT", "POST", "PATCH"})
#: A body up to this size goes out in one write with the request head (one segment on the wire).
_JOIN_BODY_UP_TO = 64 * 1024
#: Bytes each connection's reader buffers (an answer's head and a small body in one receive).
_READ_BUFFER = 64 * 1024

Body = bytes | bytearray | memoryview
_BYTES_LIKE = (bytes, bytearray, memoryview)


@dataclass(frozen=True)
class Origin:
    """Where requests go: ``scheme`` ("http" or "https"), ``host`` and ``port``."""

    scheme: str
    host: str
    port: int

    @classmethod
    def from_url(cls, url: str) -> Origin:
        """The origin of ``url`` (its default port when it names none)."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            raise InvalidParamException("an endpoint must be an http:// or https:// URL with a host")
        return cls(scheme, parts.hostname, parts.port or (443 if scheme == "https" else 80))

    @property
    def netloc(self) -> str:
        """``host[:port]`` as a ``Host`` header spells it (the port left out when it is the default)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


@dataclass(frozen=True)
class SentRequest:
    """A request as a pool sent it (header names in lower case), for the observers."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes

    def __repr__(self) -> str:  # the headers hold signatures and tokens: names only
        return f"SentRequest({self.method} {self.url.partition('?')[0]}, headers={sorted(self.headers)})"


Observer = Callable[[SentRequest], None]
_observers: list[Observer] = []


def add_observer(observer: Observer) -> None:
    """Call ``observer`` with every request any pool sends from now on (until removed)."""
    _observers.append(observer)


def remove_observer(observer: Observer) -> None:
    _observers.remove(observer)


def ssl_context(verify: bool | str | None = True) -> ssl.SSLContext:
    """The TLS context for ``verify``: ``True``/``None`` the system's CAs, ``False`` no
    verification at all, a path a CA bundle file (or a directory of CA certificates)."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if isinstance(verify, str):
        if os.path.isdir(verify):
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    return ssl.create_default_context()


@dataclass(frozen=True)
class _Proxy:
    """A forward proxy (plain http) and the ``Proxy-Authorization`` its URL's credentials make."""

    origin: Origin
    headers: Mapping[str, str]


def proxy_for(origin: Origin) -> _Proxy | None:
    """The proxy the environment names for ``origin`` (``HTTP_PROXY``, ``HTTPS_PROXY``, ``NO_PROXY``:
    as botocore honours them), or ``None``."""
    url = urllib.request.getproxies().get(origin.scheme)
    if not url or urllib.request.proxy_bypass(origin.host):
        return None
    parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname:
        raise InvalidParamException(f"only plain http:// forward proxies are supported, not {parts.scheme}://")
    headers = {}
    if parts.username is not None:
        pair = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return _Proxy(Origin("http", parts.hostname, parts.port or 80), headers)


class _Connection:
    """One socket (TLS-wrapped for https) and the buffered reader its answers are read from."""

    __slots__ = ("reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = cast(io.BufferedReader, sock.makefile("rb", buffering=_READ_BUFFER))

    def send(self, head: bytes, body: Body | tuple[Body, ...] | None) -> None:
        if body is None:
            self.sock.sendall(head)
        elif isinstance(body, tuple):
            self.sock.sendall(head)
            for piece in body:
                self.sock.sendall(piece)
        elif len(body) <= _JOIN_BODY_UP_TO:
            self.sock.sendall(b"".join((head, body)))
        else:
            self.sock.sendall(head)
            self.sock.sendall(body)

    def close(self) -> None:
        # The reader holds a reference to the socket: both must close for the socket to.
        self.reader.close()
        self.sock.close()


class _Slots:
    """The connections of one origin: a bound on how many are open, the idle ones, and the proxy
    they go through (https: a CONNECT tunnel; http: absolute request targets)."""

    def __init__(self, limit: int, proxy: _Proxy | None) -> None:
        self.free = threading.BoundedSemaphore(limit)
        self.idle: list[_Connection] = []
        self.lock = threading.Lock()
        self.proxy = proxy


class PoolResponse:
    """An answer whose body is read from its connection (see the module's docstring).

    ``status`` (int), ``reason``, ``headers`` (:class:`~cloudstore._http.framing.Headers`:
    case-insensitive ``get``/``get_all``/``items``/``prefixed``).
    """

    __slots__ = (
        "__weakref__",
        "_chunk_left",
        "_done",
        "_keep_alive",
        "_reader",
        "_release",
        "_remaining",
        "headers",
        "reason",
        "status",
    )

    def __init__(
        self,
        status: int,
        reason: str,
        headers: Headers,
        length: int | None,
        keep_alive: bool,
        connection: _Connection,
        release: _Release,
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers
        self._reader = connection.reader
        self._release = release
        #: Body bytes still to come: a count, ``None`` (chunked) or -1 (until the connection closes).
        self._remaining = length
        self._chunk_left = 0
        self._keep_alive = keep_alive and length != -1
        self._done = False
        if length == 0:  # no body (HEAD, 204, 304, Content-Length: 0): done now
            self._finish(reusable=True)

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes of the body (all that is left when negative); ``b""`` at its end."""
        if self._done or size == 0:
            return b""
        remaining = self._remaining
        try:
            if remaining is None:
                return self._read_chunks(size)
            if remaining > 0:
                wanted = remaining if size < 0 else min(size, remaining)
                data = self._reader.read(wanted)
                self._count(len(data), wanted)
                return data
            data = self._reader.read(size)  # until close
        except _TRANSPORT_ERRORS as err:
            self._finish(reusable=False)
            raise _connection_error(err) from err
        if size < 0 or not data:
            self._finish(reusable=False)
        return data

    def readinto(self, buffer: memoryview | bytearray) -> int:
        """Read the body into ``buffer`` (no copy of its own); the bytes read, 0 at the end."""
        if self._done or len(buffer) == 0:
            return 0
        view = memoryview(buffer).cast("B")
        try:
            if self._remaining is None:
                return self._readinto_chunks(view)
            if self._remaining > 0:
                wanted = min(len(view), self._remaining)
                count = self._reader.readinto(view[:wanted])
                self._count(count, wanted)
                return count
            count = self._reader.readinto(view)  # until close
        except _TRANSPORT_ERRORS as err:
            self._finish(reusable=False)
            raise _connection_error(err) from err
        if count == 0:
            self._finish(reusable=False)
        return count

    def close(self) -> None:
        """Done with the answer: its connection goes back to the pool only if the body was read out."""
        if not self._done:
            self._finish(reusable=False)

    def _read_chunks(self, size: int) -> bytes:
        """Up to ``size`` bytes (all when negative) of a chunked body, across its chunks."""
        pieces = []
        left = size
        while left != 0 and self._next_chunk():
            wanted = self._chunk_left if left < 0 else min(self._chunk_left, left)
            data = self._reader.read(wanted)
            if len(data) < wanted:
                raise FramingError("the connection ended inside a chunk of the body")
            pieces.append(data)
            left -= len(data) if left > 0 else 0
            self._chunk_used(len(data))
        return b"".join(pieces)

    def _count(self, count: int, wanted: int) -> None:
        """Account for ``count`` of ``wanted`` body bytes read (fewer: the connection ended early)."""
        assert self._remaining is not None
        if count < wanted:
            raise FramingError(f"the connection ended {self._remaining - count} bytes before the body's end")
        self._remaining -= count
        if self._remaining == 0:
            self._finish(reusable=True)

    def _readinto_chunks(self, view: memoryview) -> int:
        filled = 0
        while filled < len(view) and self._next_chunk():
            wanted = min(self._chunk_left, len(view) - filled)
            count = self._reader.readinto(view[filled : filled + wanted])
            if count < wanted:
                raise FramingError("the connection ended inside a chunk of the body")
            filled += count
            self._chunk_used(count)
        return filled

    def _next_chunk(self) -> bool:
        """Whether body bytes are left in this or a next chunk (the last chunk: done)."""
        if self._chunk_left == 0:
            self._chunk_left = framing.chunk_size(self._reader)
            if self._chunk_left == 0:
                self._finish(reusable=True)
                return False
        return True

    def _chunk_used(self, count: int) -> None:
        self._chunk_left -= count
        if self._chunk_left == 0:
            framing.chunk_end(self._reader)

    def _finish(self, reusable: bool) -> None:
        self._done = True
        self._release(reusable and self._keep_alive)

    def __enter__(self) -> PoolResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<PoolResponse {self.status} {self.reason}>"


class _Release:
    """Hands one checked-out connection back exactly once (also when its response is collected)."""

    __slots__ = ("_connection", "_pool", "_slots")

    def __init__(self, pool: ConnectionPool, slots: _Slots, connection: _Connection) -> None:
        self._pool = pool
        self._slots = slots
        self._connection: _Connection | None = connection

    def __call__(self, reusable: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool._checkin(self._slots, connection, reusable)


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections per origin, at most ``max_connections`` each."""

    def __init__(
        self,
        *,
        max_connections: int,
        timeouts: Timeouts | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if max_connections < 1:
            raise InvalidParamException("a connection pool needs at least one connection")
        self.max_connections = max_connections
        self.timeouts = timeouts or Timeouts()
        #: The TLS context of https connections (``None``: the system's default verification).
        self.ssl_context = ssl_context
        self._origins: dict[Origin, _Slots] = {}
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"ConnectionPool(max_connections={self.max_connections}, origins={len(self._origins)})"

    def request(
        self,
        method: str,
        origin: Origin,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: Body | tuple[Body, ...] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> PoolResponse:
        """Send one request (``target``: the path and query, already quoted) and return the answer
        once its status and headers arrived; the body is read from the response.

        ``headers`` should carry ``Host`` when the request is signed with it (else ``origin.netloc``
        is sent); ``Content-Length`` is added for ``body``.
        """
        headers = dict(headers or {})
        if isinstance(body, tuple):
            if not all(isinstance(piece, _BYTES_LIKE) for piece in body):
                raise InvalidParamException("a pooled request's body pieces must be bytes-like")
            length: int | None = sum(memoryview(piece).nbytes for piece in body)
        elif body is not None:
            if not isinstance(body, _BYTES_LIKE):
                raise InvalidParamException("a pooled request's body must be bytes-like")
            length = memoryview(body).nbytes
        else:
            length = 0 if method in _BODY_METHODS else None
        if length is not None and "Content-Length" not in headers:
            headers["Content-Length"] = str(length)
        if "Host" not in headers and "host" not in headers:
            headers["Host"] = origin.netloc
        # As http.client: without it a server may choose to compress what it sends.
        headers.setdefault("Accept-Encoding", "identity")
        if idempotent is None:
            idempotent = method in IDEMPOTENT_METHODS
        slots = self._slots(origin)
        if _observers:
            sent = SentRequest(
                method,
                f"{origin.scheme}://{origin.netloc}{target}",
                {key.lower(): value for key, value in headers.items()},
                b"".join(body) if isinstance(body, tuple) else bytes(body or b""),
            )
            for observer in list(_observers):
                observer(sent)
        if slots.proxy is not None and origin.scheme == "http":
            target = f"http://{origin.netloc}{target}"  # a forward proxy takes the absolute form
            headers.update(slots.proxy.headers)
        head = framing.request_head(method, target, headers)
        for attempt in (1, 2):
            connection, reused = self._checkout(slots, origin)
            try:
                connection.send(head, body)
                status, reason, answer_headers, http10 = framing.read_head(connection.reader)
                body_length = framing.body_length(method, status, answer_headers)
            except _STALE_ERRORS as err:
                self._checkin(slots, connection, reusable=False)
                if reused and idempotent and attempt == 1:
                    # The server closed the idle connection as we sent on it: nothing was processed.
                    log.debug(
                        "kept-alive connection to %s was closed; resending %s %s",
                        origin.netloc,
                        method,
                        target.partition("?")[0],
                    )
                    continue
                raise _connection_error(err) from err
            except _TRANSPORT_ERRORS as err:
                self._checkin(slots, connection, reusable=False)
                raise _connection_error(err) from err
            except BaseException:
                self._checkin(slots, connection, reusable=False)
                raise
            release = _Release(self, slots, connection)
            answer = PoolResponse(
                status,
                reason,
                answer_headers,
                body_length,
                framing.keeps_alive(answer_headers, http10),
                connection,
                release,
            )
            if not answer._done:
                # An answer dropped unread must not hold its slot forever.
                weakref.finalize(answer, release)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        """Close every idle connection; those checked out close when their answers are done."""
        with self._lock:
            self._closed = True
            origins = list(self._origins.values())
        for slots in origins:
            with slots.lock:
                idle, slots.idle = slots.idle, []
            for connection in idle:
                connection.close()

    def idle_connections(self, origin: Origin) -> int:
        """How many kept-alive connections to ``origin`` wait for a request (for tests and stats)."""
        slots = self._origins.get(origin)
        return len(slots.idle) if slots is not None else 0

    # --- internals --------------------------------------------------------------------------

    def _slots(self, origin: Origin) -> _Slots:
        slots = self._origins.get(origin)
        if slots is None:
            with self._lock:
                slots = self._origins.get(origin)
                if slots is None:
                    slots = self._origins[origin] = _Slots(self.max_connections, proxy_for(origin))
        return slots

    def _checkout(self, slots: _Slots, origin: Origin) -> tuple[_Connection, bool]:
        """A connection to ``origin`` (an idle live one when there is one) and whether it was reused."""
        if not slots.free.acquire(timeout=self.timeouts.read):
            raise ProviderConnectionException(
                f"no connection to {origin.netloc} came free in {self.timeouts.read:g} s "
                f"(all {self.max_connections} in use: are response bodies left unread?)"
            )
        try:
            while True:
                with slots.lock:
                    connection = slots.idle.pop() if slots.idle else None
                if connection is None:
                    return self._connect(origin, slots.proxy), False
                if not _dropped(connection.sock):
                    return connection, True
                connection.close()
        except BaseException:
            slots.free.release()
            raise

    def _connect(self, origin: Origin, proxy: _Proxy | None) -> _Connection:
        host, port = (proxy.origin.host, proxy.origin.port) if proxy else (origin.host, origin.port)
        try:
            sock = socket.create_connection((host, port), timeout=self.timeouts.connect)
        except _TRANSPORT_ERRORS as err:
            raise _connection_error(err) from err
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if origin.scheme == "https":
                if proxy:
                    _open_tunnel(sock, origin, proxy)
                context = self.ssl_context or _default_context()
                sock = context.wrap_socket(sock, server_hostname=origin.host)
        except _TRANSPORT_ERRORS as err:
            sock.close()
            raise _connection_error(err) from err
        except BaseException:
            sock.close()
            raise
        # Connected within the connect timeout: from now on each read waits up to the read timeout.
        sock.settimeout(self.timeouts.read)
        return _Connection(sock)

    def _checkin(self, slots: _Slots, connection: _Connection, reusable: bool) -> None:
        try:
            if reusable and not self._closed:
                with slots.lock:
                    slots.idle.append(connection)
            else:
                connection.close()
        finally:
            slots.free.release()


def _open_tunnel(sock: socket.socket, origin: Origin, proxy: _Proxy) -> None:
    """Ask the forward proxy on ``sock`` for a tunnel to ``origin`` (``CONNECT``)."""
    authority = f"[{origin.host}]:{origin.port}" if ":" in origin.host else f"{origin.host}:{origin.port}"
    sock.sendall(framing.request_head("CONNECT", authority, {"Host": authority, **proxy.headers}))
    # The proxy sends nothing after its answer until TLS begins: this reader cannot read past it.
    with sock.makefile("rb") as reader:
        status, reason, _headers, _http10 = framing.read_head(reader)
    if status != 200:
        raise FramingError(f"the proxy refused the tunnel to {origin.netloc}: {status} {reason}")


_DEFAULT_CONTEXT: ssl.SSLContext | None = None


def _default_context() -> ssl.SSLContext:
    global _DEFAULT_CONTEXT
    if _DEFAULT_CONTEXT is None:
        _DEFAULT_CONTEXT = ssl_context(True)
    return _DEFAULT_CONTEXT


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle connection is unusable: closed, or readable (the server's FIN, or stray bytes)."""
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


def _connection_error(err: BaseException) -> ProviderConnectionException:
    kind = "timed out" if isinstance(err, TimeoutError) else "failed"
    return ProviderConnectionException(f"connection to the service {kind}: {type(err).__name__}: {err}")


__all__ = [
    "IDEMPOTENT_METHODS",
    "ConnectionPool",
    "Origin",
    "PoolResponse",
    "SentRequest",
    "add_observer",
    "remove_observer",
    "ssl_context",
]

"""``cloudstore serve``: the HTTP server behind LOCAL signed URLs.

It serves only requests carrying a valid signature from
:meth:`LocalBackend.sign_url`: GET (and HEAD) of a readable URL, streamed, with
``Range``; PUT of a writable URL, written atomically. Expired, tampered,
wrong-method and wrong-object URLs get 403 and touch nothing.

HTTP itself (parsing, framing, keep-alive) is uvicorn's, with the h11 parser;
this module is an ASGI application plus the limits uvicorn does not enforce on
its own: a cap on open connections, a deadline for a request's headers, for
each piece of a request body and for a client that stops reading a response.
It is imported only by ``cloudstore serve``: ``import cloudstore`` never loads
uvicorn.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import errno
import ipaddress
import json
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qs

from cloudstore import _names as names
from cloudstore.backend import ObjectInfo
from cloudstore.config import Config
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    PermissionDeniedException,
    PreconditionFailedException,
)
from cloudstore.providers.local import SPEC
from cloudstore.providers.local.auth import PINNED_PARAMETERS, check_secret, refusal
from cloudstore.providers.local.backend import META_HEADER, LocalBackend

log = logging.getLogger("cloudstore.providers.local")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Temporary files older than this (seconds since last written) are left over from a crash.
STALE_TEMP_AGE = 3600.0

_CHUNK = 1024 * 1024
#: More digits than any file size or Unix time: a longer number is refused before ``int()`` sees it.
_MAX_DIGITS = 18
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[^\x00-\x1f\x7f])*"'
#: A media type as RFC 9110 defines it: an obs-folded or injected header cannot pass for one.
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*[ \t]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Limits:
    """Bounds on what clients can hold: connections, and time without progress."""

    #: Open connections; one more is answered 503 and closed.
    max_connections: int = 100
    #: Seconds allowed for a request's headers, between two pieces of a request body, and for a
    #: client that stops reading a response.
    timeout: float = 30.0
    #: Seconds an idle kept-alive connection stays open.
    keep_alive: float = 5.0
    #: Connections waiting to be accepted.
    backlog: int = 1024
    #: Longest request line plus headers, in bytes.
    max_header_bytes: int = 16 * 1024


def is_loopback(host: str) -> bool:
    """Whether ``host`` resolves only to loopback addresses."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    return all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def _number(text: str) -> int | None:
    """ASCII digits as an int, a huge value for more than ``_MAX_DIGITS`` digits, None if not digits.

    (``str.isdigit`` also accepts "²", which ``int`` refuses; ``int`` of 5,000 digits raises.)
    """
    if not (text.isascii() and text.isdigit()):
        return None
    return int(text) if len(text) <= _MAX_DIGITS else 10**_MAX_DIGITS


def _header_value(value: str | None) -> bytes | None:
    """``value`` as header bytes, or None if it cannot be one (control characters, not Latin-1)."""
    if not value or _CONTROL.search(value):
        return None
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return None


class _Answer(Exception):
    """Raised to end a request with a plain-text error answer."""

    def __init__(self, status: int, message: str, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.close = close


def _content_md5(values: list[str]) -> bytes | None:
    """The digest a PUT's ``Content-MD5`` header promises (``None``: no header); 400 if malformed."""
    if not values:
        return None
    try:
        digest = base64.b64decode(values[0].strip(), validate=True) if len(values) == 1 else b""
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise _Answer(400, "Content-MD5 must be one base64 MD5 digest", close=True)
    return digest


def _classify(error: BaseException) -> _Answer:
    """The answer for a failed storage operation: a fixed message, never one naming a path."""
    if isinstance(error, OSError):
        if error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return _Answer(507, "not enough storage for this object", close=True)
        if error.errno in (errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.ENOTEMPTY):
            return _Answer(409, "on LOCAL an object name cannot also be a folder of other objects", close=True)
        if error.errno == errno.ENAMETOOLONG:
            return _Answer(400, "the object's path is too long for this file system", close=True)
        if error.errno == errno.ENOENT:
            return _Answer(404, "no such object")
        return _Answer(500, "storage error", close=True)
    if isinstance(error, NotFoundException):
        return _Answer(404, "no such bucket" if error.code == "NoSuchBucket" else "no such object")
    if isinstance(error, InvalidNameException):
        return _Answer(400, "bad object path", close=True)
    if isinstance(error, PermissionDeniedException):
        return _Answer(403, "permission denied", close=True)
    if isinstance(error, PreconditionFailedException):
        return _Answer(412, "precondition failed", close=True)
    if isinstance(error, ChecksumMismatchException):
        return _Answer(400, "the body does not match its Content-MD5; nothing stored", close=True)
    if isinstance(error, InvalidParamException) and error.status == 416:
        return _Answer(416, "range not satisfiable")
    return _Answer(500, "storage error", close=True)


class _Request:
    """One request's scope, with the answer it got (for the access log)."""

    def __init__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self.method: str = scope["method"]
        self.headers: dict[str, list[str]] = {}
        for key, value in scope["headers"]:
            self.headers.setdefault(key.decode("latin-1").lower(), []).append(value.decode("latin-1"))
        self.status: int | None = None
        self.body_read = False

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None

    @property
    def has_body(self) -> bool:
        return "transfer-encoding" in self.headers or self.header("content-length") not in (None, "0")

    async def start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def body(self, data: bytes, more: bool = False) -> None:
        await self._send({"type": "http.response.body", "body": data, "more_body": more})

    async def answer(self, answer: _Answer) -> None:
        data = (answer.message + "\n").encode("utf-8")
        headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(data)).encode())]
        if answer.close or (self.has_body and not self.body_read):
            # The body was not read: on a kept-alive connection it would be waited for (or worse,
            # parsed as the next request); close instead.
            headers.append((b"connection", b"close"))
        await self.start(answer.status, headers)
        await self.body(b"" if self.method == "HEAD" else data)


class _BodyReader:
    """A request body as a blocking ``read()``, for the storage code running in a worker thread.

    Each piece must arrive within ``timeout`` seconds: a client that promises a body and stops
    sending does not hold a thread and a temporary file for longer. The next piece is asked for
    as soon as one is handed over, so the event loop receives while the thread writes.
    """

    def __init__(self, receive: Receive, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        self._receive = receive
        self._loop = loop
        self._timeout = timeout
        self._pending = b""
        self._ended = False
        self._next_piece: Future[bytes] | None = None
        self.timed_out = False
        self.disconnected = False

    async def _next(self) -> bytes:
        """About ``_CHUNK`` bytes of the body (less at its end); b"" if it stopped arriving."""
        # Pieces arrive at the socket's pace (64-256 KiB): gathered here, the worker thread is
        # woken once per MiB rather than once per piece.
        pieces: list[bytes] = []
        size = 0
        while not self._ended and size < _CHUNK:
            try:
                message = await asyncio.wait_for(self._receive(), self._timeout)
            except TimeoutError:
                self.timed_out = True
                return b""
            if message["type"] == "http.disconnect":
                self.disconnected = True
                return b""
            self._ended = not message.get("more_body", False)
            data: bytes = message.get("body", b"")
            pieces.append(data)
            size += len(data)
        return pieces[0] if len(pieces) == 1 else b"".join(pieces)

    def read(self, size: int = -1) -> bytes:
        if not self._pending:
            if self._next_piece is None:
                self._next_piece = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
            self._pending = self._next_piece.result(self._timeout + 5)
            self._next_piece = None
            if self._pending and not self._ended:
                self._next_piece = asyncio.run_coroutine_threadsafe(self._next(), self._loop)
        if size < 0 or size >= len(self._pending):
            data, self._pending = self._pending, b""
        else:
            data, self._pending = self._pending[:size], self._pending[size:]
        return data

    def close(self) -> None:
        """Stop waiting for a piece nobody will read (the write failed)."""
        if self._next_piece is not None:
            self._next_piece.cancel()


class SignedURLApp:
    """The ASGI application: signed GET, HEAD and PUT over one LOCAL root."""

    def __init__(self, backend: LocalBackend, secret: str, limits: Limits, executor: ThreadPoolExecutor) -> None:
        check_secret(secret)
        self.backend = backend
        self.secret = secret
        self.limits = limits
        self._executor = executor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = _Request(scope, receive, send)
        try:
            await self._handle(request)
        except _Answer as answer:
            await self._answer(request, answer)
        except Exception as error:  # never a traceback in the log, nor a path in an answer
            log.error("request failed (%s)", type(error).__name__)
            await self._answer(request, _Answer(500, "internal error", close=True))
        # Only the path (percent-encoded, so one line): the query carries the signature.
        path = scope.get("raw_path", b"").decode("ascii", "replace")
        log.info("%s %s %s", request.method, path, request.status or "-")

    async def _answer(self, request: _Request, answer: _Answer) -> None:
        if request.status is None:  # no response begun yet
            await request.answer(answer)

    async def _handle(self, request: _Request) -> None:
        method = request.method
        # Ambiguous framing is refused before anything else (a proxy in front may frame it otherwise).
        if "transfer-encoding" in request.headers and "content-length" in request.headers:
            raise _Answer(400, "both Content-Length and Transfer-Encoding", close=True)
        if method not in ("GET", "HEAD", "PUT", "POST"):
            raise _Answer(403, "only GET, HEAD, PUT and POST are served")
        if method in ("GET", "HEAD") and request.has_body:
            raise _Answer(400, f"a {method} request carries no body", close=True)
        bucket, name, pinned = self._authorised(request, "GET" if method == "HEAD" else method)
        if method == "PUT":
            await self._put(request, bucket, name, pinned)
        elif method == "POST":
            await self._post(request, bucket, name, pinned)
        else:
            await self._get(request, bucket, name)

    def _authorised(self, request: _Request, method: str) -> tuple[str, str, dict[str, str]]:
        """The (bucket, name) this request may act on and what its URL pins (signed with it);
        raises the 400/403 answer otherwise."""
        bucket, _, name = request.scope["path"].lstrip("/").partition("/")
        try:
            names.local_bucket_name(bucket)
            names.local_object_name(name)
        except InvalidNameException:
            raise _Answer(400, "bad object path") from None
        query = parse_qs(request.scope.get("query_string", b"").decode("latin-1"))
        signed_method = query.get("method", [""])[0]
        expires = _number(query.get("expires", [""])[0])
        signature = query.get("signature", [""])[0]
        if expires is None or expires >= 10**_MAX_DIGITS or not signature:
            raise _Answer(403, "missing or malformed signature")
        pinned = {key: query[key][0] for key in PINNED_PARAMETERS if key in query}
        refused = refusal(self.secret, method, bucket, name, (signed_method, expires, signature), pinned)
        if refused:
            raise _Answer(403, refused)
        return bucket, name, pinned

    # --- GET and HEAD ---------------------------------------------------------------
    async def _get(self, request: _Request, bucket: str, name: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            opened = await loop.run_in_executor(self._executor, self.backend.open_object, bucket, name)
        except (OSError, CloudStoreException) as error:
            raise _classify(error) from None
        if opened is None:
            raise _Answer(404, "no such object")
        handle, info = opened  # the headers and the body come from the same version of the file
        with handle:
            await self._send_object(request, handle, info)

    async def _send_object(self, request: _Request, handle: BinaryIO, info: ObjectInfo) -> None:
        start, end, status = 0, info.size - 1, 200
        range_header = request.header("range")
        if range_header and info.size > 0:
            match = _RANGE.match(range_header.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = _number(match.group(1)), _number(match.group(2))
                if first is not None:
                    start, end = first, min(last, info.size - 1) if last is not None else info.size - 1
                else:
                    start, end = max(0, info.size - (last or 0)), info.size - 1
                if start > end or start >= info.size:
                    size = str(info.size).encode()
                    await request.start(416, [(b"content-range", b"bytes */" + size), (b"content-length", b"0")])
                    await request.body(b"")
                    return
                status = 206
        length = end - start + 1 if info.size else 0
        content_type = _header_value(info.content_type)
        if content_type is None:
            # Stored before content types were checked: never written out as a header.
            log.warning("stored content type is not a valid header value; served as application/octet-stream")
            content_type = b"application/octet-stream"
        headers = [
            (b"content-type", content_type),
            (b"content-length", str(length).encode()),
            (b"accept-ranges", b"bytes"),
        ]
        etag = _header_value(info.etag)
        if etag:
            headers.append((b"etag", b'"' + etag + b'"'))
        if status == 206:
            headers.append((b"content-range", f"bytes {start}-{end}/{info.size}".encode()))
        await request.start(status, headers)
        if request.method == "HEAD" or length == 0:
            await request.body(b"")
            return
        await self._stream(request, handle, start, length)

    async def _stream(self, request: _Request, handle: BinaryIO, position: int, length: int) -> None:
        loop = asyncio.get_running_loop()
        gone = asyncio.Event()

        async def watch() -> None:  # the server reports a hang-up as an http.disconnect message
            while (await request.receive())["type"] != "http.disconnect":
                pass
            gone.set()

        watcher = asyncio.create_task(watch())
        try:
            fd = handle.fileno()
            while length > 0:
                chunk = await loop.run_in_executor(self._executor, os.pread, fd, min(_CHUNK, length), position)
                if gone.is_set():
                    log.info("client went away")
                    return
                if not chunk:
                    # Truncated in place behind cloudstore's back: returning with the response
                    # incomplete makes the server drop the connection (a short body, never a wrong one).
                    log.warning("object shrank while being served; connection dropped")
                    return
                position += len(chunk)
                length -= len(chunk)
                await request.body(chunk, more=length > 0)
        finally:
            watcher.cancel()

    # --- PUT --------------------------------------------------------------------------
    async def _put(self, request: _Request, bucket: str, name: str, pinned: dict[str, str]) -> None:
        length = _number(request.header("content-length") or "")
        if length is None or "transfer-encoding" in request.headers:
            raise _Answer(411, "Content-Length is required", close=True)
        if length >= 10**_MAX_DIGITS:
            raise _Answer(413, "the body is too large", close=True)
        content_type: str | None = None
        types = request.headers.get("content-type", [])
        if len(types) > 1:
            raise _Answer(400, "more than one Content-Type", close=True)
        if types:
            if not _MEDIA_TYPE.fullmatch(types[0]):
                raise _Answer(400, "Content-Type is not a media type (type/subtype; parameters)", close=True)
            content_type = types[0]
        content_md5 = _content_md5(request.headers.get("content-md5", []))
        metadata = _check_pins(request, pinned, content_type)
        loop = asyncio.get_running_loop()
        reader = _BodyReader(request.receive, loop, self.limits.timeout)
        try:
            await loop.run_in_executor(
                self._executor,
                self.backend.write_stream,
                bucket,
                name,
                reader,
                length,
                content_type,
                content_md5,
                metadata,
            )
        except (OSError, CloudStoreException) as error:
            reader.close()
            if reader.disconnected:
                log.info("client went away during a PUT; nothing stored")
                return
            if reader.timed_out:
                log.info("PUT body stalled for %ss; nothing stored", self.limits.timeout)
                raise _Answer(408, "the request body stopped arriving", close=True) from None
            raise _classify(error) from None
        request.body_read = True
        await request.start(200, [(b"content-length", b"0")])
        await request.body(b"")

    # --- POST: a browser form upload --------------------------------------------------
    async def _post(self, request: _Request, bucket: str, name: str, pinned: dict[str, str]) -> None:
        max_size = _number(pinned.get("max_size", ""))
        if max_size is None:
            raise _Answer(403, "this URL is no form upload")
        length = _number(request.header("content-length") or "")
        if length is None or "transfer-encoding" in request.headers:
            raise _Answer(411, "Content-Length is required", close=True)
        if length > max_size + _FORM_OVERHEAD:
            raise _Answer(413, f"the form is larger than its file may be ({max_size} bytes)", close=True)
        kind = request.header("content-type") or ""
        boundary = _FORM_BOUNDARY.search(kind)
        if not kind.lower().startswith("multipart/form-data") or boundary is None:
            raise _Answer(400, "a form upload is multipart/form-data with a boundary", close=True)
        loop = asyncio.get_running_loop()
        reader = _BodyReader(request.receive, loop, self.limits.timeout)
        form = _FormReader(reader, boundary.group(1).strip('"').encode("latin-1"), length)
        temp = self.backend.temp_file()
        try:
            part_type = await loop.run_in_executor(self._executor, form.save_file, temp, max_size)
            content_type = pinned.get("content_type")
            if content_type is not None and part_type != content_type:
                raise _Answer(403, "the file's content type is not the one this form is signed for", close=True)
            await loop.run_in_executor(
                self._executor, self.backend.store_file, bucket, name, temp, content_type or part_type
            )
        except (OSError, CloudStoreException) as error:
            reader.close()
            raise _classify(error) from None
        except _Answer:
            reader.close()
            raise
        finally:
            temp.unlink(missing_ok=True)
        request.body_read = True
        await request.start(204, [])
        await request.body(b"")


#: What a form may hold besides its file's bytes (boundaries, part headers, small fields).
_FORM_OVERHEAD = 64 * 1024
_FORM_BOUNDARY = re.compile(r";\s*boundary=(\"[^\"]{1,70}\"|[^;\s]{1,70})", re.IGNORECASE)


class _FormReader:
    """Reads a multipart/form-data body in a worker thread: small fields are skipped, the
    ``file`` field's bytes are written to a file, at most ``max_size`` of them."""

    def __init__(self, reader: _BodyReader, boundary: bytes, length: int) -> None:
        self._reader = reader
        self._delimiter = b"\r\n--" + boundary
        self._left = length
        self._buffer = b"\r\n"  # the first delimiter has no line break before it
        #: The form's text fields read so far (only ``content-type`` is kept).
        self.fields: dict[str, str] = {}

    def _more(self) -> None:
        if self._left <= 0:
            raise _Answer(400, "the form ended early", close=True)
        chunk = self._reader.read(min(self._left, _CHUNK))
        if not chunk:
            raise _Answer(408 if self._reader.timed_out else 400, "the form stopped arriving", close=True)
        self._left -= len(chunk)
        self._buffer += chunk

    def _until(self, marker: bytes, sink: Callable[[bytes], object], limit: int) -> None:
        """Hand everything before ``marker`` to ``sink`` (at most ``limit`` bytes) and skip the marker."""
        passed = 0
        while True:
            found = self._buffer.find(marker)
            if found >= 0:
                data, self._buffer = self._buffer[:found], self._buffer[found + len(marker) :]
            else:
                keep = len(marker) - 1
                data, self._buffer = self._buffer[: max(0, len(self._buffer) - keep)], self._buffer[-keep:]
            passed += len(data)
            if passed > limit:
                raise _Answer(413, f"the file is larger than {limit} bytes", close=True)
            if data:
                sink(data)
            if found >= 0:
                return
            self._more()

    def save_file(self, path: Path, max_size: int) -> str | None:
        """Write the ``file`` field to ``path``; its content type (``None``: not given)."""
        self._until(self._delimiter, lambda _: None, _FORM_OVERHEAD)
        saved = False
        content_type: str | None = None
        while True:
            while len(self._buffer) < 2:
                self._more()
            if self._buffer.startswith(b"--"):  # the closing delimiter
                break
            head = bytearray()
            self._until(b"\r\n\r\n", head.extend, _FORM_OVERHEAD)
            headers = _part_headers(bytes(head))
            disposition = headers.get("content-disposition", "")
            field = _FORM_NAME.search(disposition)
            if field is not None and field.group(1) == "file" and not saved:
                content_type = headers.get("content-type")
                given = self.fields.get("content-type", content_type)
                if given is not None and not _MEDIA_TYPE.fullmatch(given):
                    raise _Answer(400, "the file's Content-Type is not a media type", close=True)
                with open(path, "wb") as out:
                    self._until(self._delimiter, out.write, max_size)
                saved = True
            elif field is not None and field.group(1).lower() == "content-type" and not saved:
                value = bytearray()
                self._until(self._delimiter, value.extend, 1024)
                self.fields["content-type"] = value.decode("latin-1")
            else:
                self._until(self._delimiter, lambda _: None, _FORM_OVERHEAD)
        if not saved:
            raise _Answer(400, "the form has no 'file' field", close=True)
        # As on S3 and GCS, a Content-Type field (before the file) sets the object's type.
        return self.fields.get("content-type", content_type)


_FORM_NAME = re.compile(r';\s*name="([^"]*)"')


def _part_headers(head: bytes) -> dict[str, str]:
    """A form part's headers (the first line is what followed the delimiter: its line break)."""
    headers: dict[str, str] = {}
    for line in head.decode("latin-1").split("\r\n"):
        name, sep, value = line.partition(":")
        if sep:
            headers[name.strip().lower()] = value.strip()
    return headers


def _check_pins(request: _Request, pinned: dict[str, str], content_type: str | None) -> dict[str, str]:
    """Refuse (403) a PUT whose headers differ from what its URL pins; the metadata to store."""
    if "max_size" in pinned:
        raise _Answer(403, "this URL is a form upload (POST)")
    if "content_type" in pinned and content_type != pinned["content_type"]:
        raise _Answer(403, "Content-Type is not the one this URL is signed for")
    if "content_md5" in pinned and request.header("content-md5") != pinned["content_md5"]:
        raise _Answer(403, "Content-MD5 is not the one this URL is signed for")
    sent = {
        key[len(META_HEADER) :]: values[0] for key, values in request.headers.items() if key.startswith(META_HEADER)
    }
    wanted = json.loads(pinned["meta"]) if "meta" in pinned else {}
    if sent != wanted:
        raise _Answer(403, "the metadata headers are not the ones this URL is signed for")
    return sent


def _protocol_class(limits: Limits) -> type:
    """uvicorn's h11 protocol, plus a connection cap and the deadlines uvicorn lacks."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    timeout_answer = b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    busy_answer = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

    class Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None
        _stall_timer: asyncio.TimerHandle | None = None
        _timed_cycle: object = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                log.warning("connection refused: %d open already", limits.max_connections)
                transport.write(busy_answer)
                transport.close()
                return
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._cancel_header_timer()
            self._timed_cycle = self.cycle
            self._header_timer = self.loop.call_later(limits.timeout, self._header_timeout)

        def _cancel_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _header_timeout(self) -> None:
            """No complete request line and headers in time (including a slow trickle of them)."""
            if self.transport.is_closing() or self.cycle is not self._timed_cycle:
                return
            log.info("request headers not received within %ss; connection closed", limits.timeout)
            if self.conn.our_state in (h11.IDLE, h11.DONE):
                self.transport.write(timeout_answer)
            self.transport.close()

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not self._timed_cycle:  # a request's headers arrived
                self._cancel_header_timer()

        def on_response_complete(self) -> None:
            # Armed first: a pipelined request parsed by the call below cancels it again.
            self._arm_header_timer()  # the next request's headers must arrive in time too
            super().on_response_complete()

        def send_400_response(self, msg: str) -> None:
            log.warning("malformed request refused (400)")
            super().send_400_response(msg)

        def pause_writing(self) -> None:
            super().pause_writing()
            if self._stall_timer is None:
                self._stall_timer = self.loop.call_later(limits.timeout, self._stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
                self._stall_timer = None

        def _stalled(self) -> None:
            log.info("client stopped reading for %ss; connection dropped", limits.timeout)
            self.transport.abort()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_header_timer()
            if self._stall_timer is not None:
                self._stall_timer.cancel()
            super().connection_lost(exc)

    return Protocol


def _bind(host: str, port: int, backlog: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class SignedURLServer:
    """``cloudstore serve`` over one LOCAL root: bound on construction, serving in :meth:`serve_forever`.

    Raises ``ValueError`` for a weak secret or a root that is not a folder, ``OSError`` if the
    address cannot be bound.
    """

    def __init__(
        self, root: str, secret: str, host: str = "127.0.0.1", port: int = 8765, limits: Limits | None = None
    ) -> None:
        check_secret(secret)
        if not os.path.isdir(root):
            raise ValueError(f"the root {root!r} is not an existing folder")
        self.limits = limits or Limits()
        self.backend = LocalBackend(Config(SPEC, {"local_root": root}))
        removed = self.backend.collect_stale_temp_files(STALE_TEMP_AGE)
        if removed:
            log.info("removed %d temporary file(s) left over by interrupted uploads", removed)
        self._executor = ThreadPoolExecutor(self.limits.max_connections, thread_name_prefix="cloudstore-serve")
        self.app = SignedURLApp(self.backend, secret, self.limits, self._executor)
        self.socket = _bind(host, port, self.limits.backlog)
        self.host = host
        self.port: int = self.socket.getsockname()[1]

    def serve_forever(self) -> None:
        """Serve until SIGINT or SIGTERM (open requests get a few seconds to finish)."""
        import uvicorn

        config = uvicorn.Config(
            self.app,
            http=_protocol_class(self.limits),
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_config=None,
            access_log=False,  # uvicorn's would log the query, and with it the signature
            server_header=False,
            proxy_headers=False,
            timeout_keep_alive=int(max(1, self.limits.keep_alive)),
            timeout_graceful_shutdown=5,
            backlog=self.limits.backlog,
            h11_max_incomplete_event_size=self.limits.max_header_bytes,
        )
        uvicorn.Server(config).run(sockets=[self.socket])

    def close(self) -> None:
        self.socket.close()
        self._executor.shutdown(wait=False, cancel_futures=True)

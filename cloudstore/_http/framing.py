"""HTTP/1.1 message framing for the connection pool: a request head out, an answer's head and
body in (RFC 9112).

Why not ``http.client``: it reads every answer's header block through the ``email`` package
and writes a request header by header, about a sixth of a small request's client CPU on the
lean paths; ``h11`` is slower still. Measured in ``benchmarks/NOTES.md`` ("The pool's own
HTTP/1.1 framing"). What is covered is what the pool meets: ``Content-Length``, chunked and
close-delimited bodies, interim 1xx answers, answers without a body (to HEAD; 204, 304).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import overload

from cloudstore.exceptions import InvalidParamException

#: The longest status, header or chunk-size line accepted (as http.client's ``_MAXLINE``).
MAX_LINE = 65536
#: The most header fields one answer may have (as http.client's ``_MAXHEADERS``).
MAX_HEADERS = 100
#: A request target holds no whitespace or control characters (they would split the request line).
_BAD_TARGET = re.compile("[\x00-\x20\x7f]")


class FramingError(Exception):
    """The bytes on the connection are no valid HTTP/1.1 answer (or it ended inside one)."""


class ConnectionClosed(FramingError):
    """The connection ended before an answer began: on a kept-alive connection, the server had
    closed it while it was idle."""


class Headers:
    """An answer's header fields: names case-insensitive, the first value of a repeated name for
    ``get`` (as ``http.client``'s message), all of them from ``get_all``."""

    __slots__ = ("_fields", "_first")

    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._fields = fields
        # Built from the end, so that the first of a repeated name is the one kept.
        self._first = {name.lower(): value for name, value in reversed(fields)}

    @overload
    def get(self, name: str) -> str | None: ...
    @overload
    def get(self, name: str, default: str) -> str: ...
    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)

    def __getitem__(self, name: str) -> str | None:
        return self._first.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._first

    def get_all(self, name: str) -> list[str]:
        lower = name.lower()
        if len(self._first) == len(self._fields):  # no name repeated: at most one value
            value = self._first.get(lower)
            return [] if value is None else [value]
        return [value for key, value in self._fields if key.lower() == lower]

    def items(self) -> list[tuple[str, str]]:
        return list(self._fields)

    def prefixed(self, prefix: str) -> dict[str, str]:
        """The fields whose names begin with ``prefix`` (lower case; matched case-insensitively),
        keyed by the rest of the name as received: a service's user metadata headers."""
        size = len(prefix)
        return {name[size:]: value for name, value in self._fields if name[:size].lower() == prefix}

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:  # names only: an answer may carry tokens (Set-Cookie, ...)
        return f"Headers({sorted(self._first)})"


def request_head(method: str, target: str, headers: Mapping[str, str]) -> bytes:
    """The request line and header block of one request, as bytes (names and values in latin-1,
    as ``http.client`` sends them). A line break in any of them, whitespace in the target or a
    character outside latin-1 is refused: it would let a value forge headers of its own."""
    if _BAD_TARGET.search(target):
        raise InvalidParamException("a request target may not hold whitespace or control characters")
    head = "".join(
        [f"{method} {target} HTTP/1.1\r\n", *[f"{name}: {value}\r\n" for name, value in headers.items()], "\r\n"]
    )
    lines = len(headers) + 2
    if head.count("\n") != lines or head.count("\r") != lines:
        raise InvalidParamException("a header name or value may not hold a line break")
    try:
        return head.encode("latin-1")
    except UnicodeEncodeError:
        raise InvalidParamException(
            "header names and values must be latin-1 text (metadata: ASCII is safest)"
        ) from None


def read_head(reader: io.BufferedReader) -> tuple[int, str, Headers, bool]:
    """``(status, reason, headers, http/1.0)`` of the next final answer on ``reader`` (interim
    1xx answers are read past)."""
    while True:
        head = _buffered_head(reader)
        if head is not None:
            line, fields = head
        else:  # not all in the buffer yet, or unusual lines: line by line
            line = _line(reader)
            if not line:
                raise ConnectionClosed("the server closed the connection without an answer")
            fields = _fields(reader)
        parts = line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or len(parts[1]) != 3 or not parts[1].isdigit():
            raise FramingError("the answer does not begin with an HTTP/1.x status line")
        status = int(parts[1])
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and friends: the final answer follows
        reason = parts[2].strip().decode("latin-1") if len(parts) > 2 else ""
        return status, reason, Headers(fields), parts[0] == b"HTTP/1.0"


def _buffered_head(reader: io.BufferedReader) -> tuple[bytes, list[tuple[str, str]]] | None:
    """The status line and fields of a head that is whole in ``reader``'s buffer (the common case:
    one receive brings it), split in one pass; ``None`` (nothing read) for anything else."""
    buffered = reader.peek(MAX_LINE)
    end = buffered.find(b"\r\n\r\n")
    if end < 0 or end > MAX_LINE:
        return None
    lines = buffered[:end].decode("latin-1").split("\r\n")
    if len(lines) > MAX_HEADERS + 1:
        return None
    fields = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or line[0] in " \t":  # not a field, or a folded one: read line by line
            return None
        fields.append((name.strip(), value.strip()))
    reader.read(end + 4)
    return lines[0].encode("latin-1"), fields


def body_length(method: str, status: int, headers: Headers) -> int | None:
    """How the body of an answer is delimited: its length in bytes (0: none), or ``None`` for a
    chunked body; ``-1`` for a body that runs until the server closes the connection."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return 0
    coding = headers.get("transfer-encoding")
    if coding is not None:
        if coding.rsplit(",", 1)[-1].strip().lower() != "chunked":
            return -1  # RFC 9112, 6.3: a final coding other than chunked runs until close
        return None
    lengths = {value.strip() for value in headers.get_all("content-length")}
    if not lengths:
        return -1
    if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
        raise FramingError("the answer's Content-Length is not one number")
    return int(length)


def keeps_alive(headers: Headers, http10: bool) -> bool:
    """Whether the connection may carry another request after this answer."""
    tokens = {token.strip().lower() for token in (headers.get("connection") or "").split(",")}
    return "keep-alive" in tokens if http10 else "close" not in tokens


def chunk_size(reader: io.BufferedReader) -> int:
    """The size of the next chunk of a chunked body (0: the last; its trailer fields are read too)."""
    line = _line(reader)
    try:
        size = int(line.split(b";", 1)[0].strip(), 16)
    except ValueError:
        raise FramingError("the chunked body ended or holds no valid chunk size") from None
    if size < 0:
        raise FramingError("a chunk size is negative")
    if size == 0:
        _fields(reader)  # trailer fields: nothing the pool uses
    return size


def chunk_end(reader: io.BufferedReader) -> None:
    """Read the line break after a chunk's data."""
    if reader.read(2) != b"\r\n":
        raise FramingError("a chunk of the chunked body is not followed by a line break")


def _line(reader: io.BufferedReader) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise FramingError("a line of the answer's head is too long")
    return line


def _fields(reader: io.BufferedReader) -> list[tuple[str, str]]:
    fields: list[tuple[str, str]] = []
    while True:
        line = _line(reader)
        if line in (b"\r\n", b"\n"):
            return fields
        if not line:
            raise FramingError("the connection ended inside the answer's head")
        if len(fields) >= MAX_HEADERS:
            raise FramingError(f"the answer has more than {MAX_HEADERS} header fields")
        text = line.decode("latin-1")
        if text[0] in " \t" and fields:  # obsolete line folding: a continuation of the last value
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {text.strip()}")
            continue
        name, colon, value = text.partition(":")
        if not colon:
            raise FramingError("a header line of the answer has no colon")
        fields.append((name.strip(), value.strip()))

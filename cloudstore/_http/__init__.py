"""HTTP plumbing the providers share: streamed bodies, ranges, ETags, digests, pools, timeouts.

The keep-alive connection pool of the lean request paths is :mod:`cloudstore._http.pool`
(imported by the providers that use it, not here: ``socket`` and ``ssl`` stay unloaded until
a provider needs them)."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from cloudstore.backend import ObjectInfo, RangeReader, WriteCondition

if TYPE_CHECKING:
    from cloudstore._http.pool import PoolResponse
from cloudstore.config import Timeouts

#: Connections kept per host at least: the transfer engine's workers and a few more.
MIN_POOL_CONNECTIONS = 32


def pool_size(config: Mapping[str, Any]) -> int:
    """Connections to keep open to the service: enough for the engine's parallel parts."""
    concurrency = getattr(config.get("transfer_config"), "max_concurrency", 0)
    return max(MIN_POOL_CONNECTIONS, int(concurrency or 0) + 4)


def request_timeout(config: Mapping[str, Any]) -> tuple[float, float]:
    """The ``(connect, read)`` seconds requests and urllib3 take, from the config's timeouts."""
    timeouts = Timeouts.from_config(config)
    return (timeouts.connect, timeouts.read)


def byte_range(start: int | None, end: int | None) -> str | None:
    """The ``Range`` header for the inclusive bytes ``start``..``end`` (``None``: the whole body)."""
    if start is None and end is None:
        return None
    return f"bytes={start or 0}-{'' if end is None else end}"


def strip_etag(etag: str | None) -> str | None:
    """An ETag without its quotes (``None`` for none)."""
    return etag.strip('"') if etag else None


def condition_headers(condition: WriteCondition | None) -> dict[str, str]:
    """The ``If-None-Match: *`` / ``If-Match`` headers of a conditional write (a service that
    checks only the first declares ``Features.if_match=False``: the other never reaches it)."""
    if condition is None:
        return {}
    if condition.if_none_match:
        return {"If-None-Match": "*"}
    return {"If-Match": f'"{strip_etag(condition.if_match)}"'}


def xml_error(body: bytes) -> tuple[str | None, str | None]:
    """``Code`` and ``Message`` of an XML ``<Error>`` answer (S3's, Azure's); ``(None, None)`` for
    an empty body (a HEAD's) or one that is no such document."""
    import xml.etree.ElementTree as ET  # only error answers of the lean paths need it

    try:
        root = ET.fromstring(body.strip()) if body.strip() else None
    except ET.ParseError:
        return None, None
    if root is None or root.tag != "Error":
        return None, None
    return root.findtext("Code"), root.findtext("Message")


_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def http_date(value: str) -> datetime:
    """An HTTP date ("Tue, 01 Dec 2026 18:21:02 GMT", the form every service here sends), without
    the email package's general parser (a few per cent of a small GET's client CPU) where it has that form."""
    try:
        _, day, month, year, clock, zone = value.split(" ")
        if zone != "GMT":
            raise ValueError(zone)
        hour, minute, second = clock.split(":")
        return datetime(int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second), tzinfo=UTC)
    except (ValueError, KeyError):
        from email.utils import parsedate_to_datetime  # the rare other forms only

        return parsedate_to_datetime(value)


def md5_base64(digest: bytes) -> str:
    """A binary MD5 digest as HTTP's ``Content-MD5`` spells it."""
    return base64.b64encode(digest).decode("ascii")


def content_range_total(content_range: str | None) -> int | None:
    """The whole object's size from a ``Content-Range`` value ("bytes 0-9/1234"), if it tells it."""
    if not content_range or "/" not in content_range:
        return None
    total = content_range.rpartition("/")[2]
    return int(total) if total.isdigit() else None


class HTTPBodyReader(RangeReader):
    """A streamed ``requests`` response body, read as stored (no content decoding).

    ``version_header`` names the response header identifying the object version, where that is
    not ``info.etag``.
    """

    def __init__(self, response: Any, info: ObjectInfo | None = None, version_header: str | None = None) -> None:
        self._response = response
        self.info = info
        self._version_header = version_header

    @property
    def etag(self) -> str | None:
        if self._version_header is None:
            return self.info.etag if self.info is not None else None
        value = self._response.headers.get(self._version_header)
        return strip_etag(str(value)) if value else None

    def read(self, size: int = -1) -> bytes:
        data = self._response.raw.read(None if size < 0 else size, decode_content=False)
        return bytes(data or b"")

    def close(self) -> None:
        self._response.close()


class PooledBody(RangeReader):
    """A lean request's response body, read straight from its pooled connection (``readinto``:
    into the engine's buffer, no copy of ours)."""

    def __init__(self, response: PoolResponse, info: ObjectInfo | None) -> None:
        self._response = response
        self.info = info

    def read(self, size: int = -1) -> bytes:
        return self._response.read(size)

    def readinto(self, buffer: memoryview) -> int:
        return self._response.readinto(buffer)

    def close(self) -> None:
        self._response.close()

# mypy: disallow-untyped-calls=False
# (google-auth ships type hints for only part of its API)
"""The lean request path of the gcp provider: GCS's hot JSON API requests without the SDK.

Single uploads and upload parts (one ``uploadType=multipart`` request: the object's resource
with its MD5, then the body), media downloads (``alt=media``, whole or ranged), object metadata
GETs, single deletes and ``objects.list`` pages are built here, sent over the shared
:class:`~cloudstore._http.pool.ConnectionPool` and their answers parsed with the C JSON parser.
google-cloud-storage over ``requests`` cost about 1 ms of client CPU per small request
(``benchmarks/NOTES.md``).

The SDK's credentials object still makes the bearer token: ``before_request`` puts it (renewed
when it has expired) in each request's headers, and a 401 gets one refresh and one resend, as
the SDK's ``AuthorizedSession`` does, where a refresh can give a new token. Errors are read from
GCS's JSON error body and mapped by :mod:`cloudstore.providers.gcp.errors`. The control plane
(buckets, compose, rewrite, batch deletes, signed URLs and forms) stays on the SDK's client.
"""

from __future__ import annotations

import base64
import functools
import json
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlsplit

import google.auth.credentials
import google.auth.transport.requests
import google.oauth2.credentials

from cloudstore._http import PooledBody, content_range_total, md5_base64, strip_etag
from cloudstore._http.framing import Headers
from cloudstore._http.pool import ConnectionPool, Origin, PoolResponse
from cloudstore.backend import ObjectInfo
from cloudstore.config import Timeouts
from cloudstore.exceptions import InvalidParamException, NotFoundException, ProviderConnectionException
from cloudstore.providers.gcp.auth import SourceCredentials
from cloudstore.providers.gcp.errors import error_from_body

#: Upload bodies up to this size are joined into one piece (sent with the headers in one write);
#: larger ones are sent from the caller's buffer as they are, never copied.
_JOIN_BODY_BELOW = 256 * 1024
#: How long the headers google-auth's ``before_request`` made are reused (seconds). Making them
#: costs about 0.1 ms (validity checks, a URL parse for the regional endpoint check, the metrics
#: header); google-auth renews a token 3 min 45 s before it expires, so one made a second ago is
#: still good.
_AUTH_HEADERS_REUSE = 1.0


def can_refresh(credentials: google.auth.credentials.Credentials) -> bool:
    """Whether a refresh can give these credentials a new token (not a fixed access token, not anonymous)."""
    return not isinstance(credentials, google.auth.credentials.AnonymousCredentials) and not (
        isinstance(credentials, google.oauth2.credentials.Credentials) and not credentials.refresh_token
    )


def _quote(value: str) -> str:
    return quote(value, safe="")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def checksum(md5: str | None, crc32c: str | None) -> tuple[str, str] | None:
    """The whole-object checksum GCS reports, from its base64 forms: MD5 when it has one (not for
    composite objects), else CRC32C (always there), as hex."""
    if md5:
        return ("md5", base64.b64decode(md5).hex())
    if crc32c:
        return ("crc32c", base64.b64decode(crc32c).hex())
    return None


def object_info(resource: Mapping[str, Any]) -> ObjectInfo:
    """An object's properties from its JSON resource (a metadata GET, a listing, an upload's answer)."""
    return ObjectInfo(
        name=resource["name"],
        size=int(resource.get("size") or 0),
        last_modified=_time(resource.get("updated")),
        etag=resource.get("etag"),
        content_type=resource.get("contentType"),
        metadata=dict(resource.get("metadata") or {}),
        checksum=checksum(resource.get("md5Hash"), resource.get("crc32c")),
    )


def media_info(name: str, status: int, headers: Headers) -> ObjectInfo | None:
    """The object's size, content type and checksum from a media download's headers.

    The JSON API sends no user metadata with the bytes, so ``metadata`` stays ``None`` (unknown):
    the model fetches it with a metadata GET only if it is asked for.
    """
    if status == 206:
        total = content_range_total(headers.get("Content-Range"))
    else:
        length = headers.get("Content-Length", "")
        total = int(length) if length.isdigit() else None
    if total is None:
        return None
    hashes = dict(part.strip().split("=", 1) for part in headers.get("X-Goog-Hash", "").split(",") if "=" in part)
    return ObjectInfo(
        name=name,
        size=total,
        content_type=headers.get("Content-Type"),
        checksum=checksum(hashes.get("md5"), hashes.get("crc32c")),
    )


class MediaReader(PooledBody):
    """A media download's body; its version is the generation the answer names."""

    @property
    def etag(self) -> str | None:
        # The generation changes with every write of the object: the version the body belongs to.
        value = self._response.headers.get("X-Goog-Generation")
        return strip_etag(value) if value else None


class GCSRest:
    """GCS's data-plane requests over one bounded pool (one per backend, shared by its threads)."""

    def __init__(
        self,
        endpoint: str,
        credentials: google.auth.credentials.Credentials,
        *,
        pool_size: int,
        timeouts: Timeouts,
    ) -> None:
        self._origin = Origin.from_url(endpoint)
        self._url = f"{self._origin.scheme}://{self._origin.netloc}"
        self._base = urlsplit(endpoint).path.rstrip("/")
        self._credentials = credentials
        self._anonymous = isinstance(credentials, google.auth.credentials.AnonymousCredentials)
        self._refreshable = can_refresh(credentials)
        #: How google-auth reaches a token service when it refreshes (never the data path), within
        #: the configured timeouts as every other request.
        self._auth_request = functools.partial(
            google.auth.transport.requests.Request(), timeout=(timeouts.connect, timeouts.read)
        )
        self._refresh_lock = threading.Lock()
        #: ``(headers, token, reuse until)`` from the last ``before_request`` (see _AUTH_HEADERS_REUSE).
        self._auth: tuple[dict[str, str], str | None, float] = ({}, None, 0.0)
        # A credentials_provider's tokens may live seconds: its source decides on every request.
        self._reuse_auth = not isinstance(credentials, SourceCredentials)
        self.pool = ConnectionPool(max_connections=pool_size, timeouts=timeouts)

    def close(self) -> None:
        self.pool.close()

    # --- sending ----------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | tuple[bytes, ...] | None = None,
        *,
        idempotent: bool | None = None,
    ) -> PoolResponse:
        """Authorize and send one request (``target``: the path and query under the endpoint); an
        error answer raises its mapped exception. A 401 renews the token once and sends again."""
        target = self._base + target
        for attempt in (1, 2):
            sent = dict(headers) if headers else {}
            token = None
            if not self._anonymous:
                token = self._authorize(method, target, sent)
            response = self.pool.request(method, self._origin, target, sent, body, idempotent=idempotent)
            if response.status < 300:
                return response
            with response:
                data = response.read()
            if response.status == 401 and attempt == 1 and self._refreshable:
                self._refresh(token)
                continue
            raise error_from_body(response.status, response.reason, data)
        raise AssertionError("unreachable")  # pragma: no cover

    def _authorize(self, method: str, target: str, headers: dict[str, str]) -> str | None:
        """Add the credentials' headers (a token renewed when it has expired); the token sent."""
        auth_headers, token, until = self._auth
        if time.monotonic() >= until:
            auth_headers = {}
            self._credentials.before_request(self._auth_request, method, self._url + target, auth_headers)
            token = self._credentials.token
            if self._reuse_auth:
                self._auth = (auth_headers, token, time.monotonic() + _AUTH_HEADERS_REUSE)
        headers.update(auth_headers)
        return token

    def _refresh(self, rejected: str | None) -> None:
        """A new token, unless another thread already replaced the rejected one."""
        with self._refresh_lock:
            self._auth = ({}, None, 0.0)
            if self._credentials.token == rejected:
                self._credentials.refresh(self._auth_request)

    def _json(self, response: PoolResponse, what: str) -> dict[str, Any]:
        with response:
            data = response.read()
        try:
            answer = json.loads(data)
        except ValueError:
            # Damaged on the way (or not GCS): the request can be sent again.
            raise ProviderConnectionException(f"GCS answered {what} with an unreadable body") from None
        if not isinstance(answer, dict):
            raise ProviderConnectionException(f"GCS answered {what} with an unexpected body")
        return answer

    # --- requests ---------------------------------------------------------------------------------
    def upload(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        md5: bytes,
        generation: int | None = None,
    ) -> dict[str, Any]:
        """One multipart upload (the object's JSON resource, then the body); the resource the
        service stored. GCS refuses the body if it does not match ``md5``, and refuses the write
        (412) unless the object's generation is ``generation`` (0: absent; ``None``: any)."""
        if "\r" in content_type or "\n" in content_type:
            # It is also the body part's header (fake-gcs-server takes the type from there).
            raise InvalidParamException(f"content type {content_type!r} contains a line break")
        resource: dict[str, Any] = {"name": name, "contentType": content_type, "md5Hash": md5_base64(md5)}
        if metadata:
            resource["metadata"] = dict(metadata)
        # A random boundary: the data cannot contain it by chance.
        boundary = f"cloudstore-{secrets.token_hex(16)}"
        head = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(resource)}\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
        ).encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        body: bytes | tuple[bytes, ...] = (
            b"".join((head, data, tail)) if len(data) < _JOIN_BODY_BELOW else (head, data, tail)
        )
        target = f"/upload/storage/v1/b/{_quote(bucket)}/o?uploadType=multipart"
        if generation is not None:
            # The name is in the resource too; in the query it names the object the
            # precondition is about (what the SDK sends, and what the emulator's gateway checks).
            target += f"&name={_quote(name)}&ifGenerationMatch={generation}"
        headers = {"Content-Type": f'multipart/related; boundary="{boundary}"'}
        # Sending the same bytes again stores the same object: safe to resend on a stale
        # connection, unless the write is conditional (a lost first attempt may have won).
        response = self._send("POST", target, headers, body, idempotent=generation is None)
        return self._json(response, f"the upload of {name!r}")

    def download(self, bucket: str, name: str, byte_range: str | None) -> MediaReader:
        """A media download, whole or a ``Range``; the reader's ``info`` describes the whole object."""
        # "gzip" asks for the stored bytes as they are (no decompressive transcoding), so they
        # match the stored checksum.
        headers = {"Accept-Encoding": "gzip"}
        if byte_range is not None:
            headers["Range"] = byte_range
        target = f"/download/storage/v1/b/{_quote(bucket)}/o/{_quote(name)}?alt=media"
        response = self._send("GET", target, headers)
        if byte_range is not None and response.status != 206:
            response.close()
            # The whole object instead of the range: never hand those bytes on as the range.
            raise ProviderConnectionException(f"the server ignored the Range header for {name!r}", status=200)
        return MediaReader(response, media_info(name, response.status, response.headers))

    def resource(self, bucket: str, name: str) -> dict[str, Any] | None:
        """The object's JSON resource (a metadata GET); ``None`` if there is no such object."""
        try:
            response = self._send("GET", f"/storage/v1/b/{_quote(bucket)}/o/{_quote(name)}")
        except NotFoundException:
            return None
        return self._json(response, f"the metadata request for {name!r}")

    def delete(self, bucket: str, name: str, generation: int | None = None) -> None:
        """Delete the object (only if its generation is ``generation``, when given)."""
        target = f"/storage/v1/b/{_quote(bucket)}/o/{_quote(name)}"
        if generation is not None:
            target += f"?ifGenerationMatch={generation}"
        with self._send("DELETE", target) as response:
            response.read()

    def list_page(
        self,
        bucket: str,
        prefix: str | None,
        delimiter: str | None,
        start_offset: str | None,
        max_results: int | None,
    ) -> tuple[list[dict[str, Any]], list[str], bool]:
        """One ``objects.list`` page: its object resources, its prefixes, and whether more follow."""
        params = {"prefix": prefix, "delimiter": delimiter, "startOffset": start_offset}
        query = "&".join(f"{key}={_quote(value)}" for key, value in params.items() if value)
        if max_results is not None:
            query += f"&maxResults={max_results}"
        target = f"/storage/v1/b/{_quote(bucket)}/o" + (f"?{query.lstrip('&')}" if query else "")
        page = self._json(self._send("GET", target), f"the listing of {bucket!r}")
        items = page.get("items") or []
        prefixes = page.get("prefixes") or []
        return items, prefixes, bool(page.get("nextPageToken"))

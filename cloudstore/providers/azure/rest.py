"""The lean request path of the azure provider: Blob Storage's hot requests without azure-core's pipeline.

Put Blob, Get Blob (whole or an ``x-ms-range``), Get Blob Properties, List Blobs pages, Put
Block, Delete Blob and Blob Batch deletes are built here, authorised once each with the client's own credential
(:func:`~cloudstore.providers.azure.auth.request_auth`: a Shared Key signature, the SAS token, or
a bearer token from the TokenCredential), sent over the shared
:class:`~cloudstore._http.pool.ConnectionPool`, and their answers parsed with the C ElementTree.
azure-core's pipeline of policies cost about 1.5 ms of client CPU per small request; this path a
fraction of that (``benchmarks/NOTES.md``). Error answers are mapped by the same table as the
SDK's errors (:meth:`~cloudstore.providers.azure.errors.ErrorMapper.map_answer`). The SDK client
keeps the control plane: containers, block lists, copies, signed URLs and their delegation keys.
"""

from __future__ import annotations

import base64
import time
import urllib.parse
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

from cloudstore._http import (
    PooledBody,
    byte_range,
    condition_headers,
    content_range_total,
    http_date,
    md5_base64,
    pool_size,
    strip_etag,
    xml_error,
)
from cloudstore._http.framing import Headers
from cloudstore._http.pool import ConnectionPool, Origin, PoolResponse, ssl_context
from cloudstore.backend import ObjectInfo, Page, WriteCondition
from cloudstore.config import Timeouts
from cloudstore.exceptions import AuthenticationException, CloudStoreException, ProviderConnectionException
from cloudstore.providers.azure.auth import AzureClient, ca_bundle, request_auth
from cloudstore.providers.azure.errors import ErrorMapper

_META = "x-ms-meta-"


class BlobRest:
    """Blob Storage's data-plane requests over one bounded pool (one per backend, shared by its threads)."""

    def __init__(self, azure: AzureClient, config: Mapping[str, Any], errors: ErrorMapper) -> None:
        # The account URL without the SAS a SAS client carries in its query (request_auth has it).
        endpoint = azure.client.primary_endpoint.split("?", 1)[0]
        self._origin = Origin.from_url(endpoint)
        self._base = urllib.parse.urlsplit(endpoint).path.rstrip("/")
        self._version: str = azure.client.api_version
        self._auth = request_auth(azure)
        self._errors = errors
        verify = ca_bundle(config)
        self.pool = ConnectionPool(
            max_connections=pool_size(config),
            timeouts=Timeouts.from_config(config),
            # The system's CAs: the pool's one context for the process, loaded on the first https
            # connection (not for every backend, nor ever for an http endpoint).
            ssl_context=None if verify is True else ssl_context(verify),
        )

    def __repr__(self) -> str:
        return f"<BlobRest {self._origin.scheme}://{self._origin.netloc}{self._base} auth={self._auth!r}>"

    def close(self) -> None:
        self.pool.close()

    # --- sending -------------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        container: str,
        blob: str | None = None,
        query: list[tuple[str, str]] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
        *,
        missing_ok: bool = False,
        idempotent: bool | None = None,
    ) -> PoolResponse:
        """Authorise and send one request (``query`` values already encoded); an error answer
        raises its mapped exception, except a 404 when ``missing_ok``."""
        path = self._path(container, blob)
        query = query or []
        query_string = "&".join(f"{name}={value}" for name, value in query)
        headers = headers if headers is not None else {}
        headers["x-ms-version"] = self._version
        if body is not None:
            headers["Content-Length"] = str(len(body))
        for attempt in (1, 2):
            headers["x-ms-date"] = _http_now()
            token = self._auth.authorize(method, path, query, headers)
            joined = "&".join(part for part in (query_string, token) if part)
            target = f"{path}?{joined}" if joined else path
            response = self.pool.request(method, self._origin, target, headers, body, idempotent=idempotent)
            if response.status < 300 or (missing_ok and response.status == 404):
                return response
            error = self._error(response)
            # A token refused before it should have expired is dropped, and the request sent
            # once more with a new one (refused() says whether there was such a token).
            renewable = isinstance(error, AuthenticationException) and self._auth.refused()
            if attempt == 2 or not renewable:
                raise error
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, response: PoolResponse) -> CloudStoreException:
        """The exception for an error answer: its code and message from the XML body (a HEAD
        answer has none: the ``x-ms-error-code`` header and the reason phrase then)."""
        with response:
            data = response.read()
        code, message = _error_details(response.reason, response.headers.get("x-ms-error-code"), data)
        return self._errors.map_answer(response.status, code, message)

    def _path(self, container: str, blob: str | None = None) -> str:
        path = f"{self._base}/{container}"
        return path if blob is None else f"{path}/{urllib.parse.quote(blob, safe='/~')}"

    # --- requests --------------------------------------------------------------------------------
    def put_blob(
        self,
        container: str,
        name: str,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        content_md5: bytes | None,
        condition: WriteCondition | None,
    ) -> None:
        """Put Blob, a block blob in one request (Azure checks the Content-MD5 and the condition)."""
        headers = {"x-ms-blob-type": "BlockBlob", "Content-Type": "application/octet-stream"}
        if content_type:
            headers["x-ms-blob-content-type"] = content_type
        if content_md5:
            headers["Content-MD5"] = md5_base64(content_md5)
        for key, value in metadata.items():
            headers[_META + key] = value
        headers.update(condition_headers(condition))
        self._send("PUT", container, name, headers=headers, body=data).close()

    def get_blob(self, container: str, name: str, start: int | None, end: int | None) -> PooledBody:
        """Get Blob, whole or ``start``..``end``; the reader's ``info`` describes the whole blob."""
        # No range for a whole read: a range starting at 0 fails with 416 on an empty blob.
        wanted = byte_range(start, end) if start or end is not None else None
        response = self._send("GET", container, name, headers={"x-ms-range": wanted} if wanted else None)
        return PooledBody(response, blob_info(name, response.headers, ranged=response.status == 206))

    def blob_properties(self, container: str, name: str) -> ObjectInfo | None:
        """Get Blob Properties (a HEAD); ``None`` when the blob (or its container) is missing."""
        response = self._send("HEAD", container, name, missing_ok=True)
        response.close()
        return None if response.status == 404 else blob_info(name, response.headers, ranged=False)

    def delete_blob(self, container: str, name: str) -> None:
        """Delete Blob, with its snapshots."""
        self._send("DELETE", container, name, headers={"x-ms-delete-snapshots": "include"}).close()

    def delete_blobs(self, container: str, names: list[str]) -> list[tuple[str, CloudStoreException]]:
        """One Blob Batch of Delete Blob sub-requests (up to 256), each authorised on its own as
        the service wants; the ``(name, exception)`` of each blob not deleted (a missing one is)."""
        boundary = f"batch_{uuid.uuid4()}"
        date = _http_now()
        parts = []
        for number, name in enumerate(names):
            path = self._path(container, name)
            headers = {"x-ms-delete-snapshots": "include", "x-ms-date": date, "Content-Length": "0"}
            token = self._auth.authorize("DELETE", path, [], headers)
            lines = "".join(f"{key}: {value}\r\n" for key, value in headers.items())
            parts.append(
                f"--{boundary}\r\nContent-Type: application/http\r\nContent-ID: {number}\r\n"
                f"Content-Transfer-Encoding: binary\r\n\r\nDELETE {path}?{token} HTTP/1.1\r\n{lines}\r\n\r\n"
            )
        body = ("".join(parts) + f"--{boundary}--\r\n").encode("utf-8")
        query = [("restype", "container"), ("comp", "batch")]
        headers = {"Content-Type": f"multipart/mixed; boundary={boundary}"}
        # Deleting the same blobs again does no harm: a request a stale connection lost is resent.
        with self._send("POST", container, None, query, headers, body, idempotent=True) as response:
            answer = response.read()
            content_type = response.headers.get("Content-Type") or ""
        statuses = batch_answers(answer, content_type.partition("boundary=")[2].strip('"'))
        whole = statuses.get(WHOLE_BATCH)
        if whole is not None and whole[0] >= 300:
            raise self._errors.map_answer(*whole)
        failures: list[tuple[str, CloudStoreException]] = []
        for number, name in enumerate(names):
            found = statuses.get(number)
            if found is None:
                failures.append((name, ProviderConnectionException(f"the batch answer says nothing of {name!r}")))
            elif found[0] >= 300 and found[0] != 404:
                failures.append((name, self._errors.map_answer(*found)))
        return failures

    def put_block(self, container: str, name: str, block_id: str, data: bytes, content_md5: bytes | None) -> None:
        """Put Block: stage one block (checked against its Content-MD5 as Put Blob is).

        ``block_id`` is encoded once more in base64 on the wire, as the SDK does with the ids it
        is given (its Put Block List, which commits them, too)."""
        wire_id = base64.b64encode(block_id.encode("utf-8")).decode("ascii")
        query = [("comp", "block"), ("blockid", urllib.parse.quote(wire_id, safe=""))]
        headers = {"Content-MD5": md5_base64(content_md5)} if content_md5 else {}
        self._send("PUT", container, name, query, headers, data).close()

    def list_blobs(
        self, container: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        """One List Blobs page, with each blob's metadata (and the prefixes, with a delimiter)."""
        query = [("restype", "container"), ("comp", "list")]
        for name, value in (("prefix", prefix), ("delimiter", delimiter), ("marker", marker)):
            if value:
                query.append((name, urllib.parse.quote(value, safe="")))
        if limit is not None:
            query.append(("maxresults", str(limit)))
        query.append(("include", "metadata"))
        with self._send("GET", container, query=query) as response:
            root = ET.fromstring(response.read())
        items: list[ObjectInfo] = []
        prefixes: list[str] = []
        blobs = root.find("Blobs")
        for entry in blobs if blobs is not None else ():
            if entry.tag == "Blob":
                items.append(_listed_blob(entry))
            elif entry.tag == "BlobPrefix":
                prefixes.append(_name(entry))
        return Page(items=items, next_marker=root.findtext("NextMarker") or None, prefixes=prefixes)


#: Where :func:`batch_answers` puts a sub-response without a Content-ID: the service's answer
#: to the batch as a whole (e.g. a malformed one).
WHOLE_BATCH = -1


def batch_answers(answer: bytes, boundary: str) -> dict[int, tuple[int, str | None, str]]:
    """The ``(status, error code, message)`` of each sub-response of a batch, by Content-ID."""
    found: dict[int, tuple[int, str | None, str]] = {}
    if not boundary:
        return found
    for part in answer.split(b"--" + boundary.encode("ascii")):
        mime, _, http = part.partition(b"\r\n\r\n")
        content_id = next(
            (
                line.partition(b":")[2].strip()
                for line in mime.split(b"\r\n")
                if line.lower().startswith(b"content-id:")
            ),
            b"",
        )
        if not http.startswith(b"HTTP/") or (content_id and not content_id.isdigit()):
            continue
        head, _, body = http.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        _, status, reason = [*status_line.split(" ", 2), ""][:3]
        headers = {key.strip().lower(): value.strip() for key, _, value in (h.partition(":") for h in header_lines)}
        number = int(content_id) if content_id else WHOLE_BATCH
        found[number] = (int(status), *_error_details(reason, headers.get("x-ms-error-code"), body))
    return found


def _error_details(reason: str, code: str | None, body: bytes) -> tuple[str | None, str]:
    """An error answer's code (``x-ms-error-code``, else its XML body's) and the first line of
    its message (the body's, else the reason phrase: HEAD answers have no body)."""
    body_code, body_message = xml_error(body)
    message = body_message or reason
    lines = (message or "").strip().splitlines()
    return code or body_code, lines[0] if lines else "no message"


def blob_info(name: str, headers: Headers, *, ranged: bool) -> ObjectInfo:
    """The blob's properties from the headers of a HEAD or Get Blob answer (a range's too: its
    size is the total in Content-Range, its MD5 the whole blob's in x-ms-blob-content-md5)."""
    total = content_range_total(headers.get("content-range"))
    md5 = headers.get("x-ms-blob-content-md5") or (None if ranged else headers.get("content-md5"))
    modified = headers.get("last-modified")
    return ObjectInfo(
        name=name,
        size=total if total is not None else int(headers.get("content-length") or 0),
        last_modified=http_date(modified) if modified else None,
        etag=strip_etag(headers.get("etag")),
        content_type=headers.get("content-type"),
        metadata=headers.prefixed(_META),
        checksum=("md5", base64.b64decode(md5).hex()) if md5 else None,
    )


def _listed_blob(entry: ET.Element) -> ObjectInfo:
    properties = entry.find("Properties")
    if properties is None:
        properties = ET.Element("Properties")
    metadata = entry.find("Metadata")
    md5 = properties.findtext("Content-MD5")
    modified = properties.findtext("Last-Modified")
    return ObjectInfo(
        name=_name(entry),
        size=int(properties.findtext("Content-Length") or 0),
        last_modified=http_date(modified) if modified else None,
        etag=strip_etag(properties.findtext("Etag")),
        content_type=properties.findtext("Content-Type") or None,
        metadata={item.tag: item.text or "" for item in metadata} if metadata is not None else {},
        checksum=("md5", base64.b64decode(md5).hex()) if md5 else None,
    )


def _name(entry: ET.Element) -> str:
    """An entry's name; Azure percent-encodes one that XML cannot carry (``Encoded="true"``)."""
    element = entry.find("Name")
    if element is None:
        return ""
    text = element.text or ""
    return urllib.parse.unquote(text) if element.get("Encoded") == "true" else text


_DATE: tuple[int, str] = (0, "")


def _http_now() -> str:
    """Now as ``x-ms-date`` spells it, formatted once a second."""
    global _DATE
    now = int(time.time())
    second, text = _DATE
    if second != now:
        text = formatdate(now, usegmt=True)
        _DATE = (now, text)
    return text

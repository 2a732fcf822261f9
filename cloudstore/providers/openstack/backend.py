"""OpenStack Swift through openstacksdk's object store.

Requests go through the SDK's object-store proxy (a keystoneauth adapter: it
holds the login, the storage URL and the connection pool) as the plain Swift
API calls they are, so a put, get, head, delete or listing page of a plain
object is one request; SDK errors come from
:func:`openstack.exceptions.raise_from_response`.

Large objects are Static Large Objects: the parts are uploaded in parallel as
segments into ``<container>+segments`` (a container hidden from bucket
listings), then a manifest is written. The segments of an object cloudstore
made are removed with it: on delete (``?multipart-manifest=delete``), on
overwrite (by a put, a copy or another multipart upload), and on abort.

Knowing whether an object being overwritten or deleted is a large object takes
a HEAD. It is only needed where a segments container exists, so each backend
remembers which containers have one (those it made itself for sure; for others
it asks again after :data:`SEGMENTS_RECHECK_SECONDS`), and plain objects in
containers without large objects cost one request per put and per delete.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, unquote, urlparse

import openstack.exceptions as os_exc
import requests
import urllib3.exceptions
from keystoneauth1 import exceptions as ks_exc
from requests.adapters import HTTPAdapter

from cloudstore import exceptions as exc
from cloudstore import names
from cloudstore.backend import (
    Backend,
    BucketInfo,
    Features,
    HTTPBodyReader,
    ObjectInfo,
    Page,
    RangeReader,
    UploadPart,
    content_range_total,
)
from cloudstore.config import Config
from cloudstore.providers.openstack.auth import auth_mode, connect
from cloudstore.signing import expiry_timestamp, hmac_sha256_hex

log = logging.getLogger(__name__)

#: Suffix of the container holding the segments of ``<container>``'s large objects.
SEGMENTS_SUFFIX = "+segments"
#: Swift's longest container name, in UTF-8 bytes.
MAX_CONTAINER_BYTES = 256
#: Swift's default ``container_listing_limit``: the most names one listing returns.
MAX_LISTING = 10_000
DEFAULT_PAGE = 1000
#: How long "this container has no segments container" is believed before asking again.
SEGMENTS_RECHECK_SECONDS = 30.0
#: Connections kept open to the proxy: enough for the transfer engine's workers.
POOL_CONNECTIONS = 32

_OBJECT_META = "x-object-meta-"
_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
_TEMP_URL_KEY_HEADERS = ("Temp-Url-Key", "Temp-Url-Key-2")
TEMP_URL_HOWTO = (
    "set a TempURL key on the Swift account (as its owner: `swift post -m Temp-URL-Key:<secret>`, "
    "i.e. POST the header X-Account-Meta-Temp-URL-Key) or on the container "
    "(`swift post -m Temp-URL-Key:<secret> <container>`), or configure os_temp_url_key"
)


def swift_bucket_name(name: str) -> None:
    """Swift's container rules, minus the names cloudstore keeps for large-object segments."""
    names.swift_container_name(name)
    if name.endswith(SEGMENTS_SUFFIX):
        raise exc.InvalidNameException(
            f"invalid container name {name!r}: names ending in {SEGMENTS_SUFFIX!r} hold large-object segments"
        )


def quote_path(*parts: str) -> str:
    """``parts`` joined with ``/``, URL-encoded; ``.`` and ``..`` segments are escaped so that
    HTTP clients do not collapse them (Swift keeps them as part of the name)."""
    segments = "/".join(parts).split("/")
    return "/".join(quote(s, safe="") if s not in (".", "..") else s.replace(".", "%2E") for s in segments)


class SwiftStatusError(Exception):
    """A failure Swift reports inside a 200 body (bulk and SLO deletes)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(frozen=True)
class SloUpload:
    """A large object being uploaded: its segments go to ``<bucket>+segments/<upload_id>/``."""

    bucket: str
    name: str
    upload_id: str
    headers: Mapping[str, bytes]

    @property
    def segments_container(self) -> str:
        return self.bucket + SEGMENTS_SUFFIX


class SwiftBackend(Backend):
    """OpenStack Swift (any auth: Keystone, Swift v1 auth, or a storage URL and token)."""

    features = Features(
        # Swift's SLO takes segments of any size (its min_segment_size is 1 byte).
        min_part_size=1,
        # Swift's default max_manifest_segments.
        max_parts=1000,
        # Swift puts no cap on a TempURL's expiry; cloudstore keeps S3's 7 days (max_url_expiry's
        # default): the only way to revoke one is replacing the TempURL key.
        # A COPY writes one plain object, so it stops at max_file_size (5 GiB by default); a
        # larger object is copied range by range into the segments of a new SLO.
        max_copy_size=5 * 1024**3,
    )
    check_bucket_name = staticmethod(swift_bucket_name)

    def __init__(self, config: Config) -> None:
        self._config = config
        self._auth_mode = auth_mode(config)
        self._connection: Any = None
        self._lock = threading.Lock()
        #: Containers known to have a segments container, and when others were last seen without one.
        self._with_segments: set[str] = set()
        self._without_segments: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"<SwiftBackend auth={self._auth_mode} config={self._config!r}>"

    # --- connection ---------------------------------------------------------
    @property
    def store(self) -> Any:
        """openstacksdk's object-store proxy (made on first use)."""
        with self._lock:
            if self._connection is None:
                connection = connect(self._config)
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=POOL_CONNECTIONS)
                for scheme in ("http://", "https://"):
                    connection.session.session.mount(scheme, adapter)
                self._connection = connection
            return self._connection.object_store

    def close(self) -> None:
        with self._lock:
            connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, Any] | None = None,
        data: bytes | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request to ``path`` (relative to the storage URL, or absolute); raises on 4xx/5xx."""
        # log=False: keystoneauth's DEBUG log would show TempURL keys and object bodies, and read a
        # streamed text/JSON body to log it (the caller then gets nothing).
        response: requests.Response = self.store.request(
            path, method, params=params, headers=dict(headers or {}), data=data, stream=stream, log=False
        )
        if response.status_code >= 400:
            try:
                os_exc.raise_from_response(response)
            finally:
                response.close()
        return response

    def _head(self, path: str) -> requests.Response | None:
        """HEAD ``path``; ``None`` for 404."""
        try:
            return self._request("HEAD", path)
        except os_exc.NotFoundException:
            return None

    def _get_json(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        response = self._request("GET", path, params={**params, "format": "json"})
        if response.status_code == 204 or not response.content:
            return []
        result: list[dict[str, Any]] = response.json()
        return result

    def _account_url(self) -> str:
        return str(self.store.get_endpoint())

    # --- errors -----------------------------------------------------------
    def map_error(self, error: BaseException) -> exc.CloudStoreException | None:
        if isinstance(error, exc.CloudStoreException):
            return error
        if isinstance(error, os_exc.HttpException) and error.status_code:
            where = f" ({error.method} {urlparse(error.url).path})" if error.url else ""
            return _from_status(error.status_code, f"{error.details or 'no details'}{where}")
        if isinstance(error, ks_exc.HttpError) and error.http_status:
            # Only the v1 login goes through keystoneauth's own error raising.
            return _from_status(error.http_status, f"login failed at {error.url or 'the auth URL'}")
        if isinstance(error, SwiftStatusError):
            return _from_status(error.status, str(error))
        if isinstance(
            error,
            (
                ks_exc.ConnectionError,  # ConnectFailure, ConnectTimeout, SSLError
                ks_exc.RetriableConnectionFailure,
                requests.exceptions.ConnectionError,
                requests.exceptions.Timeout,
                requests.exceptions.ChunkedEncodingError,
                urllib3.exceptions.HTTPError,  # a body read that broke: ProtocolError, ReadTimeoutError
            ),
        ):
            return exc.ProviderConnectionException(f"Swift connection failed: {error}")
        if isinstance(error, (ks_exc.AuthorizationFailure, ks_exc.AuthPluginException)):
            return exc.AuthenticationException(f"OpenStack login failed: {error}")
        if isinstance(error, ks_exc.CatalogException):
            return exc.InvalidParamException(f"no usable object-store endpoint in the service catalog: {error}")
        if isinstance(error, ks_exc.DiscoveryFailure):
            if _caused_by(error, ks_exc.ConnectionError):
                return exc.ProviderConnectionException(f"Keystone could not be reached: {error}")
            return exc.InvalidParamException(f"cannot use os_auth_url as a Keystone endpoint: {error}")
        if isinstance(error, (os_exc.SDKException, ks_exc.ClientException)):
            return exc.CloudStoreException(f"OpenStack client error: {error}")
        return None

    # --- buckets ----------------------------------------------------------
    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        page_size = _page_size(limit)
        params: dict[str, Any] = {"limit": page_size}
        if marker:
            params["marker"] = marker
        entries = self._get_json("", params)
        buckets = [
            BucketInfo(e["name"], _parse_listing_time(e.get("last_modified")))
            for e in entries
            if not e["name"].endswith(SEGMENTS_SUFFIX)
        ]
        next_marker = entries[-1]["name"] if len(entries) >= page_size else None
        return Page(buckets, next_marker=next_marker)

    def head_bucket(self, name: str) -> BucketInfo | None:
        response = self._head(quote_path(name))
        if response is None:
            return None
        return BucketInfo(name, _timestamp(response.headers.get("X-Timestamp")))

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        # Swift answers 201 for a new container and 202 for one that exists.
        response = self._request("PUT", quote_path(name))
        if response.status_code == 202:
            raise exc.DuplicateResourceException(f"container {name!r} already exists", status=202, code="Accepted")
        return BucketInfo(name, datetime.now(timezone.utc))

    def delete_bucket(self, name: str) -> None:
        self._request("DELETE", quote_path(name))
        with self._lock:
            self._with_segments.discard(name)
            self._without_segments.pop(name, None)
        self._remove_segments_container(name + SEGMENTS_SUFFIX)

    def _remove_segments_container(self, container: str) -> None:
        """Delete a segments container, and segments left in it (by a crashed upload); best effort."""
        try:
            try:
                self._request("DELETE", quote_path(container))
            except os_exc.ConflictException:
                leftovers = self._get_json(quote_path(container), {"limit": MAX_LISTING})
                self._delete_segments([f"/{container}/{e['name']}" for e in leftovers])
                self._request("DELETE", quote_path(container))
        except os_exc.NotFoundException:
            pass
        except Exception as error:  # the user's container is gone already: report, do not fail
            log.warning("could not remove the segments container %r: %s", container, error)

    # --- objects ----------------------------------------------------------
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        page_size = _page_size(limit)
        params: dict[str, Any] = {"limit": page_size}
        if prefix:
            params["prefix"] = prefix
        if delimiter:
            params["delimiter"] = delimiter
        if marker:
            params["marker"] = marker
        entries = self._get_json(quote_path(bucket), params)
        items: list[ObjectInfo] = []
        prefixes: list[str] = []
        for entry in entries:
            if "subdir" in entry:
                prefixes.append(entry["subdir"])
            else:
                items.append(_listing_info(entry))
        next_marker = None
        if len(entries) >= page_size:
            next_marker = entries[-1].get("subdir") or entries[-1]["name"]
        return Page(items, next_marker=next_marker, prefixes=prefixes)

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        response = self._head(quote_path(bucket, name))
        return None if response is None else _head_info(name, response.headers)

    def put_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
    ) -> None:
        headers = _object_headers(content_type, metadata)
        # Swift checks the body against the ETag we send (422 on a mismatch).
        headers["ETag"] = hashlib.md5(data, usedforsecurity=False).hexdigest().encode()
        old_segments = self._segments_of_old_object(bucket, name)
        self._request("PUT", quote_path(bucket, name), headers=headers, data=data)
        self._discard_segments(old_segments)

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        headers = {}
        if start is not None or end is not None:
            headers["Range"] = f"bytes={start or 0}-{'' if end is None else end}"
        response = self._request("GET", quote_path(bucket, name), headers=headers, stream=True)
        return HTTPBodyReader(response, _get_info(name, response))

    def delete_object(self, bucket: str, name: str) -> None:
        path = quote_path(bucket, name)
        if self._may_have_segments(bucket):
            response = self._head(path)
            if response is None:
                raise exc.NotFoundException(f"object {name!r} not found in container {bucket!r}", status=404)
            if _is_slo(response.headers):
                # Swift removes the manifest and every segment it names.
                result = self._request(
                    "DELETE", path, params={"multipart-manifest": "delete"}, headers={"Accept": "application/json"}
                )
                _check_bulk_result(result, f"delete of {name!r}")
                return
        self._request("DELETE", path)

    def copy_object(self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str) -> None:
        # Swift copies content type and metadata; a large object's content is copied whole.
        old_segments = self._segments_of_old_object(dst_bucket, dst_name)
        headers = {"X-Copy-From": "/" + quote_path(src_bucket, src_name), "Content-Length": "0"}
        self._request("PUT", quote_path(dst_bucket, dst_name), headers=headers, data=b"")
        self._discard_segments(old_segments)

    # --- signed URLs (TempURL) --------------------------------------------
    def sign_url(self, bucket: str, name: str, method: str, expires_in: int) -> str:
        key = self._temp_url_key(bucket)
        account = urlparse(self._account_url())
        path = unquote(account.path).rstrip("/") + "/" + bucket + "/" + name
        expires = expiry_timestamp(expires_in)
        signature = hmac_sha256_hex(key, f"{method}\n{expires}\n{path}")
        url_path = quote_path(*path.split("/"))
        return f"{account.scheme}://{account.netloc}{url_path}?temp_url_sig={signature}&temp_url_expires={expires}"

    def _temp_url_key(self, bucket: str) -> str:
        """The key to sign with: one the account or container already has (never replaced), or
        ``os_temp_url_key``, installed into a free account slot if it is not there yet."""
        configured = self._config.get("os_temp_url_key")
        account_headers = self._request("HEAD", self._account_url()).headers
        account_keys = [account_headers.get(f"X-Account-Meta-{h}") for h in _TEMP_URL_KEY_HEADERS]
        if configured and configured in account_keys:
            return str(configured)
        if not configured and any(account_keys):
            return next(str(k) for k in account_keys if k)
        container_headers = self._request("HEAD", quote_path(bucket)).headers
        container_keys = [container_headers.get(f"X-Container-Meta-{h}") for h in _TEMP_URL_KEY_HEADERS]
        if not configured:
            for key in container_keys:
                if key:
                    return str(key)
            raise exc.InvalidParamException(f"no TempURL key on the account or container {bucket!r}: {TEMP_URL_HOWTO}")
        if configured in container_keys:
            return str(configured)
        for header, key in zip(_TEMP_URL_KEY_HEADERS, account_keys, strict=True):
            if not key:
                self._request("POST", self._account_url(), headers={f"X-Account-Meta-{header}": configured})
                return str(configured)
        raise exc.InvalidParamException(
            "os_temp_url_key is not one of the account's TempURL keys, and both of its key slots are "
            "taken (cloudstore never replaces a key): configure one of the existing keys as os_temp_url_key"
        )

    # --- large objects (SLO) ----------------------------------------------
    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> SloUpload:
        upload = SloUpload(bucket, name, uuid.uuid4().hex, _object_headers(content_type, metadata))
        if len(upload.segments_container.encode("utf-8")) > MAX_CONTAINER_BYTES:
            raise exc.InvalidNameException(
                f"container name {bucket!r} is too long for large objects: its segments container "
                f"{upload.segments_container!r} would exceed {MAX_CONTAINER_BYTES} bytes"
            )
        # Fail now, not after every part, when the container is missing; then make sure of the
        # segments container (another client may have deleted and re-created the container).
        container = self._head(quote_path(bucket))
        if container is None:
            raise exc.NotFoundException(f"container {bucket!r} not found", status=404)
        policy = container.headers.get("X-Storage-Policy")  # segments live where the object would
        headers = {"X-Storage-Policy": policy} if policy else {}
        self._request("PUT", quote_path(upload.segments_container), headers=headers)
        with self._lock:
            self._with_segments.add(bucket)
            self._without_segments.pop(bucket, None)
        return upload

    def upload_part(self, upload: SloUpload, number: int, offset: int, data: bytes) -> UploadPart:
        segment = f"{upload.upload_id}/{number:06d}"
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest()
        self._request("PUT", quote_path(upload.segments_container, segment), headers={"ETag": etag}, data=data)
        return _segment_part(upload, number, segment, etag, len(data))

    def upload_part_copy(
        self, upload: SloUpload, number: int, src_bucket: str, src_name: str, start: int, end: int, etag: str | None
    ) -> UploadPart:
        segment = f"{upload.upload_id}/{number:06d}"
        headers = {
            "X-Copy-From": "/" + quote_path(src_bucket, src_name),
            "Range": f"bytes={start}-{end}",  # Swift copies just this range of the source
            "Content-Length": "0",
        }
        if etag:
            headers["If-Match"] = etag  # evaluated against the source: 412 if it was replaced
        response = self._request("PUT", quote_path(upload.segments_container, segment), headers=headers, data=b"")
        return _segment_part(upload, number, segment, response.headers["Etag"].strip('"'), end - start + 1)

    def complete_multipart_upload(
        self, upload: SloUpload, parts: list[UploadPart], content_md5: bytes | None = None
    ) -> None:
        old_segments = self._segments_of_old_object(upload.bucket, upload.name, keep=upload.upload_id)
        manifest = json.dumps([part.token for part in sorted(parts, key=lambda p: p.number)]).encode()
        self._request(
            "PUT",
            quote_path(upload.bucket, upload.name),
            params={"multipart-manifest": "put"},
            headers=upload.headers,
            data=manifest,
        )
        self._discard_segments(old_segments)

    def abort_multipart_upload(self, upload: SloUpload) -> None:
        try:
            entries = self._get_json(
                quote_path(upload.segments_container), {"prefix": f"{upload.upload_id}/", "limit": MAX_LISTING}
            )
        except os_exc.NotFoundException:
            return
        self._delete_segments([f"/{upload.segments_container}/{e['name']}" for e in entries])

    # --- segment bookkeeping ----------------------------------------------
    def _may_have_segments(self, bucket: str) -> bool:
        """Whether ``bucket`` may hold large objects (it has a segments container)."""
        with self._lock:
            if bucket in self._with_segments:
                return True
            checked = self._without_segments.get(bucket)
            if checked is not None and time.monotonic() - checked < SEGMENTS_RECHECK_SECONDS:
                return False
        exists = self._head(quote_path(bucket + SEGMENTS_SUFFIX)) is not None
        with self._lock:
            if exists:
                self._with_segments.add(bucket)
            else:
                self._without_segments[bucket] = time.monotonic()
        return exists

    def _segments_of_old_object(self, bucket: str, name: str, keep: str | None = None) -> list[str]:
        """The segments (in our segments container) of the large object about to be replaced.

        ``keep`` is an upload id whose segments are never listed (a retried completion must not
        delete the segments of the manifest it already wrote).
        """
        if not self._may_have_segments(bucket):
            return []
        path = quote_path(bucket, name)
        response = self._head(path)
        if response is None or not _is_slo(response.headers):
            return []
        try:
            manifest = self._request("GET", path, params={"multipart-manifest": "get", "format": "raw"}).json()
        except os_exc.NotFoundException:
            return []
        ours = f"/{bucket}{SEGMENTS_SUFFIX}/"
        kept = f"{ours}{keep}/" if keep else None
        segments = [unquote(str(entry.get("path", ""))) for entry in manifest]
        return [s for s in segments if s.startswith(ours) and not (kept and s.startswith(kept))]

    def _discard_segments(self, segments: list[str]) -> None:
        """Delete the segments of a replaced object; the new object is in place, so only warn on failure."""
        if not segments:
            return
        try:
            self._delete_segments(segments)
        except Exception as error:
            log.warning("could not delete %d segments of a replaced large object: %s", len(segments), error)

    def _delete_segments(self, segments: list[str]) -> None:
        """Delete ``/container/object`` paths: with one bulk-delete request where Swift has it."""
        if not segments:
            return
        if len(segments) > 1:
            body = "\n".join(quote(s) for s in segments).encode()
            response = self._request(
                "POST",
                self._account_url(),
                params={"bulk-delete": "true"},
                headers={"Content-Type": "text/plain", "Accept": "application/json"},
                data=body,
            )
            if _check_bulk_result(response, "segment delete", optional=True):
                return
        for segment in segments:  # no bulk middleware (or one segment): one DELETE each
            with contextlib.suppress(os_exc.NotFoundException):
                self._request("DELETE", quote_path(*segment.lstrip("/").split("/", 1)))


# --- helpers ------------------------------------------------------------------
def _from_status(status: int, detail: str) -> exc.CloudStoreException:
    """The cloudstore error for a Swift HTTP status."""
    message = f"Swift answered {status}: {detail}"
    error_class: type[exc.CloudStoreException]
    if status == 401:
        error_class = exc.AuthenticationException
    elif status == 403:
        error_class = exc.PermissionDeniedException
    elif status == 404:
        error_class = exc.NotFoundException
    elif status in (409, 412):  # 409: deleting a container that still holds objects
        error_class = exc.PreconditionFailedException
    elif status == 422:  # the body did not match the ETag sent with it
        error_class = exc.ChecksumMismatchException
    elif status in (429, 498, 503):
        error_class = exc.ThrottledException
    elif status == 501:
        error_class = exc.NotSupportedException
    elif status == 408 or status >= 500:
        error_class = exc.ProviderConnectionException
    else:  # 400, 411, 413 (too large), 416 (range), ...
        error_class = exc.InvalidParamException
    return error_class(message, status=status)


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` or an exception it was raised from (or during) is a ``kind``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _check_bulk_result(response: requests.Response, what: str, optional: bool = False) -> bool:
    """Raise :class:`SwiftStatusError` if a bulk or SLO delete's 200 body reports a failure.

    With ``optional``, a body that is not the bulk middleware's answer returns ``False``.
    """
    try:
        result = response.json()
        status = int(str(result["Response Status"]).split()[0])
    except (ValueError, KeyError, TypeError):
        if optional:
            return False
        raise SwiftStatusError(502, f"{what}: Swift's answer is not a bulk-delete result") from None
    errors = result.get("Errors") or []
    if status == 200 and result.get("Number Deleted", 0) == 0 and result.get("Number Not Found", 0) and not optional:
        raise SwiftStatusError(404, f"{what}: not found")
    if status >= 400 or errors:
        raise SwiftStatusError(status if status >= 400 else 409, f"{what} failed: {result.get('Errors')}")
    return True


def _page_size(limit: int | None) -> int:
    return DEFAULT_PAGE if limit is None else max(1, min(limit, MAX_LISTING))


def _object_headers(content_type: str | None, metadata: Mapping[str, str]) -> dict[str, bytes]:
    """Content type and user metadata as request headers. Metadata keys are identifiers (see
    ``cloudstore.model``); ``_`` travels as ``-`` because Swift's WSGI layer cannot keep ``_``."""
    headers = {f"X-Object-Meta-{key.replace('_', '-')}": value.encode("utf-8") for key, value in metadata.items()}
    if content_type:
        headers["Content-Type"] = content_type.encode("utf-8")
    return headers


def _user_metadata(headers: Mapping[str, str]) -> dict[str, str]:
    metadata = {}
    for key, value in headers.items():
        if key.lower().startswith(_OBJECT_META):
            name = key[len(_OBJECT_META) :].lower().replace("-", "_")
            metadata[name] = value.encode("latin-1").decode("utf-8", "replace")
    return metadata


def _is_slo(headers: Mapping[str, str]) -> bool:
    return str(headers.get("X-Static-Large-Object", "")).lower() in ("true", "1", "yes")


def _head_info(name: str, headers: Mapping[str, str]) -> ObjectInfo:
    etag = headers.get("Etag", "").strip('"') or None
    # A large object's ETag is not the MD5 of its content (SLO: of its segments' ETags; DLO: none).
    plain = not _is_slo(headers) and "X-Object-Manifest" not in headers
    checksum = ("md5", etag) if plain and etag and _PLAIN_MD5.match(etag) else None
    last_modified = _timestamp(headers.get("X-Timestamp"))
    if last_modified is None and headers.get("Last-Modified"):
        last_modified = parsedate_to_datetime(headers["Last-Modified"])
    return ObjectInfo(
        name=name,
        size=int(headers.get("Content-Length", 0)),
        last_modified=last_modified,
        etag=etag,
        content_type=headers.get("Content-Type"),
        metadata=_user_metadata(headers),
        checksum=checksum,
    )


def _segment_part(upload: SloUpload, number: int, segment: str, etag: str, size: int) -> UploadPart:
    """A stored segment as its SLO manifest entry names it."""
    return UploadPart(number, {"path": f"/{upload.segments_container}/{segment}", "etag": etag, "size_bytes": size})


def _get_info(name: str, response: requests.Response) -> ObjectInfo | None:
    """The whole object's properties from a GET response (a 206 tells the full size in Content-Range)."""
    if response.status_code != 206:
        return _head_info(name, response.headers)
    total = content_range_total(response.headers.get("Content-Range"))
    if total is None:
        return None
    return dataclasses.replace(_head_info(name, response.headers), size=total)


def _listing_info(entry: Mapping[str, Any]) -> ObjectInfo:
    slo_etag = entry.get("slo_etag")
    etag = str(slo_etag).strip('"') if slo_etag else entry.get("hash")
    checksum = ("md5", etag) if not slo_etag and etag and _PLAIN_MD5.match(etag) else None
    return ObjectInfo(
        name=entry["name"],
        size=int(entry.get("bytes", 0)),
        last_modified=_parse_listing_time(entry.get("last_modified")),
        etag=etag,
        content_type=entry.get("content_type"),
        checksum=checksum,
    )


def _parse_listing_time(value: str | None) -> datetime | None:
    """Swift's listing times are UTC without a zone (``2026-11-25T12:46:12.684800``)."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)


def _timestamp(value: str | None) -> datetime | None:
    """An ``X-Timestamp`` (Unix seconds with a fraction) as an aware datetime."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except ValueError:
        return None

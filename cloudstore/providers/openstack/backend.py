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
Whether an object has segments is decided from its own headers
(``X-Static-Large-Object``), never from a cache, so the segments of a large
object another client wrote go with it too.

Integrity: every body sent (object, segment, manifest) carries its MD5 as
``ETag``, which Swift checks (422 on a mismatch: a retryable
:class:`~cloudstore.exceptions.ChecksumMismatchException`). A download is
verified against the plain object's MD5, or against the SLO ETag (the MD5 of
its segments' hex MD5s), the segment sizes coming from the part layout the
transfer engine records in the object's metadata (no extra request), or, for
a large object another tool wrote, from its manifest.

keystoneauth logs requests and responses at DEBUG; object requests and those
that carry a TempURL key are sent with ``log=False`` (the logging would show
the key, and would consume a streamed body to log it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import secrets
import threading
import uuid
import warnings
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote, urlparse

import requests
from requests.adapters import HTTPAdapter

from cloudstore import _names as names
from cloudstore import exceptions as exc
from cloudstore._checksums import PART_LAYOUT_KEY, parts_from_layout
from cloudstore._http import (
    HTTPBodyReader,
    byte_range,
    condition_headers,
    content_range_total,
    http_date,
    pool_size,
    request_timeout,
    strip_etag,
)
from cloudstore._retry import RetryPolicy
from cloudstore._signing import expiry_timestamp, hmac_sha256_hex
from cloudstore.backend import (
    Backend,
    BucketInfo,
    Checksum,
    Features,
    ObjectInfo,
    Page,
    PostForm,
    RangeReader,
    UploadPart,
    UrlPins,
    WriteCondition,
)
from cloudstore.config import Config
from cloudstore.credentials import CredentialSource
from cloudstore.providers.openstack.auth import auth_mode, connect
from cloudstore.providers.openstack.errors import (
    SwiftStatusError,
    check_bulk_result,
    error_message,
    from_status,
    map_swift_error,
    missing_ok,
)

#: Suffix of the container holding the segments of ``<container>``'s large objects.
SEGMENTS_SUFFIX = "+segments"
#: Swift's longest container name, in UTF-8 bytes.
MAX_CONTAINER_BYTES = 256
#: Swift's default ``container_listing_limit``: the most names one listing returns.
MAX_LISTING = 10_000
DEFAULT_PAGE = 1000

_OBJECT_META = "x-object-meta-"
#: The header the part layout travels in (``-`` reads back as ``_`` for user keys, not for this one).
_PART_LAYOUT_HEADER = "x-object-meta-" + PART_LAYOUT_KEY
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


@dataclasses.dataclass
class SloUpload:
    """A large object being uploaded: its segments go to ``<bucket>+segments/<upload_id>/``."""

    bucket: str
    name: str
    upload_id: str
    headers: Mapping[str, bytes]
    #: Segments of the large object the manifest replaces, found by the first completion attempt
    #: (a retried one would see our own manifest) and deleted by ``cleanup_multipart_upload``.
    replaced: list[str] | None = None
    #: Whether the manifest was written (only then may the replaced segments go).
    completed: bool = False

    @property
    def segments_container(self) -> str:
        return self.bucket + SEGMENTS_SUFFIX


class SwiftBackend(Backend[SloUpload]):
    """OpenStack Swift (any auth: Keystone, Swift v1 auth, or a storage URL and token)."""

    features = Features(
        # Swift's SLO takes segments of any size (its min_segment_size is 1 byte).
        min_part_size=1,
        # Swift's default max_manifest_segments.
        max_parts=1000,
        # Swift puts no cap on a TempURL's expiry (max_url_expiry=None): cloudstore's default cap
        # of 7 days applies unless the max_url_expiry config key raises it.
        # A COPY writes one plain object, so it stops at max_file_size (5 GiB by default); a
        # larger object is copied range by range into the segments of a new SLO.
        max_copy_size=5 * 1024**3,
        # An SLO's ETag is the MD5 of its segments' hex MD5s: knowing the segment sizes from the
        # object's own metadata, a download verifies it without fetching the manifest.
        records_part_layout=True,
        # The bulk middleware's bulk-delete (max_deletes_per_request is 10,000 by default).
        max_batch_delete=1000,
        # Swift honours If-None-Match: * on PUT (a plain object, an SLO manifest), but checks it
        # before it stores the body: of writers racing on an absent name, several can win
        # (measured). It ignores If-Match on PUT. A COPY applies the conditions to its source
        # (If-None-Match: * answers 304), so a conditional copy goes through the client.
        if_none_match=True,
        atomic_conditions=False,
        conditional_server_copy=False,
        signed_post_content_type=False,
        refreshing_credentials=True,
    )
    check_bucket_name = staticmethod(swift_bucket_name)

    def __init__(self, config: Config) -> None:
        self._config = config
        self._auth_mode = auth_mode(config)
        provider = config.get("credentials_provider")
        if provider is not None:
            self.credentials = CredentialSource(provider, frozenset({"os_auth_token", "os_storage_url"}))
        self._connection: Any = None
        self._lock = threading.Lock()
        self._timeout = request_timeout(config)
        self._pool_size = pool_size(config)
        self._retry_policy: RetryPolicy = config.get("retry_policy") or RetryPolicy()

    def __repr__(self) -> str:
        return f"<SwiftBackend auth={self._auth_mode} config={self._config!r}>"

    # --- connection ---------------------------------------------------------
    @property
    def store(self) -> Any:
        """openstacksdk's object-store proxy (made on first use)."""
        with self._lock:
            if self._connection is None:
                connection = connect(self._config, self.credentials)
                adapter = HTTPAdapter(pool_connections=4, pool_maxsize=self._pool_size)
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
        log: bool = False,
    ) -> requests.Response:
        """One request to ``path`` (relative to the storage URL, or absolute); raises
        :class:`SwiftStatusError` on 4xx/5xx.

        Sent once (cloudstore's retry policy is the only one), with the configured timeouts, and
        logged by keystoneauth only with ``log`` (never objects, nor anything carrying a key).
        """
        response: requests.Response = self.store.request(
            path,
            method,
            params=params,
            headers=dict(headers or {}),
            data=data,
            stream=stream,
            timeout=self._timeout,
            connect_retries=0,
            status_code_retries=0,
            log=log,
        )
        if response.status_code >= 400:
            try:
                raise SwiftStatusError(response.status_code, error_message(response))
            finally:
                response.close()
        return response

    def _head(self, path: str, *, log: bool = False) -> requests.Response | None:
        """HEAD ``path``; ``None`` for 404."""
        try:
            return self._request("HEAD", path, log=log)
        except SwiftStatusError as error:
            if error.status == 404:
                return None
            raise

    def _get_json(self, path: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        response = self._request("GET", path, params={**params, "format": "json"}, log=True)
        if response.status_code == 204 or not response.content:
            return []
        result: list[dict[str, Any]] = response.json()
        return result

    def _account_url(self) -> str:
        return str(self.store.get_endpoint())

    # --- errors -----------------------------------------------------------
    def map_error(self, error: BaseException) -> exc.CloudStoreException | None:
        return map_swift_error(error)

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
        response = self._head(quote_path(name))  # not logged: it may show the container's TempURL key
        if response is None:
            return None
        return BucketInfo(name, _timestamp(response.headers.get("X-Timestamp")))

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        # Swift answers 201 for a new container and 202 for one that exists.
        response = self._request("PUT", quote_path(name), log=True)
        if response.status_code == 202:
            raise exc.DuplicateResourceException(f"container {name!r} already exists", status=202, code="Accepted")
        return BucketInfo(name, datetime.now(UTC))

    def delete_bucket(self, name: str) -> None:
        self._request("DELETE", quote_path(name), log=True)
        container = name + SEGMENTS_SUFFIX
        # The user's container is gone already: a failure here is reported, not raised.
        self._clean_up(
            f"the segments container {container!r} could not be removed", lambda: self._remove_container(container)
        )

    def _remove_container(self, container: str) -> None:
        """Delete a segments container, and segments left in it (by a crashed upload)."""
        try:
            self._request("DELETE", quote_path(container), log=True)
        except SwiftStatusError as error:
            if error.status == 404:
                return
            if error.status != 409:
                raise
            leftovers = self._get_json(quote_path(container), {"limit": MAX_LISTING})
            self._delete_segments([f"/{container}/{e['name']}" for e in leftovers])
            with missing_ok():
                self._request("DELETE", quote_path(container), log=True)

    def _clean_up(self, what: str, action: Callable[[], None]) -> None:
        """Run a clean-up under the retry policy; if it still fails, warn with a CleanupWarning."""
        try:
            self._retry_policy.call(action, self.map_error)
        except exc.CloudStoreException as error:
            warnings.warn(exc.CleanupWarning(f"{what}: {error}"), stacklevel=4)

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
        *,
        content_md5: bytes | None = None,
        condition: WriteCondition | None = None,
    ) -> None:
        headers = {**_object_headers(content_type, metadata), **condition_headers(condition)}
        # Swift checks the body against the ETag we send (422 on a mismatch).
        headers["ETag"] = _md5_hex(data, content_md5).encode()
        old_segments = self._segments_of_old_object(bucket, name)
        self._request("PUT", quote_path(bucket, name), headers=headers, data=data)
        self._discard_segments(old_segments)

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        headers = {}
        if start is not None or end is not None:
            headers["Range"] = str(byte_range(start, end))
        response = self._request("GET", quote_path(bucket, name), headers=headers, stream=True)
        info = _get_info(name, response)
        if info is not None and info.checksum is None and not start and _is_slo(response.headers):
            # A large object another tool wrote: its manifest tells the segment sizes (one more
            # request, on the first read of a download only).
            try:
                info = dataclasses.replace(info, checksum=self._slo_checksum(bucket, name, info))
            except BaseException:
                response.close()
                raise
        return HTTPBodyReader(response, info)

    def _slo_checksum(self, bucket: str, name: str, info: ObjectInfo) -> Checksum | None:
        """The SLO ETag as a checksum, with the segment sizes from the manifest; ``None`` when the
        manifest has segments whose ETag is not their content's MD5 (nested SLOs, ranges, inline
        data) or no longer matches the object read."""
        response = self._request("GET", quote_path(bucket, name), params={"multipart-manifest": "get"})
        try:
            segments = response.json()
        except ValueError:
            return None
        plain = all(
            isinstance(s, dict) and "hash" in s and not s.get("sub_slo") and not s.get("range") for s in segments
        )
        if not plain or not info.etag:
            return None
        parts = tuple(int(s["bytes"]) for s in segments)
        etag = hashlib.md5("".join(str(s["hash"]) for s in segments).encode(), usedforsecurity=False).hexdigest()
        if sum(parts) != info.size or etag != info.etag:
            return None  # replaced meanwhile, or not the ETag rule this code knows
        return Checksum("md5-of-part-hexes", etag, parts)

    def delete_object(self, bucket: str, name: str) -> None:
        path = quote_path(bucket, name)
        # Swift itself decides whether the object is an SLO: it then removes the manifest and
        # every segment it names, in this one request; it refuses a plain object ("Not an SLO
        # manifest"), which a plain DELETE then removes.
        result = self._request(
            "DELETE", path, params={"multipart-manifest": "delete"}, headers={"Accept": "application/json"}
        )
        if _not_an_slo(result):
            self._request("DELETE", path)
            return
        check_bulk_result(result, f"delete of {name!r}")

    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, exc.CloudStoreException]]:
        # A bulk-delete removes a large object's manifest but leaves its segments. cloudstore keeps
        # segments in the bucket's segments container: where that exists, each object goes by
        # delete_object, which removes a large object with its segments.
        if len(names) <= 1 or self._head(quote_path(bucket + SEGMENTS_SUFFIX)) is not None:
            return super().delete_objects(bucket, names)
        paths = {f"/{bucket}/{name}": name for name in names}
        response = self._request(
            "POST",
            self._account_url(),
            params={"bulk-delete": "true"},
            headers={"Content-Type": "text/plain", "Accept": "application/json"},
            data="\n".join(quote_path(*path.split("/")) for path in paths).encode(),
        )
        try:
            result = response.json()
            status = int(str(result["Response Status"]).split()[0])
        except (ValueError, KeyError, TypeError):  # no bulk middleware in the pipeline
            return super().delete_objects(bucket, names)
        errors = result.get("Errors") or []
        if status >= 400 and not errors:
            raise SwiftStatusError(status, f"bulk delete failed: {result['Response Status']}")
        failures = []
        for path, item_status in errors:
            code = int(str(item_status).split()[0])
            if code != 404:
                name = paths.get(unquote(str(path)), str(path))
                failures.append((name, from_status(code, f"delete of {name!r} failed: {item_status}")))
        return failures

    def copy_object(
        self,
        src_bucket: str,
        src_name: str,
        dst_bucket: str,
        dst_name: str,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        if condition is not None:
            # The copy middleware sends a COPY's conditional headers with its GET of the source.
            raise exc.NotSupportedException("Swift cannot make a server-side copy conditional on its target")
        # Swift copies content type and metadata; a large object's content is copied whole.
        old_segments = self._segments_of_old_object(dst_bucket, dst_name)
        headers = {"X-Copy-From": "/" + quote_path(src_bucket, src_name), "Content-Length": "0"}
        self._request("PUT", quote_path(dst_bucket, dst_name), headers=headers, data=b"")
        self._discard_segments(old_segments)

    # --- signed URLs (TempURL) --------------------------------------------
    def sign_url(self, bucket: str, name: str, method: str, expires_in: int, *, pins: UrlPins | None = None) -> str:
        key = self._temp_url_key(bucket)
        account = urlparse(self._account_url())
        path = unquote(account.path).rstrip("/") + "/" + bucket + "/" + name
        expires = expiry_timestamp(expires_in)
        signature = hmac_sha256_hex(key, f"{method}\n{expires}\n{path}")
        url_path = quote_path(*path.split("/"))
        return f"{account.scheme}://{account.netloc}{url_path}?temp_url_sig={signature}&temp_url_expires={expires}"

    def sign_post(self, bucket: str, name: str, expires_in: int, max_size: int, content_type: str | None) -> PostForm:
        # The formpost middleware stores each file as the signed folder plus the file's name, so
        # the form must name the file with the object's last segment; it signs with the TempURL
        # keys. The form's content type is not signed (features.signed_post_content_type).
        key = self._temp_url_key(bucket)
        account = urlparse(self._account_url())
        folder, _, filename = name.rpartition("/")
        path = unquote(account.path).rstrip("/") + "/" + bucket + "/" + (folder + "/" if folder else "")
        expires = expiry_timestamp(expires_in)
        fields = {"redirect": "", "max_file_size": str(max_size), "max_file_count": "1", "expires": str(expires)}
        body = f"{path}\n\n{max_size}\n1\n{expires}"
        fields["signature"] = hmac_sha256_hex(key, body)
        url = f"{account.scheme}://{account.netloc}{quote_path(*path.split('/'))}"
        return PostForm(url if url.endswith("/") else url + "/", fields, filename=filename)

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
            return self._install_container_key(bucket)
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

    def _install_container_key(self, bucket: str) -> str:
        """A random 256-bit TempURL key set on the container, which has none (nor has the account):
        signed URLs then work out of the box. The key is read back, so that of two clients
        installing one at the same moment both sign with the one that stayed."""
        header = f"X-Container-Meta-{_TEMP_URL_KEY_HEADERS[0]}"
        try:
            self._request("POST", quote_path(bucket), headers={header: secrets.token_hex(32)})
        except SwiftStatusError as error:
            if error.status not in (401, 403):
                raise
            raise exc.InvalidParamException(
                f"no TempURL key on the account or container {bucket!r}, and this user may not set one: "
                f"{TEMP_URL_HOWTO}"
            ) from None
        installed = self._request("HEAD", quote_path(bucket)).headers.get(header)
        if not installed:
            raise exc.ProviderConnectionException(f"the TempURL key set on container {bucket!r} did not stay")
        return str(installed)

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
        self._request("PUT", quote_path(upload.segments_container), headers=headers, log=True)
        return upload

    def upload_part(
        self, upload: SloUpload, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        segment = f"{upload.upload_id}/{number:06d}"
        etag = _md5_hex(data, content_md5)  # Swift checks the segment against it (422 on a mismatch)
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
        return _segment_part(upload, number, segment, strip_etag(response.headers["Etag"]) or "", end - start + 1)

    def complete_multipart_upload(
        self,
        upload: SloUpload,
        parts: list[UploadPart],
        content_md5: bytes | None = None,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        ordered = sorted(parts, key=lambda p: p.number)
        if upload.replaced is None:
            upload.replaced = self._segments_of_old_object(upload.bucket, upload.name, keep=upload.upload_id)
        manifest = json.dumps([part.token for part in ordered]).encode()
        # Swift checks each segment's ETag and size against the manifest, and the SLO's ETag (the
        # MD5 of the segments' hex MD5s) against this one, so a damaged manifest is refused too.
        slo_etag = hashlib.md5("".join(part.token["etag"] for part in ordered).encode(), usedforsecurity=False)
        self._request(
            "PUT",
            quote_path(upload.bucket, upload.name),
            params={"multipart-manifest": "put"},
            headers={**upload.headers, **condition_headers(condition), "ETag": slo_etag.hexdigest()},
            data=manifest,
        )
        upload.completed = True

    def abort_multipart_upload(self, upload: SloUpload) -> None:
        try:
            entries = self._get_json(
                quote_path(upload.segments_container), {"prefix": f"{upload.upload_id}/", "limit": MAX_LISTING}
            )
        except SwiftStatusError as error:
            if error.status == 404:
                return
            raise
        self._delete_segments([f"/{upload.segments_container}/{e['name']}" for e in entries])

    def cleanup_multipart_upload(self, upload: SloUpload) -> None:
        """Delete the segments of the large object a completed upload replaced."""
        if upload.completed and upload.replaced:
            self._delete_segments(upload.replaced)
            upload.replaced = []

    # --- segment bookkeeping ----------------------------------------------
    def _segments_of_old_object(self, bucket: str, name: str, keep: str | None = None) -> list[str]:
        """The segments (in our segments container) of the large object about to be replaced.

        Decided from the object's own headers (a HEAD), so it holds whoever wrote it. ``keep`` is
        an upload id whose segments are never listed (a retried completion must not delete the
        segments of the manifest it already wrote).
        """
        path = quote_path(bucket, name)
        response = self._head(path)
        if response is None or not _is_slo(response.headers):
            return []
        try:
            manifest = self._request("GET", path, params={"multipart-manifest": "get", "format": "raw"}).json()
        except SwiftStatusError as error:
            if error.status == 404:
                return []
            raise
        ours = f"/{bucket}{SEGMENTS_SUFFIX}/"
        kept = f"{ours}{keep}/" if keep else None
        segments = [unquote(str(entry.get("path", ""))) for entry in manifest]
        return [s for s in segments if s.startswith(ours) and not (kept and s.startswith(kept))]

    def _discard_segments(self, segments: list[str]) -> None:
        """Delete the segments of a replaced object, under the retry policy; the new object is in
        place, so a failure is reported as a :class:`~cloudstore.exceptions.CleanupWarning`."""
        if segments:
            what = f"{len(segments)} segments of a replaced large object could not be deleted"
            self._clean_up(what, lambda: self._delete_segments(segments))

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
            if check_bulk_result(response, "segment delete", optional=True):
                return
        for segment in segments:  # no bulk middleware (or one segment): one DELETE each
            with missing_ok():
                self._request("DELETE", quote_path(*segment.lstrip("/").split("/", 1)))


# --- helpers ------------------------------------------------------------------
def _md5_hex(data: bytes, content_md5: bytes | None) -> str:
    """The hex MD5 of ``data`` (given by the engine, else computed here)."""
    return (content_md5 or hashlib.md5(data, usedforsecurity=False).digest()).hex()


def _not_an_slo(response: requests.Response) -> bool:
    """Whether a ``DELETE ?multipart-manifest=delete`` was refused because the object is plain."""
    try:
        errors = response.json().get("Errors") or []
    except (ValueError, AttributeError):
        return False
    return any(len(error) > 1 and "Not an SLO manifest" in str(error[1]) for error in errors)


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
        if key.lower() == _PART_LAYOUT_HEADER:
            metadata[PART_LAYOUT_KEY] = value
        elif key.lower().startswith(_OBJECT_META):
            name = key[len(_OBJECT_META) :].lower().replace("-", "_")
            metadata[name] = value.encode("latin-1").decode("utf-8", "replace")
    return metadata


def _is_slo(headers: Mapping[str, str]) -> bool:
    return str(headers.get("X-Static-Large-Object", "")).lower() in ("true", "1", "yes")


def _head_info(name: str, headers: Mapping[str, str], size: int | None = None) -> ObjectInfo:
    """The object's properties from a HEAD or GET response (``size``: the whole object's, for a 206)."""
    etag = strip_etag(headers.get("Etag"))
    size = int(headers.get("Content-Length", 0)) if size is None else size
    metadata = _user_metadata(headers)
    return ObjectInfo(
        name=name,
        size=size,
        last_modified=_last_modified(headers),
        etag=etag,
        content_type=headers.get("Content-Type"),
        metadata=metadata,
        checksum=_checksum(headers, etag, size, metadata),
    )


def _checksum(headers: Mapping[str, str], etag: str | None, size: int, metadata: Mapping[str, str]) -> Checksum | None:
    """What a download of the object is verified against.

    A plain object's ETag is its MD5. An SLO's is the MD5 of its segments' hex MD5s: verifiable
    when the segment sizes are known, i.e. from the part layout cloudstore recorded when it wrote
    the object. A Dynamic Large Object (``X-Object-Manifest``) has no checksum of its content.
    """
    if not etag or not _PLAIN_MD5.match(etag) or "X-Object-Manifest" in headers:
        return None
    if not _is_slo(headers):
        return Checksum("md5", etag)
    parts = parts_from_layout(metadata, size)
    return Checksum("md5-of-part-hexes", etag, parts) if parts else None


def _last_modified(headers: Mapping[str, str]) -> datetime | None:
    last_modified = _timestamp(headers.get("X-Timestamp"))
    if last_modified is None and headers.get("Last-Modified"):
        last_modified = http_date(headers["Last-Modified"])
    return last_modified


def _segment_part(upload: SloUpload, number: int, segment: str, etag: str, size: int) -> UploadPart:
    """A stored segment as its SLO manifest entry names it."""
    return UploadPart(number, {"path": f"/{upload.segments_container}/{segment}", "etag": etag, "size_bytes": size})


def _get_info(name: str, response: requests.Response) -> ObjectInfo | None:
    """The whole object's properties from a GET response (a 206 tells the full size in Content-Range)."""
    if response.status_code != 206:
        return _head_info(name, response.headers)
    total = content_range_total(response.headers.get("Content-Range"))
    return None if total is None else _head_info(name, response.headers, total)


def _listing_info(entry: Mapping[str, Any]) -> ObjectInfo:
    slo_etag = entry.get("slo_etag")
    etag = strip_etag(str(slo_etag)) if slo_etag else entry.get("hash")
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
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _timestamp(value: str | None) -> datetime | None:
    """An ``X-Timestamp`` (Unix seconds with a fraction) as an aware datetime."""
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        return None

# mypy: disallow-untyped-calls=False
# (google-auth and google-api-core ship type hints for only part of their API)
"""Google Cloud Storage through google-cloud-storage (the JSON API).

One method is one request, with the SDK's own retries switched off (``retry=None``):
the shared layer retries. Every request waits at most the configured connect and read
timeouts. Large uploads are parts uploaded in parallel as hidden temporary objects, then
composed into the final object (see :mod:`.compose`).

Uploads (whole objects and parts) are one lean multipart request made here rather than
through the SDK's media helpers: the body is sent straight from the caller's buffer (the
SDK copies it into a new request body, which multiplied memory with parallel parts), and the
request carries the body's MD5, which GCS checks; the MD5 the service reports back is
compared too, for servers that store whatever arrives (fake-gcs-server).

Listings page by object name (``startOffset``) so that a marker is simply the last
name returned and a page never holds more than ``limit`` entries, on GCS and on
emulators alike.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import secrets
import threading
import uuid
from collections.abc import Iterator, Mapping
from datetime import timedelta
from typing import Any, ClassVar
from urllib.parse import quote

import google.api_core.exceptions as api_errors
import google.auth.credentials
import google.auth.transport.requests
import google.oauth2.credentials
import requests
import requests.adapters
from google.cloud import storage

from cloudstore import _names as names
from cloudstore._http import HTTPBodyReader, byte_range, content_range_total, md5_base64, pool_size, request_timeout
from cloudstore.backend import (
    Backend,
    BucketInfo,
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
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    InvalidNameException,
    InvalidParamException,
    NotSupportedException,
    ProviderConnectionException,
)
from cloudstore.providers.gcp import auth
from cloudstore.providers.gcp.compose import (
    HIDDEN_PREFIX,
    ComposeUpload,
    compose_parts,
    delete_objects,
    delete_upload_objects,
)
from cloudstore.providers.gcp.errors import error_from_response, map_gcs_error, raise_for_response
from cloudstore.providers.gcp.paging import BucketMarker, ObjectPager

#: V4 signed URLs live at most seven days.
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600

_GCS_OBJECT_NAME_BYTES = names.object_name_max_bytes(1024)


def gcs_object_name(name: str) -> None:
    """GCS object naming rules, plus cloudstore's reserved prefix for upload parts."""
    _GCS_OBJECT_NAME_BYTES(name)
    if "\r" in name or "\n" in name:
        raise InvalidNameException(f"invalid object name {name!r}: GCS forbids carriage returns and line feeds")
    if name in (".", ".."):
        raise InvalidNameException(f"invalid object name {name!r}: GCS forbids the names '.' and '..'")
    if name.startswith(".well-known/acme-challenge/"):
        raise InvalidNameException(f"invalid object name {name!r}: GCS reserves '.well-known/acme-challenge/'")
    if name.startswith(HIDDEN_PREFIX):
        raise InvalidNameException(f"invalid object name {name!r}: {HIDDEN_PREFIX!r} holds cloudstore's upload parts")


#: The most deletes one JSON API batch request carries (GCS allows 100 calls a batch).
MAX_BATCH_DELETE = 100


class GCSBackend(Backend[ComposeUpload]):
    """Google Cloud Storage (and emulators such as fake-gcs-server)."""

    # Compose would accept parts of any size, but the engine's 5 MiB floor keeps the number
    # of part uploads and compose calls sensible; 10,000 parts fit through nested composes.
    # Conditional writes are generation preconditions (ifGenerationMatch, 0: absent) on the
    # upload, the final compose and the rewrite; an ETag condition is first turned into the
    # generation that has it, and that generation is the write's precondition.
    features: ClassVar[Features] = Features(
        max_parts=10_000,
        max_url_expiry=MAX_SIGNED_URL_SECONDS,
        max_batch_delete=MAX_BATCH_DELETE,
        signed_url_headers=True,
        refreshing_credentials=True,
        if_none_match=True,
        if_match=True,
    )

    check_bucket_name = staticmethod(names.gcs_bucket_name)
    check_object_name = staticmethod(gcs_object_name)

    def __init__(self, config: Config) -> None:
        self._endpoint = auth.normalize_endpoint(config.get("gcp_endpoint_url"))
        provider = config.get("credentials_provider")
        if provider is not None:
            self.credentials = CredentialSource(provider, frozenset({"gcp_access_token"}))
        self._auth = auth.resolve(config, self._endpoint, self.credentials)
        #: ``(connect, read)`` seconds, given to every request (the SDK's and the provider's own).
        self._timeout = request_timeout(config)
        self._pool_size = pool_size(config)
        self._lock = threading.Lock()
        self._client_instance: storage.Client | None = None
        #: Whether the server takes batch requests (fake-gcs-server has no batch endpoint).
        self._batch_delete = True

    def __repr__(self) -> str:
        return f"<GCSBackend auth={self._auth.mode} endpoint={self._endpoint or 'default'}>"

    # --- client -------------------------------------------------------------
    @property
    def client(self) -> storage.Client:
        """The SDK client, made on first use (Application Default Credentials are looked up then)."""
        with self._lock:
            if self._client_instance is None:
                self._client_instance = self._make_client()
            return self._client_instance

    def _make_client(self) -> storage.Client:
        credentials = self._auth.credentials
        project = self._auth.project
        if credentials is None:
            credentials, found_project = auth.application_default()
            project = project or found_project
        options = {"api_endpoint": self._endpoint} if self._endpoint else None
        client = storage.Client(
            project=project,
            credentials=credentials,
            client_options=options,
            _http=_session_for(credentials, self._pool_size),
        )
        # The SDK would otherwise fetch each bucket's metadata in a background thread (for tracing
        # attributes): an extra request per bucket that nobody asked for.
        client._bucket_metadata_cache = None
        return client

    def close(self) -> None:
        with self._lock:
            client, self._client_instance = self._client_instance, None
        if client is not None:
            client.close()

    # --- errors -------------------------------------------------------------
    def map_error(self, error: BaseException) -> CloudStoreException | None:
        return map_gcs_error(error)

    # --- buckets ------------------------------------------------------------
    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        position = BucketMarker.parse(marker)
        if self.client.project is None:
            raise InvalidParamException("listing buckets needs a project: set gcp_project_name")
        iterator = self.client.list_buckets(
            max_results=None, page_size=limit, page_token=position.page_token, retry=None, timeout=self._timeout
        )
        page = next(iterator.pages, None)
        buckets = [_bucket_info(b) for b in page] if page is not None else []
        return position.cut(buckets, limit, iterator.next_page_token)

    def head_bucket(self, name: str) -> BucketInfo | None:
        try:
            bucket = self.client.get_bucket(name, retry=None, timeout=self._timeout)
        except api_errors.NotFound:
            return None
        return _bucket_info(bucket)

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        if self.client.project is None:
            raise InvalidParamException("creating a bucket needs a project: set gcp_project_name")
        bucket = self.client.create_bucket(name, location=location, retry=None, timeout=self._timeout)
        return _bucket_info(bucket)

    def delete_bucket(self, name: str) -> None:
        try:
            self._delete_empty_bucket(name)
        except api_errors.PreconditionFailed:
            # Not empty. If all it holds are the hidden parts of uploads whose process died, it is
            # empty to the user: clear them and try again (as the Swift provider does with segments).
            leftovers = []
            for blob in self.client.list_blobs(name, retry=None, timeout=self._timeout):
                if not blob.name.startswith(HIDDEN_PREFIX):
                    raise  # a user object: stop at the first one
                leftovers.append(blob.name)
            delete_objects(self.client, name, leftovers, self._timeout)
            self._delete_empty_bucket(name)

    def _delete_empty_bucket(self, name: str) -> None:
        try:
            self.client.bucket(name).delete(force=False, retry=None, timeout=self._timeout)
        except api_errors.Conflict as err:
            # GCS answers 409 for "bucket not empty" (fake-gcs-server answers 412): both mean
            # the state forbids it, not that something already exists.
            raise api_errors.PreconditionFailed(
                f"bucket {name!r} is not empty", errors=err.errors, response=err.response
            ) from err

    # --- objects ------------------------------------------------------------
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        pager: ObjectPager[storage.Blob] = ObjectPager(prefix, delimiter, marker)
        iterator = self.client.list_blobs(
            bucket,
            prefix=prefix or None,
            delimiter=delimiter or None,
            start_offset=pager.start_offset,
            page_size=pager.page_size(limit),
            retry=None,
            timeout=self._timeout,
        )
        page = next(iterator.pages, None)
        blobs = list(page) if page is not None else []
        prefixes = list(page.prefixes) if page is not None else []
        return pager.cut(
            [(b.name, b) for b in blobs], prefixes, limit, iterator.next_page_token is not None, _object_info
        )

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        blob = self.client.bucket(bucket).get_blob(name, retry=None, timeout=self._timeout)
        return None if blob is None else _object_info(blob)

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
        md5 = content_md5 if content_md5 is not None else hashlib.md5(data, usedforsecurity=False).digest()
        generation = self._required_generation(bucket, name, condition)
        stored = self._upload(bucket, name, data, content_type or "application/octet-stream", metadata, md5, generation)
        if _stored_md5(stored) not in (None, md5):
            # The server stored other bytes than we sent (an emulator that does not check the hash
            # we sent): remove exactly that generation, never a newer one, so that no corrupt
            # object stays visible, and let the retry policy send the body again.
            self._remove_generation(bucket, name, stored.get("generation"))
            raise _mismatch(name, md5, stored)

    def _required_generation(self, bucket: str, name: str, condition: WriteCondition | None) -> int | None:
        """The generation the object must have for ``condition`` to hold (0: none), as the
        write's ``ifGenerationMatch``; ``None`` without a condition."""
        if condition is None:
            return None
        if condition.if_none_match:
            return 0
        blob = self.client.bucket(bucket).get_blob(name, retry=None, timeout=self._timeout)
        condition.check(None if blob is None else _object_info(blob), name)
        assert blob is not None and blob.generation is not None  # check() refused an absent object
        return int(blob.generation)

    def _upload(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str,
        metadata: Mapping[str, str],
        md5: bytes,
        generation: int | None = None,
    ) -> dict[str, Any]:
        """One multipart upload request (the object's JSON resource, then the body); returns the
        resource the service stored. GCS refuses the body if it does not match ``md5``, and
        refuses the write (412) unless the object's generation is ``generation`` (0: absent)."""
        if "\r" in content_type or "\n" in content_type:
            # It is also the body part's header (fake-gcs-server takes the type from there).
            raise InvalidParamException(f"content type {content_type!r} contains a line break")
        resource: dict[str, Any] = {"name": name, "contentType": content_type, "md5Hash": md5_base64(md5)}
        if metadata:
            resource["metadata"] = dict(metadata)
        body = _MultipartBody(resource, data, content_type)
        url = f"{self.client.api_endpoint}/upload/storage/v1/b/{quote(bucket, safe='')}/o?uploadType=multipart"
        if generation is not None:
            # The name is in the resource too; in the query it names the object the
            # precondition is on (fake-gcs-server's gateway in the tests reads it there).
            url += f"&name={quote(name, safe='')}&ifGenerationMatch={generation}"
        session: requests.Session = self.client._http
        response = session.request(
            "POST", url, data=body, headers={"Content-Type": body.content_type}, timeout=self._timeout
        )
        raise_for_response(response)
        try:
            stored = response.json()
        except ValueError:
            # The object may well be stored; sending it again is harmless.
            raise ProviderConnectionException(f"GCS answered the upload of {name!r} with an unreadable body") from None
        if not isinstance(stored, dict):
            raise ProviderConnectionException(f"GCS answered the upload of {name!r} with an unexpected body")
        return stored

    def _remove_generation(self, bucket: str, name: str, generation: Any) -> None:
        """Delete ``generation`` of an object if it is still the live one; best effort (a retry
        replaces it anyway)."""
        if not str(generation or "").isdigit():
            return
        # Gone already, replaced since, or unreachable: the retry decides what stays.
        with contextlib.suppress(Exception):
            self.client.bucket(bucket).blob(name).delete(
                if_generation_match=int(generation), retry=None, timeout=self._timeout
            )

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        client = self.client
        url = f"{client.api_endpoint}/download/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}?alt=media"
        # "gzip" asks for the stored bytes as they are (no decompressive transcoding), so they
        # match the stored checksum.
        headers = {"Accept-Encoding": "gzip"}
        if (start or 0) > 0 or end is not None:
            headers["Range"] = str(byte_range(start, end))
        session: requests.Session = client._http
        response = session.request("GET", url, headers=headers, stream=True, timeout=self._timeout)
        raise_for_response(response)
        if "Range" in headers and response.status_code != 206:
            response.close()
            # The whole object instead of the range: never hand those bytes on as the range.
            raise ProviderConnectionException(f"the server ignored the Range header for {name!r}", status=200)
        # The generation changes with every write of the object: the version the body belongs to.
        return HTTPBodyReader(response, _media_info(name, response), version_header="X-Goog-Generation")

    def delete_object(self, bucket: str, name: str) -> None:
        self.client.bucket(bucket).blob(name).delete(retry=None, timeout=self._timeout)

    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, CloudStoreException]]:
        if not self._batch_delete:
            return super().delete_objects(bucket, names)
        target = self.client.bucket(bucket)
        batch = self.client.batch(raise_exception=False)
        try:
            with batch:
                for name in names:
                    target.delete_blob(name, retry=None, timeout=self._timeout)
        except ValueError as error:
            if "multi-part" not in str(error):
                raise
            # The answer to the batch is no multipart answer: the server has no batch endpoint
            # (fake-gcs-server). Deleting is idempotent: one request per object, from now on.
            self._batch_delete = False
            return super().delete_objects(bucket, names)
        return [
            (name, error_from_response(response))
            for name, response in zip(names, batch._responses, strict=True)
            if not 200 <= response.status_code < 300 and response.status_code != 404
        ]

    def copy_object(
        self,
        src_bucket: str,
        src_name: str,
        dst_bucket: str,
        dst_name: str,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        source = self.client.bucket(src_bucket).blob(src_name)
        target = self.client.bucket(dst_bucket).blob(dst_name)
        generation = self._required_generation(dst_bucket, dst_name, condition)
        options: dict[str, Any] = {} if generation is None else {"if_generation_match": generation}
        # rewrite works across locations and storage classes for any size; each call copies a
        # slice on the server and hands back a token until it is done.
        token, _, _ = target.rewrite(source, retry=None, timeout=self._timeout, **options)
        while token is not None:
            token, _, _ = target.rewrite(source, token=token, retry=None, timeout=self._timeout, **options)

    def sign_url(
        self, bucket: str, name: str, method: str, expires_in: int, *, pins: UrlPins | None = None
    ) -> str | tuple[str, Mapping[str, str]]:
        if not 1 <= expires_in <= MAX_SIGNED_URL_SECONDS:
            raise InvalidParamException(
                f"GCS signed URLs expire after 1 second to 7 days ({MAX_SIGNED_URL_SECONDS} s), not {expires_in} s"
            )
        client = self.client
        options = self._signing_options()
        if self._endpoint:
            options["api_access_endpoint"] = self._endpoint
        headers: dict[str, str] = {}
        if pins:
            # V4 signs these headers (X-Goog-SignedHeaders): GCS refuses a request without them.
            if pins.content_type:
                headers["Content-Type"] = pins.content_type
            if pins.content_md5:
                headers["Content-MD5"] = md5_base64(pins.content_md5)
            headers.update({f"x-goog-meta-{key}": value for key, value in pins.metadata.items()})
            options["headers"] = dict(headers)  # the SDK adds Host to the dict it is given
        blob = client.bucket(bucket).blob(name)
        url = str(
            blob.generate_signed_url(
                version="v4",
                method=method,
                expiration=timedelta(seconds=expires_in),
                **options,
            )
        )
        return (url, headers) if headers else url

    def _signing_options(self) -> dict[str, Any]:
        """How the SDK signs for these credentials: a key of its own, or IAM signBlob."""
        credentials = self.client._credentials
        if isinstance(credentials, google.auth.credentials.Signing):
            return {}  # a private key (service account) or a signer of its own (impersonation)
        if getattr(credentials, "service_account_email", None):
            # Compute Engine / workload identity: no key here, so IAM signBlob signs for us.
            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())
            return {"service_account_email": credentials.service_account_email, "access_token": credentials.token}
        raise NotSupportedException(
            f"cannot sign GCS URLs with {self._auth.mode} credentials: signing needs a service-account "
            "key (gcp_service_creds_file or gcp_service_creds_dict) or Application Default Credentials "
            "of a service account (signed through IAM signBlob)"
        )

    def sign_post(self, bucket: str, name: str, expires_in: int, max_size: int, content_type: str | None) -> PostForm:
        # A V4 POST policy: GCS checks the key, the size range and the content type against it.
        fields = {"Content-Type": content_type} if content_type else {}
        policy = self.client.generate_signed_post_policy_v4(
            bucket,
            name,
            expiration=timedelta(seconds=expires_in),
            conditions=[["content-length-range", 0, max_size]],
            fields=fields,
            **self._signing_options(),
        )
        # The form's action is the bucket's URL, as GCS documents it (fake-gcs-server wants no "/" after it).
        url = str(policy["url"]).rstrip("/")
        return PostForm(url, {key: str(value) for key, value in policy["fields"].items()})

    # --- multipart uploads: parallel parts, then compose ----------------------
    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> ComposeUpload:
        # Nothing to ask the service: the parts are ordinary objects under a fresh hidden prefix.
        return ComposeUpload(bucket, name, uuid.uuid4().hex, content_type, dict(metadata))

    def upload_part(
        self, upload: ComposeUpload, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        part_name = upload.part_name(number)
        md5 = content_md5 if content_md5 is not None else hashlib.md5(data, usedforsecurity=False).digest()
        stored = self._upload(upload.bucket, part_name, data, "application/octet-stream", {}, md5)
        if _stored_md5(stored) not in (None, md5):
            # A damaged part is only a hidden temporary object: the retry overwrites it, and the
            # upload's clean-up deletes it in any case.
            raise _mismatch(part_name, md5, stored)
        return UploadPart(number, part_name)

    def complete_multipart_upload(
        self,
        upload: ComposeUpload,
        parts: list[UploadPart],
        content_md5: bytes | None = None,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        names = [str(p.token) for p in sorted(parts, key=lambda p: p.number)]
        if names:
            generation = self._required_generation(upload.bucket, upload.name, condition)
            compose_parts(self.client, upload, names, self._timeout, generation)
        else:
            self.put_object(upload.bucket, upload.name, b"", upload.content_type, upload.metadata, condition=condition)

    def abort_multipart_upload(self, upload: ComposeUpload) -> None:
        delete_upload_objects(self.client, upload, self._timeout)

    def cleanup_multipart_upload(self, upload: ComposeUpload) -> None:
        # The parts and intermediate composes are ordinary objects: after the final compose
        # (or an abort) they are deleted here, a step the engine retries and reports.
        delete_upload_objects(self.client, upload, self._timeout)


class _MultipartBody:
    """A ``multipart/related`` upload body sent in three pieces: the object's JSON resource,
    the data (straight from the caller's buffer, never copied) and the closing boundary.

    It has a length (so the request has a ``Content-Length``) and can be iterated again (a
    request repeated after a token refresh sends it again).
    """

    def __init__(self, resource: Mapping[str, Any], data: bytes, content_type: str) -> None:
        # A random boundary: the data cannot contain it by chance.
        boundary = f"cloudstore-{secrets.token_hex(16)}"
        self.content_type = f'multipart/related; boundary="{boundary}"'
        self._head = (
            f"--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
            f"{json.dumps(resource)}\r\n--{boundary}\r\nContent-Type: {content_type}\r\n\r\n"
        ).encode()
        self._data = data
        self._tail = f"\r\n--{boundary}--\r\n".encode()

    def __len__(self) -> int:
        return len(self._head) + len(self._data) + len(self._tail)

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        if self._data:
            yield self._data
        yield self._tail


def _stored_md5(stored: Mapping[str, Any]) -> bytes | None:
    """The MD5 the service reports for what it stored (``None``: it reports none)."""
    value = stored.get("md5Hash")
    if not isinstance(value, str) or not value:
        return None
    try:
        return base64.b64decode(value)
    except ValueError:
        return b""  # garbled on the way back: not what we sent, so the upload is tried again


def _mismatch(name: str, sent: bytes, stored: Mapping[str, Any]) -> ChecksumMismatchException:
    stored_hex = (_stored_md5(stored) or b"").hex() or "unreadable"
    return ChecksumMismatchException(
        f"GCS stored other bytes than were sent for {name!r} (MD5 {stored_hex}, sent {sent.hex()}): damaged on the way",
        retryable=True,
    )


def _session_for(credentials: google.auth.credentials.Credentials, pool: int) -> requests.Session:
    """The HTTP session: a connection pool as wide as the transfer engine's parallel parts, no
    transport retries, and on a 401 one token refresh and retry only where a refresh can give
    a new token (not for a fixed access token or anonymous access)."""
    refreshable = not isinstance(credentials, google.auth.credentials.AnonymousCredentials) and not (
        isinstance(credentials, google.oauth2.credentials.Credentials) and not credentials.refresh_token
    )
    session = google.auth.transport.requests.AuthorizedSession(
        credentials, max_refresh_attempts=1 if refreshable else 0
    )
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # As the SDK does for its own session (a client certificate only when the environment asks).
    session.configure_mtls_channel()
    return session


def _bucket_info(bucket: storage.Bucket) -> BucketInfo:
    return BucketInfo(name=bucket.name, created=bucket.time_created)


def _object_info(blob: storage.Blob) -> ObjectInfo:
    return ObjectInfo(
        name=blob.name,
        size=int(blob.size or 0),
        last_modified=blob.updated,
        etag=blob.etag,
        content_type=blob.content_type,
        metadata=dict(blob.metadata or {}),
        checksum=blob_checksum(blob),
    )


def blob_checksum(blob: storage.Blob) -> tuple[str, str] | None:
    """The whole-object checksum GCS reports: MD5 when it has one (not for composite objects),
    else CRC32C (always there), as hex."""
    return _checksum(blob.md5_hash, blob.crc32c)


def _checksum(md5: str | None, crc32c: str | None) -> tuple[str, str] | None:
    """MD5 if there is one, else CRC32C, from GCS's base64 forms."""
    if md5:
        return ("md5", base64.b64decode(md5).hex())
    if crc32c:
        return ("crc32c", base64.b64decode(crc32c).hex())
    return None


def _media_info(name: str, response: requests.Response) -> ObjectInfo | None:
    """The object's size, content type and checksum from a media download's headers.

    The JSON API sends no user metadata with the bytes, so ``metadata`` stays ``None`` (unknown):
    the model fetches it with a HEAD only if it is asked for.
    """
    headers = response.headers
    if response.status_code == 206:
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
        checksum=_checksum(hashes.get("md5"), hashes.get("crc32c")),
    )

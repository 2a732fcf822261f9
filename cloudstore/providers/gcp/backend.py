# mypy: disallow-untyped-calls=False
# (google-auth and google-api-core ship type hints for only part of their API)
"""Google Cloud Storage through google-cloud-storage (the JSON API).

One method is one request, with the SDK's own retries switched off (``retry=None``):
the shared layer retries. Every request waits at most the configured connect and read
timeouts. Large uploads are parts uploaded in parallel as hidden temporary objects, then
composed into the final object (see :mod:`.compose`).

The hot requests (uploads of whole objects and parts, downloads, metadata GETs, single deletes,
listing pages) take the lean request path of :mod:`.rest`, over one bounded connection pool
with the SDK's credentials; the SDK's client does the rest. An upload's body is sent straight
from the caller's buffer, and the request carries the body's MD5, which GCS checks; the MD5 the
service reports back is compared too, for servers that store whatever arrives (fake-gcs-server).

Listings page by object name (``startOffset``) so that a marker is simply the last
name returned and a page never holds more than ``limit`` entries, on GCS and on
emulators alike.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import threading
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, ClassVar

import google.api_core.exceptions as api_errors
import google.auth.credentials
import google.auth.transport.requests
import requests
import requests.adapters
from google.cloud import storage

from cloudstore import _names as names
from cloudstore._http import byte_range, md5_base64, pool_size, request_timeout
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
from cloudstore.config import Config, Timeouts
from cloudstore.credentials import CredentialSource
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    InvalidNameException,
    InvalidParamException,
    NotSupportedException,
)
from cloudstore.providers.gcp import auth
from cloudstore.providers.gcp.compose import (
    HIDDEN_PREFIX,
    ComposeUpload,
    compose_parts,
    delete_objects,
    delete_upload_objects,
)
from cloudstore.providers.gcp.errors import error_from_response, map_gcs_error
from cloudstore.providers.gcp.paging import BucketMarker, ObjectPager
from cloudstore.providers.gcp.rest import GCSRest, can_refresh, checksum, object_info

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
        self._timeouts = Timeouts.from_config(config)
        self._pool_size = pool_size(config)
        self._lock = threading.Lock()
        self._client_instance: storage.Client | None = None
        self._rest_instance: GCSRest | None = None
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

    @property
    def rest(self) -> GCSRest:
        """The lean request path (:mod:`.rest`), with the SDK client's endpoint and credentials."""
        rest = self._rest_instance
        if rest is None:
            client = self.client
            with self._lock:
                if self._rest_instance is None:
                    self._rest_instance = GCSRest(
                        client.api_endpoint, client._credentials, pool_size=self._pool_size, timeouts=self._timeouts
                    )
                rest = self._rest_instance
        return rest

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
            rest, self._rest_instance = self._rest_instance, None
        if rest is not None:
            rest.close()
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
        pager: ObjectPager[dict[str, Any]] = ObjectPager(prefix, delimiter, marker)
        items, prefixes, truncated = self.rest.list_page(
            bucket, prefix, delimiter, pager.start_offset, pager.page_size(limit)
        )
        return pager.cut([(item["name"], item) for item in items], prefixes, limit, truncated, object_info)

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        resource = self.rest.resource(bucket, name)
        return None if resource is None else object_info(resource)

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
        stored = self.rest.upload(
            bucket, name, data, content_type or "application/octet-stream", metadata, md5, generation
        )
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
        resource = self.rest.resource(bucket, name)
        condition.check(None if resource is None else object_info(resource), name)
        assert resource is not None  # check() refused an absent object
        return int(resource["generation"])

    def _remove_generation(self, bucket: str, name: str, generation: Any) -> None:
        """Delete ``generation`` of an object if it is still the live one; best effort (a retry
        replaces it anyway)."""
        if not str(generation or "").isdigit():
            return
        # Gone already, replaced since, or unreachable: the retry decides what stays.
        with contextlib.suppress(Exception):
            self.rest.delete(bucket, name, int(generation))

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        ranged = (start or 0) > 0 or end is not None
        return self.rest.download(bucket, name, byte_range(start, end) if ranged else None)

    def delete_object(self, bucket: str, name: str) -> None:
        self.rest.delete(bucket, name)

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
        stored = self.rest.upload(upload.bucket, part_name, data, "application/octet-stream", {}, md5)
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
    session = google.auth.transport.requests.AuthorizedSession(
        credentials, max_refresh_attempts=1 if can_refresh(credentials) else 0
    )
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=pool, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    # As the SDK does for its own session (a client certificate only when the environment asks).
    session.configure_mtls_channel()
    return session


def _bucket_info(bucket: storage.Bucket) -> BucketInfo:
    return BucketInfo(name=bucket.name, created=bucket.time_created)


def blob_checksum(blob: storage.Blob) -> tuple[str, str] | None:
    """The whole-object checksum GCS reports for ``blob`` (see :func:`.rest.checksum`)."""
    return checksum(blob.md5_hash, blob.crc32c)

"""AWS S3 and S3-compatible servers: boto3 for the control plane, the lean path for the data.

The hot requests (single put/get/head/delete, listing pages, parts, batch deletes) go over
:mod:`cloudstore.providers.aws.rest`, signed with the session's credentials; buckets, multipart
create/complete/abort, copies, signed URLs and forms go through boto3's low-level client. Both are
created on first use (the constructor makes no network call) and shared by the transfer engine's
threads; their connection pools are sized for them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

import botocore.exceptions as boto_errors

from cloudstore import _names as names
from cloudstore import exceptions as exc
from cloudstore._checksums import Checksum, combine_part_digests
from cloudstore._http import byte_range, condition_headers, md5_base64, pool_size, strip_etag
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
from cloudstore.providers.aws.auth import (
    ChecksumMode,
    ClientSettings,
    as_verify,
    make_client,
    make_session,
    static_keys,
)
from cloudstore.providers.aws.errors import error_code, is_bare_forbidden, is_not_found, map_error
from cloudstore.providers.aws.rest import DEFAULT_REGION, PLAIN_MD5, S3Rest

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

#: S3 returns at most this many keys per ListObjectsV2 page.
MAX_KEYS_PER_PAGE = 1000
#: The largest MaxBuckets S3 accepts.
MAX_BUCKETS_PER_PAGE = 10_000
#: Starts a bucket-listing marker that is a bucket name (cut on the client), not a service token.
_NAME_MARKER = "after-name:"
#: The most keys one DeleteObjects request takes.
MAX_KEYS_PER_DELETE = 1000

CHECKSUM_MODES: tuple[ChecksumMode, ...] = ("when_required", "when_supported")
ADDRESSING_STYLES = ("auto", "virtual", "path")

#: A multipart ETag: the MD5 of the parts' binary MD5s, and their number.
_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-[0-9]+$")


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _composite_etag(parts: list[UploadPart]) -> str | None:
    """The multipart ETag S3 must give the object assembled from ``parts`` (None: not computable)."""
    digests = []
    for part in parts:
        etag = strip_etag(part.token)
        if etag is None or not PLAIN_MD5.match(etag):
            return None
        digests.append(bytes.fromhex(etag))
    return combine_part_digests(digests, hex_parts=False)


def _condition_params(condition: WriteCondition | None) -> dict[str, Any]:
    """``IfNoneMatch`` / ``IfMatch`` of a conditional write (S3 checks them as it commits)."""
    return {key.replace("-", ""): value for key, value in condition_headers(condition).items()}


@dataclass(frozen=True)
class S3Upload:
    """Handle of one multipart upload."""

    bucket: str
    name: str
    upload_id: str


class S3Backend(Backend[S3Upload]):
    """S3 primitives on boto3's client; see :mod:`cloudstore.backend`."""

    features = Features(
        multipart_upload=True,
        server_side_copy=True,
        signed_urls=True,
        server_paging=True,
        min_part_size=5 * 1024 * 1024,
        max_parts=10_000,
        max_url_expiry=7 * 24 * 3600,
        # CopyObject copies at most 5 GiB; a larger object is copied part by part (UploadPartCopy).
        max_copy_size=5 * 1024**3,
        # A multipart ETag is the MD5 of the parts' MD5s: the part sizes make it verifiable.
        records_part_layout=True,
        # Not so for a copy in parts: SeaweedFS answers UploadPartCopy with ETags that are no
        # MD5 of the part ("<hex>-2"), and AWS documents none.
        part_copies_keep_digests=False,
        max_batch_delete=MAX_KEYS_PER_DELETE,
        signed_url_headers=True,
        # SigV4 signs with the credentials: a URL dies with a session token.
        signed_with_credentials=True,
        refreshing_credentials=True,
        # If-None-Match / If-Match on PutObject, CompleteMultipartUpload and CopyObject (S3 since
        # 2024; SeaweedFS honours all three, atomically: measured with racing writers).
        if_none_match=True,
        if_match=True,
    )

    check_bucket_name = staticmethod(names.s3_bucket_name)

    def __init__(self, config: Config) -> None:
        self._keys, self.credentials = static_keys(config)
        self.region: str = config.get("aws_region_name") or DEFAULT_REGION
        self.endpoint_url: str | None = config.get("s3_endpoint_url") or None
        style = config.get("s3_addressing_style") or ("path" if self.endpoint_url else "auto")
        if style not in ADDRESSING_STYLES:
            raise exc.InvalidParamException(f"s3_addressing_style must be one of {', '.join(ADDRESSING_STYLES)}")
        self.addressing_style: str = style
        checksums = config.get("s3_checksums") or "when_required"
        if checksums not in CHECKSUM_MODES:
            raise exc.InvalidParamException(f"s3_checksums must be one of {', '.join(CHECKSUM_MODES)}")
        self.checksums = cast(ChecksumMode, checksums)
        content_md5 = config.get("s3_content_md5")
        self.content_md5: bool = True if content_md5 is None else bool(content_md5)
        self.timeouts = Timeouts.from_config(config)
        self.kms_key_id: str | None = config.get("s3_kms_key_id") or None
        self.settings = ClientSettings(
            endpoint_url=self.endpoint_url,
            addressing_style=style,
            checksums=self.checksums,
            verify=as_verify(config.get("s3_verify")),
            pool_size=pool_size(config),
            timeouts=self.timeouts,
        )
        self._client: S3Client | None = None
        self._rest: S3Rest | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<S3Backend endpoint_url={self.endpoint_url!r} region={self.region!r}>"

    # --- client -----------------------------------------------------------
    @property
    def client(self) -> S3Client:
        """The boto3 S3 client (created on first use; shared by all threads)."""
        client = self._client
        if client is None:
            with self._client_lock:
                if self._client is None:
                    self._client = self._make_client()
                client = self._client
        return client

    @property
    def rest(self) -> S3Rest:
        """The lean path of the data-plane requests (made with the client, signing with its credentials)."""
        rest = self._rest
        if rest is None:
            _ = self.client
            rest = self._rest
            assert rest is not None
        return rest

    def _make_client(self) -> S3Client:
        session = make_session(self._keys, self.region, self.credentials)
        client = make_client(session, self.settings)
        self._rest = S3Rest(
            session.get_credentials(),
            self.region,
            self.settings,
            kms_key_id=self.kms_key_id,
            content_md5=self.content_md5,
        )
        return client

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
            rest, self._rest = self._rest, None
        if client is not None:
            client.close()
        if rest is not None:
            rest.close()

    # --- errors -----------------------------------------------------------
    def map_error(self, error: BaseException) -> exc.CloudStoreException | None:
        return map_error(error)

    # --- buckets ----------------------------------------------------------
    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        # AWS pages ListBuckets with MaxBuckets and a continuation token (and refuses unpaged
        # requests from accounts allowed more than 10,000 buckets). Servers that ignore MaxBuckets
        # answer with every bucket: those pages are cut here, with a bucket-name marker.
        params: dict[str, Any] = {"MaxBuckets": min(limit or MAX_BUCKETS_PER_PAGE, MAX_BUCKETS_PER_PAGE)}
        after: str | None = None
        if marker is not None and marker.startswith(_NAME_MARKER):
            after = marker[len(_NAME_MARKER) :]
        elif marker is not None:
            params["ContinuationToken"] = marker
        response = self.client.list_buckets(**params)
        buckets = [BucketInfo(b["Name"], _utc(b.get("CreationDate"))) for b in response.get("Buckets", [])]
        if after is not None:
            buckets = [b for b in buckets if b.name > after]
        if limit is not None and len(buckets) > limit:
            buckets = sorted(buckets, key=lambda b: b.name)[:limit]
            return Page(buckets, next_marker=_NAME_MARKER + buckets[-1].name)
        return Page(buckets, next_marker=response.get("ContinuationToken") or None)

    def head_bucket(self, name: str) -> BucketInfo | None:
        try:
            self.client.head_bucket(Bucket=name)
        except boto_errors.ClientError as error:
            if is_not_found(error):
                return None
            if not is_bare_forbidden(error):
                raise
            # A HEAD 403 carries no code: ask again with a request whose answer names the reason.
            try:
                self.client.list_objects_v2(Bucket=name, MaxKeys=1)
            except boto_errors.ClientError as follow_up:
                if error_code(follow_up) == "NoSuchBucket":
                    return None
                raise
        return BucketInfo(name)

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        region = location or self.region
        if region and region != DEFAULT_REGION:
            self.client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": region})  # type: ignore[typeddict-item]
        else:
            self.client.create_bucket(Bucket=name)
        return BucketInfo(name)

    def delete_bucket(self, name: str) -> None:
        self.client.delete_bucket(Bucket=name)

    # --- objects (the lean path) ----------------------------------------------
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        max_keys = None if limit is None else max(1, min(limit, MAX_KEYS_PER_PAGE))
        return self.rest.list_objects(bucket, prefix, delimiter, max_keys, marker)

    def checksum_hint(self, info: ObjectInfo) -> Checksum | None:
        # A listing tells no encryption, so an MD5-shaped ETag is no checksum (see etag_checksum).
        return Checksum("md5", info.etag) if info.etag and PLAIN_MD5.match(info.etag) else None

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        try:
            return self.rest.head_object(bucket, name)
        except exc.CloudStoreException as error:
            if is_not_found(error):
                return None
            if not is_bare_forbidden(error):
                raise
            self._explain_forbidden_head(bucket, name, error)
            return None

    def _explain_forbidden_head(self, bucket: str, name: str, error: exc.CloudStoreException) -> None:
        """Return if the object is missing; otherwise raise why the HEAD was refused."""
        try:
            self.rest.get_object(bucket, name, "bytes=0-0").close()
        except exc.CloudStoreException as follow_up:
            if follow_up.code in ("NoSuchKey", "NoSuchBucket"):
                return
            if follow_up.code != "InvalidRange":  # an empty object: it exists
                raise
        # The object is there and readable, yet HEAD was refused: report that refusal.
        raise error

    def _encryption_params(self) -> dict[str, Any]:
        if not self.kms_key_id:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}

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
        self.rest.put_object(
            bucket,
            name,
            data,
            content_type or "application/octet-stream",
            metadata,
            condition_headers(condition),
            content_md5,
        )

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        # The GET's headers describe the whole object, so a full read needs no HEAD first.
        return self.rest.get_object(bucket, name, byte_range(start, end))

    def delete_object(self, bucket: str, name: str) -> None:
        # S3 answers 204 for a key that is not there; the contract wants NotFoundException, and
        # conditional deletes (If-Match) are not available on every S3 server, so look first.
        if self.head_object(bucket, name) is None:
            raise exc.NotFoundException(f"object {name!r} not found in bucket {bucket!r}", status=404, code="NoSuchKey")
        self.rest.delete_object(bucket, name)

    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, exc.CloudStoreException]]:
        # DeleteObjects: up to 1,000 keys a request; "Quiet" answers with the failures alone.
        return [
            (name, error)
            for name, error in self.rest.delete_objects(bucket, names)
            if not isinstance(error, exc.NotFoundException)
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
        # MetadataDirective COPY (the default) keeps content type and user metadata.
        params: dict[str, Any] = {}
        if (src_bucket, src_name) == (dst_bucket, dst_name):
            # S3 refuses to copy an object onto itself unchanged: "replace" its properties with
            # the same ones (a rewrite in place, as a copy onto itself is elsewhere).
            source = self.head_object(src_bucket, src_name)
            if source is None:
                raise exc.NotFoundException(f"object {src_name!r} not found in bucket {src_bucket!r}", status=404)
            params = {
                "MetadataDirective": "REPLACE",
                "ContentType": source.content_type or "application/octet-stream",
                "Metadata": dict(source.metadata or {}),
            }
        self.client.copy_object(
            Bucket=dst_bucket,
            Key=dst_name,
            CopySource={"Bucket": src_bucket, "Key": src_name},
            **params,
            **_condition_params(condition),
            **self._encryption_params(),
        )

    def sign_url(
        self, bucket: str, name: str, method: str, expires_in: int, *, pins: UrlPins | None = None
    ) -> str | tuple[str, Mapping[str, str]]:
        operations = {"GET": "get_object", "PUT": "put_object"}
        operation = operations.get(method.upper())
        if operation is None:
            raise exc.InvalidParamException(f"signed URLs support GET and PUT, not {method!r}")
        params: dict[str, Any] = {"Bucket": bucket, "Key": name}
        headers: dict[str, str] = {}
        if pins:
            # Signed as headers (SigV4 lists them in X-Amz-SignedHeaders): S3 refuses others.
            if pins.content_type:
                params["ContentType"] = headers["Content-Type"] = pins.content_type
            if pins.content_md5:
                params["ContentMD5"] = headers["Content-MD5"] = md5_base64(pins.content_md5)
            if pins.metadata:
                params["Metadata"] = dict(pins.metadata)
                headers.update({f"x-amz-meta-{key}": value for key, value in pins.metadata.items()})
        # The client signs with SigV4 (signature_version="s3v4") and adds the session token.
        url = self.client.generate_presigned_url(
            operation, Params=params, ExpiresIn=int(expires_in), HttpMethod=method.upper()
        )
        return (url, headers) if headers else url

    def sign_post(self, bucket: str, name: str, expires_in: int, max_size: int, content_type: str | None) -> PostForm:
        # A POST policy: S3 checks the key, the size range and the content type against it.
        fields: dict[str, Any] = {}
        conditions: list[Any] = [["content-length-range", 0, max_size]]
        if content_type:
            fields["Content-Type"] = content_type
            conditions.append({"Content-Type": content_type})
        post = self.client.generate_presigned_post(
            bucket, name, Fields=fields, Conditions=conditions, ExpiresIn=int(expires_in)
        )
        return PostForm(post["url"], {key: str(value) for key, value in post["fields"].items()})

    # --- multipart uploads --------------------------------------------------
    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> S3Upload:
        response = self.client.create_multipart_upload(
            Bucket=bucket,
            Key=name,
            ContentType=content_type or "application/octet-stream",
            Metadata=dict(metadata),
            **self._encryption_params(),
        )
        return S3Upload(bucket, name, response["UploadId"])

    def upload_part(
        self, upload: S3Upload, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        etag = self.rest.upload_part(upload.bucket, upload.name, upload.upload_id, number, data, content_md5)
        return UploadPart(number, etag)

    def upload_part_copy(
        self, upload: S3Upload, number: int, src_bucket: str, src_name: str, start: int, end: int, etag: str | None
    ) -> UploadPart:
        response = self.client.upload_part_copy(
            Bucket=upload.bucket,
            Key=upload.name,
            UploadId=upload.upload_id,
            PartNumber=number,
            CopySource={"Bucket": src_bucket, "Key": src_name},
            CopySourceRange=f"bytes={start}-{end}",
            **({"CopySourceIfMatch": f'"{etag}"'} if etag else {}),  # type: ignore[arg-type]
        )
        return UploadPart(number, response["CopyPartResult"]["ETag"])

    def complete_multipart_upload(
        self,
        upload: S3Upload,
        parts: list[UploadPart],
        content_md5: bytes | None = None,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        response = self.client.complete_multipart_upload(
            **_condition_params(condition),
            Bucket=upload.bucket,
            Key=upload.name,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": [{"PartNumber": p.number, "ETag": p.token} for p in parts]},
        )
        # The ETag of what the service assembled must be the one of the parts we sent, in order.
        etag = (strip_etag(response.get("ETag")) or "").lower()
        expected = None if self.kms_key_id else _composite_etag(parts)
        if expected is not None and _MULTIPART_ETAG.match(etag) and etag != expected:
            raise exc.ChecksumMismatchException(
                f"CompleteMultipartUpload of {upload.name!r}: the service assembled an object with ETag "
                f"{etag}, but the parts sent make {expected}; upload it again"
            )

    def abort_multipart_upload(self, upload: S3Upload) -> None:
        # An upload already gone is aborted: e.g. a retried abort whose first answer was lost.
        try:
            self.client.abort_multipart_upload(Bucket=upload.bucket, Key=upload.name, UploadId=upload.upload_id)
        except boto_errors.ClientError as error:
            if not is_not_found(error):
                raise

    def abort_orphan_uploads(self, upload: S3Upload, since: datetime) -> None:
        # An earlier attempt's upload is one of the same key, started since then, that is not ours.
        params: dict[str, Any] = {"Bucket": upload.bucket, "Prefix": upload.name}
        while True:
            response = self.client.list_multipart_uploads(**params)
            for found in response.get("Uploads", []):
                # Without a start time it may be another writer's: leave it alone.
                initiated = _utc(found.get("Initiated"))
                if (
                    found.get("Key") == upload.name
                    and found.get("UploadId") != upload.upload_id
                    and initiated is not None
                    and initiated >= since
                ):
                    self.abort_multipart_upload(S3Upload(upload.bucket, upload.name, found["UploadId"]))
            key_marker, id_marker = response.get("NextKeyMarker"), response.get("NextUploadIdMarker")
            if not response.get("IsTruncated") or not (key_marker or id_marker):
                return
            params["KeyMarker"], params["UploadIdMarker"] = key_marker, id_marker

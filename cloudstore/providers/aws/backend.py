"""AWS S3 and S3-compatible servers through boto3's low-level client.

One boto3 client per backend, created on first use (the constructor makes no
network call). boto3 clients are thread-safe, so the transfer engine's worker
threads share it; the connection pool is sized for them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal, cast

import boto3
import botocore.exceptions as boto_errors
from botocore.config import Config as BotoConfig
from botocore.credentials import CredentialProvider, Credentials, ReadOnlyCredentials

from cloudstore import _names as names
from cloudstore import exceptions as exc
from cloudstore._checksums import Checksum, combine_part_digests, multipart_etag_checksum
from cloudstore._http import byte_range, content_range_total, md5_base64, pool_size, strip_etag
from cloudstore.backend import (
    Backend,
    BucketInfo,
    Features,
    FileRangeReader,
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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_REGION = "us-east-1"
#: S3 returns at most this many keys per ListObjectsV2 page.
MAX_KEYS_PER_PAGE = 1000
#: The largest MaxBuckets S3 accepts.
MAX_BUCKETS_PER_PAGE = 10_000
#: Starts a bucket-listing marker that is a bucket name (cut on the client), not a service token.
_NAME_MARKER = "after-name:"

ChecksumMode = Literal["when_required", "when_supported"]
CHECKSUM_MODES: tuple[ChecksumMode, ...] = ("when_required", "when_supported")
ADDRESSING_STYLES = ("auto", "virtual", "path")

_PLAIN_MD5 = re.compile(r"^[0-9a-f]{32}$")
#: A multipart ETag: the MD5 of the parts' binary MD5s, and their number.
_MULTIPART_ETAG = re.compile(r"^[0-9a-f]{32}-[0-9]+$")
#: Server-side encryption whose ETag is not the MD5 of the plaintext.
_ETAG_NOT_MD5_ENCRYPTION = ("aws:kms", "aws:kms:dsse")

_NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "NoSuchVersion", "NotFound"})
_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidToken",
        "InvalidSecurity",
        "MissingSecurityHeader",
        "AuthorizationHeaderMalformed",
        "AuthorizationQueryParametersError",
        "RequestTimeTooSkewed",
        "CredentialsNotSupported",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
_PERMISSION_CODES = frozenset(
    {"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidPayer", "AccessDeniedException"}
)
_THROTTLED_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ServerBusy",
        "RequestThrottled",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "BadGateway",
        "GatewayTimeout",
        "OperationAborted",
        "IncompleteBody",
    }
)
_DUPLICATE_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
_PRECONDITION_CODES = frozenset(
    {
        "PreconditionFailed",
        "BucketNotEmpty",
        "NotModified",
        "ConditionalRequestConflict",
        "InvalidObjectState",
        "InvalidBucketState",
    }
)
_INVALID_NAME_CODES = frozenset({"InvalidBucketName", "KeyTooLongError"})
#: The service refused an upload whose body does not match the digest sent with it: damage in
#: transit, so the same request (its body read again from memory) is worth another attempt.
_CHECKSUM_CODES = frozenset({"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"})
_NOT_SUPPORTED_CODES = frozenset({"NotImplemented"})
_INVALID_PARAM_CODES = frozenset(
    {
        "EntityTooSmall",
        "EntityTooLarge",
        "InvalidArgument",
        "InvalidRange",
        "InvalidPart",
        "InvalidPartOrder",
        "InvalidRequest",
        "MalformedXML",
        "MetadataTooLarge",
        "InvalidLocationConstraint",
        "IllegalLocationConstraintException",
        "InvalidStorageClass",
        "InvalidEncryptionAlgorithmError",
        "KMS.NotFoundException",
        "KMS.DisabledException",
        "MethodNotAllowed",
        "TooManyBuckets",
    }
)

#: S3's own error codes, checked in order (the first set holding the code wins); an answer whose
#: code is not here (or has none: botocore then reports the bare status) maps by its HTTP status
#: through the shared table, :func:`cloudstore.exceptions.class_for_status`.
_CODE_TABLE: tuple[tuple[frozenset[str], type[exc.CloudStoreException]], ...] = (
    (_NOT_FOUND_CODES, exc.NotFoundException),
    (_AUTH_CODES, exc.AuthenticationException),
    (_PERMISSION_CODES, exc.PermissionDeniedException),
    (_THROTTLED_CODES, exc.ThrottledException),
    (_TRANSIENT_CODES, exc.ProviderConnectionException),
    (_DUPLICATE_CODES, exc.DuplicateResourceException),
    (_PRECONDITION_CODES, exc.PreconditionFailedException),
    (_INVALID_NAME_CODES, exc.InvalidNameException),
    (_CHECKSUM_CODES, exc.ChecksumMismatchException),
    (_NOT_SUPPORTED_CODES, exc.NotSupportedException),
    (_INVALID_PARAM_CODES, exc.InvalidParamException),
)


#: The most keys one DeleteObjects request takes.
MAX_KEYS_PER_DELETE = 1000
#: The HTTP status an item's error code in a DeleteObjects answer stands for (it carries none).
_DELETE_ITEM_STATUS = {"AccessDenied": 403, "NoSuchKey": 404, "InternalError": 500, "SlowDown": 503}


def _map_client_error(error: boto_errors.ClientError) -> exc.CloudStoreException:
    details = error.response.get("Error", {})
    code = str(details.get("Code") or "") or None
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    cls: type[exc.CloudStoreException] | None = None
    if code is not None:
        cls = next((cls for codes, cls in _CODE_TABLE if code in codes), None)
    if cls is None:
        cls = exc.class_for_status(status)
    operation = getattr(error, "operation_name", None) or "S3 request"
    message = details.get("Message") or ""
    text = f"{operation} failed: {code or status}" + (f" ({message})" if message and message != code else "")
    return cls(text, status=status, code=code, retryable=True if cls is exc.ChecksumMismatchException else None)


def _bare_forbidden(error: BaseException) -> bool:
    """A HEAD answer of 403 without an error code: wrong secret, unknown key, bad token or denied alike."""
    if not isinstance(error, boto_errors.ClientError):
        return False
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 403 and str(error.response.get("Error", {}).get("Code")) in ("403", "Forbidden", "")


def _error_code(error: boto_errors.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code") or "")


def _not_found(error: boto_errors.ClientError) -> bool:
    """A 404, or an S3 "no such ..." code (a HEAD's 404 carries no code of its own)."""
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return status == 404 or _error_code(error) in _NOT_FOUND_CODES


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def _etag_checksum(
    etag: str | None, size: int, metadata: Mapping[str, str], encryption: str | None, customer_key: str | None
) -> Checksum | tuple[str, str] | None:
    """What the ETag lets a download verify, unless SSE-KMS or SSE-C made it no MD5.

    A single PUT's (or copy's) ETag is the content's MD5. A multipart ETag is the MD5 of the
    parts' MD5s: checkable only knowing where the parts were cut, which cloudstore records in
    the metadata of what it uploads (objects other tools wrote in parts are not verified).
    """
    if etag is None or encryption in _ETAG_NOT_MD5_ENCRYPTION or customer_key:
        return None
    if _PLAIN_MD5.match(etag):
        return ("md5", etag)
    return multipart_etag_checksum(etag, size, metadata)


def _composite_etag(parts: list[UploadPart]) -> str | None:
    """The multipart ETag S3 must give the object assembled from ``parts`` (None: not computable)."""
    digests = []
    for part in parts:
        etag = strip_etag(part.token)
        if etag is None or not _PLAIN_MD5.match(etag):
            return None
        digests.append(bytes.fromhex(etag))
    return combine_part_digests(digests, hex_parts=False)


def _total_size(response: Mapping[str, Any]) -> int:
    """The whole object's size: from ``Content-Range`` ("bytes 0-9/1234") for a ranged GET."""
    total = content_range_total(response.get("ContentRange"))
    return total if total is not None else int(response.get("ContentLength", 0))


def _as_verify(value: Any) -> bool | str | None:
    """``s3_verify``: a bool, a CA bundle path, or a "true"/"false" string."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        return value
    raise exc.InvalidParamException("s3_verify must be a bool or the path of a CA bundle")


#: The config keys a credentials_provider may return for S3.
_CREDENTIAL_KEYS = frozenset({"aws_access_key", "aws_secret_key", "aws_session_token"})


class _SourceCredentials(Credentials):
    """botocore credentials read from a :class:`CredentialSource` each time a request is signed."""

    def __init__(self, source: CredentialSource) -> None:
        self._source = source
        self.method = "cloudstore-credentials-provider"

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        values = self._source.current().values
        return ReadOnlyCredentials(values["aws_access_key"], values["aws_secret_key"], values.get("aws_session_token"))

    # Read by parts of botocore that do not freeze the credentials first.
    @property  # type: ignore[override]
    def access_key(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().access_key

    @property  # type: ignore[override]
    def secret_key(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().secret_key

    @property  # type: ignore[override]
    def token(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().token


class _SourceProvider(CredentialProvider):  # type: ignore[misc]
    METHOD = "cloudstore-credentials-provider"
    CANONICAL_NAME = "cloudstore"

    def __init__(self, source: CredentialSource) -> None:
        super().__init__()
        self._source = source

    def load(self) -> Credentials:
        return _SourceCredentials(self._source)


def _condition_params(condition: WriteCondition | None) -> dict[str, Any]:
    """``IfNoneMatch`` / ``IfMatch`` of a conditional write (S3 checks them as it commits)."""
    if condition is None:
        return {}
    if condition.if_none_match:
        return {"IfNoneMatch": "*"}
    return {"IfMatch": f'"{strip_etag(condition.if_match)}"'}


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
        self._access_key: str | None = config.get("aws_access_key") or None
        self._secret_key: str | None = config.get("aws_secret_key") or None
        self._session_token: str | None = config.get("aws_session_token") or None
        if bool(self._access_key) != bool(self._secret_key):
            raise exc.InvalidParamException("aws_access_key and aws_secret_key must be given together")
        if self._session_token and not self._access_key:
            raise exc.InvalidParamException("aws_session_token needs aws_access_key and aws_secret_key")
        provider = config.get("credentials_provider")
        if provider is not None:
            if self._access_key:
                raise exc.InvalidParamException("give aws_access_key/aws_secret_key or credentials_provider, not both")
            self.credentials = CredentialSource(provider, _CREDENTIAL_KEYS)
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
        self._verify = _as_verify(config.get("s3_verify"))
        self.kms_key_id: str | None = config.get("s3_kms_key_id") or None
        self._pool_size = pool_size(config)
        self._client: S3Client | None = None
        self._client_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3Backend(endpoint_url={self.endpoint_url!r}, region={self.region!r})"

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

    def _make_client(self) -> S3Client:
        s3_options: dict[str, Any] = {"addressing_style": self.addressing_style}
        if self.endpoint_url and self.endpoint_url.lower().startswith("http://"):
            # Over plain http botocore SHA-256-hashes every body for the signature: a full extra
            # pass over the data that TLS-less test and LAN servers gain nothing from.
            s3_options["payload_signing_enabled"] = False
        boto_config = BotoConfig(
            signature_version="s3v4",
            s3=s3_options,  # type: ignore[arg-type]
            # The shared layer retries (one policy for every provider); botocore must not as well.
            # (botocore's "max_attempts" counts retries, so max_attempts=1 would still retry once.)
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=self._pool_size,
            connect_timeout=self.timeouts.connect,
            read_timeout=self.timeouts.read,
            request_checksum_calculation=self.checksums,
            response_checksum_validation=self.checksums,
        )
        session = boto3.session.Session(
            aws_access_key_id=self._access_key,
            aws_secret_access_key=self._secret_key,
            aws_session_token=self._session_token,
            region_name=self.region,
        )
        if self.credentials is not None:
            # First in botocore's chain: every request (and every presigned URL) is signed with
            # what the source holds now, renewed before it expires.
            resolver = session._session.get_component("credential_provider")
            resolver.insert_before("env", _SourceProvider(self.credentials))
        return session.client(
            "s3",
            endpoint_url=self.endpoint_url,
            verify=self._verify,
            config=boto_config,
        )

    def close(self) -> None:
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    # --- errors -----------------------------------------------------------
    def map_error(self, error: BaseException) -> exc.CloudStoreException | None:
        if isinstance(error, exc.CloudStoreException):
            return error
        if isinstance(error, boto_errors.ClientError):
            return _map_client_error(error)
        if isinstance(error, boto_errors.ParamValidationError):
            return exc.InvalidParamException(f"invalid S3 request parameters: {error}")
        if isinstance(
            error,
            (
                boto_errors.NoCredentialsError,
                boto_errors.PartialCredentialsError,
                boto_errors.CredentialRetrievalError,
                boto_errors.UnauthorizedSSOTokenError,
            ),
        ):
            return exc.AuthenticationException(f"AWS credentials are missing or unusable: {type(error).__name__}")
        if isinstance(
            error,
            (
                boto_errors.ConnectionError,  # EndpointConnectionError, ConnectionClosedError, timeouts, SSL, proxy
                boto_errors.HTTPClientError,  # ReadTimeoutError and other urllib3 failures
                boto_errors.ResponseStreamingError,
                boto_errors.IncompleteReadError,
            ),
        ):
            return exc.ProviderConnectionException(f"S3 connection failed: {error}")
        if isinstance(error, (boto_errors.ChecksumError, boto_errors.FlexibleChecksumError)):
            # botocore's own check of a response ("when_supported"): damaged on the way.
            return exc.ChecksumMismatchException(f"S3 response failed its checksum: {error}", retryable=True)
        if isinstance(error, boto_errors.BotoCoreError):
            return exc.CloudStoreException(f"S3 client error: {error}")
        return None

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
            if _not_found(error):
                return None
            if not _bare_forbidden(error):
                raise
            # A HEAD 403 carries no code: ask again with a request whose answer names the reason.
            try:
                self.client.list_objects_v2(Bucket=name, MaxKeys=1)
            except boto_errors.ClientError as follow_up:
                if _error_code(follow_up) == "NoSuchBucket":
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

    # --- objects ----------------------------------------------------------
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": bucket}
        if prefix:
            params["Prefix"] = prefix
        if delimiter:
            params["Delimiter"] = delimiter
        if limit is not None:
            params["MaxKeys"] = max(1, min(limit, MAX_KEYS_PER_PAGE))
        if marker:
            params["ContinuationToken"] = marker
        response = self.client.list_objects_v2(**params)
        # Listings carry no encryption details, so no checksum is claimed from them (an SSE-KMS
        # ETag is not an MD5); head_object gives it.
        items = [
            ObjectInfo(
                name=entry["Key"],
                size=int(entry.get("Size", 0)),
                last_modified=_utc(entry.get("LastModified")),
                etag=strip_etag(entry.get("ETag")),
            )
            for entry in response.get("Contents", [])
        ]
        prefixes = [p["Prefix"] for p in response.get("CommonPrefixes", []) if "Prefix" in p]
        next_marker = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return Page(items, next_marker=next_marker or None, prefixes=prefixes)

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        try:
            response = self.client.head_object(Bucket=bucket, Key=name)
        except boto_errors.ClientError as error:
            if _not_found(error):
                return None
            if not _bare_forbidden(error):
                raise
            self._explain_forbidden_head(bucket, name, error)
            return None
        return self._object_info(name, response)

    def _explain_forbidden_head(self, bucket: str, name: str, error: boto_errors.ClientError) -> None:
        """Return if the object is missing; otherwise raise why the HEAD was refused."""
        try:
            body = self.client.get_object(Bucket=bucket, Key=name, Range="bytes=0-0")["Body"]
        except boto_errors.ClientError as follow_up:
            if _error_code(follow_up) in ("NoSuchKey", "NoSuchBucket"):
                return
            if _error_code(follow_up) != "InvalidRange":  # an empty object: it exists
                raise
        else:
            body.close()
        # The object is there and readable, yet HEAD was refused: report that refusal.
        raise error

    @staticmethod
    def _object_info(name: str, response: Mapping[str, Any]) -> ObjectInfo:
        """The object's properties from the headers of a HEAD or GET response."""
        etag = strip_etag(response.get("ETag"))
        size = _total_size(response)
        metadata = dict(response.get("Metadata", {}))
        encryption = response.get("ServerSideEncryption")
        return ObjectInfo(
            name=name,
            size=size,
            last_modified=_utc(response.get("LastModified")),
            etag=etag,
            content_type=response.get("ContentType"),
            metadata=metadata,
            checksum=_etag_checksum(etag, size, metadata, encryption, response.get("SSECustomerAlgorithm")),
        )

    def _encryption_params(self) -> dict[str, Any]:
        if not self.kms_key_id:
            return {}
        return {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}

    def _md5_params(self, content_md5: bytes | None) -> dict[str, Any]:
        """``Content-MD5`` for the service to check the body against (BadDigest on a mismatch)."""
        if content_md5 is None or not self.content_md5:
            return {}
        return {"ContentMD5": md5_base64(content_md5)}

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
        self.client.put_object(
            **_condition_params(condition),
            Bucket=bucket,
            Key=name,
            Body=data,
            ContentType=content_type or "application/octet-stream",
            Metadata=dict(metadata),
            **self._md5_params(content_md5),
            **self._encryption_params(),
        )

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        requested = byte_range(start, end)
        if requested is None:
            response = self.client.get_object(Bucket=bucket, Key=name)
        else:
            response = self.client.get_object(Bucket=bucket, Key=name, Range=requested)
        # The GET's headers describe the whole object, so a full read needs no HEAD first.
        return FileRangeReader(response["Body"], self._object_info(name, response))

    def delete_object(self, bucket: str, name: str) -> None:
        # S3 answers 204 for a key that is not there; the contract wants NotFoundException, and
        # conditional deletes (If-Match) are not available on every S3 server, so look first.
        if self.head_object(bucket, name) is None:
            raise exc.NotFoundException(f"object {name!r} not found in bucket {bucket!r}", status=404, code="NoSuchKey")
        self.client.delete_object(Bucket=bucket, Key=name)

    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, exc.CloudStoreException]]:
        # DeleteObjects: up to 1,000 keys a request; "Quiet" answers with the failures alone.
        response = self.client.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": name} for name in names], "Quiet": True}
        )
        failures = []
        for entry in response.get("Errors", []):
            code = str(entry.get("Code") or "")
            error = boto_errors.ClientError(
                {
                    "Error": {"Code": code, "Message": str(entry.get("Message") or "")},
                    "ResponseMetadata": {"HTTPStatusCode": _DELETE_ITEM_STATUS.get(code, 400)},  # type: ignore[typeddict-item]
                },
                "DeleteObjects",
            )
            mapped = _map_client_error(error)
            if not isinstance(mapped, exc.NotFoundException):
                failures.append((str(entry.get("Key", "")), mapped))
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
        response = self.client.upload_part(
            Bucket=upload.bucket,
            Key=upload.name,
            UploadId=upload.upload_id,
            PartNumber=number,
            Body=data,
            **self._md5_params(content_md5),
        )
        return UploadPart(number, response["ETag"])

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
            if not _not_found(error):
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

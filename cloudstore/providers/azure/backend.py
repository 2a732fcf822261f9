"""Azure Blob Storage primitives on azure-storage-blob (v12).

Buckets are containers and objects are block blobs. Large uploads are staged
blocks committed once with a block list; signed URLs are service SAS tokens
(account key) or user-delegation SAS tokens (TokenCredential).

Only the data plane is used: no management (ARM) call is ever made.
"""

from __future__ import annotations

import dataclasses
import re
import secrets
import threading
import time
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

import requests
from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.paging import ItemPaged
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import (
    BlobBlock,
    BlobClient,
    BlobPrefix,
    BlobSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContentSettings,
    UserDelegationKey,
    generate_blob_sas,
)
from urllib3.util.retry import Retry

from cloudstore import _names as names
from cloudstore._engine import TransferConfig
from cloudstore._http import content_range_total, md5_base64, pool_size, strip_etag
from cloudstore.backend import (
    Backend,
    BucketInfo,
    Features,
    ObjectInfo,
    Page,
    RangeReader,
    UploadPart,
    UrlPins,
    WriteCondition,
)
from cloudstore.config import Config, Timeouts
from cloudstore.exceptions import (
    AuthenticationException,
    ChecksumMismatchException,
    CloudStoreException,
    DuplicateResourceException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    NotSupportedException,
    PermissionDeniedException,
    PreconditionFailedException,
    ProviderConnectionException,
    ThrottledException,
    class_for_status,
)

MiB = 1024 * 1024

#: Put Blob takes up to 5000 MiB in one request; the transfer engine decides what goes up whole.
_MAX_SINGLE_PUT = 5000 * MiB
#: The longest a user delegation key (and so a user-delegation SAS) may live.
_MAX_DELEGATION = timedelta(days=7)
#: How long a server-side copy may stay "pending" before copy_object gives up.
_COPY_WAIT_SECONDS = 300.0

#: Azure error codes (x-ms-error-code) and the cloudstore exception each one means.
_ERROR_CODES: dict[str, type[CloudStoreException]] = {
    "ContainerNotFound": NotFoundException,
    "BlobNotFound": NotFoundException,
    "ResourceNotFound": NotFoundException,
    "CannotVerifyCopySource": NotFoundException,
    "ContainerAlreadyExists": DuplicateResourceException,
    # Only a write with If-None-Match: * meets it (every other write overwrites): its condition failed.
    "BlobAlreadyExists": PreconditionFailedException,
    "ResourceAlreadyExists": DuplicateResourceException,
    # Azure keeps a deleted container's name for a while; trying again later succeeds.
    "ContainerBeingDeleted": ThrottledException,
    "AuthenticationFailed": AuthenticationException,
    "InvalidAuthenticationInfo": AuthenticationException,
    "NoAuthenticationInformation": AuthenticationException,
    "AuthorizationFailure": PermissionDeniedException,
    "AuthorizationPermissionMismatch": PermissionDeniedException,
    "AuthorizationResourceTypeMismatch": PermissionDeniedException,
    "AuthorizationServiceMismatch": PermissionDeniedException,
    "AuthorizationProtocolMismatch": PermissionDeniedException,
    "AuthorizationSourceIPMismatch": PermissionDeniedException,
    "InsufficientAccountPermissions": PermissionDeniedException,
    "AccountIsDisabled": PermissionDeniedException,
    "ServerBusy": ThrottledException,
    "OperationTimedOut": ProviderConnectionException,
    "InternalError": ProviderConnectionException,
    "ConditionNotMet": PreconditionFailedException,
    "SourceConditionNotMet": PreconditionFailedException,
    "TargetConditionNotMet": PreconditionFailedException,
    "LeaseIdMissing": PreconditionFailedException,
    "LeaseIdMismatchWithBlobOperation": PreconditionFailedException,
    "LeaseIdMismatchWithContainerOperation": PreconditionFailedException,
    "LeaseAlreadyPresent": PreconditionFailedException,
    "LeaseNotPresentWithBlobOperation": PreconditionFailedException,
    "LeaseNotPresentWithContainerOperation": PreconditionFailedException,
    "InvalidResourceName": InvalidNameException,
    "OutOfRangeInput": InvalidParamException,
    "InvalidRange": InvalidParamException,
    "InvalidInput": InvalidParamException,
    "InvalidHeaderValue": InvalidParamException,
    "InvalidQueryParameterValue": InvalidParamException,
    "InvalidUri": InvalidParamException,
    "InvalidBlockId": InvalidParamException,
    # Put Block List names a block that is not staged: another upload of the same blob committed
    # first (a commit discards every uncommitted block of the blob). A lost race, not a bad argument.
    "InvalidBlockList": PreconditionFailedException,
    "InvalidBlobOrBlock": InvalidParamException,
    "RequestBodyTooLarge": InvalidParamException,
    # The body that arrived does not match the Content-MD5 sent with it: damaged on the way,
    # so the same request can succeed (the exception is made retryable).
    "Md5Mismatch": ChecksumMismatchException,
    "Crc64Mismatch": ChecksumMismatchException,
}

#: Azurite refuses a block blob body that does not match its Content-MD5 with the generic code
#: InvalidOperation and this message (Azure says Md5Mismatch).
_AZURITE_MD5_REFUSED = re.compile(r"contentMD5 doesn't match", re.IGNORECASE)

#: What Put Block List answers to a list it cannot use: blocks not staged (another commit of the
#: blob discarded them), or XML that arrived damaged.
_BLOCK_LIST_REFUSED = frozenset({"InvalidBlockList", "InvalidXmlDocument", "InvalidXmlNodeValue"})

_SAS_SIGNATURE = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)


@dataclass(frozen=True)
class AzureUpload:
    """A block upload in progress: where it goes, what to commit with it, and its block id prefix."""

    container: str
    blob: str
    content_type: str | None
    metadata: Mapping[str, str]
    #: Random per upload, so two uploads of the same blob never stage over each other's blocks.
    block_prefix: str

    def block_id(self, number: int) -> str:
        # Azure wants every block id of a blob to be base64 of the same length: fixed-width digits.
        return b64encode(f"{self.block_prefix}-{number:05d}".encode("ascii")).decode("ascii")


class _BlobReader(RangeReader):
    """The body of one ``download_blob`` call, read in pieces."""

    def __init__(self, downloader: Any) -> None:
        self._downloader = downloader
        # The response describes the whole blob (its MD5 too, even for a range), except that
        # ``size`` is the range's: the blob's size is the total in Content-Range.
        properties = downloader.properties
        info = _object_info(properties)
        total = content_range_total(properties.content_range)
        self.info = dataclasses.replace(info, size=total) if total is not None else info

    def read(self, size: int = -1) -> bytes:
        return bytes(self._downloader.read(size))

    def close(self) -> None:
        # The downloader holds at most one chunk and no open stream between reads.
        self._downloader = _Exhausted()


class _Exhausted:
    def read(self, size: int = -1) -> bytes:
        return b""


class _WholeBodyTransport(RequestsTransport):  # type: ignore[misc]  # azure-core's transport is untyped
    """A requests transport that reads a streamed answer's body before handing it over.

    The SDK's blob downloader sends a ranged Get Blob again (up to three times, one second apart)
    when its body breaks off or stalls, stacking its retries on cloudstore's. Read here, a broken
    body fails its own request instead (``ServiceResponseError``), which cloudstore retries. The
    downloader buffers each range whole anyway, so nothing more is held in memory.
    """

    def send(self, request: Any, **kwargs: Any) -> Any:
        response = super().send(request, **kwargs)
        if kwargs.get("stream"):
            internal = response.internal_response
            try:
                internal.content  # noqa: B018 - requests caches the body it reads
            except requests.RequestException as err:
                internal.close()
                raise ServiceResponseError(f"the answer's body broke off: {err}", error=err) from err
        return response


def _pooled_transport(pool_size: int, timeouts: Timeouts) -> RequestsTransport:
    """A requests transport with ``pool_size`` connections per host, no urllib3 retries, and
    cloudstore's timeouts (azure-core's own defaults wait 300 s for a connection and each read)."""
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_size,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return _WholeBodyTransport(
        session=session,
        session_owner=True,
        connection_timeout=timeouts.connect,
        read_timeout=timeouts.read,
    )


def blob_sas_url(
    blob_url: str,
    account_name: str,
    container: str,
    blob: str,
    method: str,
    expiry: datetime,
    *,
    account_key: str | None = None,
    user_delegation_key: UserDelegationKey | None = None,
) -> str:
    """``blob_url`` with a SAS for ``method`` (``GET``: read; ``PUT``: create + write, no read).

    Signed with the account key (a service SAS) or a user delegation key (a user-delegation SAS).
    No network call.
    """
    if method == "GET":
        permission = BlobSasPermissions(read=True)
    elif method == "PUT":
        permission = BlobSasPermissions(create=True, write=True)
    else:
        raise InvalidParamException(f"cannot sign a URL for HTTP {method}: use GET or PUT")
    token = generate_blob_sas(
        account_name=account_name,
        container_name=container,
        blob_name=blob,
        account_key=account_key,
        user_delegation_key=user_delegation_key,
        permission=permission,
        expiry=expiry,
        # spr=https: a URL for an https endpoint is refused over plain HTTP.
        protocol="https" if blob_url.lower().startswith("https://") else None,
    )
    return f"{blob_url}?{token}"


class AzureBackend(Backend[AzureUpload]):
    """Azure Blob Storage: containers are buckets, block blobs are objects."""

    # Signed URLs: at most 7 days (the default), though a service SAS could last longer: the only
    # way to revoke one is rotating the account key.
    # Put Blob, Put Block List and Copy Blob take If-None-Match / If-Match on the target.
    features = Features(
        min_part_size=1,
        max_parts=50_000,
        stores_content_md5=True,
        max_batch_delete=256,
        if_none_match=True,
        if_match=True,
    )

    check_bucket_name = staticmethod(names.azure_container_name)
    check_object_name = staticmethod(names.azure_blob_name)

    def __init__(self, config: Config) -> None:
        transfer = config.get("transfer_config") or TransferConfig()
        self._secrets = [str(config[k]) for k in ("azure_account_key", "azure_sas_token") if config.get(k)]
        self._account_key: str | None = None
        self._token_credential: Any = None
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_key_expiry = datetime.min.replace(tzinfo=timezone.utc)
        self._delegation_lock = threading.Lock()
        client_options: dict[str, Any] = {
            # The shared layer retries (one policy for every provider); the SDK must not.
            "retry_total": 0,
            "max_single_put_size": _MAX_SINGLE_PUT,
            # A ranged read of one part is one Get Blob request, and a whole-object stream buffers
            # one part, not the SDK's default 32 MiB.
            "max_single_get_size": transfer.part_size,
            "transport": _pooled_transport(pool_size(config), Timeouts.from_config(config)),
        }
        self._client = self._make_client(config, client_options)
        # An endpoint that is neither *.blob.core.* nor 127.0.0.1/localhost does not reveal the account.
        self._account_name: str = str(
            config.get("azure_storage_account")
            or getattr(self._client.credential, "account_name", None)
            or self._client.account_name
            or ""
        )

    def _make_client(self, config: Config, options: dict[str, Any]) -> BlobServiceClient:
        """The service client for the configured credential (first of: connection string,
        TokenCredential, account key, SAS token). No network call."""
        connection_string = config.get("azure_connection_string")
        endpoint = config.get("azure_blob_endpoint")
        account = config.get("azure_storage_account")
        try:
            if connection_string:
                client = BlobServiceClient.from_connection_string(str(connection_string), **options)
                self._account_key = getattr(client.credential, "account_key", None)
                if self._account_key:
                    self._secrets.append(self._account_key)
                if endpoint:  # the connection string's credential at this endpoint instead of its own
                    return BlobServiceClient(str(endpoint).rstrip("/"), credential=client.credential, **options)
                return client
            if not account and not endpoint:
                raise InvalidParamException(
                    "Azure needs azure_connection_string, or azure_storage_account with one of "
                    "azure_account_key, azure_sas_token or azure_credential"
                )
            account_url = str(endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")
            credential: Any
            if config.get("azure_credential") is not None:
                credential = config["azure_credential"]
                if not hasattr(credential, "get_token"):
                    raise InvalidParamException(
                        "azure_credential must be an azure-identity TokenCredential (an object with get_token)"
                    )
                self._token_credential = credential
            elif config.get("azure_account_key"):
                if not account:
                    raise InvalidParamException("azure_account_key needs azure_storage_account")
                self._account_key = str(config["azure_account_key"])
                credential = {"account_name": str(account), "account_key": self._account_key}
            elif config.get("azure_sas_token"):
                credential = str(config["azure_sas_token"]).lstrip("?")
            else:
                raise InvalidParamException(
                    "azure_storage_account needs one of azure_account_key, azure_sas_token or azure_credential"
                )
            return BlobServiceClient(account_url, credential=credential, **options)
        except ValueError as err:
            if isinstance(err, CloudStoreException):
                raise
            raise InvalidParamException(f"invalid Azure configuration: {self._redact(str(err))}") from None

    def __repr__(self) -> str:
        # A SAS client's endpoint carries the token in its query: show the URL without it.
        url = self._client.primary_endpoint.split("?", 1)[0]
        return f"AzureBackend(account={self._account_name!r}, url={url!r})"

    # --- errors -----------------------------------------------------------
    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SAS_SIGNATURE.sub(r"\1***", text)

    def map_error(self, error: BaseException) -> CloudStoreException | None:
        if isinstance(error, CloudStoreException):
            return error
        # DecodeError (a body cut short or garbled) is an HttpResponseError: test it first.
        if isinstance(
            error,
            (
                ServiceRequestError,
                ServiceResponseError,
                DecodeError,
                requests.RequestException,
                ConnectionError,
                TimeoutError,
            ),
        ):
            return ProviderConnectionException(f"connection to Azure failed: {self._redact(_first_line(error))}")
        if isinstance(error, HttpResponseError):
            return self._map_response_error(error)
        if isinstance(error, AzureError):
            # The SDK gave up without an answer to show (the shared rule: worth another attempt).
            return ProviderConnectionException(f"Azure request failed: {self._redact(_first_line(error))}")
        return None

    def _map_response_error(self, error: HttpResponseError) -> CloudStoreException:
        status = error.status_code
        code = _error_code(error)
        kind: type[CloudStoreException] | None = _ERROR_CODES.get(code or "")
        if kind is None:
            if isinstance(error, ResourceNotFoundError):
                kind = NotFoundException
            elif isinstance(error, ResourceExistsError):
                kind = DuplicateResourceException
            elif isinstance(error, ResourceModifiedError):
                kind = PreconditionFailedException
            elif isinstance(error, ClientAuthenticationError):
                # Also raised without a response by azure-identity when no token can be obtained.
                kind = AuthenticationException
            else:
                # The shared table; no status at all means no usable answer: a connection failure.
                kind = class_for_status(status)
        text = _first_line(error)
        if _AZURITE_MD5_REFUSED.search(text):
            kind = ChecksumMismatchException
        if kind is PermissionDeniedException and "failed to authenticate" in text.lower():
            # Azure answers a bad signature, wrong key or expired SAS with "Server failed to
            # authenticate the request" (AuthenticationFailed; Azurite says AuthorizationFailure).
            kind = AuthenticationException
        message = f"Azure: {self._redact(text)} (HTTP {status}, {code or 'no error code'})"
        # A refused checksum means the body was damaged on the way: sending it again can succeed.
        retryable = True if kind is ChecksumMismatchException else None
        return kind(message, status=status, code=code, retryable=retryable)

    # --- buckets ----------------------------------------------------------
    def _container(self, name: str) -> ContainerClient:
        return self._client.get_container_client(name)

    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        containers, next_marker = _one_page(self._client.list_containers(results_per_page=limit), marker)
        items = [BucketInfo(name=c.name, created=c.last_modified) for c in containers]
        return Page(items=items, next_marker=next_marker)

    def head_bucket(self, name: str) -> BucketInfo | None:
        try:
            properties = self._container(name).get_container_properties()
        except ResourceNotFoundError:
            return None
        return BucketInfo(name=name, created=properties.last_modified)

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        # Containers have no location of their own: the storage account's region holds them all.
        response = self._container(name).create_container()
        created = response.get("last_modified")
        return BucketInfo(name=name, created=created if isinstance(created, datetime) else None)

    def delete_bucket(self, name: str) -> None:
        # Azure deletes a container with everything in it; cloudstore refuses a non-empty bucket.
        # Check-then-delete is not atomic: the service offers no "delete if empty".
        container = self._container(name)
        blobs, _ = _one_page(container.list_blobs(results_per_page=1), None)
        if blobs:
            raise PreconditionFailedException(f"container {name!r} is not empty", status=409, code="ContainerNotEmpty")
        container.delete_container()

    # --- objects ----------------------------------------------------------
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        container = self._container(bucket)
        listing: ItemPaged[Any]
        if delimiter:
            listing = container.walk_blobs(
                name_starts_with=prefix or None, include=["metadata"], delimiter=delimiter, results_per_page=limit
            )
        else:
            listing = container.list_blobs(
                name_starts_with=prefix or None, include=["metadata"], results_per_page=limit
            )
        entries, next_marker = _one_page(listing, marker)
        items: list[ObjectInfo] = []
        prefixes: list[str] = []
        for entry in entries:
            if isinstance(entry, BlobPrefix):
                prefixes.append(entry.name)
            else:
                items.append(_object_info(entry))
        return Page(items=items, next_marker=next_marker, prefixes=prefixes)

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        try:
            properties = self._container(bucket).get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return _object_info(properties)

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
        # One Put Blob request (max_single_put_size is above anything the engine sends whole).
        # Its Content-MD5 makes Azure refuse a body damaged on the way (Md5Mismatch); Azure
        # stores the body's MD5, which downloads then verify.
        self._container(bucket).get_blob_client(name).upload_blob(
            data,
            length=len(data),
            overwrite=True,
            content_settings=ContentSettings(content_type=content_type),
            metadata=dict(metadata),
            max_concurrency=1,
            headers=_content_md5_header(content_md5),
            **_condition_options(condition),
        )

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        blob = self._container(bucket).get_blob_client(name)
        if not start and end is None:
            # No Range header: a range starting at 0 fails with 416 on an empty blob.
            return _BlobReader(blob.download_blob(max_concurrency=1))
        offset = start or 0
        length = None if end is None else end - offset + 1
        return _BlobReader(blob.download_blob(offset=offset, length=length, max_concurrency=1))

    def delete_object(self, bucket: str, name: str) -> None:
        self._container(bucket).get_blob_client(name).delete_blob(delete_snapshots="include")

    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, CloudStoreException]]:
        # One Blob Batch request of up to 256 deletes; each sub-request answers for itself.
        responses = self._container(bucket).delete_blobs(*names, delete_snapshots="include", raise_on_any_failure=False)
        failures: list[tuple[str, CloudStoreException]] = []
        for name, response in zip(names, responses, strict=True):
            if response.status_code < 300 or response.status_code == 404:
                continue
            failures.append((name, self._map_response_error(HttpResponseError(response=response))))
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
        # Within one account Copy Blob is authorised by the caller's own credential (a SAS client's
        # URL carries its token); content settings and metadata are copied with the bytes.
        source_url = self._container(src_bucket).get_blob_client(src_name).url
        target = self._container(dst_bucket).get_blob_client(dst_name)
        result = target.start_copy_from_url(source_url, **_condition_options(condition))
        status = result.get("copy_status")
        deadline = time.monotonic() + _COPY_WAIT_SECONDS
        delay = 0.05
        while status == "pending":
            if time.monotonic() > deadline:
                target.abort_copy(str(result["copy_id"]))
                raise ProviderConnectionException(f"server-side copy to {dst_name!r} did not finish in time")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
            copy = target.get_blob_properties().copy
            status = copy.status
        if status != "success":
            raise PreconditionFailedException(f"server-side copy to {dst_name!r} ended with status {status!r}")

    # --- signed URLs --------------------------------------------------------
    def sign_url(
        self, bucket: str, name: str, method: str, expires_in: int, *, pins: UrlPins | None = None
    ) -> str | tuple[str, Mapping[str, str]]:
        url = self._sas_url(bucket, name, method, expires_in)
        # Put Blob through a SAS needs the blob type; a SAS cannot pin request headers.
        return (url, {"x-ms-blob-type": "BlockBlob"}) if method == "PUT" else url

    def _sas_url(self, bucket: str, name: str, method: str, expires_in: int) -> str:
        now = datetime.now(timezone.utc)
        expiry = now + timedelta(seconds=expires_in)
        blob_url = self._container(bucket).get_blob_client(name).url.split("?", 1)[0]
        if self._account_key:
            return blob_sas_url(
                blob_url, self._account_name, bucket, name, method, expiry, account_key=self._account_key
            )
        if self._token_credential is not None:
            if expiry - now > _MAX_DELEGATION:
                raise InvalidParamException("a user-delegation SAS may last at most 7 days (604800 seconds)")
            key = self._user_delegation_key(now, expiry)
            return blob_sas_url(blob_url, self._account_name, bucket, name, method, expiry, user_delegation_key=key)
        raise NotSupportedException(
            "cannot sign a URL without the account key or a TokenCredential: a SAS token cannot sign "
            "another SAS; configure azure_account_key (service SAS) or azure_credential (user-delegation SAS)"
        )

    def _user_delegation_key(self, now: datetime, expiry: datetime) -> UserDelegationKey:
        """A user delegation key valid until ``expiry``, reused while it lasts (one request per week at most)."""
        with self._delegation_lock:
            if self._delegation_key is None or self._delegation_key_expiry < expiry:
                key_expiry = now + _MAX_DELEGATION - timedelta(minutes=5)
                self._delegation_key = self._client.get_user_delegation_key(now, key_expiry)
                self._delegation_key_expiry = key_expiry
            return self._delegation_key

    # --- multipart uploads --------------------------------------------------
    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> AzureUpload:
        # Nothing to ask the service: blocks are staged against the blob name and committed at the end.
        return AzureUpload(bucket, name, content_type, dict(metadata), secrets.token_hex(8))

    def upload_part(
        self, upload: AzureUpload, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        block_id = upload.block_id(number)
        blob = self._container(upload.container).get_blob_client(upload.blob)
        # Put Block checks the block against its Content-MD5 as Put Blob does.
        blob.stage_block(block_id, data, length=len(data), headers=_content_md5_header(content_md5))
        return UploadPart(number=number, token=block_id)

    def complete_multipart_upload(
        self,
        upload: AzureUpload,
        parts: list[UploadPart],
        content_md5: bytes | None = None,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        blob = self._container(upload.container).get_blob_client(upload.blob)
        try:
            blob.commit_block_list(
                [BlobBlock(block_id=part.token) for part in parts],
                # Azure keeps no MD5 for a block list unless told: given, downloads are verified.
                content_settings=ContentSettings(
                    content_type=upload.content_type, content_md5=bytearray(content_md5) if content_md5 else None
                ),
                metadata=dict(upload.metadata),
                # The list's own Content-MD5 (the SDK hashes the few bytes of XML it sends).
                validate_content=True,
                **_condition_options(condition),
            )
        except HttpResponseError as err:
            if _error_code(err) in _BLOCK_LIST_REFUSED and self._all_staged(blob, parts):
                # No other commit discarded our blocks, so the list arrived damaged (Azurite
                # does not check its Content-MD5; Azure answers Md5Mismatch): send it again.
                raise ChecksumMismatchException(
                    f"the block list of {upload.blob!r} arrived damaged",
                    status=400,
                    code=_error_code(err),
                    retryable=True,
                ) from err
            raise

    @staticmethod
    def _all_staged(blob: BlobClient, parts: list[UploadPart]) -> bool:
        """Whether every block of ``parts`` is still staged (uncommitted) for ``blob``."""
        try:
            _, uncommitted = blob.get_block_list("uncommitted")
        except AzureError:
            return False  # the commit's own error says more
        return {part.token for part in parts} <= {block.id for block in uncommitted}

    def abort_multipart_upload(self, upload: AzureUpload) -> None:
        # Nothing was committed, so nothing is visible. Azure has no call to drop staged blocks:
        # they vanish at the blob's next commit or after seven days.
        return None

    def close(self) -> None:
        self._client.close()


def _content_md5_header(digest: bytes | None) -> dict[str, str]:
    """The transactional ``Content-MD5`` header, sent through azure-core's per-request ``headers``
    (the engine already hashed the body: ``validate_content=True`` would hash it a second time)."""
    return {"Content-MD5": md5_base64(digest)} if digest else {}


def _first_line(error: BaseException) -> str:
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return str(text).strip().splitlines()[0] if str(text).strip() else type(error).__name__


def _error_code(error: HttpResponseError) -> str | None:
    code = getattr(error, "error_code", None)
    headers = getattr(error.response, "headers", None)
    if code is None and headers is not None:
        code = headers.get("x-ms-error-code")
    if code is None:
        return None
    return str(getattr(code, "value", code))


def _one_page(listing: ItemPaged[Any], marker: str | None) -> tuple[list[Any], str | None]:
    """The first page of ``listing`` from ``marker`` on, and the marker of the page after it."""
    pages: Any = listing.by_page(continuation_token=marker)
    items = list(next(pages))
    return items, pages.continuation_token or None


def _condition_options(condition: WriteCondition | None) -> dict[str, Any]:
    """The SDK's access conditions on the target of a write (Azure checks them as it commits)."""
    if condition is None:
        return {}
    if condition.if_none_match:
        return {"match_condition": MatchConditions.IfMissing}
    return {"etag": f'"{strip_etag(condition.if_match)}"', "match_condition": MatchConditions.IfNotModified}


def _object_info(properties: Any) -> ObjectInfo:
    settings = properties.content_settings
    md5 = settings.content_md5 if settings is not None else None
    etag = properties.etag
    return ObjectInfo(
        name=properties.name,
        size=int(properties.size or 0),
        last_modified=properties.last_modified,
        etag=strip_etag(etag),
        content_type=settings.content_type if settings is not None else None,
        metadata=dict(properties.metadata or {}),
        checksum=("md5", bytes(md5).hex()) if md5 else None,
    )

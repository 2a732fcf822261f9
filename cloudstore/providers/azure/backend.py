"""Azure Blob Storage primitives on azure-storage-blob (v12).

Buckets are containers and objects are block blobs. Large uploads are staged
blocks committed once with a block list; signed URLs are service SAS tokens
(account key) or user-delegation SAS tokens (a token: :mod:`.sas`). How the client
is made and authenticated is :mod:`.auth`; the error mapping is :mod:`.errors`. The hot
requests (single put, get, head, list pages, blocks, single delete) take the lean path of
:mod:`.rest`; the SDK client makes the others.

Only the data plane is used: no management (ARM) call is ever made.
"""

from __future__ import annotations

import secrets
import time
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.core.paging import ItemPaged
from azure.storage.blob import BlobBlock, BlobClient, ContainerClient, ContentSettings

from cloudstore import _names as names
from cloudstore._engine import TransferConfig
from cloudstore._http import strip_etag
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
from cloudstore.config import Config
from cloudstore.credentials import CredentialSource
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    NotSupportedException,
    PreconditionFailedException,
    ProviderConnectionException,
)
from cloudstore.providers.azure import auth
from cloudstore.providers.azure.errors import BLOCK_LIST_REFUSED, ErrorMapper, error_code
from cloudstore.providers.azure.rest import BlobRest
from cloudstore.providers.azure.sas import DelegationKeys, blob_sas_url

MiB = 1024 * 1024

#: Put Blob takes up to 5000 MiB in one request; the transfer engine decides what goes up whole.
_MAX_SINGLE_PUT = 5000 * MiB
#: How long a server-side copy may stay "pending" before copy_object gives up.
_COPY_WAIT_SECONDS = 300.0


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


class AzureBackend(Backend[AzureUpload]):
    """Azure Blob Storage: containers are buckets, block blobs are objects."""

    # Signed URLs: at most 7 days (the default), though a service SAS could last longer: the only
    # way to revoke one is rotating the account key.
    # Put Blob, Put Block List and Copy Blob take If-None-Match / If-Match on the target.
    # A user-delegation SAS is signed by a delegation key that outlives it, not by the token
    # (so not signed_with_credentials): a token of minutes may sign a URL of days.
    features = Features(
        refreshing_credentials=True,
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
        self._errors = ErrorMapper(str(config[k]) for k in ("azure_account_key", "azure_sas_token") if config.get(k))
        provider = config.get("credentials_provider")
        if provider is not None:
            self.credentials = CredentialSource(provider, auth.CREDENTIAL_KEYS)
        client_options: dict[str, Any] = {
            # The shared layer retries (one policy for every provider); the SDK must not.
            "retry_total": 0,
            "max_single_put_size": _MAX_SINGLE_PUT,
            # A ranged read of one part is one Get Blob request, and a whole-object stream buffers
            # one part, not the SDK's default 32 MiB.
            "max_single_get_size": transfer.part_size,
            "transport": auth.make_transport(config),
        }
        self._auth = auth.make_client(config, client_options, self._errors, self.credentials)
        self._client = self._auth.client
        self._delegation_keys = DelegationKeys(self._client.get_user_delegation_key)
        self._rest = BlobRest(self._auth, config, self._errors)

    def __repr__(self) -> str:
        # A SAS client's endpoint carries the token in its query: show the URL without it.
        url = self._client.primary_endpoint.split("?", 1)[0]
        return f"<AzureBackend account={self._auth.account_name} auth={self._auth.mode} url={url}>"

    def map_error(self, error: BaseException) -> CloudStoreException | None:
        return self._errors.map_error(error)

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
        return self._rest.list_blobs(bucket, prefix, delimiter, limit, marker)

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        return self._rest.blob_properties(bucket, name)

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
        # One Put Blob request. Its Content-MD5 makes Azure refuse a body damaged on the way
        # (Md5Mismatch); Azure stores the body's MD5, which downloads then verify.
        self._rest.put_blob(bucket, name, data, content_type, metadata, content_md5, condition)

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        return self._rest.get_blob(bucket, name, start, end)

    def delete_object(self, bucket: str, name: str) -> None:
        self._rest.delete_blob(bucket, name)

    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, CloudStoreException]]:
        return self._rest.delete_blobs(bucket, names)

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
        now = datetime.now(UTC)
        expiry = now + timedelta(seconds=expires_in)
        blob_url = self._container(bucket).get_blob_client(name).url.split("?", 1)[0]
        account, key = self._auth.account_name, self._auth.account_key
        if key:
            return blob_sas_url(blob_url, account, bucket, name, method, expiry, account_key=key)
        if self._auth.token_credential is not None:
            delegation = self._delegation_keys.covering(now, expiry)
            return blob_sas_url(blob_url, account, bucket, name, method, expiry, user_delegation_key=delegation)
        raise NotSupportedException(
            "cannot sign a URL without the account key or a token: a SAS token cannot sign another SAS; "
            "configure azure_account_key (service SAS), or azure_credential or credentials_provider "
            "(user-delegation SAS)"
        )

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
        self._rest.put_block(upload.container, upload.blob, block_id, data, content_md5)
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
            if error_code(err) in BLOCK_LIST_REFUSED and self._all_staged(blob, parts):
                # No other commit discarded our blocks, so the list arrived damaged (Azurite
                # does not check its Content-MD5; Azure answers Md5Mismatch): send it again.
                raise ChecksumMismatchException(
                    f"the block list of {upload.blob!r} arrived damaged",
                    status=400,
                    code=error_code(err),
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
        self._rest.close()
        self._client.close()


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

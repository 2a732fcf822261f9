"""Azure specifics on Azurite: auth modes, SAS tokens, staged blocks, error codes, request counts.

The conformance suite (cloudstore/testing/conformance) covers the common contract; this file covers what only
Azure has. Everything runs against a real Azurite except the user-delegation SAS, which Azurite
cannot issue over http (see test_user_delegation_sas_shape_offline).
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import re
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError
from azure.storage.blob import BlobServiceClient, UserDelegationKey

from cloudstore import (
    AuthenticationException,
    Bucket,
    ChecksumMismatchException,
    CloudProvider,
    CloudProviderFactory,
    DuplicateResourceException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    NotSupportedException,
    PermissionDeniedException,
    PreconditionFailedException,
    ProviderConnectionException,
    ProviderList,
    RetryPolicy,
    ThrottledException,
    TransferConfig,
)
from cloudstore.backend import BucketInfo, ObjectInfo
from cloudstore.providers.azure.sas import blob_sas_url
from cloudstore.testing import backend_of, call_through
from tests.conftest import (
    bucket_fixture,
    make_provider,
    provider_fixture,
    server_fixture,
    unique_name,
)
from tests.support.proxy import FaultProxy
from tests.support.servers import azurite as azurite_server
from tests.support.servers.base import RunningServer, free_port

MiB = 1024 * 1024
NO_RETRY = RetryPolicy(max_attempts=1)
PUT_BLOCKBLOB = {"x-ms-blob-type": "BlockBlob"}


@pytest.fixture(autouse=True)
def _no_azure_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Only the dicts below configure the providers (no stray env vars or config file)."""
    for var in (
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSTORE_CONFIG", str(tmp_path / "no-such-config.ini"))


azurite = server_fixture("azure")
key_provider = provider_fixture(server="azurite")
container = bucket_fixture("az", provider="key_provider")


def create(config: dict[str, Any], **extra: Any) -> CloudProvider:
    return CloudProviderFactory().create_provider(ProviderList.AZURE, {**config, **extra})


def fetch(url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def fetch_body(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as err:
        return int(err.code), bytes(err.read())


def raw_client(azurite: RunningServer) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.extra["connection_string"])


class StaticToken:
    """A TokenCredential that never touches the network (the SDK only calls get_token)."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken("not-a-real-token", int(datetime.now(UTC).timestamp()) + 3600)


# --- auth modes -----------------------------------------------------------------------------


def test_connection_string_provider(azurite: RunningServer) -> None:
    provider = create({"azure_connection_string": azurite.extra["connection_string"]})
    bucket = provider.storage.buckets.create(unique_name("cs"))
    try:
        obj = bucket.objects.create("hello.txt")
        obj.upload(b"from a connection string")
        assert bucket.objects.get("hello.txt").read() == b"from a connection string"  # type: ignore[union-attr]
        # The account key inside the connection string signs URLs.
        assert fetch_body(obj.generate_url(expires_in=300)) == (200, b"from a connection string")
    finally:
        bucket.delete(delete_contents=True)


def test_sas_token_provider_object_round_trips(azurite: RunningServer, container: Bucket, tmp_path: Any) -> None:
    sas_provider = make_provider(azurite, **azurite.extra["sas_config"])
    bucket = sas_provider.storage.buckets.get(container.name)
    assert bucket is not None

    bucket.objects.create("docs/a.txt").upload(b"alpha", content_type="text/plain", metadata={"k": "v"})
    bucket.objects.create("docs/b.txt").upload(b"beta")
    bucket.objects.create("top.txt").upload(b"top")
    got = bucket.objects.get("docs/a.txt")
    assert got is not None
    assert (got.read(), got.content_type, got.metadata) == (b"alpha", "text/plain", {"k": "v"})
    assert got.read(start=1, end=3) == b"lph"

    listing = bucket.objects.list(delimiter="/")
    assert [o.name for o in listing] == ["top.txt"]
    assert listing.prefixes == ["docs/"]
    first = bucket.objects.list(prefix="docs/", limit=1)
    rest = bucket.objects.list(prefix="docs/", limit=1, marker=first.marker)
    assert [o.name for o in first] + [o.name for o in rest] == ["docs/a.txt", "docs/b.txt"]

    # Staged blocks through a SAS: 7 MiB with the test transfer config's 5 MiB parts.
    big = os.urandom(7 * MiB)
    bucket.objects.create("big.bin").upload(big, metadata={"parts": "2"})
    target = tmp_path / "big.out"
    bucket.objects.get("big.bin").download_to_file(target)  # type: ignore[union-attr]
    assert target.read_bytes() == big

    # Copy Blob authorised by the SAS carried in the source URL.
    got.copy_to(bucket, "copied/a.txt")
    copied = bucket.objects.get("copied/a.txt")
    assert copied is not None and copied.read() == b"alpha" and copied.metadata == {"k": "v"}

    bucket.objects.get("top.txt").delete()  # type: ignore[union-attr]
    assert bucket.objects.get("top.txt") is None

    with pytest.raises(NotSupportedException, match="account key"):
        got.generate_url()


def test_sas_token_with_leading_question_mark(azurite: RunningServer, container: Bucket) -> None:
    config = dict(azurite.extra["sas_config"])
    config["azure_sas_token"] = "?" + config["azure_sas_token"]
    bucket = create(config).storage.buckets.get(container.name)
    assert bucket is not None
    bucket.objects.create("q.txt").upload(b"q")
    assert container.objects.get("q.txt").read() == b"q"  # type: ignore[union-attr]


def test_read_only_sas_cannot_write(azurite: RunningServer, container: Bucket) -> None:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    token = generate_account_sas(
        azurite.extra["account_name"],
        azurite.extra["account_key"],
        ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(minutes=10),
    )
    container.objects.create("r.txt").upload(b"readable")
    reader = create({**azurite.extra["sas_config"], "azure_sas_token": token, "retry_policy": NO_RETRY})
    bucket = reader.storage.buckets.get(container.name)
    assert bucket is not None
    assert bucket.objects.get("r.txt").read() == b"readable"  # type: ignore[union-attr]
    with pytest.raises(PermissionDeniedException) as caught:
        bucket.objects.create("w.txt").upload(b"no")
    assert caught.value.status == 403 and caught.value.code == "AuthorizationPermissionMismatch"


def test_expired_sas_token_is_an_authentication_error(azurite: RunningServer, container: Bucket) -> None:
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    token = generate_account_sas(
        azurite.extra["account_name"],
        azurite.extra["account_key"],
        ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) - timedelta(minutes=1),
    )
    provider = create({**azurite.extra["sas_config"], "azure_sas_token": token, "retry_policy": NO_RETRY})
    with pytest.raises(AuthenticationException) as caught:
        provider.storage.buckets.get(container.name)
    assert token.split("sig=")[1] not in str(caught.value)


def test_wrong_account_key_is_an_authentication_error(azurite: RunningServer, container: Bucket) -> None:
    wrong_key = "A" * 4 + azurite.extra["account_key"][4:]
    provider = create({**azurite.config, "azure_account_key": wrong_key, "retry_policy": NO_RETRY})
    with pytest.raises(AuthenticationException) as caught:
        provider.storage.buckets.get(container.name)  # a HEAD: the code comes from a header only
    assert caught.value.status == 403
    with pytest.raises(AuthenticationException):
        list(provider.storage.buckets)
    assert wrong_key not in str(caught.value) and wrong_key not in repr(provider)


def test_token_credential_needs_https(azurite: RunningServer) -> None:
    # The SDK refuses to send a bearer token over plain http; that surfaces as a config error.
    config = {
        "azure_storage_account": azurite.extra["account_name"],
        "azure_credential": StaticToken(),
        "azure_blob_endpoint": azurite.extra["endpoint"],
    }
    with pytest.raises(InvalidParamException, match=r"(?i)https"):
        create(config).storage.buckets.get("anything")


def test_configuration_errors_are_clear() -> None:
    with pytest.raises(InvalidParamException, match="azure_connection_string"):
        create({}).storage.buckets.get("abc")
    with pytest.raises(InvalidParamException, match="azure_account_key"):
        create({"azure_storage_account": "acct"}).storage.buckets.get("abc")
    with pytest.raises(InvalidParamException, match="TokenCredential"):
        create({"azure_storage_account": "acct", "azure_credential": "not a credential"}).storage.buckets.get("abc")
    # An endpoint beside a connection string replaces the string's own (no error).
    combined = create(
        {"azure_connection_string": "AccountName=a;AccountKey=a2V5", "azure_blob_endpoint": "http://127.0.0.1:1/a"}
    )
    assert "127.0.0.1:1/a" in repr(backend_of(combined))


def test_constructor_makes_no_network_call_and_secrets_stay_hidden(azurite: RunningServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}/{azurite.extra['account_name']}"
    provider = create({**azurite.extra["sas_config"], "azure_blob_endpoint": dead, "retry_policy": NO_RETRY})
    backend = backend_of(provider)  # builds the SDK client: nothing listens there, and nothing fails yet
    signature = azurite.extra["sas_token"].split("sig=")[1].split("&")[0]
    assert signature not in repr(provider) and signature not in repr(backend)
    with pytest.raises(ProviderConnectionException) as caught:
        provider.storage.buckets.get("abc")
    assert signature not in str(caught.value)
    assert "sig=***" in str(caught.value) or "sig=" not in str(caught.value)


# --- buckets ----------------------------------------------------------------------------------


def test_container_rules_and_errors(key_provider: CloudProvider, container: Bucket) -> None:
    for bad in ["Upper", "a--b", "-ab", "ab", "a" * 64, "under_score"]:
        with pytest.raises(InvalidNameException):
            key_provider.storage.buckets.create(bad)
    with pytest.raises(DuplicateResourceException) as caught:
        key_provider.storage.buckets.create(container.name)
    assert caught.value.code == "ContainerAlreadyExists" and caught.value.status == 409
    gone = Bucket(key_provider, BucketInfo(name=unique_name("gone")))
    with pytest.raises(NotFoundException) as not_found:
        gone.objects.list()
    assert not_found.value.code == "ContainerNotFound"
    with pytest.raises(NotFoundException):
        gone.objects.create("x").upload(b"x")
    with pytest.raises(NotFoundException) as blob_missing:
        call_through(key_provider, lambda: backend_of(key_provider).get_object(container.name, "absent.txt"))
    assert (blob_missing.value.status, blob_missing.value.code) == (404, "BlobNotFound")


def test_delete_non_empty_container_is_refused(key_provider: CloudProvider, azurite: RunningServer) -> None:
    bucket = key_provider.storage.buckets.create(unique_name("full"))
    bucket.objects.create("keep.txt").upload(b"keep")
    with pytest.raises(PreconditionFailedException):
        bucket.delete()
    # Azure would have deleted the container with its blobs: both must still be there.
    assert raw_client(azurite).get_container_client(bucket.name).get_blob_client("keep.txt").exists()
    bucket.delete(delete_contents=True)
    assert key_provider.storage.buckets.get(bucket.name) is None


# --- objects ----------------------------------------------------------------------------------


def test_blob_names_that_azure_cannot_keep_are_rejected(container: Bucket) -> None:
    # HTTP clients collapse '.' and '..' segments, and Azure trims a segment's trailing dot.
    for bad in ["a/../b", "./a", "a/.", "..", "name.", "dir./x", "x" * 1025]:
        with pytest.raises(InvalidNameException):
            container.objects.create(bad)
    for good in ["a/.hidden", "a/..b", "q?#%&=+.txt", "ü" * 1024]:
        container.objects.create(good).upload(good.encode())
        assert container.objects.get(good).read() == good.encode()  # type: ignore[union-attr]


def test_single_put_has_md5_checksum_and_is_one_request(azurite: RunningServer, container: Bucket) -> None:
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        provider = make_provider(azurite, azure_blob_endpoint=f"{proxy.url}/{azurite.extra['account_name']}")
        bucket = provider.storage.buckets.get(container.name)
        assert bucket is not None
        data = os.urandom(100_000)
        proxy.reset_stats()
        bucket.objects.create("one.bin").upload(data)
        assert [r.method for r in proxy.requests] == ["PUT"]
        info = backend_of(provider).head_object(container.name, "one.bin")
        assert info is not None
        assert info.checksum == ("md5", hashlib.md5(data).hexdigest())
        proxy.reset_stats()
        with backend_of(provider).get_object(container.name, "one.bin", 10, 19) as ranged:
            assert ranged.read() == data[10:20]
            assert ranged.info == info  # the whole blob's properties, its size and MD5 too
        assert [r.method for r in proxy.requests] == ["GET"]
        obj = bucket.objects.create("one.bin")
        proxy.reset_stats()
        assert obj.read() == data
        assert [r.method for r in proxy.requests] == ["GET"], "verified from the GET alone: no HEAD"


def test_staged_blocks_commit_with_settings_and_fixed_width_ids(
    azurite: RunningServer, container: Bucket, tmp_path: Any
) -> None:
    data = os.urandom(12 * MiB)
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        provider = make_provider(
            azurite,
            azure_blob_endpoint=f"{proxy.url}/{azurite.extra['account_name']}",
            transfer_config=TransferConfig(threshold=5 * MiB, part_size=5 * MiB, max_concurrency=3),
        )
        bucket = provider.storage.buckets.get(container.name)
        assert bucket is not None
        proxy.reset_stats()
        bucket.objects.create("blocks.bin").upload(
            io.BytesIO(data), content_type="application/x-test", metadata={"m": "1"}
        )
        methods = sorted((r.method, "comp=blocklist" in r.target) for r in proxy.requests)
        # Three Put Block requests and one Put Block List: nothing else.
        assert methods == [("PUT", False)] * 3 + [("PUT", True)]
        proxy.reset_stats()
        target = tmp_path / "blocks.out"
        bucket.objects.get("blocks.bin").download_to_file(target)  # type: ignore[union-attr]
        assert target.read_bytes() == data
        # One ranged Get Blob per 5 MiB part (plus the model's HEADs for fresh properties).
        assert proxy.count_requests("GET") == 3
        assert {r.method for r in proxy.requests} == {"GET", "HEAD"}
    blob = raw_client(azurite).get_container_client(container.name).get_blob_client("blocks.bin")
    committed, uncommitted = blob.get_block_list("all")
    assert [b.size for b in committed] == [5 * MiB, 5 * MiB, 2 * MiB] and not uncommitted
    assert len({len(b.id) for b in committed}) == 1
    got = container.objects.get("blocks.bin")
    assert got is not None
    assert (got.size, got.content_type, got.metadata) == (len(data), "application/x-test", {"m": "1"})
    # The engine's MD5 of the whole upload went into Put Block List: block blobs are verified too.
    assert blob.get_blob_properties().content_settings.content_md5 == bytearray(hashlib.md5(data).digest())
    assert got.etag and backend_of(container.provider).head_object(container.name, "blocks.bin") == ObjectInfo(
        "blocks.bin",
        len(data),
        got.last_modified,
        got.etag,
        "application/x-test",
        {"m": "1"},
        ("md5", hashlib.md5(data).hexdigest()),
    )
    assert got.read(start=5 * MiB - 2, end=5 * MiB + 1) == data[5 * MiB - 2 : 5 * MiB + 2]


def test_aborted_block_upload_commits_nothing(key_provider: CloudProvider, container: Bucket) -> None:
    backend = backend_of(key_provider)
    upload = backend.create_multipart_upload(container.name, "aborted.bin", None, {})
    backend.upload_part(upload, 1, 0, b"x" * 1024)
    backend.abort_multipart_upload(upload)
    assert backend.head_object(container.name, "aborted.bin") is None
    assert container.objects.get("aborted.bin") is None


def test_failed_upload_leaves_no_blob_and_keeps_the_old_one(container: Bucket) -> None:
    class Breaks(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.sent >= 11 * MiB:
                raise OSError("source broke")
            n = min(len(buffer), 1 * MiB)
            buffer[:n] = b"z" * n
            self.sent += n
            return n

    with pytest.raises(Exception, match="source broke"):
        container.objects.create("never.bin").upload(Breaks())
    assert container.objects.get("never.bin") is None

    container.objects.create("old.bin").upload(b"old content")
    with pytest.raises(Exception, match="source broke"):
        container.objects.create("old.bin").upload(Breaks())
    assert container.objects.get("old.bin").read() == b"old content"  # type: ignore[union-attr]


def test_two_block_uploads_of_one_name_never_mix(key_provider: CloudProvider, container: Bucket) -> None:
    backend = backend_of(key_provider)
    first = backend.create_multipart_upload(container.name, "race.bin", None, {})
    second = backend.create_multipart_upload(container.name, "race.bin", None, {})
    parts_first = [backend.upload_part(first, 1, 0, b"1" * 10)]
    parts_second = [backend.upload_part(second, 1, 0, b"2" * 10)]
    backend.complete_multipart_upload(second, parts_second)
    assert container.objects.get("race.bin").read() == b"2" * 10  # type: ignore[union-attr]
    # The first upload's block was discarded by the second commit: it fails (a lost race, the
    # block list names blocks no longer staged) instead of mixing.
    with pytest.raises(PreconditionFailedException) as lost:
        call_through(key_provider, lambda: backend.complete_multipart_upload(first, parts_first))
    assert lost.value.code == "InvalidBlockList"
    assert container.objects.get("race.bin").read() == b"2" * 10  # type: ignore[union-attr]


# --- errors and retries -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (503, "ServerBusy", ThrottledException),
        (500, "OperationTimedOut", ProviderConnectionException),
        (500, "InternalError", ProviderConnectionException),
        (429, "TooManyRequests", ThrottledException),
        (412, "ConditionNotMet", PreconditionFailedException),
        (403, "AuthorizationPermissionMismatch", PermissionDeniedException),
        (403, "AuthenticationFailed", AuthenticationException),
    ],
)
def test_service_errors_map_and_the_sdk_does_not_retry(
    azurite: RunningServer, container: Bucket, status: int, code: str, expected: type[Exception]
) -> None:
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        provider = make_provider(
            azurite, azure_blob_endpoint=f"{proxy.url}/{azurite.extra['account_name']}", retry_policy=NO_RETRY
        )
        bucket = provider.storage.buckets.get(container.name)
        assert bucket is not None
        proxy.add_rule("status", status=status, code=code, methods=["PUT"])
        proxy.reset_stats()
        with pytest.raises(expected) as caught:
            bucket.objects.create("e.txt").upload(b"e")
        assert (caught.value.status, caught.value.code) == (status, code)  # type: ignore[attr-defined]
        assert proxy.count_requests("PUT") == 1


def test_connection_reset_is_a_connection_error_and_the_shared_layer_retries(
    azurite: RunningServer, container: Bucket
) -> None:
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        endpoint = f"{proxy.url}/{azurite.extra['account_name']}"
        once = make_provider(azurite, azure_blob_endpoint=endpoint, retry_policy=NO_RETRY)
        proxy.add_rule("reset", methods=["PUT"], reset_at="before", limit=1)
        with pytest.raises(ProviderConnectionException):
            once.storage.buckets.get(container.name).objects.create("r.txt").upload(b"r")  # type: ignore[union-attr]

        retrying = make_provider(azurite, azure_blob_endpoint=endpoint)
        proxy.add_rule("503", methods=["PUT"], limit=2)
        proxy.reset_stats()
        retrying.storage.buckets.get(container.name).objects.create("r.txt").upload(b"r")  # type: ignore[union-attr]
        assert proxy.count_requests("PUT") == 3
    assert container.objects.get("r.txt").read() == b"r"  # type: ignore[union-attr]


def test_broken_download_is_resumed_and_a_flipped_byte_is_caught(
    azurite: RunningServer, container: Bucket, tmp_path: Any
) -> None:
    data = os.urandom(300_000)
    container.objects.create("body.bin").upload(data)
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        provider = make_provider(azurite, azure_blob_endpoint=f"{proxy.url}/{azurite.extra['account_name']}")
        bucket = provider.storage.buckets.get(container.name)
        assert bucket is not None
        proxy.add_rule("reset", methods=["GET"], reset_at="mid", limit=1)
        assert bucket.objects.get("body.bin").read() == data  # type: ignore[union-attr]
        assert proxy.stats["reset"] == 1

        # Put Blob stored the MD5: a body altered on the way fails the download and leaves no file.
        proxy.add_rule("flip", methods=["GET"], limit=10)
        target = tmp_path / "body.out"
        with pytest.raises(ChecksumMismatchException):
            bucket.objects.get("body.bin").download_to_file(target)  # type: ignore[union-attr]
        assert not target.exists()


# --- integrity: checksums up and down, timeouts, one request per retry -------------------------------


PUT_BLOCK = r"comp=block(?!list)"
SMALL_PARTS = TransferConfig(threshold=5 * MiB, part_size=5 * MiB, max_concurrency=3)


def via(azurite: RunningServer, url: str, **overrides: Any) -> CloudProvider:
    """A key-authenticated provider whose requests go through the proxy at ``url``."""
    return make_provider(azurite, azure_blob_endpoint=f"{url}/{azurite.extra['account_name']}", **overrides)


@contextmanager
def flipping_one_upload(azurite: RunningServer, path: str) -> Iterator[FaultProxy]:
    """A fault proxy that inverts one byte of the body of the first PUT whose target matches ``path``."""
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        proxy.add_rule("flip_request", methods=["PUT"], path=path, limit=1)
        yield proxy


def answers(proxy: FaultProxy, method: str, path: str = "") -> list[tuple[int | None, bool]]:
    """(status, whether its body was flipped) of each ``method`` request matching ``path``, in order."""
    return [
        (record.status, record.fault == "flip_request")
        for record in proxy.requests
        if record.method == method and re.search(path, record.target)
    ]


def test_a_wrong_content_md5_is_refused_retryable_and_nothing_is_stored(
    azurite: RunningServer, container: Bucket
) -> None:
    provider = make_provider(azurite, retry_policy=NO_RETRY)
    backend = backend_of(provider)
    wrong = hashlib.md5(b"other bytes").digest()
    with pytest.raises(ChecksumMismatchException) as refused:
        call_through(
            provider,
            lambda: backend.put_object(container.name, "put.bin", b"payload", None, {}, content_md5=wrong),
        )
    # Azure's code is Md5Mismatch; Azurite says InvalidOperation, "Provided contentMD5 doesn't match."
    assert refused.value.retryable and refused.value.status == 400
    assert backend.head_object(container.name, "put.bin") is None

    upload = backend.create_multipart_upload(container.name, "block.bin", None, {})
    with pytest.raises(ChecksumMismatchException) as refused_block:
        call_through(provider, lambda: backend.upload_part(upload, 1, 0, b"block one", content_md5=wrong))
    assert refused_block.value.retryable
    backend.upload_part(upload, 2, 9, b"block two", content_md5=hashlib.md5(b"block two").digest())
    blob = raw_client(azurite).get_container_client(container.name).get_blob_client("block.bin")
    committed, staged = blob.get_block_list("all")
    assert not committed and [block.id for block in staged] == [upload.block_id(2)]


def test_a_body_damaged_on_the_way_up_is_refused_and_sent_again(azurite: RunningServer, container: Bucket) -> None:
    small = os.urandom(200_000)
    with flipping_one_upload(azurite, r"/small\.bin$") as proxy:
        via(azurite, proxy.url).storage.buckets.get(container.name).objects.create("small.bin").upload(small)  # type: ignore[union-attr]
    assert answers(proxy, "PUT") == [(400, True), (201, False)]

    large = os.urandom(12 * MiB)
    with flipping_one_upload(azurite, PUT_BLOCK) as proxy:
        provider = via(azurite, proxy.url, transfer_config=SMALL_PARTS)
        provider.storage.buckets.get(container.name).objects.create("large.bin").upload(io.BytesIO(large))  # type: ignore[union-attr]
    # Three blocks, the damaged one refused and sent again; then one Put Block List.
    assert sorted(answers(proxy, "PUT", PUT_BLOCK)) == [(201, False)] * 3 + [(400, True)]
    assert proxy.count_requests("PUT") == 5

    # A damaged block list: Azure refuses it by its Content-MD5; Azurite does not check that, and
    # finds no such blocks (InvalidBlockList), but they are all still staged: it is sent again.
    with flipping_one_upload(azurite, r"comp=blocklist") as proxy:
        provider = via(azurite, proxy.url, transfer_config=SMALL_PARTS)
        provider.storage.buckets.get(container.name).objects.create("listed.bin").upload(io.BytesIO(large))  # type: ignore[union-attr]
    lists = answers(proxy, "PUT", r"comp=blocklist")
    assert lists[0] == (400, True) and lists[-1] == (201, False)

    for name, data in (("small.bin", small), ("large.bin", large), ("listed.bin", large)):
        stored = raw_client(azurite).get_container_client(container.name).get_blob_client(name)
        assert stored.download_blob().readall() == data
        assert stored.get_blob_properties().content_settings.content_md5 == bytearray(hashlib.md5(data).digest())


def test_a_multipart_blob_is_verified_on_download_and_a_mismatch_retried_once(
    azurite: RunningServer, container: Bucket, tmp_path: Any
) -> None:
    data = os.urandom(12 * MiB)
    # Staged blocks: the blob's MD5 is the one the engine computed and set at Put Block List.
    container.objects.create("multi.bin").upload(io.BytesIO(data))
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        bucket = via(azurite, proxy.url, transfer_config=SMALL_PARTS).storage.buckets.get(container.name)
        assert bucket is not None
        obj = bucket.objects.get("multi.bin")
        assert obj is not None
        proxy.reset_stats()
        obj.download_to_file(tmp_path / "clean.out")
        clean = proxy.count_requests("GET")
        assert clean == 3 and (tmp_path / "clean.out").read_bytes() == data

        # One flipped byte: the whole download is fetched once more, and is right.
        proxy.add_rule("flip", methods=["GET"], limit=1)
        proxy.reset_stats()
        obj.download_to_file(tmp_path / "once.out")
        assert (proxy.stats["flip"], proxy.count_requests("GET")) == (1, 2 * clean)
        assert (tmp_path / "once.out").read_bytes() == data
        proxy.clear_faults()
        proxy.add_rule("flip", methods=["GET"], path=r"multi\.bin", limit=1)
        assert obj.read() == data

        # Damaged every time: retried once, then the error, and no file at all.
        proxy.clear_faults()
        proxy.add_rule("flip", methods=["GET"])
        proxy.reset_stats()
        with pytest.raises(ChecksumMismatchException):
            obj.download_to_file(tmp_path / "bad.out")
        assert proxy.count_requests("GET") == 2 * clean
        with pytest.raises(ChecksumMismatchException):
            obj.read()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.out", "once.out"]


def test_exactly_one_extra_request_per_503(azurite: RunningServer, container: Bucket) -> None:
    data = os.urandom(12 * MiB)
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        bucket = via(azurite, proxy.url, transfer_config=SMALL_PARTS).storage.buckets.get(container.name)
        assert bucket is not None
        proxy.add_rule("503", methods=["PUT"], path=PUT_BLOCK, limit=1)
        bucket.objects.create("busy.bin").upload(io.BytesIO(data))
        # Three Put Block, one of them twice, and the Put Block List.
        assert (proxy.stats["503"], proxy.count_requests("PUT")) == (1, 5)
        proxy.reset_stats()
        obj = bucket.objects.create("busy.bin")
        assert obj.read() == data
        clean = proxy.count_requests("GET")
        proxy.add_rule("503", methods=["GET"], limit=1)
        proxy.reset_stats()
        assert obj.read() == data
        assert (proxy.stats["503"], proxy.count_requests("GET")) == (1, clean + 1)


def test_a_body_broken_off_fails_its_request_once_and_cloudstore_retries(
    azurite: RunningServer, container: Bucket
) -> None:
    data = os.urandom(300_000)
    container.objects.create("cut.bin").upload(data)
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        once = via(azurite, proxy.url, retry_policy=NO_RETRY).storage.buckets.get(container.name)
        assert once is not None
        proxy.add_rule("reset", methods=["GET"], reset_at="mid", limit=1)
        proxy.reset_stats()
        with pytest.raises(ProviderConnectionException) as broken:
            once.objects.create("cut.bin").read()
        # One request: the SDK's downloader does not send it again on its own (it would, three times).
        assert broken.value.retryable and proxy.count_requests("GET") == 1

        retrying = via(azurite, proxy.url).storage.buckets.get(container.name)
        assert retrying is not None
        proxy.add_rule("reset", methods=["GET"], reset_at="mid", limit=1)
        proxy.reset_stats()
        assert retrying.objects.create("cut.bin").read() == data
        assert (proxy.stats["reset"], proxy.count_requests("GET")) == (1, 2)


def test_an_sdk_error_without_a_status_is_a_retryable_connection_error(key_provider: CloudProvider) -> None:
    # What the SDK raises when it gave up without an answer to show (e.g. its own re-reads).
    for error in (HttpResponseError(message="Download failed"), AzureError("no answer")):
        mapped = backend_of(key_provider).map_error(error)
        assert isinstance(mapped, ProviderConnectionException) and mapped.retryable, error


def test_a_stalled_answer_times_out_and_is_tried_again(azurite: RunningServer, container: Bucket) -> None:
    container.objects.create("slow.txt").upload(b"slow")
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"]), stall_seconds=5) as proxy:
        once = via(azurite, proxy.url, read_timeout=1, retry_policy=NO_RETRY).storage.buckets.get(container.name)
        assert once is not None
        proxy.add_rule("stall", methods=["GET"], limit=1)
        with pytest.raises(ProviderConnectionException):
            once.objects.create("slow.txt").read()

        retrying = via(azurite, proxy.url, read_timeout=1).storage.buckets.get(container.name)
        assert retrying is not None
        proxy.add_rule("stall", methods=["GET"], limit=1)
        proxy.reset_stats()
        assert retrying.objects.create("slow.txt").read() == b"slow"
        assert (proxy.stats["stall"], proxy.count_requests("GET")) == (1, 2)


@pytest.mark.timeout(60)
def test_a_server_that_never_answers_fails_within_the_deadline() -> None:
    # The kernel completes the connections (up to the backlog); nobody ever reads a request.
    with socket.create_server(("127.0.0.1", 0), backlog=64) as hole:
        provider = create(
            {
                "azure_storage_account": azurite_server.ACCOUNT_NAME,
                "azure_account_key": azurite_server.ACCOUNT_KEY,
                "azure_blob_endpoint": f"http://127.0.0.1:{hole.getsockname()[1]}/{azurite_server.ACCOUNT_NAME}",
                "connect_timeout": 1,
                "read_timeout": 1,
                "retry_policy": RetryPolicy(max_attempts=3, deadline=3),
            }
        )
        obj = Bucket(provider, BucketInfo(name="box")).objects.create("a.txt")
        with pytest.raises(ProviderConnectionException):
            obj.upload(b"never stored")
        with pytest.raises(ProviderConnectionException):
            obj.read()


def test_mixed_transfers_under_faults_both_ways_all_arrive_intact(
    azurite: RunningServer, container: Bucket, tmp_path: Any
) -> None:
    rng = random.Random(11)
    sizes = [rng.choice([0, 1, 1000, 300_000, 3 * MiB, 7 * MiB]) for _ in range(30)]
    # Request bodies damaged on the way up, answers on the way down.
    with FaultProxy(
        upstream=("127.0.0.1", azurite.extra["port"]),
        rates={"reset": 0.03, "503": 0.03, "stall": 0.01, "flip_request": 0.1},
        stall_seconds=3,
        seed=5,
    ) as proxy:
        # A download found damaged is fetched once more, so at most one flipped answer per blob
        # (two flips in a row fail it by design, whichever requests the draws happen to hit).
        proxy.add_rule("flip", 0.05, once_per_path=True)
        parts = TransferConfig(threshold=2 * MiB, part_size=2 * MiB, max_concurrency=3)
        bucket = via(azurite, proxy.url, transfer_config=parts, read_timeout=1).storage.buckets.get(container.name)
        assert bucket is not None
        for number, size in enumerate(sizes):
            data = os.urandom(size)
            obj = bucket.objects.create(f"mixed/{number}.bin")
            obj.upload(data if number % 2 else io.BytesIO(data))
            if number % 3:
                assert obj.read() == data
            else:
                obj.download_to_file(tmp_path / "mixed.out")
                assert (tmp_path / "mixed.out").read_bytes() == data
            stored = raw_client(azurite).get_container_client(container.name).get_blob_client(f"mixed/{number}.bin")
            assert stored.download_blob().readall() == data
            assert not stored.get_block_list("uncommitted")[1]
    assert proxy.stats["flip_request"] > 0
    assert proxy.stats["faults"] > 0 and proxy.stats["flip"] > 0


def test_two_uploads_racing_for_one_blob_the_loser_gets_a_conflict(azurite: RunningServer, container: Bucket) -> None:
    provider = make_provider(azurite, transfer_config=TransferConfig(threshold=MiB, part_size=MiB, max_concurrency=2))
    bucket = provider.storage.buckets.get(container.name)
    assert bucket is not None
    winner, loser = os.urandom(3 * MiB), os.urandom(3 * MiB)
    staged = 0

    def commit_the_winner_first(amount: int) -> None:
        # The loser's blocks are all staged: the winner's commit discards them before the
        # loser's Put Block List names them.
        nonlocal staged
        staged += amount
        if staged == len(loser):
            bucket.objects.create("race.bin").upload(io.BytesIO(winner))

    with pytest.raises(PreconditionFailedException) as lost:
        bucket.objects.create("race.bin").upload(io.BytesIO(loser), progress=commit_the_winner_first)
    assert lost.value.code == "InvalidBlockList"
    assert container.objects.get("race.bin").read() == winner  # type: ignore[union-attr]

    # Truly concurrent: each upload either wins or loses with that conflict; no bytes ever mix.
    payloads = [os.urandom(3 * MiB) for _ in range(2)]

    def upload(index: int, outcomes: list[BaseException | None]) -> None:
        try:
            bucket.objects.create("race.bin").upload(io.BytesIO(payloads[index]))  # type: ignore[union-attr]
        except BaseException as err:
            outcomes[index] = err

    for _ in range(3):
        outcomes: list[BaseException | None] = [None, None]
        threads = [threading.Thread(target=upload, args=(i, outcomes)) for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(o is None or isinstance(o, PreconditionFailedException) for o in outcomes), outcomes
        stored = container.objects.get("race.bin").read()  # type: ignore[union-attr]
        assert stored in [payloads[i] for i in range(2) if outcomes[i] is None]


# --- signed URLs ----------------------------------------------------------------------------------


def test_service_sas_permissions_and_put_header(container: Bucket) -> None:
    obj = container.objects.create("dir/ünï code.txt")
    obj.upload(b"shared")
    read_url = obj.generate_url(expires_in=600)
    query = parse_qs(urlsplit(read_url).query)
    assert query["sp"] == ["r"] and query["sr"] == ["b"] and "st" not in query
    assert fetch_body(read_url) == (200, b"shared")

    write_url = container.objects.create("dropbox.bin").generate_url(expires_in=600, writable=True)
    assert parse_qs(urlsplit(write_url).query)["sp"] == ["cw"]
    # Without x-ms-blob-type Azure does not know what blob to create.
    assert fetch(write_url, "PUT", b"no header") == 400
    assert fetch(write_url, "PUT", b"dropped", PUT_BLOCKBLOB) == 201
    assert container.objects.get("dropbox.bin").read() == b"dropped"  # type: ignore[union-attr]
    assert fetch(write_url) == 403


def test_long_lived_service_sas(azurite: RunningServer, container: Bucket) -> None:
    # A service SAS has no 7-day cap of its own (only user-delegation SAS does): cloudstore's cap
    # may be raised.
    provider = CloudProviderFactory().create_provider(
        ProviderList.AZURE, {**azurite.config, "max_url_expiry": 60 * 24 * 3600}
    )
    bucket = provider.storage.buckets.get(container.name)
    assert bucket is not None
    obj = bucket.objects.create("long.txt")
    obj.upload(b"a month")
    url = obj.generate_url(expires_in=30 * 24 * 3600)
    expiry = datetime.fromisoformat(parse_qs(urlsplit(url).query)["se"][0].replace("Z", "+00:00"))
    assert expiry > datetime.now(UTC) + timedelta(days=29)
    assert fetch_body(url) == (200, b"a month")


def test_tampered_and_expired_sas_refused(azurite: RunningServer, container: Bucket) -> None:
    obj = container.objects.create("guarded.txt")
    obj.upload(b"guarded")
    url = obj.generate_url(expires_in=600)
    assert fetch(url) == 200
    later = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H%%3A%M%%3A%SZ")
    tampered = [
        url.replace("sp=r", "sp=rw"),
        url.replace("sig=", "sig=A"),
        url.replace("se=", f"se={later}&old_se="),
        url.replace("/guarded.txt", "/other.txt"),
    ]
    container.objects.create("other.txt").upload(b"other")
    for bad in tampered:
        assert fetch(bad) == 403, bad
    blob_url = url.split("?")[0]
    expired = blob_sas_url(
        blob_url,
        azurite.extra["account_name"],
        container.name,
        "guarded.txt",
        "GET",
        datetime.now(UTC) - timedelta(seconds=5),
        account_key=azurite.extra["account_key"],
    )
    assert fetch(expired) == 403
    wrong_key = blob_sas_url(
        blob_url,
        azurite.extra["account_name"],
        container.name,
        "guarded.txt",
        "GET",
        datetime.now(UTC) + timedelta(minutes=5),
        account_key="B" * 4 + azurite.extra["account_key"][4:],
    )
    assert fetch(wrong_key) == 403


def test_user_delegation_sas_shape_offline() -> None:
    """Azurite cannot issue user delegation keys over http, so only the URL is checked here:
    the SDK signs it with the key the service would return (no network call in this path)."""
    key = UserDelegationKey()  # type: ignore[no-untyped-call]
    key.signed_oid = "11111111-2222-3333-4444-555555555555"
    key.signed_tid = "66666666-7777-8888-9999-000000000000"
    key.signed_start = "2026-01-01T00:00:00Z"
    key.signed_expiry = "2026-01-08T00:00:00Z"
    key.signed_service = "b"
    key.signed_version = "2025-11-05"
    key.value = "ZGVsZWdhdGlvbi1rZXktdmFsdWUtZm9yLXRlc3RzLW9ubHk="
    expiry = datetime(2026, 1, 2, tzinfo=UTC)
    base = "https://acct.blob.core.windows.net/box/a%20b.txt"
    for method, permission in (("GET", "r"), ("PUT", "cw")):
        url = blob_sas_url(base, "acct", "box", "a b.txt", method, expiry, user_delegation_key=key)
        assert url.startswith(base + "?")
        query = parse_qs(urlsplit(url).query)
        assert query["sp"] == [permission]
        assert query["sr"] == ["b"]
        assert query["se"] == ["2026-01-02T00:00:00Z"]
        assert query["skoid"] == [key.signed_oid] and query["sktid"] == [key.signed_tid]
        assert query["skt"] == [key.signed_start] and query["ske"] == [key.signed_expiry]
        assert query["sks"] == ["b"] and query["skv"] == [key.signed_version]
        assert len(query["sig"][0]) == 44  # base64 of an HMAC-SHA256
    with pytest.raises(InvalidParamException):
        blob_sas_url(base, "acct", "box", "a b.txt", "DELETE", expiry, user_delegation_key=key)


def test_user_delegation_sas_limits_without_network() -> None:
    dead = f"https://127.0.0.1:{free_port()}/acct"
    provider = create(
        {
            "azure_storage_account": "acct",
            "azure_credential": StaticToken(),
            "azure_blob_endpoint": dead,
            "retry_policy": NO_RETRY,
        }
    )
    obj = Bucket(provider, BucketInfo(name="box")).objects.create("a.txt")
    # A user delegation key lives at most 7 days, and so does any SAS signed with it.
    with pytest.raises(InvalidParamException, match="7 days"):
        obj.generate_url(expires_in=8 * 24 * 3600)
    # Within 7 days the provider asks the service for a delegation key (nothing listens here).
    with pytest.raises(ProviderConnectionException):
        obj.generate_url(expires_in=3600)


# --- TokenCredential over HTTPS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def azurite_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = azurite_server.start_https_oauth(tmp_path_factory.mktemp("azurite-https"))
    yield server
    server.stop()


class BearerToken:
    """A TokenCredential handing out a fixed token (Azurite's basic OAuth does not check signatures)."""

    def __init__(self, token: str, expires_on: int) -> None:
        self.token = AccessToken(token, expires_on)

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return self.token


class NoToken:
    """A TokenCredential that cannot get a token, as azure-identity reports it."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        raise ClientAuthenticationError("no identity available")


def test_token_credential_round_trip_and_delegation_key(azurite_https: RunningServer) -> None:
    token, expires_on = azurite_server.fake_bearer_token()
    trusted = {**azurite_https.config, "azure_ca_bundle": str(azurite_https.extra["ca_bundle"])}
    provider = create({**trusted, "azure_credential": BearerToken(token, expires_on)})
    bucket = provider.storage.buckets.create(unique_name("tok"))
    obj = bucket.objects.create("bearer.txt")
    obj.upload(b"sent with a bearer token", metadata={"via": "oauth"})
    assert bucket.objects.get("bearer.txt").read() == b"sent with a bearer token"  # type: ignore[union-attr]
    assert [o.name for o in bucket.objects.list()] == ["bearer.txt"]
    obj.copy_to(bucket, "copied.txt")
    assert bucket.objects.get("copied.txt").metadata == {"via": "oauth"}  # type: ignore[union-attr]

    # generate_url asked the service for a user delegation key: its claims are the token's.
    read_query = parse_qs(urlsplit(obj.generate_url(expires_in=600)).query)
    write_query = parse_qs(urlsplit(obj.generate_url(expires_in=3 * 24 * 3600, writable=True)).query)
    assert read_query["skoid"] == [azurite_server.TOKEN_OBJECT_ID]
    assert read_query["sktid"] == [azurite_server.TOKEN_TENANT_ID]
    assert (read_query["sp"], write_query["sp"]) == (["r"], ["cw"])
    # One key serves both URLs (it is reused while it lasts) and outlives them.
    assert read_query["ske"] == write_query["ske"] and write_query["ske"][0] > write_query["se"][0]
    with pytest.raises(InvalidParamException, match="7 days"):
        obj.generate_url(expires_in=8 * 24 * 3600)
    bucket.delete(delete_contents=True)

    expired, _ = azurite_server.fake_bearer_token(valid_for=timedelta(seconds=-60))
    stale = create({**trusted, "azure_credential": BearerToken(expired, expires_on), "retry_policy": NO_RETRY})
    with pytest.raises(AuthenticationException):
        stale.storage.buckets.get("anything")
    without = create({**trusted, "azure_credential": NoToken(), "retry_policy": NO_RETRY})
    with pytest.raises(AuthenticationException, match="no identity available"):
        without.storage.buckets.get("anything")


# --- docs -------------------------------------------------------------------------------------------


def test_docs_page_examples_run_against_azurite(azurite: RunningServer, tmp_path: Any) -> None:
    from tests.test_docs import run_page, sandbox

    home = tmp_path / "home"
    home.mkdir()
    with sandbox(home, {"AZURE_STORAGE_CONNECTION_STRING": azurite.extra["connection_string"]}):
        namespace = run_page("azure.rst")
    assert namespace["provider"].storage.buckets.get("reports") is None  # the page cleans up


# --- bearer tokens on the lean request path (providers/azure/rest.py) --------------------------------


class Tokens:
    """A TokenCredential handing out the given tokens in turn (each claimed good for an hour)."""

    def __init__(self, *tokens: str) -> None:
        self.tokens = list(tokens)
        self.calls = 0

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.calls += 1
        token, expires_on = self.tokens.pop(0), azurite_server.fake_bearer_token()[1]
        return AccessToken(token, expires_on)


def https_provider(server: RunningServer, credential: Any) -> CloudProvider:
    config = {**server.config, "azure_ca_bundle": str(server.extra["ca_bundle"]), "azure_credential": credential}
    return create(config)


def test_a_kept_token_refused_is_renewed_once(azurite_https: RunningServer) -> None:
    good, _ = azurite_server.fake_bearer_token()
    expired, _ = azurite_server.fake_bearer_token(valid_for=timedelta(seconds=-60))
    credential = Tokens(expired, good, good)
    provider = https_provider(azurite_https, credential)
    backend = backend_of(provider)
    # Refused (403 AuthenticationFailed, "expired"), renewed, sent again: 404 of a missing container.
    assert backend.head_object(unique_name("none"), "a") is None
    assert credential.calls == 2
    assert backend.head_object(unique_name("none"), "b") is None
    assert credential.calls == 2  # kept while it lasts
    provider.close()

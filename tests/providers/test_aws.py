"""AWS S3 provider specifics on a real SeaweedFS: client setup, session tokens from STS,
SigV4 signed URLs, server-side paging, HEAD 403 handling, error mapping and multipart.

The conformance suite covers what every provider shares; these tests cover what is
particular to S3.
"""

from __future__ import annotations

import base64
import hashlib
import os
import ssl
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
import botocore.exceptions as boto_errors
import google_crc32c
import pytest
from botocore.config import Config as BotoConfig

import cloudstore
from cloudstore import (
    AuthenticationException,
    Bucket,
    ChecksumMismatchException,
    CloudProvider,
    CloudProviderFactory,
    CloudStoreException,
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
)
from cloudstore._checksums import Checksum, expected_checksum
from cloudstore.backend import BucketInfo, ObjectInfo, Page, RangeReader
from cloudstore.providers.aws.backend import S3Backend
from cloudstore.testing import SentRequest, backend_of, call_through, observing, sent_requests, spy_on
from tests.conftest import make_provider, provider_fixture, server_fixture, unique_name
from tests.support.proxy import FaultProxy
from tests.support.servers.base import RunningServer, free_port

MiB = 1024 * 1024
ONE_TRY = RetryPolicy(max_attempts=1)


# --- fixtures ---------------------------------------------------------------------------------
server = server_fixture("aws")
aws = provider_fixture()


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Any:
    """A plain boto3 client with the admin identity, for setting up and inspecting."""
    return boto3.client(
        "s3",
        endpoint_url=server.extra["endpoint_url"],
        aws_access_key_id=server.extra["admin_access_key"],
        aws_secret_access_key=server.extra["admin_secret_key"],
        region_name=server.extra["region"],
        config=BotoConfig(signature_version="s3v4", retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )


@pytest.fixture
def s3_bucket(aws: CloudProvider, admin: Any) -> Iterator[Bucket]:
    created = aws.storage.buckets.create(unique_name("aws"))
    yield created
    _empty_and_delete(admin, created.name)


def _empty_and_delete(admin: Any, name: str) -> None:
    for upload in admin.list_multipart_uploads(Bucket=name).get("Uploads", []):
        admin.abort_multipart_upload(Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in admin.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            admin.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    admin.delete_bucket(Bucket=name)


@pytest.fixture(scope="module")
def temp_credentials(server: RunningServer) -> dict[str, str]:
    """Temporary credentials with a session token from SeaweedFS's STS AssumeRole."""
    sts = boto3.client(
        "sts",
        endpoint_url=server.extra["sts_endpoint_url"],
        aws_access_key_id=server.extra["admin_access_key"],
        aws_secret_access_key=server.extra["admin_secret_key"],
        region_name=server.extra["region"],
    )
    creds = sts.assume_role(RoleArn=server.extra["role_arn"], RoleSessionName="cloudstore-tests")["Credentials"]
    assert creds["SessionToken"]
    return {
        "aws_access_key": creds["AccessKeyId"],
        "aws_secret_key": creds["SecretAccessKey"],
        "aws_session_token": creds["SessionToken"],
    }


@pytest.fixture(scope="module")
def existing(aws: CloudProvider, admin: Any) -> Iterator[tuple[str, str]]:
    """A bucket holding one object, made with good credentials: (bucket, key)."""
    name = unique_name("aws-there")
    aws.storage.buckets.create(name).objects.create("present.txt").upload(b"here")
    yield name, "present.txt"
    _empty_and_delete(admin, name)


# --- helpers ----------------------------------------------------------------------------------
@contextmanager
def captured_params(client: Any, operation: str) -> Iterator[list[dict[str, Any]]]:
    """The parameters of every ``operation`` call the client makes inside the block."""
    calls: list[dict[str, Any]] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        calls.append(dict(params))

    event = f"before-parameter-build.s3.{operation}"
    client.meta.events.register(event, record)
    try:
        yield calls
    finally:
        client.meta.events.unregister(event, record)


@contextmanager
def client_requests(client: Any) -> Iterator[list[Any]]:
    """Every HTTP request boto3's client (the control plane) sends inside the block."""
    requests: list[Any] = []

    def record(request: Any, **_: Any) -> None:
        requests.append(request)

    client.meta.events.register("before-send.s3", record)
    try:
        yield requests
    finally:
        client.meta.events.unregister("before-send.s3", record)


def http(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def text_headers(request: Any) -> dict[str, str]:
    """A botocore request's headers, names in lower case and values as text."""
    return {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()}


def listings(requests: list[SentRequest]) -> list[dict[str, str]]:
    """The query parameters of each ListObjectsV2 request among ``requests``."""
    return [query_of(r.url) for r in requests if r.method == "GET" and "list-type=2" in r.url]


def client_error(code: str | None, status: int, operation: str = "GetObject") -> boto_errors.ClientError:
    error: dict[str, Any] = {"Message": "message from the service"}
    if code is not None:
        error["Code"] = code
    response: Any = {"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}
    return boto_errors.ClientError(response, operation)


# --- construction and client setup ------------------------------------------------------------
def test_creating_the_provider_makes_no_network_call_and_hides_secrets() -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    config = {
        "aws_access_key": "AKIDCLOUDSTORETEST",
        "aws_secret_key": "secret-value-never-shown",
        "aws_session_token": "token-value-never-shown",
        "s3_endpoint_url": closed,
        "retry_policy": ONE_TRY,
    }
    provider = CloudProviderFactory().create_provider(ProviderList.AWS, config)
    backend = backend_of(provider)  # constructing the backend is still offline
    assert isinstance(backend, S3Backend)
    for text in (repr(provider), repr(backend), str(provider.config)):
        assert "secret-value-never-shown" not in text and "token-value-never-shown" not in text
    with pytest.raises(ProviderConnectionException) as caught:
        provider.storage.buckets.get("some-bucket")
    assert isinstance(caught.value.__cause__, boto_errors.EndpointConnectionError)
    assert "secret-value-never-shown" not in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"s3_checksums": "always"},
        {"s3_addressing_style": "sideways"},
        {"aws_access_key": "AKID", "aws_secret_key": None},
        {"aws_access_key": None, "aws_secret_key": None, "aws_session_token": "token"},
        {"s3_verify": 3},
    ],
)
def test_bad_configuration_is_an_invalid_param(overrides: dict[str, Any]) -> None:
    config = {"aws_access_key": "AKID", "aws_secret_key": "secret", "s3_endpoint_url": "http://127.0.0.1:1"}
    with pytest.raises(InvalidParamException):  # when the provider is made, or its client
        provider = CloudProviderFactory().create_provider(ProviderList.AWS, {**config, **overrides})
        _ = backend_of(provider)


def test_client_configuration(aws: CloudProvider) -> None:
    backend = backend_of(aws)
    assert isinstance(backend, S3Backend)
    client = backend.client
    assert client is backend.client, "the client is made once and shared"
    config: Any = client.meta.config
    assert config.signature_version == "s3v4"
    assert config.retries["total_max_attempts"] == 1, "the shared layer retries, not botocore"
    assert config.max_pool_connections >= 32
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    assert config.s3["addressing_style"] == "path"
    assert config.s3["payload_signing_enabled"] is False
    assert client.meta.region_name == "us-east-1"


def test_region_and_addressing_defaults_and_switches(server: RunningServer) -> None:
    plain = make_provider(server, aws_region_name=None, s3_endpoint_url=None)
    client = backend_of(plain).client  # type: ignore[attr-defined]
    assert client.meta.region_name == "us-east-1"
    assert client.meta.config.s3["addressing_style"] == "auto"
    assert "payload_signing_enabled" not in client.meta.config.s3
    tuned = make_provider(
        server, s3_checksums="when_supported", s3_addressing_style="virtual", aws_region_name="eu-west-1"
    )
    config = backend_of(tuned).client.meta.config  # type: ignore[attr-defined]
    assert config.request_checksum_calculation == config.response_checksum_validation == "when_supported"
    assert config.s3["addressing_style"] == "virtual"
    assert backend_of(tuned).client.meta.region_name == "eu-west-1"  # type: ignore[attr-defined]


def test_ca_bundle_and_verify_switch_reach_the_client(server: RunningServer) -> None:
    off = make_provider(server, s3_verify=False)
    backend = backend_of(off)
    assert isinstance(backend, S3Backend)
    assert backend.settings.verify is False, "given to boto3's client"
    context = backend.rest.pool.ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_NONE and not context.check_hostname
    bundle = make_provider(server, s3_verify="/etc/ssl/certs/ca-certificates.crt")
    backend = backend_of(bundle)
    assert isinstance(backend, S3Backend)
    assert backend.settings.verify == "/etc/ssl/certs/ca-certificates.crt"
    context = backend.rest.pool.ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED and context.get_ca_certs()


# --- objects ------------------------------------------------------------------------------------
def test_put_and_get_of_16_kib_send_one_request_each(aws: CloudProvider, s3_bucket: Bucket) -> None:
    data = os.urandom(16 * 1024)
    obj = s3_bucket.objects.create("small.bin")
    with sent_requests() as requests:
        obj.upload(data)
    assert [r.method for r in requests] == ["PUT"], "no HEAD after put, no extra request"
    assert requests[0].headers["x-amz-content-sha256"] == "UNSIGNED-PAYLOAD"
    assert requests[0].headers["content-md5"] == base64.b64encode(hashlib.md5(data).digest()).decode()
    assert requests[0].body == data
    assert "x-amz-checksum-crc32" not in requests[0].headers, "no second checksum"
    assert requests[0].headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=")
    with sent_requests() as requests:
        assert obj.read(0, len(data) - 1) == data
    assert [r.method for r in requests] == ["GET"]
    with sent_requests() as requests:
        assert obj.read() == data
    assert [r.method for r in requests] == ["GET"], "a whole read takes size and checksum from the GET"


def test_sequential_reads_reuse_one_connection(server: RunningServer, s3_bucket: Bucket, tmp_path: Any) -> None:
    data = os.urandom(16 * 1024)
    for n in range(10):
        s3_bucket.objects.create(f"k{n}").upload(data)
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        through = Bucket(make_provider(server, s3_endpoint_url=proxy.url), BucketInfo(s3_bucket.name))
        for obj in through.objects:
            assert obj.read() == data
            assert obj.read(0, 99) == data[:100]
            obj.download_to_file(tmp_path / obj.name)
        # Every body read to its end, so each connection went back to the pool: one for all.
        assert proxy.stats["connections"] == 1
        assert proxy.stats["requests"] == 1 + 30  # the listing, then one GET per read


def test_download_to_file_of_a_small_object_is_one_get(aws: CloudProvider, s3_bucket: Bucket, tmp_path: Any) -> None:
    data = os.urandom(16 * 1024)
    s3_bucket.objects.create("small.bin").upload(data, metadata={"kind": "weights"})
    obj = s3_bucket.objects.create("small.bin")  # a bare handle: nothing known about it yet
    with sent_requests() as requests:
        obj.download_to_file(tmp_path / "small.bin")
    assert [r.method for r in requests] == ["GET"], "size and checksum come from the GET: no HEAD first"
    assert requests[0].headers["range"] == "bytes=0-5242879"  # one part (5 MiB in the tests) at most
    assert (tmp_path / "small.bin").read_bytes() == data
    with sent_requests() as requests:
        assert (obj.size, obj.metadata) == (len(data), {"kind": "weights"})
    assert requests == [], "the GET's properties are the object's now"


def test_head_gives_md5_checksum_for_a_single_put(aws: CloudProvider, s3_bucket: Bucket) -> None:
    data = b"checksum me" * 100
    s3_bucket.objects.create("one.txt").upload(data, content_type="text/plain", metadata={"owner": "ml"})
    info = backend_of(aws).head_object(s3_bucket.name, "one.txt")
    assert info is not None
    md5 = hashlib.md5(data).hexdigest()
    assert info.etag == md5
    assert info.checksum == ("md5", md5)
    assert info.content_type == "text/plain"
    assert info.metadata == {"owner": "ml"}
    assert info.last_modified is not None and info.last_modified.utcoffset() is not None


def test_default_content_type_is_octet_stream(s3_bucket: Bucket) -> None:
    s3_bucket.objects.create("plain").upload(b"hello text")
    got = s3_bucket.objects.get("plain")
    assert got is not None and got.content_type == "application/octet-stream"


def test_get_object_returns_a_range_reader(aws: CloudProvider, s3_bucket: Bucket) -> None:
    s3_bucket.objects.create("range.bin").upload(b"0123456789")
    with backend_of(aws).get_object(s3_bucket.name, "range.bin", 2, 5) as reader:
        assert isinstance(reader, RangeReader)
        assert reader.read() == b"2345"
        assert reader.info is not None and reader.info.size == 10, "the whole object's size"
        assert reader.info.checksum == ("md5", hashlib.md5(b"0123456789").hexdigest())
    with backend_of(aws).get_object(s3_bucket.name, "range.bin", 7, None) as reader:
        assert reader.read() == b"789"


def test_download_detects_a_corrupted_body(server: RunningServer, s3_bucket: Bucket) -> None:
    data = os.urandom(64 * 1024)
    s3_bucket.objects.create("flip.bin").upload(data)
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        proxy.add_rule("flip", methods=["GET"], path=r"/flip\.bin")
        through = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=ONE_TRY)
        obj = through.storage.buckets.get(s3_bucket.name).objects.get("flip.bin")  # type: ignore[union-attr]
        assert obj is not None
        with pytest.raises(ChecksumMismatchException):
            b"".join(obj.iter_content())


def test_when_supported_checksums_work_on_the_server(server: RunningServer, s3_bucket: Bucket) -> None:
    provider = make_provider(server, s3_checksums="when_supported")
    bucket = provider.storage.buckets.get(s3_bucket.name)
    assert bucket is not None
    with sent_requests() as requests:
        bucket.objects.create("crc.txt").upload(b"with a crc32")
    assert (
        requests[0].headers["x-amz-checksum-crc32"]
        == base64.b64encode(zlib.crc32(b"with a crc32").to_bytes(4, "big")).decode()
    )
    assert bucket.objects.get("crc.txt").read() == b"with a crc32"  # type: ignore[union-attr]
    big = os.urandom(5 * MiB + 1000)
    bucket.objects.create("crc-multipart.bin").upload(big)
    assert hashlib.md5(bucket.objects.get("crc-multipart.bin").read()).digest() == hashlib.md5(big).digest()  # type: ignore[union-attr]


def test_sse_kms_key_goes_with_every_write(server: RunningServer, s3_bucket: Bucket) -> None:
    # SeaweedFS has no KMS here: the proxy answers the writes as AWS does for an unknown key,
    # after the client has sent them with their SSE-KMS headers.
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        proxy.add_rule("status", methods=["PUT", "POST"], status=400, code="KMS.NotFoundException")
        provider = make_provider(
            server, s3_endpoint_url=proxy.url, s3_kms_key_id="alias/cloudstore", retry_policy=ONE_TRY
        )
        bucket = Bucket(provider, BucketInfo(s3_bucket.name))
        client = backend_of(provider).client  # type: ignore[attr-defined]
        with sent_requests() as puts, client_requests(client) as creates:
            with pytest.raises(InvalidParamException) as caught:
                bucket.objects.create("secret.bin").upload(b"classified")
            with pytest.raises(InvalidParamException):
                call_through(
                    provider,
                    lambda: backend_of(provider).create_multipart_upload(s3_bucket.name, "big.bin", None, {}),
                )
        assert caught.value.code == "KMS.NotFoundException"
        assert [r.method for r in puts] == ["PUT"] and [r.method for r in creates] == ["POST"]
        for headers in [r.headers for r in puts] + [text_headers(creates[0])]:
            assert headers["x-amz-server-side-encryption"] == "aws:kms"
            assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/cloudstore"


# --- listing --------------------------------------------------------------------------------------
def test_pages_use_opaque_continuation_tokens(aws: CloudProvider, s3_bucket: Bucket) -> None:
    keys = [f"item-{i}" for i in range(5)]
    for key in keys:
        s3_bucket.objects.create(key).upload(key.encode())
    with sent_requests() as requests:
        first = s3_bucket.objects.list(limit=2)
        second = s3_bucket.objects.list(limit=2, marker=first.marker)
        third = s3_bucket.objects.list(limit=2, marker=second.marker)
    assert [o.name for o in first] + [o.name for o in second] + [o.name for o in third] == keys
    assert first.is_truncated and second.is_truncated and not third.is_truncated
    calls = listings(requests)
    assert [c.get("max-keys") for c in calls] == ["2", "2", "2"]
    assert [c.get("continuation-token") for c in calls] == [None, first.marker, second.marker]


def test_delimiter_gives_prefixes(s3_bucket: Bucket) -> None:
    for key in ("x/1", "x/2", "y/z/3", "top"):
        s3_bucket.objects.create(key).upload(b"-")
    page = s3_bucket.objects.list(delimiter="/")
    assert [o.name for o in page] == ["top"]
    assert page.prefixes == ["x/", "y/"]
    inner = s3_bucket.objects.list(prefix="y/", delimiter="/")
    assert [o.name for o in inner] == [] and inner.prefixes == ["y/z/"]


def test_iterating_2500_objects_fetches_each_page_once(aws: CloudProvider, admin: Any) -> None:
    bucket = aws.storage.buckets.create(unique_name("aws-many"))
    try:
        keys = [f"obj-{i:05d}" for i in range(2500)]
        client = backend_of(aws).client  # type: ignore[attr-defined]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda key: client.put_object(Bucket=bucket.name, Key=key, Body=b""), keys))
        with sent_requests() as requests:
            walked = [obj.name for obj in bucket.objects]
        assert walked == keys
        calls = listings(requests)
        assert len(calls) == 3
        tokens = [c.get("continuation-token") for c in calls]
        assert tokens[0] is None and len(set(tokens)) == 3, "each page fetched once"
    finally:
        _empty_and_delete(admin, bucket.name)


def test_a_repeated_continuation_token_raises_instead_of_looping(aws: CloudProvider, s3_bucket: Bucket) -> None:
    for key in ("a", "b", "c"):
        s3_bucket.objects.create(key).upload(b"-")
    provider, stuck = spy_on(aws)

    def stuck_server(_: Any, page: Page[Any]) -> Page[Any]:
        return Page(page.items, next_marker="the-same-token", prefixes=page.prefixes)

    stuck.after("list_objects", stuck_server)
    bucket = provider.storage.buckets.get(s3_bucket.name)
    assert bucket is not None
    with sent_requests() as requests, pytest.raises(ProviderConnectionException, match="repeated"):
        list(bucket.objects)
    assert len(listings(requests)) == 2


def test_bucket_listing_pages_on_the_server(aws: CloudProvider) -> None:
    names = sorted(unique_name("aws-list") for _ in range(3))
    made = [aws.storage.buckets.create(n) for n in names]
    client = backend_of(aws).client  # type: ignore[attr-defined]
    try:
        everything = [b.name for b in aws.storage.buckets]
        assert everything == sorted(everything) and set(names) <= set(everything)
        with captured_params(client, "ListBuckets") as calls:
            first = aws.storage.buckets.list(limit=2)
            second = aws.storage.buckets.list(limit=2, marker=first.marker)
        assert [b.name for b in first] + [b.name for b in second] == everything[:4]
        assert [c.get("MaxBuckets") for c in calls] == [2, 2]
        assert calls[1]["ContinuationToken"] == first.marker
    finally:
        for bucket in made:
            bucket.delete()


def test_bucket_pages_are_cut_when_the_server_ignores_max_buckets(aws: CloudProvider) -> None:
    names = sorted(unique_name("aws-cut") for _ in range(3))
    made = [aws.storage.buckets.create(n) for n in names]
    client = backend_of(aws).client  # type: ignore[attr-defined]

    def ignore_max_buckets(params: dict[str, Any], **_: Any) -> None:
        params.pop("MaxBuckets", None)
        params.pop("ContinuationToken", None)

    client.meta.events.register("before-parameter-build.s3.ListBuckets", ignore_max_buckets)
    try:
        walked: list[str] = []
        marker = None
        while True:
            page = aws.storage.buckets.list(limit=2, marker=marker)
            assert len(page) <= 2
            walked.extend(b.name for b in page)
            if not page.is_truncated:
                break
            marker = page.marker
        assert walked == sorted(walked) and len(walked) == len(set(walked))
        assert set(names) <= set(walked)
    finally:
        client.meta.events.unregister("before-parameter-build.s3.ListBuckets", ignore_max_buckets)
        for bucket in made:
            bucket.delete()


def test_listed_etags_spare_an_unchanged_sync_its_heads(s3_bucket: Bucket, tmp_path: Any) -> None:
    """A listed ETag shaped like an MD5 that matches the file proves the object unchanged; one
    that does not match is checked against the HEAD (it may be SSE-KMS's, not an MD5)."""
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    for n in range(5):
        (source / f"f{n}.bin").write_bytes(os.urandom(1000))
    (source / "sub" / "same-size.bin").write_bytes(b"A" * 100)
    mirror = f"aws://{s3_bucket.name}/mirror/"
    providers = {ProviderList.AWS: s3_bucket.provider}
    assert cloudstore.sync(source, mirror, providers=providers).copied == 6
    backend = backend_of(s3_bucket.provider)
    listed = backend.list_objects(s3_bucket.name, "mirror/f0", None, None, None).items
    md5 = hashlib.md5((source / "f0.bin").read_bytes()).hexdigest()
    assert [backend.checksum_hint(info) for info in listed] == [Checksum("md5", md5)]
    assert backend.checksum_hint(ObjectInfo("parts", 2, etag=f"{md5}-2")) is None, "md5-of-parts: no hint"

    with sent_requests() as requests:
        again = cloudstore.sync(source, mirror, providers=providers)
    assert (again.copied, again.skipped) == (0, 6)
    assert [r.method for r in requests] == ["GET"], "one listing page, no HEAD"

    (source / "sub" / "same-size.bin").write_bytes(b"B" * 100)
    with sent_requests() as requests:
        changed = cloudstore.sync(source, mirror, providers=providers)
    assert (changed.copied, changed.skipped) == (1, 5)
    assert sorted(r.method for r in requests) == ["GET", "HEAD", "PUT"]
    assert s3_bucket.objects.get("mirror/sub/same-size.bin").read() == b"B" * 100  # type: ignore[union-attr]

    copy = f"aws://{s3_bucket.name}/copy/"
    assert cloudstore.sync(mirror, copy, providers=providers).copied == 6
    with sent_requests() as requests:
        between = cloudstore.sync(mirror, copy, providers=providers)
    assert (between.copied, between.skipped) == (0, 6)
    assert [r.method for r in requests] == ["GET", "GET"], "a listing of each side, no HEAD"


# --- credentials: HEAD's bare 403 and session tokens ----------------------------------------------
def _bad_credentials(kind: str, server: RunningServer, temp: dict[str, str]) -> dict[str, Any]:
    if kind == "wrong_secret":
        return {"aws_secret_key": server.config["aws_secret_key"] + "x"}
    if kind == "unknown_key":
        return {"aws_access_key": "AKUNKNOWN000000000000"}
    token = temp["aws_session_token"]
    return {**temp, "aws_session_token": token[:-6] + ("A" if token[-6] != "A" else "B") + token[-5:]}


@pytest.mark.parametrize("kind", ["wrong_secret", "unknown_key", "bad_token"])
def test_bare_403_on_head_is_an_authentication_error(
    kind: str, server: RunningServer, temp_credentials: dict[str, str], existing: tuple[str, str]
) -> None:
    bucket_name, key = existing
    provider = make_provider(server, **_bad_credentials(kind, server, temp_credentials))
    client = backend_of(provider).client  # type: ignore[attr-defined]
    head_codes: list[str] = []

    def record(parsed: dict[str, Any], **_: Any) -> None:
        head_codes.append(str(parsed.get("Error", {}).get("Code")))

    client.meta.events.register("after-call.s3.HeadBucket", record)
    client.meta.events.register("after-call.s3.HeadObject", record)
    bucket = Bucket(provider, BucketInfo(bucket_name))
    attempts: list[Callable[[], object]] = [
        lambda: provider.storage.buckets.get(bucket_name),
        lambda: provider.storage.buckets.get(unique_name("aws-nowhere")),
        lambda: bucket.objects.get(key),
        lambda: bucket.objects.get("absent.txt"),
        lambda: bucket.objects.list(),
    ]
    for attempt in attempts:
        with pytest.raises(AuthenticationException) as caught:
            attempt()
        assert caught.value.status == 403
        assert caught.value.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch")
    assert head_codes and set(head_codes) == {"403"}, "the HEADs got a bare 403 with no error code"


def test_session_token_provider_does_every_operation(
    server: RunningServer, temp_credentials: dict[str, str], tmp_path: Any
) -> None:
    provider = make_provider(server, **temp_credentials)
    client = backend_of(provider).client  # type: ignore[attr-defined]
    name = unique_name("aws-sts")
    with client_requests(client) as requests, sent_requests() as lean:
        bucket = provider.storage.buckets.create(name)
        try:
            assert provider.storage.buckets.get(name) is not None
            assert name in [b.name for b in provider.storage.buckets]
            small = bucket.objects.create("small.txt")
            small.upload(b"hello token", content_type="text/plain", metadata={"via": "sts"})
            got = bucket.objects.get("small.txt")
            assert got is not None and got.metadata == {"via": "sts"} and got.read() == b"hello token"
            assert got.read(6, 10) == b"token"
            big = os.urandom(6 * MiB + 123)
            bucket.objects.create("big.bin").upload(big)
            target = tmp_path / "big.out"
            bucket.objects.get("big.bin").download_to_file(target)  # type: ignore[union-attr]
            assert target.read_bytes() == big
            got.copy_to(bucket, "copy.txt")
            assert bucket.objects.get("copy.txt").read() == b"hello token"  # type: ignore[union-attr]
            assert sorted(o.name for o in bucket.objects) == ["big.bin", "copy.txt", "small.txt"]

            url = got.generate_url(expires_in=120)
            assert query_of(url)["X-Amz-Security-Token"] == temp_credentials["aws_session_token"]
            assert http(url) == (200, b"hello token")
            put_url = bucket.objects.create("via-url.txt").generate_url(expires_in=120, writable=True)
            assert "X-Amz-Security-Token" in query_of(put_url)
            assert http(put_url, "PUT", b"uploaded with a url")[0] == 200
            assert bucket.objects.get("via-url.txt").read() == b"uploaded with a url"  # type: ignore[union-attr]
            # The token is part of the signature: a URL with another token is refused.
            forged = put_url.replace("X-Amz-Security-Token=", "X-Amz-Security-Token=A")
            assert http(forged, "PUT", b"forged")[0] == 403
            got.delete()
            assert bucket.objects.get("small.txt") is None
        finally:
            bucket.delete(delete_contents=True)
    assert provider.storage.buckets.get(name) is None
    assert requests and all("X-Amz-Security-Token" in r.headers for r in requests)
    token = temp_credentials["aws_session_token"]
    assert lean and all(r.headers["x-amz-security-token"] == token for r in lean), "the lean path's too"


def test_wrong_session_token_raises_authentication_error(
    server: RunningServer, temp_credentials: dict[str, str]
) -> None:
    provider = make_provider(server, **_bad_credentials("bad_token", server, temp_credentials))
    with pytest.raises(AuthenticationException):
        list(provider.storage.buckets)
    with pytest.raises(AuthenticationException):
        provider.storage.buckets.create(unique_name("aws-denied"))


# --- signed URLs ----------------------------------------------------------------------------------
def test_signed_get_url_is_sigv4_and_works_with_urllib(s3_bucket: Bucket) -> None:
    obj = s3_bucket.objects.create("shared file.txt")
    obj.upload(b"shared content")
    url = obj.generate_url(expires_in=300)
    query = query_of(url)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "300"
    assert "AWSAccessKeyId" not in query and "Signature" not in query, "not SigV2"
    assert http(url) == (200, b"shared content")
    signature = query["X-Amz-Signature"]
    tampered = url.replace(signature, signature[:-1] + ("0" if signature[-1] != "0" else "1"))
    assert http(tampered)[0] == 403


def test_writable_url_uploads_but_cannot_read(s3_bucket: Bucket) -> None:
    obj = s3_bucket.objects.create("upload-here.bin")
    url = obj.generate_url(expires_in=300, writable=True)
    assert query_of(url)["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert http(url, "PUT", b"from a stranger")[0] == 200
    assert s3_bucket.objects.get("upload-here.bin").read() == b"from a stranger"  # type: ignore[union-attr]
    status, _ = http(url)
    assert status == 403, "a PUT URL must not grant read"


def test_url_expiry_is_limited_to_seven_days(s3_bucket: Bucket) -> None:
    obj = s3_bucket.objects.create("week.txt")
    obj.upload(b"week")
    seven_days = 7 * 24 * 3600
    assert query_of(obj.generate_url(expires_in=seven_days))["X-Amz-Expires"] == str(seven_days)
    with pytest.raises(InvalidParamException):
        obj.generate_url(expires_in=seven_days + 1)
    with pytest.raises(InvalidParamException):
        obj.generate_url(expires_in=seven_days + 1, writable=True)


def test_expired_url_is_refused(s3_bucket: Bucket) -> None:
    obj = s3_bucket.objects.create("brief.txt")
    obj.upload(b"brief")
    url = obj.generate_url(expires_in=1)
    deadline = time.monotonic() + 10
    status, body = http(url)
    while status == 200 and time.monotonic() < deadline:
        time.sleep(0.5)
        status, body = http(url)
    assert status == 403 and b"expired" in body.lower()


# --- errors -----------------------------------------------------------------------------------------
CODE_TABLE: list[tuple[str | None, int, type[CloudStoreException]]] = [
    ("NoSuchBucket", 404, NotFoundException),
    ("NoSuchKey", 404, NotFoundException),
    ("NoSuchUpload", 404, NotFoundException),
    (None, 404, NotFoundException),
    ("AccessDenied", 403, PermissionDeniedException),
    ("403", 403, PermissionDeniedException),
    ("InvalidAccessKeyId", 403, AuthenticationException),
    ("SignatureDoesNotMatch", 403, AuthenticationException),
    ("ExpiredToken", 400, AuthenticationException),
    ("InvalidToken", 400, AuthenticationException),
    ("RequestTimeTooSkewed", 403, AuthenticationException),
    (None, 401, AuthenticationException),
    ("SlowDown", 503, ThrottledException),
    ("ServiceUnavailable", 503, ThrottledException),
    ("TooManyRequests", 429, ThrottledException),
    ("BucketNotEmpty", 409, PreconditionFailedException),
    ("PreconditionFailed", 412, PreconditionFailedException),
    ("BucketAlreadyOwnedByYou", 409, DuplicateResourceException),
    ("BucketAlreadyExists", 409, DuplicateResourceException),
    ("InvalidBucketName", 400, InvalidNameException),
    ("KeyTooLongError", 400, InvalidNameException),
    ("EntityTooSmall", 400, InvalidParamException),
    ("InvalidArgument", 400, InvalidParamException),
    ("InvalidRange", 416, InvalidParamException),
    ("InvalidPart", 400, InvalidParamException),
    ("BadDigest", 400, ChecksumMismatchException),
    ("InvalidDigest", 400, ChecksumMismatchException),
    ("XAmzContentSHA256Mismatch", 400, ChecksumMismatchException),
    ("NotImplemented", 501, NotSupportedException),
    ("InternalError", 500, ProviderConnectionException),
    ("RequestTimeout", 400, ProviderConnectionException),
    (None, 408, ProviderConnectionException),
    (None, 502, ProviderConnectionException),
    (None, 504, ProviderConnectionException),
    ("SomethingNew", 500, ProviderConnectionException),
    ("SomethingNew", 418, InvalidParamException),
    # No code of S3's: the shared status table decides.
    ("404", 404, NotFoundException),
    ("503", 503, ThrottledException),
    (None, 405, NotSupportedException),
    (None, 409, PreconditionFailedException),
    (None, 410, NotFoundException),
    (None, 413, InvalidParamException),
    (None, 501, NotSupportedException),
]


@pytest.mark.parametrize(("code", "status", "expected"), CODE_TABLE)
def test_s3_error_codes_map_onto_the_exception_tree(
    aws: CloudProvider, code: str | None, status: int, expected: type[CloudStoreException]
) -> None:
    mapped = backend_of(aws).map_error(client_error(code, status))
    assert type(mapped) is expected
    assert mapped.status == status
    assert mapped.code == code
    # A refused digest means a body damaged on the way: the same upload is tried again.
    retryable = expected in (ThrottledException, ProviderConnectionException, ChecksumMismatchException)
    assert mapped.retryable is retryable


def test_a_client_error_without_a_status_is_a_retryable_connection_error(aws: CloudProvider) -> None:
    error = boto_errors.ClientError({"Error": {"Message": "no answer"}}, "PutObject")
    mapped = backend_of(aws).map_error(error)
    assert type(mapped) is ProviderConnectionException and mapped.retryable


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (boto_errors.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), ProviderConnectionException),
        (boto_errors.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"), ProviderConnectionException),
        (boto_errors.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), ProviderConnectionException),
        (boto_errors.ConnectTimeoutError(endpoint_url="http://127.0.0.1:1"), ProviderConnectionException),
        (boto_errors.ProxyConnectionError(proxy_url="http://127.0.0.1:2"), ProviderConnectionException),
        (boto_errors.SSLError(endpoint_url="https://127.0.0.1:1", error=Exception("bad")), ProviderConnectionException),
        (boto_errors.ResponseStreamingError(error="reset"), ProviderConnectionException),
        (boto_errors.IncompleteReadError(actual_bytes=1, expected_bytes=2), ProviderConnectionException),
        (boto_errors.NoCredentialsError(), AuthenticationException),
        (boto_errors.PartialCredentialsError(provider="env", cred_var="secret"), AuthenticationException),
        (boto_errors.ParamValidationError(report="bad"), InvalidParamException),
        (boto_errors.FlexibleChecksumError(error_msg="crc32 mismatch"), ChecksumMismatchException),
    ],
)
def test_botocore_errors_map_onto_the_exception_tree(
    aws: CloudProvider, error: Exception, expected: type[CloudStoreException]
) -> None:
    mapped = backend_of(aws).map_error(error)
    assert type(mapped) is expected
    assert mapped.retryable is (expected in (ProviderConnectionException, ChecksumMismatchException))
    assert backend_of(aws).map_error(ValueError("not ours")) is None


def test_real_server_errors(aws: CloudProvider, s3_bucket: Bucket) -> None:
    backend = backend_of(aws)
    with pytest.raises(NotFoundException) as missing_bucket:
        Bucket(aws, BucketInfo(unique_name("aws-gone"))).objects.list()
    assert missing_bucket.value.code == "NoSuchBucket"
    with pytest.raises(DuplicateResourceException) as duplicate:
        aws.storage.buckets.create(s3_bucket.name)
    assert duplicate.value.code in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
    s3_bucket.objects.create("keep").upload(b"keep")
    with pytest.raises(PreconditionFailedException) as not_empty:
        s3_bucket.delete()
    assert not_empty.value.code == "BucketNotEmpty"
    with pytest.raises(InvalidNameException) as bad_name:
        call_through(aws, lambda: backend.create_bucket("Not_Valid", None))  # past the client-side check
    assert bad_name.value.code == "InvalidBucketName"
    with pytest.raises(NotFoundException) as missing_key:
        call_through(aws, lambda: backend.get_object(s3_bucket.name, "nothing-here"))
    assert missing_key.value.code == "NoSuchKey"
    with pytest.raises(NotFoundException):
        s3_bucket.objects.create("nothing-here").delete()
    client = backend.client  # type: ignore[attr-defined]
    with pytest.raises(PreconditionFailedException):
        call_through(aws, lambda: client.get_object(Bucket=s3_bucket.name, Key="keep", IfMatch='"0000"'))
    upload = backend.create_multipart_upload(s3_bucket.name, "tiny-parts", None, {})
    parts = [backend.upload_part(upload, 1, 0, b"a"), backend.upload_part(upload, 2, 1, b"b")]
    with pytest.raises(InvalidParamException) as too_small:
        call_through(aws, lambda: backend.complete_multipart_upload(upload, parts))
    assert too_small.value.code == "EntityTooSmall"
    backend.abort_multipart_upload(upload)


@pytest.mark.parametrize(
    ("fault", "expected", "code"),
    [
        ("503", ThrottledException, "ServiceUnavailable"),
        ("slowdown", ThrottledException, "SlowDown"),
        ("500", ProviderConnectionException, "InternalError"),
        ("reset", ProviderConnectionException, None),
    ],
)
def test_transient_faults_map_and_are_retried(
    server: RunningServer, s3_bucket: Bucket, fault: str, expected: type[CloudStoreException], code: str | None
) -> None:
    s3_bucket.objects.create("steady.txt").upload(b"steady")
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"]), reset_at="before") as proxy:
        once = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=ONE_TRY)
        proxy.add_rule(fault, methods=["GET"], limit=1)
        with pytest.raises(expected) as caught:
            Bucket(once, BucketInfo(s3_bucket.name)).objects.list()
        assert caught.value.code == code
        assert caught.value.retryable
        patient = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=RetryPolicy(initial_backoff=0.01))
        proxy.add_rule(fault, methods=["GET"], limit=2)
        assert Bucket(patient, BucketInfo(s3_bucket.name)).objects.get("steady.txt").read() == b"steady"  # type: ignore[union-attr]
        assert proxy.stats[fault] >= 3


def test_200_with_an_error_body_is_a_retried_server_error(server: RunningServer, s3_bucket: Bucket) -> None:
    data = os.urandom(6 * MiB + 10)  # above the tests' 6 MiB threshold: a multipart upload
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        # CompleteMultipartUpload may answer "200 OK" and an <Error> body: S3's way of failing late.
        proxy.add_rule("error200", methods=["POST"], path=r"uploadId=", limit=1)
        once = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=ONE_TRY)
        with pytest.raises(ProviderConnectionException) as caught:
            Bucket(once, BucketInfo(s3_bucket.name)).objects.create("late.bin").upload(data)
        assert caught.value.code == "InternalError" and caught.value.retryable
        proxy.add_rule("error200", methods=["POST"], path=r"uploadId=", limit=1)
        patient = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=RetryPolicy(initial_backoff=0.01))
        Bucket(patient, BucketInfo(s3_bucket.name)).objects.create("late.bin").upload(data)
        assert proxy.stats["error200"] == 2
    assert s3_bucket.objects.get("late.bin").read() == data  # type: ignore[union-attr]


# --- multipart ----------------------------------------------------------------------------------------
def test_multipart_primitives(aws: CloudProvider, s3_bucket: Bucket, admin: Any) -> None:
    backend = backend_of(aws)
    first, last = os.urandom(5 * MiB), b"the tail"
    upload = backend.create_multipart_upload(s3_bucket.name, "parts.bin", "application/x-test", {"kind": "parts"})
    parts = [backend.upload_part(upload, 2, len(first), last), backend.upload_part(upload, 1, 0, first)]
    backend.complete_multipart_upload(upload, sorted(parts, key=lambda p: p.number))
    info = backend.head_object(s3_bucket.name, "parts.bin")
    assert info is not None and info.size == len(first) + len(last)
    assert info.etag is not None and info.etag.endswith("-2")
    assert info.checksum is None, "a multipart ETag is not an MD5 of the content"
    assert info.content_type == "application/x-test" and info.metadata == {"kind": "parts"}
    got = s3_bucket.objects.get("parts.bin")
    assert got is not None and got.read() == first + last

    aborted = backend.create_multipart_upload(s3_bucket.name, "abandoned.bin", None, {})
    backend.upload_part(aborted, 1, 0, b"partial")
    backend.abort_multipart_upload(aborted)
    backend.abort_multipart_upload(aborted)  # twice is harmless (a retry whose first answer was lost)
    assert admin.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
    assert backend.head_object(s3_bucket.name, "abandoned.bin") is None


def test_a_multipart_upload_failing_part_way_is_aborted(server: RunningServer, s3_bucket: Bucket, admin: Any) -> None:
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        proxy.add_rule("status", methods=["PUT"], path=r"partNumber=2(&|$)", status=403, code="AccessDenied")
        provider = make_provider(server, s3_endpoint_url=proxy.url)
        obj = Bucket(provider, BucketInfo(s3_bucket.name)).objects.create("doomed.bin")
        with pytest.raises(PermissionDeniedException):
            obj.upload(os.urandom(12 * MiB))
        assert proxy.count_requests("DELETE", r"uploadId=") == 1, "the engine aborted the upload"
    assert admin.list_multipart_uploads(Bucket=s3_bucket.name).get("Uploads", []) == []
    assert s3_bucket.objects.get("doomed.bin") is None
    assert [o.name for o in s3_bucket.objects] == []


# --- docs -------------------------------------------------------------------------------------------
def test_docs_page_examples_run_against_seaweedfs(
    server: RunningServer, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_docs import run_page, sandbox

    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "AWS_ACCESS_KEY_ID": server.extra["admin_access_key"],
        "AWS_SECRET_ACCESS_KEY": server.extra["admin_secret_key"],
        "AWS_ENDPOINT_URL": server.extra["endpoint_url"],
        "AWS_DEFAULT_REGION": server.extra["region"],
        "AWS_ROLE_ARN": server.extra["role_arn"],
    }
    with sandbox(home, env):
        namespace = run_page("aws.rst")
    assert namespace["provider"].storage.buckets.get("reports") is None  # the page cleans up


# --- integrity: what is checked on the way up and down ------------------------------------------------
def open_uploads(admin: Any, bucket: str) -> list[dict[str, Any]]:
    return list(admin.list_multipart_uploads(Bucket=bucket).get("Uploads", []))


def part_md5s_etag(*parts: bytes) -> str:
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


def test_every_part_carries_its_content_md5_and_the_switch_turns_it_off(
    server: RunningServer, s3_bucket: Bucket
) -> None:
    data = os.urandom(11 * MiB)
    for switch, sent in ((None, True), (True, True), (False, False), ("false", False)):
        provider = make_provider(server, s3_content_md5=switch)
        bucket = Bucket(provider, BucketInfo(s3_bucket.name))
        with sent_requests() as requests:
            bucket.objects.create("small.bin").upload(data[:1000])
            bucket.objects.create("parts.bin").upload(data)
        bodies = [r for r in requests if r.method == "PUT"]
        assert len(bodies) == 1 + 3, "one PutObject, three UploadParts"
        for request in bodies:
            if sent:
                assert request.headers["content-md5"] == base64.b64encode(hashlib.md5(request.body).digest()).decode()
            else:
                assert "content-md5" not in request.headers
        assert bucket.objects.get("parts.bin").read() == data  # type: ignore[union-attr]


def test_the_server_refuses_a_wrong_content_md5_and_stores_nothing(
    server: RunningServer, s3_bucket: Bucket, admin: Any
) -> None:
    provider = make_provider(server, retry_policy=ONE_TRY)
    backend = backend_of(provider)
    data = os.urandom(1000)
    wrong = hashlib.md5(b"something else").digest()
    with pytest.raises(ChecksumMismatchException) as caught:
        call_through(
            provider,
            lambda: backend.put_object(s3_bucket.name, "wrong.bin", data, None, {}, content_md5=wrong),
        )
    assert caught.value.code == "BadDigest" and caught.value.retryable
    assert backend.head_object(s3_bucket.name, "wrong.bin") is None

    upload = backend.create_multipart_upload(s3_bucket.name, "wrong-part.bin", None, {})
    with pytest.raises(ChecksumMismatchException) as caught:
        call_through(provider, lambda: backend.upload_part(upload, 1, 0, data, content_md5=wrong))
    assert caught.value.code == "BadDigest" and caught.value.retryable
    listed = admin.list_parts(Bucket=s3_bucket.name, Key="wrong-part.bin", UploadId=upload.upload_id)  # type: ignore[attr-defined]
    assert listed.get("Parts", []) == [], "the refused part is not kept"
    backend.abort_multipart_upload(upload)


@pytest.mark.parametrize(("operation", "size"), [("PutObject", 64 * 1024), ("UploadPart", 11 * MiB)])
def test_a_body_damaged_on_the_way_up_is_refused_and_sent_again(
    server: RunningServer, s3_bucket: Bucket, admin: Any, operation: str, size: int
) -> None:
    data = os.urandom(size)
    # The proxy flips one byte of the request body after the client computed its Content-MD5.
    target = r"damaged\.bin$" if operation == "PutObject" else r"partNumber="
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        proxy.add_rule("flip_request", methods=["PUT"], path=target, limit=1)
        once = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=ONE_TRY)
        with pytest.raises(ChecksumMismatchException):
            Bucket(once, BucketInfo(s3_bucket.name)).objects.create("damaged.bin").upload(data)
        assert s3_bucket.objects.get("damaged.bin") is None, "nothing corrupt is stored"
        assert open_uploads(admin, s3_bucket.name) == []

        proxy.add_rule("flip_request", methods=["PUT"], path=target, limit=1)
        proxy.reset_stats()
        patient = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=RetryPolicy(initial_backoff=0.01))
        Bucket(patient, BucketInfo(s3_bucket.name)).objects.create("damaged.bin").upload(data)
        assert proxy.stats["flip_request"] == 1
        sent = proxy.count_requests("PUT")
    assert sent == (2 if operation == "PutObject" else 3 + 1), "the damaged request alone is sent again"
    assert s3_bucket.objects.get("damaged.bin").read() == data  # type: ignore[union-attr]


def test_a_multipart_object_is_verified_on_download(aws: CloudProvider, s3_bucket: Bucket, admin: Any) -> None:
    first, second, tail = os.urandom(5 * MiB), os.urandom(5 * MiB), os.urandom(MiB)
    obj = s3_bucket.objects.create("parts.bin")
    obj.upload(first + second + tail, metadata={"kind": "weights"})
    stored = admin.head_object(Bucket=s3_bucket.name, Key="parts.bin")
    # Measured on SeaweedFS: the multipart ETag is S3's, the MD5 of the parts' MD5s and their count.
    assert stored["ETag"].strip('"') == part_md5s_etag(first, second, tail)
    # Uploaded from bytes: the layout carries the whole object's CRC32C too.
    crc = f"{google_crc32c.value(first + second + tail):08x}"
    assert stored["Metadata"] == {"kind": "weights", "cloudstore-part-layout": f"{5 * MiB},0,{crc}"}
    info = backend_of(aws).head_object(s3_bucket.name, "parts.bin")
    assert info is not None
    assert info.checksum == Checksum("md5-of-parts", part_md5s_etag(first, second, tail), (5 * MiB, 5 * MiB, MiB))
    assert expected_checksum(info) == Checksum("crc32c", crc), "downloads check the cheaper CRC32C"
    got = s3_bucket.objects.get("parts.bin")
    assert got is not None and got.metadata == {"kind": "weights"}, "the layout is no user metadata"


def test_a_flipped_byte_in_a_multipart_download_is_fetched_again_once(
    server: RunningServer, s3_bucket: Bucket, tmp_path: Any
) -> None:
    data = os.urandom(11 * MiB)
    s3_bucket.objects.create("parts.bin").upload(data)
    target = tmp_path / "out" / "parts.bin"
    target.parent.mkdir()
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        provider = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=ONE_TRY)
        obj = Bucket(provider, BucketInfo(s3_bucket.name)).objects.create("parts.bin")
        obj.download_to_file(target)
        assert target.read_bytes() == data
        gets = proxy.count_requests("GET", r"/parts\.bin")
        assert gets >= 3, "ranged GETs, one per part"
        target.unlink()

        proxy.reset_stats()
        proxy.add_rule("flip", methods=["GET"], path=r"/parts\.bin", limit=1)
        obj.download_to_file(target)
        assert target.read_bytes() == data
        assert proxy.stats["flip"] == 1 and proxy.count_requests("GET", r"/parts\.bin") == 2 * gets
        target.unlink()

        proxy.reset_stats()
        proxy.add_rule("flip", methods=["GET"], path=r"/parts\.bin")
        with pytest.raises(ChecksumMismatchException):
            obj.download_to_file(target)
        assert proxy.count_requests("GET", r"/parts\.bin") == 2 * gets, "one more try, then the error"
        assert list(target.parent.iterdir()) == [], "no file, no temporary file"
        with pytest.raises(ChecksumMismatchException):
            obj.read()


def test_complete_checks_the_assembled_object_against_the_parts_sent(aws: CloudProvider, s3_bucket: Bucket) -> None:
    backend = backend_of(aws)
    first, tail = os.urandom(5 * MiB), b"the tail"
    client = backend.client  # type: ignore[attr-defined]

    def other_parts(parsed: dict[str, Any], **_: Any) -> None:
        parsed["ETag"] = f'"{part_md5s_etag(tail, first)}"'  # the server assembled something else

    client.meta.events.register("after-call.s3.CompleteMultipartUpload", other_parts)
    try:
        upload = backend.create_multipart_upload(s3_bucket.name, "assembled.bin", None, {})
        parts = [backend.upload_part(upload, 1, 0, first), backend.upload_part(upload, 2, len(first), tail)]
        with pytest.raises(ChecksumMismatchException) as caught:
            call_through(aws, lambda: backend.complete_multipart_upload(upload, parts))
        assert not caught.value.retryable
    finally:
        client.meta.events.unregister("after-call.s3.CompleteMultipartUpload", other_parts)
    # Unchanged, the server's answer is the composite of the parts sent.
    upload = backend.create_multipart_upload(s3_bucket.name, "assembled.bin", None, {})
    parts = [backend.upload_part(upload, 1, 0, first), backend.upload_part(upload, 2, len(first), tail)]
    backend.complete_multipart_upload(upload, parts)
    assert s3_bucket.objects.get("assembled.bin").etag == part_md5s_etag(first, tail)  # type: ignore[union-attr]


# --- no orphans, bounded waits, one retry per fault ---------------------------------------------------
def test_a_lost_answer_to_create_multipart_upload_leaves_no_second_upload(
    server: RunningServer, s3_bucket: Bucket, admin: Any
) -> None:
    data = os.urandom(11 * MiB)
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        # The server starts the upload; its answer is cut off on the way back.
        proxy.add_rule("reset", methods=["POST"], path=r"\?uploads", reset_at="mid", limit=1)
        provider = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=RetryPolicy(initial_backoff=0.01))
        in_flight: list[int] = []

        def count_uploads(request: SentRequest) -> None:
            if "partNumber=" in request.url:
                in_flight.append(len(open_uploads(admin, s3_bucket.name)))

        with observing(count_uploads):
            Bucket(provider, BucketInfo(s3_bucket.name)).objects.create("big.bin").upload(data)
        assert proxy.stats["reset"] == 1
        assert proxy.count_requests("POST", r"\?uploads") == 2
    assert in_flight and set(in_flight) == {1}, "the first attempt's upload was aborted before any part"
    assert open_uploads(admin, s3_bucket.name) == []
    assert s3_bucket.objects.get("big.bin").read() == data  # type: ignore[union-attr]


def test_abort_orphan_uploads_aborts_only_the_same_keys_other_recent_uploads(
    aws: CloudProvider, s3_bucket: Bucket, admin: Any
) -> None:
    backend = backend_of(aws)
    before = datetime.now(UTC) - timedelta(minutes=1)
    lost = [backend.create_multipart_upload(s3_bucket.name, "key", None, {}) for _ in range(2)]
    ours = backend.create_multipart_upload(s3_bucket.name, "key", None, {})
    longer = backend.create_multipart_upload(s3_bucket.name, "key-longer", None, {})
    backend.abort_orphan_uploads(ours, datetime.now(UTC) + timedelta(minutes=1))
    assert len(open_uploads(admin, s3_bucket.name)) == 4, "nothing started since a later moment"
    backend.abort_orphan_uploads(ours, before)
    left = {(u["Key"], u["UploadId"]) for u in open_uploads(admin, s3_bucket.name)}
    assert left == {("key", ours.upload_id), ("key-longer", longer.upload_id)}  # type: ignore[attr-defined]
    assert all(u.upload_id not in {i for _, i in left} for u in lost)  # type: ignore[attr-defined]


def test_timeouts_reach_the_client(server: RunningServer) -> None:
    config: Any = backend_of(make_provider(server)).client.meta.config  # type: ignore[attr-defined]
    assert (config.connect_timeout, config.read_timeout) == (10.0, 60.0)
    tuned = make_provider(server, connect_timeout=2, read_timeout=7.5, retry_policy=RetryPolicy(deadline=30))
    config = backend_of(tuned).client.meta.config  # type: ignore[attr-defined]
    assert (config.connect_timeout, config.read_timeout) == (2.0, 7.5)
    short = make_provider(server, retry_policy=RetryPolicy(deadline=20))
    assert backend_of(short).client.meta.config.read_timeout == 10.0, "half the deadline"  # type: ignore[attr-defined]


def test_a_stalled_answer_is_abandoned_and_tried_again(server: RunningServer, s3_bucket: Bucket) -> None:
    s3_bucket.objects.create("slow.txt").upload(b"worth the wait")
    # A read timeout ample for a healthy loopback answer on a loaded machine, the stall well past it.
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"]), stall_seconds=8) as proxy:
        proxy.add_rule("stall", methods=["GET"], path=r"/slow\.txt", limit=1)
        provider = make_provider(
            server, s3_endpoint_url=proxy.url, read_timeout=2, retry_policy=RetryPolicy(initial_backoff=0.01)
        )
        assert Bucket(provider, BucketInfo(s3_bucket.name)).objects.create("slow.txt").read() == b"worth the wait"
        assert proxy.stats["stall"] == 1 and proxy.count_requests("GET", r"/slow\.txt") == 2


def test_a_server_that_stops_answering_fails_within_the_deadline(server: RunningServer, s3_bucket: Bucket) -> None:
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"]), stall_seconds=10) as proxy:
        proxy.add_rule("stall")
        policy = RetryPolicy(initial_backoff=0.01, deadline=2)
        provider = make_provider(server, s3_endpoint_url=proxy.url, read_timeout=0.5, retry_policy=policy)
        with pytest.raises(ProviderConnectionException):
            Bucket(provider, BucketInfo(s3_bucket.name)).objects.list()
        assert proxy.stats["stall"] >= 2, "stalled attempts were abandoned and tried again"


def test_one_injected_503_costs_exactly_one_more_request(server: RunningServer, s3_bucket: Bucket) -> None:
    data = os.urandom(11 * MiB)
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        provider = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=RetryPolicy(initial_backoff=0.01))
        bucket = Bucket(provider, BucketInfo(s3_bucket.name))
        proxy.add_rule("503", methods=["PUT"], path=r"/small\.bin", limit=1)
        bucket.objects.create("small.bin").upload(b"small")
        assert proxy.count_requests("PUT", r"/small\.bin") == 2
        proxy.add_rule("503", methods=["PUT"], path=r"partNumber=2(&|$)", limit=1)
        bucket.objects.create("big.bin").upload(data)
        assert proxy.count_requests("PUT", r"partNumber=2(&|$)") == 2
        assert proxy.count_requests("PUT", r"/big\.bin\?") == 3 + 1


def test_copy_onto_itself_keeps_content_type_and_metadata(aws: CloudProvider, s3_bucket: Bucket) -> None:
    data = os.urandom(11 * MiB)
    obj = s3_bucket.objects.create("self.bin")
    obj.upload(data, content_type="application/x-weights", metadata={"epoch": "3"})
    copied = obj.copy_to(s3_bucket)
    assert (copied.content_type, copied.metadata) == ("application/x-weights", {"epoch": "3"})
    assert copied.read() == data
    info = backend_of(aws).head_object(s3_bucket.name, "self.bin")
    assert info is not None and info.checksum is not None, "still verified on download"


def test_a_copy_in_parts_claims_no_checksum_seaweedfs_cannot_back(
    server: RunningServer, s3_bucket: Bucket, admin: Any
) -> None:
    provider, backend = spy_on(make_provider(server), max_copy_size=6 * MiB)
    data = os.urandom(13 * MiB)
    bucket = Bucket(provider, BucketInfo(s3_bucket.name))
    source = bucket.objects.create("source.bin")
    source.upload(data)
    copied = source.copy_to(bucket, "copy.bin")
    # Measured: UploadPartCopy's part ETags are "<hex>-2", no MD5s, so the object's ETag is no
    # MD5 of part MD5s; neither the layout nor a checksum is claimed for it.
    stored = admin.head_object(Bucket=s3_bucket.name, Key="copy.bin")
    assert stored["ETag"].strip('"').endswith("-3") and stored["Metadata"] == {}
    info = backend.head_object(s3_bucket.name, "copy.bin")
    assert info is not None and info.checksum is None
    assert copied.read() == data


# --- the lean request path ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "status", "code", "expected"),
    [
        ("GET", 503, "SlowDown", ThrottledException),
        ("PUT", 412, "PreconditionFailed", PreconditionFailedException),
        ("GET", 500, "InternalError", ProviderConnectionException),
        ("PUT", 400, "BadDigest", ChecksumMismatchException),
        ("GET", 403, "AccessDenied", PermissionDeniedException),
    ],
)
def test_lean_path_errors_map_as_boto3_errors_do(
    server: RunningServer, s3_bucket: Bucket, method: str, status: int, code: str, expected: type[Exception]
) -> None:
    s3_bucket.objects.create("there.bin").upload(b"data")
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        proxy.add_rule("status", methods=[method], path=r"there\.bin", status=status, code=code, limit=1)
        provider = make_provider(server, s3_endpoint_url=proxy.url, retry_policy=ONE_TRY)
        obj = Bucket(provider, BucketInfo(s3_bucket.name)).objects.create("there.bin")
        with pytest.raises(CloudStoreException) as caught:
            obj.upload(b"new") if method == "PUT" else obj.read()
    assert type(caught.value) is expected
    assert (caught.value.status, caught.value.code) == (status, code)
    same = S3Backend.map_error(None, client_error(code, status))  # type: ignore[arg-type]
    assert type(same) is expected and same.retryable == caught.value.retryable


def test_lean_path_tells_a_missing_key_from_a_missing_bucket(aws: CloudProvider, s3_bucket: Bucket) -> None:
    backend = backend_of(aws)
    with pytest.raises(NotFoundException) as caught:
        call_through(aws, lambda: backend.get_object(s3_bucket.name, "absent.bin"))
    assert caught.value.code == "NoSuchKey"
    with pytest.raises(NotFoundException) as caught:
        call_through(aws, lambda: backend.get_object(unique_name("aws-absent"), "absent.bin"))
    assert caught.value.code == "NoSuchBucket"
    assert backend.head_object(s3_bucket.name, "absent.bin") is None


def test_lean_path_keys_with_unusual_characters_round_trip(s3_bucket: Bucket) -> None:
    names = ["sp ace/+plus%25/ünï/🙂", "a?b#c&d=e", "tab\tand~tilde"]
    for name in names:
        s3_bucket.objects.create(name).upload(name.encode())
    assert sorted(o.name for o in s3_bucket.objects) == sorted(names), "listing keys come back decoded"
    for name in names:
        assert s3_bucket.objects.get(name).read() == name.encode()  # type: ignore[union-attr]
    assert s3_bucket.objects.list(prefix="sp ace/+plus%25/", delimiter="/").prefixes == ["sp ace/+plus%25/ünï/"]


def test_many_threads_share_a_bounded_number_of_connections(server: RunningServer, s3_bucket: Bucket) -> None:
    data = os.urandom(4096)
    with FaultProxy(upstream=("127.0.0.1", server.extra["port"])) as proxy:
        provider = make_provider(server, s3_endpoint_url=proxy.url)
        bucket = Bucket(provider, BucketInfo(s3_bucket.name))
        limit = backend_of(provider).settings.pool_size  # type: ignore[attr-defined]
        with ThreadPoolExecutor(limit + 16) as pool:
            list(pool.map(lambda n: bucket.objects.create(f"t/{n}").upload(data), range(4 * limit)))
            list(pool.map(lambda n: bucket.objects.create(f"t/{n}").read(), range(4 * limit)))
        assert proxy.stats["connections"] <= limit
        assert proxy.stats["requests"] == 8 * limit

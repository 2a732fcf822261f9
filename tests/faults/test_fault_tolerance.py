"""SPEC 6 under injected faults: the S3 provider through the fault proxy in front of SeaweedFS.

Bounded: a fixed number of transfers of small objects (a few multipart), loopback only.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudstore import (
    Bucket,
    ChecksumMismatchException,
    CloudProvider,
    PermissionDeniedException,
    RetryPolicy,
    TransferConfig,
)
from tests.conftest import make_provider, unique_name
from tests.faults.proxy import FaultProxy
from tests.servers.base import RunningServer

MiB = 1024 * 1024

#: Fast backoff so 200 transfers with faults stay within seconds.
FAST_RETRY = RetryPolicy(max_attempts=8, initial_backoff=0.01, max_backoff=0.2, deadline=60)


@pytest.fixture(scope="module")
def s3_server(servers) -> RunningServer:  # type: ignore[no-untyped-def]
    return servers.get("aws")  # type: ignore[no-any-return]


@pytest.fixture
def proxy(s3_server: RunningServer) -> Iterator[FaultProxy]:
    endpoint = s3_server.config["s3_endpoint_url"]
    port = int(endpoint.rsplit(":", 1)[1].strip("/"))
    with FaultProxy(("127.0.0.1", port), seed=1234, stall_seconds=0.5) as running:
        yield running


def _through(proxy: FaultProxy, server: RunningServer, **extra: object) -> CloudProvider:
    return make_provider(server, s3_endpoint_url=proxy.url, retry_policy=FAST_RETRY, **extra)


@pytest.fixture
def direct_bucket(s3_server: RunningServer) -> Iterator[Bucket]:
    provider = make_provider(s3_server)
    bucket = provider.storage.buckets.create(unique_name("faults"))
    yield bucket
    bucket.delete(delete_contents=True)


def _open_uploads(bucket: Bucket) -> list[dict[str, object]]:
    client = bucket.provider.backend.client  # type: ignore[attr-defined]
    return list(client.list_multipart_uploads(Bucket=bucket.name).get("Uploads", []))


def test_200_transfers_at_ten_percent_faults(
    proxy: FaultProxy, s3_server: RunningServer, direct_bucket: Bucket, tmp_path: Path
) -> None:
    provider = _through(proxy, s3_server)
    bucket = provider.storage.buckets.get(direct_bucket.name)
    assert bucket is not None
    proxy.set_rates({"reset": 0.04, "503": 0.03, "slowdown": 0.02, "stall": 0.01})
    # botocore checks CompleteMultipartUpload for the S3 "200 with an error body" case.
    proxy.add_rule("error200", 0.3, methods=["POST"], path="uploadId=")
    rng = random.Random(99)
    for i in range(100):
        size = rng.choice([0, 1, rng.randrange(2, 64 * 1024), rng.randrange(64 * 1024, 2 * MiB)])
        if i % 25 == 0:
            size = 11 * MiB + rng.randrange(1000)  # multipart with 5 MiB parts
        data = rng.randbytes(size)
        name = f"obj-{i:03d}"
        bucket.objects.create(name).upload(data)
        obj = bucket.objects.get(name)
        assert obj is not None and obj.size == size
        target = tmp_path / name
        obj.download_to_file(target)
        assert target.read_bytes() == data, f"{name}: bytes differ after a download through faults"
        target.unlink()
    stats = proxy.stats
    assert stats["faults"] >= 20, f"too few faults injected to prove anything: {dict(stats)}"
    assert stats["reset"] and stats["503"] and stats["slowdown"]
    assert _open_uploads(direct_bucket) == [], "an aborted or retried multipart upload left parts behind"
    assert len(list(direct_bucket.objects)) == 100


def test_permanent_403_fails_fast_with_one_attempt(
    proxy: FaultProxy, s3_server: RunningServer, direct_bucket: Bucket
) -> None:
    direct_bucket.objects.create("forbidden").upload(b"x")
    provider = _through(proxy, s3_server)
    proxy.add_rule("status", status=403, path="/forbidden")
    bucket = provider.storage.buckets.get(direct_bucket.name)
    assert bucket is not None
    with pytest.raises(PermissionDeniedException):
        bucket.objects.create("forbidden").read(0, 0)
    assert proxy.count_requests(path="/forbidden") == 1
    # A HEAD's bare 403 is followed by one GET that says why; neither is retried.
    with pytest.raises(PermissionDeniedException):
        bucket.objects.get("forbidden")
    assert proxy.count_requests("HEAD", "/forbidden") == 1
    assert proxy.count_requests(path="/forbidden") <= 3


def test_transient_errors_are_retried(proxy: FaultProxy, s3_server: RunningServer, direct_bucket: Bucket) -> None:
    direct_bucket.objects.create("flaky").upload(b"eventually")
    provider = _through(proxy, s3_server)
    proxy.add_rule("503", path="/flaky", limit=2)
    proxy.add_rule("slowdown", path="/flaky", limit=1)
    bucket = provider.storage.buckets.get(direct_bucket.name)
    assert bucket is not None
    assert bucket.objects.create("flaky").read() == b"eventually"
    # One GET (its response carries size and checksum): three faults, then success.
    assert proxy.stats["503"] == 2 and proxy.stats["slowdown"] == 1
    assert proxy.count_requests(path="/flaky") == 4


def test_flipped_byte_is_caught_and_leaves_no_file(
    proxy: FaultProxy, s3_server: RunningServer, direct_bucket: Bucket, tmp_path: Path
) -> None:
    data = os.urandom(300_000)
    direct_bucket.objects.create("flip-me").upload(data)
    provider = _through(proxy, s3_server)
    bucket = provider.storage.buckets.get(direct_bucket.name)
    assert bucket is not None
    obj = bucket.objects.get("flip-me")
    assert obj is not None
    proxy.add_rule("flip", methods=["GET"], path="/flip-me")
    target = tmp_path / "flipped.bin"
    with pytest.raises(ChecksumMismatchException):
        obj.download_to_file(target)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ChecksumMismatchException):
        obj.read()
    assert proxy.stats["flip"] >= 2


def test_failed_multipart_upload_is_aborted(proxy: FaultProxy, s3_server: RunningServer, direct_bucket: Bucket) -> None:
    provider = _through(
        proxy, s3_server, transfer_config=TransferConfig(threshold=5 * MiB, part_size=5 * MiB, max_concurrency=2)
    )
    proxy.add_rule("status", status=403, methods=["PUT"], path="[?&]partNumber=2(&|$)")
    bucket = provider.storage.buckets.get(direct_bucket.name)
    assert bucket is not None
    with pytest.raises(PermissionDeniedException):
        bucket.objects.create("half-done").upload(os.urandom(16 * MiB))
    assert direct_bucket.objects.get("half-done") is None
    assert _open_uploads(direct_bucket) == []
    assert proxy.count_requests("DELETE", "uploadId=") == 1

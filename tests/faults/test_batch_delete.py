"""Batch delete: the requests it takes, counted by the fault proxy (no fault injected), and its
per-item failures under injected faults."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from cloudstore import Bucket, RetryPolicy
from tests.conftest import Servers, make_provider, selected_providers, unique_name
from tests.faults.targets import TARGETS, FaultTarget
from tests.support.proxy import FaultProxy
from tests.support.servers.base import RunningServer

#: The most requests deleting ``n`` known names takes on each server.
REQUESTS_TO_DELETE: dict[str, Callable[[int], int]] = {
    # DeleteObjects, 1,000 keys a request.
    "aws": lambda n: math.ceil(n / 1000),
    # Blob Batch, 256 deletes a request.
    "azure": lambda n: math.ceil(n / 256),
    # Per batch of 1,000: a HEAD of the segments container (its large objects need delete_object
    # to take their segments too), then one bulk-delete.
    "openstack": lambda n: 2 * math.ceil(n / 1000),
    # fake-gcs-server has no batch endpoint: the batches tried before the first answer came back
    # (one per worker at most), then one DELETE per object. Real GCS takes 100 a batch.
    "gcp": lambda n: n + math.ceil(n / 100),
}

FAST = RetryPolicy(max_attempts=10, initial_backoff=0.01, max_backoff=0.1, deadline=20)


def _targets() -> list[str]:
    """The selected providers with a fault target (LOCAL makes no request to count)."""
    return [provider_id for provider_id in selected_providers() if provider_id in TARGETS]


@pytest.fixture(params=_targets())
def target_server(request: pytest.FixtureRequest, servers: Servers) -> tuple[FaultTarget, RunningServer]:
    return TARGETS[request.param], servers.get(request.param)


@pytest.fixture
def direct(target_server: tuple[FaultTarget, RunningServer]) -> Iterator[Bucket]:
    _, server = target_server
    bucket = make_provider(server).storage.buckets.create(unique_name("batch"))
    try:
        yield bucket
    finally:
        bucket.delete(delete_contents=True)


def populate(bucket: Bucket, names: list[str]) -> None:
    with ThreadPoolExecutor(32) as pool:
        list(pool.map(lambda name: bucket.objects.create(name).upload(b"x"), names))


def through(
    target: FaultTarget, server: RunningServer, proxy: FaultProxy, name: str, policy: RetryPolicy = FAST
) -> Bucket:
    bucket = target.through(server, proxy, retry_policy=policy).storage.buckets.get(name)
    assert bucket is not None
    return bucket


def test_delete_many_takes_one_request_per_batch(
    target_server: tuple[FaultTarget, RunningServer], direct: Bucket
) -> None:
    target, server = target_server
    names = [f"k/{i:04d}" for i in range(600)]
    populate(direct, names)
    with target.proxy(server) as proxy:
        # The default policy: its 60 s read timeout outlasts a batch on a busy machine (Swift's
        # bulk-delete of 600 took over FAST's 10 s here), so no request is sent twice.
        bucket = through(target, server, proxy, direct.name, RetryPolicy())
        proxy.reset_stats()
        started = time.monotonic()
        report = bucket.objects.delete_many(names)
        took = time.monotonic() - started
        sent = len(proxy.requests)
    assert report.ok and report.deleted == len(names), report.failed
    assert list(direct.objects) == []
    assert sent <= REQUESTS_TO_DELETE[server.name](len(names)), f"{sent} requests in {took:.1f} s"


@pytest.mark.parametrize("provider_id", [p for p in selected_providers() if p == "aws"])
def test_ten_thousand_keys_on_s3_take_at_most_eleven_requests(servers: Servers, provider_id: str) -> None:
    server = servers.get(provider_id)
    target = TARGETS[provider_id]
    direct = make_provider(server).storage.buckets.create(unique_name("batch"))
    try:
        names = [f"many/{i:05d}" for i in range(10_000)]
        populate(direct, names)
        with target.proxy(server) as proxy:
            # The default policy: its 60 s read timeout outlasts SeaweedFS's ~1.2 s per 1,000 keys
            # times the batches it runs at once (FAST's 10 s does not on a busy machine).
            bucket = through(target, server, proxy, direct.name, RetryPolicy())
            proxy.reset_stats()
            report = bucket.objects.delete_many(names)
            sent = len(proxy.requests)
        assert report.ok and report.deleted == 10_000, report.failed
        assert sent <= 11
        assert direct.objects.list(limit=1) == []
    finally:
        direct.delete(delete_contents=True)


def test_passing_errors_are_retried(target_server: tuple[FaultTarget, RunningServer], direct: Bucket) -> None:
    target, server = target_server
    names = [f"k/{i:04d}" for i in range(30)]
    populate(direct, names)
    with target.proxy(server, seed=7) as proxy:
        bucket = through(target, server, proxy, direct.name)
        proxy.set_rates({"503": 0.2})
        report = bucket.objects.delete_many(names)
    assert report.ok and report.deleted == len(names), report.failed
    assert list(direct.objects) == []


def test_refused_deletes_are_reported_not_raised(
    target_server: tuple[FaultTarget, RunningServer], direct: Bucket
) -> None:
    target, server = target_server
    names = [f"k/{i:04d}" for i in range(5)]
    populate(direct, names)
    with target.proxy(server) as proxy:
        bucket = through(target, server, proxy, direct.name)
        proxy.add_rule("status", status=403)
        report = bucket.objects.delete_many(names)
    assert report.deleted == 0
    assert sorted(f.name for f in report.failed) == names
    assert all(f.reason.startswith("PermissionDeniedException") for f in report.failed), report.failed
    assert len(list(direct.objects)) == len(names)

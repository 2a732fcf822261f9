"""``cloudstore serve`` behind the fault proxy: clients that break off mid-transfer never leave
a partial object, and the server keeps serving.

Bounded: 60 PUTs and 60 GETs of small bodies on loopback.
"""

from __future__ import annotations

import os
import random
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudstore import Bucket, CloudProvider
from tests.conftest import make_provider, unique_name
from tests.faults.proxy import FaultProxy
from tests.servers.base import RunningServer


@pytest.fixture(scope="module")
def local_server(servers) -> RunningServer:  # type: ignore[no-untyped-def]
    return servers.get("local")  # type: ignore[no-any-return]


@pytest.fixture
def proxied(local_server: RunningServer) -> Iterator[tuple[CloudProvider, FaultProxy]]:
    with FaultProxy(("127.0.0.1", local_server.extra["port"]), seed=4321) as proxy:
        yield make_provider(local_server, local_url=proxy.url), proxy


@pytest.fixture
def bucket_behind_proxy(proxied: tuple[CloudProvider, FaultProxy]) -> Iterator[Bucket]:
    provider, _ = proxied
    bucket = provider.storage.buckets.create(unique_name("serve"))
    yield bucket
    bucket.delete(delete_contents=True)


def _send(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status, response.read()


def test_interrupted_signed_puts_leave_whole_objects_or_nothing(
    proxied: tuple[CloudProvider, FaultProxy], bucket_behind_proxy: Bucket, local_server: RunningServer
) -> None:
    _, proxy = proxied
    proxy.set_rates({"reset": 0.3}, methods=["PUT"])
    rng = random.Random(5)
    attempted: dict[str, bytes] = {}
    sent: dict[str, bytes] = {}
    failures = 0
    for i in range(60):
        name = f"put-{i:02d}"
        body = rng.randbytes(rng.randrange(1, 3_000_000))
        attempted[name] = body
        url = bucket_behind_proxy.objects.create(name).generate_url(expires_in=600, writable=True)
        try:
            status, _ = _send(url, "PUT", body)
            assert status == 200
        except (urllib.error.URLError, ConnectionError, OSError):
            failures += 1
            continue
        sent[name] = body
    assert proxy.stats["reset"] >= 5 and failures >= 1
    for obj in bucket_behind_proxy.objects:
        # A PUT whose response was cut off may still have completed: then it is whole.
        assert obj.read() == attempted[obj.name], f"{obj.name} holds part of a body"
    assert set(sent) <= {o.name for o in bucket_behind_proxy.objects}
    temp = Path(local_server.config["local_root"]) / ".cloudstore" / "tmp"
    assert not temp.exists() or list(temp.iterdir()) == [], "an interrupted PUT left a temporary file"


def test_server_keeps_serving_after_broken_downloads(
    proxied: tuple[CloudProvider, FaultProxy], bucket_behind_proxy: Bucket
) -> None:
    _, proxy = proxied
    data = os.urandom(2_000_000)
    obj = bucket_behind_proxy.objects.create("shared.bin")
    obj.upload(data)
    url = obj.generate_url(expires_in=600)
    proxy.set_rates({"reset": 0.3, "stall": 0.05}, methods=["GET"])
    complete = 0
    for _ in range(60):
        try:
            status, body = _send(url)
        except (urllib.error.URLError, ConnectionError, OSError):
            continue
        assert status == 200 and body == data
        complete += 1
    assert proxy.stats["reset"] >= 5
    assert complete >= 20
    proxy.clear_faults()
    assert _send(url) == (200, data)

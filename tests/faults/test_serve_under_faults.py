"""``cloudstore serve`` behind the fault proxy: LOCAL's fault run (its provider itself makes no
request to fault). Clients that break off mid-transfer never leave a partial object, a body
damaged on the way up is refused (``Content-MD5``), the ETag lets a client catch a body damaged
on the way down, and the server keeps serving.

Bounded: about a hundred transfers each way of small bodies on loopback.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import random
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from cloudstore import Bucket, CloudProvider
from tests.conftest import make_provider, server_fixture, unique_name
from tests.support.proxy import FaultProxy
from tests.support.servers.base import RunningServer

T = TypeVar("T")


local_server = server_fixture("local")


@pytest.fixture
def proxied(local_server: RunningServer) -> Iterator[tuple[CloudProvider, FaultProxy]]:
    with FaultProxy(("127.0.0.1", local_server.extra["port"]), seed=4321, dialect="local", stall_seconds=10) as proxy:
        yield make_provider(local_server, local_url=proxy.url), proxy


@pytest.fixture
def bucket_behind_proxy(proxied: tuple[CloudProvider, FaultProxy]) -> Iterator[Bucket]:
    provider, _ = proxied
    bucket = provider.storage.buckets.create(unique_name("serve"))
    yield bucket
    bucket.delete(delete_contents=True)


def _send(url: str, method: str = "GET", data: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status, response.read()


#: Everything a signed-URL client may see from a faulty network.
NETWORK_ERRORS = (urllib.error.URLError, ConnectionError, OSError, http.client.HTTPException)


def _put_checked(url: str, body: bytes, timeout: float = 2.0) -> int:
    """PUT ``body`` with its Content-MD5; the status (an HTTPError's too)."""
    digest = base64.b64encode(hashlib.md5(body).digest()).decode()
    request = urllib.request.Request(url, data=body, method="PUT", headers={"Content-MD5": digest})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)


def _get_checked(url: str, timeout: float = 2.0) -> bytes | None:
    """The body of a GET, or None when it does not match the ETag (serve's ETag is the body's MD5)."""
    with urllib.request.urlopen(urllib.request.Request(url), timeout=timeout) as response:
        body = response.read()
        etag = (response.headers.get("ETag") or "").strip('"')
    return body if hashlib.md5(body).hexdigest() == etag else None


def _retrying(action: Callable[[], T], attempts: int = 8) -> T:
    """What a careful signed-URL client does: try again on network errors (not on refusals)."""
    for _ in range(attempts - 1):
        try:
            return action()
        except NETWORK_ERRORS:
            continue
    return action()


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
    proxy.set_rates({"reset": 0.2, "truncate": 0.1, "stall": 0.03, "blackhole": 0.03}, methods=["GET"])
    complete = 0
    for _ in range(60):
        try:
            status, body = _send(url, timeout=1.0)
        except NETWORK_ERRORS:
            continue
        assert status == 200 and body == data
        complete += 1
    assert proxy.stats["reset"] >= 5 and proxy.stats["truncate"] >= 1
    assert complete >= 20
    proxy.clear_faults()
    assert _send(url) == (200, data)


def _temp_files(local_server: RunningServer) -> list[Path]:
    temp = Path(local_server.config["local_root"]) / ".cloudstore" / "tmp"
    return list(temp.iterdir()) if temp.exists() else []


def test_100_mixed_signed_transfers_at_ten_percent_faults(
    proxied: tuple[CloudProvider, FaultProxy], bucket_behind_proxy: Bucket, local_server: RunningServer
) -> None:
    """Every PUT carries its Content-MD5 and every GET is checked against the ETag: with retries,
    all hundred objects arrive whole, and each is stored exactly as sent."""
    _, proxy = proxied
    proxy.set_rates({"reset": 0.03, "truncate": 0.02, "stall": 0.005, "503": 0.015, "throttle": 0.01})
    proxy.add_rule("flip", 0.05, methods=["GET"])
    proxy.add_rule("flip_request", 0.05, methods=["PUT"])
    rng = random.Random(17)
    written: dict[str, bytes] = {}
    for i in range(100):
        name = f"obj-{i:03d}"
        body = rng.randbytes(rng.choice([1, rng.randrange(2, 64 * 1024), rng.randrange(64 * 1024, 2_000_000)]))
        obj = bucket_behind_proxy.objects.create(name)
        put_url = obj.generate_url(expires_in=600, writable=True)
        get_url = obj.generate_url(expires_in=600)
        for _ in range(8):  # a refused (damaged) or lost PUT is sent again
            if _retrying(lambda: _put_checked(put_url, body)) == 200:  # noqa: B023 - called at once
                break
        written[name] = body
        for _ in range(8):  # a body that fails its ETag is fetched again
            got = _retrying(lambda: _get_checked(get_url))  # noqa: B023 - called at once
            if got is not None:
                break
        assert got == body, f"{name}: the bytes downloaded through faults differ"
    stats = proxy.stats
    assert stats["faults"] >= 30, f"too few faults injected to prove anything: {dict(stats)}"
    for kind in ("reset", "truncate", "503", "throttle", "flip", "flip_request"):
        assert stats[kind] > 0, f"no {kind!r} fault was injected: {dict(stats)}"
    for obj in bucket_behind_proxy.objects:
        assert obj.read() == written[obj.name], f"{obj.name} is stored with other bytes than were sent"
    assert sorted(o.name for o in bucket_behind_proxy.objects) == sorted(written)
    assert _temp_files(local_server) == [], "a refused or interrupted PUT left a temporary file"


def test_put_with_a_flipped_byte_is_refused_and_stores_nothing(
    proxied: tuple[CloudProvider, FaultProxy], bucket_behind_proxy: Bucket, local_server: RunningServer
) -> None:
    _, proxy = proxied
    body = os.urandom(300_000)
    url = bucket_behind_proxy.objects.create("damaged").generate_url(expires_in=600, writable=True)
    proxy.add_rule("flip_request", methods=["PUT"], limit=1)
    assert _put_checked(url, body) == 400, "a body that does not match its Content-MD5 was accepted"
    assert proxy.stats["flip_request"] == 1
    assert bucket_behind_proxy.objects.get("damaged") is None
    assert _put_checked(url, body) == 200
    stored = bucket_behind_proxy.objects.get("damaged")
    assert stored is not None and stored.read() == body
    assert _temp_files(local_server) == []


def test_etag_reveals_a_flipped_download(
    proxied: tuple[CloudProvider, FaultProxy], bucket_behind_proxy: Bucket
) -> None:
    _, proxy = proxied
    data = os.urandom(300_000)
    obj = bucket_behind_proxy.objects.create("watched")
    obj.upload(data)
    url = obj.generate_url(expires_in=600)
    proxy.add_rule("flip", methods=["GET"], limit=1)
    assert _get_checked(url) is None
    assert _get_checked(url) == data

"""Copies larger than one server-side copy request: the engine copies ranges into a multipart upload.

Runs on every selected provider that declares a copy limit (``features.max_copy_size``: S3's
CopyObject and Swift's COPY stop at 5 GiB); the limit is lowered to 6 MiB so that a 13 MiB
object is copied as three parts. Providers without a limit copy any size in one request, which
``test_objects.py::test_copy_to`` covers.
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from cloudstore import Bucket, CloudProvider, NotFoundException, PreconditionFailedException
from tests.conftest import Servers, fresh_bucket, make_provider, provider_features, selected_providers

MiB = 1024 * 1024
LIMIT = 6 * MiB


@pytest.fixture(
    scope="module", params=[p for p in selected_providers() if provider_features(p).max_copy_size is not None]
)
def limited(request: pytest.FixtureRequest, servers: Servers) -> CloudProvider:
    return make_provider(servers.get(request.param))


@pytest.fixture
def copy_bucket(limited: CloudProvider, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    backend = limited._backend
    monkeypatch.setattr(backend, "features", dataclasses.replace(backend.features, max_copy_size=LIMIT))
    with fresh_bucket(limited, "copy") as bucket:
        yield bucket


def _count_part_copies(provider: CloudProvider, monkeypatch: pytest.MonkeyPatch, before: Any = None) -> list[int]:
    """Wrap ``upload_part_copy``; the returned list grows by one per call. ``before(n)`` runs first."""
    backend = provider._backend
    real = backend.upload_part_copy
    calls: list[int] = []
    lock = threading.Lock()

    def counted(*args: Any, **kwargs: Any) -> Any:
        with lock:
            calls.append(len(calls) + 1)
            number = len(calls)
        if before is not None:
            before(number)
        return real(*args, **kwargs)

    monkeypatch.setattr(backend, "upload_part_copy", counted)
    return calls


def test_copy_above_the_limit_goes_part_by_part(
    limited: CloudProvider, copy_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_part_copies(limited, monkeypatch)
    data = os.urandom(13 * MiB)
    source = copy_bucket.objects.create("big/source.bin")
    source.upload(data, content_type="application/x-model", metadata={"epoch": "7"})
    copied = source.copy_to(copy_bucket, "big/copy.bin")
    assert len(calls) == 3  # 5 MiB test parts
    assert copied.read() == data
    assert (copied.size, copied.content_type, copied.metadata) == (len(data), "application/x-model", {"epoch": "7"})
    small = copy_bucket.objects.create("small.bin")
    small.upload(b"under the limit")
    assert small.copy_to(copy_bucket, "small-copy.bin").read() == b"under the limit"
    assert len(calls) == 3  # one plain copy request, no parts
    names = sorted(o.name for o in copy_bucket.objects)
    assert names == ["big/copy.bin", "big/source.bin", "small-copy.bin", "small.bin"]


def test_copy_over_an_existing_object_replaces_it(limited: CloudProvider, copy_bucket: Bucket) -> None:
    target = copy_bucket.objects.create("target.bin")
    target.upload(os.urandom(7 * MiB))  # itself a large object, whose parts must not survive it
    data = os.urandom(13 * MiB)
    source = copy_bucket.objects.create("source.bin")
    source.upload(data)
    assert source.copy_to(copy_bucket, "target.bin").read() == data
    target.delete()
    assert [o.name for o in copy_bucket.objects] == ["source.bin"]


def test_copy_of_a_source_replaced_midway_fails_and_leaves_nothing(
    limited: CloudProvider, copy_bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = copy_bucket.objects.create("moving.bin")
    source.upload(os.urandom(13 * MiB))

    def replace_before_the_second_part(number: int) -> None:
        if number == 2:
            limited._backend.put_object(copy_bucket.name, "moving.bin", b"replaced", None, {})

    _count_part_copies(limited, monkeypatch, replace_before_the_second_part)
    with pytest.raises(PreconditionFailedException):
        source.copy_to(copy_bucket, "target.bin")
    assert copy_bucket.objects.get("target.bin") is None
    assert [o.name for o in copy_bucket.objects] == ["moving.bin"]


def test_copy_of_a_missing_source_is_not_found(copy_bucket: Bucket) -> None:
    with pytest.raises(NotFoundException):
        copy_bucket.objects.create("absent.bin").copy_to(copy_bucket, "target.bin")
    assert copy_bucket.objects.get("target.bin") is None

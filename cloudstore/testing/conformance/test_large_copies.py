"""Copies larger than one server-side copy request: the engine copies ranges into a multipart upload.

Runs on every provider that declares a copy limit (``features.max_copy_size``: S3's CopyObject
and Swift's COPY stop at 5 GiB); the limit is lowered to 6 MiB through a
:class:`~cloudstore.testing.SpyBackend`, so that a 13 MiB object is copied as three parts.
Providers without a limit copy any size in one request, which ``test_objects.py::test_copy_to``
covers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from cloudstore import Bucket, CloudProvider, NotFoundException, PreconditionFailedException
from cloudstore.testing import Call, Spied, fresh_bucket, spy_on

MiB = 1024 * 1024
LIMIT = 6 * MiB

pytestmark = pytest.mark.needs("max_copy_size")


@pytest.fixture
def limited(provider: CloudProvider) -> Iterator[Spied]:
    """A provider whose copies stop at :data:`LIMIT`, with its backend's calls recorded."""
    made = spy_on(provider, max_copy_size=LIMIT)
    yield made
    made.provider.close()


@pytest.fixture
def copy_bucket(limited: Spied) -> Iterator[Bucket]:
    with fresh_bucket(limited.provider, "copy") as bucket:
        yield bucket


def test_copy_above_the_limit_goes_part_by_part(limited: Spied, copy_bucket: Bucket) -> None:
    data = os.urandom(13 * MiB)
    source = copy_bucket.objects.create("big/source.bin")
    source.upload(data, content_type="application/x-model", metadata={"epoch": "7"})
    copied = source.copy_to(copy_bucket, "big/copy.bin")
    assert limited.backend.count("upload_part_copy") == 3  # 5 MiB test parts
    assert copied.read() == data
    assert (copied.size, copied.content_type, copied.metadata) == (len(data), "application/x-model", {"epoch": "7"})
    small = copy_bucket.objects.create("small.bin")
    small.upload(b"under the limit")
    assert small.copy_to(copy_bucket, "small-copy.bin").read() == b"under the limit"
    assert limited.backend.count("upload_part_copy") == 3  # one plain copy request, no parts
    names = sorted(o.name for o in copy_bucket.objects)
    assert names == ["big/copy.bin", "big/source.bin", "small-copy.bin", "small.bin"]


def test_copy_over_an_existing_object_replaces_it(copy_bucket: Bucket) -> None:
    target = copy_bucket.objects.create("target.bin")
    target.upload(os.urandom(7 * MiB))  # itself a large object, whose parts must not survive it
    data = os.urandom(13 * MiB)
    source = copy_bucket.objects.create("source.bin")
    source.upload(data)
    assert source.copy_to(copy_bucket, "target.bin").read() == data
    target.delete()
    assert [o.name for o in copy_bucket.objects] == ["source.bin"]


def test_copy_of_a_source_replaced_midway_fails_and_leaves_nothing(limited: Spied, copy_bucket: Bucket) -> None:
    source = copy_bucket.objects.create("moving.bin")
    source.upload(os.urandom(13 * MiB))

    def replace_before_the_second_part(call: Call) -> None:
        if call.number == 2:
            limited.backend.inner.put_object(copy_bucket.name, "moving.bin", b"replaced", None, {})

    limited.backend.before("upload_part_copy", replace_before_the_second_part)
    with pytest.raises(PreconditionFailedException):
        source.copy_to(copy_bucket, "target.bin")
    assert copy_bucket.objects.get("target.bin") is None
    assert [o.name for o in copy_bucket.objects] == ["moving.bin"]


def test_copy_of_a_missing_source_is_not_found(copy_bucket: Bucket) -> None:
    with pytest.raises(NotFoundException):
        copy_bucket.objects.create("absent.bin").copy_to(copy_bucket, "target.bin")
    assert copy_bucket.objects.get("target.bin") is None

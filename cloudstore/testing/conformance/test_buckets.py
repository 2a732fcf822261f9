"""SPEC 2: buckets, on every provider."""

from __future__ import annotations

import pytest

from cloudstore import (
    Bucket,
    CloudProvider,
    DuplicateResourceException,
    InvalidNameException,
    NotFoundException,
    PermissionDeniedException,
    PreconditionFailedException,
)
from cloudstore.backend import BucketInfo
from cloudstore.testing import Spied, unique_name


def test_create_get_find_delete(provider: CloudProvider) -> None:
    name = unique_name()
    created = provider.storage.buckets.create(name)
    try:
        assert created.name == name == created.id
        got = provider.storage.buckets.get(name)
        assert got is not None and got.name == name
        assert [b.name for b in provider.storage.buckets.find(name=name)] == [name]
        assert name in [b.name for b in provider.storage.buckets]
    finally:
        created.delete()
    assert provider.storage.buckets.get(name) is None
    assert provider.storage.buckets.find(name=name) == []


def test_create_duplicate_raises(provider: CloudProvider, bucket: Bucket) -> None:
    with pytest.raises(DuplicateResourceException):
        provider.storage.buckets.create(bucket.name)


@pytest.mark.parametrize("bad", ["", "a/b", "x" * 300, "nul\x00name"])
def test_invalid_bucket_names_rejected(provider: CloudProvider, bad: str) -> None:
    with pytest.raises(InvalidNameException):
        provider.storage.buckets.create(bad)
    with pytest.raises(InvalidNameException):
        provider.storage.buckets.get(bad)


def test_find_rejects_unknown_filters(provider: CloudProvider) -> None:
    with pytest.raises(TypeError):
        provider.storage.buckets.find(colour="blue")


def test_get_missing_bucket_is_none(provider: CloudProvider) -> None:
    assert provider.storage.buckets.get(unique_name("missing")) is None


def test_bucket_listing_pages_resume_from_marker(provider: CloudProvider) -> None:
    names = sorted(unique_name("pg") for _ in range(3))
    made = [provider.storage.buckets.create(n) for n in names]
    try:
        walked: list[str] = []
        marker = None
        while True:
            page = provider.storage.buckets.list(limit=2, marker=marker)
            assert len(page) <= 2
            walked.extend(b.name for b in page)
            if not page.is_truncated:
                break
            assert page.marker is not None
            marker = page.marker
        assert len(walked) == len(set(walked)), "a bucket was listed twice"
        assert set(names) <= set(walked)
    finally:
        for b in made:
            b.delete()


def test_delete_non_empty_bucket_refused_and_nothing_lost(provider: CloudProvider, bucket: Bucket) -> None:
    bucket.objects.create("keep.txt").upload(b"precious")
    with pytest.raises(PreconditionFailedException):
        bucket.delete()
    assert bucket.exists()
    kept = bucket.objects.get("keep.txt")
    assert kept is not None and kept.read() == b"precious"


def test_delete_with_contents(provider: CloudProvider) -> None:
    made = provider.storage.buckets.create(unique_name())
    for i in range(3):
        made.objects.create(f"dir/{i}.bin").upload(b"x" * i)
    made.delete(delete_contents=True)
    assert provider.storage.buckets.get(made.name) is None


def test_delete_with_contents_uses_batch_deletes(spied: Spied) -> None:
    provider, spy = spied
    made = provider.storage.buckets.create(unique_name())
    names = [f"batch/{i:02d}" for i in range(12)]
    for name in names:
        made.objects.create(name).upload(b"x")
    spy.reset()
    made.delete(delete_contents=True)
    assert provider.storage.buckets.get(made.name) is None
    batch = provider.features.max_batch_delete
    # One batch request per max_batch_delete names (the last one short), never a delete per object.
    assert spy.count("delete_object") == 0
    assert sum(len(call.args[1]) for call in spy.calls_to("delete_objects")) == len(names)
    assert spy.count("delete_objects") == -(-len(names) // batch)


def test_delete_with_contents_raises_what_failed_and_keeps_the_bucket(spied: Spied) -> None:
    provider, spy = spied
    made = provider.storage.buckets.create(unique_name())
    try:
        made.objects.create("stays").upload(b"x")
        spy.fail("delete_objects", PermissionDeniedException("refused"), times=None)
        with pytest.raises(PermissionDeniedException):
            made.delete(delete_contents=True)
        assert spy.count("delete_bucket") == 0 and made.exists()
    finally:
        spy.reset()
        made.delete(delete_contents=True)


def test_missing_bucket_operations_raise_not_found(provider: CloudProvider) -> None:
    ghost = Bucket(provider, BucketInfo(name=unique_name("gh")))
    with pytest.raises(NotFoundException):
        ghost.delete()
    with pytest.raises(NotFoundException):
        ghost.objects.list()
    with pytest.raises(NotFoundException):
        ghost.objects.create("x").upload(b"data")

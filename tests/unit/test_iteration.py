"""Iterating a bucket, seen through the memory provider and the SpyBackend seam: which listing
requests are made, and when their errors surface."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest

from cloudstore import CloudProviderFactory, NotFoundException, ProviderConnectionException, RetryPolicy
from cloudstore.testing import Call, SpyBackend, backend_of, provider_with

NO_WAIT = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.0)
OBJECTS = 2_500  # three pages of 1,000


@pytest.fixture
def spied() -> tuple[SpyBackend, Any]:
    plain = CloudProviderFactory().create_provider(
        "memory", {"retry_policy": NO_WAIT, "memory_store": uuid.uuid4().hex}
    )
    bucket = plain.storage.buckets.create("walked")
    for i in range(OBJECTS):
        bucket.objects.create(f"k{i:05d}").upload(b"")
    spy = SpyBackend(backend_of(plain))
    provider = provider_with(spy, plain)
    return spy, provider.storage.buckets.get("walked")


def after_first_page(call: Call) -> bool:
    return call.args[4] is not None  # list_objects(bucket, prefix, delimiter, limit, marker)


def test_a_failing_second_page_fails_the_iteration_when_it_is_reached(spied: tuple[SpyBackend, Any]) -> None:
    spy, bucket = spied
    spy.fail("list_objects", NotFoundException("the bucket went away"), times=None, when=after_first_page)
    objects = iter(bucket.objects)
    first_page = list(itertools.islice(objects, 1000))
    assert [o.name for o in first_page] == [f"k{i:05d}" for i in range(1000)]
    with pytest.raises(NotFoundException, match="went away"):
        next(objects)
    assert spy.count("list_objects") == 2


def test_a_later_page_is_retried_as_any_request(spied: tuple[SpyBackend, Any]) -> None:
    spy, bucket = spied
    spy.fail("list_objects", ProviderConnectionException("reset"), times=1, when=after_first_page)
    assert sum(1 for _ in bucket.objects) == OBJECTS
    assert spy.count("list_objects") == 4  # three pages, one of them twice


def test_stopping_early_asks_for_no_further_page(spied: tuple[SpyBackend, Any]) -> None:
    spy, bucket = spied
    for obj in bucket.objects:
        if obj.name == "k00010":
            break
    assert spy.count("list_objects") == 1
    assert [o.name for o in itertools.islice(bucket.objects, 1001)][-1] == "k01000"
    assert spy.count("list_objects") == 3


def test_one_explicit_page_is_one_request(spied: tuple[SpyBackend, Any]) -> None:
    spy, bucket = spied
    page = bucket.objects.list(limit=1000)
    assert len(page) == 1000 and page.is_truncated
    assert spy.count("list_objects") == 1

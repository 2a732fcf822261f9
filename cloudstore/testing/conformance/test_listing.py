"""SPEC 3: listing, paging and finding, on every provider."""

from __future__ import annotations

from typing import Any

import pytest

from cloudstore import Bucket, InvalidParamException

KEYS = [
    "a.txt",
    "b/1.txt",
    "b/2.txt",
    "b/c/3.txt",
    "b-sibling.txt",
    "d/4.txt",
    "e.txt",
]


@pytest.fixture
def filled(bucket: Bucket) -> Bucket:
    for key in KEYS:
        bucket.objects.create(key).upload(key.encode())
    return bucket


def test_list_is_sorted_and_complete(filled: Bucket, listing_order: Any) -> None:
    page = filled.objects.list()
    assert [o.name for o in page] == sorted(KEYS, key=listing_order)
    assert not page.is_truncated and page.marker is None
    assert all(o.size == len(o.name) for o in page)


def test_iteration_walks_everything_in_order(filled: Bucket, listing_order: Any) -> None:
    assert [o.name for o in filled.objects] == sorted(KEYS, key=listing_order)


def test_prefix(filled: Bucket) -> None:
    assert [o.name for o in filled.objects.list(prefix="b/")] == ["b/1.txt", "b/2.txt", "b/c/3.txt"]
    found = [o.name for o in filled.objects.find(prefix="b")]
    assert sorted(found) == ["b-sibling.txt", "b/1.txt", "b/2.txt", "b/c/3.txt"]
    assert filled.objects.list(prefix="zzz") == []


def test_delimiter_gives_prefixes(filled: Bucket) -> None:
    top = filled.objects.list(delimiter="/")
    assert [o.name for o in top] == ["a.txt", "b-sibling.txt", "e.txt"]
    assert top.prefixes == ["b/", "d/"]
    inner = filled.objects.list(prefix="b/", delimiter="/")
    assert [o.name for o in inner] == ["b/1.txt", "b/2.txt"]
    assert inner.prefixes == ["b/c/"]


def test_paging_with_markers_covers_each_key_once(filled: Bucket, listing_order: Any) -> None:
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        page = filled.objects.list(limit=2, marker=marker)
        pages += 1
        assert len(page) <= 2
        seen.extend(o.name for o in page)
        if not page.is_truncated:
            break
        marker = page.marker
    assert seen == sorted(KEYS, key=listing_order)
    assert pages >= 4


def test_marker_resumes_exactly_where_the_page_ended(filled: Bucket, listing_order: Any) -> None:
    first = filled.objects.list(limit=3)
    assert [o.name for o in first] == sorted(KEYS, key=listing_order)[:3]
    assert first.is_truncated
    rest = filled.objects.list(marker=first.marker)
    assert [o.name for o in rest] == sorted(KEYS, key=listing_order)[3:]


def test_paging_with_delimiter(filled: Bucket) -> None:
    entries: list[str] = []
    marker = None
    while True:
        page = filled.objects.list(limit=2, delimiter="/", marker=marker)
        entries.extend([o.name for o in page] + list(page.prefixes))
        if not page.is_truncated:
            break
        marker = page.marker
    assert sorted(entries) == ["a.txt", "b-sibling.txt", "b/", "d/", "e.txt"]


def test_walking_more_than_one_server_page(bucket: Bucket) -> None:
    names = [f"k/{i:04d}" for i in range(1105)]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: bucket.objects.create(n).upload(b""), names))
    assert [o.name for o in bucket.objects] == names
    first = bucket.objects.list()
    assert len(first) == 1000 and first.is_truncated
    second = bucket.objects.list(marker=first.marker)
    assert [o.name for o in second] == names[1000:]


def test_find_exact_name(filled: Bucket) -> None:
    assert [o.name for o in filled.objects.find(name="b/1.txt")] == ["b/1.txt"]
    assert filled.objects.find(name="b/1") == []
    assert filled.objects.find(name="b/1.txt", prefix="d/") == []
    with pytest.raises(TypeError):
        filled.objects.find(size=3)


def test_bad_list_arguments(filled: Bucket) -> None:
    with pytest.raises(InvalidParamException):
        filled.objects.list(limit=0)
    with pytest.raises(InvalidParamException):
        filled.objects.list(delimiter="")

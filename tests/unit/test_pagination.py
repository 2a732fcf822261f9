"""cloudstore/_pagination.py against a small in-memory paged service (pure logic)."""

from __future__ import annotations

import pytest

from cloudstore import ProviderConnectionException
from cloudstore._pagination import DEFAULT_PAGE_SIZE, ResultList, fetch_page, iterate
from cloudstore.backend import Page


class FakeService:
    """A sorted key list served in pages of at most ``server_max`` items (like S3's 1000)."""

    def __init__(self, keys: list[str], server_max: int) -> None:
        self.keys = sorted(keys)
        self.server_max = server_max
        self.calls: list[tuple[int | None, str | None]] = []

    def __call__(self, limit: int | None, marker: str | None) -> Page[str]:
        self.calls.append((limit, marker))
        rest = [k for k in self.keys if marker is None or k > marker]
        size = min(self.server_max, limit) if limit is not None else self.server_max
        page = rest[:size]
        more = len(rest) > size
        return Page(page, page[-1] if more and page else None)


KEYS = [f"k{i:03d}" for i in range(23)]


def test_fetch_page_fills_short_server_pages_up_to_the_limit() -> None:
    service = FakeService(KEYS, server_max=4)
    page = fetch_page(service, 10, None, str.upper)
    assert page == [k.upper() for k in KEYS[:10]]
    assert page.is_truncated and page.marker == "k009"
    # Each request asked only for the room left on the page.
    assert [limit for limit, _ in service.calls] == [10, 6, 2]


def test_markers_continue_exactly_and_the_last_page_has_none() -> None:
    service = FakeService(KEYS, server_max=4)
    seen: list[str] = []
    marker = None
    pages = 0
    while True:
        page = fetch_page(service, 7, marker, lambda k: k)
        pages += 1
        seen.extend(page)
        if not page.is_truncated:
            break
        assert page.marker == page[-1]
        marker = page.marker
    assert seen == KEYS
    assert pages == 4
    assert page.marker is None and len(page) == 2


def test_limit_equal_to_what_is_left_ends_without_marker_when_the_service_says_so() -> None:
    service = FakeService(KEYS[:5], server_max=10)
    page = fetch_page(service, 5, None, lambda k: k)
    assert list(page) == KEYS[:5]
    assert page.marker is None and not page.is_truncated


def test_default_limit_is_the_default_page_size() -> None:
    service = FakeService([f"k{i:05d}" for i in range(DEFAULT_PAGE_SIZE + 5)], server_max=DEFAULT_PAGE_SIZE)
    page = fetch_page(service, None, None, lambda k: k)
    assert len(page) == DEFAULT_PAGE_SIZE
    assert page.is_truncated
    assert service.calls == [(DEFAULT_PAGE_SIZE, None)]


def test_prefixes_count_toward_the_limit() -> None:
    def fetch(limit: int | None, marker: str | None) -> Page[str]:
        if marker is None:
            return Page(["a"], "dir1/", prefixes=["dir1/"])
        return Page(["b", "c"], None, prefixes=["dir2/"])

    page = fetch_page(fetch, 2, None, lambda k: k)
    assert list(page) == ["a"] and page.prefixes == ["dir1/"]
    assert page.marker == "dir1/"


def test_a_page_of_prefixes_only_keeps_its_marker() -> None:
    def fetch(limit: int | None, marker: str | None) -> Page[str]:
        if marker is None:
            return Page([], "dir1/", prefixes=["dir1/"])
        return Page(["z"], None)

    page = fetch_page(fetch, 1, None, lambda k: k)
    assert list(page) == [] and page.prefixes == ["dir1/"] and page.marker == "dir1/"
    rest = fetch_page(fetch, 1, page.marker, lambda k: k)
    assert list(rest) == ["z"] and rest.marker is None


def test_empty_pages_with_a_marker_are_followed() -> None:
    def fetch(limit: int | None, marker: str | None) -> Page[str]:
        return {None: Page([], "m1"), "m1": Page([], "m2"), "m2": Page(["x"], None)}[marker]

    page = fetch_page(fetch, 5, None, lambda k: k)
    assert list(page) == ["x"] and page.marker is None


def test_iterate_fetches_each_page_once_and_lazily() -> None:
    service = FakeService(KEYS, server_max=5)
    items = iterate(service, page_size=5)
    assert service.calls == []  # nothing before the first item is asked for
    first = [next(items) for _ in range(5)]
    assert first == KEYS[:5]
    assert len(service.calls) == 1
    rest = list(items)
    assert first + rest == KEYS
    assert len(service.calls) == 5  # 23 keys in pages of 5
    markers = [marker for _, marker in service.calls]
    assert markers == [None, "k004", "k009", "k014", "k019"]
    assert len(set(markers)) == len(markers)


@pytest.mark.parametrize(
    "chain",
    [
        {None: "m1", "m1": "m1"},  # the same marker straight back
        {None: "m1", "m1": "m2", "m2": "m1"},  # a cycle through an earlier marker
    ],
)
def test_a_repeated_marker_raises_instead_of_looping(chain: dict[str | None, str]) -> None:
    calls = 0

    def fetch(limit: int | None, marker: str | None) -> Page[str]:
        nonlocal calls
        calls += 1
        assert calls < 20, "looped"
        return Page([f"after-{marker}"], chain[marker])

    with pytest.raises(ProviderConnectionException, match="repeated"):
        list(iterate(fetch, page_size=1))
    assert calls == len(chain)  # stopped at the first repeat
    calls = 0
    with pytest.raises(ProviderConnectionException, match="repeated"):
        fetch_page(fetch, 100, None, lambda k: k)


def test_marker_equal_to_the_one_passed_in_raises() -> None:
    def fetch(limit: int | None, marker: str | None) -> Page[str]:
        return Page(["a"], "same")

    with pytest.raises(ProviderConnectionException):
        fetch_page(fetch, 10, "same", lambda k: k)


def test_result_list_is_a_list_with_paging_fields() -> None:
    page: ResultList[int] = ResultList([1, 2], marker="2")
    assert isinstance(page, list) and page == [1, 2]
    assert page.is_truncated and repr(page) == "<ResultList items=[1, 2] marker='2'>"
    last: ResultList[int] = ResultList([3])
    assert not last.is_truncated and last.prefixes == []


def test_an_error_of_a_later_page_is_raised_when_the_caller_reaches_that_page() -> None:
    service = FakeService(KEYS, server_max=5)

    def fetch(limit: int | None, marker: str | None) -> Page[str]:
        if marker == "k004":
            raise ProviderConnectionException("page 2 failed")
        return service(limit, marker)

    items = iterate(fetch, page_size=5)
    assert [next(items) for _ in range(5)] == KEYS[:5]
    with pytest.raises(ProviderConnectionException, match="page 2 failed"):
        next(items)

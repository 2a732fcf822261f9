"""Server-side paging: one page as a :class:`ResultList`, or every item lazily."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from cloudstore.backend import BucketInfo, ObjectInfo, Page
from cloudstore.exceptions import ProviderConnectionException

T = TypeVar("T")
R = TypeVar("R")
#: What a listing holds: buckets or objects (each with a ``name`` to page by).
N = TypeVar("N", BucketInfo, ObjectInfo)

#: Items asked for per request when the caller gives no limit (S3's own page size).
DEFAULT_PAGE_SIZE = 1000

PageFetcher = Callable[[int | None, "str | None"], Page[T]]


class ResultList(list[T], Generic[T]):
    """One page of results: a list, plus where to continue.

    Pass ``marker`` back to ``list(marker=...)`` to get the page after this one;
    it is ``None`` (and ``is_truncated`` false) on the last page. Listings with a
    delimiter also carry the pseudo-folders in ``prefixes``.
    """

    def __init__(
        self,
        items: list[T],
        marker: str | None = None,
        prefixes: list[str] | None = None,
    ) -> None:
        super().__init__(items)
        self.marker = marker
        self.prefixes = prefixes or []

    @property
    def is_truncated(self) -> bool:
        """Whether more results follow this page."""
        return self.marker is not None

    def __repr__(self) -> str:
        return f"<ResultList items={list.__repr__(self)} marker={self.marker!r}>"


def fetch_page(fetch: PageFetcher[T], limit: int | None, marker: str | None, wrap: Callable[[T], R]) -> ResultList[R]:
    """Up to ``limit`` items after ``marker``, filling short server pages, as a ResultList."""
    want = DEFAULT_PAGE_SIZE if limit is None else limit
    items: list[R] = []
    prefixes: list[str] = []
    for page in _pages(fetch, marker, lambda: want - len(items) - len(prefixes)):
        items.extend(wrap(item) for item in page.items)
        prefixes.extend(page.prefixes)
        if len(items) + len(prefixes) >= want:
            return ResultList(items, page.next_marker, prefixes)
    return ResultList(items, None, prefixes)


def iterate(fetch: PageFetcher[T], page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[T]:
    """Every item, fetched page by page as the iteration reaches it (each page once)."""
    for page in _pages(fetch, None, lambda: page_size):
        yield from page.items


def paged_on_client(fetch: PageFetcher[N]) -> PageFetcher[N]:
    """A fetcher that pages a listing the service returns whole (``features.server_paging`` off).

    Each call fetches the whole listing once (``fetch(None, None)``) and returns the entries
    (items and prefixes, in name order) after ``marker``, ``limit`` at most; the marker of the
    next page is the last name returned, so a page is found again without state kept here.
    """

    def page(limit: int | None, marker: str | None) -> Page[N]:
        whole = fetch(None, None)
        entries: list[tuple[str, N | None]] = [(item.name, item) for item in whole.items]
        entries += [(prefix, None) for prefix in whole.prefixes]
        entries = sorted((e for e in entries if marker is None or e[0] > marker), key=lambda e: e[0])
        shown = entries if limit is None else entries[:limit]
        more = len(shown) < len(entries)
        return Page(
            [item for _, item in shown if item is not None],
            next_marker=shown[-1][0] if more and shown else None,
            prefixes=[name for name, item in shown if item is None],
        )

    return page


def _pages(fetch: PageFetcher[T], marker: str | None, room: Callable[[], int]) -> Iterator[Page[T]]:
    seen: set[str] = set()
    while True:
        page = fetch(room(), marker)
        yield page
        if page.next_marker is None:
            return
        if page.next_marker == marker or page.next_marker in seen:
            raise ProviderConnectionException(
                f"the service repeated the continuation marker {page.next_marker!r}; stopping instead of looping"
            )
        seen.add(page.next_marker)
        marker = page.next_marker

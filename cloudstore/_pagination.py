"""Server-side paging: one page as a :class:`ResultList`, or every item lazily."""

from __future__ import annotations

import contextvars
import threading
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
    """Every item, fetched page by page as the iteration reaches it (each page once).

    While the caller consumes a page, the next one is already being fetched (one page ahead,
    on a thread of its own): the service's time per page overlaps the caller's. Its error is
    raised when the caller reaches it; a caller who stops early costs at most that one request,
    which closing the iterator waits for, so no thread outlives it.
    """
    for page in _pages(fetch, None, lambda: page_size, ahead=True):
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


def _pages(
    fetch: PageFetcher[T], marker: str | None, room: Callable[[], int], *, ahead: bool = False
) -> Iterator[Page[T]]:
    """The pages from ``marker`` on; ``ahead``: each page's successor is requested before the
    page is yielded (``room`` must then not depend on what the caller did with the page)."""
    seen: set[str] = set()
    page = fetch(room(), marker)
    pending: _Prefetch[T] | None = None
    try:
        while True:
            after = page.next_marker
            repeated = after is not None and (after == marker or after in seen)
            if ahead and after is not None and not repeated:
                pending = _Prefetch(fetch, room(), after)
            yield page
            if after is None:
                return
            if repeated:
                raise ProviderConnectionException(
                    f"the service repeated the continuation marker {after!r}; stopping instead of looping"
                )
            seen.add(after)
            marker = after
            if pending is None:
                page = fetch(room(), marker)
            else:
                page, pending = pending.result(), None
    finally:
        if pending is not None:  # the caller stopped early: the request in flight ends before we do
            pending.join()


class _Prefetch(Generic[T]):
    """One page fetched on a thread of its own (in the caller's context), until :meth:`result`."""

    def __init__(self, fetch: PageFetcher[T], limit: int, marker: str) -> None:
        self._outcome: Page[T] | BaseException | None = None
        context = contextvars.copy_context()
        self._thread = threading.Thread(
            target=context.run, args=(self._run, fetch, limit, marker), name="cloudstore-list-ahead", daemon=True
        )
        self._thread.start()

    def _run(self, fetch: PageFetcher[T], limit: int, marker: str) -> None:
        try:
            self._outcome = fetch(limit, marker)
        except BaseException as err:  # handed to the caller's thread by result()
            self._outcome = err

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Page[T]:
        """The page, or the fetch's error raised here, on the caller's thread."""
        self._thread.join()
        outcome, self._outcome = self._outcome, None  # no reference cycle through a traceback
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome  # type: ignore[return-value]  # set: the thread has ended

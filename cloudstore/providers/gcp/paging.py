"""Markers for GCS listings.

Objects page by name: the marker is the last name (or pseudo-folder) returned, and the
next request starts there with ``startOffset``. Each page is cut so that it holds at
most ``limit`` entries and only entries the service has certainly listed in full. This
gives the same answers on GCS (where ``maxResults`` counts objects and prefixes together)
and on fake-gcs-server (which counts only objects, and returns every prefix of the
remaining listing on each page), and it hides cloudstore's upload parts.

Buckets page with the service's page token; the marker is ``<last name>@<token>``
(bucket names never contain ``@``) so that a page the service made longer than
``limit`` (fake-gcs-server ignores ``maxResults`` for buckets) can be cut and resumed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cloudstore.backend import BucketInfo, Page
from cloudstore.providers.gcp.compose import HIDDEN_PREFIX

B = TypeVar("B")
T = TypeVar("T")


def _after_every_name_starting_with(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    stripped = prefix
    while stripped:
        last = ord(stripped[-1])
        if last < 0x10FFFF:
            following = last + 1
            if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters: skip them
                following = 0xE000
            return stripped[:-1] + chr(following)
        stripped = stripped[:-1]
    return prefix


class ObjectPager(Generic[B]):
    """Turns a marker into request parameters, and a response into one page and the next marker."""

    def __init__(self, prefix: str | None, delimiter: str | None, marker: str | None) -> None:
        self.prefix = prefix or ""
        self.delimiter = delimiter or None
        self.marker = marker or None
        #: The marker is a pseudo-folder: skip every name under it.
        self.folder_marker = bool(
            self.marker
            and self.delimiter
            and self.marker.endswith(self.delimiter)
            and self.marker.startswith(self.prefix)
            and len(self.marker) > len(self.prefix)
        )

    @property
    def start_offset(self) -> str | None:
        if self.marker is None:
            return None
        if self.folder_marker:
            return _after_every_name_starting_with(self.marker)
        return self.marker  # inclusive: the marker itself comes back and is skipped

    def page_size(self, limit: int | None) -> int | None:
        """``maxResults`` for ``limit`` entries (one more when the marker object comes back too)."""
        if limit is None:
            return None
        return limit + 1 if self.marker is not None and not self.folder_marker else limit

    def _after_marker(self, name: str) -> bool:
        if self.marker is None:
            return True
        if self.folder_marker and name.startswith(self.marker):
            return False
        return name > self.marker

    def cut(
        self,
        items: list[tuple[str, B]],
        prefixes: list[str],
        limit: int | None,
        truncated: bool,
        wrap: Callable[[B], T],
    ) -> Page[T]:
        """One page of at most ``limit`` entries from a response, with the marker to continue."""
        boundary: str | None = None
        if truncated:
            # Everything up to the last object listed is complete (prefixes may run ahead).
            names = [name for name, _ in items] or list(prefixes)
            if not names:
                return Page([], next_marker=self.marker)
            boundary = max(names)
        entries: list[tuple[str, B | None]] = [(name, blob) for name, blob in items]
        entries += [(p, None) for p in set(prefixes)]
        candidates = sorted(
            (
                (name, blob)
                for name, blob in entries
                if not name.startswith(HIDDEN_PREFIX)
                and self._after_marker(name)
                and (boundary is None or name <= boundary)
            ),
            key=lambda entry: entry[0],
        )
        kept = candidates if limit is None else candidates[:limit]
        if len(kept) < len(candidates):
            next_marker: str | None = kept[-1][0]
        elif boundary is not None:
            next_marker = boundary
        else:
            next_marker = None
        return Page(
            [wrap(blob) for _, blob in kept if blob is not None],
            next_marker=next_marker,
            prefixes=[name for name, blob in kept if blob is None],
        )


@dataclass(frozen=True)
class BucketMarker:
    """Where a bucket listing continues: after ``after``, in the service page ``page_token``."""

    after: str | None = None
    page_token: str | None = None

    @classmethod
    def parse(cls, marker: str | None) -> BucketMarker:
        if not marker:
            return cls()
        after, _, token = marker.partition("@")
        return cls(after or None, token or None)

    @staticmethod
    def _format(after: str, token: str | None) -> str:
        return f"{after}@{token}" if token else after

    def cut(self, buckets: list[BucketInfo], limit: int | None, next_token: str | None) -> Page[BucketInfo]:
        if self.after is not None:
            buckets = [b for b in buckets if b.name > self.after]
        buckets.sort(key=lambda b: b.name)
        if limit is not None and len(buckets) > limit:
            buckets = buckets[:limit]
            return Page(buckets, next_marker=self._format(buckets[-1].name, self.page_token))
        if next_token:
            last = buckets[-1].name if buckets else (self.after or "")
            return Page(buckets, next_marker=self._format(last, next_token))
        return Page(buckets)

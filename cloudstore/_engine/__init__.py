"""The one transfer engine every provider uses, one module per direction.

:mod:`.upload` (one request or parallel parts), :mod:`.download` (parallel ranges into a file,
verified, atomic), :mod:`.copy` (on the server, in ranges, or through here) and :mod:`.parts`
(the parallel-part runner and the part layout). :class:`TransferEngine` is the facade the
object model uses.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cloudstore._engine.copy import Copier
from cloudstore._engine.download import Downloader, PinnedVersion
from cloudstore._engine.parts import Context, MiB, ProgressCallback, Readable
from cloudstore._engine.upload import ChunkStream, Uploader, open_source
from cloudstore._retry import RetryPolicy
from cloudstore.backend import Backend, ObjectInfo, RangeReader, WriteCondition
from cloudstore.exceptions import InvalidParamException

__all__ = [
    "ChunkStream",
    "PinnedVersion",
    "ProgressCallback",
    "Readable",
    "TransferConfig",
    "TransferEngine",
    "open_source",
]


@dataclass(frozen=True)
class TransferConfig:
    """Tuning of uploads and downloads.

    ``threshold``: uploads larger than this go up as parallel parts.
    ``part_size``: bytes per part (grown when needed to stay within the service's part limit).
    A download asks for its first ``min(part_size, threshold)`` bytes, and fetches whatever is
    left of a larger object in parallel parts.
    ``max_concurrency``: parts in flight at once; memory stays near ``max_concurrency x part_size``.
    ``chunk_size``: bytes per read when streaming a body.
    """

    threshold: int = 16 * MiB
    part_size: int = 8 * MiB
    max_concurrency: int = 8
    chunk_size: int = 1 * MiB

    def __post_init__(self) -> None:
        for name in ("threshold", "part_size", "max_concurrency", "chunk_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidParamException(f"TransferConfig.{name} must be a positive whole number, not {value!r}")


class TransferEngine:
    """Moves bytes between the client and one provider, under one retry policy."""

    def __init__(self, backend: Backend[Any], policy: RetryPolicy, config: TransferConfig) -> None:
        context = Context(backend, policy, config)
        self._uploader = Uploader(context)
        self._downloader = Downloader(context)
        self._copier = Copier(context, self._uploader, self._downloader)

    def upload(
        self,
        bucket: str,
        name: str,
        source: Readable,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str],
        progress: ProgressCallback | None = None,
        condition: WriteCondition | None = None,
    ) -> None:
        """Store everything ``source`` yields as the object ``name``, if ``condition`` holds."""
        self._uploader.upload(bucket, name, source, size, content_type, metadata, progress, condition)

    def copy(
        self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str, condition: WriteCondition | None = None
    ) -> None:
        """Copy an object, keeping content type and metadata (see :meth:`.copy.Copier.copy`)."""
        self._copier.copy(src_bucket, src_name, dst_bucket, dst_name, condition)

    def chunks(
        self,
        bucket: str,
        name: str,
        start: int | None = None,
        end: int | None = None,
        expected_size: int | None = None,
        chunk_size: int | None = None,
        on_open: Callable[[RangeReader], None] | None = None,
        version: PinnedVersion | None = None,
    ) -> Generator[bytes, None, None]:
        """The bytes of ``start``..``end`` (inclusive), reopening the stream where it broke; every
        response must come from ``version`` (by default, the version the first one reports)."""
        return self._downloader.chunks(bucket, name, start, end, expected_size, chunk_size, on_open, version)

    def stream(
        self,
        bucket: str,
        name: str,
        info: ObjectInfo | None = None,
        chunk_size: int | None = None,
        on_described: Callable[[ObjectInfo], None] | None = None,
    ) -> Iterator[bytes]:
        """The whole object, verified at the end against the service's checksum when it has one."""
        return self._downloader.stream(bucket, name, info, chunk_size, on_described)

    def download_to_path(
        self, bucket: str, name: str, path: Path, progress: ProgressCallback | None = None, mode: int | None = None
    ) -> ObjectInfo:
        """Write the object to ``path`` atomically: all of it, verified, or nothing."""
        return self._downloader.download_to_path(bucket, name, path, progress, mode)

    def read_whole(self, bucket: str, name: str, on_described: Callable[[ObjectInfo], None] | None = None) -> bytes:
        """The whole object, verified; a checksum mismatch is read once more before it is raised."""
        return self._downloader.read_whole(bucket, name, on_described)

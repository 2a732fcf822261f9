"""The one transfer engine every provider uses, one module per direction.

:mod:`.upload` (one request or parallel parts), :mod:`.download` (parallel ranges into a file,
verified, atomic), :mod:`.copy` (on the server, in ranges, or through here) and :mod:`.parts`
(the parallel-part runner and the part layout). :class:`TransferEngine` is the facade the
object model uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cloudstore._engine.copy import Copier
from cloudstore._engine.download import Downloader, PinnedVersion
from cloudstore._engine.parts import Context, MiB, ProgressCallback, Readable
from cloudstore._engine.upload import ChunkStream, Uploader, open_source
from cloudstore._retry import RetryPolicy
from cloudstore.backend import Backend
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
    """Moves bytes between the client and one provider, under one retry policy.

    Its operations are the methods of the engine's directions, each documented where it lives:
    ``upload`` (:meth:`.upload.Uploader.upload`), ``copy`` (:meth:`.copy.Copier.copy`),
    ``chunks``, ``stream``, ``download_to_path`` and ``read_whole`` (:class:`.download.Downloader`).
    """

    def __init__(self, backend: Backend[Any], policy: RetryPolicy, config: TransferConfig) -> None:
        context = Context(backend, policy, config)
        uploader = Uploader(context)
        downloader = Downloader(context)
        self.upload = uploader.upload
        self.copy = Copier(context, uploader, downloader).copy
        self.chunks = downloader.chunks
        self.stream = downloader.stream
        self.download_to_path = downloader.download_to_path
        self.read_whole = downloader.read_whole

"""What every direction of the engine shares: the request context, the parallel-part runner,
the part layout of uploads, progress reporting and reads of exact sizes from a stream."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cloudstore._retry import RetryPolicy
from cloudstore.backend import Backend, Features, call_with_credentials

if TYPE_CHECKING:
    from cloudstore._engine import TransferConfig

T = TypeVar("T")

MiB = 1024 * 1024


class Readable(Protocol):
    """Anything with a binary ``read(size)``: a file, a socket file, a pipe, a custom stream."""

    def read(self, size: int = -1, /) -> bytes: ...


#: Called with the number of bytes just transferred (from worker threads, one call at a time).
ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class Context:
    """One provider's backend, the retry policy its requests run under, and the tuning."""

    backend: Backend[Any]
    policy: RetryPolicy
    config: TransferConfig

    @property
    def features(self) -> Features:
        return self.backend.features

    def call(self, fn: Callable[[], T]) -> T:
        """One request under the retry policy, its errors translated (and expired credentials renewed)."""
        return call_with_credentials(self.policy, self.backend, fn)


class Progress:
    """Serialises calls to the user's callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        if self._callback is not None and amount:
            with self._lock:
                self._callback(amount)


class Cancelled(Exception):
    """A part skipped because another part already failed."""


def run_all(
    tasks: list[Callable[[], T]], max_workers: int, name: str, failed: threading.Event | None = None
) -> list[T]:
    """Run ``tasks`` on ``max_workers`` threads; their results in order, or the first failure.

    On a failure the tasks not yet started are cancelled and ``failed`` is set (running tasks
    may watch it to stop early); this returns only once no task is running any more.
    """
    with ThreadPoolExecutor(max_workers, thread_name_prefix=name) as pool:
        futures = [pool.submit(task) for task in tasks]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if failed is not None:
            failed.set()
        for future in futures:
            future.cancel()
        for future in done:
            future.result()
        return [future.result() for future in futures]


def part_plan(features: Features, config: TransferConfig, size: int | None) -> tuple[int, int]:
    """How to cut an upload: the first part's size, and after how many parts it doubles (0: never).

    A known size gets parts large enough to stay within ``features.max_parts``. Unknown length:
    double every tenth of the part limit, so a stream of any length fits (services allow parts
    of differing sizes).
    """
    part = max(config.part_size, features.min_part_size)
    if size is not None:
        return max(part, -(-size // features.max_parts)), 0
    return part, max(1, features.max_parts // 10)


def part_sizes(features: Features, config: TransferConfig, size: int | None) -> Iterator[int]:
    """The size of each part of an upload, in order (as :func:`part_plan` cuts it)."""
    part, double_every = part_plan(features, config, size)
    for number in itertools.count(1):
        yield part
        if double_every and number % double_every == 0:
            part *= 2


def read_exactly(source: Readable, size: int) -> bytes:
    """Read until ``size`` bytes or the end (pipes and sockets return short reads)."""
    first = source.read(size)
    if len(first) >= size or not first:
        return bytes(first)
    pieces = [first]
    got = len(first)
    while got < size:
        chunk = source.read(size - got)
        if not chunk:
            break
        pieces.append(chunk)
        got += len(chunk)
    return b"".join(pieces)


def read_all(source: Readable) -> bytes:
    """Everything ``source`` yields, to its end."""
    pieces = []
    while chunk := source.read(MiB):
        pieces.append(chunk)
    return b"".join(pieces)

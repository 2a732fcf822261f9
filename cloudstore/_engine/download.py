"""Downloads: ranged reads in parallel, verified, written by position into a temporary file.

Ranged reads are written by position into a temporary file beside the destination, verified
against the service's whole-object checksum when there is one, then renamed into place. A reader
that breaks is reopened where it stopped: a retried part is that part alone. Every response of
one download must come from the same version of the object (same ETag or generation, same
size): an object replaced mid-download raises
:class:`~cloudstore.exceptions.PreconditionFailedException` instead of splicing two versions
together, even where no checksum would catch it.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

from cloudstore._checksums import (
    Checksum,
    Hasher,
    SpanHashes,
    expected_checksum,
    hex_parts,
    new_hasher,
    verify,
    verify_file,
)
from cloudstore._engine.parts import Context, Progress, ProgressCallback, run_all
from cloudstore.backend import ObjectInfo, RangeReader
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    NotFoundException,
    PreconditionFailedException,
    ProviderConnectionException,
)


class PinnedVersion:
    """The one version of an object that every response of a download must come from."""

    def __init__(self, name: str, size: int | None) -> None:
        self._name = name
        self._size = size
        self._etag: str | None = None
        self._lock = threading.Lock()

    def check(self, reader: RangeReader) -> None:
        """Pin the version (ETag and size) the first response reports; refuse any other."""
        size = reader.info.size if reader.info is not None else None
        etag = reader.etag
        with self._lock:
            if self._size is None:
                self._size = size
            elif size is not None and size != self._size:
                self._changed(f"its size went from {self._size} to {size} bytes")
            if self._etag is None:
                self._etag = etag
            elif etag is not None and etag != self._etag:
                self._changed(f"its version went from {self._etag!r} to {etag!r}")

    def _changed(self, how: str) -> None:
        raise PreconditionFailedException(f"{self._name!r} was replaced while it was being read ({how}); read it again")


_Chunk = TypeVar("_Chunk", bytes, "bytes | memoryview")


def _read_into(reader: RangeReader, buffer: memoryview) -> bytes | memoryview:
    if type(reader).readinto is RangeReader.readinto:
        return reader.read(len(buffer))
    return buffer[: reader.readinto(buffer)]


class _ResumingRead:
    """One ranged read that reopens the body where it broke (each attempt one ``next_chunk``)."""

    def __init__(
        self,
        context: Context,
        bucket: str,
        name: str,
        start: int | None,
        end: int | None,
        expected_size: int | None,
        on_open: Callable[[RangeReader], None] | None,
        version: PinnedVersion,
    ) -> None:
        self._context = context
        self._bucket = bucket
        self._name = name
        self._start = start
        self._end = end
        self._on_open = on_open
        self._version = version
        #: The next byte to read, and the last one wanted (``None``: unknown until a response says).
        self.position = start or 0
        self.stop = None if expected_size is None else (end if end is not None else expected_size - 1)
        self._reader: RangeReader | None = None
        self._opened = False

    def next_chunk(self, chunk_size: int) -> bytes:
        """The next chunk (``b""`` at the end), opening the body first if it is not open."""
        return self._next(lambda reader: reader.read(chunk_size))

    def next_into(self, buffer: memoryview) -> bytes | memoryview:
        """The next chunk, at most ``len(buffer)`` bytes (empty at the end): read into ``buffer``
        (and a view of it returned) where the reader can, else the ``bytes`` it reads (a
        ``readinto`` built on ``read`` would only add a copy)."""
        return self._next(lambda reader: _read_into(reader, buffer))

    def _next(self, read: Callable[[RangeReader], _Chunk]) -> _Chunk:
        try:
            if self._reader is None:
                self._reader = self._open()
            chunk = read(self._reader)
            if not chunk and self.stop is not None and self.position <= self.stop:
                raise ProviderConnectionException(f"the body of {self._name!r} ended early at byte {self.position}")
            return chunk
        except BaseException:
            self.close()
            raise

    def _open(self) -> RangeReader:
        first = self.position if (self.position or self._start is not None) else None
        reader = self._context.backend.get_object(self._bucket, self._name, first, self._end)
        self._reader = reader  # closed by next_chunk if the checks below fail
        self._version.check(reader)
        if not self._opened:
            self._opened = True
            if self.stop is None and reader.info is not None:
                last = reader.info.size - 1
                self.stop = last if self._end is None else min(self._end, last)
            if self._on_open is not None:
                self._on_open(reader)
        return reader

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None


class Downloader:
    """Reads objects: as a stream of chunks, whole, or into a file."""

    def __init__(self, context: Context) -> None:
        self._context = context

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
        """The bytes of ``start``..``end`` (inclusive), reopening the stream where it broke.

        ``on_open`` sees the first reader opened (and so its ``info``) before any byte is yielded.
        Every reader opened must come from ``version`` (by default: the version the first reports).
        """
        version = version or PinnedVersion(name, expected_size)
        read = _ResumingRead(self._context, bucket, name, start, end, expected_size, on_open, version)
        chunk_size = chunk_size or self._context.config.chunk_size
        try:
            while True:
                chunk = self._context.call(lambda: read.next_chunk(chunk_size))
                if not chunk:
                    return
                read.position += len(chunk)
                yield chunk
                if read.stop is not None and read.position > read.stop:
                    return  # all of it: no request-wrapped read just to see the end
        finally:
            read.close()

    def stream(
        self,
        bucket: str,
        name: str,
        info: ObjectInfo | None = None,
        chunk_size: int | None = None,
        on_described: Callable[[ObjectInfo], None] | None = None,
    ) -> Iterator[bytes]:
        """The whole object, verified at the end against the service's checksum when it has one.

        Without ``info`` the properties come from the GET response itself (no HEAD first), and
        ``on_described`` is told them before the first byte.
        """
        known: list[ObjectInfo] = [info] if info is not None else []

        def opened(reader: RangeReader) -> None:
            if known:
                return
            described = self._described(bucket, name, reader)
            if described is not None:
                known.append(described)
                if on_described is not None:
                    on_described(described)

        hasher: Hasher | None = None
        checksum: Checksum | None = None
        started = False
        for chunk in self.chunks(
            bucket,
            name,
            expected_size=info.size if info else None,
            chunk_size=chunk_size,
            on_open=opened,
        ):
            if not started:
                started = True
                checksum = expected_checksum(known[0]) if known else None
                hasher = new_hasher(checksum) if checksum else None
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
        if not started and known and known[0].checksum:  # an empty object
            checksum = expected_checksum(known[0])
            hasher = new_hasher(checksum) if checksum else None
        if hasher is not None and checksum is not None:
            verify(hasher, checksum, f"download of {name!r}")

    def _described(self, bucket: str, name: str, reader: RangeReader) -> ObjectInfo | None:
        """The object's properties (size, checksum) for a read: from its GET response, or from a
        HEAD where the provider's response tells none (``None``: no such object any more)."""
        return reader.info or self._context.backend.head_object(bucket, name)

    def download_to_path(
        self,
        bucket: str,
        name: str,
        path: str | os.PathLike[str],
        progress: ProgressCallback | None = None,
        mode: int | None = None,
    ) -> ObjectInfo:
        """Write the object to ``path`` atomically: all of it, verified, or nothing.

        The first request asks for the first part (``min(part_size, threshold)`` bytes), and its
        response tells the object's size: a small object takes that one request (no HEAD first);
        the rest of a larger one comes in parallel ranges of ``part_size`` while the first
        response is still streaming (the same size, so that none of them lags behind).
        Returns the properties of the version written. ``mode`` (the permission bits of the
        file being replaced) is given to the new file; by default it gets the umask's.
        """
        report = Progress(progress)
        folder, file_name = os.path.split(os.fspath(path))
        temp = os.path.join(folder, f".{file_name}.{secrets.token_hex(4)}.cloudstore-part")
        fd = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode & 0o700)
        try:
            if mode is not None:
                os.fchmod(fd, mode)
            try:
                info = self._download_verified(fd, bucket, name, report)
            except ChecksumMismatchException:
                # Damage in transit (or a bad disk read) rarely strikes twice: fetch it all once more.
                os.ftruncate(fd, 0)
                info = self._download_verified(fd, bucket, name, report)
            os.close(fd)
            fd = -1
            os.replace(temp, path)
            return info
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise

    def _download_verified(self, fd: int, bucket: str, name: str, report: Progress) -> ObjectInfo:
        info, hashes = self._download_into(fd, bucket, name, report)
        checksum = expected_checksum(info)
        if checksum is None:
            return info
        what = f"download of {name!r}"
        if hashes is not None:
            hashes.verify(what)
        else:
            verify_file(fd, checksum, what)
        return info

    def _download_spans(self, size: int, head_size: int, checksum: Checksum | None) -> list[tuple[int, int]]:
        """The ``(start, length)`` ranges a download of ``size`` bytes fetches, the first one first.

        Where the object's checksum is made of per-part digests and its first part is the head's
        size, the ranges are those parts, so that each is hashed as it arrives (no pass over the
        file afterwards).
        """
        parts = checksum.parts if checksum is not None and hex_parts(checksum) is not None else None
        if parts and parts[0] == head_size and sum(parts) == size:
            return list(zip(itertools.accumulate(parts, initial=0), parts, strict=False))
        part = max(self._context.config.part_size, -(-size // 10_000))
        rest = [(start, min(part, size - start)) for start in range(head_size, size, part)]
        return [(0, min(head_size, size)), *rest]

    def _download_into(self, fd: int, bucket: str, name: str, report: Progress) -> tuple[ObjectInfo, SpanHashes | None]:
        """Write the object into ``fd``; its properties, and the hashes of its ranges where its
        checksum can be made from them (then they were hashed on the way: no pass over the file
        afterwards)."""
        described: list[ObjectInfo] = []
        version = PinnedVersion(name, None)
        config = self._context.config

        def opened(reader: RangeReader) -> None:
            info = self._described(bucket, name, reader)
            if info is None:
                raise NotFoundException(f"object {name!r} not found in bucket {bucket!r}", status=404)
            described.append(info)

        head_size = min(config.part_size, config.threshold)
        head = self.chunks(bucket, name, 0, head_size - 1, on_open=opened, version=version)
        try:
            first = next(head, b"")
        except CloudStoreException as err:
            if err.status != 416:
                raise
            # Only an empty object has no byte 0 to serve: read it whole instead.
            head = self.chunks(bucket, name, on_open=opened, version=version)
            first = next(head, b"")
        info = described[0]
        checksum = expected_checksum(info)
        spans = self._download_spans(info.size, head_size, checksum)
        hashes = SpanHashes(checksum, spans) if checksum is not None else None
        hashers: list[Hasher | None] = list(hashes.hashers) if hashes and hashes.hashers else [None] * len(spans)
        failed = threading.Event()

        def write(chunk: bytes | memoryview, offset: int, hasher: Hasher | None) -> None:
            _pwrite_all(fd, chunk, offset)
            if hasher is not None:
                hasher.update(chunk)
            report(len(chunk))

        def write_head() -> None:
            offset, hasher = 0, hashers[0]
            for chunk in itertools.chain([first], head):
                if failed.is_set():  # another part failed: the download is lost anyway
                    return
                write(chunk, offset, hasher)
                offset += len(chunk)
            if offset != spans[0][1]:
                raise ProviderConnectionException(f"the body of {name!r} ended early at byte {offset}")

        def fetch(index: int) -> Callable[[], None]:
            start, length = spans[index]

            def run() -> None:
                # One buffer per part, reused for every chunk: no bytes object per read where
                # the reader reads into it.
                buffer = memoryview(bytearray(min(config.chunk_size, length)))
                read = _ResumingRead(self._context, bucket, name, start, start + length - 1, info.size, None, version)
                try:
                    while read.position < start + length and not failed.is_set():
                        chunk = self._context.call(lambda: read.next_into(buffer))
                        if not chunk:
                            break
                        write(chunk, read.position, hashers[index])
                        read.position += len(chunk)
                finally:
                    read.close()
                if read.position != start + length and not failed.is_set():
                    raise ProviderConnectionException(f"the body of {name!r} ended early at byte {read.position}")

            return run

        try:
            if len(spans) == 1:
                write_head()
            else:
                os.ftruncate(fd, info.size)
                tasks = [write_head, *(fetch(index) for index in range(1, len(spans)))]
                run_all(tasks, config.max_concurrency, "cloudstore-down", failed)
        finally:
            head.close()
        return info, (hashes if hashes is not None and hashes.hashers is not None else None)

    def read_whole(self, bucket: str, name: str, on_described: Callable[[ObjectInfo], None] | None = None) -> bytes:
        """The whole object, verified; a checksum mismatch is read once more before it is raised."""
        try:
            return b"".join(self.stream(bucket, name, on_described=on_described))
        except ChecksumMismatchException:
            return b"".join(self.stream(bucket, name, on_described=on_described))


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written

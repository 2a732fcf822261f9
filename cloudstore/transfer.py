"""The one transfer engine every provider uses.

Uploads: a source of at most ``threshold`` bytes goes up in one request; a
larger one (or one of unknown length that turns out larger) goes up as parts of
``part_size`` bytes, ``max_concurrency`` at a time, and is committed once. A
failure aborts the multipart upload, so nothing becomes visible and no part is
left behind. Only ``max_concurrency`` parts are held in memory at once, so
memory stays near ``max_concurrency x part_size`` whatever the size.

Downloads: ranged reads in parallel, written by position into a temporary file
beside the destination, verified against the service's whole-object checksum
when there is one, then renamed into place. A reader that breaks is reopened
where it stopped: a retried part is that part alone. Every response of one
download must come from the same version of the object (same ETag or
generation, same size): an object replaced mid-download raises
:class:`~cloudstore.exceptions.PreconditionFailedException` instead of
splicing two versions together, even where no checksum would catch it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import os
import secrets
import threading
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cloudstore.backend import Backend, ObjectInfo, RangeReader, UploadPart
from cloudstore.checksums import (
    PART_LAYOUT_KEY,
    Checksum,
    Hasher,
    as_checksum,
    hex_parts,
    new_hasher,
    part_digest,
    part_layout,
    verify,
    verify_file,
    verify_part_digests,
)
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CleanupWarning,
    CloudStoreException,
    InvalidParamException,
    NotFoundException,
    PreconditionFailedException,
    ProviderConnectionException,
)
from cloudstore.retry import RetryPolicy

T = TypeVar("T")

MiB = 1024 * 1024


class Readable(Protocol):
    """Anything with a binary ``read(size)``: a file, a socket file, a pipe, a custom stream."""

    def read(self, size: int = -1, /) -> bytes: ...


#: Called with the number of bytes just transferred (from worker threads, one call at a time).
ProgressCallback = Callable[[int], None]


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


class _Progress:
    """Serialises calls to the user's callback."""

    def __init__(self, callback: ProgressCallback | None) -> None:
        self._callback = callback
        self._lock = threading.Lock()

    def __call__(self, amount: int) -> None:
        if self._callback is not None and amount:
            with self._lock:
                self._callback(amount)


class _Version:
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


class TransferEngine:
    """Moves bytes between the client and one provider, under one retry policy."""

    def __init__(self, backend: Backend, policy: RetryPolicy, config: TransferConfig) -> None:
        self.backend = backend
        self.policy = policy
        self.config = config

    def _call(self, fn: Callable[[], T]) -> T:
        return self.policy.call(fn, self.backend.map_error)

    # --- uploads ------------------------------------------------------------
    def upload(
        self,
        bucket: str,
        name: str,
        source: Readable,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str],
        progress: ProgressCallback | None = None,
    ) -> None:
        """Store everything ``source`` yields as the object ``name``."""
        report = _Progress(progress)
        threshold = self.config.threshold
        if not self.backend.features.multipart_upload:
            # Without parts every upload is one request: a stream is read whole first.
            head = _read_exactly(source, size) if size is not None else _read_all(source)
            self._put(bucket, name, head, content_type, metadata, report)
            return
        if size is not None and size > threshold:
            head = b""  # known to be large: straight to parts, no read-ahead buffer
        else:
            head = _read_exactly(source, threshold + 1 if size is None else size)
        if (size is None or size <= threshold) and len(head) <= threshold:
            self._put(bucket, name, head, content_type, metadata, report)
            return
        parts_source = _PartReader(source, head)
        del head  # the reader frees it once its bytes are sent
        self._upload_parts(bucket, name, parts_source, size, content_type, metadata, report)

    def _put(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        report: _Progress,
    ) -> None:
        """Store ``data`` in one request, with its MD5 for the service to check."""
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        self._call(lambda: self.backend.put_object(bucket, name, data, content_type, metadata, content_md5=md5))
        report(len(data))

    def _part_plan(self, size: int | None) -> tuple[int, int]:
        """How to cut an upload: the first part's size, and after how many parts it doubles (0: never).

        Unknown length: double every tenth of the part limit, so a stream of any length fits
        (services allow parts of differing sizes).
        """
        features = self.backend.features
        part = max(self.config.part_size, features.min_part_size)
        if size is not None:
            return max(part, -(-size // features.max_parts)), 0
        return part, max(1, features.max_parts // 10)

    def _part_sizes(self, size: int | None) -> Iterator[int]:
        part, double_every = self._part_plan(size)
        for number in itertools.count(1):
            yield part
            if double_every and number % double_every == 0:
                part *= 2

    def _upload_parts(
        self,
        bucket: str,
        name: str,
        parts_source: _PartReader,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str],
        report: _Progress,
    ) -> None:
        backend = self.backend
        if backend.features.records_part_layout:
            metadata = {**metadata, PART_LAYOUT_KEY: part_layout(*self._part_plan(size))}
        upload = self._create_upload(bucket, name, content_type, metadata)
        # The parts are read in order, so the whole object's MD5 costs one pass on this thread
        # (hashlib releases the GIL), paid only where the provider keeps it.
        content_md5 = hashlib.md5(usedforsecurity=False) if backend.features.stores_content_md5 else None
        slots = threading.BoundedSemaphore(self.config.max_concurrency)
        failed = threading.Event()
        pending: list[Future[UploadPart]] = []

        def send(number: int, offset: int, data: bytes) -> UploadPart:
            try:
                if failed.is_set():
                    raise _Cancelled
                # Each part's own MD5, on its worker thread, for the service to check.
                md5 = hashlib.md5(data, usedforsecurity=False).digest()
                part = self._call(lambda: backend.upload_part(upload, number, offset, data, content_md5=md5))
                report(len(data))
                return part
            except BaseException:
                failed.set()
                raise
            finally:
                slots.release()

        try:
            with ThreadPoolExecutor(self.config.max_concurrency, thread_name_prefix="cloudstore-up") as pool:
                try:
                    self._submit_parts(pool, send, parts_source, size, slots, failed, pending, content_md5)
                except BaseException:
                    failed.set()
                    raise
            errors = [f.exception() for f in pending]
            real = [e for e in errors if e is not None and not isinstance(e, _Cancelled)]
            if real:
                raise real[0]
            parts = [future.result() for future in pending]
            digest = content_md5.digest() if content_md5 is not None else None
            self._call(lambda: backend.complete_multipart_upload(upload, parts, digest))
        except BaseException as err:
            failed.set()
            self._abort_upload(upload, err)
            raise
        self._cleanup_upload(upload)

    def _create_upload(self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]) -> Any:
        """Start a multipart upload; if that took more than one attempt, abort what the lost ones started."""
        backend = self.backend
        attempts = 0
        # The service's clock decides what counts as "since"; allow for a little skew.
        started = datetime.now(timezone.utc).replace(microsecond=0) - _CLOCK_SKEW

        def create() -> Any:
            nonlocal attempts
            attempts += 1
            return backend.create_multipart_upload(bucket, name, content_type, metadata)

        upload = self._call(create)
        if attempts > 1:
            try:
                self._call(lambda: backend.abort_orphan_uploads(upload, started))
            except CloudStoreException as err:
                message = f"a retried start of an upload of {name!r} may have left another upload open: {err}"
                warnings.warn(CleanupWarning(message), stacklevel=4)
        return upload

    def _abort_upload(self, upload: Any, cause: BaseException) -> None:
        """Abort after a failure; a failed abort is added to ``cause`` and warned about."""
        try:
            self._call(lambda: self.backend.abort_multipart_upload(upload))
            self._call(lambda: self.backend.cleanup_multipart_upload(upload))
        except CloudStoreException as err:
            message = f"aborting the failed upload failed too; parts may be left behind: {err}"
            cause.add_note(message)
            warnings.warn(CleanupWarning(message), stacklevel=4)

    def _cleanup_upload(self, upload: Any) -> None:
        """Remove what a completed upload left behind; the object is stored either way."""
        try:
            self._call(lambda: self.backend.cleanup_multipart_upload(upload))
        except CloudStoreException as err:
            message = f"the upload is stored, but its parts could not be removed: {err}"
            warnings.warn(CleanupWarning(message), stacklevel=4)

    def _submit_parts(
        self,
        pool: ThreadPoolExecutor,
        send: Callable[[int, int, bytes], UploadPart],
        parts_source: _PartReader,
        size: int | None,
        slots: threading.BoundedSemaphore,
        failed: threading.Event,
        pending: list[Future[UploadPart]],
        content_md5: Hasher | None = None,
    ) -> None:
        """Read parts in order and hand each to the pool, at most ``max_concurrency`` in memory."""
        max_parts = self.backend.features.max_parts
        offset = 0
        sizes = self._part_sizes(size)
        for number in range(1, max_parts + 2):
            slots.acquire()
            if failed.is_set():
                slots.release()
                return
            part_size = next(sizes)
            data = parts_source.take(part_size)
            if not data and number > 1:
                slots.release()
                return
            if number > max_parts:
                slots.release()
                raise InvalidParamException(f"the upload needs more than {max_parts} parts; raise part_size")
            if content_md5 is not None:
                content_md5.update(data)
            pending.append(pool.submit(send, number, offset, data))
            offset += len(data)
            if len(data) < part_size:
                return

    # --- server-side copies ---------------------------------------------------
    def copy(self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str) -> None:
        """Copy on the server side, keeping content type and metadata, whatever the object's size.

        An object larger than one copy request allows (``features.max_copy_size``) is copied as a
        multipart upload whose parts are ranges copied on the server, ``max_concurrency`` at a time,
        all from the same source version; a failure aborts it and leaves the target untouched.
        """
        backend = self.backend
        if not backend.features.server_side_copy:
            self._copy_through(src_bucket, src_name, dst_bucket, dst_name)
            return
        limit = backend.features.max_copy_size
        if limit is not None:
            source = self._call(lambda: backend.head_object(src_bucket, src_name))
            if source is None:
                raise NotFoundException(f"object {src_name!r} not found in bucket {src_bucket!r}", status=404)
            if source.size > limit:
                self._copy_parts(src_bucket, src_name, dst_bucket, dst_name, source, limit)
                return
        self._call(lambda: backend.copy_object(src_bucket, src_name, dst_bucket, dst_name))

    def _copy_through(self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str) -> None:
        """Copy where the service cannot: download (verified) and upload in parts, as it streams."""
        described: list[ObjectInfo] = []
        chunks = self.stream(src_bucket, src_name, on_described=described.append)
        first = next(chunks, b"")  # the source's properties arrive with its first response
        if not described:
            info = self._call(lambda: self.backend.head_object(src_bucket, src_name))
            if info is None:
                raise NotFoundException(f"object {src_name!r} not found in bucket {src_bucket!r}", status=404)
            described.append(info)
        source = described[0]
        metadata = {key: value for key, value in (source.metadata or {}).items() if key != PART_LAYOUT_KEY}
        body = ChunkStream(itertools.chain([first], chunks))
        self.upload(dst_bucket, dst_name, body, source.size, source.content_type, metadata)

    def _copy_parts(
        self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str, source: ObjectInfo, limit: int
    ) -> None:
        backend = self.backend
        features = backend.features
        part = max(self.config.part_size, features.min_part_size, -(-source.size // features.max_parts))
        part = min(part, limit)
        ranges = [(start, min(start + part, source.size) - 1) for start in range(0, source.size, part)]
        metadata = {key: value for key, value in (source.metadata or {}).items() if key != PART_LAYOUT_KEY}
        if features.records_part_layout and features.part_copies_keep_digests:
            metadata[PART_LAYOUT_KEY] = part_layout(part, 0)
        upload = self._create_upload(dst_bucket, dst_name, source.content_type, metadata)

        def copy_part(number: int, start: int, end: int) -> Callable[[], UploadPart]:
            return lambda: self._call(
                lambda: backend.upload_part_copy(upload, number, src_bucket, src_name, start, end, source.etag)
            )

        try:
            parts = _run_all(
                [copy_part(number, start, end) for number, (start, end) in enumerate(ranges, 1)],
                self.config.max_concurrency,
                "cloudstore-copy",
            )
            self._call(lambda: backend.complete_multipart_upload(upload, parts))
        except BaseException as err:
            self._abort_upload(upload, err)
            raise
        self._cleanup_upload(upload)

    # --- downloads ----------------------------------------------------------
    def chunks(
        self,
        bucket: str,
        name: str,
        start: int | None = None,
        end: int | None = None,
        expected_size: int | None = None,
        chunk_size: int | None = None,
        on_open: Callable[[RangeReader], None] | None = None,
        version: _Version | None = None,
    ) -> Generator[bytes, None, None]:
        """The bytes of ``start``..``end`` (inclusive), reopening the stream where it broke.

        ``on_open`` sees the first reader opened (and so its ``info``) before any byte is yielded.
        Every reader opened must come from ``version`` (by default: the version the first reports).
        """
        chunk_size = chunk_size or self.config.chunk_size
        version = version or _Version(name, expected_size)
        position = start or 0
        stop = None if expected_size is None else (end if end is not None else expected_size - 1)
        reader: RangeReader | None = None
        opened = False

        def next_chunk() -> bytes:
            nonlocal reader, stop, opened
            try:
                if reader is None:
                    first = position if (position or start is not None) else None
                    reader = self.backend.get_object(bucket, name, first, end)
                    version.check(reader)
                    if not opened:
                        opened = True
                        if stop is None and reader.info is not None:
                            last = reader.info.size - 1
                            stop = last if end is None else min(end, last)
                        if on_open is not None:
                            on_open(reader)
                chunk = reader.read(chunk_size)
                if not chunk and stop is not None and position <= stop:
                    raise ProviderConnectionException(f"the body of {name!r} ended early at byte {position}")
                return chunk
            except BaseException:
                if reader is not None:
                    with contextlib.suppress(Exception):
                        reader.close()
                    reader = None
                raise

        try:
            while True:
                chunk = self._call(next_chunk)
                if not chunk:
                    return
                position += len(chunk)
                yield chunk
                if stop is not None and position > stop:
                    return  # all of it: no request-wrapped read just to see the end
        finally:
            if reader is not None:
                with contextlib.suppress(Exception):
                    reader.close()

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
                checksum = as_checksum(known[0].checksum) if known else None
                hasher = new_hasher(checksum) if checksum else None
            if hasher is not None:
                hasher.update(chunk)
            yield chunk
        if not started and known and known[0].checksum:  # an empty object
            checksum = as_checksum(known[0].checksum)
            hasher = new_hasher(checksum) if checksum else None
        if hasher is not None and checksum is not None:
            verify(hasher, checksum, f"download of {name!r}")

    def _described(self, bucket: str, name: str, reader: RangeReader) -> ObjectInfo | None:
        """The object's properties (size, checksum) for a read: from its GET response, or from a
        HEAD where the provider's response tells none (``None``: no such object any more)."""
        return reader.info or self.backend.head_object(bucket, name)

    def download_to_path(
        self, bucket: str, name: str, path: Path, progress: ProgressCallback | None = None, mode: int | None = None
    ) -> ObjectInfo:
        """Write the object to ``path`` atomically: all of it, verified, or nothing.

        The first request asks for the first part (``min(part_size, threshold)`` bytes), and its
        response tells the object's size: a small object takes that one request (no HEAD first);
        the rest of a larger one comes in parallel ranges of ``part_size`` while the first
        response is still streaming (the same size, so that none of them lags behind).
        Returns the properties of the version written. ``mode`` (the permission bits of the
        file being replaced) is given to the new file; by default it gets the umask's.
        """
        report = _Progress(progress)
        path = Path(path)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.cloudstore-part")
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

    def _download_verified(self, fd: int, bucket: str, name: str, report: _Progress) -> ObjectInfo:
        info, part_digests = self._download_into(fd, bucket, name, report)
        checksum = as_checksum(info.checksum)
        if checksum is None:
            return info
        what = f"download of {name!r}"
        if part_digests is not None:
            verify_part_digests(part_digests, checksum, what)
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
        part = max(self.config.part_size, -(-size // 10_000))
        rest = [(start, min(part, size - start)) for start in range(head_size, size, part)]
        return [(0, min(head_size, size)), *rest]

    def _download_into(
        self, fd: int, bucket: str, name: str, report: _Progress
    ) -> tuple[ObjectInfo, list[bytes] | None]:
        """Write the object into ``fd``; its properties, and its parts' digests where its checksum
        is made of them and they were hashed on the way."""
        described: list[ObjectInfo] = []
        version = _Version(name, None)

        def opened(reader: RangeReader) -> None:
            info = self._described(bucket, name, reader)
            if info is None:
                raise NotFoundException(f"object {name!r} not found in bucket {bucket!r}", status=404)
            described.append(info)

        head_size = min(self.config.part_size, self.config.threshold)
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
        checksum = as_checksum(info.checksum)
        spans = self._download_spans(info.size, head_size, checksum)
        hex_text = hex_parts(checksum) if checksum is not None else None
        hashed = hex_text is not None and checksum is not None and checksum.parts == tuple(n for _, n in spans)
        digests: list[bytes] = [b""] * len(spans)
        failed = threading.Event()

        def write(chunks: Iterable[bytes], index: int) -> None:
            """Write ``chunks`` as span ``index``, hashing them if the parts are the spans."""
            offset, length = spans[index]
            md5 = hashlib.md5(usedforsecurity=False) if hashed else None
            for chunk in chunks:
                if failed.is_set():  # another part failed: the download is lost anyway
                    return
                _pwrite_all(fd, chunk, offset)
                if md5 is not None:
                    md5.update(chunk)
                offset += len(chunk)
                report(len(chunk))
            if offset != spans[index][0] + length:
                raise ProviderConnectionException(f"the body of {name!r} ended early at byte {offset}")
            if md5 is not None:
                digests[index] = part_digest(md5, bool(hex_text))

        def fetch(index: int) -> Callable[[], None]:
            start, length = spans[index]

            def run() -> None:
                write(
                    self.chunks(bucket, name, start, start + length - 1, expected_size=info.size, version=version),
                    index,
                )

            return run

        def write_head() -> None:
            write(itertools.chain([first], head), 0)

        try:
            if len(spans) == 1:
                write_head()
            else:
                os.ftruncate(fd, info.size)
                tasks = [write_head, *(fetch(index) for index in range(1, len(spans)))]
                _run_all(tasks, self.config.max_concurrency, "cloudstore-down", failed)
        finally:
            head.close()
        return info, (digests if hashed else None)

    def read_whole(self, bucket: str, name: str, on_described: Callable[[ObjectInfo], None] | None = None) -> bytes:
        """The whole object, verified; a checksum mismatch is read once more before it is raised."""
        try:
            return b"".join(self.stream(bucket, name, on_described=on_described))
        except ChecksumMismatchException:
            return b"".join(self.stream(bucket, name, on_described=on_described))


#: How far the service's clock may be behind ours when we ask what it started "since" a moment.
_CLOCK_SKEW = timedelta(seconds=30)


class _Cancelled(Exception):
    """A part skipped because another part already failed."""


def _run_all(
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


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _read_all(source: Readable) -> bytes:
    """Everything ``source`` yields, to its end."""
    pieces = []
    while chunk := source.read(1024 * 1024):
        pieces.append(chunk)
    return b"".join(pieces)


class ChunkStream:
    """A readable binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()  # grows in place: a part is not re-copied per chunk

    def read(self, size: int = -1, /) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        if size < 0 or size >= len(self._buffer):
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:size])
            del self._buffer[:size]
        return data


def _read_exactly(source: Readable, size: int) -> bytes:
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


class _PartReader:
    """Hands out consecutive parts: first from the bytes read ahead, then from the source."""

    def __init__(self, source: Readable, head: bytes) -> None:
        self._source = source
        self._head = head
        self._position = 0

    def take(self, size: int) -> bytes:
        if self._position >= len(self._head):
            return _read_exactly(self._source, size)
        data = self._head[self._position : self._position + size]
        self._position += len(data)
        if self._position >= len(self._head):
            self._head = b""  # free the read-ahead buffer as soon as it is used up
            self._position = 0
        if len(data) < size:
            data += _read_exactly(self._source, size - len(data))
        return data


def open_source(data: Any) -> tuple[Readable, int | None]:
    """A binary stream and its length (when known) for bytes, str, a text stream (encoded as
    UTF-8) or a readable binary stream."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        return io.BytesIO(raw), len(raw)
    if isinstance(data, io.TextIOBase):
        return _Utf8Encoder(data), None  # its length in bytes is only known once read
    if hasattr(data, "read"):
        return data, _remaining_length(data)
    raise InvalidParamException(
        f"cannot upload a {type(data).__name__}: give bytes, str or a readable binary or text stream"
    )


class _Utf8Encoder:
    """A text stream read as the UTF-8 bytes of its characters."""

    def __init__(self, text: io.TextIOBase) -> None:
        self._text = text
        self._pending = b""

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            data, self._pending = self._pending + self._text.read().encode("utf-8"), b""
            return data
        while len(self._pending) < size:
            # A character is at most 4 bytes: reading size // 4 + 1 never overshoots much.
            chars = self._text.read(max(1, (size - len(self._pending)) // 4 + 1))
            if not chars:
                break
            self._pending += chars.encode("utf-8")
        data, self._pending = self._pending[:size], self._pending[size:]
        return data


def _remaining_length(stream: Any) -> int | None:
    try:
        if not stream.seekable():
            return None
        position = stream.tell()
        end = stream.seek(0, os.SEEK_END)
        stream.seek(position)
        return int(end - position)
    except (AttributeError, OSError, ValueError):
        return None

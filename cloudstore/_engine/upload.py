"""Uploads: one request for a small source, parallel parts committed once for a large one.

A source of at most ``threshold`` bytes goes up in one request; a larger one (or one of
unknown length that turns out larger) goes up as parts, ``max_concurrency`` at a time, and is
committed once. A failure aborts the multipart upload, so nothing becomes visible and no part is
left behind. Only ``max_concurrency`` parts are held in memory at once.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudstore._checksums import (
    PART_LAYOUT_KEY,
    Hasher,
    combine_crc32cs,
    crc32c_extend,
    crc32c_hex,
    part_layout,
)
from cloudstore._engine.parts import (
    Cancelled,
    Context,
    Progress,
    ProgressCallback,
    Readable,
    part_plan,
    part_sizes,
    read_all,
    read_exactly,
)
from cloudstore.backend import UploadPart, WriteCondition
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CleanupWarning,
    CloudStoreException,
    InvalidParamException,
    PreconditionFailedException,
)

#: How far the service's clock may be behind ours when we ask what it started "since" a moment.
_CLOCK_SKEW = timedelta(seconds=30)


class Uploader:
    """Stores what a source yields as one object."""

    def __init__(self, context: Context) -> None:
        self._context = context

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
        """Store everything ``source`` yields as the object ``name`` (if ``condition`` holds when
        it is committed: the one request of a small object, the commit of a multipart upload)."""
        report = Progress(progress)
        threshold = self._context.config.threshold
        if not self._context.features.multipart_upload:
            # Without parts every upload is one request: a stream is read whole first.
            data = read_exactly(source, size) if size is not None else read_all(source)
            self._put(bucket, name, data, content_type, metadata, report, condition)
            return
        if size is not None and size > threshold:
            head = b""  # known to be large: straight to parts, no read-ahead buffer
        else:
            head = read_exactly(source, threshold + 1 if size is None else size)
        if (size is None or size <= threshold) and len(head) <= threshold:
            self._put(bucket, name, head, content_type, metadata, report, condition)
            return
        # Where the provider records the part layout in metadata given when the upload starts,
        # the whole object's CRC32C goes with it, so it has to be known first: a source that
        # can be read twice (a file, bytes) is hashed before the upload (about 0.1-0.2 s of
        # CPU per GiB, in parallel, the GIL released); a stream is not, and keeps the part-wise check.
        crc32c = None
        if self._context.features.records_part_layout and size is not None and not head:
            crc32c = source_crc32c(source, size)
        parts_source = _PartReader(source, head)
        del head  # the reader frees it once its bytes are sent
        self._upload_parts(bucket, name, parts_source, size, content_type, metadata, report, condition, crc32c)

    def _put(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        report: Progress,
        condition: WriteCondition | None = None,
    ) -> None:
        """Store ``data`` in one request, with its MD5 for the service to check."""
        backend = self._context.backend
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        options: dict[str, Any] = {} if condition is None else {"condition": condition}
        attempts = 0

        def put() -> None:
            nonlocal attempts
            attempts += 1
            backend.put_object(bucket, name, data, content_type, metadata, content_md5=md5, **options)

        try:
            self._context.call(put)
        except PreconditionFailedException:
            # A retried conditional write is refused when an earlier attempt stored the object
            # but its answer was lost: the object holding exactly these bytes is that success.
            if attempts < 2 or not self._holds(bucket, name, md5):
                raise
        report(len(data))

    def _holds(self, bucket: str, name: str, md5: bytes) -> bool:
        """Whether the object ``name`` now has the MD5 ``md5``."""
        backend = self._context.backend
        info = self._context.call(lambda: backend.head_object(bucket, name))
        checksum = info.checksum if info is not None else None
        return checksum is not None and tuple(checksum[:2]) == ("md5", md5.hex())

    def _upload_parts(
        self,
        bucket: str,
        name: str,
        parts_source: _PartReader,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str],
        report: Progress,
        condition: WriteCondition | None,
        crc32c: int | None = None,
    ) -> None:
        """Upload the parts; ``crc32c`` (the source's, hashed beforehand) is recorded with the
        part layout, and the parts sent must make it (else the source changed meanwhile)."""
        context = self._context
        features = context.features
        if features.records_part_layout:
            layout = part_layout(*part_plan(features, context.config, size), crc32c)
            metadata = {**metadata, PART_LAYOUT_KEY: layout}
        upload = self.create(bucket, name, content_type, metadata)
        # The parts are read in order, so the whole object's MD5 costs one pass on this thread
        # (hashlib releases the GIL), paid only where the provider keeps it.
        content_md5 = hashlib.md5(usedforsecurity=False) if features.stores_content_md5 else None
        sender = _PartSender(context, upload, report, crc32c is not None)
        try:
            with ThreadPoolExecutor(context.config.max_concurrency, thread_name_prefix="cloudstore-up") as pool:
                try:
                    sender.submit_all(pool, parts_source, part_sizes(features, context.config, size), content_md5)
                except BaseException:
                    sender.failed.set()
                    raise
            parts = sender.results()
            if crc32c is not None and (sent := sender.crc32c()) != crc32c:
                raise ChecksumMismatchException(
                    f"the source of {name!r} changed while it was uploaded: its CRC32C was "
                    f"{crc32c_hex(crc32c)} before, the parts sent make {crc32c_hex(sent)}; upload it again"
                )
            digest = content_md5.digest() if content_md5 is not None else None
            options: dict[str, Any] = {} if condition is None else {"condition": condition}
            context.call(lambda: context.backend.complete_multipart_upload(upload, parts, digest, **options))
        except BaseException as err:
            sender.failed.set()
            self.abort(upload, err)
            raise
        self.clean_up(upload)

    def create(self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]) -> Any:
        """Start a multipart upload; if that took more than one attempt, abort what the lost ones started."""
        context = self._context
        attempts = 0
        # The service's clock decides what counts as "since"; allow for a little skew.
        started = datetime.now(UTC).replace(microsecond=0) - _CLOCK_SKEW

        def create() -> Any:
            nonlocal attempts
            attempts += 1
            return context.backend.create_multipart_upload(bucket, name, content_type, metadata)

        upload = context.call(create)
        if attempts > 1:
            try:
                context.call(lambda: context.backend.abort_orphan_uploads(upload, started))
            except CloudStoreException as err:
                message = f"a retried start of an upload of {name!r} may have left another upload open: {err}"
                warnings.warn(CleanupWarning(message), stacklevel=5)
        return upload

    def abort(self, upload: Any, cause: BaseException) -> None:
        """Abort after a failure; a failed abort is added to ``cause`` and warned about."""
        context = self._context
        try:
            context.call(lambda: context.backend.abort_multipart_upload(upload))
            context.call(lambda: context.backend.cleanup_multipart_upload(upload))
        except CloudStoreException as err:
            message = f"aborting the failed upload failed too; parts may be left behind: {err}"
            cause.add_note(message)
            warnings.warn(CleanupWarning(message), stacklevel=5)

    def clean_up(self, upload: Any) -> None:
        """Remove what a completed upload left behind; the object is stored either way."""
        context = self._context
        try:
            context.call(lambda: context.backend.cleanup_multipart_upload(upload))
        except CloudStoreException as err:
            message = f"the upload is stored, but its parts could not be removed: {err}"
            warnings.warn(CleanupWarning(message), stacklevel=5)


class _PartSender:
    """Sends the parts of one upload from a pool, at most ``max_concurrency`` in memory, and
    stops sending once one has failed."""

    def __init__(self, context: Context, upload: Any, report: Progress, crc32c: bool = False) -> None:
        self._context = context
        self._upload = upload
        self._report = report
        #: Each part's ``(CRC32C, length)`` by part number, when ``crc32c`` asks for them.
        self._crcs: dict[int, tuple[int, int]] | None = {} if crc32c else None
        self._slots = threading.BoundedSemaphore(context.config.max_concurrency)
        self._pending: list[Future[UploadPart]] = []
        self.failed = threading.Event()

    def submit_all(
        self, pool: ThreadPoolExecutor, source: _PartReader, sizes: Iterable[int], content_md5: Hasher | None
    ) -> None:
        """Read parts in order and hand each to the pool, a slot each."""
        max_parts = self._context.features.max_parts
        offset = 0
        sizes = iter(sizes)
        for number in range(1, max_parts + 2):
            self._slots.acquire()
            if self.failed.is_set():
                self._slots.release()
                return
            part_size = next(sizes)
            data = source.take(part_size)
            if not data and number > 1:
                self._slots.release()
                return
            if number > max_parts:
                self._slots.release()
                raise InvalidParamException(f"the upload needs more than {max_parts} parts; raise part_size")
            if content_md5 is not None:
                content_md5.update(data)
            self._pending.append(pool.submit(self._send, number, offset, data))
            offset += len(data)
            if len(data) < part_size:
                return

    def _send(self, number: int, offset: int, data: bytes) -> UploadPart:
        backend = self._context.backend
        try:
            if self.failed.is_set():
                raise Cancelled
            # Each part's own MD5, on its worker thread, for the service to check (and its
            # CRC32C in the same pass where the whole object's is recorded; both release the GIL).
            md5 = hashlib.md5(data, usedforsecurity=False).digest()
            if self._crcs is not None:
                self._crcs[number] = (crc32c_extend(0, data), len(data))
            part = self._context.call(lambda: backend.upload_part(self._upload, number, offset, data, content_md5=md5))
            self._report(len(data))
            return part
        except BaseException:
            self.failed.set()
            raise
        finally:
            self._slots.release()

    def results(self) -> list[UploadPart]:
        """The parts sent, in order; the first real failure if there was one."""
        errors = [future.exception() for future in self._pending]
        real = [error for error in errors if error is not None and not isinstance(error, Cancelled)]
        if real:
            raise real[0]
        return [future.result() for future in self._pending]

    def crc32c(self) -> int:
        """The CRC32C of every part sent, in order (after :meth:`results`)."""
        crcs = self._crcs or {}
        return combine_crc32cs([crcs[number] for number in sorted(crcs)])


def source_crc32c(source: Readable, size: int) -> int | None:
    """The CRC32C of the next ``size`` bytes of ``source``, leaving it where it was; ``None`` for
    a source that cannot be read twice (a pipe, a socket, a generator)."""
    if isinstance(source, io.BytesIO):
        position = source.tell()
        with source.getbuffer() as view:
            return crc32c_extend(0, view[position : position + size])
    try:
        fd, position = source.fileno(), source.tell()  # type: ignore[attr-defined]
        os.lseek(fd, 0, os.SEEK_CUR)  # a pipe has a descriptor but cannot seek
    except (AttributeError, OSError, ValueError):
        return None
    spans = [
        (start, min(_HASH_SPAN, position + size - start)) for start in range(position, position + size, _HASH_SPAN)
    ]
    with ThreadPoolExecutor(min(4, len(spans) or 1), thread_name_prefix="cloudstore-crc") as pool:
        crcs = list(pool.map(lambda span: _file_crc32c(fd, *span), spans))
    return combine_crc32cs(crcs)


#: How much of a file one thread hashes before the upload (spans hashed in parallel, then combined).
_HASH_SPAN = 64 * 1024 * 1024


def _file_crc32c(fd: int, offset: int, length: int) -> tuple[int, int]:
    """The ``(CRC32C, length read)`` of ``length`` bytes of ``fd`` from ``offset``."""
    crc, done = 0, 0
    # 1 MiB reads: few bytes in memory per thread, and large enough for the hash to release the GIL.
    while done < length and (chunk := os.pread(fd, min(1024 * 1024, length - done), offset + done)):
        crc = crc32c_extend(crc, chunk)
        done += len(chunk)
    return crc, done


class _PartReader:
    """Hands out consecutive parts: first from the bytes read ahead, then from the source."""

    def __init__(self, source: Readable, head: bytes) -> None:
        self._source = source
        self._head = head
        self._position = 0

    def take(self, size: int) -> bytes:
        if self._position >= len(self._head):
            return read_exactly(self._source, size)
        data = self._head[self._position : self._position + size]
        self._position += len(data)
        if self._position >= len(self._head):
            self._head = b""  # free the read-ahead buffer as soon as it is used up
            self._position = 0
        if len(data) < size:
            data += read_exactly(self._source, size - len(data))
        return data


# --- sources ----------------------------------------------------------------------------------
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


class ChunkStream:
    """A readable binary stream over an iterator of byte chunks."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buffer = bytearray()  # grows in place: a part is not re-copied per chunk

    def prime(self) -> None:
        """Take the first chunk now (so that whatever yields the chunks has started)."""
        self._buffer += next(self._chunks, b"")

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

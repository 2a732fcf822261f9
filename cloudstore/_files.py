"""File objects over stored objects: ``obj.open("rb")``, ``obj.open("wb")`` and :func:`open`.

Reading: a seekable :class:`io.BufferedIOBase` that fetches byte ranges a block at a time,
keeps a few blocks (bounded memory) and fetches the next block in the background while a
caller reads straight through. Every range comes from the version of the object the first
read saw (ETag and size): an object replaced meanwhile raises
:class:`~cloudstore.exceptions.PreconditionFailedException`, never a mix of two versions.

Writing: bytes written are handed to the upload engine as they come (large objects go up in
parallel parts), so memory stays near the engine's ``part_size x max_concurrency``. The object
becomes visible only on a clean :meth:`ObjectWriter.close`; an exception inside ``with`` or
:meth:`ObjectWriter.discard` aborts the upload and stores nothing. A writer opened with
``if_none_match="*"`` or ``if_match=etag`` commits only if the condition still holds then: a lost
race raises :class:`~cloudstore.exceptions.PreconditionFailedException` from ``close()``, and
nothing is stored.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from cloudstore._engine import PinnedVersion, TransferEngine
from cloudstore.exceptions import CloudStoreException, InvalidParamException, NotFoundException
from cloudstore.registry import parse_address

if TYPE_CHECKING:
    from cloudstore.model import BucketObject, CloudProvider

MiB = 1024 * 1024

#: Bytes per ranged read, and how many such blocks a reader keeps at most.
DEFAULT_BLOCK_SIZE = 2 * MiB
DEFAULT_CACHE_BLOCKS = 4


def _engine(provider: CloudProvider) -> TransferEngine:
    """The provider's transfer engine: the one place this module reaches below the public API."""
    return provider._engine


class ObjectReader(io.BufferedIOBase):
    """A read-only, seekable binary file over one version of a stored object."""

    def __init__(
        self,
        obj: BucketObject,
        block_size: int = DEFAULT_BLOCK_SIZE,
        cache_blocks: int = DEFAULT_CACHE_BLOCKS,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
            raise InvalidParamException("block_size must be a positive whole number")
        if isinstance(cache_blocks, bool) or not isinstance(cache_blocks, int) or cache_blocks < 1:
            raise InvalidParamException("cache_blocks must be a positive whole number")
        obj.refresh()  # its size, and NotFoundException now rather than at the first read
        self.name = obj.key
        self.obj = obj
        self.size = obj.size
        self._bucket = obj.bucket.name
        self._transfer = _engine(obj.provider)
        self._version = PinnedVersion(obj.name, obj.size)
        self._block_size = block_size
        self._cache_blocks = cache_blocks
        self._blocks: OrderedDict[int, bytes] = OrderedDict()
        self._ahead: dict[int, Future[bytes]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._position = 0
        self._last_block = -1
        self._on_close = on_close

    # --- io.BufferedIOBase ----------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence!r}")
        if position < 0:
            raise ValueError(f"negative seek position {position}")
        self._position = position
        return position

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        remaining = max(0, self.size - self._position)
        want = remaining if size is None or size < 0 else min(size, remaining)
        if want == 0:
            return b""
        buffer = bytearray(want)
        got = self.readinto(buffer)
        return bytes(buffer) if got == want else bytes(buffer[:got])

    def read1(self, size: int = -1) -> bytes:
        return self.read(size)

    def readinto(self, buffer: Any) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        want = min(len(view), max(0, self.size - self._position))
        if want == 0:
            return 0
        if want >= self._block_size and self._position % self._block_size == 0:
            # A large read goes straight into the caller's buffer, in one ranged request.
            self._fetch_into(view[:want], self._position)
            self._position += want
            self._last_block = (self._position - 1) // self._block_size
            return want
        done = 0
        while done < want:
            index, skip = divmod(self._position, self._block_size)
            block = self._block(index)
            piece = block[skip : skip + want - done]
            view[done : done + len(piece)] = piece
            done += len(piece)
            self._position += len(piece)
        return done

    def readinto1(self, buffer: Any) -> int:
        return self.readinto(buffer)

    def peek(self, size: int = 0) -> bytes:
        """Bytes from the current position without moving it (at most the rest of one block)."""
        self._check_open()
        if self._position >= self.size:
            return b""
        index, skip = divmod(self._position, self._block_size)
        return self._block(index)[skip:]

    def close(self) -> None:
        if self.closed:
            return
        try:
            if self._pool is not None:
                for future in self._ahead.values():
                    future.cancel()
                self._pool.shutdown(wait=True)
            self._blocks.clear()
            self._ahead.clear()
        finally:
            super().close()
            if self._on_close is not None:
                self._on_close()

    def detach(self) -> io.RawIOBase:
        raise io.UnsupportedOperation("an ObjectReader has no raw stream to detach")

    def __repr__(self) -> str:
        return f"<ObjectReader {self.obj!r} position={self._position} size={self.size}>"

    # --- blocks -----------------------------------------------------------------
    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def _range(self, start: int, length: int) -> bytes:
        """Bytes ``start`` .. ``start + length - 1`` of the pinned version."""
        chunks = self._transfer.chunks(
            self._bucket, self.name, start, start + length - 1, expected_size=self.size, version=self._version
        )
        data = b"".join(chunks)
        if len(data) != length:
            raise CloudStoreException(f"{self.name!r}: asked for {length} bytes at {start}, got {len(data)}")
        return data

    def _fetch_into(self, view: memoryview, start: int) -> None:
        offset = 0
        for chunk in self._transfer.chunks(
            self._bucket, self.name, start, start + len(view) - 1, expected_size=self.size, version=self._version
        ):
            view[offset : offset + len(chunk)] = chunk
            offset += len(chunk)
        if offset != len(view):
            raise CloudStoreException(f"{self.name!r}: asked for {len(view)} bytes at {start}, got {offset}")

    def _block_range(self, index: int) -> tuple[int, int]:
        start = index * self._block_size
        return start, min(self._block_size, self.size - start)

    def _block(self, index: int) -> bytes:
        """Block ``index``, from the cache, a read-ahead already running, or a new request."""
        block = self._blocks.get(index)
        if block is not None:
            self._blocks.move_to_end(index)
        else:
            pending = self._ahead.pop(index, None)
            block = pending.result() if pending is not None else self._range(*self._block_range(index))
            self._blocks[index] = block
            while len(self._blocks) > self._cache_blocks:
                self._blocks.popitem(last=False)
        sequential = index == self._last_block + 1
        self._last_block = index
        if sequential:
            self._read_ahead(index + 1)
        return block

    def _read_ahead(self, index: int) -> None:
        """Start fetching block ``index`` in the background (only while reading straight through)."""
        if index * self._block_size >= self.size or index in self._blocks or index in self._ahead:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="cloudstore-readahead")
        # Read-ahead counts against the cache: at most cache_blocks blocks are held at once.
        while len(self._blocks) + len(self._ahead) >= self._cache_blocks and len(self._blocks) > 1:
            self._blocks.popitem(last=False)
        self._ahead[index] = self._pool.submit(self._range, *self._block_range(index))


class _Pipe:
    """Bytes written on one thread and read by the upload on another, at most ``capacity`` held."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._pieces: list[bytes] = []
        self._held = 0
        self._ended = False
        self._broken: BaseException | None = None
        self._ready = threading.Condition()

    def write(self, data: bytes) -> None:
        with self._ready:
            while self._held >= self._capacity and self._broken is None:
                self._ready.wait()
            if self._broken is not None:
                raise self._broken
            self._pieces.append(data)
            self._held += len(data)
            self._ready.notify_all()

    def end(self) -> None:
        with self._ready:
            self._ended = True
            self._ready.notify_all()

    def break_(self, error: BaseException) -> None:
        """Make the reading and the writing side fail with ``error`` (the upload is given up)."""
        with self._ready:
            self._broken = error
            self._pieces.clear()
            self._held = 0
            self._ready.notify_all()

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            return b"".join(iter(lambda: self.read(self._capacity), b""))
        with self._ready:
            while not self._pieces:
                if self._broken is not None:
                    raise self._broken
                if self._ended:
                    return b""
                self._ready.wait()
            if self._broken is not None:
                raise self._broken
            data = self._take(size)
            self._ready.notify_all()
            return data

    def _take(self, size: int) -> bytes:
        first = self._pieces[0]
        if len(first) <= size:
            self._pieces.pop(0)
            self._held -= len(first)
            return first
        self._pieces[0] = first[size:]
        self._held -= size
        return first[:size]


class _Discarded(CloudStoreException):
    """The writer was discarded: the upload stops and nothing is stored."""


class ObjectWriter(io.BufferedIOBase):
    """A write-only binary file that uploads as it is written; the object appears on ``close()``."""

    def __init__(
        self,
        obj: BucketObject,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        on_close: Callable[[], None] | None = None,
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> None:
        from cloudstore.model import write_condition

        super().__init__()
        # A malformed or unsupported condition is refused here, before any request.
        write_condition(obj.provider, if_none_match, if_match)
        self.name = obj.key
        self.obj = obj
        self._on_close = on_close
        self._written = 0
        self._error: BaseException | None = None
        self._pipe = _Pipe(obj.provider.transfer_config.chunk_size)
        options = {"content_type": content_type, "metadata": metadata, "if_none_match": if_none_match}
        self._thread = threading.Thread(
            target=self._run, args=({**options, "if_match": if_match},), name="cloudstore-writer", daemon=True
        )
        self._thread.start()

    def _run(self, options: Mapping[str, Any]) -> None:
        try:
            self.obj.upload(self._pipe, **options)
        except BaseException as err:
            self._error = err
            self._pipe.break_(err)  # a writer blocked on a full pipe wakes up and raises

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._written

    def write(self, data: Any) -> int:
        self._check_open()
        piece = bytes(data)
        if piece:
            self._pipe.write(piece)
            self._written += len(piece)
        return len(piece)

    def flush(self) -> None:
        """Nothing to do: bytes go to the upload as they are written (the object appears on close)."""

    def close(self) -> None:
        """Finish the upload: the object is stored (and visible) when this returns."""
        if self.closed:
            return
        try:
            self._pipe.end()
            self._thread.join()
        finally:
            super().close()
            if self._on_close is not None:
                self._on_close()
        if self._error is not None and not isinstance(self._error, _Discarded):
            raise self._error

    def discard(self) -> None:
        """Give up: abort the upload; nothing is stored (an object already there stays as it was)."""
        if self.closed:
            return
        self._pipe.break_(_Discarded(f"the upload of {self.name!r} was discarded"))
        try:
            self._thread.join()
        finally:
            super().close()
            if self._on_close is not None:
                self._on_close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.discard()
        else:
            self.close()

    def __del__(self) -> None:
        # A writer dropped without close() stores nothing (io.IOBase.__del__ would close it).
        with contextlib.suppress(Exception):
            self.discard()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    def __repr__(self) -> str:
        return f"<ObjectWriter {self.obj!r} written={self._written}>"


_TEXT_MODES = {"r": "rb", "w": "wb", "rt": "rb", "wt": "wb"}


def open_object(
    obj: BucketObject,
    mode: str = "rb",
    *,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    content_type: str | None = None,
    metadata: Mapping[str, str] | None = None,
    block_size: int = DEFAULT_BLOCK_SIZE,
    cache_blocks: int = DEFAULT_CACHE_BLOCKS,
    on_close: Callable[[], None] | None = None,
    if_none_match: str | None = None,
    if_match: str | None = None,
) -> Any:
    """``obj`` opened as a file: see :meth:`cloudstore.BucketObject.open`."""
    binary = _TEXT_MODES.get(mode, mode)
    if binary not in ("rb", "wb"):
        raise InvalidParamException(f"mode must be one of 'rb', 'wb', 'r', 'w', not {mode!r}")
    text = binary != mode
    if not text and (encoding is not None or errors is not None or newline is not None):
        raise InvalidParamException("encoding, errors and newline are for text modes ('r', 'w')")
    if binary == "rb":
        if any(option is not None for option in (content_type, metadata, if_none_match, if_match)):
            raise InvalidParamException("content_type, metadata and write conditions are for writing ('wb', 'w')")
        file: ObjectReader | ObjectWriter = ObjectReader(obj, block_size, cache_blocks, on_close)
    else:
        file = ObjectWriter(obj, content_type, metadata, on_close, if_none_match=if_none_match, if_match=if_match)
    if not text:
        return file
    return _TextFile(file, encoding=encoding or "utf-8", errors=errors, newline=newline)


class _TextFile(io.TextIOWrapper):
    """A text file whose ``with`` block discards a write on an exception, as the binary writer does."""

    def discard(self) -> None:
        """Give up writing: nothing is stored (see :meth:`ObjectWriter.discard`)."""
        buffer = self.buffer
        if not isinstance(buffer, ObjectWriter):
            raise io.UnsupportedOperation("only a file open for writing can be discarded")
        buffer.discard()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None and isinstance(self.buffer, ObjectWriter):
            self.discard()
        else:
            self.close()


def open_address(address: str, mode: str = "rb", config: Mapping[str, Any] | None = None, **options: Any) -> Any:
    """``PROVIDER://bucket/key`` opened as :meth:`BucketObject.open` does; the provider made for
    it (from ``config``, the environment and the config file) is closed with the file."""
    from cloudstore.factory import CloudProviderFactory

    if not isinstance(address, str):
        raise InvalidParamException(f"the address must be a str, not {type(address).__name__}")
    parsed = parse_address(address)
    if parsed is None or not parsed[1] or not parsed[2]:
        raise InvalidParamException(f"{address!r} is not a PROVIDER://bucket/key address")
    which, bucket_name, key = parsed
    provider = CloudProviderFactory().create_provider(which, config)
    try:
        bucket = provider.storage.buckets.get(bucket_name)
        if bucket is None:
            raise NotFoundException(f"bucket {bucket_name!r} does not exist", status=404)
        obj = bucket.objects.create(key)
        return open_object(obj, mode, on_close=provider.close, **options)
    except BaseException:
        provider.close()
        raise

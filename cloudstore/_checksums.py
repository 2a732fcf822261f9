"""Whole-object checksums: what the service reports, how cloudstore verifies it.

A checksum is ``(algorithm, value)``:

``"md5"``, ``"crc32c"``
    the hex digest of the whole object;
``"md5-of-parts"``
    S3's multipart ETag, ``"<hex>-<N>"``: the MD5 of the N parts' binary MD5 digests;
``"md5-of-part-hexes"``
    a Swift SLO's ETag: the MD5 of the segments' hex MD5 digests, concatenated.

The two part-wise kinds also carry the size of every part (:attr:`Checksum.parts`); the hasher
splits the bytes at those boundaries, so a multipart object is verified exactly.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from cloudstore.exceptions import ChecksumMismatchException

if TYPE_CHECKING:
    from cloudstore.backend import ObjectInfo

_READ_CHUNK = 4 * 1024 * 1024

#: Object metadata key (reserved, hidden from users) in which the transfer engine records how a
#: multipart upload was cut: ``"<first part size>,<parts between doublings, 0 for never>"``, and,
#: when it knew it before the upload started, the whole object's CRC32C: ``",<8 hex digits>"``.
PART_LAYOUT_KEY = "cloudstore-part-layout"

_PART_WISE = ("md5-of-parts", "md5-of-part-hexes")


def hex_parts(checksum: Checksum) -> bool | None:
    """For a part-wise checksum with known parts: whether its parts' digests are hex text (Swift)
    rather than binary (S3); ``None`` for any other checksum."""
    if checksum.algorithm not in _PART_WISE or not checksum.parts:
        return None
    return checksum.algorithm == "md5-of-part-hexes"


def part_digest(md5: Any, hex_text: bool) -> bytes:
    """One part's digest as the part-wise checksum combines it."""
    return bytes(md5.hexdigest().encode() if hex_text else md5.digest())


def verify_part_digests(digests: list[bytes], expected: Checksum, what: str) -> None:
    """Raise :class:`ChecksumMismatchException` unless the parts' ``digests`` make ``expected``."""
    _compare(combine_part_digests(digests, expected.algorithm == "md5-of-part-hexes"), expected, what)


class Checksum(NamedTuple):
    """An expected whole-object checksum (a plain ``(algorithm, value)`` pair compares equal)."""

    algorithm: str
    value: str
    #: Sizes of the parts, in order, for the part-wise algorithms.
    parts: tuple[int, ...] | None = None


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Crc32c:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes | bytearray | memoryview, /) -> None:
        self.value = crc32c_extend(self.value, data)

    def hexdigest(self) -> str:
        return crc32c_hex(self.value)


# --- CRC32C ------------------------------------------------------------------------------------
#: The CRC32C (Castagnoli) polynomial, bit-reversed as the CRC is computed.
_CASTAGNOLI = 0x82F63B78

_Extend = Callable[[int, Any], int]


@functools.cache
def _extenders() -> tuple[_Extend, _Extend | None]:
    """google_crc32c's ``extend`` for ``bytes``, and the C library's own ``crc32c_extend`` through
    ctypes for writable buffers (``None`` where it cannot be found).

    The extension module takes only ``bytes`` (a ``bytearray`` or ``memoryview`` would need a
    copy) and releases the GIL only from 1 MiB; a ctypes call reads the buffer where it is and
    always releases the GIL, so the download workers hash their reused buffers in parallel.
    """
    import ctypes  # here, not at the top: only transfers that hash need it

    import google_crc32c  # a C implementation (pure Python where no wheel fits)

    module: Any = google_crc32c  # the package has no type hints
    extend: _Extend = module.extend
    try:
        from google_crc32c import _crc32c

        function: Any = ctypes.CDLL(_crc32c.__file__).crc32c_extend
    except (ImportError, OSError, AttributeError):
        return extend, None
    function.argtypes = (ctypes.c_uint32, ctypes.c_void_p, ctypes.c_size_t)
    function.restype = ctypes.c_uint32
    return extend, lambda crc, view: int(function(crc, (ctypes.c_char * view.nbytes).from_buffer(view), view.nbytes))


def crc32c_extend(crc: int, data: bytes | bytearray | memoryview) -> int:
    """The CRC32C of the bytes hashed into ``crc`` followed by ``data`` (0 to start)."""
    extend, in_place = _extenders()
    if isinstance(data, bytes):
        return extend(crc, data)
    view = memoryview(data)
    if not view.nbytes:
        return crc
    if in_place is None or view.readonly or not view.c_contiguous:
        return extend(crc, view.tobytes())
    return in_place(crc, view.cast("B"))


def crc32c_hex(crc: int) -> str:
    """A CRC32C as the 8 hex digits the services show."""
    return f"{crc:08x}"


def _gf2_times(matrix: list[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


@functools.cache
def _zeros_operators() -> tuple[list[int], ...]:
    """Operator ``k`` advances a CRC over ``2**k`` zero bytes (zlib's ``crc32_combine`` method):
    each is the square of the one before, the first is one zero bit squared three times."""
    operator = [_CASTAGNOLI] + [1 << bit for bit in range(31)]  # one zero bit
    for _ in range(3):
        operator = [_gf2_times(operator, row) for row in operator]
    operators = [operator]
    for _ in range(63):
        operator = [_gf2_times(operator, row) for row in operator]
        operators.append(operator)
    return tuple(operators)


def crc32c_combine(crc1: int, crc2: int, length2: int) -> int:
    """The CRC32C of ``A + B`` from ``crc1`` (of ``A``), ``crc2`` (of ``B``) and ``B``'s length."""
    operators = _zeros_operators()
    power = 0
    while length2 > 0:
        if length2 & 1:
            crc1 = _gf2_times(operators[power], crc1)
        length2 >>= 1
        power += 1
    return crc1 ^ crc2


def combine_crc32cs(parts: list[tuple[int, int]]) -> int:
    """The CRC32C of consecutive pieces given as ``(crc, length)``, in order."""
    whole = 0
    for crc, length in parts:
        whole = crc32c_combine(whole, crc, length)
    return whole


class _PartsMD5:
    """The MD5 of per-part MD5s, the parts cut at fixed sizes as the bytes stream by."""

    def __init__(self, parts: tuple[int, ...], hex_parts: bool) -> None:
        self._sizes = iter(parts)
        self._hex_parts = hex_parts
        self._digests: list[bytes] = []
        self._current = hashlib.md5(usedforsecurity=False)
        self._left = next(self._sizes, 0)
        self._count = len(parts)

    def update(self, data: bytes | memoryview, /) -> None:
        view = memoryview(data)
        while view:
            if self._left == 0:
                self._close_part()
            take = view[: self._left] if self._left else view
            self._current.update(take)
            self._left -= len(take)
            view = view[len(take) :]

    def _close_part(self) -> None:
        self._digests.append(self._digest(self._current))
        self._current = hashlib.md5(usedforsecurity=False)
        # Past the declared parts every byte is "too many": the result cannot match.
        self._left = next(self._sizes, 1 << 62)

    def _digest(self, part: Any) -> bytes:
        return part_digest(part, self._hex_parts)

    def hexdigest(self) -> str:
        digests = [*self._digests, self._digest(self._current)]
        return combine_part_digests(digests, self._hex_parts, self._count)


def combine_part_digests(digests: list[bytes], hex_parts: bool, count: int | None = None) -> str:
    """The part-wise checksum value from the parts' digests (binary, or hex text for Swift)."""
    whole = hashlib.md5(b"".join(digests), usedforsecurity=False).hexdigest()
    return whole if hex_parts else f"{whole}-{count if count is not None else len(digests)}"


def expected_checksum(info: ObjectInfo) -> Checksum | None:
    """What a download of the object described by ``info`` is verified against: the CRC32C the
    engine recorded at upload (cheapest to check, and checked range by range), else the
    service's own checksum."""
    return recorded_crc32c(info.metadata) or as_checksum(info.checksum)


class SpanHashes:
    """Hashes the ranges of a parallel download as they arrive, where the expected checksum can
    be made from one hash per range: a CRC32C (ranges combined at the end, any cut), a
    part-wise MD5 whose parts are the ranges, or any checksum of a download in one range (a
    small object: hashed as it arrives, not read back from the file). :attr:`hashers` is
    ``None`` otherwise."""

    def __init__(self, expected: Checksum, spans: list[tuple[int, int]]) -> None:
        self._expected = expected
        self._lengths = [length for _, length in spans]
        self._hex_parts = hex_parts(expected)
        self._whole: Hasher | None = None
        self.hashers: list[Any] | None = None
        if expected.algorithm == "crc32c":
            self.hashers = [_Crc32c() for _ in spans]
        elif self._hex_parts is not None and expected.parts == tuple(self._lengths):
            self.hashers = [hashlib.md5(usedforsecurity=False) for _ in spans]
        elif len(spans) == 1 and (whole := new_hasher(expected)) is not None:
            self._whole = whole
            self.hashers = [whole]

    def verify(self, what: str) -> None:
        """Raise :class:`ChecksumMismatchException` unless the ranges hashed make the checksum."""
        assert self.hashers is not None
        if self._whole is not None:
            verify(self._whole, self._expected, what)
        elif self._hex_parts is None:
            whole = combine_crc32cs([(h.value, n) for h, n in zip(self.hashers, self._lengths, strict=True)])
            _compare(crc32c_hex(whole), self._expected, what)
        else:
            verify_part_digests([part_digest(h, self._hex_parts) for h in self.hashers], self._expected, what)


def as_checksum(value: Checksum | tuple[str, str] | None) -> Checksum | None:
    """``value`` as a :class:`Checksum` (providers may give a plain ``(algorithm, value)`` pair)."""
    if value is None or isinstance(value, Checksum):
        return value
    return Checksum(value[0], value[1])


def new_hasher(checksum: Checksum | str) -> Hasher | None:
    """A running hash for ``checksum`` (or a plain algorithm name), ``None`` if unavailable here."""
    algorithm = checksum if isinstance(checksum, str) else checksum.algorithm
    parts = None if isinstance(checksum, str) else checksum.parts
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "crc32c":
        return _Crc32c()
    if algorithm in _PART_WISE and parts:
        return _PartsMD5(parts, hex_parts=algorithm == "md5-of-part-hexes")
    return None


def verify(hasher: Hasher, expected: Checksum, what: str) -> None:
    """Raise :class:`ChecksumMismatchException` unless ``hasher`` matches ``expected``."""
    _compare(hasher.hexdigest(), expected, what)


def _compare(actual: str, expected: Checksum, what: str) -> None:
    if actual.lower() != expected.value.lower():
        raise ChecksumMismatchException(
            f"{what}: {expected.algorithm} of the received bytes is {actual}, the service says {expected.value}"
        )


def verify_file(fd: int, expected: Checksum, what: str) -> None:
    """Hash the open file ``fd`` from its start and verify it against ``expected``.

    Part-wise checksums hash their parts in parallel (``hashlib`` releases the GIL).
    """
    parts = expected.parts
    hex_text = hex_parts(expected)
    if parts and len(parts) > 1 and hex_text is not None:
        spans = list(zip(_offsets(parts), parts, strict=True))
        with ThreadPoolExecutor(min(8, len(parts)), thread_name_prefix="cloudstore-verify") as pool:
            digests = list(pool.map(lambda span: _hash_span(fd, span[0], span[1], hex_text), spans))
        verify_part_digests(digests, expected, what)
        return
    hasher = new_hasher(expected)
    if hasher is None:
        return
    offset = 0
    while chunk := os.pread(fd, _READ_CHUNK, offset):
        hasher.update(chunk)
        offset += len(chunk)
    verify(hasher, expected, what)


def _offsets(parts: tuple[int, ...]) -> Iterator[int]:
    offset = 0
    for size in parts:
        yield offset
        offset += size


def _hash_span(fd: int, offset: int, size: int, hex_text: bool) -> bytes:
    md5 = hashlib.md5(usedforsecurity=False)
    end = offset + size
    while offset < end and (chunk := os.pread(fd, min(_READ_CHUNK, end - offset), offset)):
        md5.update(chunk)
        offset += len(chunk)
    return part_digest(md5, hex_text)


def part_sizes(total: int, first: int, double_every: int) -> Iterator[int]:
    """The sizes of the parts the engine cuts ``total`` bytes into (see :func:`part_layout`)."""
    size, number, left = first, 0, total
    while left > 0:
        yield min(size, left)
        left -= size
        number += 1
        if double_every and number % double_every == 0:
            size *= 2


def part_layout(first: int, double_every: int, crc32c: int | None = None) -> str:
    """The :data:`PART_LAYOUT_KEY` value for parts of ``first`` bytes doubling every ``double_every``
    (and the whole object's CRC32C, when known)."""
    layout = f"{first},{double_every}"
    return layout if crc32c is None else f"{layout},{crc32c_hex(crc32c)}"


def _layout_fields(metadata: Mapping[str, str] | None) -> list[str]:
    return ((metadata or {}).get(PART_LAYOUT_KEY) or "").split(",")


def recorded_crc32c(metadata: Mapping[str, str] | None) -> Checksum | None:
    """The whole-object CRC32C the engine recorded in ``metadata`` at upload, if any."""
    fields = _layout_fields(metadata)
    if len(fields) != 3 or len(fields[2]) != 8:
        return None
    try:
        int(fields[2], 16)
    except ValueError:
        return None
    return Checksum("crc32c", fields[2].lower())


def parts_from_layout(metadata: Mapping[str, str] | None, total: int) -> tuple[int, ...] | None:
    """The part sizes recorded in ``metadata`` for an object of ``total`` bytes, if any."""
    fields = _layout_fields(metadata)
    if len(fields) not in (2, 3):
        return None
    first, double_every = fields[:2]
    if not (first.isdigit() and double_every.isdigit()) or int(first) < 1:
        return None
    return tuple(part_sizes(total, int(first), int(double_every)))


def multipart_etag_checksum(etag: str, total: int, metadata: Mapping[str, str] | None) -> Checksum | None:
    """An S3 multipart ETag ("<md5 of part md5s>-<N>") as a checksum, when the part sizes are known."""
    digest, _, count = etag.partition("-")
    parts = parts_from_layout(metadata, total)
    if parts is None or not count.isdigit() or int(count) != len(parts) or len(digest) != 32:
        return None
    return Checksum("md5-of-parts", etag, parts)

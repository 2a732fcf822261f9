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

import hashlib
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple, Protocol

from cloudstore.exceptions import ChecksumMismatchException

_READ_CHUNK = 4 * 1024 * 1024

#: Object metadata key (reserved, hidden from users) in which the transfer engine records how a
#: multipart upload was cut: ``"<first part size>,<parts between doublings, 0 for never>"``.
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
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Crc32c:
    def __init__(self) -> None:
        import google_crc32c  # a C implementation (shipped with the gcp extra)

        checksum_class: Any = google_crc32c.Checksum  # the package has no type hints
        self._crc = checksum_class()

    def update(self, data: bytes, /) -> None:
        self._crc.update(data)

    def hexdigest(self) -> str:
        return bytes(self._crc.digest()).hex()


class _PartsMD5:
    """The MD5 of per-part MD5s, the parts cut at fixed sizes as the bytes stream by."""

    def __init__(self, parts: tuple[int, ...], hex_parts: bool) -> None:
        self._sizes = iter(parts)
        self._hex_parts = hex_parts
        self._digests: list[bytes] = []
        self._current = hashlib.md5(usedforsecurity=False)
        self._left = next(self._sizes, 0)
        self._count = len(parts)

    def update(self, data: bytes, /) -> None:
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
        try:
            return _Crc32c()
        except ImportError:
            return None
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


def part_layout(first: int, double_every: int) -> str:
    """The :data:`PART_LAYOUT_KEY` value for parts of ``first`` bytes doubling every ``double_every``."""
    return f"{first},{double_every}"


def parts_from_layout(metadata: Mapping[str, str] | None, total: int) -> tuple[int, ...] | None:
    """The part sizes recorded in ``metadata`` for an object of ``total`` bytes, if any."""
    layout = (metadata or {}).get(PART_LAYOUT_KEY)
    if not layout:
        return None
    first, _, double_every = layout.partition(",")
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

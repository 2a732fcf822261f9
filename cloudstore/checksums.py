"""Whole-object checksums the service reports, and their verification."""

from __future__ import annotations

import hashlib
import os
from typing import Any, Protocol

from cloudstore.exceptions import ChecksumMismatchException

_READ_CHUNK = 4 * 1024 * 1024


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class _Crc32c:
    def __init__(self) -> None:
        import google_crc32c  # shipped with the gcp extra, the only service that reports CRC32C alone

        checksum_class: Any = google_crc32c.Checksum  # the package has no type hints
        self._crc = checksum_class()

    def update(self, data: bytes, /) -> None:
        self._crc.update(data)

    def hexdigest(self) -> str:
        return bytes(self._crc.digest()).hex()


def new_hasher(algorithm: str) -> Hasher | None:
    """A running hash for ``algorithm`` (``"md5"`` or ``"crc32c"``), or ``None`` if unavailable here."""
    if algorithm == "md5":
        return hashlib.md5(usedforsecurity=False)
    if algorithm == "crc32c":
        try:
            return _Crc32c()
        except ImportError:
            return None
    return None


def verify(hasher: Hasher, expected: tuple[str, str], what: str) -> None:
    """Raise :class:`ChecksumMismatchException` unless ``hasher`` matches ``expected``."""
    actual = hasher.hexdigest()
    if actual.lower() != expected[1].lower():
        raise ChecksumMismatchException(
            f"{what}: {expected[0]} of the received bytes is {actual}, the service says {expected[1]}"
        )


def verify_file(fd: int, expected: tuple[str, str], what: str) -> None:
    """Hash the open file ``fd`` from its start and verify it against ``expected``."""
    hasher = new_hasher(expected[0])
    if hasher is None:
        return
    offset = 0
    while chunk := os.pread(fd, _READ_CHUNK, offset):
        hasher.update(chunk)
        offset += len(chunk)
    verify(hasher, expected, what)

"""Test streams shared by the provider and engine tests."""

from __future__ import annotations

import io
from typing import Any


class BreakingStream(io.RawIOBase):
    """A non-seekable stream that yields ``good`` bytes, then fails like a dropped network stream."""

    def __init__(self, good: int) -> None:
        self.left = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            raise OSError("stream broke")
        n = min(len(buffer), self.left)
        buffer[:n] = b"s" * n
        self.left -= n
        return n

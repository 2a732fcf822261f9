"""The transfer engine's building blocks on their own (no provider, no server); the engine at work
through the public API is tests/test_transfers.py."""

from __future__ import annotations

import pytest

from cloudstore._engine import ChunkStream


@pytest.mark.parametrize("sizes", [[5, -1], [1, 1, 1, 100], [3, 3, 3, 3, 3], [-1]])
def test_chunk_stream_reads_across_chunk_boundaries(sizes: list[int]) -> None:
    chunks = [b"abc", b"", b"defgh", b"ij"]
    stream = ChunkStream(iter(chunks))
    got = b"".join(stream.read(size) for size in sizes) + stream.read()
    assert got == b"abcdefghij"
    assert stream.read(4) == b"" and stream.read() == b""

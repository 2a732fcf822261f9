"""Part-wise checksums: the hashers match the formulas S3 and Swift use for multipart objects."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cloudstore._checksums import (
    PART_LAYOUT_KEY,
    Checksum,
    as_checksum,
    multipart_etag_checksum,
    new_hasher,
    part_layout,
    part_sizes,
    parts_from_layout,
    verify_file,
)
from cloudstore.exceptions import ChecksumMismatchException


def _s3_etag(parts: list[bytes]) -> str:
    return hashlib.md5(b"".join(hashlib.md5(p).digest() for p in parts)).hexdigest() + f"-{len(parts)}"


def _swift_slo_etag(parts: list[bytes]) -> str:
    return hashlib.md5("".join(hashlib.md5(p).hexdigest() for p in parts).encode()).hexdigest()


def _cut(data: bytes, sizes: tuple[int, ...]) -> list[bytes]:
    out, offset = [], 0
    for size in sizes:
        out.append(data[offset : offset + size])
        offset += size
    return out


@pytest.mark.parametrize(("algorithm", "formula"), [("md5-of-parts", _s3_etag), ("md5-of-part-hexes", _swift_slo_etag)])
@pytest.mark.parametrize("feed", [1, 7, 100, 10_000])
def test_part_wise_hashers_match_the_services_formulas(algorithm: str, formula: object, feed: int) -> None:
    data = os.urandom(2500)
    sizes = tuple(part_sizes(len(data), 300, 3))  # 300, 300, 300, 600, 600, 400
    assert sizes == (300, 300, 300, 600, 600, 400)
    expected = Checksum(algorithm, formula(_cut(data, sizes)), sizes)  # type: ignore[operator]
    hasher = new_hasher(expected)
    assert hasher is not None
    for offset in range(0, len(data), feed):
        hasher.update(data[offset : offset + feed])
    assert hasher.hexdigest() == expected.value


@pytest.mark.parametrize("algorithm", ["md5-of-parts", "md5-of-part-hexes"])
def test_verify_file_hashes_parts_in_parallel_and_catches_one_flipped_byte(tmp_path: Path, algorithm: str) -> None:
    data = bytearray(os.urandom(1_000_000))
    sizes = tuple(part_sizes(len(data), 65_536, 0))
    formula = _s3_etag if algorithm == "md5-of-parts" else _swift_slo_etag
    expected = Checksum(algorithm, formula(_cut(bytes(data), sizes)), sizes)
    path = tmp_path / "f"
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        verify_file(fd, expected, "test")
    finally:
        os.close(fd)
    data[700_001] ^= 1
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(ChecksumMismatchException, match=algorithm):
            verify_file(fd, expected, "test")
    finally:
        os.close(fd)


def test_layout_round_trip_and_refusals() -> None:
    metadata = {PART_LAYOUT_KEY: part_layout(100, 2)}
    assert parts_from_layout(metadata, 450) == (100, 100, 200, 50)
    assert parts_from_layout({}, 450) is None
    assert parts_from_layout({PART_LAYOUT_KEY: "nonsense"}, 450) is None
    assert parts_from_layout({PART_LAYOUT_KEY: "0,0"}, 450) is None
    etag = _s3_etag(_cut(os.urandom(450), (100, 100, 200, 50)))
    assert multipart_etag_checksum(etag, 450, metadata) == Checksum("md5-of-parts", etag, (100, 100, 200, 50))
    # A part count that disagrees with the layout (another tool re-wrote it) claims nothing.
    assert multipart_etag_checksum(etag.replace("-4", "-5"), 450, metadata) is None
    assert multipart_etag_checksum(etag, 450, None) is None


def test_plain_pairs_still_work() -> None:
    assert as_checksum(("md5", "ab")) == Checksum("md5", "ab")
    assert as_checksum(None) is None
    assert new_hasher("crc32c") is not None

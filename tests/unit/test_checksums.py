"""Part-wise checksums: the hashers match the formulas S3 and Swift use for multipart objects."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cloudstore._checksums import (
    PART_LAYOUT_KEY,
    Checksum,
    SpanHashes,
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


# --- CRC32C: combined from pieces, read from any buffer, recorded with the part layout -----------


def test_crc32c_combine_matches_google_crc32c_over_random_splits() -> None:
    import random

    import google_crc32c

    from cloudstore._checksums import combine_crc32cs, crc32c_combine

    rng = random.Random(11)
    data = os.urandom(300_000)
    whole = google_crc32c.value(data)
    for _ in range(40):
        cuts = sorted(rng.sample(range(len(data) + 1), rng.randint(1, 12)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]  # some empty
        assert combine_crc32cs([(google_crc32c.value(p), len(p)) for p in pieces]) == whole
    assert crc32c_combine(whole, google_crc32c.value(b""), 0) == whole
    assert combine_crc32cs([]) == 0 == google_crc32c.value(b"")


def test_crc32c_extend_reads_any_buffer() -> None:
    import google_crc32c

    from cloudstore._checksums import crc32c_extend

    data = os.urandom(3 * 1024 * 1024 + 5)
    expected = google_crc32c.value(data)
    writable = memoryview(bytearray(data))
    assert crc32c_extend(0, data) == expected
    assert crc32c_extend(0, writable) == expected  # in place, through the C library
    assert crc32c_extend(0, writable.toreadonly()) == expected
    assert crc32c_extend(crc32c_extend(0, writable[:1000]), writable[1000:]) == expected
    assert crc32c_extend(0, writable[::2]) == google_crc32c.value(data[::2])  # not contiguous
    assert crc32c_extend(7, b"") == 7


def test_the_crc32c_recorded_with_the_layout_is_read_back_and_preferred() -> None:
    from cloudstore._checksums import expected_checksum, recorded_crc32c
    from cloudstore.backend import ObjectInfo

    metadata = {PART_LAYOUT_KEY: part_layout(100, 2, 0xAB)}
    assert metadata[PART_LAYOUT_KEY] == "100,2,000000ab"
    assert recorded_crc32c(metadata) == Checksum("crc32c", "000000ab")
    assert parts_from_layout(metadata, 450) == (100, 100, 200, 50)  # the layout is still read
    for value in ("100,2", "100,2,xyz", "100,2,abc", "100,2,0000000g", "100,2,1,2"):
        assert recorded_crc32c({PART_LAYOUT_KEY: value}) is None
    etag = "0" * 32 + "-4"
    info = ObjectInfo("k", 450, etag=etag, metadata=metadata, checksum=multipart_etag_checksum(etag, 450, metadata))
    assert expected_checksum(info) == Checksum("crc32c", "000000ab")
    assert expected_checksum(ObjectInfo("k", 1, checksum=("md5", "a" * 32))) == Checksum("md5", "a" * 32)


@pytest.mark.parametrize("algorithm", ["md5", "crc32c"])
def test_a_download_in_one_range_is_hashed_as_it_arrives(algorithm: str) -> None:
    data = os.urandom(5000)
    hasher = new_hasher(algorithm)
    assert hasher is not None
    hasher.update(data)
    expected = Checksum(algorithm, hasher.hexdigest())
    hashes = SpanHashes(expected, [(0, len(data))])
    assert hashes.hashers is not None  # no pass over the written file afterwards
    for start in range(0, len(data), 1000):
        hashes.hashers[0].update(data[start : start + 1000])
    hashes.verify("small download")
    flipped = SpanHashes(expected, [(0, len(data))])
    assert flipped.hashers is not None
    flipped.hashers[0].update(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(ChecksumMismatchException):
        flipped.verify("small download")

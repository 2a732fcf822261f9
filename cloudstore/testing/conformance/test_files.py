"""File objects (``obj.open``, ``cloudstore.open``), on every provider."""

from __future__ import annotations

import io
import os
import random

import pytest

import cloudstore
from cloudstore import Bucket, NotFoundException, PreconditionFailedException
from cloudstore._files import ObjectReader
from cloudstore.testing import TEST_TRANSFER, Target

KiB = 1024
MiB = 1024 * KiB


def test_read_seek_tell_readinto_and_lines(bucket: Bucket) -> None:
    data = os.urandom(300 * KiB) + b"first line\nsecond line\nlast"
    bucket.objects.create("blob").upload(data)
    with bucket.objects.get("blob").open("rb", block_size=64 * KiB, cache_blocks=2) as f:  # type: ignore[union-attr]
        assert isinstance(f, io.BufferedIOBase) and f.seekable() and f.readable() and not f.writable()
        assert f.read(10) == data[:10]
        assert f.tell() == 10
        f.seek(100 * KiB - 5)  # across a block boundary
        assert f.read(10) == data[100 * KiB - 5 : 100 * KiB + 5]
        buffer = bytearray(70 * KiB)
        f.seek(1)
        assert f.readinto(buffer) == len(buffer)
        assert bytes(buffer) == data[1 : 1 + len(buffer)]
        f.seek(-len(b"first line\nsecond line\nlast"), io.SEEK_END)
        assert f.readline() == b"first line\n"
        assert list(f) == [b"second line\n", b"last"]
        assert f.read() == b""
        f.seek(10, io.SEEK_END)  # past the end, as a file allows: reads nothing
        assert f.read(5) == b""
        rng = random.Random(7)
        for _ in range(30):
            start = rng.randrange(len(data))
            length = rng.randrange(1, 150 * KiB)
            f.seek(start)
            assert f.read(length) == data[start : start + length]
        assert isinstance(f, ObjectReader)
        assert len(f._blocks) + len(f._ahead) <= 2  # bounded: never more than cache_blocks kept
        f.seek(0)
        assert f.read() == data
    assert f.closed


def test_empty_object_reads_nothing(bucket: Bucket) -> None:
    bucket.objects.create("empty").upload(b"")
    with bucket.objects.get("empty").open("rb") as f:  # type: ignore[union-attr]
        assert f.read() == b"" and f.read(10) == b""


def test_reading_a_missing_object_raises_not_found(bucket: Bucket) -> None:
    with pytest.raises(NotFoundException):
        bucket.objects.create("missing").open("rb")


@pytest.mark.parametrize("new_size", ["same", "other"])
def test_a_replaced_object_is_an_error_not_spliced_bytes(bucket: Bucket, new_size: str) -> None:
    first = b"a" * (256 * KiB)
    bucket.objects.create("moving").upload(first)
    with bucket.objects.get("moving").open("rb", block_size=64 * KiB, cache_blocks=1) as f:  # type: ignore[union-attr]
        assert f.read(10) == b"a" * 10
        bucket.objects.create("moving").upload(b"b" * (len(first) if new_size == "same" else len(first) + 1))
        f.seek(200 * KiB)  # a block not read yet: it must come from the first version or fail
        with pytest.raises(PreconditionFailedException):
            f.read(10)


def test_write_streams_parts_and_appears_only_on_close(bucket: Bucket) -> None:
    data = os.urandom(2 * TEST_TRANSFER.part_size + 123)  # three parts with the test's transfer config
    obj = bucket.objects.create("streamed")
    with obj.open("wb") as f:
        assert f.writable() and not f.readable()
        for start in range(0, len(data), 300 * KiB):
            f.write(data[start : start + 300 * KiB])
        assert f.tell() == len(data)
        assert bucket.objects.get("streamed") is None  # parts sent, nothing visible yet
    got = bucket.objects.get("streamed")
    assert got is not None and got.size == len(data)
    assert got.read() == data


@pytest.mark.parametrize("size", [10 * KiB, 2 * TEST_TRANSFER.part_size], ids=["small", "multipart"])
def test_exception_inside_with_stores_nothing(bucket: Bucket, size: int) -> None:
    bucket.objects.create("kept").upload(b"old content")
    with pytest.raises(RuntimeError, match="stop"), bucket.objects.create("kept").open("wb") as f:
        f.write(os.urandom(size))
        raise RuntimeError("stop")
    assert bucket.objects.get("kept").read() == b"old content"  # type: ignore[union-attr]
    with pytest.raises(KeyError), bucket.objects.create("new").open("w") as text:
        text.write("x" * size)
        raise KeyError("stop")
    assert bucket.objects.get("new") is None


def test_discard_stores_nothing(bucket: Bucket) -> None:
    f = bucket.objects.create("dropped").open("wb")
    f.write(os.urandom(TEST_TRANSFER.part_size + 1))
    f.discard()
    assert f.closed
    assert bucket.objects.get("dropped") is None
    assert [o.name for o in bucket.objects] == []


def test_text_modes(bucket: Bucket) -> None:
    lines = ["héllo wörld\n", "ファイル\n", "last line"]
    with bucket.objects.create("utf8.txt").open("w") as f:
        f.writelines(lines)
    assert bucket.objects.get("utf8.txt").read() == "".join(lines).encode("utf-8")  # type: ignore[union-attr]
    with bucket.objects.get("utf8.txt").open("r") as f:  # type: ignore[union-attr]
        assert f.readlines() == lines
    with bucket.objects.create("latin.txt").open("w", encoding="latin-1") as f:
        f.write("café")
    assert bucket.objects.get("latin.txt").read() == "café".encode("latin-1")  # type: ignore[union-attr]


def test_content_type_and_metadata_on_write(bucket: Bucket) -> None:
    with bucket.objects.create("typed.csv").open("wb", content_type="text/csv", metadata={"origin": "test"}) as f:
        f.write(b"a,b\n1,2\n")
    got = bucket.objects.get("typed.csv")
    assert got is not None and got.content_type == "text/csv" and got.metadata == {"origin": "test"}


def test_open_by_address(bucket: Bucket, cloudstore_target: Target) -> None:
    config = cloudstore_target.provider_config()
    address = f"{cloudstore_target.provider}://{bucket.name}/by/address.txt"
    with cloudstore.open(address, "w", config=config) as f:
        f.write("through an address")
    with cloudstore.open(address, "rb", config=config) as f:
        assert isinstance(f, ObjectReader)
        assert f.read() == b"through an address"
    with pytest.raises(NotFoundException):
        cloudstore.open(f"{cloudstore_target.provider}://{bucket.name}/by/nothing", "rb", config=config)

"""SPEC 3: objects, on every provider."""

from __future__ import annotations

import io
import os
import threading
from datetime import datetime
from pathlib import Path

import pytest

from cloudstore import (
    Bucket,
    CloudProvider,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
)
from cloudstore.testing import unique_name

NAMES = ["plain.txt", "with space.txt", "nested/deeper/leaf.bin", "unicodé/ファイル-名.txt", "a+b=c&d.txt"]


def test_create_is_only_a_handle(bucket: Bucket) -> None:
    obj = bucket.objects.create("not-yet.txt")
    assert obj.name == "not-yet.txt"
    assert bucket.objects.get("not-yet.txt") is None
    assert not obj.exists()


@pytest.mark.parametrize("name", NAMES)
def test_round_trip_names(bucket: Bucket, name: str) -> None:
    bucket.objects.create(name).upload(b"payload " + name.encode())
    got = bucket.objects.get(name)
    assert got is not None
    assert got.name == name
    assert got.read() == b"payload " + name.encode()
    assert [o.name for o in bucket.objects.find(name=name)] == [name]


def test_upload_bytes_str_stream_and_file(bucket: Bucket, tmp_path: Path) -> None:
    bucket.objects.create("bytes").upload(b"\x00\x01binary")
    bucket.objects.create("str").upload("héllo wörld")
    bucket.objects.create("stream").upload(io.BytesIO(b"from a stream"))
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(100_000))
    bucket.objects.create("file").upload_from_file(source)
    assert bucket.objects.get("bytes").read() == b"\x00\x01binary"  # type: ignore[union-attr]
    assert bucket.objects.get("str").read() == "héllo wörld".encode()  # type: ignore[union-attr]
    assert bucket.objects.get("stream").read() == b"from a stream"  # type: ignore[union-attr]
    assert bucket.objects.get("file").read() == source.read_bytes()  # type: ignore[union-attr]


def test_non_seekable_stream_upload(bucket: Bucket) -> None:
    read_fd, write_fd = os.pipe()
    payload = os.urandom(200_000)

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as writer:
            writer.write(payload)

    writer_thread = threading.Thread(target=feed)
    writer_thread.start()
    with os.fdopen(read_fd, "rb", buffering=0) as pipe:
        obj = bucket.objects.create("from-pipe")
        obj.upload(pipe)
    writer_thread.join()
    assert obj.size == len(payload)
    assert bucket.objects.get("from-pipe").read() == payload  # type: ignore[union-attr]


def test_empty_object(bucket: Bucket, tmp_path: Path) -> None:
    obj = bucket.objects.create("empty")
    obj.upload(b"")
    got = bucket.objects.get("empty")
    assert got is not None and got.size == 0
    assert got.read() == b""
    assert list(got.iter_content()) == []
    target = tmp_path / "empty.out"
    got.download_to_file(target)
    assert target.read_bytes() == b""


def test_properties(bucket: Bucket) -> None:
    bucket.objects.create("props.json").upload(b'{"a": 1}', content_type="application/json", metadata={"owner": "ml"})
    got = bucket.objects.get("props.json")
    assert got is not None
    assert got.size == 8
    assert got.content_type == "application/json"
    assert got.metadata == {"owner": "ml"}
    assert isinstance(got.last_modified, datetime) and got.last_modified.tzinfo is not None
    assert got.etag
    assert got.id == "props.json"


def test_metadata_from_listing_is_fetched_on_demand(bucket: Bucket) -> None:
    bucket.objects.create("m").upload(b"x", metadata={"stage": "raw"})
    (listed,) = bucket.objects.list()
    assert listed.metadata == {"stage": "raw"}


def test_invalid_metadata_rejected_before_upload(bucket: Bucket) -> None:
    with pytest.raises(InvalidParamException):
        bucket.objects.create("bad-meta").upload(b"x", metadata={"not valid!": "v"})
    assert bucket.objects.get("bad-meta") is None


def test_overwrite_replaces_content_and_metadata(bucket: Bucket) -> None:
    obj = bucket.objects.create("over")
    obj.upload(b"first version", metadata={"v": "1"})
    obj.upload(b"second", metadata={"v": "2"})
    got = bucket.objects.get("over")
    assert got is not None
    assert got.read() == b"second"
    assert got.size == 6
    assert got.metadata == {"v": "2"}


def test_range_reads(bucket: Bucket) -> None:
    data = bytes(range(256)) * 40
    obj = bucket.objects.create("ranged")
    obj.upload(data)
    assert obj.read(0, 0) == data[:1]
    assert obj.read(10, 19) == data[10:20]
    assert obj.read(start=10_000) == data[10_000:]
    assert obj.read(end=99) == data[:100]
    assert obj.read(10_000, 20_000) == data[10_000:]
    with pytest.raises(InvalidParamException):
        obj.read(20, 10)


def test_iter_content_and_save_content(bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(300_000)
    bucket.objects.create("chunks").upload(data)
    obj = bucket.objects.get("chunks")
    assert obj is not None
    chunks = list(obj.iter_content(chunk_size=65_536))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= 65_536
    buffer = io.BytesIO()
    obj.save_content(buffer)
    assert buffer.getvalue() == data


def test_download_to_file_replaces_atomically(bucket: Bucket, tmp_path: Path) -> None:
    data = os.urandom(50_000)
    bucket.objects.create("dl").upload(data)
    target = tmp_path / "target.bin"
    target.write_bytes(b"old")
    bucket.objects.get("dl").download_to_file(target)  # type: ignore[union-attr]
    assert target.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target.bin"]


def test_large_object_multipart_round_trip(provider: CloudProvider, bucket: Bucket, tmp_path: Path) -> None:
    size = 12 * 1024 * 1024 + 123
    assert size > provider.transfer_config.threshold
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(size))
    seen: list[int] = []
    obj = bucket.objects.create("big/model.bin")
    obj.upload_from_file(source, content_type="application/x-model", metadata={"kind": "model"}, progress=seen.append)
    assert sum(seen) == size
    got = bucket.objects.get("big/model.bin")
    assert got is not None
    assert got.size == size
    assert got.content_type == "application/x-model"
    assert got.metadata == {"kind": "model"}
    target = tmp_path / "big.out"
    progress: list[int] = []
    got.download_to_file(target, progress=progress.append)
    assert sum(progress) == size
    assert target.read_bytes() == source.read_bytes()
    assert got.read(size - 10, size - 1) == source.read_bytes()[-10:]
    assert [o.name for o in bucket.objects] == ["big/model.bin"], "parts or segments leaked into the listing"


def test_delete(bucket: Bucket) -> None:
    obj = bucket.objects.create("gone")
    obj.upload(b"bye")
    obj.delete()
    assert bucket.objects.get("gone") is None
    assert not obj.exists()
    with pytest.raises(NotFoundException):
        obj.refresh()


def test_missing_object_errors(bucket: Bucket, tmp_path: Path) -> None:
    ghost = bucket.objects.create("ghost")
    with pytest.raises(NotFoundException):
        ghost.read()
    with pytest.raises(NotFoundException):
        list(ghost.iter_content())
    with pytest.raises(NotFoundException):
        ghost.download_to_file(tmp_path / "never")
    assert not (tmp_path / "never").exists()
    with pytest.raises(NotFoundException):
        ghost.delete()


def test_copy_to(provider: CloudProvider, bucket: Bucket) -> None:
    source = bucket.objects.create("orig.txt")
    source.upload(b"copy me", content_type="text/plain", metadata={"src": "yes"})
    other = provider.storage.buckets.create(unique_name())
    try:
        copied = source.copy_to(other, "copied.txt")
        got = other.objects.get("copied.txt")
        assert got is not None and copied.name == "copied.txt" and copied.size == 7
        assert source.copy_to(other.name, "by-name.txt").read() == b"copy me"
        with pytest.raises(InvalidNameException):
            source.copy_to("not/a bucket", "x")
        assert got.read() == b"copy me"
        assert got.content_type == "text/plain"
        assert got.metadata == {"src": "yes"}
        assert bucket.objects.get("orig.txt") is not None
    finally:
        other.delete(delete_contents=True)


def test_invalid_object_names_rejected(bucket: Bucket) -> None:
    for bad in ["", "x" * 1025, "nul\x00byte"]:
        with pytest.raises(InvalidNameException):
            bucket.objects.create(bad)
        with pytest.raises(InvalidNameException):
            bucket.objects.get(bad)


def test_unreadable_file_is_a_typed_error(bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(InvalidParamException):
        bucket.objects.create("nofile").upload_from_file(tmp_path / "does-not-exist")
    assert bucket.objects.get("nofile") is None

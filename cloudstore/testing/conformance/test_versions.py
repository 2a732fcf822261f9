"""SPEC 6 integrity: one download never splices two versions of an object, on every provider.

A download is many responses (parallel ranges, a stream reopened where it broke). Each
response says which version of the object it belongs to (ETag or generation); the engine
pins the first and refuses any other, which catches a replacement even where the object
has no checksum to verify (multipart uploads).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudstore import Bucket, CloudProvider, PreconditionFailedException, ProviderConnectionException
from cloudstore.backend import RangeReader
from cloudstore.testing import Call, Spied, backend_of, fresh_bucket

MiB = 1024 * 1024


def test_every_response_reports_the_version_it_belongs_to(provider: CloudProvider, bucket: Bucket) -> None:
    backend = backend_of(provider)
    small = bucket.objects.create("small.bin")
    small.upload(os.urandom(1000))
    large = bucket.objects.create("large.bin")
    large.upload(os.urandom(7 * MiB))  # above the test threshold: a multipart upload
    for obj in (small, large):
        with backend.get_object(bucket.name, obj.name) as whole:
            assert whole.etag is not None
        with backend.get_object(bucket.name, obj.name, 5, 9) as part:
            assert part.etag == whole.etag
        obj.upload(os.urandom(1000))
        with backend.get_object(bucket.name, obj.name, 5, 9) as replaced:
            assert replaced.etag is not None and replaced.etag != whole.etag


@pytest.fixture
def spied_bucket(spied: Spied) -> Iterator[Bucket]:
    """A fresh bucket of the spied provider."""
    with fresh_bucket(spied.provider) as bucket:
        yield bucket


def test_parallel_download_refuses_an_object_replaced_midway(
    spied: Spied, spied_bucket: Bucket, tmp_path: Path
) -> None:
    size = 11 * MiB  # three ranges of the test part size
    obj = spied_bucket.objects.create("replaced.bin")
    obj.upload(os.urandom(size))
    replaced = threading.Event()

    def replace_before_the_second_range(call: Call) -> None:
        if call.number == 2 and not replaced.is_set():
            spied.backend.inner.put_object(spied_bucket.name, obj.name, os.urandom(size), None, {})  # same size
            replaced.set()

    spied.backend.before("get_object", replace_before_the_second_range)
    target = tmp_path / "replaced.bin"
    with pytest.raises(PreconditionFailedException, match="replaced while it was being read"):
        obj.download_to_file(target)
    assert replaced.is_set()
    assert list(tmp_path.iterdir()) == []  # no destination, no temporary file


class _BreakAfterFirstChunk(RangeReader):
    def __init__(self, reader: RangeReader) -> None:
        self._reader = reader
        self.info = reader.info
        self._served = False

    @property
    def etag(self) -> str | None:
        return self._reader.etag

    def read(self, size: int = -1) -> bytes:
        if self._served:
            raise ProviderConnectionException("connection reset (injected)")
        self._served = True
        return self._reader.read(size)

    def close(self) -> None:
        self._reader.close()


def _break_the_first(call: Call, reader: RangeReader) -> RangeReader:
    return _BreakAfterFirstChunk(reader) if call.number == 1 else reader


def test_resumed_stream_refuses_an_object_replaced_midway(spied: Spied, spied_bucket: Bucket) -> None:
    obj = spied_bucket.objects.create("resumed.bin")
    original = os.urandom(3 * MiB)  # below the threshold: one stream, reopened where it broke
    obj.upload(original)

    def replace_before_the_second(call: Call) -> None:
        if call.number == 2:
            spied.backend.inner.put_object(spied_bucket.name, obj.name, os.urandom(len(original)), None, {})

    spied.backend.after("get_object", _break_the_first)
    spied.backend.before("get_object", replace_before_the_second)
    received = b""
    with pytest.raises(PreconditionFailedException, match="replaced while it was being read"):
        for chunk in obj.iter_content(chunk_size=MiB):
            received += chunk
    assert received == original[: len(received)]  # what was handed over is all of the old version
    assert 0 < len(received) < len(original)


def test_resumed_stream_of_an_unchanged_object_completes(spied: Spied, spied_bucket: Bucket) -> None:
    obj = spied_bucket.objects.create("unchanged.bin")
    original = os.urandom(3 * MiB)
    obj.upload(original)
    spied.backend.after("get_object", _break_the_first)
    assert b"".join(obj.iter_content(chunk_size=MiB)) == original

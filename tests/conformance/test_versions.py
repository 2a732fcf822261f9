"""SPEC 6 integrity: one download never splices two versions of an object, on every provider.

A download is many responses (parallel ranges, a stream reopened where it broke). Each
response says which version of the object it belongs to (ETag or generation); the engine
pins the first and refuses any other, which catches a replacement even where the object
has no checksum to verify (multipart uploads).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from cloudstore import Bucket, CloudProvider, PreconditionFailedException, ProviderConnectionException
from cloudstore.backend import RangeReader

MiB = 1024 * 1024


def test_every_response_reports_the_version_it_belongs_to(provider: CloudProvider, bucket: Bucket) -> None:
    backend = provider._backend
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


class _Interposer:
    """Wraps the provider's ``get_object``: ``before_call(n)`` runs before the n-th call (1-based)."""

    def __init__(self, provider: CloudProvider, monkeypatch: pytest.MonkeyPatch, before_call: Any) -> None:
        self._real = provider._backend.get_object
        self._before_call = before_call
        self._calls = 0
        self._lock = threading.Lock()
        monkeypatch.setattr(provider._backend, "get_object", self)

    def __call__(self, *args: Any, **kwargs: Any) -> RangeReader:
        with self._lock:
            self._calls += 1
            number = self._calls
        return self._before_call(number, self._real, *args, **kwargs)


def test_parallel_download_refuses_an_object_replaced_midway(
    provider: CloudProvider, bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    size = 11 * MiB  # three ranges of the test part size
    obj = bucket.objects.create("replaced.bin")
    obj.upload(os.urandom(size))
    replaced = threading.Event()

    def replace_before_the_second_range(number: int, real: Any, *args: Any, **kwargs: Any) -> RangeReader:
        if number == 2 and not replaced.is_set():
            provider._backend.put_object(bucket.name, obj.name, os.urandom(size), None, {})  # same size
            replaced.set()
        return real(*args, **kwargs)

    _Interposer(provider, monkeypatch, replace_before_the_second_range)
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


def test_resumed_stream_refuses_an_object_replaced_midway(
    provider: CloudProvider, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = bucket.objects.create("resumed.bin")
    original = os.urandom(3 * MiB)  # below the threshold: one stream, reopened where it broke
    obj.upload(original)

    def break_then_replace(number: int, real: Any, *args: Any, **kwargs: Any) -> RangeReader:
        if number == 1:
            return _BreakAfterFirstChunk(real(*args, **kwargs))
        if number == 2:
            provider._backend.put_object(bucket.name, obj.name, os.urandom(len(original)), None, {})
        return real(*args, **kwargs)

    _Interposer(provider, monkeypatch, break_then_replace)
    received = b""
    with pytest.raises(PreconditionFailedException, match="replaced while it was being read"):
        for chunk in obj.iter_content(chunk_size=MiB):
            received += chunk
    assert received == original[: len(received)]  # what was handed over is all of the old version
    assert 0 < len(received) < len(original)


def test_resumed_stream_of_an_unchanged_object_completes(
    provider: CloudProvider, bucket: Bucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    obj = bucket.objects.create("unchanged.bin")
    original = os.urandom(3 * MiB)
    obj.upload(original)

    def break_once(number: int, real: Any, *args: Any, **kwargs: Any) -> RangeReader:
        reader = real(*args, **kwargs)
        return _BreakAfterFirstChunk(reader) if number == 1 else reader

    _Interposer(provider, monkeypatch, break_once)
    assert b"".join(obj.iter_content(chunk_size=MiB)) == original

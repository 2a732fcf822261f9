"""SPEC 6: the transfer engine — memory bounds on real providers, and its part logic.

The memory tests move 256 MiB through LOCAL and through S3 (SeaweedFS) and measure the
Python heap's peak with tracemalloc: it must stay near ``max_concurrency x part_size``.
The part-logic tests drive the engine with an in-memory backend (pure logic, no SDK).
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import threading
import tracemalloc
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from cloudstore import (
    ChecksumMismatchException,
    CleanupWarning,
    CloudProvider,
    InvalidParamException,
    PermissionDeniedException,
    RetryPolicy,
    ThrottledException,
    TransferConfig,
)
from cloudstore._checksums import PART_LAYOUT_KEY, Checksum, multipart_etag_checksum, part_sizes, recorded_crc32c
from cloudstore._engine import TransferEngine
from cloudstore._names import s3_bucket_name
from cloudstore.backend import Backend, BucketInfo, Features, FileRangeReader, ObjectInfo, Page, RangeReader, UploadPart
from cloudstore.exceptions import CloudStoreException, PreconditionFailedException, ProviderConnectionException
from tests.conftest import make_provider, unique_name
from tests.support.streams import BreakingStream

MiB = 1024 * 1024
BIG = 256 * MiB
MEMORY_CONFIG = TransferConfig(threshold=8 * MiB, part_size=8 * MiB, max_concurrency=4)
#: Allowance above max_concurrency x part_size for the interpreter, SDK buffers and one part being read.
SLACK = 24 * MiB


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("big") / "big.bin"
    block = os.urandom(MiB)
    with open(path, "wb") as out:
        for i in range(BIG // MiB):
            out.write(block[i:] + block[:i])
    return path


def _same_file(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(8 * MiB), fb.read(8 * MiB)
            if x != y:
                return False
            if not x:
                return True


@pytest.mark.slow
@pytest.mark.parametrize("provider_id", ["local", "aws"])
def test_256_mib_round_trip_stays_within_memory_bound(
    provider_id: str, servers: Any, big_file: Path, tmp_path: Path
) -> None:
    provider: CloudProvider = make_provider(servers.get(provider_id), transfer_config=MEMORY_CONFIG)
    bucket = provider.storage.buckets.create(unique_name("mem"))
    bound = MEMORY_CONFIG.max_concurrency * MEMORY_CONFIG.part_size + SLACK
    try:
        obj = bucket.objects.create("big.bin")
        tracemalloc.start()
        try:
            obj.upload_from_file(big_file)
            _, upload_peak = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            target = tmp_path / "big.out"
            obj.download_to_file(target)
            _, download_peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert upload_peak < bound, f"upload peak {upload_peak / MiB:.1f} MiB over {bound / MiB} MiB"
        assert download_peak < bound, f"download peak {download_peak / MiB:.1f} MiB over {bound / MiB} MiB"
        assert target.stat().st_size == BIG
        assert _same_file(big_file, target)
    finally:
        bucket.delete(delete_contents=True)


# --- part logic, with an in-memory backend -----------------------------------------------


class MemoryBackend(Backend):
    """Objects in a dict; a hook may fail chosen calls. Pure logic for engine tests."""

    features = Features(min_part_size=1, max_parts=10_000)
    check_bucket_name = staticmethod(s3_bucket_name)

    def __init__(self, fail: Any = None) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[int, dict[int, bytes]] = {}
        self.calls: list[tuple[str, Any]] = []
        self.aborted: list[int] = []
        self.content_md5s: dict[str, bytes | None] = {}
        #: (body, content_md5) of every put and part, as the engine handed them over.
        self.sent_md5s: list[tuple[bytes, bytes | None]] = []
        self.created_metadata: list[dict[str, str]] = []
        self.fail = fail or (lambda call, arg: None)
        self.lock = threading.Lock()

    def _record(self, call: str, arg: Any = None) -> None:
        with self.lock:
            self.calls.append((call, arg))
        self.fail(call, arg)

    def map_error(self, error: BaseException) -> CloudStoreException | None:
        return None

    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        return Page([])

    def head_bucket(self, name: str) -> BucketInfo | None:
        return BucketInfo(name)

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        return BucketInfo(name)

    def delete_bucket(self, name: str) -> None:
        pass

    def list_objects(self, *args: Any) -> Page[ObjectInfo]:
        return Page([])

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        data = self.objects.get(name)
        return None if data is None else ObjectInfo(name, len(data))

    def put_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        *,
        content_md5: bytes | None = None,
    ) -> None:
        self._record("put", len(data))
        self.sent_md5s.append((bytes(data), content_md5))
        self.objects[name] = bytes(data)

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        self._record("get", (start, end))
        data = self.objects[name]
        first = start or 0
        last = len(data) - 1 if end is None else end
        return FileRangeReader(io.BytesIO(data[first : last + 1]))

    def delete_object(self, bucket: str, name: str) -> None:
        del self.objects[name]

    def copy_object(self, *args: Any) -> None:
        raise NotImplementedError

    def sign_url(self, *args: Any) -> str:
        raise NotImplementedError

    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> Any:
        self._record("create", name)
        self.created_metadata.append(dict(metadata))
        upload = len(self.uploads) + len(self.aborted) + 1
        self.uploads[upload] = {}
        return (upload, name)

    def upload_part(
        self, upload: Any, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        self._record("part", number)
        self.sent_md5s.append((bytes(data), content_md5))
        self.uploads[upload[0]][number] = bytes(data)
        return UploadPart(number, offset)

    def complete_multipart_upload(self, upload: Any, parts: list[UploadPart], content_md5: bytes | None = None) -> None:
        assert [p.number for p in parts] == list(range(1, len(parts) + 1))
        stored = self.uploads.pop(upload[0])
        self.objects[upload[1]] = b"".join(stored[p.number] for p in parts)
        self.content_md5s[upload[1]] = content_md5

    def abort_multipart_upload(self, upload: Any) -> None:
        self._record("abort", upload[0])
        self.aborted.append(upload[0])
        self.uploads.pop(upload[0], None)

    def abort_orphan_uploads(self, upload: Any, since: datetime) -> None:
        self._record("abort_orphans", upload[0])
        for other in [number for number in self.uploads if number != upload[0]]:
            self.abort_multipart_upload((other, upload[1]))

    def cleanup_multipart_upload(self, upload: Any) -> None:
        self._record("cleanup", upload[0])


FAST = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.01)
SMALL = TransferConfig(threshold=100, part_size=64, max_concurrency=3, chunk_size=16)


def _engine(backend: MemoryBackend, config: TransferConfig = SMALL) -> TransferEngine:
    return TransferEngine(backend, FAST, config)


def _upload(engine: TransferEngine, data: bytes, size: int | None, progress: Any = None) -> None:
    engine.upload("b", "key", io.BytesIO(data), size, None, {}, progress)


def test_small_upload_is_one_request() -> None:
    backend = MemoryBackend()
    _upload(_engine(backend), b"x" * 100, 100)
    assert backend.calls == [("put", 100)]


@pytest.mark.parametrize("known_size", [True, False])
def test_large_upload_goes_in_parts_known_or_unknown_length(known_size: bool) -> None:
    backend = MemoryBackend()
    data = os.urandom(1000)
    seen: list[int] = []
    _upload(_engine(backend), data, len(data) if known_size else None, seen.append)
    assert backend.objects["key"] == data
    assert sorted(arg for call, arg in backend.calls if call == "part") == list(range(1, 17))
    assert sum(seen) == 1000
    assert backend.content_md5s["key"] is None  # this provider keeps no MD5: none is computed


@pytest.mark.parametrize("known_size", [True, False])
def test_multipart_upload_hands_the_whole_md5_to_providers_that_keep_it(known_size: bool) -> None:
    backend = MemoryBackend()
    backend.features = dataclasses.replace(backend.features, stores_content_md5=True)
    data = os.urandom(1000)
    _upload(_engine(backend), data, len(data) if known_size else None)
    assert backend.objects["key"] == data
    assert backend.content_md5s["key"] == hashlib.md5(data).digest()


def test_failed_part_is_retried_alone() -> None:
    failures = {"left": 2}

    def fail(call: str, arg: Any) -> None:
        if call == "part" and arg == 3 and failures["left"]:
            failures["left"] -= 1
            raise ThrottledException("slow down")

    backend = MemoryBackend(fail)
    data = os.urandom(1000)
    _upload(_engine(backend), data, len(data))
    parts = [arg for call, arg in backend.calls if call == "part"]
    assert parts.count(3) == 3
    assert all(parts.count(n) == 1 for n in range(1, 17) if n != 3)
    assert backend.objects["key"] == data


def test_permanent_part_failure_aborts_and_stops_early() -> None:
    def fail(call: str, arg: Any) -> None:
        if call == "part" and arg == 2:
            raise PermissionDeniedException("no")

    backend = MemoryBackend(fail)
    with pytest.raises(PermissionDeniedException):
        _upload(_engine(backend), os.urandom(64 * 200), 64 * 200)
    assert backend.aborted == [1]
    assert "key" not in backend.objects
    parts = [arg for call, arg in backend.calls if call == "part"]
    assert parts.count(2) == 1, "a 403 must not be retried"
    assert len(parts) < 20, "the engine kept uploading after a permanent failure"


def test_source_error_aborts_the_upload() -> None:
    backend = MemoryBackend()
    with pytest.raises(OSError):
        _engine(backend).upload("b", "key", BreakingStream(320), None, None, {})
    assert backend.aborted == [1] and "key" not in backend.objects


def test_part_size_grows_to_stay_within_the_part_limit() -> None:
    backend = MemoryBackend()
    backend.features = dataclasses.replace(backend.features, max_parts=10)
    data = os.urandom(1000)
    _upload(_engine(backend), data, len(data))
    assert len([1 for call, _ in backend.calls if call == "part"]) <= 10
    assert backend.objects["key"] == data


def test_unknown_length_stream_grows_parts_beyond_the_limit() -> None:
    backend = MemoryBackend()
    backend.features = dataclasses.replace(backend.features, max_parts=20)
    data = os.urandom(64 * 60)  # 60 parts at the configured size: more than 20
    _upload(_engine(backend), data, None)
    assert backend.objects["key"] == data
    assert len([1 for call, _ in backend.calls if call == "part"]) <= 20


def test_broken_read_resumes_where_it_stopped(tmp_path: Path) -> None:
    state = {"broken": False}
    backend = MemoryBackend()
    data = os.urandom(500)
    backend.objects["key"] = data

    class Flaky(RangeReader):
        def __init__(self, inner: RangeReader) -> None:
            self.inner = inner
            self.reads = 0

        def read(self, size: int = -1) -> bytes:
            self.reads += 1
            if self.reads == 3 and not state["broken"]:
                state["broken"] = True
                raise ProviderConnectionException("reset")
            return self.inner.read(size)

    original = backend.get_object
    backend.get_object = lambda b, n, s=None, e=None: Flaky(original(b, n, s, e))  # type: ignore[method-assign]
    engine = _engine(backend, TransferConfig(threshold=1000, chunk_size=16))
    target = tmp_path / "out"
    engine.download_to_path("b", "key", target)
    assert target.read_bytes() == data
    gets = [arg for call, arg in backend.calls if call == "get"]
    assert len(gets) == 2 and gets[1][0] == 32, "the retry must start where the broken read stopped"


def test_parallel_ranged_download(tmp_path: Path) -> None:
    backend = MemoryBackend()
    data = os.urandom(1000)
    backend.objects["key"] = data
    seen: list[int] = []
    target = tmp_path / "out"
    info = _engine(backend).download_to_path("b", "key", target, seen.append)
    assert target.read_bytes() == data
    assert sum(seen) == 1000 and info.size == 1000
    # The first request asks for one part; the rest comes in parts of the same size.
    ranges = sorted(arg for call, arg in backend.calls if call == "get")
    assert ranges[:2] == [(0, 63), (64, 127)] and ranges[-1] == (960, 999) and len(ranges) == 16


class DescribingBackend(MemoryBackend):
    """Its GET responses describe the object, as S3's, Swift's and LOCAL's do."""

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        reader = super().get_object(bucket, name, start, end)
        data = self.objects[name]
        return FileRangeReader(reader, ObjectInfo(name, len(data), etag=hashlib.md5(data).hexdigest()))

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        self._record("head", name)
        return super().head_object(bucket, name)


@pytest.mark.parametrize("size", [0, 1, 63, 64])
def test_small_download_is_one_request(tmp_path: Path, size: int) -> None:
    backend = DescribingBackend()
    backend.objects["key"] = data = os.urandom(size)
    _engine(backend).download_to_path("b", "key", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert [call for call, _ in backend.calls] == ["get"]


def test_download_of_an_object_replaced_between_ranges_fails(tmp_path: Path) -> None:
    backend = DescribingBackend()
    backend.objects["key"] = os.urandom(1000)
    original = backend.get_object

    def replace_after_the_first(bucket: str, name: str, start: Any = None, end: Any = None) -> RangeReader:
        reader = original(bucket, name, start, end)
        backend.objects["key"] = os.urandom(1000)  # same size, another version
        return reader

    backend.get_object = replace_after_the_first  # type: ignore[method-assign]
    with pytest.raises(PreconditionFailedException, match="replaced while it was being read"):
        _engine(backend).download_to_path("b", "key", tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_transfer_config_rejects_nonsense() -> None:
    for bad in [dict(part_size=0), dict(max_concurrency=-1), dict(threshold=1.5)]:
        with pytest.raises(InvalidParamException):
            TransferConfig(**bad)  # type: ignore[arg-type]


# --- integrity: what the engine hands the providers, and what it verifies --------------------


@pytest.mark.parametrize("size", [10, 1000])
def test_every_put_and_part_carries_the_md5_of_its_own_body(size: int) -> None:
    backend = MemoryBackend()
    _upload(_engine(backend), os.urandom(size), size)
    assert backend.sent_md5s, "nothing was sent"
    for body, md5 in backend.sent_md5s:
        assert md5 == hashlib.md5(body).digest()


@pytest.mark.parametrize("known_size", [True, False])
def test_part_layout_is_recorded_so_the_multipart_etag_can_be_verified(known_size: bool) -> None:
    backend = MemoryBackend()
    backend.features = dataclasses.replace(backend.features, max_parts=20, records_part_layout=True)
    data = os.urandom(5000)  # 79 parts of 64 bytes would pass 20: parts grow (known) or double (unknown)
    _upload(_engine(backend), data, len(data) if known_size else None)
    assert backend.objects["key"] == data
    metadata = backend.created_metadata[0]
    assert PART_LAYOUT_KEY in metadata
    # The ETag S3 gives such an object: MD5 of the parts' MD5s, "-" and the part count.
    part_bodies = [body for body, _ in backend.sent_md5s]
    etag = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in part_bodies)).hexdigest() + f"-{len(part_bodies)}"
    checksum = multipart_etag_checksum(etag, len(data), metadata)
    assert checksum is not None and checksum.parts == tuple(len(b) for b in part_bodies)


def test_providers_without_part_checksums_get_no_layout_key() -> None:
    backend = MemoryBackend()
    _upload(_engine(backend), os.urandom(1000), 1000)
    assert backend.created_metadata == [{}]


def test_a_retried_start_of_an_upload_aborts_what_the_lost_attempt_started() -> None:
    attempts = {"create": 0}

    def lose_the_first_answer(call: str, arg: Any) -> None:
        if call == "create":
            attempts["create"] += 1
            if attempts["create"] == 1:
                # The service started an upload, but its answer never arrived.
                backend.uploads[99] = {}
                raise ProviderConnectionException("connection reset")

    backend = MemoryBackend(lose_the_first_answer)
    data = os.urandom(1000)
    _upload(_engine(backend), data, len(data))
    assert backend.objects["key"] == data
    assert backend.uploads == {}, "the upload started by the lost attempt is still open"
    assert [call for call, _ in backend.calls].count("abort_orphans") == 1


def test_a_first_time_start_looks_for_no_orphans() -> None:
    backend = MemoryBackend()
    _upload(_engine(backend), os.urandom(1000), 1000)
    calls = [call for call, _ in backend.calls]
    assert "abort_orphans" not in calls
    assert calls[-1] == "cleanup", "the clean-up hook runs after the upload completes"


def test_a_clean_up_that_keeps_failing_is_reported_as_a_warning() -> None:
    def fail(call: str, arg: Any) -> None:
        if call == "cleanup":
            raise ProviderConnectionException("reset")

    backend = MemoryBackend(fail)
    data = os.urandom(1000)
    with pytest.warns(CleanupWarning, match="could not be removed"):
        _upload(_engine(backend), data, len(data))
    assert backend.objects["key"] == data
    assert [call for call, _ in backend.calls].count("cleanup") == FAST.max_attempts, (
        "clean-ups run under the retry policy"
    )


def test_a_failed_abort_is_added_to_the_error_and_warned_about() -> None:
    def fail(call: str, arg: Any) -> None:
        if call == "part" and arg == 2:
            raise PermissionDeniedException("no")
        if call == "abort":
            raise PermissionDeniedException("no abort either")

    backend = MemoryBackend(fail)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PermissionDeniedException) as raised:
            _upload(_engine(backend), os.urandom(1000), 1000)
    assert any("aborting the failed upload failed too" in note for note in raised.value.__notes__)
    assert any(issubclass(w.category, CleanupWarning) for w in caught)


class ChecksummedBackend(DescribingBackend):
    """Its GET responses carry the MD5 of the whole object; ``flips`` responses have one byte inverted."""

    def __init__(self, flips: int) -> None:
        super().__init__()
        self.flips = flips

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        self._record("get", (start, end))
        data = self.objects[name]
        body = bytearray(data[start or 0 : (len(data) if end is None else end + 1)])
        with self.lock:
            if self.flips and body:
                self.flips -= 1
                body[len(body) // 2] ^= 0xFF
        info = ObjectInfo(name, len(data), etag="v1", checksum=Checksum("md5", hashlib.md5(data).hexdigest()))
        return FileRangeReader(io.BytesIO(bytes(body)), info)


@pytest.mark.parametrize("size", [50, 1000])
def test_a_damaged_download_is_fetched_once_more(tmp_path: Path, size: int) -> None:
    backend = ChecksummedBackend(flips=1)
    backend.objects["key"] = data = os.urandom(size)
    _engine(backend).download_to_path("b", "key", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    backend.flips = 1
    assert _engine(backend).read_whole("b", "key") == data


def test_a_download_damaged_twice_fails_and_leaves_nothing(tmp_path: Path) -> None:
    backend = ChecksummedBackend(flips=2)
    backend.objects["key"] = os.urandom(50)
    (tmp_path / "out").write_bytes(b"old")
    with pytest.raises(ChecksumMismatchException):
        _engine(backend).download_to_path("b", "key", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out").read_bytes() == b"old", "the destination must be untouched on failure"
    backend.flips = 2
    with pytest.raises(ChecksumMismatchException):
        _engine(backend).read_whole("b", "key")


class PartWiseBackend(ChecksummedBackend):
    """Describes each object with an S3-style multipart checksum over parts of ``part`` bytes."""

    def __init__(self, flips: int, part: int) -> None:
        super().__init__(flips)
        self.part = part

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        reader = super().get_object(bucket, name, start, end)
        data = self.objects[name]
        sizes = tuple(part_sizes(len(data), self.part, 0))
        pieces = [data[sum(sizes[:i]) : sum(sizes[: i + 1])] for i in range(len(sizes))]
        etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in pieces)).hexdigest() + f"-{len(sizes)}"
        assert reader.info is not None
        info = ObjectInfo(name, len(data), etag="v1", checksum=Checksum("md5-of-parts", etag, sizes))
        return FileRangeReader(reader, info)


@pytest.mark.parametrize("part", [64, 100])
def test_multipart_checksum_download_hashes_aligned_parts_or_falls_back(tmp_path: Path, part: int) -> None:
    backend = PartWiseBackend(flips=0, part=part)
    backend.objects["key"] = data = os.urandom(1000)
    _engine(backend).download_to_path("b", "key", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    ranges = sorted(arg for call, arg in backend.calls if call == "get")
    if part == 64:  # the head's size: the ranges are the parts
        assert ranges == [(s, min(s + 64, 1000) - 1) for s in range(0, 1000, 64)]
    backend.flips = 100  # every response damaged: the second attempt fails too
    with pytest.raises(ChecksumMismatchException, match="md5-of-parts"):
        _engine(backend).download_to_path("b", "key", tmp_path / "out2")
    backend.flips = 1
    _engine(backend).download_to_path("b", "key", tmp_path / "out3")
    assert (tmp_path / "out3").read_bytes() == data


# --- the whole-object CRC32C: recorded at upload, verified range by range on download -----------


def _crc(data: bytes) -> str:
    import google_crc32c

    return f"{google_crc32c.value(data):08x}"


def _layout_backend() -> MemoryBackend:
    backend = MemoryBackend()
    backend.features = dataclasses.replace(backend.features, records_part_layout=True)
    return backend


def test_an_upload_from_bytes_or_a_file_records_the_whole_objects_crc32c(tmp_path: Path) -> None:
    data = os.urandom(1000)
    backend = _layout_backend()
    _upload(_engine(backend), data, len(data))
    path = tmp_path / "source"
    path.write_bytes(b"skipped" + data)
    with open(path, "rb") as source:
        source.seek(7)  # from where the stream stands, not from the file's start
        _engine(backend).upload("b", "key", source, len(data), None, {}, None)
    for metadata in backend.created_metadata:
        assert recorded_crc32c(metadata) == Checksum("crc32c", _crc(data))
    assert backend.objects["key"] == data


def test_a_stream_of_unknown_length_records_the_layout_without_a_crc32c() -> None:
    backend = _layout_backend()
    _upload(_engine(backend), os.urandom(1000), None)
    metadata = backend.created_metadata[0]
    assert PART_LAYOUT_KEY in metadata and recorded_crc32c(metadata) is None


def test_a_source_that_changes_during_the_upload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "source"
    path.write_bytes(os.urandom(1000))

    class ChangingFile(io.FileIO):
        """A file that another writer changes once its first part has been read."""

        def read(self, size: int = -1, /) -> bytes:
            data = super().read(size)
            if self.tell() >= 500:
                os.pwrite(self.fileno(), b"changed", 900)
            return data or b""

    backend = _layout_backend()
    with ChangingFile(path, "r+") as source, pytest.raises(ChecksumMismatchException, match="changed while"):
        _engine(backend).upload("b", "key", source, 1000, None, {}, None)
    assert "key" not in backend.objects and backend.aborted, "the upload must be aborted, nothing stored"


class CrcRecordingBackend(ChecksummedBackend):
    """Its GET responses carry the CRC32C the engine records, and no checksum of the service's."""

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        reader = super().get_object(bucket, name, start, end)
        data = self.objects[name]
        metadata = {PART_LAYOUT_KEY: f"64,0,{_crc(data)}"}
        return self.reader(reader, ObjectInfo(name, len(data), etag="v1", metadata=metadata))

    def reader(self, body: RangeReader, info: ObjectInfo) -> RangeReader:
        return FileRangeReader(body, info)


class ReadIntoReader(RangeReader):
    """A reader that reads into the caller's buffer (as a socket's ``recv_into`` does)."""

    def __init__(self, body: RangeReader, info: ObjectInfo, calls: list[int]) -> None:
        self._body = body
        self.info = info
        self._calls = calls

    def read(self, size: int = -1) -> bytes:  # the first range and whole reads are streamed
        return self._body.read(size)

    def readinto(self, buffer: memoryview) -> int:
        self._calls.append(len(buffer))
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@pytest.mark.parametrize("readinto", [False, True])
def test_a_recorded_crc32c_catches_a_damaged_range_and_it_is_fetched_once_more(tmp_path: Path, readinto: bool) -> None:
    calls: list[int] = []
    backend = CrcRecordingBackend(flips=0)
    if readinto:
        backend.reader = lambda body, info: ReadIntoReader(body, info, calls)  # type: ignore[method-assign]
    backend.objects["key"] = data = os.urandom(1000)
    _engine(backend).download_to_path("b", "key", tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    backend.flips = 1
    _engine(backend).download_to_path("b", "key", tmp_path / "out2")
    assert (tmp_path / "out2").read_bytes() == data
    backend.flips = 100  # every response damaged: the second attempt fails too
    (tmp_path / "out3").write_bytes(b"old")
    with pytest.raises(ChecksumMismatchException, match="crc32c"):
        _engine(backend).download_to_path("b", "key", tmp_path / "out3")
    assert (tmp_path / "out3").read_bytes() == b"old"
    backend.flips = 100
    with pytest.raises(ChecksumMismatchException, match="crc32c"):
        _engine(backend).read_whole("b", "key")
    if readinto:
        assert calls and max(calls) <= SMALL.chunk_size, "the parts after the first are read into a buffer"


def test_readinto_by_default_copies_what_read_returns() -> None:
    reader = FileRangeReader(io.BytesIO(b"abcdef"))
    buffer = memoryview(bytearray(4))
    assert reader.readinto(buffer) == 4 and bytes(buffer) == b"abcd"
    assert reader.readinto(buffer) == 2 and bytes(buffer[:2]) == b"ef"
    assert reader.readinto(buffer) == 0


@pytest.mark.parametrize("provider_id", ["aws", "openstack"])
def test_the_crc32c_is_stored_where_the_part_layout_is_and_hidden_from_metadata(
    provider_id: str, servers: Any, tmp_path: Path
) -> None:
    from cloudstore.testing import backend_of

    provider = make_provider(servers.get(provider_id), transfer_config=TransferConfig(threshold=5 * MiB))
    bucket = provider.storage.buckets.create(unique_name("crc"))
    try:
        data = os.urandom(12 * MiB)
        source = tmp_path / "source"
        source.write_bytes(data)
        obj = bucket.objects.create("big.bin")
        obj.upload_from_file(source, metadata={"kept": "yes"})
        stored = backend_of(provider).head_object(bucket.name, "big.bin")
        assert stored is not None and recorded_crc32c(stored.metadata) == Checksum("crc32c", _crc(data))
        listed = bucket.objects.get("big.bin")
        assert listed is not None and listed.metadata == {"kept": "yes"}
        obj.download_to_file(tmp_path / "out")
        assert (tmp_path / "out").read_bytes() == data
    finally:
        bucket.delete(delete_contents=True)

"""SPEC 6: the transfer engine — memory bounds on real providers, and its part logic.

The memory tests move 256 MiB through LOCAL and through S3 (SeaweedFS) and measure the
Python heap's peak with tracemalloc: it must stay near ``max_concurrency x part_size``.
The part-logic tests drive the engine through the public API on the memory provider, with the
calls it makes recorded (and chosen ones failed or altered) by the :class:`SpyBackend` seam.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import os
import threading
import tracemalloc
import warnings
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from cloudstore import (
    BucketObject,
    ChecksumMismatchException,
    CleanupWarning,
    CloudProvider,
    CloudProviderFactory,
    InvalidParamException,
    PermissionDeniedException,
    RetryPolicy,
    ThrottledException,
    TransferConfig,
)
from cloudstore._checksums import PART_LAYOUT_KEY, multipart_etag_checksum, part_sizes, recorded_crc32c
from cloudstore.backend import (
    Checksum,
    FileRangeReader,
    ObjectInfo,
    RangeReader,
)
from cloudstore.exceptions import PreconditionFailedException, ProviderConnectionException
from cloudstore.providers.memory.backend import MemoryBackend
from cloudstore.testing import Call, SpyBackend, backend_of, provider_with
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


# --- part logic, on the memory provider through the spy seam ----------------------------------

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.01)
SMALL = TransferConfig(threshold=100, part_size=64, max_concurrency=3, chunk_size=16)


class Spied(NamedTuple):
    """An object ``key`` of a fresh memory store whose provider's requests go through ``spy``."""

    obj: BucketObject
    spy: SpyBackend
    store: MemoryBackend


def spied(config: TransferConfig = SMALL, **features: Any) -> Spied:
    """``features`` change the memory backend's (e.g. ``max_parts``, ``stores_content_md5``)."""
    plain = CloudProviderFactory().create_provider(
        "memory", {"memory_store": unique_name("engine"), "transfer_config": config, "retry_policy": FAST}
    )
    store = backend_of(plain)
    assert isinstance(store, MemoryBackend)
    spy = SpyBackend(store, **features)
    bucket = provider_with(spy, plain).storage.buckets.create("bkt")
    spy.reset()
    return Spied(bucket.objects.create("key"), spy, store)


def arg(call: Call, name: str) -> Any:
    """The argument ``name`` of a recorded backend call, however it was passed."""
    signature = inspect.signature(getattr(MemoryBackend, call.method))
    return signature.bind(None, *call.args, **call.kwargs).arguments.get(name)


def parts(spy: SpyBackend) -> list[int]:
    return [arg(call, "number") for call in spy.calls_to("upload_part")]


def ranges(spy: SpyBackend) -> list[tuple[int | None, int | None]]:
    return [(arg(call, "start"), arg(call, "end")) for call in spy.calls_to("get_object")]


def sent_bodies(spy: SpyBackend) -> list[tuple[bytes, bytes | None]]:
    """(body, content_md5) of every put and part, as the engine handed them over."""
    return [
        (arg(call, "data"), arg(call, "content_md5"))
        for call in spy.calls
        if call.method in ("put_object", "upload_part")
    ]


def stored(setup: Spied) -> bytes | None:
    info = setup.store.head_object("bkt", "key")
    return None if info is None else setup.store.get_object("bkt", "key").read()


class OneWay(io.RawIOBase):
    """A stream of unknown length (it cannot seek)."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._inner.readinto(buffer)


def _upload(setup: Spied, data: bytes, known_size: bool = True, progress: Any = None) -> None:
    setup.obj.upload(data if known_size else OneWay(data), progress=progress)


def test_small_upload_is_one_request() -> None:
    setup = spied()
    _upload(setup, b"x" * 100)
    assert [call.method for call in setup.spy.calls if call.method != "check_object_name"] == ["put_object"]
    assert len(arg(setup.spy.calls_to("put_object")[0], "data")) == 100


@pytest.mark.parametrize("known_size", [True, False])
def test_large_upload_goes_in_parts_known_or_unknown_length(known_size: bool) -> None:
    setup = spied()
    data = os.urandom(1000)
    seen: list[int] = []
    _upload(setup, data, known_size, seen.append)
    assert stored(setup) == data
    assert sorted(parts(setup.spy)) == list(range(1, 17))
    assert sum(seen) == 1000
    # This provider keeps no MD5: none is computed for the whole object.
    assert arg(setup.spy.calls_to("complete_multipart_upload")[0], "content_md5") is None


@pytest.mark.parametrize("known_size", [True, False])
def test_multipart_upload_hands_the_whole_md5_to_providers_that_keep_it(known_size: bool) -> None:
    setup = spied(stores_content_md5=True)
    data = os.urandom(1000)
    _upload(setup, data, known_size)
    assert stored(setup) == data
    assert arg(setup.spy.calls_to("complete_multipart_upload")[0], "content_md5") == hashlib.md5(data).digest()


def test_failed_part_is_retried_alone() -> None:
    setup = spied()
    setup.spy.fail("upload_part", ThrottledException("slow down"), times=2, when=lambda c: arg(c, "number") == 3)
    data = os.urandom(1000)
    _upload(setup, data)
    numbers = parts(setup.spy)
    assert numbers.count(3) == 3
    assert all(numbers.count(n) == 1 for n in range(1, 17) if n != 3)
    assert stored(setup) == data


def test_permanent_part_failure_aborts_and_stops_early() -> None:
    setup = spied()
    setup.spy.fail("upload_part", PermissionDeniedException("no"), times=None, when=lambda c: arg(c, "number") == 2)
    with pytest.raises(PermissionDeniedException):
        _upload(setup, os.urandom(64 * 200))
    assert setup.spy.count("abort_multipart_upload") == 1 and setup.store.uploads == {}
    assert stored(setup) is None
    numbers = parts(setup.spy)
    assert numbers.count(2) == 1, "a 403 must not be retried"
    assert len(numbers) < 20, "the engine kept uploading after a permanent failure"


def test_source_error_aborts_the_upload() -> None:
    setup = spied()
    with pytest.raises(OSError):
        setup.obj.upload(BreakingStream(320))
    assert setup.spy.count("abort_multipart_upload") == 1 and setup.store.uploads == {}
    assert stored(setup) is None


def test_part_size_grows_to_stay_within_the_part_limit() -> None:
    setup = spied(max_parts=10)
    data = os.urandom(1000)
    _upload(setup, data)
    assert len(parts(setup.spy)) <= 10
    assert stored(setup) == data


def test_unknown_length_stream_grows_parts_beyond_the_limit() -> None:
    setup = spied(max_parts=20)
    data = os.urandom(64 * 60)  # 60 parts at the configured size: more than 20
    _upload(setup, data, known_size=False)
    assert stored(setup) == data
    assert len(parts(setup.spy)) <= 20


def test_broken_read_resumes_where_it_stopped(tmp_path: Path) -> None:
    setup = spied(TransferConfig(threshold=1000, chunk_size=16))
    setup.store.put_object("bkt", "key", data := os.urandom(500), None, {})
    broken = threading.Event()

    class Flaky(RangeReader):
        def __init__(self, inner: RangeReader) -> None:
            self.inner, self.info, self.reads = inner, inner.info, 0

        def read(self, size: int = -1) -> bytes:
            self.reads += 1
            if self.reads == 3 and not broken.is_set():
                broken.set()
                raise ProviderConnectionException("reset")
            return self.inner.read(size)

    setup.spy.after("get_object", lambda call, reader: Flaky(reader))
    target = tmp_path / "out"
    setup.obj.download_to_file(target)
    assert target.read_bytes() == data
    gets = ranges(setup.spy)
    assert len(gets) == 2 and gets[1][0] == 32, "the retry must start where the broken read stopped"


def test_parallel_ranged_download(tmp_path: Path) -> None:
    setup = spied()
    setup.store.put_object("bkt", "key", data := os.urandom(1000), None, {})
    seen: list[int] = []
    target = tmp_path / "out"
    setup.obj.download_to_file(target, seen.append)
    assert target.read_bytes() == data
    assert sum(seen) == 1000 and setup.obj.size == 1000
    # The first request asks for one part; the rest comes in parts of the same size.
    got = sorted(ranges(setup.spy))
    assert got[:2] == [(0, 63), (64, 127)] and got[-1] == (960, 999) and len(got) == 16


@pytest.mark.parametrize("size", [0, 1, 63, 64])
def test_small_download_is_one_request(tmp_path: Path, size: int) -> None:
    # The memory provider's GET responses describe the object, as S3's, Swift's and LOCAL's do.
    setup = spied()
    setup.store.put_object("bkt", "key", data := os.urandom(size), None, {})
    setup.obj.download_to_file(tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    assert [call.method for call in setup.spy.calls if call.method != "check_object_name"] == ["get_object"]


def test_download_of_an_object_replaced_between_ranges_fails(tmp_path: Path) -> None:
    setup = spied()
    setup.store.put_object("bkt", "key", os.urandom(1000), None, {})

    def replace_after_the_first(call: Call, reader: RangeReader) -> RangeReader:
        setup.store.put_object("bkt", "key", os.urandom(1000), None, {})  # same size, another version
        return reader

    setup.spy.after("get_object", replace_after_the_first)
    with pytest.raises(PreconditionFailedException, match="replaced while it was being read"):
        setup.obj.download_to_file(tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_transfer_config_rejects_nonsense() -> None:
    for bad in [dict(part_size=0), dict(max_concurrency=-1), dict(threshold=1.5)]:
        with pytest.raises(InvalidParamException):
            TransferConfig(**bad)  # type: ignore[arg-type]


# --- integrity: what the engine hands the providers, and what it verifies --------------------


@pytest.mark.parametrize("size", [10, 1000])
def test_every_put_and_part_carries_the_md5_of_its_own_body(size: int) -> None:
    setup = spied()
    _upload(setup, os.urandom(size))
    sent = sent_bodies(setup.spy)
    assert sent, "nothing was sent"
    for body, md5 in sent:
        assert md5 == hashlib.md5(body).digest()


@pytest.mark.parametrize("known_size", [True, False])
def test_part_layout_is_recorded_so_the_multipart_etag_can_be_verified(known_size: bool) -> None:
    setup = spied(max_parts=20, records_part_layout=True)
    data = os.urandom(5000)  # 79 parts of 64 bytes would pass 20: parts grow (known) or double (unknown)
    _upload(setup, data, known_size)
    assert stored(setup) == data
    metadata = arg(setup.spy.calls_to("create_multipart_upload")[0], "metadata")
    assert PART_LAYOUT_KEY in metadata
    # The ETag S3 gives such an object: MD5 of the parts' MD5s, "-" and the part count.
    part_bodies = [body for body, _ in sent_bodies(setup.spy)]
    etag = hashlib.md5(b"".join(hashlib.md5(b).digest() for b in part_bodies)).hexdigest() + f"-{len(part_bodies)}"
    checksum = multipart_etag_checksum(etag, len(data), metadata)
    assert checksum is not None and checksum.parts == tuple(len(b) for b in part_bodies)


def test_providers_without_part_checksums_get_no_layout_key() -> None:
    setup = spied()
    _upload(setup, os.urandom(1000))
    assert [arg(call, "metadata") for call in setup.spy.calls_to("create_multipart_upload")] == [{}]


def test_a_retried_start_of_an_upload_aborts_what_the_lost_attempt_started() -> None:
    setup = spied()

    def lose_the_first_answer(call: Call, upload: Any) -> Any:
        if call.number == 1:  # the service started an upload, but its answer never arrived
            raise ProviderConnectionException("connection reset")
        return upload

    setup.spy.after("create_multipart_upload", lose_the_first_answer)
    data = os.urandom(1000)
    _upload(setup, data)
    assert stored(setup) == data
    assert setup.store.uploads == {}, "the upload started by the lost attempt is still open"
    assert setup.spy.count("abort_orphan_uploads") == 1


def test_a_first_time_start_looks_for_no_orphans() -> None:
    setup = spied()
    _upload(setup, os.urandom(1000))
    calls = [call.method for call in setup.spy.calls]
    assert "abort_orphan_uploads" not in calls
    assert calls[-1] == "cleanup_multipart_upload", "the clean-up hook runs after the upload completes"


def test_a_clean_up_that_keeps_failing_is_reported_as_a_warning() -> None:
    setup = spied()
    setup.spy.fail("cleanup_multipart_upload", ProviderConnectionException("reset"), times=None)
    data = os.urandom(1000)
    with pytest.warns(CleanupWarning, match="could not be removed"):
        _upload(setup, data)
    assert stored(setup) == data
    assert setup.spy.count("cleanup_multipart_upload") == FAST.max_attempts, "clean-ups run under the retry policy"


def test_a_failed_abort_is_added_to_the_error_and_warned_about() -> None:
    setup = spied()
    setup.spy.fail("upload_part", PermissionDeniedException("no"), times=None, when=lambda c: arg(c, "number") == 2)
    setup.spy.fail("abort_multipart_upload", PermissionDeniedException("no abort either"), times=None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(PermissionDeniedException) as raised:
            _upload(setup, os.urandom(1000))
    assert any("aborting the failed upload failed too" in note for note in raised.value.__notes__)
    assert any(issubclass(w.category, CleanupWarning) for w in caught)


class Damage:
    """A ``get_object`` hook: the next ``flips`` responses have one byte inverted; with ``part``,
    the object is described by an S3-style multipart checksum over parts of that many bytes."""

    def __init__(self, setup: Spied, flips: int, part: int | None = None) -> None:
        self.store, self.flips, self.part = setup.store, flips, part
        self.lock = threading.Lock()
        setup.spy.after("get_object", self)

    def __call__(self, call: Call, reader: RangeReader) -> RangeReader:
        body = bytearray(reader.read())
        with self.lock:
            if self.flips and body:
                self.flips -= 1
                body[len(body) // 2] ^= 0xFF
        return self.reader(bytes(body), self.describe(reader.info))

    def describe(self, info: ObjectInfo | None) -> ObjectInfo:
        """What the damaged response says of the object."""
        assert info is not None and info.checksum is not None  # the memory provider's MD5
        if self.part is not None:
            data = self.store.get_object("bkt", "key").read()
            sizes = tuple(part_sizes(len(data), self.part, 0))
            pieces = [data[sum(sizes[:i]) : sum(sizes[: i + 1])] for i in range(len(sizes))]
            etag = hashlib.md5(b"".join(hashlib.md5(p).digest() for p in pieces)).hexdigest() + f"-{len(sizes)}"
            info = dataclasses.replace(info, etag="v1", checksum=Checksum("md5-of-parts", etag, sizes))
        return info

    def reader(self, body: bytes, info: ObjectInfo) -> RangeReader:
        return FileRangeReader(io.BytesIO(body), info)


@pytest.mark.parametrize("size", [50, 1000])
def test_a_damaged_download_is_fetched_once_more(tmp_path: Path, size: int) -> None:
    setup = spied()
    setup.store.put_object("bkt", "key", data := os.urandom(size), None, {})
    damage = Damage(setup, flips=1)
    setup.obj.download_to_file(tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    damage.flips = 1
    assert setup.obj.read() == data


def test_a_download_damaged_twice_fails_and_leaves_nothing(tmp_path: Path) -> None:
    setup = spied()
    setup.store.put_object("bkt", "key", os.urandom(50), None, {})
    damage = Damage(setup, flips=2)
    (tmp_path / "out").write_bytes(b"old")
    with pytest.raises(ChecksumMismatchException):
        setup.obj.download_to_file(tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert (tmp_path / "out").read_bytes() == b"old", "the destination must be untouched on failure"
    damage.flips = 2
    with pytest.raises(ChecksumMismatchException):
        setup.obj.read()


@pytest.mark.parametrize("part", [64, 100])
def test_multipart_checksum_download_hashes_aligned_parts_or_falls_back(tmp_path: Path, part: int) -> None:
    setup = spied()
    setup.store.put_object("bkt", "key", data := os.urandom(1000), None, {})
    damage = Damage(setup, flips=0, part=part)
    setup.obj.download_to_file(tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    if part == 64:  # the configured part size: the ranges are the parts
        assert sorted(ranges(setup.spy)) == [(s, min(s + 64, 1000) - 1) for s in range(0, 1000, 64)]
    damage.flips = 100  # every response damaged: the second attempt fails too
    with pytest.raises(ChecksumMismatchException, match="md5-of-parts"):
        setup.obj.download_to_file(tmp_path / "out2")
    damage.flips = 1
    setup.obj.download_to_file(tmp_path / "out3")
    assert (tmp_path / "out3").read_bytes() == data


# --- the whole-object CRC32C: recorded at upload, verified range by range on download -----------


def _crc(data: bytes) -> str:
    import google_crc32c

    return f"{google_crc32c.value(data):08x}"


def created_metadata(setup: Spied) -> list[dict[str, str]]:
    return [arg(call, "metadata") for call in setup.spy.calls_to("create_multipart_upload")]


def test_an_upload_from_bytes_or_a_file_records_the_whole_objects_crc32c(tmp_path: Path) -> None:
    setup = spied(records_part_layout=True)
    _upload(setup, data := os.urandom(1000))
    path = tmp_path / "source"
    path.write_bytes(b"skipped" + data)
    with open(path, "rb") as source:
        source.seek(7)  # from where the stream stands, not from the file's start
        setup.obj.upload(source)
    assert len(created_metadata(setup)) == 2
    for metadata in created_metadata(setup):
        assert recorded_crc32c(metadata) == Checksum("crc32c", _crc(data))
    assert stored(setup) == data


def test_a_stream_of_unknown_length_records_the_layout_without_a_crc32c() -> None:
    setup = spied(records_part_layout=True)
    _upload(setup, os.urandom(1000), known_size=False)
    [metadata] = created_metadata(setup)
    assert PART_LAYOUT_KEY in metadata and recorded_crc32c(metadata) is None


def test_a_source_that_changes_during_the_upload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "source"
    path.write_bytes(os.urandom(1000))

    class ChangingFile(io.FileIO):
        """A file that another writer changes once its first part has been read."""

        def read(self, size: int | None = -1, /) -> bytes:
            data = super().read(size)
            if self.tell() >= 500:
                os.pwrite(self.fileno(), b"changed", 900)
            return data or b""

    setup = spied(records_part_layout=True)
    with ChangingFile(path, "r+") as source, pytest.raises(ChecksumMismatchException, match="changed while"):
        setup.obj.upload(source)
    assert stored(setup) is None, "nothing may be stored"
    assert setup.spy.count("abort_multipart_upload") == 1, "the upload must be aborted"


class CrcDescribed(Damage):
    """Damage whose responses describe the object by the CRC32C the engine records (and no
    checksum of the service's). With ``readinto_calls``, the body is a reader that reads into the
    caller's buffer and records each buffer's size."""

    def __init__(self, setup: Spied, readinto_calls: list[int] | None) -> None:
        super().__init__(setup, flips=0)
        self.calls = readinto_calls

    def describe(self, info: ObjectInfo | None) -> ObjectInfo:
        data = self.store.get_object("bkt", "key").read()
        return ObjectInfo("key", len(data), etag="v1", metadata={PART_LAYOUT_KEY: f"64,0,{_crc(data)}"})

    def reader(self, body: bytes, info: ObjectInfo) -> RangeReader:
        inner = super().reader(body, info)
        return inner if self.calls is None else ReadIntoReader(inner, info, self.calls)


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
    setup = spied()
    setup.store.put_object("bkt", "key", data := os.urandom(1000), None, {})
    damage = CrcDescribed(setup, calls if readinto else None)
    setup.obj.download_to_file(tmp_path / "out")
    assert (tmp_path / "out").read_bytes() == data
    damage.flips = 1
    setup.obj.download_to_file(tmp_path / "out2")
    assert (tmp_path / "out2").read_bytes() == data
    damage.flips = 100  # every response damaged: the second attempt fails too
    (tmp_path / "out3").write_bytes(b"old")
    with pytest.raises(ChecksumMismatchException, match="crc32c"):
        setup.obj.download_to_file(tmp_path / "out3")
    assert (tmp_path / "out3").read_bytes() == b"old"
    damage.flips = 100
    with pytest.raises(ChecksumMismatchException, match="crc32c"):
        setup.obj.read()
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

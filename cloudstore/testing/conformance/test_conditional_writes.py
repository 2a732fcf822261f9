"""Conditional writes (``if_none_match="*"``, ``if_match=etag``) on every provider that declares them.

A write whose condition fails raises :class:`PreconditionFailedException` and stores nothing,
whether it is one request, an upload in parts (the condition is checked at the commit) or a
copy. Racing writers: exactly one wins where the service checks atomically
(``features.atomic_conditions``); Swift checks before it stores, which is declared there.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from cloudstore import Bucket, InvalidParamException, NotSupportedException, PreconditionFailedException


@pytest.fixture
def large(bucket: Bucket) -> Callable[[bytes], bytes]:
    """``large(fill)``: bytes over the provider's threshold: uploaded in parts, the condition
    checked at the commit."""
    size = bucket.provider.transfer_config.threshold + 1024 * 1024
    return lambda fill: fill * size


@pytest.mark.needs("if_none_match")
@pytest.mark.parametrize("size", ["small", "parts"])
def test_if_none_match_creates_only_once(bucket: Bucket, size: str, large: Callable[[bytes], bytes]) -> None:
    first, second = (b"first", b"second") if size == "small" else (large(b"1"), large(b"2"))
    obj = bucket.objects.create("model/v1.bin")
    obj.upload(first, if_none_match="*")
    with pytest.raises(PreconditionFailedException):
        bucket.objects.create("model/v1.bin").upload(second, if_none_match="*")
    stored = bucket.objects.get("model/v1.bin")
    assert stored is not None and stored.read() == first


@pytest.mark.needs("if_none_match")
def test_if_none_match_from_file(bucket: Bucket, tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    bucket.objects.create("w.bin").upload_from_file(path, if_none_match="*")
    path.write_bytes(b"other weights")
    with pytest.raises(PreconditionFailedException):
        bucket.objects.create("w.bin").upload_from_file(path, if_none_match="*")
    assert bucket.objects.get("w.bin").read() == b"weights"  # type: ignore[union-attr]


@pytest.mark.needs("if_match")
@pytest.mark.parametrize("size", ["small", "parts"])
def test_if_match_replaces_only_that_version(bucket: Bucket, size: str, large: Callable[[bytes], bytes]) -> None:
    v1, v2, v3 = (b"v1", b"v2", b"v3") if size == "small" else (large(b"a"), large(b"b"), large(b"c"))
    obj = bucket.objects.create("versions.json")
    obj.upload(v1)
    etag = bucket.objects.get("versions.json").etag  # type: ignore[union-attr]
    assert etag
    bucket.objects.create("versions.json").upload(v2, if_match=etag)
    with pytest.raises(PreconditionFailedException):  # etag names v1, which is gone
        bucket.objects.create("versions.json").upload(v3, if_match=etag)
    assert bucket.objects.get("versions.json").read() == v2  # type: ignore[union-attr]


@pytest.mark.needs("if_match")
def test_if_match_on_a_missing_object_fails(bucket: Bucket) -> None:
    with pytest.raises(PreconditionFailedException):
        bucket.objects.create("absent.json").upload(b"{}", if_match='"0123456789abcdef0123456789abcdef"')
    assert bucket.objects.get("absent.json") is None


@pytest.mark.needs("if_none_match")
def test_copy_if_none_match(bucket: Bucket) -> None:
    source = bucket.objects.create("src.txt")
    source.upload(b"source", content_type="text/plain")
    bucket.objects.create("dst.txt").upload(b"taken")
    with pytest.raises(PreconditionFailedException):
        source.copy_to(bucket, "dst.txt", if_none_match="*")
    assert bucket.objects.get("dst.txt").read() == b"taken"  # type: ignore[union-attr]
    copied = source.copy_to(bucket, "new.txt", if_none_match="*")
    assert copied.read() == b"source"


@pytest.mark.needs("if_match")
def test_copy_if_match(bucket: Bucket) -> None:
    source = bucket.objects.create("src.txt")
    source.upload(b"source")
    target = bucket.objects.create("dst.txt")
    target.upload(b"old")
    etag = bucket.objects.get("dst.txt").etag  # type: ignore[union-attr]
    with pytest.raises(PreconditionFailedException):
        source.copy_to(bucket, "dst.txt", if_match='"ffffffffffffffffffffffffffffffff"')
    assert bucket.objects.get("dst.txt").read() == b"old"  # type: ignore[union-attr]
    assert source.copy_to(bucket, "dst.txt", if_match=etag).read() == b"source"


def test_condition_arguments_checked(bucket: Bucket) -> None:
    obj = bucket.objects.create("x")
    with pytest.raises(InvalidParamException):
        obj.upload(b"x", if_none_match="etag")
    with pytest.raises(InvalidParamException):
        obj.upload(b"x", if_none_match="*", if_match="abc")
    with pytest.raises(InvalidParamException):
        obj.upload(b"x", if_match="")
    assert bucket.objects.get("x") is None


@pytest.mark.lacks("if_none_match")
def test_unsupported_if_none_match_refused_before_any_request(bucket: Bucket) -> None:
    """A provider that cannot check a condition says so; it never writes unconditionally."""
    with pytest.raises(NotSupportedException):
        bucket.objects.create("y").upload(b"y", if_none_match="*")
    assert bucket.objects.get("y") is None


@pytest.mark.lacks("if_match")
def test_unsupported_if_match_refused_before_any_request(bucket: Bucket) -> None:
    bucket.objects.create("y").upload(b"old")
    with pytest.raises(NotSupportedException):
        bucket.objects.create("y").upload(b"new", if_match='"abc"')
    assert bucket.objects.get("y").read() == b"old"  # type: ignore[union-attr]


def _upload(bucket: Bucket, name: str, body: bytes, **condition: str | None) -> None:
    bucket.objects.create(name).upload(body, **condition)  # type: ignore[arg-type]


def _race(writers: Sequence[Callable[[], None]]) -> list[BaseException | None]:
    """Run ``writers`` at the same moment; what each raised (``None``: it succeeded)."""
    barrier = threading.Barrier(len(writers))

    def run(write: Callable[[], None]) -> BaseException | None:
        barrier.wait()
        try:
            write()
        except PreconditionFailedException as err:
            return err
        return None

    with ThreadPoolExecutor(len(writers)) as pool:
        return list(pool.map(run, writers))


@pytest.mark.needs("if_none_match", "atomic_conditions")
def test_racing_creators_one_wins(bucket: Bucket) -> None:
    for round_number in range(4):
        name = f"race-{round_number}"
        bodies = [f"writer {i} ".encode() * 100 for i in range(2)]
        results = _race([functools.partial(_upload, bucket, name, body, if_none_match="*") for body in bodies])
        winners = [i for i, result in enumerate(results) if result is None]
        assert len(winners) == 1, results
        assert bucket.objects.get(name).read() == bodies[winners[0]]  # type: ignore[union-attr]


@pytest.mark.needs("if_match", "atomic_conditions")
def test_racing_replacers_one_wins(bucket: Bucket) -> None:
    bucket.objects.create("state").upload(b"0")
    etag = bucket.objects.get("state").etag  # type: ignore[union-attr]
    bodies = [b"writer a", b"writer b"]
    results = _race([functools.partial(_upload, bucket, "state", body, if_match=etag) for body in bodies])
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    assert bucket.objects.get("state").read() == bodies[winners[0]]  # type: ignore[union-attr]


@pytest.mark.needs("if_none_match", "if_match", "atomic_conditions")
def test_concurrent_version_pushes_lose_none(bucket: Bucket) -> None:
    """modelkit's versions.json, updated by read-modify-write: with if_match no push is lost."""
    writers = 8

    def push(version: str) -> None:
        while True:
            current = bucket.objects.get("model/versions.json")
            try:
                if current is None:
                    bucket.objects.create("model/versions.json").upload(
                        json.dumps([version]), content_type="application/json", if_none_match="*"
                    )
                else:
                    # The ETag first (from the HEAD): if the read then meets a newer version,
                    # the write names the older one and fails, so nothing is lost.
                    etag = current.etag
                    assert etag
                    versions = json.loads(current.read())
                    bucket.objects.create("model/versions.json").upload(
                        json.dumps([*versions, version]), content_type="application/json", if_match=etag
                    )
                return
            except PreconditionFailedException:
                continue  # another push came first: read again

    barrier = threading.Barrier(writers)

    def run(number: int) -> None:
        barrier.wait()
        push(f"1.{number}")

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(run, range(writers)))
    stored = json.loads(bucket.objects.get("model/versions.json").read())  # type: ignore[union-attr]
    assert sorted(stored) == sorted(f"1.{n}" for n in range(writers))


def _write_through_open(bucket: Bucket, name: str, body: bytes, **condition: str | None) -> None:
    """Write ``body`` through a file opened with ``condition``, in a few pieces."""
    with bucket.objects.create(name).open("wb", **condition) as file:
        for start in range(0, len(body), 1000):
            file.write(body[start : start + 1000])


@pytest.mark.needs("if_none_match")
@pytest.mark.parametrize("size", ["small", "parts"])
def test_open_for_writing_if_none_match(bucket: Bucket, size: str, large: Callable[[bytes], bytes]) -> None:
    first, second = (b"first", b"second") if size == "small" else (large(b"1"), large(b"2"))
    _write_through_open(bucket, "model.bin", first, if_none_match="*")
    with pytest.raises(PreconditionFailedException):
        _write_through_open(bucket, "model.bin", second, if_none_match="*")
    assert bucket.objects.get("model.bin").read() == first  # type: ignore[union-attr]


@pytest.mark.needs("if_match")
def test_open_for_writing_if_match(bucket: Bucket) -> None:
    bucket.objects.create("state.json").upload(b"v1")
    etag = bucket.objects.get("state.json").etag  # type: ignore[union-attr]
    with bucket.objects.create("state.json").open("w", if_match=etag) as text:
        text.write("v2")
    with pytest.raises(PreconditionFailedException):  # etag names v1, which is gone
        _write_through_open(bucket, "state.json", b"v3", if_match=etag)
    assert bucket.objects.get("state.json").read() == b"v2"  # type: ignore[union-attr]
    with pytest.raises(PreconditionFailedException):
        _write_through_open(bucket, "absent.json", b"{}", if_match=etag)
    assert bucket.objects.get("absent.json") is None


@pytest.mark.needs("if_none_match", "atomic_conditions")
def test_racing_writers_through_open_one_wins(bucket: Bucket) -> None:
    bodies = [f"writer {i} ".encode() * 500 for i in range(2)]
    writers = [functools.partial(_write_through_open, bucket, "race", body, if_none_match="*") for body in bodies]
    results = _race(writers)
    winners = [i for i, result in enumerate(results) if result is None]
    assert len(winners) == 1, results
    assert bucket.objects.get("race").read() == bodies[winners[0]]  # type: ignore[union-attr]


def test_open_condition_arguments_checked_before_any_request(bucket: Bucket) -> None:
    obj = bucket.objects.create("x")
    with pytest.raises(InvalidParamException):
        obj.open("wb", if_none_match="etag")
    with pytest.raises(InvalidParamException):
        obj.open("rb", if_match='"abc"')
    assert bucket.objects.get("x") is None


@pytest.mark.lacks("if_none_match")
def test_open_with_an_unsupported_condition_refused_at_once(bucket: Bucket) -> None:
    with pytest.raises(NotSupportedException):
        bucket.objects.create("y").open("wb", if_none_match="*")
    assert bucket.objects.get("y") is None

"""Capabilities drive the shared layer: derived from what a backend implements, or declared.

Each case runs on the memory provider with one capability taken away, and checks both that
the shared layer works without it and that the backend is never asked for what it lacks.
"""

from __future__ import annotations

import dataclasses
import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from cloudstore import (
    CloudProvider,
    CloudProviderFactory,
    InvalidParamException,
    NotSupportedException,
    TransferConfig,
    registry,
)
from cloudstore.backend import Backend, BucketInfo, Features, ObjectInfo, Page, UploadPart
from cloudstore.exceptions import CloudStoreException
from cloudstore.providers.memory import SPEC as MEMORY
from cloudstore.providers.memory.backend import MemoryBackend
from cloudstore.registry import ProviderSpec, register
from cloudstore.testing import backend_of

SMALL = TransferConfig(threshold=10, part_size=4, max_concurrency=2)


@pytest.fixture(autouse=True)
def scratch_registry() -> Iterator[None]:
    before = set(registry.registered())
    yield
    for provider_id in set(registry.registered()) - before:
        registry.unregister(provider_id)


def provider_with(backend: type[Backend], transfer: TransferConfig = SMALL) -> CloudProvider:
    """A provider whose backend is ``backend`` (registered under its class name), on a memory
    store of its own."""
    provider_id = backend.__name__.lower()
    register(ProviderSpec(id=provider_id, backend=f"{__name__}:{backend.__name__}", keys=MEMORY.keys))
    config = {"transfer_config": transfer, "memory_store": uuid.uuid4().hex}
    return CloudProviderFactory().create_provider(provider_id, config)


# --- derived from the class (rclone's Features.Fill) ---------------------------------------------


class Bare(Backend):
    """Only the required methods: no multipart, no copy, no signed URLs."""

    def check_bucket_name(self, name: str) -> None: ...
    def map_error(self, error: BaseException) -> CloudStoreException | None: ...
    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]: ...  # type: ignore[empty-body]
    def head_bucket(self, name: str) -> BucketInfo | None: ...
    def create_bucket(self, name: str, location: str | None) -> BucketInfo: ...  # type: ignore[empty-body]
    def delete_bucket(self, name: str) -> None: ...
    def list_objects(self, *args: Any) -> Page[ObjectInfo]: ...  # type: ignore[empty-body]
    def head_object(self, bucket: str, name: str) -> ObjectInfo | None: ...
    def put_object(self, *args: Any, **kwargs: Any) -> None: ...
    def get_object(self, *args: Any) -> Any: ...
    def delete_object(self, bucket: str, name: str) -> None: ...


def test_capabilities_are_derived_from_the_methods_a_backend_implements() -> None:
    assert (Bare.features.multipart_upload, Bare.features.server_side_copy, Bare.features.signed_urls) == (
        False,
        False,
        False,
    )
    assert MemoryBackend.features.multipart_upload and MemoryBackend.features.server_side_copy
    # Declared: MEMORY implements no sign_url and says so; a declaration wins over what is derived.
    assert MemoryBackend.features.signed_urls is False

    class PartsOff(MemoryBackend):
        features = Features(multipart_upload=False)

    assert PartsOff.features.multipart_upload is False and PartsOff.features.server_side_copy is True

    class HalfMultipart(Bare):
        def create_multipart_upload(self, *args: Any) -> Any: ...
        def upload_part(self, *args: Any, **kwargs: Any) -> UploadPart: ...  # type: ignore[empty-body]

    assert HalfMultipart.features.multipart_upload is False  # all four methods, or none


# --- signed URLs -------------------------------------------------------------------------------------


class SigningRefused(MemoryBackend):
    """Has a sign_url, but declares no signed URLs: the shared layer must not call it."""

    features = Features(signed_urls=False, min_part_size=1)
    signed: list[str] = []

    def sign_url(self, bucket: str, name: str, method: str, expires_in: int) -> str:
        self.signed.append(name)
        return "http://never"


def test_without_signed_urls_generate_url_raises_up_front() -> None:
    provider = provider_with(SigningRefused)
    obj = provider.storage.buckets.create("urls").objects.create("k")
    obj.upload(b"v")
    for writable in (False, True):
        with pytest.raises(NotSupportedException, match="no signed URLs"):
            obj.generate_url(expires_in=60, writable=writable)
    with pytest.raises(NotSupportedException):
        obj.generate_url(expires_in=-1)  # the capability is checked before the arguments
    assert SigningRefused.signed == []


# --- server-side copies --------------------------------------------------------------------------


class NoServerCopy(MemoryBackend):
    features = Features(server_side_copy=False, signed_urls=False, min_part_size=1)

    def copy_object(self, *args: Any) -> None:
        raise AssertionError("copy_object must not be called")


@pytest.mark.parametrize("size", [0, 7, 33])  # empty, one request, parts
def test_without_server_side_copy_copy_to_streams_through_the_engine(size: int) -> None:
    provider = provider_with(NoServerCopy)
    buckets = provider.storage.buckets
    source = buckets.create("src").objects.create("a/b")
    data = bytes(range(size))
    source.upload(data, content_type="text/x-copy", metadata={"colour": "blue"})
    copied = source.copy_to(buckets.create("dst"), "c")
    assert copied.read() == data
    assert copied.content_type == "text/x-copy" and copied.metadata == {"colour": "blue"}
    assert copied.size == size


def test_a_copy_through_the_engine_of_a_missing_object_is_not_found() -> None:
    provider = provider_with(NoServerCopy)
    bucket = provider.storage.buckets.create("src")
    with pytest.raises(CloudStoreException) as raised:
        bucket.objects.create("missing").copy_to(bucket, "other")
    assert raised.value.status == 404
    assert bucket.objects.get("other") is None


# --- paging on the client ------------------------------------------------------------------------------


class NoServerPaging(MemoryBackend):
    """Answers every listing whole, whatever limit and marker say."""

    features = Features(server_paging=False, signed_urls=False, min_part_size=1)
    calls: list[tuple[int | None, str | None]] = []

    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        self.calls.append((limit, marker))
        return super().list_buckets(None, None)

    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        self.calls.append((limit, marker))
        return super().list_objects(bucket, prefix, delimiter, None, None)


def test_without_server_paging_the_pager_cuts_the_pages() -> None:
    provider = provider_with(NoServerPaging)
    for name in ("b-one", "b-two", "b-three"):
        provider.storage.buckets.create(name)
    first = provider.storage.buckets.list(limit=2)
    assert [b.name for b in first] == ["b-one", "b-three"] and first.marker == "b-three"
    second = provider.storage.buckets.list(limit=2, marker=first.marker)
    assert [b.name for b in second] == ["b-two"] and second.marker is None

    bucket = provider.storage.buckets.get("b-one")
    assert bucket is not None
    for key in ("a", "d/1", "d/2", "e", "f"):
        bucket.objects.create(key).upload(b"x")
    page = bucket.objects.list(limit=2, delimiter="/")
    assert [o.name for o in page] == ["a"] and page.prefixes == ["d/"] and page.marker == "d/"
    rest = bucket.objects.list(limit=2, delimiter="/", marker=page.marker)
    assert [o.name for o in rest] == ["e", "f"] and rest.marker is None
    assert [o.name for o in bucket.objects] == ["a", "d/1", "d/2", "e", "f"]
    # The backend was asked for whole listings only.
    assert set(NoServerPaging.calls) == {(None, None)}


# --- multipart uploads, and the part limit ---------------------------------------------------------------


class NoMultipart(MemoryBackend):
    features = Features(multipart_upload=False, signed_urls=False, min_part_size=1)
    puts: list[int] = []

    def put_object(self, bucket: str, name: str, data: bytes, *args: Any, **kwargs: Any) -> None:
        self.puts.append(len(data))
        super().put_object(bucket, name, data, *args, **kwargs)


@pytest.mark.parametrize("known_size", [True, False])
def test_without_multipart_every_upload_is_one_request(known_size: bool) -> None:
    provider = provider_with(NoMultipart)
    obj = provider.storage.buckets.create("whole").objects.create("big")
    data = bytes(range(50)) * 3
    obj.upload(data if known_size else Unseekable(data))
    assert NoMultipart.puts[-1] == len(data) and obj.read() == data


class Unseekable(io.RawIOBase):
    """A stream of unknown length (as a pipe is)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._data.readinto(buffer)


class ThreeParts(MemoryBackend):
    features = Features(max_parts=3, signed_urls=False, min_part_size=1)
    parts: list[int] = []

    def upload_part(self, upload: Any, number: int, offset: int, data: bytes, **kwargs: Any) -> UploadPart:
        self.parts.append(len(data))
        return super().upload_part(upload, number, offset, data, **kwargs)


def test_the_engine_keeps_within_max_parts() -> None:
    provider = provider_with(ThreeParts)
    bucket = provider.storage.buckets.create("parts")
    bucket.objects.create("known").upload(bytes(30))  # 4-byte parts would be 8: they grow to 10
    assert ThreeParts.parts == [10, 10, 10]
    ThreeParts.parts.clear()
    # Unknown length: parts double as they go (every max_parts // 10 parts, at least every one).
    bucket.objects.create("unknown").upload(Unseekable(bytes(range(20))))
    assert ThreeParts.parts == [4, 8, 8]
    assert bucket.objects.get("unknown").read() == bytes(range(20))  # type: ignore[union-attr]


class OnePart(MemoryBackend):
    features = Features(max_parts=1, signed_urls=False, min_part_size=1)


def test_more_than_max_parts_is_refused_and_aborted() -> None:
    provider = provider_with(OnePart)
    bucket = provider.storage.buckets.create("one")
    with pytest.raises(InvalidParamException, match="more than 1 parts"):
        bucket.objects.create("stream").upload(Unseekable(bytes(20)))
    assert bucket.objects.get("stream") is None
    assert backend_of(provider) is not None and backend_of(provider).uploads == {}  # type: ignore[attr-defined]


def test_features_fill_keeps_declared_values() -> None:
    declared = Features(multipart_upload=True, server_side_copy=False)
    filled = Features.fill(Bare, declared)
    assert dataclasses.astuple(filled)[:3] == (True, False, False)

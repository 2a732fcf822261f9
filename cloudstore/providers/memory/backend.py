"""MEMORY: buckets and objects in dicts in this process, behind one lock.

Providers configured with the same ``memory_store`` name (default ``"default"``) share one store,
as fsspec's memory filesystem does: a provider rebuilt from its config (unpickled, or made again
from an address) sees the same objects. Other processes do not.

Everything the shared layer offers works on it (multipart uploads, server-side copies, paging,
checksums) except signed URLs: no server could answer them. It needs no SDK, so unit tests of
the model and the engine run on it, and it is the smallest complete example of a backend.

Of a provider's usual file set it has only this backend: it has no credentials (no ``auth.py``)
and raises nothing but cloudstore's own exceptions (no ``errors.py``: ``map_error`` passes them on).
"""

from __future__ import annotations

import hashlib
import io
import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from cloudstore import _names as names
from cloudstore.backend import (
    Backend,
    BucketInfo,
    Features,
    FileRangeReader,
    ObjectInfo,
    Page,
    RangeReader,
    UploadPart,
    WriteCondition,
)
from cloudstore.config import Config
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    DuplicateResourceException,
    InvalidParamException,
    NotFoundException,
    PreconditionFailedException,
)


@dataclass(frozen=True)
class _Object:
    data: bytes
    info: ObjectInfo


@dataclass
class _Bucket:
    info: BucketInfo
    objects: dict[str, _Object] = field(default_factory=dict)


@dataclass
class MemoryUpload:
    """A multipart upload: its parts wait here until it is completed."""

    bucket: str
    name: str
    content_type: str | None
    metadata: Mapping[str, str]
    upload_id: str = field(default_factory=lambda: secrets.token_hex(8))
    parts: dict[int, bytes] = field(default_factory=dict)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Store:
    lock: threading.Lock = field(default_factory=threading.Lock)
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    uploads: dict[str, MemoryUpload] = field(default_factory=dict)


#: The stores of this process, by ``memory_store`` name.
_STORES: dict[str, _Store] = {}
_STORES_LOCK = threading.Lock()


class MemoryBackend(Backend[MemoryUpload]):
    """Buckets and objects in memory; see the module's docstring."""

    # Conditions are checked under the lock that covers the write: atomic.
    features = Features(
        signed_urls=False,
        min_part_size=1,
        if_none_match=True,
        if_match=True,
        shared_between_processes=False,
    )
    check_bucket_name = staticmethod(names.s3_bucket_name)

    def __init__(self, config: Config | None = None) -> None:
        name = config.get("memory_store") if config is not None else None
        name = name or "default"
        if not isinstance(name, str):
            raise InvalidParamException(f"memory_store must be a name (str), not {type(name).__name__}")
        with _STORES_LOCK:
            store = _STORES.setdefault(name, _Store())
        self._lock = store.lock
        self._buckets = store.buckets
        #: Multipart uploads started and neither completed nor aborted, by id.
        self.uploads = store.uploads

    def __repr__(self) -> str:
        return f"<MemoryBackend buckets={len(self._buckets)}>"

    def map_error(self, error: BaseException) -> CloudStoreException | None:
        return None  # everything raised here is a cloudstore exception already

    def _bucket(self, name: str) -> _Bucket:
        """The bucket (the caller holds the lock)."""
        found = self._buckets.get(name)
        if found is None:
            raise NotFoundException(f"bucket {name!r} not found", status=404, code="NoSuchBucket")
        return found

    def _object(self, bucket: str, name: str) -> _Object:
        found = self._bucket(bucket).objects.get(name)
        if found is None:
            raise NotFoundException(f"object {name!r} not found in bucket {bucket!r}", status=404, code="NoSuchKey")
        return found

    # --- buckets ----------------------------------------------------------
    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        with self._lock:
            infos = [b.info for name, b in sorted(self._buckets.items()) if marker is None or name > marker]
        return _page(infos, [], limit)

    def head_bucket(self, name: str) -> BucketInfo | None:
        with self._lock:
            found = self._buckets.get(name)
        return None if found is None else found.info

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        with self._lock:
            if name in self._buckets:
                raise DuplicateResourceException(f"bucket {name!r} already exists", code="BucketAlreadyExists")
            created = self._buckets[name] = _Bucket(BucketInfo(name, datetime.now(UTC)))
        return created.info

    def delete_bucket(self, name: str) -> None:
        with self._lock:
            if self._bucket(name).objects:
                raise PreconditionFailedException(f"bucket {name!r} is not empty", status=409, code="BucketNotEmpty")
            del self._buckets[name]

    # --- objects ----------------------------------------------------------
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        prefix = prefix or ""
        with self._lock:
            keys = sorted(self._bucket(bucket).objects.items(), key=lambda item: _sort_key(item[0]))
        # Objects and rolled-up prefixes in key order, each once, after the marker.
        entries: list[tuple[str, ObjectInfo | None]] = []
        for key, stored in keys:
            if not key.startswith(prefix):
                continue
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                if not entries or entries[-1][0] != common:
                    entries.append((common, None))
            else:
                entries.append((key, stored.info))
        if marker is not None:
            entries = [entry for entry in entries if _sort_key(entry[0]) > _sort_key(marker)]
        shown = entries if limit is None else entries[:limit]
        page = Page(
            [info for _, info in shown if info is not None],
            prefixes=[name for name, info in shown if info is None],
        )
        if len(shown) < len(entries):
            page.next_marker = shown[-1][0]
        return page

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        with self._lock:
            container = self._buckets.get(bucket)
            found = container.objects.get(name) if container is not None else None
        return None if found is None else found.info

    def put_object(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        *,
        content_md5: bytes | None = None,
        condition: WriteCondition | None = None,
    ) -> None:
        if content_md5 is not None and hashlib.md5(data, usedforsecurity=False).digest() != content_md5:
            raise ChecksumMismatchException(f"the body of {name!r} does not match its MD5", retryable=True)
        self._store(bucket, name, bytes(data), content_type, metadata, condition)

    def _store(
        self,
        bucket: str,
        name: str,
        data: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        condition: WriteCondition | None = None,
    ) -> None:
        md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
        info = ObjectInfo(
            name=name,
            size=len(data),
            last_modified=datetime.now(UTC),
            etag=md5,
            content_type=content_type or "application/octet-stream",
            metadata=dict(metadata),
            checksum=("md5", md5),
        )
        with self._lock:
            objects = self._bucket(bucket).objects
            if condition is not None:
                current = objects.get(name)
                condition.check(current.info if current is not None else None, name)
            objects[name] = _Object(data, info)

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        with self._lock:
            stored = self._object(bucket, name)
        size = len(stored.data)
        first = start or 0
        if first >= size and size > 0:
            raise InvalidParamException(f"range start {first} is past the end of {name!r} ({size} bytes)", status=416)
        last = size - 1 if end is None else min(end, size - 1)
        return FileRangeReader(io.BytesIO(stored.data[first : last + 1]), stored.info)

    def delete_object(self, bucket: str, name: str) -> None:
        with self._lock:
            self._object(bucket, name)
            del self._bucket(bucket).objects[name]

    def copy_object(
        self,
        src_bucket: str,
        src_name: str,
        dst_bucket: str,
        dst_name: str,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        with self._lock:
            source = self._object(src_bucket, src_name)
            self._bucket(dst_bucket)
        info = source.info
        self._store(dst_bucket, dst_name, source.data, info.content_type, info.metadata or {}, condition)

    # --- multipart uploads --------------------------------------------------
    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> MemoryUpload:
        upload = MemoryUpload(bucket, name, content_type, dict(metadata))
        with self._lock:
            self._bucket(bucket)
            self.uploads[upload.upload_id] = upload
        return upload

    def upload_part(
        self, upload: MemoryUpload, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        if content_md5 is not None and hashlib.md5(data, usedforsecurity=False).digest() != content_md5:
            raise ChecksumMismatchException(f"part {number} of {upload.name!r} does not match its MD5", retryable=True)
        with self._lock:
            upload.parts[number] = bytes(data)
        return UploadPart(number, len(data))

    def complete_multipart_upload(
        self,
        upload: MemoryUpload,
        parts: list[UploadPart],
        content_md5: bytes | None = None,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        with self._lock:
            if self.uploads.get(upload.upload_id) is not upload:
                raise NotFoundException(f"the upload of {upload.name!r} is gone", status=404, code="NoSuchUpload")
            missing = [part.number for part in parts if part.number not in upload.parts]
            if missing:
                raise PreconditionFailedException(f"the upload of {upload.name!r} lacks parts {missing}")
            data = b"".join(upload.parts[part.number] for part in sorted(parts, key=lambda p: p.number))
        self._store(upload.bucket, upload.name, data, upload.content_type, upload.metadata, condition)
        with self._lock:
            self.uploads.pop(upload.upload_id, None)

    def abort_multipart_upload(self, upload: MemoryUpload) -> None:
        with self._lock:
            self.uploads.pop(upload.upload_id, None)

    def abort_orphan_uploads(self, upload: MemoryUpload, since: datetime) -> None:
        # The uploads of the same object started since then, other than this one: what an attempt
        # whose answer was lost left open (as S3 keeps them until they are aborted).
        with self._lock:
            for other in list(self.uploads.values()):
                same = (other.bucket, other.name) == (upload.bucket, upload.name)
                if same and other.upload_id != upload.upload_id and other.started >= since:
                    del self.uploads[other.upload_id]


def _sort_key(name: str) -> bytes:
    """Keys sort by their UTF-8 bytes, as on S3."""
    return name.encode("utf-8", "surrogateescape")


def _page(items: list[BucketInfo], prefixes: list[str], limit: int | None) -> Page[BucketInfo]:
    shown = items if limit is None else items[:limit]
    return Page(shown, next_marker=shown[-1].name if len(shown) < len(items) else None, prefixes=prefixes)

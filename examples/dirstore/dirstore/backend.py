"""dirstore's backend: each bucket a folder, each object one file.

An object's file is named by the SHA-256 of its key (so any key is a valid file name, and
``a`` and ``a/b`` can both exist) and holds a one-line JSON header (the key, content type,
metadata and MD5) followed by the bytes. A write goes to a temporary file renamed over the old
one, so a reader always sees one whole version. There is no multipart upload, no server-side
copy and no signed URL: cloudstore's shared layer does without them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from cloudstore.backend import Backend, BucketInfo, Features, ObjectInfo, Page, RangeReader
from cloudstore.config import Config
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    DuplicateResourceException,
    InvalidNameException,
    InvalidParamException,
    error_for_status,
)

#: What each file-system error means, as the HTTP status the shared table maps to an exception.
_ERRNO_STATUS = {
    errno.ENOENT: 404,  # NotFoundException
    errno.ENOTDIR: 404,
    errno.EACCES: 403,  # PermissionDeniedException
    errno.EPERM: 403,
    errno.ENOTEMPTY: 409,  # PreconditionFailedException: a bucket that still holds objects
    errno.ENAMETOOLONG: 400,  # InvalidParamException
}

_BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class DirBackend(Backend[Any]):
    """Buckets and objects in ``dirstore_root``; see the module's docstring."""

    # Declared: no signed URLs, and a listing that is read whole (the shared layer cuts the
    # pages). No multipart uploads and no server-side copy: their methods are not implemented.
    features = Features(signed_urls=False, server_paging=False)

    def __init__(self, config: Config) -> None:
        root = config.get("dirstore_root")
        if not root:
            raise InvalidParamException("dirstore needs the config key 'dirstore_root' (or DIRSTORE_ROOT)")
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"<DirBackend root={str(self.root)!r}>"

    # --- names and errors --------------------------------------------------------------------------
    def check_bucket_name(self, name: str) -> None:
        if not isinstance(name, str) or not _BUCKET_NAME.fullmatch(name):
            raise InvalidNameException(f"bucket names are 3-63 lowercase letters, digits and '-': {name[:80]!r}")

    def map_error(self, error: BaseException) -> CloudStoreException | None:
        if isinstance(error, OSError) and error.errno is not None:
            # The status decides the exception class; no status (None) means try again.
            return error_for_status(_ERRNO_STATUS.get(error.errno), error.strerror or "file system error")
        return None

    # --- buckets -----------------------------------------------------------------------------------
    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        found = [_bucket_info(entry) for entry in os.scandir(self.root) if entry.is_dir() and _visible(entry.name)]
        return Page(sorted(found, key=lambda info: info.name))

    def head_bucket(self, name: str) -> BucketInfo | None:
        path = self.root / name
        return _bucket_info(path) if path.is_dir() else None

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        try:
            (self.root / name).mkdir()
        except FileExistsError:
            raise DuplicateResourceException(f"bucket {name!r} already exists") from None
        return _bucket_info(self.root / name)

    def delete_bucket(self, name: str) -> None:
        (self.root / name).rmdir()  # ENOTEMPTY when objects are left: nothing is deleted

    # --- objects -----------------------------------------------------------------------------------
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        prefix = prefix or ""
        items: list[ObjectInfo] = []
        prefixes: set[str] = set()
        for entry in os.scandir(self.root / bucket):
            if not _visible(entry.name):
                continue
            try:
                with open(entry.path, "rb") as stored:
                    info, _ = _read_header(stored, entry.stat().st_mtime)
            except FileNotFoundError:
                continue  # deleted since the folder was read
            if not info.name.startswith(prefix):
                continue
            rest = info.name[len(prefix) :]
            if delimiter and delimiter in rest:
                prefixes.add(prefix + rest[: rest.index(delimiter) + len(delimiter)])
            else:
                items.append(info)
        items.sort(key=lambda info: info.name.encode("utf-8"))
        return Page(items, prefixes=sorted(prefixes, key=lambda name: name.encode("utf-8")))

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        try:
            with open(self._path(bucket, name), "rb") as stored:
                return _read_header(stored, os.fstat(stored.fileno()).st_mtime)[0]
        except FileNotFoundError:
            return None

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
        digest = hashlib.md5(data, usedforsecurity=False)
        if content_md5 is not None and digest.digest() != content_md5:
            raise ChecksumMismatchException(f"the body of {name[:80]!r} does not match its MD5", retryable=True)
        header = {
            "name": name,
            "content_type": content_type or "application/octet-stream",
            "metadata": dict(metadata),
            "md5": digest.hexdigest(),
        }
        folder = self.root / bucket
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(json.dumps(header).encode("ascii") + b"\n")
                out.write(data)
            os.replace(temporary, self._path(bucket, name))
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        stored = open(self._path(bucket, name), "rb")  # noqa: SIM115 - the reader closes it
        try:
            info, body_at = _read_header(stored, os.fstat(stored.fileno()).st_mtime)
            first = start or 0
            if first >= info.size > 0:
                raise error_for_status(416, f"range start {first} is past the end of the object")
            last = info.size - 1 if end is None else min(end, info.size - 1)
            stored.seek(body_at + first)
            return _Slice(stored, max(0, last - first + 1), info)
        except BaseException:
            stored.close()
            raise

    def delete_object(self, bucket: str, name: str) -> None:
        self._path(bucket, name).unlink()

    def _path(self, bucket: str, name: str) -> Path:
        return self.root / bucket / hashlib.sha256(name.encode("utf-8")).hexdigest()


class _Slice(RangeReader):
    """``remaining`` bytes of an open file, from where it is positioned."""

    def __init__(self, stored: BinaryIO, remaining: int, info: ObjectInfo) -> None:
        self._stored = stored
        self._remaining = remaining
        self.info = info

    def read(self, size: int = -1) -> bytes:
        wanted = self._remaining if size < 0 else min(size, self._remaining)
        data = self._stored.read(wanted)
        self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._stored.close()


def _read_header(stored: BinaryIO, modified: float) -> tuple[ObjectInfo, int]:
    """The object's properties from its file's first line, and where its bytes start."""
    line = stored.readline()
    header = json.loads(line)
    size = os.fstat(stored.fileno()).st_size - len(line)
    info = ObjectInfo(
        name=header["name"],
        size=size,
        last_modified=datetime.fromtimestamp(modified, UTC),
        etag=header["md5"],
        content_type=header["content_type"],
        metadata=header["metadata"],
        checksum=("md5", header["md5"]),
    )
    return info, len(line)


def _bucket_info(path: os.DirEntry[str] | Path) -> BucketInfo:
    return BucketInfo(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))


def _visible(name: str) -> bool:
    """Not a temporary file (nor anything else hidden)."""
    return not name.startswith(".")

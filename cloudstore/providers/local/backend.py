"""LOCAL: buckets are folders under ``local_root``, objects are files in them.

Content type and metadata live in a JSON sidecar under ``<root>/.cloudstore/meta``
that records the inode, size and mtime of the file it describes, so a sidecar
left over from an earlier version of an object is never trusted. Every write
goes to a temporary file under ``<root>/.cloudstore/tmp`` and is renamed into
place: readers never see half an object.

A write switches data and sidecar together: both renames happen under an
exclusive lock of the key (``flock`` on one of 256 lock files under
``<root>/.cloudstore/locks``, chosen by a hash of the key), and a reader takes
the file and its sidecar under the shared lock. So concurrent writers of one key,
in one process or several (``cloudstore serve`` beside the library), leave one
writer's data with that writer's properties: the last switch wins as a whole.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any, BinaryIO

from cloudstore import _names as names
from cloudstore._engine import Readable
from cloudstore.backend import (
    Backend,
    BucketInfo,
    Features,
    ObjectInfo,
    Page,
    PostForm,
    RangeReader,
    UploadPart,
    UrlPins,
    WriteCondition,
)
from cloudstore.config import Config
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    DuplicateResourceException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    PreconditionFailedException,
    ProviderConnectionException,
)
from cloudstore.providers.local.auth import pins_query, signed_url
from cloudstore.providers.local.errors import map_os_error

DEFAULT_ROOT = "~/.local/share/cloudstore"
DEFAULT_URL = "http://127.0.0.1:8765"
_INTERNAL = ".cloudstore"
_COPY_CHUNK = 1024 * 1024


#: The header a LOCAL upload sets a metadata key with (``x-cloudstore-meta-<key>``).
META_HEADER = "x-cloudstore-meta-"


@dataclass
class _Upload:
    bucket: str
    name: str
    temp: Path
    content_type: str | None
    metadata: dict[str, str]


class _FileReader(RangeReader):
    def __init__(self, handle: BinaryIO, length: int | None, info: ObjectInfo | None = None) -> None:
        self._handle = handle
        self._left = length
        self.info = info

    def read(self, size: int = -1) -> bytes:
        if self._left is not None:
            size = self._left if size < 0 else min(size, self._left)
            if size == 0:
                return b""
        data = self._handle.read(size)
        if self._left is not None:
            self._left -= len(data)
        return data

    def close(self) -> None:
        self._handle.close()


class LocalBackend(Backend[_Upload]):
    """Object storage in a directory on this machine."""

    # Signed URLs: no limit of its own (cloudstore caps at 7 days). Deletes are local file
    # operations: the shared default runs a thousand of them per call.
    # Conditions are checked under the key's lock that also covers the switch: atomic.
    # ``cloudstore serve`` checks what a signed URL pins and a form's size and content type.
    features = Features(
        min_part_size=1,
        max_batch_delete=1000,
        if_none_match=True,
        if_match=True,
        signed_url_headers=True,
    )
    check_bucket_name = staticmethod(names.local_bucket_name)
    check_object_name = staticmethod(names.local_object_name)

    def __init__(self, config: Config) -> None:
        self.root = Path(os.path.expanduser(config.get("local_root") or DEFAULT_ROOT)).resolve()
        self.url = (config.get("local_url") or DEFAULT_URL).rstrip("/")
        self._secret: str | None = config.get("local_secret")
        self._tmp = self.root / _INTERNAL / "tmp"
        self._meta = self.root / _INTERNAL / "meta"
        self._locks = self.root / _INTERNAL / "locks"
        self._folders = _FolderIndex()

    def __repr__(self) -> str:
        return f"<LocalBackend root={str(self.root)!r} url={self.url}>"

    def _check_root(self) -> None:
        """A ``local_root`` that exists must be a folder (one that does not is made on first write)."""
        if self.root.exists() and not self.root.is_dir():
            raise InvalidParamException(f"local_root {str(self.root)!r} is not a folder")

    @contextlib.contextmanager
    def _locked(self, bucket: str, name: str, exclusive: bool) -> Iterator[None]:
        """Hold the key's lock: exclusive to switch its data and sidecar, shared to read the pair."""
        digest = hashlib.sha256(f"{bucket}/{name}".encode("utf-8", "surrogatepass")).hexdigest()
        self._locks.mkdir(parents=True, exist_ok=True)
        # A descriptor per holder: flock locks belong to the open file, so threads must not share one.
        fd = os.open(self._locks / digest[:2], os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # releases the lock

    # --- paths ------------------------------------------------------------------
    def _bucket_dir(self, bucket: str) -> Path:
        # Checked here as well as in the model: every path this backend touches is derived from
        # names it has validated itself (a bucket '..' or '.cloudstore' would be a way out).
        names.local_bucket_name(bucket)
        self._check_root()
        return self.root / bucket

    def _existing_bucket_dir(self, bucket: str) -> Path:
        path = self._bucket_dir(bucket)
        if not path.is_dir() or path.is_symlink():
            raise NotFoundException(f"bucket {bucket!r} not found", code="NoSuchBucket")
        return path

    def _object_path(self, bucket: str, name: str) -> Path:
        """The file of ``name``, proven to stay inside the bucket folder (no symlink out)."""
        names.local_object_name(name)  # no '..', '.', empty segment or absolute path
        base = self._existing_bucket_dir(bucket)
        path = base / name
        parent = Path(os.path.realpath(path.parent))
        if parent != base and base not in parent.parents:
            raise InvalidNameException(f"object name {name!r} leads outside bucket {bucket!r}")
        if path.is_symlink():
            raise InvalidNameException(f"object {name!r} is a symbolic link; LOCAL does not follow links")
        return path

    def _sidecar(self, bucket: str, name: str) -> Path:
        # Named by a hash of the key: a sidecar path derived from the key itself could collide
        # ("x" -> "x.json" vs. "x.json/y") or exceed the file name limit for a 255-byte segment.
        digest = hashlib.sha256(name.encode("utf-8")).hexdigest()
        return self._meta / bucket / digest[:2] / f"{digest}.json"

    def _temp_path(self) -> Path:
        if not self._tmp.is_dir():
            self._make_root()
            self._tmp.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self._tmp / secrets.token_hex(12)

    def _make_root(self) -> None:
        # Private to its owner: other users of the machine have no business reading the objects.
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)

    def collect_stale_temp_files(self, older_than: float) -> int:
        """Remove temporary files not written for ``older_than`` seconds (left by a crash); how many."""
        removed = 0
        deadline = time.time() - older_than
        try:
            entries = list(os.scandir(self._tmp))
        except FileNotFoundError:
            return 0
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_mtime < deadline:
                    os.unlink(entry.path)
                    removed += 1
        return removed

    # --- errors -------------------------------------------------------------------
    def map_error(self, error: BaseException) -> CloudStoreException | None:
        return map_os_error(error)

    # --- buckets ------------------------------------------------------------------
    def _bucket_info(self, path: Path) -> BucketInfo:
        created = datetime.fromtimestamp(path.stat().st_ctime, UTC)
        return BucketInfo(name=path.name, created=created)

    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        self._check_root()
        if not self.root.is_dir():
            return Page([])
        names_ = sorted(
            entry.name
            for entry in os.scandir(self.root)
            if entry.is_dir(follow_symlinks=False) and _is_bucket_name(entry.name)
        )
        if marker is not None:
            names_ = [n for n in names_ if n > marker]
        page = names_[:limit] if limit else names_
        more = limit is not None and len(names_) > limit
        return Page([self._bucket_info(self.root / n) for n in page], page[-1] if more else None)

    def head_bucket(self, name: str) -> BucketInfo | None:
        path = self._bucket_dir(name)
        if path.is_dir() and not path.is_symlink():
            return self._bucket_info(path)
        return None

    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        path = self._bucket_dir(name)
        self._make_root()
        try:
            path.mkdir()
        except FileExistsError:
            raise DuplicateResourceException(f"bucket {name!r} already exists", code="BucketAlreadyExists") from None
        return self._bucket_info(path)

    def delete_bucket(self, name: str) -> None:
        path = self._existing_bucket_dir(name)
        try:
            path.rmdir()
        except OSError as err:
            if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            # Empty folders hold no object (listing shows nothing): they must not keep the bucket alive.
            if not _remove_empty_folders(path):
                raise PreconditionFailedException(f"bucket {name!r} is not empty", code="BucketNotEmpty") from err
            path.rmdir()
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(self._meta / name)

    # --- listing ------------------------------------------------------------------
    def _walk(
        self, folder: Path, key_prefix: str, prefix: str, after: str | None, folders_roll_up: bool = False
    ) -> Iterator[str]:
        """Keys under ``folder`` in key order, those matching ``prefix`` and sorting after ``after``.

        With ``folders_roll_up`` (a '/' delimiter), a sub-folder that the listing rolls up into one
        prefix as a whole yields only its first key: the rest would be skipped anyway.
        """
        listing = self._folders.entries(folder)
        if listing is None:
            return
        entries, sort_keys = listing
        # Start at the marker (or the prefix) instead of walking the whole folder for every page.
        start = 0
        for bound, inclusive_file in ((after, False), (prefix or None, True)):
            if bound is None or not bound.startswith(key_prefix):
                continue
            rest = bound[len(key_prefix) :]
            slash = rest.find("/")
            if slash >= 0:  # the bound lies inside a sub-folder: start at that folder
                start = max(start, bisect.bisect_left(sort_keys, _sort_key(rest[: slash + 1])))
            elif inclusive_file:  # a prefix: keys starting with it
                start = max(start, bisect.bisect_left(sort_keys, _sort_key(rest)))
            else:  # a marker: keys strictly after it
                start = max(start, bisect.bisect_right(sort_keys, _sort_key(rest)))
        for index in range(start, len(entries)):
            key = key_prefix + entries[index]
            if key.endswith("/"):
                if not (key.startswith(prefix) or prefix.startswith(key)):
                    if key > prefix:
                        return  # sorted: nothing later in this folder matches the prefix
                    continue
                if after is not None and key < after and not after.startswith(key):
                    continue
                sub = folder / key[len(key_prefix) : -1]
                # The folder is one prefix of the listing when the delimiter's first match after the
                # prefix is the folder's own trailing '/'.
                whole = key.startswith(prefix) and len(key) > len(prefix) and "/" not in key[len(prefix) : -1]
                if folders_roll_up and whole and (after is None or not after.startswith(key)):
                    first = _any_key(sub, key)
                    if first is not None:  # a folder holding no object is no prefix
                        yield first
                    continue
                yield from self._walk(sub, key, prefix, after, folders_roll_up)
            elif key.startswith(prefix):
                if after is None or key > after:
                    yield key
            elif key > prefix:
                return

    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        base = self._existing_bucket_dir(bucket)
        prefix = prefix or ""
        items: list[ObjectInfo] = []
        prefixes: list[str] = []
        last: str | None = None
        skip_under: str | None = None
        if marker is not None and delimiter and delimiter in marker[len(prefix) :]:
            skip_under = marker  # the marker was a rolled-up prefix: skip everything in it
        for key in self._walk(base, "", prefix, marker, folders_roll_up=delimiter == "/"):
            if skip_under is not None and key.startswith(skip_under):
                continue
            if limit is not None and len(items) + len(prefixes) >= limit:
                return Page(items, last, prefixes)
            rest = key[len(prefix) :]
            if delimiter and delimiter in rest:
                common = prefix + rest[: rest.index(delimiter) + len(delimiter)]
                prefixes.append(common)
                skip_under = common
                last = common
                continue
            path = base / key
            try:
                stat = path.stat()
            except FileNotFoundError:  # deleted while listing
                continue
            items.append(ObjectInfo(name=key, size=stat.st_size, last_modified=_mtime(stat)))
            last = key
        return Page(items, None, prefixes)

    # --- objects ------------------------------------------------------------------
    def _read_sidecar(self, bucket: str, name: str, stat: os.stat_result) -> dict[str, Any]:
        try:
            with open(self._sidecar(bucket, name), encoding="utf-8") as handle:
                data: dict[str, Any] = json.load(handle)
        except (FileNotFoundError, NotADirectoryError, ValueError):
            return {}
        if (data.get("ino"), data.get("size"), data.get("mtime_ns")) != (stat.st_ino, stat.st_size, stat.st_mtime_ns):
            return {}  # describes another version of the file
        return data

    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        if self.head_bucket(bucket) is None:
            return None  # as on the clouds: no bucket, no object
        path = self._object_path(bucket, name)
        with self._locked(bucket, name, exclusive=False):
            try:
                stat = path.stat()
            except (FileNotFoundError, NotADirectoryError):
                return None
            if not S_ISREG(stat.st_mode):
                return None
            return self._describe(bucket, name, stat)

    def _describe(self, bucket: str, name: str, stat: os.stat_result) -> ObjectInfo:
        side = self._read_sidecar(bucket, name, stat)
        md5 = side.get("md5")
        return ObjectInfo(
            name=name,
            size=stat.st_size,
            last_modified=_mtime(stat),
            etag=md5 or f"{stat.st_mtime_ns:x}-{stat.st_size:x}",
            content_type=side.get("content_type") or "application/octet-stream",
            metadata=dict(side.get("metadata") or {}),
            checksum=("md5", md5) if md5 else None,
        )

    def _commit(
        self,
        temp: Path,
        bucket: str,
        name: str,
        content_type: str | None,
        metadata: Mapping[str, str],
        md5: str | None,
        condition: WriteCondition | None = None,
    ) -> None:
        """Rename ``temp`` into place as ``name``, with its sidecar: one switch under the key's lock
        (which ``condition`` is checked under too)."""
        target = self._object_path(bucket, name)
        stat = temp.stat()
        side_temp = self._temp_path()
        side = {
            "content_type": content_type,
            "metadata": dict(metadata),
            "md5": md5,
            "ino": stat.st_ino,  # renaming keeps the inode: the sidecar names the very file it describes
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }
        try:
            side_temp.write_text(json.dumps(side), encoding="utf-8")
            with self._locked(bucket, name, exclusive=True):
                if condition is not None:
                    condition.check(self._current(bucket, name, target), name)
                _place(temp, target, self._bucket_dir(bucket), bucket_folder=True)
                _place(side_temp, self._sidecar(bucket, name), self._meta)
        finally:
            side_temp.unlink(missing_ok=True)

    def _current(self, bucket: str, name: str, path: Path) -> ObjectInfo | None:
        """The object at ``path`` as it is (the caller holds its lock), ``None`` if absent."""
        try:
            stat = os.stat(path, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        return self._describe(bucket, name, stat) if S_ISREG(stat.st_mode) else None

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
        self._object_path(bucket, name)
        temp = self._temp_path()
        try:
            temp.write_bytes(data)
            md5 = hashlib.md5(data, usedforsecurity=False).hexdigest()
            self._commit(temp, bucket, name, content_type, metadata, md5, condition)
        finally:
            temp.unlink(missing_ok=True)

    def write_stream(
        self,
        bucket: str,
        name: str,
        stream: Readable,
        length: int,
        content_type: str | None,
        content_md5: bytes | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        """Store exactly ``length`` bytes read from ``stream`` (used by ``cloudstore serve``).

        With ``content_md5`` (a PUT's ``Content-MD5``), bytes that do not match it are not stored:
        :class:`ChecksumMismatchException`.
        """
        self._object_path(bucket, name)
        temp = self._temp_path()
        hasher = hashlib.md5(usedforsecurity=False)
        try:
            with open(temp, "wb") as out:
                left = length
                while left:
                    chunk = stream.read(min(_COPY_CHUNK, left))
                    if not chunk:
                        raise ProviderConnectionException("the request body ended early")
                    out.write(chunk)
                    hasher.update(chunk)
                    left -= len(chunk)
            if content_md5 is not None and hasher.digest() != content_md5:
                raise ChecksumMismatchException("the body does not match its Content-MD5", retryable=True)
            self._commit(temp, bucket, name, content_type, metadata or {}, hasher.hexdigest())
        finally:
            temp.unlink(missing_ok=True)

    def store_file(self, bucket: str, name: str, temp: Path, content_type: str | None) -> None:
        """Make the temporary file ``temp`` (from :meth:`temp_file`) the object (form uploads)."""
        self._object_path(bucket, name)
        hasher = hashlib.md5(usedforsecurity=False)
        with open(temp, "rb") as written:
            while chunk := written.read(_COPY_CHUNK):
                hasher.update(chunk)
        self._commit(temp, bucket, name, content_type, {}, hasher.hexdigest())

    def temp_file(self) -> Path:
        """A fresh temporary file's path, on the same file system as the objects."""
        return self._temp_path()

    def open_object(self, bucket: str, name: str) -> tuple[BinaryIO, ObjectInfo] | None:
        """The object's open file and its properties, both of the same version (``None``: no such object).

        A HEAD then an open could describe one version and read the next, if the object is
        replaced in between; properties taken from the open file cannot.
        """
        path = self._object_path(bucket, name)
        # Non-blocking so that a FIFO dropped into the bucket cannot hang the open; no-follow so that
        # a link swapped in after the check above is refused, not followed.
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0)
        with self._locked(bucket, name, exclusive=False):
            try:
                fd = os.open(path, flags)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            except OSError as err:
                if err.errno == errno.ELOOP:
                    raise InvalidNameException(
                        f"object {name!r} is a symbolic link; LOCAL does not follow links"
                    ) from err
                raise
            stat = os.fstat(fd)
            if not S_ISREG(stat.st_mode):  # a folder (or a FIFO): checked before fdopen, which refuses a folder
                os.close(fd)
                return None
            return os.fdopen(fd, "rb"), self._describe(bucket, name, stat)

    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        opened = self.open_object(bucket, name)
        if opened is None:
            raise NotFoundException(f"object {name!r} not found in bucket {bucket!r}", status=404, code="NoSuchKey")
        handle, info = opened
        size = info.size
        if start is None and end is None:
            return _FileReader(handle, None, info)
        first = start or 0
        if first >= size and size > 0:
            handle.close()
            raise InvalidParamException(f"range start {first} is past the end of {name!r} ({size} bytes)", status=416)
        last = size - 1 if end is None else min(end, size - 1)
        handle.seek(first)
        return _FileReader(handle, max(0, last - first + 1), info)

    def delete_object(self, bucket: str, name: str) -> None:
        path = self._object_path(bucket, name)
        if not path.is_file():
            raise NotFoundException(f"object {name!r} not found in bucket {bucket!r}", code="NoSuchKey")
        with self._locked(bucket, name, exclusive=True):
            path.unlink()
            self._sidecar(bucket, name).unlink(missing_ok=True)
        _prune(path.parent, self._bucket_dir(bucket))
        _prune(self._sidecar(bucket, name).parent, self._meta / bucket)

    def copy_object(
        self,
        src_bucket: str,
        src_name: str,
        dst_bucket: str,
        dst_name: str,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        self._object_path(dst_bucket, dst_name)
        opened = self.open_object(src_bucket, src_name)
        if opened is None:
            raise NotFoundException(f"object {src_name!r} not found in bucket {src_bucket!r}", code="NoSuchKey")
        src, info = opened
        temp = self._temp_path()
        try:
            # Properties and checksum of the very file being read (it may be replaced meanwhile):
            # an MD5 taken from an earlier HEAD could describe other bytes.
            with src, open(temp, "wb") as dst:
                hasher = hashlib.md5(usedforsecurity=False)
                while chunk := src.read(_COPY_CHUNK):
                    dst.write(chunk)
                    hasher.update(chunk)
            metadata = dict(info.metadata or {})
            self._commit(temp, dst_bucket, dst_name, info.content_type, metadata, hasher.hexdigest(), condition)
        finally:
            temp.unlink(missing_ok=True)

    def sign_url(
        self, bucket: str, name: str, method: str, expires_in: int, *, pins: UrlPins | None = None
    ) -> str | tuple[str, Mapping[str, str]]:
        pinned = pins_query(pins) if pins else {}
        url = self._signed(bucket, name, method, expires_in, pinned)
        if not pins:
            return url
        headers = {META_HEADER + key: value for key, value in pins.metadata.items()}
        if pins.content_type:
            headers["Content-Type"] = pins.content_type
        if pins.content_md5:
            headers["Content-MD5"] = pinned["content_md5"]
        return url, headers

    def sign_post(self, bucket: str, name: str, expires_in: int, max_size: int, content_type: str | None) -> PostForm:
        # The policy is in the URL (signed); the form carries the content type (as on S3) and the file.
        pinned = {"max_size": str(max_size), **({"content_type": content_type} if content_type else {})}
        fields = {"Content-Type": content_type} if content_type else {}
        return PostForm(self._signed(bucket, name, "POST", expires_in, pinned), fields)

    def _signed(self, bucket: str, name: str, method: str, expires_in: int, pinned: Mapping[str, str]) -> str:
        return signed_url(self.url, self._secret, bucket, name, method, expires_in, pinned)

    # --- multipart: parts are written by position into one temporary file -----------
    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> _Upload:
        self._object_path(bucket, name)
        temp = self._temp_path()
        temp.touch()
        return _Upload(bucket, name, temp, content_type, dict(metadata))

    def upload_part(
        self, upload: _Upload, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        fd = os.open(upload.temp, os.O_WRONLY)
        try:
            view = memoryview(data)
            position = offset
            while view:
                written = os.pwrite(fd, view, position)
                view = view[written:]
                position += written
        finally:
            os.close(fd)
        return UploadPart(number, len(data))

    def complete_multipart_upload(
        self,
        upload: _Upload,
        parts: list[UploadPart],
        content_md5: bytes | None = None,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        expected = sum(int(part.token) for part in parts)
        if upload.temp.stat().st_size != expected:
            raise PreconditionFailedException("multipart upload is missing parts")
        # Hashing the assembled file (a local read) gives every LOCAL object an MD5, so a download
        # that met an overwrite half-way fails its checksum instead of returning a mix of versions.
        hasher = hashlib.md5(usedforsecurity=False)
        with open(upload.temp, "rb") as assembled:
            while chunk := assembled.read(_COPY_CHUNK):
                hasher.update(chunk)
        try:
            digest = hasher.hexdigest()
            self._commit(
                upload.temp, upload.bucket, upload.name, upload.content_type, upload.metadata, digest, condition
            )
        finally:
            upload.temp.unlink(missing_ok=True)

    def abort_multipart_upload(self, upload: _Upload) -> None:
        upload.temp.unlink(missing_ok=True)


def _is_bucket_name(name: str) -> bool:
    """Whether a folder of the root is a bucket (other folders, like ``.cloudstore``, are not)."""
    try:
        names.local_bucket_name(name)
    except InvalidNameException:
        return False
    return True


def _mtime(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, UTC)


def _any_key(folder: Path, key_prefix: str) -> str | None:
    """The key of some object under ``folder`` (files first, then sub-folders), or ``None``."""
    folders: list[tuple[Path, str]] = []
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_symlink():
                    continue
                if entry.is_file():
                    return key_prefix + entry.name
                if entry.is_dir():
                    folders.append((Path(entry.path), key_prefix + entry.name + "/"))
    except (FileNotFoundError, NotADirectoryError):
        return None
    for sub, sub_prefix in folders:
        found = _any_key(sub, sub_prefix)
        if found is not None:
            return found
    return None


def _sort_key(name: str) -> bytes:
    """Keys sort by their UTF-8 bytes, as on S3."""
    return name.encode("utf-8", "surrogateescape")


class _FolderIndex:
    """The sorted entries of recently listed folders, so paging through a big folder does not
    scan and sort all of it again for every page.

    A folder's listing is reused while its modification time and inode are unchanged, and only
    if it had been quiet for a while when it was scanned: a change within the file system's
    timestamp granularity of the scan could otherwise go unnoticed.
    """

    #: Folders kept (the ones a walk is paging through).
    SIZE = 8
    #: How long a folder must have been unchanged for its listing to be kept.
    QUIET_NS = 2_000_000_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, tuple[int, int, list[str], list[bytes]]] = OrderedDict()

    def entries(self, folder: Path) -> tuple[list[str], list[bytes]] | None:
        """Names in ``folder`` (sub-folders with a trailing '/', links left out) in key order, with
        their sort keys; ``None`` if it is not a folder."""
        try:
            stat = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):
            return None
        stamp = (stat.st_mtime_ns, stat.st_ino)
        with self._lock:
            cached = self._cache.get(str(folder))
            if cached is not None and cached[:2] == stamp:
                self._cache.move_to_end(str(folder))
                return cached[2], cached[3]
        try:
            scanned = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            return None
        names_: list[str] = []
        for entry in scanned:
            if entry.is_symlink():
                continue
            if entry.is_dir():
                names_.append(entry.name + "/")
            elif entry.is_file():
                names_.append(entry.name)
        names_.sort(key=_sort_key)
        sort_keys = [_sort_key(name) for name in names_]
        if time.time_ns() - stat.st_mtime_ns > self.QUIET_NS:
            with self._lock:
                self._cache[str(folder)] = (*stamp, names_, sort_keys)
                self._cache.move_to_end(str(folder))
                while len(self._cache) > self.SIZE:
                    self._cache.popitem(last=False)
        return names_, sort_keys


#: Attempts at creating a folder and renaming into it while deletes prune empty folders.
_PLACE_ATTEMPTS = 50


def _place(source: Path, target: Path, stop: Path, bucket_folder: bool = False) -> None:
    """Rename ``source`` to ``target``, creating its folders below ``stop``.

    A concurrent delete removes folders it leaves empty (``_prune``), possibly between the
    mkdir and the rename here: then the folder is made again. A file where a folder must be
    ('a' stored, 'a/b' wanted) is a real conflict and raises. When ``stop`` is a bucket
    folder it is never made again: a bucket deleted meanwhile stays deleted.
    """
    for _ in range(_PLACE_ATTEMPTS):
        if bucket_folder and not stop.is_dir():
            raise NotFoundException(f"bucket {stop.name!r} not found", status=404, code="NoSuchBucket")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
            return
        except (FileNotFoundError, FileExistsError, NotADirectoryError):
            if not source.exists() or _file_in_the_way(target.parent, stop):
                raise
    raise ProviderConnectionException(f"the folder of {target.name!r} kept disappearing during the write")


def _file_in_the_way(folder: Path, stop: Path) -> bool:
    """Whether ``folder`` or one of its parents below ``stop`` exists as something other than a folder."""
    while folder != stop and stop in folder.parents:
        try:
            mode = os.lstat(folder).st_mode  # one call: a folder pruned meanwhile is simply gone
        except (FileNotFoundError, NotADirectoryError):
            mode = None
        if mode is not None and not S_ISDIR(mode):
            return True
        folder = folder.parent
    return False


def _remove_empty_folders(folder: Path) -> bool:
    """Remove the folders under ``folder`` if all of them are empty; whether they were.

    Stops at the first file or link (an object, or something LOCAL does not own).
    """
    entries = list(os.scandir(folder))
    if any(not entry.is_dir(follow_symlinks=False) for entry in entries):
        return False
    for entry in entries:
        if not _remove_empty_folders(Path(entry.path)):
            return False
        try:
            os.rmdir(entry.path)
        except OSError:  # something was written there meanwhile
            return False
    return True


def _prune(folder: Path, stop: Path) -> None:
    """Remove ``folder`` and its parents up to (not including) ``stop`` while they are empty."""
    while folder != stop and stop in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent

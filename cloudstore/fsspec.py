"""An fsspec filesystem over any cloudstore provider: ``cloudstore://bucket/key``.

>>> import fsspec
>>> fs = fsspec.filesystem("cloudstore", provider="local", config={"local_root": "/tmp/store"})

Paths are ``bucket/key``; the root lists the buckets. Directories are key prefixes: nothing is
ever written to mark one, ``mkdir`` of a prefix does nothing, and ``makedirs`` of a bucket
creates the bucket. Nothing is cached between calls, so a listing is never stale. Transfers
(``get_file``, ``put_file``) go through cloudstore's engine: parallel parts, checksums,
retries. Needs the ``fsspec`` extra (``pip install "cloudstore[fsspec]"``); ``import cloudstore``
does not import this module.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

try:
    from fsspec.callbacks import DEFAULT_CALLBACK, Callback
    from fsspec.spec import AbstractFileSystem
    from fsspec.utils import isfilelike, stringify_path
except ImportError as err:  # pragma: no cover - the bare install
    raise ImportError('cloudstore.fsspec needs fsspec: pip install "cloudstore[fsspec]"') from err

from cloudstore._files import DEFAULT_BLOCK_SIZE, _TextFile, open_object
from cloudstore.backend import BucketInfo
from cloudstore.exceptions import (
    DuplicateResourceException,
    NotFoundException,
    PermissionDeniedException,
    PreconditionFailedException,
)
from cloudstore.factory import CloudProviderFactory
from cloudstore.model import Bucket, BucketObject, CloudProvider

PROTOCOL = "cloudstore"


@contextlib.contextmanager
def _as_os_errors(path: str) -> Iterator[None]:
    """cloudstore's exceptions as the ``OSError`` subclasses fsspec's callers expect."""
    try:
        yield
    except NotFoundException as err:
        raise FileNotFoundError(2, str(err), path) from err
    except DuplicateResourceException as err:
        raise FileExistsError(17, str(err), path) from err
    except PermissionDeniedException as err:
        raise PermissionError(13, str(err), path) from err


class CloudStoreFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """fsspec's interface over one cloudstore provider.

    ``provider`` is a provider id (``"aws"``, ``"local"``, ...) with its ``config`` dict (as for
    :meth:`cloudstore.CloudProviderFactory.create_provider`), or a :class:`cloudstore.CloudProvider`.
    The filesystem pickles as those arguments (the config with any secrets in it), and each
    process makes its own client.
    """

    protocol = PROTOCOL
    root_marker = ""

    def __init__(
        self, provider: CloudProvider | str, config: dict[str, Any] | None = None, **storage_options: Any
    ) -> None:
        super().__init__(provider=provider, config=config, **storage_options)
        if isinstance(provider, CloudProvider):
            if config is not None:
                raise ValueError("give config only with a provider id, not with a CloudProvider")
            self.provider = provider
        else:
            self.provider = CloudProviderFactory().create_provider(provider, config)

    # --- paths ----------------------------------------------------------------
    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = stringify_path(path)
        if text.startswith(f"{PROTOCOL}://"):
            text = text[len(PROTOCOL) + 3 :]
        return text.strip("/")

    def split_path(self, path: str) -> tuple[str, str]:
        """``(bucket, key)`` of a path (``key`` is ``""`` for a bucket, both for the root)."""
        bucket, _, key = self._strip_protocol(path).partition("/")
        return bucket, key

    def _bucket(self, name: str) -> Bucket:
        return Bucket(self.provider, BucketInfo(name=name))

    def _object(self, path: str) -> BucketObject:
        bucket, key = self.split_path(path)
        if not bucket or not key:
            raise IsADirectoryError(21, "not an object path", path)
        return self._bucket(bucket).objects.create(key)

    # --- information ------------------------------------------------------------
    def _file_info(self, bucket: str, obj: BucketObject) -> dict[str, Any]:
        info = obj._info  # what the listing or HEAD told: no extra request per entry
        return {
            "name": f"{bucket}/{obj.name}",
            "type": "file",
            "size": info.size,
            "ETag": info.etag,
            "LastModified": info.last_modified,
            "ContentType": info.content_type,
        }

    @staticmethod
    def _dir_info(name: str) -> dict[str, Any]:
        return {"name": name, "type": "directory", "size": 0}

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        bucket, key = self.split_path(path)
        with _as_os_errors(path):
            if not bucket:
                return self._dir_info("")
            if not key:
                if self.provider.storage.buckets.get(bucket) is None:
                    raise FileNotFoundError(2, "no such bucket", path)
                return self._dir_info(bucket)
            obj = self._bucket(bucket).objects.get(key)
            if obj is not None:
                return self._file_info(bucket, obj)
            page = self._bucket(bucket).objects.list(limit=1, prefix=key + "/")
            if len(page) or page.prefixes:
                return self._dir_info(path)
        raise FileNotFoundError(2, "no such object or prefix", path)

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        bucket, key = self.split_path(path)
        with _as_os_errors(path):
            if not bucket:
                entries = [self._dir_info(b.name) for b in self.provider.storage.buckets]
            else:
                entries = self._list_dir(bucket, key)
                if not entries:
                    entries = self._not_a_listing(path, bucket, key)
        entries.sort(key=lambda entry: entry["name"])
        return entries if detail else [entry["name"] for entry in entries]

    def _list_dir(self, bucket: str, key: str) -> list[dict[str, Any]]:
        """The objects and prefixes right under ``key`` (one level, as with a delimiter)."""
        prefix = f"{key}/" if key else None
        objects = self._bucket(bucket).objects
        entries: list[dict[str, Any]] = []
        marker: str | None = None
        while True:
            page = objects.list(marker=marker, prefix=prefix, delimiter="/")
            entries.extend(self._file_info(bucket, obj) for obj in page if obj.name != prefix)
            entries.extend(self._dir_info(f"{bucket}/{p.rstrip('/')}") for p in page.prefixes)
            marker = page.marker
            if marker is None:
                return entries

    def _not_a_listing(self, path: str, bucket: str, key: str) -> list[dict[str, Any]]:
        """What ``ls`` shows of a path with nothing under it: an empty bucket, or one object."""
        if not key:
            if self.provider.storage.buckets.get(bucket) is None:
                raise FileNotFoundError(2, "no such bucket", path)
            return []
        obj = self._bucket(bucket).objects.get(key)
        if obj is None:
            raise FileNotFoundError(2, "no such object or prefix", path)
        return [self._file_info(bucket, obj)]

    def find(
        self, path: str, maxdepth: int | None = None, withdirs: bool = False, detail: bool = False, **kwargs: Any
    ) -> Any:
        """Everything under ``path``: one flat listing (not a walk), directories derived from the keys."""
        path = self._strip_protocol(path)
        bucket, key = self.split_path(path)
        if maxdepth is not None or not bucket:
            return super().find(path, maxdepth=maxdepth, withdirs=withdirs, detail=detail, **kwargs)
        found: dict[str, dict[str, Any]] = {}
        prefix = f"{key}/" if key else None
        with _as_os_errors(path):
            for obj in self._bucket(bucket).objects.find(**({"prefix": prefix} if prefix else {})):
                if obj.name == prefix:
                    continue  # a folder marker written by another tool: the directory itself
                found[f"{bucket}/{obj.name}"] = self._file_info(bucket, obj)
        if withdirs:
            for name in list(found):
                parent = name.rpartition("/")[0]
                while len(parent) > len(path):
                    found.setdefault(parent, self._dir_info(parent))
                    parent = parent.rpartition("/")[0]
            if found or (not key and self.exists(path)):
                found[path] = self._dir_info(path)
        if not found and key:
            with contextlib.suppress(FileNotFoundError):
                found[path] = self.info(path)
                if found[path]["type"] != "file":
                    del found[path]
        names = sorted(found)
        return {name: found[name] for name in names} if detail else names

    def modified(self, path: str) -> datetime:
        info = self.info(path)
        if info["type"] != "file" or info.get("LastModified") is None:
            raise IsADirectoryError(21, "a directory has no modification time", path)
        return info["LastModified"]  # type: ignore[no-any-return]

    def invalidate_cache(self, path: str | None = None) -> None:
        """Nothing is cached: every listing asks the service."""

    # --- content ----------------------------------------------------------------
    def cat_file(self, path: str, start: int | None = None, end: int | None = None, **kwargs: Any) -> bytes:
        """The object's bytes ``start`` to ``end`` (exclusive, negative from the end, as slicing)."""
        obj = self._object(path)
        with _as_os_errors(path):
            if start is None and end is None:
                return obj.read()
            if (start or 0) < 0 or (end or 0) < 0:
                size = self.size(path)
                start, end, _ = slice(start, end).indices(size)
            start = start or 0
            if end is not None and end <= start:
                return b""
            return obj.read(start, None if end is None else end - 1)

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        """Store ``value``; ``mode="create"`` refuses an existing object (checked first, not atomic)."""
        obj = self._object(path)
        with _as_os_errors(path):
            if mode == "create" and obj.exists():
                raise FileExistsError(17, "the object exists", path)
            obj.upload(value, content_type=kwargs.get("content_type"), metadata=kwargs.get("metadata"))

    def put_file(
        self, lpath: str, rpath: str, callback: Callback = DEFAULT_CALLBACK, mode: str = "overwrite", **kwargs: Any
    ) -> None:
        """Upload a local file through the engine (parallel parts, checksummed); folders need no upload."""
        if os.path.isdir(lpath):
            return
        obj = self._object(rpath)
        with _as_os_errors(rpath):
            if mode == "create" and obj.exists():
                raise FileExistsError(17, "the object exists", rpath)
            callback.set_size(os.path.getsize(lpath))
            obj.upload_from_file(
                lpath,
                content_type=kwargs.get("content_type"),
                metadata=kwargs.get("metadata"),
                progress=callback.relative_update,
            )

    def get_file(
        self,
        rpath: str,
        lpath: Any,
        callback: Callback = DEFAULT_CALLBACK,
        outfile: Any = None,
        **kwargs: Any,
    ) -> None:
        """Download through the engine: parallel ranges into a temporary file, verified, renamed."""
        if outfile is None and isfilelike(lpath):
            outfile = lpath
        bucket, key = self.split_path(rpath)
        with _as_os_errors(rpath):
            obj = self._bucket(bucket).objects.get(key) if key else None
            if obj is None:
                if not self.isdir(rpath):
                    raise FileNotFoundError(2, "no such object", rpath)
                if outfile is None:
                    os.makedirs(lpath, exist_ok=True)
                return
            callback.set_size(obj.size)
            if outfile is not None:
                obj.save_content(outfile, progress=callback.relative_update)
                return
            os.makedirs(os.path.dirname(os.path.abspath(lpath)), exist_ok=True)
            obj.download_to_file(lpath, progress=callback.relative_update)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        """Copy on the server side (a directory needs nothing copied: it is a prefix)."""
        bucket2, key2 = self.split_path(path2)
        source = self._object(path1) if self.split_path(path1)[1] else None
        if source is None or not key2:
            if self.isdir(path1):
                return
            raise FileNotFoundError(2, "no such object", path1)
        with _as_os_errors(path1):
            try:
                source.copy_to(bucket2, key2)
            except NotFoundException:
                if self.isdir(path1):
                    return
                raise

    def touch(self, path: str, truncate: bool = True, **kwargs: Any) -> None:
        """Store an empty object (objects have no timestamp to update: ``truncate=False`` on an
        existing one raises ``NotImplementedError``)."""
        if not truncate and self.exists(path):
            raise NotImplementedError("an object's modification time cannot be updated without rewriting it")
        self.pipe_file(path, b"", **kwargs)

    def rm_file(self, path: str) -> None:
        obj = self._object(path)
        with _as_os_errors(path):
            obj.delete()

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        """Delete the objects ``path`` names (a batch per bucket); prefixes simply empty out.

        A bucket itself is not deleted here: :meth:`rmdir` deletes an empty bucket.
        """
        if isinstance(path, str) and not self.exists(path):
            raise FileNotFoundError(2, "no such object or prefix", path)  # as a local rm would
        names = self.expand_path(path, recursive=recursive, maxdepth=maxdepth)
        if isinstance(path, str) and not recursive and names == [self._strip_protocol(path)] and not self.exists(path):
            # One name, no pattern: a missing one is an error, as on a file system (a batch
            # delete would count it as deleted).
            raise FileNotFoundError(2, "no such object", path)
        parents = {name.rpartition("/")[0] for name in names}
        for name in list(parents):  # every ancestor of a listed name is a directory
            while "/" in name:
                name = name.rpartition("/")[0]
                parents.add(name)
        by_bucket: dict[str, list[str]] = {}
        for name in names:
            bucket, key = self.split_path(name)
            if key and name not in parents:
                by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            with _as_os_errors(f"{bucket}/{keys[0]}"):
                self._delete_many(self._bucket(bucket), keys)

    def _delete_many(self, bucket: Bucket, keys: list[str]) -> None:
        # cloudstore's bulk delete: one request per batch where the service has a batch API.
        report = bucket.objects.delete_many(keys)
        if report.failed:
            raise report.failed[0].error

    # --- directories ----------------------------------------------------------------
    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Create the bucket of a bucket path (or a missing bucket with ``create_parents``);
        a prefix needs nothing."""
        bucket, key = self.split_path(path)
        with _as_os_errors(path):
            if not key:
                self.provider.storage.buckets.create(bucket, kwargs.get("location"))
            elif create_parents and self.provider.storage.buckets.get(bucket) is None:
                self.provider.storage.buckets.create(bucket)

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        bucket, key = self.split_path(path)
        with _as_os_errors(path):
            if self.provider.storage.buckets.get(bucket) is None:
                self.provider.storage.buckets.create(bucket)
            elif not key and not exist_ok:
                raise FileExistsError(17, "the bucket exists", path)

    def rmdir(self, path: str) -> None:
        """Delete an empty bucket; a prefix needs nothing (it is gone once its objects are)."""
        bucket, key = self.split_path(path)
        if key:
            return
        with _as_os_errors(path):
            try:
                self._bucket(bucket).delete()
            except PreconditionFailedException as err:
                raise OSError(39, "the bucket is not empty", path) from err

    # --- files and URLs ----------------------------------------------------------------
    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: int | None = None,
        autocommit: bool = True,
        cache_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        if not autocommit:
            raise NotImplementedError("cloudstore files commit on close: fsspec transactions are not supported")
        obj = self._object(path)
        with _as_os_errors(path):
            if mode == "rb":
                return open_object(obj, "rb", block_size=block_size or DEFAULT_BLOCK_SIZE)
            if mode in ("wb", "xb"):
                if mode == "xb" and obj.exists():
                    raise FileExistsError(17, "the object exists", path)
                # "xb" is exclusive to the end where the service checks it: an object created
                # meanwhile makes close() raise PreconditionFailedException, and nothing is stored.
                exclusive = mode == "xb" and obj.provider.features.if_none_match
                return open_object(
                    obj,
                    "wb",
                    content_type=kwargs.get("content_type"),
                    metadata=kwargs.get("metadata"),
                    if_none_match="*" if exclusive else kwargs.get("if_none_match"),
                    if_match=kwargs.get("if_match"),
                )
        raise ValueError(f"mode {mode!r} is not supported: use 'rb', 'wb' or 'xb' (objects cannot be appended to)")

    def open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        """As fsspec's, except that a text file being written is discarded on an exception inside
        ``with`` (fsspec's text wrapper would store what was written so far)."""
        if "b" in mode or kwargs.get("compression"):
            return super().open(path, mode, **kwargs)
        text = {key: kwargs.pop(key, None) for key in ("encoding", "errors", "newline")}
        binary = super().open(path, mode.replace("t", "") + "b", **kwargs)
        return _TextFile(binary, encoding=text["encoding"] or "utf-8", errors=text["errors"], newline=text["newline"])

    def sign(self, path: str, expiration: int = 100, **kwargs: Any) -> str:
        """A signed URL to GET the object (``writable=True``: to PUT it) for ``expiration`` seconds."""
        obj = self._object(path)
        with _as_os_errors(path):
            return obj.generate_url(expiration, writable=bool(kwargs.get("writable", False)))


__all__ = ["CloudStoreFileSystem"]

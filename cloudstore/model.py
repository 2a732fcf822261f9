"""The public object model: provider, storage service, buckets and objects.

Everything here is the same for every cloud; the differences live behind
:class:`~cloudstore.backend.Backend`. Each request goes through the provider's
retry policy, and every failure surfaces as a
:class:`~cloudstore.exceptions.CloudStoreException`.
"""

from __future__ import annotations

import errno
import importlib
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from stat import S_IMODE, S_ISDIR, S_ISREG
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from cloudstore._checksums import PART_LAYOUT_KEY
from cloudstore._engine import ProgressCallback, Readable, TransferConfig, TransferEngine, open_source
from cloudstore._logging import protect
from cloudstore._pagination import DEFAULT_PAGE_SIZE, PageFetcher, ResultList, fetch_page, iterate, paged_on_client
from cloudstore._retry import RetryPolicy
from cloudstore.backend import (
    Backend,
    BucketInfo,
    Features,
    ObjectInfo,
    Page,
    RangeReader,
    SignedPost,
    SignedURL,
    UrlPins,
    WriteCondition,
    call_with_credentials,
)
from cloudstore.config import DEFAULT_MAX_URL_EXPIRY, Config, ProviderList, Timeouts
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    NotSupportedException,
)
from cloudstore.registry import ProviderSpec, spec_for

if TYPE_CHECKING:
    from cloudstore.bulk import BulkReport

T = TypeVar("T")
N = TypeVar("N", BucketInfo, ObjectInfo)


class CloudProvider:
    """A configured connection to one storage service.

    Creating it makes no network call; the SDK client is made on first use.
    """

    def __init__(self, spec: ProviderSpec, config: Config) -> None:
        #: The provider's id: a :class:`~cloudstore.ProviderList` member for a built-in cloud provider.
        self.PROVIDER_ID: str = provider_id(spec)
        self.config = config
        self._spec = spec
        self._backend_instance: Backend[Any] | None = None
        transfer_config = config.get("transfer_config") or TransferConfig()
        retry_policy = config.get("retry_policy") or RetryPolicy()
        if not isinstance(transfer_config, TransferConfig):
            raise InvalidParamException("config key 'transfer_config' must be a cloudstore.TransferConfig")
        if not isinstance(retry_policy, RetryPolicy):
            raise InvalidParamException("config key 'retry_policy' must be a cloudstore.RetryPolicy")
        self.transfer_config: TransferConfig = transfer_config
        self.retry_policy: RetryPolicy = retry_policy
        Timeouts.from_config(config)  # refuse unusable timeouts before any request
        self.storage = StorageService(self)
        _LIVE_PROVIDERS.add(self)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its provider id and resolved config, never a client: each process makes its
        own on first use. The config includes any secrets it holds (docs: "Pickling")."""
        return _rebuild_provider, (self.PROVIDER_ID, dict(self.config))

    def _forget_backend(self) -> None:
        """Drop the client without closing it (after ``fork``: its connections are the parent's)."""
        self._backend_instance = None

    @property
    def _backend(self) -> Backend[Any]:
        """The provider's translation layer (its SDK is imported on first access)."""
        if self._backend_instance is None:
            module_name, _, class_name = self._spec.backend.partition(":")
            backend_class = getattr(importlib.import_module(module_name), class_name)
            if (
                self.config.get("credentials_provider") is not None
                and not backend_class.features.refreshing_credentials
            ):
                raise NotSupportedException(f"the {self.PROVIDER_ID} provider takes no credentials_provider")
            backend = backend_class(self.config)
            backend.static_expiry = _expiry(self.config.get("credentials_expiry"))
            self._backend_instance = backend
            protect(self.config.secret_values())  # the SDK's loggers exist now; keep secrets out of them
        return self._backend_instance

    @property
    def max_url_expiry(self) -> int:
        """The longest ``expires_in`` :meth:`BucketObject.generate_url` accepts here, in seconds.

        The ``max_url_expiry`` config key (default 7 days), within the service's own limit.
        """
        service_limit = self.features.max_url_expiry
        configured = self.config.get("max_url_expiry")
        if configured is None:
            configured = DEFAULT_MAX_URL_EXPIRY
        elif isinstance(configured, bool) or not isinstance(configured, int) or configured < 1:
            raise InvalidParamException(
                f"max_url_expiry must be a positive whole number of seconds, not {configured!r}"
            )
        elif service_limit is not None and configured > service_limit:
            raise InvalidParamException(
                f"max_url_expiry {configured} is longer than {self.PROVIDER_ID} allows ({service_limit} seconds)"
            )
        return configured if service_limit is None else min(configured, service_limit)

    @property
    def features(self) -> Features:
        """The optional capabilities of this provider."""
        return self._backend.features

    @property
    def _engine(self) -> TransferEngine:
        return TransferEngine(self._backend, self.retry_policy, self.transfer_config)

    def _call(self, fn: Callable[[], T]) -> T:
        """Run one request under the retry policy, translating its errors (and renewing expired credentials)."""
        return call_with_credentials(self.retry_policy, self._backend, fn)

    def _pager(self, fetch: PageFetcher[N]) -> PageFetcher[N]:
        """``fetch`` as the shared pager uses it: cut into pages here where the service cannot."""
        return fetch if self.features.server_paging else paged_on_client(fetch)

    def close(self) -> None:
        """Release the SDK client and its connections."""
        if self._backend_instance is not None:
            self._backend_instance.close()
            self._backend_instance = None

    def __enter__(self) -> CloudProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<CloudProvider {self.PROVIDER_ID} config={self.config!r}>"


def _expiry(value: Any) -> datetime | None:
    """The ``credentials_expiry`` config value as an aware datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidParamException(f"credentials_expiry must be an ISO 8601 time, not {value!r}") from None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidParamException("credentials_expiry must be a timezone-aware datetime or ISO 8601 time")
    return value


def provider_id(spec: ProviderSpec) -> str:
    """The id of ``spec``: a :class:`~cloudstore.ProviderList` member for a built-in cloud provider."""
    try:
        return ProviderList(spec.id)
    except ValueError:
        return spec.id


def _rebuild_provider(provider_id: str, values: dict[str, Any]) -> CloudProvider:
    """A provider unpickled: built from the resolved config as it was (no new lookup)."""
    spec = spec_for(provider_id)
    return CloudProvider(spec, Config(spec, values))


#: Every provider alive in this process, so that a forked child drops the clients it inherited.
_LIVE_PROVIDERS: weakref.WeakSet[CloudProvider] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for provider in list(_LIVE_PROVIDERS):
        provider._forget_backend()


os.register_at_fork(after_in_child=_after_fork_in_child)


class StorageService:
    """``provider.storage``: the object storage service."""

    def __init__(self, provider: CloudProvider) -> None:
        self.provider = provider
        self.buckets = BucketService(provider)

    def __repr__(self) -> str:
        return f"<StorageService provider={self.provider.PROVIDER_ID}>"


class BucketService:
    """``provider.storage.buckets``: create, find and list buckets. Iterating walks all of them."""

    def __init__(self, provider: CloudProvider) -> None:
        self.provider = provider

    def _check(self, name: str) -> None:
        self.provider._backend.check_bucket_name(name)

    def create(self, name: str, location: str | None = None) -> Bucket:
        """Create a bucket; :class:`DuplicateResourceException` if the name is taken."""
        self._check(name)
        info = self.provider._call(lambda: self.provider._backend.create_bucket(name, location))
        return Bucket(self.provider, info)

    def get(self, name: str) -> Bucket | None:
        """The bucket, or ``None`` if it does not exist (other failures raise)."""
        self._check(name)
        info = self.provider._call(lambda: self.provider._backend.head_bucket(name))
        return None if info is None else Bucket(self.provider, info)

    def find(self, **filters: Any) -> list[Bucket]:
        """Buckets matching every filter; the one filter is ``name`` (an exact match)."""
        _only_filters(filters, {"name"})
        if "name" not in filters:
            return list(self)
        try:
            bucket = self.get(filters["name"])
        except InvalidParamException:
            return []
        return [] if bucket is None else [bucket]

    def _fetcher(self) -> PageFetcher[BucketInfo]:
        backend = self.provider._backend
        return self.provider._pager(lambda size, mark: self.provider._call(lambda: backend.list_buckets(size, mark)))

    def list(self, limit: int | None = None, marker: str | None = None) -> ResultList[Bucket]:
        """One page of buckets (``limit`` at most), continuing after ``marker``."""
        _check_limit(limit)
        return fetch_page(self._fetcher(), limit, marker, lambda info: Bucket(self.provider, info))

    def __iter__(self) -> Iterator[Bucket]:
        for info in iterate(self._fetcher()):
            yield Bucket(self.provider, info)

    def __repr__(self) -> str:
        return f"<BucketService provider={self.provider.PROVIDER_ID}>"


class Bucket:
    """A bucket (an Azure or Swift container), or a view of the objects under one prefix of it
    (:meth:`scoped`)."""

    def __init__(self, provider: CloudProvider, info: BucketInfo, scope: str = "") -> None:
        self.provider = provider
        self._info = info
        #: The prefix every name of this view stands under ("" for the whole bucket).
        self.scope = scope
        self.objects = BucketObjectService(self)

    def scoped(self, prefix: str) -> Bucket:
        """A view of this bucket in which every name is relative to the folder ``prefix``.

        Listing, reading, uploading, deleting, copying, signed URLs and bulk operations of the
        view all act under ``prefix`` ("tenant-a" and "tenant-a/" alike), and nothing in it can
        reach outside: names that start with "/" or have a "." or ".." segment raise
        :class:`InvalidNameException`. A view of a view nests the prefixes.
        """
        return Bucket(self.provider, self._info, self.scope + _folder_prefix(prefix))

    def _key(self, name: str) -> str:
        """The whole key of ``name`` of this view (checked to stay inside the view)."""
        if self.scope:
            _check_relative_name(name)
        return self.scope + name

    def _prefix(self, prefix: str) -> str:
        """The whole key prefix of ``prefix`` of this view ("" stands for the view itself)."""
        if self.scope and prefix:
            _check_relative_prefix(prefix)
        return self.scope + prefix

    @property
    def _root(self) -> Bucket:
        """The whole bucket this view is of."""
        return self if not self.scope else Bucket(self.provider, self._info)

    @property
    def id(self) -> str:
        return self._info.name

    @property
    def name(self) -> str:
        return self._info.name

    @property
    def created(self) -> datetime | None:
        return self._info.created

    def exists(self) -> bool:
        return self.provider.storage.buckets.get(self.name) is not None

    def delete(self, delete_contents: bool = False) -> None:
        """Delete the bucket; a non-empty one only with ``delete_contents=True``
        (otherwise :class:`PreconditionFailedException`, and nothing is deleted).
        A scoped view cannot delete its bucket (:class:`InvalidParamException`).

        The contents go as :meth:`BucketObjectService.delete_prefix` deletes them, in the
        service's batch requests; if any object cannot be deleted, its error is raised and the
        bucket is kept."""
        if self.scope:
            raise InvalidParamException(
                f"a view of {self.scope!r} cannot delete bucket {self.name!r}; delete its objects with "
                "objects.delete_prefix('')"
            )
        if delete_contents:
            report = self.objects.delete_prefix("", concurrency=self.provider.transfer_config.max_concurrency)
            if report.failed:
                first = report.failed[0]
                first.error.add_note(f"deleting the contents of bucket {self.name!r}: {len(report.failed)} failed")
                raise first.error
        self.provider._call(lambda: self.provider._backend.delete_bucket(self.name))

    def upload_dir(
        self,
        local_dir: str | os.PathLike[str],
        prefix: str = "",
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> BulkReport:
        """Upload every file under ``local_dir`` as ``prefix`` + its path relative to ``local_dir``.

        ``prefix`` is a folder ("photos" and "photos/" both give "photos/a.jpg"); ``include`` /
        ``exclude`` are globs matched against the relative path; ``progress`` is told the bytes of
        the whole job. Options: ``concurrency``, ``max_requests_per_second``, ``buffer_budget``
        (see :func:`cloudstore.sync`). Returns a :class:`~cloudstore.bulk.BulkReport`: a file that
        fails is listed there with the reason, and the others are uploaded.
        """
        from cloudstore import bulk

        return bulk.upload_dir(self._root, local_dir, self._prefix(prefix), include, exclude, progress, **options)

    def download_dir(
        self,
        prefix: str,
        local_dir: str | os.PathLike[str],
        include: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        progress: ProgressCallback | None = None,
        **options: Any,
    ) -> BulkReport:
        """Download every object under the folder ``prefix`` ("" for all) into ``local_dir``,
        making the folders of the files it writes; as :meth:`upload_dir` otherwise."""
        from cloudstore import bulk

        return bulk.download_dir(self._root, self._prefix(prefix), local_dir, include, exclude, progress, **options)

    def __reduce__(self) -> tuple[Any, ...]:
        return Bucket, (self.provider, self._info, self.scope)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Bucket)
            and other.provider is self.provider
            and other.name == self.name
            and other.scope == self.scope
        )

    def __hash__(self) -> int:
        return hash((id(self.provider), self.name, self.scope))

    def __repr__(self) -> str:
        view = f"/{self.scope}" if self.scope else ""
        return f"<Bucket {self.provider.PROVIDER_ID}://{self.name}{view}>"


class BucketObjectService:
    """``bucket.objects``: create, find and list objects. Iterating walks every object lazily."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket
        self.provider = bucket.provider

    def _check(self, name: str) -> str:
        """The whole key of ``name`` (of this bucket or view), checked before any request."""
        key = self.bucket._key(name)
        self.provider._backend.check_object_name(key)
        return key

    def create(self, name: str) -> BucketObject:
        """A handle for a new object; nothing is stored until an upload."""
        return BucketObject(self.bucket, ObjectInfo(name=self._check(name), size=0), exists=False)

    def get(self, name: str) -> BucketObject | None:
        """The object, or ``None`` if it does not exist."""
        key = self._check(name)
        info = self.provider._call(lambda: self.provider._backend.head_object(self.bucket.name, key))
        return None if info is None else BucketObject(self.bucket, info)

    def find(self, **filters: Any) -> list[BucketObject]:
        """Objects matching every filter: ``name`` (exact) and/or ``prefix``."""
        _only_filters(filters, {"name", "prefix"})
        name = filters.get("name")
        prefix = filters.get("prefix")
        if name is not None:
            if prefix is not None and not name.startswith(prefix):
                return []
            obj = self.get(name)
            return [] if obj is None else [obj]
        return list(self._iterate(prefix))

    def list(
        self,
        limit: int | None = None,
        marker: str | None = None,
        prefix: str | None = None,
        delimiter: str | None = None,
    ) -> ResultList[BucketObject]:
        """One page of objects in key order (``limit`` at most, default 1000), after ``marker``.

        With a ``delimiter``, keys that contain it after the prefix are rolled up
        into the result's ``prefixes`` (pseudo-folders); each counts toward ``limit``.
        """
        _check_limit(limit)
        if delimiter == "":
            raise InvalidParamException("delimiter must not be empty")
        fetcher = self._fetcher(prefix or None, delimiter)
        return fetch_page(fetcher, limit, marker, lambda info: BucketObject(self.bucket, info))

    def _fetcher(self, prefix: str | None, delimiter: str | None) -> PageFetcher[ObjectInfo]:
        backend = self.provider._backend
        bucket = self.bucket.name
        scope = self.bucket.scope
        wanted = self.bucket._prefix(prefix or "") or None
        pager = self.provider._pager(
            lambda size, mark: self.provider._call(lambda: backend.list_objects(bucket, wanted, delimiter, size, mark))
        )
        if not scope:
            return pager

        def relative(size: int | None, mark: str | None) -> Page[ObjectInfo]:
            # Pseudo-folders are names too: relative to the view (markers pass through as they are).
            page = pager(size, mark)
            return Page(page.items, page.next_marker, [p[len(scope) :] for p in page.prefixes])

        return relative

    def _iterate(self, prefix: str | None, page_size: int = DEFAULT_PAGE_SIZE) -> Iterator[BucketObject]:
        for info in iterate(self._fetcher(prefix, None), page_size):
            yield BucketObject(self.bucket, info)

    def __iter__(self) -> Iterator[BucketObject]:
        return self._iterate(None)

    def delete_many(self, names: Iterable[str], **options: Any) -> BulkReport:
        """Delete the objects ``names`` (any iterable, consumed as it goes) in the service's
        batch requests; a name that does not exist counts as deleted. Failures are listed in the
        returned :class:`~cloudstore.bulk.BulkReport`, not raised (by name, relative to a scoped view)."""
        from cloudstore import bulk

        return bulk.delete_many(self.bucket, names, **options)

    def delete_prefix(self, prefix: str, **options: Any) -> BulkReport:
        """Delete every object whose name starts with ``prefix`` ("" deletes them all), listing
        and deleting a page at a time; as :meth:`delete_many` otherwise."""
        from cloudstore import bulk

        return bulk.delete_prefix(self.bucket._root, self.bucket._prefix(prefix), **options)

    def __repr__(self) -> str:
        return f"<BucketObjectService bucket={self.bucket!r}>"


class BucketObject:
    """An object in a bucket: its properties, its content and a signed URL for it."""

    def __init__(self, bucket: Bucket, info: ObjectInfo, exists: bool = True) -> None:
        self.bucket = bucket
        self.provider = bucket.provider
        self._info = info
        #: False for a handle from ``objects.create`` until it is uploaded.
        self._stored = exists
        #: Whether ``_info`` came from a HEAD (metadata and all) rather than a listing or an upload.
        self._complete = exists and _fully_described(info)

    # --- properties -----------------------------------------------------------
    @property
    def id(self) -> str:
        return self.name

    @property
    def name(self) -> str:
        """The object's name in its bucket, or in the bucket view it came from (:meth:`Bucket.scoped`)."""
        return self._info.name[len(self.bucket.scope) :]

    @property
    def key(self) -> str:
        """The object's whole key in the bucket (a scoped view's prefix included)."""
        return self._info.name

    @property
    def size(self) -> int:
        return self._info.size

    @property
    def last_modified(self) -> datetime | None:
        """When the object was last written (timezone-aware)."""
        # A listing tells it on every service: no request per object for `ls`.
        return self._info.last_modified or self._full().last_modified

    @property
    def etag(self) -> str | None:
        return self._full().etag

    @property
    def content_type(self) -> str | None:
        return self._full().content_type

    @property
    def metadata(self) -> dict[str, str]:
        """User metadata (fetched with a HEAD request the first time, if the listing lacked it)."""
        return user_metadata(self._full().metadata)

    def _full(self) -> ObjectInfo:
        if not self._complete and self._stored:
            self.refresh()
        return self._info

    # --- state ----------------------------------------------------------------
    def exists(self) -> bool:
        return self.provider._call(lambda: self._backend.head_object(self.bucket.name, self.key)) is not None

    def refresh(self) -> None:
        """Reload the properties from the service; :class:`NotFoundException` if it is gone."""
        info = self.provider._call(lambda: self._backend.head_object(self.bucket.name, self.key))
        if info is None:
            raise NotFoundException(f"object {self.key!r} not found in bucket {self.bucket.name!r}")
        self._info = info
        self._stored = True
        self._complete = True

    def delete(self) -> None:
        """Delete the object (:class:`NotFoundException` if it does not exist)."""
        self.provider._call(lambda: self._backend.delete_object(self.bucket.name, self.key))
        self._stored = False

    @property
    def _backend(self) -> Backend[Any]:
        return self.provider._backend

    # --- upload ---------------------------------------------------------------
    def upload(
        self,
        data: bytes | str | Readable,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> None:
        """Store ``data`` as this object: bytes, a str or a text stream (encoded as UTF-8), or a
        readable binary stream (read to its end).

        ``if_none_match="*"`` stores it only if no object has the name yet; ``if_match=etag``
        only if the object's current ETag is ``etag``. The service checks the condition when
        the object is committed (the last request of an upload in parts): when it fails, nothing
        is stored and :class:`PreconditionFailedException` is raised. A provider that cannot
        check a condition (``features.if_none_match`` / ``features.if_match``) raises
        :class:`NotSupportedException` before any request.
        """
        condition = self._condition(if_none_match, if_match)
        source, size = open_source(data)
        self._upload(source, size, content_type, metadata, progress, condition)

    def upload_from_file(
        self,
        path: str | os.PathLike[str],
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        progress: ProgressCallback | None = None,
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> None:
        """Store the file at ``path``; large files go up in parallel parts.

        A file whose size the file system does not know (a FIFO, a device, ``/proc`` and ``/sys``
        files) is read to its end as a stream of unknown length. ``if_none_match`` and
        ``if_match`` make the write conditional, as for :meth:`upload`.
        """
        condition = self._condition(if_none_match, if_match)
        try:
            source: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed below
        except OSError as err:
            raise InvalidParamException(f"cannot read {os.fspath(path)!r}: {err.strerror}") from err
        with source:
            status = os.fstat(source.fileno())
            # /proc files report size 0 and /sys files 4096 whatever they hold: only a regular file
            # with bytes on disk has a size to trust (one that reports 0 is read to its end anyway).
            size = status.st_size if S_ISREG(status.st_mode) and status.st_blocks else None
            self._upload(source, size, content_type, metadata, progress, condition)

    def _condition(self, if_none_match: str | None, if_match: str | None) -> WriteCondition | None:
        """The write condition the arguments ask for (checked before any request)."""
        return write_condition(self.provider, if_none_match, if_match)

    def _upload(
        self,
        source: Readable,
        size: int | None,
        content_type: str | None,
        metadata: Mapping[str, str] | None,
        progress: ProgressCallback | None,
        condition: WriteCondition | None = None,
    ) -> None:
        content_type = _check_content_type(content_type)
        metadata = _check_metadata(metadata)
        self.provider._engine.upload(
            self.bucket.name, self.key, source, size, content_type, metadata, progress, condition
        )
        self._stored = True
        self._complete = False
        self._info = ObjectInfo(
            name=self.key,
            size=size if size is not None else self._info.size,
            content_type=content_type,
            metadata=metadata,
        )
        if size is None:
            self.refresh()

    # --- download -------------------------------------------------------------
    def iter_content(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """The content, ``chunk_size`` bytes at a time, verified at the end when the service has a checksum.

        One GET request: size and checksum come from its response.
        """
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
            raise InvalidParamException("chunk_size must be a positive whole number")
        return self.provider._engine.stream(self.bucket.name, self.key, None, chunk_size, on_described=self._seen)

    def save_content(self, target_stream: BinaryIO, progress: ProgressCallback | None = None) -> None:
        """Write the content into a writable binary stream, verified at the end.

        If the checksum does not match and the stream is seekable, what was written is
        truncated away and the object is read once more before
        :class:`~cloudstore.ChecksumMismatchException` is raised (progress then counts both reads).
        """
        start = _position(target_stream)
        try:
            self._write_content(target_stream, progress)
        except ChecksumMismatchException:
            if start is None:
                raise
            target_stream.seek(start)
            target_stream.truncate()
            self._write_content(target_stream, progress)

    def _write_content(self, target_stream: BinaryIO, progress: ProgressCallback | None) -> None:
        for chunk in self.iter_content():
            target_stream.write(chunk)
            if progress is not None:
                progress(len(chunk))

    def download_to_file(self, path: str | os.PathLike[str], progress: ProgressCallback | None = None) -> None:
        """Download to ``path``: parallel ranged reads into a temporary file, verified, then renamed.

        On failure nothing is left at ``path`` (an existing file there is untouched). A symbolic
        link is written through (its target is replaced); an existing file keeps its permission
        bits, a new one gets the umask's; a FIFO, device or socket is refused.
        """
        target, mode = _download_target(path)
        try:
            info = self.provider._engine.download_to_path(self.bucket.name, self.key, target, progress, mode)
        except OSError as err:  # the temporary file beside the target could not be made or written
            kind = InvalidParamException if err.errno in _NOT_WRITABLE else CloudStoreException
            raise kind(f"cannot write {os.fspath(path)!r}: {err.strerror}") from None
        self._seen(info)

    def read(self, start: int | None = None, end: int | None = None) -> bytes:
        """The bytes from ``start`` to ``end`` inclusive; all of it by default.

        Like slicing ``content[start:end + 1]``: a range reaching past the end returns the bytes
        that exist, one starting at or past the end returns ``b""``.
        """
        start = _check_offset("start", start)
        end = _check_offset("end", end)
        if start is not None and end is not None and end < start:
            raise InvalidParamException("end must be >= start")
        if start is None and end is None:
            return self.provider._engine.read_whole(self.bucket.name, self.key, on_described=self._seen)

        def opened(reader: RangeReader) -> None:
            self._seen(reader.info)

        chunks = self.provider._engine.chunks(self.bucket.name, self.key, start or 0, end, on_open=opened)
        try:
            return b"".join(chunks)
        except CloudStoreException as err:
            if err.status == 416:  # the range starts at or past the end: nothing there
                return b""
            raise

    def _seen(self, info: ObjectInfo | None) -> None:
        """Take the properties a read reported: each read reads the current version and updates the handle."""
        if info is None:
            return
        self._info = info
        self._stored = True
        self._complete = _fully_described(info)

    # --- other ----------------------------------------------------------------
    def generate_url(
        self,
        expires_in: int = 3600,
        writable: bool = False,
        *,
        content_type: str | None = None,
        content_md5: bytes | str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> SignedURL:
        """A URL that anyone can use without credentials until it expires: GET to download,
        or, with ``writable=True``, HTTP PUT of the body to upload (write only: no read).

        The result is a :class:`~cloudstore.backend.SignedURL`, a ``str`` that also has
        ``.method``, ``.headers`` (what the request must carry: Azure's
        ``x-ms-blob-type: BlockBlob``, and every pinned header) and ``.expires_at``.
        A writable URL can pin the upload's ``content_type``, ``content_md5`` (the body's MD5,
        16 bytes or 32 hex digits) and ``metadata``: the service then refuses an upload
        through it whose headers differ. Only where ``features.signed_url_headers`` (S3, GCS);
        elsewhere :class:`NotSupportedException`.
        """
        if not self._backend.features.signed_urls:
            raise NotSupportedException(f"the {self.provider.PROVIDER_ID} provider has no signed URLs")
        _check_expiry(self.provider, expires_in)
        pins = UrlPins(_check_content_type(content_type), _check_md5(content_md5), _check_metadata(metadata))
        if pins and not writable:
            raise InvalidParamException("content_type, content_md5 and metadata pin an upload: give writable=True")
        if pins and not self._backend.features.signed_url_headers:
            raise NotSupportedException(
                f"the {self.provider.PROVIDER_ID} provider cannot pin headers in a signed URL (none it would enforce)"
            )
        method = "PUT" if writable else "GET"
        expires_at = self._expiry_within_credentials(expires_in)
        options: dict[str, Any] = {"pins": pins} if pins else {}
        signed = self.provider._call(
            lambda: self._backend.sign_url(self.bucket.name, self.key, method, expires_in, **options)
        )
        url, headers = (signed, {}) if isinstance(signed, str) else signed
        return SignedURL(url, method, headers, expires_at)

    def _expiry_within_credentials(self, expires_in: int) -> datetime:
        """When a URL signed now for ``expires_in`` seconds expires; refused (InvalidParamException,
        naming both times) if the credentials that sign it expire first, even once renewed."""
        expires_at = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=expires_in)
        backend = self._backend
        if not backend.features.signed_with_credentials:
            return expires_at
        limit = backend.credentials_expiry()
        if limit is not None and expires_at > limit and backend.credentials is not None:
            backend.credentials.renew()  # fresh credentials may last long enough
            limit = backend.credentials_expiry()
        if limit is not None and expires_at > limit:
            left = max(0, int((limit - datetime.now(UTC)).total_seconds()))
            raise InvalidParamException(
                f"a URL valid until {expires_at:%Y-%m-%d %H:%M:%S} UTC would outlive the credentials that sign "
                f"it (they expire at {limit.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC): give expires_in "
                f"of at most {left} seconds"
            )
        return expires_at

    def generate_post(self, expires_in: int, max_size: int, content_type: str | None = None) -> SignedPost:
        """A browser form upload of this object, usable without credentials until it expires.

        Returns a :class:`~cloudstore.backend.SignedPost`: the URL to POST as
        ``multipart/form-data``, the fields to send before the file, and the file field's name.
        The service refuses a body larger than ``max_size`` bytes and (where
        ``features.signed_post_content_type``) another ``content_type`` than the one given.
        :class:`NotSupportedException` where the service has no form uploads (Azure), or
        cannot check the content type (Swift) and one is given.
        """
        features = self._backend.features
        if not features.signed_posts:
            raise NotSupportedException(f"the {self.provider.PROVIDER_ID} provider has no signed form uploads")
        _check_expiry(self.provider, expires_in)
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise InvalidParamException("max_size must be a positive whole number of bytes")
        content_type = _check_content_type(content_type)
        if content_type is not None and not features.signed_post_content_type:
            raise NotSupportedException(
                f"the {self.provider.PROVIDER_ID} provider's form uploads cannot fix the content type"
            )
        expires_at = self._expiry_within_credentials(expires_in)
        form = self.provider._call(
            lambda: self._backend.sign_post(self.bucket.name, self.key, expires_in, max_size, content_type)
        )
        return SignedPost(form.url, dict(form.fields), expires_at, max_size, form.filename, form.file_field)

    def copy_to(
        self,
        bucket: Bucket | str,
        name: str | None = None,
        *,
        if_none_match: str | None = None,
        if_match: str | None = None,
    ) -> BucketObject:
        """Copy to ``bucket`` (same provider) as ``name`` (default: the same name), on the server side.

        Content type and metadata are kept. An object larger than the service copies in one
        request (5 GiB on S3) is copied in parallel parts, still without passing through here.
        A provider without server-side copies (``features.server_side_copy``) streams the
        object through this machine instead (downloaded, verified and uploaded in parts).
        ``if_none_match`` and ``if_match`` are conditions on the target, as for :meth:`upload`.
        """
        condition = self._condition(if_none_match, if_match)
        if not isinstance(bucket, Bucket):
            self._backend.check_bucket_name(bucket)
        target = bucket if isinstance(bucket, Bucket) else Bucket(self.provider, BucketInfo(name=bucket))
        if target.provider is not self.provider:
            raise InvalidParamException("copy_to needs a bucket of the same provider")
        dst_key = target._key(name or self.name)
        self._backend.check_object_name(dst_key)
        self.provider._engine.copy(self.bucket.name, self.key, target.name, dst_key, condition)
        copied = BucketObject(target, ObjectInfo(name=dst_key, size=0), exists=True)
        copied.refresh()
        return copied

    def open(self, mode: str = "rb", **options: Any) -> Any:
        """The object as a file: ``"rb"``/``"r"`` to read, ``"wb"``/``"w"`` to write (text modes
        through :class:`io.TextIOWrapper`, UTF-8 unless ``encoding`` says otherwise).

        Reading is seekable and fetches byte ranges of one version of the object, a block
        (``block_size``, 2 MiB) at a time, keeping at most ``cache_blocks`` (4) of them; an object
        replaced meanwhile raises :class:`PreconditionFailedException`. Writing uploads as it
        goes (``content_type`` and ``metadata`` may be given); the object appears on a clean
        ``close()``, and an exception inside ``with`` (or ``discard()``) stores nothing.
        ``if_none_match="*"`` / ``if_match=etag`` make the write conditional, as for :meth:`upload`:
        ``close()`` of a writer whose condition no longer holds raises
        :class:`PreconditionFailedException` and stores nothing.
        """
        from cloudstore._files import open_object

        return open_object(self, mode, **options)

    def __reduce__(self) -> tuple[Any, ...]:
        return BucketObject, (self.bucket, self._info, self._stored)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BucketObject) and other.bucket == self.bucket and other.key == self.key

    def __hash__(self) -> int:
        return hash((self.bucket, self.key))

    def __repr__(self) -> str:
        return f"<BucketObject {self.provider.PROVIDER_ID}://{self.bucket.name}/{self.key}>"


def write_condition(provider: CloudProvider, if_none_match: str | None, if_match: str | None) -> WriteCondition | None:
    """The :class:`WriteCondition` of a write's ``if_none_match`` / ``if_match`` arguments, refused
    (no request made) when malformed or when the provider cannot check it."""
    if if_none_match is None and if_match is None:
        return None
    if if_none_match is not None and if_none_match != "*":
        raise InvalidParamException(f"if_none_match takes only '*' (create only if absent), not {if_none_match!r}")
    if if_match is not None and (not isinstance(if_match, str) or not if_match.strip()):
        raise InvalidParamException(f"if_match must be an ETag (a non-empty str), not {if_match!r}")
    if if_none_match is not None and if_match is not None:
        raise InvalidParamException("give if_none_match or if_match, not both")
    features = provider.features
    wanted = "if_none_match" if if_none_match is not None else "if_match"
    if not getattr(features, wanted):
        raise NotSupportedException(f"the {provider.PROVIDER_ID} provider cannot make a write conditional on {wanted}")
    return WriteCondition(if_none_match=if_none_match is not None, if_match=if_match)


def _check_relative_name(name: str) -> None:
    """Refuse a name that would leave a scoped view: absolute, or with a "." or ".." segment."""
    if not isinstance(name, str) or not name:
        raise InvalidNameException(f"invalid object name {name!r}: give a non-empty str")
    if name.startswith("/") or any(segment in (".", "..") for segment in name.split("/")):
        raise InvalidNameException(
            f"invalid object name {name!r} in a scoped view: no leading '/' and no '.' or '..' segments"
        )


def _check_relative_prefix(prefix: str) -> None:
    """A listing prefix inside a view: as a name, but it may end with "/"."""
    _check_relative_name(prefix.rstrip("/") or "x")
    if prefix.startswith("/"):
        raise InvalidNameException(f"invalid prefix {prefix!r} in a scoped view: no leading '/'")


def _folder_prefix(prefix: str) -> str:
    """``prefix`` as the folder a view stands in ("a/b" and "a/b/" give "a/b/")."""
    if not isinstance(prefix, str) or not prefix.strip("/"):
        raise InvalidParamException(f"a scoped view needs a non-empty prefix, not {prefix!r}")
    folder = prefix if prefix.endswith("/") else prefix + "/"
    _check_relative_name(folder.rstrip("/"))
    return folder


def _fully_described(info: ObjectInfo) -> bool:
    """Whether ``info`` has every property (a listing or a media response may lack metadata)."""
    return info.metadata is not None and info.last_modified is not None


#: errno values meaning "this path cannot be written", a mistake in the argument.
_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR}


def _download_target(path: str | os.PathLike[str]) -> tuple[Path, int | None]:
    """The file a download to ``path`` replaces, and its permission bits (``None``: a new file).

    A symbolic link is followed to its target, so the link stays and the target is written;
    anything but a regular file (a FIFO, a device such as ``/dev/stdout``, a socket) is refused.
    """
    given = os.fspath(path)
    try:
        status = os.stat(given)
    except FileNotFoundError:
        status = None
    except OSError as err:
        raise InvalidParamException(f"cannot write {given!r}: {err.strerror}") from None
    if status is not None and S_ISDIR(status.st_mode):
        raise InvalidParamException(f"{given!r} is a directory")
    if status is not None and not S_ISREG(status.st_mode):
        raise InvalidParamException(
            f"{given!r} is not a regular file (a FIFO, device or socket): give a file path, "
            "or write to an open stream with save_content()"
        )
    target = Path(os.path.realpath(given))
    if not target.parent.is_dir():
        raise InvalidParamException(f"the folder of {given!r} does not exist")
    return target, None if status is None else S_IMODE(status.st_mode)


def _only_filters(filters: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(filters) - allowed)
    if unknown:
        raise TypeError(f"unknown filter(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def _check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidParamException("limit must be a positive whole number")


def _check_expiry(provider: CloudProvider, expires_in: object) -> None:
    """``expires_in``: a positive whole number of seconds, at most the provider's ``max_url_expiry``."""
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 1:
        raise InvalidParamException("expires_in must be a positive whole number of seconds")
    limit = provider.max_url_expiry
    if expires_in > limit:
        raise InvalidParamException(
            f"expires_in may be at most {limit} seconds ({_duration(limit)}) on {provider.PROVIDER_ID}"
        )


def _duration(seconds: int) -> str:
    """``seconds`` in the largest whole unit that divides it ("7 days", "90 minutes")."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{seconds} seconds"


def _position(stream: BinaryIO) -> int | None:
    """Where a seekable ``stream`` stands (``None``: it cannot go back)."""
    try:
        return stream.tell() if stream.seekable() else None
    except (AttributeError, OSError, ValueError):
        return None


def user_metadata(metadata: Mapping[str, str] | None) -> dict[str, str]:
    """``metadata`` without the keys cloudstore reserves for itself."""
    return {key: value for key, value in (metadata or {}).items() if key != PART_LAYOUT_KEY}


#: The most user metadata one object may carry, keys and values together (S3's limit, the
#: smallest of the services), and the longest value (Swift's limit).
METADATA_MAX_BYTES = 2048
METADATA_VALUE_MAX = 256
#: Metadata keys cloudstore keeps for itself (e.g. the part layout; Swift spells "_" and "-" alike).
RESERVED_METADATA_PREFIX = "cloudstore_"


def _printable(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


def _check_content_type(content_type: object) -> str | None:
    """``content_type`` as it will be sent: a non-empty str of printable ASCII (no CR/LF)."""
    if content_type is None:
        return None
    if not isinstance(content_type, str):
        raise InvalidParamException(f"content_type must be a str, not {type(content_type).__name__}")
    if not content_type.strip() or not _printable(content_type) or content_type != content_type.strip():
        raise InvalidParamException(
            f"content_type {content_type!r}: use printable ASCII, without leading or trailing spaces"
        )
    return content_type


def _check_metadata(metadata: object) -> dict[str, str]:
    """User metadata in the one form that round-trips identically on every service.

    Keys are ASCII identifiers, case-insensitive: stored and returned in lowercase (two keys
    differing only in case are refused). Values are non-empty printable ASCII without leading or
    trailing spaces, at most ``METADATA_VALUE_MAX`` characters; all of it at most
    ``METADATA_MAX_BYTES``. Anything else raises :class:`InvalidParamException` before any request.
    """
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise InvalidParamException(f"metadata must be a dict of str to str, not {type(metadata).__name__}")
    result: dict[str, str] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidParamException("metadata keys and values must be str")
        if not (key.isascii() and key.isidentifier()):
            raise InvalidParamException(
                f"metadata key {key[:64]!r}: use ASCII letters, digits and '_' (not starting with a digit)"
            )
        if not value or not _printable(value) or value != value.strip(" "):
            raise InvalidParamException(
                f"metadata value of {key!r}: use non-empty printable ASCII without leading or trailing spaces"
            )
        if len(value) > METADATA_VALUE_MAX:
            raise InvalidParamException(f"metadata value of {key!r} is longer than {METADATA_VALUE_MAX} characters")
        if key.lower().startswith(RESERVED_METADATA_PREFIX):
            raise InvalidParamException(
                f"metadata key {key!r}: keys starting {RESERVED_METADATA_PREFIX!r} are reserved"
            )
        if key.lower() in result:
            raise InvalidParamException(f"metadata keys are case-insensitive: {key!r} is given twice")
        result[key.lower()] = value
    if sum(len(k) + len(v) for k, v in result.items()) > METADATA_MAX_BYTES:
        raise InvalidParamException(f"metadata may hold at most {METADATA_MAX_BYTES} bytes of keys and values")
    return result


def _check_md5(value: object) -> bytes | None:
    """An MD5 digest given as 16 bytes or 32 hex digits."""
    if value is None:
        return None
    if isinstance(value, bytes) and len(value) == 16:
        return value
    if isinstance(value, str) and len(value) == 32:
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    raise InvalidParamException("content_md5 must be an MD5 digest: 16 bytes or 32 hex digits")


def _check_offset(what: str, value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParamException(f"{what} must be a whole number >= 0, not {value!r}")
    return value

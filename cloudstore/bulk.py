"""Whole folders and prefixes at once: upload, download, copy, sync and batch delete.

A bulk job walks its source as a stream (a local folder one directory at a time, a bucket one
listing page at a time) and hands each item to one bounded pool of ``concurrency`` workers,
under one buffer budget (``buffer_budget`` bytes of transfers in flight) and, if given, one cap
on requests per second for the whole job. Every item's failure is recorded in the job's
:class:`BulkReport` with its reason and the job goes on: the failures of some items are never
lost in the success of the others, and running the same job again finishes what failed.

Sync compares by size, then by checksum: the MD5 (or part-wise MD5) or CRC32C the service keeps
for the object is computed over the local file. Where the object has no checksum cloudstore can
compute here, size and modification time decide (the newer side wins).
"""

from __future__ import annotations

import contextlib
import dataclasses
import fnmatch
import math
import mimetypes
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from stat import S_ISREG
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

from cloudstore._checksums import Checksum, as_checksum, new_hasher, verify_file
from cloudstore._engine import ChunkStream, ProgressCallback, TransferEngine
from cloudstore._names import local_object_name
from cloudstore._pagination import iterate
from cloudstore._retry import RetryPolicy, Translator
from cloudstore.backend import Backend, ObjectInfo
from cloudstore.exceptions import (
    ChecksumMismatchException,
    CloudStoreException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
)
from cloudstore.registry import parse_address, spec_for

if TYPE_CHECKING:
    from cloudstore.model import Bucket, CloudProvider

T = TypeVar("T")

MiB = 1024 * 1024
#: Workers of one bulk job (small objects are latency bound: many in flight pay).
DEFAULT_CONCURRENCY = 16
#: Bytes of transfers one bulk job holds in flight at most (see :func:`_cost`).
DEFAULT_BUFFER_BUDGET = 256 * MiB

Patterns = str | Sequence[str] | None


# --- the report -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Failure:
    """One item that failed: its name (relative to the job's folder or prefix) and why."""

    name: str
    error: CloudStoreException

    @property
    def reason(self) -> str:
        return f"{type(self.error).__name__}: {self.error}"


@dataclass
class BulkReport:
    """What a bulk job did. With ``dry_run``, the counts say what it would have done."""

    #: Files or objects written (copied, uploaded or downloaded).
    copied: int = 0
    #: Bytes of the items written.
    bytes: int = 0
    #: Items left alone because the destination already had them unchanged (sync).
    skipped: int = 0
    #: Objects or files deleted.
    deleted: int = 0
    #: Every item that failed, with its error.
    failed: list[Failure] = field(default_factory=list)
    dry_run: bool = False
    #: With ``dry_run``: ``("copy" | "delete", name)`` for each thing the job would do.
    actions: list[tuple[str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether no item failed."""
        return not self.failed

    def summary(self) -> str:
        """One line: ``copied 3 (1.5 KiB), skipped 2, deleted 1, failed 0`` (counts of 0 left out)."""
        parts = []
        if self.copied or not (self.skipped or self.deleted):
            parts.append(f"copied {self.copied} ({_human(self.bytes)})")
        if self.skipped:
            parts.append(f"skipped {self.skipped}")
        if self.deleted:
            parts.append(f"deleted {self.deleted}")
        line = ", ".join([*parts, f"failed {len(self.failed)}"])
        return f"dry run: would have {line}" if self.dry_run else line

    def _sort(self) -> None:
        """Put what the workers recorded in a stable order: by name, copies before deletes."""
        self.actions.sort(key=lambda action: (action[0] != "copy", action[1]))
        self.failed.sort(key=lambda failure: failure.name)

    def _copied(self, name: str, size: int) -> None:
        with self._lock:
            self.copied += 1
            self.bytes += size
            if self.dry_run:
                self.actions.append(("copy", name))

    def _skipped(self) -> None:
        with self._lock:
            self.skipped += 1

    def _deleted(self, names: Sequence[str]) -> None:
        with self._lock:
            self.deleted += len(names)
            if self.dry_run:
                self.actions.extend(("delete", name) for name in names)

    def _fail(self, name: str, error: CloudStoreException) -> None:
        with self._lock:
            self.failed.append(Failure(name, error))


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


# --- one provider as a job uses it --------------------------------------------------------------
class _RateLimit:
    """At most ``per_second`` requests a second, spaced evenly, across every thread of a job."""

    def __init__(self, per_second: float) -> None:
        self._interval = 1.0 / per_second
        self._next = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self._interval
        if start > now:
            time.sleep(start - now)


@dataclass(frozen=True)
class _LimitedPolicy(RetryPolicy):
    """The provider's retry policy, each attempt first waiting for the job's rate limit."""

    limit: _RateLimit | None = None

    def call(self, fn: Callable[[], T], translate: Translator | None = None) -> T:
        limit = self.limit
        if limit is None:
            return super().call(fn, translate)

        def limited() -> T:
            limit.acquire()
            return fn()

        return super().call(limited, translate)


@dataclass(frozen=True)
class _Store:
    """One provider's backend, engine and retry policy (rate-limited) for one job."""

    provider: CloudProvider
    backend: Backend[Any]
    policy: RetryPolicy
    engine: TransferEngine

    def call(self, fn: Callable[[], T]) -> T:
        return self.policy.call(fn, self.backend.map_error)


def _store(provider: CloudProvider, limit: _RateLimit | None) -> _Store:
    """The only place that reaches into a provider's internals (its backend and settings)."""
    backend = provider._backend
    base = provider.retry_policy
    policy = _LimitedPolicy(**{f.name: getattr(base, f.name) for f in dataclasses.fields(RetryPolicy)}, limit=limit)
    return _Store(provider, backend, policy, TransferEngine(backend, policy, provider.transfer_config))


# --- the worker pool ----------------------------------------------------------------------------
class _Budget:
    """A byte budget: a task takes its cost before it starts and gives it back when done."""

    def __init__(self, total: int) -> None:
        self._total = total
        self._free = total
        self._cond = threading.Condition()

    def take(self, amount: int) -> int:
        amount = max(0, min(amount, self._total))
        with self._cond:
            while self._free < amount:
                self._cond.wait()
            self._free -= amount
        return amount

    def give(self, amount: int) -> None:
        with self._cond:
            self._free += amount
            self._cond.notify_all()


#: One item of a job: its name (for the report), its cost (bytes held while it runs) and its work.
_Task = tuple[str, int, Callable[[], None]]


class _Job:
    """One bounded pool for a whole job: ``concurrency`` workers under one byte budget.

    The workers take the job's items in turn from one stream (the walk or listing runs on them,
    under a lock, only as far ahead as they take), so a job needs no queue, no future and no
    hand-off between threads per item: on 2 cores shared with the server, those cost more CPU
    per small file than they save.
    """

    def __init__(self, report: BulkReport, concurrency: int, buffer_budget: int, progress: ProgressCallback | None):
        self.report = report
        self._concurrency = concurrency
        self._budget = _Budget(buffer_budget)
        self._progress = progress
        self._progress_lock = threading.Lock()

    def progress(self, amount: int) -> None:
        if self._progress is not None and amount:
            with self._progress_lock:
                self._progress(amount)

    def run_all(self, tasks: Iterable[_Task]) -> None:
        """Run every task ``tasks`` yields; a task's failure is recorded under its name.

        An error of the stream itself stops the job and is raised here once the running tasks
        are done; so is an interrupt (the tasks not yet taken are dropped)."""
        stream = iter(tasks)
        lock = threading.Lock()
        stop = threading.Event()
        broken: list[BaseException] = []
        report, budget = self.report, self._budget

        def work() -> None:
            while not stop.is_set():
                with lock:
                    try:
                        task = next(stream, None)
                    except BaseException as err:  # the walk itself failed: raised by the caller
                        broken.append(err)
                        stop.set()
                        return
                if task is None:
                    return
                name, cost, run = task
                taken = budget.take(cost)
                try:
                    run()
                except Exception as err:  # every failure is this item's, recorded with its reason
                    report._fail(name, _as_cloudstore_error(err))
                finally:
                    budget.give(taken)

        workers = [threading.Thread(target=work, name=f"cloudstore-bulk-{n}") for n in range(self._concurrency)]
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                worker.join()
        except BaseException:
            stop.set()  # on an interrupt the running tasks finish, the rest are dropped
            for worker in workers:
                worker.join()
            raise
        if broken:
            raise broken[0]


def _as_cloudstore_error(err: Exception) -> CloudStoreException:
    if isinstance(err, CloudStoreException):
        return err
    if isinstance(err, OSError):
        where = f": {err.filename}" if err.filename else ""
        return InvalidParamException(f"{err.strerror or err}{where}")
    return CloudStoreException(f"unexpected error: {type(err).__name__}: {err}")


def _cost(size: int, store: _Store) -> int:
    """The bytes a transfer of ``size`` holds at once: all of a small one, the parts in flight of a large one."""
    config = store.provider.transfer_config
    if size <= config.threshold:
        return size
    return config.max_concurrency * config.part_size


# --- sides: a local folder, or a prefix in a bucket ------------------------------------------------
@dataclass
class _Entry:
    """One file or object, named relative to its side's folder or prefix."""

    rel: str
    size: int
    #: Modification time, seconds since the epoch (``None``: not known).
    mtime: float | None
    checksum: Checksum | None = None
    #: What the listing suggests the checksum is, where it could not say (``Backend.checksum_hint``).
    hint: Checksum | None = None


@dataclass(frozen=True)
class _Local:
    root: Path
    #: The folders under ``root`` this job made sure exist (a download makes each once, not per file).
    folders: set[str] = field(default_factory=set, compare=False)

    def path(self, rel: str) -> str:
        """The file ``rel`` names: never outside the folder (no ``..``, empty or absolute parts)."""
        try:
            local_object_name(rel)
        except InvalidNameException as err:
            raise InvalidNameException(f"{rel!r} cannot be a local file name under {str(self.root)!r}") from err
        return os.path.join(self.root, *rel.split("/"))

    def entries(self, on_error: _OnError) -> Iterator[_Entry]:
        """Every regular file (symbolic links to files followed), in UTF-8 order of the relative path."""
        return _walk(str(self.root), "", on_error)

    def describe(self) -> str:
        return str(self.root)


@dataclass(frozen=True)
class _Remote:
    store: _Store
    bucket: str
    #: Empty, or ending in "/".
    prefix: str
    #: A scoped view's own check of a name given relative to it (refuses "..", absolute names).
    check_relative: Callable[[str], object] | None = None

    def key(self, rel: str) -> str:
        if self.check_relative is not None:
            self.check_relative(rel)
        key = self.prefix + rel
        self.store.backend.check_object_name(key)
        return key

    def entries(self, on_error: _OnError) -> Iterator[_Entry]:
        """Every object under the prefix, page by page (keys ending in "/", folder markers, left out)."""
        backend, bucket, prefix = self.store.backend, self.bucket, self.prefix
        for info in iterate(
            lambda size, mark: self.store.call(lambda: backend.list_objects(bucket, prefix or None, None, size, mark))
        ):
            rel = info.name[len(prefix) :]
            if rel and not rel.endswith("/"):
                yield _entry_of(rel, info, backend)

    def describe(self) -> str:
        return f"{self.store.provider.PROVIDER_ID}://{self.bucket}/{self.prefix}"


_Side = _Local | _Remote
#: Told each name a walk could not read (a folder's ends in "/"; "" is the whole folder).
_OnError = Callable[[str, CloudStoreException], None]


def _entry_of(rel: str, info: ObjectInfo, backend: Backend[Any]) -> _Entry:
    mtime = info.last_modified.timestamp() if info.last_modified is not None else None
    checksum = as_checksum(info.checksum)
    return _Entry(rel, info.size, mtime, checksum, backend.checksum_hint(info) if checksum is None else None)


def _walk(directory: str, rel: str, on_error: _OnError) -> Iterator[_Entry]:
    """The regular files under ``directory``, one directory's entries in memory at a time.

    What cannot be read is passed to ``on_error``: a folder's name then ends in "/"."""
    try:
        with os.scandir(directory) as scan:
            listed = [
                (entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name, entry) for entry in scan
            ]
    except OSError as err:
        on_error(rel, _as_cloudstore_error(err))
        return
    listed.sort(key=lambda item: item[0])  # code point order is UTF-8 byte order
    for key, entry in listed:
        name = rel + key
        if key.endswith("/"):
            yield from _walk(entry.path, name, on_error)
            continue
        try:
            status = entry.stat()  # follows a symbolic link to its target
        except OSError as err:
            on_error(name, _as_cloudstore_error(err))
            continue
        if S_ISREG(status.st_mode):  # links to folders, FIFOs, sockets and devices are left out
            yield _Entry(name, status.st_size, status.st_mtime)


class _Filter:
    """``include`` / ``exclude`` globs (fnmatch, case-sensitive) on the relative path."""

    def __init__(self, include: Patterns, exclude: Patterns) -> None:
        self._include = _patterns(include, "include")
        self._exclude = _patterns(exclude, "exclude")

    def __call__(self, rel: str) -> bool:
        if self._include and not any(fnmatch.fnmatchcase(rel, p) for p in self._include):
            return False
        return not any(fnmatch.fnmatchcase(rel, p) for p in self._exclude)


def _patterns(value: Patterns, what: str) -> list[str]:
    if value is None:
        return []
    patterns = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(p, str) and p for p in patterns):
        raise InvalidParamException(f"{what} must be a glob or a list of globs (non-empty str)")
    return patterns


def _folder(prefix: str) -> str:
    """A prefix as a folder: empty (the whole bucket) or ending in "/"."""
    if not isinstance(prefix, str):
        raise InvalidParamException(f"prefix must be a str, not {type(prefix).__name__}")
    return prefix if not prefix or prefix.endswith("/") else prefix + "/"


# --- moving one item ---------------------------------------------------------------------------------
def _copy_item(job: _Job, src: _Side, dst: _Side, entry: _Entry) -> None:
    if isinstance(src, _Local) and isinstance(dst, _Remote):
        _upload(job, src, dst, entry)
    elif isinstance(src, _Remote) and isinstance(dst, _Local):
        _download(job, src, dst, entry)
    elif isinstance(src, _Remote) and isinstance(dst, _Remote):
        _copy_remote(job, src, dst, entry)
    else:  # pragma: no cover - refused before the job starts
        raise InvalidParamException("one side must be a bucket")
    job.report._copied(entry.rel, entry.size)


def _upload(job: _Job, src: _Local, dst: _Remote, entry: _Entry) -> None:
    key = dst.key(entry.rel)
    content_type = mimetypes.guess_type(entry.rel, strict=False)[0]
    # Unbuffered: the engine reads a small file in one read, a large one a part at a time.
    with open(src.path(entry.rel), "rb", buffering=0) as source:
        status = os.fstat(source.fileno())
        entry.size = status.st_size  # what is read now, if the file changed since the walk
        dst.store.engine.upload(dst.bucket, key, source, entry.size, content_type, {}, job.progress)


def _download(job: _Job, src: _Remote, dst: _Local, entry: _Entry) -> None:
    target = dst.path(entry.rel)
    folder = os.path.dirname(target)
    if folder not in dst.folders:
        os.makedirs(folder, exist_ok=True)
        dst.folders.add(folder)
    try:
        status = os.stat(target)
    except FileNotFoundError:
        mode = None
    else:
        if not S_ISREG(status.st_mode):
            raise InvalidParamException(f"{target!r} exists and is not a regular file")
        mode = status.st_mode & 0o7777
    info = src.store.engine.download_to_path(src.bucket, src.prefix + entry.rel, target, job.progress, mode)
    entry.size = info.size


def _copy_remote(job: _Job, src: _Remote, dst: _Remote, entry: _Entry) -> None:
    key = dst.key(entry.rel)
    if src.store.provider is dst.store.provider:  # inside the service: no bytes through here
        dst.store.engine.copy(src.bucket, src.prefix + entry.rel, dst.bucket, key)
        job.progress(entry.size)
        return
    from cloudstore.model import user_metadata

    described: list[ObjectInfo] = []
    chunks = src.store.engine.stream(src.bucket, src.prefix + entry.rel, on_described=described.append)
    source = ChunkStream(chunks)
    source.prime()  # the first response tells the content type and metadata to keep
    info = described[0] if described else None
    content_type = info.content_type if info is not None else None
    metadata = user_metadata(info.metadata) if info is not None else {}
    size = info.size if info is not None else entry.size
    dst.store.engine.upload(dst.bucket, key, source, size, content_type, metadata, job.progress)
    entry.size = size


# --- sync: is the destination's copy the same? ----------------------------------------------------
def _unchanged(src: _Side, src_entry: _Entry, dst: _Side, dst_entry: _Entry) -> bool:
    """Same size and same checksum; where no checksum can be compared, the destination is not older."""
    if src_entry.size != dst_entry.size:
        return False
    # A listing's hint that matches is as good as the checksum (an ETag that is not the MD5 it
    # looks like matches nothing); one that does not match is checked against the HEAD's checksum.
    if isinstance(src, _Remote) and isinstance(dst, _Remote):
        if _same(src_entry.checksum or src_entry.hint, dst_entry.checksum or dst_entry.hint):
            return True
        ours, theirs = _checksum(src, src_entry), _checksum(dst, dst_entry)
        if ours is not None and theirs is not None and ours.algorithm == theirs.algorithm:
            return _same(ours, theirs)
    else:
        local, remote = (src, dst) if isinstance(src, _Local) else (dst, src)
        local_entry, remote_entry = (src_entry, dst_entry) if local is src else (dst_entry, src_entry)
        assert isinstance(local, _Local) and isinstance(remote, _Remote)
        path, hint = local.path(local_entry.rel), remote_entry.hint
        if hint is not None and _file_matches(path, hint):
            return True
        checksum = _checksum(remote, remote_entry)
        if checksum is not None and new_hasher(checksum) is not None:
            return not _same(checksum, hint) and _file_matches(path, checksum)
    if src_entry.mtime is None or dst_entry.mtime is None:
        return False
    # Whole seconds: S3 and Swift listings tell times to the second.
    return math.floor(src_entry.mtime) <= math.floor(dst_entry.mtime)


def _same(one: Checksum | None, other: Checksum | None) -> bool:
    return (
        one is not None
        and other is not None
        and one.algorithm == other.algorithm
        and one.value.lower() == other.value.lower()
    )


def _checksum(side: _Remote, entry: _Entry) -> Checksum | None:
    """The object's checksum: from the listing where it tells one, else from a HEAD."""
    if entry.checksum is None:
        key = side.prefix + entry.rel
        info = side.store.call(lambda: side.store.backend.head_object(side.bucket, key))
        if info is None:
            raise NotFoundException(f"object {key!r} disappeared during the sync")
        entry.checksum = as_checksum(info.checksum)
    return entry.checksum


def _file_matches(path: str, checksum: Checksum) -> bool:
    fd = os.open(path, os.O_RDONLY)
    try:
        verify_file(fd, checksum, path)
    except ChecksumMismatchException:
        return False
    finally:
        os.close(fd)
    return True


# --- deleting -------------------------------------------------------------------------------------------
def _batches(names: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _delete_remote(report: BulkReport, side: _Remote, rels: Iterable[str]) -> Iterator[_Task]:
    """The tasks that delete ``prefix + rel`` for each of ``rels``, in the service's batches
    (failures recorded)."""
    store = side.store
    size = max(1, store.backend.features.max_batch_delete)

    def valid() -> Iterator[str]:
        for rel in rels:
            try:
                side.key(rel)
            except InvalidNameException as err:
                report._fail(rel, err)
                continue
            yield rel

    for batch in _batches(valid(), size):
        if report.dry_run:
            report._deleted(batch)
            continue
        yield batch[0], 0, lambda batch=batch: _delete_batch(report, side, batch)  # type: ignore[misc]


def _delete_batch(report: BulkReport, side: _Remote, rels: list[str]) -> None:
    """One batch request (retried whole under the retry policy). What it failed for a passing
    reason is then deleted one object at a time, so that a batch endpoint the service keeps
    failing (Azurite's under a SAS answers 500) holds nothing back; if a single delete fails
    for a passing reason too, the service is down and the rest are reported with that error."""
    store, bucket = side.store, side.bucket
    by_key = {side.prefix + rel: rel for rel in rels}
    try:
        failures = store.call(lambda: store.backend.delete_objects(bucket, list(by_key)))
    except CloudStoreException as error:
        failures = [(key, error) for key in by_key]
    failed = {key for key, _ in failures}
    report._deleted([rel for key, rel in by_key.items() if key not in failed])
    down: CloudStoreException | None = None
    for key, item_error in failures:
        rel = by_key.get(key, key)
        if down is not None or not item_error.retryable:
            report._fail(rel, down or item_error)
            continue
        try:
            store.call(lambda key=key: store.backend.delete_object(bucket, key))  # type: ignore[misc]
        except NotFoundException:
            report._deleted([rel])
        except CloudStoreException as error:
            report._fail(rel, error)
            down = error if error.retryable else None
        else:
            report._deleted([rel])


def _delete_local(report: BulkReport, side: _Local, rels: Iterable[str]) -> Iterator[_Task]:
    for rel in rels:
        if report.dry_run:
            report._deleted([rel])
            continue

        def remove(rel: str = rel) -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(side.path(rel))
            report._deleted([rel])

        yield rel, 0, remove


# --- the jobs --------------------------------------------------------------------------------------------
@dataclass
class _Options:
    concurrency: int = DEFAULT_CONCURRENCY
    max_requests_per_second: float | None = None
    buffer_budget: int = DEFAULT_BUFFER_BUDGET

    def __post_init__(self) -> None:
        for name in ("concurrency", "buffer_budget"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParamException(f"{name} must be a positive whole number, not {value!r}")
        rate = self.max_requests_per_second
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0):
            raise InvalidParamException(f"max_requests_per_second must be a positive number, not {rate!r}")

    def limit(self) -> _RateLimit | None:
        return _RateLimit(self.max_requests_per_second) if self.max_requests_per_second else None


def _transfer(
    src: _Side,
    dst: _Side,
    options: _Options,
    include: Patterns,
    exclude: Patterns,
    progress: ProgressCallback | None,
    *,
    compare: bool = False,
    delete: bool = False,
    dry_run: bool = False,
) -> BulkReport:
    """Copy what ``src`` has to ``dst``; with ``compare``, only what differs; with ``delete``,
    delete what ``dst`` has beyond ``src`` (among the included names)."""
    if isinstance(src, _Local) and isinstance(dst, _Local):
        raise InvalidParamException("one side must be a bucket (PROVIDER://bucket/prefix)")
    wanted = _Filter(include, exclude)
    report = BulkReport(dry_run=dry_run)
    # The destination's names (with size, time and checksum) for the comparison: the one index
    # a sync keeps; the source streams past it.
    index: dict[str, _Entry] = {}
    if compare or delete:
        for entry in dst.entries(report._fail):
            if wanted(entry.rel):
                index[entry.rel] = entry
    unread: list[str] = []

    def walk_error(rel: str, err: CloudStoreException) -> None:
        unread.append(rel)
        report._fail(rel or src.describe(), err)

    def tasks(job: _Job) -> Iterator[_Task]:
        try:
            for entry in src.entries(walk_error):
                if not wanted(entry.rel):
                    continue
                existing = index.pop(entry.rel, None)
                yield entry.rel, _transfer_cost(src, dst, entry), _item_task(job, src, dst, entry, existing, compare)
        except CloudStoreException as err:  # the source could not be listed to its end
            walk_error("", err)
        if delete:
            # Never delete what the source failed to show: a folder it could not read, or all of
            # it after a listing that broke off.
            doomed = (rel for rel in sorted(index) if not any(rel == u or rel.startswith(u) for u in unread))
            if isinstance(dst, _Remote):
                yield from _delete_remote(report, dst, doomed)
            else:
                yield from _delete_local(report, dst, doomed)

    job = _Job(report, options.concurrency, options.buffer_budget, progress)
    job.run_all(tasks(job))
    report._sort()
    return report


def _transfer_cost(src: _Side, dst: _Side, entry: _Entry) -> int:
    store = src.store if isinstance(src, _Remote) else dst.store  # type: ignore[union-attr]
    return _cost(entry.size, store)


def _item_task(
    job: _Job, src: _Side, dst: _Side, entry: _Entry, existing: _Entry | None, compare: bool
) -> Callable[[], None]:
    def task() -> None:
        if compare and existing is not None and _unchanged(src, entry, dst, existing):
            job.report._skipped()
        elif job.report.dry_run:
            job.report._copied(entry.rel, entry.size)
        else:
            _copy_item(job, src, dst, entry)

    return task


# --- the public functions --------------------------------------------------------------------------------
def _local_folder(path: str | os.PathLike[str], must_exist: bool) -> _Local:
    root = Path(os.path.expanduser(os.fspath(path)))
    if root.exists() and not root.is_dir():
        raise InvalidParamException(f"{os.fspath(path)!r} is not a folder")
    if must_exist and not root.is_dir():
        raise InvalidParamException(f"{os.fspath(path)!r} is not a folder")
    return _Local(root.resolve())


def upload_dir(
    bucket: Bucket,
    local_dir: str | os.PathLike[str],
    prefix: str = "",
    include: Patterns = None,
    exclude: Patterns = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> BulkReport:
    """Upload every file under ``local_dir`` as ``prefix`` + its relative path; see :meth:`Bucket.upload_dir`."""
    settings = _Options(**options)
    src = _local_folder(local_dir, must_exist=True)
    dst = _Remote(_store(bucket.provider, settings.limit()), bucket.name, _folder(prefix))
    return _transfer(src, dst, settings, include, exclude, progress)


def download_dir(
    bucket: Bucket,
    prefix: str,
    local_dir: str | os.PathLike[str],
    include: Patterns = None,
    exclude: Patterns = None,
    progress: ProgressCallback | None = None,
    **options: Any,
) -> BulkReport:
    """Download every object under ``prefix`` into ``local_dir``; see :meth:`Bucket.download_dir`."""
    settings = _Options(**options)
    dst = _local_folder(local_dir, must_exist=False)
    src = _Remote(_store(bucket.provider, settings.limit()), bucket.name, _folder(prefix))
    dst.root.mkdir(parents=True, exist_ok=True)
    return _transfer(src, dst, settings, include, exclude, progress)


def delete_many(bucket: Bucket, names: Iterable[str], **options: Any) -> BulkReport:
    """Delete the objects ``names``; see :meth:`BucketObjectService.delete_many`."""
    if isinstance(names, str):
        raise InvalidParamException("names must be an iterable of object names, not one str")
    settings = _Options(**options)
    # In a scoped view the names, and so the report, are relative to its prefix.
    side = _Remote(_store(bucket.provider, settings.limit()), bucket.name, bucket.scope, bucket._key)
    report = BulkReport()
    _Job(report, settings.concurrency, settings.buffer_budget, None).run_all(_delete_remote(report, side, names))
    report._sort()
    return report


def delete_prefix(bucket: Bucket, prefix: str, **options: Any) -> BulkReport:
    """Delete every object whose name starts with ``prefix``; see :meth:`BucketObjectService.delete_prefix`."""
    if not isinstance(prefix, str):
        raise InvalidParamException(f"prefix must be a str, not {type(prefix).__name__}")
    settings = _Options(**options)
    side = _Remote(_store(bucket.provider, settings.limit()), bucket.name, prefix)
    report = BulkReport()
    backend = side.store.backend

    def names() -> Iterator[str]:
        try:
            # Listed (all of it: markers too) and deleted in the same stream, a page at a time.
            for info in iterate(
                lambda size, mark: side.store.call(
                    lambda: backend.list_objects(bucket.name, prefix or None, None, size, mark)
                )
            ):
                yield info.name[len(prefix) :]
        except CloudStoreException as err:
            report._fail(f"(listing of {side.describe()})", err)

    _Job(report, settings.concurrency, settings.buffer_budget, None).run_all(_delete_remote(report, side, names()))
    report._sort()
    return report


#: A side of :func:`sync`: a local folder, a ``PROVIDER://bucket/prefix`` address, a
#: :class:`~cloudstore.Bucket`, or a ``(bucket, prefix)`` pair.
Location: TypeAlias = "str | os.PathLike[str] | Bucket | tuple[Bucket, str]"


class _Sides:
    """Resolves each side of a job, and closes the providers it had to make."""

    def __init__(self, providers: Mapping[str, CloudProvider] | None, options: _Options) -> None:
        self._given = {spec_for(k).id: v for k, v in (providers or {}).items()}
        self._made: list[CloudProvider] = []
        self._stores: dict[int, _Store] = {}
        self._limit = options.limit()  # one cap for the whole job, both sides together

    def side(self, location: Location, is_source: bool) -> _Side:
        from cloudstore.model import Bucket

        if isinstance(location, Bucket):
            location = (location, "")
        if isinstance(location, tuple):
            given, prefix = location
            # A scoped view (Bucket.scoped) stands for the folder of its prefix.
            return _Remote(self._store(given.provider), given.name, _folder(given._prefix(prefix)))
        text = os.fspath(location)
        address = parse_address(text)
        if address is None:
            return _local_folder(text, must_exist=is_source)
        which, bucket, key = address
        if not bucket:
            raise InvalidParamException(f"{text!r} names no bucket")
        provider = self._given.get(which)
        if provider is None:
            from cloudstore.factory import CloudProviderFactory

            provider = CloudProviderFactory().create_provider(which, {})
            self._given[which] = provider
            self._made.append(provider)
        if provider.storage.buckets.get(bucket) is None:
            raise NotFoundException(f"bucket {bucket!r} does not exist on {which}")
        return _Remote(self._store(provider), bucket, _folder(key))

    def _store(self, provider: CloudProvider) -> _Store:
        if id(provider) not in self._stores:
            self._stores[id(provider)] = _store(provider, self._limit)
        return self._stores[id(provider)]

    def close(self) -> None:
        for provider in self._made:
            provider.close()


def _run_between(
    source: Location,
    destination: Location,
    include: Patterns,
    exclude: Patterns,
    progress: ProgressCallback | None,
    providers: Mapping[str, CloudProvider] | None,
    options: Mapping[str, Any],
    **how: bool,
) -> BulkReport:
    settings = _Options(**options)
    sides = _Sides(providers, settings)
    try:
        src = sides.side(source, is_source=True)
        dst = sides.side(destination, is_source=False)
        if isinstance(dst, _Local) and not how.get("dry_run"):
            dst.root.mkdir(parents=True, exist_ok=True)
        return _transfer(src, dst, settings, include, exclude, progress, **how)
    finally:
        sides.close()


def copy_tree(
    source: Location,
    destination: Location,
    include: Patterns = None,
    exclude: Patterns = None,
    progress: ProgressCallback | None = None,
    *,
    providers: Mapping[str, CloudProvider] | None = None,
    **options: Any,
) -> BulkReport:
    """Copy everything under ``source`` to ``destination`` (what ``cloudstore cp -r`` does).

    Each side is a local folder or a ``PROVIDER://bucket/prefix`` address, as for :func:`sync`;
    every file is written whether or not the destination has it already.
    """
    return _run_between(source, destination, include, exclude, progress, providers, options)


def sync(
    source: Location,
    destination: Location,
    delete: bool = False,
    dry_run: bool = False,
    include: Patterns = None,
    exclude: Patterns = None,
    progress: ProgressCallback | None = None,
    *,
    providers: Mapping[str, CloudProvider] | None = None,
    **options: Any,
) -> BulkReport:
    """Make ``destination`` hold what ``source`` holds, copying only what differs.

    Each side is a local folder or a ``PROVIDER://bucket/prefix`` address (``aws://photos/2024``;
    both sides may be buckets, on one provider or two). An address's provider comes from
    ``providers`` (``{"aws": provider}``, by provider id or scheme), else from the environment and config file
    as for :class:`~cloudstore.CloudProviderFactory`. An object is copied unless the destination
    has one of the same size and checksum (or, where no checksum can be compared, the same size
    and a time no older than the source's). With ``delete``, what the destination has beyond
    the source (among the included names) is deleted; with ``dry_run`` nothing is written and
    the report lists what would be done. ``include`` / ``exclude`` are globs on the relative path.

    Options: ``concurrency`` (workers, default 16), ``max_requests_per_second`` (a cap over the
    whole job), ``buffer_budget`` (bytes of transfers in flight, default 256 MiB).
    """
    return _run_between(
        source,
        destination,
        include,
        exclude,
        progress,
        providers,
        options,
        compare=True,
        delete=delete,
        dry_run=dry_run,
    )

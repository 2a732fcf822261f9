"""The small interface each provider implements: a translation table to one cloud.

The public model (:mod:`cloudstore.model`) owns everything that is the same on
every cloud: pagination, name checks before any network call, retries, the
transfer engine, checksum verification, error wrapping. A provider only says
how one primitive request is spelled for its SDK, and how that SDK's errors map
onto :mod:`cloudstore.exceptions` (:meth:`Backend.map_error`).

The shared layer calls every method here under the retry policy
(:mod:`cloudstore._retry`) and translates what it raises with ``map_error``, so
a provider raises its SDK's errors freely and never retries by itself.

This module is the provider interface, public and documented ("Provider interface" in the API
reference): a provider imports what it needs from here and from :mod:`cloudstore.exceptions`,
:mod:`cloudstore.config` and :mod:`cloudstore.registry`, never from a private module.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Generic, TypeVar

from cloudstore._checksums import Checksum
from cloudstore._names import object_name_max_bytes
from cloudstore.exceptions import AuthenticationException, NotSupportedException, PreconditionFailedException

if TYPE_CHECKING:
    from cloudstore._retry import RetryPolicy
    from cloudstore.credentials import CredentialSource
    from cloudstore.exceptions import CloudStoreException

__all__ = [
    "Backend",
    "BucketInfo",
    "Checksum",
    "Features",
    "FileRangeReader",
    "ObjectInfo",
    "Page",
    "PostForm",
    "RangeReader",
    "SignedPost",
    "SignedURL",
    "UploadPart",
    "UrlPins",
    "WriteCondition",
    "call_with_credentials",
    "same_etag",
]

T = TypeVar("T")
#: A backend's handle of one multipart upload (whatever it needs to send the parts and commit them).
U = TypeVar("U")


@dataclass(frozen=True)
class Features:
    """Optional capabilities of a provider, read by the shared layer (in the manner of rclone's).

    The first three are derived from the backend class when left ``None``
    (:meth:`fill`, run for every :class:`Backend` subclass): a capability is there when the
    class implements its methods. A value declared in the class's ``features`` wins.
    """

    #: Parts of one object can be uploaded in parallel and committed once (the four multipart
    #: methods are implemented). Without it every upload is one ``put_object``.
    multipart_upload: bool | None = None
    #: ``copy_object`` happens inside the service, without the bytes passing the client (it is
    #: implemented). Without it ``copy_to`` downloads and uploads the object through the engine.
    server_side_copy: bool | None = None
    #: ``sign_url`` is available for GET and PUT (it is implemented). Without it
    #: ``generate_url`` raises :class:`~cloudstore.exceptions.NotSupportedException`, no request made.
    signed_urls: bool | None = None
    #: The listing API pages on the server (``limit`` and ``marker`` are honoured). Without it
    #: the backend returns every entry at once, and the shared pager cuts the pages.
    server_paging: bool = True
    #: The smallest part size the service accepts for every part but the last.
    min_part_size: int = 5 * 1024 * 1024
    #: The most parts one multipart upload may have.
    max_parts: int = 10_000
    #: The longest ``expires_in`` the service allows a signed URL (``None``: no limit of its own).
    #: cloudstore caps it at 7 days unless the ``max_url_expiry`` config key says otherwise.
    max_url_expiry: int | None = None
    #: The largest object one ``copy_object`` request copies (``None``: any size). A larger one
    #: is copied by the engine as a multipart upload of ``upload_part_copy`` ranges.
    max_copy_size: int | None = None
    #: ``complete_multipart_upload`` can store the whole object's MD5 (which the engine then
    #: computes while reading the parts), so multipart objects are verified on download too.
    stores_content_md5: bool = False
    #: The service's multipart checksum is made of per-part digests (S3's "<md5>-<N>" ETag): the
    #: engine records how it cut the parts in the object's metadata
    #: (:data:`cloudstore._checksums.PART_LAYOUT_KEY`), so that a download can verify it exactly.
    records_part_layout: bool = False
    #: Parts copied on the server (``upload_part_copy``) get the same per-part digests as
    #: uploaded ones, so a copy made in parts records its layout too (SeaweedFS's do not).
    part_copies_keep_digests: bool = True
    #: What one process stores, another process with the same config sees (false only for
    #: in-process stores such as ``memory``).
    shared_between_processes: bool = True
    #: The most names one :meth:`Backend.delete_objects` call takes (one batch request where the
    #: service has a batch API; 1: the shared layer deletes one object per request, in parallel).
    max_batch_delete: int = 1
    #: Writes can be made conditional on the object being absent (``if_none_match="*"``): the
    #: service checks it when it commits the object (the upload's last request).
    if_none_match: bool = False
    #: Writes can be made conditional on the object's current ETag (``if_match=etag``).
    if_match: bool = False
    #: The service checks a write's condition and stores the object in one step, so of writers
    #: racing on the same condition exactly one wins. Where it does not (Swift checks before it
    #: stores), a condition still refuses a write that comes after the other, but not a race.
    atomic_conditions: bool = True
    #: ``copy_object`` takes a write condition on its target. Without it a conditional copy is
    #: made by the engine as a download and a conditional upload.
    conditional_server_copy: bool = True
    #: A writable signed URL can pin the upload's content type, Content-MD5 and metadata: they
    #: are signed as headers, and the service refuses a request whose headers differ.
    signed_url_headers: bool = False
    #: Signed URLs and forms are signed with the credentials themselves (S3's SigV4 with a session
    #: token), so they stop working when the credentials expire: none may be asked to outlive them.
    signed_with_credentials: bool = False
    #: The ``credentials_provider`` config key is honoured (credentials that refresh themselves).
    refreshing_credentials: bool = False
    #: ``sign_post`` is available (browser form uploads; derived from the class, as above).
    signed_posts: bool | None = None
    #: A form upload's content type is part of what the service checks (S3's and GCS's policy
    #: conditions); Swift's form POST takes it from the form unsigned.
    signed_post_content_type: bool = True

    @classmethod
    def fill(cls, backend: type[Backend[Any]], declared: Features | None = None) -> Features:
        """``declared`` with every capability left ``None`` derived from what ``backend`` implements."""
        declared = declared or cls()
        derived = {
            "multipart_upload": all(_overrides(backend, method) for method in _MULTIPART_METHODS),
            "server_side_copy": _overrides(backend, "copy_object"),
            "signed_urls": _overrides(backend, "sign_url"),
            "signed_posts": _overrides(backend, "sign_post"),
        }
        return replace(declared, **{k: v for k, v in derived.items() if getattr(declared, k) is None})


_MULTIPART_METHODS = (
    "create_multipart_upload",
    "upload_part",
    "complete_multipart_upload",
    "abort_multipart_upload",
)


def _overrides(backend: type, method: str) -> bool:
    """Whether ``backend`` (or a base class below :class:`Backend`) defines ``method``."""
    return getattr(backend, method, None) is not getattr(Backend, method, None)


@dataclass(frozen=True)
class WriteCondition:
    """A precondition on the object a write would replace, checked when the write commits.

    ``if_none_match``: only if no object has the name. ``if_match``: only if the object's
    current ETag is this one. A write whose condition fails stores nothing and raises
    :class:`~cloudstore.exceptions.PreconditionFailedException`.
    """

    if_none_match: bool = False
    if_match: str | None = None

    def check(self, current: ObjectInfo | None, name: str) -> None:
        """Raise :class:`~cloudstore.exceptions.PreconditionFailedException` unless ``current`` (the
        object as it is now, ``None`` when absent) meets the condition; for providers that check
        it themselves, under the lock that also covers the write."""
        if self.if_none_match and current is not None:
            raise PreconditionFailedException(f"object {name!r} exists (the write asked for if_none_match='*')")
        if self.if_match is not None and (current is None or not same_etag(current.etag, self.if_match)):
            state = "does not exist" if current is None else f"has ETag {current.etag!r}"
            raise PreconditionFailedException(
                f"object {name!r} {state}, not {self.if_match!r} (the write asked for if_match)"
            )


def same_etag(first: str | None, second: str | None) -> bool:
    """Whether two ETags name the same version (quotes and a weak ``W/`` prefix aside)."""

    def bare(etag: str) -> str:
        return etag.removeprefix("W/").strip('"')

    return first is not None and second is not None and bare(first) == bare(second)


class SignedURL(str):
    """A signed URL (a ``str``) that also tells how to use it.

    ``method``: the HTTP method it allows. ``headers``: what the request must carry (Azure's
    ``x-ms-blob-type``, and each header the URL pins). ``expires_at``: when it stops working.
    """

    method: str
    headers: Mapping[str, str]
    expires_at: datetime

    def __new__(cls, url: str, method: str, headers: Mapping[str, str], expires_at: datetime) -> SignedURL:
        signed = super().__new__(cls, url)
        signed.method = method
        signed.headers = dict(headers)
        signed.expires_at = expires_at
        return signed

    def __reduce__(self) -> tuple[Any, ...]:
        return SignedURL, (str(self), self.method, dict(self.headers), self.expires_at)


@dataclass(frozen=True)
class PostForm:
    """A browser form upload as a provider signs it: where to POST, and the fields to send
    before the file (the file's field comes last, named ``file_field``)."""

    url: str
    fields: Mapping[str, str]
    #: The name the form must give the uploaded file (Swift's form POST appends it to the URL's
    #: folder); ``None``: any name (the object's name is in the fields).
    filename: str | None = None
    file_field: str = "file"


@dataclass(frozen=True)
class SignedPost:
    """A signed browser form upload (:meth:`~cloudstore.BucketObject.generate_post`).

    POST ``url`` as ``multipart/form-data``: every one of ``fields`` first, then the body as a
    file in the field ``file_field`` (with the file name ``filename`` where it is not ``None``).
    The service refuses a body over ``max_size`` bytes, and everything after ``expires_at``.
    """

    url: str
    fields: Mapping[str, str]
    expires_at: datetime
    max_size: int
    filename: str | None = None
    file_field: str = "file"
    method: str = "POST"


@dataclass(frozen=True)
class UrlPins:
    """What a writable signed URL fixes about the upload (``None``/empty: left free)."""

    content_type: str | None = None
    #: The MD5 digest of the body to be uploaded.
    content_md5: bytes | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.content_type or self.content_md5 or self.metadata)


@dataclass(frozen=True)
class BucketInfo:
    """What a provider knows about one bucket."""

    name: str
    created: datetime | None = None


@dataclass(frozen=True)
class ObjectInfo:
    """What a provider knows about one object (from a HEAD or a listing)."""

    name: str
    size: int
    last_modified: datetime | None = None
    etag: str | None = None
    content_type: str | None = None
    #: User metadata; ``None`` when the listing does not carry it (then a HEAD fills it in).
    metadata: Mapping[str, str] | None = None
    #: A whole-object checksum the downloaded bytes must match: a
    #: :class:`~cloudstore.backend.Checksum` or a plain ``(algorithm, hex digest)`` pair with
    #: algorithm ``"md5"`` or ``"crc32c"``; ``None`` when the service gives none.
    checksum: Checksum | tuple[str, str] | None = None


@dataclass
class Page(Generic[T]):
    """One page of a server-side listing.

    ``next_marker`` is what to pass back as ``marker`` to get the next page, and
    ``None`` on the last page. ``prefixes`` holds the pseudo-folders when the
    listing used a delimiter.
    """

    items: list[T]
    next_marker: str | None = None
    prefixes: list[str] = field(default_factory=list)


@dataclass
class UploadPart:
    """A committed part of a multipart upload, as the provider needs it back at completion."""

    number: int
    #: Provider-specific receipt (S3 ETag, Azure block id, Swift segment path, ...).
    token: Any


class RangeReader(abc.ABC):
    """A readable byte stream for (part of) an object's body.

    ``info`` describes the whole object as the GET response told it (size,
    ETag, checksum, content type), when the provider can say so without an
    extra request; a whole-object read then needs no HEAD first.
    """

    info: ObjectInfo | None = None

    @property
    def etag(self) -> str | None:
        """The version of the object this body belongs to (its ETag, or a generation), if the response said.

        The transfer engine requires every range and every resumed read of one transfer to report
        the same value, so that it never splices two versions of an object together.
        """
        return self.info.etag if self.info is not None else None

    @abc.abstractmethod
    def read(self, size: int = -1) -> bytes:
        """Return up to ``size`` bytes; ``b""`` at the end."""

    def readinto(self, buffer: memoryview) -> int:
        """Read up to ``len(buffer)`` bytes into ``buffer``; the number read, 0 at the end.

        This default copies what :meth:`read` returns. Override it where the body can be read
        straight into the buffer (a socket's ``recv_into``): the download engine then reads every
        chunk into one reused buffer per worker, with no ``bytes`` object per chunk.
        """
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the connection."""

    def __enter__(self) -> RangeReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FileRangeReader(RangeReader):
    """Adapts any object with ``read(n)`` (and optionally ``close()``) to :class:`RangeReader`."""

    def __init__(self, raw: BinaryIO | Any, info: ObjectInfo | None = None) -> None:
        self._raw = raw
        self.info = info

    def read(self, size: int = -1) -> bytes:
        return bytes(self._raw.read(size))

    def close(self) -> None:
        close = getattr(self._raw, "close", None)
        if close is not None:
            close()


class Backend(abc.ABC, Generic[U]):
    """One cloud's primitive requests. Implemented once per provider.

    Names reaching these methods are already validated by the shared layer.
    Ranges are inclusive byte offsets, like HTTP ``Range``; ``end=None`` means
    to the end of the object.
    """

    #: Optional capabilities: declare what differs from the defaults; what is left ``None`` is
    #: derived from the methods the class implements (:meth:`Features.fill`).
    features: ClassVar[Features] = Features()
    #: Where the credentials come from when the ``credentials_provider`` config key is set
    #: (set by a backend that declares ``features.refreshing_credentials``).
    credentials: CredentialSource | None = None
    #: When fixed temporary credentials expire (the ``credentials_expiry`` config key).
    static_expiry: datetime | None = None

    def credentials_expiry(self) -> datetime | None:
        """When the credentials that sign URLs now stop working (``None``: not known to expire)."""
        if self.credentials is not None:
            return self.credentials.current().expires_at
        return self.static_expiry

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.features = Features.fill(cls, cls.features)

    # --- names (raise InvalidNameException; bind a rule from cloudstore._names with staticmethod) ---
    @abc.abstractmethod
    def check_bucket_name(self, name: str) -> None:
        """Raise :class:`~cloudstore.exceptions.InvalidNameException` if ``name`` breaks the bucket rules."""

    def check_object_name(self, name: str) -> None:
        """Raise :class:`~cloudstore.exceptions.InvalidNameException` if ``name`` is not a valid key."""
        object_name_max_bytes(1024)(name)

    # --- errors -----------------------------------------------------------
    @abc.abstractmethod
    def map_error(self, error: BaseException) -> CloudStoreException | None:
        """Translate an SDK error into the cloudstore exception to raise (``None``: not ours).

        The shared layer chains the original (``raise mapped from error``).
        """

    # --- buckets ----------------------------------------------------------
    @abc.abstractmethod
    def list_buckets(self, limit: int | None, marker: str | None) -> Page[BucketInfo]:
        """One page of buckets in name order, starting after ``marker``."""

    @abc.abstractmethod
    def head_bucket(self, name: str) -> BucketInfo | None:
        """The bucket, or ``None`` if it does not exist."""

    @abc.abstractmethod
    def create_bucket(self, name: str, location: str | None) -> BucketInfo:
        """Create it; raise the SDK error that maps to ``DuplicateResourceException`` if it exists."""

    @abc.abstractmethod
    def delete_bucket(self, name: str) -> None:
        """Delete an empty bucket; a non-empty one must fail (nothing deleted)."""

    # --- objects ----------------------------------------------------------
    @abc.abstractmethod
    def list_objects(
        self, bucket: str, prefix: str | None, delimiter: str | None, limit: int | None, marker: str | None
    ) -> Page[ObjectInfo]:
        """One server page of objects in key order after ``marker``.

        ``limit`` is a page size hint: a provider may return fewer items (never more).
        """

    @abc.abstractmethod
    def head_object(self, bucket: str, name: str) -> ObjectInfo | None:
        """The object's properties and metadata, or ``None`` if it does not exist."""

    def checksum_hint(self, info: ObjectInfo) -> Checksum | None:
        """What a listed object's checksum probably is, where its listing could not vouch for one
        (S3: an ETag shaped like an MD5 is the content's MD5 unless SSE-KMS or SSE-C made it
        something else). Bytes that match it are the object's; a mismatch proves nothing. Sync
        uses it to spare a HEAD per unchanged object; ``None`` (the default) always HEADs."""
        return None

    @abc.abstractmethod
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
        """Store the whole object in one request (replacing any old one).

        ``condition`` (only given where ``features`` declare it) must hold when the object is
        stored, or nothing is stored and the service's precondition error is raised.

        ``content_md5`` is the MD5 digest of ``data`` (the engine always gives it): send it so
        that the service refuses a body damaged on the way, or compare it with what the service
        says it stored, and raise a *retryable*
        :class:`~cloudstore.exceptions.ChecksumMismatchException` on a difference.
        """

    @abc.abstractmethod
    def get_object(self, bucket: str, name: str, start: int | None = None, end: int | None = None) -> RangeReader:
        """Open the body, or the inclusive byte range ``start``..``end`` of it."""

    @abc.abstractmethod
    def delete_object(self, bucket: str, name: str) -> None:
        """Delete the object (and anything the provider keeps for it, e.g. segments)."""

    # --- optional: without them, features.server_side_copy / signed_urls are False -------------
    def copy_object(
        self,
        src_bucket: str,
        src_name: str,
        dst_bucket: str,
        dst_name: str,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        """Copy on the server side, keeping content type and metadata; ``condition`` is on the target."""
        raise NotSupportedException("this provider has no server-side copy")

    def sign_url(
        self, bucket: str, name: str, method: str, expires_in: int, *, pins: UrlPins | None = None
    ) -> str | tuple[str, Mapping[str, str]]:
        """A URL that lets anyone do ``method`` (``"GET"`` or ``"PUT"``) on the object until it expires,
        and the headers the request must carry (the URL alone when it needs none).

        ``pins`` (only where ``features.signed_url_headers``) are signed as headers of a PUT.
        """
        raise NotSupportedException("this provider has no signed URLs")

    def sign_post(self, bucket: str, name: str, expires_in: int, max_size: int, content_type: str | None) -> PostForm:
        """A form upload that stores at most ``max_size`` bytes as the object until it expires
        (with ``content_type``, checked where ``features.signed_post_content_type``)."""
        raise NotSupportedException("this provider has no signed form uploads")

    # --- multipart uploads (used by the transfer engine) --------------------
    def create_multipart_upload(
        self, bucket: str, name: str, content_type: str | None, metadata: Mapping[str, str]
    ) -> U:
        """Start a multipart upload and return its handle (passed back to the methods below)."""
        raise NotImplementedError

    def upload_part(
        self, upload: U, number: int, offset: int, data: bytes, *, content_md5: bytes | None = None
    ) -> UploadPart:
        """Upload part ``number`` (1-based) which starts at byte ``offset`` of the object.

        ``content_md5`` is the MD5 digest of ``data``, to be checked as for :meth:`put_object`.
        """
        raise NotImplementedError

    def upload_part_copy(
        self, upload: U, number: int, src_bucket: str, src_name: str, start: int, end: int, etag: str | None
    ) -> UploadPart:
        """Make bytes ``start``..``end`` (inclusive) of the source object part ``number``, on the server.

        Only needed where ``features.max_copy_size`` is set; ``etag`` (when given) is the source
        version every part must come from.
        """
        raise NotImplementedError

    def complete_multipart_upload(
        self,
        upload: U,
        parts: list[UploadPart],
        content_md5: bytes | None = None,
        *,
        condition: WriteCondition | None = None,
    ) -> None:
        """Make the object visible from ``parts`` (sorted by number), if ``condition`` holds then.

        ``content_md5``, the MD5 digest of the whole object, is given only where
        ``features.stores_content_md5`` says the provider keeps it.
        """
        raise NotImplementedError

    def abort_multipart_upload(self, upload: U) -> None:
        """Discard every part uploaded so far; nothing becomes visible."""
        raise NotImplementedError

    def abort_orphan_uploads(self, upload: U, since: datetime) -> None:
        """Abort the multipart uploads of the same object started since ``since`` other than ``upload``.

        Called when ``create_multipart_upload`` had to be retried: an earlier attempt may have
        started an upload whose answer was lost. Only services that keep state for a started
        upload need it.
        """

    def cleanup_multipart_upload(self, upload: U) -> None:
        """Remove what a completed or aborted upload leaves behind (e.g. GCS's composed parts).

        Run by the engine under the retry policy after ``complete`` or ``abort``; a failure is
        reported to the user as a :class:`~cloudstore.exceptions.CleanupWarning`.
        """

    def close(self) -> None:
        """Release clients and connection pools."""

    # --- bulk (used by cloudstore.bulk) -----------------------------------
    def delete_objects(self, bucket: str, names: list[str]) -> list[tuple[str, CloudStoreException]]:
        """Delete ``names`` (at most ``features.max_batch_delete``), in one batch request where the
        service has one; return the names that could not be deleted, each with its error.

        A name that does not exist counts as deleted (S3's batch cannot tell it apart). An error
        of the whole request is raised (the shared layer retries it); one item's error is
        returned, ``retryable`` where trying that item again can succeed. This default deletes
        one object per request.
        """
        from cloudstore._retry import translate_error
        from cloudstore.exceptions import NotFoundException

        failures: list[tuple[str, CloudStoreException]] = []
        for name in names:
            try:
                self.delete_object(bucket, name)
            except Exception as err:  # every error becomes this item's failure
                mapped = translate_error(err, self.map_error)
                if not isinstance(mapped, NotFoundException):
                    failures.append((name, mapped))
        return failures


def call_with_credentials(policy: RetryPolicy, backend: Backend[Any], fn: Callable[[], T]) -> T:
    """``fn`` under ``policy``; refused as unauthenticated while the backend's credentials come
    from a ``credentials_provider``, it is tried once more with new ones (they expired)."""
    try:
        return policy.call(fn, backend.map_error)
    except AuthenticationException:
        if backend.credentials is None:
            raise
        backend.credentials.renew()
        return policy.call(fn, backend.map_error)

"""Copies: on the server side, in parallel ranges above the service's copy limit, or through
this machine where the service has no server-side copy."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

from cloudstore._checksums import PART_LAYOUT_KEY, part_layout
from cloudstore._engine.download import Downloader
from cloudstore._engine.parts import Context, run_all
from cloudstore._engine.upload import ChunkStream, Uploader
from cloudstore.backend import ObjectInfo, UploadPart, WriteCondition
from cloudstore.exceptions import NotFoundException


class Copier:
    """Copies one object to another name, keeping content type and metadata."""

    def __init__(self, context: Context, uploader: Uploader, downloader: Downloader) -> None:
        self._context = context
        self._uploader = uploader
        self._downloader = downloader

    def copy(
        self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str, condition: WriteCondition | None = None
    ) -> None:
        """Copy on the server side, keeping content type and metadata, whatever the object's size.

        An object larger than one copy request allows (``features.max_copy_size``) is copied as a
        multipart upload whose parts are ranges copied on the server, ``max_concurrency`` at a time,
        all from the same source version; a failure aborts it and leaves the target untouched.
        Without server-side copies (``features.server_side_copy``) the bytes stream through here.
        ``condition`` is on the target, checked when the copy commits.
        """
        context = self._context
        backend = context.backend
        conditional_copy = condition is None or context.features.conditional_server_copy
        if not context.features.server_side_copy or not conditional_copy:
            self._copy_through(src_bucket, src_name, dst_bucket, dst_name, condition)
            return
        limit = context.features.max_copy_size
        if limit is not None:
            source = context.call(lambda: backend.head_object(src_bucket, src_name))
            if source is None:
                raise NotFoundException(f"object {src_name!r} not found in bucket {src_bucket!r}", status=404)
            if source.size > limit:
                self._copy_parts(src_bucket, src_name, dst_bucket, dst_name, source, limit, condition)
                return
        options: dict[str, Any] = {} if condition is None else {"condition": condition}
        context.call(lambda: backend.copy_object(src_bucket, src_name, dst_bucket, dst_name, **options))

    def _copy_through(
        self, src_bucket: str, src_name: str, dst_bucket: str, dst_name: str, condition: WriteCondition | None
    ) -> None:
        """Download (verified) and upload in parts, as it streams."""
        described: list[ObjectInfo] = []
        chunks = self._downloader.stream(src_bucket, src_name, on_described=described.append)
        first = next(chunks, b"")  # the source's properties arrive with its first response
        if not described:
            info = self._context.call(lambda: self._context.backend.head_object(src_bucket, src_name))
            if info is None:
                raise NotFoundException(f"object {src_name!r} not found in bucket {src_bucket!r}", status=404)
            described.append(info)
        source = described[0]
        metadata = {key: value for key, value in (source.metadata or {}).items() if key != PART_LAYOUT_KEY}
        body = ChunkStream(itertools.chain([first], chunks))
        self._uploader.upload(
            dst_bucket, dst_name, body, source.size, source.content_type, metadata, condition=condition
        )

    def _copy_parts(
        self,
        src_bucket: str,
        src_name: str,
        dst_bucket: str,
        dst_name: str,
        source: ObjectInfo,
        limit: int,
        condition: WriteCondition | None,
    ) -> None:
        context = self._context
        backend = context.backend
        features = context.features
        part = max(context.config.part_size, features.min_part_size, -(-source.size // features.max_parts))
        part = min(part, limit)
        ranges = [(start, min(start + part, source.size) - 1) for start in range(0, source.size, part)]
        metadata = {key: value for key, value in (source.metadata or {}).items() if key != PART_LAYOUT_KEY}
        if features.records_part_layout and features.part_copies_keep_digests:
            metadata[PART_LAYOUT_KEY] = part_layout(part, 0)
        upload = self._uploader.create(dst_bucket, dst_name, source.content_type, metadata)

        def copy_part(number: int, start: int, end: int) -> Callable[[], UploadPart]:
            return lambda: context.call(
                lambda: backend.upload_part_copy(upload, number, src_bucket, src_name, start, end, source.etag)
            )

        try:
            parts = run_all(
                [copy_part(number, start, end) for number, (start, end) in enumerate(ranges, 1)],
                context.config.max_concurrency,
                "cloudstore-copy",
            )
            options: dict[str, Any] = {} if condition is None else {"condition": condition}
            context.call(lambda: backend.complete_multipart_upload(upload, parts, **options))
        except BaseException as err:
            self._uploader.abort(upload, err)
            raise
        self._uploader.clean_up(upload)

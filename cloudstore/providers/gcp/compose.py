"""Large uploads on GCS: parts uploaded in parallel as hidden objects, then composed.

Each part is an ordinary object ``.cloudstore-uploads/<upload id>/<number>`` (listings
hide that prefix). Completing composes them into the target, at most 32 sources per
compose call, so more parts are first composed into intermediate objects, level by
level. The target gets its content type and metadata in the final compose, which is
atomic: until then nothing is visible under the target's name. Deleting the temporary
objects is a separate step (:func:`delete_upload_objects`), run after completing or
aborting under the retry policy, so that a failed clean-up is tried again and reported.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import google.api_core.exceptions as api_errors
from google.cloud import storage

#: Where parts of unfinished uploads live (object names here are refused and never listed).
HIDDEN_PREFIX = ".cloudstore-uploads/"
#: GCS composes at most this many source objects per request.
MAX_COMPOSE_SOURCES = 32
#: Temporary objects deleted at once.
DELETE_CONCURRENCY = 8

#: ``(connect, read)`` seconds for each request.
Timeout = tuple[float, float]


@dataclass(frozen=True)
class ComposeUpload:
    """The handle of one multipart upload: where its parts go and what the object gets."""

    bucket: str
    name: str
    upload_id: str
    content_type: str | None
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"{HIDDEN_PREFIX}{self.upload_id}/"

    def part_name(self, number: int) -> str:
        return f"{self.prefix}{number:05d}"

    def intermediate_name(self, level: int, index: int) -> str:
        return f"{self.prefix}compose-{level}-{index:05d}"


def compose_parts(
    client: storage.Client,
    upload: ComposeUpload,
    part_names: list[str],
    timeout: Timeout,
    generation: int | None = None,
) -> None:
    """Compose ``part_names`` (in order, at least one) into the upload's target, only if the
    target's generation is then ``generation`` (0: absent; ``None``: any).

    The temporary objects stay; :func:`delete_upload_objects` removes them.
    """
    bucket = client.bucket(upload.bucket)
    sources = list(part_names)
    level = 0
    while len(sources) > MAX_COMPOSE_SOURCES:
        level += 1
        merged: list[str] = []
        for index, start in enumerate(range(0, len(sources), MAX_COMPOSE_SOURCES)):
            group = sources[start : start + MAX_COMPOSE_SOURCES]
            if len(group) == 1:
                merged.append(group[0])
                continue
            name = upload.intermediate_name(level, index)
            bucket.blob(name).compose([bucket.blob(n) for n in group], retry=None, timeout=timeout)
            merged.append(name)
        sources = merged
    target = bucket.blob(upload.name)
    target.content_type = upload.content_type or "application/octet-stream"
    target.metadata = dict(upload.metadata) or None
    options = {} if generation is None else {"if_generation_match": generation}
    target.compose([bucket.blob(n) for n in sources], retry=None, timeout=timeout, **options)


def delete_upload_objects(client: storage.Client, upload: ComposeUpload, timeout: Timeout) -> None:
    """Delete every part and intermediate object of ``upload`` (listed, so none is missed)."""
    listed = client.list_blobs(upload.bucket, prefix=upload.prefix, retry=None, timeout=timeout)
    delete_objects(client, upload.bucket, [blob.name for blob in listed], timeout)


def delete_objects(client: storage.Client, bucket_name: str, names: list[str], timeout: Timeout) -> None:
    """Delete ``names``, a few at a time in parallel; names already gone are fine.

    One request per object: fake-gcs-server has no batch endpoint, and a handful of parts
    is the common case.
    """
    bucket = client.bucket(bucket_name)

    def delete(name: str) -> None:
        with contextlib.suppress(api_errors.NotFound):
            bucket.blob(name).delete(retry=None, timeout=timeout)

    if len(names) <= 1:
        for name in names:
            delete(name)
        return
    with ThreadPoolExecutor(min(DELETE_CONCURRENCY, len(names)), thread_name_prefix="cloudstore-gcs-clean") as pool:
        for future in [pool.submit(delete, name) for name in names]:
            future.result()

"""What the conformance suite runs against: a registered provider, its config and its quirks."""

from __future__ import annotations

import configparser
import contextlib
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cloudstore import Bucket, CloudProvider, CloudProviderFactory, TransferConfig
from cloudstore.exceptions import InvalidParamException

#: Small parts, so that the suite exercises multipart paths with objects of a few MiB
#: (5 MiB is S3's smallest part). A target's own ``transfer_config`` wins.
TEST_TRANSFER = TransferConfig(threshold=6 * 1024 * 1024, part_size=5 * 1024 * 1024, max_concurrency=4)


def utf8_order(key: str) -> Any:
    """Keys sorted by their UTF-8 bytes: S3, Swift, Azure, GCS and LOCAL list in this order."""
    return key.encode("utf-8")


def path_segment_order(key: str) -> Any:
    """Keys sorted path segment by path segment (``"b/1"`` before ``"b-sibling"``), as a store
    that walks a directory tree lists them."""
    return [segment.encode("utf-8") for segment in key.split("/")]


@dataclass(frozen=True)
class Quirks:
    """What a provider or its test server does differently, each with the reason to quote.

    Declared once by whoever sets the target up (in the manner of rclone's per-backend test
    options), never decided inside a case. A case that meets a declared difference expects it to
    fail (a strict xfail, so that a fixed server is noticed) or, where it cannot apply at all,
    skips with the reason.
    """

    #: The sort key of the order the store lists keys in.
    listing_order: Callable[[str], Any] = utf8_order
    #: Object names the store mishandles although the service stores and lists them: name -> what it does.
    name_differences: Mapping[str, str] = field(default_factory=dict)
    #: Why the store cannot hold a key and keys under it (``"a"`` and ``"a/b"``) at once.
    key_and_keys_under_it: str | None = None
    #: Why the store keeps listing a prefix after the last object under it is deleted.
    prefix_outlives_its_objects: str | None = None
    #: Why the store keeps another content type than the one sent.
    content_type_differs: str | None = None
    #: Why the store accepts signed URLs without checking them (the refusal cases are skipped).
    unchecked_signatures: str | None = None
    #: Why the store keeps a signed upload without checking its Content-MD5.
    unchecked_content_md5: str | None = None
    #: Headers a plain HTTP PUT to a signed URL must carry (Azure: ``x-ms-blob-type``).
    signed_put_headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    """One provider under test: its registered id, the config that reaches its store, its quirks."""

    #: The registered provider id (``create_provider(provider, config)``).
    provider: str
    #: The ``create_provider`` config (:data:`TEST_TRANSFER` is added unless it names its own).
    config: Mapping[str, Any] = field(default_factory=dict)
    quirks: Quirks = field(default_factory=Quirks)
    #: Lists the multipart state (open uploads, orphaned parts or segments) left in a bucket, where
    #: the store can tell; the cases then check that nothing is left behind.
    leftovers: Callable[[str], list[str]] | None = None

    def provider_config(self, **overrides: Any) -> dict[str, Any]:
        """The config a provider of this target is made from, with ``overrides``."""
        return {"transfer_config": TEST_TRANSFER, **self.config, **overrides}

    def make_provider(self, **overrides: Any) -> CloudProvider:
        """A new provider on this target (the caller closes it)."""
        return CloudProviderFactory().create_provider(self.provider, self.provider_config(**overrides))


def unique_name(prefix: str = "cs") -> str:
    """A bucket name valid on every provider and unused so far."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


@contextlib.contextmanager
def fresh_bucket(provider: CloudProvider, prefix: str = "cs") -> Iterator[Bucket]:
    """A new empty bucket, deleted with its contents afterwards (if the case left it)."""
    created = provider.storage.buckets.create(unique_name(prefix))
    try:
        yield created
    finally:
        if created.exists():
            created.delete(delete_contents=True)


def read_config_file(path: str | Path, provider: str) -> dict[str, Any]:
    """A provider's config from ``path``: JSON (an object of keys, or of provider ids to objects)
    or an ini file with a ``[<provider id>]`` section (cloudstore's own config file format)."""
    path = Path(path).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise InvalidParamException(f"cannot read the config file {path}: {err.strerror}") from None
    if path.suffix.lower() == ".json":
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidParamException(f"{path} is not JSON (line {err.lineno})") from None
        if not isinstance(loaded, dict):
            raise InvalidParamException(f"{path} must hold a JSON object")
        section = loaded.get(provider, loaded)
        if not isinstance(section, dict):
            raise InvalidParamException(f"{path}: the {provider!r} entry must be an object")
        return dict(section)
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error:
        # No parser message: the line may hold a secret.
        raise InvalidParamException(f"{path} is neither JSON nor an ini file with [section] headers") from None
    if not parser.has_section(provider):
        raise InvalidParamException(f"{path} has no [{provider}] section")
    return dict(parser[provider])

"""Name rules of each service, checked before any network call.

Each backend binds its rules as ``check_bucket_name`` and ``check_object_name``
(see :class:`~cloudstore.backend.Backend`); they raise
:class:`~cloudstore.exceptions.InvalidNameException` with the reason.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from cloudstore.exceptions import InvalidNameException

NameRule = Callable[[str], None]

_S3_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_AZURE_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")
_GCS_BUCKET = re.compile(r"^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$")


#: Characters of a name quoted in an error message; a longer name is cut there.
SHOWN_CHARS = 64


def shown(name: str) -> str:
    """``name`` quoted for a message: cut to ``SHOWN_CHARS`` characters, with its length, if longer."""
    if len(name) <= SHOWN_CHARS:
        return repr(name)
    size = len(name.encode("utf-8", "surrogatepass"))
    return f"{name[:SHOWN_CHARS]!r}... ({len(name)} characters, {size} bytes)"


def _fail(kind: str, name: str, why: str) -> InvalidNameException:
    return InvalidNameException(f"invalid {kind} name {shown(name)}: {why}")


def _require_str(kind: str, name: object) -> str:
    if not isinstance(name, str):
        raise InvalidNameException(f"{kind} name must be a str, not {type(name).__name__}")
    if not name:
        raise InvalidNameException(f"{kind} name must not be empty")
    if "\x00" in name:
        raise _fail(kind, name, "contains a NUL character")
    return name


def _shaped(kind: str, name: str, longest: int, pattern: re.Pattern[str], alphabet: str) -> None:
    """Common first checks: a non-empty str of 3 to ``longest`` characters matching ``pattern``."""
    _require_str(kind, name)
    if not 3 <= len(name) <= longest:
        raise _fail(kind, name, f"must be 3 to {longest} characters long")
    if not pattern.match(name):
        raise _fail(kind, name, f"use {alphabet}, starting and ending with a letter or digit")


def _not_an_ip_address(kind: str, name: str) -> None:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return
    raise _fail(kind, name, "must not be formatted as an IP address")


def s3_bucket_name(name: str) -> None:
    """Amazon S3 general-purpose bucket naming rules."""
    _shaped("bucket", name, 63, _S3_BUCKET, "lowercase letters, digits, dots and hyphens")
    if ".." in name or ".-" in name or "-." in name:
        raise _fail("bucket", name, "dots may not be adjacent to each other or to hyphens")
    _not_an_ip_address("bucket", name)
    for prefix in ("xn--", "sthree-", "amzn-s3-demo-"):
        if name.startswith(prefix):
            raise _fail("bucket", name, f"must not start with {prefix!r}")
    for suffix in ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"):
        if name.endswith(suffix):
            raise _fail("bucket", name, f"must not end with {suffix!r}")


def azure_container_name(name: str) -> None:
    """Azure Blob container naming rules."""
    _shaped("container", name, 63, _AZURE_CONTAINER, "lowercase letters, digits and single hyphens")


def gcs_bucket_name(name: str) -> None:
    """Google Cloud Storage bucket naming rules."""
    _shaped("bucket", name, 222, _GCS_BUCKET, "lowercase letters, digits, dots, hyphens and underscores")
    parts = name.split(".")
    if "." not in name and len(name) > 63:
        raise _fail("bucket", name, "names without dots must be at most 63 characters long")
    if any(not 1 <= len(p) <= 63 for p in parts):
        raise _fail("bucket", name, "each dot-separated part must be 1 to 63 characters long")
    if name.startswith("goog") or "google" in name or "g00gle" in name:
        raise _fail("bucket", name, "must not start with 'goog' or contain 'google'")
    _not_an_ip_address("bucket", name)


def swift_container_name(name: str) -> None:
    """OpenStack Swift container naming rules."""
    _require_str("container", name)
    if "/" in name:
        raise _fail("container", name, "must not contain '/'")
    if len(name.encode("utf-8")) > 256:
        raise _fail("container", name, "must be at most 256 bytes in UTF-8")


def local_bucket_name(name: str) -> None:
    """LOCAL buckets are folder names: S3's rules keep them portable to every cloud."""
    s3_bucket_name(name)


def object_name_max_bytes(limit: int) -> NameRule:
    """A rule for object names: non-empty, no NUL, at most ``limit`` bytes of UTF-8."""

    def rule(name: str) -> None:
        _require_str("object", name)
        try:
            encoded = name.encode("utf-8")
        except UnicodeEncodeError:
            raise _fail("object", name, "is not valid Unicode (lone surrogate)") from None
        if len(encoded) > limit:
            raise _fail("object", name, f"must be at most {limit} bytes in UTF-8")

    return rule


def local_object_name(name: str) -> None:
    """LOCAL object names map to relative file paths that can never leave the bucket folder."""
    object_name_max_bytes(1024)(name)
    if name.startswith("/") or "\\" in name:
        raise _fail("object", name, "must be a relative path with '/' separators on LOCAL")
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            raise _fail("object", name, "must not have empty, '.' or '..' path segments on LOCAL")
        if len(segment.encode("utf-8")) > 255:
            raise _fail("object", name, "has a path segment longer than 255 bytes (a file name limit) on LOCAL")


def azure_blob_name(name: str) -> None:
    """Azure blob names: 1 to 1024 characters, and no path segment ending with a dot.

    Azure's rules say no path segment should end with a dot: the service trims such dots, and
    HTTP clients collapse ``.`` and ``..`` segments before the request is sent, so such a blob
    could be written under one name and never be read back under it.
    """
    _require_str("object", name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail("object", name, "is not valid Unicode (lone surrogate)") from None
    if len(name) > 1024:
        raise _fail("object", name, "must be at most 1024 characters on Azure")
    if any(segment.endswith(".") for segment in name.split("/")):
        raise _fail("object", name, "no '/'-separated segment may end with '.' on Azure (including '.' and '..')")

"""Awkward names and content types: what each server does differently is declared in
tests/conftest.py (NAME_DIFFERENCES and friends), never decided inside a test."""

from __future__ import annotations

import pytest

from cloudstore import CloudProvider, InvalidNameException
from tests.conftest import (
    CONTENT_TYPE_DIFFERENCES,
    KEY_AND_KEYS_UNDER_IT,
    NAME_DIFFERENCES,
    fresh_bucket,
    known_difference,
)
from tests.servers.base import RunningServer

AWKWARD_NAMES = [
    "folder-with-data/",
    "/leading-slash",
    "back\\slash",
    "double//slash",
    "dot/./segment",
    "dot-dot/../segment",
    "trailing-dot.",
    "bell\x07char",
    "tab\tand newline\n",
    "percent%20encoded",
    "query?and#fragment",
    " leading and trailing space ",
]


@pytest.mark.parametrize("name", AWKWARD_NAMES)
def test_awkward_names_round_trip_or_are_refused_by_the_rules(
    request: pytest.FixtureRequest, server: RunningServer, provider: CloudProvider, name: str
) -> None:
    """A name the provider's rules accept is stored, read and listed back exactly; one they refuse
    is refused before any request. Each name gets a fresh bucket: some break theirs."""
    try:
        provider._backend.check_object_name(name)
    except InvalidNameException:
        with fresh_bucket(provider) as bucket, pytest.raises(InvalidNameException):
            bucket.objects.create(name)
        return
    known_difference(request, server, NAME_DIFFERENCES.get(server.name, {}).get(name))
    with fresh_bucket(provider) as bucket:
        bucket.objects.create(name).upload(b"awkward")
        got = bucket.objects.get(name)
        assert got is not None and got.name == name
        assert got.read() == b"awkward"
        assert [obj.name for obj in bucket.objects] == [name]
        got.delete()
        assert list(bucket.objects) == []


def test_a_key_and_keys_under_it(
    request: pytest.FixtureRequest, server: RunningServer, provider: CloudProvider
) -> None:
    known_difference(request, server, KEY_AND_KEYS_UNDER_IT.get(server.name))
    with fresh_bucket(provider) as bucket:
        bucket.objects.create("a").upload(b"file")
        bucket.objects.create("a/b").upload(b"under it")
        assert sorted(obj.name for obj in bucket.objects) == ["a", "a/b"]
        assert bucket.objects.get("a").read() == b"file"  # type: ignore[union-attr]


def test_content_type_is_stored_as_sent(
    request: pytest.FixtureRequest, server: RunningServer, provider: CloudProvider
) -> None:
    known_difference(request, server, CONTENT_TYPE_DIFFERENCES.get(server.name))
    with fresh_bucket(provider) as bucket:
        bucket.objects.create("page").upload(b"<html><body>not sniffed</body></html>")
        bucket.objects.create("typed").upload(b"%PDF-1.4 not a pdf", content_type="application/x-custom")
        assert bucket.objects.get("page").content_type == "application/octet-stream"  # type: ignore[union-attr]
        assert bucket.objects.get("typed").content_type == "application/x-custom"  # type: ignore[union-attr]

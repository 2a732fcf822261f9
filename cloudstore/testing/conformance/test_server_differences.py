"""Awkward names and content types: what each store does differently is declared in its target's
:class:`~cloudstore.testing.Quirks`, never decided inside a case."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cloudstore import CloudProvider, InvalidNameException
from cloudstore.testing import Quirks, backend_of, fresh_bucket

KnownDifference = Callable[[str | None], None]

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
    known_difference: KnownDifference, quirks: Quirks, provider: CloudProvider, name: str
) -> None:
    """A name the provider's rules accept is stored, read and listed back exactly; one they refuse
    is refused before any request. Each name gets a fresh bucket: some break theirs."""
    try:
        backend_of(provider).check_object_name(name)
    except InvalidNameException:
        with fresh_bucket(provider) as bucket, pytest.raises(InvalidNameException):
            bucket.objects.create(name)
        return
    known_difference(quirks.name_differences.get(name))
    with fresh_bucket(provider) as bucket:
        bucket.objects.create(name).upload(b"awkward")
        got = bucket.objects.get(name)
        assert got is not None and got.name == name
        assert got.read() == b"awkward"
        assert [obj.name for obj in bucket.objects] == [name]
        got.delete()
        assert list(bucket.objects) == []


def test_a_key_and_keys_under_it(known_difference: KnownDifference, quirks: Quirks, provider: CloudProvider) -> None:
    known_difference(quirks.key_and_keys_under_it)
    with fresh_bucket(provider) as bucket:
        bucket.objects.create("a").upload(b"file")
        bucket.objects.create("a/b").upload(b"under it")
        assert sorted(obj.name for obj in bucket.objects) == ["a", "a/b"]
        assert bucket.objects.get("a").read() == b"file"  # type: ignore[union-attr]


def test_content_type_is_stored_as_sent(
    known_difference: KnownDifference, quirks: Quirks, provider: CloudProvider
) -> None:
    known_difference(quirks.content_type_differs)
    with fresh_bucket(provider) as bucket:
        bucket.objects.create("page").upload(b"<html><body>not sniffed</body></html>")
        bucket.objects.create("typed").upload(b"%PDF-1.4 not a pdf", content_type="application/x-custom")
        assert bucket.objects.get("page").content_type == "application/octet-stream"  # type: ignore[union-attr]
        assert bucket.objects.get("typed").content_type == "application/x-custom"  # type: ignore[union-attr]

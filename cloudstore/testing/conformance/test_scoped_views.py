"""Prefix views (``bucket.scoped("tenant-a/")``): every operation relative to the prefix, none outside it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from cloudstore import Bucket, InvalidNameException, InvalidParamException, PermissionDeniedException
from cloudstore.testing import Spied


def _keys(bucket: Bucket) -> list[str]:
    return sorted(obj.name for obj in bucket.objects)


def test_names_are_relative_to_the_prefix(bucket: Bucket) -> None:
    tenant = bucket.scoped("tenant-a")
    assert tenant.scope == "tenant-a/"
    tenant.objects.create("models/1.bin").upload(b"one")
    tenant.objects.create("models/2.bin").upload(b"two")
    bucket.objects.create("tenant-b/models/1.bin").upload(b"other tenant")
    bucket.objects.create("tenant-ab.txt").upload(b"a sibling, not inside")

    assert _keys(bucket) == ["tenant-a/models/1.bin", "tenant-a/models/2.bin", "tenant-ab.txt", "tenant-b/models/1.bin"]
    assert _keys(tenant) == ["models/1.bin", "models/2.bin"]
    got = tenant.objects.get("models/1.bin")
    assert got is not None and got.name == "models/1.bin" and got.key == "tenant-a/models/1.bin"
    assert got.read() == b"one"
    assert tenant.objects.get("tenant-b/models/1.bin") is None
    page = tenant.objects.list(delimiter="/")
    assert list(page.prefixes) == ["models/"]
    assert [o.name for o in tenant.objects.list(prefix="models/", limit=1)] == ["models/1.bin"]
    assert [o.name for o in tenant.objects.find(prefix="models/2")] == ["models/2.bin"]


def test_views_nest_and_pickle(bucket: Bucket) -> None:
    inner = bucket.scoped("a/").scoped("b")
    assert inner.scope == "a/b/"
    inner.objects.create("c.txt").upload(b"c")
    assert bucket.objects.get("a/b/c.txt").read() == b"c"  # type: ignore[union-attr]
    again = pickle.loads(pickle.dumps(inner))
    assert (again.name, again.scope) == (inner.name, inner.scope)
    assert inner != bucket.scoped("a/b/c")


@pytest.mark.parametrize("name", ["../escape.txt", "x/../../escape.txt", "/absolute.txt", "./here.txt", "a/./b", ""])
def test_names_outside_are_refused(bucket: Bucket, name: str) -> None:
    tenant = bucket.scoped("tenant-a/")
    with pytest.raises(InvalidNameException):
        tenant.objects.create(name)
    with pytest.raises(InvalidNameException):
        tenant.objects.get(name)
    assert list(bucket.objects) == []


@pytest.mark.parametrize("prefix", ["", "/", "../x", "/abs", "a/../b"])
def test_bad_scopes_refused(bucket: Bucket, prefix: str) -> None:
    with pytest.raises((InvalidNameException, InvalidParamException)):
        bucket.scoped(prefix)


def test_copy_delete_and_delete_prefix_stay_inside(bucket: Bucket) -> None:
    tenant = bucket.scoped("t/")
    bucket.objects.create("keep.txt").upload(b"outside")
    src = tenant.objects.create("a.txt")
    src.upload(b"A")
    copied = src.copy_to(tenant, "b.txt")
    assert copied.name == "b.txt" and copied.key == "t/b.txt"
    other = bucket.scoped("u/")
    moved = src.copy_to(other)  # the same relative name, in the other view
    assert moved.key == "u/a.txt"
    tenant.objects.get("a.txt").delete()  # type: ignore[union-attr]
    assert _keys(tenant) == ["b.txt"]
    report = tenant.objects.delete_prefix("")
    assert not report.failed
    assert _keys(bucket) == ["keep.txt", "u/a.txt"]
    tenant.objects.create("x.txt").upload(b"x")
    tenant.objects.delete_many(["x.txt"])
    assert _keys(bucket) == ["keep.txt", "u/a.txt"]
    with pytest.raises(InvalidParamException):
        tenant.delete(delete_contents=True)
    assert bucket.exists()


def test_bulk_directories_in_a_view(bucket: Bucket, tmp_path: Path) -> None:
    source = tmp_path / "src"
    (source / "sub").mkdir(parents=True)
    (source / "one.txt").write_bytes(b"1")
    (source / "sub" / "two.txt").write_bytes(b"2")
    tenant = bucket.scoped("tenant/")
    assert not tenant.upload_dir(source, "data").failed
    assert _keys(bucket) == ["tenant/data/one.txt", "tenant/data/sub/two.txt"]
    target = tmp_path / "dst"
    assert not tenant.download_dir("data", target).failed
    assert (target / "sub" / "two.txt").read_bytes() == b"2"
    with pytest.raises(InvalidNameException):
        tenant.upload_dir(source, "../escape")


def test_bulk_reports_of_a_view_name_objects_relative_to_it(bucket: Bucket, spied: Spied) -> None:
    """What a view's bulk jobs report (failures, by name) is relative to it, as its listings are."""
    bucket.objects.create("outside.txt").upload(b"outside")
    view = spied.provider.storage.buckets.get(bucket.name).scoped("t/")  # type: ignore[union-attr]
    for name in ("a.txt", "b.txt", "sub/c.txt"):
        view.objects.create(name).upload(name.encode())

    report = view.objects.delete_many(["a.txt", "../outside.txt", "/outside.txt"])
    assert sorted(failure.name for failure in report.failed) == ["../outside.txt", "/outside.txt"]
    assert all(isinstance(failure.error, InvalidNameException) for failure in report.failed)
    assert report.deleted == 1
    assert _keys(bucket) == ["outside.txt", "t/b.txt", "t/sub/c.txt"]

    refused = PermissionDeniedException("injected refusal")
    spied.backend.fail("delete_objects", refused, times=None)
    spied.backend.fail("delete_object", refused, times=None)
    report = view.objects.delete_many(["b.txt", "sub/c.txt"])
    assert sorted(failure.name for failure in report.failed) == ["b.txt", "sub/c.txt"]
    report = view.objects.delete_prefix("sub/")
    assert [failure.name for failure in report.failed] == ["c.txt"]  # relative to the prefix, as outside a view
    spied.backend.reset()
    assert _keys(bucket) == ["outside.txt", "t/b.txt", "t/sub/c.txt"]


def test_listings_of_a_view_name_objects_and_folders_relative_to_it(bucket: Bucket) -> None:
    view = bucket.scoped("tenant/")
    for name in ("a/1.txt", "a/2.txt", "b/3.txt", "top.txt"):
        view.objects.create(name).upload(b"x")
    page = view.objects.list(delimiter="/")
    assert [o.name for o in page] == ["top.txt"] and list(page.prefixes) == ["a/", "b/"]
    page = view.objects.list(prefix="a/", delimiter="/")
    assert [o.name for o in page] == ["a/1.txt", "a/2.txt"] and list(page.prefixes) == []
    first = view.objects.list(limit=2)
    rest = view.objects.list(marker=first.marker)  # a marker of the view goes back to the view
    assert [o.name for o in first] + [o.name for o in rest] == ["a/1.txt", "a/2.txt", "b/3.txt", "top.txt"]
    copied = view.objects.get("top.txt").copy_to(view, "copies/top.txt")  # type: ignore[union-attr]
    assert (copied.name, copied.key) == ("copies/top.txt", "tenant/copies/top.txt")


@pytest.mark.needs("signed_urls")
def test_signed_url_of_a_view_names_the_whole_key(bucket: Bucket) -> None:
    import urllib.request

    tenant = bucket.scoped("tenant/")
    tenant.objects.create("shared.txt").upload(b"shared")
    url = tenant.objects.get("shared.txt").generate_url(expires_in=300)  # type: ignore[union-attr]
    assert "tenant/shared.txt" in url or "tenant%2Fshared.txt" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"shared"

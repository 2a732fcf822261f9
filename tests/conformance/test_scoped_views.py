"""Prefix views (``bucket.scoped("tenant-a/")``): every operation relative to the prefix, none outside it."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from cloudstore import Bucket, InvalidNameException, InvalidParamException


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


@pytest.mark.needs("signed_urls")
def test_signed_url_of_a_view_names_the_whole_key(bucket: Bucket) -> None:
    import urllib.request

    tenant = bucket.scoped("tenant/")
    tenant.objects.create("shared.txt").upload(b"shared")
    url = tenant.objects.get("shared.txt").generate_url(expires_in=300)  # type: ignore[union-attr]
    assert "tenant/shared.txt" in url or "tenant%2Fshared.txt" in url
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"shared"

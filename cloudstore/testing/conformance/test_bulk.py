"""Bulk operations on every provider: folders up and down, sync, batch delete (cloudstore.bulk)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import cloudstore
from cloudstore import (
    Bucket,
    CloudProvider,
    CloudProviderFactory,
    InvalidParamException,
    ProviderList,
    ThrottledException,
)
from cloudstore.bulk import copy_tree
from cloudstore.registry import spec_for
from cloudstore.testing import Spied, Target, fresh_bucket, unique_name

#: A tree with nested folders, an empty folder, an empty file and names in several scripts.
TREE = {
    "a.txt": b"alpha",
    "empty-file": b"",
    "sub/b.bin": b"\x00\x01\x02 bytes",
    "sub/deeper/c.txt": b"charlie",
    "unicodé/ファイル-名.txt": "unicode content é".encode(),
    "with space/x y.txt": b"spaces",
    "a+b=c&d.txt": b"punctuation",
}


def make_tree(root: Path, files: dict[str, bytes] = TREE) -> Path:
    for rel, data in files.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "empty-folder" / "nested-empty").mkdir(parents=True)
    return root


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def stored(bucket: Bucket, prefix: str = "") -> dict[str, bytes]:
    return {o.name[len(prefix) :]: o.read() for o in bucket.objects.find(prefix=prefix)}


def address(bucket: Bucket, prefix: str = "") -> str:
    return f"{spec_for(bucket.provider.PROVIDER_ID).id}://{bucket.name}/{prefix}"


def on(bucket: Bucket) -> dict[ProviderList | str, CloudProvider]:
    return {bucket.provider.PROVIDER_ID: bucket.provider}


def test_upload_and_download_a_tree(bucket: Bucket, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    seen: list[int] = []
    report = bucket.upload_dir(source, "up", progress=seen.append)
    assert report.ok, report.failed
    assert (report.copied, report.bytes) == (len(TREE), sum(map(len, TREE.values())))
    assert sum(seen) == report.bytes  # one progress for the whole job
    # Object stores have no folders: the empty ones wrote nothing.
    assert stored(bucket, "up/") == TREE
    assert set(stored(bucket)) == {f"up/{rel}" for rel in TREE}

    target = tmp_path / "down" / "new"
    report = bucket.download_dir("up/", target)
    assert report.ok, report.failed
    assert report.copied == len(TREE)
    assert read_tree(target) == TREE
    assert not (target / "empty-folder").exists()  # only the folders of the files written


def test_include_and_exclude_match_the_relative_path(bucket: Bucket, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    report = bucket.upload_dir(source, include=["*.txt", "*.bin"], exclude="sub/deeper/*")
    assert report.ok, report.failed
    expected = {rel for rel in TREE if rel.endswith((".txt", ".bin")) and not rel.startswith("sub/deeper/")}
    assert set(stored(bucket)) == expected
    target = tmp_path / "down"
    assert bucket.download_dir("", target, include="sub/*").ok
    assert set(read_tree(target)) == {"sub/b.bin"}


def test_sync_copies_changes_and_deletes_extras(bucket: Bucket, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src")
    first = cloudstore.sync(source, address(bucket, "mirror"), providers=on(bucket))
    assert first.ok, first.failed
    assert (first.copied, first.skipped) == (len(TREE), 0)

    again = cloudstore.sync(source, address(bucket, "mirror"), providers=on(bucket))
    assert (again.copied, again.skipped, again.deleted) == (0, len(TREE), 0)

    # Same size, new content, and a modification time long before the upload: only the
    # checksum tells that it changed.
    changed = source / "sub" / "b.bin"
    changed.write_bytes(b"\x00\x01\x02 BYTES")
    os.utime(changed, (1_000_000_000, 1_000_000_000))
    (source / "a.txt").unlink()
    (source / "new.txt").write_bytes(b"new")
    bucket.objects.create("mirror/extra-only-there").upload(b"x")

    dry = cloudstore.sync(source, address(bucket, "mirror"), delete=True, dry_run=True, providers=on(bucket))
    assert dry.dry_run and dry.ok
    assert sorted(dry.actions) == [
        ("copy", "new.txt"),
        ("copy", "sub/b.bin"),
        ("delete", "a.txt"),
        ("delete", "extra-only-there"),
    ]
    assert stored(bucket, "mirror/")["sub/b.bin"] == TREE["sub/b.bin"]  # the dry run changed nothing

    report = cloudstore.sync(source, address(bucket, "mirror"), delete=True, providers=on(bucket))
    assert report.ok, report.failed
    assert (report.copied, report.deleted, report.skipped) == (2, 2, len(TREE) - 2)
    assert stored(bucket, "mirror/") == read_tree(source)


def test_sync_down_uses_checksums_and_deletes_local_extras(bucket: Bucket, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    assert bucket.upload_dir(tmp_path / "src").ok
    target = tmp_path / "down"
    assert cloudstore.sync(bucket, target).copied == len(TREE)

    # A local edit of the same size, dated in the future: by time alone it would look newer.
    edited = target / "sub" / "deeper" / "c.txt"
    edited.write_bytes(b"CHARLIE")
    later = time.time() + 3600
    os.utime(edited, (later, later))
    (target / "only-here.txt").write_bytes(b"extra")

    report = cloudstore.sync(bucket, target, delete=True)
    assert report.ok, report.failed
    assert (report.copied, report.deleted, report.skipped) == (1, 1, len(TREE) - 1)
    assert read_tree(target) == TREE


def test_partial_failure_is_reported_and_a_rerun_finishes(bucket: Bucket, tmp_path: Path) -> None:
    source = make_tree(tmp_path / "src", {"good/one.txt": b"1", "good/two.txt": b"2"})
    (source / "unreadable.txt").symlink_to(tmp_path / "missing-target")
    too_long = Path(*["d" * 220] * 5, "file.txt")  # over 1024 bytes: a name no service takes
    (source / too_long).parent.mkdir(parents=True)
    (source / too_long).write_bytes(b"long")

    report = cloudstore.sync(source, address(bucket), providers=on(bucket))
    assert report.copied == 2
    failed = {f.name: f for f in report.failed}
    assert set(failed) == {"unreadable.txt", too_long.as_posix()}
    assert "No such file" in failed["unreadable.txt"].reason
    assert failed[too_long.as_posix()].reason.startswith("InvalidNameException")
    assert set(stored(bucket)) == {"good/one.txt", "good/two.txt"}

    # Fix what failed and run the same sync again: only that is copied.
    (source / "unreadable.txt").unlink()
    (source / "unreadable.txt").write_bytes(b"readable now")
    (source / too_long).unlink()
    rerun = cloudstore.sync(source, address(bucket), providers=on(bucket))
    assert rerun.ok, rerun.failed
    assert (rerun.copied, rerun.skipped) == (1, 2)


def test_download_failure_of_one_item_keeps_the_others(bucket: Bucket, tmp_path: Path) -> None:
    for name in ("x/1.txt", "x/2.txt", "x/3.txt"):
        bucket.objects.create(name).upload(name.encode())
    target = tmp_path / "down"
    (target / "2.txt").mkdir(parents=True)  # a folder where a file is to go
    report = bucket.download_dir("x", target)
    assert [f.name for f in report.failed] == ["2.txt"]
    assert report.copied == 2
    assert (target / "1.txt").read_bytes() == b"x/1.txt"
    assert (target / "3.txt").read_bytes() == b"x/3.txt"


def test_sync_between_buckets_and_providers(provider: CloudProvider, bucket: Bucket, tmp_path: Path) -> None:
    make_tree(tmp_path / "src")
    assert bucket.upload_dir(tmp_path / "src", "from").ok
    with fresh_bucket(provider) as other:
        # Same provider: copied inside the service.
        report = cloudstore.sync((bucket, "from"), (other, "to"))
        assert report.ok and report.copied == len(TREE), report.failed
        assert stored(other, "to/") == TREE
        assert cloudstore.sync((bucket, "from"), (other, "to")).skipped == len(TREE)
    # Another provider (a LOCAL folder): the bytes stream through, checksums still compare.
    local = CloudProviderFactory().create_provider(ProviderList.LOCAL, {"local_root": str(tmp_path / "root")})
    elsewhere = local.storage.buckets.create("elsewhere")
    report = copy_tree((bucket, "from"), (elsewhere, ""))
    assert report.ok and report.copied == len(TREE), report.failed
    assert stored(elsewhere) == TREE
    again = cloudstore.sync((bucket, "from"), elsewhere)
    assert (again.copied, again.skipped) == (0, len(TREE))


def test_delete_many_and_delete_prefix(bucket: Bucket) -> None:
    names = [f"keep/{i}" for i in range(3)] + [f"gone/{i:03d}" for i in range(40)] + ["gone-not/x"]
    for name in names:
        bucket.objects.create(name).upload(b"x")
    report = bucket.objects.delete_many(["gone/000", "gone/001", "never-there"])
    assert report.ok, report.failed
    assert report.deleted == 3  # a name that is not there counts as deleted
    report = bucket.objects.delete_prefix("gone/")
    assert report.ok, report.failed
    assert report.deleted == 38
    assert sorted(o.name for o in bucket.objects) == ["gone-not/x", "keep/0", "keep/1", "keep/2"]


@pytest.mark.parametrize("failing", ["every item", "the whole request"])
def test_what_a_batch_failed_for_a_passing_reason_is_deleted_one_by_one(spied: Spied, failing: str) -> None:
    """As when a service's batch endpoint keeps answering 500 (Azurite's under a SAS)."""
    provider, spy = spied
    made = provider.storage.buckets.create(unique_name())
    try:
        names = [f"busy/{i}" for i in range(3)]
        for name in names:
            made.objects.create(name).upload(b"x")
        spy.reset()
        if failing == "every item":
            spy.after("delete_objects", lambda call, _: [(name, ThrottledException("busy")) for name in call.args[1]])
        else:
            spy.fail("delete_objects", ThrottledException("busy"), times=None)
        report = made.objects.delete_many(names)
        assert report.ok and report.deleted == len(names), report.failed
        assert spy.count("delete_object") == len(names)
        assert list(made.objects) == []
    finally:
        spy.reset()
        made.delete(delete_contents=True)


def test_single_deletes_stop_when_the_service_is_down(spied: Spied) -> None:
    provider, spy = spied
    made = provider.storage.buckets.create(unique_name())
    try:
        names = [f"down/{i}" for i in range(3)]
        for name in names:
            made.objects.create(name).upload(b"x")
        spy.reset()
        spy.fail("delete_objects", ThrottledException("busy"), times=None)
        spy.fail("delete_object", ThrottledException("busy"), times=None)
        report = made.objects.delete_many(names)
        assert sorted(f.name for f in report.failed) == names and report.deleted == 0
        batches = -(-len(names) // provider.features.max_batch_delete)
        attempts = provider.retry_policy.max_attempts
        # In each batch, after one object failed for good no other is tried.
        assert spy.count("delete_object") == batches * attempts
    finally:
        spy.reset()
        made.delete(delete_contents=True)


def test_delete_prefix_removes_large_objects_whole(cloudstore_target: Target, bucket: Bucket) -> None:
    bucket.objects.create("big/multipart").upload(os.urandom(7 * 1024 * 1024))  # parts, with TEST_TRANSFER
    bucket.objects.create("big/small").upload(b"small")
    report = bucket.objects.delete_prefix("big/")
    assert report.ok and report.deleted == 2, report.failed
    assert list(bucket.objects) == []
    if cloudstore_target.leftovers is not None:  # nothing of the large object is left behind (segments, parts)
        assert cloudstore_target.leftovers(bucket.name) == []


def test_bad_arguments_are_refused_before_any_work(bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(InvalidParamException):
        bucket.upload_dir(tmp_path / "missing")
    with pytest.raises(InvalidParamException):
        bucket.upload_dir(tmp_path, concurrency=0)
    with pytest.raises(InvalidParamException):
        bucket.upload_dir(tmp_path, max_requests_per_second=-1)
    with pytest.raises(InvalidParamException):
        bucket.objects.delete_many("one-name-not-a-list")
    with pytest.raises(InvalidParamException):
        cloudstore.sync(tmp_path, tmp_path / "other")


def test_sync_compares_objects_uploaded_in_parts_by_checksum(bucket: Bucket, tmp_path: Path) -> None:
    """A file above TEST_TRANSFER's threshold goes up in parts: its checksum is the part-wise one
    (S3, Swift), the MD5 the engine stores (Azure) or GCS's CRC32C of a composed object; sync
    computes the same over the local file."""
    source = tmp_path / "src"
    source.mkdir()
    big = source / "big.bin"
    big.write_bytes(os.urandom(7 * 1024 * 1024))
    assert cloudstore.sync(source, (bucket, "p")).copied == 1
    again = cloudstore.sync(source, (bucket, "p"))
    assert (again.copied, again.skipped) == (0, 1), again.failed
    with big.open("r+b") as handle:  # one byte changed, same size, dated long ago
        handle.seek(6 * 1024 * 1024)
        handle.write(b"\xff" if handle.read(1) != b"\xff" else b"\x00")
    os.utime(big, (1_000_000_000, 1_000_000_000))
    changed = cloudstore.sync(source, (bucket, "p"))
    assert (changed.copied, changed.skipped) == (1, 0), changed.failed
    assert bucket.objects.get("p/big.bin").read() == big.read_bytes()  # type: ignore[union-attr]

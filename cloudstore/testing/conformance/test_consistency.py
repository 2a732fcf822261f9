"""Same call, same result: behaviour that once differed per provider (issue 12), on every provider."""

from __future__ import annotations

import io
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from cloudstore import (
    Bucket,
    CloudProvider,
    CloudProviderFactory,
    CloudStoreException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
)
from cloudstore.testing import Target, fresh_bucket

# --- uploads of files whose size the file system does not know --------------------------------


def test_upload_from_a_fifo_stores_everything_written_to_it(bucket: Bucket, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    payload = os.urandom(300_000)

    def feed() -> None:
        with open(fifo, "wb") as writer:
            writer.write(payload)

    writer_thread = threading.Thread(target=feed)
    writer_thread.start()
    obj = bucket.objects.create("from-fifo")
    obj.upload_from_file(fifo)
    writer_thread.join()
    assert obj.size == len(payload)
    assert bucket.objects.get("from-fifo").read() == payload  # type: ignore[union-attr]


@pytest.mark.skipif(not Path("/proc/version").exists(), reason="needs Linux /proc (files that report size 0)")
def test_upload_from_a_proc_file_is_not_empty(bucket: Bucket) -> None:
    expected = Path("/proc/version").read_bytes()
    assert expected and os.stat("/proc/version").st_size == 0
    obj = bucket.objects.create("proc-version")
    obj.upload_from_file("/proc/version")
    assert obj.size == len(expected)
    assert bucket.objects.get("proc-version").read() == expected  # type: ignore[union-attr]


# --- concurrent writers of one key --------------------------------------------------------------


def _write_together(bucket: Bucket, round_: int, writers: int) -> None:
    """``writers`` threads upload the key "raced" at once, each with its own data and properties."""
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            start.wait()
            bucket.objects.create("raced").upload(
                f"writer {writer} round {round_:02d}".encode(),
                content_type=f"text/x-writer-{writer}",
                metadata={"writer": str(writer)},
            )
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=write, args=(writer,)) for writer in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_concurrent_writers_leave_one_whole_version(bucket: Bucket) -> None:
    """Three writers of one key, 60 rounds: the object is always one writer's data with that
    writer's content type and metadata (never unreadable, never another writer's properties)."""
    for round_ in range(60):
        _write_together(bucket, round_, 3)
        got = bucket.objects.get("raced")
        assert got is not None
        data = got.read()
        writer = data.split()[1].decode()
        assert data == f"writer {writer} round {round_:02d}".encode()
        assert (got.content_type, got.metadata) == (f"text/x-writer-{writer}", {"writer": writer}), round_


# --- download targets ---------------------------------------------------------------------------


@pytest.fixture
def stored(bucket: Bucket) -> bytes:
    data = b"downloaded content"
    bucket.objects.create("dl").upload(data)
    return data


def test_download_writes_through_a_symlink(bucket: Bucket, stored: bytes, tmp_path: Path) -> None:
    real = tmp_path / "real.bin"
    real.write_bytes(b"old")
    link = tmp_path / "link.bin"
    link.symlink_to(real)
    bucket.objects.create("dl").download_to_file(link)
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert real.read_bytes() == stored
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "new-target")
    bucket.objects.create("dl").download_to_file(dangling)
    assert dangling.is_symlink() and (tmp_path / "new-target").read_bytes() == stored


def test_download_refuses_special_files(bucket: Bucket, stored: bytes, tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    device_link = tmp_path / "stdout"  # like /dev/stdout: a link to a device
    device_link.symlink_to("/dev/null")
    for special in (fifo, device_link):
        with pytest.raises(InvalidParamException, match="not a regular file"):
            bucket.objects.create("dl").download_to_file(special)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert device_link.is_symlink() and stat.S_ISCHR(os.stat("/dev/null").st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "stdout"]  # no temporary file left


def test_download_keeps_an_existing_files_mode(bucket: Bucket, stored: bytes, tmp_path: Path) -> None:
    private = tmp_path / "private.bin"
    private.write_bytes(b"old secret")
    private.chmod(0o600)
    bucket.objects.create("dl").download_to_file(private)
    assert private.read_bytes() == stored
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    umask = os.umask(0o027)
    try:
        fresh = tmp_path / "fresh.bin"
        bucket.objects.create("dl").download_to_file(fresh)
    finally:
        os.umask(umask)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o640


def test_download_into_a_missing_or_unwritable_folder(bucket: Bucket, stored: bytes, tmp_path: Path) -> None:
    for target in (tmp_path / "missing" / "x.bin", Path("/proc/version-copy")):
        with pytest.raises(InvalidParamException) as info:
            bucket.objects.create("dl").download_to_file(target)
        assert str(target) in str(info.value) and "cloudstore-part" not in str(info.value)


# --- ranges -------------------------------------------------------------------------------------


def test_ranges_past_the_end_return_what_exists(bucket: Bucket) -> None:
    obj = bucket.objects.create("ten")
    obj.upload(b"0123456789")
    assert obj.read(0, 1023) == b"0123456789"
    assert obj.read(5, 100) == b"56789"
    assert obj.read(9, 9) == b"9"
    assert obj.read(10, 20) == b""
    assert obj.read(start=10) == b""
    assert obj.read(start=1000) == b""
    assert obj.read(end=10_000) == b"0123456789"


def test_ranges_of_an_empty_object(bucket: Bucket) -> None:
    obj = bucket.objects.create("empty")
    obj.upload(b"")
    assert obj.read(0, 0) == b""
    assert obj.read(start=0) == b""
    assert obj.read(end=5) == b""
    assert obj.read() == b""


@pytest.mark.parametrize("start, end", [("1", "2"), (1.0, None), (True, 3), (None, "9"), (-1, None)])
def test_range_arguments_must_be_whole_numbers(bucket: Bucket, start: Any, end: Any) -> None:
    obj = bucket.objects.create("ten")
    obj.upload(b"0123456789")
    with pytest.raises(InvalidParamException):
        obj.read(start, end)


# --- handles of overwritten objects -------------------------------------------------------------


def test_a_handle_reads_the_current_version_and_follows_it(bucket: Bucket, tmp_path: Path) -> None:
    bucket.objects.create("v").upload(b"first version", metadata={"v": "1"})
    handle = bucket.objects.get("v")
    assert handle is not None and handle.size == 13 and handle.metadata == {"v": "1"}

    bucket.objects.create("v").upload(b"2nd", metadata={"v": "2"})
    assert handle.read(0, 1) == b"2n"
    assert handle.size == 3 and handle.metadata == {"v": "2"}

    bucket.objects.create("v").upload(b"third!", metadata={"v": "3"})
    assert handle.read() == b"third!"
    assert handle.size == 6 and handle.metadata == {"v": "3"}

    bucket.objects.create("v").upload(b"4", metadata={"v": "4"})
    assert b"".join(handle.iter_content()) == b"4"
    assert handle.size == 1 and handle.metadata == {"v": "4"}

    bucket.objects.create("v").upload(b"fifth", metadata={"v": "5"})
    handle.download_to_file(tmp_path / "v")
    assert (tmp_path / "v").read_bytes() == b"fifth"
    assert handle.size == 5 and handle.metadata == {"v": "5"}


# --- the same call on every provider ------------------------------------------------------------


def test_copy_onto_itself_keeps_everything(bucket: Bucket) -> None:
    obj = bucket.objects.create("self.txt")
    obj.upload(b"copy me onto me", content_type="text/plain", metadata={"keep": "yes"})
    copied = obj.copy_to(bucket)
    assert copied.name == "self.txt" and copied.read() == b"copy me onto me"
    assert copied.content_type == "text/plain" and copied.metadata == {"keep": "yes"}


def test_handles_of_a_deleted_bucket(provider: CloudProvider) -> None:
    with fresh_bucket(provider) as gone:
        gone.objects.create("x").upload(b"x")
        handle = gone.objects.create("x")
        gone.delete(delete_contents=True)
        assert gone.objects.get("x") is None
        assert not handle.exists()
        with pytest.raises(NotFoundException):
            handle.read()
        with pytest.raises(NotFoundException):
            handle.upload(b"into nothing")


def test_provider_ids_in_any_case(cloudstore_target: Target) -> None:
    made = CloudProviderFactory().create_provider(
        cloudstore_target.provider.upper(), cloudstore_target.provider_config()
    )
    assert cloudstore_target.provider == made.PROVIDER_ID
    made.close()


# --- properties: one rule, checked before any request -------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain\r\nX-Injected: 1", "text/plain\n", "a\x00b", " text/plain", "", "tëxt/plain", 5],
)
def test_bad_content_types_are_refused_before_any_request(bucket: Bucket, content_type: Any) -> None:
    with pytest.raises(InvalidParamException, match="content_type"):
        bucket.objects.create("ct").upload(b"x", content_type=content_type)
    assert bucket.objects.get("ct") is None


@pytest.mark.parametrize(
    "metadata, expected",
    [
        ({"k": " v"}, "leading or trailing"),
        ({"k": "v "}, "leading or trailing"),
        ({"k": ""}, "non-empty"),
        ({"k": "line\r\nbreak"}, "printable"),
        ({"a": "1", "A": "2"}, "case-insensitive"),
        ({"k": "x" * 257}, "longer than 256"),
        ({f"key{i}": "v" * 200 for i in range(12)}, "at most 2048 bytes"),
        ([("k", "v")], "must be a dict"),
        ({"k": 5}, "must be str"),
    ],
)
def test_bad_metadata_is_refused_before_any_request(bucket: Bucket, metadata: Any, expected: str) -> None:
    with pytest.raises(InvalidParamException, match=expected):
        bucket.objects.create("md").upload(b"x", metadata=metadata)
    assert bucket.objects.get("md") is None


def test_metadata_round_trips_the_same_everywhere(bucket: Bucket) -> None:
    given = {
        "Owner": "Data Team",  # keys come back lowercase
        "spaces": "a  b   c",
        "punctuation": "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~",
        "long": "y" * 256,
        "digits_0": "0",
    }
    obj = bucket.objects.create("md")
    obj.upload(b"x", metadata=given)
    expected = {key.lower(): value for key, value in given.items()}
    assert bucket.objects.get("md").metadata == expected  # type: ignore[union-attr]
    (listed,) = bucket.objects.list()
    assert listed.metadata == expected
    assert obj.copy_to(bucket, "md-copy").metadata == expected


# --- errors that stay in the tree ---------------------------------------------------------------


def test_text_streams_are_uploaded_as_utf8(bucket: Bucket, tmp_path: Path) -> None:
    text = "héllo wörld ✓\n" * 1000
    bucket.objects.create("stringio").upload(io.StringIO(text))  # type: ignore[arg-type]
    source = tmp_path / "text.txt"
    source.write_text(text, encoding="utf-8")
    with open(source, encoding="utf-8") as handle:
        bucket.objects.create("textfile").upload(handle)  # type: ignore[arg-type]
    for name in ("stringio", "textfile"):
        got = bucket.objects.get(name)
        assert got is not None and got.read() == text.encode("utf-8") and got.size == len(text.encode("utf-8"))


def test_a_raising_progress_callback_abandons_the_transfer(bucket: Bucket, tmp_path: Path) -> None:
    """The callback's own exception comes out unchanged (it is the caller's); a download then
    leaves nothing behind."""
    bucket.objects.create("p").upload(b"progress")

    def explode(amount: int) -> None:
        raise KeyError("from the callback")

    target = tmp_path / "p.out"
    with pytest.raises(KeyError, match="from the callback"):
        bucket.objects.create("p").download_to_file(target, progress=explode)
    assert list(tmp_path.iterdir()) == []


def test_long_names_are_not_repeated_in_full(bucket: Bucket) -> None:
    name = "n" * 1025
    with pytest.raises(InvalidNameException) as info:
        bucket.objects.create(name)
    assert len(str(info.value)) < 200 and "1025" in str(info.value)
    with pytest.raises(CloudStoreException) as copy_info:
        bucket.objects.create("ok").copy_to(bucket, "m" * 5000)
    assert len(str(copy_info.value)) < 200

"""cloudstore's fsspec filesystem on every provider: what fsspec's abstract suite does not cover."""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pytest
from fsspec.callbacks import Callback

from cloudstore import Bucket, CloudProvider, PreconditionFailedException
from cloudstore.fsspec import CloudStoreFileSystem
from cloudstore.testing import Quirks
from tests.conftest import TEST_TRANSFER, unique_name
from tests.support.servers.base import RunningServer


@pytest.fixture
def fs(provider: CloudProvider) -> CloudStoreFileSystem:
    return CloudStoreFileSystem(provider=provider)


def storage_options(server: RunningServer) -> dict[str, Any]:
    return {"provider": server.name, "config": {**server.config, "transfer_config": TEST_TRANSFER}}


def test_registered_through_the_entry_point() -> None:
    declared = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="fsspec.specs")}
    assert declared.get("cloudstore") == "cloudstore.fsspec:CloudStoreFileSystem"
    assert fsspec.get_filesystem_class("cloudstore") is CloudStoreFileSystem


def test_urls_with_storage_options(bucket: Bucket, server: RunningServer) -> None:
    options = storage_options(server)
    fs = fsspec.filesystem("cloudstore", **options)
    assert isinstance(fs, CloudStoreFileSystem) and server.name == fs.provider.PROVIDER_ID
    url = f"cloudstore://{bucket.name}/through/a/url.txt"
    with fsspec.open(url, "w", **options) as f:
        f.write("hello from fsspec.open")
    with fsspec.open(url, "r", **options) as f:
        assert f.read() == "hello from fsspec.open"
    assert bucket.objects.get("through/a/url.txt").read() == b"hello from fsspec.open"  # type: ignore[union-attr]
    found, path = fsspec.core.url_to_fs(url, **options)
    assert path == f"{bucket.name}/through/a/url.txt" and found.isfile(path)


def test_ls_info_and_directories_as_prefixes(fs: CloudStoreFileSystem, bucket: Bucket) -> None:
    root = bucket.name
    fs.pipe({f"{root}/top.txt": b"top", f"{root}/dir/a.txt": b"a", f"{root}/dir/sub/b.txt": b"bb"})
    assert fs.ls(root, detail=False) == [f"{root}/dir", f"{root}/top.txt"]
    assert fs.ls(f"{root}/dir", detail=False) == [f"{root}/dir/a.txt", f"{root}/dir/sub"]
    assert fs.ls(f"{root}/top.txt", detail=False) == [f"{root}/top.txt"]
    info = fs.info(f"{root}/dir/sub/b.txt")
    assert info["type"] == "file" and info["size"] == 2 and info["name"] == f"{root}/dir/sub/b.txt"
    assert fs.info(f"{root}/dir")["type"] == "directory"
    assert fs.info(root)["type"] == "directory"
    assert root in fs.ls("", detail=False)
    assert fs.find(root) == [f"{root}/dir/a.txt", f"{root}/dir/sub/b.txt", f"{root}/top.txt"]
    assert fs.find(f"{root}/dir", withdirs=True) == [
        f"{root}/dir",
        f"{root}/dir/a.txt",
        f"{root}/dir/sub",
        f"{root}/dir/sub/b.txt",
    ]
    with pytest.raises(FileNotFoundError):
        fs.info(f"{root}/nothing")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{root}/nothing")
    fs.mkdir(f"{root}/empty-dir")  # a prefix: nothing is written
    fs.makedirs(f"{root}/deep/er", exist_ok=True)
    assert sorted(o.name for o in bucket.objects) == ["dir/a.txt", "dir/sub/b.txt", "top.txt"]
    assert not fs.exists(f"{root}/empty-dir")


def test_no_stale_listing(fs: CloudStoreFileSystem, bucket: Bucket) -> None:
    root = bucket.name
    fs.pipe(f"{root}/one", b"1")
    assert fs.ls(root, detail=False) == [f"{root}/one"]
    bucket.objects.create("two").upload(b"2")  # behind the filesystem's back
    assert fs.ls(root, detail=False) == [f"{root}/one", f"{root}/two"]
    bucket.objects.get("one").delete()  # type: ignore[union-attr]
    assert fs.ls(root, detail=False) == [f"{root}/two"]
    assert not fs.exists(f"{root}/one")


def test_cat_file_ranges(fs: CloudStoreFileSystem, bucket: Bucket) -> None:
    path = f"{bucket.name}/digits"
    fs.pipe_file(path, b"0123456789")
    assert fs.cat_file(path) == b"0123456789"
    assert fs.cat_file(path, start=2, end=5) == b"234"
    assert fs.cat_file(path, start=7) == b"789"
    assert fs.cat_file(path, end=3) == b"012"
    assert fs.cat_file(path, start=-3) == b"789"
    assert fs.cat_file(path, start=2, end=-2) == b"234567"
    assert fs.cat_file(path, start=5, end=5) == b""
    assert fs.cat_file(path, start=8, end=100) == b"89"
    assert fs.cat_ranges([path, path], [0, 9], [2, 10]) == [b"01", b"9"]
    with pytest.raises(FileNotFoundError):
        fs.cat_file(f"{bucket.name}/missing")


class Recorder(Callback):  # type: ignore[misc]
    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []
        self.moved = 0

    def set_size(self, size: int) -> None:
        self.sizes.append(size)

    def relative_update(self, inc: int = 1) -> None:
        self.moved += inc


def test_put_and_get_file_through_the_engine_with_progress(
    fs: CloudStoreFileSystem, bucket: Bucket, tmp_path: Path
) -> None:
    data = os.urandom(2 * TEST_TRANSFER.part_size + 11)  # multipart with the test's transfer config
    source = tmp_path / "source.bin"
    source.write_bytes(data)
    up = Recorder()
    fs.put_file(str(source), f"{bucket.name}/big.bin", callback=up)
    assert up.sizes == [len(data)] and up.moved == len(data)
    assert bucket.objects.get("big.bin").read() == data  # type: ignore[union-attr]
    down = Recorder()
    target = tmp_path / "nested" / "copy.bin"
    fs.get_file(f"{bucket.name}/big.bin", str(target), callback=down)
    assert target.read_bytes() == data
    assert down.sizes == [len(data)] and down.moved == len(data)
    assert not [p for p in target.parent.iterdir() if p.name != "copy.bin"]  # no temporary file left


def test_rm_batch_and_cp_on_the_server(fs: CloudStoreFileSystem, bucket: Bucket) -> None:
    root = bucket.name
    fs.pipe({f"{root}/src/{i}.txt": str(i).encode() for i in range(25)})
    fs.pipe_file(f"{root}/src/deeper/x.txt", b"x", content_type="text/plain", metadata={"kind": "copy"})
    fs.cp_file(f"{root}/src/deeper/x.txt", f"{root}/dst/x.txt")
    copied = bucket.objects.get("dst/x.txt")
    assert copied is not None and copied.read() == b"x"
    assert copied.content_type == "text/plain" and copied.metadata == {"kind": "copy"}  # kept: a server copy
    fs.cp(f"{root}/src", f"{root}/copied", recursive=True)
    assert len(fs.find(f"{root}/copied")) == 26
    fs.rm(f"{root}/src", recursive=True)
    assert not fs.exists(f"{root}/src")
    assert sorted(o.name for o in bucket.objects if o.name.startswith("src")) == []
    fs.rm([f"{root}/copied/0.txt", f"{root}/copied/1.txt"])
    assert len(fs.find(f"{root}/copied")) == 24
    with pytest.raises(FileNotFoundError):
        fs.rm(f"{root}/never-there")


def test_open_and_modified(fs: CloudStoreFileSystem, bucket: Bucket) -> None:
    path = f"{bucket.name}/file.txt"
    with fs.open(path, "wb") as f:
        f.write(b"opened for writing")
    with fs.open(path, "rb") as f:
        f.seek(7)
        assert f.read(3) == b"for"
    with pytest.raises(FileExistsError):
        fs.open(path, "xb")
    with pytest.raises(ValueError, match="not supported"):
        fs.open(path, "ab")
    with pytest.raises(RuntimeError), fs.open(f"{bucket.name}/never.txt", "w") as text:
        text.write("half")
        raise RuntimeError("stop")
    assert not fs.exists(f"{bucket.name}/never.txt")
    assert fs.modified(path) == bucket.objects.get("file.txt").last_modified  # type: ignore[union-attr]


@pytest.mark.needs("if_none_match")
def test_exclusive_create_holds_until_close(fs: CloudStoreFileSystem, bucket: Bucket) -> None:
    """ "xb" is if_none_match="*": an object created while the file is open wins, and close() says so."""
    path = f"{bucket.name}/claimed.txt"
    with pytest.raises(PreconditionFailedException), fs.open(path, "xb") as f:
        f.write(b"late")
        bucket.objects.create("claimed.txt").upload(b"first")
    assert bucket.objects.get("claimed.txt").read() == b"first"  # type: ignore[union-attr]


@pytest.mark.needs("signed_urls")
def test_sign_gives_a_url_that_reads_the_object(fs: CloudStoreFileSystem, bucket: Bucket) -> None:
    path = f"{bucket.name}/signed.txt"
    fs.pipe_file(path, b"signed content")
    url = fs.sign(path, expiration=300)
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"signed content"


def test_makedirs_of_a_bucket_creates_it(fs: CloudStoreFileSystem, provider: CloudProvider) -> None:
    name = unique_name("fs")
    fs.makedirs(name)
    try:
        assert provider.storage.buckets.get(name) is not None
        assert fs.isdir(name) and fs.ls(name) == []
        with pytest.raises(FileExistsError):
            fs.makedirs(name)
        fs.makedirs(name, exist_ok=True)
        fs.pipe_file(f"{name}/k", b"v")
        with pytest.raises(OSError, match="not empty"):
            fs.rmdir(name)
        fs.rm(f"{name}/k")
        fs.rmdir(name)
        assert provider.storage.buckets.get(name) is None
    finally:
        bucket = provider.storage.buckets.get(name)
        if bucket is not None:
            bucket.delete(delete_contents=True)


def test_filesystem_pickles_as_its_options(bucket: Bucket, server: RunningServer) -> None:
    fs = fsspec.filesystem("cloudstore", skip_instance_cache=True, **storage_options(server))
    fs.pipe_file(f"{bucket.name}/p", b"pickled")
    copied = pickle.loads(pickle.dumps(fs))
    assert copied.cat_file(f"{bucket.name}/p") == b"pickled"
    for_provider = pickle.loads(pickle.dumps(CloudStoreFileSystem(provider=fs.provider)))
    assert for_provider.provider is not fs.provider
    assert for_provider.cat_file(f"{bucket.name}/p") == b"pickled"


def test_a_prefix_is_gone_with_its_last_object(
    fs: CloudStoreFileSystem, bucket: Bucket, quirks: Quirks, known_difference: Callable[[str | None], None]
) -> None:
    known_difference(quirks.prefix_outlives_its_objects)
    fs.pipe_file(f"{bucket.name}/folder/only.txt", b"x")
    fs.touch(f"{bucket.name}/kept.txt")
    assert fs.isdir(f"{bucket.name}/folder")
    fs.rm(f"{bucket.name}/folder/only.txt")
    assert fs.ls(bucket.name, detail=False) == [f"{bucket.name}/kept.txt"]

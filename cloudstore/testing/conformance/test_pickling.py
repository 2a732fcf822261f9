"""Providers, buckets and objects pickle as their configuration and names, on every provider:
they travel to other processes (spawned or forked) and make their own clients there."""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Iterator

import pytest

from cloudstore import Bucket, BucketObject, CloudProvider
from cloudstore.testing import Spied, backend_of, fresh_bucket


@pytest.fixture
def spied_bucket(spied: Spied) -> Iterator[Bucket]:
    with fresh_bucket(spied.provider) as bucket:
        yield bucket


def test_pickle_round_trip(spied: Spied, spied_bucket: Bucket) -> None:
    provider = spied.provider
    spied_bucket.objects.create("k").upload(b"value")
    obj = spied_bucket.objects.get("k")
    assert obj is not None
    copied = pickle.loads(pickle.dumps(obj))
    assert copied.provider is not provider
    assert copied.provider.PROVIDER_ID == provider.PROVIDER_ID
    assert dict(copied.provider.config) == dict(provider.config)
    assert repr(copied.provider) == repr(provider)  # secrets still hidden
    assert (copied.bucket.name, copied.name) == (spied_bucket.name, "k")
    reads = spied.backend.count("get_object")
    assert copied.read() == b"value"
    # The copy made a client of its own: the original's (the spy) did not travel.
    assert spied.backend.count("get_object") == reads
    assert backend_of(copied.provider) is not spied.backend
    bucket_copy = pickle.loads(pickle.dumps(spied_bucket))
    assert [o.name for o in bucket_copy.objects] == ["k"]
    provider_copy = pickle.loads(pickle.dumps(provider))
    assert provider_copy.storage.buckets.get(spied_bucket.name) is not None
    copied.provider.close()
    bucket_copy.provider.close()
    provider_copy.close()


def _read(obj: BucketObject) -> tuple[int, bytes]:
    """Runs in a worker process."""
    return os.getpid(), obj.read()


def _write(task: tuple[Bucket, str]) -> str:
    bucket, name = task
    bucket.objects.create(name).upload(f"written by a worker: {name}")
    return name


@pytest.mark.needs("shared_between_processes")
def test_spawned_workers_use_pickled_objects(bucket: Bucket) -> None:
    for i in range(4):
        bucket.objects.create(f"in/{i}").upload(f"content {i}")
    objects = sorted(bucket.objects.find(prefix="in/"), key=lambda o: o.name)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        read = pool.map(_read, objects)
        written = pool.map(_write, [(bucket, f"out/{i}") for i in range(4)])
    assert [data for _, data in read] == [f"content {i}".encode() for i in range(4)]
    assert {pid for pid, _ in read} - {os.getpid()}  # really read in other processes
    for name in written:
        assert bucket.objects.get(name).read() == f"written by a worker: {name}".encode()  # type: ignore[union-attr]


@pytest.mark.needs("shared_between_processes")
def test_forked_child_makes_its_own_client(spied: Spied, spied_bucket: Bucket) -> None:
    provider: CloudProvider = spied.provider
    spied_bucket.objects.create("shared").upload(b"before the fork")
    assert spied_bucket.objects.get("shared").read() == b"before the fork"  # type: ignore[union-attr]
    calls_before = len(spied.backend.calls)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        status = 1
        try:
            data = spied_bucket.objects.get("shared").read()  # type: ignore[union-attr]
            spied_bucket.objects.create("from-child").upload(b"child wrote this")
            # The inherited client (the spy) was dropped: it saw none of the child's requests.
            own = len(spied.backend.calls) == calls_before and backend_of(provider) is not spied.backend
            os.write(write_end, b"%d|" % own + data)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"1|before the fork"
    assert backend_of(provider) is spied.backend  # the parent's client is untouched and still works
    assert spied_bucket.objects.get("from-child").read() == b"child wrote this"  # type: ignore[union-attr]

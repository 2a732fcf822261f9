"""Providers, buckets and objects pickle as their configuration and names, on every provider:
they travel to other processes (spawned or forked) and make their own clients there."""

from __future__ import annotations

import multiprocessing
import os
import pickle

import pytest

from cloudstore import Bucket, BucketObject, CloudProvider


def test_pickle_round_trip(provider: CloudProvider, bucket: Bucket) -> None:
    bucket.objects.create("k").upload(b"value")
    obj = bucket.objects.get("k")
    assert provider._backend_instance is not None  # the client exists here: it must not travel
    copied = pickle.loads(pickle.dumps(obj))
    assert copied.provider is not provider
    assert copied.provider._backend_instance is None  # no client until first use
    assert copied.provider.PROVIDER_ID == provider.PROVIDER_ID
    assert dict(copied.provider.config) == dict(provider.config)
    assert repr(copied.provider) == repr(provider)  # secrets still hidden
    assert (copied.bucket.name, copied.name) == (bucket.name, "k")
    assert copied.read() == b"value"
    assert copied.provider._backend_instance is not None
    bucket_copy = pickle.loads(pickle.dumps(bucket))
    assert [o.name for o in bucket_copy.objects] == ["k"]
    provider_copy = pickle.loads(pickle.dumps(provider))
    assert provider_copy.storage.buckets.get(bucket.name) is not None
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
def test_forked_child_makes_its_own_client(provider: CloudProvider, bucket: Bucket) -> None:
    bucket.objects.create("shared").upload(b"before the fork")
    assert bucket.objects.get("shared").read() == b"before the fork"  # type: ignore[union-attr]
    parent_backend = provider._backend
    assert parent_backend is not None
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        status = 1
        try:
            fresh = provider._backend_instance is None
            data = bucket.objects.get("shared").read()  # type: ignore[union-attr]
            bucket.objects.create("from-child").upload(b"child wrote this")
            os.write(write_end, b"%d|" % fresh + data)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert report == b"1|before the fork"  # the child dropped the inherited client and made its own
    assert provider._backend is parent_backend  # the parent's client is untouched and still works
    assert bucket.objects.get("from-child").read() == b"child wrote this"  # type: ignore[union-attr]

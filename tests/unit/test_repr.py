"""One repr style, ``<ClassName key=value ...>``, for the objects that hold state (providers,
services, buckets, objects, backends, configs, credentials); secrets never shown."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from cloudstore import CloudProviderFactory
from cloudstore.credentials import TemporaryCredentials
from cloudstore.testing import SpyBackend, backend_of, unique_name

ANGLE_REPR = re.compile(r"^<[A-Z][A-Za-z0-9]*( [^\n]*)?>$")


def test_public_objects_and_backends_read_angle_style() -> None:
    provider = CloudProviderFactory().create_provider("memory", {"memory_store": unique_name("repr")})
    bucket = provider.storage.buckets.create(unique_name("repr"))
    obj = bucket.objects.create("k")
    obj.upload(b"v")
    credentials = TemporaryCredentials({"os_auth_token": "tok-SECRET-1"}, datetime(2030, 1, 1, tzinfo=UTC))
    with obj.open("rb") as reader, obj.open("wb") as writer:
        shown = {
            repr(provider): "<CloudProvider memory config=<Config memory memory_store=",
            repr(provider.storage): "<StorageService provider=memory>",
            repr(provider.storage.buckets): "<BucketService provider=memory>",
            repr(bucket): f"<Bucket memory://{bucket.name}>",
            repr(bucket.objects): f"<BucketObjectService bucket=<Bucket memory://{bucket.name}>>",
            repr(obj): f"<BucketObject memory://{bucket.name}/k>",
            repr(reader): "<ObjectReader <BucketObject",
            repr(writer): "<ObjectWriter <BucketObject",
            repr(backend_of(provider)): "<MemoryBackend buckets=",
            repr(SpyBackend(backend_of(provider))): "<SpyBackend inner=<MemoryBackend",
            repr(credentials): "<TemporaryCredentials keys=os_auth_token expires_at=2030-01-01T00:00:00+00:00>",
            repr(bucket.objects.list()): "<ResultList items=[<BucketObject",
        }
    for text, start in shown.items():
        assert ANGLE_REPR.match(text) and text.startswith(start), text
    assert "tok-SECRET-1" not in repr(credentials)


def test_local_config_and_backend_hide_the_secret(tmp_path: object) -> None:
    secret = "s3cr3t-" + "x" * 40
    provider = CloudProviderFactory().create_provider("local", {"local_root": str(tmp_path), "local_secret": secret})
    texts = [repr(provider), repr(provider.config), str(provider.config), repr(backend_of(provider))]
    assert texts[1] == f"<Config local local_root={str(tmp_path)!r} local_secret=***>"
    assert texts[3] == f"<LocalBackend root={str(tmp_path)!r} url=http://127.0.0.1:8765>"
    for text in texts:
        assert ANGLE_REPR.match(text) and secret not in text

"""OpenStack Swift provider specifics on a real one-node Swift 2.38: the login modes, TempURL
keys, Static Large Objects (segments hidden, cleaned up), name rules, error mapping and the
number of requests per operation.

The conformance suite covers what every provider shares; these tests cover what is
particular to Swift.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import json
import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import google_crc32c
import pytest
import requests

from cloudstore import (
    AuthenticationException,
    Bucket,
    ChecksumMismatchException,
    CleanupWarning,
    CloudProvider,
    CloudProviderFactory,
    DuplicateResourceException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    NotSupportedException,
    PermissionDeniedException,
    PreconditionFailedException,
    ProviderConnectionException,
    ProviderList,
    RetryPolicy,
    ThrottledException,
)
from cloudstore.backend import BucketInfo, Checksum
from cloudstore.exceptions import class_for_status
from cloudstore.providers.openstack.backend import SEGMENTS_SUFFIX, SwiftBackend
from cloudstore.testing import backend_of, call_through
from tests.conftest import (
    TEST_TRANSFER,
    bucket_fixture,
    make_provider,
    provider_fixture,
    server_fixture,
    unique_name,
)
from tests.support.proxy import FaultProxy
from tests.support.servers.base import RunningServer, free_port
from tests.support.streams import BreakingStream

MiB = 1024 * 1024
ONE_TRY = RetryPolicy(max_attempts=1)


# --- fixtures and helpers -----------------------------------------------------------------------
server = server_fixture("openstack")
swift = provider_fixture()
swift_bucket = bucket_fixture("os", provider="swift")


def login(server: RunningServer, user: str, key: str) -> tuple[str, str]:
    """Swift v1 auth by hand: (storage URL, token)."""
    request = urllib.request.Request(server.extra["auth_url"], headers={"X-Auth-User": user, "X-Auth-Key": key})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.headers["X-Storage-Url"], response.headers["X-Auth-Token"]


class Account:
    """Raw HTTP access to one Swift account, to look behind the provider's back."""

    def __init__(self, server: RunningServer, user: str, key: str) -> None:
        self.url, self.token = login(server, user, key)

    def call(self, method: str, path: str = "", **kwargs: Any) -> requests.Response:
        headers = {"X-Auth-Token": self.token, **kwargs.pop("headers", {})}
        return requests.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def meta(self, path: str = "") -> requests.structures.CaseInsensitiveDict[str]:
        response = self.call("HEAD", path)
        assert response.status_code in (200, 204), response.status_code
        return response.headers

    def names(self, container: str, **params: str) -> list[str]:
        response = self.call("GET", "/" + quote(container, safe=""), params={"format": "json", **params})
        if response.status_code == 404:
            return []
        return [entry["name"] for entry in response.json()]


@pytest.fixture(scope="module")
def account(server: RunningServer) -> Account:
    return Account(server, server.config["os_username"], server.config["os_password"])


def fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, method=method), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


@contextmanager
def sent_requests(provider: CloudProvider) -> Iterator[list[tuple[str, str]]]:
    """Every HTTP request the provider's session sends meanwhile, as (method, path)."""
    session = backend_of(provider).store.session.session  # type: ignore[attr-defined]
    seen: list[tuple[str, str]] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append((str(response.request.method), unquote(urlsplit(response.request.url).path)))

    session.hooks["response"].append(hook)
    try:
        yield seen
    finally:
        session.hooks["response"].remove(hook)


def payload(size: int) -> bytes:
    return (hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))[:size]


# --- configuration and login --------------------------------------------------------------------
def test_creating_the_provider_makes_no_network_call_and_hides_secrets() -> None:
    closed = free_port()
    provider = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK,
        {
            "os_auth_url": f"http://127.0.0.1:{closed}/auth/v1.0",
            "os_username": "test:tester",
            "os_password": "hunter2-secret",
            "os_temp_url_key": "tempkey-secret",
            "retry_policy": ONE_TRY,
        },
    )
    backend = backend_of(provider)  # constructed, and still nothing was contacted
    assert isinstance(backend, SwiftBackend)
    for text in (repr(provider), repr(backend), str(provider.config)):
        assert "hunter2-secret" not in text and "tempkey-secret" not in text
    with pytest.raises(ProviderConnectionException):
        provider.storage.buckets.list()


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"os_auth_url": "http://127.0.0.1:1/auth/v1.0", "os_username": "u"},
        {"os_storage_url": "http://127.0.0.1:1/v1/AUTH_x"},
        {"os_auth_url": "http://127.0.0.1:1/auth/v1.0", "os_auth_token": "t"},
    ],
)
def test_incomplete_login_is_an_invalid_param(config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OS_AUTH_URL", "OS_USERNAME", "OS_PASSWORD", "OS_STORAGE_URL", "OS_AUTH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSTORE_CONFIG", "/nonexistent/config.ini")
    provider = CloudProviderFactory().create_provider(ProviderList.OPENSTACK, config)
    with pytest.raises(InvalidParamException, match="os_auth_url"):
        _ = backend_of(provider)


def test_password_login_through_swift_v1_auth(swift: CloudProvider, swift_bucket: Bucket) -> None:
    assert "auth=v1 " in repr(backend_of(swift))
    assert swift_bucket.name in [b.name for b in swift.storage.buckets]


def test_wrong_password_is_an_authentication_error(server: RunningServer) -> None:
    provider = make_provider(server, os_password="wrong", retry_policy=ONE_TRY)
    with pytest.raises(AuthenticationException) as caught:
        provider.storage.buckets.list()
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


def test_session_token_pair_does_every_operation(server: RunningServer, account: Account) -> None:
    storage_url, token = login(server, server.config["os_username"], server.config["os_password"])
    provider = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK, {"os_storage_url": storage_url, "os_auth_token": token}
    )
    assert "auth=token_pair " in repr(backend_of(provider))
    bucket = provider.storage.buckets.create(unique_name("tok"))
    obj = bucket.objects.create("a/b.txt")
    obj.upload(b"by token", metadata={"who": "token"})
    assert [o.name for o in bucket.objects.list(prefix="a/")] == ["a/b.txt"]
    got = bucket.objects.get("a/b.txt")
    assert got is not None and got.read() == b"by token" and got.metadata == {"who": "token"}
    assert fetch(got.generate_url(60)) == (200, b"by token")
    got.copy_to(bucket, "copy.txt")
    assert account.call("GET", f"/{bucket.name}/copy.txt").content == b"by token"
    bucket.delete(delete_contents=True)
    assert provider.storage.buckets.get(bucket.name) is None


def test_a_wrong_session_token_is_an_authentication_error(server: RunningServer) -> None:
    storage_url, _ = login(server, server.config["os_username"], server.config["os_password"])
    provider = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK,
        {"os_storage_url": storage_url, "os_auth_token": "AUTH_ftk" + "x" * 40, "retry_policy": ONE_TRY},
    )
    with pytest.raises(AuthenticationException) as caught:
        provider.storage.buckets.list()
    assert caught.value.status == 401


def test_an_expired_v1_token_is_renewed_once(server: RunningServer) -> None:
    with FaultProxy(upstream=("127.0.0.1", server.extra["proxy_port"])) as proxy:
        # Logged in through the proxy, the storage URL tempauth answers points at the proxy too.
        auth_url = proxy.url + urlsplit(server.config["os_auth_url"]).path
        provider = make_provider(server, os_auth_url=auth_url, retry_policy=ONE_TRY)
        provider.storage.buckets.list()
        proxy.add_rule("status", methods=["GET"], path="^/v1/", status=401, limit=1)  # the token expired
        before = len(proxy.requests)
        provider.storage.buckets.list()
        seen = [(r.method, urlsplit(r.target).path, r.fault) for r in proxy.requests[before:]]
    assert [(m, f) for m, _, f in seen] == [("GET", "status"), ("GET", None), ("GET", None)]  # refused, login, again
    assert seen[1][1] == "/auth/v1.0"


def test_another_accounts_token_is_permission_denied(server: RunningServer, swift_bucket: Bucket) -> None:
    storage_url, _ = login(server, server.config["os_username"], server.config["os_password"])
    _, other_token = login(server, server.extra["other_user"], server.extra["other_key"])
    intruder = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK, {"os_storage_url": storage_url, "os_auth_token": other_token, "retry_policy": ONE_TRY}
    )
    with pytest.raises(PermissionDeniedException) as caught:
        Bucket(intruder, BucketInfo(swift_bucket.name)).objects.list()
    assert caught.value.status == 403


def test_keystone_urls_use_keystone_and_fail_cleanly_when_unreachable() -> None:
    closed = free_port()
    provider = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK,
        {
            "os_auth_url": f"http://127.0.0.1:{closed}/identity/v3",
            "os_username": "demo",
            "os_password": "secret",
            "os_project_name": "demo",
            "retry_policy": ONE_TRY,
        },
    )
    assert "auth=keystone_password " in repr(backend_of(provider))
    with pytest.raises(ProviderConnectionException):
        provider.storage.buckets.list()


# --- requests per operation -----------------------------------------------------------------
def test_requests_per_plain_put_get_head_delete(swift: CloudProvider, swift_bucket: Bucket) -> None:
    """A put asks first whether it replaces a large object (whose segments must go), a delete lets
    Swift decide (``?multipart-manifest=delete``, refused for a plain object): never a cache."""
    backend = backend_of(swift)
    name = swift_bucket.name
    path = f"/v1/AUTH_test/{name}/one"
    with sent_requests(swift) as seen:
        backend.put_object(name, "one", b"16 KiB" * 2730, "text/plain", {"k": "v"})
    assert seen == [("HEAD", path), ("PUT", path)]
    with sent_requests(swift) as seen:
        with backend.get_object(name, "one") as reader:
            assert reader.read() == b"16 KiB" * 2730
            assert reader.info is not None
            assert reader.info.checksum == Checksum("md5", hashlib.md5(b"16 KiB" * 2730).hexdigest())
        assert backend.head_object(name, "one") is not None
        backend.delete_object(name, "one")
    assert seen == [("GET", path), ("HEAD", path), ("DELETE", path), ("DELETE", path)]
    backend.put_object(name, "two", b"x", None, {})
    with sent_requests(swift) as seen:
        assert swift_bucket.objects.get("two").read() == b"x"  # type: ignore[union-attr]
    assert [m for m, _ in seen] == ["HEAD", "GET"]


def test_put_sends_the_md5_as_etag_for_swift_to_check(swift: CloudProvider, swift_bucket: Bucket) -> None:
    session = backend_of(swift).store.session.session  # type: ignore[attr-defined]
    captured: list[requests.PreparedRequest] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        captured.append(response.request)

    session.hooks["response"].append(hook)
    try:
        swift_bucket.objects.create("etag.bin").upload(b"checked")
    finally:
        session.hooks["response"].remove(hook)
    assert captured[-1].method == "PUT"
    assert captured[-1].headers["ETag"] == hashlib.md5(b"checked").hexdigest()


# --- names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a/b", "x" * 257, "é" * 129, "photos" + SEGMENTS_SUFFIX, ""])
def test_container_names_swift_refuses_fail_before_any_request(swift: CloudProvider, name: str) -> None:
    with sent_requests(swift) as seen, pytest.raises(InvalidNameException):
        swift.storage.buckets.create(name)
    assert seen == []


def test_swift_accepts_names_s3_would_not(swift: CloudProvider, account: Account) -> None:
    name = "Mixed_Case ünïcode " + unique_name()
    bucket = swift.storage.buckets.create(name)
    try:
        assert account.meta("/" + quote(name, safe=""))
        obj = bucket.objects.create("../.././weird ?#%/name")
        obj.upload(b"kept as is")
        assert [o.name for o in bucket.objects] == ["../.././weird ?#%/name"]
        assert fetch(obj.generate_url(60)) == (200, b"kept as is")
    finally:
        bucket.delete(delete_contents=True)


def test_object_names_are_limited_to_1024_bytes(swift_bucket: Bucket) -> None:
    swift_bucket.objects.create("é" * 512).upload(b"ok")
    with pytest.raises(InvalidNameException):
        swift_bucket.objects.create("é" * 512 + "x")


def test_duplicate_container_is_refused(swift: CloudProvider, swift_bucket: Bucket) -> None:
    with pytest.raises(DuplicateResourceException):
        swift.storage.buckets.create(swift_bucket.name)


def test_deleting_a_container_with_objects_is_a_precondition_failure(swift_bucket: Bucket) -> None:
    swift_bucket.objects.create("keep").upload(b"1")
    with pytest.raises(PreconditionFailedException) as caught:
        swift_bucket.delete()
    assert caught.value.status == 409
    assert swift_bucket.objects.get("keep") is not None


def test_metadata_keys_with_underscores_survive(swift_bucket: Bucket, account: Account) -> None:
    swift_bucket.objects.create("meta").upload(b"m", metadata={"Owner_Name": "Ann", "x": "1"})
    got = swift_bucket.objects.get("meta")
    assert got is not None and got.metadata == {"owner_name": "Ann", "x": "1"}
    assert account.meta(f"/{swift_bucket.name}/meta")["X-Object-Meta-Owner-Name"] == "Ann"


# --- TempURLs -------------------------------------------------------------------------------
def test_existing_account_key_signs_and_is_left_unchanged(
    server: RunningServer, swift_bucket: Bucket, account: Account
) -> None:
    key = server.extra["temp_url_key"]
    before = dict(account.meta())
    obj = swift_bucket.objects.create("shared.txt")
    obj.upload(b"shared")
    url = obj.generate_url(expires_in=300)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    expires = query["temp_url_expires"][0]
    expected = hmac.new(key.encode(), f"GET\n{expires}\n{unquote(parts.path)}".encode(), hashlib.sha256).hexdigest()
    assert query["temp_url_sig"] == [expected]
    assert fetch(url) == (200, b"shared")
    after = account.meta()
    assert after["X-Account-Meta-Temp-Url-Key"] == key
    assert "X-Account-Meta-Temp-Url-Key-2" not in after
    assert {k: v for k, v in after.items() if "Meta" in k} == {k: v for k, v in before.items() if "Meta" in k}


def test_configured_key_that_differs_never_replaces_the_existing_one(
    server: RunningServer, swift_bucket: Bucket, account: Account
) -> None:
    provider = make_provider(server, os_temp_url_key="my-own-key")
    obj = Bucket(provider, BucketInfo(swift_bucket.name)).objects.create("two-keys.txt")
    obj.upload(b"both keys work")
    try:
        url = obj.generate_url(60)
        meta = account.meta()
        assert meta["X-Account-Meta-Temp-Url-Key"] == server.extra["temp_url_key"]  # untouched
        assert meta["X-Account-Meta-Temp-Url-Key-2"] == "my-own-key"  # the free slot
        assert fetch(url) == (200, b"both keys work")
        assert fetch(swift_bucket.objects.get("two-keys.txt").generate_url(60)) == (200, b"both keys work")  # type: ignore[union-attr]
        # Both slots are taken now: a third key is refused rather than written over one.
        third = make_provider(server, os_temp_url_key="third-key")
        with pytest.raises(InvalidParamException, match="never replaces"):
            Bucket(third, BucketInfo(swift_bucket.name)).objects.create("two-keys.txt").generate_url(60)
    finally:
        account.call("POST", headers={"X-Remove-Account-Meta-Temp-URL-Key-2": "x"})


def test_no_key_anywhere_sets_a_random_container_key(server: RunningServer) -> None:
    """Signed URLs out of the box: a 256-bit key on the container, the account left alone."""
    keyless = make_provider(server, os_username=server.extra["keyless_user"], os_password=server.extra["keyless_key"])
    owner = Account(server, server.extra["keyless_user"], server.extra["keyless_key"])
    bucket = keyless.storage.buckets.create(unique_name("nokey"))
    try:
        obj = bucket.objects.create("x")
        obj.upload(b"x")
        assert fetch(obj.generate_url(60)) == (200, b"x")
        key = owner.meta(f"/{bucket.name}")["X-Container-Meta-Temp-Url-Key"]
        assert len(bytes.fromhex(key)) == 32
        assert "X-Account-Meta-Temp-Url-Key" not in owner.meta()
        # The key stays: the next URL is signed with it, the first one still works.
        status, _ = fetch(bucket.objects.create("new.txt").generate_url(60, writable=True), "PUT", b"put")
        assert status == 201
        assert owner.meta(f"/{bucket.name}")["X-Container-Meta-Temp-Url-Key"] == key
        assert fetch(obj.generate_url(60)) == (200, b"x")
    finally:
        bucket.delete(delete_contents=True)


def test_container_key_is_used_when_the_account_has_none(server: RunningServer) -> None:
    owner = Account(server, server.extra["keyless_user"], server.extra["keyless_key"])
    keyless = make_provider(server, os_username=server.extra["keyless_user"], os_password=server.extra["keyless_key"])
    bucket = keyless.storage.buckets.create(unique_name("ckey"))
    try:
        owner.call("POST", f"/{bucket.name}", headers={"X-Container-Meta-Temp-URL-Key": "container-secret"})
        obj = bucket.objects.create("c.txt")
        obj.upload(b"container key")
        assert fetch(obj.generate_url(60)) == (200, b"container key")
        status, _ = fetch(bucket.objects.create("new.txt").generate_url(60, writable=True), "PUT", b"put")
        assert status == 201
        assert owner.meta(f"/{bucket.name}")["X-Container-Meta-Temp-Url-Key"] == "container-secret"
        assert "X-Account-Meta-Temp-Url-Key" not in owner.meta()
    finally:
        bucket.delete(delete_contents=True)


def test_configured_key_is_installed_in_an_empty_account(server: RunningServer) -> None:
    user, key = server.extra["other_user"], server.extra["other_key"]
    provider = make_provider(server, os_username=user, os_password=key, os_temp_url_key="installed-key")
    bucket = provider.storage.buckets.create(unique_name("inst"))
    try:
        obj = bucket.objects.create("i.txt")
        obj.upload(b"installed")
        assert fetch(obj.generate_url(60)) == (200, b"installed")
        assert Account(server, user, key).meta()["X-Account-Meta-Temp-Url-Key"] == "installed-key"
    finally:
        bucket.delete(delete_contents=True)


def test_urls_refuse_expired_tampered_and_wrong_method(swift_bucket: Bucket) -> None:
    obj = swift_bucket.objects.create("guarded.txt")
    obj.upload(b"guarded")
    url = obj.generate_url(60)
    sig = parse_qs(urlsplit(url).query)["temp_url_sig"][0]
    assert fetch(url.replace(sig, sig[:-1] + ("0" if sig[-1] != "0" else "1")))[0] == 401
    assert fetch(url, "PUT", b"nope")[0] == 401
    assert fetch(obj.generate_url(60, writable=True))[0] == 401
    short = obj.generate_url(1)
    time.sleep(2.1)
    assert fetch(short)[0] == 401
    assert swift_bucket.objects.get("guarded.txt").read() == b"guarded"  # type: ignore[union-attr]


def test_expiry_is_capped_at_seven_days(swift_bucket: Bucket) -> None:
    obj = swift_bucket.objects.create("long.txt")
    obj.upload(b"a week")
    url = obj.generate_url(expires_in=7 * 24 * 3600)
    assert int(parse_qs(urlsplit(url).query)["temp_url_expires"][0]) > time.time() + 7 * 24 * 3600 - 60
    assert fetch(url) == (200, b"a week")
    with pytest.raises(InvalidParamException, match="at most 604800 seconds"):
        obj.generate_url(expires_in=365 * 24 * 3600)


# --- Static Large Objects -------------------------------------------------------------------
def test_large_upload_is_an_slo_with_hidden_segments(
    swift: CloudProvider, swift_bucket: Bucket, account: Account
) -> None:
    data = payload(12 * MiB)
    swift_bucket.objects.create("big.bin").upload(data, metadata={"kind": "large"}, content_type="video/mp4")
    segments_container = swift_bucket.name + SEGMENTS_SUFFIX
    meta = account.meta(f"/{swift_bucket.name}/big.bin")
    assert meta["X-Static-Large-Object"] == "True"
    assert len(account.names(segments_container)) == 3  # 5 + 5 + 2 MiB
    assert [o.name for o in swift_bucket.objects] == ["big.bin"]
    assert segments_container not in [b.name for b in swift.storage.buckets]
    got = swift_bucket.objects.get("big.bin")
    assert got is not None and got.size == len(data) and got.content_type == "video/mp4"
    assert got.metadata == {"kind": "large"}  # the part layout cloudstore recorded is not shown
    assert meta["X-Object-Meta-Cloudstore-Part-Layout"] == f"{5 * MiB},0,{google_crc32c.value(data):08x}"
    # The SLO's ETag is the MD5 of its segments' hex MD5s; the recorded layout gives their sizes.
    segment_md5s = "".join(hashlib.md5(data[i : i + 5 * MiB]).hexdigest() for i in range(0, len(data), 5 * MiB))
    assert got.etag == hashlib.md5(segment_md5s.encode()).hexdigest()
    backend = backend_of(swift)
    head = backend.head_object(swift_bucket.name, "big.bin")
    assert head is not None and head.checksum == Checksum("md5-of-part-hexes", got.etag, (5 * MiB, 5 * MiB, 2 * MiB))
    listed = backend.list_objects(swift_bucket.name, None, None, None, None).items[0]
    assert listed.checksum is None and listed.etag == got.etag  # listings carry no metadata
    assert got.read() == data
    assert got.read(5 * MiB - 3, 5 * MiB + 2) == data[5 * MiB - 3 : 5 * MiB + 3]


def test_segments_go_with_delete_overwrite_and_bucket_delete(
    swift: CloudProvider, swift_bucket: Bucket, account: Account
) -> None:
    segments_container = swift_bucket.name + SEGMENTS_SUFFIX
    obj = swift_bucket.objects.create("big.bin")
    obj.upload(payload(11 * MiB))
    first = account.names(segments_container)
    assert len(first) == 3
    obj.upload(payload(7 * MiB))  # a multipart overwrite: the old segments go, the new ones stay
    second = account.names(segments_container)
    assert len(second) == 2 and not set(first) & set(second)
    obj.upload(b"small now")  # a plain overwrite
    assert account.names(segments_container) == []
    assert swift_bucket.objects.get("big.bin").read() == b"small now"  # type: ignore[union-attr]
    obj.upload(payload(7 * MiB))
    swift_bucket.objects.create("plain.bin").upload(b"plain")
    swift_bucket.objects.get("plain.bin").copy_to(swift_bucket, "big.bin")  # type: ignore[union-attr]
    assert account.names(segments_container) == []  # a copy over it counts as an overwrite too
    obj.upload(payload(7 * MiB))
    obj.delete()
    assert account.names(segments_container) == []
    with pytest.raises(NotFoundException):
        obj.delete()
    swift_bucket.objects.get("plain.bin").delete()  # type: ignore[union-attr]
    swift_bucket.delete()
    assert account.call("HEAD", "/" + quote(segments_container)).status_code == 404


def test_copy_of_a_large_object_is_a_whole_plain_object(swift_bucket: Bucket, account: Account) -> None:
    data = payload(7 * MiB)
    swift_bucket.objects.create("src.bin").upload(data, metadata={"m": "1"})
    copy = swift_bucket.objects.get("src.bin").copy_to(swift_bucket, "dst.bin")  # type: ignore[union-attr]
    meta = account.meta(f"/{swift_bucket.name}/dst.bin")
    assert "X-Static-Large-Object" not in meta and meta["X-Object-Meta-M"] == "1"
    assert copy.read() == data
    swift_bucket.objects.get("src.bin").delete()  # type: ignore[union-attr]
    assert copy.read() == data


def test_a_failed_large_upload_leaves_no_object_and_no_segments(swift_bucket: Bucket, account: Account) -> None:
    obj = swift_bucket.objects.create("broken.bin")
    with pytest.raises(OSError, match="stream broke"):
        obj.upload(io.BufferedReader(BreakingStream(11 * MiB)))
    assert swift_bucket.objects.get("broken.bin") is None
    assert account.names(swift_bucket.name + SEGMENTS_SUFFIX) == []


def test_abort_removes_uploaded_segments(swift: CloudProvider, swift_bucket: Bucket, account: Account) -> None:
    backend = backend_of(swift)
    upload = backend.create_multipart_upload(swift_bucket.name, "aborted.bin", None, {})
    backend.upload_part(upload, 1, 0, b"a" * 1000)
    backend.upload_part(upload, 2, 1000, b"b" * 10)
    assert len(account.names(swift_bucket.name + SEGMENTS_SUFFIX)) == 2
    backend.abort_multipart_upload(upload)
    assert account.names(swift_bucket.name + SEGMENTS_SUFFIX) == []
    assert swift_bucket.objects.get("aborted.bin") is None


def test_small_segments_and_the_1000_segment_limit(swift: CloudProvider) -> None:
    features = swift.features
    assert features.max_parts == 1000 and features.min_part_size == 1 and features.max_url_expiry is None


def test_segments_of_a_large_object_made_by_another_client_go_with_it(
    server: RunningServer, swift_bucket: Bucket, account: Account
) -> None:
    other = make_provider(server)
    Bucket(other, BucketInfo(swift_bucket.name)).objects.create("theirs.bin").upload(payload(7 * MiB))
    # swift_bucket's provider has not made large objects in this container itself.
    swift_bucket.objects.get("theirs.bin").delete()  # type: ignore[union-attr]
    assert account.names(swift_bucket.name + SEGMENTS_SUFFIX) == []


def test_large_upload_after_another_client_recreated_the_container(
    server: RunningServer, swift_bucket: Bucket, account: Account
) -> None:
    swift_bucket.objects.create("first.bin").upload(payload(7 * MiB))  # this provider saw segments here
    other = make_provider(server)
    Bucket(other, BucketInfo(swift_bucket.name)).delete(delete_contents=True)
    assert account.call("HEAD", "/" + quote(swift_bucket.name + SEGMENTS_SUFFIX)).status_code == 404
    other.storage.buckets.create(swift_bucket.name)
    swift_bucket.objects.create("second.bin").upload(payload(7 * MiB))
    assert swift_bucket.objects.get("second.bin").read() == payload(7 * MiB)  # type: ignore[union-attr]
    assert account.meta("/" + quote(swift_bucket.name + SEGMENTS_SUFFIX))["X-Storage-Policy"] == "Policy-0"


# --- error mapping --------------------------------------------------------------------------
@pytest.fixture
def through_proxy(server: RunningServer) -> Iterator[tuple[FaultProxy, str, str]]:
    storage_url, token = login(server, server.config["os_username"], server.config["os_password"])
    with FaultProxy(upstream=("127.0.0.1", server.extra["proxy_port"])) as proxy:
        yield proxy, proxy.url + urlsplit(storage_url).path, token


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthenticationException),
        (403, PermissionDeniedException),
        (404, NotFoundException),
        (405, NotSupportedException),
        (409, PreconditionFailedException),
        (410, NotFoundException),
        (412, PreconditionFailedException),
        (413, InvalidParamException),
        (416, InvalidParamException),
        (422, ChecksumMismatchException),  # Swift's own: a body that does not match its ETag
        (429, ThrottledException),
        (498, ThrottledException),  # Swift's own: the ratelimit middleware
        (500, ProviderConnectionException),
        (501, NotSupportedException),
        (502, ProviderConnectionException),
        (503, ThrottledException),
        (504, ProviderConnectionException),
    ],
)
def test_swift_statuses_map_onto_the_exception_tree(
    through_proxy: tuple[FaultProxy, str, str], status: int, expected: type[Exception]
) -> None:
    proxy, storage_url, token = through_proxy
    provider = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK, {"os_storage_url": storage_url, "os_auth_token": token, "retry_policy": ONE_TRY}
    )
    proxy.add_rule("status", status=status, limit=1)
    with pytest.raises(expected) as caught:
        provider.storage.buckets.list()
    assert caught.value.status == status
    assert isinstance(caught.value.__cause__, Exception)
    assert token not in str(caught.value)
    assert type(caught.value) is (expected if status in (422, 498) else class_for_status(status))
    if status == 422:
        assert caught.value.retryable  # damaged on the way: sending it again can succeed


def test_swift_error_text_is_one_clean_line(swift_bucket: Bucket) -> None:
    with pytest.raises(NotFoundException) as caught:
        swift_bucket.objects.create("nothing").read()
    path = f"/v1/AUTH_test/{swift_bucket.name}/nothing"
    assert str(caught.value) == f"Swift answered 404 Not Found: The resource could not be found. (GET {path})"


def test_connection_reset_is_retryable_and_retried(through_proxy: tuple[FaultProxy, str, str]) -> None:
    proxy, storage_url, token = through_proxy
    config = {"os_storage_url": storage_url, "os_auth_token": token}
    once = CloudProviderFactory().create_provider(ProviderList.OPENSTACK, {**config, "retry_policy": ONE_TRY})
    proxy.add_rule("reset", limit=1, reset_at="before")
    with pytest.raises(ProviderConnectionException) as caught:
        once.storage.buckets.list()
    assert caught.value.retryable
    patient = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK, {**config, "retry_policy": RetryPolicy(initial_backoff=0.01)}
    )
    proxy.add_rule("503", limit=2)
    patient.storage.buckets.list()  # two 503s, then the listing


def test_a_corrupted_download_is_detected(through_proxy: tuple[FaultProxy, str, str], swift_bucket: Bucket) -> None:
    proxy, storage_url, token = through_proxy
    swift_bucket.objects.create("flip.bin").upload(payload(100_000))
    provider = CloudProviderFactory().create_provider(
        ProviderList.OPENSTACK, {"os_storage_url": storage_url, "os_auth_token": token, "retry_policy": ONE_TRY}
    )
    proxy.add_rule("flip", methods=["GET"], path=r"/flip\.bin")
    with pytest.raises(ChecksumMismatchException):
        Bucket(provider, BucketInfo(swift_bucket.name)).objects.create("flip.bin").read()


def test_missing_objects_and_containers(swift: CloudProvider, swift_bucket: Bucket) -> None:
    assert swift.storage.buckets.get(unique_name("none")) is None
    assert swift_bucket.objects.get("nothing") is None
    with pytest.raises(NotFoundException):
        swift_bucket.objects.create("nothing").read()
    with pytest.raises(NotFoundException):
        swift_bucket.objects.create("nothing").delete()
    with pytest.raises(NotFoundException):
        Bucket(swift, BucketInfo(unique_name("none"))).objects.create("x").upload(b"x")
    with pytest.raises(NotFoundException):
        Bucket(swift, BucketInfo(unique_name("none"))).objects.create("x").upload(payload(7 * MiB))


def test_listing_markers_are_names_and_subdirs(swift_bucket: Bucket) -> None:
    for name in ["a/1", "a/2", "b", "c/1", "d"]:
        swift_bucket.objects.create(name).upload(b"")
    seen = []
    marker = None
    while True:
        page = swift_bucket.objects.list(delimiter="/", limit=1, marker=marker)
        seen.append(([o.name for o in page], page.prefixes, page.marker))
        if not page.is_truncated:
            break
        marker = page.marker
    assert seen[:4] == [([], ["a/"], "a/"), (["b"], [], "b"), ([], ["c/"], "c/"), (["d"], [], "d")]


# --- docs -----------------------------------------------------------------------------------
def test_docs_page_examples_run_against_swift(server: RunningServer, tmp_path: Path) -> None:
    from tests.test_docs import run_page, sandbox

    home = tmp_path / "home"
    home.mkdir()
    env = {
        "OS_AUTH_URL": server.config["os_auth_url"],
        "OS_USERNAME": server.config["os_username"],
        "OS_PASSWORD": server.config["os_password"],
    }
    with sandbox(home, env):
        namespace = run_page("openstack.rst")
    assert namespace["provider"].storage.buckets.get("Reports 2024") is None  # the page cleans up
    assert namespace["big"].size == 12 * 1024 * 1024


# --- integrity, timeouts and clean-ups --------------------------------------------------------
def proxied(through_proxy: tuple[FaultProxy, str, str], **config: Any) -> CloudProvider:
    """A provider whose every object request goes through the fault proxy (the session-token pair)."""
    _, storage_url, token = through_proxy
    settings = {"os_storage_url": storage_url, "os_auth_token": token, "transfer_config": TEST_TRANSFER}
    return CloudProviderFactory().create_provider(ProviderList.OPENSTACK, {**settings, **config})


QUICK = RetryPolicy(initial_backoff=0.01, max_backoff=0.05)


@pytest.mark.parametrize("kind", ["object", "segment"])
def test_a_body_that_does_not_match_its_md5_is_refused_and_not_stored(
    swift: CloudProvider, swift_bucket: Bucket, account: Account, kind: str
) -> None:
    backend = backend_of(swift)
    wrong = hashlib.md5(b"other bytes").digest()
    with pytest.raises(ChecksumMismatchException) as caught:
        if kind == "object":
            call_through(
                swift, lambda: backend.put_object(swift_bucket.name, "bad", b"the bytes", None, {}, content_md5=wrong)
            )
        else:
            upload = backend.create_multipart_upload(swift_bucket.name, "bad", None, {})
            call_through(swift, lambda: backend.upload_part(upload, 1, 0, b"the bytes", content_md5=wrong))
    assert caught.value.status == 422 and caught.value.retryable
    assert swift_bucket.objects.get("bad") is None
    assert account.names(swift_bucket.name + SEGMENTS_SUFFIX) == []


def test_a_refused_body_is_sent_again(through_proxy: tuple[FaultProxy, str, str], swift_bucket: Bucket) -> None:
    proxy, _, _ = through_proxy
    provider = proxied(through_proxy, retry_policy=QUICK)
    bucket = Bucket(provider, BucketInfo(swift_bucket.name))
    proxy.add_rule("status", status=422, methods=["PUT"], path=r"/small\.bin$", limit=1)
    proxy.add_rule("status", status=422, methods=["PUT"], path=r"segments/[0-9a-f]+/000002$", limit=1)
    bucket.objects.create("small.bin").upload(b"retried")
    data = payload(12 * MiB)
    bucket.objects.create("big.bin").upload(data)
    assert proxy.count_requests("PUT", r"/small\.bin$") == 2
    assert proxy.count_requests("PUT", r"segments/[0-9a-f]+/000002$") == 2
    assert swift_bucket.objects.get("small.bin").read() == b"retried"  # type: ignore[union-attr]
    assert swift_bucket.objects.get("big.bin").read() == data  # type: ignore[union-attr]


def test_the_manifest_carries_the_slo_etag(swift: CloudProvider, swift_bucket: Bucket) -> None:
    session = backend_of(swift).store.session.session  # type: ignore[attr-defined]
    captured: list[requests.PreparedRequest] = []

    def hook(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        captured.append(response.request)

    data = payload(7 * MiB)
    session.hooks["response"].append(hook)
    try:
        swift_bucket.objects.create("slo.bin").upload(data)
    finally:
        session.hooks["response"].remove(hook)
    segments = [r for r in captured if r.method == "PUT" and SEGMENTS_SUFFIX in unquote(str(r.url)) and r.body]
    assert sorted(r.headers["ETag"] for r in segments) == sorted(
        [hashlib.md5(data[: 5 * MiB]).hexdigest(), hashlib.md5(data[5 * MiB :]).hexdigest()]
    )
    manifest = next(r for r in captured if "multipart-manifest=put" in str(r.url))
    etags = "".join(entry["etag"] for entry in json.loads(manifest.body))  # type: ignore[arg-type]
    assert manifest.headers["ETag"] == hashlib.md5(etags.encode()).hexdigest()
    assert manifest.headers["ETag"] == swift_bucket.objects.get("slo.bin").etag  # type: ignore[union-attr]


@pytest.mark.parametrize("how", ["file", "read"])
def test_a_flipped_byte_in_a_large_download_is_caught_and_retried_once(
    through_proxy: tuple[FaultProxy, str, str], swift_bucket: Bucket, tmp_path: Path, how: str
) -> None:
    proxy, _, _ = through_proxy
    data = payload(12 * MiB)
    swift_bucket.objects.create("big.bin").upload(data)
    obj = Bucket(proxied(through_proxy, retry_policy=QUICK), BucketInfo(swift_bucket.name)).objects.create("big.bin")
    target = tmp_path / "big.bin"

    def download() -> bytes:
        if how == "file":
            obj.download_to_file(target)
            return target.read_bytes()
        return obj.read()

    proxy.add_rule("flip", methods=["GET"], path=r"/big\.bin$", limit=1)  # one flip: the retry succeeds
    assert download() == data
    assert proxy.stats["flip"] == 1
    target.unlink(missing_ok=True)
    proxy.reset_stats()
    proxy.add_rule("flip", methods=["GET"], path=r"/big\.bin$")  # every time: caught twice, then raised
    # Uploaded from bytes by cloudstore, the object carries its recorded CRC32C, checked range by range.
    with pytest.raises(ChecksumMismatchException, match="crc32c"):
        download()
    assert proxy.stats["flip"] == proxy.count_requests("GET", r"/big\.bin$") == (6 if how == "file" else 2)
    assert list(tmp_path.iterdir()) == []  # no file, no temp file


def test_a_stalled_answer_is_abandoned_at_the_read_timeout_and_retried(
    through_proxy: tuple[FaultProxy, str, str], swift_bucket: Bucket
) -> None:
    proxy, _, _ = through_proxy
    proxy.stall_seconds = 20
    swift_bucket.objects.create("slow.txt").upload(b"worth the wait")
    provider = proxied(through_proxy, retry_policy=QUICK, connect_timeout=2, read_timeout=1)
    assert backend_of(provider).store.session.timeout == (2.0, 1.0)  # type: ignore[attr-defined]  # logins too
    proxy.add_rule("stall", methods=["GET"], path=r"/slow\.txt$", limit=1)
    assert Bucket(provider, BucketInfo(swift_bucket.name)).objects.create("slow.txt").read() == b"worth the wait"
    assert proxy.stats["stall"] == 1 and proxy.count_requests("GET", r"/slow\.txt$") == 2


def test_a_server_that_stops_answering_fails_within_the_deadline(
    through_proxy: tuple[FaultProxy, str, str], swift_bucket: Bucket
) -> None:
    proxy, _, _ = through_proxy
    proxy.stall_seconds = 60
    provider = proxied(through_proxy, retry_policy=RetryPolicy(initial_backoff=0.01, deadline=3), read_timeout=1)
    proxy.add_rule("stall")
    with pytest.raises(ProviderConnectionException) as caught:
        provider.storage.buckets.list()
    assert caught.value.retryable and "timed out" in str(caught.value)
    assert 2 <= proxy.stats["stall"] <= 4  # tried again within the 3 s deadline, then given up


def test_one_injected_503_costs_exactly_one_more_request(
    through_proxy: tuple[FaultProxy, str, str], swift_bucket: Bucket
) -> None:
    proxy, _, _ = through_proxy
    provider = proxied(through_proxy, retry_policy=QUICK)
    bucket = Bucket(provider, BucketInfo(swift_bucket.name))
    for method, path, action in [
        ("PUT", r"/one\.txt$", lambda: bucket.objects.create("one.txt").upload(b"1")),
        ("GET", r"/one\.txt$", lambda: bucket.objects.create("one.txt").read()),
        ("GET", r"\?.*format=json", lambda: bucket.objects.list()),
    ]:
        proxy.reset_stats()
        proxy.add_rule("503", methods=[method], path=path, limit=1)
        action()
        assert proxy.stats["503"] == 1 and proxy.count_requests(method, path) == 2


def test_segments_of_a_large_object_another_client_wrote_go_when_it_is_replaced(
    server: RunningServer, swift: CloudProvider, account: Account
) -> None:
    """This provider saw the container without large objects just before: no cache may hide the new one."""
    bucket = swift.storage.buckets.create(unique_name("other"))
    try:
        obj = bucket.objects.create("theirs.bin")
        obj.upload(b"small first")
        other = Bucket(make_provider(server), BucketInfo(bucket.name))
        other.objects.create("theirs.bin").upload(payload(7 * MiB))
        assert len(account.names(bucket.name + SEGMENTS_SUFFIX)) == 2
        obj.upload(b"small again")
        assert account.names(bucket.name + SEGMENTS_SUFFIX) == []
        other.objects.create("theirs.bin").upload(payload(7 * MiB))
        obj.delete()
        assert account.names(bucket.name + SEGMENTS_SUFFIX) == []
    finally:
        bucket.delete(delete_contents=True)


@pytest.mark.parametrize("how", ["put", "multipart"])
def test_segment_clean_up_runs_under_the_retry_policy_and_a_failure_is_a_warning(
    through_proxy: tuple[FaultProxy, str, str], swift_bucket: Bucket, account: Account, how: str
) -> None:
    proxy, _, _ = through_proxy
    attempts = 3
    provider = proxied(through_proxy, retry_policy=RetryPolicy(max_attempts=attempts, initial_backoff=0.01))
    obj = Bucket(provider, BucketInfo(swift_bucket.name)).objects.create("big.bin")
    new = b"small" if how == "put" else payload(7 * MiB)
    segments = swift_bucket.name + SEGMENTS_SUFFIX

    obj.upload(payload(11 * MiB))
    proxy.add_rule("500", methods=["POST"], path=r"bulk-delete", limit=1)  # one failure: retried
    obj.upload(new)
    assert proxy.count_requests("POST", r"bulk-delete") == 2
    assert len(account.names(segments)) == (0 if how == "put" else 2)

    obj.upload(payload(11 * MiB))
    proxy.reset_stats()
    proxy.add_rule("500", methods=["POST"], path=r"bulk-delete")  # every attempt fails
    with pytest.warns(CleanupWarning, match="Swift answered 500"):
        obj.upload(new)
    assert proxy.count_requests("POST", r"bulk-delete") == attempts
    assert obj.read() == new  # the object is stored all the same
    assert len(account.names(segments)) == 3 + (0 if how == "put" else 2)  # the old ones are left, and said so


def test_debug_logging_shows_no_key_nor_body_and_keeps_downloads_intact(
    server: RunningServer, swift_bucket: Bucket, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """keystoneauth logs requests at DEBUG: never the TempURL key, nor a body (it would consume a stream)."""
    provider = make_provider(server, os_temp_url_key="configured-secret-key")
    bucket = Bucket(provider, BucketInfo(swift_bucket.name))
    document = json.dumps({"body-marker": list(range(2000))}).encode()
    with caplog.at_level(logging.DEBUG):
        obj = bucket.objects.create("doc.json")
        obj.upload(document, content_type="application/json")
        assert obj.read() == document
        assert b"".join(obj.iter_content()) == document
        obj.download_to_file(tmp_path / "doc.json")
        assert (tmp_path / "doc.json").read_bytes() == document
        url = obj.generate_url(60)
        bucket.objects.create("plain.txt").upload(b"text-marker", content_type="text/plain")
        assert bucket.objects.get("plain.txt").read() == b"text-marker"  # type: ignore[union-attr]
        bucket.objects.list()
    assert fetch(url) == (200, document)
    assert any(r.name.startswith("keystoneauth") for r in caplog.records)  # it does log, at DEBUG
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (server.extra["temp_url_key"], "configured-secret-key", "body-marker", "text-marker"):
        assert secret not in logged
    Account(server, server.config["os_username"], server.config["os_password"]).call(
        "POST", headers={"X-Remove-Account-Meta-Temp-URL-Key-2": "x"}
    )


def test_large_objects_other_tools_wrote_are_verified_from_their_manifest(
    through_proxy: tuple[FaultProxy, str, str], swift: CloudProvider, swift_bucket: Bucket, account: Account
) -> None:
    """No recorded layout: the manifest (one more request, on the first read) gives the segment sizes."""
    proxy, _, _ = through_proxy
    container = swift_bucket.name
    account.call("PUT", f"/{container}{SEGMENTS_SUFFIX}")
    pieces = [payload(3 * MiB), payload(1 * MiB + 7), payload(2 * MiB)]
    manifest = []
    for number, piece in enumerate(pieces):
        path = f"/{container}{SEGMENTS_SUFFIX}/theirs/{number}"  # removed with the container
        assert account.call("PUT", path, data=piece).status_code == 201
        manifest.append({"path": path, "etag": hashlib.md5(piece).hexdigest()})
    put = account.call("PUT", f"/{container}/theirs.bin?multipart-manifest=put", data=json.dumps(manifest))
    assert put.status_code == 201
    ranged = [{**manifest[0], "range": "0-99"}, manifest[1]]
    assert account.call("PUT", f"/{container}/ranged.bin?multipart-manifest=put", data=json.dumps(ranged)).ok
    data = b"".join(pieces)

    with backend_of(swift).get_object(container, "theirs.bin") as reader:
        assert reader.info is not None
        assert reader.info.checksum == Checksum("md5-of-part-hexes", reader.info.etag, tuple(map(len, pieces)))
    with backend_of(swift).get_object(container, "ranged.bin") as reader:  # a range's ETag is not its MD5
        assert reader.info is not None and reader.info.checksum is None
    assert swift_bucket.objects.get("ranged.bin").read() == pieces[0][:100] + pieces[1]  # type: ignore[union-attr]
    with sent_requests(swift) as seen:
        assert swift_bucket.objects.create("theirs.bin").read() == data
    assert [m for m, _ in seen] == ["GET", "GET"]

    obj = Bucket(proxied(through_proxy, retry_policy=QUICK), BucketInfo(container)).objects.create("theirs.bin")
    proxy.add_rule("flip", methods=["GET"], path=r"/theirs\.bin$")
    with pytest.raises(ChecksumMismatchException):
        obj.read()


def test_a_segments_container_that_cannot_be_removed_is_a_warning(
    through_proxy: tuple[FaultProxy, str, str], swift: CloudProvider, account: Account
) -> None:
    proxy, _, _ = through_proxy
    name = unique_name("segs")
    provider = proxied(through_proxy, retry_policy=RetryPolicy(max_attempts=2, initial_backoff=0.01))
    bucket = provider.storage.buckets.create(name)
    bucket.objects.create("big.bin").upload(payload(7 * MiB))
    bucket.objects.get("big.bin").delete()  # type: ignore[union-attr]
    proxy.add_rule("500", methods=["DELETE"], path=r"segments$")
    with pytest.warns(CleanupWarning, match=r"segments container .* could not be removed"):
        bucket.delete()
    assert proxy.count_requests("DELETE", r"segments$") == 2  # under the retry policy
    assert swift.storage.buckets.get(name) is None
    assert account.call("DELETE", "/" + quote(name + SEGMENTS_SUFFIX)).status_code == 204


class BodyFlipper:
    """A loopback TCP relay that flips one byte of the first request body holding ``marker``.

    A minimal stand-in until tests/faults/ can damage request bodies: the marker is searched in
    what the client sends (also across reads), so only that request's body changes.
    """

    def __init__(self, upstream: tuple[str, int], marker: bytes) -> None:
        self.upstream, self.marker, self.flips = upstream, marker, 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._listener.accept()
                server = socket.create_connection(self.upstream)
                for source, sink, flip in ((client, server, True), (server, client, False)):
                    thread = threading.Thread(target=self._pump, args=(source, sink, flip), daemon=True)
                    thread.start()
                    self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, flip: bool) -> None:
        sent_tail = b""  # the last bytes already relayed, to find a marker split across reads
        with contextlib.suppress(OSError), source, sink:
            while data := source.recv(65536):
                if flip and not self.flips:
                    at = (sent_tail + data).find(self.marker)
                    if at >= 0:
                        # The marker's last byte is always in the new data.
                        last = at + len(self.marker) - 1 - len(sent_tail)
                        data = data[:last] + bytes([data[last] ^ 0xFF]) + data[last + 1 :]
                        self.flips += 1
                    sent_tail = (sent_tail + data)[-len(self.marker) :]
                sink.sendall(data)
            sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        self._listener.close()


@pytest.mark.parametrize("size", [1000, 7 * MiB])
def test_a_byte_flipped_in_an_upload_body_is_refused_then_sent_again(
    server: RunningServer, swift_bucket: Bucket, size: int
) -> None:
    storage_url, token = login(server, server.config["os_username"], server.config["os_password"])
    data = payload(size)
    marker = data[size // 2 : size // 2 + 32]
    flipper = BodyFlipper(("127.0.0.1", server.extra["proxy_port"]), marker)
    try:
        config = {"os_storage_url": flipper.url + urlsplit(storage_url).path, "os_auth_token": token}
        once = CloudProviderFactory().create_provider(
            ProviderList.OPENSTACK, {**config, "transfer_config": TEST_TRANSFER, "retry_policy": ONE_TRY}
        )
        with pytest.raises(ChecksumMismatchException):
            Bucket(once, BucketInfo(swift_bucket.name)).objects.create("flipped.bin").upload(data)
        assert flipper.flips == 1 and swift_bucket.objects.get("flipped.bin") is None  # nothing stored
        flipper.flips = 0
        patient = CloudProviderFactory().create_provider(
            ProviderList.OPENSTACK, {**config, "transfer_config": TEST_TRANSFER, "retry_policy": QUICK}
        )
        Bucket(patient, BucketInfo(swift_bucket.name)).objects.create("flipped.bin").upload(data)
        assert flipper.flips == 1
        assert swift_bucket.objects.get("flipped.bin").read() == data  # type: ignore[union-attr]
        once.close()
        patient.close()  # their connections end, and with them the relay's threads
    finally:
        flipper.close()

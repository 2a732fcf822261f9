"""SPEC 5: signed URLs fetched with plain urllib, on every provider."""

from __future__ import annotations

import time
import urllib.error
import urllib.request

import pytest

from cloudstore import Bucket, CloudProvider, CloudProviderFactory, InvalidParamException, NotSupportedException
from tests.conftest import make_provider, servers_checking_signatures
from tests.servers.base import RunningServer

#: Providers without signed URLs (``features.signed_urls`` false) are deselected.
pytestmark = pytest.mark.needs("signed_urls")

#: The rejection cases need a server that checks signatures (fake-gcs-server does through its gateway).
CHECKING_SERVERS = pytest.mark.parametrize("server", servers_checking_signatures(), indirect=True)

#: Azure needs this header on a PUT; the others ignore it (as seeds/003 says).
PUT_HEADERS = {"x-ms-blob-type": "BlockBlob"}


def fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method, headers=PUT_HEADERS if method == "PUT" else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_signed_get(bucket: Bucket) -> None:
    obj = bucket.objects.create("shared/report v1.txt")
    obj.upload(b"share me")
    url = obj.generate_url(expires_in=600)
    assert url.startswith("http")
    assert fetch(url) == (200, b"share me")


def test_signed_put_then_read_back(bucket: Bucket) -> None:
    obj = bucket.objects.create("incoming/upload.bin")
    url = obj.generate_url(expires_in=600, writable=True)
    status, _ = fetch(url, "PUT", b"uploaded through a URL")
    assert 200 <= status < 300
    got = bucket.objects.get("incoming/upload.bin")
    assert got is not None and got.read() == b"uploaded through a URL"


@CHECKING_SERVERS
def test_writable_url_cannot_read(bucket: Bucket) -> None:
    obj = bucket.objects.create("secret.txt")
    obj.upload(b"not for writers")
    url = obj.generate_url(expires_in=600, writable=True)
    status, body = fetch(url)
    assert status in (401, 403)
    assert b"not for writers" not in body


@CHECKING_SERVERS
def test_read_url_cannot_write(bucket: Bucket) -> None:
    obj = bucket.objects.create("readonly.txt")
    obj.upload(b"original")
    status, _ = fetch(obj.generate_url(expires_in=600), "PUT", b"overwritten")
    assert status in (401, 403, 405)
    assert bucket.objects.get("readonly.txt").read() == b"original"  # type: ignore[union-attr]


@CHECKING_SERVERS
def test_tampered_url_refused(bucket: Bucket) -> None:
    obj = bucket.objects.create("a.txt")
    obj.upload(b"A")
    bucket.objects.create("b.txt").upload(b"B")
    url = obj.generate_url(expires_in=600)
    assert fetch(url.replace("/a.txt", "/b.txt"))[0] in (401, 403)


@CHECKING_SERVERS
def test_expired_url_refused(bucket: Bucket) -> None:
    obj = bucket.objects.create("short-lived.txt")
    obj.upload(b"soon gone")
    url = obj.generate_url(expires_in=1)
    time.sleep(2.5)
    status, body = fetch(url)
    assert status in (400, 401, 403)  # GCS answers 400 ExpiredToken, the others 401 or 403
    assert b"soon gone" not in body


@pytest.mark.parametrize("bad", [0, -5, "3600", 1.5])
def test_bad_expiry_rejected(bucket: Bucket, bad: object) -> None:
    obj = bucket.objects.create("x")
    with pytest.raises(InvalidParamException):
        obj.generate_url(expires_in=bad)  # type: ignore[arg-type]


def test_expiry_limit(provider: CloudProvider, bucket: Bucket) -> None:
    limit = provider.max_url_expiry
    service_limit = provider.features.max_url_expiry
    assert limit == 7 * 24 * 3600 if service_limit is None else min(service_limit, 7 * 24 * 3600)
    obj = bucket.objects.create("limits")
    obj.upload(b"x")
    assert obj.generate_url(expires_in=limit)
    with pytest.raises(InvalidParamException, match="at most"):
        obj.generate_url(expires_in=limit + 1)


def test_expiry_limit_can_be_raised_only_where_the_service_allows(server: RunningServer) -> None:
    month = 30 * 24 * 3600
    provider = make_provider(server, max_url_expiry=month)
    if provider.features.max_url_expiry is not None and provider.features.max_url_expiry < month:
        with pytest.raises(InvalidParamException, match="longer than"):
            _ = provider.max_url_expiry
    else:
        assert provider.max_url_expiry == month


def test_a_provider_without_signed_urls_refuses_before_any_request() -> None:
    """``features.signed_urls`` false: NotSupportedException, and the backend is never asked."""
    provider = CloudProviderFactory().create_provider("memory")
    assert provider.features.signed_urls is False
    bucket = provider.storage.buckets.create("no-urls")
    obj = bucket.objects.create("k")
    obj.upload(b"v")
    with pytest.raises(NotSupportedException, match="no signed URLs"):
        obj.generate_url(expires_in=600)

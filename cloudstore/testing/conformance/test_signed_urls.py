"""SPEC 5: signed URLs fetched with plain urllib, on every provider."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable

import pytest

from cloudstore import Bucket, CloudProvider, InvalidParamException
from cloudstore.testing import Quirks, Target

Fetch = Callable[..., tuple[int, bytes]]

#: Providers without signed URLs (``features.signed_urls`` false) are deselected.
pytestmark = pytest.mark.needs("signed_urls")


@pytest.fixture
def fetch(quirks: Quirks) -> Fetch:
    """``fetch(url, method="GET", data=None)`` with plain urllib: the status and the body."""

    def fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
        headers = dict(quirks.signed_put_headers) if method == "PUT" else {}
        request = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    return fetch


@pytest.fixture
def checked(quirks: Quirks, cloudstore_target: Target) -> None:
    """The refusal cases need a store that checks signatures (fake-gcs-server does through its gateway)."""
    if quirks.unchecked_signatures:
        pytest.skip(f"{cloudstore_target.provider}: {quirks.unchecked_signatures}")


def test_signed_get(bucket: Bucket, fetch: Fetch) -> None:
    obj = bucket.objects.create("shared/report v1.txt")
    obj.upload(b"share me")
    url = obj.generate_url(expires_in=600)
    assert url.startswith("http")
    assert fetch(url) == (200, b"share me")


def test_signed_put_then_read_back(bucket: Bucket, fetch: Fetch) -> None:
    obj = bucket.objects.create("incoming/upload.bin")
    url = obj.generate_url(expires_in=600, writable=True)
    status, _ = fetch(url, "PUT", b"uploaded through a URL")
    assert 200 <= status < 300
    got = bucket.objects.get("incoming/upload.bin")
    assert got is not None and got.read() == b"uploaded through a URL"


@pytest.mark.usefixtures("checked")
def test_writable_url_cannot_read(bucket: Bucket, fetch: Fetch) -> None:
    obj = bucket.objects.create("secret.txt")
    obj.upload(b"not for writers")
    url = obj.generate_url(expires_in=600, writable=True)
    status, body = fetch(url)
    assert status in (401, 403)
    assert b"not for writers" not in body


@pytest.mark.usefixtures("checked")
def test_read_url_cannot_write(bucket: Bucket, fetch: Fetch) -> None:
    obj = bucket.objects.create("readonly.txt")
    obj.upload(b"original")
    status, _ = fetch(obj.generate_url(expires_in=600), "PUT", b"overwritten")
    assert status in (401, 403, 405)
    assert bucket.objects.get("readonly.txt").read() == b"original"  # type: ignore[union-attr]


@pytest.mark.usefixtures("checked")
def test_tampered_url_refused(bucket: Bucket, fetch: Fetch) -> None:
    obj = bucket.objects.create("a.txt")
    obj.upload(b"A")
    bucket.objects.create("b.txt").upload(b"B")
    url = obj.generate_url(expires_in=600)
    assert fetch(url.replace("/a.txt", "/b.txt"))[0] in (401, 403)


@pytest.mark.usefixtures("checked")
def test_expired_url_refused(bucket: Bucket, fetch: Fetch) -> None:
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


def test_expiry_limit_can_be_raised_only_where_the_service_allows(cloudstore_target: Target) -> None:
    month = 30 * 24 * 3600
    provider = cloudstore_target.make_provider(max_url_expiry=month)
    if provider.features.max_url_expiry is not None and provider.features.max_url_expiry < month:
        with pytest.raises(InvalidParamException, match="longer than"):
            _ = provider.max_url_expiry
    else:
        assert provider.max_url_expiry == month

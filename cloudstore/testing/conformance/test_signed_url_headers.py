"""Signed URLs that say what they need (``SignedURL``), and writable URLs that pin headers."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest

from cloudstore import Bucket, NotSupportedException, SignedURL
from cloudstore.testing import Quirks

pytestmark = pytest.mark.needs("signed_urls")


def send(url: str, method: str, data: bytes | None = None, headers: Mapping[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        err.read()
        return int(err.code)


def test_signed_url_tells_method_headers_and_expiry(bucket: Bucket) -> None:
    before = datetime.now(UTC)
    put = bucket.objects.create("in.txt").generate_url(600, writable=True)
    assert isinstance(put, SignedURL) and isinstance(put, str)
    assert put.method == "PUT"
    assert before + timedelta(seconds=598) <= put.expires_at <= datetime.now(UTC) + timedelta(seconds=601)
    # Whatever headers it lists are all the request needs (Azure's blob type included).
    assert 200 <= send(put, put.method, b"through the URL", put.headers) < 300
    get = bucket.objects.get("in.txt").generate_url(60)  # type: ignore[union-attr]
    assert get.method == "GET" and get.headers == {}
    with urllib.request.urlopen(get, timeout=30) as response:
        assert response.read() == b"through the URL"


@pytest.mark.needs("signed_url_headers")
def test_pinned_headers_are_enforced(bucket: Bucket) -> None:
    body = b'{"weights": [1, 2, 3]}'
    md5 = hashlib.md5(body).digest()
    obj = bucket.objects.create("model.json")
    url = obj.generate_url(600, writable=True, content_type="application/json", content_md5=md5, metadata={"v": "3"})
    assert url.headers["Content-Type"] == "application/json"
    assert set(url.headers) >= {"Content-Type", "Content-MD5"}
    wrong_type = {**url.headers, "Content-Type": "text/html"}
    assert send(url, "PUT", body, wrong_type) in (400, 403)
    wrong_meta = {name: ("4" if name.lower().endswith("-meta-v") else value) for name, value in url.headers.items()}
    assert send(url, "PUT", body, wrong_meta) in (400, 403)
    assert bucket.objects.get("model.json") is None
    assert 200 <= send(url, "PUT", body, url.headers) < 300
    stored = bucket.objects.get("model.json")
    assert stored is not None and stored.read() == body and stored.content_type == "application/json"


@pytest.mark.lacks("signed_url_headers")
def test_pins_refused_where_the_service_would_not_enforce_them(bucket: Bucket) -> None:
    with pytest.raises(NotSupportedException):
        bucket.objects.create("x").generate_url(60, writable=True, content_type="text/plain")


@pytest.mark.needs("signed_url_headers")
def test_pinned_md5_refuses_other_bytes(bucket: Bucket, quirks: Quirks) -> None:
    if quirks.unchecked_content_md5:  # declared by the test server, with what the real service does
        pytest.xfail(quirks.unchecked_content_md5)
    body = b"the dataset"
    url = bucket.objects.create("data.bin").generate_url(600, writable=True, content_md5=hashlib.md5(body).hexdigest())
    assert send(url, "PUT", b"other bytes", url.headers) in (400, 403)
    assert bucket.objects.get("data.bin") is None
    assert 200 <= send(url, "PUT", body, url.headers) < 300

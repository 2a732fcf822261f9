"""The signature-checking gateway in front of fake-gcs-server (``tests/support/servers/gcs_gateway.py``).

First its check alone, on URLs the google-cloud-storage SDK signs offline with a throwaway
key (a good URL passes; each tampering fails, expiry by an explicit clock); then the running
gateway of the ``gcp`` test server, on URLs the provider signs: served when valid, refused
as GCS refuses them otherwise, bodies relayed intact.
"""

from __future__ import annotations

import http.client
import time as clock
import urllib.error
import urllib.request
from datetime import UTC, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import google.oauth2.service_account
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from cloudstore import Bucket
from tests.conftest import bucket_fixture, provider_fixture, server_fixture
from tests.support.servers.base import RunningServer
from tests.support.servers.fakegcs import make_service_account_info
from tests.support.servers.gcs_gateway import MAX_EXPIRES, Rejection, check_signed_request, is_signed

ENDPOINT = "http://127.0.0.1:4443"
INFO, PUBLIC_KEY = make_service_account_info()
EMAIL = INFO["client_email"]
KEYS = {EMAIL: PUBLIC_KEY}
CREDENTIALS = google.oauth2.service_account.Credentials.from_service_account_info(INFO)
NAME = "reports/Q1 résumé+final~v2.txt"


def sign(name: str = NAME, method: str = "GET", expires_in: int = 600, **options: Any) -> str:
    """A V4 signed URL for ``bkt/name`` made by the SDK, without any request."""
    client = storage.Client(project="p", credentials=AnonymousCredentials(), client_options={"api_endpoint": ENDPOINT})
    blob = client.bucket("bkt").blob(name)
    return str(
        blob.generate_signed_url(
            version="v4",
            method=method,
            expiration=timedelta(seconds=expires_in),
            credentials=CREDENTIALS,
            api_access_endpoint=ENDPOINT,
            **options,
        )
    )


def signed_at(url: str) -> datetime:
    date = dict(pair.split("=", 1) for pair in urlsplit(url).query.split("&"))["X-Goog-Date"]
    return datetime.strptime(date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def check(
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    keys: Any = KEYS,
    after: float = 1.0,
    signed: str | None = None,
) -> Rejection | None:
    """The gateway's verdict on ``url`` requested ``after`` seconds past the time ``signed``
    (default: ``url``) was signed at."""
    parts = urlsplit(url)
    target = urlunsplit(("", "", parts.path, parts.query, ""))
    received = {"host": parts.netloc, **(headers or {})}
    return check_signed_request(method, target, received, keys, signed_at(signed or url) + timedelta(seconds=after))


def code_of(rejection: Rejection | None) -> tuple[int, str] | None:
    return None if rejection is None else (rejection.status, rejection.code)


MISMATCH = (403, "SignatureDoesNotMatch")


# --- the check alone ----------------------------------------------------------------------------
def test_good_urls_pass() -> None:
    assert check(sign()) is None
    assert check(sign(method="PUT"), "PUT") is None
    assert check(sign(expires_in=MAX_EXPIRES), after=MAX_EXPIRES - 1) is None
    # Extra signed query parameters, with characters that need encoding, sorted into the signature.
    url = sign(response_disposition='attachment; filename="a b+c.txt"', response_type="text/plain")
    assert check(url) is None
    assert is_signed(urlsplit(url).path + "?" + urlsplit(url).query)
    assert not is_signed("/storage/v1/b/bkt/o?alt=json&prefix=X-Goog-Signature")


def test_expiry_is_checked() -> None:
    url = sign(expires_in=60)
    assert check(url, after=60) is None  # the last valid second
    assert code_of(check(url, after=61)) == (400, "ExpiredToken")
    rejection = check(url, after=3600)
    assert rejection is not None and b"<Code>ExpiredToken</Code>" in rejection.xml()


def test_each_tampering_fails() -> None:
    url = sign()
    parts = urlsplit(url)
    quoted_name = parts.path.split("/", 2)[2]
    at = signed_at(url)
    one_second = timedelta(seconds=-1 if at.time() != time(0) else 1)  # the same day: the same scope
    tampered = {
        "other object": url.replace(quoted_name, "reports/other.txt"),
        "other bucket": url.replace("/bkt/", "/bkt2/"),
        "longer expiry": url.replace("X-Goog-Expires=600", "X-Goog-Expires=604800"),
        "other time": url.replace(f"X-Goog-Date={stamp(at)}", f"X-Goog-Date={stamp(at + one_second)}"),
        "flipped signature": url[:-4] + ("0000" if not url.endswith("0000") else "1111"),
        "signature not hex": url[:-1] + "g",
        "added parameter": url + "&generation=1",
        "other host": urlunsplit(parts._replace(netloc="127.0.0.1:1")),
    }
    for what, bad in tampered.items():
        assert code_of(check(bad)) == MISMATCH, what
    # A URL signed for one method serves no other.
    assert code_of(check(url, "PUT")) == MISMATCH
    assert code_of(check(sign(method="PUT"), "GET")) == MISMATCH
    assert code_of(check(url, "DELETE")) == MISMATCH
    # Another key, or an account the gateway does not know, does not verify it.
    _, other_key = make_service_account_info()
    assert code_of(check(url, keys={EMAIL: other_key})) == MISMATCH
    assert code_of(check(url, keys={})) == MISMATCH


def test_signed_headers_must_be_sent() -> None:
    url = sign(method="PUT", content_type="text/csv")
    assert "content-type" in urlsplit(url).query
    assert check(url, "PUT", {"content-type": "text/csv"}) is None
    assert check(url, "PUT", {"content-type": "  text/csv "}) is None  # values are trimmed
    assert code_of(check(url, "PUT")) == MISMATCH
    assert code_of(check(url, "PUT", {"content-type": "text/html"})) == MISMATCH
    # A signed X-Goog-Content-SHA256 takes the place of UNSIGNED-PAYLOAD.
    digest = "0" * 63 + "1"
    url = sign(method="PUT", headers={"X-Goog-Content-SHA256": digest})
    assert check(url, "PUT", {"x-goog-content-sha256": digest}) is None
    assert code_of(check(url, "PUT", {"x-goog-content-sha256": "0" * 64})) == MISMATCH


def test_mismatch_answer_shows_what_was_signed() -> None:
    rejection = check(sign(), "PUT")
    assert rejection is not None and rejection.canonical_request is not None
    assert rejection.canonical_request.startswith("PUT\n/bkt/reports/Q1%20r%C3%A9sum%C3%A9%2Bfinal~v2.txt\n")
    assert rejection.canonical_request.endswith("\nhost\nUNSIGNED-PAYLOAD")
    body = rejection.xml()
    assert b"<StringToSign>GOOG4-RSA-SHA256\n" in body and b"PRIVATE KEY" not in body


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("X-Goog-Algorithm=GOOG4-RSA-SHA256", "X-Goog-Algorithm=GOOG4-HMAC-SHA256"),
        ("X-Goog-Expires=600", "X-Goog-Expires=604801"),
        ("X-Goog-Expires=600", "X-Goog-Expires=0"),
        ("X-Goog-Expires=600", "X-Goog-Expires=ten"),
        ("X-Goog-Date=", "X-Goog-Date=yesterday&X-Old-Date="),
        ("X-Goog-Credential=", "X-Goog-Nothing="),
        ("%2Fauto%2Fstorage%2F", "%2Fus%2Fstorage%2F"),
    ],
)
def test_malformed_signing_parameters_are_refused(old: str, new: str) -> None:
    url = sign()
    assert old in url
    assert code_of(check(url.replace(old, new, 1), signed=url)) == (400, "MalformedSecurityHeader")


# --- the running gateway ------------------------------------------------------------------------
gcs = server_fixture("gcp")
provider = provider_fixture(server="gcs")
bucket = bucket_fixture("gateway")


def fetch(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes, str]:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def test_gateway_serves_good_urls_and_refuses_tampered_ones(gcs: RunningServer, bucket: Bucket) -> None:
    obj = bucket.objects.create(NAME)
    obj.upload(b"the real content")
    bucket.objects.create("reports/other.txt").upload(b"another object")
    url = obj.generate_url(expires_in=600)
    assert url.startswith(gcs.extra["url"] + "/")
    assert fetch(url)[:2] == (200, b"the real content")
    quoted_name = urlsplit(url).path.split("/", 2)[2]
    for bad in (
        url.replace(quoted_name, "reports/other.txt"),
        url.replace("X-Goog-Expires=600", "X-Goog-Expires=604800"),
        url[:-4] + ("0000" if not url.endswith("0000") else "1111"),
    ):
        status, body, content_type = fetch(bad)
        assert (status, content_type) == (403, "application/xml; charset=UTF-8")
        assert b"<Code>SignatureDoesNotMatch</Code>" in body and b"content" not in body
    # The emulator itself serves a tampered URL (given the Host it serves signed URLs for):
    # the refusal is the gateway's.
    direct = bad.replace(gcs.extra["url"], gcs.extra["emulator_url"])
    host = {"Host": urlsplit(gcs.extra["url"]).netloc}
    assert fetch(direct, headers=host)[:2] == (200, b"the real content")


def test_gateway_checks_the_method(bucket: Bucket) -> None:
    obj = bucket.objects.create("method.txt")
    obj.upload(b"original")
    write_url = obj.generate_url(expires_in=600, writable=True)
    assert fetch(write_url)[0] == 403
    assert fetch(obj.generate_url(expires_in=600), "PUT", b"overwritten")[0] == 403
    assert fetch(write_url, "DELETE")[0] == 403
    assert obj.read() == b"original"
    status, _, _ = fetch(write_url, "PUT", b"replaced")
    assert status == 200 and obj.read() == b"replaced"


def test_gateway_refuses_expired_urls(bucket: Bucket) -> None:
    obj = bucket.objects.create("expiring.txt")
    obj.upload(b"soon gone")
    url = obj.generate_url(expires_in=1)
    # X-Goog-Date has whole seconds: two seconds after it the URL is past its expiry for sure.
    clock.sleep(max(0.0, (signed_at(url) + timedelta(seconds=2) - datetime.now(UTC)).total_seconds()))
    status, body, _ = fetch(url)
    assert status == 400 and b"<Code>ExpiredToken</Code>" in body and b"soon gone" not in body


def test_gateway_streams_bodies_both_ways(gcs: RunningServer, bucket: Bucket) -> None:
    payload = bytes(range(256)) * (4 * 1024 * 9)  # 9 MiB
    obj = bucket.objects.create("big.bin")
    status, _, _ = fetch(obj.generate_url(expires_in=600, writable=True), "PUT", payload)
    assert status == 200
    assert fetch(obj.generate_url(expires_in=600))[:2] == (200, payload)
    # A chunked request body is relayed with its framing; HEAD gets the head only.
    url = urlsplit(bucket.objects.create("chunked.txt").generate_url(expires_in=600, writable=True))
    connection = http.client.HTTPConnection(url.netloc, timeout=30)
    connection.request("PUT", f"{url.path}?{url.query}", body=iter([b"first,", b"second"]), encode_chunked=True)
    assert connection.getresponse().status == 200
    connection.close()
    assert bucket.objects.get("chunked.txt").read() == b"first,second"  # type: ignore[union-attr]


def test_unsigned_requests_are_relayed_unchanged(gcs: RunningServer, bucket: Bucket) -> None:
    """The JSON API behind the gateway answers as the emulator does, errors included."""
    base = gcs.extra["url"]
    status, body, content_type = fetch(f"{base}/storage/v1/b/{bucket.name}/o/absent")
    assert status == 404 and content_type.startswith("application/json")
    assert fetch(f"{gcs.extra['emulator_url']}/storage/v1/b/{bucket.name}/o/absent")[:2] == (404, body)


def test_gateway_keeps_connections_open_as_the_emulator_does(bucket: Bucket) -> None:
    obj = bucket.objects.create("again.txt")
    obj.upload(b"twice")
    url = urlsplit(obj.generate_url(expires_in=600))
    connection = http.client.HTTPConnection(url.netloc, timeout=30)
    try:
        for _ in range(2):
            connection.request("GET", f"{url.path}?{url.query}")
            response = connection.getresponse()
            assert (response.status, response.read(), response.will_close) == (200, b"twice", False)
        # A refused request may leave its body unread: the gateway closes that connection.
        connection.request("GET", f"{url.path}?{url.query}".replace("X-Goog-Expires=600", "X-Goog-Expires=601"))
        response = connection.getresponse()
        assert (response.status, response.will_close) == (403, True)
    finally:
        connection.close()

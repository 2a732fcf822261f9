"""GCS specifics on fake-gcs-server: auth modes, signed-URL signatures, compose uploads,
checksums, error mapping and request counts (the conformance suite covers the common contract).

fake-gcs-server checks no credentials, so the tests check what the provider *sends* (the
bearer token of each mode) as well as what the server does; URL signatures are checked by
the gateway in front of the server (tests/support/servers/gcs_gateway.py), with the throwaway key's
public key.
Faults (503, 429, 401, resets, flipped bytes) come from the fault proxy in front of the server.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit

import google_crc32c
import pytest
import requests
import requests.adapters
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from google.cloud import storage

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
from cloudstore.backend import BucketInfo
from cloudstore.providers.gcp.backend import GCSBackend, blob_checksum
from cloudstore.providers.gcp.compose import HIDDEN_PREFIX
from cloudstore.providers.gcp.errors import error_from_body, map_gcs_error
from cloudstore.providers.gcp.paging import BucketMarker, ObjectPager
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
from tests.support.servers.fakegcs import make_service_account_info
from tests.support.servers.gcs_gateway import check_signed_request

FAST_RETRIES = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, deadline=20)
NO_RETRIES = RetryPolicy(max_attempts=1)
SCOPE = "https://www.googleapis.com/auth/devstorage.full_control"


# --- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def clean_google_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credentials or emulator settings leak in from the environment; no gcloud config."""
    for var in ("GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "STORAGE_EMULATOR_HOST"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud-empty"))
    monkeypatch.setenv("CLOUDSTORE_CONFIG", str(tmp_path / "no-config.ini"))


gcs = server_fixture("gcp")
provider = provider_fixture(server="gcs")
bucket = bucket_fixture("gcp")


@pytest.fixture
def proxy(gcs: RunningServer) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=("127.0.0.1", gcs.extra["port"]), seed=11) as running:
        yield running


def sdk_client(gcs: RunningServer) -> storage.Client:
    """A plain SDK client on the emulator, to look behind the provider's back."""
    from google.auth.credentials import AnonymousCredentials

    return storage.Client(
        project="cloudstore-test",
        credentials=AnonymousCredentials(),
        client_options={"api_endpoint": gcs.extra["url"]},
    )


def hidden_parts(gcs: RunningServer, bucket: str) -> list[str]:
    return [b.name for b in sdk_client(gcs).list_blobs(bucket, prefix=HIDDEN_PREFIX)]


def record_authorization(provider: CloudProvider) -> list[str | None]:
    """The Authorization header of every request the provider sends from now on (through the
    SDK's session and through the lean path's pool)."""
    seen: list[str | None] = []
    backend = backend_of(provider)
    session = backend.client._http  # type: ignore[attr-defined]

    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        seen.append(response.request.headers.get("Authorization"))

    session.hooks["response"].append(hook)
    pool = backend.rest.pool  # type: ignore[attr-defined]
    send = pool.request

    def recording(method: str, origin: Any, target: str, headers: Any = None, *args: Any, **kwargs: Any) -> Any:
        seen.append({k.lower(): v for k, v in (headers or {}).items()}.get("authorization"))
        return send(method, origin, target, headers, *args, **kwargs)

    pool.request = recording
    return seen


def b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


# --- auth modes --------------------------------------------------------------------------------
def test_creating_a_provider_makes_no_request(gcs: RunningServer, proxy: FaultProxy) -> None:
    made = make_provider(gcs, gcp_endpoint_url=proxy.url)
    assert backend_of(made) is not None  # the backend (and its credentials) exist now
    assert proxy.stats["requests"] == 0
    made.storage.buckets.get("does-not-matter")
    assert proxy.stats["requests"] == 1


def test_anonymous_with_an_emulator_endpoint(gcs: RunningServer) -> None:
    anonymous = make_provider(gcs, gcp_service_creds_dict=None)
    seen = record_authorization(anonymous)
    name = unique_name("anon")
    bucket = anonymous.storage.buckets.create(name)
    bucket.objects.create("x").upload(b"anonymous")
    assert bucket.objects.get("x").read() == b"anonymous"  # type: ignore[union-attr]
    bucket.delete(delete_contents=True)
    assert seen and all(header is None for header in seen)
    with pytest.raises(NotSupportedException, match="service-account key"):
        bucket.objects.create("x").generate_url()


def test_service_account_sends_a_self_signed_jwt(gcs: RunningServer, tmp_path: Path) -> None:
    """With an endpoint override a key file authenticates without any token exchange."""
    info, public_key = make_service_account_info(email="file-sa@proj-from-key.iam.gserviceaccount.com")
    info["project_id"] = "proj-from-key"
    key_file = tmp_path / "key.json"
    key_file.write_text(json.dumps(info))
    keyed = make_provider(gcs, gcp_service_creds_dict=None, gcp_service_creds_file=str(key_file), gcp_project_name=None)
    assert backend_of(keyed).client.project == "proj-from-key"  # type: ignore[attr-defined]
    seen = record_authorization(keyed)
    assert keyed.storage.buckets.get(unique_name("nope")) is None
    assert len(seen) == 1 and seen[0] is not None and seen[0].startswith("Bearer ")
    header, payload, signature = seen[0].removeprefix("Bearer ").split(".")
    public_key.verify(b64url(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
    claims = json.loads(b64url(payload))
    assert claims["iss"] == claims["sub"] == info["client_email"]
    assert SCOPE in claims["scope"].split()
    assert claims["exp"] > time.time()


def test_service_account_dict_may_be_json_text(gcs: RunningServer) -> None:
    info, _ = make_service_account_info()
    made = make_provider(gcs, gcp_service_creds_dict=json.dumps(info))
    assert made.storage.buckets.get(unique_name("nope")) is None


def test_access_token_is_sent_as_bearer(gcs: RunningServer) -> None:
    made = make_provider(gcs, gcp_service_creds_dict=None, gcp_access_token="ya29.session-token")
    seen = record_authorization(made)
    assert made.storage.buckets.get(unique_name("nope")) is None  # the SDK's session
    assert made.storage.buckets.get(unique_name("nope")) is None
    assert Bucket(made, BucketInfo(unique_name("nope"))).objects.get("x") is None  # the lean path
    assert seen == ["Bearer ya29.session-token"] * 3
    assert "ya29" not in repr(made) and "ya29" not in repr(made.config)
    with pytest.raises(NotSupportedException, match="access-token"):
        Bucket(made, BucketInfo("any-bucket")).objects.create("x").generate_url()


def test_storage_emulator_host_env_is_the_endpoint(gcs: RunningServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"127.0.0.1:{gcs.extra['port']}")  # no scheme, as often written
    made = CloudProviderFactory().create_provider(ProviderList.GCP, {})
    name = unique_name("env")
    made.storage.buckets.create(name)
    assert made.storage.buckets.get(name) is not None
    made.storage.buckets.get(name).delete()  # type: ignore[union-attr]


def test_application_default_credentials_are_looked_up_lazily(monkeypatch: pytest.MonkeyPatch) -> None:
    from google.auth.compute_engine import _metadata

    # NO_GCE_CHECK=true, which google-auth reads at import time: no probe of the metadata server.
    monkeypatch.setattr(_metadata, "_NO_GCE_CHECK", True)
    made = CloudProviderFactory().create_provider(ProviderList.GCP, {})
    assert backend_of(made) is not None
    with pytest.raises(AuthenticationException, match="gcp_service_creds_file"):
        made.storage.buckets.list()


def test_bad_credentials_config_is_refused_without_leaking(gcs: RunningServer, tmp_path: Path) -> None:
    info, _ = make_service_account_info()
    no_email = {k: v for k, v in info.items() if k != "client_email"}
    bad_key = dict(info, private_key="-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n")
    for broken in (no_email, bad_key):
        with pytest.raises(InvalidParamException, match="gcp_service_creds_dict") as caught:
            backend_of(make_provider(gcs, gcp_service_creds_dict=broken))
        assert "PRIVATE KEY" not in str(caught.value) and "not a key" not in str(caught.value)
    with pytest.raises(InvalidParamException, match="cannot be read"):
        backend_of(
            make_provider(gcs, gcp_service_creds_dict=None, gcp_service_creds_file=str(tmp_path / "absent.json"))
        )
    with pytest.raises(InvalidParamException, match="http"):
        backend_of(make_provider(gcs, gcp_endpoint_url="ftp://example.invalid"))
    assert "PRIVATE KEY" not in repr(make_provider(gcs))


# --- signed URLs -------------------------------------------------------------------------------
# The gateway in front of the emulator checks every signed URL fetched through it (its own tests:
# tests/support/servers/test_gcs_gateway.py; the rejection cases: cloudstore/testing/conformance/test_signed_urls.py).
# Here: the fields the provider puts in its URLs, and URLs for real GCS checked offline.
def verify_v4(url: str, method: str, public_key: rsa.RSAPublicKey, email: str) -> dict[str, str]:
    """The URL's query parameters, once the gateway's check has accepted its signature."""
    parts = urlsplit(url)
    target = urlunsplit(("", "", parts.path, parts.query, ""))
    assert check_signed_request(method, target, {"host": parts.netloc}, {email: public_key}) is None
    return dict(parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True))


def check_v4_fields(params: dict[str, str], email: str, expires_in: int) -> None:
    assert params["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert params["X-Goog-SignedHeaders"] == "host"
    assert params["X-Goog-Expires"] == str(expires_in)
    signed_at = datetime.strptime(params["X-Goog-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - signed_at) < timedelta(minutes=5)
    assert params["X-Goog-Credential"] == f"{email}/{params['X-Goog-Date'][:8]}/auto/storage/goog4_request"


def fetch(url: str, method: str = "GET", data: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_signed_get_and_put_fields_and_use(gcs: RunningServer, bucket: Bucket) -> None:
    name = "reports/Q1 résumé+final.txt"
    obj = bucket.objects.create(name)
    obj.upload(b"signed content")
    email = gcs.config["gcp_service_creds_dict"]["client_email"]
    key = gcs.extra["public_key"]

    get_url = obj.generate_url(expires_in=900)
    parts = urlsplit(get_url)
    assert f"{parts.scheme}://{parts.netloc}" == gcs.extra["url"]
    assert unquote(parts.path) == f"/{bucket.name}/{name}"
    check_v4_fields(verify_v4(get_url, "GET", key, email), email, 900)
    assert fetch(get_url) == (200, b"signed content")

    put_url = obj.generate_url(expires_in=3600, writable=True)
    check_v4_fields(verify_v4(put_url, "PUT", key, email), email, 3600)
    status, _ = fetch(put_url, "PUT", b"replaced through the URL")
    assert 200 <= status < 300
    assert bucket.objects.get(name).read() == b"replaced through the URL"  # type: ignore[union-attr]


def test_signing_limits(provider: CloudProvider, bucket: Bucket) -> None:
    obj = bucket.objects.create("limits.txt")
    week = 7 * 24 * 3600
    assert obj.generate_url(expires_in=week)
    with pytest.raises(InvalidParamException):
        obj.generate_url(expires_in=week + 1)
    backend = backend_of(provider)
    assert isinstance(backend, GCSBackend)
    with pytest.raises(InvalidParamException):
        backend.sign_url(bucket.name, "limits.txt", "GET", week + 1)


def test_signing_with_application_default_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ADC (here gcloud's well-known file holding a service-account key), no endpoint: a URL
    for storage.googleapis.com, signed locally without any request."""
    info, public_key = make_service_account_info(email="adc@adc-project.iam.gserviceaccount.com")
    gcloud = tmp_path / "gcloud"
    gcloud.mkdir()
    (gcloud / "application_default_credentials.json").write_text(json.dumps(info))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(gcloud))
    made = CloudProviderFactory().create_provider(ProviderList.GCP, {})
    url = Bucket(made, BucketInfo("adc-bucket")).objects.create("doc.pdf").generate_url(expires_in=120)
    assert url.startswith("https://storage.googleapis.com/adc-bucket/doc.pdf?")
    check_v4_fields(verify_v4(url, "GET", public_key, info["client_email"]), info["client_email"], 120)


# --- names ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad", [HIDDEN_PREFIX + "x", "line\nbreak", "carriage\rreturn", ".", "..", ".well-known/acme-challenge/t"]
)
def test_gcs_object_name_rules(bucket: Bucket, bad: str) -> None:
    with pytest.raises(InvalidNameException):
        bucket.objects.create(bad)


@pytest.mark.parametrize("bad", ["goog-bucket", "my-google-bucket", "ab", "Upper", "-dash", "a" * 64, "192.168.1.1"])
def test_gcs_bucket_name_rules(provider: CloudProvider, bad: str) -> None:
    with pytest.raises(InvalidNameException):
        provider.storage.buckets.create(bad)


# --- uploads by compose ----------------------------------------------------------------------------
def test_large_upload_is_composed_with_type_and_metadata(gcs: RunningServer, bucket: Bucket, tmp_path: Path) -> None:
    payload = bytes(range(256)) * (12 * 1024 * 4)  # 12 MiB: three 5 MiB parts with the test transfer config
    obj = bucket.objects.create("big/model.bin")
    obj.upload(io.BytesIO(payload), content_type="application/x-model", metadata={"stage": "final"})
    assert hidden_parts(gcs, bucket.name) == []
    blob = sdk_client(gcs).bucket(bucket.name).get_blob("big/model.bin")
    assert blob is not None and blob.size == len(payload)
    assert blob.content_type == "application/x-model" and blob.metadata == {"stage": "final"}
    assert base64.b64decode(blob.crc32c) == google_crc32c.Checksum(payload).digest()
    info = backend_of(bucket.provider).head_object(bucket.name, "big/model.bin")
    assert info is not None and info.checksum in {
        ("md5", hashlib.md5(payload).hexdigest()),  # fake-gcs-server gives composite objects an MD5 too
        ("crc32c", google_crc32c.Checksum(payload).digest().hex()),  # GCS gives them only CRC32C
    }
    got = bucket.objects.get("big/model.bin")
    assert got is not None
    target = tmp_path / "model.bin"
    got.download_to_file(target)  # parallel ranged reads, verified
    assert target.read_bytes() == payload
    seam = 5 * 1024 * 1024
    assert got.read(start=seam - 3, end=seam + 2) == payload[seam - 3 : seam + 3]


def test_many_parts_compose_hierarchically_out_of_order(
    gcs: RunningServer, provider: CloudProvider, bucket: Bucket
) -> None:
    backend = backend_of(provider)
    chunks = [f"part {n:03d};".encode() * 10 for n in range(1, 71)]  # 70 parts: more than 32 per compose
    upload = backend.create_multipart_upload(bucket.name, "joined.txt", "text/plain", {"parts": "70"})
    results: dict[int, Any] = {}
    order = list(range(70, 0, -1))

    def send(numbers: list[int]) -> None:
        for n in numbers:
            offset = sum(len(c) for c in chunks[: n - 1])
            results[n] = backend.upload_part(upload, n, offset, chunks[n - 1])

    threads = [threading.Thread(target=send, args=(order[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(hidden_parts(gcs, bucket.name)) == 70
    assert [o.name for o in bucket.objects] == []  # parts in flight are invisible
    backend.complete_multipart_upload(upload, [results[n] for n in sorted(results)])
    # 70 parts, then 3 intermediate composes (32 + 32 + 6): deleted by the clean-up step.
    assert len(hidden_parts(gcs, bucket.name)) == 73
    backend.cleanup_multipart_upload(upload)
    assert hidden_parts(gcs, bucket.name) == []
    whole = b"".join(chunks)
    got = bucket.objects.get("joined.txt")
    assert got is not None and got.size == len(whole)
    assert got.content_type == "text/plain" and got.metadata == {"parts": "70"}
    assert got.read() == whole
    blob = sdk_client(gcs).bucket(bucket.name).get_blob("joined.txt")
    assert blob is not None
    # The emulator's CRC32C (and MD5) of a composite object are right.
    assert base64.b64decode(blob.crc32c) == google_crc32c.Checksum(whole).digest()
    assert blob.md5_hash is None or base64.b64decode(blob.md5_hash) == hashlib.md5(whole).digest()
    # GCS gives composite objects no MD5: the checksum is then CRC32C, in hex, big-endian.
    blob._properties.pop("md5Hash", None)
    assert blob_checksum(blob) == ("crc32c", google_crc32c.Checksum(whole).digest().hex())


def test_abort_deletes_parts_and_nothing_appears(gcs: RunningServer, provider: CloudProvider, bucket: Bucket) -> None:
    backend = backend_of(provider)
    upload = backend.create_multipart_upload(bucket.name, "never.bin", None, {})
    for n in (2, 1, 3):
        backend.upload_part(upload, n, (n - 1) * 4, b"data")
    assert len(hidden_parts(gcs, bucket.name)) == 3
    backend.abort_multipart_upload(upload)
    backend.abort_multipart_upload(upload)  # twice is harmless
    assert hidden_parts(gcs, bucket.name) == []
    assert bucket.objects.get("never.bin") is None


def test_failed_upload_leaves_no_object_and_no_parts(gcs: RunningServer, bucket: Bucket) -> None:
    class Breaks(io.RawIOBase):
        def __init__(self) -> None:
            self.sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if self.sent >= 11 * 1024 * 1024:
                raise OSError("source disk failed")
            size = min(len(buffer), 1024 * 1024)
            buffer[:size] = b"x" * size
            self.sent += size
            return size

    with pytest.raises(OSError, match="source disk failed"):
        bucket.objects.create("broken.bin").upload(Breaks())
    assert bucket.objects.get("broken.bin") is None
    assert hidden_parts(gcs, bucket.name) == []


def test_parts_in_flight_are_hidden_from_every_listing(
    gcs: RunningServer, provider: CloudProvider, bucket: Bucket
) -> None:
    for name in ("-first", "a/1", "b", "zeta"):
        bucket.objects.create(name).upload(name.encode())
    backend = backend_of(provider)
    upload = backend.create_multipart_upload(bucket.name, "pending", None, {})
    for n in range(1, 4):
        backend.upload_part(upload, n, 0, b"p")
    try:
        assert [o.name for o in bucket.objects] == ["-first", "a/1", "b", "zeta"]
        top = bucket.objects.list(delimiter="/")
        assert [o.name for o in top] == ["-first", "b", "zeta"] and top.prefixes == ["a/"]
        walked: list[str] = []
        marker = None
        while True:
            page = bucket.objects.list(limit=1, marker=marker, delimiter="/")
            walked += [o.name for o in page] + page.prefixes
            marker = page.marker
            if marker is None:
                break
        assert walked == ["-first", "a/", "b", "zeta"]
    finally:
        backend.abort_multipart_upload(upload)


# --- checksums and faults ------------------------------------------------------------------------------
def test_single_put_reports_the_right_md5(gcs: RunningServer, bucket: Bucket) -> None:
    data = b"checksum me " * 1000
    bucket.objects.create("c.txt").upload(data)
    info = backend_of(bucket.provider).head_object(bucket.name, "c.txt")
    assert info is not None and info.checksum == ("md5", hashlib.md5(data).hexdigest())
    blob = sdk_client(gcs).bucket(bucket.name).get_blob("c.txt")
    assert blob is not None and base64.b64decode(blob.crc32c) == google_crc32c.Checksum(data).digest()


@pytest.mark.parametrize("size", [64 * 1024, 12 * 1024 * 1024], ids=["single", "composed"])
def test_flipped_byte_in_a_download_is_read_again_once(
    gcs: RunningServer, bucket: Bucket, proxy: FaultProxy, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    bucket.objects.create("flip.bin").upload(data)  # 12 MiB: three parts composed on the server
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=NO_RETRIES)
    target = Bucket(via_proxy, BucketInfo(bucket.name)).objects.create("flip.bin")
    target_file = tmp_path / "flip.bin"
    # One damaged response: the download is fetched once more and succeeds.
    proxy.add_rule("flip", path="/download/", limit=1)
    assert target.read() == data
    proxy.add_rule("flip", path="/download/", limit=1)
    target.download_to_file(target_file)  # parallel ranged reads when composed
    assert target_file.read_bytes() == data
    assert proxy.stats["flip"] == 2
    target_file.unlink()
    # Every response damaged: read twice, then ChecksumMismatchException and no file.
    proxy.reset_stats()
    proxy.add_rule("flip", path="/download/")
    with pytest.raises(ChecksumMismatchException):
        target.read()
    with pytest.raises(ChecksumMismatchException):
        target.download_to_file(target_file)
    assert list(tmp_path.iterdir()) == []
    ranges_per_download = 1 if size < TEST_TRANSFER.threshold else -(-size // TEST_TRANSFER.part_size)
    assert proxy.stats["flip"] == 2 + 2 * ranges_per_download


def test_transient_faults_are_retried_and_resumed(gcs: RunningServer, bucket: Bucket, proxy: FaultProxy) -> None:
    data = bytes(range(256)) * 1024
    bucket.objects.create("r.bin").upload(data)
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=FAST_RETRIES)
    target = Bucket(via_proxy, BucketInfo(bucket.name))
    proxy.add_rule("503", path="/download/", limit=1)
    proxy.add_rule("reset", path="/download/", reset_at="mid", limit=1)
    proxy.add_rule("429", path="/o/r.bin", methods=["GET"], limit=1)
    assert target.objects.get("r.bin").read() == data  # type: ignore[union-attr]
    assert proxy.stats["503"] == 1 and proxy.stats["reset"] == 1 and proxy.stats["429"] == 1


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (401, AuthenticationException),
        (403, PermissionDeniedException),
        (429, ThrottledException),
        (503, ThrottledException),
        (500, ProviderConnectionException),
        (412, PreconditionFailedException),
    ],
)
def test_status_codes_map_onto_the_spec(
    gcs: RunningServer, proxy: FaultProxy, status: int, expected: type[Exception]
) -> None:
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=FAST_RETRIES)
    proxy.add_rule("status", status=status)
    with pytest.raises(expected) as caught:
        via_proxy.storage.buckets.list()
    assert getattr(caught.value, "status", None) == status
    # Transient answers are retried by the shared policy; a 401 gets one token refresh (the
    # service-account token is renewable) and then fails; nothing else is tried twice.
    expected_attempts = {
        429: FAST_RETRIES.max_attempts,
        500: FAST_RETRIES.max_attempts,
        503: FAST_RETRIES.max_attempts,
        401: 2,
    }
    assert proxy.stats["requests"] == expected_attempts.get(status, 1)


@pytest.mark.parametrize("refreshable", [True, False], ids=["service-account", "access-token"])
def test_a_401_on_the_lean_path_renews_the_token_once(
    gcs: RunningServer, bucket: Bucket, proxy: FaultProxy, refreshable: bool
) -> None:
    bucket.objects.create("a").upload(b"x")
    credentials: dict[str, Any] = {} if refreshable else {"gcp_service_creds_dict": None, "gcp_access_token": "t"}
    made = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=FAST_RETRIES, **credentials)
    seen = record_authorization(made)
    target = Bucket(made, BucketInfo(bucket.name)).objects.create("a")
    proxy.add_rule("status", status=401, path="/download/", limit=1)
    if refreshable:
        assert target.read() == b"x"  # refreshed, sent again with the new token
        assert proxy.stats["requests"] == 2 and len(seen) == 2
        proxy.reset_stats()
        proxy.add_rule("status", status=401, path="/download/")
    with pytest.raises(AuthenticationException) as caught:
        target.read()
    assert caught.value.status == 401
    assert proxy.stats["requests"] == (2 if refreshable else 1)  # one refresh at most, no retry


def test_rejected_access_token_is_not_retried(gcs: RunningServer, proxy: FaultProxy) -> None:
    made = make_provider(
        gcs,
        gcp_endpoint_url=proxy.url,
        gcp_service_creds_dict=None,
        gcp_access_token="expired-token",
        retry_policy=FAST_RETRIES,
    )
    proxy.add_rule("status", status=401)
    with pytest.raises(AuthenticationException) as caught:
        made.storage.buckets.get("any-bucket")
    assert caught.value.status == 401
    assert proxy.stats["requests"] == 1


def test_sdk_and_transport_errors_map_onto_the_spec() -> None:
    import google.api_core.exceptions as api_errors
    import google.auth.exceptions as auth_errors
    import requests
    import urllib3
    from google.cloud.storage import exceptions as storage_errors

    cases: list[tuple[BaseException, type[Exception]]] = [
        (api_errors.Conflict("exists"), DuplicateResourceException),
        (api_errors.NotFound("gone"), NotFoundException),
        (api_errors.Unauthorized("bad token"), AuthenticationException),
        (api_errors.TooManyRequests("slow"), ThrottledException),
        (api_errors.BadGateway("proxy"), ProviderConnectionException),
        (api_errors.RetryError("deadline", None), ProviderConnectionException),
        (auth_errors.RefreshError("invalid_grant"), AuthenticationException),
        (auth_errors.TransportError("no route"), ProviderConnectionException),
        (auth_errors.DefaultCredentialsError("none"), AuthenticationException),
        (requests.ConnectionError("refused"), ProviderConnectionException),
        (requests.Timeout("slow"), ProviderConnectionException),
        (urllib3.exceptions.ProtocolError("reset"), ProviderConnectionException),
        (storage_errors.DataCorruption(None, "bad crc"), ChecksumMismatchException),
        (api_errors.GoogleAPICallError("no status"), ProviderConnectionException),  # no answer: retryable
    ]
    for error, expected in cases:
        mapped = map_gcs_error(error)
        assert isinstance(mapped, expected), (error, mapped)
        assert "\n" not in str(mapped) and "('" not in str(mapped), mapped
    assert map_gcs_error(api_errors.GoogleAPICallError("no status")).retryable  # type: ignore[union-attr]
    assert map_gcs_error(ValueError("not ours")) is None


def test_delete_of_non_empty_bucket_is_refused_by_the_emulator(provider: CloudProvider, bucket: Bucket) -> None:
    bucket.objects.create("keep").upload(b"k")
    with pytest.raises(PreconditionFailedException) as caught:
        call_through(provider, lambda: backend_of(provider).delete_bucket(bucket.name))
    assert caught.value.status in (409, 412)  # GCS: 409, fake-gcs-server: 412
    with pytest.raises(PreconditionFailedException):
        bucket.delete()
    assert bucket.objects.get("keep") is not None


def test_range_outside_the_object_and_missing_objects(bucket: Bucket) -> None:
    bucket.objects.create("ten").upload(b"0123456789")
    obj = bucket.objects.get("ten")
    assert obj is not None
    assert obj.read(start=3, end=5) == b"345"
    assert obj.read(start=8) == b"89"
    assert obj.read(start=10) == b""  # past the end: nothing, as a slice
    with pytest.raises(NotFoundException):
        bucket.objects.create("absent").delete()
    with pytest.raises(NotFoundException):
        bucket.objects.create("absent").read()


def test_unreachable_endpoint_is_a_connection_error(gcs: RunningServer) -> None:
    closed = make_provider(gcs, gcp_endpoint_url=f"http://127.0.0.1:{free_port()}", retry_policy=NO_RETRIES)
    with pytest.raises(ProviderConnectionException):
        closed.storage.buckets.get("some-bucket")


# --- one request per primitive ------------------------------------------------------------------------------
def test_each_primitive_is_one_request(gcs: RunningServer, bucket: Bucket, proxy: FaultProxy) -> None:
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=NO_RETRIES)
    backend = backend_of(via_proxy)
    name = bucket.name

    def requests_for(action: Any) -> int:
        proxy.reset_stats()
        action()
        time.sleep(0.2)  # anything the SDK would send in the background shows up too
        return int(proxy.stats["requests"])

    assert requests_for(lambda: backend.put_object(name, "one", b"1" * 1000, "text/plain", {"k": "v"})) == 1
    assert requests_for(lambda: backend.head_object(name, "one")) == 1
    assert requests_for(lambda: backend.get_object(name, "one", 10, 19).read()) == 1
    assert requests_for(lambda: backend.list_objects(name, None, "/", 10, None)) == 1
    assert requests_for(lambda: backend.copy_object(name, "one", name, "two")) == 1
    assert requests_for(lambda: backend.delete_object(name, "two")) == 1
    assert requests_for(lambda: backend.sign_url(name, "one", "GET", 60)) == 0
    upload = backend.create_multipart_upload(name, "multi", None, {})
    assert proxy.stats["requests"] == 0
    assert requests_for(lambda: backend.upload_part(upload, 1, 0, b"x")) == 1
    parts = [backend.upload_part(upload, n, 0, b"x") for n in (1, 2, 3)]
    assert requests_for(lambda: backend.complete_multipart_upload(upload, parts)) == 1  # one compose
    # The clean-up step: one listing of the upload's prefix, then one delete per part.
    assert requests_for(lambda: backend.cleanup_multipart_upload(upload)) == 4


def test_whole_reads_take_size_and_checksum_from_the_get(
    gcs: RunningServer, bucket: Bucket, proxy: FaultProxy, tmp_path: Any
) -> None:
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=NO_RETRIES)
    data = os.urandom(1000)
    bucket.objects.create("one").upload(data, metadata={"k": "v"})
    obj = via_proxy.storage.buckets.get(bucket.name).objects.create("one")  # type: ignore[union-attr]
    proxy.reset_stats()
    assert obj.read() == data
    obj.download_to_file(tmp_path / "one")
    assert [r.method for r in proxy.requests] == ["GET", "GET"], "no HEAD: the media response tells size and hash"
    assert (tmp_path / "one").read_bytes() == data
    with backend_of(via_proxy).get_object(bucket.name, "one", 10, 19) as ranged:
        assert ranged.info is not None
        assert (ranged.info.size, ranged.info.checksum) == (1000, ("md5", hashlib.md5(data).hexdigest()))
        assert ranged.info.metadata is None  # not in a media response: fetched when asked for
    proxy.reset_stats()
    assert obj.metadata == {"k": "v"}
    assert [r.method for r in proxy.requests] == ["GET"]  # the object's metadata (JSON API GET)


# --- markers (pure logic, with the shapes GCS itself answers) -----------------------------------------------
def test_object_pages_cut_to_limit_with_name_markers() -> None:
    first: ObjectPager[str] = ObjectPager(None, "/", None)
    # fake-gcs-server counts only objects toward maxResults and adds every later prefix:
    # the page is cut to the limit, and nothing past the last object listed is trusted.
    page = first.cut([("b", "b"), ("d", "d")], ["a/", "c/", "f/"], 2, True, str)
    assert (page.items, page.prefixes, page.next_marker) == (["b"], ["a/"], "b")

    after_folder: ObjectPager[str] = ObjectPager(None, "/", "c/")
    assert after_folder.start_offset == "c0"  # past every name under the pseudo-folder
    page = after_folder.cut([("d", "d")], ["c/", "e/"], 5, False, str)
    assert (page.items, page.prefixes, page.next_marker) == (["d"], ["e/"], None)

    # After an object marker the marker itself comes back first (startOffset is inclusive),
    # so one more entry is asked for; a page of only hidden upload parts still moves on.
    after_object: ObjectPager[str] = ObjectPager(None, None, ".a")
    assert after_object.start_offset == ".a" and after_object.page_size(2) == 3
    hidden = [(HIDDEN_PREFIX + "u/00001", "h1"), (HIDDEN_PREFIX + "u/00002", "h2")]
    page = after_object.cut([(".a", ".a"), *hidden], [], 2, True, str)
    assert (page.items, page.prefixes, page.next_marker) == ([], [], HIDDEN_PREFIX + "u/00002")


def test_bucket_markers_keep_the_service_page_token() -> None:
    buckets = [BucketInfo(n) for n in ("b3", "b1", "b2")]
    page = BucketMarker().cut(list(buckets), 2, None)  # a service that ignored maxResults
    assert [b.name for b in page.items] == ["b1", "b2"] and page.next_marker == "b2"
    page = BucketMarker.parse("b2").cut(list(buckets), 2, None)
    assert [b.name for b in page.items] == ["b3"] and page.next_marker is None
    page = BucketMarker().cut(list(buckets[:2]), 2, "token/+=")
    assert page.next_marker == "b3@token/+="
    assert BucketMarker.parse(page.next_marker) == BucketMarker("b3", "token/+=")


# --- docs ---------------------------------------------------------------------------------------------------
def test_docs_page_examples_run_against_the_emulator(gcs: RunningServer, tmp_path: Path) -> None:
    from tests.test_docs import run_page, sandbox

    home = tmp_path / "home"
    home.mkdir()
    key_file = tmp_path / "throwaway-key.json"
    key_file.write_text(json.dumps(gcs.config["gcp_service_creds_dict"]))
    env = {"STORAGE_EMULATOR_HOST": gcs.extra["url"], "GOOGLE_APPLICATION_CREDENTIALS": str(key_file)}
    with sandbox(home, env):
        namespace = run_page("gcp.rst")
    assert namespace["provider"].storage.buckets.get("reports-2024") is None  # the page cleans up


def test_bucket_holding_only_parts_of_a_crashed_upload_is_deletable(
    provider: CloudProvider, gcs: RunningServer
) -> None:
    bucket = provider.storage.buckets.create(unique_name("gcs-crashed"))
    raw = sdk_client(gcs).bucket(bucket.name)
    for number in (1, 2):  # what a process that died mid-upload leaves behind
        raw.blob(f"{HIDDEN_PREFIX}dead-upload/{number:05d}").upload_from_string(b"part")
    keeper = bucket.objects.create("keeper.txt")
    keeper.upload(b"the user's object")
    with pytest.raises(PreconditionFailedException):
        bucket.delete()
    assert len(hidden_parts(gcs, bucket.name)) == 2  # nothing touched while a user object remains
    assert keeper.exists()
    bucket.delete(delete_contents=True)
    assert provider.storage.buckets.get(bucket.name) is None


# --- upload integrity (issue 11) --------------------------------------------------------------------------
class DamagingPool:
    """Flips one byte in the middle of the next ``times`` upload request bodies as they leave.

    To the server this is a body damaged in transit. The fault proxy only damages response
    bodies, so the damage is done here, at the client's transport (the lean path's connection
    pool), in front of the real server.
    """

    def __init__(self, pool: Any, times: int) -> None:
        self._send = pool.request
        self._lock = threading.Lock()
        self.left = times
        self.uploads = 0
        self.damaged = 0

    def request(self, method: str, origin: Any, target: str, headers: Any = None, body: Any = None, **kw: Any) -> Any:
        if method == "POST" and target.startswith("/upload/"):
            with self._lock:
                self.uploads += 1
                damage = self.left > 0
                if damage:
                    self.left -= 1
                    self.damaged += 1
            if damage:
                whole = b"".join(body) if isinstance(body, tuple) else bytes(body)  # the multipart body
                middle = len(whole) // 2
                body = whole[:middle] + bytes([whole[middle] ^ 0xFF]) + whole[middle + 1 :]
        return self._send(method, origin, target, headers, body, **kw)


def damage_uploads(provider: CloudProvider, times: int) -> DamagingPool:
    pool = backend_of(provider).rest.pool  # type: ignore[attr-defined]
    damaging = DamagingPool(pool, times)
    pool.request = damaging.request
    return damaging


@pytest.mark.parametrize("size", [64 * 1024, 12 * 1024 * 1024], ids=["single", "parts"])
def test_upload_damaged_on_the_way_is_sent_again(gcs: RunningServer, bucket: Bucket, size: int) -> None:
    made = make_provider(gcs, retry_policy=FAST_RETRIES)
    adapter = damage_uploads(made, times=1)
    data = os.urandom(size)
    Bucket(made, BucketInfo(bucket.name)).objects.create("sent-twice.bin").upload(data)
    assert adapter.damaged == 1
    assert adapter.uploads == (1 if size < TEST_TRANSFER.threshold else 3) + 1  # one request sent again
    blob = sdk_client(gcs).bucket(bucket.name).get_blob("sent-twice.bin")
    assert blob is not None and blob.download_as_bytes() == data
    assert hidden_parts(gcs, bucket.name) == []


@pytest.mark.parametrize("size", [64 * 1024, 12 * 1024 * 1024], ids=["single", "parts"])
def test_upload_damaged_every_time_stores_nothing(gcs: RunningServer, bucket: Bucket, size: int) -> None:
    made = make_provider(gcs, retry_policy=FAST_RETRIES)
    adapter = damage_uploads(made, times=1000)
    with pytest.raises(ChecksumMismatchException) as caught:
        Bucket(made, BucketInfo(bucket.name)).objects.create("never.bin").upload(os.urandom(size))
    assert caught.value.retryable and "\n" not in str(caught.value)
    assert adapter.damaged >= FAST_RETRIES.max_attempts  # every attempt was sent and refused
    assert bucket.objects.get("never.bin") is None
    assert hidden_parts(gcs, bucket.name) == []


def test_a_wrong_md5_is_refused_and_its_object_removed(provider: CloudProvider, bucket: Bucket) -> None:
    backend = backend_of(provider)
    wrong = hashlib.md5(b"other bytes").digest()
    with pytest.raises(ChecksumMismatchException) as caught:
        backend.put_object(bucket.name, "wrong.txt", b"the bytes", "text/plain", {}, content_md5=wrong)
    assert caught.value.retryable
    assert backend.head_object(bucket.name, "wrong.txt") is None  # the generation written was deleted
    upload = backend.create_multipart_upload(bucket.name, "parts.bin", None, {})
    with pytest.raises(ChecksumMismatchException):
        backend.upload_part(upload, 1, 0, b"part bytes", content_md5=wrong)
    backend.abort_multipart_upload(upload)
    right = hashlib.md5(b"the bytes").digest()
    backend.put_object(bucket.name, "wrong.txt", b"the bytes", "text/plain", {}, content_md5=right)
    assert bucket.objects.get("wrong.txt").read() == b"the bytes"  # type: ignore[union-attr]


def gcs_error_response(status: int, reason: str, message: str) -> requests.Response:
    """An error answer as GCS's JSON API writes it."""
    response = requests.Response()
    response.status_code = status
    response.reason = {400: "Bad Request", 403: "Forbidden", 429: "Too Many Requests"}.get(status, "")
    response.headers["Content-Type"] = "application/json; charset=UTF-8"
    error = {"code": status, "message": message, "errors": [{"domain": "global", "reason": reason, "message": message}]}
    response._content = json.dumps({"error": error}, indent=2).encode()
    response.encoding = "utf-8"
    response.request = requests.Request("POST", "https://storage.googleapis.com/upload/storage/v1/b/b/o").prepare()
    return response


def test_gcs_reasons_come_before_the_status_table() -> None:
    import google.api_core.exceptions as api_errors

    refused = gcs_error_response(400, "invalid", 'Provided MD5 hash "Zm9v" doesn\'t match calculated MD5 hash "YmFy".')
    throttled = gcs_error_response(429, "rateLimitExceeded", "The project exceeded the rate limit.")
    old_throttle = gcs_error_response(403, "userRateLimitExceeded", "The user exceeded the rate limit.")
    denied = gcs_error_response(403, "forbidden", "caller does not have storage.objects.create access.")
    invalid = gcs_error_response(400, "invalid", "Invalid argument.")
    cases: list[tuple[requests.Response, type[Exception], bool]] = [
        (refused, ChecksumMismatchException, True),  # real GCS refusing a body damaged on the way
        (throttled, ThrottledException, True),
        (old_throttle, ThrottledException, True),
        (denied, PermissionDeniedException, False),
        (invalid, InvalidParamException, False),
    ]
    for response, expected, retryable in cases:
        # The SDK's exception (the control plane) and the lean path's answer map alike.
        lean = error_from_body(response.status_code, response.reason, response.content)
        for mapped in (map_gcs_error(api_errors.from_http_response(response)), lean):
            assert isinstance(mapped, expected) and mapped.retryable == retryable, (response.status_code, mapped)
            # One clean line: the service's message, the status and the reason; no JSON, no URL.
            text = str(mapped)
            assert "\n" not in text and "{" not in text and "https://" not in text, text
            assert text.startswith("GCS: ") and f"HTTP {response.status_code}" in text, text
        assert str(lean) == str(map_gcs_error(api_errors.from_http_response(response)))


def test_error_messages_are_one_clean_line(gcs: RunningServer, provider: CloudProvider, bucket: Bucket) -> None:
    import google.api_core.exceptions as api_errors
    import requests as requests_module

    with pytest.raises(DuplicateResourceException) as exists:
        provider.storage.buckets.create(bucket.name)
    with pytest.raises(NotFoundException) as missing:
        bucket.objects.create("absent").read()
    closed = make_provider(gcs, gcp_endpoint_url=f"http://127.0.0.1:{free_port()}", retry_policy=NO_RETRIES)
    with pytest.raises(ProviderConnectionException) as refused:
        closed.storage.buckets.get("some-bucket")
    # A proxy's or load balancer's answer that is not GCS's JSON: its text, without markup.
    html = requests_module.Response()
    html.status_code, html.reason = 502, "Bad Gateway"
    html._content = b"<html><body>\n<h1>502 Bad Gateway</h1>\n</body></html>"
    html.request = requests_module.Request("GET", "http://127.0.0.1/storage/v1/b").prepare()
    gateway = map_gcs_error(api_errors.from_http_response(html))
    assert isinstance(gateway, ProviderConnectionException)
    texts = [str(e.value) for e in (exists, missing, refused)] + [str(gateway)]
    assert texts[3] == "GCS: 502 Bad Gateway (HTTP 502)"
    assert "Connection refused" in texts[2]
    for text in texts:
        assert "\n" not in text and "{" not in text and " object at 0x" not in text and "('" not in text, text
    assert exists.value.status == 409 and missing.value.status == 404


def test_one_extra_request_per_injected_503(gcs: RunningServer, bucket: Bucket, proxy: FaultProxy) -> None:
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=FAST_RETRIES)
    target = Bucket(via_proxy, BucketInfo(bucket.name)).objects.create("once.txt")
    proxy.add_rule("503", methods=["POST"], path="/upload/", limit=1)
    target.upload(b"x" * 1000)
    assert proxy.stats["503"] == 1 and proxy.stats["requests"] == 2
    proxy.reset_stats()
    proxy.add_rule("503", methods=["GET"], path="/download/", limit=1)
    assert target.read() == b"x" * 1000
    assert proxy.stats["503"] == 1 and proxy.stats["requests"] == 2


# --- clean-up of composed uploads under faults (issue 11) ---------------------------------------------------------
def test_part_clean_up_is_retried(gcs: RunningServer, bucket: Bucket, proxy: FaultProxy) -> None:
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=FAST_RETRIES)
    data = os.urandom(12 * 1024 * 1024)
    part_path = "/o/" + quote(HIDDEN_PREFIX, safe="")
    proxy.add_rule("503", methods=["DELETE"], path=part_path, limit=1)
    proxy.add_rule("reset", methods=["DELETE"], path=part_path, reset_at="mid", limit=1)  # deleted, answer lost
    proxy.add_rule("reset", methods=["GET"], path="prefix=", reset_at="before", limit=1)  # the listing
    with warnings.catch_warnings():
        warnings.simplefilter("error", CleanupWarning)
        Bucket(via_proxy, BucketInfo(bucket.name)).objects.create("big.bin").upload(data)
    assert proxy.stats["503"] == 1 and proxy.stats["reset"] == 2
    assert hidden_parts(gcs, bucket.name) == []
    assert bucket.objects.get("big.bin").read() == data  # type: ignore[union-attr]


def test_lost_compose_answer_is_composed_again(gcs: RunningServer, bucket: Bucket, proxy: FaultProxy) -> None:
    """The parts outlive the compose until the clean-up, so a compose whose answer was lost can run again."""
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=FAST_RETRIES)
    data = os.urandom(12 * 1024 * 1024)
    proxy.add_rule("reset", methods=["POST"], path="/compose", reset_at="mid", limit=1)
    Bucket(via_proxy, BucketInfo(bucket.name)).objects.create("big.bin").upload(data)
    assert proxy.stats["reset"] == 1
    assert hidden_parts(gcs, bucket.name) == []
    assert bucket.objects.get("big.bin").read() == data  # type: ignore[union-attr]


def test_failed_clean_up_is_reported(gcs: RunningServer, bucket: Bucket, proxy: FaultProxy) -> None:
    via_proxy = make_provider(gcs, gcp_endpoint_url=proxy.url, retry_policy=FAST_RETRIES)
    data = os.urandom(12 * 1024 * 1024)
    refuse_deletes = proxy.add_rule("status", methods=["DELETE"], status=403)
    with pytest.warns(CleanupWarning, match="parts could not be removed"):
        Bucket(via_proxy, BucketInfo(bucket.name)).objects.create("big.bin").upload(data)
    assert bucket.objects.get("big.bin").read() == data  # type: ignore[union-attr]  # stored all the same
    assert len(hidden_parts(gcs, bucket.name)) == 3
    # A failed upload whose abort fails too: the error says so, and a warning is given.
    refuse_compose = proxy.add_rule("status", methods=["POST"], path="/compose", status=403)
    with (
        pytest.warns(CleanupWarning, match="aborting the failed upload failed"),
        pytest.raises(PermissionDeniedException) as caught,
    ):
        Bucket(via_proxy, BucketInfo(bucket.name)).objects.create("other.bin").upload(data)
    assert any("parts may be left behind" in note for note in getattr(caught.value, "__notes__", []))
    proxy.remove_rule(refuse_deletes)
    proxy.remove_rule(refuse_compose)
    assert len(hidden_parts(gcs, bucket.name)) == 6  # deleting the bucket with its contents clears them


def test_mixed_faults_leave_no_parts_behind(gcs: RunningServer, bucket: Bucket) -> None:
    patient = RetryPolicy(max_attempts=8, initial_backoff=0.01, max_backoff=0.05, deadline=60)
    rates = {"reset": 0.06, "503": 0.06, "429": 0.03, "flip": 0.05}
    with FaultProxy(upstream=("127.0.0.1", gcs.extra["port"]), rates=rates, seed=5) as faulty:
        via_proxy = make_provider(gcs, gcp_endpoint_url=faulty.url, retry_policy=patient)
        target = Bucket(via_proxy, BucketInfo(bucket.name))
        sent = {f"mixed/{n:02d}": os.urandom(12 * 1024 * 1024 if n % 2 else 100_000) for n in range(10)}
        for name, data in sent.items():
            target.objects.create(name).upload(data)
        assert faulty.stats["faults"] > 0
    assert hidden_parts(gcs, bucket.name) == []
    raw = sdk_client(gcs).bucket(bucket.name)
    for name, data in sent.items():
        assert raw.blob(name).download_as_bytes() == data, name  # stored right, byte for byte


# --- timeouts (issue 11) --------------------------------------------------------------------------------------------
def test_configured_timeouts_apply_to_every_request(gcs: RunningServer, bucket: Bucket) -> None:
    made = make_provider(gcs, connect_timeout=2, read_timeout=0.5, retry_policy=FAST_RETRIES)
    assert backend_of(made)._timeout == (2.0, 0.5)  # type: ignore[attr-defined]
    bucket.objects.create("stalled.txt").upload(b"s" * 1000)
    with FaultProxy(upstream=("127.0.0.1", gcs.extra["port"]), stall_seconds=3, seed=3) as stalling:
        via_proxy = make_provider(
            gcs, gcp_endpoint_url=stalling.url, connect_timeout=2, read_timeout=0.5, retry_policy=FAST_RETRIES
        )
        target = Bucket(via_proxy, BucketInfo(bucket.name))
        # One stalled answer each for an upload, a download and a JSON API call: each request is
        # given up after the read timeout and sent again.
        stalling.add_rule("stall", methods=["POST"], path="/upload/", limit=1)
        stalling.add_rule("stall", methods=["GET"], path="/download/", limit=1)
        stalling.add_rule("stall", methods=["GET"], path="^/storage/v1/b/.*/o/stalled.txt", limit=1)
        target.objects.create("up.txt").upload(b"u" * 1000)
        assert target.objects.create("stalled.txt").read() == b"s" * 1000
        assert target.objects.get("stalled.txt") is not None  # a JSON API GET
        assert stalling.stats["stall"] == 3
        assert [r.method for r in stalling.requests] == ["POST", "POST", "GET", "GET", "GET", "GET"]


def test_a_server_that_never_answers_fails_within_the_deadline(gcs: RunningServer) -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections are accepted by the kernel, and never answered
    try:
        policy = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.05, deadline=4)
        made = make_provider(
            gcs, gcp_endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}", read_timeout=0.5, retry_policy=policy
        )
        started = time.monotonic()
        with pytest.raises(ProviderConnectionException) as caught:
            made.storage.buckets.create(unique_name("gcs-silent")).objects.create("x").upload(b"x")
        assert time.monotonic() - started < policy.deadline + 1
        assert "read_timeout" in str(caught.value)
    finally:
        silent.close()


# --- memory (issue 12, item 13) -------------------------------------------------------------------------------------
RSS_SCRIPT = """
import io, json, os, resource, sys
from cloudstore import CloudProviderFactory, ProviderList, TransferConfig
MiB = 1 << 20
class Source(io.RawIOBase):
    def __init__(self, total):
        self.left, self.block = total, os.urandom(MiB)
    def readable(self):
        return True
    def readinto(self, buffer):
        size = min(len(buffer), self.left, MiB)
        buffer[:size] = self.block[:size]
        self.left -= size
        return size
endpoint, bucket_name, total = sys.argv[1], sys.argv[2], int(sys.argv[3])
config = TransferConfig(threshold=8 * MiB, part_size=8 * MiB, max_concurrency=8)
provider = CloudProviderFactory().create_provider(
    ProviderList.GCP, {"gcp_endpoint_url": endpoint, "gcp_project_name": "p", "transfer_config": config}
)
bucket = provider.storage.buckets.get(bucket_name)
bucket.objects.create("warm-up").upload(b"x" * 1000)
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
bucket.objects.create("big").upload(io.BufferedReader(Source(total * MiB)))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"baseline_kib": baseline, "peak_kib": peak}))
"""


def test_large_upload_memory_stays_near_concurrency_times_part_size(gcs: RunningServer, bucket: Bucket) -> None:
    """200 MiB in 8 MiB parts, 8 at a time (the default concurrency): about 64 MiB of parts in
    memory. Measured here: 65 MiB above the baseline; 313 MiB when the SDK's upload helpers
    copied every part into a new request body."""
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", RSS_SCRIPT, gcs.extra["url"], bucket.name, "200"],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    measured = json.loads(result.stdout)
    grown_mib = (measured["peak_kib"] - measured["baseline_kib"]) / 1024
    assert grown_mib < 160, f"peak RSS grew by {grown_mib:.0f} MiB for 8 x 8 MiB parts in flight"
    blob = sdk_client(gcs).bucket(bucket.name).get_blob("big")
    assert blob is not None and blob.size == 200 * 1024 * 1024


def test_a_content_type_with_a_line_break_is_refused(bucket: Bucket) -> None:
    """The content type is also a header line of the upload's body part: no line may be slipped in
    (the model refuses it first; the backend, which the model does not always guard, too)."""
    with pytest.raises(InvalidParamException):
        bucket.objects.create("typed").upload(b"x", content_type="text/plain\r\nX-Injected: 1")
    with pytest.raises(InvalidParamException, match="line break"):
        backend_of(bucket.provider).put_object(bucket.name, "typed", b"x", "text/plain\r\nX-Injected: 1", {})
    assert bucket.objects.get("typed") is None

"""Azure bearer tokens that expire in seconds, refreshed during transfers that outlive them.

A second Azurite runs over HTTPS (bearer tokens travel over TLS only) with ``--oauth basic``,
which checks each token's audience, issuer and lifetime (``exp``, to the second, no leeway): a
token used after its expiry is refused (403 AuthenticationFailed), as Azure refuses it. Its self-signed certificate
is trusted through ``azure_ca_bundle``. Two ways to refresh are proven:

* ``azure_credential``: a TokenCredential minting short-lived tokens; the SDK's
  BearerTokenCredentialPolicy asks it again before the current token expires.
* ``credentials_provider``: cloudstore's one protocol for every cloud, returning
  ``azure_access_token`` and its expiry; refreshed before expiry and after a 401.
"""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from azure.core.credentials import AccessToken

from cloudstore import (
    AuthenticationException,
    Bucket,
    CloudProvider,
    CloudProviderFactory,
    InvalidParamException,
    ProviderConnectionException,
    RetryPolicy,
    TransferConfig,
)
from cloudstore.credentials import TemporaryCredentials
from tests.conftest import unique_name
from tests.support.servers import azurite as azurite_server
from tests.support.servers.base import RunningServer

#: Seconds each token lives.
LIFETIME = 4.0
MiB = 1024 * 1024
#: Small parts, so that one upload is many requests.
SMALL_PARTS = TransferConfig(threshold=MiB, part_size=256 * 1024, max_concurrency=2)


@pytest.fixture(autouse=True)
def _no_azure_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    """Only the dicts below configure the providers (and no CA bundle from the environment)."""
    for var in ("AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_ACCOUNT", "AZURE_STORAGE_KEY", "REQUESTS_CA_BUNDLE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSTORE_CONFIG", str(tmp_path / "no-such-config.ini"))


@pytest.fixture(scope="module")
def azurite_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = azurite_server.start_https_oauth(tmp_path_factory.mktemp("azurite-oauth"))
    yield server
    server.stop()


def trusted(server: RunningServer) -> dict[str, Any]:
    """The HTTPS Azurite's config, its self-signed certificate trusted."""
    return {**server.config, "azure_ca_bundle": str(server.extra["ca_bundle"])}


def create(config: dict[str, Any]) -> CloudProvider:
    return CloudProviderFactory().create_provider("azure", {"transfer_config": SMALL_PARTS, **config})


class MintingCredential:
    """A TokenCredential whose every token expires ``LIFETIME`` seconds after it is minted."""

    def __init__(self) -> None:
        self.calls = 0
        self._lock = threading.Lock()

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        with self._lock:
            self.calls += 1
        token, expires_on = azurite_server.fake_bearer_token(valid_for=timedelta(seconds=LIFETIME))
        return AccessToken(token, expires_on)


class Issuer:
    """A ``credentials_provider``: a token that Azurite accepts for ``LIFETIME`` seconds (the
    claimed expiry may say otherwise); counts its calls."""

    def __init__(self, claim: timedelta | None = None) -> None:
        self.calls = 0
        self._claim = claim
        self._lock = threading.Lock()

    def __call__(self) -> TemporaryCredentials:
        with self._lock:
            self.calls += 1
        token, _ = azurite_server.fake_bearer_token(valid_for=timedelta(seconds=LIFETIME))
        life = self._claim or timedelta(seconds=LIFETIME)
        return TemporaryCredentials({"azure_access_token": token}, datetime.now(UTC) + life)


class SlowStream(io.RawIOBase):
    """``size`` bytes of a repeating pattern, read no faster than ``seconds`` in all."""

    def __init__(self, size: int, seconds: float) -> None:
        self.size, self.left = size, size
        self._delay_per_byte = seconds / size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self.left, 64 * 1024)
        if n == 0:
            return 0
        time.sleep(n * self._delay_per_byte)
        offset = self.size - self.left
        buffer[:n] = bytes((offset + i) % 251 for i in range(n))
        self.left -= n
        return n


def expected_pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def transfers_outliving_tokens(bucket: Bucket) -> list[BaseException]:
    """For three token lifetimes: an upload in parts from a slow stream (in flight across
    lifetimes), and three threads uploading and reading back small objects. What failed."""
    failures: list[BaseException] = []
    stop_at = time.monotonic() + 3 * LIFETIME
    size = 2 * MiB

    def slow_upload() -> None:
        try:
            bucket.objects.create("slow.bin").upload(SlowStream(size, seconds=2.5 * LIFETIME))
            assert bucket.objects.get("slow.bin").read() == expected_pattern(size)  # type: ignore[union-attr]
        except BaseException as err:
            failures.append(err)

    def small(worker: int) -> None:
        number = 0
        while time.monotonic() < stop_at and not failures:
            try:
                body = f"{worker}-{number}".encode()
                bucket.objects.create(f"{worker}/{number}").upload(body)
                assert bucket.objects.get(f"{worker}/{number}").read() == body  # type: ignore[union-attr]
            except BaseException as err:
                failures.append(err)
            number += 1
            time.sleep(0.2)

    threads = [threading.Thread(target=slow_upload)] + [threading.Thread(target=small, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_azurite_refuses_an_expired_token(azurite_https: RunningServer) -> None:
    """What the refresh tests rest on: a token works until its ``exp``, then it is refused."""
    token, _ = azurite_server.fake_bearer_token(valid_for=timedelta(seconds=2))
    url = azurite_https.config["azure_blob_endpoint"] + "?comp=list"
    headers = {"Authorization": f"Bearer {token}", "x-ms-version": "2021-08-06"}
    verify = str(azurite_https.extra["ca_bundle"])
    assert requests.get(url, headers=headers, verify=verify, timeout=30).status_code == 200
    time.sleep(3.2)
    refused = requests.get(url, headers=headers, verify=verify, timeout=30)
    # Azurite answers 403 AuthenticationFailed ("The token is expired"), which cloudstore maps
    # to AuthenticationException, the error that renews a credentials_provider's token.
    assert refused.status_code == 403 and refused.headers["x-ms-error-code"] == "AuthenticationFailed"
    assert "expired" in refused.text


def test_the_sdk_refreshes_a_token_credential_during_transfers(azurite_https: RunningServer) -> None:
    credential = MintingCredential()
    provider = create({**trusted(azurite_https), "azure_credential": credential})
    bucket = provider.storage.buckets.create(unique_name("sdk"))
    try:
        failures = transfers_outliving_tokens(bucket)
        assert not failures, failures[0]
        # Asked again before each token expired (the SDK renews within 5 minutes of expiry).
        assert credential.calls >= 3
    finally:
        bucket.delete(delete_contents=True)
        provider.close()


def test_credentials_provider_tokens_refresh_during_transfers(azurite_https: RunningServer) -> None:
    issuer = Issuer()
    provider = create({**trusted(azurite_https), "credentials_provider": issuer})
    bucket = provider.storage.buckets.create(unique_name("cp"))
    try:
        failures = transfers_outliving_tokens(bucket)
        assert not failures, failures[0]
        # Renewed ahead of each expiry, once for every thread: a handful, not one per request.
        assert 3 <= issuer.calls <= 15, issuer.calls
    finally:
        bucket.delete(delete_contents=True)
        provider.close()


def test_a_401_renews_the_token(azurite_https: RunningServer) -> None:
    issuer = Issuer(claim=timedelta(hours=1))  # claims an hour; Azurite knows better
    provider = create({**trusted(azurite_https), "credentials_provider": issuer})
    bucket = provider.storage.buckets.create(unique_name("cp"))
    try:
        bucket.objects.create("a").upload(b"x")
        time.sleep(LIFETIME + 0.5)
        assert bucket.objects.get("a").read() == b"x"  # type: ignore[union-attr]
        assert issuer.calls == 2
    finally:
        bucket.delete(delete_contents=True)
        provider.close()


def test_urls_signed_with_a_short_token_outlive_it_not_their_key(azurite_https: RunningServer) -> None:
    """A user-delegation SAS is signed by a delegation key, not by the token: a token of seconds
    signs a URL of days, and the key asked for lasts at least as long as the URL."""
    provider = create({**trusted(azurite_https), "credentials_provider": Issuer()})
    bucket = provider.storage.buckets.create(unique_name("cp"))
    try:
        obj = bucket.objects.create("shared.txt")
        obj.upload(b"shared")
        url = obj.generate_url(expires_in=6 * 24 * 3600 + 23 * 3600)
        query = parse_qs(urlsplit(url).query)
        assert query["skoid"] == [azurite_server.TOKEN_OBJECT_ID]
        assert query["ske"][0] >= query["se"][0]
        with pytest.raises(InvalidParamException, match="7 days"):
            obj.generate_url(expires_in=8 * 24 * 3600)
    finally:
        bucket.delete(delete_contents=True)
        provider.close()


def test_certificates_are_verified(azurite_https: RunningServer, tmp_path: Any) -> None:
    """Without the CA bundle the self-signed certificate is refused; a missing bundle is a config error."""
    no_retry = RetryPolicy(max_attempts=1)
    untrusted = create({**azurite_https.config, "credentials_provider": Issuer(), "retry_policy": no_retry})
    with pytest.raises(ProviderConnectionException, match=r"(?i)certificate|ssl"):
        untrusted.storage.buckets.get("anything")
    missing = create({**azurite_https.config, "azure_ca_bundle": str(tmp_path / "none.pem"), "azure_credential": 1})
    with pytest.raises(InvalidParamException, match="azure_ca_bundle"):
        missing.storage.buckets.get("anything")


def test_credentials_provider_mistakes_are_clear(azurite_https: RunningServer) -> None:
    both = create({**trusted(azurite_https), "credentials_provider": Issuer(), "azure_credential": MintingCredential()})
    with pytest.raises(InvalidParamException, match="not both"):
        both.storage.buckets.get("anything")

    def wrong_key() -> TemporaryCredentials:
        return TemporaryCredentials({"gcp_access_token": "x"}, None)

    wrong = create({**trusted(azurite_https), "credentials_provider": wrong_key})
    with pytest.raises(InvalidParamException, match="gcp_access_token"):
        wrong.storage.buckets.get("anything")

    def failing() -> TemporaryCredentials:
        raise RuntimeError("the identity provider is down")

    down = create({**trusted(azurite_https), "credentials_provider": failing})
    with pytest.raises(AuthenticationException, match="credentials_provider failed"):
        down.storage.buckets.get("anything")

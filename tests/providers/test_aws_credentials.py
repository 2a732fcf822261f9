"""Credentials that refresh themselves, on SeaweedFS's real STS with 15-second credentials.

A SeaweedFS of its own (``tokenDuration`` 15 s) hands out the credentials; the provider gets
them only through ``credentials_provider``, so every request after the first 15 seconds proves
a refresh happened. Signed URLs must not outlive the credentials that sign them.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cloudstore import CloudProvider, CloudProviderFactory, InvalidParamException, TransferConfig
from cloudstore.credentials import TemporaryCredentials, aws_assume_role, aws_web_identity
from tests.support.servers import oidc, seaweedfs
from tests.support.servers.base import RunningServer

LIFETIME = 15.0
SMALL_PARTS = TransferConfig(threshold=6 * 1024 * 1024, part_size=5 * 1024 * 1024, max_concurrency=4)


@pytest.fixture(scope="module")
def issuer() -> Iterator[oidc.Issuer]:
    running = oidc.Issuer()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def sts_server(tmp_path_factory: pytest.TempPathFactory, issuer: oidc.Issuer) -> Iterator[RunningServer]:
    server = seaweedfs.start(tmp_path_factory.mktemp("sts"), token_duration=f"{int(LIFETIME)}s", oidc=issuer.settings)
    yield server
    server.stop()


class Counting:
    """A credentials_provider that assumes the test role and counts its calls."""

    def __init__(self, server: RunningServer, claim_lifetime: timedelta | None = None) -> None:
        self.calls = 0
        self._claim = claim_lifetime
        self._assume = aws_assume_role(
            server.extra["role_arn"],
            sts_endpoint_url=server.extra["sts_endpoint_url"],
            access_key=server.config["aws_access_key"],
            secret_key=server.config["aws_secret_key"],
        )

    def __call__(self) -> TemporaryCredentials:
        self.calls += 1
        fetched = self._assume()
        if self._claim is None:
            return fetched
        # Says they last longer than they do: only the service's refusal reveals the expiry.
        return TemporaryCredentials(fetched.values, datetime.now(UTC) + self._claim)


def make(server: RunningServer, source: Counting) -> CloudProvider:
    config = {
        "s3_endpoint_url": server.config["s3_endpoint_url"],
        "aws_region_name": server.config["aws_region_name"],
        "aws_access_key": None,
        "aws_secret_key": None,
        "aws_session_token": None,
        "credentials_provider": source,
        "transfer_config": SMALL_PARTS,
    }
    return CloudProviderFactory().create_provider("aws", config)


def test_credentials_refresh_before_they_expire_during_transfers(sts_server: RunningServer, tmp_path: Path) -> None:
    source = Counting(sts_server)
    provider = make(sts_server, source)
    bucket = provider.storage.buckets.create("refreshing")
    large = tmp_path / "large.bin"
    large.write_bytes(b"L" * (12 * 1024 * 1024))  # three parts: the upload spans refreshes
    failures: list[BaseException] = []
    done = [0]
    stop_at = time.monotonic() + 3.5 * LIFETIME

    def work(worker: int) -> None:
        number = 0
        while time.monotonic() < stop_at and not failures:
            try:
                name = f"w{worker}/{number}"
                if number % 5 == 0:
                    bucket.objects.create(name).upload_from_file(large)
                    assert bucket.objects.get(name).size == large.stat().st_size  # type: ignore[union-attr]
                else:
                    body = f"{worker}-{number}".encode() * 100
                    bucket.objects.create(name).upload(body)
                    assert bucket.objects.get(name).read() == body  # type: ignore[union-attr]
                done[0] += 1
            except BaseException as err:
                failures.append(err)
            number += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[0]
    assert done[0] > 8
    # 52 seconds of 15-second credentials: at least three sets, fetched once each, not per thread.
    assert 3 <= source.calls <= 10
    provider.close()


def test_an_expired_token_answer_renews_them(sts_server: RunningServer) -> None:
    source = Counting(sts_server, claim_lifetime=timedelta(hours=1))
    provider = make(sts_server, source)
    bucket = provider.storage.buckets.create("renewing")
    bucket.objects.create("a").upload(b"before")
    assert source.calls == 1
    time.sleep(LIFETIME + 2)  # the real credentials are gone; the claimed expiry is an hour away
    assert bucket.objects.get("a").read() == b"before"  # type: ignore[union-attr]
    assert source.calls == 2
    provider.close()


def test_signed_urls_never_outlive_the_credentials(sts_server: RunningServer) -> None:
    provider = make(sts_server, Counting(sts_server))
    bucket = provider.storage.buckets.create("urls")
    obj = bucket.objects.create("shared.txt")
    obj.upload(b"shared")
    with pytest.raises(InvalidParamException) as refused:
        obj.generate_url(expires_in=3600)
    message = str(refused.value)
    assert len(re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", message)) == 2 and "expires_in" in message
    with pytest.raises(InvalidParamException):
        obj.generate_post(3600, max_size=10)
    url = obj.generate_url(expires_in=5)
    with urllib.request.urlopen(url, timeout=30) as response:
        assert response.read() == b"shared"
    provider.close()


def test_fixed_temporary_credentials_with_a_known_expiry(sts_server: RunningServer) -> None:
    fetched = Counting(sts_server)()
    assert fetched.expires_at is not None
    config = {
        "s3_endpoint_url": sts_server.config["s3_endpoint_url"],
        "aws_access_key": fetched.values["aws_access_key"],
        "aws_secret_key": fetched.values["aws_secret_key"],
        "aws_session_token": fetched.values["aws_session_token"],
        "credentials_expiry": fetched.expires_at.isoformat(),
    }
    provider = CloudProviderFactory().create_provider("aws", config)
    obj = provider.storage.buckets.create("fixed").objects.create("x")
    with pytest.raises(InvalidParamException, match="outlive the credentials"):
        obj.generate_url(expires_in=600, writable=True)
    assert obj.generate_url(expires_in=2, writable=True).method == "PUT"
    provider.close()


def test_web_identity_tokens_exchanged_and_refreshed(sts_server: RunningServer, issuer: oidc.Issuer) -> None:
    """openEO's flow: the user's OIDC token (a callable: it is renewed too) for S3 credentials."""
    tokens: list[str] = []

    def user_token() -> str:
        tokens.append(issuer.token(lifetime=60))
        return tokens[-1]

    fetch = aws_web_identity(
        sts_server.extra["role_arn"], user_token, sts_endpoint_url=sts_server.extra["endpoint_url"]
    )
    config = {
        "s3_endpoint_url": sts_server.config["s3_endpoint_url"],
        "aws_access_key": None,
        "aws_secret_key": None,
        "aws_session_token": None,
        "credentials_provider": fetch,
    }
    provider = CloudProviderFactory().create_provider("aws", config)
    bucket = provider.storage.buckets.create("web-identity")
    bucket.objects.create("first").upload(b"1")
    time.sleep(LIFETIME + 1)
    bucket.objects.create("second").upload(b"2")
    assert sorted(o.name for o in bucket.objects) == ["first", "second"]
    assert len(tokens) >= 2  # a fresh OIDC token for each exchange
    # A token the identity provider did not sign is refused by the STS: no credentials.
    forged = aws_web_identity(
        sts_server.extra["role_arn"], "e30.e30.c2ln", sts_endpoint_url=sts_server.extra["endpoint_url"]
    )
    with pytest.raises(Exception, match="AssumeRoleWithWebIdentity"):
        forged()
    provider.close()

"""Swift logins that expire: tempauth tokens of a few seconds, on a Swift of their own.

With a password the provider logs in again when Swift refuses the token (401); with a
``credentials_provider`` it asks the callable again, before the token expires and on a 401.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from cloudstore import CloudProviderFactory
from cloudstore.credentials import TemporaryCredentials
from tests.support.servers import swift
from tests.support.servers.base import RunningServer
from tests.support.workload import round_trips

TOKEN_LIFE = 4


@pytest.fixture(scope="module")
def short_tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    server = swift.start(tmp_path_factory.mktemp("swift-tokens"), token_life=TOKEN_LIFE)
    yield server
    server.stop()


def test_password_login_again_after_the_token_expired(short_tokens: RunningServer) -> None:
    provider = CloudProviderFactory().create_provider("openstack", dict(short_tokens.config))
    bucket = provider.storage.buckets.create("relogin")
    bucket.objects.create("a").upload(b"before")
    old = TokenLogin(short_tokens)().values
    time.sleep(TOKEN_LIFE + 1.5)
    # Swift refuses a token of that age now ...
    refused = requests.head(old["os_storage_url"], headers={"X-Auth-Token": old["os_auth_token"]}, timeout=30)
    assert refused.status_code == 401
    # ... and the provider logs in again by itself.
    assert bucket.objects.get("a").read() == b"before"  # type: ignore[union-attr]
    provider.close()


class TokenLogin:
    """A credentials_provider that logs in with Swift's v1 auth, as an external helper would."""

    def __init__(self, server: RunningServer, claim: timedelta | None = None) -> None:
        self.calls = 0
        self._server = server
        self._claim = claim

    def __call__(self) -> TemporaryCredentials:
        self.calls += 1
        config = self._server.config
        answer = requests.get(
            config["os_auth_url"],
            headers={"X-Auth-User": config["os_username"], "X-Auth-Key": config["os_password"]},
            timeout=30,
        )
        answer.raise_for_status()
        life = self._claim or timedelta(seconds=int(answer.headers["X-Auth-Token-Expires"]))
        return TemporaryCredentials(
            {"os_auth_token": answer.headers["X-Auth-Token"], "os_storage_url": answer.headers["X-Storage-Url"]},
            datetime.now(UTC) + life,
        )


def test_token_callable_refreshes_during_transfers(short_tokens: RunningServer) -> None:
    source = TokenLogin(short_tokens)
    config = {"credentials_provider": source, "os_auth_url": None, "os_username": None, "os_password": None}
    provider = CloudProviderFactory().create_provider("openstack", config)
    bucket = provider.storage.buckets.create("tokens")
    failures = round_trips(bucket, 3 * TOKEN_LIFE)
    assert not failures, failures[0]
    assert 3 <= source.calls <= 12
    provider.close()


def test_token_refused_as_expired_is_renewed(short_tokens: RunningServer) -> None:
    source = TokenLogin(short_tokens, claim=timedelta(hours=1))
    config = {"credentials_provider": source, "os_auth_url": None, "os_username": None, "os_password": None}
    provider = CloudProviderFactory().create_provider("openstack", config)
    bucket = provider.storage.buckets.create("renewed")
    bucket.objects.create("a").upload(b"x")
    time.sleep(TOKEN_LIFE + 1.5)
    assert bucket.objects.get("a").read() == b"x"  # type: ignore[union-attr]
    assert source.calls == 2
    provider.close()

"""GCS access tokens from a ``credentials_provider``, refreshed by cloudstore.

The tests act as their own OAuth server: each token they issue is written with its expiry into
the file the GCS gateway checks ``cs-token-`` tokens against (fake-gcs-server checks none), so
an expired token is refused with 401 as GCS refuses it.
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

from cloudstore import CloudProvider, CloudProviderFactory
from cloudstore.credentials import TemporaryCredentials
from tests.conftest import server_fixture
from tests.support.servers.base import RunningServer
from tests.support.workload import round_trips

LIFETIME = 3.0


gcs = server_fixture("gcp")


class Issuer:
    """Issues tokens that the gateway accepts for ``LIFETIME`` seconds; counts its calls."""

    def __init__(self, server: RunningServer, claim: timedelta | None = None) -> None:
        self.calls = 0
        self._file: Path = server.extra["token_file"]
        self._claim = claim
        self._lock = threading.Lock()

    def __call__(self) -> TemporaryCredentials:
        token = "cs-token-" + secrets.token_hex(16)
        with self._lock:
            self.calls += 1
            with open(self._file, "a") as listed:
                listed.write(f"{token} {time.time() + LIFETIME}\n")
        life = self._claim or timedelta(seconds=LIFETIME)
        return TemporaryCredentials({"gcp_access_token": token}, datetime.now(UTC) + life)


def make(server: RunningServer, issuer: Issuer) -> CloudProvider:
    config = {
        "gcp_endpoint_url": server.config["gcp_endpoint_url"],
        "gcp_project_name": "cloudstore-test",
        "gcp_service_creds_dict": None,
        "credentials_provider": issuer,
    }
    return CloudProviderFactory().create_provider("gcp", config)


def test_the_gateway_refuses_expired_tokens(gcs: RunningServer) -> None:
    token = Issuer(gcs)().values["gcp_access_token"]
    url = gcs.config["gcp_endpoint_url"] + "/storage/v1/b?project=cloudstore-test"
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200
    time.sleep(LIFETIME + 0.5)
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 401


def test_tokens_refresh_during_transfers(gcs: RunningServer) -> None:
    issuer = Issuer(gcs)
    provider = make(gcs, issuer)
    bucket = provider.storage.buckets.create(f"tok-{secrets.token_hex(6)}")
    failures = round_trips(bucket, 3 * LIFETIME)
    assert not failures, failures[0]
    assert 3 <= issuer.calls <= 15
    bucket.delete(delete_contents=True)
    provider.close()


def test_a_401_renews_the_token(gcs: RunningServer) -> None:
    issuer = Issuer(gcs, claim=timedelta(hours=1))  # claims an hour; the gateway knows better
    provider = make(gcs, issuer)
    bucket = provider.storage.buckets.create(f"tok-{secrets.token_hex(6)}")
    bucket.objects.create("a").upload(b"x")
    time.sleep(LIFETIME + 0.5)
    assert bucket.objects.get("a").read() == b"x"  # type: ignore[union-attr]
    assert issuer.calls == 2
    bucket.delete(delete_contents=True)
    provider.close()

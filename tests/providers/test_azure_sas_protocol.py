"""An Azure SAS for an https endpoint restricts the protocol (``spr=https``): leaked into a plain
HTTP request, it is refused by the service. Signing makes no network call, so no server is needed."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from cloudstore.providers.azure.sas import blob_sas_url

KEY = base64.b64encode(b"k" * 64).decode()


@pytest.mark.parametrize(
    ("endpoint", "protocol"),
    [("https://acct.blob.core.windows.net", ["https"]), ("http://127.0.0.1:10000/acct", None)],
)
def test_sas_protocol_follows_the_endpoint(endpoint: str, protocol: list[str] | None) -> None:
    expiry = datetime.now(UTC) + timedelta(hours=1)
    for method in ("GET", "PUT"):
        url = blob_sas_url(f"{endpoint}/c/b.txt", "acct", "c", "b.txt", method, expiry, account_key=KEY)
        assert parse_qs(urlsplit(url).query).get("spr") == protocol

"""Azurite's blob service (the Azure Storage emulator) on 127.0.0.1, for the ``azure`` provider.

Installed by ``scripts/servers/install_azurite.sh`` into ``SERVERS_DIR/azurite``. Azurite checks
Shared Key signatures and SAS tokens (expiry, permissions, tampering) like Azure does, so the
signed-URL tests against it are meaningful.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cloudstore.testing import Quirks
from tests.support.servers.base import (
    SERVERS_DIR,
    RunningServer,
    ServerNotInstalled,
    free_port,
    self_signed_certificate,
    spawn,
    wait_for_port,
)

#: Azurite's fixed development account (the same for every installation, documented by Microsoft).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

AZURITE_BLOB = SERVERS_DIR / "azurite" / "node_modules" / ".bin" / "azurite-blob"


def account_sas_token(valid_for: timedelta = timedelta(days=1)) -> str:
    """An account SAS (blob service; service, container and object level; all permissions)."""
    from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas

    return generate_account_sas(
        account_name=ACCOUNT_NAME,
        account_key=ACCOUNT_KEY,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(
            read=True, write=True, delete=True, list=True, add=True, create=True, update=True, process=True
        ),
        expiry=datetime.now(UTC) + valid_for,
    )


#: What Azurite does differently from Azure Blob Storage (docs: "Known differences" in azure.rst).
QUIRKS = Quirks(
    name_differences={
        "back\\slash": "Azurite lists '\\' as '/'",
        "bell\x07char": "Azurite answers 500 for a name with a control character and the container stops listing",
    },
    # Azure refuses a PUT to a signed URL without it (as seeds/003 says).
    signed_put_headers={"x-ms-blob-type": "BlockBlob"},
)


def start(workdir: Path) -> RunningServer:
    """Start ``azurite-blob`` with a fresh data directory and return its provider config."""
    port, proc = _launch(workdir, "azurite")
    endpoint = f"http://127.0.0.1:{port}/{ACCOUNT_NAME}"
    config: dict[str, Any] = {
        "azure_storage_account": ACCOUNT_NAME,
        "azure_account_key": ACCOUNT_KEY,
        "azure_blob_endpoint": endpoint,
    }
    sas_token = account_sas_token()
    extra: dict[str, Any] = {
        "port": port,
        "endpoint": endpoint,
        "account_name": ACCOUNT_NAME,
        "account_key": ACCOUNT_KEY,
        "connection_string": (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={endpoint};"
        ),
        "sas_token": sas_token,
        # A provider that holds only an account SAS (the session-token style): objects work, signing
        # does not. The key is set to None (not left out) so that merging this over ``config`` drops it.
        "sas_config": {
            "azure_storage_account": ACCOUNT_NAME,
            "azure_account_key": None,
            "azure_sas_token": sas_token,
            "azure_blob_endpoint": endpoint,
        },
        "location": workdir / "azurite-data",
        "log": workdir / "azurite.log",
    }
    return RunningServer("azure", config, [proc], extra)


def start_https_oauth(workdir: Path) -> RunningServer:
    """A second Azurite on HTTPS with ``--oauth basic``, for ``azure_credential`` (bearer token) tests.

    The SDK sends bearer tokens over HTTPS only. Azurite's basic OAuth checks a token's issuer,
    audience and lifetime, not its signature, so :func:`fake_bearer_token` is accepted. The
    self-signed certificate is ``extra["ca_bundle"]`` (point ``REQUESTS_CA_BUNDLE`` at it).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = self_signed_certificate(workdir, "azurite")
    port, proc = _launch(workdir, "azurite-https", "--oauth", "basic", "--cert", cert, "--key", key)
    endpoint = f"https://127.0.0.1:{port}/{ACCOUNT_NAME}"
    config = {"azure_storage_account": ACCOUNT_NAME, "azure_blob_endpoint": endpoint}
    log = workdir / "azurite-https.log"
    return RunningServer("azure", config, [proc], {"port": port, "endpoint": endpoint, "ca_bundle": cert, "log": log})


def _launch(workdir: Path, name: str, *extra_args: str | Path) -> tuple[int, subprocess.Popen[bytes]]:
    """Start ``azurite-blob`` on a free loopback port with a fresh ``<name>-data`` folder and ``<name>.log``."""
    if not AZURITE_BLOB.exists():
        raise ServerNotInstalled(f"{AZURITE_BLOB} is missing: run scripts/servers/install_azurite.sh")
    location = workdir / f"{name}-data"
    location.mkdir(parents=True, exist_ok=False)
    log = workdir / f"{name}.log"
    port = free_port()
    args: list[str | Path] = [
        AZURITE_BLOB,
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        location,
        "--disableTelemetry",
        "--silent",
        # azure-storage-blob speaks a newer REST API version than Azurite 3.35 knows.
        "--skipApiVersionCheck",
        *extra_args,
    ]
    proc = spawn(args, log, cwd=workdir)
    try:
        wait_for_port(port, proc, log)
    except BaseException:
        RunningServer("azure", {}, [proc]).stop()
        raise
    return port, proc


#: Identity claims of :func:`fake_bearer_token` (they come back in user delegation keys).
TOKEN_OBJECT_ID = "11111111-2222-3333-4444-555555555555"
TOKEN_TENANT_ID = "ab1f708d-50f6-404c-a006-d71b2ac7a606"


def fake_bearer_token(valid_for: timedelta = timedelta(hours=1)) -> tuple[str, int]:
    """An unsigned-in-effect JWT that Azurite's basic OAuth accepts, and its expiry (Unix time)."""
    import base64
    import json
    import time

    def part(claims: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    now = int(time.time())
    expires = now + int(valid_for.total_seconds())
    claims = {
        "aud": "https://storage.azure.com",
        "iss": f"https://sts.windows.net/{TOKEN_TENANT_ID}/",
        "nbf": now - 300,
        "iat": now - 300,
        "exp": expires,
        "oid": TOKEN_OBJECT_ID,
        "tid": TOKEN_TENANT_ID,
    }
    return f"{part({'alg': 'RS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl", expires

"""Azurite's blob service (the Azure Storage emulator) on 127.0.0.1, for the ``azure`` provider.

Installed by ``scripts/servers/install_azurite.sh`` into ``SERVERS_DIR/azurite``. Azurite checks
Shared Key signatures and SAS tokens (expiry, permissions, tampering) like Azure does, so the
signed-URL tests against it are meaningful.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.servers.base import SERVERS_DIR, RunningServer, ServerNotInstalled, free_port, spawn, wait_for_port

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
        expiry=datetime.now(timezone.utc) + valid_for,
    )


def start(workdir: Path) -> RunningServer:
    """Start ``azurite-blob`` with a fresh data directory and return its provider config."""
    if not AZURITE_BLOB.exists():
        raise ServerNotInstalled(f"{AZURITE_BLOB} is missing: run scripts/servers/install_azurite.sh")
    location = workdir / "azurite-data"
    location.mkdir(parents=True, exist_ok=False)
    log = workdir / "azurite.log"
    port = free_port()
    proc = spawn(
        [
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
        ],
        log,
        cwd=workdir,
    )
    try:
        wait_for_port(port, proc, log)
    except BaseException:
        RunningServer("azure", {}, [proc]).stop()
        raise
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
        "location": location,
        "log": log,
    }
    return RunningServer("azure", config, [proc], extra)

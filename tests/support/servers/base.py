"""Start a real storage server on 127.0.0.1 for the tests, and stop it by its PID.

Each module in this package (``local``, ``seaweedfs``, ``swift``, ``azurite``,
``fakegcs``) exposes ``start(workdir: Path) -> RunningServer``; the tests'
``conftest.py`` starts each server once per session. Every server gets a fresh
data directory under ``workdir`` and a free loopback port, and writes its log to
``workdir/<name>.log`` (printed when it fails to start).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

#: Where ``scripts/install-servers.sh`` puts the servers (node modules, Swift's venv).
SERVERS_DIR = Path(os.environ.get("CLOUDSTORE_SERVERS_DIR", Path(__file__).resolve().parents[3] / ".servers"))


class ServerNotInstalled(RuntimeError):
    """The server's program is missing: run ``scripts/install-servers.sh``."""


def free_port(span: int = 1, below: int = 55000) -> int:
    """A loopback port P such that P..P+span-1 are all free (and P < ``below``)."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port + span >= below:
            continue
        if all(_port_free(port + i) for i in range(span)):
            return port
    raise RuntimeError(f"no run of {span} free loopback ports found")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30.0) -> None:
    """Wait until something accepts connections on 127.0.0.1:port (or the process dies)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log:\n{_tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not open port {port} within {timeout}s; log:\n{_tail(log)}")


def _tail(log: Path, lines: int = 40) -> str:
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@dataclass
class RunningServer:
    """A started server: the provider config that reaches it, and how to stop it."""

    name: str
    #: The ``create_provider`` config dict for this server.
    config: dict[str, Any]
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: Anything else the provider-specific tests need (admin credentials, ports, ...).
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def spawn(
    args: Sequence[str | os.PathLike[str]],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, output to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(a) for a in args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )


def self_signed_certificate(workdir: Path, name: str) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1, valid for a day, and its key: ``(cert.pem, key.pem)`` under
    ``workdir``, named after ``name`` (it is its own CA: a client trusts it as ``verify=cert``)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = workdir / f"{name}-cert.pem", workdir / f"{name}-key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    return cert_path, key_path

"""LOCAL: a root folder plus ``cloudstore serve`` (the real signed-URL server) on a free port."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path

from cloudstore.testing import Quirks
from tests.support.servers.base import RunningServer, free_port, spawn, wait_for_port

#: LOCAL keeps objects as files, by design.
QUIRKS = Quirks(
    key_and_keys_under_it="LOCAL keeps objects as files: 'a' cannot be a file and a folder "
    "(InvalidNameException, by design)",
)


def start(workdir: Path) -> RunningServer:
    root = workdir / "local-root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    secret = secrets.token_hex(32)
    log = workdir / "local-serve.log"
    proc = spawn(
        [sys.executable, "-m", "cloudstore", "serve", "--root", root, "--port", str(port), "--secret", secret],
        log,
    )
    wait_for_port(port, proc, log)
    config = {"local_root": str(root), "local_url": f"http://127.0.0.1:{port}", "local_secret": secret}
    return RunningServer("local", config, [proc], extra={"port": port})

"""MEMORY: no server at all; each provider made from this config has a store of its own."""

from __future__ import annotations

from pathlib import Path

from tests.servers.base import RunningServer


def start(workdir: Path) -> RunningServer:
    return RunningServer("memory", {})

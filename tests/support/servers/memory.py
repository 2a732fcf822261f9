"""MEMORY: no server at all; the providers made from this config share one in-process store."""

from __future__ import annotations

from pathlib import Path

from cloudstore.testing import Quirks
from tests.support.servers.base import RunningServer

QUIRKS = Quirks()


def start(workdir: Path) -> RunningServer:
    return RunningServer("memory", {})

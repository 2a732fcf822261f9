"""MEMORY: no server at all; each provider made from this config has a store of its own."""

from __future__ import annotations

from pathlib import Path

from cloudstore.testing import Quirks
from tests.support.servers.base import RunningServer

QUIRKS = Quirks(
    state_per_provider="each memory provider has a store of its own: a second provider, a pickled copy or a "
    "forked child sees none of its buckets",
)


def start(workdir: Path) -> RunningServer:
    return RunningServer("memory", {})

"""Fixtures shared by every test: real servers, started once per session, and providers on them.

The providers under test are those of ``CLOUDSTORE_TEST_PROVIDERS`` (comma-separated registered
provider ids; default: every registered provider with a test server here, ``SERVER_MODULES``), or
of ``--cloudstore-provider``. The conformance plugin (:mod:`cloudstore.testing.plugin`) runs each
case once per provider; ``cloudstore_targets`` below hands it each provider on its started server,
with the quirks that server's launcher declares (``QUIRKS`` in tests/support/servers/*.py). The
``server``, ``provider`` and ``bucket`` fixtures of every other per-provider test are the same ones.
A test module of one provider makes its own with ``server_fixture``, ``provider_fixture`` and
``bucket_fixture``.
A selected provider whose server cannot start fails its tests: it is never skipped silently.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudstore import Bucket, CloudProvider, CloudProviderFactory
from cloudstore.registry import registered
from cloudstore.testing import TEST_TRANSFER, Target, fresh_bucket, unique_name
from tests.support.servers.base import RunningServer

pytest_plugins = ["cloudstore.testing.plugin"]

__all__ = [
    "TEST_TRANSFER",
    "Servers",
    "bucket_fixture",
    "fresh_bucket",
    "make_provider",
    "provider_fixture",
    "selected_providers",
    "server_fixture",
    "unique_name",
]

#: How to start a test server for each provider id of the registry (the module's ``start(workdir)``
#: and its ``QUIRKS``).
SERVER_MODULES = {
    "local": "tests.support.servers.local",
    "aws": "tests.support.servers.seaweedfs",
    "openstack": "tests.support.servers.swift",
    "azure": "tests.support.servers.azurite",
    "gcp": "tests.support.servers.fakegcs",
    "memory": "tests.support.servers.memory",
}


def selected_providers() -> list[str]:
    chosen = os.environ.get("CLOUDSTORE_TEST_PROVIDERS", "")
    testable = [provider_id for provider_id in registered() if provider_id in SERVER_MODULES]
    names = [n.strip().lower() for n in chosen.split(",") if n.strip()] or testable
    unknown = set(names) - set(testable)
    if unknown:
        raise pytest.UsageError(
            f"CLOUDSTORE_TEST_PROVIDERS names providers without a test server: {sorted(unknown)}; "
            f"choose from {', '.join(testable)}"
        )
    return names


def pytest_configure(config: pytest.Config) -> None:
    from cloudstore.testing.plugin import use_providers  # loaded by pytest_plugins (assertions rewritten)

    if not config.getoption("cloudstore_provider"):
        use_providers(config, selected_providers())


class Servers:
    """Starts each server on first use and stops them all at the end of the session."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._running: dict[str, RunningServer] = {}
        self._failed: dict[str, str] = {}

    def get(self, provider_id: str) -> RunningServer:
        if provider_id in self._failed:
            pytest.fail(f"the {provider_id} server failed to start earlier: {self._failed[provider_id]}")
        if provider_id not in self._running:
            module = importlib.import_module(SERVER_MODULES[provider_id])
            try:
                self._running[provider_id] = module.start(self.workdir / provider_id)
            except Exception as err:
                self._failed[provider_id] = f"{type(err).__name__}: {err}"
                raise
        return self._running[provider_id]

    def stop_all(self) -> None:
        for server in self._running.values():
            server.stop()


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    registry = Servers(tmp_path_factory.mktemp("servers"))
    yield registry
    registry.stop_all()


def make_provider(server: RunningServer, **overrides: Any) -> CloudProvider:
    config = {"transfer_config": TEST_TRANSFER, **server.config, **overrides}
    return CloudProviderFactory().create_provider(server.name, config)


# The fixtures of a test module about one provider. Each is registered under the name the module
# assigns it to (``azurite = server_fixture("azure")``); the names of the fixtures it builds on
# are arguments.
def server_fixture(provider_id: str) -> Any:
    """A module-scoped fixture: the provider's server, started once per session."""

    @pytest.fixture(scope="module")
    def started(servers: Servers) -> RunningServer:
        return servers.get(provider_id)

    return started


def provider_fixture(server: str = "server") -> Any:
    """A module-scoped fixture: a provider on the running server of the fixture ``server``."""

    @pytest.fixture(scope="module")
    def made(request: pytest.FixtureRequest) -> Iterator[CloudProvider]:
        provider = make_provider(request.getfixturevalue(server))
        yield provider
        provider.close()

    return made


def bucket_fixture(prefix: str, provider: str = "provider") -> Any:
    """A fixture: a fresh bucket named ``prefix-...`` on the fixture ``provider``, deleted with its contents."""

    @pytest.fixture
    def fresh(request: pytest.FixtureRequest) -> Iterator[Bucket]:
        with fresh_bucket(request.getfixturevalue(provider), prefix) as created:
            yield created

    return fresh


@pytest.fixture(scope="session")
def cloudstore_targets(servers: Servers) -> Callable[[str], Target]:
    """Each provider under test on its started server, with the quirks its launcher declares."""

    def target(provider_id: str) -> Target:
        from tests.faults.targets import TARGETS  # imports this module

        server = servers.get(provider_id)
        fault_target = TARGETS.get(provider_id)
        return Target(
            provider_id,
            server.config,
            importlib.import_module(SERVER_MODULES[provider_id]).QUIRKS,
            leftovers=None if fault_target is None else lambda bucket: fault_target.leftovers(server, bucket),
        )

    return target


@pytest.fixture(scope="session")
def server(cloudstore_target: Target, servers: Servers) -> RunningServer:
    """The running server of each provider under test in turn."""
    return servers.get(cloudstore_target.provider)

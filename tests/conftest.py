"""Fixtures shared by every test: real servers, started once per session, and providers on them.

``CLOUDSTORE_TEST_PROVIDERS`` (comma-separated registered provider ids) selects
the providers the conformance suite runs against; the default is every registered
provider that has a test server here (``SERVER_MODULES``).
A selected provider whose server cannot start fails its tests: it is never
skipped silently.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudstore import Bucket, CloudProvider, CloudProviderFactory, TransferConfig
from cloudstore.backend import Features
from cloudstore.registry import registered, spec_for
from tests.servers.base import RunningServer

#: How to start a test server for each provider id of the registry (the module's ``start(workdir)``).
SERVER_MODULES = {
    "local": "tests.servers.local",
    "aws": "tests.servers.seaweedfs",
    "openstack": "tests.servers.swift",
    "azure": "tests.servers.azurite",
    "gcp": "tests.servers.fakegcs",
    "memory": "tests.servers.memory",
}

#: Small parts so the conformance suite exercises multipart paths with small objects
#: (5 MiB is S3's smallest part).
TEST_TRANSFER = TransferConfig(threshold=6 * 1024 * 1024, part_size=5 * 1024 * 1024, max_concurrency=4)


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


def provider_features(provider_id: str) -> Features:
    """The capabilities the provider's backend declares or implements (imports its SDK)."""
    module, _, class_name = spec_for(provider_id).backend.partition(":")
    features: Features = getattr(importlib.import_module(module), class_name).features
    return features


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*capabilities): run only on providers whose features have every named capability "
        "(e.g. signed_urls); deselected on the others",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cases a provider's declared capabilities rule out (``@pytest.mark.needs``)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        marker = item.get_closest_marker("needs")
        callspec = getattr(item, "callspec", None)
        provider_id = callspec.params.get("server") if callspec is not None else None
        if marker is not None and isinstance(provider_id, str):
            features = provider_features(provider_id)
            if not all(getattr(features, capability) for capability in marker.args):
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


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


@pytest.fixture(scope="session", params=selected_providers())
def server(request: pytest.FixtureRequest, servers: Servers) -> RunningServer:
    """The running server of each selected provider in turn."""
    return servers.get(request.param)


@pytest.fixture(scope="session")
def provider(server: RunningServer) -> CloudProvider:
    """A provider on a real server, one per selected provider id."""
    return make_provider(server)


#: What a test server does not do that the real service does, with the reason to quote.
#: Test servers that accept any signed URL, and why that is no gap in the proof.
#: (fake-gcs-server checks none, but tests/servers/gcs_gateway.py in front of it does.)
UNCHECKED_SIGNATURES: dict[str, str] = {}


def servers_checking_signatures() -> list[Any]:
    """The selected servers, for ``parametrize("server", ..., indirect=True)`` of tests that need
    a server to refuse bad signatures: one that cannot is skipped, with the reason why."""
    return [
        pytest.param(
            name,
            marks=pytest.mark.skipif(name in UNCHECKED_SIGNATURES, reason=UNCHECKED_SIGNATURES.get(name, "")),
        )
        for name in selected_providers()
    ]


def _byte_order(key: str) -> Any:
    return key.encode("utf-8")


def _path_segment_order(key: str) -> Any:
    return [segment.encode("utf-8") for segment in key.split("/")]


#: The order each server lists keys in. S3, Swift, Azure, GCS and LOCAL sort by UTF-8 bytes;
#: SeaweedFS walks its filer's directory tree, so it sorts path segment by segment
#: ("b/1" before "b-sibling"). Paging must still cover each key exactly once.
LISTING_ORDER = {"aws": _path_segment_order}


@pytest.fixture
def listing_order(server: RunningServer) -> Any:
    """The sort key matching the order the current server lists keys in."""
    return LISTING_ORDER.get(server.name, _byte_order)


def unique_name(prefix: str = "cs") -> str:
    """A bucket name valid on every provider and unused so far."""
    return f"{prefix}-{uuid.uuid4().hex[:20]}"


@contextlib.contextmanager
def fresh_bucket(provider: CloudProvider, prefix: str = "cs") -> Iterator[Bucket]:
    """A new empty bucket, deleted with its contents afterwards (if the test left it)."""
    created = provider.storage.buckets.create(unique_name(prefix))
    try:
        yield created
    finally:
        if created.exists():
            created.delete(delete_contents=True)


@pytest.fixture
def bucket(provider: CloudProvider) -> Iterator[Bucket]:
    """A fresh empty bucket, deleted with its contents afterwards."""
    with fresh_bucket(provider) as created:
        yield created


#: Object names a test server mishandles although the real service stores and lists them, with
#: what the server does (docs: "Known differences" on each provider's page). The conformance
#: tests expect these to fail on that server (strict xfail), so a real cloud runs them all.
NAME_DIFFERENCES: dict[str, dict[str, str]] = {
    "aws": {
        "folder-with-data/": "SeaweedFS keeps a key ending in '/' as a folder: its data reads back empty",
        "/leading-slash": "SeaweedFS drops a leading '/' (stored and listed as 'leading-slash')",
        "back\\slash": "SeaweedFS stores '\\' as '/'",
        "double//slash": "SeaweedFS collapses '//' into '/'",
        "dot/./segment": "SeaweedFS refuses '.' path segments (InvalidRequest)",
        "dot-dot/../segment": "SeaweedFS refuses '..' path segments (InvalidRequest)",
    },
    "azure": {
        "back\\slash": "Azurite lists '\\' as '/'",
        "bell\x07char": "Azurite answers 500 for a name with a control character and the container stops listing",
    },
    "gcp": {
        "folder-with-data/": "fake-gcs-server (filesystem backend) cannot find a key ending in '/' again",
        "/leading-slash": "fake-gcs-server lists a leading '/' name without it",
        "double//slash": "fake-gcs-server lists 'a//b' as 'a/b'",
        "dot/./segment": "fake-gcs-server lists 'a/./b' as 'a/b'",
        "dot-dot/../segment": "fake-gcs-server lists 'a/../b' as 'b'",
    },
}

#: Servers that cannot hold a key and keys under it ("a" and "a/b") at once.
KEY_AND_KEYS_UNDER_IT: dict[str, str] = {
    "local": "LOCAL keeps objects as files: 'a' cannot be a file and a folder (InvalidNameException, by design)",
    "gcp": "fake-gcs-server (filesystem backend) answers 500: 'mkdir .../a: not a directory'",
}

#: Servers that keep listing a prefix (a pseudo-folder) after the last object under it is deleted,
#: where the real service lists only prefixes that objects are under.
PREFIX_OUTLIVES_ITS_OBJECTS: dict[str, str] = {
    "aws": "SeaweedFS keeps the filer folder of a deleted object: the emptied prefix is still listed",
}

#: Servers that store another content type than the one sent (none so far: cloudstore always
#: sends one, application/octet-stream by default, so SeaweedFS has nothing to sniff).
CONTENT_TYPE_DIFFERENCES: dict[str, str] = {}


def known_difference(request: pytest.FixtureRequest, server: RunningServer, reason: str | None) -> None:
    """Mark the running test as an expected failure on ``server`` when a table above declares one."""
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"{server.name}: {reason}"))

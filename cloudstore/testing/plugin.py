"""The pytest plugin that runs cloudstore's conformance suite against a registered provider.

Loaded by the ``pytest11`` entry point, by ``-p cloudstore.testing`` or by a conftest's
``pytest_plugins``; it does nothing until a provider is chosen::

    pytest -p cloudstore.testing --cloudstore-provider NAME --cloudstore-config FILE

runs every case of :mod:`cloudstore.testing.conformance` (from any folder) against ``NAME``,
configured by ``FILE``. A project that starts its own servers names the providers with
:func:`use_providers` and overrides the ``cloudstore_targets`` fixture instead (see
``tests/conformance/conftest.py`` in cloudstore's repository); the ``cloudstore_conformance_dir``
ini setting names the folder of its tests the shipped cases are collected in.

Fixtures for the cases: ``cloudstore_target`` (a :class:`~cloudstore.testing.Target`, one per
provider), ``provider``, ``bucket``, ``quirks``, ``listing_order``, ``known_difference`` and
``spied``. Cases marked ``@pytest.mark.needs("signed_urls", ...)`` run only on providers whose
features have those capabilities; the others deselect them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudstore import Bucket, CloudProvider
from cloudstore.backend import Features
from cloudstore.registry import spec_for
from cloudstore.testing.spy import Spied, spy_on
from cloudstore.testing.target import Quirks, Target, fresh_bucket, read_config_file

#: The shipped cases.
CASES = Path(__file__).resolve().with_name("conformance")

_PROVIDERS = pytest.StashKey[list[str]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cloudstore", "cloudstore conformance suite (cloudstore.testing)")
    group.addoption(
        "--cloudstore-provider",
        action="append",
        default=[],
        metavar="NAME",
        help="run the conformance suite against this registered provider (repeat for more)",
    )
    group.addoption(
        "--cloudstore-config",
        metavar="FILE",
        help="the provider's config: a JSON object, or an ini file with a [NAME] section",
    )
    group.addoption(
        "--cloudstore-quirks",
        metavar="MODULE:NAME",
        help="a cloudstore.testing.Quirks object declaring what the provider does differently",
    )
    parser.addini(
        "cloudstore_conformance_dir",
        "folders of the project's tests whose conftest hands providers to the plugin; the shipped "
        "conformance cases are collected in them",
        type="paths",
        default=[],
    )


def use_providers(config: pytest.Config, providers: list[str]) -> None:
    """Run the suite against these registered providers (ids or schemes, any case)."""
    config.stash[_PROVIDERS] = [spec_for(name).id for name in providers]


def chosen_providers(config: pytest.Config) -> list[str]:
    """The provider ids the suite runs against."""
    return config.stash.get(_PROVIDERS, [])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*capabilities): run only on providers whose features have every named capability "
        "(e.g. signed_urls); deselected on the others",
    )
    config.addinivalue_line(
        "markers",
        "lacks(*capabilities): run only on providers missing at least one named capability "
        "(the refusal cases); deselected on the others",
    )
    named = [name.strip() for value in config.getoption("cloudstore_provider") for name in value.split(",")]
    if any(named):
        use_providers(config, [name for name in named if name])
        # Run from any folder with no test paths given: the shipped cases.
        if not config.getini("cloudstore_conformance_dir") and config.args_source is not pytest.Config.ArgsSource.ARGS:
            config.args[:] = [str(CASES)]


def pytest_collect_directory(path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    """A folder named by ``cloudstore_conformance_dir``: its own files, then the shipped cases."""
    if path.resolve() not in {folder.resolve() for folder in parent.config.getini("cloudstore_conformance_dir")}:
        return None
    base = pytest.Package if (path / "__init__.py").is_file() else pytest.Dir
    folder: pytest.Collector = _with_cases(base).from_parent(parent, path=path)
    return folder


def _with_cases(base: type[pytest.Directory]) -> type[pytest.Directory]:
    class WithConformanceCases(base):  # type: ignore[misc,valid-type]
        def collect(self) -> Iterator[pytest.Item | pytest.Collector]:
            yield from super().collect()
            yield pytest.Package.from_parent(self, path=CASES)

    return WithConformanceCases


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One run of every case that uses ``cloudstore_target`` per chosen provider."""
    if "cloudstore_target" not in metafunc.fixturenames:
        return
    if any("cloudstore_target" in _argnames(mark) for mark in metafunc.definition.iter_markers("parametrize")):
        return
    providers = chosen_providers(metafunc.config)
    if not providers:
        raise pytest.UsageError(
            f"{metafunc.definition.nodeid} runs against a cloudstore provider: "
            "name one with --cloudstore-provider NAME (and --cloudstore-config FILE)"
        )
    metafunc.parametrize("cloudstore_target", providers, indirect=True, scope="session")


def _argnames(mark: pytest.Mark) -> list[str]:
    names = mark.args[0] if mark.args else mark.kwargs.get("argnames", "")
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


def declared_features(provider: str) -> Features:
    """The capabilities the provider's backend class declares or implements (imports its SDK)."""
    module, _, class_name = spec_for(provider).backend.partition(":")
    features: Features = getattr(importlib.import_module(module), class_name).features
    return features


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the cases a provider's capabilities rule out (``@pytest.mark.needs`` / ``lacks``)."""
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        needs = item.get_closest_marker("needs")
        lacks = item.get_closest_marker("lacks")
        callspec = getattr(item, "callspec", None)
        provider = callspec.params.get("cloudstore_target") if callspec is not None else None
        if (needs is not None or lacks is not None) and isinstance(provider, str):
            features = declared_features(provider)
            has_needed = needs is None or all(getattr(features, name) for name in needs.args)
            lacks_one = lacks is None or not all(getattr(features, name) for name in lacks.args)
            if not (has_needed and lacks_one):
                dropped.append(item)
                continue
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def _load_quirks(spec: str | None) -> Quirks:
    if not spec:
        return Quirks()
    module, _, name = spec.partition(":")
    quirks = getattr(importlib.import_module(module), name or "QUIRKS")
    if not isinstance(quirks, Quirks):
        raise pytest.UsageError(f"--cloudstore-quirks {spec} is not a cloudstore.testing.Quirks")
    return quirks


@pytest.fixture(scope="session")
def cloudstore_targets(pytestconfig: pytest.Config) -> Callable[[str], Target]:
    """How to reach each provider under test, by id: here from ``--cloudstore-config`` and
    ``--cloudstore-quirks``. A project that starts its own servers overrides this fixture."""
    config_file = pytestconfig.getoption("cloudstore_config")
    quirks = _load_quirks(pytestconfig.getoption("cloudstore_quirks"))

    def target(provider: str) -> Target:
        return Target(provider, read_config_file(config_file, provider) if config_file else {}, quirks)

    return target


@pytest.fixture(scope="session")
def cloudstore_target(request: pytest.FixtureRequest, cloudstore_targets: Callable[[str], Target]) -> Target:
    """The provider under test (the suite runs once per chosen provider)."""
    return cloudstore_targets(request.param)


@pytest.fixture(scope="session")
def provider(cloudstore_target: Target) -> Iterator[CloudProvider]:
    """A provider on the target, shared by the session's cases."""
    made = cloudstore_target.make_provider()
    yield made
    made.close()


@pytest.fixture
def bucket(provider: CloudProvider) -> Iterator[Bucket]:
    """A fresh empty bucket, deleted with its contents afterwards."""
    with fresh_bucket(provider) as created:
        yield created


@pytest.fixture
def quirks(cloudstore_target: Target) -> Quirks:
    """What the provider under test does differently."""
    return cloudstore_target.quirks


@pytest.fixture
def listing_order(quirks: Quirks) -> Callable[[str], Any]:
    """The sort key of the order the provider under test lists keys in."""
    return quirks.listing_order


@pytest.fixture
def known_difference(request: pytest.FixtureRequest, cloudstore_target: Target) -> Callable[[str | None], None]:
    """``known_difference(reason)``: the case is expected to fail here (strict) when a quirk says why."""

    def expect(reason: str | None) -> None:
        if reason is not None:
            request.applymarker(pytest.mark.xfail(strict=True, reason=f"{cloudstore_target.provider}: {reason}"))

    return expect


@pytest.fixture
def spied(provider: CloudProvider) -> Iterator[Spied]:
    """A new provider on the target whose requests go through a :class:`SpyBackend`."""
    made = spy_on(provider)
    yield made
    made.provider.close()

"""The providers cloudstore knows: each one registers itself once, with a :class:`ProviderSpec`.

A provider is a package whose ``__init__`` declares a ``SPEC`` (importing no SDK) and names, in
``SPEC.backend``, the :class:`~cloudstore.backend.Backend` class that does the work. It is
registered by an entry point of the group ``cloudstore.providers`` in its distribution's
``pyproject.toml``::

    [project.entry-points."cloudstore.providers"]
    mystore = "mystore_cloudstore:SPEC"

or, at run time, with :func:`register`. The built-in providers register the same way. Entry
points are read once, on first use (``import cloudstore`` reads none); the factory, the command
line (its ``PROVIDER://`` schemes) and :func:`~cloudstore.list_providers` all read this registry.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import MappingProxyType

from cloudstore.config import COMMON_KEYS, ConfigKey, ProviderList
from cloudstore.exceptions import InvalidParamException

log = logging.getLogger("cloudstore.registry")

#: The entry-point group a provider's distribution declares its :class:`ProviderSpec` in.
ENTRY_POINT_GROUP = "cloudstore.providers"

#: Where the built-in specs live: found even in a source checkout that was never installed
#: (its entry points are then unknown to ``importlib.metadata``).
_BUILTIN_SPECS = (
    "cloudstore.providers.aws:SPEC",
    "cloudstore.providers.openstack:SPEC",
    "cloudstore.providers.azure:SPEC",
    "cloudstore.providers.gcp:SPEC",
    "cloudstore.providers.local:SPEC",
    "cloudstore.providers.memory:SPEC",
)


@dataclass(frozen=True)
class ProviderSpec:
    """How to build one provider: its id, its schemes, its config keys and where its backend lives."""

    #: The provider's id (lowercase): ``create_provider("<id>")``, the config file's ``[<id>]`` section.
    id: str
    #: ``module:Class`` of the :class:`~cloudstore.backend.Backend`; imported only when used.
    backend: str
    #: The provider's own config keys (:data:`cloudstore.config.COMMON_KEYS` are added to them).
    keys: Mapping[str, ConfigKey] = field(default_factory=dict)
    #: Top-level modules the backend imports; all must be installed for the provider to work.
    sdk_modules: tuple[str, ...] = ()
    #: The ``pip install "cloudstore[extra]"`` that brings the SDK (``None``: a package of its own).
    extra: str | None = None
    #: Other names of the provider in ``PROVIDER://bucket/key`` addresses (the id always is one).
    schemes: tuple[str, ...] = ()
    #: One line saying what the provider stores into.
    description: str = ""

    def __post_init__(self) -> None:
        # A ProviderList member stays as it is (it is a str); anything else must be a lowercase id.
        if not isinstance(self.id, str) or not self.id or self.id != self.id.lower():
            raise InvalidParamException(f"a provider id must be a non-empty lowercase str, not {self.id!r}")
        if ":" not in self.backend:
            raise InvalidParamException(f"ProviderSpec.backend must be 'module:Class', not {self.backend!r}")

    @property
    def all_schemes(self) -> tuple[str, ...]:
        """The id and every other scheme, lowercase, each once."""
        return tuple(dict.fromkeys(s.lower() for s in (self.id, *self.schemes)))

    def all_keys(self) -> dict[str, ConfigKey]:
        """The keys the provider accepts: the common ones and its own."""
        return {**COMMON_KEYS, **self.keys}


_lock = threading.RLock()
_specs: dict[str, ProviderSpec] = {}
_builtin_ids: set[str] = set()
_loaded = False


def register(spec: ProviderSpec) -> None:
    """Add a provider (an entry point does this without code; this is for tests and plugins
    loaded by hand). Registering the same spec again does nothing; another spec with a taken
    id or scheme raises :class:`~cloudstore.exceptions.InvalidParamException`."""
    with _lock:
        _load()
        _add(spec)


def unregister(provider_id: str) -> None:
    """Forget a provider registered by :func:`register` or an entry point (a test's, a plugin
    unloaded by hand); an id that is not registered is ignored. The built-in providers stay."""
    with _lock:
        _load()
        if provider_id in _builtin_ids:
            raise InvalidParamException(f"the built-in provider {provider_id!r} cannot be unregistered")
        _specs.pop(provider_id, None)


def registered() -> Mapping[str, ProviderSpec]:
    """Every registered provider by id: the built-ins first, then the entry points' in name order."""
    with _lock:
        _load()
        return MappingProxyType(dict(_specs))


def spec_for(name: str | ProviderList) -> ProviderSpec:
    """The spec of the provider named ``name``: its id or one of its schemes, in any case."""
    specs = registered()
    wanted = name.value if isinstance(name, ProviderList) else name
    if isinstance(wanted, str):
        low = wanted.lower()
        for spec in specs.values():
            if low in spec.all_schemes:
                return spec
    choices = ", ".join(specs)
    raise InvalidParamException(f"unknown provider {name!r}; choose one of {choices}")


def schemes() -> dict[str, str]:
    """Every ``PROVIDER://`` scheme of the registered providers, and the provider id it names."""
    return {scheme: spec.id for spec in registered().values() for scheme in spec.all_schemes}


def parse_address(text: str) -> tuple[str, str, str] | None:
    """``PROVIDER://bucket/key`` as ``(provider id, bucket, key)``; ``None`` for anything without
    ``://`` (a local path). An unknown scheme raises :class:`InvalidParamException`."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return None
    known = schemes()
    if scheme.lower() not in known:
        raise InvalidParamException(f"unknown provider {scheme!r} in {text!r}; use one of {', '.join(known)}")
    # "local:///bkt/key" means what "local://bkt/key" does (as file:/// URLs have a third slash).
    bucket, _, key = rest.lstrip("/").partition("/")
    return known[scheme.lower()], bucket, key


def _add(spec: ProviderSpec) -> None:
    if not isinstance(spec, ProviderSpec):
        raise InvalidParamException(f"a provider registers a cloudstore.registry.ProviderSpec, not {spec!r}")
    if _specs.get(spec.id) is spec:
        return
    taken = {scheme: other.id for other in _specs.values() for scheme in other.all_schemes}
    clash = [scheme for scheme in spec.all_schemes if scheme in taken]
    if clash:
        raise InvalidParamException(
            f"provider {spec.id!r} cannot register {', '.join(clash)}: taken by {taken[clash[0]]!r}"
        )
    _specs[spec.id] = spec


def _load() -> None:
    """Read the built-ins and the entry points, once (the caller holds the lock)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for target in _BUILTIN_SPECS:
        module, _, attribute = target.partition(":")
        spec = getattr(importlib.import_module(module), attribute)
        _add(spec)
        _builtin_ids.add(spec.id)
    for point in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda p: p.name):
        if point.value in _BUILTIN_SPECS:
            continue  # the built-ins' own entry points: loaded above
        try:
            _add(point.load())
        except Exception as err:  # one broken plugin must not take every provider down with it
            log.warning("provider entry point %r (%s) not registered: %s", point.name, point.value, err)

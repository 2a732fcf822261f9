"""``CloudProviderFactory``: build a provider from its id and a config dict."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from importlib.machinery import all_suffixes
from pathlib import Path
from typing import Any

from cloudstore.config import ProviderList, ProviderSpec, resolve_config
from cloudstore.exceptions import InvalidParamException, NotSupportedException
from cloudstore.model import CloudProvider


def _spec(provider: ProviderList | str) -> ProviderSpec:
    from cloudstore.providers import PROVIDERS

    try:
        # Any case, as the CLI's schemes: "AWS", "Local".
        key = ProviderList(provider.lower() if isinstance(provider, str) else provider)
    except ValueError:
        choices = ", ".join(p.value for p in ProviderList)
        raise InvalidParamException(f"unknown provider {provider!r}; choose one of {choices}") from None
    return PROVIDERS[key]


def _module_available(dotted: str) -> bool:
    """Whether ``dotted`` could be imported, without importing anything.

    ``find_spec("azure.storage.blob")`` would import the parent packages ``azure`` and
    ``azure.storage``; only the top-level package is looked up here, and the rest of the
    path is searched for in its folders.
    """
    top, *rest = dotted.split(".")
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):  # a finder that refuses the name, or a module without a spec
        return False
    if spec is None:
        return False
    if not rest:
        return True
    *folders, last = rest
    for location in spec.submodule_search_locations or []:
        parent = Path(location, *folders)
        if (parent / last).is_dir() or any((parent / (last + suffix)).is_file() for suffix in all_suffixes()):
            return True
    return False


def _installed(spec: ProviderSpec) -> bool:
    return all(_module_available(module) for module in spec.sdk_modules)


def list_providers() -> list[ProviderList]:
    """The providers whose SDK is installed here (LOCAL always is)."""
    from cloudstore.providers import PROVIDERS

    return [pid for pid, spec in PROVIDERS.items() if _installed(spec)]


class CloudProviderFactory:
    """Creates providers: ``CloudProviderFactory().create_provider(ProviderList.AWS, {...})``."""

    def create_provider(self, name: ProviderList | str, config: Mapping[str, Any] | None = None) -> CloudProvider:
        """A provider for ``name`` configured by ``config``, then the environment, then the config file.

        Makes no network call. Raises :class:`NotSupportedException` naming the
        ``pip install "cloudstore[extra]"`` to run when the provider's SDK is missing.
        """
        spec = _spec(name)
        if not _installed(spec):
            raise NotSupportedException(
                f'the {spec.id.value} provider needs its SDK: pip install "cloudstore[{spec.extra}]"'
            )
        return CloudProvider(spec, resolve_config(spec, config))

    def list_providers(self) -> list[ProviderList]:
        """The providers whose SDK is installed here."""
        return list_providers()

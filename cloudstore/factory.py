"""``CloudProviderFactory``: build a provider from its id and a config dict."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from importlib.machinery import all_suffixes
from pathlib import Path
from typing import Any

from cloudstore.config import ProviderList, resolve_config
from cloudstore.exceptions import NotSupportedException
from cloudstore.model import CloudProvider, provider_id
from cloudstore.registry import ProviderSpec, registered, spec_for


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


def list_providers() -> list[str]:
    """The registered providers whose SDK is installed here (LOCAL and memory always are).

    Built-in cloud providers are given as :class:`ProviderList` members, others by their id.
    """
    return [provider_id(spec) for spec in registered().values() if _installed(spec)]


class CloudProviderFactory:
    """Creates providers: ``CloudProviderFactory().create_provider(ProviderList.AWS, {...})``."""

    def create_provider(self, name: ProviderList | str, config: Mapping[str, Any] | None = None) -> CloudProvider:
        """A provider for ``name`` configured by ``config``, then the environment, then the config file.

        ``name`` is a registered provider id or scheme (any case, e.g. ``"AWS"``, ``"s3"``) or a
        :class:`ProviderList` member; an unknown one raises :class:`InvalidParamException`.

        Makes no network call. Raises :class:`NotSupportedException` naming the
        ``pip install "cloudstore[extra]"`` to run when the provider's SDK is missing.
        """
        spec = spec_for(name)
        self.check_installed(spec)
        return CloudProvider(spec, resolve_config(spec, config))

    @staticmethod
    def check_installed(spec: ProviderSpec) -> None:
        """Raise :class:`NotSupportedException` naming what to install when the provider's SDK is missing."""
        if _installed(spec):
            return
        if spec.extra:
            raise NotSupportedException(f'the {spec.id} provider needs its SDK: pip install "cloudstore[{spec.extra}]"')
        raise NotSupportedException(f"the {spec.id} provider needs {', '.join(spec.sdk_modules)} installed")

    def list_providers(self) -> list[str]:
        """The providers whose SDK is installed here."""
        return list_providers()

"""``CloudProviderFactory``: build a provider from its id and a config dict."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from cloudstore.config import ProviderList, ProviderSpec, resolve_config
from cloudstore.exceptions import InvalidParamException, NotSupportedException
from cloudstore.model import CloudProvider


def _spec(provider: ProviderList | str) -> ProviderSpec:
    from cloudstore.providers import PROVIDERS

    try:
        key = ProviderList(provider)
    except ValueError:
        choices = ", ".join(p.value for p in ProviderList)
        raise InvalidParamException(f"unknown provider {provider!r}; choose one of {choices}") from None
    return PROVIDERS[key]


def _installed(spec: ProviderSpec) -> bool:
    try:
        return all(importlib.util.find_spec(module) is not None for module in spec.sdk_modules)
    except ModuleNotFoundError:
        return False


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

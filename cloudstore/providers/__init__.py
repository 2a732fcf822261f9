"""One folder per provider; each ``__init__`` declares a :class:`~cloudstore.config.ProviderSpec`
and imports no SDK (the backend module does, when a provider is created)."""

from __future__ import annotations

from cloudstore.config import ProviderList, ProviderSpec
from cloudstore.providers import aws, azure, gcp, local, openstack

PROVIDERS: dict[ProviderList, ProviderSpec] = {
    spec.id: spec for spec in (aws.SPEC, openstack.SPEC, azure.SPEC, gcp.SPEC, local.SPEC)
}

"""A directory on this machine: buckets are folders, objects are files."""

from cloudstore.config import ConfigKey, ProviderList, ProviderSpec

SPEC = ProviderSpec(
    id=ProviderList.LOCAL,
    backend="cloudstore.providers.local.backend:LocalBackend",
    keys={
        "local_root": ConfigKey(env="CLOUDSTORE_LOCAL_ROOT"),
        "local_url": ConfigKey(env="CLOUDSTORE_LOCAL_URL", url=True),
        "local_secret": ConfigKey(env="CLOUDSTORE_LOCAL_SECRET", secret=True),
    },
)

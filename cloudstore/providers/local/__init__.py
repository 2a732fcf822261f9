"""A directory on this machine: buckets are folders, objects are files."""

from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="local",
    backend="cloudstore.providers.local.backend:LocalBackend",
    description="A directory on this machine (signed URLs served by `cloudstore serve`)",
    keys={
        "local_root": ConfigKey(env="CLOUDSTORE_LOCAL_ROOT", help="Directory holding the buckets."),
        "local_url": ConfigKey(env="CLOUDSTORE_LOCAL_URL", url=True, help="Base URL of `cloudstore serve`."),
        "local_secret": ConfigKey(env="CLOUDSTORE_LOCAL_SECRET", secret=True, help="HMAC key of signed URLs."),
    },
)

"""dirstore: an example cloudstore provider keeping objects as files in a local folder.

Registered by the entry point in its ``pyproject.toml``; ``SPEC`` imports nothing but
cloudstore's registry, so listing providers never loads the backend.
"""

from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="dirstore",
    backend="dirstore.backend:DirBackend",
    keys={
        "dirstore_root": ConfigKey(env="DIRSTORE_ROOT", help="The folder holding one folder per bucket."),
    },
    schemes=("dir",),
    description="Objects as files in a local folder (cloudstore's example provider)",
)

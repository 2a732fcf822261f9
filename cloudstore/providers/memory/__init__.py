"""Objects in this process's memory: one store per ``memory_store`` name, gone with the process."""

from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="memory",
    backend="cloudstore.providers.memory.backend:MemoryBackend",
    description="Objects in this process's memory (tests, examples)",
    keys={
        "memory_store": ConfigKey(
            help="Name of the in-process store; providers with the same name share it (default 'default')"
        ),
    },
)

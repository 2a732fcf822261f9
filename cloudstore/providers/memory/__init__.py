"""Objects in this process's memory: a store per provider, gone when it is."""

from cloudstore.registry import ProviderSpec

SPEC = ProviderSpec(
    id="memory",
    backend="cloudstore.providers.memory.backend:MemoryBackend",
    description="Objects in this process's memory, one store per provider (tests, examples)",
)

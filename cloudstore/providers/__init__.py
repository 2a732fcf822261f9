"""The built-in providers: one package each, whose ``__init__`` declares its
:class:`~cloudstore.registry.ProviderSpec` and imports no SDK (the backend module does, when a
provider is first used). They are registered like any other provider (:mod:`cloudstore.registry`)."""

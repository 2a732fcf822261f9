"""The conformance suite's glue: its cases ship in :mod:`cloudstore.testing.conformance`.

``cloudstore_conformance_dir = ["tests/conformance"]`` (pyproject.toml) makes the plugin
(:mod:`cloudstore.testing.plugin`) collect the shipped cases in this folder, once per provider
under test. The providers, each on its started server with the quirks its launcher declares,
are handed to the plugin by ``cloudstore_targets`` in tests/conftest.py: the other per-provider
tests (fsspec, log redaction) run on the same ones. Provider-specific cases go to tests/providers.
"""

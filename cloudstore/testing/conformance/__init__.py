"""The conformance cases: every provider must pass them (run by :mod:`cloudstore.testing.plugin`)."""

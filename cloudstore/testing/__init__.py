"""cloudstore's conformance suite and test seam, for providers in and out of this package.

* The suite: :mod:`cloudstore.testing.conformance`, run by the pytest plugin
  :mod:`cloudstore.testing.plugin` against any registered provider::

      pytest -p cloudstore.testing --cloudstore-provider NAME --cloudstore-config FILE

  A :class:`Target` is a provider id, its config and its :class:`Quirks` (what its store does
  differently, each with the reason).
* The seam: :class:`SpyBackend` records the calls a provider makes and fails chosen ones;
  :func:`provider_with` makes a provider around it; :func:`backend_of` gives a provider's backend;
  :func:`call_through` runs a backend call as the provider would (retries, error translation);
  :func:`sent_requests` (:mod:`cloudstore.testing.wire`) records what the lean request paths send.

``import cloudstore`` does not import this package; importing it does not import pytest (only
the plugin does).
"""

from cloudstore.testing.spy import Call, Spied, SpyBackend, backend_of, call_through, provider_with, spy_on
from cloudstore.testing.target import (
    TEST_TRANSFER,
    Quirks,
    Target,
    fresh_bucket,
    path_segment_order,
    read_config_file,
    unique_name,
    utf8_order,
)
from cloudstore.testing.wire import SentRequest, observing, sent_requests

#: ``pytest -p cloudstore.testing`` loads the plugin through this.
pytest_plugins = ("cloudstore.testing.plugin",)

__all__ = [
    "TEST_TRANSFER",
    "Call",
    "Quirks",
    "SentRequest",
    "Spied",
    "SpyBackend",
    "Target",
    "backend_of",
    "call_through",
    "fresh_bucket",
    "observing",
    "path_segment_order",
    "provider_with",
    "read_config_file",
    "sent_requests",
    "spy_on",
    "unique_name",
    "utf8_order",
]

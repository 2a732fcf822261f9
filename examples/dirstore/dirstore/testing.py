"""What dirstore does differently from the services cloudstore's conformance suite expects:
nothing so far (``pytest -p cloudstore.testing --cloudstore-quirks dirstore.testing:QUIRKS``)."""

from cloudstore.testing import Quirks

QUIRKS = Quirks()

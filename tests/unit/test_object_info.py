"""cloudstore.backend.ObjectInfo: a frozen dataclass whose __init__ is written out (for speed)."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime

import pytest

from cloudstore.backend import ObjectInfo


def test_init_takes_exactly_the_fields_in_order_with_their_defaults() -> None:
    params = list(inspect.signature(ObjectInfo.__init__).parameters.values())[1:]
    fields = dataclasses.fields(ObjectInfo)
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields
    ]


def test_it_behaves_as_the_frozen_dataclass_it_is() -> None:
    when = datetime(2024, 1, 2, tzinfo=UTC)
    info = ObjectInfo("a", 3, when, etag="e", metadata={"k": "v"})
    assert (info.name, info.size, info.last_modified, info.etag, info.content_type) == ("a", 3, when, "e", None)
    assert info == ObjectInfo(name="a", size=3, last_modified=when, etag="e", metadata={"k": "v"})
    assert dataclasses.replace(info, size=4).size == 4 and info.size == 3
    assert "name='a'" in repr(info)
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.size = 5  # type: ignore[misc]

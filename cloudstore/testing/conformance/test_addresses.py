"""``cloudstore.open_bucket`` / ``open_object`` with every scheme of every provider, settings per bucket address."""

from __future__ import annotations

import pytest

import cloudstore
from cloudstore import Bucket
from cloudstore.registry import spec_for
from cloudstore.testing import Target


def _schemes(target: Target) -> tuple[str, ...]:
    return spec_for(target.provider).all_schemes


def test_every_scheme_opens_the_bucket(cloudstore_target: Target, bucket: Bucket) -> None:
    bucket.objects.create("folder/a.txt").upload(b"A")
    for scheme in _schemes(cloudstore_target):
        opened = cloudstore.open_bucket(f"{scheme}://{bucket.name}", dict(cloudstore_target.config))
        try:
            assert opened.name == bucket.name and opened.scope == ""
            assert [o.name for o in opened.objects] == ["folder/a.txt"]
        finally:
            opened.provider.close()


def test_folder_address_is_a_scoped_view(cloudstore_target: Target, bucket: Bucket) -> None:
    scheme = _schemes(cloudstore_target)[-1]
    folder = cloudstore.open_bucket(f"{scheme}://{bucket.name}/tenant-a/", dict(cloudstore_target.config))
    try:
        folder.objects.create("model.bin").upload(b"weights")
        assert [o.name for o in bucket.objects] == ["tenant-a/model.bin"]
        obj = cloudstore.open_object(f"{scheme}://{bucket.name}/tenant-a/model.bin", dict(cloudstore_target.config))
        assert obj.read() == b"weights" and obj.name == "tenant-a/model.bin"
        new = cloudstore.open_object(f"{scheme}://{bucket.name}/tenant-a/new.bin", dict(cloudstore_target.config))
        new.upload(b"new", if_none_match="*" if new.provider.features.if_none_match else None)
        assert bucket.objects.get("tenant-a/new.bin").read() == b"new"  # type: ignore[union-attr]
    finally:
        folder.provider.close()


def test_settings_per_bucket_address_in_the_dict(cloudstore_target: Target, bucket: Bucket) -> None:
    """Everything the provider needs given for this one address, with a prefix of its own."""
    scheme = _schemes(cloudstore_target)[0]
    config = {f"{scheme}://{bucket.name}": {**cloudstore_target.config, "prefix": "datasets"}}
    opened = cloudstore.open_bucket(f"{scheme}://{bucket.name}/d1", config)
    try:
        assert opened.scope == "datasets/d1/"
        opened.objects.create("README").upload(b"readme")
        assert [o.name for o in bucket.objects] == ["datasets/d1/README"]
    finally:
        opened.provider.close()


def test_unknown_keys_in_bucket_settings_refused(cloudstore_target: Target, bucket: Bucket) -> None:
    scheme = _schemes(cloudstore_target)[0]
    with pytest.raises(cloudstore.InvalidParamException, match="endpoint_typo"):
        cloudstore.open_bucket(f"{scheme}://{bucket.name}", {f"{scheme}://{bucket.name}": {"endpoint_typo": "x"}})

"""Buckets and objects by address (``s3://bucket/prefix``), each bucket address with settings of its own.

:func:`open_bucket` and :func:`open_object` take an address of any registered provider scheme
(``s3://``, ``gs://``, ``swift://``, ``az://``, ``local://``, ...; see
:func:`cloudstore.registry.schemes`) and build the provider from the settings of the most
specific bucket address that covers it, then the provider-wide ones. Settings of one bucket
address come from, in this order:

1. the ``config`` dict's entry keyed by the address: ``{"s3://data/team-a": {...}}``;
2. the environment: ``CLOUDSTORE_BUCKET_<ALIAS>=s3://data/team-a`` names an address, and
   ``CLOUDSTORE_BUCKET_<ALIAS>_<KEY>=value`` sets ``<key>`` (lowercased) for it;
3. the config file's section ``[s3://data/team-a]``.

Each of them may set any config key of the provider, and ``prefix``: a folder under which the
whole address lives (dtool's dataset prefix). Provider-wide settings (the ``config`` dict's plain
keys, the provider's environment variables, the file's ``[aws]`` section) come after all three.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cloudstore.backend import BucketInfo
from cloudstore.config import ini_sections, read_ini_section, resolve_config
from cloudstore.exceptions import InvalidParamException
from cloudstore.model import Bucket, BucketObject, CloudProvider
from cloudstore.registry import ProviderSpec, parse_address, spec_for

#: Environment variables naming a bucket address (``..._<ALIAS>``) or one of its keys (``..._<ALIAS>_<KEY>``).
ENV_PREFIX = "CLOUDSTORE_BUCKET_"
#: The key of a bucket address's settings that is no provider key: the folder it lives under.
PREFIX_KEY = "prefix"


def open_bucket(address: str, config: Mapping[str, Any] | None = None) -> Bucket:
    """The bucket at ``address`` (``PROVIDER://bucket`` or ``PROVIDER://bucket/folder``): with a
    folder, or a configured ``prefix``, a view scoped to it (:meth:`Bucket.scoped`).

    No request is made; close the provider (``bucket.provider.close()``) when done.
    """
    bucket, path = _open(address, config)
    return bucket.scoped(path) if path.strip("/") else bucket


def open_object(address: str, config: Mapping[str, Any] | None = None) -> BucketObject:
    """The object at ``address`` (``PROVIDER://bucket/key``), found with one HEAD request; a
    handle to upload to when it does not exist yet."""
    bucket, key = _open(address, config)
    if not key or key.endswith("/"):
        raise InvalidParamException(f"{address!r} names no object: give PROVIDER://bucket/key")
    found = bucket.objects.get(key)
    return found if found is not None else bucket.objects.create(key)


def _open(address: str, config: Mapping[str, Any] | None) -> tuple[Bucket, str]:
    """The bucket (a view of its configured prefix, if any) and the rest of the address."""
    if not isinstance(address, str):
        raise InvalidParamException(f"the address must be a str, not {type(address).__name__}")
    parsed = parse_address(address)
    if parsed is None or not parsed[1]:
        raise InvalidParamException(f"{address!r} is not a PROVIDER://bucket[/key] address")
    which, bucket_name, path = parsed
    spec = spec_for(which)
    given = dict(config or {})
    own = {name: given.pop(name) for name in [n for n in given if "://" in n]}
    sources = _bucket_sources(spec, bucket_name, path, own)
    prefix = next((str(source[PREFIX_KEY]) for source, _ in sources if source.get(PREFIX_KEY)), "")
    settings = [({k: v for k, v in source.items() if k != PREFIX_KEY}, typed) for source, typed in sources]
    from cloudstore.factory import CloudProviderFactory

    CloudProviderFactory.check_installed(spec)
    provider = CloudProvider(spec, resolve_config(spec, given, settings))
    bucket = Bucket(provider, BucketInfo(name=bucket_name))
    return (bucket.scoped(prefix) if prefix.strip("/") else bucket), path


def _bucket_sources(
    spec: ProviderSpec, bucket: str, path: str, given: Mapping[str, Any]
) -> list[tuple[Mapping[str, Any], bool]]:
    """The settings of the most specific address covering ``bucket/path`` in each place: the dict
    (typed values), the environment and the config file (text)."""
    from_dict = _most_specific(spec, bucket, path, {name: value for name, value in given.items()})
    environment: dict[str, dict[str, str]] = {}
    aliases = {name[len(ENV_PREFIX) :]: value for name, value in os.environ.items() if name.startswith(ENV_PREFIX)}
    for alias, address in aliases.items():
        if "_" in alias:
            continue
        environment[address] = {
            key[len(alias) + 1 :].lower(): value
            for key, value in aliases.items()
            if key.startswith(alias + "_") and key[len(alias) + 1 :]
        }
    from_env = _most_specific(spec, bucket, path, environment)
    sections = {name: name for name in ini_sections() if "://" in name}
    from_file = _most_specific(spec, bucket, path, sections)
    found: list[tuple[Mapping[str, Any], bool]] = []
    for where, chosen, typed in (("config dict", from_dict, True), ("environment", from_env, False)):
        if chosen is not None:
            found.append((_checked(spec, where, chosen[0], chosen[1]), typed))
    if from_file is not None:
        found.append((_checked(spec, "config file", from_file[0], read_ini_section(from_file[1])), False))
    return found


def _most_specific(spec: ProviderSpec, bucket: str, path: str, entries: Mapping[str, Any]) -> tuple[str, Any] | None:
    """The entry whose address covers ``bucket/path`` with the longest folder (``None``: none does)."""
    best: tuple[int, str, Any] | None = None
    for address, value in entries.items():
        parsed = parse_address(address)
        if parsed is None or spec_for(parsed[0]).id != spec.id or parsed[1] != bucket:
            continue
        folder = parsed[2].strip("/")
        if folder and path != folder and not path.startswith(folder + "/"):
            continue
        if best is None or len(folder) > best[0]:
            best = (len(folder), address, value)
    return None if best is None else (best[1], best[2])


def _checked(spec: ProviderSpec, where: str, address: str, values: Any) -> Mapping[str, Any]:
    """One address's settings, their keys checked (a typo never passes silently)."""
    if not isinstance(values, Mapping):
        raise InvalidParamException(f"the settings of {address!r} in the {where} must be a dict")
    unknown = sorted(set(values) - set(spec.all_keys()) - {PREFIX_KEY})
    if unknown:
        raise InvalidParamException(f"unknown key(s) for {address!r} in the {where}: {', '.join(unknown)}")
    return values

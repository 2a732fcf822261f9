"""Provider descriptions and configuration resolution.

A value is looked up in the dict given to ``create_provider`` first (a falsy
value still counts), then in the provider's standard environment variable, then
in ``~/.config/cloudstore/config.ini`` (section named after the provider; the
path can be changed with ``CLOUDSTORE_CONFIG``). Unknown keys in the dict raise
:class:`~cloudstore.exceptions.InvalidParamException` so a typo never passes
silently.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cloudstore.exceptions import InvalidParamException

if TYPE_CHECKING:
    from cloudstore.registry import ProviderSpec


class ProviderList(str, Enum):  # noqa: UP042 - StrEnum would change its str(), public behaviour
    """The built-in cloud providers (values are also accepted as plain strings; any registered
    provider id is, see :mod:`cloudstore.registry`)."""

    AWS = "aws"
    OPENSTACK = "openstack"
    AZURE = "azure"
    GCP = "gcp"
    LOCAL = "local"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: where else it may come from, and whether it is a secret."""

    env: str | None = None
    secret: bool = False
    #: ``bool`` values read from the environment or the ini file are parsed ("true", "0", ...).
    kind: type = str
    #: The value is an ``http(s)://host[:port][/path]`` URL, checked when the provider is created.
    url: bool = False
    #: Keys that are alternatives to each other (one way to log in): the first place that gives
    #: any of them (the dict, then the environment, then the file) gives all of them, so a
    #: password on the command line is never mixed with a token left in the environment.
    group: str | None = None
    #: One line saying what the key is, shown by ``cloudstore providers`` and in the docs.
    help: str = ""


#: Keys every provider accepts besides its own (objects, so only from the dict).
COMMON_KEYS: dict[str, ConfigKey] = {
    "transfer_config": ConfigKey(kind=object, help="A cloudstore.TransferConfig: part sizes and parallelism."),
    "retry_policy": ConfigKey(kind=object, help="A cloudstore.RetryPolicy: attempts, backoff and deadline."),
    # Applied to every provider's transport. The read timeout must stay well inside the retry
    # deadline, so that a stalled request is abandoned and tried again.
    "connect_timeout": ConfigKey(
        env="CLOUDSTORE_CONNECT_TIMEOUT", kind=float, help="Seconds to wait for a connection (default 10)."
    ),
    "read_timeout": ConfigKey(
        env="CLOUDSTORE_READ_TIMEOUT", kind=float, help="Seconds to wait for each read of an answer (default 60)."
    ),
    "credentials_provider": ConfigKey(
        kind=object,
        help="A callable returning cloudstore.credentials.TemporaryCredentials: refreshed before they expire.",
    ),
    "credentials_expiry": ConfigKey(
        env="CLOUDSTORE_CREDENTIALS_EXPIRY",
        help="When the configured temporary credentials expire (ISO 8601): no signed URL outlives them.",
    ),
    # It may be raised only where the service itself allows longer (Features.max_url_expiry).
    "max_url_expiry": ConfigKey(
        env="CLOUDSTORE_MAX_URL_EXPIRY", kind=int, help="Longest life of a signed URL, seconds (default 7 days)."
    ),
}

#: The default cap on a signed URL's life: S3's and GCS's own limit, kept on every provider (on
#: Swift, Azure and LOCAL a URL can only be revoked by replacing the key that signed it).
DEFAULT_MAX_URL_EXPIRY = 7 * 24 * 3600

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0


@dataclass(frozen=True)
class Timeouts:
    """How long a provider's transport waits to connect and for each read of an answer (seconds)."""

    connect: float = DEFAULT_CONNECT_TIMEOUT
    read: float = DEFAULT_READ_TIMEOUT

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Timeouts:
        """The timeouts a resolved config asks for.

        Unset, the read timeout is 60 s or half the retry policy's deadline if that is shorter,
        so that a stalled request is always abandoned in time to be tried again; a read timeout
        set above half the deadline is refused for the same reason.
        """
        values = {}
        for field_name, key in (("connect", "connect_timeout"), ("read", "read_timeout")):
            value = config.get(key)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 86_400:
                raise InvalidParamException(f"config key {key!r} must be a number of seconds above 0, not {value!r}")
            values[field_name] = float(value)
        deadline = getattr(config.get("retry_policy"), "deadline", None)
        if isinstance(deadline, (int, float)):
            if "read" not in values:
                values["read"] = min(DEFAULT_READ_TIMEOUT, deadline / 2)
            elif values["read"] > deadline / 2:
                raise InvalidParamException(
                    f"read_timeout ({values['read']:g} s) must be at most half the retry deadline "
                    f"({deadline:g} s), so that a stalled request can be tried again"
                )
        return cls(**values)


class Config(Mapping[str, Any]):
    """Resolved configuration of one provider; its repr hides secrets."""

    def __init__(self, spec: ProviderSpec, values: Mapping[str, Any]) -> None:
        self._spec = spec
        self._values = dict(values)

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        keys = self._spec.all_keys()
        shown = [
            f"{k}=***" if keys.get(k, ConfigKey()).secret and v is not None else f"{k}={v!r}"
            for k, v in self._values.items()
        ]
        return f"<Config {' '.join([self._spec.id, *shown])}>"

    __str__ = __repr__

    def secret_values(self) -> list[Any]:
        """The values of the secret keys that are set (to keep them out of logs)."""
        keys = self._spec.all_keys()
        return [v for k, v in self._values.items() if v is not None and keys.get(k, ConfigKey()).secret]


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def coerce_value(name: str, key: ConfigKey, raw: str) -> Any:
    """``raw`` text (from the environment, the config file or the command line) as ``key`` expects it."""
    if key.kind is bool:
        low = raw.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        # s3_verify may also name a CA bundle: keep the path of an existing file as it is.
        if not Path(raw).expanduser().is_file():
            raise InvalidParamException(
                f"config key {name!r} must be true or false (or the path of a CA bundle file), not {raw!r}"
            )
        return raw
    if key.kind in (int, float):
        try:
            return key.kind(raw)
        except ValueError:
            kind = "whole number" if key.kind is int else "number"
            raise InvalidParamException(f"config key {name!r} must be a {kind}") from None
    return raw


def config_file_path() -> Path:
    """Where the ini file is read from (``CLOUDSTORE_CONFIG`` overrides the default)."""
    override = os.environ.get("CLOUDSTORE_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path("~/.config/cloudstore/config.ini").expanduser()


def _read_ini() -> configparser.ConfigParser | None:
    """The config file parsed (``None`` when there is none)."""
    path = config_file_path()
    if not path.is_file():
        return None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(path, encoding="utf-8")
    except configparser.Error as err:
        # Line numbers only: the line itself may hold a secret (and so may the parser's message).
        errors = getattr(err, "errors", None)
        lines = [n for n, _ in errors] if errors else [getattr(err, "lineno", None)]
        where = ", ".join(str(n) for n in lines if n is not None) or "?"
        raise InvalidParamException(
            f"cannot parse config file {path}: line {where} is not 'key = value' under a [section] header"
        ) from None
    return parser


def read_ini_section(section: str) -> dict[str, str]:
    """The keys of one section of the config file (``{}`` when it or the file is missing)."""
    parser = _read_ini()
    return dict(parser[section]) if parser is not None and parser.has_section(section) else {}


def ini_sections() -> list[str]:
    """The section names of the config file, in file order."""
    parser = _read_ini()
    return [] if parser is None else parser.sections()


def _check_given(name: str, key: ConfigKey, value: Any) -> Any:
    """A value from the dict, of the type ``key`` takes (text for a bool or int key is parsed)."""
    if key.kind is object or (not value and not isinstance(value, str)):
        return value  # None, False or 0: the key switched off
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str):
        # Text for a boolean or numeric key ("false" from YAML or a CLI) means what it would in the file.
        return value if key.kind is str else coerce_value(name, key, value)
    if key.kind is bool and isinstance(value, bool):
        return value
    if key.kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if key.kind is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    kinds = {bool: "true or false", int: "a whole number", float: "a number"}
    kind = kinds.get(key.kind, "a str")
    raise InvalidParamException(f"config key {name!r} must be {kind}, not a {type(value).__name__}")


def _check_url(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidParamException(f"config key {name!r} must be an http:// or https:// URL, not {value!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise InvalidParamException(f"config key {name!r} has an invalid port: {value!r}") from None


def resolve_config(
    spec: ProviderSpec,
    given: Mapping[str, Any] | None,
    bucket_sources: Sequence[tuple[Mapping[str, Any], bool]] = (),
) -> Config:
    """Merge the dict, the environment and the config file for ``spec`` (in that order).

    ``bucket_sources`` (each a mapping and whether its values are typed, as from a dict, or
    text, as from the environment or a file) come before all three: the settings of one bucket
    address (:mod:`cloudstore.addresses`).
    """
    if given is not None and not isinstance(given, Mapping):
        raise InvalidParamException(f"the config must be a dict of keys to values, not a {type(given).__name__}")
    given = dict(given or {})
    keys = spec.all_keys()
    unknown = sorted(set(given) - set(keys))
    if unknown:
        raise InvalidParamException(
            f"unknown config key(s) for {spec.id}: {', '.join(unknown)}; known keys: {', '.join(sorted(keys))}"
        )
    ini = read_ini_section(spec.id)
    unknown_ini = sorted(set(ini) - set(keys))
    if unknown_ini:
        raise InvalidParamException(
            f"unknown key(s) in section [{spec.id}] of {config_file_path()}: {', '.join(unknown_ini)}"
        )
    typed = [source for source, is_typed in bucket_sources if is_typed]
    sources: list[Mapping[str, Any]] = [
        *(source for source, _ in bucket_sources),
        given,
        {name: os.environ[key.env] for name, key in keys.items() if key.env and key.env in os.environ},
        ini,
    ]
    # The one source each group of alternative keys is taken from: the first that names any of them.
    group_source = {}
    for source in reversed(sources):
        for name in source:
            group = keys[name].group
            if group is not None:
                group_source[group] = source
    values: dict[str, Any] = {}
    for name, key in keys.items():
        for source in sources:
            if name in source and (key.group is None or group_source[key.group] is source):
                raw = source[name]
                checked = source is given or any(source is t for t in typed)
                values[name] = _check_given(name, key, raw) if checked else coerce_value(name, key, raw)
                break
        if key.url:
            _check_url(name, values.get(name))
    return Config(spec, values)

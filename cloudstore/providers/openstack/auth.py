"""How a :class:`~cloudstore.providers.openstack.backend.SwiftBackend` logs in to Swift.

Four ways, chosen from the configuration (without any network call):

* ``os_storage_url`` + ``os_auth_token``: the session-token pair, used as it is
  (keystoneauth's ``admin_token`` plugin, as the CloudBridge docs show);
* ``os_auth_url`` ending in ``/v1.0`` (or ``/v1``) + ``os_username`` +
  ``os_password``: Swift's own v1 auth (tempauth, swauth), through
  :class:`TempAuthV1`, since keystoneauth has no plugin for it;
* any other ``os_auth_url`` + ``os_username`` + ``os_password``: Keystone
  (v3 or v2) through keystoneauth's ``password`` plugin;
* ``os_auth_url`` + ``os_auth_token``: a Keystone token, scoped to the project;
* ``credentials_provider``: a callable returning ``os_auth_token`` and ``os_storage_url``
  with their expiry, through :class:`SourceAuth` (renewed before expiry and on a 401).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import openstack
import openstack.connection
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import plugin as ks_plugin
from keystoneauth1 import session as ks_session

from cloudstore.config import Timeouts
from cloudstore.credentials import CredentialSource, TemporaryCredentials
from cloudstore.exceptions import InvalidParamException

DEFAULT_DOMAIN = "Default"


class TempAuthV1(ks_plugin.BaseAuthPlugin):  # type: ignore[misc]
    """keystoneauth plugin for Swift's v1 auth: ``GET <auth_url>`` with ``X-Auth-User``/``X-Auth-Key``.

    The answer's ``X-Auth-Token`` and ``X-Storage-Url`` are kept until the
    service refuses the token (401), when keystoneauth invalidates it and this
    plugin logs in again, once.
    """

    def __init__(self, auth_url: str, username: str, password: str, storage_url: str | None = None) -> None:
        super().__init__()
        self._auth_url = auth_url
        self._username = username
        self._password = password
        self._storage_url_override = storage_url
        self._token: str | None = None
        self._storage_url: str | None = None
        self._lock = threading.Lock()

    def get_token(self, session: ks_session.Session, **kwargs: Any) -> str:
        with self._lock:
            if self._token is None:
                # log=False: keystoneauth's request log would show the key.
                response = session.get(
                    self._auth_url,
                    headers={"X-Auth-User": self._username, "X-Auth-Key": self._password},
                    authenticated=False,
                    log=False,
                )
                token = response.headers.get("X-Auth-Token")
                storage_url = response.headers.get("X-Storage-Url")
                if not token or not storage_url:
                    raise ks_exc.AuthorizationFailure(
                        f"{self._auth_url} answered without X-Auth-Token and X-Storage-Url: is it a Swift v1 auth URL?"
                    )
                self._token, self._storage_url = token, storage_url
            return self._token

    def get_endpoint(self, session: ks_session.Session, **kwargs: Any) -> str | None:
        self.get_token(session)
        return self._storage_url_override or self._storage_url

    def invalidate(self) -> bool:
        with self._lock:
            had_token = self._token is not None
            self._token = None
            return had_token


class SourceAuth(ks_plugin.BaseAuthPlugin):  # type: ignore[misc]
    """keystoneauth plugin over a :class:`~cloudstore.credentials.CredentialSource`: the token and
    storage URL it holds now; a 401 renews them (keystoneauth then sends the request again)."""

    def __init__(self, source: CredentialSource) -> None:
        super().__init__()
        self._source = source
        self._used: TemporaryCredentials | None = None

    def get_token(self, session: ks_session.Session, **kwargs: Any) -> str:
        self._used = self._source.current()
        return str(self._used.values["os_auth_token"])

    def get_endpoint(self, session: ks_session.Session, **kwargs: Any) -> str | None:
        return str(self._source.current().values["os_storage_url"])

    def invalidate(self) -> bool:
        self._source.renew(self._used)
        return True


def is_swift_v1_auth_url(url: str) -> bool:
    """Whether ``url`` is Swift's v1 auth (``.../auth/v1.0``) rather than Keystone (``.../v3``)."""
    path = urlparse(url).path.rstrip("/")
    return path.endswith(("/v1.0", "/v1"))


def auth_mode(config: Mapping[str, Any]) -> str:
    """Which login ``config`` asks for: ``"token_pair"``, ``"v1"``, ``"keystone_password"`` or
    ``"keystone_token"``; :class:`InvalidParamException` when it names no complete one."""
    auth_url = config.get("os_auth_url")
    if config.get("credentials_provider") is not None:
        return "credentials_provider"
    if config.get("os_auth_token"):
        if config.get("os_storage_url"):
            return "token_pair"
        if auth_url and not is_swift_v1_auth_url(auth_url):
            return "keystone_token"
    elif auth_url and config.get("os_username") and config.get("os_password") is not None:
        return "v1" if is_swift_v1_auth_url(auth_url) else "keystone_password"
    keys = ("os_auth_url", "os_username", "os_password", "os_storage_url", "os_auth_token")
    given = [k for k in keys if k in config]
    raise InvalidParamException(
        "OpenStack needs os_auth_url + os_username + os_password (Keystone, or Swift v1 auth at .../auth/v1.0), "
        "or the session-token pair os_storage_url + os_auth_token (or os_auth_url + os_auth_token for Keystone); "
        f"given: {', '.join(given) or 'none of these'}"
    )


def connect(config: Mapping[str, Any], source: CredentialSource | None = None) -> openstack.connection.Connection:
    """An openstacksdk connection for ``config`` (its first request logs in).

    Every request of its session, the logins included, waits at most ``connect_timeout`` to
    connect and ``read_timeout`` for each read of the answer (:class:`~cloudstore.config.Timeouts`).
    """
    timeouts = Timeouts.from_config(config)
    with warnings.catch_warnings():
        # openstacksdk warns about its InfluxDB metrics support on every connect, used or not.
        warnings.filterwarnings("ignore", message="Support for InfluxDB")
        connection = _connect(config, source)
    # keystoneauth hands its session's timeout to requests as it is: a (connect, read) pair works
    # (its constructor's float() would not take one).
    connection.session.timeout = (timeouts.connect, timeouts.read)  # type: ignore[assignment]
    return connection


def _connect(config: Mapping[str, Any], source: CredentialSource | None) -> openstack.connection.Connection:
    mode = auth_mode(config)
    if mode == "credentials_provider" and source is not None:
        session = ks_session.Session(auth=SourceAuth(source))
        return openstack.connection.Connection(session=session, region_name=config.get("os_region_name") or None)
    storage_url = config.get("os_storage_url") or None
    token = config.get("os_auth_token")
    auth_url = config.get("os_auth_url")
    region = config.get("os_region_name") or None
    if mode == "token_pair":
        return openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": storage_url, "token": token},
            load_yaml_config=False,
            load_envvars=False,
        )
    if mode == "v1":
        plugin = TempAuthV1(config["os_auth_url"], config["os_username"], config["os_password"], storage_url)
        session = ks_session.Session(auth=plugin)
        return openstack.connection.Connection(session=session, region_name=region)
    project = {
        "project_name": config.get("os_project_name"),
        "project_domain_name": config.get("os_project_domain_name") or DEFAULT_DOMAIN,
    }
    if mode == "keystone_token":
        auth: dict[str, Any] = {"auth_url": auth_url, "token": token, **project}
        auth_type = "token"
    else:
        auth = {
            "auth_url": auth_url,
            "username": config["os_username"],
            "password": config["os_password"],
            "user_domain_name": config.get("os_user_domain_name") or DEFAULT_DOMAIN,
            **project,
        }
        auth_type = "password"
    extra: dict[str, Any] = {"object_store_endpoint_override": storage_url} if storage_url else {}
    return openstack.connect(
        auth_type=auth_type,
        auth={k: v for k, v in auth.items() if v is not None},
        region_name=region,
        load_yaml_config=False,
        load_envvars=False,
        **extra,
    )

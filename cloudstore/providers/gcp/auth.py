# mypy: disallow-untyped-calls=False
# (google-auth and google-api-core ship type hints for only part of their API)
"""How the gcp provider authenticates: the configured credential mode, resolved without network calls.

Modes, in order of precedence:

0. ``credentials_provider``: a callable returning ``gcp_access_token`` and its expiry, renewed
   before it expires and when GCS answers 401 (:class:`SourceCredentials`).
1. ``gcp_access_token``: an OAuth 2.0 bearer token used as it is (the session-token style).
2. ``gcp_service_creds_dict``: a service-account key (or any google-auth credentials file
   content) as a dict or a JSON string.
3. ``gcp_service_creds_file`` (or ``GOOGLE_APPLICATION_CREDENTIALS``): the same, in a file.
4. Nothing, with ``gcp_endpoint_url`` set: anonymous credentials (an emulator).
5. Nothing at all: Application Default Credentials, looked up only on first use because that
   lookup may ask the Compute Engine metadata server.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import google.auth
import google.auth.credentials
import google.auth.exceptions
import google.oauth2.credentials
import google.oauth2.service_account

from cloudstore.credentials import CredentialSource, TemporaryCredentials
from cloudstore.exceptions import AuthenticationException, InvalidParamException

#: Full control: the provider creates and deletes buckets as well as objects.
SCOPES = ("https://www.googleapis.com/auth/devstorage.full_control",)

#: Project placeholder for anonymous emulator use; emulators accept any project.
EMULATOR_PROJECT = "cloudstore-emulator"


@dataclass(frozen=True)
class ResolvedAuth:
    """Credentials (``None``: Application Default Credentials, resolved on first use) and project."""

    mode: str
    credentials: google.auth.credentials.Credentials | None
    project: str | None


def normalize_endpoint(value: Any) -> str | None:
    """``gcp_endpoint_url`` as a base URL without trailing slash; ``host:port`` gets ``http://``
    (the form ``STORAGE_EMULATOR_HOST`` often has)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise InvalidParamException("gcp_endpoint_url must be a URL string")
    url = value.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidParamException(f"gcp_endpoint_url {value!r} is not an http(s) URL")
    return url


class SourceCredentials(google.auth.credentials.Credentials):  # type: ignore[misc]
    """Bearer tokens from a :class:`~cloudstore.credentials.CredentialSource`: the current one on
    every request; a refresh (google-auth's answer to a 401) renews it."""

    def __init__(self, source: CredentialSource) -> None:
        super().__init__()
        self._source = source
        self._used: TemporaryCredentials | None = None

    def refresh(self, request: Any) -> None:
        self._used = self._source.renew(self._used)
        self.token = self._used.values["gcp_access_token"]

    @property
    def expired(self) -> bool:
        return False  # the source renews ahead of expiry

    @property
    def valid(self) -> bool:
        return True

    def before_request(self, request: Any, method: str, url: str, headers: dict[str, str]) -> None:
        self._used = self._source.current()
        self.token = self._used.values["gcp_access_token"]
        self.apply(headers)


def resolve(config: Mapping[str, Any], endpoint: str | None, source: CredentialSource | None = None) -> ResolvedAuth:
    """Build the credentials the configuration asks for (reads files, never the network)."""
    project = config.get("gcp_project_name") or None
    if source is not None:
        return ResolvedAuth("credentials-provider", SourceCredentials(source), project or EMULATOR_PROJECT)
    token = config.get("gcp_access_token")
    info = config.get("gcp_service_creds_dict")
    path = config.get("gcp_service_creds_file")
    if token:
        if not isinstance(token, str):
            raise InvalidParamException("gcp_access_token must be a string")
        return ResolvedAuth("access-token", google.oauth2.credentials.Credentials(token), project)
    if info:
        credentials, found_project = _from_info(info)
        return ResolvedAuth("service-account-dict", _for_endpoint(credentials, endpoint), project or found_project)
    if path:
        credentials, found_project = _from_file(path)
        return ResolvedAuth("service-account-file", _for_endpoint(credentials, endpoint), project or found_project)
    if endpoint is not None:
        return ResolvedAuth("anonymous", google.auth.credentials.AnonymousCredentials(), project or EMULATOR_PROJECT)
    return ResolvedAuth("application-default", None, project)


def _for_endpoint(
    credentials: google.auth.credentials.Credentials, endpoint: str | None
) -> google.auth.credentials.Credentials:
    """With an endpoint override, a service account authenticates with a self-signed JWT.

    That needs no token exchange with oauth2.googleapis.com, so an emulator (or a private
    endpoint) works without reaching Google; GCS accepts such tokens too.
    """
    if endpoint is not None and isinstance(credentials, google.oauth2.service_account.Credentials):
        self_signed: google.auth.credentials.Credentials = credentials.with_always_use_jwt_access(True)
        return self_signed
    return credentials


def application_default() -> tuple[google.auth.credentials.Credentials, str | None]:
    """Application Default Credentials (may query the metadata server)."""
    try:
        credentials, project = google.auth.default(scopes=SCOPES)
    except google.auth.exceptions.DefaultCredentialsError as err:
        raise AuthenticationException(
            "no GCP credentials configured and none found by Application Default Credentials; set "
            "gcp_service_creds_file, gcp_service_creds_dict or gcp_access_token, or run "
            "'gcloud auth application-default login'"
        ) from err
    return credentials, project


def _from_info(info: Any) -> tuple[google.auth.credentials.Credentials, str | None]:
    if isinstance(info, (str, bytes)):
        try:
            info = json.loads(info)
        except ValueError:
            raise InvalidParamException("gcp_service_creds_dict is a string but not valid JSON") from None
    if not isinstance(info, Mapping):
        raise InvalidParamException("gcp_service_creds_dict must be a dict (the parsed service-account key file)")
    return _load(dict(info), "gcp_service_creds_dict")


def _from_file(path: Any) -> tuple[google.auth.credentials.Credentials, str | None]:
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidParamException("gcp_service_creds_file must be a path")
    full = os.path.expanduser(os.fspath(path))
    what = f"gcp_service_creds_file {full!r}"
    try:
        with open(full, encoding="utf-8") as handle:
            info = json.load(handle)
    except OSError as err:
        raise InvalidParamException(f"{what} cannot be read: {err.strerror}") from err
    except ValueError:
        raise InvalidParamException(f"{what} is not a JSON credentials file") from None
    if not isinstance(info, dict):
        raise InvalidParamException(f"{what} is not a JSON credentials file")
    return _load(info, what)


def _load(info: dict[str, Any], what: str) -> tuple[google.auth.credentials.Credentials, str | None]:
    kind = info.get("type")
    try:
        if kind == "service_account":
            account = google.oauth2.service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            return account, info.get("project_id")
        if kind == "authorized_user":
            user = google.oauth2.credentials.Credentials.from_authorized_user_info(info, scopes=SCOPES)
            return user, info.get("quota_project_id")
        # Other credential files (external_account, impersonated_service_account...) load the way
        # Application Default Credentials load GOOGLE_APPLICATION_CREDENTIALS.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            credentials, project = google.auth.load_credentials_from_dict(info, scopes=SCOPES)
        return credentials, project
    except (google.auth.exceptions.GoogleAuthError, ValueError, TypeError, KeyError) as err:
        # The reason names missing fields or the key format, never key material.
        raise InvalidParamException(f"{what} is not usable credentials: {_reason(err)}") from err


def _reason(err: BaseException) -> str:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    return text[:200]

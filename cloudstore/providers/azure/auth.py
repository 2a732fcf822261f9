"""How the azure provider authenticates and makes its client: no network call until the first request.

Credentials, in order of precedence:

0. ``credentials_provider``: a callable returning ``azure_access_token`` (an OAuth 2.0 bearer
   token for ``https://storage.azure.com``) and its expiry, renewed before it expires and when
   Azure answers 401 (:class:`SourceTokenCredential`).
1. ``azure_connection_string`` (its account key or SAS; ``azure_blob_endpoint`` overrides its endpoint).
2. ``azure_credential``: an azure-identity ``TokenCredential``; the SDK asks it for a new token
   shortly before the current one expires.
3. ``azure_account_key`` (a Shared Key), with ``azure_storage_account``.
4. ``azure_sas_token``.

Bearer tokens travel over HTTPS only; ``azure_ca_bundle`` names the CA that signed the
endpoint's certificate when it is not a public one (verification is never turned off).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.core.credentials import AccessToken
from azure.core.exceptions import ServiceResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobServiceClient
from urllib3.util.retry import Retry

from cloudstore._http import pool_size
from cloudstore.config import Timeouts
from cloudstore.credentials import CredentialSource
from cloudstore.exceptions import CloudStoreException, InvalidParamException
from cloudstore.providers.azure.errors import ErrorMapper

#: The key a ``credentials_provider`` returns for Azure.
CREDENTIAL_KEYS = frozenset({"azure_access_token"})


@dataclass(frozen=True)
class AzureClient:
    """The service client and what signing URLs needs from its credential."""

    client: BlobServiceClient
    #: Which credential it uses (shown in the backend's repr).
    mode: str
    account_name: str
    #: Signs service SAS URLs.
    account_key: str | None = None
    #: Gets user delegation keys, which sign user-delegation SAS URLs.
    token_credential: Any = None


class SourceTokenCredential:
    """A ``TokenCredential`` over a :class:`~cloudstore.credentials.CredentialSource`.

    Each token is reported as expiring now, so the SDK's bearer-token policy asks for one before
    every request; the source answers from its cache and fetches a new one shortly before the
    current one expires, or after Azure refused it (the shared layer renews the source on an
    :class:`~cloudstore.exceptions.AuthenticationException` and tries once more).
    """

    def __init__(self, source: CredentialSource) -> None:
        self._source = source

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token = self._source.current().values["azure_access_token"]
        if not isinstance(token, str) or not token:
            raise InvalidParamException("credentials_provider must return azure_access_token as a non-empty string")
        return AccessToken(token, int(time.time()))

    def __repr__(self) -> str:
        return "<SourceTokenCredential>"


class _WholeBodyTransport(RequestsTransport):  # type: ignore[misc]  # azure-core's transport is untyped
    """A requests transport that reads a streamed answer's body before handing it over.

    The SDK's blob downloader sends a ranged Get Blob again (up to three times, one second apart)
    when its body breaks off or stalls, stacking its retries on cloudstore's. Read here, a broken
    body fails its own request instead (``ServiceResponseError``), which cloudstore retries. The
    downloader buffers each range whole anyway, so nothing more is held in memory.
    """

    def send(self, request: Any, **kwargs: Any) -> Any:
        response = super().send(request, **kwargs)
        if kwargs.get("stream"):
            internal = response.internal_response
            try:
                internal.content  # noqa: B018 - requests caches the body it reads
            except requests.RequestException as err:
                internal.close()
                raise ServiceResponseError(f"the answer's body broke off: {err}", error=err) from err
        return response


def make_transport(config: Mapping[str, Any]) -> RequestsTransport:
    """A requests transport with enough pooled connections for the engine's parallel parts, no
    urllib3 retries, cloudstore's timeouts (azure-core's own wait 300 s for a connection and each
    read) and the configured CA bundle."""
    timeouts = Timeouts.from_config(config)
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(
        pool_connections=4,
        pool_maxsize=pool_size(config),
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return _WholeBodyTransport(
        session=session,
        session_owner=True,
        connection_timeout=timeouts.connect,
        read_timeout=timeouts.read,
        connection_verify=_ca_bundle(config.get("azure_ca_bundle")),
    )


def _ca_bundle(value: Any) -> str | bool:
    """``azure_ca_bundle`` as requests' ``verify``: the bundle's path, or ``True`` (the system's CAs)."""
    if value is None or value == "":
        return True
    path = Path(str(value)).expanduser()
    if not path.is_file():
        raise InvalidParamException(f"azure_ca_bundle {str(value)!r} is not a file (a PEM bundle of CA certificates)")
    return str(path)


def make_client(
    config: Mapping[str, Any], options: dict[str, Any], errors: ErrorMapper, source: CredentialSource | None
) -> AzureClient:
    """The service client for the configured credential (see the module's list). No network call."""
    try:
        return _make_client(config, options, errors, source)
    except ValueError as err:
        if isinstance(err, CloudStoreException):
            raise
        raise InvalidParamException(f"invalid Azure configuration: {errors.redact(str(err))}") from None


def _make_client(
    config: Mapping[str, Any], options: dict[str, Any], errors: ErrorMapper, source: CredentialSource | None
) -> AzureClient:
    connection_string = config.get("azure_connection_string")
    endpoint = config.get("azure_blob_endpoint")
    account = config.get("azure_storage_account")
    if source is not None:
        if config.get("azure_credential") is not None:
            raise InvalidParamException("give azure_credential or credentials_provider, not both")
        credential = SourceTokenCredential(source)
        client = BlobServiceClient(_account_url(endpoint, account), credential=credential, **options)
        return AzureClient(client, "credentials-provider", _account_name(client, account), token_credential=credential)
    if connection_string:
        client = BlobServiceClient.from_connection_string(str(connection_string), **options)
        key = getattr(client.credential, "account_key", None)
        errors.add_secret(key)
        if endpoint:  # the connection string's credential at this endpoint instead of its own
            client = BlobServiceClient(str(endpoint).rstrip("/"), credential=client.credential, **options)
        return AzureClient(client, "connection-string", _account_name(client, account), account_key=key)
    account_url = _account_url(endpoint, account)
    if config.get("azure_credential") is not None:
        token_credential = config["azure_credential"]
        if not hasattr(token_credential, "get_token"):
            raise InvalidParamException(
                "azure_credential must be an azure-identity TokenCredential (an object with get_token)"
            )
        client = BlobServiceClient(account_url, credential=token_credential, **options)
        return AzureClient(
            client, "token-credential", _account_name(client, account), token_credential=token_credential
        )
    if config.get("azure_account_key"):
        if not account:
            raise InvalidParamException("azure_account_key needs azure_storage_account")
        key = str(config["azure_account_key"])
        shared_key = {"account_name": str(account), "account_key": key}
        client = BlobServiceClient(account_url, credential=shared_key, **options)
        return AzureClient(client, "account-key", str(account), account_key=key)
    if config.get("azure_sas_token"):
        client = BlobServiceClient(account_url, credential=str(config["azure_sas_token"]).lstrip("?"), **options)
        return AzureClient(client, "sas-token", _account_name(client, account))
    raise InvalidParamException(
        "azure_storage_account needs one of azure_account_key, azure_sas_token, azure_credential "
        "or credentials_provider"
    )


def _account_url(endpoint: Any, account: Any) -> str:
    if not account and not endpoint:
        raise InvalidParamException(
            "Azure needs azure_connection_string, or azure_storage_account with one of "
            "azure_account_key, azure_sas_token, azure_credential or credentials_provider"
        )
    return str(endpoint or f"https://{account}.blob.core.windows.net").rstrip("/")


def _account_name(client: BlobServiceClient, configured: Any) -> str:
    # An endpoint that is neither *.blob.core.* nor 127.0.0.1/localhost does not reveal the account.
    return str(configured or getattr(client.credential, "account_name", None) or client.account_name or "")

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

import base64
import hashlib
import hmac
import os
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.core.credentials import AccessToken
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
    return RequestsTransport(
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


# --- authorising the lean path's requests (:mod:`.rest`) ----------------------------------------

#: The scope of a bearer token for Blob Storage (what the SDK asks a TokenCredential for).
STORAGE_SCOPE = "https://storage.azure.com/.default"
#: A token closer than this to its expiry is renewed before a request (the SDK's own margin).
TOKEN_REFRESH_MARGIN = 300.0

#: The standard headers Shared Key signs, in order (their values, or empty lines).
_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "range",
)


def _weights(table: dict[str, int]) -> dict[int, str | None]:
    """A ``str.translate`` table: each ASCII character to its weight (as one character), or
    deleted where ``table`` gives it none."""
    return {code: (chr(table[chr(code)]) if chr(code) in table else None) for code in range(128)}


# Azure sorts the x-ms- headers it signs by a culture-aware collation (the SDK's ``compare``):
# first by the characters' primary weights, ignoring '-' and "'" (ASCII order otherwise, letters
# folded, punctuation before digits before letters); a tie is then broken by where the hyphens
# and apostrophes stand. Header names are ASCII tokens, so two translate tables make its sort key.
_PRIMARY = _weights(
    {
        **{c: 0x700 + i for i, c in enumerate("!#$%&*")},
        "+": 0x803,
        ".": 0x733,
        **{c: 0x740 + i for i, c in enumerate("^_`")},
        "|": 0x74C,
        "~": 0x750,
        **{c: 0xD03 + i for i, c in enumerate("0123456789")},
        **{c: 0xE02 + i for i, c in enumerate("abcdefghijklmnopqrstuvwxyz")},
        **{c: 0xE02 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ")},
    }
)
#: The tie-break: position by position, another character ("0") < the end of the name ("1") <
#: an apostrophe ("2") < a hyphen ("3").
_SECONDARY = {code: "0" for code in range(128)} | {ord("'"): "2", ord("-"): "3"}


def header_order(name: str) -> tuple[str, str]:
    """The sort key of an ``x-ms-`` header name in Shared Key's canonical headers."""
    return name.translate(_PRIMARY), name.translate(_SECONDARY) + "1"


def shared_key_signature(
    account: str,
    key: bytes,
    method: str,
    path: str,
    query: list[tuple[str, str]],
    headers: Mapping[str, str],
) -> str:
    """The ``Authorization`` value of a Shared Key request (Blob service, version 2015-02-21 on).

    ``path`` is the URL's path as sent (percent-encoded), ``query`` its parameters as sent
    (encoded values), ``headers`` every header sent, ``Content-Length`` included for a body.
    ``key`` is the account key, decoded from base64.
    """
    lowered = {name.lower(): value for name, value in headers.items() if value}
    if lowered.get("content-length") == "0":
        del lowered["content-length"]
    standard = "\n".join(lowered.get(name, "") for name in _SIGNED_HEADERS)
    # Signed even when empty (lowered dropped those): the SDK does the same.
    x_ms = sorted((name.lower() for name in headers if name.lower().startswith("x-ms-")), key=header_order)
    canonical_headers = "".join(f"{name}:{_header(headers, name)}\n" for name in x_ms)
    resource = f"/{account}{path}" + "".join(
        f"\n{name.lower()}:{urllib.parse.unquote(value)}" for name, value in sorted(query)
    )
    string_to_sign = f"{method}\n{standard}\n{canonical_headers}{resource}"
    digest = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode('ascii')}"


def _header(headers: Mapping[str, str], lowered_name: str) -> str:
    value = headers.get(lowered_name)
    if value is None:  # sent with capitals: look it up the slow way
        value = next(v for k, v in headers.items() if k.lower() == lowered_name)
    return value


class RequestAuth:
    """How one backend authorises its lean requests: no credential (anonymous access) here;
    :meth:`authorize` adds what the subclass's credential needs."""

    def authorize(self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> str:
        """Add the authorisation to ``headers``; the query string to append ("" or a SAS)."""
        return ""

    def refused(self) -> bool:
        """The service refused the credential: whether a new one may be worth a second try."""
        return False


class SharedKeyAuth(RequestAuth):
    """Every request signed with the account key."""

    def __init__(self, account: str, account_key: str) -> None:
        self._account = account
        self._key = base64.b64decode(account_key)

    def authorize(self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> str:
        headers["Authorization"] = shared_key_signature(self._account, self._key, method, path, query, headers)
        return ""

    def __repr__(self) -> str:
        return f"<SharedKeyAuth account={self._account}>"


class SasAuth(RequestAuth):
    """A SAS token appended to every request's query."""

    def __init__(self, token: str) -> None:
        self._token = token

    def authorize(self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> str:
        return self._token

    def __repr__(self) -> str:
        return "<SasAuth>"


class BearerAuth(RequestAuth):
    """An OAuth 2.0 token from a ``TokenCredential``, kept until it is close to expiry (as the
    SDK's bearer-token policy keeps it) or refused (the client refuses to be made for an http
    endpoint: bearer tokens travel over https only).

    A token refused while it was kept is dropped and the request tried once more with a new one.
    A ``credentials_provider``'s tokens (:class:`SourceTokenCredential`) are never kept here: the
    source caches them, and the shared layer renews it when a request is refused.
    """

    def __init__(self, credential: Any) -> None:
        self._credential = credential
        self._token: AccessToken | None = None
        self._lock = threading.Lock()

    def authorize(self, method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]) -> str:
        token = self._token
        if token is None or token.expires_on - time.time() < TOKEN_REFRESH_MARGIN:
            with self._lock:
                token = self._token
                if token is None or token.expires_on - time.time() < TOKEN_REFRESH_MARGIN:
                    token = self._credential.get_token(STORAGE_SCOPE)
                    self._token = token
        headers["Authorization"] = f"Bearer {token.token}"
        return ""

    def refused(self) -> bool:
        with self._lock:
            kept, self._token = self._token, None
        return kept is not None and kept.expires_on - time.time() >= TOKEN_REFRESH_MARGIN

    def __repr__(self) -> str:
        return "<BearerAuth>"


def ca_bundle(config: Mapping[str, Any]) -> str | bool:
    """What the lean path verifies the endpoint's certificate with, as the SDK's requests
    transport does: ``azure_ca_bundle``, else a bundle named by ``REQUESTS_CA_BUNDLE`` or
    ``CURL_CA_BUNDLE`` (where that path exists), else the system's CAs (``True``)."""
    verify = _ca_bundle(config.get("azure_ca_bundle"))
    if verify is True:
        named = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        return named if named and os.path.exists(named) else True
    return verify


def request_auth(azure: AzureClient) -> RequestAuth:
    """How the lean path authorises requests with the credential ``azure``'s client was made with."""
    if azure.token_credential is not None:
        return BearerAuth(azure.token_credential)
    if azure.account_key:
        # The account the SDK signs for (a connection string's, which may differ from the config's).
        account = getattr(azure.client.credential, "account_name", None) or azure.account_name
        return SharedKeyAuth(str(account), azure.account_key)
    sas = urllib.parse.urlsplit(azure.client.primary_endpoint).query
    return SasAuth(sas) if sas else RequestAuth()

"""Credentials of the AWS provider, and the boto3 session and client made from them.

boto3 keeps the credentials (its chain, STS and session tokens, their refresh, and a
``credentials_provider`` of the config inserted first in that chain): the control plane's client
signs with them, and the lean path (:mod:`cloudstore.providers.aws.rest`) signs with the same
credentials object, frozen once per request, so a refresh reaches both. The lean path's
:class:`SigV4Signer` sends what botocore's ``S3SigV4Auth`` would, at a fraction of its CPU.
"""

from __future__ import annotations

import hmac
import time
from dataclasses import dataclass
from hashlib import sha256
from typing import TYPE_CHECKING, Any, Literal

import boto3
from botocore.auth import EMPTY_SHA256_HASH, SIGNED_HEADERS_BLACKLIST, UNSIGNED_PAYLOAD
from botocore.config import Config as BotoConfig
from botocore.credentials import CredentialProvider, Credentials, ReadOnlyCredentials
from botocore.exceptions import NoCredentialsError

from cloudstore import exceptions as exc
from cloudstore.config import Config, Timeouts
from cloudstore.credentials import CredentialSource

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

ChecksumMode = Literal["when_required", "when_supported"]

#: The config keys a credentials_provider may return for S3.
CREDENTIAL_KEYS = frozenset({"aws_access_key", "aws_secret_key", "aws_session_token"})


@dataclass(frozen=True, repr=False)
class StaticKeys:
    """The keys given in the config (each ``None`` when left to boto3's chain)."""

    access_key: str | None
    secret_key: str | None
    session_token: str | None

    def __repr__(self) -> str:
        return "StaticKeys(...)"  # never the secrets


def static_keys(config: Config) -> tuple[StaticKeys, CredentialSource | None]:
    """The config's keys, checked, and the ``credentials_provider``'s source if one is set."""
    keys = StaticKeys(
        config.get("aws_access_key") or None,
        config.get("aws_secret_key") or None,
        config.get("aws_session_token") or None,
    )
    if bool(keys.access_key) != bool(keys.secret_key):
        raise exc.InvalidParamException("aws_access_key and aws_secret_key must be given together")
    if keys.session_token and not keys.access_key:
        raise exc.InvalidParamException("aws_session_token needs aws_access_key and aws_secret_key")
    provider = config.get("credentials_provider")
    if provider is None:
        return keys, None
    if keys.access_key:
        raise exc.InvalidParamException("give aws_access_key/aws_secret_key or credentials_provider, not both")
    return keys, CredentialSource(provider, CREDENTIAL_KEYS)


def as_verify(value: Any) -> bool | str | None:
    """``s3_verify``: a bool, a CA bundle path, or a "true"/"false" string."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        return value
    raise exc.InvalidParamException("s3_verify must be a bool or the path of a CA bundle")


class _SourceCredentials(Credentials):
    """botocore credentials read from a :class:`CredentialSource` each time a request is signed."""

    def __init__(self, source: CredentialSource) -> None:
        self._source = source
        self.method = "cloudstore-credentials-provider"

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        values = self._source.current().values
        return ReadOnlyCredentials(values["aws_access_key"], values["aws_secret_key"], values.get("aws_session_token"))

    # Read by parts of botocore that do not freeze the credentials first.
    @property  # type: ignore[override]
    def access_key(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().access_key

    @property  # type: ignore[override]
    def secret_key(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().secret_key

    @property  # type: ignore[override]
    def token(self) -> str | None:  # type: ignore[override]
        return self.get_frozen_credentials().token


class _SourceProvider(CredentialProvider):  # type: ignore[misc]
    METHOD = "cloudstore-credentials-provider"
    CANONICAL_NAME = "cloudstore"

    def __init__(self, source: CredentialSource) -> None:
        super().__init__()
        self._source = source

    def load(self) -> Credentials:
        return _SourceCredentials(self._source)


def make_session(keys: StaticKeys, region: str, source: CredentialSource | None) -> boto3.session.Session:
    """A boto3 session with the config's keys, or boto3's chain with ``source`` first in it."""
    session = boto3.session.Session(
        aws_access_key_id=keys.access_key,
        aws_secret_access_key=keys.secret_key,
        aws_session_token=keys.session_token,
        region_name=region,
    )
    if source is not None:
        # First in botocore's chain: every request (and every presigned URL) is signed with
        # what the source holds now, renewed before it expires.
        resolver = session._session.get_component("credential_provider")
        resolver.insert_before("env", _SourceProvider(source))
    return session


@dataclass(frozen=True)
class ClientSettings:
    """How the boto3 client is set up (from the provider's config)."""

    endpoint_url: str | None
    addressing_style: str
    checksums: ChecksumMode
    verify: bool | str | None
    pool_size: int
    timeouts: Timeouts

    @property
    def payload_signing(self) -> bool | None:
        """``False`` over plain http: botocore would otherwise SHA-256 every body for the signature,
        a full extra pass over the data that TLS-less test and LAN servers gain nothing from."""
        if self.endpoint_url and self.endpoint_url.lower().startswith("http://"):
            return False
        return None


def make_client(session: boto3.session.Session, settings: ClientSettings) -> S3Client:
    """The control plane's S3 client: no retries of its own (the shared layer retries)."""
    s3_options: dict[str, Any] = {"addressing_style": settings.addressing_style}
    if settings.payload_signing is not None:
        s3_options["payload_signing_enabled"] = settings.payload_signing
    boto_config = BotoConfig(
        signature_version="s3v4",
        s3=s3_options,  # type: ignore[arg-type]
        # (botocore's "max_attempts" counts retries, so max_attempts=1 would still retry once.)
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=settings.pool_size,
        connect_timeout=settings.timeouts.connect,
        read_timeout=settings.timeouts.read,
        request_checksum_calculation=settings.checksums,
        response_checksum_validation=settings.checksums,
    )
    return session.client("s3", endpoint_url=settings.endpoint_url, verify=settings.verify, config=boto_config)


_UNSIGNED_HEADERS = frozenset(SIGNED_HEADERS_BLACKLIST)


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.digest(key, message.encode(), "sha256")


class SigV4Signer:
    """SigV4 header signing of the lean path's S3 requests, from plain strings and dicts.

    It adds the headers botocore's ``S3SigV4Auth.add_auth`` adds, with the same values and the
    same headers signed (botocore stays the reference: ``tests/unit/test_aws_sigv4.py`` checks
    them against it), without its ``AWSRequest``, email-based headers and URL re-parsing. The
    credentials are frozen once per request (so a refresh is picked up); the signing key derived
    from the secret is kept for the day it is valid, and is in no repr.
    """

    __slots__ = ("_credentials", "_key", "_payload_signing", "_region", "_service")

    def __init__(
        self, credentials: Credentials | None, region: str, payload_signing: bool | None, service: str = "s3"
    ) -> None:
        self._credentials = credentials
        self._region = region
        self._service = service
        # As botocore's s3 "payload_signing_enabled": None leaves it to the request (see sign).
        self._payload_signing = payload_signing
        # (date, access key, secret, derived key) of the last request: one tuple, swapped whole,
        # so threads never see a key with another date's or secret's.
        self._key: tuple[str, str, str, bytes] | None = None

    def __repr__(self) -> str:
        return f"SigV4Signer(region={self._region!r}, service={self._service!r})"

    def _signing_key(self, date: str, access_key: str, secret: str) -> bytes:
        cached = self._key
        if cached is not None and cached[0] == date and cached[1] == access_key and cached[2] == secret:
            return cached[3]
        key = _hmac(_hmac(_hmac(_hmac(f"AWS4{secret}".encode(), date), self._region), self._service), "aws4_request")
        self._key = (date, access_key, secret, key)
        return key

    def sign(
        self,
        method: str,
        https: bool,
        path: str,
        query: str,
        headers: dict[str, str],
        body: bytes | None,
        *,
        streaming: bool = False,
        timestamp: str | None = None,
    ) -> None:
        """Sign a request: add X-Amz-Date, X-Amz-Security-Token (with a session token),
        X-Amz-Content-SHA256 and Authorization to ``headers``.

        ``path`` and ``query`` are as sent (already quoted); ``headers`` hold Host and none of the
        headers added here. ``streaming`` is botocore's ``has_streaming_input`` (puts and parts):
        over https, with a Content-MD5, their body is left out of the signature.
        ``timestamp`` (``YYYYMMDDTHHMMSSZ``) is now unless given.
        """
        if self._credentials is None:
            raise NoCredentialsError()
        credentials = self._credentials.get_frozen_credentials()
        access_key, secret_key = credentials.access_key, credentials.secret_key
        if access_key is None or secret_key is None:
            raise NoCredentialsError()
        if timestamp is None:
            timestamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        headers["X-Amz-Date"] = timestamp
        if credentials.token:
            headers["X-Amz-Security-Token"] = credentials.token
        # Header names case-insensitively, repeated ones joined by commas, spaces trimmed (SigV4).
        signed: dict[str, str] = {}
        for name, value in headers.items():
            lower = name.lower()
            if lower not in _UNSIGNED_HEADERS:
                value = " ".join(value.split())
                signed[lower] = f"{signed[lower]},{value}" if lower in signed else value
        sign_payload = self._payload_signing
        if sign_payload is None:  # S3SigV4Auth's default: TLS and a checksum can stand for the body's hash
            sign_payload = not (https and streaming and "content-md5" in signed)
        if not sign_payload:
            payload = UNSIGNED_PAYLOAD
        elif body:
            payload = sha256(body).hexdigest()
        else:
            payload = EMPTY_SHA256_HASH
        headers["X-Amz-Content-SHA256"] = signed["x-amz-content-sha256"] = payload
        names = sorted(signed)
        signed_names = ";".join(names)
        if query:
            query = "&".join(f"{k}={v}" for k, _, v in sorted(pair.partition("=") for pair in query.split("&")))
        canonical_headers = "".join(f"{name}:{signed[name]}\n" for name in names)
        canonical = f"{method}\n{path}\n{query}\n{canonical_headers}\n{signed_names}\n{payload}"
        date = timestamp[:8]
        scope = f"{date}/{self._region}/{self._service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{timestamp}\n{scope}\n{sha256(canonical.encode()).hexdigest()}"
        key = self._signing_key(date, access_key, secret_key)
        signature = _hmac(key, to_sign).hex()
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_names}, Signature={signature}"
        )

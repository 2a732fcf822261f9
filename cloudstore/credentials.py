"""Credentials that refresh themselves: one protocol for every cloud.

The ``credentials_provider`` config key takes a callable that returns
:class:`TemporaryCredentials`: some of the provider's own config keys (``aws_access_key``,
``aws_secret_key`` and ``aws_session_token``; ``gcp_access_token``; ``os_auth_token`` and
``os_storage_url``) or, on Azure, ``azure_access_token`` (an OAuth 2.0 bearer token), and when
they expire. cloudstore calls it once on first use, again shortly
before the credentials expire (a quarter of their life before, at most five minutes), and when
the service answers that they have expired; every thread shares the result, so one refresh
serves all of them, and transfers in flight go on with the new credentials.

Built-in callables: :func:`aws_assume_role` and :func:`aws_web_identity` (temporary AWS
credentials from STS). Importing this module imports no SDK.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from cloudstore.exceptions import AuthenticationException, CloudStoreException, InvalidParamException

#: The most a refresh happens ahead of expiry.
MAX_REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class TemporaryCredentials:
    """Credentials of one provider (a few of its config keys) and when they stop working."""

    values: Mapping[str, Any] = field(repr=False)
    #: Timezone-aware; ``None`` when they do not expire.
    expires_at: datetime | None = None

    def __repr__(self) -> str:  # the values are secrets
        expires = self.expires_at.isoformat() if self.expires_at else None
        return f"<TemporaryCredentials keys={','.join(sorted(self.values))} expires_at={expires}>"


CredentialsProvider = Callable[[], TemporaryCredentials]


class CredentialSource:
    """The current credentials of one provider, fetched from its ``credentials_provider``; shared
    by all threads, refreshed before they expire and on demand (:meth:`renew`)."""

    def __init__(self, fetch: CredentialsProvider, allowed_keys: frozenset[str]) -> None:
        if not callable(fetch):
            raise InvalidParamException("config key 'credentials_provider' must be a callable")
        self._fetch = fetch
        self._allowed = allowed_keys
        self._lock = threading.Lock()
        self._current: TemporaryCredentials | None = None
        self._refresh_at: datetime | None = None

    def current(self) -> TemporaryCredentials:
        """Credentials that are good for a while yet (fetched when none are, or they are close to expiry)."""
        with self._lock:
            if self._current is None or (self._refresh_at is not None and _now() >= self._refresh_at):
                self._take(self._call())
            assert self._current is not None
            return self._current

    def renew(self, stale: TemporaryCredentials | None = None) -> TemporaryCredentials:
        """Fetch new credentials now, unless another thread already replaced ``stale``."""
        with self._lock:
            if self._current is None or stale is None or self._current is stale:
                self._take(self._call())
            assert self._current is not None
            return self._current

    def _call(self) -> TemporaryCredentials:
        try:
            fetched = self._fetch()
        except CloudStoreException:
            raise
        except Exception as err:  # the user's callable: say where it failed, not what it holds
            raise AuthenticationException(f"credentials_provider failed: {type(err).__name__}") from err
        if not isinstance(fetched, TemporaryCredentials):
            raise InvalidParamException(
                "credentials_provider must return cloudstore.credentials.TemporaryCredentials, "
                f"not {type(fetched).__name__}"
            )
        unknown = sorted(set(fetched.values) - self._allowed)
        if unknown:
            raise InvalidParamException(f"credentials_provider returned keys this provider does not take: {unknown}")
        if fetched.expires_at is not None and fetched.expires_at.tzinfo is None:
            raise InvalidParamException("TemporaryCredentials.expires_at must be timezone-aware")
        return fetched

    def _take(self, fetched: TemporaryCredentials) -> None:
        self._current = fetched
        if fetched.expires_at is None:
            self._refresh_at = None
            return
        life = fetched.expires_at - _now()
        self._refresh_at = fetched.expires_at - min(MAX_REFRESH_MARGIN, max(life / 4, timedelta(0)))


def _now() -> datetime:
    return datetime.now(UTC)


# --- AWS -------------------------------------------------------------------------------------
def aws_assume_role(
    role_arn: str,
    *,
    session_name: str = "cloudstore",
    duration: int | None = None,
    sts_endpoint_url: str | None = None,
    region: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
) -> CredentialsProvider:
    """A ``credentials_provider`` that assumes ``role_arn`` with STS ``AssumeRole`` each time,
    signed with ``access_key``/``secret_key`` (else boto3's own credential chain)."""

    def fetch() -> TemporaryCredentials:
        sts = _sts_client(sts_endpoint_url, region, access_key, secret_key)
        options = {"DurationSeconds": duration} if duration else {}
        answer = sts.assume_role(RoleArn=role_arn, RoleSessionName=session_name, **options)
        return _from_sts(answer)

    return fetch


def aws_web_identity(
    role_arn: str,
    token: str | Callable[[], str],
    *,
    session_name: str = "cloudstore",
    duration: int | None = None,
    sts_endpoint_url: str | None = None,
    region: str | None = None,
) -> CredentialsProvider:
    """A ``credentials_provider`` that exchanges an OIDC token (a str, or a callable returning
    the current one) for temporary credentials with STS ``AssumeRoleWithWebIdentity``."""

    def fetch() -> TemporaryCredentials:
        import botocore

        sts = _sts_client(sts_endpoint_url, region, None, None, unsigned=botocore.UNSIGNED)
        options = {"DurationSeconds": duration} if duration else {}
        current = token() if callable(token) else token
        answer = sts.assume_role_with_web_identity(
            RoleArn=role_arn, RoleSessionName=session_name, WebIdentityToken=current, **options
        )
        return _from_sts(answer)

    return fetch


def _sts_client(
    endpoint: str | None, region: str | None, access_key: str | None, secret_key: str | None, unsigned: Any = None
) -> Any:
    import boto3
    from botocore.config import Config as BotoConfig

    config = BotoConfig(signature_version=unsigned) if unsigned is not None else None
    return boto3.session.Session(
        aws_access_key_id=access_key, aws_secret_access_key=secret_key, region_name=region or "us-east-1"
    ).client("sts", endpoint_url=endpoint, config=config)


def _from_sts(answer: Mapping[str, Any]) -> TemporaryCredentials:
    given = answer["Credentials"]
    expiry = given["Expiration"]
    if isinstance(expiry, str):
        expiry = datetime.fromisoformat(expiry.replace("Z", "+00:00"))
    return TemporaryCredentials(
        {
            "aws_access_key": given["AccessKeyId"],
            "aws_secret_key": given["SecretAccessKey"],
            "aws_session_token": given["SessionToken"],
        },
        expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC),
    )

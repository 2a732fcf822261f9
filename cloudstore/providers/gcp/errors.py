# mypy: disallow-untyped-calls=False
# (google-auth and google-api-core ship type hints for only part of their API)
"""Google Cloud Storage errors mapped onto :mod:`cloudstore.exceptions`.

Sources: ``google.api_core.exceptions`` (JSON API answers, with the HTTP status),
``google.auth.exceptions`` (credentials and token refresh), ``google.cloud.storage.exceptions``
(media transfers), and ``requests``/``urllib3`` transport errors (streamed downloads).
"""

from __future__ import annotations

import google.api_core.exceptions as api_errors
import google.auth.exceptions as auth_errors
import requests.exceptions
import urllib3.exceptions
from google.cloud.storage import exceptions as storage_errors

from cloudstore.exceptions import (
    AuthenticationException,
    ChecksumMismatchException,
    CloudStoreException,
    DuplicateResourceException,
    InvalidParamException,
    NotFoundException,
    PermissionDeniedException,
    PreconditionFailedException,
    ProviderConnectionException,
    ThrottledException,
)

#: 403 reasons that mean the credentials themselves are wrong, not merely not allowed.
_BAD_CREDENTIAL_REASONS = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "authError", "invalidCredentials"}
)


def map_gcs_error(error: BaseException) -> CloudStoreException | None:
    """The cloudstore exception for a google-cloud-storage (or transport) error; ``None`` if not one."""
    if isinstance(error, CloudStoreException):
        return error
    if isinstance(error, api_errors.GoogleAPICallError):
        return _from_status(error)
    if isinstance(error, (api_errors.RetryError, api_errors.DeadlineExceeded)):
        return ProviderConnectionException(f"GCS request timed out: {error}")
    if isinstance(error, storage_errors.DataCorruption):
        return ChecksumMismatchException(f"GCS transfer failed its checksum: {error}")
    if isinstance(error, storage_errors.InvalidResponse):
        return _from_invalid_response(error)
    if isinstance(error, auth_errors.GoogleAuthError):
        return _from_auth(error)
    if isinstance(
        error, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
    ):
        return ProviderConnectionException(f"connection to GCS failed: {type(error).__name__}: {error}")
    return None


def _reason(error: api_errors.GoogleAPICallError) -> str | None:
    reason = getattr(error, "reason", None)
    if reason:
        return str(reason)
    for detail in error.errors or ():
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"])
    return None


def _exception_class(status: int, reason: str | None) -> type[CloudStoreException]:
    if status == 401 or (status == 403 and reason in _BAD_CREDENTIAL_REASONS):
        return AuthenticationException
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if status == 408 or status >= 500:
        return ProviderConnectionException
    if 400 <= status < 500:
        return InvalidParamException
    return CloudStoreException


_BY_STATUS: dict[int, type[CloudStoreException]] = {
    403: PermissionDeniedException,
    404: NotFoundException,
    409: DuplicateResourceException,
    412: PreconditionFailedException,
    416: InvalidParamException,  # a range outside the object
    429: ThrottledException,
    503: ThrottledException,
}


def _from_status(error: api_errors.GoogleAPICallError) -> CloudStoreException:
    status = int(error.code) if error.code is not None else None
    message = f"GCS: {error.message}" if error.message else f"GCS answered HTTP {status}"
    if status is None:
        return ProviderConnectionException(message)
    reason = _reason(error)
    return _exception_class(status, reason)(message, status=status, code=reason)


def _from_invalid_response(error: storage_errors.InvalidResponse) -> CloudStoreException:
    response = getattr(error, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return _from_status(api_errors.from_http_status(status, f"unexpected answer: {error}"))
    return ProviderConnectionException(f"GCS gave an unexpected answer: {error}")


def _from_auth(error: auth_errors.GoogleAuthError) -> CloudStoreException:
    if isinstance(error, auth_errors.TransportError) or getattr(error, "retryable", False):
        return ProviderConnectionException(f"could not reach the Google token service: {error}")
    if isinstance(error, auth_errors.DefaultCredentialsError):
        return AuthenticationException(f"GCP credentials are missing or unusable: {error}")
    return AuthenticationException(f"GCP credentials were rejected: {error}")

"""The one exception tree every provider maps its SDK errors onto.

Every public method raises only these; the SDK's original error is chained as
``__cause__``. ``retryable`` tells the shared retry policy whether trying the
same request again can succeed.
"""

from __future__ import annotations


class CloudStoreException(Exception):
    """Base of every error cloudstore raises."""

    retryable: bool = False

    def __init__(self, message: str = "", *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class InvalidNameException(CloudStoreException, ValueError):
    """A bucket or object name breaks the provider's naming rules."""


class InvalidParamException(CloudStoreException, ValueError):
    """An argument or configuration value is not acceptable."""


class DuplicateResourceException(CloudStoreException):
    """The resource already exists (for example a bucket name in use)."""


class NotFoundException(CloudStoreException):
    """The bucket or object does not exist."""


class AuthenticationException(CloudStoreException):
    """The credentials are missing, wrong or expired."""


class PermissionDeniedException(CloudStoreException):
    """The credentials are valid but not allowed to do this."""


class ThrottledException(CloudStoreException):
    """The service asked the client to slow down (429, SlowDown, ServerBusy)."""

    retryable = True


class PreconditionFailedException(CloudStoreException):
    """A conditional request failed, or the state forbids the operation
    (for example deleting a bucket that still holds objects)."""


class ChecksumMismatchException(CloudStoreException):
    """Downloaded or uploaded bytes do not match the checksum the server holds."""


class ProviderConnectionException(CloudStoreException):
    """The service could not be reached, the connection broke, or it answered
    with a transient server error (408, 5xx)."""

    retryable = True


class NotSupportedException(CloudStoreException, NotImplementedError):
    """The provider cannot do this (see ``provider.features``)."""


__all__ = [
    "AuthenticationException",
    "ChecksumMismatchException",
    "CloudStoreException",
    "DuplicateResourceException",
    "InvalidNameException",
    "InvalidParamException",
    "NotFoundException",
    "NotSupportedException",
    "PermissionDeniedException",
    "PreconditionFailedException",
    "ProviderConnectionException",
    "ThrottledException",
]

"""The one exception tree every provider maps its SDK errors onto.

Every public method raises only these; the SDK's original error is chained as
``__cause__``. ``retryable`` tells the shared retry policy whether trying the
same request again can succeed.
"""

from __future__ import annotations


class CloudStoreException(Exception):
    """Base of every error cloudstore raises."""

    #: Whether the same request can succeed when tried again (a class default; one error may
    #: override it, e.g. a checksum the server refused because the body was damaged in transit).
    retryable: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        if retryable is not None:
            self.retryable = retryable


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


class CleanupWarning(UserWarning):
    """A clean-up after the operation failed (parts of an upload may be left behind).

    The operation itself succeeded or failed as its result says; only what it leaves behind
    needs attention (the message names it).
    """


#: What a plain HTTP status means when the service's own error code says nothing more. Every
#: provider maps its own codes first and falls back to this one table.
_STATUS_CLASSES: dict[int, type[CloudStoreException]] = {
    400: InvalidParamException,
    401: AuthenticationException,
    403: PermissionDeniedException,
    404: NotFoundException,
    405: NotSupportedException,
    408: ProviderConnectionException,
    409: PreconditionFailedException,
    410: NotFoundException,
    411: InvalidParamException,
    412: PreconditionFailedException,
    413: InvalidParamException,
    416: InvalidParamException,
    422: InvalidParamException,
    429: ThrottledException,
    500: ProviderConnectionException,
    501: NotSupportedException,
    502: ProviderConnectionException,
    503: ThrottledException,
    504: ProviderConnectionException,
}


def class_for_status(status: int | None) -> type[CloudStoreException]:
    """The exception class for an HTTP ``status`` (``None``: no answer, so a connection failure)."""
    if status is None:
        # An SDK error without a status never got a usable answer: worth another attempt.
        return ProviderConnectionException
    if status in _STATUS_CLASSES:
        return _STATUS_CLASSES[status]
    if 400 <= status < 500:
        return InvalidParamException
    if status >= 500:
        return ProviderConnectionException
    return CloudStoreException


def error_for_status(status: int | None, message: str, code: str | None = None) -> CloudStoreException:
    """The exception for an HTTP answer, by :func:`class_for_status`."""
    return class_for_status(status)(message, status=status, code=code)


__all__ = [
    "AuthenticationException",
    "ChecksumMismatchException",
    "CleanupWarning",
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

"""Azure Blob Storage errors mapped onto :mod:`cloudstore.exceptions`.

Azure's own error codes (``x-ms-error-code``) are mapped first, then the SDK's exception classes,
then the shared status table (:func:`cloudstore.exceptions.class_for_status`). Every message is
one line with the status and code, with the configured secrets and any SAS signature masked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import requests
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    DecodeError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from cloudstore.exceptions import (
    AuthenticationException,
    ChecksumMismatchException,
    CloudStoreException,
    DuplicateResourceException,
    InvalidNameException,
    InvalidParamException,
    NotFoundException,
    PermissionDeniedException,
    PreconditionFailedException,
    ProviderConnectionException,
    ThrottledException,
    class_for_status,
)

#: Azure error codes (x-ms-error-code) and the cloudstore exception each one means.
ERROR_CODES: dict[str, type[CloudStoreException]] = {
    "ContainerNotFound": NotFoundException,
    "BlobNotFound": NotFoundException,
    "ResourceNotFound": NotFoundException,
    "CannotVerifyCopySource": NotFoundException,
    "ContainerAlreadyExists": DuplicateResourceException,
    # Only a write with If-None-Match: * meets it (every other write overwrites): its condition failed.
    "BlobAlreadyExists": PreconditionFailedException,
    "ResourceAlreadyExists": DuplicateResourceException,
    # Azure keeps a deleted container's name for a while; trying again later succeeds.
    "ContainerBeingDeleted": ThrottledException,
    "AuthenticationFailed": AuthenticationException,
    "InvalidAuthenticationInfo": AuthenticationException,
    "NoAuthenticationInformation": AuthenticationException,
    "AuthorizationFailure": PermissionDeniedException,
    "AuthorizationPermissionMismatch": PermissionDeniedException,
    "AuthorizationResourceTypeMismatch": PermissionDeniedException,
    "AuthorizationServiceMismatch": PermissionDeniedException,
    "AuthorizationProtocolMismatch": PermissionDeniedException,
    "AuthorizationSourceIPMismatch": PermissionDeniedException,
    "InsufficientAccountPermissions": PermissionDeniedException,
    "AccountIsDisabled": PermissionDeniedException,
    "ServerBusy": ThrottledException,
    "OperationTimedOut": ProviderConnectionException,
    "InternalError": ProviderConnectionException,
    "ConditionNotMet": PreconditionFailedException,
    "SourceConditionNotMet": PreconditionFailedException,
    "TargetConditionNotMet": PreconditionFailedException,
    "LeaseIdMissing": PreconditionFailedException,
    "LeaseIdMismatchWithBlobOperation": PreconditionFailedException,
    "LeaseIdMismatchWithContainerOperation": PreconditionFailedException,
    "LeaseAlreadyPresent": PreconditionFailedException,
    "LeaseNotPresentWithBlobOperation": PreconditionFailedException,
    "LeaseNotPresentWithContainerOperation": PreconditionFailedException,
    "InvalidResourceName": InvalidNameException,
    "OutOfRangeInput": InvalidParamException,
    "InvalidRange": InvalidParamException,
    "InvalidInput": InvalidParamException,
    "InvalidHeaderValue": InvalidParamException,
    "InvalidQueryParameterValue": InvalidParamException,
    "InvalidUri": InvalidParamException,
    "InvalidBlockId": InvalidParamException,
    # Put Block List names a block that is not staged: another upload of the same blob committed
    # first (a commit discards every uncommitted block of the blob). A lost race, not a bad argument.
    "InvalidBlockList": PreconditionFailedException,
    "InvalidBlobOrBlock": InvalidParamException,
    "RequestBodyTooLarge": InvalidParamException,
    # The body that arrived does not match the Content-MD5 sent with it: damaged on the way,
    # so the same request can succeed (the exception is made retryable).
    "Md5Mismatch": ChecksumMismatchException,
    "Crc64Mismatch": ChecksumMismatchException,
}

#: What Put Block List answers to a list it cannot use: blocks not staged (another commit of the
#: blob discarded them), or XML that arrived damaged.
BLOCK_LIST_REFUSED = frozenset({"InvalidBlockList", "InvalidXmlDocument", "InvalidXmlNodeValue"})

#: Azurite refuses a block blob body that does not match its Content-MD5 with the generic code
#: InvalidOperation and this message (Azure says Md5Mismatch).
_AZURITE_MD5_REFUSED = re.compile(r"contentMD5 doesn't match", re.IGNORECASE)

_SAS_SIGNATURE = re.compile(r"(sig=)[^&\s'\"]+", re.IGNORECASE)

#: What the SDK raises when no usable answer came back: worth another attempt.
_CONNECTION_ERRORS = (
    ServiceRequestError,
    ServiceResponseError,
    DecodeError,
    requests.RequestException,
    ConnectionError,
    TimeoutError,
)


class ErrorMapper:
    """Maps the SDK's errors for one backend, masking its secrets (keys, SAS tokens) in messages."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = [s for s in secrets if s]

    def add_secret(self, secret: str | None) -> None:
        """Mask ``secret`` too (one found only while making the client, e.g. a connection string's key)."""
        if secret:
            self._secrets.append(secret)

    def redact(self, text: str) -> str:
        """``text`` with the secrets and any SAS signature masked."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return _SAS_SIGNATURE.sub(r"\1***", text)

    def map_error(self, error: BaseException) -> CloudStoreException | None:
        """The cloudstore exception for an azure-core / requests error; ``None`` if not one."""
        if isinstance(error, CloudStoreException):
            return error
        # DecodeError (a body cut short or garbled) is an HttpResponseError: test it first.
        if isinstance(error, _CONNECTION_ERRORS):
            return ProviderConnectionException(f"connection to Azure failed: {self.redact(first_line(error))}")
        if isinstance(error, HttpResponseError):
            return self.map_response_error(error)
        if isinstance(error, AzureError):
            # The SDK gave up without an answer to show (the shared rule: worth another attempt).
            return ProviderConnectionException(f"Azure request failed: {self.redact(first_line(error))}")
        return None

    def map_response_error(self, error: HttpResponseError) -> CloudStoreException:
        """The cloudstore exception for an answer of the service (also a batch's sub-response)."""
        status = error.status_code
        code = error_code(error)
        kind: type[CloudStoreException] | None = ERROR_CODES.get(code or "")
        if kind is None:
            if isinstance(error, ResourceNotFoundError):
                kind = NotFoundException
            elif isinstance(error, ResourceExistsError):
                kind = DuplicateResourceException
            elif isinstance(error, ResourceModifiedError):
                kind = PreconditionFailedException
            elif isinstance(error, ClientAuthenticationError):
                # Also raised without a response by azure-identity when no token can be obtained.
                kind = AuthenticationException
            else:
                # The shared table; no status at all means no usable answer: a connection failure.
                kind = class_for_status(status)
        return self._exception(kind, status, code, first_line(error))

    def map_answer(self, status: int, code: str | None, message: str) -> CloudStoreException:
        """The cloudstore exception for an error answer read off the wire (the lean path's):
        its status, its code (``x-ms-error-code``) and the first line of its message."""
        return self._exception(ERROR_CODES.get(code or "") or class_for_status(status), status, code, message)

    def _exception(
        self, kind: type[CloudStoreException], status: int | None, code: str | None, text: str
    ) -> CloudStoreException:
        if _AZURITE_MD5_REFUSED.search(text):
            kind = ChecksumMismatchException
        if kind is PermissionDeniedException and "failed to authenticate" in text.lower():
            # Azure answers a bad signature, wrong key or expired SAS with "Server failed to
            # authenticate the request" (AuthenticationFailed; Azurite says AuthorizationFailure).
            kind = AuthenticationException
        message = f"Azure: {self.redact(text)} (HTTP {status}, {code or 'no error code'})"
        # A refused checksum means the body was damaged on the way: sending it again can succeed.
        retryable = True if kind is ChecksumMismatchException else None
        return kind(message, status=status, code=code, retryable=retryable)


def first_line(error: BaseException) -> str:
    """The first line of an error's message (the SDK appends the whole XML answer)."""
    text = getattr(error, "message", None) or str(error) or type(error).__name__
    return str(text).strip().splitlines()[0] if str(text).strip() else type(error).__name__


def error_code(error: HttpResponseError) -> str | None:
    """Azure's error code of an answer (``x-ms-error-code``), if it has one."""
    code = getattr(error, "error_code", None)
    headers = getattr(error.response, "headers", None)
    if code is None and headers is not None:
        code = headers.get("x-ms-error-code")
    if code is None:
        return None
    return str(getattr(code, "value", code))

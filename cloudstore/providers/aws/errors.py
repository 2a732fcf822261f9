"""S3's error codes and how they map onto :mod:`cloudstore.exceptions`, for boto3's errors and the
lean path's (:mod:`cloudstore.providers.aws.rest`) alike: one table, the same exception for the
same answer whichever way the request went."""

from __future__ import annotations

import botocore.exceptions as boto_errors

from cloudstore import exceptions as exc
from cloudstore._http import xml_error

_NOT_FOUND_CODES = frozenset({"NoSuchBucket", "NoSuchKey", "NoSuchUpload", "NoSuchVersion", "NotFound"})
_AUTH_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "TokenRefreshRequired",
        "InvalidToken",
        "InvalidSecurity",
        "MissingSecurityHeader",
        "AuthorizationHeaderMalformed",
        "AuthorizationQueryParametersError",
        "RequestTimeTooSkewed",
        "CredentialsNotSupported",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
    }
)
_PERMISSION_CODES = frozenset(
    {"AccessDenied", "AllAccessDisabled", "AccountProblem", "InvalidPayer", "AccessDeniedException"}
)
_THROTTLED_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "ServerBusy",
        "RequestThrottled",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "RequestTimeoutException",
        "BadGateway",
        "GatewayTimeout",
        "OperationAborted",
        "IncompleteBody",
    }
)
_DUPLICATE_CODES = frozenset({"BucketAlreadyOwnedByYou", "BucketAlreadyExists"})
_PRECONDITION_CODES = frozenset(
    {
        "PreconditionFailed",
        "BucketNotEmpty",
        "NotModified",
        "ConditionalRequestConflict",
        "InvalidObjectState",
        "InvalidBucketState",
    }
)
_INVALID_NAME_CODES = frozenset({"InvalidBucketName", "KeyTooLongError"})
#: The service refused an upload whose body does not match the digest sent with it: damage in
#: transit, so the same request (its body read again from memory) is worth another attempt.
_CHECKSUM_CODES = frozenset({"BadDigest", "XAmzContentSHA256Mismatch", "InvalidDigest"})
_NOT_SUPPORTED_CODES = frozenset({"NotImplemented"})
_INVALID_PARAM_CODES = frozenset(
    {
        "EntityTooSmall",
        "EntityTooLarge",
        "InvalidArgument",
        "InvalidRange",
        "InvalidPart",
        "InvalidPartOrder",
        "InvalidRequest",
        "MalformedXML",
        "MetadataTooLarge",
        "InvalidLocationConstraint",
        "IllegalLocationConstraintException",
        "InvalidStorageClass",
        "InvalidEncryptionAlgorithmError",
        "KMS.NotFoundException",
        "KMS.DisabledException",
        "MethodNotAllowed",
        "TooManyBuckets",
    }
)

#: S3's own error codes, checked in order (the first set holding the code wins); an answer whose
#: code is not here (or has none: botocore then reports the bare status) maps by its HTTP status
#: through the shared table, :func:`cloudstore.exceptions.class_for_status`.
_CODE_TABLE: tuple[tuple[frozenset[str], type[exc.CloudStoreException]], ...] = (
    (_NOT_FOUND_CODES, exc.NotFoundException),
    (_AUTH_CODES, exc.AuthenticationException),
    (_PERMISSION_CODES, exc.PermissionDeniedException),
    (_THROTTLED_CODES, exc.ThrottledException),
    (_TRANSIENT_CODES, exc.ProviderConnectionException),
    (_DUPLICATE_CODES, exc.DuplicateResourceException),
    (_PRECONDITION_CODES, exc.PreconditionFailedException),
    (_INVALID_NAME_CODES, exc.InvalidNameException),
    (_CHECKSUM_CODES, exc.ChecksumMismatchException),
    (_NOT_SUPPORTED_CODES, exc.NotSupportedException),
    (_INVALID_PARAM_CODES, exc.InvalidParamException),
)


#: The HTTP status an item's error code in a DeleteObjects answer stands for (it carries none).
DELETE_ITEM_STATUS = {"AccessDenied": 403, "NoSuchKey": 404, "InternalError": 500, "SlowDown": 503}


def exception_for(code: str | None, status: int | None, operation: str, message: str = "") -> exc.CloudStoreException:
    """The exception for an S3 answer: by its error ``code`` where the table knows it, else by status."""
    cls: type[exc.CloudStoreException] | None = None
    if code is not None:
        cls = next((cls for codes, cls in _CODE_TABLE if code in codes), None)
    if cls is None:
        cls = exc.class_for_status(status)
    text = f"{operation} failed: {code or status}" + (f" ({message})" if message and message != code else "")
    return cls(text, status=status, code=code, retryable=True if cls is exc.ChecksumMismatchException else None)


def map_client_error(error: boto_errors.ClientError) -> exc.CloudStoreException:
    """The exception for a boto3 ``ClientError``."""
    details = error.response.get("Error", {})
    code = str(details.get("Code") or "") or None
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    operation = getattr(error, "operation_name", None) or "S3 request"
    return exception_for(code, status, operation, str(details.get("Message") or ""))


def error_from_body(status: int, body: bytes, operation: str) -> exc.CloudStoreException:
    """The exception for an S3 error answer of the lean path: ``<Error><Code>`` of its XML body
    (none for a HEAD, or a body that is no S3 error: the status alone then)."""
    code, message = xml_error(body)
    return exception_for(code or None, status, operation, message or "")


def map_error(error: BaseException) -> exc.CloudStoreException | None:
    """The exception for any error a request of the AWS provider raised (``None``: not S3's)."""
    if isinstance(error, exc.CloudStoreException):
        return error
    if isinstance(error, boto_errors.ClientError):
        return map_client_error(error)
    if isinstance(error, boto_errors.ParamValidationError):
        return exc.InvalidParamException(f"invalid S3 request parameters: {error}")
    if isinstance(
        error,
        (
            boto_errors.NoCredentialsError,
            boto_errors.PartialCredentialsError,
            boto_errors.CredentialRetrievalError,
            boto_errors.UnauthorizedSSOTokenError,
        ),
    ):
        return exc.AuthenticationException(f"AWS credentials are missing or unusable: {type(error).__name__}")
    if isinstance(
        error,
        (
            boto_errors.ConnectionError,  # EndpointConnectionError, ConnectionClosedError, timeouts, SSL, proxy
            boto_errors.HTTPClientError,  # ReadTimeoutError and other urllib3 failures
            boto_errors.ResponseStreamingError,
            boto_errors.IncompleteReadError,
        ),
    ):
        return exc.ProviderConnectionException(f"S3 connection failed: {error}")
    if isinstance(error, (boto_errors.ChecksumError, boto_errors.FlexibleChecksumError)):
        # botocore's own check of a response ("when_supported"): damaged on the way.
        return exc.ChecksumMismatchException(f"S3 response failed its checksum: {error}", retryable=True)
    if isinstance(error, boto_errors.BotoCoreError):
        return exc.CloudStoreException(f"S3 client error: {error}")
    return None


def status_and_code(error: BaseException) -> tuple[int | None, str]:
    """The HTTP status and S3 error code of a boto3 error or a mapped one ("" for no code)."""
    if isinstance(error, boto_errors.ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return status, str(error.response.get("Error", {}).get("Code") or "")
    if isinstance(error, exc.CloudStoreException):
        return error.status, error.code or ""
    return None, ""


def error_code(error: BaseException) -> str:
    """The S3 error code of ``error`` ("" when it has none)."""
    return status_and_code(error)[1]


def is_not_found(error: BaseException) -> bool:
    """A 404, or an S3 "no such ..." code (a HEAD's 404 carries no code of its own)."""
    status, code = status_and_code(error)
    return status == 404 or code in _NOT_FOUND_CODES


def is_bare_forbidden(error: BaseException) -> bool:
    """A HEAD answer of 403 without an error code: wrong secret, unknown key, bad token or denied alike."""
    status, code = status_and_code(error)
    return status == 403 and code in ("403", "Forbidden", "")

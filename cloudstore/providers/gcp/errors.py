# mypy: disallow-untyped-calls=False
# (google-auth and google-api-core ship type hints for only part of their API)
"""Google Cloud Storage errors mapped onto :mod:`cloudstore.exceptions`.

Sources: ``google.api_core.exceptions`` (JSON API answers, with the HTTP status, from the SDK),
``google.auth.exceptions`` (credentials and token refresh), ``google.cloud.storage.exceptions``
(media transfers), ``requests``/``urllib3`` transport errors, and the status and body of the
lean request path's answers (:func:`error_from_body`).

GCS's own error reasons are mapped first; any other status goes through the shared table
(:func:`cloudstore.exceptions.class_for_status`). Every message is one line: the service's
own message (never the raw JSON body) with the status and reason.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import google.api_core.exceptions as api_errors
import google.auth.exceptions as auth_errors
import requests
import urllib3.exceptions
from google.cloud.storage import exceptions as storage_errors

from cloudstore.exceptions import (
    AuthenticationException,
    ChecksumMismatchException,
    CloudStoreException,
    DuplicateResourceException,
    ProviderConnectionException,
    ThrottledException,
    class_for_status,
)

#: 403 reasons that mean the credentials themselves are wrong, not merely not allowed.
_BAD_CREDENTIAL_REASONS = frozenset(
    {"SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken", "authError", "invalidCredentials"}
)
#: GCS's throttling reasons (429, or 403 from older front ends): slow down and try again.
_THROTTLE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "tooManyRequests"})
#: GCS refusing an upload whose body does not match the hash sent with it (400): the body was
#: damaged on the way, so the same request can succeed again.
_HASH_REFUSED = re.compile(r"(MD5|CRC32C).*(doesn't|does not|didn't) match", re.IGNORECASE)
#: Longest service message kept in an exception (HTML error pages can be long).
_MESSAGE_LIMIT = 300


def map_gcs_error(error: BaseException) -> CloudStoreException | None:
    """The cloudstore exception for a google-cloud-storage (or transport) error; ``None`` if not one."""
    if isinstance(error, CloudStoreException):
        return error
    if isinstance(error, api_errors.GoogleAPICallError):
        return _from_api_error(error)
    if isinstance(error, (api_errors.RetryError, api_errors.DeadlineExceeded)):
        return ProviderConnectionException(f"GCS request timed out: {_first_line(error)}")
    if isinstance(error, storage_errors.DataCorruption):
        return ChecksumMismatchException(f"GCS transfer failed its checksum: {_first_line(error)}", retryable=True)
    if isinstance(error, storage_errors.InvalidResponse):
        response = getattr(error, "response", None)
        if isinstance(getattr(response, "status_code", None), int):
            return error_from_response(response)
        return ProviderConnectionException(f"GCS gave an unexpected answer: {_first_line(error)}")
    if isinstance(error, auth_errors.GoogleAuthError):
        return _from_auth(error)
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return ProviderConnectionException("connection to GCS failed: not connected within connect_timeout")
    if isinstance(error, requests.exceptions.ReadTimeout):
        return ProviderConnectionException("connection to GCS failed: no answer within read_timeout")
    if isinstance(
        error, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, ConnectionError, TimeoutError)
    ):
        return ProviderConnectionException(f"connection to GCS failed: {describe_transport_error(error)}")
    return None


def classify(status: int | None, reason: str | None, message: str) -> CloudStoreException:
    """The exception for a GCS answer: GCS's own reasons first, then the shared status table."""
    suffix = f"HTTP {status}" if status is not None else "no status"
    if reason and reason.lower() not in (message.lower(), "unknown"):
        suffix += f" {reason}"
    text = f"GCS: {message} ({suffix})"
    if status == 401 or (status == 403 and reason in _BAD_CREDENTIAL_REASONS):
        return AuthenticationException(text, status=status, code=reason)
    if status in (403, 429) and reason in _THROTTLE_REASONS:
        return ThrottledException(text, status=status, code=reason)
    if status == 409:
        # GCS answers 409 for a name that is taken (a bucket's "conflict"); the one other 409,
        # a bucket delete refused because it is not empty, is handled where it happens.
        return DuplicateResourceException(text, status=status, code=reason)
    if status == 400 and _HASH_REFUSED.search(message):
        return ChecksumMismatchException(text, status=status, code=reason, retryable=True)
    return class_for_status(status)(text, status=status, code=reason)


def error_from_response(response: Any) -> CloudStoreException:
    """The cloudstore exception for an error answer (a ``requests`` response)."""
    status = int(response.status_code)
    message, reason = _payload_message(response)
    return classify(status, reason, message or _status_text(status, response))


def error_from_body(status: int, phrase: str, body: bytes) -> CloudStoreException:
    """The cloudstore exception for an error answer of the lean request path (its status, reason
    phrase and body)."""
    message, reason = _text_message(body.decode("utf-8", "replace"))
    return classify(status, reason, message or phrase or f"HTTP {status}")


def _from_api_error(error: api_errors.GoogleAPICallError) -> CloudStoreException:
    status = int(error.code) if error.code is not None else None
    response = getattr(error, "response", None)
    message, reason = _payload_message(response) if response is not None else (None, None)
    if not message:
        message = _clean(str(error.message or "")) or _status_text(status, response)
    return classify(status, reason or _reason(error), message)


def _payload_message(response: Any) -> tuple[str | None, str | None]:
    """The service's message and first reason from an error answer's body (see :func:`_text_message`)."""
    try:
        text = response.text
    except Exception:  # a body that cannot be decoded says nothing useful
        return None, None
    return _text_message(text) if isinstance(text, str) else (None, None)


def _text_message(text: str) -> tuple[str | None, str | None]:
    """The service's message and first reason from a JSON error body; for any other body its
    text, stripped of markup (proxies and load balancers answer XML or HTML)."""
    if not text.strip():
        return None, None
    try:
        payload = json.loads(text)
    except ValueError:
        return _clean(text) or None, None
    error = payload.get("error") if isinstance(payload, dict) else None
    if not isinstance(error, dict):
        return _clean(text) or None, None
    reason = None
    for detail in error.get("errors") or ():
        if isinstance(detail, dict) and detail.get("reason"):
            reason = str(detail["reason"])
            break
    message = error.get("message")
    return (_clean(str(message)) if message else None), reason


def _reason(error: api_errors.GoogleAPICallError) -> str | None:
    reason = getattr(error, "reason", None)
    if reason:
        return str(reason)
    for detail in error.errors or ():
        if isinstance(detail, dict) and detail.get("reason"):
            return str(detail["reason"])
    return None


def _status_text(status: int | None, response: Any) -> str:
    phrase = getattr(response, "reason", None)
    return str(phrase) if phrase else f"HTTP {status}" if status is not None else "no answer"


def _clean(text: str) -> str:
    """One line of readable text: markup and the ``METHOD URL:`` prefix the SDK adds dropped."""
    text = re.sub(r"<[^>]+>", " ", text)
    text = html.unescape(" ".join(text.split()))
    text = re.sub(r"^(GET|POST|PUT|PATCH|DELETE|HEAD) \S+: ", "", text)
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 3] + "..."


def _first_line(error: BaseException) -> str:
    args = error.args
    text = args[0] if len(args) >= 1 and isinstance(args[0], str) else str(error)
    return _clean(text) or type(error).__name__


def describe_transport_error(error: BaseException) -> str:
    """A short reason for a transport failure (``connection refused``, ``read timed out``...).

    ``requests`` wraps urllib3's errors, which wrap the socket's, and their texts are tuples of
    reprs; the innermost error names what actually happened.
    """
    seen: set[int] = set()
    current: BaseException = error
    while id(current) not in seen:
        seen.add(id(current))
        inner = _inner(current)
        if inner is None:
            break
        current = inner
    if isinstance(current, OSError) and current.strerror:
        return f"{type(current).__name__}: {current.strerror}"
    text = _first_line(current)
    # Drop object reprs ("<urllib3.connection.HTTPConnection object at 0x7f...>: ").
    text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>:? ?", "", text).strip(" :")
    return f"{type(current).__name__}: {text}" if text else type(current).__name__


def _inner(error: BaseException) -> BaseException | None:
    reason = getattr(error, "reason", None)
    if isinstance(reason, BaseException):
        return reason
    for arg in reversed(error.args):
        if isinstance(arg, BaseException):
            return arg
    if isinstance(error, (requests.exceptions.RequestException, urllib3.exceptions.HTTPError)):
        return error.__cause__ or error.__context__
    return None


def _from_auth(error: auth_errors.GoogleAuthError) -> CloudStoreException:
    reason = _first_line(error)
    if isinstance(error, auth_errors.TransportError) or getattr(error, "retryable", False):
        return ProviderConnectionException(f"could not reach the Google token service: {reason}")
    if isinstance(error, auth_errors.DefaultCredentialsError):
        return AuthenticationException(f"GCP credentials are missing or unusable: {reason}")
    return AuthenticationException(f"GCP credentials were rejected: {reason}")

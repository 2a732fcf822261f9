"""Swift's errors mapped onto :mod:`cloudstore.exceptions`.

Sources: Swift's own answers (an HTTP error status, or a failure reported inside the 200 body of
a bulk or SLO delete: :class:`SwiftStatusError`), openstacksdk and keystoneauth (logins, the
service catalog), and ``requests``/``urllib3`` transport errors.

Swift's own statuses (422: the body did not match its ETag; 498: the ratelimit middleware) are
mapped first; any other goes through the shared table (:func:`cloudstore.exceptions.error_for_status`).
Every message is one line: the status, Swift's text (never a raw HTML page) and the request.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from urllib.parse import urlparse

import openstack.exceptions as os_exc
import requests
import urllib3.exceptions
from keystoneauth1 import exceptions as ks_exc

from cloudstore import exceptions as exc

#: Longest service error text kept in an exception message.
_MAX_DETAIL = 300


def map_swift_error(error: BaseException) -> exc.CloudStoreException | None:
    """The cloudstore exception for a Swift, openstacksdk, keystoneauth or transport error;
    ``None`` if it is none of these."""
    if isinstance(error, exc.CloudStoreException):
        return error
    if isinstance(error, SwiftStatusError):
        return from_status(error.status, str(error))
    if isinstance(error, os_exc.HttpException) and error.status_code:
        where = f" ({error.method} {urlparse(error.url).path})" if error.url else ""
        return from_status(error.status_code, f"Swift answered {error.status_code}{where}")
    if isinstance(error, ks_exc.HttpError) and error.http_status:
        # Only the v1 login goes through keystoneauth's own error raising.
        return from_status(error.http_status, f"login failed at {error.url or 'the auth URL'}")
    if isinstance(
        error,
        (
            ks_exc.ConnectionError,  # ConnectFailure, ConnectTimeout, SSLError
            ks_exc.RetriableConnectionFailure,
            requests.exceptions.ConnectionError,
            requests.exceptions.Timeout,
            requests.exceptions.ChunkedEncodingError,
            urllib3.exceptions.HTTPError,  # a body read that broke: ProtocolError, ReadTimeoutError
        ),
    ):
        return exc.ProviderConnectionException(f"Swift connection failed: {error}")
    if isinstance(error, (ks_exc.AuthorizationFailure, ks_exc.AuthPluginException)):
        return exc.AuthenticationException(f"OpenStack login failed: {error}")
    if isinstance(error, ks_exc.CatalogException):
        return exc.InvalidParamException(f"no usable object-store endpoint in the service catalog: {error}")
    if isinstance(error, ks_exc.DiscoveryFailure):
        if _caused_by(error, ks_exc.ConnectionError):
            return exc.ProviderConnectionException(f"Keystone could not be reached: {error}")
        return exc.InvalidParamException(f"cannot use os_auth_url as a Keystone endpoint: {error}")
    if isinstance(error, (os_exc.SDKException, ks_exc.ClientException)):
        # An SDK error without a status never got a usable answer: worth another attempt.
        return exc.ProviderConnectionException(f"OpenStack client error: {error}")
    return None


class SwiftStatusError(Exception):
    """A failure Swift answered: an HTTP error status, or one reported inside a 200 body (bulk
    and SLO deletes). The message is one line: status, Swift's text, and the request."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def from_status(status: int, message: str) -> exc.CloudStoreException:
    """The cloudstore error for a Swift HTTP status: Swift's own cases, then the shared table."""
    if status == 422:
        # Swift's only 422: the body does not match the ETag sent with it. Damaged on the way,
        # so sending it again can succeed.
        return exc.ChecksumMismatchException(
            f"{message} (the body's MD5 did not match the ETag sent with it)", status=status, retryable=True
        )
    if status == 498:  # the ratelimit middleware's "Slow Down"
        return exc.ThrottledException(message, status=status)
    return exc.error_for_status(status, message)


def error_message(response: requests.Response) -> str:
    """One line for a Swift error answer: status, reason, Swift's text, and the request.

    Swift's error bodies are small HTML pages (``<html><h1>Not Found</h1><p>The resource could
    not be found.</p></html>``): each element becomes a piece of the line, the reason once.
    """
    reason = response.reason or ""
    pieces = [reason] if reason else []
    content_type = response.headers.get("Content-Type", "")
    if content_type.startswith(("text/", "application/json")):
        text = re.sub(r"<[^>]*>", "\n", response.text[: 4 * _MAX_DETAIL])
        for piece in (" ".join(line.split()) for line in text.splitlines()):
            if piece and piece not in pieces:
                pieces.append(piece)
    detail = ": ".join(pieces)
    if len(detail) > _MAX_DETAIL:
        detail = detail[: _MAX_DETAIL - 3] + "..."
    request = response.request
    where = f" ({request.method} {urlparse(request.url).path})" if request is not None and request.url else ""
    return f"Swift answered {response.status_code}{' ' + detail if detail else ''}{where}"


@contextlib.contextmanager
def missing_ok() -> Iterator[None]:
    """Ignore a 404 (what was to be deleted is gone already)."""
    try:
        yield
    except SwiftStatusError as error:
        if error.status != 404:
            raise


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error`` or an exception it was raised from (or during) is a ``kind``."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def check_bulk_result(response: requests.Response, what: str, optional: bool = False) -> bool:
    """Raise :class:`SwiftStatusError` if a bulk or SLO delete's 200 body reports a failure.

    With ``optional``, a body that is not the bulk middleware's answer returns ``False``.
    """
    try:
        result = response.json()
        status = int(str(result["Response Status"]).split()[0])
    except (ValueError, KeyError, TypeError):
        if optional:
            return False
        raise SwiftStatusError(502, f"{what}: Swift's answer is not a bulk-delete result") from None
    errors = result.get("Errors") or []
    if status == 200 and result.get("Number Deleted", 0) == 0 and result.get("Number Not Found", 0) and not optional:
        raise SwiftStatusError(404, f"{what}: not found")
    if status >= 400 or errors:
        raise SwiftStatusError(status if status >= 400 else 409, f"{what} failed: {result.get('Errors')}")
    return True

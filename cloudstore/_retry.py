"""One retry policy for every provider, and the translation of SDK errors.

Every request the shared layer makes goes through :meth:`RetryPolicy.call`:
the provider's SDK error is translated into a
:class:`~cloudstore.exceptions.CloudStoreException` (``raise ... from err``), and
it is tried again only when that exception is ``retryable`` (connection resets,
timeouts, 408, 429, 5xx, S3 ``SlowDown``), with exponential backoff and full
jitter, until ``max_attempts`` or the total ``deadline`` is reached. A 403 or
404 is never retried.
"""

from __future__ import annotations

import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar, cast

from cloudstore.exceptions import CloudStoreException, ProviderConnectionException

if TYPE_CHECKING:
    import tenacity

log = logging.getLogger("cloudstore.retry")

T = TypeVar("T")

Translator = Callable[[BaseException], "CloudStoreException | None"]


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried.

    ``max_attempts`` counts the first try; ``deadline`` bounds the whole
    operation in seconds (a retry is not started past it).
    """

    max_attempts: int = 6
    initial_backoff: float = 0.1
    max_backoff: float = 8.0
    deadline: float = 120.0

    def call(self, fn: Callable[[], T], translate: Translator | None = None) -> T:
        """Run ``fn`` under this policy, raising only cloudstore exceptions."""
        started = time.monotonic()
        # The first attempt runs bare: most requests succeed, and tenacity's bookkeeping would
        # cost more CPU than a small request itself spends in cloudstore.
        try:
            return _translated(fn, translate)
        except CloudStoreException as err:
            if not err.retryable or self.max_attempts <= 1 or time.monotonic() - started >= self.deadline:
                raise
            log.info("attempt 1 failed (%s); retrying", type(err).__name__)
        time.sleep(self.backoff(1))
        # Imported only now: tenacity imports asyncio, and tornado and ssl where tornado is
        # installed (Dask installs it), which ``import cloudstore`` has no use for.
        import tenacity

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts - 1)
            | tenacity.stop_after_delay(max(0.0, self.deadline - (time.monotonic() - started))),
            # Attempt n of this loop is attempt n + 1 of the call.
            wait=lambda state: self.backoff(state.attempt_number + 1),
            retry=tenacity.retry_if_exception(_is_retryable),
            before_sleep=_log_retry,
            reraise=True,
        )
        return cast(T, retrying(_translated, fn, translate))

    def backoff(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt ``failed_attempt`` failed: exponential, full jitter."""
        return random.uniform(0, min(self.max_backoff, self.initial_backoff * 2 ** (failed_attempt - 1)))


def _translated(fn: Callable[[], T], translate: Translator | None) -> T:
    try:
        return fn()
    except CloudStoreException:
        raise
    except Exception as err:
        raise translate_error(err, translate) from err


def translate_error(err: BaseException, translate: Translator | None = None) -> CloudStoreException:
    """The cloudstore exception for ``err``: the provider's mapping, else a generic one."""
    if isinstance(err, CloudStoreException):
        return err
    mapped = translate(err) if translate is not None else None
    if mapped is not None:
        return mapped
    # http.client is looked up, not imported: it costs most of ``import cloudstore``, and if no
    # SDK loaded it, none of its errors can occur (socket.timeout is TimeoutError).
    http_client = sys.modules.get("http.client")
    http_errors = (http_client.HTTPException,) if http_client is not None else ()
    if isinstance(err, (ConnectionError, TimeoutError, *http_errors)) or (
        type(err).__module__.split(".")[0] in {"urllib3", "requests"}
    ):
        return ProviderConnectionException(f"connection to the service failed: {type(err).__name__}: {err}")
    return CloudStoreException(f"unexpected error: {type(err).__name__}: {err}")


def _is_retryable(err: BaseException) -> bool:
    return isinstance(err, CloudStoreException) and err.retryable


def _log_retry(state: tenacity.RetryCallState) -> None:
    outcome = state.outcome
    err = outcome.exception() if outcome is not None else None
    log.info("attempt %d failed (%s); retrying", state.attempt_number + 1, type(err).__name__)

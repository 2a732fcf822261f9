"""The shared retry policy (pure logic: no server)."""

from __future__ import annotations

import logging

import pytest

from cloudstore import NotFoundException, ProviderConnectionException, RetryPolicy, ThrottledException
from cloudstore.exceptions import CloudStoreException

QUICK = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.002, deadline=30)


class Flaky:
    """Fails with ``errors`` in turn, then returns ``"done"``; counts its calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def test_success_is_one_call() -> None:
    fn = Flaky()
    assert QUICK.call(fn) == "done" and fn.calls == 1


def test_retryable_failures_are_retried_until_success(caplog: pytest.LogCaptureFixture) -> None:
    fn = Flaky(ThrottledException("slow down"), ProviderConnectionException("reset"))
    with caplog.at_level(logging.INFO, logger="cloudstore.retry"):
        assert QUICK.call(fn) == "done"
    assert fn.calls == 3
    assert [r.getMessage() for r in caplog.records] == [
        "attempt 1 failed (ThrottledException); retrying",
        "attempt 2 failed (ProviderConnectionException); retrying",
    ]


def test_max_attempts_counts_the_first_try() -> None:
    fn = Flaky(*[ProviderConnectionException(f"reset {n}") for n in range(10)])
    with pytest.raises(ProviderConnectionException, match="reset 3"):
        QUICK.call(fn)
    assert fn.calls == 4
    single = Flaky(ProviderConnectionException("reset"))
    with pytest.raises(ProviderConnectionException):
        RetryPolicy(max_attempts=1).call(single)
    assert single.calls == 1


def test_permanent_errors_are_tried_once() -> None:
    fn = Flaky(NotFoundException("gone"))
    with pytest.raises(NotFoundException):
        QUICK.call(fn)
    assert fn.calls == 1


def test_sdk_errors_are_translated_chained_and_retried_by_their_mapping() -> None:
    class SdkError(Exception):
        pass

    def translate(err: BaseException) -> CloudStoreException | None:
        return ThrottledException("busy") if "busy" in str(err) else NotFoundException("missing")

    retried = Flaky(SdkError("busy"))
    assert QUICK.call(retried, translate) == "done" and retried.calls == 2
    original = SdkError("no such key")
    failed = Flaky(original)
    with pytest.raises(NotFoundException) as caught:
        QUICK.call(failed, translate)
    assert failed.calls == 1 and caught.value.__cause__ is original


def test_deadline_bounds_the_retries() -> None:
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.05, max_backoff=0.05, deadline=0.3)
    fn = Flaky(*[ProviderConnectionException("reset") for _ in range(1000)])
    with pytest.raises(ProviderConnectionException):
        policy.call(fn)
    assert 2 <= fn.calls < 1000  # retried, but stopped by the deadline long before the attempt limit


def test_backoff_is_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=1.0)
    for attempt, ceiling in [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (9, 1.0)]:
        waits = [policy.backoff(attempt) for _ in range(200)]
        assert all(0 <= w <= ceiling for w in waits)
        assert max(waits) > ceiling / 2  # the whole range is used, not a fixed wait

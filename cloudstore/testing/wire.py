"""What went over the wire: the requests the lean request paths send through the shared pool.

Providers whose hot requests go over :mod:`cloudstore._http.pool` (S3 first) are observed here,
without any SDK hook and without touching a provider's internals::

    with sent_requests() as sent:
        bucket.objects.create("a").upload(b"x")
    assert [r.method for r in sent] == ["PUT"]
    assert "content-md5" in sent[0].headers

Requests that an SDK sends itself (a provider's control plane) are not seen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cloudstore._http.pool import SentRequest, add_observer, remove_observer


@contextmanager
def observing(callback: Callable[[SentRequest], None]) -> Iterator[None]:
    """Call ``callback`` with each request the pools send inside the block, as it is sent."""
    add_observer(callback)
    try:
        yield
    finally:
        remove_observer(callback)


@contextmanager
def sent_requests() -> Iterator[list[SentRequest]]:
    """The requests the pools send inside the block, in order (every thread's)."""
    sent: list[SentRequest] = []
    with observing(sent.append):
        yield sent


__all__ = ["SentRequest", "observing", "sent_requests"]

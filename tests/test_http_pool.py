"""The shared keep-alive connection pool (:mod:`cloudstore._http.pool`) against a real server.

SeaweedFS's S3 gateway answers an unsigned request with a 403 and an XML body: a real answer
with a body, which is all the pool needs. The fault proxy in front of it tells which client
connection carried each request, and injects the stale-connection faults.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator

import pytest

from cloudstore._http.pool import ConnectionPool, Origin, proxy_for, ssl_context
from cloudstore.config import Timeouts
from cloudstore.exceptions import InvalidParamException, ProviderConnectionException
from tests.conftest import Servers
from tests.support.proxy import FaultProxy
from tests.support.servers.base import RunningServer

QUICK = Timeouts(connect=2.0, read=1.0)


@pytest.fixture(scope="module")
def upstream(servers: Servers) -> RunningServer:
    return servers.get("aws")


@pytest.fixture
def proxy(upstream: RunningServer) -> Iterator[FaultProxy]:
    origin = Origin.from_url(upstream.extra["endpoint_url"])
    with FaultProxy(upstream=(origin.host, origin.port), stall_seconds=3.0) as running:
        yield running


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    made = ConnectionPool(max_connections=2, timeouts=QUICK)
    yield made
    made.close()


def origin_of(proxy: FaultProxy) -> Origin:
    return Origin.from_url(proxy.url)


def connections(proxy: FaultProxy) -> list[int]:
    """The proxy's client connection number of each request, in order."""
    return [record.connection for record in proxy.requests]


def get_all(pool: ConnectionPool, proxy: FaultProxy, target: str = "/") -> bytes:
    """The error body of an unsigned GET, without its (per request) request id."""
    with pool.request("GET", origin_of(proxy), target) as response:
        assert response.status == 403
        return without_request_id(response.read())


def without_request_id(body: bytes) -> bytes:
    return body.partition(b"<RequestId>")[0]


def test_origin_and_tls_settings() -> None:
    assert Origin.from_url("https://s3.example.com/x") == Origin("https", "s3.example.com", 443)
    assert Origin.from_url("http://127.0.0.1:8333").netloc == "127.0.0.1:8333"
    assert Origin.from_url("https://s3.example.com:443").netloc == "s3.example.com"
    with pytest.raises(InvalidParamException):
        Origin.from_url("ftp://example.com")
    assert ssl_context(False).check_hostname is False
    assert ssl_context(True).check_hostname is True


def test_a_read_out_connection_is_reused(pool: ConnectionPool, proxy: FaultProxy) -> None:
    first = get_all(pool, proxy)
    second = get_all(pool, proxy)
    assert b"<Code>" in first and first == second
    with pool.request("HEAD", origin_of(proxy), "/") as head:
        assert head.status >= 400  # no body to read: the connection is free at once
    assert len(set(connections(proxy))) == 1, "one kept-alive connection carried all three requests"
    assert pool.idle_connections(origin_of(proxy)) == 1


def test_headers_are_case_insensitive_and_readinto_fills_the_callers_buffer(
    pool: ConnectionPool, proxy: FaultProxy
) -> None:
    expected = get_all(pool, proxy)
    buffer = bytearray(4096)
    view = memoryview(buffer)
    filled = 0
    with pool.request("GET", origin_of(proxy), "/") as response:
        assert response.headers.get("content-type") == response.headers.get("Content-Type")
        while count := response.readinto(view[filled : filled + 7]):
            filled += count
    assert without_request_id(bytes(buffer[:filled])) == expected
    assert pool.idle_connections(origin_of(proxy)) == 1, "read to the end: the connection went back"


def test_a_connection_with_an_unread_body_is_not_reused(pool: ConnectionPool, proxy: FaultProxy) -> None:
    with pool.request("GET", origin_of(proxy), "/") as response:
        assert response.read(5)
    assert pool.idle_connections(origin_of(proxy)) == 0
    get_all(pool, proxy)
    first, second = connections(proxy)
    assert first != second


def test_at_most_max_connections_are_open(pool: ConnectionPool, proxy: FaultProxy) -> None:
    held = [pool.request("GET", origin_of(proxy), "/") for _ in range(2)]
    # Both connections are checked out with bodies unread: a third request waits, then gives up.
    with pytest.raises(ProviderConnectionException, match="came free"):
        pool.request("GET", origin_of(proxy), "/")
    waiter_done = threading.Event()

    def waiter() -> None:
        get_all(pool, proxy)
        waiter_done.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.2)
    assert not waiter_done.is_set(), "the request waits while every connection is out"
    held[0].read()
    held[0].close()
    thread.join(5)
    assert waiter_done.is_set(), "a returned connection serves the waiting request"
    held[1].close()

    threads = [threading.Thread(target=get_all, args=(pool, proxy)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert proxy.stats["requests"] == 11
    # 2 opened first, 1 replaced the one closed unread: never more than 2 at once.
    assert len(set(connections(proxy))) <= 3
    assert proxy.active_connections <= 2


def test_a_stale_kept_alive_connection_is_resent_once_for_idempotent_requests(
    pool: ConnectionPool, proxy: FaultProxy
) -> None:
    get_all(pool, proxy)
    # The next request on the kept-alive connection is reset before any answer, as when the
    # server closed it while idle: a GET is sent again on a fresh connection.
    proxy.add_rule("reset", reset_at="before", limit=1)
    assert b"<Code>" in get_all(pool, proxy)
    assert proxy.stats["reset"] == 1
    first, lost, resent = connections(proxy)
    assert lost == first and resent != first, "resent once, on a fresh connection"

    # A POST is not idempotent: the failure is the caller's to handle.
    proxy.add_rule("reset", reset_at="before", limit=1)
    with pytest.raises(ProviderConnectionException) as caught:
        pool.request("POST", origin_of(proxy), "/?delete", body=b"<Delete/>")
    assert caught.value.retryable


def test_a_reset_on_a_fresh_connection_is_not_resent(pool: ConnectionPool, proxy: FaultProxy) -> None:
    proxy.add_rule("reset", reset_at="before", limit=1)
    with pytest.raises(ProviderConnectionException):
        pool.request("GET", origin_of(proxy), "/")
    assert proxy.stats["requests"] == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(upstream: RunningServer) -> None:
    origin = Origin.from_url(upstream.extra["endpoint_url"])
    with FaultProxy(upstream=(origin.host, origin.port), idle_timeout=0.3) as proxy:
        pool = ConnectionPool(max_connections=2, timeouts=QUICK)
        get_all(pool, proxy)
        time.sleep(1.0)  # the proxy closes the idle client connection
        assert b"<Code>" in get_all(pool, proxy)
        assert len(set(connections(proxy))) == 2
        pool.close()


def test_a_stalled_answer_times_out_as_a_connection_error(pool: ConnectionPool, proxy: FaultProxy) -> None:
    proxy.add_rule("stall", limit=1)
    with pytest.raises(ProviderConnectionException, match="timed out") as caught:
        pool.request("GET", origin_of(proxy), "/")
    assert caught.value.retryable
    assert pool.idle_connections(origin_of(proxy)) == 0


def test_a_truncated_body_raises_a_connection_error(pool: ConnectionPool, proxy: FaultProxy) -> None:
    proxy.add_rule("truncate", limit=1)
    response = pool.request("GET", origin_of(proxy), "/")
    with pytest.raises(ProviderConnectionException):
        response.read()
    assert pool.idle_connections(origin_of(proxy)) == 0
    assert b"<Code>" in get_all(pool, proxy)


def test_nothing_unreachable_hangs() -> None:
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    with pytest.raises(ProviderConnectionException):
        pool.request("GET", Origin("http", "127.0.0.1", 1), "/")
    # The failed connect gave its slot back.
    with pytest.raises(ProviderConnectionException, match="failed"):
        pool.request("GET", Origin("http", "127.0.0.1", 1), "/")


def test_a_forward_proxy_from_the_environment_is_used(
    upstream: RunningServer, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("no_proxy", "NO_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy.port}")
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    server = Origin.from_url(upstream.extra["endpoint_url"])
    with pool.request("GET", server, "/") as response:
        assert response.status == 403 and b"<Code>" in response.read()
    found = proxy_for(server)
    assert found is not None and found.origin == Origin("http", "127.0.0.1", proxy.port)
    assert found.headers == {"Proxy-Authorization": "Basic " + base64.b64encode(b"user:p@ss").decode()}
    (record,) = proxy.requests
    assert record.target == f"http://{server.netloc}/", "a forward proxy is sent the absolute form"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    bypassing = ConnectionPool(max_connections=1, timeouts=QUICK)
    with bypassing.request("GET", server, "/") as response:
        response.read()
    assert len(proxy.requests) == 1, "NO_PROXY is honoured"
    pool.close()
    bypassing.close()

"""The fault proxy itself: relaying, each fault kind, filters, limits, and boto3 signatures through it."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.support.proxy import FaultProxy, FaultRule
from tests.support.servers.base import free_port

_PATTERN = bytes(range(256))


def payload(size: int) -> bytes:
    return (_PATTERN * (size // len(_PATTERN) + 1))[:size]


class _Handler(BaseHTTPRequestHandler):
    """GET /bytes/N (Content-Length), /chunked/N, /close/N (until close), /gated; PUT/POST echo an MD5."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # as real servers do; else small responses wait for delayed ACKs
    server: _Upstream

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _note(self) -> None:
        with self.server.lock:
            self.server.seen.append((self.command, self.path, self.headers.get("Host", "")))
            self.server.client_ports.add(self.client_address[1])

    def do_HEAD(self) -> None:
        self._note()
        size = int(self.path.rsplit("/", 1)[1])
        self.send_response(200)
        self.send_header("Content-Length", str(size))
        self.end_headers()

    def do_GET(self) -> None:
        self._note()
        kind, _, size_text = self.path.strip("/").partition("/")
        if kind == "gated":
            # Half the body, then wait until the test saw it: proves the proxy streams.
            self.send_response(200)
            self.send_header("Content-Length", str(2 << 20))
            self.end_headers()
            self.wfile.write(payload(1 << 20))
            self.wfile.flush()
            self.server.gate.wait(10)
            self.wfile.write(payload(1 << 20))
            return
        body = payload(int(size_text))
        self.send_response(200)
        if kind == "chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(body), 65536):
                piece = body[start : start + 65536]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\n\r\n")
        elif kind == "drop":
            # Keep-alive announced, but the connection is closed right after: an idle-timeout close.
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        elif kind == "close":
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_PUT(self) -> None:
        self._note()
        digest, length = hashlib.md5(), 0
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""):
                        pass
                    break
                chunk = self.rfile.read(size)
                self.rfile.read(2)
                digest.update(chunk)
                length += len(chunk)
        else:
            remaining = int(self.headers.get("Content-Length", "0"))
            while remaining:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                digest.update(chunk)
                length += len(chunk)
                remaining -= len(chunk)
        body = json.dumps({"md5": digest.hexdigest(), "length": length}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_PUT


class _Upstream(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.seen: list[tuple[str, str, str]] = []
        self.client_ports: set[int] = set()
        self.gate = threading.Event()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", int(self.server_address[1]))

    def reset(self) -> None:
        with self.lock:
            self.seen.clear()
            self.client_ports.clear()
        self.gate.clear()


@pytest.fixture(scope="module")
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def origin(upstream: _Upstream) -> _Upstream:
    upstream.reset()
    return upstream


def _proxy_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("faultproxy-")]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    yield
    deadline = time.monotonic() + 5
    while _proxy_threads() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _proxy_threads() == []


def connect(proxy: FaultProxy, timeout: float = 5.0) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=timeout)


def get(conn: http.client.HTTPConnection, path: str, method: str = "GET") -> tuple[int, bytes]:
    conn.request(method, path)
    response = conn.getresponse()
    return response.status, response.read()


# -- relaying ---------------------------------------------------------------------------------


def test_relays_every_framing_on_one_kept_alive_connection(origin: _Upstream) -> None:
    with FaultProxy(origin.address) as proxy:
        conn = connect(proxy)
        assert get(conn, "/bytes/100000") == (200, payload(100000))
        assert get(conn, "/chunked/300000") == (200, payload(300000))
        assert get(conn, "/bytes/0") == (200, b"")
        assert get(conn, "/bytes/5000", "HEAD") == (200, b"")
        body = payload(700001)
        conn.request("PUT", "/put", body=body)
        assert json.loads(conn.getresponse().read()) == {"md5": hashlib.md5(body).hexdigest(), "length": len(body)}
        conn.request("PUT", "/put", body=iter([body[:1000], body[1000:]]), encode_chunked=True)
        assert json.loads(conn.getresponse().read()) == {"md5": hashlib.md5(body).hexdigest(), "length": len(body)}
        assert get(conn, "/close/12345") == (200, payload(12345))
        conn.close()
        stats = proxy.stats
    assert stats["connections"] == 1
    assert stats["requests"] == stats["forwarded"] == 7
    assert stats["faults"] == 0
    # The upstream saw the client's Host header untouched, and one connection for all requests.
    assert {host for _, _, host in origin.seen} == {f"127.0.0.1:{proxy.port}"}
    assert len(origin.client_ports) == 1


def test_reconnects_when_the_upstream_dropped_an_idle_connection(origin: _Upstream) -> None:
    with FaultProxy(origin.address) as proxy:
        conn = connect(proxy)
        assert get(conn, "/drop/10") == (200, payload(10))
        time.sleep(0.2)  # let the upstream's FIN arrive
        assert get(conn, "/bytes/10") == (200, payload(10))
        conn.close()
        assert proxy.stats["connections"] == 1
    assert len(origin.client_ports) == 2


def test_streams_a_body_before_the_upstream_finished_sending_it(origin: _Upstream) -> None:
    with FaultProxy(origin.address) as proxy:
        conn = connect(proxy, timeout=5)
        conn.request("GET", "/gated")
        response = conn.getresponse()
        first = response.read(1 << 20)  # would time out if the proxy buffered the whole body
        origin.gate.set()
        rest = response.read()
        assert first + rest == payload(1 << 20) * 2
        conn.close()


def test_large_transfers_both_ways(origin: _Upstream) -> None:
    size = 48 << 20
    with FaultProxy(origin.address) as proxy:
        conn = connect(proxy, timeout=30)
        status, body = get(conn, f"/bytes/{size}")
        assert status == 200 and len(body) == size and body == payload(size)
        conn.request("PUT", "/put", body=body)
        assert json.loads(conn.getresponse().read())["md5"] == hashlib.md5(body).hexdigest()
        conn.close()


def test_expect_100_continue_is_relayed(origin: _Upstream) -> None:
    body = payload(5000)
    with FaultProxy(origin.address) as proxy, socket.create_connection(proxy.address, timeout=5) as sock:
        sock.sendall(b"PUT /put HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        reply = _read_response(sock)
    assert reply.startswith(b"HTTP/1.1 200") and hashlib.md5(body).hexdigest().encode() in reply


def _read_response(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(
        next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


# -- each fault kind --------------------------------------------------------------------------


def test_reset_before_forwarding(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"reset": 1.0}, reset_at="before") as proxy:
        conn = connect(proxy)
        with pytest.raises(ConnectionResetError):
            get(conn, "/bytes/1000")
        conn.close()
        stats = proxy.stats
    assert origin.seen == []
    assert stats["reset"] == stats["reset_before"] == stats["faults"] == 1


def test_reset_before_forwarding_an_upload(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"reset": 1.0}, reset_at="before") as proxy:
        conn = connect(proxy)
        with pytest.raises(ConnectionResetError):
            conn.request("PUT", "/put", body=payload(8 << 20))
            conn.getresponse().read()
        conn.close()
    assert origin.seen == []


def test_reset_in_the_middle_of_a_response_body(origin: _Upstream) -> None:
    size = 4 << 20
    with FaultProxy(origin.address, {"reset": 1.0}, reset_at="mid") as proxy:
        conn = connect(proxy)
        conn.request("GET", f"/bytes/{size}")
        response = conn.getresponse()
        assert response.status == 200
        received = b""
        with pytest.raises((ConnectionResetError, http.client.IncompleteRead)):
            while chunk := response.read(65536):
                received += chunk
            raise AssertionError("body complete despite the reset")
        conn.close()
        stats = proxy.stats
    assert len(received) < size
    assert received == payload(size)[: len(received)]
    assert [m for m, _, _ in origin.seen] == ["GET"]
    assert stats["reset"] == stats["reset_mid"] == 1


def test_reset_of_a_response_without_body_happens_after_forwarding(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"reset": 1.0}, reset_at="mid") as proxy:
        conn = connect(proxy)
        with pytest.raises(ConnectionResetError):
            get(conn, "/bytes/10", "HEAD")
        conn.close()
    assert [m for m, _, _ in origin.seen] == ["HEAD"]


@pytest.mark.parametrize(("kind", "code"), [("503", "ServiceUnavailable"), ("slowdown", "SlowDown")])
def test_503_answers_without_forwarding_and_keeps_the_connection(origin: _Upstream, kind: str, code: str) -> None:
    with FaultProxy(origin.address, {kind: 1.0}) as proxy:
        conn = connect(proxy)
        status, body = get(conn, "/bytes/10")
        assert status == 503
        assert f"<Code>{code}</Code>".encode() in body
        conn.request("PUT", "/put", body=payload(3 << 20))  # the body is read and dropped
        response = conn.getresponse()
        assert response.status == 503 and f"<Code>{code}</Code>".encode() in response.read()
        proxy.set_rates({})
        assert get(conn, "/bytes/10") == (200, payload(10))
        conn.close()
        stats = proxy.stats
    assert stats[kind] == stats["faults"] == 2
    assert stats["connections"] == 1
    assert [m for m, _, _ in origin.seen] == ["GET"]


def test_503_to_expect_100_continue_answers_at_once_and_closes(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"503": 1.0}) as proxy, socket.create_connection(proxy.address, timeout=5) as sock:
        sock.sendall(b"PUT /put HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\nExpect: 100-continue\r\n\r\n")
        reply = _read_response(sock)
        assert reply.startswith(b"HTTP/1.1 503") and b"Connection: close" in reply
        assert sock.recv(10) == b""  # closed, without waiting for the body
    assert origin.seen == []


def test_stall_delays_the_response(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"stall": 1.0}, stall_seconds=0.6) as proxy:
        conn = connect(proxy, timeout=0.2)
        with pytest.raises(TimeoutError):
            get(conn, "/bytes/10")
        conn.close()
        conn = connect(proxy, timeout=5)
        started = time.monotonic()
        assert get(conn, "/bytes/10") == (200, payload(10))
        assert time.monotonic() - started >= 0.6
        conn.close()
        stats = proxy.stats
    assert stats["stall"] == 2


@pytest.mark.parametrize("path", ["/bytes/100001", "/chunked/300000", "/close/5000"])
def test_flip_changes_exactly_one_byte(origin: _Upstream, path: str) -> None:
    size = int(path.rsplit("/", 1)[1])
    with FaultProxy(origin.address, {"flip": 1.0}) as proxy:
        conn = connect(proxy)
        status, body = get(conn, path)
        conn.close()
        stats = proxy.stats
    expected = payload(size)
    assert status == 200 and len(body) == size
    differences = [i for i in range(size) if body[i] != expected[i]]
    assert len(differences) == 1
    if path.startswith("/bytes"):
        assert differences == [size // 2]
    assert stats["flip"] == 1


def test_flip_leaves_empty_bodies_alone(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"flip": 1.0}) as proxy:
        conn = connect(proxy)
        assert get(conn, "/bytes/0") == (200, b"")
        assert get(conn, "/bytes/7", "HEAD") == (200, b"")
        conn.close()
        assert proxy.stats["flip"] == 0


def test_reset_after_forwarding_lets_the_upstream_act_but_sends_nothing(origin: _Upstream) -> None:
    body = payload(70000)
    with FaultProxy(origin.address, {"reset": 1.0}, reset_at="after") as proxy:
        with socket.create_connection(proxy.address, timeout=5) as sock:
            sock.sendall(b"PUT /put HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n" + body)
            with pytest.raises(ConnectionResetError):
                if sock.recv(100) == b"":
                    raise ConnectionResetError
        stats = proxy.stats
    assert [m for m, _, _ in origin.seen] == ["PUT"]  # the upstream got (and acted on) the request
    assert stats["reset"] == stats["reset_after"] == 1


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_flip_request_changes_one_byte_of_the_forwarded_body(origin: _Upstream, chunked: bool) -> None:
    body = payload(300001)
    expected = bytearray(body)
    with FaultProxy(origin.address, {"flip_request": 1.0}) as proxy:
        conn = connect(proxy)
        if chunked:
            conn.request("PUT", "/put", body=iter([body[:100000], body[100000:]]), encode_chunked=True)
            expected[50000] ^= 0xFF  # the middle of the first chunk
        else:
            conn.request("PUT", "/put", body=body)
            expected[len(body) // 2] ^= 0xFF
        received = json.loads(conn.getresponse().read())
        assert get(conn, "/bytes/10") == (200, payload(10))  # no body: nothing to flip
        conn.close()
        stats = proxy.stats
    assert received == {"md5": hashlib.md5(expected).hexdigest(), "length": len(body)}
    assert stats["flip_request"] == stats["faults"] == 1


@pytest.mark.parametrize("path", ["/bytes/100000", "/chunked/300000"])
def test_truncate_sends_the_head_and_part_of_the_body_then_closes(origin: _Upstream, path: str) -> None:
    size = int(path.rsplit("/", 1)[1])
    with FaultProxy(origin.address, {"truncate": 1.0}) as proxy:
        conn = connect(proxy)
        conn.request("GET", path)
        response = conn.getresponse()
        assert response.status == 200
        partial = b""
        # Small reads: http.client drops a partial chunk's bytes, and ends a short
        # Content-Length body read in pieces quietly.
        with contextlib.suppress(http.client.IncompleteRead):
            while piece := response.read(1000):
                partial += piece
        conn.close()
        stats = proxy.stats
    assert 0 < len(partial) < size and partial == payload(size)[: len(partial)]
    assert stats["truncate"] == stats["faults"] == 1


_THROTTLES = {
    "s3": (503, "application/xml", b"<Code>SlowDown</Code>"),
    "azure": (503, "application/xml", b"<Code>ServerBusy</Code>"),
    "gcs": (429, "application/json", b'"reason": "rateLimitExceeded"'),
    "swift": (498, "text/plain", b"Slow down"),
}


@pytest.mark.parametrize("dialect", sorted(_THROTTLES))
def test_throttle_answers_in_the_clouds_own_words(origin: _Upstream, dialect: Any) -> None:
    status, content_type, marker = _THROTTLES[dialect]
    with FaultProxy(origin.address, {"throttle": 1.0}, dialect=dialect) as proxy:
        conn = connect(proxy)
        conn.request("GET", "/bytes/10")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        stats = proxy.stats
    assert response.status == status and marker in body
    assert response.headers["Content-Type"].startswith(content_type)
    if dialect == "azure":
        assert response.headers["x-ms-error-code"] == "ServerBusy"
    if dialect == "gcs":
        assert json.loads(body)["error"]["code"] == 429
    assert stats["throttle"] == 1 and origin.seen == []


@pytest.mark.parametrize(
    ("dialect", "status", "marker"),
    [
        ("azure", 403, b"<Code>AuthorizationFailure</Code>"),
        ("azure", 503, b"<Code>ServerBusy</Code>"),
        ("gcs", 403, b'"reason": "forbidden"'),
        ("gcs", 503, b'"reason": "backendError"'),
        ("swift", 403, b"Forbidden"),
        ("local", 503, b"Service Unavailable"),
    ],
)
def test_synthetic_statuses_follow_the_dialect(origin: _Upstream, dialect: Any, status: int, marker: bytes) -> None:
    with FaultProxy(origin.address, {str(status): 1.0}, dialect=dialect) as proxy:
        conn = connect(proxy)
        got, body = get(conn, "/bytes/10")
        conn.close()
    assert got == status and marker in body


def test_blackhole_never_answers_and_stops_cleanly(origin: _Upstream) -> None:
    with FaultProxy(origin.address) as proxy:
        proxy.add_rule("blackhole", path="^/put")
        conn = connect(proxy, timeout=0.5)
        with pytest.raises(TimeoutError):
            conn.request("PUT", "/put", body=payload(200000))  # the body is read: the wait is for an answer
            conn.getresponse()
        conn.close()
        waiting = connect(proxy, timeout=10)
        waiting.request("GET", "/put/forever")
        time.sleep(0.2)
        assert get(connect(proxy), "/bytes/10") == (200, payload(10))
        stats = proxy.stats
    waiting.close()
    assert stats["blackhole"] == 2
    assert [p for _, p, _ in origin.seen] == ["/bytes/10"]


def test_unknown_dialect_is_refused(origin: _Upstream) -> None:
    with pytest.raises(ValueError):
        FaultProxy(origin.address, dialect="ftp")  # type: ignore[arg-type]


def test_permanent_status_for_one_path(origin: _Upstream) -> None:
    with FaultProxy(origin.address) as proxy:
        proxy.add_rule("status", path=r"^/bytes/403\b", status=403)
        conn = connect(proxy)
        status, body = get(conn, "/bytes/403")
        assert status == 403 and b"<Code>AccessDenied</Code>" in body
        assert get(conn, "/bytes/10") == (200, payload(10))
        assert get(conn, "/bytes/403")[0] == 403
        conn.close()
        assert proxy.count_requests("GET", r"^/bytes/403\b") == 2
        assert proxy.stats["status"] == 2
        assert [r.fault for r in proxy.requests] == ["status", None, "status"]
        # The upstream's status is recorded for the forwarded request only.
        assert [r.status for r in proxy.requests] == [None, 200, None]
    assert [p for _, p, _ in origin.seen] == ["/bytes/10"]


def test_error_200_and_plain_status_kinds(origin: _Upstream) -> None:
    with FaultProxy(origin.address) as proxy:
        proxy.add_rule("error200", methods=["POST"])
        proxy.add_rule("500", methods=["DELETE"], limit=1)
        conn = connect(proxy)
        conn.request("POST", "/complete", body=b"<x/>")
        response = conn.getresponse()
        assert response.status == 200 and b"<Code>InternalError</Code>" in response.read()
        assert get(conn, "/bytes/1", "DELETE")[0] == 500
        assert get(conn, "/bytes/1", "DELETE")[0] == 501  # limit reached: forwarded (http.server: 501)
        conn.close()


def test_method_and_path_filters(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"503": 1.0}, methods=["GET"], path="^/chunked/") as proxy:
        conn = connect(proxy)
        assert get(conn, "/chunked/10")[0] == 503
        assert get(conn, "/bytes/10") == (200, payload(10))
        conn.request("PUT", "/chunked/10", body=b"abc")
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["length"] == 3
        conn.close()


def test_rates_are_drawn_per_request_and_counted(origin: _Upstream) -> None:
    rates = {"503": 0.2, "slowdown": 0.1, "flip": 0.1}
    outcomes: list[str] = []
    with FaultProxy(origin.address, rates, seed=1234) as proxy:
        conn = connect(proxy)
        for _ in range(300):
            status, body = get(conn, "/bytes/64")
            if status == 503:
                outcomes.append("slowdown" if b"SlowDown" in body else "503")
            else:
                outcomes.append("flip" if body != payload(64) else "ok")
        conn.close()
        stats = proxy.stats
    for kind, rate in rates.items():
        assert stats[kind] == outcomes.count(kind)
        assert abs(outcomes.count(kind) - 300 * rate) < 30
    assert stats["requests"] == 300
    assert stats["faults"] == 300 - outcomes.count("ok")
    assert stats["forwarded"] == 300 - outcomes.count("503") - outcomes.count("slowdown")


def test_kinds_switch_off_and_on_at_runtime(origin: _Upstream) -> None:
    with FaultProxy(origin.address, {"503": 1.0}) as proxy:
        conn = connect(proxy)
        proxy.disable("503")
        assert get(conn, "/bytes/3")[0] == 200
        proxy.enable("503")
        assert get(conn, "/bytes/3")[0] == 503
        with proxy.paused():
            assert get(conn, "/bytes/3")[0] == 200
        proxy.clear_faults()
        assert get(conn, "/bytes/3")[0] == 200
        conn.close()
        assert proxy.stats["503"] == 1


def test_rates_must_be_valid(origin: _Upstream) -> None:
    with pytest.raises(ValueError):
        FaultProxy(origin.address, {"503": 0.7, "reset": 0.5})
    with pytest.raises(ValueError):
        FaultProxy(origin.address, {"teapot": 0.1})
    with pytest.raises(ValueError):
        FaultProxy(("192.0.2.1", 80))


# -- robustness -------------------------------------------------------------------------------


def test_connection_limit_queues_extra_clients(origin: _Upstream) -> None:
    with FaultProxy(origin.address, max_connections=2) as proxy:
        first, second, third = connect(proxy), connect(proxy), connect(proxy, timeout=0.5)
        assert get(first, "/bytes/5")[0] == 200
        assert get(second, "/bytes/5")[0] == 200
        with pytest.raises(TimeoutError):
            get(third, "/bytes/5")  # accepted by the kernel, not served while two are open
        third.close()
        first.close()
        late = connect(proxy)
        assert get(late, "/bytes/5")[0] == 200
        assert proxy.active_connections <= 2
        for conn in (second, late):
            conn.close()


def test_stop_closes_idle_and_busy_connections(origin: _Upstream) -> None:
    proxy = FaultProxy(origin.address, {"stall": 1.0}, stall_seconds=30).start()
    idle = connect(proxy)
    with proxy.paused():
        assert get(idle, "/bytes/5")[0] == 200
    stalled = connect(proxy, timeout=10)
    stalled.request("GET", "/bytes/5")
    time.sleep(0.2)
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 30  # stop did not wait for the 30 s stall to end
    assert _proxy_threads() == []
    idle.close()
    stalled.close()


def test_upstream_down_gives_502() -> None:
    with FaultProxy(("127.0.0.1", free_port())) as proxy:
        conn = connect(proxy)
        status, body = get(conn, "/x")
        conn.close()
        assert status == 502 and b"BadGateway" in body
        assert proxy.stats["upstream_errors"] == 1


def test_survives_many_faulty_parallel_clients(origin: _Upstream) -> None:
    rates = {"reset": 0.1, "503": 0.1, "flip": 0.05, "stall": 0.02}
    results: list[str] = []
    lock = threading.Lock()

    def client(number: int) -> None:
        conn = connect(proxy, timeout=5)
        for i in range(25):
            size = (number * 7919 + i * 104729) % 300000
            try:
                status, body = get(conn, f"/bytes/{size}")
                outcome = "ok" if status == 200 and body == payload(size) else f"{status}"
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = connect(proxy, timeout=5)
                outcome = "error"
            with lock:
                results.append(outcome)
        conn.close()

    with FaultProxy(origin.address, rates, seed=5, stall_seconds=0.05) as proxy:
        threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        stats = proxy.stats
    assert len(results) == 200
    assert stats["requests"] == 200
    assert results.count("ok") >= 200 - stats["faults"]
    assert results.count("error") == stats["reset"]


# -- boto3 through the proxy to SeaweedFS -------------------------------------------------------


@pytest.fixture(scope="module")
def seaweedfs(servers: Any) -> tuple[int, str, str]:
    """The session's SeaweedFS S3 server: (port, access key, secret key)."""
    extra = servers.get("aws").extra
    return int(extra["port"]), str(extra["admin_access_key"]), str(extra["admin_secret_key"])


def _s3_client(endpoint: str, seaweedfs: tuple[int, str, str], **options: Any) -> Any:
    import boto3
    from botocore.config import Config

    _, access_key, secret_key = seaweedfs
    config = Config(signature_version="s3v4", s3={"addressing_style": "path"}, **options)
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=config,
    )


@pytest.fixture(scope="module")
def s3_bucket(seaweedfs: tuple[int, str, str]) -> Iterator[str]:
    """A fresh bucket on the shared server, emptied and deleted afterwards (directly, not via a proxy)."""
    name = f"proxy-check-{uuid.uuid4().hex[:12]}"
    s3 = _s3_client(f"http://127.0.0.1:{seaweedfs[0]}", seaweedfs)
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for item in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=item["Key"])
    s3.delete_bucket(Bucket=name)


def test_sigv4_signatures_survive_the_proxy(seaweedfs: tuple[int, str, str], s3_bucket: str) -> None:
    import requests

    with FaultProxy(("127.0.0.1", seaweedfs[0])) as proxy:
        s3 = _s3_client(proxy.url, seaweedfs, retries={"max_attempts": 1})
        body = payload(3 << 20)
        s3.put_object(Bucket=s3_bucket, Key="dir/object.bin", Body=body)
        assert s3.get_object(Bucket=s3_bucket, Key="dir/object.bin")["Body"].read() == body
        url = s3.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "dir/object.bin"})
        assert url.startswith(proxy.url)
        assert requests.get(url, timeout=10).content == body
        # A tampered presigned URL is still rejected through the proxy: the upstream really checks.
        assert requests.get(url.replace("object.bin", "other.bin"), timeout=10).status_code == 403
        stats = proxy.stats
    assert stats["forwarded"] == stats["requests"] == 4
    assert stats["faults"] == 0


def test_boto3_rides_through_injected_faults(
    seaweedfs: tuple[int, str, str], s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.retries.standard import ExponentialBackoff

    # botocore's backoff (up to seconds, unseeded jitter) would dominate this test's time.
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.01)
    rates = {"reset": 0.1, "503": 0.1, "slowdown": 0.05}
    with FaultProxy(("127.0.0.1", seaweedfs[0]), rates, seed=11) as proxy:
        s3 = _s3_client(proxy.url, seaweedfs, retries={"max_attempts": 20, "mode": "standard"})
        for number in range(15):
            body = payload(number * 4099)
            s3.put_object(Bucket=s3_bucket, Key=f"faulty/{number}", Body=body)
            # download_fileobj, unlike get_object().read(), also retries a body cut by a reset.
            received = io.BytesIO()
            s3.download_fileobj(s3_bucket, f"faulty/{number}", received)
            assert received.getvalue() == body
        stats = proxy.stats
    assert stats["reset"] > 0 and stats["503"] > 0 and stats["slowdown"] > 0
    # Each fault cost exactly one extra request (download_fileobj adds a HEAD per object).
    assert stats["requests"] == 45 + stats["faults"]


def test_once_per_path_fires_at_most_once_for_each_path() -> None:
    rule = FaultRule("flip", 1.0, once_per_path=True)
    assert rule.applies_to("GET", "/b/key?partNumber=1")
    rule.fired_paths.add("/b/key")
    assert not rule.applies_to("GET", "/b/key?partNumber=2")
    assert rule.applies_to("GET", "/b/other")

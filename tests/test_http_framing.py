"""The pool's own HTTP/1.1 framing (:mod:`cloudstore._http.framing`) on the answers real servers
send less often than the object stores here do: chunked bodies with extensions and trailers,
interim 1xx answers, close-delimited and HTTP/1.0 answers, folded header lines, broken framing;
and the TLS and ``CONNECT`` tunnel paths.

The server is a scripted socket server (each test gives the exact bytes of its answers): the
object stores' own framing is covered by every provider suite, which all run over this pool.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudstore._http.framing import Headers, request_head
from cloudstore._http.pool import ConnectionPool, Origin, ssl_context
from cloudstore.config import Timeouts
from cloudstore.exceptions import InvalidParamException, ProviderConnectionException
from tests.support.servers.base import self_signed_certificate

QUICK = Timeouts(connect=2.0, read=2.0)


class ScriptedServer:
    """Answers the requests of each connection with the next scripted answers (raw bytes), and
    records every request head it read. An answer of ``None`` closes the connection instead."""

    def __init__(self, answers: list[bytes | None], tls: ssl.SSLContext | None = None, tunnel: bool = False) -> None:
        self.answers = list(answers)
        self.heads: list[bytes] = []
        self.connections = 0
        self._tls = tls
        self._tunnel = tunnel
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(5)
        try:
            if self._tunnel:
                self.heads.append(_read_head(conn))
                conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            if self._tls is not None:
                conn = self._tls.wrap_socket(conn, server_side=True)
            while self.answers:
                head = _read_head(conn)
                if not head:
                    return
                self.heads.append(head)
                answer = self.answers.pop(0)
                if answer is None:
                    return
                conn.sendall(answer)
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def close(self) -> None:
        self._listener.close()


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        piece = conn.recv(65536)
        if not piece:
            return data
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


@pytest.fixture
def serve() -> Iterator[type[ScriptedServer]]:
    started: list[ScriptedServer] = []

    class Started(ScriptedServer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            started.append(self)

    yield Started
    for server in started:
        server.close()


def local(server: ScriptedServer, scheme: str = "http") -> Origin:
    return Origin(scheme, "127.0.0.1", server.port)


def chunked(*chunks: bytes, extension: bytes = b"", trailer: bytes = b"") -> bytes:
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(chunk), extension, chunk) for chunk in chunks)
    return b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body + b"0\r\n" + trailer + b"\r\n"


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_a_chunked_body_is_read_whole_and_the_connection_reused(serve: type[ScriptedServer]) -> None:
    server = serve([chunked(b"hello ", b"chunked ", b"world", extension=b";name=x", trailer=b"X-Sum: 1\r\n"), OK])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    with pool.request("GET", local(server), "/a") as response:
        assert response.read() == b"hello chunked world"
    with pool.request("GET", local(server), "/b") as response:
        assert response.read() == b"ok"
    assert server.connections == 1, "the chunked answer was read to its end: the connection was kept"


def test_a_chunked_body_read_in_pieces_and_into_a_buffer(serve: type[ScriptedServer]) -> None:
    server = serve([chunked(b"abc", b"defgh", b"ij"), chunked(b"abc", b"defgh", b"ij")])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    response = pool.request("GET", local(server), "/")
    assert [response.read(4), response.read(4), response.read(4), response.read(4)] == [b"abcd", b"efgh", b"ij", b""]
    buffer = bytearray(6)
    response = pool.request("GET", local(server), "/")
    assert response.readinto(buffer) == 6 and buffer == b"abcdef"
    assert response.readinto(buffer) == 4 and buffer[:4] == b"ghij"
    assert response.readinto(buffer) == 0
    assert pool.idle_connections(local(server)) == 1


def test_interim_answers_are_read_past_and_folded_lines_joined(serve: type[ScriptedServer]) -> None:
    answer = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 201 Created\r\nX-Folded: first\r\n  second\r\nX-Twice: 1\r\nx-twice: 2\r\nContent-Length: 0\r\n\r\n"
    )
    server = serve([answer])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    with pool.request("PUT", local(server), "/", body=b"data") as response:
        assert (response.status, response.reason) == (201, "Created")
        assert response.headers.get("x-folded") == "first second"
        assert response.headers["X-TWICE"] == "1" and response.headers.get_all("x-twice") == ["1", "2"]
        assert "x-twice" in response.headers and "x-none" not in response.headers
        assert response.headers.get("x-none", "default") == "default"


def test_a_body_until_close_and_http10_answers_do_not_keep_the_connection(serve: type[ScriptedServer]) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\n\r\nto the end"])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    with pool.request("GET", local(server), "/") as response:
        assert response.read() == b"to the end"
    assert pool.idle_connections(local(server)) == 0
    server = serve([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"])
    with pool.request("GET", local(server), "/") as response:
        assert response.read() == b"ok"
    assert pool.idle_connections(local(server)) == 0, "HTTP/1.0 without keep-alive closes"
    server = serve([b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok"])
    with pool.request("GET", local(server), "/") as response:
        assert response.read() == b"ok"
    assert pool.idle_connections(local(server)) == 0, "Connection: close is honoured"


def test_head_and_204_answers_have_no_body_whatever_they_say(serve: type[ScriptedServer]) -> None:
    server = serve([b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", b"HTTP/1.1 204 No Content\r\n\r\n", OK])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    with pool.request("HEAD", local(server), "/") as response:
        assert response.headers.get("content-length") == "1000" and response.read() == b""
    with pool.request("DELETE", local(server), "/") as response:
        assert response.status == 204 and response.read() == b""
    with pool.request("GET", local(server), "/") as response:
        assert response.read() == b"ok"
    assert server.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"SMTP ready\r\n\r\n", id="no-status-line"),
        pytest.param(b"HTTP/1.1 2OO OK\r\n\r\n", id="bad-status"),
        pytest.param(b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n", id="bad-header"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", id="two-lengths"),
        pytest.param(b"HTTP/1.1 200 OK\r\nX: " + b"y" * 70000 + b"\r\n\r\n", id="long-line"),
        pytest.param(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", id="too-many-headers"),
    ],
)
def test_a_broken_answer_head_is_a_connection_error(serve: type[ScriptedServer], answer: bytes) -> None:
    server = serve([answer])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    with pytest.raises(ProviderConnectionException):
        pool.request("GET", local(server), "/")
    assert pool.idle_connections(local(server)) == 0


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n", id="bad-size"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", id="cut-chunk"),
        pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n", id="no-crlf"),
        pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", id="cut-body"),
    ],
)
def test_a_broken_body_is_a_connection_error(serve: type[ScriptedServer], answer: bytes) -> None:
    server = serve([answer])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    response = pool.request("GET", local(server), "/")
    with pytest.raises(ProviderConnectionException):
        response.read()
    assert pool.idle_connections(local(server)) == 0


def test_the_request_is_sent_as_given_with_its_framing_headers(serve: type[ScriptedServer]) -> None:
    server = serve([OK, OK, OK])
    pool = ConnectionPool(max_connections=1, timeouts=QUICK)
    pool.request("PUT", local(server), "/k?x=1", {"X-Meta": "v"}, body=(b"ab", memoryview(b"cde"))).read()
    pool.request("POST", local(server), "/k").read()
    pool.request("GET", local(server), "/k", {"Host": "virtual.example"}).read()
    put, post, get = (head.decode("latin-1").split("\r\n") for head in server.heads)
    assert put[0] == "PUT /k?x=1 HTTP/1.1"
    assert {"X-Meta: v", "Content-Length: 5", f"Host: 127.0.0.1:{server.port}", "Accept-Encoding: identity"} <= set(put)
    assert "Content-Length: 0" in post, "a body method without a body says so"
    assert "Host: virtual.example" in get and not any(line.startswith("Content-Length") for line in get)


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a b", {}),
        ("/a\r\nX: y", {}),
        ("/", {"X-Meta": "value\r\nX-Forged: yes"}),
        ("/", {"X-Meta": "line\nbreak"}),
        ("/", {"X-Meta": "\u20ac not latin-1"}),
    ],
)
def test_a_request_that_would_forge_its_own_head_is_refused(target: str, headers: dict[str, str]) -> None:
    with pytest.raises(InvalidParamException):
        request_head("GET", target, headers)


def test_headers_repr_shows_names_only() -> None:
    headers = Headers([("Set-Cookie", "session=secret"), ("ETag", '"x"')])
    assert "secret" not in repr(headers) and "set-cookie" in repr(headers)
    assert headers.items() == [("Set-Cookie", "session=secret"), ("ETag", '"x"')] and len(headers) == 2


def test_prefixed_headers_keep_the_rest_of_their_names() -> None:
    headers = Headers([("X-Amz-Meta-Owner", "a"), ("x-amz-meta-kind", "b"), ("X-Amz-Date", "c")])
    assert headers.prefixed("x-amz-meta-") == {"Owner": "a", "kind": "b"}
    assert headers.prefixed("x-ms-meta-") == {}


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, ssl.SSLContext]:
    cert, key = self_signed_certificate(tmp_path, "scripted")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return cert, context


def test_https_verifies_the_server_certificate(
    serve: type[ScriptedServer], certificate: tuple[Path, ssl.SSLContext]
) -> None:
    cert, server_context = certificate
    server = serve([OK, OK], tls=server_context)
    trusting = ConnectionPool(max_connections=1, timeouts=QUICK, ssl_context=ssl_context(str(cert)))
    with trusting.request("GET", local(server, "https"), "/") as response:
        assert response.read() == b"ok"
    with trusting.request("GET", local(server, "https"), "/") as response:
        assert response.read() == b"ok"
    assert server.connections == 1, "the TLS connection was kept alive"
    untrusting = ConnectionPool(max_connections=1, timeouts=QUICK, ssl_context=ssl_context(True))
    with pytest.raises(ProviderConnectionException, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.request("GET", local(server, "https"), "/")


def test_https_through_a_forward_proxy_uses_a_connect_tunnel(
    serve: type[ScriptedServer], certificate: tuple[Path, ssl.SSLContext], monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, server_context = certificate
    # The scripted server is the proxy and, inside the tunnel, the TLS server itself.
    proxy = serve([OK], tls=server_context, tunnel=True)
    for name in ("no_proxy", "NO_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:pw@127.0.0.1:{proxy.port}")
    pool = ConnectionPool(max_connections=1, timeouts=QUICK, ssl_context=ssl_context(str(cert)))
    with pool.request("GET", Origin("https", "127.0.0.1", 8443), "/through") as response:
        assert response.read() == b"ok"
    connect, inner = (head.decode("latin-1").split("\r\n") for head in proxy.heads)
    assert connect[0] == "CONNECT 127.0.0.1:8443 HTTP/1.1"
    assert "Proxy-Authorization: Basic dXNlcjpwdw==" in connect
    assert inner[0] == "GET /through HTTP/1.1" and not any(line.startswith("Proxy-") for line in inner)

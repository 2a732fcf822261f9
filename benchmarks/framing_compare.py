"""Client CPU of reading one small answer's head and body: ``http.client``, ``h11`` and the pool's
own framing (``cloudstore._http.framing``), on the same canned S3 GET answer (12 header fields, a
16 KiB body) from memory, so only the parsing is timed. Why the pool frames HTTP/1.1 itself
(``benchmarks/NOTES.md``, "The pool's own HTTP/1.1 framing")::

    .venv-bench/bin/python benchmarks/framing_compare.py [--count N]
"""

from __future__ import annotations

import argparse
import http.client
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cloudstore._http import framing

BODY = b"x" * 16384
ANSWER = (
    b"HTTP/1.1 200 OK\r\nAccept-Ranges: bytes\r\nContent-Length: 16384\r\n"
    b'Content-Type: application/octet-stream\r\nEtag: "0123456789abcdef0123456789abcdef"\r\n'
    b"Last-Modified: Tue, 01 Dec 2026 20:50:17 GMT\r\nServer: SeaweedFS\r\nX-Amz-Request-Id: 1764622217\r\n"
    b"X-Amz-Meta-Owner: bench\r\nX-Amz-Meta-Kind: small\r\nVary: Origin\r\nConnection: keep-alive\r\n"
    b"Date: Tue, 01 Dec 2026 20:50:17 GMT\r\n\r\n" + BODY
)


class _Canned:
    """What ``http.client.HTTPResponse`` reads from: the answer, as a socket's file."""

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(ANSWER), 65536)


def with_http_client() -> None:
    response = http.client.HTTPResponse(_Canned())  # type: ignore[arg-type]
    response.begin()
    assert response.getheader("etag") and len(response.read()) == len(BODY)


def with_h11() -> None:
    import h11

    connection = h11.Connection(h11.CLIENT)
    connection.send(h11.Request(method="GET", target="/bucket/key", headers=[("Host", "127.0.0.1")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(ANSWER)
    head = connection.next_event()
    data = connection.next_event()
    assert isinstance(head, h11.Response) and isinstance(data, h11.Data) and len(data.data) == len(BODY)


def with_framing() -> None:
    reader = io.BufferedReader(io.BytesIO(ANSWER), 65536)
    status, _reason, headers, _http10 = framing.read_head(reader)
    length = framing.body_length("GET", status, headers)
    assert headers.get("etag") and length is not None and len(reader.read(length)) == len(BODY)


def per_call_us(call: Callable[[], None], count: int) -> float:
    call()
    start = time.process_time()
    for _ in range(count):
        call()
    return (time.process_time() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    contenders = {"http.client": with_http_client, "h11": with_h11, "cloudstore framing": with_framing}
    results: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):  # interleaved rounds: drift hits every contender alike
        for name, call in contenders.items():
            results[name].append(per_call_us(call, args.count))
    print("| parser | µs of CPU per answer (median of rounds) | vs http.client |")
    print("| --- | --- | --- |")
    base = statistics.median(results["http.client"])
    for name, figures in results.items():
        median = statistics.median(figures)
        print(f"| {name} | {median:.1f} | {median / base:.2f}x |")


if __name__ == "__main__":
    main()

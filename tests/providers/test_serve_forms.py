"""``cloudstore serve``'s form uploads and pinned headers, with hand-made requests."""

from __future__ import annotations

import hashlib

import requests

from cloudstore import Bucket
from tests.providers.test_serve_security import (  # noqa: F401 - the fixtures
    bucket,
    provider,
    serve,
)


def _form(boundary: str, parts: list[tuple[str, str | None, bytes, str | None]]) -> bytes:
    body = b""
    for name, filename, data, content_type in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            body += f"Content-Type: {content_type}\r\n".encode()
        body += b"\r\n" + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode()


def _send(url: str, body: bytes, boundary: str = "b0und4ry") -> int:
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return requests.post(url, data=body, headers=headers, timeout=30).status_code


def test_form_with_other_fields_and_a_boundary_lookalike(bucket: Bucket) -> None:  # noqa: F811
    form = bucket.objects.create("f.bin").generate_post(60, max_size=1000)
    data = b"--b0und4r not quite\r\n--b0und4" + bytes(range(256))  # never the whole delimiter
    body = _form("b0und4ry", [("note", None, b"ignored", None), ("file", "f.bin", data, "application/x-thing")])
    assert _send(form.url, body) == 204
    stored = bucket.objects.get("f.bin")
    assert stored is not None and stored.read() == data and stored.content_type == "application/x-thing"


def test_forms_without_a_file_or_too_large_or_not_a_form_are_refused(bucket: Bucket) -> None:  # noqa: F811
    form = bucket.objects.create("g.bin").generate_post(60, max_size=10)
    assert _send(form.url, _form("b0und4ry", [("note", None, b"x", None)])) == 400
    assert _send(form.url, _form("b0und4ry", [("file", "g", b"x" * 11, None)])) == 413
    assert _send(form.url, b"x" * (10 + 70 * 1024)) == 413  # larger than any form of 10 bytes
    assert requests.post(form.url, data=b"x", headers={"Content-Type": "text/plain"}, timeout=30).status_code == 400
    assert _send(form.url, _form("b0und4ry", [("file", "g", b"x", None)])[:-10]) == 400  # cut short
    assert bucket.objects.get("g.bin") is None
    # A form URL is no PUT URL, and a PUT URL no form.
    assert requests.put(form.url, data=b"x", timeout=30).status_code == 403
    put_url = bucket.objects.create("g.bin").generate_url(60, writable=True)
    assert _send(put_url, _form("b0und4ry", [("file", "g", b"x", None)])) == 403
    assert bucket.objects.get("g.bin") is None


def test_pinned_put_headers(bucket: Bucket) -> None:  # noqa: F811
    body = b"pinned"
    url = bucket.objects.create("p.txt").generate_url(
        60, writable=True, content_type="text/plain", content_md5=hashlib.md5(body).digest(), metadata={"owner": "me"}
    )
    assert (
        requests.put(url, data=body, headers={**url.headers, "x-cloudstore-meta-extra": "1"}, timeout=30).status_code
        == 403
    )
    assert (
        requests.put(url, data=body, headers={**url.headers, "Content-Type": "text/html"}, timeout=30).status_code
        == 403
    )
    assert requests.put(url, data=b"other!", headers=url.headers, timeout=30).status_code == 400  # MD5 mismatch
    assert bucket.objects.get("p.txt") is None
    assert requests.put(url, data=body, headers=url.headers, timeout=30).status_code == 200
    stored = bucket.objects.get("p.txt")
    assert stored is not None and stored.metadata == {"owner": "me"} and stored.content_type == "text/plain"

"""``cloudstore serve``: the HTTP server behind LOCAL signed URLs.

It serves only requests carrying a valid signature from
:meth:`LocalBackend.sign_url`: GET (and HEAD) of a readable URL, streamed, with
``Range``; PUT of a writable URL, written atomically. Expired, tampered,
wrong-method and wrong-object URLs get 403 and touch nothing.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from cloudstore import names
from cloudstore.backend import ObjectInfo
from cloudstore.config import Config
from cloudstore.exceptions import (
    CloudStoreException,
    InvalidNameException,
    NotFoundException,
    PermissionDeniedException,
)
from cloudstore.providers.local import SPEC
from cloudstore.providers.local.backend import LocalBackend, sign_request
from cloudstore.signing import signature_matches

log = logging.getLogger("cloudstore.serve")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1024 * 1024


def _is_decimal(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts "²", which ``int`` refuses)."""
    return text.isascii() and text.isdigit()


class SignedURLServer(ThreadingHTTPServer):
    """A threaded HTTP server over one LOCAL root, checking signatures with ``secret``."""

    daemon_threads = True

    def __init__(self, root: str, secret: str, host: str = "127.0.0.1", port: int = 8765) -> None:
        if not secret:
            raise ValueError("a secret is required")
        self.backend = LocalBackend(Config(SPEC, {"local_root": root}))
        self.secret = secret
        super().__init__((host, port), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a failed request to ``cloudstore.serve`` instead of printing a traceback to stderr.

        A client that hangs up mid-response (a cancelled download, a proxy reset) is routine for a
        file server: one line, no traceback.
        """
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError):
            log.info("client went away (%s)", type(error).__name__)
        else:
            log.error("request failed", exc_info=error)


class _Handler(BaseHTTPRequestHandler):
    server: SignedURLServer
    protocol_version = "HTTP/1.1"
    # Small responses would otherwise wait ~40 ms each for a delayed ACK.
    disable_nagle_algorithm = True
    server_version = "cloudstore-serve"
    sys_version = ""

    # The query carries the signature: log the method, the path and the status only, never the
    # request line (http.server's own messages quote it, e.g. "Bad request syntax (...)").
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(getattr(self, "path", "") or "").path
        log.info("%s %s %s", self.command or "-", path, int(code) if isinstance(code, HTTPStatus) else code)

    def log_error(self, format: str, *args: Any) -> None:
        code = args[0] if args and isinstance(args[0], int) else "-"
        log.warning("malformed request refused (%s)", code)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("request event (details withheld: they may quote the signed URL)")

    # --- request checks ---------------------------------------------------------
    def _authorised(self, method: str) -> tuple[str, str] | None:
        """The (bucket, name) this request may act on, or None after answering 403/400."""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query)
        bucket, _, name = unquote(parts.path.lstrip("/")).partition("/")
        try:
            names.local_bucket_name(bucket)
            names.local_object_name(name)
        except InvalidNameException:
            self._fail(HTTPStatus.BAD_REQUEST, "bad object path")
            return None
        signed_method = query.get("method", [""])[0]
        expires_text = query.get("expires", [""])[0]
        signature = query.get("signature", [""])[0]
        if not _is_decimal(expires_text) or not signature:
            self._fail(HTTPStatus.FORBIDDEN, "missing or malformed signature")
            return None
        expected = sign_request(self.server.secret, signed_method, bucket, name, int(expires_text))
        if not signature_matches(expected, signature):
            self._fail(HTTPStatus.FORBIDDEN, "signature does not match")
            return None
        if signed_method != method:
            self._fail(HTTPStatus.FORBIDDEN, f"this URL is signed for {signed_method}, not {method}")
            return None
        if int(expires_text) < time.time():
            self._fail(HTTPStatus.FORBIDDEN, "this URL has expired")
            return None
        return bucket, name

    def _fail(self, status: HTTPStatus, message: str) -> None:
        body = (message + "\n").encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if self.headers.get("Content-Length", "0") != "0" or "Transfer-Encoding" in self.headers:
            # The body was not read: on a kept-alive connection it would be parsed as the next request.
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _fail_with(self, error: CloudStoreException) -> None:
        status = {404: HTTPStatus.NOT_FOUND, 403: HTTPStatus.FORBIDDEN, 416: HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE}
        if isinstance(error, NotFoundException):
            code = HTTPStatus.NOT_FOUND
        elif isinstance(error, PermissionDeniedException):
            code = HTTPStatus.FORBIDDEN
        else:
            code = status.get(error.status or 0, HTTPStatus.BAD_REQUEST)
        self._fail(code, str(error))

    # --- methods ------------------------------------------------------------------
    def do_GET(self) -> None:
        self._get(send_body=True)

    def do_HEAD(self) -> None:
        self._get(send_body=False)

    def _get(self, send_body: bool) -> None:
        target = self._authorised("GET")
        if target is None:
            return
        bucket, name = target
        try:
            opened = self.server.backend.open_object(bucket, name)
        except CloudStoreException as err:
            self._fail_with(err)
            return
        if opened is None:
            self._fail(HTTPStatus.NOT_FOUND, "no such object")
            return
        handle, info = opened  # the headers and the body come from the same version of the file
        with handle:
            self._send(handle, info, send_body)

    def _send(self, handle: BinaryIO, info: ObjectInfo, send_body: bool) -> None:
        start, end = 0, info.size - 1
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header and info.size > 0:
            match = _RANGE.match(range_header.strip())
            if match and (match.group(1) or match.group(2)):
                first, last = match.group(1), match.group(2)
                if first:
                    start, end = int(first), min(int(last), info.size - 1) if last else info.size - 1
                else:
                    start, end = max(0, info.size - int(last)), info.size - 1
                if start > end or start >= info.size:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{info.size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
        length = end - start + 1 if info.size else 0
        self.send_response(status)
        self.send_header("Content-Type", info.content_type or "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if info.etag:
            self.send_header("ETag", f'"{info.etag}"')
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{info.size}")
        self.end_headers()
        if not send_body or length == 0:
            return
        handle.seek(start)
        while length > 0:
            chunk = handle.read(min(_CHUNK, length))
            if not chunk:  # truncated in place behind cloudstore's back: the client sees a short body
                self.close_connection = True
                return
            self.wfile.write(chunk)
            length -= len(chunk)

    def do_PUT(self) -> None:
        target = self._authorised("PUT")
        if target is None:
            return
        length_text = self.headers.get("Content-Length")
        if length_text is None or not _is_decimal(length_text):
            self._fail(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
            return
        bucket, name = target
        try:
            self.server.backend.write_stream(
                bucket, name, self.rfile, int(length_text), self.headers.get("Content-Type")
            )
        except CloudStoreException as err:
            self.close_connection = True
            self._fail_with(err)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _not_allowed(self) -> None:
        self._fail(HTTPStatus.FORBIDDEN, "only GET, HEAD and PUT are served")

    do_POST = do_DELETE = do_PATCH = _not_allowed


def serve(root: str, secret: str, host: str = "127.0.0.1", port: int = 8765) -> None:
    """Serve signed URLs until interrupted."""
    server = SignedURLServer(root, secret, host, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()

"""A gateway in front of fake-gcs-server that checks V4 signed URLs the way GCS does.

fake-gcs-server serves any signed URL, tampered or expired. This gateway listens on
127.0.0.1 and, for each request whose query carries ``X-Goog-Signature``, rebuilds the V4
canonical request (method, path, query, signed headers), checks the RSA-SHA256 signature
with the public key of the signing service account and checks ``X-Goog-Date`` plus
``X-Goog-Expires`` against the clock. A failed check is answered as GCS answers it, with an
XML error: 403 ``SignatureDoesNotMatch``, 400 ``ExpiredToken`` or 400
``MalformedSecurityHeader``. Everything else (a valid signed URL, and every request without
one: the JSON and media API calls) is relayed to the emulator unchanged, bodies streamed both
ways. Client connections stay open as the emulator's do (keep-alive, so clients behave as
they do without the gateway); each request gets its own upstream connection.

fake-gcs-server also ignores generation preconditions (``ifGenerationMatch``) on writes: the
gateway checks them for uploads (the object named by the ``name`` query parameter), composes,
rewrites and deletes, as GCS does. It holds a lock per object from the check to the end of
the write, so that of conditional writes racing through it exactly one wins, as on GCS; a 412
is answered with GCS's JSON error (``conditionNotMet``).

Access tokens: fake-gcs-server accepts any bearer token. With ``--tokens FILE`` the gateway
checks the tokens that start with ``cs-token-`` (what tests issue as their own OAuth server
would) against FILE, a line ``<token> <unix expiry>`` each, and answers an unknown or expired
one 401 as GCS does; other tokens (the service account's self-signed JWTs) pass as before.

Browser form uploads (a ``multipart/form-data`` POST to ``/<bucket>``, signed with a V4 POST
policy) are accepted by the emulator whatever they hold: the gateway reads the form and checks
it as GCS does (the policy's signature, its expiration, every condition: fields equal to or
starting with a value, the file's ``content-length-range``) before relaying it.

``tests/support/servers/fakegcs.py`` runs it as ``python -m tests.support.servers.gcs_gateway --port P
--upstream 127.0.0.1:Q --key EMAIL=PUBLIC_KEY.pem``; fake-gcs-server's ``-public-host`` must
be the gateway's address, since the Host header is relayed as the client sent it.
"""

from __future__ import annotations

import argparse
import base64
import email
import email.policy
import hashlib
import http.client
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlsplit
from xml.sax.saxutils import escape

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ALGORITHM = "GOOG4-RSA-SHA256"
#: The query parameters every V4 signed URL carries.
REQUIRED_PARAMETERS = (
    *("X-Goog-Algorithm", "X-Goog-Credential", "X-Goog-Date"),
    *("X-Goog-Expires", "X-Goog-SignedHeaders", "X-Goog-Signature"),
)
#: V4 signed URLs live at most seven days.
MAX_EXPIRES = 7 * 24 * 3600
#: Headers that concern one connection only: never relayed.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect", "transfer-encoding"}
)
_BUFSIZE = 256 * 1024
_MAX_LINE = 64 * 1024
#: A rejected request's body is read (so the client hears the answer, not a reset) up to this size.
_MAX_DRAIN = 64 * 1024 * 1024


@dataclass(frozen=True)
class Rejection:
    """Why a signed request is refused, as GCS's XML API reports it."""

    status: int
    code: str
    message: str
    details: str
    string_to_sign: str | None = None
    canonical_request: str | None = None

    def xml(self) -> bytes:
        parts = [
            f"<Code>{escape(self.code)}</Code>",
            f"<Message>{escape(self.message)}</Message>",
            f"<Details>{escape(self.details)}</Details>",
        ]
        if self.string_to_sign is not None:
            parts.append(f"<StringToSign>{escape(self.string_to_sign)}</StringToSign>")
        if self.canonical_request is not None:
            parts.append(f"<CanonicalRequest>{escape(self.canonical_request)}</CanonicalRequest>")
        return ("<?xml version='1.0' encoding='UTF-8'?><Error>" + "".join(parts) + "</Error>").encode("utf-8")


def _malformed(details: str) -> Rejection:
    return Rejection(400, "MalformedSecurityHeader", "Your request has a malformed header.", details)


def query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's name/value pairs, decoded, in the order sent (blank values kept)."""
    pairs = []
    for field in query.split("&"):
        if not field:
            continue
        name, _, value = field.partition("=")
        pairs.append((unquote_plus(name), unquote_plus(value)))
    return pairs


def is_signed(target: str) -> bool:
    """Whether the request target carries a V4 signature (parameter names are case-insensitive)."""
    return any(name.lower() == "x-goog-signature" for name, _ in query_pairs(urlsplit(target).query))


def canonical_request(method: str, target: str, headers: Mapping[str, str]) -> tuple[str, dict[str, str]]:
    """Google's V4 canonical request for a signed-URL request, and its ``X-Goog-*`` parameters
    (lower-cased names). ``headers`` maps lower-case names to the values received."""
    parts = urlsplit(target)
    pairs = query_pairs(parts.query)
    params = {name.lower(): value for name, value in pairs if name.lower().startswith("x-goog-")}

    def enc(text: str) -> str:
        return quote(text, safe="~")

    query = "&".join(sorted(f"{enc(k)}={enc(v)}" for k, v in pairs if k.lower() != "x-goog-signature"))
    signed_headers = params.get("x-goog-signedheaders", "")
    lines = []
    for name in signed_headers.split(";"):
        # Header values are trimmed and inner whitespace runs folded to one space.
        lines.append(f"{name}:{' '.join(headers.get(name, '').split())}\n")
    # A signed X-Goog-Content-SHA256 header stands for the payload; GCS does not hash bodies otherwise.
    signed_payload = "x-goog-content-sha256" in signed_headers.split(";")
    payload = headers.get("x-goog-content-sha256", "") if signed_payload else "UNSIGNED-PAYLOAD"
    # The path as the SDK encodes it: the decoded path quoted again, keeping '/' and '~'.
    path = quote(unquote(parts.path), safe="/~")
    return "\n".join([method, path, query, "".join(lines), signed_headers, payload]), params


def check_signed_request(
    method: str,
    target: str,
    headers: Mapping[str, str],
    keys: Mapping[str, rsa.RSAPublicKey],
    now: datetime | None = None,
) -> Rejection | None:
    """None when the V4 signed request is valid at ``now``, else why GCS would refuse it.

    ``keys`` maps service-account e-mail addresses to their public keys; ``headers`` maps
    lower-case header names to the values received (``host`` included).
    """
    canonical, params = canonical_request(method, target, headers)
    for name in REQUIRED_PARAMETERS:
        if name.lower() not in params:
            return _malformed(f"Missing required query parameter {name}")
    if params["x-goog-algorithm"] != ALGORITHM:
        return _malformed(f"Unsupported signing algorithm {params['x-goog-algorithm']!r}")
    try:
        signed_at = datetime.strptime(params["x-goog-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return _malformed(f"Invalid X-Goog-Date {params['x-goog-date']!r}")
    expires_text = params["x-goog-expires"]
    if not expires_text.isdigit() or not 1 <= int(expires_text) <= MAX_EXPIRES:
        return _malformed(f"X-Goog-Expires must be 1 to {MAX_EXPIRES} seconds, not {expires_text!r}")
    expires = int(expires_text)
    email, _, scope = params["x-goog-credential"].partition("/")
    if scope != f"{params['x-goog-date'][:8]}/auto/storage/goog4_request":
        return _malformed(f"Invalid credential scope {scope!r}")
    if (now or datetime.now(UTC)) > signed_at + timedelta(seconds=expires):
        return Rejection(400, "ExpiredToken", "Invalid argument.", f"Request has expired: {expires_text}")
    string_to_sign = "\n".join(
        [ALGORITHM, params["x-goog-date"], scope, hashlib.sha256(canonical.encode("utf-8")).hexdigest()]
    )
    try:
        signature = bytes.fromhex(params["x-goog-signature"])
        key = keys[email]
        key.verify(signature, string_to_sign.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, KeyError, InvalidSignature):
        return Rejection(
            403,
            "SignatureDoesNotMatch",
            "Access denied.",
            "The request signature we calculated does not match the signature you provided. "
            "Check your Google secret key and signing method.",
            string_to_sign,
            canonical,
        )
    return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Heads and bodies go out in separate writes: without this, kept-alive connections wait for
    # delayed ACKs (some 40 ms per request).
    disable_nagle_algorithm = True
    #: A client that stops sending for this long is dropped.
    timeout = 120
    server: _GatewayServer

    def _handle(self) -> None:
        received = self._header_map()
        if self.server.tokens is not None and not token_accepted(received.get("authorization", ""), self.server.tokens):
            self._drain_body()
            self._send_json_error(401, "Invalid Credentials", "authError")
            return
        if is_signed(self.path):
            rejection = check_signed_request(self.command, self.path, received, self.server.keys)
            if rejection is not None:
                self._drain_body()
                self._send_rejection(rejection)
                return
        if is_form_upload(self.command, self.path, received.get("content-type", "")):
            self._handle_form(received)
            return
        condition = generation_condition(self.command, self.path)
        if condition is None:
            self._relay()
            return
        bucket, name, wanted = condition
        with self.server.object_lock(bucket, name):
            current = self._current_generation(bucket, name)
            if current != wanted:
                self._drain_body()
                self._send_condition_not_met(bucket, name, wanted, current)
                return
            self._relay()

    def _handle_form(self, received: Mapping[str, str]) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if self._chunked or length > _MAX_DRAIN:
            self._send_rejection(Rejection(400, "InvalidArgument", "Invalid argument.", "form too large or chunked"))
            return
        body = self.rfile.read(length)
        bucket = unquote(urlsplit(self.path).path).strip("/")
        rejection = check_form(bucket, received["content-type"], body, self.server.keys)
        if rejection is not None:
            self._send_rejection(rejection)
            return
        self._relay(body)

    def _current_generation(self, bucket: str, name: str) -> int:
        """The live generation of the object upstream (0: there is none)."""
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=self.server.upstream_timeout)
        try:
            upstream.request("GET", f"/storage/v1/b/{quote(bucket, safe='')}/o/{quote(name, safe='')}")
            response = upstream.getresponse()
            body = response.read()
        finally:
            upstream.close()
        if response.status == 404:
            return 0
        return int(json.loads(body)["generation"])

    def _send_condition_not_met(self, bucket: str, name: str, wanted: int, current: int) -> None:
        message = (
            f"At least one of the pre-conditions you specified did not hold. ({bucket}/{name}: {current} != {wanted})"
        )
        self._send_json_error(412, message, "conditionNotMet")

    def _send_json_error(self, status: int, message: str, reason: str) -> None:
        self.close_connection = True
        body = json.dumps(
            {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}}
        ).encode()
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_OPTIONS = _handle

    def _header_map(self) -> dict[str, str]:
        joined: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            joined[key] = f"{joined[key]},{value.strip()}" if key in joined else value.strip()
        return joined

    def _send_rejection(self, rejection: Rejection) -> None:
        # Close afterwards: an unread request body may still be on the connection.
        self.close_connection = True
        body = rejection.xml()
        self.log_message(
            "%s %s refused: %d %s", self.command, urlsplit(self.path).path, rejection.status, rejection.code
        )
        self.send_response_only(rejection.status)
        self.send_header("Content-Type", "application/xml; charset=UTF-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    # --- relaying -------------------------------------------------------------------------------

    def _relay(self, body: bytes | None = None) -> None:
        """Send the request upstream (its body as read from the client, or ``body``) and relay the answer."""
        upstream = http.client.HTTPConnection(*self.server.upstream, timeout=self.server.upstream_timeout)
        try:
            try:
                upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in HOP_BY_HOP:
                        upstream.putheader(name, value)
                if self._chunked and body is None:
                    upstream.putheader("Transfer-Encoding", "chunked")
                upstream.putheader("Connection", "close")
                upstream.endheaders()
                if body is None:
                    self._copy_request_body(upstream.send)
                else:
                    upstream.send(body)
                response = upstream.getresponse()
            except OSError as err:
                self.log_message("%s %s: upstream failed: %s", self.command, urlsplit(self.path).path, err)
                self._send_rejection(Rejection(502, "BadGateway", "Bad gateway.", "fake-gcs-server did not answer"))
                return
            self._copy_response(response)
        finally:
            upstream.close()

    @property
    def _chunked(self) -> bool:
        return "chunked" in self.headers.get("Transfer-Encoding", "").lower()

    def _copy_request_body(self, send: Callable[[bytes], Any]) -> None:
        """Stream the request body to ``send``: chunked framing as received, else Content-Length bytes."""
        if self._chunked:
            while True:
                line = self.rfile.readline(_MAX_LINE)
                send(line)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (trailer := self.rfile.readline(_MAX_LINE)) not in (b"\r\n", b"\n", b""):
                        send(trailer)
                    send(b"\r\n")
                    return
                self._copy_exact(size + 2, send)  # the chunk and its CRLF
        self._copy_exact(int(self.headers.get("Content-Length") or 0), send)

    def _copy_exact(self, size: int, send: Callable[[bytes], Any]) -> None:
        while size > 0:
            data = self.rfile.read(min(size, _BUFSIZE))
            if not data:
                raise ConnectionError("client closed the connection in the middle of the body")
            size -= len(data)
            send(data)

    def _drain_body(self) -> None:
        if self._chunked or int(self.headers.get("Content-Length") or 0) > _MAX_DRAIN:
            return  # the connection closes after the answer anyway
        self._copy_exact(int(self.headers.get("Content-Length") or 0), lambda _: None)

    def _copy_response(self, response: http.client.HTTPResponse) -> None:
        if not response.chunked and response.length is None:
            self.close_connection = True  # the body ends where the connection does
        self.send_response_only(response.status, response.reason)
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP:
                self.send_header(name, value)
        if response.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        while data := response.read1(_BUFSIZE):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if response.chunked else data)
        if response.chunked:
            self.wfile.write(b"0\r\n\r\n")

    # --- logging: paths only (signed URLs' queries stay out of logs) ---------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write(f"gcs-gateway: {format % args}\n")


#: The prefix of the access tokens the gateway checks against its token file.
CHECKED_TOKEN_PREFIX = "cs-token-"


def token_accepted(authorization: str, token_file: Path, now: float | None = None) -> bool:
    """Whether a request's ``Authorization`` passes: not a checked token, or one listed in
    ``token_file`` whose expiry has not come."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.startswith(CHECKED_TOKEN_PREFIX):
        return True
    moment = now if now is not None else time.time()
    for line in token_file.read_text().splitlines():
        listed, _, expiry = line.partition(" ")
        if listed == token and float(expiry) > moment:
            return True
    return False


def is_form_upload(method: str, target: str, content_type: str) -> bool:
    """A browser form upload: a multipart/form-data POST to ``/<bucket>`` (XML API)."""
    path = urlsplit(target).path.strip("/")
    return method == "POST" and bool(path) and "/" not in path and content_type.startswith("multipart/form-data")


def parse_form(content_type: str, body: bytes) -> tuple[dict[str, str], bytes | None]:
    """The text fields of a multipart/form-data body and the content of its ``file`` field."""
    message = email.message_from_bytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body, policy=email.policy.HTTP
    )
    fields: dict[str, str] = {}
    content: bytes | None = None
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if name == "file":
            content = payload
        else:
            fields[name] = payload.decode("utf-8")
    return fields, content


def check_form(
    bucket: str, content_type: str, body: bytes, keys: Mapping[str, rsa.RSAPublicKey], now: datetime | None = None
) -> Rejection | None:
    """None when the V4 POST policy form is valid, else why GCS would refuse it."""
    fields, content = parse_form(content_type, body)
    lowered = {name.lower(): value for name, value in fields.items()}
    denied = Rejection(403, "AccessDenied", "Access denied.", "Invalid according to policy")
    if content is None or "policy" not in lowered or "x-goog-signature" not in lowered:
        return _malformed("a form upload needs a policy, its signature and a file")
    email_address = lowered.get("x-goog-credential", "").partition("/")[0]
    try:
        keys[email_address].verify(
            bytes.fromhex(lowered["x-goog-signature"]),
            lowered["policy"].encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        policy = json.loads(base64.b64decode(lowered["policy"]))
    except (KeyError, ValueError, InvalidSignature):
        return Rejection(403, "SignatureDoesNotMatch", "Access denied.", "The form's policy signature does not match")
    expiration = datetime.fromisoformat(str(policy["expiration"]).replace("Z", "+00:00"))
    if (now or datetime.now(UTC)) > expiration:
        return Rejection(400, "ExpiredToken", "Invalid argument.", "The policy has expired")
    values = {**lowered, "bucket": bucket}
    for condition in policy["conditions"]:
        if isinstance(condition, dict):
            checks = [("eq", name, value) for name, value in condition.items()]
        elif condition[0] == "content-length-range":
            if not int(condition[1]) <= len(content) <= int(condition[2]):
                return Rejection(400, "EntityTooLarge", "Invalid argument.", "the file is outside content-length-range")
            continue
        else:
            checks = [(condition[0], condition[1].lstrip("$"), condition[2])]
        for kind, name, value in checks:
            given = values.get(name.lower())
            if given is None or (given != value if kind == "eq" else not given.startswith(value)):
                return denied
    return None


def generation_condition(method: str, target: str) -> tuple[str, str, int] | None:
    """``(bucket, object, generation)`` of a JSON API write carrying ``ifGenerationMatch``: an
    upload (the object in the ``name`` parameter), a compose, a rewrite (its destination) or a
    delete; ``None`` for any other request."""
    parts = urlsplit(target)
    params = dict(query_pairs(parts.query))
    wanted = params.get("ifGenerationMatch", "")
    if not wanted.isdigit():
        return None
    segments = [unquote(segment) for segment in parts.path.split("/")]
    if method == "POST" and segments[1:6] == ["upload", "storage", "v1", "b", segments[5]] and "name" in params:
        return segments[5], params["name"], int(wanted)
    if segments[1:4] != ["storage", "v1", "b"] or len(segments) < 7 or segments[5] != "o":
        return None
    if method == "POST" and len(segments) == 8 and segments[7] == "compose":
        return segments[4], segments[6], int(wanted)
    if method == "POST" and len(segments) == 12 and segments[7] == "rewriteTo":
        return segments[9], segments[11], int(wanted)
    if method == "DELETE" and len(segments) == 7:
        return segments[4], segments[6], int(wanted)
    return None


class _GatewayServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self,
        port: int,
        upstream: tuple[str, int],
        keys: Mapping[str, rsa.RSAPublicKey],
        upstream_timeout: float = 300.0,
        tokens: Path | None = None,
    ) -> None:
        self.upstream = upstream
        self.tokens = tokens
        self.keys = dict(keys)
        self.upstream_timeout = upstream_timeout
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    def object_lock(self, bucket: str, name: str) -> threading.Lock:
        """The lock held from checking one object's generation to the end of its write."""
        with self._locks_lock:
            return self._locks.setdefault((bucket, name), threading.Lock())


def load_key(spec: str) -> tuple[str, rsa.RSAPublicKey]:
    """``EMAIL=PATH`` (a PEM public key) as an ``(email, key)`` pair."""
    email, sep, path = spec.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--key takes EMAIL=PEM_FILE, not {spec!r}")
    key = serialization.load_pem_public_key(Path(path).read_bytes())
    if not isinstance(key, rsa.RSAPublicKey):
        raise argparse.ArgumentTypeError(f"{path} holds no RSA public key")
    return email, key


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of fake-gcs-server")
    parser.add_argument("--key", type=load_key, action="append", required=True, help="EMAIL=PUBLIC_KEY.pem")
    parser.add_argument("--tokens", type=Path, help="the access tokens accepted: '<token> <unix expiry>' lines")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    server = _GatewayServer(args.port, (host, int(port)), dict(args.key), tokens=args.tokens)
    # SIGTERM (RunningServer.stop) ends serve_forever from another thread, then the process.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

"""A tiny OpenID Connect issuer on 127.0.0.1 for the STS tests: a JWKS endpoint, and RS256 ID tokens.

SeaweedFS's ``AssumeRoleWithWebIdentity`` fetches the keys from ``jwks_uri`` and checks a token's
signature, issuer, audience and expiry, as AWS does with a real identity provider.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.servers.base import free_port

CLIENT_ID = "cloudstore"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class Issuer:
    """Serves its JWKS until :meth:`stop`; :meth:`token` signs ID tokens for ``CLIENT_ID``."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        numbers = self._key.public_key().public_numbers()
        jwks = {
            "keys": [
                {
                    "kty": "RSA",
                    "kid": "test-key",
                    "use": "sig",
                    "alg": "RS256",
                    "n": _b64url(numbers.n.to_bytes(256, "big")),
                    "e": _b64url(numbers.e.to_bytes(3, "big")),
                }
            ]
        }
        body = json.dumps(jwks).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def settings(self) -> dict[str, str]:
        """What ``tests.support.servers.seaweedfs.start(oidc=...)`` takes."""
        return {"issuer": self.url, "client_id": CLIENT_ID, "jwks_uri": self.url + "/jwks"}

    def token(self, subject: str = "alice", lifetime: float = 300.0) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "sub": subject, "aud": CLIENT_ID, "iat": now, "exp": now + int(lifetime)}
        header = _b64url(json.dumps({"alg": "RS256", "kid": "test-key", "typ": "JWT"}).encode())
        payload = _b64url(json.dumps(claims).encode())
        signature = self._key.sign(f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{header}.{payload}.{_b64url(signature)}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

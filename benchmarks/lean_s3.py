"""A lean S3 request path, for measurement only (benchmark code, not the library).

The question it answers (issue 15): how much client CPU does a small S3 request cost when the
SDK supplies only the credentials and the signing, and the request itself goes straight over
one bounded HTTP connection pool with the response parsed by the C parsers?

- signing: botocore's own ``S3SigV4Auth`` with the client's (frozen, so refreshable) credentials,
  one ``add_auth`` per request; over ``http://`` the payload is ``UNSIGNED-PAYLOAD`` (as the
  cloudstore AWS provider does) and puts carry ``Content-MD5`` so the server checks the body;
- transport: one ``urllib3.HTTPConnectionPool`` (``maxsize`` connections, ``block=True``: never
  more sockets than that, however many threads), no retries (the caller's retry layer owns them);
  or, to measure what urllib3 itself costs, one keep-alive ``http.client.HTTPConnection`` per thread;
- parsing: ``xml.etree.ElementTree`` (the C ``_elementtree``) for ListObjectsV2 and errors;
- integrity: a GET of a whole object is checked against its ETag when that is a plain MD5.

Path-style addressing on a plain endpoint only (SeaweedFS here): enough to measure, no more.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import threading
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import urllib3
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
#: What S3SigV4Auth reads from ``request.context`` to leave the body out of the signature.
_NO_PAYLOAD_SIGNING = SimpleNamespace(s3={"payload_signing_enabled": False})


class LeanS3Error(Exception):
    """An S3 error answer: HTTP status and the S3 error code (when the body had one)."""

    def __init__(self, status: int, code: str, key: str) -> None:
        super().__init__(f"{status} {code} for {key!r}")
        self.status, self.code = status, code


@dataclass(frozen=True)
class Listed:
    key: str
    size: int
    etag: str
    last_modified: str


def _quote_key(key: str) -> str:
    return urllib.parse.quote(key, safe="/~")


class LeanS3:
    """put / get / head / list on one bucket over one bounded connection pool."""

    def __init__(self, client: Any, bucket: str, pool_size: int = 32, transport: str = "urllib3") -> None:
        """``client``: a boto3 S3 client; its endpoint, region and credentials are reused.

        ``transport``: ``"urllib3"`` (one bounded pool) or ``"http.client"`` (a connection per thread).
        """
        endpoint = urllib.parse.urlsplit(client.meta.endpoint_url)
        if endpoint.scheme != "http":
            raise ValueError("this prototype speaks plain http to a test server only")
        self._credentials = client._request_signer._credentials  # refreshable: frozen per request
        self._region = client.meta.region_name
        self._origin = f"http://{endpoint.netloc}"
        self._bucket_path = "/" + urllib.parse.quote(bucket, safe="")
        self._pool = urllib3.HTTPConnectionPool(
            endpoint.hostname or "127.0.0.1",
            endpoint.port or 80,
            maxsize=pool_size,
            block=True,
            retries=False,
        )
        self._transport = transport
        self._local = threading.local()
        self._host, self._port = endpoint.hostname or "127.0.0.1", endpoint.port or 80

    def _signed(self, method: str, path: str, query: str = "", headers: dict[str, str] | None = None) -> dict[str, str]:
        url = self._origin + path + ("?" + query if query else "")
        request = AWSRequest(method=method, url=url, headers=headers or {})
        request.context["client_config"] = _NO_PAYLOAD_SIGNING
        signer = S3SigV4Auth(self._credentials.get_frozen_credentials(), "s3", self._region)
        signer.add_auth(request)
        return dict(request.headers.items())

    def _send(
        self, method: str, path: str, key: str, query: str = "", body: bytes | None = None, **headers: str
    ) -> tuple[int, Mapping[str, str], bytes]:
        """(status, headers, body) of one signed request; an error answer raises."""
        signed = self._signed(method, path, query, headers)
        target = path + ("?" + query if query else "")
        if self._transport == "http.client":
            status, answer, data = self._send_http_client(method, target, body, signed)
        else:
            response = self._pool.urlopen(method, target, body=body, headers=signed, redirect=False)
            status, answer, data = response.status, response.headers, response.data
        if status >= 300:
            raise LeanS3Error(status, _error_code(data), key)
        return status, answer, data

    def _send_http_client(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Mapping[str, str], bytes]:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = http.client.HTTPConnection(self._host, self._port)
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            data: bytes = response.read()
            return int(response.status), dict(response.headers.items()), data
        except (OSError, http.client.HTTPException):
            conn.close()  # a broken keep-alive connection is not reused
            self._local.conn = None
            raise

    def put(self, key: str, data: bytes) -> str:
        """Store ``data``; the server checks it against the Content-MD5 sent. Returns the ETag."""
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        path = f"{self._bucket_path}/{_quote_key(key)}"
        _, headers, _ = self._send("PUT", path, key, body=data, **{"Content-MD5": md5})
        return headers.get("ETag", "").strip('"')

    def get(self, key: str) -> bytes:
        """The whole object, checked against its ETag when that is a plain MD5."""
        status, headers, data = self._send("GET", f"{self._bucket_path}/{_quote_key(key)}", key)
        etag = headers.get("ETag", "").strip('"')
        if len(etag) == 32 and "-" not in etag and hashlib.md5(data).hexdigest() != etag:
            raise LeanS3Error(status, "ChecksumMismatch", key)
        return data

    def head(self, key: str) -> dict[str, Any]:
        """Size, ETag, last modified, content type and user metadata of one object."""
        _, h, _ = self._send("HEAD", f"{self._bucket_path}/{_quote_key(key)}", key)
        return {
            "size": int(h.get("Content-Length", "0")),
            "etag": h.get("ETag", "").strip('"'),
            "last_modified": h.get("Last-Modified"),
            "content_type": h.get("Content-Type"),
            "metadata": {k[11:].lower(): v for k, v in h.items() if k.lower().startswith("x-amz-meta-")},
        }

    def walk(self, prefix: str = "", page_size: int = 1000) -> Iterator[Listed]:
        """Every object under ``prefix``, by ListObjectsV2 pages."""
        token: str | None = None
        while True:
            params = {"list-type": "2", "max-keys": str(page_size)}
            if prefix:
                params["prefix"] = prefix
            if token:
                params["continuation-token"] = token
            query = urllib.parse.urlencode(sorted(params.items()), quote_via=urllib.parse.quote, safe="-_.~")
            root = ET.fromstring(self._send("GET", self._bucket_path, prefix, query)[2])
            for item in root.iterfind(_NS + "Contents"):
                yield Listed(
                    item.findtext(_NS + "Key", ""),
                    int(item.findtext(_NS + "Size", "0")),
                    item.findtext(_NS + "ETag", "").strip('"'),
                    item.findtext(_NS + "LastModified", ""),
                )
            token = root.findtext(_NS + "NextContinuationToken")
            if root.findtext(_NS + "IsTruncated") != "true" or not token:
                return

    def close(self) -> None:
        self._pool.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()


def _error_code(body: bytes) -> str:
    try:
        return ET.fromstring(body).findtext("Code") or "?"
    except ET.ParseError:
        return "?"

"""The S3 lean path's SigV4 signer against botocore's ``S3SigV4Auth``, the reference.

Each request is signed by botocore first (at its own clock), then by
:class:`~cloudstore.providers.aws.auth.SigV4Signer` at the same timestamp: the headers sent
(names, values, order, Authorization included) must be identical.
"""

from __future__ import annotations

import random
import urllib.parse
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest
from botocore.auth import EMPTY_SHA256_HASH, UNSIGNED_PAYLOAD, S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from cloudstore.providers.aws.auth import SigV4Signer
from cloudstore.providers.aws.rest import quote_key

ACCESS_KEY = "AKIDEXAMPLE"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TOKEN = "FQoGZXIvYXdzEPT//////////wEaDOV3+Session/Token=="
BODY = b"0123456789abcdef" * 1024
MD5 = "DvgUtu5cYvXL286DVRoJIA=="


@dataclass
class Case:
    """One request as ``S3Rest._send`` hands it to the signer."""

    id: str
    method: str = "GET"
    key: str | None = "plain.txt"
    query: dict[str, str] | str = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    https: bool = False
    streaming: bool = False
    #: The client's s3 ``payload_signing_enabled`` (False over http, unset over https).
    payload_signing: bool | None = False
    token: str | None = None
    region: str = "us-east-1"
    host: str = "127.0.0.1:8333"
    bucket: str = "bucket"

    @property
    def path(self) -> str:
        base = f"/{urllib.parse.quote(self.bucket, safe='~')}"
        return base if self.key is None else f"{base}/{quote_key(self.key)}"

    @property
    def query_string(self) -> str:
        if isinstance(self.query, str):
            return self.query
        return "&".join(f"{k}={urllib.parse.quote(v, safe='-_.~')}" for k, v in self.query.items())


KEYS = [
    "dir/sub/ünïcödé ✓.bin",
    "日本語/ファイル名.txt",
    "emoji 🎉🚀",
    "reserved !$&'()*+,;=:@[]?#%",
    "tilde~dash-under_dot.",
    "  spaces  and\ttab ",
    "a//double//slash",
    "/leading-slash",
    "trailing/",
    "%2F already-encoded %20",
    "..",
    "./a/../b",
]

CASES = [
    Case("get plain"),
    Case("head", method="HEAD"),
    Case("delete", method="DELETE"),
    *[Case(f"get key {i}", key=key) for i, key in enumerate(KEYS)],
    Case("range", headers={"Range": "bytes=100-2047"}),
    Case("range https", headers={"Range": "bytes=-10"}, https=True, payload_signing=None, host="s3.amazonaws.com"),
    Case(
        "put with metadata and conditions",
        method="PUT",
        key="dir/ünïcödé.bin",
        headers={
            "Content-MD5": MD5,
            "x-amz-checksum-crc32": "AAAAAA==",
            "Content-Type": "application/octet-stream",
            "x-amz-meta-Owner": "Zoë  Smith",
            "x-amz-meta-tags": "  a   b\tc  ",
            "x-amz-meta-empty": "",
            "If-None-Match": "*",
            "x-amz-server-side-encryption": "aws:kms",
            "x-amz-server-side-encryption-aws-kms-key-id": "arn:aws:kms:eu-west-1:1:key/abc",
        },
        body=BODY,
        streaming=True,
    ),
    Case("put repeated header names", method="PUT", headers={"x-amz-meta-a": "1", "X-Amz-Meta-A": "2"}, body=b"x"),
    Case("unsigned header names", headers={"User-Agent": "cloudstore", "Expect": "100-continue", "TE": "trailers"}),
    Case("session token", token=TOKEN),
    Case("session token https", token=TOKEN, https=True, payload_signing=None, host="bucket.s3.amazonaws.com"),
    Case(
        "list page",
        key=None,
        query={
            "list-type": "2",
            "encoding-type": "url",
            "prefix": "dir/ünï cöde+&=?/",
            "delimiter": "/",
            "max-keys": "1000",
            "continuation-token": "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=",
        },
    ),
    Case("list bucket root", key=None, bucket="dotted.bucket.name", query={"list-type": "2", "prefix": "~a b"}),
    Case("part (unsorted params)", method="PUT", query={"uploadId": "2~abc/def+g==", "partNumber": "10"}, body=BODY),
    Case("batch delete", method="POST", key=None, query="delete", headers={"Content-MD5": MD5}, body=b"<Delete/>"),
    # Over https the client leaves payload signing to S3SigV4Auth: a streaming upload with a
    # Content-MD5 goes unsigned, anything else (no MD5, not streaming, no body) is hashed.
    Case("https put md5 streaming", method="PUT", headers={"Content-MD5": MD5}, body=BODY, https=True,
         streaming=True, payload_signing=None, region="eu-central-1", host="s3.eu-central-1.amazonaws.com"),
    Case("https put no md5", method="PUT", headers={"x-amz-checksum-crc32": "AAAAAA=="}, body=BODY, https=True,
         streaming=True, payload_signing=None),
    Case("https post md5 not streaming", method="POST", key=None, query="delete", headers={"content-md5": MD5},
         body=b"<Delete/>", https=True, payload_signing=None),
    Case("https get", https=True, payload_signing=None),
    Case("https payload signing on", method="PUT", headers={"Content-MD5": MD5}, body=BODY, https=True,
         streaming=True, payload_signing=True),
    Case("http payload signing unset", method="PUT", headers={"Content-MD5": MD5}, body=BODY, streaming=True,
         payload_signing=None),
    Case("empty body put", method="PUT", body=b"", payload_signing=None),
]  # fmt: skip


def _random_cases(count: int) -> list[Case]:
    """Keys and query values drawn from ASCII (reserved characters included) and a few scripts."""
    rng = random.Random(15)
    alphabet = [chr(c) for c in range(0x20, 0x7F)] + list("äöüßéçñ日本語ファイル€✓🎉\u00a0\u2003")
    cases = []
    for i in range(count):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40)))
        prefix = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        cases.append(
            Case(
                f"random {i}",
                method=rng.choice(["GET", "HEAD", "PUT"]),
                key=key,
                query={"list-type": "2", "prefix": prefix} if i % 3 == 0 else {},
                headers={"x-amz-meta-v": key.strip() or "x"} if i % 2 else {},
                body=key.encode() if i % 4 == 1 else None,
                https=i % 5 == 0,
                payload_signing=None if i % 5 == 0 else False,
                token=TOKEN if i % 7 == 0 else None,
            )
        )
    return cases


def _credentials(case: Case) -> Credentials:
    return Credentials(ACCESS_KEY, SECRET_KEY, case.token)


def _reference(case: Case, credentials: Credentials) -> tuple[list[tuple[str, str]], str]:
    """The headers botocore's S3SigV4Auth sends for ``case``, and the timestamp it signed at."""
    scheme = "https" if case.https else "http"
    query = case.query_string
    url = f"{scheme}://{case.host}{case.path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=case.method, url=url, headers={**case.headers, "Host": case.host}, data=case.body)
    if case.payload_signing is not None:
        request.context["client_config"] = SimpleNamespace(s3={"payload_signing_enabled": case.payload_signing})
    if case.streaming:
        request.context["has_streaming_input"] = True
    S3SigV4Auth(credentials.get_frozen_credentials(), "s3", case.region).add_auth(request)
    return list(request.headers.raw_items()), request.context["timestamp"]


def _signed(case: Case, signer: SigV4Signer, timestamp: str) -> list[tuple[str, str]]:
    headers = {**case.headers, "Host": case.host}
    signer.sign(
        case.method,
        case.https,
        case.path,
        case.query_string,
        headers,
        case.body,
        streaming=case.streaming,
        timestamp=timestamp,
    )
    return list(headers.items())


@pytest.mark.parametrize("case", CASES + _random_cases(60), ids=lambda case: case.id)
def test_signer_sends_what_botocore_sends(case: Case) -> None:
    credentials = _credentials(case)
    expected, timestamp = _reference(case, credentials)
    signer = SigV4Signer(credentials, case.region, case.payload_signing)
    assert _signed(case, signer, timestamp) == expected


def test_the_table_covers_signed_and_unsigned_payloads() -> None:
    payloads = set()
    for case in CASES:
        headers, _ = _reference(case, _credentials(case))
        payloads.add(dict(headers)["X-Amz-Content-SHA256"])
    assert UNSIGNED_PAYLOAD in payloads
    assert EMPTY_SHA256_HASH in payloads
    assert len(payloads) > 2  # body hashes too


def test_signing_key_follows_refreshed_credentials_and_the_date() -> None:
    """One signer across a refresh of the credentials object and midnight: never a stale key."""
    credentials = Credentials(ACCESS_KEY, SECRET_KEY)
    case = Case("refresh", method="PUT", headers={"Content-MD5": MD5}, body=BODY)
    signer = SigV4Signer(credentials, case.region, case.payload_signing)
    expected, timestamp = _reference(case, credentials)
    assert _signed(case, signer, timestamp) == expected
    # What a refresh does to botocore's RefreshableCredentials: new keys in the same object
    # (a new secret alone first: the cached key must follow the secret, not only the key id).
    for access_key, secret_key in ((ACCESS_KEY, "rotated/secret"), ("AKIDROTATED", "rotated/again")):
        credentials.access_key, credentials.secret_key, credentials.token = access_key, secret_key, TOKEN
        expected, timestamp = _reference(case, credentials)
        assert _signed(case, signer, timestamp) == expected
    # Across a date: botocore's own steps at fixed timestamps give the signature to expect.
    reference = S3SigV4Auth(credentials.get_frozen_credentials(), "s3", case.region)
    for timestamp in ("20240229T235959Z", "20240301T000000Z", "20240229T235959Z"):
        headers = dict(_signed(case, signer, timestamp))
        authorization = headers.pop("Authorization")
        request = AWSRequest(method=case.method, url=f"http://{case.host}{case.path}", headers=headers, data=BODY)
        request.context["timestamp"] = timestamp
        to_sign = reference.string_to_sign(request, reference.canonical_request(request))
        assert authorization.endswith(f"Signature={reference.signature(to_sign, request)}")
        assert f"/{timestamp[:8]}/us-east-1/s3/aws4_request," in authorization


def test_signer_repr_shows_no_secret_or_key() -> None:
    credentials = Credentials(ACCESS_KEY, SECRET_KEY, TOKEN)
    signer = SigV4Signer(credentials, "us-east-1", False)
    _signed(Case("repr"), signer, "20240101T000000Z")
    text = repr(signer)
    assert SECRET_KEY not in text and TOKEN not in text and ACCESS_KEY not in text
    assert "us-east-1" in text

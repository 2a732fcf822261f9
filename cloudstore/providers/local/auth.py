"""The key of LOCAL's signed URLs: how the backend signs them and ``cloudstore serve`` checks them.

LOCAL has no credentials to log in with; what stands for them is ``local_secret``, an HMAC-SHA256
key both sides hold. A URL signs its method, bucket, name, expiry and every value it pins
(:data:`PINNED_PARAMETERS`), so none of them can be changed without the key.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode

from cloudstore._signing import canonical, expiry_timestamp, hmac_sha256_hex, signature_matches
from cloudstore.backend import UrlPins
from cloudstore.exceptions import InvalidParamException

#: Query parameters of a signed URL that pin something about the request; signed with it.
PINNED_PARAMETERS = ("content_type", "content_md5", "meta", "max_size")
#: The shortest secret ``cloudstore serve`` accepts: a key short enough to guess is brute-forced
#: from one URL.
MIN_SECRET_BYTES = 32


def check_secret(secret: str) -> None:
    """Refuse (``ValueError``) an HMAC key too short to resist guessing."""
    if len(secret.encode("utf-8")) < MIN_SECRET_BYTES or not secret.strip():
        raise ValueError(
            f"the secret must be at least {MIN_SECRET_BYTES} bytes; make one with "
            'python -c "import secrets; print(secrets.token_hex(32))"'
        )


def sign_request(
    secret: str, method: str, bucket: str, name: str, expires: int, pinned: Mapping[str, str] | None = None
) -> str:
    """The signature of a LOCAL signed URL, with the values it pins (:data:`PINNED_PARAMETERS`)."""
    extra = [f"{key}={pinned[key]}" for key in PINNED_PARAMETERS if pinned and key in pinned]
    return hmac_sha256_hex(secret, canonical(method, bucket, name, expires, *extra))


def pins_query(pins: UrlPins) -> dict[str, str]:
    """The query parameters a PUT URL pins, as ``cloudstore serve`` reads them back."""
    query = {}
    if pins.content_type:
        query["content_type"] = pins.content_type
    if pins.content_md5:
        query["content_md5"] = base64.b64encode(pins.content_md5).decode("ascii")
    if pins.metadata:
        query["meta"] = json.dumps(dict(sorted(pins.metadata.items())), separators=(",", ":"))
    return query


def signed_url(
    base_url: str,
    secret: str | None,
    bucket: str,
    name: str,
    method: str,
    expires_in: int,
    pinned: Mapping[str, str],
) -> str:
    """A URL of ``cloudstore serve`` at ``base_url`` for ``method`` on the object, valid for
    ``expires_in`` seconds; :class:`~cloudstore.InvalidParamException` without a secret."""
    if not secret:
        raise InvalidParamException(
            "LOCAL signed URLs need a secret: set config key 'local_secret' (or CLOUDSTORE_LOCAL_SECRET) "
            "to the same value given to 'cloudstore serve --secret'"
        )
    expires = expiry_timestamp(expires_in)
    signature = sign_request(secret, method, bucket, name, expires, pinned)
    query = urlencode({"method": method, "expires": expires, **pinned, "signature": signature})
    return f"{base_url}/{quote(bucket)}/{quote(name, safe='/')}?{query}"


def refusal(
    secret: str,
    method: str,
    bucket: str,
    name: str,
    signed: tuple[str, int, str],
    pinned: Mapping[str, str],
) -> str | None:
    """Why a request for ``method`` on the object with the ``(method, expires, signature)`` its URL
    was ``signed`` with must be refused; ``None`` if it may go ahead. The message names no value."""
    signed_method, expires, signature = signed
    if not signature_matches(sign_request(secret, signed_method, bucket, name, expires, pinned), signature):
        return "signature does not match"
    if signed_method != method:
        return f"this URL is signed for {signed_method}, not {method}"
    if expires < time.time():
        return "this URL has expired"
    return None

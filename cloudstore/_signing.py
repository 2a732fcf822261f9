"""Signing helpers shared by providers that sign URLs themselves (LOCAL, Swift TempURL)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time


def expiry_timestamp(expires_in: int, now: float | None = None) -> int:
    """The Unix time ``expires_in`` seconds from now."""
    return int(now if now is not None else time.time()) + int(expires_in)


def hmac_sha256_hex(key: str | bytes, message: str) -> str:
    """HMAC-SHA256 of ``message`` under ``key``, in hex."""
    raw_key = key.encode("utf-8") if isinstance(key, str) else key
    return hmac.new(raw_key, message.encode("utf-8"), hashlib.sha256).hexdigest()


def canonical(*fields: str | int) -> str:
    """An unambiguous string of ``fields`` to sign (no field can run into the next)."""
    return json.dumps([str(f) for f in fields], ensure_ascii=False, separators=(",", ":"))


def signature_matches(expected_hex: str, given: str) -> bool:
    """Compare two signatures in constant time."""
    return hmac.compare_digest(expected_hex.encode("ascii"), given.encode("ascii", "replace"))

"""Secrets kept out of log records: the SDKs cloudstore drives log requests at DEBUG level, with
session tokens, signatures, SAS tokens, auth headers and Swift TempURL keys in them.

:func:`protect` is called once per provider when its backend is made. It registers the provider's
secret config values and installs, once per process, a log record factory that passes every
record of the SDK loggers (and cloudstore's own) through :class:`RedactingFilter` as it is made.
A factory rather than a filter on each logger, because a logger's filters do not see the records
of its child loggers (``botocore.endpoint``, ``urllib3.connectionpool``, ...), and SDKs make
child loggers as they import their modules, after any list made up front.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

#: Loggers whose records are redacted (a record's logger name starts with one of these).
LOGGER_PREFIXES = (
    "cloudstore",
    "botocore",
    "boto3",
    "s3transfer",
    "urllib3",
    "requests",
    "azure",
    "google",
    "google_auth_httplib2",
    "keystoneauth",
    "keystoneauth1",
    "openstack",
    "swiftclient",
)

MASK = "***"

# Query or form fields whose value is a credential (S3/GCS presigned URLs, Azure SAS, Swift TempURL,
# LOCAL signed URLs, OAuth).
_FIELD = re.compile(
    r"(?i)\b(x-amz-security-token|x-amz-signature|x-goog-signature|signature|sig|temp_url_sig|"
    r"access_token|refresh_token|id_token|client_secret|password|accountkey|sharedaccesssignature)"
    r"(\s*[=:]\s*|%3D)([^&;\s'\",)]+)"
)
# Headers whose value is a credential, as "Name: value" lines or in a dict's repr.
_HEADER = re.compile(
    r"(?i)(['\"]?(?:authorization|proxy-authorization|x-amz-security-token|x-auth-token|x-storage-token|"
    r"x-subject-token|x-service-token|x-(?:account|container)-meta-temp-url-key(?:-2)?|x-goog-api-key|"
    r"x-ms-copy-source-authorization|cookie|set-cookie)['\"]?\s*[:=]\s*b?['\"]?)([^'\"\r\n}]+)"
)
# JSON members holding a credential (keystone auth bodies, OAuth token responses, service accounts).
_JSON = re.compile(
    r"(?i)(['\"](?:password|secret|token|access_token|refresh_token|id_token|private_key|private_key_id|"
    r"client_secret|account_key|sas_token|session_token|temp_url_key)['\"]\s*:\s*['\"])((?:[^'\"\\]|\\.)*)"
)

_MIN_SECRET = 6  # shorter values would mask ordinary words; patterns above still catch them in place


class RedactingFilter(logging.Filter):
    """Masks credentials in a record's message, arguments and exception text (never drops a record)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        self.add_secrets(secrets)

    def add_secrets(self, secrets: Iterable[str]) -> None:
        """Mask these exact values too (wherever they appear)."""
        with self._lock:
            self._secrets.update(s for s in secrets if len(s) >= _MIN_SECRET)

    def redact(self, text: str) -> str:
        """``text`` with every credential masked."""
        with self._lock:
            known = sorted(self._secrets, key=len, reverse=True)  # a secret may contain a shorter one
        for secret in known:
            if secret in text:
                text = text.replace(secret, MASK)
        text = _FIELD.sub(rf"\1\2{MASK}", text)
        text = _HEADER.sub(rf"\1{MASK}", text)
        return _JSON.sub(rf"\1{MASK}", text)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the handler's own error path
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


REDACTOR = RedactingFilter()
_installed = False
_install_lock = threading.Lock()


def _is_protected(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in LOGGER_PREFIXES)


def _install() -> None:
    global _installed
    with _install_lock:
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if _is_protected(record.name):
                REDACTOR.filter(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def secret_texts(value: Any) -> list[str]:
    """The strings inside a secret config value (a service-account dict holds several)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bytes):
        return [value.decode("utf-8", "replace")]
    if isinstance(value, Mapping):
        return [text for item in value.values() for text in secret_texts(item)]
    return []


def protect(secrets: Iterable[Any]) -> None:
    """Keep ``secrets`` (and credentials of known shapes) out of the SDKs' log records."""
    REDACTOR.add_secrets(text for value in secrets for text in secret_texts(value))
    _install()

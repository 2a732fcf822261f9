"""No secret reaches a log record, at DEBUG level, on any provider: the SDKs log requests (URLs with
signatures and SAS tokens, auth headers, TempURL keys, keystone bodies) and cloudstore redacts them.

Also: text and JSON downloads still work with DEBUG logging on (keystoneauth would read a streamed
body to log it), and a malformed config file line is reported by number, never echoed.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from cloudstore import CloudProvider, InvalidParamException, NotSupportedException, ProviderList
from cloudstore._logging import MASK, RedactingFilter
from cloudstore.config import resolve_config
from cloudstore.registry import spec_for
from tests.conftest import Servers, fresh_bucket, make_provider
from tests.support.servers.base import RunningServer

#: Entries of a service-account dict that are credentials (the rest, like its e-mail, are not).
SECRET_MEMBERS = ("private_key", "private_key_id", "client_secret", "refresh_token")
#: Server extras that hold credentials of the account the provider uses.
SECRET_EXTRAS = ("temp_url_key", "sas_token", "account_key", "connection_string", "secret_key")
#: Query fields of signed URLs that are signatures.
SIGNATURE_FIELDS = {"x-amz-signature", "x-goog-signature", "sig", "temp_url_sig", "signature"}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.texts: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.texts.append(self.format(record))


@pytest.fixture
def debug_log() -> Iterator[Capture]:
    """Every record of every logger, at DEBUG, as the formatter renders it."""
    root = logging.getLogger()
    capture = Capture()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(level)


def secrets_of(server: RunningServer) -> list[str]:
    """The credentials in a server's provider config (and its extras), as text."""
    keys = spec_for(server.name).all_keys()
    found: list[str] = []
    for name, value in server.config.items():
        if isinstance(value, Mapping):
            found += [str(value[k]) for k in SECRET_MEMBERS if value.get(k)]
        elif isinstance(value, str) and name in keys and keys[name].secret:
            found.append(value)
    found += [str(server.extra[k]) for k in SECRET_EXTRAS if isinstance(server.extra.get(k), str)]
    return [s for s in found if len(s) >= 6]


def signatures(url: str) -> list[str]:
    return [value for key, value in parse_qsl(urlsplit(url).query) if key.lower() in SIGNATURE_FIELDS]


def exercise(provider: CloudProvider) -> list[str]:
    """A few operations of every kind; the signatures of the URLs made."""
    made: list[str] = []
    with fresh_bucket(provider) as bucket:
        obj = bucket.objects.create("logged/doc.json")
        obj.upload(b'{"logged": true}', content_type="application/json")
        text = bucket.objects.create("logged/note.txt")
        text.upload(b"plain text body", content_type="text/plain")
        # Text and JSON come back whole with DEBUG logging on (nothing consumed the stream to log it).
        assert bucket.objects.get("logged/doc.json").read() == b'{"logged": true}'  # type: ignore[union-attr]
        assert bucket.objects.get("logged/note.txt").read() == b"plain text body"  # type: ignore[union-attr]
        assert [o.name for o in bucket.objects.list(prefix="logged/")] == ["logged/doc.json", "logged/note.txt"]
        try:
            made += signatures(obj.generate_url(expires_in=300))
            made += signatures(obj.generate_url(expires_in=300, writable=True))
        except (InvalidParamException, NotSupportedException):  # configured without a way to sign
            pass
    return made


def assert_clean(texts: list[str], secrets: list[str]) -> None:
    logging.getLogger("cloudstore.test").debug("canary")
    assert texts[-1] == "cloudstore.test canary", "the capture is not working"
    for secret in secrets:
        leaks = [t for t in texts if secret in t]
        assert not leaks, f"a secret reached the log: {leaks[0][:300]!r}"


def test_no_secret_reaches_a_debug_log(server: RunningServer, provider: CloudProvider, debug_log: Capture) -> None:
    made = exercise(provider)
    assert_clean(debug_log.texts, secrets_of(server) + made)


def test_no_sas_token_reaches_a_debug_log(servers: Servers, debug_log: Capture) -> None:
    """Azure with only a SAS token: urllib3 logs every URL, and the SAS is in the query."""
    server = servers.get("azure")
    provider = make_provider(server, **server.extra["sas_config"])
    exercise(provider)
    sas = server.extra["sas_token"].lstrip("?")
    assert_clean(debug_log.texts, [sas, dict(parse_qsl(sas))["sig"]])


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        ("GET /b/k?X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE&X-Amz-Signature=abc123def HTTP/1.1", "FQoGZXIvYXdzEXAMPLE"),
        ("GET /b/k?X-Amz-Security-Token=FQoGZXIvYXdzEXAMPLE&X-Amz-Signature=abc123def HTTP/1.1", "abc123def"),
        ("https://acct.blob.core.windows.net/c/b?sv=2021&sp=r&sig=Zm9vYmFyYmF6%3D", "Zm9vYmFyYmF6"),
        ("{'Authorization': b'AWS4-HMAC-SHA256 Credential=AK/x, Signature=0badc0ffee'}", "0badc0ffee"),
        ("{'Authorization': 'Bearer ya29.tokentoken'}", "ya29.tokentoken"),
        ("REQ: curl -g -i -X GET http://h/v1 -H 'X-Auth-Token: AUTH_tk0123456789'", "AUTH_tk0123456789"),
        ("RESP: [204] {'X-Account-Meta-Temp-Url-Key': 'account-wide-key'}", "account-wide-key"),
        ("X-Container-Meta-Temp-URL-Key-2: container-key", "container-key"),
        ('{"auth": {"passwordCredentials": {"username": "u", "password": "hunter22"}}}', "hunter22"),
        ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5;", "c2VjcmV0a2V5"),
        ("http://127.0.0.1:8765/b/k?method=GET&expires=1&signature=feedface", "feedface"),
        ("/v1/AUTH_test/c/o?temp_url_sig=cafebabe&temp_url_expires=1", "cafebabe"),
        ("Signature:\n27ff86dc4bd4e32fa3b4de61f0cdb0e2", "27ff86dc4bd4e32fa3b4de61f0cdb0e2"),
    ],
)
def test_credential_shapes_are_masked(line: str, secret: str) -> None:
    redacted = RedactingFilter().redact(line)
    assert secret not in redacted and MASK in redacted


def test_the_filter_masks_arguments_and_exceptions_of_sdk_records(debug_log: Capture) -> None:
    from cloudstore._logging import protect

    protect(["registered-secret-value"])
    sdk = logging.getLogger("botocore.some.child.made.late")
    sdk.debug("headers %s", {"X-Amz-Security-Token": "tok-in-args"})
    try:
        raise RuntimeError("failed with registered-secret-value")
    except RuntimeError:
        sdk.exception("request failed")
    text = "\n".join(debug_log.texts)
    assert "tok-in-args" not in text and "registered-secret-value" not in text
    assert "request failed" in text and "RuntimeError" in text  # the record itself is kept
    logging.getLogger("someone.elses.app").debug("sig=not-ours-to-touch")
    assert "sig=not-ours-to-touch" in debug_log.texts[-1]


@pytest.mark.parametrize(
    "content",
    [
        "[local]\nlocal_secret TOPSECRETVALUE\n",  # no '='
        "local_secret = TOPSECRETVALUE\n[local]\n",  # no section header
        "[local]\nlocal_root = /x\n  continued TOPSECRETVALUE\nlocal_secret = a\nlocal_secret = TOPSECRETVALUE\n",
    ],
)
def test_a_malformed_config_line_is_reported_by_number_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    path = tmp_path / "config.ini"
    path.write_text(content)
    monkeypatch.setenv("CLOUDSTORE_CONFIG", str(path))
    with pytest.raises(InvalidParamException) as caught:
        resolve_config(spec_for(ProviderList.LOCAL), {})
    assert re.search(r"line \d", str(caught.value))
    shown = "".join(traceback.format_exception(caught.value))
    assert "TOPSECRETVALUE" not in shown


#: The one repr style of cloudstore's objects (docs: "Writing a provider"): ``<ClassName ...>``.
ANGLE_REPR = re.compile(r"^<[A-Z][A-Za-z0-9]*( [^\n]*)?>$")


def test_reprs_share_one_style_and_show_no_secret(server: RunningServer, provider: CloudProvider) -> None:
    """Every object a user or a log may print, the provider's backend included, reads
    ``<ClassName key=value ...>`` and shows no credential."""
    from cloudstore.testing import SpyBackend, backend_of

    with fresh_bucket(provider) as bucket:
        obj = bucket.objects.create("shown.txt")
        obj.upload(b"shown")
        with obj.open("rb") as reader:
            shown = [repr(reader)]
        backend = backend_of(provider)
        shown += [repr(x) for x in (provider, provider.config, provider.storage, provider.storage.buckets, bucket)]
        shown += [repr(bucket.objects), repr(obj), repr(backend), repr(SpyBackend(backend)), str(provider.config)]
    for text in shown:
        assert ANGLE_REPR.match(text), f"not <ClassName ...>: {text!r}"
        for secret in secrets_of(server):
            assert secret not in text

"""Browser form uploads (``generate_post``): real multipart/form-data POSTs, as a browser sends them."""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from cloudstore import Bucket, NotSupportedException, SignedPost


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The answer to the POST itself (a redirect is a status to check, not a page to fetch)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _quoted(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def post(form: SignedPost, data: bytes, content_type: str = "application/octet-stream", **changed: str) -> int:
    """POST ``data`` with the form's fields (``changed`` replacing some) as ``multipart/form-data``:
    the fields first, the file last. The answer's status."""
    boundary = f"cloudstore-{secrets.token_hex(16)}"
    body = bytearray()
    for name, value in {**form.fields, **changed}.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(name)}"\r\n\r\n{value}\r\n'.encode()
    filename = _quoted(form.filename or "upload.bin")
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{_quoted(form.file_field)}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        form.url, data=bytes(body), method="POST", headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}
    )
    try:
        with urllib.request.build_opener(_NoRedirects).open(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as err:
        err.read()
        return int(err.code)


@pytest.mark.needs("signed_posts")
def test_form_upload_stores_the_object(bucket: Bucket) -> None:
    before = datetime.now(UTC)
    form = bucket.objects.create("inbox/report.csv").generate_post(600, max_size=1024)
    assert form.method == "POST" and form.max_size == 1024
    assert before + timedelta(seconds=598) <= form.expires_at <= datetime.now(UTC) + timedelta(seconds=601)
    assert 200 <= post(form, b"a,b\n1,2\n", "text/csv") < 300
    stored = bucket.objects.get("inbox/report.csv")
    assert stored is not None and stored.read() == b"a,b\n1,2\n"


@pytest.mark.needs("signed_posts")
def test_form_upload_over_max_size_refused(bucket: Bucket) -> None:
    form = bucket.objects.create("small.bin").generate_post(600, max_size=100)
    assert post(form, b"x" * 101) >= 400
    assert bucket.objects.get("small.bin") is None
    assert 200 <= post(form, b"x" * 100) < 300


@pytest.mark.needs("signed_posts")
def test_tampered_or_expired_form_refused(bucket: Bucket) -> None:
    form = bucket.objects.create("guarded.bin").generate_post(600, max_size=100)
    signatures = ("signature", "x-amz-signature", "x-goog-signature")
    in_fields = [name for name in form.fields if name.lower() in signatures]
    if in_fields:  # the signature travels in the form (S3, GCS, Swift) ...
        assert post(form, b"x", **{in_fields[0]: "0" * len(form.fields[in_fields[0]])}) >= 400
    else:  # ... or in the URL (LOCAL)
        tampered = re.sub(r"signature=[0-9a-f]+", "signature=" + "0" * 64, form.url)
        assert tampered != form.url
        assert post(dataclasses.replace(form, url=tampered), b"x") >= 400
    expired = bucket.objects.create("late.bin").generate_post(1, max_size=100)
    time.sleep(2.5)
    assert post(expired, b"x") >= 400
    assert bucket.objects.get("guarded.bin") is None and bucket.objects.get("late.bin") is None


@pytest.mark.needs("signed_posts", "signed_post_content_type")
def test_form_content_type_enforced(bucket: Bucket) -> None:
    form = bucket.objects.create("page.json").generate_post(600, max_size=100, content_type="application/json")
    assert post(form, b"<html>", **{"Content-Type": "text/html"}) >= 400
    assert bucket.objects.get("page.json") is None
    assert 200 <= post(form, b"{}") < 300
    assert bucket.objects.get("page.json").content_type == "application/json"  # type: ignore[union-attr]


@pytest.mark.lacks("signed_posts", "signed_post_content_type")
def test_no_form_uploads_or_no_content_type_check_is_said(bucket: Bucket) -> None:
    with pytest.raises(NotSupportedException):
        bucket.objects.create("x").generate_post(60, max_size=10, content_type="text/plain")

"""Browser form uploads (``generate_post``): real multipart/form-data POSTs with requests."""

from __future__ import annotations

import dataclasses
import re
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests

from cloudstore import Bucket, NotSupportedException, SignedPost


def post(form: SignedPost, data: bytes, content_type: str = "application/octet-stream", **changed: str) -> int:
    fields = {**form.fields, **changed}
    files = {form.file_field: (form.filename or "upload.bin", data, content_type)}
    response = requests.post(form.url, data=fields, files=files, timeout=30, allow_redirects=False)
    return response.status_code


@pytest.mark.needs("signed_posts")
def test_form_upload_stores_the_object(bucket: Bucket) -> None:
    before = datetime.now(timezone.utc)
    form = bucket.objects.create("inbox/report.csv").generate_post(600, max_size=1024)
    assert form.method == "POST" and form.max_size == 1024
    assert before + timedelta(seconds=598) <= form.expires_at <= datetime.now(timezone.utc) + timedelta(seconds=601)
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

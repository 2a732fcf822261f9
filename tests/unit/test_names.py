"""The name rules of cloudstore/_names.py: what each service accepts and refuses (pure logic)."""

from __future__ import annotations

import pytest

from cloudstore import InvalidNameException
from cloudstore._names import (
    azure_blob_name,
    azure_container_name,
    gcs_bucket_name,
    local_bucket_name,
    local_object_name,
    object_name_max_bytes,
    s3_bucket_name,
    swift_container_name,
)

S3_VALID = [
    "abc",
    "a" * 63,
    "my-bucket",
    "my.bucket.name",
    "1bucket",
    "bucket1",
    "a-b-c",
    "1.2.3",  # three numbers: not an IP address
    "xn-not-punycode",
    "ends-with-s3alia",
]
S3_INVALID = [
    "",
    "ab",
    "a" * 64,
    "MyBucket",
    "my_bucket",
    "-bucket",
    "bucket-",
    ".bucket",
    "bucket.",
    "my..bucket",
    "my.-bucket",
    "my-.bucket",
    "192.168.5.4",
    "xn--bucket",
    "sthree-bucket",
    "amzn-s3-demo-bucket",
    "bucket-s3alias",
    "bucket--ol-s3",
    "bucket.mrap",
    "bucket--x-s3",
    "bucket--table-s3",
    "my bucket",
    "bück",
    "a\x00b",
]


@pytest.mark.parametrize("name", S3_VALID)
def test_s3_valid(name: str) -> None:
    s3_bucket_name(name)
    local_bucket_name(name)


@pytest.mark.parametrize("name", S3_INVALID)
def test_s3_invalid(name: str) -> None:
    with pytest.raises(InvalidNameException):
        s3_bucket_name(name)
    with pytest.raises(InvalidNameException):
        local_bucket_name(name)


@pytest.mark.parametrize("name", ["abc", "a" * 63, "my-container", "a1-b2-c3", "123"])
def test_azure_container_valid(name: str) -> None:
    azure_container_name(name)


@pytest.mark.parametrize(
    "name",
    ["", "ab", "a" * 64, "my--container", "-container", "container-", "My-container", "my.container", "my_c"],
)
def test_azure_container_invalid(name: str) -> None:
    with pytest.raises(InvalidNameException):
        azure_container_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "abc",
        "my_bucket",
        "my-bucket.example.com",
        "a" * 63,
        ".".join(["a" * 63] * 3) + ".ab",  # 3*63+3 dots+2 = 194 characters with dots
        "a_b-c.d",
    ],
)
def test_gcs_valid(name: str) -> None:
    gcs_bucket_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "ab",
        "a" * 64,  # over 63 without dots
        "a" * 64 + ".com",  # a dot-separated part over 63
        "x" * 223,
        "Bucket",
        "_bucket",
        "bucket_",
        "a..b",
        "goog-bucket",
        "my-google-bucket",
        "my-g00gle-bucket",
        "10.0.0.1",
        "bad bucket",
    ],
)
def test_gcs_invalid(name: str) -> None:
    with pytest.raises(InvalidNameException):
        gcs_bucket_name(name)


@pytest.mark.parametrize("name", ["c", "My Container", "ünïcode", "a" * 256, "é" * 128, "dots.and-dashes_"])
def test_swift_container_valid(name: str) -> None:
    swift_container_name(name)


@pytest.mark.parametrize("name", ["", "a/b", "/", "a" * 257, "é" * 129, "a\x00b"])
def test_swift_container_invalid(name: str) -> None:
    with pytest.raises(InvalidNameException):
        swift_container_name(name)


OBJECT_VALID = ["a", "a/b/c", "with space", "ünïcode/日本語", "../x", "a//b", "x" * 1024, "é" * 512, "😀" * 256]
OBJECT_INVALID = ["", "a\x00b", "x" * 1025, "é" * 513, "😀" * 257, "lone\ud800surrogate", "\udfff"]


@pytest.mark.parametrize("name", OBJECT_VALID)
def test_object_name_valid(name: str) -> None:
    object_name_max_bytes(1024)(name)


@pytest.mark.parametrize("name", OBJECT_INVALID)
def test_object_name_invalid(name: str) -> None:
    with pytest.raises(InvalidNameException):
        object_name_max_bytes(1024)(name)


def test_object_name_limit_counts_utf8_bytes_not_characters() -> None:
    rule = object_name_max_bytes(10)
    rule("é" * 5)  # 10 bytes
    with pytest.raises(InvalidNameException, match="10 bytes"):
        rule("é" * 5 + "x")


@pytest.mark.parametrize("bad", [None, 12, b"bytes"])
def test_non_string_names_are_invalid_names(bad: object) -> None:
    with pytest.raises(InvalidNameException):
        object_name_max_bytes(1024)(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidNameException):
        s3_bucket_name(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["a", "a/b/c", "with space", "ünïcode/ñ", "a.b/..c/d..", "x" * 255, "a/" + "y" * 255])
def test_local_object_valid(name: str) -> None:
    local_object_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "a/../../x",
        "a/..",
        "/abs",
        "a//b",
        "./a",
        "a/./b",
        "a/",
        ".",
        "..",
        "a\\b",
        "..\\x",
        "a\x00b",
        "x" * 256,
        "a/" + "y" * 256,
        "lone\ud800",
    ],
)
def test_local_object_invalid(name: str) -> None:
    with pytest.raises(InvalidNameException):
        local_object_name(name)


@pytest.mark.parametrize("name", ["a", "a/b.c", "x" * 1024, "..x", "a/.b"])
def test_azure_blob_valid(name: str) -> None:
    azure_blob_name(name)


@pytest.mark.parametrize("name", ["", "a.", "a/b./c", ".", "..", "a/../b", "x" * 1025, "\ud800"])
def test_azure_blob_invalid(name: str) -> None:
    with pytest.raises(InvalidNameException):
        azure_blob_name(name)


def test_message_names_the_reason() -> None:
    with pytest.raises(InvalidNameException, match="IP address"):
        s3_bucket_name("10.1.2.3")
    with pytest.raises(InvalidNameException, match="3 to 63"):
        s3_bucket_name("ab")

"""How the AWS provider's lean path reads a ListObjectsV2 answer (providers/aws/rest.py
``list_page``): the shapes other S3 services send than the SeaweedFS the suite runs on."""

from __future__ import annotations

from datetime import UTC, datetime

from cloudstore.providers.aws.rest import list_page

NS = "http://s3.amazonaws.com/doc/2006-03-01/"


def answer(contents: str, tail: str = "<IsTruncated>false</IsTruncated>", ns: str = NS) -> bytes:
    xmlns = f' xmlns="{ns}"' if ns else ""
    head = '<?xml version="1.0" encoding="UTF-8"?>'
    return f"{head}<ListBucketResult{xmlns}>{tail}{contents}</ListBucketResult>".encode()


def test_fields_keys_decoded_and_the_continuation_token() -> None:
    # AWS's order of fields, an owner (fetch-owner) whose children are no object's fields,
    # keys URL-encoded ("+" is a space there, "%2B" a plus).
    body = answer(
        "<Contents><Key>a%2Bb+c</Key><LastModified>2024-05-01T10:00:00.000Z</LastModified>"
        "<ETag>&quot;0123&quot;</ETag><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><Size>17</Size>"
        "<Owner><ID>x</ID><DisplayName>y</DisplayName></Owner><StorageClass>STANDARD</StorageClass></Contents>"
        "<Contents><Key>plain</Key><LastModified>2024-05-02T10:00:00Z</LastModified>"
        '<ETag>"4567-2"</ETag><Size>0</Size></Contents>'
        "<CommonPrefixes><Prefix>dir%20one/</Prefix></CommonPrefixes>",
        tail="<IsTruncated>true</IsTruncated><NextContinuationToken>tok/en==</NextContinuationToken>",
    )
    page = list_page(body)
    assert [(o.name, o.size, o.etag) for o in page.items] == [("a+b c", 17, "0123"), ("plain", 0, "4567-2")]
    assert page.items[0].last_modified == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert page.items[0].metadata is None and page.items[0].checksum is None
    assert page.prefixes == ["dir one/"] and page.next_marker == "tok/en=="


def test_an_entry_without_some_field_does_not_shift_the_others() -> None:
    body = answer(
        "<Contents><Key>first</Key><Size>1</Size><LastModified>2024-05-01T10:00:00Z</LastModified></Contents>"
        '<Contents><Key>second</Key><Size>2</Size><ETag>"e2"</ETag></Contents>'
        '<Contents><Key>third</Key><Size>3</Size><ETag>"e3"</ETag>'
        "<LastModified>2024-05-03T10:00:00Z</LastModified></Contents>",
        ns="",
    )
    page = list_page(body)
    got = [(o.name, o.size, o.etag, o.last_modified and o.last_modified.day) for o in page.items]
    assert got == [("first", 1, None, 1), ("second", 2, "e2", None), ("third", 3, "e3", 3)]
    assert page.next_marker is None and page.prefixes == []


def test_an_empty_listing() -> None:
    page = list_page(answer(""))
    assert page.items == [] and page.prefixes == [] and page.next_marker is None

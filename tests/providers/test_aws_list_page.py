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


def test_escaped_text_pretty_printing_and_prefixed_names_read_alike() -> None:
    # A server that ignores encoding-type sends keys XML-escaped; another pretty-prints; a third
    # writes namespace prefixes (read through the tree): the same objects every time.
    escaped = answer(
        "<Contents><Key>a&amp;b &lt;c&gt;</Key><LastModified>2024-05-01T10:00:00Z</LastModified>"
        "<ETag>&#34;e1&#34;</ETag><Size>5</Size></Contents>"
        "<CommonPrefixes><Prefix>p&amp;q/</Prefix></CommonPrefixes>",
        tail="<IsTruncated>true</IsTruncated><NextContinuationToken>a&amp;b</NextContinuationToken>",
    )
    pretty = answer(
        "\n  <Contents>\n    <Key>a%26b%20%3Cc%3E</Key>\n    <LastModified>2024-05-01T10:00:00Z</LastModified>\n"
        '    <ETag>"e1"</ETag>\n    <Size>5</Size>\n  </Contents>\n'
        "  <CommonPrefixes>\n    <Prefix>p%26q/</Prefix>\n  </CommonPrefixes>\n",
        tail="<IsTruncated>true</IsTruncated>\n<NextContinuationToken>a&amp;b</NextContinuationToken>",
    )
    prefixed = (
        f'<s3:ListBucketResult xmlns:s3="{NS}"><s3:IsTruncated>true</s3:IsTruncated>'
        "<s3:NextContinuationToken>a&amp;b</s3:NextContinuationToken>"
        "<s3:Contents><s3:Key>a%26b+%3Cc%3E</s3:Key><s3:LastModified>2024-05-01T10:00:00Z</s3:LastModified>"
        "<s3:ETag>&quot;e1&quot;</s3:ETag><s3:Size>5</s3:Size></s3:Contents>"
        "<s3:CommonPrefixes><s3:Prefix>p%26q/</s3:Prefix></s3:CommonPrefixes></s3:ListBucketResult>"
    ).encode()
    for body in (escaped, pretty, prefixed):
        page = list_page(body)
        assert [(o.name, o.size, o.etag) for o in page.items] == [("a&b <c>", 5, "e1")]
        assert page.items[0].last_modified == datetime(2024, 5, 1, 10, tzinfo=UTC)
        assert page.prefixes == ["p&q/"] and page.next_marker == "a&b"


def test_a_page_that_is_not_truncated_has_no_marker_even_with_a_token() -> None:
    body = answer(
        '<Contents><Key>k</Key><LastModified>2024-05-01T10:00:00Z</LastModified><ETag>"e"</ETag><Size>1</Size></Contents>',
        tail="<IsTruncated>false</IsTruncated><NextContinuationToken>stale</NextContinuationToken>",
    )
    assert list_page(body).next_marker is None

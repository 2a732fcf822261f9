"""The azure provider's lean request path (providers/azure/rest.py): Shared Key signing checked
against the SDK's own signer, and on Azurite one request per operation over kept-alive
connections, the wire format of each request, batch deletes (bearer tokens: test_azure.py)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random
from functools import cmp_to_key
from typing import Any

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy, compare

from cloudstore import (
    Bucket,
    InvalidParamException,
    NotFoundException,
    PreconditionFailedException,
)
from cloudstore.providers.azure.auth import header_order, shared_key_signature
from cloudstore.providers.azure.rest import WHOLE_BATCH, batch_answers
from cloudstore.testing import backend_of, call_through
from tests.conftest import (
    bucket_fixture,
    make_provider,
    provider_fixture,
    server_fixture,
    unique_name,
)
from tests.support.proxy import FaultProxy
from tests.support.servers import azurite as azurite_server
from tests.support.servers.base import RunningServer

ACCOUNT = "devstoreaccount1"
KEY = azurite_server.ACCOUNT_KEY


def sdk_signature(method: str, url: str, headers: dict[str, str]) -> str:
    """The Authorization header azure-storage-blob's own Shared Key policy puts on the request."""
    request = HttpRequest(method, url, headers=dict(headers))
    SharedKeyCredentialPolicy(ACCOUNT, KEY).on_request(PipelineRequest(request, PipelineContext(None)))
    return str(request.headers["Authorization"])


REQUESTS = [
    ("GET", "/devstoreaccount1/box/a.txt", [], {"x-ms-range": "bytes=10-19"}),
    ("HEAD", "/box/dir/a%20b%2B%C3%BC.txt", [], {}),
    (
        "PUT",
        "/devstoreaccount1/box/put.bin",
        [],
        {
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/octet-stream",
            "x-ms-blob-content-type": "text/plain",
            "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww==",
            "Content-Length": "11",
            "If-None-Match": "*",
            # Azure's collation of x-ms- names: hyphens count only to break ties, '_' before letters.
            "x-ms-meta-a-b": "1",
            "x-ms-meta-ab": "2",
            "x-ms-meta-a_c": "3",
            "x-ms-meta-Zed": "4",
            "x-ms-meta-empty": "",
        },
    ),
    ("PUT", "/box/blocks.bin", [("comp", "block"), ("blockid", "WW14dlkycz0%3D")], {"Content-Length": "0"}),
    (
        "GET",
        "/devstoreaccount1/box",
        [
            ("restype", "container"),
            ("comp", "list"),
            ("prefix", "d%C3%BC%2F"),
            ("marker", "2%21x"),
            ("include", "metadata"),
        ],
        {},
    ),
    ("DELETE", "/box/a", [], {"x-ms-delete-snapshots": "include", "If-Match": '"0x8D1"'}),
]


@pytest.mark.parametrize(("method", "path", "query", "headers"), REQUESTS)
def test_shared_key_signature_is_the_sdks(
    method: str, path: str, query: list[tuple[str, str]], headers: dict[str, str]
) -> None:
    headers = {"x-ms-version": "2026-10-06", "x-ms-date": "Tue, 01 Dec 2026 18:21:02 GMT", **headers}
    url = "http://127.0.0.1:10000" + path + ("?" + "&".join(f"{k}={v}" for k, v in query) if query else "")
    ours = shared_key_signature(ACCOUNT, base64.b64decode(KEY), method, path, query, headers)
    assert ours == sdk_signature(method, url, headers)
    # And it signs what it should: another header value, path or query changes it.
    changed = shared_key_signature(ACCOUNT, base64.b64decode(KEY), method, path + "x", query, headers)
    assert changed != ours


def test_header_order_is_azures_collation() -> None:
    rng = random.Random(3)
    alphabet = "ab-_z0'.~+!"
    for _ in range(300):
        names = ["x-ms-" + "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6))) for _ in range(6)]
        expected = sorted(names, key=cmp_to_key(compare))
        ours = sorted(names, key=header_order)
        # Names the collation calls equal may come in either order; all others as the SDK has them.
        assert [header_order(n) for n in ours] == [header_order(n) for n in expected]
        assert all(compare(a, b) <= 0 for a, b in itertools.pairwise(ours)), ours


ANSWER = (
    b"--batch_1\r\nContent-Type: application/http\r\nContent-ID: 0\r\n\r\nHTTP/1.1 202 Accepted\r\n"
    b"x-ms-delete-type-permanent: true\r\n\r\n"
    b"--batch_1\r\nContent-Type: application/http\r\nContent-ID: 1\r\n\r\n"
    b"HTTP/1.1 404 The specified blob does not exist.\r\nx-ms-error-code: BlobNotFound\r\n"
    b'content-type: application/xml\r\n\r\n<?xml version="1.0" encoding="UTF-8"?>\n<Error>\n'
    b"  <Code>BlobNotFound</Code>\n  <Message>The specified blob does not exist.\nRequestId:1\n</Message>\n"
    b"</Error>\r\n\r\n"
    b"--batch_1\r\nContent-Type: application/http\r\nContent-ID: 2\r\n\r\n"
    b"HTTP/1.1 412 There is currently a lease on the blob.\r\nx-ms-error-code: LeaseIdMissing\r\n\r\n"
    b"--batch_1--"
)


def test_batch_answers_are_read_by_content_id() -> None:
    assert batch_answers(ANSWER, "batch_1") == {
        0: (202, None, "Accepted"),
        1: (404, "BlobNotFound", "The specified blob does not exist."),
        2: (412, "LeaseIdMissing", "There is currently a lease on the blob."),
    }
    # A refusal of the whole batch comes as one sub-response without a Content-ID.
    refused = (
        b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 One of the request inputs is not valid.\r\n"
        b"x-ms-error-code: InvalidInput\r\n\r\n--b--"
    )
    assert batch_answers(refused, "b") == {
        WHOLE_BATCH: (400, "InvalidInput", "One of the request inputs is not valid.")
    }
    assert batch_answers(b"not multipart", "") == {}


# --- on Azurite ------------------------------------------------------------------------------


azurite = server_fixture("azure")
provider = provider_fixture(server="azurite")
container = bucket_fixture("lean")


def test_each_operation_is_one_request_on_kept_alive_connections(azurite: RunningServer, container: Bucket) -> None:
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        provider = make_provider(azurite, azure_blob_endpoint=f"{proxy.url}/{ACCOUNT}")
        backend = backend_of(provider)
        data = os.urandom(16 * 1024)
        proxy.reset_stats()
        for number in range(20):
            backend.put_object(container.name, f"k/{number}", data, "text/plain", {"n": str(number)})
            with backend.get_object(container.name, f"k/{number}") as body:
                assert body.read() == data
            info = backend.head_object(container.name, f"k/{number}")
            assert info is not None and info.metadata == {"n": str(number)} and info.content_type == "text/plain"
        page = backend.list_objects(container.name, "k/", None, 5, None)
        assert [o.name for o in page.items] == ["k/0", "k/1", "k/10", "k/11", "k/12"] and page.next_marker
        assert page.items[0] == backend.head_object(container.name, "k/0")  # the listing tells it all
        backend.delete_object(container.name, "k/0")
        assert backend.head_object(container.name, "k/0") is None
        methods = [r.method for r in proxy.requests]
        assert methods == ["PUT", "GET", "HEAD"] * 20 + ["GET", "HEAD", "DELETE", "HEAD"]
        # Sequential requests share one kept-alive connection.
        assert len({r.connection for r in proxy.requests}) == 1
    provider.close()


def test_wire_format_of_puts_ranges_and_blocks(azurite: RunningServer, container: Bucket) -> None:
    backend = backend_of(container.provider)
    data = b"0123456789" * 10
    backend.put_object(container.name, "dir/ü +%.bin", data, None, {}, content_md5=hashlib.md5(data).digest())
    with backend.get_object(container.name, "dir/ü +%.bin", 95) as tail:
        # A range says the whole blob's size and MD5 (Content-Range and x-ms-blob-content-md5).
        assert tail.read() == b"56789"
        assert tail.info is not None and tail.info.size == 100
        assert tail.info.checksum == ("md5", hashlib.md5(data).hexdigest())
        assert tail.info.content_type == "application/octet-stream"
    backend.put_object(container.name, "empty", b"", None, {})
    with backend.get_object(container.name, "empty") as empty:
        assert empty.read() == b"" and empty.info is not None and empty.info.size == 0
    with pytest.raises(InvalidParamException) as beyond:
        call_through(container.provider, lambda: backend.get_object(container.name, "empty", 5, 9))
    assert beyond.value.status == 416

    upload = backend.create_multipart_upload(container.name, "blocks.bin", "text/csv", {"m": "1"})
    parts = [backend.upload_part(upload, n, 0, bytes([n]) * 1000) for n in (1, 2)]
    backend.complete_multipart_upload(upload, parts)  # the SDK commits the blocks the lean path staged
    got = container.objects.get("blocks.bin")
    assert got is not None and got.read() == b"\x01" * 1000 + b"\x02" * 1000

    page = backend.list_objects(container.name, None, "/", None, None)
    assert page.prefixes == ["dir/"] and [o.name for o in page.items] == ["blocks.bin", "empty"]


def test_missing_blob_and_container_answers(azurite: RunningServer, container: Bucket) -> None:
    backend = backend_of(container.provider)
    call = container.provider._call
    gone = unique_name("gone")
    assert backend.head_object(container.name, "absent") is None
    assert backend.head_object(gone, "absent") is None
    for bucket, code in ((container.name, "BlobNotFound"), (gone, "ContainerNotFound")):
        with pytest.raises(NotFoundException) as missing:
            call(lambda b=bucket: backend.get_object(b, "absent"))  # type: ignore[misc]
        assert (missing.value.status, missing.value.code) == (404, code)
    with pytest.raises(NotFoundException) as listing:
        call(lambda: backend.list_objects(gone, None, None, None, None))
    assert listing.value.code == "ContainerNotFound"


def test_batch_delete_is_one_request_and_reports_each_blob(azurite: RunningServer, container: Bucket) -> None:
    backend = backend_of(container.provider)
    names = [f"b/{n:03d} ü" for n in range(256)]
    for name in names[:255]:
        backend.put_object(container.name, name, b"x", None, {})
    leased = raw_blob(azurite, container.name, names[7])
    lease = leased.acquire_lease(lease_duration=-1)
    with FaultProxy(upstream=("127.0.0.1", azurite.extra["port"])) as proxy:
        provider = make_provider(azurite, azure_blob_endpoint=f"{proxy.url}/{ACCOUNT}")
        failures = backend_of(provider).delete_objects(container.name, names)
        assert [r.method for r in proxy.requests] == ["POST"]
    # The leased blob stays (Azure wants its lease id); the missing one counts as deleted.
    assert [(name, type(error), error.code) for name, error in failures] == [
        (names[7], PreconditionFailedException, "LeaseIdMissing")
    ]
    lease.release()
    assert [o.name for o in container.objects.list(prefix="b/")] == [names[7]]
    provider.close()


def raw_blob(azurite: RunningServer, container: str, name: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(azurite.extra["connection_string"])
    return client.get_container_client(container).get_blob_client(name)

"""Every code example of CloudBridge's "Working with object storage" page (seeds/003),
run on every provider with only the import line changed.

The examples are kept verbatim below. Their placeholders (``'/path/to/myfile.txt'``,
``source``, ``container``) are filled in from a namespace, as a reader would fill
them in; the statements themselves are unchanged.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from cloudstore import CloudProvider
from cloudstore.testing import Quirks

IMPORT_LINE = "from cloudstore import CloudProviderFactory, ProviderList\n"

STORE = """
bucket = provider.storage.buckets.create('my-bucket')
bucket.objects.list()
"""

UPLOAD = """
obj = bucket.objects.create('my-data.txt')
obj.upload_from_file('/path/to/myfile.txt')
"""

DOWNLOAD = """
bucket = provider.storage.buckets.find(name='my-bucket')[0]
obj = bucket.objects.find(name='my-data.txt')[0]
print("Size: {0}, Modified: {1}".format(obj.size, obj.last_modified))
with open('/tmp/myfile.txt', 'wb') as f:
    obj.save_content(f)
"""

TOKEN_BUCKET = """
bucket = provider.storage.buckets.get(container)
obj = bucket.objects.create('my_object.txt')
obj.upload_from_file(source)
"""

SIGNED_GET = """
bucket = provider.storage.buckets.get("my-bucket")
obj = bucket.objects.get("my-file.txt")
url = obj.generate_url(expires_in=7200)
"""

SIGNED_PUT = """
bucket = provider.storage.buckets.get("my-bucket")
obj = bucket.objects.create("my-file.txt")
url = obj.generate_url(expires_in=7200, writable=True)
"""

PUT_WITH_REQUESTS = """
import requests
content = b"Hello world!"
# Only Azure requires the x-ms-blob-type header to be present, but there's no harm
# in sending this in for all providers.
headers = {'x-ms-blob-type': 'BlockBlob'}
requests.put(url, data=content)
"""


def run(code: str, namespace: dict[str, Any], tmp_path: Path) -> None:
    """Execute an example, mapping its placeholder paths into ``tmp_path``."""
    code = textwrap.dedent(code)
    code = code.replace("'/path/to/myfile.txt'", repr(str(tmp_path / "myfile.txt")))
    code = code.replace("'/tmp/myfile.txt'", repr(str(tmp_path / "downloaded.txt")))
    exec(compile(IMPORT_LINE + code, "<seed example>", "exec"), namespace)


def test_seed_examples(provider: CloudProvider, tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "myfile.txt").write_bytes(b"my file's bytes")
    namespace: dict[str, Any] = {"provider": provider}
    existing = provider.storage.buckets.get("my-bucket")
    if existing is not None:
        existing.delete(delete_contents=True)
    try:
        run(STORE, namespace, tmp_path)
        run(UPLOAD, namespace, tmp_path)
        run(DOWNLOAD, namespace, tmp_path)
        assert (tmp_path / "downloaded.txt").read_bytes() == b"my file's bytes"
        assert "Size: 15, Modified: " in capsys.readouterr().out

        namespace.update(container="my-bucket", source=str(tmp_path / "myfile.txt"))
        run(TOKEN_BUCKET, namespace, tmp_path)
        assert provider.storage.buckets.get("my-bucket").objects.get("my_object.txt").read() == b"my file's bytes"  # type: ignore[union-attr]

    finally:
        leftover = provider.storage.buckets.get("my-bucket")
        if leftover is not None:
            leftover.delete(delete_contents=True)


@pytest.mark.needs("signed_urls")
def test_seed_signed_url_examples(provider: CloudProvider, quirks: Quirks, tmp_path: Path) -> None:
    requests = pytest.importorskip("requests", reason="the seed's signed-URL examples use requests")
    namespace: dict[str, Any] = {"provider": provider}
    existing = provider.storage.buckets.get("my-bucket")
    if existing is not None:
        existing.delete(delete_contents=True)
    try:
        provider.storage.buckets.create("my-bucket").objects.create("my-file.txt").upload(b"signed")
        run(SIGNED_GET, namespace, tmp_path)
        assert requests.get(namespace["url"], timeout=30).content == b"signed"

        run(SIGNED_PUT, namespace, tmp_path)
        run(PUT_WITH_REQUESTS, namespace, tmp_path)
        stored = provider.storage.buckets.get("my-bucket").objects.get("my-file.txt").read()  # type: ignore[union-attr]
        if quirks.signed_put_headers:
            # The example builds the header but does not pass it; a store that needs it refuses the PUT.
            assert stored == b"signed"
            sent = requests.put(namespace["url"], data=namespace["content"], headers=namespace["headers"], timeout=30)
            assert sent.ok
            stored = provider.storage.buckets.get("my-bucket").objects.get("my-file.txt").read()  # type: ignore[union-attr]
        assert stored == b"Hello world!"
    finally:
        leftover = provider.storage.buckets.get("my-bucket")
        if leftover is not None:
            leftover.delete(delete_contents=True)

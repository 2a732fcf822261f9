"""Where the CPU of a large verified download goes (issue 11), on a fresh SeaweedFS.

Uploads one object twice through cloudstore: from a file (the engine records its whole-object
CRC32C, so a download checks CRC32C range by range) and from a stream of unknown length (no
CRC32C: a download checks the S3 multipart ETag, an MD5 per part). Then downloads each in
alternation (``--rounds``) and reports wall and process CPU time (all threads), and a cProfile of
one download of each kind across all threads (``threading.setprofile`` starts one profiler per
worker thread; their statistics are merged).

    .venv-bench/bin/python benchmarks/profile_download.py --mib 512 --rounds 3
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cloudstore import CloudProviderFactory  # noqa: E402
from tests.support.servers import seaweedfs  # noqa: E402

MiB = 1024 * 1024


class _Stream:
    """A file read as a stream of unknown length."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 - closed by the caller through close()

    def read(self, size: int = -1, /) -> bytes:
        return self._file.read(size)

    def close(self) -> None:
        self._file.close()


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _profiled(run: Callable[[], None]) -> pstats.Stats:
    """``run`` under cProfile in this thread and in every thread it starts."""
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()

    def start(*_: Any) -> None:
        profile = cProfile.Profile(time.thread_time)
        with lock:
            profiles.append(profile)
        profile.enable()  # replaces this hook in the new thread

    main = cProfile.Profile(time.thread_time)
    threading.setprofile(start)
    main.enable()
    try:
        run()
    finally:
        main.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    stats = pstats.Stats(main)
    for profile in profiles:
        profile.disable()
        stats.add(profile)
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--top", type=int, default=18)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cloudstore-profile-"))
    server = seaweedfs.start(work / "server")
    try:
        provider = CloudProviderFactory().create_provider("aws", server.config)
        bucket = provider.storage.buckets.create("profile")
        source = work / "source.bin"
        with open(source, "wb") as out:
            for _ in range(args.mib):
                out.write(os.urandom(MiB))
        bucket.objects.create("with-crc32c").upload_from_file(source)
        stream = _Stream(source)
        try:
            bucket.objects.create("md5-of-parts").upload(stream)
        finally:
            stream.close()
        for name in ("with-crc32c", "md5-of-parts"):
            print(name, "verified against", bucket.objects.get(name) and provider_checksum(bucket, name))
        target = work / "out.bin"

        def download(name: str) -> Callable[[], None]:
            return lambda: bucket.objects.create(name).download_to_file(target)

        load = os.getloadavg()
        print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {args.mib} MiB, {args.rounds} rounds")
        for round_number in range(args.rounds):
            names = ["with-crc32c", "md5-of-parts"][:: 1 if round_number % 2 == 0 else -1]
            for name in names:
                wall, cpu = time.perf_counter(), _cpu()
                download(name)()
                wall, cpu = time.perf_counter() - wall, _cpu() - cpu
                print(f"round {round_number + 1} {name:13s} wall {wall:6.2f} s  cpu {cpu:5.2f} s")
        for name in ("with-crc32c", "md5-of-parts"):
            stats = _profiled(download(name))
            print(f"\n--- cProfile of one download, {name}: CPU time of every thread, by own time ---")
            out = io.StringIO()
            stats.stream = out  # type: ignore[attr-defined]
            stats.sort_stats("tottime").print_stats(args.top)
            print("\n".join(line for line in out.getvalue().splitlines() if line.strip()))
    finally:
        server.stop()


def provider_checksum(bucket: Any, name: str) -> str:
    """Which checksum the download engine checks the object against."""
    from cloudstore._checksums import expected_checksum
    from cloudstore.testing import backend_of

    info = backend_of(bucket.provider).head_object(bucket.name, name)
    checksum = expected_checksum(info) if info is not None else None
    return checksum.algorithm if checksum is not None else "nothing"


if __name__ == "__main__":
    main()

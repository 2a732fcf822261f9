"""Load for tests that must keep working while something changes underneath (e.g. credentials
expiring and being renewed)."""

from __future__ import annotations

import threading
import time

from cloudstore import Bucket


def round_trips(bucket: Bucket, seconds: float, workers: int = 3) -> list[BaseException]:
    """Upload and read back small objects in ``workers`` threads for ``seconds``; what failed.

    Each worker stops at the first failure of any of them, so a failing run ends early.
    """
    failures: list[BaseException] = []
    stop_at = time.monotonic() + seconds

    def work(worker: int) -> None:
        number = 0
        while time.monotonic() < stop_at and not failures:
            try:
                body = f"{worker}-{number}".encode()
                bucket.objects.create(f"{worker}/{number}").upload(body)
                got = bucket.objects.get(f"{worker}/{number}")
                assert got is not None and got.read() == body
            except BaseException as err:
                failures.append(err)
            number += 1

    threads = [threading.Thread(target=work, args=(n,)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures

"""The parts of cloudstore.bulk that need no server: globs, addresses, the rate cap, the budget, reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import cloudstore
from cloudstore import BulkReport, CloudProviderFactory, InvalidParamException, NotFoundException, ProviderList
from cloudstore.bulk import _Budget, _Filter, _Job, _RateLimit, parse_address
from cloudstore.testing import Call, spy_on, unique_name


def test_include_and_exclude_globs() -> None:
    wanted = _Filter(["*.txt", "data/*"], "*/secret*")
    assert wanted("a.txt") and wanted("deep/down/b.txt") and wanted("data/x.bin")
    assert not wanted("a.bin")
    assert not wanted("data/secret.txt")
    assert _Filter(None, None)("anything/at/all")
    with pytest.raises(InvalidParamException):
        _Filter([""], None)


def test_addresses() -> None:
    assert parse_address("s3://bkt/some/prefix") == (ProviderList.AWS, "bkt", "some/prefix")
    assert parse_address("GS:///bkt") == (ProviderList.GCP, "bkt", "")
    assert parse_address("relative/folder") is None
    with pytest.raises(InvalidParamException, match="unknown provider"):
        parse_address("ftp://host/x")


def test_rate_limit_spaces_requests_across_threads() -> None:
    limit = _RateLimit(50)  # one every 20 ms
    started = time.monotonic()
    threads = [threading.Thread(target=limit.acquire) for _ in range(11)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # The first goes at once, the next ten 20 ms apart: a lower bound (the cap), not a speed.
    assert time.monotonic() - started >= 0.19


def test_budget_waits_until_bytes_are_given_back() -> None:
    budget = _Budget(100)
    assert budget.take(70) == 70
    taken: list[int] = []
    waiter = threading.Thread(target=lambda: taken.append(budget.take(50)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive() and taken == []  # 30 bytes free: it waits
    budget.give(70)
    waiter.join(5)
    assert taken == [50]
    budget.give(50)
    assert budget.take(10**9) == 100  # more than the whole budget takes all of it, never blocks forever


def test_report_summary_and_order(tmp_path: Path) -> None:
    assert BulkReport().ok and BulkReport().summary() == "copied 0 (0 B), failed 0"
    spied = spy_on(CloudProviderFactory().create_provider("memory", {"memory_store": unique_name("report")}))
    bucket = spied.provider.storage.buckets.create("report")
    source = tmp_path / "src"
    source.mkdir()
    for name, data in {"a": b"a", "b": b"x" * 1536, "same": b"unchanged", "z": b"z"}.items():
        (source / name).write_bytes(data)
    bucket.objects.create("same").upload(b"unchanged")
    # The upload of "z" fails, then that of "a" (it waits for it): the report lists them by name.
    z_failed = threading.Event()

    def fail_z_then_a(call: Call) -> None:
        if call.args[1] == "z":
            z_failed.set()
            raise NotFoundException("gone")
        if call.args[1] == "a":
            assert z_failed.wait(10)
            raise NotFoundException("gone too")

    spied.backend.before("put_object", fail_z_then_a)
    report = cloudstore.sync(source, (bucket, ""), concurrency=2)
    assert not report.ok
    assert [failure.name for failure in report.failed] == ["a", "z"]
    assert report.failed[0].reason == "NotFoundException: gone too"
    assert report.summary() == "copied 1 (1.5 KiB), skipped 1, failed 2"

    planned = tmp_path / "planned"
    planned.mkdir()
    (planned / "c").write_bytes(b"abc")
    for name in ("y", "x"):
        bucket.objects.create(f"dry/{name}").upload(b"old")
    dry = cloudstore.sync(planned, (bucket, "dry"), delete=True, dry_run=True)
    assert dry.actions == [("copy", "c"), ("delete", "x"), ("delete", "y")]
    assert dry.summary() == "dry run: would have copied 1 (3 B), deleted 2, failed 0"


def test_request_cap_holds_for_a_whole_job(tmp_path: Path) -> None:
    provider = CloudProviderFactory().create_provider(ProviderList.LOCAL, {"local_root": str(tmp_path / "root")})
    bucket = provider.storage.buckets.create("capped")
    source = tmp_path / "src"
    source.mkdir()
    for number in range(10):
        (source / f"{number}.txt").write_bytes(b"x")
    started = time.monotonic()
    report = bucket.upload_dir(source, concurrency=8, max_requests_per_second=20)
    # Ten uploads, one request each, 50 ms apart at least: a lower bound (the cap), not a speed.
    assert report.copied == 10
    assert time.monotonic() - started >= 0.45


def test_job_workers_take_items_in_turn_and_record_each_failure() -> None:
    report = BulkReport()
    running, most, lock = 0, 0, threading.Lock()
    pulled: list[int] = []

    def item(number: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.005)
        with lock:
            running -= 1
        if number % 10 == 0:
            raise NotFoundException(f"item {number}")

    def tasks() -> Iterator[tuple[str, int, Callable[[], None]]]:
        for number in range(40):
            pulled.append(number)
            yield f"n{number:02d}", 1, lambda number=number: item(number)  # type: ignore[misc]

    _Job(report, 3, 2, None).run_all(tasks())
    report._sort()
    assert pulled == list(range(40))
    assert [failure.name for failure in report.failed] == ["n00", "n10", "n20", "n30"]
    # The byte budget (2, each item costs 1) bounds the items running at once below the 3 workers.
    assert most == 2


def test_job_raises_what_breaks_its_stream_after_the_running_items() -> None:
    report = BulkReport()
    done: list[str] = []

    def tasks() -> Iterator[tuple[str, int, Callable[[], None]]]:
        yield "a", 0, lambda: done.append("a")
        raise RuntimeError("the walk broke")

    with pytest.raises(RuntimeError, match="the walk broke"):
        _Job(report, 4, 10, None).run_all(tasks())
    assert done == ["a"] and report.ok

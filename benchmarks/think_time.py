"""Why a sequential 16 KiB GET costs more wall time here than its client CPU says.

In the full run cloudstore's sequential gets trail obstore's by ~0.5 ms of wall time while their
client CPU differs by ~0.1 ms. This measures the two effects behind that on the full run's
server in the full run's state (``run.py``'s data, then its download and put workloads):

- **the server answers later the longer the client thinks**: a raw-socket client (requests
  signed before timing, no parsing, no hashing) with a busy wait of 0, 100, 250 and 500 µs
  between an answer and its next request;
- **Python run right after a wait runs several times slower than hot**: cloudstore's SigV4
  ``sign`` timed hot (in a loop), right after a get, and after 1.5 ms asleep;

next to cloudstore's ``obj.read()`` and obstore's ``get`` on the same objects. Every contender
is a fresh process (100 untimed gets, then 1,000 timed), the order rotated every round. Run from
the repository root with the benchmark venv::

    .venv-bench/bin/python benchmarks/think_time.py [--rounds N] [--no-warm-state]

It prints a Markdown table and writes ``benchmarks/results/think-time-<time>.json``.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks import run  # noqa: E402

BUCKET = "bench"
COUNT, WARM = 1000, 100
SPINS_US = (0, 100, 250, 500)
CONTENDERS = [*(f"raw socket +{spin} us" for spin in SPINS_US), "cloudstore", "obstore", "sign probe"]


def _keys(spec: dict[str, Any]) -> list[str]:
    return list(spec["small_keys"][:COUNT])


def raw_get(spec: dict[str, Any], spin_us: int) -> Callable[[str], Any]:
    """GETs signed in the header (as cloudstore and obstore sign) before timing, over one raw socket."""
    import boto3
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest

    from benchmarks.worker import RawHTTP

    config, endpoint = spec["s3"], spec["s3"]["s3_endpoint_url"]
    credentials = boto3.Session(
        aws_access_key_id=config["aws_access_key"], aws_secret_access_key=config["aws_secret_key"]
    ).get_credentials()
    heads = {}
    for key in _keys(spec):
        request = AWSRequest("GET", f"{endpoint}/{BUCKET}/{key}", headers={"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
        S3SigV4Auth(credentials, "s3", config["aws_region_name"]).add_auth(request)
        heads[key] = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    conn = RawHTTP(endpoint)
    spin = spin_us / 1e6

    def get(key: str) -> int:
        if spin:
            until = time.perf_counter() + spin
            while time.perf_counter() < until:
                pass
        return conn.get(f"{endpoint}/{BUCKET}/{key}", None, extra=heads[key])

    return get


def cloudstore_handles(spec: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    from cloudstore import CloudProviderFactory, ProviderList

    provider = CloudProviderFactory().create_provider(ProviderList.AWS, spec["s3"])
    bucket = provider.storage.buckets.get(BUCKET)
    return provider, {o.name: o for o in bucket.objects.list(limit=COUNT, prefix="small/src/")}


def sign_probe(spec: dict[str, Any]) -> dict[str, float]:
    """Microseconds of one ``sign`` call: hot, right after a get, and after 1.5 ms asleep (medians)."""
    import timeit

    from cloudstore.testing import backend_of

    provider, handles = cloudstore_handles(spec)
    keys = _keys(spec)
    handles[keys[0]].read()
    signer = backend_of(provider)._rest._signer

    def sign() -> None:
        signer.sign("GET", False, f"/{BUCKET}/{keys[0]}", "", {"Host": "127.0.0.1"}, None)

    hot = min(timeit.repeat(sign, number=2000, repeat=5)) / 2000
    after_get, after_sleep = [], []
    for key in keys[:500]:
        handles[key].read()
        started = time.perf_counter()
        sign()
        after_get.append(time.perf_counter() - started)
        time.sleep(0.0015)
        started = time.perf_counter()
        sign()
        after_sleep.append(time.perf_counter() - started)
    provider.close()
    return {
        "sign_hot_us": hot * 1e6,
        "sign_after_get_us": statistics.median(after_get) * 1e6,
        "sign_after_sleep_us": statistics.median(after_sleep) * 1e6,
    }


def child(contender: str, spec: dict[str, Any]) -> dict[str, Any]:
    """One contender's 1,000 timed gets (after 100 untimed): wall and CPU per get."""
    if contender == "sign probe":
        return sign_probe(spec)
    if contender.startswith("raw socket"):
        get = raw_get(spec, int(contender.split("+")[1].split()[0]))
    elif contender == "cloudstore":
        _provider, handles = cloudstore_handles(spec)

        def get(key: str) -> Any:
            return handles[key].read()

    else:
        import obstore
        from obstore.store import S3Store

        config = spec["s3"]
        store = S3Store(
            BUCKET,
            endpoint=config["s3_endpoint_url"],
            access_key_id=config["aws_access_key"],
            secret_access_key=config["aws_secret_key"],
            region=config["aws_region_name"],
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

        def get(key: str) -> Any:
            return bytes(obstore.get(store, key).bytes())

    keys = _keys(spec)
    child_started = time.perf_counter()
    for key in keys[:WARM]:
        get(key)
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    for key in keys:
        get(key)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "wall_ms": wall / len(keys) * 1e3,
        "cpu_ms": cpu / len(keys) * 1e3,
        "child_s": time.perf_counter() - child_started,
    }


def measure(contender: str, spec: dict[str, Any], server: Any) -> dict[str, Any]:
    """Run one contender in a fresh process; its figures, and the server's CPU while it ran."""
    server_before = sum(server.cpu_times()[:2])
    done = subprocess.run(
        [sys.executable, __file__, "--child", contender],
        input=json.dumps(spec),  # on stdin, not argv: it carries the server's keys
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if done.returncode:
        raise RuntimeError(f"{contender} failed:\n{done.stderr[-2000:]}")
    outcome = dict(json.loads(done.stdout.strip().splitlines()[-1]))
    if "wall_ms" in outcome:  # the server's CPU (all its threads) per ms of the whole child's run
        outcome["server_cores"] = (sum(server.cpu_times()[:2]) - server_before) / outcome.pop("child_s")
    return outcome


def report(results: dict[str, list[dict[str, Any]]]) -> str:
    def median(contender: str, field: str) -> float:
        return statistics.median(r[field] for r in results[contender])

    base = median("raw socket +0 us", "wall_ms")
    lines = [
        "| contender | wall ms / get | client CPU ms / get | wall over the raw socket, ms | server's cores busy |",
        "| --- | --- | --- | --- | --- |",
    ]
    for contender in CONTENDERS[:-1]:
        wall = median(contender, "wall_ms")
        lines.append(
            f"| {contender} | {wall:.2f} | {median(contender, 'cpu_ms'):.2f} | {wall - base:+.2f}"
            f" | {median(contender, 'server_cores'):.2f} |"
        )
    probe = {field: median("sign probe", field) for field in results["sign probe"][0]}
    lines.append("")
    lines.append(
        "SigV4 `sign`, µs: hot {sign_hot_us:.1f}, right after a get {sign_after_get_us:.1f}, "
        "after 1.5 ms asleep {sign_after_sleep_us:.1f}".format(**probe)
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-warm-state", action="store_true", help="skip run.py's download and put workloads before the gets"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, json.loads(sys.stdin.read()))))
        return

    work = Path(tempfile.mkdtemp(prefix="cloudstore-think-"))
    workloads = ["put", "get"] if args.no_warm_state else ["download", "put", "get"]
    bench = run.prepare(
        work,
        workloads,
        {"raw socket -> cloudstore serve"},
        big_size=1024 * run.MiB,
        small_count=COUNT,
        walk_keys=2000,
        dir_count=200,
    )
    try:
        if not args.no_warm_state:  # the full run's state: its download and put workloads first
            scratch: dict[str, Any] = {"runs": []}
            for workload in ("download", "put"):
                for contender in ("cloudstore", "obstore", "raw socket"):
                    run.run_one(bench, scratch, 0, workload, contender)
        spec = {"s3": dict(bench.common["s3"]), "small_keys": bench.common["small_keys"]}
        import psutil

        server = psutil.Process(bench.servers[0].processes[0].pid)
        results: dict[str, list[dict[str, Any]]] = {c: [] for c in CONTENDERS}
        for round_number in range(args.rounds):
            shift = round_number % len(CONTENDERS)
            for contender in CONTENDERS[shift:] + CONTENDERS[:shift]:
                outcome = measure(contender, spec, server)
                results[contender].append(outcome)
                print(f"  round {round_number + 1} {contender:20} {json.dumps(outcome)}", flush=True)
    finally:
        bench.stop()
    print(report(results))
    target = ROOT / "benchmarks" / "results" / f"think-time-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"machine": run.machine(), "rounds": args.rounds, "results": results}, indent=1))
    print(f"results in {target}")


if __name__ == "__main__":
    main()

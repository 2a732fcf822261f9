"""Peak memory of ``cloudstore cp -r`` and ``cloudstore sync`` over 100,000 small files (issue 15).

Makes ``--files`` files of ``--size`` bytes in nested folders (100 folders of 10 sub-folders),
then runs each step as its own ``python -m cloudstore`` process, one after the other, and
records the child's peak resident set size (``ru_maxrss`` from ``wait4``: the whole process,
interpreter and imports included), its wall time and its CPU time:

1. ``cp -r SRC aws://bench/tree`` (upload to a fresh SeaweedFS),
2. ``cp -r aws://bench/tree DOWN`` (download into an empty folder),
3. ``sync SRC aws://bench/tree`` with nothing changed (the compare-only pass: the listing kept as
   the index, every local file's MD5 against its object's ETag),
4. ``sync aws://bench/tree DOWN`` with nothing changed (the other direction: the folder is the index),

and the same four on the LOCAL provider (``--no-local`` leaves them out). ``cloudstore --version``
gives the idle process's peak for scale. Run from the repository root with a Python that has
cloudstore's ``aws`` extra and the ``weed`` program (``.venv-bench/bin/python``)::

    .venv-bench/bin/python benchmarks/bulk_memory.py              # 100,000 files of 1 KiB
    .venv-bench/bin/python benchmarks/bulk_memory.py --files 5000 # a smoke run

Everything lives in a temporary folder under /tmp (or ``--workdir``), deleted at the end. The
results go to ``benchmarks/results/bulk-memory-*.json``; ``run.py --bulk-results FILE`` puts them
into the report (a target row and a table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import seaweedfs  # noqa: E402

MiB = 1024 * 1024
RESULTS = ROOT / "benchmarks" / "results"
#: Issue 15's bound on a bulk job's peak resident set size.
LIMIT_MIB = 300
BUCKET = "bench"


def make_tree(root: Path, files: int, size: int) -> None:
    """``files`` files of ``size`` random bytes: ``dNN/sN/fNNNNN.bin``, 100 x 10 folders."""
    body = os.urandom(size + 4096)
    for n in range(files):
        folder = root / f"d{n % 100:02d}" / f"s{n // 100 % 10}"
        if n < 1000:
            folder.mkdir(parents=True, exist_ok=True)
        # Each file its own bytes (a sliding window), so no two share a checksum.
        (folder / f"f{n:06d}.bin").write_bytes(n.to_bytes(4, "big") + body[n % 4096 : n % 4096 + size - 4])


def run_step(args: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``python -m cloudstore ARGS``; its peak RSS, wall and CPU seconds, exit status, summary."""
    with tempfile.TemporaryFile("w+") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "cloudstore", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            text=True,
        )
        deadline = start + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        seconds = time.perf_counter() - start
        out.seek(0)
        lines = out.read().strip().splitlines()
    return {
        "args": args,
        "exit": proc.returncode,
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime,
        "peak_rss": usage.ru_maxrss * 1024,  # KiB on Linux
        "summary": lines[-1] if lines else "",
        "output_tail": lines[-5:] if proc.returncode else [],
    }


def measure(work: Path, files: int, size: int, local: bool, timeout: float, out: Path) -> None:
    """Make the tree in ``work``, start SeaweedFS there, run every step; the results go to ``out``
    after each step (a run cut short keeps what it measured)."""
    source, down = work / "src", work / "down"
    started = time.perf_counter()
    make_tree(source, files, size)
    print(f"made {files:,} files of {size:,} bytes in {time.perf_counter() - started:.0f} s", flush=True)
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CLOUDSTORE_"))}
    base_env["PYTHONPATH"] = str(ROOT)
    server = seaweedfs.start(work)
    results: dict[str, Any] = {"files": files, "size": size, "limit_mib": LIMIT_MIB, "steps": []}
    try:
        config = server.config
        # The keys go to the children in their environment, never on a command line.
        env = base_env | {
            "AWS_ACCESS_KEY_ID": config["aws_access_key"],
            "AWS_SECRET_ACCESS_KEY": config["aws_secret_key"],
            "AWS_DEFAULT_REGION": config["aws_region_name"],
            "AWS_ENDPOINT_URL": config["s3_endpoint_url"],
        }
        if local:
            env["CLOUDSTORE_LOCAL_ROOT"] = str(work / "local-root")
        plan: list[tuple[str, str, list[str]]] = [("-", "idle process (`cloudstore --version`)", ["--version"])]
        for provider in ["aws", "local"] if local else ["aws"]:
            address = f"{provider}://{BUCKET}/tree"
            target = down / provider
            plan += [
                (provider, "make the bucket", ["mb", f"{provider}://{BUCKET}"]),
                (provider, "`cp -r` up", ["cp", "-r", "-q", str(source), address]),
                (provider, "`cp -r` down", ["cp", "-r", "-q", address, str(target)]),
                (provider, "`sync` up, nothing changed", ["sync", "-q", str(source), address]),
                (provider, "`sync` down, nothing changed", ["sync", "-q", address, str(target)]),
            ]
        for provider, label, args in plan:
            step = run_step(args, env, timeout)
            step.update(provider=provider, step=label)
            if label != "make the bucket":
                results["steps"].append(step)
                results["load_average"] = os.getloadavg()
                out.write_text(json.dumps(results, indent=1))
            print(
                f"  {provider:6} {label:36} {step['seconds']:7.1f} s  cpu {step['cpu']:6.1f} s"
                f"  peak {step['peak_rss'] / MiB:6.1f} MiB  exit {step['exit']}  {step['summary']}",
                flush=True,
            )
            if step["exit"]:
                print("\n".join(step["output_tail"]), flush=True)
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per file (at least 4)")
    parser.add_argument("--no-local", dest="local", action="store_false", help="leave out the LOCAL provider")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds one step may take")
    parser.add_argument("--workdir", type=Path, default=None, help="where the files and the server live")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cloudstore-bulkmem-", dir=args.workdir or "/tmp"))
    print(f"work dir {work}", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"bulk-memory-{time.strftime('%Y%m%d-%H%M%S')}.json"
    try:
        measure(work, args.files, max(4, args.size), args.local, args.timeout, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"results in {out}", flush=True)


if __name__ == "__main__":
    main()

"""Turn a results JSON from benchmarks/run.py into benchmarks.md and benchmarks.png."""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

MiB = 1024 * 1024

TITLES = {
    "upload": "Upload of one {big} file",
    "download": "Download of one {big} object to a file",
    "put": "{count} sequential puts of 16 KiB objects",
    "get": "{count} sequential gets of 16 KiB objects",
    "walk_iter": "Walking {keys} keys by iteration",
    "walk_pages": "Walking {keys} keys by list(limit={page}, marker=...) pages",
    "head": "{count} sequential HEADs of 16 KiB objects",
    "dir_upload": "Directory upload: {dir_files} files of 16 KiB",
    "dir_download": "Directory download: {dir_files} objects of 16 KiB into a folder",
}
#: Every workload with a table, in the order of the report.
ORDER = ("upload", "download", "put", "get", "head", "walk_iter", "walk_pages", "dir_upload", "dir_download")

#: What each contender does in each workload.
HOW: dict[str, dict[str, str]] = {
    "upload": {
        "cloudstore": "`bucket.objects.create(k).upload_from_file(path)`, default TransferConfig",
        "boto3": "`client.upload_file` (TransferManager defaults: 8 MiB parts, 10 threads)",
        "boto3 A/A": "the same boto3 `upload_file` again: the noise floor",
        "boto3 put_object": "`client.put_object(Body=open file)`: one PUT, botocore defaults",
        "cloudbridge": "`upload_from_file(path)` (boto3 TransferManager, CloudBridge's part settings)",
        "obstore": "`obstore.put(store, k, Path)` (multipart, its defaults: 5 MiB parts, 12 at once)",
        "s5cmd": "`s5cmd cp FILE s3://...` (its defaults: 50 MiB parts, 5 at once)",
        "rclone": "`rclone copyto FILE remote:...` (its defaults: 5 MiB chunks, 4 at once)",
        "raw socket": "multipart upload on presigned URLs: {streams} raw sockets, {raw_part} MiB parts by `sendfile`",
        "raw socket -> cloudstore serve": "the same raw PUT against `cloudstore serve` (LOCAL signed URL)",
    },
    "download": {
        "cloudstore": "`obj.download_to_file(path)`, default TransferConfig",
        "boto3": "`client.download_file` (TransferManager defaults)",
        "boto3 A/A": "the same boto3 `download_file` again: the noise floor",
        "boto3 get_object": "`get_object()['Body'].read(1 MiB)` into a file: one stream",
        "cloudbridge": "`obj.download_to_file(path)`",
        "cloudbridge save_content": "`obj.save_content(open file)`: one stream",
        "obstore": "`obstore.get(...).stream(8 MiB)` into a file: one stream",
        "s5cmd": "`s5cmd cp s3://... FILE` (its defaults: 50 MiB parts, 5 at once)",
        "rclone": "`rclone copyto remote:... FILE` (its defaults: 4 streams above 256 MiB)",
        "raw socket": "{raw_part} MiB ranged GETs on {streams} raw sockets, `recv_into` + `pwrite`, presigned URL",
        "raw socket -> cloudstore serve": "the same raw GETs against `cloudstore serve` (LOCAL signed URL)",
    },
    "put": {
        "cloudstore": "`bucket.objects.create(k).upload(data)`",
        "boto3": "`client.put_object(Bucket, Key, Body=data)`",
        "boto3 A/A": "the same again",
        "cloudbridge": "`bucket.objects.create(k).upload(data)`",
        "obstore": "`obstore.put(store, k, data)`",
        "obstore async": "`await obstore.put_async(store, k, data)`, one after the other",
        "raw socket": "PUT on a presigned URL over one keep-alive raw socket",
    },
    "get": {
        "cloudstore": "`obj.read()` on handles from a listing",
        "boto3": "`client.get_object(Bucket, Key)['Body'].read()`",
        "boto3 A/A": "the same again",
        "cloudbridge": "`b''.join(obj.iter_content())` on `objects.create(k)` handles",
        "obstore": "`obstore.get(store, k).bytes()`",
        "obstore async": "`await (await obstore.get_async(store, k)).bytes_async()`, one after the other",
        "raw socket": "GET on a presigned URL over one keep-alive raw socket",
    },
    "walk_iter": {
        "cloudstore": "`for o in bucket.objects`",
        "boto3": "`get_paginator('list_objects_v2').paginate(Bucket)`",
        "boto3 A/A": "the same again",
        "cloudbridge": "`for o in bucket.objects`",
        "obstore": "`obstore.list(store, chunk_size=1000)`",
    },
    "head": {
        "cloudstore": "`bucket.objects.get(k)`",
        "boto3": "`client.head_object(Bucket, Key)`",
        "boto3 A/A": "the same again",
        "obstore": "`obstore.head(store, k)`",
        "obstore async": "`await obstore.head_async(store, k)`, one after the other",
    },
    "dir_upload": {
        "cloudstore": "{variant}",
        "boto3": "32 threads over `client.upload_file` (32 pooled connections)",
        "boto3 A/A": "the same again",
        "obstore async": "`obstore.put_async`, 64 in flight (asyncio semaphore)",
        "s5cmd": "`s5cmd cp 'DIR/*' s3://...` (256 workers, its default)",
        "rclone": "`rclone copy DIR remote:... --transfers 32`",
    },
    "dir_download": {
        "cloudstore": "{variant}",
        "boto3": "list, then 32 threads over `client.download_file` (32 pooled connections)",
        "boto3 A/A": "the same again",
        "obstore async": "`obstore.list`, then `obstore.get_async`, 64 in flight",
        "s5cmd": "`s5cmd cp 's3://.../*' DIR/` (256 workers)",
        "rclone": "`rclone copy remote:... DIR --transfers 32`",
    },
    "walk_pages": {
        "cloudstore": "`bucket.objects.list(limit={page}, marker=m)` until not truncated",
        "boto3": "paginator with `PageSize={page}`",
        "boto3 A/A": "the same again",
        "cloudbridge": "`bucket.objects.list(limit={page}, marker=m)`: first {cb_pages} pages timed, scaled up",
    },
}

PEERS = (
    "boto3",
    "boto3 put_object",
    "boto3 get_object",
    "cloudbridge",
    "cloudbridge save_content",
    "obstore",
    "obstore async",
    "s5cmd",
    "rclone",
)
#: The tools the issue-15 bulk targets compare against.
BULK_PEERS = ("s5cmd", "rclone", "obstore async")


def _work_units(workload: str, settings: dict[str, Any]) -> tuple[float, str]:
    """(amount of work, unit) so that amount / seconds is a throughput."""
    if workload in ("upload", "download"):
        return settings["big_size"] / MiB, "MiB/s"
    if workload in ("put", "get", "head"):
        return float(settings["small_count"]), "ops/s"
    if workload in ("dir_upload", "dir_download"):
        return float(settings["dir_count"]), "files/s"
    return float(settings["walk_keys"]), "keys/s"


def summarise(results: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """workload -> contender -> {median, min, max (throughput), rss (median MiB), rounds, per-round}."""
    settings = results["settings"]
    by: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for run in results["runs"]:
        if "error" not in run:
            by[run["workload"]][run["contender"]].append(run)
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for workload, contenders in by.items():
        amount, unit = _work_units(workload, settings)
        summary[workload] = {}
        for contender, runs in contenders.items():
            scale = 1.0
            if workload == "walk_pages" and contender == "cloudbridge":
                # Counted keys are those of the timed pages; scale the time to the whole walk.
                scale = settings["walk_keys"] / max(1, runs[0].get("count") or 1)
            rates = {run["round"]: amount / (run["seconds"] * scale) for run in runs}
            values = list(rates.values())
            summary[workload][contender] = {
                "median": statistics.median(values),
                "min": min(values),
                "max": max(values),
                "unit": unit,
                "rounds": len(values),
                "per_round": rates,
                "rss": statistics.median(run["rss_delta"] for run in runs) / MiB,
                "cpu": statistics.median(run.get("cpu", 0.0) * scale for run in runs),
                "rss_max": max(run["rss_delta"] for run in runs) / MiB,
                "scaled": scale != 1.0,
                "per_unit_cpu_ms": statistics.median(run.get("cpu", 0.0) * scale for run in runs) / amount * 1000,
                "variant": next((run["variant"] for run in runs if "variant" in run), ""),
            }
    return summary


def _paired(a: dict[int, float], b: dict[int, float]) -> tuple[float, float] | None:
    """Min and max over rounds of a/b, pairing the same round's measurements."""
    ratios = [a[r] / b[r] for r in a if r in b]
    return (min(ratios), max(ratios)) if ratios else None


def _best_peer(rows: dict[str, dict[str, Any]]) -> str | None:
    peers = [p for p in PEERS if p in rows]
    return max(peers, key=lambda p: rows[p]["median"]) if peers else None


def _fmt(value: float, unit: str) -> str:
    if unit == "MiB/s":
        return f"{value:,.0f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.1f}"


def _ratio(rows: dict[str, dict[str, Any]], name: str, ref: str | None) -> str:
    if ref is None or ref not in rows:
        return "-"
    ratio = rows[name]["median"] / rows[ref]["median"]
    paired = _paired(rows[name]["per_round"], rows[ref]["per_round"])
    span = f" ({paired[0]:.2f}-{paired[1]:.2f})" if paired and len(rows[name]["per_round"]) > 1 else ""
    return f"{ratio:.2f}x{span}"


def _size(size: int) -> str:
    return f"{size // (1024 * MiB)} GiB" if size >= 1024 * MiB and size % (1024 * MiB) == 0 else f"{size // MiB} MiB"


Target = tuple[str, str, str, str, str, bool]


def targets(results: dict[str, Any], summary: dict[str, dict[str, dict[str, Any]]]) -> list[Target]:
    """(target, measured, paired per-round range, boto3 A/A on the same measure, bar, met)."""
    out: list[Target] = []
    settings = results["settings"]
    big = _size(settings["big_size"])

    def span(rows: dict[str, dict[str, Any]], a: str, b: str, invert: bool = False) -> str:
        paired = _paired(rows[a]["per_round"], rows[b]["per_round"])
        if not paired:
            return "-"
        low, high = (1 / paired[1], 1 / paired[0]) if invert else paired
        return f"{low:.2f}-{high:.2f}"

    for workload in ("upload", "download"):
        rows = summary.get(workload, {})
        if "cloudstore" not in rows:
            continue
        best = _best_peer(rows)
        if best:
            ratio = rows["cloudstore"]["median"] / rows[best]["median"]
            aa = f"{rows['boto3 A/A']['median'] / rows['boto3']['median']:.2f}x" if "boto3 A/A" in rows else "-"
            out.append(
                (
                    f"{big} {workload}: speed vs the best of boto3, CloudBridge, obstore (here {best})",
                    f"{ratio:.2f}x",
                    span(rows, "cloudstore", best),
                    aa + " (A/A vs boto3)",
                    ">= 1.10x",
                    ratio >= 1.10,
                )
            )
        limit = 8 * 8 + 100  # default max_concurrency x part_size + 100 MiB
        rss = rows["cloudstore"]["rss_max"]
        out.append(
            (
                f"{big} {workload}: peak RSS over the idle client (largest of all rounds)",
                f"{rss:.0f} MiB",
                f"{rows['cloudstore']['rss']:.0f} MiB median",
                "-",
                f"<= {limit} MiB",
                rss <= limit,
            )
        )
    labels = {
        "put": "16 KiB puts",
        "get": "16 KiB gets",
        "walk_iter": "walk by iteration",
        "walk_pages": "walk by marker pages",
    }
    for workload, label in labels.items():
        rows = summary.get(workload, {})
        if "cloudstore" in rows and "boto3" in rows:
            slowdown = rows["boto3"]["median"] / rows["cloudstore"]["median"]
            aa = f"{rows['boto3']['median'] / rows['boto3 A/A']['median']:.2f}x" if "boto3 A/A" in rows else "-"
            out.append(
                (
                    f"{label}: time vs boto3",
                    f"{slowdown:.2f}x",
                    span(rows, "cloudstore", "boto3", invert=True),
                    aa + " (A/A time vs boto3)",
                    "<= 1.10x",
                    slowdown <= 1.10,
                )
            )
    out += bulk_targets(summary)
    out += memory_targets(results.get("bulk_memory"))
    imports = results.get("imports", {})
    if imports.get("cloudstore"):
        median = statistics.median(imports["cloudstore"])
        low, high = min(imports["cloudstore"]), max(imports["cloudstore"])
        out.append(
            (
                "import cloudstore: wall time",
                f"{median * 1000:.0f} ms",
                f"{low * 1000:.0f}-{high * 1000:.0f} ms",
                "-",
                "< 150 ms",
                median < 0.15,
            )
        )
        cpu = results.get("import_cpu", {}).get("cloudstore")
        if cpu:
            median = statistics.median(cpu)
            out.append(
                (
                    "import cloudstore: CPU time",
                    f"{median * 1000:.0f} ms",
                    f"{min(cpu) * 1000:.0f}-{max(cpu) * 1000:.0f} ms",
                    "-",
                    "< 150 ms",
                    median < 0.15,
                )
            )
    return out


def bulk_targets(summary: dict[str, dict[str, dict[str, Any]]]) -> list[Target]:
    """Issue 15's targets: directories vs the best bulk tool, small requests and walks vs obstore, 1 GiB vs s5cmd."""
    out: list[Target] = []

    def versus(workload: str, label: str, ref: str) -> None:
        rows = summary.get(workload, {})
        if "cloudstore" not in rows or ref not in rows:
            return
        ratio = rows["cloudstore"]["median"] / rows[ref]["median"]
        paired = _paired(rows["cloudstore"]["per_round"], rows[ref]["per_round"])
        aa = (
            f"{rows['boto3 A/A']['median'] / rows['boto3']['median']:.2f}x"
            if {"boto3", "boto3 A/A"} <= set(rows)
            else "-"
        )
        out.append(
            (
                f"{label}: speed vs {ref}",
                f"{ratio:.2f}x",
                f"{paired[0]:.2f}-{paired[1]:.2f}" if paired else "-",
                aa + " (A/A vs boto3)",
                ">= 1.00x",
                ratio >= 1.0,
            )
        )

    for workload, label in (("dir_upload", "directory upload"), ("dir_download", "directory download")):
        rows = summary.get(workload, {})
        peers = [p for p in BULK_PEERS if p in rows]
        if peers:
            versus(workload, label, max(peers, key=lambda p: rows[p]["median"]))
    for workload, label in (("put", "16 KiB puts"), ("get", "16 KiB gets"), ("walk_iter", "walk by iteration")):
        versus(workload, label, "obstore")
    versus("download", "large download", "s5cmd")
    return out


def memory_targets(bulk: dict[str, Any] | None) -> list[Target]:
    """Issue 15's memory bound: the largest peak RSS of a ``cp -r`` / ``sync`` process (bulk_memory.py)."""
    steps = [s for s in bulk["steps"] if s["provider"] != "-"] if bulk else []
    if not bulk or not steps:
        return []
    worst = max(steps, key=lambda s: s["peak_rss"])
    peak = worst["peak_rss"] / MiB
    failed = any(s["exit"] for s in steps)
    return [
        (
            f"{bulk['files']:,} files, `cp -r` up and down and `sync`: largest peak RSS of the process"
            f" (here {worst['provider']} {worst['step']})",
            f"{peak:.0f} MiB",
            f"{min(s['peak_rss'] for s in steps) / MiB:.0f}-{peak:.0f} MiB over {len(steps)} steps"
            + (" (a step failed)" if failed else ""),
            "-",
            f"< {bulk['limit_mib']} MiB",
            peak < bulk["limit_mib"] and not failed,
        )
    ]


def memory_section(bulk: dict[str, Any] | None) -> list[str]:
    """The table of benchmarks/bulk_memory.py: each step's process, its time and its peak RSS."""
    if not bulk or not bulk.get("steps"):
        return []
    lines = [
        f"## Memory of a bulk job: {bulk['files']:,} files of {bulk['size']:,} bytes",
        "",
        "`benchmarks/bulk_memory.py`, one run of its own (not the run of the tables above): each step is its"
        " own `python -m cloudstore` process"
        " (default concurrency and buffer budget, `-q`), run one after the other against a fresh SeaweedFS"
        " and the LOCAL provider; the source is 100 folders of 10 sub-folders. Peak RSS is the process's"
        " own `ru_maxrss` (`wait4`): the whole process, interpreter and imports included (not a delta)."
        " The `sync` steps change nothing: they list both sides and compare every file's size and checksum.",
        "",
        "| provider | step | wall s | files/s | client CPU s | peak RSS MiB | result |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for step in bulk["steps"]:
        idle = step["provider"] == "-"
        rate = "-" if idle else f"{bulk['files'] / step['seconds']:,.0f}"
        result = step["summary"] if not step["exit"] else f"exit {step['exit']}: {step['summary']}"
        lines.append(
            f"| {step['provider']} | {step['step']} | {step['seconds']:.1f} | {rate} | {step['cpu']:.1f}"
            f" | {step['peak_rss'] / MiB:.0f} | {'-' if idle else result} |"
        )
    load = ", ".join(f"{x:.1f}" for x in bulk.get("load_average", ()))
    lines += ["", f"Load average (1, 5, 15 min) at the end of the measurement: {load}.", ""]
    return lines


def markdown(results: dict[str, Any], summary: dict[str, dict[str, dict[str, Any]]], notes: str = "") -> str:
    settings = results["settings"]
    m = results["machine"]
    big = (
        f"{settings['big_size'] // MiB} MiB"
        if settings["big_size"] < 1024 * MiB
        else f"{settings['big_size'] // (1024 * MiB)} GiB"
    )
    fill = {
        "big": big,
        "count": f"{settings['small_count']:,}",
        "keys": f"{settings['walk_keys']:,}",
        "page": settings["page_size"],
        "streams": settings["raw_streams"],
        "cb_pages": settings["cloudbridge_max_pages"],
        "raw_part": settings.get("raw_part_size", 8 * MiB) // MiB,
        "dir_files": f"{settings.get('dir_count', 0):,}",
    }
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bash benchmarks/run.sh` (see `benchmarks/README.md`); every number below comes from one run"
        f" of {settings['rounds']} round{'s' if settings['rounds'] != 1 else ''} on one SeaweedFS server on 127.0.0.1."
        + (" **Quick smoke run: sizes reduced.**" if settings.get("quick") else ""),
        "",
        "## Machine",
        "",
        f"- {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, {m['platform']}",
        f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in sorted(m["versions"].items())),
        f"- SeaweedFS {m['seaweedfs'].removeprefix('version ')} (`weed mini`, one process, data on local disk)",
        f"- one TCP stream over loopback, measured in the same run: {m['loopback_bytes_per_s'] / MiB:,.0f} MiB/s",
        "- load average (1, 5, 15 min) at the start: "
        + ", ".join(f"{x:.1f}" for x in m.get("load_average_at_start", ()))
        + "; at the end: "
        + ", ".join(f"{x:.1f}" for x in m.get("load_average_at_end", ()))
        + " (other jobs shared the machine)",
        "",
        "## Method",
        "",
        "- Each measurement is a fresh Python process that imports one library, makes its client, runs one untimed"
        " warm-up of the same workload, then the timed one (warm-ups: downloads the same object; uploads a file"
        " of 1/8 the size through the same code path; walks one page; small objects a tenth as many requests)."
        " Contenders alternate within a round and the"
        " order rotates every round, so each contender gets the same position (a warm-up right before it) and the"
        " machine's drift is spread over all of them.",
        "- Figures are medians over rounds, with the min-max over rounds. Ratios are speed ratios (above 1 = faster)"
        " of the medians; in parentheses the min-max of the same ratio computed round by round (paired).",
        "- **boto3 A/A** is boto3 measured again as if it were another contender: its ratio to boto3 is the noise"
        " floor of this machine. A difference smaller than that spread is not a difference.",
        "- Peak memory: the worker's RSS sampled from outside (the orchestrator reads /proc every 5 ms, so the"
        " measured process runs no extra thread) during the timed run, minus its RSS after import and client"
        " creation. Memory the warm-up left allocated counts as used, so this errs on the high side.",
        "- Client CPU: user + system time of the worker process (all its threads) during the timed run, from"
        " `getrusage`; far less sensitive than wall time to other jobs on the machine.",
        "- The raw-socket baseline is a hand-written HTTP/1.1 client on a plain socket: PUT with `os.sendfile`,"
        " GET with `recv_into` a reused buffer and `pwrite`, on URLs presigned before timing (so it does no"
        " signing and no hashing). It is the ceiling for a client of this server on this machine, not a library."
        " The `-> cloudstore serve` rows send the same requests to `cloudstore serve` (the LOCAL provider's"
        " signed-URL server, pure Python) for scale.",
        "",
    ]
    lines += [
        "## Targets",
        "",
        'Medians over the rounds of this run; "per round" is the range of the same ratio computed round by'
        " round (paired); the A/A column is the same measure taken between boto3 and itself: the noise floor.",
        "",
        "| target | median | per round | noise floor | bar | met |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    rows = targets(results, summary)
    for name, measured, per_round, noise, bar, met in rows:
        lines.append(f"| {name} | {measured} | {per_round} | {noise} | {bar} | {'yes' if met else '**no**'} |")
    if notes and not all(row[-1] for row in rows):
        lines += ["", "Where a target is missed, *What bounds each figure* below gives the measurement that bounds it."]
    lines.append("")
    for workload in ORDER:
        rows = summary.get(workload)
        if not rows:
            continue
        unit = next(iter(rows.values()))["unit"]
        best = _best_peer(rows)
        baseline = "raw socket" if "raw socket" in rows else None
        lines += [
            f"## {TITLES[workload].format(**fill)}",
            "",
            f"| contender | what it does | {unit}: median (min-max) | vs boto3 | vs best peer ({best}) "
            "| vs raw socket | client CPU s | peak RSS MiB |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        order = sorted(rows, key=lambda c: -rows[c]["median"])
        for name in order:
            row = rows[name]
            variant = row["variant"] or "32 threads over upload_from_file / download_to_file"
            how = HOW.get(workload, {}).get(name, "").format(**fill, variant=f"`{variant}`")
            figure = f"{_fmt(row['median'], unit)} ({_fmt(row['min'], unit)}-{_fmt(row['max'], unit)})"
            if row["scaled"]:
                figure += " *"
            bold = "**" if name == "cloudstore" else ""
            ratios = " | ".join(_ratio(rows, name, ref) for ref in ("boto3", best, baseline))
            cpu = f"{row['cpu']:.2f}"
            if unit in ("ops/s", "files/s"):
                cpu += f" ({row['per_unit_cpu_ms']:.2f} ms each)"
            lines.append(f"| {bold}{name}{bold} | {how} | {figure} | {ratios} | {cpu} | {row['rss']:.0f} |")
        if any(r["scaled"] for r in rows.values()):
            lines.append("")
            lines.append("\\* time of the first pages, scaled to the whole walk (each page lists the whole bucket).")
        lines.append("")
    lines += memory_section(results.get("bulk_memory"))
    imports = results.get("imports", {})
    import_cpu = results.get("import_cpu", {})
    if imports:
        lines += [
            "## Import time",
            "",
            "| module | wall ms: median (min-max) | speed vs boto3 | CPU ms: median (min-max) |",
            "| --- | --- | --- | --- |",
        ]
        ref = statistics.median(imports["boto3"]) if imports.get("boto3") else None
        for module, values in sorted(imports.items(), key=lambda kv: statistics.median(kv[1])):
            med = statistics.median(values)
            vs = f"{ref / med:.2f}x" if ref else "-"
            cpu = import_cpu.get(module)
            cpu_text = (
                f"{statistics.median(cpu) * 1000:.0f} ({min(cpu) * 1000:.0f}-{max(cpu) * 1000:.0f})" if cpu else "-"
            )
            wall = f"{med * 1000:.0f} ({min(values) * 1000:.0f}-{max(values) * 1000:.0f})"
            lines.append(f"| {module} | {wall} | {vs} | {cpu_text} |")
        lines += [
            "",
            "A fresh interpreter each time (`python -c 'import X'`, 3 per module per round, alternating the modules);"
            " CPU is the process time the import used, which other load on the machine barely changes.",
            "",
        ]
    if notes:
        lines += [notes.rstrip(), ""]
    return "\n".join(lines)


def plot(results: dict[str, Any], summary: dict[str, dict[str, dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in ORDER if w in summary]
    if not workloads:  # e.g. --only import: nothing to plot
        return
    fig, axes = plt.subplots(len(workloads), 1, figsize=(9, 2.2 + 1.6 * len(workloads) * 1.2), squeeze=False)
    settings = results["settings"]
    fill = {
        "big": _size(settings["big_size"]),
        "count": f"{settings['small_count']:,}",
        "keys": f"{settings['walk_keys']:,}",
        "page": settings["page_size"],
        "dir_files": f"{settings.get('dir_count', 0):,}",
    }
    for ax, workload in zip(axes[:, 0], workloads, strict=True):
        rows = summary[workload]
        names = sorted(rows, key=lambda c: rows[c]["median"])
        ref = rows.get("boto3", {}).get("median") or 1.0
        medians = [rows[n]["median"] / ref for n in names]
        low = [m - rows[n]["min"] / ref for m, n in zip(medians, names, strict=True)]
        high = [rows[n]["max"] / ref - m for m, n in zip(medians, names, strict=True)]
        colors = ["tab:red" if n == "cloudstore" else "tab:gray" if n.startswith("raw") else "tab:blue" for n in names]
        ax.barh(names, medians, xerr=[low, high], color=colors, capsize=3)
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(TITLES[workload].format(**fill) + " - speed vs boto3 (median, min-max)", fontsize=9)
        ax.tick_params(labelsize=8)
        if max(medians) > 20:
            ax.set_xscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: dict[str, Any], folder: Path, notes_file: Path | None = None) -> None:
    summary = summarise(results)
    notes_file = notes_file or Path(__file__).with_name("NOTES.md")
    notes = notes_file.read_text() if notes_file.is_file() else ""
    (folder / "benchmarks.md").write_text(markdown(results, summary, notes))
    plot(results, summary, folder / "benchmarks.png")

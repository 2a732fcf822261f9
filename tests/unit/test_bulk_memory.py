"""Memory of a bulk job stays flat in the number of files: 5,000 tiny files on LOCAL, measured
in a child process (its peak resident set size, before and after), bounded in time, not timed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FILES = 5_000
MiB = 1024 * 1024

CHILD = """
import json, sys
import cloudstore
from cloudstore import CloudProviderFactory, ProviderList

source, root, target = sys.argv[1:4]
provider = CloudProviderFactory().create_provider(ProviderList.LOCAL, {"local_root": root})
bucket = provider.storage.buckets.create("many")
bucket.objects.create("warm-up").upload(b"x")
bucket.objects.create("warm-up").delete()

def status(key):
    with open("/proc/self/status") as lines:
        return next(int(line.split()[1]) * 1024 for line in lines if line.startswith(key + ":"))

def peak():
    return status("VmHWM")

before = status("VmRSS")
try:  # start the peak afresh (Linux): it then measures this job alone
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")
except OSError:
    before = peak()
up = bucket.upload_dir(source, "tree")
again = cloudstore.sync(source, (bucket, "tree"))
down = bucket.download_dir("tree", target)
print(json.dumps({"before": before, "after": peak(), "counts": [up.copied, again.skipped, down.copied],
                  "failed": len(up.failed) + len(again.failed) + len(down.failed)}))
"""


def test_peak_memory_of_thousands_of_files_stays_flat(tmp_path: Path) -> None:
    source = tmp_path / "src"
    for folder in range(50):
        directory = source / f"d{folder:02d}"
        directory.mkdir(parents=True)
        for number in range(FILES // 50):
            (directory / f"f{number:03d}.txt").write_bytes(b"%d-%d" % (folder, number))
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(source), str(tmp_path / "root"), str(tmp_path / "down")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["failed"] == 0
    assert result["counts"] == [FILES, FILES, FILES]
    # Well under the 300 MiB target for 100,000 files: the walk, the listing and the pool stream.
    assert result["after"] - result["before"] < 64 * MiB, result

"""The shipped conformance suite run as a provider's author runs it, in a subprocess from a folder
outside the repository: ``python -m pytest -p cloudstore.testing --cloudstore-provider NAME
--cloudstore-config FILE``. Against the example out-of-tree provider (examples/dirstore, found
through its entry point only) and against LOCAL on this session's ``cloudstore serve``."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import Servers

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "dirstore"


@pytest.fixture(scope="module")
def example_installed(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Where the example provider is installed: "" when it is in this environment (scripts/test.sh
    installs it), else a folder pip installed it into (its entry point is what registers it)."""
    try:
        importlib.metadata.distribution("cloudstore-dirstore")
    except importlib.metadata.PackageNotFoundError:
        target = tmp_path_factory.mktemp("site")
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(EXAMPLE)],
            check=True,
            capture_output=True,
            timeout=300,
        )
        return str(target)
    return ""


def run_suite(cwd: Path, *args: str, path: str = "") -> subprocess.CompletedProcess[str]:
    """pytest with the plugin in ``cwd``; this checkout's cloudstore is imported (as an installed one would)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (path, str(REPO)) if p)}
    env.pop("CLOUDSTORE_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "cloudstore.testing", "-p", "no:cacheprovider", "-q", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def summary(result: subprocess.CompletedProcess[str]) -> dict[str, int]:
    """The counts of pytest's last line ("127 passed, 17 deselected in 8.0s")."""
    last = result.stdout.strip().splitlines()[-1]
    return {kind: int(count) for count, kind in re.findall(r"(\d+) (\w+)", last)}


def test_the_example_provider_passes_with_its_missing_capabilities_declared(
    example_installed: str, tmp_path: Path
) -> None:
    (tmp_path / "dirstore.ini").write_text(f"[dirstore]\ndirstore_root = {tmp_path / 'root'}\n")
    result = run_suite(
        tmp_path,
        "--cloudstore-provider",
        "dirstore",
        "--cloudstore-config",
        "dirstore.ini",
        "--cloudstore-quirks",
        "dirstore.testing:QUIRKS",
        path=example_installed,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = summary(result)
    # Every case ran, except those its declared capabilities rule out (signed URLs, copy limits):
    # deselected by the plugin, none skipped.
    assert counts["passed"] > 100 and counts["deselected"] > 0, counts
    assert set(counts) == {"passed", "deselected"}, counts


def test_local_through_the_command_line(servers: Servers, tmp_path: Path) -> None:
    """LOCAL with its signed-URL server, configured by an ini file as a user would."""
    config = servers.get("local").config
    (tmp_path / "local.ini").write_text("[local]\n" + "".join(f"{k} = {v}\n" for k, v in config.items()))
    result = run_suite(
        tmp_path,
        "--cloudstore-provider",
        "local",
        "--cloudstore-config",
        str(tmp_path / "local.ini"),
        "-k",
        "test_listing or test_signed_urls",
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = summary(result)
    assert counts["passed"] >= 20 and "failed" not in counts, counts


def test_without_a_provider_the_suite_says_how_to_name_one(tmp_path: Path) -> None:
    result = run_suite(tmp_path, "--pyargs", "cloudstore.testing")
    assert result.returncode != 0
    assert "--cloudstore-provider NAME" in result.stdout + result.stderr

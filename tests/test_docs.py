"""The examples in ``docs/`` run, and print what the pages say they print.

Conventions in the ``.rst`` sources (all invisible in the rendered pages):

- Every ``.. code-block:: python`` on the pages in ``EXECUTED_PAGES`` is run, in
  page order, in one namespace per page. A block that needs a cloud account (or
  that must not run for another reason) is preceded by the comment
  ``.. not-tested: <reason>``; it is still syntax-checked.
- A ``.. code-block:: text`` preceded by the comment ``.. output:`` is what the
  python block just before it prints; it is compared with doctest's rules
  (``...`` matches anything, whitespace is normalised).
- Every ``.. code-block:: console`` in ``docs/cli.rst`` is run line by line:
  ``$ cloudstore ...`` through click's ``CliRunner``, other ``$`` lines through
  the shell; the lines up to the next ``$`` are the expected output (same
  rules). Output with a line starting with ``Error:`` must come with a non-zero
  exit status, any other output with status 0. ``.. not-tested:`` skips a console block too.

Each page runs in a fresh temporary directory that is also ``HOME`` and the
current directory, so ``~/...`` and relative paths in examples stay inside it,
with no ``CLOUDSTORE_*`` variable or config file from the machine running the
tests. For ``local.rst`` the test starts ``cloudstore serve`` on a free port and
exports its settings as ``CLOUDSTORE_LOCAL_ROOT``, ``CLOUDSTORE_LOCAL_SECRET``
and ``CLOUDSTORE_LOCAL_URL``, exactly as that page tells readers to do.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import os
import re
import shlex
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cloudstore.cli import main as cli_main
from cloudstore.registry import registered

DOCS = Path(__file__).resolve().parents[1] / "docs"

EXECUTED_PAGES = [
    "index.rst",
    "quickstart.rst",
    "model.rst",
    "configuration.rst",
    "transfers.rst",
    "bulk.rst",
    "dataframes.rst",
    "model-store.rst",
    "tenants.rst",
    "local.rst",
    "writing-a-provider.rst",
    "sharing.rst",
]
#: Pages whose examples need ``cloudstore serve`` running (its settings in the environment).
SERVED_PAGES = ("local.rst", "sharing.rst")

_DIRECTIVE = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<lang>\S+)\s*$")
_MARKER = re.compile(r"^\s*\.\. (?P<name>not-tested|output):")
_COMPARE = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@dataclass
class Block:
    """One ``code-block`` of a page: its language, dedented body, first body line and marker."""

    lang: str
    code: str
    line: int
    marker: str | None


def parse_blocks(text: str) -> list[Block]:
    """The code blocks of an RST text, with the marker comment just before each (if any)."""
    lines = text.splitlines()
    blocks: list[Block] = []
    marker: str | None = None
    index = 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line)
        found_marker = _MARKER.match(line)
        if found_marker:
            marker = found_marker.group("name")
            index += 1
            continue
        if not directive:
            if line.strip():
                marker = None
            index += 1
            continue
        indent = len(directive.group("indent"))
        index += 1
        # Directive options (":caption: ...") come first, then the body.
        while index < len(lines) and lines[index].strip().startswith(":") and _indent(lines[index]) > indent:
            index += 1
        start = index
        while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > indent):
            index += 1
        body = lines[start:index]
        first = next((n for n, text in enumerate(body) if text.strip()), 0)
        code = textwrap.dedent("\n".join(body[first:])).strip("\n") + "\n"
        blocks.append(Block(directive.group("lang"), code, start + first + 1, marker))
        marker = None
    return blocks


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _check_output(where: str, want: str, got: str) -> None:
    if not doctest.OutputChecker().check_output(want, got, _COMPARE):
        raise AssertionError(f"{where}: the page says it prints\n{want}\nbut it printed\n{got}")


@contextlib.contextmanager
def sandbox(workdir: Path, extra_env: dict[str, str] | None = None) -> Iterator[None]:
    """HOME and the current directory in ``workdir``, no cloudstore settings from this machine;
    the environment and the current directory are restored afterwards, whatever the examples did."""
    saved_env = dict(os.environ)
    saved_cwd = os.getcwd()
    for name in list(os.environ):
        if name.startswith("CLOUDSTORE_"):
            del os.environ[name]
    os.environ["HOME"] = str(workdir)
    os.environ["CLOUDSTORE_CONFIG"] = str(workdir / ".config" / "cloudstore" / "config.ini")
    os.environ.update(extra_env or {})
    os.chdir(workdir)
    try:
        yield
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def run_page(page: str) -> dict[str, Any]:
    """Run the python blocks of ``page`` in one namespace; check the outputs they show."""
    blocks = parse_blocks((DOCS / page).read_text(encoding="utf-8"))
    namespace: dict[str, Any] = {"__name__": f"docs.{page}"}
    printed: str | None = None
    executed = 0
    for block in blocks:
        where = f"docs/{page}:{block.line}"
        if block.lang == "python":
            # Line numbers in tracebacks are those of the page.
            code = compile("\n" * (block.line - 1) + block.code, where.partition(":")[0], "exec")
            if block.marker == "not-tested":
                printed = None
                continue
            buffer = io.StringIO()
            with contextlib.redirect_stdout(buffer):
                exec(code, namespace)
            printed = buffer.getvalue()
            executed += 1
        elif block.marker == "output":
            assert printed is not None, f"{where}: an output block must follow a python block that runs"
            _check_output(where, block.code, printed)
            printed = None
        else:
            printed = None
    assert executed, f"docs/{page} has no python example that runs"
    return namespace


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.mark.parametrize("page", [p for p in EXECUTED_PAGES if p not in SERVED_PAGES])
def test_page_examples_run(page: str, workdir: Path) -> None:
    with sandbox(workdir):
        namespace = run_page(page)
    EXPECTATIONS[page](namespace, workdir)


def run_page_against_serve(page: str, workdir: Path, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The examples of ``page`` with the LOCAL provider's settings of a ``cloudstore serve`` in
    the environment; their namespace, and that server's config."""
    from tests.support.servers import local

    server = local.start(tmp_path / "serve")
    try:
        env = {
            "CLOUDSTORE_LOCAL_ROOT": server.config["local_root"],
            "CLOUDSTORE_LOCAL_SECRET": server.config["local_secret"],
            "CLOUDSTORE_LOCAL_URL": server.config["local_url"],
        }
        with sandbox(workdir, env):
            return run_page(page), server.config
    finally:
        server.stop()


def test_sharing_page_examples_run_against_cloudstore_serve(workdir: Path, tmp_path: Path) -> None:
    namespace, _ = run_page_against_serve("sharing.rst", workdir, tmp_path)
    assert namespace["artifacts"].objects.get("run-7/report.txt").read() == b"accuracy: 0.93\n"


def test_local_page_examples_run_against_cloudstore_serve(workdir: Path, tmp_path: Path) -> None:
    namespace, config = run_page_against_serve("local.rst", workdir, tmp_path)
    assert namespace["shared_text"] == b"quarterly numbers"
    assert namespace["put_url"].startswith(config["local_url"] + "/reports/inbox/upload.txt?")
    assert namespace["refused"] == 403
    assert not (Path(config["local_root"]) / "reports").exists()  # the page cleans up


# --- what each page leaves behind (beyond the outputs it shows) ----------------------
def _index(ns: dict[str, Any], workdir: Path) -> None:
    assert ns["obj"].read() == b"Hello, world!"


def _quickstart(ns: dict[str, Any], workdir: Path) -> None:
    assert (workdir / "hello-copy.txt").read_bytes() == b"Hello, world!"
    assert ns["provider"].storage.buckets.get("my-first-bucket") is None  # cleaned up at the end


def _model(ns: dict[str, Any], workdir: Path) -> None:
    assert [o.name for o in ns["everything"]] == sorted(o.name for o in ns["everything"])
    assert len(ns["everything"]) == 25


def _configuration(ns: dict[str, Any], workdir: Path) -> None:
    assert "change-me" not in repr(ns["provider"])
    assert ns["provider"].config["local_root"] == "~/from-the-file"


def _transfers(ns: dict[str, Any], workdir: Path) -> None:
    assert sum(ns["sent"]) == 20 * 1024 * 1024
    assert (workdir / "big.bin").stat().st_size == 20 * 1024 * 1024
    assert not (workdir / "broken.txt").exists()


def _bulk(ns: dict[str, Any], workdir: Path) -> None:
    bucket = ns["bucket"]
    assert bucket.objects.get("photos/2025.txt").read() == b"new"
    assert (workdir / "restored" / "2024" / "notes.txt").read_text() == "a day at the sea"
    assert sorted(o.name for o in bucket.objects.find(prefix="again/")) == [
        "again/2024/notes.txt",
        "again/2024/summer/beach.jpg",
        "again/2025.txt",
    ]


def _writing_a_provider(ns: dict[str, Any], workdir: Path) -> None:
    spy = ns["spy"]
    assert spy.count("put_object") == 2 and spy.count("create_bucket") == 1
    assert ns["provider"].storage.buckets.get("spied").objects.get("k").read() == b"retried"


def _dataframes(ns: dict[str, Any], workdir: Path) -> None:
    assert ns["table"].num_rows == 3
    assert not (workdir / "store" / "analytics").exists()  # the page cleans up


def _model_store(ns: dict[str, Any], workdir: Path) -> None:
    assert ns["store"].objects.get("sentiment/1.0/weights.bin").read() == b"weights one"


def _tenants(ns: dict[str, Any], workdir: Path) -> None:
    assert ns["tenant_b"].objects.get("model.bin").read() == b"b's model"


EXPECTATIONS = {
    "model-store.rst": _model_store,
    "tenants.rst": _tenants,
    "index.rst": _index,
    "quickstart.rst": _quickstart,
    "model.rst": _model,
    "configuration.rst": _configuration,
    "transfers.rst": _transfers,
    "bulk.rst": _bulk,
    "dataframes.rst": _dataframes,
    "writing-a-provider.rst": _writing_a_provider,
}


# --- the CLI page ----------------------------------------------------------------------
def _console_commands(block: Block) -> Iterator[tuple[str, str]]:
    """(command, expected output) pairs of a console block."""
    command: str | None = None
    output: list[str] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            if command is not None:
                yield command, "\n".join(output)
            command, output = line[2:], []
        elif command is not None:
            output.append(line)
    if command is not None:
        yield command, "\n".join(output)


def test_cli_page_examples_run(workdir: Path) -> None:
    runner = CliRunner()
    ran = 0
    with sandbox(workdir):
        for block in parse_blocks((DOCS / "cli.rst").read_text(encoding="utf-8")):
            if block.lang != "console" or block.marker == "not-tested":
                continue
            for command, want in _console_commands(block):
                where = f"docs/cli.rst:{block.line}: $ {command}"
                if command.startswith("cloudstore "):
                    result = runner.invoke(cli_main, shlex.split(command)[1:], prog_name="cloudstore")
                    got, status = result.output, result.exit_code
                else:
                    done = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
                    got, status = done.stdout + done.stderr, done.returncode
                _check_output(where, want + "\n", got)
                failed = any(line.startswith("Error:") for line in want.splitlines())
                assert (status != 0) == failed, f"{where}: exit status {status}\n{got}"
                ran += 1
    assert ran >= 10


# --- the pages as a whole ----------------------------------------------------------------
def test_every_config_key_and_variable_is_documented() -> None:
    text = (DOCS / "configuration.rst").read_text(encoding="utf-8")
    # The built-in providers' keys (an out-of-tree provider installed here documents its own).
    for spec in [s for s in registered().values() if s.backend.startswith("cloudstore.providers.")]:
        for name, key in spec.all_keys().items():
            assert f"``{name}``" in text, f"configuration.rst does not document {name}"
            if key.env:
                assert f"``{key.env}``" in text, f"configuration.rst does not document {key.env}"


def test_every_python_example_is_valid_python() -> None:
    for page in sorted(DOCS.glob("*.rst")):
        for block in parse_blocks(page.read_text(encoding="utf-8")):
            if block.lang == "python":
                compile(block.code, f"{page.name}:{block.line}", "exec")


def test_parser_reads_markers_options_and_nesting() -> None:
    text = textwrap.dedent(
        """\
        Intro.

        .. not-tested: needs a cloud

        .. code-block:: python
           :caption: cloud

           cloud()

        - item

          .. code-block:: python

             if x:
                 y()

        .. output:

        .. code-block:: text

           printed
        after
        """
    )
    blocks = parse_blocks(text)
    assert [(b.lang, b.marker, b.line) for b in blocks] == [
        ("python", "not-tested", 8),
        ("python", None, 14),
        ("text", "output", 21),
    ]
    assert blocks[1].code == "if x:\n    y()\n"
    assert blocks[2].code == "printed\n"

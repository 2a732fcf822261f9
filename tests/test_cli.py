"""The ``cloudstore`` command on LOCAL: in process with click's CliRunner, and as a real subprocess."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner, Result

from cloudstore import ProviderList
from cloudstore.cli import _Context, main
from tests.conftest import Servers, unique_name
from tests.support.servers.base import free_port, spawn, wait_for_port

Run = Callable[..., Result]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def cli(root: Path, monkeypatch: pytest.MonkeyPatch) -> Run:
    """Runs ``cloudstore -c local_root=<root> ARGS`` in process."""
    for var in ("CLOUDSTORE_LOCAL_ROOT", "CLOUDSTORE_LOCAL_URL", "CLOUDSTORE_LOCAL_SECRET"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("CLOUDSTORE_CONFIG", str(root.parent / "no-config.ini"))
    runner = CliRunner()

    def run(*args: str, config: tuple[str, ...] = ()) -> Result:
        settings = ["-c", f"local_root={root}"]
        for item in config:
            settings += ["-c", item]
        return runner.invoke(main, [*settings, *args], catch_exceptions=True)

    return run


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    assert result.exception is None
    return result.output


def refused(result: Result, *expected: str) -> str:
    """A user mistake: non-zero exit, one ``Error:`` line naming the problem, no traceback."""
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    for text in expected:
        assert text in lines[0]
    return lines[0]


def test_buckets_make_list_remove(cli: Run, root: Path) -> None:
    assert ok(cli("ls", "local://")) == ""
    assert "created local://bkt" in ok(cli("mb", "local://bkt"))
    ok(cli("mb", "local://other"))
    assert [line.split()[-1] for line in ok(cli("ls", "local://")).splitlines()] == ["bkt", "other"]
    assert (root / "bkt").is_dir()
    refused(cli("mb", "local://bkt"), "DuplicateResourceException")
    refused(cli("mb", "local://Bad_Name"), "InvalidNameException")
    ok(cli("rb", "local://other"))
    assert [line.split()[-1] for line in ok(cli("ls", "local://")).splitlines()] == ["bkt"]


def test_copy_both_ways_list_and_remove(cli: Run, root: Path, tmp_path: Path) -> None:
    ok(cli("mb", "local://bkt"))
    source = tmp_path / "hello.txt"
    source.write_bytes(b"hello world")
    assert "-> local://bkt/docs/hello.txt" in ok(cli("cp", str(source), "local://bkt/docs/hello.txt"))
    ok(cli("cp", "--content-type", "text/plain", str(source), "local://bkt/"))  # key from the file name
    ok(cli("cp", "-q", str(source), "local://bkt/docs/deep/x.txt"))
    assert (root / "bkt" / "hello.txt").read_bytes() == b"hello world"

    ok(cli("cp", str(source), "local://bkt/a.txt"))
    listing = ok(cli("ls", "local://bkt")).splitlines()
    assert [line.split()[-2:] for line in listing] == [["11", "a.txt"], ["PRE", "docs/"], ["11", "hello.txt"]]
    listing = ok(cli("ls", "local://bkt/docs/")).splitlines()
    assert [line.split()[-2:] for line in listing] == [["PRE", "docs/deep/"], ["11", "docs/hello.txt"]]
    recursive = [line.split()[-1] for line in ok(cli("ls", "-r", "local://bkt")).splitlines()]
    assert recursive == ["a.txt", "docs/deep/x.txt", "docs/hello.txt", "hello.txt"]

    target = tmp_path / "out.txt"
    ok(cli("cp", "local://bkt/docs/hello.txt", str(target)))
    assert target.read_bytes() == b"hello world"
    folder = tmp_path / "into"
    folder.mkdir()
    ok(cli("cp", "local://bkt/docs/hello.txt", str(folder)))
    assert (folder / "hello.txt").read_bytes() == b"hello world"

    ok(cli("cp", "local://bkt/hello.txt", "local://bkt/copy.txt"))
    ok(cli("mb", "local://second"))
    ok(cli("cp", "local://bkt/hello.txt", "local://second"))  # same key in the other bucket
    ok(cli("cp", "local://bkt/docs/hello.txt", "local://second/sub/"))  # into a pseudo-folder
    assert (root / "bkt" / "copy.txt").read_bytes() == b"hello world"
    assert (root / "second" / "hello.txt").read_bytes() == b"hello world"
    assert (root / "second" / "sub" / "hello.txt").read_bytes() == b"hello world"

    assert "deleted" in ok(cli("rm", "local://bkt/copy.txt"))
    assert not (root / "bkt" / "copy.txt").exists()
    refused(cli("rm", "local://bkt/copy.txt"), "copy.txt", "does not exist")


def test_ls_walks_past_the_first_page(cli: Run, root: Path) -> None:
    ok(cli("mb", "local://many"))
    for i in range(1005):
        (root / "many" / f"k{i:04d}").write_bytes(b"")
    (root / "many" / "sub").mkdir()
    (root / "many" / "sub" / "x").write_bytes(b"x")
    lines = ok(cli("ls", "local://many")).splitlines()
    assert [line.split()[-1] for line in lines] == [f"k{i:04d}" for i in range(1005)] + ["sub/"]
    assert lines[-1].split() == ["PRE", "sub/"]


def test_remove_non_empty_bucket_needs_force(cli: Run, root: Path) -> None:
    ok(cli("mb", "local://full"))
    (root / "full" / "kept").write_bytes(b"kept")
    line = refused(cli("rb", "local://full"), "not empty")
    assert "PreconditionFailedException" in line
    assert (root / "full" / "kept").read_bytes() == b"kept"
    ok(cli("rb", "--force", "local://full"))
    assert not (root / "full").exists()


def test_bucket_commands_refuse_an_object_address(cli: Run, root: Path) -> None:
    ok(cli("mb", "local://bkt"))
    (root / "bkt" / "keep").write_bytes(b"keep")
    refused(cli("rb", "--force", "local://bkt/keep"), "names an object", "local://bkt")
    assert (root / "bkt" / "keep").read_bytes() == b"keep"
    refused(cli("mb", "local://newbkt/key"), "names an object")
    assert not (root / "newbkt").exists()


@pytest.mark.parametrize(
    "args, expected",
    [
        (("ls", "local://nosuch"), "bucket 'nosuch' does not exist"),
        (("rb", "local://nosuch"), "does not exist"),
        (("cp", "local://nosuch/k", "out"), "does not exist"),
        (("rm", "local://bkt/missing"), "'missing' does not exist"),
        (("cp", "local://bkt/missing", "out"), "'missing' does not exist"),
        (("url", "local://bkt/missing"), "'missing' does not exist"),
        (("cp", "no-such-file.txt", "local://bkt/x"), "not a readable file"),
        (("cp", "a.txt", "b.txt"), "PROVIDER://bucket/key"),
        (("ls", "not-an-address"), "not a PROVIDER://bucket/key address"),
        (("rm", "local://bkt"), "names no object"),
        (("ls", "ftp://bucket/key"), "unknown provider 'ftp'"),
        (("cp", "local://bkt/../x", "out"), "InvalidNameException"),
        (("ls", "local://Not_A_Bucket"), "InvalidNameException"),
        (("url", "local://bkt/k"), "'k' does not exist"),
    ],
)
def test_user_mistakes_are_one_line(cli: Run, args: tuple[str, ...], expected: str) -> None:
    ok(cli("mb", "local://bkt"))
    refused(cli(*args), expected)


def test_unknown_or_malformed_config_is_refused(cli: Run) -> None:
    refused(cli("ls", "local://", config=("local_rot=/tmp/x",)), "unknown config key 'local_rot'")
    line = refused(cli("ls", "local://", config=("hunter2-secret-value",)), "KEY=VALUE")
    assert "hunter2" not in line


def test_download_into_a_missing_folder_or_unwritable_place(cli: Run, tmp_path: Path) -> None:
    ok(cli("mb", "local://bkt"))
    source = tmp_path / "f.txt"
    source.write_bytes(b"data")
    ok(cli("cp", str(source), "local://bkt/f.txt"))
    refused(cli("cp", "local://bkt/f.txt", str(tmp_path / "no" / "such" / "dir" / "f.txt")), "does not exist")
    refused(cli("cp", "local://bkt/f.txt", "/proc/f.txt"))  # the file system refuses: still one line


def test_config_option_wins_over_environment(
    cli: Run, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "env-root"
    monkeypatch.setenv("CLOUDSTORE_LOCAL_ROOT", str(elsewhere))
    ok(cli("mb", "local://bkt"))
    assert (root / "bkt").is_dir() and not elsewhere.exists()
    runner = CliRunner()
    ok(runner.invoke(main, ["mb", "local://envbkt"]))  # without -c the environment is used
    assert (elsewhere / "envbkt").is_dir()


def test_config_values_are_parsed_like_the_config_file() -> None:
    context = _Context(("s3_verify=false", "local_root=/x", "aws_region_name=eu-west-1"))
    assert context.settings_for(ProviderList.AWS) == {"s3_verify": False, "aws_region_name": "eu-west-1"}
    assert context.settings_for(ProviderList.LOCAL) == {"local_root": "/x"}


def test_serve_mistakes_are_one_line(cli: Run, root: Path, tmp_path: Path) -> None:
    refused(cli("serve", "--port", "1"), "--secret")  # no secret anywhere
    secret = "s" * 32
    refused(cli("serve", "--secret", secret, "--port", "0"), "not an existing folder")  # local_root is missing
    root.mkdir()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        refused(cli("serve", "--secret", secret, "--port", str(port)), f"cannot listen on 127.0.0.1:{port}")
    # A weak HMAC key is brute-forced from one URL: refused, with the way to make a good one.
    for weak in ("a", " " * 40, "x" * 31):
        refused(cli("serve", "--secret", weak, "--port", "0"), "at least 32 bytes", "secrets.token_hex(32)")
    refused(cli("serve", "--secret", secret, "--port", "99999"), "99999")
    missing = tmp_path / "missing"
    refused(cli("serve", "--secret", secret, "--port", "0", "--root", str(missing)), "not an existing folder")
    assert not missing.exists()


def test_url_can_be_fetched_through_serve(servers: Servers, tmp_path: Path) -> None:
    server = servers.get("local")
    settings: list[str] = []
    for key, value in server.config.items():
        settings += ["-c", f"{key}={value}"]
    runner = CliRunner()
    ok(runner.invoke(main, [*settings, "mb", "local://cli-url-bucket"]))
    try:
        source = tmp_path / "shared.txt"
        source.write_bytes(b"shared through serve")
        ok(runner.invoke(main, [*settings, "cp", str(source), "local://cli-url-bucket/shared.txt"]))
        url = ok(runner.invoke(main, [*settings, "url", "--expires", "60", "local://cli-url-bucket/shared.txt"]))
        response = requests.get(url.strip(), timeout=10)
        assert response.status_code == 200 and response.content == b"shared through serve"

        put_url = ok(runner.invoke(main, [*settings, "url", "--writable", "local://cli-url-bucket/up.txt"])).strip()
        assert requests.put(put_url, data=b"put via url", timeout=10).status_code == 200
        assert requests.get(put_url, timeout=10).status_code == 403  # write only
        target = tmp_path / "up.txt"
        ok(runner.invoke(main, [*settings, "cp", "local://cli-url-bucket/up.txt", str(target)]))
        assert target.read_bytes() == b"put via url"
    finally:
        runner.invoke(main, [*settings, "rb", "--force", "local://cli-url-bucket"])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cloudstore", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_real_subprocess(tmp_path: Path) -> None:
    root = tmp_path / "proc-root"
    env = {"CLOUDSTORE_CONFIG": str(tmp_path / "none.ini")}
    base = ["-c", f"local_root={root}", "-c", "local_secret=proc-secret-of-thirty-two-bytes-or-more"]
    assert run_cli(*base, "mb", "local://procbkt", env=env).returncode == 0
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(50_000))
    done = run_cli(*base, "cp", str(source), "local://procbkt/dir/in.bin", env=env)
    assert done.returncode == 0, done.stderr
    listing = run_cli(*base, "ls", "local://procbkt", env=env)
    assert listing.returncode == 0 and listing.stdout.split() == ["PRE", "dir/"]  # a prefix has no time
    out = tmp_path / "out.bin"
    assert run_cli(*base, "cp", "local://procbkt/dir/in.bin", str(out), env=env).returncode == 0
    assert out.read_bytes() == source.read_bytes()

    failed = run_cli(*base, "rb", "local://procbkt", env=env)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == ["Error: PreconditionFailedException: bucket 'procbkt' is not empty"]
    assert "Traceback" not in failed.stderr + failed.stdout
    bad = run_cli(*base, "ls", "nope://x", env=env)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "Traceback" not in bad.stderr

    # serve takes its root and secret from -c as well, and serves what `url` signs.
    port = free_port()
    log = tmp_path / "serve.log"
    proc = spawn([sys.executable, "-m", "cloudstore", *base, "serve", "--port", str(port)], log, env=env)
    try:
        wait_for_port(port, proc, log)
        url_base = ["-c", f"local_url=http://127.0.0.1:{port}"]
        signed = run_cli(*base, *url_base, "url", "local://procbkt/dir/in.bin", env=env)
        assert signed.returncode == 0, signed.stderr
        response = requests.get(signed.stdout.strip(), timeout=10)
        assert response.status_code == 200 and response.content == source.read_bytes()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(timeout=10)
    assert "proc-secret" not in log.read_text() and "signature=" not in log.read_text()


def test_copy_between_providers_streams_through(cli: Run, root: Path, servers: Servers, tmp_path: Path) -> None:
    aws = servers.get("aws")
    s3 = tuple(f"{key}={value}" for key, value in aws.config.items() if value is not None)
    data = os.urandom(20 * 1024 * 1024)  # above the default threshold: a multipart upload on S3
    source = tmp_path / "model.bin"
    source.write_bytes(data)
    ok(cli("mb", "local://bkt"))
    ok(cli("cp", "-q", "--content-type", "application/x-model", str(source), "local://bkt/model.bin"))
    ok(cli("mb", "aws://cli-cross-bucket", config=s3))
    try:
        ok(cli("cp", "local://bkt/model.bin", "aws://cli-cross-bucket/copies/", config=s3))
        back = tmp_path / "back.bin"
        ok(cli("cp", "-q", "aws://cli-cross-bucket/copies/model.bin", str(back), config=s3))
        assert back.read_bytes() == data
        listing = ok(cli("ls", "-r", "aws://cli-cross-bucket", config=s3)).split()
        assert listing[-1] == "copies/model.bin" and str(len(data)) in listing
    finally:
        ok(cli("rb", "--force", "aws://cli-cross-bucket", config=s3))


def test_ls_shows_times_and_human_sizes(cli: Run, root: Path) -> None:
    ok(cli("mb", "local://bkt"))
    (root / "bkt" / "small").write_bytes(b"x" * 11)
    (root / "bkt" / "big").write_bytes(b"x" * 1536)
    (root / "bkt" / "huge").write_bytes(b"")
    os.truncate(root / "bkt" / "huge", 5 * 1024**3 // 2)
    os.utime(root / "bkt" / "small", (1_700_000_000, 1_700_000_000))
    rows = [line.split() for line in ok(cli("ls", "local://bkt")).splitlines()]
    assert [row[1:] for row in rows] == [["1536", "big"], [str(5 * 1024**3 // 2), "huge"], ["11", "small"]]
    assert rows[2][0] == "2023-11-14T22:13:20Z"  # the modification time, in UTC
    human = [line.split() for line in ok(cli("ls", "-h", "local://bkt")).splitlines()]
    assert [row[1:] for row in human] == [["1.5", "KiB", "big"], ["2.5", "GiB", "huge"], ["11", "Bytes", "small"]]
    buckets = ok(cli("ls", "local://")).split()
    assert buckets[-1] == "bkt" and buckets[0].endswith("Z")  # buckets with their creation time


def test_help_names_the_provider_schemes(cli: Run) -> None:
    text = ok(cli("--help"))
    for scheme in ("local", "aws", "s3", "openstack", "swift", "azure", "gcp", "gs"):
        assert scheme in text


def test_providers_lists_the_registry_with_keys_and_help(cli: Run) -> None:
    text = ok(cli("providers", "--keys"))
    assert "gcp        gcp://, gs://" in text
    assert "local_root [CLOUDSTORE_LOCAL_ROOT]: Directory holding the buckets." in text
    assert "local_secret [CLOUDSTORE_LOCAL_SECRET]: HMAC key of signed URLs. (secret)" in text


def test_an_address_with_three_slashes_names_the_bucket(cli: Run, root: Path) -> None:
    ok(cli("mb", "local://bkt"))
    ok(cli("mb", "local://other"))
    (root / "bkt" / "k").write_bytes(b"k")
    assert ok(cli("ls", "local:///bkt")).split()[-1] == "k"
    assert ok(cli("ls", "local:///bkt/")).split()[-1] == "k"


def test_dash_is_stdin_and_stdout(cli: Run, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    ok(cli("mb", "local://bkt"))
    (tmp_path / "-").write_bytes(b"a stale file named dash")
    runner_input = os.urandom(100_000)
    result = CliRunner().invoke(main, ["-c", f"local_root={root}", "cp", "-", "local://bkt/in.bin"], input=runner_input)
    ok(result)
    assert (root / "bkt" / "in.bin").read_bytes() == runner_input
    out = CliRunner().invoke(main, ["-c", f"local_root={root}", "cp", "local://bkt/in.bin", "-"])
    assert out.exit_code == 0 and out.stdout_bytes == runner_input
    assert (tmp_path / "-").read_bytes() == b"a stale file named dash"  # no file named '-' written
    refused(cli("cp", "-", "local://bkt/"), "names no object")


def test_dash_through_real_pipes(tmp_path: Path) -> None:
    env = {"CLOUDSTORE_CONFIG": str(tmp_path / "none.ini")}
    base = [sys.executable, "-m", "cloudstore", "-c", f"local_root={tmp_path / 'root'}"]
    assert run_cli(*base[3:], "mb", "local://pipes", env=env).returncode == 0
    data = os.urandom(3 * 1024 * 1024)
    up = subprocess.run(
        [*base, "cp", "-", "local://pipes/p"], input=data, capture_output=True, timeout=60, env={**os.environ, **env}
    )
    assert up.returncode == 0, up.stderr
    down = subprocess.run(
        [*base, "cp", "local://pipes/p", "-"], capture_output=True, timeout=60, env={**os.environ, **env}
    )
    assert down.returncode == 0 and down.stdout == data


def test_upload_of_files_without_a_size(cli: Run, root: Path, tmp_path: Path) -> None:
    ok(cli("mb", "local://bkt"))
    ok(cli("cp", "/proc/version", "local://bkt/version"))
    assert (root / "bkt" / "version").read_bytes() == Path("/proc/version").read_bytes()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(b"through a fifo"))
    writer.start()
    ok(cli("cp", "-q", str(fifo), "local://bkt/fifo"))
    writer.join()
    assert (root / "bkt" / "fifo").read_bytes() == b"through a fifo"


def test_download_through_a_symlink_and_refusing_devices(cli: Run, root: Path, tmp_path: Path) -> None:
    ok(cli("mb", "local://bkt"))
    (root / "bkt" / "k").write_bytes(b"content")
    real = tmp_path / "real"
    real.write_bytes(b"old")
    real.chmod(0o600)
    (tmp_path / "link").symlink_to(real)
    ok(cli("cp", "local://bkt/k", str(tmp_path / "link")))
    assert (tmp_path / "link").is_symlink() and real.read_bytes() == b"content"
    assert real.stat().st_mode & 0o777 == 0o600
    (tmp_path / "dev").symlink_to("/dev/null")
    refused(cli("cp", "local://bkt/k", str(tmp_path / "dev")), "not a regular file")


def test_bad_config_values_are_one_line(cli: Run, tmp_path: Path) -> None:
    refused(cli("ls", "aws://", config=("s3_verify=notabool",)), "true or false")
    refused(cli("ls", "aws://", config=("s3_endpoint_url=localhost:9000",)), "http:// or https:// URL")
    refused(cli("ls", "local://", config=("local_url=not a url",)), "URL")


def test_local_root_that_is_a_file(cli: Run, root: Path) -> None:
    root.write_bytes(b"not a folder")
    refused(cli("ls", "local://"), "local_root", "is not a folder")
    refused(cli("mb", "local://bkt"), "local_root", "is not a folder")


def test_command_line_credentials_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=env;AccountKey=ZW52;")
    context = _Context(("azure_storage_account=cli", "azure_account_key=Y2xp"))
    config = context.provider(ProviderList.AZURE).config
    assert "azure_connection_string" not in config
    assert (config["azure_storage_account"], config["azure_account_key"]) == ("cli", "Y2xp")


def _tree(root: Path) -> Path:
    (root / "sub" / "deeper").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "sub" / "b.txt").write_bytes(b"bravo")
    (root / "sub" / "deeper" / "c.bin").write_bytes(b"charlie")
    return root


def test_recursive_copy_sync_cat_and_recursive_remove(cli: Run, root: Path, tmp_path: Path) -> None:
    ok(cli("mb", "local://bkt"))
    source = _tree(tmp_path / "src")
    copied = ok(cli("cp", "-r", str(source), "local://bkt/x"))
    assert copied.strip() == "copied 3 (17 B), failed 0"
    listed = [line.split()[-1] for line in ok(cli("ls", "-r", "local://bkt")).splitlines()]
    assert listed == ["x/a.txt", "x/sub/b.txt", "x/sub/deeper/c.bin"]
    assert ok(cli("cat", "local://bkt/x/sub/b.txt")) == "bravo"

    (source / "a.txt").write_bytes(b"ALPHA")
    (source / "sub" / "deeper" / "c.bin").unlink()
    planned = ok(cli("sync", str(source), "local://bkt/x", "--delete", "--dry-run")).splitlines()
    assert planned == [
        "(dry run) copy a.txt",
        "(dry run) delete sub/deeper/c.bin",
        "dry run: would have copied 1 (5 B), skipped 1, deleted 1, failed 0",
    ]
    assert ok(cli("cat", "local://bkt/x/a.txt")) == "alpha"  # unchanged by the dry run
    synced = ok(cli("sync", str(source), "local://bkt/x", "--delete", "--exclude", "sub/*", "--concurrency", "2"))
    assert synced.strip() == "copied 1 (5 B), failed 0"  # sub/* left alone
    assert ok(cli("cat", "local://bkt/x/a.txt")) == "ALPHA"

    down = tmp_path / "down"
    ok(cli("cp", "-r", "local://bkt/x/", str(down), "--include", "sub/*"))
    assert sorted(p.relative_to(down).as_posix() for p in down.rglob("*") if p.is_file()) == [
        "sub/b.txt",
        "sub/deeper/c.bin",
    ]
    assert ok(cli("rm", "-r", "local://bkt/x")).strip() == "deleted 3, failed 0"
    assert ok(cli("ls", "-r", "local://bkt")) == ""


@pytest.mark.parametrize("command", ["cp", "sync", "rm"])
def test_request_rate_cap_spaces_a_jobs_requests(cli: Run, tmp_path: Path, command: str) -> None:
    # The memory provider deletes one object a request (max_batch_delete 1): rm -r sends one per object too.
    store = (f"memory_store={unique_name('rate')}",)
    files, rate = 9, 20
    source = tmp_path / "many"
    source.mkdir()
    for i in range(files):
        (source / f"{i}.txt").write_bytes(b"x")
    ok(cli("mb", "memory://bkt", config=store))
    if command == "rm":
        ok(cli("cp", "-r", str(source), "memory://bkt/x", config=store))
    args = {
        "cp": ("cp", "-r", str(source), "memory://bkt/x"),
        "sync": ("sync", str(source), "memory://bkt/x"),
        "rm": ("rm", "-r", "memory://bkt/x"),
    }[command]
    started = time.monotonic()
    summary = ok(cli(*args, "--max-requests-per-second", str(rate), config=store)).strip()
    elapsed = time.monotonic() - started
    assert summary == (f"deleted {files}, failed 0" if command == "rm" else f"copied {files} (9 B), failed 0")
    # At least one request an object, their starts 1/rate s apart: a lower bound only (a slow
    # machine takes longer, never shorter), which an uncapped job on memory beats by far.
    assert elapsed >= (files - 1) / rate
    result = cli(*args, "--max-requests-per-second", "0", config=store)
    assert result.exit_code == 2 and "Invalid value for '--max-requests-per-second'" in result.stderr


def test_bulk_failures_are_listed_and_exit_non_zero(cli: Run, root: Path, tmp_path: Path) -> None:
    ok(cli("mb", "local://bkt"))
    source = _tree(tmp_path / "src")
    (source / "broken").symlink_to(tmp_path / "nowhere")
    result = cli("sync", str(source), "local://bkt")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert result.stdout.strip() == "copied 3 (17 B), failed 1"
    assert result.stderr.startswith("failed: broken: InvalidParamException: No such file or directory")
    refused(cli("sync", str(source), str(tmp_path / "elsewhere")), "PROVIDER://bucket/prefix")
    refused(cli("sync", str(source), "local://no-such-bucket"), "NotFoundException")


def test_one_progress_bar_for_a_whole_job_on_a_terminal(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    source = _tree(tmp_path / "src")
    env = {**os.environ, "CLOUDSTORE_CONFIG": str(tmp_path / "none.ini"), "CLOUDSTORE_LOCAL_ROOT": str(tmp_path / "r")}
    assert run_cli("mb", "local://bkt", env=env).returncode == 0
    leader, follower = pty.openpty()
    # A terminal 100 columns wide (a new pty has 0, where tqdm draws nothing).
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    try:
        done = subprocess.run(
            [sys.executable, "-m", "cloudstore", "cp", "-r", str(source), "local://bkt"],
            stderr=follower,
            stdout=subprocess.PIPE,
            env=env,
            timeout=60,
            check=False,
        )
        os.set_blocking(leader, False)
        shown = b""
        with contextlib.suppress(BlockingIOError):  # everything written is read
            while chunk := os.read(leader, 65536):
                shown += chunk
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0
    assert done.stdout.decode().strip() == "copied 3 (17 B), failed 0"
    bars = shown.decode(errors="replace").replace("\r", "\n").split()
    # tqdm's bar, labelled "bytes" for the whole job, not a bar per file.
    assert "bytes:" in bars and "upload:" not in bars

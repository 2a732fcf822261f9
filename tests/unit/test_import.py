"""The bare package: ``import cloudstore`` loads no cloud SDK, fsspec, pandas or Dask, and LOCAL (library and CLI)
works on a machine where no SDK can be imported at all. Each check runs in a fresh interpreter."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

SDKS = ("boto3", "botocore", "azure", "google", "openstack", "swiftclient")

#: The data tools cloudstore.fsspec serves: the fsspec extra (and the test extra) installs them.
DATA_TOOLS = ("fsspec", "pandas", "pyarrow", "numpy", "dask", "distributed")

#: Loaded on first need only, not by ``import cloudstore``: tenacity at the first retry (it imports
#: asyncio, and tornado and ssl where tornado is installed, as Dask does in the test environment).
DEFERRED = ("tenacity", "tornado", "ssl")

#: Installed with the cloud extras (or the test extra), never by the bare install.
BLOCKED = (*SDKS, *DATA_TOOLS, "google_crc32c", "keystoneauth1", "s3transfer", "requests", "urllib3")

BLOCKER = textwrap.dedent(
    f"""
    import sys

    BLOCKED = {BLOCKED!r}

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{{name}} is blocked: not installed in the bare package")
            return None

    sys.meta_path.insert(0, Blocker())
    """
)


def run_python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    assert result.returncode == 0, result.stderr
    return result


def test_import_cloudstore_loads_no_sdk(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        import cloudstore
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {(*SDKS, *DATA_TOOLS, *DEFERRED)!r})
        assert not loaded, loaded
        print("ok")
        """
    )
    assert run_python(code, tmp_path).stdout.strip() == "ok"


def test_using_local_loads_no_sdk_either(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys
        from cloudstore import CloudProviderFactory, ProviderList, list_providers
        provider = CloudProviderFactory().create_provider(ProviderList.LOCAL, {{"local_root": "root"}})
        bucket = provider.storage.buckets.create("plain")
        bucket.objects.create("k").upload(b"v")
        assert bucket.objects.get("k").read() == b"v"
        list_providers()
        CloudProviderFactory().create_provider(ProviderList.AWS, {{}})  # created, not used: still no SDK
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {SDKS!r})
        assert not loaded, loaded
        print("ok")
        """
    )
    assert run_python(code, tmp_path).stdout.strip() == "ok"


def test_bare_package_works_with_every_sdk_blocked(tmp_path: Path) -> None:
    code = BLOCKER + textwrap.dedent(
        """
        import importlib, io, os, pkgutil
        import cloudstore
        import cloudstore.cli
        from cloudstore import (
            CloudProviderFactory, NotSupportedException, ProviderList, TransferConfig, list_providers,
        )

        # Every module of the bare package imports (the cloud backends are the extras' part).
        for info in pkgutil.walk_packages(cloudstore.__path__, "cloudstore."):
            parts = info.name.split(".")
            if len(parts) > 3 and parts[1] == "providers" and parts[2] != "local":
                continue
            if info.name in ("cloudstore.__main__", "cloudstore.fsspec"):  # fsspec: its extra's part
                continue
            importlib.import_module(info.name)

        # The built-ins that need no SDK (an out-of-tree provider installed here may follow them).
        assert list_providers()[:2] == [ProviderList.LOCAL, "memory"], list_providers()
        assert not {"aws", "openstack", "azure", "gcp"} & set(list_providers())
        for which, extra in [("aws", "aws"), ("openstack", "openstack"), ("azure", "azure"), ("gcp", "gcp")]:
            try:
                CloudProviderFactory().create_provider(which, {})
            except NotSupportedException as err:
                assert f'pip install "cloudstore[{extra}]"' in str(err), err
            else:
                raise AssertionError(f"{which} was created without its SDK")

        small = TransferConfig(threshold=64 * 1024, part_size=32 * 1024)
        provider = CloudProviderFactory().create_provider(
            ProviderList.LOCAL, {"local_root": "root", "local_secret": "s", "transfer_config": small}
        )
        bucket = provider.storage.buckets.create("bare")
        data = os.urandom(200_000)
        bucket.objects.create("big/one").upload(data, content_type="application/x-bare")
        bucket.objects.create("small").upload(b"small")
        with open("source.bin", "wb") as handle:
            handle.write(data)
        bucket.objects.create("from-file").upload_from_file("source.bin")
        obj = bucket.objects.get("big/one")
        assert obj.read() == data and obj.read(10, 19) == data[10:20]
        obj.download_to_file("copy.bin")
        assert open("copy.bin", "rb").read() == data
        out = io.BytesIO()
        bucket.objects.get("small").save_content(out)
        assert out.getvalue() == b"small"
        assert obj.generate_url(expires_in=60).startswith("http://127.0.0.1:8765/bare/big/one?")
        assert [o.name for o in bucket.objects] == ["big/one", "from-file", "small"]
        with obj.open("rb") as handle:  # file objects need no data tool either
            handle.seek(10)
            assert handle.read(10) == data[10:20]
        with cloudstore.open("local://bare/text.txt", "w", config={"local_root": "root"}) as handle:
            handle.write("text")
        assert bucket.objects.get("text.txt").read() == b"text"
        bucket.objects.get("text.txt").delete()
        try:
            import cloudstore.fsspec
        except ImportError as err:
            assert 'pip install "cloudstore[fsspec]"' in str(err), err
        else:
            raise AssertionError("cloudstore.fsspec imported without fsspec")

        # The CLI too, in process.
        cloudstore.cli.main(["-c", "local_root=root", "cp", "-q", "source.bin", "local://bare/cli.bin"],
                            standalone_mode=False)
        cloudstore.cli.main(["-c", "local_root=root", "cp", "-q", "local://bare/cli.bin", "cli-copy.bin"],
                            standalone_mode=False)
        assert open("cli-copy.bin", "rb").read() == data
        cloudstore.cli.main(["-c", "local_root=root", "ls", "local://bare"], standalone_mode=False)
        print("ok")
        """
    )
    result = run_python(code, tmp_path)
    assert result.stdout.strip().splitlines()[-1] == "ok"
    assert "PRE  big/" in result.stdout


def test_command_line_runs_with_every_sdk_blocked(tmp_path: Path) -> None:
    code = BLOCKER + textwrap.dedent(
        """
        import sys
        sys.argv = ["cloudstore", "-c", "local_root=root", "mb", "local://cli-bucket"]
        from cloudstore.cli import main
        try:
            main()
        except SystemExit as done:
            assert done.code in (0, None), done.code
        """
    )
    result = run_python(code, tmp_path)
    assert "created local://cli-bucket" in result.stdout
    assert (tmp_path / "root" / "cli-bucket").is_dir()

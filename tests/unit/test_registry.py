"""The provider registry: built-ins and entry points found once, ids and schemes in any case."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudstore import CloudProviderFactory, InvalidParamException, ProviderList, list_providers, registry
from cloudstore.cli import parse_address
from cloudstore.config import ConfigKey
from cloudstore.registry import ProviderSpec, register, registered, schemes, spec_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Registrations made by the test are forgotten afterwards."""
    before = set(registry.registered())
    yield
    for provider_id in set(registry.registered()) - before:
        registry.unregister(provider_id)


def test_the_builtins_are_registered_with_their_schemes() -> None:
    specs = registered()
    assert set(ProviderList) <= set(specs)
    assert spec_for("S3") is specs["aws"] and spec_for("gs") is specs["gcp"] and spec_for("Swift") is specs["openstack"]
    assert spec_for(ProviderList.LOCAL) is specs["local"]
    assert schemes()["s3"] == "aws"


def test_an_unknown_provider_lists_the_choices() -> None:
    with pytest.raises(InvalidParamException, match=r"unknown provider 'ftp'; choose one of aws, openstack"):
        spec_for("ftp")


def test_a_registered_provider_is_made_by_the_factory_and_addressed_by_the_cli(
    scratch_registry: None, tmp_path: Path
) -> None:
    spec = ProviderSpec(
        id="folder",
        backend="cloudstore.providers.local.backend:LocalBackend",
        keys={"local_root": ConfigKey(help="root")},
        schemes=("fold",),
    )
    register(spec)
    register(spec)  # the same spec again: nothing happens
    provider = CloudProviderFactory().create_provider("FOLDER", {"local_root": str(tmp_path)})
    assert provider.PROVIDER_ID == "folder"
    provider.storage.buckets.create("made-here")
    assert (tmp_path / "made-here").is_dir()
    assert "folder" in list_providers()
    address = parse_address("fold://made-here/key")
    assert address is not None and address.provider == "folder"


def test_a_taken_id_or_scheme_is_refused(scratch_registry: None) -> None:
    with pytest.raises(InvalidParamException, match="taken by 'aws'"):
        register(ProviderSpec(id="other", backend="x:Y", schemes=("s3",)))
    with pytest.raises(InvalidParamException, match="taken by 'local'"):
        register(ProviderSpec(id="local", backend="x:Y"))
    with pytest.raises(InvalidParamException, match="ProviderSpec"):
        register("local")  # type: ignore[arg-type]


def test_a_spec_needs_a_lowercase_id_and_a_backend_path() -> None:
    with pytest.raises(InvalidParamException, match="lowercase"):
        ProviderSpec(id="Mine", backend="m:C")
    with pytest.raises(InvalidParamException, match="module:Class"):
        ProviderSpec(id="mine", backend="m.C")


def test_entry_points_are_read_lazily_and_a_broken_one_is_skipped(tmp_path: Path) -> None:
    """An installed distribution's entry point registers its provider, on first use of the
    registry (``import cloudstore`` does not import the plugin); a broken one is logged and skipped."""
    (tmp_path / "plug_store.py").write_text(
        textwrap.dedent(
            """
            from cloudstore.providers.local import SPEC as LOCAL
            from cloudstore.registry import ProviderSpec

            SPEC = ProviderSpec(id="plug", backend=LOCAL.backend, keys=LOCAL.keys, schemes=("pl",))
            """
        )
    )
    info = tmp_path / "plug_store-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: plug-store\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[cloudstore.providers]\nplug = plug_store:SPEC\nbroken = plug_store:MISSING\n"
    )
    code = textwrap.dedent(
        """
        import sys
        import cloudstore
        assert "plug_store" not in sys.modules
        from cloudstore import CloudProviderFactory
        provider = CloudProviderFactory().create_provider("pl", {"local_root": "root"})
        provider.storage.buckets.create("via-plugin")
        print(sorted(cloudstore.registry.registered()))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": f"{tmp_path}:{REPO}"},
    )
    assert result.returncode == 0, result.stderr
    assert "'plug'" in result.stdout and "'broken'" not in result.stdout
    assert "provider entry point 'broken'" in result.stderr
    assert (tmp_path / "root" / "via-plugin").is_dir()


def test_every_config_key_has_a_one_line_help() -> None:
    for spec in registered().values():
        for name, key in spec.all_keys().items():
            assert key.help and "\n" not in key.help, f"{spec.id}: {name} has no one-line help"


def test_unregister_forgets_a_provider_but_never_a_builtin(scratch_registry: None) -> None:
    spec = ProviderSpec(id="passing", backend="cloudstore.providers.memory.backend:MemoryBackend", schemes=("pass",))
    register(spec)
    assert spec_for("pass") is spec
    registry.unregister("passing")
    assert "passing" not in registered() and "pass" not in schemes()
    registry.unregister("passing")  # gone already: nothing to do
    register(spec)  # its id and scheme are free again
    with pytest.raises(InvalidParamException, match="built-in"):
        registry.unregister("memory")
    assert "memory" in registered()

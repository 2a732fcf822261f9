"""Where the settings of a bucket address come from, and in which order (on LOCAL: no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

import cloudstore


@pytest.fixture
def roots(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    for name in list(__import__("os").environ):
        if name.startswith("CLOUDSTORE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CLOUDSTORE_CONFIG", str(tmp_path / "config.ini"))
    made = {name: tmp_path / name for name in ("general", "env", "file", "dict")}
    for root in made.values():
        (root / "data").mkdir(parents=True)
    return made


def _root_of(bucket: cloudstore.Bucket) -> Path:
    return Path(bucket.provider.config["local_root"])


def test_most_specific_address_wins_and_bucket_settings_beat_provider_settings(
    roots: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "config.ini").write_text(
        f"[local]\nlocal_root = {roots['general']}\n\n"
        f"[local://data]\nlocal_root = {roots['file']}\n\n"
        f"[local://data/team-a]\nlocal_root = {roots['file']}\nprefix = teams\n"
    )
    assert _root_of(cloudstore.open_bucket("local://data")) == roots["file"]
    assert cloudstore.open_bucket("local://data").scope == ""
    team = cloudstore.open_bucket("local://data/team-a/models")
    assert team.scope == "teams/team-a/models/"
    assert _root_of(cloudstore.open_bucket("local://other")) == roots["general"]
    # The environment's settings of the address come before the file's.
    monkeypatch.setenv("CLOUDSTORE_BUCKET_DATA", "local://data")
    monkeypatch.setenv("CLOUDSTORE_BUCKET_DATA_LOCAL_ROOT", str(roots["env"]))
    assert _root_of(cloudstore.open_bucket("local://data/x")) == roots["env"]
    # The dict's entry for the address comes first; its plain keys are provider-wide.
    config = {"local://data": {"local_root": roots["dict"]}, "local_root": str(roots["general"])}
    assert _root_of(cloudstore.open_bucket("local://data", config)) == roots["dict"]
    assert _root_of(cloudstore.open_bucket("local://elsewhere", config)) == roots["general"]


def test_prefix_from_the_environment_scopes_everything(roots: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSTORE_BUCKET_DT", "local://data")
    monkeypatch.setenv("CLOUDSTORE_BUCKET_DT_LOCAL_ROOT", str(roots["env"]))
    monkeypatch.setenv("CLOUDSTORE_BUCKET_DT_PREFIX", "dtool/")
    obj = cloudstore.open_object("local://data/uuid-1/README.yml")
    obj.upload(b"name: ds")
    assert (roots["env"] / "data" / "dtool" / "uuid-1" / "README.yml").read_bytes() == b"name: ds"
    assert obj.name == "uuid-1/README.yml" and obj.key == "dtool/uuid-1/README.yml"


def test_bad_addresses_refused(roots: dict[str, Path]) -> None:
    with pytest.raises(cloudstore.InvalidParamException):
        cloudstore.open_bucket("nosuch://bucket")
    with pytest.raises(cloudstore.InvalidParamException):
        cloudstore.open_bucket("/a/local/path")
    with pytest.raises(cloudstore.InvalidParamException):
        cloudstore.open_object("local://data/", {"local_root": str(roots["general"])})
    with pytest.raises(cloudstore.InvalidNameException):
        cloudstore.open_object("local://data/../x", {"local://data": {"local_root": str(roots["dict"]), "prefix": "p"}})

"""Configuration: dict > environment > config file, unknown keys, secrets kept out of reprs,
no network call when a provider is created, and which providers are installed."""

from __future__ import annotations

import base64
import importlib.util
import select
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudstore import (
    CloudProviderFactory,
    InvalidParamException,
    NotSupportedException,
    ProviderConnectionException,
    ProviderList,
    RetryPolicy,
    list_providers,
)
from cloudstore.config import config_file_path, resolve_config
from cloudstore.registry import registered, spec_for
from cloudstore.testing import backend_of

LOCAL = spec_for("local")
AWS = spec_for(ProviderList.AWS)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No provider variable from the machine, and no config file unless a test writes one."""
    for spec in registered().values():
        for key in spec.keys.values():
            if key.env:
                monkeypatch.delenv(key.env, raising=False)
    monkeypatch.setenv("CLOUDSTORE_CONFIG", str(tmp_path / "config.ini"))


def write_ini(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(text, encoding="utf-8")
    return path


def test_precedence_dict_then_environment_then_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ini(tmp_path, "[local]\nlocal_root = /from/file\nlocal_url = http://file\nlocal_secret = file-secret\n")
    monkeypatch.setenv("CLOUDSTORE_LOCAL_ROOT", "/from/env")
    monkeypatch.setenv("CLOUDSTORE_LOCAL_URL", "http://env")
    config = resolve_config(LOCAL, {"local_root": "/from/dict"})
    assert config["local_root"] == "/from/dict"
    assert config["local_url"] == "http://env"
    assert config["local_secret"] == "file-secret"


def test_precedence_through_the_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ini(tmp_path, "[aws]\naws_access_key = file-key\naws_region_name = file-region\ns3_verify = no\n")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "env-region")
    provider = CloudProviderFactory().create_provider("aws", {"aws_access_key": "dict-key"})
    assert provider.config["aws_access_key"] == "dict-key"
    assert provider.config["aws_region_name"] == "env-region"
    assert provider.config["s3_verify"] is False  # parsed from the file's text


@pytest.mark.parametrize("falsy", ["", False, None, 0])
def test_a_falsy_dict_value_still_wins(falsy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ini(tmp_path, "[local]\nlocal_url = http://file\n")
    monkeypatch.setenv("CLOUDSTORE_LOCAL_URL", "http://env")
    config = resolve_config(LOCAL, {"local_url": falsy})
    assert "local_url" in config and config["local_url"] is falsy


def test_absent_keys_are_simply_missing() -> None:
    config = resolve_config(LOCAL, {})
    assert dict(config) == {}
    assert config.get("local_root") is None


def test_boolean_keys_from_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    write_ini(tmp_path, f"[aws]\ns3_verify = {bundle}\n")
    assert resolve_config(AWS, {})["s3_verify"] == str(bundle)  # a CA bundle path stays a path
    write_ini(tmp_path, "[aws]\ns3_verify = notabool\n")
    with pytest.raises(InvalidParamException, match="true or false"):
        resolve_config(AWS, {})  # neither a boolean nor a file: a typo, not a CA bundle
    for text, value in [("true", True), ("0", False), ("OFF", False), ("Yes", True)]:
        write_ini(tmp_path, f"[aws]\ns3_verify = {text}\n")
        assert resolve_config(AWS, {})["s3_verify"] is value


def test_text_for_a_boolean_key_in_the_dict_is_parsed(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    assert resolve_config(AWS, {"s3_verify": "false"})["s3_verify"] is False
    assert resolve_config(AWS, {"s3_verify": str(bundle)})["s3_verify"] == str(bundle)
    assert resolve_config(AWS, {"s3_verify": False})["s3_verify"] is False
    assert resolve_config(AWS, {"aws_region_name": "false"})["aws_region_name"] == "false"  # text keys stay text


def test_unknown_dict_key_raises() -> None:
    with pytest.raises(InvalidParamException, match="local_rot") as info:
        CloudProviderFactory().create_provider(ProviderList.LOCAL, {"local_rot": "/tmp/x"})
    assert "local_root" in str(info.value)  # the known keys are listed
    with pytest.raises(InvalidParamException):
        CloudProviderFactory().create_provider(ProviderList.AWS, {"aws_secret": "typo"})


def test_another_providers_key_is_unknown_too() -> None:
    with pytest.raises(InvalidParamException, match="aws_access_key"):
        CloudProviderFactory().create_provider(ProviderList.LOCAL, {"aws_access_key": "x"})


def test_unknown_ini_key_raises(tmp_path: Path) -> None:
    write_ini(tmp_path, "[local]\nlocal_root = /x\nlocal_roto = /y\n")
    with pytest.raises(InvalidParamException, match="local_roto"):
        CloudProviderFactory().create_provider(ProviderList.LOCAL, {})


def test_other_sections_do_not_matter(tmp_path: Path) -> None:
    write_ini(tmp_path, "[aws]\naws_access_key = k\n[local]\nlocal_root = /from/file\n[unrelated]\nwhatever = 1\n")
    assert dict(resolve_config(LOCAL, {})) == {"local_root": "/from/file"}


def test_unparsable_file_raises(tmp_path: Path) -> None:
    write_ini(tmp_path, "this is not an ini file\n")
    with pytest.raises(InvalidParamException, match="cannot parse"):
        resolve_config(LOCAL, {})


def test_default_file_location(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDSTORE_CONFIG")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert config_file_path() == tmp_path / ".config" / "cloudstore" / "config.ini"
    folder = tmp_path / ".config" / "cloudstore"
    folder.mkdir(parents=True)
    (folder / "config.ini").write_text("[local]\nlocal_root = /home/file\n")
    assert resolve_config(LOCAL, {})["local_root"] == "/home/file"


def test_unknown_provider_raises() -> None:
    with pytest.raises(InvalidParamException, match="unknown provider"):
        CloudProviderFactory().create_provider("dropbox", {})


def test_wrong_transfer_config_type_raises() -> None:
    with pytest.raises(InvalidParamException, match="transfer_config"):
        CloudProviderFactory().create_provider(ProviderList.LOCAL, {"transfer_config": {"threshold": 1}})


# --- secrets -----------------------------------------------------------------------------------

FAKE_KEY = base64.b64encode(b"azure-account-key-secret-value!!").decode()

SECRET_CONFIGS: dict[str, tuple[dict[str, Any], list[str]]] = {
    "aws": (
        {
            "aws_access_key": "AKIAPUBLICKEYID",
            "aws_secret_key": "aws-secret-value-123",
            "aws_session_token": "aws-session-token-456",
            "s3_endpoint_url": "http://127.0.0.1:{port}",
            "aws_region_name": "us-east-1",
        },
        ["aws-secret-value-123", "aws-session-token-456"],
    ),
    "openstack": (
        {
            "os_storage_url": "http://127.0.0.1:{port}/v1/AUTH_test",
            "os_auth_token": "os-token-secret-789",
            "os_temp_url_key": "os-tempurl-key-secret",
        },
        ["os-token-secret-789", "os-tempurl-key-secret"],
    ),
    "openstack-password": (
        {
            "os_auth_url": "http://127.0.0.1:{port}/v3",
            "os_username": "demo",
            "os_password": "os-password-secret",
            "os_project_name": "demo",
            "os_user_domain_name": "Default",
            "os_project_domain_name": "Default",
        },
        ["os-password-secret"],
    ),
    "azure": (
        {
            "azure_storage_account": "devaccount",
            "azure_account_key": FAKE_KEY,
            "azure_blob_endpoint": "http://127.0.0.1:{port}/devaccount",
        },
        [FAKE_KEY],
    ),
    "gcp": (
        {
            "gcp_access_token": "gcp-bearer-token-secret",
            "gcp_project_name": "test-project",
            "gcp_endpoint_url": "http://127.0.0.1:{port}",
        },
        ["gcp-bearer-token-secret"],
    ),
    "local": (
        {"local_root": "/tmp/unused-root", "local_secret": "local-hmac-secret"},
        ["local-hmac-secret"],
    ),
}


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback port that records whether anyone connected."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock
    sock.close()


def nobody_connected(sock: socket.socket) -> bool:
    ready, _, _ = select.select([sock], [], [], 0.3)
    return not ready


def filled(config: dict[str, Any], port: int) -> dict[str, Any]:
    return {k: v.format(port=port) if isinstance(v, str) else v for k, v in config.items()}


@pytest.mark.parametrize("case", list(SECRET_CONFIGS))
def test_creation_makes_no_network_call_and_hides_secrets(case: str, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    config, secrets = SECRET_CONFIGS[case]
    provider = CloudProviderFactory().create_provider(case.split("-")[0], filled(config, port))
    backend = backend_of(provider)  # the SDK client is built lazily: still nothing on the wire
    shown = [repr(provider), str(provider), repr(provider.config), str(provider.config), repr(backend)]
    shown += [repr(provider.storage), repr(provider.storage.buckets)]
    for secret in secrets:
        for text in shown:
            assert secret not in text
    assert "***" in repr(provider.config)
    assert nobody_connected(listener)
    provider.close()


def test_secrets_from_environment_and_file_are_hidden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_ini(tmp_path, "[aws]\naws_access_key = AKIAFILE\naws_session_token = file-token-def\n")
    from_file = CloudProviderFactory().create_provider(ProviderList.AWS)
    assert from_file.config["aws_session_token"] == "file-token-def"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAVISIBLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "env-secret-abc")
    provider = CloudProviderFactory().create_provider(ProviderList.AWS)
    assert provider.config["aws_secret_key"] == "env-secret-abc"
    text = repr(provider) + str(provider.config) + repr(from_file) + str(from_file.config)
    assert "env-secret-abc" not in text and "file-token-def" not in text
    assert "AKIAVISIBLE" in text and "AKIAFILE" in text  # the key id is not a secret


def test_aws_on_a_closed_port_is_created_and_fails_only_on_use(listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    listener.close()  # nothing listens there any more
    config = {**filled(SECRET_CONFIGS["aws"][0], port), "retry_policy": RetryPolicy(max_attempts=1)}
    provider = CloudProviderFactory().create_provider(ProviderList.AWS, config)
    assert backend_of(provider) is not None
    with pytest.raises(ProviderConnectionException) as info:
        provider.storage.buckets.list()
    assert "aws-secret-value-123" not in str(info.value)


# --- installed providers -------------------------------------------------------------------------


def test_every_provider_is_installed_here() -> None:
    assert set(list_providers()) == set(registered()) >= set(ProviderList)
    assert CloudProviderFactory().list_providers() == list_providers()


def test_missing_sdk_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        if name.split(".")[0] in ("boto3", "azure"):
            if "." in name:  # like Python: looking inside a missing package raises
                raise ModuleNotFoundError(f"No module named {name.split('.')[0]!r}")
            return None
        return real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    installed = list_providers()
    assert ProviderList.LOCAL in installed
    assert ProviderList.AWS not in installed and ProviderList.AZURE not in installed
    with pytest.raises(NotSupportedException, match=r'pip install "cloudstore\[aws\]"'):
        CloudProviderFactory().create_provider(ProviderList.AWS, {})
    with pytest.raises(NotSupportedException, match=r'pip install "cloudstore\[azure\]"'):
        CloudProviderFactory().create_provider("azure", {})
    CloudProviderFactory().create_provider(ProviderList.LOCAL, {})  # unaffected


@pytest.mark.parametrize(
    "provider, config, expected",
    [
        ("local", "local_root=/tmp/x", "must be a dict"),
        ("local", [("local_root", "/tmp/x")], "must be a dict"),
        ("aws", {"aws_region_name": 5}, "'aws_region_name' must be a str"),
        ("aws", {"s3_endpoint_url": "localhost:9000"}, "http:// or https:// URL"),
        ("aws", {"s3_endpoint_url": "http://127.0.0.1:99999"}, "invalid port"),
        ("aws", {"s3_verify": "notabool"}, "true or false"),
        ("aws", {"s3_verify": 5}, "true or false"),
        ("local", {"local_url": "not a url"}, "http:// or https:// URL"),
        ("azure", {"azure_blob_endpoint": "127.0.0.1:10000/devstoreaccount1"}, "URL"),
        ("openstack", {"os_auth_url": "keystone:5000"}, "URL"),
    ],
)
def test_bad_config_values_are_refused_when_the_provider_is_made(provider: str, config: Any, expected: str) -> None:
    with pytest.raises(InvalidParamException, match=expected):
        CloudProviderFactory().create_provider(provider, config)


def test_provider_ids_in_any_case() -> None:
    factory = CloudProviderFactory()
    assert factory.create_provider("AWS").PROVIDER_ID is ProviderList.AWS
    assert factory.create_provider("Local").PROVIDER_ID is ProviderList.LOCAL
    with pytest.raises(InvalidParamException, match="unknown provider"):
        factory.create_provider("ftp")


def test_a_path_object_is_taken_as_text(tmp_path: Path) -> None:
    assert resolve_config(LOCAL, {"local_root": tmp_path})["local_root"] == str(tmp_path)


def test_credentials_come_from_one_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Alternative credentials are taken together from the first place naming any of them: the
    command line's account key is not overridden by a connection string in the environment, and a
    session token in the environment is not mixed with keys given in the dict."""
    azure = spec_for("azure")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", "AccountName=env;AccountKey=ZW52;")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "envaccount")
    config = resolve_config(azure, {"azure_account_key": "a2V5"})
    assert "azure_connection_string" not in config
    assert config["azure_account_key"] == "a2V5" and config["azure_storage_account"] == "envaccount"
    assert resolve_config(azure, {})["azure_connection_string"].startswith("AccountName=env")

    monkeypatch.setenv("AWS_SESSION_TOKEN", "env-token")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "env-key")
    config = resolve_config(AWS, {"aws_access_key": "dict-key", "aws_secret_key": "dict-secret"})
    assert "aws_session_token" not in config and config["aws_access_key"] == "dict-key"
    write_ini(tmp_path, "[aws]\naws_secret_key = file-secret\n")
    assert "aws_secret_key" not in resolve_config(AWS, {})  # the environment names the credentials


def test_a_connection_string_with_an_endpoint_of_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("azure.storage.blob", reason="the azure extra is not installed")
    monkeypatch.setenv(
        "AZURE_STORAGE_CONNECTION_STRING",
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5a2V5;"
        "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;",
    )
    provider = CloudProviderFactory().create_provider("azure", {"azure_blob_endpoint": "http://127.0.0.1:2/acct"})
    assert "127.0.0.1:2" in repr(backend_of(provider))  # the dict's endpoint, the environment's credential
    assert "a2V5a2V5" not in repr(backend_of(provider))


@pytest.mark.parametrize(("given", "expected"), [(5, 5.0), (2.5, 2.5), ("7.5", 7.5)])
def test_timeouts_take_numbers_and_text(given: object, expected: float) -> None:
    from cloudstore.config import Timeouts

    provider = CloudProviderFactory().create_provider(
        ProviderList.LOCAL, {"local_root": "/tmp/cs-timeouts", "connect_timeout": given, "read_timeout": given}
    )
    assert Timeouts.from_config(provider.config) == Timeouts(connect=expected, read=expected)


@pytest.mark.parametrize("bad", [{"read_timeout": 0}, {"connect_timeout": "soon"}, {"read_timeout": True}])
def test_unusable_timeouts_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidParamException):
        CloudProviderFactory().create_provider(ProviderList.LOCAL, {"local_root": "/tmp/cs-timeouts", **bad})


def test_a_read_timeout_past_half_the_deadline_is_refused() -> None:
    with pytest.raises(InvalidParamException, match="half the retry deadline"):
        CloudProviderFactory().create_provider(
            ProviderList.LOCAL,
            {"local_root": "/tmp/cs-timeouts", "read_timeout": 40, "retry_policy": RetryPolicy(deadline=60)},
        )

"""The session-token examples of CloudBridge's "Working with object storage" page (seeds/003):
provider-specific, as they build an AWS or OpenStack provider from temporary credentials."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from cloudstore.testing import unique_name
from cloudstore.testing.conformance.test_seed_examples import TOKEN_BUCKET, run
from tests.conftest import selected_providers

AWS_TOKEN_PROVIDER = """
provider = CloudProviderFactory().create_provider(
    ProviderList.AWS,
    {'aws_access_key': 'ACCESS_KEY',
     'aws_secret_key': 'SECRET_KEY',
     'aws_session_token': 'MY_SESSION_TOKEN'})
"""

OPENSTACK_TOKEN_PROVIDER = """
provider = CloudProviderFactory().create_provider(
    ProviderList.OPENSTACK,
    {'os_storage_url': 'SWIFT_STORAGE_URL',
     'os_auth_token': 'MY_SESSION_TOKEN'})
"""


def _selected(provider_id: str) -> pytest.MarkDecorator:
    """Run only when ``provider_id``'s server is among the selected ones."""
    return pytest.mark.skipif(
        provider_id not in selected_providers(), reason=f"{provider_id} is not in CLOUDSTORE_TEST_PROVIDERS"
    )


def _token_examples(code: str, placeholders: dict[str, str], tmp_path: Path) -> None:
    """Build the provider as the seed does (placeholders filled in), then run the token examples with it."""
    for placeholder, value in placeholders.items():
        code = code.replace(f"'{placeholder}'", repr(value))
    namespace: dict[str, Any] = {}
    run(code, namespace, tmp_path)
    provider = namespace["provider"]
    bucket = provider.storage.buckets.create(unique_name("seed"))
    try:
        (tmp_path / "source.txt").write_bytes(b"through a session token")
        namespace.update(container=bucket.name, source=str(tmp_path / "source.txt"))
        run(TOKEN_BUCKET, namespace, tmp_path)
        assert bucket.objects.get("my_object.txt").read() == b"through a session token"  # type: ignore[union-attr]
        url = bucket.objects.get("my_object.txt").generate_url(expires_in=7200)  # type: ignore[union-attr]
        assert requests.get(url, timeout=30).content == b"through a session token"
    finally:
        bucket.delete(delete_contents=True)


@_selected("aws")
def test_seed_aws_session_token_example(servers: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = servers.get("aws")
    sts = boto3.client(
        "sts",
        endpoint_url=server.extra["sts_endpoint_url"],
        aws_access_key_id=server.extra["admin_access_key"],
        aws_secret_access_key=server.extra["admin_secret_key"],
        region_name=server.extra["region"],
    )
    creds = sts.assume_role(RoleArn=server.extra["role_arn"], RoleSessionName="seed-example")["Credentials"]
    # The seed's dict names no endpoint: the standard environment variables supply it.
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.config["s3_endpoint_url"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", server.extra["region"])
    placeholders = {
        "ACCESS_KEY": creds["AccessKeyId"],
        "SECRET_KEY": creds["SecretAccessKey"],
        "MY_SESSION_TOKEN": creds["SessionToken"],
    }
    _token_examples(AWS_TOKEN_PROVIDER, placeholders, tmp_path)


@_selected("openstack")
def test_seed_openstack_token_example(servers: Any, tmp_path: Path) -> None:
    server = servers.get("openstack")
    from swiftclient.client import get_auth

    storage_url, token = get_auth(
        server.config["os_auth_url"], server.config["os_username"], server.config["os_password"]
    )
    _token_examples(OPENSTACK_TOKEN_PROVIDER, {"SWIFT_STORAGE_URL": storage_url, "MY_SESSION_TOKEN": token}, tmp_path)

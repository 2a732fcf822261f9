"""Fault targets: for each provider, how to put a :class:`FaultProxy` in front of its real server.

A :class:`FaultTarget` says where the server listens, which provider config routes every data
request through the proxy, how its requests look (which ones carry object data, which one
creates a multipart upload), and how to list the multipart state an upload may leave behind,
with the provider's own listing. The fault suite is written once against this description;
server differences live here, never as ``if provider == ...`` in the tests.

LOCAL has no target: its provider reads and writes files itself, with no request to fault. Its
HTTP side, ``cloudstore serve`` and signed URLs, runs behind the proxy in
``test_serve_under_faults.py``.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from cloudstore import CloudProvider
from cloudstore.testing import backend_of
from tests.conftest import make_provider
from tests.support.proxy import Dialect, FaultProxy, FaultRule
from tests.support.servers.base import RunningServer


@dataclass(frozen=True)
class RequestShape:
    """Requests of one kind: their methods, and a regular expression searched in path and query."""

    methods: tuple[str, ...]
    path: str

    def count(self, proxy: FaultProxy) -> int:
        """How many requests of this shape ``proxy`` has seen."""
        return sum(proxy.count_requests(method, self.path) for method in self.methods)

    def add_rule(self, proxy: FaultProxy, kind: str, rate: float = 1.0, **options: Any) -> FaultRule:
        """Inject ``kind`` into requests of this shape."""
        return proxy.add_rule(kind, rate, methods=self.methods, path=self.path, **options)


@dataclass(frozen=True)
class FaultTarget:
    """How to run the fault suite against one provider's server."""

    provider_id: str
    dialect: Dialect
    #: The server's loopback address (what the proxy forwards to).
    upstream: Callable[[RunningServer], tuple[str, int]]
    #: Config overrides that send every request carrying object data through ``proxy_url``.
    route: Callable[[RunningServer, str], dict[str, Any]]
    #: The requests that carry object data up (a single put, or one part).
    data_upload: RequestShape
    #: The requests that bring object data down (whole or a range).
    data_download: RequestShape
    #: The request that creates a multipart upload on the server; None when the upload id is
    #: made by the client (nothing to lose, nothing to duplicate).
    create_upload: RequestShape | None
    #: Multipart state left in a bucket (open uploads, orphaned parts or segments), by the
    #: provider's own listing; [] when there is none.
    leftovers: Callable[[RunningServer, str], list[str]]
    #: Why an upload that failed for good may leave invisible staged parts the service discards
    #: by itself (``None``: it must leave nothing).
    failed_upload_keeps_staged_parts: str | None = None

    def proxy(self, server: RunningServer, **options: Any) -> FaultProxy:
        """A proxy (not started) in front of ``server``, answering in its cloud's dialect."""
        return FaultProxy(self.upstream(server), dialect=self.dialect, **options)

    def through(self, server: RunningServer, proxy: FaultProxy, **overrides: Any) -> CloudProvider:
        """A provider on ``server`` whose every data request goes through ``proxy``."""
        return make_provider(server, **self.route(server, proxy.url), **overrides)


def _port_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.port is not None, url
    return ("127.0.0.1", parts.port)


def _rehost(url: str, proxy_url: str) -> str:
    """``url`` with its scheme and host:port replaced by the proxy's."""
    parts, proxy = urlsplit(url), urlsplit(proxy_url)
    return urlunsplit((proxy.scheme, proxy.netloc, parts.path, parts.query, parts.fragment))


# -- S3 (SeaweedFS) ---------------------------------------------------------------------------


def _s3_leftovers(server: RunningServer, bucket: str) -> list[str]:
    client = backend_of(make_provider(server)).client  # type: ignore[attr-defined]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return [f"upload {u['Key']} {u['UploadId']}" for u in uploads]


S3 = FaultTarget(
    provider_id="aws",
    dialect="s3",
    upstream=lambda server: _port_of(server.config["s3_endpoint_url"]),
    route=lambda server, url: {"s3_endpoint_url": url},
    # /<bucket>/<key>: PutObject and UploadPart, GetObject (not bucket requests).
    data_upload=RequestShape(("PUT",), r"^/[^/?]+/[^?]"),
    data_download=RequestShape(("GET",), r"^/[^/?]+/[^?]"),
    create_upload=RequestShape(("POST",), r"^[^?]*\?(.*&)?uploads(=|&|$)"),
    leftovers=_s3_leftovers,
)


# -- Swift --------------------------------------------------------------------------------------


def _swift_get(server: RunningServer, path: str) -> Any:
    """GET ``<storage url>/<path>`` as the test user, JSON-decoded; None on 404."""
    login = urllib.request.Request(
        server.config["os_auth_url"],
        headers={"X-Auth-User": server.config["os_username"], "X-Auth-Key": server.config["os_password"]},
    )
    with urllib.request.urlopen(login, timeout=30) as response:
        token = response.headers["X-Auth-Token"]
    request = urllib.request.Request(f"{server.extra['storage_url']}/{path}", headers={"X-Auth-Token": token})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return None
        raise


def _swift_leftovers(server: RunningServer, bucket: str) -> list[str]:
    """Segments in the bucket's segments container that no large object's manifest names."""
    from cloudstore.providers.openstack.backend import SEGMENTS_SUFFIX

    segments_container = bucket + SEGMENTS_SUFFIX
    segments = _swift_get(server, f"{quote(segments_container)}?format=json&limit=10000")
    if not segments:
        return []
    used: set[str] = set()
    for entry in _swift_get(server, f"{quote(bucket)}?format=json&limit=10000") or []:
        if "slo_etag" not in entry:  # listings mark static large objects; a plain object has no manifest
            continue
        manifest = _swift_get(server, f"{quote(bucket)}/{quote(entry['name'])}?multipart-manifest=get&format=raw")
        used.update(segment["path"].lstrip("/") for segment in manifest or [])
    return [
        f"segment {segments_container}/{s['name']}" for s in segments if f"{segments_container}/{s['name']}" not in used
    ]


def _swift_route(server: RunningServer, proxy_url: str) -> dict[str, Any]:
    # Logging in stays direct; every object-store request goes to the proxy.
    return {"os_storage_url": _rehost(server.extra["storage_url"], proxy_url)}


SWIFT = FaultTarget(
    provider_id="openstack",
    dialect="swift",
    upstream=lambda server: _port_of(server.config["os_auth_url"]),
    route=_swift_route,
    # /v1/<account>/<container>/<object>: objects and segments, not the manifest (it holds no data).
    data_upload=RequestShape(("PUT",), r"^(?!.*multipart-manifest=put)/v1/[^/]+/[^/?]+/[^?]"),
    data_download=RequestShape(("GET",), r"^/v1/[^/]+/[^/?]+/[^?]"),
    # The segments container, made (idempotently) when a large upload starts.
    create_upload=RequestShape(("PUT",), r"^/v1/[^/]+/[^/?]+(\+|%2B)segments(\?|$)"),
    leftovers=_swift_leftovers,
)


# -- Azure (Azurite) ------------------------------------------------------------------------------


def _azure_leftovers(server: RunningServer, bucket: str) -> list[str]:
    """Blobs holding staged blocks that no commit took (Azure has no call to drop them)."""
    from azure.storage.blob import BlobServiceClient

    with BlobServiceClient.from_connection_string(server.extra["connection_string"]) as service:
        container = service.get_container_client(bucket)
        found = []
        for blob in container.list_blobs(include=["uncommittedblobs"]):
            _, uncommitted = container.get_blob_client(blob.name).get_block_list("uncommitted")
            if uncommitted:
                found.append(f"{len(uncommitted)} uncommitted block(s) of {blob.name}")
        return found


AZURE = FaultTarget(
    provider_id="azure",
    dialect="azure",
    upstream=lambda server: ("127.0.0.1", int(server.extra["port"])),
    route=lambda server, url: {"azure_blob_endpoint": f"{url}/{server.extra['account_name']}"},
    # /<account>/<container>/<blob>: Put Blob and Put Block, not Put Block List (the commit);
    # Get Blob, not the block list.
    data_upload=RequestShape(("PUT",), r"^(?!.*comp=blocklist)/[^/]+/[^/?]+/[^?]"),
    data_download=RequestShape(("GET",), r"^(?!.*comp=)/[^/]+/[^/?]+/[^?]"),
    create_upload=None,
    leftovers=_azure_leftovers,
    failed_upload_keeps_staged_parts=(
        "Azure has no call that drops the uncommitted blocks of a blob never committed, short of "
        "deleting that blob, which would race a writer committing it; the service discards them "
        "after a week, and the next commit of the blob discards them too"
    ),
)


# -- GCS (fake-gcs-server) ------------------------------------------------------------------------


def _gcs_leftovers(server: RunningServer, bucket: str) -> list[str]:
    """The hidden part objects of unfinished compose uploads."""
    from cloudstore.providers.gcp.compose import HIDDEN_PREFIX

    client = backend_of(make_provider(server)).client  # type: ignore[attr-defined]
    return [f"part {blob.name}" for blob in client.list_blobs(bucket, prefix=HIDDEN_PREFIX)]


GCS = FaultTarget(
    provider_id="gcp",
    dialect="gcs",
    upstream=lambda server: ("127.0.0.1", int(server.extra["port"])),
    route=lambda server, url: {"gcp_endpoint_url": url},
    # Media uploads (single objects and parts; not compose) and media downloads.
    data_upload=RequestShape(("POST", "PUT"), r"^/upload/"),
    data_download=RequestShape(("GET",), r"^/download/"),
    create_upload=None,
    leftovers=_gcs_leftovers,
)


TARGETS: dict[str, FaultTarget] = {target.provider_id: target for target in (S3, SWIFT, AZURE, GCS)}

"""A one-node OpenStack Swift (2.38, installed by ``scripts/servers/install_swift.sh``) on 127.0.0.1.

Proxy on P (tempauth with Fernet tokens, so no memcached), account, container
and object servers on P+1..P+3, plus the container and object updaters and the
object expirer. Everything runs from ``swift/launcher.py`` under Swift's own venv; the
configuration and the data live under ``workdir/swift``.
"""

from __future__ import annotations

import base64
import getpass
import os
import secrets
import time
import urllib.request
from pathlib import Path

from cloudstore.testing import Quirks
from tests.support.servers.base import SERVERS_DIR, RunningServer, ServerNotInstalled, free_port, spawn, wait_for_port

SWIFT_PYTHON = SERVERS_DIR / "swift-venv" / "bin" / "python"
LAUNCHER = Path(__file__).with_name("swift") / "launcher.py"

#: tempauth users: the normal test login and an admin (reseller) for provider tests that need one.
USER = ("test:tester", "testing")
ADMIN = ("admin:admin", "admin")
#: A second account whose user has no rights outside its own account (for 403 tests).
OTHER = ("other:user", "otherpass")
#: An account with no TempURL key (the test account has one, as an operator would set it).
KEYLESS = ("keyless:user", "keylesspass")

_COMMON = """\
[DEFAULT]
swift_dir = {etc}
devices = {devices}
mount_check = false
disable_fallocate = true
bind_ip = 127.0.0.1
bind_port = {port}
workers = 0
user = {user}
log_level = {log_level}
recon_cache_path = {root}/cache
"""

#: The proxy's middleware in pipeline order (proxy-logging also runs last), each with the settings of
#: its ``[filter:...]`` section beyond ``use = egg:swift#<name>`` (``-`` read as ``_``).
_MIDDLEWARE: dict[str, dict[str, str]] = {
    "catch_errors": {},
    "gatekeeper": {},
    "healthcheck": {},
    "proxy-logging": {},
    "cache": {"use": "egg:swift#memcache"},
    "listing_formats": {},
    "bulk": {},
    "tempurl": {"allowed_digests": "sha256 sha512"},
    "formpost": {"allowed_digests": "sha256 sha512"},
    "tempauth": {
        "fernet_key_1": "{fernet_key}",
        "active_fernet_key_id": "1",
        "token_life": "{token_life}",
        "user_admin_admin": "{admin_key} .admin .reseller_admin",
        "user_test_tester": "{user_key} .admin",
        "user_other_user": "{other_key} .admin",
        "user_keyless_user": "{keyless_key} .admin",
    },
    "staticweb": {},
    "copy": {},
    "container-quotas": {},
    "account-quotas": {},
    "slo": {},
    "dlo": {},
    "versioned_writes": {"allow_versioned_writes": "true"},
    "symlink": {},
}


def _section(title: str, settings: dict[str, str]) -> str:
    return f"[{title}]\n" + "".join(f"{key} = {value}\n" for key, value in settings.items())


def _pipeline(filters: list[str], app: str, app_settings: dict[str, str]) -> str:
    """A paste pipeline: the filters in order, then the app, with a section for each."""
    sections = [_section("pipeline:main", {"pipeline": " ".join([*filters, app])}), ""]
    sections.append(_section(f"app:{app}", {"use": f"egg:swift#{app.removesuffix('-server')}", **app_settings}))
    for name in dict.fromkeys(filters):
        use = {"use": "egg:swift#" + name.replace("-", "_")}
        sections.append(_section(f"filter:{name}", {**use, **_MIDDLEWARE.get(name, {})}))
    return "\n".join(sections)


_PROXY = _pipeline(
    [*_MIDDLEWARE, "proxy-logging"],
    "proxy-server",
    {"account_autocreate": "true", "allow_account_management": "true"},
)

_INTERNAL_CLIENT = """\
[DEFAULT]
swift_dir = {etc}
user = {user}
log_level = {log_level}

""" + _pipeline(["catch_errors", "proxy-logging"], "proxy-server", {"account_autocreate": "true"})

_ACCOUNT = _pipeline([], "account-server", {})

_CONTAINER = (
    _pipeline([], "container-server", {})
    + """
[container-updater]
interval = 2
"""
)

_OBJECT = (
    _pipeline(
        [],
        "object-server",
        # Listings reflect a write as soon as it returns, even on a busy machine (Swift's default of
        # 1 s leaves the update to the object updater when the container server is slow to answer).
        {"container_update_timeout": "20"},
    )
    + """
[object-updater]
interval = 1

[object-expirer]
interval = 2
internal_client_conf_path = {etc}/internal-client.conf
"""
)

_SWIFT_CONF = """\
[swift-hash]
swift_hash_path_suffix = {suffix}
swift_hash_path_prefix = {prefix}

[storage-policy:0]
name = Policy-0
default = yes
"""


#: The one-node Swift behaves as a real one in everything the suite checks.
QUIRKS = Quirks()


def start(workdir: Path, token_life: int = 86400) -> RunningServer:
    """Start Swift with fresh data under ``workdir/swift``; ``config`` logs in as test:tester via tempauth v1."""
    if not SWIFT_PYTHON.exists():
        raise ServerNotInstalled(f"{SWIFT_PYTHON} is missing: run scripts/servers/install_swift.sh")
    root = workdir / "swift"
    etc = root / "etc"
    devices = root / "srv"
    etc.mkdir(parents=True)
    (devices / "sdb1").mkdir(parents=True)
    (root / "cache").mkdir()

    port = free_port(span=4)
    values = {
        "root": root,
        "etc": etc,
        "devices": devices,
        "user": getpass.getuser(),
        "log_level": os.environ.get("CLOUDSTORE_SWIFT_LOG_LEVEL", "WARNING"),
        "fernet_key": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        "user_key": USER[1],
        "admin_key": ADMIN[1],
        "other_key": OTHER[1],
        "keyless_key": KEYLESS[1],
        "token_life": token_life,
        "suffix": secrets.token_hex(8),
        "prefix": secrets.token_hex(8),
    }
    files = {
        "swift.conf": _SWIFT_CONF,
        "proxy-server.conf": _COMMON + _PROXY,
        "account-server.conf": _COMMON + _ACCOUNT,
        "container-server.conf": _COMMON + _CONTAINER,
        "object-server.conf": _COMMON + _OBJECT,
        "internal-client.conf": _INTERNAL_CLIENT,
    }
    ports = {"proxy-server.conf": port, "account-server.conf": port + 1}
    ports.update({"container-server.conf": port + 2, "object-server.conf": port + 3})
    for name, template in files.items():
        (etc / name).write_text(template.format(port=ports.get(name, 0), **values))

    log = workdir / "swift.log"
    started = time.monotonic()
    proc = spawn(
        [SWIFT_PYTHON, LAUNCHER, etc, port + 1, port + 2, port + 3],
        log,
        # The launcher must not see the project's venv or PYTHONPATH.
        env={"PYTHONPATH": "", "VIRTUAL_ENV": ""},
    )
    server = RunningServer("openstack", {}, [proc])
    auth_url = f"http://127.0.0.1:{port}/auth/v1.0"
    temp_url_key = secrets.token_hex(16)
    try:
        for p in (port + 1, port + 2, port + 3, port):
            wait_for_port(p, proc, log)
        storage_url = _set_account_temp_url_key(auth_url, USER, temp_url_key)
    except BaseException:
        server.stop()
        raise
    server.config = {"os_auth_url": auth_url, "os_username": USER[0], "os_password": USER[1]}
    server.extra = {
        "auth_url": auth_url,
        "admin_user": ADMIN[0],
        "admin_key": ADMIN[1],
        "other_user": OTHER[0],
        "other_key": OTHER[1],
        "keyless_user": KEYLESS[0],
        "keyless_key": KEYLESS[1],
        "temp_url_key": temp_url_key,
        # The test account's object-store URL, as tempauth hands it out (for os_storage_url).
        "storage_url": storage_url,
        "proxy_port": port,
        "start_seconds": time.monotonic() - started,
        "log": log,
    }
    return server


def _set_account_temp_url_key(auth_url: str, user: tuple[str, str], key: str) -> str:
    """Give the account a TempURL key, as its operator would (so signed URLs work with the plain login);
    return the account's storage URL."""
    login = urllib.request.Request(auth_url, headers={"X-Auth-User": user[0], "X-Auth-Key": user[1]})
    with urllib.request.urlopen(login, timeout=30) as response:
        token, storage_url = response.headers["X-Auth-Token"], response.headers["X-Storage-Url"]
    headers = {"X-Auth-Token": token, "X-Account-Meta-Temp-URL-Key": key}
    with urllib.request.urlopen(urllib.request.Request(storage_url, headers=headers, method="POST"), timeout=30):
        pass
    return str(storage_url)

"""Run a one-node Swift in one process tree (executed by Swift's own venv, not the project's).

Usage: ``python launcher.py ETC_DIR ACCOUNT_PORT CONTAINER_PORT OBJECT_PORT``

Swift is imported once here, the rings are built with the Python ``RingBuilder``,
then each server and daemon is forked off: the children share the imported
code, which makes the start fast and the memory small. Children stay in this
process group (so one ``killpg`` stops all) and die with their parent.

Patched for a throwaway test server, before any Swift logger exists:

* syslog (Swift's fallback sends UDP to localhost:514 from a socket bound to
  0.0.0.0) is replaced by the console log (``-v``);
* ``set_swift_dir`` points every process, daemons included, at
  ``ETC_DIR/swift.conf`` instead of ``/etc/swift``;
* the proxy's ``cache`` middleware gets an in-process dict instead of memcached
  (one proxy process, so it is as coherent as memcached): account and
  container info is cached as on a real cluster, instead of costing two extra
  backend requests per object request;
* ``fsync`` is a no-op: the data is thrown away after the tests.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from swift.common.utils import logs, set_swift_dir


class _NoSyslog(logging.NullHandler):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()


class InProcessCache:
    """The part of Swift's ``MemcacheRing`` the proxy uses, in a dict (values JSON-serialised, as memcached's)."""

    def __init__(self) -> None:
        self._data: dict[str, tuple[float, Any]] = {}

    def _alive(self, key: str) -> Any:
        expires, value = self._data.get(key, (0.0, None))
        if expires and expires < time.time():
            self._data.pop(key, None)
            return None
        return value

    def set(self, key: str, value: Any, serialize: bool = True, time: float = 0, **kwargs: Any) -> None:
        stored = json.dumps(value) if serialize else value
        self._data[key] = (_expiry(time), stored)

    def get(self, key: str, raise_on_error: bool = False) -> Any:
        value = self._alive(key)
        return json.loads(value) if isinstance(value, str) else value

    def incr(self, key: str, delta: int = 1, time: float = 0) -> int:
        value = int(self.get(key) or 0) + delta
        self.set(key, value, time=time)
        return value

    def decr(self, key: str, delta: int = 1, time: float = 0) -> int:
        return self.incr(key, -delta, time)

    def delete(self, key: str, server_key: str | None = None) -> None:
        self._data.pop(key, None)

    def set_multi(
        self, mapping: dict[str, Any], server_key: str, serialize: bool = True, time: float = 0, **kw: Any
    ) -> None:
        for key, value in mapping.items():
            self.set(key, value, serialize, time)

    def get_multi(self, keys: list[str], server_key: str) -> list[Any]:
        return [self.get(key) for key in keys]


def _expiry(seconds: float) -> float:
    # memcached reads values above 30 days as absolute Unix times
    if not seconds:
        return 0.0
    return seconds if seconds > 30 * 24 * 3600 else time.time() + seconds


logs.ThreadSafeSysLogHandler = _NoSyslog  # type: ignore[misc,assignment]
os.fsync = os.fdatasync = lambda fd: None

# Imported before forking so the children share them (the same modules the servers' mains import).
import swift.account.server  # noqa: E402
import swift.common.middleware.memcache  # noqa: E402
import swift.common.middleware.slo  # noqa: E402
import swift.common.middleware.tempauth  # noqa: E402
import swift.common.middleware.tempurl  # noqa: E402
import swift.container.server  # noqa: E402
import swift.container.updater  # noqa: E402
import swift.obj.expirer  # noqa: E402
import swift.obj.server  # noqa: E402
import swift.obj.updater  # noqa: E402
import swift.proxy.server  # noqa: E402
from swift.common.ring import RingBuilder  # noqa: E402

PART_POWER = 8


def build_ring(etc: Path, kind: str, port: int) -> None:
    builder = RingBuilder(PART_POWER, 1, 1)
    builder.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": port, "device": "sdb1", "weight": 1.0})
    builder.rebalance()
    builder.get_ring().save(str(etc / f"{kind}.ring.gz"))


def main() -> None:
    etc = Path(sys.argv[1])
    ports = dict(zip(("account", "container", "object"), map(int, sys.argv[2:5]), strict=True))
    set_swift_dir(str(etc))
    shared_cache = InProcessCache()
    swift.common.middleware.memcache.load_memcache = lambda conf, logger: shared_cache
    for kind, port in ports.items():
        build_ring(etc, kind, port)

    services = {
        "proxy-server": (swift.proxy.server.main, "proxy-server.conf"),
        "account-server": (swift.account.server.main, "account-server.conf"),
        "container-server": (swift.container.server.main, "container-server.conf"),
        "object-server": (swift.obj.server.main, "object-server.conf"),
        "container-updater": (swift.container.updater.main, "container-server.conf"),
        "object-updater": (swift.obj.updater.main, "object-server.conf"),
        "object-expirer": (swift.obj.expirer.main, "object-server.conf"),
    }
    libc = ctypes.CDLL(None, use_errno=True)
    gc.freeze()  # keep the shared objects' pages shared: the children's collector leaves them alone
    children: dict[int, str] = {}
    for name, (entry, conf) in services.items():
        pid = os.fork()
        if pid == 0:
            libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG: die with the launcher
            os.setsid = lambda: None  # stay in the launcher's process group (Swift's daemons call setsid)
            sys.argv = [f"swift-{name}", str(etc / conf), "-v"]
            try:
                entry()
            finally:
                os._exit(0)
        children[pid] = name

    def stop(signum: int, frame: Any) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        for _ in children:
            try:
                os.wait()
            except ChildProcessError:
                break
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    pid, status = os.wait()
    print(f"{children.pop(pid)} exited with status {status}; stopping the others", file=sys.stderr, flush=True)
    stop(signal.SIGTERM, None)


if __name__ == "__main__":
    main()

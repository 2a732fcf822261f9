"""cloudstore.testing's seam: SpyBackend records and fails calls, provider_with builds a provider on it."""

from __future__ import annotations

import inspect
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from cloudstore import CloudProviderFactory, NotFoundException, ProviderConnectionException, RetryPolicy
from cloudstore.backend import Backend
from cloudstore.testing import Call, SpyBackend, backend_of, provider_with, spy_on
from cloudstore.testing.target import Target, read_config_file

NO_WAIT = RetryPolicy(max_attempts=3, initial_backoff=0.0, max_backoff=0.0)


def spied_memory() -> tuple[SpyBackend, object]:
    # A store of its own: the tests below reuse bucket names.
    plain = CloudProviderFactory().create_provider(
        "memory", {"retry_policy": NO_WAIT, "memory_store": uuid.uuid4().hex}
    )
    spy = SpyBackend(backend_of(plain))
    return spy, provider_with(spy, plain)


def test_every_method_of_the_interface_is_passed_on_and_recorded() -> None:
    """A method added to Backend must be added to SpyBackend too, or it would bypass the spy."""
    public = {name for name, _ in inspect.getmembers(Backend, inspect.isfunction) if not name.startswith("_")}
    missing = {name for name in public if getattr(SpyBackend, name) is getattr(Backend, name)}
    assert not missing


def test_calls_are_recorded_and_counted() -> None:
    spy, provider = spied_memory()
    bucket = provider.storage.buckets.create("spied")  # type: ignore[attr-defined]
    bucket.objects.create("a").upload(b"1")
    bucket.objects.create("b").upload(b"2")
    assert bucket.objects.get("a").read() == b"1"
    assert spy.count("put_object") == 2 and spy.count("create_bucket") == 1
    puts = spy.calls_to("put_object")
    assert [(call.number, call.args[:3]) for call in puts] == [(1, ("spied", "a", b"1")), (2, ("spied", "b", b"2"))]
    assert spy.features == backend_of(provider).features  # type: ignore[arg-type]


def test_a_failed_call_is_retried_by_the_shared_layer() -> None:
    spy, provider = spied_memory()
    bucket = provider.storage.buckets.create("spied")  # type: ignore[attr-defined]
    spy.fail("put_object", ProviderConnectionException("injected"), times=2)
    bucket.objects.create("k").upload(b"third time")
    assert spy.count("put_object") == 3
    assert bucket.objects.get("k").read() == b"third time"


def test_failures_can_be_chosen_by_the_call() -> None:
    spy, provider = spied_memory()
    bucket = provider.storage.buckets.create("spied")  # type: ignore[attr-defined]
    spy.fail(
        "put_object", lambda call: NotFoundException(f"no {call.args[1]}"), times=None, when=lambda c: c.args[1] == "x"
    )
    bucket.objects.create("y").upload(b"fine")
    with pytest.raises(NotFoundException, match="no x"):
        bucket.objects.create("x").upload(b"refused")
    assert spy.count("put_object") == 2  # a non-retryable error is not tried again
    spy.reset()
    bucket.objects.create("x").upload(b"now fine")
    assert spy.calls_to("put_object")[0].number == 1


def test_hooks_run_before_and_change_results() -> None:
    spy, provider = spied_memory()
    bucket = provider.storage.buckets.create("spied")  # type: ignore[attr-defined]
    bucket.objects.create("k").upload(b"v")
    seen: list[Call] = []
    spy.before("head_object", seen.append)
    spy.after("head_object", lambda call, info: None)  # as if the object were gone
    assert bucket.objects.get("k") is None
    assert [call.method for call in seen] == ["head_object"]


def test_changed_features_reach_the_shared_layer() -> None:
    plain = CloudProviderFactory().create_provider("memory")
    spied = spy_on(plain, server_side_copy=False)
    assert spied.provider.features.server_side_copy is False and plain.features.server_side_copy is True
    bucket = spied.provider.storage.buckets.create("copies")
    bucket.objects.create("a").upload(b"copied through the engine")
    assert bucket.objects.get("a").copy_to(bucket, "b").read() == b"copied through the engine"  # type: ignore[union-attr]
    assert spied.backend.count("copy_object") == 0 and spied.backend.count("put_object") == 2
    assert backend_of(spied.provider) is spied.backend and backend_of(plain) is not spied.backend.inner


def test_targets_and_config_files(tmp_path: Path) -> None:
    ini = tmp_path / "c.ini"
    ini.write_text("[local]\nlocal_root = /srv/store\n")
    assert read_config_file(ini, "local") == {"local_root": "/srv/store"}
    js = tmp_path / "c.json"
    js.write_text('{"memory": {}, "local": {"local_root": "/x"}}')
    assert read_config_file(js, "local") == {"local_root": "/x"}
    target = Target("memory")
    made = target.make_provider()
    assert made.PROVIDER_ID == "memory" and made.transfer_config.part_size == 5 * 1024 * 1024


def test_importing_the_seam_imports_no_pytest() -> None:
    code = "import sys, cloudstore.testing; print('pytest' in sys.modules, 'cloudstore.testing' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]
    code = "import sys, cloudstore; print('cloudstore.testing' in sys.modules)"
    assert (
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
        == "False"
    )

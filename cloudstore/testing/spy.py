"""A seam for tests: a backend wrapper that records and fails chosen calls, and providers around it.

Tests of the shared layer use it instead of reaching into a provider's private attributes or
patching its backend: ``SpyBackend(inner)`` passes every call on to ``inner`` (a real backend,
on a real server), records it, and can fail chosen calls with chosen exceptions or run a hook
before them; :func:`provider_with` makes a provider whose requests all go through it.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from cloudstore.backend import Backend
from cloudstore.config import Config, resolve_config
from cloudstore.model import CloudProvider
from cloudstore.registry import spec_for

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One call a :class:`SpyBackend` received."""

    method: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    #: 1 for the first call of this method, 2 for the second, ...
    number: int


@dataclass
class _Fault:
    error: BaseException | Callable[[Call], BaseException]
    times: int | None
    when: Callable[[Call], bool] | None


class SpyBackend(Backend[Any]):
    """Passes every call on to ``inner``, records it, and fails or intercepts the chosen ones.

    ``feature_changes`` replace fields of ``inner.features`` (e.g. ``max_copy_size=6 * MiB`` to
    make the engine copy in parts); the shared layer then sees the changed capabilities.
    """

    def __init__(self, inner: Backend[Any], **feature_changes: Any) -> None:
        self.inner = inner
        # An instance attribute: the shared layer reads ``backend.features``.
        self.__dict__["features"] = dataclasses.replace(inner.features, **feature_changes)
        self._lock = threading.Lock()
        self.calls: list[Call] = []
        self._faults: dict[str, list[_Fault]] = {}
        self._before: dict[str, list[Callable[[Call], None]]] = {}
        self._after: dict[str, list[Callable[[Call, Any], Any]]] = {}

    def __repr__(self) -> str:
        return f"<SpyBackend inner={self.inner!r}>"

    def __getattr__(self, name: str) -> Any:
        # Attributes of the backend beyond the interface (a provider's own helpers).
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    # --- what the test asks ---------------------------------------------------------------------
    def count(self, method: str) -> int:
        """How many calls of ``method`` were made so far."""
        with self._lock:
            return sum(1 for call in self.calls if call.method == method)

    def calls_to(self, method: str) -> list[Call]:
        """The calls of ``method`` so far, in order."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def fail(
        self,
        method: str,
        error: BaseException | Callable[[Call], BaseException],
        *,
        times: int | None = 1,
        when: Callable[[Call], bool] | None = None,
    ) -> None:
        """Raise ``error`` (or ``error(call)``) instead of making the next ``times`` calls of
        ``method`` that ``when`` accepts (``times=None``: every one). The call is still recorded."""
        with self._lock:
            self._faults.setdefault(method, []).append(_Fault(error, times, when))

    def before(self, method: str, hook: Callable[[Call], None]) -> None:
        """Run ``hook(call)`` before each call of ``method`` is passed on (it may raise)."""
        with self._lock:
            self._before.setdefault(method, []).append(hook)

    def after(self, method: str, hook: Callable[[Call, Any], Any]) -> None:
        """Replace the result of each call of ``method`` by ``hook(call, result)``."""
        with self._lock:
            self._after.setdefault(method, []).append(hook)

    def reset(self) -> None:
        """Forget the calls, faults and hooks."""
        with self._lock:
            self.calls.clear()
            self._faults.clear()
            self._before.clear()
            self._after.clear()

    # --- the passing on ---------------------------------------------------------------------------
    def _invoke(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        with self._lock:
            number = 1 + sum(1 for call in self.calls if call.method == method)
            call = Call(method, args, dict(kwargs), number)
            self.calls.append(call)
            error = self._take_fault(call)
            before = list(self._before.get(method, ()))
            after = list(self._after.get(method, ()))
        if error is not None:
            raise error
        for hook in before:
            hook(call)
        result = getattr(self.inner, method)(*args, **kwargs)
        for replace in after:
            result = replace(call, result)
        return result

    def _take_fault(self, call: Call) -> BaseException | None:
        """The error to raise for ``call``, if a fault applies (the caller holds the lock)."""
        for fault in self._faults.get(call.method, []):
            if fault.times == 0 or (fault.when is not None and not fault.when(call)):
                continue
            if fault.times is not None:
                fault.times -= 1
            return fault.error if isinstance(fault.error, BaseException) else fault.error(call)
        return None

    def check_bucket_name(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("check_bucket_name", args, kwargs)  # type: ignore[no-any-return]

    def check_object_name(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("check_object_name", args, kwargs)  # type: ignore[no-any-return]

    def map_error(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("map_error", args, kwargs)

    def list_buckets(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("list_buckets", args, kwargs)

    def head_bucket(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("head_bucket", args, kwargs)

    def create_bucket(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("create_bucket", args, kwargs)

    def delete_bucket(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("delete_bucket", args, kwargs)  # type: ignore[no-any-return]

    def list_objects(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("list_objects", args, kwargs)

    def head_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("head_object", args, kwargs)

    def checksum_hint(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("checksum_hint", args, kwargs)

    def put_object(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("put_object", args, kwargs)  # type: ignore[no-any-return]

    def get_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("get_object", args, kwargs)

    def delete_object(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("delete_object", args, kwargs)  # type: ignore[no-any-return]

    def copy_object(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("copy_object", args, kwargs)  # type: ignore[no-any-return]

    def sign_url(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("sign_url", args, kwargs)

    def sign_post(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("sign_post", args, kwargs)

    def credentials_expiry(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("credentials_expiry", args, kwargs)

    def create_multipart_upload(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("create_multipart_upload", args, kwargs)

    def upload_part(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("upload_part", args, kwargs)

    def upload_part_copy(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("upload_part_copy", args, kwargs)

    def complete_multipart_upload(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("complete_multipart_upload", args, kwargs)  # type: ignore[no-any-return]

    def abort_multipart_upload(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("abort_multipart_upload", args, kwargs)  # type: ignore[no-any-return]

    def abort_orphan_uploads(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("abort_orphan_uploads", args, kwargs)  # type: ignore[no-any-return]

    def cleanup_multipart_upload(self, *args: Any, **kwargs: Any) -> None:
        return self._invoke("cleanup_multipart_upload", args, kwargs)  # type: ignore[no-any-return]

    def delete_objects(self, *args: Any, **kwargs: Any) -> Any:
        return self._invoke("delete_objects", args, kwargs)

    def close(self) -> None:
        self._invoke("close", (), {})


def backend_of(provider: CloudProvider) -> Backend[Any]:
    """The backend doing ``provider``'s requests (made on first use): for tests that call the
    provider interface directly, e.g. to change an object behind the shared layer's back."""
    return provider._backend


def call_through(provider: CloudProvider, fn: Callable[[], T]) -> T:
    """``fn()`` run as ``provider`` runs each request: under its retry policy, with what it raises
    translated into cloudstore exceptions (and expired credentials renewed). For tests that call
    a backend method directly (:func:`backend_of`) and check the error the shared layer would see."""
    return provider._call(fn)


def provider_with(
    backend: Backend[Any], like: CloudProvider | str = "memory", config: Mapping[str, Any] | None = None
) -> CloudProvider:
    """A provider whose every request goes to ``backend`` (a :class:`SpyBackend`, a test double).

    It is made as ``like`` says: an existing provider (its id and config are taken; ``backend``
    usually wraps that provider's own, from :func:`backend_of`) or a registered provider id with
    ``config``. Closing it closes ``backend``. A pickled copy gets a backend of its own again.
    """
    if isinstance(like, CloudProvider):
        spec, resolved = like._spec, Config(like._spec, dict(like.config, **(config or {})))
    else:
        spec = spec_for(like)
        resolved = resolve_config(spec, config)
    made = CloudProvider(spec, resolved)
    made._backend_instance = backend
    return made


class Spied(NamedTuple):
    """A provider whose backend is a :class:`SpyBackend`, and that spy."""

    provider: CloudProvider
    backend: SpyBackend


def spy_on(provider: CloudProvider, **feature_changes: Any) -> Spied:
    """A new provider like ``provider`` (same id and config) whose backend is a :class:`SpyBackend`
    around a backend of its own (closing it leaves ``provider`` alone)."""
    own = CloudProvider(provider._spec, provider.config)
    spy = SpyBackend(backend_of(own), **feature_changes)
    return Spied(provider_with(spy, own), spy)

"""fsspec's own abstract test suite (copy, get, put, pipe, open) on every provider.

Object stores have no empty directories: a directory is a prefix, and exists while an object
is under it (``supports_empty_directories`` is False, as for s3fs and gcsfs).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import fsspec.tests.abstract as abstract
import pytest

from cloudstore import Bucket, CloudProvider
from cloudstore.fsspec import CloudStoreFileSystem
from cloudstore.testing import Quirks, fresh_bucket

#: The cases that look for a directory to be gone once its last object is deleted.
EMPTIED_DIRECTORY_CASES = {
    "test_copy_directory_to_existing_directory",
    "test_copy_directory_to_new_directory",
    "test_copy_glob_to_existing_directory",
    "test_put_directory_to_existing_directory",
    "test_put_directory_to_new_directory",
    "test_put_glob_to_existing_directory",
}


@pytest.fixture(scope="module")
def shared_bucket(provider: CloudProvider) -> Iterator[Bucket]:
    """One bucket per provider for the whole suite: each case works under its own prefix."""
    with fresh_bucket(provider, "fsspec") as created:
        yield created


class CloudStoreFixtures(abstract.AbstractFixtures):  # type: ignore[misc]
    @pytest.fixture(autouse=True)
    def _declared_differences(
        self, request: pytest.FixtureRequest, quirks: Quirks, known_difference: Callable[[str | None], None]
    ) -> None:
        if request.node.originalname in EMPTIED_DIRECTORY_CASES:
            known_difference(quirks.prefix_outlives_its_objects)

    @pytest.fixture
    def fs(self, provider: CloudProvider) -> Iterator[CloudStoreFileSystem]:
        yield CloudStoreFileSystem(provider=provider)

    @pytest.fixture
    def fs_join(self) -> Callable[..., str]:
        return lambda *parts: "/".join(parts)

    @pytest.fixture
    def fs_path(self, shared_bucket: Bucket) -> str:
        return f"{shared_bucket.name}/{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def supports_empty_directories(self) -> bool:
        return False


class TestCopy(abstract.AbstractCopyTests, CloudStoreFixtures):  # type: ignore[misc]
    pass


class TestGet(abstract.AbstractGetTests, CloudStoreFixtures):  # type: ignore[misc]
    pass


class TestPut(abstract.AbstractPutTests, CloudStoreFixtures):  # type: ignore[misc]
    pass


class TestPipe(abstract.AbstractPipeTests, CloudStoreFixtures):  # type: ignore[misc]
    pass


class TestOpen(abstract.AbstractOpenTests, CloudStoreFixtures):  # type: ignore[misc]
    pass

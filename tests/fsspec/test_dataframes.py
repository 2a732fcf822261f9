"""The real tools through cloudstore: pandas and pyarrow on every provider, and a Dask cluster of
two worker processes on SeaweedFS (aws) and LOCAL. Small data, bounded in time (CI has 2 cores)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from cloudstore import Bucket, CloudProvider
from cloudstore.bulk import copy_tree
from cloudstore.fsspec import CloudStoreFileSystem
from tests.conftest import TEST_TRANSFER, Servers, fresh_bucket, make_provider, selected_providers
from tests.support.servers.base import RunningServer


def storage_options(server: RunningServer) -> dict[str, Any]:
    return {"provider": server.name, "config": {**server.config, "transfer_config": TEST_TRANSFER}}


def sample(rows: int = 1000) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": range(rows),
            "part": [f"p{i % 3}" for i in range(rows)],
            "value": [i * 0.5 for i in range(rows)],
            "text": [f"row {i}, with a comma and ünïcode" for i in range(rows)],
        }
    )


def same_rows(got: pd.DataFrame, want: pd.DataFrame) -> None:
    got = got.astype({"part": str})[list(want.columns)].sort_values("id").reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want.sort_values("id").reset_index(drop=True), check_dtype=False)


def test_pandas_csv_and_parquet_through_urls(bucket: Bucket, server: RunningServer) -> None:
    options = storage_options(server)
    df = sample()
    url = f"cloudstore://{bucket.name}/tables"
    df.to_csv(f"{url}/data.csv", index=False, storage_options=options)
    same_rows(pd.read_csv(f"{url}/data.csv", storage_options=options), df)
    df.to_parquet(f"{url}/data.parquet", index=False, storage_options=options)
    same_rows(pd.read_parquet(f"{url}/data.parquet", storage_options=options), df)
    assert sorted(o.name for o in bucket.objects) == ["tables/data.csv", "tables/data.parquet"]


def test_pyarrow_reads_a_partitioned_dataset(bucket: Bucket, server: RunningServer) -> None:
    options = storage_options(server)
    df = sample()
    df.to_parquet(f"cloudstore://{bucket.name}/ds", partition_cols=["part"], index=False, storage_options=options)
    names = sorted(o.name for o in bucket.objects)
    assert {name.split("/")[1] for name in names} == {"part=p0", "part=p1", "part=p2"}
    fs = CloudStoreFileSystem(**options)
    dataset = ds.dataset(f"{bucket.name}/ds", filesystem=fs, format="parquet", partitioning="hive")
    same_rows(dataset.to_table().to_pandas(), df)
    only = dataset.to_table(filter=ds.field("part") == "p1").to_pandas()
    same_rows(only, df[df["part"] == "p1"])
    same_rows(pq.read_table(f"{bucket.name}/ds", filesystem=fs).to_pandas(), df)


# --- Dask: a LocalCluster of two worker processes -------------------------------------
DASK_PROVIDERS = [
    pytest.param(
        name,
        marks=pytest.mark.skipif(
            name not in selected_providers(), reason=f"{name} is not in CLOUDSTORE_TEST_PROVIDERS"
        ),
    )
    for name in ("aws", "local")
]


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    from dask.distributed import Client, LocalCluster

    with (
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client


@pytest.fixture
def dask_provider(request: pytest.FixtureRequest, servers: Servers) -> tuple[RunningServer, CloudProvider]:
    server = servers.get(request.param)
    return server, make_provider(server)


@pytest.mark.parametrize("dask_provider", DASK_PROVIDERS, indirect=True)
def test_dask_writes_and_reads_a_partitioned_parquet_dataset(
    dask_client: Any, dask_provider: tuple[RunningServer, CloudProvider]
) -> None:
    import dask.dataframe as dd

    server, provider = dask_provider
    options = storage_options(server)
    df = sample(4000)
    with fresh_bucket(provider) as bucket:
        url = f"cloudstore://{bucket.name}/dask-ds"
        dd.from_pandas(df, npartitions=4).to_parquet(
            url, partition_on=["part"], write_index=False, storage_options=options
        )
        written = [o.name for o in bucket.objects]
        assert any(name.startswith("dask-ds/part=p2/") for name in written), written
        back = dd.read_parquet(url, storage_options=options).compute()
        same_rows(back, df)
        workers = dask_client.run(lambda: __import__("os").getpid())
        assert len(set(workers.values())) == 2  # two worker processes did the work


def _copy_share(task: tuple[Bucket, Bucket, str]) -> int:
    """Runs in a Dask worker: copies one prefix from one provider to another with the bulk API
    (its own bounded pool in the worker), and says how many objects it copied."""
    source, target, prefix = task
    report = copy_tree((source, prefix), (target, prefix), concurrency=8)
    assert report.ok, report.failed
    return report.copied


@pytest.mark.skipif(
    not {"aws", "local"} <= set(selected_providers()), reason="needs aws and local in CLOUDSTORE_TEST_PROVIDERS"
)
def test_dask_copies_2000_objects_between_providers(dask_client: Any, servers: Servers) -> None:
    local = make_provider(servers.get("local"))
    aws = make_provider(servers.get("aws"))
    names = [f"batch/{i // 100:02d}/obj-{i:04d}.txt" for i in range(2000)]
    with fresh_bucket(local) as source, fresh_bucket(aws) as target:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda name: source.objects.create(name).upload(f"content of {name}"), names))
        shares = [(source, target, f"batch/{n:02d}/") for n in range(20)]
        assert sum(dask_client.gather(dask_client.map(_copy_share, shares))) == 2000
        stored = {o.name: o.size for o in target.objects}
        assert stored == {name: len(f"content of {name}") for name in names}

        def check(name: str) -> bool:
            return target.objects.create(name).read() == f"content of {name}".encode()

        with ThreadPoolExecutor(8) as pool:  # every size above; the bytes of one object in ten
            assert all(pool.map(check, names[::10]))

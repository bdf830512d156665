"""Reading dataset versions: columns, head across parts, verification, DuckDB, remote stores."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from gyre.core.artifacts import ArtifactStore
from gyre.core.errors import ArtifactError, CorruptArtifactError, DataError
from gyre.datasets import (
    DatasetManifest,
    duckdb_relation,
    head,
    iter_parts,
    part_paths,
    read_table,
    write_table,
)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_url(str(tmp_path / "objects"))


def sales(n: int = 100) -> pa.Table:
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "shop": pa.array([["Bern", "Basel", "Chur", None][i % 4] for i in range(n)]),
            "amount": pa.array([None if i % 9 == 0 else (i * 37 % 101) / 4 for i in range(n)]),
            "units": pa.array([i % 7 for i in range(n)], pa.int32()),
            "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 30) for i in range(n)]),
        }
    )


@pytest.fixture
def dataset(store: ArtifactStore) -> tuple[pa.Table, DatasetManifest]:
    table = sales()
    return table, write_table(store, table, part_rows=30)


def test_read_selected_columns_in_the_order_asked(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    table, manifest = dataset
    back = read_table(store, manifest, columns=["units", "id"])
    assert back.equals(table.select(["units", "id"]))
    empty = write_table(store, table.slice(0, 0))
    assert read_table(store, empty, columns=["units", "id"]).column_names == ["units", "id"]


def test_unknown_column_is_a_data_error(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    _, manifest = dataset
    with pytest.raises(DataError, match="no column 'price'") as info:
        read_table(store, manifest, columns=["id", "price"])
    assert info.value.hint == "its columns are: id, shop, amount, units, day"


@pytest.mark.parametrize("n", [0, 1, 29, 30, 31, 61, 99, 100, 500])
def test_head_across_parts(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest], n: int
) -> None:
    table, manifest = dataset
    assert head(store, manifest, n).equals(table.slice(0, n))
    assert head(store, manifest, n, columns=["shop"]).equals(table.select(["shop"]).slice(0, n))


def test_head_reads_only_the_parts_it_needs(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    table, manifest = dataset
    assert [p.rows for p in manifest.parts] == [30, 30, 30, 10]
    Path(store.path_of(manifest.parts[2].id)).unlink()
    assert head(store, manifest, 60).equals(table.slice(0, 60))
    with pytest.raises(ArtifactError, match="missing"):
        head(store, manifest, 61)
    with pytest.raises(ArtifactError, match="missing"):
        read_table(store, manifest)


def test_negative_head_is_refused(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    with pytest.raises(DataError, match="-1"):
        head(store, dataset[1], -1)


def test_iter_parts_yields_each_part_in_order(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    table, manifest = dataset
    parts = list(iter_parts(store, manifest))
    assert [p.num_rows for p in parts] == [30, 30, 30, 10]
    assert pa.concat_tables(parts).equals(table)


def test_a_changed_part_is_detected(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    table, manifest = dataset
    blob = Path(store.path_of(manifest.parts[1].id))
    # Swap in a valid Parquet file with other rows: only the hash can tell.
    pq.write_table(table.slice(30, 30).set_column(0, "id", pa.array(range(30))), blob)
    with pytest.raises(CorruptArtifactError, match=str(blob)):
        read_table(store, manifest)
    with pytest.raises(CorruptArtifactError):
        part_paths(store, manifest)
    con = duckdb.connect()
    with pytest.raises(CorruptArtifactError):
        duckdb_relation(con, store, manifest, "sales")
    assert head(store, manifest, 30).equals(table.slice(0, 30))
    unverified = read_table(store, manifest, verify=False)
    assert unverified["id"].to_pylist()[30:60] == list(range(30))


def test_verify_false_reads_the_same_rows(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    table, manifest = dataset
    assert read_table(store, manifest, verify=False).equals(table)
    assert read_table(store, manifest, ["amount"], verify=False).equals(table.select(["amount"]))


def test_a_part_with_the_wrong_row_count_is_refused(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    _, manifest = dataset
    wrong = manifest.model_copy(
        update={"parts": (manifest.parts[0].model_copy(update={"rows": 31}),), "row_count": 31}
    )
    with pytest.raises(ArtifactError, match="holds 30 rows but the manifest says 31"):
        read_table(store, wrong)


def test_part_paths_are_the_local_part_files(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    table, manifest = dataset
    paths = part_paths(store, manifest)
    assert len(paths) == 4
    assert pa.concat_tables([pq.read_table(p) for p in paths]).equals(table)


def test_part_paths_need_a_local_store(dataset: tuple[pa.Table, DatasetManifest]) -> None:
    table, _ = dataset
    remote = ArtifactStore.from_url("memory://gyre-reader-test")
    manifest = write_table(remote, table, part_rows=30)
    with pytest.raises(ArtifactError, match="not in local files") as info:
        part_paths(remote, manifest)
    assert info.value.hint and "read_table" in info.value.hint


# --- DuckDB ---------------------------------------------------------------------------------

QUERIES = {
    "count": "SELECT count(*) AS n, count(amount) AS amounts FROM sales",
    "by_shop": (
        "SELECT shop, count(*) AS n, sum(units) AS units, avg(amount) AS mean "
        "FROM sales GROUP BY shop ORDER BY shop NULLS LAST"
    ),
    "filter": "SELECT id FROM sales WHERE amount > 20 AND day >= DATE '2024-01-15' ORDER BY id",
}


def expected(table: pa.Table, query: str) -> dict[str, list[Any]]:
    """The same answers computed with pyarrow.compute."""
    if query == "count":
        return {"n": [table.num_rows], "amounts": [pc.count(table["amount"]).as_py()]}
    if query == "by_shop":
        grouped = table.group_by("shop", use_threads=False).aggregate(
            [([], "count_all"), ("units", "sum"), ("amount", "mean")]
        )
        order = pc.sort_indices(grouped, sort_keys=[("shop", "ascending", "at_end")])
        grouped = grouped.take(order)
        return {
            "shop": grouped["shop"].to_pylist(),
            "n": grouped["count_all"].to_pylist(),
            "units": grouped["units_sum"].to_pylist(),
            "mean": grouped["amount_mean"].to_pylist(),
        }
    mask = pc.and_(
        pc.greater(table["amount"], 20),
        pc.greater_equal(table["day"], pa.scalar(dt.date(2024, 1, 15))),
    )
    return {"id": table.filter(mask)["id"].to_pylist()}


def answers(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, list[Any]]:
    return {k: list(v) for k, v in con.sql(sql).to_arrow_table().to_pydict().items()}


def assert_same_answers(got: dict[str, list[Any]], want: dict[str, list[Any]]) -> None:
    assert got.keys() == want.keys()
    for key, values in want.items():
        assert len(got[key]) == len(values), key
        for mine, theirs in zip(got[key], values, strict=True):
            if isinstance(theirs, float):
                assert mine == pytest.approx(theirs, rel=1e-12), key
            else:
                assert mine == theirs, key


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_duckdb_answers_equal_pyarrow(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest], query: str
) -> None:
    table, manifest = dataset
    con = duckdb.connect()
    relation = duckdb_relation(con, store, manifest, "sales")
    assert relation.columns == table.column_names
    assert_same_answers(answers(con, QUERIES[query]), expected(table, query))


def test_duckdb_view_reads_the_part_files(
    store: ArtifactStore, dataset: tuple[pa.Table, DatasetManifest]
) -> None:
    table, manifest = dataset
    con = duckdb.connect()
    duckdb_relation(con, store, manifest, "sales")
    ((definition,),) = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = 'sales'"
    ).fetchall()
    assert "read_parquet" in str(definition)
    for path in part_paths(store, manifest):
        assert path in str(definition)
    got = con.sql("SELECT * FROM sales ORDER BY id").to_arrow_table()
    assert got.select(["id", "units"]).equals(table.select(["id", "units"]))


def test_duckdb_view_is_replaced_and_names_are_quoted(store: ArtifactStore) -> None:
    con = duckdb.connect()
    name = 'my "odd" view'
    duckdb_relation(con, store, write_table(store, pa.table({"x": [1, 2]})), name)
    relation = duckdb_relation(con, store, write_table(store, pa.table({"x": [5, 6, 7]})), name)
    assert relation.aggregate("sum(x)").fetchall() == [(18,)]
    assert con.sql('SELECT count(*) FROM "my ""odd"" view"').fetchall() == [(3,)]


def test_duckdb_over_a_path_with_a_quote(tmp_path: Path) -> None:
    store = ArtifactStore.from_url(str(tmp_path / "it's here"))
    manifest = write_table(store, pa.table({"x": [1, 2, 3]}), part_rows=2)
    con = duckdb.connect()
    assert duckdb_relation(con, store, manifest, "t").aggregate("sum(x)").fetchall() == [(6,)]


def test_duckdb_over_an_empty_dataset(store: ArtifactStore) -> None:
    manifest = write_table(store, pa.table({"x": pa.array([], pa.int64())}))
    con = duckdb.connect()
    relation = duckdb_relation(con, store, manifest, "empty")
    assert relation.columns == ["x"]
    assert con.sql("SELECT count(*) FROM empty").fetchall() == [(0,)]


def test_duckdb_over_a_remote_store_registers_arrow(
    dataset: tuple[pa.Table, DatasetManifest],
) -> None:
    table, _ = dataset
    remote = ArtifactStore.from_url("memory://gyre-reader-duckdb")
    manifest = write_table(remote, table, part_rows=30)
    con = duckdb.connect()
    duckdb_relation(con, remote, manifest, "sales")
    assert_same_answers(answers(con, QUERIES["by_shop"]), expected(table, "by_shop"))


# --- S3 (moto's real S3 API on loopback) ----------------------------------------------------


@pytest.fixture(scope="module")
def s3_store() -> Iterator[ArtifactStore]:
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    server_module = pytest.importorskip("moto.server")
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    credentials = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    s3 = boto3.client("s3", endpoint_url=url, region_name="us-east-1", **credentials)
    s3.create_bucket(Bucket="gyre-datasets")
    try:
        yield ArtifactStore.from_url(
            "s3://gyre-datasets/objects",
            key="testing",
            secret="testing",
            endpoint_url=url,
            client_kwargs={"region_name": "us-east-1"},
            skip_instance_cache=True,
        )
    finally:
        server.stop()


def test_dataset_on_s3(s3_store: ArtifactStore) -> None:
    table = sales(80)
    manifest = write_table(s3_store, table, part_rows=25)
    assert all(s3_store.exists(p.id) for p in manifest.parts)
    assert read_table(s3_store, manifest).equals(table)
    assert read_table(s3_store, manifest, verify=False).equals(table)
    assert head(s3_store, manifest, 30).equals(table.slice(0, 30))
    con = duckdb.connect()
    duckdb_relation(con, s3_store, manifest, "sales")
    assert_same_answers(answers(con, QUERIES["count"]), expected(table, "count"))

"""Writing dataset versions: type round trips, parts, determinism, append and schema errors."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gyre.core.artifacts import ArtifactStore
from gyre.core.errors import DataError
from gyre.datasets import (
    append,
    load_manifest,
    read_table,
    save_manifest,
    write_batches,
    write_table,
)


@pytest.fixture
def store(tmp_path: Path) -> ArtifactStore:
    return ArtifactStore.from_url(str(tmp_path / "objects"))


def typed_table(n: int = 25) -> pa.Table:
    """A table with one column per common type, every one of them with nulls."""
    start = dt.datetime(2024, 3, 1, 12, 0, 0)
    return pa.table(
        {
            "i64": pa.array([i if i % 5 else None for i in range(n)], pa.int64()),
            "i8": pa.array([(i % 100) - 50 if i % 7 else None for i in range(n)], pa.int8()),
            "u32": pa.array([i * 1000 for i in range(n)], pa.uint32()),
            "f64": pa.array([i / 3 if i % 4 else None for i in range(n)], pa.float64()),
            "f32": pa.array([float(i) if i % 6 else None for i in range(n)], pa.float32()),
            "flag": pa.array([bool(i % 2) if i % 3 else None for i in range(n)]),
            "text": pa.array([f"row {i} é" if i % 3 else None for i in range(n)]),
            "big_text": pa.array(
                [("x" * i) if i % 2 else None for i in range(n)], pa.large_string()
            ),
            "ts_ns_utc": pa.array(
                [i * 1_000_000_007 if i % 4 else None for i in range(n)],
                pa.timestamp("ns", tz="UTC"),
            ),
            "ts_us": pa.array(
                [start + dt.timedelta(minutes=i) if i % 5 else None for i in range(n)],
                pa.timestamp("us"),
            ),
            "day": pa.array(
                [dt.date(2020, 2, 28) + dt.timedelta(days=i) if i % 3 else None for i in range(n)]
            ),
            "price": pa.array(
                [Decimal(i) / 8 if i % 2 else None for i in range(n)], pa.decimal128(10, 3)
            ),
            "kind": pa.array([["a", "b", None][i % 3] for i in range(n)]).dictionary_encode(),
            "tags": pa.array([[str(i)] * (i % 3) if i % 4 else None for i in range(n)]),
            "raw": pa.array([bytes([i]) * i for i in range(n)], pa.binary()),
            "nothing": pa.nulls(n),
        }
    )


def test_round_trip_of_common_types(store: ArtifactStore) -> None:
    table = typed_table()
    manifest = write_table(store, table)
    back = read_table(store, manifest)
    assert back.schema.equals(table.schema, check_metadata=True)
    assert manifest.schema.equals(table.schema, check_metadata=True)
    assert back.equals(table)
    assert manifest.row_count == table.num_rows
    assert [p.rows for p in manifest.parts] == [table.num_rows]


def test_nan_and_infinities_round_trip(store: ArtifactStore) -> None:
    # Kept out of typed_table because Table.equals treats NaN as unequal to itself.
    values = [float("nan"), None, float("inf"), -0.0, float("-inf"), 1e-308, 1.5]
    back = read_table(store, write_table(store, pa.table({"x": values}), part_rows=3))["x"]
    assert pc.is_nan(back).to_pylist() == [True, None, False, False, False, False, False]
    assert back.to_pylist()[1:] == values[1:]
    assert str(back[3]) == "-0.0"


def test_round_trip_through_a_saved_manifest(store: ArtifactStore) -> None:
    table = typed_table(40)
    cid = save_manifest(store, write_table(store, table, part_rows=9))
    assert read_table(store, load_manifest(store, cid)).equals(table)


def test_multi_part_write(store: ArtifactStore) -> None:
    table = typed_table(50)
    manifest = write_table(store, table, part_rows=7)
    assert [p.rows for p in manifest.parts] == [7] * 7 + [1]
    for part, offset in zip(manifest.parts, range(0, 50, 7), strict=True):
        blob = Path(store.path_of(part.id))
        assert blob.stat().st_size == part.size
        # Parquet names list items "element"; the reader restores the manifest's "item".
        assert pq.read_table(blob).cast(table.schema).equals(table.slice(offset, 7))
    assert read_table(store, manifest).equals(table)


def test_parts_are_zstd_parquet_with_the_arrow_schema(store: ArtifactStore) -> None:
    manifest = write_table(store, typed_table(10))
    meta = pq.ParquetFile(store.path_of(manifest.parts[0].id)).metadata
    assert meta.format_version == "2.6"
    columns = meta.row_group(0)
    assert {columns.column(i).compression for i in range(columns.num_columns)} == {"ZSTD"}
    assert b"ARROW:schema" in meta.metadata


def test_empty_table(store: ArtifactStore) -> None:
    table = typed_table(0)
    manifest = write_table(store, table)
    assert manifest.parts == ()
    assert manifest.row_count == 0
    back = read_table(store, manifest)
    assert back.num_rows == 0
    assert back.schema.equals(table.schema)


def test_same_data_gives_the_same_id(store: ArtifactStore, tmp_path: Path) -> None:
    table = typed_table(100)
    first = write_table(store, table, part_rows=30)
    again = write_table(store, table, part_rows=30)
    other_store = ArtifactStore.from_url(str(tmp_path / "elsewhere"))
    elsewhere = write_table(other_store, table, part_rows=30)
    # The same rows arriving in other chunks or batches are the same dataset version.
    rechunked = pa.concat_tables([table.slice(0, 13), table.slice(13, 50), table.slice(63)])
    from_chunks = write_table(store, rechunked, part_rows=30)
    from_batches = write_batches(
        store, table.schema, table.to_batches(max_chunksize=11), part_rows=30
    )
    ids = {m.content_id() for m in (first, again, elsewhere, from_chunks, from_batches)}
    assert ids == {first.content_id()}
    assert first.parts == from_batches.parts
    assert write_table(store, table, part_rows=31).content_id() != first.content_id()
    assert write_table(store, table.slice(1), part_rows=30).content_id() != first.content_id()


def test_row_groups_fall_on_fixed_row_counts(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gyre.datasets import writer

    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 1000)
    group = writer.ROW_GROUP_ROWS
    n = 2 * group + 234
    table = pa.table(
        {"x": pa.array(range(n), pa.int64()), "m": pa.array([i % 3 for i in range(n)])}
    )
    manifest = write_table(store, table)
    (part,) = manifest.parts
    meta = pq.ParquetFile(store.path_of(part.id)).metadata
    sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
    assert sizes == [group, group, 234]
    batches = table.to_batches(max_chunksize=50_000)
    assert write_batches(store, table.schema, batches) == manifest


def test_a_long_last_part_is_stored_as_two_halves_whatever_the_batching(
    store: ArtifactStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The rows after the last whole part are split in two from SPLIT_LAST_PART_ROWS on (written
    # at once), by the row count alone: the same parts from one table or from any batches.
    from gyre.datasets import writer

    monkeypatch.setattr(writer, "SPLIT_LAST_PART_ROWS", 8)
    n = 57
    table = pa.table({"x": pa.array(range(n), pa.int64()), "s": [f"v{i % 5}" for i in range(n)]})
    manifest = write_table(store, table, part_rows=20)
    assert [p.rows for p in manifest.parts] == [20, 20, 8, 9]
    assert read_table(store, manifest).equals(table)
    for size in (1, 3, 20, 57):
        batches = write_batches(
            store, table.schema, table.to_batches(max_chunksize=size), part_rows=20
        )
        assert batches.parts == manifest.parts
    # Fewer rows than the threshold after the last whole part: one last part, as before.
    assert [p.rows for p in write_table(store, table.slice(0, 47), part_rows=20).parts] == [
        20,
        20,
        7,
    ]
    # A part written in several row groups already is closed as it is, not split.
    monkeypatch.setattr(writer, "ROW_GROUP_ROWS", 10)
    grouped = write_table(store, table, part_rows=40)
    assert [p.rows for p in grouped.parts] == [40, 17]
    assert read_table(store, grouped).equals(table)


def test_same_data_gives_the_same_id_in_another_process(
    store: ArtifactStore, tmp_path: Path
) -> None:
    """No clock, random seed or process state may leak into the bytes."""
    table = pa.table({"x": list(range(1000)), "s": [str(i % 7) for i in range(1000)]})
    here = write_table(store, table, part_rows=300).content_id()
    script = textwrap.dedent(
        f"""
        import pyarrow as pa
        from gyre.core.artifacts import ArtifactStore
        from gyre.datasets import write_table
        store = ArtifactStore.from_url({str(tmp_path / "child")!r})
        table = pa.table({{"x": list(range(1000)), "s": [str(i % 7) for i in range(1000)]}})
        print(write_table(store, table, part_rows=300).content_id())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env
    )
    assert out.stdout.strip() == here


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), max_size=60),
    part_rows=st.integers(1, 25),
    batch_rows=st.integers(1, 30),
)
def test_parts_depend_on_rows_not_batching(
    store: ArtifactStore, values: list[int | None], part_rows: int, batch_rows: int
) -> None:
    table = pa.table({"v": pa.array(values, pa.int64())})
    manifest = write_table(store, table, part_rows=part_rows)
    batches = table.to_batches(max_chunksize=batch_rows)
    assert write_batches(store, table.schema, batches, part_rows=part_rows) == manifest
    sizes = [p.rows for p in manifest.parts]
    assert sum(sizes) == len(values)
    assert all(size == part_rows for size in sizes[:-1])
    assert read_table(store, manifest).equals(table)


def test_write_batches_from_a_generator(store: ArtifactStore) -> None:
    schema = pa.schema([("n", pa.int32()), ("sq", pa.int64())])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, 1000, 128):
            n = pa.array(range(start, min(start + 128, 1000)), pa.int32())
            yield pa.record_batch([n, pc.multiply(n.cast(pa.int64()), n)], schema=schema)

    manifest = write_batches(store, schema, batches(), part_rows=300)
    assert [p.rows for p in manifest.parts] == [300, 300, 300, 100]
    back = read_table(store, manifest)
    assert back["sq"].to_pylist() == [i * i for i in range(1000)]


def test_write_batches_refuses_a_batch_with_another_schema(store: ArtifactStore) -> None:
    schema = pa.schema([("a", pa.int64()), ("b", pa.string())])
    good = pa.record_batch([pa.array([1]), pa.array(["x"])], schema=schema)
    bad = pa.record_batch([pa.array([1.5]), pa.array(["x"])], names=["a", "b"])
    with pytest.raises(DataError, match="record batch 1") as info:
        write_batches(store, schema, [good, bad])
    assert "column 'a' is int64 in the dataset but double in the batch" in str(info.value)
    assert info.value.hint


def test_schema_metadata_differences_are_tolerated(store: ArtifactStore) -> None:
    schema = pa.schema([("a", pa.int64())], metadata={"owner": "data team"})
    batch = pa.record_batch([pa.array([1, 2])], names=["a"])
    manifest = write_batches(store, schema, [batch])
    assert read_table(store, manifest).schema.metadata == {b"owner": b"data team"}


def test_nulls_in_a_non_nullable_column_are_a_data_error(store: ArtifactStore) -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    table = pa.Table.from_arrays([pa.array([1, None, 3])], schema=schema)
    with pytest.raises(DataError, match="cannot be written as Parquet"):
        write_table(store, table)


def test_part_rows_must_be_positive(store: ArtifactStore) -> None:
    with pytest.raises(DataError, match="part_rows must be at least 1"):
        write_table(store, pa.table({"a": [1]}), part_rows=0)


# --- append ---------------------------------------------------------------------------------


def test_append_reuses_the_base_parts(store: ArtifactStore) -> None:
    first = typed_table(30)
    more = typed_table(12)
    base = write_table(store, first, part_rows=10)
    grown = append(store, base, more, part_rows=10)
    assert grown.parts[: len(base.parts)] == base.parts
    assert [p.rows for p in grown.parts] == [10, 10, 10, 10, 2]
    assert grown.row_count == 42
    assert grown.parent == base.content_id()
    assert load_manifest(store, grown.parent) == base, "the parent is saved with the child"
    assert read_table(store, grown).equals(pa.concat_tables([first, more]))
    assert read_table(store, base).equals(first), "the base version is unchanged"


def test_append_twice_builds_a_chain(store: ArtifactStore) -> None:
    v1 = write_table(store, pa.table({"a": [1, 2]}))
    v2 = append(store, v1, pa.table({"a": [3]}))
    v3 = append(store, v2, pa.table({"a": [4, 5]}))
    assert v3.parent == v2.content_id() and v2.parent == v1.content_id()
    assert read_table(store, v3)["a"].to_pylist() == [1, 2, 3, 4, 5]


def test_append_to_nothing_is_a_write(store: ArtifactStore) -> None:
    table = typed_table(5)
    assert append(store, None, table) == write_table(store, table)


def test_append_accepts_columns_in_another_order(store: ArtifactStore) -> None:
    base = write_table(store, pa.table({"a": [1, 2], "b": ["x", "y"]}))
    grown = append(store, base, pa.table({"b": ["z"], "a": [3]}))
    back = read_table(store, grown)
    assert back.column_names == ["a", "b"]
    assert back.to_pydict() == {"a": [1, 2, 3], "b": ["x", "y", "z"]}


def test_append_keeps_the_dataset_schema(store: ArtifactStore) -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)], metadata={"k": "v"})
    base = write_table(store, pa.Table.from_arrays([pa.array([1])], schema=schema))
    grown = append(store, base, pa.table({"id": [2, 3]}))  # nullable, no metadata, no nulls
    assert grown.schema.equals(schema, check_metadata=True)
    assert read_table(store, grown).schema.equals(schema, check_metadata=True)


def test_append_with_another_schema_names_every_difference(store: ArtifactStore) -> None:
    base = write_table(
        store,
        pa.table({"id": [1], "temp": [20.5], "city": ["Bern"], "when": [dt.date(2024, 1, 1)]}),
    )
    wrong = pa.table(
        {"id": ["1"], "temp": [21.0], "town": ["Basel"], "when": [dt.date(2024, 1, 2)]}
    )
    with pytest.raises(DataError) as info:
        append(store, base, wrong)
    message = str(info.value)
    assert "column 'id' is int64 in the dataset but string in the appended rows" in message
    assert "column 'city' (string) is missing from the appended rows" in message
    assert "column 'town' (string) is not in the dataset" in message
    assert "temp" not in message and "'when'" not in message
    assert info.value.hint and "cast" in info.value.hint


def test_append_refuses_nulls_in_a_non_nullable_column(store: ArtifactStore) -> None:
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False)])
    base = write_table(store, pa.Table.from_arrays([pa.array([1])], schema=schema))
    with pytest.raises(DataError, match="'id' is not nullable in the dataset but has 1 nulls"):
        append(store, base, pa.table({"id": [2, None]}))


# --- real data ------------------------------------------------------------------------------


def test_bike_sharing_round_trip(store: ArtifactStore, shared_data: Path) -> None:
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(shared_data / "drift" / "bike-sharing" / "hour.csv")
    assert table.num_rows > 17_000
    manifest = write_table(store, table, part_rows=5_000)
    assert [p.rows for p in manifest.parts][:3] == [5_000] * 3
    cid = save_manifest(store, manifest)
    back = read_table(store, load_manifest(store, cid))
    assert back.equals(table)
    assert write_table(store, table, part_rows=5_000).content_id() == cid

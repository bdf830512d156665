"""Deduplication: exact copies, repeated keys within and across batches, and the accounting."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gyre.core.errors import DataError
from gyre.ingest.dedup import (
    DUPLICATE_KEY,
    EXACT_DUPLICATE,
    KEY_INGESTED,
    REASON_COLUMN,
    REASONS,
    REPLACED,
    DedupResult,
    DedupSpec,
    deduplicate,
    drop_keys,
)

Row = dict[str, Any]


def table(rows: list[Row]) -> pa.Table:
    return pa.Table.from_pylist(
        rows, schema=pa.schema([("k", pa.int64()), ("c", pa.int64()), ("v", pa.string())])
    )


def reasons(result: DedupResult) -> list[str]:
    return list(result.dropped.column(REASON_COLUMN).to_pylist())


def check_accounting(batch: pa.Table, result: DedupResult) -> None:
    assert batch.num_rows == result.table.num_rows + result.dropped.num_rows
    assert sum(result.counts.values()) == result.dropped.num_rows
    assert set(result.counts) == set(REASONS)
    assert result.table.schema == batch.schema
    assert result.dropped.schema.names == [*batch.schema.names, REASON_COLUMN]
    for reason in REASONS:
        assert result.counts[reason] == reasons(result).count(reason)


# ---------------------------------------------------------------------------- the spec


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"cursor": "c"}, "`cursor` needs a `primary_key`"),
        ({"primary_key": ("k",), "cursor": "c"}, "`cursor` applies only with `keep: last`"),
        ({"primary_key": ("k",), "keep": "last", "cursor": "k"}, "cannot be part of the primary"),
        ({"primary_key": ("k", "k")}, "listed twice"),
        ({"primary_key": ()}, "at least 1 item"),
        ({"keep": "latest"}, "'first' or 'last'"),
        ({"primary_keys": ("k",)}, "Extra inputs are not permitted"),
    ],
)
def test_spec_refuses_inconsistent_settings(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DedupSpec.model_validate(fields)


def test_spec_is_frozen_and_defaults() -> None:
    spec = DedupSpec()
    assert (spec.primary_key, spec.keep, spec.cursor, spec.exact_duplicates) == (
        None,
        "first",
        None,
        True,
    )
    with pytest.raises(ValidationError):
        spec.keep = "last"  # type: ignore[misc]
    assert DedupSpec(primary_key=["a", "b"]).primary_key == ("a", "b")


# ---------------------------------------------------------------------------- one reason each


def test_exact_duplicates_are_removed_and_counted() -> None:
    batch = table(
        [
            {"k": 1, "c": 1, "v": "a"},
            {"k": 1, "c": 1, "v": "a"},
            {"k": 1, "c": 1, "v": "b"},
            {"k": None, "c": None, "v": None},
            {"k": None, "c": None, "v": None},
        ]
    )
    result = deduplicate(batch, DedupSpec())
    assert result.table.to_pylist() == [
        {"k": 1, "c": 1, "v": "a"},
        {"k": 1, "c": 1, "v": "b"},
        {"k": None, "c": None, "v": None},
    ]
    assert reasons(result) == [EXACT_DUPLICATE, EXACT_DUPLICATE]
    assert result.counts[EXACT_DUPLICATE] == 2
    assert result.replaced_keys is None
    check_accounting(batch, result)


def test_exact_duplicates_can_be_kept() -> None:
    batch = table([{"k": 1, "c": 1, "v": "a"}] * 3)
    result = deduplicate(batch, DedupSpec(exact_duplicates=False))
    assert result.table.equals(batch)
    assert result.dropped.num_rows == 0


def test_exact_duplicates_keep_the_occurrence_keep_names() -> None:
    batch = pa.table({"v": [1, 2, 1], "pos": [0, 1, 0]})  # rows 0 and 2 are equal
    assert deduplicate(batch, DedupSpec()).table["v"].to_pylist() == [1, 2]
    assert deduplicate(batch, DedupSpec(keep="last")).table["v"].to_pylist() == [2, 1]


def test_float_duplicates_compare_by_value() -> None:
    batch = pa.table({"x": [0.0, -0.0, math.nan, math.nan, 1.5]})
    result = deduplicate(batch, DedupSpec())
    assert result.counts[EXACT_DUPLICATE] == 2
    assert result.table.num_rows == 3


def test_duplicate_key_within_batch_keeps_the_first() -> None:
    batch = table(
        [
            {"k": 1, "c": 5, "v": "first"},
            {"k": 2, "c": 1, "v": "other"},
            {"k": 1, "c": 9, "v": "second"},
            {"k": 1, "c": 7, "v": "third"},
        ]
    )
    result = deduplicate(batch, DedupSpec(primary_key=("k",)))
    assert result.table["v"].to_pylist() == ["first", "other"]
    assert result.dropped["v"].to_pylist() == ["second", "third"]
    assert reasons(result) == [DUPLICATE_KEY, DUPLICATE_KEY]
    check_accounting(batch, result)


def test_keep_last_without_cursor_keeps_the_last_row() -> None:
    batch = table(
        [
            {"k": 1, "c": 9, "v": "a"},
            {"k": 2, "c": 1, "v": "b"},
            {"k": 1, "c": 1, "v": "c"},
        ]
    )
    result = deduplicate(batch, DedupSpec(primary_key=("k",), keep="last"))
    assert result.table["v"].to_pylist() == ["b", "c"]
    assert reasons(result) == [REPLACED]


def test_keep_last_by_cursor_keeps_the_greatest_cursor_ties_to_the_later_row() -> None:
    batch = table(
        [
            {"k": 1, "c": 3, "v": "k1 old"},
            {"k": 1, "c": 9, "v": "k1 newest"},
            {"k": 1, "c": 5, "v": "k1 middle"},
            {"k": 2, "c": 4, "v": "k2 tie earlier"},
            {"k": 2, "c": 4, "v": "k2 tie later"},
            {"k": 3, "c": None, "v": "k3 null cursor"},
            {"k": 3, "c": 0, "v": "k3 zero"},
            {"k": 3, "c": None, "v": "k3 null again"},
            {"k": 4, "c": None, "v": "k4 null a"},
            {"k": 4, "c": None, "v": "k4 null b"},
        ]
    )
    result = deduplicate(batch, DedupSpec(primary_key=("k",), keep="last", cursor="c"))
    assert result.table["v"].to_pylist() == ["k1 newest", "k2 tie later", "k3 zero", "k4 null b"]
    assert set(reasons(result)) == {REPLACED}
    assert result.counts[REPLACED] == 6
    check_accounting(batch, result)


def test_string_and_timestamp_cursors() -> None:
    batch = pa.table(
        {
            "id": ["a", "a", "b"],
            "at": pa.array([2, 1, 5], pa.timestamp("s")),
            "s": ["2024-01-02", "2024-01-03", "x"],
        }
    )
    by_time = deduplicate(batch, DedupSpec(primary_key=("id",), keep="last", cursor="at"))
    assert by_time.table["s"].to_pylist() == ["2024-01-02", "x"]
    by_text = deduplicate(batch, DedupSpec(primary_key=("id",), keep="last", cursor="s"))
    assert by_text.table["s"].to_pylist() == ["2024-01-03", "x"]


def test_composite_keys() -> None:
    batch = pa.table({"a": [1, 1, 1, 2], "b": ["x", "y", "x", "x"], "v": [1, 2, 3, 4]})
    result = deduplicate(batch, DedupSpec(primary_key=("a", "b")))
    assert result.table["v"].to_pylist() == [1, 2, 4]


def test_null_keys_are_never_duplicates() -> None:
    batch = pa.table(
        {"a": [1, 1, None, None, 1], "b": [None, None, "x", "x", "x"], "v": [1, 2, 3, 4, 5]}
    )
    result = deduplicate(
        batch, DedupSpec(primary_key=("a", "b")), existing_keys=pa.table({"a": [1], "b": [None]})
    )
    assert result.table["v"].to_pylist() == [1, 2, 3, 4, 5]
    # ...but fully identical rows are still exact duplicates.
    copies = pa.table({"a": [None, None], "b": ["x", "x"]})
    assert deduplicate(copies, DedupSpec(primary_key=("a", "b"))).counts[EXACT_DUPLICATE] == 1


def test_dictionary_columns_compare_by_value() -> None:
    batch = pa.table(
        {
            "k": pa.array(["x", "y", "x"]).dictionary_encode(),
            "v": pa.array(["p", "p", "p"]).dictionary_encode(),
        }
    )
    result = deduplicate(batch, DedupSpec(primary_key=("k",)), existing_keys=pa.table({"k": ["y"]}))
    assert result.table["k"].to_pylist() == ["x"]
    assert reasons(result) == [KEY_INGESTED, EXACT_DUPLICATE]


def test_nested_columns_are_compared_whole() -> None:
    batch = pa.table(
        {
            "id": [1, 2, 3, 4],
            "tags": [["a", "b"], ["a"], ["a", "b"], None],
            "meta": [{"x": 1}, {"x": 1}, {"x": 1}, None],
        }
    )
    result = deduplicate(batch.drop_columns(["id"]), DedupSpec())
    assert result.counts[EXACT_DUPLICATE] == 1
    assert result.table["tags"].to_pylist() == [["a", "b"], ["a"], None]
    assert deduplicate(batch, DedupSpec()).dropped.num_rows == 0


# ---------------------------------------------------------------------------- across batches


def test_existing_keys_with_keep_first_drop_the_new_row() -> None:
    batch = table(
        [
            {"k": 1, "c": 1, "v": "seen"},
            {"k": 2, "c": 1, "v": "new"},
            {"k": 2, "c": 2, "v": "new again"},
            {"k": 3, "c": 1, "v": "seen too"},
        ]
    )
    existing = pa.table({"k": pa.array([3, 1, 1, None], pa.int32())})  # other type, repeats
    result = deduplicate(batch, DedupSpec(primary_key=("k",)), existing_keys=existing)
    assert result.table["v"].to_pylist() == ["new"]
    assert reasons(result) == [KEY_INGESTED, DUPLICATE_KEY, KEY_INGESTED]
    assert result.counts == {
        EXACT_DUPLICATE: 0,
        DUPLICATE_KEY: 1,
        KEY_INGESTED: 2,
        REPLACED: 0,
    }
    assert result.replaced_keys is None
    check_accounting(batch, result)


def test_existing_keys_with_keep_last_replace_the_stored_row() -> None:
    dataset = table([{"k": 1, "c": 1, "v": "old 1"}, {"k": 2, "c": 1, "v": "old 2"}])
    batch = table(
        [
            {"k": 2, "c": 2, "v": "new 2 (stale within batch)"},
            {"k": 3, "c": 2, "v": "new 3"},
            {"k": 2, "c": 3, "v": "new 2"},
        ]
    )
    spec = DedupSpec(primary_key=("k",), keep="last")
    result = deduplicate(batch, spec, existing_keys=dataset.select(["k"]))
    assert result.table["v"].to_pylist() == ["new 3", "new 2"]
    assert reasons(result) == [REPLACED]
    assert result.replaced_keys is not None
    assert result.replaced_keys.to_pylist() == [{"k": 2}]
    merged = pa.concat_tables([drop_keys(dataset, result.replaced_keys), result.table])
    assert merged["v"].to_pylist() == ["old 1", "new 3", "new 2"]


def test_stored_cursor_keeps_late_stale_rows_out() -> None:
    dataset = table([{"k": 1, "c": 10, "v": "stored"}, {"k": 2, "c": 10, "v": "stored 2"}])
    batch = table(
        [
            {"k": 1, "c": 5, "v": "stale update"},
            {"k": 2, "c": 10, "v": "same cursor: newer"},
            {"k": 3, "c": None, "v": "new key"},
        ]
    )
    spec = DedupSpec(primary_key=("k",), keep="last", cursor="c")
    result = deduplicate(batch, spec, existing_keys=dataset.select(["k", "c"]))
    assert result.table["v"].to_pylist() == ["same cursor: newer", "new key"]
    assert reasons(result) == [KEY_INGESTED]
    assert result.replaced_keys is not None
    assert result.replaced_keys["k"].to_pylist() == [2]
    # Without the stored cursor every new row wins.
    blind = deduplicate(batch, spec, existing_keys=dataset.select(["k"]))
    assert blind.dropped.num_rows == 0
    assert blind.replaced_keys is not None
    assert blind.replaced_keys["k"].to_pylist() == [1, 2]


@pytest.mark.parametrize(
    ("stored", "new"),
    [
        (["b", "b"], ["a", "c"]),
        (pa.array([5, 5], pa.timestamp("ms")), pa.array([1, 9], pa.timestamp("ms"))),
        ([True, True], [False, True]),
        (pa.array(["2024-01-01"] * 2, pa.large_string()), ["2023-12-31", "2024-01-02"]),
        (pa.array([5, 5], pa.int8()), [4.5, 5.0]),
    ],
)
def test_stored_cursors_of_every_orderable_type(stored: Any, new: Any) -> None:
    spec = DedupSpec(primary_key=("k",), keep="last", cursor="c")
    batch = pa.table({"k": [1, 2], "c": new})
    result = deduplicate(batch, spec, existing_keys=pa.table({"k": [1, 2], "c": stored}))
    assert result.table["k"].to_pylist() == [2]
    assert reasons(result) == [KEY_INGESTED]


def test_null_cursors_against_stored_ones() -> None:
    dataset = pa.table({"k": [1, 2, 3], "c": [5, None, None]})
    batch = pa.table({"k": [1, 2, 3], "c": [None, 1, None]})
    spec = DedupSpec(primary_key=("k",), keep="last", cursor="c")
    result = deduplicate(batch, spec, existing_keys=dataset)
    assert result.table["k"].to_pylist() == [2, 3]  # a null cursor loses to a stored value
    assert reasons(result) == [KEY_INGESTED]


def test_empty_inputs() -> None:
    empty = table([])
    spec = DedupSpec(primary_key=("k",), keep="last")
    result = deduplicate(empty, spec, existing_keys=pa.table({"k": [1]}))
    assert result.table.num_rows == result.dropped.num_rows == 0
    assert result.replaced_keys is not None
    assert result.replaced_keys.num_rows == 0
    one = table([{"k": 1, "c": 1, "v": "a"}])
    result = deduplicate(one, spec, existing_keys=pa.table({"k": pa.array([], pa.int64())}))
    assert result.table.equals(one)
    assert deduplicate(pa.table({}), DedupSpec()).table.num_rows == 0


def test_drop_keys_preserves_order_and_ignores_null_keys() -> None:
    data = pa.table({"a": [1, 2, None, 3, 2], "b": ["x", "y", "z", None, "y"], "v": range(5)})
    keys = pa.table({"a": pa.array([2, None, 3], pa.int8()), "b": ["y", "z", None]})
    assert drop_keys(data, keys)["v"].to_pylist() == [0, 2, 3]
    assert drop_keys(data, keys.slice(0, 0)).equals(data)
    with pytest.raises(DataError, match="key column"):
        drop_keys(data, pa.table({"c": [1]}))


# ---------------------------------------------------------------------------- bad input


def test_missing_columns_are_named() -> None:
    with pytest.raises(DataError, match="column\\(s\\) id not found") as err:
        deduplicate(table([]), DedupSpec(primary_key=("id",)))
    assert err.value.hint == "the batch has: k, c, v"
    with pytest.raises(DataError, match="ts not found"):
        deduplicate(table([]), DedupSpec(primary_key=("k",), keep="last", cursor="ts"))
    with pytest.raises(DataError, match="existing_keys lacks key column"):
        deduplicate(table([]), DedupSpec(primary_key=("k",)), existing_keys=pa.table({"x": [1]}))


def test_unusable_columns_are_refused() -> None:
    batch = pa.table({"k": [[1], [2]], "c": [[1], [1]], REASON_COLUMN: ["a", "b"]})
    with pytest.raises(DataError, match=f"already has a column named '{REASON_COLUMN}'"):
        deduplicate(batch, DedupSpec())
    batch = batch.drop_columns([REASON_COLUMN]).append_column("n", pa.array([1, 2]))
    with pytest.raises(DataError, match="primary key column 'k'"):
        deduplicate(batch, DedupSpec(primary_key=("k",)))
    with pytest.raises(DataError, match=r"cursor column 'c'.*has no order"):
        deduplicate(batch, DedupSpec(primary_key=("n",), keep="last", cursor="c"))
    with pytest.raises(DataError, match="cannot be compared"):
        deduplicate(
            pa.table({"k": [1]}),
            DedupSpec(primary_key=("k",)),
            existing_keys=pa.table({"k": ["x"]}),
        )
    with pytest.raises(ValueError, match="needs a primary_key"):
        deduplicate(pa.table({"k": [1]}), DedupSpec(), existing_keys=pa.table({"k": [1]}))


def test_large_batch() -> None:
    n = 200_000
    rng = np.random.default_rng(7)
    batch = pa.table(
        {
            "k": rng.integers(0, n // 2, n),
            "c": rng.integers(0, 50, n),
            "v": pa.array(rng.integers(0, 3, n)).cast(pa.string()),
        }
    )
    existing = pa.table({"k": np.arange(0, n // 2, 7)})
    spec = DedupSpec(primary_key=("k",), keep="last", cursor="c")
    result = deduplicate(batch, spec, existing_keys=existing)
    check_accounting(batch, result)
    kept = result.table["k"].to_numpy()
    assert len(np.unique(kept)) == len(kept) == len(np.unique(batch["k"].to_numpy()))
    assert result.replaced_keys is not None
    assert sorted(result.replaced_keys["k"].to_pylist()) == sorted(
        set(kept) & set(range(0, n // 2, 7))
    )
    again = deduplicate(result.table, spec)
    assert again.dropped.num_rows == 0


# ---------------------------------------------------------------------------- properties


def reference(
    rows: list[Row], spec: DedupSpec, existing: list[Row] | None = None
) -> tuple[list[int], dict[int, str]]:
    """The documented semantics, one row at a time: kept positions and reason per dropped row."""
    dropped: dict[int, str] = {}
    alive = list(range(len(rows)))
    if spec.exact_duplicates:
        chosen: dict[tuple[Any, ...], int] = {}
        for i in alive:
            whole = tuple(sorted(rows[i].items()))
            if whole not in chosen or spec.keep == "last":
                chosen[whole] = i
        winners = set(chosen.values())
        dropped.update({i: EXACT_DUPLICATE for i in alive if i not in winners})
        alive = [i for i in alive if i in winners]
    key = spec.primary_key
    if key is not None:

        def key_of(row: Row) -> tuple[Any, ...] | None:
            parts = tuple(row[c] for c in key)
            return None if any(p is None for p in parts) else parts

        def rank(i: int) -> tuple[Any, ...]:
            if spec.cursor is None:
                return (i,)
            c = rows[i][spec.cursor]
            return (c is not None, c if c is not None else 0, i)

        best: dict[tuple[Any, ...], int] = {}
        for i in alive:
            k = key_of(rows[i])
            if k is None:
                continue
            if k not in best or (spec.keep == "last" and rank(i) >= rank(best[k])):
                best[k] = i
        reason = DUPLICATE_KEY if spec.keep == "first" else REPLACED
        for i in alive:
            k = key_of(rows[i])
            if k is not None and best[k] != i:
                dropped[i] = reason
        alive = [i for i in alive if i not in dropped]
        if existing is not None:
            stored: dict[tuple[Any, ...], list[Any]] = {}
            for row in existing:
                k = key_of(row)
                if k is not None:
                    stored.setdefault(k, []).append(row.get(spec.cursor or ""))
            for i in alive:
                k = key_of(rows[i])
                if k is None or k not in stored:
                    continue
                if spec.keep == "first":
                    dropped[i] = KEY_INGESTED
                elif spec.cursor is not None and spec.cursor in existing[0]:
                    old = [c for c in stored[k] if c is not None]
                    new = rows[i][spec.cursor]
                    if old and (new is None or new < max(old)):
                        dropped[i] = KEY_INGESTED
            alive = [i for i in alive if i not in dropped]
    return alive, dropped


small = st.one_of(st.none(), st.integers(0, 3))
rows_strategy = st.lists(
    st.fixed_dictionaries({"k": small, "j": small, "c": small, "v": st.sampled_from(["a", "b"])}),
    max_size=30,
)
specs = st.one_of(
    st.builds(
        DedupSpec,
        primary_key=st.sampled_from([None, ("k",), ("k", "j")]),
        keep=st.sampled_from(["first", "last"]),
        exact_duplicates=st.booleans(),
    ),
    st.builds(
        DedupSpec,
        primary_key=st.sampled_from([("k",), ("k", "j")]),
        keep=st.just("last"),
        cursor=st.just("c"),
        exact_duplicates=st.booleans(),
    ),
)
SCHEMA = pa.schema([("k", pa.int64()), ("j", pa.int64()), ("c", pa.int64()), ("v", pa.string())])


@settings(max_examples=300, deadline=None)
@given(rows=rows_strategy, spec=specs, existing=st.one_of(st.none(), rows_strategy))
def test_matches_the_reference_semantics(
    rows: list[Row], spec: DedupSpec, existing: list[Row] | None
) -> None:
    if spec.primary_key is None:
        existing = None
    batch = pa.Table.from_pylist(rows, schema=SCHEMA)
    stored = None if existing is None else pa.Table.from_pylist(existing, schema=SCHEMA)
    if stored is not None and not existing:
        existing = None
    result = deduplicate(batch, spec, existing_keys=stored)
    check_accounting(batch, result)
    kept, dropped = reference(rows, spec, existing)
    assert result.table.to_pylist() == [rows[i] for i in kept]
    assert result.dropped.to_pylist() == [
        {**rows[i], REASON_COLUMN: dropped[i]} for i in sorted(dropped)
    ]


@settings(max_examples=200, deadline=None)
@given(rows=rows_strategy, spec=specs)
def test_properties(rows: list[Row], spec: DedupSpec) -> None:
    batch = pa.Table.from_pylist(rows, schema=SCHEMA)
    result = deduplicate(batch, spec)
    check_accounting(batch, result)
    out = result.table.to_pylist()
    # Idempotent: a deduplicated batch has nothing left to drop.
    assert deduplicate(result.table, spec).dropped.num_rows == 0
    if spec.exact_duplicates:
        assert len({tuple(sorted(r.items())) for r in out}) == len(out)
    key = spec.primary_key
    if key is None:
        return
    keys = [tuple(r[c] for c in key) for r in out if all(r[c] is not None for c in key)]
    assert len(keys) == len(set(keys)), "no key appears twice"
    for row in out:
        k = tuple(row[c] for c in key)
        if any(p is None for p in k):
            continue
        same = [r for r in rows if tuple(r[c] for c in key) == k]
        if spec.keep == "first":
            assert row == same[0], "keep=first keeps the earliest occurrence"
        elif spec.cursor is not None:
            cursors = [r["c"] for r in same if r["c"] is not None]
            assert row["c"] == (max(cursors) if cursors else None), "keep=last keeps max cursor"
        else:
            assert row == same[-1]


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(
        st.fixed_dictionaries(
            {"k": st.integers(0, 4), "j": st.integers(0, 1), "c": small, "v": st.just("a")}
        ),
        max_size=30,
    ),
    spec=specs.filter(lambda s: s.primary_key is not None),
    cuts=st.lists(st.integers(0, 30), max_size=4),
)
def test_batch_by_batch_equals_all_at_once(
    rows: list[Row], spec: DedupSpec, cuts: list[int]
) -> None:
    """Ingesting in batches (existing_keys + drop_keys) ends where one big batch would."""
    key = list(spec.primary_key or ())
    stored_cols = [*key, "c"] if spec.cursor else key
    everything = pa.Table.from_pylist(rows, schema=SCHEMA)
    dataset = everything.slice(0, 0)
    bounds = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    for lo, hi in itertools.pairwise(bounds):
        result = deduplicate(
            everything.slice(lo, hi - lo), spec, existing_keys=dataset.select(stored_cols)
        )
        if result.replaced_keys is not None:
            dataset = drop_keys(dataset, result.replaced_keys)
        dataset = pa.concat_tables([dataset, result.table])
    assert dataset.to_pylist() == deduplicate(everything, spec).table.to_pylist()

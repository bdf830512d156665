"""Profiles merged from blocks equal the profile of the whole table (hypothesis).

Any table, cut into blocks anywhere and written as Parquet parts, must profile as
:func:`profile_table` profiles it whole: the same counts, nulls, NaNs, extremes, distinct counts
(NaN left out, -0.0 equal to 0.0) and top values; mean and standard deviation to rounding.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import math
import random
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.datasets.profile import profile_table
from gyre.datasets.profile_merge import finish_profile, fixed_width, partial_profile

_floats = st.one_of(
    st.none(),
    st.sampled_from([0.0, -0.0, 1.5, -2.25, float("nan"), 1e12]),
    st.floats(-1e6, 1e6, allow_nan=False),
)
_row = st.tuples(
    st.one_of(st.none(), st.integers(-5, 5), st.integers(-(2**40), 2**40)),
    _floats,
    # Values over 4 KiB get no Parquet statistics: their extremes are counted instead.
    st.one_of(st.none(), st.sampled_from(["a", "b", "", "é", "zz", "y" * 5000, "\U0001f600"])),
    st.one_of(st.none(), st.booleans()),
    st.one_of(st.none(), st.dates(dt.date(2020, 1, 1), dt.date(2020, 3, 1))),
    st.one_of(st.none(), st.datetimes(dt.datetime(2020, 1, 1), dt.datetime(2020, 1, 2))),
    # Narrow types, their extremes included: a range that overflows the type itself.
    st.one_of(st.none(), st.sampled_from([-128, 127, 0]), st.integers(-128, 127)),
    st.one_of(st.none(), st.sampled_from([0, 2**32 - 1]), st.integers(0, 2**32 - 1)),
    st.one_of(st.none(), st.sampled_from([0.0, -0.0, float("nan"), 3.5])),
)
SCHEMA = pa.schema(
    [
        ("i", pa.int64()),
        ("f", pa.float64()),
        ("s", pa.string()),
        ("b", pa.bool_()),
        ("d", pa.date32()),
        ("t", pa.timestamp("us")),
        ("n", pa.int8()),  # named n: an alias in the top-values query once took its place
        ("u", pa.uint32()),
        ("g", pa.float32()),
    ]
)


def _table(rows: list[tuple[object, ...]]) -> pa.Table:
    return pa.table({f.name: [r[i] for r in rows] for i, f in enumerate(SCHEMA)}, schema=SCHEMA)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(_row, min_size=1, max_size=80), cuts=st.lists(st.integers(0, 80)))
def test_blocks_profile_like_the_whole_table(
    tmp_path_factory: object, rows: list[tuple[object, ...]], cuts: list[int]
) -> None:
    table = _table(rows)
    edges = sorted({0, len(rows), *(c for c in cuts if c < len(rows))})
    blocks = [table.slice(a, b - a) for a, b in itertools.pairwise(edges)]
    folder = Path(str(tmp_path_factory.mktemp("parts")))  # type: ignore[attr-defined]
    paths = []
    for n, block in enumerate(blocks):
        path = folder / f"{n}.parquet"
        pq.write_table(block, path)
        paths.append(str(path))
    whole = profile_table(table).model_dump()
    # text_extremes=False: text extremes from the parts' statistics. The last block also comes
    # as rows not yet written, beside the others' parts (or alone). Text counted value by
    # value in the blocks, in none, or in some (a block with more than one distinct value is
    # too varied: its column is grouped from the parts, as is a column never counted).
    for text_extremes, held, counting in itertools.product(
        (True, False), (False, True), (None, 4096, 1)
    ):
        with _counted_at_most(counting or 4096):
            varied = None if counting is None else set[str]()
            partials = [
                partial_profile(b, text_extremes=text_extremes, varied=varied) for b in blocks
            ]
        # Where values are counted in some blocks, the numbers are sorted from the blocks'
        # own arrays too, instead of from the parts (as a big file's are).
        in_memory = None
        if counting == 1:
            fixed = [f.name for f in SCHEMA if fixed_width(f.type)]
            in_memory = {name: [c for b in blocks for c in b.column(name).chunks] for name in fixed}
        if held:
            merged = finish_profile(
                partials, SCHEMA, paths[:-1], blocks[-1], in_memory
            ).model_dump()
        else:
            merged = finish_profile(partials, SCHEMA, paths, None, in_memory).model_dump()
        assert merged["row_count"] == whole["row_count"]
        for got, want in zip(merged["columns"], whole["columns"], strict=True):
            for key, value in want.items():
                if key in ("mean", "std") and value is not None and got[key] is not None:
                    assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-9), key
                else:
                    assert got[key] == value, (want["name"], key, got[key], value)


@contextlib.contextmanager
def _counted_at_most(minimum: int) -> Iterator[None]:
    from gyre.datasets import profile_merge

    before = profile_merge._COUNTED_MIN
    profile_merge._COUNTED_MIN = minimum
    try:
        yield
    finally:
        profile_merge._COUNTED_MIN = before


def test_text_counted_in_blocks_needs_no_duckdb(tmp_path: Path) -> None:
    # Every block counted its text and booleans: distinct and top values come from the counts
    # (the parts are never grouped again) and equal the whole table's.
    from gyre.datasets import profile_merge

    rng = random.Random(7)
    table = pa.table(
        {
            "s": [rng.choice(["a", "b", "c", None, "é"]) for _ in range(3000)],
            "b": [rng.choice([True, False, None]) for _ in range(3000)],
        }
    )
    blocks = [table.slice(i, 1000) for i in range(0, 3000, 1000)]
    varied: set[str] = set()
    partials = [partial_profile(b, varied=varied) for b in blocks]
    assert not varied and all(p.value_counts is not None for block in partials for p in block)
    pq.write_table(table, tmp_path / "p.parquet")
    grouped: list[str] = []
    original = profile_merge._groups

    def spy(connection: object, name: str) -> object:
        grouped.append(name)
        return original(connection, name)

    profile_merge._groups = spy  # type: ignore[assignment]
    try:
        merged = finish_profile(partials, table.schema, [str(tmp_path / "p.parquet")])
    finally:
        profile_merge._groups = original
    assert grouped == []
    assert merged.model_dump() == profile_table(table).model_dump()


def test_an_id_rising_through_every_block_is_counted_without_sorting(tmp_path: Path) -> None:
    ids = pa.table({"id": pa.array(range(1, 10_001), pa.int64())})
    blocks = [ids.slice(i, 1000) for i in range(0, 10_000, 1000)]
    partials = [partial_profile(b) for b in blocks]
    assert all(p[0].rising for p in partials)
    pq.write_table(ids, tmp_path / "p.parquet")
    profile = finish_profile(partials, ids.schema, [str(tmp_path / "p.parquet")])
    assert profile.column("id").distinct_count == 10_000
    # Rising inside each block but not across them: counted from the values.
    again = [ids.slice(0, 5000), ids.slice(2000, 5000)]
    pq.write_table(pa.concat_tables(again), tmp_path / "q.parquet")
    profile = finish_profile(
        [partial_profile(b) for b in again], ids.schema, [str(tmp_path / "q.parquet")]
    )
    assert profile.column("id").distinct_count == 7000

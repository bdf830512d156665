"""The quarantine's ``raw`` rows: JSON built column-wise by Arrow must read back, and read
exactly as ``json.dumps`` writes each row (the rows replay reads)."""

from __future__ import annotations

import json

import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.ingest.quarantine import attach_raw_rows, rows_as_json
from gyre.ingest.violations import QUARANTINE_SCHEMA

_text = st.one_of(st.none(), st.text(max_size=8), st.sampled_from(['"', "\\", "\n", "é", "\x00"]))
_names = st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True)


@settings(max_examples=200, deadline=None)
@given(names=_names, data=st.data())
def test_rows_as_json_is_what_json_dumps_writes(names: list[str], data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.tuples(*[_text] * len(names)), max_size=12))
    table = pa.table({n: pa.array([r[i] for r in rows], pa.string()) for i, n in enumerate(names)})
    expected = [json.dumps(dict(zip(names, r, strict=True)), ensure_ascii=False) for r in rows]
    assert rows_as_json(table).to_pylist() == expected


def test_raw_rows_are_found_by_line_and_missing_lines_get_null() -> None:
    records = pa.table(
        {
            "file": ["f.csv"] * 3,
            "line": [7, 3, 9],
            "row": [2, 1, 3],
            "column": ["a", "b", None],
            "rule": ["type", "not_null", "malformed"],
            "value": ["x", None, None],
            "reason": ["r", "r", "r"],
        },
        schema=QUARANTINE_SCHEMA,
    )
    rows = pa.table({"a": ["1", "x"], "b": [None, 'say "hi"'], "_line": [3, 7]})
    raw = attach_raw_rows(records, rows)["raw"].to_pylist()
    assert raw == ['{"a": "x", "b": "say \\"hi\\""}', '{"a": "1", "b": null}', None]
    # Typed rows (a stream's JSON) go through json.dumps as before, to the same text.
    typed = pa.table({"a": [1, 2], "b": [None, "y"], "_line": [3, 7]})
    assert attach_raw_rows(records, typed)["raw"].to_pylist() == [
        '{"a": 2, "b": "y"}',
        '{"a": 1, "b": null}',
        None,
    ]

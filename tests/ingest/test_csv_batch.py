"""Reading CSV batches: exact line numbers, text-only columns, clear errors, quarantine limits."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gyre.core.errors import QuarantineLimitError, SourceError
from gyre.core.yaml_positions import parse_yaml
from gyre.ingest.contract import Contract, parse_contract
from gyre.ingest.csv_batch import ingest_batch, read_csv_batch
from gyre.ingest.violations import QUARANTINE_SCHEMA


def write(tmp_path: Path, data: bytes | str, name: str = "batch.csv") -> Path:
    path = tmp_path / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def contract(text: str) -> Contract:
    return parse_contract(parse_yaml(text, "c.yaml"))


# ------------------------------------------------------------------------- line numbers


def test_simple_file_lines_and_text_columns(tmp_path: Path) -> None:
    raw = read_csv_batch(write(tmp_path, "a,b\n1,x\n002,y\n"))
    table, lines = raw
    assert table.column_names == ["a", "b"]
    assert table.column("a").to_pylist() == ["1", "002"]  # text: leading zeros kept
    assert lines.to_pylist() == [2, 3]
    assert raw.malformed.num_rows == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"a,b\r\n1,2\r\n3,4\r\n", [2, 3]),  # CRLF
        (b"a,b\r1,2\r3,4", [2, 3]),  # old Mac line ends, no final newline
        (b"a,b\n1,2\n\n\n3,4\n\n", [2, 5]),  # blank lines are skipped, not counted as rows
        (b"\n\na,b\n1,2\n", [4]),  # blank lines before the header
        (b'a,b\n1,"x\ny"\n2,z\n', [2, 4]),  # a quoted newline
        (b'a,b\r\n1,"x\r\n\r\ny"\r\n2,z\r\n', [2, 5]),  # quoted blank line, CRLF
        (b'a,b\n1,"say ""hi""\n, ok"\n2,z\n', [2, 4]),  # escaped quotes across lines
        (b'a,b\n5"10,x\n"q\nr",y\n', [2, 3]),  # a stray quote inside a field: slow path
        (b"\xef\xbb\xbfa,b\n1,2\n", [2]),  # UTF-8 BOM
        (b'"a\nb",c\n1,2\n', [3]),  # header spanning two lines
    ],
)
def test_line_numbers(tmp_path: Path, data: bytes, expected: list[int]) -> None:
    raw = read_csv_batch(write(tmp_path, data))
    assert raw.lines.to_pylist() == expected
    assert raw.table.num_rows == len(expected)


def test_stray_quote_values_match_arrow(tmp_path: Path) -> None:
    raw = read_csv_batch(write(tmp_path, b'a,b\n5"10,x\n"q\nr",y\n'))
    assert raw.table.to_pylist() == [{"a": '5"10', "b": "x"}, {"a": "q\nr", "b": "y"}]


field_text = st.text(alphabet=st.sampled_from(list('ab ,"\né')), max_size=6)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rows=st.lists(st.tuples(field_text, field_text, field_text), max_size=25),
    blanks=st.lists(st.integers(0, 2), min_size=26, max_size=26),
    crlf=st.booleans(),
)
def test_line_numbers_property(
    tmp_path: Path, rows: list[tuple[str, str, str]], blanks: list[int], crlf: bool
) -> None:
    end = "\r\n" if crlf else "\n"
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator=end)
    writer.writerow(["x", "y", "z"])
    expected = []
    for row, blank in zip(rows, blanks, strict=False):
        out.write(end * blank)
        expected.append(out.getvalue().count("\n") + 1)
        writer.writerow(row)
    raw = read_csv_batch(write(tmp_path, out.getvalue()))
    assert raw.lines.to_pylist() == expected
    assert [tuple(r.values()) for r in raw.table.to_pylist()] == rows


def test_csv_spectrum_parses_exactly(shared_data: Path) -> None:
    folder = shared_data / "csv-messy" / "csv-spectrum"
    files = sorted((folder / "csvs").glob("*.csv"))
    assert len(files) == 11
    for path in files:
        expected = json.loads((folder / "json" / f"{path.stem}.json").read_text())
        raw = read_csv_batch(path)
        # The reference keeps CRLF inside quoted values as written; Arrow does too.
        assert raw.table.to_pylist() == expected, path.name
        # Oracle for line numbers: the csv module's count of lines consumed per record.
        reader = csv.reader(io.StringIO(path.read_text(), newline=""))
        starts, last = [], 0
        for record in reader:
            if record:
                starts.append(last + 1)
            last = reader.line_num
        assert raw.lines.to_pylist() == starts[1:], path.name


def test_rows_with_the_wrong_number_of_fields_are_set_aside(shared_data: Path) -> None:
    raw = read_csv_batch(shared_data / "csv-messy" / "csvkit-examples" / "bad_skip_lines.csv")
    assert raw.lines.to_pylist() == [7]
    assert raw.malformed.to_pylist() == [
        {"line": 5, "text": '1,27,,"I\'m too long!"', "reason": "expected 3 fields, found 4"},
        {"line": 6, "text": ',"I\'m too short!"', "reason": "expected 3 fields, found 2"},
    ]


def test_wrong_field_counts_in_a_big_file(tmp_path: Path) -> None:
    # Past Arrow's block size the file is read on several threads, which do not number bad
    # rows; the reader must still place them.
    lines = ["a,b,c"] + [f"{i},{i},{i}" for i in range(120_000)]
    lines[100_001] = "oops"
    raw = read_csv_batch(write(tmp_path, "\n".join(lines) + "\n"))
    assert raw.malformed.column("line").to_pylist() == [100_002]
    assert raw.table.num_rows == 119_999
    lines_out = raw.lines.to_numpy()
    assert lines_out[99_999] == 100_001 and lines_out[100_000] == 100_003


# ------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"\n\n  \n", "the file is empty"),
        ("a,b\n1,2\n".encode("utf-16"), "the file is UTF-16 encoded"),
        (b"a,b\n1,2\nx,caf\xe9\n", ":3: not valid UTF-8 (byte 0xe9)"),
        (b"a,a\n1,2\n", ":1: duplicate column name(s) in the header: a"),
        (b"a,,c\n1,2,3\n", ":1: column 2 of the header has no name"),
        (b'a,b\n1,x\n2,"unterminated\n', ":3: a quoted value starts here and never ends"),
        (b'a,b\n1,"x"\n2,"unterminated', ":3: a quoted value starts here and never ends"),
    ],
)
def test_broken_files_give_one_line_errors(tmp_path: Path, data: bytes, message: str) -> None:
    path = write(tmp_path, data)
    with pytest.raises(SourceError) as info:
        read_csv_batch(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"nope\.csv: file not found"):
        read_csv_batch(tmp_path / "nope.csv")
    with pytest.raises(SourceError, match="is a directory"):
        read_csv_batch(tmp_path)


def test_display_name_is_used_in_messages(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"^data/incoming/x\.csv: the file is empty"):
        read_csv_batch(write(tmp_path, b""), display_name="data/incoming/x.csv")


# ------------------------------------------------------------------------------- ingest

SMALL = "columns:\n  - {name: id, type: int}\n  - {name: v, type: float, min: 0, max: 1}\n"


def test_ingest_counts_always_add_up(tmp_path: Path) -> None:
    data = "id,v\n1,0.5\n2,1.5\n3\nx,0.1\n5,0.9\n"
    result = ingest_batch(write(tmp_path, data), contract(SMALL), quarantine_limit=1.0)
    assert (result.rows_in, result.accepted, result.quarantined) == (5, 2, 3)
    assert result.rows_in == result.accepted + result.quarantined
    assert result.accepted_table.column("id").to_pylist() == [1, 5]
    assert result.accepted_lines.to_pylist() == [2, 6]
    assert result.quarantine.schema == QUARANTINE_SCHEMA
    assert [(r["line"], r["rule"]) for r in result.quarantine.to_pylist()] == [
        (3, "max"),
        (4, "columns"),
        (5, "type"),
    ]
    assert result.quarantine.column("file").to_pylist() == [str(tmp_path / "batch.csv")] * 3
    assert result.quarantine.to_pylist()[1]["value"] == "3"  # the malformed row's full text


def test_quarantine_limit(tmp_path: Path) -> None:
    rows = ["id,v"] + [f"{i},0.5" for i in range(96)] + [f"{i},7" for i in range(4)]
    path = write(tmp_path, "\n".join(rows) + "\n")
    result = ingest_batch(path, contract(SMALL), quarantine_limit=0.04)  # 4% is allowed
    assert result.quarantined == 4 and result.share_quarantined == pytest.approx(0.04)
    with pytest.raises(QuarantineLimitError) as info:
        ingest_batch(path, contract(SMALL), quarantine_limit=0.03)
    message = str(info.value)
    assert message.startswith(f"{path}: 4 of 100 rows (4.0%) broke the contract")
    assert "above the limit of 3.0%" in message
    assert "top rules: v max (4 rows)" in message
    assert "e.g. line 98: v = 7 is above the maximum 1" in message
    assert info.value.hint is not None and "quarantine_limit" in info.value.hint


def test_header_without_a_declared_column(tmp_path: Path) -> None:
    path = write(tmp_path, "id,value\n1,0.5\n")
    with pytest.raises(SourceError) as info:
        ingest_batch(path, contract(SMALL))
    assert str(info.value).startswith(f"{path}:1: missing column(s) v that the contract declares")


def test_header_only_file_is_an_empty_batch(tmp_path: Path) -> None:
    result = ingest_batch(write(tmp_path, "id,v\n"), contract(SMALL), quarantine_limit=0.0)
    assert (result.rows_in, result.accepted, result.quarantined) == (0, 0, 0)


def test_malformed_rows_between_blank_and_multiline_records(tmp_path: Path) -> None:
    raw = read_csv_batch(write(tmp_path, 'a,b\n\n1\n\n2,3\n"x\ny",4,5\n6,7\n'))
    assert raw.lines.to_pylist() == [5, 8]
    assert raw.malformed.column("line").to_pylist() == [3, 6]
    assert raw.malformed.column("text").to_pylist() == ["1", '"x\ny",4,5']

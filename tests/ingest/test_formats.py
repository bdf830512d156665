"""Reading batches of every format: CSV dialects, JSON, JSON Lines, Parquet, URLs and globs."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid
from pathlib import Path
from typing import Literal

import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gyre.core.errors import DataError, QuarantineLimitError, SourceError
from gyre.core.yaml_positions import parse_yaml
from gyre.ingest import formats
from gyre.ingest.contract import Contract, parse_contract
from gyre.ingest.csv_batch import RawBatch, ingest_batch, read_csv_batch, read_csv_bytes
from gyre.ingest.formats import format_for, list_files, read_batch, register_format


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def rows(raw: RawBatch) -> list[dict[str, object]]:
    return raw.table.to_pylist()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------- choosing a reader


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.csv", "csv"),
        ("A.CSV", "csv"),
        ("a.txt", "csv"),
        ("a.tsv", "tsv"),
        ("a.json", "json"),
        ("a.geojson", "json"),
        ("a.jsonl", "jsonl"),
        ("a.ndjson", "jsonl"),
        ("a.parquet", "parquet"),
        ("s3://bucket/x/a.csv.gz", "csv"),  # compression suffixes are looked through
        ("https://h/a.json?version=2", "json"),
        ("a.dat", None),
        ("a.gz", None),
    ],
)
def test_format_for(name: str, expected: str | None) -> None:
    assert format_for(name) == expected


def test_unknown_extensions_are_recognised_by_content(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1]}), tmp_path / "p.bin")
    assert read_batch(tmp_path / "p.bin").format == "parquet"
    assert read_batch(write(tmp_path, "j.dat", ' [{"a": 1}]')).format == "json"
    assert read_batch(write(tmp_path, "c.dat", "a;b\n1;2\n")).format == "csv"


def test_explicit_format_wins_and_unknown_formats_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "events.log", '{"a": 1}\n{"a": 2}\n')
    raw = read_batch(path, format="ndjson")
    assert (raw.format, rows(raw)) == ("jsonl", [{"a": "1"}, {"a": "2"}])
    with pytest.raises(SourceError, match=r"events\.log: unknown format 'xml'") as info:
        read_batch(path, format="xml")
    assert info.value.hint is not None and "parquet" in info.value.hint


def test_a_registered_format_is_found_by_name_and_extension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(formats, "_READERS", dict(formats._READERS))
    monkeypatch.setattr(formats, "_EXTENSIONS", dict(formats._EXTENSIONS))

    def read_psv(
        data: bytes, name: str, *, encoding: str | None, delimiter: str | None, header: bool | None
    ) -> RawBatch:
        return read_csv_bytes(data, name, encoding=encoding, delimiter="|", header=header)

    register_format("psv", read_psv, (".psv",))
    assert formats.formats()["psv"] == (".psv",)
    raw = read_batch(write(tmp_path, "x.psv", "a|b\n1,5|2\n"))
    assert rows(raw) == [{"a": "1,5", "b": "2"}]


# ----------------------------------------------------------------------------------- CSV


def test_delimiter_header_and_encoding_are_detected(tmp_path: Path) -> None:
    data = "id;name;amount\r\n1;Zoë;1,5\r\n2;Ærø;2,25\r\n".encode("utf-16")
    raw = read_batch(write(tmp_path, "export.csv", data))
    assert rows(raw) == [
        {"id": "1", "name": "Zoë", "amount": "1,5"},
        {"id": "2", "name": "Ærø", "amount": "2,25"},
    ]
    assert raw.lines.to_pylist() == [2, 3]
    assert (raw.encoding, raw.header_detected) == ("utf-16-le", True)
    assert raw.dialect is not None
    assert (raw.dialect.delimiter, raw.dialect.line_end) == (";", "\r\n")
    assert raw.notes == ("read as utf-16-le (detected)",)


def test_headerless_files_get_numbered_columns(tmp_path: Path) -> None:
    raw = read_batch(write(tmp_path, "x.csv", "\n1,2.5,2011-01-01\n3,4,2011-01-02\n"))
    assert raw.header_detected is False
    assert raw.table.column_names == ["column_1", "column_2", "column_3"]
    assert raw.lines.to_pylist() == [2, 3]  # the first record is data, on line 2
    assert "no header row detected" in raw.notes[0]


def test_header_and_delimiter_can_be_given(tmp_path: Path) -> None:
    path = write(tmp_path, "x.txt", "a:b\nc:d\n")
    raw = read_batch(path, delimiter=":", header=False)
    assert rows(raw) == [{"column_1": "a", "column_2": "b"}, {"column_1": "c", "column_2": "d"}]
    assert raw.lines.to_pylist() == [1, 2]
    with pytest.raises(SourceError, match="cannot use '::' as the delimiter"):
        read_batch(path, delimiter="::")


def test_tsv_with_quotes_and_ragged_rows(tmp_path: Path) -> None:
    raw = read_batch(write(tmp_path, "x.tsv", 'a\tb\n"x\ty"\t2\n1\t2\t3\n4\n'))
    assert rows(raw) == [{"a": "x\ty", "b": "2"}]
    assert raw.format == "tsv"
    assert raw.malformed.to_pylist() == [
        {"line": 3, "text": "1\t2\t3", "reason": "expected 2 fields, found 3"},
        {"line": 4, "text": "4", "reason": "expected 2 fields, found 1"},
    ]


def test_trailing_unnamed_columns_are_named_and_others_refused(tmp_path: Path) -> None:
    raw = read_batch(write(tmp_path, "x.csv", "a,b,\n1,2,\n"))
    assert raw.table.column_names == ["a", "b", "column_3"]
    assert raw.notes == ("header: the last 1 column(s) have no name: column_3",)
    with pytest.raises(SourceError, match=r"x2\.csv:2: the header row has no column names"):
        read_batch(write(tmp_path, "x2.csv", "\n,,\nTitle,,\na,b,c\n"))


def test_a_title_line_above_the_table_is_named(tmp_path: Path) -> None:
    data = "Monthly report\n" + "a,b,c\n" + "1,2,3\n" * 5
    with pytest.raises(SourceError) as info:
        read_batch(write(tmp_path, "r.csv", data))
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'r.csv'}:1: the first row has 1 field(s)")
    assert "'Monthly report'" in message


def test_read_csv_batch_is_utf8_unless_told(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "a,b\n1,café\n".encode("latin-1"))
    with pytest.raises(SourceError, match=r"l\.csv:2: not valid UTF-8 \(byte 0xe9\)"):
        read_csv_batch(path)
    assert rows(read_csv_batch(path, encoding=None)) == [{"a": "1", "b": "café"}]
    assert rows(read_batch(path)) == [{"a": "1", "b": "café"}]


def test_compressed_and_url_sources(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv.gz", gzip.compress(b"a;b\n1;2\n"))
    assert rows(read_batch(path)) == [{"a": "1", "b": "2"}]
    root = f"memory://gyre-test-{uuid.uuid4().hex}"
    with fsspec.open(f"{root}/drop/x.csv", "wb") as handle:
        handle.write(b"a,b\n1,2\n")
    with fsspec.open(f"{root}/drop/sub/y.jsonl", "wb") as handle:
        handle.write(b'{"a": 1}\n')
    raw = read_batch(f"{root}/drop/x.csv")
    assert (raw.file, rows(raw)) == (f"{root}/drop/x.csv", [{"a": "1", "b": "2"}])
    found = list_files(f"{root}/drop/**")
    assert found == [f"memory:///{root[9:]}/drop/sub/y.jsonl", f"memory:///{root[9:]}/drop/x.csv"]
    assert rows(read_batch(found[0])) == [{"a": "1"}]
    with pytest.raises(SourceError, match=r"nope\.csv: file not found"):
        read_batch(f"{root}/drop/nope.csv")
    with pytest.raises(SourceError, match="cannot open this kind of URL"):
        read_batch("nosuchscheme://bucket/x.csv")


def test_local_globs(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "sub/c.csv", "sub/d.json"):
        write(tmp_path, name, "a\n1\n")
    (tmp_path / "dir.csv").mkdir()
    assert list_files(tmp_path / "*.csv") == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
    assert list_files(f"{tmp_path}/**/*.csv") == [
        str(tmp_path / n) for n in ("a.csv", "b.csv", "sub/c.csv")
    ]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("e.csv", b"", "the file is empty"),
        ("e.json", b"  \n", "the file is empty (expected JSON)"),
        ("e.jsonl", b"\xef\xbb\xbf\n", "the file is empty (expected JSON Lines)"),
        ("e.parquet", b"", "the file is empty (expected Parquet)"),
        ("n.jsonl", b'{"a": 1}\n\x00\x00\x00', ":2:1: NUL byte"),
        ("t.json", b'[{"a": 1}, {"a": 2', ":1:19: malformed JSON: Expecting ',' delimiter"),
        ("b.json", b'[{"a": 1},\n {"a" 2}]', ":2:7: malformed JSON: Expecting ':' delimiter"),
        ("s.json", b"42", "the top level is a number, expected an array of objects"),
        ("l.json", b'{"a": [1], "b": [2]}', "the top-level object holds several lists (a, b)"),
        ("p.parquet", b"a,b\n1,2\n", "not a Parquet file (no PAR1 marker at its start)"),
        ("u.csv", "a,b\n1,2\n".encode("utf-16")[:-1], "looks truncated"),
        ("q.csv", b'a,b\n1,"open\n', ":2: a quoted value starts here and never ends"),
        ("z.csv.gz", b"not gzip", "cannot be read (BadGzipFile"),
    ],
)
def test_broken_files_give_one_line_errors(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    path = write(tmp_path, name, data)
    with pytest.raises(SourceError) as info:
        read_batch(path)
    assert str(info.value).startswith(str(path))
    assert message in str(info.value)
    assert "\n" not in info.value.message  # one line; the hint follows on its own


PIECES = [b",", b";", b"\t", b'"', b"\n", b"\r", b"a", b"1", b"\xe9", b"\xc3\xa9", b"\x00"]
PIECES += [b"\xff\xfe", b"\xef\xbb\xbf", b"{", b"}", b"[", b"]", b":", b'"k":', b"PAR1"]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    parts=st.lists(st.one_of(st.sampled_from(PIECES), st.binary(max_size=4)), max_size=40),
    fmt=st.sampled_from(["csv", "tsv", "json", "jsonl", "parquet", None]),
)
def test_any_bytes_read_or_fail_as_a_gyre_error(
    tmp_path: Path, parts: list[bytes], fmt: str | None
) -> None:
    path = write(tmp_path, "x.dat", b"".join(parts))
    try:
        raw = read_batch(path, format=fmt)
    except DataError as exc:  # never another type: no traceback for bad input
        assert str(exc).startswith(str(path))
    else:
        assert len(raw.lines) == raw.table.num_rows


def test_truncated_json_says_so(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="looks truncated"):
        read_batch(write(tmp_path, "t.json", '[{"a": 1}, {"a": 2'))


def test_truncated_parquet(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": list(range(100))}), tmp_path / "ok.parquet")
    data = (tmp_path / "ok.parquet").read_bytes()
    with pytest.raises(SourceError, match="no PAR1 marker at its end"):
        read_batch(write(tmp_path, "cut.parquet", data[: len(data) // 2]))
    broken = data[:8] + b"\xff" * (len(data) - 16) + data[-8:]
    with pytest.raises(SourceError, match="cannot read the Parquet file"):
        read_batch(write(tmp_path, "bad.parquet", broken))


# ---------------------------------------------------------------------------------- JSON


def test_json_array_with_nested_objects(tmp_path: Path) -> None:
    records = [
        {"id": 1, "user": {"name": "Zoë", "geo": {"lat": 1.50, "lon": -2e-3}}, "tags": ["a"]},
        {"id": 12345678901234567890, "user": {"name": None}, "ok": True, "empty": {}},
    ]
    raw = read_batch(write(tmp_path, "x.json", json.dumps(records).replace("0.002", "2e-3")))
    assert rows(raw) == [
        {
            "id": "1",
            "user.name": "Zoë",
            "user.geo.lat": "1.5",
            "user.geo.lon": "-2e-3",  # numbers as written, not as Python prints them
            "tags": '["a"]',
            "ok": None,
            "empty": None,
        },
        {
            "id": "12345678901234567890",
            "user.name": None,
            "user.geo.lat": None,
            "user.geo.lon": None,
            "tags": None,
            "ok": "true",
            "empty": "{}",
        },
    ]
    assert raw.table.schema.types == [pa.string()] * 7
    assert (raw.positions, raw.lines.to_pylist()) == ("record", [1, 2])


def test_json_records_that_are_not_objects_are_set_aside(tmp_path: Path) -> None:
    data = '[{"a": 1}, 3, [1, 2.50], {"a": {"b": 1}, "a.b": 2}, {"a": "x"}]'
    raw = read_batch(write(tmp_path, "x.json", data))
    assert rows(raw) == [{"a": "1"}, {"a": "x"}]
    assert raw.lines.to_pylist() == [1, 5]
    assert raw.malformed.to_pylist() == [
        {"line": 2, "text": "3", "reason": "the record is a number, not an object"},
        {"line": 3, "text": "[1,2.50]", "reason": "the record is an array, not an object"},
        {
            "line": 4,
            "text": '{"a":{"b":1},"a.b":2}',
            "reason": "key 'a.b' appears twice once nested objects are flattened",
        },
    ]


def test_json_object_holding_one_list_or_one_record(tmp_path: Path) -> None:
    geo = {"type": "FeatureCollection", "features": [{"id": "f1"}, {"id": "f2"}]}
    assert rows(read_batch(write(tmp_path, "g.geojson", json.dumps(geo)))) == [
        {"id": "f1"},
        {"id": "f2"},
    ]
    one = read_batch(write(tmp_path, "one.json", '{"a": 1, "b": {"c": null}}'))
    assert rows(one) == [{"a": "1", "b.c": None}]
    empty = read_batch(write(tmp_path, "empty.json", "[]"))
    assert (empty.table.num_rows, empty.table.num_columns) == (0, 0)


def test_json_lines_in_a_json_file(tmp_path: Path) -> None:
    raw = read_batch(write(tmp_path, "x.json", '{"a": 2, "b": 3}\n{"b": 2, "d": 4}\n'))
    assert raw.format == "json"
    assert rows(raw) == [{"a": "2", "b": "3", "d": None}, {"a": None, "b": "2", "d": "4"}]
    assert (raw.positions, raw.lines.to_pylist()) == ("line", [1, 2])


def test_json_lines_quarantine_bad_lines(tmp_path: Path) -> None:
    data = '{"a": 1}\r\n\r\nnot json\r\n[1]\r\n{"a": "x\u2028y"}\r\n{"a": 3'
    raw = read_batch(write(tmp_path, "x.jsonl", data))
    assert rows(raw) == [{"a": "1"}, {"a": "x\u2028y"}]  # U+2028 is not a line break
    assert raw.lines.to_pylist() == [1, 5]
    assert raw.malformed.to_pylist() == [
        {"line": 3, "text": "not json", "reason": "invalid JSON at column 1: Expecting value"},
        {"line": 4, "text": "[1]", "reason": "the line is an array, not an object"},
        {
            "line": 6,
            "text": '{"a": 3',
            "reason": "invalid JSON at column 8: Expecting ',' delimiter",
        },
    ]


def test_json_lines_in_utf16(tmp_path: Path) -> None:
    raw = read_batch(write(tmp_path, "x.ndjson", '{"a": "é"}\n'.encode("utf-16")))
    assert (rows(raw), raw.encoding) == ([{"a": "é"}], "utf-16-le")


# ------------------------------------------------------------------------------- Parquet


def test_parquet_keeps_types_and_flattens_structs(tmp_path: Path) -> None:
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "s": pa.array([{"x": 1.5, "y": {"z": "q"}}, None]),
            "tags": pa.array([["a"], []]),
        }
    )
    pq.write_table(table, tmp_path / "x.parquet")
    raw = read_batch(tmp_path / "x.parquet")
    assert raw.table.column_names == ["id", "s.x", "s.y.z", "tags"]
    assert raw.table.schema.field("id").type == pa.int64()
    assert rows(raw)[0] == {"id": 1, "s.x": 1.5, "s.y.z": "q", "tags": ["a"]}
    assert (raw.positions, raw.lines.to_pylist(), raw.encoding) == ("record", [1, 2], None)
    pq.write_table(table.slice(0, 0), tmp_path / "empty.parquet")
    assert read_batch(tmp_path / "empty.parquet").table.num_rows == 0


# -------------------------------------------------------------------------------- ingest

CONTRACT = "columns:\n  - {name: id, type: int}\n  - {name: v, type: float, min: 0}\n"


def contract(text: str = CONTRACT) -> Contract:
    return parse_contract(parse_yaml(text, "c.yaml"))


def test_ingest_json_lines(tmp_path: Path) -> None:
    data = '{"id": 1, "v": 0.5}\n{"id": 2, "v": -1}\nnope\n{"id": 4, "v": 2, "x": 1}\n'
    path = write(tmp_path, "b.jsonl", data)
    result = ingest_batch(path, contract("extra_columns: drop\n" + CONTRACT), 1.0)
    assert (result.rows_in, result.accepted, result.quarantined) == (4, 2, 2)
    assert result.accepted_table.column("id").to_pylist() == [1, 4]
    assert result.accepted_lines.to_pylist() == [1, 4]
    assert [(r["line"], r["rule"]) for r in result.quarantine.to_pylist()] == [
        (2, "min"),
        (3, "columns"),
    ]


def test_ingest_json_array_reports_records(tmp_path: Path) -> None:
    path = write(tmp_path, "b.json", '[{"id": 1, "v": 0.5}, {"id": "x", "v": 1}]')
    result = ingest_batch(path, contract(), quarantine_limit=1.0, display_name="drop/b.json")
    assert result.accepted == 1
    # Above the limit the message points at the record, not at a line.
    with pytest.raises(QuarantineLimitError) as info:
        ingest_batch(path, contract(), quarantine_limit=0.0, display_name="drop/b.json")
    assert "e.g. record 2: id = 'x' is not a valid int" in str(info.value)


def test_ingest_empty_json_and_headerless_csv(tmp_path: Path) -> None:
    result = ingest_batch(write(tmp_path, "e.json", "[]"), contract(), quarantine_limit=0.0)
    assert (result.rows_in, result.accepted) == (0, 0)
    with pytest.raises(SourceError) as info:
        ingest_batch(write(tmp_path, "h.csv", "1,0.5\n2,0.7\n"), contract())
    assert "missing column(s) id, v" in str(info.value)
    assert info.value.hint is not None and "no header was detected" in info.value.hint


def test_ingest_detects_encoding_unless_pinned(tmp_path: Path) -> None:
    path = write(tmp_path, "l.csv", "id;v\n1;0.5\n".encode("utf-16"))
    assert ingest_batch(path, contract()).accepted == 1
    with pytest.raises(SourceError, match="UTF-16"):
        ingest_batch(path, contract(), encoding="utf-8")


# ---------------------------------------------------------------------- round trip (CSV)

ALPHABET = list(',;\t"\n\r ab1.-éʤ😀\u2028\x85')


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    width=st.integers(2, 4),
    data=st.data(),
    delimiter=st.sampled_from([",", ";", "\t"]),
    end=st.sampled_from(["\n", "\r\n"]),
    quoting=st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]),
    codec=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_csv_module_output_reads_back(
    tmp_path: Path,
    width: int,
    data: st.DataObject,
    delimiter: str,
    end: str,
    quoting: Literal[0, 1, 2, 3],
    codec: str,
) -> None:
    # Python's writer quotes a CR only when the line terminator holds one; elsewhere a bare
    # CR is a line break to every reader, so values get one only with CRLF files.
    alphabet = ALPHABET if end == "\r\n" else [c for c in ALPHABET if c != "\r"]
    cell = st.text(alphabet=alphabet, max_size=6)
    table = data.draw(st.lists(st.lists(cell, min_size=width, max_size=width), max_size=15))
    header = [f"col{i}" for i in range(width)]
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator=end, quoting=quoting)
    writer.writerow(header)
    starts = []
    for row in table:
        starts.append(out.getvalue().count("\n") + 1)
        writer.writerow(row)
    raw = read_batch(write(tmp_path, "t.csv", out.getvalue().encode(codec)))
    assert raw.table.column_names == header
    assert [list(r.values()) for r in rows(raw)] == table
    assert raw.lines.to_pylist() == starts
    assert raw.malformed.num_rows == 0


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(values=st.lists(st.text(alphabet=ALPHABET, max_size=6), max_size=10))
def test_one_column_reads_back_with_its_delimiter_given(tmp_path: Path, values: list[str]) -> None:
    # One column says nothing about its delimiter; told it, the reader gets every value back.
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(["only"])
    writer.writerows([v] for v in values)
    raw = read_batch(write(tmp_path, "t.csv", out.getvalue()), delimiter=";")
    assert raw.table.column("only").to_pylist() == values

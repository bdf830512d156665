"""Real messy files: csv-spectrum parses exactly; every csvkit example ingests or fails clearly.

The files live read-only in ``../shared/data/csv-messy`` (see its README); each is checked
against ``SHA256SUMS`` before use, so a changed file fails loudly instead of passing quietly.
The expected values below were read off the files by hand (``od -c``) and, for every file that
parses, the stdlib ``csv`` module reading the same text with the detected dialect is the oracle.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from gyre.core.errors import DataError, SourceError
from gyre.ingest.csv_batch import RawBatch, read_csv_batch
from gyre.ingest.formats import read_batch

SPECTRUM = [
    "comma_in_quotes",
    "empty",
    "empty_crlf",
    "escaped_quotes",
    "json",
    "newlines",
    "newlines_crlf",
    "quotes_and_newlines",
    "simple",
    "simple_crlf",
    "utf8",
]

# Every csvkit example: (rows, malformed records) when it reads, or the error it must end with.
CSVKIT: dict[str, tuple[int, int] | str] = {
    "bad.csv": (1, 2),  # one row too long, one too short: quarantined, not fatal
    "bad_skip_lines.csv": (1, 2),
    "blanks.csv": (1, 0),
    "blanks_converted.csv": (1, 0),
    "date_like_number.csv": (1, 0),
    "dummy.csv": (1, 0),
    "dummy.tsv": (1, 0),
    "dummy_col_shuffled.csv": (1, 0),
    "dummy_col_shuffled_ragged.csv": (1, 0),
    "empty.csv": ": the file is empty (expected a header row)",
    "foo1.csv": (2, 0),
    "foo2.csv": (2, 0),
    "iris.csv": (150, 0),
    "join_a.csv": (3, 0),
    "join_b.csv": (3, 0),
    "join_no_header_row.csv": (3, 0),  # "d,e,f" reads as a header: nothing says otherwise
    "join_short.csv": (2, 0),
    "mac_newlines.csv": (2, 0),
    "no_header_row.csv": (1, 0),
    "no_header_row2.csv": (1, 0),
    "no_header_row3.csv": (2, 0),
    "null_byte.csv": ":2:1: NUL byte (0x00) in the data",
    "optional_quote_characters.csv": (1, 0),
    "realdata/Datagov_FY10_EDU_recp_by_State.csv": ":1: the header row has no column names",
    "realdata/FY09_EDU_Recipients_by_State.csv": (53, 0),
    "realdata/README.csv": (3, 0),
    "realdata/acs2012_5yr_population.csv": (93, 0),
    "realdata/ks_1033_data.csv": (1575, 0),
    "sniff_limit.csv": (1, 0),
    "sort_ints_nulls.csv": (3, 0),
    "test_date_format.csv": (2, 0),
    "test_empty_columns.csv": (2, 1),
    "test_empty_columns_long_row.csv": (0, 1),
    "test_empty_columns_short_row.csv": (0, 1),
    "test_extra_header.csv": (0, 1),
    "test_geo.csv": (17, 0),
    "test_geojson.json": (3, 0),
    "test_header_newline.csv": (1, 0),
    "test_ignore_case.csv": (5, 0),
    "test_join_short_rows.csv": (1, 2),
    "test_latin1.csv": (2, 0),
    "test_literal_order.csv": (3, 0),
    "test_locale.csv": (1, 0),
    "test_no_leading_zeroes.csv": (1, 0),
    "test_numeric_date_format.csv": (2, 0),
    "test_precision.csv": (1, 0),
    "test_skip_lines.csv": (1, 0),
    "test_utf16_big.csv": (2, 0),
    "test_utf16_little.csv": (2, 0),
    "test_utf8.csv": (2, 0),
    "test_utf8_bom.csv": (2, 0),
    "testjson.json": (5, 0),
    "testjson_converted.csv": (5, 0),
    "testjson_multiline.json": (2, 0),  # JSON Lines under a .json name
    "testjson_nested.json": (2, 0),
}

Checked = Callable[[str], Path]


@pytest.fixture(scope="module")
def checked(shared_data: Path) -> Checked:
    """A file under csv-messy/, after checking its SHA-256 against SHA256SUMS."""
    sums = {}
    for line in (shared_data / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        sums[name.removeprefix("./")] = digest

    def get(relative: str) -> Path:
        path = shared_data / "csv-messy" / relative
        key = f"csv-messy/{relative}"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sums[key], f"{key} changed"
        return path

    return get


def kit(checked: Checked, name: str) -> RawBatch:
    return read_batch(checked(f"csvkit-examples/{name}"))


# -------------------------------------------------------------------------- csv-spectrum


@pytest.mark.parametrize("stem", SPECTRUM)
def test_csv_spectrum_parses_exactly(checked: Checked, stem: str) -> None:
    path = checked(f"csv-spectrum/csvs/{stem}.csv")
    expected = json.loads(checked(f"csv-spectrum/json/{stem}.json").read_text())
    for raw in (read_batch(path), read_csv_batch(path)):
        assert raw.table.to_pylist() == expected  # CRLF inside quoted values kept as written
        assert raw.header_detected and raw.malformed.num_rows == 0
        reader = csv.reader(io.StringIO(path.read_text(), newline=""))
        starts, last = [], 0
        for _record in reader:
            starts.append(last + 1)
            last = reader.line_num
        assert raw.lines.to_pylist() == starts[1:]


def test_csv_spectrum_is_complete(shared_data: Path) -> None:
    folder = shared_data / "csv-messy" / "csv-spectrum" / "csvs"
    assert sorted(p.stem for p in folder.glob("*.csv")) == SPECTRUM


# ------------------------------------------------------------------------ csvkit examples


def test_every_csvkit_example_is_listed(shared_data: Path) -> None:
    folder = shared_data / "csv-messy" / "csvkit-examples"
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert files == sorted(CSVKIT)
    assert len(files) == 55


@pytest.mark.parametrize("name", sorted(CSVKIT))
def test_csvkit_example_reads_or_fails_clearly(checked: Checked, name: str) -> None:
    path = checked(f"csvkit-examples/{name}")
    expected = CSVKIT[name]
    if isinstance(expected, str):
        with pytest.raises((SourceError, DataError)) as info:
            read_batch(path)
        assert info.value.message.startswith(f"{path}{expected}")
        assert "\n" not in info.value.message and info.value.hint
        return
    raw = read_batch(path)
    assert (raw.table.num_rows, raw.malformed.num_rows) == expected
    assert len(raw.lines) == raw.table.num_rows
    if raw.dialect is not None:
        _agrees_with_the_csv_module(path, raw)


def _agrees_with_the_csv_module(path: Path, raw: RawBatch) -> None:
    assert raw.dialect is not None and raw.encoding is not None
    text = path.read_bytes().decode(raw.encoding).removeprefix("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=raw.dialect.delimiter)
    records = [record for record in reader if record]
    if raw.header_detected:
        records.pop(0)
    width = raw.table.num_columns
    assert [list(row.values()) for row in raw.table.to_pylist()] == [
        r for r in records if len(r) == width
    ]
    assert raw.malformed.num_rows == sum(len(r) != width for r in records)


# Values below were read off the bytes (od -c) of each file.


def test_utf16_files(checked: Checked) -> None:
    for name, encoding in (
        ("test_utf16_big.csv", "utf-16-be"),
        ("test_utf16_little.csv", "utf-16-le"),
    ):
        raw = kit(checked, name)
        assert raw.encoding == encoding
        assert raw.table.to_pylist() == [
            {"a": "1", "b": "2", "c": "3"},
            {"a": "4", "b": "5", "c": "\u02a4"},  # bytes 02 a4: ʤ
        ]
        assert raw.lines.to_pylist() == [2, 3]


def test_latin1_and_utf8_bom(checked: Checked) -> None:
    latin = kit(checked, "test_latin1.csv")
    assert latin.encoding == "cp1252"  # byte a9 is © in both Latin-1 and Windows-1252
    assert latin.table.to_pylist()[1] == {"a": "4", "b": "5", "c": "©"}
    with pytest.raises(SourceError, match=r"test_latin1\.csv:3: not valid UTF-8 \(byte 0xa9\)"):
        read_csv_batch(checked("csvkit-examples/test_latin1.csv"))  # UTF-8 only, as before
    bom = kit(checked, "test_utf8_bom.csv")
    assert bom.table.column_names == ["foo", "bar", "baz"]  # no BOM glued to "foo"
    assert bom.table.column("baz").to_pylist() == ["3", "ʤ"]
    assert bom.encoding == "utf-8-sig"


def test_old_mac_line_ends(checked: Checked) -> None:
    raw = kit(checked, "mac_newlines.csv")
    assert raw.table.to_pylist() == [
        {"a": "1", "b": "2", "c": "3"},
        {"a": "Once upon\ra time", "b": "5", "c": "6"},
    ]
    assert raw.lines.to_pylist() == [2, 3]
    assert raw.dialect is not None and raw.dialect.line_end == "\r"


def test_files_without_a_header(checked: Checked) -> None:
    one = kit(checked, "no_header_row.csv")
    assert not one.header_detected
    assert one.table.to_pylist() == [{"column_1": "1", "column_2": "2", "column_3": "3"}]
    assert one.lines.to_pylist() == [1]
    three = kit(checked, "no_header_row3.csv")
    assert three.table.column("column_3").to_pylist() == ["3", "6"]
    assert three.lines.to_pylist() == [1, 2]
    assert kit(checked, "dummy.csv").header_detected


def test_other_delimiters(checked: Checked) -> None:
    semicolon = kit(checked, "sniff_limit.csv")
    assert semicolon.dialect is not None and semicolon.dialect.delimiter == ";"
    assert semicolon.table.to_pylist() == [{"a": "1", "b": "2", "c": "3"}]
    tab = kit(checked, "dummy.tsv")
    assert (tab.format, tab.table.to_pylist()) == ("tsv", [{"a": "1", "b": "2", "c": "3"}])


def test_ragged_rows_are_quarantined_with_their_lines(checked: Checked) -> None:
    raw = kit(checked, "bad.csv")
    assert raw.lines.to_pylist() == [4]
    assert raw.malformed.to_pylist() == [
        {"line": 2, "text": '1,27,,"I\'m too long!"', "reason": "expected 3 fields, found 4"},
        {"line": 3, "text": ',"I\'m too short!"', "reason": "expected 3 fields, found 2"},
    ]
    empty = kit(checked, "test_empty_columns.csv")
    assert empty.table.column_names == ["a", "b", "c", "column_4", "column_5"]
    assert empty.malformed.column("line").to_pylist() == [3]


def test_government_exports(checked: Checked) -> None:
    fy09 = kit(checked, "realdata/FY09_EDU_Recipients_by_State.csv")
    first = fy09.table.to_pylist()[0]
    # Every line ends with a comma: a tenth, unnamed and empty column.
    assert fy09.table.column_names[-2:] == ["TOTAL", "column_10"]
    assert (first["State Name"], first["Code"], first["TOTAL"]) == ("ALABAMA", "01", "12,426")
    assert fy09.dialect is not None and fy09.dialect.line_end == "\r\n"
    with pytest.raises(SourceError) as info:
        kit(checked, "realdata/Datagov_FY10_EDU_recp_by_State.csv")
    assert info.value.hint is not None and "title or notes" in info.value.hint
    ks = kit(checked, "realdata/ks_1033_data.csv")
    assert ks.table.column("item_name").to_pylist()[0] == "RIFLE,5.56 MILLIMETER"


def test_header_with_control_characters(checked: Checked) -> None:
    raw = kit(checked, "test_header_newline.csv")
    blank = "\t\n\x0b\x0c\r"
    assert raw.table.column_names == [f"{blank} start {blank} end {blank}", "b", "c"]
    assert raw.table.to_pylist()[0]["b"] == "e"
    assert raw.lines.to_pylist() == [5]


def test_json_examples(checked: Checked) -> None:
    flat = kit(checked, "testjson.json")
    assert flat.table.to_pylist()[2]["float"] == "41800000.01"
    assert flat.table.to_pylist()[4]["text"] == "Unicode! Σ"
    assert flat.table.column("boolean").to_pylist() == ["true", "true", "false", "", ""]
    nested = kit(checked, "testjson_nested.json")
    assert nested.table.column("nested.nested.integer").to_pylist() == ["40", "63"]
    geo = kit(checked, "test_geojson.json")
    assert geo.table.column("geometry.coordinates").to_pylist()[0] == "[102.0,0.5]"
    assert geo.table.column("properties.prop1.this").to_pylist() == [None, None, "that"]
    lines = kit(checked, "testjson_multiline.json")
    assert lines.table.to_pylist() == [
        {"a": "2", "b": "3", "d": None},
        {"a": None, "b": "2", "d": "4"},
    ]


def test_nul_byte_names_its_place(checked: Checked) -> None:
    with pytest.raises(SourceError) as info:
        kit(checked, "null_byte.csv")
    assert info.value.hint is not None and "UTF-16" in info.value.hint

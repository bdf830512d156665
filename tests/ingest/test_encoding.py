"""Detecting encodings, line ends, delimiters and header rows; Python's codecs as the oracle."""

from __future__ import annotations

import codecs

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gyre.core.errors import SourceError
from gyre.ingest.encoding import (
    SAMPLE_BYTES,
    detect_encoding,
    field_counts,
    line_end,
    looks_like_header,
    sample_text,
    sniff_delimiter,
    to_utf8,
)

TEXT = "a,b\n1,é\n2,ʤ\n"

# ------------------------------------------------------------------------------ encodings


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (TEXT.encode(), "utf-8"),
        (b"a,b\n1,2\n", "utf-8"),  # ASCII is UTF-8
        (codecs.BOM_UTF8 + TEXT.encode(), "utf-8-sig"),
        (TEXT.encode("utf-16"), "utf-16-le"),  # Python writes little-endian with a BOM
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("utf-16-le"), "utf-16-le"),  # no BOM: found by the NUL pattern
        (TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("utf-32"), "utf-32-le"),  # its BOM starts like UTF-16 LE's
        (codecs.BOM_UTF32_BE + TEXT.encode("utf-32-be"), "utf-32-be"),
        ("a,b\n1,“x” €\n".encode("cp1252"), "cp1252"),
        (b"a,b\n1,\x81\n", "latin-1"),  # 0x81 is undefined in Windows-1252
        (b"a,b\n1,\xc3\xa9\n2,caf\xe9\n", "utf-8"),  # mixed: reported as broken UTF-8
    ],
)
def test_detect_encoding(data: bytes, expected: str) -> None:
    assert detect_encoding(data) == expected


def test_clean_utf8_is_passed_through_untouched() -> None:
    data = TEXT.encode()
    utf8, encoding = to_utf8(data, "f.csv")
    assert utf8 is data and encoding == "utf-8"
    bom = codecs.BOM_UTF8 + data
    utf8, encoding = to_utf8(bom, "f.csv")
    assert utf8 is bom and encoding == "utf-8-sig"  # Arrow skips the BOM itself


@pytest.mark.parametrize("codec", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "cp1252"])
def test_other_encodings_become_utf8_with_the_same_lines(codec: str) -> None:
    text = "a,b\r\n1,é\r\n2,ü\n3,\r\n" if codec == "cp1252" else TEXT + "3,😀\r\n"
    utf8, _ = to_utf8(text.encode(codec), "f.csv")
    assert utf8.decode("utf-8") == text  # BOM dropped, every line break kept


def test_invalid_utf8_after_the_sample_is_still_found() -> None:
    # Detection reads a sample, but validity is checked over the whole file.
    data = b"a,b\n" + b"1,2\n" * (SAMPLE_BYTES // 4) + b"3,caf\xe9\n"
    line = SAMPLE_BYTES // 4 + 2
    with pytest.raises(SourceError, match=rf"^f\.csv:{line}: not valid UTF-8 \(byte 0xe9\)"):
        to_utf8(data, "f.csv", "utf-8")
    utf8, encoding = to_utf8(data, "f.csv")  # detected: the file is Windows-1252 after all
    assert encoding == "cp1252" and utf8.endswith("3,café\n".encode())


def test_mixed_encodings_are_refused_with_the_line() -> None:
    data = "a,b\n1,é\n".encode() + b"2,caf\xe9\n"
    with pytest.raises(SourceError) as info:
        to_utf8(data, "f.csv")
    assert str(info.value).startswith("f.csv:3: not valid UTF-8 (byte 0xe9)")
    assert "mixes two encodings" in str(info.value)


@pytest.mark.parametrize(
    ("data", "where"),
    [
        (b"a,b\n\x00,2\n", "f.csv:2:1: NUL byte"),
        (b"a,b\n1,2\n3,4\x00\x00\x00\x00", "f.csv:3:4: NUL byte"),  # crash padding
        ("a,b\n1,\x00\n".encode("utf-16"), "f.csv:2:3: NUL character"),
    ],
)
def test_nul_bytes_are_refused(data: bytes, where: str) -> None:
    with pytest.raises(SourceError) as info:
        to_utf8(data, "f.csv")
    assert str(info.value).startswith(where)


def test_utf16_when_utf8_was_asked_for() -> None:
    with pytest.raises(SourceError, match="the file is UTF-16 encoded") as info:
        to_utf8(TEXT.encode("utf-16"), "f.csv", "utf-8")
    assert info.value.hint is not None and "iconv -f UTF-16" in info.value.hint


def test_truncated_utf16_says_so() -> None:
    data = TEXT.encode("utf-16")[:-1]
    with pytest.raises(SourceError, match=r"^f\.csv:3: not valid utf-16-le .*looks truncated"):
        to_utf8(data, "f.csv")


def test_explicit_and_unknown_encodings() -> None:
    data = "a\n“x”\n".encode("cp1252")
    assert to_utf8(data, "f.csv", "latin1") == ("a\n\x93x\x94\n".encode(), "latin-1")
    assert to_utf8(data, "f.csv", "cp1252")[0] == "a\n“x”\n".encode()
    with pytest.raises(SourceError, match="unknown encoding 'klingon'"):
        to_utf8(data, "f.csv", "klingon")


def test_sample_text_does_not_cut_a_character() -> None:
    # "x" and then two-byte characters: the sample ends inside one, which is left out.
    data = b"x" + ("é" * SAMPLE_BYTES).encode()
    assert sample_text(data) == "x" + "é" * ((SAMPLE_BYTES - 1) // 2)
    assert sample_text(codecs.BOM_UTF8 + b"a,b\n") == "a,b\n"


bom_codecs = st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "utf-32"])


@settings(max_examples=300, deadline=None)
@given(text=st.text(st.characters(exclude_characters="\0", codec="utf-8")), codec=bom_codecs)
def test_unicode_round_trips_through_detection(text: str, codec: str) -> None:
    text = "id\n" + text  # a leading character so the file is never empty
    utf8, _ = to_utf8(text.encode(codec), "f.csv")
    assert utf8.decode("utf-8-sig") == text


# Letters from Windows-1252's upper half (é, ü, ß, À...) are UTF-8 lead bytes without their
# continuation bytes, so text made of them can never pass for UTF-8.
western = st.characters(codec="cp1252", exclude_characters="\0").filter(
    lambda c: not 0x80 <= c.encode("cp1252")[0] < 0xC0
)


def _starts_like_a_bom(text: str) -> bool:
    # "þÿ" and "ÿþ" are FE FF and FF FE in Windows-1252: the UTF-16 byte-order marks, which
    # decide the encoding before any guessing (and must: that is what a BOM is for).
    return text.encode("cp1252")[:2] in (b"\xfe\xff", b"\xff\xfe")


@settings(max_examples=300, deadline=None)
@given(
    text=st.text(western, min_size=1).filter(
        lambda t: not t.isascii() and not _starts_like_a_bom(t)
    )
)
def test_windows_1252_text_is_recognised(text: str) -> None:
    utf8, encoding = to_utf8(text.encode("cp1252"), "f.csv")
    assert encoding == "cp1252" and utf8.decode("utf-8") == text


def test_windows_1252_text_that_starts_with_a_utf16_mark_is_read_by_the_mark() -> None:
    # Indistinguishable from UTF-16 by its first two bytes; the mark wins, and text that then
    # does not decode as UTF-16 says so instead of being guessed at.
    assert to_utf8("þÿ".encode("cp1252"), "f.csv")[1] == "utf-16-be"
    with pytest.raises(SourceError, match="not valid utf-16-be"):
        to_utf8("þÿ0".encode("cp1252"), "f.csv")


def test_windows_1252_that_happens_to_hold_a_utf8_pair() -> None:
    # "Ã©" is C3 A9, a valid UTF-8 character; one such pair among other accents is chance.
    text = "name\nJosé\nMÃ©xico\nZürich\nSão Paulo\n"
    assert to_utf8(text.encode("cp1252"), "f.csv") == (text.encode(), "cp1252")


# -------------------------------------------------------------------------------- dialect


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a,b,c\n1,2,3\n", ","),
        ("a;b;c\n1,5;2,25;3\n4;5;6\n", ";"),  # decimal commas do not fool it
        ("a\tb\n1,2\t3\n", "\t"),
        ("a|b\n1|2\n", "|"),
        ('a;b\n"x;y";"1,2,3"\n', ";"),  # quoted delimiters are not counted
        ("column_a,column_b,column_c\n1,27,,x\n,y\n0,z,17\n", ","),  # ragged rows
        ("a b c\n1 2 3\n4 5 6\n", " "),  # no usual delimiter: the Sniffer finds the space
        ("name\nJohn Smith\nJane Doe\n", ","),  # one column
        ("name\nSmith, John\nDoe\n", "\t"),  # one column: read by a delimiter it lacks
        # A line with no comma above lines with one each: as far as anyone can tell, a title
        # above a two-column table (the reader then refuses it, naming the title line).
        ("name\nSmith, John\nDoe, Jane\n", ","),
        ("title line\n1,2,3\n4,5,6\n7,8,9\n", ","),  # a table below a title
    ],
)
def test_sniff_delimiter(text: str, expected: str) -> None:
    assert sniff_delimiter(text) == expected


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["a", "b"], ["1", "2"]], True),
        ([["1", "2", "3"]], False),  # a lone row of numbers is data
        ([["1.5", "-2", "2011-01-01"], ["3", "4", "2011-01-02"]], False),
        ([["state", "2010", "2011"], ["AL", "5", "6"], ["AK", "7", "8"]], True),  # years
        # Adult census: a number, and words that recur in their columns below.
        (
            [
                ["39", " State-gov", " Male"],
                ["50", " Private", " Male"],
                ["38", " State-gov", " Female"],
            ],
            False,
        ),
        ([["1", "Jake"], ["2", "Howard"], ["3", "Liz"]], True),  # ambiguous: assume a header
        ([["", ""], ["1", "2"]], True),  # empty names are reported, not guessed away
        ([], True),
    ],
)
def test_looks_like_header(rows: list[list[str]], expected: bool) -> None:
    assert looks_like_header(rows) is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a\r\nb\r\n", "\r\n"),
        ("a\nb\n", "\n"),
        ("a\rb\r", "\r"),
        ("a\r\nb\n", "mixed"),
        ("a", "none"),
    ],
)
def test_line_end(text: str, expected: str) -> None:
    assert line_end(text) == expected


def test_field_counts_spot_a_title_line() -> None:
    counts = field_counts("Report for May\na,b,c\n1,2,3\n4,5,6\n", ",", complete=True)
    assert (counts.first, counts.mode, counts.titled) == (1, 3, True)
    assert not field_counts("a,b,c\n1,2\n", ",", complete=True).titled
    # An incomplete sample ignores its last record, which the cut may have shortened.
    assert field_counts("a,b\n1,2\n3", ",", complete=False).share == 1.0

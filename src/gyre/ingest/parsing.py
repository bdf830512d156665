"""Parse a column of text into a typed Arrow array, marking the values that do not parse.

Arrow's own cast fails the whole column on the first bad value, and a batch must not die
because one row says ``abc`` where a number belongs. So each value is first screened with a
vectorised regular expression for its type's syntax; only values that pass are cast, and
values that still fail (a day 30 in February, an int beyond 64 bits) are isolated by bisection,
which costs a few extra casts per bad value, never a Python loop over the good ones. For dates
and timestamps, where such values are common (month 13, 30 February), the values whose month,
day or time is out of range are found first with numpy and cast on their own, so the rest is
cast once instead of being bisected around every bad value.

    typed, failed = parse_column(pa.array(["1", "x", None]), "int")
    # typed = [1, null, null]; failed = [false, true, false] (null is not a parse failure)
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ColumnType = Literal["int", "float", "string", "bool", "date", "timestamp"]

ARROW_TYPES: dict[str, pa.DataType] = {
    "int": pa.int64(),
    "float": pa.float64(),
    "string": pa.string(),
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us"),
}

_INT = r"^[+-]?[0-9]+$"
_FLOAT = r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$"
_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_TIMESTAMP = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?$"
)
_OFFSET = r"(Z|[+-][0-9]{2}:?[0-9]{2})$"
_TRUE = ["true", "t", "yes", "y", "1"]
_FALSE = ["false", "f", "no", "n", "0"]
_FAST = ("int", "float", "date", "bool", "timestamp")
_AROUND = ("int", "float", "date", "timestamp", "bool")
# What Arrow's cast reads exactly as the slow path does (null matches null: not a suspect).
_PLAIN_BOOLS = pa.array(["true", "false", "1", "0", None], pa.string())
# Arrow casts "YYYY-MM-DD hh" (13 bytes) to a timestamp; the screen wants minutes too.
_HOUR_ONLY_LENGTH = 13
# Columns longer than this try the plain cast on their start first (see _fast_path).
_SAMPLE_FIRST = 65_536
# Below this many values plain bisection is cheap enough.
_SUSPECT_MIN_VALUES = 4096
# Longest month lengths (February 29); a 29 February outside leap years is checked apart.
_DAYS_IN_MONTH = np.array([0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int16)


def parse_column(
    values: pa.Array, column_type: ColumnType, *, expect_unparsable: bool = False
) -> tuple[pa.Array, pa.Array]:
    """Typed values (null where unparsable) and a mask of non-null values that failed.

    ``expect_unparsable`` (an earlier batch of this column had values that failed) skips the
    plain cast of the whole column, which such a column fails after doing most of its work (a
    third of a 190k-row block's parse time with a few bad values in each). It only changes
    the order in which the paths are tried, never the result."""
    if column_type == "string":
        return values, pa.array(np.zeros(len(values), dtype=bool))
    typed = None if expect_unparsable else _fast_path(values, column_type)
    if typed is None:
        typed = _around_suspects(values, column_type)
    if typed is None:
        typed = _slow_path(values, column_type)
    failed = pc.and_(values.is_valid(), typed.is_null())
    return typed, failed


def _fast_path(values: pa.Array, column_type: ColumnType) -> pa.Array | None:
    # Most columns are clean, and a plain cast is many times cheaper than screening. For these
    # types Arrow's syntax is a subset of the screens below once the forms it takes and they
    # refuse are ruled out (hexadecimal ints, timestamps without minutes), so when the whole
    # cast succeeds the result is what the slow path would give.
    if column_type not in _FAST:
        return None
    target = ARROW_TYPES[column_type]
    if len(values) > _SAMPLE_FIRST:
        # A column with bad values fails the cast, after doing most of its work: a failing
        # start says so for a fraction of the cost (a passing one decides nothing).
        try:
            values.slice(0, _SAMPLE_FIRST // 16).cast(target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    try:
        typed = values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if column_type == "float":
        typed = _finite(typed)
    if column_type == "int" and _may_hold_x(values):
        return None  # Arrow reads "0x1F" as 31; the contract's ints are decimal digits
    if (
        column_type == "timestamp"
        and pc.any(pc.equal(pc.binary_length(values), _HOUR_ONLY_LENGTH)).as_py()
    ):
        return None
    return typed


def _may_hold_x(values: pa.Array) -> bool:
    """Whether an ``x`` or ``X`` is anywhere in the text of ``values`` (nulls included, which
    only sends a column to the slow path for nothing): one pass over the bytes, a tenth of what
    a case-insensitive substring search over every value costs."""
    text = text_bytes(values)
    return bool(np.any((text | 0x20) == ord("x")))  # | 0x20 lowers X, changes no other byte to x


def text_bytes(values: pa.Array) -> np.ndarray:
    """The bytes of a ``string`` array's values, end to end, as a numpy view (no copy)."""
    data = values.buffers()[2]
    if data is None:
        return np.empty(0, dtype=np.uint8)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    start, end = offsets[values.offset], offsets[values.offset + len(values)]
    return np.frombuffer(data, dtype=np.uint8)[start:end]


def with_nulls(values: pa.Array, is_null: pa.Array) -> pa.Array:
    """``values`` with null where ``is_null`` (no nulls itself); the text stays where it is,
    only validity changes (copying every string of a column cost more than parsing some)."""
    if values.type == pa.string() and values.offset == 0:
        keep = (
            pc.invert(is_null)
            if values.null_count == 0
            else pc.and_(values.is_valid(), pc.invert(is_null))
        )
        if keep.offset == 0 and keep.null_count == 0:
            _, offsets, data = values.buffers()
            return pa.StringArray.from_buffers(len(values), offsets, data, keep.buffers()[1])
    return pc.if_else(is_null, pa.scalar(None, values.type), values)


def _around_suspects(values: pa.Array, column_type: ColumnType) -> pa.Array | None:
    """A big column with a few bad values: the fast path for most, the slow for the rest.

    Values that look plain are cast in one go: digits (with a leading sign and one point for
    floats), ``YYYY-MM-DD[ hh:mm[:ss]]`` with every field in range for dates and timestamps,
    ``true``, ``false``, ``1`` and ``0`` for booleans. Only the others (``seven``, ``1e5``,
    `` 7``, ``2024-13-05``, ``Yes``) are screened, so the screens' regular expressions and
    any bisection run on a few values, not millions. The split is a guess that Arrow checks:
    if the plain ones do not all cast, None, and the slow path takes everything, as before.
    """
    if column_type not in _AROUND or len(values) < _SUSPECT_MIN_VALUES:
        return None
    if column_type in ("date", "timestamp"):
        out_of_range, other_shape = _calendar_suspects(values, date_only=column_type == "date")
        suspect = pa.array(out_of_range | other_shape)
    elif column_type == "bool":
        suspect = pc.invert(pc.is_in(values, value_set=_PLAIN_BOOLS))
    else:
        text = values
        if column_type == "float":
            text = pc.replace_substring(
                pc.utf8_ltrim(text, characters="+-"),
                pattern=".",
                replacement="",
                max_replacements=1,
            )
        suspect = pc.invert(pc.ascii_is_decimal(text).fill_null(True))
    count = pc.sum(suspect).as_py() or 0
    if count == 0 or count > len(values) // 8:
        return None
    try:
        typed = with_nulls(values, suspect).cast(ARROW_TYPES[column_type])
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    decided = _slow_path(values.filter(suspect), column_type)
    typed = pc.replace_with_mask(typed, suspect, decided)
    return _finite(typed) if column_type == "float" else typed


def _slow_path(values: pa.Array, column_type: ColumnType) -> pa.Array:
    text = pc.utf8_trim_whitespace(values)
    if column_type == "bool":
        lowered = pc.utf8_lower(text)
        return pc.if_else(
            pc.is_in(lowered, value_set=pa.array(_TRUE)),
            True,
            pc.if_else(pc.is_in(lowered, value_set=pa.array(_FALSE)), False, None),
        ).cast(pa.bool_())
    if column_type == "int":
        plain = pc.replace_substring_regex(text, pattern=r"^\+", replacement="")
        return _safe_cast(_screen(plain, _INT), pa.int64())
    if column_type == "float":
        return _finite(_safe_cast(_screen(text, _FLOAT), pa.float64()))
    if column_type == "date":
        return _safe_cast(_screen(text, _DATE), pa.date32())
    return _parse_timestamps(_screen(text, _TIMESTAMP))


def _finite(typed: pa.Array) -> pa.Array:
    # "nan", "inf" and 1e999 parse as floats; a contract column of numbers never wants them.
    return pc.if_else(pc.is_finite(typed), typed, pa.scalar(None, pa.float64()))


def _screen(text: pa.Array, pattern: str) -> pa.Array:
    """``text`` with values not matching ``pattern`` set to null."""
    ok = pc.match_substring_regex(text, pattern=pattern)
    return pc.if_else(ok, text, pa.scalar(None, pa.string()))


def _parse_timestamps(text: pa.Array) -> pa.Array:
    # Arrow casts text with an offset only to a zoned type and text without one only to a naive
    # type; parse each kind its own way and keep UTC wall time for the zoned ones.
    zoned = pc.match_substring_regex(text, pattern=_OFFSET).fill_null(False)
    target = pa.timestamp("us")
    naive = _safe_cast(pc.if_else(zoned, pa.scalar(None, pa.string()), text), target)
    if not pc.any(zoned).as_py():
        return naive
    utc = _safe_cast(
        pc.if_else(zoned, text, pa.scalar(None, pa.string())), pa.timestamp("us", "UTC")
    )
    return pc.if_else(zoned, utc.cast(target), naive)


def _safe_cast(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Cast, turning the values Arrow refuses into nulls (found by bisection)."""
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        if len(values) == 1:
            return pa.nulls(1, target)
    if pa.types.is_temporal(target):
        # At any size: where every value is bad (a block's failures, parsed again to name
        # the type they widen to), bisection costs two casts per value.
        typed = _cast_around_suspects(values, target)
        if typed is not None:
            return typed
    half = len(values) // 2
    return pa.concat_arrays(
        [_safe_cast(values.slice(0, half), target), _safe_cast(values.slice(half), target)]
    )


def _cast_around_suspects(values: pa.Array, target: pa.DataType) -> pa.Array | None:
    """Cast screened date/timestamp text around its likely bad values; None to bisect instead.

    Bisection costs a cast of the whole column per level until each bad value is alone, about
    log2(n / bad) full casts plus two small ones per bad value. Here the values with a field out
    of range (month 13, 30 February, 24:00) are null at once: Arrow refuses every one of them
    (the tests hold the two to agreeing value by value). Values of another shape than plain
    ``YYYY-MM-DD[ hh:mm[:ss]]`` (fractions, offsets) are cast apart, and the rest in one go;
    a cast that fails means the guess was wrong, and None leaves it to bisection.
    """
    out_of_range, other_shape = _calendar_suspects(values, date_only=target == pa.date32())
    unsure = int(other_shape.sum())
    if not out_of_range.any() and not unsure:
        return None  # the failure is elsewhere: bisect as before
    if unsure > len(values) // 8:
        return None  # a column of other shapes: bisect as before
    set_aside = pa.array(out_of_range | other_shape)
    try:
        typed = with_nulls(values, set_aside).cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if unsure:
        shaped = pa.array(other_shape)
        typed = pc.replace_with_mask(typed, shaped, _safe_cast(values.filter(shaped), target))
    return typed


def _calendar_suspects(
    values: pa.Array, *, date_only: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Masks of (plain values with a field out of range, valid values of another shape).

    Plain values are 10 bytes (``YYYY-MM-DD``), or for timestamps also 16 or 19 with a space or
    ``T`` after the date (minutes, seconds). Their fields are read straight from the Arrow
    buffers with numpy, eight bytes at a time: no Python loop and no copy of the text. On
    screened text a field out of range means Arrow refuses the value; on raw text it only makes
    the value a suspect (a value with spaces around it reads as nonsense here and is still a
    date to the screen).
    """
    n = len(values)
    valid: np.ndarray = values.is_valid().to_numpy(zero_copy_only=False)
    offsets = np.frombuffer(values.buffers()[1], dtype=np.int32)
    offsets = offsets[values.offset : values.offset + n + 1]
    text = values.buffers()[2]
    data = np.frombuffer(text, dtype=np.uint8) if text is not None else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    plain_shape = lengths == 10
    if not date_only:
        plain_shape |= (lengths == 16) | (lengths == 19)
    other_shape: np.ndarray = valid & ~plain_shape
    plain = np.flatnonzero(valid & plain_shape)
    starts = offsets[plain]
    # Bytes 2 to 9 of each value: "YY-MM-DD" (the month at 3 and 4, the day at 6 and 7; the
    # century is read apart, for the few 29 Februaries).
    date = _eight_bytes(data, starts + 2)
    month, day = _two_digits(date, 3), _two_digits(date, 6)
    bad = (month < 1) | (month > 12) | (day < 1)
    bad |= day > _DAYS_IN_MONTH[np.clip(month, 0, 12)]
    leap_day = np.flatnonzero((month == 2) & (day == 29))
    if len(leap_day):
        century = _two_digits(_eight_bytes(data, starts[leap_day]), 0)
        year = century * 100 + _two_digits(date[leap_day], 0)
        bad[leap_day] |= (year % 4 != 0) | ((year % 100 == 0) & (year % 400 != 0))
    plain_lengths = lengths[plain]
    timed_shape = plain_lengths >= 16
    timed: slice | np.ndarray
    if timed_shape.all():  # a column of timestamps: no gathers of the timed ones
        timed, at, timed_lengths = slice(None), starts, plain_lengths
    else:
        timed = np.flatnonzero(timed_shape)
        at, timed_lengths = starts[timed], plain_lengths[timed]
    if len(at):
        # "2024-01-01+02:00" is 16 bytes too: a date with an offset, not a time.
        clock = _eight_bytes(data, at + 10)  # " hh:mm:s", and the last digit of the seconds
        gap = clock[:, 0]
        separated = (gap == ord(" ")) | (gap == ord("T"))
        other_shape[plain[timed][~separated]] = True
        bad_time = (_two_digits(clock, 1) > 23) | (_two_digits(clock, 4) > 59)
        last = data[np.minimum(at + 18, len(data) - 1)].astype(np.int16)  # past 16-byte values
        second = (clock[:, 7].astype(np.int16) * 10 + last - 528) > 59
        bad_time |= second & (timed_lengths == 19)
        bad[timed] |= bad_time & separated
    out_of_range = np.zeros(n, dtype=bool)
    out_of_range[plain[bad]] = True
    return out_of_range, other_shape


def _eight_bytes(data: np.ndarray, at: np.ndarray) -> np.ndarray:
    """The eight bytes of ``data`` from each position ``at`` (zero past the end), one row each:
    one gather for four two-digit fields instead of two gathers per field."""

    def words(source: np.ndarray, where: np.ndarray) -> np.ndarray:
        # Position i of this view is the eight bytes from source[i] (unaligned, no copy).
        view = np.ndarray((len(source) - 7,), dtype="<u8", buffer=source, strides=(1,))
        gathered: np.ndarray = view[where]
        return gathered

    whole = len(data) - 7  # positions with eight bytes to read
    if whole > 0 and (len(at) == 0 or at.max() < whole):
        found = words(data, at)
    else:  # the last values: read from a zero-padded copy of the last bytes only
        found = np.empty(len(at), dtype="<u8")
        near = at >= whole
        if whole > 0:
            found[~near] = words(data, at[~near])
        first = max(0, len(data) - 16)
        tail = np.zeros(24, dtype=np.uint8)
        tail[: len(data) - first] = data[first:]
        found[near] = words(tail, at[near] - first)
    rows: np.ndarray = found.view(np.uint8).reshape(len(at), 8)
    return rows


def _two_digits(rows: np.ndarray, byte: int) -> np.ndarray:
    """The number written as two ASCII digits at ``byte`` and ``byte + 1`` of each row."""
    tens = rows[:, byte].astype(np.int16)
    result: np.ndarray = tens * 10 + rows[:, byte + 1] - 528  # 10 * (a - 48) + (b - 48)
    return result

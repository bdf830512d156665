"""Distinct values of a number, date or timestamp column, counted without hashing.

A profile needs the exact count of distinct non-null values (NaN left out, -0.0 equal to 0.0,
the conventions of :mod:`gyre.datasets.profile`). For millions of values a hash table is slow
(Arrow's took 1.8 to 6.5 s for 5M distinct floats) and sorting costs n log n (0.3 to 0.5 s a
column). Most columns need neither: integers whose values span less than :data:`BITMAP_SPAN`
are marked in a table as wide as their range, chunk by chunk, where they lie (no copy of the
column). Two common shapes are brought into that range first, exactly:

* floats read from decimal text (prices, coordinates, scores) have a few decimals: times the
  smallest power of ten that makes every one of them whole, and back again, each value comes
  out as itself, so distinct floats are distinct integers;
* timestamps (and integers) that are all multiples of a power of ten apart from the smallest
  (timestamps in whole seconds held in microseconds) are divided by it.

Anything else is copied out once and sorted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pyarrow as pa


BITMAP_SPAN = 1 << 26  # values spanning less are counted in a table of this many bytes at most
_MAX_DECIMALS = 9  # floats with more are sorted
_EXACT = float(1 << 53)  # scaled floats must stay below this to be whole numbers exactly
_SAMPLE = 4096  # values the power of ten is chosen on before every chunk checks it
_STEP = 1 << 18  # values worked on at a time: a long chunk's temporaries stay small


def count_distinct_numbers(column: pa.ChunkedArray) -> int:
    """Distinct non-null values of a fixed-width column (floats: NaN left out, -0.0 = 0.0)."""
    import numpy as np
    import pyarrow as pa

    storage = column.type
    if pa.types.is_timestamp(storage) or pa.types.is_date64(storage):
        storage = pa.int64()
    elif pa.types.is_date32(storage):
        storage = pa.int32()
    pieces = _pieces(column, storage)
    if not pieces:
        return 0
    if pieces[0].dtype.kind == "f":
        counted = _count_scaled(pieces)
        return _count_sorted(pieces) if counted is None else counted
    low = min(int(p.min()) for p in pieces)
    high = max(int(p.max()) for p in pieces)
    if high - low < BITMAP_SPAN:
        kind = pieces[0].dtype
        if high - low <= np.iinfo(kind).max:
            start = kind.type(low)
            return _count_marked(pieces, high - low, lambda p, out: np.subtract(p, start, out=out))
        # A narrow type whose range overflows it (int8 from -128 to 127).
        return _count_marked(
            pieces, high - low, lambda p, out: np.subtract(p.astype(np.int64), low, out=out)
        )
    step = _common_step(pieces, low, high)
    if step is not None:
        first = pieces[0].dtype.type(low)
        left = _pooled(max(len(p) for p in pieces), np.dtype(np.intp))

        def index(piece: np.ndarray, out: np.ndarray) -> None:
            np.subtract(piece, first, out=out)
            np.divmod(out, step, out=(out, left[: len(piece)]))
            # Every piece is checked, not only the sample the step was chosen on.
            if left[: len(piece)].any():
                raise _NotWhole

        try:
            return _count_marked(pieces, (high - low) // step, index)
        except _NotWhole:
            pass  # the sample agreed, the whole column does not
    return _count_sorted(pieces)


def _pooled(count: int, dtype: np.dtype[Any]) -> np.ndarray:
    """An uninitialised numpy array of ``count`` values in memory from Arrow's pool (numpy's own
    arrays of tens of MB come from the kernel as fresh pages each time, which cost more to
    fault in than the counting; the pool hands back memory freed before)."""
    import numpy as np
    import pyarrow as pa

    return np.frombuffer(pa.allocate_buffer(max(count, 1) * dtype.itemsize), dtype, count)


def _pieces(column: pa.ChunkedArray, storage: pa.DataType) -> list[np.ndarray]:
    """The column's non-null values as numpy views of its chunks, at most :data:`_STEP` long
    (a chunk with nulls is copied without them)."""
    import pyarrow.compute as pc

    pieces: list[np.ndarray] = []
    for chunk in column.chunks:
        values = pc.drop_null(chunk) if chunk.null_count else chunk
        numbers = values.view(storage).to_numpy()
        pieces.extend(numbers[at : at + _STEP] for at in range(0, len(numbers), _STEP))
    return pieces


def _count_marked(
    pieces: list[np.ndarray], span: int, index: Callable[[np.ndarray, np.ndarray], object]
) -> int:
    """Distinct values, each piece marked where ``index(piece, out)`` puts it (from 0 to
    ``span``, written into ``out``). Every piece goes through the same scratch array: numpy's
    temporaries of a few MB each came from the kernel as fresh pages again and again."""
    import numpy as np

    seen = _pooled(span + 1, np.dtype(bool))
    seen.fill(False)
    scratch = _pooled(max(len(p) for p in pieces), np.dtype(np.intp))
    for piece in pieces:
        at = scratch[: len(piece)]
        index(piece, at)
        seen[at] = True
    return int(np.count_nonzero(seen))


def _count_scaled(pieces: list[np.ndarray]) -> int | None:
    """Distinct floats read from decimals (see :func:`_decimal_scale`), marked as whole numbers;
    None where they are not all such floats or span too much (the caller sorts them)."""
    import numpy as np

    scale = _decimal_scale(_sample(pieces))
    if scale is None:
        return None
    low = min(float(p.min()) for p in pieces)  # NaN and infinities stop here
    high = max(float(p.max()) for p in pieces)
    if not (np.isfinite(low) and np.isfinite(high)):
        return None
    first, last = float(np.rint(low * scale)), float(np.rint(high * scale))
    if max(abs(first), abs(last)) >= _EXACT or last - first >= BITMAP_SPAN:
        return None  # past 2**53 the scaled values are not exact integers; or too wide
    kind = pieces[0].dtype
    scaled = _pooled(max(len(p) for p in pieces), kind)
    back = _pooled(len(scaled), kind)

    def index(piece: np.ndarray, out: np.ndarray) -> None:
        times, again = scaled[: len(piece)], back[: len(piece)]
        np.multiply(piece, scale, out=times)
        np.rint(times, out=times)
        # Every piece is checked, not only the sample the scale was chosen on.
        if not np.array_equal(np.divide(times, scale, out=again), piece):
            raise _NotWhole
        np.subtract(times, first, out=times)
        out[:] = times

    try:
        return _count_marked(pieces, int(last - first), index)
    except _NotWhole:
        return None


class _NotWhole(Exception):
    """A piece has a value the scale or step chosen on the sample does not make whole."""


def _count_sorted(pieces: list[np.ndarray]) -> int:
    """Distinct values by sorting one copy of them all, in memory from Arrow's pool."""
    import numpy as np

    numbers = _pooled(sum(len(p) for p in pieces), pieces[0].dtype)
    at = 0
    for piece in pieces:
        numbers[at : at + len(piece)] = piece
        at += len(piece)
    if numbers.dtype.kind == "f":
        np.add(numbers, 0.0, out=numbers)  # -0.0 + 0.0 is 0.0
        numbers.sort()  # NaN sorts last
        numbers = numbers[: len(numbers) - int(np.count_nonzero(np.isnan(numbers)))]
    else:
        numbers.sort()
    if len(numbers) == 0:
        return 0
    return int(np.count_nonzero(numbers[1:] != numbers[:-1])) + 1


def _decimal_scale(sample: np.ndarray) -> float | None:
    """The smallest power of ten (up to 10**9) that makes every float of ``sample`` whole, such
    that each whole number divides back into exactly the float it came from; None where none
    does.

    Distinct floats then stay distinct: two that scaled to the same whole number would both
    equal that number divided back. -0.0 and 0.0 both become 0; NaN and infinities never pass.
    """
    return next((10.0**k for k in range(_MAX_DECIMALS + 1) if _is_whole_at(sample, 10.0**k)), None)


def _sample(pieces: list[np.ndarray]) -> np.ndarray:
    """About :data:`_SAMPLE` values spread evenly over all the pieces."""
    import numpy as np

    stride = max(1, sum(len(p) for p in pieces) // _SAMPLE)
    return np.concatenate([p[::stride] for p in pieces])


def _is_whole_at(values: np.ndarray, scale: float) -> bool:
    import numpy as np

    # Infinities and NaN stay what they are and fail the comparison: no warnings needed.
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = np.rint(values * scale)
        # Below 2**53 every whole float is an exact integer, and int64 holds it.
        return bool(np.all(np.abs(scaled) < _EXACT) and np.array_equal(scaled / scale, values))


def _common_step(pieces: list[np.ndarray], low: int, high: int) -> int | None:
    """The largest power of ten that every sampled value's distance from ``low`` is a multiple
    of, where it brings the span (``high - low``) under :data:`BITMAP_SPAN` (timestamps in whole
    seconds, or minutes, held in microseconds); None where none does. The marking checks every
    value."""
    import numpy as np

    span = high - low
    if span > np.iinfo(pieces[0].dtype).max:  # the distances would overflow the type
        return None
    sample = _sample(pieces) - pieces[0].dtype.type(low)
    for k in range(18, 0, -1):
        step = 10**k
        if step <= span and span // step < BITMAP_SPAN and not np.any(sample % step):
            return int(step)
    return None

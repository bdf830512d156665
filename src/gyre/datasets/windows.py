"""Time windows and holdout splits over dataset tables, described so they can be replayed.

Training records *how* it split its data (a :class:`Split`), not the rows themselves; the
validate stage replays the same split to score the champion on exactly the candidate's
holdout, and the monitor reads the training window to build its reference profile.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from gyre.core.errors import DataError

if TYPE_CHECKING:
    import pyarrow as pa


class Split(BaseModel):
    """Which rows trained a model and which validated it.

    Time-based: rows with ``start <= time_column <= train_end`` train, rows after ``train_end``
    up to ``end`` validate. Row-based (no time column): the first ``train_rows`` rows train and
    the rest validate.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str  # the dataset version, NAME@N
    time_column: str | None = None
    start: str | None = None
    train_end: str | None = None
    end: str | None = None
    train_rows: int | None = None

    def describe(self) -> str:
        if self.time_column:
            return (
                f"{self.data}: train {self.start}..{self.train_end}, "
                f"validate after {self.train_end}..{self.end}"
            )
        return f"{self.data}: first {self.train_rows} rows train, the rest validate"


def _as_python(value: Any) -> date | datetime:
    if isinstance(value, datetime | date):
        return value
    raise DataError(f"time column values must be dates or timestamps, not {type(value).__name__}")


def _bound(table: pa.Table, column: str, text: str) -> Any:
    import pyarrow as pa

    kind = table.schema.field(column).type
    if pa.types.is_date(kind):
        return pa.scalar(date.fromisoformat(text[:10]), type=kind)
    return pa.scalar(datetime.fromisoformat(text), type=kind)


def time_range(table: pa.Table, column: str) -> tuple[date | datetime, date | datetime]:
    import pyarrow.compute as pc

    if column not in table.column_names:
        raise DataError(
            f"time column '{column}' is not in the data; columns are: "
            + ", ".join(table.column_names),
            hint="fix models.<name>.time_column in gyre.yaml",
        )
    bounds = pc.min_max(table[column]).as_py()
    if bounds["min"] is None:
        raise DataError(f"time column '{column}' has no values")
    return _as_python(bounds["min"]), _as_python(bounds["max"])


def last_days(table: pa.Table, column: str, days: int) -> pa.Table:
    """Rows whose ``column`` lies within ``days`` days of the newest value."""
    import pyarrow.compute as pc

    _, newest = time_range(table, column)
    cutoff = newest - timedelta(days=days)
    return table.filter(pc.greater(table[column], _bound(table, column, cutoff.isoformat())))


def split_table(
    table: pa.Table,
    *,
    data_ref: str,
    time_column: str | None,
    validation_days: int | None,
    validation_fraction: float | None,
) -> tuple[pa.Table, pa.Table, Split]:
    """Split into (train, validation, description of the split)."""
    if validation_days is not None:
        if not time_column:
            raise DataError(
                "validation by last_days needs a time_column",
                hint="set models.<name>.time_column, or use validation: {fraction: 0.2}",
            )
        oldest, newest = time_range(table, time_column)
        cut = newest - timedelta(days=validation_days)
        split = Split(
            data=data_ref,
            time_column=time_column,
            start=oldest.isoformat(),
            train_end=cut.isoformat(),
            end=newest.isoformat(),
        )
    else:
        fraction = validation_fraction if validation_fraction is not None else 0.2
        split = Split(data=data_ref, train_rows=round(table.num_rows * (1 - fraction)))
    train, valid = apply_split(table, split)
    if train.num_rows == 0 or valid.num_rows == 0:
        raise DataError(
            f"the split {split.describe()} leaves {train.num_rows} training and "
            f"{valid.num_rows} validation rows",
            hint="use more data, or a shorter validation window",
        )
    return train, valid, split


def apply_split(table: pa.Table, split: Split) -> tuple[pa.Table, pa.Table]:
    import pyarrow.compute as pc

    if split.time_column:
        column = table[split.time_column]
        assert split.start and split.train_end and split.end
        start = _bound(table, split.time_column, split.start)
        train_end = _bound(table, split.time_column, split.train_end)
        end = _bound(table, split.time_column, split.end)
        train = table.filter(
            pc.and_(pc.greater_equal(column, start), pc.less_equal(column, train_end))
        )
        valid = table.filter(pc.and_(pc.greater(column, train_end), pc.less_equal(column, end)))
        return train, valid
    assert split.train_rows is not None
    return table.slice(0, split.train_rows), table.slice(split.train_rows)

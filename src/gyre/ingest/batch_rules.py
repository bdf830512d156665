"""Contract rules that judge a whole batch rather than its rows: how many rows, how fresh.

A row that breaks a rule is quarantined and the rest of the batch goes on; these rules have no
row to blame. A feed that delivered 12 rows instead of 17,000, or yesterday's export again, is
wrong as a whole, so :func:`check_row_count` and :func:`check_freshness` raise
:class:`~gyre.core.errors.BatchRefusedError` and :func:`gyre.ingest.contract.check` lets
nothing of the batch through. Durations are strict (``45m``, ``2h``, ``3d``, ``1w``): a typo
such as ``2 hours`` must fail when the contract is loaded, not silently mean something else.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gyre.core.errors import BatchRefusedError
from gyre.core.yaml_positions import Problem

if TYPE_CHECKING:
    from gyre.ingest.contract import Contract

_DURATION = re.compile(r"([1-9][0-9]{0,5})([mhdw])")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_DURATION_HELP = "expected a duration such as 45m, 2h, 3d or 1w (minutes, hours, days, weeks)"


def parse_duration(text: str) -> dt.timedelta:
    """``45m``, ``2h``, ``3d`` or ``1w`` as a timedelta; anything else raises ValueError."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{_DURATION_HELP}, got '{text}'")
    return dt.timedelta(**{_DURATION_UNITS[match[2]]: int(match[1])})


class RowBounds(BaseModel):
    """How many rows a batch may have; a batch outside is refused whole."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)


class Freshness(BaseModel):
    """The newest value of ``column`` must be at most ``max_age`` old when the batch arrives."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str = Field(min_length=1)
    max_age: str

    @field_validator("max_age", mode="before")
    @classmethod
    def _is_duration(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError(f"{_DURATION_HELP}, got {value!r}")
        parse_duration(value)
        return value

    @property
    def limit(self) -> dt.timedelta:
        return parse_duration(self.max_age)


def batch_problems(contract: Contract) -> list[Problem]:
    """What is wrong with a parsed contract's ``rows`` and ``freshness``, keyed for line lookup."""
    problems: list[Problem] = []
    specs = {c.name: c for c in contract.columns}
    bounds = contract.rows
    if bounds is not None:
        if bounds.min is None and bounds.max is None:
            problems.append(Problem(("rows",), "give `min`, `max` or both"))
        elif bounds.min is not None and bounds.max is not None and bounds.min > bounds.max:
            problems.append(
                Problem(("rows", "max"), f"the range is empty: min {bounds.min} > max {bounds.max}")
            )
    fresh = contract.freshness
    if fresh is not None:
        where = ("freshness", "column")
        if fresh.column not in specs:
            problems.append(Problem(where, f"'{fresh.column}' is not a declared column"))
        elif (kind := specs[fresh.column].type) not in ("date", "timestamp"):
            problems.append(
                Problem(
                    where,
                    f"'{fresh.column}' is {'an' if kind[0] in 'aeiou' else 'a'} {kind} column; "
                    "freshness needs a date or timestamp column",
                )
            )
    return problems


def check_row_count(contract: Contract, rows_in: int, file: str | None) -> None:
    """Refuse the whole batch (:class:`~gyre.core.errors.BatchRefusedError`) when ``rows_in``
    is outside ``rows``."""
    bounds = contract.rows
    if bounds is None:
        return
    where = f"{file}: " if file else ""
    if bounds.min is not None and rows_in < bounds.min:
        raise BatchRefusedError(
            f"{where}{rows_in} rows read, fewer than the contract's minimum of {bounds.min} "
            "(rows.min); the batch is refused as a whole",
            hint="is the feed truncated? Check the source's export; if batches this small are "
            "expected, lower `rows.min` in the contract",
        )
    if bounds.max is not None and rows_in > bounds.max:
        raise BatchRefusedError(
            f"{where}{rows_in} rows read, more than the contract's maximum of {bounds.max} "
            "(rows.max); the batch is refused as a whole",
            hint="is the feed duplicated? Check the source's export; if batches this large are "
            "expected, raise `rows.max` in the contract",
        )


def check_freshness(
    freshness: Freshness,
    newest: dt.date | dt.datetime | None,
    file: str | None,
    *,
    now: dt.datetime | None = None,
) -> None:
    """Refuse the batch (:class:`~gyre.core.errors.BatchRefusedError`) when ``newest`` is
    older than ``max_age`` at ``now``.

    ``newest`` is the newest accepted value (naive UTC for a timestamp); None is not judged.
    """
    if newest is None:
        return
    at = naive_utc(now) if now is not None else dt.datetime.now(dt.UTC).replace(tzinfo=None)
    if isinstance(newest, dt.datetime):
        age = at - newest
    else:  # a date lasts until its midnight
        age = at - (dt.datetime(newest.year, newest.month, newest.day) + dt.timedelta(days=1))
    if age <= freshness.limit:
        return
    where = f"{file}: " if file else ""
    raise BatchRefusedError(
        f"{where}stale batch: the newest {freshness.column} is {newest}, {_format_age(age)} old "
        f"at {at:%Y-%m-%d %H:%M} UTC, older than the contract's limit of {freshness.max_age} "
        "(freshness.max_age); the batch is refused as a whole",
        hint="is the feed stuck or replaying old data? Check the source; for a deliberate "
        "backfill, relax or remove `freshness` in the contract",
    )


def _format_age(age: dt.timedelta) -> str:
    minutes = int(age.total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    parts = [(days, "d"), (rest // 60, "h"), (rest % 60, "m")]
    return " ".join(f"{v}{unit}" for v, unit in parts if v) or "0m"


def naive_utc(value: dt.datetime) -> dt.datetime:
    """``value`` as naive UTC wall time, the form timestamps take in accepted tables."""
    if value.tzinfo is None:
        return value
    return value.astimezone(dt.UTC).replace(tzinfo=None)

"""Feedback: ground-truth labels that arrive after a prediction, matched back to it by request id.

Labels come late and from elsewhere (a CRM export, a human review queue), so they are stored on
their own and joined to the inference log when performance is computed. A label names the
prediction by ``request_id`` and ``row`` (the row index within that request, 0 for single-row
requests). Sending a label twice is allowed: the latest ``time`` wins.

    root/date=<YYYY-MM-DD>/part-<uuid>.parquet     (date = UTC day the label was recorded)

    feedback = FeedbackLog(Path(".gyre/feedback"), inference=log)
    feedback.append(pa.table({"request_id": ["r1"], "row": [0], "label": [1.0]}))
    report = feedback.join_report("churn", start, end)
    report.table         # inference rows that have a label, with `label` and `label_time`
    report.unmatched     # labels whose request id and row were never logged: report them
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from gyre.core.errors import DataError
from gyre.monitor.inference_log import (
    INFERENCE_SCHEMA,
    TIMESTAMP,
    InferenceLog,
    check_aware,
    duckdb_connection,
    to_arrow,
    write_part,
)

__all__ = ["FEEDBACK_SCHEMA", "FeedbackJoin", "FeedbackLog"]

FEEDBACK_SCHEMA: Final = pa.schema(
    [
        pa.field("request_id", pa.string(), nullable=False),
        pa.field("row", pa.int64(), nullable=False),
        pa.field("label", pa.float64(), nullable=False),
        pa.field("time", TIMESTAMP, nullable=False),
    ]
)
_JOINED_EXTRA: Final = [pa.field("label", pa.float64()), pa.field("label_time", TIMESTAMP)]


@dataclass(frozen=True)
class FeedbackJoin:
    """Inference rows joined with their latest label, and what did not join.

    ``labels`` counts every feedback row stored; ``superseded`` those replaced by a later label
    for the same prediction; ``unmatched`` those whose ``(request_id, row)`` appears nowhere in
    the inference log (any endpoint, any time: typos, or predictions still in a writer's buffer).
    """

    table: pa.Table
    labels: int
    superseded: int
    unmatched: int

    @property
    def matched(self) -> int:
        return int(self.table.num_rows)


def _conform(records: pa.Table, now: datetime) -> pa.Table:
    names = records.column_names
    for required in ("request_id", "label"):
        if required not in names:
            raise DataError(
                f"feedback records lack the '{required}' column",
                hint="each label needs request_id and label (row defaults to 0, time to now)",
            )
    extra = sorted(set(names) - set(FEEDBACK_SCHEMA.names))
    if extra:
        raise DataError(
            f"feedback records have unexpected column(s) {', '.join(extra)}",
            hint="feedback columns are request_id, row, label and time",
        )
    n = records.num_rows
    defaults = {
        "row": pa.array([0] * n, pa.int64()),
        "time": pa.array([now] * n, TIMESTAMP),
    }
    columns = []
    for field in FEEDBACK_SCHEMA:
        column = records.column(field.name) if field.name in names else defaults[field.name]
        kind = column.type
        if field.name == "time" and (not pa.types.is_timestamp(kind) or kind.tz is None):
            raise DataError(
                f"feedback column 'time' has type {kind}, not a time-zone-aware timestamp",
                hint="send time as pa.timestamp('us', tz='UTC'), or leave it out for 'now'",
            )
        try:
            column = column.cast(field.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise DataError(
                f"feedback column '{field.name}' of type {kind} cannot be read as "
                f"{field.type}: {exc}",
                hint="labels are numbers: the true value, or the class as 0/1/2...",
            ) from exc
        if column.null_count:
            raise DataError(
                f"feedback has {column.null_count} null value(s) in '{field.name}'",
                hint="drop rows without a label before sending them",
            )
        if field.name == "label" and not pc.all(pc.is_finite(column)).as_py():
            raise DataError("feedback labels must be finite numbers (no NaN or infinity)")
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=FEEDBACK_SCHEMA)


class FeedbackLog:
    """Append-only label store for one project, joined against one :class:`InferenceLog`."""

    def __init__(self, root: Path, inference: InferenceLog) -> None:
        self.root = Path(root)
        self.inference = inference

    def append(self, records: pa.Table) -> list[Path]:
        """Store labels now (no buffering: feedback is rare and must not be lost)."""
        if records.num_rows == 0:
            return []
        table = _conform(records, datetime.now(UTC))
        days = pc.strftime(table.column("time"), format="%Y-%m-%d")
        written = []
        for day in sorted(pc.unique(days).to_pylist()):
            part = table.filter(pc.equal(days, day))
            written.append(write_part(part, self.root / f"date={day}"))
        return written

    def _pattern(self) -> str | None:
        if not any(self.root.glob("date=*/*.parquet")):
            return None
        return str(self.root / "date=*" / "*.parquet")

    def read(self) -> pa.Table:
        """Every label stored, oldest first (superseded ones included)."""
        pattern = self._pattern()
        if pattern is None:
            return FEEDBACK_SCHEMA.empty_table()
        con = duckdb_connection()
        try:
            relation = con.sql(
                'SELECT request_id, "row", label, time FROM read_parquet(?, '
                "hive_partitioning = false, union_by_name = true) "
                'ORDER BY time, request_id, "row"',
                params=[pattern],
            )
            return to_arrow(relation).cast(FEEDBACK_SCHEMA)
        finally:
            con.close()

    def join(
        self, endpoint: str, start: datetime | None = None, end: datetime | None = None
    ) -> pa.Table:
        """Inference rows of ``endpoint`` in ``[start, end)`` that have a label (latest wins)."""
        return self.join_report(endpoint, start, end).table

    def join_report(
        self, endpoint: str, start: datetime | None = None, end: datetime | None = None
    ) -> FeedbackJoin:
        """:meth:`join`, plus counts of labels stored, superseded and unmatched."""
        check_aware(start, "start")
        check_aware(end, "end")
        feedback = self._pattern()
        if feedback is None:
            return FeedbackJoin(self._empty_join(), labels=0, superseded=0, unmatched=0)
        feedback_cte = (
            'feedback AS (SELECT request_id, "row", label, time AS label_time, filename '
            "FROM read_parquet(?, hive_partitioning = false, union_by_name = true, "
            "filename = true))"
        )
        con = duckdb_connection()
        try:
            labels, distinct, unmatched = self._counts(con, feedback_cte, feedback)
            if self.inference.parts(endpoint):
                sql, params = self.inference.select_sql(endpoint, start, end)
                # Latest label wins; equal times fall back to the part file name so the choice
                # is stable from one query to the next.
                joined = to_arrow(
                    con.sql(
                        f"WITH inference AS ({sql}), {feedback_cte}, "
                        'latest AS (SELECT request_id, "row", label, label_time FROM feedback '
                        'QUALIFY row_number() OVER (PARTITION BY request_id, "row" '
                        "ORDER BY label_time DESC, filename DESC) = 1) "
                        "SELECT i.*, l.label, l.label_time FROM inference AS i JOIN latest AS l "
                        'ON i.request_id = l.request_id AND i."row" = l."row" '
                        'ORDER BY i.time, i.request_id, i."row"',
                        params=[*params, feedback],
                    )
                )
                table = self._order(joined)
            else:
                table = self._empty_join()
        finally:
            con.close()
        return FeedbackJoin(table, labels=labels, superseded=labels - distinct, unmatched=unmatched)

    def _counts(self, con: Any, feedback_cte: str, feedback: str) -> tuple[int, int, int]:
        """Feedback rows, distinct predictions labelled, and rows matching no logged prediction."""
        root = self.inference.root
        if any(root.glob("endpoint=*/date=*/*.parquet")):
            logged = (
                'SELECT DISTINCT request_id, "row" FROM read_parquet(?, '
                "hive_partitioning = false, union_by_name = true)"
            )
            params = [feedback, str(root / "endpoint=*" / "date=*" / "*.parquet")]
        else:  # nothing logged yet: every label is unmatched
            logged = 'SELECT NULL::VARCHAR AS request_id, NULL::BIGINT AS "row" WHERE FALSE'
            params = [feedback]
        row = con.execute(
            f"WITH {feedback_cte}, logged AS ({logged}) "
            'SELECT count(*), count(DISTINCT (f.request_id, f."row")), '
            "count(*) FILTER (WHERE l.request_id IS NULL) FROM feedback AS f "
            'LEFT JOIN logged AS l ON f.request_id = l.request_id AND f."row" = l."row"',
            params,
        ).fetchall()
        labels, distinct, unmatched = row[0]
        return int(labels), int(distinct), int(unmatched)

    @staticmethod
    def _order(joined: pa.Table) -> pa.Table:
        features = [n for n in joined.column_names if n.startswith("in__")]
        return joined.select([*INFERENCE_SCHEMA.names, *features, "label", "label_time"])

    @staticmethod
    def _empty_join() -> pa.Table:
        return pa.schema([*INFERENCE_SCHEMA, *_JOINED_EXTRA]).empty_table()

"""Feedback labels: stored atomically, joined to predictions (latest wins), strays counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gyre.core.errors import DataError, MonitorError
from gyre.monitor.feedback import FEEDBACK_SCHEMA, FeedbackLog
from gyre.monitor.inference_log import INFERENCE_SCHEMA, InferenceLog
from gyre.monitor.performance import window_performance

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def predictions(endpoint: str, request: str, rows: int, when: datetime) -> pa.Table:
    return pa.table(
        {
            "request_id": [request] * rows,
            "row": list(range(rows)),
            "time": pa.array([when] * rows, TS),
            "endpoint": [endpoint] * rows,
            "model": ["m"] * rows,
            "model_version": [1] * rows,
            "latency_ms": [2.0] * rows,
            "output": [0.5 + r for r in range(rows)],
            "in__x": [float(r) for r in range(rows)],
        }
    )


def labels(*items: tuple[str, int, float, datetime]) -> pa.Table:
    request, row, label, when = zip(*items, strict=True)
    return pa.table(
        {
            "request_id": list(request),
            "row": list(row),
            "label": list(label),
            "time": pa.array(list(when), TS),
        }
    )


@pytest.fixture
def logs(tmp_path: Path) -> tuple[InferenceLog, FeedbackLog]:
    inference = InferenceLog(tmp_path / "inference")
    inference.append(predictions("churn", "r1", 2, T0))
    inference.append(predictions("churn", "r2", 1, T0 + timedelta(days=1)))
    inference.append(predictions("other", "r3", 1, T0))
    inference.flush()
    return inference, FeedbackLog(tmp_path / "feedback", inference)


def test_join_keeps_the_latest_label_and_counts_strays(
    logs: tuple[InferenceLog, FeedbackLog],
) -> None:
    _, feedback = logs
    feedback.append(
        labels(
            ("r1", 0, 1.0, T0 + timedelta(hours=1)),
            ("r2", 0, 3.0, T0 + timedelta(days=2)),
            ("r3", 0, 1.0, T0 + timedelta(hours=1)),  # another endpoint: matched, not joined here
            ("nobody", 0, 1.0, T0),  # unknown request id
            ("r1", 7, 1.0, T0),  # known request, unknown row
        )
    )
    feedback.append(labels(("r1", 0, 0.0, T0 + timedelta(hours=5))))  # later: replaces 1.0
    feedback.append(labels(("r1", 0, 9.0, T0 + timedelta(hours=3))))  # sent last, but older

    report = feedback.join_report("churn")
    rows = report.table.to_pylist()
    assert [(r["request_id"], r["row"], r["label"]) for r in rows] == [
        ("r1", 0, 0.0),
        ("r2", 0, 3.0),
    ]
    assert rows[0]["label_time"] == T0 + timedelta(hours=5)
    assert rows[0]["in__x"] == 0.0 and rows[0]["output"] == 0.5
    assert report.table.schema.names == [
        *INFERENCE_SCHEMA.names,
        "in__x",
        "label",
        "label_time",
    ]
    assert report.labels == 7
    assert report.superseded == 2
    assert report.unmatched == 2
    assert report.matched == 2
    assert feedback.join("churn").equals(report.table)


def test_join_respects_the_inference_time_window(logs: tuple[InferenceLog, FeedbackLog]) -> None:
    _, feedback = logs
    feedback.append(labels(("r1", 0, 1.0, T0), ("r1", 1, 0.0, T0), ("r2", 0, 1.0, T0)))
    first_day = feedback.join("churn", start=T0, end=T0 + timedelta(days=1))
    assert first_day.column("request_id").to_pylist() == ["r1", "r1"]
    assert feedback.join("churn", start=T0 + timedelta(days=1)).num_rows == 1
    with pytest.raises(MonitorError, match="no time zone"):
        feedback.join("churn", start=datetime(2024, 5, 1))


def test_defaults_row_zero_and_time_now(logs: tuple[InferenceLog, FeedbackLog]) -> None:
    _, feedback = logs
    before = datetime.now(UTC)
    written = feedback.append(pa.table({"request_id": ["r2"], "label": [1]}))
    assert len(written) == 1 and written[0].parent.name.startswith("date=")
    [stored] = feedback.read().to_pylist()
    assert stored["row"] == 0 and stored["label"] == 1.0
    assert before - timedelta(seconds=1) <= stored["time"] <= datetime.now(UTC)
    assert feedback.join("churn").column("request_id").to_pylist() == ["r2"]


def test_empty_cases(tmp_path: Path) -> None:
    inference = InferenceLog(tmp_path / "inference")
    feedback = FeedbackLog(tmp_path / "feedback", inference)
    nothing = feedback.join_report("churn")
    assert nothing.table.num_rows == 0 and nothing.labels == 0
    assert nothing.table.schema.names[-2:] == ["label", "label_time"]
    assert feedback.read().schema == FEEDBACK_SCHEMA
    feedback.append(labels(("r1", 0, 1.0, T0)))
    orphans = feedback.join_report("churn")  # labels but no predictions at all
    assert orphans.table.num_rows == 0 and orphans.unmatched == 1


@pytest.mark.parametrize(
    ("table", "needle"),
    [
        (pa.table({"request_id": ["r1"]}), "lack the 'label' column"),
        (pa.table({"request_id": ["r1"], "label": pa.array([None], pa.float64())}), "null value"),
        (pa.table({"request_id": ["r1"], "label": [float("nan")]}), "finite"),
        (pa.table({"request_id": ["r1"], "label": ["yes"]}), "cannot be read as double"),
        (pa.table({"request_id": ["r1"], "label": [1.0], "who": ["me"]}), "unexpected column"),
        (
            pa.table(
                {
                    "request_id": ["r1"],
                    "label": [1.0],
                    "time": pa.array([datetime(2024, 5, 1)], pa.timestamp("us")),
                }
            ),
            "time-zone-aware",
        ),
    ],
)
def test_bad_feedback_is_refused(
    logs: tuple[InferenceLog, FeedbackLog], table: pa.Table, needle: str
) -> None:
    _, feedback = logs
    with pytest.raises(DataError, match=needle):
        feedback.append(table)
    assert feedback.read().num_rows == 0


def test_joined_feedback_feeds_window_performance(
    logs: tuple[InferenceLog, FeedbackLog],
) -> None:
    _, feedback = logs
    feedback.append(labels(("r1", 0, 1.5, T0), ("r1", 1, 1.0, T0), ("r2", 0, 0.0, T0)))
    daily = window_performance(feedback.join("churn"), "mae", by="day").to_pylist()
    # day 1: |1.5-0.5| and |1.0-1.5| -> 0.75; day 2: |0.0-0.5| -> 0.5
    assert [(d["window_start"].day, d["n"], d["value"]) for d in daily] == [
        (1, 2, 0.75),
        (2, 1, 0.5),
    ]


_event = st.tuples(
    st.sampled_from(["r1", "r2", "ghost"]),
    st.integers(0, 2),
    st.integers(-5, 5).map(float),
    st.integers(0, 50).map(lambda m: T0 + timedelta(minutes=m)),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(batches=st.lists(st.lists(_event, min_size=1, max_size=4), min_size=1, max_size=4))
def test_latest_label_wins_like_a_dictionary(tmp_path: Path, batches: list[list[Any]]) -> None:
    root = tmp_path / f"case-{len(list(tmp_path.iterdir()))}"
    inference = InferenceLog(root / "inference")
    inference.append(predictions("churn", "r1", 2, T0))
    inference.append(predictions("churn", "r2", 1, T0))
    inference.flush()
    feedback = FeedbackLog(root / "feedback", inference)
    for batch in batches:
        feedback.append(labels(*batch))

    events = [e for batch in batches for e in batch]
    known = {("r1", 0), ("r1", 1), ("r2", 0)}
    latest: dict[tuple[str, int], tuple[datetime, float]] = {}
    for request, row, label, when in events:
        key = (request, row)
        if key not in latest or when > latest[key][0]:
            latest[key] = (when, label)
    expected = {k: v for k, v in latest.items() if k in known}

    report = feedback.join_report("churn")
    got = {
        (r["request_id"], r["row"]): (r["label_time"], r["label"]) for r in report.table.to_pylist()
    }
    # equal times may keep either label, so compare the times and, where unique, the labels
    assert {k: t for k, (t, _) in got.items()} == {k: t for k, (t, _) in expected.items()}
    for key, (when, label) in got.items():
        tied = {lab for req, row, lab, w in events if (req, row) == key and w == when}
        assert label in tied
    assert report.labels == len(events)
    assert report.unmatched == sum((r, i) not in known for r, i, _, _ in events)
    assert report.superseded == len(events) - len({(r, i) for r, i, _, _ in events})

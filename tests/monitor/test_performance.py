"""Performance metrics against scikit-learn, and per-window scoring against a hand grouping."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from gyre.core.errors import MonitorError
from gyre.monitor.performance import (
    METRICS,
    accuracy,
    f1,
    mae,
    mape,
    r2,
    rmse,
    window_performance,
)

reals = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False)


@st.composite
def pairs(draw: st.DrawFn, elements: st.SearchStrategy[float] = reals) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(2, 200))
    y_true = draw(arrays(np.float64, n, elements=elements))
    y_pred = draw(arrays(np.float64, n, elements=reals))
    return y_true, y_pred


@st.composite
def classes(draw: st.DrawFn, k: int) -> tuple[np.ndarray, ...]:
    n = draw(st.integers(1, 200))
    labels = st.integers(0, k - 1).map(float)
    return (
        draw(arrays(np.float64, n, elements=labels)),
        draw(arrays(np.float64, n, elements=labels)),
    )


@settings(max_examples=150, deadline=None)
@given(pair=pairs())
def test_regression_metrics_equal_sklearn(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = pair
    assert mae(t, p) == pytest.approx(skm.mean_absolute_error(t, p), rel=1e-12, abs=1e-12)
    assert rmse(t, p) == pytest.approx(skm.root_mean_squared_error(t, p), rel=1e-12, abs=1e-12)
    assert r2(t, p) == pytest.approx(skm.r2_score(t, p), rel=1e-9, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(pair=pairs(st.one_of(st.floats(0.01, 1e4), st.floats(-1e4, -0.01))))
def test_mape_equals_sklearn_without_zero_labels(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = pair
    assert mape(t, p) == pytest.approx(
        skm.mean_absolute_percentage_error(t, p), rel=1e-12, abs=1e-12
    )


def test_mape_leaves_out_zero_labels() -> None:
    assert mape([0.0, 2.0, 4.0], [5.0, 1.0, 5.0]) == pytest.approx((0.5 + 0.25) / 2)
    assert math.isnan(mape([0.0, 0.0], [1.0, 2.0]))


@pytest.mark.parametrize(
    ("t", "p"), [([3.0, 3.0, 3.0], [3.0, 3.0, 3.0]), ([3.0, 3.0, 3.0], [1.0, 3.0, 5.0])]
)
def test_r2_of_constant_labels_matches_sklearn(t: list[float], p: list[float]) -> None:
    assert r2(t, p) == skm.r2_score(t, p)
    assert math.isnan(r2([1.0], [2.0]))


@settings(max_examples=150, deadline=None)
@given(pair=classes(2))
def test_binary_classification_metrics_equal_sklearn(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = pair
    assert accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p), rel=1e-12)
    assert f1(t, p) == pytest.approx(skm.f1_score(t, p, zero_division=0.0), rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(pair=classes(4))
def test_macro_f1_equals_sklearn(pair: tuple[np.ndarray, np.ndarray]) -> None:
    t, p = pair
    expected = skm.f1_score(t, p, average="macro", zero_division=0.0)
    assert f1(t, p, average="macro") == pytest.approx(expected, rel=1e-12)
    assert accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p), rel=1e-12)


@pytest.mark.parametrize(
    ("t", "p", "needle"),
    [
        ([1.0, 2.0], [1.0], "as many predictions"),
        ([], [], "no rows"),
        ([1.0, float("nan")], [1.0, 2.0], "NaN"),
    ],
)
def test_bad_inputs_raise(t: list[float], p: list[float], needle: str) -> None:
    for metric in METRICS.values():
        with pytest.raises(MonitorError, match=needle):
            metric(np.asarray(t), np.asarray(p))
    with pytest.raises(MonitorError, match="unknown F1 average"):
        f1([1.0], [1.0], average="micro")  # type: ignore[arg-type]


# -- windows -------------------------------------------------------------------------------------


def _joined(rng: np.random.Generator, n: int = 400) -> pa.Table:
    start = datetime(2024, 1, 25, tzinfo=UTC)  # spans a month end and several ISO weeks
    times = [start + timedelta(minutes=int(m)) for m in np.sort(rng.integers(0, 60 * 24 * 20, n))]
    label = rng.normal(10.0, 3.0, n).round(2)
    output = (label + rng.normal(0.0, 1.0, n)).round(2)
    label[::37] = np.nan  # rows without feedback are skipped
    return pa.table(
        {
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
            "label": pa.array(label, from_pandas=True),
            "output": output,
        }
    )


def _window_key(when: datetime, by: str) -> datetime:
    day = when.date()
    if by == "week":
        day -= timedelta(days=day.weekday())
    elif by == "month":
        day = date(day.year, day.month, 1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


@pytest.mark.parametrize("by", ["day", "week", "month"])
@pytest.mark.parametrize("metric", ["mae", "rmse", "r2"])
def test_window_performance_matches_a_hand_grouping(by: str, metric: str) -> None:
    joined = _joined(np.random.default_rng(42))
    groups: dict[datetime, tuple[list[float], list[float]]] = defaultdict(lambda: ([], []))
    for row in joined.to_pylist():
        if row["label"] is not None:
            ts, ps = groups[_window_key(row["time"], by)]
            ts.append(row["label"])
            ps.append(row["output"])
    reference = {"mae": skm.mean_absolute_error, "rmse": skm.root_mean_squared_error}
    reference["r2"] = skm.r2_score

    got = window_performance(joined, metric, by=by)  # type: ignore[arg-type]
    assert got.schema.names == ["window_start", "n", "metric", "value"]
    assert got.schema.field("window_start").type == pa.timestamp("us", tz="UTC")
    rows = got.to_pylist()
    assert [r["window_start"] for r in rows] == sorted(groups)
    for row in rows:
        ts, ps = groups[row["window_start"]]
        assert row["n"] == len(ts) and row["metric"] == metric
        expected = reference[metric](ts, ps) if len(ts) > 1 or metric != "r2" else math.nan
        assert row["value"] == pytest.approx(expected, rel=1e-9, nan_ok=True)
    assert sum(r["n"] for r in rows) == joined.num_rows - joined.column("label").null_count


def test_weeks_start_on_monday_and_months_on_the_first() -> None:
    joined = _joined(np.random.default_rng(1))
    weeks = window_performance(joined, "mae", by="week").column("window_start").to_pylist()
    months = window_performance(joined, "mae", by="month").column("window_start").to_pylist()
    assert all(w.weekday() == 0 and w.hour == 0 for w in weeks)
    assert months == [datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC)]


def test_classification_windows_with_a_threshold() -> None:
    t0 = datetime(2024, 3, 1, 8, tzinfo=UTC)
    joined = pa.table(
        {
            "time": pa.array([t0, t0, t0, t0 + timedelta(days=1)], pa.timestamp("us", tz="UTC")),
            "label": [1.0, 0.0, 1.0, 0.0],
            "output": [0.9, 0.7, 0.2, 0.1],
        }
    )
    rows = window_performance(joined, "accuracy", threshold=0.5).to_pylist()
    assert [(r["n"], r["value"]) for r in rows] == [(3, pytest.approx(1 / 3)), (1, 1.0)]
    f1_rows = window_performance(joined, "f1", threshold=0.5).to_pylist()
    assert f1_rows[0]["value"] == pytest.approx(skm.f1_score([1, 0, 1], [1, 1, 0]))


def test_window_performance_errors() -> None:
    joined = _joined(np.random.default_rng(0), 10)
    with pytest.raises(MonitorError, match="unknown performance metric"):
        window_performance(joined, "auc")
    with pytest.raises(MonitorError, match="unknown window"):
        window_performance(joined, "mae", by="hour")  # type: ignore[arg-type]
    with pytest.raises(MonitorError, match="classification"):
        window_performance(joined, "mae", threshold=0.5)
    with pytest.raises(MonitorError, match="label"):
        window_performance(joined.drop_columns(["label"]), "mae")
    empty = window_performance(joined.slice(0, 0), "mae")
    assert empty.num_rows == 0 and empty.schema.names == ["window_start", "n", "metric", "value"]

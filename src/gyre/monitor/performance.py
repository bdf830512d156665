"""Model performance once labels arrive: metrics from arrays, and the same metrics per time window.

The metric definitions follow scikit-learn's (the test suite checks them against it) but are plain
vectorised numpy, so monitoring does not import sklearn. :func:`window_performance` takes the
output of :meth:`gyre.monitor.feedback.FeedbackLog.join` (inference rows with a ``label``) and
scores each day, ISO week (starting Monday) or calendar month, in UTC:

    joined = feedback.join("churn", start, end)
    window_performance(joined, "rmse", by="week")
    # window_start (timestamp, UTC) | n | metric | value
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from gyre.core.errors import MonitorError
from gyre.monitor.inference_log import TIMESTAMP, duckdb_connection, to_arrow

__all__ = [
    "METRICS",
    "Window",
    "accuracy",
    "f1",
    "mae",
    "mape",
    "r2",
    "rmse",
    "window_performance",
]

FloatArray = npt.NDArray[np.float64]
Window = Literal["day", "week", "month"]
_WINDOWS: Final = ("day", "week", "month")


def _pair(
    y_true: npt.ArrayLike, y_pred: npt.ArrayLike, metric: str
) -> tuple[FloatArray, FloatArray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise MonitorError(f"{metric} needs as many predictions as labels, got {p.size}, {t.size}")
    if t.size == 0:
        raise MonitorError(f"{metric} of no rows is undefined", hint="widen the time window")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise MonitorError(
            f"{metric} got NaN or infinite values",
            hint="drop rows without a label or prediction before scoring",
        )
    return t, p


def mae(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(t - p)))


def rmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Root mean squared error."""
    t, p = _pair(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((t - p) ** 2)))


def mape(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Mean absolute percentage error, as a fraction (0.05 = 5%).

    Rows whose true value is 0 have no percentage error and are left out (scikit-learn instead
    divides by machine epsilon, which turns one zero label into an astronomically large error);
    NaN if every true value is 0.
    """
    t, p = _pair(y_true, y_pred, "mape")
    nonzero = t != 0
    if not nonzero.any():
        return float("nan")
    return float(np.mean(np.abs(t[nonzero] - p[nonzero]) / np.abs(t[nonzero])))


def r2(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Coefficient of determination; like scikit-learn, 1.0 or 0.0 when the labels are constant."""
    t, p = _pair(y_true, y_pred, "r2")
    if t.size < 2:
        return float("nan")
    residual = float(np.sum((t - p) ** 2))
    total = float(np.sum((t - np.average(t)) ** 2))
    if total == 0.0:
        return 1.0 if residual == 0.0 else 0.0
    return 1.0 - residual / total


def accuracy(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Share of predictions equal to the label (classes as numbers, e.g. 0/1)."""
    t, p = _pair(y_true, y_pred, "accuracy")
    return float(np.mean(t == p))


def _f1_of(t: FloatArray, p: FloatArray, label: float) -> float:
    tp = np.count_nonzero((p == label) & (t == label))
    fp = np.count_nonzero((p == label) & (t != label))
    fn = np.count_nonzero((p != label) & (t == label))
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else 2.0 * tp / denominator


def f1(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    average: Literal["binary", "macro"] = "binary",
    pos_label: float = 1.0,
) -> float:
    """F1 score of ``pos_label`` (binary) or the mean over all classes seen (macro).

    A class never predicted and never present scores 0, as scikit-learn's ``zero_division`` does.
    """
    t, p = _pair(y_true, y_pred, "f1")
    if average == "binary":
        return _f1_of(t, p, pos_label)
    if average == "macro":
        labels = np.union1d(np.unique(t), np.unique(p))
        return float(np.mean([_f1_of(t, p, label) for label in labels]))
    raise MonitorError(f"unknown F1 average {average!r}", hint="use 'binary' or 'macro'")


METRICS: Final[dict[str, Callable[[FloatArray, FloatArray], float]]] = {
    "mae": mae,
    "rmse": rmse,
    "mape": mape,
    "r2": r2,
    "accuracy": accuracy,
    "f1": f1,
    "f1_macro": lambda t, p: f1(t, p, average="macro"),
}
_CLASSIFICATION: Final = ("accuracy", "f1", "f1_macro")


def window_performance(
    joined: pa.Table,
    metric: str,
    by: Window = "day",
    *,
    label: str = "label",
    prediction: str = "output",
    time: str = "time",
    threshold: float | None = None,
) -> pa.Table:
    """``metric`` per UTC day, week or month: columns window_start, n, metric, value.

    Rows without a label or a prediction are skipped. For classification metrics ``threshold``
    turns a score into a class (``output >= threshold`` is 1.0, else 0.0); without it the
    prediction must already be the class.
    """
    if metric not in METRICS:
        raise MonitorError(
            f"unknown performance metric {metric!r}", hint=f"use one of {', '.join(METRICS)}"
        )
    if by not in _WINDOWS:
        raise MonitorError(f"unknown window {by!r}", hint="use 'day', 'week' or 'month'")
    if threshold is not None and metric not in _CLASSIFICATION:
        raise MonitorError(f"threshold applies to classification metrics, not {metric}")
    missing = [c for c in (label, prediction, time) if c not in joined.column_names]
    if missing:
        raise MonitorError(
            f"cannot score performance: column(s) {', '.join(missing)} missing",
            hint="pass the table FeedbackLog.join() returns",
        )
    con = duckdb_connection()
    try:
        con.register("joined", joined.select([label, prediction, time]))
        rows = to_arrow(
            con.sql(
                f'SELECT date_trunc(?, "{time}")::TIMESTAMPTZ AS window_start, '
                f'"{label}"::DOUBLE AS y, "{prediction}"::DOUBLE AS yhat FROM joined '
                f'WHERE "{label}" IS NOT NULL AND "{prediction}" IS NOT NULL '
                "ORDER BY window_start",
                params=[by],
            )
        )
    finally:
        con.close()
    starts = rows.column("window_start").cast(TIMESTAMP)
    keys = np.asarray(starts.cast(pa.int64()).to_numpy(), dtype=np.int64)
    y = np.asarray(rows.column("y").to_numpy(), dtype=np.float64)
    yhat = np.asarray(rows.column("yhat").to_numpy(), dtype=np.float64)
    if threshold is not None:
        yhat = (yhat >= threshold).astype(np.float64)
    bounds = np.flatnonzero(np.diff(keys)) + 1
    first = np.concatenate([[0], bounds]).astype(np.int64) if keys.size else np.array([], np.int64)
    sizes = np.diff(np.concatenate([first, [keys.size]])) if keys.size else np.array([], np.int64)
    score = METRICS[metric]
    values = [score(y[s : s + n], yhat[s : s + n]) for s, n in zip(first, sizes, strict=True)]
    return pa.table(
        {
            "window_start": pa.array(keys[first], pa.int64()).cast(TIMESTAMP),
            "n": pa.array(sizes, pa.int64()),
            "metric": pa.array([metric] * len(values), pa.string()),
            "value": pa.array(values, pa.float64()),
        }
    )

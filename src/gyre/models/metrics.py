"""Evaluation metrics for trained models, in plain numpy so evaluating needs no sklearn import.

Definitions follow scikit-learn's (the tests compare against it): ``mae``, ``rmse``, ``r2``
(1.0 for a perfect fit of a constant target, 0.0 for an imperfect one) and ``mape`` as a
*fraction*, not a percentage, computed over the rows whose target is not zero (a zero target
makes the percentage error infinite; the metric is left out when every target is zero).
Classification gives ``accuracy``, ``f1`` (the last class is positive for two classes, macro
average otherwise) and ``roc_auc`` when probabilities are available and the evaluation set
holds more than one class (one-vs-rest macro average for more than two).

    metrics = evaluate(model.predict, test, features, "cnt", "regression")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from gyre.core.errors import TrainError
from gyre.models.signature import Task

if TYPE_CHECKING:
    import pyarrow as pa

FloatArray = npt.NDArray[np.float64]
PredictFn = Callable[["pa.Table"], npt.NDArray[Any]]
ProbaFn = Callable[["pa.Table"], "npt.NDArray[np.float64] | None"]


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """``mae``, ``rmse``, ``r2`` and (if any target is non-zero) ``mape`` as a fraction."""
    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(y_pred, dtype=np.float64)
    err = p - t
    ss_res = float(np.sum(err**2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    # sklearn's convention for a constant target: perfect fit 1.0, anything else 0.0.
    r2 = (1.0 if ss_res == 0.0 else 0.0) if ss_tot == 0.0 else 1.0 - ss_res / ss_tot
    out = {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "r2": r2,
    }
    nonzero = t != 0
    if nonzero.any():
        out["mape"] = float(np.mean(np.abs(err[nonzero] / t[nonzero])))
    return out


def roc_auc(positive: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Area under the ROC curve via the rank-sum (Mann-Whitney) form, ties averaged."""
    pos = np.asarray(positive, dtype=bool)
    s = np.asarray(score, dtype=np.float64)
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("ROC AUC needs both positive and negative rows")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    average_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = average_rank[inverse]
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    *,
    proba: npt.ArrayLike | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """``accuracy``, ``f1`` and, given ``proba`` (columns in ``classes`` order), ``roc_auc``."""
    t = np.asarray(y_true, dtype=object)
    p = np.asarray(y_pred, dtype=object)
    labels = list(classes) if classes is not None else sorted(set(t.tolist()) | set(p.tolist()))
    out = {"accuracy": float(np.mean(t == p))}
    present = [c for c in labels if np.any(t == c) or np.any(p == c)]
    scored = [labels[-1]] if len(labels) == 2 else present
    f1s = []
    for c in scored:
        tp = float(np.sum((t == c) & (p == c)))
        fp = float(np.sum((t != c) & (p == c)))
        fn = float(np.sum((t == c) & (p != c)))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    out["f1"] = float(np.mean(f1s)) if f1s else 0.0
    if proba is not None:
        prob = np.asarray(proba, dtype=np.float64)
        if prob.ndim != 2 or prob.shape[1] != len(labels):
            raise TrainError(
                f"probabilities have shape {list(prob.shape)} but there are {len(labels)} classes"
            )
        if len(labels) == 2:
            positive = t == labels[1]
            if 0 < positive.sum() < len(t):
                out["roc_auc"] = roc_auc(positive, prob[:, 1])
        else:
            aucs = [
                roc_auc(t == c, prob[:, i])
                for i, c in enumerate(labels)
                if 0 < np.sum(t == c) < len(t)
            ]
            if aucs:
                out["roc_auc"] = float(np.mean(aucs))
    return out


def evaluate(
    model_predict: PredictFn,
    table: pa.Table,
    features: Sequence[str],
    target: str,
    task: Task,
    *,
    predict_proba: ProbaFn | None = None,
    classes: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Predict ``table[features]`` with ``model_predict`` and score it against ``table[target]``.

    ``model_predict`` (and ``predict_proba``) take an Arrow table of the feature columns, as
    :meth:`gyre.models.LoadedModel.predict` does.
    """
    import pyarrow.compute as pc

    missing = [c for c in [*features, target] if c not in table.column_names]
    if missing:
        raise TrainError(
            f"evaluation data lacks column(s) {', '.join(map(repr, missing))}; it has: "
            f"{', '.join(table.column_names)}"
        )
    if table.num_rows == 0:
        raise TrainError("the evaluation set is empty (0 rows)", hint="check the data split")
    target_col = table.column(target)
    n_null = pc.sum(pc.is_null(target_col, nan_is_null=True)).as_py() or 0
    if n_null:
        raise TrainError(f"target '{target}' has {n_null} missing value(s) in the evaluation set")
    inputs = table.select(list(features))
    y_pred = np.asarray(model_predict(inputs))
    if y_pred.shape[0] != table.num_rows:
        raise TrainError(
            f"the model returned {y_pred.shape[0]} predictions for {table.num_rows} rows"
        )
    if task == "regression":
        return regression_metrics(np.asarray(target_col.to_numpy(), np.float64), y_pred)
    proba = predict_proba(inputs) if predict_proba is not None else None
    y_true = np.asarray(target_col.to_pylist(), dtype=object)
    return classification_metrics(y_true, y_pred, proba=proba, classes=classes)

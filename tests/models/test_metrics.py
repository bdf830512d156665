"""Metrics agree with scikit-learn's reference implementations."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn import metrics as skm

from gyre.core.errors import TrainError
from gyre.models.metrics import classification_metrics, evaluate, regression_metrics, roc_auc

# Rounded so no target is a subnormal sliver where sklearn clamps the MAPE denominator to eps.
finite = st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 3))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=60))
def test_regression_metrics_match_sklearn(pairs: list[tuple[float, float]]) -> None:
    y_true = np.array([p[0] for p in pairs])
    y_pred = np.array([p[1] for p in pairs])
    got = regression_metrics(y_true, y_pred)
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y_true, y_pred))
    assert got["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y_true, y_pred)))
    if len(pairs) > 1:
        assert got["r2"] == pytest.approx(skm.r2_score(y_true, y_pred), abs=1e-9)
    nonzero = y_true != 0
    if nonzero.any():
        expected = skm.mean_absolute_percentage_error(y_true[nonzero], y_pred[nonzero])
        assert got["mape"] == pytest.approx(expected)
    else:
        assert "mape" not in got


def test_mape_skips_zero_targets() -> None:
    got = regression_metrics([0.0, 2.0, 4.0], [5.0, 1.0, 5.0])
    assert got["mape"] == pytest.approx((0.5 + 0.25) / 2)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(0, 1, allow_nan=False).map(lambda v: round(v, 2))),
        min_size=2,
        max_size=80,
    )
)
def test_roc_auc_matches_sklearn_with_ties(rows: list[tuple[bool, float]]) -> None:
    labels = np.array([r[0] for r in rows])
    scores = np.array([r[1] for r in rows])
    assume(0 < labels.sum() < len(labels))
    assert roc_auc(labels, scores) == pytest.approx(skm.roc_auc_score(labels, scores))


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError, match=r"both positive and negative"):
        roc_auc([True, True], [0.1, 0.2])


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_classification_metrics_match_sklearn(data: st.DataObject) -> None:
    k = data.draw(st.integers(2, 4))
    n = data.draw(st.integers(4, 50))
    classes = [f"c{i}" for i in range(k)]
    y_true = np.array(data.draw(st.lists(st.sampled_from(classes), min_size=n, max_size=n)))
    assume(len(set(y_true)) == k)  # sklearn's multiclass AUC needs every class present
    raw = np.array(data.draw(st.lists(st.floats(0.01, 1), min_size=n * k, max_size=n * k))).reshape(
        n, k
    )
    proba = raw / raw.sum(axis=1, keepdims=True)
    y_pred = np.array(classes)[proba.argmax(axis=1)]
    got = classification_metrics(y_true, y_pred, proba=proba, classes=classes)
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    if k == 2:
        f1 = skm.f1_score(y_true, y_pred, pos_label="c1", zero_division=0)
        auc = skm.roc_auc_score(y_true == "c1", proba[:, 1])
    else:
        f1 = skm.f1_score(y_true, y_pred, average="macro", zero_division=0)
        auc = skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=classes)
    assert got["f1"] == pytest.approx(f1)
    assert got["roc_auc"] == pytest.approx(auc)


def test_classification_without_probabilities_has_no_auc() -> None:
    got = classification_metrics([0, 1, 1], [0, 1, 0])
    assert set(got) == {"accuracy", "f1"}
    assert got["f1"] == pytest.approx(skm.f1_score([0, 1, 1], [0, 1, 0]))
    with pytest.raises(TrainError, match=r"2 classes"):
        classification_metrics([0, 1], [0, 1], proba=np.ones((2, 3)))


def test_evaluate_checks_its_inputs() -> None:
    table = pa.table({"x": [1.0, 2.0], "y": [1.0, None]})

    def predict(t: pa.Table) -> np.ndarray:
        return np.asarray(t["x"].to_numpy())

    with pytest.raises(TrainError, match=r"1 missing value"):
        evaluate(predict, table, ["x"], "y", "regression")
    with pytest.raises(TrainError, match=r"lacks column\(s\) 'z'"):
        evaluate(predict, table, ["z"], "y", "regression")
    with pytest.raises(TrainError, match=r"empty"):
        evaluate(predict, table.slice(0, 0), ["x"], "y", "regression")
    ok = pa.table({"x": [1.0, 2.0], "y": [1.0, 4.0]})
    with pytest.raises(TrainError, match=r"returned 1 predictions for 2 rows"):
        evaluate(lambda t: np.zeros(1), ok, ["x"], "y", "regression")
    assert evaluate(predict, ok, ["x"], "y", "regression")["mae"] == pytest.approx(1.0)

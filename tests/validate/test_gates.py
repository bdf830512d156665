"""Metric gates: thresholds, champion comparison, and configuration errors."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from gyre.core.errors import ConfigError, GateFailedError
from gyre.validate import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    GateSpec,
    evaluate_gates,
    is_higher_better,
    parse_gates,
)

values = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def test_directions_are_known_for_standard_metrics() -> None:
    for metric in ("mae", "rmse", "mape"):
        assert is_higher_better(metric) is False
    for metric in ("r2", "accuracy", "f1", "roc_auc"):
        assert is_higher_better(metric) is True
    assert is_higher_better("latency_p99") is None
    assert not LOWER_IS_BETTER & HIGHER_IS_BETTER


def test_the_briefs_three_gates() -> None:
    gates = parse_gates(
        [
            {"metric": "mae", "max": 90},
            {"metric": "r2", "min": 0.5},
            {"metric": "mae", "beat_champion": True},
        ]
    )
    report = evaluate_gates(gates, {"mae": 80.0, "r2": 0.7}, {"mae": 85.0, "r2": 0.6})
    assert report.passed
    assert [(r.metric, r.rule, r.threshold, r.passed) for r in report.results] == [
        ("mae", "max", 90.0, True),
        ("r2", "min", 0.5, True),
        ("mae", "beat_champion", 85.0, True),
    ]
    report.raise_if_failed()

    worse = evaluate_gates(gates, {"mae": 95.0, "r2": 0.4}, {"mae": 85.0})
    assert not worse.passed
    assert [r.passed for r in worse.results] == [False, False, False]
    assert worse.results[0].reason == "mae 95 > max 90"
    assert worse.results[2].reason == "mae 95 is worse than the champion's 85"
    with pytest.raises(GateFailedError, match=r"3 gate\(s\) failed: mae max: mae 95 > max 90"):
        worse.raise_if_failed()


def test_beat_champion_without_a_champion_passes() -> None:
    report = evaluate_gates([{"metric": "r2", "beat_champion": True}], {"r2": -5.0}, None)
    assert report.passed
    assert report.results[0].reason == "no champion yet"
    assert report.results[0].threshold is None


def test_champion_without_the_metric_passes_and_says_why() -> None:
    report = evaluate_gates([{"metric": "f1", "beat_champion": True}], {"f1": 0.1}, {"mae": 3.0})
    assert report.passed
    assert "champion has no recorded f1" in report.results[0].reason


def test_unknown_metric_lists_available_ones() -> None:
    with pytest.raises(ConfigError, match=r"'auc'.*available metrics: mae, r2"):
        evaluate_gates([{"metric": "auc", "min": 0.5}], {"r2": 0.1, "mae": 2.0}, None)


def test_spec_validation() -> None:
    with pytest.raises(ValidationError, match=r"has no rule"):
        GateSpec(metric="mae")
    with pytest.raises(ValidationError, match=r"min 2.0 is above max 1.0"):
        GateSpec(metric="mae", min=2, max=1)
    with pytest.raises(ValidationError, match=r"set higher_is_better"):
        GateSpec(metric="latency_p99", beat_champion=True)
    with pytest.raises(ValidationError):
        GateSpec(metric="mae", max=1, maximum=2)  # type: ignore[call-arg]
    custom = GateSpec(metric="latency_p99", beat_champion=True, higher_is_better=False)
    assert custom.direction is False
    with pytest.raises(ConfigError, match=r"gyre.yaml gates\[1\]: .*has no rule"):
        parse_gates([{"metric": "mae", "max": 1}, {"metric": "r2"}], file="gyre.yaml")


def test_nan_candidate_fails() -> None:
    report = evaluate_gates(
        [{"metric": "mae", "max": 10, "beat_champion": True}], {"mae": math.nan}, {"mae": 1.0}
    )
    assert not report.passed
    assert all(r.reason == "mae is NaN" for r in report.results)


@settings(max_examples=200)
@given(value=values, threshold=values)
def test_min_and_max_rules(value: float, threshold: float) -> None:
    low = evaluate_gates([GateSpec(metric="r2", min=threshold)], {"r2": value}, None)
    high = evaluate_gates([GateSpec(metric="mae", max=threshold)], {"mae": value}, None)
    assert low.passed is (value >= threshold)
    assert high.passed is (value <= threshold)
    assert low.results[0].value == value
    assert low.results[0].threshold == threshold


@settings(max_examples=200)
@given(
    metric=st.sampled_from(sorted(LOWER_IS_BETTER | HIGHER_IS_BETTER)),
    candidate=values,
    champion=values,
    tolerance=st.floats(0, 100),
)
def test_beat_champion_respects_direction_and_tolerance(
    metric: str, candidate: float, champion: float, tolerance: float
) -> None:
    spec = GateSpec(metric=metric, beat_champion=True, tolerance=tolerance)
    report = evaluate_gates([spec], {metric: candidate}, {metric: champion})
    if metric in HIGHER_IS_BETTER:
        assert report.passed is (candidate >= champion - tolerance)
    else:
        assert report.passed is (candidate <= champion + tolerance)
    # Equal metrics always pass: a retrain that changes nothing is not a regression.
    assert evaluate_gates([spec], {metric: champion}, {metric: champion}).passed


@settings(max_examples=100)
@given(st.lists(st.tuples(values, values), min_size=1, max_size=6))
def test_report_passes_only_if_every_rule_passes(pairs: list[tuple[float, float]]) -> None:
    gates = [GateSpec(metric=f"m{i}", max=t) for i, (_, t) in enumerate(pairs)]
    metrics = {f"m{i}": v for i, (v, _) in enumerate(pairs)}
    report = evaluate_gates(gates, metrics, None)
    assert report.passed is all(v <= t for v, t in pairs)
    assert len(report.failures) == sum(v > t for v, t in pairs)

"""Drift: PSI and KS against independent computations, properties, and a real seasonal shift."""

from __future__ import annotations

import json
import math
from datetime import date
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import ks_2samp

from gyre.core.errors import DataError, MonitorError
from gyre.monitor.drift import (
    PSI_EPSILON,
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    drift_report,
    population_stability_index,
)

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
values = arrays(np.float64, st.integers(1, 300), elements=finite)
# bin shares are counts / n: zero, or at least 1 / n (never subnormal)
share = st.one_of(st.just(0.0), st.floats(1e-9, 1.0))


def _psi_by_hand(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI over reference-decile bins, written independently of gyre with np.histogram."""
    deciles = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)))
    edges = np.concatenate([[-np.inf], deciles[1:-1], [np.inf]])
    r = np.histogram(reference, edges)[0] / reference.size
    c = np.histogram(current, edges)[0] / current.size
    r[r == 0] = PSI_EPSILON
    c[c == 0] = PSI_EPSILON
    return float(np.sum((c - r) * np.log(c / r)))


def _report(reference: np.ndarray, current: np.ndarray, **kwargs: object) -> object:
    profile = ReferenceProfile.from_table(pa.table({"x": reference}), ["x"])
    [result] = drift_report(profile, pa.table({"x": current}), **kwargs)  # type: ignore[arg-type]
    return result


# -- PSI -----------------------------------------------------------------------------------------


def test_psi_of_two_bins_by_hand() -> None:
    # (0.9 - 0.5) ln(0.9 / 0.5) + (0.1 - 0.5) ln(0.1 / 0.5)
    expected = 0.4 * math.log(1.8) + 0.4 * math.log(5.0)
    assert population_stability_index([0.5, 0.5], [0.9, 0.1]) == pytest.approx(expected, 1e-12)
    assert population_stability_index([0.5, 0.5], [0.5, 0.5]) == 0.0
    with pytest.raises(MonitorError, match="same bins"):
        population_stability_index([0.5, 0.5], [1.0])


def test_psi_equals_an_independent_numpy_computation() -> None:
    reference = np.arange(100, dtype=np.float64)
    current = np.arange(50, 150, dtype=np.float64)  # half of it above the reference maximum
    result = _report(reference, current)
    assert result.psi == pytest.approx(_psi_by_hand(reference, current), rel=1e-12)
    assert result.psi > 1.0 and result.drifted


@settings(max_examples=60, deadline=None)
@given(reference=values, current=values)
def test_psi_matches_the_independent_computation_on_random_data(
    reference: np.ndarray, current: np.ndarray
) -> None:
    if np.unique(reference).size <= 10:
        return  # few distinct values get one bin per value, not deciles: tested separately
    assert _report(reference, current).psi == pytest.approx(
        _psi_by_hand(reference, current), rel=1e-9, abs=1e-12
    )


@settings(max_examples=100, deadline=None)
@given(reference=values, current=values)
def test_psi_is_never_negative(reference: np.ndarray, current: np.ndarray) -> None:
    assert _report(reference, current).psi >= 0.0


@settings(max_examples=100, deadline=None)
@given(
    proportions=st.lists(share, min_size=1, max_size=12).filter(lambda p: sum(p) > 0),
    other=st.lists(share, min_size=12, max_size=12),
)
def test_psi_of_proportion_vectors_is_never_negative(
    proportions: list[float], other: list[float]
) -> None:
    r = np.asarray(proportions) / sum(proportions)
    c = np.asarray(other[: r.size])
    c = c / c.sum() if c.sum() > 0 else np.full(r.size, 1.0 / r.size)
    assert population_stability_index(r, c) >= 0.0
    assert population_stability_index(r, r) == 0.0


@settings(max_examples=100, deadline=None)
@given(reference=values, repeats=st.integers(1, 3), seed=st.integers(0, 2**32 - 1))
def test_the_reference_distribution_itself_has_zero_psi(
    reference: np.ndarray, repeats: int, seed: int
) -> None:
    # the same values, shuffled and repeated: exactly the reference distribution
    current = np.random.default_rng(seed).permutation(np.tile(reference, repeats))
    result = _report(reference, current)
    assert result.psi == 0.0
    assert not result.drifted


@settings(max_examples=60, deadline=None)
@given(reference=values)
def test_identical_samples_are_not_drifted(reference: np.ndarray) -> None:
    for method in ("psi", "ks"):
        result = _report(reference, reference.copy(), method=method)
        assert result.psi == 0.0
        assert result.ks_stat == 0.0 and result.ks_pvalue == 1.0
        assert not result.drifted


# -- KS ------------------------------------------------------------------------------------------


def test_ks_equals_scipy_on_the_same_arrays() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(0.0, 1.0, 2_000)
    current = rng.normal(0.3, 1.2, 700)
    result = _report(reference, current)
    expected = ks_2samp(reference, current)
    assert result.ks_stat == float(expected.statistic)
    assert result.ks_pvalue == float(expected.pvalue)
    assert result.n_current == 700


def test_large_references_keep_a_seeded_sample_of_5000() -> None:
    rng = np.random.default_rng(1)
    table = pa.table({"x": rng.normal(size=20_000)})
    first = ReferenceProfile.from_table(table, ["x"], seed=3).features["x"]
    again = ReferenceProfile.from_table(table, ["x"], seed=3).features["x"]
    other = ReferenceProfile.from_table(table, ["x"], seed=4).features["x"]
    assert isinstance(first, NumericProfile) and isinstance(other, NumericProfile)
    assert len(first.sample) == 5_000 and first.sample == again.sample
    assert first.sample != other.sample
    assert set(first.sample) <= set(table.column("x").to_pylist())
    current = rng.normal(size=1_000)
    [result] = drift_report(
        ReferenceProfile.from_table(table, ["x"], seed=3), pa.table({"x": current})
    )
    expected = ks_2samp(np.asarray(first.sample), current)
    assert result.ks_stat == float(expected.statistic)


# -- bins for awkward numeric data ----------------------------------------------------------------


def test_bins_are_deduplicated_deciles() -> None:
    profile = ReferenceProfile.from_table(pa.table({"x": np.arange(1000.0)}), ["x"])
    numeric = profile.features["x"]
    assert isinstance(numeric, NumericProfile)
    assert len(numeric.edges) == 9 and len(numeric.proportions) == 10
    assert numeric.proportions == pytest.approx([0.1] * 10)
    tied = ReferenceProfile.from_table(pa.table({"x": [0.0] * 50 + list(range(50))}), ["x"])
    assert len(tied.features["x"].edges) == len(set(tied.features["x"].edges))  # type: ignore[union-attr]


def test_a_binary_feature_gets_one_bin_per_value() -> None:
    reference = np.array([0.0] * 80 + [1.0] * 20)
    result = _report(reference, np.array([0.0] * 20 + [1.0] * 80))
    expected = 0.6 * math.log(0.8 / 0.2) * 2  # (0.2-0.8)ln(0.2/0.8) + (0.8-0.2)ln(0.8/0.2)
    assert result.psi == pytest.approx(expected, 1e-12)
    assert result.drifted


def test_a_constant_reference_still_sees_change() -> None:
    assert not _report(np.full(100, 5.0), np.full(30, 5.0)).drifted
    moved = _report(np.full(100, 5.0), np.array([5.0] * 50 + [6.0] * 50))
    assert moved.drifted and moved.psi > 1.0


def test_missing_values_are_left_out() -> None:
    reference = pa.table({"x": pa.array([1.0, 2.0, None, float("nan"), 3.0] * 20)})
    profile = ReferenceProfile.from_table(reference, ["x"])
    assert profile.features["x"].n == 60 and profile.features["x"].n_missing == 40
    [result] = drift_report(profile, pa.table({"x": pa.array([None, 1.0, 2.0, 3.0])}))
    assert result.n_current == 3 and result.psi == 0.0
    [empty] = drift_report(profile, pa.table({"x": pa.array([None], pa.float64())}))
    assert empty.n_current == 0 and math.isnan(empty.psi) and not empty.drifted
    assert empty.as_dict()["psi"] is None


# -- categorical -----------------------------------------------------------------------------------


def test_categorical_psi_with_an_unseen_bucket() -> None:
    profile = ReferenceProfile.from_table(pa.table({"plan": ["a"] * 50 + ["b"] * 50}), ["plan"])
    assert profile.features["plan"] == CategoricalProfile(("a", "b"), (0.5, 0.5), 100, 0)
    current = pa.table({"plan": pa.array(["a"] * 50 + ["c"] * 30 + ["d"] * 20).dictionary_encode()})
    [result] = drift_report(profile, current)
    eps = PSI_EPSILON
    # a: unchanged; b: gone (0 -> eps); unseen (c, d): 0.5 where the reference had 0 (-> eps)
    expected = (eps - 0.5) * math.log(eps / 0.5) + (0.5 - eps) * math.log(0.5 / eps)
    assert result.method == "psi" and result.ks_stat is None
    assert result.psi == pytest.approx(expected, 1e-12)
    assert result.drifted and result.n_current == 100
    [same] = drift_report(profile, pa.table({"plan": ["b", "a"] * 10}))
    assert same.psi == 0.0 and not same.drifted


# -- persistence and errors ------------------------------------------------------------------------


def test_profile_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    table = pa.table({"x": rng.gamma(2.0, size=6_000), "plan": rng.choice(["a", "b"], 6_000)})
    profile = ReferenceProfile.from_table(table, ["x", "plan"], seed=11)
    text = profile.to_json()
    assert json.loads(text)["format"] == "gyre.reference_profile/1"
    again = ReferenceProfile.from_json(text)
    assert again == profile
    current = pa.table({"x": rng.gamma(2.5, size=500), "plan": rng.choice(["a", "b"], 500)})
    assert drift_report(again, current) == drift_report(profile, current)
    assert json.dumps([d.as_dict() for d in drift_report(again, current)])


@pytest.mark.parametrize("text", ["not json", "{}", '{"format": "other/1"}'])
def test_unreadable_profiles_raise_monitor_error(text: str) -> None:
    with pytest.raises(DataError, match="not readable"):
        ReferenceProfile.from_json(text)


def test_errors_name_the_feature() -> None:
    profile = ReferenceProfile.from_table(pa.table({"x": [1.0, 2.0], "s": ["a", "b"]}), ["x", "s"])
    with pytest.raises(DataError, match="'x' is not a column of the current"):
        drift_report(profile, pa.table({"s": ["a"]}))
    with pytest.raises(MonitorError, match="'x' was numeric"):
        drift_report(profile, pa.table({"x": ["1"], "s": ["a"]}), features=["x"])
    with pytest.raises(MonitorError, match="'s' was a string"):
        drift_report(profile, pa.table({"s": [1.0]}), features=["s"])
    with pytest.raises(MonitorError, match="not in the reference profile"):
        drift_report(profile, pa.table({"y": [1.0]}), features=["y"])
    with pytest.raises(MonitorError, match="unknown drift method"):
        drift_report(profile, pa.table({"x": [1.0]}), features=["x"], method="chi2")  # type: ignore[arg-type]
    with pytest.raises(DataError, match="cannot profile"):
        ReferenceProfile.from_table(pa.table({"t": pa.array([date(2024, 1, 1)])}), ["t"])
    with pytest.raises(DataError, match="no finite values"):
        ReferenceProfile.from_table(pa.table({"x": pa.array([None], pa.float64())}), ["x"])


def test_ks_method_thresholds_the_ks_statistic() -> None:
    rng = np.random.default_rng(5)
    reference, current = rng.normal(size=3_000), rng.normal(0.15, 1.0, 3_000)
    by_psi = _report(reference, current, threshold=0.2)
    by_ks = _report(reference, current, threshold=0.05, method="ks")
    assert not by_psi.drifted and by_psi.score == by_psi.psi
    assert by_ks.method == "ks" and by_ks.score == by_ks.ks_stat
    assert by_ks.drifted == (by_ks.ks_stat > 0.05)
    assert by_ks.as_dict()["score"] == by_ks.ks_stat


# -- real data: Capital Bikeshare, first half of 2011 against July 2011 ---------------------------


def test_summer_temperature_drifts_while_the_hour_of_day_does_not(shared_data: Path) -> None:
    hours = pacsv.read_csv(shared_data / "drift" / "bike-sharing" / "hour.csv")
    day = hours.column("dteday")

    def between(first: date, last: date) -> pa.Table:
        return hours.filter(pc.and_(pc.greater_equal(day, first), pc.less(day, last)))

    reference = between(date(2011, 1, 1), date(2011, 7, 1))
    july = between(date(2011, 7, 1), date(2011, 8, 1))
    assert (reference.num_rows, july.num_rows) == (4250, 744)

    profile = ReferenceProfile.from_table(reference, ["temp", "hr", "weekday"])
    results = {r.feature: r for r in drift_report(profile, july, threshold=0.2)}
    temp, hr = results["temp"], results["hr"]
    # July is hotter than almost every hour of January to June: a massive shift.
    assert temp.drifted and temp.psi > 5.0
    assert temp.ks_stat is not None and temp.ks_stat > 0.7 and temp.ks_pvalue < 1e-100
    # Every day has its 24 hours: the hour-of-day distribution barely moves.
    assert not hr.drifted and hr.psi < 0.01
    assert hr.ks_pvalue is not None and hr.ks_pvalue > 0.9
    assert not results["weekday"].drifted and results["weekday"].psi < 0.05
    assert temp.n_current == hr.n_current == 744

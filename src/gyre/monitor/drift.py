"""Data drift: how far today's inputs have moved from the data the model was trained on.

A :class:`ReferenceProfile` is built once, when a model version is trained, and stored as JSON
next to it, so checking drift never re-reads the training data:

* numeric features: up to 10 quantile bins (edges deduplicated, so heavily tied data gets fewer
  bins; a feature with at most 10 distinct values gets one bin per value) with the reference
  proportion in each, plus a seeded uniform random sample of up to 5,000 values for the
  two-sample Kolmogorov-Smirnov test (the same distribution a reservoir sample has);
* string features: the proportion of each category.

:func:`drift_report` then scores a current window (say, a day of the inference log) feature by
feature: the Population Stability Index over those bins, and for numeric features the KS
statistic and p-value against the reference sample.

    profile = ReferenceProfile.from_table(training_table, ["temp", "hr", "season"])
    Path("profile.json").write_text(profile.to_json())
    ...
    for drift in drift_report(ReferenceProfile.from_json(text), todays_inputs, threshold=0.2):
        print(drift.feature, drift.psi, drift.drifted)

Missing values (null, NaN, infinities) are left out of every proportion; each result reports how
many current values it was computed on.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from gyre.core.errors import MonitorError
from gyre.datasets.reference import (
    CategoricalProfile,
    NumericProfile,
    ReferenceProfile,
    bin_counts,
    category_counts,
    feature_column,
    is_numeric,
    is_text,
    numeric_values,
    proportions,
)

__all__ = [
    "PSI_EPSILON",
    "CategoricalProfile",
    "DriftMethod",
    "FeatureDrift",
    "NumericProfile",
    "ReferenceProfile",
    "bin_counts",
    "drift_report",
    "population_stability_index",
]

FloatArray = npt.NDArray[np.float64]
DriftMethod = Literal["psi", "ks"]

# An empty bin has proportion 0 and ln(0) is undefined, so PSI replaces exact zeros (in the
# reference or the current proportions) by this value before summing. 1e-4 is small enough not
# to matter for well-filled bins and caps one empty bin's contribution near 0.1 * ln(0.1 / 1e-4),
# about 0.69 for a bin that held 10% of the data, instead of infinity.
PSI_EPSILON: Final = 1e-4


def population_stability_index(
    reference: npt.ArrayLike, current: npt.ArrayLike, epsilon: float = PSI_EPSILON
) -> float:
    """PSI = sum((c - r) * ln(c / r)) over bins, with exact zeros replaced by ``epsilon``.

    Every term has the sign of (c - r) twice, so PSI is never negative, and it is 0 exactly when
    the two proportion vectors are equal.
    """
    r = np.asarray(reference, dtype=np.float64)
    c = np.asarray(current, dtype=np.float64)
    if r.shape != c.shape:
        raise MonitorError(f"PSI needs proportions over the same bins, got {r.shape} and {c.shape}")
    r = np.where(r > 0, r, epsilon)
    c = np.where(c > 0, c, epsilon)
    return float(np.sum((c - r) * np.log(c / r)))


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else value


@dataclass(frozen=True)
class FeatureDrift:
    """Drift of one feature between the reference profile and a current window.

    ``method`` names the statistic that decided ``drifted`` (its value is :attr:`score`); PSI is
    computed for every feature, the KS statistic and p-value for numeric ones.
    """

    feature: str
    method: DriftMethod
    psi: float
    ks_stat: float | None
    ks_pvalue: float | None
    drifted: bool
    n_current: int

    @property
    def score(self) -> float | None:
        """The value compared with the threshold: PSI, or the KS statistic."""
        return self.ks_stat if self.method == "ks" else _finite_or_none(self.psi)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN, for a feature with no current values, becomes None)."""
        return {
            "feature": self.feature,
            "method": self.method,
            "score": self.score,
            "psi": _finite_or_none(self.psi),
            "ks_stat": self.ks_stat,
            "ks_pvalue": self.ks_pvalue,
            "drifted": self.drifted,
            "n_current": self.n_current,
        }


def _numeric_drift(
    feature: str,
    profile: NumericProfile,
    column: pa.ChunkedArray,
    threshold: float,
    method: DriftMethod,
) -> FeatureDrift:
    from scipy.stats import ks_2samp

    if not is_numeric(column.type):
        raise MonitorError(
            f"feature '{feature}' was numeric in the reference but is {column.type} now",
            hint="the current data must have the same feature types as the training data",
        )
    values, _ = numeric_values(column)
    if values.size == 0:
        return FeatureDrift(feature, method, math.nan, None, None, False, 0)
    edges = np.asarray(profile.edges, dtype=np.float64)
    current = proportions(bin_counts(values, edges))
    psi = population_stability_index(profile.proportions, current)
    with warnings.catch_warnings():
        # For large or tied samples scipy falls back from the exact to the asymptotic p-value
        # and says so on every call; that is expected here, not news.
        warnings.simplefilter("ignore", RuntimeWarning)
        result = ks_2samp(np.asarray(profile.sample, dtype=np.float64), values)
    ks_stat, ks_pvalue = float(result.statistic), float(result.pvalue)
    drifted = (ks_stat if method == "ks" else psi) > threshold
    return FeatureDrift(feature, method, psi, ks_stat, ks_pvalue, drifted, int(values.size))


def _categorical_drift(
    feature: str, profile: CategoricalProfile, column: pa.ChunkedArray, threshold: float
) -> FeatureDrift:
    if not is_text(column.type):
        raise MonitorError(
            f"feature '{feature}' was a string in the reference but is {column.type} now",
            hint="the current data must have the same feature types as the training data",
        )
    counts, _ = category_counts(column)
    n = sum(counts.values())
    if n == 0:
        return FeatureDrift(feature, "psi", math.nan, None, None, False, 0)
    known = set(profile.categories)
    # The last bucket collects categories the reference never saw; its reference share is 0.
    observed = [counts.get(c, 0) for c in profile.categories]
    observed.append(sum(k for c, k in counts.items() if c not in known))
    reference = [*profile.proportions, 0.0]
    psi = population_stability_index(reference, np.asarray(observed, dtype=np.float64) / n)
    return FeatureDrift(feature, "psi", psi, None, None, psi > threshold, n)


def drift_report(
    profile: ReferenceProfile,
    current: pa.Table,
    *,
    threshold: float = 0.2,
    method: DriftMethod = "psi",
    features: Sequence[str] | None = None,
) -> list[FeatureDrift]:
    """Score every profiled feature (or ``features``) of ``current`` against ``profile``.

    With ``method="psi"`` a feature is ``drifted`` when its PSI exceeds ``threshold`` (0.1 is
    commonly read as a moderate shift, 0.2 as a significant one). With ``method="ks"`` numeric
    features are judged by the KS statistic (the largest gap between the two cumulative
    distributions, 0 to 1) instead; string features have no KS test and keep PSI. The statistic,
    not the p-value, is thresholded on purpose: with thousands of rows the p-value flags even
    shifts too small to matter. A feature with no current values gets NaN and is not flagged.
    """
    if method not in ("psi", "ks"):
        raise MonitorError(f"unknown drift method {method!r}", hint="use 'psi' or 'ks'")
    names = list(features) if features is not None else list(profile.features)
    report = []
    for name in names:
        if name not in profile.features:
            raise MonitorError(
                f"feature '{name}' is not in the reference profile",
                hint=f"profiled features: {', '.join(profile.features)}",
            )
        feature_profile = profile.features[name]
        column = feature_column(current, name, "current")
        if isinstance(feature_profile, NumericProfile):
            report.append(_numeric_drift(name, feature_profile, column, threshold, method))
        else:
            report.append(_categorical_drift(name, feature_profile, column, threshold))
    return report

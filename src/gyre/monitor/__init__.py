"""The monitor stage: what an endpoint served, how its inputs drift, how well it performs.

* :mod:`gyre.monitor.inference_log` - every prediction, as Parquet partitions read with DuckDB
  (the model server writes through :class:`InferenceLog`);
* :mod:`gyre.monitor.feedback` - late ground-truth labels, joined back to predictions;
* :mod:`gyre.monitor.drift` - reference profiles of training data, PSI and KS drift reports;
* :mod:`gyre.monitor.performance` - regression and classification metrics, per time window.

Names are imported on first use so that ``import gyre.monitor`` stays cheap for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gyre.monitor.drift import (
        FeatureDrift,
        ReferenceProfile,
        drift_report,
        population_stability_index,
    )
    from gyre.monitor.feedback import FeedbackJoin, FeedbackLog
    from gyre.monitor.inference_log import INFERENCE_SCHEMA, InferenceLog
    from gyre.monitor.performance import (
        accuracy,
        f1,
        mae,
        mape,
        r2,
        rmse,
        window_performance,
    )

_EXPORTS = {
    "INFERENCE_SCHEMA": "gyre.monitor.inference_log",
    "InferenceLog": "gyre.monitor.inference_log",
    "FeedbackJoin": "gyre.monitor.feedback",
    "FeedbackLog": "gyre.monitor.feedback",
    "FeatureDrift": "gyre.monitor.drift",
    "ReferenceProfile": "gyre.monitor.drift",
    "drift_report": "gyre.monitor.drift",
    "population_stability_index": "gyre.monitor.drift",
    "accuracy": "gyre.monitor.performance",
    "f1": "gyre.monitor.performance",
    "mae": "gyre.monitor.performance",
    "mape": "gyre.monitor.performance",
    "r2": "gyre.monitor.performance",
    "rmse": "gyre.monitor.performance",
    "window_performance": "gyre.monitor.performance",
}

__all__ = [
    "INFERENCE_SCHEMA",
    "FeatureDrift",
    "FeedbackJoin",
    "FeedbackLog",
    "InferenceLog",
    "ReferenceProfile",
    "accuracy",
    "drift_report",
    "f1",
    "mae",
    "mape",
    "population_stability_index",
    "r2",
    "rmse",
    "window_performance",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gyre.monitor' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return __all__

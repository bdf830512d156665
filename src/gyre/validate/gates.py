"""Metric gates: the rules a candidate model's metrics must pass before it may take traffic.

A gate names one metric and one or more rules, as written in gyre.yaml::

    gates:
      - {metric: mae, max: 90}               # absolute ceiling
      - {metric: r2, min: 0.5}               # absolute floor
      - {metric: mae, beat_champion: true}   # no worse than the model serving now

``beat_champion`` needs to know which way is better: lower for error metrics (mae, rmse, mse,
mape, log_loss), higher for scores (r2, accuracy, f1, roc_auc, precision, recall); set
``higher_is_better`` for any other metric. Without a champion (the first release) it passes
with the reason "no champion yet"; ``tolerance`` allows the candidate to be that much worse.

:func:`evaluate_gates` never raises for a failed gate: it returns a :class:`GateReport` the loop
records, and :meth:`GateReport.raise_if_failed` turns it into :class:`GateFailedError` when the
caller wants an exception. Asking for a metric that was not computed is a configuration mistake
and raises :class:`ConfigError` at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gyre.core.errors import ConfigError, GateFailedError

LOWER_IS_BETTER = frozenset({"mae", "mse", "rmse", "mape", "log_loss"})
HIGHER_IS_BETTER = frozenset({"r2", "accuracy", "f1", "roc_auc", "precision", "recall"})

Rule = Literal["min", "max", "beat_champion"]


def is_higher_better(metric: str) -> bool | None:
    """True/False for metrics whose direction Gyre knows, None for any other."""
    if metric in HIGHER_IS_BETTER:
        return True
    if metric in LOWER_IS_BETTER:
        return False
    return None


class GateSpec(BaseModel):
    """One metric and its rules; at least one of ``min``, ``max``, ``beat_champion``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    min: float | None = None
    max: float | None = None
    beat_champion: bool = False
    tolerance: float = Field(default=0.0, ge=0.0)
    higher_is_better: bool | None = None

    @model_validator(mode="after")
    def _has_a_rule(self) -> GateSpec:
        if self.min is None and self.max is None and not self.beat_champion:
            raise ValueError(f"gate on '{self.metric}' has no rule: set min, max or beat_champion")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"gate on '{self.metric}': min {self.min} is above max {self.max}")
        if self.beat_champion and self.direction is None:
            raise ValueError(
                f"gate on '{self.metric}': Gyre does not know whether higher or lower is better "
                "for this metric; set higher_is_better: true or false"
            )
        return self

    @property
    def direction(self) -> bool | None:
        """True if higher is better, False if lower is, None if unknown."""
        if self.higher_is_better is not None:
            return self.higher_is_better
        return is_higher_better(self.metric)


class GateResult(BaseModel):
    """The outcome of one rule."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str
    rule: Rule
    threshold: float | None
    value: float
    passed: bool
    reason: str


class GateReport(BaseModel):
    """Every rule's outcome; ``passed`` only if all passed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    passed: bool
    results: tuple[GateResult, ...]

    @property
    def failures(self) -> list[GateResult]:
        return [r for r in self.results if not r.passed]

    def raise_if_failed(self) -> None:
        """Raise :class:`GateFailedError` naming every failed rule."""
        if not self.passed:
            lines = "; ".join(f"{r.metric} {r.rule}: {r.reason}" for r in self.failures)
            raise GateFailedError(
                f"{len(self.failures)} gate(s) failed: {lines}",
                hint="improve the model or, if the gate is wrong, change it in gyre.yaml",
            )


def parse_gates(raw: Iterable[Mapping[str, Any]], *, file: str | None = None) -> list[GateSpec]:
    """Gate specs from plain dicts (as read from YAML); errors name the gate's index."""
    specs = []
    for i, item in enumerate(raw):
        try:
            specs.append(GateSpec.model_validate(item))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'gate'}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(problems, file=file, key=f"gates[{i}]") from None
    return specs


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def evaluate_gates(
    gates: Sequence[GateSpec | Mapping[str, Any]],
    candidate_metrics: Mapping[str, float],
    champion_metrics: Mapping[str, float] | None,
) -> GateReport:
    """Check ``candidate_metrics`` against every gate (and the champion's metrics if any)."""
    specs = [g if isinstance(g, GateSpec) else parse_gates([g])[0] for g in gates]
    unknown = sorted({s.metric for s in specs if s.metric not in candidate_metrics})
    if unknown:
        raise ConfigError(
            f"gate(s) on {', '.join(map(repr, unknown))}, which the candidate does not have; "
            f"available metrics: {', '.join(sorted(candidate_metrics)) or '(none)'}",
            key="gates",
            hint="fix the metric name in gyre.yaml or make the trainer compute it",
        )
    results: list[GateResult] = []
    for spec in specs:
        value = float(candidate_metrics[spec.metric])
        if spec.min is not None:
            results.append(_bound(spec, "min", spec.min, value))
        if spec.max is not None:
            results.append(_bound(spec, "max", spec.max, value))
        if spec.beat_champion:
            results.append(_versus_champion(spec, value, champion_metrics))
    return GateReport(passed=all(r.passed for r in results), results=tuple(results))


def _bound(
    spec: GateSpec, rule: Literal["min", "max"], threshold: float, value: float
) -> GateResult:
    if math.isnan(value):
        passed, reason = False, f"{spec.metric} is NaN"
    elif rule == "min":
        passed = value >= threshold
        reason = f"{spec.metric} {_fmt(value)} {'>=' if passed else '<'} min {_fmt(threshold)}"
    else:
        passed = value <= threshold
        reason = f"{spec.metric} {_fmt(value)} {'<=' if passed else '>'} max {_fmt(threshold)}"
    return GateResult(
        metric=spec.metric,
        rule=rule,
        threshold=threshold,
        value=value,
        passed=passed,
        reason=reason,
    )


def _versus_champion(
    spec: GateSpec, value: float, champion: Mapping[str, float] | None
) -> GateResult:
    def result(threshold: float | None, passed: bool, reason: str) -> GateResult:
        return GateResult(
            metric=spec.metric,
            rule="beat_champion",
            threshold=threshold,
            value=value,
            passed=passed,
            reason=reason,
        )

    if champion is None:
        return result(None, True, "no champion yet")
    if spec.metric not in champion or math.isnan(float(champion[spec.metric])):
        # Blocking every release because an old champion never recorded this metric would
        # leave no way forward short of editing the gate; pass, and say why.
        return result(None, True, f"the champion has no recorded {spec.metric}; nothing to beat")
    best = float(champion[spec.metric])
    if math.isnan(value):
        return result(best, False, f"{spec.metric} is NaN")
    if spec.direction:
        threshold = best - spec.tolerance
        passed, better = value >= threshold, value >= best
    else:
        threshold = best + spec.tolerance
        passed, better = value <= threshold, value <= best
    champ = f"the champion's {_fmt(best)}"
    if better:
        reason = f"{spec.metric} {_fmt(value)} is no worse than {champ}"
    elif passed:
        within = _fmt(spec.tolerance)
        reason = f"{spec.metric} {_fmt(value)} is worse than {champ} but within {within}"
    else:
        reason = f"{spec.metric} {_fmt(value)} is worse than {champ}"
        if spec.tolerance:
            reason += f" by more than {_fmt(spec.tolerance)}"
    return result(threshold, passed, reason)

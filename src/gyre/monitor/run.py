"""Evaluating a monitor over one window of served traffic.

For the window [start, end) it reads the endpoint's inference log, compares each feature's
served distribution with the reference profile stored in the serving model's package (built
from its training rows), joins feedback labels to score the predictions, and compares that
error with the model's own validation error. Crossing a threshold raises an alert (audited);
what to do about it is the loop's retrain policy, not this stage's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from gyre.core.lineage import endpoint_node, model_node
from gyre.core.runs import track_run

if TYPE_CHECKING:
    import pyarrow as pa

    from gyre.core.context import StageContext
    from gyre.core.store.records import AlertRecord, ModelVersionRecord

INPUT_PREFIX = "in__"


@dataclass
class MonitorReport:
    monitor: str
    window: str
    start: datetime
    end: datetime
    predictions: int = 0
    model_version: str | None = None
    drift: list[dict[str, Any]] = field(default_factory=list)
    metric: str | None = None
    value: float | None = None
    baseline: float | None = None
    labelled: int = 0
    alerts: list[AlertRecord] = field(default_factory=list)
    run_id: str | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline

    @property
    def drifted_features(self) -> list[str]:
        return [d["feature"] for d in self.drift if d["drifted"]]

    def as_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "window": self.window,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "predictions": self.predictions,
            "model_version": self.model_version,
            "drift": self.drift,
            "drifted_features": self.drifted_features,
            "performance": {
                "metric": self.metric,
                "value": self.value,
                "baseline": self.baseline,
                "ratio": self.ratio,
                "labelled": self.labelled,
            },
            "alerts": [a.as_dict() for a in self.alerts],
            "run_id": self.run_id,
        }


def window_start(window: str, now: datetime) -> datetime:
    """The start (UTC) of the day, ISO week (Monday) or month that ``now`` falls in."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return day
    if window == "week":
        return day - timedelta(days=day.weekday())
    if window == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown monitor window {window!r}; expected day, week or month")


def _served_inputs(records: pa.Table) -> pa.Table:
    import pyarrow as pa

    names = [c for c in records.column_names if c.startswith(INPUT_PREFIX)]
    return pa.table({c[len(INPUT_PREFIX) :]: records[c] for c in names})


def _main_version(records: pa.Table) -> int:
    counts = Counter(records["model_version"].to_pylist())
    return int(counts.most_common(1)[0][0])


def check_window(
    ctx: StageContext, name: str, *, start: datetime, end: datetime, label: str
) -> MonitorReport:
    from gyre.datasets.reference import ReferenceProfile
    from gyre.models.packaging import read_manifest
    from gyre.monitor.drift import drift_report
    from gyre.monitor.feedback import FeedbackLog
    from gyre.monitor.inference_log import InferenceLog

    config = ctx.config.monitor(name)
    endpoint = ctx.config.endpoint(config.endpoint)
    ctx.store.operations.ensure_monitor(
        name, endpoint=config.endpoint, config=config.model_dump(mode="json")
    )
    report = MonitorReport(monitor=name, window=label, start=start, end=end)
    log = InferenceLog(ctx.paths.inference_logs)
    records = log.query(config.endpoint, start=start, end=end)
    report.predictions = records.num_rows
    with track_run(
        ctx,
        kind="monitor",
        job=name,
        params={"window": label, "start": start.isoformat(), "end": end.isoformat()},
    ) as run:
        report.run_id = run.id
        run.input(endpoint_node(config.endpoint))
        if records.num_rows == 0:
            return report
        version = ctx.store.models.version(endpoint.model, _main_version(records))
        report.model_version = version.ref
        run.input(model_node(version.model, version.version), version=version.package_id)
        metadata = read_manifest(ctx.artifacts, version.package_id).metadata
        if config.drift is not None and "reference_profile" in metadata:
            profile = ReferenceProfile.from_json(
                ctx.artifacts.get_bytes(metadata["reference_profile"]).decode()
            )
            current = _served_inputs(records)
            features = list(config.drift.features or profile.features)
            results = drift_report(
                profile,
                current,
                threshold=config.drift.threshold,
                method=config.drift.method,
                features=features,
            )
            report.drift = [r.as_dict() for r in results]
        if config.performance is not None:
            _score(ctx, report, config.performance.metric, version, FeedbackLog, log)
        run.metrics.update(
            predictions=report.predictions,
            drifted=len(report.drifted_features),
            **({config.performance.metric: report.value} if config.performance else {}),
        )
        report.alerts = _raise_alerts(ctx, name, report, config)
    return report


def _score(
    ctx: StageContext,
    report: MonitorReport,
    metric: str,
    version: ModelVersionRecord,
    feedback_cls: Any,
    log: Any,
) -> None:
    import numpy as np

    from gyre.core.errors import MonitorError
    from gyre.models.metrics import classification_metrics, regression_metrics

    feedback = feedback_cls(ctx.paths.feedback_logs, log)
    joined = feedback.join(report_endpoint(ctx, report), start=report.start, end=report.end)
    report.metric = metric
    report.baseline = version.metrics.get(metric)
    report.labelled = joined.num_rows
    if not joined.num_rows:
        return
    truth = np.asarray(joined["label"].to_numpy(zero_copy_only=False), dtype=np.float64)
    task = version.signature.get("task", "regression")
    if task == "classification":
        # Feedback labels are numbers; logged class labels are text: compare them as numbers.
        predicted = [_as_number(v) for v in joined["output_label"].to_pylist()]
        scores = classification_metrics(truth.tolist(), predicted)
    else:
        predicted_values = joined["output"].to_numpy(zero_copy_only=False)
        scores = regression_metrics(truth, np.asarray(predicted_values, dtype=np.float64))
    if metric not in scores:
        raise MonitorError(
            f"monitor '{report.monitor}' watches '{metric}', which is not computed for a "
            f"{task} model; available: {', '.join(sorted(scores))}",
            hint=f"fix monitors.{report.monitor}.performance.metric in gyre.yaml",
        )
    report.value = scores[metric]


def _as_number(value: Any) -> Any:
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def report_endpoint(ctx: StageContext, report: MonitorReport) -> str:
    return ctx.config.monitor(report.monitor).endpoint


def _raise_alerts(
    ctx: StageContext, name: str, report: MonitorReport, config: Any
) -> list[AlertRecord]:
    alerts = []
    if report.drifted_features and config.drift is not None:
        worst = max(report.drift, key=lambda d: d.get("score") or 0.0)
        alerts.append(
            ctx.store.operations.raise_alert(
                name,
                kind="drift",
                window=report.window,
                message=(
                    f"{len(report.drifted_features)} feature(s) drifted in {report.window}: "
                    + ", ".join(report.drifted_features)
                    + f" (worst {worst['feature']} {config.drift.method}={worst['score']:.3f})"
                ),
                details={"features": report.drift},
                value=float(worst["score"]),
                threshold=config.drift.threshold,
            )
        )
    ratio = report.ratio
    if (
        config.performance is not None
        and ratio is not None
        and ratio > config.performance.max_ratio
    ):
        alerts.append(
            ctx.store.operations.raise_alert(
                name,
                kind="performance",
                window=report.window,
                message=(
                    f"{report.metric} {report.value:.2f} in {report.window} is {ratio:.2f}x the "
                    f"validation {report.metric} {report.baseline:.2f} of {report.model_version} "
                    f"(limit {config.performance.max_ratio}x)"
                ),
                details={"labelled": report.labelled, "model_version": report.model_version},
                value=ratio,
                threshold=config.performance.max_ratio,
            )
        )
    return alerts

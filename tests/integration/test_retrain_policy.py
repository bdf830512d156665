"""The retrain policy: performance alerts retrain and re-gate, drift alone never does, cooldown.

Traffic is logged the way the server logs it (``inference_table`` of an ``InferenceEvent``,
predictions from the stored champion package), so each test controls the labels exactly: true
counts for a healthy window, counts shifted up for a window where demand outgrew the model.
"""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gyre.loop.retrain import PolicyState, apply_retrain_policy
from gyre.models.packaging import load_model
from gyre.monitor.inference_log import InferenceLog
from gyre.monitor.run import MonitorReport
from gyre.serve.app import InferenceEvent
from gyre.serve.endpoint import inference_table

from .conftest import Project, ProjectFactory


class Window:
    """One window of logged traffic (one request per day) and its labels."""

    def __init__(self, project: Project, first: dt.date, last: dt.date) -> None:
        ws = project.ws
        self.project = project
        champion = ws.store.models.alias("demand", "champion")
        assert champion is not None
        model = load_model(ws.artifacts, champion.package_id)
        features = ws.read_dataset("features")
        days = features["dteday"]
        rows = features.filter(
            pc.and_(pc.greater_equal(days, pa.scalar(first)), pc.less_equal(days, pa.scalar(last)))
        )
        self.start = datetime.now(UTC)
        log = InferenceLog(ws.paths.inference_logs)
        self.request_ids: list[str] = []
        self.rows: list[int] = []  # row index within its request
        self.truth: list[float] = []
        for day in pc.unique(rows["dteday"]).to_pylist():
            daily = rows.filter(pc.equal(rows["dteday"], pa.scalar(day)))
            inputs = {name: daily[name].to_numpy() for name in model.input_names}
            event = InferenceEvent(
                request_id=str(uuid.uuid4()),
                time=datetime.now(UTC),
                endpoint="demand",
                model_name="demand",
                model_version=champion.version,
                latency_ms=1.0,
                inputs=inputs,
                outputs=np.asarray(model.predict(daily)),
            )
            log.append(inference_table(event))
            self.request_ids += [event.request_id] * daily.num_rows
            self.rows += list(range(daily.num_rows))
            self.truth += [float(v) for v in daily["cnt"].to_pylist()]
        log.flush()
        self.end = datetime.now(UTC) + timedelta(microseconds=1)

    def label(self, shift: float = 0.0) -> None:
        self.project.ws.feedback(
            "demand",
            pa.table(
                {
                    "request_id": self.request_ids,
                    "row": self.rows,
                    "label": [v + shift for v in self.truth],
                }
            ),
        )

    def check(self, name: str) -> MonitorReport:
        return self.project.ws.monitor("demand", start=self.start, end=self.end, window=name)


def _released(new_project: ProjectFactory, **kwargs: object) -> Project:
    project = new_project(**kwargs)
    project.ws.ingest("rentals")
    project.ws.prepare()
    return project


def test_a_healthy_window_never_retrains(new_project: ProjectFactory) -> None:
    project = _released(new_project)
    project.release()
    window = Window(project, dt.date(2011, 4, 1), dt.date(2011, 4, 30))
    window.label()
    report = window.check("2011-04")

    # April is v1's own holdout: the served error is exactly its validation error.
    assert report.ratio is not None and abs(report.ratio - 1.0) < 1e-9
    assert not [a for a in report.alerts if a.kind == "performance"]
    trains = len(project.ws.runs(kind="train"))
    decision = apply_retrain_policy(project.ws.context, report, PolicyState.fresh())
    assert decision.action == "none"
    assert decision.release is None
    assert len(project.ws.runs(kind="train")) == trains
    # Drift alerts (if any) are recorded, not acted on.
    for alert in report.alerts:
        stored = project.ws.store.operations.alert(alert.id)
        assert (stored.status, stored.action) == ("acknowledged", "recorded")


def test_a_performance_alert_retrains_and_cooldown_holds_the_next(
    new_project: ProjectFactory,
) -> None:
    project = _released(new_project)
    ws = project.ws
    project.release()
    window = Window(project, dt.date(2011, 4, 16), dt.date(2011, 4, 30))
    window.label(shift=150.0)  # demand far above what the model predicts
    report = window.check("2011-05")
    (alert,) = [a for a in report.alerts if a.kind == "performance"]
    assert report.ratio is not None and report.ratio > 1.3
    assert alert.threshold == 1.3 and alert.value == report.ratio

    project.arrive("2011-05")  # the month's actual counts land as a new batch
    state = PolicyState.fresh()
    decision = apply_retrain_policy(ws.context, report, state)

    # The policy ingested May, rebuilt features and released a version trained on the last
    # 180 days, which beat v1 on May's holdout.
    assert decision.action == "retrained", decision.as_dict()
    assert decision.release is not None and decision.release.promotion is not None
    assert ws.dataset("rentals").record.version == 4
    assert decision.release.train.as_dict()["split"]["data"] == "features@2"
    train_run = ws.run(decision.release.train.run_id)[0]
    assert train_run.params["window_days"] == 180
    assert decision.release.validation.champion == "demand:1"
    new = decision.release.promotion.version
    assert new == 2
    assert ws.store.models.alias("demand", "champion").version == new  # type: ignore[union-attr]
    reason = next(e for e in reversed(ws.audit_events()) if e.action == "alias.moved").data
    assert reason["reason"].startswith(f"retrain policy: alert #{alert.id}")
    stored = ws.store.operations.alert(alert.id)
    assert (stored.status, stored.action) == ("resolved", "retrained")
    assert stored.action_run_id == decision.release.train.run_id
    assert state.since_retrain["demand"] == 0

    # The same window judged again right away: another alert, but the policy waits.
    again = window.check("2011-05 again")
    (second,) = [a for a in again.alerts if a.kind == "performance"]
    held = apply_retrain_policy(ws.context, again, state)
    assert held.action == "cooldown"
    assert held.release is None
    assert [v.version for v in ws.model("demand")] == [2, 1]
    stored = ws.store.operations.alert(second.id)
    assert (stored.status, stored.action) == ("acknowledged", "cooldown")

    # One window later the cooldown is over and an alert acts again.
    third = window.check("2011-06")
    after = apply_retrain_policy(ws.context, third, state)
    assert after.action in ("retrained", "retrain-refused")
    assert after.release is not None
    assert len(ws.model("demand")) == 3


def test_a_refused_retrain_is_recorded_on_the_alert(new_project: ProjectFactory) -> None:
    project = _released(
        new_project, edit=lambda text: text.replace("approval: auto", "approval: required")
    )
    ws = project.ws
    trained = ws.train("demand")
    assert ws.validate(trained.version.ref).passed
    ws.approve(trained.version.ref, reason="first model")
    ws.promote(trained.version.ref, reason="approved")

    window = Window(project, dt.date(2011, 4, 16), dt.date(2011, 4, 30))
    window.label(shift=150.0)
    report = window.check("2011-05")
    (alert,) = [a for a in report.alerts if a.kind == "performance"]
    decision = apply_retrain_policy(ws.context, report, PolicyState.fresh())

    assert decision.action == "retrain-refused"
    assert decision.release is not None and decision.release.promotion is None
    assert decision.release.validation.passed is True
    assert "needs approval" in (decision.release.refusal or "")
    assert ws.store.models.alias("demand", "champion").version == 1  # type: ignore[union-attr]
    assert [v.version for v in ws.model("demand")] == [2, 1]
    stored = ws.store.operations.alert(alert.id)
    assert (stored.status, stored.action) == ("acknowledged", "retrain-refused")
    assert stored.action_run_id == decision.release.train.run_id
    assert decision.as_dict()["release"]["refusal"] == decision.release.refusal

"""The retrain policy: what the loop does when a monitor raises an alert.

A performance alert on a monitor whose ``on_alert`` is ``retrain`` refreshes the data (new
source batches, rebuilt features), trains on the most recent ``retrain.window_days``, and
releases the new version through the same gates as any other: it must beat the champion on
its own holdout. Drift alerts are recorded and shown but do not retrain by themselves: inputs
can drift (a new season) while predictions stay good, and retraining then only adds risk.
``cooldown_windows`` stops a retrain storm: after a retrain the policy waits that many windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.loop.pipeline import ReleaseReport
    from gyre.monitor.run import MonitorReport


@dataclass
class PolicyDecision:
    monitor: str
    window: str
    action: str  # none | cooldown | retrained | retrain-refused
    alert_ids: tuple[int, ...]
    release: ReleaseReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "monitor": self.monitor,
            "window": self.window,
            "action": self.action,
            "alerts": list(self.alert_ids),
            "release": self.release.as_dict() if self.release else None,
        }


@dataclass
class PolicyState:
    """Windows evaluated since the last retrain, per monitor (kept by the loop controller)."""

    since_retrain: dict[str, int]

    @classmethod
    def fresh(cls) -> PolicyState:
        return cls(since_retrain={})


def apply_retrain_policy(
    ctx: StageContext, report: MonitorReport, state: PolicyState
) -> PolicyDecision:
    from gyre.loop.pipeline import refresh_data, release

    config = ctx.config.monitor(report.monitor)
    waited = state.since_retrain.get(report.monitor, 10**9)
    state.since_retrain[report.monitor] = waited + 1
    triggers = [a for a in report.alerts if a.kind == "performance"]
    decision = PolicyDecision(
        report.monitor, report.window, "none", tuple(a.id for a in report.alerts)
    )
    if not triggers or config.on_alert != "retrain":
        for alert in report.alerts:
            ctx.store.operations.resolve_alert(alert.id, action="recorded", status="acknowledged")
        return decision
    if waited < config.retrain.cooldown_windows:
        decision.action = "cooldown"
        for alert in report.alerts:
            ctx.store.operations.resolve_alert(alert.id, action="cooldown", status="acknowledged")
        return decision
    model = ctx.config.endpoint(config.endpoint).model
    refresh_data(ctx)
    outcome = release(
        ctx,
        model,
        window_days=config.retrain.window_days,
        reason=f"retrain policy: alert #{triggers[0].id} ({triggers[0].message})",
    )
    decision.release = outcome
    decision.action = "retrained" if outcome.promotion else "retrain-refused"
    state.since_retrain[report.monitor] = 0
    for alert in report.alerts:
        ctx.store.operations.resolve_alert(
            alert.id,
            action=decision.action if alert in triggers else "recorded",
            status="resolved" if alert in triggers and outcome.promotion else "acknowledged",
            run_id=outcome.train.run_id,
        )
    return decision

"""Moving traffic: promote a model version to an alias, roll an endpoint back.

Gates before traffic: a version reaches an alias only if its latest gate result passed and,
where the model requires approval, someone approved it and nobody rejected it since. Every
move is a ``deploy`` run whose lineage links the model version to each endpoint serving that
alias, and every traffic change is an audited deployment record. Servers poll the alias, so a
promotion or rollback takes effect without a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from gyre.core.errors import GateFailedError, NotFoundError
from gyre.core.lineage import endpoint_node, model_node
from gyre.core.runs import track_run

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.core.store.records import ModelVersionRecord


@dataclass(frozen=True)
class Promotion:
    model: str
    alias: str
    version: int
    previous: int | None
    endpoints: tuple[str, ...]
    run_id: str

    def as_dict(self) -> dict[str, object]:
        return {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "previous": self.previous,
            "endpoints": list(self.endpoints),
            "run_id": self.run_id,
        }


def check_release(ctx: StageContext, version: ModelVersionRecord) -> None:
    """Raise :class:`GateFailedError` unless ``version`` may take traffic."""
    gates = ctx.store.models.gate_results(version)
    if not gates:
        raise GateFailedError(
            f"model {version.ref} has not been validated",
            hint=f"run `gyre validate {version.ref}` first",
        )
    if not gates[-1].passed:
        failed = [r.get("reason", "") for r in gates[-1].results if not r.get("passed")]
        raise GateFailedError(
            f"model {version.ref} failed its gates: " + "; ".join(failed),
            hint="train a better version, or change the gates in gyre.yaml",
        )
    config = ctx.config.models.get(version.model)
    if config is not None and config.approval == "required":
        decisions = ctx.store.models.approvals(version)
        if not decisions or decisions[-1].decision != "approved":
            state = decisions[-1].decision if decisions else "not yet approved"
            raise GateFailedError(
                f"model {version.ref} needs approval before release ({state})",
                hint=f"an approver runs `gyre approve {version.ref} --reason ...`",
            )


def promote(
    ctx: StageContext,
    model: str,
    version: int,
    *,
    alias: str = "champion",
    reason: str,
    kind: str = "deploy",
) -> Promotion:
    """Point ``alias`` at ``model:version`` after checking its gates and approval."""
    record = ctx.store.models.version(model, version)
    check_release(ctx, record)
    return _move(ctx, record, alias=alias, reason=reason, kind=kind)


def _move(
    ctx: StageContext, record: ModelVersionRecord, *, alias: str, reason: str, kind: str
) -> Promotion:
    store = ctx.store
    previous = store.models.alias(record.model, alias)
    serving = [e for e in _declared_endpoints(ctx, record.model, alias)]
    with track_run(
        ctx,
        kind=kind,
        job=f"{record.model}@{alias}",
        params={
            "version": record.version,
            "previous": previous.version if previous else None,
            "reason": reason,
        },
    ) as run:
        run.input(model_node(record.model, record.version), version=record.package_id)
        with store.transaction() as conn:
            store.models.set_alias(record.model, alias, record.version, reason=reason, conn=conn)
        for name in serving:
            endpoint = store.operations.ensure_endpoint(name, model=record.model, alias=alias)
            with store.transaction() as conn:
                store.operations.record_deployment(
                    conn,
                    endpoint,
                    {
                        "versions": [
                            {"model": record.model, "version": record.version, "weight": 1.0}
                        ],
                        "alias": alias,
                        "reason": reason,
                        "previous_version": previous.version if previous else None,
                    },
                    run.id,
                )
            run.output(endpoint_node(name))
    return Promotion(
        record.model,
        alias,
        record.version,
        previous.version if previous else None,
        tuple(serving),
        run.id,
    )


def _declared_endpoints(ctx: StageContext, model: str, alias: str) -> list[str]:
    return sorted(
        name
        for name, cfg in ctx.config.endpoints.items()
        if cfg.model == model and cfg.alias == alias
    )


def rollback(ctx: StageContext, endpoint: str, *, reason: str) -> Promotion:
    """Point the endpoint's alias back at the version it served before the current one.

    Rollback skips the gate check on purpose: the previous version already passed its gates
    when it was released, and an operator rolling back is restoring known-good behaviour.
    """
    record = ctx.store.operations.endpoint(endpoint)
    history = ctx.store.operations.deployments(endpoint)
    current = ctx.store.models.alias(record.model, record.alias)
    if current is None:
        raise NotFoundError(f"endpoint '{endpoint}' serves nothing yet; nothing to roll back")
    earlier = [
        d.traffic["versions"][0]["version"]
        for d in history
        if d.traffic.get("versions") and d.traffic["versions"][0]["version"] != current.version
    ]
    if not earlier:
        raise NotFoundError(
            f"endpoint '{endpoint}' has served only {current.ref}; there is no earlier version",
        )
    target = ctx.store.models.version(record.model, earlier[-1])
    return _move(ctx, target, alias=record.alias, reason=reason, kind="rollback")

"""Validating a model version against its gates, champion included.

``beat_champion`` gates are judged on equal terms: the current champion is scored on exactly
the candidate's holdout (the split recorded in the candidate's package), not on its own old
validation numbers. The gate result is stored and audited; promotion checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gyre.core.lineage import model_node
from gyre.core.runs import track_run

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.core.store.records import ModelVersionRecord
    from gyre.validate.gates import GateReport


@dataclass(frozen=True)
class ValidationReport:
    version: ModelVersionRecord
    gates: GateReport
    champion: str | None
    champion_metrics: dict[str, float] | None
    run_id: str

    @property
    def passed(self) -> bool:
        return self.gates.passed

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.version.ref,
            "passed": self.passed,
            "champion": self.champion,
            "candidate_metrics": self.version.metrics,
            "champion_metrics": self.champion_metrics,
            "gates": [r.model_dump(mode="json") for r in self.gates.results],
            "run_id": self.run_id,
        }


def champion_on_holdout(
    ctx: StageContext, candidate: ModelVersionRecord, champion: ModelVersionRecord
) -> dict[str, float]:
    """Score ``champion`` on the candidate's validation rows."""
    from gyre.datasets.catalog import get_version, parse_dataset_ref
    from gyre.datasets.reader import read_table
    from gyre.datasets.windows import Split, apply_split
    from gyre.models.metrics import evaluate
    from gyre.models.packaging import load_model, read_manifest

    split = Split.model_validate(
        read_manifest(ctx.artifacts, candidate.package_id).metadata["split"]
    )
    name, version = parse_dataset_ref(split.data)
    data = get_version(ctx.store, ctx.artifacts, name, version)
    _, valid = apply_split(read_table(ctx.artifacts, data.manifest), split)
    model = load_model(ctx.artifacts, champion.package_id)
    config = ctx.config.model(candidate.model)
    return evaluate(
        model.predict,
        valid,
        list(config.features),
        config.target,
        config.task,
        predict_proba=model.predict_proba if config.task == "classification" else None,
        classes=model.signature.classes,
    )


def validate_model(
    ctx: StageContext, name: str, version: int | None = None, *, alias: str = "champion"
) -> ValidationReport:
    from gyre.validate.gates import evaluate_gates

    config = ctx.config.model(name)
    candidate = ctx.store.models.version(name, version)
    champion = ctx.store.models.alias(name, alias)
    gates = [g.model_dump(exclude_none=True) for g in config.gates]
    with track_run(
        ctx, kind="validate", job=name, params={"candidate": candidate.ref, "gates": gates}
    ) as run:
        run.input(model_node(name, candidate.version), version=candidate.package_id)
        champion_metrics = None
        if champion is not None and champion.id != candidate.id:
            run.input(model_node(name, champion.version), version=champion.package_id)
            if any(g.get("beat_champion") for g in gates):
                champion_metrics = champion_on_holdout(ctx, candidate, champion)
        report = evaluate_gates(gates, candidate.metrics, champion_metrics)
        ctx.store.models.add_gate_result(
            candidate,
            suite="gates",
            passed=report.passed,
            results=[r.model_dump(mode="json") for r in report.results],
            run_id=run.id,
        )
        run.metrics.update(passed=report.passed)
    return ValidationReport(
        candidate, report, champion.ref if champion else None, champion_metrics, run.id
    )

"""One pass of the project's DAG: sources -> derived datasets -> models -> gates -> aliases.

The order comes from gyre.yaml: every source is ingested, derived datasets are rebuilt in
dependency order (unchanged inputs give a cache hit, not a new version), and every model is
trained, validated and, if its gates pass, promoted to the alias its endpoints serve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gyre.core.errors import GateFailedError

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.ingest.run import IngestReport
    from gyre.prepare.run import PrepareReport
    from gyre.serve.deploy import Promotion
    from gyre.train.run import TrainReport
    from gyre.validate.run import ValidationReport


@dataclass
class ReleaseReport:
    """Train -> validate -> promote for one model."""

    train: TrainReport
    validation: ValidationReport
    promotion: Promotion | None
    refusal: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "train": self.train.as_dict(),
            "validation": self.validation.as_dict(),
            "promotion": self.promotion.as_dict() if self.promotion else None,
            "refusal": self.refusal,
        }


@dataclass
class PipelineReport:
    ingested: list[IngestReport] = field(default_factory=list)
    prepared: list[PrepareReport] = field(default_factory=list)
    releases: list[ReleaseReport] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ingested": [r.as_dict() for r in self.ingested],
            "prepared": [r.as_dict() for r in self.prepared],
            "releases": [r.as_dict() for r in self.releases],
        }


def refresh_data(ctx: StageContext) -> tuple[list[IngestReport], list[PrepareReport]]:
    from gyre.ingest.run import ingest_source
    from gyre.prepare.run import prepare_dataset

    ingested = [ingest_source(ctx, name) for name in ctx.config.sources]
    prepared = [prepare_dataset(ctx, name) for name in ctx.config.dataset_order()]
    return ingested, prepared


def release(
    ctx: StageContext, model: str, *, window_days: int | None = None, reason: str
) -> ReleaseReport:
    """Train a new version, validate it, and promote it if the gates (and approval) allow."""
    from gyre.serve.deploy import promote
    from gyre.train.run import train_model
    from gyre.validate.run import validate_model

    trained = train_model(ctx, model, window_days=window_days)
    validation = validate_model(ctx, model, trained.version.version)
    if not validation.passed:
        reasons = "; ".join(r.reason for r in validation.gates.results if not r.passed)
        return ReleaseReport(trained, validation, None, refusal=f"gates failed: {reasons}")
    aliases = {e.alias for e in ctx.config.endpoints.values() if e.model == model} or {"champion"}
    promotion = None
    try:
        for alias in sorted(aliases):
            promotion = promote(ctx, model, trained.version.version, alias=alias, reason=reason)
    except GateFailedError as exc:  # approval required and not yet given
        return ReleaseReport(trained, validation, None, refusal=exc.message)
    return ReleaseReport(trained, validation, promotion)


def run_pipeline(ctx: StageContext) -> PipelineReport:
    """Ingest, prepare, and release every model once."""
    report = PipelineReport()
    report.ingested, report.prepared = refresh_data(ctx)
    for model in ctx.config.models:
        report.releases.append(release(ctx, model, reason="pipeline run"))
    return report

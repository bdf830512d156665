"""A source's ingest history: its batches, the schema drift they caused, its contract versions.

    history = ingest_history(ctx, "rentals")
    for batch in history.batches:          # oldest first, refused batches included
        print(batch.time, batch.batch, batch.status, batch.dataset_version, batch.contract_version)
    for change in contract_history(ctx, "rentals"):
        print(change.version, change.origin, change.changes)   # ['+ promo: string, nullable']

Batches are the source's ``ingest`` and ``replay`` runs, so a batch refused by its contract or
its ``schema_drift`` policy shows up too, with the error that refused it (it committed nothing,
so it has no dataset version and no drift events).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gyre.core.store.records import Record

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.core.store.records import (
        ContractVersionRecord,
        DriftEventRecord,
        IngestBatchRecord,
    )

# Without a dataset version: a failed run refused its batch; a completed one (a replay that
# accepted nothing) changed nothing; a run still "running" is in progress or was killed.
_STATUS = {"completed": "unchanged", "failed": "refused", "running": "running"}


@dataclass(frozen=True)
class BatchEntry(Record):
    """One batch of a source (an ingest or replay run) and what became of it."""

    time: datetime
    kind: str  # ingest | replay
    batch: str
    status: str  # committed | refused | unchanged | running
    rows_in: int | None
    accepted: int | None
    quarantined: int | None
    deduplicated: int | None
    dataset_version: int | None
    contract_version: int | None
    run_id: str
    error: str | None
    drift_events: int = 0


@dataclass(frozen=True)
class ContractVersionEntry(Record):
    """One version of a source's contract, with what changed since the one before."""

    version: int
    origin: str  # file | evolved
    created_at: datetime
    content_id: str
    file: str | None
    run_id: str | None
    columns: list[dict[str, Any]]
    evolved: list[dict[str, Any]]
    changes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IngestHistory:
    source: str
    batches: list[BatchEntry]
    drift_events: list[DriftEventRecord]
    contract_versions: list[ContractVersionEntry]
    truncated: bool = False  # only the latest ``limit`` batches are listed

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "batches": [b.as_dict() for b in self.batches],
            "batches_truncated": self.truncated,
            "drift_events": [e.as_dict() for e in self.drift_events],
            "contract_versions": [v.as_dict() for v in self.contract_versions],
        }


def ingest_history(ctx: StageContext, source: str, *, limit: int | None = None) -> IngestHistory:
    """Batches (the latest ``limit``, oldest first), drift events and contract versions of
    ``source``. A name that is neither declared nor ever ingested is a NotFoundError."""
    runs = ctx.store.schemas.ingest_batches(source, limit=limit + 1 if limit else None)
    truncated = bool(limit) and len(runs) > (limit or 0)
    runs = runs[:limit] if limit else runs
    if not runs and source not in ctx.config.sources:
        ctx.config.source(source)  # raises, naming the sources that exist
    events = ctx.store.schemas.drift_events(source)
    if limit:
        shown = {run.run_id for run in runs}
        events = [e for e in events if e.run_id in shown]
    per_run: dict[str, int] = {}
    for event in events:
        per_run[event.run_id] = per_run.get(event.run_id, 0) + 1
    return IngestHistory(
        source=source,
        batches=[_entry(run, per_run.get(run.run_id, 0)) for run in reversed(runs)],
        drift_events=list(reversed(events)),
        contract_versions=contract_history(ctx, source),
        truncated=truncated,
    )


def contract_history(ctx: StageContext, source: str) -> list[ContractVersionEntry]:
    """Every contract version of ``source``, oldest first, each with its changes."""
    from gyre.ingest.contract_versions import column_diff

    out: list[ContractVersionEntry] = []
    previous: ContractVersionRecord | None = None
    for record in ctx.store.schemas.contract_versions(source):
        if previous is None:
            changes = [f"first version ({len(record.columns)} columns)"]
        else:
            changes = column_diff(previous.columns, record.columns)
            changes += _contract_changes(ctx, previous, record)
            if not changes:
                changes = ["no change to columns or rules (descriptions or layout only)"]
        out.append(
            ContractVersionEntry(
                version=record.version,
                origin=record.origin,
                created_at=record.created_at,
                content_id=record.content_id,
                file=record.file,
                run_id=record.run_id,
                columns=record.columns,
                evolved=record.evolved,
                changes=changes,
            )
        )
        previous = record
    return out


def _contract_changes(
    ctx: StageContext, before: ContractVersionRecord, after: ContractVersionRecord
) -> list[str]:
    """Changes outside the columns (unique, primary_key, rows, freshness, null_values...)."""
    import yaml

    from gyre.core.errors import ArtifactError

    try:
        old = yaml.safe_load(ctx.artifacts.get_bytes(before.content_id)) or {}
        new = yaml.safe_load(ctx.artifacts.get_bytes(after.content_id)) or {}
    except ArtifactError:  # the blob is gone (a pruned store): the column diff must do
        return []
    keys = [k for k in dict.fromkeys([*old, *new]) if k not in ("columns", "description")]
    return [f"~ {k}: {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def _entry(run: IngestBatchRecord, drift_events: int) -> BatchEntry:
    stats = run.stats or {}
    if run.kind == "replay":
        batch = f"replay of {run.params.get('quarantine', 'the quarantine')}"
        rows_in, quarantined = stats.get("replayed"), stats.get("still_quarantined")
    else:
        batch = str(run.params.get("batch", "?"))
        rows_in, quarantined = stats.get("rows_in"), stats.get("quarantined")
    return BatchEntry(
        time=run.started_at,
        kind=run.kind,
        batch=batch,
        status="committed"
        if run.dataset_version is not None
        else _STATUS.get(run.status, run.status),
        rows_in=rows_in,
        accepted=stats.get("accepted"),
        quarantined=quarantined,
        deduplicated=stats.get("deduplicated"),
        dataset_version=run.dataset_version,
        contract_version=stats.get("contract_version"),
        run_id=run.run_id,
        error=run.error,
        drift_events=drift_events,
    )

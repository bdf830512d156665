"""Ingesting a configured source: new files -> contract -> dataset version + quarantine.

Each new file is one batch and one ``ingest`` run. The raw file is stored content-addressed,
so lineage reaches the exact bytes the rows came from. Accepted rows are appended to the
source's dataset as a new version; refused rows go to ``<source>.quarantine`` with their file,
line, rule, value and reason. The list of files already ingested is committed in the same
transaction as the dataset version, so a crash never ingests a file twice or loses one.
Every batch reports rows in = accepted + quarantined + deduplicated.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gyre.core.errors import SourceError
from gyre.core.lineage import dataset_node, file_node, source_node
from gyre.core.runs import code_hash, track_run

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from gyre.core.context import StageContext
    from gyre.datasets.catalog import DatasetVersion

QUARANTINE_SUFFIX = ".quarantine"


@dataclass(frozen=True)
class BatchReport:
    file: str
    rows_in: int
    accepted: int
    quarantined: int
    deduplicated: int
    dataset_version: str | None
    quarantine_version: str | None
    run_id: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class IngestReport:
    source: str
    batches: list[BatchReport] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def rows_in(self) -> int:
        return sum(b.rows_in for b in self.batches)

    @property
    def accepted(self) -> int:
        return sum(b.accepted for b in self.batches)

    @property
    def quarantined(self) -> int:
        return sum(b.quarantined for b in self.batches)

    @property
    def deduplicated(self) -> int:
        return sum(b.deduplicated for b in self.batches)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "rows_in": self.rows_in,
            "accepted": self.accepted,
            "quarantined": self.quarantined,
            "deduplicated": self.deduplicated,
            "batches": [b.as_dict() for b in self.batches],
            "skipped_already_ingested": self.skipped,
        }


def pending_files(ctx: StageContext, name: str) -> tuple[list[Path], list[Path]]:
    """(new files, files already ingested) for source ``name``, in name order."""
    config = ctx.config.source(name)
    pattern = str(ctx.config.resolve(config.path))
    # glob.glob, not Path.glob: the pattern may be absolute (data outside the project).
    matches = glob.glob(pattern, recursive=True)  # noqa: PTH207
    files = sorted(Path(p) for p in matches if Path(p).is_file())
    seen = ctx.store.datasets.source_state(name).get("files", {})
    new = [f for f in files if _relative(ctx, f) not in seen]
    old = [f for f in files if _relative(ctx, f) in seen]
    return new, old


def _latest(ctx: StageContext, name: str) -> DatasetVersion | None:
    from gyre.core.errors import NotFoundError
    from gyre.datasets.catalog import get_version

    try:
        return get_version(ctx.store, ctx.artifacts, name)
    except NotFoundError:
        return None


def _relative(ctx: StageContext, path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ctx.paths.root))
    except ValueError:
        return str(path.resolve())


def ingest_source(ctx: StageContext, name: str) -> IngestReport:
    """Ingest every file of source ``name`` not ingested before."""
    from gyre.ingest.contract import load_contract

    config = ctx.config.source(name)
    if config.type != "csv":
        raise SourceError(f"source '{name}' has type '{config.type}'; only csv is supported yet")
    contract_path = ctx.config.resolve(config.contract)
    contract = load_contract(contract_path)
    new, old = pending_files(ctx, name)
    report = IngestReport(source=name, skipped=[_relative(ctx, f) for f in old])
    if not new:
        return report
    task = ctx.progress.task(f"ingest {name}", total=len(new))
    for path in new:
        report.batches.append(
            _ingest_file(ctx, name, path, contract, contract_path, config.quarantine_limit)
        )
        task.advance()
    task.close()
    return report


def _ingest_file(
    ctx: StageContext,
    name: str,
    path: Path,
    contract: Any,
    contract_path: Path,
    limit: float,
) -> BatchReport:
    from gyre.datasets.catalog import register_version, stage_version
    from gyre.datasets.writer import append
    from gyre.ingest.csv_batch import ingest_batch

    relative = _relative(ctx, path)
    with track_run(
        ctx,
        kind="ingest",
        job=name,
        params={"file": relative, "quarantine_limit": limit},
        code=code_hash([contract_path]),
    ) as run:
        raw_id = ctx.artifacts.put_file(path)
        run.input(source_node(name))
        run.input(file_node(relative, raw_id), version=raw_id)
        result = ingest_batch(path, contract, quarantine_limit=limit, display_name=relative)
        stats = {
            "file": relative,
            "raw_content_id": raw_id,
            "rows_in": result.rows_in,
            "accepted": result.accepted,
            "quarantined": result.quarantined,
            "deduplicated": 0,
        }
        # Each new version is the previous one plus this batch: lineage records both as inputs,
        # so walking upstream from any version reaches every raw file it contains.
        base = _latest(ctx, name)
        if base is not None:
            run.input(dataset_node(name, base.record.version), version=base.record.content_id)
        staged = stage_version(
            ctx.artifacts,
            name,
            append(ctx.artifacts, base.manifest if base else None, result.accepted_table),
            kind="source",
            stats=stats,
        )
        staged_quarantine = None
        if result.quarantined:
            q_name = name + QUARANTINE_SUFFIX
            q_base = _latest(ctx, q_name)
            if q_base is not None:
                run.input(
                    dataset_node(q_name, q_base.record.version), version=q_base.record.content_id
                )
            staged_quarantine = stage_version(
                ctx.artifacts,
                q_name,
                append(ctx.artifacts, q_base.manifest if q_base else None, result.quarantine),
                kind="quarantine",
                stats=stats,
            )
        registered: list[DatasetVersion] = []

        def commit_together(conn: Connection, version: int) -> None:
            # The quarantine version and the source's position commit in the same transaction
            # as the source version: a crash leaves all three or none, never a file half-taken.
            if staged_quarantine is not None:
                registered.append(
                    register_version(ctx.store, staged_quarantine, run_id=run.id, conn=conn)
                )
            state = ctx.store.datasets.source_state(name)
            files = dict(state.get("files", {}))
            files[relative] = {"content_id": raw_id, "version": version}
            ctx.store.datasets.save_source_state(
                conn, name, "csv", {"path": ctx.config.source(name).path}, {**state, "files": files}
            )

        version = register_version(ctx.store, staged, run_id=run.id, also=commit_together)
        quarantine_ref = None
        if registered:
            quarantine_ref = registered[-1].ref
            run.output(
                dataset_node(registered[-1].record.dataset, registered[-1].record.version),
                version=registered[-1].record.content_id,
            )
        run.output(dataset_node(name, version.record.version), version=version.record.content_id)
        run.metrics.update(
            rows_in=result.rows_in, accepted=result.accepted, quarantined=result.quarantined
        )
    return BatchReport(
        file=relative,
        rows_in=result.rows_in,
        accepted=result.accepted,
        quarantined=result.quarantined,
        deduplicated=0,
        dataset_version=version.ref,
        quarantine_version=quarantine_ref,
        run_id=run.id,
    )

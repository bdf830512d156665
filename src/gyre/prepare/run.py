"""Running a derived dataset's SQL on DuckDB into a new dataset version.

Inputs are the latest versions of the datasets named in ``inputs``; each is visible to the SQL
under its name, read straight from its Parquet parts. Output bytes are deterministic, so when
the inputs and the SQL are unchanged the result has the same content id as the latest version
and no new version is registered (a cache hit, reported as such).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gyre.core.errors import NotFoundError
from gyre.core.lineage import dataset_node
from gyre.core.runs import code_hash, track_run

if TYPE_CHECKING:
    from gyre.core.context import StageContext
    from gyre.datasets.catalog import DatasetVersion


@dataclass(frozen=True)
class PrepareReport:
    dataset: str
    version: DatasetVersion
    inputs: tuple[str, ...]
    cached: bool
    run_id: str

    def as_dict(self) -> dict[str, object]:
        return {
            "dataset": self.dataset,
            "version": self.version.ref,
            "rows": self.version.record.row_count,
            "content_id": self.version.record.content_id,
            "inputs": list(self.inputs),
            "cached": self.cached,
            "run_id": self.run_id,
        }


def prepare_dataset(ctx: StageContext, name: str) -> PrepareReport:
    from gyre.datasets.catalog import commit_version, get_version
    from gyre.datasets.manifest import save_manifest
    from gyre.datasets.reader import part_paths, read_table
    from gyre.datasets.writer import write_table
    from gyre.prepare.sql import run_sql

    config = ctx.config.dataset(name)
    sql_path = ctx.config.resolve(config.sql) if config.sql else None
    query = sql_path.read_text(encoding="utf-8") if sql_path else (config.query or "")
    inputs = [get_version(ctx.store, ctx.artifacts, source) for source in config.inputs]
    with track_run(
        ctx,
        kind="prepare",
        job=name,
        params={"inputs": [v.ref for v in inputs]},
        code=code_hash([sql_path] if sql_path else [], extra=config.query or ""),
    ) as run:
        for version in inputs:
            run.input(
                dataset_node(version.record.dataset, version.record.version),
                version=version.record.content_id,
            )
        # Local stores let DuckDB read the Parquet parts in place; others are read into Arrow.
        tables: dict[str, Any] = {
            v.record.dataset: part_paths(ctx.artifacts, v.manifest)
            if ctx.artifacts.is_local
            else read_table(ctx.artifacts, v.manifest)
            for v in inputs
        }
        table = run_sql(query, tables, source=str(sql_path or f"datasets.{name}.query"))
        manifest = write_table(ctx.artifacts, table)
        cid = save_manifest(ctx.artifacts, manifest)
        try:
            latest: DatasetVersion | None = get_version(ctx.store, ctx.artifacts, name)
        except NotFoundError:  # the first run of this dataset
            latest = None
        cached = latest is not None and latest.record.content_id == cid
        if cached and latest is not None:
            output = latest
        else:
            output = commit_version(
                ctx.store,
                ctx.artifacts,
                name,
                manifest,
                kind="derived",
                run_id=run.id,
                stats={"rows": table.num_rows, "inputs": [v.ref for v in inputs]},
                table=table,
            )
        run.output(dataset_node(name, output.record.version), version=output.record.content_id)
        run.metrics.update(rows=table.num_rows, cached=cached)
    return PrepareReport(name, output, tuple(v.ref for v in inputs), cached, run.id)

"""Committing a batch: its version, its quarantine records as the next quarantine version, the
source's position and the schema step's outcome, in one transaction (the run completes in it
too), so a crash at any moment leaves all of them or none.

The quarantine records can be written first, beside other work (:func:`write_quarantine`, as a
file read in blocks does while its profile is counted); nothing is registered until
:func:`commit_version`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gyre.core.lineage import dataset_node
from gyre.ingest.run import QUARANTINE_SUFFIX, latest_version

if TYPE_CHECKING:
    from collections.abc import Mapping

    import pyarrow as pa
    from sqlalchemy import Connection

    from gyre.core.config import SourceConfig
    from gyre.core.context import StageContext
    from gyre.core.runs import TrackedRun
    from gyre.datasets.catalog import DatasetVersion, StagedVersion
    from gyre.datasets.manifest import DatasetManifest
    from gyre.datasets.profile import DatasetProfile
    from gyre.ingest.schema_step import HeldSchema


@dataclass(frozen=True)
class WrittenQuarantine:
    """A batch's quarantine records written as the parts of the next quarantine version, and
    that version's profile: what :func:`commit_version` registers (nothing is registered yet,
    so it can be written beside other work)."""

    base: DatasetVersion | None  # the quarantine version it follows
    manifest: DatasetManifest
    profile: DatasetProfile


def quarantine_base(ctx: StageContext, name: str) -> DatasetVersion | None:
    """The latest version of source ``name``'s quarantine dataset (read from the store: on the
    thread that opened it)."""
    return latest_version(ctx, name + QUARANTINE_SUFFIX)


def write_quarantine(
    ctx: StageContext, base: DatasetVersion | None, quarantine: pa.Table
) -> WrittenQuarantine:
    """Append ``quarantine`` to ``base`` (see :func:`quarantine_base`) in the store and profile
    the result; safe on any thread. A first version holds just these records: it is profiled
    from them, without reading its parts back."""
    from gyre.datasets.catalog import profile_parts
    from gyre.datasets.profile import profile_table
    from gyre.datasets.writer import append

    manifest = append(ctx.artifacts, base.manifest if base else None, quarantine)
    profile = profile_table(quarantine) if base is None else profile_parts(ctx.artifacts, manifest)
    return WrittenQuarantine(base, manifest, profile)


def commit_version(
    ctx: StageContext,
    run: TrackedRun,
    name: str,
    config: SourceConfig,
    staged: StagedVersion,
    quarantine: pa.Table | WrittenQuarantine,
    *,
    state: Mapping[str, Any],
    held: HeldSchema,
) -> tuple[DatasetVersion, str | None]:
    """Register ``staged``, the quarantine records as the next quarantine version, the source's
    ``state`` and the schema step's versions and events, in one transaction. Returns the
    registered version and the quarantine version's ref (None when nothing was refused).

    ``quarantine`` is the records, or the records already written (:func:`write_quarantine`)."""
    from gyre.datasets.catalog import register_version, stage_version

    staged_quarantine = None
    written = quarantine
    if not isinstance(written, WrittenQuarantine) and written.num_rows:
        written = write_quarantine(ctx, quarantine_base(ctx, name), written)
    if isinstance(written, WrittenQuarantine):
        q_name = name + QUARANTINE_SUFFIX
        q_base = written.base
        if q_base is not None:
            run.input(dataset_node(q_name, q_base.record.version), version=q_base.record.content_id)
        staged_quarantine = stage_version(
            ctx.artifacts,
            q_name,
            written.manifest,
            kind="quarantine",
            stats=staged.stats,
            profile=written.profile,
        )
    registered: list[DatasetVersion] = []

    def commit_together(conn: Connection, version: int) -> None:
        # The quarantine version and the source's position commit in the same transaction
        # as the source version: a crash leaves all three or none, never a batch half-taken.
        if staged_quarantine is not None:
            registered.append(
                register_version(ctx.store, staged_quarantine, run_id=run.id, conn=conn)
            )
        position = {**state, "last_version": version}
        ctx.store.datasets.save_source_state(
            conn, name, config.type, config.model_dump(mode="json"), position
        )
        held.commit(ctx.store, conn, run_id=run.id, dataset_version=version)
        # The run completes with its outputs (its metrics are final by now); the run's own
        # end records it again with the same status.
        ctx.store.runs.complete_in(conn, run.id, dict(run.metrics))

    stored = register_version(ctx.store, staged, run_id=run.id, also=commit_together)
    quarantine_ref = None
    if registered:
        q_version = registered[-1]
        quarantine_ref = q_version.ref
        run.output(
            dataset_node(q_version.record.dataset, q_version.record.version),
            version=q_version.record.content_id,
        )
    run.output(dataset_node(name, stored.record.version), version=stored.record.content_id)
    return stored, quarantine_ref

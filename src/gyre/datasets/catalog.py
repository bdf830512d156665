"""Dataset versions in the catalog: commit a manifest as the next version, look one up by ref.

This is where the artifact side (manifests, Parquet parts) meets the metadata side (the
``dataset_versions`` table): committing saves the manifest blob, profiles the data and registers
the version, audited, in one call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gyre.core.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa
    from sqlalchemy import Connection

    from gyre.core.artifacts import ArtifactStore
    from gyre.core.store import MetadataStore
    from gyre.core.store.records import DatasetVersionRecord
    from gyre.datasets.manifest import DatasetManifest
    from gyre.datasets.profile import ColumnProfile, DatasetProfile

_REF = re.compile(r"^(?P<name>[A-Za-z0-9_.\-]+)(@(?P<version>\d+))?$")


def parse_dataset_ref(text: str) -> tuple[str, int | None]:
    """``name`` or ``name@version`` -> (name, version or None for the latest)."""
    match = _REF.match(text.removeprefix("dataset:"))
    if not match:
        raise UsageError(
            f"'{text}' is not a dataset reference",
            hint="write NAME or NAME@VERSION, e.g. rentals@3",
        )
    version = match.group("version")
    return match.group("name"), int(version) if version else None


@dataclass(frozen=True)
class DatasetVersion:
    """A registered dataset version with its manifest, ready to read."""

    record: DatasetVersionRecord
    manifest: DatasetManifest

    @property
    def ref(self) -> str:
        return self.record.ref


@dataclass(frozen=True)
class StagedVersion:
    """A dataset version whose blobs are stored and profiled, not yet registered."""

    name: str
    manifest: DatasetManifest
    content_id: str
    profile: dict[str, Any]
    kind: str
    stats: dict[str, Any]
    column_tags: dict[str, dict[str, Any]] = field(default_factory=dict)

    def schema(self) -> list[dict[str, Any]]:
        """Columns as registered: name, type, nullability, plus any tags (e.g. ``pii``)."""
        return [
            {**c.model_dump(), **self.column_tags.get(c.name, {})} for c in self.manifest.columns
        ]


def stage_version(
    artifacts: ArtifactStore,
    name: str,
    manifest: DatasetManifest,
    *,
    kind: str,
    stats: dict[str, Any] | None = None,
    table: pa.Table | None = None,
    column_tags: dict[str, dict[str, Any]] | None = None,
    profile: DatasetProfile | None = None,
) -> StagedVersion:
    """Save ``manifest`` and profile its data: ``profile`` if the caller made it, else
    ``table`` if the caller holds it, else from the parts.

    Kept apart from registration so several versions can be registered in one transaction.
    """
    from gyre.datasets.manifest import save_manifest
    from gyre.datasets.profile import profile_table

    cid = save_manifest(artifacts, manifest)
    if profile is None:
        profile = profile_table(table) if table is not None else profile_parts(artifacts, manifest)
    return StagedVersion(
        name,
        manifest,
        cid,
        profile.model_dump(mode="json"),
        kind,
        dict(stats or {}),
        dict(column_tags or {}),
    )


def profile_parts(artifacts: ArtifactStore, manifest: DatasetManifest) -> DatasetProfile:
    """The profile of a stored version, read one column at a time, two columns at once.

    A version can be far larger than memory allows as one table (an appended version holds every
    earlier batch); one column of it is not. Arrow's kernels release the GIL, so two threads
    profile two columns on two cores. The parts are not re-hashed here: statistics do not need
    the proof of integrity every real read gets.
    """
    from concurrent.futures import ThreadPoolExecutor

    from gyre.datasets.profile import DatasetProfile, profile_column
    from gyre.datasets.reader import read_table

    def one(name: str) -> ColumnProfile:
        column = read_table(artifacts, manifest, columns=[name], verify=False).column(name)
        return profile_column(name, column)

    with ThreadPoolExecutor(2, thread_name_prefix="gyre-profile") as pool:
        columns = tuple(pool.map(one, manifest.column_names))
    return DatasetProfile(row_count=manifest.row_count, columns=columns)


def register_version(
    store: MetadataStore,
    staged: StagedVersion,
    *,
    run_id: str | None,
    also: Callable[[Connection, int], None] | None = None,
    conn: Connection | None = None,
) -> DatasetVersion:
    """Register ``staged`` as the next version of its dataset (audited)."""
    record = store.datasets.add_version(
        staged.name,
        content_id=staged.content_id,
        schema=staged.schema(),
        row_count=staged.manifest.row_count,
        kind=staged.kind,
        profile=staged.profile,
        stats=staged.stats,
        run_id=run_id,
        also=also,
        conn=conn,
    )
    return DatasetVersion(record, staged.manifest)


def commit_version(
    store: MetadataStore,
    artifacts: ArtifactStore,
    name: str,
    manifest: DatasetManifest,
    *,
    kind: str,
    run_id: str | None,
    stats: dict[str, Any] | None = None,
    table: pa.Table | None = None,
    also: Callable[[Connection, int], None] | None = None,
) -> DatasetVersion:
    """Save ``manifest`` and register it as the next version of ``name``, in one call."""
    staged = stage_version(artifacts, name, manifest, kind=kind, stats=stats, table=table)
    return register_version(store, staged, run_id=run_id, also=also)


def get_version(
    store: MetadataStore, artifacts: ArtifactStore, name: str, version: int | None = None
) -> DatasetVersion:
    """The registered version (latest when ``version`` is None) with its manifest."""
    from gyre.datasets.manifest import load_manifest

    record = store.datasets.version(name, version)
    return DatasetVersion(record, load_manifest(artifacts, record.content_id))

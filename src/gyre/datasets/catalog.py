"""Dataset versions in the catalog: commit a manifest as the next version, look one up by ref.

This is where the artifact side (manifests, Parquet parts) meets the metadata side (the
``dataset_versions`` table): committing saves the manifest blob, profiles the data and registers
the version, audited, in one call.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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
    """Save ``manifest`` and register it as the next version of ``name``.

    ``table`` (the full data, when the caller already holds it) is profiled for
    ``gyre datasets show``; without it the profile is computed from the stored parts.
    """
    from gyre.datasets.manifest import save_manifest
    from gyre.datasets.profile import profile_table
    from gyre.datasets.reader import read_table

    cid = save_manifest(artifacts, manifest)
    data = table if table is not None else read_table(artifacts, manifest)
    profile = profile_table(data).model_dump(mode="json")
    record = store.datasets.add_version(
        name,
        content_id=cid,
        schema=[c.model_dump() for c in manifest.columns],
        row_count=manifest.row_count,
        kind=kind,
        profile=profile,
        stats=stats,
        run_id=run_id,
        also=also,
    )
    return DatasetVersion(record, manifest)


def get_version(
    store: MetadataStore, artifacts: ArtifactStore, name: str, version: int | None = None
) -> DatasetVersion:
    """The registered version (latest when ``version`` is None) with its manifest."""
    from gyre.datasets.manifest import load_manifest

    record = store.datasets.version(name, version)
    return DatasetVersion(record, load_manifest(artifacts, record.content_id))


def latest_manifest(
    store: MetadataStore, artifacts: ArtifactStore, name: str
) -> DatasetManifest | None:
    """The newest manifest of ``name``, or None when the dataset has no version yet."""
    from gyre.core.errors import NotFoundError

    try:
        return get_version(store, artifacts, name).manifest
    except NotFoundError:
        return None

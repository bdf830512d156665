"""Datasets, their versions, sources and runs."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, func, insert, select, update

from gyre.core.errors import NotFoundError
from gyre.core.store.records import DatasetRecord, DatasetVersionRecord, RunRecord
from gyre.core.store.tables import dataset_versions, datasets, runs, sources

if TYPE_CHECKING:
    from gyre.core.store.base import MetadataStore

DATASET_KINDS = ("source", "derived", "quarantine")
RUN_STATUSES = ("running", "completed", "failed")


def _version_record(row: Row[Any], name: str) -> DatasetVersionRecord:
    return DatasetVersionRecord(
        id=row.id,
        dataset=name,
        version=row.version,
        content_id=row.content_id,
        schema=row.schema,
        row_count=row.row_count,
        profile=row.profile,
        stats=row.stats,
        run_id=row.run_id,
        created_at=row.created_at,
    )


def _run_record(row: Row[Any]) -> RunRecord:
    return RunRecord(
        id=row.id,
        kind=row.kind,
        job=row.job,
        status=row.status,
        params=row.params,
        metrics=row.metrics,
        code_hash=row.code_hash,
        environment=row.environment,
        error=row.error,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


class DatasetRepository:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def _lock_or_create(self, conn: Connection, name: str, kind: str) -> int:
        row = conn.execute(
            select(datasets.c.id).where(datasets.c.name == name).with_for_update()
        ).first()
        if row:
            return int(row.id)
        result = conn.execute(
            insert(datasets).values(name=name, kind=kind, created_at=datetime.now(UTC))
        )
        assert result.inserted_primary_key is not None
        self._store.audit.append(
            conn, action="dataset.created", entity=f"dataset:{name}", payload={"kind": kind}
        )
        return int(result.inserted_primary_key[0])

    def add_version(
        self,
        name: str,
        *,
        content_id: str,
        schema: list[dict[str, Any]],
        row_count: int,
        kind: str = "source",
        profile: dict[str, Any] | None = None,
        stats: dict[str, Any] | None = None,
        run_id: str | None = None,
        also: Callable[[Connection, int], None] | None = None,
        conn: Connection | None = None,
    ) -> DatasetVersionRecord:
        """Register the next version of dataset ``name`` (created on first use).

        ``also(conn, version)`` runs in the same transaction: sources use it to commit their
        position (files seen) atomically with the version those files produced. With ``conn``
        the version joins the caller's transaction instead of opening its own.
        """
        if kind not in DATASET_KINDS:
            raise ValueError(f"dataset kind must be one of {DATASET_KINDS}, not {kind!r}")

        def work(conn: Connection) -> DatasetVersionRecord:
            dataset_id = self._lock_or_create(conn, name, kind)
            latest = conn.execute(
                select(func.max(dataset_versions.c.version)).where(
                    dataset_versions.c.dataset_id == dataset_id
                )
            ).scalar()
            version = int(latest or 0) + 1
            values = {
                "dataset_id": dataset_id,
                "version": version,
                "content_id": content_id,
                "schema": schema,
                "row_count": row_count,
                "profile": profile,
                "stats": stats or {},
                "run_id": run_id,
                "created_at": datetime.now(UTC),
            }
            result = conn.execute(insert(dataset_versions).values(**values))
            assert result.inserted_primary_key is not None
            self._store.audit.append(
                conn,
                action="dataset_version.registered",
                entity=f"dataset:{name}@{version}",
                payload={
                    "content_id": content_id,
                    "row_count": row_count,
                    "run_id": run_id,
                    "stats": stats or {},
                },
            )
            if also is not None:
                also(conn, version)
            row = conn.execute(
                select(dataset_versions).where(
                    dataset_versions.c.id == result.inserted_primary_key[0]
                )
            ).one()
            return _version_record(row, name)

        if conn is not None:
            return work(conn)
        return self._store.retrying(work)

    def get(self, name: str) -> DatasetRecord:
        with self._store.engine.connect() as conn:
            row = conn.execute(select(datasets).where(datasets.c.name == name)).first()
        if row is None:
            raise NotFoundError(
                f"no dataset named '{name}'", hint="`gyre datasets list` shows the datasets"
            )
        return DatasetRecord(row.id, row.name, row.kind, row.created_at)

    def latest(self) -> list[tuple[DatasetRecord, DatasetVersionRecord | None]]:
        """Every dataset with its latest version."""
        out = []
        for record in self._all():
            versions = self.versions(record.name, limit=1)
            out.append((record, versions[0] if versions else None))
        return out

    def _all(self) -> list[DatasetRecord]:
        with self._store.engine.connect() as conn:
            rows = conn.execute(select(datasets).order_by(datasets.c.name)).all()
        return [DatasetRecord(r.id, r.name, r.kind, r.created_at) for r in rows]

    def versions(self, name: str, *, limit: int | None = None) -> list[DatasetVersionRecord]:
        """Versions of ``name``, newest first."""
        dataset = self.get(name)
        query = (
            select(dataset_versions)
            .where(dataset_versions.c.dataset_id == dataset.id)
            .order_by(dataset_versions.c.version.desc())
        )
        if limit:
            query = query.limit(limit)
        with self._store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [_version_record(r, name) for r in rows]

    def version(self, name: str, version: int | None = None) -> DatasetVersionRecord:
        """One version of ``name``; the latest when ``version`` is None."""
        if version is None:
            latest = self.versions(name, limit=1)
            if not latest:
                raise NotFoundError(f"dataset '{name}' has no versions yet")
            return latest[0]
        dataset = self.get(name)
        with self._store.engine.connect() as conn:
            row = conn.execute(
                select(dataset_versions).where(
                    dataset_versions.c.dataset_id == dataset.id,
                    dataset_versions.c.version == version,
                )
            ).first()
        if row is None:
            raise NotFoundError(
                f"dataset '{name}' has no version {version}",
                hint=f"`gyre datasets show {name}` lists its versions",
            )
        return _version_record(row, name)

    # Sources keep their incremental state (files seen, cursors) next to their config.

    def source_state(self, name: str) -> dict[str, Any]:
        with self._store.engine.connect() as conn:
            row = conn.execute(select(sources.c.state).where(sources.c.name == name)).first()
        return dict(row.state) if row else {}

    def save_source_state(
        self, conn: Connection, name: str, type_: str, config: dict[str, Any], state: dict[str, Any]
    ) -> None:
        """Store a source's state inside the caller's transaction (with the dataset version)."""
        row = conn.execute(
            select(sources.c.id).where(sources.c.name == name).with_for_update()
        ).first()
        if row is None:
            conn.execute(
                insert(sources).values(
                    name=name,
                    type=type_,
                    config=config,
                    state=state,
                    created_at=datetime.now(UTC),
                )
            )
        else:
            conn.execute(
                update(sources).where(sources.c.id == row.id).values(config=config, state=state)
            )


class RunRepository:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    def start(
        self,
        *,
        kind: str,
        job: str,
        params: dict[str, Any] | None = None,
        code_hash: str | None = None,
        environment: dict[str, Any] | None = None,
    ) -> RunRecord:
        run_id = str(uuid.uuid4())
        with self._store.transaction() as conn:
            conn.execute(
                insert(runs).values(
                    id=run_id,
                    kind=kind,
                    job=job,
                    status="running",
                    params=params or {},
                    metrics={},
                    code_hash=code_hash,
                    environment=environment or {},
                    started_at=datetime.now(UTC),
                )
            )
        return self.get(run_id)

    def finish(
        self,
        run_id: str,
        *,
        status: str,
        metrics: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> RunRecord:
        if status not in RUN_STATUSES[1:]:
            raise ValueError(f"a run finishes as completed or failed, not {status!r}")
        with self._store.transaction() as conn:
            values: dict[str, Any] = {
                "status": status,
                "error": error,
                "ended_at": datetime.now(UTC),
            }
            if metrics is not None:
                values["metrics"] = metrics
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))
        return self.get(run_id)

    def complete_in(self, conn: Connection, run_id: str, metrics: dict[str, Any]) -> None:
        """Mark the run completed inside the caller's transaction, the one that commits its
        outputs: a crash right after that commit cannot leave the run looking unfinished."""
        conn.execute(
            update(runs)
            .where(runs.c.id == run_id)
            .values(status="completed", metrics=metrics, ended_at=datetime.now(UTC))
        )

    def log_metrics(self, run_id: str, metrics: dict[str, Any]) -> None:
        with self._store.transaction() as conn:
            current = conn.execute(select(runs.c.metrics).where(runs.c.id == run_id)).scalar_one()
            conn.execute(
                update(runs).where(runs.c.id == run_id).values(metrics={**current, **metrics})
            )

    def get(self, run_id: str) -> RunRecord:
        with self._store.engine.connect() as conn:
            if len(run_id) < 36:
                rows = conn.execute(select(runs).where(runs.c.id.startswith(run_id))).all()
                if len(rows) > 1:
                    raise NotFoundError(
                        f"run id prefix '{run_id}' is ambiguous ({len(rows)} runs match)",
                        hint="give more characters of the id",
                    )
                row = rows[0] if rows else None
            else:
                row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        if row is None:
            raise NotFoundError(f"no run '{run_id}'", hint="`gyre runs list` shows recent runs")
        return _run_record(row)

    def recent(
        self, *, kind: str | None = None, job: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        query = select(runs).order_by(runs.c.started_at.desc()).limit(limit)
        if kind:
            query = query.where(runs.c.kind == kind)
        if job:
            query = query.where(runs.c.job == job)
        with self._store.engine.connect() as conn:
            return [_run_record(r) for r in conn.execute(query).all()]

"""The schema history of sources: the contract versions that checked them, and drift events.

A source's contract changes in two ways: a person edits its file, or schema drift with
``evolve`` adds a column or widens a type. Either way the contract that checked a batch gets a
number, per source (1, 2, 3...), registered in the transaction that commits the batch, together
with the drift events the batch caused. A refused or crashed batch therefore leaves neither.

    store.schemas.contract_versions("rentals")      # oldest first
    store.schemas.drift_events("rentals")           # newest first
    store.schemas.ingest_batches("rentals")         # every ingest/replay run, committed or not
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, and_, insert, select

from gyre.core.errors import ConflictError
from gyre.core.store.records import ContractVersionRecord, DriftEventRecord, IngestBatchRecord
from gyre.core.store.tables import (
    contract_versions,
    dataset_versions,
    datasets,
    drift_events,
    runs,
)

if TYPE_CHECKING:
    from gyre.core.store.base import MetadataStore

INGEST_RUN_KINDS = ("ingest", "replay")


def _contract_record(row: Row[Any]) -> ContractVersionRecord:
    return ContractVersionRecord(
        id=row.id,
        source=row.source,
        version=row.version,
        content_id=row.content_id,
        origin=row.origin,
        file=row.file,
        file_content_id=row.file_content_id,
        evolved=list(row.evolved),
        columns=list(row.columns),
        run_id=row.run_id,
        created_at=row.created_at,
    )


def _event_record(row: Row[Any]) -> DriftEventRecord:
    return DriftEventRecord(
        id=row.id,
        source=row.source,
        run_id=row.run_id,
        dataset_version=row.dataset_version,
        contract_version=row.contract_version,
        batch=row.batch,
        entity=row.entity,
        change=row.change,
        column=row.column,
        old_type=row.old_type,
        new_type=row.new_type,
        mode=row.mode,
        action=row.action,
        affected=row.affected,
        detail=row.detail,
        created_at=row.created_at,
    )


def _fit_lengths(event: dict[str, Any]) -> dict[str, Any]:
    """Texts cut to their column's length: a long URL as batch label, or a nested Arrow type
    as a column type, must not make PostgreSQL refuse the batch's commit."""
    out = dict(event)
    for column in drift_events.columns:
        length = getattr(column.type, "length", None)
        value = out.get(column.name)
        if length and isinstance(value, str) and len(value) > length:
            out[column.name] = value[: length - 1] + "…"
    return out


class SchemaHistoryRepository:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    # -- contract versions ------------------------------------------------------------------

    def latest_contract(self, source: str) -> ContractVersionRecord | None:
        with self._store.engine.connect() as conn:
            return self._latest(conn, source)

    def _latest(self, conn: Connection, source: str) -> ContractVersionRecord | None:
        row = conn.execute(
            select(contract_versions)
            .where(contract_versions.c.source == source)
            .order_by(contract_versions.c.version.desc())
            .limit(1)
        ).first()
        return _contract_record(row) if row is not None else None

    def contract_versions(self, source: str) -> list[ContractVersionRecord]:
        """Every contract version of ``source``, oldest first."""
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(contract_versions)
                .where(contract_versions.c.source == source)
                .order_by(contract_versions.c.version)
            ).all()
        return [_contract_record(r) for r in rows]

    def add_contract_version(
        self,
        conn: Connection,
        *,
        source: str,
        version: int,
        content_id: str,
        origin: str,
        file: str | None,
        file_content_id: str,
        evolved: list[dict[str, Any]],
        columns: list[dict[str, Any]],
        run_id: str | None,
    ) -> ContractVersionRecord:
        """Register ``version`` of the source's contract inside the caller's transaction.

        The caller numbered it from the latest version it saw. If another process registered
        the same content under that number meanwhile, that record is returned; any other
        change in between is a :class:`ConflictError` (ingest the batch again).
        """
        latest = self._latest(conn, source)
        if latest is not None and latest.version >= version:
            same = conn.execute(
                select(contract_versions).where(
                    contract_versions.c.source == source, contract_versions.c.version == version
                )
            ).one()
            if same.content_id == content_id:
                return _contract_record(same)
        seen = latest.version if latest is not None else 0
        if seen != version - 1:
            raise ConflictError(
                f"the contract of source '{source}' got version {seen} while this batch was "
                f"checked against version {version - 1}",
                hint="another ingest of this source ran at the same time; ingest again",
            )
        values = {
            "source": source,
            "version": version,
            "content_id": content_id,
            "origin": origin,
            "file": file,
            "file_content_id": file_content_id,
            "evolved": evolved,
            "columns": columns,
            "run_id": run_id,
            "created_at": datetime.now(UTC),
        }
        result = conn.execute(insert(contract_versions).values(**values))
        assert result.inserted_primary_key is not None
        self._store.audit.append(
            conn,
            action="contract_version.registered",
            entity=f"contract:{source}@{version}",
            payload={"content_id": content_id, "origin": origin, "run_id": run_id},
        )
        row = conn.execute(
            select(contract_versions).where(
                contract_versions.c.id == result.inserted_primary_key[0]
            )
        ).one()
        return _contract_record(row)

    # -- drift events ----------------------------------------------------------------------

    def add_drift_events(
        self, conn: Connection, source: str, events: Sequence[dict[str, Any]]
    ) -> None:
        """Store one batch's drift events inside the caller's transaction (audited once)."""
        if not events:
            return
        now = datetime.now(UTC)
        rows = [_fit_lengths({**event, "source": source, "created_at": now}) for event in events]
        conn.execute(insert(drift_events), rows)
        first = rows[0]
        self._store.audit.append(
            conn,
            action="schema_drift.recorded",
            entity=f"dataset:{source}@{first.get('dataset_version')}",
            payload={
                "run_id": first["run_id"],
                "events": [
                    {k: e.get(k) for k in ("entity", "change", "column", "action", "affected")}
                    for e in rows
                ],
            },
        )

    def drift_events(self, source: str, *, limit: int | None = None) -> list[DriftEventRecord]:
        """Drift events of ``source``, newest first."""
        query = (
            select(drift_events)
            .where(drift_events.c.source == source)
            .order_by(drift_events.c.id.desc())
        )
        if limit:
            query = query.limit(limit)
        with self._store.engine.connect() as conn:
            return [_event_record(r) for r in conn.execute(query).all()]

    # -- batches ---------------------------------------------------------------------------

    def ingest_batches(self, source: str, *, limit: int | None = None) -> list[IngestBatchRecord]:
        """Every ingest and replay run of ``source``, newest first, with the version of the
        source's dataset it committed (None for a refused or failed batch)."""
        dataset_id = select(datasets.c.id).where(datasets.c.name == source).scalar_subquery()
        joined = runs.outerjoin(
            dataset_versions,
            and_(
                dataset_versions.c.run_id == runs.c.id,
                dataset_versions.c.dataset_id == dataset_id,
            ),
        )
        query = (
            select(
                runs.c.id,
                runs.c.kind,
                runs.c.status,
                runs.c.params,
                runs.c.error,
                runs.c.started_at,
                runs.c.ended_at,
                dataset_versions.c.version,
                dataset_versions.c.stats,
            )
            .select_from(joined)
            .where(runs.c.job == source, runs.c.kind.in_(INGEST_RUN_KINDS))
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        )
        if limit:
            query = query.limit(limit)
        with self._store.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            IngestBatchRecord(
                run_id=r.id,
                kind=r.kind,
                status=r.status,
                params=r.params,
                error=r.error,
                started_at=r.started_at,
                ended_at=r.ended_at,
                dataset_version=r.version,
                stats=r.stats,
            )
            for r in rows
        ]

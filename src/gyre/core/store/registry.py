"""Models, model versions, aliases, gate results and approvals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, delete, func, insert, select, update

from gyre.core.errors import NotFoundError
from gyre.core.store.records import ApprovalRecord, GateResultRecord, ModelVersionRecord
from gyre.core.store.tables import aliases, approvals, gate_results, model_versions, models

if TYPE_CHECKING:
    from gyre.core.store.base import MetadataStore


class ModelRepository:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    # -- models and versions -------------------------------------------------------------

    def _lock_or_create(self, conn: Connection, name: str) -> int:
        row = conn.execute(
            select(models.c.id).where(models.c.name == name).with_for_update()
        ).first()
        if row:
            return int(row.id)
        result = conn.execute(insert(models).values(name=name, created_at=datetime.now(UTC)))
        assert result.inserted_primary_key is not None
        self._store.audit.append(conn, action="model.created", entity=f"model:{name}", payload={})
        return int(result.inserted_primary_key[0])

    def register(
        self,
        name: str,
        *,
        package_id: str,
        flavor: str,
        signature: dict[str, Any],
        metrics: dict[str, Any],
        run_id: str | None,
    ) -> ModelVersionRecord:
        """Register the next version of model ``name``."""

        def work(conn: Connection) -> ModelVersionRecord:
            model_id = self._lock_or_create(conn, name)
            latest = conn.execute(
                select(func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id
                )
            ).scalar()
            version = int(latest or 0) + 1
            result = conn.execute(
                insert(model_versions).values(
                    model_id=model_id,
                    version=version,
                    package_id=package_id,
                    flavor=flavor,
                    signature=signature,
                    metrics=metrics,
                    run_id=run_id,
                    created_at=datetime.now(UTC),
                )
            )
            assert result.inserted_primary_key is not None
            self._store.audit.append(
                conn,
                action="model_version.registered",
                entity=f"model:{name}:{version}",
                payload={"package_id": package_id, "metrics": metrics, "run_id": run_id},
            )
            return self._version_by_id(conn, int(result.inserted_primary_key[0]))

        return self._store.retrying(work)

    def _version_by_id(self, conn: Connection, version_id: int) -> ModelVersionRecord:
        row = conn.execute(
            select(model_versions, models.c.name)
            .join(models, models.c.id == model_versions.c.model_id)
            .where(model_versions.c.id == version_id)
        ).one()
        names = conn.execute(
            select(aliases.c.alias).where(aliases.c.model_version_id == version_id)
        ).scalars()
        return _record(row, tuple(sorted(names)))

    def names(self) -> list[str]:
        with self._store.engine.connect() as conn:
            return list(conn.execute(select(models.c.name).order_by(models.c.name)).scalars())

    def versions(self, name: str) -> list[ModelVersionRecord]:
        """Every version of ``name``, newest first."""
        with self._store.engine.connect() as conn:
            model_id = self._model_id(conn, name)
            ids = conn.execute(
                select(model_versions.c.id)
                .where(model_versions.c.model_id == model_id)
                .order_by(model_versions.c.version.desc())
            ).scalars()
            return [self._version_by_id(conn, i) for i in list(ids)]

    def version(self, name: str, version: int | None = None) -> ModelVersionRecord:
        """One version; the latest when ``version`` is None."""
        with self._store.engine.connect() as conn:
            model_id = self._model_id(conn, name)
            query = select(model_versions.c.id).where(model_versions.c.model_id == model_id)
            if version is None:
                query = query.order_by(model_versions.c.version.desc()).limit(1)
            else:
                query = query.where(model_versions.c.version == version)
            version_id = conn.execute(query).scalar()
            if version_id is None:
                raise NotFoundError(
                    f"model '{name}' has no version {version}"
                    if version
                    else f"model '{name}' has no versions",
                    hint=f"`gyre models show {name}` lists its versions",
                )
            return self._version_by_id(conn, version_id)

    def _model_id(self, conn: Connection, name: str) -> int:
        model_id = conn.execute(select(models.c.id).where(models.c.name == name)).scalar()
        if model_id is None:
            raise NotFoundError(
                f"no model named '{name}'", hint="`gyre models list` shows registered models"
            )
        return int(model_id)

    # -- aliases --------------------------------------------------------------------------

    def alias(self, name: str, alias: str) -> ModelVersionRecord | None:
        """The version ``alias`` points at, or None if it is unset."""
        with self._store.engine.connect() as conn:
            model_id = self._model_id(conn, name)
            version_id = conn.execute(
                select(aliases.c.model_version_id).where(
                    aliases.c.model_id == model_id, aliases.c.alias == alias
                )
            ).scalar()
            return None if version_id is None else self._version_by_id(conn, version_id)

    def set_alias(
        self, name: str, alias: str, version: int, *, reason: str, conn: Connection | None = None
    ) -> ModelVersionRecord:
        """Point ``alias`` at ``version`` (audited with the previous target and the reason)."""

        def work(c: Connection) -> ModelVersionRecord:
            model_id = self._model_id(c, name)
            c.execute(select(models.c.id).where(models.c.id == model_id).with_for_update())
            target = c.execute(
                select(model_versions.c.id).where(
                    model_versions.c.model_id == model_id, model_versions.c.version == version
                )
            ).scalar()
            if target is None:
                raise NotFoundError(f"model '{name}' has no version {version}")
            previous = c.execute(
                select(model_versions.c.version)
                .join(aliases, aliases.c.model_version_id == model_versions.c.id)
                .where(aliases.c.model_id == model_id, aliases.c.alias == alias)
            ).scalar()
            c.execute(
                delete(aliases).where(aliases.c.model_id == model_id, aliases.c.alias == alias)
            )
            c.execute(
                insert(aliases).values(
                    model_id=model_id,
                    alias=alias,
                    model_version_id=target,
                    updated_at=datetime.now(UTC),
                )
            )
            self._store.audit.append(
                c,
                action="alias.moved",
                entity=f"model:{name}@{alias}",
                payload={"from_version": previous, "to_version": version, "reason": reason},
            )
            return self._version_by_id(c, int(target))

        if conn is not None:
            return work(conn)
        with self._store.transaction() as c:
            return work(c)

    # -- gates and approvals --------------------------------------------------------------

    def add_gate_result(
        self,
        version: ModelVersionRecord,
        *,
        suite: str,
        passed: bool,
        results: list[dict[str, Any]],
        run_id: str | None,
    ) -> GateResultRecord:
        with self._store.transaction() as conn:
            result = conn.execute(
                insert(gate_results).values(
                    model_version_id=version.id,
                    suite=suite,
                    passed=passed,
                    results=results,
                    run_id=run_id,
                    created_at=datetime.now(UTC),
                )
            )
            assert result.inserted_primary_key is not None
            self._store.audit.append(
                conn,
                action="gate.passed" if passed else "gate.failed",
                entity=f"model:{version.ref}",
                payload={"suite": suite, "results": results, "run_id": run_id},
            )
            row = conn.execute(
                select(gate_results).where(gate_results.c.id == result.inserted_primary_key[0])
            ).one()
        return GateResultRecord(
            row.id,
            row.model_version_id,
            row.suite,
            row.passed,
            row.results,
            row.run_id,
            row.created_at,
        )

    def gate_results(self, version: ModelVersionRecord) -> list[GateResultRecord]:
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(gate_results)
                .where(gate_results.c.model_version_id == version.id)
                .order_by(gate_results.c.id)
            ).all()
        return [
            GateResultRecord(
                r.id, r.model_version_id, r.suite, r.passed, r.results, r.run_id, r.created_at
            )
            for r in rows
        ]

    def add_approval(
        self, version: ModelVersionRecord, *, decision: str, actor: str, reason: str
    ) -> ApprovalRecord:
        if decision not in ("approved", "rejected"):
            raise ValueError(f"decision must be approved or rejected, not {decision!r}")
        with self._store.transaction() as conn:
            result = conn.execute(
                insert(approvals).values(
                    model_version_id=version.id,
                    decision=decision,
                    actor=actor,
                    reason=reason,
                    created_at=datetime.now(UTC),
                )
            )
            assert result.inserted_primary_key is not None
            self._store.audit.append(
                conn,
                action=f"approval.{decision}",
                entity=f"model:{version.ref}",
                payload={"reason": reason},
                actor=actor,
            )
            row = conn.execute(
                select(approvals).where(approvals.c.id == result.inserted_primary_key[0])
            ).one()
        return ApprovalRecord(
            row.id, row.model_version_id, row.decision, row.actor, row.reason, row.created_at
        )

    def approvals(self, version: ModelVersionRecord) -> list[ApprovalRecord]:
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(approvals)
                .where(approvals.c.model_version_id == version.id)
                .order_by(approvals.c.id)
            ).all()
        return [
            ApprovalRecord(r.id, r.model_version_id, r.decision, r.actor, r.reason, r.created_at)
            for r in rows
        ]

    def update_metrics(self, version: ModelVersionRecord, metrics: dict[str, Any]) -> None:
        """Merge evaluation metrics computed after registration (audited)."""
        with self._store.transaction() as conn:
            merged = {**version.metrics, **metrics}
            conn.execute(
                update(model_versions)
                .where(model_versions.c.id == version.id)
                .values(metrics=merged)
            )
            self._store.audit.append(
                conn,
                action="model_version.metrics",
                entity=f"model:{version.ref}",
                payload={"metrics": metrics},
            )


def _record(row: Row[Any], alias_names: tuple[str, ...]) -> ModelVersionRecord:
    return ModelVersionRecord(
        id=row.id,
        model=row.name,
        version=row.version,
        package_id=row.package_id,
        flavor=row.flavor,
        signature=row.signature,
        metrics=row.metrics,
        run_id=row.run_id,
        created_at=row.created_at,
        aliases=alias_names,
    )

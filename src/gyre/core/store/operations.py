"""Endpoints, deployments (traffic changes), monitors and alerts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, insert, select, update

from gyre.core.errors import NotFoundError
from gyre.core.store.records import AlertRecord, DeploymentRecord, EndpointRecord
from gyre.core.store.tables import alerts, deployments, endpoints, models, monitors

if TYPE_CHECKING:
    from gyre.core.store.base import MetadataStore


class OperationsRepository:
    def __init__(self, store: MetadataStore) -> None:
        self._store = store

    # -- endpoints and deployments --------------------------------------------------------

    def ensure_endpoint(self, name: str, *, model: str, alias: str) -> EndpointRecord:
        """Create the endpoint, or update which model alias it serves (audited either way)."""
        with self._store.transaction() as conn:
            model_id = conn.execute(select(models.c.id).where(models.c.name == model)).scalar()
            if model_id is None:
                raise NotFoundError(
                    f"endpoint '{name}' serves model '{model}', which has no versions yet",
                    hint=f"train it first: `gyre train {model}`",
                )
            row = conn.execute(
                select(endpoints).where(endpoints.c.name == name).with_for_update()
            ).first()
            if row is None:
                conn.execute(
                    insert(endpoints).values(
                        name=name, model_id=model_id, alias=alias, created_at=datetime.now(UTC)
                    )
                )
                self._store.audit.append(
                    conn,
                    action="endpoint.created",
                    entity=f"endpoint:{name}",
                    payload={"model": model, "alias": alias},
                )
            elif row.model_id != model_id or row.alias != alias:
                conn.execute(
                    update(endpoints)
                    .where(endpoints.c.id == row.id)
                    .values(model_id=model_id, alias=alias)
                )
                self._store.audit.append(
                    conn,
                    action="endpoint.updated",
                    entity=f"endpoint:{name}",
                    payload={"model": model, "alias": alias},
                )
        return self.endpoint(name)

    def endpoint(self, name: str) -> EndpointRecord:
        with self._store.engine.connect() as conn:
            row = conn.execute(
                select(endpoints, models.c.name.label("model"))
                .join(models, models.c.id == endpoints.c.model_id)
                .where(endpoints.c.name == name)
            ).first()
        if row is None:
            raise NotFoundError(
                f"no endpoint named '{name}'",
                hint="endpoints are declared under `endpoints:` in gyre.yaml and created on deploy",
            )
        return EndpointRecord(row.id, row.name, row.model, row.alias, row.created_at)

    def endpoints(self) -> list[EndpointRecord]:
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(endpoints, models.c.name.label("model"))
                .join(models, models.c.id == endpoints.c.model_id)
                .order_by(endpoints.c.name)
            ).all()
        return [EndpointRecord(r.id, r.name, r.model, r.alias, r.created_at) for r in rows]

    def record_deployment(
        self,
        conn: Connection,
        endpoint: EndpointRecord,
        traffic: dict[str, Any],
        run_id: str | None,
    ) -> None:
        """Record a traffic change inside the caller's transaction (audited)."""
        conn.execute(
            insert(deployments).values(
                endpoint_id=endpoint.id,
                traffic=traffic,
                run_id=run_id,
                created_at=datetime.now(UTC),
            )
        )
        self._store.audit.append(
            conn,
            action="deployment.traffic",
            entity=f"endpoint:{endpoint.name}",
            payload={"traffic": traffic, "run_id": run_id},
        )

    def deployments(self, endpoint: str) -> list[DeploymentRecord]:
        record = self.endpoint(endpoint)
        with self._store.engine.connect() as conn:
            rows = conn.execute(
                select(deployments)
                .where(deployments.c.endpoint_id == record.id)
                .order_by(deployments.c.id)
            ).all()
        return [DeploymentRecord(r.id, endpoint, r.traffic, r.run_id, r.created_at) for r in rows]

    # -- monitors and alerts --------------------------------------------------------------

    def ensure_monitor(self, name: str, *, endpoint: str, config: dict[str, Any]) -> int:
        target = self.endpoint(endpoint)
        with self._store.transaction() as conn:
            row = conn.execute(
                select(monitors).where(monitors.c.name == name).with_for_update()
            ).first()
            if row is None:
                result = conn.execute(
                    insert(monitors).values(
                        name=name,
                        endpoint_id=target.id,
                        config=config,
                        created_at=datetime.now(UTC),
                    )
                )
                assert result.inserted_primary_key is not None
                self._store.audit.append(
                    conn,
                    action="monitor.created",
                    entity=f"monitor:{name}",
                    payload={"endpoint": endpoint, "config": config},
                )
                return int(result.inserted_primary_key[0])
            if row.config != config or row.endpoint_id != target.id:
                conn.execute(
                    update(monitors)
                    .where(monitors.c.id == row.id)
                    .values(config=config, endpoint_id=target.id)
                )
            return int(row.id)

    def raise_alert(
        self,
        monitor: str,
        *,
        kind: str,
        window: str,
        message: str,
        details: dict[str, Any],
        value: float | None = None,
        threshold: float | None = None,
    ) -> AlertRecord:
        with self._store.transaction() as conn:
            monitor_id = conn.execute(
                select(monitors.c.id).where(monitors.c.name == monitor)
            ).scalar()
            if monitor_id is None:
                raise NotFoundError(f"no monitor named '{monitor}'")
            result = conn.execute(
                insert(alerts).values(
                    monitor_id=monitor_id,
                    kind=kind,
                    window=window,
                    message=message,
                    details=details,
                    value=value,
                    threshold=threshold,
                    status="open",
                    created_at=datetime.now(UTC),
                )
            )
            assert result.inserted_primary_key is not None
            alert_id = int(result.inserted_primary_key[0])
            self._store.audit.append(
                conn,
                action="alert.raised",
                entity=f"alert:{alert_id}",
                payload={
                    "monitor": monitor,
                    "kind": kind,
                    "window": window,
                    "message": message,
                    "value": value,
                    "threshold": threshold,
                },
            )
        return self.alert(alert_id)

    def resolve_alert(
        self, alert_id: int, *, action: str, status: str = "resolved", run_id: str | None = None
    ) -> AlertRecord:
        with self._store.transaction() as conn:
            conn.execute(
                update(alerts)
                .where(alerts.c.id == alert_id)
                .values(status=status, action=action, action_run_id=run_id)
            )
            self._store.audit.append(
                conn,
                action=f"alert.{status}",
                entity=f"alert:{alert_id}",
                payload={"action": action, "run_id": run_id},
            )
        return self.alert(alert_id)

    def alert(self, alert_id: int) -> AlertRecord:
        with self._store.engine.connect() as conn:
            row = conn.execute(_alert_query().where(alerts.c.id == alert_id)).first()
        if row is None:
            raise NotFoundError(f"no alert #{alert_id}", hint="`gyre alerts list` shows alerts")
        return _alert(row)

    def alerts(self, *, monitor: str | None = None, status: str | None = None) -> list[AlertRecord]:
        query = _alert_query().order_by(alerts.c.id)
        if monitor:
            query = query.where(monitors.c.name == monitor)
        if status:
            query = query.where(alerts.c.status == status)
        with self._store.engine.connect() as conn:
            return [_alert(r) for r in conn.execute(query).all()]


def _alert_query() -> Any:
    return select(alerts, monitors.c.name.label("monitor_name")).join(
        monitors, monitors.c.id == alerts.c.monitor_id
    )


def _alert(row: Row[Any]) -> AlertRecord:
    return AlertRecord(
        id=row.id,
        monitor=row.monitor_name,
        kind=row.kind,
        window=row.window,
        message=row.message,
        details=row.details,
        value=row.value,
        threshold=row.threshold,
        status=row.status,
        action=row.action,
        action_run_id=row.action_run_id,
        created_at=row.created_at,
    )

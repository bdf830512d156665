"""Plain, immutable records the store returns (never live ORM objects)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


class Record:
    """Common helpers: ``as_dict`` gives JSON-ready values (datetimes as ISO text)."""

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():  # type: ignore[call-overload]
            out[key] = _iso(value) if isinstance(value, datetime) else value
        return out


@dataclass(frozen=True)
class DatasetRecord(Record):
    id: int
    name: str
    kind: str
    created_at: datetime


@dataclass(frozen=True)
class DatasetVersionRecord(Record):
    id: int
    dataset: str
    version: int
    content_id: str
    schema: list[dict[str, Any]]
    row_count: int
    profile: dict[str, Any] | None
    stats: dict[str, Any]
    run_id: str | None
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


@dataclass(frozen=True)
class RunRecord(Record):
    id: str
    kind: str
    job: str
    status: str
    params: dict[str, Any]
    metrics: dict[str, Any]
    code_hash: str | None
    environment: dict[str, Any]
    error: str | None
    started_at: datetime
    ended_at: datetime | None


@dataclass(frozen=True)
class ModelVersionRecord(Record):
    id: int
    model: str
    version: int
    package_id: str
    flavor: str
    signature: dict[str, Any]
    metrics: dict[str, Any]
    run_id: str | None
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.model}:{self.version}"


@dataclass(frozen=True)
class GateResultRecord(Record):
    id: int
    model_version_id: int
    suite: str
    passed: bool
    results: list[dict[str, Any]]
    run_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class ApprovalRecord(Record):
    id: int
    model_version_id: int
    decision: str
    actor: str
    reason: str
    created_at: datetime


@dataclass(frozen=True)
class EndpointRecord(Record):
    id: int
    name: str
    model: str
    alias: str
    created_at: datetime


@dataclass(frozen=True)
class DeploymentRecord(Record):
    id: int
    endpoint: str
    traffic: dict[str, Any]
    run_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class AlertRecord(Record):
    id: int
    monitor: str
    kind: str
    window: str
    message: str
    details: dict[str, Any]
    value: float | None
    threshold: float | None
    status: str
    action: str | None
    action_run_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class ContractVersionRecord(Record):
    id: int
    source: str
    version: int
    content_id: str
    origin: str
    file: str | None
    file_content_id: str
    evolved: list[dict[str, Any]]
    columns: list[dict[str, Any]]
    run_id: str | None
    created_at: datetime


@dataclass(frozen=True)
class DriftEventRecord(Record):
    id: int
    source: str
    run_id: str
    dataset_version: int | None
    contract_version: int | None
    batch: str
    entity: str
    change: str
    column: str | None
    old_type: str | None
    new_type: str | None
    mode: str
    action: str
    affected: int
    detail: str
    created_at: datetime


@dataclass(frozen=True)
class IngestBatchRecord(Record):
    """One ingest (or replay) run of a source with the dataset version it committed, if any."""

    run_id: str
    kind: str
    status: str
    params: dict[str, Any]
    error: str | None
    started_at: datetime
    ended_at: datetime | None
    dataset_version: int | None
    stats: dict[str, Any] | None

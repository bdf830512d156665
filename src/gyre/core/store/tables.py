"""The metadata schema: one table per noun of DESIGN.md's vocabulary.

Alembic migrations (``gyre/core/migrations``) create these tables on SQLite and PostgreSQL;
this module is the source the migrations were generated from, and what queries are written
against. Timestamps are stored as UTC. JSON columns hold small documents (params, metrics,
schemas); large things live in the artifact store and are referenced by content id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use datetime.now(UTC)")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            naive: datetime = value
            return naive.replace(tzinfo=UTC)
        result: datetime = value.astimezone(UTC)
        return result


def _now() -> datetime:
    return datetime.now(UTC)


def _created() -> Column[datetime]:
    return Column("created_at", UTCDateTime(), nullable=False, default=_now)


sources = Table(
    "sources",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("type", String(50), nullable=False),
    Column("config", JSON, nullable=False),
    Column("state", JSON, nullable=False),
    _created(),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    # source: raw rows from a source; derived: output of a prepare step;
    # quarantine: rows a contract refused, with their reasons.
    Column("kind", String(20), nullable=False),
    _created(),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", ForeignKey("datasets.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_id", String(80), nullable=False),
    Column("schema", JSON, nullable=False),
    Column("row_count", Integer, nullable=False),
    Column("profile", JSON, nullable=True),
    Column("stats", JSON, nullable=False),
    Column("run_id", ForeignKey("runs.id"), nullable=True),
    _created(),
    UniqueConstraint("dataset_id", "version"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(30), nullable=False),
    Column("job", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("code_hash", String(80), nullable=True),
    Column("environment", JSON, nullable=False),
    Column("error", Text, nullable=True),
    Column("started_at", UTCDateTime(), nullable=False, default=_now),
    Column("ended_at", UTCDateTime(), nullable=True),
    Index("ix_runs_kind_started", "kind", "started_at"),
)

models = Table(
    "models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    _created(),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("package_id", String(80), nullable=False),
    Column("flavor", String(50), nullable=False),
    Column("signature", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("run_id", ForeignKey("runs.id"), nullable=True),
    _created(),
    UniqueConstraint("model_id", "version"),
)

aliases = Table(
    "aliases",
    metadata,
    Column("model_id", ForeignKey("models.id"), primary_key=True),
    Column("alias", String(100), primary_key=True),
    Column("model_version_id", ForeignKey("model_versions.id"), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False, default=_now),
)

gate_results = Table(
    "gate_results",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_version_id", ForeignKey("model_versions.id"), nullable=False),
    Column("suite", String(200), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("results", JSON, nullable=False),
    Column("run_id", ForeignKey("runs.id"), nullable=True),
    _created(),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_version_id", ForeignKey("model_versions.id"), nullable=False),
    Column("decision", String(20), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("reason", Text, nullable=False),
    _created(),
)

endpoints = Table(
    "endpoints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("model_id", ForeignKey("models.id"), nullable=False),
    Column("alias", String(100), nullable=False),
    _created(),
)

deployments = Table(
    "deployments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("endpoint_id", ForeignKey("endpoints.id"), nullable=False),
    # {"versions": [{"model_version_id": 3, "weight": 1.0}], "reason": "..."}
    Column("traffic", JSON, nullable=False),
    Column("run_id", ForeignKey("runs.id"), nullable=True),
    _created(),
)

monitors = Table(
    "monitors",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("endpoint_id", ForeignKey("endpoints.id"), nullable=False),
    Column("config", JSON, nullable=False),
    _created(),
)

alerts = Table(
    "alerts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("monitor_id", ForeignKey("monitors.id"), nullable=False),
    Column("kind", String(30), nullable=False),
    Column("window", String(50), nullable=False),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column("value", Float, nullable=True),
    Column("threshold", Float, nullable=True),
    Column("status", String(20), nullable=False),
    Column("action", String(50), nullable=True),
    Column("action_run_id", ForeignKey("runs.id"), nullable=True),
    _created(),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    # A node reference such as "dataset:features@3", "model:demand:2", "endpoint:demand",
    # "file:data/incoming/2011-01.csv@b3:...". See gyre.core.lineage for the grammar.
    Column("node", String(500), nullable=False),
    Column("role", String(10), nullable=False),  # input | output
    _created(),
    Index("ix_lineage_edges_node", "node"),
    Index("ix_lineage_edges_run", "run_id"),
)

audit_events = Table(
    "audit_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=False),
    # ISO-8601 text, exactly as hashed: a DateTime column could come back reformatted.
    Column("time", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(100), nullable=False),
    Column("entity", String(500), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", String(80), nullable=False),
    Column("hash", String(80), nullable=False),
)

# The newest audit event, updated in the same transaction as each append. Appenders lock this
# row, which serialises them on PostgreSQL; comparing it with the table catches a deleted tail.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", Integer, nullable=False),
    Column("hash", String(80), nullable=False),
)

# Every distinct contract a source was checked with, numbered per source (1, 2, 3...). The
# contract itself is a blob in the artifact store (``content_id``); ``evolved`` lists what schema
# drift added to the source's contract file (columns, widened types), ``columns`` the resulting
# columns, kept here so a history can diff versions without reading blobs.
contract_versions = Table(
    "contract_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_id", String(80), nullable=False),
    Column("origin", String(20), nullable=False),  # file | evolved
    Column("file", String(500), nullable=True),  # the contract file, as gyre.yaml names it
    Column("file_content_id", String(80), nullable=False),
    Column("evolved", JSON, nullable=False),
    Column("columns", JSON, nullable=False),
    Column("run_id", ForeignKey("runs.id"), nullable=True),
    _created(),
    UniqueConstraint("source", "version"),
)

# A change in the schema of a source's batches, and what its schema_drift policy did about it.
# Written in the transaction that registers the dataset version, so a refused or crashed batch
# leaves none.
drift_events = Table(
    "drift_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(200), nullable=False),
    Column("run_id", ForeignKey("runs.id"), nullable=False),
    Column("dataset_version", Integer, nullable=True),
    Column("contract_version", Integer, nullable=True),
    Column("batch", String(500), nullable=False),
    Column("entity", String(20), nullable=False),  # tables | columns | data_type
    Column("change", String(30), nullable=False),  # new_table | new_column | missing_column | type
    Column("column", String(500), nullable=True),
    Column("old_type", String(100), nullable=True),
    Column("new_type", String(100), nullable=True),
    Column("mode", String(20), nullable=False),
    Column("action", String(30), nullable=False),
    Column("affected", Integer, nullable=False),  # rows quarantined, values nulled or dropped
    Column("detail", Text, nullable=False),
    _created(),
    Index("ix_drift_events_source", "source"),
)
